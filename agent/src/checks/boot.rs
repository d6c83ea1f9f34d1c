//! `boot.*` checks: the boot loader (GRUB password, kernel command line), AppArmor
//! profiles, login banners, and the GNOME display manager (see [`gdm`]).

pub mod gdm;

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::Deserialize;

use crate::facts::packages::packages;
use crate::facts::units::unit;
use crate::facts::{strip_comment, FactError, Facts, FileKind};
use crate::model::{Outcome, Status};

/// Where Debian's GRUB reads its configuration (the EFI stub chains to it).
pub const GRUB_CFG: &str = "/boot/grub/grub.cfg";

fn default_grub_cfg() -> String {
    GRUB_CFG.to_string()
}

/// The `boot.*` check kinds.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
pub enum Check {
    /// grub.cfg names superusers (`set superusers=`) and gives at least one of them a
    /// `password_pbkdf2` hash. No grub.cfg: not applicable.
    #[serde(rename = "boot.grub_password")]
    GrubPassword {
        #[serde(default = "default_grub_cfg")]
        config: String,
    },
    /// Every kernel (`linux`) line of grub.cfg carries each of `params`
    /// (`name=value`, the last occurrence on a line counting, or a bare `name`).
    /// memtest86+ entries are not kernels and are skipped.
    /// No grub.cfg: not applicable.
    #[serde(rename = "boot.kernel_param")]
    KernelParam {
        params: Vec<String>,
        #[serde(default = "default_grub_cfg")]
        config: String,
    },
    /// AppArmor profiles are loaded and none is in a mode weaker than complain
    /// (`enforce_only`: weaker than enforce), and no process runs unconfined while a
    /// profile for its executable is loaded. Offline: the profiles under
    /// /etc/apparmor.d that load at boot are judged instead.
    #[serde(rename = "boot.apparmor_profiles")]
    ApparmorProfiles {
        #[serde(default)]
        enforce_only: bool,
    },
    /// A login banner file shows no operating system identification: no `\m \r \s \v`
    /// escapes (any case) and no mention (any case) of the os-release `ID` or of any
    /// of `names`. With `require_text` the file must exist and hold text; otherwise a
    /// missing file passes.
    #[serde(rename = "boot.banner")]
    Banner {
        path: String,
        #[serde(default)]
        require_text: bool,
        /// Further operating system names to look for (the benchmark's distribution).
        #[serde(default)]
        names: Vec<String>,
    },
    /// Ubuntu's dynamic message of the day reveals no operating system details.
    /// pam_motd (a `pam_motd.so` line without `noupdate` in /etc/pam.d/login or
    /// sshd) runs the executable scripts of /etc/update-motd.d at every login and
    /// shows their output (/run/motd.dynamic). Scripts that print the distribution,
    /// release or kernel (uname, lsb_release, os-release, lsb-release, /proc/version,
    /// or the os-release `ID` or one of `names` in their text) fail; on a live
    /// system the last generated /run/motd.dynamic is judged too. No pam_motd that
    /// runs the scripts: pass.
    #[serde(rename = "boot.dynamic_motd")]
    DynamicMotd {
        #[serde(default)]
        names: Vec<String>,
    },
    /// A dconf setting as seen through `profile` (`gdm` for the login screen, `user`
    /// for sessions). Not applicable when gdm3 is not installed.
    #[serde(rename = "boot.gdm_setting")]
    GdmSetting {
        profile: String,
        /// The full key path, e.g. `/org/gnome/login-screen/disable-user-list`.
        key: String,
        /// The value must be exactly this (GVariant text, e.g. `true`).
        equals: Option<String>,
        /// Numeric bounds (inclusive) for integer values such as `uint32 900`.
        min: Option<i64>,
        max: Option<i64>,
        /// The value must be a non-empty string.
        #[serde(default)]
        non_empty: bool,
    },
    /// Each key is locked in a system database of `profile`, so users cannot
    /// override it. Not applicable when gdm3 is not installed.
    #[serde(rename = "boot.gdm_lock")]
    GdmLock { profile: String, keys: Vec<String> },
    /// GDM does not enable XDMCP (`[xdmcp] Enable=true` in /etc/gdm3/daemon.conf or
    /// custom.conf). Not applicable when gdm3 is not installed.
    #[serde(rename = "boot.gdm_xdmcp")]
    GdmXdmcp {},
}

impl Check {
    pub fn eval(&self, facts: &Facts) -> Outcome {
        let r = match self {
            Check::GrubPassword { config } => grub_password(facts, config),
            Check::KernelParam { params, config } => kernel_param(facts, params, config),
            Check::ApparmorProfiles { enforce_only } => apparmor(facts, *enforce_only),
            Check::Banner {
                path,
                require_text,
                names,
            } => banner(facts, path, *require_text, names),
            Check::DynamicMotd { names } => dynamic_motd(facts, names),
            Check::GdmSetting {
                profile,
                key,
                equals,
                min,
                max,
                non_empty,
            } => gdm::setting(
                facts,
                profile,
                key,
                &gdm::Want {
                    equals: equals.clone(),
                    min: *min,
                    max: *max,
                    non_empty: *non_empty,
                },
            ),
            Check::GdmLock { profile, keys } => gdm::locks(facts, profile, keys),
            Check::GdmXdmcp {} => gdm::xdmcp(facts),
        };
        r.unwrap_or_else(Outcome::from)
    }
}

// ---------------------------------------------------------------------------------
// GRUB

/// A kernel line of grub.cfg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelLine {
    /// `path:line`.
    pub source: String,
    /// The kernel image and its arguments, unquoted.
    pub args: Vec<String>,
}

impl KernelLine {
    /// The value of the last `name=value` argument (`""` for a bare `name`).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.args
            .iter()
            .skip(1)
            .rev()
            .find_map(|a| match a.split_once('=') {
                Some((k, v)) if k == name => Some(v),
                None if a == name => Some(""),
                _ => None,
            })
    }
}

/// What grub.cfg says about kernels and boot-loader authentication.
#[derive(Debug, Clone, Default)]
pub struct GrubCfg {
    pub path: String,
    pub kernels: Vec<KernelLine>,
    /// The last `set superusers=` (source, users).
    pub superusers: Option<(String, Vec<String>)>,
    /// `password_pbkdf2` / `password` lines: (source, command, user).
    pub passwords: Vec<(String, String, String)>,
}

/// Splits a GRUB script line into words, honouring quotes and backslashes.
pub fn grub_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// Parses grub.cfg text.
pub fn parse_grub(text: &str, path: &str) -> GrubCfg {
    let mut cfg = GrubCfg {
        path: path.to_string(),
        ..Default::default()
    };
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let source = format!("{path}:{}", n + 1);
        let words = grub_words(line);
        let Some(cmd) = words.first() else { continue };
        match cmd.as_str() {
            "linux" | "linux16" | "linuxefi" => {
                // memtest86+ is booted with `linux16`/`linux` too, but it is not Linux.
                let image = words
                    .get(1)
                    .map(|w| w.rsplit('/').next().unwrap_or(w))
                    .unwrap_or("");
                if !image.starts_with("memtest") {
                    cfg.kernels.push(KernelLine {
                        source,
                        args: words[1..].to_vec(),
                    });
                }
            }
            "set" => {
                if let Some(v) = words.get(1).and_then(|w| w.strip_prefix("superusers=")) {
                    let users = v
                        .split([' ', ',', ';', '|', '&'])
                        .filter(|u| !u.is_empty())
                        .map(String::from)
                        .collect();
                    cfg.superusers = Some((source, users));
                }
            }
            "password_pbkdf2" | "password" => {
                if let Some(user) = words.get(1) {
                    let ok = cmd == "password"
                        || words.get(2).is_some_and(|h| h.starts_with("grub.pbkdf2."));
                    if ok {
                        cfg.passwords.push((source, cmd.clone(), user.clone()));
                    }
                }
            }
            _ => {}
        }
    }
    cfg
}

/// grub.cfg at `path`, parsed once per scan; `None` when it does not exist.
pub fn grub_config(facts: &Facts, path: &str) -> Result<Option<Arc<GrubCfg>>, FactError> {
    let r = facts.memo(
        &format!("grub-cfg:{path}"),
        || -> Result<Option<Arc<GrubCfg>>, FactError> {
            Ok(facts.read(path)?.map(|t| Arc::new(parse_grub(&t, path))))
        },
    );
    (*r).clone()
}

fn no_grub(path: &str) -> Outcome {
    Outcome::not_applicable(format!(
        "{path} does not exist: GRUB is not the boot loader of this system"
    ))
}

fn grub_password(facts: &Facts, path: &str) -> Result<Outcome, FactError> {
    let Some(cfg) = grub_config(facts, path)? else {
        return Ok(no_grub(path));
    };
    let mut failures = Vec::new();
    let mut found = Vec::new();
    let users: Vec<String> = match &cfg.superusers {
        Some((src, users)) if !users.is_empty() => {
            found.push(format!("{src}: set superusers=\"{}\"", users.join(" ")));
            users.clone()
        }
        Some((src, _)) => {
            failures.push(format!("{src}: superusers is set to an empty list"));
            Vec::new()
        }
        None => {
            failures.push(format!(
                "{path} does not set superusers: anyone at the console can edit boot entries"
            ));
            Vec::new()
        }
    };
    let hashed: Vec<&(String, String, String)> = cfg
        .passwords
        .iter()
        .filter(|(_, cmd, u)| cmd == "password_pbkdf2" && users.contains(u))
        .collect();
    for (src, _, u) in &hashed {
        found.push(format!("{src}: password_pbkdf2 {u} grub.pbkdf2.… (hashed)"));
    }
    for (src, cmd, u) in cfg.passwords.iter().filter(|(_, cmd, _)| cmd == "password") {
        found.push(format!(
            "{src}: {cmd} {u} … (plain-text password, not accepted)"
        ));
    }
    if !users.is_empty() && hashed.is_empty() {
        failures.push(format!(
            "no password_pbkdf2 entry in {path} for superuser(s) {}",
            users.join(", ")
        ));
    }
    Ok(Outcome::from_findings(failures, found))
}

/// `GRUB_CMDLINE_LINUX*` assignments in /etc/default/grub and /etc/default/grub.d.
fn default_grub_cmdlines(facts: &Facts) -> Result<Vec<(String, String, String)>, FactError> {
    let mut files = vec!["/etc/default/grub".to_string()];
    files.extend(facts.dir_files("/etc/default/grub.d", ".cfg")?);
    let mut out = Vec::new();
    for f in files {
        let Some(text) = facts.read(&f)? else {
            continue;
        };
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            if let Some((k, v)) = line.split_once('=') {
                if k == "GRUB_CMDLINE_LINUX" || k == "GRUB_CMDLINE_LINUX_DEFAULT" {
                    let v = grub_words(v).join(" ");
                    out.push((format!("{f}:{}", n + 1), k.to_string(), v));
                }
            }
        }
    }
    Ok(out)
}

fn kernel_param(facts: &Facts, params: &[String], path: &str) -> Result<Outcome, FactError> {
    let Some(cfg) = grub_config(facts, path)? else {
        return Ok(no_grub(path));
    };
    if cfg.kernels.is_empty() {
        return Ok(Outcome::fail(format!("{path} has no linux kernel lines")));
    }
    let mut failures = Vec::new();
    let mut found = Vec::new();
    for k in &cfg.kernels {
        let mut missing = Vec::new();
        for p in params {
            let (name, want) = p.split_once('=').unwrap_or((p.as_str(), ""));
            match k.param(name) {
                Some(v) if v == want => {}
                Some(v) if want.is_empty() => missing.push(format!("{name} (found {name}={v})")),
                Some(v) => missing.push(format!("{p} (found {name}={v})")),
                None => missing.push(p.clone()),
            }
        }
        let image = k.args.first().map(String::as_str).unwrap_or("");
        if missing.is_empty() {
            found.push(format!(
                "{}: linux {image} … {}",
                k.source,
                params.join(" ")
            ));
        } else {
            failures.push(format!(
                "{}: linux {image} lacks {}",
                k.source,
                missing.join(", ")
            ));
        }
    }
    if !failures.is_empty() {
        for (src, key, v) in default_grub_cmdlines(facts)? {
            let words: BTreeSet<&str> = v.split_whitespace().collect();
            if params.iter().all(|p| words.contains(p.as_str())) {
                failures.push(format!(
                    "{src}: {key} has {} but {path} was not regenerated (run update-grub)",
                    params.join(" ")
                ));
            }
        }
    }
    Ok(Outcome::from_findings(failures, found))
}

// ---------------------------------------------------------------------------------
// AppArmor

/// Profiles named one by one in evidence; the rest are counted.
const MAX_LISTED: usize = 20;

/// File names under /etc/apparmor.d that apparmor_parser skips.
fn apparmor_ignored(name: &str) -> bool {
    const SUFFIXES: [&str; 13] = [
        "~",
        ".dpkg-new",
        ".dpkg-old",
        ".dpkg-dist",
        ".dpkg-bak",
        ".dpkg-remove",
        ".ucf-old",
        ".ucf-dist",
        ".ucf-new",
        ".rpmnew",
        ".rpmsave",
        ".orig",
        ".rej",
    ];
    name.starts_with('.') || name == "README" || SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// The flags of the profiles in a policy file (`flags=(complain)` → `complain`).
pub fn profile_flags(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for raw in text.lines() {
        let line = strip_comment(raw);
        let mut rest = line;
        while let Some(i) = rest.find("flags") {
            let after = rest[i + 5..].trim_start();
            rest = &rest[i + 5..];
            let Some(after) = after.strip_prefix('=') else {
                continue;
            };
            let Some(after) = after.trim_start().strip_prefix('(') else {
                continue;
            };
            let Some(end) = after.find(')') else { continue };
            for f in after[..end]
                .split([',', ' ', '\t'])
                .filter(|f| !f.is_empty())
            {
                out.insert(f.to_string());
            }
        }
    }
    out
}

/// Loaded profiles from /sys/kernel/security/apparmor/profiles: (name, mode).
pub fn parse_loaded_profiles(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim_end();
            let (name, mode) = l.rsplit_once(" (")?;
            Some((name.to_string(), mode.strip_suffix(')')?.to_string()))
        })
        .collect()
}

fn apparmor(facts: &Facts, enforce_only: bool) -> Result<Outcome, FactError> {
    if facts.is_live() {
        apparmor_live(facts, enforce_only)
    } else {
        apparmor_offline(facts, enforce_only)
    }
}

fn mode_ok(mode: &str, enforce_only: bool) -> bool {
    matches!(mode, "enforce" | "kill") || (!enforce_only && mode == "complain")
}

fn apparmor_live(facts: &Facts, enforce_only: bool) -> Result<Outcome, FactError> {
    let path = "/sys/kernel/security/apparmor/profiles";
    let Some(text) = facts.read_runtime(path)? else {
        return Ok(Outcome::fail(format!(
            "AppArmor is not active in the running kernel ({path} does not exist)"
        )));
    };
    let profiles = parse_loaded_profiles(&text);
    if profiles.is_empty() {
        return Ok(Outcome::fail(format!(
            "no AppArmor profiles are loaded ({path} is empty)"
        )));
    }
    let mut failures = Vec::new();
    let mut found = Vec::new();
    let mut by_mode: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for (_, mode) in &profiles {
        *by_mode.entry(mode.as_str()).or_default() += 1;
    }
    let counts: Vec<String> = by_mode.iter().map(|(m, n)| format!("{n} {m}")).collect();
    found.push(format!(
        "{} AppArmor profiles loaded ({path}): {}",
        profiles.len(),
        counts.join(", ")
    ));
    let want = if enforce_only {
        "enforce"
    } else {
        "enforce or complain"
    };
    let weak: Vec<&(String, String)> = profiles
        .iter()
        .filter(|(_, m)| !mode_ok(m, enforce_only))
        .collect();
    for (name, mode) in weak.iter().take(MAX_LISTED) {
        failures.push(format!(
            "{path}: profile {name} is in {mode} mode, not {want}"
        ));
    }
    if weak.len() > MAX_LISTED {
        failures.push(format!(
            "{} more profiles are in a mode other than {want} (first {MAX_LISTED} listed)",
            weak.len() - MAX_LISTED
        ));
    }
    let names: BTreeSet<&str> = profiles.iter().map(|(n, _)| n.as_str()).collect();
    let mut examined = 0;
    for pid in facts
        .list_dir("/proc")?
        .into_iter()
        .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
    {
        let label = match facts.read(&format!("/proc/{pid}/attr/apparmor/current")) {
            Ok(Some(l)) => l,
            _ => match facts.read(&format!("/proc/{pid}/attr/current")) {
                Ok(Some(l)) => l,
                _ => continue,
            },
        };
        let label = label.trim_end_matches(['\0', '\n', ' ']).to_string();
        let exe = match facts.read_link(&format!("/proc/{pid}/exe")) {
            Ok(Some(e)) => e,
            _ => continue, // kernel threads and vanished processes
        };
        examined += 1;
        if label == "unconfined" && names.contains(exe.as_str()) {
            failures.push(format!(
                "process {pid} ({exe}) runs unconfined although profile {exe} is loaded"
            ));
        } else if enforce_only && label.ends_with("(complain)") {
            failures.push(format!(
                "process {pid} ({exe}) runs in complain mode: {label}"
            ));
        }
    }
    found.push(format!(
        "{examined} processes examined (/proc/*/attr/current): none unconfined while a profile for its executable is loaded"
    ));
    if !failures.is_empty() {
        found.pop();
    }
    Ok(Outcome::from_findings(failures, found))
}

fn apparmor_offline(facts: &Facts, enforce_only: bool) -> Result<Outcome, FactError> {
    let mut failures = Vec::new();
    let mut found = Vec::new();
    let pk = packages(facts);
    let pk = pk.as_ref().as_ref().map_err(Clone::clone)?;
    if pk.is_installed("apparmor") {
        found.push(pk.describe("apparmor"));
    } else {
        failures.push(format!(
            "{}: nothing loads AppArmor profiles at boot",
            pk.describe("apparmor")
        ));
    }
    let svc = unit(facts, "apparmor.service");
    let svc = svc.as_ref().as_ref().map_err(Clone::clone)?;
    if svc.masked {
        failures.push(svc.describe());
    }
    let dir = "/etc/apparmor.d";
    let mut profiles = Vec::new();
    for name in facts.list_dir(dir)? {
        if apparmor_ignored(&name) {
            continue;
        }
        let path = format!("{dir}/{name}");
        match facts.stat(&path)? {
            Some(m) if m.kind == FileKind::File => {}
            _ => continue,
        }
        if facts.lstat(&format!("{dir}/disable/{name}"))?.is_some() {
            found.push(format!("{path}: disabled ({dir}/disable/{name})"));
            continue;
        }
        let text = facts.read(&path)?.unwrap_or_default();
        let mut flags = profile_flags(&text);
        if facts
            .lstat(&format!("{dir}/force-complain/{name}"))?
            .is_some()
        {
            flags.insert("complain".into());
        }
        profiles.push((path, flags));
    }
    if profiles.is_empty() {
        failures.push(format!("no AppArmor profiles in {dir} are loaded at boot"));
    } else {
        found.push(format!(
            "{} AppArmor policy files in {dir} load at boot",
            profiles.len()
        ));
    }
    let want = if enforce_only {
        "enforce"
    } else {
        "enforce or complain"
    };
    let mut weak = Vec::new();
    for (path, flags) in &profiles {
        for bad in ["unconfined", "complain"] {
            if flags.contains(bad) && !mode_ok(bad, enforce_only) {
                weak.push(format!("{path}: a profile loads in {bad} mode, not {want}"));
            }
        }
    }
    let more = weak.len().saturating_sub(MAX_LISTED);
    failures.extend(weak.into_iter().take(MAX_LISTED));
    if more > 0 {
        failures.push(format!(
            "{more} more policy files load a profile in a mode other than {want} (first {MAX_LISTED} listed)"
        ));
    }
    found.push(
        "runtime state (loaded profiles, confined processes) not examined: offline root".into(),
    );
    Ok(Outcome::from_findings(failures, found))
}

// ---------------------------------------------------------------------------------
// Banners

/// The os-release `ID` of the root (lower case), if known.
pub fn os_id(facts: &Facts) -> Result<Option<String>, FactError> {
    for p in ["/etc/os-release", "/usr/lib/os-release"] {
        if let Some(text) = facts.read(p)? {
            for line in text.lines() {
                if let Some(v) = line.trim().strip_prefix("ID=") {
                    let v = v.trim().trim_matches(['"', '\'']).to_ascii_lowercase();
                    return Ok((!v.is_empty()).then_some(v));
                }
            }
            return Ok(None);
        }
    }
    Ok(None)
}

/// The operating system names a banner must not mention: `names` and the
/// os-release `ID`, lower case.
fn os_names(facts: &Facts, names: &[String]) -> Result<Vec<String>, FactError> {
    let mut out: Vec<String> = names
        .iter()
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    if let Some(id) = os_id(facts)? {
        if !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// Lines of banner text that identify the system: `\m \r \s \v` escapes (with
/// `escapes`) or an operating system name.
fn identifying_lines(text: &str, path: &str, names: &[String], escapes: bool) -> Vec<String> {
    let mut failures = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let b = line.as_bytes();
        let found: Vec<String> = b
            .windows(2)
            .filter(|w| {
                escapes
                    && w[0] == b'\\'
                    && matches!(w[1].to_ascii_lowercase(), b'm' | b'r' | b's' | b'v')
            })
            .map(|w| format!("\\{}", w[1] as char))
            .collect();
        if !found.is_empty() {
            failures.push(format!(
                "{path}:{}: {} shows system information ({})",
                n + 1,
                line.trim(),
                found.join(" ")
            ));
        }
        let lower = line.to_ascii_lowercase();
        if let Some(id) = names.iter().find(|n| lower.contains(n.as_str())) {
            failures.push(format!(
                "{path}:{}: {} names the operating system ({id})",
                n + 1,
                line.trim()
            ));
        }
    }
    failures
}

fn banner(
    facts: &Facts,
    path: &str,
    require_text: bool,
    names: &[String],
) -> Result<Outcome, FactError> {
    let Some(text) = facts.read(path)? else {
        return Ok(if require_text {
            Outcome::fail(format!("{path} does not exist: no warning banner is shown"))
        } else {
            Outcome::pass(format!("{path} does not exist"))
        });
    };
    if text.trim().is_empty() {
        return Ok(if require_text {
            Outcome::fail(format!("{path} is empty: no warning banner is shown"))
        } else {
            Outcome::pass(format!("{path} is empty"))
        });
    }
    let os_names = os_names(facts, names)?;
    let failures = identifying_lines(&text, path, &os_names, true);
    let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
    let found = vec![format!(
        "{path}: {lines} line(s) of text without operating system identification"
    )];
    Ok(if failures.is_empty() {
        Outcome::new(Status::Pass, found)
    } else {
        Outcome::new(Status::Fail, failures)
    })
}

const UPDATE_MOTD_DIR: &str = "/etc/update-motd.d";
const MOTD_DYNAMIC: &str = "/run/motd.dynamic";

/// Words in an update-motd script that mean it prints system identification.
const IDENTIFYING_COMMANDS: [&str; 6] = [
    "uname",
    "lsb_release",
    "lsb-release",
    "os-release",
    "distrib_",
    "/proc/version",
];

/// Whether run-parts (`--lsbsysinit`, as pam_motd calls it) runs a file of this
/// name: Debian's cron-script names (`[A-Za-z0-9_-]+`), or LSB hierarchical names
/// (`_?([a-z0-9_.]+-)+[a-z0-9]+`), never dpkg's leftovers.
fn run_parts_name(name: &str) -> bool {
    if [".dpkg-old", ".dpkg-dist", ".dpkg-new", ".dpkg-tmp"]
        .iter()
        .any(|s| name.ends_with(s))
    {
        return false;
    }
    let cron = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if cron {
        return true;
    }
    let lsb = name.strip_prefix('_').unwrap_or(name);
    let Some((groups, last)) = lsb.rsplit_once('-') else {
        return false;
    };
    let low = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !last.is_empty()
        && last.bytes().all(low)
        && groups
            .split('-')
            .all(|g| !g.is_empty() && g.bytes().all(|b| low(b) || b == b'_' || b == b'.'))
}

/// pam_motd lines that run the update-motd scripts (no `noupdate` argument).
fn pam_motd_updaters(facts: &Facts) -> Result<Vec<String>, FactError> {
    let mut out = Vec::new();
    for path in ["/etc/pam.d/login", "/etc/pam.d/sshd"] {
        let Some(text) = facts.read(path)? else {
            continue;
        };
        for (n, raw) in text.lines().enumerate() {
            let line = strip_comment(raw);
            let words: Vec<&str> = line.split_whitespace().collect();
            let Some(i) = words
                .iter()
                .position(|w| w.rsplit('/').next() == Some("pam_motd.so"))
            else {
                continue;
            };
            if !words[i + 1..].contains(&"noupdate") {
                out.push(format!("{path}:{}: {}", n + 1, words.join(" ")));
            }
        }
    }
    Ok(out)
}

fn dynamic_motd(facts: &Facts, names: &[String]) -> Result<Outcome, FactError> {
    let updaters = pam_motd_updaters(facts)?;
    if updaters.is_empty() {
        return Ok(Outcome::pass(format!(
            "no pam_motd line in /etc/pam.d/login or /etc/pam.d/sshd runs the scripts of {UPDATE_MOTD_DIR} (absent, or with noupdate): no dynamic message of the day is generated"
        )));
    }
    let os_names = os_names(facts, names)?;
    let mut failures = Vec::new();
    let mut found = updaters
        .iter()
        .map(|u| format!("{u}: runs the scripts of {UPDATE_MOTD_DIR} at login"))
        .collect::<Vec<_>>();
    let mut judged = 0;
    for name in facts.list_dir(UPDATE_MOTD_DIR)? {
        if !run_parts_name(&name) {
            continue;
        }
        let path = format!("{UPDATE_MOTD_DIR}/{name}");
        let Some(m) = facts.stat(&path)? else {
            continue;
        };
        if m.kind != FileKind::File || m.mode & 0o111 == 0 {
            continue;
        }
        judged += 1;
        let text = facts.read(&path)?.unwrap_or_default();
        let mut hits: BTreeSet<String> = BTreeSet::new();
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with('#') {
                continue;
            }
            let lower = t.to_ascii_lowercase();
            let words = IDENTIFYING_COMMANDS
                .iter()
                .copied()
                .chain(os_names.iter().map(String::as_str));
            for w in words {
                if lower.contains(w) {
                    hits.insert(w.to_string());
                }
            }
        }
        if hits.is_empty() {
            found.push(format!(
                "{path} (mode {:04o}) prints no operating system identification",
                m.mode
            ));
        } else {
            failures.push(format!(
                "{path} (mode {:04o}) runs at login and prints system identification (uses {})",
                m.mode,
                hits.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    if judged == 0 {
        found.push(format!("no executable script in {UPDATE_MOTD_DIR}"));
    }
    if facts.is_live() {
        match facts.read_runtime(MOTD_DYNAMIC)? {
            Some(text) => {
                let bad = identifying_lines(&text, MOTD_DYNAMIC, &os_names, false);
                if bad.is_empty() {
                    found.push(format!(
                        "{MOTD_DYNAMIC} (the last generated message) names no operating system"
                    ));
                }
                failures.extend(bad);
            }
            None => found.push(format!("{MOTD_DYNAMIC} does not exist")),
        }
    } else {
        found.push(format!(
            "{MOTD_DYNAMIC} (generated at login) not examined: offline root; the scripts that generate it were judged"
        ));
    }
    Ok(Outcome::from_findings(failures, found))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grub_words_and_params() {
        assert_eq!(
            grub_words("linux\t/vmlinuz root='UUID=a b' ro \"x\\\"y\""),
            ["linux", "/vmlinuz", "root=UUID=a b", "ro", "x\"y"]
        );
        let cfg = parse_grub(
            "# linux /old apparmor=0\nmenuentry 'Debian' {\n\tlinux /vmlinuz-6.1 root=/dev/sda1 apparmor=0 ro apparmor=1 quiet\n}\n\
             set superusers=\"root,admin\"\npassword_pbkdf2 root grub.pbkdf2.sha512.10000.AB.CD\npassword admin secret\n",
            "/boot/grub/grub.cfg",
        );
        assert_eq!(cfg.kernels.len(), 1);
        assert_eq!(cfg.kernels[0].param("apparmor"), Some("1"));
        assert_eq!(cfg.kernels[0].param("quiet"), Some(""));
        assert_eq!(cfg.kernels[0].param("security"), None);
        assert_eq!(cfg.superusers.as_ref().unwrap().1, ["root", "admin"]);
        assert_eq!(cfg.passwords.len(), 2);
        assert_eq!(cfg.kernels[0].source, "/boot/grub/grub.cfg:3");
    }

    #[test]
    fn run_parts_names_and_identifying_lines() {
        assert!(run_parts_name("00-header") && run_parts_name("50-landscape-sysinfo"));
        assert!(run_parts_name("_my.site-motd") && run_parts_name("local.d-banner"));
        assert!(!run_parts_name("10-info.sh") && !run_parts_name("README.txt"));
        assert!(!run_parts_name(""));
        assert!(
            !run_parts_name(".hidden") && !run_parts_name("x.dpkg-old") && !run_parts_name("a b")
        );
        let names = vec!["ubuntu".to_string()];
        let bad = identifying_lines(
            "Welcome to Ubuntu 22.04 LTS\nAuthorised use only\n",
            "/m",
            &names,
            false,
        );
        assert_eq!(bad.len(), 1);
        assert!(bad[0].starts_with("/m:1:"));
        assert!(identifying_lines("kernel \\r\n", "/m", &names, false).is_empty());
        assert_eq!(
            identifying_lines("kernel \\r\n", "/m", &names, true).len(),
            1
        );
    }

    #[test]
    fn apparmor_parsers() {
        let p = parse_loaded_profiles(
            "/usr/sbin/cupsd (enforce)\nlsb_release (complain)\nweird name (x) (kill)\n",
        );
        assert_eq!(p[0], ("/usr/sbin/cupsd".into(), "enforce".into()));
        assert_eq!(p[2], ("weird name (x)".into(), "kill".into()));
        let f = profile_flags("profile foo /usr/bin/foo flags = (attach_disconnected, complain) {\n  # flags=(unconfined)\n}\n");
        assert!(
            f.contains("complain")
                && f.contains("attach_disconnected")
                && !f.contains("unconfined")
        );
        assert!(apparmor_ignored("usr.bin.foo.dpkg-old") && !apparmor_ignored("usr.bin.foo"));
    }
}
