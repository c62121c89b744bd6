//! `mikro-sync demo`: the whole product in one command, on throwaway databases.
//!
//! Why: a newcomer must see documents flow before reading any documentation. The demo starts a
//! private PostgreSQL cluster and the Mikro emulator through the test harness (the same one the
//! tests use), installs mikro-sync exactly as `setup` and `setup --erp` do, imports master data
//! ERP → web, starts the real worker (LISTEN/NOTIFY, TLS to the emulator), writes sales and
//! collections the way a web shop would (header and lines in one transaction), waits until
//! every one is posted, prints what landed in Mikro, and removes everything.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mikro_emulator::harness::{Harness, HarnessError, HarnessOptions};
use mikro_emulator::pgcluster::PgClusterError;
use uuid::Uuid;

use crate::config::Config;

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Sales to insert (a mix of open account, card, cash and returns).
    pub sales: usize,
    /// Collections to insert (cycling through the five kinds).
    pub collections: usize,
    /// Give up waiting for postings after this long.
    pub timeout: Duration,
    /// Pause between documents, as orders arrive in a shop (0 = all at once, which measures
    /// queueing behind the per-series numbering rather than one document's latency).
    pub pace: Duration,
    /// Print progress and tables to stdout.
    pub print: bool,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            sales: 8,
            collections: 5,
            timeout: Duration::from_secs(120),
            pace: Duration::from_millis(25),
            print: true,
        }
    }
}

/// One document of the demo and what became of it.
#[derive(Debug, Clone)]
pub struct DemoDoc {
    /// `satis` or `tahsilat`.
    pub kind: &'static str,
    /// Business variant (e.g. `satış / kredi_karti`, `tahsilat / cek`).
    pub variant: String,
    /// Web id.
    pub web_id: Uuid,
    /// Web document number (`satis_no` / `tahsilat_no`).
    pub web_no: String,
    /// Final queue status.
    pub status: String,
    /// Error message when failed.
    pub error: Option<String>,
    /// Mikro series and number written back to the web row.
    pub mikro_no: Option<(String, i32)>,
    /// CHA RECno from the mikro-sync ledger.
    pub cha_recno: Option<i32>,
    /// STH rows (lines) written.
    pub lines: Option<i32>,
    /// Web commit → queue row completed.
    pub latency: Option<Duration>,
}

/// What the demo did.
#[derive(Debug, Clone, Default)]
pub struct DemoReport {
    /// Every document inserted.
    pub docs: Vec<DemoDoc>,
    /// Master-data rows imported ERP → web.
    pub imported_rows: u64,
    /// Harness start time.
    pub started_in: Duration,
}

impl DemoReport {
    /// Documents that ended `completed`.
    pub fn posted(&self) -> usize {
        self.docs.iter().filter(|d| d.status == "completed").count()
    }

    /// Latency percentile (0–100) over posted documents.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        let mut v: Vec<Duration> = self.docs.iter().filter_map(|d| d.latency).collect();
        if v.is_empty() {
            return None;
        }
        v.sort();
        let idx = ((p / 100.0) * (v.len() as f64 - 1.0)).round() as usize;
        v.get(idx.min(v.len() - 1)).copied()
    }
}

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// PostgreSQL server binaries are missing: how to install them.
    #[error(
        "the demo needs PostgreSQL server binaries (initdb, postgres) to start a throwaway database.\n\
         Install them with:\n    sudo apt-get install postgresql\n\
         or run the project's installer:\n    bash .ci/install-deps\n\
         (or point PG_BIN at a directory containing initdb and postgres)\n({0})"
    )]
    NoPostgres(String),
    /// The harness failed for another reason.
    #[error("could not start the demo databases: {0}")]
    Harness(String),
    /// A step failed.
    #[error("{step}: {message}")]
    Step {
        /// Which step.
        step: &'static str,
        /// Why.
        message: String,
    },
    /// Not every document was posted in time.
    #[error("only {posted} of {total} documents were posted within {secs} s")]
    Timeout {
        /// Posted.
        posted: usize,
        /// Inserted.
        total: usize,
        /// Waited.
        secs: u64,
    },
}

fn step(step: &'static str) -> impl Fn(String) -> DemoError {
    move |message| DemoError::Step { step, message }
}

fn pg(e: tokio_postgres::Error) -> String {
    crate::db::pg_error_text(&e)
}

macro_rules! say {
    ($opts:expr, $($t:tt)*) => { if $opts.print { println!($($t)*); } };
}

/// Master data the inserted documents use (read from the web side after the import).
struct Masters {
    customers: Vec<Uuid>,
    products: Vec<(Uuid, rust_decimal::Decimal, rust_decimal::Decimal)>,
    bank: Uuid,
    kasa: Uuid,
}

async fn masters(web: &tokio_postgres::Client) -> Result<Masters, DemoError> {
    let s = step("reading imported master data");
    let customers: Vec<Uuid> = web
        .query(
            "SELECT id FROM cari_hesaplar ORDER BY cari_kodu LIMIT 6",
            &[],
        )
        .await
        .map_err(|e| s(pg(e)))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let products = web
        .query(
            "SELECT id, CASE WHEN satis_fiyati > 0 THEN satis_fiyati ELSE 10 END, kdv_orani
               FROM stoklar WHERE aktif ORDER BY stok_kodu LIMIT 8",
            &[],
        )
        .await
        .map_err(|e| s(pg(e)))?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect::<Vec<_>>();
    let bank: Option<Uuid> = web
        .query_opt("SELECT id FROM bankalar ORDER BY ban_kod LIMIT 1", &[])
        .await
        .map_err(|e| s(pg(e)))?
        .map(|r| r.get(0));
    let kasa: Option<Uuid> = web
        .query_opt(
            "SELECT id FROM kasalar ORDER BY (kasa_kodu = '001') DESC, kasa_kodu LIMIT 1",
            &[],
        )
        .await
        .map_err(|e| s(pg(e)))?
        .map(|r| r.get(0));
    match (customers.is_empty(), products.is_empty(), bank, kasa) {
        (false, false, Some(bank), Some(kasa)) => Ok(Masters {
            customers,
            products,
            bank,
            kasa,
        }),
        _ => Err(s(
            "the import brought no customers, products, banks or cash boxes".into(),
        )),
    }
}

/// Inserts one sale with 1–3 lines in one transaction, as a web shop does.
async fn insert_sale(
    web: &mut tokio_postgres::Client,
    m: &Masters,
    i: usize,
) -> Result<(Uuid, String, String), DemoError> {
    use rust_decimal::Decimal;
    let s = step("inserting a sale");
    // Three payment kinds, and every fourth a return.
    let (odeme, variant) = match i % 3 {
        0 => ("acik_hesap", "open account"),
        1 => ("kredi_karti", "card → bank"),
        _ => ("nakit", "cash → kasa"),
    };
    let iade = i % 4 == 3;
    let tipi = if iade { "iade" } else { "perakende" };
    let customer = m.customers[i % m.customers.len()];
    let nlines = 1 + i % 3;
    let mut lines = Vec::new();
    let (mut net, mut vat) = (Decimal::ZERO, Decimal::ZERO);
    for l in 0..nlines {
        let (stok, price, rate) = m.products[(i + l) % m.products.len()];
        let qty = (1 + (i + l) % 4) as i32;
        let amount = (price * Decimal::from(qty)).round_dp(2);
        let line_vat = (amount * rate / Decimal::from(100)).round_dp(2);
        net += amount;
        vat += line_vat;
        lines.push((
            stok,
            qty,
            price,
            rate,
            line_vat,
            amount + line_vat,
            l as i32,
        ));
    }
    let no = format!("WEB-S-{:04}", i + 1);
    let tx = web.transaction().await.map_err(|e| s(pg(e)))?;
    let id: Uuid = tx
        .query_one(
            "INSERT INTO satislar (satis_no, cari_hesap_id, satis_tipi, odeme_sekli, ara_toplam,
                                   kdv_tutari, toplam_tutar, notlar, kasa_id, banka_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             RETURNING id",
            &[
                &no,
                &customer,
                &tipi,
                &odeme,
                &net,
                &vat,
                &(net + vat),
                &format!("mikro-sync demo {}", if iade { "iade" } else { "satış" }),
                &(odeme == "nakit").then_some(m.kasa),
                &(odeme == "kredi_karti").then_some(m.bank),
            ],
        )
        .await
        .map_err(|e| s(pg(e)))?
        .get(0);
    for (stok, qty, price, rate, line_vat, total, sira) in lines {
        tx.execute(
            "INSERT INTO satis_kalemleri (satis_id, stok_id, miktar, birim_fiyat, kdv_orani,
                                          kdv_tutari, toplam_tutar, sira_no)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[&id, &stok, &qty, &price, &rate, &line_vat, &total, &sira],
        )
        .await
        .map_err(|e| s(pg(e)))?;
    }
    tx.commit().await.map_err(|e| s(pg(e)))?;
    let variant = format!("{} / {variant}", if iade { "iade" } else { "satış" });
    Ok((id, no, variant))
}

/// Inserts one collection of the given kind.
async fn insert_collection(
    web: &tokio_postgres::Client,
    m: &Masters,
    i: usize,
) -> Result<(Uuid, String, String), DemoError> {
    let s = step("inserting a collection");
    let kinds = ["nakit", "cek", "senet", "havale", "kredi_karti"];
    let kind = kinds[i % kinds.len()];
    let customer = m.customers[(i + 1) % m.customers.len()];
    let amount = rust_decimal::Decimal::new(25_000 + (i as i64) * 1_275, 2);
    let no = format!("WEB-T-{:04}", i + 1);
    let id: Uuid = web
        .query_one(
            "INSERT INTO tahsilatlar (tahsilat_no, cari_hesap_id, tahsilat_tipi, tutar, banka_id,
                                      kasa_id, cek_no, vade_tarihi, banka_adi, aciklama)
             VALUES ($1, $2, $3, $4, $5, $6, $7,
                     CASE WHEN $8 THEN CURRENT_DATE + 30 END, $9, 'mikro-sync demo tahsilat')
             RETURNING id",
            &[
                &no,
                &customer,
                &kind,
                &amount,
                &matches!(kind, "havale" | "kredi_karti").then_some(m.bank),
                &(kind == "nakit").then_some(m.kasa),
                // A cheque and a note both carry their paper's number.
                &match kind {
                    "cek" => Some(format!("CK-{no}")),
                    "senet" => Some(format!("SN-{no}")),
                    _ => None,
                },
                &matches!(kind, "cek" | "senet"),
                &(kind == "cek").then_some("Demo Bankası"),
            ],
        )
        .await
        .map_err(|e| s(pg(e)))?
        .get(0);
    Ok((id, no, format!("tahsilat / {kind}")))
}

/// Runs the demo and returns what happened (the CLI prints it; tests assert on it).
pub async fn run(opts: DemoOptions) -> Result<DemoReport, DemoError> {
    say!(
        opts,
        "Starting a throwaway PostgreSQL and the Mikro emulator …"
    );
    let h = Harness::start(HarnessOptions {
        web_seed: false,
        force_emulator: true,
        ..Default::default()
    })
    .await
    .map_err(|e| match e {
        HarnessError::Pg(p @ PgClusterError::BinariesNotFound(_))
        | HarnessError::Pg(p @ PgClusterError::NoPostgresUser) => {
            DemoError::NoPostgres(p.to_string())
        }
        other => DemoError::Harness(other.to_string()),
    })?;
    let result = run_with(&h, &opts).await;
    h.shutdown().await;
    say!(
        opts,
        "Cleaned up: throwaway databases and emulator removed."
    );
    result
}

async fn run_with(h: &Harness, opts: &DemoOptions) -> Result<DemoReport, DemoError> {
    let mut report = DemoReport {
        started_in: h.started_in(),
        ..Default::default()
    };
    say!(
        opts,
        "  ready in {:.1} s: web database {}, Mikro emulator at {}:{} (database {})",
        h.started_in().as_secs_f64(),
        h.web_url(),
        h.host(),
        h.port(),
        h.database()
    );
    // The configuration a production install would have, pointing at the throwaway databases.
    let map: BTreeMap<String, String> = [
        ("MIKRO_SYNC_PG_URL", h.web_url()),
        ("MSSQL_SERVER", h.host().to_string()),
        ("MSSQL_PORT", h.port().to_string()),
        ("MSSQL_DATABASE", h.database().to_string()),
        ("MSSQL_USER", h.user().to_string()),
        ("MSSQL_PASSWORD", h.password().to_string()),
        ("MSSQL_ENCRYPT", "true".to_string()),
        // The emulator's certificate is generated at start: trusting it is the explicit opt-in.
        ("MSSQL_TRUST_SERVER_CERTIFICATE", "true".to_string()),
        ("MIKRO_SYNC_POLL_INTERVAL", "1s".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let cfg = Config::from_map(&map).map_err(|e| step("configuration")(e.to_string()))?;
    let wcfg = cfg
        .web()
        .map_err(|e| step("configuration")(e.to_string()))?;
    let ecfg = cfg
        .erp()
        .map_err(|e| step("configuration")(e.to_string()))?;

    // setup + setup --erp
    let (mut web, conn) = crate::db::connect_web(wcfg)
        .await
        .map_err(|e| step("connecting to the web database")(e.to_string()))?;
    tokio::spawn(conn);
    let setup = crate::setup::setup_web(&web)
        .await
        .map_err(|e| step("mikro-sync setup")(crate::db::error_chain(&e)))?;
    say!(opts, "\n$ mikro-sync setup\n{setup}");
    let mut erp = crate::doctor::connect_erp(ecfg)
        .await
        .map_err(step("connecting to the Mikro emulator"))?;
    let erp_setup = crate::setup::setup_erp(&mut erp)
        .await
        .map_err(|e| step("mikro-sync setup --erp")(crate::db::error_chain(&e)))?;
    say!(opts, "\n$ mikro-sync setup --erp\n{erp_setup}");

    // ERP → web import
    let web_pool =
        crate::db::web_pool_from_config(wcfg).map_err(|e| step("web pool")(e.to_string()))?;
    let erp_pool = crate::db::erp_pool_from_config(ecfg)
        .await
        .map_err(|e| step("ERP pool")(e.to_string()))?;
    let sync = crate::erp_sync::run(
        &web_pool,
        &erp_pool,
        &crate::erp_sync::SyncOptions {
            full: true,
            tz: cfg.posting.tz,
            ..Default::default()
        },
    )
    .await
    .map_err(|e| step("ERP → web import")(crate::db::error_chain(&e)))?;
    report.imported_rows = sync.total_read();
    say!(opts, "\n$ mikro-sync sync --full\n{sync}");

    drop((web_pool, erp_pool));

    // The daemon `mikro-sync worker` runs, with its pools warmed up to the worker's
    // concurrency as they are in a daemon that has been running for a while, so the latencies
    // below are not the first TLS handshakes.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon_opts = crate::daemon::DaemonOptions {
        erp_sync: false,
        poll_only: false,
        warm_pools: true,
        ready: Some(ready_tx),
    };
    let daemon_cfg = cfg.clone();
    let daemon = tokio::spawn(async move {
        crate::daemon::run(&daemon_cfg, daemon_opts, async move {
            let _ = stop_rx.await;
        })
        .await
    });
    match tokio::time::timeout(Duration::from_secs(20), ready_rx).await {
        Ok(Ok(())) => {}
        // The daemon dropped its side: it stopped before it was ready.
        Ok(Err(_)) => {
            let message = match daemon.await {
                Ok(Err(e)) => e.to_string(),
                Ok(Ok(_)) => "the worker stopped before it was ready".into(),
                Err(e) => e.to_string(),
            };
            return Err(step("starting the worker")(message));
        }
        Err(_) => {
            let _ = stop_tx.send(());
            let _ = daemon.await;
            return Err(step("starting the worker")(
                "the LISTEN connection did not come up in 20 s".into(),
            ));
        }
    }
    say!(
        opts,
        "\n$ mikro-sync worker   (running in the background, listening)"
    );

    // Documents, written the way a web shop writes them.
    let m = masters(&web).await?;
    let mut docs = Vec::new();
    // Interleave sales and collections, as orders and payments arrive in a shop.
    let (mut si, mut ci) = (0, 0);
    while si < opts.sales || ci < opts.collections {
        if si < opts.sales {
            let (id, no, variant) = insert_sale(&mut web, &m, si).await?;
            docs.push(new_doc("satis", variant, id, no));
            si += 1;
            tokio::time::sleep(opts.pace).await;
        }
        if ci < opts.collections {
            let (id, no, variant) = insert_collection(&web, &m, ci).await?;
            docs.push(new_doc("tahsilat", variant, id, no));
            ci += 1;
            tokio::time::sleep(opts.pace).await;
        }
    }
    say!(
        opts,
        "\nInserted {} sales and {} collections into the web database; waiting for the worker …",
        docs.iter().filter(|d| d.kind == "satis").count(),
        docs.iter().filter(|d| d.kind == "tahsilat").count()
    );

    // Wait until every queue row for them is finished.
    let ids: Vec<Uuid> = docs.iter().map(|d| d.web_id).collect();
    let deadline = Instant::now() + opts.timeout;
    loop {
        let open: i64 = web
            .query_one(
                "SELECT count(*) FROM unnest($1::uuid[]) AS d(id)
                  WHERE NOT EXISTS (SELECT 1 FROM sync_queue q
                                     WHERE q.entity_id = d.id AND q.status IN ('completed', 'failed'))",
                &[&ids],
            )
            .await
            .map_err(|e| step("watching the queue")(pg(e)))?
            .get(0);
        if open == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // Collect results.
    for d in docs.iter_mut() {
        let q = web
            .query_opt(
                "SELECT status, error_message,
                        extract(epoch FROM processed_at - created_at)::float8
                   FROM sync_queue WHERE entity_id = $1 ORDER BY created_at DESC LIMIT 1",
                &[&d.web_id],
            )
            .await
            .map_err(|e| step("reading results")(pg(e)))?;
        if let Some(r) = q {
            d.status = r.get(0);
            d.error = r.get(1);
            d.latency = r
                .get::<_, Option<f64>>(2)
                .filter(|_| d.status == "completed")
                .map(|s| Duration::from_secs_f64(s.max(0.0)));
        }
        let sql = if d.kind == "satis" {
            "SELECT fatura_seri_no, fatura_sira_no FROM satislar WHERE id = $1"
        } else {
            "SELECT tahsilat_seri_no, tahsilat_sira_no FROM tahsilatlar WHERE id = $1"
        };
        if let Some(r) = web
            .query_opt(sql, &[&d.web_id])
            .await
            .map_err(|e| step("reading results")(pg(e)))?
        {
            let seri: Option<String> = r.get(0);
            let sira: Option<i32> = r.get(1);
            if let (Some(s), Some(n)) = (seri, sira) {
                d.mikro_no = Some((s, n));
            }
        }
        let row = erp
            .query(
                "SELECT ml_cha_recno, ml_sth_count FROM dbo.MIKROSYNC_LEDGER WHERE ml_kind = @P1 AND ml_web_id = @P2",
                &[&d.kind, &d.web_id],
            )
            .await
            .map_err(|e| step("reading the ledger")(e.to_string()))?
            .into_row()
            .await
            .map_err(|e| step("reading the ledger")(e.to_string()))?;
        if let Some(r) = row {
            d.cha_recno = r.try_get::<i32, _>(0).ok().flatten();
            d.lines = r.try_get::<i32, _>(1).ok().flatten();
        }
    }
    // Stop the worker gracefully.
    let _ = stop_tx.send(());
    let _ = daemon.await;

    report.docs = docs;
    if opts.print {
        print!("{}", render(&report));
    }
    let posted = report.posted();
    if posted < report.docs.len() {
        return Err(DemoError::Timeout {
            posted,
            total: report.docs.len(),
            secs: opts.timeout.as_secs(),
        });
    }
    Ok(report)
}

fn new_doc(kind: &'static str, variant: String, web_id: Uuid, web_no: String) -> DemoDoc {
    DemoDoc {
        kind,
        variant,
        web_id,
        web_no,
        status: "pending".into(),
        error: None,
        mikro_no: None,
        cha_recno: None,
        lines: None,
        latency: None,
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The table and summary the demo prints.
pub fn render(r: &DemoReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{:<11} {:<24} {:<36} {:<12} {:>9} {:>5} {:>10}  status",
        "web no", "document", "web id", "Mikro no", "CHA RECno", "lines", "latency"
    );
    for d in &r.docs {
        let _ = writeln!(
            out,
            "{:<11} {:<24} {:<36} {:<12} {:>9} {:>5} {:>10}  {}{}",
            d.web_no,
            d.variant,
            d.web_id,
            d.mikro_no
                .as_ref()
                .map(|(s, n)| format!("{s}-{n}"))
                .unwrap_or_else(|| "—".into()),
            d.cha_recno
                .map(|n| n.to_string())
                .unwrap_or_else(|| "—".into()),
            d.lines
                .filter(|_| d.kind == "satis")
                .map(|n| n.to_string())
                .unwrap_or_else(|| "—".into()),
            d.latency.map(ms).unwrap_or_else(|| "—".into()),
            d.status,
            d.error
                .as_ref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(
        out,
        "\n{} of {} documents posted into Mikro; latency web commit → completed: p50 {}, p99 {}",
        r.posted(),
        r.docs.len(),
        r.percentile(50.0).map(ms).unwrap_or_else(|| "—".into()),
        r.percentile(99.0).map(ms).unwrap_or_else(|| "—".into()),
    );
    out
}
