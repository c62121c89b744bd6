//! The Mikro (SQL Server) database checks: connection, rights, clock, Mikro objects.

use std::time::Duration;

use chrono::Utc;
use tokio_util::compat::TokioAsyncWriteCompatExt;

use super::*;
use crate::config::{ErpDbConfig, ErpEncrypt};
use crate::db::ErpClient;

/// Opens one ERP connection with the configured encryption.
pub async fn connect_erp(cfg: &ErpDbConfig) -> Result<ErpClient, String> {
    let tcfg = cfg.tiberius_config();
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(tcfg.get_addr()),
    )
    .await
    .map_err(|_| format!("TCP connect to {} timed out after 10 s", tcfg.get_addr()))?
    .map_err(|e| format!("TCP connect to {}: {e}", tcfg.get_addr()))?;
    let _ = tcp.set_nodelay(true);
    tokio::time::timeout(
        Duration::from_secs(15),
        tiberius::Client::connect(tcfg, tcp.compat_write()),
    )
    .await
    .map_err(|_| "login timed out after 15 s".to_string())?
    .map_err(|e| e.to_string())
}

pub(super) async fn erp_scalar_i64(
    client: &mut ErpClient,
    sql: &str,
) -> Result<Option<i64>, String> {
    let row = client
        .simple_query(sql)
        .await
        .map_err(|e| e.to_string())?
        .into_row()
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.and_then(|r| {
        r.try_get::<i32, _>(0)
            .ok()
            .flatten()
            .map(i64::from)
            .or_else(|| r.try_get::<i64, _>(0).ok().flatten())
    }))
}

pub(super) async fn erp_now(
    client: &mut ErpClient,
) -> Result<Option<chrono::NaiveDateTime>, String> {
    let row = client
        .simple_query("SELECT GETDATE()")
        .await
        .map_err(|e| e.to_string())?
        .into_row()
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.and_then(|r| r.try_get::<chrono::NaiveDateTime, _>(0).ok().flatten()))
}

pub(super) async fn erp_checks(
    cfg: &Config,
    e: &ErpDbConfig,
    client: &mut ErpClient,
    quick: bool,
    out: &mut Vec<Check>,
) -> bool {
    match erp_scalar_i64(client, "SELECT 1").await {
        Ok(_) => out.push(Check::ok(
            "Mikro database",
            format!("connected to {}:{}/{}", e.host, e.port, e.database),
        )),
        Err(m) => {
            out.push(Check::fail(
                "Mikro database",
                m,
                "check the login's rights on the database",
            ));
            return false;
        }
    }
    if quick {
        return false;
    }
    // The server's own PRELOGIN answer says whether the password really travels in clear text.
    let server = prelogin_probe(&e.tiberius_config().get_addr(), Duration::from_secs(5))
        .await
        .ok();
    let product = server
        .map(|s| format!("{}: ", s.product()))
        .unwrap_or_default();
    let forced = server.is_some_and(|s| s.encryption == ServerEncryption::Forced);
    out.push(match (e.encrypt, e.trust_server_certificate) {
        (ErpEncrypt::Required, false) => Check::ok(
            "Mikro TLS",
            format!("{product}encrypted, certificate verified"),
        ),
        (ErpEncrypt::Required, true) => Check::warn(
            "Mikro TLS",
            format!("{product}encrypted, but any certificate is accepted (MSSQL_TRUST_SERVER_CERTIFICATE=true)"),
            "prefer MSSQL_TRUST_CERT_CA=<the server's CA file> when the server has a self-signed certificate",
        ),
        (_, _) if forced => Check::ok(
            "Mikro TLS",
            format!(
                "{product}the server forces encryption, so the whole session is encrypted \
                 although MSSQL_ENCRYPT={}",
                match e.encrypt {
                    ErpEncrypt::Required => "true",
                    ErpEncrypt::LoginOnly => "false",
                    ErpEncrypt::Plaintext => "plaintext",
                }
            ),
        ),
        (ErpEncrypt::LoginOnly, _) if is_local_host(&e.host) => Check::ok(
            "Mikro TLS",
            format!(
                "{product}only the login is encrypted (local server): the password is not sent \
                 in clear text"
            ),
        ),
        (ErpEncrypt::LoginOnly, _) => Check::warn(
            "Mikro TLS",
            format!(
                "{product}only the login is encrypted (MSSQL_ENCRYPT=false): the password is \
                 not sent in clear text, the documents are"
            ),
            "set MSSQL_ENCRYPT=true (plus MSSQL_TRUST_CERT_CA or MSSQL_TRUST_SERVER_CERTIFICATE for self-signed servers)",
        ),
        (ErpEncrypt::Plaintext, _)
            if server.is_some_and(|s| s.encryption == ServerEncryption::NotSupported) =>
        {
            Check::warn(
                "Mikro TLS",
                format!(
                    "{product}no encryption at all (MSSQL_ENCRYPT=plaintext; the server offers \
                     none): the login password and the documents travel in clear text"
                ),
                "give the SQL Server a certificate (SQL Server Configuration Manager → Protocols → \
                 Certificate), then set MSSQL_ENCRYPT=true",
            )
        }
        (ErpEncrypt::Plaintext, _) => Check::warn(
            "Mikro TLS",
            format!(
                "{product}no encryption at all (MSSQL_ENCRYPT=plaintext): the login password \
                 and the documents travel in clear text"
            ),
            "set MSSQL_ENCRYPT=true (or at least false: the login, with the password, is then encrypted)",
        ),
    });
    for (table, col) in [
        ("CARI_HESAP_HAREKETLERI", "cha_RECno"),
        ("STOK_HAREKETLERI", "sth_RECno"),
        ("ODEME_EMIRLERI", "sck_RECno"),
    ] {
        if let Err(m) = erp_scalar_i64(client, &format!("SELECT TOP 1 {col} FROM {table}")).await {
            out.push(Check::fail(
                "Mikro tables",
                format!("cannot read {table}: {m}"),
                format!("grant the login SELECT, INSERT, UPDATE on {table}, or check MSSQL_DATABASE is the company database"),
            ));
        }
    }
    match erp_scalar_i64(client, "SELECT COUNT(*) FROM dbo.MIKROSYNC_LEDGER").await {
        Ok(n) => out.push(Check::ok(
            "ledger",
            format!(
                "dbo.MIKROSYNC_LEDGER present ({} documents posted)",
                n.unwrap_or(0)
            ),
        )),
        Err(m) => out.push(Check::fail(
            "ledger",
            format!("dbo.MIKROSYNC_LEDGER is not readable: {m}"),
            "run `mikro-sync setup --erp` once with a login allowed to CREATE TABLE, \
             then grant the daemon's login SELECT, INSERT on it",
        )),
    }
    match erp_now(client).await {
        Ok(Some(server_now)) => {
            let expected = Utc::now().with_timezone(&cfg.posting.tz).naive_local();
            let skew = (server_now - expected).num_seconds();
            // Mikro stamps lastup_date with its own clock; the ERP → web overlap must cover the
            // skew (plus Mikro's longest transaction), so warn well before it is used up.
            let overlap = cfg.erp_sync_overlap.as_secs() as i64;
            if skew.abs() * 2 >= overlap {
                out.push(Check::warn(
                    "ERP clock skew",
                    format!(
                        "SQL Server's clock is {:+} s off this machine's; \
                         the ERP → web overlap (MIKRO_SYNC_ERP_SYNC_OVERLAP) is {overlap} s",
                        skew
                    ),
                    "synchronise the clocks (NTP on both machines), or raise \
                     MIKRO_SYNC_ERP_SYNC_OVERLAP to at least twice the skew plus Mikro's longest \
                     transaction; rows stamped outside the overlap wait for the periodic full \
                     re-read (MIKRO_SYNC_ERP_SYNC_FULL_EVERY)",
                ));
            } else {
                out.push(Check::ok(
                    "ERP clock skew",
                    format!(
                        "{} s, within half the ERP → web overlap ({overlap} s)",
                        skew.abs()
                    ),
                ));
            }
            if skew.abs() > 120 {
                out.push(Check::warn(
                    "time zone",
                    format!(
                        "SQL Server's clock reads {server_now}, but now in {} is {} ({:+} min)",
                        cfg.posting.tz.name(),
                        expected.format("%Y-%m-%d %H:%M:%S"),
                        skew / 60
                    ),
                    "documents are dated in MIKRO_SYNC_TIMEZONE: set it to the company's zone, \
                     or fix the SQL Server machine's clock",
                ));
            } else {
                out.push(Check::ok(
                    "time zone",
                    format!(
                        "SQL Server's local time matches {} within {} s",
                        cfg.posting.tz.name(),
                        skew.abs()
                    ),
                ));
            }
        }
        Ok(None) => {}
        Err(m) => out.push(Check::warn(
            "time zone",
            format!("cannot read GETDATE(): {m}"),
            "",
        )),
    }
    true
}
