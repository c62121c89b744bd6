//! Fault-injection scenarios shared by `tests/chaos/main.rs` (short versions, run by the normal test
//! command) and `examples/chaos.rs` (longer versions, printed as a table). Each scenario runs the
//! production sink (MikroSink → emulator) through a [`FaultProxy`], injects its fault, lifts it,
//! and checks the books: every web document in Mikro exactly once (ledger = CHA headers = web
//! documents), numbers unique and gap-free per series, nothing left pending/processing, nothing
//! `failed`; and prints the time from lifting the fault to a drained queue with its bound.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mikro_emulator::fault_proxy::FaultProxy;
use mikro_sync::db::{ErpOptions, ErpPool};
use mikro_sync::queue::MikroSink;
use uuid::Uuid;

use crate::common::*;

/// One scenario's outcome (a row of the chaos table).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub scenario: String,
    pub documents: usize,
    pub faults: usize,
    pub recovery: Duration,
    pub bound: Duration,
    pub notes: String,
    /// What the books check saw.
    pub books: Books,
}

/// What [`assert_books`] verified (it panics on any violation, so a row exists only when all held).
#[derive(Debug, Clone, Copy, Default)]
pub struct Books {
    /// Web documents found exactly once in Mikro (ledger row and CHA header each).
    pub exactly_once: usize,
    /// Web documents of the scenario.
    pub documents: usize,
    /// Number series checked for duplicates and gaps.
    pub series: usize,
    /// Numbers in those series.
    pub numbers: usize,
    /// Queue rows left pending or processing.
    pub open: i64,
    /// Queue rows failed.
    pub failed: i64,
}

impl Outcome {
    pub fn print(&self) {
        println!(
            "chaos: {:<34} docs {:>4}  faults {:>4}  recovered in {:>8.1} ms (bound {} s)  {}",
            self.scenario,
            self.documents,
            self.faults,
            self.recovery.as_secs_f64() * 1000.0,
            self.bound.as_secs(),
            self.notes
        );
    }
}

/// Harness + fault proxy in front of the emulator + an ERP pool through the proxy.
pub struct ChaosEnv {
    pub env: FullEnv,
    pub proxy: FaultProxy,
    pub erp: ErpPool,
}

/// ERP bounds short enough for tests, long enough for a loaded 2-core machine.
pub fn chaos_erp_options() -> ErpOptions {
    ErpOptions {
        connect_timeout: Duration::from_secs(3),
        query_timeout: Duration::from_secs(5),
    }
}

pub async fn chaos_env(conns: u32) -> ChaosEnv {
    let env = full_env().await;
    let target: std::net::SocketAddr = format!("{}:{}", env.h.host(), env.h.port())
        .parse()
        .expect("emulator address");
    let proxy = FaultProxy::start(target).await.expect("proxy");
    let ado = env.h.erp_ado().replace(
        &format!(",{};", env.h.port()),
        &format!(",{};", proxy.port()),
    );
    assert!(
        ado.contains(&proxy.port().to_string()),
        "ADO through the proxy: {ado}"
    );
    let erp = mikro_sync::db::erp_pool_ado_with(&ado, conns, chaos_erp_options())
        .await
        .expect("ERP pool through the proxy");
    ChaosEnv { env, proxy, erp }
}

impl ChaosEnv {
    pub fn sink(&self) -> MikroSink {
        MikroSink {
            web: self.env.pool.clone(),
            erp: self.erp.clone(),
            cfg: mikro_sync::posting::PostingConfig::default(),
        }
    }

    /// Inserts `n` documents, one collection in four, the rest 3-line sales ([`insert_mixed`]).
    pub async fn insert_docs(&self, c: &tokio_postgres::Client, n: usize) -> Vec<Uuid> {
        insert_mixed(c, n).await
    }
}

/// Waits until some queue row recorded a failed attempt (the fault was seen by a posting).
pub async fn wait_fault_seen(c: &tokio_postgres::Client, bound: Duration) {
    wait_for("a posting attempt to fail on the fault", bound, || async {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM sync_queue WHERE error_message IS NOT NULL",
                &[],
            )
            .await
            .expect("count errors")
            .get(0);
        (n > 0).then_some(())
    })
    .await
}

/// The books check of every scenario. `ids` are all web documents of the scenario.
pub async fn assert_books(env: &FullEnv, c: &tokio_postgres::Client, ids: &[Uuid]) -> Books {
    let mut books = Books {
        documents: ids.len(),
        ..Books::default()
    };
    for s in ["pending", "processing", "failed"] {
        let n = count_status(c, s).await;
        if n > 0 && s == "failed" {
            let rows = c
                .query(
                    "SELECT entity_id::text, error_message FROM sync_queue WHERE status = 'failed'",
                    &[],
                )
                .await
                .unwrap();
            let msgs: Vec<String> = rows
                .iter()
                .map(|r| {
                    format!(
                        "{}: {:?}",
                        r.get::<_, String>(0),
                        r.get::<_, Option<String>>(1)
                    )
                })
                .collect();
            panic!("{n} documents failed although only transient faults touched them: {msgs:#?}");
        }
        assert_eq!(n, 0, "queue rows left {s}");
        if s == "failed" {
            books.failed = n;
        } else {
            books.open += n;
        }
    }
    for (id, ledger, cha) in erp_postings(env, ids).await {
        assert_eq!((ledger, cha), (1, 1), "document {id} in Mikro exactly once");
        books.exactly_once += 1;
    }
    let ledger = erp_count(env, "SELECT COUNT(*) FROM dbo.MIKROSYNC_LEDGER", &[]).await;
    assert_eq!(ledger, ids.len() as i64, "ledger rows = web documents");
    // Numbers unique and gap-free per series.
    let mut erp = env.h.erp_client().await.expect("erp client");
    let rows = erp
        .simple_query("SELECT ml_evrak_tip, ml_seri, ml_sira FROM dbo.MIKROSYNC_LEDGER")
        .await
        .expect("ledger numbers")
        .into_first_result()
        .await
        .expect("ledger rows");
    let mut series: BTreeMap<(i64, String), Vec<i64>> = BTreeMap::new();
    for r in &rows {
        let tip = mikro_sync::posting::erp::get_int(r, 0).expect("evrak tip");
        let seri = mikro_sync::posting::erp::get_text(r, 1).unwrap_or_default();
        let sira = mikro_sync::posting::erp::get_int(r, 2).expect("sira");
        series.entry((tip, seri)).or_default().push(sira);
    }
    for ((tip, seri), mut nums) in series {
        nums.sort_unstable();
        let n = nums.len();
        nums.dedup();
        assert_eq!(nums.len(), n, "series {tip}/{seri}: a number used twice");
        let (lo, hi) = (nums[0], nums[n - 1]);
        assert_eq!(
            hi - lo + 1,
            n as i64,
            "series {tip}/{seri}: gap in {lo}..={hi} ({n} numbers)"
        );
        books.series += 1;
        books.numbers += n;
    }
    let unnumbered: i64 = c
        .query_one(
            "SELECT (SELECT count(*) FROM satislar WHERE fatura_sira_no IS NULL) \
                  + (SELECT count(*) FROM tahsilatlar WHERE tahsilat_sira_no IS NULL)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(unnumbered, 0, "every number written back to the web");
    books
}

/// Waits for the drained queue after the fault is lifted; returns the recovery time.
async fn recover(c: &tokio_postgres::Client, bound: Duration) -> Duration {
    let t0 = Instant::now();
    wait_drained(c, bound).await;
    t0.elapsed()
}

/// Blackholes the ERP link while documents are being posted, `hold` long, then heals it.
pub async fn blackhole_erp_mid_posting(docs: usize, hold: Duration) -> Outcome {
    let ce = chaos_env(2).await;
    let c = connect(&ce.env.url).await;
    let mut opts = fast_opts();
    opts.concurrency = 2;
    let w = spawn_worker(&ce.env.pool, &ce.env.url, ce.sink(), opts);
    let mut ids = ce.insert_docs(&c, docs / 2).await;
    wait_for("some documents posted", Duration::from_secs(60), || async {
        (count_status(&c, "completed").await >= 2).then_some(())
    })
    .await;
    ce.proxy.blackhole(true);
    ids.extend(ce.insert_docs(&c, docs - docs / 2).await);
    wait_fault_seen(&c, Duration::from_secs(60)).await;
    tokio::time::sleep(hold).await;
    ce.proxy.heal();
    let bound = Duration::from_secs(60);
    let recovery = recover(&c, bound).await;
    w.stop().await;
    let books = assert_books(&ce.env, &c, &ids).await;
    Outcome {
        books,
        scenario: "ERP blackholed mid-posting".into(),
        documents: ids.len(),
        faults: 1,
        recovery,
        bound,
        notes: format!("held {} s", hold.as_secs()),
    }
}

/// Cuts the ERP connection at `cuts` byte offsets spread over one posting's whole exchange
/// (login, check-out, posting), one document per offset.
pub async fn cut_erp_at_offsets(cuts: usize) -> Outcome {
    let ce = chaos_env(1).await;
    let c = connect(&ce.env.url).await;
    let mut opts = fast_opts();
    opts.concurrency = 1;
    let w = spawn_worker(&ce.env.pool, &ce.env.url, ce.sink(), opts);
    // The length of a clean exchange on a fresh connection.
    ce.proxy.reset_all();
    let before = ce.proxy.bytes_forwarded();
    let mut ids = ce.insert_docs(&c, 1).await;
    wait_drained(&c, Duration::from_secs(60)).await;
    let exchange = ce.proxy.bytes_forwarded() - before;
    let mut rng_state = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..cuts {
        // Evenly spread, jittered so repeated runs hit different packets.
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        let step = exchange / cuts as u64;
        let off = 1 + step * i as u64 + rng_state % step.max(1);
        ce.proxy.cut_after(Some(off));
        ce.proxy.reset_all();
        let id = ce.insert_docs(&c, 1).await[0];
        ids.push(id);
        wait_for(
            "the cut seen or the document posted",
            Duration::from_secs(60),
            || async {
                let (status, retries, err) = queue_row(&c, id).await?;
                (status == "completed" || retries > 0 || err.is_some()).then_some(())
            },
        )
        .await;
        ce.proxy.cut_after(None);
    }
    let bound = Duration::from_secs(60);
    let recovery = recover(&c, bound).await;
    w.stop().await;
    let books = assert_books(&ce.env, &c, &ids).await;
    Outcome {
        books,
        scenario: "ERP connection cut at byte offsets".into(),
        documents: ids.len(),
        faults: cuts,
        recovery,
        bound,
        notes: format!("exchange {exchange} bytes"),
    }
}

/// The ERP refuses connections (and open ones are reset) for `down`, documents keep arriving.
pub async fn erp_down(docs: usize, down: Duration) -> Outcome {
    let ce = chaos_env(2).await;
    let c = connect(&ce.env.url).await;
    let mut opts = fast_opts();
    opts.concurrency = 2;
    let w = spawn_worker(&ce.env.pool, &ce.env.url, ce.sink(), opts);
    let mut ids = ce.insert_docs(&c, docs / 2).await;
    ce.proxy.refuse(true);
    ce.proxy.reset_all();
    let t_down = Instant::now();
    ids.extend(ce.insert_docs(&c, docs - docs / 2).await);
    wait_fault_seen(&c, Duration::from_secs(60)).await;
    if let Some(rest) = down.checked_sub(t_down.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let downtime = t_down.elapsed();
    ce.proxy.heal();
    let bound = Duration::from_secs(60);
    let recovery = recover(&c, bound).await;
    w.stop().await;
    let books = assert_books(&ce.env, &c, &ids).await;
    Outcome {
        books,
        scenario: "ERP down".into(),
        documents: ids.len(),
        faults: 1,
        recovery,
        bound,
        notes: format!("down {:.1} s", downtime.as_secs_f64()),
    }
}

/// The web database "restarts" as the worker sees it: every connection (pool, LISTEN,
/// completer) reset and new ones refused for `down`, through a proxy in front of PostgreSQL;
/// documents keep being written (directly) meanwhile.
pub async fn web_restart(docs: usize, down: Duration) -> Outcome {
    let env = full_env().await;
    let pg: std::net::SocketAddr = format!("127.0.0.1:{}", env.h.pg().port())
        .parse()
        .expect("pg address");
    let web_proxy = FaultProxy::start(pg).await.expect("web proxy");
    let url = env.url.replace(
        &format!(":{}/", env.h.pg().port()),
        &format!(":{}/", web_proxy.port()),
    );
    assert!(url.contains(&web_proxy.port().to_string()), "{url}");
    let pool = mikro_sync::db::web_pool(&url, 8).expect("web pool through the proxy");
    let sink = MikroSink {
        web: pool.clone(),
        erp: mikro_sink(&env, 2).await.erp,
        cfg: mikro_sync::posting::PostingConfig::default(),
    };
    let c = connect(&env.url).await;
    let mut opts = fast_opts();
    opts.concurrency = 2;
    let w = spawn_worker(&pool, &url, sink, opts);
    let mut ids = insert_mixed(&c, docs / 2).await;
    wait_for("some documents posted", Duration::from_secs(60), || async {
        (count_status(&c, "completed").await >= 2).then_some(())
    })
    .await;
    web_proxy.refuse(true);
    web_proxy.reset_all();
    let t_down = Instant::now();
    ids.extend(insert_mixed(&c, docs - docs / 2).await);
    if let Some(rest) = down.checked_sub(t_down.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let downtime = t_down.elapsed();
    web_proxy.heal();
    let bound = Duration::from_secs(90);
    let recovery = recover(&c, bound).await;
    w.stop().await;
    let books = assert_books(&env, &c, &ids).await;
    Outcome {
        books,
        scenario: "web PostgreSQL restart".into(),
        documents: ids.len(),
        faults: 1,
        recovery,
        bound,
        notes: format!("down {:.1} s", downtime.as_secs_f64()),
    }
}

/// `n` documents, one collection in four, the rest 3-line sales.
pub async fn insert_mixed(c: &tokio_postgres::Client, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        ids.push(if i % 4 == 3 {
            insert_collection(c, "75.50").await
        } else {
            insert_sale(c, 3).await
        });
    }
    ids
}

/// Four workers post concurrently while the ERP link resets every connection every `every`.
pub async fn four_workers_with_resets(docs: usize, every: Duration) -> Outcome {
    let ce = chaos_env(8).await;
    let c = connect(&ce.env.url).await;
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let mut opts = fast_opts();
            opts.name = format!("chaos-{i}");
            opts.concurrency = 2;
            spawn_worker(&ce.env.pool, &ce.env.url, ce.sink(), opts)
        })
        .collect();
    let ids = ce.insert_docs(&c, docs).await;
    let t0 = Instant::now();
    let mut resets = 0;
    loop {
        let open: i64 = c
            .query_one(
                "SELECT count(*) FROM sync_queue WHERE status IN ('pending', 'processing')",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if open == 0 || resets >= 200 {
            break;
        }
        tokio::time::sleep(every).await;
        ce.proxy.reset_all();
        resets += 1;
    }
    let bound = Duration::from_secs(60);
    recover(&c, bound).await;
    let recovery = t0.elapsed();
    for w in workers {
        w.stop().await;
    }
    let books = assert_books(&ce.env, &c, &ids).await;
    Outcome {
        books,
        scenario: "4 workers, ERP connections reset".into(),
        documents: ids.len(),
        faults: resets,
        recovery,
        bound,
        notes: format!(
            "reset every {} ms; recovery = drained from the last insert, resets going on",
            every.as_millis()
        ),
    }
}

/// Environment variables of a chaos child worker.
pub const CHILD_WEB: &str = "CHAOS_CHILD_WEB";
pub const CHILD_ERP: &str = "CHAOS_CHILD_ERP";

/// The child side of [`kill9_while_busy`]: a production worker until killed. Returns at once
/// when the variables are not set.
pub async fn child_worker() {
    let (Ok(web), Ok(erp)) = (std::env::var(CHILD_WEB), std::env::var(CHILD_ERP)) else {
        return;
    };
    let pool = mikro_sync::db::web_pool(&web, 8).expect("child web pool");
    let erp = mikro_sync::db::erp_pool(&erp, 4)
        .await
        .expect("child ERP pool");
    let sink = MikroSink {
        web: pool.clone(),
        erp,
        cfg: mikro_sync::posting::PostingConfig::default(),
    };
    let mut opts = fast_opts();
    opts.name = format!("chaos-child-{}", std::process::id());
    opts.concurrency = 4;
    opts.lease = Duration::from_secs(2);
    let ctl = mikro_sync::shutdown::ShutdownController::new();
    let listen = std::sync::Arc::new(
        mikro_sync::queue::PgListenConnector::from_url_notls(&web).expect("listen url"),
    );
    let _ = mikro_sync::queue::Worker::new(pool, listen, sink, opts)
        .run(ctl.subscribe())
        .await;
}

/// Starts a child worker process (`spawn` builds the command: the test binary or the example
/// re-invoked in child mode), lets it post, kills it with SIGKILL; `kills` times, then a normal
/// worker finishes. The books must be exact.
pub async fn kill9_while_busy(
    docs: usize,
    kills: usize,
    spawn: impl Fn() -> std::process::Command,
) -> Outcome {
    let env = full_env().await;
    let c = connect(&env.url).await;
    let ids = insert_mixed(&c, docs).await;
    let mut killed = 0;
    for _ in 0..kills {
        let before = count_status(&c, "completed").await;
        if before as usize >= docs {
            break;
        }
        let mut child = spawn()
            .env(CHILD_WEB, &env.url)
            .env(CHILD_ERP, env.h.erp_ado())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn child worker");
        // Kill it while it is busy: at least one more document done, one in flight.
        let _ = tokio::time::timeout(
            Duration::from_secs(60),
            wait_for("child busy", Duration::from_secs(60), || async {
                let done = count_status(&c, "completed").await;
                let busy = count_status(&c, "processing").await;
                (done > before && busy > 0 || done as usize >= docs).then_some(())
            }),
        )
        .await;
        child.kill().expect("kill -9");
        child.wait().expect("reap child");
        killed += 1;
    }
    let t0 = Instant::now();
    let w = spawn_worker(&env.pool, &env.url, mikro_sink(&env, 4).await, fast_opts());
    let bound = Duration::from_secs(120);
    wait_drained(&c, bound).await;
    let recovery = t0.elapsed();
    w.stop().await;
    let books = assert_books(&env, &c, &ids).await;
    Outcome {
        books,
        scenario: "kill -9 while busy".into(),
        documents: ids.len(),
        faults: killed,
        recovery,
        bound,
        notes: "recovery includes lease expiry".into(),
    }
}

/// A production sink that panics on the first attempt of every third document.
#[derive(Clone)]
pub struct PanickySink {
    inner: MikroSink,
    seen: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<Uuid>>>,
    pub panics: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl mikro_sync::queue::Sink for PanickySink {
    async fn post(
        &self,
        job: &mikro_sync::queue::Job,
    ) -> Result<mikro_sync::posting::Posted, mikro_sync::posting::PostError> {
        let first = self.seen.lock().unwrap().insert(job.entity_id);
        if first && matches!(job.entity_id.as_bytes()[15] % 3, 0) {
            self.panics
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            panic!("chaos: the sink panics on document {}", job.entity_id);
        }
        self.inner.post(job).await
    }
}

/// A sink that panics on some documents' first attempt: each is posted once in the end.
pub async fn panicking_sink(docs: usize) -> Outcome {
    let ce = chaos_env(2).await;
    let c = connect(&ce.env.url).await;
    let sink = PanickySink {
        inner: ce.sink(),
        seen: Default::default(),
        panics: Default::default(),
    };
    let panics = sink.panics.clone();
    let w = spawn_worker(&ce.env.pool, &ce.env.url, sink, fast_opts());
    let t0 = Instant::now();
    let ids = ce.insert_docs(&c, docs).await;
    let bound = Duration::from_secs(60);
    wait_drained(&c, bound).await;
    let recovery = t0.elapsed();
    w.stop().await;
    let books = assert_books(&ce.env, &c, &ids).await;
    Outcome {
        books,
        scenario: "panicking sink".into(),
        documents: ids.len(),
        faults: panics.load(std::sync::atomic::Ordering::Relaxed),
        recovery,
        bound,
        notes: "recovery = all posted from the first insert".into(),
    }
}

/// Blackholes only the worker's LISTEN connection (its pool goes direct) for `hold`, while
/// documents keep arriving: the worker must notice and keep posting (poll, reconnect).
pub async fn blackhole_listen(docs: usize, hold: Duration) -> Outcome {
    let ce = chaos_env(2).await;
    let pg: std::net::SocketAddr = format!("127.0.0.1:{}", ce.env.h.pg().port())
        .parse()
        .expect("pg address");
    let listen_proxy = FaultProxy::start(pg).await.expect("listen proxy");
    let listen_url = ce.env.url.replace(
        &format!(":{}/", ce.env.h.pg().port()),
        &format!(":{}/", listen_proxy.port()),
    );
    let c = connect(&ce.env.url).await;
    let mut opts = fast_opts();
    // Far beyond the test: a loop that waited for any call on the dead LISTEN connection would
    // stand still past the bound below; one that never waits on it posts through its poll.
    opts.listen_timeout = Duration::from_secs(600);
    let poll = opts.poll_interval;
    let w = spawn_worker(&ce.env.pool, &listen_url, ce.sink(), opts);
    let mut ids = ce.insert_docs(&c, docs / 2).await;
    wait_drained(&c, Duration::from_secs(60)).await;
    listen_proxy.blackhole(true);
    let t0 = Instant::now();
    ids.extend(ce.insert_docs(&c, docs - docs / 2).await);
    // Their notifications are lost: the safety-net poll (one interval, one more if the first
    // tick came before the inserts) and the postings.
    let bound = poll * 2 + Duration::from_secs(5);
    // Posted while the LISTEN connection is still blackholed: the worker is not frozen.
    wait_drained(&c, bound).await;
    let recovery = t0.elapsed();
    if let Some(rest) = hold.checked_sub(t0.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    listen_proxy.heal();
    w.stop().await;
    // The worker kept renewing its leases while its LISTEN connection hung: no row of its own
    // was taken for a dead worker's (that counts toward failing a document as a poison pill).
    let expired: Vec<String> = c
        .query(
            "SELECT entity_id::text || ': ' || coalesce(error_message, '') FROM sync_queue \
             WHERE lease_expiries > 0",
            &[],
        )
        .await
        .expect("lease expiries")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        expired.is_empty(),
        "leases expired while the LISTEN connection hung: {expired:#?}"
    );
    let books = assert_books(&ce.env, &c, &ids).await;
    Outcome {
        books,
        scenario: "LISTEN connection blackholed".into(),
        documents: ids.len(),
        faults: 1,
        recovery,
        bound,
        notes: "recovery = drained while still blackholed".into(),
    }
}
