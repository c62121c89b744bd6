//! Idle workers against a real PostgreSQL: going idle with another worker (or a writer) holding
//! the idle lock must not tear the LISTEN connection down. The bug this guards against: the
//! lock query bound the i64 key where PostgreSQL inferred an integer, every such attempt failed
//! and reconnected at once (2 idle workers opened ~2,200 sessions in 20 s).

use crate::common;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use mikro_sync::queue::{Metrics, IDLE_LOCK_KEY};

const T: Duration = Duration::from_secs(60);
/// How long the idle workers are watched.
const WINDOW: Duration = Duration::from_secs(30);

/// Every client backend (pid, start time) of the web database but our own (autovacuum
/// workers come and go by themselves).
async fn sessions(c: &tokio_postgres::Client) -> HashSet<(i32, String)> {
    c.query(
        "SELECT pid, backend_start::text FROM pg_stat_activity \
          WHERE datname = current_database() AND pid <> pg_backend_pid() \
            AND backend_type = 'client backend'",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// Starts `n` workers, lets them settle, then watches the web sessions for [`WINDOW`]: none may
/// be opened (a LISTEN reconnect is a new session), and no listener may reconnect.
async fn idle_workers_open_no_sessions(n: usize) {
    let env = web_env(true).await;
    let c = env.client().await;
    let mut workers = Vec::new();
    let mut metrics = Vec::new();
    for _ in 0..n {
        let m = Arc::new(Metrics::default());
        let mut opts = fast_opts();
        opts.metrics = m.clone();
        opts.poll_interval = Duration::from_millis(500);
        // One pool per worker, as separate processes have (a shared pool grows when two
        // workers happen to need a connection at the same moment).
        let pool = mikro_sync::db::web_pool(&env.url, 4).unwrap();
        workers.push(spawn_worker(&pool, &env.url, ScriptSink::ok(), opts));
        metrics.push(m);
    }
    wait_for("all listeners up", T, || async {
        metrics
            .iter()
            .all(|m| m.listener_up.load(Ordering::Relaxed) == 1)
            .then_some(())
    })
    .await;
    // Settle: every worker drains at start, then goes idle (a few poll ticks).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let steady = sessions(&c).await;
    let mut seen = steady.clone();
    let cpu0 = cpu_ticks();
    let t0 = Instant::now();
    while t0.elapsed() < WINDOW {
        seen.extend(sessions(&c).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let cpu = (cpu_ticks() - cpu0) as f64 / 100.0 / t0.elapsed().as_secs_f64();
    let new: Vec<_> = seen.difference(&steady).collect();
    let reconnects: u64 = metrics
        .iter()
        .map(|m| Metrics::get(&m.listener_reconnects))
        .sum();
    let other: u64 = metrics
        .iter()
        .map(|m| Metrics::get(&m.idle_other_worker))
        .sum();
    println!(
        "{n} idle workers: {} sessions steady, {} new in {WINDOW:?}, {reconnects} listener \
         reconnects, {other} idles without the lock, test process CPU {:.1} % of a core \
         (workers + sampler)",
        steady.len(),
        new.len(),
        cpu * 100.0
    );
    assert!(
        new.is_empty(),
        "{n} idle workers opened {} new web sessions in {WINDOW:?}",
        new.len()
    );
    assert_eq!(reconnects, 0, "no LISTEN connection may be re-opened");
    if n > 1 {
        assert!(
            other > 0,
            "the workers without the lock took the OtherWorker path"
        );
    }
    for w in workers {
        w.stop().await;
    }
}

/// utime + stime of this process, in clock ticks (100 per second on Linux).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name (which may contain spaces) start at ") ".
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[tokio::test]
async fn one_idle_worker_keeps_its_sessions() {
    idle_workers_open_no_sessions(1).await;
}

#[tokio::test]
async fn two_idle_workers_keep_their_sessions() {
    idle_workers_open_no_sessions(2).await;
}

#[tokio::test]
async fn four_idle_workers_keep_their_sessions() {
    idle_workers_open_no_sessions(4).await;
}

/// Two workers: one holds the idle lock, the other idles without it (OtherWorker) and stays
/// connected; a sale written then is posted once.
#[tokio::test]
async fn a_second_worker_idles_without_the_lock_and_documents_still_flow() {
    let env = web_env(true).await;
    let c = env.client().await;
    let (m1, m2) = (Arc::new(Metrics::default()), Arc::new(Metrics::default()));
    let sink = ScriptSink::ok();
    let mut o1 = fast_opts();
    o1.metrics = m1.clone();
    o1.poll_interval = Duration::from_secs(3600);
    let mut o2 = o1.clone();
    o2.metrics = m2.clone();
    let w1 = spawn_worker(&env.pool, &env.url, sink.clone(), o1);
    let w2 = spawn_worker(&env.pool, &env.url, sink.clone(), o2);
    wait_for("one worker idles without the lock", T, || async {
        (Metrics::get(&m1.idle_other_worker) + Metrics::get(&m2.idle_other_worker) > 0)
            .then_some(())
    })
    .await;
    // The lock is held by exactly one session, the listener of one of the workers.
    let holders: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) \
              WHERE l.locktype = 'advisory' AND l.classid = $1::int8::oid \
                AND l.objid = $2::int8::oid AND l.mode = 'ExclusiveLock' AND l.granted \
                AND a.application_name = 'mikro-sync listener'",
            &[&(IDLE_LOCK_KEY >> 32), &(IDLE_LOCK_KEY & 0xFFFF_FFFF)],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(holders, 1);
    let s = insert_sale(&c, 2).await;
    let t = insert_collection(&c, "15.50").await;
    wait_drained(&c, T).await;
    for id in [s, t] {
        assert_eq!(queue_row(&c, id).await.unwrap().0, "completed");
        assert_eq!(sink.calls_for(id), 1);
    }
    assert_eq!(Metrics::get(&m1.listener_reconnects), 0);
    assert_eq!(Metrics::get(&m2.listener_reconnects), 0);
    w1.stop().await;
    w2.stop().await;
}

/// A web transaction that wrote a sale (and skipped its notify, no worker being idle) is still
/// open when the worker goes idle: the worker does not block on it (WritersBusy, looks again),
/// keeps its LISTEN connection, and posts the sale once the transaction commits.
#[tokio::test]
async fn an_open_writer_transaction_delays_idling_without_blocking() {
    let env = web_env(true).await;
    let c = env.client().await;
    let (writer, conn) = tokio_postgres::connect(&env.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    // The writer takes the idle lock shared in the trigger (nobody idles yet) and keeps it.
    writer.batch_execute("BEGIN").await.unwrap();
    let sale = uuid::Uuid::new_v4();
    writer
        .batch_execute(&format!(
            "INSERT INTO satislar (id, cari_hesap_id, odeme_sekli, ara_toplam, kdv_tutari, toplam_tutar) \
             VALUES ('{sale}', '{CARI_1}', 'vadeli', 100, 20, 120); \
             INSERT INTO satis_kalemleri (satis_id, stok_id, miktar, birim_fiyat, kdv_orani, kdv_tutari, toplam_tutar, sira_no) \
             VALUES ('{sale}', '{STOK_1}', 1, 100, 20, 20, 100, 0)"
        ))
        .await
        .unwrap();
    let m = Arc::new(Metrics::default());
    let sink = ScriptSink::ok();
    let mut opts = fast_opts();
    opts.metrics = m.clone();
    opts.poll_interval = Duration::from_secs(3600);
    let w = spawn_worker(&env.pool, &env.url, sink.clone(), opts);
    wait_for("going idle found the writer busy, twice", T, || async {
        (Metrics::get(&m.idle_writers_busy) >= 2).then_some(())
    })
    .await;
    assert_eq!(sink.calls_for(sale), 0, "not visible before its commit");
    writer.batch_execute("COMMIT").await.unwrap();
    wait_for("the sale posted", T, || async {
        (queue_row(&c, sale).await.map(|r| r.0).as_deref() == Some("completed")).then_some(())
    })
    .await;
    assert_eq!(sink.calls_for(sale), 1);
    assert_eq!(Metrics::get(&m.listener_reconnects), 0);
    w.stop().await;
}
