//! The T-SQL engine: parses T-SQL (sqlparser, MsSqlDialect), decides types from its own catalog,
//! and executes on PostgreSQL. One [`Session`] per TDS connection, one PostgreSQL connection per
//! session (so transactions, locks and advisory locks map one to one).
//!
//! STUB: this placeholder passes SQL straight to PostgreSQL and returns text columns; the engine
//! work replaces the body but keeps these signatures (the protocol layer depends on them).

use crate::value::{Column, Output, Param, SqlError, SqlType, TxEvent, Value};

/// Shared, per-server engine state (catalog of T-SQL column types, applock tables, …).
#[derive(Debug, Default)]
pub struct Engine {
    /// PostgreSQL connection string of the database that stores the emulated SQL Server database.
    pub pg_url: String,
}

impl Engine {
    /// Builds the engine for one emulated database stored in PostgreSQL at `pg_url`.
    pub async fn new(pg_url: &str) -> Result<std::sync::Arc<Engine>, SqlError> {
        Ok(std::sync::Arc::new(Engine {
            pg_url: pg_url.to_string(),
        }))
    }

    /// Opens a session (one per TDS connection) with its own PostgreSQL connection.
    pub async fn session(self: &std::sync::Arc<Self>) -> Result<Session, SqlError> {
        let (client, conn) = tokio_postgres::connect(&self.pg_url, tokio_postgres::NoTls)
            .await
            .map_err(|e| SqlError::new(4060, format!("cannot open the backing database: {e}")))?;
        tokio::spawn(conn);
        Ok(Session {
            client,
            tx: None,
            next_tx: 1,
        })
    }
}

/// One client connection's state: its PostgreSQL connection, transaction, variables,
/// SCOPE_IDENTITY, SET options.
pub struct Session {
    client: tokio_postgres::Client,
    tx: Option<u64>,
    next_tx: u64,
}

impl Session {
    /// Runs a SQL batch (SQLBatch) or an `sp_executesql` statement with its parameters.
    /// Appends every result, count, error and transaction change to `out`, in order.
    pub async fn execute(&mut self, sql: &str, params: &[Param], out: &mut Vec<Output>) {
        let _ = params;
        match self.client.simple_query(sql).await {
            Ok(msgs) => {
                let mut columns: Vec<Column> = Vec::new();
                let mut rows = Vec::new();
                for m in msgs {
                    match m {
                        tokio_postgres::SimpleQueryMessage::Row(r) => {
                            if columns.is_empty() {
                                columns = r
                                    .columns()
                                    .iter()
                                    .map(|c| Column {
                                        name: c.name().to_string(),
                                        ty: SqlType::NVarChar(Some(4000)),
                                        nullable: true,
                                    })
                                    .collect();
                            }
                            rows.push(
                                (0..r.len())
                                    .map(|i| {
                                        r.get(i)
                                            .map(|s| Value::String(s.to_string()))
                                            .unwrap_or(Value::Null)
                                    })
                                    .collect(),
                            );
                        }
                        tokio_postgres::SimpleQueryMessage::CommandComplete(n) => {
                            if !columns.is_empty() {
                                out.push(Output::Rows {
                                    columns: std::mem::take(&mut columns),
                                    rows: std::mem::take(&mut rows),
                                });
                            }
                            out.push(Output::Done { rows: Some(n) });
                        }
                        _ => {}
                    }
                }
            }
            Err(e) => out.push(Output::Error(SqlError::new(102, e.to_string()))),
        }
    }

    /// Transaction Manager request: begin (TM_BEGIN_XACT). Returns the new descriptor.
    pub async fn begin(&mut self, out: &mut Vec<Output>) {
        let d = self.next_tx;
        self.next_tx += 1;
        let _ = self.client.batch_execute("BEGIN").await;
        self.tx = Some(d);
        out.push(Output::Tx(TxEvent::Begin(d)));
    }

    /// Transaction Manager request: commit (TM_COMMIT_XACT); `begin_new` for fBeginXact.
    pub async fn commit(&mut self, begin_new: bool, out: &mut Vec<Output>) {
        let _ = self.client.batch_execute("COMMIT").await;
        if let Some(d) = self.tx.take() {
            out.push(Output::Tx(TxEvent::Commit(d)));
        }
        if begin_new {
            self.begin(out).await;
        }
    }

    /// Transaction Manager request: rollback (TM_ROLLBACK_XACT); `begin_new` for fBeginXact.
    pub async fn rollback(&mut self, begin_new: bool, out: &mut Vec<Output>) {
        let _ = self.client.batch_execute("ROLLBACK").await;
        if let Some(d) = self.tx.take() {
            out.push(Output::Tx(TxEvent::Rollback(d)));
        }
        if begin_new {
            self.begin(out).await;
        }
    }

    /// The current transaction descriptor (0 when none), for the ALL_HEADERS echo checks.
    pub fn transaction_descriptor(&self) -> u64 {
        self.tx.unwrap_or(0)
    }

    /// Called when the client sends Attention: abandon whatever the session was doing.
    pub async fn attention(&mut self) {}

    /// Called when the TDS connection closes: roll back any open transaction, release locks.
    pub async fn close(&mut self) {
        if self.tx.is_some() {
            let _ = self.client.batch_execute("ROLLBACK").await;
        }
    }
}
