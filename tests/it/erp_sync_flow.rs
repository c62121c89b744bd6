//! ERP → web sync against real PostgreSQL and the TDS emulator (through the harness).
//!
//! Every test starts its own throwaway cluster + emulator with the Mikro seed (8 customers,
//! 12 products of which STK-0012 is passive, 2 price lists, 24 prices, 13 barcodes, 5 banks,
//! 4 cash boxes) and the reference web schema, installs mikro-sync's web objects, and drives
//! `erp_sync::run` as the CLI and the worker do.

use crate::common;

use std::time::Duration;

use chrono::NaiveDateTime;
use mikro_emulator::harness::Harness;
use mikro_sync::db::{erp_pool, web_pool};
use mikro_sync::erp_sync::read::{MikroRow, Page, Stamp, Val};
use mikro_sync::erp_sync::{self, lock, upsert, DeletePolicy, Entity, SyncError, SyncOptions};
use mikro_sync::mikro;

use common::sync_env as env;

fn opts() -> SyncOptions {
    SyncOptions {
        delete_check_every: Duration::ZERO,
        ..SyncOptions::default()
    }
}

async fn count(pg: &tokio_postgres::Client, sql: &str) -> i64 {
    pg.query_one(sql, &[]).await.expect(sql).get(0)
}

/// Mikro-local "now" as the Mikro program stamps rows (the company's wall clock, not the
/// server's GETDATE(), which the emulator answers in UTC).
fn now() -> NaiveDateTime {
    mikro::local_now(chrono_tz::Europe::Istanbul)
}

/// `now()` as a T-SQL datetime literal.
fn now_lit() -> String {
    format!("'{}'", now().format("%Y%m%d %H:%M:%S%.3f"))
}

async fn insert_stok(h: &Harness, kod: &str, isim: &str, pasif: u8, stamp: NaiveDateTime) {
    let mut c = h.erp_client().await.expect("erp client");
    let row = mikro::Row::new(&mikro::STOKLAR)
        .with("sto_kod", kod)
        .unwrap()
        .with("sto_isim", isim)
        .unwrap()
        .with("sto_birim1_ad", "ADET")
        .unwrap()
        .with("sto_pasif_fl", pasif)
        .unwrap();
    mikro::insert(&mut c, &row, stamp)
        .await
        .expect("insert stok");
}

async fn insert_cari(h: &Harness, kod: &str, unvan: &str, stamp: NaiveDateTime) {
    let mut c = h.erp_client().await.expect("erp client");
    let row = mikro::Row::new(&mikro::CARI_HESAPLAR)
        .with("cari_kod", kod)
        .unwrap()
        .with("cari_unvan1", unvan)
        .unwrap();
    mikro::insert(&mut c, &row, stamp)
        .await
        .expect("insert cari");
}

async fn insert_barkod(h: &Harness, kod: &str, stok: &str) {
    let sql = format!(
        "INSERT INTO dbo.BARKOD_TANIMLARI (bar_RECid_DBCno, bar_RECid_RECno, bar_SpecRECno, bar_iptal, bar_fileid, bar_hidden, bar_kilitli, bar_degisti, bar_checksum, bar_create_user, bar_create_date, bar_lastup_user, bar_lastup_date, bar_special1, bar_special2, bar_special3, bar_kodu, bar_stokkodu, bar_partikodu, bar_lotno, bar_serino_veya_bagkodu, bar_barkodtipi, bar_icerigi, bar_birimpntr, bar_master, bar_bedenpntr, bar_renkpntr, bar_baglantitipi, bar_harrecid_dbcno, bar_harrecid_recno)
         VALUES (0, 0, 0, 0, 0, 0, 0, 0, 0, 1, {n}, 1, {n}, N'', N'', N'', N'{kod}', N'{stok}', N'', 0, N'', 0, 0, 1, 1, 0, 0, 0, 0, 0)",
        n = now_lit()
    );
    h.erp_exec(&sql).await.expect("insert barkod");
}

#[tokio::test]
async fn first_import_then_no_change() {
    let e = env(false).await;
    // A web→ERP style trigger on every master table: logs writes not marked as ERP-origin.
    e.pg.batch_execute(
        "CREATE TABLE echo_log (tbl text);
         CREATE FUNCTION echo_log_fn() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF current_setting('mikro_sync.origin', true) IS DISTINCT FROM 'erp' THEN
             INSERT INTO echo_log VALUES (TG_TABLE_NAME);
           END IF;
           RETURN NULL;
         END $$;
         CREATE TRIGGER echo_c AFTER INSERT OR UPDATE ON cari_hesaplar FOR EACH ROW EXECUTE FUNCTION echo_log_fn();
         CREATE TRIGGER echo_s AFTER INSERT OR UPDATE ON stoklar FOR EACH ROW EXECUTE FUNCTION echo_log_fn();
         CREATE TRIGGER echo_p AFTER INSERT OR UPDATE ON urun_fiyat_listeleri FOR EACH ROW EXECUTE FUNCTION echo_log_fn();
         CREATE TRIGGER echo_b AFTER INSERT OR UPDATE ON urun_barkodlari FOR EACH ROW EXECUTE FUNCTION echo_log_fn();",
    )
    .await
    .unwrap();
    let r = erp_sync::run(&e.web, &e.erp, &opts()).await.expect("sync");
    println!("{r}");
    assert_eq!(r.rejects().count(), 0, "{r}");
    assert_eq!(count(&e.pg, "SELECT count(*) FROM cari_hesaplar").await, 8);
    assert_eq!(count(&e.pg, "SELECT count(*) FROM stoklar").await, 12);
    assert_eq!(
        count(&e.pg, "SELECT count(*) FROM fiyat_tanimlari").await,
        2
    );
    assert_eq!(
        count(&e.pg, "SELECT count(*) FROM urun_fiyat_listeleri").await,
        24
    );
    assert_eq!(
        count(&e.pg, "SELECT count(*) FROM urun_barkodlari").await,
        13
    );
    assert_eq!(count(&e.pg, "SELECT count(*) FROM bankalar").await, 5);
    assert_eq!(count(&e.pg, "SELECT count(*) FROM kasalar").await, 4);
    // Mappings created for every mapped entity.
    assert_eq!(
        count(&e.pg, "SELECT count(*) FROM int_kodmap_cari").await,
        8
    );
    assert_eq!(
        count(&e.pg, "SELECT count(*) FROM int_kodmap_stok").await,
        12
    );
    assert_eq!(
        count(&e.pg, "SELECT count(*) FROM int_kodmap_fiyat_liste").await,
        2
    );
    assert_eq!(
        count(&e.pg, "SELECT count(*) FROM int_kodmap_banka").await,
        5
    );
    assert_eq!(
        count(&e.pg, "SELECT count(*) FROM int_kodmap_kasa").await,
        4
    );
    // ERP rows carry kaynak = 'erp'.
    assert_eq!(
        count(
            &e.pg,
            "SELECT count(*) FROM cari_hesaplar WHERE kaynak = 'erp'"
        )
        .await,
        8
    );
    // Passive product arrives inactive.
    assert_eq!(
        count(
            &e.pg,
            "SELECT count(*) FROM stoklar WHERE stok_kodu = 'STK-0012' AND NOT aktif"
        )
        .await,
        1
    );
    // Turkish text round trip.
    let name: String =
        e.pg.query_one(
            "SELECT stok_adi FROM stoklar WHERE stok_kodu = 'STK-0001'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "Çay Bardağı 6'lı Set");
    // List-1 price also becomes the product's sales price.
    let sp: String =
        e.pg.query_one(
            "SELECT satis_fiyati::text FROM stoklar WHERE stok_kodu = 'STK-0001'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(sp, "89.90");

    // A second run with nothing changed writes nothing.
    let r2 = erp_sync::run(&e.web, &e.erp, &opts())
        .await
        .expect("sync 2");
    let ins: u64 = r2.entities.iter().map(|x| x.inserted + x.updated).sum();
    assert_eq!(ins, 0, "{r2}");
    // No echo into the web→ERP queue, and every ERP write was marked as ERP-origin.
    assert_eq!(count(&e.pg, "SELECT count(*) FROM sync_queue").await, 0);
    assert_eq!(count(&e.pg, "SELECT count(*) FROM echo_log").await, 0);
    // Control: a web-side edit is seen by the trigger.
    e.pg.batch_execute(
        "UPDATE stoklar SET stok_adi = stok_adi || '!' WHERE stok_kodu = 'STK-0001'",
    )
    .await
    .unwrap();
    assert_eq!(count(&e.pg, "SELECT count(*) FROM echo_log").await, 1);
    drop(e.h);
}

async fn web_text(pg: &tokio_postgres::Client, sql: &str) -> Option<String> {
    pg.query_opt(sql, &[]).await.expect(sql).map(|r| r.get(0))
}

async fn watermark(pg: &tokio_postgres::Client, entity: &str) -> Option<(String, i32)> {
    pg.query_opt(
        "SELECT wm_lastup::text, wm_recno FROM int_erp_sync_watermark WHERE entity = $1 AND wm_recno IS NOT NULL",
        &[&entity],
    )
    .await
    .unwrap()
    .map(|r| (r.get(0), r.get(1)))
}

#[tokio::test]
async fn incremental_after_edits_in_mikro() {
    let e = env(true).await;
    // The web already has the reference rows (same codes): the first run adopts them.
    let r = erp_sync::run(&e.web, &e.erp, &opts()).await.expect("first");
    assert_eq!(r.rejects().count(), 0, "{r}");
    assert_eq!(count(&e.pg, "SELECT count(*) FROM stoklar").await, 12);
    assert_eq!(
        count(&e.pg, "SELECT count(*) FROM int_kodmap_stok").await,
        12
    );

    e.h.erp_exec(&format!(
        "UPDATE dbo.STOKLAR SET sto_isim = N'Türk Kahvesi 500 g (Şekerli)', sto_lastup_date = {n} WHERE sto_kod = N'STK-0002'",
        n = now_lit()
    ))
    .await
    .unwrap();
    e.h.erp_exec(&format!(
        "UPDATE dbo.STOKLAR SET sto_pasif_fl = 1, sto_lastup_date = {n} WHERE sto_kod = N'STK-0003'",
        n = now_lit()
    ))
    .await
    .unwrap();
    e.h.erp_exec(&format!(
        "UPDATE dbo.STOK_SATIS_FIYAT_LISTELERI SET sfiyat_fiyati = 0, sfiyat_lastup_date = {n} WHERE sfiyat_stokkod = N'STK-0004' AND sfiyat_listesirano = 2",
        n = now_lit()
    ))
    .await
    .unwrap();
    insert_stok(&e.h, "STK-0100", "Iğdır Kayısısı 1 kg", 0, now()).await;
    insert_cari(&e.h, "120.01.100", "Çağrı Öğüt Işıklı", now()).await;

    let r = erp_sync::run(&e.web, &e.erp, &opts())
        .await
        .expect("second");
    assert_eq!(r.rejects().count(), 0, "{r}");
    let stok = r.entity(Entity::STOK).unwrap();
    assert_eq!((stok.inserted, stok.updated), (1, 2), "{r}");
    assert_eq!(
        web_text(
            &e.pg,
            "SELECT stok_adi FROM stoklar WHERE stok_kodu = 'STK-0002'"
        )
        .await
        .unwrap(),
        "Türk Kahvesi 500 g (Şekerli)"
    );
    assert_eq!(
        web_text(
            &e.pg,
            "SELECT aktif::text FROM stoklar WHERE stok_kodu = 'STK-0003'"
        )
        .await
        .unwrap(),
        "false"
    );
    assert_eq!(
        web_text(
            &e.pg,
            "SELECT stok_adi FROM stoklar WHERE stok_kodu = 'STK-0100'"
        )
        .await
        .unwrap(),
        "Iğdır Kayısısı 1 kg"
    );
    assert_eq!(
        web_text(
            &e.pg,
            "SELECT cari_adi FROM cari_hesaplar WHERE cari_kodu = '120.01.100'"
        )
        .await
        .unwrap(),
        "Çağrı Öğüt Işıklı"
    );
    // A zero price reaches the web.
    assert_eq!(
        web_text(
            &e.pg,
            "SELECT p.fiyat::text FROM urun_fiyat_listeleri p JOIN stoklar s ON s.id = p.stok_id
             JOIN fiyat_tanimlari f ON f.id = p.fiyat_tanimi_id
             WHERE s.stok_kodu = 'STK-0004' AND f.sira_no = 2"
        )
        .await
        .unwrap(),
        "0.00"
    );
    // Nothing the sync wrote was queued for web → ERP.
    assert_eq!(count(&e.pg, "SELECT count(*) FROM sync_queue").await, 0);
}

#[tokio::test]
async fn failed_run_keeps_watermark_and_next_run_catches_up() {
    let e = env(false).await;
    erp_sync::run(&e.web, &e.erp, &opts()).await.expect("first");
    let before = watermark(&e.pg, "stok").await.expect("watermark");

    for k in ["STK-0005", "STK-0006", "STK-0007"] {
        e.h.erp_exec(&format!(
            "UPDATE dbo.STOKLAR SET sto_isim = sto_isim + N' (yeni)', sto_lastup_date = {n} WHERE sto_kod = N'{k}'",
            n = now_lit()
        ))
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The web database refuses the first edited product (not a data error: the run fails).
    e.pg.batch_execute(
        "CREATE FUNCTION erp_sync_test_fail() RETURNS trigger LANGUAGE plpgsql AS
           $$BEGIN RAISE EXCEPTION 'web maintenance'; END$$;
         CREATE TRIGGER erp_sync_test_fail BEFORE UPDATE ON stoklar FOR EACH ROW
           WHEN (NEW.stok_kodu = 'STK-0005') EXECUTE FUNCTION erp_sync_test_fail();",
    )
    .await
    .unwrap();
    let o = SyncOptions {
        page_size: 1,
        entities: vec![Entity::STOK],
        ..opts()
    };
    let err = erp_sync::run(&e.web, &e.erp, &o)
        .await
        .expect_err("must fail");
    assert!(matches!(err, SyncError::Web { .. }), "{err}");
    assert_eq!(watermark(&e.pg, "stok").await.unwrap(), before);
    assert_eq!(
        count(
            &e.pg,
            "SELECT count(*) FROM stoklar WHERE stok_adi LIKE '%(yeni)'"
        )
        .await,
        0
    );

    e.pg.batch_execute("DROP TRIGGER erp_sync_test_fail ON stoklar")
        .await
        .unwrap();
    let r = erp_sync::run(&e.web, &e.erp, &o).await.expect("catch up");
    assert_eq!(r.entity(Entity::STOK).unwrap().updated, 3, "{r}");
    assert_eq!(
        count(
            &e.pg,
            "SELECT count(*) FROM stoklar WHERE stok_adi LIKE '%(yeni)'"
        )
        .await,
        3
    );
    assert_ne!(watermark(&e.pg, "stok").await.unwrap(), before);
}

#[tokio::test]
async fn edits_during_a_run_are_not_lost() {
    let e = env(false).await;
    erp_sync::run(&e.web, &e.erp, &opts()).await.expect("first");
    // A writer inserts products while runs with small pages go on.
    let h = &e.h;
    let writer = async {
        for i in 0..40 {
            insert_stok(h, &format!("YENİ-{i:03}"), &format!("Ürün {i}"), 0, now()).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let o = SyncOptions {
        page_size: 3,
        entities: vec![Entity::STOK],
        ..opts()
    };
    let syncer = async {
        for _ in 0..6 {
            erp_sync::run(&e.web, &e.erp, &o)
                .await
                .expect("run during writes");
        }
    };
    futures::join!(writer, syncer);
    // A row whose transaction stamped it earlier but committed after the last run's read
    // (older than the watermark, inside the overlap window).
    let late = now() - chrono::Duration::seconds(5);
    insert_stok(&e.h, "GEÇ-001", "Geç gelen ürün", 0, late).await;
    erp_sync::run(&e.web, &e.erp, &o).await.expect("final");
    assert_eq!(
        count(
            &e.pg,
            "SELECT count(*) FROM stoklar WHERE stok_kodu LIKE 'YENİ-%'"
        )
        .await,
        40
    );
    assert_eq!(
        count(
            &e.pg,
            "SELECT count(*) FROM stoklar WHERE stok_kodu = 'GEÇ-001'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn bad_rows_are_reported_and_retried() {
    let e = env(false).await;
    e.h.erp_exec(&format!(
        "UPDATE dbo.STOKLAR SET sto_perakende_vergi = 9, sto_lastup_date = {n} WHERE sto_kod = N'STK-0009'",
        n = now_lit()
    ))
    .await
    .unwrap();
    insert_barkod(&e.h, "8699999999999", "YOK-001").await;
    let r = erp_sync::run(&e.web, &e.erp, &opts()).await.expect("first");
    let rejects: Vec<_> = r.rejects().map(|x| (x.entity, x.key.clone())).collect();
    assert!(rejects.contains(&(Entity::STOK, "STK-0009".into())), "{r}");
    assert!(
        rejects.contains(&(Entity::BARKOD, "8699999999999".into())),
        "{r}"
    );
    assert!(r.rejects().any(|x| x.reason.contains("VAT pointer")), "{r}");
    assert!(
        r.rejects().any(|x| x.reason.contains("unknown stock")),
        "{r}"
    );
    // The rest of the page went through.
    assert_eq!(count(&e.pg, "SELECT count(*) FROM stoklar").await, 11);
    // The product's prices and barcode wait for it too (unknown stock on the web): 1 product,
    // 2 prices, 1 barcode of STK-0009, and the orphan barcode.
    assert_eq!(
        count(&e.pg, "SELECT count(*) FROM int_erp_sync_retry").await,
        5
    );
    assert_eq!(r.rejects().count(), 5, "{r}");

    // Still failing: reported again, still in the retry list.
    let r = erp_sync::run(&e.web, &e.erp, &opts())
        .await
        .expect("second");
    assert_eq!(r.rejects().count(), 5, "{r}");

    // Fix the product in Mikro; create the missing stock: both apply and leave the list.
    e.h.erp_exec(&format!(
        "UPDATE dbo.STOKLAR SET sto_perakende_vergi = 4, sto_lastup_date = {n} WHERE sto_kod = N'STK-0009'",
        n = now_lit()
    ))
    .await
    .unwrap();
    insert_stok(&e.h, "YOK-001", "Sonradan açılan ürün", 0, now()).await;
    let r = erp_sync::run(&e.web, &e.erp, &opts()).await.expect("third");
    assert_eq!(r.rejects().count(), 0, "{r}");
    assert_eq!(
        count(&e.pg, "SELECT count(*) FROM int_erp_sync_retry").await,
        0
    );
    assert_eq!(
        count(
            &e.pg,
            "SELECT count(*) FROM urun_barkodlari WHERE barkod = '8699999999999'"
        )
        .await,
        1
    );
    assert_eq!(count(&e.pg, "SELECT count(*) FROM stoklar").await, 13);
    assert_eq!(
        count(&e.pg, "SELECT count(*) FROM urun_fiyat_listeleri").await,
        24
    );
    assert_eq!(
        count(&e.pg, "SELECT count(*) FROM urun_barkodlari").await,
        14
    );
}

#[tokio::test]
async fn deleted_rows_are_deactivated_or_deleted() {
    let e = env(false).await;
    erp_sync::run(&e.web, &e.erp, &opts()).await.expect("first");
    e.h.erp_exec("DELETE FROM dbo.CARI_HESAPLAR WHERE cari_kod = N'120.01.008'")
        .await
        .unwrap();
    e.h.erp_exec("DELETE FROM dbo.STOKLAR WHERE sto_kod = N'STK-0011'")
        .await
        .unwrap();
    e.h.erp_exec("DELETE FROM dbo.BARKOD_TANIMLARI WHERE bar_kodu = N'8690000000011'")
        .await
        .unwrap();
    // Deactivate (default): products and barcodes go inactive; customers have no `aktif`
    // column in the reference schema, so they are reported as missing and kept.
    let r = erp_sync::run(&e.web, &e.erp, &opts())
        .await
        .expect("deactivate");
    assert_eq!(r.entity(Entity::STOK).unwrap().deactivated, 1, "{r}");
    assert_eq!(r.entity(Entity::BARKOD).unwrap().deactivated, 1, "{r}");
    assert_eq!(r.entity(Entity::CARI).unwrap().missing, 1, "{r}");
    assert_eq!(
        web_text(
            &e.pg,
            "SELECT aktif::text FROM stoklar WHERE stok_kodu = 'STK-0011'"
        )
        .await
        .unwrap(),
        "false"
    );
    // Delete policy: the customer and its mapping go.
    let o = SyncOptions {
        delete_policy: DeletePolicy::Delete,
        entities: vec![Entity::CARI],
        ..opts()
    };
    let r = erp_sync::run(&e.web, &e.erp, &o).await.expect("delete");
    assert_eq!(r.entity(Entity::CARI).unwrap().deleted, 1, "{r}");
    assert_eq!(
        count(
            &e.pg,
            "SELECT count(*) FROM cari_hesaplar WHERE cari_kodu = '120.01.008'"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &e.pg,
            "SELECT count(*) FROM int_kodmap_cari WHERE erp_cari_kod = '120.01.008'"
        )
        .await,
        0
    );
    assert_eq!(count(&e.pg, "SELECT count(*) FROM cari_hesaplar").await, 7);

    // The web app deletes an ERP bank: a full run brings it back and its mapping follows.
    e.pg.batch_execute("DELETE FROM bankalar WHERE ban_kod = '01'")
        .await
        .unwrap();
    let o = SyncOptions {
        full: true,
        entities: vec![Entity::BANKA],
        ..opts()
    };
    let r = erp_sync::run(&e.web, &e.erp, &o).await.expect("full banka");
    assert_eq!(r.entity(Entity::BANKA).unwrap().inserted, 1, "{r}");
    assert_eq!(
        count(
            &e.pg,
            "SELECT count(*) FROM int_kodmap_banka m JOIN bankalar b ON b.id = m.web_banka_id AND b.ban_kod = m.erp_banka_kod"
        )
        .await,
        5
    );
    assert_eq!(
        count(&e.pg, "SELECT count(*) FROM int_kodmap_banka").await,
        5
    );
}

fn mrow(recno: i32, ticks: u32, vals: Vec<Val>) -> MikroRow {
    MikroRow {
        recno,
        stamp: Stamp::Legacy { days: 46000, ticks },
        vals,
    }
}

/// A Mikro version without the unique index (or the same key re-read in one page) delivers a
/// key twice: the page applies, the later row wins.
#[tokio::test]
async fn duplicate_keys_in_one_page() {
    let e = env(false).await;
    let s = |x: &str| Val::Str(x.into());
    let rows = vec![
        mrow(
            1,
            1,
            vec![
                s("DUP-1"),
                s("Eski ad"),
                s("ADET"),
                Val::Float(1.0),
                Val::Int(0),
                Val::Int(4),
            ],
        ),
        mrow(
            2,
            2,
            vec![
                s("DUP-2"),
                s("İkinci"),
                s("ADET"),
                Val::Float(1.0),
                Val::Int(0),
                Val::Int(4),
            ],
        ),
        mrow(
            3,
            3,
            vec![
                s("DUP-1"),
                s("Yeni ad"),
                s("KOLİ"),
                Val::Float(2.0),
                Val::Int(1),
                Val::Int(3),
            ],
        ),
    ];
    let page = Page {
        last: Some((rows[2].stamp, 3)),
        rows,
        bad: vec![],
    };
    let mut ctx = upsert::Ctx::new(&e.web).await.unwrap();
    let o = upsert::apply_page(&mut ctx, Entity::STOK.spec(), &page, None)
        .await
        .expect("page with duplicate keys");
    assert_eq!((o.inserted, o.rejects.len()), (2, 0));
    assert_eq!(
        web_text(&e.pg, "SELECT stok_adi || '/' || birim_turu || '/' || aktif || '/' || kdv_orani FROM stoklar WHERE stok_kodu = 'DUP-1'")
            .await
            .unwrap(),
        "Yeni ad/KOLİ/false/10.00"
    );
}

#[tokio::test]
async fn two_daemons_only_one_syncs() {
    let e = env(false).await;
    // A second "process": its own pools.
    let web2 = web_pool(&e.h.web_url(), 2).unwrap();
    let held = lock::SyncLock::try_acquire(&web2)
        .await
        .unwrap()
        .expect("lock");
    let err = erp_sync::run(&e.web, &e.erp, &opts())
        .await
        .expect_err("busy");
    assert!(matches!(err, SyncError::Busy));
    assert_eq!(count(&e.pg, "SELECT count(*) FROM stoklar").await, 0);
    held.release().await;

    // Two interval loops (two daemons) for a while: runs never overlap, all succeed or skip.
    let erp2 = erp_pool(&e.h.erp_ado(), 2).await.unwrap();
    let ok = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let busy = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let failed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = |ok: std::sync::Arc<std::sync::atomic::AtomicUsize>,
                   busy: std::sync::Arc<std::sync::atomic::AtomicUsize>,
                   failed: std::sync::Arc<std::sync::atomic::AtomicUsize>| {
        move |r: &Result<erp_sync::SyncReport, SyncError>| {
            let c = match r {
                Ok(_) => &ok,
                Err(SyncError::Busy) => &busy,
                Err(_) => &failed,
            };
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    };
    let stop = tokio::time::sleep(Duration::from_millis(1500));
    let stop2 = tokio::time::sleep(Duration::from_millis(1500));
    futures::join!(
        erp_sync::run_interval(
            e.web.clone(),
            e.erp.clone(),
            opts(),
            Duration::from_millis(100),
            counter(ok.clone(), busy.clone(), failed.clone()),
            stop
        ),
        erp_sync::run_interval(
            web2.clone(),
            erp2.clone(),
            opts(),
            Duration::from_millis(100),
            counter(ok.clone(), busy.clone(), failed.clone()),
            stop2
        ),
    );
    use std::sync::atomic::Ordering::SeqCst;
    assert_eq!(failed.load(SeqCst), 0);
    assert!(ok.load(SeqCst) >= 1);
    assert_eq!(count(&e.pg, "SELECT count(*) FROM stoklar").await, 12);
    assert_eq!(
        count(&e.pg, "SELECT count(*) FROM int_kodmap_stok").await,
        12
    );
}

/// Another Mikro version: flags as smallint, cost as decimal, the VAT pointer as bigint.
#[tokio::test]
async fn other_mikro_version_column_types() {
    let e = env(false).await;
    e.h.erp_exec(&format!(
        "DROP TABLE dbo.STOKLAR;
         CREATE TABLE dbo.STOKLAR (
             sto_RECno int IDENTITY(1,1) NOT NULL PRIMARY KEY,
             sto_lastup_date datetime NOT NULL,
             sto_kod nvarchar(25) NOT NULL,
             sto_isim nvarchar(127) NOT NULL,
             sto_birim1_ad nvarchar(10) NOT NULL,
             sto_standartmaliyet decimal(18,4) NOT NULL,
             sto_pasif_fl smallint NOT NULL,
             sto_perakende_vergi bigint NOT NULL);
         INSERT INTO dbo.STOKLAR (sto_lastup_date, sto_kod, sto_isim, sto_birim1_ad, sto_standartmaliyet, sto_pasif_fl, sto_perakende_vergi)
         VALUES ({n}, N'V-1', N'Şeker 5 kg', N'ÇUVAL', 123.4567, 1, 3);",
        n = now_lit()
    ))
    .await
    .unwrap();
    let o = SyncOptions {
        entities: vec![Entity::STOK],
        ..opts()
    };
    let r = erp_sync::run(&e.web, &e.erp, &o).await.expect("sync");
    assert_eq!(r.rejects().count(), 0, "{r}");
    assert_eq!(
        web_text(
            &e.pg,
            "SELECT stok_adi || '/' || birim_turu || '/' || alis_fiyati || '/' || kdv_orani || '/' || aktif
             FROM stoklar WHERE stok_kodu = 'V-1'"
        )
        .await
        .unwrap(),
        "Şeker 5 kg/ÇUVAL/123.46/10.00/false"
    );
}
