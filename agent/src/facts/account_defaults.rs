//! The shadow suite's account defaults as its tools read them: /etc/login.defs
//! (`getdef`, `getdef_num`) and /etc/default/useradd (`useradd -D`), and the numbers
//! they take from a value (`getlong`).

use std::sync::Arc;

use crate::facts::kv::{self, is_c_space, Setting};
use crate::facts::Fact;
use crate::facts::{FactError, Facts};

/// The settings of /etc/login.defs, read once per scan (empty when missing).
pub fn login_defs(facts: &Facts) -> Result<Arc<Vec<Setting>>, FactError> {
    facts.get::<LoginDefs>()
}

/// The settings of /etc/login.defs, as a fact.
pub struct LoginDefs;

impl Fact for LoginDefs {
    type Value = Vec<Setting>;
    fn read(facts: &Facts) -> Result<Vec<Setting>, FactError> {
        let path = "/etc/login.defs";
        Ok(facts
            .read(path)?
            .map(|t| parse_login_defs(&t, path))
            .unwrap_or_default())
    }
}

/// /etc/login.defs `key` as Linux-PAM's modules read it (`pam_modutil_search_key`,
/// e.g. pam_unix's ENCRYPT_METHOD): the first line naming it and its value.
pub fn login_defs_pam_key(facts: &Facts, key: &str) -> Result<Option<(usize, String)>, FactError> {
    Ok(facts
        .read("/etc/login.defs")?
        .as_deref()
        .and_then(|t| search_key(t, key)))
}

/// The first line of `text` naming `key` (ASCII case-insensitive) and its value, as
/// `pam_modutil_search_key` reads login.defs: a line ends at a newline only (a NUL
/// ends its text; a carriage return stays in it), `#` starts a comment, C's blanks
/// (`isspace`: a vertical tab or form feed is one, a no-break space is not) before
/// the key are skipped, the key ends at a space, a tab or `=`, and C's blanks and
/// `=` before the value are skipped.
fn search_key(text: &str, key: &str) -> Option<(usize, String)> {
    for (i, raw) in text.split('\n').enumerate() {
        let raw = raw.split('\0').next().unwrap_or_default();
        let line = raw
            .split('#')
            .next()
            .unwrap_or_default()
            .trim_start_matches(is_c_space);
        if line.is_empty() {
            continue;
        }
        let end = line.find([' ', '\t', '=']).unwrap_or(line.len());
        if line[..end].eq_ignore_ascii_case(key) {
            let rest = line[end..].trim_start_matches(|c| is_c_space(c) || c == '=');
            return Some((i + 1, rest.to_string()));
        }
    }
    None
}

/// Parses login.defs as the shadow suite does: `NAME value`, lines starting with `#`
/// are comments, the value runs to the end of the line (a `#` later on the line is
/// part of it) with double quotes stripped. Only C's blanks are trimmed from the end
/// of a line (a carriage return is; a no-break space stays in the value).
pub fn parse_login_defs(text: &str, path: &str) -> Vec<Setting> {
    let mut out = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.trim_end_matches(is_c_space);
        let name_start = line.trim_start_matches([' ', '\t']);
        if name_start.is_empty() || name_start.starts_with('#') {
            continue;
        }
        let Some(end) = name_start.find([' ', '\t']) else {
            continue;
        };
        let name = &name_start[..end];
        let value = name_start[end..].trim_start_matches([' ', '\t', '"']);
        let value = match value.find('"') {
            Some(q) => &value[..q],
            None => value,
        };
        out.push(Setting {
            key: name.to_string(),
            value: value.to_string(),
            source: format!("{path}:{}", i + 1),
        });
    }
    out
}

/// An account default as the checks read it: the value set (`None`: not set), the
/// number the shadow tools take from it, and where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRead {
    pub value: Option<String>,
    pub number: Option<i64>,
    /// `path:line: KEY value`, or `KEY not set in PATH`.
    pub desc: String,
}

/// /etc/login.defs `key` (last occurrence wins, case-sensitive); its number as the
/// shadow tools' `getdef_num` reads it ([`getdef_num`]).
pub fn login_defs_value(facts: &Facts, key: &str) -> Result<DefaultRead, FactError> {
    let defs = login_defs(facts)?;
    Ok(match kv::last(&defs, key, false) {
        Some(s) => DefaultRead {
            value: Some(s.value.clone()),
            number: getdef_num(&s.value),
            desc: format!("{}: {} {}", s.source, s.key, visible(&s.value)),
        },
        None => DefaultRead {
            value: None,
            number: None,
            desc: format!("{key} not set in /etc/login.defs"),
        },
    })
}

/// /etc/default/useradd `KEY=value` as useradd reads it: a line whose text before
/// its first `=` is exactly `KEY` (no blanks), the value everything after it up to
/// the newline (a carriage return, a trailing blank, quotes or a comment included).
/// The last such line decides; its number is read by [`shadow_long`] and must be -1
/// or more, otherwise useradd ignores it and keeps its default (even over an earlier
/// line it could read).
pub fn useradd_default(facts: &Facts, key: &str) -> Result<DefaultRead, FactError> {
    let path = "/etc/default/useradd";
    let text = facts.read(path)?;
    let mut found: Option<(String, String)> = None;
    if let Some(t) = text.as_deref() {
        for (i, line) in t.split('\n').enumerate() {
            if let Some((k, v)) = line.split_once('=') {
                if k == key {
                    found = Some((
                        v.to_string(),
                        format!("{path}:{}: {}", i + 1, visible(line)),
                    ));
                }
            }
        }
    }
    Ok(match found {
        Some((v, d)) => DefaultRead {
            number: shadow_long(&v).filter(|n| *n >= -1),
            value: Some(v),
            desc: d,
        },
        None => DefaultRead {
            value: None,
            number: None,
            desc: format!("{key} not set in {path}"),
        },
    })
}

/// A number as the shadow suite's `getlong` reads it: C's `strtol` in base 0 over the
/// whole text — blanks before it and one sign allowed, `0x` hexadecimal, a leading
/// `0` octal — with nothing after the digits and no overflow of a C long.
pub fn shadow_long(text: &str) -> Option<i64> {
    let t = text.trim_start_matches(is_c_space);
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, digits) = match t.as_bytes() {
        [b'0', b'x' | b'X', d, ..] if d.is_ascii_hexdigit() => (16, &t[2..]),
        [b'0', _, ..] => (8, &t[1..]),
        _ => (10, t),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    // i128 holds every i64 magnitude; C's long is 64 bits on the agent's targets.
    let magnitude = i128::from_str_radix(digits, radix).ok()?;
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

/// A login.defs number as `getdef_num` reads it: [`shadow_long`] within a C int.
/// The tools use their default for a value it refuses.
pub fn getdef_num(text: &str) -> Option<i64> {
    shadow_long(text).filter(|n| i32::try_from(*n).is_ok())
}

/// A value as evidence shows it: control characters and blanks other than a space
/// escaped (a carriage return, a no-break space).
pub fn visible(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c != ' ' && (c.is_control() || c.is_whitespace()) {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// UID_MIN from /etc/login.defs (default 1000).
pub fn uid_min(facts: &Facts) -> Result<u32, FactError> {
    let defs = login_defs(facts)?;
    Ok(kv::last(&defs, "UID_MIN", false)
        .and_then(|s| s.value.parse().ok())
        .unwrap_or(1000))
}

/// UID_MIN from /etc/login.defs (last setting wins; default 1000), read with the
/// generic `KEY VALUE` parser: unlike [`uid_min`],
/// which reads the file as the shadow suite does, a `#` after the value starts a
/// comment here (`UID_MIN 500 # local` reads 500, not the default). The /var/log
/// and audit file checks read UID_MIN this way.
pub fn uid_min_kv(facts: &Facts) -> Result<u32, FactError> {
    let Some(text) = facts.read("/etc/login.defs")? else {
        return Ok(1000);
    };
    let s = kv::parse(&text, "/etc/login.defs", kv::Separator::Whitespace);
    Ok(kv::last(&s, "UID_MIN", false)
        .and_then(|s| s.value.parse().ok())
        .unwrap_or(1000))
}

#[cfg(test)]
mod tests {

    #[test]
    fn pam_search_key_first_line_wins() {
        let t = "# x\nencrypt_method = md5 # c\nENCRYPT_METHOD SHA512\n";
        assert_eq!(search_key(t, "ENCRYPT_METHOD"), Some((2, "md5 ".into())));
        assert_eq!(search_key("", "ENCRYPT_METHOD"), None);
        assert_eq!(search_key("=\n==x\n", "ENCRYPT_METHOD"), None);
    }

    #[test]
    fn pam_search_key_blanks_are_c_blanks() {
        let k = "ENCRYPT_METHOD";
        let t = "\u{a0}ENCRYPT_METHOD SHA512\nENCRYPT_METHOD MD5\n";
        assert_eq!(search_key(t, k), Some((2, "MD5".into())));
        assert_eq!(
            search_key("\u{b}ENCRYPT_METHOD SHA512\n", k),
            Some((1, "SHA512".into()))
        );
        assert_eq!(
            search_key("ENCRYPT_METHOD \u{c}=SHA512\n", k),
            Some((1, "SHA512".into()))
        );
        let t = "ENCRYPT_METHOD\r\nENCRYPT_METHOD SHA512\r\n";
        assert_eq!(search_key(t, k), Some((2, "SHA512\r".into())));
        assert_eq!(
            search_key("ENCRYPT_METHOD \r\n", k),
            Some((1, String::new()))
        );
        assert_eq!(
            search_key("ENCRYPT\0_METHOD MD5\nENCRYPT_METHOD YESCRYPT\n", k),
            Some((2, "YESCRYPT".into()))
        );
    }
    use super::*;

    /// The two UID_MIN readers differ on a comment after the value; the /var/log and
    /// audit checks keep their own reading until a fixture shows which one the
    /// benchmark wants.
    #[test]
    fn uid_min_kv_drops_a_trailing_comment_unlike_the_shadow_reader() {
        let t = crate::checks::test_tree(&[("/etc/login.defs", "UID_MIN 500 # local\n")], &[]);
        let facts = Facts::new(t.path(), false);
        assert_eq!(uid_min_kv(&facts).unwrap(), 500);
        assert_eq!(uid_min(&facts).unwrap(), 1000);
        let t = crate::checks::test_tree(&[("/etc/login.defs", "UID_MIN\t600\n")], &[]);
        let facts = Facts::new(t.path(), false);
        assert_eq!(uid_min_kv(&facts).unwrap(), 600);
        assert_eq!(uid_min(&facts).unwrap(), 600);
    }

    #[test]
    fn login_defs_like_shadow() {
        let s = parse_login_defs(
            "# c\nPASS_MAX_DAYS\t365\nUMASK 027 # why\nENV_PATH \"PATH=/bin\"\nLONE\n",
            "/l",
        );
        let v: Vec<(&str, &str)> = s
            .iter()
            .map(|x| (x.key.as_str(), x.value.as_str()))
            .collect();
        assert_eq!(
            v,
            vec![
                ("PASS_MAX_DAYS", "365"),
                ("UMASK", "027 # why"),
                ("ENV_PATH", "PATH=/bin")
            ]
        );
    }

    #[test]
    fn numbers_as_the_shadow_suite_reads_them() {
        for (text, want) in [
            ("30", Some(30)),
            (" \t30", Some(30)),
            ("+7", Some(7)),
            ("-1", Some(-1)),
            ("010", Some(8)),
            ("0x1e", Some(30)),
            ("0X1E", Some(30)),
            ("0", Some(0)),
            ("08", None),
            ("0x", None),
            ("30 ", None),
            ("30\r", None),
            ("\"30\"", None),
            ("30 # days", None),
            ("1e3", None),
            ("", None),
            ("-", None),
            ("99999999999", Some(99_999_999_999)),
            ("9223372036854775808", None),
            ("-9223372036854775808", Some(i64::MIN)),
        ] {
            assert_eq!(shadow_long(text), want, "{text:?}");
        }
        assert_eq!(getdef_num("2147483647"), Some(2_147_483_647));
        assert_eq!(getdef_num("-2147483648"), Some(-2_147_483_648));
        assert_eq!(getdef_num("2147483648"), None);
        assert_eq!(visible("SHA512\u{a0}\r"), "SHA512\\u{a0}\\r");
    }

    #[test]
    fn login_defs_trims_only_c_blanks() {
        let s = parse_login_defs("A 1\r\nB 2\u{a0}\nC 3\u{b}\n", "/l");
        let v: Vec<&str> = s.iter().map(|x| x.value.as_str()).collect();
        assert_eq!(v, vec!["1", "2\u{a0}", "3"]);
    }
}
