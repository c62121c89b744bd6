//! The run summary: per entity read / inserted / updated / deactivated / seconds, and the rows
//! that could not be applied.
//!
//! Why a value and not only log lines: the CLI prints it as a table, `sync-bidirectional`
//! combines it with the web → ERP result, the worker turns it into metrics, tests assert on it.

use std::fmt;

use super::types::Entity;

/// A Mikro row that could not be applied this run. It is in the retry list (`int_erp_sync_retry`)
/// and is retried on every following run until it applies or disappears from Mikro.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRow {
    /// Entity of the row.
    pub entity: Entity,
    /// Mikro RECno (the retry list re-reads by it).
    pub recno: i32,
    /// The Mikro key (code; for prices `stock|list|depot|plan`).
    pub key: String,
    /// Why it could not be applied (decode error, unknown reference, PostgreSQL's message).
    pub reason: String,
}

/// One entity's figures for a run.
#[derive(Debug, Clone)]
pub struct EntityReport {
    /// Entity.
    pub entity: Entity,
    /// Rows read from Mikro (pages; re-reads of the overlap window included).
    pub read: u64,
    /// Web rows inserted.
    pub inserted: u64,
    /// Web rows changed (rows equal to Mikro's are not touched and not counted).
    pub updated: u64,
    /// Web rows set `aktif = false` because their Mikro row was deleted.
    pub deactivated: u64,
    /// Web rows deleted because their Mikro row was deleted.
    pub deleted: u64,
    /// Web rows whose Mikro row is gone but that were neither deactivated nor deleted.
    pub missing: u64,
    /// Rows read but intentionally not written (depot-specific prices).
    pub skipped: u64,
    /// Rows that could not be applied (see `rejects`).
    pub rejected: u64,
    /// Rows from earlier runs' retry list that applied now.
    pub retried: u64,
    /// Web rows the periodic full re-read inserted or changed after this run's incremental
    /// pass: rows the incremental runs had missed (0 when no full re-read was due).
    pub corrected: u64,
    /// Seconds spent on this entity.
    pub seconds: f64,
    /// The rows that could not be applied.
    pub rejects: Vec<RejectedRow>,
}

impl EntityReport {
    /// An empty report for an entity.
    pub fn new(entity: Entity) -> Self {
        EntityReport {
            entity,
            read: 0,
            inserted: 0,
            updated: 0,
            deactivated: 0,
            deleted: 0,
            missing: 0,
            skipped: 0,
            rejected: 0,
            retried: 0,
            corrected: 0,
            seconds: 0.0,
            rejects: Vec::new(),
        }
    }

    pub(crate) fn absorb(&mut self, o: &PageOutcome, read: u64) {
        self.read += read;
        self.inserted += o.inserted;
        self.updated += o.updated;
        self.skipped += o.skipped;
        self.retried += o.retried;
        self.rejected += o.rejects.len() as u64;
        self.rejects.extend(o.rejects.iter().cloned());
    }
}

/// The result of one ERP → web run.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    /// One report per entity, in run order.
    pub entities: Vec<EntityReport>,
    /// Wall-clock seconds of the whole run.
    pub seconds: f64,
}

impl SyncReport {
    pub(crate) fn push(&mut self, e: EntityReport) {
        self.entities.push(e);
    }

    /// The figures of one entity, if it ran.
    pub fn entity(&self, e: Entity) -> Option<&EntityReport> {
        self.entities.iter().find(|r| r.entity == e)
    }

    /// Rows read over all entities (for rows/s figures).
    pub fn total_read(&self) -> u64 {
        self.entities.iter().map(|e| e.read).sum()
    }

    /// Every rejected row of the run.
    pub fn rejects(&self) -> impl Iterator<Item = &RejectedRow> {
        self.entities.iter().flat_map(|e| e.rejects.iter())
    }
}

impl fmt::Display for SyncReport {
    /// The summary table the CLI prints, then the rejected rows (at most 20 per entity).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<12} {:>8} {:>9} {:>8} {:>11} {:>8} {:>8} {:>8}",
            "entity",
            "read",
            "inserted",
            "updated",
            "deactivated",
            "deleted",
            "rejected",
            "seconds"
        )?;
        for e in &self.entities {
            writeln!(
                f,
                "{:<12} {:>8} {:>9} {:>8} {:>11} {:>8} {:>8} {:>8.2}",
                e.entity.name(),
                e.read,
                e.inserted,
                e.updated,
                e.deactivated,
                e.deleted,
                e.rejected,
                e.seconds
            )?;
        }
        let total_read = self.total_read();
        writeln!(
            f,
            "{:<12} {:>8} {:>9} {:>8} {:>11} {:>8} {:>8} {:>8.2}",
            "total",
            total_read,
            self.entities.iter().map(|e| e.inserted).sum::<u64>(),
            self.entities.iter().map(|e| e.updated).sum::<u64>(),
            self.entities.iter().map(|e| e.deactivated).sum::<u64>(),
            self.entities.iter().map(|e| e.deleted).sum::<u64>(),
            self.entities.iter().map(|e| e.rejected).sum::<u64>(),
            self.seconds
        )?;
        for e in &self.entities {
            if e.corrected > 0 {
                writeln!(
                    f,
                    "{}: the periodic full re-read corrected {} rows the incremental runs had missed (raise MIKRO_SYNC_ERP_SYNC_OVERLAP)",
                    e.entity, e.corrected
                )?;
            }
            if e.missing > 0 {
                writeln!(
                    f,
                    "{}: {} web rows no longer exist in Mikro and were left in place (no `aktif` column or still referenced)",
                    e.entity, e.missing
                )?;
            }
            for r in e.rejects.iter().take(20) {
                writeln!(
                    f,
                    "rejected {} `{}` (RECno {}): {}",
                    r.entity, r.key, r.recno, r.reason
                )?;
            }
            if e.rejects.len() > 20 {
                writeln!(
                    f,
                    "… and {} more {} rows rejected",
                    e.rejects.len() - 20,
                    e.entity
                )?;
            }
        }
        Ok(())
    }
}

/// What applying a page (or the retry list) did.
#[derive(Debug, Default)]
pub struct PageOutcome {
    /// Web rows inserted.
    pub inserted: u64,
    /// Web rows changed (unchanged rows are not touched).
    pub updated: u64,
    /// Rows intentionally not written.
    pub skipped: u64,
    /// Rows that could not be applied (now in the retry list).
    pub rejects: Vec<RejectedRow>,
    /// Rows from the retry list that applied this time.
    pub retried: u64,
}
