//! The T-SQL engine: parses T-SQL (sqlparser, MsSqlDialect), decides result types from its own
//! catalog, and executes on PostgreSQL. One [`Session`] per TDS connection, one PostgreSQL
//! connection per session (so transactions, locks and advisory locks map one to one).
//!
//! Module map:
//! - [`parse`]: batch text → nodes (token rewrites for what sqlparser cannot parse);
//! - [`translate`]: T-SQL AST → PostgreSQL text + T-SQL result types (strict whitelist);
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
//!   every statement had run alone (tests in `tests/engine_tx.rs`).
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
pub mod locks;
pub mod parse;
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
use self::convert::{coerce, param_value, read_value, PgArg};
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
            for n in nodes {
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

    async fn run_stmt(
        &mut self,
        batch: &Arc<Batch>,
        id: usize,
        stmt: &Statement,
        params: &[Param],
        out: &mut Vec<Output>,
    ) -> Result<(), Fail> {
        if self.implicit_tx
            && self.trancount == 0
            && !matches!(stmt, Statement::Query(q) if matches!(&*q.body, ast::SetExpr::Select(s) if s.from.is_empty()))
            && matches!(
                stmt,
                Statement::Query(_)
                    | Statement::Insert(_)
                    | Statement::Update(_)
                    | Statement::Delete(_)
                    | Statement::CreateTable(_)
                    | Statement::CreateIndex(_)
                    | Statement::Drop { .. }
                    | Statement::AlterTable(_)
                    | Statement::Truncate(_)
            )
        {
            self.begin_tran(out);
        }
        match stmt {
            Statement::Query(_)
            | Statement::Insert(_)
            | Statement::Update(_)
            | Statement::Delete(_) => {
                let plan = self.plan_for(
                    batch,
                    id,
                    |cat, pt, vt| Translator::new(cat, pt, vt).statement(stmt),
                    params,
                )?;
                if plan.kind == Kind::Insert {
                    if let (Some((_, _)), Some(t)) = (&plan.reseed, &plan.target) {
                        if self.identity_insert.as_deref() != Some(t.lc.as_str()) {
                            return Err(SqlError::new(
                                544,
                                format!(
                                    "Cannot insert explicit value for identity column in table '{}' when IDENTITY_INSERT is set to OFF.",
                                    t.name
                                ),
                            )
                            .into());
                        }
                    }
                }
                if self.deferrable(&plan) {
                    // A lazy variable reads its table's identity sequence: another row into that
                    // table would move it, so the variable gets its value first.
                    if plan.identity_col
                        && plan.target.as_ref().is_some_and(|t| {
                            self.lazy_vars
                                .values()
                                .any(|l| l.table.as_deref() == Some(t.lc.as_str()))
                        })
                    {
                        self.flush(out).await?;
                    }
                    let values_insert = matches!(
                        stmt,
                        Statement::Insert(i) if i.source.as_ref().is_some_and(
                            |q| matches!(*q.body, ast::SetExpr::Values(_))
                        )
                    );
                    let only_scope = plan.binds.iter().all(|b| {
                        matches!(b.src, Bind::Param(_) | Bind::Var(_) | Bind::ScopeIdentity)
                    });
                    let current = self.binds_current(&plan);
                    let scope = plan
                        .binds
                        .iter()
                        .any(|b| matches!(b.src, Bind::ScopeIdentity));
                    if !current && only_scope && (!scope || self.pending_values_identity) {
                        if self.defer_scope(&plan, params, out).await? {
                            if plan.identity_col {
                                self.pending_values_identity = values_insert;
                            }
                            return Ok(());
                        }
                    } else if !current {
                        // @@ROWCOUNT, SCOPE_IDENTITY() … must be current when bound.
                        self.flush(out).await?;
                    }
                    if self.defer(&plan, &plan.pg, params) {
                        if plan.identity_col {
                            self.pending_values_identity = values_insert;
                        }
                        return Ok(());
                    }
                }
                self.flush(out).await?;
                let rows = self.exec_plan(&plan, params).await?;
                self.finish_plan(&plan, rows, out).await
            }
            Statement::CreateTable(ct) => {
                let cat = self.engine.catalog();
                let p = ddl::create_table(&cat, ct)?;
                self.run_ddl(&p.script, out).await
            }
            Statement::CreateIndex(ci) => {
                let cat = self.engine.catalog();
                let p = ddl::create_index(&cat, ci)?;
                self.run_ddl(&p.script, out).await
            }
            Statement::Drop {
                object_type,
                if_exists,
                names,
                table,
                ..
            } => {
                let cat = self.engine.catalog();
                let p = ddl::drop(&cat, object_type, *if_exists, names, table)?;
                self.run_ddl(&p.script, out).await
            }
            Statement::AlterTable(at) => {
                let cat = self.engine.catalog();
                let p = ddl::alter_table(&cat, at)?;
                self.run_ddl(&p.script, out).await
            }
            Statement::Truncate(t) => {
                let cat = self.engine.catalog();
                let p = ddl::truncate(&cat, t)?;
                self.run_ddl(&p.script, out).await
            }
            Statement::StartTransaction {
                begin: true,
                statements,
                modes,
                ..
            } if statements.is_empty() && modes.is_empty() => {
                self.begin_tran(out);
                Ok(())
            }
            Statement::Commit { chain: false, .. } => {
                if self.pending.is_empty() {
                    self.commit_tran(out).await.map_err(Fail::from)
                } else {
                    self.commit_pipelined(out).await
                }
            }
            Statement::Savepoint { name } => {
                if self.trancount == 0 {
                    return Err(SqlError::new(
                        628,
                        "Cannot issue SAVE TRANSACTION when there is no active transaction.",
                    )
                    .into());
                }
                let mut sql = String::new();
                if self.pending_begin {
                    sql.push_str("BEGIN;");
                    self.pending_begin = false;
                    self.pg_tx = true;
                }
                sql.push_str(&format!(
                    "SAVEPOINT {}",
                    catalog::quote_ident(&format!("emu_u_{}", name.value))
                ));
                self.client
                    .batch_execute(&sql)
                    .await
                    .map_err(|e| self.pg_fail(&e, None))?;
                // The next statement must not RELEASE the statement savepoint below the
                // user's savepoint (that would destroy it): it opens a new one on top.
                self.sp_held = false;
                self.user_savepoints.push(name.value.clone());
                Ok(())
            }
            Statement::Rollback {
                chain: false,
                savepoint: Some(name),
            } if self.trancount > 0 && self.user_savepoints.contains(&name.value) => {
                let pos = self
                    .user_savepoints
                    .iter()
                    .rposition(|n| *n == name.value)
                    .unwrap_or(0);
                self.user_savepoints.truncate(pos + 1);
                self.client
                    .batch_execute(&format!(
                        "ROLLBACK TO SAVEPOINT {}",
                        catalog::quote_ident(&format!("emu_u_{}", name.value))
                    ))
                    .await
                    .map_err(|e| self.pg_fail(&e, None))?;
                self.sp_held = false;
                self.rowcount = 0;
                Ok(())
            }
            Statement::Rollback { chain: false, .. } => {
                if self.trancount == 0 {
                    return Err(SqlError::new(
                        3903,
                        "The ROLLBACK TRANSACTION request has no corresponding BEGIN TRANSACTION.",
                    )
                    .into());
                }
                self.rollback_all(out).await;
                Ok(())
            }
            Statement::Declare { stmts, .. } => {
                for (k, d) in stmts.iter().enumerate() {
                    if d.declare_type.is_some() || d.for_query.is_some() {
                        return Err(unsupported("DECLARE CURSOR/TABLE").into());
                    }
                    let dt = d
                        .data_type
                        .as_ref()
                        .ok_or_else(|| unsupported("DECLARE without a type"))?;
                    let ty = data_type_to_sql(dt, 1)?;
                    let init = match &d.assignment {
                        None => None,
                        Some(
                            DeclareAssignment::Expr(e)
                            | DeclareAssignment::Default(e)
                            | DeclareAssignment::MsSqlAssignment(e),
                        ) => Some(e.as_ref()),
                        Some(_) => return Err(unsupported("DECLARE assignment form").into()),
                    };
                    for name in &d.names {
                        let lc = name.value.to_lowercase();
                        if !lc.starts_with('@') {
                            return Err(unsupported(format!("DECLARE {}", name.value)).into());
                        }
                        if self.vars.contains_key(&lc) {
                            return Err(SqlError::new(
                                134,
                                format!(
                                    "The variable name '{}' has already been declared. Variable names must be unique within a query batch or stored procedure.",
                                    name.value
                                ),
                            )
                            .into());
                        }
                        let v = match init {
                            None => Value::Null,
                            Some(e) => self.eval(batch, id * 64 + k + 1, e, params).await?.0,
                        };
                        self.vars.insert(lc, (ty.clone(), coerce(v, &ty)));
                    }
                }
                Ok(())
            }
            Statement::Set(s) => self.run_set(batch, id, s, params).await,
            Statement::Print(p) => {
                let (v, _) = self.eval(batch, id * 64 + 1, &p.message, params).await?;
                let msg = match coerce(v, &SqlType::NVarChar(None)) {
                    Value::String(s) => s,
                    _ => String::new(),
                };
                out.push(Output::Info {
                    number: 0,
                    message: msg,
                });
                Ok(())
            }
            Statement::Use(_) => Ok(()),
            Statement::Throw(t) => {
                let (Some(n), Some(m), Some(st)) = (&t.error_number, &t.message, &t.state) else {
                    if let Some(e) = &self.error_info {
                        // THROW; inside CATCH rethrows the error being handled.
                        return Err(Fail {
                            err: e.clone(),
                            pg: false,
                            abort: true,
                        });
                    }
                    return Err(SqlError::new(
                        10704,
                        "To rethrow an error, a THROW statement must be used inside a CATCH block.",
                    )
                    .into());
                };
                let number = match self.eval(batch, id * 64 + 1, n, params).await?.0 {
                    Value::Int(i) if i >= 50000 => i as i32,
                    _ => {
                        return Err(SqlError::new(
                            35100,
                            "Error number in THROW statement is outside the valid range. Specify an error number in the valid range of 50000 to 2147483647.",
                        )
                        .into())
                    }
                };
                let message = match coerce(
                    self.eval(batch, id * 64 + 2, m, params).await?.0,
                    &SqlType::NVarChar(None),
                ) {
                    Value::String(s) => s,
                    _ => String::new(),
                };
                let state = match self.eval(batch, id * 64 + 3, st, params).await?.0 {
                    Value::Int(i) => i.clamp(0, 255) as u8,
                    _ => 1,
                };
                Err(Fail {
                    err: SqlError {
                        number,
                        class: 16,
                        state,
                        message,
                    },
                    pg: false,
                    abort: true,
                })
            }
            Statement::RaisError {
                message,
                severity,
                state,
                arguments,
                ..
            } => {
                let fmt = match coerce(
                    self.eval(batch, id * 64 + 1, message, params).await?.0,
                    &SqlType::NVarChar(None),
                ) {
                    Value::String(s) => s,
                    Value::Int(n) => {
                        return Err(SqlError::new(
                            2732,
                            format!(
                                "Error number {n} is invalid (the emulator has no sys.messages)."
                            ),
                        )
                        .into())
                    }
                    _ => String::new(),
                };
                let sev = match self.eval(batch, id * 64 + 2, severity, params).await?.0 {
                    Value::Int(i) => i.clamp(0, 25) as u8,
                    _ => 16,
                };
                let st = match self.eval(batch, id * 64 + 3, state, params).await?.0 {
                    Value::Int(i) => i.clamp(0, 255) as u8,
                    _ => 1,
                };
                let mut args = Vec::new();
                for (k, a) in arguments.iter().enumerate() {
                    let v = coerce(
                        self.eval(batch, id * 64 + 4 + k, a, params).await?.0,
                        &SqlType::NVarChar(None),
                    );
                    args.push(match v {
                        Value::String(s) => s,
                        _ => "(null)".to_string(),
                    });
                }
                let text = raiserror_format(&fmt, &args);
                if sev <= 10 {
                    out.push(Output::Info {
                        number: 50000,
                        message: text,
                    });
                    Ok(())
                } else {
                    Err(SqlError {
                        number: 50000,
                        class: sev.min(18),
                        state: st,
                        message: text,
                    }
                    .into())
                }
            }
            Statement::Execute {
                name: Some(name), ..
            } => Err(
                SqlError::new(2812, format!("Could not find stored procedure '{name}'.")).into(),
            ),
            other => {
                let s = other.to_string();
                let head: String = s.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
                Err(unsupported(head).into())
            }
        }
    }

    async fn run_set(
        &mut self,
        batch: &Arc<Batch>,
        id: usize,
        s: &Set,
        params: &[Param],
    ) -> Result<(), Fail> {
        match s {
            Set::SingleAssignment {
                scope: None,
                hivevar: false,
                variable,
                values,
            } if values.len() == 1 => {
                let name = variable.to_string().to_lowercase();
                if !name.starts_with('@') {
                    return Err(unsupported(format!("SET {name}")).into());
                }
                let ty = self
                    .vars
                    .get(&name)
                    .map(|(t, _)| t.clone())
                    .ok_or_else(|| {
                        SqlError::new(
                            137,
                            format!("Must declare the scalar variable \"{variable}\"."),
                        )
                    })?;
                let (v, _) = self.eval(batch, id * 64 + 1, &values[0], params).await?;
                let v = coerce(v, &ty);
                if matches!(v, Value::Int(_)) && !int_in_range(&Value::Null, &v, &ty) {
                    // `SET @i = <bigint too large>`: SQL Server refuses the assignment. (Other
                    // values keep the conversion rules of the statement that uses them.)
                    return Err(SqlError::new(
                        8115,
                        format!(
                            "Arithmetic overflow error converting expression to data type {}.",
                            catalog::type_to_string(&ty)
                        ),
                    )
                    .into());
                }
                self.vars.insert(name, (ty.clone(), v));
                self.rowcount = 1;
                Ok(())
            }
            Set::SetSessionParam(SetSessionParamKind::Generic(g)) => {
                let name = g.names.join(" ").to_uppercase();
                let val = g.value.to_uppercase();
                let on = val == "ON";
                match name.as_str() {
                    "NOCOUNT" => self.nocount = on,
                    "XACT_ABORT" => self.xact_abort = on,
                    "IMPLICIT_TRANSACTIONS" => self.implicit_tx = on,
                    "LOCK_TIMEOUT" => {
                        let ms: i64 = val
                            .parse()
                            .map_err(|_| unsupported(format!("SET LOCK_TIMEOUT {val}")))?;
                        self.lock_timeout_ms = ms;
                        let pg = if ms < 0 { 0 } else { ms.max(1) };
                        self.client
                            .batch_execute(&format!("SET lock_timeout = {pg}"))
                            .await
                            .map_err(|e| self.pg_fail(&e, None))?;
                    }
                    "ANSI_NULLS"
                    | "QUOTED_IDENTIFIER"
                    | "ANSI_WARNINGS"
                    | "ANSI_PADDING"
                    | "ARITHABORT"
                    | "CONCAT_NULL_YIELDS_NULL"
                    | "ANSI_NULL_DFLT_ON"
                    | "NUMERIC_ROUNDABORT"
                    | "DATEFORMAT"
                    | "LANGUAGE"
                    | "TEXTSIZE"
                    | "DEADLOCK_PRIORITY"
                    | "DATEFIRST"
                    | "CURSOR_CLOSE_ON_COMMIT"
                    | "ANSI_DEFAULTS"
                    | "STATISTICS IO"
                    | "STATISTICS TIME" => {}
                    other => return Err(unsupported(format!("SET {other}")).into()),
                }
                Ok(())
            }
            Set::SetSessionParam(SetSessionParamKind::IdentityInsert(ii)) => {
                let parts = translate::name_parts(&ii.obj);
                let cat = self.engine.catalog();
                let def = cat.resolve(&parts).ok_or_else(|| {
                    SqlError::new(208, format!("Invalid object name '{}'.", ii.obj))
                })?;
                match ii.value {
                    SessionParamValue::On => self.identity_insert = Some(def.lc.clone()),
                    SessionParamValue::Off => {
                        if self.identity_insert.as_deref() == Some(def.lc.as_str()) {
                            self.identity_insert = None;
                        }
                    }
                }
                Ok(())
            }
            Set::SetTransaction {
                modes,
                snapshot: None,
                session: false,
            } => {
                for m in modes {
                    match m {
                        TransactionMode::IsolationLevel(
                            TransactionIsolationLevel::ReadCommitted
                            | TransactionIsolationLevel::ReadUncommitted,
                        ) => {}
                        other => {
                            return Err(unsupported(format!(
                                "SET TRANSACTION {other} (only READ COMMITTED / READ UNCOMMITTED)"
                            ))
                            .into())
                        }
                    }
                }
                Ok(())
            }
            other => Err(unsupported(other).into()),
        }
    }

    /// Evaluates a scalar expression (DECLARE/SET/PRINT/EXEC arguments). Literals, parameters
    /// and variables are evaluated locally; anything else with one `SELECT` round trip.
    async fn eval(
        &mut self,
        batch: &Arc<Batch>,
        key: usize,
        e: &Expr,
        params: &[Param],
    ) -> Result<(Value, SqlType), Fail> {
        if let Some(v) = self.const_value(e, params) {
            return Ok(v);
        }
        let plan = self.plan_for(
            batch,
            key,
            |cat, pt, vt| {
                let mut tr = Translator::new(cat, pt, vt);
                let te = tr.expr(e)?;
                let ty = te.ty.clone().unwrap_or(SqlType::Int);
                // Only integer results are answered locally (`SET @n = @@ROWCOUNT`,
                // `SET @id = CAST(SCOPE_IDENTITY() AS int)`): string, float and decimal
                // conversions keep PostgreSQL's rules.
                let local = te
                    .ty
                    .as_ref()
                    .filter(|t| {
                        matches!(
                            t,
                            SqlType::TinyInt | SqlType::SmallInt | SqlType::Int | SqlType::BigInt
                        )
                    })
                    .and(tr.local_slot(e))
                    .map(|i| vec![i]);
                Ok(scalar_plan(
                    format!("SELECT {}", te.sql),
                    tr.binds,
                    ty,
                    Vec::new(),
                    local,
                ))
            },
            params,
        )?;
        let rows = self.exec_plan(&plan, params).await?;
        let ty = plan.columns[0].ty.clone();
        let v = rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .unwrap_or(Value::Null);
        Ok((v, ty))
    }

    fn const_value(&self, e: &Expr, params: &[Param]) -> Option<(Value, SqlType)> {
        match e {
            Expr::Value(v) => match &v.value {
                ast::Value::Number(n, _) if !n.contains(['.', 'e', 'E']) => {
                    let i: i64 = n.parse().ok()?;
                    Some((Value::Int(i), SqlType::Int))
                }
                ast::Value::Number(n, _) if !n.contains(['e', 'E']) => {
                    let d: Decimal = n.parse().ok()?;
                    Some((
                        Value::Decimal(d),
                        SqlType::Decimal {
                            precision: 38,
                            scale: d.scale() as u8,
                        },
                    ))
                }
                ast::Value::SingleQuotedString(s) => Some((
                    Value::String(s.clone()),
                    SqlType::VarChar(Some(s.chars().count().clamp(1, 8000) as u16)),
                )),
                ast::Value::NationalStringLiteral(s) => Some((
                    Value::String(s.clone()),
                    SqlType::NVarChar(Some(s.chars().count().clamp(1, 4000) as u16)),
                )),
                ast::Value::Null => Some((Value::Null, SqlType::Int)),
                _ => None,
            },
            // A session value the engine keeps itself (`IF @@TRANCOUNT > 0 ROLLBACK TRAN`, sent
            // before every posting, needs no PostgreSQL round trip).
            Expr::Identifier(i) if i.value.eq_ignore_ascii_case("@@trancount") => {
                Some((Value::Int(i64::from(self.trancount)), SqlType::Int))
            }
            Expr::Identifier(i) if i.value.starts_with('@') && !i.value.starts_with("@@") => {
                let lc = i.value.to_lowercase();
                if let Some(p) = params.iter().find(|p| p.name.to_lowercase() == lc) {
                    return Some((param_value(&p.value, &p.ty), p.ty.clone()));
                }
                self.vars.get(&lc).map(|(t, v)| (v.clone(), t.clone()))
            }
            Expr::UnaryOp {
                op: ast::UnaryOperator::Minus,
                expr,
            } => match self.const_value(expr, params)? {
                (Value::Int(i), t) => Some((Value::Int(-i), t)),
                (Value::Decimal(d), t) => Some((Value::Decimal(-d), t)),
                _ => None,
            },
            _ => None,
        }
    }

    async fn eval_cond(
        &mut self,
        batch: &Arc<Batch>,
        id: usize,
        cond: &Expr,
        params: &[Param],
    ) -> Result<bool, Fail> {
        if let Some(v) = self.local_cond(cond, params) {
            // As after the one-row SELECT PostgreSQL would have answered.
            self.rowcount = 1;
            return Ok(v == Some(true));
        }
        let plan = self.plan_for(
            batch,
            id,
            |cat, pt, vt| {
                let mut tr = Translator::new(cat, pt, vt);
                let te = tr.expr(cond)?;
                Ok(SqlPlan {
                    pg: format!("SELECT CASE WHEN {} THEN 1 ELSE 0 END", te.sql),
                    binds: tr.binds,
                    columns: vec![OutCol {
                        name: String::new(),
                        lc: String::new(),
                        ty: SqlType::Int,
                        nullable: false,
                        aliased: false,
                    }],
                    kind: Kind::Select,
                    returns_rows: true,
                    assign: Vec::new(),
                    identity_col: false,
                    lock_tables: tr.locks,
                    reseed: None,
                    target: None,
                    local: None,
                })
            },
            params,
        )?;
        let rows = self.exec_plan(&plan, params).await?;
        Ok(matches!(
            rows.first().and_then(|r| r.first()),
            Some(Value::Int(1))
        ))
    }

    /// Evaluates an `IF` condition without PostgreSQL when it only compares integer literals,
    /// parameters, variables and @@TRANCOUNT (`IF @posted = 0 AND @c_cari > 0`, `IF @lock >= 0`,
    /// `IF @@TRANCOUNT > 0`), joined by
    /// AND / OR / NOT: saves a round trip and a statement savepoint per `IF`. Three-valued
    /// logic as in T-SQL (`Some(None)` is UNKNOWN: a comparison with NULL). `None` when
    /// anything else is involved (strings, decimals, functions, subqueries): PostgreSQL
    /// decides those, with its collations and conversions.
    fn local_cond(&self, e: &Expr, params: &[Param]) -> Option<Option<bool>> {
        use ast::BinaryOperator as B;
        match e {
            Expr::Nested(x) => self.local_cond(x, params),
            Expr::UnaryOp {
                op: ast::UnaryOperator::Not,
                expr,
            } => self.local_cond(expr, params).map(|v| v.map(|b| !b)),
            Expr::BinaryOp { left, op, right } => match op {
                B::And | B::Or => {
                    let l = self.local_cond(left, params)?;
                    let r = self.local_cond(right, params)?;
                    Some(match (op, l, r) {
                        (B::And, Some(false), _) | (B::And, _, Some(false)) => Some(false),
                        (B::And, Some(true), Some(true)) => Some(true),
                        (B::Or, Some(true), _) | (B::Or, _, Some(true)) => Some(true),
                        (B::Or, Some(false), Some(false)) => Some(false),
                        _ => None,
                    })
                }
                B::Eq | B::NotEq | B::Lt | B::LtEq | B::Gt | B::GtEq => {
                    let int = |x: &Expr| match self.const_value(x, params)? {
                        (Value::Int(i), _) => Some(Some(i)),
                        (Value::Null, t) if catalog::is_integer(&t) => Some(None),
                        _ => None,
                    };
                    let (l, r) = (int(left)?, int(right)?);
                    Some(match (l, r) {
                        (Some(a), Some(b)) => Some(match op {
                            B::Eq => a == b,
                            B::NotEq => a != b,
                            B::Lt => a < b,
                            B::LtEq => a <= b,
                            B::Gt => a > b,
                            _ => a >= b,
                        }),
                        _ => None,
                    })
                }
                _ => None,
            },
            _ => None,
        }
    }

    /// The SQL sent before a statement inside a transaction: the deferred BEGIN, the statement
    /// savepoint and the UPDLOCK/HOLDLOCK table locks.
    fn pre_sql(&mut self, locks: &[String]) -> Option<String> {
        if self.trancount == 0 {
            return None;
        }
        let mut s = String::new();
        if self.pending_begin {
            s.push_str("BEGIN;");
            self.pending_begin = false;
            self.pg_tx = true;
        }
        // Under XACT_ABORT ON every error rolls the whole transaction back (see `fail`), so a
        // statement savepoint would never be rolled back to: skip it (it costs a subtransaction
        // and a parsed simple query per statement). A savepoint left from before the option was
        // switched on stays held and is released by the next statement that takes one.
        if !self.xact_abort {
            if self.sp_held {
                s.push_str("RELEASE SAVEPOINT emu_sp;");
            }
            s.push_str("SAVEPOINT emu_sp;");
            self.sp_held = true;
        }
        for t in locks {
            s.push_str(&format!(
                "SELECT pg_advisory_xact_lock({});",
                locks::table_lock_key(t)
            ));
        }
        (!s.is_empty()).then_some(s)
    }

    fn bind_values(&self, plan: &SqlPlan, params: &[Param]) -> Vec<Value> {
        plan.binds
            .iter()
            .map(|b| match &b.src {
                Bind::Param(i) => params
                    .get(*i)
                    .map(|p| param_value(&p.value, &p.ty))
                    .unwrap_or(Value::Null),
                Bind::Var(n) => self
                    .vars
                    .get(n)
                    .map(|(t, v)| param_value(v, t))
                    .unwrap_or(Value::Null),
                Bind::RowCount => Value::Int(self.rowcount),
                Bind::Error => Value::Int(self.last_error as i64),
                Bind::ErrNumber => self
                    .error_info
                    .as_ref()
                    .map_or(Value::Null, |e| Value::Int(e.number as i64)),
                Bind::ErrMessage => self
                    .error_info
                    .as_ref()
                    .map_or(Value::Null, |e| Value::String(e.message.clone())),
                Bind::ErrSeverity => self
                    .error_info
                    .as_ref()
                    .map_or(Value::Null, |e| Value::Int(e.class as i64)),
                Bind::ErrState => self
                    .error_info
                    .as_ref()
                    .map_or(Value::Null, |e| Value::Int(e.state as i64)),
                Bind::ErrLine => self
                    .error_info
                    .as_ref()
                    .map_or(Value::Null, |_| Value::Int(1)),
                Bind::XactState => Value::Int((self.trancount > 0) as i64),
                Bind::TranCount => Value::Int(self.trancount as i64),
                Bind::ScopeIdentity => self
                    .scope_identity
                    .map_or(Value::Null, |i| Value::Decimal(Decimal::from(i))),
                Bind::Identity => self
                    .last_identity
                    .map_or(Value::Null, |i| Value::Decimal(Decimal::from(i))),
            })
            .collect()
    }

    /// Runs a plan on PostgreSQL; returns its rows (columns coerced to the plan's T-SQL types; an
    /// extra identity column is returned as read). For DML without RETURNING the affected-row
    /// count is returned as `rowcount` and the row vector is empty.
    async fn exec_plan(
        &mut self,
        plan: &SqlPlan,
        params: &[Param],
    ) -> Result<Vec<Vec<Value>>, Fail> {
        let values = self.bind_values(plan, params);
        if let Some(local) = &plan.local {
            let src: Vec<Value> = local
                .iter()
                .map(|i| values.get(*i).cloned().unwrap_or(Value::Null))
                .collect();
            let row: Vec<Value> = src
                .iter()
                .zip(&plan.columns)
                .map(|(v, c)| coerce(v.clone(), &c.ty))
                .collect();
            // A value that does not convert (e.g. 'abc' AS int) or does not fit the integer
            // type goes to PostgreSQL, which raises the conversion / overflow error.
            if row
                .iter()
                .zip(&src)
                .zip(&plan.columns)
                .all(|((v, s), c)| convert::fits(v, &c.ty) && int_in_range(s, v, &c.ty))
            {
                self.rowcount = 1;
                return Ok(vec![row]);
            }
        }
        let pre = self.pre_sql(&plan.lock_tables);
        let types = bind_types(plan);
        let cached = self
            .stmts
            .get(&plan.pg)
            .and_then(|l| l.iter().find(|(t, _)| *t == types))
            .map(|(_, s)| s.clone());
        let stmt = match cached {
            Some(s) => s,
            None => {
                // First use in this session: run the prelude alone, then prepare.
                if let Some(p) = &pre {
                    self.client
                        .batch_execute(p)
                        .await
                        .map_err(|e| self.pg_fail(&e, Some(plan.kind)))?;
                }
                let s = self
                    .client
                    .prepare_typed(&plan.pg, &types)
                    .await
                    .map_err(|e| self.pg_fail(&e, Some(plan.kind)))?;
                if self.stmts.len() >= MAX_PREPARED {
                    // Ad-hoc SQL with literals would otherwise grow without bound; dropping
                    // the handles closes the statements in PostgreSQL.
                    self.stmts.clear();
                }
                self.stmts
                    .entry(plan.pg.clone())
                    .or_default()
                    .push((types, s.clone()));
                return self.run_prepared(plan, &s, &values, None).await;
            }
        };
        self.run_prepared(plan, &stmt, &values, pre.as_deref())
            .await
    }

    /// A statement of the engine's own (not a translated T-SQL plan) prepared once per session
    /// and kept in the session's statement cache.
    async fn prepared(
        &mut self,
        sql: &str,
        types: &[tokio_postgres::types::Type],
    ) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
        if let Some(s) = self
            .stmts
            .get(sql)
            .and_then(|l| l.iter().find(|(t, _)| t.as_slice() == types))
            .map(|(_, s)| s.clone())
        {
            return Ok(s);
        }
        let s = self.client.prepare_typed(sql, types).await?;
        if self.stmts.len() >= MAX_PREPARED {
            self.stmts.clear();
        }
        self.stmts
            .entry(sql.to_string())
            .or_default()
            .push((types.to_vec(), s.clone()));
        Ok(s)
    }

    /// The session side of [`Session::deferrable`]: inside an open PostgreSQL transaction under
    /// XACT_ABORT ON, outside TRY, with no deferred BEGIN. Also the condition for pipelining
    /// `SET @v = SCOPE_IDENTITY()` and the COMMIT.
    fn may_pipeline(&self) -> bool {
        self.xact_abort
            && self.trancount > 0
            && self.pg_tx
            && !self.pending_begin
            && self.try_depth == 0
    }

    /// Whether a DML plan may be pipelined: inside an open PostgreSQL transaction under
    /// XACT_ABORT ON, outside TRY, with nothing to send before it (no deferred BEGIN, no
    /// table lock), no OUTPUT rows, no local answer and no reseed. Under XACT_ABORT ON any
    /// error rolls the whole transaction back and ends the batch, and PostgreSQL refuses every
    /// later statement of the aborted transaction, so statements sent after a failing one
    /// have no effect — exactly as if they had not been sent — while the first error is still
    /// reported as that statement's error, in order. Saves one round trip per statement
    /// (Mikro's INSERT → UPDATE RECid sequences, the ledger row).
    fn deferrable(&self, plan: &SqlPlan) -> bool {
        self.may_pipeline()
            && matches!(plan.kind, Kind::Insert | Kind::Update | Kind::Delete)
            && plan.columns.is_empty()
            && plan.assign.is_empty()
            && plan.local.is_none()
            && plan.reseed.is_none()
            && plan.lock_tables.is_empty()
    }

    /// Pipelines a plan that binds SCOPE_IDENTITY() while the INSERT that sets it is still
    /// unanswered (Mikro's `INSERT …; UPDATE … SET x_RECid_RECno = x_RECno WHERE x_RECno =
    /// SCOPE_IDENTITY()`): the statement is sent with `(SELECT lastval())` in place of the
    /// parameter.
    /// PostgreSQL runs it after that INSERT, whose identity default was the session's last
    /// `nextval` (no triggers, no explicit identity values, nothing else calls `nextval` in
    /// between), so `lastval()` is the value SCOPE_IDENTITY() would have had. Only for SQL
    /// without quotes (the placeholder is replaced textually). The variant is prepared on first
    /// use (after reading the pending answers). False when not applicable: nothing sent, and
    /// the pending answers are read (SCOPE_IDENTITY() is current for the plain plan).
    async fn defer_scope(
        &mut self,
        plan: &Arc<SqlPlan>,
        params: &[Param],
        out: &mut Vec<Output>,
    ) -> Result<bool, Fail> {
        if plan.pg.contains('\'') {
            self.flush(out).await?;
            return Ok(false);
        }
        let mut pg = plan.pg.clone();
        for (i, b) in plan.binds.iter().enumerate().rev() {
            match &b.src {
                // An uncorrelated subquery is evaluated once (an InitPlan parameter), so the
                // comparison still uses the primary key; a bare lastval() is volatile.
                Bind::ScopeIdentity => {
                    pg = replace_placeholder(&pg, i + 1, "(SELECT lastval())");
                }
                Bind::Var(v) => {
                    if let Some(l) = self.lazy_vars.get(v) {
                        pg = replace_placeholder(&pg, i + 1, &l.expr);
                    }
                }
                _ => {}
            }
        }
        let types = bind_types(plan);
        let known = self
            .stmts
            .get(&pg)
            .is_some_and(|l| l.iter().any(|(t, _)| *t == types));
        if !known {
            self.prepare_for_next_time(plan, &pg, out).await?;
            // SCOPE_IDENTITY() is known again: the plain plan runs (and is pipelined) as is.
            return Ok(false);
        }
        if self.defer(plan, &pg, params) {
            return Ok(true);
        }
        self.flush(out).await?;
        Ok(false)
    }

    /// Prepares `pg` (a plan's text or a variant with the same parameters) for this session,
    /// after reading the answers still in the pipeline, so the next batch can pipeline it.
    async fn prepare_for_next_time(
        &mut self,
        plan: &SqlPlan,
        pg: &str,
        out: &mut Vec<Output>,
    ) -> Result<(), Fail> {
        self.flush(out).await?;
        self.prepared(pg, &bind_types(plan))
            .await
            .map_err(|e| self.pg_fail(&e, Some(plan.kind)))?;
        Ok(())
    }

    /// Sends a deferrable plan (as PostgreSQL text `pg`: the plan's, or a variant with the same
    /// parameters) without waiting for its answer ([`Session::flush`] reads it). False
    /// (nothing sent) when the statement is not prepared in this session yet.
    fn defer(&mut self, plan: &Arc<SqlPlan>, pg: &str, params: &[Param]) -> bool {
        let types = bind_types(plan);
        let Some(stmt) = self
            .stmts
            .get(pg)
            .and_then(|l| l.iter().find(|(t, _)| *t == types))
            .map(|(_, s)| s.clone())
        else {
            return false;
        };
        let values = self.bind_values(plan, params);
        let client = self.client.clone();
        let returns_rows = plan.returns_rows;
        let fut = send_now(async move {
            let args: Vec<PgArg<'_>> = values.iter().map(PgArg).collect();
            let refs: Vec<&(dyn ToSql + Sync)> =
                args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
            if returns_rows {
                client.query(&stmt, &refs).await.map(PgResult::Rows)
            } else {
                client.execute(&stmt, &refs).await.map(PgResult::Count)
            }
        });
        self.pending.push_back(Pending {
            plan: plan.clone(),
            fut,
            assign_identity: Vec::new(),
        });
        // This statement's count is now the newest @@ROWCOUNT.
        self.rowcount_after_flush = None;
        true
    }

    /// Reads the answers of pipelined statements in order: row counts, SCOPE_IDENTITY and
    /// DONE tokens as if each had run alone. The first error is returned (after the remaining
    /// answers, which PostgreSQL refuses in the aborted transaction, are read and dropped).
    async fn flush(&mut self, out: &mut Vec<Output>) -> Result<(), Fail> {
        self.pending_values_identity = false;
        let mut first: Option<Fail> = None;
        while let Some(Pending {
            plan,
            fut,
            assign_identity,
        }) = self.pending.pop_front()
        {
            let r = fut.await;
            if first.is_some() {
                continue;
            }
            let rows = match r {
                Err(e) => {
                    first = Some(self.pg_fail(&e, Some(plan.kind)));
                    continue;
                }
                Ok(PgResult::Count(n)) => {
                    self.rowcount = n as i64;
                    Vec::new()
                }
                Ok(PgResult::Rows(rows)) => match self.convert_rows(&plan, &rows) {
                    Ok(v) => v,
                    Err(f) => {
                        first = Some(f);
                        continue;
                    }
                },
            };
            if let Err(f) = self.finish_plan(&plan, rows, out).await {
                first = Some(f);
                continue;
            }
            for (name, ty) in assign_identity {
                let v = self
                    .scope_identity
                    .map_or(Value::Null, |i| Value::Decimal(Decimal::from(i)));
                self.vars.insert(name, (ty.clone(), coerce(v, &ty)));
            }
        }
        self.lazy_vars.clear();
        match self.rowcount_after_flush.take() {
            Some(n) if first.is_none() => self.rowcount = n,
            _ => {}
        }
        first.map_or(Ok(()), Err)
    }

    /// PostgreSQL rows → values coerced to the plan's T-SQL types; sets @@ROWCOUNT.
    fn convert_rows(
        &mut self,
        plan: &SqlPlan,
        rows: &[tokio_postgres::Row],
    ) -> Result<Vec<Vec<Value>>, Fail> {
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let mut v = Vec::with_capacity(r.len());
            for i in 0..r.len() {
                let x = read_value(r, i)?;
                let x = if let Some(c) = plan.columns.get(i) {
                    coerce(x, &c.ty)
                } else if let Some((_, t)) = plan.assign.get(i) {
                    coerce(x, t)
                } else {
                    x
                };
                v.push(x);
            }
            out.push(v);
        }
        self.rowcount = rows.len() as i64;
        Ok(out)
    }

    async fn run_prepared(
        &mut self,
        plan: &SqlPlan,
        stmt: &tokio_postgres::Statement,
        values: &[Value],
        pre: Option<&str>,
    ) -> Result<Vec<Vec<Value>>, Fail> {
        let args: Vec<PgArg<'_>> = values.iter().map(PgArg).collect();
        let refs: Vec<&(dyn ToSql + Sync)> =
            args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        enum R {
            Rows(Vec<tokio_postgres::Row>),
            Count(u64),
        }
        let main = async {
            if plan.returns_rows {
                self.client.query(stmt, &refs).await.map(R::Rows)
            } else {
                self.client.execute(stmt, &refs).await.map(R::Count)
            }
        };
        let res = match pre {
            Some(p) => {
                let (a, b) = futures::join!(self.client.batch_execute(p), main);
                if let Err(e) = a {
                    return Err(self.pg_fail(&e, Some(plan.kind)));
                }
                b
            }
            None => main.await,
        };
        let res = res.map_err(|e| self.pg_fail(&e, Some(plan.kind)))?;
        match res {
            R::Count(n) => {
                self.rowcount = n as i64;
                Ok(Vec::new())
            }
            R::Rows(rows) => self.convert_rows(plan, &rows),
        }
    }

    async fn finish_plan(
        &mut self,
        plan: &SqlPlan,
        mut rows: Vec<Vec<Value>>,
        out: &mut Vec<Output>,
    ) -> Result<(), Fail> {
        let count = self.rowcount;
        if plan.identity_col {
            let mut last = None;
            for r in &mut rows {
                if let Some(Value::Int(i)) = r.pop() {
                    last = Some(i);
                }
            }
            if let Some(i) = last {
                self.scope_identity = Some(i);
                self.last_identity = Some(i);
            }
        }
        if let Some((table, col)) = &plan.reseed {
            let sql = format!(
                "SELECT emu_catalog.reseed({}, {})",
                catalog::quote_lit(table),
                catalog::quote_lit(col)
            );
            self.client
                .batch_execute(&sql)
                .await
                .map_err(|e| self.pg_fail(&e, Some(plan.kind)))?;
        }
        if !plan.assign.is_empty() {
            if let Some(last) = rows.last() {
                for (i, (name, ty)) in plan.assign.iter().enumerate() {
                    let v = last.get(i).cloned().unwrap_or(Value::Null);
                    self.vars.insert(name.clone(), (ty.clone(), coerce(v, ty)));
                }
            }
            self.rowcount = count;
            return Ok(());
        }
        if !plan.columns.is_empty() {
            let columns = plan
                .columns
                .iter()
                .map(|c| Column {
                    name: c.name.clone(),
                    ty: c.ty.clone(),
                    nullable: c.nullable,
                })
                .collect();
            out.push(Output::Rows { columns, rows });
        }
        self.rowcount = count;
        out.push(Output::Done {
            rows: if self.nocount {
                None
            } else {
                Some(count as u64)
            },
        });
        Ok(())
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

    // ------------------------------------------------------------ transactions

    fn begin_tran(&mut self, out: &mut Vec<Output>) {
        if self.trancount == 0 {
            let d = self.engine.next_tx.fetch_add(1, Ordering::SeqCst);
            self.tx_desc = Some(d);
            self.pending_begin = true;
            self.pg_tx = false;
            self.sp_held = false;
            self.ddl_in_tx = false;
            out.push(Output::Tx(TxEvent::Begin(d)));
        }
        self.trancount += 1;
        self.rowcount = 0;
    }

    fn unlock_sql(keys: &[(i32, bool)]) -> String {
        keys.iter()
            .map(|(k, shared)| {
                format!(
                    "SELECT pg_advisory_unlock{}({}, {k});",
                    if *shared { "_shared" } else { "" },
                    locks::APPLOCK_CLASS
                )
            })
            .collect()
    }

    async fn commit_tran(&mut self, out: &mut Vec<Output>) -> Result<(), SqlError> {
        if self.trancount == 0 {
            return Err(SqlError::new(
                3902,
                "The COMMIT TRANSACTION request has no corresponding BEGIN TRANSACTION.",
            ));
        }
        self.trancount -= 1;
        self.rowcount = 0;
        if self.trancount > 0 {
            return Ok(());
        }
        let desc = self.tx_desc.take().unwrap_or(0);
        let mut s = String::new();
        if self.pg_tx {
            s.push_str("COMMIT;");
        }
        let keys = std::mem::take(&mut self.tx_applocks);
        s.push_str(&Self::unlock_sql(&keys));
        self.pending_begin = false;
        self.pg_tx = false;
        self.sp_held = false;
        self.ddl_in_tx = false;
        self.user_savepoints.clear();
        if !s.is_empty() {
            if let Err(e) = self.client.batch_execute(&s).await {
                let cat = self.engine.catalog();
                let err = map_pg_error(&e, &self.err_ctx(&cat, None));
                let _ = self.client.batch_execute("ROLLBACK").await;
                self.release_after_failed_commit(&keys).await;
                out.push(Output::Tx(TxEvent::Rollback(desc)));
                return Err(err);
            }
        }
        out.push(Output::Tx(TxEvent::Commit(desc)));
        Ok(())
    }

    /// `SET @v = SCOPE_IDENTITY()` (or `CAST(SCOPE_IDENTITY() AS int)`) right behind a pipelined
    /// INSERT, as Mikro's posting does after the CHA header: instead of waiting for the INSERT's
    /// answer (one round trip, inside the numbering lock), the variable is noted as "the identity
    /// of that INSERT". Pipelined statements that bind it get, in its place, `currval` of the
    /// table's identity sequence — the same value while no other row goes into that table,
    /// which [`Session::run_stmt`] guarantees by answering first — and the variable gets its
    /// value when the INSERT's answer is read ([`Session::flush`]). Anything else that reads
    /// variables runs after a flush. Only under the conditions of [`Session::deferrable`], for
    /// an `int`/`bigint` variable, when the newest identity-producing pipelined statement is an
    /// `INSERT … VALUES`. True when the statement was handled this way.
    fn defer_identity_var(&mut self, n: &Node) -> bool {
        let Some((_, name, value)) = single_var_set(n) else {
            return false;
        };
        if !is_scope_identity(value) || !self.may_pipeline() || !self.pending_values_identity {
            return false;
        }
        let Some((ty, _)) = self.vars.get(&name) else {
            return false;
        };
        let cast = match ty {
            SqlType::Int => "int4",
            SqlType::BigInt => "int8",
            _ => return false,
        };
        let ty = ty.clone();
        let Some(p) = self.pending.iter_mut().rev().find(|p| p.plan.identity_col) else {
            return false;
        };
        let Some(t) = p.plan.target.as_ref() else {
            return false;
        };
        let Some(col) = t.identity() else {
            return false;
        };
        let expr = format!(
            "(SELECT currval(pg_get_serial_sequence({}, {})))::{cast}",
            catalog::quote_lit(&t.pg_ref()),
            catalog::quote_lit(&col.lc)
        );
        let table = t.lc.clone();
        p.assign_identity.push((name.clone(), ty));
        self.lazy_vars.insert(
            name,
            LazyVar {
                expr,
                table: Some(table),
            },
        );
        self.rowcount_after_flush = Some(1);
        true
    }

    /// Whether every value the plan binds is known now: parameters and variables that are not
    /// waiting for a pipelined answer (no @@ROWCOUNT, SCOPE_IDENTITY() …, which must be
    /// current when bound).
    fn binds_current(&self, plan: &SqlPlan) -> bool {
        plan.binds.iter().all(|b| match &b.src {
            Bind::Param(_) => true,
            Bind::Var(v) => !self.lazy_vars.contains_key(v),
            _ => false,
        })
    }

    /// `SET @v = <expression PostgreSQL evaluates>` for an integer variable, under the
    /// conditions of [`Session::may_pipeline`] — Mikro-style numbering's `SET @sira = (SELECT
    /// ISNULL(MAX(…), 0) + 1 FROM … )` right behind `sp_getapplock`. Instead of waiting for the
    /// value (one round trip while the numbering lock is held), the statement is sent with the
    /// rest of the pipeline and also stores its value in a transaction-local setting
    /// (`set_config(…, true)`); pipelined statements that bind the variable read that setting
    /// (see [`Session::defer_scope`]) and the variable gets its value when the answer is read
    /// ([`Session::flush`]), before anything that reads variables on this side runs. On a real
    /// SQL Server the whole batch runs server-side; this keeps the emulator's lock hold time
    /// close to one round trip. Not taken (false, nothing sent) when the value is known here
    /// (constants, `@@ROWCOUNT` …), the expression binds anything but parameters and current
    /// variables, its type is not the variable's, or the statement is not prepared in this
    /// session yet (it is prepared now, so the next batch pipelines it).
    async fn defer_scalar_var(
        &mut self,
        batch: &Arc<Batch>,
        n: &Node,
        params: &[Param],
        out: &mut Vec<Output>,
    ) -> Result<bool, Fail> {
        let Some((id, name, value)) = single_var_set(n) else {
            return Ok(false);
        };
        if !self.may_pipeline() {
            return Ok(false);
        }
        let Some((ty, _)) = self.vars.get(&name) else {
            return Ok(false);
        };
        let cast = match ty {
            SqlType::SmallInt => "int2",
            SqlType::Int => "int4",
            SqlType::BigInt => "int8",
            _ => return Ok(false),
        };
        if name.len() > 30 || self.const_value(value, params).is_some() {
            return Ok(false);
        }
        let ty = ty.clone();
        // A setting name of identifier characters only, the same for every batch (so the
        // statements that read it are prepared once).
        let setting: String = name.bytes().map(|b| format!("{b:02x}")).collect();
        let setting = format!("emu.v_{setting}");
        let e = value;
        let plan = self.plan_for(
            batch,
            id * 64 + 2,
            |cat, pt, vt| {
                let mut tr = Translator::new(cat, pt, vt);
                let te = tr.expr(e)?;
                let local = tr.local_slot(e).map(|i| vec![i]);
                Ok(scalar_plan(
                    format!(
                        "SELECT s.v FROM (SELECT ({}) AS v) s, \
                         LATERAL set_config({}, coalesce(s.v::text, ''), true) c",
                        te.sql,
                        catalog::quote_lit(&setting)
                    ),
                    tr.binds,
                    te.ty.clone().unwrap_or(SqlType::Int),
                    vec![(name.clone(), ty.clone())],
                    local,
                ))
            },
            params,
        )?;
        let binds_current = self.binds_current(&plan);
        // Same type as the variable: the value stored is the value assigned, no conversion
        // (and no conversion error) moves to another statement.
        if plan.local.is_some() || plan.columns[0].ty != ty || !binds_current {
            return Ok(false);
        }
        if !self.defer(&plan, &plan.pg, params) {
            self.prepare_for_next_time(&plan, &plan.pg, out).await?;
            return Ok(false);
        }
        let expr = format!(
            "(SELECT NULLIF(current_setting({}, true), '')::{cast})",
            catalog::quote_lit(&setting)
        );
        self.lazy_vars.insert(name, LazyVar { expr, table: None });
        Ok(true)
    }

    /// Whether `n` is a `COMMIT TRAN` that may follow pipelined DML without waiting for its
    /// answers ([`Session::commit_pipelined`]): the outermost commit, under XACT_ABORT ON,
    /// outside TRY, with DML still unanswered.
    fn commit_pipelinable(&self, n: &Node) -> bool {
        matches!(n, Node::Stmt { stmt, .. } if matches!(**stmt, Statement::Commit { chain: false, .. }))
            && !self.pending.is_empty()
            && self.trancount == 1
            && self.may_pipeline()
    }

    /// The outermost `COMMIT TRAN` sent right behind the DML still in the pipeline, before
    /// their answers are read. PostgreSQL runs the statements, the COMMIT and the applock
    /// releases back to back, so the transaction (and a numbering applock) ends without a wait
    /// for the emulator in between — the lock is held one round trip less. Under XACT_ABORT ON
    /// this changes nothing visible: if a pipelined statement fails, PostgreSQL has already
    /// aborted the transaction, answers the COMMIT with a rollback, and the failing statement's
    /// error is reported in order, followed by the rollback, as SQL Server does.
    async fn commit_pipelined(&mut self, out: &mut Vec<Output>) -> Result<(), Fail> {
        let mut s = String::from("COMMIT;");
        let keys = std::mem::take(&mut self.tx_applocks);
        s.push_str(&Self::unlock_sql(&keys));
        let client = self.client.clone();
        // Queued behind the pipelined statements.
        let fut = send_now(async move { client.batch_execute(&s).await });
        let flushed = self.flush(out).await;
        let committed = fut.await;
        // Either way the PostgreSQL transaction is over. The applocks are released by the same
        // message unless it failed, which stops it at the failing command.
        self.pg_tx = false;
        self.sp_held = false;
        if committed.is_err() {
            self.release_after_failed_commit(&keys).await;
        }
        if let Err(f) = flushed {
            // Left at @@TRANCOUNT 1: the caller reports the error, then `rollback_all` ends
            // the transaction (nothing left to send) and reports the rollback.
            if let Err(e) = committed {
                tracing::warn!(error = %e, "commit after a failed pipelined statement");
            }
            return Err(f);
        }
        match committed {
            Ok(()) => self.commit_tran(out).await.map_err(Fail::from),
            // The COMMIT itself failed (a deferred constraint): PostgreSQL rolled back; as
            // above, the caller reports the error and then the rollback.
            Err(e) => Err(self.pg_fail(&e, None)),
        }
    }

    /// Releases the transaction's applocks after a COMMIT message failed (PostgreSQL skips the
    /// rest of a message after an error, the unlocks included), so they do not outlive it.
    async fn release_after_failed_commit(&mut self, keys: &[(i32, bool)]) {
        let sql = Self::unlock_sql(keys);
        if !sql.is_empty() {
            if let Err(e) = self.client.batch_execute(&sql).await {
                tracing::warn!(error = %e, "releasing applocks after a failed COMMIT failed");
            }
        }
    }

    /// ROLLBACK TRANSACTION (all levels), also used for XACT_ABORT and deadlocks.
    async fn rollback_all(&mut self, out: &mut Vec<Output>) {
        if self.trancount == 0 && !self.pg_tx {
            return;
        }
        let desc = self.tx_desc.take().unwrap_or(0);
        let mut s = String::new();
        if self.pg_tx {
            s.push_str("ROLLBACK;");
        }
        let keys = std::mem::take(&mut self.tx_applocks);
        s.push_str(&Self::unlock_sql(&keys));
        if !s.is_empty() {
            if let Err(e) = self.client.batch_execute(&s).await {
                tracing::warn!(error = %e, "rollback failed");
            }
        }
        let ddl = self.ddl_in_tx;
        self.trancount = 0;
        self.pending_begin = false;
        self.pg_tx = false;
        self.sp_held = false;
        self.ddl_in_tx = false;
        self.user_savepoints.clear();
        self.rowcount = 0;
        if ddl {
            if let Err(e) = self.engine.reload_catalog(&self.client).await {
                tracing::warn!(error = %e, "catalog reload after rollback failed");
            }
        }
        out.push(Output::Tx(TxEvent::Rollback(desc)));
    }

    /// Transaction Manager request: begin (TM_BEGIN_XACT). Returns the new descriptor.
    pub async fn begin(&mut self, out: &mut Vec<Output>) {
        self.begin_tran(out);
    }

    /// Transaction Manager request: commit (TM_COMMIT_XACT); `begin_new` for fBeginXact.
    /// A TM commit commits the whole transaction (as SQL Server's TM request does).
    pub async fn commit(&mut self, begin_new: bool, out: &mut Vec<Output>) {
        if self.trancount > 0 {
            self.trancount = 1;
            if let Err(e) = self.commit_tran(out).await {
                out.push(Output::Error(e));
            }
        } else {
            out.push(Output::Error(SqlError::new(
                3902,
                "The COMMIT TRANSACTION request has no corresponding BEGIN TRANSACTION.",
            )));
        }
        if begin_new {
            self.begin_tran(out);
        }
    }

    /// Transaction Manager request: rollback (TM_ROLLBACK_XACT); `begin_new` for fBeginXact.
    pub async fn rollback(&mut self, begin_new: bool, out: &mut Vec<Output>) {
        if self.trancount > 0 {
            self.rollback_all(out).await;
        } else {
            out.push(Output::Error(SqlError::new(
                3903,
                "The ROLLBACK TRANSACTION request has no corresponding BEGIN TRANSACTION.",
            )));
        }
        if begin_new {
            self.begin_tran(out);
        }
    }

    /// The current transaction descriptor (0 when none), for the ALL_HEADERS echo checks.
    pub fn transaction_descriptor(&self) -> u64 {
        self.tx_desc.unwrap_or(0)
    }

    /// @@TRANCOUNT of the session (for tests and the protocol layer).
    pub fn trancount(&self) -> u32 {
        self.trancount
    }

    /// Whether SET NOCOUNT is ON (the protocol layer may omit DONE_COUNT; the engine already
    /// emits `Done { rows: None }` then).
    pub fn nocount(&self) -> bool {
        self.nocount
    }

    /// A handle that cancels the statement this session is running, from another task (the
    /// protocol layer can keep reading packets while `execute` runs and call it on Attention).
    /// The cancelled statement fails with error 3617; the transaction stays open, as on SQL
    /// Server.
    pub fn canceller(&self) -> Canceller {
        Canceller {
            token: self.client.cancel_token(),
        }
    }

    /// Called when the client sends Attention: abandon whatever the session was doing. The
    /// engine runs statements to completion before the protocol layer reads the next packet, so
    /// there is nothing in flight to cancel; the open transaction stays open, as in SQL Server.
    pub async fn attention(&mut self) {}

    /// Called when the TDS connection closes: roll back any open transaction, release locks.
    pub async fn close(&mut self) {
        let mut out = Vec::new();
        self.rollback_all(&mut out).await;
        let keys = std::mem::take(&mut self.session_applocks);
        if !keys.is_empty() {
            let _ = self.client.batch_execute(&Self::unlock_sql(&keys)).await;
        }
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
