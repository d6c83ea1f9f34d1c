//! Durability: sled's own flush is not a barrier, so a sync also `fsync`s every file
//! of the database; concurrent callers share one such flush (group commit).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use super::*;

/// Group commit: a caller of `sync` waits for a flush that *started* after its call
/// and shares it with every caller that arrived meanwhile.
#[derive(Default)]
pub(super) struct GroupCommit {
    state: Mutex<SyncState>,
    done: Condvar,
    /// What the last flush saw of the database's files (only the flush uses it).
    seen: Mutex<SeenFiles>,
}

/// The database's files as the last flush left them durable: path → size.
///
/// sled writes into its `db` file all the time, so every flush `fdatasync`s it. Its
/// other files (`conf`, blobs, snapshots) are written whole when created and never
/// again, so only a path not seen before, or seen with another size, needs an
/// `fsync`, and its directory with it (the entry is new). An `fsync` of a file or
/// directory with nothing to write still costs a device flush here (1.5–3 ms each,
/// measured), and the flush used to make four of them every time.
#[derive(Default)]
pub(super) struct SeenFiles(HashMap<PathBuf, u64>);

pub(super) struct SyncState {
    /// Flushes started and finished so far (numbered from 1).
    started: u64,
    finished: u64,
    running: bool,
    /// The outcome of flush number `finished`.
    last: std::result::Result<(), Arc<StoreError>>,
}

impl Default for SyncState {
    fn default() -> Self {
        SyncState {
            started: 0,
            finished: 0,
            running: false,
            last: Ok(()),
        }
    }
}

/// sled's page cache. Its default (1 GiB) is most of a small collector's memory;
/// the hot pages (indexes, counters, recent scans) fit in far less.
pub(super) const CACHE_BYTES: u64 = 128 << 20;

/// How long an open waits for sled's lock (see [`open_db`]).
pub(super) const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens sled. Its file lock outlives a dropped instance for a moment (its flusher
/// thread lets go last), so a reopen in the same process, or a restart right after a
/// stop, waits up to `wait` for the lock; `None` when another process still holds it.
pub(super) fn open_db(dir: &Path, wait: std::time::Duration) -> Result<Option<sled::Db>> {
    let mut waited = std::time::Duration::ZERO;
    loop {
        match sled::Config::new()
            .path(dir)
            .cache_capacity(CACHE_BYTES)
            .open()
        {
            Ok(db) => return Ok(Some(db)),
            // sled reports the lock as `Other` with the cause in words.
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                if waited >= wait {
                    return Ok(None);
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
                waited += std::time::Duration::from_millis(50);
            }
            Err(e) => return Err(backend(e)),
        }
    }
}

/// The bytes of the files under `dir` (the database and the result files).
pub(super) fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => 0,
        })
        .sum()
}

/// `fsync`s every file and directory under `dir`, the result log's included (a
/// store just written by a restore).
pub(in crate::store) fn fsync_dir_all(dir: &Path) -> std::io::Result<()> {
    fsync_tree(dir)
}

/// The file sled writes all the time; every flush makes it durable.
const SLED_DB_FILE: &str = "db";

/// Makes the database under `dir` durable (the result log aside, which syncs what
/// it writes itself): `fdatasync` of sled's `db` file, then an `fsync` of every
/// other file that is new or changed size since the last call, and of each
/// directory whose entries changed. Returns the paths it synced, for tests.
pub(super) fn fsync_changed(dir: &Path, seen: &mut SeenFiles) -> std::io::Result<Vec<PathBuf>> {
    let mut synced = Vec::new();
    let mut found = HashMap::new();
    changed_in(dir, true, seen, &mut found, &mut synced)?;
    seen.0 = found;
    Ok(synced)
}

fn changed_in(
    dir: &Path,
    top: bool,
    seen: &SeenFiles,
    found: &mut HashMap<PathBuf, u64>,
    synced: &mut Vec<PathBuf>,
) -> std::io::Result<bool> {
    let gone = |r: std::io::Result<()>| match r {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    };
    let mut entries_changed = !seen.0.contains_key(dir);
    found.insert(dir.to_path_buf(), 0);
    let before = seen.0.keys().filter(|p| p.parent() == Some(dir)).count();
    let mut now = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if top && name == LOG_DIR {
            continue; // the result log syncs what it wrote itself
        }
        let path = entry.path();
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            now += 1;
            entries_changed |= !seen.0.contains_key(&path);
            changed_in(&path, false, seen, found, synced)?;
        } else if ft.is_file() {
            now += 1;
            if top && name == SLED_DB_FILE {
                gone(std::fs::File::open(&path).and_then(|f| f.sync_data()))?;
                found.insert(path.clone(), 0);
                synced.push(path);
                continue;
            }
            // sled creates and removes files as it works: one gone between listing
            // and opening holds nothing left to make durable.
            let Ok(len) = entry.metadata().map(|m| m.len()) else {
                continue;
            };
            if seen.0.get(&path) != Some(&len) {
                entries_changed |= !seen.0.contains_key(&path);
                gone(std::fs::File::open(&path).and_then(|f| f.sync_all()))?;
                synced.push(path.clone());
            }
            found.insert(path, len);
        }
    }
    // A file removed since: its directory changed too.
    entries_changed |= now != before;
    if entries_changed {
        std::fs::File::open(dir)?.sync_all()?;
        synced.push(dir.to_path_buf());
    }
    Ok(entries_changed)
}

fn fsync_tree(dir: &Path) -> std::io::Result<()> {
    // sled creates and removes files as it works (snapshots, blobs): one that is gone
    // between listing and opening holds nothing left to make durable.
    let gone = |r: std::io::Result<()>| match r {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    };
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        gone(entry.file_type().and_then(|ft| {
            if ft.is_dir() {
                fsync_tree(&entry.path())
            } else if ft.is_file() {
                std::fs::File::open(entry.path())?.sync_all()
            } else {
                Ok(())
            }
        }))?;
    }
    std::fs::File::open(dir)?.sync_all()
}

impl SledStore {
    pub(super) fn flush_and_fsync(&self) -> Result<()> {
        // Writes held by ingest rounds first: every caller waiting on this flush made
        // its writes before the flush started, so one batch per tree serves them all.
        self.settle_all()?;
        // Chunks before the locators that point at them.
        self.log.sync()?;
        self.db.flush()?;
        let mut seen = self.group.seen.lock().unwrap_or_else(|p| p.into_inner());
        Ok(fsync_changed(&self.dir, &mut seen).map(drop)?)
    }

    /// Makes every write before the call durable, sharing one flush with every caller
    /// that arrives meanwhile.
    pub(super) fn group_sync(&self) -> Result<()> {
        let g = &self.group;
        let mut st = g.state.lock().unwrap_or_else(|p| p.into_inner());
        // A flush already running may have missed this caller's writes: only one
        // that starts from now on counts.
        let wanted = st.started + 1;
        loop {
            if st.finished >= wanted {
                return st.last.clone().map_err(StoreError::Shared);
            }
            if st.running {
                st = g.done.wait(st).unwrap_or_else(|p| p.into_inner());
                continue;
            }
            st.running = true;
            st.started += 1;
            let number = st.started;
            drop(st);
            let outcome = self.flush_and_fsync();
            st = g.state.lock().unwrap_or_else(|p| p.into_inner());
            st.running = false;
            st.finished = number;
            st.last = outcome.map_err(Arc::new);
            g.done.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flush_syncs_sleds_db_always_and_other_files_only_when_new_or_grown() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let write = |p: &str, b: &[u8]| std::fs::write(d.join(p), b).unwrap();
        std::fs::create_dir_all(d.join("blobs")).unwrap();
        std::fs::create_dir_all(d.join(LOG_DIR)).unwrap();
        write("db", b"pages");
        write("conf", b"settings");
        write(&format!("{LOG_DIR}/day-1"), b"chunks");
        let rel = |v: Vec<PathBuf>| {
            let mut v: Vec<String> = v
                .iter()
                .map(|p| p.strip_prefix(d).unwrap().display().to_string())
                .collect();
            v.sort();
            v
        };
        let mut seen = SeenFiles::default();
        // The first flush after an open syncs everything (the result log aside).
        let first = rel(fsync_changed(d, &mut seen).unwrap());
        assert_eq!(first, ["", "blobs", "conf", "db"]);
        // Nothing new: only sled's db file, which changes all the time.
        write("db", b"more pages");
        assert_eq!(rel(fsync_changed(d, &mut seen).unwrap()), ["db"]);
        // A new blob: the blob and its directory.
        write("blobs/7", b"value");
        assert_eq!(
            rel(fsync_changed(d, &mut seen).unwrap()),
            ["blobs", "blobs/7", "db"]
        );
        // A file seen half-written is synced again once it has grown.
        write("blobs/7", b"value, whole");
        assert_eq!(rel(fsync_changed(d, &mut seen).unwrap()), ["blobs/7", "db"]);
        // A file added, then removed: its directory changed each time.
        write("snap.1", b"s");
        assert_eq!(
            rel(fsync_changed(d, &mut seen).unwrap()),
            ["", "db", "snap.1"]
        );
        std::fs::remove_file(d.join("snap.1")).unwrap();
        assert_eq!(rel(fsync_changed(d, &mut seen).unwrap()), ["", "db"]);
        assert_eq!(rel(fsync_changed(d, &mut seen).unwrap()), ["db"]);
    }
}
