//! Queue statistics and the operator's retry, as library calls (the CLI's `status` and
//! `retry-failed` and the worker's 30 s log line use them).

use std::fmt;
use std::time::Duration;

use uuid::Uuid;

use super::QueueError;
use crate::posting::DocKind;

/// Row counts by status, plus how old the oldest due row is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Waiting (due now or backing off).
    pub pending: i64,
    /// Claimed by a worker.
    pub processing: i64,
    /// Done.
    pub completed: i64,
    /// Given up; see `error_message`.
    pub failed: i64,
    /// Edited or deleted on the web after posting (a record for the operator, not work).
    pub diverged: i64,
    /// Of `pending`: due now (not backing off).
    pub due: i64,
    /// Age of the oldest pending row (None when nothing is pending).
    pub oldest_pending_age: Option<Duration>,
}

impl fmt::Display for QueueStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pending={} (due {}) processing={} completed={} failed={} diverged={}",
            self.pending, self.due, self.processing, self.completed, self.failed, self.diverged
        )?;
        if let Some(a) = self.oldest_pending_age {
            write!(f, " oldest_pending={:.1}s", a.as_secs_f64())?;
        }
        Ok(())
    }
}

/// Reads [`QueueStats`] (one aggregate query).
pub async fn stats(client: &tokio_postgres::Client) -> Result<QueueStats, QueueError> {
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'pending'),
                    count(*) FILTER (WHERE status = 'processing'),
                    count(*) FILTER (WHERE status = 'completed'),
                    count(*) FILTER (WHERE status = 'failed'),
                    count(*) FILTER (WHERE status = 'pending' AND next_attempt_at <= now()),
                    extract(epoch FROM now() - min(created_at) FILTER (WHERE status = 'pending'))::float8,
                    count(*) FILTER (WHERE status = 'diverged')
               FROM sync_queue",
            &[],
        )
        .await
        .map_err(QueueError::Web)?;
    let age: Option<f64> = row.get(5);
    Ok(QueueStats {
        pending: row.get(0),
        processing: row.get(1),
        completed: row.get(2),
        failed: row.get(3),
        due: row.get(4),
        diverged: row.get(6),
        oldest_pending_age: age.map(|s| Duration::from_secs_f64(s.max(0.0))),
    })
}

/// Which failed rows [`retry_failed`] puts back.
#[derive(Debug, Clone, Default)]
pub struct RetryFilter {
    /// Only these queue ids (empty = any).
    pub ids: Vec<Uuid>,
    /// Only this document kind.
    pub kind: Option<DocKind>,
}

/// Puts failed rows back to `pending` with a fresh attempt count; the row trigger makes them due
/// at once and wakes the workers. Same effect as the operators' SQL
/// `UPDATE sync_queue SET status = 'pending', retry_count = 0 WHERE status = 'failed'`.
/// Returns how many rows were requeued.
pub async fn retry_failed(
    client: &tokio_postgres::Client,
    filter: &RetryFilter,
) -> Result<u64, QueueError> {
    let kind = filter.kind.map(|k| k.as_str());
    let ids: Option<&[Uuid]> = if filter.ids.is_empty() {
        None
    } else {
        Some(&filter.ids)
    };
    client
        .execute(
            "UPDATE sync_queue SET status = 'pending', retry_count = 0
              WHERE status = 'failed'
                AND ($1::uuid[] IS NULL OR id = ANY($1))
                AND ($2::text IS NULL OR entity_type = $2)",
            &[&ids, &kind],
        )
        .await
        .map_err(QueueError::Web)
}
