//! PostgreSQL SQLSTATE → SQL Server error number, class and message.
//!
//! Messages are worded like SQL Server's, with the object and column names as they were
//! declared in T-SQL (looked up in the emulator catalog), because clients and people match on
//! them. Mapping:
//!
//! | SQLSTATE | SQL Server |
//! |---|---|
//! | 23505 unique_violation | 2627 (PRIMARY KEY / UNIQUE constraint) or 2601 (unique index) |
//! | 23502 not_null_violation | 515 |
//! | 23503 foreign_key_violation | 547 |
//! | 23514 check_violation | 547 (220 for the emulator's tinyint range check) |
//! | 22001 string_data_right_truncation | 8152 |
//! | 22003 numeric_value_out_of_range | 8115 |
//! | 22012 division_by_zero | 8134 |
//! | 21000 cardinality_violation | 512 (a subquery used as an expression returned more than one row) |
//! | 22P02 / 22007 / 22008 invalid text representation / datetime | 245 / 241 |
//! | 40P01 deadlock_detected | 1205, class 13 (the engine rolls the transaction back) |
//! | 55P03 lock_not_available | 1222 |
//! | 42P01 undefined_table | 208 |
//! | 42703 undefined_column | 207 |
//! | 42601 syntax_error | 102 |
//! | 42803 grouping_error | 8120 |
//! | EMnnn, or EM000 with the number as HINT (raised by the emulator's own SQL) | that number (e.g. 536/537 for a negative LEFT/SUBSTRING length, 1776) |
//! | anything else | 50000 with PostgreSQL's message (an emulator gap: please report) |

use tokio_postgres::error::SqlState;

use super::catalog::{Catalog, IndexKind};
use super::translate::Kind;
use crate::value::SqlError;

/// Context for wording an error.
pub struct ErrCtx<'a> {
    pub cat: &'a Catalog,
    pub db: &'a str,
    pub kind: Option<Kind>,
}

fn table_name(cat: &Catalog, lc: &str) -> String {
    cat.tables
        .get(lc)
        .map(|t| t.name.clone())
        .unwrap_or_else(|| lc.to_string())
}

fn column_name(cat: &Catalog, table_lc: &str, col_lc: &str) -> String {
    cat.tables
        .get(table_lc)
        .and_then(|t| t.column(col_lc))
        .map(|c| c.name.clone())
        .unwrap_or_else(|| col_lc.to_string())
}

/// `Key (a, b)=(1, x) already exists.` → `(1, x)`.
fn key_value(detail: Option<&str>) -> String {
    detail
        .and_then(|d| {
            let eq = d.find(")=(")?;
            let rest = &d[eq + 2..];
            let end = rest.rfind(')')?;
            Some(rest[..=end].to_string())
        })
        .unwrap_or_else(|| "(?)".into())
}

/// Whether an error is a deadlock (the whole transaction must be rolled back).
pub fn is_deadlock(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED)
}

/// Maps a PostgreSQL error.
pub fn map_pg_error(e: &tokio_postgres::Error, ctx: &ErrCtx<'_>) -> SqlError {
    let Some(db) = e.as_db_error() else {
        return SqlError {
            number: 50000,
            class: 20,
            state: 1,
            message: format!("The backing PostgreSQL connection failed: {e}"),
        };
    };
    let cat = ctx.cat;
    let tlc = db.table().unwrap_or("");
    let tname = table_name(cat, tlc);
    let verb = match ctx.kind {
        Some(Kind::Update) => "UPDATE",
        Some(Kind::Delete) => "DELETE",
        _ => "INSERT",
    };
    let code = db.code();
    if *code == SqlState::UNIQUE_VIOLATION {
        let cname = db.constraint().unwrap_or("");
        let def = cat.indexes.get(cname);
        let shown = def
            .map(|d| d.name.clone())
            .unwrap_or_else(|| cname.to_string());
        let tname = def.map(|d| table_name(cat, &d.table_lc)).unwrap_or(tname);
        let key = key_value(db.detail());
        return match def.map(|d| &d.kind) {
            Some(IndexKind::Index) => SqlError {
                number: 2601,
                class: 14,
                state: 1,
                message: format!(
                    "Cannot insert duplicate key row in object 'dbo.{tname}' with unique index '{shown}'. The duplicate key value is {key}."
                ),
            },
            Some(IndexKind::UniqueConstraint) => SqlError {
                number: 2627,
                class: 14,
                state: 1,
                message: format!(
                    "Violation of UNIQUE KEY constraint '{shown}'. Cannot insert duplicate key in object 'dbo.{tname}'. The duplicate key value is {key}."
                ),
            },
            _ => SqlError {
                number: 2627,
                class: 14,
                state: 1,
                message: format!(
                    "Violation of PRIMARY KEY constraint '{shown}'. Cannot insert duplicate key in object 'dbo.{tname}'. The duplicate key value is {key}."
                ),
            },
        };
    }
    if *code == SqlState::NOT_NULL_VIOLATION {
        let col = column_name(cat, tlc, db.column().unwrap_or(""));
        return SqlError::new(
            515,
            format!(
                "Cannot insert the value NULL into column '{col}', table '{}.dbo.{tname}'; column does not allow nulls. {verb} fails.",
                ctx.db
            ),
        );
    }
    if *code == SqlState::FOREIGN_KEY_VIOLATION || *code == SqlState::CHECK_VIOLATION {
        let cname = db.constraint().unwrap_or("");
        if cname.starts_with("emu_tinyint_") {
            return SqlError::new(
                220,
                "Arithmetic overflow error for data type tinyint.".to_string(),
            );
        }
        let shown = cat
            .indexes
            .get(cname)
            .map(|d| d.name.clone())
            .unwrap_or_else(|| cname.to_string());
        let what = if *code == SqlState::CHECK_VIOLATION {
            "CHECK"
        } else if ctx.kind == Some(Kind::Delete) {
            "REFERENCE"
        } else {
            "FOREIGN KEY"
        };
        return SqlError::new(
            547,
            format!(
                "The {verb} statement conflicted with the {what} constraint \"{shown}\". The conflict occurred in database \"{}\", table \"dbo.{tname}\".",
                ctx.db
            ),
        );
    }
    if *code == SqlState::STRING_DATA_RIGHT_TRUNCATION {
        return SqlError {
            number: 8152,
            class: 16,
            state: 14,
            message: "String or binary data would be truncated.".into(),
        };
    }
    if *code == SqlState::NUMERIC_VALUE_OUT_OF_RANGE {
        if db.message().starts_with("smallint out of range") {
            return SqlError::new(220, "Arithmetic overflow error for data type smallint.");
        }
        return SqlError::new(
            8115,
            "Arithmetic overflow error converting expression to data type.",
        );
    }
    if *code == SqlState::CARDINALITY_VIOLATION {
        return SqlError::new(
            512,
            "Subquery returned more than 1 value. This is not permitted when the subquery follows =, !=, <, <= , >, >= or when the subquery is used as an expression.",
        );
    }
    if *code == SqlState::DIVISION_BY_ZERO {
        return SqlError::new(8134, "Divide by zero error encountered.");
    }
    if *code == SqlState::INVALID_TEXT_REPRESENTATION {
        return SqlError::new(245, format!("Conversion failed: {}", db.message()));
    }
    if *code == SqlState::INVALID_DATETIME_FORMAT || *code == SqlState::DATETIME_FIELD_OVERFLOW {
        return SqlError::new(
            241,
            "Conversion failed when converting date and/or time from character string.",
        );
    }
    if *code == SqlState::T_R_DEADLOCK_DETECTED {
        return SqlError {
            number: 1205,
            class: 13,
            state: 51,
            message: format!(
                "Transaction (Process ID {}) was deadlocked on lock resources with another process and has been chosen as the deadlock victim. Rerun the transaction.",
                std::process::id() % 1000
            ),
        };
    }
    if *code == SqlState::LOCK_NOT_AVAILABLE {
        return SqlError::new(1222, "Lock request time out period exceeded.");
    }
    if *code == SqlState::UNDEFINED_TABLE {
        let m = db.message();
        let name = m
            .split('"')
            .nth(1)
            .map(|n| table_name(cat, n))
            .unwrap_or_default();
        return SqlError::new(208, format!("Invalid object name '{name}'."));
    }
    if *code == SqlState::UNDEFINED_COLUMN {
        let m = db.message();
        let name = m.split('"').nth(1).unwrap_or_default();
        return SqlError::new(207, format!("Invalid column name '{name}'."));
    }
    if *code == SqlState::SYNTAX_ERROR {
        return SqlError::syntax(format!("Incorrect syntax: {}", db.message()));
    }
    if *code == SqlState::GROUPING_ERROR {
        let m = db.message();
        let name = m.split('"').nth(1).unwrap_or_default();
        return SqlError::new(
            8120,
            format!("Column '{name}' is invalid in the select list because it is not contained in either an aggregate function or the GROUP BY clause."),
        );
    }
    if *code == SqlState::FEATURE_NOT_SUPPORTED {
        return SqlError::syntax(db.message().to_string());
    }
    // The emulator's own functions raise SQL Server errors as SQLSTATE 'EMnnn', or 'EM000'
    // with the number as the HINT when it has four digits or more.
    if let Some(digits) = code.code().strip_prefix("EM") {
        let n = db
            .hint()
            .and_then(|h| h.parse::<i32>().ok())
            .or_else(|| digits.parse::<i32>().ok().filter(|n| *n > 0));
        if let Some(n) = n {
            return SqlError::new(n, db.message().to_string());
        }
    }
    if *code == SqlState::QUERY_CANCELED {
        return SqlError::new(3617, "The query was cancelled.");
    }
    SqlError::new(
        50000,
        format!(
            "emulator backing store error {}: {}",
            code.code(),
            db.message()
        ),
    )
}
