//! The ERP transaction around one posting and the classification of ERP failures.
//!
//! tiberius 0.12 has no transaction object: the transaction is `BEGIN TRAN` / `COMMIT TRAN` text.
//! `SET XACT_ABORT ON` makes SQL Server roll the whole transaction back on any error, so a failed
//! statement can never leave half a document behind; we still send a guarded ROLLBACK. The option
//! is switched off again at COMMIT/ROLLBACK, because pooled connections are shared with code that
//! relies on statement-level atomicity (the ERP → web sync).

use chrono::NaiveDateTime;
use tiberius::{Query, Row};

use super::PostError;
use crate::db::ErpClient;
use crate::mikro::{Batch, MikroError, SqlParam};

/// SQL Server errors worth retrying. The base is Microsoft.Data.SqlClient's default transient
/// list (`SqlConfigurableRetryFactory`: 1204, 1205, 1222, 49918, 49919, 49920, 4060, 4221,
/// 40143, 40613, 40501, 40540, 40197, 10929, 10928, 10060, 10054, 10053, 997, 233, 64, 20, 0),
/// plus the memory-pressure errors a busy on-premises server raises (701, 8645, 8651). In words:
/// deadlock victim and lock timeout/exhaustion, the database unavailable during a failover,
/// restore or start-up, Azure/AG throttling and reconfiguration, and network errors the server
/// side reports. Error 0 and 20 are left out: tiberius never reports them as server errors.
/// 18456 (login failed) is not here: it happens only at connect, where every failure already
/// leaves the document waiting, and outside a failover it means a wrong password to fix.
pub const TRANSIENT_SERVER_CODES: [u32; 24] = [
    1204, 1205, 1222, 701, 8645, 8651, 4060, 4221, 40143, 40197, 40501, 40540, 40613, 49918, 49919,
    49920, 10928, 10929, 10053, 10054, 10060, 997, 233, 64,
];
/// Duplicate key (unique index / constraint). In a posting this means another writer got there
/// first (a second worker on the same document hits the ledger's primary key; the Mikro program
/// racing us on a refno hits the ODEME_EMIRLERI index): the retry sees the winner's row.
const DUPLICATE_KEY_CODES: [u32; 2] = [2601, 2627];
/// Severity 20 and above ends the connection (SQL Server closes the session): retry on another.
const FATAL_CLASS: u8 = 20;

/// The retry class of a SQL Server error by number and severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerErrorClass {
    /// Failover, resource, lock or connection trouble: retried until it passes.
    Transient,
    /// Another writer inserted the same key first: retried, the retry finds the winner.
    DuplicateKey,
    /// Anything else (a NULL, a truncation, a missing object …): counts against the retries.
    Data,
}

/// Classifies a SQL Server error number/severity (see [`TRANSIENT_SERVER_CODES`]).
pub fn server_error_class(code: u32, class: u8) -> ServerErrorClass {
    if TRANSIENT_SERVER_CODES.contains(&code) || class >= FATAL_CLASS {
        ServerErrorClass::Transient
    } else if DUPLICATE_KEY_CODES.contains(&code) {
        ServerErrorClass::DuplicateKey
    } else {
        ServerErrorClass::Data
    }
}

/// Maps a tiberius error to the retry class: connection, I/O, TLS and protocol failures, and the
/// server errors of [`TRANSIENT_SERVER_CODES`] are transient; other server errors are data errors
/// carrying SQL Server's message (a NULL, a truncation, a missing object …).
pub fn classify(e: tiberius::error::Error, during: &str) -> PostError {
    use tiberius::error::Error as E;
    match e {
        E::Server(ref t) => match server_error_class(t.code(), t.class()) {
            ServerErrorClass::Transient => PostError::Transient(format!(
                "{during}: SQL Server error {} (class {}): {}",
                t.code(),
                t.class(),
                t.message()
            )),
            ServerErrorClass::DuplicateKey => PostError::Transient(format!(
                "{during}: another writer inserted the same key first (SQL Server error {}: {}); \
                 retrying will find it",
                t.code(),
                t.message()
            )),
            ServerErrorClass::Data => PostError::Data(format!(
                "{during}: SQL Server error {} (state {}, class {}): {}",
                t.code(),
                t.state(),
                t.class(),
                t.message()
            )),
        },
        E::Io { .. } | E::Protocol(_) | E::Tls(_) | E::Routing { .. } => {
            PostError::Transient(format!(
                "{during}: ERP connection failed: {}",
                crate::db::error_chain(&e)
            ))
        }
        other => PostError::Data(format!("{during}: {other}")),
    }
}

/// The transient error of a statement that got no answer within [`crate::db::erp_query_timeout`].
/// The connection's check-out test discards it afterwards (a late answer fails its echo).
pub fn timed_out(during: &str) -> PostError {
    PostError::Transient(format!(
        "{during}: no answer from SQL Server within {} ms (MIKRO_SYNC_MSSQL_QUERY_TIMEOUT); \
         the connection is dropped and the document retried",
        crate::db::erp_query_timeout().as_millis()
    ))
}

/// Runs one ERP exchange under [`crate::db::erp_query_timeout`].
pub async fn bounded<T>(
    during: &str,
    f: impl std::future::Future<Output = Result<T, PostError>>,
) -> Result<T, PostError> {
    tokio::time::timeout(crate::db::erp_query_timeout(), f)
        .await
        .unwrap_or_else(|_| Err(timed_out(during)))
}

/// [`classify`] for errors of the Mikro row builder: building problems are data errors.
pub fn classify_mikro(e: MikroError, during: &str) -> PostError {
    match e {
        MikroError::Sql(e) => classify(e, during),
        other => PostError::Data(format!("{during}: {other}")),
    }
}

/// Opens the posting transaction. A transaction left open on a pooled connection by an
/// interrupted earlier use is rolled back first, so nothing of it can be committed with ours.
pub async fn begin(erp: &mut ErpClient) -> Result<(), PostError> {
    bounded("BEGIN TRAN", async {
        erp.simple_query("IF @@TRANCOUNT > 0 ROLLBACK TRAN; SET XACT_ABORT ON; BEGIN TRAN")
            .await
            .map_err(|e| classify(e, "BEGIN TRAN"))?
            .into_results()
            .await
            .map_err(|e| classify(e, "BEGIN TRAN"))?;
        Ok(())
    })
    .await
}

/// Makes a complete posting batch its own transaction: `SET XACT_ABORT ON; BEGIN TRAN` in front,
/// `COMMIT TRAN; SET XACT_ABORT OFF` at the end, so BEGIN, the rows and COMMIT travel in one round
/// trip and the per-series numbering lock is held only while the server runs the batch (not
/// across two more network round trips). Any error aborts the batch and rolls the transaction
/// back (`XACT_ABORT`), so the caller only has to clean up with [`rollback_quietly`].
///
/// Only for a batch that holds the whole document: `BEGIN` and `COMMIT` must be in the same
/// `sp_executesql`, or SQL Server reports error 266 (mismatching transaction count). Documents
/// too large for one call (more than 2,100 parameters) use [`begin`] / [`commit`] instead. The
/// pool's check-out test (`crate::db::ErpManager`) guarantees no transaction is open when the
/// batch starts.
///
/// `after_commit` appends what must follow the COMMIT (the outcome SELECT): statements that need
/// nothing from the server belong there, not before the COMMIT, where they would keep the
/// transaction (and its locks) open a little longer.
pub fn wrap_in_transaction(b: &mut Batch, after_commit: impl FnOnce(&mut Batch)) {
    b.prepend("SET XACT_ABORT ON;\nBEGIN TRAN");
    b.stmt("COMMIT TRAN");
    after_commit(b);
    b.stmt("SET XACT_ABORT OFF");
}

/// Commits the posting transaction.
pub async fn commit(erp: &mut ErpClient) -> Result<(), PostError> {
    bounded("COMMIT TRAN", async {
        erp.simple_query("COMMIT TRAN; SET XACT_ABORT OFF")
            .await
            .map_err(|e| classify(e, "COMMIT TRAN"))?
            .into_results()
            .await
            .map_err(|e| classify(e, "COMMIT TRAN"))?;
        Ok(())
    })
    .await
}

/// Rolls back whatever is open; failures are only logged (the connection may be gone, and then
/// the server has rolled back already).
pub async fn rollback_quietly(erp: &mut ErpClient) {
    let r = bounded("ROLLBACK", async {
        match erp
            .simple_query("IF @@TRANCOUNT > 0 ROLLBACK TRAN; SET XACT_ABORT OFF")
            .await
        {
            Ok(s) => s.into_results().await.map(|_| ()),
            Err(e) => Err(e),
        }
        .map_err(|e| classify(e, "ROLLBACK"))
    })
    .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, "ROLLBACK after a failed posting failed");
    }
}

/// Runs a parameterised batch and returns its rows grouped by result-set index. (tiberius'
/// `into_results` drops empty result sets in the middle of a batch, which would shift the
/// indexes we rely on.)
pub async fn run(
    erp: &mut ErpClient,
    q: Query<'_>,
    sets: usize,
    during: &str,
) -> Result<Vec<Vec<Row>>, PostError> {
    use futures::TryStreamExt;
    bounded(during, async {
        let mut out: Vec<Vec<Row>> = (0..sets).map(|_| Vec::new()).collect();
        let mut stream = q.query(erp).await.map_err(|e| classify(e, during))?;
        while let Some(item) = stream.try_next().await.map_err(|e| classify(e, during))? {
            if let tiberius::QueryItem::Row(row) = item {
                let i = row.result_index();
                if i >= out.len() {
                    out.resize_with(i + 1, Vec::new);
                }
                out[i].push(row);
            }
        }
        Ok(out)
    })
    .await
}

pub use crate::mikro::{get_int, get_text};

/// A `datetime` parameter (not `datetime2`, which tiberius would send for a chrono value).
pub fn datetime_param(dt: NaiveDateTime) -> Result<SqlParam, PostError> {
    crate::mikro::sql_datetime(dt)
        .map(|d| SqlParam(tiberius::ColumnData::DateTime(Some(d))))
        .ok_or_else(|| PostError::Data(format!("{dt} is outside SQL Server datetime's range")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failover_resource_and_lock_errors_are_transient() {
        for code in [
            1205, 1222, 1204, 701, 8645, 8651, 4060, 40613, 40501, 49918, 233, 10054,
        ] {
            assert_eq!(
                server_error_class(code, 16),
                ServerErrorClass::Transient,
                "{code}"
            );
        }
    }

    #[test]
    fn data_errors_stay_data_errors() {
        // NULL into a NOT NULL column, truncation, invalid object, conversion, login failed.
        for code in [515, 8152, 2628, 208, 245, 547, 18456] {
            assert_eq!(
                server_error_class(code, 16),
                ServerErrorClass::Data,
                "{code}"
            );
        }
        assert_eq!(server_error_class(2627, 14), ServerErrorClass::DuplicateKey);
        assert_eq!(server_error_class(2601, 14), ServerErrorClass::DuplicateKey);
    }

    #[test]
    fn a_fatal_severity_is_transient_whatever_the_number() {
        assert_eq!(server_error_class(50000, 20), ServerErrorClass::Transient);
        assert_eq!(server_error_class(50000, 16), ServerErrorClass::Data);
    }

    #[test]
    fn io_errors_are_transient_and_name_the_cause() {
        let e = tiberius::error::Error::Io {
            kind: std::io::ErrorKind::ConnectionReset,
            message: "connection reset by peer".into(),
        };
        match classify(e, "posting ST-1") {
            PostError::Transient(m) => assert!(m.contains("connection reset by peer"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
