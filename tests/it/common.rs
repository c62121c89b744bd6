//! Shared test helpers: throwaway databases with mikro-sync installed, document inserts the way
//! the web app does them, scripted sinks, waiting on queue states. Other helpers may add
//! functions here; keep each one small and documented.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mikro_emulator::harness::{Harness, HarnessOptions, WEB_SCHEMA, WEB_SEED};
use mikro_emulator::pgcluster::{PgCluster, PgClusterOptions};
use mikro_sync::db::{ErpPool, WebPool};
use mikro_sync::posting::{PostError, Posted};
use mikro_sync::queue::{Job, PgListenConnector, Sink, Worker, WorkerOptions, WorkerReport};
use mikro_sync::shutdown::ShutdownController;
use uuid::Uuid;

/// A customer of the reference seed (code 120.01.001).
pub const CARI_1: &str = "c0000000-0000-4000-8000-000000000001";
/// A product of the reference seed (STK-0001).
pub const STOK_1: &str = "b0000000-0000-4000-8000-000000000001";

/// Quiet-by-default tracing for tests (`RUST_LOG=mikro_sync=debug` to see the worker).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// A web-only environment: throwaway PostgreSQL with the reference web schema + seed and
/// mikro-sync's web objects installed. For queue tests where the ERP is irrelevant.
pub struct WebEnv {
    pub pg: PgCluster,
    pub url: String,
    pub pool: WebPool,
}

impl WebEnv {
    /// A fresh client (connection task spawned).
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }
}

/// Opens a plain tokio-postgres client.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect web");
    tokio::spawn(conn);
    c
}

/// Starts PostgreSQL with the reference web schema and seed; `install` also runs setup_web.
pub async fn web_env(install: bool) -> WebEnv {
    init_tracing();
    let pg = PgCluster::start_with(PgClusterOptions::default())
        .await
        .expect("start PostgreSQL");
    pg.create_database("web").await.expect("create web db");
    pg.execute("web", WEB_SCHEMA).await.expect("web schema");
    pg.execute("web", WEB_SEED).await.expect("web seed");
    let url = pg.url("web");
    let pool = mikro_sync::db::web_pool(&url, 16).expect("web pool");
    let env = WebEnv { pg, url, pool };
    if install {
        let c = env.client().await;
        mikro_sync::setup::setup_web(&c).await.expect("setup_web");
    }
    env
}

/// The full environment: harness (web + emulator), mikro-sync installed on both sides.
pub struct FullEnv {
    pub h: Harness,
    pub url: String,
    pub pool: WebPool,
}

/// Starts the harness and installs mikro-sync on both sides.
pub async fn full_env() -> FullEnv {
    init_tracing();
    let h = Harness::start(HarnessOptions::default())
        .await
        .expect("start harness");
    let url = h.web_url();
    let pool = mikro_sync::db::web_pool(&url, 16).expect("web pool");
    let c = connect(&url).await;
    mikro_sync::setup::setup_web(&c).await.expect("setup_web");
    let mut erp = h.erp_client().await.expect("erp client");
    mikro_sync::setup::setup_erp(&mut erp)
        .await
        .expect("setup_erp");
    FullEnv { h, url, pool }
}

/// The ERP → web sync's environment: harness (web schema, optionally its seed), mikro-sync
/// installed on the web side, the daemon's pools and a plain web client.
pub struct SyncEnv {
    pub h: Harness,
    pub web: WebPool,
    pub erp: ErpPool,
    pub pg: tokio_postgres::Client,
}

/// Starts the harness (the web seed only with `web_seed`) and installs mikro-sync's web objects.
pub async fn sync_env(web_seed: bool) -> SyncEnv {
    let h = Harness::start(HarnessOptions {
        web_seed,
        ..HarnessOptions::default()
    })
    .await
    .expect("harness");
    let pg = h.web_client().await.expect("web client");
    mikro_sync::setup::setup_web(&pg).await.expect("setup web");
    let web = mikro_sync::db::web_pool(&h.web_url(), 4).expect("web pool");
    let erp = mikro_sync::db::erp_pool(&h.erp_ado(), 2)
        .await
        .expect("erp pool");
    SyncEnv { h, web, erp, pg }
}

/// Test worker options: fast leases/polls so failures show quickly (never relied on for
/// correctness: tests wait on states, not on times).
pub fn fast_opts() -> WorkerOptions {
    let mut o = WorkerOptions::default();
    o.retry.initial_interval = Duration::from_millis(50);
    o.retry.max_interval = Duration::from_millis(400);
    o.retry.settle_window = Duration::from_secs(2);
    o.retry.settle_max_interval = Duration::from_millis(300);
    o.lease = Duration::from_secs(3);
    o.rescue_interval = Duration::from_millis(500);
    o
}

/// A running worker and the way to stop it.
pub struct RunningWorker {
    pub ctl: ShutdownController,
    pub handle: tokio::task::JoinHandle<WorkerReport>,
}

impl RunningWorker {
    /// Graceful stop; returns the worker's report.
    pub async fn stop(self) -> WorkerReport {
        self.ctl.trigger();
        let r = tokio::time::timeout(Duration::from_secs(60), self.handle)
            .await
            .expect("worker did not stop in 60 s")
            .expect("worker task");
        r
    }
}

/// Spawns a worker with LISTEN on `url`.
pub fn spawn_worker<S: Sink>(
    pool: &WebPool,
    url: &str,
    sink: S,
    opts: WorkerOptions,
) -> RunningWorker {
    let ctl = ShutdownController::new();
    let sd = ctl.subscribe();
    let listen = Arc::new(PgListenConnector::from_url_notls(url).expect("listen url"));
    let w = Worker::new(pool.clone(), listen, sink, opts);
    let handle = tokio::spawn(async move { w.run(sd).await.expect("worker run") });
    RunningWorker { ctl, handle }
}

/// Inserts a sale header (kaynak default 'web') with `lines` lines in ONE transaction, as the
/// web app does; returns its id.
pub async fn insert_sale(c: &tokio_postgres::Client, lines: usize) -> Uuid {
    let id = Uuid::new_v4();
    let cari: Uuid = CARI_1.parse().unwrap();
    let stok: Uuid = STOK_1.parse().unwrap();
    let mut sql = format!(
        "BEGIN; INSERT INTO satislar (id, cari_hesap_id, odeme_sekli, ara_toplam, kdv_tutari, toplam_tutar) \
         VALUES ('{id}', '{cari}', 'vadeli', {a}, {k}, {t});",
        a = 100 * lines,
        k = 20 * lines,
        t = 120 * lines
    );
    for i in 0..lines {
        sql.push_str(&format!(
            "INSERT INTO satis_kalemleri (satis_id, stok_id, miktar, birim_fiyat, kdv_orani, kdv_tutari, toplam_tutar, sira_no) \
             VALUES ('{id}', '{stok}', 1, 100, 20, 20, 100, {i});"
        ));
    }
    sql.push_str("COMMIT;");
    c.batch_execute(&sql).await.expect("insert sale");
    id
}

/// Inserts a cash collection; returns its id.
pub async fn insert_collection(c: &tokio_postgres::Client, amount: &str) -> Uuid {
    let id = Uuid::new_v4();
    c.execute(
        &format!(
            "INSERT INTO tahsilatlar (id, cari_hesap_id, tahsilat_tipi, tutar, kasa_id) \
             VALUES ($1, $2, 'nakit', {amount}, 'e0000000-0000-4000-8000-000000000001')"
        ),
        &[&id, &CARI_1.parse::<Uuid>().unwrap()],
    )
    .await
    .expect("insert collection");
    id
}

/// Status, retry_count and error_message of the newest queue row of a document.
pub async fn queue_row(
    c: &tokio_postgres::Client,
    entity_id: Uuid,
) -> Option<(String, i32, Option<String>)> {
    c.query_opt(
        "SELECT status, retry_count, error_message FROM sync_queue WHERE entity_id = $1 \
         ORDER BY created_at DESC LIMIT 1",
        &[&entity_id],
    )
    .await
    .expect("queue row")
    .map(|r| (r.get(0), r.get(1), r.get(2)))
}

/// Counts queue rows by status.
pub async fn count_status(c: &tokio_postgres::Client, status: &str) -> i64 {
    c.query_one(
        "SELECT count(*) FROM sync_queue WHERE status = $1",
        &[&status],
    )
    .await
    .expect("count")
    .get(0)
}

/// Polls `f` every 20 ms until it returns Some, or panics after `timeout` with `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let t0 = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if t0.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until no row is pending or processing.
pub async fn wait_drained(c: &tokio_postgres::Client, timeout: Duration) {
    wait_for("queue drained", timeout, || async {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM sync_queue WHERE status IN ('pending', 'processing')",
                &[],
            )
            .await
            .expect("count open")
            .get(0);
        (n == 0).then_some(())
    })
    .await
}

/// What a [`ScriptSink`] does for a document.
pub type Script = Arc<dyn Fn(&Job, u32) -> Result<Posted, PostError> + Send + Sync>;

/// A sink whose answer per document is scripted, and that counts calls per document.
#[derive(Clone)]
pub struct ScriptSink {
    pub script: Script,
    pub calls: Arc<Mutex<HashMap<Uuid, u32>>>,
    pub delay: Duration,
}

impl ScriptSink {
    /// Succeeds for everything with number `seri`/`sira` = call order.
    pub fn ok() -> Self {
        Self::new(Arc::new(|_j: &Job, _n: u32| Ok(posted("T", 1))))
    }

    /// Uses `script(job, call_number_for_this_document)`.
    pub fn new(script: Script) -> Self {
        ScriptSink {
            script,
            calls: Arc::new(Mutex::new(HashMap::new())),
            delay: Duration::ZERO,
        }
    }

    /// Calls made for `id`.
    pub fn calls_for(&self, id: Uuid) -> u32 {
        self.calls.lock().unwrap().get(&id).copied().unwrap_or(0)
    }
}

impl Sink for ScriptSink {
    async fn post(&self, job: &Job) -> Result<Posted, PostError> {
        let n = {
            let mut m = self.calls.lock().unwrap();
            let e = m.entry(job.entity_id).or_insert(0);
            *e += 1;
            *e
        };
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        (self.script)(job, n)
    }
}

/// A `Posted` with the given number.
pub fn posted(seri: &str, sira: i32) -> Posted {
    Posted {
        seri: seri.into(),
        sira,
        cha_recno: sira,
        already_posted: false,
    }
}

/// The production sink against the harness's ERP (pool of `conns` connections).
pub async fn mikro_sink(env: &FullEnv, conns: u32) -> mikro_sync::queue::MikroSink {
    let erp = mikro_sync::db::erp_pool(&env.h.erp_ado(), conns)
        .await
        .expect("ERP pool");
    mikro_sync::queue::MikroSink {
        web: env.pool.clone(),
        erp,
        cfg: mikro_sync::posting::PostingConfig::default(),
    }
}

/// The one row a T-SQL query answers on the ERP side.
pub async fn erp_row(env: &FullEnv, sql: &str, params: &[&dyn tiberius::ToSql]) -> tiberius::Row {
    let mut erp = env.h.erp_client().await.expect("erp client");
    erp.query(sql, params)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_row()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap_or_else(|| panic!("{sql}: no row"))
}

/// Runs a scalar T-SQL count on the ERP side.
pub async fn erp_count(env: &FullEnv, sql: &str, params: &[&dyn tiberius::ToSql]) -> i64 {
    let row = erp_row(env, sql, params).await;
    row.get::<i32, _>(0)
        .map(i64::from)
        .or_else(|| row.get::<i64, _>(0))
        .expect("count")
}

/// For every web document id: (ledger rows, CHA rows with the ledger's number). Exactly-once
/// means (1, 1) for each.
pub async fn erp_postings(env: &FullEnv, ids: &[Uuid]) -> Vec<(Uuid, i64, i64)> {
    let mut out = Vec::new();
    for id in ids {
        let ledger = erp_count(
            env,
            "SELECT COUNT(*) FROM dbo.MIKROSYNC_LEDGER WHERE ml_web_id = @P1",
            &[id],
        )
        .await;
        let cha = erp_count(
            env,
            "SELECT COUNT(*) FROM dbo.CARI_HESAP_HAREKETLERI c JOIN dbo.MIKROSYNC_LEDGER l \
               ON c.cha_evrak_tip = l.ml_evrak_tip AND c.cha_evrakno_seri = l.ml_seri \
              AND c.cha_evrakno_sira = l.ml_sira WHERE l.ml_web_id = @P1",
            &[id],
        )
        .await;
        out.push((*id, ledger, cha));
    }
    out
}

/// Edits an already posted sale the way a web app would, then counts the queue rows that are not
/// `completed` (nor the `diverged` record of the edit): the caller asserts 0, because an UPDATE
/// must never post a document again.
pub async fn edit_posted_sale_then_count_open(c: &tokio_postgres::Client, sale: Uuid) -> i64 {
    c.execute(
        "UPDATE satislar SET notlar = 'edited after posting' WHERE id = $1",
        &[&sale],
    )
    .await
    .unwrap();
    c.query_one(
        "SELECT count(*) FROM sync_queue WHERE status NOT IN ('completed', 'diverged')",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}
