//! Fact probes: everything a rule may know about the scanned system, read natively
//! and rooted at the scan root (`/` for a live host, or an image's root).
//!
//! Every fact is read at most once per scan ([`Facts::memo`]) and shared by all the
//! rules that need it. Paths given to probes are as seen *inside* the root, e.g.
//! `/etc/ssh/sshd_config`; symlinks are resolved inside the root, never outside it.

pub mod account_defaults;
pub mod accounts;
pub mod audit;
pub mod bootargs;
pub mod crypto_policies;
pub mod dnf;
pub mod firewalld;
pub mod include_budget;
pub mod kv;
pub mod modules;
pub mod mounts;
pub mod packages;
pub mod rpmdb;
pub mod selinux;
pub mod sysctl;
pub mod units;
pub mod walk;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// The largest file a probe will read as configuration text.
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;
/// Symlinks followed while resolving one path before it counts as a loop.
const MAX_SYMLINK_HOPS: usize = 40;
/// Directory levels a `**` glob component descends below its base.
const MAX_GLOB_DEPTH: usize = 32;

/// Why a fact could not be read. Cheap to clone so a cached failure can be shared.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FactError {
    /// The file exists but reading it failed (permissions, I/O error).
    #[error("cannot read {path}: {reason}")]
    Unreadable { path: String, reason: String },
    /// The file is larger than any configuration file should be.
    #[error("{path} is {size} bytes, larger than the {limit}-byte limit for a configuration file")]
    TooLarge { path: String, size: u64, limit: u64 },
    /// Resolving the path went round in a symlink loop.
    #[error("symlink loop while resolving {path}")]
    SymlinkLoop { path: String },
    /// A runtime-only fact asked for while scanning an offline root.
    #[error("{what} is a runtime fact, not available when scanning an offline root")]
    RuntimeOnly { what: String },
    /// The content could not be understood.
    #[error("cannot parse {path}: {reason}")]
    Malformed { path: String, reason: String },
    /// A file's content was wanted but the path names a FIFO, socket or device:
    /// it is never opened (reading a FIFO or a device could block the scan forever).
    #[error("{path} is {kind}, not a regular file")]
    NotRegular { path: String, kind: &'static str },
}

/// The kind of a filesystem object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Other,
}

/// Ownership and mode of a file, as `stat` reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// The path inside the root that was finally examined (after symlinks).
    pub path: String,
    pub kind: FileKind,
    /// Permission bits including setuid, setgid and sticky (`mode & 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
}

impl FileMeta {
    fn from_metadata(path: String, m: &fs::Metadata) -> FileMeta {
        let ft = m.file_type();
        let kind = if ft.is_symlink() {
            FileKind::Symlink
        } else if ft.is_dir() {
            FileKind::Dir
        } else if ft.is_file() {
            FileKind::File
        } else {
            FileKind::Other
        };
        FileMeta {
            path,
            kind,
            mode: m.permissions().mode() & 0o7777,
            uid: m.uid(),
            gid: m.gid(),
            size: m.size(),
        }
    }
}

/// A regular file inside the root, open for binary reads at offsets
/// ([`Facts::open_binary`]). Its length is the one seen when it was opened: a read
/// past it is an error, never a short buffer.
#[derive(Debug)]
pub struct BinaryFile {
    path: String,
    stamp: FileStamp,
    file: fs::File,
}

/// What changes when a file is written, replaced or truncated: device, inode, size,
/// and modification and change times to the nanosecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    fn of(m: &fs::Metadata) -> FileStamp {
        FileStamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

impl BinaryFile {
    /// The path inside the root it was opened as.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Its length in bytes when it was opened.
    pub fn len(&self) -> u64 {
        self.stamp.size
    }

    /// Whether it was empty when it was opened.
    pub fn is_empty(&self) -> bool {
        self.stamp.size == 0
    }

    /// Its identity, size and times when it was opened.
    pub fn stamp(&self) -> FileStamp {
        self.stamp
    }

    /// Fills `buf` from `offset`. Reading past the length seen at opening is
    /// [`FactError::Malformed`] (the file is shorter than its content says); a file
    /// that shrank meanwhile is [`FactError::Unreadable`].
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), FactError> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > self.stamp.size) {
            return Err(FactError::Malformed {
                path: self.path.clone(),
                reason: format!(
                    "it is {} bytes long, too short for {} bytes at offset {offset}",
                    self.stamp.size,
                    buf.len()
                ),
            });
        }
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| FactError::Unreadable {
                path: self.path.clone(),
                reason: if e.kind() == io::ErrorKind::UnexpectedEof {
                    "it became shorter while being read".into()
                } else {
                    e.to_string()
                },
            })
    }
}

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

    /// Paths inside the root matching a glob pattern such as `/etc/ssh/ssh_host_*_key`,
    /// sorted, as glob(3) expands them: `*`, `?` and `[...]` in any component, `**` as
    /// a whole component for any chain of directories (real directories only, at most
    /// [`MAX_GLOB_DEPTH`] levels), names starting with `.` matched only by a pattern
    /// component starting with `.`. Every directory is listed through
    /// [`Facts::resolve`], so a symlinked directory part leads inside the root, never
    /// to the host's own directories. A component without wildcards matches itself
    /// when it exists.
    pub fn glob(&self, pattern: &str) -> Result<Vec<String>, FactError> {
        let parts: Vec<&str> = pattern
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        // Inside paths matched so far; "" is the root itself.
        let mut current: Vec<String> = vec![String::new()];
        for (idx, part) in parts.iter().enumerate() {
            let last = idx + 1 == parts.len();
            let mut next = Vec::new();
            for base in &current {
                if *part == "**" {
                    self.glob_dirs(base, 0, &mut next)?;
                } else if part.contains(['*', '?', '[']) {
                    for name in self.glob_list(base)? {
                        if name.starts_with('.') && !part.starts_with('.') {
                            continue;
                        }
                        if fnmatch(part, &name) {
                            next.push(format!("{base}/{name}"));
                        }
                    }
                } else {
                    let p = format!("{base}/{part}");
                    if !last || self.lstat(&p)?.is_some() {
                        next.push(p);
                    }
                }
            }
            current = next;
        }
        current.retain(|p| !p.is_empty());
        current.sort();
        current.dedup();
        Ok(current)
    }

    /// The names in `dir` (an inside path, "" for the root) if it is a directory.
    fn glob_list(&self, dir: &str) -> Result<Vec<String>, FactError> {
        let dir = if dir.is_empty() { "/" } else { dir };
        match self.stat(dir)? {
            Some(m) if m.kind == FileKind::Dir => self.list_dir(dir),
            _ => Ok(Vec::new()),
        }
    }

    /// `base` and the directories below it, for a `**` component. Symlinks below
    /// `base` are not descended into (no loops), hidden directories are skipped.
    fn glob_dirs(&self, base: &str, depth: usize, out: &mut Vec<String>) -> Result<(), FactError> {
        let dir = if base.is_empty() { "/" } else { base };
        if !matches!(self.stat(dir)?, Some(m) if m.kind == FileKind::Dir) {
            return Ok(());
        }
        out.push(base.to_string());
        if depth >= MAX_GLOB_DEPTH {
            return Ok(());
        }
        for name in self.list_dir(dir)? {
            if name.starts_with('.') {
                continue;
            }
            let child = format!("{base}/{name}");
            if matches!(self.lstat(&child)?, Some(m) if m.kind == FileKind::Dir) {
                self.glob_dirs(&child, depth + 1, out)?;
            }
        }
        Ok(())
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

/// Strips a `#` comment and surrounding whitespace from a configuration line.
pub fn strip_comment(line: &str) -> &str {
    match line.find('#') {
        Some(i) => line[..i].trim(),
        None => line.trim(),
    }
}

/// fnmatch(3) without flags: `*`, `?`, `[...]` (with `!`/`^` negation and ranges).
/// Iterative, backtracking only to the last `*`, so hostile patterns stay cheap.
pub fn fnmatch(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
                continue;
            }
            Some('?') => Some(pi + 1),
            Some('[') => match bracket(&p, pi, n[ni]) {
                Some((true, next)) => Some(next),
                Some((false, _)) => None,
                None if n[ni] == '[' => Some(pi + 1),
                None => None,
            },
            Some(c) if *c == n[ni] => Some(pi + 1),
            _ => None,
        };
        match (step, star) {
            (Some(next), _) => {
                pi = next;
                ni += 1;
            }
            (None, Some((sp, sn))) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Matches `c` against the bracket expression starting at `p[start]` (`[`): whether
/// it matched and the index after `]`, or `None` when there is no closing `]`.
fn bracket(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while i < p.len() && (first || p[i] != ']') {
        first = false;
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            matched |= p[i] <= c && c <= p[i + 2];
            i += 3;
        } else {
            matched |= p[i] == c;
            i += 1;
        }
    }
    (i < p.len()).then_some((matched != negate, i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn absolute_symlinks_resolve_inside_the_root() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("etc/real")).unwrap();
        fs::write(t.path().join("etc/real/f"), "inside").unwrap();
        symlink("/etc/real", t.path().join("etc/link")).unwrap();
        let facts = Facts::new(t.path(), false);
        assert_eq!(
            facts.read("/etc/link/f").unwrap().as_deref(),
            Some("inside")
        );
        let m = facts.stat("/etc/link").unwrap().unwrap();
        assert_eq!(m.path, "/etc/real");
        assert_eq!(m.kind, FileKind::Dir);
    }

    #[test]
    fn symlink_loops_are_errors_not_hangs() {
        let t = tempfile::tempdir().unwrap();
        symlink("/b", t.path().join("a")).unwrap();
        symlink("/a", t.path().join("b")).unwrap();
        let facts = Facts::new(t.path(), false);
        assert!(matches!(
            facts.read("/a"),
            Err(FactError::SymlinkLoop { .. })
        ));
    }

    #[test]
    fn dotdot_cannot_escape_the_root() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("etc")).unwrap();
        symlink("../../../../etc/hostname", t.path().join("etc/esc")).unwrap();
        let facts = Facts::new(t.path(), false);
        let host = facts.resolve("/etc/esc", true).unwrap();
        assert!(host.starts_with(t.path()), "{host:?} escaped the root");
    }

    #[test]
    fn oversized_and_garbage_files() {
        let t = tempfile::tempdir().unwrap();
        let f = fs::File::create(t.path().join("big")).unwrap();
        f.set_len(MAX_CONFIG_BYTES + 10).unwrap();
        fs::write(t.path().join("garbage"), [0xff, 0xfe, b'a', 0, 0x80]).unwrap();
        let facts = Facts::new(t.path(), false);
        assert!(matches!(
            facts.read("/big"),
            Err(FactError::TooLarge { .. })
        ));
        assert!(facts.read("/garbage").unwrap().unwrap().contains('a'));
        assert_eq!(facts.read("/missing").unwrap(), None);
        assert!(matches!(
            facts.read_runtime("/proc/modules"),
            Err(FactError::RuntimeOnly { .. })
        ));
    }

    /// A globbed directory that is a symlink to an absolute path lists what that
    /// path holds *inside the root*, never the host's directory of that name.
    #[test]
    fn glob_lists_symlinked_directories_inside_the_root_only() {
        let host_dir = tempfile::tempdir().unwrap();
        fs::write(host_dir.path().join("evil.conf"), "PermitRootLogin yes\n").unwrap();
        let t = tempfile::tempdir().unwrap();
        fs::create_dir_all(t.path().join("etc/ssh")).unwrap();
        fs::create_dir_all(t.path().join("etc/audit")).unwrap();
        fs::write(t.path().join("etc/inside.conf"), "x\n").unwrap();
        // To a host directory the root does not have: nothing.
        symlink(host_dir.path(), t.path().join("etc/ssh/sshd_config.d")).unwrap();
        // To the host's /etc: the root's /etc.
        symlink("/etc", t.path().join("etc/audit/rules.d")).unwrap();
        let facts = Facts::new(t.path(), false);
        assert_eq!(
            facts.glob("/etc/ssh/sshd_config.d/*.conf").unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(
            facts.glob("/etc/audit/rules.d/*.conf").unwrap(),
            vec!["/etc/audit/rules.d/inside.conf".to_string()]
        );
        // `**` does not wander through the symlink either, nor out of the root.
        assert_eq!(
            facts.glob("/etc/**/*.conf").unwrap(),
            vec!["/etc/inside.conf".to_string()]
        );
        // The same absolute path inside the root is what is listed.
        let mirror = t.path().join(host_dir.path().strip_prefix("/").unwrap());
        fs::create_dir_all(&mirror).unwrap();
        fs::write(mirror.join("mine.conf"), "x\n").unwrap();
        assert_eq!(
            facts.glob("/etc/ssh/sshd_config.d/*.conf").unwrap(),
            vec!["/etc/ssh/sshd_config.d/mine.conf".to_string()]
        );
    }

    #[test]
    fn glob_matches_like_glob3() {
        let t = tempfile::tempdir().unwrap();
        for f in [
            "etc/audit/auditd.conf",
            "etc/audit/rules.d/a.rules",
            "etc/audit/rules.d/.hidden.rules",
            "etc/audit/plugins.d/deep/x.conf",
            "etc/ssh/ssh_host_rsa_key",
            "etc/ssh/ssh_host_rsa_key.pub",
        ] {
            let p = t.path().join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "").unwrap();
        }
        symlink("/etc/audit", t.path().join("etc/audit/loop")).unwrap();
        let facts = Facts::new(t.path(), false);
        let g = |p: &str| facts.glob(p).unwrap();
        assert_eq!(
            g("/etc/audit/**/*.conf"),
            ["/etc/audit/auditd.conf", "/etc/audit/plugins.d/deep/x.conf"]
        );
        assert_eq!(g("/etc/audit/**/*.rules"), ["/etc/audit/rules.d/a.rules"]);
        assert_eq!(
            g("/etc/audit/rules.d/.*"),
            ["/etc/audit/rules.d/.hidden.rules"]
        );
        assert_eq!(g("/etc/ssh/ssh_host_*_key"), ["/etc/ssh/ssh_host_rsa_key"]);
        assert_eq!(
            g("/etc/ssh/ssh_host_[a-r]sa_key"),
            ["/etc/ssh/ssh_host_rsa_key"]
        );
        assert_eq!(g("/etc/*/missing/*"), Vec::<String>::new());
        assert_eq!(
            g("/etc/ssh/ssh_host_rsa_key"),
            ["/etc/ssh/ssh_host_rsa_key"]
        );
    }
}
