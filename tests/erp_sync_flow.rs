//! ERP → web sync against real PostgreSQL and the TDS emulator (through the harness).
//!
//! Every test starts its own throwaway cluster + emulator with the Mikro seed (8 customers,
//! 12 products of which STK-0012 is passive, 2 price lists, 24 prices, 13 barcodes, 5 banks,
//! 4 cash boxes) and the reference web schema, installs mikro-sync's web objects, and drives
//! `erp_sync::run` as the CLI and the worker do.

use std::time::Duration;

use chrono::NaiveDateTime;
use mikro_emulator::harness::{Harness, HarnessOptions};
use mikro_sync::db::{erp_pool, web_pool, ErpPool, WebPool};
use mikro_sync::erp_sync::{self, DeletePolicy, Entity, SyncError, SyncOptions};
use mikro_sync::mikro;

struct Env {
    h: Harness,
    web: WebPool,
    erp: ErpPool,
    pg: tokio_postgres::Client,
}

async fn env(web_seed: bool) -> Env {
    let h = Harness::start(HarnessOptions {
        web_seed,
        ..HarnessOptions::default()
    })
    .await
    .expect("harness");
    let pg = h.web_client().await.expect("web client");
    mikro_sync::setup::setup_web(&pg).await.expect("setup web");
    let web = web_pool(&h.web_url(), 4).expect("web pool");
    let erp = erp_pool(&h.erp_ado(), 2).await.expect("erp pool");
    Env { h, web, erp, pg }
}

fn opts() -> SyncOptions {
    SyncOptions {
        delete_check_every: Duration::ZERO,
        ..SyncOptions::default()
    }
}

async fn count(pg: &tokio_postgres::Client, sql: &str) -> i64 {
    pg.query_one(sql, &[]).await.expect(sql).get(0)
}

/// Mikro-local "now" as the Mikro program stamps rows.
fn now() -> NaiveDateTime {
    mikro::local_now(chrono_tz::Europe::Istanbul)
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

async fn insert_fiyat(h: &Harness, kod: &str, liste: i32, fiyat: f64, stamp: NaiveDateTime) {
    let mut c = h.erp_client().await.expect("erp client");
    let row = mikro::Row::new(&mikro::STOK_SATIS_FIYAT_LISTELERI)
        .with("sfiyat_stokkod", kod)
        .unwrap()
        .with("sfiyat_listesirano", liste)
        .unwrap()
        .with("sfiyat_fiyati", fiyat)
        .unwrap();
    mikro::insert(&mut c, &row, stamp)
        .await
        .expect("insert fiyat");
}

async fn insert_barkod(h: &Harness, kod: &str, stok: &str) {
    let sql = format!(
        "INSERT INTO dbo.BARKOD_TANIMLARI (bar_RECid_DBCno, bar_RECid_RECno, bar_SpecRECno, bar_iptal, bar_fileid, bar_hidden, bar_kilitli, bar_degisti, bar_checksum, bar_create_user, bar_create_date, bar_lastup_user, bar_lastup_date, bar_special1, bar_special2, bar_special3, bar_kodu, bar_stokkodu, bar_partikodu, bar_lotno, bar_serino_veya_bagkodu, bar_barkodtipi, bar_icerigi, bar_birimpntr, bar_master, bar_bedenpntr, bar_renkpntr, bar_baglantitipi, bar_harrecid_dbcno, bar_harrecid_recno)
         VALUES (0, 0, 0, 0, 0, 0, 0, 0, 0, 1, GETDATE(), 1, GETDATE(), N'', N'', N'', N'{kod}', N'{stok}', N'', 0, N'', 0, 0, 1, 1, 0, 0, 0, 0, 0)"
    );
    h.erp_exec(&sql).await.expect("insert barkod");
}

#[tokio::test]
async fn first_import_then_no_change() {
    let e = env(false).await;
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
    // No echo into the web→ERP queue.
    assert_eq!(count(&e.pg, "SELECT count(*) FROM sync_queue").await, 0);
    drop(e.h);
}
