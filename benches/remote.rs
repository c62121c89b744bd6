//! The web database far away: the pipeline with a delaying TCP proxy between the daemon and
//! the web PostgreSQL (prints; asserts nothing).
//!
//! `cargo bench -p mikro-sync --bench remote` — starts the harness (throwaway PostgreSQL + the
//! ERP emulator), puts [`FaultProxy`] in front of PostgreSQL with a round-trip time of 0, 10, 30
//! and 60 ms (half of it each way, connection set-up held one RTT), leaves the ERP link local,
//! and prints side by side:
//!
//! 1. latency, one document (sale, 1 line) at a time into an idle worker: pick-up (web COMMIT
//!    returned → the worker starts posting, local clock) and end-to-end (web COMMIT → the queue
//!    row completed in the web database, database clock), p50/p99, and the web round trips the
//!    daemon started per document (going idle included);
//! 2. documents/s (3-line sales, 4 ERP connections, 4 series), web round trips per document and
//!    the daemon's CPU per posted document (µs: the daemon runs on its own runtime, whose
//!    threads' utime + stime are read from `/proc/self/task`), then where the rest of the
//!    machine's CPU per document went: the emulator, the proxy, and the PostgreSQL backends of
//!    the `web` and `erp` databases (one cluster; a backend's database is in its process title).
//!
//! REMOTE_BENCH_RTTS (default `0,10,30,60`, ms), REMOTE_BENCH_DOCS (latency samples per RTT,
//! default 40), REMOTE_BENCH_ERP_DOCS (default 1500), REMOTE_BENCH_IN_FLIGHT (documents in
//! flight, comma-separated, default `d,16`; `d` = the daemon's defaults, concurrency 4; the
//! prefetch stays automatic in every column unless REMOTE_BENCH_PREFETCH pins it),
//! REMOTE_BENCH_ONLY=1 or 2. Under each documents/s row: claim statements per document, rows
//! per claim, the prefetch the worker sized, and how long slots stood free with nothing
//! claimed while a claim travelled that came back full ("dry": rows were due).
//! REMOTE_BENCH_PG_SETTINGS=`name=value;…` for the cluster: with
//! `shared_preload_libraries=pg_stat_statements` each run of section 2 also prints the
//! statements per document in each database and the ones that took the most time.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mikro_emulator::fault_proxy::FaultProxy;
use mikro_emulator::harness::{Harness, HarnessOptions};
use mikro_sync::db::WebPool;
use mikro_sync::posting::{PostError, Posted, PostingConfig};
use mikro_sync::queue::{
    Job, Metrics, MikroSink, PgListenConnector, Sink, Worker, WorkerOptions, WorkerReport,
};
use mikro_sync::shutdown::ShutdownController;
use uuid::Uuid;

const CARI: &str = "c0000000-0000-4000-8000-000000000001";
const STOK: &str = "b0000000-0000-4000-8000-000000000001";

/// Name of the daemon runtime's threads (what the CPU figure sums).
const DAEMON_THREAD: &str = "mikro-daemon";
/// The emulator's runtime (the bench's own, where the harness spawns it).
const EMULATOR_THREAD: &str = "emulator";
/// The delaying proxy's runtime: network, not part of any real deployment.
const PROXY_THREAD: &str = "web-proxy";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_list(name: &str, default: &str) -> Vec<u64> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// CPU time (user + system) of this process's daemon threads so far.
fn daemon_cpu() -> Duration {
    // Clock ticks per second: 100 on every Linux this runs on (USER_HZ).
    const TICKS: u64 = 100;
    let mut ticks = 0u64;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid … : fields after the comm's closing parenthesis.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with(DAEMON_THREAD) {
            continue;
        }
        let rest: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the comm.
        let f = |i: usize| rest.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        ticks += f(11) + f(12);
    }
    Duration::from_millis(ticks * 1000 / TICKS)
}

/// What section 2 reads besides the daemon's figures.
#[derive(Clone, Copy)]
struct Watch {
    /// The cluster's postmaster (its children are the backends); None: no PostgreSQL CPU.
    postmaster: Option<u32>,
    /// pg_stat_statements is loaded: print statements per document.
    statements: bool,
}

/// Where CPU went: this process's threads by runtime, and the cluster's processes by database.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Part {
    Daemon,
    Emulator,
    Proxy,
    /// The bench's own main thread and anything unnamed.
    Bench,
    WebPg,
    ErpPg,
    /// The postmaster, its background processes and backends that exited (reaped children).
    PgOther,
}

const PARTS: [(Part, &str); 7] = [
    (Part::Daemon, "daemon"),
    (Part::Emulator, "emulator"),
    (Part::ErpPg, "ERP PG"),
    (Part::WebPg, "web PG"),
    (Part::PgOther, "PG other"),
    (Part::Proxy, "proxy"),
    (Part::Bench, "bench"),
];

/// (comm, fields after the comm) of a /proc stat file.
fn stat_fields(path: &std::path::Path) -> Option<(String, Vec<String>)> {
    let s = std::fs::read_to_string(path).ok()?;
    let (open, close) = (s.find('(')?, s.rfind(')')?);
    let rest = s.get(close + 2..)?.split(' ').map(str::to_string).collect();
    Some((s[open + 1..close].to_string(), rest))
}

fn field(f: &[String], i: usize) -> u64 {
    f.get(i).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// CPU ticks so far per thread of this process and per process of the cluster, keyed so that a
/// later sample can be subtracted (a backend that appeared in between counts from zero).
fn cpu_sample(postmaster: Option<u32>) -> HashMap<(char, u32), (Part, u64)> {
    let mut out = HashMap::new();
    for t in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let Some(tid) = t.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let Some((comm, f)) = stat_fields(&t.path().join("stat")) else {
            continue;
        };
        let part = if comm.starts_with(DAEMON_THREAD) {
            Part::Daemon
        } else if comm.starts_with(EMULATOR_THREAD) {
            Part::Emulator
        } else if comm.starts_with(PROXY_THREAD) {
            Part::Proxy
        } else {
            Part::Bench
        };
        // utime and stime: fields 14 and 15 of the line, 12 and 13 after the comm.
        out.insert(('t', tid), (part, field(&f, 11) + field(&f, 12)));
    }
    let Some(pm) = postmaster else {
        return out;
    };
    if let Some((_, f)) = stat_fields(std::path::Path::new(&format!("/proc/{pm}/stat"))) {
        // Its own time plus that of its reaped children (cutime, cstime).
        let t = field(&f, 11) + field(&f, 12) + field(&f, 13) + field(&f, 14);
        out.insert(('p', pm), (Part::PgOther, t));
    }
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Some((_, f)) = stat_fields(&e.path().join("stat")) else {
            continue;
        };
        if field(&f, 1) != pm as u64 {
            continue;
        }
        // A backend's title: "postgres: <user> <database> <host(port)> <state>".
        let title = std::fs::read_to_string(e.path().join("cmdline")).unwrap_or_default();
        let part = match title.split_whitespace().nth(2) {
            Some("web") => Part::WebPg,
            Some("erp") => Part::ErpPg,
            _ => Part::PgOther,
        };
        out.insert(('p', pid), (part, field(&f, 11) + field(&f, 12)));
    }
    out
}

/// CPU per part between two samples, in ticks.
fn cpu_delta(
    a: &HashMap<(char, u32), (Part, u64)>,
    b: &HashMap<(char, u32), (Part, u64)>,
) -> HashMap<Part, u64> {
    let mut out = HashMap::new();
    for (k, (part, t)) in b {
        let before = a.get(k).map_or(0, |(_, t0)| *t0);
        *out.entry(*part).or_insert(0) += t.saturating_sub(before);
    }
    out
}

/// "daemon 700 µs, emulator 3.1 ms, …; all 9.2 ms" per document.
fn cpu_line(ticks: &HashMap<Part, u64>, docs: u64) -> String {
    // Clock ticks per second: 100 on every Linux this runs on (USER_HZ).
    let us = |t: u64| t as f64 * 10_000.0 / docs.max(1) as f64;
    let fmt = |v: f64| {
        if v >= 1000.0 {
            format!("{:.1} ms", v / 1000.0)
        } else {
            format!("{v:.0} µs")
        }
    };
    let mut parts: Vec<String> = PARTS
        .iter()
        .map(|(p, name)| format!("{name} {}", fmt(us(ticks.get(p).copied().unwrap_or(0)))))
        .collect();
    parts.push(format!("all {}", fmt(us(ticks.values().sum()))));
    parts.join(", ")
}

/// The postmaster of the cluster `c` is connected to (the parent of its backend).
async fn postmaster_pid(c: &tokio_postgres::Client) -> Option<u32> {
    let pid: i32 = c
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .ok()?
        .get(0);
    let (_, f) = stat_fields(std::path::Path::new(&format!("/proc/{pid}/stat")))?;
    u32::try_from(field(&f, 1)).ok()
}

/// REMOTE_BENCH_PG_SETTINGS=`name=value;name=value` for the throwaway cluster.
fn pg_settings() -> Vec<(String, String)> {
    std::env::var("REMOTE_BENCH_PG_SETTINGS")
        .unwrap_or_default()
        .split(';')
        .filter(|kv| !kv.trim().is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => panic!("REMOTE_BENCH_PG_SETTINGS: `{kv}` is not name=value"),
        })
        .collect()
}

/// Whether the cluster loaded pg_stat_statements (then its view is created and reset).
async fn statements_on(c: &tokio_postgres::Client, settings: &[(String, String)]) -> bool {
    let on = settings
        .iter()
        .any(|(k, v)| k == "shared_preload_libraries" && v.contains("pg_stat_statements"));
    if on {
        c.batch_execute(
            "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()",
        )
        .await
        .expect("pg_stat_statements");
    }
    on
}

/// Statements per document in each database since the last reset, and the ones that took the
/// most time (µs per document, execution + planning).
async fn print_statements(c: &tokio_postgres::Client, docs: u64) {
    let docs = docs.max(1) as f64;
    let per_db = c
        .query(
            "SELECT d.datname, sum(s.calls)::float8, sum(s.total_exec_time + s.total_plan_time)::float8 \
               FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
              WHERE d.datname IN ('web', 'erp') GROUP BY 1 ORDER BY 1",
            &[],
        )
        .await
        .expect("statements per db");
    for r in per_db {
        let (db, calls, ms): (String, f64, f64) = (r.get(0), r.get(1), r.get(2));
        println!(
            "          {db}: {:.1} statements/doc, {:.0} µs/doc inside them",
            calls / docs,
            ms * 1000.0 / docs
        );
    }
    let top = c
        .query(
            "SELECT d.datname, s.calls::float8, (s.total_exec_time + s.total_plan_time)::float8, \
                    s.total_plan_time::float8, s.plans::float8, left(regexp_replace(s.query, '\\s+', ' ', 'g'), 110) \
               FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
              WHERE d.datname IN ('web', 'erp') \
              ORDER BY s.total_exec_time + s.total_plan_time DESC LIMIT 12",
            &[],
        )
        .await
        .expect("top statements");
    println!("          top: db, calls/doc, µs/doc (of it planning), plans/call, query");
    for r in top {
        let (db, calls, ms, plan, plans, q): (String, f64, f64, f64, f64, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5));
        println!(
            "            {db:3} {:5.2} {:6.0} ({:4.0}) {:4.2}  {q}",
            calls / docs,
            ms * 1000.0 / docs,
            plan * 1000.0 / docs,
            plans / calls.max(1.0)
        );
    }
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect web");
    tokio::spawn(conn);
    c
}

/// When posting of each document started (local clock).
type Starts = Arc<Mutex<HashMap<Uuid, Instant>>>;

#[derive(Clone)]
struct TimingSink<S> {
    inner: S,
    starts: Starts,
}

impl<S: Sink> Sink for TimingSink<S> {
    async fn post(&self, job: &Job) -> Result<Posted, PostError> {
        if let Ok(mut s) = self.starts.lock() {
            s.entry(job.entity_id).or_insert_with(Instant::now);
        }
        self.inner.post(job).await
    }

    fn documents(&self) -> Option<&PostingConfig> {
        self.inner.documents()
    }
}

/// The daemon: its own runtime (so its CPU can be told apart from the emulator's and the
/// proxy's), a web pool and LISTEN connections through the proxy.
struct Daemon {
    rt: tokio::runtime::Runtime,
    url: String,
}

struct Running {
    ctl: ShutdownController,
    handle: tokio::task::JoinHandle<WorkerReport>,
}

impl Daemon {
    fn new(url: String) -> Daemon {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(DAEMON_THREAD)
            .enable_all()
            .build()
            .expect("daemon runtime");
        Daemon { rt, url }
    }

    async fn sink(&self, pool: &WebPool, erp_ado: String, conns: u32) -> MikroSink {
        let web = pool.clone();
        self.rt
            .spawn(async move {
                MikroSink {
                    web,
                    erp: mikro_sync::db::erp_pool(&erp_ado, conns)
                        .await
                        .expect("erp pool"),
                    cfg: PostingConfig::default(),
                }
            })
            .await
            .expect("sink")
    }

    fn start<S: Sink>(&self, pool: &WebPool, sink: S, opts: WorkerOptions) -> Running {
        let ctl = ShutdownController::new();
        let sd = ctl.subscribe();
        let l = Arc::new(PgListenConnector::from_url_notls(&self.url).expect("url"));
        let w = Worker::new(pool.clone(), l, sink, opts);
        let handle = self
            .rt
            .spawn(async move { w.run(sd).await.expect("worker") });
        Running { ctl, handle }
    }
}

impl Running {
    async fn stop(self) -> WorkerReport {
        self.ctl.trigger();
        self.handle.await.expect("worker task")
    }
}

fn sale_sql(id: Uuid, lines: usize, seri: Option<&str>) -> String {
    let seri = seri.map(|s| format!("'{s}'")).unwrap_or("NULL".into());
    let mut sql = format!(
        "INSERT INTO satislar (id, cari_hesap_id, odeme_sekli, ara_toplam, kdv_tutari, toplam_tutar, fatura_seri_no) \
         VALUES ('{id}', '{CARI}', 'vadeli', {a}, {k}, {t}, {seri});",
        a = 100 * lines,
        k = 20 * lines,
        t = 120 * lines
    );
    for i in 0..lines {
        sql.push_str(&format!(
            "INSERT INTO satis_kalemleri (satis_id, stok_id, miktar, birim_fiyat, kdv_orani, kdv_tutari, toplam_tutar, sira_no) \
             VALUES ('{id}', '{STOK}', 1, 100, 20, 20, 120, {i});"
        ));
    }
    sql
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

async fn reset(c: &tokio_postgres::Client) {
    c.batch_execute(
        "TRUNCATE sync_queue; TRUNCATE satislar CASCADE; TRUNCATE tahsilatlar CASCADE;",
    )
    .await
    .expect("truncate");
}

struct Lat {
    pickup: Vec<Duration>,
    e2e: Vec<Duration>,
    turns_per_doc: f64,
}

/// One-line sales, one at a time, each into an idle worker.
async fn latency(
    d: &Daemon,
    c: &tokio_postgres::Client,
    proxy: &FaultProxy,
    sink: MikroSink,
    rtt: Duration,
    n: usize,
) -> Lat {
    reset(c).await;
    let pool = mikro_sync::db::web_pool(&d.url, 24).expect("pool");
    let starts: Starts = Arc::default();
    let timing = TimingSink {
        inner: MikroSink {
            web: pool.clone(),
            ..sink
        },
        starts: starts.clone(),
    };
    let opts = WorkerOptions {
        concurrency: 4,
        ..WorkerOptions::default()
    };
    let w = d.start(&pool, timing, opts);
    // Going idle takes a few round trips after the linger; this lets every document meet an
    // idle worker.
    let settle = rtt * 8 + Duration::from_millis(100);
    tokio::time::sleep(settle + Duration::from_millis(500)).await;
    let turns0 = proxy.client_turns();
    let (mut pickup, mut e2e) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let id = Uuid::new_v4();
        c.batch_execute(&format!("BEGIN;{}COMMIT;", sale_sql(id, 1, None)))
            .await
            .expect("insert");
        let committed = Instant::now();
        let deadline = committed + Duration::from_secs(30);
        let took = loop {
            let r = c
                .query_opt(
                    "SELECT extract(epoch FROM processed_at - created_at)::float8 FROM sync_queue \
                      WHERE entity_id = $1 AND status = 'completed'",
                    &[&id],
                )
                .await
                .expect("poll");
            if let Some(r) = r {
                break Some(Duration::from_secs_f64(r.get::<_, f64>(0).max(0.0)));
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        match took {
            Some(t) => e2e.push(t),
            None => eprintln!("   (document {id} not completed within 30 s)"),
        }
        if let Some(s) = starts.lock().unwrap().get(&id) {
            pickup.push(s.saturating_duration_since(committed));
        }
        tokio::time::sleep(settle).await;
    }
    let turns = proxy.client_turns() - turns0;
    w.stop().await;
    pickup.sort();
    e2e.sort();
    Lat {
        pickup,
        e2e,
        turns_per_doc: turns as f64 / n.max(1) as f64,
    }
}

struct Rate {
    docs_per_s: f64,
    claims: u64,
    claimed: u64,
    dry: Duration,
    prefetch: u64,
    turns_per_doc: f64,
    cpu_per_doc: Duration,
    /// CPU ticks of every part of the machine over the run.
    parts: HashMap<Part, u64>,
    done: u64,
}

/// Drains `docs` pre-filled 3-line sales (4 series) with `in_flight` documents in flight.
async fn throughput(
    d: &Daemon,
    c: &tokio_postgres::Client,
    proxy: &FaultProxy,
    sink: MikroSink,
    docs: usize,
    in_flight: Option<usize>,
    watch: Watch,
) -> Rate {
    reset(c).await;
    let mut sql = String::from("BEGIN;");
    for i in 0..docs {
        sql.push_str(&sale_sql(Uuid::new_v4(), 3, Some(&format!("B{}", i % 4))));
        if i % 100 == 99 {
            sql.push_str("COMMIT;BEGIN;");
        }
    }
    sql.push_str("COMMIT;");
    c.batch_execute(&sql).await.expect("prefill");
    c.batch_execute("VACUUM ANALYZE sync_queue, satislar, satis_kalemleri")
        .await
        .expect("vacuum");
    let pool = mikro_sync::db::web_pool(&d.url, 24).expect("pool");
    let sink = MikroSink {
        web: pool.clone(),
        ..sink
    };
    let metrics = Arc::new(Metrics::default());
    let defaults = WorkerOptions::default();
    let opts = WorkerOptions {
        concurrency: in_flight.unwrap_or(defaults.concurrency),
        prefetch: std::env::var("REMOTE_BENCH_PREFETCH")
            .ok()
            .and_then(|v| v.parse().ok())
            .or(defaults.prefetch),
        metrics: metrics.clone(),
        ..defaults
    };
    if watch.statements {
        // Counted from here: the prefill is not the daemon's work.
        c.batch_execute("SELECT pg_stat_statements_reset()")
            .await
            .expect("reset statements");
    }
    let all0 = cpu_sample(watch.postmaster);
    let (turns0, cpu0, t0) = (proxy.client_turns(), daemon_cpu(), Instant::now());
    let w = d.start(&pool, sink, opts);
    let deadline = t0 + Duration::from_secs(300);
    let target = docs as u64;
    while metrics.posted.load(Ordering::Relaxed) + metrics.failed.load(Ordering::Relaxed) < target
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let el = t0.elapsed();
    let (turns, cpu) = (proxy.client_turns() - turns0, daemon_cpu() - cpu0);
    // Before the worker stops: its web backends are still there to be read.
    let parts = cpu_delta(&all0, &cpu_sample(watch.postmaster));
    let done = metrics.posted.load(Ordering::Relaxed);
    w.stop().await;
    if done < target {
        eprintln!("   (only {done} of {docs} completed)");
    }
    let done = done.max(1);
    Rate {
        docs_per_s: done as f64 / el.as_secs_f64(),
        claims: metrics.claims.load(Ordering::Relaxed),
        claimed: metrics.claimed.load(Ordering::Relaxed),
        dry: Duration::from_micros(metrics.starved_micros.load(Ordering::Relaxed)),
        prefetch: metrics.prefetch.load(Ordering::Relaxed),
        turns_per_doc: turns as f64 / done as f64,
        cpu_per_doc: cpu / done as u32,
        parts,
        done,
    }
}

fn main() {
    // Named threads, so the CPU breakdown can tell the emulator (spawned by the harness on this
    // runtime) from the daemon's and the proxy's runtimes.
    tokio::runtime::Builder::new_multi_thread()
        .thread_name(EMULATOR_THREAD)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(bench());
}

async fn bench() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .try_init();
    let t_all = Instant::now();
    let settings = pg_settings();
    let h = Harness::start(HarnessOptions {
        pg_settings: settings.clone(),
        ..HarnessOptions::default()
    })
    .await
    .expect("harness");
    let direct_url = h.web_url();
    let c = connect(&direct_url).await;
    mikro_sync::setup::setup_web(&c).await.expect("setup web");
    {
        let mut erp = h.erp_client().await.expect("erp");
        mikro_sync::setup::setup_erp(&mut erp)
            .await
            .expect("setup erp");
    }
    let pg_addr = std::net::SocketAddr::from(([127, 0, 0, 1], h.pg().port()));
    let proxy_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(PROXY_THREAD)
        .enable_all()
        .build()
        .expect("proxy runtime");
    let proxy = proxy_rt
        .spawn(FaultProxy::start(pg_addr))
        .await
        .expect("proxy task")
        .expect("proxy");
    let watch = Watch {
        postmaster: postmaster_pid(&c).await,
        statements: statements_on(&c, &settings).await,
    };
    let daemon = Daemon::new(format!(
        "postgres://postgres@127.0.0.1:{}/web",
        proxy.port()
    ));
    let rtts = env_list("REMOTE_BENCH_RTTS", "0,10,30,60");
    let n = env_usize("REMOTE_BENCH_DOCS", 40);
    let docs = env_usize("REMOTE_BENCH_ERP_DOCS", 1500);
    // `d`: the defaults (None); a number: that concurrency.
    let flights: Vec<Option<usize>> = std::env::var("REMOTE_BENCH_IN_FLIGHT")
        .unwrap_or_else(|_| "d,16".into())
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().ok())
        .collect();
    let only = std::env::var("REMOTE_BENCH_ONLY").ok();
    let want = |s: u32| only.as_deref().is_none_or(|o| o.trim() == s.to_string());
    println!(
        "mikro-sync, web database far away ({} cores; web PostgreSQL behind a delaying proxy, ERP emulator local)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );
    let placeholder = mikro_sync::db::web_pool(&daemon.url, 1).expect("pool");
    let sink = daemon.sink(&placeholder, h.erp_ado(), 4).await;

    if want(1) {
        println!();
        println!("1. latency, one document (sale, 1 line) at a time into an idle worker [ms]");
        println!(
            "   {:>6} | {:>8} {:>8} | {:>8} {:>8} | {:>12} | {:>14}",
            "RTT", "pick p50", "p99", "e2e p50", "p99", "e2e p50/RTT", "web trips/doc"
        );
        for &rtt in &rtts {
            let rtt = Duration::from_millis(rtt);
            proxy.set_rtt(rtt);
            let l = latency(&daemon, &c, &proxy, sink.clone(), rtt, n).await;
            let per_rtt = if rtt.is_zero() {
                "-".to_string()
            } else {
                format!("{:.2}", pct(&l.e2e, 0.5).as_secs_f64() / rtt.as_secs_f64())
            };
            println!(
                "   {:>6} | {:>8} {:>8} | {:>8} {:>8} | {:>12} | {:>14.1}   (n={}; target e2e p50 <= {} ms)",
                format!("{} ms", rtt.as_millis()),
                ms(pct(&l.pickup, 0.5)),
                ms(pct(&l.pickup, 0.99)),
                ms(pct(&l.e2e, 0.5)),
                ms(pct(&l.e2e, 0.99)),
                per_rtt,
                l.turns_per_doc,
                l.e2e.len(),
                ms(rtt * 5 / 2 + Duration::from_millis(10)),
            );
        }
    }

    if want(2) {
        println!();
        println!(
            "2. documents/s ({docs} 3-line sales, 4 ERP connections, 4 series; target >= 500 at 30 ms)"
        );
        println!(
            "   {:>6} | {:>9} | {:>10} | {:>14} | {:>16}",
            "RTT", "in flight", "docs/s", "web trips/doc", "daemon CPU/doc"
        );
        for &rtt in &rtts {
            proxy.set_rtt(Duration::from_millis(rtt));
            for &flight in &flights {
                let r = throughput(&daemon, &c, &proxy, sink.clone(), docs, flight, watch).await;
                println!(
                    "   {:>6} | {:>9} | {:>10.0} | {:>14.2} | {:>13.0} µs",
                    format!("{rtt} ms"),
                    flight.map_or("d (4)".to_string(), |f| f.to_string()),
                    r.docs_per_s,
                    r.turns_per_doc,
                    r.cpu_per_doc.as_secs_f64() * 1e6
                );
                println!(
                    "          claims/doc {:.3}, rows/claim {:.1}, prefetch {}, dry {:.0} ms ({:.2} ms/doc)",
                    r.claims as f64 / r.done as f64,
                    r.claimed as f64 / r.claims.max(1) as f64,
                    r.prefetch,
                    r.dry.as_secs_f64() * 1e3,
                    r.dry.as_secs_f64() * 1e3 / r.done as f64
                );
                println!("          CPU/doc: {}", cpu_line(&r.parts, r.done));
                if watch.statements {
                    print_statements(&c, r.done).await;
                }
            }
        }
    }
    proxy.set_rtt(Duration::ZERO);
    println!();
    println!("total bench time {:.1} s", t_all.elapsed().as_secs_f64());
    daemon.rt.shutdown_background();
    drop(proxy);
    proxy_rt.shutdown_background();
}
