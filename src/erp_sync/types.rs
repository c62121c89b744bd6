//! The types the ERP → web machinery and the entities share: what an entity is ([`ErpEntity`],
//! named by an [`Entity`] handle), what it reads from Mikro ([`Spec`]), how values decode
//! ([`Kind`], [`Val`]), what applying rows did ([`Applied`], [`Reconciled`]), the web schema
//! as read from the catalog ([`WebSchema`]) and mapping tables ([`Mapped`]).
//!
//! Why a module of its own: the machinery (`read`, `upsert`, `deletes`) and the entity files
//! both use these, and neither has to know the other to do so.

use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use deadpool_postgres::{Object, Transaction};
use futures::future::BoxFuture;

use super::SyncError;

/// One kind of master data that flows from Mikro to the web: a handle on its [`ErpEntity`].
/// The ordered list of every entity is [`Entity::ALL`] (in `entities`).
#[derive(Clone, Copy)]
pub struct Entity(pub &'static dyn ErpEntity);

impl Entity {
    /// The stable name used on the command line, in the watermark table and in reports.
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// What is read from Mikro.
    pub fn spec(self) -> &'static Spec {
        self.0.spec()
    }

    /// The entity's definition.
    pub fn def(self) -> &'static dyn ErpEntity {
        self.0
    }
}

impl PartialEq for Entity {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Entity {}

impl Hash for Entity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name().hash(state)
    }
}

impl fmt::Debug for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Entity({})", self.name())
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error parsing an entity name; lists the accepted names so the operator can fix the command.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown entity `{name}`; expected one of: {expected}")]
pub struct UnknownEntity {
    /// What was given.
    pub name: String,
    /// The accepted names.
    pub expected: String,
}

/// One entity's Mikro table, web tables and field mapping, in one file under `entities`.
pub trait ErpEntity: Sync {
    /// The stable name (command line, watermark table, reports).
    fn name(&self) -> &'static str;

    /// Other names accepted on the command line (web and Mikro table names, English).
    fn aliases(&self) -> &'static [&'static str];

    /// What is read from Mikro.
    fn spec(&self) -> &'static Spec;

    /// The mapping table (`int_kodmap_*`), if the entity has one.
    fn mapped(&self) -> Option<Mapped> {
        None
    }

    /// Applies rows (already deduplicated by key, values in `Spec::columns` order) to the web,
    /// set-based. Errors are PostgreSQL errors; the caller isolates rows that cause data errors.
    fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        ws: &'a WebSchema,
        rows: &'a [&'a [Val]],
    ) -> BoxFuture<'a, Result<Applied, tokio_postgres::Error>>;

    /// Finds web rows whose Mikro row no longer exists (given every Mikro key) and deactivates
    /// or deletes them per `policy`.
    fn reconcile<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        ws: &'a WebSchema,
        keys: &'a [Vec<Val>],
        policy: DeletePolicy,
    ) -> BoxFuture<'a, Result<Reconciled, tokio_postgres::Error>>;
}

/// What to do with a web row whose Mikro row was deleted.
///
/// Why configurable: deactivating keeps history (old sales still point at the product) and is the
/// safe default; some shops prefer the web to mirror Mikro exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeletePolicy {
    /// Set `aktif = false` where the web table has that column; tables without it
    /// (`cari_hesaplar`, `fiyat_tanimlari`, `bankalar`, `kasalar`, prices) are left alone and
    /// the rows are only counted (reported as `missing`).
    #[default]
    Deactivate,
    /// Delete the web row and its mapping. A row still referenced by other web rows (foreign
    /// key) is deactivated instead where possible, otherwise left and reported.
    Delete,
}

impl FromStr for DeletePolicy {
    type Err = String;
    /// Parses `deactivate` / `delete` (as written in configuration).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_lowercase().as_str() {
            "deactivate" | "pasif" | "aktif_false" => Ok(DeletePolicy::Deactivate),
            "delete" | "sil" => Ok(DeletePolicy::Delete),
            other => Err(format!(
                "unknown delete policy `{other}`; expected deactivate or delete"
            )),
        }
    }
}

/// What a value is expected to be; decoding accepts every SQL Server type that fits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text; NULL becomes "".
    Str,
    /// Integer of any width (tinyint … bigint, bit, integral decimal/float).
    Int,
    /// Number (float, real, decimal/numeric, any integer).
    Float,
}

/// A decoded Mikro value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// Text, trailing blanks removed (SQL Server ignores them in comparisons).
    Str(String),
    /// Any integer width.
    Int(i64),
    /// Any float or decimal.
    Float(f64),
}

impl Val {
    /// Text value ("" for non-text, which decoding never produces for a Str column).
    pub fn s(&self) -> &str {
        match self {
            Val::Str(s) => s,
            _ => "",
        }
    }
    /// Integer value.
    pub fn i(&self) -> i64 {
        match *self {
            Val::Int(i) => i,
            Val::Float(f) => f as i64,
            Val::Str(_) => 0,
        }
    }
    /// Float value.
    pub fn f(&self) -> f64 {
        match *self {
            Val::Float(f) => f,
            Val::Int(i) => i as f64,
            Val::Str(_) => 0.0,
        }
    }
}

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

/// Column types of the web tables this module writes, read once per run.
///
/// Why: numeric values must be compared in the column's own type (a float 10.005 is not the
/// numeric(15,2) 10.01 PostgreSQL stores), and optional columns (`kaynak`, `aktif`,
/// `guncelleme_tarihi`) are used only where the shop's schema has them.
#[derive(Debug, Default)]
pub struct WebSchema {
    /// (table, column) → (formatted type, is text).
    cols: HashMap<(String, String), (String, bool)>,
    tables: Vec<String>,
}

impl WebSchema {
    /// Reads the catalog for `tables` (and the watermark and retry tables).
    pub async fn load(client: &Object, tables: &[&str]) -> Result<WebSchema, SyncError> {
        let mut tables: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
        tables.push("int_erp_sync_watermark".into());
        tables.push("int_erp_sync_retry".into());
        tables.sort();
        tables.dedup();
        let rows = client
            .query(
                "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod),
                        t.typcategory = 'S'
                 FROM pg_attribute a
                 JOIN pg_class c ON c.oid = a.attrelid
                 JOIN pg_type t ON t.oid = a.atttypid
                 WHERE c.oid IN (SELECT to_regclass(x) FROM unnest($1::text[]) AS x)
                   AND a.attnum > 0 AND NOT a.attisdropped",
                &[&tables],
            )
            .await
            .map_err(SyncError::web("reading the web schema"))?;
        let mut ws = WebSchema::default();
        for r in rows {
            let t: String = r.get(0);
            if !ws.tables.contains(&t) {
                ws.tables.push(t.clone());
            }
            ws.cols.insert((t, r.get(1)), (r.get(2), r.get(3)));
        }
        Ok(ws)
    }

    /// Fails with a clear message when a table an entity needs is missing.
    pub fn require(&self, spec: &Spec) -> Result<(), SyncError> {
        for t in spec
            .web_tables
            .iter()
            .chain(["int_erp_sync_watermark", "int_erp_sync_retry"].iter())
        {
            if !self.tables.iter().any(|x| x == t) {
                return Err(SyncError::WebSchema(format!(
                    "table `{t}` is missing in the web database (needed for {}); run `mikro-sync setup`",
                    spec.entity
                )));
            }
        }
        Ok(())
    }

    /// Whether the table has the column.
    pub fn has(&self, table: &str, column: &str) -> bool {
        self.cols
            .contains_key(&(table.to_string(), column.to_string()))
    }

    /// `::type` for a non-text column (so values convert and compare as the column stores
    /// them), "" for text columns and unknown columns (an explicit cast to varchar(n) would
    /// silently truncate; assignment reports the error instead).
    pub fn cast(&self, table: &str, column: &str) -> String {
        match self.cols.get(&(table.to_string(), column.to_string())) {
            Some((ty, false)) => format!("::{ty}"),
            _ => String::new(),
        }
    }
}

/// A web master table with an ERP mapping table (`int_kodmap_*`).
#[derive(Debug, Clone, Copy)]
pub struct Mapped {
    /// Web table (its `id` is the mapped uuid).
    pub web_table: &'static str,
    /// The web column holding the ERP code (unique on the web).
    pub web_code: &'static str,
    /// Mapping table (`int_kodmap_*`).
    pub map_table: &'static str,
    /// Mapping column holding the web id.
    pub map_web: &'static str,
    /// Mapping column holding the ERP code.
    pub map_erp: &'static str,
}

impl Mapped {
    /// A CTE `map AS (…)` that creates missing mappings for the rows of `src` (column `kod`):
    /// rows just inserted (from CTE `ins`, columns `id` and the code) and existing web rows
    /// matched by code that have no mapping yet. Existing mappings are left as they are.
    pub fn map_cte(&self, ins: &str) -> String {
        format!(
            "map AS (
                INSERT INTO {m} ({mw}, {me})
                SELECT i.id, i.{c} FROM {ins} i
                UNION ALL
                SELECT w.id, w.{c} FROM {t} w JOIN src s ON w.{c} = s.kod
                 WHERE NOT EXISTS (SELECT 1 FROM {m} x WHERE x.{mw} = w.id)
                ON CONFLICT DO NOTHING
                RETURNING 1)",
            m = self.map_table,
            mw = self.map_web,
            me = self.map_erp,
            c = self.web_code,
            t = self.web_table,
        )
    }
}
