//! Reading Mikro: the page query, exact datetime anchors, and tolerant value decoding.
//!
//! Why tolerant decoding: Mikro versions differ in integer widths (a flag may be `tinyint` in one
//! version and `smallint` or `int` in another) and in float vs decimal for amounts, and tiberius'
//! typed getters are strict (an `int` column read as `i64` fails). So values are taken as raw
//! [`ColumnData`] and converted by kind ([`Kind`]), accepting every width that fits.
//!
//! Why the datetime care: Mikro's `datetime` has 1/300 s ticks, while tiberius sends
//! `chrono::NaiveDateTime` as `datetime2` with 100 ns units. 2/300 s is 6.666… ms: as datetime2 it
//! is rounded and no longer equals the stored value, so `lastup = @anchor` could fail and keyset
//! paging could skip or repeat rows. [`Stamp`] keeps the raw days + ticks as read; the page query
//! compares a legacy anchor through a ±1 ms window, which holds exactly the anchor's tick on any
//! server (the emulator and SQL Server versions round parameters differently). [`Stamp`] can
//! also be sent back as a legacy `datetime` (DATETIMN 8) value.

use std::borrow::Cow;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use tiberius::{ColumnData, ToSql};

use super::types::Spec;
pub use super::types::{Kind, Val};
use super::SyncError;
use crate::db::ErpClient;

/// A Mikro row timestamp, exact as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stamp {
    /// Legacy `datetime`: days since 1900-01-01 and 1/300 s ticks since midnight (exact).
    Legacy {
        /// Days since 1900-01-01.
        days: i32,
        /// 1/300 s since midnight.
        ticks: u32,
    },
    /// `datetime2` / `smalldatetime` or a value computed on the client.
    Modern(NaiveDateTime),
}

impl Stamp {
    /// The wall-clock value (for display, arithmetic and the watermark table).
    pub fn naive(&self) -> NaiveDateTime {
        match *self {
            Stamp::Legacy { days, ticks } => {
                let base = NaiveDate::from_ymd_opt(1900, 1, 1)
                    .unwrap_or_default()
                    .and_time(NaiveTime::MIN);
                base + chrono::Duration::days(days as i64)
                    + chrono::Duration::nanoseconds(ticks as i64 * 1_000_000_000 / 300)
            }
            Stamp::Modern(n) => n,
        }
    }
}

impl ToSql for Stamp {
    fn to_sql(&self) -> ColumnData<'_> {
        match self {
            Stamp::Legacy { days, ticks } => {
                ColumnData::DateTime(Some(tiberius::time::DateTime::new(*days, *ticks)))
            }
            Stamp::Modern(n) => n.to_sql(),
        }
    }
}

/// Half-width of the comparison window around a legacy `datetime` anchor (less than half of a
/// 1/300 s tick, more than any rounding on the way).
const TICK_WINDOW: chrono::Duration = chrono::Duration::milliseconds(1);

/// Where a page starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Anchor {
    /// From the first row (full run or no watermark).
    Start,
    /// Strictly after this (lastup, RECno) pair.
    After((Stamp, i32)),
    /// Every row stamped at or after this time (the overlap window of an unsettled watermark).
    From(NaiveDateTime),
}

/// One Mikro row, decoded.
#[derive(Debug, Clone)]
pub struct MikroRow {
    /// Mikro IDENTITY (`xxx_RECno`): the retry list re-reads by it, paging breaks ties by it.
    pub recno: i32,
    /// `xxx_lastup_date` as stored.
    pub stamp: Stamp,
    /// Values in the order of `Spec::columns`.
    pub vals: Vec<Val>,
}

/// A row whose values could not be decoded (still has its RECno for the retry list).
#[derive(Debug, Clone)]
pub struct BadRow {
    /// Mikro IDENTITY of the row.
    pub recno: i32,
    /// `xxx_lastup_date` as stored (the row still moves the page anchor).
    pub stamp: Stamp,
    /// The row's key as far as it decoded.
    pub key: String,
    /// Which column failed and why.
    pub reason: String,
    /// Values as far as they decoded (placeholders for the failed ones); the key columns are
    /// still needed for delete detection.
    pub vals: Vec<Val>,
}

/// One page read from Mikro.
#[derive(Debug, Default)]
pub struct Page {
    /// Rows that decoded.
    pub rows: Vec<MikroRow>,
    /// Rows with a value that did not decode (reported, retried).
    pub bad: Vec<BadRow>,
    /// Highest (lastup, RECno) in the page (the next anchor and the watermark candidate).
    pub last: Option<(Stamp, i32)>,
}

fn stamp_of(cd: &ColumnData<'static>) -> Result<Option<Stamp>, String> {
    Ok(match cd {
        ColumnData::DateTime(Some(dt)) => Some(Stamp::Legacy {
            days: dt.days(),
            ticks: dt.seconds_fragments(),
        }),
        ColumnData::DateTime(None)
        | ColumnData::SmallDateTime(None)
        | ColumnData::DateTime2(None) => None,
        ColumnData::SmallDateTime(Some(_)) | ColumnData::DateTime2(Some(_)) => {
            let n: Option<NaiveDateTime> =
                tiberius::FromSql::from_sql(cd).map_err(|e| e.to_string())?;
            n.map(Stamp::Modern)
        }
        other => return Err(format!("expected a datetime, got {}", type_name(other))),
    })
}

fn type_name(cd: &ColumnData<'_>) -> &'static str {
    match cd {
        ColumnData::U8(_) => "tinyint",
        ColumnData::I16(_) => "smallint",
        ColumnData::I32(_) => "int",
        ColumnData::I64(_) => "bigint",
        ColumnData::F32(_) => "real",
        ColumnData::F64(_) => "float",
        ColumnData::Bit(_) => "bit",
        ColumnData::String(_) => "nvarchar",
        ColumnData::Guid(_) => "uniqueidentifier",
        ColumnData::Binary(_) => "binary",
        ColumnData::Numeric(_) => "decimal",
        ColumnData::Xml(_) => "xml",
        ColumnData::DateTime(_) => "datetime",
        ColumnData::SmallDateTime(_) => "smalldatetime",
        ColumnData::Time(_) => "time",
        ColumnData::Date(_) => "date",
        ColumnData::DateTime2(_) => "datetime2",
        ColumnData::DateTimeOffset(_) => "datetimeoffset",
    }
}

/// Decodes one value by kind. NULL text becomes "" (Mikro never stores NULL text, but a NULL
/// must not stop the sync); a NULL number is an error (it would silently become 0 on the web).
pub fn decode(cd: &ColumnData<'static>, kind: Kind) -> Result<Val, String> {
    match kind {
        Kind::Str => match cd {
            ColumnData::String(s) => Ok(Val::Str(
                s.as_deref()
                    .map(Cow::from)
                    .unwrap_or_default()
                    .trim_end()
                    .to_string(),
            )),
            ColumnData::U8(Some(v)) => Ok(Val::Str(v.to_string())),
            ColumnData::I16(Some(v)) => Ok(Val::Str(v.to_string())),
            ColumnData::I32(Some(v)) => Ok(Val::Str(v.to_string())),
            ColumnData::I64(Some(v)) => Ok(Val::Str(v.to_string())),
            ColumnData::Guid(Some(g)) => Ok(Val::Str(g.to_string().to_uppercase())),
            ColumnData::U8(None)
            | ColumnData::I16(None)
            | ColumnData::I32(None)
            | ColumnData::I64(None)
            | ColumnData::Guid(None) => Ok(Val::Str(String::new())),
            other => Err(format!("expected text, got {}", type_name(other))),
        },
        Kind::Int => {
            let v: Option<i64> = match cd {
                ColumnData::U8(v) => v.map(i64::from),
                ColumnData::I16(v) => v.map(i64::from),
                ColumnData::I32(v) => v.map(i64::from),
                ColumnData::I64(v) => *v,
                ColumnData::Bit(v) => v.map(i64::from),
                ColumnData::Numeric(Some(n)) => {
                    let f = f64::from(*n);
                    if f.fract() != 0.0 {
                        return Err(format!("expected an integer, got {f}"));
                    }
                    Some(f as i64)
                }
                ColumnData::F64(Some(f)) if f.fract() == 0.0 => Some(*f as i64),
                ColumnData::F32(Some(f)) if f.fract() == 0.0 => Some(*f as i64),
                ColumnData::Numeric(None) | ColumnData::F64(None) | ColumnData::F32(None) => None,
                other => return Err(format!("expected an integer, got {}", type_name(other))),
            };
            v.map(Val::Int)
                .ok_or_else(|| "NULL where a number is required".to_string())
        }
        Kind::Float => {
            let v: Option<f64> = match cd {
                ColumnData::F64(v) => *v,
                ColumnData::F32(v) => v.map(f64::from),
                ColumnData::Numeric(v) => v.map(f64::from),
                ColumnData::U8(v) => v.map(f64::from),
                ColumnData::I16(v) => v.map(f64::from),
                ColumnData::I32(v) => v.map(f64::from),
                ColumnData::I64(v) => v.map(|i| i as f64),
                ColumnData::Bit(v) => v.map(|b| if b { 1.0 } else { 0.0 }),
                other => return Err(format!("expected a number, got {}", type_name(other))),
            };
            match v {
                None => Err("NULL where a number is required".to_string()),
                Some(f) if !f.is_finite() => Err(format!("not a finite number: {f}")),
                Some(f) => Ok(Val::Float(f)),
            }
        }
    }
}

fn select_list(spec: &Spec) -> String {
    let mut s = format!("{}, {}", spec.lastup, spec.recno);
    for c in spec.columns {
        s.push_str(", ");
        s.push_str(c.name);
    }
    s
}

/// Decodes a result row of `SELECT lastup, recno, columns…`.
pub fn decode_row(spec: &Spec, row: tiberius::Row) -> Result<Result<MikroRow, BadRow>, SyncError> {
    let mut it = row.into_iter();
    let lastup = it.next().unwrap_or(ColumnData::I32(None));
    let recno = it.next().unwrap_or(ColumnData::I32(None));
    let recno = match decode(&recno, Kind::Int) {
        Ok(v) => v.i() as i32,
        Err(e) => {
            return Err(SyncError::ErpSchema(format!(
                "{}.{}: {e} (RECno must be an integer)",
                spec.table, spec.recno
            )))
        }
    };
    // A NULL lastup sorts first in SQL Server; treat it as the oldest possible stamp so the
    // row is still applied and paging stays monotonic.
    let stamp = match stamp_of(&lastup) {
        Ok(Some(s)) => s,
        Ok(None) => Stamp::Legacy {
            days: -53690,
            ticks: 0,
        },
        Err(e) => {
            return Err(SyncError::ErpSchema(format!(
                "{}.{}: {e}",
                spec.table, spec.lastup
            )))
        }
    };
    let mut vals = Vec::with_capacity(spec.columns.len());
    let mut err: Option<String> = None;
    for (col, cd) in spec.columns.iter().zip(it) {
        match decode(&cd, col.kind) {
            Ok(v) => vals.push(v),
            Err(e) => {
                if err.is_none() {
                    err = Some(format!("{}: {e}", col.name));
                }
                vals.push(match col.kind {
                    Kind::Str => Val::Str(String::new()),
                    Kind::Int => Val::Int(0),
                    Kind::Float => Val::Float(0.0),
                });
            }
        }
    }
    if vals.len() != spec.columns.len() {
        return Err(SyncError::ErpSchema(format!(
            "{}: expected {} columns, got {}",
            spec.table,
            spec.columns.len(),
            vals.len()
        )));
    }
    let row = MikroRow { recno, stamp, vals };
    Ok(match err {
        None => Ok(row),
        Some(reason) => Err(BadRow {
            recno,
            stamp,
            key: (spec.key)(&row.vals),
            reason,
            vals: row.vals,
        }),
    })
}

fn into_page(spec: &Spec, rows: Vec<tiberius::Row>) -> Result<Page, SyncError> {
    let mut page = Page {
        rows: Vec::with_capacity(rows.len()),
        ..Page::default()
    };
    for r in rows {
        let decoded = decode_row(spec, r)?;
        let (stamp, recno) = match &decoded {
            Ok(m) => (m.stamp, m.recno),
            Err(b) => (b.stamp, b.recno),
        };
        page.last = Some((stamp, recno));
        match decoded {
            Ok(m) => page.rows.push(m),
            Err(b) => page.bad.push(b),
        }
    }
    Ok(page)
}

/// Reads one page after `anchor`, ordered by (lastup, RECno).
pub async fn read_page(
    erp: &mut ErpClient,
    spec: &Spec,
    anchor: &Anchor,
    page_size: u32,
) -> Result<Page, SyncError> {
    let cols = select_list(spec);
    let top = page_size as i32;
    let ctx = || format!("reading {} page", spec.table);
    let rows = match anchor {
        Anchor::Start => {
            let sql = format!(
                "SELECT TOP (@P1) {cols} FROM {t} ORDER BY {l}, {r}",
                t = spec.table,
                l = spec.lastup,
                r = spec.recno
            );
            erp.query(sql, &[&top]).await
        }
        Anchor::After((stamp @ Stamp::Legacy { .. }, recno)) => {
            // A window of ±1 ms around the anchor instead of `=`: legacy datetime values lie
            // on a 1/300 s grid (3.33 ms apart), so the window holds exactly the anchor's tick
            // however the server rounds the parameter (SQL Server versions and the emulator
            // differ there), and paging neither skips nor repeats rows. Written as a range on
            // lastup AND-ed with the rest, so the lastup index serves it (an OR at the top
            // level would scan the table for every page).
            let n = stamp.naive();
            let (lo, hi) = (n - TICK_WINDOW, n + TICK_WINDOW);
            let sql = format!(
                "SELECT TOP (@P1) {cols} FROM {t} WHERE {l} >= @P3 AND ({l} > @P2 OR {r} > @P4) ORDER BY {l}, {r}",
                t = spec.table,
                l = spec.lastup,
                r = spec.recno
            );
            erp.query(sql, &[&top, &hi, &lo, recno]).await
        }
        Anchor::After((stamp, recno)) => {
            // datetime2 columns: the value read is sent back at full precision; exact.
            let sql = format!(
                "SELECT TOP (@P1) {cols} FROM {t} WHERE {l} > @P2 OR ({l} = @P2 AND {r} > @P3) ORDER BY {l}, {r}",
                t = spec.table,
                l = spec.lastup,
                r = spec.recno
            );
            erp.query(sql, &[&top, stamp, recno]).await
        }
        Anchor::From(t) => {
            let sql = format!(
                "SELECT TOP (@P1) {cols} FROM {tb} WHERE {l} >= @P2 ORDER BY {l}, {r}",
                tb = spec.table,
                l = spec.lastup,
                r = spec.recno
            );
            erp.query(sql, &[&top, t]).await
        }
    }
    .map_err(SyncError::erp(ctx()))?
    .into_first_result()
    .await
    .map_err(SyncError::erp(ctx()))?;
    into_page(spec, rows)
}

/// Runs a statement without parameters and returns the rows of its first result set; a failure
/// to send it or to read the answer names `what` was being done.
async fn simple_rows(
    erp: &mut ErpClient,
    sql: String,
    what: &str,
) -> Result<Vec<tiberius::Row>, SyncError> {
    erp.simple_query(sql)
        .await
        .map_err(SyncError::erp(what))?
        .into_first_result()
        .await
        .map_err(SyncError::erp(what))
}

/// Re-reads rows by RECno (retry list), in chunks; rows no longer in Mikro are simply absent.
/// RECnos are integers formatted into the statement (no injection possible), so one round trip
/// serves up to a thousand rows.
pub async fn read_by_recnos(
    erp: &mut ErpClient,
    spec: &Spec,
    recnos: &[i32],
) -> Result<Vec<Result<MikroRow, BadRow>>, SyncError> {
    let mut out = Vec::with_capacity(recnos.len());
    for chunk in recnos.chunks(1000) {
        let list: Vec<String> = chunk.iter().map(|n| n.to_string()).collect();
        let sql = format!(
            "SELECT {cols} FROM {t} WHERE {r} IN ({list}) ORDER BY {l}, {r}",
            cols = select_list(spec),
            t = spec.table,
            r = spec.recno,
            l = spec.lastup,
            list = list.join(", ")
        );
        let what = format!("re-reading {} rows of the retry list", spec.table);
        for r in simple_rows(erp, sql, &what).await? {
            out.push(decode_row(spec, r)?);
        }
    }
    Ok(out)
}

/// Reads every key of the table (delete detection). Values in the order of `spec.key_columns`.
pub async fn read_keys(erp: &mut ErpClient, spec: &Spec) -> Result<Vec<Vec<Val>>, SyncError> {
    let cols: Vec<&str> = spec.key_columns.iter().map(|c| c.name).collect();
    let sql = format!("SELECT {} FROM {}", cols.join(", "), spec.table);
    let rows = simple_rows(erp, sql, &format!("reading {} keys", spec.table)).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let mut vals = Vec::with_capacity(cols.len());
        for (c, cd) in spec.key_columns.iter().zip(r) {
            vals.push(
                decode(&cd, c.kind)
                    .map_err(|e| SyncError::ErpSchema(format!("{}.{}: {e}", spec.table, c.name)))?,
            );
        }
        out.push(vals);
    }
    Ok(out)
}

/// Row count (for a progress bar with an end on full runs).
pub async fn count(erp: &mut ErpClient, spec: &Spec) -> Result<u64, SyncError> {
    let sql = format!("SELECT COUNT(*) FROM {}", spec.table);
    let ctx = || format!("counting {}", spec.table);
    let row = erp
        .simple_query(sql)
        .await
        .map_err(SyncError::erp(ctx()))?
        .into_row()
        .await
        .map_err(SyncError::erp(ctx()))?;
    Ok(row
        .and_then(|r| r.into_iter().next())
        .and_then(|cd| decode(&cd, Kind::Int).ok())
        .map(|v| v.i().max(0) as u64)
        .unwrap_or(0))
}

/// The company's current wall-clock time: the clock Mikro stamps `lastup_date` with (its
/// clients write their local time, DOMAIN §4). Taken from this machine's UTC clock in the
/// configured time zone rather than from the SQL Server's `GETDATE()`, whose time zone is the
/// server OS setting and need not be the company's (the emulator answers in UTC, a hosted SQL
/// Server may too). Clock skew between machines is what the overlap absorbs.
pub fn company_now(tz: chrono_tz::Tz) -> NaiveDateTime {
    tz.from_utc_datetime(&chrono::Utc::now().naive_utc())
        .naive_local()
}
