//! Reading PAM service files (/etc/pam.d) as libpam does on Debian and Ubuntu:
//! `#` comments, backslash line continuations, `[...]` controls and arguments, a
//! leading `-` on the type, `include` and `substack` (lines of one type from another
//! file), and Debian's `@include` (every line of another file). Arguments lose the
//! brackets of `[...]` as libpam strips them. A line whose module is not installed
//! is left out of the stack with a note: libpam cannot run it, so it enforces nothing
//! (judged only when the root has a PAM module directory at all); it stays in the
//! stack's [`Handler`] chain, which [`path`] walks as libpam does.

pub mod path;

use std::sync::Arc;

use crate::facts::include_budget::IncludeBudget;
use crate::facts::{Fact, KeyedFact};
use crate::facts::{FactError, Facts};

/// Where service files live.
pub const PAM_D: &str = "/etc/pam.d";
const MAX_DEPTH: usize = 16;

/// One module line of an expanded stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PamLine {
    /// auth, account, password or session (lower case).
    pub kind: String,
    /// The control as written (`required`, `[success=1 default=ignore]`, …).
    pub control: String,
    /// The module as written (`pam_unix.so` or a full path).
    pub module: String,
    pub args: Vec<String>,
    /// `path:line`.
    pub source: String,
    /// How the line was reached from the service file, e.g. `via @include common-auth`.
    pub via: Option<String>,
}

impl PamLine {
    /// The module's file name, e.g. `pam_unix.so`.
    pub fn module_name(&self) -> &str {
        self.module.rsplit('/').next().unwrap_or(&self.module)
    }

    /// Whether this line calls `module` (by file name).
    pub fn is(&self, module: &str) -> bool {
        self.module_name() == module
    }

    /// The argument `name` or `name=...`, if present (case-sensitive).
    pub fn arg(&self, name: &str) -> Option<&str> {
        self.args
            .iter()
            .map(String::as_str)
            .find(|a| arg_is(a, name))
    }

    /// `path:line: type control module args` for evidence.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{}: {} {} {}",
            self.source, self.kind, self.control, self.module
        );
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }
}

/// Whether argument `a` is `name` or `name=value`.
pub fn arg_is(a: &str, name: &str) -> bool {
    a == name || (a.starts_with(name) && a[name.len()..].starts_with('='))
}

/// One entry of the chain libpam builds from a stack, in order: what it calls when
/// the walk reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// A module line: the index of its [`PamLine`] in [`Stack::lines`].
    Module(usize),
    /// A module that is not installed: libpam calls nothing and takes
    /// PAM_MODULE_UNKNOWN, which the line's control then acts on.
    Missing(String),
    /// A line libpam cannot use (an unknown type, no control or module, an include
    /// it cannot read): it is kept and fails with PAM_PERM_DENIED when reached.
    Broken(String),
    /// The start of a `substack`: its lines follow one level deeper, and a jump
    /// over it counts it as one line.
    Substack(String),
}

/// One entry of a type's chain (see [`Call`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handler {
    /// auth, account, password or session.
    pub kind: String,
    /// How deep in substacks (0: the service's own level; includes do not count).
    pub level: usize,
    /// The control as written (for a missing include, the include's own).
    pub control: String,
    /// `path:line`.
    pub source: String,
    pub call: Call,
}

/// A service's expanded stack.
#[derive(Debug, Clone, Default)]
pub struct Stack {
    pub service: String,
    pub lines: Vec<PamLine>,
    /// Every entry libpam keeps, of every type, in order (see [`Stack::chain`]).
    pub handlers: Vec<Handler>,
    /// Remarks: missing files, bad lines.
    pub notes: Vec<String>,
    /// Whether the service file itself exists.
    pub exists: bool,
    /// Includes followed for the whole stack.
    included: IncludeBudget,
}

impl Stack {
    /// Lines calling `module`, optionally only of type `kind`.
    pub fn module_lines(&self, module: &str, kind: Option<&str>) -> Vec<&PamLine> {
        self.lines
            .iter()
            .filter(|l| l.is(module) && kind.is_none_or(|k| l.kind == k))
            .collect()
    }

    /// The path of the service file.
    pub fn path(&self) -> String {
        service_path(&self.service)
    }

    /// The chain libpam walks for `kind` (auth, account, password, session).
    pub fn chain(&self, kind: &str) -> Vec<&Handler> {
        self.handlers.iter().filter(|h| h.kind == kind).collect()
    }

    fn broken(&mut self, kind: &str, level: usize, control: &str, source: &str, why: String) {
        self.handlers.push(Handler {
            kind: kind.to_string(),
            level,
            control: control.to_string(),
            source: source.to_string(),
            call: Call::Broken(why),
        });
    }
}

const KINDS: [&str; 4] = ["auth", "account", "password", "session"];

fn service_path(name: &str) -> String {
    if name.starts_with('/') {
        name.to_string()
    } else {
        format!("{PAM_D}/{name}")
    }
}

/// The expanded stack of a service (e.g. `common-auth`, `su`), read once per scan.
pub fn stack(facts: &Facts, service: &str) -> Result<Arc<Stack>, FactError> {
    facts.get_keyed::<Stack>(service)
}

impl KeyedFact for Stack {
    type Key = str;
    type Value = Self;
    fn read(facts: &Facts, service: &str) -> Result<Self, FactError> {
        let mut st = Stack {
            service: service.to_string(),
            ..Default::default()
        };
        let path = service_path(service);
        match facts.read(&path)? {
            None => st.notes.push(format!("{path} does not exist")),
            Some(text) => {
                st.exists = true;
                let at = Where {
                    only: None,
                    via: None,
                    depth: 0,
                    level: 0,
                };
                expand(facts, &mut st, &path, &text, &at)?;
            }
        }
        Ok(st)
    }
}

/// Where a file is being expanded: the type it is read for (`None`: every type),
/// how it was reached, the include depth and the substack level.
struct Where {
    only: Option<String>,
    via: Option<String>,
    depth: usize,
    level: usize,
}

fn expand(
    facts: &Facts,
    st: &mut Stack,
    path: &str,
    text: &str,
    at: &Where,
) -> Result<(), FactError> {
    for (n, line) in logical_lines(text) {
        let source = format!("{path}:{n}");
        let toks = tokens(&line);
        let Some(first) = toks.first() else { continue };
        if first == "@include" {
            let Some(name) = toks.get(1) else {
                st.notes.push(format!("{source}: @include without a file"));
                continue;
            };
            include(
                facts,
                st,
                name,
                at,
                &source,
                &format!("@include {name}"),
                "@include",
                false,
            )?;
            continue;
        }
        let kind_raw = first.strip_prefix('-').unwrap_or(first);
        let kind = kind_raw.to_ascii_lowercase();
        let control = toks.get(1).cloned().unwrap_or_default();
        if !KINDS.contains(&kind.as_str()) {
            st.notes.push(format!(
                "{source}: unknown module type {first}; libpam makes this line fail"
            ));
            // libpam files the line under the type being read (auth at the top).
            let as_kind = at.only.clone().unwrap_or_else(|| "auth".to_string());
            st.broken(
                &as_kind,
                at.level,
                &control,
                &source,
                format!("unknown module type {first}"),
            );
            continue;
        }
        if at.only.as_deref().is_some_and(|o| o != kind) {
            continue;
        }
        let Some(module) = toks.get(2) else {
            st.notes.push(format!(
                "{source}: incomplete line; libpam makes this line fail"
            ));
            let why = if toks.len() < 2 {
                "no control"
            } else {
                "no module"
            };
            let control = if toks.len() < 2 { "" } else { control.as_str() };
            st.broken(
                &kind,
                at.level,
                control,
                &source,
                format!("{why} on the line"),
            );
            continue;
        };
        let c = control.to_ascii_lowercase();
        if c == "include" || c == "substack" {
            let inner = Where {
                only: Some(kind.clone()),
                via: at.via.clone(),
                depth: at.depth,
                level: at.level,
            };
            include(
                facts,
                st,
                module,
                &inner,
                &source,
                &format!("{c} {module}"),
                &control,
                c == "substack",
            )?;
            continue;
        }
        if let Some(missing) = not_installed(facts, module)? {
            st.notes.push(format!(
                "{source}: {module} is not installed ({missing}); libpam cannot run this line, so it enforces nothing"
            ));
            st.handlers.push(Handler {
                kind,
                level: at.level,
                control,
                source,
                call: Call::Missing(module.clone()),
            });
            continue;
        }
        st.handlers.push(Handler {
            kind: kind.clone(),
            level: at.level,
            control: control.clone(),
            source: source.clone(),
            call: Call::Module(st.lines.len()),
        });
        st.lines.push(PamLine {
            kind,
            control,
            module: module.clone(),
            args: toks[3..].iter().map(|a| unbracket(a)).collect(),
            source,
            via: at.via.clone(),
        });
    }
    Ok(())
}

/// Follows `include`, `substack` or `@include` of `name` (for `at.only`'s type, or
/// every type). A substack starts with its marker one level up; a file libpam cannot
/// read becomes a line that fails (every result bad) for each type it was read for.
#[allow(clippy::too_many_arguments)]
fn include(
    facts: &Facts,
    st: &mut Stack,
    name: &str,
    at: &Where,
    source: &str,
    how: &str,
    control: &str,
    substack: bool,
) -> Result<(), FactError> {
    if !st.included.directive(source, &mut st.notes) {
        return Ok(());
    }
    let kinds: Vec<String> = match &at.only {
        Some(k) => vec![k.clone()],
        None => KINDS.iter().map(|k| k.to_string()).collect(),
    };
    if substack {
        for k in &kinds {
            st.handlers.push(Handler {
                kind: k.clone(),
                level: at.level,
                control: control.to_string(),
                source: source.to_string(),
                call: Call::Substack(name.to_string()),
            });
        }
    }
    if at.depth + 1 > MAX_DEPTH {
        st.notes.push(format!("{source}: includes nested too deep"));
        for k in &kinds {
            st.broken(
                k,
                at.level,
                "",
                source,
                format!("{how}: includes nested too deep"),
            );
        }
        return Ok(());
    }
    let path = service_path(name);
    match facts.read(&path)? {
        None => {
            st.notes.push(format!(
                "{source}: {how}: {path} does not exist; libpam makes this stack fail"
            ));
            for k in &kinds {
                st.broken(
                    k,
                    at.level,
                    "",
                    source,
                    format!("{how}: {path} does not exist"),
                );
            }
        }
        Some(text) => {
            let v = match &at.via {
                Some(v) => format!("{v}, {how}"),
                None => format!("via {how} at {source}"),
            };
            let inner = Where {
                only: at.only.clone(),
                via: Some(v),
                depth: at.depth + 1,
                level: at.level + usize::from(substack),
            };
            expand(facts, st, &path, &text, &inner)?;
        }
    }
    Ok(())
}

/// An argument as libpam passes it to the module: `[...]` without its brackets.
fn unbracket(a: &str) -> String {
    match a.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        Some(inner) => inner.to_string(),
        None => a.to_string(),
    }
}

/// The root's PAM module directories, looked up once per scan (see [`module_dirs`]).
struct ModuleDirs;

impl Fact for ModuleDirs {
    type Value = Vec<String>;
    fn read(facts: &Facts) -> Result<Vec<String>, FactError> {
        module_dirs(facts)
    }
}

/// Directories where libpam finds modules named without a path, on Debian and
/// Ubuntu (multiarch), RHEL and Amazon Linux, and the root's multiarch triplets.
fn module_dirs(facts: &Facts) -> Result<Vec<String>, FactError> {
    let mut candidates: Vec<String> = [
        "/lib/security",
        "/lib64/security",
        "/usr/lib/security",
        "/usr/lib64/security",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for base in ["/usr/lib", "/lib"] {
        for name in facts.list_dir(base)? {
            if name.ends_with("-linux-gnu") || name.ends_with("-linux-gnueabihf") {
                candidates.push(format!("{base}/{name}/security"));
            }
        }
    }
    let mut dirs = Vec::new();
    for d in candidates {
        let has_modules = facts
            .list_dir(&d)?
            .iter()
            .any(|n| n.starts_with("pam_") && n.ends_with(".so"));
        if has_modules {
            dirs.push(d);
        }
    }
    Ok(dirs)
}

/// `Some(where looked)` when `module` is not installed; `None` when it is, or when
/// the root has no module directory to tell.
fn not_installed(facts: &Facts, module: &str) -> Result<Option<String>, FactError> {
    let dirs = facts.get::<ModuleDirs>()?;
    if dirs.is_empty() {
        return Ok(None);
    }
    if module.starts_with('/') {
        return Ok(match facts.stat(module)? {
            Some(_) => None,
            None => Some(format!("{module} does not exist")),
        });
    }
    for d in dirs.iter() {
        if facts.stat(&format!("{d}/{module}"))?.is_some() {
            return Ok(None);
        }
    }
    Ok(Some(format!("not in {}", dirs.join(" or "))))
}

/// Lines with comments removed and continuations joined, numbered by their first line.
pub fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut acc = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = match raw.find('#') {
            Some(p) => &raw[..p],
            None => raw,
        };
        if acc.is_empty() {
            start = i + 1;
        }
        let trimmed = line.trim_end();
        if let Some(body) = trimmed.strip_suffix('\\') {
            acc.push_str(body);
            acc.push(' ');
            continue;
        }
        acc.push_str(line);
        if !acc.trim().is_empty() {
            out.push((start, acc.trim().to_string()));
        }
        acc.clear();
    }
    if !acc.trim().is_empty() {
        out.push((start, acc.trim().to_string()));
    }
    out
}

/// Splits a line into words; `[...]` is one word (with `\]` escaping a bracket).
pub fn tokens(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut word = String::new();
        if c == '[' {
            chars.next();
            let mut inner = String::new();
            while let Some(ch) = chars.next() {
                if ch == '\\' && chars.peek() == Some(&']') {
                    inner.push(']');
                    chars.next();
                } else if ch == ']' {
                    break;
                } else {
                    inner.push(ch);
                }
            }
            word.push('[');
            word.push_str(&inner);
            word.push(']');
        } else {
            while let Some(&ch) = chars.peek() {
                if ch.is_whitespace() {
                    break;
                }
                word.push(ch);
                chars.next();
            }
        }
        out.push(word);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    use crate::checks::NASTY_INPUTS as NASTY;

    #[test]
    fn garbage_never_panics() {
        for a in NASTY {
            for b in NASTY {
                let t = format!("{a} {b}\n{b}{a}");
                for (_, l) in logical_lines(&t) {
                    let _ = tokens(&l);
                }
                let _ = tokens(&t);
            }
        }
    }

    #[test]
    fn lines_and_tokens() {
        let l = logical_lines("# c\nauth required pam_x.so a \\\n  b # tail\n\n");
        assert_eq!(l, vec![(2, "auth required pam_x.so a    b".to_string())]);
        let t = tokens("auth [success=1 default=ignore] pam_unix.so [arg with space\\]] x");
        assert_eq!(
            t,
            vec![
                "auth",
                "[success=1 default=ignore]",
                "pam_unix.so",
                "[arg with space]]",
                "x"
            ]
        );
    }

    #[test]
    fn expands_includes() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path().join("etc/pam.d");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("su"), "auth sufficient pam_rootok.so\n@include common-auth\npassword include common-password\n")
            .unwrap();
        fs::write(
            d.join("common-auth"),
            "AUTH required pam_unix.so nullok\naccount required pam_x.so\n",
        )
        .unwrap();
        fs::write(
            d.join("common-password"),
            "password required /lib/security/pam_pwquality.so\nauth required pam_y.so\n",
        )
        .unwrap();
        let facts = Facts::new(t.path(), false);
        let st = stack(&facts, "su").unwrap();
        let mods: Vec<&str> = st.lines.iter().map(|l| l.module_name()).collect();
        assert_eq!(
            mods,
            vec![
                "pam_rootok.so",
                "pam_unix.so",
                "pam_x.so",
                "pam_pwquality.so"
            ]
        );
        assert_eq!(st.lines[1].kind, "auth");
        assert!(st.lines[1]
            .via
            .as_ref()
            .unwrap()
            .contains("@include common-auth"));
        assert_eq!(st.lines[1].arg("nullok"), Some("nullok"));
    }
}
