//! The whole web→ERP pipeline against real PostgreSQL and the emulator (through tiberius and
//! bb8, as in production): exactly-once under a failure injected between the ERP commit and the
//! web completion, and two workers giving unique numbers without double posting.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use mikro_sync::queue::Metrics;
use uuid::Uuid;

const T: Duration = Duration::from_secs(120);

#[tokio::test]
async fn failure_after_erp_commit_posts_exactly_once() {
    let env = full_env().await;
    let c = connect(&env.url).await;
    let sale = insert_sale(&c, 3).await;
    let coll = insert_collection(&c, "250.00").await;
    let metrics = Arc::new(Metrics::default());
    let mut opts = fast_opts();
    opts.metrics = metrics.clone();
    // The first two successful postings "crash" after the ERP commit, before the web side.
    let inject = Arc::new(AtomicUsize::new(2));
    opts.hooks.fail_after_erp_commit = Some(inject.clone());
    let sink = mikro_sink(&env, 2).await;
    let w = spawn_worker(&env.pool, &env.url, sink, opts);
    wait_drained(&c, T).await;
    assert_eq!(
        inject.load(Ordering::SeqCst),
        0,
        "both failures were injected"
    );
    for id in [sale, coll] {
        let (status, attempts, _) = queue_row(&c, id).await.unwrap();
        assert_eq!(status, "completed");
        assert_eq!(attempts, 2, "one injected failure, one retry");
    }
    for (id, ledger, cha) in erp_postings(&env, &[sale, coll]).await {
        assert_eq!(
            (ledger, cha),
            (1, 1),
            "document {id} is in Mikro exactly once"
        );
    }
    assert_eq!(metrics.already_posted.load(Ordering::Relaxed), 2);
    // The number from the ledger reached the web rows.
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM satislar WHERE id = $1 AND fatura_sira_no IS NOT NULL",
            &[&sale],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let n: i64 = c
        .query_one(
            "SELECT count(*) FROM tahsilatlar WHERE id = $1 AND tahsilat_sira_no IS NOT NULL",
            &[&coll],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    // Editing the posted sale never posts it again.
    assert_eq!(common::edit_posted_sale_then_count_open(&c, sale).await, 0);
    w.stop().await;
    for (_, ledger, cha) in erp_postings(&env, &[sale]).await {
        assert_eq!((ledger, cha), (1, 1));
    }
}

#[tokio::test]
async fn two_workers_give_unique_numbers_and_never_post_twice() {
    let env = full_env().await;
    let c = connect(&env.url).await;
    let mut opts_a = fast_opts();
    opts_a.concurrency = 3;
    opts_a.name = "worker-a".into();
    let mut opts_b = opts_a.clone();
    opts_b.name = "worker-b".into();
    opts_b.metrics = Arc::new(Metrics::default());
    let a = spawn_worker(&env.pool, &env.url, mikro_sink(&env, 3).await, opts_a);
    let b = spawn_worker(&env.pool, &env.url, mikro_sink(&env, 3).await, opts_b);
    let mut sales = Vec::new();
    let mut colls = Vec::new();
    for i in 0..45 {
        if i % 3 == 0 {
            colls.push(insert_collection(&c, "10.00").await);
        } else {
            sales.push(insert_sale(&c, 2).await);
        }
    }
    wait_drained(&c, T).await;
    let ra = a.stop().await;
    let rb = b.stop().await;
    assert_eq!(ra.posted + rb.posted, 45);
    assert_eq!(count_status(&c, "completed").await, 45);
    let all: Vec<Uuid> = sales.iter().chain(colls.iter()).copied().collect();
    for (id, ledger, cha) in erp_postings(&env, &all).await {
        assert_eq!((ledger, cha), (1, 1), "document {id}");
    }
    // Unique numbers per series on the web side and in Mikro.
    let dup: i64 = c
        .query_one(
            "SELECT count(*) FROM (SELECT fatura_seri_no, fatura_sira_no FROM satislar \
              WHERE fatura_sira_no IS NOT NULL GROUP BY 1, 2 HAVING count(*) > 1) d",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(dup, 0);
    let numbered: i64 = c
        .query_one(
            "SELECT count(*) FROM satislar WHERE id = ANY($1) AND fatura_sira_no IS NOT NULL",
            &[&sales],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(numbered, sales.len() as i64);
    let dup_erp = erp_count(
        &env,
        "SELECT COUNT(*) FROM (SELECT cha_evrak_tip, cha_evrakno_seri, cha_evrakno_sira \
           FROM dbo.CARI_HESAP_HAREKETLERI GROUP BY cha_evrak_tip, cha_evrakno_seri, cha_evrakno_sira \
          HAVING COUNT(*) > 1) d",
        &[],
    )
    .await;
    assert_eq!(dup_erp, 0);
}

#[tokio::test]
async fn header_before_lines_waits_and_a_sale_without_lines_fails_without_blocking() {
    let env = full_env().await;
    let c = connect(&env.url).await;
    let w = spawn_worker(&env.pool, &env.url, mikro_sink(&env, 2).await, fast_opts());
    // Header committed on its own; its lines follow in a later transaction.
    let late = Uuid::new_v4();
    c.execute(
        "INSERT INTO satislar (id, cari_hesap_id, odeme_sekli, ara_toplam, kdv_tutari, toplam_tutar) \
         VALUES ($1, $2, 'vadeli', 300, 60, 360)",
        &[&late, &CARI_1.parse::<Uuid>().unwrap()],
    )
    .await
    .unwrap();
    let never = insert_sale(&c, 0).await;
    let fine = insert_sale(&c, 2).await;
    wait_for("first attempt of the late sale", T, || async {
        (queue_row(&c, late).await.unwrap().1 >= 1).then_some(())
    })
    .await;
    // The lines arrive together, in one later transaction.
    c.batch_execute(&format!(
        "BEGIN; {} COMMIT;",
        (0..3)
            .map(|i| format!(
                "INSERT INTO satis_kalemleri (satis_id, stok_id, miktar, birim_fiyat, kdv_orani, \
                 kdv_tutari, toplam_tutar, sira_no) VALUES ('{late}', '{STOK_1}', 1, 100, 20, 20, 120, {i});"
            ))
            .collect::<String>()
    ))
    .await
    .unwrap();
    wait_drained(&c, T).await;
    w.stop().await;
    assert_eq!(queue_row(&c, fine).await.unwrap().0, "completed");
    let (status, _, _) = queue_row(&c, late).await.unwrap();
    assert_eq!(status, "completed");
    let lines = erp_count(
        &env,
        "SELECT ml_sth_count FROM dbo.MIKROSYNC_LEDGER WHERE ml_web_id = @P1",
        &[&late],
    )
    .await;
    assert_eq!(lines, 3, "posted with all its lines");
    let (status, attempts, msg) = queue_row(&c, never).await.unwrap();
    assert_eq!(status, "failed");
    assert!(attempts > 1);
    assert!(msg.unwrap().contains("no lines"));
    for (id, ledger, _) in erp_postings(&env, &[never]).await {
        assert_eq!(ledger, 0, "{id} never reached Mikro");
    }
}
