//! Result chunks kept outside sled, in append-only files, one per UTC day.
//!
//! sled keeps values inside its tree nodes and rewrites a node whole when it
//! consolidates it, so a store whose bulk is result chunks (a few KB each, 3–4 per
//! scan) writes each chunk many times over and grows its log accordingly. Here a
//! chunk is written once, to the end of the day's file, and sled keeps only a
//! 17-byte [`Locator`]. Retention then frees space by deleting whole day files.
//!
//! A record is `magic (4) | length (u32 BE) | payload`. The payload is a zstd frame
//! with its content checksum, so a record torn by a crash (one that was never
//! acknowledged: acknowledgements wait for [`ResultLog::sync`]) reads as damaged, not
//! as other data.
//!
//! Durability: [`ResultLog::sync`] `fdatasync`s every file appended to since the
//! last sync (and the directory when a file was created). The store calls it before
//! it flushes sled, so a locator made durable by that flush points at durable bytes.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The first bytes of every record.
const MAGIC: &[u8; 4] = b"RRC1";
const HEADER: u64 = 8;
/// The locator's first byte, so that other values in the same tree are told apart.
pub const LOCATOR_TAG: u8 = b'L';
const LOCATOR_LEN: usize = 17;
/// Largest record read back: far above a compressed batch.
const MAX_RECORD: u32 = 64 << 20;
const DAY_MS: i64 = 86_400_000;

/// Where a record is: day file, offset of its header, payload length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locator {
    pub day: u32,
    pub offset: u64,
    pub len: u32,
}

impl Locator {
    pub fn encode(&self) -> [u8; LOCATOR_LEN] {
        let mut b = [0u8; LOCATOR_LEN];
        b[0] = LOCATOR_TAG;
        b[1..5].copy_from_slice(&self.day.to_be_bytes());
        b[5..13].copy_from_slice(&self.offset.to_be_bytes());
        b[13..17].copy_from_slice(&self.len.to_be_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Option<Locator> {
        if b.len() != LOCATOR_LEN || b[0] != LOCATOR_TAG {
            return None;
        }
        Some(Locator {
            day: u32::from_be_bytes(b[1..5].try_into().ok()?),
            offset: u64::from_be_bytes(b[5..13].try_into().ok()?),
            len: u32::from_be_bytes(b[13..17].try_into().ok()?),
        })
    }
}

/// The UTC day (days since 1970-01-01) of a time in milliseconds.
pub fn day_of(ms: i64) -> u32 {
    ms.div_euclid(DAY_MS).clamp(0, u32::MAX as i64) as u32
}

fn file_name(day: u32) -> String {
    format!("{day:08}.results")
}

/// Whether `name` is the name of a day file (`NNNNNNNN.results`).
pub fn is_day_file(name: &str) -> bool {
    day_of_name(name).is_some()
}

fn day_of_name(name: &str) -> Option<u32> {
    let d = name.strip_suffix(".results")?;
    (d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()))
        .then(|| d.parse().ok())
        .flatten()
}

struct Active {
    day: u32,
    file: Arc<File>,
    len: u64,
}

#[derive(Default)]
struct Dirty {
    files: HashMap<u32, Arc<File>>,
    /// A file was created since the last sync: the directory entry must be durable.
    dir: bool,
}

pub struct ResultLog {
    dir: PathBuf,
    active: Mutex<Option<Active>>,
    dirty: Mutex<Dirty>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ResultLog {
    pub fn open(dir: &Path) -> io::Result<ResultLog> {
        std::fs::create_dir_all(dir)?;
        Ok(ResultLog {
            dir: dir.to_path_buf(),
            active: Mutex::new(None),
            dirty: Mutex::new(Dirty::default()),
        })
    }

    fn path(&self, day: u32) -> PathBuf {
        self.dir.join(file_name(day))
    }

    /// Appends one record to the file of the day `now_ms` falls on.
    pub fn append(&self, payload: &[u8], now_ms: i64) -> io::Result<Locator> {
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l <= MAX_RECORD)
            .ok_or_else(|| io::Error::other("a result chunk over 64 MiB"))?;
        let day = day_of(now_ms);
        let mut active = lock(&self.active);
        if active.as_ref().is_none_or(|a| a.day != day) {
            let created = !self.path(day).exists();
            let file = OpenOptions::new()
                .create(true)
                .read(true)
                .append(true)
                .open(self.path(day))?;
            // A record torn by a crash may end the file: new ones go after it, and
            // the torn one is never pointed at by anything acknowledged.
            let len = file.metadata()?.len();
            *active = Some(Active {
                day,
                file: Arc::new(file),
                len,
            });
            if created {
                lock(&self.dirty).dir = true;
            }
        }
        let a = active.as_mut().expect("set above");
        let mut rec = Vec::with_capacity(HEADER as usize + payload.len());
        rec.extend_from_slice(MAGIC);
        rec.extend_from_slice(&len.to_be_bytes());
        rec.extend_from_slice(payload);
        let offset = a.len;
        // O_APPEND: the write lands at the end, which is `offset` while we hold the
        // lock. A short or failed write leaves `len` unknown: read it back.
        if let Err(e) = io::Write::write_all(&mut &*a.file, &rec) {
            a.len = a.file.metadata().map(|m| m.len()).unwrap_or(u64::MAX);
            return Err(e);
        }
        a.len += rec.len() as u64;
        lock(&self.dirty).files.insert(day, a.file.clone());
        Ok(Locator { day, offset, len })
    }

    /// The payload a locator points at.
    pub fn read(&self, loc: Locator) -> io::Result<Vec<u8>> {
        if loc.len > MAX_RECORD {
            return Err(io::Error::other(format!(
                "a locator of {} bytes (at most {MAX_RECORD})",
                loc.len
            )));
        }
        let file = File::open(self.path(loc.day))?;
        let mut header = [0u8; HEADER as usize];
        file.read_exact_at(&mut header, loc.offset)?;
        if &header[..4] != MAGIC || header[4..8] != loc.len.to_be_bytes() {
            return Err(io::Error::other(format!(
                "no result record at {}:{}",
                file_name(loc.day),
                loc.offset
            )));
        }
        let mut payload = vec![0u8; loc.len as usize];
        file.read_exact_at(&mut payload, loc.offset + HEADER)?;
        Ok(payload)
    }

    /// Makes every record appended so far durable.
    pub fn sync(&self) -> io::Result<()> {
        let taken = std::mem::take(&mut *lock(&self.dirty));
        let mut result = Ok(());
        for file in taken.files.values() {
            if let Err(e) = file.sync_data() {
                result = Err(e);
            }
        }
        if result.is_ok() && taken.dir {
            result = File::open(&self.dir).and_then(|d| d.sync_all());
        }
        if result.is_err() {
            // Nothing is dropped from the to-do list on failure: the next sync retries.
            let mut d = lock(&self.dirty);
            d.files.extend(taken.files);
            d.dir |= taken.dir;
        }
        result
    }

    /// Deletes the day files before `day` (never the one being appended to);
    /// returns how many and the bytes freed.
    pub fn remove_before(&self, day: u32) -> io::Result<(usize, u64)> {
        let active = lock(&self.active).as_ref().map(|a| a.day);
        let (mut n, mut bytes) = (0, 0);
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(d) = name.to_str().and_then(day_of_name) else {
                continue;
            };
            if d >= day || Some(d) == active {
                continue;
            }
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {
                    n += 1;
                    bytes += size;
                    lock(&self.dirty).files.remove(&d);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        if n > 0 {
            File::open(&self.dir)?.sync_all()?;
        }
        Ok((n, bytes))
    }

    /// Every day file, opened, with its name and its length now (a snapshot's view:
    /// an open file stays readable after it is deleted, and bytes appended later lie
    /// past the length), in day order.
    pub fn open_all(&self) -> io::Result<Vec<(String, u64, File)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let Some(name) = entry.file_name().to_str().map(String::from) else {
                continue;
            };
            if !is_day_file(&name) {
                continue;
            }
            let file = match File::open(entry.path()) {
                Ok(f) => f,
                // Deleted by retention between the listing and the open: nothing the
                // snapshot's locators point at (they went first).
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let len = file.metadata()?.len();
            out.push((name, len, file));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Bytes held by the day files.
    pub fn bytes(&self) -> io::Result<u64> {
        let mut total = 0;
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            if entry.file_name().to_str().and_then(day_of_name).is_some() {
                total += entry.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = DAY_MS;

    #[test]
    fn records_read_back_by_locator_across_days_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let log = ResultLog::open(dir.path()).unwrap();
        let a = log.append(b"first", 10 * DAY + 5).unwrap();
        let b = log.append(b"second", 10 * DAY + 6).unwrap();
        let c = log.append(b"next day", 11 * DAY).unwrap();
        log.sync().unwrap();
        assert_eq!((a.day, b.day, c.day), (10, 10, 11));
        assert_eq!(b.offset, HEADER + 5);
        drop(log);
        let log = ResultLog::open(dir.path()).unwrap();
        assert_eq!(log.read(a).unwrap(), b"first");
        assert_eq!(log.read(b).unwrap(), b"second");
        assert_eq!(log.read(c).unwrap(), b"next day");
        // Appends after a reopen go after what is there.
        let d = log.append(b"again", 10 * DAY + 9).unwrap();
        assert_eq!(d.offset, b.offset + HEADER + 6);
        assert_eq!(Locator::decode(&d.encode()), Some(d));
    }

    #[test]
    fn a_wrong_or_torn_locator_is_an_error_that_names_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let log = ResultLog::open(dir.path()).unwrap();
        let a = log.append(b"payload", 3 * DAY).unwrap();
        let off = Locator { offset: 3, ..a };
        let e = log.read(off).unwrap_err().to_string();
        assert!(e.contains("no result record at 00000003.results:3"), "{e}");
        let long = Locator { len: 100, ..a };
        assert!(log.read(long).is_err(), "length disagrees with the header");
        let past = Locator {
            offset: 1 << 20,
            ..a
        };
        assert!(log.read(past).is_err());
        let huge = Locator { len: u32::MAX, ..a };
        assert!(log.read(huge).unwrap_err().to_string().contains("at most"));
        assert_eq!(Locator::decode(b"junk"), None);
        // A crash that tore the last record: a new record still reads back.
        let f = OpenOptions::new()
            .append(true)
            .open(dir.path().join("00000003.results"))
            .unwrap();
        io::Write::write_all(&mut &f, b"RRC1\0\0").unwrap();
        drop(log);
        let log = ResultLog::open(dir.path()).unwrap();
        let b = log.append(b"after the tear", 3 * DAY).unwrap();
        assert_eq!(log.read(b).unwrap(), b"after the tear");
        assert_eq!(log.read(a).unwrap(), b"payload");
    }

    #[test]
    fn old_days_are_deleted_but_never_the_one_being_written() {
        let dir = tempfile::tempdir().unwrap();
        let log = ResultLog::open(dir.path()).unwrap();
        for day in [1, 2, 3] {
            log.append(&[7u8; 1000], day * DAY).unwrap();
        }
        log.append(b"x", DAY).unwrap(); // day 1 is now the active file
        std::fs::write(dir.path().join("notes.txt"), "kept").unwrap();
        log.sync().unwrap();
        let before = log.bytes().unwrap();
        let (n, freed) = log.remove_before(3).unwrap();
        assert_eq!(n, 1, "day 2 only: day 1 is being written to");
        assert_eq!(freed, 1008);
        assert_eq!(log.bytes().unwrap(), before - 1008);
        assert!(dir.path().join("notes.txt").exists());
        assert!(dir.path().join("00000001.results").exists());
        assert!(!dir.path().join("00000002.results").exists());
        log.append(b"y", 3 * DAY).unwrap();
        assert_eq!(
            log.remove_before(3).unwrap().0,
            1,
            "day 1 once it is not active"
        );
        log.sync().unwrap();
    }
}
