//! `mikro-sync doctor`: checks everything an installation needs and says what to do about each
//! problem.
//!
//! Why: the old tool failed silently (wrong time zone, a missing trigger, a customer without a
//! Mikro code) and operators found out from an accountant. Each check here prints `ok`, `warn` or
//! `FAIL` with the fact it saw and, for anything not ok, the command or SQL that fixes it.

use std::time::Duration;

use crate::config::Config;
use crate::db::pg_error_text;

mod erp;
mod mapping;
mod prelogin;
mod web;

pub use erp::connect_erp;
use erp::erp_checks;
use mapping::mapping_checks;
use prelogin::tls_failure_fix;
pub use prelogin::{prelogin_probe, ServerEncryption, ServerPrelogin};
use web::web_checks;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Fine.
    Ok,
    /// Works, but worth attention.
    Warn,
    /// Broken: documents will not flow until fixed.
    Fail,
}

/// One finding.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Verdict.
    pub level: Level,
    /// What was seen.
    pub detail: String,
    /// What to do (empty when ok).
    pub fix: String,
}

impl Check {
    fn ok(name: &str, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            level: Level::Ok,
            detail: detail.into(),
            fix: String::new(),
        }
    }
    fn warn(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            level: Level::Warn,
            detail: detail.into(),
            fix: fix.into(),
        }
    }
    fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            level: Level::Fail,
            detail: detail.into(),
            fix: fix.into(),
        }
    }
}

/// Renders findings as the text doctor prints.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let tag = match c.level {
            Level::Ok => "[ ok ]",
            Level::Warn => "[warn]",
            Level::Fail => "[FAIL]",
        };
        out.push_str(&format!("{tag} {}: {}\n", c.name, c.detail));
        if !c.fix.is_empty() {
            for line in c.fix.lines() {
                out.push_str(&format!("       → {line}\n"));
            }
        }
    }
    out
}

fn is_local_host(h: &str) -> bool {
    h == "localhost"
        || h.starts_with('/')
        || h.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// Runs every check (or, with `quick`, connectivity only) and returns the findings.
pub async fn checks(cfg: &Config, quick: bool) -> Vec<Check> {
    let mut out = Vec::new();
    // ---- web database ----
    let mut web_client = None;
    match cfg.web() {
        Err(e) => out.push(Check::fail("web database", "not configured", e.to_string())),
        Ok(w) => match crate::db::connect_web(w).await {
            Err(e) => {
                let msg = match &e {
                    crate::db::WebConnectError::Pg(p) => pg_error_text(p),
                    other => other.to_string(),
                };
                let fix = if msg.to_lowercase().contains("certificate") {
                    "the server certificate is not trusted: set PG_SSL_ROOT_CERT to the provider's CA file \
                     (Supabase: Database settings → SSL certificate), or as a last resort \
                     PG_SSL_INSECURE_SKIP_VERIFY=true"
                } else {
                    "check PG_HOST/PG_PORT/PG_DATABASE/PG_USER/PG_PASSWORD (or MIKRO_SYNC_PG_URL), \
                     and that the server accepts connections from this machine"
                };
                out.push(Check::fail(
                    "web database",
                    format!("cannot connect to {}: {msg}", w.display_masked()),
                    fix,
                ));
            }
            Ok((client, conn)) => {
                tokio::spawn(conn);
                if web_checks(cfg, w, &client, quick, &mut out).await {
                    web_client = Some(client);
                }
            }
        },
    }
    // ---- ERP database ----
    let mut erp_client = None;
    match cfg.erp() {
        Err(e) => out.push(Check::fail(
            "Mikro database",
            "not configured",
            e.to_string(),
        )),
        Ok(e) => match connect_erp(e).await {
            Err(msg) => {
                let lower = msg.to_lowercase();
                let server = if lower.contains("login failed") || lower.starts_with("tcp connect") {
                    None
                } else {
                    let addr = e.tiberius_config().get_addr();
                    prelogin_probe(&addr, Duration::from_secs(5)).await.ok()
                };
                let fix = if lower.contains("certificate") {
                    "the SQL Server certificate is not trusted: set MSSQL_TRUST_CERT_CA to its CA file, \
                     or explicitly MSSQL_TRUST_SERVER_CERTIFICATE=true (self-signed servers)"
                        .to_string()
                } else if lower.contains("login failed") {
                    "check MSSQL_USER / MSSQL_PASSWORD and that the login may use MSSQL_DATABASE"
                        .to_string()
                } else if let Some(fix) = tls_failure_fix(&msg, e, server.as_ref()) {
                    fix
                } else {
                    "check MSSQL_SERVER/MSSQL_PORT (SQL Server Configuration Manager: TCP/IP enabled, port), \
                     the firewall, and MSSQL_ENCRYPT"
                        .to_string()
                };
                out.push(Check::fail(
                    "Mikro database",
                    format!("cannot connect to {}: {msg}", e.display_masked()),
                    fix,
                ));
            }
            Ok(mut client) => {
                if erp_checks(cfg, e, &mut client, quick, &mut out).await {
                    erp_client = Some(client);
                }
            }
        },
    }
    // ---- mappings: every open document's customer and products resolve to a Mikro code ----
    if let Some(web) = &web_client {
        mapping_checks(
            web,
            erp_client.as_mut(),
            cfg.posting.default_cari_code.as_deref(),
            &mut out,
        )
        .await;
    }
    out
}
