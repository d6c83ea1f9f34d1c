//! The spool: every finished scan is written to disk before it is sent and removed
//! only after the collector acknowledged it, so a collector that is down for a day
//! loses nothing. Bounded in count; when full, new scans are refused with a log line.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::{Profile, Status};

/// A finished scan waiting for the collector. The on-disk format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpooledScan {
    pub scan_id: String,
    pub benchmark_id: String,
    /// None only for a request naming a profile this agent does not know (then
    /// `failure` says so); such a name in an older agent's file reads as None too.
    /// None is stored as an empty name: older agents read the field as a string.
    #[serde(
        default,
        deserialize_with = "known_profile",
        serialize_with = "profile_name"
    )]
    pub profile: Option<Profile>,
    pub content_version: String,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
    pub duration_ms: u64,
    /// Why the scan could not run, when it could not (then `results` is empty).
    #[serde(default)]
    pub failure: Option<String>,
    pub results: Vec<SpooledResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpooledResult {
    pub id: String,
    pub status: Status,
    pub evidence: Vec<String>,
}

fn profile_name<S: serde::Serializer>(p: &Option<Profile>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.map_or("", |p| p.name()))
}

fn known_profile<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Profile>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.and_then(|name| Profile::parse(&name)))
}

/// The spool directory.
pub struct Spool {
    dir: PathBuf,
    max_scans: usize,
}

/// Why the spool failed.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("spool is full ({0} scans waiting); scan {1} was not kept")]
    Full(usize, String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |e| SpoolError::Io {
        path: path.to_path_buf(),
        source: e,
    }
}

fn safe_name(scan_id: &str) -> String {
    scan_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Spool {
    pub fn open(dir: &Path, max_scans: usize) -> Result<Spool, SpoolError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        Ok(Spool {
            dir: dir.to_path_buf(),
            max_scans,
        })
    }

    /// Writes a scan durably (temporary file, fsync, rename, fsync of the directory).
    pub fn put(&self, scan: &SpooledScan) -> Result<(), SpoolError> {
        let waiting = self.list()?.len();
        let path = self.dir.join(format!("{}.json", safe_name(&scan.scan_id)));
        if waiting >= self.max_scans && !path.exists() {
            return Err(SpoolError::Full(waiting, scan.scan_id.clone()));
        }
        let tmp = self.dir.join(format!(".{}.tmp", safe_name(&scan.scan_id)));
        let bytes = serde_json::to_vec(scan).map_err(|e| SpoolError::Io {
            path: tmp.clone(),
            source: e.into(),
        })?;
        let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        fs::rename(&tmp, &path).map_err(io(&path))?;
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        Ok(())
    }

    /// Spooled scans, oldest first. Unreadable files are reported and set aside.
    pub fn list(&self) -> Result<Vec<SpooledScan>, SpoolError> {
        let mut entries: Vec<_> = fs::read_dir(&self.dir)
            .map_err(io(&self.dir))?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
            .map(|e| e.path())
            .collect();
        entries.sort_by_key(|p| fs::metadata(p).and_then(|m| m.modified()).ok());
        let mut out = Vec::new();
        for p in entries {
            match fs::read(&p)
                .ok()
                .and_then(|b| serde_json::from_slice::<SpooledScan>(&b).ok())
            {
                Some(s) => out.push(s),
                None => {
                    tracing::error!(path = %p.display(), "unreadable spool file set aside");
                    let _ = fs::rename(&p, p.with_extension("corrupt"));
                }
            }
        }
        Ok(out)
    }

    /// Removes a scan after the collector acknowledged it.
    pub fn remove(&self, scan_id: &str) -> Result<(), SpoolError> {
        let path = self.dir.join(format!("{}.json", safe_name(scan_id)));
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SpoolError::Io { path, source: e }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(id: &str) -> SpooledScan {
        SpooledScan {
            scan_id: id.into(),
            benchmark_id: "debian-12".into(),
            profile: Some(Profile::default()),
            content_version: "v".into(),
            started_at_ms: 1,
            finished_at_ms: 2,
            duration_ms: 1,
            failure: None,
            results: vec![SpooledResult {
                id: "1.1".into(),
                status: Status::Pass,
                evidence: vec!["e".into()],
            }],
        }
    }

    #[test]
    fn survives_reopen_is_bounded_and_sets_garbage_aside() {
        let d = tempfile::tempdir().unwrap();
        let s = Spool::open(d.path(), 2).unwrap();
        s.put(&scan("a")).unwrap();
        s.put(&scan("../b")).unwrap();
        assert!(matches!(s.put(&scan("c")), Err(SpoolError::Full(2, _))));
        s.put(&scan("a")).unwrap(); // rewriting a spooled scan is allowed
        fs::write(d.path().join("junk.json"), b"{not json").unwrap();
        let s = Spool::open(d.path(), 2).unwrap();
        let ids: Vec<String> = s.list().unwrap().into_iter().map(|x| x.scan_id).collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.contains(&"a".to_string()) && ids.contains(&"../b".to_string()));
        assert!(d.path().join("junk.corrupt").exists());
        s.remove("a").unwrap();
        s.remove("a").unwrap();
        assert_eq!(s.list().unwrap().len(), 1);
    }

    #[test]
    fn the_profile_is_stored_by_name_and_older_files_read_unchanged() {
        let json = serde_json::to_value(scan("a")).unwrap();
        assert_eq!(json["profile"], "level1-server");
        // An older agent's files: the name as a string, or one it did not know
        // beside the failure that says so.
        let older = |profile: &str, failure: Option<&str>| {
            let mut v = json.clone();
            v["profile"] = profile.into();
            v["failure"] = failure.into();
            serde_json::from_value::<SpooledScan>(v).unwrap()
        };
        assert_eq!(
            older("level2-workstation", None).profile,
            Profile::parse("level2-workstation")
        );
        let refused = older("level3-server", Some("unknown profile `level3-server`"));
        assert_eq!(refused.profile, None);
        assert_eq!(
            refused.failure.as_deref(),
            Some("unknown profile `level3-server`")
        );
        // A refused request has no profile: stored as an empty name, which an older
        // agent (a string, required) reads too after a downgrade, and this one reads
        // back as none.
        let mut none = scan("r");
        none.profile = None;
        let json = serde_json::to_value(&none).unwrap();
        assert_eq!(json["profile"], "");
        assert_eq!(serde_json::from_value::<SpooledScan>(json).unwrap(), none);
    }
}
