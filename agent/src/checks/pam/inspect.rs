//! `rampart-agent facts pam`: the PAM stacks and module settings as the `pam.*`
//! checks read them, and the verdicts of a benchmark's rules that judge them, read
//! by the same functions the checks use.

use std::collections::BTreeMap;

use serde::Serialize;

use super::options::{resolve, Module, PwhistoryConf};
use crate::checks::Check;
use crate::error::AgentError;
use crate::facts::pam::stack;
use crate::facts::Facts;

/// The PAM facts of a root.
#[derive(Debug, Serialize)]
pub struct PamFacts {
    /// Per service asked for: its expanded stack.
    pub services: BTreeMap<String, PamService>,
    /// Per benchmark asked for: the verdicts of its rules.
    pub benchmarks: BTreeMap<String, PamVerdicts>,
}

/// The verdicts of one benchmark's PAM rules.
#[derive(Debug, Default, Serialize)]
pub struct PamVerdicts {
    /// Per rule (by slug) whose check has a `pam.*` part: `pass`, `fail` or `error`.
    pub verdicts: BTreeMap<String, String>,
    /// Per rule (by slug): its evidence.
    pub evidence: BTreeMap<String, Vec<String>>,
}

/// One service's expanded stack.
#[derive(Debug, Serialize)]
pub struct PamService {
    pub exists: bool,
    pub lines: Vec<PamFactLine>,
    pub notes: Vec<String>,
}

/// One module line and, for pam_faillock, pam_pwquality and pam_pwhistory, the
/// effective values of the options the rules judge.
#[derive(Debug, Serialize)]
pub struct PamFactLine {
    pub kind: String,
    pub control: String,
    pub module: String,
    pub args: Vec<String>,
    pub source: String,
    /// Option → effective value (`null`: no value).
    pub options: BTreeMap<String, Option<i64>>,
}

/// The options reported per module.
fn options_of(m: Module) -> &'static [&'static str] {
    match m {
        Module::Faillock => &[
            "deny",
            "unlock_time",
            "root_unlock_time",
            "fail_interval",
            "even_deny_root",
        ],
        Module::Pwquality => &["minlen", "difok", "maxrepeat", "enforce_for_root"],
        Module::Pwhistory => &["remember", "enforce_for_root"],
    }
}

/// Whether a check has a `pam.*` part.
fn has_pam(c: &Check) -> bool {
    match c {
        Check::All(cs) | Check::Any(cs) => cs.iter().any(has_pam),
        Check::Pam(_) => true,
        _ => false,
    }
}

/// The PAM facts of a root for `services`, judged by the rules of each of
/// `benchmarks`.
pub fn facts(
    facts: &Facts,
    services: &[String],
    benchmarks: &[String],
) -> Result<PamFacts, AgentError> {
    let mut out = PamFacts {
        services: BTreeMap::new(),
        benchmarks: BTreeMap::new(),
    };
    for s in services {
        let st = stack(facts, s)?;
        let mut lines = Vec::new();
        for l in &st.lines {
            let mut options = BTreeMap::new();
            if let Some(m) = Module::from_name(l.module_name()) {
                for o in options_of(m) {
                    let (r, _) = resolve(facts, m, l, o, &PwhistoryConf::default())?;
                    options.insert(o.to_string(), r.value);
                }
            }
            lines.push(PamFactLine {
                kind: l.kind.clone(),
                control: l.control.clone(),
                module: l.module.clone(),
                args: l.args.clone(),
                source: l.source.clone(),
                options,
            });
        }
        out.services.insert(
            s.clone(),
            PamService {
                exists: st.exists,
                lines,
                notes: st.notes.clone(),
            },
        );
    }
    for id in benchmarks {
        let b = crate::engine::choose_benchmark(facts, Some(id))?;
        let judged = out.benchmarks.entry(id.clone()).or_default();
        for r in &b.rules {
            let (Some(c), Some(slug)) = (&r.check, &r.slug) else {
                continue;
            };
            if !has_pam(c) {
                continue;
            }
            let o = c.eval(facts);
            judged
                .verdicts
                .insert(slug.clone(), o.status.as_str().to_string());
            judged.evidence.insert(slug.clone(), o.evidence);
        }
    }
    Ok(out)
}
