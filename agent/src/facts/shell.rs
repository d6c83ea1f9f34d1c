//! A small static reader of POSIX shell start-up files (/etc/profile, .bashrc, …).
//! It does not run anything: it splits the text into simple commands (words with
//! their quotes kept), understands enough of `if`/`elif`/`else`/`fi` to know which
//! branch applies to root, and expands `$VAR` / `${VAR}` from a given set of
//! variables. Anything it cannot decide is reported as unknown, never guessed.

use std::collections::BTreeMap;

/// One simple command: its words as written (quotes kept) and its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub line: usize,
    pub words: Vec<String>,
    /// Whether the command applies to root: known yes, known no, or cannot tell.
    pub applies: Applies,
}

/// Whether a command runs for root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    Yes,
    No,
    Maybe,
}

/// How an `if` condition reads for root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    True,
    False,
    Unknown,
}

#[derive(Debug, Clone)]
struct Frame {
    /// Whether the current branch applies.
    current: Applies,
    /// A branch before this one was definitely taken.
    taken: bool,
    /// Whether any earlier branch might have been taken.
    maybe_taken: bool,
    /// Blocks other than if (loops, case): their body may or may not run.
    opaque: bool,
}

/// Splits `text` into commands, deciding for each whether it applies to root.
/// `cond` judges an `if` condition's words.
pub fn commands(text: &str, cond: &dyn Fn(&[String]) -> Cond) -> Vec<Command> {
    let mut out = Vec::new();
    let mut frames: Vec<Frame> = Vec::new();
    for (line, cmds) in split(text) {
        for mut words in cmds {
            // Leading keywords that do not change state.
            while let Some(w) = words.first() {
                match w.as_str() {
                    "then" | "do" | "{" | "}" | "!" | "(" | ")" => {
                        words.remove(0);
                    }
                    "else" => {
                        words.remove(0);
                        if let Some(f) = frames.last_mut() {
                            if !f.opaque {
                                let taken = f.taken || f.current == Applies::Yes;
                                let maybe = f.maybe_taken || f.current == Applies::Maybe;
                                f.current = if taken {
                                    Applies::No
                                } else if maybe {
                                    Applies::Maybe
                                } else {
                                    Applies::Yes
                                };
                                f.taken = taken;
                                f.maybe_taken = maybe;
                            }
                        }
                    }
                    _ => break,
                }
            }
            let Some(first) = words.first().cloned() else {
                continue;
            };
            match first.as_str() {
                "if" => {
                    let c = cond(&words[1..]);
                    frames.push(frame_for(c, false, false));
                    continue;
                }
                "elif" => {
                    let c = cond(&words[1..]);
                    if let Some(f) = frames.last_mut() {
                        let taken = f.taken || f.current == Applies::Yes;
                        let maybe = f.maybe_taken || f.current == Applies::Maybe;
                        *f = if taken {
                            frame_for(Cond::False, true, maybe)
                        } else {
                            let mut nf = frame_for(c, false, maybe);
                            if maybe && nf.current == Applies::Yes {
                                nf.current = Applies::Maybe;
                            }
                            nf
                        };
                    }
                    continue;
                }
                "fi" | "done" | "esac" => {
                    frames.pop();
                    continue;
                }
                "for" | "while" | "until" | "case" | "select" => {
                    frames.push(Frame {
                        current: Applies::Maybe,
                        taken: false,
                        maybe_taken: true,
                        opaque: true,
                    });
                    continue;
                }
                _ => {}
            }
            let applies = frames
                .iter()
                .fold(Applies::Yes, |acc, f| match (acc, f.current) {
                    (Applies::No, _) | (_, Applies::No) => Applies::No,
                    (Applies::Maybe, _) | (_, Applies::Maybe) => Applies::Maybe,
                    _ => Applies::Yes,
                });
            out.push(Command {
                line,
                words,
                applies,
            });
        }
    }
    out
}

fn frame_for(c: Cond, taken: bool, maybe_taken: bool) -> Frame {
    let current = match c {
        Cond::True => Applies::Yes,
        Cond::False => Applies::No,
        Cond::Unknown => Applies::Maybe,
    };
    Frame {
        current,
        taken,
        maybe_taken,
        opaque: false,
    }
}

/// Logical lines split into commands of words (quotes kept), numbered by the line
/// where each logical line starts. Comments are dropped.
pub fn split(text: &str) -> Vec<(usize, Vec<Vec<String>>)> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let start = i + 1;
        let mut logical = String::new();
        loop {
            let l = lines[i];
            i += 1;
            // A trailing backslash outside quotes joins the next line.
            if let Some(body) = l.strip_suffix('\\') {
                if i < lines.len() && !body.ends_with('\\') {
                    logical.push_str(body);
                    continue;
                }
            }
            logical.push_str(l);
            // An unclosed quote continues on the next line.
            if i < lines.len() && open_quote(&logical) {
                logical.push('\n');
                continue;
            }
            break;
        }
        out.push((start, split_commands(&logical)));
    }
    out
}

fn open_quote(s: &str) -> bool {
    let mut single = false;
    let mut double = false;
    let mut prev = '\0';
    for c in s.chars() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single && prev != '\\' => double = !double,
            '#' if !single && !double && (prev == '\0' || prev.is_whitespace()) => return false,
            _ => {}
        }
        prev = c;
    }
    single || double
}

fn split_commands(s: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = s.chars().collect();
    let mut cmds = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut i = 0;
    let flush_word = |word: &mut String, in_word: &mut bool, words: &mut Vec<String>| {
        if *in_word {
            words.push(std::mem::take(word));
            *in_word = false;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' => {
                in_word = true;
                word.push(c);
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    word.push(chars[i]);
                    i += 1;
                }
                if i < chars.len() {
                    word.push('\'');
                }
                i += 1;
            }
            '"' => {
                in_word = true;
                word.push(c);
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        word.push(chars[i]);
                        word.push(chars[i + 1]);
                        i += 2;
                        continue;
                    }
                    if chars[i] == '$' && chars.get(i + 1) == Some(&'(') {
                        i = copy_subst(&chars, i, &mut word);
                        continue;
                    }
                    word.push(chars[i]);
                    i += 1;
                }
                if i < chars.len() {
                    word.push('"');
                }
                i += 1;
            }
            '\\' => {
                in_word = true;
                word.push(c);
                if let Some(n) = chars.get(i + 1) {
                    word.push(*n);
                }
                i += 2;
            }
            '$' if chars.get(i + 1) == Some(&'(') => {
                in_word = true;
                i = copy_subst(&chars, i, &mut word);
            }
            '`' => {
                in_word = true;
                word.push(c);
                i += 1;
                while i < chars.len() && chars[i] != '`' {
                    word.push(chars[i]);
                    i += 1;
                }
                word.push('`');
                i += 1;
            }
            '#' if !in_word => break,
            ';' | '&' | '|' | '(' | ')' | '\n' => {
                flush_word(&mut word, &mut in_word, &mut words);
                if !words.is_empty() {
                    cmds.push(std::mem::take(&mut words));
                }
                i += 1;
            }
            c if c.is_whitespace() => {
                flush_word(&mut word, &mut in_word, &mut words);
                i += 1;
            }
            _ => {
                in_word = true;
                word.push(c);
                i += 1;
            }
        }
    }
    flush_word(&mut word, &mut in_word, &mut words);
    if !words.is_empty() {
        cmds.push(words);
    }
    cmds
}

/// Copies a `$( … )` substitution (nested parentheses allowed) into `word`.
fn copy_subst(chars: &[char], mut i: usize, word: &mut String) -> usize {
    let mut depth = 0;
    while i < chars.len() {
        let c = chars[i];
        word.push(c);
        i += 1;
        if c == '(' {
            depth += 1;
        } else if c == ')' {
            depth -= 1;
            if depth == 0 {
                break;
            }
        }
    }
    i
}

/// Marks a part of an expanded value that could not be evaluated statically.
pub const UNKNOWN: char = '\u{1}';

/// Expands a word: removes quotes and substitutes `$NAME` / `${NAME}` from `vars`.
/// `Err(name)` names the first thing that cannot be expanded statically.
pub fn expand(word: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    expand_inner(word, vars, false)
}

/// Like [`expand`], but puts `UNKNOWN`-delimited placeholders (e.g. `\u{1}$FOO\u{1}`)
/// where a variable or substitution cannot be evaluated, instead of failing.
pub fn expand_lossy(word: &str, vars: &BTreeMap<String, String>) -> String {
    expand_inner(word, vars, true).unwrap_or_default()
}

fn expand_inner(
    word: &str,
    vars: &BTreeMap<String, String>,
    lossy: bool,
) -> Result<String, String> {
    let unknown = |what: String, out: &mut String| -> Result<(), String> {
        if lossy {
            out.push(UNKNOWN);
            out.push_str(&what);
            out.push(UNKNOWN);
            Ok(())
        } else {
            Err(what)
        }
    };
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let mut double = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\'' if !double => {
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    out.push(chars[i]);
                    i += 1;
                }
                i += 1;
            }
            '"' => {
                double = !double;
                i += 1;
            }
            '\\' => {
                if let Some(n) = chars.get(i + 1) {
                    out.push(*n);
                }
                i += 2;
            }
            '`' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|c| *c == '`')
                    .map(|p| i + 2 + p)
                    .unwrap_or(chars.len());
                unknown(chars[i..end].iter().collect(), &mut out)?;
                i = end;
            }
            '$' => {
                let rest: String = chars[i + 1..].iter().collect();
                if rest.starts_with('(') {
                    let mut sub = String::new();
                    let end = copy_subst(&chars, i, &mut sub);
                    unknown(sub, &mut out)?;
                    i = end;
                    continue;
                }
                let (name, len) = if let Some(r) = rest.strip_prefix('{') {
                    match r.find('}') {
                        Some(end) => (r[..end].to_string(), r[..end].chars().count() + 2),
                        None => {
                            unknown(format!("${rest}"), &mut out)?;
                            break;
                        }
                    }
                } else {
                    let n: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    let l = n.len();
                    (n, l)
                };
                if name.is_empty() {
                    out.push('$');
                    i += 1;
                    continue;
                }
                if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    unknown(format!("${{{name}}}"), &mut out)?;
                } else {
                    match vars.get(&name) {
                        Some(v) => out.push_str(v),
                        None => unknown(format!("${name}"), &mut out)?,
                    }
                }
                i += 1 + len;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The literal value of a word with no expansions, quotes removed.
pub fn literal(word: &str) -> Option<String> {
    expand(word, &BTreeMap::new()).ok()
}

/// Reads `[ "$(id -u)" -eq 0 ]`-style tests of whether the user is root.
pub fn root_test(words: &[String]) -> Cond {
    let joined: String = words.join(" ").replace(['"', '\''], "");
    let about_uid = joined.contains("id -u")
        || joined.contains("$UID")
        || joined.contains("${UID}")
        || joined.contains("$EUID")
        || joined.contains("${EUID}");
    if !about_uid {
        return Cond::Unknown;
    }
    let t: Vec<&str> = joined.split_whitespace().collect();
    for w in t.windows(2) {
        match (w[0], w[1]) {
            ("-eq" | "=" | "==", "0") => return Cond::True,
            ("-ne" | "!=" | "-gt", "0") => return Cond::False,
            _ => {}
        }
    }
    Cond::Unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(p: &[(&str, &str)]) -> BTreeMap<String, String> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn splits_commands() {
        let s = split("a=1; export a # c\nif [ \"$(id -u)\" -eq 0 ]; then\n  PATH=\"/x:$PATH\" \\\n  foo\nfi\n");
        assert_eq!(s[0].1, vec![vec!["a=1"], vec!["export", "a"]]);
        assert_eq!(s[1].1[0], vec!["if", "[", "\"$(id -u)\"", "-eq", "0", "]"]);
        assert_eq!(s[2].0, 3);
        assert_eq!(s[2].1[0], vec!["PATH=\"/x:$PATH\"", "foo"]);
    }

    #[test]
    fn root_branches() {
        let text = "if [ \"$(id -u)\" -eq 0 ]; then\n PATH=/root\nelse\n PATH=/user\nfi\nif [ -n x ]; then\n A=1\nfi\nB=2\n";
        let c = commands(text, &|w| root_test(w));
        let got: Vec<(String, Applies)> =
            c.iter().map(|c| (c.words[0].clone(), c.applies)).collect();
        assert_eq!(
            got,
            vec![
                ("PATH=/root".into(), Applies::Yes),
                ("PATH=/user".into(), Applies::No),
                ("A=1".into(), Applies::Maybe),
                ("B=2".into(), Applies::Yes)
            ]
        );
        let c = commands(
            "if [ $UID != 0 ]; then X=1; elif true; then Y=1; else Z=1; fi",
            &|w| root_test(w),
        );
        let got: Vec<Applies> = c.iter().map(|c| c.applies).collect();
        assert_eq!(got, vec![Applies::No, Applies::Maybe, Applies::Maybe]);
    }

    use crate::checks::NASTY_INPUTS as NASTY;

    #[test]
    fn garbage_never_panics() {
        let v = vars(&[("PATH", "/bin")]);
        for a in NASTY {
            for b in NASTY {
                let t = format!("{a}{b}\n{b} {a}");
                let _ = commands(&t, &|w| root_test(w));
                let _ = expand(&t, &v);
                let _ = expand_lossy(&t, &v);
            }
        }
    }

    #[test]
    fn expands() {
        let v = vars(&[("PATH", "/bin"), ("HOME", "/root")]);
        assert_eq!(expand("\"$HOME/bin:$PATH\"", &v).unwrap(), "/root/bin:/bin");
        assert_eq!(expand("'$PATH'", &v).unwrap(), "$PATH");
        assert_eq!(expand("${PATH}:/x", &v).unwrap(), "/bin:/x");
        assert!(expand("$FOO", &v).is_err());
        assert!(expand("${PATH:+$PATH:}/x", &v).is_err());
        assert!(expand("$(pwd)", &v).is_err());
        assert_eq!(literal("'027'").unwrap(), "027");
        let l = expand_lossy("\"$FOO/bin:$(x):$PATH\"", &v);
        assert_eq!(l, "\u{1}$FOO\u{1}/bin:\u{1}$(x)\u{1}:/bin");
    }
}
