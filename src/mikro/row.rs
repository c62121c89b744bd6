//! One Mikro row: catalog defaults overridden by business values, each bound with its column's
//! own SQL type.

use std::borrow::Cow;

use chrono::{NaiveDate, NaiveDateTime, Timelike};
use tiberius::{ColumnData, IntoSql, Query};

use super::*;

/// A business value for a column; converted to the column's SQL type when bound.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Any integer (bound as tinyint/smallint/int after a range check, or as float).
    Int(i64),
    /// A float (only into float columns).
    Float(f64),
    /// Text (only into nvarchar columns, length-checked).
    Text(String),
    /// A local wall-clock datetime (only into datetime columns).
    DateTime(NaiveDateTime),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v.into())
    }
}
impl From<i16> for Value {
    fn from(v: i16) -> Self {
        Value::Int(v.into())
    }
}
impl From<u8> for Value {
    fn from(v: u8) -> Self {
        Value::Int(v.into())
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}
impl From<NaiveDateTime> for Value {
    fn from(v: NaiveDateTime) -> Self {
        Value::DateTime(v)
    }
}
impl From<NaiveDate> for Value {
    /// A date is midnight local (Mikro document dates are date-only datetimes).
    fn from(v: NaiveDate) -> Self {
        Value::DateTime(v.and_time(chrono::NaiveTime::MIN))
    }
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Int(_) => "integer",
            Value::Float(_) => "float",
            Value::Text(_) => "text",
            Value::DateTime(_) => "datetime",
        }
    }
}

/// Why a Mikro row could not be built or written. Building errors name the table and column so a
/// data problem is actionable; `Sql` carries the server's (or the connection's) error.
#[derive(Debug, thiserror::Error)]
pub enum MikroError {
    /// The column is not in the catalog (a typo in code, or a column the Mikro program never writes).
    #[error("{table} has no column {column}")]
    UnknownColumn {
        /// Table name.
        table: &'static str,
        /// The requested column.
        column: String,
    },
    /// A value of the wrong kind for the column's SQL type.
    #[error("{table}.{column} is {expected}; got a {got} value")]
    TypeMismatch {
        /// Table name.
        table: &'static str,
        /// Column name.
        column: &'static str,
        /// The column's SQL type.
        expected: String,
        /// The value's kind.
        got: &'static str,
    },
    /// An integer outside the column type's range.
    #[error("{table}.{column} is {ty}; {value} is out of range")]
    OutOfRange {
        /// Table name.
        table: &'static str,
        /// Column name.
        column: &'static str,
        /// The column's SQL type.
        ty: String,
        /// The value, printed.
        value: String,
    },
    /// Text longer than the column (SQL Server would refuse it with error 8152).
    #[error("{table}.{column} holds at most {max} characters; {value:?} has {len}")]
    TooLong {
        /// Table name.
        table: &'static str,
        /// Column name.
        column: &'static str,
        /// Column width.
        max: u16,
        /// Length of the value in UTF-16 code units (SQL Server's measure).
        len: usize,
        /// The value.
        value: String,
    },
    /// Business columns that were not set; the Mikro program always writes them.
    #[error("{table}: business column(s) not set: {}", columns.join(", "))]
    MissingBusiness {
        /// Table name.
        table: &'static str,
        /// The unset columns.
        columns: Vec<&'static str>,
    },
    /// The server or the connection failed.
    #[error("{0}")]
    Sql(#[from] tiberius::error::Error),
    /// The server answered without the expected RECno.
    #[error("{0}: the INSERT returned no RECno")]
    NoRecno(&'static str),
}

/// A row of a Mikro table being built: catalog defaults plus the caller's overrides.
#[derive(Debug, Clone)]
pub struct Row {
    pub(super) table: &'static Table,
    pub(super) values: Vec<Option<Value>>,
}

impl Row {
    /// A row with every column at the Mikro program's default.
    pub fn new(table: &'static Table) -> Self {
        Row {
            table,
            values: vec![None; table.columns.len()],
        }
    }

    /// The table this row is for.
    pub fn table(&self) -> &'static Table {
        self.table
    }

    /// Overrides one column. Unknown columns are refused at once (they are programming errors);
    /// types and lengths are checked when the row is bound, so the error names the final value.
    pub fn set(&mut self, column: &str, value: impl Into<Value>) -> Result<&mut Self, MikroError> {
        let idx = self
            .table
            .column_index(column)
            .ok_or_else(|| MikroError::UnknownColumn {
                table: self.table.name,
                column: column.to_string(),
            })?;
        self.values[idx] = Some(value.into());
        Ok(self)
    }

    /// Builder-style [`Row::set`].
    pub fn with(mut self, column: &str, value: impl Into<Value>) -> Result<Self, MikroError> {
        self.set(column, value)?;
        Ok(self)
    }

    /// The most parameters [`Batch::insert`] binds for this row: one per value the caller set,
    /// plus the shared "now" (the fixed defaults are literals). Callers splitting a long
    /// document over several calls count with it.
    pub fn max_params(&self) -> usize {
        self.values.iter().filter(|v| v.is_some()).count() + 1
    }

    /// The overridden value of a column, if any.
    pub fn get(&self, column: &str) -> Option<&Value> {
        self.table
            .column_index(column)
            .and_then(|i| self.values[i].as_ref())
    }

    /// Every column's final value, typed for the wire, in INSERT order. `now` is the local
    /// wall-clock time written into the `now` columns (callers pass one instant per document so
    /// create/lastup are equal across its rows, as in the traces).
    pub fn params(&self, now: NaiveDateTime) -> Result<Vec<SqlParam>, MikroError> {
        let t = self.table;
        let mut out = Vec::with_capacity(t.columns.len());
        let mut missing = Vec::new();
        for (col, v) in t.columns.iter().zip(&self.values) {
            let v = match (v, col.default) {
                (Some(v), _) => v.clone(),
                (None, InsertDefault::Int(i)) => Value::Int(i),
                (None, InsertDefault::Float(f)) => Value::Float(f),
                (None, InsertDefault::Text(s)) => Value::Text(s.to_string()),
                (None, InsertDefault::Date(y, m, d)) => match NaiveDate::from_ymd_opt(y, m, d) {
                    Some(d) => d.into(),
                    None => Value::DateTime(mikro_empty_date()),
                },
                (None, InsertDefault::Now) => Value::DateTime(now),
                (None, InsertDefault::Business(_)) => {
                    missing.push(col.name);
                    continue;
                }
            };
            out.push(SqlParam(typed(t.name, col, v)?));
        }
        if !missing.is_empty() {
            return Err(MikroError::MissingBusiness {
                table: t.name,
                columns: missing,
            });
        }
        Ok(out)
    }

    /// Binds every column to `query` (after any parameters already bound).
    pub fn bind(&self, query: &mut Query<'_>, now: NaiveDateTime) -> Result<(), MikroError> {
        for p in self.params(now)? {
            query.bind(p);
        }
        Ok(())
    }
}

/// Mikro's "no date": 1899-12-30 00:00.
pub fn mikro_empty_date() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(1899, 12, 30)
        .unwrap_or(NaiveDate::MIN)
        .and_time(chrono::NaiveTime::MIN)
}

/// The current local wall-clock time in `tz`, as Mikro stores it (no zone). Never UTC: sending UTC
/// put sales on the previous day in production.
pub fn local_now(tz: chrono_tz::Tz) -> NaiveDateTime {
    chrono::Utc::now().with_timezone(&tz).naive_local()
}

pub(super) fn typed(
    table: &'static str,
    col: &Column,
    v: Value,
) -> Result<ColumnData<'static>, MikroError> {
    let mismatch = |v: &Value| MikroError::TypeMismatch {
        table,
        column: col.name,
        expected: col.ty.sql().into_owned(),
        got: v.kind(),
    };
    let range = |i: i64| MikroError::OutOfRange {
        table,
        column: col.name,
        ty: col.ty.sql().into_owned(),
        value: i.to_string(),
    };
    Ok(match (col.ty, v) {
        (SqlType::TinyInt, Value::Int(i)) => {
            ColumnData::U8(Some(u8::try_from(i).map_err(|_| range(i))?))
        }
        (SqlType::SmallInt, Value::Int(i)) => {
            ColumnData::I16(Some(i16::try_from(i).map_err(|_| range(i))?))
        }
        (SqlType::Int, Value::Int(i)) => {
            ColumnData::I32(Some(i32::try_from(i).map_err(|_| range(i))?))
        }
        (SqlType::Float, Value::Int(i)) => ColumnData::F64(Some(i as f64)),
        (SqlType::Float, Value::Float(f)) if f.is_finite() => ColumnData::F64(Some(f)),
        (SqlType::NVarChar(max), Value::Text(s)) => {
            let len = s.encode_utf16().count();
            if len > usize::from(max) {
                return Err(MikroError::TooLong {
                    table,
                    column: col.name,
                    max,
                    len,
                    value: s,
                });
            }
            ColumnData::String(Some(Cow::Owned(s)))
        }
        (SqlType::DateTime, Value::DateTime(dt)) => {
            ColumnData::DateTime(Some(sql_datetime(dt).ok_or_else(|| {
                MikroError::OutOfRange {
                    table,
                    column: col.name,
                    ty: "datetime".into(),
                    value: dt.to_string(),
                }
            })?))
        }
        (_, v) => return Err(mismatch(&v)),
    })
}

/// Converts a local wall-clock time to SQL Server's `datetime` wire value (days since 1900-01-01,
/// 1/300 s ticks), rounding to the nearest tick as SQL Server does. `None` outside datetime's
/// range (1753-01-01 … 9999-12-31).
pub fn sql_datetime(dt: NaiveDateTime) -> Option<tiberius::time::DateTime> {
    let base = NaiveDate::from_ymd_opt(1900, 1, 1)?;
    let min = NaiveDate::from_ymd_opt(1753, 1, 1)?;
    let max = NaiveDate::from_ymd_opt(9999, 12, 31)?;
    if dt.date() < min || dt.date() > max {
        return None;
    }
    let mut days = (dt.date() - base).num_days();
    let nanos = u64::from(dt.num_seconds_from_midnight()) * 1_000_000_000
        + u64::from(dt.nanosecond().min(999_999_999));
    // ticks = round(nanos * 300 / 1e9)
    let mut ticks = (nanos * 3 + 5_000_000) / 10_000_000;
    if ticks >= 300 * 86_400 {
        ticks -= 300 * 86_400;
        days += 1;
    }
    Some(tiberius::time::DateTime::new(
        i32::try_from(days).ok()?,
        u32::try_from(ticks).ok()?,
    ))
}

/// A value already typed for the wire; the form in which row values are bound to a [`Query`].
#[derive(Debug, Clone)]
pub struct SqlParam(pub ColumnData<'static>);

impl<'a> IntoSql<'a> for SqlParam {
    fn into_sql(self) -> ColumnData<'a> {
        self.0
    }
}

impl SqlParam {
    /// An `int` parameter.
    pub fn int(v: i32) -> Self {
        SqlParam(ColumnData::I32(Some(v)))
    }
    /// A `smallint` parameter.
    pub fn smallint(v: i16) -> Self {
        SqlParam(ColumnData::I16(Some(v)))
    }
    /// An `nvarchar` parameter.
    pub fn text(v: impl Into<String>) -> Self {
        SqlParam(ColumnData::String(Some(Cow::Owned(v.into()))))
    }
    /// A `uniqueidentifier` parameter.
    pub fn guid(v: uuid::Uuid) -> Self {
        SqlParam(ColumnData::Guid(Some(v)))
    }
    /// A `datetime` parameter (`None` outside datetime's range).
    pub fn datetime(v: NaiveDateTime) -> Option<Self> {
        sql_datetime(v).map(|d| SqlParam(ColumnData::DateTime(Some(d))))
    }
}
