//! A small backtracking regular-expression matcher for AIDE selection lines and
//! include patterns: literals, `.`, classes `[a-z]`/`[^…]`, escapes, `^`, `$`,
//! groups with `|`, and the quantifiers `*`, `+`, `?`, `{m,n}`. A step budget
//! keeps pathological patterns from running away (they then fail to match).

use std::cell::Cell;

#[derive(Debug, Clone)]
enum Node {
    Char(char),
    Any,
    Class(Vec<(char, char)>, bool),
    Start,
    End,
    Group(Vec<Vec<Node>>),
    Repeat(Box<Node>, usize, usize),
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub struct Regex {
    alts: Vec<Vec<Node>>,
}

const STEP_LIMIT: usize = 200_000;

impl Regex {
    /// Compiles `pattern`; `None` when it is not a valid expression.
    pub fn new(pattern: &str) -> Option<Regex> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut p = Parser { c: &chars, i: 0 };
        let alts = p.alternation()?;
        if p.i != chars.len() {
            return None;
        }
        Some(Regex { alts })
    }

    /// Whether the pattern matches at the start of `text` (an implicit `^`).
    pub fn matches_prefix(&self, text: &str) -> bool {
        self.run(text, false)
    }

    /// Whether the pattern matches the whole of `text`.
    pub fn matches_full(&self, text: &str) -> bool {
        self.run(text, true)
    }

    fn run(&self, text: &str, full: bool) -> bool {
        let m = Matcher {
            t: text.chars().collect(),
            steps: Cell::new(0),
        };
        let len = m.t.len();
        let group = [Node::Group(self.alts.clone())];
        m.seq(&group, 0, &mut |p| !full || p == len)
    }
}

struct Parser<'a> {
    c: &'a [char],
    i: usize,
}

impl Parser<'_> {
    fn alternation(&mut self) -> Option<Vec<Vec<Node>>> {
        let mut alts = vec![self.sequence()?];
        while self.c.get(self.i) == Some(&'|') {
            self.i += 1;
            alts.push(self.sequence()?);
        }
        Some(alts)
    }

    fn sequence(&mut self) -> Option<Vec<Node>> {
        let mut seq = Vec::new();
        while let Some(&c) = self.c.get(self.i) {
            if c == '|' || c == ')' {
                break;
            }
            let atom = self.atom()?;
            let atom = self.quantifier(atom)?;
            seq.push(atom);
        }
        Some(seq)
    }

    fn atom(&mut self) -> Option<Node> {
        let c = *self.c.get(self.i)?;
        self.i += 1;
        Some(match c {
            '.' => Node::Any,
            '^' => Node::Start,
            '$' => Node::End,
            '(' => {
                // Non-capturing `(?:` is accepted.
                if self.c.get(self.i) == Some(&'?') && self.c.get(self.i + 1) == Some(&':') {
                    self.i += 2;
                }
                let alts = self.alternation()?;
                if self.c.get(self.i) != Some(&')') {
                    return None;
                }
                self.i += 1;
                Node::Group(alts)
            }
            '[' => self.class()?,
            '\\' => {
                let e = *self.c.get(self.i)?;
                self.i += 1;
                escape(e)
            }
            '*' | '+' | '?' => return None,
            c => Node::Char(c),
        })
    }

    fn class(&mut self) -> Option<Node> {
        let mut neg = false;
        if self.c.get(self.i) == Some(&'^') {
            neg = true;
            self.i += 1;
        }
        let mut ranges = Vec::new();
        let mut first = true;
        loop {
            let c = *self.c.get(self.i)?;
            self.i += 1;
            if c == ']' && !first {
                break;
            }
            first = false;
            let lo = if c == '\\' {
                let e = *self.c.get(self.i)?;
                self.i += 1;
                match escape(e) {
                    Node::Class(r, false) => {
                        ranges.extend(r);
                        continue;
                    }
                    Node::Char(x) => x,
                    _ => e,
                }
            } else {
                c
            };
            if self.c.get(self.i) == Some(&'-') && self.c.get(self.i + 1).is_some_and(|x| *x != ']')
            {
                let hi = self.c[self.i + 1];
                self.i += 2;
                ranges.push((lo, hi));
            } else {
                ranges.push((lo, lo));
            }
        }
        Some(Node::Class(ranges, neg))
    }

    fn quantifier(&mut self, atom: Node) -> Option<Node> {
        let (min, max) = match self.c.get(self.i) {
            Some('*') => (0, usize::MAX),
            Some('+') => (1, usize::MAX),
            Some('?') => (0, 1),
            Some('{') => {
                let close = self.c[self.i..].iter().position(|c| *c == '}')? + self.i;
                let body: String = self.c[self.i + 1..close].iter().collect();
                let (a, b) = match body.split_once(',') {
                    Some((a, "")) => (a.trim().parse().ok()?, usize::MAX),
                    Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
                    None => {
                        let n = body.trim().parse().ok()?;
                        (n, n)
                    }
                };
                self.i = close;
                (a, b)
            }
            _ => return Some(atom),
        };
        self.i += 1;
        if matches!(atom, Node::Start | Node::End) {
            return None;
        }
        Some(Node::Repeat(Box::new(atom), min, max))
    }
}

fn escape(e: char) -> Node {
    match e {
        'd' => Node::Class(vec![('0', '9')], false),
        'w' => Node::Class(vec![('a', 'z'), ('A', 'Z'), ('0', '9'), ('_', '_')], false),
        's' => Node::Class(
            vec![(' ', ' '), ('\t', '\t'), ('\n', '\n'), ('\r', '\r')],
            false,
        ),
        'n' => Node::Char('\n'),
        't' => Node::Char('\t'),
        other => Node::Char(other),
    }
}

struct Matcher {
    t: Vec<char>,
    steps: Cell<usize>,
}

impl Matcher {
    fn seq(&self, seq: &[Node], pos: usize, k: &mut dyn FnMut(usize) -> bool) -> bool {
        let s = self.steps.get() + 1;
        self.steps.set(s);
        if s > STEP_LIMIT {
            return false;
        }
        let Some((first, rest)) = seq.split_first() else {
            return k(pos);
        };
        match first {
            Node::Char(c) => self.t.get(pos) == Some(c) && self.seq(rest, pos + 1, k),
            Node::Any => pos < self.t.len() && self.t[pos] != '\n' && self.seq(rest, pos + 1, k),
            Node::Class(ranges, neg) => match self.t.get(pos) {
                Some(c) => {
                    let inside = ranges.iter().any(|(lo, hi)| lo <= c && c <= hi);
                    inside != *neg && self.seq(rest, pos + 1, k)
                }
                None => false,
            },
            Node::Start => pos == 0 && self.seq(rest, pos, k),
            Node::End => pos == self.t.len() && self.seq(rest, pos, k),
            Node::Group(alts) => alts
                .iter()
                .any(|alt| self.seq(alt, pos, &mut |p| self.seq(rest, p, k))),
            Node::Repeat(n, min, max) => self.rep(n, *min, *max, 0, pos, rest, k),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn rep(
        &self,
        n: &Node,
        min: usize,
        max: usize,
        count: usize,
        pos: usize,
        rest: &[Node],
        k: &mut dyn FnMut(usize) -> bool,
    ) -> bool {
        if count < max {
            let one = std::slice::from_ref(n);
            if self.seq(one, pos, &mut |p| {
                p != pos && self.rep(n, min, max, count + 1, p, rest, k)
            }) {
                return true;
            }
        }
        count >= min && self.seq(rest, pos, k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basics() {
        let r = Regex::new("/usr/s?bin/audit(ctl|d)$").unwrap();
        assert!(r.matches_prefix("/usr/sbin/auditctl"));
        assert!(r.matches_prefix("/usr/bin/auditd"));
        assert!(!r.matches_prefix("/usr/sbin/auditctlx"));
        let r = Regex::new("/sbin").unwrap();
        assert!(r.matches_prefix("/sbin/auditctl"));
        assert!(!r.matches_full("/sbin/auditctl"));
        let r = Regex::new("^[a-zA-Z0-9_-]+$").unwrap();
        assert!(r.matches_full("31_aide_apt"));
        assert!(!r.matches_full("x.dpkg-old"));
        let r = Regex::new("/var/log/.*\\.log$").unwrap();
        assert!(r.matches_prefix("/var/log/a/b.log"));
        assert!(!r.matches_prefix("/var/log/a/blog"));
        assert!(Regex::new("a{2,3}b").unwrap().matches_full("aaab"));
        assert!(!Regex::new("a{2,3}b").unwrap().matches_full("ab"));
        assert!(Regex::new("(unclosed").is_none());
    }

    #[test]
    fn pathological_patterns_stop() {
        let r = Regex::new("(a*)*b").unwrap();
        assert!(!r.matches_full(&"a".repeat(40)));
    }
}
