//! The rescuer: rows whose worker died (or hung) while processing them go back to `pending`.
//!
//! A worker holds each claimed row through a lease (`lease_until`) that it renews until the
//! row's outcome is written (see `worker.rs`). When a worker is killed (kill -9, power loss,
//! network gone) or wedged, its leases run out and the rescuer of any live worker re-queues the
//! rows. The posting may have reached Mikro before the crash; the retry then finds the ledger
//! row and only completes the web side, so a rescue never double-posts.
//!
//! Poison pills: `sync_queue.lease_expiries` counts the rescues charged to a row. The first is
//! charged to every row the dead worker held (nothing tells which one it was posting); once a
//! row has one, the worker marks the start of each posting of it (`posting_started_at`, one
//! extra statement for such rows only), and later rescues are charged only when that mark says
//! it was being posted — so the rows that merely sat in a crashing worker's buffer are not
//! failed with the one that crashes it. The first rescue makes the row due at once (the worker
//! most likely died of something else); later ones back off exponentially
//! (`initial * 2^(n-2)`, at most `max`). The rescue that reaches the limit
//! (`MIKRO_SYNC_MAX_LEASE_EXPIRIES`, default 3) marks the document `failed` with a message saying
//! it crashed or hung the worker, so one document cannot take the daemon down forever; the
//! operator's `status = 'pending'` starts the count again. A document already in Mikro (the
//! crash came after the ERP commit) may end `failed` this way too: its retry completes it from
//! the ledger without posting again.
//!
//! The message says whether the worker is gone (none of its rows has a live lease) or still
//! alive (it renews other rows, so this one hung or could not be renewed).

use std::time::Duration;

use uuid::Uuid;

use super::QueueError;

/// Backoff of rescued rows (from the retry policy).
#[derive(Debug, Clone, Copy)]
pub struct RescueBackoff {
    /// Delay after the second rescue (the first is retried at once).
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
}

/// One rescued row.
#[derive(Debug, Clone)]
pub struct Rescued {
    /// `sync_queue.id`.
    pub id: Uuid,
    /// The document's id.
    pub entity_id: Uuid,
    /// True when it ended `failed` (a poison pill), false when re-queued.
    pub failed: bool,
    /// The message stored in `error_message`.
    pub message: String,
}

const RESCUE_SQL: &str = "\
WITH expired AS (
    SELECT q.id, q.claimed_by, q.claimed_at,
           q.lease_expiries + CASE WHEN q.lease_expiries = 0 OR q.posting_started_at IS NOT NULL
                                   THEN 1 ELSE 0 END AS n,
           EXISTS (SELECT 1 FROM ONLY sync_queue o
                    WHERE o.claimed_by = q.claimed_by AND o.status = 'processing'
                      AND o.lease_until >= clock_timestamp()) AS worker_alive
      FROM ONLY sync_queue q
     WHERE q.status = 'processing'
       AND (q.lease_until IS NULL OR q.lease_until < clock_timestamp())
     FOR UPDATE OF q SKIP LOCKED
)
UPDATE ONLY sync_queue s
   SET lease_expiries = e.n,
       status = CASE WHEN $1 > 0 AND e.n >= $1 THEN 'failed' ELSE 'pending' END,
       processed_at = CASE WHEN $1 > 0 AND e.n >= $1 THEN now() END,
       next_attempt_at = clock_timestamp() + make_interval(secs =>
           CASE WHEN e.n <= 1 THEN 0 ELSE least($2 * power(2, least(e.n - 2, 30)), $3) END),
       error_message = CASE
           WHEN $1 > 0 AND e.n >= $1 THEN format(
               'the worker crashed or hung while posting this document: its lease expired %s '
               'times (last held by %s, claimed %s); it is set aside so the documents behind it '
               'go on. Look in that worker''s log (journalctl -u mikro-sync) around that time '
               'for a panic, a kill or a hang, fix the cause, then set status = ''pending'' to '
               'retry', e.n, coalesce(e.claimed_by, '?'),
               coalesce(to_char(e.claimed_at, 'YYYY-MM-DD HH24:MI:SS TZ'), '?'))
           WHEN e.claimed_by IS NULL THEN
               'lease expired: the row was left in processing without a worker; retried'
           WHEN e.worker_alive THEN format(
               'lease expired: worker %s is alive but did not renew this row (its posting hung '
               'or it could not reach this database); retried (%s of %s)', e.claimed_by, e.n,
               CASE WHEN $1 > 0 THEN $1::text ELSE 'unlimited' END)
           ELSE format(
               'lease expired: worker %s is gone (stopped, killed or cut off while processing); '
               'retried (%s of %s)', e.claimed_by, e.n,
               CASE WHEN $1 > 0 THEN $1::text ELSE 'unlimited' END)
       END,
       claimed_by = NULL, claimed_at = NULL, lease_until = NULL, posting_started_at = NULL
  FROM expired e
 WHERE s.id = e.id
RETURNING s.id, s.entity_id, s.status = 'failed', s.error_message";

/// Re-queues (or, past `max_expiries`, fails) every `processing` row whose lease has expired
/// (or that has none — left by the old tool or by hand).
pub async fn rescue_expired(
    client: &tokio_postgres::Client,
    max_expiries: u32,
    backoff: RescueBackoff,
) -> Result<Vec<Rescued>, QueueError> {
    let max = i32::try_from(max_expiries).unwrap_or(i32::MAX);
    let rows = client
        .query(
            RESCUE_SQL,
            &[
                &max,
                &backoff.initial.as_secs_f64(),
                &backoff.max.as_secs_f64(),
            ],
        )
        .await
        .map_err(QueueError::Web)?;
    rows.iter()
        .map(|r| {
            Ok(Rescued {
                id: r.try_get(0)?,
                entity_id: r.try_get(1)?,
                failed: r.try_get(2)?,
                message: r.try_get(3)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(QueueError::Web)
}
