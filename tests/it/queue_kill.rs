//! kill -9 of a worker process in the middle of processing: no row stays claimed (neither the
//! ones in flight nor the ones claimed ahead), nothing is posted twice. The child is this test binary re-invoked with `QUEUE_KILL_CHILD_URL` set, which
//! turns `child_worker_entry` into a worker whose sink never finishes.

use crate::common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use mikro_sync::queue::{PgListenConnector, Worker};
use mikro_sync::shutdown::ShutdownController;

const CHILD_ENV: &str = "QUEUE_KILL_CHILD_URL";
const CHILD_NAME: &str = "kill-test-child";

/// Child mode only (a no-op in a normal run).
#[tokio::test]
async fn child_worker_entry() {
    let Ok(url) = std::env::var(CHILD_ENV) else {
        return;
    };
    let pool = mikro_sync::db::web_pool(&url, 4).unwrap();
    let mut sink = ScriptSink::ok();
    sink.delay = Duration::from_secs(3600); // stuck "in the ERP" until killed
    let mut opts = fast_opts();
    opts.name = CHILD_NAME.into();
    opts.concurrency = 8;
    // 8 in flight and 8 more claimed ahead: a kill must lose neither kind.
    opts.prefetch = Some(8);
    opts.lease = Duration::from_secs(2);
    let ctl = ShutdownController::new();
    let listen = Arc::new(PgListenConnector::from_url_notls(&url).unwrap());
    let _ = Worker::new(pool, listen, sink, opts)
        .run(ctl.subscribe())
        .await;
}

#[tokio::test]
async fn kill_9_mid_processing_leaves_no_claimed_rows_and_no_duplicates() {
    let env = web_env(true).await;
    let c = env.client().await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(insert_sale(&c, 1).await);
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "queue_kill::child_worker_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &env.url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child worker");
    wait_for("child claimed rows", Duration::from_secs(60), || async {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM sync_queue WHERE status = 'processing' AND claimed_by = $1",
                &[&CHILD_NAME],
            )
            .await
            .unwrap()
            .get(0);
        (n == 16).then_some(())
    })
    .await;
    child.kill().expect("kill -9"); // SIGKILL: no clean-up code runs in the child
    child.wait().unwrap();

    // A fresh worker rescues the dead worker's rows once their lease ran out, and posts all.
    let sink = ScriptSink::ok();
    let w = spawn_worker(&env.pool, &env.url, sink.clone(), fast_opts());
    wait_drained(&c, Duration::from_secs(60)).await;
    assert_eq!(count_status(&c, "processing").await, 0);
    assert_eq!(count_status(&c, "completed").await, 20);
    for id in &ids {
        assert_eq!(
            sink.calls_for(*id),
            1,
            "posted exactly once by the survivor"
        );
    }
    let rescued: i64 = c
        .query_one("SELECT count(*) FROM sync_queue WHERE retry_count = 2", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        rescued, 16,
        "the 16 rows the child held (8 in flight, 8 prefetched) were rescued and attempted again"
    );
    w.stop().await;
}
