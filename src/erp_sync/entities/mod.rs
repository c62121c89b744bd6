//! The field mapping of every entity, one file each.
//!
//! Why one file per entity: a shop whose web columns differ from the reference schema changes
//! the file of that entity only — the Mikro columns read ([`Spec::columns`]), how the key is
//! formed, the web SQL, and how deletes are recognised all live there. The machinery around it
//! (paging, watermark, transactions, retries, bisecting bad rows, the report) is generic.

pub mod banka;
pub mod barkod;
pub mod cari;
pub mod fiyat;
pub mod fiyat_tanim;
pub mod kasa;
pub mod stok;

use deadpool_postgres::Transaction;

use super::read::{Kind, MikroRow, Val};
use super::upsert::{Mapped, WebSchema};
use super::{DeletePolicy, Entity};

/// A Mikro column to read and how to decode it.
#[derive(Debug, Clone, Copy)]
pub struct Col {
    /// Column name as in Mikro.
    pub name: &'static str,
    /// How to decode it.
    pub kind: Kind,
}

/// Shorthand for a [`Col`].
pub const fn col(name: &'static str, kind: Kind) -> Col {
    Col { name, kind }
}

/// Everything the generic machinery needs to know about one entity's Mikro side.
#[derive(Debug)]
pub struct Spec {
    /// Which entity this is.
    pub entity: Entity,
    /// Mikro table.
    pub table: &'static str,
    /// IDENTITY column (`xxx_RECno`).
    pub recno: &'static str,
    /// Incremental column (`xxx_lastup_date`).
    pub lastup: &'static str,
    /// Data columns read after (lastup, RECno); values arrive in this order in `MikroRow::vals`.
    pub columns: &'static [Col],
    /// Columns that identify a row in Mikro (read in full for delete detection).
    pub key_columns: &'static [Col],
    /// The row's key as text (dedup within a page, reports, the retry list).
    pub key: fn(&[Val]) -> String,
    /// The web tables this entity writes or reads (checked once per run).
    pub web_tables: &'static [&'static str],
}

impl Spec {
    /// The key-column values of a row read with [`Spec::columns`] (same order as
    /// [`Spec::key_columns`]), for delete detection.
    pub fn key_of(&self, vals: &[Val]) -> Vec<Val> {
        self.key_columns
            .iter()
            .map(|k| {
                self.columns
                    .iter()
                    .position(|c| c.name == k.name)
                    .and_then(|i| vals.get(i).cloned())
                    .unwrap_or(Val::Str(String::new()))
            })
            .collect()
    }
}

/// The result of applying a set of rows (already deduplicated by key) to the web.
#[derive(Debug, Default)]
pub struct Applied {
    /// Web rows inserted.
    pub inserted: u64,
    /// Web rows changed.
    pub updated: u64,
    /// Rows that cannot be applied for a reason the data explains (unknown stock, bad value
    /// found before writing): index into the slice given to `apply`, and the reason.
    pub rejects: Vec<(usize, String)>,
    /// Rows intentionally not written (e.g. prices for a specific depot); not errors.
    pub skipped: u64,
}

/// The result of a delete reconciliation.
#[derive(Debug, Default, Clone, Copy)]
pub struct Reconciled {
    /// Web rows set `aktif = false`.
    pub deactivated: u64,
    /// Web rows deleted.
    pub deleted: u64,
    /// Web rows whose Mikro row is gone but that could neither be deactivated (no `aktif`
    /// column) nor deleted (policy or foreign keys).
    pub missing: u64,
}

/// The spec of an entity.
pub fn spec(entity: Entity) -> &'static Spec {
    match entity {
        Entity::Cari => &cari::SPEC,
        Entity::Stok => &stok::SPEC,
        Entity::FiyatTanim => &fiyat_tanim::SPEC,
        Entity::Fiyat => &fiyat::SPEC,
        Entity::Barkod => &barkod::SPEC,
        Entity::Banka => &banka::SPEC,
        Entity::Kasa => &kasa::SPEC,
    }
}

/// The mapping (`int_kodmap_*`) of an entity, if it has one.
pub fn mapped(entity: Entity) -> Option<Mapped> {
    match entity {
        Entity::Cari => Some(cari::MAPPED),
        Entity::Stok => Some(stok::MAPPED),
        Entity::FiyatTanim => Some(fiyat_tanim::NAMED.mapped),
        Entity::Banka => Some(banka::NAMED.mapped),
        Entity::Kasa => Some(kasa::NAMED.mapped),
        Entity::Fiyat | Entity::Barkod => None,
    }
}

/// Applies rows to the web (set-based). Errors are PostgreSQL errors; the caller isolates rows
/// that cause data errors.
pub async fn apply(
    entity: Entity,
    tx: &Transaction<'_>,
    ws: &WebSchema,
    rows: &[&MikroRow],
) -> Result<Applied, tokio_postgres::Error> {
    match entity {
        Entity::Cari => cari::apply(tx, ws, rows).await,
        Entity::Stok => stok::apply(tx, ws, rows).await,
        Entity::FiyatTanim => fiyat_tanim::apply(tx, ws, rows).await,
        Entity::Fiyat => fiyat::apply(tx, ws, rows).await,
        Entity::Barkod => barkod::apply(tx, ws, rows).await,
        Entity::Banka => banka::apply(tx, ws, rows).await,
        Entity::Kasa => kasa::apply(tx, ws, rows).await,
    }
}

/// Finds web rows whose Mikro row no longer exists (given every Mikro key) and deactivates or
/// deletes them per `policy`.
pub async fn reconcile(
    entity: Entity,
    tx: &Transaction<'_>,
    ws: &WebSchema,
    keys: &[Vec<Val>],
    policy: DeletePolicy,
) -> Result<Reconciled, tokio_postgres::Error> {
    match entity {
        Entity::Cari => cari::reconcile(tx, ws, keys, policy).await,
        Entity::Stok => stok::reconcile(tx, ws, keys, policy).await,
        Entity::FiyatTanim => fiyat_tanim::reconcile(tx, ws, keys, policy).await,
        Entity::Fiyat => fiyat::reconcile(tx, ws, keys, policy).await,
        Entity::Barkod => barkod::reconcile(tx, ws, keys, policy).await,
        Entity::Banka => banka::reconcile(tx, ws, keys, policy).await,
        Entity::Kasa => kasa::reconcile(tx, ws, keys, policy).await,
    }
}

/// Text or NULL when empty: Mikro writes N'' for "no value", the web uses NULL.
pub(crate) fn opt(s: &str) -> Option<String> {
    let t = s.trim();
    if t.is_empty() {
        None
    } else {
        Some(t.to_string())
    }
}

/// Keys as a text array (first key column).
pub(crate) fn text_keys(keys: &[Vec<Val>]) -> Vec<String> {
    keys.iter()
        .map(|k| k.first().map(|v| v.s().to_string()).unwrap_or_default())
        .collect()
}
