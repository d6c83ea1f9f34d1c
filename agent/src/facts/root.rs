//! [`Facts`]: the scan root, the per-scan memo, and reads confined to the root
//! (symlinks resolved inside it, size limits, special files never opened).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fs;
use std::hash::Hash;
use std::io::{self, Read};
use std::marker::PhantomData;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::{BinaryFile, FactError, FileMeta, FileStamp, MAX_CONFIG_BYTES, MAX_SYMLINK_HOPS};

type MemoCell<T> = Arc<OnceLock<Result<Arc<T>, FactError>>>;
/// The memo cells of one fact `F` (its values of type `V`), by key (`()` for a [`Fact`]).
type Slots<F, K, V> = (
    PhantomData<fn() -> F>,
    Mutex<HashMap<<K as ToOwned>::Owned, MemoCell<V>>>,
);

/// A fact of the scanned system, read at most once per scan ([`Facts::get`]) and
/// shared by every rule that needs it. The implementing type is the fact's memo key:
/// the value type itself (`type Value = Self`), or a marker naming one of several
/// facts of the same shape (e.g. the live mounts and fstab's).
pub trait Fact: 'static {
    /// What the fact is.
    type Value: Send + Sync + 'static;
    /// Reads the fact (uncached: call [`Facts::get`] instead).
    fn read(facts: &Facts) -> Result<Self::Value, FactError>;
}

/// A fact of which there is one per key (a unit's state, a PAM service's stack, a
/// file's text), each read at most once per scan ([`Facts::get_keyed`]).
pub trait KeyedFact: 'static {
    /// What tells one instance from another, e.g. `str` for a path or a name.
    type Key: ?Sized + Hash + Eq + ToOwned<Owned: Hash + Eq + Send + Sync + 'static>;
    /// What the fact is.
    type Value: Send + Sync + 'static;
    /// Reads the fact of `key` (uncached: call [`Facts::get_keyed`] instead).
    fn read(facts: &Facts, key: &Self::Key) -> Result<Self::Value, FactError>;
}

/// The text of a file inside the root, `None` when it does not exist.
struct FileText;

impl KeyedFact for FileText {
    type Key = str;
    type Value = Option<Arc<str>>;
    fn read(facts: &Facts, path: &str) -> Result<Self::Value, FactError> {
        facts.read_uncached(path)
    }
}

/// The facts of one scan, rooted at one directory.
pub struct Facts {
    root: PathBuf,
    live: bool,
    memo: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
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

    /// The fact `F`, read once per scan and shared: concurrent callers wait for the
    /// first read, and a failed read is shared as the same error.
    pub fn get<F: Fact>(&self) -> Result<Arc<F::Value>, FactError> {
        self.cell::<F, (), F::Value>(&())
            .get_or_init(|| F::read(self).map(Arc::new))
            .clone()
    }

    /// The fact `F` of `key` (a unit, a PAM service, a file), read once per scan
    /// and key, and shared like [`Facts::get`].
    pub fn get_keyed<F: KeyedFact>(&self, key: &F::Key) -> Result<Arc<F::Value>, FactError> {
        self.cell::<F, F::Key, F::Value>(key)
            .get_or_init(|| F::read(self, key).map(Arc::new))
            .clone()
    }

    /// The memo cell of the fact `F` under `key`; the locks are held only to find
    /// it, never while the fact is read (a read may get other facts).
    fn cell<F, K, V>(&self, key: &K) -> MemoCell<V>
    where
        F: 'static,
        K: ?Sized + Hash + Eq + ToOwned<Owned: Hash + Eq + Send + Sync + 'static>,
        V: Send + Sync + 'static,
    {
        let slots = {
            let mut map = self.memo.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(TypeId::of::<Slots<F, K, V>>())
                .or_insert_with(|| Arc::new(Slots::<F, K, V>::default()))
                .clone()
        };
        let Ok(slots) = slots.downcast::<Slots<F, K, V>>() else {
            // The map is keyed by the TypeId of `Slots<F, K, V>`, so it only ever holds one.
            unreachable!("fact memo keyed by TypeId holds another type")
        };
        let mut slots = slots.1.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(cell) = slots.get(key) {
            return cell.clone();
        }
        slots.entry(key.to_owned()).or_default().clone()
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
                    let target = fs::read_link(&candidate).map_err(|e| unreadable(path, e))?;
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
                Err(e) => return Err(unreadable(path, e)),
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
        Ok((*self.get_keyed::<FileText>(path)?).clone())
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
            .map_err(|e| unreadable(path, e))?;
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
            Err(e) => return Err(unreadable(path, e)),
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
            .map_err(|e| unreadable(path, e))?;
        let meta = file.metadata().map_err(|e| unreadable(path, e))?;
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
            Err(e) => Err(unreadable(path, e)),
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
            Err(e) => Err(unreadable(path, e)),
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
            Err(e) => return Err(unreadable(path, e)),
        };
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| unreadable(path, e))?;
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

fn unreadable(path: &str, e: io::Error) -> FactError {
    FactError::Io {
        path: path.to_string(),
        source: e.into(),
    }
}
