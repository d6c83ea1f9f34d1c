//! What the rooted reader returns about files: their kind and metadata, and
//! binary files open for reads at offsets.

use std::fs;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};

use super::FactError;

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
    pub(super) fn from_metadata(path: String, m: &fs::Metadata) -> FileMeta {
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
/// ([`Facts::open_binary`](super::Facts::open_binary)). Its length is the one seen
/// when it was opened: a read past it is an error, never a short buffer.
#[derive(Debug)]
pub struct BinaryFile {
    pub(super) path: String,
    pub(super) stamp: FileStamp,
    pub(super) file: fs::File,
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
    pub(super) fn of(m: &fs::Metadata) -> FileStamp {
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
        self.file.read_exact_at(buf, offset).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                FactError::Unreadable {
                    path: self.path.clone(),
                    reason: "it became shorter while being read".into(),
                }
            } else {
                FactError::Io {
                    path: self.path.clone(),
                    source: e.into(),
                }
            }
        })
    }
}
