//! The systemd 252 configuration grammar as the journald family reads the files
//! `systemd-analyze cat-config` prints: lines, continuations, sections, and the
//! boolean and size values the daemons accept.

/// One assignment as systemd's parser reads it: (section, key, value, path, line).
pub(super) type Assignment = (String, String, String, String, usize);

/// The assignments of the files cat-config printed, in its order, read as systemd
/// 252's parser reads lines: comment lines (`#`, `;` after blanks) are skipped even
/// inside a continuation, an unescaped trailing backslash continues the line (as a
/// space), sections and keys are compared as written, the line number is the last
/// physical line's. The main file is kept only from /etc/systemd (see the module
/// documentation).
pub(super) fn assignments(cat: &str, conf: &str) -> Vec<Assignment> {
    let main = format!("/etc/systemd/{conf}");
    let mut files: Vec<(String, Vec<&str>)> = Vec::new();
    for l in cat.split('\n') {
        if let Some(p) = l.strip_prefix("# ") {
            let is_header = p.starts_with('/')
                && (p.ends_with(&format!("/systemd/{conf}"))
                    || p.contains(&format!("/systemd/{conf}.d/")));
            if is_header {
                files.push((p.to_string(), Vec::new()));
                continue;
            }
        }
        if let Some(f) = files.last_mut() {
            f.1.push(l);
        }
    }
    let mut out = Vec::new();
    for (path, lines) in files {
        if path.ends_with(&format!("/systemd/{conf}")) && path != main {
            continue;
        }
        let mut section = String::new();
        let mut cont: Option<String> = None;
        // A line still continued at the end of the file is parsed as it is.
        let lines: Vec<&str> = lines.iter().copied().chain([""]).collect();
        for (n, raw) in lines.iter().enumerate() {
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            let lead = raw.trim_start_matches([' ', '\t']);
            if lead.starts_with('#') || lead.starts_with(';') {
                continue;
            }
            let mut l = cont.take().unwrap_or_default();
            l.push_str(raw);
            let mut escaped = false;
            for c in l.chars() {
                escaped = !escaped && c == '\\';
            }
            if escaped {
                l.pop();
                l.push(' ');
                cont = Some(l);
                continue;
            }
            let t = l.trim_matches([' ', '\t', '\n', '\r']);
            if t.is_empty() {
                continue;
            }
            if let Some(s) = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                section = s.to_string();
                continue;
            }
            if let Some((k, v)) = t.split_once('=') {
                out.push((
                    section.clone(),
                    k.trim_matches([' ', '\t']).to_string(),
                    v.trim_matches([' ', '\t']).to_string(),
                    path.clone(),
                    n + 1,
                ));
            }
        }
    }
    out
}

/// systemd's `parse_boolean`.
pub(super) fn boolean(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}

/// systemd 252's `parse_size` (base 1024), written from its documented grammar:
/// parts of digits, an optional fraction, blanks, and a suffix E P T G M K B or
/// none, each suffix smaller than the last.
pub(super) fn size(v: &str) -> Option<u64> {
    let units: [(&str, u64); 8] = [
        ("E", 1 << 60),
        ("P", 1 << 50),
        ("T", 1 << 40),
        ("G", 1 << 30),
        ("M", 1 << 20),
        ("K", 1 << 10),
        ("B", 1),
        ("", 1),
    ];
    let b: Vec<char> = v.chars().collect();
    let (mut i, mut start, mut total) = (0usize, 0usize, 0u64);
    loop {
        while i < b.len() && matches!(b[i], ' ' | '\t' | '\n' | '\r') {
            i += 1;
        }
        if b.get(i) == Some(&'-') {
            return None;
        }
        if b.get(i) == Some(&'+') {
            i += 1;
        }
        let d0 = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == d0 {
            return None;
        }
        let whole: u64 = b[d0..i].iter().collect::<String>().parse().ok()?;
        let mut frac = 0f64;
        if b.get(i) == Some(&'.') {
            i += 1;
            let f0 = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i > f0 {
                frac = format!("0.{}", b[f0..i].iter().collect::<String>())
                    .parse()
                    .ok()?;
            }
        }
        while i < b.len() && matches!(b[i], ' ' | '\t' | '\n' | '\r') {
            i += 1;
        }
        let rest: String = b[i..].iter().collect();
        let k = (start..units.len()).find(|&k| rest.starts_with(units[k].0))?;
        total = total
            .checked_add(whole.checked_mul(units[k].1)? + (frac * units[k].1 as f64) as u64)?;
        i += units[k].0.len();
        start = k + 1;
        if i >= b.len() {
            return Some(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_systemd_reads_them() {
        assert_eq!(size("0"), Some(0));
        assert_eq!(size("1G 512M"), Some((1 << 30) + (512 << 20)));
        assert_eq!(size("0.5K"), Some(512));
        assert_eq!(size("+1M"), Some(1 << 20));
        for bad in ["", "-1", "4k", "1KB", "1M 1G", "unlimited", "0 # x"] {
            assert_eq!(size(bad), None, "{bad}");
        }
    }

    #[test]
    fn lines_as_systemd_reads_them() {
        let cat = "# /usr/lib/systemd/x.conf\n[S]\nA=1\n\n# /etc/systemd/x.conf.d/a.conf\n[S]\nA=\\\n# c\n  2\n[ S ]\nB=3\n";
        let a = assignments(cat, "x.conf");
        assert_eq!(a.len(), 2, "{a:?}");
        assert_eq!(a[0].2, "2");
        assert_eq!(a[0].4, 4);
        assert_eq!(a[1].0, " S ");
    }
}
