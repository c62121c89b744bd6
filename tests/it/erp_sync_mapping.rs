//! Many web customers → one Mikro account (issue 15 item 5).
//!
//! Each remedy the missing-customer message proposes is done exactly as the message says, and
//! then the document posts; `sync --full` keeps working while several web customers share one
//! Mikro account; the optional default account books customers without any code.

use crate::posting_support;

use std::collections::BTreeMap;
use std::time::Duration;

use mikro_sync::config::Config;
use mikro_sync::db::{erp_pool, web_pool};
use mikro_sync::erp_sync::{self, SyncOptions};
use mikro_sync::posting::{DocKind, PostError};
use posting_support::*;
use uuid::Uuid;

/// A Mikro account, written the way the Mikro program does.
async fn mikro_account(env: &Env, kod: &str, unvan: &str) {
    let mut c = env.h.erp_client().await.expect("erp client");
    let row = mikro_sync::mikro::Row::new(&mikro_sync::mikro::CARI_HESAPLAR)
        .with("cari_kod", kod)
        .unwrap()
        .with("cari_unvan1", unvan)
        .unwrap();
    let now = mikro_sync::mikro::local_now(chrono_tz::Europe::Istanbul);
    mikro_sync::mikro::insert(&mut c, &row, now)
        .await
        .expect("insert CARI_HESAPLAR");
}

async fn sale_for(env: &Env, cari: Uuid) -> Uuid {
    insert_sale(&env.web, &S::of(cari), &[L::new(1, 2, "44.95", "20")]).await
}

/// Posts the document and answers the Mikro account it was booked to (`cha_kod`).
async fn booked_to(env: &mut Env, kind: DocKind, id: Uuid, what: &str) -> String {
    let posted = env.posts(kind, id, what).await;
    env.cha(posted.cha_recno).await.text("cha_kod")
}

async fn missing_message(env: &mut Env, id: Uuid) -> String {
    match env.post(DocKind::Satis, id).await {
        Err(PostError::Data(m)) => m,
        other => panic!("expected the missing-customer data error, got {other:?}"),
    }
}

async fn full_sync(env: &Env) -> erp_sync::SyncReport {
    let web = web_pool(&env.h.web_url(), 4).expect("web pool");
    let erp = erp_pool(&env.h.erp_ado(), 1).await.expect("erp pool");
    let opts = SyncOptions {
        full: true,
        delete_check_every: Duration::ZERO,
        ..SyncOptions::default()
    };
    erp_sync::run(&web, &erp, &opts).await.expect("sync --full")
}

async fn count(env: &Env, sql: &str) -> i64 {
    env.web.query_one(sql, &[]).await.expect(sql).get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_remedy_of_the_missing_customer_messages_works() {
    let mut env = Env::start().await;
    // The seed customers get their mappings from Mikro (120.01.001 → cari 1 among them).
    let r = full_sync(&env).await;
    assert_eq!(r.rejects().count(), 0, "{r}");
    let shared = "SELECT count(*) FROM int_kodmap_cari WHERE erp_cari_kod = '120.01.001'";
    assert_eq!(count(&env, shared).await, 1);

    // load.rs, remedy "set cari_hesaplar.cari_kodu": to an account Mikro has (created after the
    // last sync, so the web does not know it yet).
    mikro_account(&env, "120.01.050", "ŞİRİN İŞ MERKEZİ").await;
    let a = env.new_cari("", "Kodsuz Müşteri A").await;
    let id = sale_for(&env, a).await;
    let m = missing_message(&mut env, id).await;
    let a_s = a.to_string();
    let sale_s = id.to_string();
    for needle in [
        sale_s.as_str(),
        a_s.as_str(),
        "int_kodmap_cari",
        "cari_hesaplar.cari_kodu",
        "MIKRO_SYNC_DEFAULT_CARI",
    ] {
        assert!(m.contains(needle), "{m:?} should name {needle:?}");
    }
    env.web_exec(
        "UPDATE cari_hesaplar SET cari_kodu = '120.01.050' WHERE id = $1",
        &[&a],
    )
    .await;
    assert_eq!(
        booked_to(&mut env, DocKind::Satis, id, "posts with its code").await,
        "120.01.050"
    );

    // load.rs, remedy "add a row to int_kodmap_cari (...; several customers may share one
    // code)": a second web customer booked to the account cari 1 already maps to.
    let b = env.new_cari("", "Perakende Müşteri Şükrü").await;
    let id = sale_for(&env, b).await;
    missing_message(&mut env, id).await;
    env.web
        .execute(
            "INSERT INTO int_kodmap_cari (web_cari_id, erp_cari_kod) VALUES ($1, '120.01.001')",
            &[&b],
        )
        .await
        .expect("a second web customer may map to an account another one maps to");
    assert_eq!(
        booked_to(&mut env, DocKind::Satis, id, "posts once mapped").await,
        "120.01.001"
    );

    // `sync --full` keeps working with the shared account and keeps both mappings; the web
    // customer whose code was fixed is matched to its Mikro account.
    let r = full_sync(&env).await;
    assert_eq!(r.rejects().count(), 0, "{r}");
    assert_eq!(count(&env, shared).await, 2);
    assert_eq!(
        count(
            &env,
            &format!("SELECT count(*) FROM int_kodmap_cari WHERE web_cari_id = '{a}' AND erp_cari_kod = '120.01.050'")
        )
        .await,
        1
    );

    // master.rs, remedy "create the account in Mikro": a web-made code Mikro does not know.
    let e = env.new_cari("WEB-ŞT-İST", "web müşterisi").await;
    let id = sale_for(&env, e).await;
    match env.post(DocKind::Satis, id).await {
        Err(PostError::Data(m)) => assert!(
            m.contains("WEB-ŞT-İST") && m.contains("CARI_HESAPLAR"),
            "{m}"
        ),
        other => panic!("expected a data error, got {other:?}"),
    }
    mikro_account(&env, "WEB-ŞT-İST", "WEB MÜŞTERİSİ").await;
    assert_eq!(
        booked_to(
            &mut env,
            DocKind::Satis,
            id,
            "posts once Mikro has the account"
        )
        .await,
        "WEB-ŞT-İST"
    );

    // load.rs, remedy "set MIKRO_SYNC_DEFAULT_CARI=<code in CARI_HESAPLAR>", through the real
    // setting: customers the web made without a mapping go to that account.
    // (cari_kodu is unique on the web: b gets a web-made code first; its mapping still wins.)
    env.web_exec(
        "UPDATE cari_hesaplar SET cari_kodu = 'WEB-PERAKENDE' WHERE id = $1",
        &[&b],
    )
    .await;
    let c = env.new_cari("", "yeni web müşterisi").await;
    let id = sale_for(&env, c).await;
    missing_message(&mut env, id).await;
    env.cfg = cfg_from(&[("MIKRO_SYNC_DEFAULT_CARI", "120.01.003")]);
    assert_eq!(
        booked_to(&mut env, DocKind::Satis, id, "posts to the default account").await,
        "120.01.003"
    );
    let d = env.new_cari("WEB-0001", "internet müşterisi").await;
    let id = sale_for(&env, d).await;
    assert_eq!(
        booked_to(&mut env, DocKind::Satis, id, "posts").await,
        "120.01.003"
    );
    // The default never overrides a mapping or the code of a customer imported from Mikro.
    for (who, kod) in [
        (cari(2), "120.01.002"),
        (b, "120.01.001"),
        (a, "120.01.050"),
    ] {
        let id = sale_for(&env, who).await;
        assert_eq!(booked_to(&mut env, DocKind::Satis, id, "posts").await, kod);
    }
    // Collections take the same path.
    let t = insert_collection(
        &env.web,
        &T {
            cari: Some(c),
            kasa: Some(kasa(1)),
            ..T::new("nakit", "150.00")
        },
    )
    .await;
    assert_eq!(
        booked_to(&mut env, DocKind::Tahsilat, t, "collection posts").await,
        "120.01.003"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_account_is_off_by_default() {
    assert_eq!(cfg_from(&[]).default_cari_code, None);
    assert_eq!(
        cfg_from(&[("MIKRO_SYNC_DEFAULT_CARI", "off")]).default_cari_code,
        None
    );
    let bad = Config::from_map(&BTreeMap::from([(
        "MIKRO_SYNC_DEFAULT_CARI".to_string(),
        "X".repeat(26),
    )]));
    assert!(format!("{:?}", bad.err()).contains("MIKRO_SYNC_DEFAULT_CARI"));
}
