//! The oracle: what the root's modprobe answers, and the verdict it implies.

use std::collections::{BTreeMap, BTreeSet};

use super::super::RootCopy;
use super::kernel::{canonical, Kernel, Module, State};

/// What the root's modprobe says about one module.
#[derive(Debug, Default)]
pub(super) struct ModuleTruth {
    /// `modprobe -R`: the modules the name finds (`None`: it finds none).
    pub(super) lookup: Option<Vec<String>>,
    /// `modprobe -n -v`: the line for the module itself ("" for none), `None` when
    /// modprobe found nothing.
    pub(super) by_name: Option<String>,
    /// The whole `modprobe -n -v` output.
    pub(super) output: String,
    /// The options `modprobe -n -v -i` passes to the module's object.
    options: Option<String>,
}

pub(super) struct Truth {
    pub(super) blacklist: BTreeSet<String>,
    pub(super) modules: BTreeMap<String, ModuleTruth>,
}

/// The oracle script: `--showconfig`, then per module `-R`, `-n -v`, and `-n -v -i`
/// (to learn the options) when `-n -v` would run an install command.
const SCRIPT: &str = r#"V=$1; shift
modprobe -c -S "$V" 2>/dev/null | sed '/^# End of configuration files/q'
for m in "$@"; do
  printf '@@ %s\n@R\n' "$m"; modprobe -R -S "$V" "$m" 2>/dev/null; printf '@rc %s\n' $?
  out=$(modprobe -n -v -S "$V" "$m" 2>/dev/null); rc=$?
  printf '@N\n%s\n@rc %s\n' "$out" $rc
  case "$out" in *install*)
    printf '@I\n'; modprobe -n -v -i -S "$V" "$m" 2>/dev/null; printf '@rc %s\n' $?;;
  esac
done
"#;

/// Whether an `insmod PATH …` line loads the object of module `m`.
fn insmods(line: &str, m: &str) -> bool {
    line.strip_prefix("insmod ")
        .and_then(|r| r.split(' ').next())
        .map(|p| {
            let file = p.rsplit('/').next().unwrap_or(p);
            canonical(file.split(".ko").next().unwrap_or(file)) == canonical(m)
        })
        .unwrap_or(false)
}

pub(super) fn oracle(copy: &RootCopy, kernel: &Kernel) -> Result<Truth, String> {
    let mut args = vec!["sh", "-c", SCRIPT, "sh", kernel.version.as_str()];
    args.extend(kernel.modules.iter().map(|m| m.name.as_str()));
    let out = copy.chroot(&args);
    if !out.status.success() {
        return Err(format!("  the oracle script failed: {out:?}"));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut blacklist = BTreeSet::new();
    let mut modules: BTreeMap<String, ModuleTruth> = BTreeMap::new();
    // Sections: (module, part, lines).
    let mut current: Option<(String, char)> = None;
    let mut lines: Vec<&str> = Vec::new();
    let mut in_config = true;
    for l in text.split('\n') {
        if in_config {
            if l.starts_with("# End of configuration files") {
                in_config = false;
            } else if let Some(name) = l.strip_prefix("blacklist ") {
                blacklist.insert(name.to_string());
            }
            continue;
        }
        if let Some(m) = l.strip_prefix("@@ ") {
            current = Some((m.to_string(), ' '));
            modules.entry(m.to_string()).or_default();
        } else if let Some(part) = l.strip_prefix('@').filter(|p| p.len() == 1) {
            if let Some(c) = &mut current {
                c.1 = part.chars().next().unwrap_or(' ');
            }
            lines.clear();
        } else if let Some(rc) = l.strip_prefix("@rc ") {
            let Some((m, part)) = &current else { continue };
            let ok = rc == "0";
            let t = modules.get_mut(m).expect("module section");
            match part {
                'R' => t.lookup = ok.then(|| lines.iter().map(|s| s.to_string()).collect()),
                'N' => {
                    t.output = lines.join("\n");
                    t.by_name = (ok || !lines.is_empty()).then(|| {
                        lines
                            .iter()
                            .find(|l| insmods(l, m))
                            .or(lines.last())
                            .map(|s| s.to_string())
                            .unwrap_or_default()
                    });
                }
                'I' => {
                    t.options = lines
                        .iter()
                        .find(|l| insmods(l, m))
                        .and_then(|l| l.strip_prefix("insmod "))
                        .and_then(|r| r.split_once(' '))
                        .map(|(_, o)| o.to_string());
                }
                _ => {}
            }
            lines.clear();
        } else if !l.is_empty() || !lines.is_empty() {
            lines.push(l);
        }
    }
    if let Some(m) = kernel
        .modules
        .iter()
        .find(|m| !modules.contains_key(&m.name))
    {
        return Err(format!(
            "  the oracle script printed nothing for {}: {out:?}",
            m.name
        ));
    }
    Ok(Truth { blacklist, modules })
}

/// An install command that does nothing, as the rules accept it: one of these words
/// once /bin/sh has dropped a comment and blanks (spaces and tabs).
fn does_nothing(cmd: &str) -> bool {
    let blank = |c: char| c == ' ' || c == '\t';
    let mut end = cmd.len();
    for (i, c) in cmd.char_indices() {
        if c == '#' && (i == 0 || cmd[..i].ends_with(blank)) {
            end = i;
            break;
        }
    }
    [
        "/bin/false",
        "/usr/bin/false",
        "false",
        "/bin/true",
        "/usr/bin/true",
        "true",
    ]
    .contains(&cmd[..end].trim_matches(blank))
}

/// The rule's verdict from modprobe's answers (`None`: they cannot tell).
pub(super) fn expected(m: &Module, t: &ModuleTruth, blacklisted: bool) -> Option<bool> {
    match m.state {
        State::Builtin => return Some(false),
        State::Absent => return Some(true),
        State::Available => {}
    }
    let own = t.lookup.as_deref() == Some(&[canonical(&m.name)]);
    if !own {
        return (!blacklisted).then_some(false);
    }
    let line = t.by_name.as_deref()?;
    if insmods(line, &m.name) {
        return Some(false);
    }
    let cmd = line.strip_prefix("install ")?;
    let cmd = cmd.strip_suffix(&format!(" {}", t.options.as_deref()?))?;
    Some(does_nothing(cmd) && blacklisted)
}
