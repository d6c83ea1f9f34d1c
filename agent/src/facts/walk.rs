//! One parallel walk of the local filesystems, shared by every rule that needs it:
//! world-writable files, unowned and ungrouped files, SUID/SGID executables, and
//! the files under /var/log. Symlinks are never followed; pseudo, network and
//! runtime filesystems are skipped; loops cannot occur.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::iter::{IntoParallelIterator, ParallelIterator};

use super::{mounts, FactError, Facts, FileKind, FileMeta};
use crate::facts::Fact;

/// Filesystem types that are never walked: pseudo, runtime and network filesystems.
const SKIP_FSTYPES: &[&str] = &[
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "securityfs",
    "debugfs",
    "tracefs",
    "pstore",
    "bpf",
    "configfs",
    "mqueue",
    "hugetlbfs",
    "autofs",
    "binfmt_misc",
    "fusectl",
    "efivarfs",
    "rpc_pipefs",
    "nfsd",
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "ceph",
    "glusterfs",
    "fuse",
    "fuse.sshfs",
    "9p",
    "virtiofs",
    "nsfs",
    "ramfs",
    "squashfs",
    "iso9660",
    "selinuxfs",
    "tmpfs",
];

/// Paths never walked in an offline root: they are a running system's, not the image's.
const SKIP_PATHS: &[&str] = &["/proc", "/sys", "/dev", "/run"];

/// Deepest directory nesting walked; deeper trees are reported, not followed.
const MAX_DEPTH: usize = 256;

/// What the walk found.
#[derive(Debug, Clone, Default)]
pub struct WalkResult {
    /// Regular files with the world-write bit.
    pub world_writable_files: Vec<FileMeta>,
    /// World-writable directories without the sticky bit.
    pub world_writable_dirs_without_sticky: Vec<FileMeta>,
    /// Files whose owner UID is not in /etc/passwd.
    pub unowned: Vec<FileMeta>,
    /// Files whose group GID is not in /etc/group.
    pub ungrouped: Vec<FileMeta>,
    /// Regular files with the setuid or setgid bit.
    pub suid_sgid: Vec<FileMeta>,
    /// Every entry under /var/log.
    pub var_log: Vec<FileMeta>,
    /// How many entries were examined.
    pub entries: u64,
    /// Directories that could not be read, with the reason.
    pub errors: Vec<String>,
    /// Mount points that were skipped, with their type.
    pub skipped: Vec<String>,
}

impl WalkResult {
    fn merge(mut self, o: WalkResult) -> WalkResult {
        self.world_writable_files.extend(o.world_writable_files);
        self.world_writable_dirs_without_sticky
            .extend(o.world_writable_dirs_without_sticky);
        self.unowned.extend(o.unowned);
        self.ungrouped.extend(o.ungrouped);
        self.suid_sgid.extend(o.suid_sgid);
        self.var_log.extend(o.var_log);
        self.entries += o.entries;
        self.errors.extend(o.errors);
        self
    }
}

struct Ctx<'a> {
    facts: &'a Facts,
    root: &'a Path,
    skip: HashSet<PathBuf>,
    uids: HashSet<u32>,
    gids: HashSet<u32>,
}

/// The walk of this scan's root, done once.
pub fn walk(facts: &Facts) -> Result<Arc<WalkResult>, FactError> {
    facts.get::<WalkResult>()
}

impl Fact for WalkResult {
    type Value = Self;
    fn read(facts: &Facts) -> Result<Self, FactError> {
        let acc = super::accounts::accounts(facts)?;
        let mut skip = HashSet::new();
        let mut skipped = Vec::new();
        for p in SKIP_PATHS {
            skip.insert(facts.root().join(p.trim_start_matches('/')));
        }
        if facts.is_live() {
            if let Ok(ms) = mounts::live(facts).as_ref() {
                for m in ms.iter() {
                    if SKIP_FSTYPES.contains(&m.fstype.as_str()) || m.fstype.starts_with("fuse.") {
                        skip.insert(facts.root().join(m.target.trim_start_matches('/')));
                        skipped.push(format!("{} ({})", m.target, m.fstype));
                    }
                }
            }
        }
        let ctx = Ctx {
            facts,
            root: facts.root(),
            skip,
            uids: acc.users.iter().map(|u| u.uid).collect(),
            gids: acc.groups.iter().map(|g| g.gid).collect(),
        };
        let root_meta = fs::symlink_metadata(facts.root()).map_err(|e| FactError::Io {
            path: "/".into(),
            source: e.into(),
        })?;
        let mut r = walk_dir(&ctx, facts.root().to_path_buf(), root_meta.dev(), 0);
        r.skipped = skipped;
        Ok(r)
    }
}

fn walk_dir(ctx: &Ctx, dir: PathBuf, _dev: u64, depth: usize) -> WalkResult {
    let mut res = WalkResult::default();
    // A cancelled scan stops walking; its partial result is discarded with the scan.
    if ctx.facts.cancelled() {
        res.errors
            .push(format!("{}: scan cancelled", inner(ctx, &dir)));
        return res;
    }
    if depth > MAX_DEPTH {
        res.errors.push(format!(
            "{}: deeper than {MAX_DEPTH} levels, not walked further",
            inner(ctx, &dir)
        ));
        return res;
    }
    let rd = match fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) => {
            res.errors.push(format!("{}: {e}", inner(ctx, &dir)));
            return res;
        }
    };
    let mut subdirs = Vec::new();
    for entry in rd.flatten() {
        if res.entries % 4096 == 4095 && ctx.facts.cancelled() {
            res.errors
                .push(format!("{}: scan cancelled", inner(ctx, &dir)));
            break;
        }
        let path = entry.path();
        let Ok(m) = entry.metadata() else { continue };
        res.entries += 1;
        let ft = m.file_type();
        let mode = m.mode() & 0o7777;
        let meta = || {
            let kind = if ft.is_dir() {
                FileKind::Dir
            } else if ft.is_file() {
                FileKind::File
            } else if ft.is_symlink() {
                FileKind::Symlink
            } else {
                FileKind::Other
            };
            FileMeta {
                path: inner(ctx, &path),
                kind,
                mode,
                uid: m.uid(),
                gid: m.gid(),
                size: m.size(),
            }
        };
        if !ctx.uids.contains(&m.uid()) {
            res.unowned.push(meta());
        }
        if !ctx.gids.contains(&m.gid()) {
            res.ungrouped.push(meta());
        }
        if path.starts_with(ctx.root.join("var/log")) {
            res.var_log.push(meta());
        }
        if ft.is_file() {
            if mode & 0o002 != 0 {
                res.world_writable_files.push(meta());
            }
            if mode & 0o6000 != 0 {
                res.suid_sgid.push(meta());
            }
        } else if ft.is_dir() {
            if mode & 0o002 != 0 && mode & 0o1000 == 0 {
                res.world_writable_dirs_without_sticky.push(meta());
            }
            if !ctx.skip.contains(&path) {
                subdirs.push(path);
            }
        }
    }
    subdirs
        .into_par_iter()
        .map(|d| walk_dir(ctx, d, 0, depth + 1))
        .reduce(WalkResult::default, WalkResult::merge)
        .merge(res)
}

fn inner(ctx: &Ctx, p: &Path) -> String {
    match p.strip_prefix(ctx.root) {
        Ok(rel) => format!("/{}", rel.display()),
        Err(_) => p.display().to_string(),
    }
}
