//! Values between the TDS side ([`Value`], typed by [`SqlType`]) and PostgreSQL.
//!
//! Binding: a [`PgArg`] converts a value to whatever PostgreSQL parameter type the prepared
//! statement declared (SQL Server converts implicitly, so a string bound as a number is parsed).
//! Reading: a PostgreSQL value is read by its PostgreSQL type and then coerced to the T-SQL type
//! the engine decided for the column ([`coerce`]), e.g. PostgreSQL's `bigint` COUNT becomes an
//! `int` value, `numeric` AVG of an int column becomes an int, `smallint` storing a `bit` becomes
//! a bool, and `datetime` values are rounded to 1/300 s.

use std::error::Error;

use bytes::BytesMut;
use chrono::{NaiveDate, NaiveDateTime, Timelike};
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::{Decimal, RoundingStrategy};
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::value::{SqlError, SqlType, Value};

type BoxErr = Box<dyn Error + Sync + Send>;

/// A value bound to a PostgreSQL parameter of any type.
#[derive(Debug)]
pub struct PgArg<'a>(pub &'a Value);

fn conv_err(v: &Value, ty: &Type) -> BoxErr {
    format!("cannot convert {v:?} to {ty}").into()
}

fn as_i64(v: &Value, ty: &Type) -> Result<i64, BoxErr> {
    Ok(match v {
        Value::Int(i) => *i,
        Value::Bool(b) => *b as i64,
        Value::Float(f) => f.trunc() as i64,
        Value::Decimal(d) => d.trunc().to_i64().ok_or_else(|| conv_err(v, ty))?,
        Value::String(s) => s.trim().parse::<i64>().map_err(|_| conv_err(v, ty))?,
        _ => return Err(conv_err(v, ty)),
    })
}

fn as_f64(v: &Value, ty: &Type) -> Result<f64, BoxErr> {
    Ok(match v {
        Value::Int(i) => *i as f64,
        Value::Bool(b) => *b as i64 as f64,
        Value::Float(f) => *f,
        Value::Decimal(d) => d.to_f64().ok_or_else(|| conv_err(v, ty))?,
        Value::String(s) => s.trim().parse::<f64>().map_err(|_| conv_err(v, ty))?,
        _ => return Err(conv_err(v, ty)),
    })
}

fn as_dt(v: &Value, ty: &Type) -> Result<NaiveDateTime, BoxErr> {
    Ok(match v {
        Value::DateTime(d) => *d,
        Value::Date(d) => d.and_hms_opt(0, 0, 0).ok_or_else(|| conv_err(v, ty))?,
        Value::String(s) => parse_datetime(s).ok_or_else(|| conv_err(v, ty))?,
        _ => return Err(conv_err(v, ty)),
    })
}

/// Parses the date/time string formats SQL Server accepts most commonly.
pub fn parse_datetime(s: &str) -> Option<NaiveDateTime> {
    let s = s.trim();
    for f in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y%m%d %H:%M:%S%.f",
        "%d.%m.%Y %H:%M:%S",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(s, f) {
            return Some(d);
        }
    }
    for f in ["%Y-%m-%d", "%Y%m%d", "%d.%m.%Y"] {
        if let Ok(d) = NaiveDate::parse_from_str(s, f) {
            return d.and_hms_opt(0, 0, 0);
        }
    }
    None
}

impl ToSql for PgArg<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxErr> {
        let v = self.0;
        if matches!(v, Value::Null) {
            return Ok(IsNull::Yes);
        }
        match *ty {
            Type::INT2 => {
                let i = as_i64(v, ty)?;
                i16::try_from(i)
                    .map_err(|_| conv_err(v, ty))?
                    .to_sql(ty, out)
            }
            Type::INT4 => {
                let i = as_i64(v, ty)?;
                i32::try_from(i)
                    .map_err(|_| conv_err(v, ty))?
                    .to_sql(ty, out)
            }
            Type::INT8 => as_i64(v, ty)?.to_sql(ty, out),
            Type::FLOAT4 => (as_f64(v, ty)? as f32).to_sql(ty, out),
            Type::FLOAT8 => as_f64(v, ty)?.to_sql(ty, out),
            Type::BOOL => (as_i64(v, ty)? != 0).to_sql(ty, out),
            Type::NUMERIC => {
                let d = match v {
                    Value::Decimal(d) => *d,
                    Value::Int(i) => Decimal::from(*i),
                    Value::Bool(b) => Decimal::from(*b as i64),
                    Value::Float(f) => Decimal::from_f64(*f).ok_or_else(|| conv_err(v, ty))?,
                    Value::String(s) => s.trim().parse::<Decimal>().map_err(|_| conv_err(v, ty))?,
                    _ => return Err(conv_err(v, ty)),
                };
                d.to_sql(ty, out)
            }
            Type::TEXT | Type::VARCHAR | Type::BPCHAR => {
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Int(i) => i.to_string(),
                    Value::Float(f) => f.to_string(),
                    Value::Decimal(d) => d.to_string(),
                    Value::Bool(b) => (*b as i32).to_string(),
                    Value::DateTime(d) => d.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
                    Value::Date(d) => d.format("%Y-%m-%d").to_string(),
                    Value::Guid(g) => g.to_string().to_uppercase(),
                    _ => return Err(conv_err(v, ty)),
                };
                s.to_sql(ty, out)
            }
            Type::TIMESTAMP => as_dt(v, ty)?.to_sql(ty, out),
            Type::DATE => as_dt(v, ty)?.date().to_sql(ty, out),
            Type::UUID => {
                let u = match v {
                    Value::Guid(g) => *g,
                    Value::String(s) => Uuid::parse_str(s.trim()).map_err(|_| conv_err(v, ty))?,
                    _ => return Err(conv_err(v, ty)),
                };
                u.to_sql(ty, out)
            }
            Type::BYTEA => match v {
                Value::Bytes(b) => b.to_sql(ty, out),
                _ => Err(conv_err(v, ty)),
            },
            _ => Err(conv_err(v, ty)),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// The type a domain is built on (through nested domains); other types unchanged. Columns
/// declared `tinyint` by older emulators are the domain `emu_catalog.emu_tinyint` over `smallint`, and
/// PostgreSQL describes such a column by the domain's OID.
fn base_type(ty: &Type) -> &Type {
    match ty.kind() {
        tokio_postgres::types::Kind::Domain(b) => base_type(b),
        _ => ty,
    }
}

/// Reads a value of a domain as a value of its base type (`T` decides from the base type).
struct Base<T>(T);

impl<'a, T: tokio_postgres::types::FromSql<'a>> tokio_postgres::types::FromSql<'a> for Base<T> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxErr> {
        T::from_sql(base_type(ty), raw).map(Base)
    }

    fn accepts(ty: &Type) -> bool {
        T::accepts(base_type(ty))
    }
}

/// Reads column `i` of a PostgreSQL row by its PostgreSQL type (a domain by its base type).
pub fn read_value(row: &Row, i: usize) -> Result<Value, SqlError> {
    let ty = row.columns()[i].type_().clone();
    if base_type(&ty) != &ty {
        return match base_type(&ty) {
            &Type::INT2 => Ok(row
                .try_get::<_, Option<Base<i16>>>(i)
                .map_err(|err| SqlError::new(50000, format!("cannot read a {ty} value: {err}")))?
                .map_or(Value::Null, |v| Value::Int(v.0 as i64))),
            other => Err(SqlError::new(
                50000,
                format!("the emulator cannot return PostgreSQL type {ty} (a domain over {other})"),
            )),
        };
    }
    let e = |err: tokio_postgres::Error| {
        SqlError::new(50000, format!("cannot read a {ty} value: {err}"))
    };
    Ok(match ty {
        Type::BOOL => row
            .try_get::<_, Option<bool>>(i)
            .map_err(e)?
            .map_or(Value::Null, Value::Bool),
        Type::INT2 => row
            .try_get::<_, Option<i16>>(i)
            .map_err(e)?
            .map_or(Value::Null, |v| Value::Int(v as i64)),
        Type::INT4 => row
            .try_get::<_, Option<i32>>(i)
            .map_err(e)?
            .map_or(Value::Null, |v| Value::Int(v as i64)),
        Type::INT8 => row
            .try_get::<_, Option<i64>>(i)
            .map_err(e)?
            .map_or(Value::Null, Value::Int),
        Type::FLOAT4 => row
            .try_get::<_, Option<f32>>(i)
            .map_err(e)?
            .map_or(Value::Null, |v| Value::Float(v as f64)),
        Type::FLOAT8 => row
            .try_get::<_, Option<f64>>(i)
            .map_err(e)?
            .map_or(Value::Null, Value::Float),
        Type::NUMERIC => row
            .try_get::<_, Option<Decimal>>(i)
            .map_err(e)?
            .map_or(Value::Null, Value::Decimal),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => row
            .try_get::<_, Option<String>>(i)
            .map_err(e)?
            .map_or(Value::Null, Value::String),
        Type::TIMESTAMP => row
            .try_get::<_, Option<NaiveDateTime>>(i)
            .map_err(e)?
            .map_or(Value::Null, Value::DateTime),
        Type::DATE => row
            .try_get::<_, Option<NaiveDate>>(i)
            .map_err(e)?
            .map_or(Value::Null, Value::Date),
        Type::UUID => row
            .try_get::<_, Option<Uuid>>(i)
            .map_err(e)?
            .map_or(Value::Null, Value::Guid),
        Type::BYTEA => row
            .try_get::<_, Option<Vec<u8>>>(i)
            .map_err(e)?
            .map_or(Value::Null, Value::Bytes),
        other => {
            return Err(SqlError::new(
                50000,
                format!("the emulator cannot return PostgreSQL type {other}"),
            ))
        }
    })
}

/// Rounds to SQL Server's `datetime` resolution (ticks of 1/300 s), as SQL Server does on write.
pub fn round_dt300(d: NaiveDateTime) -> NaiveDateTime {
    let ns = d.nanosecond() as i64 % 1_000_000_000;
    let ticks = (ns * 300 + 500_000_000) / 1_000_000_000;
    let base = d.with_nanosecond(0).unwrap_or(d);
    base + chrono::Duration::nanoseconds(ticks * 10_000_000 / 3)
}

/// Coerces a value assigned to a variable (DECLARE, SET, `SELECT @v = …`): as [`coerce`], and
/// a string longer than the declared length is cut to it (a `char(n)` one padded to it), as
/// SQL Server does silently for variables (`DECLARE @v varchar` holds one character).
pub fn coerce_var(v: Value, ty: &SqlType) -> Value {
    let n = match ty {
        SqlType::NVarChar(Some(n))
        | SqlType::VarChar(Some(n))
        | SqlType::NChar(n)
        | SqlType::Char(n) => usize::from(*n),
        _ => return coerce(v, ty),
    };
    match coerce(v, ty) {
        Value::String(s) => {
            let mut s: String = s.chars().take(n).collect();
            if matches!(ty, SqlType::NChar(_) | SqlType::Char(_)) {
                let len = s.chars().count();
                s.extend(std::iter::repeat_n(' ', n - len));
            }
            Value::String(s)
        }
        other => other,
    }
}

/// Coerces a value read from PostgreSQL (or computed) to the T-SQL type of its column.
pub fn coerce(v: Value, ty: &SqlType) -> Value {
    if matches!(v, Value::Null) {
        return v;
    }
    match ty {
        SqlType::Bit => match v {
            Value::Bool(_) => v,
            Value::Int(i) => Value::Bool(i != 0),
            Value::Decimal(d) => Value::Bool(!d.is_zero()),
            Value::Float(f) => Value::Bool(f != 0.0),
            other => other,
        },
        SqlType::TinyInt | SqlType::SmallInt | SqlType::Int | SqlType::BigInt => match v {
            Value::Int(_) => v,
            Value::Bool(b) => Value::Int(b as i64),
            Value::Decimal(d) => Value::Int(d.trunc().to_i64().unwrap_or(0)),
            Value::Float(f) => Value::Int(f.trunc() as i64),
            Value::String(ref s) => s.trim().parse::<i64>().map(Value::Int).unwrap_or(v),
            other => other,
        },
        SqlType::Real | SqlType::Float => match v {
            Value::Float(_) => v,
            Value::Int(i) => Value::Float(i as f64),
            Value::Decimal(d) => Value::Float(d.to_f64().unwrap_or(0.0)),
            Value::Bool(b) => Value::Float(b as i64 as f64),
            other => other,
        },
        SqlType::Decimal { scale, .. } => {
            let d = match v {
                Value::Decimal(d) => d,
                Value::Int(i) => Decimal::from(i),
                Value::Float(f) => match Decimal::from_f64(f) {
                    Some(d) => d,
                    None => return Value::Float(f),
                },
                Value::Bool(b) => Decimal::from(b as i64),
                other => return other,
            };
            // SQL Server rounds half away from zero (1.005 → 1.01), not to even.
            let mut d =
                d.round_dp_with_strategy(*scale as u32, RoundingStrategy::MidpointAwayFromZero);
            d.rescale(*scale as u32);
            Value::Decimal(d)
        }
        SqlType::Money => match v {
            Value::Decimal(mut d) => {
                d = d.round_dp_with_strategy(4, RoundingStrategy::MidpointAwayFromZero);
                d.rescale(4);
                Value::Decimal(d)
            }
            Value::Int(i) => {
                let mut d = Decimal::from(i);
                d.rescale(4);
                Value::Decimal(d)
            }
            other => other,
        },
        SqlType::NVarChar(_) | SqlType::VarChar(_) | SqlType::NChar(_) | SqlType::Char(_) => {
            match v {
                Value::String(_) => v,
                Value::Int(i) => Value::String(i.to_string()),
                Value::Decimal(d) => Value::String(d.to_string()),
                Value::Float(f) => Value::String(f.to_string()),
                Value::Bool(b) => Value::String((b as i32).to_string()),
                Value::Guid(g) => Value::String(g.to_string().to_uppercase()),
                Value::DateTime(d) => Value::String(d.format("%Y-%m-%d %H:%M:%S%.3f").to_string()),
                Value::Date(d) => Value::String(d.format("%Y-%m-%d").to_string()),
                other => other,
            }
        }
        SqlType::DateTime | SqlType::SmallDateTime => match v {
            Value::DateTime(d) => Value::DateTime(round_dt300(d)),
            Value::Date(d) => d.and_hms_opt(0, 0, 0).map_or(Value::Null, Value::DateTime),
            Value::String(ref s) => {
                parse_datetime(s).map_or(v, |d| Value::DateTime(round_dt300(d)))
            }
            other => other,
        },
        SqlType::DateTime2(_) => match v {
            Value::Date(d) => d.and_hms_opt(0, 0, 0).map_or(Value::Null, Value::DateTime),
            Value::String(ref s) => parse_datetime(s).map_or(v, Value::DateTime),
            other => other,
        },
        SqlType::Date => match v {
            Value::DateTime(d) => Value::Date(d.date()),
            Value::String(ref s) => parse_datetime(s).map_or(v, |d| Value::Date(d.date())),
            other => other,
        },
        SqlType::UniqueIdentifier => match v {
            Value::String(ref s) => Uuid::parse_str(s.trim()).map_or(v, Value::Guid),
            other => other,
        },
        SqlType::VarBinary(_) => v,
    }
}

/// The value of a bound parameter as the engine binds it: `datetime` parameters are rounded to
/// 1/300 s first, exactly as SQL Server rounds them.
pub fn param_value(v: &Value, ty: &SqlType) -> Value {
    match (v, ty) {
        (Value::DateTime(d), SqlType::DateTime | SqlType::SmallDateTime) => {
            Value::DateTime(round_dt300(*d))
        }
        _ => v.clone(),
    }
}

/// Whether a value has the Rust shape the protocol layer expects for a T-SQL type.
pub fn fits(v: &Value, ty: &SqlType) -> bool {
    matches!(
        (v, ty),
        (Value::Null, _)
            | (Value::Bool(_), SqlType::Bit)
            | (
                Value::Int(_),
                SqlType::TinyInt | SqlType::SmallInt | SqlType::Int | SqlType::BigInt
            )
            | (Value::Float(_), SqlType::Real | SqlType::Float)
            | (Value::Decimal(_), SqlType::Decimal { .. } | SqlType::Money)
            | (
                Value::String(_),
                SqlType::NVarChar(_) | SqlType::VarChar(_) | SqlType::NChar(_) | SqlType::Char(_)
            )
            | (
                Value::DateTime(_),
                SqlType::DateTime | SqlType::SmallDateTime | SqlType::DateTime2(_)
            )
            | (Value::Date(_), SqlType::Date)
            | (Value::Guid(_), SqlType::UniqueIdentifier)
            | (Value::Bytes(_), SqlType::VarBinary(_))
    )
}
