//! TYPE_INFO and value encoding: decoding RPC parameter values from the wire, and encoding
//! result columns (COLMETADATA) and values (ROW) from the engine's T-SQL types.
//!
//! Why the strict typing: tiberius reads strictly (an `int` column read as `i64` fails), so a
//! column must travel exactly as SQL Server would type it — INTN of the declared width,
//! DECIMALN with the declared precision and scale, NVARCHAR with the server collation.

use super::{Reader, TdsError};
use crate::value::{SqlError, SqlType, Value};
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use uuid::Uuid;

/// The server collation, Turkish_CI_AS: LCID 0x041F with IgnoreCase, IgnoreKana and
/// IgnoreWidth flags (0x00D0_0000), version 0, sort id 0 (a Windows collation).
pub const COLLATION: [u8; 5] = [0x1F, 0x04, 0xD0, 0x00, 0x00];

/// A TYPE_INFO as read from an RPC parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireType {
    /// NULLTYPE (0x1F): no value bytes, the value is NULL.
    Null,
    /// A fixed-length type (INT1/2/4/8, BIT, FLT4/8, MONEY/4, DATETIME/4) with its byte width.
    Fixed(u8, usize),
    /// INTN with the max length.
    IntN(u8),
    /// BITN.
    BitN,
    /// FLTN with the max length.
    FltN(u8),
    /// MONEYN with the max length.
    MoneyN(u8),
    /// DATETIMN with the max length (4 = smalldatetime, 8 = datetime).
    DateTimeN(u8),
    /// GUID.
    Guid,
    /// DECIMALN / NUMERICN.
    Decimal {
        /// Declared precision.
        precision: u8,
        /// Declared scale.
        scale: u8,
    },
    /// DATEN.
    Date,
    /// TIMEN(scale).
    Time(u8),
    /// DATETIME2N(scale).
    DateTime2(u8),
    /// DATETIMEOFFSETN(scale).
    DateTimeOffset(u8),
    /// NVARCHAR / NCHAR (max length in bytes; 0xFFFF = PLP max).
    NVarChar {
        /// Max length in bytes.
        max: u16,
        /// NCHAR rather than NVARCHAR.
        fixed: bool,
    },
    /// BIGVARCHAR / BIGCHAR with the collation that decides the code page.
    VarChar {
        /// Max length in bytes (0xFFFF = PLP max).
        max: u16,
        /// CHAR rather than VARCHAR.
        fixed: bool,
        /// The 5 collation bytes.
        collation: [u8; 5],
    },
    /// BIGVARBIN / BIGBINARY.
    VarBinary {
        /// Max length (0xFFFF = PLP max).
        max: u16,
    },
    /// NTEXT (legacy long Unicode text).
    NText,
    /// TEXT (legacy long text) with its collation.
    Text([u8; 5]),
    /// IMAGE (legacy long binary).
    Image,
}

fn invalid(msg: impl Into<String>) -> TdsError {
    TdsError::Invalid(msg.into())
}

/// Reads a TYPE_INFO.
pub fn read_type_info(r: &mut Reader<'_>) -> Result<WireType, TdsError> {
    let ty = r.u8("TYPE_INFO")?;
    let collation = |r: &mut Reader<'_>| -> Result<[u8; 5], TdsError> {
        let b = r.bytes(5, "collation")?;
        let mut c = [0u8; 5];
        c.copy_from_slice(b);
        Ok(c)
    };
    Ok(match ty {
        0x1F => WireType::Null,
        0x30 => WireType::Fixed(ty, 1),
        0x32 => WireType::Fixed(ty, 1),
        0x34 => WireType::Fixed(ty, 2),
        0x38 => WireType::Fixed(ty, 4),
        0x3A => WireType::Fixed(ty, 4),
        0x3B => WireType::Fixed(ty, 4),
        0x3C => WireType::Fixed(ty, 8),
        0x3D => WireType::Fixed(ty, 8),
        0x3E => WireType::Fixed(ty, 8),
        0x7A => WireType::Fixed(ty, 4),
        0x7F => WireType::Fixed(ty, 8),
        0x26 => WireType::IntN(r.u8("INTN length")?),
        0x68 => {
            r.u8("BITN length")?;
            WireType::BitN
        }
        0x6D => WireType::FltN(r.u8("FLTN length")?),
        0x6E => WireType::MoneyN(r.u8("MONEYN length")?),
        0x6F => WireType::DateTimeN(r.u8("DATETIMN length")?),
        0x24 => {
            r.u8("GUID length")?;
            WireType::Guid
        }
        0x6A | 0x6C => {
            r.u8("DECIMALN length")?;
            let precision = r.u8("precision")?;
            let scale = r.u8("scale")?;
            WireType::Decimal { precision, scale }
        }
        0x28 => WireType::Date,
        0x29 => WireType::Time(r.u8("TIMEN scale")?),
        0x2A => WireType::DateTime2(r.u8("DATETIME2N scale")?),
        0x2B => WireType::DateTimeOffset(r.u8("DATETIMEOFFSETN scale")?),
        0xE7 | 0xEF => {
            let max = r.u16_le("NVARCHAR length")?;
            collation(r)?;
            WireType::NVarChar {
                max,
                fixed: ty == 0xEF,
            }
        }
        0xA7 | 0xAF => {
            let max = r.u16_le("VARCHAR length")?;
            let c = collation(r)?;
            WireType::VarChar {
                max,
                fixed: ty == 0xAF,
                collation: c,
            }
        }
        0xA5 | 0xAD => WireType::VarBinary {
            max: r.u16_le("VARBINARY length")?,
        },
        0x63 => {
            r.u32_le("NTEXT length")?;
            collation(r)?;
            WireType::NText
        }
        0x23 => {
            r.u32_le("TEXT length")?;
            WireType::Text(collation(r)?)
        }
        0x22 => {
            r.u32_le("IMAGE length")?;
            WireType::Image
        }
        other => return Err(invalid(format!("unsupported parameter type 0x{other:02X}"))),
    })
}

/// The T-SQL type a wire type stands for, used when the declaration string does not name
/// the parameter.
pub fn wire_to_sql_type(w: &WireType) -> SqlType {
    match w {
        WireType::Null => SqlType::NVarChar(Some(4000)),
        WireType::Fixed(t, _) => match t {
            0x30 => SqlType::TinyInt,
            0x32 => SqlType::Bit,
            0x34 => SqlType::SmallInt,
            0x38 => SqlType::Int,
            0x3A => SqlType::SmallDateTime,
            0x3B => SqlType::Real,
            0x3C | 0x7A => SqlType::Money,
            0x3D => SqlType::DateTime,
            0x3E => SqlType::Float,
            _ => SqlType::BigInt,
        },
        WireType::IntN(1) => SqlType::TinyInt,
        WireType::IntN(2) => SqlType::SmallInt,
        WireType::IntN(4) => SqlType::Int,
        WireType::IntN(_) => SqlType::BigInt,
        WireType::BitN => SqlType::Bit,
        WireType::FltN(4) => SqlType::Real,
        WireType::FltN(_) => SqlType::Float,
        WireType::MoneyN(_) => SqlType::Money,
        WireType::DateTimeN(4) => SqlType::SmallDateTime,
        WireType::DateTimeN(_) => SqlType::DateTime,
        WireType::Guid => SqlType::UniqueIdentifier,
        WireType::Decimal { precision, scale } => SqlType::Decimal {
            precision: *precision,
            scale: *scale,
        },
        WireType::Date => SqlType::Date,
        WireType::Time(_) => SqlType::VarChar(Some(16)),
        WireType::DateTime2(s) | WireType::DateTimeOffset(s) => SqlType::DateTime2(*s),
        WireType::NVarChar { max, fixed } => {
            if *max == 0xFFFF {
                SqlType::NVarChar(None)
            } else if *fixed {
                SqlType::NChar(max / 2)
            } else {
                SqlType::NVarChar(Some(max / 2))
            }
        }
        WireType::VarChar { max, fixed, .. } => {
            if *max == 0xFFFF {
                SqlType::VarChar(None)
            } else if *fixed {
                SqlType::Char(*max)
            } else {
                SqlType::VarChar(Some(*max))
            }
        }
        WireType::VarBinary { max } => {
            if *max == 0xFFFF {
                SqlType::VarBinary(None)
            } else {
                SqlType::VarBinary(Some(*max))
            }
        }
        WireType::NText => SqlType::NVarChar(None),
        WireType::Text(_) => SqlType::VarChar(None),
        WireType::Image => SqlType::VarBinary(None),
    }
}

/// The code page of a collation: Turkish (cp1254) for the server's own and for Turkish LCIDs,
/// UTF-8 when the UTF-8 flag is set, cp1252 for the rest.
pub fn collation_encoding(c: &[u8; 5]) -> &'static encoding_rs::Encoding {
    let info = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    let lcid = info & 0xF_FFFF;
    if info & (1 << 26) != 0 {
        return encoding_rs::UTF_8;
    }
    match (lcid, c[4]) {
        (0, 0) | (0x041F, _) | (0x042C, _) | (0x0443, _) => encoding_rs::WINDOWS_1254,
        (_, 128..=130) => encoding_rs::WINDOWS_1254,
        _ => encoding_rs::WINDOWS_1252,
    }
}

fn date_from_days_since_0001(days: u32) -> Result<NaiveDate, TdsError> {
    NaiveDate::from_num_days_from_ce_opt(days as i32 + 1)
        .ok_or_else(|| invalid("date out of range"))
}

fn base_1900() -> NaiveDate {
    NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or_default()
}

fn read_le_uint(b: &[u8]) -> u64 {
    let mut v = 0u64;
    for (i, x) in b.iter().enumerate().take(8) {
        v |= (*x as u64) << (8 * i);
    }
    v
}

fn time_from_increments(inc: u64, scale: u8) -> Result<NaiveTime, TdsError> {
    let scale = scale.min(7) as u32;
    let nanos = inc as u128 * 10u128.pow(9 - scale);
    let secs = (nanos / 1_000_000_000) as u32;
    let frac = (nanos % 1_000_000_000) as u32;
    NaiveTime::from_num_seconds_from_midnight_opt(secs, frac)
        .ok_or_else(|| invalid("time out of range"))
}

fn time_len(scale: u8) -> usize {
    match scale {
        0..=2 => 3,
        3..=4 => 4,
        _ => 5,
    }
}

fn read_plp(r: &mut Reader<'_>) -> Result<Option<Vec<u8>>, TdsError> {
    let total = r.u64_le("PLP length")?;
    if total == u64::MAX {
        return Ok(None);
    }
    let mut out = Vec::new();
    loop {
        let n = r.u32_le("PLP chunk length")? as usize;
        if n == 0 {
            break;
        }
        out.extend_from_slice(r.bytes(n, "PLP chunk")?);
    }
    Ok(Some(out))
}

/// Reads a length-prefixed (u8) value body; `None` for NULL (length 0).
fn read_bytelen<'a>(r: &mut Reader<'a>, what: &'static str) -> Result<Option<&'a [u8]>, TdsError> {
    let n = r.u8(what)? as usize;
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(r.bytes(n, what)?))
}

fn read_i_le(b: &[u8]) -> i64 {
    match b.len() {
        1 => b[0] as i64,
        2 => i16::from_le_bytes([b[0], b[1]]) as i64,
        4 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
        _ => read_le_uint(b) as i64,
    }
}

fn float_from(b: &[u8]) -> f64 {
    if b.len() == 4 {
        f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64
    } else {
        f64::from_bits(read_le_uint(b))
    }
}

fn money_from(b: &[u8]) -> Result<Decimal, TdsError> {
    let cents = match b.len() {
        4 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64,
        8 => {
            let hi = i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64;
            let lo = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as i64;
            (hi << 32) | lo
        }
        _ => return Err(invalid("MONEY length")),
    };
    Ok(Decimal::new(cents, 4))
}

fn datetime_from(b: &[u8]) -> Result<NaiveDateTime, TdsError> {
    if b.len() == 4 {
        let days = u16::from_le_bytes([b[0], b[1]]) as i64;
        let mins = u16::from_le_bytes([b[2], b[3]]) as i64;
        return add_checked(Duration::days(days) + Duration::minutes(mins));
    }
    if b.len() != 8 {
        return Err(invalid("DATETIME length"));
    }
    let days = i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64;
    let ticks = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as i64;
    // 1/300 s ticks, to the nearest nanosecond.
    let nanos = (ticks * 1_000_000_000 + 150) / 300;
    add_checked(Duration::days(days) + Duration::nanoseconds(nanos))
}

/// 1900-01-01 00:00 plus `d`, refusing (instead of panicking on) out-of-range client values.
fn add_checked(d: Duration) -> Result<NaiveDateTime, TdsError> {
    base_1900()
        .and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .checked_add_signed(d)
        .ok_or_else(|| invalid("DATETIME value out of range"))
}

fn guid_from(b: &[u8]) -> Result<Uuid, TdsError> {
    if b.len() != 16 {
        return Err(invalid("GUID length"));
    }
    let mut a = [0u8; 16];
    a.copy_from_slice(b);
    a.swap(0, 3);
    a.swap(1, 2);
    a.swap(4, 5);
    a.swap(6, 7);
    Ok(Uuid::from_bytes(a))
}

fn decimal_from(b: &[u8], scale: u8) -> Result<Decimal, TdsError> {
    if b.is_empty() {
        return Err(invalid("DECIMAL length"));
    }
    let positive = b[0] == 1;
    let mut m: u128 = 0;
    for (i, x) in b[1..].iter().enumerate().take(16) {
        m |= (*x as u128) << (8 * i);
    }
    let m = i128::try_from(m).map_err(|_| invalid("DECIMAL value too large"))?;
    let m = if positive { m } else { -m };
    Decimal::try_from_i128_with_scale(m, scale as u32)
        .map_err(|_| invalid("DECIMAL value beyond 28 digits"))
}

/// Reads a parameter value of wire type `w`.
pub fn read_value(r: &mut Reader<'_>, w: &WireType) -> Result<Value, TdsError> {
    Ok(match w {
        WireType::Null => Value::Null,
        WireType::Fixed(t, n) => {
            let b = r.bytes(*n, "fixed-length value")?;
            match t {
                0x32 => Value::Bool(b[0] != 0),
                0x3B | 0x3E => Value::Float(float_from(b)),
                0x3C | 0x7A => Value::Decimal(money_from(b)?),
                0x3A | 0x3D => Value::DateTime(datetime_from(b)?),
                _ => Value::Int(read_i_le(b)),
            }
        }
        WireType::IntN(_) => match read_bytelen(r, "INTN value")? {
            None => Value::Null,
            Some(b) => Value::Int(read_i_le(b)),
        },
        WireType::BitN => match read_bytelen(r, "BITN value")? {
            None => Value::Null,
            Some(b) => Value::Bool(b[0] != 0),
        },
        WireType::FltN(_) => match read_bytelen(r, "FLTN value")? {
            None => Value::Null,
            Some(b) => Value::Float(float_from(b)),
        },
        WireType::MoneyN(_) => match read_bytelen(r, "MONEYN value")? {
            None => Value::Null,
            Some(b) => Value::Decimal(money_from(b)?),
        },
        WireType::DateTimeN(_) => match read_bytelen(r, "DATETIMN value")? {
            None => Value::Null,
            Some(b) => Value::DateTime(datetime_from(b)?),
        },
        WireType::Guid => match read_bytelen(r, "GUID value")? {
            None => Value::Null,
            Some(b) => Value::Guid(guid_from(b)?),
        },
        WireType::Decimal { scale, .. } => match read_bytelen(r, "DECIMALN value")? {
            None => Value::Null,
            Some(b) => Value::Decimal(decimal_from(b, *scale)?),
        },
        WireType::Date => match read_bytelen(r, "DATEN value")? {
            None => Value::Null,
            Some(b) => Value::Date(date_from_days_since_0001(read_le_uint(b) as u32)?),
        },
        WireType::Time(scale) => match read_bytelen(r, "TIMEN value")? {
            None => Value::Null,
            Some(b) => {
                let t = time_from_increments(read_le_uint(b), *scale)?;
                Value::String(t.format("%H:%M:%S%.f").to_string())
            }
        },
        WireType::DateTime2(scale) | WireType::DateTimeOffset(scale) => {
            match read_bytelen(r, "DATETIME2N value")? {
                None => Value::Null,
                Some(b) => {
                    let tl = time_len(*scale);
                    if b.len() < tl + 3 {
                        return Err(invalid("DATETIME2N length"));
                    }
                    let t = time_from_increments(read_le_uint(&b[..tl]), *scale)?;
                    let d = date_from_days_since_0001(read_le_uint(&b[tl..tl + 3]) as u32)?;
                    let mut dt = d.and_time(t);
                    if let WireType::DateTimeOffset(_) = w {
                        // Stored as UTC plus an offset; hand over the local wall-clock time.
                        if b.len() >= tl + 5 {
                            let off = i16::from_le_bytes([b[tl + 3], b[tl + 4]]) as i64;
                            dt = dt
                                .checked_add_signed(Duration::minutes(off))
                                .ok_or_else(|| invalid("DATETIMEOFFSET out of range"))?;
                        }
                    }
                    Value::DateTime(dt)
                }
            }
        }
        WireType::NVarChar { max, .. } => {
            let bytes = if *max == 0xFFFF {
                read_plp(r)?
            } else {
                read_ushortlen(r)?
            };
            match bytes {
                None => Value::Null,
                Some(b) => Value::String(super::utf16_to_string(&b)),
            }
        }
        WireType::VarChar { max, collation, .. } => {
            let bytes = if *max == 0xFFFF {
                read_plp(r)?
            } else {
                read_ushortlen(r)?
            };
            match bytes {
                None => Value::Null,
                Some(b) => Value::String(collation_encoding(collation).decode(&b).0.into_owned()),
            }
        }
        WireType::VarBinary { max } => {
            let bytes = if *max == 0xFFFF {
                read_plp(r)?
            } else {
                read_ushortlen(r)?
            };
            match bytes {
                None => Value::Null,
                Some(b) => Value::Bytes(b),
            }
        }
        WireType::NText | WireType::Text(_) | WireType::Image => {
            let n = r.u32_le("LONGLEN")?;
            if n == u32::MAX {
                Value::Null
            } else {
                let b = r.bytes(n as usize, "long value")?;
                match w {
                    WireType::NText => Value::String(super::utf16_to_string(b)),
                    WireType::Text(c) => {
                        Value::String(collation_encoding(c).decode(b).0.into_owned())
                    }
                    _ => Value::Bytes(b.to_vec()),
                }
            }
        }
    })
}

fn read_ushortlen(r: &mut Reader<'_>) -> Result<Option<Vec<u8>>, TdsError> {
    let n = r.u16_le("USHORTLEN")?;
    if n == 0xFFFF {
        return Ok(None);
    }
    Ok(Some(r.bytes(n as usize, "value")?.to_vec()))
}

// ---------------------------------------------------------------------------------------------
// Encoding results.

/// Byte length of a DECIMALN value of the given precision (sign byte included).
pub fn decimal_len(precision: u8) -> u8 {
    match precision {
        0..=9 => 5,
        10..=19 => 9,
        20..=28 => 13,
        _ => 17,
    }
}

/// How a [`SqlType`] travels as a result column, after capping oversized declarations.
fn effective(ty: &SqlType) -> SqlType {
    match ty {
        SqlType::NVarChar(Some(n)) if *n > 4000 => SqlType::NVarChar(None),
        SqlType::VarChar(Some(n)) if *n > 8000 => SqlType::VarChar(None),
        SqlType::VarBinary(Some(n)) if *n > 8000 => SqlType::VarBinary(None),
        SqlType::NChar(n) if *n > 4000 => SqlType::NVarChar(None),
        SqlType::Char(n) if *n > 8000 => SqlType::VarChar(None),
        SqlType::Money => SqlType::Decimal {
            precision: 19,
            scale: 4,
        },
        SqlType::Decimal { precision, scale } => SqlType::Decimal {
            precision: (*precision).clamp(1, 38),
            scale: (*scale).min(*precision).min(28),
        },
        SqlType::DateTime2(p) => SqlType::DateTime2((*p).min(7)),
        t => t.clone(),
    }
}

/// Writes the TYPE_INFO of a result column.
pub fn write_type_info(dst: &mut Vec<u8>, ty: &SqlType) {
    match effective(ty) {
        SqlType::Bit => dst.extend_from_slice(&[0x68, 1]),
        SqlType::TinyInt => dst.extend_from_slice(&[0x26, 1]),
        SqlType::SmallInt => dst.extend_from_slice(&[0x26, 2]),
        SqlType::Int => dst.extend_from_slice(&[0x26, 4]),
        SqlType::BigInt => dst.extend_from_slice(&[0x26, 8]),
        SqlType::Real => dst.extend_from_slice(&[0x6D, 4]),
        SqlType::Float => dst.extend_from_slice(&[0x6D, 8]),
        SqlType::Decimal { precision, scale } => {
            dst.extend_from_slice(&[0x6A, decimal_len(precision), precision, scale])
        }
        SqlType::Money => dst.extend_from_slice(&[0x6A, 9, 19, 4]),
        SqlType::NVarChar(n) => {
            dst.push(0xE7);
            let len = n.map(|n| n.max(1) * 2).unwrap_or(0xFFFF);
            dst.extend_from_slice(&len.to_le_bytes());
            dst.extend_from_slice(&COLLATION);
        }
        SqlType::NChar(n) => {
            dst.push(0xEF);
            dst.extend_from_slice(&(n.max(1) * 2).to_le_bytes());
            dst.extend_from_slice(&COLLATION);
        }
        SqlType::VarChar(n) => {
            dst.push(0xA7);
            let len = n.map(|n| n.max(1)).unwrap_or(0xFFFF);
            dst.extend_from_slice(&len.to_le_bytes());
            dst.extend_from_slice(&COLLATION);
        }
        SqlType::Char(n) => {
            dst.push(0xAF);
            dst.extend_from_slice(&n.max(1).to_le_bytes());
            dst.extend_from_slice(&COLLATION);
        }
        SqlType::DateTime => dst.extend_from_slice(&[0x6F, 8]),
        SqlType::SmallDateTime => dst.extend_from_slice(&[0x6F, 4]),
        SqlType::DateTime2(p) => dst.extend_from_slice(&[0x2A, p]),
        SqlType::Date => dst.push(0x28),
        SqlType::UniqueIdentifier => dst.extend_from_slice(&[0x24, 16]),
        SqlType::VarBinary(n) => {
            dst.push(0xA5);
            let len = n.map(|n| n.max(1)).unwrap_or(0xFFFF);
            dst.extend_from_slice(&len.to_le_bytes());
        }
    }
}

fn type_name(ty: &SqlType) -> String {
    match ty {
        SqlType::Bit => "bit".into(),
        SqlType::TinyInt => "tinyint".into(),
        SqlType::SmallInt => "smallint".into(),
        SqlType::Int => "int".into(),
        SqlType::BigInt => "bigint".into(),
        SqlType::Real => "real".into(),
        SqlType::Float => "float".into(),
        SqlType::Decimal { .. } | SqlType::Money => "numeric".into(),
        SqlType::NVarChar(_) | SqlType::NChar(_) => "nvarchar".into(),
        SqlType::VarChar(_) | SqlType::Char(_) => "varchar".into(),
        SqlType::DateTime | SqlType::SmallDateTime => "datetime".into(),
        SqlType::DateTime2(_) => "datetime2".into(),
        SqlType::Date => "date".into(),
        SqlType::UniqueIdentifier => "uniqueidentifier".into(),
        SqlType::VarBinary(_) => "varbinary".into(),
    }
}

fn overflow(ty: &SqlType) -> SqlError {
    SqlError::new(
        8115,
        format!(
            "Arithmetic overflow error converting expression to data type {}.",
            type_name(ty)
        ),
    )
}

/// SQL Server reports an integer that does not fit tinyint/smallint as error 220 with the value
/// (`CAST(300 AS tinyint)`), and int/bigint overflow as 8115.
fn small_int_overflow(ty: &SqlType, value: i64) -> SqlError {
    SqlError::new(
        220,
        format!(
            "Arithmetic overflow error for data type {}, value = {value}.",
            type_name(ty)
        ),
    )
}

fn conversion(v: &Value, ty: &SqlType) -> SqlError {
    let what = match v {
        Value::String(s) => format!(
            "Conversion failed when converting the nvarchar value '{s}' to data type {}.",
            type_name(ty)
        ),
        other => format!(
            "Implicit conversion from {} to {} is not allowed.",
            value_kind(other),
            type_name(ty)
        ),
    };
    SqlError::new(245, what)
}

fn value_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "NULL",
        Value::Bool(_) => "bit",
        Value::Int(_) => "bigint",
        Value::Float(_) => "float",
        Value::Decimal(_) => "numeric",
        Value::String(_) => "nvarchar",
        Value::DateTime(_) => "datetime2",
        Value::Date(_) => "date",
        Value::Guid(_) => "uniqueidentifier",
        Value::Bytes(_) => "varbinary",
    }
}

fn to_i64(v: &Value, ty: &SqlType) -> Result<i64, SqlError> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Bool(b) => Ok(*b as i64),
        Value::Decimal(d) => d.trunc().to_i64().ok_or_else(|| overflow(ty)),
        Value::Float(f) if f.is_finite() && f.abs() < 9.3e18 => Ok(f.trunc() as i64),
        Value::Float(_) => Err(overflow(ty)),
        Value::String(s) => s.trim().parse().map_err(|_| conversion(v, ty)),
        _ => Err(conversion(v, ty)),
    }
}

fn to_f64(v: &Value, ty: &SqlType) -> Result<f64, SqlError> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(i) => Ok(*i as f64),
        Value::Bool(b) => Ok(*b as i64 as f64),
        Value::Decimal(d) => d.to_f64().ok_or_else(|| overflow(ty)),
        Value::String(s) => s.trim().parse().map_err(|_| conversion(v, ty)),
        _ => Err(conversion(v, ty)),
    }
}

fn to_decimal(v: &Value, ty: &SqlType) -> Result<Decimal, SqlError> {
    match v {
        Value::Decimal(d) => Ok(*d),
        Value::Int(i) => Ok(Decimal::from(*i)),
        Value::Bool(b) => Ok(Decimal::from(*b as i64)),
        Value::Float(f) => Decimal::try_from(*f).map_err(|_| overflow(ty)),
        Value::String(s) => s.trim().parse().map_err(|_| conversion(v, ty)),
        _ => Err(conversion(v, ty)),
    }
}

fn parse_datetime(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y%m%d %H:%M:%S%.f",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(s, f) {
            return Some(d);
        }
    }
    parse_date(s).and_then(|d| d.and_hms_opt(0, 0, 0))
}

fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(s, "%Y%m%d"))
        .ok()
}

fn to_datetime(v: &Value, ty: &SqlType) -> Result<NaiveDateTime, SqlError> {
    match v {
        Value::DateTime(d) => Ok(*d),
        Value::Date(d) => d.and_hms_opt(0, 0, 0).ok_or_else(|| overflow(ty)),
        Value::String(s) => parse_datetime(s).ok_or_else(|| {
            SqlError::new(
                241,
                "Conversion failed when converting date and/or time from character string.",
            )
        }),
        _ => Err(conversion(v, ty)),
    }
}

fn to_date(v: &Value, ty: &SqlType) -> Result<NaiveDate, SqlError> {
    match v {
        Value::Date(d) => Ok(*d),
        Value::DateTime(d) => Ok(d.date()),
        Value::String(s) => parse_date(s)
            .or_else(|| parse_datetime(s).map(|d| d.date()))
            .ok_or_else(|| {
                SqlError::new(
                    241,
                    "Conversion failed when converting date and/or time from character string.",
                )
            }),
        _ => Err(conversion(v, ty)),
    }
}

/// Text form of a value for character columns (SQL Server's CONVERT style 121 for dates,
/// upper-case GUIDs).
pub fn to_text(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => return None,
        Value::String(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => (if *b { "1" } else { "0" }).to_string(),
        Value::Float(f) => f.to_string(),
        Value::Decimal(d) => d.to_string(),
        Value::DateTime(d) => d.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
        Value::Date(d) => d.format("%Y-%m-%d").to_string(),
        Value::Guid(g) => g.hyphenated().to_string().to_uppercase(),
        Value::Bytes(b) => {
            let mut s = String::from("0x");
            for x in b {
                s.push_str(&format!("{x:02X}"));
            }
            s
        }
    })
}

/// Encodes text in the server collation's code page (cp1254); characters it cannot represent
/// become `?`, as SQL Server does (encoding_rs alone would emit HTML character references).
pub fn encode_cp1254(s: &str) -> Vec<u8> {
    let (b, _, had_errors) = encoding_rs::WINDOWS_1254.encode(s);
    if !had_errors {
        return b.into_owned();
    }
    let mut out = Vec::with_capacity(s.len());
    let mut tmp = [0u8; 4];
    for c in s.chars() {
        let (b, _, err) = encoding_rs::WINDOWS_1254.encode(c.encode_utf8(&mut tmp));
        if err {
            out.push(b'?');
        } else {
            out.extend_from_slice(&b);
        }
    }
    out
}

fn nanos_of_day(t: NaiveTime) -> u64 {
    t.num_seconds_from_midnight() as u64 * 1_000_000_000 + (t.nanosecond() as u64).min(999_999_999)
}

fn days_since_0001(d: NaiveDate) -> Result<u32, SqlError> {
    if d.year() > 9999 {
        return Err(overflow(&SqlType::Date));
    }
    u32::try_from(d.num_days_from_ce() - 1).map_err(|_| overflow(&SqlType::Date))
}

fn write_plp(dst: &mut Vec<u8>, data: &[u8]) {
    dst.extend_from_slice(&(data.len() as u64).to_le_bytes());
    // Chunks of at most 2^31 bytes; in practice one.
    for c in data.chunks(0x7FFF_FFFF) {
        dst.extend_from_slice(&(c.len() as u32).to_le_bytes());
        dst.extend_from_slice(c);
    }
    dst.extend_from_slice(&0u32.to_le_bytes());
}

fn write_var(
    dst: &mut Vec<u8>,
    max_is_plp: bool,
    data: &[u8],
    ty: &SqlType,
) -> Result<(), SqlError> {
    if max_is_plp {
        write_plp(dst, data);
    } else {
        if data.len() > 8000 {
            return Err(SqlError::new(
                8152,
                format!(
                    "String or binary data would be truncated ({}).",
                    type_name(ty)
                ),
            ));
        }
        dst.extend_from_slice(&(data.len() as u16).to_le_bytes());
        dst.extend_from_slice(data);
    }
    Ok(())
}

/// Writes one value of a result column of type `ty` (in a ROW token). Values of another kind
/// are converted as SQL Server's implicit conversion would; impossible conversions and
/// out-of-range integers become the SQL Server error the client would see.
pub fn write_value(dst: &mut Vec<u8>, ty: &SqlType, v: &Value) -> Result<(), SqlError> {
    let ty = effective(ty);
    if let Value::Null = v {
        match ty {
            SqlType::NVarChar(None) | SqlType::VarChar(None) | SqlType::VarBinary(None) => {
                dst.extend_from_slice(&u64::MAX.to_le_bytes())
            }
            SqlType::NVarChar(_)
            | SqlType::NChar(_)
            | SqlType::VarChar(_)
            | SqlType::Char(_)
            | SqlType::VarBinary(_) => dst.extend_from_slice(&0xFFFFu16.to_le_bytes()),
            _ => dst.push(0),
        }
        return Ok(());
    }
    match &ty {
        SqlType::Bit => {
            let b = match v {
                Value::Bool(b) => *b,
                Value::String(s) if s.eq_ignore_ascii_case("true") => true,
                Value::String(s) if s.eq_ignore_ascii_case("false") => false,
                other => to_i64(other, &ty)? != 0,
            };
            dst.extend_from_slice(&[1, b as u8]);
        }
        SqlType::TinyInt => {
            let i = to_i64(v, &ty)?;
            let x = u8::try_from(i).map_err(|_| small_int_overflow(&ty, i))?;
            dst.extend_from_slice(&[1, x]);
        }
        SqlType::SmallInt => {
            let i = to_i64(v, &ty)?;
            let x = i16::try_from(i).map_err(|_| small_int_overflow(&ty, i))?;
            dst.push(2);
            dst.extend_from_slice(&x.to_le_bytes());
        }
        SqlType::Int => {
            let i = to_i64(v, &ty)?;
            let x = i32::try_from(i).map_err(|_| overflow(&ty))?;
            dst.push(4);
            dst.extend_from_slice(&x.to_le_bytes());
        }
        SqlType::BigInt => {
            let i = to_i64(v, &ty)?;
            dst.push(8);
            dst.extend_from_slice(&i.to_le_bytes());
        }
        SqlType::Real => {
            let f = to_f64(v, &ty)? as f32;
            dst.push(4);
            dst.extend_from_slice(&f.to_le_bytes());
        }
        SqlType::Float => {
            let f = to_f64(v, &ty)?;
            dst.push(8);
            dst.extend_from_slice(&f.to_le_bytes());
        }
        SqlType::Decimal { precision, scale } => {
            let mut d = to_decimal(v, &ty)?;
            d.rescale(*scale as u32);
            let m = d.mantissa();
            let digits = m.unsigned_abs().to_string().len();
            if m != 0 && digits > *precision as usize {
                return Err(overflow(&ty));
            }
            let len = decimal_len(*precision);
            dst.push(len);
            dst.push(if m < 0 { 0 } else { 1 });
            let mag = m.unsigned_abs().to_le_bytes();
            dst.extend_from_slice(&mag[..(len - 1) as usize]);
        }
        SqlType::Money => unreachable_money(dst, v, &ty)?,
        SqlType::NVarChar(_) | SqlType::NChar(_) if !matches!(v, Value::Bytes(_)) => {
            let s = to_text(v).unwrap_or_default();
            let mut b = Vec::with_capacity(s.len() * 2);
            super::put_utf16(&mut b, &s);
            write_var(dst, matches!(ty, SqlType::NVarChar(None)), &b, &ty)?;
        }
        SqlType::VarChar(_) | SqlType::Char(_) if !matches!(v, Value::Bytes(_)) => {
            let s = to_text(v).unwrap_or_default();
            let b = encode_cp1254(&s);
            write_var(dst, matches!(ty, SqlType::VarChar(None)), &b, &ty)?;
        }
        SqlType::VarBinary(n) => {
            let b: Vec<u8> = match v {
                Value::Bytes(b) => b.clone(),
                Value::String(s) => s.as_bytes().to_vec(),
                other => return Err(conversion(other, &ty)),
            };
            write_var(dst, n.is_none(), &b, &ty)?;
        }
        SqlType::DateTime => {
            let dt = to_datetime(v, &ty)?;
            let mut days = (dt.date() - base_1900()).num_days();
            let nanos = nanos_of_day(dt.time()) as u128;
            let mut ticks = ((nanos * 300 + 500_000_000) / 1_000_000_000) as u64;
            if ticks >= 300 * 86_400 {
                ticks -= 300 * 86_400;
                days += 1;
            }
            let days = i32::try_from(days).map_err(|_| overflow(&ty))?;
            if dt.date() < NaiveDate::from_ymd_opt(1753, 1, 1).unwrap_or_default() {
                return Err(SqlError::new(
                    242,
                    "The conversion of a datetime2 data type to a datetime data type resulted in an out-of-range value.",
                ));
            }
            dst.push(8);
            dst.extend_from_slice(&days.to_le_bytes());
            dst.extend_from_slice(&(ticks as u32).to_le_bytes());
        }
        SqlType::SmallDateTime => {
            let dt = to_datetime(v, &ty)?;
            let mut days = (dt.date() - base_1900()).num_days();
            let secs = dt.time().num_seconds_from_midnight() as i64;
            let mut mins = (secs + 30) / 60;
            if mins >= 1440 {
                mins -= 1440;
                days += 1;
            }
            let days = u16::try_from(days).map_err(|_| overflow(&ty))?;
            dst.push(4);
            dst.extend_from_slice(&days.to_le_bytes());
            dst.extend_from_slice(&(mins as u16).to_le_bytes());
        }
        SqlType::DateTime2(p) => {
            let dt = to_datetime(v, &ty)?;
            let unit = 10u64.pow(9 - *p as u32);
            let mut date = dt.date();
            let mut inc = (nanos_of_day(dt.time()) + unit / 2) / unit;
            let per_day = 86_400 * 10u64.pow(*p as u32);
            if inc >= per_day {
                inc -= per_day;
                date = date.succ_opt().ok_or_else(|| overflow(&ty))?;
            }
            let tl = time_len(*p);
            dst.push((tl + 3) as u8);
            dst.extend_from_slice(&inc.to_le_bytes()[..tl]);
            dst.extend_from_slice(&days_since_0001(date)?.to_le_bytes()[..3]);
        }
        SqlType::Date => {
            let d = to_date(v, &ty)?;
            dst.push(3);
            dst.extend_from_slice(&days_since_0001(d)?.to_le_bytes()[..3]);
        }
        SqlType::UniqueIdentifier => {
            let g = match v {
                Value::Guid(g) => *g,
                Value::String(s) => Uuid::parse_str(s.trim()).map_err(|_| {
                    SqlError::new(
                        8169,
                        "Conversion failed when converting from a character string to uniqueidentifier.",
                    )
                })?,
                other => return Err(conversion(other, &ty)),
            };
            let mut a = *g.as_bytes();
            a.swap(0, 3);
            a.swap(1, 2);
            a.swap(4, 5);
            a.swap(6, 7);
            dst.push(16);
            dst.extend_from_slice(&a);
        }
        SqlType::NVarChar(_) | SqlType::NChar(_) | SqlType::VarChar(_) | SqlType::Char(_) => {
            return Err(conversion(v, &ty));
        }
    }
    Ok(())
}

// `effective` maps Money to DECIMAL(19,4); this arm exists only to keep the match total.
fn unreachable_money(dst: &mut Vec<u8>, v: &Value, _ty: &SqlType) -> Result<(), SqlError> {
    write_value(
        dst,
        &SqlType::Decimal {
            precision: 19,
            scale: 4,
        },
        v,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(ty: SqlType, v: Value) -> Value {
        let mut ti = Vec::new();
        write_type_info(&mut ti, &ty);
        let mut r = Reader::new(&ti);
        let w = read_type_info(&mut r).unwrap();
        let mut val = Vec::new();
        write_value(&mut val, &ty, &v).unwrap();
        let mut r = Reader::new(&val);
        let out = read_value(&mut r, &w).unwrap();
        assert!(r.is_empty(), "{ty:?} left bytes");
        out
    }

    #[test]
    fn values_round_trip() {
        assert_eq!(round_trip(SqlType::Int, Value::Int(-5)), Value::Int(-5));
        assert_eq!(
            round_trip(SqlType::TinyInt, Value::Int(255)),
            Value::Int(255)
        );
        let d: Decimal = "-1234.56".parse().unwrap();
        assert_eq!(
            round_trip(
                SqlType::Decimal {
                    precision: 18,
                    scale: 2
                },
                Value::Decimal(d)
            ),
            Value::Decimal(d)
        );
        let dt = NaiveDate::from_ymd_opt(2026, 11, 27)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 123_456_700)
            .unwrap();
        assert_eq!(
            round_trip(SqlType::DateTime2(7), Value::DateTime(dt)),
            Value::DateTime(dt)
        );
        let g = Uuid::new_v4();
        assert_eq!(
            round_trip(SqlType::UniqueIdentifier, Value::Guid(g)),
            Value::Guid(g)
        );
        let s = "Çağrı ŞİŞLİ ığüö".to_string();
        assert_eq!(
            round_trip(SqlType::NVarChar(None), Value::String(s.clone())),
            Value::String(s.clone())
        );
        assert_eq!(
            round_trip(SqlType::VarChar(Some(50)), Value::String(s.clone())),
            Value::String(s)
        );
        assert_eq!(
            round_trip(SqlType::NVarChar(Some(10)), Value::Null),
            Value::Null
        );
    }

    #[test]
    fn varchar_replaces_unmappable_characters() {
        assert_eq!(encode_cp1254("Şu€"), vec![0xDE, b'u', 0x80]);
        assert_eq!(encode_cp1254("a✓b"), b"a?b".to_vec());
    }

    #[test]
    fn hostile_datetime_values_are_errors_not_panics() {
        let b = [0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF];
        assert!(read_value(
            &mut Reader::new(&[8, b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            &WireType::DateTimeN(8)
        )
        .is_err());
        // The largest DATETIMEOFFSET with the largest offset decodes without panicking.
        let mut v = vec![8u8];
        v.extend_from_slice(&(86_399u32).to_le_bytes()[..3]);
        v.extend_from_slice(&(3_652_058u32).to_le_bytes()[..3]);
        v.extend_from_slice(&(840i16).to_le_bytes());
        let _ = read_value(&mut Reader::new(&v), &WireType::DateTimeOffset(0));
    }

    #[test]
    fn encoding_any_value_as_any_type_never_panics() {
        let types = [
            SqlType::Bit,
            SqlType::TinyInt,
            SqlType::SmallInt,
            SqlType::Int,
            SqlType::BigInt,
            SqlType::Real,
            SqlType::Float,
            SqlType::Decimal {
                precision: 38,
                scale: 38,
            },
            SqlType::Decimal {
                precision: 1,
                scale: 0,
            },
            SqlType::Decimal {
                precision: 0,
                scale: 200,
            },
            SqlType::Money,
            SqlType::NVarChar(Some(0)),
            SqlType::NVarChar(Some(u16::MAX)),
            SqlType::NVarChar(None),
            SqlType::NChar(0),
            SqlType::VarChar(Some(1)),
            SqlType::VarChar(None),
            SqlType::Char(u16::MAX),
            SqlType::DateTime,
            SqlType::SmallDateTime,
            SqlType::DateTime2(0),
            SqlType::DateTime2(255),
            SqlType::Date,
            SqlType::UniqueIdentifier,
            SqlType::VarBinary(Some(0)),
            SqlType::VarBinary(None),
        ];
        let max_dt = NaiveDateTime::MAX;
        let min_dt = NaiveDateTime::MIN;
        let values = [
            Value::Null,
            Value::Bool(true),
            Value::Int(i64::MIN),
            Value::Int(i64::MAX),
            Value::Float(f64::NAN),
            Value::Float(f64::INFINITY),
            Value::Float(-1e300),
            Value::Decimal(Decimal::MAX),
            Value::Decimal(Decimal::MIN),
            Value::Decimal(Decimal::new(1, 28)),
            Value::String(String::new()),
            Value::String("x".repeat(70_000)),
            Value::String("9999-12-31 23:59:59.9999999".into()),
            Value::DateTime(max_dt),
            Value::DateTime(min_dt),
            Value::Date(NaiveDate::MAX),
            Value::Date(NaiveDate::MIN),
            Value::Guid(Uuid::nil()),
            Value::Bytes(vec![0; 70_000]),
        ];
        for t in &types {
            let mut ti = Vec::new();
            write_type_info(&mut ti, t);
            for v in &values {
                let mut out = Vec::new();
                let _ = write_value(&mut out, t, v);
            }
        }
    }

    #[test]
    fn int_out_of_range_is_220_for_small_types_and_8115_for_int() {
        let mut v = Vec::new();
        let e = write_value(&mut v, &SqlType::SmallInt, &Value::Int(40_000)).unwrap_err();
        assert_eq!(e.number, 220);
        assert_eq!(
            e.message,
            "Arithmetic overflow error for data type smallint, value = 40000."
        );
        let e = write_value(&mut v, &SqlType::Int, &Value::Int(3_000_000_000)).unwrap_err();
        assert_eq!(e.number, 8115);
    }

    #[test]
    fn datetime_rounds_to_300ths() {
        let dt = NaiveDate::from_ymd_opt(2024, 2, 29)
            .unwrap()
            .and_hms_milli_opt(23, 59, 59, 999)
            .unwrap();
        let mut v = Vec::new();
        write_value(&mut v, &SqlType::DateTime, &Value::DateTime(dt)).unwrap();
        let back = read_value(&mut Reader::new(&v), &WireType::DateTimeN(8)).unwrap();
        assert_eq!(
            back,
            Value::DateTime(
                NaiveDate::from_ymd_opt(2024, 3, 1)
                    .unwrap()
                    .and_hms_opt(0, 0, 0)
                    .unwrap()
            )
        );
    }
}
