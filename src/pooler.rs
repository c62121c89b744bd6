//! Detecting a transaction-mode connection pooler (PgBouncer `pool_mode = transaction`,
//! Supabase's pooler on port 6543) in front of the web database.
//!
//! The daemon needs a session: LISTEN, the ERP-sync advisory lock, session settings and cached
//! prepared statements all live on one server connection. Behind a transaction pooler they would
//! land on server connections shared with the shop's own clients, so `worker`, `sync` and
//! `sync-bidirectional` refuse to start instead (the queue is not rewritten for transaction mode).
//!
//! The probe uses two client connections and only `SELECT pg_backend_pid()` in the simple
//! protocol (no `SET`, no prepared statement, no lock): A asks for its backend, B opens a
//! transaction and asks for its backend, A asks again. On a session (direct connection or a
//! session pooler) A keeps its backend and B never gets it; a transaction pooler hands A's
//! released backend to B, or gives A another one.

use std::time::Duration;

use tokio_postgres::SimpleQueryMessage;

use crate::config::WebDbConfig;
use crate::db::WebConnectError;

/// Bound of the whole probe (two connections, five short statements).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// What the probe saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionMode {
    /// Each client connection keeps its own server backend (direct, or a session pooler).
    Session,
    /// Statements of one client connection ran on different backends, or another client got
    /// its backend while it was still connected.
    Transaction {
        /// Backend of A's first statement.
        first: i32,
        /// Backend of A's second statement.
        second: i32,
        /// Backend of B's open transaction.
        other: i32,
    },
}

/// Why the probe could not tell.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Connect(#[from] WebConnectError),
    #[error("pooler probe: {}", crate::db::error_chain(.0))]
    Query(#[from] tokio_postgres::Error),
    #[error("pooler probe: pg_backend_pid() returned no number")]
    NoPid,
    #[error("pooler probe: no answer within {} s", PROBE_TIMEOUT.as_secs())]
    Timeout,
}

async fn backend_pid(c: &tokio_postgres::Client) -> Result<i32, ProbeError> {
    for m in c.simple_query("SELECT pg_backend_pid()").await? {
        if let SimpleQueryMessage::Row(r) = m {
            return r
                .get(0)
                .and_then(|s| s.parse().ok())
                .ok_or(ProbeError::NoPid);
        }
    }
    Err(ProbeError::NoPid)
}

async fn connect(cfg: &WebDbConfig) -> Result<tokio_postgres::Client, ProbeError> {
    let tls = crate::db::pg_tls_connector(&cfg.tls).map_err(WebConnectError::from)?;
    let mut pg = cfg.pg_config();
    crate::db::harden_web_config(&mut pg);
    // PgBouncer hands a client's application_name on to the server connection and does not
    // reset it for clients that send none: the probe must not leave its name behind.
    pg.application_name("");
    let (client, conn) = pg.connect(tls).await.map_err(WebConnectError::from)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "pooler probe connection ended");
        }
    });
    Ok(client)
}

async fn probe(cfg: &WebDbConfig) -> Result<SessionMode, ProbeError> {
    let a = connect(cfg).await?;
    let first = backend_pid(&a).await?;
    let b = connect(cfg).await?;
    b.simple_query("BEGIN").await?;
    let other = backend_pid(&b).await?;
    let second = backend_pid(&a).await?;
    b.simple_query("ROLLBACK").await?;
    if first == second && other != first {
        Ok(SessionMode::Session)
    } else {
        Ok(SessionMode::Transaction {
            first,
            second,
            other,
        })
    }
}

/// Probes the web database (bounded by [`PROBE_TIMEOUT`]).
pub async fn detect(cfg: &WebDbConfig) -> Result<SessionMode, ProbeError> {
    tokio::time::timeout(PROBE_TIMEOUT, probe(cfg))
        .await
        .map_err(|_| ProbeError::Timeout)?
}

/// What to configure instead of a transaction pooler (docs/install.md has the details).
pub const FIX: &str = "point MIKRO_SYNC_PG_URL (or PG_HOST/PG_PORT) at the database directly \
     (Supabase: db.<project>.supabase.co:5432) or at a session pooler (Supabase: the pooler host \
     on port 5432; PgBouncer: pool_mode = session); the transaction pooler (Supabase port 6543) \
     is not supported, see docs/install.md";

/// The one line `worker`/`sync` end with behind a transaction pooler.
pub fn refusal(cfg: &WebDbConfig, mode: SessionMode) -> String {
    let seen = match mode {
        SessionMode::Transaction {
            first,
            second,
            other,
        } => format!(
            "one connection's statements ran on backends {first} and {second}, \
             another connection's transaction on {other}"
        ),
        SessionMode::Session => "each connection keeps its backend".to_string(),
    };
    format!(
        "the web database at {}:{} is behind a transaction-mode pooler ({seen}); mikro-sync needs \
         a session for LISTEN, advisory locks and session settings and did not start, so no other \
         client's session was changed: {FIX}",
        cfg.host, cfg.port
    )
}

/// The web database is reached through a pooler that cannot give the worker a session; the
/// text says which and what to change.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Refuses (exit code 2) behind a transaction pooler; a probe that cannot connect is left to
/// the caller's own connection handling (the worker retries), so it only logs a warning.
pub async fn require_session(cfg: &WebDbConfig) -> Result<(), Refused> {
    match detect(cfg).await {
        Ok(SessionMode::Session) => Ok(()),
        Ok(mode) => Err(Refused(refusal(cfg, mode))),
        Err(e) => {
            tracing::warn!(error = %e, "could not check for a transaction pooler");
            Ok(())
        }
    }
}
