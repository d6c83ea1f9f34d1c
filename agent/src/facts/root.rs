//! [`Facts`]: the scan root, the per-scan memo, and reads confined to the root
//! (symlinks resolved inside it, size limits, special files never opened).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::{BinaryFile, FactError, FileMeta, FileStamp, MAX_CONFIG_BYTES, MAX_SYMLINK_HOPS};

type MemoCell = Arc<OnceLock<Arc<dyn Any + Send + Sync>>>;

/// The facts of one scan, rooted at one directory.
pub struct Facts {
    root: PathBuf,
    live: bool,
    memo: Mutex<HashMap<(TypeId, String), MemoCell>>,
    cancel: Arc<AtomicBool>,
}

impl Facts {
    /// Facts of the tree at `root`. `live` says whether `/proc`, `/sys` and `/run`
    /// under the root describe a running system (true for `/`, and for test fixtures
    /// that supply them).
    pub fn new(root: &Path, live: bool) -> Facts {
        Facts::with_cancel(root, live, Arc::new(AtomicBool::new(false)))
    }

    /// Like [`Facts::new`], for a scan that stops early once `cancel` is set: the
    /// engine checks it between rules and the filesystem walk in every directory.
    pub fn with_cancel(root: &Path, live: bool, cancel: Arc<AtomicBool>) -> Facts {
        Facts {
            root: root.to_path_buf(),
            live,
            memo: Mutex::new(HashMap::new()),
            cancel,
        }
    }

    /// Whether the scan was cancelled; what it computes from now on is discarded.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// The scan root on the host.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Whether runtime facts (/proc, /sys, /run) describe a running system.
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Computes a fact once per scan under `key` and shares it. Concurrent callers
    /// of the same key wait for the first computation.
    pub fn memo<T: Any + Send + Sync>(&self, key: &str, compute: impl FnOnce() -> T) -> Arc<T> {
        let cell = {
            let mut map = self.memo.lock().unwrap_or_else(|p| p.into_inner());
            map.entry((TypeId::of::<T>(), key.to_string()))
                .or_default()
                .clone()
        };
        let value = cell
            .get_or_init(|| Arc::new(compute()) as Arc<dyn Any + Send + Sync>)
            .clone();
        match value.downcast::<T>() {
            Ok(v) => v,
            // The cell is keyed by T's TypeId, so it only ever holds a T.
            Err(_) => unreachable!("fact cache cell keyed by TypeId holds another type"),
        }
    }

    /// Resolves `path` (as seen inside the root) to a host path, following symlinks
    /// inside the root. With `follow_last` false the final component is not followed.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Result<PathBuf, FactError> {
        let mut pending: Vec<String> = components(path).into_iter().rev().collect();
        let mut current: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    current.pop();
                    continue;
                }
                _ => {}
            }
            let candidate = self.host_of(&current).join(&part);
            let is_last = pending.is_empty();
            match fs::symlink_metadata(&candidate) {
                Ok(m) if m.file_type().is_symlink() && (follow_last || !is_last) => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(FactError::SymlinkLoop {
                            path: path.to_string(),
                        });
                    }
                    let target = fs::read_link(&candidate).map_err(|e| unreadable(path, &e))?;
                    let target = target.to_string_lossy().into_owned();
                    if target.starts_with('/') {
                        current.clear();
                    }
                    for c in components(&target).into_iter().rev() {
                        pending.push(c);
                    }
                }
                Ok(_) => current.push(part),
                Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(20) => {
                    // Missing (or a file used as a directory): the rest cannot exist.
                    current.push(part);
                    while let Some(rest) = pending.pop() {
                        current.push(rest);
                    }
                }
                Err(e) => return Err(unreadable(path, &e)),
            }
        }
        Ok(self.host_of(&current))
    }

    fn host_of(&self, parts: &[String]) -> PathBuf {
        let mut p = self.root.clone();
        for c in parts {
            p.push(c);
        }
        p
    }

    /// Reads a text file inside the root. `Ok(None)` when it does not exist. Bytes that
    /// are not UTF-8 are replaced, never fatal. Files over [`MAX_CONFIG_BYTES`] are an error.
    pub fn read(&self, path: &str) -> Result<Option<Arc<str>>, FactError> {
        let r = self.memo(&format!("file:{path}"), || self.read_uncached(path));
        (*r).clone()
    }

    /// Only a regular file is ever opened: see [`Facts::open_regular`].
    fn read_uncached(&self, path: &str) -> Result<Option<Arc<str>>, FactError> {
        let Some((file, meta)) = self.open_regular(path)? else {
            return Ok(None);
        };
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(FactError::TooLarge {
                path: path.to_string(),
                size: meta.len(),
                limit: MAX_CONFIG_BYTES,
            });
        }
        let mut buf = Vec::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_end(&mut buf)
            .map_err(|e| unreadable(path, &e))?;
        if buf.len() as u64 > MAX_CONFIG_BYTES {
            return Err(FactError::TooLarge {
                path: path.to_string(),
                size: buf.len() as u64,
                limit: MAX_CONFIG_BYTES,
            });
        }
        Ok(Some(Arc::from(String::from_utf8_lossy(&buf).as_ref())))
    }

    /// Opens a regular file inside the root for reading, `Ok(None)` when it does not
    /// exist. The type is checked on the resolved path before opening, and again on
    /// the open descriptor (opened non-blocking and without following a final
    /// symlink), so a FIFO or device swapped in meanwhile is refused, never read: a
    /// read of a regular file cannot wait for a writer.
    fn open_regular(&self, path: &str) -> Result<Option<(fs::File, fs::Metadata)>, FactError> {
        let host = self.resolve(path, true)?;
        let before = match fs::symlink_metadata(&host) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(20) => {
                return Ok(None)
            }
            Err(e) => return Err(unreadable(path, &e)),
        };
        if before.is_dir() {
            return Err(FactError::Unreadable {
                path: path.to_string(),
                reason: "it is a directory".into(),
            });
        }
        if !before.is_file() {
            return Err(not_regular(path, &before.file_type()));
        }
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY)
            .open(&host)
            .map_err(|e| unreadable(path, &e))?;
        let meta = file.metadata().map_err(|e| unreadable(path, &e))?;
        if !meta.is_file() {
            return Err(not_regular(path, &meta.file_type()));
        }
        if (meta.dev(), meta.ino()) != (before.dev(), before.ino()) {
            return Err(FactError::Unreadable {
                path: path.to_string(),
                reason: "it was replaced while being opened".into(),
            });
        }
        Ok(Some((file, meta)))
    }

    /// Opens a binary file inside the root (a database) for reads at offsets, with
    /// the same confinement and file-type checks as [`Facts::read`]; `Ok(None)` when
    /// it does not exist, [`FactError::TooLarge`] when it is larger than `limit`.
    /// Never cached: the caller memoizes what it makes of the bytes.
    pub fn open_binary(&self, path: &str, limit: u64) -> Result<Option<BinaryFile>, FactError> {
        let Some((file, meta)) = self.open_regular(path)? else {
            return Ok(None);
        };
        if meta.len() > limit {
            return Err(FactError::TooLarge {
                path: path.to_string(),
                size: meta.len(),
                limit,
            });
        }
        Ok(Some(BinaryFile {
            path: path.to_string(),
            stamp: FileStamp::of(&meta),
            file,
        }))
    }

    /// Reads a runtime file (/proc, /sys, /run). An offline root gives
    /// [`FactError::RuntimeOnly`].
    pub fn read_runtime(&self, path: &str) -> Result<Option<Arc<str>>, FactError> {
        if !self.live {
            return Err(FactError::RuntimeOnly {
                what: path.to_string(),
            });
        }
        self.read(path)
    }

    /// `stat` of a path inside the root, following symlinks. `Ok(None)` if missing.
    pub fn stat(&self, path: &str) -> Result<Option<FileMeta>, FactError> {
        self.meta(path, true)
    }

    /// `lstat` of a path inside the root. `Ok(None)` if missing.
    pub fn lstat(&self, path: &str) -> Result<Option<FileMeta>, FactError> {
        self.meta(path, false)
    }

    fn meta(&self, path: &str, follow: bool) -> Result<Option<FileMeta>, FactError> {
        let host = self.resolve(path, follow)?;
        match fs::symlink_metadata(&host) {
            Ok(m) => Ok(Some(FileMeta::from_metadata(self.inner_path(&host), &m))),
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(20) => {
                Ok(None)
            }
            Err(e) => Err(unreadable(path, &e)),
        }
    }

    /// The target of a symlink inside the root, as written in the link.
    pub fn read_link(&self, path: &str) -> Result<Option<String>, FactError> {
        let host = self.resolve(path, false)?;
        match fs::read_link(&host) {
            Ok(t) => Ok(Some(t.to_string_lossy().into_owned())),
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.kind() == io::ErrorKind::InvalidInput =>
            {
                Ok(None)
            }
            Err(e) if e.raw_os_error() == Some(20) => Ok(None),
            Err(e) => Err(unreadable(path, &e)),
        }
    }

    /// Names in a directory inside the root, sorted. `Ok(empty)` if it does not exist.
    pub fn list_dir(&self, path: &str) -> Result<Vec<String>, FactError> {
        let host = self.resolve(path, true)?;
        let rd = match fs::read_dir(&host) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(20) => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(unreadable(path, &e)),
        };
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| unreadable(path, &e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// Files in `dir` whose names end with `suffix` (empty for all), as inside paths,
    /// sorted by name — the order in which drop-in directories are read.
    pub fn dir_files(&self, dir: &str, suffix: &str) -> Result<Vec<String>, FactError> {
        let dir = dir.trim_end_matches('/');
        Ok(self
            .list_dir(dir)?
            .into_iter()
            .filter(|n| n.ends_with(suffix) && !n.starts_with('.'))
            .map(|n| format!("{dir}/{n}"))
            .collect())
    }

    /// Converts a host path under the root back to the path seen inside the root.
    pub fn inner_path(&self, host: &Path) -> String {
        match host.strip_prefix(&self.root) {
            Ok(rel) => format!("/{}", rel.display()),
            Err(_) => host.display().to_string(),
        }
    }
}

fn components(path: &str) -> Vec<String> {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".to_string()),
            _ => None,
        })
        .collect()
}

/// The error for a path whose type is not a regular file, naming the type.
fn not_regular(path: &str, ft: &fs::FileType) -> FactError {
    let kind = if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_symlink() {
        "a symlink that changed while being resolved"
    } else {
        "a special file"
    };
    FactError::NotRegular {
        path: path.to_string(),
        kind,
    }
}

fn unreadable(path: &str, e: &io::Error) -> FactError {
    FactError::Unreadable {
        path: path.to_string(),
        reason: e.to_string(),
    }
}
