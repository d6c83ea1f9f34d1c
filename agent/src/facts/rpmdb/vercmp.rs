//! rpm's version ordering: `[epoch:]version[-release]` strings compared as rpm 4.18
//! compares them (`rpm.vercmp` in its Lua, the order `rpm -q` and dnf sort by).
//!
//! A version is cut into segments, each a run of ASCII digits or a run of ASCII
//! letters; every other byte only separates segments, so `1.0`, `1_0` and `1..0` are
//! the same version. Segments are compared pairwise: numbers as numbers (leading
//! zeros ignored, any length), letters byte by byte, and a number is newer than
//! letters. When one side runs out of segments the other, longer one is newer. Two
//! marks change that: `~` sorts before anything, the end included (`1.0~rc1` <
//! `1.0`), and `^` sorts after the end but before any further segment (`1.0` <
//! `1.0^git1` < `1.0.1`).
//!
//! A whole `epoch:version-release` is split at the first `:` after a leading run of
//! digits (the epoch; none counts as 0, an empty one too) and at the last `-` (the
//! release). Epochs compare as numbers, then versions, then releases as above; a
//! string without a release is older than the same version with any release
//! (`1.0` < `1.0-1`), as `rpm.vercmp` ranks them. (Dependency matching is another
//! question: there `Requires: foo >= 1.0` ignores releases when one side has none.)

use std::cmp::Ordering;

/// Compares two `[epoch:]version[-release]` strings as rpm does.
pub fn compare_rpm_versions(a: &str, b: &str) -> Ordering {
    let (ea, va, ra) = split_evr(a);
    let (eb, vb, rb) = split_evr(b);
    compare_numbers(ea, eb)
        .then_with(|| rpmvercmp(va, vb))
        .then_with(|| match (ra, rb) {
            (Some(x), Some(y)) => rpmvercmp(x, y),
            (Some(_), None) => Ordering::Greater,
            (None, Some(_)) => Ordering::Less,
            (None, None) => Ordering::Equal,
        })
}

/// Epoch (digits, `"0"` when absent or empty), version and release (after the last
/// `-`, if any) of an `[epoch:]version[-release]` string.
fn split_evr(s: &str) -> (&str, &str, Option<&str>) {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (epoch, rest) = match s.as_bytes().get(digits) {
        Some(b':') if digits == 0 => ("0", &s[1..]),
        Some(b':') => (&s[..digits], &s[digits + 1..]),
        _ => ("0", s),
    };
    match rest.rsplit_once('-') {
        Some((v, r)) => (epoch, v, Some(r)),
        None => (epoch, rest, None),
    }
}

/// Compares one version or release string, segment by segment (see the module docs).
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        a = skip_separators(a);
        b = skip_separators(b);
        // `~` first: before anything, the end of the string included.
        match (a.first(), b.first()) {
            (Some(b'~'), Some(b'~')) => {
                (a, b) = (&a[1..], &b[1..]);
                continue;
            }
            (Some(b'~'), _) => return Ordering::Less,
            (_, Some(b'~')) => return Ordering::Greater,
            _ => {}
        }
        // Then `^`: after the end of the string, before any other segment.
        match (a.first(), b.first()) {
            (Some(b'^'), Some(b'^')) => {
                (a, b) = (&a[1..], &b[1..]);
                continue;
            }
            (Some(b'^'), None) => return Ordering::Greater,
            (None, Some(b'^')) => return Ordering::Less,
            (Some(b'^'), Some(_)) => return Ordering::Less,
            (Some(_), Some(b'^')) => return Ordering::Greater,
            _ => {}
        }
        let (Some(first), Some(_)) = (a.first(), b.first()) else {
            break;
        };
        let numeric = first.is_ascii_digit();
        let class = |c: &u8| {
            if numeric {
                c.is_ascii_digit()
            } else {
                c.is_ascii_alphabetic()
            }
        };
        let (sa, ra) = a.split_at(a.iter().take_while(|c| class(c)).count());
        let (sb, rb) = b.split_at(b.iter().take_while(|c| class(c)).count());
        if sb.is_empty() {
            // Segments of different kinds: a number is newer than letters.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let order = if numeric {
            compare_digits(sa, sb)
        } else {
            sa.cmp(sb)
        };
        if order != Ordering::Equal {
            return order;
        }
        (a, b) = (ra, rb);
    }
    // The side with something left is newer; separators alone do not count.
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

/// Drops the bytes that only separate segments: anything but ASCII letters and
/// digits, `~` and `^`.
fn skip_separators(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .take_while(|c| !c.is_ascii_alphanumeric() && **c != b'~' && **c != b'^')
        .count();
    &s[n..]
}

/// Two runs of ASCII digits compared as numbers of any length.
fn compare_digits(a: &[u8], b: &[u8]) -> Ordering {
    let trim = |s: &[u8]| -> usize { s.iter().take_while(|c| **c == b'0').count() };
    let (a, b) = (&a[trim(a)..], &b[trim(b)..]);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

fn compare_numbers(a: &str, b: &str) -> Ordering {
    compare_digits(a.as_bytes(), b.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::{Equal, Greater, Less};

    /// Each pair in both directions: the order must be antisymmetric.
    fn check(cases: &[(&str, &str, Ordering)], cmp: fn(&str, &str) -> Ordering) {
        for (a, b, want) in cases {
            assert_eq!(cmp(a, b), *want, "{a:?} vs {b:?}");
            assert_eq!(cmp(b, a), want.reverse(), "{b:?} vs {a:?}");
        }
    }

    #[test]
    fn segments_numbers_and_letters() {
        check(
            &[
                ("3.2", "3.2", Equal),
                ("3.2", "3.3", Less),
                ("3.2", "3.2.0", Less),
                ("3.2.1b", "3.2.1", Greater),
                ("7.4p1", "7.4p2", Less),
                ("7.4p9", "7.4p10", Less),
                // More segments win even when the next one is a dot away.
                ("12abc", "12.1abc", Less),
                ("abc12", "abc12.3", Less),
                // A number is newer than letters in the same place.
                ("abc.7", "9", Less),
                ("abc.7", "abc.7", Equal),
                ("4.1.beta2", "4.1", Greater),
                ("20c3", "20b9", Greater),
                ("2.0ab", "2.0a", Greater),
                ("2.0ab", "2.0b", Less),
                // Leading zeros mean nothing; numbers have any length.
                ("8.0007", "8.7", Equal),
                ("8.0007", "8.0012", Less),
                ("3.9999.1", "4.0", Less),
                ("19991231235959", "19991231235960", Less),
                (
                    "123456789012345678901234567890",
                    "123456789012345678901234567891",
                    Less,
                ),
                // Letters compare as bytes: capitals first.
                ("1.0Z", "1.0a", Less),
                // Separators only separate, whichever they are and however many.
                ("5_1", "5.1", Equal),
                ("5+1", "5.1", Equal),
                ("5..1", "5.1", Equal),
                ("5.1.", "5.1", Equal),
                ("5.\u{e9}1", "5.1", Equal),
                ("5a", "5.a", Equal),
            ],
            rpmvercmp,
        );
    }

    #[test]
    fn tilde_sorts_before_everything_caret_after_the_end() {
        check(
            &[
                ("2.0~rc1", "2.0", Less),
                ("2.0~rc1", "2.0~rc2", Less),
                ("2.0~rc1", "2.0~rc1", Equal),
                ("2.0~~", "2.0~", Less),
                ("2.0~rc1", "2.0~", Greater),
                ("2.0~rc1~pre", "2.0~rc1", Less),
                ("2.0~rc1", "2.0.rc1", Less),
                ("2.0^", "2.0", Greater),
                ("2.0^git3", "2.0", Greater),
                ("2.0^git3", "2.0.1", Less),
                ("2.0^git3", "2.0^git4", Less),
                ("2.0^git3", "2.0^git3", Equal),
                ("2.0^git3", "2.0~rc1", Greater),
                ("2.0^git3^x", "2.0^git3", Greater),
                ("2.0^git3", "2.0^git3~pre", Greater),
                ("2.0~rc1^git", "2.0~rc1", Greater),
                ("2.0~rc1^git", "2.0", Less),
            ],
            rpmvercmp,
        );
    }

    #[test]
    fn epochs_and_releases() {
        check(
            &[
                ("8.7p1-38.el9", "8.7p1-38.el9", Equal),
                ("8.7p1-38.el9", "8.7p1-38.el9_4", Less),
                ("8.7p1-38.el9", "8.7p1-40.el9", Less),
                ("8.7p1-38.el9", "9.0p1-1.el9", Less),
                ("1:8.7p1-38.el9", "9.0p1-1.el9", Greater),
                ("0:8.7p1-38.el9", "8.7p1-38.el9", Equal),
                (":8.7p1-38.el9", "8.7p1-38.el9", Equal),
                ("007:1.0-1", "7:1.0-1", Equal),
                ("10:1.0-1", "9:1.0-1", Greater),
                // Without a release: older than the same version with one.
                ("4.9", "4.9-8.el9", Less),
                ("2:4.9", "2:4.9-8.el9", Less),
                ("4.9", "4.9", Equal),
                // The release is after the last dash.
                ("1.0-rc1-5", "1.0-rc1-4", Greater),
                ("1.0-rc1-5", "1.0-5", Greater),
                // Not an epoch: the colon must follow nothing but digits.
                ("a1:2.0", "1.0", Less),
            ],
            compare_rpm_versions,
        );
    }
}
