//! Running one claimed document: post it through a [`Sink`], then complete, retry or fail it.
//!
//! Every outcome goes through one path: the job task decides it (posted, retry later, failed)
//! and hands it to the completer task, which writes outcomes in batches, many rows per
//! statement under load and one when it is quiet ([`store::finish`]). A completion marks the
//! queue row `completed` and writes the Mikro number back to the document
//! (`satislar.fatura_seri_no/fatura_sira_no`, `tahsilatlar.tahsilat_seri_no/tahsilat_sira_no`)
//! in the same statement; the triggers are AFTER INSERT, so this never enqueues the document
//! again.
//!
//! If the process dies between the ERP commit and the web completion, the row is retried (lease
//! expiry); posting finds its ledger row, returns `already_posted`, and only the web side is
//! completed. [`ExecHooks::fail_after_erp_commit`] injects exactly that failure in tests.
//!
//! The worker finishes what it holds: a row stays in the worker's [`Held`] set (its lease
//! renewed) until its outcome is written. An outcome that cannot be written is retried by this
//! worker with backoff; a completion is never marked `failed` (the document is in Mikro). Each
//! posting runs under a timeout (a timed-out posting is a transient failure: the ledger makes
//! the retry exactly-once) and a panic in it is caught and recorded as a failed attempt of that
//! document.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;

use tokio::sync::mpsc;
use tracing::Instrument;
use uuid::Uuid;

use super::metrics::Metrics;
use super::retry::{Decision, RetryPolicy};
use super::store::{self, Outcome};
use super::{Job, QueueError};
use crate::db::{ErpPool, WebPool};
use crate::posting::{PostError, Posted, PostingConfig};

/// Where documents go. The worker is generic over it so the queue can be measured (and tested)
/// without an ERP ([`NoopSink`]), while production uses [`MikroSink`].
pub trait Sink: Send + Sync + 'static {
    /// Posts one document exactly once in effect (see [`crate::posting::post_document`]).
    fn post(&self, job: &Job) -> impl Future<Output = Result<Posted, PostError>> + Send;

    /// Some(settings) when the claim should read each document for this sink (in the claim's
    /// round trip, into [`Job::document`]); None (the default) when the sink needs no document.
    fn documents(&self) -> Option<&PostingConfig> {
        None
    }
}

/// Production sink: the document goes into Mikro through the bb8 ERP pool and `posting`.
#[derive(Clone)]
pub struct MikroSink {
    /// Web pool (posting reads the document and the mappings through it).
    pub web: WebPool,
    /// ERP pool; its size bounds the ERP connections in use.
    pub erp: ErpPool,
    /// Series, time zone, … for posting.
    pub cfg: PostingConfig,
}

impl Sink for MikroSink {
    async fn post(&self, job: &Job) -> Result<Posted, PostError> {
        let doc = match &job.document {
            Some(doc) => doc.clone(),
            None => {
                // Read first, then take an ERP connection: with more documents in flight than
                // ERP connections, the next document's web reads overlap the current ERP
                // transaction.
                let web = self.web.get().await.map_err(|e| {
                    PostError::Transient(format!("web pool: {}", crate::db::pool_error_text(&e)))
                })?;
                Arc::new(
                    crate::posting::load_document(&web, &self.cfg, job.kind, job.entity_id).await?,
                )
            }
        };
        let mut erp = self
            .erp
            .get()
            .await
            .map_err(|e| PostError::Transient(format!("ERP pool: {e}")))?;
        crate::posting::post_loaded(&mut erp, &self.cfg, &doc).await
    }

    fn documents(&self) -> Option<&PostingConfig> {
        Some(&self.cfg)
    }
}

/// A sink that posts nothing and succeeds at once (no number to write back). For benchmarks of
/// the queue alone and tests where the ERP is irrelevant.
#[derive(Debug, Clone, Default)]
pub struct NoopSink;

impl Sink for NoopSink {
    async fn post(&self, _job: &Job) -> Result<Posted, PostError> {
        Ok(Posted {
            seri: String::new(),
            sira: 0,
            cha_recno: 0,
            already_posted: false,
        })
    }
}

impl<S: Sink> Sink for Arc<S> {
    fn post(&self, job: &Job) -> impl Future<Output = Result<Posted, PostError>> + Send {
        (**self).post(job)
    }

    fn documents(&self) -> Option<&PostingConfig> {
        (**self).documents()
    }
}

/// Test hooks. All off by default; production never sets them.
#[derive(Debug, Clone, Default)]
pub struct ExecHooks {
    /// While > 0: each successful posting is treated as failing right after the ERP commit
    /// (before the web side is marked), and the counter is decremented.
    pub fail_after_erp_commit: Option<Arc<AtomicUsize>>,
    /// While > 0: each completion statement fails (as if the web database restarted), and the
    /// counter is decremented.
    pub fail_completion: Option<Arc<AtomicUsize>>,
}

fn take_one(hook: &Option<Arc<AtomicUsize>>) -> bool {
    hook.as_ref().is_some_and(|h| {
        h.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    })
}

/// The rows a worker holds (claimed, in flight, or posted and waiting for their completion):
/// the heartbeat renews their leases. Shared by the worker loop, the job tasks and the
/// completer. Each entry also says since when its posting runs (if it does), so the loop can
/// tell a posting stuck past its timeout (a sink blocking its thread) from progress.
#[derive(Debug, Clone, Default)]
pub(crate) struct Held(Arc<Mutex<HashMap<Uuid, Option<Instant>>>>);

impl Held {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<Uuid, Option<Instant>>) -> T) -> T {
        // Every use is a single map call, so a poisoned lock still holds a consistent map.
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut g)
    }
    pub(crate) fn insert(&self, id: Uuid) {
        self.with(|s| s.insert(id, None));
    }
    pub(crate) fn remove(&self, id: &Uuid) {
        self.with(|s| s.remove(id));
    }
    pub(crate) fn ids(&self) -> Vec<Uuid> {
        self.with(|s| s.keys().copied().collect())
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.with(|s| s.is_empty())
    }
    fn posting(&self, id: Uuid, since: Option<Instant>) {
        self.with(|s| {
            if let Some(v) = s.get_mut(&id) {
                *v = since;
            }
        });
    }
    /// Whether any posting is running.
    fn any_posting(&self) -> bool {
        self.with(|s| s.values().any(Option::is_some))
    }
    /// When the longest-running posting started.
    pub(crate) fn oldest_posting(&self) -> Option<Instant> {
        self.with(|s| s.values().flatten().min().copied())
    }
}

/// Bound of one web statement of the executor (completion, failure record).
const WEB_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Backoff of a completion or failure record that could not be written: 100 ms doubling, at
/// most 5 s apart.
fn rewrite_delay(attempt: u32) -> Duration {
    let p = RetryPolicy {
        initial_interval: Duration::from_millis(100),
        max_interval: Duration::from_secs(5),
        ..RetryPolicy::default()
    };
    p.delay(attempt, p.max_interval)
}

/// How an attempt ended, before it is written.
#[derive(Debug)]
pub(crate) enum Done {
    /// In Mikro: complete the row, write the number back.
    Posted(Posted),
    /// The attempt failed: retry later or give up, as decided.
    Attempt { err: PostError, decision: Decision },
}

/// A finished attempt waiting for the completer to write its outcome.
#[derive(Debug)]
pub(crate) struct Completion {
    pub job: Job,
    pub done: Done,
}

impl Completion {
    fn outcome(&self) -> Outcome {
        match &self.done {
            Done::Posted(p) => Outcome::Completed {
                seri: p.seri.clone(),
                sira: p.sira,
                posted: self.job.posted.clone(),
            },
            Done::Attempt {
                err,
                decision: Decision::Retry { delay },
            } => Outcome::Retry {
                delay: *delay,
                message: err.to_string(),
            },
            Done::Attempt {
                decision: Decision::Fail { message },
                ..
            } => Outcome::Failed {
                message: message.clone(),
            },
        }
    }
}

/// Shared state of the job tasks.
pub(crate) struct ExecCtx<S> {
    pub sink: S,
    pub web: WebPool,
    pub worker_name: String,
    pub policy: RetryPolicy,
    pub metrics: Arc<Metrics>,
    pub hooks: ExecHooks,
    pub completions: mpsc::UnboundedSender<Completion>,
    /// Longest a posting may take before it counts as a transient failure.
    pub posting_timeout: Duration,
    /// Rows held by this worker.
    pub held: Held,
}

/// What a job task reports back to the worker loop.
#[derive(Debug)]
pub(crate) struct JobDone {
    /// Set when the job was scheduled for a retry: when it becomes due.
    pub retry_at: Option<Instant>,
}

/// Marks in the row that its posting starts (a row whose lease expired before: if this worker
/// dies now, the rescuer charges the expiry to this row). Best effort: on failure the expiry is
/// just not charged.
async fn mark_posting<S>(ctx: &ExecCtx<S>, job: &Job) {
    let mark = async {
        let c = ctx
            .web
            .get()
            .await
            .map_err(|e| QueueError::Pool(crate::db::pool_error_text(&e)))?;
        store::mark_posting(&c, &ctx.worker_name, job.id).await
    };
    if let Err(e) = bounded(mark).await {
        tracing::warn!(error = %e, "cannot mark the posting of a row that crashed a worker before");
    }
}

/// The text of a panic payload.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".into()
    }
}

/// Runs one job to its outcome (posted → completer; failed attempt → retry or failed).
pub(crate) async fn execute<S: Sink>(ctx: Arc<ExecCtx<S>>, job: Job) -> JobDone {
    let span = tracing::info_span!("job", queue_id = %job.id, kind = job.kind.as_str(),
        web_id = %job.entity_id, attempt = job.attempt);
    async move {
        let id = job.id;
        if job.lease_expiries > 0 {
            mark_posting(&ctx, &job).await;
        }
        let posting = AssertUnwindSafe(ctx.sink.post(&job)).catch_unwind();
        ctx.held.posting(id, Some(Instant::now()));
        let outcome = tokio::time::timeout(ctx.posting_timeout, posting).await;
        ctx.held.posting(id, None);
        let mut result = match outcome {
            Ok(Ok(r)) => r,
            Ok(Err(panic)) => {
                let what = panic_text(panic.as_ref());
                tracing::error!(panic = %what, "posting panicked");
                Metrics::inc(&ctx.metrics.panics);
                // Counted like a data error (a few attempts, then failed): a panic that depends
                // on the document would recur on every attempt.
                Err(PostError::Data(format!(
                    "mikro-sync panicked while posting this document: {what} (a bug: report it \
                     with this queue row; after an upgrade set status = 'pending' to retry)"
                )))
            }
            Err(_) => {
                Metrics::inc(&ctx.metrics.posting_timeouts);
                Err(PostError::Transient(format!(
                    "posting did not finish within {:?} (MIKRO_SYNC_POSTING_TIMEOUT); retried, \
                     the ERP ledger keeps it exactly-once",
                    ctx.posting_timeout
                )))
            }
        };
        if result.is_ok() && take_one(&ctx.hooks.fail_after_erp_commit) {
            result = Err(PostError::Transient(
                "injected failure after the ERP commit (test hook)".into(),
            ));
        }
        match result {
            Ok(posted) => {
                let e2e = (chrono::Utc::now() - job.created_at)
                    .to_std()
                    .unwrap_or_default();
                ctx.metrics.end_to_end_latency.observe(e2e);
                tracing::debug!(seri = %posted.seri, sira = posted.sira,
                    already_posted = posted.already_posted, "posted");
                let done = Done::Posted(posted);
                if ctx.completions.send(Completion { job, done }).is_err() {
                    ctx.held.remove(&id);
                    tracing::error!("completer gone; the lease will expire and the row be retried");
                }
                JobDone { retry_at: None }
            }
            Err(err) => {
                let elapsed = (job.claimed_at - job.first_attempt_at)
                    .to_std()
                    .unwrap_or_default();
                let decision = ctx.policy.decide(&err, job.attempt, elapsed);
                let retry_at = match &decision {
                    Decision::Retry { delay } => Some(Instant::now() + *delay),
                    Decision::Fail { .. } => None,
                };
                // The completer writes it with the completions; the row stays held (its lease
                // renewed) until then.
                let done = Done::Attempt { err, decision };
                if ctx.completions.send(Completion { job, done }).is_err() {
                    ctx.held.remove(&id);
                    tracing::error!("completer gone; the lease will expire and the row be retried");
                }
                JobDone { retry_at }
            }
        }
    }
    .instrument(span)
    .await
}

/// How long the completer waits for more finished documents before writing a batch.
const COMPLETE_LINGER: std::time::Duration = std::time::Duration::from_millis(2);

/// Most outcomes written by one statement.
const MAX_BATCH: usize = 1000;

/// What the completer needs besides the channel.
pub(crate) struct Completer {
    pub web: WebPool,
    pub held: Held,
    pub worker_name: String,
    /// After the channel closed, how long outcomes that could not be written are retried.
    pub finish_for: Duration,
    /// How long a failed attempt's record is retried before the row is left to its lease (a
    /// completion is retried for as long as the worker runs: the document is in Mikro).
    pub record_retry_for: Duration,
    pub metrics: Arc<Metrics>,
    pub hooks: ExecHooks,
}

/// The completer task: writes every outcome (completions and failed attempts alike) in batches
/// until the channel closes (all job tasks and the worker dropped their senders), so a graceful
/// shutdown flushes everything. An outcome that cannot be written is retried by this worker with
/// backoff (its row stays held, so its lease is renewed); after the channel closed, for at most
/// `finish_for`.
pub(crate) async fn run_completer(c: Completer, mut rx: mpsc::UnboundedReceiver<Completion>) {
    let c = Arc::new(c);
    let mut batch: Vec<Completion> = Vec::with_capacity(MAX_BATCH);
    let mut own: Option<deadpool_postgres::ClientWrapper> = None;
    let mut retrying: tokio::task::JoinSet<()> = tokio::task::JoinSet::new();
    while let Some(first) = rx.recv().await {
        batch.push(first);
        // Under load documents finish every few milliseconds: waiting briefly for the next ones
        // turns one statement per document into one per several. The wait only delays the
        // web-side mark (the number is in Mikro already).
        // (tokio's timeout polls the receive first, so outcomes already queued are taken even
        // after the deadline.)
        // With no posting running, no outcome is coming: a lone document's mark goes at once.
        let linger = if c.held.any_posting() {
            COMPLETE_LINGER
        } else {
            Duration::ZERO
        };
        let deadline = tokio::time::Instant::now() + linger;
        while batch.len() < MAX_BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(c)) => batch.push(c),
                Ok(None) | Err(_) => break,
            }
        }
        let first_try = if take_one(&c.hooks.fail_completion) {
            Err(QueueError::Pool(
                "injected completion failure (test hook)".into(),
            ))
        } else {
            match bounded(own_client(&c.web, &mut own)).await {
                Ok(client) => bounded(finish_batch(client, &c.worker_name, &batch)).await,
                Err(e) => Err(e),
            }
        };
        match first_try {
            Ok(_) => {
                for done in batch.drain(..) {
                    written(&c, &done, 0);
                }
            }
            Err(e) => {
                // Broken or not: the next batch starts on a fresh connection.
                own = None;
                tracing::warn!(error = %e, rows = batch.len(),
                    "batched completion failed; writing one by one, retrying with backoff");
                for done in batch.drain(..) {
                    retrying.spawn(write_until_written(c.clone(), done));
                }
            }
        }
        while retrying.try_join_next().is_some() {}
    }
    if !retrying.is_empty() {
        let all = async { while retrying.join_next().await.is_some() {} };
        if tokio::time::timeout(c.finish_for, all).await.is_err() {
            tracing::error!(rows = retrying.len(),
                "stopping with completions not written; their rows return after their lease and are completed from the ERP ledger");
            retrying.abort_all();
        }
    }
}

/// A web call of the executor, bounded by [`WEB_CALL_TIMEOUT`].
async fn bounded<T>(f: impl Future<Output = Result<T, QueueError>>) -> Result<T, QueueError> {
    match tokio::time::timeout(WEB_CALL_TIMEOUT, f).await {
        Ok(r) => r,
        Err(_) => Err(QueueError::Pool(format!(
            "no answer from the web database within {WEB_CALL_TIMEOUT:?}"
        ))),
    }
}

/// Writes one outcome, retrying with backoff: a completion until it is written (the document is
/// in Mikro: it is never marked failed), a failed attempt for `record_retry_for` (then its
/// lease returns the row). The row stays held meanwhile.
async fn write_until_written(c: Arc<Completer>, done: Completion) {
    let span = tracing::info_span!("job", queue_id = %done.job.id, kind = done.job.kind.as_str(),
        web_id = %done.job.entity_id);
    async move {
        let give_up = Instant::now() + c.record_retry_for;
        let mut n = 0u32;
        loop {
            let r = if take_one(&c.hooks.fail_completion) {
                Err(QueueError::Pool("injected completion failure (test hook)".into()))
            } else {
                bounded(finish_pooled(&c.web, &c.worker_name, std::slice::from_ref(&done))).await
            };
            match r {
                Ok(_) => {
                    written(&c, &done, n);
                    return;
                }
                Err(e) if matches!(done.done, Done::Attempt { .. }) && Instant::now() >= give_up => {
                    tracing::error!(error = %e, "cannot record the failed attempt; the lease will expire and the row be retried");
                    c.held.remove(&done.job.id);
                    return;
                }
                Err(e) => {
                    n += 1;
                    let delay = rewrite_delay(n);
                    if matches!(done.done, Done::Posted(_)) {
                        Metrics::inc(&c.metrics.completion_retries);
                        if n == 1 || n.is_multiple_of(20) {
                            tracing::warn!(error = %e, attempt = n, retry_in_ms = delay.as_millis() as u64,
                                "cannot mark the posted document completed; retrying (it is in Mikro)");
                        }
                    } else if n == 1 {
                        tracing::warn!(error = %e, "cannot record the failed attempt; retrying");
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
    .instrument(span)
    .await
}

/// Counts and logs an outcome once it is written (after `retries` failed writes), and lets go
/// of its row.
fn written(c: &Completer, done: &Completion, retries: u32) {
    let job = &done.job;
    let span = tracing::info_span!("job", queue_id = %job.id, kind = job.kind.as_str(),
        web_id = %job.entity_id);
    let _g = span.enter();
    match &done.done {
        Done::Posted(p) => {
            if retries > 0 {
                tracing::info!(attempts = retries + 1, "completion written after retrying");
            }
            Metrics::inc(&c.metrics.posted);
            if p.already_posted {
                Metrics::inc(&c.metrics.already_posted);
            }
            tracing::info!(seri = %p.seri, sira = p.sira, already_posted = p.already_posted,
                "completed");
        }
        Done::Attempt {
            err,
            decision: Decision::Retry { delay },
        } => {
            Metrics::inc(&c.metrics.retries);
            let class = match err {
                PostError::Transient(_) => "transient",
                PostError::Data(_) => "data",
                PostError::NotReady(_) => "not ready",
            };
            if matches!(err, PostError::Transient(_)) && crate::db::erp_unreachable() {
                // The outage has its own WARN (crate::db::ErpHealth); not one per document.
                tracing::debug!(error = %err, class, retry_in_ms = delay.as_millis() as u64,
                    "attempt failed while the ERP is unreachable; retrying later");
            } else {
                tracing::warn!(error = %err, class, retry_in_ms = delay.as_millis() as u64,
                    "attempt failed; retrying later");
            }
        }
        Done::Attempt {
            decision: Decision::Fail { message },
            ..
        } => {
            Metrics::inc(&c.metrics.failed);
            tracing::error!(error = %message,
                "document failed; fix it, then set status = 'pending' to retry");
        }
    }
    c.held.remove(&job.id);
}

/// The completer's own connection, taken out of the pool (so its settings never reach another
/// pool user) and named `mikro-sync completer` in `pg_stat_activity`. A batch that fails on it
/// drops it; the next batch takes a fresh one. Like every pooled connection it plans
/// generically ([`crate::db::WEB_SESSION_SQL`]), which matters most here: with custom plans
/// PostgreSQL re-plans [`store::FINISH_SQL`] on every call (it sees the arrays' lengths), and
/// that planning, three UPDATEs over CTEs, costs about as much as running it.
async fn own_client<'a>(
    web: &WebPool,
    own: &'a mut Option<deadpool_postgres::ClientWrapper>,
) -> Result<&'a deadpool_postgres::ClientWrapper, QueueError> {
    let client = match own.take() {
        Some(client) => client,
        None => {
            let pooled = web
                .get()
                .await
                .map_err(|e| QueueError::Pool(crate::db::pool_error_text(&e)))?;
            let client = deadpool_postgres::Object::take(pooled);
            client
                .batch_execute("SET application_name = 'mikro-sync completer'")
                .await
                .map_err(QueueError::Web)?;
            client
        }
    };
    Ok(own.insert(client))
}

/// [`finish_batch`] on a connection from the pool (the one-by-one fallback).
async fn finish_pooled(
    web: &WebPool,
    worker: &str,
    batch: &[Completion],
) -> Result<u64, QueueError> {
    let client = web
        .get()
        .await
        .map_err(|e| QueueError::Pool(crate::db::pool_error_text(&e)))?;
    finish_batch(&client, worker, batch).await
}

async fn finish_batch(
    client: &deadpool_postgres::ClientWrapper,
    worker: &str,
    batch: &[Completion],
) -> Result<u64, QueueError> {
    let outcomes: Vec<Outcome> = batch.iter().map(Completion::outcome).collect();
    let pairs: Vec<(Uuid, &Outcome)> = batch.iter().map(|c| c.job.id).zip(&outcomes).collect();
    store::finish(client, worker, &pairs).await
}
