//! The worker against a real PostgreSQL, with scripted sinks (the ERP is not what is tested
//! here; see pipeline_*.rs for the emulator). Waits on states, never on times.

use crate::common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use mikro_sync::posting::PostError;
use mikro_sync::queue::{Job, Metrics, NoopSink};

const T: Duration = Duration::from_secs(60);

#[tokio::test]
async fn drains_on_notify_and_writes_numbers_back() {
    let env = web_env(true).await;
    let c = env.client().await;
    let counter = Arc::new(std::sync::atomic::AtomicI32::new(0));
    let cn = counter.clone();
    let sink = ScriptSink::new(Arc::new(move |_j: &Job, _n| {
        Ok(posted("ST", cn.fetch_add(1, Ordering::SeqCst) + 1))
    }));
    let metrics = Arc::new(Metrics::default());
    let mut opts = fast_opts();
    opts.metrics = metrics.clone();
    // Only a notification can wake it: the poll is an hour away.
    opts.poll_interval = Duration::from_secs(3600);
    let w = spawn_worker(&env.pool, &env.url, sink.clone(), opts);
    // Let it go idle (it drains at start), then write.
    wait_for("listener up", T, || async {
        (metrics.listener_up.load(Ordering::Relaxed) == 1).then_some(())
    })
    .await;
    let s1 = insert_sale(&c, 2).await;
    let s2 = insert_sale(&c, 1).await;
    let t1 = insert_collection(&c, "99.90").await;
    wait_drained(&c, T).await;
    for id in [s1, s2, t1] {
        assert_eq!(queue_row(&c, id).await.unwrap().0, "completed");
        assert_eq!(sink.calls_for(id), 1);
    }
    let nums: Vec<(Option<String>, Option<i32>)> = c
        .query("SELECT fatura_seri_no, fatura_sira_no FROM satislar WHERE id = ANY($1) ORDER BY fatura_sira_no", &[&vec![s1, s2]])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(
        nums.iter()
            .all(|(s, n)| s.as_deref() == Some("ST") && n.is_some()),
        "{nums:?}"
    );
    let t: (Option<String>, Option<i32>) = c
        .query_one(
            "SELECT tahsilat_seri_no, tahsilat_sira_no FROM tahsilatlar WHERE id = $1",
            &[&t1],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(t.0.as_deref(), Some("ST"));
    // The write-back and later edits never enqueue the document again.
    assert_eq!(common::edit_posted_sale_then_count_open(&c, s1).await, 0);
    let report = w.stop().await;
    assert_eq!(report.posted, 3);
}

#[tokio::test]
async fn a_bad_document_fails_with_its_message_and_never_blocks_the_others() {
    let env = web_env(true).await;
    let c = env.client().await;
    let bad = insert_sale(&c, 1).await;
    let mut good = Vec::new();
    for _ in 0..20 {
        good.push(insert_sale(&c, 1).await);
    }
    let sink = ScriptSink::new(Arc::new(move |j: &Job, _n| {
        if j.entity_id == bad {
            Err(PostError::Data(
                "customer 120.99.999 has no mapping: add a row to int_kodmap_cari".into(),
            ))
        } else {
            Ok(posted("ST", 1))
        }
    }));
    let opts = fast_opts();
    let max = opts.retry.data_max_attempts;
    let w = spawn_worker(&env.pool, &env.url, sink.clone(), opts);
    wait_drained(&c, T).await;
    let (status, attempts, msg) = queue_row(&c, bad).await.unwrap();
    assert_eq!(status, "failed");
    assert_eq!(attempts as u32, max, "retry_count counts attempts");
    assert!(msg.unwrap().contains("int_kodmap_cari"));
    assert_eq!(sink.calls_for(bad), max);
    for g in good {
        assert_eq!(queue_row(&c, g).await.unwrap().0, "completed");
    }
    w.stop().await;
}

#[tokio::test]
async fn transient_failures_back_off_then_succeed() {
    let env = web_env(true).await;
    let c = env.client().await;
    let s = insert_sale(&c, 1).await;
    let sink = ScriptSink::new(Arc::new(|_j: &Job, n| {
        if n < 3 {
            Err(PostError::Transient(
                "connection reset (1205 deadlock)".into(),
            ))
        } else {
            Ok(posted("ST", 7))
        }
    }));
    let metrics = Arc::new(Metrics::default());
    let mut opts = fast_opts();
    opts.metrics = metrics.clone();
    let w = spawn_worker(&env.pool, &env.url, sink.clone(), opts.clone());
    // After the first failure the row is pending with a persisted next attempt in the future,
    // within the policy's jitter bounds.
    let gap: f64 = wait_for("first retry scheduled", T, || async {
        let r = c
            .query_one(
                "SELECT status, retry_count, extract(epoch FROM next_attempt_at - now())::float8, error_message \
                 FROM sync_queue WHERE entity_id = $1",
                &[&s],
            )
            .await
            .unwrap();
        let st: String = r.get(0);
        let rc: i32 = r.get(1);
        (st == "pending" && rc == 1).then(|| r.get::<_, f64>(2))
    })
    .await;
    let nominal = opts
        .retry
        .nominal_delay(1, opts.retry.max_interval)
        .as_secs_f64();
    assert!(
        gap <= nominal * (1.0 + opts.retry.randomization_factor) + 0.05,
        "gap {gap} nominal {nominal}"
    );
    wait_drained(&c, T).await;
    let (status, attempts, msg) = queue_row(&c, s).await.unwrap();
    assert_eq!((status.as_str(), attempts, msg), ("completed", 3, None));
    assert_eq!(metrics.retries.load(Ordering::Relaxed), 2);
    w.stop().await;
}

#[tokio::test]
async fn a_sale_without_lines_waits_for_the_settle_window_then_fails() {
    let env = web_env(true).await;
    let c = env.client().await;
    let never = insert_sale(&c, 0).await;
    let late = insert_sale(&c, 0).await;
    let sink = ScriptSink::new(Arc::new(move |j: &Job, n| {
        if j.entity_id == never || n < 3 {
            Err(PostError::NotReady(
                "sale has no lines (satis_kalemleri) yet".into(),
            ))
        } else {
            Ok(posted("ST", 1))
        }
    }));
    // A lease long enough that no renewal delayed by a loaded machine lets the rescuer take a
    // row back mid-call: that call's outcome would be dropped and the count below be off by one.
    let mut opts = fast_opts();
    opts.lease = Duration::from_secs(30);
    let w = spawn_worker(&env.pool, &env.url, sink.clone(), opts);
    wait_drained(&c, T).await;
    let (status, attempts, msg) = queue_row(&c, never).await.unwrap();
    assert_eq!(status, "failed");
    assert!(attempts > 1, "it waited with retries");
    assert!(msg.unwrap().contains("no lines"));
    assert_eq!(queue_row(&c, late).await.unwrap().0, "completed");
    // Never completed without posting.
    assert_eq!(sink.calls_for(never) as i32, attempts);
    w.stop().await;
}

#[tokio::test]
async fn operator_retry_query_is_picked_up_promptly() {
    let env = web_env(true).await;
    let c = env.client().await;
    let s = insert_sale(&c, 1).await;
    let sink = ScriptSink::new(Arc::new(|_j: &Job, n| {
        if n == 1 {
            Err(PostError::Data(
                "stock STK-X has no mapping: add it to int_kodmap_stok".into(),
            ))
        } else {
            Ok(posted("ST", 3))
        }
    }));
    let mut opts = fast_opts();
    opts.retry.data_max_attempts = 1;
    opts.poll_interval = Duration::from_secs(3600); // only the notify can wake it
    let w = spawn_worker(&env.pool, &env.url, sink.clone(), opts);
    wait_for("failed", T, || async {
        (queue_row(&c, s).await.unwrap().0 == "failed").then_some(())
    })
    .await;
    let n = c
        .execute(
            "UPDATE sync_queue SET status = 'pending', retry_count = 0 WHERE status = 'failed'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    wait_for("completed after operator retry", T, || async {
        (queue_row(&c, s).await.unwrap().0 == "completed").then_some(())
    })
    .await;
    assert_eq!(
        queue_row(&c, s).await.unwrap().1,
        1,
        "attempts counted from the reset"
    );
    w.stop().await;
}

/// Terminates the worker's one backend named `app`, writes ten sales meanwhile and waits until
/// every one of them is completed.
async fn kill_backend_then_drain(c: &tokio_postgres::Client, app: &str) {
    let killed: i64 = c
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(killed, 1, "one {app} backend");
    let mut ids = Vec::new();
    for _ in 0..10 {
        ids.push(insert_sale(c, 1).await);
    }
    wait_drained(c, T).await;
    for id in ids {
        assert_eq!(queue_row(c, id).await.unwrap().0, "completed");
    }
}

#[tokio::test]
async fn listener_backend_killed_is_survived_and_missed_rows_drained() {
    let env = web_env(true).await;
    let c = env.client().await;
    let metrics = Arc::new(Metrics::default());
    let mut opts = fast_opts();
    opts.metrics = metrics.clone();
    opts.poll_interval = Duration::from_secs(3600);
    let w = spawn_worker(&env.pool, &env.url, NoopSink, opts);
    let first = insert_sale(&c, 1).await;
    wait_drained(&c, T).await;
    assert_eq!(queue_row(&c, first).await.unwrap().0, "completed");
    for round in 0..2 {
        // Rows written while the listener is down (their notify reaches nobody).
        kill_backend_then_drain(&c, "mikro-sync listener").await;
        wait_for("reconnect counted", T, || async {
            (metrics.listener_reconnects.load(Ordering::Relaxed) > round).then_some(())
        })
        .await;
    }
    w.stop().await;
}

#[tokio::test]
async fn completer_connection_killed_is_survived() {
    let env = web_env(true).await;
    let c = env.client().await;
    let w = spawn_worker(&env.pool, &env.url, NoopSink, fast_opts());
    let completer = "SELECT count(*) FROM pg_stat_activity \
                     WHERE application_name = 'mikro-sync completer'";
    let first = insert_sale(&c, 1).await;
    wait_drained(&c, T).await;
    assert_eq!(queue_row(&c, first).await.unwrap().0, "completed");
    for _ in 0..2 {
        kill_backend_then_drain(&c, "mikro-sync completer").await;
        // The failed batch is behind us: the next one opens a fresh completer connection.
        let next = insert_sale(&c, 1).await;
        wait_drained(&c, T).await;
        assert_eq!(queue_row(&c, next).await.unwrap().0, "completed");
        let n: i64 = c.query_one(completer, &[]).await.unwrap().get(0);
        assert_eq!(n, 1, "a fresh completer connection");
    }
    w.stop().await;
}

#[tokio::test]
async fn two_workers_never_post_a_document_twice() {
    let env = web_env(true).await;
    let c = env.client().await;
    let sink = ScriptSink::new(Arc::new(|_j: &Job, _n| Ok(posted("ST", 1))));
    let mut opts_a = fast_opts();
    opts_a.concurrency = 8;
    opts_a.batch_size = 5;
    let mut opts_b = opts_a.clone();
    opts_a.name = "worker-a".into();
    opts_b.metrics = Arc::new(Metrics::default());
    opts_b.name = "worker-b".into();
    let a = spawn_worker(&env.pool, &env.url, sink.clone(), opts_a);
    let b = spawn_worker(&env.pool, &env.url, sink.clone(), opts_b);
    let mut ids = Vec::new();
    for i in 0..300 {
        ids.push(if i % 3 == 0 {
            insert_collection(&c, "10").await
        } else {
            insert_sale(&c, 1).await
        });
    }
    wait_drained(&c, T).await;
    for id in &ids {
        assert_eq!(sink.calls_for(*id), 1, "document {id} posted once");
    }
    let ra = a.stop().await;
    let rb = b.stop().await;
    assert_eq!(ra.posted + rb.posted, 300);
    assert_eq!(count_status(&c, "completed").await, 300);
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_documents() {
    let env = web_env(true).await;
    let c = env.client().await;
    let mut sink = ScriptSink::ok();
    sink.delay = Duration::from_millis(200);
    let mut opts = fast_opts();
    opts.concurrency = 4;
    for _ in 0..30 {
        insert_sale(&c, 1).await;
    }
    let w = spawn_worker(&env.pool, &env.url, sink.clone(), opts);
    wait_for("some in flight", T, || async {
        (count_status(&c, "processing").await > 0).then_some(())
    })
    .await;
    let report = w.stop().await;
    assert_eq!(
        count_status(&c, "processing").await,
        0,
        "nothing left claimed"
    );
    assert_eq!(count_status(&c, "completed").await as u64, report.posted);
    assert!(report.posted >= 1);
    let calls: u32 = sink.calls.lock().unwrap().values().sum();
    assert_eq!(
        calls as u64, report.posted,
        "every document it started was finished"
    );
}

#[tokio::test]
async fn two_idle_workers_are_both_woken_by_notifications_only() {
    let env = web_env(true).await;
    let c = env.client().await;
    let mut sink = ScriptSink::ok();
    sink.delay = Duration::from_millis(30);
    let ma = Arc::new(Metrics::default());
    let mb = Arc::new(Metrics::default());
    let mut oa = fast_opts();
    oa.poll_interval = Duration::from_secs(3600);
    oa.name = "idle-a".into();
    oa.metrics = ma.clone();
    let mut ob = oa.clone();
    ob.name = "idle-b".into();
    ob.metrics = mb.clone();
    let a = spawn_worker(&env.pool, &env.url, sink.clone(), oa);
    let b = spawn_worker(&env.pool, &env.url, sink.clone(), ob);
    wait_for("both listening", T, || async {
        (ma.listener_up.load(Ordering::Relaxed) == 1 && mb.listener_up.load(Ordering::Relaxed) == 1)
            .then_some(())
    })
    .await;
    // One at a time (each meets idle workers), then bursts while they are busy.
    for _ in 0..10 {
        let id = insert_sale(&c, 1).await;
        wait_for("posted", T, || async {
            (queue_row(&c, id).await.unwrap().0 == "completed").then_some(())
        })
        .await;
    }
    for _ in 0..5 {
        for _ in 0..8 {
            insert_collection(&c, "1").await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    wait_drained(&c, T).await;
    assert_eq!(count_status(&c, "completed").await, 50);
    let calls: u32 = sink.calls.lock().unwrap().values().sum();
    assert_eq!(calls, 50);
    a.stop().await;
    b.stop().await;
}

/// The claim runs as a prepared statement cached per pooled connection; a connection whose
/// prepared statements were dropped behind the pool's back (a pooler's `DEALLOCATE ALL`) still
/// claims, and the next claim prepares again.
#[tokio::test]
async fn claim_survives_dropped_prepared_statements() {
    let env = web_env(true).await;
    let c = env.client().await;
    for _ in 0..3 {
        insert_sale(&c, 1).await;
    }
    let pool = mikro_sync::db::web_pool(&env.url, 1).expect("pool");
    let client = pool.get().await.expect("pooled client");
    let lease = Duration::from_secs(30);
    let first = mikro_sync::queue::claimer::claim(&client, "t", 1, lease)
        .await
        .expect("first claim");
    assert_eq!(first.len(), 1);
    client
        .batch_execute("DEALLOCATE ALL")
        .await
        .expect("deallocate");
    let second = mikro_sync::queue::claimer::claim(&client, "t", 1, lease)
        .await
        .expect("claim after DEALLOCATE ALL");
    assert_eq!(second.len(), 1);
    let third = mikro_sync::queue::claimer::claim(&client, "t", 5, lease)
        .await
        .expect("claim after re-preparing");
    assert_eq!(third.len(), 1, "one row left");
    assert_eq!(count_status(&c, "processing").await, 3);
}

/// Prefetch: with one slot and three rows buffered, the worker holds four rows (renewing their
/// leases); a graceful stop finishes the one in flight and puts the three buffered rows back to
/// `pending` with their attempt taken back, so no row waits for a lease to expire.
#[tokio::test]
async fn graceful_stop_releases_prefetched_rows() {
    let env = web_env(true).await;
    let c = env.client().await;
    for _ in 0..6 {
        insert_sale(&c, 1).await;
    }
    let mut sink = ScriptSink::ok();
    sink.delay = Duration::from_millis(1500);
    let mut opts = fast_opts();
    opts.concurrency = 1;
    opts.prefetch = Some(3);
    let w = spawn_worker(&env.pool, &env.url, sink.clone(), opts);
    // One in flight + three buffered.
    wait_for("four rows claimed", Duration::from_secs(30), || async {
        (count_status(&c, "processing").await == 4).then_some(())
    })
    .await;
    let report = w.stop().await;
    assert_eq!(
        count_status(&c, "processing").await,
        0,
        "nothing left claimed"
    );
    let completed = count_status(&c, "completed").await;
    assert_eq!(completed as u64, report.posted);
    assert!(completed >= 1, "the document in flight was finished");
    assert_eq!(completed + count_status(&c, "pending").await, 6);
    let attempts: i64 = c
        .query_one(
            "SELECT coalesce(max(retry_count), 0)::int8 FROM sync_queue WHERE status = 'pending'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        attempts, 0,
        "a released row's claim does not count as an attempt"
    );
    let started: u32 = sink.calls.lock().unwrap().values().sum();
    assert_eq!(started as i64, completed, "released rows were never posted");
}
