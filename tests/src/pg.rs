//! A throwaway PostgreSQL server for the tests that store the collector's data in a
//! real database: Debian's server binaries (`/usr/lib/postgresql/*/bin`, installed by
//! scripts/test.sh), a fresh cluster in a temporary directory, listening on a free
//! loopback port.
//!
//! The server refuses to run as root, so initdb, pg_ctl and psql run as the `postgres`
//! OS user through `runuser`; the tests themselves must therefore run as root. Local
//! (unix socket) connections are trusted, which is how the harness itself connects;
//! TCP connections, the collector's, need the `postgres` role's password (SCRAM).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::cluster::free_port;

/// The OS user, and database superuser, the server runs as.
const OS_USER: &str = "postgres";

/// How many fresh ports `start` tries when another process takes the one it picked
/// between releasing it and the server binding it.
const PORT_ATTEMPTS: usize = 3;

/// A throwaway PostgreSQL cluster on a loopback port, removed when dropped.
pub struct Postgres {
    /// The TCP port the server listens on (on `localhost`, IPv4 and IPv6).
    pub port: u16,
    /// The `postgres` role's password, which TCP connections must give.
    pub password: String,
    /// The temporary directory holding everything below (owned by `postgres`).
    dir: PathBuf,
    /// The cluster's data directory.
    data: PathBuf,
    /// The directory of the server's unix socket.
    sock: PathBuf,
    /// The server's log.
    log: PathBuf,
    /// The password file handed out by `password_file` (owned by root, mode 0600).
    password_file: PathBuf,
    /// The PostgreSQL binaries.
    bin: PathBuf,
}

impl Postgres {
    /// initdb + pg_ctl start in a fresh temp dir; panics naming what failed (with the
    /// server log's tail).
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let (uid, gid) = postgres_ids();
        let dir = fresh_dir();
        let mut pg = Postgres {
            port: 0,
            password: random_password(),
            data: dir.join("data"),
            sock: dir.join("sock"),
            log: dir.join("server.log"),
            password_file: dir.join("password"),
            dir,
            bin,
        };
        // From here on a panic drops `pg`, which stops whatever started and removes the
        // directory.
        std::fs::create_dir(&pg.sock)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", pg.sock.display()));
        for path in [&pg.dir, &pg.sock] {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap_or_else(|e| {
                panic!("cannot give {} to the {OS_USER} user: {e}", path.display())
            });
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
                .unwrap_or_else(|e| panic!("cannot chmod 0700 {}: {e}", path.display()));
        }
        let reach = pg.as_postgres("test").arg("-w").arg(&pg.dir).output();
        assert!(
            reach.is_ok_and(|o| o.status.success()),
            "the {OS_USER} user cannot write to {} (is a parent directory of TMPDIR closed \
             to other users?)",
            pg.dir.display()
        );
        // pg_ctl hands the -o options to a shell, and the socket directory is a
        // comma-separated list: keep paths to characters neither treats specially.
        assert!(
            pg.dir.to_str().is_some_and(|s| s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))),
            "the temporary directory {} has characters pg_ctl's options cannot carry; set \
             TMPDIR to a plain path",
            pg.dir.display()
        );

        pg.write_password_files(uid, gid);
        pg.initdb();
        let _ = std::fs::remove_file(pg.initdb_password());

        for attempt in 1..=PORT_ATTEMPTS {
            pg.port = free_port();
            let log_before = std::fs::metadata(&pg.log).map_or(0, |m| m.len());
            let out = pg.pg_ctl_start();
            // Another process took the port after `free_port` released it. With a second
            // loopback address (::1) the server may even have started without it.
            let port_taken = std::fs::read(&pg.log).is_ok_and(|log| {
                let new = log.get(log_before as usize..).unwrap_or_default();
                String::from_utf8_lossy(new).contains("Address already in use")
            });
            if out.status.success() && !port_taken {
                return pg;
            }
            if out.status.success() {
                pg.stop();
            }
            if !port_taken || attempt == PORT_ATTEMPTS {
                panic!(
                    "pg_ctl start on port {} failed{}: {}{}\n--- tail of {} ---\n{}",
                    pg.port,
                    if port_taken {
                        " (the port was taken)"
                    } else {
                        ""
                    },
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr),
                    pg.log.display(),
                    pg.log_tail(30)
                );
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// `postgres://postgres@localhost:PORT/DB` — no password in the URL.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{OS_USER}@localhost:{}/{db}", self.port)
    }

    /// A file holding the password (mode 0600), for `store_password_file`. It is owned
    /// by root and holds the password followed by one newline, as `echo` would write it.
    pub fn password_file(&self) -> PathBuf {
        self.password_file.clone()
    }

    /// CREATE DATABASE name (via psql over the unix socket as postgres; panics on
    /// failure).
    pub fn create_database(&self, name: &str) {
        let ident = format!("\"{}\"", name.replace('"', "\"\""));
        self.psql("postgres", &format!("CREATE DATABASE {ident}"));
    }

    /// Runs one SQL statement with psql in `db` and returns its unaligned, tuples-only
    /// output (`psql -XAtq -c`, without the final newline), for tests that look inside.
    /// Connects over the unix socket as the `postgres` user; panics when psql fails.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = self
            .as_postgres(self.bin.join("psql"))
            .args(["-XAtq", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.sock)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                OS_USER,
                "-d",
                db,
                "-c",
                sql,
            ])
            .output()
            .unwrap_or_else(|e| panic!("cannot run psql: {e}"));
        assert!(
            out.status.success(),
            "psql in database {db:?} failed on {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).expect("psql prints UTF-8");
        text.strip_suffix('\n').unwrap_or(&text).to_string()
    }

    /// A `Command` running `program` as the `postgres` OS user, in the cluster's
    /// directory (the server tools change to their working directory and complain when
    /// they cannot), without any `PG*` variable of ours steering it.
    fn as_postgres(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("runuser");
        c.args(["-u", OS_USER, "--"])
            .arg(program)
            .current_dir(&self.dir);
        without_pg_env(&mut c);
        c
    }

    /// Writes the password twice: for initdb, readable by `postgres` (removed once the
    /// cluster exists), and for the tests, owned by root.
    fn write_password_files(&self, uid: u32, gid: u32) {
        let write = |path: &Path, text: &str| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .and_then(|mut f| f.write_all(text.as_bytes()))
                .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        };
        let initdb_pw = self.initdb_password();
        write(&initdb_pw, &self.password);
        std::os::unix::fs::chown(&initdb_pw, Some(uid), Some(gid))
            .unwrap_or_else(|e| panic!("cannot give {} to {OS_USER}: {e}", initdb_pw.display()));
        write(&self.password_file, &format!("{}\n", self.password));
    }

    /// The copy of the password initdb reads.
    fn initdb_password(&self) -> PathBuf {
        self.dir.join("initdb-password")
    }

    /// Runs initdb: trust over the unix socket, SCRAM over TCP.
    fn initdb(&self) {
        let out = self
            .as_postgres(self.bin.join("initdb"))
            .arg("-D")
            .arg(&self.data)
            .args([
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                &format!("--username={OS_USER}"),
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ])
            .arg(format!("--pwfile={}", self.initdb_password().display()))
            .output()
            .unwrap_or_else(|e| panic!("cannot run initdb through runuser: {e}"));
        assert!(
            out.status.success(),
            "initdb -D {} failed: {}{}",
            self.data.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `pg_ctl start -w` on `self.port`, with the settings on the command line.
    fn pg_ctl_start(&self) -> Output {
        let opts = format!(
            "-c listen_addresses=localhost -c port={} -c unix_socket_directories={} \
             -c fsync=on",
            self.port,
            self.sock.display()
        );
        self.as_postgres(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-w", "-t", "60", "-o", &opts, "start"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run pg_ctl through runuser: {e}"))
    }

    /// `pg_ctl stop -m immediate`, or SIGKILL to the postmaster when that fails: never
    /// leave a server running on a directory about to be deleted.
    fn stop(&self) {
        // Only a started server has a pid file; without one there is nothing to stop.
        let pid_file = self.data.join("postmaster.pid");
        if !pid_file.exists() {
            return;
        }
        let stopped = self
            .as_postgres(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "-t", "30", "stop"])
            .output()
            .is_ok_and(|o| o.status.success());
        if stopped {
            return;
        }
        let pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u32>().ok()));
        if let Some(pid) = pid {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }

    /// The last `lines` lines of the server's log.
    fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(no log: {e})"));
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The directory of the PostgreSQL binaries (the newest /usr/lib/postgresql/*/bin
/// holding initdb), or a panic telling to run scripts/test.sh.
pub fn bin_dir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let newest = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("bin/initdb").is_file())
        .filter_map(|e| {
            // Versions are "15", or "9.6" before PostgreSQL 10: compare them as numbers.
            let name = e.file_name().to_str()?.to_string();
            let version: Vec<u32> = name
                .split('.')
                .map(|p| p.parse().ok())
                .collect::<Option<_>>()?;
            Some((version, e.path().join("bin")))
        })
        .max();
    match newest {
        Some((_, bin)) => bin,
        None => panic!(
            "no PostgreSQL server in /usr/lib/postgresql/*/bin (no initdb): run scripts/test.sh, \
             which installs Debian's postgresql package"
        ),
    }
}

/// The `postgres` user's uid and gid; panics unless this process is root, which it must
/// be to run commands as that user.
fn postgres_ids() -> (u32, u32) {
    let id = |args: &[&str]| -> u32 {
        let out = Command::new("id")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run id: {e}"));
        assert!(
            out.status.success(),
            "id {args:?} failed: {} (is the {OS_USER} user missing? scripts/test.sh installs \
             Debian's postgresql package, which creates it)",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("id {args:?} printed no number: {e}"))
    };
    assert_eq!(
        id(&["-u"]),
        0,
        "the PostgreSQL harness must run as root: it runs the server as the {OS_USER} user \
         through runuser"
    );
    (id(&["-u", OS_USER]), id(&["-g", OS_USER]))
}

/// A new, empty directory under the system's temporary directory.
fn fresh_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("rampart-pg-{}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return dir,
            // Left by an earlier process with the same pid: take the next name.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("cannot create {}: {e}", dir.display()),
        }
    }
}

/// 32 random hex digits from the kernel.
fn random_password() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .unwrap_or_else(|e| panic!("cannot read /dev/urandom: {e}"));
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Removes every `PG*` variable (PGHOST, PGPASSWORD, PGSERVICE, …) this process has
/// from `c`'s environment, so that only its arguments say where it connects.
fn without_pg_env(c: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("PG")) {
            c.env_remove(key);
        }
    }
}

impl Postgres {
    /// A collector configuration that keeps its records in `db` on this server.
    pub fn collector_config(&self, db: &str) -> String {
        format!(
            "store = \"{}\"\nstore_password_file = \"{}\"\n",
            self.url(db),
            self.password_file().display()
        )
    }
}

/// Two collectors on one configuration (one database) in `dir/a` and `dir/b`; the
/// second is given a copy of the first's CA and SSH key, as every collector of a
/// fleet is.
pub fn two_collectors(
    dir: &Path,
    config: &str,
) -> (crate::cluster::Collector, crate::cluster::Collector) {
    use crate::cluster::Collector;
    let (da, db) = (dir.join("a"), dir.join("b"));
    let a = Collector::start_with(&da, None, None, Some(config));
    std::fs::create_dir_all(&db).unwrap();
    for d in ["ca", "ssh"] {
        let st = Command::new("cp")
            .arg("-a")
            .arg(da.join(d))
            .arg(db.join(d))
            .status()
            .expect("run cp");
        assert!(st.success(), "copying {d} failed");
    }
    let b = Collector::start_with(&db, None, Some(&a.admin), Some(config));
    (a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// psql over TCP as root, with `password` in PGPASSWORD (or none) and no prompt.
    fn tcp_psql(pg: &Postgres, password: Option<&str>) -> Output {
        let mut c = Command::new(bin_dir().join("psql"));
        without_pg_env(&mut c);
        c.args(["-XAtqw", "-h", "localhost", "-p", &pg.port.to_string()])
            .args(["-U", OS_USER, "-d", "postgres", "-c", "select 1"])
            .env("PGPASSFILE", "/dev/null");
        if let Some(p) = password {
            c.env("PGPASSWORD", p);
        }
        c.output().expect("run psql")
    }

    #[test]
    fn a_throwaway_server_needs_its_password_over_tcp_and_goes_when_dropped() {
        let pg = Postgres::start();
        let port = pg.port;
        assert_eq!(
            pg.url("rampart"),
            format!("postgres://postgres@localhost:{port}/rampart")
        );

        pg.create_database("rampart");
        assert_eq!(pg.psql("rampart", "select 1+1"), "2");
        assert_eq!(pg.psql("rampart", "select current_database()"), "rampart");

        let file = pg.password_file();
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("{}\n", pg.password)
        );

        for wrong in [Some("wrong"), None] {
            let out = tcp_psql(&pg, wrong);
            assert!(
                !out.status.success(),
                "TCP login with password {wrong:?} was accepted"
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("password authentication failed")
                    || err.contains("no password supplied"),
                "TCP login with password {wrong:?} failed for another reason: {err}"
            );
        }
        let out = tcp_psql(&pg, Some(&pg.password));
        assert!(
            out.status.success(),
            "TCP login with the right password failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");

        let dir = pg.dir.clone();
        drop(pg);
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "port {port} still accepts connections after the drop"
        );
        assert!(!dir.exists(), "{} is left after the drop", dir.display());
    }
}
