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
                    other => {
                        return Err(self.bad(format!(
                            "the schema gives table {name} the root page {other:?}, not a page of the database"
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
