//! A minimal rpm database for fixture trees: `/var/lib/rpm/rpmdb.sqlite` as rpm 4.16+
//! lays it out (an SQLite file whose `Packages` table holds one header blob per
//! installed package), written from a list of names and `[epoch:]version-release`
//! strings, so that rule fixtures of RHEL and Amazon Linux trees name their packages
//! the way those systems record them. The agent's reader is tested against databases
//! the real rpm wrote in `tests/rpmdb.rs`; this writer only has to produce what that
//! reader accepts: one 4096-byte schema page and one leaf page of rows, no WAL.

use std::collections::BTreeMap;

const PAGE: usize = 4096;

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = vec![(v & 0x7f) as u8];
    v >>= 7;
    while v > 0 {
        out.push((v & 0x7f) as u8 | 0x80);
        v >>= 7;
    }
    out.reverse();
    out
}

enum Col<'a> {
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
}

fn record(cols: &[Col]) -> Vec<u8> {
    let (mut types, mut body) = (Vec::new(), Vec::new());
    for c in cols {
        match c {
            Col::Int(i) => {
                types.push(6);
                body.extend_from_slice(&i.to_be_bytes());
            }
            Col::Text(t) => {
                types.extend(varint(13 + 2 * t.len() as u64));
                body.extend_from_slice(t.as_bytes());
            }
            Col::Blob(b) => {
                types.extend(varint(12 + 2 * b.len() as u64));
                body.extend_from_slice(b);
            }
        }
    }
    let mut len = types.len() + 1;
    if varint(len as u64).len() > 1 {
        len += 1;
    }
    [varint(len as u64), types, body].concat()
}

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

/// A table b-tree leaf page holding `cells` packed at its end.
fn leaf(first: bool, cells: &[Vec<u8>]) -> Vec<u8> {
    let mut p = vec![0u8; PAGE];
    let start = if first { 100 } else { 0 };
    p[start] = 0x0d;
    p[start + 3..start + 5].copy_from_slice(&(cells.len() as u16).to_be_bytes());
    let mut end = PAGE;
    for (i, c) in cells.iter().enumerate() {
        end -= c.len();
        assert!(
            end > start + 8 + 2 * cells.len(),
            "rpm fixture: too many packages for one page"
        );
        p[end..end + c.len()].copy_from_slice(c);
        let at = start + 8 + 2 * i;
        p[at..at + 2].copy_from_slice(&(end as u16).to_be_bytes());
    }
    p[start + 5..start + 7].copy_from_slice(&(end as u16).to_be_bytes());
    p
}

fn cell(rowid: i64, payload: &[u8]) -> Vec<u8> {
    [
        varint(payload.len() as u64),
        varint(rowid as u64),
        payload.to_vec(),
    ]
    .concat()
}

/// The bytes of an rpmdb.sqlite listing `packages` (name → `[epoch:]version-release`).
pub fn rpmdb_sqlite(packages: &BTreeMap<String, String>) -> Vec<u8> {
    let rows: Vec<Vec<u8>> = packages
        .iter()
        .enumerate()
        .map(|(i, (name, evr))| {
            let h = header(name, evr);
            cell(i as i64 + 1, &record(&[Col::Int(0), Col::Blob(&h)]))
        })
        .collect();
    let sql = "CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL)";
    let schema = cell(
        1,
        &record(&[
            Col::Text("table"),
            Col::Text("Packages"),
            Col::Text("Packages"),
            Col::Int(2),
            Col::Text(sql),
        ]),
    );
    let mut first = leaf(true, &[schema]);
    let h = &mut first[..100];
    h[..16].copy_from_slice(b"SQLite format 3\0");
    h[16..18].copy_from_slice(&(PAGE as u16).to_be_bytes());
    h[18] = 1;
    h[19] = 1;
    h[21..24].copy_from_slice(&[64, 32, 32]);
    h[24..28].copy_from_slice(&1u32.to_be_bytes());
    h[28..32].copy_from_slice(&2u32.to_be_bytes());
    h[44..48].copy_from_slice(&4u32.to_be_bytes());
    h[56..60].copy_from_slice(&1u32.to_be_bytes());
    h[92..96].copy_from_slice(&1u32.to_be_bytes());
    [first, leaf(false, &rows)].concat()
}
