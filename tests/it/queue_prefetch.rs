//! How many rows the worker keeps claimed (automatic prefetch) and which it starts first (a
//! series not being posted), against a real PostgreSQL, near and behind a delaying proxy.

use crate::common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use mikro_emulator::fault_proxy::FaultProxy;
use mikro_sync::posting::{PostError, Posted, PostingConfig};
use mikro_sync::queue::{Job, Metrics, Sink};
use uuid::Uuid;

const T: Duration = Duration::from_secs(60);

/// A web database 40 ms away: a proxy in front of `env`'s cluster; its URL and pool.
async fn far(env: &WebEnv) -> (FaultProxy, String, mikro_sync::db::WebPool) {
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], env.pg.port()));
    let proxy = FaultProxy::start(target).await.expect("proxy");
    proxy.set_rtt(Duration::from_millis(40));
    let url = format!("postgres://postgres@127.0.0.1:{}/web", proxy.port());
    let pool = mikro_sync::db::web_pool(&url, 8).expect("pool");
    (proxy, url, pool)
}

/// Posts in 10 ms, or in 5 s once `slow` is set; counts calls per document.
#[derive(Clone, Default)]
struct FlipSink {
    slow: Arc<AtomicBool>,
    calls: Arc<Mutex<HashMap<Uuid, u32>>>,
}

impl Sink for FlipSink {
    async fn post(&self, job: &Job) -> Result<Posted, PostError> {
        *self.calls.lock().unwrap().entry(job.entity_id).or_insert(0) += 1;
        let ms = if self.slow.load(Ordering::SeqCst) {
            1200
        } else {
            10
        };
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(posted("T", 1))
    }
}

/// One sale (one line) in `seri`, as statements for a batch.
fn sale_sql(id: Uuid, seri: &str) -> String {
    format!(
        "INSERT INTO satislar (id, cari_hesap_id, odeme_sekli, ara_toplam, kdv_tutari, toplam_tutar, fatura_seri_no) \
         VALUES ('{id}', '{CARI_1}', 'vadeli', 100, 20, 120, '{seri}'); \
         INSERT INTO satis_kalemleri (satis_id, stok_id, miktar, birim_fiyat, kdv_orani, kdv_tutari, toplam_tutar, sira_no) \
         VALUES ('{id}', '{STOK_1}', 1, 100, 20, 20, 120, 0);"
    )
}

/// With the web database far away and fast postings, the automatic prefetch grows past
/// `concurrency` to its bound, `batch_size`. Rows buffered longer than a lease (the postings
/// turn slow) keep their lease: nothing is rescued, nothing posted twice. A graceful stop puts
/// the buffered rows back to `pending` without counting an attempt.
#[tokio::test]
async fn automatic_prefetch_grows_with_the_round_trip_and_keeps_buffered_rows_leased() {
    let env = web_env(true).await;
    let c = env.client().await;
    let total = 600;
    let mut sql = String::from("BEGIN;");
    for _ in 0..total {
        sql.push_str(&sale_sql(Uuid::new_v4(), "ST"));
    }
    sql.push_str("COMMIT;");
    c.batch_execute(&sql).await.expect("sales");
    let (_proxy, url, pool) = far(&env).await;
    let sink = FlipSink::default();
    let metrics = Arc::new(Metrics::default());
    let mut opts = fast_opts();
    opts.concurrency = 2;
    opts.batch_size = 16;
    opts.prefetch = None;
    opts.lease = Duration::from_secs(1);
    opts.metrics = metrics.clone();
    let w = spawn_worker(&pool, &url, sink.clone(), opts);
    wait_for("the prefetch sized to its bound", T, || async {
        (metrics.prefetch.load(Ordering::Relaxed) == 16).then_some(())
    })
    .await;
    // From here on each claim tops up a buffer of 16 that ran below half: 8 rows or more.
    let (rows0, claims0, posted0) = (
        metrics.claimed.load(Ordering::Relaxed),
        metrics.claims.load(Ordering::Relaxed),
        metrics.posted.load(Ordering::Relaxed),
    );
    wait_for("100 more documents", T, || async {
        (metrics.posted.load(Ordering::Relaxed) >= posted0 + 100).then_some(())
    })
    .await;
    let rows = metrics.claimed.load(Ordering::Relaxed) - rows0;
    let claims = metrics.claims.load(Ordering::Relaxed) - claims0;
    assert!(
        rows >= 6 * claims.max(1),
        "several rows per claim: {rows} rows in {claims} claims"
    );
    // Now slow, with rows in the buffer (claimed, not started): they wait several leases.
    let buffered =
        || metrics.claimed.load(Ordering::Relaxed) as i64 - sink.calls.lock().unwrap().len() as i64;
    wait_for("rows buffered", T, || async {
        if buffered() >= 6 {
            sink.slow.store(true, Ordering::SeqCst);
            return Some(());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        None
    })
    .await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let still = buffered();
    assert!(still >= 2, "rows stayed buffered for 3 leases: {still}");
    let expired: i64 = c
        .query_one(
            "SELECT count(*) FROM sync_queue WHERE lease_until < now() AND status = 'processing'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(expired, 0, "every held row's lease is renewed");
    assert_eq!(
        metrics.rescued.load(Ordering::Relaxed),
        0,
        "nothing rescued"
    );
    let report = w.stop().await;
    assert_eq!(
        count_status(&c, "processing").await,
        0,
        "nothing left claimed"
    );
    let completed = count_status(&c, "completed").await;
    assert_eq!(completed as u64, report.posted);
    assert_eq!(completed + count_status(&c, "pending").await, total);
    let attempts: i64 = c
        .query_one(
            "SELECT coalesce(max(retry_count), 0)::int8 FROM sync_queue WHERE status = 'pending'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(attempts, 0, "a released row's claim is not an attempt");
    let calls = sink.calls.lock().unwrap();
    assert!(calls.values().all(|n| *n == 1), "nothing posted twice");
    assert_eq!(
        calls.len() as i64,
        completed,
        "released rows were never posted"
    );
}

/// Near the database with postings much slower than a claim, the automatic prefetch stays at
/// `concurrency` (the fixed default it replaced).
#[tokio::test]
async fn automatic_prefetch_stays_at_concurrency_when_claims_are_quick() {
    let env = web_env(true).await;
    let c = env.client().await;
    for _ in 0..12 {
        insert_sale(&c, 1).await;
    }
    let mut sink = ScriptSink::ok();
    sink.delay = Duration::from_millis(400);
    let metrics = Arc::new(Metrics::default());
    let mut opts = fast_opts();
    opts.concurrency = 2;
    opts.prefetch = None;
    opts.metrics = metrics.clone();
    let w = spawn_worker(&env.pool, &env.url, sink, opts);
    wait_drained(&c, T).await;
    w.stop().await;
    assert_eq!(metrics.prefetch.load(Ordering::Relaxed), 2);
    assert!(
        metrics.claims.load(Ordering::Relaxed) >= 3,
        "claims topped up a small buffer"
    );
}

/// Records when each document's posting runs, by series.
#[derive(Clone)]
struct SeriesSink {
    cfg: PostingConfig,
    /// (series, web id) in start order.
    started: Arc<Mutex<Vec<(String, Uuid)>>>,
    running: Arc<Mutex<HashMap<String, usize>>>,
    /// Most postings of one series that ran at once.
    overlap: Arc<Mutex<usize>>,
}

impl Sink for SeriesSink {
    async fn post(&self, job: &Job) -> Result<Posted, PostError> {
        let seri = match job.document.as_deref() {
            Some(mikro_sync::posting::LoadedDocument::Sale(s)) => {
                s.seri.clone().unwrap_or_default()
            }
            _ => String::new(),
        };
        {
            let mut r = self.running.lock().unwrap();
            let n = r.entry(seri.clone()).or_insert(0);
            *n += 1;
            let mut o = self.overlap.lock().unwrap();
            *o = (*o).max(*n);
            self.started
                .lock()
                .unwrap()
                .push((seri.clone(), job.entity_id));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        *self.running.lock().unwrap().get_mut(&seri).unwrap() -= 1;
        Ok(posted(&seri, 1))
    }

    fn documents(&self) -> Option<&PostingConfig> {
        Some(&self.cfg)
    }
}

async fn insert_sale_in(c: &tokio_postgres::Client, seri: &str) -> Uuid {
    let id = Uuid::new_v4();
    c.batch_execute(&format!("BEGIN; {} COMMIT;", sale_sql(id, seri)))
        .await
        .expect("insert sale");
    id
}

/// Two slots, rows claimed in the order A A A B B: the worker posts an A and a B side by side
/// instead of two A's (which Mikro's series lock would run one after the other), and each
/// series' rows start in the order they were written.
#[tokio::test]
async fn a_series_not_being_posted_starts_first_in_order() {
    let env = web_env(true).await;
    let c = env.client().await;
    let mut written: Vec<(String, Uuid)> = Vec::new();
    for s in ["A", "A", "A", "B", "B"] {
        written.push((s.to_string(), insert_sale_in(&c, s).await));
    }
    let sink = SeriesSink {
        cfg: PostingConfig::default(),
        started: Arc::default(),
        running: Arc::default(),
        overlap: Arc::default(),
    };
    let mut opts = fast_opts();
    opts.concurrency = 2;
    opts.prefetch = Some(4);
    let w = spawn_worker(&env.pool, &env.url, sink.clone(), opts);
    wait_drained(&c, T).await;
    w.stop().await;
    let started = sink.started.lock().unwrap().clone();
    assert_eq!(started.len(), 5, "{started:?}");
    assert_eq!(
        *sink.overlap.lock().unwrap(),
        1,
        "never two postings of one series at once while another series waited: {started:?}"
    );
    for s in ["A", "B"] {
        let order: Vec<Uuid> = started.iter().filter(|r| r.0 == s).map(|r| r.1).collect();
        let want: Vec<Uuid> = written.iter().filter(|r| r.0 == s).map(|r| r.1).collect();
        assert_eq!(order, want, "series {s} starts in the order written");
    }
    assert_eq!(
        started[1].0, "B",
        "B's first row started beside the first A"
    );
}
