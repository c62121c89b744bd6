//! The LISTEN connection: wakes the worker when a web transaction enqueued something.
//!
//! A dedicated tokio-postgres connection whose `Connection` we poll ourselves
//! (`poll_message`), so notifications reach us. A pooled deadpool client would not do: deadpool
//! spawns the connection future (notifications are dropped) and its recycling runs `UNLISTEN`.
//!
//! The same session carries the "idle" advisory lock (see `sql/web/005_triggers.sql`): while the
//! worker is idle it holds [`IDLE_LOCK_KEY`] exclusively, which tells the enqueue trigger to
//! notify; while it drains it does not, and writers skip the notify. Losing the connection
//! releases the lock, which is safe (writers then notify nobody, and the reconnect drains).

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::sync::{mpsc, Notify};
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{AsyncMessage, Client, Socket};

use super::QueueError;

use super::store::{self, IDLE_RELEASE_SQL, IDLE_STEP_SQL};
pub use super::store::{CHANNEL, IDLE_LOCK_KEY};
use super::Job;
use crate::posting::PostingConfig;

/// The message stream of a connection, already detached from its TLS type.
pub type MessageStream = BoxStream<'static, Result<AsyncMessage, tokio_postgres::Error>>;
/// What a [`ListenConnect`] returns.
pub type ConnectFuture =
    Pin<Box<dyn Future<Output = Result<(Client, MessageStream), tokio_postgres::Error>> + Send>>;

/// Opens LISTEN connections (the worker reconnects through it). Implemented by
/// [`PgListenConnector`]; "ship" builds one with its TLS connector.
pub trait ListenConnect: Send + Sync {
    /// Opens one new connection.
    fn connect(&self) -> ConnectFuture;
}

/// [`ListenConnect`] for a tokio-postgres config and a TLS maker (`NoTls` or rustls).
pub struct PgListenConnector<T> {
    config: tokio_postgres::Config,
    tls: T,
}

impl<T> PgListenConnector<T> {
    /// Wraps a config; TCP keepalives and a TCP user timeout are switched on so a silently dead
    /// peer is noticed even when no query runs (the worker also pings the connection on every
    /// poll tick, and bounds every call with its `listen_timeout`).
    pub fn new(mut config: tokio_postgres::Config, tls: T) -> Self {
        crate::db::harden_web_config(&mut config);
        config.keepalives_idle(Duration::from_secs(10));
        config.application_name("mikro-sync listener");
        PgListenConnector { config, tls }
    }
}

impl PgListenConnector<tokio_postgres::NoTls> {
    /// A plaintext connector from a libpq-style URL (tests, local servers).
    pub fn from_url_notls(url: &str) -> Result<Self, QueueError> {
        let cfg: tokio_postgres::Config = url
            .parse()
            .map_err(|e: tokio_postgres::Error| QueueError::Config(e.to_string()))?;
        Ok(Self::new(cfg, tokio_postgres::NoTls))
    }
}

impl<T> ListenConnect for PgListenConnector<T>
where
    T: MakeTlsConnect<Socket> + Clone + Send + Sync + 'static,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    fn connect(&self) -> ConnectFuture {
        let config = self.config.clone();
        let tls = self.tls.clone();
        Box::pin(async move {
            let (client, mut conn) = config.connect(tls).await?;
            let stream: MessageStream =
                futures::stream::poll_fn(move |cx| conn.poll_message(cx)).boxed();
            Ok((client, stream))
        })
    }
}

/// Whether [`Listener::idle_step`] made the worker idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdleOutcome {
    /// We hold the idle lock: writers notify from now on.
    Held,
    /// Another worker holds it: writers notify (we hear it too); idle without it.
    OtherWorker,
    /// Writers that skipped their notify are still in their transactions: not idle yet, poll
    /// again shortly.
    WritersBusy,
}

/// What [`Listener::idle_step`] found.
#[derive(Debug)]
pub(crate) struct IdleStep {
    /// Whether the worker is idle now.
    pub outcome: IdleOutcome,
    /// The rows the step's claim took (an error leaves the worker polling).
    pub jobs: Result<Vec<Job>, QueueError>,
    /// Until the earliest pending row is due (None: nothing pending).
    pub next_due: Option<Duration>,
}

/// The idle step's statements, prepared on the LISTEN connection.
#[derive(Clone)]
struct IdleStatements {
    /// Whether `claim` reads the documents.
    documents: bool,
    idle: tokio_postgres::Statement,
    claim: tokio_postgres::Statement,
    next_due: tokio_postgres::Statement,
}

/// One live LISTEN connection.
pub(crate) struct Listener {
    client: Client,
    wake: Arc<Notify>,
    /// Set by the poller when the connection's message stream ended.
    closed: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    /// True while this session holds [`IDLE_LOCK_KEY`] exclusively.
    holds_idle_lock: bool,
    /// Bound of each call (a silently dead connection must not freeze the worker loop).
    timeout: Duration,
    /// Prepared on the first idle step.
    stmts: Option<IdleStatements>,
}

/// Runs one call on the LISTEN connection within `timeout`.
async fn bounded<T>(
    timeout: Duration,
    f: impl Future<Output = Result<T, QueueError>>,
) -> Result<T, QueueError> {
    tokio::time::timeout(timeout, f)
        .await
        .unwrap_or(Err(QueueError::ListenTimeout))
}

impl Listener {
    /// Connects, starts polling the connection, runs LISTEN. `notifications` counts arrivals.
    /// Every later call on it is bounded by `timeout` (the connect itself is bounded by the
    /// caller).
    pub(crate) async fn connect(
        connector: &dyn ListenConnect,
        metrics: Arc<super::Metrics>,
        timeout: Duration,
    ) -> Result<Listener, QueueError> {
        let (client, mut stream) = connector.connect().await.map_err(QueueError::Listen)?;
        let wake = Arc::new(Notify::new());
        let w = wake.clone();
        let closed = Arc::new(AtomicBool::new(false));
        let gone = closed.clone();
        let task = tokio::spawn(async move {
            while let Some(msg) = stream.next().await {
                match msg {
                    Ok(AsyncMessage::Notification(_)) => {
                        super::Metrics::inc(&metrics.notifications);
                        // Coalesces: one stored permit stands for any number of notifications.
                        w.notify_one();
                    }
                    Ok(AsyncMessage::Notice(n)) => {
                        tracing::debug!(notice = %n.message(), "listener notice")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection lost");
                        break;
                    }
                }
            }
            // Wake the worker so it notices `is_closed` and reconnects.
            gone.store(true, Ordering::Release);
            w.notify_one();
        });
        let listener = Listener {
            client,
            wake,
            closed,
            task,
            holds_idle_lock: false,
            timeout,
            stmts: None,
        };
        // The idle step's claim reads the documents: each planning of it costs tens of ms, so
        // this session builds its one generic plan at once instead of five custom ones first.
        listener
            .client
            .batch_execute(&format!(
                "LISTEN {CHANNEL}; SET lock_timeout = '200ms'; SET statement_timeout = '30s'; \
                 SET plan_cache_mode = force_generic_plan"
            ))
            .await
            .map_err(QueueError::Listen)?;
        Ok(listener)
    }

    /// True once the connection died (terminated backend, network loss).
    fn is_closed(&self) -> bool {
        self.client.is_closed() || self.task.is_finished()
    }

    /// The outcome of [`IDLE_STEP_SQL`].
    fn idle_outcome(
        &mut self,
        r: Result<tokio_postgres::Row, tokio_postgres::Error>,
    ) -> Result<IdleOutcome, QueueError> {
        match r {
            Ok(row) => match row.try_get::<_, i32>(0).map_err(QueueError::Listen)? {
                2 => Ok(IdleOutcome::OtherWorker),
                _ => {
                    self.holds_idle_lock = true;
                    Ok(IdleOutcome::Held)
                }
            },
            // Writers hold it shared past the lock_timeout.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE) => {
                Ok(IdleOutcome::WritersBusy)
            }
            Err(e) => Err(QueueError::Listen(e)),
        }
    }

    /// Going idle in one round trip: try to become "the idle worker" (take [`IDLE_LOCK_KEY`]
    /// exclusively, waiting at most the session's short lock_timeout for writers that skipped
    /// their notify to commit, so a long web transaction cannot stall the worker loop), then, on
    /// this connection and so after the lock is settled, claim once more up to `limit` rows for
    /// `worker`, and read the time until the next pending row is due; the three statements
    /// pipelined. With `documents`, the claim reads the claimed documents too.
    async fn idle_step(
        &mut self,
        worker: &str,
        limit: usize,
        lease: Duration,
        documents: Option<&PostingConfig>,
    ) -> Result<IdleStep, QueueError> {
        let timeout = self.timeout;
        bounded(timeout, self.try_idle_step(worker, limit, lease, documents)).await
    }

    async fn try_idle_step(
        &mut self,
        worker: &str,
        limit: usize,
        lease: Duration,
        documents: Option<&PostingConfig>,
    ) -> Result<IdleStep, QueueError> {
        let with_docs = documents.is_some();
        let stmts = match &self.stmts {
            Some(s) if s.documents == with_docs => s.clone(),
            _ => {
                // Once per connection: prepared, the three statements go out in one write.
                let (idle, claim, next_due) = tokio::try_join!(
                    self.client.prepare(IDLE_STEP_SQL),
                    self.client.prepare(store::claim_sql(with_docs)),
                    self.client.prepare(store::NEXT_DUE_SQL),
                )
                .map_err(QueueError::Listen)?;
                let s = IdleStatements {
                    documents: with_docs,
                    idle,
                    claim,
                    next_due,
                };
                self.stmts = Some(s.clone());
                s
            }
        };
        let limit = limit.max(1) as i64;
        let lease = lease.as_secs_f64();
        let held = self.holds_idle_lock;
        let client = &self.client;
        let lock = async {
            if held {
                None
            } else {
                Some(client.query_one(&stmts.idle, &[&IDLE_LOCK_KEY]).await)
            }
        };
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&limit, &worker, &lease];
        let claim = client.query(&stmts.claim, &params);
        let due = client.query_one(&stmts.next_due, &[]);
        let (lock, claim, due) = tokio::join!(lock, claim, due);
        let outcome = match lock {
            None => IdleOutcome::Held,
            Some(r) => self.idle_outcome(r)?,
        };
        let jobs = match claim {
            Ok(rows) => store::jobs_from_claim(&self.client, rows, documents).await,
            Err(e) => Err(QueueError::Web(e)),
        };
        let secs: Option<f64> = due.and_then(|r| r.try_get(0)).map_err(QueueError::Listen)?;
        Ok(IdleStep {
            outcome,
            jobs,
            next_due: secs.map(|s| Duration::from_secs_f64(s.max(0.0))),
        })
    }

    /// Stops being the idle worker (about to drain): writers skip the notify from now on.
    async fn become_busy(&mut self) -> Result<(), QueueError> {
        if self.holds_idle_lock {
            let unlock = async {
                self.client
                    .execute(IDLE_RELEASE_SQL, &[&IDLE_LOCK_KEY])
                    .await
                    .map_err(QueueError::Listen)
            };
            bounded(self.timeout, unlock).await?;
            self.holds_idle_lock = false;
        }
        Ok(())
    }

    /// Liveness probe for an idle connection (keepalives catch the rest).
    async fn ping(&self) -> Result<(), QueueError> {
        match tokio::time::timeout(self.timeout, self.client.simple_query("SELECT 1")).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(QueueError::Listen(e)),
            Err(_) => Err(QueueError::ListenTimeout),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // Dropping the client ends the session (and its advisory lock); stop the poller too.
        self.task.abort();
    }
}

/// A call the worker loop sends to the LISTEN connection's task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    /// [`Listener::become_busy`].
    Busy,
    /// [`Listener::idle_step`] claiming up to this many rows.
    Idle(usize),
    /// [`Listener::ping`].
    Ping,
}

/// The answer to a [`Call`], in the order the calls were sent.
#[derive(Debug)]
pub(crate) enum Reply {
    /// The idle lock is released (or was not held).
    Busy(Result<(), QueueError>),
    /// The idle step's outcome; `want` is the limit its claim had. `latest`: no release of
    /// the lock nor another idle step was sent after it, so its verdict (idle or not) stands;
    /// otherwise the loop drained since and only its claimed rows count.
    Idle {
        want: usize,
        step: Result<IdleStep, QueueError>,
        latest: bool,
    },
    /// The connection answered a ping.
    Ping(Result<(), QueueError>),
}

impl Reply {
    /// The call's error, if it failed (the task has then dropped the connection).
    pub(crate) fn error(&self) -> Option<&QueueError> {
        match self {
            Reply::Busy(Err(e)) | Reply::Ping(Err(e)) | Reply::Idle { step: Err(e), .. } => Some(e),
            _ => None,
        }
    }
}

/// What the idle step's claim needs besides its limit (fixed for a worker).
#[derive(Clone)]
pub(crate) struct ClaimAs {
    /// Recorded in `claimed_by`.
    pub worker: String,
    pub lease: Duration,
    /// Read the claimed documents too (see [`super::executor::Sink::documents`]).
    pub documents: Option<Arc<PostingConfig>>,
}

/// The worker loop's side of a LISTEN connection that lives in its own task.
///
/// Why a task: every call on the connection is bounded, but a silently dead connection still
/// holds its caller for the whole bound, and the loop must keep renewing leases, polling and
/// posting meanwhile. So the loop only sends calls and takes the replies when they come, in its
/// `select!`; the task runs the calls one after the other in the order sent (a release of the
/// idle lock sent before an idle step runs before it) and ends at the first failure, dropping
/// the connection and with it the idle lock.
pub(crate) struct ListenHandle {
    calls: mpsc::UnboundedSender<Call>,
    replies: mpsc::UnboundedReceiver<Reply>,
    wake: Arc<Notify>,
    closed: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    /// Calls sent and not answered yet, oldest first.
    pending: std::collections::VecDeque<Call>,
    /// Whether the session held the idle lock after the last answered call.
    held: bool,
}

impl ListenHandle {
    /// Moves `listener` into its own task.
    pub(crate) fn spawn(listener: Listener, claim: ClaimAs) -> ListenHandle {
        let (calls, mut call_rx) = mpsc::unbounded_channel::<Call>();
        let (reply_tx, replies) = mpsc::unbounded_channel();
        let wake = listener.wake.clone();
        let closed = listener.closed.clone();
        let task = tokio::spawn(async move {
            let mut l = listener;
            while let Some(call) = call_rx.recv().await {
                let reply = match call {
                    Call::Busy => Reply::Busy(l.become_busy().await),
                    Call::Ping => Reply::Ping(l.ping().await),
                    Call::Idle(want) => {
                        let docs = claim.documents.as_deref();
                        let step = l.idle_step(&claim.worker, want, claim.lease, docs).await;
                        // `latest` is decided when the loop takes the reply.
                        Reply::Idle {
                            want,
                            step,
                            latest: false,
                        }
                    }
                };
                let failed = reply.error().is_some();
                if reply_tx.send(reply).is_err() || failed || l.is_closed() {
                    break;
                }
            }
        });
        ListenHandle {
            calls,
            replies,
            wake,
            closed,
            task,
            pending: std::collections::VecDeque::new(),
            held: false,
        }
    }

    fn send(&mut self, call: Call) {
        if self.calls.send(call).is_ok() {
            self.pending.push_back(call);
        }
    }

    /// True once the connection or its task ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire) || self.task.is_finished()
    }

    /// The wake-up the notifications feed (cancel-safe; one stored permit for any number).
    pub(crate) fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Whether an idle step is out (its claim may take rows).
    pub(crate) fn idle_out(&self) -> bool {
        self.pending.iter().any(|c| matches!(c, Call::Idle(_)))
    }

    /// Whether the session may hold the idle lock once the calls sent have run.
    fn may_hold_lock(&self) -> bool {
        match self.pending.iter().rev().find(|c| **c != Call::Ping) {
            Some(Call::Idle(_)) => true,
            Some(_) => false,
            None => self.held,
        }
    }

    /// Releases the idle lock (about to drain), unless it cannot be held.
    pub(crate) fn become_busy(&mut self) {
        if self.may_hold_lock() {
            self.send(Call::Busy);
        }
    }

    /// Sends an idle step claiming up to `want` rows, unless one is out with nothing sent
    /// after it (its answer will do).
    pub(crate) fn idle_step(&mut self, want: usize) {
        if !self.may_hold_lock() {
            self.send(Call::Idle(want));
        }
    }

    /// Sends a liveness probe, unless a call is out (its answer proves as much).
    pub(crate) fn ping(&mut self) {
        if self.pending.is_empty() {
            self.send(Call::Ping);
        }
    }

    /// The next reply; None once the task ended. Cancel-safe.
    pub(crate) async fn reply(&mut self) -> Option<Reply> {
        let mut r = self.replies.recv().await?;
        self.pending.pop_front();
        match &mut r {
            Reply::Busy(Ok(())) => self.held = false,
            Reply::Idle {
                step: Ok(step),
                latest,
                ..
            } => {
                self.held = step.outcome == IdleOutcome::Held;
                *latest = !self.pending.iter().any(|c| *c != Call::Ping);
            }
            _ => {}
        }
        Some(r)
    }
}

impl Drop for ListenHandle {
    fn drop(&mut self) {
        // The task owns the connection: ending it ends the session (and its advisory lock).
        self.task.abort();
    }
}
