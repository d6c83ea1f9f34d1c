//! The rendered bootstrap with the real curl against `openssl s_server`: only the
//! pinned CA is ever trusted.

use super::*;
use rampart_tests::tls::{Ca, MitmCas, WebServer};

fn pin_of(ca: &Ca) -> String {
    sha256_hex(&ca.der())
}

impl Sandbox {
    /// Serves `/ca.pem` and `/download/` (`install.sh` as given, the agent's .deb,
    /// their sums) over TLS with a server certificate `issuer` signed; the stub curl
    /// goes, so the bootstrap and install.sh run the real curl.
    fn serve_over_tls(&self, issuer: &Ca, ca_pem: &str, install_sh: &str) -> WebServer {
        let www = self.path().join("www");
        std::fs::create_dir_all(www.join("download")).unwrap();
        std::fs::write(www.join("ca.pem"), ca_pem).unwrap();
        let deb = format!("rampart-agent_{VERSION}_amd64.deb");
        let deb_bytes = std::fs::read(self.path().join("srv").join(&deb)).unwrap();
        for (name, bytes) in [("install.sh", install_sh.as_bytes()), (&deb, &deb_bytes)] {
            std::fs::write(www.join("download").join(name), bytes).unwrap();
            std::fs::write(
                www.join("download").join(format!("{name}.sha256")),
                format!("{}  {name}\n", sha256_hex(bytes)),
            )
            .unwrap();
        }
        std::fs::remove_file(self.path().join("stubs/curl")).unwrap();
        let (cert, key) = issuer.issue_loopback_server("server");
        WebServer::start(&www, &cert, &key)
    }
}

fn tls_vars(server: &WebServer, pinned: &Ca) -> BTreeMap<&'static str, String> {
    let mut v = sample_vars();
    v.insert("download_base", server.url());
    v.insert("ca_fingerprint", pin_of(pinned));
    v
}

/// A man in the middle answers for the collector with the genuine CA and its own
/// (and variants): the bootstrap refuses before it downloads anything; its install.sh
/// never runs, and the token is deleted unread.
#[test]
fn a_man_in_the_middle_serving_extra_certificates_gets_nothing_run() {
    let cas = MitmCas::new();
    let cases = cas.forged_ca_bodies();
    for (what, ca_pem, why) in cases {
        let sb = Sandbox::new();
        let t = sb.path().display();
        let evil = format!("#!/bin/sh\ntouch {t}/pwned\ncat {t}/run/token > {t}/stolen-token\n");
        let server = sb.serve_over_tls(&cas.attacker, &ca_pem, &evil);
        let out = sb.run(&tls_vars(&server, &cas.genuine));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{what}: {stderr}");
        assert!(stderr.contains("rampart-bootstrap:"), "{what}: {stderr}");
        assert!(stderr.contains(why), "{what}: {stderr}");
        assert!(!stderr.contains(TOKEN), "{what}");
        assert!(!sb.path().join("pwned").exists(), "{what}: install.sh ran");
        assert!(
            !sb.path().join("stolen-token").exists(),
            "{what}: token stolen"
        );
        assert!(sb.read("dpkg.log").is_empty(), "{what}");
        assert!(sb.read("enroll.args").is_empty(), "{what}");
        assert!(!sb.path().join("run/token").exists(), "{what}: token kept");
    }
}

/// The genuine collector over real TLS: the bootstrap and install.sh both trust the
/// CA rebuilt from the pinned DER (served with CRLF line ends), and the agent enrolls.
#[test]
fn the_genuine_collector_is_trusted_through_the_pinned_ca_alone() {
    let cas = MitmCas::new();
    let sb = Sandbox::new();
    let install = std::fs::read_to_string(workspace().join("packaging/install.sh"))
        .unwrap()
        .replace("@VERSION@", VERSION);
    let served = format!("\n{}\n", cas.genuine.pem().replace('\n', "\r\n"));
    let server = sb.serve_over_tls(&cas.genuine, &served, &install);
    let out = sb.run(&tls_vars(&server, &cas.genuine));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        sb.read("dpkg.log"),
        format!("dpkg -i rampart-agent_{VERSION}_amd64.deb\n")
    );
    let args: Vec<String> = sb.read("enroll.args").lines().map(String::from).collect();
    assert_eq!(args[4], pin_of(&cas.genuine));
    assert_eq!(sb.read("token.seen").trim(), TOKEN);
}
