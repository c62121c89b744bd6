//! The catalog's types: a Mikro table, its columns, their SQL types and insert defaults.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// SQL Server type of a Mikro column, as inferred from the traces; decides how a value is bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlType {
    /// `tinyint` (0..=255): flags.
    TinyInt,
    /// `smallint`: types, kinds, user numbers, fileid.
    SmallInt,
    /// `int`: numbers, pointers, RECids, `cha_vade`.
    Int,
    /// `float`: every amount, quantity and rate (Mikro stores money as float).
    Float,
    /// `nvarchar(n)`: text; longer values are rejected (SQL Server would fail with 8152).
    NVarChar(u16),
    /// `datetime`: local wall-clock time, 1/300 s resolution.
    DateTime,
}

impl SqlType {
    /// The T-SQL spelling, for messages and DDL.
    pub fn sql(self) -> Cow<'static, str> {
        match self {
            SqlType::TinyInt => "tinyint".into(),
            SqlType::SmallInt => "smallint".into(),
            SqlType::Int => "int".into(),
            SqlType::Float => "float".into(),
            SqlType::NVarChar(n) => format!("nvarchar({n})").into(),
            SqlType::DateTime => "datetime".into(),
        }
    }
}

/// What the Mikro program writes into a column when the caller does not override it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum InsertDefault {
    /// An integer literal (`0`, `1`, `51` …); bound with the column's type (also for float columns).
    Int(i64),
    /// A decimal literal.
    Float(f64),
    /// An `N'…'` literal.
    Text(&'static str),
    /// A date literal such as `'18991230'` (Mikro's "no date"), midnight.
    Date(i32, u32, u32),
    /// The current local wall-clock time in the company's zone (create/lastup dates).
    Now,
    /// A column that always carries business data (the TSV says `<document date>`, `<amount>` …):
    /// the caller must set it, a row without it is refused.
    Business(&'static str),
}

/// One column of a Mikro table, in INSERT order.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Column name, spelled exactly as Mikro spells it (`cha_evrak_tip`, `sth_evraktip` …).
    pub name: &'static str,
    /// SQL type.
    pub ty: SqlType,
    /// Value when not overridden.
    pub default: InsertDefault,
}

/// A Mikro table: its INSERT column list and its RECno columns.
#[derive(Debug)]
pub struct Table {
    /// Table name (schema `dbo`).
    pub name: &'static str,
    /// The IDENTITY column (`cha_RECno` …), not in the INSERT list.
    pub identity: &'static str,
    /// The column the Mikro program sets to the new RECno right after the INSERT.
    pub recid_recno: &'static str,
    /// Every inserted column, in the Mikro program's order.
    pub columns: &'static [Column],
}

impl Table {
    /// Index of a column by name; ASCII case-insensitive, as SQL Server identifiers are.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// `INSERT INTO dbo.<T> (<every column>) VALUES (@P<first>, …)`: the INSERT with parameters
    /// numbered from `first`, so callers can batch it after other parameterised statements.
    pub fn insert_sql_at(&self, first: usize) -> String {
        let mut sql = String::with_capacity(self.columns.len() * 32);
        sql.push_str("INSERT INTO dbo.");
        sql.push_str(self.name);
        sql.push_str(" (");
        for (i, c) in self.columns.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(c.name);
        }
        sql.push_str(") VALUES (");
        for i in 0..self.columns.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str("@P");
            sql.push_str(&(first + i).to_string());
        }
        sql.push(')');
        sql
    }

    /// The statement [`insert`] sends, as the Mikro program does it in one round trip: INSERT, then
    /// `RECid_RECno = RECno` for the new row (found by `SCOPE_IDENTITY()`), then the new RECno.
    /// Built once per table so the text is stable and the server can cache its plan.
    pub fn insert_with_recid_sql(&'static self) -> &'static str {
        cached_sql(self.name, "insert_with_recid", || {
            format!(
                "{}; UPDATE dbo.{} SET {} = {} WHERE {} = SCOPE_IDENTITY(); \
                 SELECT CAST(SCOPE_IDENTITY() AS int) AS recno",
                self.insert_sql_at(1),
                self.name,
                self.recid_recno,
                self.identity,
                self.identity
            )
        })
    }
}

/// Returns a statement text built once per (table, variant) and kept for the process lifetime.
/// Stable texts let the server (and the emulator) reuse parsed plans.
pub fn cached_sql(table: &str, variant: &str, build: impl FnOnce() -> String) -> &'static str {
    static CACHE: OnceLock<Mutex<HashMap<(String, String), &'static str>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut guard = match cache.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    let key = (table.to_string(), variant.to_string());
    if let Some(s) = guard.get(&key) {
        return s;
    }
    let s: &'static str = Box::leak(build().into_boxed_str());
    guard.insert(key, s);
    s
}
