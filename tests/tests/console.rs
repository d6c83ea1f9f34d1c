//! The web console (docs/console.md) in a real browser: a real collector holds a real
//! agent's scan of a copy of the Debian 12 root, blocked in `block` mode, with a hostile
//! host name and a hostile evidence line; one user per role signs in with a password.
//! `tests/browser/console_test.py` (Playwright for Python driving Debian's Chromium, and
//! axe-core) then checks what each role sees, the release, settings, filters, the CSV,
//! escaping, CSRF, sign-out, CSP and accessibility. scripts/test.sh installs the tools
//! and names them in `RAMPART_PLAYWRIGHT_PYTHON` and `RAMPART_AXE_JS`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rampart_tests::cluster::{Agent, Collector};
use rampart_tests::{binary, debian_root, workspace};
use serde_json::{json, Value};

/// The agent's host name: markup, both quotes, an entity that must stay literal, and a
/// leading `=` that a spreadsheet would evaluate. The daemon reports the live host name,
/// so it runs in its own UTS namespace with this one; the scan's root carries it too.
const HOSTILE_HOST: &str = "=HOST<script>alert(1)</script>\"'&amp;";

/// The one line of the root's /etc/motd. It names the operating system, so the motd
/// rule fails and quotes the line as evidence, control character included.
const HOSTILE_MOTD: &str = "debian <script>alert(1)</script>\"'\u{1} &amp; end";

/// The whole browser run may take this long before it is stopped.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// A tool scripts/test.sh installs, named by an environment variable.
fn tool(var: &str, what: &str) -> PathBuf {
    let path = std::env::var_os(var).unwrap_or_else(|| {
        panic!(
            "{var} must name {what}; scripts/test.sh installs the pinned version in \
             /var/cache/rampart-tests and sets it (run scripts/test.sh, or export {var})"
        )
    });
    let path = PathBuf::from(path);
    assert!(
        path.exists(),
        "{var}={} does not exist; run scripts/test.sh",
        path.display()
    );
    path
}

/// A copy of the cached Debian 12 root (never the cache itself) with the hostile files.
fn hostile_root(dir: &Path) {
    let st = Command::new("cp")
        .args(["-a", "--reflink=auto"])
        .arg(debian_root())
        .arg(dir)
        .status()
        .expect("run cp");
    assert!(st.success(), "copying the Debian root failed");
    fs::write(dir.join("etc/hostname"), format!("{HOSTILE_HOST}\n")).unwrap();
    fs::write(dir.join("etc/motd"), format!("{HOSTILE_MOTD}\n")).unwrap();
}

/// Starts `a`'s daemon as `Agent::run` does, in a new UTS namespace whose host name is
/// `host` (root only; the kernel takes any bytes there, no resolver rules apply).
fn run_with_hostname(a: &mut Agent, host: &str) {
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(a.dir.join("agent.log"))
        .unwrap();
    let child = Command::new("unshare")
        .args(["--uts", "--", "sh", "-c"])
        .arg(r#"printf %s "$1" > /proc/sys/kernel/hostname && exec "$2" run --config "$3""#)
        .arg("sh")
        .arg(host)
        .arg(binary("rampart-agent"))
        .arg(a.config())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("run unshare");
    a.child = Some(child);
}

/// (role, user name, password): one user per role.
const USERS: [(&str, &str, &str); 4] = [
    ("viewer", "vera", "vera-password-0001"),
    ("user", "ulrich", "ulrich-password-0002"),
    ("provisioner", "priya", "priya-password-0003"),
    ("admin", "ada", "ada-password-00000004"),
];

#[test]
fn the_console_in_a_real_browser() {
    let python = tool(
        "RAMPART_PLAYWRIGHT_PYTHON",
        "the Python of a venv with Playwright",
    );
    let axe = tool("RAMPART_AXE_JS", "axe-core's axe.min.js");
    let setup = Instant::now();
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    hostile_root(&root);

    // Block mode, and a minimum score the real Debian root cannot meet; critical
    // failures do not block, so that lowering the minimum lets the next scan through.
    let c = Collector::start(&t.path().join("collector"), None, None);
    c.set_settings(|s| {
        s["mode"] = json!("block");
        s["min_score"] = json!(99);
        s["block_on_critical"] = json!(false);
        s["block_on_high"] = json!(false);
    });
    for (role, name, password) in USERS {
        c.console_user(name, role, password);
    }

    let project = "web";
    let token = c.enrollment_token(project, 1, 3600);
    let mut a = Agent::new(&t.path().join("agent"));
    let (ok, out) = a.enroll(&c.url(), &token, &c.fingerprint, &root, &[]);
    assert!(ok, "enroll failed: {out}");
    run_with_hostname(&mut a, HOSTILE_HOST);
    let agent_id = a.agent_id();
    let scan = c.completed_scan(&agent_id, 300);
    let scan_id = scan["id"].as_str().unwrap().to_string();
    assert_eq!(scan["blocked"], true, "the scan must block: {scan}");
    let reasons = scan["block_reasons"].as_array().unwrap();
    assert!(
        reasons.len() == 1 && reasons[0].as_str().unwrap().starts_with("score "),
        "blocked by the minimum score alone: {reasons:?}"
    );
    let agents = c.agents();
    assert_eq!(
        agents[0]["hostname"],
        HOSTILE_HOST,
        "the hostile host name; the agent's log:\n{}",
        a.log()
    );
    let detail = c.admin("GET", &format!("/api/v1/scans/{scan_id}"), None);
    let (rule, evidence) = detail["results"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|r| {
            let line = r["evidence"]
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .find(|e| e.contains("<script>alert(1)</script>\"'\u{1}"))?;
            Some((r["id"].as_str()?.to_string(), line.to_string()))
        })
        .expect("a rule quotes the hostile /etc/motd line as evidence");
    println!(
        "console test set-up: {:.1} s (scan {scan_id}, rule {rule})",
        setup.elapsed().as_secs_f64()
    );

    // The browser run. Its output and, on failure, screenshots and HTML go to `out`,
    // which is kept when the run fails.
    let out = tempfile::Builder::new()
        .prefix("rampart-console-")
        .tempdir()
        .unwrap();
    let screenshot = std::env::var_os("RAMPART_CONSOLE_SCREENSHOT").map(|p| {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            workspace().join(p)
        }
    });
    let log_path = out.path().join("browser.log");
    let log = fs::File::create(&log_path).unwrap();
    let mut cmd = Command::new(&python);
    cmd.arg(workspace().join("tests/browser/console_test.py"))
        .env("RAMPART_CONSOLE_URL", format!("http://{}", c.rest))
        .env("RAMPART_SCAN_ID", &scan_id)
        .env("RAMPART_AGENT_ID", &agent_id)
        .env(
            "RAMPART_AGENT_PID",
            a.child.as_ref().expect("the agent runs").id().to_string(),
        )
        .env("RAMPART_PROJECT", project)
        .env("RAMPART_ADMIN_TOKEN", &c.admin)
        .env("RAMPART_HOSTILE_HOST", HOSTILE_HOST)
        .env("RAMPART_HOSTILE_RULE", &rule)
        .env("RAMPART_HOSTILE_EVIDENCE", &evidence)
        .env("RAMPART_AXE_JS", &axe)
        .env("RAMPART_OUT_DIR", out.path())
        .env_remove("RAMPART_CONSOLE_SCREENSHOT")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log));
    for (role, name, password) in USERS {
        let role = role.to_ascii_uppercase();
        cmd.env(format!("RAMPART_{role}_NAME"), name)
            .env(format!("RAMPART_{role}_PASSWORD"), password);
    }
    if let Some(p) = &screenshot {
        cmd.env("RAMPART_CONSOLE_SCREENSHOT", p);
    }
    let started = Instant::now();
    let mut child = cmd.spawn().expect("run the browser test's Python");
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if started.elapsed() > BROWSER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = fs::read_to_string(&log_path).unwrap_or_default();
    println!(
        "{output}browser run: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    a.stop();
    if status.is_some_and(|s| s.success()) {
        return;
    }
    let kept = out.keep();
    fs::write(kept.join("collector.log"), c.log()).unwrap();
    fs::write(kept.join("agent.log"), a.log()).unwrap();
    panic!(
        "the console's browser test {}; its output, screenshots and HTML are in {}:\n{output}",
        match status {
            Some(s) => format!("failed ({s})"),
            None => format!("took longer than {} s", BROWSER_TIMEOUT.as_secs()),
        },
        kept.display()
    );
}
