//! Reading PAM service files (/etc/pam.d) as libpam does on Debian and Ubuntu:
//! `#` comments, backslash line continuations, `[...]` controls and arguments, a
//! leading `-` on the type, `include` and `substack` (lines of one type from another
//! file), and Debian's `@include` (every line of another file). Arguments lose the
//! brackets of `[...]` as libpam strips them. A line whose module is not installed
//! is left out of the stack with a note: libpam cannot run it, so it enforces nothing
//! (judged only when the root has a PAM module directory at all).

use std::sync::Arc;

use crate::facts::include_budget::IncludeBudget;
use crate::facts::KeyedFact;
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

/// A service's expanded stack.
#[derive(Debug, Clone, Default)]
pub struct Stack {
    pub service: String,
    pub lines: Vec<PamLine>,
    /// Remarks: missing files, bad lines.
    pub notes: Vec<String>,
    /// Whether the service file itself exists.
    pub exists: bool,
    /// Includes followed for the whole stack.
    included: IncludeBudget,
    /// The root's PAM module directories (`None`: not looked up yet).
    module_dirs: Option<Vec<String>>,
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
}

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
                expand(facts, &mut st, &path, &text, None, None, 0)?;
            }
        }
        Ok(st)
    }
}

fn expand(
    facts: &Facts,
    st: &mut Stack,
    path: &str,
    text: &str,
    only: Option<&str>,
    via: Option<String>,
    depth: usize,
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
                only,
                &source,
                &format!("@include {name}"),
                &via,
                depth,
            )?;
            continue;
        }
        let kind_raw = first.strip_prefix('-').unwrap_or(first);
        let kind = kind_raw.to_ascii_lowercase();
        if !["auth", "account", "password", "session"].contains(&kind.as_str()) {
            st.notes.push(format!(
                "{source}: unknown module type {first}; libpam makes this stack fail"
            ));
            continue;
        }
        if only.is_some_and(|o| o != kind) {
            continue;
        }
        let (Some(control), Some(module)) = (toks.get(1), toks.get(2)) else {
            st.notes.push(format!(
                "{source}: incomplete line; libpam makes this stack fail"
            ));
            continue;
        };
        let c = control.to_ascii_lowercase();
        if c == "include" || c == "substack" {
            include(
                facts,
                st,
                module,
                Some(&kind),
                &source,
                &format!("{c} {module}"),
                &via,
                depth,
            )?;
            continue;
        }
        if let Some(missing) = not_installed(facts, st, module)? {
            st.notes.push(format!(
                "{source}: {module} is not installed ({missing}); libpam cannot run this line, so it enforces nothing"
            ));
            continue;
        }
        st.lines.push(PamLine {
            kind,
            control: control.clone(),
            module: module.clone(),
            args: toks[3..].iter().map(|a| unbracket(a)).collect(),
            source,
            via: via.clone(),
        });
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn include(
    facts: &Facts,
    st: &mut Stack,
    name: &str,
    only: Option<&str>,
    source: &str,
    how: &str,
    via: &Option<String>,
    depth: usize,
) -> Result<(), FactError> {
    if !st.included.directive(source, &mut st.notes) {
        return Ok(());
    }
    if depth + 1 > MAX_DEPTH {
        st.notes.push(format!("{source}: includes nested too deep"));
        return Ok(());
    }
    let path = service_path(name);
    match facts.read(&path)? {
        None => st.notes.push(format!(
            "{source}: {how}: {path} does not exist; libpam makes this stack fail"
        )),
        Some(text) => {
            let v = match via {
                Some(v) => format!("{v}, {how}"),
                None => format!("via {how} at {source}"),
            };
            expand(facts, st, &path, &text, only, Some(v), depth + 1)?;
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
fn not_installed(facts: &Facts, st: &mut Stack, module: &str) -> Result<Option<String>, FactError> {
    if st.module_dirs.is_none() {
        st.module_dirs = Some(module_dirs(facts)?);
    }
    let dirs = st.module_dirs.as_deref().unwrap_or_default();
    if dirs.is_empty() {
        return Ok(None);
    }
    if module.starts_with('/') {
        return Ok(match facts.stat(module)? {
            Some(_) => None,
            None => Some(format!("{module} does not exist")),
        });
    }
    for d in dirs {
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
