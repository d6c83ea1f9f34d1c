//! A small read-only reader of the SQLite file format, enough to list the rows of
//! one table: the 100-byte database header, table b-tree pages (interior and leaf),
//! overflow chains, records, and the `sqlite_schema` table on page 1 that names each
//! table's root page. Written from SQLite's published file-format description.
//!
//! The write-ahead log (`<db>-wal`) is read as SQLite recovers it: a 32-byte header
//! (magic, format version, page size, salts, checksum), then frames of a 24-byte
//! header (page number, database size after a commit or 0, the header's salts, a
//! running checksum) and one page. Frames count while their salts match the
//! header's and their checksums chain; the pages of every frame up to the last valid
//! commit frame replace the database file's, the last version of a page winning, and
//! that commit's size is the database's. A WAL whose header is invalid holds nothing
//! (SQLite treats it the same). The `-shm` file is only an index of the WAL that
//! SQLite rebuilds from it: it is never read. Nothing is ever written and no lock is
//! taken: the reader cannot disturb a running rpm, and never leaves a file behind.
//!
//! Every number read from the files is checked before it is used: page numbers
//! against the page count, offsets against the page, payload sizes against
//! [`MAX_PAYLOAD`], each b-tree and overflow page visited at most once per table
//! (a loop is an error, not a hang). Work and memory are bounded by the sizes of the
//! two files, which the caller caps.

use std::collections::{HashMap, HashSet};

use crate::facts::{BinaryFile, FactError};

/// The largest record (row) read, overflow pages included.
pub const MAX_PAYLOAD: u64 = 64 * 1024 * 1024;

const MAGIC: &[u8; 16] = b"SQLite format 3\0";
const WAL_MAGIC_LE: u32 = 0x377f_0682;
const WAL_MAGIC_BE: u32 = 0x377f_0683;
const WAL_VERSION: u32 = 3_007_000;
const WAL_HEADER: u64 = 32;
const FRAME_HEADER: u64 = 24;

/// One column value of a record. Text and blobs borrow the row's payload.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

/// An SQLite database opened for reading, with the committed pages of its WAL.
pub struct Database<'f> {
    file: &'f BinaryFile,
    wal: Option<&'f BinaryFile>,
    /// Page number → offset of its newest committed copy in the WAL.
    wal_pages: HashMap<u32, u64>,
    page_size: u32,
    usable: u32,
    pages: u32,
}

impl<'f> Database<'f> {
    /// Reads the header of `file` and the committed frames of `wal`, if given.
    pub fn open(file: &'f BinaryFile, wal: Option<&'f BinaryFile>) -> Result<Self, FactError> {
        let bad = |reason: String| malformed(file, reason);
        let mut header = [0u8; 100];
        if file.len() < 100 {
            return Err(bad(format!(
                "it is {} bytes long, too short for an SQLite database",
                file.len()
            )));
        }
        file.read_at(0, &mut header)?;
        if &header[..16] != MAGIC {
            return Err(bad(
                "it is not an SQLite 3 database (no header magic)".into()
            ));
        }
        let page_size = match be16(&header, 16) {
            1 => 65536,
            n => u32::from(n),
        };
        if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
            return Err(bad(format!("invalid page size {page_size}")));
        }
        // Byte 19 is the version needed to read: 1 (rollback journal) or 2 (WAL).
        if header[19] > 2 {
            return Err(bad(format!(
                "file format read version {} is newer than this reader",
                header[19]
            )));
        }
        let mut db = Database {
            file,
            wal: None,
            wal_pages: HashMap::new(),
            page_size,
            usable: page_size,
            pages: u32::try_from(file.len() / u64::from(page_size)).unwrap_or(u32::MAX),
        };
        if let Some(wal) = wal {
            if let Some(c) = read_wal(wal, page_size)? {
                db.wal = Some(wal);
                db.wal_pages = c.frames;
                db.pages = c.pages;
            }
        }
        if db.pages == 0 {
            return Err(bad("it holds no complete page".into()));
        }
        // Without committed WAL frames the file holds the whole database, and the
        // header's page count (valid when its change counter matches the one at
        // offset 92) says how much that is.
        let counted = be32(&header, 28);
        if db.wal.is_none() && counted != 0 && be32(&header, 24) == be32(&header, 92) {
            if counted > db.pages {
                return Err(bad(format!(
                    "its header counts {counted} pages of {page_size} bytes but the file holds \
                     {}: it is truncated",
                    db.pages
                )));
            }
            db.pages = counted;
        }
        // Page 1, as committed (it may be in the WAL), holds the header that counts.
        let first = db.page(1)?;
        if &first[..16] != MAGIC {
            return Err(bad("page 1 in the WAL is not an SQLite header".into()));
        }
        let reserved = u32::from(first[20]);
        db.usable = page_size - reserved.min(page_size);
        if db.usable < 480 {
            return Err(bad(format!(
                "{reserved} reserved bytes per page leave fewer than 480 usable"
            )));
        }
        match be32(&first, 56) {
            0 | 1 => {}
            2 | 3 => {
                return Err(bad(
                    "its text encoding is UTF-16; only UTF-8 databases are read".into(),
                ))
            }
            n => return Err(bad(format!("unknown text encoding {n}"))),
        }
        Ok(db)
    }

    /// Whether committed pages were read from the WAL.
    pub fn uses_wal(&self) -> bool {
        !self.wal_pages.is_empty()
    }

    /// The root page of the table named `name` (ASCII case ignored, as SQLite
    /// names are), from the schema table; `None` when there is no such table.
    pub fn table_root(&self, name: &str) -> Result<Option<u32>, FactError> {
        let mut found = None;
        self.scan_table(1, |rowid, payload| {
            let cols = decode_record(payload)
                .map_err(|r| self.bad(format!("schema row {rowid}: {r}")))?;
            let is = |i: usize, want: &str| {
                matches!(cols.get(i), Some(Value::Text(t)) if t.eq_ignore_ascii_case(want.as_bytes()))
            };
            if found.is_none() && is(0, "table") && is(1, name) {
                found = Some(match cols.get(3) {
                    Some(Value::Int(n)) if *n >= 1 && *n <= i64::from(self.pages) => *n as u32,
                    Some(Value::Int(n)) => {
                        return Err(self.bad(format!(
                            "table {name}'s root page {n} is out of range: the database has {} pages",
                            self.pages
                        )))
                    }
                    _ => {
                        return Err(self.bad(format!(
                            "the schema gives table {name} no root page number"
                        )))
                    }
                });
            }
            Ok(())
        })?;
        Ok(found)
    }

    /// Calls `row` with the rowid and the record of every row of the table b-tree
    /// rooted at page `root`, in no particular order. Each page is visited once: a
    /// page reached twice (a loop, or pages shared by two parents) is an error.
    pub fn scan_table(
        &self,
        root: u32,
        mut row: impl FnMut(i64, &[u8]) -> Result<(), FactError>,
    ) -> Result<(), FactError> {
        let mut seen = HashSet::new();
        let mut stack = vec![root];
        while let Some(n) = stack.pop() {
            if !seen.insert(n) {
                return Err(self.bad(format!("b-tree page {n} is reached twice (a loop)")));
            }
            let page = self.page(n)?;
            let start = if n == 1 { 100 } else { 0 };
            let kind = page[start];
            let interior = match kind {
                0x05 => true,
                0x0d => false,
                _ => {
                    return Err(self.bad(format!(
                        "page {n} is not a table b-tree page (type {kind:#04x})"
                    )))
                }
            };
            let cells = usize::from(be16(&page, start + 3));
            let array = start + if interior { 12 } else { 8 };
            let usable = self.usable as usize;
            if array + 2 * cells > usable {
                return Err(self.bad(format!(
                    "page {n} claims {cells} cells, more than it can hold"
                )));
            }
            if interior {
                stack.push(be32(&page, start + 8));
            }
            for i in 0..cells {
                let at = usize::from(be16(&page, array + 2 * i));
                if at < array + 2 * cells || at >= usable {
                    return Err(self.bad(format!(
                        "page {n} cell {i} is at offset {at}, outside the cell area"
                    )));
                }
                if interior {
                    if at + 4 > usable {
                        return Err(self.bad(format!("page {n} cell {i} runs past the page")));
                    }
                    stack.push(be32(&page, at));
                } else {
                    let (rowid, payload) = self.leaf_cell(&page, n, at, &mut seen)?;
                    row(rowid, &payload)?;
                }
            }
        }
        Ok(())
    }

    /// The rowid and whole payload of the table leaf cell at `at` on page `n`,
    /// following its overflow chain.
    fn leaf_cell(
        &self,
        page: &[u8],
        n: u32,
        at: usize,
        seen: &mut HashSet<u32>,
    ) -> Result<(i64, Vec<u8>), FactError> {
        let usable = self.usable as usize;
        let area = &page[..usable];
        let cell_err = |what: &str| self.bad(format!("page {n} cell at {at}: {what}"));
        let (size, a) = varint(area, at).ok_or_else(|| cell_err("truncated payload size"))?;
        let (rowid, b) = varint(area, a).ok_or_else(|| cell_err("truncated rowid"))?;
        if size > MAX_PAYLOAD {
            return Err(cell_err(&format!(
                "a record of {size} bytes, more than the {MAX_PAYLOAD}-byte limit"
            )));
        }
        let size = size as usize;
        let local = local_payload(size, usable);
        let end = b + local;
        let needs = end + if local < size { 4 } else { 0 };
        if needs > usable {
            return Err(cell_err("its payload runs past the page"));
        }
        let mut payload = Vec::with_capacity(local);
        payload.extend_from_slice(&area[b..end]);
        let mut next = if local < size { be32(area, end) } else { 0 };
        let chunk = usable - 4;
        while payload.len() < size {
            if next == 0 {
                return Err(cell_err(&format!(
                    "its overflow chain ends after {} of {size} bytes",
                    payload.len()
                )));
            }
            if !seen.insert(next) {
                return Err(cell_err(&format!(
                    "overflow page {next} is reached twice (a loop)"
                )));
            }
            let over = self.page(next)?;
            let take = chunk.min(size - payload.len());
            payload.extend_from_slice(&over[4..4 + take]);
            next = be32(&over, 0);
        }
        Ok((rowid as i64, payload))
    }

    /// Page `n` (1-based) as committed: from the WAL when it holds the page, else
    /// from the database file.
    fn page(&self, n: u32) -> Result<Vec<u8>, FactError> {
        if n == 0 || n > self.pages {
            return Err(self.bad(format!(
                "page {n} is out of range: the database has {} pages",
                self.pages
            )));
        }
        let mut buf = vec![0u8; self.page_size as usize];
        match (self.wal, self.wal_pages.get(&n)) {
            (Some(wal), Some(&at)) => wal.read_at(at, &mut buf)?,
            _ => {
                let at = u64::from(n - 1) * u64::from(self.page_size);
                if at + u64::from(self.page_size) > self.file.len() {
                    return Err(self.bad(format!(
                        "page {n} is past the end of the file ({} bytes): it is truncated",
                        self.file.len()
                    )));
                }
                self.file.read_at(at, &mut buf)?
            }
        }
        Ok(buf)
    }

    fn bad(&self, reason: String) -> FactError {
        malformed(self.file, reason)
    }
}

/// How much of a table leaf cell's payload of `size` bytes is stored on the page,
/// with `usable` bytes per page (the rest is in overflow pages).
fn local_payload(size: usize, usable: usize) -> usize {
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

/// What the committed transactions of a WAL hold.
struct Committed {
    /// The database size in pages after the last valid commit.
    pages: u32,
    /// Page number → offset of its newest committed copy.
    frames: HashMap<u32, u64>,
}

/// The committed state of a WAL; `None` when it holds no committed transaction
/// (empty, a header SQLite would ignore, no valid commit frame).
fn read_wal(wal: &BinaryFile, page_size: u32) -> Result<Option<Committed>, FactError> {
    if wal.len() < WAL_HEADER {
        return Ok(None);
    }
    let mut header = [0u8; WAL_HEADER as usize];
    wal.read_at(0, &mut header)?;
    let big_endian = match be32(&header, 0) {
        WAL_MAGIC_LE => false,
        WAL_MAGIC_BE => true,
        _ => return Ok(None),
    };
    if be32(&header, 4) != WAL_VERSION {
        return Err(malformed(
            wal,
            format!("unknown WAL format version {}", be32(&header, 4)),
        ));
    }
    let sum = checksum((0, 0), &header[..24], big_endian);
    if sum != (be32(&header, 24), be32(&header, 28)) {
        return Ok(None);
    }
    let wal_page = be32(&header, 8);
    if wal_page != page_size {
        return Err(malformed(
            wal,
            format!("its page size {wal_page} is not the database's {page_size}"),
        ));
    }
    let salts = (be32(&header, 16), be32(&header, 20));
    let frame_len = FRAME_HEADER + u64::from(page_size);
    let frames = (wal.len() - WAL_HEADER) / frame_len;
    let mut frame = vec![0u8; frame_len as usize];
    let mut sum = sum;
    let mut committed: HashMap<u32, u64> = HashMap::new();
    let mut pending: Vec<(u32, u64)> = Vec::new();
    let mut size = None;
    for i in 0..frames {
        let at = WAL_HEADER + i * frame_len;
        wal.read_at(at, &mut frame)?;
        let page = be32(&frame, 0);
        let commit = be32(&frame, 4);
        if page == 0 || (be32(&frame, 8), be32(&frame, 12)) != salts {
            break;
        }
        let next = checksum(sum, &frame[..8], big_endian);
        let next = checksum(next, &frame[FRAME_HEADER as usize..], big_endian);
        if next != (be32(&frame, 16), be32(&frame, 20)) {
            break;
        }
        sum = next;
        pending.push((page, at + FRAME_HEADER));
        if commit != 0 {
            committed.extend(pending.drain(..));
            size = Some(commit);
        }
    }
    Ok(size.map(|pages| Committed {
        pages,
        frames: committed,
    }))
}

/// SQLite's WAL checksum: the data as 32-bit words (in the byte order the WAL's
/// magic names), summed in pairs into a running pair, wrapping.
fn checksum(start: (u32, u32), data: &[u8], big_endian: bool) -> (u32, u32) {
    let (mut s0, mut s1) = start;
    for pair in data.chunks_exact(8) {
        let word = |b: &[u8]| {
            let b = [b[0], b[1], b[2], b[3]];
            if big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        s0 = s0.wrapping_add(word(&pair[..4])).wrapping_add(s1);
        s1 = s1.wrapping_add(word(&pair[4..])).wrapping_add(s0);
    }
    (s0, s1)
}

/// The columns of a record: a header (its own length as a varint, then one serial
/// type per column) and the values in order. Every length is checked against the
/// payload.
pub fn decode_record(payload: &[u8]) -> Result<Vec<Value<'_>>, String> {
    let (header_len, mut at) = varint(payload, 0).ok_or("truncated record header")?;
    let header_len = usize::try_from(header_len)
        .ok()
        .filter(|h| *h >= at && *h <= payload.len())
        .ok_or_else(|| {
            format!(
                "a record header of {header_len} bytes in a {}-byte record",
                payload.len()
            )
        })?;
    let mut body = header_len;
    let mut cols = Vec::new();
    while at < header_len {
        let (serial, next) = varint(&payload[..header_len], at).ok_or("truncated serial type")?;
        at = next;
        let len: usize = match serial {
            0 | 8 | 9 => 0,
            1..=4 => serial as usize,
            5 => 6,
            6 | 7 => 8,
            10 | 11 => return Err(format!("reserved serial type {serial}")),
            n => ((n - 12) / 2) as usize,
        };
        let bytes = payload
            .get(body..)
            .and_then(|rest| rest.get(..len))
            .ok_or_else(|| format!("column {} runs past the record", cols.len()))?;
        body += len;
        cols.push(match serial {
            0 => Value::Null,
            8 => Value::Int(0),
            9 => Value::Int(1),
            1..=6 => {
                // Big-endian two's complement of 1 to 8 bytes, sign-extended.
                let mut v: i64 = if bytes[0] & 0x80 != 0 { -1 } else { 0 };
                for b in bytes {
                    v = (v << 8) | i64::from(*b);
                }
                Value::Int(v)
            }
            7 => Value::Real(f64::from_be_bytes(bytes.try_into().unwrap_or([0; 8]))),
            n if n % 2 == 0 => Value::Blob(bytes),
            _ => Value::Text(bytes),
        });
    }
    Ok(cols)
}

/// A SQLite varint at `at`: 1 to 9 bytes, big-endian, seven bits a byte with the
/// high bit saying another follows, all eight bits of a ninth. The value and the
/// offset after it, or `None` when it runs past `buf`.
fn varint(buf: &[u8], at: usize) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for i in 0..9 {
        let b = *buf.get(at + i)?;
        if i == 8 {
            return Some(((v << 8) | u64::from(b), at + 9));
        }
        v = (v << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            return Some((v, at + i + 1));
        }
    }
    None
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn malformed(file: &BinaryFile, reason: String) -> FactError {
    FactError::Malformed {
        path: file.path().to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Facts;
    use std::fs;

    const PAGE: usize = 512;

    fn varint_bytes(mut v: u64) -> Vec<u8> {
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
    enum V<'a> {
        Null,
        Int(i64),
        Text(&'a str),
        Blob(&'a [u8]),
    }

    fn record(values: &[V]) -> Vec<u8> {
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

    /// A database of 512-byte pages under construction; page 1 (the schema) is made
    /// last, by [`Db::bytes`].
    struct Db {
        pages: Vec<Vec<u8>>,
    }

    impl Db {
        fn new() -> Db {
            Db {
                pages: vec![vec![0; PAGE]],
            }
        }

        fn add(&mut self, page: Vec<u8>) -> u32 {
            self.pages.push(page);
            self.pages.len() as u32
        }

        /// A table leaf cell for a row, its overflow pages added when it spills.
        fn cell(&mut self, rowid: i64, payload: &[u8]) -> Vec<u8> {
            let local = local_payload(payload.len(), PAGE);
            let mut cell = varint_bytes(payload.len() as u64);
            cell.extend(varint_bytes(rowid as u64));
            cell.extend_from_slice(&payload[..local]);
            if local < payload.len() {
                let chunks: Vec<&[u8]> = payload[local..].chunks(PAGE - 4).collect();
                let first = self.pages.len() as u32 + 1;
                for (i, chunk) in chunks.iter().enumerate() {
                    let next = if i + 1 < chunks.len() {
                        first + i as u32 + 1
                    } else {
                        0
                    };
                    let mut p = next.to_be_bytes().to_vec();
                    p.extend_from_slice(chunk);
                    p.resize(PAGE, 0);
                    self.add(p);
                }
                cell.extend_from_slice(&first.to_be_bytes());
            }
            cell
        }

        /// The whole file, page 1 holding the schema rows (name, root page).
        fn bytes(&mut self, schema: &[(&str, u32)]) -> Vec<u8> {
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
            let mut first = page(true, 0x0d, &cells, None);
            let h = &mut first[..100];
            h[..16].copy_from_slice(MAGIC);
            h[16..18].copy_from_slice(&(PAGE as u16).to_be_bytes());
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

    /// A b-tree page of `kind` holding `cells` (packed at its end), with a right
    /// child for interior pages.
    fn page(first: bool, kind: u8, cells: &[Vec<u8>], right: Option<u32>) -> Vec<u8> {
        let mut p = vec![0u8; PAGE];
        let start = if first { 100 } else { 0 };
        p[start] = kind;
        p[start + 3..start + 5].copy_from_slice(&(cells.len() as u16).to_be_bytes());
        let array = start + if right.is_some() { 12 } else { 8 };
        if let Some(r) = right {
            p[start + 8..start + 12].copy_from_slice(&r.to_be_bytes());
        }
        let mut end = PAGE;
        for (i, c) in cells.iter().enumerate() {
            end -= c.len();
            p[end..end + c.len()].copy_from_slice(c);
            p[array + 2 * i..array + 2 * i + 2].copy_from_slice(&(end as u16).to_be_bytes());
        }
        p[start + 5..start + 7].copy_from_slice(&(end as u16).to_be_bytes());
        p
    }

    fn interior_cell(child: u32, key: i64) -> Vec<u8> {
        [child.to_be_bytes().to_vec(), varint_bytes(key as u64)].concat()
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
        let mut db = Db::new();
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
            let mut db = Db::new();
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
        let mut db = Db::new();
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
        let mut db = Db::new();
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
        let mut grown = Db::new();
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
}
