//! The worker is never stuck and never silent: panics, postings past their timeout, completions
//! lost to the web database, rows left by dead or wedged workers, a LISTEN connection that stops
//! answering. Real PostgreSQL, scripted sinks; waits on states, never on times.

use crate::common;

use std::process::Command;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use mikro_sync::queue::rescuer::{rescue_expired, RescueBackoff};
use mikro_sync::queue::{claimer, Job, Metrics, IDLE_LOCK_KEY};

const T: Duration = Duration::from_secs(60);

/// A posting that panics does not leave its row `processing`: the attempt is counted, retried
/// with backoff, and after the data-error attempts the row is `failed` with the panic's text;
/// the documents behind it are posted.
#[tokio::test]
async fn a_panicking_posting_is_retried_then_fails_naming_the_panic() {
    let env = web_env(true).await;
    let c = env.client().await;
    let bad = insert_sale(&c, 3).await;
    let mut good = Vec::new();
    for _ in 0..5 {
        good.push(insert_sale(&c, 1).await);
    }
    let sink = ScriptSink::new(Arc::new(move |j: &Job, _n| {
        if j.entity_id == bad {
            panic!("index out of bounds: the len is 0 but the index is 0 (stok İST-şt)");
        }
        Ok(posted("ST", 1))
    }));
    let m = Arc::new(Metrics::default());
    let mut opts = fast_opts();
    opts.metrics = m.clone();
    let max = opts.retry.data_max_attempts;
    let w = spawn_worker(&env.pool, &env.url, sink.clone(), opts);
    wait_drained(&c, T).await;
    let (status, attempts, msg) = queue_row(&c, bad).await.unwrap();
    let msg = msg.unwrap();
    assert_eq!(status, "failed", "{msg}");
    assert_eq!(attempts as u32, max);
    assert!(msg.contains("panicked") && msg.contains("İST-şt"), "{msg}");
    assert_eq!(sink.calls_for(bad), max);
    assert_eq!(Metrics::get(&m.panics), max as u64);
    for g in good {
        assert_eq!(queue_row(&c, g).await.unwrap().0, "completed");
    }
    w.stop().await;
}

/// A posting that does not finish within `posting_timeout` is a transient failure: retried,
/// then posted once it answers.
#[tokio::test]
async fn a_posting_past_its_timeout_is_a_transient_failure_and_retried() {
    let env = web_env(true).await;
    let c = env.client().await;
    let s = insert_sale(&c, 1).await;
    #[derive(Clone)]
    struct HangsOnce(ScriptSink);
    impl mikro_sync::queue::Sink for HangsOnce {
        async fn post(
            &self,
            job: &Job,
        ) -> Result<mikro_sync::posting::Posted, mikro_sync::posting::PostError> {
            if self.0.calls_for(job.entity_id) == 0 {
                let _ = self.0.post(job).await;
                // "The ERP stopped answering."
                std::future::pending::<()>().await;
            }
            self.0.post(job).await
        }
    }
    let sink = HangsOnce(ScriptSink::ok());
    let m = Arc::new(Metrics::default());
    let mut opts = fast_opts();
    opts.metrics = m.clone();
    opts.posting_timeout = Duration::from_millis(300);
    let w = spawn_worker(&env.pool, &env.url, sink.clone(), opts);
    wait_drained(&c, T).await;
    let (status, attempts, _) = queue_row(&c, s).await.unwrap();
    assert_eq!(status, "completed");
    assert_eq!(attempts, 2);
    assert_eq!(sink.0.calls_for(s), 2);
    assert_eq!(Metrics::get(&m.posting_timeouts), 1);
    w.stop().await;
}

/// Completions that cannot be written (the web database restarted) are retried by the same
/// worker with backoff, while the row's lease keeps being renewed: the document is posted once,
/// never re-queued by the rescuer, never `failed`. The lease is far shorter than the retries.
#[tokio::test]
async fn a_failed_completion_is_retried_by_its_worker_under_a_renewed_lease() {
    let env = web_env(true).await;
    let c = env.client().await;
    let t = insert_collection(&c, "1250.75").await;
    let m = Arc::new(Metrics::default());
    let sink = ScriptSink::ok();
    let mut opts = fast_opts();
    opts.metrics = m.clone();
    opts.lease = Duration::from_millis(500);
    opts.rescue_interval = Duration::from_millis(100);
    // The batch, then 5 one-by-one attempts fail: ~3 s of backoff, six leases.
    opts.hooks.fail_completion = Some(Arc::new(AtomicUsize::new(6)));
    let w = spawn_worker(&env.pool, &env.url, sink.clone(), opts);
    wait_drained(&c, T).await;
    let (status, attempts, msg) = queue_row(&c, t).await.unwrap();
    assert_eq!(status, "completed", "{msg:?}");
    assert_eq!(attempts, 1);
    assert_eq!(sink.calls_for(t), 1);
    assert_eq!(Metrics::get(&m.completion_retries), 5);
    assert_eq!(Metrics::get(&m.rescued), 0, "no lease expired");
    assert_eq!(Metrics::get(&m.failed), 0);
    w.stop().await;
}

/// The rescuer says whether the worker that held a row is gone or alive, backs off repeated
/// rescues, and fails the row at the limit with a message saying it crashed or hung the worker.
#[tokio::test]
async fn rescue_messages_tell_a_gone_worker_from_a_live_one() {
    let env = web_env(true).await;
    let c = env.client().await;
    let pool = &env.pool;
    let backoff = RescueBackoff {
        initial: Duration::from_secs(60),
        max: Duration::from_secs(600),
    };
    let a = insert_sale(&c, 1).await;
    let b = insert_sale(&c, 1).await;
    // "gone-1:123" claims both and dies; "alive-2:456" claims one more and keeps renewing it.
    let pc = pool.get().await.unwrap();
    let gone = claimer::claim(&pc, "gone-1:123", 2, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(gone.len(), 2);
    let x = insert_sale(&c, 1).await;
    let y = insert_sale(&c, 1).await;
    let alive = claimer::claim(&pc, "alive-2:456", 2, Duration::from_millis(100))
        .await
        .unwrap();
    assert_eq!(alive.len(), 2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The live worker renews one of its rows; the other one's posting hung.
    claimer::extend_leases(&pc, "alive-2:456", &[alive[0].id], Duration::from_secs(60))
        .await
        .unwrap();
    let rescued = rescue_expired(&pc, 3, backoff).await.unwrap();
    assert_eq!(rescued.len(), 3);
    for id in [a, b] {
        let msg = queue_row(&c, id).await.unwrap().2.unwrap();
        assert!(msg.contains("gone-1:123 is gone"), "{msg}");
    }
    let hung = if alive[0].entity_id == x { y } else { x };
    let msg = queue_row(&c, hung).await.unwrap().2.unwrap();
    assert!(msg.contains("alive-2:456 is alive"), "{msg}");
    // The first rescue is due at once; a second one backs off.
    let due_now: bool = c
        .query_one(
            "SELECT next_attempt_at <= clock_timestamp() FROM sync_queue WHERE entity_id = $1",
            &[&a],
        )
        .await
        .unwrap()
        .get(0);
    assert!(due_now);
    let again = claimer::claim(&pc, "gone-3:789", 10, Duration::from_millis(100))
        .await
        .unwrap();
    let ja = again
        .iter()
        .find(|j| j.entity_id == a)
        .expect("a claimed again");
    assert_eq!(ja.lease_expiries, 1);
    // The worker marks the posting of a row with an expiry (as the executor does), then dies.
    c.execute(
        "UPDATE sync_queue SET posting_started_at = now() WHERE entity_id = $1",
        &[&a],
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    rescue_expired(&pc, 3, backoff).await.unwrap();
    let r = c
        .query_one(
            "SELECT lease_expiries, extract(epoch FROM next_attempt_at - clock_timestamp())::float8 \
             FROM sync_queue WHERE entity_id = $1",
            &[&a],
        )
        .await
        .unwrap();
    assert_eq!(r.get::<_, i32>(0), 2);
    assert!(r.get::<_, f64>(1) > 30.0, "backs off");
    // b sat in the same dead worker's hands without being posted: not charged again.
    let rb: i32 = c
        .query_one(
            "SELECT lease_expiries FROM sync_queue WHERE entity_id = $1",
            &[&b],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(rb, 1);
}

const CHILD_URL: &str = "QUEUE_LIVENESS_CHILD_URL";
const CHILD_PILL: &str = "QUEUE_LIVENESS_CHILD_PILL";

/// Child mode only (a no-op in a normal run): a worker whose posting of the document
/// `QUEUE_LIVENESS_CHILD_PILL` crashes the whole process (abort, as a segfault or an OOM kill
/// would), and that posts everything else.
#[tokio::test]
async fn child_crashing_worker_entry() {
    let Ok(url) = std::env::var(CHILD_URL) else {
        return;
    };
    let pill: Option<uuid::Uuid> = std::env::var(CHILD_PILL).ok().and_then(|p| p.parse().ok());
    let pool = mikro_sync::db::web_pool(&url, 4).unwrap();
    let sink = ScriptSink::new(Arc::new(move |j: &Job, _n| {
        if Some(j.entity_id) == pill {
            std::process::abort();
        }
        Ok(posted("ST", 1))
    }));
    let mut opts = fast_opts();
    opts.name = format!("crash-child:{}", std::process::id());
    opts.lease = Duration::from_secs(1);
    opts.rescue_interval = Duration::from_millis(100);
    opts.retry.initial_interval = Duration::from_millis(100);
    let w = spawn_worker(&pool, &url, sink, opts);
    // Until killed or the parent's bound: exit once everything is done.
    let c = connect(&url).await;
    wait_drained(&c, Duration::from_secs(60)).await;
    w.stop().await;
}

fn run_child(url: &str, pill: Option<uuid::Uuid>) -> std::process::ExitStatus {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "queue_liveness::child_crashing_worker_entry",
        "--nocapture",
    ])
    .env(CHILD_URL, url);
    if let Some(p) = pill {
        cmd.env(CHILD_PILL, p.to_string());
    }
    let mut child = cmd.spawn().expect("spawn child");
    // Bounded: the child exits by itself (crash or drained) well within this.
    for _ in 0..1200 {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    panic!("child worker did not exit within 120 s");
}

/// A document that crashes the worker process every time it is posted ends `failed` after
/// `max_lease_expiries` crashes, with a message saying so; the documents claimed alongside it
/// are posted and not failed. Setting it back to `pending` (the message's remedy) with the
/// cause fixed posts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_that_crashes_the_worker_ends_failed_and_the_others_are_posted() {
    let env = web_env(true).await;
    let c = env.client().await;
    let pill = insert_sale(&c, 2).await;
    let mut others = Vec::new();
    for _ in 0..8 {
        others.push(insert_sale(&c, 1).await);
    }
    let mut crashes = 0;
    loop {
        let st = tokio::task::block_in_place(|| run_child(&env.url, Some(pill)));
        if st.success() {
            break;
        }
        crashes += 1;
        assert!(crashes <= 6, "the pill was never set aside");
    }
    let (status, _, msg) = queue_row(&c, pill).await.unwrap();
    let msg = msg.unwrap();
    assert_eq!(status, "failed", "{msg}");
    assert!(
        msg.contains("crashed or hung the worker") || msg.contains("crashed or hung while posting"),
        "{msg}"
    );
    assert!(msg.contains("set status = 'pending'"), "{msg}");
    assert_eq!(crashes, 3, "default limit: 3 lease expiries");
    for o in &others {
        assert_eq!(queue_row(&c, *o).await.unwrap().0, "completed");
    }
    // The remedy, exactly as the message says, after "fixing the cause" (no pill any more).
    c.execute(
        "UPDATE sync_queue SET status = 'pending' WHERE entity_id = $1",
        &[&pill],
    )
    .await
    .unwrap();
    let st = tokio::task::block_in_place(|| run_child(&env.url, None));
    assert!(st.success());
    assert_eq!(queue_row(&c, pill).await.unwrap().0, "completed");
}

/// The LISTEN connection stops answering (its backend is SIGSTOPped: a silently dead peer).
/// The loop does not freeze: the listener call times out, the connection is reopened, and a
/// sale written meanwhile is posted.
#[tokio::test]
async fn a_listen_connection_that_stops_answering_does_not_freeze_the_worker() {
    let env = web_env(true).await;
    let c = env.client().await;
    let m = Arc::new(Metrics::default());
    let sink = ScriptSink::ok();
    let mut opts = fast_opts();
    opts.metrics = m.clone();
    opts.poll_interval = Duration::from_millis(500);
    opts.listen_timeout = Duration::from_secs(3);
    let w = spawn_worker(&env.pool, &env.url, sink.clone(), opts);
    // The listener once it is idle: LISTEN done, the idle lock held.
    let pid: i32 = wait_for("the idle listener session", T, || async {
        c.query_opt(
            "SELECT a.pid FROM pg_stat_activity a JOIN pg_locks l USING (pid) \
              WHERE a.application_name = 'mikro-sync listener' AND l.locktype = 'advisory' \
                AND l.classid = $1::int8::oid AND l.objid = $2::int8::oid AND l.granted",
            &[&(IDLE_LOCK_KEY >> 32), &(IDLE_LOCK_KEY & 0xFFFF_FFFF)],
        )
        .await
        .unwrap()
        .map(|r| r.get(0))
    })
    .await;
    let stop = Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(stop.success());
    let s = insert_sale(&c, 1).await;
    // Posted by the poll while the stopped connection still counts as alive (its ping has
    // `listen_timeout` to answer): the loop does not wait for it.
    let posted = tokio::time::timeout(T, async {
        loop {
            if queue_row(&c, s).await.map(|r| r.0).as_deref() == Some("completed") {
                return Metrics::get(&m.listener_reconnects);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // Still stopped: the unanswered ping finds the connection dead and it is replaced.
    let reopened = tokio::time::timeout(T, async {
        while Metrics::get(&m.listener_reconnects) < 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let _ = Command::new("kill")
        .args(["-CONT", &pid.to_string()])
        .status();
    let reconnects =
        posted.expect("the sale was posted although the LISTEN backend stopped answering");
    assert_eq!(
        reconnects, 0,
        "posted only after the dead LISTEN connection was replaced"
    );
    reopened.expect("the unresponsive LISTEN connection was replaced");
    assert_eq!(sink.calls_for(s), 1);
    w.stop().await;
}
