//! Posting throughput into the emulator: documents/s through `posting::post_document` (the
//! production code path: web reads, ledger check, numbering lock, Mikro rows, ledger row, commit)
//! with 1 and 4 ERP connections, for 3-line sales in one series (the worst case: every posting of
//! a series is serialised by the numbering lock) and for cash collections. Prints figures;
//! asserts nothing about speed.
//!
//! `cargo bench -p mikro-sync --bench posting` (`POSTING_BENCH_DOCS=N` per run, default 1000).

use std::time::Instant;

use mikro_emulator::harness::{Harness, HarnessOptions};
use mikro_sync::posting::{post_document, DocKind, PostingConfig};
use uuid::Uuid;

const CARI: &str = "c0000000-0000-4000-8000-000000000001";

async fn connect(url: &str) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect web");
    tokio::spawn(conn);
    c
}

async fn make_sales(web: &tokio_postgres::Client, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::with_capacity(n);
    let mut sql = String::from("BEGIN;");
    for i in 0..n {
        let id = Uuid::new_v4();
        ids.push(id);
        sql.push_str(&format!(
            "INSERT INTO satislar (id, cari_hesap_id, odeme_sekli, ara_toplam, kdv_tutari, toplam_tutar) \
             VALUES ('{id}', '{CARI}', 'vadeli', 300, 60, 360);"
        ));
        for l in 1..=3 {
            sql.push_str(&format!(
                "INSERT INTO satis_kalemleri (satis_id, stok_id, miktar, birim_fiyat, kdv_orani, kdv_tutari, toplam_tutar, sira_no) \
                 VALUES ('{id}', 'b0000000-0000-4000-8000-00000000000{l}', 1, 100, 20, 20, 120, {l});"
            ));
        }
        if i % 200 == 199 {
            sql.push_str("COMMIT;BEGIN;");
        }
    }
    sql.push_str("COMMIT;");
    web.batch_execute(&sql).await.expect("insert sales");
    ids
}

async fn make_collections(web: &tokio_postgres::Client, n: usize) -> Vec<Uuid> {
    let mut ids = Vec::with_capacity(n);
    let mut sql = String::from("BEGIN;");
    for _ in 0..n {
        let id = Uuid::new_v4();
        ids.push(id);
        sql.push_str(&format!(
            "INSERT INTO tahsilatlar (id, cari_hesap_id, tahsilat_tipi, tutar, kasa_id) \
             VALUES ('{id}', '{CARI}', 'nakit', 100, 'e0000000-0000-4000-8000-000000000001');"
        ));
    }
    sql.push_str("COMMIT;");
    web.batch_execute(&sql).await.expect("insert collections");
    ids
}

async fn run(h: &Harness, kind: DocKind, ids: Vec<Uuid>, conns: usize, own_series: bool) -> f64 {
    let n = ids.len();
    let per = n.div_ceil(conns);
    let mut tasks = Vec::new();
    let t0 = Instant::now();
    for (t, chunk) in ids.chunks(per).enumerate() {
        let chunk = chunk.to_vec();
        let web = connect(&h.web_url()).await;
        let mut erp = h.erp_client().await.expect("erp");
        tasks.push(tokio::spawn(async move {
            let mut cfg = PostingConfig::default();
            if own_series {
                cfg.sale_series = format!("B{t}");
                cfg.collection_series = format!("C{t}");
            }
            for id in chunk {
                post_document(&web, &mut erp, &cfg, kind, id)
                    .await
                    .unwrap_or_else(|e| panic!("{id}: {e}"));
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    n as f64 / t0.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("POSTING_BENCH_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let h = Harness::start(HarnessOptions::default())
        .await
        .expect("harness");
    let web = connect(&h.web_url()).await;
    mikro_sync::setup::setup_web(&web).await.expect("setup_web");
    let mut erp = h.erp_client().await.expect("erp");
    mikro_sync::setup::setup_erp(&mut erp)
        .await
        .expect("setup_erp");

    // The ADO string carries the login's password: print only where the server is.
    let ado = h.erp_ado();
    let server = ado
        .split(';')
        .find(|kv| kv.trim_start().to_lowercase().starts_with("server="))
        .unwrap_or("server=?");
    println!("posting benchmark: {n} documents per run, emulator at {server}");
    for (conns, own) in [(1, false), (4, false), (4, true)] {
        let series = if own {
            "one series per connection"
        } else {
            "one series"
        };
        let ids = make_sales(&web, n).await;
        let rate = run(&h, DocKind::Satis, ids, conns, own).await;
        println!(
            "  3-line sales,     {series:26} {conns} ERP connection(s): {rate:8.1} documents/s"
        );
        let ids = make_collections(&web, n).await;
        let rate = run(&h, DocKind::Tahsilat, ids, conns, own).await;
        println!(
            "  cash collections, {series:26} {conns} ERP connection(s): {rate:8.1} documents/s"
        );
    }
}
