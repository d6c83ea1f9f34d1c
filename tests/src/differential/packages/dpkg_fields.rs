//! Fields for the dpkg half's generated stanzas beyond identity and state, drawn in a
//! few per cent of stanzas each, well-formed and broken, so that dpkg-query judges
//! the reader's field checks: relationship fields (alternatives, architecture
//! qualifiers, every version relation with the obsolete `<` and `>`, `[arch]` lists,
//! empty versions, stray separators), `Conffiles` lines, `Essential` and
//! `Protected`, `Priority`, archive fields, trigger names (awaited packages in two
//! cases), the obsolete `Revision` fields, a `Status` whose words start on the next
//! line, and versions with non-ASCII characters.

use super::super::Rng;

/// Relationship fields (`Built-Using` is not parsed by dpkg 1.21).
const RELATIONS: &[&str] = &[
    "Depends",
    "Pre-Depends",
    "Recommends",
    "Suggests",
    "Enhances",
    "Breaks",
    "Conflicts",
    "Replaces",
    "Provides",
    "Built-Using",
];

/// Relationship values dpkg refuses (or, for fields without alternatives, `|`).
const BROKEN_RELATIONS: &[&str] = &[
    "(",
    "a [amd64]",
    "a (>> )",
    "a b",
    "a,",
    "a,,b",
    "a:",
    "a:a_b",
    "a (<> 1)",
    "a (>= 1.0",
    "a (>= 1.0 x)",
    "a (>= 1:)",
    "-a",
    "a | b",
    "a (>=1)(",
    "é",
];

/// One package reference: a name, perhaps an architecture, perhaps a version.
fn reference(rng: &mut Rng, version: &dyn Fn(&mut Rng) -> String) -> String {
    let mut r = rng
        .pick(&["libc6", "netbase", "a", "B-c", "x+y.z", "perl"])
        .to_string();
    if rng.chance(20) {
        r += *rng.pick(&[":any", ":native", ":amd64", ":i386"]);
    }
    if rng.chance(50) {
        let rel = *rng.pick(&["<<", "<=", "=", ">=", ">>", "<", ">", ""]);
        let sp = *rng.pick(&[" ", "", "  "]);
        r += &format!("{sp}({rel} {})", version(rng));
    }
    r
}

/// A relationship value dpkg reads: entries of alternatives.
fn relations(rng: &mut Rng, version: &dyn Fn(&mut Rng) -> String) -> String {
    let mut entries = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let mut alts = Vec::new();
        for _ in 0..1 + usize::from(rng.chance(25)) {
            alts.push(reference(rng, version));
        }
        entries.push(alts.join(" | "));
    }
    let sep = if rng.chance(20) { ",\n " } else { ", " };
    entries.join(sep)
}

/// Adds a few fields dpkg parses (or the obsolete `Revision` after `Version`) to a
/// stanza's `fields`, now and then one dpkg refuses.
pub fn extra(
    rng: &mut Rng,
    fields: &mut Vec<(String, String)>,
    version: &dyn Fn(&mut Rng) -> String,
) {
    // Each broken shape in well under 1% of stanzas: most databases stay readable.
    if rng.chance(5) {
        let field = rng.pick(RELATIONS).to_string();
        let v = if rng.chance(12) {
            rng.pick(BROKEN_RELATIONS).to_string()
        } else {
            relations(rng, version)
        };
        fields.push((field, v));
    }
    if rng.chance(2) {
        let v = *rng.pick(&[
            "\n /etc/rampart.conf 0123abcd",
            "\n /etc/rampart.conf 0123abcd",
            "\n /etc/rampart.conf 0123abcd obsolete",
            "\n /etc/rampart.conf 0123abcd obsolete\n /etc/a b 5678 remove-on-upgrade",
            "\n /etc/x y obsolete remove-on-upgrade",
            "\n /etc/rampart.conf",
            " /etc/rampart.conf 0123abcd",
            "\n / 0123abcd",
            "\n /etc/x obsolete",
            "\n\t/etc/x 0123abcd",
            "\n ./ 0123abcd",
        ]);
        fields.push(("Conffiles".to_string(), v.to_string()));
    }
    if rng.chance(2) {
        let field = *rng.pick(&["Essential", "Protected"]);
        let v = *rng.pick(&[
            "yes", "no", "YES", "No", "yes", "no", "maybe", "nope", "yes x",
        ]);
        fields.push((field.to_string(), v.to_string()));
    }
    if rng.chance(2) {
        let v = *rng.pick(&[
            "source",
            "extra",
            "Important",
            "optionalx",
            "extra x",
            "required",
        ]);
        if let Some(p) = fields.iter_mut().find(|(k, _)| k == "Priority") {
            p.1 = v.to_string();
        }
    }
    if rng.below(300) == 0 {
        let field = *rng.pick(&["Filename", "Size", "MD5sum"]);
        fields.push((field.to_string(), "1".to_string()));
    }
    for (k, v) in fields.iter_mut() {
        if k == "Triggers-Awaited" && rng.chance(8) {
            *v = rng
                .pick(&[
                    "man-db MAN-DB",
                    "man-db libc-bin:amd64",
                    "man-db:amd64 man-db",
                    "-x",
                    "man-db:",
                    "man-db:x_y",
                    "man-db\n libc-bin",
                ])
                .to_string();
        }
        if k == "Triggers-Pending" && rng.chance(8) {
            *v = rng
                .pick(&[
                    "/usr/share/rampart /usr/share/rampart",
                    "/usr/share/rampart /usr/share/RAMPART",
                    "/usr/share/rampartè",
                    "a\n b",
                ])
                .to_string();
        }
        if k == "Status" && rng.below(300) == 0 {
            *v = format!("\n {v}");
        }
    }
    if rng.chance(3) {
        let field = *rng.pick(&[
            "Revision",
            "Package-Revision",
            "Package_Revision",
            "revision",
        ]);
        let v = *rng.pick(&["~", "1", "0", "deb1", "~rc1", "9"]);
        // After Version most of the time (dpkg appends it); before, it is overwritten.
        let at = match fields.iter().position(|(k, _)| k == "Version") {
            Some(i) if rng.chance(80) => i + 1,
            _ => rng.below(fields.len() + 1),
        };
        fields.insert(at, (field.to_string(), v.to_string()));
    }
}

/// A version with a non-ASCII character now and then (dpkg reads it with a warning
/// and orders its bytes as signed chars).
pub fn odd(rng: &mut Rng, mut v: String) -> String {
    if rng.chance(3) {
        let c = *rng.pick(&["é", "ü", "ß"]);
        let at = match v.rfind('-') {
            Some(i) if rng.chance(50) => i + 1,
            _ => v.len(),
        };
        v.insert_str(at, c);
    }
    v
}
