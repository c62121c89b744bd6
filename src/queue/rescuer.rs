//! The rescuer: rows whose worker died while processing them go back to `pending`.
//!
//! A worker holds each claimed row through a lease (`lease_until`) that it renews while it
//! works (see `worker.rs`). When a worker is killed (kill -9, power loss, network gone), its
//! leases run out and the rescuer of any live worker re-queues the rows, due at once. The
//! posting may have reached Mikro before the crash; the retry then finds the ledger row and only
//! completes the web side, so a rescue never double-posts.

use uuid::Uuid;

use super::QueueError;

/// Re-queues every `processing` row whose lease has expired (or that has none — left by the
/// old tool or by hand). Returns the ids rescued.
pub async fn rescue_expired(client: &tokio_postgres::Client) -> Result<Vec<Uuid>, QueueError> {
    let rows = client
        .query(
            "UPDATE sync_queue
                SET status = 'pending',
                    next_attempt_at = now(),
                    error_message = 'lease expired: worker ' || coalesce(claimed_by, '?')
                                    || ' stopped while processing; retried',
                    claimed_by = NULL, claimed_at = NULL, lease_until = NULL
              WHERE status = 'processing'
                AND (lease_until IS NULL OR lease_until < clock_timestamp())
             RETURNING id",
            &[],
        )
        .await
        .map_err(QueueError::Web)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
