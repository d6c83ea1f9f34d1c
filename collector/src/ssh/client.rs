//! One scan over SSH, step by step, each step under its own time limit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_report::Profile;
use russh::client;
use russh::keys::ssh_key::HashAlg;
use russh::keys::PrivateKeyWithHashAlg;
use russh::ChannelMsg;
use tokio::time::timeout;

use super::{elf_machine, ScanError, SshKey};

/// Where the agent is copied to on the target: a fresh directory of its own.
const DIR_PREFIX: &str = "rampart-scan.";
/// Bytes of a command's standard error kept for the reason of a failure.
const STDERR_BYTES: usize = 16 * 1024;

/// The limits of one scan.
#[derive(Debug, Clone)]
pub struct Timeouts {
    pub connect: Duration,
    pub step: Duration,
    pub check: Duration,
    pub max_output: usize,
    /// The target may be on this host (`ssh_allow_loopback`).
    pub allow_loopback: bool,
}

/// What to scan and how.
pub struct ScanJob {
    pub host: String,
    pub port: u16,
    pub user: String,
    /// The host key fingerprint pinned or first seen; none: trust on first use.
    pub host_key: Option<String>,
    pub profile: Profile,
    pub exempt: Vec<String>,
    /// The agent binary to copy (the download directory's static one).
    pub agent: Arc<Vec<u8>>,
    pub limits: Timeouts,
}

/// A scan's output: the agent's JSON document and the host key seen.
#[derive(Debug)]
pub struct ScanOutput {
    pub document: Vec<u8>,
    pub host_key: String,
}

/// Accepts exactly the expected host key (any, without one) and remembers the
/// key presented.
struct HostKeyCheck {
    expected: Option<String>,
    seen: Arc<Mutex<Option<String>>>,
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &russh::keys::PublicKey,
    ) -> Result<bool, Self::Error> {
        let fp = key.fingerprint(HashAlg::Sha256).to_string();
        let ok = self.expected.as_ref().is_none_or(|e| *e == fp);
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(fp);
        Ok(ok)
    }
}

/// A command's outcome.
struct Exec {
    status: Option<u32>,
    signal: Option<String>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Exec {
    fn ok(&self) -> bool {
        self.status == Some(0)
    }
    fn stderr_text(&self) -> String {
        let t = String::from_utf8_lossy(&self.stderr);
        let t = t.trim();
        t.chars().take(crate::limits::REASON_CHARS / 2).collect()
    }
    fn status_text(&self) -> String {
        match (&self.status, &self.signal) {
            (Some(s), _) => format!("status {s}"),
            (None, Some(sig)) => format!("signal {sig}"),
            (None, None) => "no exit status".into(),
        }
    }
}

fn ssh_err(e: russh::Error) -> ScanError {
    ScanError::Ssh(e)
}

/// What a failed TCP connection says: a refusal plainly, else the error's words.
pub(super) fn connect_words(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        _ => e.to_string(),
    }
}

/// Runs `cmd` on a new channel, feeding it `stdin`, keeping at most `max_out`
/// bytes of output (more is [`ScanError::OutputTooLarge`]).
async fn exec(
    h: &client::Handle<HostKeyCheck>,
    cmd: &str,
    stdin: Option<&[u8]>,
    max_out: usize,
) -> Result<Exec, ScanError> {
    let mut ch = h.channel_open_session().await.map_err(ssh_err)?;
    ch.exec(true, cmd).await.map_err(ssh_err)?;
    if let Some(data) = stdin {
        ch.data(data).await.map_err(ssh_err)?;
        ch.eof().await.map_err(ssh_err)?;
    }
    let mut out = Exec {
        status: None,
        signal: None,
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    while let Some(msg) = ch.wait().await {
        match msg {
            ChannelMsg::Data { data } => {
                if out.stdout.len() + data.len() > max_out {
                    let _ = ch.close().await;
                    return Err(ScanError::OutputTooLarge(max_out));
                }
                out.stdout.extend_from_slice(&data);
            }
            ChannelMsg::ExtendedData { data, .. } => {
                let room = STDERR_BYTES.saturating_sub(out.stderr.len());
                out.stderr.extend_from_slice(&data[..data.len().min(room)]);
            }
            ChannelMsg::ExitStatus { exit_status } => out.status = Some(exit_status),
            ChannelMsg::ExitSignal { signal_name, .. } => {
                out.signal = Some(format!("{signal_name:?}"))
            }
            ChannelMsg::Failure => {
                return Err(ScanError::Session(format!(
                    "the server refused to run `{cmd}`"
                )))
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Single-quotes `s` for a POSIX shell.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Limits `f` to `d`, naming the step when it runs out.
async fn step<T>(
    d: Duration,
    what: &'static str,
    f: impl std::future::Future<Output = Result<T, ScanError>>,
) -> Result<T, ScanError> {
    timeout(d, f).await.unwrap_or(Err(ScanError::Timeout {
        step: what,
        secs: d.as_secs(),
    }))
}

/// Scans one target; see the module's documentation for the steps.
pub async fn scan(key: &SshKey, job: &ScanJob) -> Result<ScanOutput, ScanError> {
    let l = &job.limits;
    // An IPv6 literal goes in brackets.
    let addr = if job.host.contains(':') {
        format!("[{}]:{}", job.host, job.port)
    } else {
        format!("{}:{}", job.host, job.port)
    };
    let seen = Arc::new(Mutex::new(None));
    let handler = HostKeyCheck {
        expected: job.host_key.clone(),
        seen: seen.clone(),
    };
    let config = Arc::new(client::Config {
        inactivity_timeout: Some(l.check + l.step),
        ..Default::default()
    });
    let mut h = step(l.connect, "connecting", async {
        let addrs = crate::outbound::resolve(
            &job.host,
            job.port,
            l.allow_loopback,
            crate::outbound::Purpose::SshScan,
        )
        .await
        .map_err(|reason| ScanError::Connect {
            addr: addr.clone(),
            reason,
        })?;
        let tcp =
            crate::outbound::connect(&addrs)
                .await
                .map_err(|source| ScanError::Unreachable {
                    addr: addr.clone(),
                    source,
                })?;
        let _ = tcp.set_nodelay(true);
        client::connect_stream(config, tcp, handler)
            .await
            .map_err(|e| {
                let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
                match (&job.host_key, seen) {
                    (Some(expected), Some(seen)) if *expected != seen => {
                        ScanError::HostKeyMismatch {
                            expected: expected.clone(),
                            seen,
                        }
                    }
                    _ => ssh_err(e),
                }
            })
    })
    .await?;
    let host_key = seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .ok_or_else(|| ScanError::Session("the server presented no host key".into()))?;
    step(l.connect, "authenticating", async {
        let auth = h
            .authenticate_publickey(&job.user, PrivateKeyWithHashAlg::new(key.private(), None))
            .await
            .map_err(ssh_err)?;
        if auth.success() {
            Ok(())
        } else {
            Err(ScanError::AuthRefused {
                user: job.user.clone(),
            })
        }
    })
    .await?;
    let result = on_target(&h, job).await;
    let _ = timeout(
        l.step,
        h.disconnect(russh::Disconnect::ByApplication, "", "en"),
    )
    .await;
    result.map(|document| ScanOutput { document, host_key })
}

/// The steps after authentication: architecture, directory, copy, check, removal.
async fn on_target(h: &client::Handle<HostKeyCheck>, job: &ScanJob) -> Result<Vec<u8>, ScanError> {
    let l = &job.limits;
    let arch = step(l.step, "reading the architecture", async {
        let e = exec(h, "uname -m", None, 256).await?;
        if !e.ok() {
            return Err(ScanError::Session(format!(
                "`uname -m` failed with {}: {}",
                e.status_text(),
                e.stderr_text()
            )));
        }
        Ok(String::from_utf8_lossy(&e.stdout).trim().to_string())
    })
    .await?;
    if let Some(binary) = elf_machine(&job.agent) {
        if arch != binary {
            return Err(ScanError::UnsupportedArch {
                target: crate::limits::echo(&arch),
                binary: binary.into(),
            });
        }
    }
    let dir = step(l.step, "making a private directory", async {
        let cmd = format!("umask 077 && mktemp -d \"${{TMPDIR:-/tmp}}/{DIR_PREFIX}XXXXXXXXXX\"");
        let e = exec(h, &cmd, None, 4096).await?;
        let dir = String::from_utf8_lossy(&e.stdout).trim().to_string();
        let plain = dir.starts_with('/')
            && dir.contains(DIR_PREFIX)
            && dir
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"/._-".contains(&c));
        if !e.ok() || !plain {
            return Err(ScanError::Copy(format!(
                "mktemp failed with {}: {}",
                e.status_text(),
                e.stderr_text()
            )));
        }
        Ok(dir)
    })
    .await?;
    let result = copy_and_check(h, job, &dir).await;
    // The directory goes whatever happened.
    let removed = step(l.step, "removing the private directory", async {
        exec(h, &format!("rm -rf -- {}", quote(&dir)), None, 4096).await
    })
    .await;
    match removed {
        Ok(e) if e.ok() => {}
        Ok(e) => {
            tracing::warn!(dir, status = %e.status_text(), stderr = %e.stderr_text(), "cannot remove the scan directory")
        }
        Err(error) => tracing::warn!(dir, %error, "cannot remove the scan directory"),
    }
    result
}

async fn copy_and_check(
    h: &client::Handle<HostKeyCheck>,
    job: &ScanJob,
    dir: &str,
) -> Result<Vec<u8>, ScanError> {
    let l = &job.limits;
    let bin = format!("{dir}/rampart-agent");
    let want = hex(ring::digest::digest(&ring::digest::SHA256, &job.agent).as_ref());
    step(l.step, "copying the agent", async {
        let cmd = format!(
            "cat > {b} && chmod 0700 {b} && sha256sum {b}",
            b = quote(&bin)
        );
        let e = exec(h, &cmd, Some(&job.agent), 4096).await?;
        if !e.ok() {
            return Err(ScanError::Copy(format!(
                "{}: {}",
                e.status_text(),
                e.stderr_text()
            )));
        }
        let got = String::from_utf8_lossy(&e.stdout);
        let got = got.split_whitespace().next().unwrap_or("");
        if got != want {
            return Err(ScanError::Copy(format!(
                "its SHA-256 on the target is {}, not {want}",
                crate::limits::echo(got)
            )));
        }
        Ok(())
    })
    .await?;
    let mut cmd = format!(
        "sudo -n timeout -s KILL {} {} check --format json --profile {}",
        l.check.as_secs(),
        quote(&bin),
        quote(job.profile.name())
    );
    if !job.exempt.is_empty() {
        cmd.push_str(&format!(" --exempt {}", quote(&job.exempt.join(","))));
    }
    // The target kills the agent at the limit; this side waits a little longer.
    let e = step(
        l.check + Duration::from_secs(10),
        "the agent ran",
        exec(h, &cmd, None, l.max_output),
    )
    .await?;
    if e.ok() {
        return Ok(e.stdout);
    }
    let stderr = e.stderr_text();
    if stderr.contains("sudo:") && (stderr.contains("password") || stderr.contains("terminal")) {
        return Err(ScanError::SudoNeedsPassword {
            user: job.user.clone(),
        });
    }
    // `timeout` kills the agent at the limit; sudo then dies of the same signal.
    if e.status == Some(137) || e.status == Some(124) || e.signal.as_deref() == Some("KILL") {
        return Err(ScanError::Timeout {
            step: "the agent ran",
            secs: l.check.as_secs(),
        });
    }
    Err(ScanError::Agent {
        status: e.status_text(),
        stderr,
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quoting_keeps_a_word_one_word() {
        assert_eq!(quote("level1-server"), "'level1-server'");
        assert_eq!(quote("a'b; rm -rf /"), "'a'\\''b; rm -rf /'");
    }
}
