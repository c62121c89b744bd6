//! Claiming due rows (the producer side of the worker).
//!
//! One statement claims a batch: the due `pending` rows are locked with `FOR UPDATE SKIP LOCKED`
//! (so several workers, in one process or many, never claim the same row and never wait on
//! each other) and turned into `processing` with the worker's name and a lease. The attempt is
//! counted here (`retry_count` counts attempts) and the retry window starts on the first one.
//!
//! The same statement moves the rows the web triggers wrote into `sync_queue_inbox` (the
//! index-less child table of `sync_queue`, see `sql/web/003_sync_queue.sql`) into `sync_queue`
//! itself, where the one-open-row index applies. The web app's transaction then pays for a heap
//! insert only; the indexes are paid here, off its write path.

use std::time::Duration;

use chrono::{DateTime, Utc};

use uuid::Uuid;

use super::{Job, QueueError};
use crate::posting::DocKind;

/// The claim, in one statement that also empties the inbox:
///
/// * `moved`: the rows the triggers wrote into `sync_queue_inbox` since the last claim;
/// * `due_old`: due `pending` rows of sync_queue itself, locked `FOR UPDATE SKIP LOCKED`;
/// * `picked`: the `$1` oldest (by `next_attempt_at`) of both, so the inbox never jumps the
///   queue (documents are numbered in the order they are posted);
/// * `ins`: the moved rows go into sync_queue, those picked already claimed (no second write of
///   the row just inserted). `ON CONFLICT DO NOTHING` on every unique index drops a second
///   enqueue of a document that already has an open row, as the trigger's own `ON CONFLICT`
///   did when it wrote into sync_queue. Columns an older tool added to sync_queue are not named:
///   only the trigger writes the inbox, so they hold their defaults, which the INSERT applies;
/// * `upd`: the picked rows of sync_queue itself are claimed (the moved ones are not visible to
///   it: one snapshot).
///
/// `created_at` is read as `timestamptz`: the old tool's table may have `timestamp`.
const CLAIM_SQL: &str = "\
WITH moved AS (
    DELETE FROM sync_queue_inbox RETURNING *
), due_old AS (
    SELECT id, next_attempt_at FROM ONLY sync_queue
     WHERE status = 'pending' AND next_attempt_at <= now()
     ORDER BY next_attempt_at
     LIMIT $1
     FOR UPDATE SKIP LOCKED
), picked AS (
    SELECT id FROM (
        SELECT id, next_attempt_at FROM due_old
        UNION ALL
        SELECT id, next_attempt_at FROM moved
         WHERE status = 'pending' AND next_attempt_at <= now()
    ) c
    ORDER BY next_attempt_at
    LIMIT $1
), ins AS (
    INSERT INTO sync_queue (id, entity_type, entity_id, operation, status, retry_count,
                            error_message, created_at, processed_at, next_attempt_at,
                            first_attempt_at, claimed_by, claimed_at, lease_until)
    SELECT m.id, m.entity_type, m.entity_id, m.operation,
           CASE WHEN p.id IS NULL THEN m.status ELSE 'processing' END,
           m.retry_count + CASE WHEN p.id IS NULL THEN 0 ELSE 1 END,
           m.error_message, m.created_at, m.processed_at, m.next_attempt_at,
           CASE WHEN p.id IS NULL THEN m.first_attempt_at ELSE coalesce(m.first_attempt_at, now()) END,
           CASE WHEN p.id IS NULL THEN m.claimed_by ELSE $2 END,
           CASE WHEN p.id IS NULL THEN m.claimed_at ELSE clock_timestamp() END,
           CASE WHEN p.id IS NULL THEN m.lease_until
                ELSE clock_timestamp() + make_interval(secs => $3) END
      FROM moved m LEFT JOIN picked p ON p.id = m.id
    ON CONFLICT DO NOTHING
    RETURNING id, entity_type, entity_id, retry_count, created_at, first_attempt_at, claimed_at,
              lease_expiries, (status = 'processing' AND claimed_by = $2) AS claimed
), upd AS (
    UPDATE ONLY sync_queue q
       SET status = 'processing',
           claimed_by = $2,
           claimed_at = clock_timestamp(),
           lease_until = clock_timestamp() + make_interval(secs => $3),
           retry_count = q.retry_count + 1,
           first_attempt_at = coalesce(q.first_attempt_at, now())
      FROM picked p
     WHERE q.id = p.id
    RETURNING q.id, q.entity_type, q.entity_id, q.retry_count, q.created_at,
              q.first_attempt_at, q.claimed_at, q.lease_expiries
)
SELECT id, entity_type, entity_id, retry_count, created_at::timestamptz, first_attempt_at, claimed_at,
       lease_expiries
  FROM ins WHERE claimed
UNION ALL
SELECT id, entity_type, entity_id, retry_count, created_at::timestamptz, first_attempt_at, claimed_at,
       lease_expiries
  FROM upd";

/// Claims up to `limit` due rows for `worker`, leased for `lease`, moving the inbox into
/// sync_queue in the same statement.
///
/// Several workers may claim at once: an inbox row is deleted by one of them only (the others
/// wait for its commit, then skip it), and rows of sync_queue are skipped while locked. Rows of
/// web transactions still open are not visible yet; a later claim moves them (the notify
/// protocol guarantees one follows).
pub async fn claim(
    client: &deadpool_postgres::Client,
    worker: &str,
    limit: usize,
    lease: Duration,
) -> Result<Vec<Job>, QueueError> {
    let limit = limit.max(1) as i64;
    let rows = crate::db::query_cached(client, CLAIM_SQL, &[&limit, &worker, &lease.as_secs_f64()])
        .await
        .map_err(QueueError::Web)?;
    let mut jobs = Vec::with_capacity(rows.len());
    for r in rows {
        // A column that does not decode is an error, not a panic: the claimed rows then go back
        // to pending when their lease runs out.
        let entity_type: String = r.try_get(1).map_err(QueueError::Web)?;
        let id: Uuid = r.try_get(0).map_err(QueueError::Web)?;
        let Some(kind) = DocKind::parse(&entity_type) else {
            // The CHECK constraint makes this impossible for new rows; park it loudly anyway.
            tracing::error!(queue_id = %id, entity_type, "unknown entity_type claimed; marking failed");
            client
                .execute(
                    "UPDATE ONLY sync_queue SET status = 'failed', processed_at = now(), claimed_by = NULL, \
                     lease_until = NULL, error_message = 'unknown entity_type ''' || entity_type || \
                     ''': mikro-sync posts only ''satis'' and ''tahsilat''; correct the value and set status = ''pending'', or delete the row' \
                     WHERE id = $1",
                    &[&id],
                )
                .await
                .map_err(QueueError::Web)?;
            continue;
        };
        let created_at: DateTime<Utc> = r.try_get(4).map_err(QueueError::Web)?;
        let claimed_at: DateTime<Utc> = r.try_get(6).map_err(QueueError::Web)?;
        jobs.push(Job {
            id,
            kind,
            entity_id: r.try_get(2).map_err(QueueError::Web)?,
            attempt: r.try_get::<_, i32>(3).map_err(QueueError::Web)?.max(0) as u32,
            created_at,
            first_attempt_at: r.try_get(5).map_err(QueueError::Web)?,
            claimed_at,
            claimed_instant: std::time::Instant::now(),
            lease_expiries: r.try_get::<_, i32>(7).map_err(QueueError::Web)?.max(0) as u32,
        });
    }
    Ok(jobs)
}

/// Time until the earliest pending row becomes due (zero if one is due now; None if nothing
/// is pending), measured on the database clock so client clock skew does not matter.
pub async fn next_due(client: &tokio_postgres::Client) -> Result<Option<Duration>, QueueError> {
    let row = client
        .query_one(
            "SELECT extract(epoch FROM min(next_attempt_at) - clock_timestamp())::float8 \
               FROM sync_queue WHERE status = 'pending'",
            &[],
        )
        .await
        .map_err(QueueError::Web)?;
    let secs: Option<f64> = row.get(0);
    Ok(secs.map(|s| Duration::from_secs_f64(s.max(0.0))))
}

/// Puts rows this worker claimed but never started back to `pending` (a graceful shutdown with
/// prefetched rows): the claim's attempt is taken back, and other workers are woken.
pub async fn release(
    client: &tokio_postgres::Client,
    worker: &str,
    ids: &[Uuid],
) -> Result<u64, QueueError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let n = client
        .execute(
            "UPDATE ONLY sync_queue SET status = 'pending', claimed_by = NULL, claimed_at = NULL, \
                    lease_until = NULL, next_attempt_at = now(), \
                    retry_count = greatest(retry_count - 1, 0), \
                    first_attempt_at = CASE WHEN retry_count <= 1 THEN NULL ELSE first_attempt_at END \
              WHERE id = ANY($1) AND status = 'processing' AND claimed_by = $2",
            &[&ids, &worker],
        )
        .await
        .map_err(QueueError::Web)?;
    if n > 0 {
        client
            .execute("SELECT pg_notify('mikro_sync_queue', '')", &[])
            .await
            .map_err(QueueError::Web)?;
    }
    Ok(n)
}

/// Extends the lease of the rows this worker is still working on (heartbeat).
pub async fn extend_leases(
    client: &tokio_postgres::Client,
    worker: &str,
    ids: &[Uuid],
    lease: Duration,
) -> Result<u64, QueueError> {
    if ids.is_empty() {
        return Ok(0);
    }
    client
        .execute(
            "UPDATE ONLY sync_queue SET lease_until = clock_timestamp() + make_interval(secs => $3) \
              WHERE id = ANY($1) AND status = 'processing' AND claimed_by = $2",
            &[&ids, &worker, &lease.as_secs_f64()],
        )
        .await
        .map_err(QueueError::Web)
}
