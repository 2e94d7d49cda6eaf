//! Starts a real toriid on a fresh database of the shared test cluster, the
//! way tests/support/daemon_process.cpp does for the C++ tests: tools/test
//! starts the cluster and exports TORII_TEST_PGHOST/PGPORT/PGUSER; each
//! daemon gets fresh ports, its own folder and config, and is ready when it
//! answers `ping`. The binary is $TORIID_BINARY, else the dev preset's.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use toriid_client::{Client, Config};

static COUNTER: AtomicU32 = AtomicU32::new(0);

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free TCP port")
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run these tests through tools/test, which starts a test PostgreSQL and exports TORII_TEST_PGHOST/PGPORT/PGUSER")
    })
}

fn toriid_binary() -> PathBuf {
    if let Ok(b) = std::env::var("TORIID_BINARY") {
        return PathBuf::from(b);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../build/dev/daemon/toriid")
}

/// A fresh database on the shared cluster; its libpq key=value conninfo.
pub fn fresh_database() -> String {
    let host = env("TORII_TEST_PGHOST");
    let port = env("TORII_TEST_PGPORT");
    let user = std::env::var("TORII_TEST_PGUSER").unwrap_or_else(|_| "torii".into());
    let name = format!(
        "rs_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        Instant::now().elapsed().subsec_nanos() % 100_000
    );
    let out = Command::new("createdb")
        .args([
            "-h",
            &host,
            "-p",
            &port,
            "-U",
            &user,
            "-T",
            "template0",
            &name,
        ])
        .output()
        .expect("run createdb");
    assert!(
        out.status.success(),
        "createdb {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("host={host} port={port} user={user} dbname={name}")
}

pub struct Daemon {
    child: Option<Child>,
    dir: PathBuf,
    pub endpoint: String,
    /// The `events` (PUB) endpoint.
    pub events: String,
    pub database: String,
}

/// Heartbeats every 100 ms: subscribers' deadlines (3 intervals) pass in
/// 300 ms, which keeps the tests of the event rules short.
pub const FAST_EVENTS: &str = "[events]\nheartbeat_ms = 100\n";

/// The heartbeat interval of [`FAST_EVENTS`].
pub const FAST_HEARTBEAT: Duration = Duration::from_millis(100);

impl Daemon {
    /// A daemon on a fresh database.
    pub async fn start() -> Daemon {
        Daemon::start_on(&fresh_database()).await
    }

    /// A daemon on `database` (another daemon's, for two daemons on one).
    pub async fn start_on(database: &str) -> Daemon {
        Daemon::start_with(database, "", true).await
    }

    /// A daemon on `database` with [`FAST_EVENTS`].
    pub async fn start_fast_on(database: &str) -> Daemon {
        Daemon::start_with(database, FAST_EVENTS, true).await
    }

    /// A daemon on `database` with `extra_toml` appended to its config;
    /// `ping_ready`: wait for a plain (non-CURVE) ping; else the caller
    /// waits its own way (a CURVE daemon answers only CURVE clients).
    pub async fn start_with(database: &str, extra_toml: &str, ping_ready: bool) -> Daemon {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("toriid-rs-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the daemon's folder");
        let endpoint = format!("tcp://127.0.0.1:{}", free_port());
        let events = format!("tcp://127.0.0.1:{}", free_port());
        let config = format!(
            "# written by the Rust test harness\n[server]\nrequests = [\"{endpoint}\"]\nevents = [\"{events}\"]\n\n[database]\nurl = \"{database}\"\n\n[log]\nlevel = \"info\"\n{extra_toml}\n"
        );
        let config_path = dir.join("toriid.toml");
        std::fs::write(&config_path, config).expect("write the config");
        let log = std::fs::File::create(dir.join("toriid.log")).expect("create the log");
        let log2 = log.try_clone().expect("clone the log");
        let binary = toriid_binary();
        let child = Command::new(&binary)
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut d = Daemon {
            child: Some(child),
            dir,
            endpoint,
            events,
            database: database.to_string(),
        };
        if ping_ready {
            d.wait_ready(Duration::from_secs(60)).await;
        }
        d
    }

    /// The daemon's folder (for key files and the like).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.join("toriid.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    async fn wait_ready(&mut self, within: Duration) {
        let client = Config::new([self.endpoint.clone()])
            .with_timeout(Duration::from_millis(200))
            .connect()
            .expect("a client");
        let deadline = Instant::now() + within;
        loop {
            // Each ping waits up to 200 ms: that paces the polling.
            if client.ping().await.is_ok() {
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "toriid exited ({status}) before answering ping; log:\n{}",
                        self.log_tail()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "toriid did not answer ping within {within:?}; log:\n{}",
                self.log_tail()
            );
        }
    }

    /// A client of this daemon with `timeout`.
    pub fn client(&self) -> Client {
        Config::new([self.endpoint.clone()])
            .with_timeout(Duration::from_secs(10))
            .connect()
            .expect("a client")
    }

    /// Kills the daemon (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `f` until it returns true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if f().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
