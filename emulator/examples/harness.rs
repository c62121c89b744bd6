//! Starts the test harness, prints its connection settings and how long it took, runs one query
//! on each side, and keeps it running until Enter is pressed (so you can poke at it with
//! `tsql`, `psql` or the daemon).
//!
//!     cargo run -p mikro-emulator --example harness            # interactive
//!     cargo run -p mikro-emulator --example harness -- --once  # start, query, stop
//!
//! With `MIKRO_TEST_MSSQL` set to an ADO string of a real SQL Server, the ERP side is a fresh
//! test database there instead of the emulator.

use mikro_emulator::harness::{Harness, HarnessOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let once = std::env::args().any(|a| a == "--once");
    let h = Harness::start(HarnessOptions::default()).await?;
    println!("harness started in {:?}", h.started_in());
    println!("web (PostgreSQL): {}", h.web_url());
    println!("erp (TDS):        {}", h.erp_ado());
    println!("erp (TDS, TLS):   {}", h.erp_ado_tls());
    println!(
        "tsql:             TDSVER=7.4 tsql -H {} -p {} -U {} -P '{}' -D {}",
        h.host(),
        h.port(),
        h.user(),
        h.password(),
        h.database()
    );

    let mut erp = h.erp_client().await?;
    let rows = erp
        .query(
            "SELECT cari_kod, cari_unvan1 FROM CARI_HESAPLAR ORDER BY cari_kod",
            &[],
        )
        .await?
        .into_first_result()
        .await?;
    for r in rows {
        println!(
            "  {} {}",
            r.get::<&str, _>(0).unwrap_or(""),
            r.get::<&str, _>(1).unwrap_or("")
        );
    }
    let web = h.web_client().await?;
    let n: i64 = web
        .query_one("SELECT count(*) FROM stoklar", &[])
        .await?
        .get(0);
    println!("web stoklar rows: {n}");

    if !once {
        println!("press Enter to stop");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
    }
    h.shutdown().await;
    Ok(())
}
