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

use std::collections::HashMap;

use crate::facts::{BinaryFile, FactError};

mod btree;
mod record;
mod wal;

pub use record::decode_record;
use wal::read_wal;

/// The largest record (row) read, overflow pages included.
pub const MAX_PAYLOAD: u64 = 64 * 1024 * 1024;

const MAGIC: &[u8; 16] = b"SQLite format 3\0";
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
mod tests;
