//! dpkg's versions (`[epoch:]upstream[-revision]`): what dpkg cannot parse in one,
//! and its order, as `dpkg --compare-versions` compares them.

use std::cmp::Ordering;

/// What dpkg cannot parse in a version (in its lax reading of the database, which
/// lets odd characters through): `Err` says what.
pub fn check_version(value: &str) -> Result<(), &'static str> {
    let v = value.trim_matches([' ', '\t']);
    if v.is_empty() {
        return Err("an empty version");
    }
    if v.contains([' ', '\t']) {
        return Err("a version with spaces");
    }
    let rest = match v.split_once(':') {
        Some((epoch, rest)) => {
            let (neg, digits) = match epoch.as_bytes().first() {
                Some(b'-') => (true, &epoch[1..]),
                Some(b'+') => (false, &epoch[1..]),
                _ => (false, epoch),
            };
            if digits.is_empty() || !digits.starts_with(|c: char| c.is_ascii_digit()) {
                return Err("an empty epoch");
            }
            if !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err("an epoch that is not a number");
            }
            let big = digits.trim_start_matches('0').len() > 10
                || digits.parse::<u64>().unwrap_or(u64::MAX) > i32::MAX as u64;
            if neg && digits.bytes().any(|b| b != b'0') {
                return Err("a negative epoch");
            }
            if big {
                return Err("an epoch too big");
            }
            if rest.is_empty() {
                return Err("nothing after the epoch");
            }
            rest
        }
        None => v,
    };
    let upstream = match rest.rsplit_once('-') {
        Some((_, "")) => return Err("an empty revision"),
        Some((u, _)) => u,
        None => rest,
    };
    if upstream.is_empty() {
        return Err("an empty upstream version");
    }
    Ok(())
}

/// Compares two Debian versions (epoch:upstream-revision) as dpkg does.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    fn split(v: &str) -> (u64, &str, &str) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) if e.chars().all(|c| c.is_ascii_digit()) => (e.parse().unwrap_or(0), r),
            _ => (0, v),
        };
        match rest.rsplit_once('-') {
            Some((u, r)) => (epoch, u, r),
            None => (epoch, rest, ""),
        }
    }
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| cmp_part(ua, ub))
        .then_with(|| cmp_part(ra, rb))
}

fn cmp_part(a: &str, b: &str) -> Ordering {
    // dpkg compares C `char`s, signed here: a byte above 0x7f is negative, so it
    // sorts after letters but before `+`, `.` and the other ASCII punctuation.
    fn order(c: Option<u8>) -> i32 {
        match c {
            None => 0,
            Some(b'~') => -1,
            Some(c) if c.is_ascii_alphabetic() => i32::from(c),
            Some(c) => i32::from(c as i8) + 256,
        }
    }
    let (mut a, mut b) = (a, b);
    loop {
        if a.is_empty() && b.is_empty() {
            return Ordering::Equal;
        }
        // Non-digit prefix, compared with dpkg's character order.
        let na = a.find(|c: char| c.is_ascii_digit()).unwrap_or(a.len());
        let nb = b.find(|c: char| c.is_ascii_digit()).unwrap_or(b.len());
        let (pa, pb) = (&a[..na], &b[..nb]);
        let mut ca = pa.bytes();
        let mut cb = pb.bytes();
        loop {
            let (x, y) = (ca.next(), cb.next());
            if x.is_none() && y.is_none() {
                break;
            }
            let o = order(x).cmp(&order(y));
            if o != Ordering::Equal {
                return o;
            }
        }
        a = &a[na..];
        b = &b[nb..];
        let da = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
        let db = b.find(|c: char| !c.is_ascii_digit()).unwrap_or(b.len());
        let xa = a[..da].trim_start_matches('0');
        let xb = b[..db].trim_start_matches('0');
        let o = xa.len().cmp(&xb.len()).then_with(|| xa.cmp(xb));
        if o != Ordering::Equal {
            return o;
        }
        a = &a[da..];
        b = &b[db..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

    #[test]
    fn dpkg_version_order() {
        for (a, b, o) in [
            ("1.5.2-6", "1.5.2-6", Equal),
            ("1.5.2-6+deb12u1", "1.5.2-6", Greater),
            ("1.5.2-5", "1.5.2-6", Less),
            ("1.0~rc1", "1.0", Less),
            // Bytes above 0x7f sort after letters, before `+` and `.` (signed chars).
            ("1.5é-9", "1.5.2-6", Less),
            ("1.5é", "1.5z", Greater),
            ("1.5é", "1.5+", Less),
            ("1:0.1", "9.9", Greater),
            ("1.10", "1.9", Greater),
        ] {
            assert_eq!(compare_versions(a, b), o, "{a} vs {b}");
        }
    }

    #[test]
    fn versions_dpkg_cannot_parse() {
        for ok in ["1", "1:2", "+1:2", "-0:2", "1.0-1", "a~b", "1:2:3-4-5"] {
            assert_eq!(check_version(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            " ",
            "1 2",
            ":1",
            "a:1",
            "-1:2",
            "99999999999:1",
            "1:",
            "1-",
            "-1",
            "1:-1",
        ] {
            assert!(check_version(bad).is_err(), "{bad:?}");
        }
    }
}
