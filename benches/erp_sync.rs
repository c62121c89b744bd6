//! ERP → web sync benchmark: full import rows/s for a realistic data set (≈4k products, 4k
//! barcodes, 11k prices, 500 customers) and a 100k-row variant, and the time of an incremental
//! run with nothing changed. Runs against the harness (throwaway PostgreSQL + TDS emulator, or
//! `MIKRO_TEST_MSSQL`). Prints figures; asserts nothing about speed.
//!
//! `cargo bench -p mikro-sync --bench erp_sync` (set `ERP_SYNC_BENCH_SKIP_100K=1` to skip the
//! large variant).

use std::time::{Duration, Instant};

use chrono::NaiveDateTime;
use mikro_emulator::harness::{Harness, HarnessOptions};
use mikro_sync::db::{erp_pool, web_pool};
use mikro_sync::erp_sync::{self, SyncOptions};

/// One INSERT template per table, taken from the Mikro seed (every column, Mikro-faithful).
struct Template {
    table: String,
    cols: Vec<String>,
    vals: Vec<String>,
}

fn split_values(v: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut in_q = false;
    let mut chars = v.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                cur.push(c);
                if in_q && chars.peek() == Some(&'\'') {
                    cur.push(chars.next().unwrap_or('\''));
                } else {
                    in_q = !in_q;
                }
            }
            ',' if !in_q => {
                out.push(cur.trim().to_string());
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    out
}

fn template(seed: &str, table: &str) -> Template {
    let marker = format!("INSERT INTO dbo.{table} (");
    let start = seed.find(&marker).expect("table in seed") + marker.len();
    let rest = &seed[start..];
    let cols_end = rest.find(')').unwrap();
    let cols: Vec<String> = rest[..cols_end]
        .split(',')
        .map(|c| c.trim().to_string())
        .collect();
    let vstart = rest.find("VALUES (").unwrap() + "VALUES (".len();
    let vrest = &rest[vstart..];
    let vend = vrest.find(");\n").unwrap();
    let vals = split_values(&vrest[..vend]);
    assert_eq!(cols.len(), vals.len(), "{table}");
    Template {
        table: table.to_string(),
        cols,
        vals,
    }
}

impl Template {
    fn row(&self, set: &[(&str, String)]) -> String {
        let mut v = self.vals.clone();
        for (c, val) in set {
            let i = self
                .cols
                .iter()
                .position(|x| x.eq_ignore_ascii_case(c))
                .unwrap_or_else(|| panic!("{} has no {c}", self.table));
            v[i] = val.clone();
        }
        format!("({})", v.join(", "))
    }

    fn insert(&self, rows: &[String]) -> String {
        format!(
            "INSERT INTO dbo.{} ({}) VALUES {};",
            self.table,
            self.cols.join(", "),
            rows.join(", ")
        )
    }
}

fn lit(s: &str) -> String {
    format!("N'{}'", s.replace('\'', "''"))
}

fn stamp(t: NaiveDateTime) -> String {
    format!("'{}'", t.format("%Y%m%d %H:%M:%S%.3f"))
}

async fn load(h: &Harness, stok: usize, cari: usize, prices_per_list: [usize; 3]) -> usize {
    let seed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sql/mikro/900_seed.sql"
    ))
    .expect("seed");
    let t_sto = template(&seed, "STOKLAR");
    let t_cari = template(&seed, "CARI_HESAPLAR");
    let t_fiy = template(&seed, "STOK_SATIS_FIYAT_LISTELERI");
    let t_bar = template(&seed, "BARKOD_TANIMLARI");
    let t_sfl = template(&seed, "STOK_SATIS_FIYAT_LISTE_TANIMLARI");
    // Rows were edited over the last two hours (a realistic history, and outside the overlap
    // window so the no-change run measures the settled state).
    let base =
        mikro_sync::mikro::local_now(chrono_tz::Europe::Istanbul) - chrono::Duration::hours(2);
    let at = |i: usize| stamp(base + chrono::Duration::milliseconds(i as i64 * 7));
    let mut stmts: Vec<String> = vec![];
    let chunk = 200;
    let mut push = |t: &Template, rows: Vec<String>| {
        for c in rows.chunks(chunk) {
            stmts.push(t.insert(c));
        }
    };
    push(
        &t_sfl,
        vec![t_sfl.row(&[
            ("sfl_sirano", "3".into()),
            ("sfl_aciklama", lit("Bayi")),
            ("sfl_lastup_date", at(0)),
        ])],
    );
    let units = ["ADET", "PAKET", "KUTU", "KOLİ", "ŞİŞE"];
    push(
        &t_sto,
        (0..stok)
            .map(|i| {
                t_sto.row(&[
                    ("sto_kod", lit(&format!("B-{i:06}"))),
                    ("sto_isim", lit(&format!("Ürün {i} Çeşit Ğ Işık"))),
                    ("sto_birim1_ad", lit(units[i % units.len()])),
                    ("sto_pasif_fl", ((i % 50 == 0) as u8).to_string()),
                    ("sto_lastup_date", at(i)),
                    ("sto_create_date", at(i)),
                ])
            })
            .collect(),
    );
    push(
        &t_bar,
        (0..stok)
            .map(|i| {
                t_bar.row(&[
                    ("bar_kodu", lit(&format!("868{i:010}"))),
                    ("bar_stokkodu", lit(&format!("B-{i:06}"))),
                    ("bar_lastup_date", at(i)),
                    ("bar_create_date", at(i)),
                ])
            })
            .collect(),
    );
    let mut prices = vec![];
    for (l, n) in prices_per_list.iter().enumerate() {
        for i in 0..*n {
            prices.push(t_fiy.row(&[
                ("sfiyat_stokkod", lit(&format!("B-{i:06}"))),
                ("sfiyat_listesirano", (l + 1).to_string()),
                ("sfiyat_fiyati", format!("{}.{:02}", 10 + i % 500, i % 100)),
                ("sfiyat_lastup_date", at(i + l)),
                ("sfiyat_create_date", at(i + l)),
            ]));
        }
    }
    push(&t_fiy, prices);
    push(
        &t_cari,
        (0..cari)
            .map(|i| {
                t_cari.row(&[
                    ("cari_kod", lit(&format!("320.{i:05}"))),
                    ("cari_unvan1", lit(&format!("Müşteri {i} Şahin Ltd. Şti."))),
                    ("cari_lastup_date", at(i)),
                    ("cari_create_date", at(i)),
                ])
            })
            .collect(),
    );
    let total = stok * 2 + prices_per_list.iter().sum::<usize>() + cari + 1;
    let t = Instant::now();
    let mut c = h.erp_client().await.expect("erp client");
    for s in stmts {
        c.simple_query(s)
            .await
            .expect("bulk insert")
            .into_results()
            .await
            .expect("bulk insert");
    }
    println!(
        "  loaded {total} Mikro rows in {:.1} s (setup, not measured)",
        t.elapsed().as_secs_f64()
    );
    total
}

async fn scenario(name: &str, stok: usize, cari: usize, prices: [usize; 3]) {
    println!("== {name}");
    let h = Harness::start(HarnessOptions {
        web_seed: false,
        ..HarnessOptions::default()
    })
    .await
    .expect("harness");
    let pg = h.web_client().await.expect("web");
    mikro_sync::setup::setup_web(&pg).await.expect("setup");
    load(&h, stok, cari, prices).await;
    let web = web_pool(&h.web_url(), 4).expect("web pool");
    let erp = erp_pool(&h.erp_ado(), 2).await.expect("erp pool");

    let full = SyncOptions {
        full: true,
        ..SyncOptions::default()
    };
    let t = Instant::now();
    let r = erp_sync::run(&web, &erp, &full).await.expect("full import");
    let secs = t.elapsed().as_secs_f64();
    print!("{r}");
    println!(
        "  full import: {} rows in {:.2} s = {:.0} rows/s",
        r.total_read(),
        secs,
        r.total_read() as f64 / secs
    );

    let inc = SyncOptions::default();
    let mut times = vec![];
    for _ in 0..7 {
        let t = Instant::now();
        let r = erp_sync::run(&web, &erp, &inc).await.expect("incremental");
        times.push(t.elapsed());
        // Each run re-reads the overlap window (rows stamped within MIKRO_SYNC_ERP_SYNC_OVERLAP
        // of the last run, here all of them), so rows are read, but none is written.
        let written: u64 = r
            .entities
            .iter()
            .map(|e| e.inserted + e.updated + e.deactivated + e.deleted + e.rejected)
            .sum();
        assert_eq!(written, 0, "nothing changed, nothing written:\n{r}");
    }
    times.sort();
    println!(
        "  no-change incremental run (overlap re-read): median {:.1} ms (min {:.1}, max {:.1}) over {} runs",
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1]),
        times.len()
    );
    // A second full run: every row read and compared, nothing written (the read side's cost).
    let t = Instant::now();
    let r = erp_sync::run(&web, &erp, &full)
        .await
        .expect("full re-read");
    let secs = t.elapsed().as_secs_f64();
    println!(
        "  full re-read, nothing changed: {} rows in {:.2} s = {:.0} rows/s",
        r.total_read(),
        secs,
        r.total_read() as f64 / secs
    );
    drop(web);
    drop(erp);
    h.shutdown().await;
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        scenario(
            "realistic: 4k products, 4k barcodes, 11k prices, 500 customers",
            4000,
            500,
            [4000, 4000, 3000],
        )
        .await;
        if std::env::var_os("ERP_SYNC_BENCH_SKIP_100K").is_none() {
            scenario(
                "100k: 20k products, 20k barcodes, 55k prices, 5k customers",
                20_000,
                5_000,
                [20_000, 20_000, 15_000],
            )
            .await;
        }
    });
}
