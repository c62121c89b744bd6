//! Every statement on `sync_queue` and `sync_queue_inbox`, as a named constant with a typed
//! function (River's `river_job.sql` is the model): claim, lease renewal, release, the outcomes
//! of many documents at once, rescue, next due, statistics, the operator's retry, the idle lock.
//! The NOTIFY channel and the idle lock key are defined here once; a test checks that the
//! installed SQL (`sql/web/005_triggers.sql`) uses the same values.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::{Job, QueueError};
use crate::posting::{DocKind, PostingConfig};

/// The NOTIFY channel of the enqueue trigger.
pub const CHANNEL: &str = "mikro_sync_queue";
/// The advisory lock an idle worker holds exclusively ('mikrosyn' as a big-endian i64).
pub const IDLE_LOCK_KEY: i64 = 0x6D69_6B72_6F73_796E;

/// The CTEs of the claim (see [`CLAIM_SQL`]); a macro so both claims share one text.
macro_rules! claim_ctes {
    () => {
        "WITH moved AS (
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
)"
    };
}

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
pub const CLAIM_SQL: &str = concat!(claim_ctes!(), "\n", "\
SELECT id, entity_type, entity_id, retry_count, created_at::timestamptz, first_attempt_at, claimed_at,
       lease_expiries
  FROM ins WHERE claimed
UNION ALL
SELECT id, entity_type, entity_id, retry_count, created_at::timestamptz, first_attempt_at, claimed_at,
       lease_expiries
  FROM upd");

/// [`CLAIM_SQL`] that also reads the claimed documents (header, lines, customer, mappings) in the
/// same statement and snapshot, so a claimed document needs no read of its own: the claimed
/// rows become the CTE `claimed`, which [`crate::posting::load`] joins to the documents.
fn claim_documents_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "{}, claimed AS (\n\
             SELECT id, entity_type, entity_id, retry_count, created_at::timestamptz AS created_at, \
                    first_attempt_at, claimed_at, lease_expiries FROM ins WHERE claimed \
             UNION ALL \
             SELECT id, entity_type, entity_id, retry_count, created_at::timestamptz, \
                    first_attempt_at, claimed_at, lease_expiries FROM upd)\n{}",
            claim_ctes!(),
            crate::posting::load::claimed_documents_sql()
        )
    })
}

/// Whether a claim would find anything: a row in the inbox, or a due `pending` row of
/// sync_queue (the claim's `moved` and `due_old`, from `sync_queue_ready_idx`). A linger poll
/// runs this first: an empty claim still runs every CTE and the documents' joins.
pub const CLAIMABLE_SQL: &str = "\
SELECT EXISTS (SELECT 1 FROM sync_queue_inbox)
    OR EXISTS (SELECT 1 FROM ONLY sync_queue
                WHERE status = 'pending' AND next_attempt_at <= now())";

/// A claimed row whose `entity_type` mikro-sync does not post: parked as `failed` with the fix.
pub const FAIL_UNKNOWN_TYPE_SQL: &str = "\
UPDATE ONLY sync_queue SET status = 'failed', processed_at = now(), claimed_by = NULL,
       lease_until = NULL, error_message = 'unknown entity_type ''' || entity_type || ''': \
mikro-sync posts only ''satis'' and ''tahsilat''; correct the value and set status = ''pending'', or delete the row'
 WHERE id = $1";

/// Lease renewal of the rows a worker still holds.
pub const EXTEND_SQL: &str = "\
UPDATE ONLY sync_queue SET lease_until = clock_timestamp() + make_interval(secs => $3)
 WHERE id = ANY($1) AND status = 'processing' AND claimed_by = $2";

/// Rows claimed but never started back to `pending`, the claim's attempt taken back.
pub const RELEASE_SQL: &str = "\
UPDATE ONLY sync_queue SET status = 'pending', claimed_by = NULL, claimed_at = NULL,
       lease_until = NULL, next_attempt_at = now(),
       retry_count = greatest(retry_count - 1, 0),
       first_attempt_at = CASE WHEN retry_count <= 1 THEN NULL ELSE first_attempt_at END
 WHERE id = ANY($1) AND status = 'processing' AND claimed_by = $2";

/// Wakes every listening worker (`$1` = [`CHANNEL`]).
pub const NOTIFY_SQL: &str = "SELECT pg_notify($1::text, '')";

/// Marks in the row that its posting starts (see `rescuer`).
pub const MARK_POSTING_SQL: &str = "\
UPDATE ONLY sync_queue SET posting_started_at = clock_timestamp()
 WHERE id = $1 AND status = 'processing' AND claimed_by = $2";

/// The outcomes of many documents in one statement: `completed` (the Mikro number written back
/// to the document), `pending` (a retry after `delay` seconds) or `failed`.
///
/// A completion is written whatever happened to the row meanwhile (the document is in Mikro);
/// a failed attempt only while the row is still this worker's (`$7`). The triggers are AFTER
/// INSERT, so the UPDATEs of the documents never enqueue them again.
///
/// `$8`/`$9` are, per completion, what the claim read of the document ([`Job::posted`]: header,
/// lines). `lks`/`lkt` lock those headers before the write-back and read them as they are then
/// (the latest version); `mikro_sync_posted_check` (sql/web/006_divergence.sql) compares them
/// and the lines with what was posted and records a divergence when the document was changed or
/// deleted in between. The UPDATEs join the locks, so the locks are taken first.
pub const FINISH_SQL: &str = "\
WITH o AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::float8[], $6::text[],
                         $8::text[], $9::text[])
        AS o(id, status, seri, sira, delay, message, head, lines)
), q AS (
    UPDATE ONLY sync_queue s
       SET status = o.status,
           processed_at = CASE WHEN o.status = 'pending' THEN NULL ELSE now() END,
           next_attempt_at = CASE WHEN o.status = 'completed' THEN s.next_attempt_at
                                  ELSE clock_timestamp() + make_interval(secs => o.delay) END,
           error_message = o.message,
           claimed_by = NULL, claimed_at = NULL, lease_until = NULL,
           posting_started_at = CASE WHEN o.status = 'completed' THEN s.posting_started_at END
      FROM o
     WHERE s.id = o.id
       AND CASE WHEN o.status = 'completed' THEN s.status IN ('processing', 'pending')
                ELSE s.status = 'processing' AND s.claimed_by = $7 END
    RETURNING s.entity_type, s.entity_id, o.status, o.seri, o.sira, o.head, o.lines
), lks AS (
    SELECT t.id, row_to_json(t)::text AS now
      FROM satislar t JOIN q ON q.entity_type = 'satis' AND t.id = q.entity_id
     WHERE q.status = 'completed' AND q.seri <> '' AND q.head IS NOT NULL
       FOR NO KEY UPDATE OF t
), lkt AS (
    SELECT t.id, row_to_json(t)::text AS now
      FROM tahsilatlar t JOIN q ON q.entity_type = 'tahsilat' AND t.id = q.entity_id
     WHERE q.status = 'completed' AND q.seri <> '' AND q.head IS NOT NULL
       FOR NO KEY UPDATE OF t
), sa AS (
    UPDATE satislar t SET fatura_seri_no = q.seri, fatura_sira_no = q.sira
      FROM q LEFT JOIN lks ON lks.id = q.entity_id
     WHERE q.status = 'completed' AND q.entity_type = 'satis' AND t.id = q.entity_id
       AND q.seri <> ''
       AND (t.fatura_seri_no IS DISTINCT FROM q.seri OR t.fatura_sira_no IS DISTINCT FROM q.sira)
    RETURNING 1
), ta AS (
    UPDATE tahsilatlar t SET tahsilat_seri_no = q.seri, tahsilat_sira_no = q.sira
      FROM q LEFT JOIN lkt ON lkt.id = q.entity_id
     WHERE q.status = 'completed' AND q.entity_type = 'tahsilat' AND t.id = q.entity_id
       AND q.seri <> ''
       AND (t.tahsilat_seri_no IS DISTINCT FROM q.seri OR t.tahsilat_sira_no IS DISTINCT FROM q.sira)
    RETURNING 1
), c AS (
    SELECT array_agg(q.entity_type::text) AS kinds, array_agg(q.entity_id) AS ids,
           array_agg(q.seri || '-' || q.sira) AS nums, array_agg(q.head) AS heads,
           array_agg(q.lines) AS lines, array_agg(coalesce(lks.now, lkt.now)) AS nows
      FROM q
      LEFT JOIN lks ON q.entity_type = 'satis' AND lks.id = q.entity_id
      LEFT JOIN lkt ON q.entity_type = 'tahsilat' AND lkt.id = q.entity_id
     WHERE q.status = 'completed' AND q.head IS NOT NULL AND q.seri <> ''
)
SELECT (SELECT count(*) FROM q) + 0 * ((SELECT count(*) FROM sa) + (SELECT count(*) FROM ta))
       + 0 * coalesce((
           SELECT mikro_sync_posted_check(c.kinds, c.ids, c.nums, c.heads, c.lines, c.nows)
             FROM c WHERE c.ids IS NOT NULL), 0)";

/// Rows whose lease expired back to `pending` (or, past the limit, `failed`): `$1` the limit
/// (0 = none), `$2`/`$3` the backoff's first and longest delay in seconds.
pub const RESCUE_SQL: &str = "\
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

/// Seconds until the earliest pending row is due (negative: due now; NULL: none pending).
pub const NEXT_DUE_SQL: &str = "\
SELECT extract(epoch FROM min(next_attempt_at) - clock_timestamp())::float8
  FROM sync_queue WHERE status = 'pending'";

/// Counts by status, due rows and the oldest pending row's age (the worker's log line).
pub const STATS_SQL: &str = "\
SELECT count(*) FILTER (WHERE status = 'pending'),
       count(*) FILTER (WHERE status = 'processing'),
       count(*) FILTER (WHERE status = 'completed'),
       count(*) FILTER (WHERE status = 'failed'),
       count(*) FILTER (WHERE status = 'pending' AND next_attempt_at <= now()),
       extract(epoch FROM now() - min(created_at) FILTER (WHERE status = 'pending'))::float8,
       count(*) FILTER (WHERE status = 'diverged')
  FROM sync_queue";

/// The operator's retry, narrowed by queue ids (`$1` as text, so a mistyped id matches
/// nothing instead of failing; empty = any) and type (`$2`, NULL = any): the row trigger makes
/// the rows due at once and wakes the workers.
pub const RETRY_FAILED_SQL: &str = "\
UPDATE sync_queue SET status = 'pending', retry_count = 0
 WHERE status = 'failed'
   AND (cardinality($1::text[]) = 0 OR id::text = ANY($1))
   AND ($2::text IS NULL OR entity_type = $2)
RETURNING id::text, entity_type";

/// What [`RETRY_FAILED_SQL`] would re-queue (`--dry-run`), oldest first.
pub const RETRY_FAILED_PREVIEW_SQL: &str = "\
SELECT id::text, entity_type FROM sync_queue
 WHERE status = 'failed'
   AND (cardinality($1::text[]) = 0 OR id::text = ANY($1))
   AND ($2::text IS NULL OR entity_type = $2)
 ORDER BY created_at";

/// `mikro-sync status`: rows by type and status.
pub const STATUS_COUNTS_SQL: &str = "\
SELECT coalesce(entity_type, '?'), coalesce(status, '?'), count(*)
  FROM sync_queue GROUP BY 1, 2 ORDER BY 1, 2";

/// `mikro-sync status`: the oldest pending row's age and how many pending rows back off (an old
/// tool's table without `next_attempt_at` has none: see [`status_pending_sql`]).
pub const STATUS_PENDING_SQL: &str = "\
SELECT extract(epoch FROM now() - min(created_at))::float8,
       count(*) FILTER (WHERE next_attempt_at > now())
  FROM sync_queue WHERE status = 'pending'";

/// [`STATUS_PENDING_SQL`] for a table without `next_attempt_at`.
pub const STATUS_PENDING_OLD_SQL: &str = "\
SELECT extract(epoch FROM now() - min(created_at))::float8, 0::bigint
  FROM sync_queue WHERE status = 'pending'";

/// `mikro-sync status`: failed rows grouped by message, most recent first (`$1` groups).
pub const STATUS_ERRORS_SQL: &str = "\
SELECT coalesce(entity_type, '?'), coalesce(error_message, '(no message)'), count(*),
       to_char(max(coalesce(processed_at, created_at)), 'YYYY-MM-DD HH24:MI:SS TZ')
  FROM sync_queue WHERE status = 'failed'
 GROUP BY 1, 2 ORDER BY max(coalesce(processed_at, created_at)) DESC LIMIT $1";

/// `mikro-sync status`: documents edited or deleted after posting, most recent first.
pub const STATUS_DIVERGED_SQL: &str = "\
SELECT coalesce(entity_type, '?'), entity_id::text, coalesce(operation, '?'),
       coalesce(error_message, '(no message)')
  FROM sync_queue WHERE status = 'diverged'
 ORDER BY coalesce(processed_at, created_at) DESC LIMIT $1";

/// Whether `sync_queue` has the column `$1` (status works on installs that predate it).
pub const QUEUE_HAS_COLUMN_SQL: &str = "\
SELECT EXISTS (SELECT 1 FROM information_schema.columns
  WHERE table_name = 'sync_queue' AND column_name = $1::text
    AND table_schema = ANY (current_schemas(false)))";

/// `mikro-sync status`: who holds which rows, and since when.
pub const STATUS_CLAIMS_SQL: &str = "\
SELECT coalesce(claimed_by, '?'), count(*),
       coalesce(extract(epoch FROM now() - min(claimed_at))::float8, 0)
  FROM sync_queue WHERE status = 'processing' GROUP BY 1 ORDER BY 1";

/// The pending-age statement for a table with (or without) `next_attempt_at`.
pub fn status_pending_sql(has_next_attempt_at: bool) -> &'static str {
    if has_next_attempt_at {
        STATUS_PENDING_SQL
    } else {
        STATUS_PENDING_OLD_SQL
    }
}

/// Going idle in one statement (`$1` = [`IDLE_LOCK_KEY`]): 1 when this session now holds the
/// idle lock (free, or held shared by writers that committed within the session's
/// lock_timeout), 2 when another idle worker holds it; a lock timeout error when writers that
/// skipped their notify are still in their transactions. (The waiting branch runs only when
/// reached: CASE evaluates its uncorrelated subquery lazily.)
pub const IDLE_STEP_SQL: &str = "\
SELECT CASE
  WHEN pg_try_advisory_lock($1::int8) THEN 1
  WHEN EXISTS (SELECT 1 FROM pg_locks
                WHERE locktype = 'advisory'
                  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                  AND classid = ($1::int8 >> 32)::oid AND objid = ($1::int8 & 4294967295)::oid
                  AND objsubid = 1 AND mode = 'ExclusiveLock' AND granted
                  AND pid <> pg_backend_pid()) THEN 2
  ELSE (SELECT 1 FROM (SELECT pg_advisory_lock($1::int8)) w)
END";

/// Releases the idle lock.
pub const IDLE_RELEASE_SQL: &str = "SELECT pg_advisory_unlock($1)";

fn web(e: tokio_postgres::Error) -> QueueError {
    QueueError::Web(e)
}

/// Runs a hot statement as a prepared statement cached per pooled connection (see
/// [`crate::db::query_cached`]).
async fn cached(
    client: &deadpool_postgres::ClientWrapper,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, QueueError> {
    crate::db::query_cached(client, sql, params)
        .await
        .map_err(web)
}

/// Claims up to `limit` due rows for `worker`, leased for `lease`, moving the inbox into
/// sync_queue in the same statement.
///
/// Several workers may claim at once: an inbox row is deleted by one of them only (the others
/// wait for its commit, then skip it), and rows of sync_queue are skipped while locked. Rows of
/// web transactions still open are not visible yet; a later claim moves them (the notify
/// protocol guarantees one follows).
pub async fn claim(
    client: &deadpool_postgres::ClientWrapper,
    worker: &str,
    limit: usize,
    lease: Duration,
) -> Result<Vec<Job>, QueueError> {
    let limit = limit.max(1) as i64;
    let rows = cached(client, CLAIM_SQL, &[&limit, &worker, &lease.as_secs_f64()]).await?;
    jobs_from_rows(client, rows).await
}

/// Whether a claim would find anything now ([`CLAIMABLE_SQL`]); rows locked by another
/// worker count, so a yes may still claim nothing.
pub async fn claimable(client: &deadpool_postgres::ClientWrapper) -> Result<bool, QueueError> {
    let rows = cached(client, CLAIMABLE_SQL, &[]).await?;
    match rows.first() {
        Some(r) => r.try_get(0).map_err(web),
        None => Ok(true),
    }
}

/// The claim statement, with (`documents`) or without the claimed documents' columns.
pub(crate) fn claim_sql(documents: bool) -> &'static str {
    if documents {
        claim_documents_sql()
    } else {
        CLAIM_SQL
    }
}

/// The rows of [`claim_sql`] as jobs; with `cfg` (the documents' claim) each with its
/// document.
pub(crate) async fn jobs_from_claim(
    client: &tokio_postgres::Client,
    rows: Vec<tokio_postgres::Row>,
    cfg: Option<&PostingConfig>,
) -> Result<Vec<Job>, QueueError> {
    match cfg {
        Some(cfg) => jobs_with_documents(client, &rows, cfg).await,
        None => jobs_from_rows(client, rows).await,
    }
}

/// [`claim`] that also reads each claimed document ([`claim_documents_sql`]), parsed with
/// `cfg` as [`crate::posting::load_document`] would: the posting needs no web read of its own.
pub async fn claim_documents(
    client: &deadpool_postgres::ClientWrapper,
    worker: &str,
    limit: usize,
    lease: Duration,
    cfg: &PostingConfig,
) -> Result<Vec<Job>, QueueError> {
    let limit = limit.max(1) as i64;
    let rows = cached(
        client,
        claim_documents_sql(),
        &[&limit, &worker, &lease.as_secs_f64()],
    )
    .await?;
    jobs_with_documents(client, &rows, cfg).await
}

/// The rows of the documents' claim as jobs with their documents.
async fn jobs_with_documents(
    client: &tokio_postgres::Client,
    rows: &[tokio_postgres::Row],
    cfg: &PostingConfig,
) -> Result<Vec<Job>, QueueError> {
    let mut jobs = Vec::new();
    let mut rest = rows;
    while let Some(first) = rest.first() {
        // The rows of one claimed row (one per sale line) are adjacent.
        let id: Uuid = first.try_get(0).map_err(web)?;
        let n = rest
            .iter()
            .position(|r| r.try_get::<_, Uuid>(0).ok() != Some(id))
            .unwrap_or(rest.len());
        let (group, tail) = rest.split_at(n);
        rest = tail;
        if let Some(mut job) = job_from_row(client, first).await? {
            let group: Vec<&tokio_postgres::Row> = group.iter().collect();
            job.posted = crate::posting::load::claimed_content(job.kind, &group);
            job.document = Some(Arc::new(crate::posting::load::claimed_document(
                job.kind,
                job.entity_id,
                &group,
                cfg,
            )));
            jobs.push(job);
        }
    }
    Ok(jobs)
}

/// The claimed rows as jobs; a row of an unknown type is parked as failed instead.
async fn jobs_from_rows(
    client: &tokio_postgres::Client,
    rows: Vec<tokio_postgres::Row>,
) -> Result<Vec<Job>, QueueError> {
    let mut jobs = Vec::with_capacity(rows.len());
    for r in &rows {
        if let Some(job) = job_from_row(client, r).await? {
            jobs.push(job);
        }
    }
    Ok(jobs)
}

/// One claimed row as a job (its first [`CLAIM_SQL`] columns); None when its type is unknown
/// (the row is parked as failed).
async fn job_from_row(
    client: &tokio_postgres::Client,
    r: &tokio_postgres::Row,
) -> Result<Option<Job>, QueueError> {
    // A column that does not decode is an error, not a panic: the claimed rows then go back to
    // pending when their lease runs out.
    let entity_type: String = r.try_get(1).map_err(web)?;
    let id: Uuid = r.try_get(0).map_err(web)?;
    let Some(kind) = DocKind::parse(&entity_type) else {
        // The CHECK constraint makes this impossible for new rows; park it loudly anyway.
        tracing::error!(queue_id = %id, entity_type, "unknown entity_type claimed; marking failed");
        client
            .execute(FAIL_UNKNOWN_TYPE_SQL, &[&id])
            .await
            .map_err(web)?;
        return Ok(None);
    };
    let created_at: DateTime<Utc> = r.try_get(4).map_err(web)?;
    let claimed_at: DateTime<Utc> = r.try_get(6).map_err(web)?;
    Ok(Some(Job {
        id,
        kind,
        entity_id: r.try_get(2).map_err(web)?,
        attempt: r.try_get::<_, i32>(3).map_err(web)?.max(0) as u32,
        created_at,
        first_attempt_at: r.try_get(5).map_err(web)?,
        claimed_at,
        claimed_instant: std::time::Instant::now(),
        lease_expiries: r.try_get::<_, i32>(7).map_err(web)?.max(0) as u32,
        document: None,
        posted: None,
    }))
}

/// Extends the lease of the rows `worker` is still working on (heartbeat).
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
        .execute(EXTEND_SQL, &[&ids, &worker, &lease.as_secs_f64()])
        .await
        .map_err(web)
}

/// Puts rows `worker` claimed but never started back to `pending` (a graceful shutdown with
/// prefetched rows) and wakes the other workers.
pub async fn release(
    client: &tokio_postgres::Client,
    worker: &str,
    ids: &[Uuid],
) -> Result<u64, QueueError> {
    if ids.is_empty() {
        return Ok(0);
    }
    let n = client
        .execute(RELEASE_SQL, &[&ids, &worker])
        .await
        .map_err(web)?;
    if n > 0 {
        client.execute(NOTIFY_SQL, &[&CHANNEL]).await.map_err(web)?;
    }
    Ok(n)
}

/// Marks the start of a posting in the row (rows that crashed a worker before).
pub async fn mark_posting(
    client: &tokio_postgres::Client,
    worker: &str,
    id: Uuid,
) -> Result<u64, QueueError> {
    client
        .execute(MARK_POSTING_SQL, &[&id, &worker])
        .await
        .map_err(web)
}

/// How one attempt at a document ended, as [`finish`] writes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// In Mikro: `completed`, the number written back (an empty series writes nothing back).
    Completed {
        /// Mikro series.
        seri: String,
        /// Mikro number.
        sira: i32,
        /// What the claim read of the document ([`Job::posted`]), compared at the write-back:
        /// a change in between is recorded as a divergence. None: not compared.
        posted: Option<Arc<super::ClaimedRows>>,
    },
    /// Back to `pending`, due after `delay`.
    Retry {
        /// Until the next attempt.
        delay: Duration,
        /// Why this attempt failed (`error_message`).
        message: String,
    },
    /// Given up: `failed`.
    Failed {
        /// What the operator should do (`error_message`).
        message: String,
    },
}

/// Writes the outcomes of many rows in one statement ([`FINISH_SQL`]); returns how many rows
/// changed. Failed attempts are written only for rows `worker` still holds.
pub async fn finish(
    client: &deadpool_postgres::ClientWrapper,
    worker: &str,
    outcomes: &[(Uuid, &Outcome)],
) -> Result<u64, QueueError> {
    let n = outcomes.len();
    let (mut ids, mut status, mut seri, mut sira, mut delay, mut message) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut heads, mut lines) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for (id, o) in outcomes {
        ids.push(*id);
        let (st, s, no, d, m, p): (&str, &str, i32, f64, Option<&str>, _) = match o {
            Outcome::Completed { seri, sira, posted } => {
                ("completed", seri, *sira, 0.0, None, posted.as_deref())
            }
            Outcome::Retry { delay, message } => {
                ("pending", "", 0, delay.as_secs_f64(), Some(message), None)
            }
            Outcome::Failed { message } => ("failed", "", 0, 0.0, Some(message), None),
        };
        status.push(st);
        seri.push(s);
        sira.push(no);
        delay.push(d);
        message.push(m);
        heads.push(p.map(|p| p.head.as_str()));
        lines.push(p.and_then(|p| p.lines.as_deref()));
    }
    let rows = cached(
        client,
        FINISH_SQL,
        &[
            &ids, &status, &seri, &sira, &delay, &message, &worker, &heads, &lines,
        ],
    )
    .await?;
    Ok(rows
        .first()
        .map(|r| r.get::<_, i64>(0).max(0) as u64)
        .unwrap_or(0))
}

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
        .map_err(web)?;
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
        .map_err(web)
}

/// Time until the earliest pending row becomes due (zero if one is due now; None if nothing
/// is pending).
pub async fn next_due(client: &tokio_postgres::Client) -> Result<Option<Duration>, QueueError> {
    let row = client.query_one(NEXT_DUE_SQL, &[]).await.map_err(web)?;
    Ok(due_from_row(&row))
}

fn due_from_row(row: &tokio_postgres::Row) -> Option<Duration> {
    let secs: Option<f64> = row.get(0);
    secs.map(|s| Duration::from_secs_f64(s.max(0.0)))
}

/// Reads [`QueueStats`](super::QueueStats) (one aggregate query).
pub async fn stats(client: &tokio_postgres::Client) -> Result<super::QueueStats, QueueError> {
    let row = client.query_one(STATS_SQL, &[]).await.map_err(web)?;
    let age: Option<f64> = row.try_get(5).map_err(web)?;
    Ok(super::QueueStats {
        pending: row.try_get(0).map_err(web)?,
        processing: row.try_get(1).map_err(web)?,
        completed: row.try_get(2).map_err(web)?,
        failed: row.try_get(3).map_err(web)?,
        due: row.try_get(4).map_err(web)?,
        diverged: row.try_get(6).map_err(web)?,
        oldest_pending_age: age.map(|s| Duration::from_secs_f64(s.max(0.0))),
    })
}

/// Puts failed rows back to `pending` with a fresh attempt count (or, with `dry_run`, only
/// lists them); `ids` empty = any, `kind` None = any. Returns (queue id, entity_type) of each.
pub async fn retry_failed(
    client: &tokio_postgres::Client,
    ids: &[String],
    kind: Option<&str>,
    dry_run: bool,
) -> Result<Vec<(String, String)>, QueueError> {
    let sql = if dry_run {
        RETRY_FAILED_PREVIEW_SQL
    } else {
        RETRY_FAILED_SQL
    };
    let rows = client.query(sql, &[&ids, &kind]).await.map_err(web)?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(web)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRIGGERS: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/sql/web/005_triggers.sql"
    ));

    /// The trigger functions notify on [`CHANNEL`] and test [`IDLE_LOCK_KEY`]: every
    /// `pg_notify` and advisory lock in the installed SQL uses exactly these values.
    #[test]
    fn installed_sql_uses_the_same_channel_and_lock_key() {
        let notifies: Vec<&str> = TRIGGERS
            .match_indices("pg_notify(")
            .map(|(i, _)| &TRIGGERS[i..])
            .collect();
        assert!(!notifies.is_empty());
        for n in notifies {
            assert!(
                n.starts_with(&format!("pg_notify('{CHANNEL}', '')")),
                "{}",
                &n[..40.min(n.len())]
            );
        }
        let locks: Vec<&str> = TRIGGERS
            .match_indices("pg_try_advisory_xact_lock_shared(")
            .map(|(i, _)| &TRIGGERS[i..])
            .collect();
        // One enqueue function per table, each testing the idle lock once.
        assert_eq!(locks.len(), 2);
        for l in locks {
            assert!(l.starts_with(&format!(
                "pg_try_advisory_xact_lock_shared({IDLE_LOCK_KEY})"
            )));
        }
        assert_eq!(IDLE_LOCK_KEY, i64::from_be_bytes(*b"mikrosyn"));
        assert!(TRIGGERS.contains(&format!("advisory lock {IDLE_LOCK_KEY} ('mikrosyn')")));
    }
}
