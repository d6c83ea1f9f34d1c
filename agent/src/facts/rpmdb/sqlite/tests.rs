//! The reader against databases and WALs written here, whole and damaged.

use super::record::varint;
use super::wal::{checksum, WAL_MAGIC_BE, WAL_MAGIC_LE, WAL_VERSION};
use super::*;
use crate::facts::Facts;
use std::fs;

// The test SQLite writer shared with the rule fixtures' rpm databases.
#[path = "../../../../tests/fixture_rpmdb/sqlite.rs"]
mod writer;
use writer::{interior_cell, record, varint_bytes, Db, V};

const PAGE: usize = 512;

/// A b-tree page of [`PAGE`] bytes (see [`writer::page`]).
fn page(first: bool, kind: u8, cells: &[Vec<u8>], right: Option<u32>) -> Vec<u8> {
    writer::page(PAGE, first, kind, cells, right)
}

/// Rows of a table: rowid and record.
type Rows = Vec<(i64, Vec<u8>)>;

fn blob_row(n: usize) -> Vec<u8> {
    let b: Vec<u8> = (0..n).map(|i| (i * 7 % 251) as u8).collect();
    record(&[V::Null, V::Blob(&b)])
}

/// Rows of sizes around every boundary: on the page, exactly the most a page
/// holds, one byte more, and many pages of overflow; three leaves under an
/// interior root.
fn sample() -> (Vec<u8>, Rows, Vec<u32>) {
    let mut db = Db::new(PAGE);
    let rows: Rows = [10, 200, 474, 475, 476, 2000, 5000]
        .iter()
        .enumerate()
        .map(|(i, n)| (i as i64 + 1, blob_row(*n)))
        .collect();
    let mut leaves = Vec::new();
    for chunk in rows.chunks(3) {
        let cells: Vec<Vec<u8>> = chunk.iter().map(|(id, r)| db.cell(*id, r)).collect();
        leaves.push(db.add(page(false, 0x0d, &cells, None)));
    }
    let root = db.add(page(
        false,
        0x05,
        &[interior_cell(leaves[0], 3), interior_cell(leaves[1], 6)],
        Some(leaves[2]),
    ));
    leaves.push(root);
    (
        db.bytes(&[("Other", leaves[0]), ("Packages", root)]),
        rows,
        leaves,
    )
}

/// The rows of `table`, sorted, or the error as text.
fn rows(db: &[u8], wal: Option<&[u8]>, table: &str) -> Result<Rows, String> {
    let t = tempfile::tempdir().unwrap();
    fs::write(t.path().join("db"), db).unwrap();
    if let Some(w) = wal {
        fs::write(t.path().join("db-wal"), w).unwrap();
    }
    let facts = Facts::new(t.path(), false);
    let file = facts.open_binary("/db", u64::MAX).unwrap().unwrap();
    let wal = facts.open_binary("/db-wal", u64::MAX).unwrap();
    let text = |e: FactError| e.to_string();
    let d = Database::open(&file, wal.as_ref()).map_err(text)?;
    let root = d.table_root(table).map_err(text)?.ok_or("no such table")?;
    let mut out = Vec::new();
    d.scan_table(root, |id, p| {
        out.push((id, p.to_vec()));
        Ok(())
    })
    .map_err(text)?;
    out.sort();
    Ok(out)
}

#[test]
fn rows_across_interior_leaf_and_overflow_pages() {
    let (db, want, _) = sample();
    assert_eq!(db.len() / PAGE, 21, "the sample has overflow pages");
    assert_eq!(rows(&db, None, "Packages").unwrap(), want);
    // Table names are matched as SQLite matches them, ignoring ASCII case.
    assert_eq!(rows(&db, None, "PACKAGES").unwrap(), want);
    assert_eq!(rows(&db, None, "Other").unwrap(), want[..3].to_vec());
    assert_eq!(rows(&db, None, "Nothing"), Err("no such table".into()));
    let cols = decode_record(&want[6].1).unwrap();
    assert!(matches!(&cols[..], [Value::Null, Value::Blob(b)] if b.len() == 5000));
}

#[test]
fn records_decode_every_serial_type() {
    // Header: its length, then the types; then the values in order.
    let mut r = vec![13, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12 + 2 * 2, 13 + 2 * 3];
    r[0] = r.len() as u8;
    r.extend_from_slice(&[0xfe]); // i8 -2
    r.extend_from_slice(&[0x01, 0x00]); // i16 256
    r.extend_from_slice(&[0xff, 0xff, 0xfd]); // i24 -3
    r.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff]); // i32
    r.extend_from_slice(&[0x80, 0, 0, 0, 0, 0]); // i48 minimum
    r.extend_from_slice(&(-5i64).to_be_bytes());
    r.extend_from_slice(&1.5f64.to_be_bytes());
    r.extend_from_slice(&[0xab, 0xcd]);
    r.extend_from_slice(b"rpm");
    assert_eq!(
        decode_record(&r).unwrap(),
        vec![
            Value::Null,
            Value::Int(-2),
            Value::Int(256),
            Value::Int(-3),
            Value::Int(i64::from(i32::MAX)),
            Value::Int(-(1 << 47)),
            Value::Int(-5),
            Value::Real(1.5),
            Value::Int(0),
            Value::Int(1),
            Value::Blob(&[0xab, 0xcd]),
            Value::Text(b"rpm"),
        ]
    );
    for (what, r, want) in [
        ("no header", vec![], "truncated record header"),
        (
            "a header past the record",
            vec![9, 0],
            "record header of 9 bytes",
        ),
        (
            "a header inside its own length",
            vec![0, 0],
            "record header of 0 bytes",
        ),
        (
            "a column past the record",
            vec![2, 6, 1, 2],
            "column 0 runs past",
        ),
        ("a reserved type", vec![2, 10], "reserved serial type 10"),
        (
            "a huge blob",
            [vec![10], varint_bytes(u64::MAX)].concat(),
            "runs past",
        ),
    ] {
        let e = decode_record(&r).unwrap_err();
        assert!(e.contains(want), "{what}: {e:?} does not say {want:?}");
    }
}

#[test]
fn varints_of_every_length() {
    for v in [
        0,
        1,
        127,
        128,
        16383,
        16384,
        1 << 40,
        (1 << 56) - 1,
        1 << 56,
        u64::MAX,
    ] {
        let b = varint_bytes(v);
        assert_eq!(varint(&b, 0), Some((v, b.len())), "{v}");
        assert_eq!(varint(&b[..b.len() - 1], 0), None, "{v} cut short");
    }
}

/// The sample with bytes changed at a page's offset.
fn patched(page_no: u32, at: usize, bytes: &[u8]) -> Vec<u8> {
    let (mut db, _, _) = sample();
    let o = (page_no as usize - 1) * PAGE + at;
    db[o..o + bytes.len()].copy_from_slice(bytes);
    db
}

/// Every damage is an error naming the problem, never a panic or a hang.
#[test]
fn damaged_databases_are_errors() {
    let (db, _, pages) = sample();
    let (leaf, root) = (pages[0], pages[3]);
    // Where the leaf's first cell is (row 1, 15 bytes at the end of the page).
    let first_cell = usize::from(be16(&db, (leaf as usize - 1) * PAGE + 8));
    assert_eq!(first_cell, PAGE - 15);
    let big_payload = [varint_bytes(1 << 40), varint_bytes(1)].concat();
    let mut utf16 = db.clone();
    utf16[56..60].copy_from_slice(&2u32.to_be_bytes());
    let mut reserved = db.clone();
    reserved[20] = 100;
    let mut newer = db.clone();
    newer[19] = 3;
    let mut counted = db.clone();
    counted[28..32].copy_from_slice(&(db.len() as u32 / PAGE as u32 + 5).to_be_bytes());
    let mut cut = db[..PAGE * 3].to_vec();
    cut[92] ^= 1; // the header's page count no longer valid
    let mut loop_root = db.clone();
    let o = (root as usize - 1) * PAGE + 8;
    loop_root[o..o + 4].copy_from_slice(&root.to_be_bytes());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "an index page as the root",
            patched(root, 0, &[0x0a]),
            "not a table b-tree page",
        ),
        (
            "a root that is its own child",
            loop_root,
            "reached twice (a loop)",
        ),
        (
            "a child past the end",
            patched(root, 8, &[0, 0, 1, 0]),
            "page 256 is out of range",
        ),
        (
            "a child 0",
            patched(root, 8, &[0, 0, 0, 0]),
            "page 0 is out of range",
        ),
        (
            "too many cells",
            patched(leaf, 3, &[0x7f, 0xff]),
            "more than it can hold",
        ),
        (
            "a cell in the header",
            patched(leaf, 8, &[0, 2]),
            "outside the cell area",
        ),
        (
            "a cell past the page",
            patched(leaf, 8, &[0x02, 0x00]),
            "outside the cell area",
        ),
        (
            "a cell at the last byte",
            patched(leaf, 8, &[0x01, 0xff]),
            "truncated",
        ),
        (
            "a huge record",
            patched(leaf, first_cell, &big_payload),
            "more than the 67108864-byte limit",
        ),
        ("utf-16", utf16, "UTF-16"),
        ("reserved bytes", reserved, "fewer than 480 usable"),
        ("a newer format", newer, "newer than this reader"),
        ("a truncated file", counted, "it is truncated"),
        (
            "a cut file",
            cut,
            "root page 21 is out of range: the database has 3 pages",
        ),
    ];
    for (what, bytes, want) in cases {
        match rows(&bytes, None, "Packages") {
            Err(e) => assert!(e.contains(want), "{what}: {e:?} does not say {want:?}"),
            Ok(r) => panic!("{what}: read {} rows", r.len()),
        }
    }
}

#[test]
fn damaged_overflow_chains_are_errors() {
    // One row spilling over two overflow pages (2 and 3), in leaf 4.
    let build = |damage: &dyn Fn(&mut Db)| {
        let mut db = Db::new(PAGE);
        let cell = db.cell(1, &blob_row(1200));
        assert_eq!(db.pages.len(), 3);
        damage(&mut db);
        let leaf = db.add(page(false, 0x0d, &[cell], None));
        db.bytes(&[("Packages", leaf)])
    };
    assert_eq!(rows(&build(&|_| {}), None, "Packages").unwrap().len(), 1);
    for (what, damage, want) in [
        (
            "a chain that loops",
            &(|db: &mut Db| db.pages[1][..4].copy_from_slice(&2u32.to_be_bytes()))
                as &dyn Fn(&mut Db),
            "overflow page 2 is reached twice",
        ),
        (
            "a chain that ends early",
            &|db: &mut Db| db.pages[1][..4].copy_from_slice(&0u32.to_be_bytes()),
            "overflow chain ends after",
        ),
        (
            "a chain into nowhere",
            &|db: &mut Db| db.pages[1][..4].copy_from_slice(&999u32.to_be_bytes()),
            "page 999 is out of range",
        ),
        (
            "a chain into the b-tree",
            &|db: &mut Db| db.pages[1][..4].copy_from_slice(&4u32.to_be_bytes()),
            "overflow page 4 is reached twice",
        ),
    ] {
        match rows(&build(damage), None, "Packages") {
            Err(e) => assert!(e.contains(want), "{what}: {e:?} does not say {want:?}"),
            Ok(_) => panic!("{what}: read"),
        }
    }
}

#[test]
fn a_schema_entry_without_a_root_page_is_an_error() {
    let mut db = Db::new(PAGE);
    let e = rows(&db.bytes(&[("Packages", 77)]), None, "Packages").unwrap_err();
    assert!(e.contains("root page 77 is out of range"), "{e}");
}

/// A WAL of 512-byte pages: its header, then frames (page, commit size, content)
/// with the running checksum, in the byte order the magic names.
fn wal(big_endian: bool, salts: (u32, u32), frames: &[(u32, u32, &[u8])]) -> Vec<u8> {
    let mut w = Vec::new();
    let magic = if big_endian {
        WAL_MAGIC_BE
    } else {
        WAL_MAGIC_LE
    };
    for v in [magic, WAL_VERSION, PAGE as u32, 0, salts.0, salts.1] {
        w.extend_from_slice(&v.to_be_bytes());
    }
    let mut sum = checksum((0, 0), &w, big_endian);
    w.extend_from_slice(&sum.0.to_be_bytes());
    w.extend_from_slice(&sum.1.to_be_bytes());
    for (page, commit, content) in frames {
        let mut head = Vec::new();
        for v in [*page, *commit, salts.0, salts.1] {
            head.extend_from_slice(&v.to_be_bytes());
        }
        sum = checksum(sum, &head[..8], big_endian);
        sum = checksum(sum, content, big_endian);
        head.extend_from_slice(&sum.0.to_be_bytes());
        head.extend_from_slice(&sum.1.to_be_bytes());
        w.extend(head);
        w.extend_from_slice(content);
    }
    w
}

/// A database whose Packages table is one leaf (page 2) with rows 1..=n, and
/// that leaf alone for `n` rows (to put in a WAL).
fn one_leaf(n: i64) -> (Vec<u8>, Vec<u8>) {
    let mut db = Db::new(PAGE);
    let cells: Vec<Vec<u8>> = (1..=n).map(|i| db.cell(i, &blob_row(20))).collect();
    let leaf = page(false, 0x0d, &cells, None);
    db.add(leaf.clone());
    (db.bytes(&[("Packages", 2)]), leaf)
}

fn ids(r: Result<Rows, String>) -> Vec<i64> {
    r.unwrap().into_iter().map(|(id, _)| id).collect()
}

#[test]
fn the_wal_counts_up_to_its_last_valid_commit() {
    let (db, _) = one_leaf(1);
    let (_, two) = one_leaf(2);
    let (_, three) = one_leaf(3);
    let salts = (0x1234, 0x5678);
    for big_endian in [false, true] {
        // Committed: read. A later frame without a commit: not read.
        let w = wal(big_endian, salts, &[(2, 2, &two), (2, 0, &three)]);
        assert_eq!(ids(rows(&db, Some(&w), "Packages")), [1, 2]);
        // Two commits: the last one wins.
        let w = wal(big_endian, salts, &[(2, 2, &two), (2, 2, &three)]);
        assert_eq!(ids(rows(&db, Some(&w), "Packages")), [1, 2, 3]);
    }
    // A frame with a bad checksum ends the log, valid frames after it included.
    let mut w = wal(
        false,
        salts,
        &[(2, 2, &two), (2, 2, &three), (2, 2, &three)],
    );
    let second = 32 + 24 + PAGE + 24 + 100;
    w[second] ^= 1;
    assert_eq!(ids(rows(&db, Some(&w), "Packages")), [1, 2]);
    // A frame of another generation (other salts) ends it too.
    let mut w = wal(false, salts, &[(2, 2, &two), (2, 2, &three)]);
    let old = wal(false, (1, 1), &[(2, 2, &three), (2, 2, &three)]);
    let frame = 24 + PAGE;
    w[32 + frame..].copy_from_slice(&old[32 + frame..]);
    assert_eq!(ids(rows(&db, Some(&w), "Packages")), [1, 2]);
    // A header with a bad checksum: SQLite ignores the whole WAL, and so do we.
    let mut w = wal(false, salts, &[(2, 2, &three)]);
    w[27] ^= 1;
    assert_eq!(ids(rows(&db, Some(&w), "Packages")), [1]);
    // Empty, short, or another file: nothing.
    for w in [&b""[..], b"short", &[7u8; 600]] {
        assert_eq!(ids(rows(&db, Some(w), "Packages")), [1]);
    }
}

/// Pages past the end of the database file come from the WAL, page 1 included:
/// a WAL can hold a table the file has never seen.
#[test]
fn the_wal_can_grow_the_database() {
    let (db, _) = one_leaf(1);
    let mut grown = Db::new(PAGE);
    grown.add(vec![0; PAGE]);
    let leaf = grown.cell(9, &blob_row(30));
    grown.add(page(false, 0x0d, &[leaf], None));
    let bytes = grown.bytes(&[("Packages", 3)]);
    let w = wal(
        false,
        (5, 6),
        &[(3, 0, &bytes[2 * PAGE..]), (1, 3, &bytes[..PAGE])],
    );
    assert_eq!(ids(rows(&db, Some(&w), "Packages")), [9]);
    // The same frames uncommitted: the file's table.
    let w = wal(
        false,
        (5, 6),
        &[(3, 0, &bytes[2 * PAGE..]), (1, 0, &bytes[..PAGE])],
    );
    assert_eq!(ids(rows(&db, Some(&w), "Packages")), [1]);
}

#[test]
fn a_wal_that_cannot_be_this_databases_is_an_error() {
    let (db, leaf) = one_leaf(1);
    let mut w = wal(false, (1, 2), &[(2, 2, &leaf)]);
    w[8..12].copy_from_slice(&1024u32.to_be_bytes());
    let sum = checksum((0, 0), &w[..24], false);
    w[24..28].copy_from_slice(&sum.0.to_be_bytes());
    w[28..32].copy_from_slice(&sum.1.to_be_bytes());
    let e = rows(&db, Some(&w), "Packages").unwrap_err();
    assert!(
        e.contains("page size 1024 is not the database's 512"),
        "{e}"
    );
    let mut w = wal(false, (1, 2), &[(2, 2, &leaf)]);
    w[4..8].copy_from_slice(&3_007_001u32.to_be_bytes());
    let e = rows(&db, Some(&w), "Packages").unwrap_err();
    assert!(e.contains("unknown WAL format version 3007001"), "{e}");
}

/// Random damage to the sample and to a WAL: whatever is read, nothing panics
/// and nothing hangs.
#[test]
fn random_damage_never_panics() {
    let (db, _, _) = sample();
    let (_, leaf) = one_leaf(2);
    let w = wal(false, (3, 4), &[(2, 0, &leaf), (3, 22, &leaf)]);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..1500 {
        let (mut d, mut wl) = (db.clone(), w.clone());
        let target = if i % 4 == 0 { &mut wl } else { &mut d };
        for _ in 0..1 + next() % 6 {
            let at = (next() % target.len() as u64) as usize;
            target[at] = next() as u8;
        }
        let _ = rows(&d, (i % 2 == 0).then_some(&wl[..]), "Packages");
    }
}
