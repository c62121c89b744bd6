//! Validation before posting: dates within SQL Server `datetime` and the plausibility window,
//! cheques and notes with their number and due date, passive products. Every message names the
//! web document (number and id), the field, the value and the fix in one line; each fix it
//! proposes is done here exactly as written and the document then posts. Bad documents never
//! hold up the ones behind them.

use crate::common;
use crate::posting_support;

use std::time::Duration;

use chrono::NaiveDate;
use mikro_sync::posting::DocKind;
use posting_support::{insert_collection, insert_sale, stok, Env, L, S, T};

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dates_outside_datetime_or_the_window_are_refused_and_each_fix_posts() {
    let mut env = Env::start().await;
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::Europe::Istanbul)
        .date_naive();
    let sale = |no: &str, date: NaiveDate| S {
        no: Some(no.into()),
        date,
        ..S::open()
    };
    let line = [L::new(1, 1, "10", "20")];

    // 1700-01-01: SQL Server datetime cannot hold it. Fix: correct satis_tarihi.
    let id = insert_sale(&env.web, &sale("WEB-S-1700", ymd(1700, 1, 1)), &line).await;
    env.validation_error(
        DocKind::Satis,
        id,
        &[
            "WEB-S-1700",
            "satislar.satis_tarihi",
            "1700-01-01",
            "correct",
        ],
    )
    .await;
    env.web_exec(
        "UPDATE satislar SET satis_tarihi = '2025-11-12' WHERE id = $1",
        &[&id],
    )
    .await;
    env.posts(DocKind::Satis, id, "posts once corrected").await;

    // 9999-12-31: storable, but far ahead. Fix: correct satis_tarihi.
    let id = insert_sale(&env.web, &sale("WEB-S-9999", ymd(9999, 12, 31)), &line).await;
    env.validation_error(
        DocKind::Satis,
        id,
        &[
            "WEB-S-9999",
            "satis_tarihi",
            "9999-12-31",
            "MIKRO_SYNC_MAX_DAYS_AHEAD",
        ],
    )
    .await;
    env.web_exec(
        "UPDATE satislar SET satis_tarihi = $2 WHERE id = $1",
        &[&id, &today],
    )
    .await;
    env.posts(DocKind::Satis, id, "posts once corrected").await;

    // Two days ahead: the other fix, raising MIKRO_SYNC_MAX_DAYS_AHEAD to the value named.
    let ahead = today + chrono::Duration::days(2);
    let id = insert_sale(&env.web, &sale("WEB-S-AHEAD", ahead), &line).await;
    let m = env
        .validation_error(
            DocKind::Satis,
            id,
            &[
                "WEB-S-AHEAD",
                &ahead.to_string(),
                "set MIKRO_SYNC_MAX_DAYS_AHEAD to 2",
            ],
        )
        .await;
    assert!(m.contains("Europe/Istanbul"), "{m}");
    env.posts_with(
        &[("MIKRO_SYNC_MAX_DAYS_AHEAD", "2")],
        DocKind::Satis,
        id,
        "posts with the setting",
    )
    .await;

    // Before 2000-01-01: "set MIKRO_SYNC_EARLIEST_DATE to 1999-06-30 or earlier".
    let id = insert_sale(&env.web, &sale("WEB-S-1999", ymd(1999, 6, 30)), &line).await;
    env.validation_error(
        DocKind::Satis,
        id,
        &[
            "WEB-S-1999",
            "1999-06-30",
            "set MIKRO_SYNC_EARLIEST_DATE to 1999-06-30",
        ],
    )
    .await;
    env.posts_with(
        &[("MIKRO_SYNC_EARLIEST_DATE", "1999-06-30")],
        DocKind::Satis,
        id,
        "posts with the setting",
    )
    .await;

    // A collection dated 1700: same check, its own field.
    let id = insert_collection(
        &env.web,
        &T {
            no: Some("WEB-T-1700".into()),
            date: ymd(1700, 1, 1),
            kasa: Some(posting_support::kasa(1)),
            ..T::new("nakit", "10")
        },
    )
    .await;
    env.validation_error(
        DocKind::Tahsilat,
        id,
        &["WEB-T-1700", "tahsilatlar.tahsilat_tarihi", "1700-01-01"],
    )
    .await;
    assert_eq!(
        env.count("SELECT COUNT(*) FROM dbo.MIKROSYNC_LEDGER").await,
        4,
        "only the corrected documents are in Mikro"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cheques_and_notes_need_number_and_due_date() {
    let mut env = Env::start().await;
    for tipi in ["cek", "senet"] {
        let no = format!("WEB-T-{tipi}");
        let id = insert_collection(
            &env.web,
            &T {
                no: Some(no.clone()),
                ..T::new(tipi, "500")
            },
        )
        .await;
        // Each fix the previous message asked for, then what the next message must say.
        for (fix, needles) in [
            // No number: "set cek_no".
            (None, &["tahsilatlar.cek_no", "set cek_no"][..]),
            // No due date: "set vade_tarihi".
            (
                Some("UPDATE tahsilatlar SET cek_no = 'ÇK-4711' WHERE id = $1"),
                &["tahsilatlar.vade_tarihi", "set vade_tarihi"],
            ),
            // Due before the document date (2025-11-12): "correct vade_tarihi".
            (
                Some("UPDATE tahsilatlar SET vade_tarihi = '2025-11-01' WHERE id = $1"),
                &[
                    "vade_tarihi 2025-11-01",
                    "2025-11-12",
                    "correct vade_tarihi",
                ],
            ),
        ] {
            if let Some(sql) = fix {
                env.web_exec(sql, &[&id]).await;
            }
            let needles: Vec<&str> = [no.as_str()].iter().chain(needles).copied().collect();
            env.validation_error(DocKind::Tahsilat, id, &needles).await;
        }
        env.web_exec(
            "UPDATE tahsilatlar SET vade_tarihi = '2026-02-01' WHERE id = $1",
            &[&id],
        )
        .await;
        let p = env
            .posts(DocKind::Tahsilat, id, "posts once complete")
            .await;
        let refno = env.cha(p.cha_recno).await.text("cha_trefno");
        let sck = env.sck_by_refno(&refno).await;
        assert_eq!(sck[0].text("sck_no"), "ÇK-4711");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_products_are_refused_unless_allowed() {
    let mut env = Env::start().await;
    // STK-0002 is passive in Mikro; the ERP → web sync wrote stoklar.aktif = false.
    env.web_exec(
        "UPDATE stoklar SET aktif = false WHERE id = $1",
        &[&stok(2)],
    )
    .await;
    let s = S {
        no: Some("WEB-S-PASİF".into()),
        ..S::open()
    };
    let lines = [L::new(1, 1, "10", "20"), L::new(2, 2, "5", "10")];
    let id = insert_sale(&env.web, &s, &lines).await;
    let m = env
        .validation_error(
            DocKind::Satis,
            id,
            &[
                "WEB-S-PASİF",
                "line 2",
                &stok(2).to_string(),
                "passive",
                "stoklar.aktif",
                "MIKRO_SYNC_ALLOW_PASSIVE_PRODUCTS=true",
            ],
        )
        .await;
    // Fix 1, as the message says: allow passive products.
    env.posts_with(
        &[("MIKRO_SYNC_ALLOW_PASSIVE_PRODUCTS", "true")],
        DocKind::Satis,
        id,
        &m,
    )
    .await;
    // Fix 2: put an active product on the line (stok_id).
    let id = insert_sale(&env.web, &s, &lines).await;
    env.validation_error(DocKind::Satis, id, &["passive"]).await;
    env.web_exec(
        "UPDATE satis_kalemleri SET stok_id = $2 WHERE satis_id = $1 AND stok_id = $3",
        &[&id, &stok(3), &stok(2)],
    )
    .await;
    let p = env
        .posts(DocKind::Satis, id, "posts with an active product")
        .await;
    let codes: Vec<String> = env
        .sth_of(p.cha_recno)
        .await
        .iter()
        .map(|r| r.text("sth_stok_kod"))
        .collect();
    assert_eq!(codes, ["STK-0001", "STK-0003"]);
}

/// Through the queue: bad documents between good ones fail with their message; the good ones
/// complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_documents_between_good_ones_do_not_hold_them_up() {
    let env = common::full_env().await;
    let web = common::connect(&env.url).await;
    let good = || S::open();
    let line = [L::new(1, 1, "10", "20")];
    let mut goods = Vec::new();
    let mut bads = Vec::new();
    for i in 0..3 {
        goods.push(insert_sale(&web, &good(), &line).await);
        bads.push(match i {
            0 => {
                insert_sale(
                    &web,
                    &S {
                        date: ymd(1700, 1, 1),
                        ..good()
                    },
                    &line,
                )
                .await
            }
            1 => insert_collection(&web, &T::new("cek", "10")).await,
            _ => {
                insert_sale(
                    &web,
                    &S {
                        date: ymd(9999, 12, 31),
                        ..good()
                    },
                    &line,
                )
                .await
            }
        });
    }
    goods.push(insert_sale(&web, &good(), &line).await);
    let w = common::spawn_worker(
        &env.pool,
        &env.url,
        common::mikro_sink(&env, 2).await,
        common::fast_opts(),
    );
    common::wait_drained(&web, Duration::from_secs(120)).await;
    w.stop().await;
    for id in goods {
        let (status, _, _) = common::queue_row(&web, id).await.unwrap();
        assert_eq!(status, "completed", "good document {id}");
    }
    for id in bads {
        let (status, _, msg) = common::queue_row(&web, id).await.unwrap();
        let msg = msg.unwrap_or_default();
        assert_eq!(status, "failed", "bad document {id}: {msg}");
        assert!(msg.contains(&id.to_string()), "{msg}");
    }
}
