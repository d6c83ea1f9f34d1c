//! The rpm package database of RHEL 9, Amazon Linux 2023 and other rpm systems,
//! `/var/lib/rpm/rpmdb.sqlite`, read natively: no rpm, no SQLite library.
//!
//! rpm (4.16 and later) keeps one row per installed package in the `Packages` table
//! of an SQLite database: `hnum INTEGER PRIMARY KEY, blob BLOB`, the blob being the
//! package's header (parsed by the `header` module); the `sqlite` module reads the
//! rows of that table.
//!
//! **Why not the SQLite library, and the WAL.** rpm keeps the database in WAL mode
//! (header bytes 18 and 19 are 2), and committed transactions can sit in
//! `rpmdb.sqlite-wal` without being copied into the database file: rpm checkpoints
//! and truncates the WAL when it closes the database, but cannot while another
//! process has a read transaction open (dnf, PackageKit, a concurrent `rpm -q`) and
//! never does when it is killed, or in an image snapshotted mid-transaction. A reader
//! that ignores the WAL misses the packages of those transactions. SQLite itself
//! does, opened with `immutable=1`, the one way it promises to write nothing (tried
//! with a WAL left by rpm: one package short). Opened read-only without it, SQLite
//! reads the WAL but creates and writes the `-shm` index beside it; opened
//! read-write, it checkpoints and deletes the WAL when it closes: writes under the
//! scanned root either way. So the reader is ours (`sqlite`): it reads the
//! database file and applies the committed frames of the WAL as SQLite's recovery
//! does, never writes, never locks, never reads `-shm`. A database with a hot
//! rollback journal (`-journal`, which rpm does not use) is read as it is on disk.
//!
//! A live database can change while it is read. The two files' identity, size and
//! times are compared before and after; when they changed, the read is repeated
//! (three attempts, then an error).
//!
//! Older rpm databases (Berkeley DB `Packages` of RHEL 8 and before, `Packages.db` of
//! SUSE's ndb) are not read.

mod header;
mod sqlite;
mod vercmp;

use std::sync::Arc;

pub use vercmp::{compare_rpm_versions, rpmvercmp};

use self::header::Header;
use self::sqlite::{decode_record, Database, Value};
use super::{BinaryFile, FactError, Facts};
use crate::facts::Fact;

/// Where rpm keeps its database, inside the root.
pub const RPMDB: &str = "/var/lib/rpm/rpmdb.sqlite";
/// The largest database (and WAL) read: a few thousand packages take ~200 MiB.
pub const MAX_DB_BYTES: u64 = 1024 * 1024 * 1024;
/// Reads of a database that keeps changing before giving up.
const ATTEMPTS: usize = 3;

/// One installed package, as its header names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RpmPackage {
    pub name: String,
    /// `None` when the header has no epoch (rpm then compares it as 0).
    pub epoch: Option<u32>,
    pub version: String,
    pub release: String,
    /// `None` for headers without one (`gpg-pubkey`).
    pub arch: Option<String>,
}

impl RpmPackage {
    /// `[epoch:]version-release`, the epoch only when the header has one.
    pub fn evr(&self) -> String {
        match self.epoch {
            Some(e) => format!("{e}:{}-{}", self.version, self.release),
            None => format!("{}-{}", self.version, self.release),
        }
    }
}

/// The packages of an rpm database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpmDb {
    /// Every installed package (a name may appear more than once: installonly
    /// kernels, multilib), sorted.
    pub packages: Vec<RpmPackage>,
    /// The database file read, and its WAL when committed pages came from it.
    pub source: String,
}

/// The rpm database of the root, read once per scan; `Ok(None)` when it has none.
pub fn installed(facts: &Facts) -> Result<Arc<Option<RpmDb>>, FactError> {
    facts.get::<RpmDbFact>()
}

/// The root's rpm database (`None` when it has none), as a fact.
pub struct RpmDbFact;

impl Fact for RpmDbFact {
    type Value = Option<RpmDb>;
    fn read(facts: &Facts) -> Result<Option<RpmDb>, FactError> {
        read(facts)
    }
}

/// Reads the rpm database of the root (uncached); `Ok(None)` when it has none.
pub fn read(facts: &Facts) -> Result<Option<RpmDb>, FactError> {
    // The WAL is beside the database file itself, after any symlink.
    let Some(meta) = facts.stat(RPMDB)? else {
        return Ok(None);
    };
    let db_path = meta.path;
    let wal_path = format!("{db_path}-wal");
    for _ in 0..ATTEMPTS {
        let Some(db) = facts.open_binary(&db_path, MAX_DB_BYTES)? else {
            return Ok(None);
        };
        let wal = facts.open_binary(&wal_path, MAX_DB_BYTES)?;
        let result = read_files(&db, wal.as_ref());
        let stamp = |p: &str| -> Result<_, FactError> {
            Ok(facts.open_binary(p, u64::MAX)?.map(|f| f.stamp()))
        };
        if stamp(&db_path)? == Some(db.stamp()) && stamp(&wal_path)? == wal.map(|w| w.stamp()) {
            return result.map(Some);
        }
    }
    Err(FactError::Unreadable {
        path: db_path,
        reason: format!("it changed while being read, {ATTEMPTS} times in a row"),
    })
}

/// The packages of an open database file and its WAL.
fn read_files(db: &BinaryFile, wal: Option<&BinaryFile>) -> Result<RpmDb, FactError> {
    let bad = |reason: String| FactError::Malformed {
        path: db.path().to_string(),
        reason,
    };
    let sql = Database::open(db, wal)?;
    let root = sql
        .table_root("Packages")?
        .ok_or_else(|| bad("it has no Packages table: not an rpm database".into()))?;
    let mut packages = Vec::new();
    sql.scan_table(root, |hnum, payload| {
        let cols = decode_record(payload).map_err(|r| bad(format!("Packages row {hnum}: {r}")))?;
        let Some(Value::Blob(blob)) = cols.get(1) else {
            return Err(bad(format!(
                "Packages row {hnum} has no header blob in its second column"
            )));
        };
        let pkg =
            package(blob).map_err(|r| bad(format!("the header in Packages row {hnum}: {r}")))?;
        packages.push(pkg);
        Ok(())
    })?;
    packages.sort();
    let source = match wal {
        Some(w) if sql.uses_wal() => format!("{} with {}", db.path(), w.path()),
        _ => db.path().to_string(),
    };
    Ok(RpmDb { packages, source })
}

/// Name, epoch, version, release and architecture from one header blob (`pub` for
/// the fuzz harness: it is what every blob of the database goes through).
pub fn package(blob: &[u8]) -> Result<RpmPackage, String> {
    let h = Header::parse(blob)?;
    let required = |tag: i32, what: &str| -> Result<String, String> {
        h.string(tag)?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("no {what}"))
    };
    Ok(RpmPackage {
        name: required(header::TAG_NAME, "name")?,
        epoch: h.int32(header::TAG_EPOCH)?,
        version: required(header::TAG_VERSION, "version")?,
        release: required(header::TAG_RELEASE, "release")?,
        arch: h.string(header::TAG_ARCH)?,
    })
}
