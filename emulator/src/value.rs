//! The contract between the TDS protocol layer (`tds`) and the T-SQL engine (`engine`).
//!
//! Everything that crosses that boundary is expressed in SQL Server's terms, never PostgreSQL's:
//! the protocol layer must be able to encode a result exactly as SQL Server would type it
//! (tiberius reads strictly: an `int` column read as `i64` fails), so the engine hands over the
//! original T-SQL type of every column and parameter, not whatever PostgreSQL computed.

use chrono::{NaiveDate, NaiveDateTime};
use rust_decimal::Decimal;
use uuid::Uuid;

/// A SQL Server data type, as declared in T-SQL (a column, a parameter, an expression result).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SqlType {
    /// `bit` → BITN.
    Bit,
    /// `tinyint` → INTN(1).
    TinyInt,
    /// `smallint` → INTN(2).
    SmallInt,
    /// `int` → INTN(4).
    Int,
    /// `bigint` → INTN(8).
    BigInt,
    /// `real` → FLTN(4).
    Real,
    /// `float` → FLTN(8).
    Float,
    /// `decimal(p,s)` / `numeric(p,s)` → DECIMALN / NUMERICN.
    Decimal { precision: u8, scale: u8 },
    /// `money` is sent as DECIMALN(19,4) by this emulator (documented difference).
    Money,
    /// `nvarchar(n)`; `None` is `nvarchar(max)` (PLP). `n` is in characters.
    NVarChar(Option<u16>),
    /// `nchar(n)`.
    NChar(u16),
    /// `varchar(n)`; `None` is `varchar(max)`.
    VarChar(Option<u16>),
    /// `char(n)`.
    Char(u16),
    /// `datetime` → DATETIMN(8), 1/300 s resolution.
    DateTime,
    /// `smalldatetime` → DATETIMN(4).
    SmallDateTime,
    /// `datetime2(p)` → DATETIME2N.
    DateTime2(u8),
    /// `date` → DATEN.
    Date,
    /// `uniqueidentifier` → GUID.
    UniqueIdentifier,
    /// `varbinary(n)`; `None` is max.
    VarBinary(Option<u16>),
}

/// A single value crossing the boundary. `Null` carries no type: the column or parameter does.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// Every integer width travels as i64; the column's [`SqlType`] decides the wire width.
    Int(i64),
    Float(f64),
    Decimal(Decimal),
    String(String),
    DateTime(NaiveDateTime),
    Date(NaiveDate),
    Guid(Uuid),
    Bytes(Vec<u8>),
}

/// A result-set column: its name exactly as written in the query (tiberius matches names
/// case-sensitively) and its T-SQL type.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    pub ty: SqlType,
    pub nullable: bool,
}

/// A parameter of an RPC `sp_executesql` call, already decoded from the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// With the leading `@`, e.g. `@P1`.
    pub name: String,
    /// The declared type from the `params` declaration string (or from the wire type when the
    /// declaration is missing).
    pub ty: SqlType,
    pub value: Value,
}

/// An error as SQL Server reports it in an ERROR token.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("Msg {number}, Level {class}, State {state}: {message}")]
pub struct SqlError {
    /// SQL Server's error number: 2627/2601 duplicate key, 547 FK, 515 NULL, 8152 truncation,
    /// 1205 deadlock, 208 invalid object, 207 invalid column, 102 syntax/unsupported, 18456 login.
    pub number: i32,
    /// Severity (16 for user errors, 13 for deadlock, 14 for login).
    pub class: u8,
    pub state: u8,
    pub message: String,
}

impl SqlError {
    /// A severity-16 user error, the usual case.
    pub fn new(number: i32, message: impl Into<String>) -> Self {
        SqlError {
            number,
            class: 16,
            state: 1,
            message: message.into(),
        }
    }

    /// Error 102: syntax error or a construct this emulator does not support.
    pub fn syntax(message: impl Into<String>) -> Self {
        Self::new(102, message)
    }
}

/// A change of transaction state that the protocol layer must announce with ENVCHANGE 8/9/10.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxEvent {
    /// ENVCHANGE 8 with the new descriptor.
    Begin(u64),
    /// ENVCHANGE 9 with the old descriptor.
    Commit(u64),
    /// ENVCHANGE 10 with the old descriptor.
    Rollback(u64),
}

/// One thing a batch or RPC call produced, in order. The protocol layer turns each into tokens:
/// `Rows` → COLMETADATA + ROW*, `Done` → DONE/DONEINPROC (with DONE_COUNT when `rows` is set),
/// `Error` → ERROR (+ DONE with the error bit), `Info` → INFO, `Tx` → ENVCHANGE,
/// `ReturnStatus` → RETURNSTATUS (stored procedures such as `sp_getapplock`).
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    Rows {
        columns: Vec<Column>,
        rows: Vec<Vec<Value>>,
    },
    Done {
        rows: Option<u64>,
    },
    Error(SqlError),
    Info {
        number: i32,
        message: String,
    },
    Tx(TxEvent),
    ReturnStatus(i32),
}
