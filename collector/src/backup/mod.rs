//! Backups of a collector on the built-in store, taken while it runs, and their
//! restore into a new data directory.
//!
//! A backup is one file: everything a collector needs to start again where the
//! backup was taken — the store's records as they were at one moment (the *cut*,
//! see `store::sled_snapshot`), the result log's files up to that moment, the CA
//! (`ca/ca.key`, `ca/ca.crt`, `ca/superseded-serials`) and the SSH key pair of scans
//! over SSH (`ssh/id_ed25519`, which the targets' `authorized_keys` name). **It holds
//! the CA's and the SSH key's private keys**: it is written mode 0600, and whoever
//! holds it can issue certificates the fleet's agents trust and log in to targets. Not in it: console sessions (people sign in again), the
//! store's indexes (rebuilt from the records), `download/` (packages, put back
//! from the release), the config file.
//!
//! The format (version [`FORMAT_VERSION`]), every integer big-endian:
//!
//! ```text
//! "RAMPBKUP" | format version (u32)
//! blocks:    compressed length (u32, at most 2 MiB) | raw length (u32, at most 1 MiB)
//!            | one zstd frame with its checksum
//!            ... ended by a block whose two lengths are 0
//! manifest length (u32, at most 64 KiB) | manifest (JSON)
//! SHA-256 of every byte before it (32 bytes), then nothing
//! ```
//!
//! The blocks' raw bytes, joined, are a sequence of entries: `1 | section (u8) |
//! key length (u32, at most 64 KiB) | key | value length (u32, at most 64 MiB) |
//! value` for a record (`store::Section`), `2 | name length (u16) | name | pieces`
//! for a file, its bytes in pieces of `length (u32, at most 1 MiB) | bytes` ended by
//! a piece of length 0, and `0` at the end. File names are `ca/…` (the three CA
//! files), `ssh/id_ed25519` or `db/results/NNNNNNNN.results`; nothing else is
//! accepted. The manifest
//! ([`Manifest`]) says who took the backup, when, from which collector version, how
//! many records of each section and files it holds, the audit log's last entry, and
//! how long writes were held for the cut. It comes last so that the backup is one
//! pass over the snapshot (a count first would read a million-scan store twice);
//! with a file at hand, its length sits just before the checksum.
//!
//! A restore reads the file once, front to back, into a new directory, with every
//! length checked against its bound before anything is read or allocated; then
//! checks the checksum, then (from the manifest the checksum vouches for) the counts
//! against what it read, and, once the store is
//! opened (its indexes rebuilt), the audit chain and its head against the manifest.
//! Any failure removes what it wrote and names the problem.
//!
//! How the command reaches a collector: with the collector stopped, `backup` opens
//! the store itself; while it runs (its database is locked), `backup` asks it through
//! `GET /api/v1/admin/backup` (an admin token) and checks the file it got before
//! keeping it. PostgreSQL is backed up with `pg_dump`, so both refuse.

mod command;
mod format;

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub use command::{backup_command, describe_restored, describe_taken, rest_url, Remote, Taken};
use format::{read_into, Sink};
pub use format::{Writer, FORMAT_VERSION, MAGIC};

use crate::store::sled_snapshot::Loader;
use crate::store::sled_store::SledStore;
use crate::store::{audit_chain, AuditRecord, ScanFilter, Section, Snapshot, Store, StoreError};

/// The key files a backup holds, by their path in the data directory, and whether
/// one may be absent (the CA's superseded serials before any renewal; the SSH key of
/// a collector whose server never started).
const KEY_FILES: [(&str, bool); 4] = [
    ("ca/ca.key", false),
    ("ca/ca.crt", false),
    ("ca/superseded-serials", true),
    ("ssh/id_ed25519", true),
];
/// The audit action of a backup.
pub const AUDIT_ACTION: &str = "backup.create";

/// Why a backup could not be taken, checked or restored.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The file does not start with the backup magic.
    #[error("not a Rampart backup: it does not start with the backup magic")]
    NotABackup,
    /// A format version this collector does not read.
    #[error("backup format version {found}; this collector reads version {FORMAT_VERSION}")]
    Version { found: u32 },
    /// The file ends before it is complete.
    #[error("the backup is truncated: it ends at byte {offset}, inside {inside}")]
    Truncated { offset: u64, inside: &'static str },
    /// A declared length is past its bound.
    #[error(
        "the backup declares {what} of {len} bytes at byte {offset}; at most {max} are allowed"
    )]
    TooLarge {
        what: &'static str,
        len: u64,
        max: u64,
        offset: u64,
    },
    /// The file's structure is damaged.
    #[error("the backup is damaged at byte {offset}: {reason}")]
    Damaged { offset: u64, reason: String },
    /// The checksum at the end does not match the bytes before it.
    #[error("the backup's checksum does not match its content (stored {stored}, computed {computed}): it was altered or damaged")]
    Checksum { stored: String, computed: String },
    /// The manifest cannot be read.
    #[error("the backup's manifest is unreadable: {0}")]
    Manifest(String),
    /// What the file (or the restored store) holds disagrees with its manifest.
    #[error("the manifest says {manifest} {what}, the backup holds {found}")]
    Counts {
        what: String,
        manifest: u64,
        found: u64,
    },
    /// The restored audit log's chain is broken, or ends elsewhere than the
    /// manifest says.
    #[error("the restored audit log does not verify: {0}")]
    AuditChain(String),
    /// A restore goes into a new directory only.
    #[error("{0} is not empty: a restore writes into a new or empty directory")]
    NotEmpty(PathBuf),
    /// The store refused (a backup already running, PostgreSQL) or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// Writing the backup's stream failed (the reader went away).
    #[error("writing the backup failed: {0}")]
    Write(io::Error),
    /// The running collector could not be asked, or refused.
    #[error("{0}")]
    Remote(String),
    /// The operation does not apply to this collector.
    #[error("{0}")]
    Unsupported(String),
}

type Result<T> = std::result::Result<T, BackupError>;

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a backup holds, at its end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The version of the collector that took it.
    pub collector_version: String,
    pub created_at_ms: i64,
    /// Who asked for it: a user name, or `cli`.
    pub created_by: String,
    pub counts: Counts,
    /// The audit log's last entry at the cut (sequence 0 and 64 zeros when empty).
    pub audit_head_seq: u64,
    pub audit_head_hash: String,
    /// How long the collector held its writes to take the cut, in microseconds.
    pub cut_pause_us: u64,
}

/// Records of each section, and files, in a backup.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    pub meta: u64,
    pub agents: u64,
    pub tokens: u64,
    pub users: u64,
    pub scans: u64,
    /// Result records (sled: one locator per batch of results a scan received).
    pub results: u64,
    pub audit: u64,
    pub deliveries: u64,
    pub attempts: u64,
    pub files: u64,
    pub file_bytes: u64,
}

impl Counts {
    fn of(&mut self, s: Section) -> &mut u64 {
        match s {
            Section::Meta => &mut self.meta,
            Section::Agents => &mut self.agents,
            Section::Tokens => &mut self.tokens,
            Section::Users => &mut self.users,
            Section::Scans => &mut self.scans,
            Section::Results => &mut self.results,
            Section::Audit => &mut self.audit,
            Section::Deliveries => &mut self.deliveries,
            Section::Attempts => &mut self.attempts,
        }
    }

    /// The first count that differs from `found`'s, as an error.
    fn check(&self, found: &Counts) -> Result<()> {
        let (mut m, mut f) = (self.clone(), found.clone());
        for s in Section::ALL {
            let (a, b) = (*m.of(s), *f.of(s));
            if a != b {
                return Err(counts(&format!("{} records", s.name()), a, b));
            }
        }
        for (what, a, b) in [
            ("files", self.files, found.files),
            ("bytes of files", self.file_bytes, found.file_bytes),
        ] {
            if a != b {
                return Err(counts(what, a, b));
            }
        }
        Ok(())
    }
}

fn counts(what: &str, manifest: u64, found: u64) -> BackupError {
    BackupError::Counts {
        what: what.into(),
        manifest,
        found,
    }
}

/// Writes a backup of `snap` and the key files of the data directory `data` (the CA,
/// the SSH key) to `out`, in one pass; returns its manifest and size.
pub fn write(
    snap: &dyn Snapshot,
    data: &Path,
    created_by: &str,
    created_at_ms: i64,
    out: impl Write,
) -> Result<(Manifest, u64)> {
    let mut keys = Vec::new();
    for (name, optional) in KEY_FILES {
        let path = data.join(name);
        match fs::read(&path) {
            Ok(bytes) => keys.push((name, bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound && optional => {}
            Err(e) => return Err(io_at(&path)(e)),
        }
    }
    let start = Instant::now();
    let mut w = Writer::new(out).map_err(BackupError::Write)?;
    let mut counts = Counts::default();
    for s in Section::ALL {
        for r in snap.records(s) {
            let (k, v) = r?;
            w.record(s, &k, &v).map_err(BackupError::Write)?;
            *counts.of(s) += 1;
        }
    }
    let records = Section::ALL.iter().map(|s| *counts.of(*s)).sum::<u64>();
    let records_read = start.elapsed();
    for (name, bytes) in &keys {
        w.file(name, &mut bytes.as_slice(), bytes.len() as u64)
            .map_err(BackupError::Write)?;
    }
    for f in snap.files() {
        w.file(&format!("db/{}", f.name), &mut (&f.file), f.len)
            .map_err(BackupError::Write)?;
    }
    counts.files = (keys.len() + snap.files().len()) as u64;
    counts.file_bytes = keys.iter().map(|(_, b)| b.len() as u64).sum::<u64>()
        + snap.files().iter().map(|f| f.len).sum::<u64>();
    let (seq, hash) = snap.audit_head();
    let manifest = Manifest {
        collector_version: env!("CARGO_PKG_VERSION").into(),
        created_at_ms,
        created_by: created_by.into(),
        counts,
        audit_head_seq: seq,
        audit_head_hash: hash,
        cut_pause_us: snap.pause().as_micros() as u64,
    };
    let (_, size) = w.finish(&manifest).map_err(BackupError::Write)?;
    // The time the records took to read and write is what writers would have waited
    // had the gate been held over the backup.
    tracing::info!(
        records,
        records_secs = records_read.as_secs_f64(),
        seconds = start.elapsed().as_secs_f64(),
        bytes = size,
        "backup written"
    );
    Ok((manifest, size))
}

/// Takes a backup of `store` and the key files of the data directory `data` (audited
/// as `actor` before the cut, so that the backup holds its own entry) into `out`.
pub fn take(
    store: &dyn Store,
    data: &Path,
    actor: &str,
    out: impl Write,
) -> Result<(Manifest, u64)> {
    let at_ms = crate::clock::system_ms();
    let snap = begin(store, actor, at_ms)?;
    write(&*snap, data, actor, at_ms, out)
}

/// Audits a backup by `actor` at `at_ms`, then takes the store's cut.
pub fn begin(store: &dyn Store, actor: &str, at_ms: i64) -> Result<Box<dyn Snapshot>> {
    let snap = store.snapshot(&mut || {
        let detail = "a snapshot of the store and the private keys of the CA and of scans over SSH";
        tracing::info!(actor, action = AUDIT_ACTION, detail, "audit");
        store
            .append_audit(&AuditRecord {
                seq: 0,
                at_ms,
                actor: actor.into(),
                action: AUDIT_ACTION.into(),
                target: None,
                detail: detail.into(),
                prev_hash: String::new(),
                hash: String::new(),
            })
            .map(|_| ())
    })?;
    tracing::info!(
        pause_us = snap.pause().as_micros() as u64,
        "backup cut taken; writes were held this long"
    );
    Ok(snap)
}

struct Check;

impl Sink for Check {
    fn record(&mut self, _: Section, _: &[u8], _: &[u8]) -> Result<()> {
        Ok(())
    }
    fn file(&mut self, _: &str) -> Result<Box<dyn Write + '_>> {
        Ok(Box::new(io::sink()))
    }
}

/// Reads a whole backup and checks it (structure, bounds, checksum, counts) without
/// writing anything; returns its manifest.
pub fn verify(from: impl Read) -> Result<Manifest> {
    read_into(from, &mut Check)
}

/// What a restore wrote.
#[derive(Debug)]
pub struct Restored {
    pub manifest: Manifest,
    pub seconds: f64,
    /// Of which: reading the file and writing the records and files; then opening
    /// the store (its indexes rebuilt) and checking it.
    pub load_seconds: f64,
    pub check_seconds: f64,
}

/// Writes a backup's entries into a new data directory.
struct Restore {
    data: PathBuf,
    loader: Option<Loader>,
}

impl Sink for Restore {
    fn record(&mut self, s: Section, key: &[u8], value: &[u8]) -> Result<()> {
        match &mut self.loader {
            Some(l) => Ok(l.record(s, key, value)?),
            None => Err(BackupError::Unsupported("the store is closed".into())),
        }
    }

    fn file(&mut self, name: &str) -> Result<Box<dyn Write + '_>> {
        let file = match name.split_once('/') {
            Some(("db", rest)) => match &self.loader {
                Some(l) => l.file(rest)?,
                None => return Err(BackupError::Unsupported("the store is closed".into())),
            },
            _ => {
                let path = self.data.join(name);
                fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(io_at(&path))?
            }
        };
        Ok(Box::new(io::BufWriter::with_capacity(1 << 20, file)))
    }
}

/// Removes what a failed restore wrote: the directory if it made it, else its
/// content (it was empty).
struct Undo {
    data: PathBuf,
    made: bool,
    armed: bool,
}

impl Drop for Undo {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if self.made {
            let _ = fs::remove_dir_all(&self.data);
            return;
        }
        if let Ok(entries) = fs::read_dir(&self.data) {
            for e in entries.flatten() {
                let p = e.path();
                let _ = if p.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
            }
        }
    }
}

/// Restores a backup into `data`, a new or empty directory: reads and writes it
/// (every check of [`verify`]), opens the store (its indexes rebuilt), then checks its
/// counts and audit chain against the manifest and that the CA loads. On any failure
/// nothing is left in `data`.
pub fn restore(from: impl Read, data: &Path) -> Result<Restored> {
    let start = Instant::now();
    let made = match fs::read_dir(data) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BackupError::NotEmpty(data.to_path_buf()));
            }
            false
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => true,
        Err(e) => return Err(io_at(data)(e)),
    };
    // The magic and version first: a file that is not a backup (of this format)
    // leaves nothing behind.
    let mut from = io::BufReader::with_capacity(1 << 20, from);
    let mut head = Vec::new();
    io::Read::by_ref(&mut from)
        .take((MAGIC.len() + 4) as u64)
        .read_to_end(&mut head)
        .map_err(io_at(Path::new("the backup")))?;
    if head.len() < MAGIC.len() + 4 {
        // Let the reader say what is wrong with so short a file.
        return verify(head.as_slice()).and(Err(BackupError::NotABackup));
    }
    if &head[..MAGIC.len()] != MAGIC {
        return Err(BackupError::NotABackup);
    }
    let version = u32::from_be_bytes(head[MAGIC.len()..].try_into().unwrap_or_default());
    if version != FORMAT_VERSION {
        return Err(BackupError::Version { found: version });
    }
    let mut undo = Undo {
        data: data.to_path_buf(),
        made,
        armed: true,
    };
    crate::datadir::prepare(data).map_err(|e| io_at(data)(io::Error::other(e)))?;
    let ca = data.join("ca");
    fs::create_dir(&ca).map_err(io_at(&ca))?;
    let ssh = data.join("ssh");
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&ssh)
        .map_err(io_at(&ssh))?;
    let db = data.join("db");
    let mut sink = Restore {
        data: data.to_path_buf(),
        loader: Some(Loader::create(&db)?),
    };
    let manifest = read_into(io::Cursor::new(head).chain(from), &mut sink)?;
    if let Some(l) = sink.loader.take() {
        l.finish()?;
    }
    let loaded = start.elapsed();
    check_restored(data, &manifest)?;
    sync_dir(&ca).map_err(io_at(&ca))?;
    sync_dir(&ssh).map_err(io_at(&ssh))?;
    sync_dir(data).map_err(io_at(data))?;
    undo.armed = false;
    let seconds = start.elapsed().as_secs_f64();
    Ok(Restored {
        manifest,
        seconds,
        load_seconds: loaded.as_secs_f64(),
        check_seconds: seconds - loaded.as_secs_f64(),
    })
}

/// `fsync`s the files directly in `dir`, then `dir`.
fn sync_dir(dir: &Path) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_file() {
            fs::File::open(e.path())?.sync_all()?;
        }
    }
    fs::File::open(dir)?.sync_all()
}

/// The restored store and CA against the manifest.
fn check_restored(data: &Path, m: &Manifest) -> Result<()> {
    for f in ["ca.key", "ca.crt"] {
        if !data.join("ca").join(f).is_file() {
            return Err(BackupError::Damaged {
                offset: 0,
                reason: format!("the backup holds no ca/{f}"),
            });
        }
    }
    crate::ca::Ca::open_or_create(&data.join("ca")).map_err(|e| BackupError::Damaged {
        offset: 0,
        reason: format!("its CA does not load: {e}"),
    })?;
    if data.join("ssh").join(crate::ssh::KEY_FILE).exists() {
        crate::ssh::SshKey::open_or_create(&data.join("ssh")).map_err(|e| {
            BackupError::Damaged {
                offset: 0,
                reason: format!("its SSH key does not load: {e}"),
            }
        })?;
    }
    let store = SledStore::open(&data.join("db"))?;
    let scans = store.scan_total(&ScanFilter::default())?.unwrap_or(0) as u64;
    if scans != m.counts.scans {
        return Err(counts("scans in the restored store", m.counts.scans, scans));
    }
    let agents = store.agents()?.len() as u64;
    if agents != m.counts.agents {
        return Err(counts(
            "agents in the restored store",
            m.counts.agents,
            agents,
        ));
    }
    let n =
        audit_chain::verify_store(&store).map_err(|e| BackupError::AuditChain(e.to_string()))?;
    if n != m.audit_head_seq || n != m.counts.audit {
        return Err(BackupError::AuditChain(format!(
            "it holds {n} entries, the manifest says {} ending at seq {}",
            m.counts.audit, m.audit_head_seq
        )));
    }
    let head = if n == 0 {
        audit_chain::GENESIS.to_string()
    } else {
        store
            .audit(0, 1)?
            .0
            .first()
            .map(|e| e.hash.clone())
            .unwrap_or_default()
    };
    if head != m.audit_head_hash {
        return Err(BackupError::AuditChain(format!(
            "its last entry's hash is {head}, the manifest says {}",
            m.audit_head_hash
        )));
    }
    store.sync()?;
    Ok(())
}

#[cfg(test)]
mod tests;
