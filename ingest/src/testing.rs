//! Test support (feature `test-support`, and this crate's own tests): a throw-away
//! PostgreSQL cluster, so the store and queue tests run on both backends.
//!
//! One cluster per test binary ([`cluster`]), started on first use: `initdb` into a temp
//! directory (as the `postgres` OS user when we are root, since initdb refuses root),
//! `pg_ctl start` on a free loopback port with its socket in that directory. Each test takes
//! a database of its own ([`postgres_url`]). A watchdog shell stops the cluster and removes
//! the directory once the test process is gone, however it ended (a static is never
//! dropped, and a killed test never runs destructors). A cluster that cannot start is a
//! failure with the reason, never a skipped test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::Connection;

use crate::db::Backend;

/// A running throw-away PostgreSQL cluster.
#[derive(Debug)]
pub struct PgCluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

/// Where Debian's packages put the server binaries: `pg_config --bindir` when it answers
/// with an `initdb` beside it, else the newest `/usr/lib/postgresql/<version>/bin`.
fn bindir() -> Result<PathBuf, String> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").is_file() {
            return Ok(dir);
        }
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "PostgreSQL's initdb was not found (pg_config --bindir, /usr/lib/postgresql/*/bin): \
         run scripts/setup, which installs Debian's postgresql package"
            .to_string()
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free loopback port: {e}"))
}

impl PgCluster {
    /// initdb and start a cluster; the error says which step failed and why.
    pub fn start() -> Result<Self, String> {
        let bin = bindir()?;
        let as_postgres = is_root();
        let dir = std::env::temp_dir().join(format!(
            "zhiku-pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut cluster = Self {
            dir,
            bin,
            port: 0,
            as_postgres,
        };
        if as_postgres {
            cluster.run("chown", &["postgres:", &cluster.dir_str()], false)?;
        }
        cluster.watchdog();
        let data = cluster.dir.join("data");
        let data = data.to_string_lossy().into_owned();
        cluster.run(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            true,
        )?;
        // The port may be taken between asking for it and binding it: try a few.
        let mut last = String::new();
        for _ in 0..3 {
            cluster.port = free_port()?;
            match cluster.start_server() {
                Ok(()) => return Ok(cluster),
                Err(e) => {
                    let tail = std::fs::read_to_string(cluster.dir.join("log")).unwrap_or_default();
                    last = format!("{e}\n{tail}");
                }
            }
        }
        Err(last)
    }

    /// Start the server on the cluster's port: when the cluster is made, and again after
    /// [`PgCluster::stop`].
    pub fn start_server(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            self.dir_str()
        );
        let data = self.dir.join("data").to_string_lossy().into_owned();
        let log = self.dir.join("log").to_string_lossy().into_owned();
        self.run(
            "pg_ctl",
            &["-D", &data, "-o", &options, "-l", &log, "-w", "start"],
            true,
        )
    }

    /// Stop the server as an administrator's restart does (`-m fast`: every session is
    /// disconnected, open transactions roll back), keeping its data.
    pub fn stop(&self) -> Result<(), String> {
        let data = self.dir.join("data").to_string_lossy().into_owned();
        self.run("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"], true)
    }

    fn dir_str(&self) -> String {
        self.dir.to_string_lossy().into_owned()
    }

    /// Run a tool (a server binary when `server_tool`), as `postgres` when we are root.
    fn run(&self, tool: &str, args: &[&str], server_tool: bool) -> Result<(), String> {
        let program = if server_tool {
            self.bin.join(tool)
        } else {
            PathBuf::from(tool)
        };
        let mut command = if self.as_postgres && server_tool {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = command
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("could not run {}: {e}", program.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} {} failed ({}): {}{}",
                program.display(),
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// A detached shell that waits for this process to end, then stops the cluster and
    /// removes its directory. Its output goes nowhere: `cargo test` would otherwise wait
    /// for it on the test binary's pipes.
    fn watchdog(&self) {
        let pg_ctl = self.bin.join("pg_ctl");
        let as_user = if self.as_postgres {
            "runuser -u postgres -- "
        } else {
            ""
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \
             {as_user}'{pg_ctl}' -D '{dir}/data' -m immediate stop; rm -rf '{dir}'",
            pid = std::process::id(),
            pg_ctl = pg_ctl.display(),
            dir = self.dir.display(),
        );
        let _ = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }

    /// The url of database `name` in this cluster.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// The cluster's directory (data, socket, log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Create an empty database of its own for one test; its url.
    pub async fn fresh_database(&self) -> Result<String, String> {
        self.create_database("", Duration::ZERO).await
    }

    /// A new database made from the one at `source_url` (its template), for a copy of a
    /// stopped deployment; its url. PostgreSQL refuses a template that still has sessions,
    /// and a killed server's sessions end a moment after it: retried for up to 10 s.
    pub async fn copy_database(&self, source_url: &str) -> Result<String, String> {
        let source = source_url
            .rsplit('/')
            .next()
            .ok_or_else(|| format!("no database name in {source_url}"))?;
        self.create_database(&format!(" TEMPLATE {source}"), Duration::from_secs(10))
            .await
    }

    /// `CREATE DATABASE t<N><clause>` under a new name, tried again every 100 ms for
    /// `retry_for`; the new database's url.
    async fn create_database(&self, clause: &str, retry_for: Duration) -> Result<String, String> {
        let name = format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let mut admin = sqlx::PgConnection::connect(&self.url("postgres"))
            .await
            .map_err(|e| format!("connecting to the test cluster: {e}"))?;
        let sql = format!("CREATE DATABASE {name}{clause}");
        let deadline = Instant::now() + retry_for;
        loop {
            match sqlx::query(&sql).execute(&mut admin).await {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "CREATE DATABASE refused; trying again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(format!("{sql}: {e}")),
            }
        }
        let _ = admin.close().await;
        Ok(self.url(&name))
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data").to_string_lossy().into_owned();
        let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "stop"], true);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static NEXT: AtomicUsize = AtomicUsize::new(0);
static CLUSTER: OnceLock<Result<PgCluster, String>> = OnceLock::new();

/// This test binary's cluster, started on first use. Panics (fails the test) with the
/// reason when it cannot start: a PostgreSQL test must never pass by not running.
pub fn cluster() -> &'static PgCluster {
    match CLUSTER.get_or_init(PgCluster::start) {
        Ok(cluster) => cluster,
        Err(e) => panic!("the PostgreSQL test cluster could not start: {e}"),
    }
}

/// The url of a new, empty database for one test, in this binary's cluster.
pub async fn postgres_url() -> String {
    match cluster().fresh_database().await {
        Ok(url) => url,
        Err(e) => panic!("{e}"),
    }
}

/// Both backends, for tests that run once on each.
pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// Turn `async fn name(backend: Backend)` test bodies into one test per backend:
/// `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name($crate::db::Backend::Sqlite).await
                }
                #[tokio::test]
                async fn postgres() {
                    super::$name($crate::db::Backend::Postgres).await
                }
            }
        )*
    };
}
