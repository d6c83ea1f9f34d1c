//! Damaged databases: every damage is a `Malformed` error naming the file (and the
//! row, for a header), never a panic.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use rampart_agent::facts::packages::packages;
use rampart_agent::facts::rpmdb::{self, RPMDB};
use rampart_agent::facts::{FactError, Facts};
use tempfile::TempDir;

use crate::build::root_with;

/// A copy of the RHEL 9 database with its file changed by `damage`.
fn damaged(damage: impl FnOnce(&mut Vec<u8>)) -> TempDir {
    let t = root_with("RHEL9");
    let path = t.path().join("var/lib/rpm/rpmdb.sqlite");
    let mut bytes = fs::read(&path).unwrap();
    damage(&mut bytes);
    fs::write(&path, bytes).unwrap();
    t
}

/// Reading fails with a `Malformed` error on the database file whose reason
/// contains `want`, both directly and through the package facts.
fn assert_malformed(root: &Path, want: &str) {
    let facts = Facts::new(root, false);
    match rpmdb::read(&facts) {
        Err(FactError::Malformed { path, reason }) => {
            assert_eq!(path, RPMDB);
            assert!(reason.contains(want), "{reason:?} does not say {want:?}");
        }
        other => panic!("expected a Malformed error saying {want:?}, got {other:?}"),
    }
    assert!(packages(&facts).is_err());
}

/// Where each package's header starts in the file (headers small enough to sit in
/// one page), found by their region entry, keyed by name.
fn headers(bytes: &[u8]) -> BTreeMap<String, usize> {
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    let mut found = BTreeMap::new();
    for at in 8..bytes.len() - 24 {
        if bytes[at..at + 8] != [0, 0, 0, 63, 0, 0, 0, 7] || be(at + 12) != 16 {
            continue;
        }
        let start = at - 8;
        let (il, dl) = (be(start), be(start + 4));
        let store = start + 8 + 16 * il;
        if il > 200 || store + dl > bytes.len() {
            continue;
        }
        for e in 0..il {
            let entry = start + 8 + 16 * e;
            if be(entry) == 1000 {
                let name = &bytes[store + be(entry + 8)..];
                let name = &name[..name.iter().position(|b| *b == 0).unwrap()];
                found.insert(String::from_utf8_lossy(name).into_owned(), start);
            }
        }
    }
    found
}

/// The offset in the file of the index entry for `tag` of the header at `start`.
fn entry(bytes: &[u8], start: usize, tag: u32) -> usize {
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (0..be(start) as usize)
        .map(|e| start + 8 + 16 * e)
        .find(|at| be(*at) == tag)
        .unwrap_or_else(|| panic!("no tag {tag}"))
}

fn put(bytes: &mut [u8], at: usize, v: u32) {
    bytes[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[test]
fn damaged_files_are_errors_naming_the_problem() {
    // Truncated: the tail pages are gone.
    let t = damaged(|b| b.truncate(b.len() * 3 / 5));
    assert_malformed(t.path(), "truncated");
    // Cut inside the header, and empty.
    let t = damaged(|b| b.truncate(60));
    assert_malformed(t.path(), "too short for an SQLite database");
    let t = damaged(|b| b.clear());
    assert_malformed(t.path(), "too short for an SQLite database");
    // Garbage of the right size.
    let t = damaged(|b| {
        for (i, x) in b.iter_mut().enumerate() {
            *x = (i * 131 % 256) as u8;
        }
    });
    assert_malformed(t.path(), "not an SQLite 3 database");
    // An SQLite database without a Packages table.
    let t = damaged(|b| {
        for at in 0..b.len() - 8 {
            if &b[at..at + 8] == b"Packages" {
                b[at + 7] = b'z';
            }
        }
    });
    assert_malformed(t.path(), "no Packages table");
    // An impossible page size.
    let t = damaged(|b| b[16..18].copy_from_slice(&1000u16.to_be_bytes()));
    assert_malformed(t.path(), "invalid page size 1000");
}

/// A change to a file, given where the header it damages starts.
type Damage = fn(&mut [u8], usize);

#[test]
fn damaged_headers_are_errors_naming_the_row_and_the_problem() {
    let cases: [(&str, Damage, &str); 6] = [
        (
            "an index count past the blob",
            |b, h| put(b, h, 0x7fff_ffff),
            "index entry count 2147483647",
        ),
        (
            "a data length past the blob",
            |b, h| {
                let dl = u32::from_be_bytes(b[h + 4..h + 8].try_into().unwrap());
                put(b, h + 4, dl + 64)
            },
            "but the header is",
        ),
        (
            "an offset past the data store",
            |b, h| put(b, entry(b, h, 1001) + 8, 0x00ff_0000),
            "past the",
        ),
        (
            "a huge count of integers",
            |b, h| put(b, entry(b, h, 1003) + 12, 0xffff_ffff),
            "4294967295 integers",
        ),
        (
            "a huge count on a string",
            |b, h| put(b, entry(b, h, 1000) + 12, 0xffff_ffff),
            "count of 4294967295",
        ),
        (
            "an unknown type",
            |b, h| put(b, entry(b, h, 1002) + 4, 77),
            "unknown type 77",
        ),
    ];
    for (what, damage, want) in cases {
        let t = damaged(|b| {
            let h = headers(b)["shadow-utils"];
            damage(b, h);
        });
        let facts = Facts::new(t.path(), false);
        match rpmdb::read(&facts) {
            Err(FactError::Malformed { path, reason }) => {
                assert_eq!(path, RPMDB, "{what}");
                assert!(
                    reason.contains("the header in Packages row") && reason.contains(want),
                    "{what}: {reason:?} does not say {want:?}"
                );
            }
            other => panic!("{what}: expected a Malformed error, got {other:?}"),
        }
    }
}
