//! Seeding: a stopped collector's data directory filled with a fleet's history
//! (agents, completed scans, audit entries) through the `Store` trait, so that
//! `rampart-collector serve --data DIR` then serves it. Writes are not synced one by
//! one: the store is synced once at the end.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rampart_collector::app::complete;
use rampart_collector::policy::{Counts, Mode, Settings};
use rampart_collector::store::pg::{PgOptions, PgStore};
use rampart_collector::store::sled_store::SledStore;
use rampart_collector::store::{
    AgentRecord, AuditRecord, ResultRecord, ScanRecord, ScanStatus, Store, UserRecord,
};
use rampart_report::{Profile, Severity, Status};
use serde_json::{json, Value};

use crate::scan::{self, Rng};
use crate::{now_ms, Error, Result};

/// What to write.
#[derive(Debug, Clone)]
pub struct SeedConfig {
    /// The collector's data directory (`DIR/db` is its store).
    pub data: PathBuf,
    pub agents: usize,
    pub scans: usize,
    /// Results stored for each agent's latest scan (0: none).
    pub results: usize,
    /// Terraform projects the agents are spread over.
    pub projects: usize,
    /// The history spans this many days, ending now.
    pub days: u32,
    /// Writes an admin token here (a new admin user of the seeded store).
    pub admin_token_file: Option<PathBuf>,
    /// Writer threads for scans.
    pub threads: usize,
    /// A PostgreSQL database to seed instead of `DIR/db`, and its password's file.
    pub store: Option<String>,
    pub store_password_file: Option<PathBuf>,
}

const PROFILE: Profile = Profile::ALL[0];
const PROVIDERS: [&str; 5] = ["aws", "azure", "gcp", "vmware", "proxmox"];

fn agent_id(i: usize) -> String {
    format!("ag-{:016x}", Rng::new(i as u64).next_u64())
}

fn project(cfg: &SeedConfig, agent: usize) -> String {
    format!("proj-{:03}", agent % cfg.projects.max(1))
}

/// The seeded agents: IDs, instance IDs and projects are derived from the index, so
/// a caller can name them without reading the store.
pub fn agent_record(cfg: &SeedConfig, i: usize, now: i64) -> AgentRecord {
    let since = now - i64::from(cfg.days) * 86_400_000;
    AgentRecord {
        id: agent_id(i),
        hostname: format!("vm-{i:06}"),
        ip_addresses: vec![format!(
            "10.{}.{}.{}",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255
        )],
        provider: PROVIDERS[i % PROVIDERS.len()].into(),
        instance_id: instance_id(i),
        os: "Debian GNU/Linux 12 (bookworm)".into(),
        project: Some(project(cfg, i)),
        labels: Default::default(),
        enrolled_at_ms: since,
        last_seen_ms: now,
        cert_serial: format!("{:032x}", Rng::new(!(i as u64)).next_u64()),
        cert_not_after_ms: now + 30 * 86_400_000,
        revoked: false,
        identity: Default::default(),
        replaced_certs: Vec::new(),
        renewed_at_ms: 0,
        ssh: None,
    }
}

/// The instance ID of seeded agent `i` (what the handover gate is asked about).
pub fn instance_id(i: usize) -> String {
    format!("i-{:017x}", i)
}

/// A finished scan of seeded agent `agent` created at `at`: mostly completed with
/// a spread of scores, some failed by the scanner, a few cancelled; the agent's
/// `latest` scan is always completed.
fn scan_record(cfg: &SeedConfig, agent: usize, at: i64, latest: bool, rng: &mut Rng) -> ScanRecord {
    let id = format!("sc-{at:013}-{:08x}", rng.next_u64() as u32);
    let mut s = ScanRecord::pending(
        id,
        &agent_id(agent),
        Some(project(cfg, agent)),
        "schedule",
        PROFILE,
        at,
    );
    s.started_at_ms = Some(at + 1_000);
    s.finished_at_ms = Some(at + 30_000 + rng.below(60_000) as i64);
    s.last_progress_ms = s.finished_at_ms.unwrap_or(at);
    let roll = rng.below(100);
    if !latest && roll < 2 {
        s.status = ScanStatus::Cancelled;
        s.finished_at_ms = None;
        return s;
    }
    if !latest && roll < 7 {
        s.status = ScanStatus::Failed;
        s.failure_reason = Some("the agent reported 249 results but 180 arrived".into());
        return s;
    }
    // Each agent has its own level of compliance, with a little scan-to-scan jitter.
    let total = scan::rule_count(PROFILE.name()) as u32;
    let manual = 14;
    let automated = total - manual;
    let fail_pct = 5 + (Rng::new(agent as u64 * 31).below(35)) as u32 + rng.below(4) as u32;
    let failed = automated * fail_pct / 100;
    let error = rng.below(3) as u32;
    let na = 8 + rng.below(6) as u32;
    let passed = automated - failed - error - na;
    let critical = u32::from(rng.below(10) == 0);
    let high = rng.below(4) as u32;
    let low = failed.saturating_sub(critical + high) / 3;
    let c = Counts {
        passed,
        failed,
        error,
        not_applicable: na,
        failed_by_severity: [
            (Severity::Critical, critical),
            (Severity::High, high),
            (
                Severity::Medium,
                failed.saturating_sub(critical + high + low),
            ),
            (Severity::Low, low),
        ]
        .into_iter()
        .collect(),
    };
    let settings = Settings {
        mode: Mode::Block,
        ..Settings::default()
    };
    complete(&mut s, &settings, &c, (manual, 0));
    s.content_version = Some(scan::content_version());
    s
}

fn random_token() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 24];
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    format!(
        "rmp_{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    )
}

/// Fills `cfg.data` and returns the JSON report.
pub fn run(cfg: &SeedConfig) -> Result<Value> {
    if cfg.agents == 0 {
        return Err(Error::Config("--agents must be at least 1".into()));
    }
    let t0 = Instant::now();
    std::fs::create_dir_all(&cfg.data).map_err(|e| Error::Io {
        what: format!("create {}", cfg.data.display()),
        source: e,
    })?;
    let store: Box<dyn Store> = match &cfg.store {
        Some(url) => Box::new(PgStore::open(&PgOptions {
            url: url.clone(),
            password_file: cfg.store_password_file.clone(),
            ca_file: None,
            pool_size: cfg.threads.clamp(1, 64) + 2,
        })?),
        None => Box::new(SledStore::open(&cfg.data.join("db"))?),
    };
    let store = store.as_ref();
    let now = now_ms();
    let since = now - i64::from(cfg.days) * 86_400_000;
    if let Some(path) = &cfg.admin_token_file {
        let token = random_token();
        store.put_user(&UserRecord {
            name: format!("loadgen-admin-{}", &token[4..12]),
            role: "admin".into(),
            token_hash: rampart_collector::auth::hash_secret(&token),
            created_at_ms: now,
            revoked: false,
            password_hash: None,
            password_changed_at_ms: 0,
        })?;
        write_secret(path, &token)?;
    }
    for i in 0..cfg.agents {
        store.put_agent(&agent_record(cfg, i, now))?;
    }
    eprintln!("seed: {} agents written", cfg.agents);
    // Scan j belongs to agent j % N and is created at an even step through the
    // history, so each agent scans at a steady rhythm and IDs sort by time.
    let step = ((now - since) / cfg.scans.max(1) as i64).max(1);
    let written = AtomicU64::new(0);
    let audit = AtomicU64::new(0);
    let threads = cfg.threads.clamp(1, 64);
    let last_of = |agent: usize| -> Option<usize> {
        // The highest j with j % N == agent.
        let n = cfg.agents;
        (agent < cfg.scans).then(|| agent + ((cfg.scans - 1 - agent) / n) * n)
    };
    let errors: std::sync::Mutex<Vec<Error>> = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|sc| {
        for t in 0..threads {
            let (written, errors) = (&written, &errors);
            sc.spawn(move || {
                let mut rng = Rng::new(1_000_003 + t as u64);
                let mut agent = t;
                while agent < cfg.agents {
                    let last = last_of(agent);
                    let mut j = agent;
                    while j < cfg.scans {
                        let at = since + j as i64 * step;
                        let latest = Some(j) == last;
                        let s = scan_record(cfg, agent, at, latest, &mut rng);
                        let r = store.put_scan(&s).and_then(|_| {
                            if latest && cfg.results > 0 {
                                store.put_results(
                                    &s.id,
                                    &results_for(cfg.results, &mut rng),
                                    rampart_collector::clock::system_ms(),
                                )
                            } else {
                                Ok(())
                            }
                        });
                        if let Err(e) = r {
                            errors
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .push(e.into());
                            return;
                        }
                        let n = written.fetch_add(1, Ordering::Relaxed) + 1;
                        if n % 100_000 == 0 {
                            eprintln!("seed: {n} scans written");
                        }
                        j += cfg.agents;
                    }
                    agent += threads;
                }
            });
        }
        // The audit log in time order: every enrollment, then every scan's creation.
        let (audit, errors) = (&audit, &errors);
        sc.spawn(move || {
            let r = (|| -> Result<()> {
                for i in 0..cfg.agents {
                    let a = agent_id(i);
                    store.append_audit(&AuditRecord {
                        seq: 0,
                        at_ms: since,
                        actor: format!("agent:{a}"),
                        action: "agent.enroll".into(),
                        target: Some(a),
                        detail: format!("enrolled with a token of project {}", project(cfg, i)),
                        prev_hash: String::new(),
                        hash: String::new(),
                    })?;
                    audit.fetch_add(1, Ordering::Relaxed);
                }
                for j in 0..cfg.scans {
                    let agent = j % cfg.agents;
                    store.append_audit(&AuditRecord {
                        seq: 0,
                        at_ms: since + j as i64 * step,
                        actor: "system".into(),
                        action: "scan.create".into(),
                        target: None,
                        detail: format!("schedule scan of agent {}", agent_id(agent)),
                        prev_hash: String::new(),
                        hash: String::new(),
                    })?;
                    audit.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })();
            if let Err(e) = r {
                errors.lock().unwrap_or_else(|p| p.into_inner()).push(e);
            }
        });
    });
    if let Some(e) = errors
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .next()
    {
        return Err(e);
    }
    // The months seeded get their partitions (PostgreSQL), as the collector's upkeep
    // would give them.
    store.maintain(now)?;
    store.sync()?;
    let seconds = t0.elapsed().as_secs_f64();
    Ok(json!({
        "mode": "seed",
        "data": cfg.data.display().to_string(),
        "agents": cfg.agents,
        "scans": written.load(Ordering::Relaxed),
        "results_per_latest_scan": cfg.results.min(scan::rule_count(PROFILE.name())),
        "audit_entries": audit.load(Ordering::Relaxed),
        "seconds": (seconds * 1000.0).round() / 1000.0,
    }))
}

/// The first `k` results of a level-1 scan (a scan detail or report then has rows).
fn results_for(k: usize, rng: &mut Rng) -> Vec<ResultRecord> {
    let all = scan::results(PROFILE.name(), &[], None, rng).unwrap_or_default();
    all.into_iter()
        .take(k)
        .map(|r| ResultRecord {
            rule_id: r.rule_id,
            status: rampart_proto::domain::rule_status(r.status).unwrap_or(Status::NotApplicable),
            evidence: r.evidence,
        })
        .collect()
}

fn write_secret(path: &Path, token: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(token.as_bytes()).map(|_| f));
    match &mut f {
        Ok(_) => Ok(()),
        Err(_) => Err(Error::Io {
            what: format!("write {}", path.display()),
            source: f
                .err()
                .unwrap_or_else(|| std::io::Error::other("write failed")),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(agents: usize, scans: usize) -> SeedConfig {
        SeedConfig {
            data: PathBuf::new(),
            agents,
            scans,
            results: 0,
            projects: 3,
            days: 120,
            admin_token_file: None,
            threads: 2,
            store: None,
            store_password_file: None,
        }
    }

    #[test]
    fn seeded_scans_are_consistent() {
        let c = cfg(10, 1000);
        let mut rng = Rng::new(5);
        let mut statuses = std::collections::BTreeMap::new();
        for j in 0..1000usize {
            let s = scan_record(&c, j % 10, 1_700_000_000_000 + j as i64, false, &mut rng);
            *statuses.entry(format!("{:?}", s.status)).or_insert(0) += 1;
            assert!(s.id.starts_with(&format!("sc-{:013}-", s.created_at_ms)));
            assert_eq!(s.project.as_deref(), Some(project(&c, j % 10).as_str()));
            if s.status == ScanStatus::Completed {
                let counted = s.passed + s.failed + s.error + s.not_applicable + s.not_checked;
                assert_eq!(counted as usize, scan::rule_count(PROFILE.name()), "{s:?}");
                assert_eq!(s.failed_by_severity.total(), s.failed, "{s:?}");
                assert!(s.score.is_some());
            }
        }
        for st in ["Completed", "Failed", "Cancelled"] {
            assert!(statuses.get(st).is_some_and(|n| *n > 0), "{statuses:?}");
        }
        let latest = scan_record(&c, 3, 1, true, &mut rng);
        assert_eq!(latest.status, ScanStatus::Completed);
    }

    #[test]
    fn seeding_writes_what_it_says() {
        let dir = std::env::temp_dir().join(format!("rampart-seed-{}", std::process::id()));
        let mut c = cfg(7, 50);
        c.data = dir.clone();
        c.results = 20;
        c.admin_token_file = Some(dir.with_extension("token"));
        let v = run(&c).unwrap();
        assert_eq!(v["scans"], 50);
        assert_eq!(v["audit_entries"], 57);
        let store = SledStore::open(&dir.join("db")).unwrap();
        let (scans, total) = store.scans(&Default::default(), 0, 100).unwrap();
        assert_eq!(total, 50);
        assert_eq!(store.agents().unwrap().len(), 7);
        let newest = &scans[0];
        assert_eq!(store.results(&newest.id).unwrap().len(), 20);
        let token = std::fs::read_to_string(dir.with_extension("token")).unwrap();
        let hash = rampart_collector::auth::hash_secret(&token);
        assert_eq!(
            store.user_by_token_hash(&hash).unwrap().unwrap().role,
            "admin"
        );
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_file(dir.with_extension("token"));
    }
}
