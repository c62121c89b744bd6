//! Each remedy that a posting failure message proposes, done exactly as the message says, after
//! which the document posts.

mod posting_support;

use std::collections::BTreeMap;

use mikro_sync::config::Config;
use mikro_sync::posting::{DocKind, PostError, PostingConfig};
use posting_support::{banka, insert_collection, insert_sale, kasa, Env, L, S, T};
use uuid::Uuid;

fn cfg_from(vars: &[(&str, &str)]) -> PostingConfig {
    let map: BTreeMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_map(&map).expect("config").posting_config()
}

async fn data_error(env: &mut Env, kind: DocKind, id: Uuid, needles: &[&str]) -> String {
    match env.post(kind, id).await {
        Err(PostError::Data(m)) => {
            for n in needles {
                assert!(m.contains(n), "{n:?} missing from: {m}");
            }
            m
        }
        other => panic!("expected a data error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_proposed_remedy_makes_the_document_post() {
    let mut env = Env::start().await;
    let line = [L::new(1, 1, "10", "20")];
    let card = || S {
        odeme: "kredi_karti",
        ..S::open()
    };

    // No bank and no default: "set satislar.banka_id ...".
    let id = insert_sale(&env.web, &card(), &line).await;
    data_error(
        &mut env,
        DocKind::Satis,
        id,
        &[
            "satislar.banka_id",
            "MIKRO_SYNC_DEFAULT_BANKA=<code in BANKALAR>",
        ],
    )
    .await;
    env.web
        .execute(
            "UPDATE satislar SET banka_id = $2 WHERE id = $1",
            &[&id, &banka("01")],
        )
        .await
        .unwrap();
    env.post(DocKind::Satis, id)
        .await
        .expect("posts with banka_id");
    // ... "or set MIKRO_SYNC_DEFAULT_BANKA=<code in BANKALAR>".
    let id = insert_sale(&env.web, &card(), &line).await;
    data_error(&mut env, DocKind::Satis, id, &["MIKRO_SYNC_DEFAULT_BANKA"]).await;
    env.cfg = cfg_from(&[("MIKRO_SYNC_DEFAULT_BANKA", "01")]);
    env.post(DocKind::Satis, id)
        .await
        .expect("posts with the default bank");
    env.cfg = PostingConfig::default();

    // A cash collection without a cash box: "set tahsilatlar.kasa_id, or set
    // MIKRO_SYNC_DEFAULT_KASA=<code in KASALAR>".
    let id = insert_collection(&env.web, &T::new("nakit", "10")).await;
    data_error(
        &mut env,
        DocKind::Tahsilat,
        id,
        &[
            "tahsilatlar.kasa_id",
            "MIKRO_SYNC_DEFAULT_KASA=<code in KASALAR>",
        ],
    )
    .await;
    env.cfg = cfg_from(&[("MIKRO_SYNC_DEFAULT_KASA", "001")]);
    env.post(DocKind::Tahsilat, id)
        .await
        .expect("posts with the default cash box");
    env.cfg = PostingConfig::default();
    let id = insert_collection(&env.web, &T::new("nakit", "10")).await;
    data_error(&mut env, DocKind::Tahsilat, id, &["kasa_id"]).await;
    env.web
        .execute(
            "UPDATE tahsilatlar SET kasa_id = $2 WHERE id = $1",
            &[&id, &kasa(1)],
        )
        .await
        .unwrap();
    env.post(DocKind::Tahsilat, id)
        .await
        .expect("posts with kasa_id");

    // A bank whose code Mikro does not know: "fix int_kodmap_banka (erp_banka_kod) ...".
    let bad_bank: Uuid = env
        .web
        .query_one(
            "INSERT INTO bankalar (banka_adi, ban_kod) VALUES ('Yeni Banka', 'YB-99') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let id = insert_sale(
        &env.web,
        &S {
            banka: Some(bad_bank),
            ..card()
        },
        &line,
    )
    .await;
    data_error(
        &mut env,
        DocKind::Satis,
        id,
        &["YB-99", "BANKALAR", "int_kodmap_banka (erp_banka_kod)"],
    )
    .await;
    env.web
        .execute(
            "INSERT INTO int_kodmap_banka (web_banka_id, erp_banka_kod) VALUES ($1, '08')",
            &[&bad_bank],
        )
        .await
        .unwrap();
    env.post(DocKind::Satis, id)
        .await
        .expect("posts with a known bank code");

    // A customer code longer than 25: "map it to a shorter Mikro code".
    let long: Uuid = env
        .web
        .query_one(
            "INSERT INTO cari_hesaplar (cari_kodu, cari_adi) VALUES ('120.01.001.000000000000000', \
             'Uzun Kodlu Müşteri') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let id = insert_sale(
        &env.web,
        &S {
            cari: Some(long),
            ..S::open()
        },
        &line,
    )
    .await;
    data_error(
        &mut env,
        DocKind::Satis,
        id,
        &["map it to a shorter Mikro code"],
    )
    .await;
    env.web
        .execute(
            "INSERT INTO int_kodmap_cari (web_cari_id, erp_cari_kod) VALUES ($1, '120.01.003')",
            &[&long],
        )
        .await
        .unwrap();
    env.post(DocKind::Satis, id)
        .await
        .expect("posts once mapped");

    // A VAT rate Mikro has no pointer for: "correct kdv_orani".
    let id = insert_sale(&env.web, &S::open(), &[L::new(1, 1, "10", "18")]).await;
    data_error(
        &mut env,
        DocKind::Satis,
        id,
        &["VAT rate 18", "correct kdv_orani"],
    )
    .await;
    env.web
        .execute(
            "UPDATE satis_kalemleri SET kdv_orani = 20 WHERE satis_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    env.post(DocKind::Satis, id)
        .await
        .expect("posts with a known rate");
}
