//! The per-entity watermark and the retry list, both in the web database
//! (`sql/web/010_erp_sync.sql`).
//!
//! Why in the web database: the watermark must move in the same transaction as the rows it
//! covers, so it is exactly "what was applied" — a crash or failed run can never leave it ahead
//! of the data. The stamp is stored twice: as a readable `timestamp`, and as Mikro's exact
//! `datetime` representation (days + 1/300 s ticks), so the next run's anchor compares exactly.
//!
//! `checked_until` is the company wall-clock time (this host's clock in the company zone) at
//! which a run started reading. Every incremental run re-reads from `min(last stamp,
//! checked_until) − overlap`: the last stamp is Mikro's clock, `checked_until` this host's, so
//! the window is anchored on whichever is earlier and a skew between the two (either way) or a
//! Mikro transaction that stamped rows before committing them, both shorter than the overlap,
//! cannot make a row fall behind the anchor. The cost is re-reading the rows stamped within the
//! overlap before the last change (unchanged rows are not written). Whatever slips anyway is
//! caught by the periodic full re-read (`last_full_read`, [`full_due`]).

use chrono::{DateTime, NaiveDateTime, Utc};
use deadpool_postgres::{Object, Transaction};
use std::time::Duration;

use super::read::{Anchor, Stamp};
use super::report::RejectedRow;
use super::types::Entity;
use super::SyncError;

/// A stored watermark.
#[derive(Debug, Clone)]
pub struct Watermark {
    /// Highest applied (lastup, RECno), if any row was ever applied.
    pub last: Option<(Stamp, i32)>,
    /// Every row stamped before this (company clock) was seen by a run (see the module docs).
    pub checked_until: Option<NaiveDateTime>,
    /// When the key comparison for deletes last ran.
    pub last_delete_check: Option<DateTime<Utc>>,
    /// When the entity was last re-read in full (a `--full` run or the periodic re-read).
    pub last_full_read: Option<DateTime<Utc>>,
}

/// What a run needs to know per entity before reading: the watermark and how many rows wait
/// in the retry list. Read for all entities in one query, so an idle run costs one round trip
/// here instead of two per entity.
#[derive(Debug, Default)]
pub struct State {
    /// Watermark per entity name.
    pub watermarks: std::collections::HashMap<String, Watermark>,
    /// Rows waiting in the retry list per entity name.
    pub retries: std::collections::HashMap<String, i64>,
}

/// Loads every entity's watermark and retry count.
pub async fn load_all(client: &Object) -> Result<State, SyncError> {
    let stmt = client
        .prepare_cached(
            "SELECT w.entity::text, w.wm_lastup, w.wm_days, w.wm_ticks, w.wm_recno,
                    w.checked_until, w.last_delete_check, NULL::bigint, w.last_full_read
               FROM int_erp_sync_watermark w
             UNION ALL
             SELECT r.entity::text, NULL, NULL, NULL, NULL, NULL, NULL, count(*), NULL
               FROM int_erp_sync_retry r GROUP BY r.entity",
        )
        .await
        .map_err(|e| schema_hint(e, "reading the watermarks"))?;
    let rows = client
        .query(&stmt, &[])
        .await
        .map_err(SyncError::web("reading the watermarks"))?;
    let mut st = State::default();
    for r in rows {
        let entity: String = r.get(0);
        let retries: Option<i64> = r.get(7);
        match retries {
            Some(n) => {
                st.retries.insert(entity, n);
            }
            None => {
                st.watermarks.insert(entity, decode(&r));
            }
        }
    }
    Ok(st)
}

fn decode(r: &tokio_postgres::Row) -> Watermark {
    {
        let lastup: Option<NaiveDateTime> = r.get(1);
        let days: Option<i32> = r.get(2);
        let ticks: Option<i32> = r.get(3);
        let recno: Option<i32> = r.get(4);
        let stamp = match (days, ticks, lastup) {
            (Some(d), Some(t), _) if t >= 0 => Some(Stamp::Legacy {
                days: d,
                ticks: t as u32,
            }),
            (_, _, Some(l)) => Some(Stamp::Modern(l)),
            _ => None,
        };
        Watermark {
            last: stamp.zip(recno),
            checked_until: r.get(5),
            last_delete_check: r.get(6),
            last_full_read: r.get(8),
        }
    }
}

fn schema_hint(e: tokio_postgres::Error, ctx: &str) -> SyncError {
    if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) {
        SyncError::WebSchema(
            "table `int_erp_sync_watermark` is missing in the web database; run `mikro-sync setup`"
                .into(),
        )
    } else {
        SyncError::web(ctx)(e)
    }
}

/// Where this run starts reading: the beginning for a full run or an entity never read,
/// otherwise `min(last stamp, checked_until) − overlap` (see the module docs).
pub fn start_anchor(
    wm: Option<&Watermark>,
    full: bool,
    _server_now: NaiveDateTime,
    overlap: Duration,
) -> Anchor {
    let Some(wm) = wm else { return Anchor::Start };
    if full {
        return Anchor::Start;
    }
    let Some((stamp, _)) = wm.last else {
        return Anchor::Start;
    };
    let from = match wm.checked_until {
        Some(c) => c.min(stamp.naive()),
        None => stamp.naive(),
    };
    Anchor::From(from - chrono::Duration::from_std(overlap).unwrap_or_default())
}

/// Whether the periodic full re-read of an entity is due.
pub fn full_due(wm: Option<&Watermark>, every: Duration, now: DateTime<Utc>) -> bool {
    due(wm.and_then(|w| w.last_full_read), every, now)
}

/// Records that an entity was re-read in full.
pub async fn mark_full_read(client: &Object, entity: Entity) -> Result<(), SyncError> {
    mark_now(client, entity, Periodic::FullRead).await
}

/// The two periodic jobs of an entity whose last run is kept as a time in its watermark row.
#[derive(Clone, Copy)]
enum Periodic {
    FullRead,
    DeleteCheck,
}

/// Whether a periodic job last run at `last` (never: `None`) is due again.
fn due(last: Option<DateTime<Utc>>, every: Duration, now: DateTime<Utc>) -> bool {
    match last {
        None => true,
        Some(t) => (now - t).to_std().map(|d| d >= every).unwrap_or(true),
    }
}

/// Records that a periodic job ran now.
async fn mark_now(client: &Object, entity: Entity, job: Periodic) -> Result<(), SyncError> {
    // Column names cannot be parameters: one statement per job.
    let (sql, what) = match job {
        Periodic::FullRead => (
            "INSERT INTO int_erp_sync_watermark (entity, last_full_read, updated_at)
             VALUES ($1, now(), now())
             ON CONFLICT (entity) DO UPDATE SET last_full_read = now(), updated_at = now()",
            "storing the full re-read time",
        ),
        Periodic::DeleteCheck => (
            "INSERT INTO int_erp_sync_watermark (entity, last_delete_check, updated_at)
             VALUES ($1, now(), now())
             ON CONFLICT (entity) DO UPDATE SET last_delete_check = now(), updated_at = now()",
            "storing the delete check time",
        ),
    };
    client
        .execute(sql, &[&entity.name()])
        .await
        .map_err(SyncError::web(what))?;
    Ok(())
}

/// Stores the watermark after a page (inside the page's transaction).
pub async fn store(
    tx: &Transaction<'_>,
    entity: Entity,
    last: (Stamp, i32),
    checked_until: Option<NaiveDateTime>,
) -> Result<(), tokio_postgres::Error> {
    let (stamp, recno) = last;
    let (days, ticks) = match stamp {
        Stamp::Legacy { days, ticks } => (Some(days), Some(ticks as i32)),
        Stamp::Modern(_) => (None, None),
    };
    let stmt = tx
        .prepare_cached(
            "INSERT INTO int_erp_sync_watermark
                 (entity, wm_lastup, wm_days, wm_ticks, wm_recno, checked_until, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, now())
             ON CONFLICT (entity) DO UPDATE SET
                 wm_lastup = EXCLUDED.wm_lastup, wm_days = EXCLUDED.wm_days,
                 wm_ticks = EXCLUDED.wm_ticks, wm_recno = EXCLUDED.wm_recno,
                 checked_until = COALESCE(EXCLUDED.checked_until, int_erp_sync_watermark.checked_until),
                 updated_at = now()",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &entity.name(),
            &stamp.naive(),
            &days,
            &ticks,
            &recno,
            &checked_until,
        ],
    )
    .await?;
    Ok(())
}

/// Records that a run read everything after the anchor and found nothing: only
/// `checked_until` moves. Skipped when already settled (no write on an idle run).
pub async fn touch(
    client: &Object,
    entity: Entity,
    checked_until: NaiveDateTime,
    wm: Option<&Watermark>,
) -> Result<(), SyncError> {
    if let Some(w) = wm {
        if let (Some((s, _)), Some(c)) = (w.last, w.checked_until) {
            if c >= s.naive() {
                return Ok(());
            }
        }
    }
    let stmt = client
        .prepare_cached(
            "INSERT INTO int_erp_sync_watermark (entity, checked_until, updated_at)
             VALUES ($1, $2, now())
             ON CONFLICT (entity) DO UPDATE SET checked_until = EXCLUDED.checked_until,
                 updated_at = now()",
        )
        .await
        .map_err(SyncError::web("storing the watermark"))?;
    client
        .execute(&stmt, &[&entity.name(), &checked_until])
        .await
        .map_err(SyncError::web("storing the watermark"))?;
    Ok(())
}

/// Whether the periodic key comparison is due.
pub fn delete_check_due(wm: Option<&Watermark>, every: Duration, now: DateTime<Utc>) -> bool {
    due(wm.and_then(|w| w.last_delete_check), every, now)
}

/// Records that the key comparison ran.
pub async fn mark_delete_check(client: &Object, entity: Entity) -> Result<(), SyncError> {
    mark_now(client, entity, Periodic::DeleteCheck).await
}

/// Adds or refreshes rejected rows in the retry list.
pub async fn retry_record(
    tx: &Transaction<'_>,
    entity: Entity,
    rejects: &[RejectedRow],
) -> Result<(), tokio_postgres::Error> {
    if rejects.is_empty() {
        return Ok(());
    }
    let recno: Vec<i32> = rejects.iter().map(|r| r.recno).collect();
    let key: Vec<&str> = rejects.iter().map(|r| r.key.as_str()).collect();
    let reason: Vec<&str> = rejects.iter().map(|r| r.reason.as_str()).collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO int_erp_sync_retry (entity, recno, erp_key, reason)
             SELECT DISTINCT ON (r) $1, r, k, m FROM unnest($2::int[], $3::text[], $4::text[]) AS u(r, k, m)
             ON CONFLICT (entity, recno) DO UPDATE SET erp_key = EXCLUDED.erp_key,
                 reason = EXCLUDED.reason, attempts = int_erp_sync_retry.attempts + 1,
                 last_seen = now()",
        )
        .await?;
    tx.execute(&stmt, &[&entity.name(), &recno, &key, &reason])
        .await?;
    Ok(())
}

/// Removes applied rows from the retry list; returns how many were there.
pub async fn retry_clear<C: deadpool_postgres::GenericClient>(
    client: &C,
    entity: Entity,
    recnos: &[i32],
) -> Result<u64, tokio_postgres::Error> {
    if recnos.is_empty() {
        return Ok(0);
    }
    client
        .execute(
            "DELETE FROM int_erp_sync_retry WHERE entity = $1 AND recno = ANY($2)",
            &[&entity.name(), &recnos],
        )
        .await
}

/// RECnos waiting in the retry list.
pub async fn retry_list(client: &Object, entity: Entity) -> Result<Vec<i32>, SyncError> {
    let stmt = client
        .prepare_cached("SELECT recno FROM int_erp_sync_retry WHERE entity = $1 ORDER BY recno")
        .await
        .map_err(|e| schema_hint(e, "reading the retry list"))?;
    Ok(client
        .query(&stmt, &[&entity.name()])
        .await
        .map_err(SyncError::web("reading the retry list"))?
        .iter()
        .map(|r| r.get(0))
        .collect())
}
