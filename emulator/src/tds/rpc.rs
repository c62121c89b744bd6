//! RPC requests: `sp_executesql` by ProcID 10 or by name, `sp_prepare` / `sp_execute` /
//! `sp_prepexec` / `sp_unprepare` (ProcIDs 11, 12, 13, 15), and the `@params` declaration
//! string that gives every parameter its T-SQL type.
//!
//! Why the declaration wins over the wire type: tiberius sends a `None` string, date or
//! decimal as bare NULLTYPE (0x1F) while the declaration still names its type, and it sizes
//! decimals from the value; the engine needs the declared type.

use super::types::{read_type_info, read_value, wire_to_sql_type, WireType};
use super::{read_all_headers, Reader, TdsError};
use crate::value::{Param, SqlType, Value};

/// Which procedure an RPC calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcRef {
    /// A well-known ProcID (10 = sp_executesql, …).
    Id(u16),
    /// A procedure name.
    Name(String),
}

impl ProcRef {
    /// The ProcID this reference stands for, resolving the well-known names.
    pub fn known_id(&self) -> Option<u16> {
        match self {
            ProcRef::Id(i) => Some(*i),
            ProcRef::Name(n) => {
                let n = n
                    .trim()
                    .trim_start_matches("sys.")
                    .trim_start_matches("dbo.");
                let n = n.trim_matches(|c| c == '[' || c == ']');
                match n.to_ascii_lowercase().as_str() {
                    "sp_cursor" => Some(1),
                    "sp_cursoropen" => Some(2),
                    "sp_executesql" => Some(10),
                    "sp_prepare" => Some(11),
                    "sp_execute" => Some(12),
                    "sp_prepexec" => Some(13),
                    "sp_unprepare" => Some(15),
                    _ => None,
                }
            }
        }
    }
}

/// One raw RPC parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcParam {
    /// Name with `@`, or empty for positional parameters.
    pub name: String,
    /// fByRefValue: an OUTPUT parameter.
    pub by_ref: bool,
    /// The TYPE_INFO it was sent with.
    pub wire: WireType,
    /// Its decoded value.
    pub value: Value,
}

/// One procedure call of an RPC request.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcCall {
    /// The called procedure.
    pub proc_ref: ProcRef,
    /// Its parameters, in order.
    pub params: Vec<RpcParam>,
}

/// A parsed RPC request (possibly several calls separated by batch flags).
#[derive(Debug, Clone, PartialEq)]
pub struct RpcRequest {
    /// Transaction descriptor from ALL_HEADERS.
    pub tx_descriptor: u64,
    /// The calls, in order.
    pub calls: Vec<RpcCall>,
}

/// Parses an RPC message.
pub fn parse(data: &[u8]) -> Result<RpcRequest, TdsError> {
    let mut r = Reader::new(data);
    let tx_descriptor = read_all_headers(&mut r)?;
    let mut calls = Vec::new();
    while !r.is_empty() {
        let n = r.u16_le("NameLenProcID")?;
        let proc_ref = if n == 0xFFFF {
            ProcRef::Id(r.u16_le("ProcID")?)
        } else {
            ProcRef::Name(r.utf16(n as usize, "ProcName")?)
        };
        let _options = r.u16_le("OptionFlags")?;
        let mut params = Vec::new();
        loop {
            match r.peek_u8() {
                None => break,
                // BatchFlag (7.2+) / NoExecFlag: next call follows.
                Some(0xFF) | Some(0x80) | Some(0xFE) => {
                    r.u8("batch flag")?;
                    break;
                }
                Some(_) => {}
            }
            let name = r.b_varchar("ParamName")?;
            let status = r.u8("StatusFlags")?;
            let wire = read_type_info(&mut r)?;
            let value = read_value(&mut r, &wire)?;
            params.push(RpcParam {
                name,
                by_ref: status & 0x01 != 0,
                wire,
                value,
            });
        }
        calls.push(RpcCall { proc_ref, params });
    }
    Ok(RpcRequest {
        tx_descriptor,
        calls,
    })
}

/// One declared parameter of a `@params` string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// Name with `@`.
    pub name: String,
    /// Declared type.
    pub ty: SqlType,
    /// Declared OUTPUT.
    pub output: bool,
}

/// Splits at top-level commas (not inside parentheses or quotes).
fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut start = 0;
    let mut quote = false;
    for (i, c) in s.char_indices() {
        match c {
            '\'' => quote = !quote,
            '(' if !quote => depth += 1,
            ')' if !quote => depth -= 1,
            ',' if !quote && depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// Parses a T-SQL type name such as `nvarchar(4000)`, `decimal(18, 2)`, `datetime2(7)` or
/// `varchar(max)`.
pub fn parse_type(s: &str) -> Result<SqlType, TdsError> {
    let s = s.trim();
    let (base, args) = match s.find('(') {
        Some(i) => {
            let end = s.rfind(')').ok_or_else(|| bad_type(s))?;
            (s[..i].trim(), Some(&s[i + 1..end]))
        }
        None => (s, None),
    };
    let base = base
        .trim_matches(|c| c == '[' || c == ']')
        .to_ascii_lowercase();
    let nums: Vec<&str> = args
        .map(|a| a.split(',').map(str::trim).collect())
        .unwrap_or_default();
    let num = |i: usize| -> Result<Option<u32>, TdsError> {
        match nums.get(i) {
            None => Ok(None),
            Some(x) if x.eq_ignore_ascii_case("max") => Ok(None),
            Some(x) => x.parse::<u32>().map(Some).map_err(|_| bad_type(s)),
        }
    };
    let is_max = nums.first().is_some_and(|x| x.eq_ignore_ascii_case("max"));
    let len16 = |d: u32| -> Result<Option<u16>, TdsError> {
        if is_max {
            return Ok(None);
        }
        Ok(Some(num(0)?.unwrap_or(d).min(u16::MAX as u32) as u16))
    };
    Ok(match base.as_str() {
        "bit" => SqlType::Bit,
        "tinyint" => SqlType::TinyInt,
        "smallint" => SqlType::SmallInt,
        "int" | "integer" => SqlType::Int,
        "bigint" => SqlType::BigInt,
        "real" => SqlType::Real,
        "float" | "double precision" => match num(0)? {
            Some(n) if n <= 24 => SqlType::Real,
            _ => SqlType::Float,
        },
        "decimal" | "numeric" | "dec" => {
            let p = num(0)?.unwrap_or(18).clamp(1, 38) as u8;
            let sc = num(1)?.unwrap_or(0).min(p as u32) as u8;
            SqlType::Decimal {
                precision: p,
                scale: sc,
            }
        }
        "money" | "smallmoney" => SqlType::Money,
        "nvarchar" | "national character varying" => SqlType::NVarChar(len16(1)?),
        "nchar" | "national character" => SqlType::NChar(len16(1)?.unwrap_or(4000)),
        "varchar" | "character varying" => SqlType::VarChar(len16(1)?),
        "char" | "character" => SqlType::Char(len16(1)?.unwrap_or(8000)),
        "ntext" | "xml" | "sysname" => {
            if base == "sysname" {
                SqlType::NVarChar(Some(128))
            } else {
                SqlType::NVarChar(None)
            }
        }
        "text" => SqlType::VarChar(None),
        "datetime" => SqlType::DateTime,
        "smalldatetime" => SqlType::SmallDateTime,
        "datetime2" | "datetimeoffset" => SqlType::DateTime2(num(0)?.unwrap_or(7).min(7) as u8),
        "date" => SqlType::Date,
        "time" => SqlType::VarChar(Some(16)),
        "uniqueidentifier" => SqlType::UniqueIdentifier,
        "varbinary" | "binary" => SqlType::VarBinary(len16(1)?),
        "image" => SqlType::VarBinary(None),
        _ => return Err(bad_type(s)),
    })
}

fn bad_type(s: &str) -> TdsError {
    TdsError::Invalid(format!(
        "unknown parameter type '{s}' in the @params declaration"
    ))
}

/// Parses a declaration string such as `@P1 int,@P2 nvarchar(4000) OUTPUT`.
pub fn parse_declarations(s: &str) -> Result<Vec<Declared>, TdsError> {
    let mut out = Vec::new();
    for part in split_top(s) {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let part = part.trim_end_matches(';').trim();
        let (name, rest) = part
            .split_once(|c: char| c.is_whitespace())
            .ok_or_else(|| TdsError::Invalid(format!("bad parameter declaration '{part}'")))?;
        if !name.starts_with('@') {
            return Err(TdsError::Invalid(format!(
                "bad parameter declaration '{part}': the name must start with @"
            )));
        }
        let mut rest = rest.trim();
        let mut output = false;
        // Optional AS, trailing OUTPUT/OUT and READONLY.
        if rest.len() > 3 && rest[..3].eq_ignore_ascii_case("as ") {
            rest = rest[3..].trim();
        }
        loop {
            let lower = rest.to_ascii_lowercase();
            if let Some(x) = lower.strip_suffix(" output") {
                rest = rest[..x.len()].trim();
                output = true;
            } else if let Some(x) = lower.strip_suffix(" out") {
                rest = rest[..x.len()].trim();
                output = true;
            } else if let Some(x) = lower.strip_suffix(" readonly") {
                rest = rest[..x.len()].trim();
            } else {
                break;
            }
        }
        // A default value (`= 1`) is allowed in declarations; ignore it.
        if let Some(i) = rest.find('=') {
            rest = rest[..i].trim();
        }
        out.push(Declared {
            name: name.to_string(),
            ty: parse_type(rest)?,
            output,
        });
    }
    Ok(out)
}

/// Pairs the value parameters of an `sp_executesql` / `sp_execute` call with their
/// declarations (by name when named, by position otherwise) into engine parameters.
pub fn bind_params(declared: &[Declared], values: &[RpcParam]) -> Vec<Param> {
    let mut out = Vec::with_capacity(values.len().max(declared.len()));
    for (i, p) in values.iter().enumerate() {
        let decl = if p.name.is_empty() {
            declared.get(i)
        } else {
            // Clients pass parameters in declaration order, so the positional guess is almost
            // always right; only a mismatch pays for the search (a 300-parameter wide-row INSERT
            // would otherwise be quadratic).
            declared
                .get(i)
                .filter(|d| d.name.eq_ignore_ascii_case(&p.name))
                .or_else(|| {
                    declared
                        .iter()
                        .find(|d| d.name.eq_ignore_ascii_case(&p.name))
                })
                .or_else(|| declared.get(i))
        };
        let name = if p.name.is_empty() {
            decl.map(|d| d.name.clone())
                .unwrap_or_else(|| format!("@P{}", i + 1))
        } else {
            p.name.clone()
        };
        let ty = match (decl, &p.wire) {
            (Some(d), _) => d.ty.clone(),
            (None, w) => wire_to_sql_type(w),
        };
        out.push(Param {
            name,
            ty,
            value: p.value.clone(),
        });
    }
    // Declared parameters the call did not pass are NULL (T-SQL would require a default; be
    // lenient and let the engine decide).
    for d in declared.iter().skip(values.len()) {
        if !out.iter().any(|p| p.name.eq_ignore_ascii_case(&d.name)) {
            out.push(Param {
                name: d.name.clone(),
                ty: d.ty.clone(),
                value: Value::Null,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations() {
        let d = parse_declarations(
            "@P1 int,@P2 nvarchar(4000),@P3 datetime2(7),@P4 decimal(18, 2), @P5 nvarchar(max) OUTPUT,@P6 numeric(5,2)",
        )
        .unwrap();
        assert_eq!(d.len(), 6);
        assert_eq!(d[0].ty, SqlType::Int);
        assert_eq!(d[1].ty, SqlType::NVarChar(Some(4000)));
        assert_eq!(d[2].ty, SqlType::DateTime2(7));
        assert_eq!(
            d[3].ty,
            SqlType::Decimal {
                precision: 18,
                scale: 2
            }
        );
        assert_eq!(d[4].ty, SqlType::NVarChar(None));
        assert!(d[4].output);
        assert_eq!(d[5].name, "@P6");
        assert!(parse_declarations("@P1 foo").is_err());
        assert!(parse_declarations("").unwrap().is_empty());
    }
}
