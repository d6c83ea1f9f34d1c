//! UTC timestamps from milliseconds since the epoch, without a date crate.

/// (year, month, day, hour, minute, second, millisecond) of a UTC instant.
fn civil(ms: i64) -> (i64, u32, u32, u32, u32, u32, u32) {
    let secs = ms.div_euclid(1000);
    let milli = ms.rem_euclid(1000) as u32;
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    // Days to a proleptic Gregorian date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, sod / 3600, sod / 60 % 60, sod % 60, milli)
}

/// `2026-11-27 05:14:38 UTC`.
pub fn format_ms(ms: i64) -> String {
    let (y, mo, d, h, mi, s, _) = civil(ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC")
}

/// `2026-11-27T05:14:38Z`, an `xs:dateTime`. Years outside 1..=9999 are clamped:
/// they only come from corrupt records.
pub fn rfc3339_ms(ms: i64) -> String {
    const MIN: i64 = -62_135_596_800_000; // 0001-01-01
    const MAX: i64 = 253_402_300_799_000; // 9999-12-31T23:59:59
    let (y, mo, d, h, mi, s, _) = civil(ms.clamp(MIN, MAX));
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// `2026-11-27T05:14:38.123Z`: RFC 3339 with milliseconds, the JSON document's form.
/// Years outside 1..=9999 are clamped as in [`rfc3339_ms`].
pub fn rfc3339_millis(ms: i64) -> String {
    const MIN: i64 = -62_135_596_800_000;
    const MAX: i64 = 253_402_300_799_999;
    let (y, mo, d, h, mi, s, milli) = civil(ms.clamp(MIN, MAX));
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc() {
        assert_eq!(format_ms(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_ms(1_700_000_100_000), "2023-11-14 22:15:00 UTC");
        assert_eq!(rfc3339_ms(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_ms(-1), "1969-12-31T23:59:59Z");
        assert_eq!(rfc3339_ms(i64::MAX), "9999-12-31T23:59:59Z");
        assert_eq!(rfc3339_ms(i64::MIN), "0001-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_millis(1_700_000_100_042),
            "2023-11-14T22:15:00.042Z"
        );
        assert_eq!(rfc3339_millis(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(rfc3339_millis(i64::MAX), "9999-12-31T23:59:59.999Z");
    }
}
