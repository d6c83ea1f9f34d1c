//! The real curl and wget against `openssl s_server`: only the pinned CA is trusted.

use super::*;
use rampart_tests::tls::{Ca, MitmCas, WebServer};

/// What the man in the middle serves as the agent: it would run as root and keep
/// the enrollment token.
fn thief(t: &Path) -> String {
    let t = t.display();
    format!("#!/bin/sh\ntouch {t}/pwned\ncat \"$7\" > {t}/stolen-token 2>/dev/null\n")
}

impl Sandbox {
    /// Serves `/ca.pem` and the static agent with its unit (and their sums) over TLS
    /// with a server certificate `issuer` signed, on loopback; the stub curl goes, so
    /// install.sh runs the real curl (or wget).
    fn serve_over_tls(&self, issuer: &Ca, ca_pem: &str, agent: &str) -> WebServer {
        let www = self.path().join("www");
        std::fs::create_dir_all(www.join("download")).unwrap();
        std::fs::write(www.join("ca.pem"), ca_pem).unwrap();
        let unit = std::fs::read(self.path().join("srv/rampart-agent.service")).unwrap();
        for (name, bytes) in [
            ("rampart-agent", agent.as_bytes()),
            ("rampart-agent.service", &unit[..]),
        ] {
            std::fs::write(www.join("download").join(name), bytes).unwrap();
            std::fs::write(
                www.join("download").join(format!("{name}.sha256")),
                format!("{}  {name}\n", sha256_hex(bytes)),
            )
            .unwrap();
        }
        let _ = std::fs::remove_file(self.path().join("stubs/curl"));
        let (cert, key) = issuer.issue_loopback_server("server");
        WebServer::start(&www, &cert, &key)
    }

    fn tls_args(&self, server: &WebServer, pinned: &Ca) -> Vec<String> {
        let mut a = self.args();
        a[1] = server.url();
        a[5] = sha256_hex(&pinned.der());
        a
    }

    /// A PATH without curl (for wget): links to everything else on this one.
    fn path_without_curl(&self) -> String {
        let dir = self.path().join("no-curl");
        std::fs::create_dir_all(&dir).unwrap();
        let path = std::env::var("PATH").unwrap_or_default();
        for d in std::env::split_paths(&path) {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let name = e.file_name();
                if name != "curl" && !dir.join(&name).exists() {
                    let _ = std::os::unix::fs::symlink(e.path(), dir.join(&name));
                }
            }
        }
        format!("{}:{}", self.path().join("stubs").display(), dir.display())
    }
}

/// A man in the middle answers for the collector: whatever it serves beside (or
/// instead of) the genuine CA, install.sh refuses before it downloads anything, and
/// nothing it serves runs or sees the token.
#[test]
fn a_man_in_the_middle_serving_extra_certificates_gets_nothing() {
    let cas = MitmCas::new();
    let g = cas.genuine.pem();
    let mut cases = cas.forged_ca_bodies();
    cases.extend([
        (
            "genuine CA, then a private key",
            format!("{g}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
            "is not exactly one PEM certificate",
        ),
        (
            "genuine CA, then a NUL byte",
            format!("{g}\0"),
            "cannot be part of a PEM",
        ),
    ]);
    for (what, ca_pem, why) in cases {
        let sb = Sandbox::new();
        let server = sb.serve_over_tls(&cas.attacker, &ca_pem, &thief(sb.path()));
        let out = sb.run(&sb.tls_args(&server, &cas.genuine), &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: {stderr}");
        assert!(stderr.contains(why), "{what}: {stderr}");
        assert!(
            !sb.path().join("pwned").exists(),
            "{what}: the attacker's agent ran"
        );
        assert!(
            !sb.path().join("stolen-token").exists(),
            "{what}: token stolen"
        );
        assert!(
            !sb.path().join("dest/usr/local/bin/rampart-agent").exists(),
            "{what}: installed"
        );
        assert!(sb.read("systemctl.log").is_empty(), "{what}");
    }
    // The genuine CA alone, but the server's certificate is the attacker's: the real
    // curl refuses every download (the trust anchor is the pinned CA, and only it).
    let sb = Sandbox::new();
    let server = sb.serve_over_tls(&cas.attacker, &g, &thief(sb.path()));
    let out = sb.run(&sb.tls_args(&server, &cas.genuine), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("cannot download"), "{stderr}");
    assert!(!sb.path().join("pwned").exists());
}

/// The genuine collector (its CA with CRLF line ends and blank lines, as some
/// proxies rewrite it): the real curl, and wget where curl is missing, download over
/// the rebuilt CA, and the agent enrolls.
#[test]
fn the_pinned_ca_alone_is_enough_for_curl_and_wget() {
    let cas = MitmCas::new();
    let served = format!("\n{}\n\n", cas.genuine.pem().replace('\n', "\r\n"));
    for tool in ["curl", "wget"] {
        let sb = Sandbox::new();
        let server = sb.serve_over_tls(&cas.genuine, &served, &agent_stub(sb.path()));
        let mut args = sb.tls_args(&server, &cas.genuine);
        args.extend(["--label".into(), "note=a b".into()]);
        let path = sb.path_without_curl();
        let env: &[(&str, &str)] = if tool == "wget" {
            &[("PATH", &path)]
        } else {
            &[]
        };
        ok(&sb.run(&args, env));
        assert_eq!(
            sb.enroll_args()[4],
            sha256_hex(&cas.genuine.der()),
            "{tool}"
        );
        assert_eq!(
            sb.enroll_args().last().map(String::as_str),
            Some("note=a b"),
            "{tool}"
        );
        assert_eq!(sb.read("token.seen").trim(), TOKEN, "{tool}");
    }
}

/// The real collector (REST over TLS, serving the agent from its download directory):
/// install.sh pins its CA, trusts the rebuilt copy alone, downloads and enrolls. A man in
/// the middle who relays that genuine `/ca.pem` with his own CA appended is refused.
#[test]
fn the_real_collector_is_pinned_and_a_relay_with_an_extra_ca_is_refused() {
    use rampart_tests::cluster::Collector;
    use rampart_tests::tls::{Ca, WebServer};
    let t = tempfile::tempdir().unwrap();
    let sb = Sandbox::new();
    let dl = t.path().join("download");
    std::fs::create_dir_all(&dl).unwrap();
    std::fs::write(dl.join("rampart-agent"), agent_stub(sb.path())).unwrap();
    std::fs::copy(
        sb.path().join("srv/rampart-agent.service"),
        dl.join("rampart-agent.service"),
    )
    .unwrap();
    let config = format!(
        "rest_tls = true\nserver_names = [\"127.0.0.1\"]\ndownload_dir = \"{}\"\n",
        dl.display()
    );
    let c = Collector::start_with(&t.path().join("collector"), None, None, Some(&config));
    std::fs::remove_file(sb.path().join("stubs/curl")).unwrap();
    let mut args = sb.args();
    args[1] = format!("https://{}", c.rest);
    args[5] = c.fingerprint.clone();
    ok(&sb.run(&args, &[]));
    assert_eq!(sb.enroll_args()[4], c.fingerprint);
    assert_eq!(sb.read("token.seen").trim(), TOKEN);

    // The relay: the collector's own /ca.pem, then the attacker's CA, which signed the
    // relay's server certificate; it serves its own agent.
    let attacker = Ca::new(&t.path().join("mitm"), "mitm-ca");
    let genuine = c.fetch_ca_pem();
    let sb = Sandbox::new();
    let www = t.path().join("www");
    std::fs::create_dir_all(www.join("download")).unwrap();
    std::fs::write(www.join("ca.pem"), format!("{genuine}{}", attacker.pem())).unwrap();
    let thief = format!("#!/bin/sh\ntouch {}/pwned\n", sb.path().display());
    for (name, bytes) in [
        ("rampart-agent", thief.into_bytes()),
        (
            "rampart-agent.service",
            std::fs::read(dl.join("rampart-agent.service")).unwrap(),
        ),
    ] {
        std::fs::write(
            www.join("download").join(format!("{name}.sha256")),
            format!("{}  {name}\n", sha256_hex(&bytes)),
        )
        .unwrap();
        std::fs::write(www.join("download").join(name), bytes).unwrap();
    }
    let (cert, key) = attacker.issue_loopback_server("relay");
    let relay = WebServer::start(&www, &cert, &key);
    std::fs::remove_file(sb.path().join("stubs/curl")).unwrap();
    let mut args = sb.args();
    args[1] = relay.url();
    args[5] = c.fingerprint.clone();
    let out = sb.run(&args, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("is not exactly one PEM certificate"),
        "{stderr}"
    );
    assert!(!sb.path().join("pwned").exists(), "the relay's agent ran");
    assert!(sb.enroll_args().is_empty());
}
