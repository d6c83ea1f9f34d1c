//! `time.*` checks: which time synchronisation daemon is in use (chrony or
//! systemd-timesyncd), and the configuration of that daemon.
//!
//! A daemon is *in use* when its unit exists, is not masked, and starts at boot
//! (enabled, or pulled in by a package's own link) or (on a live system) runs. Checks about one daemon are not applicable when that daemon
//! is not in use — the other one is, or none is (which [`Check::SingleDaemon`]
//! reports as a failure).

use serde::Deserialize;

use crate::facts::chrony::Layout;
use crate::facts::packages::packages;
use crate::facts::units::{unit, UnitState};
use crate::facts::{FactError, Facts};
use crate::model::{Outcome, Status};

mod chrony;
mod timesyncd;

use chrony::{chrony_sources, chrony_user};
use timesyncd::timesyncd_servers;
pub use timesyncd::{timesyncd_lists, timesyncd_settings, TimesyncdServers};

/// A time synchronisation daemon this benchmark accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Daemon {
    Chrony,
    Timesyncd,
}

impl Daemon {
    fn unit(self) -> &'static str {
        match self {
            Daemon::Chrony => "chrony.service",
            Daemon::Timesyncd => "systemd-timesyncd.service",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Daemon::Chrony => "chrony",
            Daemon::Timesyncd => "systemd-timesyncd",
        }
    }
}

/// The `time.*` check kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Check {
    /// Exactly one of chrony and systemd-timesyncd is in use.
    #[serde(rename = "time.single_daemon")]
    SingleDaemon {},
    /// The daemon's unit is enabled and, on a live system, running. Not applicable
    /// when the daemon is not in use.
    #[serde(rename = "time.service_enabled")]
    ServiceEnabled { daemon: Daemon },
    /// systemd-timesyncd has servers configured with `NTP=` or `FallbackNTP=` in
    /// timesyncd.conf or its drop-ins. The compiled-in fallback list does not count.
    #[serde(rename = "time.timesyncd_servers")]
    TimesyncdServers {},
    /// chrony has at least one `server` or `pool` source in chrony.conf, its
    /// `confdir`/`include` files or its `sourcedir` `.sources` files.
    #[serde(rename = "time.chrony_sources")]
    ChronySources {
        #[serde(default)]
        layout: Layout,
    },
    /// chronyd does not run as root: no `user root` directive or `-u root` option,
    /// and (live) no chronyd process with effective UID 0.
    #[serde(rename = "time.chrony_user")]
    ChronyUser {
        #[serde(default)]
        layout: Layout,
    },
}

impl Check {
    pub fn eval(&self, facts: &Facts) -> Outcome {
        match self.eval_inner(facts) {
            Ok(o) => o,
            Err(e) => e.into(),
        }
    }

    fn eval_inner(&self, facts: &Facts) -> Result<Outcome, FactError> {
        Ok(match self {
            Check::SingleDaemon {} => single_daemon(facts)?,
            Check::ServiceEnabled { daemon } => {
                let st = state(facts, *daemon)?;
                if !st.in_use {
                    return not_in_use(facts, *daemon);
                }
                let u = &st.unit;
                let ok = u.enabled() && u.active != Some(false);
                let mut ev = vec![u.describe()];
                if u.enabled() && u.active.is_none() {
                    ev.push(
                        "running state not examined (offline root or systemd not running)".into(),
                    );
                }
                Outcome::new(if ok { Status::Pass } else { Status::Fail }, ev)
            }
            Check::TimesyncdServers {} => {
                if !state(facts, Daemon::Timesyncd)?.in_use {
                    return not_in_use(facts, Daemon::Timesyncd);
                }
                timesyncd_servers(facts)?
            }
            Check::ChronySources { layout } => {
                if let Some(na) = chrony_not_applicable(facts, *layout)? {
                    return Ok(na);
                }
                chrony_sources(facts, *layout)?
            }
            Check::ChronyUser { layout } => {
                if let Some(na) = chrony_not_applicable(facts, *layout)? {
                    return Ok(na);
                }
                chrony_user(facts, *layout)?
            }
        })
    }
}

// ---------------------------------------------------------------------------
// Which daemon is in use
// ---------------------------------------------------------------------------

/// Whether one daemon is in use, and its unit.
#[derive(Debug, Clone)]
pub struct DaemonState {
    pub unit: UnitState,
    pub in_use: bool,
}

/// The state of `daemon`'s unit, read once per scan.
pub fn state(facts: &Facts, daemon: Daemon) -> Result<DaemonState, FactError> {
    let u = UnitState::clone(&*unit(facts, daemon.unit())?);
    let in_use = u.in_use();
    Ok(DaemonState { unit: u, in_use })
}

/// Time daemons the benchmark does not accept; named in evidence when enabled.
const OTHER_TIME_UNITS: [&str; 3] = ["ntpsec.service", "ntp.service", "openntpd.service"];

fn single_daemon(facts: &Facts) -> Result<Outcome, FactError> {
    let c = state(facts, Daemon::Chrony)?;
    let t = state(facts, Daemon::Timesyncd)?;
    let mut ev = vec![c.unit.describe(), t.unit.describe()];
    for name in OTHER_TIME_UNITS {
        let u = unit(facts, name)?;
        if u.in_use() {
            ev.push(format!(
                "{} (this benchmark accepts only chrony or systemd-timesyncd)",
                u.describe()
            ));
        }
    }
    Ok(match (c.in_use, t.in_use) {
        (true, false) => {
            ev.insert(0, "chrony is the time synchronisation daemon in use".into());
            Outcome::new(Status::Pass, ev)
        }
        (false, true) => {
            ev.insert(
                0,
                "systemd-timesyncd is the time synchronisation daemon in use".into(),
            );
            Outcome::new(Status::Pass, ev)
        }
        (true, true) => {
            ev.insert(
                0,
                "both chrony and systemd-timesyncd are in use; they would fight over the clock"
                    .into(),
            );
            Outcome::new(Status::Fail, ev)
        }
        (false, false) => {
            ev.insert(
                0,
                "neither chrony nor systemd-timesyncd is enabled or running".into(),
            );
            Outcome::new(Status::Fail, ev)
        }
    })
}

/// Why a chrony check does not apply: on Debian, chrony is not the time daemon in
/// use; in the RHEL layout, the chrony package is not installed (its own
/// recommendation reports that). `None` when it applies.
fn chrony_not_applicable(facts: &Facts, layout: Layout) -> Result<Option<Outcome>, FactError> {
    match layout {
        Layout::Debian => {
            if state(facts, Daemon::Chrony)?.in_use {
                Ok(None)
            } else {
                not_in_use(facts, Daemon::Chrony).map(Some)
            }
        }
        Layout::Rhel => {
            let pk = packages(facts)?;
            if pk.is_installed("chrony") {
                Ok(None)
            } else {
                Ok(Some(Outcome::not_applicable(pk.describe("chrony"))))
            }
        }
    }
}

fn not_in_use(facts: &Facts, daemon: Daemon) -> Result<Outcome, FactError> {
    let st = state(facts, daemon)?;
    let other = match daemon {
        Daemon::Chrony => Daemon::Timesyncd,
        Daemon::Timesyncd => Daemon::Chrony,
    };
    let reason = if state(facts, other)?.in_use {
        format!(
            "{} is not the time daemon in use ({} is)",
            daemon.name(),
            other.name()
        )
    } else {
        format!(
            "{} is not in use (no accepted time daemon is; see 2.3.1.1)",
            daemon.name()
        )
    };
    Ok(Outcome::new(
        Status::NotApplicable,
        vec![reason, st.unit.describe()],
    ))
}
