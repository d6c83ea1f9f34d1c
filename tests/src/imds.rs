//! The cloud providers' side of signed instance identity, for the identity tests.
//!
//! Real metadata services cannot run here, so [`Imds`] plays AWS's IMDSv2, GCP's
//! metadata server and Azure's IMDS on a loopback port, and [`Signers`] signs their
//! documents with test keys and certificates made by `openssl` (a different
//! implementation from the collector's verifier). The collector is configured with
//! these test anchors instead of the providers' real ones: that is the one mock of
//! the identity tests; the agent and the collector are the real binaries.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Runs `openssl` with `args`, feeding `stdin`; its output (panics on failure).
pub fn openssl(args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.unwrap_or_default().to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Base64url without padding (JWT).
pub fn b64url(bytes: &[u8]) -> String {
    crate::base64(bytes)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Keys and certificates made with `openssl` in a directory.
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        Pki {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// A new RSA-2048 key, `<name>.key`.
    pub fn rsa_key(&self, name: &str) -> PathBuf {
        let p = self.path(&format!("{name}.key"));
        openssl(
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                &p,
            ],
            None,
        );
        p.into()
    }

    /// A certificate `<name>.pem` for `key` with common name `cn`: self-signed, or
    /// issued by `issuer` (certificate, key); a CA or not; with a DNS SAN.
    pub fn cert(
        &self,
        name: &str,
        key: &Path,
        cn: &str,
        issuer: Option<(&Path, &Path)>,
        ca: bool,
        days: u32,
    ) -> PathBuf {
        let p = self.path(&format!("{name}.pem"));
        let subj = format!("/CN={cn}");
        let days = days.to_string();
        let key = key.display().to_string();
        let mut args = vec![
            "req", "-x509", "-new", "-key", &key, "-subj", &subj, "-days", &days, "-out", &p,
        ];
        let (ic, ik);
        if let Some((c, k)) = issuer {
            (ic, ik) = (c.display().to_string(), k.display().to_string());
            args.extend(["-CA", &ic, "-CAkey", &ik]);
        }
        let san = format!("subjectAltName=DNS:{cn}");
        if ca {
            args.extend([
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ]);
        } else {
            args.extend(["-addext", "basicConstraints=CA:FALSE", "-addext", &san]);
        }
        openssl(&args, None);
        p.into()
    }

    /// RSA PKCS#1 v1.5 SHA-256 signature of `data`.
    pub fn sign(&self, key: &Path, data: &[u8]) -> Vec<u8> {
        openssl(
            &["dgst", "-sha256", "-sign", &key.display().to_string()],
            Some(data),
        )
    }

    /// A CMS SignedData (DER, or BER when `streamed`) holding `content`, signed by
    /// `cert`/`key`, with the certificates of `chain` added.
    pub fn cms_sign(
        &self,
        cert: &Path,
        key: &Path,
        chain: Option<&Path>,
        content: &[u8],
        streamed: bool,
    ) -> Vec<u8> {
        let (c, k) = (cert.display().to_string(), key.display().to_string());
        let mut args = vec![
            "cms",
            "-sign",
            "-binary",
            "-nodetach",
            "-outform",
            "DER",
            "-md",
            "sha256",
            "-signer",
            &c,
            "-inkey",
            &k,
        ];
        let chain = chain.map(|p| p.display().to_string());
        if let Some(ch) = &chain {
            args.extend(["-certfile", ch]);
        }
        if streamed {
            // BER with indefinite lengths, as streaming signers write it.
            args.push("-stream");
        }
        openssl(&args, Some(content))
    }

    /// The RSA modulus of `key`, big-endian.
    pub fn modulus(&self, key: &Path) -> Vec<u8> {
        let out = openssl(
            &[
                "rsa",
                "-in",
                &key.display().to_string(),
                "-noout",
                "-modulus",
            ],
            None,
        );
        let hex = String::from_utf8_lossy(&out)
            .trim()
            .trim_start_matches("Modulus=")
            .to_string();
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect()
    }
}

/// Azure's time stamp format, `MM/DD/YY HH:MM:SS -0000`.
pub fn azure_time(unix: i64) -> String {
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{unix}"), "+%m/%d/%y %H:%M:%S -0000"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The signers of each provider's documents, and the anchors a collector trusts.
pub struct Signers {
    pub pki: Pki,
    /// AWS: the region certificate's key and certificate (the anchor).
    pub aws_key: PathBuf,
    pub aws_cert: PathBuf,
    /// GCP: the signing key, its `kid`, and the JWKS file (the anchor).
    pub gcp_key: PathBuf,
    pub gcp_kid: String,
    pub gcp_jwks: PathBuf,
    /// Azure: root (the anchor), intermediate, and the `metadata.azure.com` signer.
    pub azure_root: PathBuf,
    pub azure_intermediate: PathBuf,
    pub azure_signer_key: PathBuf,
    pub azure_signer: PathBuf,
}

impl Signers {
    pub fn new(dir: &Path) -> Signers {
        let pki = Pki::new(dir);
        let aws_key = pki.rsa_key("aws");
        let aws_cert = pki.cert("aws", &aws_key, "ec2.amazonaws.com", None, false, 3650);
        let gcp_key = pki.rsa_key("gcp");
        let gcp_kid = "test-kid-1".to_string();
        let gcp_jwks = dir.join("jwks.json");
        std::fs::write(&gcp_jwks, jwks(&[(&gcp_kid, &pki.modulus(&gcp_key))])).unwrap();
        let root_key = pki.rsa_key("azure-root");
        let azure_root = pki.cert("azure-root", &root_key, "Test Azure Root", None, true, 3650);
        let int_key = pki.rsa_key("azure-int");
        let azure_intermediate = pki.cert(
            "azure-int",
            &int_key,
            "Test Azure Issuing CA",
            Some((&azure_root, &root_key)),
            true,
            3650,
        );
        let azure_signer_key = pki.rsa_key("azure-signer");
        let azure_signer = pki.cert(
            "azure-signer",
            &azure_signer_key,
            "metadata.azure.com",
            Some((&azure_intermediate, &int_key)),
            false,
            365,
        );
        Signers {
            pki,
            aws_key,
            aws_cert,
            gcp_key,
            gcp_kid,
            gcp_jwks,
            azure_root,
            azure_intermediate,
            azure_signer_key,
            azure_signer,
        }
    }

    /// Lines of the collector's `[instance_identity]` section that trust these
    /// signers (the section's header is the caller's).
    pub fn anchor_lines(&self) -> String {
        format!(
            "aws_certificates = [{:?}]\ngcp_jwks = {:?}\nazure_roots = [{:?}]\n",
            self.aws_cert.display().to_string(),
            self.gcp_jwks.display().to_string(),
            self.azure_root.display().to_string()
        )
    }

    /// An AWS identity document and its base64 signature by `key`.
    pub fn aws(&self, key: &Path, instance_id: &str) -> (String, String) {
        let doc = aws_document(instance_id);
        let sig = crate::base64(&self.pki.sign(key, doc.as_bytes()));
        (doc, sig)
    }

    /// A GCP identity token signed by `key` under `kid`.
    pub fn gcp(&self, key: &Path, kid: &str, claims: &serde_json::Value) -> String {
        let header = serde_json::json!({"alg": "RS256", "kid": kid, "typ": "JWT"});
        let signing = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let sig = self.pki.sign(key, signing.as_bytes());
        format!("{signing}.{}", b64url(&sig))
    }

    /// Azure's attested document: the content signed by `signer`, `chain` added.
    pub fn azure(
        &self,
        signer: (&Path, &Path),
        chain: Option<&Path>,
        content: &serde_json::Value,
    ) -> String {
        self.azure_encoded(signer, chain, content, false)
    }

    /// [`Signers::azure`], the SignedData in BER with indefinite lengths when `streamed`.
    pub fn azure_encoded(
        &self,
        signer: (&Path, &Path),
        chain: Option<&Path>,
        content: &serde_json::Value,
        streamed: bool,
    ) -> String {
        let der = self.pki.cms_sign(
            signer.0,
            signer.1,
            chain,
            content.to_string().as_bytes(),
            streamed,
        );
        serde_json::json!({"encoding": "pkcs7", "signature": crate::base64(&der)}).to_string()
    }
}

/// A JWKS of RSA keys (kid, modulus), exponent 65537.
pub fn jwks(keys: &[(&str, &[u8])]) -> String {
    let keys: Vec<_> = keys
        .iter()
        .map(|(kid, n)| {
            serde_json::json!({"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": b64url(n), "e": "AQAB"})
        })
        .collect();
    serde_json::json!({ "keys": keys }).to_string()
}

/// An AWS instance identity document, as IMDS serves it (pretty-printed JSON).
pub fn aws_document(instance_id: &str) -> String {
    format!(
        "{{\n  \"accountId\" : \"123456789012\",\n  \"architecture\" : \"x86_64\",\n  \"availabilityZone\" : \"eu-west-1a\",\n  \"imageId\" : \"ami-0123456789abcdef0\",\n  \"instanceId\" : \"{instance_id}\",\n  \"instanceType\" : \"t3.micro\",\n  \"pendingTime\" : \"2026-01-01T00:00:00Z\",\n  \"privateIp\" : \"10.0.0.5\",\n  \"region\" : \"eu-west-1\",\n  \"version\" : \"2017-09-30\"\n}}"
    )
}

/// GCP's claims for `instance_id`, audience `aud`, issued at `iat`.
pub fn gcp_claims(instance_id: &str, aud: &str, iat: i64) -> serde_json::Value {
    serde_json::json!({
        "iss": "https://accounts.google.com",
        "aud": aud,
        "azp": "123456789012345678901",
        "sub": "123456789012345678901",
        "iat": iat,
        "exp": iat + 3600,
        "google": {"compute_engine": {
            "instance_id": instance_id,
            "instance_name": "vm-1",
            "project_id": "test-project",
            "project_number": 1234567890,
            "zone": "europe-west1-b",
            "instance_creation_timestamp": iat - 60
        }}
    })
}

/// Azure's attested content for `vm_id`, `nonce`, created at `created`.
pub fn azure_content(vm_id: &str, nonce: &str, created: i64) -> serde_json::Value {
    serde_json::json!({
        "licenseType": "",
        "nonce": nonce,
        "plan": {"name": "", "product": "", "publisher": ""},
        "sku": "12",
        "subscriptionId": "00000000-1111-2222-3333-444444444444",
        "timeStamp": {"createdOn": azure_time(created), "expiresOn": azure_time(created + 6 * 3600)},
        "vmId": vm_id
    })
}

/// The instance IDs the metadata service speaks for.
#[derive(Clone, Debug)]
pub struct Instances {
    pub aws: String,
    pub gcp: String,
    pub azure: String,
}

/// A loopback HTTP server answering like the three metadata services, each with
/// its header checks (IMDSv2 token, `Metadata-Flavor: Google`, `Metadata: true`).
pub struct Imds {
    pub addr: String,
    stop: Arc<AtomicBool>,
    /// Requests seen: (method, path with query).
    pub seen: Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

const IMDS_TOKEN: &str = "imds-session-token";

impl Imds {
    /// Serves documents of `ids` signed by `s`; with `huge`, every document is 1 MiB.
    pub fn start(s: Arc<Signers>, ids: Instances, huge: bool) -> Imds {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(std::sync::Mutex::new(vec![]));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        l.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            while !stop2.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((conn, _)) => {
                        conn.set_nonblocking(false).unwrap();
                        let _ = serve(conn, &s, &ids, huge, &seen2);
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
        });
        Imds { addr, stop, seen }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Imds {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn query<'a>(path: &'a str, name: &str) -> Option<&'a str> {
    path.split_once('?')?
        .1
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = vec![];
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 3 <= b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz");
            if let Ok(v) = u8::from_str_radix(hex, 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn serve(
    mut conn: std::net::TcpStream,
    s: &Signers,
    ids: &Instances,
    huge: bool,
    seen: &std::sync::Mutex<Vec<(String, String)>>,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    let mut r = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or_default().to_string(),
        parts.next().unwrap_or_default().to_string(),
    );
    let mut headers = vec![];
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    seen.lock().unwrap().push((method.clone(), path.clone()));
    let header = |k: &str| {
        headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    let route = path.split('?').next().unwrap_or_default();
    let aws_ok = header("x-aws-ec2-metadata-token") == Some(IMDS_TOKEN);
    let (status, body): (u16, Vec<u8>) = match (method.as_str(), route) {
        ("PUT", "/latest/api/token")
            if header("x-aws-ec2-metadata-token-ttl-seconds").is_some() =>
        {
            (200, IMDS_TOKEN.into())
        }
        ("GET", "/latest/dynamic/instance-identity/document") if aws_ok => {
            (200, aws_document(&ids.aws).into_bytes())
        }
        ("GET", "/latest/dynamic/instance-identity/signature") if aws_ok => {
            (200, s.aws(&s.aws_key, &ids.aws).1.into_bytes())
        }
        ("GET", "/computeMetadata/v1/instance/service-accounts/default/identity")
            if header("metadata-flavor") == Some("Google")
                && query(&path, "format") == Some("full") =>
        {
            let aud = unescape(query(&path, "audience").unwrap_or_default());
            let claims = gcp_claims(&ids.gcp, &aud, now());
            (200, s.gcp(&s.gcp_key, &s.gcp_kid, &claims).into_bytes())
        }
        ("GET", "/metadata/attested/document")
            if header("metadata") == Some("true") && query(&path, "api-version").is_some() =>
        {
            let nonce = query(&path, "nonce").unwrap_or_default();
            let content = azure_content(&ids.azure, nonce, now());
            let doc = s.azure(
                (&s.azure_signer, &s.azure_signer_key),
                Some(&s.azure_intermediate),
                &content,
            );
            (200, doc.into_bytes())
        }
        _ => (401, b"unauthorized".to_vec()),
    };
    let body = if huge && status == 200 && method == "GET" {
        vec![b'x'; 1024 * 1024]
    } else {
        body
    };
    let mut out = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend(body);
    conn.write_all(&out)?;
    let _ = conn.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 64];
    let _ = conn.read(&mut sink);
    Ok(())
}
