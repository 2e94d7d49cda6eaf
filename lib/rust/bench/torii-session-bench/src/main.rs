//! The benchmark of issue 25: a Torii 0.5.3 service checking sessions with
//! `Torii::get_session` on Torii's SQLite backend, on Torii's SeaORM backend
//! over PostgreSQL, and on the toriid provider (daemon cache off, daemon
//! cache on, the in-process session cache), on the same data. Driven by
//! tools/bench-torii-sessions, which starts the databases and daemons and
//! prints the markdown section; this binary prints one JSON object a line.
//!
//! ```text
//! torii-session-bench load --users U --sessions N [--extra X]
//!     [--sqlite URL] [--seaorm URL] [--toriid-db URL]
//! torii-session-bench run --backend sqlite|seaorm|toriid|cached --sessions N
//!     [--sqlite URL | --seaorm URL | --endpoint EP [--events EV]]
//!     [--tasks 1,8,32] [--seconds S] [--warmup W] [--label L]
//!     [--daemon-pid PID] [--pg URL]
//!     [--revoke-endpoint EP2 --revocations R --revoke-first J --readers K]
//! torii-session-bench rss --endpoint EP --events EV --sessions M
//! ```
//!
//! `run` measures, at each task count, `tasks` tokio tasks (the default
//! multi-thread runtime: one worker a core) each calling
//! `torii.get_session(token)` in a loop on uniformly random tokens of
//! sessions 0..N, yielding to the runtime after each check as a request
//! handler would; the latency of each call goes to an HDR histogram; the
//! first `warmup` seconds are not counted. CPU per check: utime + stime
//! (/proc/PID/stat) over the measured window of this process (the
//! service), of the daemon (`--daemon-pid`) and of the PostgreSQL server
//! (`--pg`: its postmaster, every child process, and the children that
//! exited meanwhile), divided by the checks.

mod cached;
mod cpu;
mod load;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::json;
use torii::Torii;
use torii_core::{RepositoryProvider, SessionToken};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Args(HashMap<String, String>);

impl Args {
    fn parse(v: &[String]) -> Result<Args, String> {
        let mut m = HashMap::new();
        let mut it = v.iter();
        while let Some(k) = it.next() {
            let Some(name) = k.strip_prefix("--") else {
                return Err(format!("unexpected argument '{k}'"));
            };
            let val = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            m.insert(name.to_string(), val.clone());
        }
        Ok(Args(m))
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
    fn req(&self, k: &str) -> Result<&str, String> {
        self.get(k).ok_or_else(|| format!("--{k} is required"))
    }
    fn num<T: std::str::FromStr>(&self, k: &str, default: T) -> Result<T, String> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{k}: '{v}' is not a number")),
        }
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = argv.first().cloned() else {
        eprintln!("usage: torii-session-bench load|run|rss --help (see the source header)");
        std::process::exit(2);
    };
    let args = match Args::parse(&argv[1..]) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("torii-session-bench: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let r: Result<(), BoxError> = rt.block_on(async {
        match cmd.as_str() {
            "load" => cmd_load(&args).await,
            "run" => cmd_run(&args).await,
            "rss" => cached::cmd_rss(&args).await,
            other => Err(format!("unknown command '{other}'").into()),
        }
    });
    if let Err(e) = r {
        eprintln!("torii-session-bench {cmd}: {e}");
        std::process::exit(1);
    }
}

async fn cmd_load(a: &Args) -> Result<(), BoxError> {
    let n = load::Sizes {
        users: a.num("users", 1000)?,
        sessions: a.num("sessions", 10000)?,
    };
    let extra: u64 = a.num("extra", 0)?;
    let t = Instant::now();
    if let Some(url) = a.get("sqlite") {
        load::sqlite(url, &n)
            .await
            .map_err(|e| format!("sqlite: {e}"))?;
        eprintln!("loaded SQLite in {:.1} s", t.elapsed().as_secs_f64());
    }
    if let Some(url) = a.get("seaorm") {
        load::seaorm(url, &n)
            .await
            .map_err(|e| format!("seaorm: {e}"))?;
        eprintln!("loaded SeaORM in {:.1} s", t.elapsed().as_secs_f64());
    }
    if let Some(url) = a.get("toriid-db") {
        // The extra sessions (revocations, the 1M-session RSS) live only
        // in toriid's database; sessions 0..N are the same everywhere.
        let nt = load::Sizes {
            users: n.users,
            sessions: n.sessions.max(extra),
        };
        load::toriid(url, &nt)
            .await
            .map_err(|e| format!("toriid: {e}"))?;
        eprintln!("loaded toriid in {:.1} s", t.elapsed().as_secs_f64());
    }
    println!("{}", json!({"seconds": t.elapsed().as_secs_f64()}));
    Ok(())
}

/// What one measured window is given.
pub struct Plan {
    pub tokens: Arc<Vec<SessionToken>>,
    pub seconds: f64,
    pub warmup: f64,
    pub daemon_pid: Option<u32>,
    pub pg: Option<sqlx::PgPool>,
    /// Check every session once before measuring (fills the caches).
    pub prefill: bool,
}

pub fn tokens(n: u64) -> Arc<Vec<SessionToken>> {
    Arc::new((0..n).map(|j| SessionToken::new(&load::token(j))).collect())
}

async fn cmd_run(a: &Args) -> Result<(), BoxError> {
    let backend = a.req("backend")?.to_string();
    let label = a.get("label").unwrap_or(&backend).to_string();
    let n: u64 = a.num("sessions", 10000)?;
    let tasks: Vec<usize> = a
        .get("tasks")
        .unwrap_or("1,8,32")
        .split(',')
        .map(|t| t.trim().parse().map_err(|_| format!("--tasks: '{t}'")))
        .collect::<Result<_, _>>()?;
    let pg = match a.get("pg") {
        Some(url) => Some(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await?,
        ),
        None => None,
    };
    let plan = Plan {
        tokens: tokens(n),
        seconds: a.num("seconds", 3.0)?,
        warmup: a.num("warmup", 1.0)?,
        daemon_pid: a.get("daemon-pid").map(|p| p.parse()).transpose()?,
        pg,
        prefill: a.get("prefill") == Some("1"),
    };
    match backend.as_str() {
        "sqlite" => {
            let storage = torii::sqlite::SqliteStorage::connect(a.req("sqlite")?).await?;
            let torii = Arc::new(Torii::new(Arc::new(storage.into_repository_provider())));
            run_all(&label, &torii, &plan, &tasks).await
        }
        "seaorm" => {
            let storage = torii::seaorm::SeaORMStorage::connect(a.req("seaorm")?).await?;
            let torii = Arc::new(Torii::new(Arc::new(storage.into_repository_provider())));
            run_all(&label, &torii, &plan, &tasks).await
        }
        "toriid" => {
            let provider = torii_storage_toriid::ToriidRepositoryProvider::connect(
                toriid_client::Config::new([a.req("endpoint")?]),
            )?;
            let torii = Arc::new(Torii::new(Arc::new(provider)));
            run_all(&label, &torii, &plan, &tasks).await
        }
        "cached" => cached::run(a, &label, &plan, &tasks).await,
        other => Err(format!("unknown backend '{other}'").into()),
    }
}

/// One check each over all tokens (fills caches, checks the data is
/// there), then the measured windows.
pub async fn run_all<R: RepositoryProvider + 'static>(
    label: &str,
    torii: &Arc<Torii<R>>,
    plan: &Plan,
    tasks: &[usize],
) -> Result<(), BoxError> {
    // A service's first checks pay for connecting; one pass of a few
    // hundred checks also proves every backend answers the same data.
    for j in [0, plan.tokens.len() - 1, plan.tokens.len() / 2] {
        torii
            .get_session(&plan.tokens[j])
            .await
            .map_err(|e| format!("{label}: session {j} is not there: {e}"))?;
    }
    if plan.prefill {
        let t = Instant::now();
        let missing = prefill(torii, &plan.tokens, plan.tokens.len()).await;
        if missing > 0 {
            return Err(
                format!("{label}: {missing} sessions not found while filling the caches").into(),
            );
        }
        eprintln!(
            "{label}: checked all {} sessions once in {:.1} s",
            plan.tokens.len(),
            t.elapsed().as_secs_f64()
        );
    }
    for &c in tasks {
        let r = measure(torii, plan, c).await?;
        println!("{}", json!({"backend": label, "tasks": c, "result": r}));
    }
    Ok(())
}

struct TaskResult {
    hist: Histogram<u64>,
    checks: u64,
    errors: u64,
    first_error: Option<String>,
}

/// `c` tasks checking sessions for warmup + seconds; the result's JSON.
pub async fn measure<R: RepositoryProvider + 'static>(
    torii: &Arc<Torii<R>>,
    plan: &Plan,
    c: usize,
) -> Result<serde_json::Value, BoxError> {
    // The postmaster: the parent of this connection's backend.
    let postmaster: Option<u32> = match &plan.pg {
        Some(pool) => {
            let backend = sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
                .fetch_one(pool)
                .await? as u32;
            std::fs::read_to_string(format!("/proc/{backend}/status"))?
                .lines()
                .find_map(|l| l.strip_prefix("PPid:"))
                .and_then(|v| v.trim().parse().ok())
        }
        None => None,
    };
    let start = Instant::now();
    let warm_end = start + Duration::from_secs_f64(plan.warmup);
    let end = warm_end + Duration::from_secs_f64(plan.seconds);
    // CPU snapshots at the window's edges from a plain thread: the tasks
    // keep both workers busy, a timer on the runtime would fire late.
    let daemon = plan.daemon_pid;
    let snap = move || {
        (
            cpu::seconds(std::process::id()),
            daemon.map(cpu::seconds).unwrap_or(0.0),
            postmaster.map(cpu::tree),
        )
    };
    let snapper = tokio::task::spawn_blocking(move || {
        std::thread::sleep(warm_end.saturating_duration_since(Instant::now()));
        let a = snap();
        let t0 = Instant::now();
        std::thread::sleep(end.saturating_duration_since(Instant::now()));
        let b = snap();
        (a, b, t0.elapsed().as_secs_f64())
    });
    let mut handles = Vec::new();
    for i in 0..c {
        let torii = torii.clone();
        let tokens = plan.tokens.clone();
        handles.push(tokio::spawn(async move {
            let mut r = TaskResult {
                hist: Histogram::new_with_bounds(1, 60_000_000_000, 3).unwrap(),
                checks: 0,
                errors: 0,
                first_error: None,
            };
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ ((i as u64 + 1) * 0x1000_0000_01B3);
            loop {
                // xorshift64: a uniform random session each check.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let t = &tokens[(x % tokens.len() as u64) as usize];
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let res = torii.get_session(t).await;
                let ns = t0.elapsed().as_nanos() as u64;
                if t0 >= warm_end {
                    r.hist.saturating_record(ns.max(1));
                    r.checks += 1;
                    if let Err(e) = res {
                        r.errors += 1;
                        r.first_error.get_or_insert_with(|| e.to_string());
                    }
                }
                tokio::task::yield_now().await;
            }
            r
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).unwrap();
    let (mut checks, mut errors, mut first_error) = (0u64, 0u64, None);
    for h in handles {
        let r = h.await?;
        hist.add(&r.hist)?;
        checks += r.checks;
        errors += r.errors;
        if first_error.is_none() {
            first_error = r.first_error;
        }
    }
    let (a, b, secs) = snapper.await?;
    if let Some(e) = &first_error {
        eprintln!("torii-session-bench: {errors} of {checks} checks failed, the first: {e}");
    }
    let per = |x: f64, y: f64| {
        if checks > 0 {
            (y - x) * 1e6 / checks as f64
        } else {
            0.0
        }
    };
    Ok(json!({
        "checks": checks,
        "seconds": secs,
        "checks_per_s": checks as f64 / secs,
        "p50_us": hist.value_at_quantile(0.50) as f64 / 1000.0,
        "p99_us": hist.value_at_quantile(0.99) as f64 / 1000.0,
        "errors": errors,
        "cpu_us_per_check": {
            "service": per(a.0, b.0),
            "daemon": per(a.1, b.1),
            "postgres": match (&a.2, &b.2) {
                (Some(x), Some(y)) => per(0.0, cpu::tree_between(x, y)),
                _ => 0.0,
            },
        },
    }))
}

/// Checks sessions 0..n once each, 32 at a time; how many were not found.
pub async fn prefill<R: RepositoryProvider + 'static>(
    torii: &Arc<Torii<R>>,
    tokens: &Arc<Vec<SessionToken>>,
    n: usize,
) -> u64 {
    const LANES: usize = 32;
    let mut handles = Vec::new();
    for lane in 0..LANES {
        let torii = torii.clone();
        let tokens = tokens.clone();
        handles.push(tokio::spawn(async move {
            let mut missing = 0u64;
            for j in (lane..n).step_by(LANES) {
                if torii.get_session(&tokens[j]).await.is_err() {
                    missing += 1;
                }
            }
            missing
        }));
    }
    let mut missing = 0;
    for h in handles {
        missing += h.await.unwrap_or(0);
    }
    missing
}
