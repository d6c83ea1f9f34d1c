//! The nftables tokenizer, and `include` statements replaced with the tokens of
//! the files they name.

use super::Ruleset;
use crate::facts::{FactError, Facts};

/// Include nesting deeper than this is reported, not followed.
const MAX_DEPTH: u8 = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Tok {
    Word(String),
    Str(String),
    LBrace,
    RBrace,
    Semi,
    Newline,
    Comma,
}

#[derive(Debug, Clone)]
pub(super) struct Token {
    pub(super) tok: Tok,
    /// `path:line`.
    pub(super) at: String,
}

impl Token {
    pub(super) fn text(&self) -> &str {
        match &self.tok {
            Tok::Word(s) | Tok::Str(s) => s,
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::Semi => ";",
            Tok::Newline => "\n",
            Tok::Comma => ",",
        }
    }
}

pub(super) fn tokenize(text: &str, path: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut line = 1usize;
    let mut chars = text.chars().peekable();
    let mut word = String::new();
    let at = |l: usize| format!("{path}:{l}");
    let flush = |word: &mut String, out: &mut Vec<Token>, l: usize| {
        if !word.is_empty() {
            out.push(Token {
                tok: Tok::Word(std::mem::take(word)),
                at: at(l),
            });
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '#' => {
                flush(&mut word, &mut out, line);
                for n in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
                out.push(Token {
                    tok: Tok::Newline,
                    at: at(line),
                });
                line += 1;
            }
            '\\' if chars.peek() == Some(&'\n') => {
                chars.next();
                line += 1;
            }
            '"' => {
                flush(&mut word, &mut out, line);
                let start = line;
                let mut s = String::new();
                while let Some(n) = chars.next() {
                    match n {
                        '\\' => {
                            if let Some(e) = chars.next() {
                                s.push(e);
                            }
                        }
                        '"' => break,
                        '\n' => {
                            line += 1;
                            s.push(n);
                        }
                        _ => s.push(n),
                    }
                }
                out.push(Token {
                    tok: Tok::Str(s),
                    at: at(start),
                });
            }
            '{' | '}' | ';' | ',' | '\n' => {
                flush(&mut word, &mut out, line);
                let tok = match c {
                    '{' => Tok::LBrace,
                    '}' => Tok::RBrace,
                    ';' => Tok::Semi,
                    ',' => Tok::Comma,
                    _ => Tok::Newline,
                };
                out.push(Token { tok, at: at(line) });
                if c == '\n' {
                    line += 1;
                }
            }
            c if c.is_whitespace() => flush(&mut word, &mut out, line),
            c => word.push(c),
        }
    }
    flush(&mut word, &mut out, line);
    out
}

/// Tokenizes a file, replacing `include "…"` statements with the included tokens.
pub(super) fn tokenize_file(
    facts: &Facts,
    path: &str,
    text: &str,
    depth: u8,
    out: &mut Vec<Token>,
    rs: &mut Ruleset,
) -> Result<(), FactError> {
    rs.files.push(path.to_string());
    let toks = tokenize(text, path);
    let mut i = 0;
    while i < toks.len() {
        let at_start = i == 0
            || matches!(
                toks[i - 1].tok,
                Tok::Newline | Tok::Semi | Tok::LBrace | Tok::RBrace
            );
        if let (true, Tok::Word(w), Some(Tok::Str(target))) =
            (at_start, &toks[i].tok, toks.get(i + 1).map(|t| &t.tok))
        {
            if w == "include" {
                let follow = rs.includes.directive(&toks[i].at, &mut rs.notes);
                if follow && depth >= MAX_DEPTH {
                    rs.notes.push(format!(
                        "{}: include nesting deeper than {MAX_DEPTH}, not followed",
                        toks[i].at
                    ));
                } else if follow {
                    let files = include_files(facts, path, target)?;
                    if files.is_empty() && !target.contains(['*', '?', '[']) {
                        rs.notes
                            .push(format!("{}: included file {target} not found", toks[i].at));
                    }
                    for f in files {
                        if !rs.includes.file() {
                            break;
                        }
                        if let Some(t) = facts.read(&f)? {
                            tokenize_file(facts, &f, &t, depth + 1, out, rs)?;
                            out.push(Token {
                                tok: Tok::Newline,
                                at: f.clone(),
                            });
                        }
                    }
                }
                i += 2;
                continue;
            }
        }
        out.push(toks[i].clone());
        i += 1;
    }
    Ok(())
}

fn include_files(facts: &Facts, from: &str, target: &str) -> Result<Vec<String>, FactError> {
    let candidates: Vec<String> = if target.starts_with('/') {
        vec![target.to_string()]
    } else {
        let dir = from.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        vec![format!("{dir}/{target}"), format!("/etc/{target}")]
    };
    for c in candidates {
        let found = if c.contains(['*', '?', '[']) {
            facts.glob(&c)?
        } else if facts.stat(&c)?.is_some() {
            vec![c]
        } else {
            Vec::new()
        };
        if !found.is_empty() {
            return Ok(found);
        }
    }
    Ok(Vec::new())
}
