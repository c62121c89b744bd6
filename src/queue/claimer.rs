//! Claiming due rows (the producer side of the worker).
//!
//! One statement claims a batch: the due `pending` rows are locked with `FOR UPDATE SKIP LOCKED`
//! (so several workers, in one process or many, never claim the same row and never wait on
//! each other) and turned into `processing` with the worker's name and a lease. The attempt is
//! counted here (`retry_count` counts attempts) and the retry window starts on the first one.
//!
//! Before it claims, the worker moves the rows the web triggers wrote into `sync_queue_inbox`
//! (the index-less child table of `sync_queue`, see `sql/web/003_sync_queue.sql`) into
//! `sync_queue` itself, where the one-open-row index applies. The web app's transaction then
//! pays for a heap insert only; the indexes are paid here, off its write path.

use std::time::Duration;

use chrono::{DateTime, Utc};

use uuid::Uuid;

use super::{Job, QueueError};
use crate::posting::DocKind;

const CLAIM_SQL: &str = "\
WITH due AS (
    SELECT id FROM ONLY sync_queue
     WHERE status = 'pending' AND next_attempt_at <= now()
     ORDER BY next_attempt_at
     LIMIT $1
     FOR UPDATE SKIP LOCKED
)
UPDATE ONLY sync_queue q
   SET status = 'processing',
       claimed_by = $2,
       claimed_at = clock_timestamp(),
       lease_until = clock_timestamp() + make_interval(secs => $3),
       retry_count = q.retry_count + 1,
       first_attempt_at = coalesce(q.first_attempt_at, now())
  FROM due
 WHERE q.id = due.id
RETURNING q.id, q.entity_type, q.entity_id, q.retry_count, q.created_at,
          q.first_attempt_at, q.claimed_at";

/// Moves the whole inbox into `sync_queue` in one statement. `ON CONFLICT DO NOTHING` (every
/// unique index of sync_queue is an arbiter) drops an enqueue whose document already has an open
/// row — exactly what the trigger's own `ON CONFLICT` did when it wrote into sync_queue. `*` keeps
/// every column, including any an older tool added to sync_queue (the inbox inherits them).
/// Answers (rows moved, rows kept): the difference is the enqueues dropped as duplicates.
const MOVE_INBOX_SQL: &str = "\
WITH moved AS (
    DELETE FROM sync_queue_inbox RETURNING *
), kept AS (
    INSERT INTO sync_queue SELECT * FROM moved
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM kept)";

/// Moves the rows the web triggers wrote into `sync_queue_inbox` into `sync_queue`.
///
/// Several workers may move at once: a row is deleted by one of them only (the others wait for
/// its commit, then skip it). Rows of web transactions still open are not visible yet; they
/// are moved by a later claim (the notify protocol guarantees one follows).
pub async fn move_inbox(client: &deadpool_postgres::Client) -> Result<u64, QueueError> {
    let rows = crate::db::query_cached(client, MOVE_INBOX_SQL, &[])
        .await
        .map_err(QueueError::Web)?;
    let (moved, kept) = rows
        .first()
        .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)))
        .unwrap_or((0, 0));
    if moved > kept {
        tracing::info!(
            duplicates = moved - kept,
            "enqueues dropped: their documents already had an open sync_queue row"
        );
    }
    Ok(moved.max(0) as u64)
}

/// Claims up to `limit` due rows for `worker`, leased for `lease`, after moving the inbox.
///
/// The move and the claim are two statements sent back to back on one connection (one round
/// trip): PostgreSQL runs them in that order, each in its own transaction, so the claim sees
/// the moved rows. `futures::future::join` polls the move first every time, so the move's
/// request is always queued first.
pub async fn claim(
    client: &deadpool_postgres::Client,
    worker: &str,
    limit: usize,
    lease: Duration,
) -> Result<Vec<Job>, QueueError> {
    let limit = limit.max(1) as i64;
    let lease_secs = lease.as_secs_f64();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&limit, &worker, &lease_secs];
    let (moved, rows) = futures::future::join(
        move_inbox(client),
        crate::db::query_cached(client, CLAIM_SQL, &params),
    )
    .await;
    let rows = rows.map_err(QueueError::Web)?;
    // The claim ran whatever the move did: its rows are this worker's now and are processed.
    // A move that keeps failing leaves new documents in the inbox, so say what to fix.
    if let Err(e) = moved {
        tracing::error!(
            error = %e,
            "cannot move new documents from sync_queue_inbox into sync_queue; they wait there \
             until this is fixed (rights: GRANT SELECT, DELETE ON sync_queue_inbox TO <this login>; \
             `mikro-sync doctor` checks them)"
        );
    }
    let mut jobs = Vec::with_capacity(rows.len());
    for r in rows {
        let entity_type: String = r.get(1);
        let Some(kind) = DocKind::parse(&entity_type) else {
            // The CHECK constraint makes this impossible for new rows; park it loudly anyway.
            let id: Uuid = r.get(0);
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
        let created_at: DateTime<Utc> = r.get(4);
        let claimed_at: DateTime<Utc> = r.get(6);
        jobs.push(Job {
            id: r.get(0),
            kind,
            entity_id: r.get(2),
            attempt: r.get::<_, i32>(3).max(0) as u32,
            created_at,
            first_attempt_at: r.get(5),
            claimed_at,
            claimed_instant: std::time::Instant::now(),
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
