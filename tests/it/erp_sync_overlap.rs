//! ERP → web without gaps under clock skew and long Mikro transactions (issue 15 item 7).
//!
//! Mikro stamps `lastup_date` with its clients' clocks and before its transaction commits, so a
//! row can become visible after a run already read rows with later stamps. Every incremental run
//! re-reads from `min(last stamp, checked_until) − overlap`; what slips past that anyway is
//! caught by the periodic full re-read, which reports the rows it corrected.

use crate::common;

use std::time::Duration;

use chrono::NaiveDateTime;
use mikro_emulator::harness::Harness;
use mikro_sync::erp_sync::{self, Entity, SyncOptions};
use mikro_sync::mikro;

use common::sync_env;

/// The daemon's defaults (5 min overlap, daily full re-read), products only.
fn opts() -> SyncOptions {
    SyncOptions {
        entities: vec![Entity::STOK],
        ..SyncOptions::default()
    }
}

/// The company's wall clock on this host.
fn host_now() -> NaiveDateTime {
    mikro::local_now(chrono_tz::Europe::Istanbul)
}

async fn insert_stok(h: &Harness, kod: &str, stamp: NaiveDateTime) {
    let mut c = h.erp_client().await.expect("erp client");
    let row = mikro::Row::new(&mikro::STOKLAR)
        .with("sto_kod", kod)
        .unwrap()
        .with("sto_isim", format!("Ürün {kod}").as_str())
        .unwrap()
        .with("sto_birim1_ad", "ADET")
        .unwrap();
    mikro::insert(&mut c, &row, stamp)
        .await
        .expect("insert stok");
}

async fn has(pg: &tokio_postgres::Client, kod: &str) -> bool {
    pg.query_one("SELECT count(*) FROM stoklar WHERE stok_kodu = $1", &[&kod])
        .await
        .unwrap()
        .get::<_, i64>(0)
        == 1
}

/// Mikro's clock 40 s and 10 min behind this host. A run reads a fresh row; then a row that
/// Mikro stamped before that run (its transaction was still open) commits. The next incremental
/// run must import it. (Before the overlap applied to every run, `checked_until` = host clock
/// − 30 s had passed the last stamp, so the next run read strictly after it: the row was lost.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_committed_row_is_read_under_clock_skew() {
    for (i, behind) in [chrono::Duration::seconds(40), chrono::Duration::minutes(10)]
        .into_iter()
        .enumerate()
    {
        let e = sync_env(false).await;
        let mikro_now = || host_now() - behind;
        erp_sync::run(&e.web, &e.erp, &opts()).await.expect("first");
        let fresh = format!("ŞT-{i}-TAZE");
        insert_stok(&e.h, &fresh, mikro_now()).await;
        // The long transaction stamps its row now, before the next run starts reading ...
        let late_stamp = mikro_now() - chrono::Duration::seconds(1);
        let r = erp_sync::run(&e.web, &e.erp, &opts())
            .await
            .expect("second");
        assert!(has(&e.pg, &fresh).await, "{r}");
        // ... and commits after it.
        let late = format!("İST-{i}-GEÇ");
        insert_stok(&e.h, &late, late_stamp).await;
        let r = erp_sync::run(&e.web, &e.erp, &opts()).await.expect("third");
        assert!(
            has(&e.pg, &late).await,
            "Mikro {behind} behind: the late row must be imported\n{r}"
        );
        assert_eq!(r.entity(Entity::STOK).unwrap().corrected, 0, "{r}");
    }
}

/// A row that slips past the overlap (stamped an hour before it committed) is not read by
/// incremental runs, and the periodic full re-read imports it and reports it as corrected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_full_reread_catches_and_reports_what_slipped() {
    let e = sync_env(false).await;
    let first = erp_sync::run(&e.web, &e.erp, &opts()).await.expect("first");
    assert_eq!(first.entity(Entity::STOK).unwrap().corrected, 0);
    insert_stok(&e.h, "TAZE-1", host_now()).await;
    erp_sync::run(&e.web, &e.erp, &opts())
        .await
        .expect("second");
    let lost = host_now() - chrono::Duration::hours(1);
    insert_stok(&e.h, "KAYIP-ŞÇ", lost).await;
    // Incremental runs (the daily re-read is not due: the first run read everything).
    let r = erp_sync::run(&e.web, &e.erp, &opts())
        .await
        .expect("incremental");
    assert!(!has(&e.pg, "KAYIP-ŞÇ").await, "outside the overlap: {r}");
    assert_eq!(r.entity(Entity::STOK).unwrap().corrected, 0);
    // The re-read is due (an interval of zero makes it due on every run).
    let due = SyncOptions {
        full_every: Some(Duration::ZERO),
        ..opts()
    };
    let r = erp_sync::run(&e.web, &e.erp, &due).await.expect("re-read");
    assert!(has(&e.pg, "KAYIP-ŞÇ").await, "{r}");
    assert_eq!(r.entity(Entity::STOK).unwrap().corrected, 1, "{r}");
    assert!(r.to_string().contains("corrected 1 rows"), "{r}");
    // Nothing slipped since: the next re-read corrects nothing, and it was recorded.
    let r = erp_sync::run(&e.web, &e.erp, &due).await.expect("again");
    assert_eq!(r.entity(Entity::STOK).unwrap().corrected, 0, "{r}");
    let recorded: i64 =
        e.pg.query_one(
            "SELECT count(*) FROM int_erp_sync_watermark
              WHERE entity = 'stok' AND last_full_read > now() - interval '1 hour'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded, 1);
}
