//! The T-SQL engine: parses T-SQL (sqlparser, MsSqlDialect), decides result types from its own
//! catalog, and executes on PostgreSQL. One [`Session`] per TDS connection, one PostgreSQL
//! connection per session (so transactions, locks and advisory locks map one to one).
//!
//! Module map:
//! - [`parse`]: batch text → nodes (token rewrites for what sqlparser cannot parse);
//! - [`translate`]: T-SQL AST → PostgreSQL text + T-SQL result types (strict whitelist), in
//!   `statements`, `queries` and `expressions`;
//! - `run`: running one statement (plans, SET, variables, engine-evaluated expressions);
//! - `pipeline`: statements sent without waiting and their answers read back in order;
//! - `transactions`: BEGIN/COMMIT/ROLLBACK, nesting, the pipelined COMMIT;
//! - [`ddl`]: CREATE TABLE / INDEX, DROP, TRUNCATE (and the catalog rows that go with them);
//! - [`catalog`]: the persisted catalog of T-SQL declarations, type mapping, bootstrap SQL;
//! - [`convert`]: binding values to PostgreSQL parameters and coercing results to T-SQL types;
//! - [`errors`]: SQLSTATE → SQL Server error numbers and messages;
//! - [`locks`]: `sp_getapplock` / `sp_releaseapplock` and the UPDLOCK/HOLDLOCK table locks.
//!
//! Execution model:
//! - Batches are parsed once and cached by (text, parameter types); each statement is compiled
//!   lazily (so a table created earlier in the batch is visible) and its plan cached in the
//!   batch per catalog version. PostgreSQL statements are prepared once per session.
//! - Outside a transaction every statement autocommits (PostgreSQL autocommit).
//! - `BEGIN TRAN` (text or Transaction Manager) only counts; PostgreSQL's `BEGIN` is sent
//!   together with the next statement (one round trip saved). Inside a transaction every
//!   statement (unless XACT_ABORT is ON, where it would never be used) runs under
//!   `SAVEPOINT emu_sp`, pipelined with the statement, so a failing
//!   statement is rolled back alone (statement-level atomicity) unless XACT_ABORT is ON, in
//!   which case the transaction is rolled back and the batch aborted, as in SQL Server. Nested
//!   `BEGIN TRAN` increments @@TRANCOUNT, inner `COMMIT` only decrements, `ROLLBACK` rolls back
//!   everything. A deadlock (40P01) is error 1205 and rolls the whole transaction back.
//! - Under XACT_ABORT ON inside a transaction, DML is pipelined (sent without waiting for its
//!   answer), and so are what usually follows it in Mikro-style batches: `UPDATE … WHERE x =
//!   SCOPE_IDENTITY()`, `SET @v = SCOPE_IDENTITY()` (the variable is resolved when the INSERT's
//!   answer is read; statements using it meanwhile read the identity sequence server-side),
//!   `SET @n = (SELECT …)` of an integer variable (the numbering MAX behind `sp_getapplock`:
//!   the value is kept in a transaction-local setting that pipelined statements read) and
//!   the outermost `COMMIT`. Counts, identities, variables and the first error come out as if
//!   every statement had run alone (tests in `tests/it/engine_tx.rs`).
//! - Errors that SQL Server treats as compile/batch-aborting (102, 207, 208, 137, …, 1205)
//!   stop the batch; constraint violations (2627, 515, 547, 8152, …) end only the statement.
//! - `BEGIN TRY … END CATCH`: errors inside TRY (except compile errors) are not sent to the
//!   client but stored for ERROR_NUMBER() etc. and control moves to CATCH.
//! - Variables are batch-scoped; SCOPE_IDENTITY() is reset at the start of every batch and of
//!   every RPC call (each `sp_executesql` is its own scope); @@IDENTITY is session-wide.

pub mod catalog;
pub mod convert;
pub mod ddl;
pub mod errors;
mod fuse;
pub mod locks;
pub mod parse;
mod pipeline;
mod run;
mod transactions;
pub mod translate;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use futures::future::BoxFuture;
use rust_decimal::Decimal;
use sqlparser::ast::{
    self, DeclareAssignment, Expr, SessionParamValue, Set, SetSessionParamKind, Statement,
    TransactionIsolationLevel, TransactionMode,
};
use tokio_postgres::types::ToSql;

use self::catalog::{pg_param_type, Catalog, BOOTSTRAP_SQL};
use self::convert::{coerce, coerce_var, param_value, read_value, PgArg};
use self::errors::{map_pg_error, ErrCtx};
use self::parse::{parse_batch, Node};
use self::translate::{
    data_type_to_sql, unsupported, Bind, Kind, OutCol, SqlPlan, Translator, VarTypes,
};
use crate::value::{Column, Output, Param, SqlError, SqlType, TxEvent, Value};

/// A parsed batch and the plans compiled from it.
#[derive(Debug)]
struct Batch {
    nodes: Vec<Node>,
    /// (node id, catalog version, hash of the parameter types) → plan. Parsing does not depend
    /// on parameter types, plans do (tiberius sends a decimal's precision from its value, so the
    /// same text arrives with several parameter signatures).
    plans: Mutex<HashMap<(usize, u64, u64), Arc<SqlPlan>>>,
}

/// Parsed batches by text.
type BatchCache = HashMap<String, Arc<Batch>>;

/// Bound on prepared statements kept per session.
const MAX_PREPARED: usize = 2048;

/// Bound on cached batch texts (ad-hoc SQL with literals would otherwise grow without limit).
const MAX_CACHED_BATCHES: usize = 4096;

/// Shared, per-server engine state (catalog of T-SQL column types, caches).
pub struct Engine {
    /// PostgreSQL connection string of the database that stores the emulated SQL Server database.
    pub pg_url: String,
    /// The emulated SQL Server database's name (`DB_NAME()`, error messages); the backing
    /// PostgreSQL database's name when none was given.
    db_name: String,
    catalog: RwLock<Arc<Catalog>>,
    version: AtomicU64,
    batches: Mutex<BatchCache>,
    next_tx: AtomicU64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("db_name", &self.db_name)
            .finish_non_exhaustive()
    }
}

fn backing_error(e: impl std::fmt::Display) -> SqlError {
    SqlError::new(4060, format!("cannot open the backing database: {e}"))
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, SqlError> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .map_err(backing_error)?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "backing connection ended");
        }
    });
    Ok(client)
}

impl Engine {
    /// Builds the engine for one emulated database stored in PostgreSQL at `pg_url`: creates the
    /// `dbo`, `emu_catalog` and `sys` schemas if needed and loads the catalog.
    pub async fn new(pg_url: &str) -> Result<Arc<Engine>, SqlError> {
        Self::with_database(pg_url, None).await
    }

    /// Like [`Engine::new`], naming the emulated database `database` (what LOGIN7 accepts,
    /// `DB_NAME()` returns and error messages show) instead of the backing database's name.
    pub async fn with_database(
        pg_url: &str,
        database: Option<&str>,
    ) -> Result<Arc<Engine>, SqlError> {
        let client = connect(pg_url).await?;
        client
            .batch_execute(BOOTSTRAP_SQL)
            .await
            .map_err(|e| backing_error(format!("bootstrap failed: {e:?}")))?;
        let db_name: String = client
            .query_one("SELECT current_database()::text", &[])
            .await
            .map_err(backing_error)?
            .get(0);
        let db_name = database.map(str::to_string).unwrap_or(db_name);
        let cat = Catalog::load(&client, 1).await?;
        Ok(Arc::new(Engine {
            pg_url: pg_url.to_string(),
            db_name,
            catalog: RwLock::new(Arc::new(cat)),
            version: AtomicU64::new(1),
            batches: Mutex::new(HashMap::new()),
            next_tx: AtomicU64::new(1),
        }))
    }

    /// Opens a session (one per TDS connection) with its own PostgreSQL connection.
    pub async fn session(self: &Arc<Self>) -> Result<Session, SqlError> {
        let client = connect(&self.pg_url).await?;
        client
            .batch_execute(&format!(
                "SET search_path TO dbo, public; SET lock_timeout = 0; SET emu.database TO {}",
                catalog::quote_lit(&self.db_name)
            ))
            .await
            .map_err(backing_error)?;
        Ok(Session {
            engine: self.clone(),
            client: Arc::new(client),
            pending: std::collections::VecDeque::new(),
            pending_values_identity: false,
            lazy_vars: HashMap::new(),
            fused_update: None,
            rowcount_after_flush: None,
            trancount: 0,
            tx_desc: None,
            pending_begin: false,
            pg_tx: false,
            sp_held: false,
            ddl_in_tx: false,
            nocount: false,
            xact_abort: false,
            implicit_tx: false,
            lock_timeout_ms: -1,
            identity_insert: None,
            vars: HashMap::new(),
            scope_identity: None,
            last_identity: None,
            param_sig: 0,
            last_error: 0,
            user_savepoints: Vec::new(),
            try_depth: 0,
            caught: None,
            error_info: None,
            rowcount: 0,
            stmts: HashMap::new(),
            tx_applocks: Vec::new(),
            session_applocks: Vec::new(),
        })
    }

    /// The current catalog snapshot.
    fn catalog(&self) -> Arc<Catalog> {
        match self.catalog.read() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Reloads the catalog after DDL (through the session's connection, so that uncommitted DDL
    /// of that session is visible to it).
    async fn reload_catalog(&self, client: &tokio_postgres::Client) -> Result<(), SqlError> {
        let v = self.version.fetch_add(1, Ordering::SeqCst) + 1;
        let cat = Catalog::load(client, v).await?;
        match self.catalog.write() {
            Ok(mut c) => *c = Arc::new(cat),
            Err(p) => *p.into_inner() = Arc::new(cat),
        }
        Ok(())
    }

    fn batch(&self, sql: &str) -> Result<Arc<Batch>, SqlError> {
        if let Ok(cache) = self.batches.lock() {
            if let Some(b) = cache.get(sql) {
                return Ok(b.clone());
            }
        }
        let nodes = parse_batch(sql)?;
        let b = Arc::new(Batch {
            nodes,
            plans: Mutex::new(HashMap::new()),
        });
        if let Ok(mut cache) = self.batches.lock() {
            if cache.len() >= MAX_CACHED_BATCHES {
                cache.clear();
            }
            cache.insert(sql.to_string(), b.clone());
        }
        Ok(b)
    }
}

/// Cancels a session's running statement (see [`Session::canceller`]).
#[derive(Clone)]
pub struct Canceller {
    token: tokio_postgres::CancelToken,
}

impl Canceller {
    /// Asks PostgreSQL to cancel the statement in progress (no effect when idle).
    pub async fn cancel(&self) {
        if let Err(e) = self.token.cancel_query(tokio_postgres::NoTls).await {
            tracing::debug!(error = %e, "cancel request failed");
        }
    }
}

/// How a failed statement affects the rest of the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Abort,
    /// An error inside BEGIN TRY: control goes to the CATCH block (error in `Session::caught`).
    Caught,
}

/// A statement failure: the error, and whether it happened inside PostgreSQL (so the statement
/// savepoint must be rolled back).
#[derive(Debug)]
struct Fail {
    err: SqlError,
    pg: bool,
    /// Ends the batch whatever the error number (THROW).
    abort: bool,
}

impl From<SqlError> for Fail {
    fn from(err: SqlError) -> Self {
        Fail {
            err,
            pg: false,
            abort: false,
        }
    }
}

/// One client connection's state: its PostgreSQL connection, transaction, variables,
/// SCOPE_IDENTITY, SET options.
pub struct Session {
    engine: Arc<Engine>,
    /// Shared with the futures of pipelined statements ([`Session::pending`]).
    client: Arc<tokio_postgres::Client>,
    /// @@TRANCOUNT.
    trancount: u32,
    /// Descriptor announced to the client for the open transaction.
    tx_desc: Option<u64>,
    /// BEGIN TRAN was issued but PostgreSQL's BEGIN not yet sent.
    pending_begin: bool,
    /// A PostgreSQL transaction block is open.
    pg_tx: bool,
    /// The statement savepoint `emu_sp` exists.
    sp_held: bool,
    /// DDL ran inside the open transaction (catalog reload needed on rollback).
    ddl_in_tx: bool,
    nocount: bool,
    xact_abort: bool,
    /// SET IMPLICIT_TRANSACTIONS ON: DML, SELECT and DDL open a transaction when none is open.
    implicit_tx: bool,
    /// SET LOCK_TIMEOUT (ms, -1 = wait forever).
    lock_timeout_ms: i64,
    /// SET IDENTITY_INSERT `<table>` ON (lower-cased name).
    identity_insert: Option<String>,
    /// Batch-scoped variables: lower-cased name → (type, value).
    vars: HashMap<String, (SqlType, Value)>,
    scope_identity: Option<i64>,
    last_identity: Option<i64>,
    /// @@ERROR.
    last_error: i32,
    /// Nesting depth of BEGIN TRY blocks being run.
    try_depth: u32,
    /// The error that sent control to a CATCH block (until the handler picks it up).
    caught: Option<SqlError>,
    /// The error being handled by the current CATCH block (ERROR_NUMBER() etc.).
    error_info: Option<SqlError>,
    /// SAVE TRANSACTION names of the open transaction, in order.
    user_savepoints: Vec<String>,
    /// Hash of the current call's parameter names and types (part of the plan cache key).
    param_sig: u64,
    rowcount: i64,
    /// Prepared statements by PostgreSQL text and parameter types (the same T-SQL text may be
    /// called with different parameter types).
    stmts: HashMap<String, Vec<(Vec<tokio_postgres::types::Type>, tokio_postgres::Statement)>>,
    /// Application locks owned by the transaction: (key, shared).
    tx_applocks: Vec<(i32, bool)>,
    /// Application locks owned by the session: (key, shared).
    session_applocks: Vec<(i32, bool)>,
    /// DML sent to PostgreSQL but not yet answered (pipelined under XACT_ABORT ON, see
    /// [`Session::defer`]), oldest first.
    pending: std::collections::VecDeque<Pending>,
    /// The newest identity-producing statement among `pending` is an `INSERT … VALUES` into a
    /// table with an IDENTITY column (no explicit values): once PostgreSQL has run it,
    /// `lastval()` is its last identity, i.e. SCOPE_IDENTITY() (see [`Session::defer_scope`]).
    pending_values_identity: bool,
    /// Variables assigned `SCOPE_IDENTITY()` while the INSERT that sets it is still unanswered
    /// (see [`Session::defer_identity_var`]); they get their value when that answer is read.
    lazy_vars: HashMap<String, LazyVar>,
    /// @@ROWCOUNT to leave after the next [`Session::flush`]: a deferred `SET @v =
    /// SCOPE_IDENTITY()` ran after the last pipelined statement, and a SET counts one row.
    rowcount_after_flush: Option<i64>,
    /// The UPDATE (node id, plan) whose row a pipelined fused INSERT already wrote
    /// (see [`fuse`]): answered in its turn without PostgreSQL.
    fused_update: Option<(usize, Arc<SqlPlan>)>,
}

/// A variable whose value is the identity of a pipelined INSERT not answered yet.
struct LazyVar {
    /// PostgreSQL expression of that value while no other row goes into `table`:
    /// `currval` of the table's identity sequence (session-local).
    expr: String,
    /// The INSERT's target (lower-cased name), for an identity; None for a value kept in a
    /// transaction-local setting ([`Session::defer_scalar_var`]), which nothing else moves.
    table: Option<String>,
}

/// What a pipelined statement's PostgreSQL call returns.
enum PgResult {
    Rows(Vec<tokio_postgres::Row>),
    Count(u64),
}

/// `SCOPE_IDENTITY()`, in parentheses or `CAST` to an integer type or not.
fn is_scope_identity(e: &Expr) -> bool {
    match e {
        Expr::Nested(x) => is_scope_identity(x),
        Expr::Cast {
            kind: ast::CastKind::Cast,
            expr,
            format: None,
            data_type,
        } => {
            matches!(
                data_type,
                ast::DataType::Int(_) | ast::DataType::Integer(_) | ast::DataType::BigInt(_)
            ) && is_scope_identity(expr)
        }
        Expr::Function(f) => translate::is_scope_identity_call(f),
        _ => false,
    }
}

/// A PostgreSQL request sent now, answered later.
type Sent<T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, tokio_postgres::Error>> + Send>>;

/// Polls a client call once, which encodes the request and queues it on the connection
/// (tokio-postgres sends requests in the order they are queued), and returns the future that
/// reads its answer. Pipelining rests on this: requests go out before earlier answers are read.
fn send_now<T: Send + 'static>(
    fut: impl std::future::Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
) -> Sent<T> {
    let mut fut: Sent<T> = Box::pin(fut);
    let first = {
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        fut.as_mut().poll(&mut cx)
    };
    match first {
        std::task::Poll::Ready(r) => Box::pin(std::future::ready(r)),
        std::task::Poll::Pending => fut,
    }
}

/// A DML statement already sent to PostgreSQL whose answer has not been read yet.
struct Pending {
    plan: Arc<SqlPlan>,
    fut: Sent<PgResult>,
    /// Variables to set to this INSERT's identity once it is answered (lazy `SET @v =
    /// SCOPE_IDENTITY()`, see [`Session::defer_identity_var`]).
    assign_identity: Vec<(String, SqlType)>,
}

impl Session {
    /// Runs a SQL batch (SQLBatch) or an `sp_executesql` statement with its parameters.
    /// Appends every result, count, error and transaction change to `out`, in order.
    pub async fn execute(&mut self, sql: &str, params: &[Param], out: &mut Vec<Output>) {
        // Answers left over from an abandoned call (its future was dropped) are read and
        // discarded, so the next answers belong to this call.
        while let Some(p) = self.pending.pop_front() {
            let _ = p.fut.await;
        }
        self.lazy_vars.clear();
        self.rowcount_after_flush = None;
        self.fused_update = None;
        self.vars.clear();
        self.try_depth = 0;
        self.caught = None;
        self.error_info = None;
        self.scope_identity = None;
        self.param_sig = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for p in params {
                p.name.hash(&mut h);
                p.ty.hash(&mut h);
            }
            h.finish()
        };
        let batch = match self.engine.batch(sql) {
            Ok(b) => b,
            Err(e) => {
                out.push(Output::Error(e));
                return;
            }
        };
        let flow = self.run_nodes(&batch, &batch.nodes, params, out).await;
        if let Err(f) = self.flush(out).await {
            self.last_error = f.err.number;
            if flow == Flow::Continue {
                let _ = self.fail(f, out).await;
            }
        }
        self.vars.clear();
    }

    fn run_nodes<'a>(
        &'a mut self,
        batch: &'a Arc<Batch>,
        nodes: &'a [Node],
        params: &'a [Param],
        out: &'a mut Vec<Output>,
    ) -> BoxFuture<'a, Flow> {
        Box::pin(async move {
            for (i, n) in nodes.iter().enumerate() {
                if let Node::Stmt { id, .. } = n {
                    if self.answer_fused_update(*id) {
                        self.last_error = 0;
                        continue;
                    }
                }
                if let Some(pair) = fuse::recid_pair(nodes, i) {
                    match self.defer_recid_pair(batch, &pair, params, out).await {
                        Ok(true) => {
                            self.last_error = 0;
                            continue;
                        }
                        Ok(false) => {}
                        Err(f) => {
                            self.last_error = f.err.number;
                            let flow = self.fail(f, out).await;
                            if flow != Flow::Continue {
                                return flow;
                            }
                            continue;
                        }
                    }
                }
                if self.defer_identity_var(n) {
                    self.last_error = 0;
                    continue;
                }
                let deferred = self.defer_scalar_var(batch, n, params, out).await;
                if matches!(deferred, Ok(true)) {
                    self.last_error = 0;
                    continue;
                }
                // Pipelined DML is answered before anything else runs (its @@ROWCOUNT,
                // SCOPE_IDENTITY, errors and DONE counts come first, in order).
                let dml = matches!(
                    n,
                    Node::Stmt { stmt, .. }
                        if matches!(
                            **stmt,
                            Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_)
                        )
                );
                let flushed = if let Err(f) = deferred {
                    // The SET failed while being prepared for the pipeline: its error, as if it
                    // had run.
                    Err(f)
                } else if dml || self.commit_pipelinable(n) {
                    Ok(())
                } else {
                    self.flush(out).await
                };
                let r = match (flushed, n) {
                    (Err(f), _) => Err(f),
                    (Ok(()), Node::Stmt { id, stmt }) => {
                        self.run_stmt(batch, *id, stmt, params, out).await
                    }
                    (
                        Ok(()),
                        Node::If {
                            id,
                            cond,
                            then,
                            els,
                        },
                    ) => match self.eval_cond(batch, *id, cond, params).await {
                        Ok(c) => {
                            let branch = if c { then } else { els };
                            let flow = self.run_nodes(batch, branch, params, out).await;
                            if flow != Flow::Continue {
                                return flow;
                            }
                            Ok(())
                        }
                        Err(f) => Err(f),
                    },
                    (
                        Ok(()),
                        Node::TryCatch {
                            try_nodes,
                            catch_nodes,
                        },
                    ) => {
                        self.try_depth += 1;
                        let flow = self.run_nodes(batch, try_nodes, params, out).await;
                        self.try_depth -= 1;
                        match flow {
                            Flow::Abort => return Flow::Abort,
                            Flow::Continue => Ok(()),
                            Flow::Caught => {
                                let err = self.caught.take();
                                let outer = std::mem::replace(&mut self.error_info, err);
                                let flow = self.run_nodes(batch, catch_nodes, params, out).await;
                                self.error_info = outer;
                                if flow != Flow::Continue {
                                    return flow;
                                }
                                Ok(())
                            }
                        }
                    }
                    (
                        Ok(()),
                        Node::AppLock {
                            release,
                            args,
                            ret_var,
                        },
                    ) => {
                        self.applock(*release, args, ret_var.as_deref(), params, out)
                            .await
                    }
                    (Ok(()), Node::ExecSql { id, args }) => {
                        match self.exec_sql(batch, *id, args, params, out).await {
                            Ok(Flow::Continue) => continue,
                            // An error that ended the dynamic batch ends only it, as on SQL
                            // Server, unless XACT_ABORT rolled the transaction back; a CATCH
                            // block of the caller takes over a caught error.
                            Ok(Flow::Abort) if !self.xact_abort => continue,
                            Ok(flow) => return flow,
                            Err(f) => Err(f),
                        }
                    }
                };
                match r {
                    Err(f) => {
                        self.last_error = f.err.number;
                        let flow = self.fail(f, out).await;
                        if flow != Flow::Continue {
                            return flow;
                        }
                    }
                    Ok(()) => {
                        if !matches!(n, Node::If { .. } | Node::TryCatch { .. }) {
                            self.last_error = 0;
                        }
                    }
                }
            }
            Flow::Continue
        })
    }

    /// `EXEC sp_executesql` in batch text: evaluates the arguments, binds the declared
    /// parameters (named or in declaration order) and runs the statement in its own scope
    /// (its own variables and SCOPE_IDENTITY(), as SQL Server does).
    async fn exec_sql(
        &mut self,
        batch: &Arc<Batch>,
        id: usize,
        args: &[(Option<String>, Expr)],
        params: &[Param],
        out: &mut Vec<Output>,
    ) -> Result<Flow, Fail> {
        if args.len() > 64 {
            return Err(SqlError::syntax(
                "EXEC sp_executesql with more than 64 arguments in batch text is not supported by the emulator (send it as an RPC).",
            )
            .into());
        }
        let mut named: Vec<(String, Value)> = Vec::new();
        let mut positional: Vec<Value> = Vec::new();
        for (k, (name, e)) in args.iter().enumerate() {
            let (v, _) = self.eval(batch, id * 64 + k, e, params).await?;
            match name {
                Some(n) => named.push((n.clone(), v)),
                None if named.is_empty() => positional.push(v),
                None => {
                    return Err(SqlError::new(
                        119,
                        "Must pass parameter number 2 and subsequent parameters as '@name = value'. After the form '@name = value' has been used, all subsequent parameters must be passed in the form '@name = value'.",
                    )
                    .into())
                }
            }
        }
        let mut take = |name: &str, pos: usize| -> Option<Value> {
            match named.iter().position(|(n, _)| n == name) {
                Some(i) => Some(named.remove(i).1),
                None => positional.get(pos).cloned(),
            }
        };
        let stmt = match take("@stmt", 0).or_else(|| take("@statement", 0)) {
            Some(Value::String(s)) => s,
            _ => {
                return Err(SqlError::new(
                    214,
                    "Procedure expects parameter '@statement' of type 'ntext/nchar/nvarchar'.",
                )
                .into())
            }
        };
        let decl = match take("@params", 1) {
            Some(Value::String(s)) => s,
            None | Some(Value::Null) => String::new(),
            Some(_) => {
                return Err(SqlError::new(
                    214,
                    "Procedure expects parameter '@params' of type 'ntext/nchar/nvarchar'.",
                )
                .into())
            }
        };
        let declared = crate::tds::rpc::parse_declarations(&decl)
            .map_err(|e| SqlError::syntax(e.to_string()))?;
        let mut inner = Vec::with_capacity(declared.len());
        for (i, d) in declared.iter().enumerate() {
            let v = match take(&d.name.to_lowercase(), i + 2) {
                Some(v) => v,
                None => {
                    return Err(SqlError::new(
                        8178,
                        format!(
                            "The parameterized query '({decl})' expects the parameter '{}', which was not supplied.",
                            d.name
                        ),
                    )
                    .into())
                }
            };
            inner.push(Param {
                name: d.name.clone(),
                ty: d.ty.clone(),
                value: coerce(v, &d.ty),
            });
        }
        self.flush(out).await?;
        let inner_batch = self.engine.batch(&stmt)?;
        let vars = std::mem::take(&mut self.vars);
        let scope_identity = self.scope_identity.take();
        let sig = self.param_sig;
        self.param_sig = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for p in &inner {
                p.name.hash(&mut h);
                p.ty.hash(&mut h);
            }
            h.finish()
        };
        let mut flow = self
            .run_nodes(&inner_batch, &inner_batch.nodes, &inner, out)
            .await;
        if let Err(f) = self.flush(out).await {
            self.last_error = f.err.number;
            if flow == Flow::Continue {
                flow = self.fail(f, out).await;
            }
        }
        self.vars = vars;
        self.scope_identity = scope_identity;
        self.param_sig = sig;
        Ok(flow)
    }

    /// Handles a failed statement: statement rollback, XACT_ABORT, deadlock, batch abort.
    async fn fail(&mut self, f: Fail, out: &mut Vec<Output>) -> Flow {
        // Statements pipelined before the failing one come first: their counts, or their
        // error, which is then the batch's error (the failing statement would not have run).
        let f = match self.flush(out).await {
            Err(earlier) => earlier,
            Ok(()) => f,
        };
        let number = f.err.number;
        let forced = f.abort;
        let batch_abort = matches!(
            number,
            102 | 137
                | 141
                | 174
                | 207
                | 208
                | 209
                | 241
                | 245
                | 263
                | 1205
                | 2715
                | 3617
                | 4104
                | 8180
                | 3902
                | 3903
        );
        // Inside BEGIN TRY every error but compile errors goes to the CATCH block instead of
        // the client. (A doomed transaction — XACT_ABORT ON or a deadlock — is rolled back at
        // once rather than left uncommittable until the CATCH block rolls it back.)
        let caught = self.try_depth > 0 && !batch_abort_compile(number);
        let err = f.err;
        if caught {
            self.caught = Some(err);
        } else {
            out.push(Output::Error(err));
        }
        if number == 1205 || (self.trancount > 0 && self.xact_abort) {
            self.rollback_all(out).await;
            return if caught { Flow::Caught } else { Flow::Abort };
        }
        if f.pg && self.pg_tx && self.sp_held {
            if let Err(e) = self
                .client
                .batch_execute("ROLLBACK TO SAVEPOINT emu_sp")
                .await
            {
                tracing::warn!(error = %e, "statement rollback failed; rolling back the transaction");
                self.rollback_all(out).await;
                return Flow::Abort;
            }
        }
        if caught {
            Flow::Caught
        } else if batch_abort || forced {
            Flow::Abort
        } else {
            Flow::Continue
        }
    }

    fn err_ctx<'a>(&'a self, cat: &'a Catalog, kind: Option<Kind>) -> ErrCtx<'a> {
        ErrCtx {
            cat,
            db: &self.engine.db_name,
            kind,
        }
    }

    fn pg_fail(&self, e: &tokio_postgres::Error, kind: Option<Kind>) -> Fail {
        let cat = self.engine.catalog();
        Fail {
            err: map_pg_error(e, &self.err_ctx(&cat, kind)),
            pg: true,
            abort: false,
        }
    }

    fn var_types(&self) -> VarTypes {
        self.vars
            .iter()
            .map(|(k, (t, _))| (k.clone(), t.clone()))
            .collect()
    }

    fn param_types(params: &[Param]) -> Vec<(String, SqlType)> {
        params
            .iter()
            .map(|p| (p.name.clone(), p.ty.clone()))
            .collect()
    }

    /// Compiles (or fetches the cached plan of) a node with a compile function.
    fn plan_for(
        &self,
        batch: &Batch,
        key: usize,
        compile: impl FnOnce(&Catalog, &[(String, SqlType)], &VarTypes) -> Result<SqlPlan, SqlError>,
        params: &[Param],
    ) -> Result<Arc<SqlPlan>, SqlError> {
        let cat = self.engine.catalog();
        if let Ok(p) = batch.plans.lock() {
            if let Some(plan) = p.get(&(key, cat.version, self.param_sig)) {
                return Ok(plan.clone());
            }
        }
        let pt = Self::param_types(params);
        let vt = self.var_types();
        let plan = Arc::new(compile(&cat, &pt, &vt)?);
        if let Ok(mut p) = batch.plans.lock() {
            p.insert((key, cat.version, self.param_sig), plan.clone());
        }
        Ok(plan)
    }

    async fn run_ddl(&mut self, script: &str, out: &mut Vec<Output>) -> Result<(), Fail> {
        let pre = self.pre_sql(&[]);
        let full = match pre {
            Some(p) => format!("{p}{script}"),
            None => script.to_string(),
        };
        let r = self.client.batch_execute(&full).await;
        let r = r.map_err(|e| self.pg_fail(&e, None));
        if self.trancount > 0 {
            self.ddl_in_tx = true;
        }
        // Reload in every case: a failure may have been rolled back, a success changed it.
        if let Err(e) = self.engine.reload_catalog(&self.client).await {
            if r.is_ok() {
                return Err(e.into());
            }
        }
        r?;
        self.rowcount = 0;
        out.push(Output::Done { rows: None });
        Ok(())
    }
}

/// Replaces the placeholder `$n` (not `$n0`, `$n1` …) in PostgreSQL text without quotes.
/// `SET @v = <one expression>` (SingleAssignment): its node id, the variable's lower-cased
/// name and the expression.
fn single_var_set(n: &Node) -> Option<(usize, String, &Expr)> {
    let Node::Stmt { id, stmt } = n else {
        return None;
    };
    let Statement::Set(Set::SingleAssignment {
        scope: None,
        hivevar: false,
        variable,
        values,
    }) = &**stmt
    else {
        return None;
    };
    match values.as_slice() {
        [value] => Some((*id, variable.to_string().to_lowercase(), value)),
        _ => None,
    }
}

/// The PostgreSQL types a plan's parameters are prepared with.
fn bind_types(plan: &SqlPlan) -> Vec<tokio_postgres::types::Type> {
    plan.binds.iter().map(|b| pg_param_type(&b.ty)).collect()
}

/// A plan that selects one unnamed scalar (`SET @v = …`, expressions evaluated for the batch),
/// optionally assigned to variables when its answer is read.
fn scalar_plan(
    pg: String,
    binds: Vec<translate::BindSlot>,
    ty: SqlType,
    assign: Vec<(String, SqlType)>,
    local: Option<Vec<usize>>,
) -> SqlPlan {
    SqlPlan {
        pg,
        binds,
        columns: vec![OutCol {
            name: String::new(),
            lc: String::new(),
            ty,
            nullable: true,
            aliased: false,
        }],
        kind: Kind::Select,
        returns_rows: true,
        assign,
        identity_col: false,
        lock_tables: Vec::new(),
        reseed: None,
        target: None,
        local,
    }
}

fn replace_placeholder(sql: &str, n: usize, with: &str) -> String {
    let token = format!("${n}");
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(pos) = rest.find(&token) {
        let after = &rest[pos + token.len()..];
        out.push_str(&rest[..pos]);
        if after.starts_with(|c: char| c.is_ascii_digit()) {
            out.push_str(&token);
        } else {
            out.push_str(with);
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// RAISERROR's printf-style message: `%s`, `%d`, `%i`, `%u` take the arguments in order, `%%`
/// is a percent sign (width/precision flags are not supported).
/// For a value answered locally (without PostgreSQL): true unless the target is an integer type
/// and the source value does not fit it (PostgreSQL would raise an overflow there, and
/// [`coerce`] maps an out-of-range decimal to 0).
fn int_in_range(src: &Value, coerced: &Value, ty: &SqlType) -> bool {
    use rust_decimal::prelude::ToPrimitive;
    let (lo, hi) = match ty {
        SqlType::TinyInt => (0, 255),
        SqlType::SmallInt => (i16::MIN as i64, i16::MAX as i64),
        SqlType::Int => (i32::MIN as i64, i32::MAX as i64),
        SqlType::BigInt => (i64::MIN, i64::MAX),
        _ => return true,
    };
    // Only exact sources are converted locally; strings and floats go to PostgreSQL, whose
    // conversion rules the emulator's translation relies on.
    let src_ok = match src {
        Value::Decimal(d) => d.trunc().to_i64().is_some(),
        Value::Null | Value::Int(_) | Value::Bool(_) => true,
        _ => false,
    };
    src_ok
        && match coerced {
            Value::Null => true,
            Value::Int(i) => (lo..=hi).contains(i),
            _ => false,
        }
}

fn raiserror_format(fmt: &str, args: &[String]) -> String {
    let mut out = String::new();
    let mut it = fmt.chars().peekable();
    let mut k = 0;
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('%') => out.push('%'),
            Some('s' | 'd' | 'i' | 'u') => {
                out.push_str(args.get(k).map(String::as_str).unwrap_or("(null)"));
                k += 1;
            }
            Some(o) => {
                out.push('%');
                out.push(o);
            }
            None => out.push('%'),
        }
    }
    out
}

/// Errors SQL Server raises while compiling a statement: not caught by TRY … CATCH at the same
/// level (the batch ends).
fn batch_abort_compile(number: i32) -> bool {
    matches!(number, 102 | 137 | 174 | 207 | 208 | 209 | 2715 | 4104)
}

#[cfg(test)]
mod placeholder_tests {
    use super::replace_placeholder;

    #[test]
    fn replaces_only_the_whole_placeholder() {
        assert_eq!(
            replace_placeholder("a = $1 AND b = $10 AND c = $1", 1, "X"),
            "a = X AND b = $10 AND c = X"
        );
        assert_eq!(
            replace_placeholder("CAST($12 AS bigint)", 12, "Y"),
            "CAST(Y AS bigint)"
        );
        assert_eq!(replace_placeholder("$2", 1, "Z"), "$2");
    }
}
