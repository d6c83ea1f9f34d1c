//! The collector's data directory holds its CA key, its database and the webhook
//! secret, so it is the collector's alone, whatever umask it was started with (under
//! systemd the unit sets `UMask=0077`; a shell or another supervisor may not).
//!
//! [`restrict_umask`] sets the process umask to `0o077` before anything is written,
//! so every file and directory the collector or sled creates is at most `0600` /
//! `0700`. [`prepare`] creates the data directory `0700`, and narrows an existing one
//! (and the `ca` and `db` trees inside it) that is open to group or others, saying
//! so in the log.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The bits the collector never grants: everything for group and others.
pub const UMASK: u32 = 0o077;

/// Why the data directory could not be made private.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// The directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The directory exists but its mode could not be read or narrowed to 0700.
    #[error("cannot make data directory {path} private (mode 0700): {source}")]
    Restrict {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Sets the process umask to `0o077`: files and directories created from now on,
/// by any thread, are readable by their owner only.
pub fn restrict_umask() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(UMASK));
}

/// Makes `dir` the collector's private data directory: the umask is restricted, the
/// directory created `0700` if missing, and narrowed to `0700` (with the files of
/// its `ca` and `db` trees narrowed to drop group and other bits) if it was open.
pub fn prepare(dir: &Path) -> Result<(), DataDirError> {
    restrict_umask();
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| DataDirError::Create {
            path: dir.into(),
            source,
        })?;
    let restrict = |source| DataDirError::Restrict {
        path: dir.into(),
        source,
    };
    let mode = fs::metadata(dir).map_err(restrict)?.permissions().mode() & 0o777;
    if mode & UMASK != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(restrict)?;
        tracing::warn!(
            path = %dir.display(),
            was = format!("{mode:04o}"),
            "data directory was open to group or others; narrowed to 0700"
        );
    }
    for sub in ["ca", "db"] {
        narrow_tree(&dir.join(sub));
    }
    Ok(())
}

/// Drops group and other bits from everything under `path` (symbolic links are not
/// followed). Failures are logged: the directory above is 0700 already.
fn narrow_tree(path: &Path) {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return;
    };
    if meta.file_type().is_symlink() {
        return;
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & UMASK != 0 {
        match fs::set_permissions(path, fs::Permissions::from_mode(mode & !UMASK)) {
            Ok(()) => tracing::warn!(
                path = %path.display(),
                was = format!("{mode:04o}"),
                "file in the data directory was open to group or others; narrowed"
            ),
            Err(e) => tracing::warn!(path = %path.display(), error = %e, "cannot narrow mode"),
        }
    }
    if meta.is_dir() {
        if let Ok(entries) = fs::read_dir(path) {
            for e in entries.flatten() {
                narrow_tree(&e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn an_open_data_directory_is_narrowed_and_a_new_one_is_private() {
        let t = tempfile::tempdir().unwrap();
        // A new directory (and its missing parent) is created 0700.
        let fresh = t.path().join("a/b");
        prepare(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o700);
        // Files written afterwards are owner-only, whatever the umask was.
        fs::write(fresh.join("f"), "x").unwrap();
        assert_eq!(mode(&fresh.join("f")), 0o600);
        // An existing open directory and the files of its ca/db trees are narrowed;
        // other files (downloads) are left alone.
        let open = t.path().join("open");
        fs::create_dir_all(open.join("db/blobs")).unwrap();
        fs::create_dir_all(open.join("download")).unwrap();
        for (p, m) in [
            ("", 0o755),
            ("db", 0o777),
            ("db/blobs", 0o755),
            ("download", 0o755),
        ] {
            fs::set_permissions(open.join(p), fs::Permissions::from_mode(m)).unwrap();
        }
        fs::write(open.join("db/conf"), "x").unwrap();
        fs::set_permissions(open.join("db/conf"), fs::Permissions::from_mode(0o644)).unwrap();
        prepare(&open).unwrap();
        assert_eq!(mode(&open), 0o700);
        assert_eq!(mode(&open.join("db")), 0o700);
        assert_eq!(mode(&open.join("db/blobs")), 0o700);
        assert_eq!(mode(&open.join("db/conf")), 0o600);
        assert_eq!(mode(&open.join("download")), 0o755);
        // A path that cannot be a directory is a clear error.
        let e = prepare(&fresh.join("f")).unwrap_err();
        assert!(
            e.to_string().contains("cannot create data directory"),
            "{e}"
        );
    }
}
