//! The queue's status as `mikro-sync status` prints it and `doctor` checks it: counts by type
//! and status, the oldest pending row, errors grouped, the listener and who holds claims.
//!
//! Reads only `sync_queue` and `pg_stat_activity`, so it works while a worker runs and even
//! against a queue the worker has never touched.

use crate::queue::store;

/// Why the status could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// `mikro-sync setup` was not run.
    #[error("there is no sync_queue table in the web database: run `mikro-sync setup` first")]
    NoQueue,
    /// A statement failed.
    #[error("web database: {}", crate::db::pg_error_text(.0))]
    Web(#[from] tokio_postgres::Error),
}

/// The facts `status` prints, gathered in one place so tests can check them.
#[derive(Debug, Clone, Default)]
pub struct QueueStatus {
    /// (entity_type, status, count), sorted.
    pub counts: Vec<(String, String, i64)>,
    /// Age in seconds of the oldest pending row.
    pub oldest_pending_secs: Option<f64>,
    /// Pending rows waiting for a backoff delay to pass.
    pub pending_backing_off: i64,
    /// (entity_type, error_message, count, last seen) for failed rows, most recent first.
    pub errors: Vec<(String, String, i64, String)>,
    /// (entity_type, entity_id, operation, error_message) of documents edited or deleted after
    /// posting (status `diverged`), most recent first.
    pub diverged: Vec<(String, String, String, String)>,
    /// Sessions named `mikro-sync listener` connected to the web database.
    pub listeners: i64,
    /// (claimed_by, rows in processing, seconds since the oldest claim): who works on what.
    pub claims: Vec<(String, i64, f64)>,
}

/// Whether `sync_queue` has `column` (an older install may lack the newer ones).
async fn has_column(client: &tokio_postgres::Client, column: &str) -> Result<bool, StatusError> {
    Ok(client
        .query_one(store::QUEUE_HAS_COLUMN_SQL, &[&column])
        .await?
        .get(0))
}

/// Gathers the queue status.
pub async fn gather(
    client: &tokio_postgres::Client,
    max_errors: i64,
) -> Result<QueueStatus, StatusError> {
    let exists: Option<String> = client
        .query_one("SELECT to_regclass('sync_queue')::text", &[])
        .await?
        .get(0);
    if exists.is_none() {
        return Err(StatusError::NoQueue);
    }
    let has_next = has_column(client, "next_attempt_at").await?;
    let mut st = QueueStatus::default();
    for r in client.query(store::STATUS_COUNTS_SQL, &[]).await? {
        st.counts.push((r.get(0), r.get(1), r.get(2)));
    }
    let r = client
        .query_one(store::status_pending_sql(has_next), &[])
        .await?;
    st.oldest_pending_secs = r.get(0);
    st.pending_backing_off = r.get(1);
    for r in client
        .query(store::STATUS_ERRORS_SQL, &[&max_errors])
        .await?
    {
        st.errors.push((
            r.get(0),
            r.get(1),
            r.get(2),
            r.get::<_, Option<String>>(3).unwrap_or_default(),
        ));
    }
    for r in client
        .query(store::STATUS_DIVERGED_SQL, &[&max_errors])
        .await?
    {
        st.diverged.push((r.get(0), r.get(1), r.get(2), r.get(3)));
    }
    let has_claims = has_column(client, "claimed_by").await?;
    if has_claims {
        for r in client.query(store::STATUS_CLAIMS_SQL, &[]).await? {
            st.claims.push((r.get(0), r.get(1), r.get(2)));
        }
    }
    st.listeners = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND application_name = 'mikro-sync listener'",
            &[],
        )
        .await?
        .get(0);
    Ok(st)
}

/// Formats seconds as `3d 4h`, `5m 12s`, `800ms`.
pub fn age(secs: f64) -> String {
    let s = secs.max(0.0);
    if s < 1.0 {
        return format!("{:.0}ms", s * 1000.0);
    }
    let s = s as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86399 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}

/// Renders the status as the text `mikro-sync status` prints.
pub fn render(st: &QueueStatus) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let statuses = ["pending", "processing", "completed", "failed", "diverged"];
    let mut types: Vec<&str> = st.counts.iter().map(|c| c.0.as_str()).collect();
    types.dedup();
    let _ = writeln!(out, "Queue (sync_queue)");
    let _ = writeln!(
        out,
        "  {:<10} {:>9} {:>11} {:>10} {:>7} {:>9}",
        "type", "pending", "processing", "completed", "failed", "diverged"
    );
    let count = |t: Option<&str>, s: &str| -> i64 {
        st.counts
            .iter()
            .filter(|c| t.is_none_or(|t| c.0 == t) && c.1 == s)
            .map(|c| c.2)
            .sum()
    };
    for t in types.iter().copied().chain(std::iter::once("total")) {
        let tt = (t != "total").then_some(t);
        let _ = writeln!(
            out,
            "  {:<10} {:>9} {:>11} {:>10} {:>7} {:>9}",
            t,
            count(tt, statuses[0]),
            count(tt, statuses[1]),
            count(tt, statuses[2]),
            count(tt, statuses[3]),
            count(tt, statuses[4])
        );
    }
    let other: Vec<_> = st
        .counts
        .iter()
        .filter(|c| !statuses.contains(&c.1.as_str()))
        .collect();
    for c in other {
        let _ = writeln!(
            out,
            "  (also {} rows of {} with status '{}')",
            c.2, c.0, c.1
        );
    }
    match st.oldest_pending_secs {
        Some(s) => {
            let _ = writeln!(
                out,
                "Oldest pending: {} ago ({} waiting for a retry delay)",
                age(s),
                st.pending_backing_off
            );
        }
        None => {
            let _ = writeln!(out, "Oldest pending: none");
        }
    }
    let _ = writeln!(
        out,
        "Listener: {}",
        match st.listeners {
            0 =>
                "NOT CONNECTED — no worker is listening; new documents wait for `mikro-sync worker`"
                    .to_string(),
            1 => "connected (1 worker listening)".to_string(),
            n => format!("connected ({n} workers listening)"),
        }
    );
    for (who, n, secs) in &st.claims {
        let _ = writeln!(
            out,
            "Processing: {n} by {who} (oldest claim {} ago)",
            age(*secs)
        );
    }
    if st.errors.is_empty() {
        let _ = writeln!(out, "Failed documents: none");
    } else {
        let _ = writeln!(out, "Failed documents, by message (most recent first):");
        for (t, msg, n, last) in &st.errors {
            let _ = writeln!(out, "  {n:>5} × {t}: {msg}  (last {last})");
        }
        let _ = writeln!(
            out,
            "Fix the cause, then `mikro-sync retry-failed` (or --type / --id) to retry them."
        );
    }
    let diverged = count(None, "diverged");
    if diverged > 0 {
        let _ = writeln!(
            out,
            "Edited or deleted on the web after posting ({diverged}; Mikro was not changed), most recent first:"
        );
        for (t, id, op, msg) in &st.diverged {
            let _ = writeln!(out, "  {t} {id} [{op}]: {msg}");
        }
    }
    out
}
