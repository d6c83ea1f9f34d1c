//! `/download/` under many slow readers of a large file: the collector streams it
//! (its memory stays far below file size × readers), its `.sha256` is what
//! `sha256sum` says (computed once), and beyond the download slots the answer is
//! 503 with `Retry-After` and an error body.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rampart_tests::cluster::{http_raw, Collector};

const MIB: usize = 1024 * 1024;

/// The PID of the `rampart-collector serve` process using `data`.
fn collector_pid(data: &Path) -> u32 {
    let want = data.display().to_string();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args
            .first()
            .is_some_and(|a| a.ends_with("rampart-collector"))
            && args.iter().any(|a| a == "serve")
            && args.contains(&want)
        {
            return pid;
        }
    }
    panic!("no collector process for {want}");
}

/// Resident memory of `pid` in MiB.
fn rss_mib(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kb / 1024
}

/// A reader that requests `path`, reads the response head and a little of the
/// body, then stops reading (holding the connection).
fn slow_reader(addr: &str, path: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte).unwrap();
        assert_eq!(n, 1, "connection closed in the response head");
        head.push(byte[0]);
    }
    (s, String::from_utf8_lossy(&head).into_owned())
}

#[test]
fn slow_readers_of_a_large_file_are_streamed_and_capped() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("collector");
    let readers = 16;
    let c = Collector::start_with(
        &data,
        None,
        None,
        Some(&format!("max_concurrent_downloads = {readers}\n")),
    );
    let file = data.join("download/agent.bin");
    let mut bytes = vec![0u8; 64 * MIB];
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    std::fs::write(&file, &bytes).unwrap();
    drop(bytes);
    let out = Command::new("sha256sum").arg(&file).output().unwrap();
    let want = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();

    let sum = http_raw("GET", &c.rest, "/download/agent.bin.sha256", None);
    assert_eq!(sum.status, 200);
    assert_eq!(sum.text(), format!("{want}  agent.bin\n"));

    let pid = collector_pid(&data);
    let before = rss_mib(pid);
    let held: Vec<(TcpStream, String)> = (0..readers)
        .map(|_| slow_reader(&c.rest, "/download/agent.bin"))
        .collect();
    for (_, head) in &held {
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("content-length: {}", 64 * MIB)),
            "{head}"
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    let during = rss_mib(pid);
    // Read whole, each reader would cost the file's 64 MiB: over 1 GiB.
    assert!(
        during < before + 160,
        "collector RSS {during} MiB with {readers} slow readers (was {before} MiB)"
    );

    // Every slot taken: the next download is told to come back.
    let busy = http_raw("GET", &c.rest, "/download/agent.bin", None);
    assert_eq!(busy.status, 503, "{}", busy.text());
    assert_eq!(busy.header("retry-after"), Some("5"));
    let v: serde_json::Value = serde_json::from_slice(&busy.body).unwrap();
    assert!(v["error"].as_str().unwrap().contains("retry"), "{v}");
    // The sum is known: answered without a slot.
    let again = http_raw("GET", &c.rest, "/download/agent.bin.sha256", None);
    assert_eq!((again.status, again.text()), (200, sum.text()));

    // Slow readers gone, slots free: a whole download is the file.
    drop(held);
    let got = t.path().join("got.bin");
    let out = Command::new("curl")
        .args([
            "-sS",
            "--fail",
            "--retry",
            "5",
            "--retry-delay",
            "1",
            "--max-time",
            "60",
            "-o",
        ])
        .arg(&got)
        .arg(format!("http://{}/download/agent.bin", c.rest))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("sha256sum").arg(&got).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&want));
}
