//! The worker's run loop: listen, drain, idle, and shut down gracefully.
//!
//! ```text
//!   connect LISTEN ──► drain ──► exhausted? ──► take idle lock ──► drain once more ──► wait
//!        ▲              ▲                                                          │
//!        │              └──── notification / poll tick / slot freed / rescue ◄─────┘
//!        └──── connection lost (reconnect with backoff, then drain) ◄──────────────┘
//! ```
//!
//! * Draining claims due rows in batches (`claimer`) up to `concurrency` documents in flight;
//!   each runs in its own task (`executor`). Rows claimed ahead wait in a buffer sized from the
//!   measured claim round trip, and a row whose series is not being posted starts first
//!   (`schedule`). While draining, the worker does not hold the idle
//!   lock, so web writers skip their NOTIFY (their rows are picked up by this drain).
//! * When a claim comes back short (nothing more is due), the worker takes the idle lock
//!   (which waits for writers that skipped their notify to commit), claims once more, and waits
//!   for a notification, a freed slot, the next backoff expiry or the poll tick (default 5 s,
//!   the safety net). Many notifications coalesce into one drain.
//! * Every `lease / 3` the leases of in-flight rows are renewed; every `rescue_interval` rows
//!   whose lease expired (a dead worker's) are put back; every `stats_interval` the queue
//!   statistics are logged.
//! * On shutdown the worker stops claiming, lets in-flight documents finish (renewing their
//!   leases), flushes the completions and returns.
//! * Nothing in the loop waits without a bound: every web call of the loop (claim, lease
//!   renewal, rescue, statistics) has [`LOOP_WEB_TIMEOUT`], every posting `posting_timeout`. The
//!   loop never waits on the LISTEN connection at all: its calls (going idle or busy, the ping)
//!   run in the connection's own task, each within `listen_timeout`, and their answers come back
//!   as events, so a silently dead connection leaves the loop polling, posting and renewing.
//!   Each turn of the loop that finds no posting stuck past its timeout counts in
//!   `Metrics::loop_turns`, which feeds the systemd watchdog.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use uuid::Uuid;

use super::executor::{self, ExecCtx, ExecHooks, Held, JobDone, Sink};
use super::metrics::Metrics;
use super::notifier::{
    ClaimAs, IdleOutcome, IdleStep, ListenConnect, ListenHandle, Listener, Reply,
};
use super::retry::RetryPolicy;
use super::schedule::{self, Pace, Ready, SeriesKey};
use super::{store, Job, QueueError};
use crate::config::{PostingConfig, WorkerSettings};
use crate::db::WebPool;
use crate::shutdown::Shutdown;

/// Everything the worker can be told. `Default` is the production setting except `name`,
/// which defaults to `host:pid:random`.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Recorded in `sync_queue.claimed_by`; unique per worker instance.
    pub name: String,
    /// Most documents in flight at once (size the ERP pool to match).
    pub concurrency: usize,
    /// Most rows claimed by one statement.
    pub batch_size: usize,
    /// Claimed rows kept ready beyond the `concurrency` in flight (`None`: automatic, sized
    /// from the measured claim round trip and posting time, between `concurrency` and
    /// `batch_size`; see `schedule`). Under load a freed slot then starts the next document at
    /// once, and the worker claims only when this buffer has run below half, several rows per
    /// statement, instead of one claim statement per finished document. Buffered rows hold a
    /// lease like in-flight ones (renewed, released on shutdown, rescued if the worker dies).
    /// `Some(0)` turns it off.
    pub prefetch: Option<usize>,
    /// Safety-net poll interval (also the idle ping interval of the LISTEN connection).
    pub poll_interval: Duration,
    /// Listen for notifications (false = poll-only, for comparison benchmarks).
    pub listen: bool,
    /// After a drain that found work, keep polling this long (every `linger_step`) before
    /// going idle, so a steady stream of writes does not make every writer NOTIFY. Zero
    /// disables it.
    pub linger: Duration,
    /// Poll step while lingering.
    pub linger_step: Duration,
    /// How long a claim is valid without renewal; a dead worker's rows return after this.
    pub lease: Duration,
    /// How often to look for expired leases.
    pub rescue_interval: Duration,
    /// How often to log the queue statistics.
    pub stats_interval: Duration,
    /// Upper bound of the LISTEN reconnect backoff.
    pub reconnect_max: Duration,
    /// Longest wait for one call on the LISTEN connection (going idle or busy, the idle ping);
    /// past it the connection counts as dead and is reopened.
    pub listen_timeout: Duration,
    /// Longest one posting may take; past it the attempt is a transient failure.
    pub posting_timeout: Duration,
    /// Lease expiries (the worker crashed or hung while holding the row) after which a document
    /// ends `failed` instead of being re-queued again. 0 = never.
    pub max_lease_expiries: u32,
    /// Backoff and give-up policy for failed attempts.
    pub retry: RetryPolicy,
    /// Test hooks (off in production).
    pub hooks: ExecHooks,
    /// Counters the exporter reads.
    pub metrics: Arc<Metrics>,
}

impl Default for WorkerOptions {
    /// The options of the default configuration.
    fn default() -> Self {
        WorkerOptions::from_settings(&WorkerSettings::default())
    }
}

impl WorkerOptions {
    /// The options the worker settings configure (the daemon's); the rest are built-in bounds
    /// and test knobs.
    pub fn from_settings(s: &WorkerSettings) -> WorkerOptions {
        WorkerOptions {
            name: default_worker_name(),
            concurrency: s.concurrency,
            batch_size: s.batch_size,
            prefetch: s.prefetch,
            poll_interval: s.poll_interval,
            listen: true,
            linger: Duration::from_millis(20),
            linger_step: Duration::from_millis(1),
            lease: Duration::from_secs(30),
            rescue_interval: Duration::from_secs(5),
            stats_interval: s.stats_interval,
            reconnect_max: Duration::from_secs(30),
            listen_timeout: Duration::from_secs(10),
            posting_timeout: s.posting_timeout,
            max_lease_expiries: s.max_lease_expiries,
            retry: RetryPolicy::from_settings(s),
            hooks: ExecHooks::default(),
            metrics: Arc::new(Metrics::default()),
        }
    }
}

/// `host:pid:xxxx` — tells an operator which machine and process holds a row.
pub fn default_worker_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "localhost".into());
    let tag: u16 = rand::random();
    format!("{host}:{}:{tag:04x}", std::process::id())
}

/// What a worker run did (counted by this run).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Rows claimed.
    pub claimed: u64,
    /// Documents completed.
    pub posted: u64,
    /// Documents that ended `failed`.
    pub failed: u64,
    /// Attempts scheduled for a retry.
    pub retries: u64,
}

/// The web→ERP worker. Build it with [`Worker::new`], run it with [`Worker::run`].
pub struct Worker<S: Sink> {
    web: WebPool,
    listen: Option<Arc<dyn ListenConnect>>,
    sink: S,
    opts: WorkerOptions,
}

impl<S: Sink> Worker<S> {
    /// A worker draining `sync_queue` through `web` (a pool: claims, completions, posting
    /// reads), woken through connections opened by `listen`, posting into `sink`.
    pub fn new(web: WebPool, listen: Arc<dyn ListenConnect>, sink: S, opts: WorkerOptions) -> Self {
        Worker {
            web,
            listen: Some(listen),
            sink,
            opts,
        }
    }

    /// A worker without a LISTEN connection: polls every `poll_interval` only (comparison
    /// benchmarks, or databases behind a pooler that cannot LISTEN).
    pub fn new_poll_only(web: WebPool, sink: S, mut opts: WorkerOptions) -> Self {
        opts.listen = false;
        Worker {
            web,
            listen: None,
            sink,
            opts,
        }
    }

    /// Runs until `shutdown` fires; then stops claiming, finishes in-flight documents and
    /// returns. Errors only for a broken setup (the queue table missing); connection losses
    /// are retried.
    pub async fn run(self, shutdown: Shutdown) -> Result<WorkerReport, QueueError> {
        self.run_inner(shutdown, false).await
    }

    /// Drains every due row, waits for them to finish, and returns (`sync-bidirectional`).
    pub async fn run_until_idle(self) -> Result<WorkerReport, QueueError> {
        self.run_inner(Shutdown::never(), true).await
    }

    async fn run_inner(
        self,
        mut shutdown: Shutdown,
        until_idle: bool,
    ) -> Result<WorkerReport, QueueError> {
        let Worker {
            web,
            listen,
            sink,
            opts,
        } = self;
        let listen = if opts.listen { listen } else { None };
        let mut opts = opts;
        opts.concurrency = opts.concurrency.max(1);
        opts.poll_interval = opts.poll_interval.max(Duration::from_millis(10));
        let metrics = opts.metrics.clone();
        let start = snapshot(&metrics);
        let (ctx_tx, ctx_rx) = mpsc::unbounded_channel();
        let held = Held::default();
        let mut completer = tokio::spawn(executor::run_completer(
            executor::Completer {
                web: web.clone(),
                held: held.clone(),
                worker_name: opts.name.clone(),
                finish_for: opts.lease,
                record_retry_for: opts.lease * 4,
                metrics: metrics.clone(),
                hooks: opts.hooks.clone(),
            },
            ctx_rx,
        ));
        let ctx = Arc::new(ExecCtx {
            sink,
            web: web.clone(),
            worker_name: opts.name.clone(),
            policy: opts.retry.clone(),
            metrics: metrics.clone(),
            hooks: opts.hooks.clone(),
            completions: ctx_tx,
            posting_timeout: opts.posting_timeout.max(Duration::from_millis(10)),
            held: held.clone(),
        });
        let claim_as = ClaimAs {
            worker: opts.name.clone(),
            lease: opts.lease,
            documents: ctx.sink.documents().cloned().map(Arc::new),
        };
        tracing::info!(worker = %opts.name, concurrency = opts.concurrency,
            listen = listen.is_some(), "worker started");

        let mut st = LoopState {
            inflight: JoinSet::new(),
            tasks: HashMap::new(),
            busy: HashMap::new(),
            pace: Pace::default(),
            isolated: None,
            held,
            ready: VecDeque::new(),
            listener: None,
            connecting: None,
            ever_connected: false,
            reconnect_attempt: 0,
            reconnect_at: Instant::now(),
            next_wake: Instant::now() + opts.poll_interval,
            linger_until: None,
            retry_wake: None,
        };
        let mut need_drain = true;
        let mut exhausted = false;
        // Zero from a configuration would make `interval` panic; clamp to something sane.
        let floor = Duration::from_millis(10);
        let mut heartbeat = tokio::time::interval((opts.lease / 3).max(floor));
        let mut rescue = tokio::time::interval(opts.rescue_interval.max(floor));
        let mut stats_tick = tokio::time::interval(opts.stats_interval.max(floor));
        for t in [&mut heartbeat, &mut rescue, &mut stats_tick] {
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        let mut result = Ok(());

        loop {
            if shutdown.is_shutdown() {
                break;
            }
            st.count_turn(&opts, &metrics);
            // LISTEN connection upkeep: on every (re)connect, drain.
            if let Some(connector) = &listen {
                if st.listener.as_ref().is_some_and(|l| l.is_closed()) {
                    tracing::warn!("LISTEN connection closed; reconnecting");
                    st.drop_listener(&metrics);
                }
                if st.listener.is_none()
                    && st.connecting.is_none()
                    && Instant::now() >= st.reconnect_at
                {
                    // In its own task: a connect that gets no answer (a blackholed link) must
                    // not stop the loop (lease renewal, postings, polls) for its whole bound,
                    // attempt after attempt. The loop polls meanwhile.
                    let connector = connector.clone();
                    let (m, timeout) = (metrics.clone(), opts.listen_timeout);
                    // Opening a session (fork, authentication) may take longer than a call.
                    let bound = opts.listen_timeout.max(crate::db::WEB_CONNECT_TIMEOUT);
                    st.connecting = Some(tokio::spawn(async move {
                        let connect = Listener::connect(connector.as_ref(), m, timeout);
                        tokio::time::timeout(bound, connect)
                            .await
                            .unwrap_or(Err(QueueError::ListenTimeout))
                    }));
                }
            }

            if need_drain {
                need_drain = false;
                Metrics::inc(&metrics.drains);
                let drained = tokio::time::timeout(
                    LOOP_WEB_TIMEOUT,
                    drain(&web, &opts, &ctx, &mut st, &metrics, until_idle),
                )
                .await
                .unwrap_or_else(|_| {
                    Err(QueueError::Pool(format!(
                        "no answer from the web database within {LOOP_WEB_TIMEOUT:?}"
                    )))
                });
                match drained {
                    Ok(ex) => exhausted = ex,
                    Err(e) if e.is_missing_queue() => {
                        result = Err(e);
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "drain failed; retrying after the poll interval");
                        exhausted = true;
                        st.next_wake = Instant::now() + opts.poll_interval;
                    }
                }
                if until_idle && exhausted && st.inflight.is_empty() {
                    break;
                }
            }

            let wake = st.listener.as_ref().map(ListenHandle::wake);
            let reconnect_due =
                listen.is_some() && st.listener.is_none() && st.connecting.is_none();
            tokio::select! {
                _ = shutdown.recv() => break,
                Some(done) = st.inflight.join_next_with_id(), if !st.inflight.is_empty() => {
                    st.job_done(done);
                    while let Some(done) = st.inflight.try_join_next_with_id() {
                        st.job_done(done);
                    }
                    st.start_ready(&opts, &ctx, &metrics);
                    if !exhausted || (until_idle && st.inflight.is_empty()) {
                        need_drain = true;
                    }
                }
                _ = async { match &wake { Some(w) => w.notified().await, None => std::future::pending().await } } => {
                    need_drain = true;
                }
                reply = async { match st.listener.as_mut() { Some(h) => h.reply().await, None => std::future::pending().await } } => {
                    match reply {
                        None => {
                            tracing::warn!("LISTEN connection closed; reconnecting");
                            st.drop_listener(&metrics);
                        }
                        Some(r) => {
                            if let Some(e) = r.error() {
                                tracing::warn!(error = %e, "LISTEN connection failed; reconnecting");
                                st.drop_listener(&metrics);
                            } else if let Reply::Idle { want, step: Ok(step), latest } = r {
                                if let Some(ex) = st.idle_done(want, step, latest, &opts, &ctx, &metrics) {
                                    exhausted = ex;
                                }
                            }
                        }
                    }
                }
                _ = tokio::time::sleep_until(st.next_wake.into()) => {
                    need_drain = true;
                    st.next_wake = Instant::now() + opts.poll_interval;
                    let lingering = st.linger_until.is_some();
                    if let Some(h) = st.listener.as_mut().filter(|_| !lingering) {
                        h.ping();
                    }
                }
                connected = async {
                    match st.connecting.as_mut() {
                        Some(h) => h.await,
                        None => std::future::pending().await,
                    }
                } => {
                    st.connecting = None;
                    let connected = connected.unwrap_or(Err(QueueError::ListenTimeout));
                    match connected {
                        Ok(l) => {
                            if st.ever_connected {
                                Metrics::inc(&metrics.listener_reconnects);
                                tracing::info!("LISTEN connection re-established");
                            }
                            st.ever_connected = true;
                            st.reconnect_attempt = 0;
                            st.listener = Some(ListenHandle::spawn(l, claim_as.clone()));
                            metrics
                                .listener_up
                                .store(1, std::sync::atomic::Ordering::Relaxed);
                            need_drain = true;
                        }
                        Err(e) => {
                            st.reconnect_attempt += 1;
                            let delay = reconnect_delay(st.reconnect_attempt, opts.reconnect_max);
                            tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64,
                                "cannot open the LISTEN connection; polling meanwhile");
                            st.reconnect_at = Instant::now() + delay;
                        }
                    }
                }
                _ = tokio::time::sleep_until(st.reconnect_at.into()), if reconnect_due => {}
                _ = heartbeat.tick() => st.heartbeat(&web, &opts).await,
                _ = rescue.tick() => {
                    if rescue_now(&web, &opts, &metrics).await > 0 {
                        need_drain = true;
                    }
                }
                _ = stats_tick.tick() => {
                    if tokio::time::timeout(LOOP_WEB_TIMEOUT, log_stats(&web)).await.is_err() {
                        tracing::warn!("cannot read queue statistics: no answer from the web database");
                    }
                }
            }
        }

        // Graceful stop: no more claims; claimed rows not started yet go back to the queue; let
        // in-flight documents finish, renewing their leases.
        st.settle_listener(&opts, &metrics).await;
        st.release_ready(&web, &opts).await;
        if !st.inflight.is_empty() {
            tracing::info!(
                in_flight = st.inflight.len(),
                "stopping: finishing in-flight documents"
            );
        }
        while !st.inflight.is_empty() {
            st.count_turn(&opts, &metrics);
            tokio::select! {
                Some(done) = st.inflight.join_next_with_id() => st.job_done(done),
                _ = heartbeat.tick() => st.heartbeat(&web, &opts).await,
            }
        }
        if let Some(h) = st.connecting.take() {
            h.abort();
        }
        st.listener = None;
        metrics
            .listener_up
            .store(0, std::sync::atomic::Ordering::Relaxed);
        // The completer writes what is left (retrying failed completions for at most a lease);
        // the leases of those rows are renewed until it is done.
        drop(ctx);
        loop {
            st.count_turn(&opts, &metrics);
            tokio::select! {
                _ = &mut completer => break,
                _ = heartbeat.tick() => st.heartbeat(&web, &opts).await,
            }
        }
        let end = snapshot(&metrics);
        let report = WorkerReport {
            claimed: end.claimed - start.claimed,
            posted: end.posted - start.posted,
            failed: end.failed - start.failed,
            retries: end.retries - start.retries,
        };
        tracing::info!(?report, "worker stopped");
        result.map(|_| report)
    }
}

/// Bound of each web call of the loop (a drain's claims, lease renewal, rescue, statistics).
pub const LOOP_WEB_TIMEOUT: Duration = Duration::from_secs(30);

/// A posting running this much longer than `posting_timeout` means its timeout could not fire
/// (a sink blocking its thread): the loop stops counting turns, so the watchdog starves.
const STUCK_GRACE: Duration = Duration::from_secs(5);

/// A job task's row.
struct Slot {
    id: Uuid,
    series: Option<SeriesKey>,
    started: Instant,
}

struct LoopState {
    inflight: JoinSet<JobDone>,
    /// Each job task's row (a task that failed has no `JobDone` to say it).
    tasks: HashMap<tokio::task::Id, Slot>,
    /// Series being posted, with how many of their documents are in flight.
    busy: HashMap<SeriesKey, usize>,
    /// Measured claim and posting times (the automatic prefetch).
    pace: Pace,
    /// The job task of a row that crashed or hung a worker before, while it runs: such a row is
    /// posted alone, so a crash during it is charged to it and not to bystanders (see
    /// `rescuer`).
    isolated: Option<tokio::task::Id>,
    /// Rows this worker holds: buffered, in flight, posted and not yet completed (their leases
    /// are renewed).
    held: Held,
    /// Claimed rows waiting for a free slot (see [`WorkerOptions::prefetch`]).
    ready: VecDeque<Ready>,
    /// The LISTEN connection, in its own task.
    listener: Option<ListenHandle>,
    /// A LISTEN connection being opened in its own task.
    connecting: Option<tokio::task::JoinHandle<Result<Listener, QueueError>>>,
    ever_connected: bool,
    reconnect_attempt: u32,
    reconnect_at: Instant,
    next_wake: Instant,
    /// While set and in the future, the worker polls every `linger_step` instead of idling.
    linger_until: Option<Instant>,
    /// The earliest retry a finished job scheduled: its failure record may not be written yet
    /// when the next due time is read, so a wake-up computed from the database keeps it.
    retry_wake: Option<Instant>,
}

impl LoopState {
    /// Sets the next wake-up, no later than a retry still ahead.
    fn set_wake(&mut self, wake: Instant) {
        let now = Instant::now();
        self.retry_wake = self.retry_wake.filter(|w| *w > now);
        self.next_wake = match self.retry_wake {
            Some(w) => wake.min(w),
            None => wake,
        };
    }

    /// Takes the answer of an idle step: its rows, and (when no drain came after it) whether
    /// the worker is idle now (`Some(exhausted)`) and when to look again.
    fn idle_done<S: Sink>(
        &mut self,
        want: usize,
        step: IdleStep,
        latest: bool,
        opts: &WorkerOptions,
        ctx: &Arc<ExecCtx<S>>,
        metrics: &Arc<Metrics>,
    ) -> Option<bool> {
        match step.outcome {
            IdleOutcome::WritersBusy => Metrics::inc(&metrics.idle_writers_busy),
            IdleOutcome::OtherWorker => Metrics::inc(&metrics.idle_other_worker),
            IdleOutcome::Held => {}
        }
        Metrics::inc(&metrics.claims);
        let got = match step.jobs {
            Ok(jobs) => take_claimed(jobs, opts, ctx, self, metrics),
            Err(e) => {
                tracing::warn!(error = %e, "claim while going idle failed; polling");
                0
            }
        };
        if !latest {
            return None;
        }
        if got >= want {
            // More may be due: not idle after all; drain again as slots free up.
            if let Some(h) = self.listener.as_mut() {
                h.become_busy();
            }
            return Some(false);
        }
        let now = Instant::now();
        let wake = if step.outcome == IdleOutcome::WritersBusy {
            // A long writer transaction: look again soon instead of blocking.
            now + Duration::from_millis(20)
        } else {
            next_look(opts, step.next_due)
        };
        self.set_wake(wake);
        Some(true)
    }

    /// On shutdown: waits (at most `listen_timeout`) for an idle step that is out, so the rows
    /// its claim took are released with the other buffered ones instead of waiting out a lease.
    async fn settle_listener(&mut self, opts: &WorkerOptions, metrics: &Metrics) {
        let Some(mut h) = self.listener.take() else {
            return;
        };
        let deadline = tokio::time::Instant::now() + opts.listen_timeout;
        while h.idle_out() {
            match tokio::time::timeout_at(deadline, h.reply()).await {
                Ok(Some(Reply::Idle { step: Ok(step), .. })) => {
                    self.hold(step.jobs.unwrap_or_default(), None, metrics);
                }
                Ok(Some(r)) if r.error().is_none() => {}
                _ => break,
            }
        }
    }

    /// Takes claimed rows into the ready buffer (held: their leases are renewed), each with
    /// its series as `cfg` names it; returns how many.
    fn hold(&mut self, jobs: Vec<Job>, cfg: Option<&PostingConfig>, metrics: &Metrics) -> usize {
        let got = jobs.len();
        for job in jobs {
            Metrics::inc(&metrics.claimed);
            self.held.insert(job.id);
            let series = schedule::series_key(&job, cfg);
            self.ready.push_back(Ready { job, series });
        }
        got
    }

    /// Rows to keep claimed beyond those in flight (see [`WorkerOptions::prefetch`]).
    fn prefetch(&self, opts: &WorkerOptions) -> usize {
        self.pace
            .prefetch(opts.prefetch, opts.concurrency, opts.batch_size)
    }

    fn drop_listener(&mut self, metrics: &Metrics) {
        self.listener = None;
        self.reconnect_at = Instant::now();
        metrics
            .listener_up
            .store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// One turn of the loop; not counted while a posting is stuck past its timeout.
    fn count_turn(&self, opts: &WorkerOptions, metrics: &Metrics) {
        let stuck = self
            .held
            .oldest_posting()
            .is_some_and(|t| t.elapsed() > opts.posting_timeout + STUCK_GRACE);
        if !stuck {
            Metrics::inc(&metrics.loop_turns);
        }
    }

    fn job_done(&mut self, done: Result<(tokio::task::Id, JobDone), tokio::task::JoinError>) {
        match done {
            Ok((task, d)) => {
                if let Some(slot) = self.tasks.remove(&task) {
                    self.pace.slot_held(slot.started.elapsed());
                    self.free_series(slot.series);
                }
                if self.isolated == Some(task) {
                    self.isolated = None;
                }
                if let Some(at) = d.retry_at {
                    self.next_wake = self.next_wake.min(at);
                    self.retry_wake = Some(self.retry_wake.map_or(at, |w| w.min(at)));
                }
            }
            Err(e) => {
                // The posting's own panics are caught in the job; this is one outside it. The
                // row is no longer renewed: its lease expires and the rescuer re-queues it.
                if self.isolated == Some(e.id()) {
                    self.isolated = None;
                }
                let id = self.tasks.remove(&e.id()).map(|slot| {
                    self.free_series(slot.series);
                    slot.id
                });
                if let Some(id) = id {
                    self.held.remove(&id);
                }
                let queue_id = id.map(|i| i.to_string()).unwrap_or_default();
                tracing::error!(error = %e, queue_id, "job task failed; the row returns after its lease");
            }
        }
    }

    fn free_series(&mut self, series: Option<SeriesKey>) {
        if let Some(k) = series {
            if let Some(n) = self.busy.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    self.busy.remove(&k);
                }
            }
        }
    }

    /// Starts buffered rows while slots are free, a series not being posted first.
    fn start_ready<S: Sink>(
        &mut self,
        opts: &WorkerOptions,
        ctx: &Arc<ExecCtx<S>>,
        metrics: &Metrics,
    ) {
        while self.inflight.len() < opts.concurrency && self.isolated.is_none() {
            let Some(at) = schedule::pick(&self.ready, &self.busy) else {
                break;
            };
            let suspect = self.ready[at].job.lease_expiries > 0;
            if suspect && !self.inflight.is_empty() {
                break;
            }
            let Some(Ready { job, series }) = self.ready.remove(at) else {
                break;
            };
            // Web commit → claim (database clock) + time spent buffered (local clock).
            let pickup = (job.claimed_at - job.created_at)
                .to_std()
                .unwrap_or_default()
                + job.claimed_instant.elapsed();
            metrics.pickup_latency.observe(pickup);
            let id = job.id;
            let task = self.inflight.spawn(executor::execute(ctx.clone(), job));
            if let Some(k) = &series {
                *self.busy.entry(k.clone()).or_insert(0) += 1;
            }
            self.tasks.insert(
                task.id(),
                Slot {
                    id,
                    series,
                    started: Instant::now(),
                },
            );
            if suspect {
                self.isolated = Some(task.id());
            }
        }
    }

    /// Puts buffered rows back to `pending` (shutdown), so another worker takes them at once
    /// instead of after their lease.
    async fn release_ready(&mut self, web: &WebPool, opts: &WorkerOptions) {
        if self.ready.is_empty() {
            return;
        }
        let ids: Vec<Uuid> = self.ready.drain(..).map(|r| r.job.id).collect();
        for id in &ids {
            self.held.remove(id);
        }
        let release = async {
            match web.get().await {
                Ok(c) => store::release(&c, &opts.name, &ids).await,
                Err(e) => Err(QueueError::Pool(crate::db::pool_error_text(&e))),
            }
        };
        let r = tokio::time::timeout(LOOP_WEB_TIMEOUT, release)
            .await
            .unwrap_or_else(|_| Err(QueueError::Pool("no answer from the web database".into())));
        match r {
            Ok(n) => tracing::info!(rows = n, "released claimed rows that had not started"),
            Err(e) => tracing::warn!(error = %e, rows = ids.len(),
                "cannot release claimed rows that had not started; they return when their lease expires"),
        }
    }

    async fn heartbeat(&mut self, web: &WebPool, opts: &WorkerOptions) {
        if self.held.is_empty() {
            return;
        }
        let ids: Vec<Uuid> = self.held.ids();
        let renew = async {
            match web.get().await {
                Ok(c) => store::extend_leases(&c, &opts.name, &ids, opts.lease).await,
                Err(e) => Err(QueueError::Pool(crate::db::pool_error_text(&e))),
            }
        };
        match tokio::time::timeout(LOOP_WEB_TIMEOUT.min(opts.lease), renew).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, rows = ids.len(), "cannot renew leases"),
            Err(_) => tracing::warn!(
                rows = ids.len(),
                "cannot renew leases: no answer from the web database"
            ),
        }
    }
}

/// Claims until the slots are full or nothing more is due; when nothing more is due, becomes
/// the idle worker and claims once more. Returns true when the queue is exhausted.
async fn drain<S: Sink>(
    web: &WebPool,
    opts: &WorkerOptions,
    ctx: &Arc<ExecCtx<S>>,
    st: &mut LoopState,
    metrics: &Arc<Metrics>,
    until_idle: bool,
) -> Result<bool, QueueError> {
    let client = web
        .get()
        .await
        .map_err(|e| QueueError::Pool(crate::db::pool_error_text(&e)))?;
    let before = Metrics::get(&metrics.claimed);
    // Release the idle lock and claim at the same time (two connections, one round trip):
    // a writer that still saw the lock notifies (and we drain again), one that did not holds
    // its shared lock until commit, so becoming idle later waits for it. Either way its row
    // is picked up, whatever the order of the two statements.
    if let Some(h) = st.listener.as_mut() {
        h.become_busy();
    }
    // A linger poll probes before it claims: a probe that misses a row only delays it until
    // the idle step, which always claims once more under the idle lock, so nothing is missed.
    let probe = st.linger_until.is_some();
    let filled = fill(&client, opts, ctx, st, metrics, probe).await;
    let exhausted = filled?;
    if exhausted && st.listener.is_some() && !opts.linger.is_zero() {
        // Under a steady stream of writes, going idle after every burst would make every
        // writer notify (and serialise on the notify lock) between bursts. Right after work,
        // keep polling briefly instead; writers keep skipping their notify meanwhile.
        let now = Instant::now();
        if Metrics::get(&metrics.claimed) > before {
            st.linger_until = Some(now + opts.linger);
        }
        match st.linger_until {
            Some(until) if now < until => {
                st.next_wake = now + opts.linger_step;
                return Ok(true);
            }
            _ => st.linger_until = None,
        }
    }
    if exhausted && !until_idle {
        let want = claim_size(opts, st).max(1);
        if let Some(h) = st.listener.as_mut() {
            // Take the idle lock, claim once more (writers that skipped their notify have
            // committed by then) and read the next due time: one round trip, answered in the
            // loop (`LoopState::idle_done`); the poll stands until then.
            h.idle_step(want);
            st.set_wake(Instant::now() + opts.poll_interval);
            return Ok(true);
        }
    }
    if exhausted {
        let next_due = store::next_due(&client).await?;
        st.set_wake(next_look(opts, next_due));
    }
    Ok(exhausted)
}

/// When an idle worker looks again: when the next pending row is due (`next_due` from now, 1 ms
/// late so it is due by then), at the latest after the poll interval.
fn next_look(opts: &WorkerOptions, next_due: Option<Duration>) -> Instant {
    let now = Instant::now();
    let poll = now + opts.poll_interval;
    match next_due {
        Some(d) => poll.min(now + d + Duration::from_millis(1)),
        None => poll,
    }
}

/// How many rows the next claim should take: enough to fill the free slots and the prefetch
/// buffer (pinned or automatic), at most `batch_size`; 0 when the slots are full and the buffer
/// at least half full.
fn claim_size(opts: &WorkerOptions, st: &LoopState) -> usize {
    let prefetch = st.prefetch(opts);
    let free = opts.concurrency.saturating_sub(st.inflight.len());
    // Slots full: claim only to top up a buffer that ran below half.
    if free == 0 && (prefetch == 0 || st.ready.len() * 2 >= prefetch) {
        return 0;
    }
    // (Rows can wait in `ready` with slots free while a suspect row runs alone.)
    (free + prefetch)
        .saturating_sub(st.ready.len())
        .min(opts.batch_size.max(1))
}

/// Takes claimed rows into the buffer and starts what the free slots allow; how many.
fn take_claimed<S: Sink>(
    jobs: Vec<Job>,
    opts: &WorkerOptions,
    ctx: &Arc<ExecCtx<S>>,
    st: &mut LoopState,
    metrics: &Arc<Metrics>,
) -> usize {
    let got = st.hold(jobs, ctx.sink.documents(), metrics);
    st.start_ready(opts, ctx, metrics);
    got
}

/// Claims batches while slots are free. True when a claim came back short (nothing more due).
/// With `probe`, first asks whether anything is claimable and claims only if so.
async fn fill<S: Sink>(
    client: &deadpool_postgres::Client,
    opts: &WorkerOptions,
    ctx: &Arc<ExecCtx<S>>,
    st: &mut LoopState,
    metrics: &Arc<Metrics>,
    mut probe: bool,
) -> Result<bool, QueueError> {
    loop {
        st.start_ready(opts, ctx, metrics);
        let want = claim_size(opts, st);
        metrics.prefetch.store(
            st.prefetch(opts) as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        if want == 0 {
            return Ok(false);
        }
        if std::mem::take(&mut probe) && !store::claimable(client).await? {
            return Ok(true);
        }
        let claim = async {
            match ctx.sink.documents() {
                Some(cfg) => {
                    store::claim_documents(client, &opts.name, want, opts.lease, cfg).await
                }
                None => store::claim(client, &opts.name, want, opts.lease).await,
            }
        };
        tokio::pin!(claim);
        Metrics::inc(&metrics.claims);
        let sent = Instant::now();
        // A slot free with nothing to start while the claim travels: the buffer ran dry.
        let dry = |st: &LoopState| st.ready.is_empty() && st.inflight.len() < opts.concurrency;
        let mut dry_since = dry(st).then_some(sent);
        // While the claim travels (a round trip to a far database), finished documents free
        // their slots for the buffered rows.
        let jobs = loop {
            tokio::select! {
                r = &mut claim => {
                    st.pace.claim_took(sent.elapsed());
                    break r?
                }
                Some(done) = st.inflight.join_next_with_id(), if !st.inflight.is_empty() => {
                    st.job_done(done);
                    st.start_ready(opts, ctx, metrics);
                    if dry_since.is_none() && dry(st) {
                        dry_since = Some(Instant::now());
                    }
                }
            }
        };
        let dry_for = dry_since.map(|t| t.elapsed());
        let got = take_claimed(jobs, opts, ctx, st, metrics);
        if got < want {
            return Ok(true);
        }
        // Counted only when the claim came back full: rows were due while the slots waited.
        if let Some(d) = dry_for {
            metrics.starved_micros.fetch_add(
                d.as_micros().min(u64::MAX as u128) as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
    }
}

async fn rescue_now(web: &WebPool, opts: &WorkerOptions, metrics: &Metrics) -> usize {
    let delays = store::RescueBackoff {
        initial: opts.retry.initial_interval,
        max: opts.retry.max_interval,
    };
    let run = async {
        let client = web
            .get()
            .await
            .map_err(|e| QueueError::Pool(crate::db::pool_error_text(&e)))?;
        store::rescue_expired(&client, opts.max_lease_expiries, delays).await
    };
    let rescued = match tokio::time::timeout(LOOP_WEB_TIMEOUT, run).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "rescuer failed");
            return 0;
        }
        Err(_) => {
            tracing::warn!("rescuer: no answer from the web database");
            return 0;
        }
    };
    for r in &rescued {
        let span = tracing::info_span!("job", queue_id = %r.id, web_id = %r.entity_id);
        let _g = span.enter();
        if r.failed {
            Metrics::inc(&metrics.poison_pills);
            Metrics::inc(&metrics.failed);
            tracing::error!(error = %r.message, "document failed: it crashed or hung the worker");
        } else {
            Metrics::inc(&metrics.rescued);
            tracing::warn!(reason = %r.message, "lease expired; re-queued");
        }
    }
    rescued.len()
}

async fn log_stats(web: &WebPool) {
    if let Ok(c) = web.get().await {
        match store::stats(&c).await {
            Ok(s) => tracing::info!(
                pending = s.pending,
                processing = s.processing,
                completed = s.completed,
                failed = s.failed,
                due = s.due,
                "queue statistics"
            ),
            Err(e) => tracing::warn!(error = %e, "cannot read queue statistics"),
        }
    }
}

fn reconnect_delay(attempt: u32, max: Duration) -> Duration {
    let policy = RetryPolicy {
        initial_interval: Duration::from_millis(100),
        max_interval: max,
        randomization_factor: 0.25,
        ..RetryPolicy::default()
    };
    policy.delay(attempt, max)
}

struct Snap {
    claimed: u64,
    posted: u64,
    failed: u64,
    retries: u64,
}

fn snapshot(m: &Metrics) -> Snap {
    Snap {
        claimed: Metrics::get(&m.claimed),
        posted: Metrics::get(&m.posted),
        failed: Metrics::get(&m.failed),
        retries: Metrics::get(&m.retries),
    }
}
