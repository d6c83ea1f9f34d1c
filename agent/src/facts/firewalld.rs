//! firewalld's persisted configuration: the default zone from
//! `/etc/firewalld/firewalld.conf`, and the zones from their XML files, a file in
//! `/etc/firewalld/zones` hiding the packaged one of the same name in
//! `/usr/lib/firewalld/zones`, as firewalld loads them at start.
//!
//! The XML is read by a small tokenizer of our own ([`parse_xml`]): elements,
//! attributes (quoted with `"` or `'`, the five predefined entities and numeric
//! character references decoded), self-closing tags, comments, processing
//! instructions and a DOCTYPE skipped; text content ignored (no zone setting the
//! checks need lives in text). It is bounded (nesting depth, element count, and the
//! file size [`Facts::read`] allows) and reports any malformation as an error naming
//! the file, never a panic. The runtime configuration (`firewall-cmd` changes not
//! made `--permanent`) lives only in the daemon and is not read.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::kv;
use super::{FactError, Facts};
use crate::facts::Fact;

/// firewalld's own configuration file.
pub const CONF: &str = "/etc/firewalld/firewalld.conf";
/// Zone directories, highest precedence first.
pub const ZONE_DIRS: [&str; 2] = ["/etc/firewalld/zones", "/usr/lib/firewalld/zones"];
/// The zone firewalld uses when firewalld.conf names none.
pub const BUILTIN_DEFAULT_ZONE: &str = "public";
/// The deepest element nesting accepted (zone files nest three levels).
const MAX_DEPTH: usize = 32;
/// The most elements accepted in one file.
const MAX_ELEMENTS: usize = 100_000;

/// One XML element: its name, attributes in document order, children, and the
/// line its start tag is on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Element>,
    pub line: usize,
}

impl Element {
    /// The value of attribute `name`, if present.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// Children named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// Parses an XML document into its root element; `Err` says what is wrong and where.
pub fn parse_xml(text: &str) -> Result<Element, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let b = text.as_bytes();
    let mut i = 0;
    let mut line = 1;
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut count = 0usize;
    // Advances over `n` bytes, counting newlines.
    let advance = |i: &mut usize, line: &mut usize, n: usize| {
        let end = (*i + n).min(b.len());
        *line += b[*i..end].iter().filter(|&&c| c == b'\n').count();
        *i = end;
    };
    while i < b.len() {
        if b[i] != b'<' {
            if stack.is_empty() && !b[i].is_ascii_whitespace() {
                return Err(format!("line {line}: text outside the root element"));
            }
            let next = text[i..].find('<').map_or(b.len(), |n| i + n);
            let n = next - i;
            advance(&mut i, &mut line, n);
            continue;
        }
        let rest = &text[i..];
        let skip_to = |end: &str, what: &str| -> Result<usize, String> {
            rest.find(end)
                .map(|n| n + end.len())
                .ok_or_else(|| format!("line {line}: unterminated {what}"))
        };
        if rest.starts_with("<!--") {
            let n = skip_to("-->", "comment")?;
            advance(&mut i, &mut line, n);
        } else if rest.starts_with("<?") {
            let n = skip_to("?>", "processing instruction")?;
            advance(&mut i, &mut line, n);
        } else if rest.starts_with("<![CDATA[") {
            let n = skip_to("]]>", "CDATA section")?;
            advance(&mut i, &mut line, n);
        } else if rest.starts_with("<!") {
            // A DOCTYPE (an internal subset in brackets is not supported).
            if rest[..rest.find('>').unwrap_or(rest.len())].contains('[') {
                return Err(format!(
                    "line {line}: a DOCTYPE with an internal subset is not supported"
                ));
            }
            let n = skip_to(">", "declaration")?;
            advance(&mut i, &mut line, n);
        } else if let Some(after) = rest.strip_prefix("</") {
            let end = after
                .find('>')
                .ok_or_else(|| format!("line {line}: unterminated end tag"))?;
            let name = after[..end].trim();
            let Some(el) = stack.pop() else {
                return Err(format!(
                    "line {line}: end tag </{name}> without a start tag"
                ));
            };
            if el.name != name {
                return Err(format!(
                    "line {line}: end tag </{name}> closes <{}> of line {}",
                    el.name, el.line
                ));
            }
            attach(el, &mut stack, &mut root, line)?;
            advance(&mut i, &mut line, end + 3);
        } else {
            let start_line = line;
            let (el, self_closing, len) = start_tag(rest, start_line)?;
            count += 1;
            if count > MAX_ELEMENTS {
                return Err(format!("more than {MAX_ELEMENTS} elements"));
            }
            advance(&mut i, &mut line, len);
            if self_closing {
                attach(el, &mut stack, &mut root, start_line)?;
            } else {
                if stack.len() >= MAX_DEPTH {
                    return Err(format!(
                        "line {start_line}: elements nested deeper than {MAX_DEPTH}"
                    ));
                }
                if stack.is_empty() && root.is_some() {
                    return Err(format!("line {start_line}: a second root element"));
                }
                stack.push(el);
            }
        }
    }
    if let Some(open) = stack.last() {
        return Err(format!(
            "<{}> of line {} is never closed",
            open.name, open.line
        ));
    }
    root.ok_or_else(|| "no root element".to_string())
}

/// Puts a finished element under its parent, or makes it the root.
fn attach(
    el: Element,
    stack: &mut [Element],
    root: &mut Option<Element>,
    line: usize,
) -> Result<(), String> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None if root.is_none() => *root = Some(el),
        None => return Err(format!("line {line}: a second root element")),
    }
    Ok(())
}

fn is_name_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':')
}

/// Parses a start tag at the beginning of `s` (which starts with `<`): the element
/// (without children), whether it closes itself, and the tag's length in bytes.
fn start_tag(s: &str, line: usize) -> Result<(Element, bool, usize), String> {
    let bad = |why: &str| format!("line {line}: {why}");
    let mut pos = 1;
    let name_len = s[pos..]
        .find(|c: char| !is_name_char(c))
        .unwrap_or(s.len() - pos);
    if name_len == 0 {
        return Err(bad("a tag without a name"));
    }
    let mut el = Element {
        name: s[pos..pos + name_len].to_string(),
        line,
        ..Default::default()
    };
    pos += name_len;
    loop {
        let ws = s[pos..]
            .find(|c: char| !c.is_whitespace())
            .ok_or_else(|| bad("unterminated start tag"))?;
        pos += ws;
        let rest = &s[pos..];
        if rest.starts_with("/>") {
            return Ok((el, true, pos + 2));
        }
        if rest.starts_with('>') {
            return Ok((el, false, pos + 1));
        }
        if ws == 0 {
            return Err(bad("attributes must be separated by white space"));
        }
        let klen = rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len());
        if klen == 0 {
            return Err(bad(&format!("unexpected character in <{}>", el.name)));
        }
        let key = rest[..klen].to_string();
        pos += klen;
        let ws = s[pos..].find(|c: char| !c.is_whitespace()).unwrap_or(0);
        pos += ws;
        if !s[pos..].starts_with('=') {
            return Err(bad(&format!("attribute {key} has no value")));
        }
        pos += 1;
        pos += s[pos..].find(|c: char| !c.is_whitespace()).unwrap_or(0);
        let quote = s[pos..]
            .chars()
            .next()
            .filter(|c| *c == '"' || *c == '\'')
            .ok_or_else(|| bad(&format!("attribute {key}'s value is not quoted")))?;
        pos += 1;
        let end = s[pos..]
            .find(quote)
            .ok_or_else(|| bad(&format!("attribute {key}'s value is never closed")))?;
        let raw = &s[pos..pos + end];
        if raw.contains('<') {
            return Err(bad(&format!("attribute {key}'s value contains <")));
        }
        if el.attr(&key).is_some() {
            return Err(bad(&format!("attribute {key} given twice")));
        }
        el.attrs.push((key, unescape(raw).map_err(|e| bad(&e))?));
        pos += end + 1;
    }
}

/// Decodes the predefined entities and numeric character references.
fn unescape(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after
            .find(';')
            .filter(|n| *n <= 10)
            .ok_or_else(|| format!("an unterminated entity in {raw:?}"))?;
        let ent = &after[..end];
        let c = match ent {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let n = if let Some(h) = ent.strip_prefix("#x").or(ent.strip_prefix("#X")) {
                    u32::from_str_radix(h, 16).ok()
                } else if let Some(d) = ent.strip_prefix('#') {
                    d.parse().ok()
                } else {
                    None
                };
                n.and_then(char::from_u32)
                    .ok_or_else(|| format!("unknown entity &{ent}; in {raw:?}"))?
            }
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A source or destination of a rich rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The address or network (empty when the element names an ipset or MAC instead).
    pub address: String,
    /// `invert="true"`: the rule matches every other address.
    pub invert: bool,
}

/// A rich rule of a zone, as far as the checks need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RichRule {
    /// `ipv4`, `ipv6`, or `None` for both.
    pub family: Option<String>,
    pub source: Option<Address>,
    pub destination: Option<Address>,
    /// `accept`, `reject`, `drop` or `mark`; `None` when the rule only logs or audits.
    pub action: Option<String>,
    /// `file:line`.
    pub at: String,
}

/// One zone, from the file that defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    pub name: String,
    pub file: String,
    /// `target` of the zone element (`default` when absent).
    pub target: String,
    /// Interfaces bound to the zone, each with `file:line`.
    pub interfaces: Vec<(String, String)>,
    /// Source addresses bound to the zone.
    pub sources: Vec<(String, String)>,
    /// Services the zone allows, by name.
    pub services: Vec<String>,
    /// Ports the zone allows, as `port/protocol`.
    pub ports: Vec<String>,
    pub rich_rules: Vec<RichRule>,
}

/// firewalld's persisted configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The default zone and where it comes from (`file:line`, or the built-in default).
    pub default_zone: String,
    pub default_zone_source: String,
    /// Zones by name.
    pub zones: BTreeMap<String, Zone>,
}

fn is_true(v: Option<&str>) -> bool {
    v.is_some_and(|v| v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("yes"))
}

/// The zone a parsed file defines (`name` from the file name, as firewalld takes it).
pub fn zone_from(root: &Element, name: &str, file: &str) -> Result<Zone, String> {
    if root.name != "zone" {
        return Err(format!("the root element is <{}>, not <zone>", root.name));
    }
    let at = |e: &Element| format!("{file}:{}", e.line);
    let mut z = Zone {
        name: name.to_string(),
        file: file.to_string(),
        target: root.attr("target").unwrap_or("default").to_string(),
        interfaces: Vec::new(),
        sources: Vec::new(),
        services: Vec::new(),
        ports: Vec::new(),
        rich_rules: Vec::new(),
    };
    for c in &root.children {
        match c.name.as_str() {
            "interface" => {
                if let Some(n) = c.attr("name") {
                    z.interfaces.push((n.to_string(), at(c)));
                }
            }
            "source" => {
                if let Some(a) = c.attr("address") {
                    z.sources.push((a.to_string(), at(c)));
                }
            }
            "service" => {
                if let Some(n) = c.attr("name") {
                    z.services.push(n.to_string());
                }
            }
            "port" => {
                if let (Some(p), Some(proto)) = (c.attr("port"), c.attr("protocol")) {
                    z.ports.push(format!("{p}/{proto}"));
                }
            }
            "rule" => {
                let addr = |tag: &str| {
                    c.children_named(tag).next().map(|e| Address {
                        address: e.attr("address").unwrap_or_default().to_string(),
                        invert: is_true(e.attr("invert")),
                    })
                };
                let action = c
                    .children
                    .iter()
                    .find(|e| matches!(e.name.as_str(), "accept" | "reject" | "drop" | "mark"))
                    .map(|e| e.name.clone());
                z.rich_rules.push(RichRule {
                    family: c.attr("family").map(str::to_string),
                    source: addr("source"),
                    destination: addr("destination"),
                    action,
                    at: at(c),
                });
            }
            _ => {}
        }
    }
    Ok(z)
}

/// firewalld's persisted configuration, read once per scan.
pub fn config(facts: &Facts) -> Result<Arc<Config>, FactError> {
    facts.get::<Config>()
}

impl Fact for Config {
    type Value = Self;
    fn read(facts: &Facts) -> Result<Self, FactError> {
        read(facts)
    }
}

fn read(facts: &Facts) -> Result<Config, FactError> {
    let (mut default_zone, mut default_zone_source) = (
        BUILTIN_DEFAULT_ZONE.to_string(),
        format!("{CONF} not found; firewalld's built-in default zone is {BUILTIN_DEFAULT_ZONE}"),
    );
    if let Some(text) = facts.read(CONF)? {
        let settings = kv::parse(&text, CONF, kv::Separator::Equals);
        match kv::last(&settings, "DefaultZone", false) {
            Some(s) if !s.value.trim().is_empty() => {
                default_zone = s.value.trim().to_string();
                default_zone_source = s.source.clone();
            }
            Some(s) => {
                default_zone_source = format!(
                    "{}: DefaultZone is empty; firewalld uses its built-in default {BUILTIN_DEFAULT_ZONE}",
                    s.source
                )
            }
            None => {
                default_zone_source = format!(
                    "{CONF}: DefaultZone not set; firewalld uses its built-in default {BUILTIN_DEFAULT_ZONE}"
                )
            }
        }
    }
    let mut zones = BTreeMap::new();
    for file in kv::dropin_files(facts, &ZONE_DIRS, ".xml")? {
        let Some(text) = facts.read(&file)? else {
            continue;
        };
        let name = file
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches(".xml")
            .to_string();
        let malformed = |reason: String| FactError::Malformed {
            path: file.clone(),
            reason,
        };
        let root = parse_xml(&text).map_err(malformed)?;
        let zone = zone_from(&root, &name, &file).map_err(malformed)?;
        zones.insert(name, zone);
    }
    Ok(Config {
        default_zone,
        default_zone_source,
        zones,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRUSTED: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<!-- a comment with <tags> -->
<zone target="ACCEPT">
  <short>Trusted</short>
  <description>All network connections are accepted.</description>
  <interface name="lo"/>
  <rule family="ipv4">
    <source address="127.0.0.1"/>
    <destination address="127.0.0.1" invert='True'/>
    <drop/>
  </rule>
  <rule family="ipv6"><source address="::1"/><log prefix="a &amp; b &#x41;"/><reject type="icmp6-adm-prohibited"/></rule>
</zone>
"#;

    #[test]
    fn a_zone_file_gives_interfaces_and_rich_rules() {
        let root = parse_xml(TRUSTED).unwrap();
        let z = zone_from(&root, "trusted", "/etc/firewalld/zones/trusted.xml").unwrap();
        assert_eq!(z.target, "ACCEPT");
        assert_eq!(
            z.interfaces,
            vec![("lo".into(), "/etc/firewalld/zones/trusted.xml:6".into())]
        );
        assert_eq!(z.rich_rules.len(), 2);
        let r = &z.rich_rules[0];
        assert_eq!(r.family.as_deref(), Some("ipv4"));
        assert_eq!(r.source.as_ref().unwrap().address, "127.0.0.1");
        assert!(r.destination.as_ref().unwrap().invert);
        assert_eq!(r.action.as_deref(), Some("drop"));
        assert_eq!(r.at, "/etc/firewalld/zones/trusted.xml:7");
        assert_eq!(z.rich_rules[1].action.as_deref(), Some("reject"));
        let log = &root.children[4].children[1];
        assert_eq!(log.attr("prefix"), Some("a & b A"));
    }

    #[test]
    fn malformed_documents_are_errors() {
        for bad in [
            "",
            "text",
            "<zone>",
            "<zone></service>",
            "<zone/><zone/>",
            "<zone a=b/>",
            "<zone a=\"1\" a=\"2\"/>",
            "<zone a=\"x/>",
            "<zone a=\"&bogus;\"/>",
            "<zone a=\"&#xFFFFFFFF;\"/>",
            "<!-- open",
            "<zone><",
            "<zone a=\"1\"b=\"2\"/>",
            "<!DOCTYPE zone [<!ENTITY x \"y\">]><zone/>",
            "< zone/>",
        ] {
            assert!(parse_xml(bad).is_err(), "{bad:?} should be an error");
        }
        assert!(zone_from(&parse_xml("<service/>").unwrap(), "x", "f").is_err());
    }

    #[test]
    fn deep_nesting_is_bounded() {
        let deep = "<a>".repeat(MAX_DEPTH + 1) + &"</a>".repeat(MAX_DEPTH + 1);
        assert!(parse_xml(&deep).unwrap_err().contains("deeper"));
        let ok = "<a>".repeat(MAX_DEPTH) + &"</a>".repeat(MAX_DEPTH);
        assert!(parse_xml(&ok).is_ok());
    }

    #[test]
    fn hostile_inputs_never_panic() {
        let mut inputs: Vec<String> = crate::checks::NASTY_INPUTS
            .iter()
            .map(|s| s.to_string())
            .collect();
        inputs.extend(
            [
                "<",
                "<a",
                "<a ",
                "<a b",
                "<a b=",
                "<a b='",
                "</",
                "<!",
                "<?",
                "&",
                "<a>&</a>",
                "é<a/>",
                "\u{feff}<a/>",
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        for a in inputs.clone() {
            let _ = parse_xml(&a);
            for b in &inputs {
                let _ = parse_xml(&format!("{a}{b}"));
                let _ = parse_xml(&format!("<zone x=\"{a}\">{b}</zone>"));
            }
        }
        // Cutting a valid document anywhere (on a char boundary) never panics.
        for n in 0..TRUSTED.len() {
            if TRUSTED.is_char_boundary(n) {
                let _ = parse_xml(&TRUSTED[..n]);
            }
        }
        assert!(parse_xml("\u{feff}<zone/>").is_ok());
    }

    #[test]
    fn etc_hides_usr_lib_and_the_default_zone_is_read() {
        let t = crate::checks::test_tree(
            &[
                (
                    "/usr/lib/firewalld/zones/public.xml",
                    "<zone><service name=\"ssh\"/></zone>",
                ),
                (
                    "/usr/lib/firewalld/zones/trusted.xml",
                    "<zone target=\"ACCEPT\"/>",
                ),
                ("/etc/firewalld/zones/trusted.xml", TRUSTED),
                ("/etc/firewalld/firewalld.conf", "# c\nDefaultZone=drop\n"),
            ],
            &[],
        );
        let facts = Facts::new(t.path(), false);
        let c = config(&facts).unwrap();
        assert_eq!(c.default_zone, "drop");
        assert_eq!(c.default_zone_source, "/etc/firewalld/firewalld.conf:2");
        assert_eq!(c.zones["trusted"].file, "/etc/firewalld/zones/trusted.xml");
        assert_eq!(c.zones["public"].target, "default");
        assert_eq!(c.zones["public"].services, vec!["ssh".to_string()]);
        std::fs::write(t.path().join("etc/firewalld/zones/bad.xml"), "<zone>").unwrap();
        let facts = Facts::new(t.path(), false);
        assert!(matches!(
            config(&facts).as_ref(),
            Err(FactError::Malformed { path, .. }) if path == "/etc/firewalld/zones/bad.xml"
        ));
    }
}
