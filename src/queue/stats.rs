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
    super::store::stats(client).await
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
    let ids: Vec<String> = filter.ids.iter().map(Uuid::to_string).collect();
    let kind = filter.kind.map(|k| k.as_str());
    let rows = super::store::retry_failed(client, &ids, kind, false).await?;
    Ok(rows.len() as u64)
}
