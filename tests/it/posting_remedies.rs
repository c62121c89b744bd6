//! Each remedy that a posting failure message proposes, done exactly as the message says, after
//! which the document posts.

use crate::posting_support;

use mikro_sync::posting::DocKind;
use posting_support::{banka, insert_collection, insert_sale, kasa, Env, L, S, T};

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
    env.data_error(
        DocKind::Satis,
        id,
        &[
            "satislar.banka_id",
            "MIKRO_SYNC_DEFAULT_BANKA=<code in BANKALAR>",
        ],
    )
    .await;
    env.web_exec(
        "UPDATE satislar SET banka_id = $2 WHERE id = $1",
        &[&id, &banka("01")],
    )
    .await;
    env.posts(DocKind::Satis, id, "posts with banka_id").await;
    // ... "or set MIKRO_SYNC_DEFAULT_BANKA=<code in BANKALAR>".
    let id = insert_sale(&env.web, &card(), &line).await;
    env.data_error(DocKind::Satis, id, &["MIKRO_SYNC_DEFAULT_BANKA"])
        .await;
    env.posts_with(
        &[("MIKRO_SYNC_DEFAULT_BANKA", "01")],
        DocKind::Satis,
        id,
        "posts with the default bank",
    )
    .await;

    // A cash collection without a cash box: "set tahsilatlar.kasa_id, or set
    // MIKRO_SYNC_DEFAULT_KASA=<code in KASALAR>".
    let id = insert_collection(&env.web, &T::new("nakit", "10")).await;
    env.data_error(
        DocKind::Tahsilat,
        id,
        &[
            "tahsilatlar.kasa_id",
            "MIKRO_SYNC_DEFAULT_KASA=<code in KASALAR>",
        ],
    )
    .await;
    env.posts_with(
        &[("MIKRO_SYNC_DEFAULT_KASA", "001")],
        DocKind::Tahsilat,
        id,
        "posts with the default cash box",
    )
    .await;
    let id = insert_collection(&env.web, &T::new("nakit", "10")).await;
    env.data_error(DocKind::Tahsilat, id, &["kasa_id"]).await;
    env.web_exec(
        "UPDATE tahsilatlar SET kasa_id = $2 WHERE id = $1",
        &[&id, &kasa(1)],
    )
    .await;
    env.posts(DocKind::Tahsilat, id, "posts with kasa_id").await;

    // A bank whose code Mikro does not know: "fix int_kodmap_banka (erp_banka_kod) ...".
    let bad_bank = env
        .web_insert(
            "INSERT INTO bankalar (banka_adi, ban_kod) VALUES ('Yeni Banka', 'YB-99') RETURNING id",
            &[],
        )
        .await;
    let id = insert_sale(
        &env.web,
        &S {
            banka: Some(bad_bank),
            ..card()
        },
        &line,
    )
    .await;
    env.data_error(
        DocKind::Satis,
        id,
        &["YB-99", "BANKALAR", "int_kodmap_banka (erp_banka_kod)"],
    )
    .await;
    env.web_exec(
        "INSERT INTO int_kodmap_banka (web_banka_id, erp_banka_kod) VALUES ($1, '08')",
        &[&bad_bank],
    )
    .await;
    env.posts(DocKind::Satis, id, "posts with a known bank code")
        .await;

    // A customer code longer than 25: "map it to a shorter Mikro code".
    let long = env
        .new_cari("120.01.001.000000000000000", "Uzun Kodlu Müşteri")
        .await;
    let id = insert_sale(&env.web, &S::of(long), &line).await;
    env.data_error(DocKind::Satis, id, &["map it to a shorter Mikro code"])
        .await;
    env.web_exec(
        "INSERT INTO int_kodmap_cari (web_cari_id, erp_cari_kod) VALUES ($1, '120.01.003')",
        &[&long],
    )
    .await;
    env.posts(DocKind::Satis, id, "posts once mapped").await;

    // A VAT rate Mikro has no pointer for: "correct kdv_orani".
    let id = insert_sale(&env.web, &S::open(), &[L::new(1, 1, "10", "18")]).await;
    env.data_error(DocKind::Satis, id, &["VAT rate 18", "correct kdv_orani"])
        .await;
    env.web_exec(
        "UPDATE satis_kalemleri SET kdv_orani = 20 WHERE satis_id = $1",
        &[&id],
    )
    .await;
    env.posts(DocKind::Satis, id, "posts with a known rate")
        .await;
}
