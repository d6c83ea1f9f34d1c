//! The option list of a sudoers `Defaults` line as sudo 1.9.13's grammar reads it,
//! and the values sudo accepts for the options the rules judge.
//!
//! The list is `entry (, entry)*` where an entry is `name`, `!name`, `name=value`,
//! `name+=value` or `name-=value`; names are `[a-z_]+`; a value is a double-quoted,
//! non-empty string or a word without blanks, `,`, `=`, `"` or `#` (a backslash
//! escapes the next character). A run of `!` counts by its parity (`!!name` is
//! `name`), and only one `!` may stand before a name. Blanks separate tokens, and a
//! `#` that does not start a number (`#5`, `#-5`) starts a comment. Anything else is
//! a syntax error, and sudo drops the whole line.
//!
//! sudo then ignores a single entry whose value it refuses (for the options judged
//! here: a value given to a flag, `+=`/`-=` on an option that is not a list, no
//! value, a log file not starting with `/`, a timeout that is not a number).

/// How an entry sets its option, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawOp {
    On,
    Off,
    Set(String),
    Add(String),
    Remove(String),
}

/// One entry of a Defaults list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub op: RawOp,
    /// The entry as written (without surrounding blanks).
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Bang,
    Var(String),
    Comma,
    Eq,
    Add,
    Sub,
    Word(String),
}

fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Whether a `#` at `i` starts a comment (it does not before a digit or `-digit`).
fn comment_at(c: &[char], i: usize) -> bool {
    match c.get(i + 1) {
        None | Some('\r') => true,
        Some('-') => c
            .get(i + 2)
            .is_some_and(|d| !d.is_ascii_digit() && *d != '\r'),
        Some(d) => !d.is_ascii_digit(),
    }
}

/// Tokens with their start and end offsets, or a syntax error.
fn lex(c: &[char]) -> Result<Vec<(Tok, usize, usize)>, String> {
    let mut out = Vec::new();
    let mut i = 0;
    // false: expecting an option name (sudo's STARTDEFS); true: after it (INDEFS).
    let mut in_entry = false;
    while i < c.len() {
        let ch = c[i];
        let start = i;
        if is_blank(ch) {
            i += 1;
            continue;
        }
        if ch == '\r' && i + 1 == c.len() {
            break;
        }
        if ch == '!' {
            while i < c.len() && c[i] == '!' {
                i += 1;
            }
            if (i - start) % 2 == 1 {
                out.push((Tok::Bang, start, i));
            }
            continue;
        }
        if ch == '#' {
            if comment_at(c, i) {
                break;
            }
            return Err(format!("`#` at column {} starts no comment", i + 1));
        }
        if !in_entry {
            while i < c.len() && (c[i].is_ascii_lowercase() || c[i] == '_') {
                i += 1;
            }
            if i == start {
                return Err(format!("`{ch}` where an option name should be"));
            }
            out.push((Tok::Var(c[start..i].iter().collect()), start, i));
            in_entry = true;
            continue;
        }
        match ch {
            ',' => {
                out.push((Tok::Comma, i, i + 1));
                i += 1;
                in_entry = false;
            }
            '=' => {
                out.push((Tok::Eq, i, i + 1));
                i += 1;
            }
            '+' | '-' if c.get(i + 1) == Some(&'=') => {
                out.push((if ch == '+' { Tok::Add } else { Tok::Sub }, i, i + 2));
                i += 2;
            }
            '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match c.get(i) {
                        None | Some('\r') => return Err("a quoted string is not closed".into()),
                        Some('"') => break,
                        Some('\\') if c.get(i + 1) == Some(&'"') => {
                            s.push('"');
                            i += 2;
                        }
                        Some(x) => {
                            s.push(*x);
                            i += 1;
                        }
                    }
                }
                i += 1;
                if s.is_empty() {
                    return Err("an empty string".into());
                }
                out.push((Tok::Word(s), start, i));
            }
            _ => {
                let mut s = String::new();
                let stop = |x: char, first: bool| {
                    matches!(x, '#' | '=' | ',' | ' ' | '\t' | '\r' | '"') || (first && x == '!')
                };
                while i < c.len() {
                    let x = c[i];
                    if x == '\\' {
                        match c.get(i + 1) {
                            Some(n) if *n != '\r' => {
                                s.push(*n);
                                i += 2;
                                continue;
                            }
                            _ => break,
                        }
                    }
                    if stop(x, i == start) {
                        break;
                    }
                    s.push(x);
                    i += 1;
                }
                if i == start {
                    return Err(format!("unexpected `{ch}`"));
                }
                out.push((Tok::Word(s), start, i));
            }
        }
    }
    Ok(out)
}

/// The entries of a Defaults option list (the text after `Defaults` and its
/// binding), or why sudo's grammar rejects the line.
pub fn parse_list(text: &str) -> Result<Vec<Entry>, String> {
    let c: Vec<char> = text.chars().collect();
    let toks = lex(&c)?;
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let start = toks.get(i).map(|t| t.1);
        let neg = matches!(toks.get(i), Some((Tok::Bang, ..)));
        if neg {
            i += 1;
        }
        let Some((Tok::Var(name), _, mut end)) = toks.get(i).cloned() else {
            return Err(if toks.get(i).is_none() {
                "an option name is missing".into()
            } else {
                "an option name should follow".into()
            });
        };
        i += 1;
        let op = match toks.get(i) {
            Some((t @ (Tok::Eq | Tok::Add | Tok::Sub), ..)) if !neg => {
                let Some((Tok::Word(v), _, e)) = toks.get(i + 1).cloned() else {
                    return Err(format!("no value after `{name}=`"));
                };
                end = e;
                i += 2;
                match t {
                    Tok::Eq => RawOp::Set(v),
                    Tok::Add => RawOp::Add(v),
                    _ => RawOp::Remove(v),
                }
            }
            _ if neg => RawOp::Off,
            _ => RawOp::On,
        };
        let text: String = c[start.unwrap_or(0)..end].iter().collect();
        out.push(Entry { name, op, text });
        match toks.get(i) {
            None => return Ok(out),
            Some((Tok::Comma, ..)) => i += 1,
            Some(_) => {
                return Err(format!(
                    "`{}` is followed by more than a `,`",
                    out.last().map(|e| e.text.as_str()).unwrap_or("")
                ))
            }
        }
    }
}

/// sudo's list options (the only ones taking `+=` and `-=`).
const LISTS: &[&str] = &[
    "env_check",
    "env_delete",
    "env_keep",
    "log_servers",
    "passprompt_regex",
];

/// Why sudo ignores this entry, if it does (judged for the options the rules read;
/// any other option is taken as written).
pub fn refused(e: &Entry) -> Option<String> {
    let list_op = matches!(e.op, RawOp::Add(_) | RawOp::Remove(_));
    if list_op && !LISTS.contains(&e.name.as_str()) {
        return Some(format!(
            "`+=` and `-=` work on lists only, and {} is none",
            e.name
        ));
    }
    match (e.name.as_str(), &e.op) {
        ("use_pty" | "authenticate", RawOp::Set(_)) => {
            Some(format!("{} is a flag and takes no value", e.name))
        }
        ("logfile" | "timestamp_timeout", RawOp::On) => Some(format!("{} needs a value", e.name)),
        ("logfile", RawOp::Set(v)) if !v.starts_with('/') || v.len() >= 4096 => {
            Some("a log file must be a path starting with /".into())
        }
        ("timestamp_timeout", RawOp::Set(v)) if !timespec(v) => {
            Some(format!("{v} is not a number of minutes"))
        }
        _ => None,
    }
}

/// Whether sudo reads `v` as a number of minutes: an optional sign, digits, and an
/// optional `.` with digits (sudo reads at most nine of them and ignores the rest);
/// the whole minutes, as seconds, must fit a 64-bit `time_t`.
fn timespec(v: &str) -> bool {
    let v = v.strip_prefix(['+', '-']).unwrap_or(v);
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    let frac: String = frac.chars().take(9).collect();
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let max = i64::MAX as u128;
    let mut secs: u128 = 0;
    for b in int.bytes() {
        if !b.is_ascii_digit() {
            return false;
        }
        let i = u128::from(b - b'0') * 60;
        if secs > (max - i) / 10 {
            return false;
        }
        secs = secs * 10 + i;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(t: &str) -> Vec<(String, RawOp)> {
        parse_list(t)
            .unwrap_or_else(|e| panic!("{t:?}: {e}"))
            .into_iter()
            .map(|e| (e.name, e.op))
            .collect()
    }

    #[test]
    fn lines_visudo_accepts() {
        assert_eq!(names(" use_pty"), vec![("use_pty".into(), RawOp::On)]);
        assert_eq!(names(" ! use_pty"), vec![("use_pty".into(), RawOp::Off)]);
        assert_eq!(names(" !!use_pty"), vec![("use_pty".into(), RawOp::On)]);
        assert_eq!(
            names(" timestamp_timeout = 30"),
            vec![("timestamp_timeout".into(), RawOp::Set("30".into()))]
        );
        assert_eq!(
            names("\tuse_pty ,  env_reset # why"),
            vec![
                ("use_pty".into(), RawOp::On),
                ("env_reset".into(), RawOp::On)
            ]
        );
        assert_eq!(
            names(" logfile=/var/log/x#y"),
            vec![("logfile".into(), RawOp::Set("/var/log/x".into()))]
        );
        assert_eq!(
            names(" logfile=\"/x\\\"y, z\""),
            vec![("logfile".into(), RawOp::Set("/x\"y, z".into()))]
        );
        assert_eq!(names(" use_pty#c"), vec![("use_pty".into(), RawOp::On)]);
        assert_eq!(
            names(" logfile= /x"),
            vec![("logfile".into(), RawOp::Set("/x".into()))]
        );
        assert_eq!(
            names(" env_keep+=FOO"),
            vec![("env_keep".into(), RawOp::Add("FOO".into()))]
        );
        assert_eq!(names(" use_pty !!"), vec![("use_pty".into(), RawOp::On)]);
    }

    #[test]
    fn lines_visudo_rejects() {
        for t in [
            " use_pty foo",
            " !use_pty=1",
            " use_pty,",
            " ,use_pty",
            " use_pty,,env_reset",
            " Use_pty",
            " logfile=\"\"",
            "",
            "  ",
            " env_reset use_pty",
            " \"use_pty\"",
            " timestamp_timeout=5 10",
            " use_pty=",
            " ! !use_pty",
            " use_pty #5",
            " use_pty2",
            " logfile=\"/x",
        ] {
            assert!(parse_list(t).is_err(), "{t:?} should be a syntax error");
        }
    }

    #[test]
    fn values_sudo_ignores() {
        let e = |t: &str| parse_list(t).unwrap().remove(0);
        assert!(refused(&e(" use_pty=1")).is_some());
        assert!(refused(&e(" authenticate=yes")).is_some());
        assert!(refused(&e(" logfile+=/x")).is_some());
        assert!(refused(&e(" logfile=x")).is_some());
        assert!(refused(&e(" logfile")).is_some());
        assert!(refused(&e(" timestamp_timeout")).is_some());
        assert!(refused(&e(" timestamp_timeout=NaN")).is_some());
        assert!(refused(&e(" timestamp_timeout=1e3")).is_some());
        assert!(refused(&e(" timestamp_timeout=999999999999999999")).is_some());
        assert!(refused(&e(" timestamp_timeout=9999999999999999")).is_none());
        assert!(refused(&e(" timestamp_timeout=-1")).is_none());
        assert!(refused(&e(" timestamp_timeout=2.5")).is_none());
        assert!(refused(&e(" !logfile")).is_none());
        assert!(refused(&e(" env_keep-=X")).is_none());
        assert!(refused(&e(" lecture=always")).is_none());
    }
}
