//! The files under `/download/` (agent binaries, packages): streamed from disk in
//! small chunks, never read whole into memory; each file's SHA-256 computed once per
//! (path, size, modification time) and then answered from memory; at most
//! `max_concurrent_downloads` served at the same time.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use prometheus_client::metrics::counter::Counter;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why a download cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// No regular file of that name in the download directory.
    #[error("{0} is not available for download")]
    NotFound(String),
    /// Every download slot is taken.
    #[error("{0} downloads are being served; retry in a few seconds")]
    Busy(usize),
}

/// A file opened for download, holding its slot until dropped.
pub struct Opened {
    pub file: tokio::fs::File,
    pub len: u64,
    pub slot: OwnedSemaphorePermit,
}

/// The download directory, its slots and its checksum cache.
pub struct Downloads {
    dir: PathBuf,
    max: usize,
    slots: Arc<Semaphore>,
    /// File name → (size, modification time, SHA-256 hex).
    sums: Mutex<HashMap<String, (u64, SystemTime, String)>>,
    /// Requests refused because every slot was taken.
    busy: Counter,
}

impl Downloads {
    /// `busy` counts the requests refused because every slot was taken.
    pub fn new(dir: PathBuf, max: usize, busy: Counter) -> Downloads {
        Downloads {
            dir,
            max,
            slots: Arc::new(Semaphore::new(max)),
            sums: Mutex::new(HashMap::new()),
            busy,
        }
    }

    fn slot(&self) -> Result<OwnedSemaphorePermit, DownloadError> {
        self.slots.clone().try_acquire_owned().map_err(|_| {
            self.busy.inc();
            DownloadError::Busy(self.max)
        })
    }

    /// The regular file `name` (already checked to be a plain file name): its path,
    /// size and modification time.
    async fn stat(&self, name: &str) -> Result<(PathBuf, u64, SystemTime), DownloadError> {
        let path = self.dir.join(name);
        let meta = tokio::fs::metadata(&path)
            .await
            .map_err(|_| DownloadError::NotFound(name.into()))?;
        // Never open a FIFO or device: opening one can block forever.
        if !meta.is_file() {
            return Err(DownloadError::NotFound(name.into()));
        }
        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        Ok((path, meta.len(), mtime))
    }

    /// Opens `name` for streaming, taking a slot.
    pub async fn open(&self, name: &str) -> Result<Opened, DownloadError> {
        let (path, _, _) = self.stat(name).await?;
        let slot = self.slot()?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|_| DownloadError::NotFound(name.into()))?;
        let len = file
            .metadata()
            .await
            .map_err(|_| DownloadError::NotFound(name.into()))?
            .len();
        Ok(Opened { file, len, slot })
    }

    /// The SHA-256 (lowercase hex) of `name`, computed once per size and
    /// modification time; computing it takes a slot.
    pub async fn sha256(&self, name: &str) -> Result<String, DownloadError> {
        let (path, len, mtime) = self.stat(name).await?;
        if let Some((l, m, sum)) = self.cached(name) {
            if l == len && m == mtime {
                return Ok(sum);
            }
        }
        let _slot = self.slot()?;
        let sum = tokio::task::spawn_blocking(move || hash_file(&path))
            .await
            .ok()
            .flatten()
            .ok_or_else(|| DownloadError::NotFound(name.into()))?;
        // Cache only if the file did not change while it was read.
        if let Ok((_, l, m)) = self.stat(name).await {
            if l == len && m == mtime {
                self.sums
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(name.to_string(), (len, mtime, sum.clone()));
            }
        }
        Ok(sum)
    }

    fn cached(&self, name: &str) -> Option<(u64, SystemTime, String)> {
        self.sums
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }
}

fn hash_file(path: &Path) -> Option<String> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Some(
        ctx.finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sums_are_cached_until_the_file_changes_and_slots_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"abc").unwrap();
        let busy = Counter::default();
        let d = Downloads::new(dir.path().to_path_buf(), 1, busy.clone());
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(d.sha256("a").await.unwrap(), abc);
        assert_eq!(d.cached("a").unwrap().2, abc);
        std::fs::write(dir.path().join("a"), b"abcd").unwrap();
        assert_ne!(d.sha256("a").await.unwrap(), abc);
        let held = d.open("a").await.unwrap();
        assert_eq!(held.len, 4);
        assert!(matches!(d.open("a").await, Err(DownloadError::Busy(1))));
        assert_eq!(busy.get(), 1);
        drop(held);
        assert!(d.open("a").await.is_ok());
        assert!(matches!(
            d.open("missing").await,
            Err(DownloadError::NotFound(_))
        ));
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        assert!(matches!(
            d.open("sub").await,
            Err(DownloadError::NotFound(_))
        ));
    }
}
