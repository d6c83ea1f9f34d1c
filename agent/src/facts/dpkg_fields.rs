//! The fields of a dpkg database stanza that dpkg 1.21 parses besides a package's
//! identity and state, checked as dpkg checks them: a value dpkg refuses makes it
//! refuse the whole database, so the reader must refuse it too.
//!
//! - relationships (`Depends`, `Pre-Depends`, `Recommends`, `Suggests`, `Enhances`,
//!   `Breaks`, `Conflicts`, `Replaces`, `Provides`, and the obsolete `Recommended` and
//!   `Optional`): comma-separated entries of `|`-separated alternatives (not in
//!   `Breaks`, `Conflicts`, `Replaces`, `Provides`), each a valid package name, an
//!   optional `:architecture` (a valid architecture name) and an optional
//!   `(relation version)` — `<<`, `<=`, `=`, `>=`, `>>`, the obsolete `<` and `>`, or
//!   none — whose version dpkg can parse; `[architecture]` lists are refused. An empty
//!   value is read. `Built-Using` and `Static-Built-Using` are not parsed by dpkg 1.21;
//! - `Conffiles`: lines that start with a space, each `path hash`, optionally followed
//!   by `obsolete` and then `remove-on-upgrade`; the path not the root;
//! - `Essential`, `Protected`: `yes` or `no` in any case, or empty; `Priority` and the
//!   obsolete `Class`: a word that starts with one of dpkg's priorities must be only it;
//! - `Filename`, `Size`, `MD5sum`, `MSDOS-Filename`: not allowed in the database;
//! - `Triggers-Pending`: trigger names (printable ASCII), none twice;
//!   `Triggers-Awaited`: package names with an optional `:architecture`, none twice
//!   (names fold to lower case; an unqualified name is taken as the same package as a
//!   qualified one, which dpkg does when that is the instance it picks).
//!
//! The values are dpkg's: the blanks after the colon skipped on the field's first line
//! only, the trailing ones trimmed ([`value`]).

use super::dpkg_version::check_version;
use super::kv::is_c_space;

/// The value dpkg hands to a field's parser: the spaces after the colon skipped up
/// to the first line's end, the spaces at the end trimmed.
pub fn value(raw: &str) -> &str {
    let start = raw
        .find(|c: char| c == '\n' || !is_c_space(c))
        .unwrap_or(raw.len());
    raw[start..].trim_end_matches(is_c_space)
}

/// dpkg's reading of a word among `names`: the first name `s` starts with, in any
/// case, then spaces; with `last`, nothing may follow. The name and the rest.
pub fn choice<'a>(
    s: &'a str,
    names: &[&'static str],
    last: bool,
) -> Result<(&'static str, &'a str), String> {
    let found = names
        .iter()
        .find(|n| s.get(..n.len()).is_some_and(|p| p.eq_ignore_ascii_case(n)));
    let Some(&n) = found else {
        return Err(format!("not one of {}", names.join(", ")));
    };
    let rest = s[n.len()..].trim_start_matches(is_c_space);
    if last && !rest.is_empty() {
        return Err(format!("`{rest}` after `{n}`"));
    }
    Ok((n, rest))
}

/// What is wrong with a package name, for dpkg (an alphanumeric, then alphanumerics
/// and `-+._`).
pub fn package_name_error(name: &str) -> Option<&'static str> {
    word_error(name, "-+._", "only letters, digits and -+._ are allowed")
}

/// What is wrong with an architecture name, for dpkg (an alphanumeric, then
/// alphanumerics and `-`).
fn arch_name_error(arch: &str) -> Option<&'static str> {
    word_error(arch, "-", "only letters, digits and - are allowed")
}

/// What is wrong with a word that starts with a letter or a digit and goes on with
/// those and the characters of `also`; `allowed` says so when another is found.
fn word_error(word: &str, also: &str, allowed: &'static str) -> Option<&'static str> {
    if !word.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Some("it must start with a letter or a digit");
    }
    (!word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || also.contains(c)))
    .then_some(allowed)
}

/// The words of a trigger field: dpkg splits them at spaces, tabs and newlines only.
pub fn trigger_words(value: &str) -> impl Iterator<Item = &str> {
    value
        .split([' ', '\t', '\n'])
        .filter(|w: &&str| !w.is_empty())
}

/// How dpkg parses a field of the database, by its name in any case.
enum Kind {
    /// A relationship field; whether it allows alternatives.
    Relations(bool),
    Conffiles,
    Boolean,
    Priority,
    Archive,
    TriggersPending,
    TriggersAwaited,
}

const FIELDS: [(&str, Kind); 22] = [
    ("Depends", Kind::Relations(true)),
    ("Pre-Depends", Kind::Relations(true)),
    ("Recommends", Kind::Relations(true)),
    ("Suggests", Kind::Relations(true)),
    ("Enhances", Kind::Relations(true)),
    ("Recommended", Kind::Relations(true)),
    ("Optional", Kind::Relations(true)),
    ("Breaks", Kind::Relations(false)),
    ("Conflicts", Kind::Relations(false)),
    ("Replaces", Kind::Relations(false)),
    ("Provides", Kind::Relations(false)),
    ("Conffiles", Kind::Conffiles),
    ("Essential", Kind::Boolean),
    ("Protected", Kind::Boolean),
    ("Priority", Kind::Priority),
    ("Class", Kind::Priority),
    ("Filename", Kind::Archive),
    ("Size", Kind::Archive),
    ("MD5sum", Kind::Archive),
    ("MSDOS-Filename", Kind::Archive),
    ("Triggers-Pending", Kind::TriggersPending),
    ("Triggers-Awaited", Kind::TriggersAwaited),
];

/// Checks one field (`name` in any case, `value` as [`value`] gives it) as dpkg
/// parses it; `Err` says what dpkg refuses, naming the field.
pub fn check(name: &str, value: &str) -> Result<(), String> {
    let Some((field, kind)) = FIELDS.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) else {
        return Ok(());
    };
    let at = |e: String| format!("{field} `{}`: {e}", shown(value));
    match kind {
        Kind::Relations(alternatives) => relations(value, *alternatives).map_err(at),
        Kind::Conffiles => conffiles(value).map_err(at),
        Kind::Boolean if value.is_empty() => Ok(()),
        Kind::Boolean => choice(value, &["no", "yes"], true)
            .map(|_| ())
            .map_err(|e| at(format!("not yes or no: {e}"))),
        Kind::Priority => {
            let names = [
                "required",
                "important",
                "standard",
                "optional",
                "extra",
                "unknown",
            ];
            // A word that starts with none of them is read; one that starts with one
            // must have nothing after it.
            let starts = names.iter().any(|n| {
                value
                    .get(..n.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(n))
            });
            if starts {
                choice(value, &names, true).map(|_| ()).map_err(at)
            } else {
                Ok(())
            }
        }
        Kind::Archive => Err(format!(
            "a {field} field, which dpkg does not allow in its database"
        )),
        Kind::TriggersPending => triggers_pending(value).map_err(at),
        Kind::TriggersAwaited => triggers_awaited(value).map_err(at),
    }
}

/// A value as evidence shows it: newlines escaped, at most 80 characters.
fn shown(value: &str) -> String {
    let s: String = value.escape_debug().collect();
    match s.char_indices().nth(80) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

/// dpkg's grammar of a relationship field (see the module's documentation).
fn relations(value: &str, alternatives: bool) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    let b = value.as_bytes();
    let space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let skip = |mut p: usize| {
        while p < b.len() && space(b[p]) {
            p += 1;
        }
        p
    };
    // Every cut is at an ASCII byte, so the slices are whole characters.
    let mut p = 0;
    loop {
        let start = p;
        while p < b.len() && !space(b[p]) && !b":(,|".contains(&b[p]) {
            p += 1;
        }
        if p == start {
            return Err(
                "a package name is missing (or something else is where one should be)".into(),
            );
        }
        let name = &value[start..p];
        if let Some(e) = package_name_error(name) {
            return Err(format!("`{name}` is not a package name: {e}"));
        }
        if b.get(p) == Some(&b':') {
            p += 1;
            let s = p;
            while p < b.len() && !space(b[p]) && !b"(,|".contains(&b[p]) {
                p += 1;
            }
            let arch = &value[s..p];
            if arch.is_empty() {
                return Err(format!("`{name}:` has no architecture name"));
            }
            if let Some(e) = arch_name_error(arch) {
                return Err(format!("`{name}:{arch}`: not an architecture name: {e}"));
            }
        }
        p = skip(p);
        if b.get(p) == Some(&b'(') {
            p = skip(p + 1);
            match b.get(p) {
                Some(&c @ (b'<' | b'>')) => {
                    p += 1;
                    match b.get(p) {
                        Some(b'=') => p += 1,
                        Some(&d) if d == c => p += 1,
                        Some(&d @ (b'<' | b'>')) => {
                            return Err(format!(
                                "`{name}`: `{}{}` is not a version relation",
                                c as char, d as char
                            ))
                        }
                        _ => {}
                    }
                }
                Some(b'=') => p += 1,
                _ => {}
            }
            p = skip(p);
            let s = p;
            while p < b.len() && b[p] != b')' && b[p] != b'(' && !space(b[p]) {
                p += 1;
            }
            let version = &value[s..p];
            p = skip(p);
            match b.get(p) {
                None => return Err(format!("`{name}`: the version has no closing `)`")),
                Some(b')') => {}
                Some(_) => {
                    let rest: String = value[p..].chars().take(1).collect();
                    return Err(format!(
                        "`{name}`: `{rest}` where the version's `)` should be"
                    ));
                }
            }
            check_version(version).map_err(|e| format!("`{name}`: version `{version}`: {e}"))?;
            p = skip(p + 1);
        }
        match b.get(p) {
            None => return Ok(()),
            Some(b',') => p = skip(p + 1),
            Some(b'|') if alternatives => p = skip(p + 1),
            Some(b'|') => return Err("alternatives (`|`) are not allowed in this field".into()),
            Some(_) => return Err(format!("a syntax error after `{name}`")),
        }
    }
}

/// dpkg's `Conffiles` lines (see the module's documentation).
fn conffiles(value: &str) -> Result<(), String> {
    for line in value.split('\n').filter(|l| !l.is_empty()) {
        let Some(rest) = line.strip_prefix(' ') else {
            return Err(format!(
                "the line `{}` does not start with a space",
                shown(line)
            ));
        };
        let malformed = || format!("the line `{}` is not `path hash`", shown(line));
        // dpkg takes words from the end: the hash, after `remove-on-upgrade` and
        // `obsolete` when given; a space at the start (or one character in) or at
        // the end of the line leaves no word.
        let b = rest.as_bytes();
        let last_word = |from: usize| -> Result<(usize, &[u8]), String> {
            if from <= 1 {
                return Err(malformed());
            }
            let space = b[..from].iter().rposition(|&c| c == b' ');
            match space {
                Some(s) if s > 1 && s + 1 < b.len() => Ok((s, &b[s + 1..from])),
                _ => Err(malformed()),
            }
        };
        let (mut end, mut word) = last_word(b.len())?;
        if word == b"remove-on-upgrade" {
            (end, word) = last_word(end)?;
        }
        if word == b"obsolete" {
            (end, _) = last_word(end)?;
        }
        let mut path = &rest[..end];
        while let Some(p) = path.strip_prefix('/').or_else(|| path.strip_prefix("./")) {
            path = p;
        }
        if path.is_empty() {
            return Err(format!(
                "the line `{}` names the root or an empty path",
                shown(line)
            ));
        }
    }
    Ok(())
}

fn triggers_pending(value: &str) -> Result<(), String> {
    let mut seen: Vec<&str> = Vec::new();
    for w in trigger_words(value) {
        if w.bytes().any(|b| b <= b' ' || b >= 0x7f) {
            return Err(format!(
                "`{}` is not a trigger name (printable ASCII only)",
                shown(w)
            ));
        }
        if seen.contains(&w) {
            return Err(format!("`{w}` twice"));
        }
        seen.push(w);
    }
    Ok(())
}

fn triggers_awaited(value: &str) -> Result<(), String> {
    let mut seen: Vec<(String, Option<&str>)> = Vec::new();
    for w in trigger_words(value) {
        let (name, arch) = match w.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (w, None),
        };
        if let Some(e) = package_name_error(name) {
            return Err(format!("`{}` is not a package name: {e}", shown(w)));
        }
        if let Some(e) = arch.and_then(|a| {
            if a.is_empty() {
                Some("it is empty")
            } else {
                arch_name_error(a)
            }
        }) {
            return Err(format!("`{}`: not an architecture name: {e}", shown(w)));
        }
        let name = name.to_ascii_lowercase();
        let same = |(n, a): &(String, Option<&str>)| {
            *n == name
                && match (a, arch) {
                    (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
                    _ => true,
                }
        };
        if seen.iter().any(same) {
            return Err(format!("package `{w}` twice"));
        }
        seen.push((name, arch));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_as_dpkg_parses_them() {
        for (name, v) in [
            ("Depends", "a:any, b:native (>= 1), c:amd64 | d (<< 2:1.0-1~), e (1)"),
            ("depends", "a (< 1), b (> 1), c ( >= 1 ), d(=1)"),
            ("Depends", "a (>= é)"),
            ("Provides", "a (>= 1)"),
            ("Breaks", "A"),
            ("Built-Using", "("),
            ("Depends", ""),
            ("Depends", "a,\n b"),
            ("Conffiles", "\n /etc/x abc\n /etc/y abc obsolete\n /e abc remove-on-upgrade\n /etc/a b c\n /etc/z abc obsolete remove-on-upgrade"),
            ("Essential", "YES"),
            ("Protected", ""),
            ("Priority", "source"),
            ("Triggers-Pending", "a A /usr/share/man"),
            ("Triggers-Awaited", "b:amd64 b:i386 c"),
        ] {
            assert_eq!(check(name, v), Ok(()), "{name}: {v:?}");
        }
        for (name, v) in [
            ("Depends", "("),
            ("Depends", "a:"),
            ("Depends", "a:a_b"),
            ("Depends", "a [amd64]"),
            ("Depends", "a,"),
            ("Depends", "a,,b"),
            ("Depends", "a (>= 1.0"),
            ("Depends", "a (>= 1.0 x)"),
            ("Depends", "a (>= 1:)"),
            ("Depends", "a (>> )"),
            ("Depends", "a (<> 1)"),
            ("Depends", "a (>=1)("),
            ("Depends", "\n a"),
            ("Pre-Depends", "a b"),
            ("Provides", "a | b"),
            ("Replaces", "|"),
            ("Optional", "("),
            ("Conffiles", "\n /etc/x"),
            ("Conffiles", "/etc/x abc"),
            ("Conffiles", "\n /etc/x obsolete"),
            ("Conffiles", "\n / abc"),
            ("Conffiles", "\n  abc"),
            ("Conffiles", "\n\t/etc/x abc"),
            ("Conffiles", "\n ./ abc"),
            ("Conffiles", "\n /etc/x abc \n /etc/y abc"),
            ("Essential", "maybe"),
            ("Essential", "nope"),
            ("Protected", "\n yes"),
            ("Priority", "optionalx"),
            ("Class", "extra x"),
            ("Size", "1"),
            ("Triggers-Pending", "a a"),
            ("Triggers-Pending", "aé"),
            ("Triggers-Awaited", "-x"),
            ("Triggers-Awaited", "b B"),
            ("Triggers-Awaited", "b:amd64 b"),
            ("Triggers-Awaited", "b:"),
            ("Triggers-Awaited", "b:x_y"),
        ] {
            assert!(check(name, v).is_err(), "{name}: {v:?} was read");
        }
        assert_eq!(value("  x \t\n"), "x");
        assert_eq!(value(" \n a\n"), "\n a");
    }
}
