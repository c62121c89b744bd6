//! T-SQL AST → PostgreSQL SQL text, with T-SQL typing decided at the same time.
//!
//! The translator is a whitelist: it emits PostgreSQL text only for constructs it knows, and
//! everything else (including every PostgreSQL-only construct: `$1`, `LIMIT`, `RETURNING`,
//! `ON CONFLICT`, `::`, `now()`, `ILIKE`, `||`, double-quoted strings) is error 102 naming it.
//! Client SQL text never reaches PostgreSQL untranslated.
//!
//! Every expression is translated into a [`TExpr`]: its PostgreSQL text and its T-SQL type,
//! decided by SQL Server's rules (COUNT(*) int, SUM(int) int, ISNULL = first argument's type,
//! SCOPE_IDENTITY() numeric(38,0), literals int / numeric(p,s) / varchar / nvarchar, …).
//! Result sets are typed from these, never from what PostgreSQL computed.
//!
//! Parameters (`@P1`), variables (`@v`) and session values (`@@ROWCOUNT`, `SCOPE_IDENTITY()`)
//! become typed PostgreSQL parameters `$n` ([`Bind`]), so one prepared statement serves every
//! call of the same text.
//!
//! Identifiers are lower-cased and always quoted in PostgreSQL; result column names are kept as
//! written (tiberius matches them case-sensitively).

use std::collections::HashMap;
use std::sync::Arc;

use sqlparser::ast::{
    self, BinaryOperator, CastKind, DataType, Expr, FromTable, FunctionArg, FunctionArgExpr,
    FunctionArguments, GroupByExpr, JoinConstraint, JoinOperator, LimitClause, ObjectName,
    ObjectNamePart, OrderByKind, OutputClause, Query, Select, SelectItem, SetExpr, SetOperator,
    SetQuantifier, Statement, TableFactor, TableWithJoins, TopQuantity, UnaryOperator, Value as AV,
};

mod expressions;
mod queries;
mod statements;

use super::catalog::{
    ident_key, is_integer, is_numeric, is_string, is_temporal, pg_type_name, precedence,
    quote_ident, quote_lit, Catalog, ColumnDef, TableDef,
};
use crate::value::{SqlError, SqlType};

/// `@@VERSION`: SQL Server 2022 16.0.1000, the version PRELOGIN and LOGINACK announce.
pub const SERVER_VERSION_TEXT: &str =
    "Microsoft SQL Server 2022 (RTM) - 16.0.1000.6 (X64) \n\tmikro-emulator (TDS on PostgreSQL)";

/// Where the value of a `$n` parameter comes from at execution time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Bind {
    /// The n-th RPC parameter.
    Param(usize),
    /// A `DECLARE`d variable (lower-cased name with `@`).
    Var(String),
    RowCount,
    /// @@ERROR: the number of the last statement's error, 0 after a successful statement.
    Error,
    /// ERROR_NUMBER() / ERROR_MESSAGE() / ERROR_SEVERITY() / ERROR_STATE() / ERROR_LINE()
    /// inside a CATCH block (NULL elsewhere).
    ErrNumber,
    ErrMessage,
    ErrSeverity,
    ErrState,
    ErrLine,
    /// XACT_STATE(): 1 in a transaction, 0 outside.
    XactState,
    TranCount,
    ScopeIdentity,
    Identity,
    /// An integer literal of a FROM-less SELECT answered by the engine (`SELECT @@TRANCOUNT,
    /// 17`); never referenced in the PostgreSQL text.
    Int(i64),
}

/// A `$n` slot: its source and the T-SQL type it is bound as.
#[derive(Debug, Clone)]
pub struct BindSlot {
    pub src: Bind,
    pub ty: SqlType,
}

/// A result column of a plan.
#[derive(Debug, Clone)]
pub struct OutCol {
    pub name: String,
    /// Lower-cased name as PostgreSQL sees it (for ORDER BY alias and derived tables).
    pub lc: String,
    pub ty: SqlType,
    pub nullable: bool,
    /// Named by an explicit alias (`expr AS name`).
    pub aliased: bool,
}

/// What kind of statement a plan is (decides DONE counts and @@ROWCOUNT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Select,
    Insert,
    Update,
    Delete,
}

/// A compiled DML/SELECT statement.
#[derive(Debug, Clone)]
pub struct SqlPlan {
    pub pg: String,
    pub binds: Vec<BindSlot>,
    /// Result columns sent to the client (empty for DML without OUTPUT).
    pub columns: Vec<OutCol>,
    pub kind: Kind,
    /// PostgreSQL returns rows (SELECT, or DML with RETURNING).
    pub returns_rows: bool,
    /// `SELECT @a = x, @b = y`: the variables assigned from the last row (no result set).
    pub assign: Vec<(String, SqlType)>,
    /// The last PostgreSQL column is the IDENTITY value (for SCOPE_IDENTITY), not sent.
    pub identity_col: bool,
    /// Tables read with UPDLOCK/HOLDLOCK/XLOCK/SERIALIZABLE: locked (advisory) first.
    pub lock_tables: Vec<String>,
    /// After an INSERT with an explicit IDENTITY value: `(table, column)` to reseed.
    pub reseed: Option<(String, String)>,
    /// The target table (declared name) of DML, for error messages.
    pub target: Option<Arc<TableDef>>,
    /// `SELECT @P1 AS a, @v AS b` (only parameters/variables, no FROM): answered without a
    /// PostgreSQL round trip, from these bind slots (one per column). Also keeps datetime2's
    /// 100 ns precision, which PostgreSQL's microsecond timestamps would lose.
    pub local: Option<Vec<usize>>,
}

/// A translated expression.
#[derive(Debug, Clone)]
pub struct TExpr {
    pub sql: String,
    /// `None` for the NULL literal.
    pub ty: Option<SqlType>,
    /// An untyped literal (string/number/NULL): PostgreSQL coerces it, no cast needed.
    pub literal: bool,
    pub nullable: bool,
    /// The column name SQL Server would give this expression in a result set.
    pub name: String,
}

impl TExpr {
    fn new(sql: String, ty: SqlType) -> TExpr {
        TExpr {
            sql,
            ty: Some(ty),
            literal: false,
            nullable: true,
            name: String::new(),
        }
    }
    fn ty_or(&self, d: SqlType) -> SqlType {
        self.ty.clone().unwrap_or(d)
    }
}

#[derive(Debug, Clone)]
struct ScopeTable {
    alias: String,
    def: Arc<TableDef>,
}

/// The target of UPDATE/DELETE … FROM: its table, alias, the other FROM items rendered for
/// PostgreSQL, and join conditions moved to WHERE.
type DmlFrom = (Arc<TableDef>, String, Option<String>, Vec<String>);

/// Variable types visible to the statement being compiled.
pub type VarTypes = HashMap<String, SqlType>;

/// Error 102 naming a construct.
pub fn unsupported(what: impl std::fmt::Display) -> SqlError {
    SqlError::syntax(format!(
        "Incorrect syntax near '{what}': not supported by the emulator's T-SQL subset."
    ))
}

fn invalid_object(name: &str) -> SqlError {
    SqlError::new(208, format!("Invalid object name '{name}'."))
}

fn invalid_column(name: &str) -> SqlError {
    SqlError::new(207, format!("Invalid column name '{name}'."))
}

/// The translator for one statement.
pub struct Translator<'a> {
    cat: &'a Catalog,
    params: &'a [(String, SqlType)],
    vars: &'a VarTypes,
    pub binds: Vec<BindSlot>,
    bind_ix: HashMap<Bind, usize>,
    pub locks: Vec<String>,
    scopes: Vec<Vec<ScopeTable>>,
    /// Inside OUTPUT: the pseudo-table names allowed (`inserted`/`deleted`); empty elsewhere.
    output_alias: &'static [&'static str],
    /// Emit bare column names (CHECK constraints, index filters).
    unqualified: bool,
    /// Common table expressions in scope (innermost last): name key → columns.
    ctes: Vec<(String, Arc<TableDef>)>,
    /// Aggregate calls translated so far (tells `SELECT DISTINCT COUNT(*)` from a plain list).
    aggregates: usize,
    /// The character GROUP BY keys (stored-value expressions) of the selects being translated,
    /// with the scope depth of each select: such a key read in the select list, HAVING or ORDER
    /// BY is `min()` of its group's stored values, while the group compares it without
    /// trailing spaces.
    group_keys: Vec<(usize, Vec<String>)>,
    /// The keys of the last SELECT translated, if it grouped its rows (for its ORDER BY).
    last_select_keys: Option<(usize, Vec<String>)>,
}

/// `SCOPE_IDENTITY()` (no arguments, any casing or schema prefix): bound locally by the
/// translator, and recognised by the engine when it pipelines `SET @v = SCOPE_IDENTITY()`.
pub fn is_scope_identity_call(f: &ast::Function) -> bool {
    (matches!(&f.args, FunctionArguments::List(l) if l.args.is_empty())
        || matches!(f.args, FunctionArguments::None))
        && name_parts(&f.name)
            .last()
            .is_some_and(|n| n.eq_ignore_ascii_case("scope_identity"))
}

/// Object name parts as written (brackets removed).
pub fn name_parts(n: &ObjectName) -> Vec<String> {
    n.0.iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => i.value.clone(),
            ObjectNamePart::Function(f) => f.name.value.clone(),
        })
        .collect()
}

impl<'a> Translator<'a> {
    /// A translator over a catalog snapshot, the RPC parameters and the batch's variables.
    pub fn new(cat: &'a Catalog, params: &'a [(String, SqlType)], vars: &'a VarTypes) -> Self {
        Translator {
            cat,
            params,
            vars,
            binds: Vec::new(),
            bind_ix: HashMap::new(),
            locks: Vec::new(),
            scopes: vec![Vec::new()],
            output_alias: &[],
            unqualified: false,
            ctes: Vec::new(),
            aggregates: 0,
            group_keys: Vec::new(),
            last_select_keys: None,
        }
    }

    /// Translates a CHECK constraint or index filter over `def` (bare column names).
    pub fn check_expr(&mut self, def: &TableDef, e: &Expr) -> Result<String, SqlError> {
        self.scopes.push(vec![ScopeTable {
            alias: def.lc.clone(),
            def: Arc::new(def.clone()),
        }]);
        self.unqualified = true;
        let r = self.expr(e);
        self.unqualified = false;
        self.scopes.pop();
        if !self.binds.is_empty() {
            return Err(unsupported("variables in a constraint"));
        }
        Ok(r?.sql)
    }

    fn bind(&mut self, src: Bind, ty: SqlType) -> String {
        if let Some(i) = self.bind_ix.get(&src) {
            return format!("${}", i + 1);
        }
        self.binds.push(BindSlot {
            src: src.clone(),
            ty,
        });
        let i = self.binds.len() - 1;
        self.bind_ix.insert(src, i);
        format!("${}", i + 1)
    }

    /// Resolves a table name for reading/writing.
    pub fn table(&self, n: &ObjectName) -> Result<Arc<TableDef>, SqlError> {
        let parts = name_parts(n);
        if parts.iter().any(|p| p.starts_with('#')) {
            return Err(unsupported(format!("{n} (temporary tables)")));
        }
        self.cat
            .resolve(&parts)
            .ok_or_else(|| invalid_object(&n.to_string().replace(['[', ']'], "")))
    }
}

/// SQL Server compares strings as if the shorter were padded with spaces, so trailing spaces
/// never matter. Literals lose theirs here and every other expression (columns included) is
/// wrapped in `rtrim`; indexes on character columns are built on the same `rtrim` form (see
/// `ddl::key_expr`), so a column's lookup still uses its index.
fn pad_insensitive(e: &Expr, x: &mut TExpr) {
    match e {
        Expr::Nested(inner) => pad_insensitive(inner, x),
        Expr::Value(v) => {
            if let AV::SingleQuotedString(s) | AV::NationalStringLiteral(s) = &v.value {
                x.sql = quote_lit(s.trim_end_matches(' '));
            }
        }
        _ if x.sql.starts_with("rtrim(") && x.sql.ends_with(", ' ')") => {}
        // A char(n) column compares as stored (its index is on this form).
        _ => {
            x.sql = match expressions::padded_char_column(&x.sql) {
                Some(col) => format!("rtrim({col}, ' ')"),
                None => format!("rtrim({}, ' ')", x.sql),
            }
        }
    }
}

/// Whether an object name's last part is `name` (case-insensitive).
fn name_is(n: &ObjectName, name: &str) -> bool {
    name_parts(n)
        .last()
        .is_some_and(|p| p.eq_ignore_ascii_case(name))
}

fn date_part(p: &str) -> Result<&'static str, SqlError> {
    Ok(match p.trim_matches('\'') {
        "year" | "yy" | "yyyy" => "year",
        "month" | "mm" | "m" => "month",
        "day" | "dd" | "d" | "dayofyear" | "dy" | "y" => "day",
        "hour" | "hh" => "hour",
        "minute" | "mi" | "n" => "minute",
        "second" | "ss" | "s" => "second",
        "millisecond" | "ms" => "millisecond",
        other => return Err(unsupported(format!("datepart {other}"))),
    })
}

fn null_lit() -> TExpr {
    TExpr {
        sql: "NULL".into(),
        ty: None,
        literal: true,
        nullable: true,
        name: String::new(),
    }
}

fn first_words(s: &str) -> String {
    s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

fn higher(a: Option<SqlType>, b: Option<SqlType>) -> Option<SqlType> {
    match (a, b) {
        (None, x) | (x, None) => x,
        (Some(x), Some(y)) => {
            if precedence(&y) > precedence(&x) {
                Some(y)
            } else {
                Some(x)
            }
        }
    }
}

fn arith_type(a: &Option<SqlType>, b: &Option<SqlType>, op: &BinaryOperator) -> SqlType {
    let x = a.clone().unwrap_or(SqlType::Int);
    let y = b.clone().unwrap_or(SqlType::Int);
    match (&x, &y) {
        (
            SqlType::Decimal {
                precision: p1,
                scale: s1,
            },
            SqlType::Decimal {
                precision: p2,
                scale: s2,
            },
        ) => {
            let scale = match op {
                BinaryOperator::Multiply => (s1 + s2).min(38),
                BinaryOperator::Divide => (*s1).max(6),
                _ => (*s1).max(*s2),
            };
            let precision = ((*p1).max(*p2) + 1).clamp(scale, 38);
            SqlType::Decimal { precision, scale }
        }
        _ => {
            let h = higher(Some(x.clone()), Some(y.clone())).unwrap_or(SqlType::Int);
            match h {
                SqlType::Bit | SqlType::TinyInt | SqlType::SmallInt => SqlType::Int,
                o => o,
            }
        }
    }
}

/// A numeric operand: strings used in arithmetic are converted, as SQL Server does implicitly.
fn numeric_operand(t: &TExpr) -> String {
    match &t.ty {
        Some(ty) if is_string(ty) && !t.literal => format!("CAST({} AS numeric)", t.sql),
        _ => t.sql.clone(),
    }
}

/// Implicit conversion between the two sides of a comparison: a non-literal string compared with a
/// non-string converts to the other side's type (SQL Server's precedence rule).
fn coerce_pair(a: &TExpr, b: &TExpr) -> (TExpr, TExpr) {
    let conv = |x: &TExpr, to: &SqlType| -> TExpr {
        let mut y = x.clone();
        y.sql = format!("CAST({} AS {})", x.sql, pg_type_name(to));
        y
    };
    match (&a.ty, &b.ty) {
        (Some(x), Some(y)) if is_string(x) && !is_string(y) && !a.literal => {
            (conv(a, y), b.clone())
        }
        (Some(x), Some(y)) if is_string(y) && !is_string(x) && !b.literal => {
            (a.clone(), conv(b, x))
        }
        (Some(SqlType::UniqueIdentifier), Some(y)) if is_string(y) => {
            (a.clone(), conv(b, &SqlType::UniqueIdentifier))
        }
        _ => (a.clone(), b.clone()),
    }
}

fn cast_if_needed(x: &TExpr, to: &SqlType) -> String {
    match &x.ty {
        None => format!("CAST(NULL AS {})", pg_type_name(to)),
        Some(t) if x.literal => {
            if is_string(t) && !is_string(to) {
                format!("CAST({} AS {})", x.sql, pg_type_name(to))
            } else {
                x.sql.clone()
            }
        }
        Some(t) => {
            let same_family = (is_string(t) && is_string(to))
                || (is_numeric(t) && is_numeric(to))
                || (is_temporal(t) && is_temporal(to))
                || t == to;
            if same_family {
                x.sql.clone()
            } else if is_string(to) {
                format!("CAST({} AS text)", x.sql)
            } else {
                format!("CAST({} AS {})", x.sql, pg_type_name(to))
            }
        }
    }
}

/// The expression stored into a column of type `to` (INSERT VALUES, UPDATE SET): implicit
/// conversions as SQL Server does them (datetime rounding to 1/300 s, truncation to integers,
/// strings converted to the column type). Strings are not cast to `varchar(n)` (that would
/// silently truncate; PostgreSQL must raise 22001 → error 8152).
pub fn assign_to(x: &TExpr, to: &SqlType) -> String {
    let Some(t) = &x.ty else {
        return "NULL".into();
    };
    let base = if is_integer(to)
        && matches!(
            t,
            SqlType::Float | SqlType::Real | SqlType::Decimal { .. } | SqlType::Money
        ) {
        format!("trunc({})", x.sql)
    } else if is_string(to) && !is_string(t) {
        format!("CAST({} AS text)", x.sql)
    } else if !is_string(to) && is_string(t) {
        if x.literal {
            x.sql.clone()
        } else {
            format!("CAST({} AS {})", x.sql, pg_type_name(to))
        }
    } else {
        x.sql.clone()
    };
    match to {
        SqlType::DateTime => format!("emu_catalog.dt300(CAST({base} AS timestamp))"),
        SqlType::TinyInt => tinyint_value(x, t, base),
        SqlType::Bit if !x.literal && *t != SqlType::Bit => {
            format!("CAST((({base}) <> 0)::int AS smallint)")
        }
        _ => base,
    }
}

/// A value stored into a `tinyint` column (a plain `smallint` in PostgreSQL): an integer
/// literal in 0..=255 as it is, anything else through `emu_catalog.tinyint`, which raises error
/// 220 outside the range. Why not a domain: PostgreSQL sets a domain's CHECK up again for every
/// column of every INSERT it executes, which Mikro's many tinyint flags per row made a large
/// share of the backing database's time per posting; the checks here are only where a value
/// can be out of range, and the function is inlined into the plan.
fn tinyint_value(x: &TExpr, t: &SqlType, base: String) -> String {
    if x.literal && *t == SqlType::Int && x.sql.parse::<i64>().is_ok_and(|v| (0..=255).contains(&v))
    {
        return base;
    }
    // An untyped string literal has no type the function could take: integer first (SQL
    // Server converts the string, then checks the range).
    let base = if x.literal && is_string(t) {
        format!("CAST({base} AS integer)")
    } else {
        base
    };
    format!("emu_catalog.tinyint({base})")
}

/// Parses a sqlparser data type into a T-SQL type.
pub fn data_type_to_sql(dt: &DataType, default_len: u16) -> Result<SqlType, SqlError> {
    let s = dt.to_string();
    super::catalog::parse_type_str(&s, default_len).ok_or_else(|| {
        SqlError::new(
            2715,
            format!("Column, parameter, or variable #1: Cannot find data type {s}."),
        )
    })
}
