//! The web→ERP pipeline, measured end to end on this machine (prints; asserts nothing).
//!
//! `cargo bench -p mikro-sync --bench pipeline` — starts the harness (throwaway PostgreSQL with
//! the web schema + the ERP emulator), installs mikro-sync, then prints side by side:
//!
//! 1. pick-up latency (web COMMIT returned → the worker starts posting) and end-to-end latency
//!    (web COMMIT returned → ERP COMMIT done), p50/p95/p99, in notify mode and in poll-only mode
//!    (5 s poll, the old tool's design), one document at a time into an idle worker;
//! 2. queue throughput with the no-op sink (rows/s, claim + complete only);
//! 3. documents/s through the queue into the emulator with 1 and 4 ERP connections;
//! 4. web insert rate of 16 concurrent writers (sale header + 1 line per transaction): without
//!    the triggers, without and with the divergence triggers (edits after posting, issue 15),
//!    with a worker draining on the same cores (counting the NOTIFYs actually sent), the
//!    triggers' cost split into steps (an empty trigger, + the wake-up logic, + the row in
//!    `sync_queue_inbox`, + the divergence triggers), the line trigger's earlier designs (one
//!    probe per line; per statement with a transition table), the row written straight into
//!    `sync_queue` (the design before the inbox) and a naive per-row `pg_notify(id)` trigger for
//!    comparison, 3-line sales, and base vs triggers again with PostgreSQL's durable defaults.
//!
//! Sizes can be changed with PIPELINE_BENCH_DOCS (latency samples, default 300),
//! PIPELINE_BENCH_NOOP_ROWS (default 50000), PIPELINE_BENCH_ERP_DOCS (default 2000: fewer are dominated by warm-up),
//! PIPELINE_BENCH_INSERT_SECS (default 3), PIPELINE_BENCH_INSERT_ROUNDS (default 5: the medians of
//! section 4 swing by several points with 3 on a shared 2-core machine),
//! PIPELINE_BENCH_POLL_DOCS (default 20); PIPELINE_BENCH_ONLY=4 (or 1,3 …) runs only those sections;
//! PIPELINE_BENCH_ERP_CONFIGS=4:4:1 (connections:in flight:series, comma-separated) only those
//! configurations of section 3 (and not its direct-loop reference);
//! PIPELINE_BENCH_BALANCE_AB=2 runs section 3 as rounds with and without the sale balance check.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mikro_emulator::harness::{Harness, HarnessOptions};
use mikro_sync::db::WebPool;
use mikro_sync::posting::{DocKind, PostError, Posted, PostingConfig};
use mikro_sync::queue::{
    Job, Metrics, MikroSink, NoopSink, PgListenConnector, Sink, Worker, WorkerOptions, WorkerReport,
};
use mikro_sync::shutdown::ShutdownController;
use uuid::Uuid;

const CARI: &str = "c0000000-0000-4000-8000-000000000001";
const STOK: &str = "b0000000-0000-4000-8000-000000000001";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// PIPELINE_BENCH_PG_SETTINGS=`name=value;name=value` for the throwaway cluster. With
/// `shared_preload_libraries=pg_stat_statements` the bench ends with the statements that took
/// the most time in both databases (web and the emulator's backing `erp`).
fn pg_settings() -> Vec<(String, String)> {
    std::env::var("PIPELINE_BENCH_PG_SETTINGS")
        .unwrap_or_default()
        .split(';')
        .filter(|kv| !kv.trim().is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => panic!("PIPELINE_BENCH_PG_SETTINGS: `{kv}` is not name=value"),
        })
        .collect()
}

/// Prints the top statements of pg_stat_statements, if the cluster loaded it (`settings`: what
/// it was started with).
async fn print_top_statements(url: &str, settings: &[(String, String)]) {
    if !settings
        .iter()
        .any(|(k, v)| k == "shared_preload_libraries" && v.contains("pg_stat_statements"))
    {
        return;
    }
    let c = connect(url).await;
    c.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .await
        .expect("pg_stat_statements");
    let rows = c
        .query(
            "SELECT d.datname, s.calls, s.total_exec_time, s.total_plan_time, s.plans, s.rows, \
                    left(regexp_replace(s.query, '\\s+', ' ', 'g'), 160) \
               FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid \
              ORDER BY s.total_exec_time + s.total_plan_time DESC LIMIT 25",
            &[],
        )
        .await
        .expect("top statements");
    println!();
    println!(
        "top statements (pg_stat_statements): db, calls, exec ms, plan ms, plans, rows, query"
    );
    for r in rows {
        let (db, calls, exec, plan, plans, n, q): (String, i64, f64, f64, i64, i64, String) = (
            r.get(0),
            r.get(1),
            r.get(2),
            r.get(3),
            r.get(4),
            r.get(5),
            r.get(6),
        );
        println!("   {db:4} {calls:7} {exec:9.1} {plan:8.1} {plans:6} {n:8}  {q}");
    }
}

/// Section 3's configurations (ERP connections, documents in flight, series).
/// PIPELINE_BENCH_ERP_CONFIGS=4:4:1 (or `1:1:1,4:8:4`) runs only those, e.g. under `perf`.
fn erp_configs() -> Vec<(u32, usize, usize)> {
    let default = vec![(1, 1, 1), (1, 4, 1), (4, 4, 1), (4, 8, 1), (4, 8, 4)];
    let Ok(spec) = std::env::var("PIPELINE_BENCH_ERP_CONFIGS") else {
        return default;
    };
    let parsed: Option<Vec<_>> = spec
        .split(',')
        .map(|c| {
            let mut it = c.trim().split(':').map(|n| n.parse::<usize>().ok());
            match (it.next()??, it.next()??, it.next()??, it.next()) {
                (conns, flight, series, None) if conns > 0 && flight > 0 && series > 0 => {
                    Some((u32::try_from(conns).ok()?, flight, series))
                }
                _ => None,
            }
        })
        .collect();
    parsed.unwrap_or_else(|| {
        panic!("PIPELINE_BENCH_ERP_CONFIGS={spec}: expected e.g. 4:4:1,4:8:4 (connections:in flight:series)")
    })
}

async fn connect(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect web");
    tokio::spawn(conn);
    c
}

/// Per document: when posting started and (if it succeeded) ended.
type Times = Arc<Mutex<HashMap<Uuid, (Instant, Option<Instant>)>>>;

/// Records when posting of each document started and ended.
#[derive(Clone)]
struct TimingSink<S> {
    inner: S,
    times: Times,
}

impl<S: Sink> Sink for TimingSink<S> {
    async fn post(&self, job: &Job) -> Result<Posted, PostError> {
        let t0 = Instant::now();
        self.times.lock().unwrap().insert(job.entity_id, (t0, None));
        let r = self.inner.post(job).await;
        if r.is_ok() {
            let t1 = Instant::now();
            self.times
                .lock()
                .unwrap()
                .insert(job.entity_id, (t0, Some(t1)));
        }
        r
    }

    fn documents(&self) -> Option<&PostingConfig> {
        self.inner.documents()
    }
}

struct Running {
    ctl: ShutdownController,
    handle: tokio::task::JoinHandle<WorkerReport>,
}

impl Running {
    async fn stop(self) -> WorkerReport {
        self.ctl.trigger();
        self.handle.await.expect("worker task")
    }
}

fn start_worker<S: Sink>(
    pool: &WebPool,
    url: &str,
    sink: S,
    opts: WorkerOptions,
    listen: bool,
) -> Running {
    let ctl = ShutdownController::new();
    let sd = ctl.subscribe();
    let w = if listen {
        let l = Arc::new(PgListenConnector::from_url_notls(url).expect("url"));
        Worker::new(pool.clone(), l, sink, opts)
    } else {
        Worker::new_poll_only(pool.clone(), sink, opts)
    };
    let handle = tokio::spawn(async move { w.run(sd).await.expect("worker") });
    Running { ctl, handle }
}

fn sale_sql(id: Uuid, lines: usize) -> String {
    let mut sql = format!(
        "INSERT INTO satislar (id, cari_hesap_id, odeme_sekli, ara_toplam, kdv_tutari, toplam_tutar) \
         VALUES ('{id}', '{CARI}', 'vadeli', {a}, {k}, {t});",
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

/// `n` 3-line sales in transactions of 100 (enqueued by the trigger). With `series` > 1 the
/// sales carry their own series (`fatura_seri_no` B0, B1, … in turn, as a shop with several
/// branches has), so their numbering is serialised per series, not all behind one lock.
fn prefill_sales(n: usize, series: usize) -> String {
    let mut sql = String::from("BEGIN;");
    for i in 0..n {
        let id = Uuid::new_v4();
        sql.push_str(&sale_sql(id, 3));
        if series > 1 {
            sql.push_str(&format!(
                "UPDATE satislar SET fatura_seri_no = 'B{}' WHERE id = '{id}';",
                i % series
            ));
        }
        if i % 100 == 99 {
            sql.push_str("COMMIT;BEGIN;");
        }
    }
    sql.push_str("COMMIT;");
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
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

struct Lat {
    pickup: Vec<Duration>,
    e2e: Vec<Duration>,
}

/// Inserts `n` one-line sales, one transaction each, `gap` apart (waiting for the previous to be
/// posted when `wait_each`), and returns the latencies measured from each COMMIT's return.
async fn latency_run<S: Sink + Clone>(
    env: &Env,
    sink: S,
    listen: bool,
    n: usize,
    gap: Duration,
    wait_each: bool,
) -> Lat {
    let times = Arc::new(Mutex::new(HashMap::new()));
    let timing = TimingSink {
        inner: sink,
        times: times.clone(),
    };
    let opts = WorkerOptions {
        concurrency: 4,
        ..WorkerOptions::default()
    };
    let w = start_worker(&env.pool, &env.url, timing, opts, listen);
    tokio::time::sleep(Duration::from_millis(300)).await; // let it reach idle
    let c = connect(&env.url).await;
    let mut commits = Vec::with_capacity(n);
    for _ in 0..n {
        let id = Uuid::new_v4();
        let sql = format!("BEGIN;{}COMMIT;", sale_sql(id, 1));
        c.batch_execute(&sql).await.expect("insert");
        commits.push((id, Instant::now()));
        if wait_each {
            while !matches!(times.lock().unwrap().get(&id), Some((_, Some(_)))) {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        tokio::time::sleep(gap).await;
    }
    // Wait for all.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let done = {
            let t = times.lock().unwrap();
            commits
                .iter()
                .all(|(id, _)| matches!(t.get(id), Some((_, Some(_)))))
        };
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    w.stop().await;
    let t = times.lock().unwrap();
    let mut pickup = Vec::new();
    let mut e2e = Vec::new();
    for (id, committed) in &commits {
        if let Some((start, end)) = t.get(id) {
            pickup.push(start.saturating_duration_since(*committed));
            if let Some(end) = end {
                e2e.push(end.saturating_duration_since(*committed));
            }
        }
    }
    pickup.sort();
    e2e.sort();
    Lat { pickup, e2e }
}

struct Env {
    h: Harness,
    url: String,
    pool: WebPool,
}

impl Env {
    async fn mikro_sink(&self, conns: u32) -> MikroSink {
        self.mikro_sink_with(conns, PostingConfig::default()).await
    }

    async fn mikro_sink_with(&self, conns: u32, cfg: PostingConfig) -> MikroSink {
        MikroSink {
            web: self.pool.clone(),
            erp: mikro_sync::db::erp_pool(&self.h.erp_ado(), conns)
                .await
                .expect("erp pool"),
            cfg,
        }
    }

    async fn reset(&self) {
        let c = connect(&self.url).await;
        c.batch_execute(
            "TRUNCATE sync_queue; TRUNCATE satislar CASCADE; TRUNCATE tahsilatlar CASCADE;",
        )
        .await
        .expect("truncate");
    }
}

/// Section 3 with and without the sale balance check (PIPELINE_BENCH_BALANCE_AB=rounds, default
/// 2), alternating in every round (the order flips each round), for each configuration of
/// [`erp_configs`]: what the check alone costs in documents/s.
async fn balance_ab(env: &Env) {
    let rounds = std::env::var("PIPELINE_BENCH_BALANCE_AB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(2)
        .max(1);
    let erp_docs = env_usize("PIPELINE_BENCH_ERP_DOCS", 2000);
    println!();
    println!(
        "3. documents/s into the emulator (3-line sales), with and without the balance check, \
         {rounds} alternating rounds of {erp_docs} documents"
    );
    for (conns, concurrency, series) in erp_configs() {
        let mut with = Vec::new();
        let mut without = Vec::new();
        for round in 0..rounds {
            let order = if round % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            };
            for skip in order {
                env.reset().await;
                let c = connect(&env.url).await;
                c.batch_execute(&prefill_sales(erp_docs, series))
                    .await
                    .expect("prefill sales");
                let cfg = PostingConfig {
                    skip_balance_check: skip,
                    ..PostingConfig::default()
                };
                let sink = env.mikro_sink_with(conns, cfg).await;
                let opts = WorkerOptions {
                    concurrency,
                    ..WorkerOptions::default()
                };
                let r = drain_rate(env, sink, erp_docs as u64, opts).await;
                if skip { &mut without } else { &mut with }.push(r);
            }
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let runs = |v: &[f64]| {
            v.iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (w, wo) = (runs(&with), runs(&without));
        let (mw, mwo) = (med(&mut with), med(&mut without));
        println!(
            "   {conns} conn, {concurrency} in flight, {series} series: without the check {mwo:.0} \
             docs/s [{wo}], with it {mw:.0} docs/s [{w}]: ratio {:.3}",
            mw / mwo
        );
    }
}

/// Drains `rows` pre-filled rows through a worker; rows/s.
async fn drain_rate<S: Sink>(env: &Env, sink: S, rows: u64, opts: WorkerOptions) -> f64 {
    let metrics = Arc::new(Metrics::default());
    let opts = WorkerOptions {
        metrics: metrics.clone(),
        ..opts
    };
    let t0 = Instant::now();
    let w = start_worker(&env.pool, &env.url, sink, opts, true);
    let deadline = t0 + Duration::from_secs(120);
    while metrics.posted.load(Ordering::Relaxed) + metrics.failed.load(Ordering::Relaxed) < rows
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let el = t0.elapsed();
    let done = metrics.posted.load(Ordering::Relaxed);
    w.stop().await;
    if done < rows {
        eprintln!("  (only {done} of {rows} completed)");
    }
    done as f64 / el.as_secs_f64()
}

/// How the benchmark's web writers talk to PostgreSQL.
#[derive(Clone, Copy)]
enum Writer {
    /// `BEGIN; INSERT …; INSERT …; COMMIT;` as one simple-protocol message: the cheapest client
    /// there is, so the triggers' share of the work is as large as it gets.
    OneRoundTrip,
    /// Prepared, parameterised statements, one round trip each (BEGIN, header, line, COMMIT):
    /// how an application driver / ORM (node-postgres, Prisma, sqlx) writes a sale.
    Driver,
}

/// `writers` writers for `secs`, one sale (header + `lines` lines) per transaction; tx/s.
async fn insert_rate(url: &str, writers: usize, secs: u64, mode: Writer, lines: usize) -> f64 {
    insert_rate_cpu(url, writers, secs, mode, lines, None)
        .await
        .0
}

/// [`insert_rate`], and with the cluster's postmaster pid also PostgreSQL's CPU per transaction
/// (µs), taken while the writers' backends are alive.
async fn insert_rate_cpu(
    url: &str,
    writers: usize,
    secs: u64,
    mode: Writer,
    lines: usize,
    postmaster: Option<u32>,
) -> (f64, Option<f64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let mut c = connect(url).await;
        let stop = stop.clone();
        let count = count.clone();
        tasks.push(tokio::spawn(async move {
            let header = c
                .prepare(
                    "INSERT INTO satislar (id, cari_hesap_id, odeme_sekli, ara_toplam, kdv_tutari, toplam_tutar) \
                     VALUES ($1, $2, 'vadeli', 100, 20, 120)",
                )
                .await
                .expect("prepare");
            let line = c
                .prepare(
                    "INSERT INTO satis_kalemleri (satis_id, stok_id, miktar, birim_fiyat, kdv_orani, kdv_tutari, toplam_tutar, sira_no) \
                     VALUES ($1, $2, 1, 100, 20, 20, 120, $3)",
                )
                .await
                .expect("prepare");
            let cari: Uuid = CARI.parse().expect("uuid");
            let stok: Uuid = STOK.parse().expect("uuid");
            while !stop.load(Ordering::Relaxed) {
                match mode {
                    Writer::OneRoundTrip => {
                        let sql = format!("BEGIN;{}COMMIT;", sale_sql(Uuid::new_v4(), lines));
                        c.batch_execute(&sql).await.expect("insert");
                    }
                    Writer::Driver => {
                        let id = Uuid::new_v4();
                        let tx = c.transaction().await.expect("begin");
                        tx.execute(&header, &[&id, &cari]).await.expect("header");
                        for i in 0..lines as i32 {
                            tx.execute(&line, &[&id, &stok, &i]).await.expect("line");
                        }
                        tx.commit().await.expect("commit");
                    }
                }
                count.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let t0 = Instant::now();
    let cpu0 = cluster_cpu_us(postmaster);
    let n0 = count.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let cpu1 = cluster_cpu_us(postmaster);
    let n1 = count.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let n = count.load(Ordering::Relaxed);
    let el = t0.elapsed();
    for t in tasks {
        let _ = t.await;
    }
    let cpu = cpu0
        .zip(cpu1)
        .filter(|_| n1 > n0)
        .map(|(a, b)| (b - a) as f64 / (n1 - n0) as f64);
    (n as f64 / el.as_secs_f64(), cpu)
}

const NAIVE_TRIGGER: &str = "
CREATE OR REPLACE FUNCTION mikro_sync_enqueue_satis() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sync_queue (entity_type, entity_id, operation) VALUES ('satis', NEW.id, 'insert')
    ON CONFLICT (entity_type, entity_id) WHERE status IN ('pending', 'processing') DO NOTHING;
    PERFORM pg_notify('mikro_sync_queue', NEW.id::text);
    RETURN NULL;
END $$;";

/// The INSERT of mikro-sync's enqueue function for sales (sql/web/005_triggers.sql), which the variants
/// below remove or replace; the variants are built from the installed text, so they measure
/// exactly that function minus or plus one part.
const ENQUEUE_ROW: &str = "    INSERT INTO sync_queue_inbox (entity_type, entity_id, operation)
    VALUES ('satis', NEW.id, 'insert');
";

/// The part of the enqueue function that serves the line divergence trigger (it names the sale
/// the transaction inserted, so the lines written with it skip their probe).
const MARK_SALE: &str =
    "    -- An assignment, not PERFORM: plpgsql evaluates it without the SQL executor.
    v_set := set_config('mikro_sync.new_sale', NEW.id::text, true);
";

/// The line INSERT trigger's fast path for lines written with their sale.
const LINE_FAST_PATH: &str =
    "    IF NEW.satis_id::text = current_setting('mikro_sync.new_sale', true) THEN
        RETURN NULL;
    END IF;
";

/// The text of `CREATE OR REPLACE FUNCTION <name>` in web install file `file`, checked to
/// contain `part` (which the variants below remove or replace).
fn installed_function(file: usize, name: &str, part: &str) -> String {
    let sql = mikro_sync::setup::WEB_MIGRATIONS[file].sql;
    let start = sql
        .find(&format!("CREATE OR REPLACE FUNCTION {name}()"))
        .unwrap_or_else(|| panic!("{name} in {}", mikro_sync::setup::WEB_MIGRATIONS[file].name));
    let end = start + sql[start..].find("$$;").expect("end of function") + 3;
    let f = sql[start..end].to_string();
    assert!(
        f.contains(part),
        "{name} changed: update the bench's copy of {part:?}"
    );
    f
}

/// mikro-sync's `mikro_sync_enqueue_satis()` as installed by setup, without [`MARK_SALE`]: the
/// enqueue trigger alone, as before edits after posting were detected.
fn enqueue_function() -> String {
    installed_function(4, "mikro_sync_enqueue_satis", MARK_SALE).replace(MARK_SALE, "")
}

/// The line INSERT trigger as first built: one primary-key probe of the sale per line
/// (`mikro_sync_line_added` without [`LINE_FAST_PATH`]).
fn probing_line_function() -> String {
    installed_function(5, "mikro_sync_line_added", LINE_FAST_PATH).replace(LINE_FAST_PATH, "")
}

/// The alternative the issue suggested for the line INSERT path: one statement-level trigger
/// with a transition table, joined to the posted sales (only detecting, for the cost).
const STATEMENT_LINE_TRIGGER: &str = "
CREATE OR REPLACE FUNCTION mikro_sync_bench_lines_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM n JOIN satislar h ON h.id = n.satis_id WHERE h.fatura_sira_no IS NOT NULL;
    RETURN NULL;
END $$;
CREATE TRIGGER mikro_sync_bench_lines_added AFTER INSERT ON satis_kalemleri
    REFERENCING NEW TABLE AS n FOR EACH STATEMENT EXECUTE FUNCTION mikro_sync_bench_lines_added();";

/// mikro-sync's trigger function without its queue row: only the kaynak/origin checks and the
/// notify decision, to split the triggers' cost into "wake-up logic" and "the queue row".
fn notify_only_trigger() -> String {
    enqueue_function().replace(ENQUEUE_ROW, "")
}

/// mikro-sync's trigger function writing its row straight into `sync_queue` (with its three
/// indexes, its CHECK and `ON CONFLICT` for the one-open-row rule) instead of the index-less
/// inbox: the design before the inbox, kept for comparison.
fn direct_row_trigger() -> String {
    enqueue_function().replace(
        ENQUEUE_ROW,
        "    INSERT INTO sync_queue (entity_type, entity_id, operation)
    VALUES ('satis', NEW.id, 'insert')
    ON CONFLICT (entity_type, entity_id) WHERE status IN ('pending', 'processing') DO NOTHING;
",
    )
}

/// An AFTER INSERT trigger whose plpgsql function does nothing: what any row trigger costs the
/// web app before it does any work (the first step of section 4's cost breakdown).
const EMPTY_TRIGGER: &str = "
CREATE OR REPLACE FUNCTION mikro_sync_enqueue_satis() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RETURN NULL;
END $$;";

/// Counts the notifications delivered on `mikro_sync_queue` while it lives (a second listener
/// beside the worker's), to show how many web transactions actually paid for a NOTIFY.
struct NotifyCounter {
    count: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
    _client: tokio_postgres::Client,
}

impl NotifyCounter {
    async fn start(url: &str) -> Self {
        use futures::StreamExt;
        let (client, mut conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect listener");
        let count = Arc::new(AtomicU64::new(0));
        let n = count.clone();
        let task = tokio::spawn(async move {
            let mut stream = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
            while let Some(Ok(m)) = stream.next().await {
                if matches!(m, tokio_postgres::AsyncMessage::Notification(_)) {
                    n.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        client
            .batch_execute("LISTEN mikro_sync_queue")
            .await
            .expect("listen");
        NotifyCounter {
            count,
            task,
            _client: client,
        }
    }
}

/// A listening worker with the no-op sink, given 300 ms to LISTEN and go idle.
async fn listening_noop_worker(env: &Env) -> Running {
    let w = start_worker(
        &env.pool,
        &env.url,
        NoopSink,
        WorkerOptions::default(),
        true,
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    w
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn spread(v: &[f64]) -> String {
    let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = v.iter().cloned().fold(0.0, f64::max);
    format!("{lo:.0}..{hi:.0}")
}

/// The postmaster of the cluster `c` is connected to (the parent of its backend).
async fn postmaster_pid(c: &tokio_postgres::Client) -> Option<u32> {
    let pid: i32 = c
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .expect("pid")
        .get(0);
    proc_stat(pid as u32).map(|(ppid, _)| ppid)
}

/// (parent pid, user + system CPU in clock ticks) from /proc/<pid>/stat; None off Linux.
fn proc_stat(pid: u32) -> Option<(u32, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let f: Vec<&str> = s.get(s.rfind(')')? + 2..)?.split(' ').collect();
    Some((
        f.get(1)?.parse().ok()?,
        f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
    ))
}

/// The runs of one variant of section 4: tx/s, and PostgreSQL's CPU per transaction (µs)
/// where it could be read.
#[derive(Default)]
struct Runs {
    tps: Vec<f64>,
    cpu: Vec<f64>,
}

impl Runs {
    fn add(&mut self, (tps, cpu): (f64, Option<f64>)) {
        self.tps.push(tps);
        self.cpu.extend(cpu);
    }
}

/// CPU time used so far by the postmaster and its live children, in µs.
///
/// Why: a second view of the triggers' cost next to tx/s, which swings ±20 % from one minute
/// to the next on this shared VM. It turned out about as noisy (the CPU speed itself varies),
/// but it shows what the triggers add per transaction. A child that exited during the run (an
/// autovacuum worker) is missed; the writers' backends live through the whole run.
fn cluster_cpu_us(postmaster: Option<u32>) -> Option<u64> {
    let pm = postmaster?;
    let mut ticks = proc_stat(pm)?.1;
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) {
            if let Some((ppid, t)) = proc_stat(pid) {
                if ppid == pm {
                    ticks += t;
                }
            }
        }
    }
    // Linux reports in USER_HZ, 100 per second on every mainstream architecture.
    Some(ticks * 10_000)
}

/// Prints PostgreSQL's CPU per transaction without and with the triggers (medians) and their
/// ratio: the insert rate the triggers leave when PostgreSQL's CPU is the limit.
fn print_cpu(base: &Runs, trig: &Runs) {
    let (base, trig) = (&base.cpu, &trig.cpu);
    if base.is_empty() || trig.is_empty() {
        return;
    }
    let (b, t) = (median(&mut base.clone()), median(&mut trig.clone()));
    println!(
        "      PostgreSQL CPU per transaction          {b:>5.0} -> {t:.0} µs  {:>3.0} %  [{} -> {}]  (without -> with triggers: the rate they leave when CPU-bound)",
        100.0 * b / t,
        spread(base),
        spread(trig)
    );
}

/// Section 4: the web app's write path with and without mikro-sync's triggers.
///
/// Rounds interleave the variants (base, triggers without a worker, triggers with a draining
/// worker, the trigger designs compared) so a noisy neighbour hits them alike; medians are
/// printed with the range. Every run installs its variant first; the installed triggers are put
/// back at the end. The last block repeats base vs triggers with PostgreSQL's durable defaults
/// (fsync, synchronous_commit, full_page_writes on), the configuration a real web database runs.
async fn insert_section(env: &Env) {
    let secs = env_usize("PIPELINE_BENCH_INSERT_SECS", 3) as u64;
    let rounds = env_usize("PIPELINE_BENCH_INSERT_ROUNDS", 5).max(1);
    let writers = 16;
    let c = connect(&env.url).await;
    let postmaster = postmaster_pid(&c).await;
    let migration = |i: usize| mikro_sync::setup::WEB_MIGRATIONS[i].sql;
    // The variants, each as the SQL that installs it. "mikro-sync triggers" = the enqueue
    // trigger and the line INSERT trigger (satis_kalemi_added_trigger, sql/web/006_divergence.sql),
    // the only one of ours on the INSERT path of satis_kalemleri.
    let install = |enqueue: &str, line: Option<&str>, extra: &str| {
        format!(
            "DROP TRIGGER IF EXISTS mikro_sync_bench_lines_added ON satis_kalemleri;
             ALTER TABLE satislar ENABLE TRIGGER satis_sync_trigger;
             ALTER TABLE satis_kalemleri {} TRIGGER satis_kalemi_added_trigger;
             {enqueue}
             {}
             {extra}",
            if line.is_some() { "ENABLE" } else { "DISABLE" },
            line.unwrap_or_default()
        )
    };
    let base_sql = "DROP TRIGGER IF EXISTS mikro_sync_bench_lines_added ON satis_kalemleri;
         ALTER TABLE satislar DISABLE TRIGGER satis_sync_trigger;
         ALTER TABLE satis_kalemleri DISABLE TRIGGER satis_kalemi_added_trigger"
        .to_string();
    let installed = format!("{};{}", install(migration(4), Some(""), ""), migration(5));
    let enqueue_alone = install(&enqueue_function(), None, "");
    let probing = install(&enqueue_function(), Some(&probing_line_function()), "");
    let statement = install(&enqueue_function(), None, STATEMENT_LINE_TRIGGER);
    let empty = install(EMPTY_TRIGGER, None, "");
    let notify_only = install(&notify_only_trigger(), None, "");
    let direct_row = install(&direct_row_trigger(), None, "");
    // One run: reset, install; tx/s and PostgreSQL's CPU per transaction (µs).
    let run = |sql: &str, mode: Writer, lines: usize| {
        let c = &c;
        let sql = sql.to_string();
        async move {
            env.reset().await;
            c.batch_execute(&sql).await.unwrap();
            insert_rate_cpu(&env.url, writers, secs, mode, lines, postmaster).await
        }
    };
    let tps = |r: (f64, Option<f64>)| r.0;
    // Every variant's runs: tx/s and PostgreSQL's CPU per transaction.
    let mut v: HashMap<&str, Runs> = HashMap::new();
    let mut worker = Vec::new();
    let (mut posted, mut txs, mut notifies) = (0u64, 0f64, 0u64);
    for _ in 0..rounds {
        for (key, sql, mode, lines) in [
            ("base", &base_sql, Writer::OneRoundTrip, 1),
            ("alone", &enqueue_alone, Writer::OneRoundTrip, 1),
            ("installed", &installed, Writer::OneRoundTrip, 1),
            ("empty", &empty, Writer::OneRoundTrip, 1),
            ("notify", &notify_only, Writer::OneRoundTrip, 1),
            ("direct", &direct_row, Writer::OneRoundTrip, 1),
            ("d base", &base_sql, Writer::Driver, 1),
            ("d alone", &enqueue_alone, Writer::Driver, 1),
            ("d installed", &installed, Writer::Driver, 1),
            ("d probing", &probing, Writer::Driver, 1),
            ("d statement", &statement, Writer::Driver, 1),
            ("3 base", &base_sql, Writer::Driver, 3),
            ("3 alone", &enqueue_alone, Writer::Driver, 3),
            ("3 installed", &installed, Writer::Driver, 3),
            ("3 probing", &probing, Writer::Driver, 3),
        ] {
            let r = run(sql, mode, lines).await;
            v.entry(key).or_default().add(r);
        }
        env.reset().await;
        c.batch_execute(&installed).await.unwrap();
        let w = listening_noop_worker(env).await;
        let counter = NotifyCounter::start(&env.url).await;
        let r = insert_rate(&env.url, writers, secs, Writer::OneRoundTrip, 1).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        notifies += counter.count.load(Ordering::Relaxed);
        counter.task.abort();
        worker.push(r);
        txs += r * secs as f64;
        posted += w.stop().await.posted;
    }
    // A naive per-row pg_notify(id) trigger, for comparison.
    env.reset().await;
    c.batch_execute(&install(NAIVE_TRIGGER, None, ""))
        .await
        .unwrap();
    let w = listening_noop_worker(env).await;
    let naive = insert_rate(&env.url, writers, secs, Writer::OneRoundTrip, 1).await;
    w.stop().await;
    // PostgreSQL's durable defaults (the harness runs with them off for speed).
    for sql in [
        "ALTER SYSTEM SET fsync = on",
        "ALTER SYSTEM SET synchronous_commit = on",
        "ALTER SYSTEM SET full_page_writes = on",
        "SELECT pg_reload_conf()",
    ] {
        c.batch_execute(sql).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let durable_base = tps(run(&base_sql, Writer::Driver, 1).await);
    let durable_trig = tps(run(&installed, Writer::Driver, 1).await);
    for sql in [
        "ALTER SYSTEM RESET fsync",
        "ALTER SYSTEM RESET synchronous_commit",
        "ALTER SYSTEM RESET full_page_writes",
        "SELECT pg_reload_conf()",
    ] {
        c.batch_execute(sql).await.unwrap();
    }
    c.batch_execute(&installed).await.unwrap();
    let pc = |v: f64, b: f64| 100.0 * v / b;
    let med = |v: &[f64]| median(&mut v.to_vec());
    let runs = |key: &str| v.get(key).expect("variant ran");
    let (base_m, db, b3) = (
        med(&runs("base").tps),
        med(&runs("d base").tps),
        med(&runs("3 base").tps),
    );
    println!();
    println!(
        "4. web insert rate, {writers} concurrent writers, one sale (header + lines) per transaction, \
         {secs} s per run, median of {rounds} interleaved rounds [range], PostgreSQL's CPU per \
         transaction (median); target: triggers keep >= 80 %"
    );
    // One line of a variant: median tx/s, share of `of`, range, CPU per transaction, what it is.
    let line = |name: &str, key: &str, of: f64, what: &str| {
        let r = runs(key);
        let m = med(&r.tps);
        let cpu = if r.cpu.is_empty() {
            String::new()
        } else {
            format!("  {:>4.0} µs", med(&r.cpu))
        };
        println!(
            "      {name:<38} {m:>8.0} tx/s  {:>3.0} %  [{}]{cpu}{}",
            pc(m, of),
            spread(&r.tps),
            if what.is_empty() {
                String::new()
            } else {
                format!("  ({what})")
            }
        );
    };
    println!(
        "   a) 1-line sales, each transaction sent as one message (BEGIN; INSERT; INSERT; COMMIT;)"
    );
    line("without triggers", "base", base_m, "");
    line(
        "without the divergence triggers",
        "alone",
        base_m,
        "the enqueue trigger alone: before edits were detected",
    );
    line(
        "with the divergence triggers",
        "installed",
        base_m,
        "= mikro-sync triggers, as installed",
    );
    print_cpu(runs("base"), runs("installed"));
    println!("      where the triggers' cost goes (each step adds to the one above):");
    line(
        "  an empty AFTER INSERT trigger",
        "empty",
        base_m,
        "the trigger call alone",
    );
    line(
        "  + kaynak/origin checks, wake-up logic",
        "notify",
        base_m,
        "mikro-sync's trigger without its queue row",
    );
    line(
        "  + its row, in sync_queue_inbox",
        "alone",
        base_m,
        "= without the divergence triggers",
    );
    line(
        "  + the divergence triggers",
        "installed",
        base_m,
        "= with them; on INSERT only the line trigger works",
    );
    line(
        "the row straight into sync_queue",
        "direct",
        base_m,
        "its indexes, CHECK, ON CONFLICT: the design before the inbox",
    );
    let wk = med(&worker);
    println!(
        "      triggers + worker draining, same cores {wk:>8.0} tx/s  {:>3.0} %  [{}]  (worker completed {posted} rows; {notifies} NOTIFYs for {txs:.0} transactions)",
        pc(wk, base_m),
        spread(&worker)
    );
    println!(
        "      naive per-row pg_notify(id) + worker   {naive:>8.0} tx/s  {:>3.0} %  (for comparison)",
        pc(naive, base_m)
    );
    println!("   b) prepared statements, one round trip each (BEGIN, header, line(s), COMMIT), 1-line sales:");
    line("without triggers", "d base", db, "");
    line(
        "without the divergence triggers",
        "d alone",
        db,
        "the enqueue trigger alone",
    );
    line(
        "with the divergence triggers",
        "d installed",
        db,
        "as installed: lines written with their sale skip the probe",
    );
    print_cpu(runs("d base"), runs("d installed"));
    println!("      the line trigger's INSERT path as designed before (with the enqueue trigger):");
    line(
        "  one probe of the sale per line",
        "d probing",
        db,
        "as first built",
    );
    line(
        "  per statement, transition table",
        "d statement",
        db,
        "joined to satislar; no line trigger",
    );
    println!("   c) prepared statements, 3-line sales:");
    line("without triggers", "3 base", b3, "");
    line("without the divergence triggers", "3 alone", b3, "");
    line(
        "with the divergence triggers",
        "3 installed",
        b3,
        "as installed",
    );
    line(
        "  one probe of the sale per line",
        "3 probing",
        b3,
        "as first built",
    );
    println!(
        "   d) 1-line sales, durable PostgreSQL (fsync, synchronous_commit on): {durable_base:.0} -> {durable_trig:.0} tx/s = {:.0} %",
        pc(durable_trig, durable_base)
    );
}

#[tokio::main]
async fn main() {
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
        ..Default::default()
    })
    .await
    .expect("harness");
    let url = h.web_url();
    let pool = mikro_sync::db::web_pool(&url, 24).expect("pool");
    {
        let c = connect(&url).await;
        mikro_sync::setup::setup_web(&c).await.expect("setup web");
        let mut erp = h.erp_client().await.expect("erp");
        mikro_sync::setup::setup_erp(&mut erp)
            .await
            .expect("setup erp");
    }
    let env = Env { h, url, pool };
    println!(
        "mikro-sync pipeline benchmark ({} cores; throwaway PostgreSQL + ERP emulator)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    // PIPELINE_BENCH_ONLY=4 (or 1,3 ...) runs only the listed sections.
    let only = std::env::var("PIPELINE_BENCH_ONLY").ok();
    let want = |n: u32| {
        only.as_deref()
            .is_none_or(|s| s.split(',').any(|x| x.trim() == n.to_string()))
    };

    if want(1) {
        // 1. Latency.
        let n = env_usize("PIPELINE_BENCH_DOCS", 300);
        let poll_n = env_usize("PIPELINE_BENCH_POLL_DOCS", 20);
        let sink = env.mikro_sink(4).await;
        // The gap exceeds the worker's linger (20 ms), so every document meets an idle worker.
        let gap = Duration::from_millis(25);
        let notify = latency_run(&env, sink.clone(), true, n, gap, true).await;
        let notify_noop = latency_run(&env, NoopSink, true, n, gap, true).await;
        let poll = latency_run(
            &env,
            sink.clone(),
            false,
            poll_n,
            Duration::from_millis(250),
            false,
        )
        .await;
        println!();
        println!("1. latency, one document (sale, 1 line) at a time into an idle worker [ms]");
        println!(
            "   {:<34} {:>7} {:>7} {:>7} | {:>7} {:>7} {:>7}",
            "mode", "pick p50", "p95", "p99", "e2e p50", "p95", "p99"
        );
        for (name, l) in [
            ("notify, emulator (MikroSink)", &notify),
            ("notify, no-op sink", &notify_noop),
            ("poll-only 5 s, emulator", &poll),
        ] {
            println!(
                "   {:<34} {:>8} {:>7} {:>7} | {:>7} {:>7} {:>7}   (n={})",
                name,
                ms(pct(&l.pickup, 0.5)),
                ms(pct(&l.pickup, 0.95)),
                ms(pct(&l.pickup, 0.99)),
                ms(pct(&l.e2e, 0.5)),
                ms(pct(&l.e2e, 0.95)),
                ms(pct(&l.e2e, 0.99)),
                l.pickup.len()
            );
        }
        let ratio =
            pct(&poll.pickup, 0.5).as_secs_f64() / pct(&notify.pickup, 0.5).as_secs_f64().max(1e-9);
        println!("   pick-up p50: notify is {ratio:.0}x faster than poll-only (targets: pick-up p50 <= 1 ms, p99 <= 5 ms; e2e p50 <= 10 ms, p99 <= 30 ms)");
    }

    if want(2) {
        // 2. No-op throughput.
        env.reset().await;
        let rows = env_usize("PIPELINE_BENCH_NOOP_ROWS", 50_000) as u64;
        {
            let c = connect(&env.url).await;
            c.execute(
            "INSERT INTO sync_queue (entity_type, entity_id) SELECT 'satis', gen_random_uuid() FROM generate_series(1, $1::int)",
            &[&(rows as i32)],
        )
        .await
        .expect("prefill");
            c.batch_execute("VACUUM ANALYZE sync_queue")
                .await
                .expect("vacuum");
        }
        let noop_opts = WorkerOptions {
            concurrency: 2000,
            batch_size: 1000,
            ..WorkerOptions::default()
        };
        let noop = drain_rate(&env, NoopSink, rows, noop_opts).await;
        println!();
        println!(
            "2. queue throughput, no-op sink: {noop:.0} rows/s ({rows} rows; target >= 10,000)"
        );
    }

    if want(3) && std::env::var_os("PIPELINE_BENCH_BALANCE_AB").is_some() {
        balance_ab(&env).await;
    } else if want(3) {
        // 3. Documents/s into the emulator.
        let erp_docs = env_usize("PIPELINE_BENCH_ERP_DOCS", 2000);
        let mut erp_rates = Vec::new();
        for (conns, concurrency, series) in erp_configs() {
            env.reset().await;
            let c = connect(&env.url).await;
            c.batch_execute(&prefill_sales(erp_docs, series))
                .await
                .expect("prefill sales");
            let sink = env.mikro_sink(conns).await;
            let opts = WorkerOptions {
                concurrency,
                ..WorkerOptions::default()
            };
            let r = drain_rate(&env, sink, erp_docs as u64, opts).await;
            erp_rates.push((conns, concurrency, series, r));
        }
        // Reference: post_document called directly in a loop (no queue), one connection; left
        // out when PIPELINE_BENCH_ERP_CONFIGS picks configurations to profile.
        let direct = if std::env::var_os("PIPELINE_BENCH_ERP_CONFIGS").is_some() {
            None
        } else {
            env.reset().await;
            let c = connect(&env.url).await;
            c.batch_execute(&prefill_sales(erp_docs, 1))
                .await
                .expect("prefill sales");
            let ids: Vec<Uuid> = c
                .query("SELECT entity_id FROM sync_queue", &[])
                .await
                .expect("ids")
                .iter()
                .map(|r| r.get(0))
                .collect();
            let mut erp = env.h.erp_client().await.expect("erp");
            let cfg = PostingConfig::default();
            let t0 = Instant::now();
            for id in &ids {
                mikro_sync::posting::post_document(&c, &mut erp, &cfg, DocKind::Satis, *id)
                    .await
                    .expect("post");
            }
            Some(ids.len() as f64 / t0.elapsed().as_secs_f64())
        };
        println!();
        println!(
            "3. documents/s through the queue into the emulator (3-line sales; target >= 500)"
        );
        for (conns, concurrency, series, r) in &erp_rates {
            let what = if *series == 1 {
                "one series".to_string()
            } else {
                format!("{series} series")
            };
            println!(
                "   {conns} ERP connection(s), {concurrency} document(s) in flight, {what}: {r:.0} docs/s"
            );
        }
        if let Some(direct) = direct {
            println!(
                "   reference, post_document in a loop without the queue, 1 connection: {direct:.0} docs/s"
            );
        }
    }

    // 4. Web insert rate, 16 writers.
    if want(4) {
        insert_section(&env).await;
    }

    print_top_statements(&env.url, &settings).await;
    println!();
    println!("total bench time {:.1} s", t_all.elapsed().as_secs_f64());
}
