//! kill -9 of a worker process while it posts into the emulator: afterwards no row is left
//! claimed, every document is in Mikro exactly once and completed on the web. The child is this
//! binary re-invoked with `PIPELINE_KILL_CHILD` set (see `child_worker_entry`).

use crate::common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use mikro_sync::queue::{MikroSink, PgListenConnector, Worker};
use mikro_sync::shutdown::ShutdownController;

const CHILD_WEB: &str = "PIPELINE_KILL_CHILD_WEB";
const CHILD_ERP: &str = "PIPELINE_KILL_CHILD_ERP";

/// Child mode only (a no-op in a normal run): a production worker (MikroSink) until killed.
#[tokio::test]
async fn child_worker_entry() {
    let (Ok(web), Ok(erp)) = (std::env::var(CHILD_WEB), std::env::var(CHILD_ERP)) else {
        return;
    };
    let pool = mikro_sync::db::web_pool(&web, 8).unwrap();
    let erp = mikro_sync::db::erp_pool(&erp, 4).await.unwrap();
    let sink = MikroSink {
        web: pool.clone(),
        erp,
        cfg: mikro_sync::posting::PostingConfig::default(),
    };
    let mut opts = fast_opts();
    opts.name = "pipeline-kill-child".into();
    opts.concurrency = 4;
    opts.lease = Duration::from_secs(2);
    let ctl = ShutdownController::new();
    let listen = Arc::new(PgListenConnector::from_url_notls(&web).unwrap());
    let _ = Worker::new(pool, listen, sink, opts)
        .run(ctl.subscribe())
        .await;
}

#[tokio::test]
async fn kill_9_while_posting_leaves_every_document_exactly_once() {
    let env = full_env().await;
    let c = connect(&env.url).await;
    let mut ids = Vec::new();
    for i in 0..120 {
        ids.push(if i % 4 == 0 {
            insert_collection(&c, "75.50").await
        } else {
            insert_sale(&c, 3).await
        });
    }
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "pipeline_kill::child_worker_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_WEB, &env.url)
        .env(CHILD_ERP, env.h.erp_ado())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child worker");
    // Kill it in the middle: some documents done, others in flight.
    wait_for("child mid-way", Duration::from_secs(120), || async {
        let done = count_status(&c, "completed").await;
        let busy = count_status(&c, "processing").await;
        (done >= 10 && busy > 0).then_some(())
    })
    .await;
    child.kill().expect("kill -9");
    child.wait().unwrap();
    let done_by_child = count_status(&c, "completed").await;
    assert!(done_by_child < 120, "killed before the end");

    let w = spawn_worker(&env.pool, &env.url, mikro_sink(&env, 4).await, fast_opts());
    wait_drained(&c, Duration::from_secs(120)).await;
    w.stop().await;
    assert_eq!(count_status(&c, "processing").await, 0);
    assert_eq!(count_status(&c, "completed").await, 120);
    for (id, ledger, cha) in erp_postings(&env, &ids).await {
        assert_eq!((ledger, cha), (1, 1), "document {id} in Mikro exactly once");
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
    assert_eq!(unnumbered, 0, "every number written back");
}
