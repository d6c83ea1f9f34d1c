//! Durability: sled's own flush is not a barrier, so a sync also `fsync`s every file
//! of the database; concurrent callers share one such flush (group commit).

use std::path::Path;
use std::sync::{Condvar, Mutex};

use super::*;

/// Group commit: a caller of `sync` waits for a flush that *started* after its call
/// and shares it with every caller that arrived meanwhile.
#[derive(Default)]
pub(super) struct GroupCommit {
    state: Mutex<SyncState>,
    done: Condvar,
}

pub(super) struct SyncState {
    /// Flushes started and finished so far (numbered from 1).
    started: u64,
    finished: u64,
    running: bool,
    /// The outcome of flush number `finished`.
    last: std::result::Result<(), String>,
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
    fsync_tree(dir, false)
}

pub(super) fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    fsync_tree(dir, true)
}

pub(super) fn fsync_tree(dir: &Path, skip_log: bool) -> std::io::Result<()> {
    // sled creates and removes files as it works (snapshots, blobs): one that is gone
    // between listing and opening holds nothing left to make durable.
    let gone = |r: std::io::Result<()>| match r {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    };
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if skip_log && entry.file_name() == LOG_DIR {
            continue; // the result log syncs what it wrote itself
        }
        gone(entry.file_type().and_then(|ft| {
            if ft.is_dir() {
                fsync_tree(&entry.path(), skip_log)
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
    pub(super) fn flush_and_fsync(&self) -> std::result::Result<(), String> {
        // Chunks before the locators that point at them.
        self.log.sync().map_err(|e| e.to_string())?;
        self.db.flush().map_err(|e| e.to_string())?;
        fsync_dir(&self.dir).map_err(|e| e.to_string())
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
                return st.last.clone().map_err(StoreError::Backend);
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
            st.last = outcome;
            g.done.notify_all();
        }
    }
}
