//! Exactly-once in effect (DOMAIN §6) and numbering under concurrency (§5.3).

use crate::posting_support;

use std::collections::BTreeSet;

use mikro_sync::posting::{post_document, DocKind, PostingConfig};
use posting_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posting_twice_writes_one_document() {
    let mut env = Env::start().await;
    let id = insert_sale(
        &env.web,
        &S::open(),
        &[L::new(1, 2, "10", "20"), L::new(2, 1, "5", "10")],
    )
    .await;
    let first = env.post(DocKind::Satis, id).await.unwrap();
    assert!(!first.already_posted);
    let second = env.post(DocKind::Satis, id).await.unwrap();
    assert!(
        second.already_posted,
        "the ledger must recognise the document"
    );
    assert_eq!(
        (second.seri.as_str(), second.sira, second.cha_recno),
        (first.seri.as_str(), first.sira, first.cha_recno)
    );
    assert_eq!(
        env.count("SELECT COUNT(*) FROM dbo.CARI_HESAP_HAREKETLERI")
            .await,
        1
    );
    assert_eq!(
        env.count("SELECT COUNT(*) FROM dbo.STOK_HAREKETLERI").await,
        2
    );

    // Collections too (the old tool had no duplicate check for them at all).
    let t = insert_collection(
        &env.web,
        &T {
            banka: Some(banka("10")),
            ..T::new("havale", "99.90")
        },
    )
    .await;
    let a = env.post(DocKind::Tahsilat, t).await.unwrap();
    let b = env.post(DocKind::Tahsilat, t).await.unwrap();
    assert!(!a.already_posted && b.already_posted);
    assert_eq!(a.sira, b.sira);
    assert_eq!(
        env.count("SELECT COUNT(*) FROM dbo.ODEME_EMIRLERI").await,
        1
    );
    assert_eq!(
        env.count("SELECT COUNT(*) FROM dbo.CARI_HESAP_HAREKETLERI")
            .await,
        2
    );
    // The web id is only in the ledger, never in a Mikro business column.
    assert_eq!(
        env.count("SELECT COUNT(*) FROM dbo.MIKROSYNC_LEDGER").await,
        2
    );
    for table in [
        "CARI_HESAP_HAREKETLERI",
        "STOK_HAREKETLERI",
        "ODEME_EMIRLERI",
    ] {
        for row in env.rows(&format!("SELECT * FROM dbo.{table}"), &[]).await {
            for (col, v) in &row.0 {
                if let tiberius::ColumnData::String(Some(text)) = v {
                    for web_id in [id, t] {
                        assert!(
                            !text.to_lowercase().contains(&web_id.to_string()),
                            "{table}.{col} holds the web id"
                        );
                    }
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_postings_get_unique_consecutive_numbers() {
    let env = Env::start().await;
    let mut ids = Vec::new();
    for _ in 0..200 {
        ids.push(insert_sale(&env.web, &S::open(), &[L::new(1, 1, "10", "20")]).await);
    }
    let mut tasks = Vec::new();
    for chunk in ids.chunks(50) {
        let chunk = chunk.to_vec();
        let url = env.h.web_url();
        let mut erp = env.h.erp_client().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let web = connect(&url).await;
            let cfg = PostingConfig::default();
            let mut out = Vec::new();
            for id in chunk {
                let p = post_document(&web, &mut erp, &cfg, DocKind::Satis, id)
                    .await
                    .unwrap_or_else(|e| panic!("{id}: {e}"));
                out.push(p.sira);
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let set: BTreeSet<i32> = all.iter().copied().collect();
    assert_eq!(set.len(), 200, "numbers unique");
    let lo = *set.iter().next().unwrap();
    let hi = *set.iter().last().unwrap();
    assert_eq!(hi - lo, 199, "numbers consecutive: {lo}..={hi}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_series_lock_is_a_transient_failure_and_web_series_are_used() {
    let mut env = Env::start().await;
    // Another transaction holds the numbering lock of series ST.
    let mut other = env.h.erp_client().await.unwrap();
    other
        .simple_query(
            "BEGIN TRAN; DECLARE @r int; EXEC @r = sp_getapplock @Resource = N'mikro-sync:63:ST', \
             @LockMode = 'Exclusive', @LockOwner = 'Transaction'; SELECT @r",
        )
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
    env.cfg.lock_timeout_ms = 300;
    let id = insert_sale(&env.web, &S::open(), &[L::new(1, 1, "10", "20")]).await;
    match env.post(DocKind::Satis, id).await {
        Err(mikro_sync::posting::PostError::Transient(m)) => assert!(m.contains("lock"), "{m}"),
        other => panic!("expected a transient lock timeout, got {other:?}"),
    }
    assert_eq!(
        env.count("SELECT COUNT(*) FROM dbo.CARI_HESAP_HAREKETLERI")
            .await,
        0
    );
    // Another series is not blocked; the web row's series wins over the configured one.
    let web_series = insert_sale(
        &env.web,
        &S {
            seri: Some("WS"),
            ..S::open()
        },
        &[L::new(1, 1, "10", "20")],
    )
    .await;
    let p = env.post(DocKind::Satis, web_series).await.unwrap();
    assert_eq!((p.seri.as_str(), p.sira), ("WS", 1));
    assert_eq!(env.cha(p.cha_recno).await.text("cha_evrakno_seri"), "WS");
    // Once released, the retry posts.
    other
        .simple_query("ROLLBACK TRAN")
        .await
        .unwrap()
        .into_results()
        .await
        .unwrap();
    let p = env.post(DocKind::Satis, id).await.unwrap();
    assert_eq!(
        (p.seri.as_str(), p.sira, p.already_posted),
        ("ST", 1, false)
    );
}

/// A document already in Mikro whose web row then changed so that it no longer validates (or is
/// gone) is completed with the ledger's number: the ledger is consulted before the web document
/// is judged. Each case: post, break the web row, post again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_posted_document_is_completed_with_its_number_whatever_its_web_row_says_now() {
    let mut env = Env::start().await;
    let breakages: [(&str, &str); 5] = [
        (
            "lines deleted (not ready)",
            "DELETE FROM satis_kalemleri WHERE satis_id = $1",
        ),
        (
            "customer removed (load error)",
            "UPDATE satislar SET cari_hesap_id = NULL WHERE id = $1",
        ),
        (
            "unknown payment kind (load error)",
            "UPDATE satislar SET odeme_sekli = 'bitcoin' WHERE id = $1",
        ),
        (
            "negative total (validation error)",
            "UPDATE satislar SET toplam_tutar = -5 WHERE id = $1",
        ),
        ("row deleted", "DELETE FROM satislar WHERE id = $1"),
    ];
    for (what, sql) in breakages {
        let id = insert_sale(&env.web, &S::open(), &[L::new(1, 1, "10", "20")]).await;
        let first = env.post(DocKind::Satis, id).await.unwrap();
        assert!(!first.already_posted, "{what}");
        if sql.starts_with("DELETE FROM satislar") {
            env.web_exec("DELETE FROM satis_kalemleri WHERE satis_id = $1", &[&id])
                .await;
        }
        env.web_exec(sql, &[&id]).await;
        let again = env.posts(DocKind::Satis, id, what).await;
        assert!(again.already_posted, "{what}");
        assert_eq!(
            (again.seri.as_str(), again.sira, again.cha_recno),
            (first.seri.as_str(), first.sira, first.cha_recno),
            "{what}"
        );
    }
    // A collection changed to an unknown kind after posting (an error found while posting).
    let t = insert_collection(&env.web, &T::new("nakit", "50")).await;
    env.web_exec(
        "UPDATE tahsilatlar SET kasa_id = $2 WHERE id = $1",
        &[&t, &kasa(1)],
    )
    .await;
    let first = env.posts(DocKind::Tahsilat, t, "a cash collection").await;
    env.web_exec(
        "UPDATE tahsilatlar SET tahsilat_tipi = 'bitcoin' WHERE id = $1",
        &[&t],
    )
    .await;
    let again = env
        .posts(
            DocKind::Tahsilat,
            t,
            "posted, then changed to an unknown kind",
        )
        .await;
    assert!(again.already_posted);
    assert_eq!(again.sira, first.sira);
    // Not posted and invalid: still the document's own error.
    let never = insert_sale(&env.web, &S::open(), &[L::new(1, 1, "10", "20")]).await;
    env.web_exec(
        "UPDATE satislar SET odeme_sekli = 'bitcoin' WHERE id = $1",
        &[&never],
    )
    .await;
    match env.post(DocKind::Satis, never).await {
        Err(mikro_sync::posting::PostError::Data(m)) => assert!(m.contains("bitcoin"), "{m}"),
        other => panic!("expected the data error, got {other:?}"),
    }
    assert_eq!(
        env.count("SELECT COUNT(*) FROM dbo.MIKROSYNC_LEDGER").await,
        6
    );
}
