//! A sale is posted from one consistent read of header and lines, and only when the lines add up
//! to the header's total (net + VAT per line, tolerance 0.01 per line): lines committed after
//! the header wait; a header that never balances fails after the settle window with both totals,
//! without holding up the sales behind it, and posts once fixed as its message says.

use crate::common;
use crate::posting_support;

use std::time::Duration;

use common::{erp_row, fast_opts, full_env, mikro_sink, queue_row, spawn_worker, wait_for};
use mikro_sync::posting::{DocKind, PostError};
use posting_support::{cari, insert_sale, stok, Env, L, S};
use rust_decimal::Decimal;
use uuid::Uuid;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// Inserts a sale header alone (its own transaction), as a web app that commits lines later.
async fn header(web: &tokio_postgres::Client, no: &str, ara: &str, kdv: &str, total: &str) -> Uuid {
    let id = Uuid::new_v4();
    web.execute(
        "INSERT INTO satislar (id, satis_no, cari_hesap_id, satis_tarihi, odeme_sekli, ara_toplam, \
         kdv_tutari, toplam_tutar) VALUES ($1, $2, $3, '2025-11-12', 'vadeli', $4, $5, $6)",
        &[&id, &no, &cari(1), &d(ara), &d(kdv), &d(total)],
    )
    .await
    .expect("insert header");
    id
}

/// Inserts one line (its own transaction).
async fn line(
    web: &tokio_postgres::Client,
    sale: Uuid,
    n: i32,
    qty: i32,
    price: &str,
    rate: &str,
    vat: &str,
) {
    let net = Decimal::from(qty) * d(price);
    web.execute(
        "INSERT INTO satis_kalemleri (satis_id, stok_id, miktar, birim_fiyat, kdv_orani, \
         kdv_tutari, toplam_tutar, sira_no) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &sale,
            &stok(1),
            &qty,
            &d(price),
            &d(rate),
            &d(vat),
            &(net + d(vat)),
            &n,
        ],
    )
    .await
    .expect("insert line");
}

fn not_ready(r: Result<mikro_sync::posting::Posted, PostError>) -> String {
    match r {
        Err(PostError::NotReady(m)) => m,
        other => panic!("expected not ready, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_committed_after_the_header_post_once_complete() {
    let mut env = Env::start().await;
    // 2 × 10.00 @20 % + 1 × 89.90 @20 % + 3 × 1.15 @10 % = 113.35 net + 22.33 VAT = 135.68.
    let id = header(&env.web, "WEB-S-0007", "113.35", "22.33", "135.68").await;
    let m = not_ready(env.post(DocKind::Satis, id).await);
    assert!(
        m.contains("WEB-S-0007") && m.contains(&id.to_string()),
        "{m}"
    );
    line(&env.web, id, 0, 2, "10.00", "20", "4.00").await;
    let m = not_ready(env.post(DocKind::Satis, id).await);
    for needle in [
        "WEB-S-0007",
        &id.to_string(),
        "135.68",
        "24.00",
        "toplam_tutar",
        "1 line",
    ] {
        assert!(m.contains(needle), "{needle:?} missing from: {m}");
    }
    line(&env.web, id, 1, 1, "89.90", "20", "17.98").await;
    let m = not_ready(env.post(DocKind::Satis, id).await);
    assert!(m.contains("131.88"), "{m}");
    assert_eq!(
        env.count("SELECT COUNT(*) FROM dbo.CARI_HESAP_HAREKETLERI")
            .await,
        0,
        "nothing posted while the lines do not add up"
    );
    line(&env.web, id, 2, 3, "1.15", "10", "0.35").await;
    let p = env
        .post(DocKind::Satis, id)
        .await
        .expect("complete sale posts");
    let cha = env.cha(p.cha_recno).await;
    assert!((cha.float("cha_meblag") - 135.68).abs() < 1e-9);
    assert_eq!(env.sth_of(p.cha_recno).await.len(), 3, "all lines posted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rounding_within_a_cent_per_line_balances_and_beyond_does_not() {
    let mut env = Env::start().await;
    // Three lines of 0.10 @ 1 %: each line's VAT rounds to 0.00, the header computed the VAT on
    // the sum (0.003 → 0.00) or per line with another rounding (0.03): both within 3 × 0.01.
    for (total, ok) in [
        ("0.30", true),
        ("0.33", true),
        ("0.34", false),
        ("0.26", false),
    ] {
        let id = header(&env.web, "WEB-S-R", "0.30", "0.00", total).await;
        for n in 0..3 {
            line(&env.web, id, n, 1, "0.10", "1", "0.00").await;
        }
        let r = env.post(DocKind::Satis, id).await;
        if ok {
            r.unwrap_or_else(|e| panic!("total {total}: {e}"));
        } else {
            let m = not_ready(r);
            assert!(
                m.contains(total) && m.contains("0.30") && m.contains("0.03"),
                "{m}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_that_never_balances_fails_after_the_window_without_blocking_and_posts_once_fixed()
{
    let env = full_env().await;
    let web = common::connect(&env.url).await;
    let good1 = insert_sale(&web, &S::open(), &[L::new(1, 1, "10", "20")]).await;
    // The case: the header says 1000 while its line is 89.90 + 17.98 VAT.
    let bad = Uuid::new_v4();
    web.batch_execute(&format!(
        "BEGIN; INSERT INTO satislar (id, satis_no, cari_hesap_id, satis_tarihi, odeme_sekli, \
         ara_toplam, kdv_tutari, toplam_tutar) VALUES ('{bad}', 'WEB-S-1000', '{c}', \
         '2025-11-12', 'vadeli', 89.90, 17.98, 1000); \
         INSERT INTO satis_kalemleri (satis_id, stok_id, miktar, birim_fiyat, kdv_orani, \
         kdv_tutari, toplam_tutar, sira_no) VALUES ('{bad}', '{s}', 1, 89.90, 20, 17.98, 107.88, 0); \
         COMMIT",
        c = cari(1),
        s = stok(1)
    ))
    .await
    .unwrap();
    let good2 = insert_sale(&web, &S::open(), &[L::new(2, 3, "7.5", "10")]).await;
    let w = spawn_worker(&env.pool, &env.url, mikro_sink(&env, 2).await, fast_opts());
    let t = Duration::from_secs(60);
    let msg = wait_for("the unbalanced sale to fail", t, || async {
        match queue_row(&web, bad).await {
            Some((s, _, m)) if s == "failed" => m,
            _ => None,
        }
    })
    .await;
    for needle in [
        "WEB-S-1000",
        &bad.to_string(),
        "1000.00",
        "107.88",
        "toplam_tutar",
        "satis_kalemleri",
        "still so after",
        "pending",
    ] {
        assert!(msg.contains(needle), "{needle:?} missing from: {msg}");
    }
    assert_eq!(msg.lines().count(), 1, "one line: {msg}");
    for id in [good1, good2] {
        wait_for("the good sales to complete", t, || async {
            matches!(queue_row(&web, id).await, Some((s, _, _)) if s == "completed").then_some(())
        })
        .await;
    }
    // The remedy the message names: correct the header, then set the queue row to pending.
    web.execute(
        "UPDATE satislar SET toplam_tutar = 107.88 WHERE id = $1",
        &[&bad],
    )
    .await
    .unwrap();
    web.execute(
        "UPDATE sync_queue SET status = 'pending', retry_count = 0 WHERE entity_id = $1 \
         AND status = 'failed'",
        &[&bad],
    )
    .await
    .unwrap();
    wait_for("the corrected sale to post", t, || async {
        matches!(queue_row(&web, bad).await, Some((s, _, _)) if s == "completed").then_some(())
    })
    .await;
    w.stop().await;
    let n: Option<i32> = web
        .query_one("SELECT fatura_sira_no FROM satislar WHERE id = $1", &[&bad])
        .await
        .unwrap()
        .get(0);
    assert!(n.is_some(), "number written back");
    let meblag: f64 = erp_row(
        &env,
        "SELECT c.cha_meblag FROM dbo.CARI_HESAP_HAREKETLERI c JOIN dbo.MIKROSYNC_LEDGER l \
         ON l.ml_cha_recno = c.cha_RECno WHERE l.ml_web_id = @P1",
        &[&bad],
    )
    .await
    .get(0)
    .expect("cha_meblag");
    assert!((meblag - 107.88).abs() < 1e-9, "{meblag}");
}
