//! Bad input: each case ends in the right error class with an actionable message, writes nothing
//! into Mikro, and never blocks the documents behind it; odd-but-valid input (long notes, Turkish
//! text, quotes and SQL metacharacters, 500 lines, mappings) posts correctly.

use crate::posting_support;

use mikro_sync::mikro::STOK_HAREKETLERI;
use mikro_sync::posting::{DocKind, PostError};
use posting_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_documents_fail_with_actionable_messages() {
    let mut env = Env::start().await;

    // A customer whose cari_kodu is empty and that has no int_kodmap_cari row.
    let ghost = env.new_cari("", "Kodsuz Müşteri").await;
    let ghost_s = ghost.to_string();
    let id = insert_sale(&env.web, &S::of(ghost), &[L::new(1, 1, "10", "20")]).await;
    env.data_error(
        DocKind::Satis,
        id,
        &["int_kodmap_cari", &ghost_s, "cari_kodu"],
    )
    .await;

    // A customer code the web knows but Mikro does not (and no mapping): the message names the
    // mapping table too.
    let stranger = env.new_cari("WEB-999", "Yeni Web Müşterisi").await;
    let id = insert_sale(&env.web, &S::of(stranger), &[L::new(1, 1, "10", "20")]).await;
    env.data_error(
        DocKind::Satis,
        id,
        &["WEB-999", "CARI_HESAPLAR", "int_kodmap_cari"],
    )
    .await;
    // ...and the mapping fixes it.
    env.web_exec(
        "INSERT INTO int_kodmap_cari (web_cari_id, erp_cari_kod) VALUES ($1, '120.01.002')",
        &[&stranger],
    )
    .await;
    let p = env.posts(DocKind::Satis, id, "posts once mapped").await;
    assert_eq!(env.cha(p.cha_recno).await.text("cha_kod"), "120.01.002");

    // A product without a code, then one unknown to Mikro.
    let no_code = env.new_stok("", "Kodsuz Ürün").await;
    let mut line = L::new(1, 1, "10", "20");
    line.stok = no_code;
    let id = insert_sale(
        &env.web,
        &S::open(),
        &[L::new(2, 1, "5", "10"), line.clone()],
    )
    .await;
    env.data_error(
        DocKind::Satis,
        id,
        &["int_kodmap_stok", &no_code.to_string(), "stok_kodu"],
    )
    .await;
    let unknown = env.new_stok("WEB-STK-1", "Web Ürünü").await;
    line.stok = unknown;
    let id = insert_sale(&env.web, &S::open(), &[line.clone()]).await;
    env.data_error(
        DocKind::Satis,
        id,
        &["WEB-STK-1", "STOKLAR", "int_kodmap_stok"],
    )
    .await;
    env.web_exec(
        "INSERT INTO int_kodmap_stok (web_stok_id, erp_stok_kod) VALUES ($1, 'STK-0005')",
        &[&unknown],
    )
    .await;
    let p = env.posts(DocKind::Satis, id, "posts once mapped").await;
    assert_eq!(
        env.sth_of(p.cha_recno).await[0].text("sth_stok_kod"),
        "STK-0005"
    );

    // No lines: not ready (the header may have been committed before its lines).
    let id = insert_sale(&env.web, &S::open(), &[]).await;
    let before = env.mikro_counts().await;
    match env.post(DocKind::Satis, id).await {
        Err(PostError::NotReady(m)) => assert!(m.contains("no lines"), "{m}"),
        other => panic!("expected NotReady, got {other:?}"),
    }
    assert_eq!(env.mikro_counts().await, before);

    // Zero and negative amounts.
    let id = insert_sale(&env.web, &S::open(), &[L::new(1, 1, "0", "20")]).await;
    env.data_error(DocKind::Satis, id, &["total"]).await;
    let id = insert_sale(&env.web, &S::open(), &[L::new(1, -2, "10", "20")]).await;
    env.data_error(DocKind::Satis, id, &["quantity", "-2"])
        .await;
    let id = insert_collection(
        &env.web,
        &T {
            kasa: Some(kasa(1)),
            ..T::new("nakit", "0")
        },
    )
    .await;
    env.data_error(DocKind::Tahsilat, id, &["amount"]).await;
    let id = insert_collection(
        &env.web,
        &T {
            kasa: Some(kasa(1)),
            ..T::new("nakit", "-5.00")
        },
    )
    .await;
    env.data_error(DocKind::Tahsilat, id, &["amount", "-5"])
        .await;

    // Unknown VAT rate.
    let id = insert_sale(&env.web, &S::open(), &[L::new(1, 1, "10", "18")]).await;
    env.data_error(DocKind::Satis, id, &["VAT rate 18", "0, 1, 10, 20, 26"])
        .await;

    // Unknown tahsilat_tipi names the value and the allowed ones.
    let id = insert_collection(&env.web, &T::new("bitcoin", "10")).await;
    env.data_error(
        DocKind::Tahsilat,
        id,
        &["\"bitcoin\"", "nakit, cek, senet, havale, kredi_karti"],
    )
    .await;

    // A card sale without a bank and no default bank configured.
    let id = insert_sale(
        &env.web,
        &S {
            odeme: "kredi_karti",
            ..S::open()
        },
        &[L::new(1, 1, "10", "20")],
    )
    .await;
    env.data_error(
        DocKind::Satis,
        id,
        &["banka_id", "MIKRO_SYNC_DEFAULT_BANKA"],
    )
    .await;

    // A customer code longer than Mikro's 25 characters.
    let long = env.new_cari("120.01.001.000000000000000", "Uzun").await;
    let id = insert_sale(&env.web, &S::of(long), &[L::new(1, 1, "10", "20")]).await;
    env.data_error(DocKind::Satis, id, &["26 characters", "at most 25"])
        .await;

    // A bad document does not block the next one.
    let id = insert_sale(&env.web, &S::open(), &[L::new(1, 1, "10", "20")]).await;
    let p = env
        .posts(DocKind::Satis, id, "a good sale after bad ones")
        .await;
    assert!(!p.already_posted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_is_stored_verbatim_or_truncated() {
    let mut env = Env::start().await;

    // Over-long notes: truncated to 50, still posted.
    let long_note = "Uzun açıklama ".repeat(10); // 140 chars
    let mut line = L::new(1, 1, "10", "20");
    line.notlar = Some("Satır notu çok uzun ".repeat(5));
    let id = insert_sale(
        &env.web,
        &S {
            notlar: Some(long_note.clone()),
            belge_no: Some("B".repeat(50)),
            ..S::open()
        },
        &[line],
    )
    .await;
    let p = env.posts(DocKind::Satis, id, "long notes still post").await;
    let h = env.cha(p.cha_recno).await;
    assert_eq!(
        h.text("cha_aciklama"),
        long_note.chars().take(50).collect::<String>()
    );
    assert_eq!(h.text("cha_belge_no"), "B".repeat(50));
    let l = &env.sth_of(p.cha_recno).await[0];
    assert_eq!(l.text("sth_aciklama").chars().count(), 50);

    // Turkish letters round-trip exactly.
    let turkish = "ğüşıöçİ ĞÜŞIÖÇ â";
    let mut line = L::new(1, 1, "10", "20");
    line.notlar = Some(turkish.into());
    let id = insert_sale(
        &env.web,
        &S {
            notlar: Some(turkish.into()),
            ..S::open()
        },
        &[line],
    )
    .await;
    let p = env.post(DocKind::Satis, id).await.unwrap();
    assert_eq!(env.cha(p.cha_recno).await.text("cha_aciklama"), turkish);
    assert_eq!(
        env.sth_of(p.cha_recno).await[0].text("sth_aciklama"),
        turkish
    );

    // Quotes and SQL metacharacters are data, stored verbatim.
    let nasty = "O'Brien \"x\"; DROP TABLE x;-- /* @P1 */ %_[a] N'";
    let id = insert_collection(
        &env.web,
        &T {
            kasa: Some(kasa(1)),
            aciklama: Some(nasty.into()),
            ..T::new("nakit", "10")
        },
    )
    .await;
    let p = env.post(DocKind::Tahsilat, id).await.unwrap();
    assert_eq!(env.cha(p.cha_recno).await.text("cha_aciklama"), nasty);
    let cek = "ÇEK'; DELETE --";
    let id = insert_collection(
        &env.web,
        &T {
            cek_no: Some(cek.into()),
            banka_adi: Some("İş Bankası".into()),
            vade: Some(chrono::NaiveDate::from_ymd_opt(2026, 2, 1).unwrap()),
            ..T::new("cek", "10")
        },
    )
    .await;
    let p = env.post(DocKind::Tahsilat, id).await.unwrap();
    let h = env.cha(p.cha_recno).await;
    assert_eq!(h.text("cha_aciklama"), format!("/{cek}/İş Bankası//"));
    let s = env.sck_by_refno(&h.text("cha_trefno")).await;
    assert_eq!(s[0].text("sck_no"), cek);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_line_sale_posts_every_line() {
    let mut env = Env::start().await;
    let lines: Vec<L> = (0..500)
        .map(|i| {
            L::new(
                1 + (i % 11),
                1 + (i as i32 % 7),
                "12.34",
                ["0", "1", "10", "20", "26"][i as usize % 5],
            )
        })
        .collect();
    let id = insert_sale(&env.web, &S::open(), &lines).await;
    let p = env.posts(DocKind::Satis, id, "500 lines").await;
    let sth = env.sth_of(p.cha_recno).await;
    assert_eq!(sth.len(), 500);
    for (i, r) in sth.iter().enumerate() {
        r.assert_complete(&STOK_HAREKETLERI);
        assert_eq!(r.int("sth_satirno"), i as i64);
        assert_eq!(r.int("sth_fat_recid_recno"), i64::from(p.cha_recno));
        assert_eq!(r.int("sth_evrakno_sira"), i64::from(p.sira));
        assert_eq!(r.float("sth_miktar"), f64::from(1 + (i as i32 % 7)));
    }
    let led = env
        .rows(
            "SELECT ml_sth_count FROM dbo.MIKROSYNC_LEDGER WHERE ml_web_id = @P1",
            &[&id],
        )
        .await;
    assert_eq!(led[0].int("ml_sth_count"), 500);
}
