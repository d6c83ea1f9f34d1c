//! The Terraform example's variables, checked structurally: every input that reaches
//! the template has a validation that accepts good values and refuses hostile ones.

use super::*;

/// The `variable "NAME" { … }` blocks of a Terraform file, by name. A small structural
/// parse (no `terraform` binary here): strings (with their escapes) and `#` comments are
/// skipped, and every brace must balance.
fn tf_variables(text: &str) -> BTreeMap<String, String> {
    let mut blocks = BTreeMap::new();
    let b = text.as_bytes();
    let (mut i, mut depth, mut start, mut name) = (0, 0usize, 0, None::<String>);
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'{' => {
                if depth == 0 {
                    let head = text[..i].rsplit('\n').next().unwrap().trim();
                    name = head
                        .strip_prefix("variable \"")
                        .and_then(|h| h.strip_suffix('"'))
                        .map(String::from);
                    start = i;
                }
                depth += 1;
            }
            b'}' => {
                depth = depth.checked_sub(1).expect("unbalanced }");
                if depth == 0 {
                    if let Some(n) = name.take() {
                        blocks.insert(n, text[start..=i].to_string());
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    assert_eq!(depth, 0, "unbalanced {{");
    blocks
}

/// The regexes of a block's validation conditions, HCL string escapes undone.
fn validation_regexes(block: &str) -> Vec<String> {
    let mut out = Vec::new();
    for cond in block.split("validation {").skip(1) {
        let cond = &cond[..cond.find("error_message").expect("error_message")];
        assert!(cond.contains("condition"), "{cond}");
        for part in cond.split("regex(\"").skip(1) {
            let (mut re, mut chars) = (String::new(), part.chars());
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => match chars.next() {
                        Some('n') => re.push('\n'),
                        Some(e) => re.push(e),
                        None => panic!("dangling escape"),
                    },
                    c => re.push(c),
                }
            }
            out.push(re);
        }
    }
    out
}

/// Whether Terraform's regex() would match the whole of `value` (RE2; these patterns
/// use only what POSIX ERE shares with it, so `grep -Ez` decides: one NUL-ended record,
/// a newline is an ordinary, unmatched character).
fn matches(re: &str, value: &str) -> bool {
    use std::io::Write;
    let mut child = Command::new("grep")
        .args(["-Ezq", "--", re])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut record = value.as_bytes().to_vec();
    record.push(0);
    child.stdin.take().unwrap().write_all(&record).unwrap();
    child.wait().unwrap().success()
}

/// Every variable of the Terraform example that reaches the VM has a validation that
/// accepts the collector's own forms and refuses shell, YAML and URL tricks.
#[test]
fn terraform_variables_are_validated() {
    let text =
        std::fs::read_to_string(workspace().join("cloud-init/terraform/variables.tf")).unwrap();
    let vars = tf_variables(&text);
    let hostile = [
        "$(touch /tmp/pwned)",
        "a;b",
        "`id`",
        "two words",
        "it's",
        "a\"b",
        "a,b",
        "a\nb",
        "",
    ];
    let pin = "ab".repeat(32);
    let colons = vec!["AB"; 32].join(":");
    let long_user = "a".repeat(33);
    let table: [(&str, usize, &[&str], &[&str]); 10] = [
        (
            "download_base",
            0,
            &[
                "https://collector.example:8443",
                "https://10.0.0.5:8443/",
                "https://[fd00::5]:8443",
            ],
            &[
                "http://collector.example:8443",
                "https://user@c.example",
                "https://c.example/x'",
            ],
        ),
        (
            "collector_url",
            0,
            &["https://collector.example:7443"],
            &["http://c.example"],
        ),
        ("ca_fingerprint", 0, &[&pin, &colons], &["ab", "zz"]),
        (
            "enrollment_token",
            0,
            &["rpt_enroll_0123456789abcdef"],
            &["short"],
        ),
        ("terraform_project", 0, &["web", "team-a.prod_1"], &["-web"]),
        ("labels", 0, &["env", "team/a"], &["-x"]),
        ("labels", 1, &["prod", "a:b/c@d+e", ""], &[]),
        (
            "ssh_user",
            0,
            &["ubuntu", "rampart-scan", "_svc1"],
            &["Ubuntu", "-x", "a.b", &long_user],
        ),
        (
            "ssh_public_key",
            0,
            &[SSH_KEY, &SSH_KEY[..80], ""],
            &[
                &format!("command=\"sh\" {SSH_KEY}"),
                &format!("{SSH_KEY}\n{SSH_KEY}"),
                "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ",
            ],
        ),
        (
            "collector_api",
            0,
            &[
                "https://c.example:8443",
                "http://127.0.0.1:8080",
                "http://localhost:80",
                "http://[::1]:80",
            ],
            &[
                "http://c.example:8080",
                "http://127.0.0.1.evil.example",
                "ftp://c.example",
            ],
        ),
    ];
    for (var, idx, good, bad) in table {
        let block = vars
            .get(var)
            .unwrap_or_else(|| panic!("variable {var} missing"));
        let res = validation_regexes(block);
        let re = res
            .get(idx)
            .unwrap_or_else(|| panic!("{var}: no validation regex #{idx}"));
        for g in good {
            assert!(matches(re, g), "{var} refuses {g:?} ({re})");
        }
        // Values that may be empty meet every hostile value but the empty one.
        let also_hostile = if (var == "labels" && idx == 1) || var == "ssh_public_key" {
            &hostile[..8]
        } else {
            &hostile[..]
        };
        for b in bad.iter().chain(also_hostile) {
            assert!(!matches(re, b), "{var} accepts {b:?} ({re})");
        }
    }
    assert!(
        vars["labels"].contains("!contains(keys(var.labels), \"project\")"),
        "a label cannot override the project"
    );
    assert!(!validation_regexes(&vars["install_sh_sha256"]).is_empty());
    assert!(
        vars["ssh_user"].contains("var.ssh_user != \"root\""),
        "the SSH user cannot be root"
    );
    // The template receives every value but the token base64-encoded.
    let tpl = std::fs::read_to_string(template("aws")).unwrap();
    for v in [
        "download_base",
        "install_sh_sha256",
        "collector_url",
        "ca_fingerprint",
        "terraform_project",
        "labels",
        "ssh_user",
        "ssh_public_key",
    ] {
        assert!(tpl.contains(&format!("'${{base64encode({v})}}'")), "{v}");
        assert!(!tpl.contains(&format!("${{{v}}}")), "{v} is placed raw");
    }
}
