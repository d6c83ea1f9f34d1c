//! Escaping for HTML and XML text and attributes.

/// Whether XML 1.0 can carry `c` at all (tab, newline and carriage return are the
/// only control characters it allows); C1 controls are dropped too.
fn printable(c: char) -> bool {
    !(c.is_control() && !matches!(c, '\t' | '\n' | '\r') || matches!(c, '\u{FFFE}' | '\u{FFFF}'))
}

fn escape(s: &str, apos: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            // Always escaped, so that `]]>` never appears either.
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str(apos),
            // Kept as a reference so that attribute normalisation leaves it alone.
            '\r' => out.push_str("&#13;"),
            c if !printable(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Escapes text for HTML element content and quoted attributes; control characters
/// other than tab and newline become U+FFFD.
pub fn escape_html(s: &str) -> String {
    escape(s, "&#39;")
}

/// Escapes text for XML 1.0 element content and quoted attributes; characters XML
/// 1.0 cannot carry (NUL, most C0/C1 controls, U+FFFE, U+FFFF) become U+FFFD.
pub fn escape_xml(s: &str) -> String {
    escape(s, "&apos;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_drops_forbidden_characters() {
        let table = [
            ("a<b>&c", "a&lt;b&gt;&amp;c"),
            ("\"q\" 'a'", "&quot;q&quot; &apos;a&apos;"),
            ("x]]>y", "x]]&gt;y"),
            (
                "nul\0bel\u{7}esc\u{1b}",
                "nul\u{FFFD}bel\u{FFFD}esc\u{FFFD}",
            ),
            ("c1\u{85}\u{9f}", "c1\u{FFFD}\u{FFFD}"),
            ("nc\u{FFFE}\u{FFFF}", "nc\u{FFFD}\u{FFFD}"),
            ("tab\tnl\ncr\r", "tab\tnl\ncr&#13;"),
            ("ünï 😀", "ünï 😀"),
        ];
        for (input, want) in table {
            assert_eq!(escape_xml(input), want, "{input:?}");
        }
        assert_eq!(escape_html("'a\u{7}'"), "&#39;a\u{FFFD}&#39;");
    }
}
