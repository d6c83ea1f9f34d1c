//! A small writer of SQLite database files for tests, written from SQLite's published
//! file-format description: records, table b-tree pages (leaf and interior), overflow
//! chains, and the schema table on page 1, UTF-8, any page size from 512 to 32768.
//!
//! One writer for two users: the rule fixtures' rpm databases (`fixture_rpmdb`) and the
//! unit tests of the agent's reader (`agent/src/facts/rpmdb/sqlite/tests.rs`, which
//! include this file through a `#[path]` module). Each uses a different part of it.
#![allow(dead_code)]

pub const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// A SQLite varint: 1 to 9 bytes, big-endian, seven bits a byte, all eight bits of
/// a ninth.
pub fn varint_bytes(mut v: u64) -> Vec<u8> {
    if v >> 56 != 0 {
        let mut out = vec![0u8; 9];
        out[8] = v as u8;
        v >>= 8;
        for b in out[..8].iter_mut().rev() {
            *b = (v as u8 & 0x7f) | 0x80;
            v >>= 7;
        }
        return out;
    }
    let mut out = vec![(v & 0x7f) as u8];
    v >>= 7;
    while v > 0 {
        out.push((v & 0x7f) as u8 | 0x80);
        v >>= 7;
    }
    out.reverse();
    out
}

/// A column value to write.
pub enum V<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// A record: its header (length, then one serial type per column) and the values.
pub fn record(values: &[V]) -> Vec<u8> {
    let (mut types, mut body) = (Vec::new(), Vec::new());
    for v in values {
        match v {
            V::Null => types.push(0),
            V::Int(i) => {
                types.push(6);
                body.extend_from_slice(&i.to_be_bytes());
            }
            V::Text(t) => {
                types.extend(varint_bytes(13 + 2 * t.len() as u64));
                body.extend_from_slice(t.as_bytes());
            }
            V::Blob(b) => {
                types.extend(varint_bytes(12 + 2 * b.len() as u64));
                body.extend_from_slice(b);
            }
        }
    }
    let mut header_len = types.len() + 1;
    if varint_bytes(header_len as u64).len() > 1 {
        header_len += 1;
    }
    [varint_bytes(header_len as u64), types, body].concat()
}

/// How much of a table leaf cell's payload of `size` bytes stays on a page of
/// `usable` bytes; the rest goes to overflow pages.
pub fn local_payload(size: usize, usable: usize) -> usize {
    let max_local = usable - 35;
    if size <= max_local {
        return size;
    }
    let min_local = (usable - 12) * 32 / 255 - 23;
    let k = min_local + (size - min_local) % (usable - 4);
    if k <= max_local {
        k
    } else {
        min_local
    }
}

/// A database under construction, pages of `page_size` bytes; page 1 (the schema)
/// is made last, by [`Db::bytes`].
pub struct Db {
    page_size: usize,
    /// The pages so far, page 1 first; tests may damage them in place.
    pub pages: Vec<Vec<u8>>,
}

impl Db {
    pub fn new(page_size: usize) -> Db {
        Db {
            page_size,
            pages: vec![vec![0; page_size]],
        }
    }

    /// Appends a page; its number.
    pub fn add(&mut self, page: Vec<u8>) -> u32 {
        self.pages.push(page);
        self.pages.len() as u32
    }

    /// A table leaf cell for a row, its overflow pages added when it spills.
    pub fn cell(&mut self, rowid: i64, payload: &[u8]) -> Vec<u8> {
        let size = self.page_size;
        let local = local_payload(payload.len(), size);
        let mut cell = varint_bytes(payload.len() as u64);
        cell.extend(varint_bytes(rowid as u64));
        cell.extend_from_slice(&payload[..local]);
        if local < payload.len() {
            let chunks: Vec<&[u8]> = payload[local..].chunks(size - 4).collect();
            let first = self.pages.len() as u32 + 1;
            for (i, chunk) in chunks.iter().enumerate() {
                let next = if i + 1 < chunks.len() {
                    first + i as u32 + 1
                } else {
                    0
                };
                let mut p = next.to_be_bytes().to_vec();
                p.extend_from_slice(chunk);
                p.resize(size, 0);
                self.add(p);
            }
            cell.extend_from_slice(&first.to_be_bytes());
        }
        cell
    }

    /// The whole file, page 1 holding the schema rows (table name, root page).
    pub fn bytes(&mut self, schema: &[(&str, u32)]) -> Vec<u8> {
        let cells: Vec<Vec<u8>> = schema
            .iter()
            .enumerate()
            .map(|(i, (name, root))| {
                let sql = format!("CREATE TABLE {name} (hnum INTEGER PRIMARY KEY, blob BLOB)");
                let r = record(&[
                    V::Text("table"),
                    V::Text(name),
                    V::Text(name),
                    V::Int(i64::from(*root)),
                    V::Text(&sql),
                ]);
                self.cell(i as i64 + 1, &r)
            })
            .collect();
        let mut first = page(self.page_size, true, 0x0d, &cells, None);
        let h = &mut first[..100];
        h[..16].copy_from_slice(MAGIC);
        h[16..18].copy_from_slice(&(self.page_size as u16).to_be_bytes());
        h[18] = 2;
        h[19] = 2;
        h[21..24].copy_from_slice(&[64, 32, 32]);
        h[24..28].copy_from_slice(&7u32.to_be_bytes());
        h[28..32].copy_from_slice(&(self.pages.len() as u32).to_be_bytes());
        h[44..48].copy_from_slice(&4u32.to_be_bytes());
        h[56..60].copy_from_slice(&1u32.to_be_bytes());
        h[92..96].copy_from_slice(&7u32.to_be_bytes());
        self.pages[0] = first;
        self.pages.concat()
    }
}

/// A b-tree page of `size` bytes and `kind` holding `cells` (packed at its end), with
/// a right child for interior pages. Panics when the cells do not fit.
pub fn page(size: usize, first: bool, kind: u8, cells: &[Vec<u8>], right: Option<u32>) -> Vec<u8> {
    let mut p = vec![0u8; size];
    let start = if first { 100 } else { 0 };
    p[start] = kind;
    p[start + 3..start + 5].copy_from_slice(&(cells.len() as u16).to_be_bytes());
    let array = start + if right.is_some() { 12 } else { 8 };
    if let Some(r) = right {
        p[start + 8..start + 12].copy_from_slice(&r.to_be_bytes());
    }
    let mut end = size;
    for (i, c) in cells.iter().enumerate() {
        end = end
            .checked_sub(c.len())
            .filter(|e| *e >= array + 2 * cells.len())
            .expect("test SQLite writer: the cells do not fit on one page");
        p[end..end + c.len()].copy_from_slice(c);
        p[array + 2 * i..array + 2 * i + 2].copy_from_slice(&(end as u16).to_be_bytes());
    }
    p[start + 5..start + 7].copy_from_slice(&(end as u16).to_be_bytes());
    p
}

/// An interior table b-tree cell: the left child and its largest rowid.
pub fn interior_cell(child: u32, key: i64) -> Vec<u8> {
    [child.to_be_bytes().to_vec(), varint_bytes(key as u64)].concat()
}
