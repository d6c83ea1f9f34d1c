//! A minimal rpm database for fixture trees: `/var/lib/rpm/rpmdb.sqlite` as rpm 4.16+
//! lays it out (an SQLite file whose `Packages` table holds one header blob per
//! installed package), written from a list of names and `[epoch:]version-release`
//! strings, so that rule fixtures of RHEL and Amazon Linux trees name their packages
//! the way those systems record them. The agent's reader is tested against databases
//! the real rpm wrote in `tests/rpmdb.rs`; this writer only has to produce what that
//! reader accepts: 4096-byte pages, the schema on page 1 and the rows on one leaf
//! page (overflow pages for a header that does not fit), no WAL. The file is laid out
//! by the test SQLite writer in `sqlite.rs`, which the reader's unit tests share.

use std::collections::BTreeMap;

mod sqlite;

use sqlite::{page, record, Db, V};

const PAGE: usize = 4096;

/// A header blob (no region) with name, version, release, arch and, when given, epoch.
fn header(name: &str, evr: &str) -> Vec<u8> {
    let (epoch, vr) = match evr.split_once(':') {
        Some((e, rest)) => (Some(e.parse::<u32>().expect("numeric epoch")), rest),
        None => (None, evr),
    };
    let (version, release) = vr
        .rsplit_once('-')
        .unwrap_or_else(|| panic!("rpm fixture {name}: {evr} is not version-release"));
    let mut data = Vec::new();
    let mut entries: Vec<(u32, u32, u32)> = Vec::new(); // tag, type, offset
    for (tag, s) in [
        (1000, name),
        (1001, version),
        (1002, release),
        (1022, "noarch"),
    ] {
        entries.push((tag, 6, data.len() as u32));
        data.extend_from_slice(s.as_bytes());
        data.push(0);
    }
    if let Some(e) = epoch {
        while data.len() % 4 != 0 {
            data.push(0);
        }
        entries.push((1003, 4, data.len() as u32));
        data.extend_from_slice(&e.to_be_bytes());
    }
    let mut b = Vec::new();
    b.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    b.extend_from_slice(&(data.len() as u32).to_be_bytes());
    for (tag, kind, offset) in entries {
        for v in [tag, kind, offset, 1] {
            b.extend_from_slice(&v.to_be_bytes());
        }
    }
    b.extend_from_slice(&data);
    b
}

/// The bytes of an rpmdb.sqlite listing `packages` (name → `[epoch:]version-release`).
pub fn rpmdb_sqlite(packages: &BTreeMap<String, String>) -> Vec<u8> {
    let mut db = Db::new(PAGE);
    let rows: Vec<Vec<u8>> = packages
        .iter()
        .enumerate()
        .map(|(i, (name, evr))| {
            let h = header(name, evr);
            db.cell(i as i64 + 1, &record(&[V::Int(0), V::Blob(&h)]))
        })
        .collect();
    let leaf = db.add(page(PAGE, false, 0x0d, &rows, None));
    db.bytes(&[("Packages", leaf)])
}
