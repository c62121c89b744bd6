//! How fast can the ERP side go? Prints (does not assert) the emulator's
//!  - single-row INSERT rate through `sp_executesql` (tiberius `Query::bind`), and
//!  - rate of a 3-line, sale-shaped transaction (BEGIN TRAN; INSERT header + SCOPE_IDENTITY();
//!    UPDATE header RECid; 3 × (INSERT line + SCOPE_IDENTITY(); UPDATE line RECid); COMMIT),
//!
//! each with 1 and 4 connections, against the harness's emulator — and against the real SQL
//! Server in `MIKRO_TEST_MSSQL` when that is set. mikro-sync aims at ≥ 500 documents/s; these
//! figures are the ceiling it works under.
//!
//!     cargo bench --bench emulator            # ~30-40 s
//!     BENCH_SECONDS=2 cargo bench --bench emulator
//!
//! Run in release mode (cargo bench does), on an otherwise idle machine.

use std::time::{Duration, Instant};

use mikro_emulator::harness::{ErpClient, Harness, HarnessOptions};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use tiberius::Query;

type BoxErr = Box<dyn std::error::Error + Send + Sync>;

const SCHEMA: &str = "\
IF OBJECT_ID(N'dbo.BENCH_INS', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.BENCH_INS (
        ins_RECno int IDENTITY(1,1) NOT NULL,
        ins_kod nvarchar(25) NOT NULL,
        ins_miktar int NOT NULL,
        ins_tutar float NOT NULL,
        ins_tarih datetime NOT NULL,
        CONSTRAINT PK_BENCH_INS PRIMARY KEY (ins_RECno)
    );
END;
IF OBJECT_ID(N'dbo.BENCH_HDR', N'U') IS NULL
BEGIN
    CREATE TABLE dbo.BENCH_HDR (
        hdr_RECno int IDENTITY(1,1) NOT NULL,
        hdr_RECid_RECno int NOT NULL,
        hdr_seri nvarchar(20) NOT NULL,
        hdr_sira int NOT NULL,
        hdr_kod nvarchar(25) NOT NULL,
        hdr_meblag float NOT NULL,
        hdr_tarih datetime NOT NULL,
        CONSTRAINT PK_BENCH_HDR PRIMARY KEY (hdr_RECno)
    );
    CREATE TABLE dbo.BENCH_LINE (
        line_RECno int IDENTITY(1,1) NOT NULL,
        line_RECid_RECno int NOT NULL,
        line_hdr_recno int NOT NULL,
        line_satirno int NOT NULL,
        line_stok_kod nvarchar(25) NOT NULL,
        line_miktar float NOT NULL,
        line_tutar float NOT NULL,
        CONSTRAINT PK_BENCH_LINE PRIMARY KEY (line_RECno)
    );
END;
";

fn seconds() -> Duration {
    let s = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(4.0);
    Duration::from_secs_f64(s.max(0.5))
}

fn ts(hour: u32) -> chrono::NaiveDateTime {
    chrono::NaiveDate::from_ymd_opt(2026, 1, 5)
        .and_then(|d| d.and_hms_opt(hour, 0, 0))
        .expect("valid date")
}

async fn insert_one(c: &mut ErpClient, i: i32) -> Result<(), BoxErr> {
    let mut q = Query::new(
        "INSERT INTO BENCH_INS (ins_kod, ins_miktar, ins_tutar, ins_tarih) VALUES (@P1, @P2, @P3, @P4)",
    );
    q.bind(format!("STK-{:04}", i % 10_000));
    q.bind(i);
    q.bind(i as f64 * 1.25);
    q.bind(ts(9));
    let n = q.execute(c).await?.total();
    if n != 1 {
        return Err(format!("INSERT affected {n} rows").into());
    }
    Ok(())
}

async fn scope_identity_insert(c: &mut ErpClient, q: Query<'_>) -> Result<i32, BoxErr> {
    let row = q
        .query(c)
        .await?
        .into_results()
        .await?
        .into_iter()
        .flatten()
        .next()
        .ok_or("no SCOPE_IDENTITY() row")?;
    let d: Decimal = row
        .try_get::<Decimal, _>(0)?
        .ok_or("SCOPE_IDENTITY() was NULL")?;
    d.to_i32().ok_or_else(|| "RECno out of range".into())
}

async fn sale(c: &mut ErpClient, n: i32) -> Result<(), BoxErr> {
    c.simple_query("BEGIN TRAN").await?.into_results().await?;
    let mut q = Query::new(
        "INSERT INTO BENCH_HDR (hdr_RECid_RECno, hdr_seri, hdr_sira, hdr_kod, hdr_meblag, hdr_tarih) \
         VALUES (0, @P1, @P2, @P3, @P4, @P5); SELECT SCOPE_IDENTITY()",
    );
    q.bind("WEB");
    q.bind(n);
    q.bind("120.01.001");
    q.bind(359.7f64);
    q.bind(ts(0));
    let hdr = scope_identity_insert(c, q).await?;
    let mut u = Query::new("UPDATE BENCH_HDR SET hdr_RECid_RECno = @P1 WHERE hdr_RECno = @P1");
    u.bind(hdr);
    u.execute(c).await?;
    for line in 0..3 {
        let mut q = Query::new(
            "INSERT INTO BENCH_LINE (line_RECid_RECno, line_hdr_recno, line_satirno, line_stok_kod, line_miktar, line_tutar) \
             VALUES (0, @P1, @P2, @P3, @P4, @P5); SELECT SCOPE_IDENTITY()",
        );
        q.bind(hdr);
        q.bind(line);
        q.bind(format!("STK-{:04}", line + 1));
        q.bind(1.0f64);
        q.bind(119.9f64);
        let rec = scope_identity_insert(c, q).await?;
        let mut u =
            Query::new("UPDATE BENCH_LINE SET line_RECid_RECno = @P1 WHERE line_RECno = @P1");
        u.bind(rec);
        u.execute(c).await?;
    }
    c.simple_query("COMMIT TRAN").await?.into_results().await?;
    Ok(())
}

#[derive(Clone, Copy)]
enum Work {
    Insert,
    Sale,
}

/// Runs `work` on `conns` connections for the configured time; returns operations per second.
async fn measure(h: &Harness, work: Work, conns: usize) -> Result<(f64, u64), BoxErr> {
    let dur = seconds();
    let mut tasks = Vec::new();
    let start = Instant::now();
    for t in 0..conns {
        let mut c = h.erp_client().await?;
        tasks.push(tokio::spawn(async move {
            let mut done: u64 = 0;
            let mut i = (t as i32) * 1_000_000;
            while start.elapsed() < dur {
                match work {
                    Work::Insert => insert_one(&mut c, i).await?,
                    Work::Sale => sale(&mut c, i).await?,
                }
                i += 1;
                done += 1;
            }
            Ok::<u64, BoxErr>(done)
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok((total as f64 / secs, total))
}

async fn run(label: &str, opts: HarnessOptions) -> Result<(), BoxErr> {
    let h = Harness::start(opts).await?;
    println!(
        "\n== {label}: harness started in {:.2} s (real SQL Server: {})",
        h.started_in().as_secs_f64(),
        h.is_real_sql_server()
    );
    h.erp_exec(SCHEMA).await?;
    for (name, work) in [
        ("single-row INSERT via sp_executesql", Work::Insert),
        ("3-line sale transaction", Work::Sale),
    ] {
        for conns in [1usize, 4] {
            let (rate, n) = measure(&h, work, conns).await?;
            let unit = match work {
                Work::Insert => "rows/s",
                Work::Sale => "documents/s",
            };
            println!(
                "{label:>9} | {name:<38} | {conns} conn | {rate:>8.0} {unit:<11} ({n} in {:.1} s)",
                seconds().as_secs_f64()
            );
        }
    }
    h.shutdown().await;
    Ok(())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), BoxErr> {
    // `cargo test --benches` runs this binary with --bench absent; keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("emulator bench: run with `cargo bench --bench emulator`");
        return Ok(());
    }
    run(
        "emulator",
        HarnessOptions {
            force_emulator: true,
            mikro_seed: false,
            web_schema: false,
            web_seed: false,
            ..Default::default()
        },
    )
    .await?;
    if std::env::var("MIKRO_TEST_MSSQL").is_ok_and(|s| !s.trim().is_empty()) {
        run(
            "sqlserver",
            HarnessOptions {
                mikro_seed: false,
                web_schema: false,
                web_seed: false,
                ..Default::default()
            },
        )
        .await?;
    }
    Ok(())
}
