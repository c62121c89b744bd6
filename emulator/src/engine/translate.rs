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

    // ----------------------------------------------------------------- statements

    /// Compiles a SELECT / INSERT / UPDATE / DELETE.
    pub fn statement(self, st: &Statement) -> Result<SqlPlan, SqlError> {
        match st {
            Statement::Query(q) => self.select_statement(q),
            Statement::Insert(ins) => self.insert(ins),
            Statement::Update(u) => self.update(u),
            Statement::Delete(d) => self.delete(d),
            other => Err(unsupported(first_words(&other.to_string()))),
        }
    }

    fn select_statement(mut self, q: &Query) -> Result<SqlPlan, SqlError> {
        // SELECT @v = expr …: variable assignment.
        let assign = if let SetExpr::Select(s) = &*q.body {
            let n = s
                .projection
                .iter()
                .filter(|p| matches!(p, SelectItem::ExprWithAlias { alias, .. } if alias.value.starts_with('@')))
                .count();
            if n > 0 && n != s.projection.len() {
                return Err(SqlError::new(
                    141,
                    "A SELECT statement that assigns a value to a variable must not be combined with data-retrieval operations.",
                ));
            }
            if n > 0 {
                let mut v = Vec::new();
                for p in &s.projection {
                    if let SelectItem::ExprWithAlias { alias, .. } = p {
                        let lc = alias.value.to_lowercase();
                        let ty = self.vars.get(&lc).cloned().ok_or_else(|| {
                            SqlError::new(
                                137,
                                format!("Must declare the scalar variable \"{}\".", alias.value),
                            )
                        })?;
                        v.push((lc, ty));
                    }
                }
                v
            } else {
                Vec::new()
            }
        } else {
            Vec::new()
        };
        let (pg, cols) = self.query(q)?;
        let local = match &*q.body {
            SetExpr::Select(s)
                if assign.is_empty()
                    && q.with.is_none()
                    && s.from.is_empty()
                    && s.selection.is_none()
                    && s.top.is_none()
                    && s.distinct.is_none()
                    && s.having.is_none()
                    && q.order_by.is_none()
                    && q.fetch.is_none()
                    && q.limit_clause.is_none() =>
            {
                let mut v = Vec::new();
                for p in &s.projection {
                    let e = match p {
                        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
                        _ => break,
                    };
                    match self.local_bind(e).and_then(|b| self.bind_ix.get(&b)) {
                        Some(i) => v.push(*i),
                        None => break,
                    }
                }
                (v.len() == cols.len()).then_some(v)
            }
            _ => None,
        };
        Ok(SqlPlan {
            local,
            pg,
            binds: self.binds,
            columns: if assign.is_empty() { cols } else { Vec::new() },
            kind: Kind::Select,
            returns_rows: true,
            assign,
            identity_col: false,
            lock_tables: self.locks,
            reseed: None,
            target: None,
        })
    }

    /// The session value an expression of a FROM-less SELECT reduces to, when it is just a
    /// parameter, a variable, `SCOPE_IDENTITY()`, `@@IDENTITY`, `@@ROWCOUNT`, `@@TRANCOUNT`,
    /// optionally under CAST/CONVERT (the column's type then does the conversion). Such
    /// SELECTs (`SELECT CAST(SCOPE_IDENTITY() AS int) AS recno`) are answered without a
    /// PostgreSQL round trip.
    /// The bind slot a scalar expression reduces to when [`Self::local_bind`] applies and the
    /// expression has already been translated (so the slot exists): lets `SET @v = <expr>` /
    /// `DECLARE @v = <expr>` be answered without a PostgreSQL round trip, like a FROM-less
    /// SELECT of the same expression.
    pub(super) fn local_slot(&self, e: &Expr) -> Option<usize> {
        self.local_bind(e)
            .and_then(|b| self.bind_ix.get(&b).copied())
    }

    fn local_bind(&self, e: &Expr) -> Option<Bind> {
        match e {
            Expr::Nested(x) => self.local_bind(x),
            Expr::Cast {
                kind: CastKind::Cast,
                expr,
                format: None,
                ..
            } => self.local_bind(expr),
            Expr::Convert {
                is_try: false,
                expr,
                styles,
                ..
            } if styles.is_empty() => self.local_bind(expr),
            Expr::Identifier(i) if i.value.starts_with('@') => {
                let lc = i.value.to_lowercase();
                match lc.as_str() {
                    "@@rowcount" => Some(Bind::RowCount),
                    "@@error" => Some(Bind::Error),
                    "@@trancount" => Some(Bind::TranCount),
                    "@@identity" => Some(Bind::Identity),
                    _ if lc.starts_with("@@") => None,
                    _ => match self.params.iter().position(|(n, _)| n.to_lowercase() == lc) {
                        Some(k) => Some(Bind::Param(k)),
                        None => Some(Bind::Var(lc)),
                    },
                }
            }
            Expr::Function(f) if is_scope_identity_call(f) => Some(Bind::ScopeIdentity),
            _ => None,
        }
    }

    fn output_items(
        &mut self,
        out: &Option<OutputClause>,
        def: &Arc<TableDef>,
        aliases: &'static [&'static str],
    ) -> Result<(Vec<String>, Vec<OutCol>), SqlError> {
        let Some(o) = out else {
            return Ok((Vec::new(), Vec::new()));
        };
        let items = match o {
            OutputClause::Output {
                select_items,
                into_table: None,
                ..
            } => select_items,
            OutputClause::Output { .. } => return Err(unsupported("OUTPUT … INTO")),
            OutputClause::Returning { .. } => {
                return Err(unsupported(
                    "RETURNING (PostgreSQL; use OUTPUT INSERTED.col)",
                ))
            }
        };
        self.scopes.push(
            aliases
                .iter()
                .map(|a| ScopeTable {
                    alias: a.to_string(),
                    def: def.clone(),
                })
                .collect(),
        );
        self.output_alias = aliases;
        let r = self.projection(items);
        self.output_alias = &[];
        self.scopes.pop();
        let (sqls, cols) = r?;
        Ok((sqls, cols))
    }

    fn insert(mut self, ins: &ast::Insert) -> Result<SqlPlan, SqlError> {
        if ins.or.is_some() || ins.ignore || ins.replace_into || ins.overwrite {
            return Err(unsupported("INSERT OR/IGNORE/REPLACE"));
        }
        if ins.on.is_some() {
            return Err(unsupported("ON CONFLICT / ON DUPLICATE KEY (not T-SQL)"));
        }
        if ins.returning.is_some() {
            return Err(unsupported(
                "RETURNING (PostgreSQL; use OUTPUT INSERTED.col)",
            ));
        }
        if !ins.assignments.is_empty() {
            return Err(unsupported("INSERT … SET"));
        }
        let name = match &ins.table {
            ast::TableObject::TableName(n) => n,
            _ => return Err(unsupported("INSERT INTO FUNCTION")),
        };
        let def = self.table(name)?;
        if def.schema != "dbo" {
            return Err(unsupported(format!("INSERT into {name}")));
        }
        let cols: Vec<ColumnDef> = if ins.columns.is_empty() {
            def.columns
                .iter()
                .filter(|c| !c.identity)
                .cloned()
                .collect()
        } else {
            let mut v = Vec::new();
            for c in &ins.columns {
                let parts = name_parts(c);
                let n = parts.last().cloned().unwrap_or_default();
                let col = def
                    .column(&ident_key(&n))
                    .ok_or_else(|| invalid_column(&n))?;
                v.push(col.clone());
            }
            v
        };
        let reseed = cols
            .iter()
            .find(|c| c.identity)
            .map(|c| (def.pg_ref(), c.lc.clone()));
        let (out_sql, out_cols) = self.output_items(&ins.output, &def, &["inserted"])?;
        let mut sql = format!(
            "INSERT INTO {} AS {} ",
            def.pg_ref(),
            quote_ident("inserted")
        );
        if !cols.is_empty() {
            sql.push('(');
            sql.push_str(
                &cols
                    .iter()
                    .map(|c| quote_ident(&c.lc))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
            sql.push_str(") ");
        }
        match &ins.source {
            None => sql.push_str("DEFAULT VALUES"),
            Some(q) => match &*q.body {
                SetExpr::Values(vals)
                    if q.order_by.is_none() && q.limit_clause.is_none() && q.fetch.is_none() =>
                {
                    sql.push_str("VALUES ");
                    for (ri, row) in vals.rows.iter().enumerate() {
                        if row.len() != cols.len() {
                            return Err(SqlError::new(
                                if row.len() > cols.len() { 110 } else { 109 },
                                "There are fewer columns in the INSERT statement than values specified in the VALUES clause. The number of values in the VALUES clause must match the number of columns specified in the INSERT statement.",
                            ));
                        }
                        if ri > 0 {
                            sql.push_str(", ");
                        }
                        sql.push('(');
                        for (i, e) in row.iter().enumerate() {
                            if i > 0 {
                                sql.push_str(", ");
                            }
                            if matches!(e, Expr::Identifier(id) if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("DEFAULT"))
                            {
                                sql.push_str("DEFAULT");
                                continue;
                            }
                            let te = self.expr(e)?;
                            sql.push_str(&assign_to(&te, &cols[i].ty));
                        }
                        sql.push(')');
                    }
                }
                _ => {
                    let (qs, qcols) = self.query(q)?;
                    if qcols.len() != cols.len() {
                        return Err(SqlError::new(
                            120,
                            "The select list for the INSERT statement contains fewer items than the insert list. The number of SELECT values must match the number of INSERT columns.",
                        ));
                    }
                    sql.push_str(&qs);
                }
            },
        }
        let mut returning = out_sql;
        let identity = def.identity();
        if let Some(idc) = identity {
            returning.push(format!(
                "{}.{}",
                quote_ident("inserted"),
                quote_ident(&idc.lc)
            ));
        }
        if !returning.is_empty() {
            sql.push_str(" RETURNING ");
            sql.push_str(&returning.join(", "));
        }
        Ok(SqlPlan {
            pg: sql,
            binds: self.binds,
            columns: out_cols,
            kind: Kind::Insert,
            returns_rows: !returning.is_empty(),
            assign: Vec::new(),
            identity_col: identity.is_some(),
            lock_tables: self.locks,
            reseed,
            target: Some(def),
            local: None,
        })
    }

    /// T-SQL `UPDATE x … FROM …` / `DELETE x FROM …`: finds the target among the FROM items
    /// (by alias or name), registers it, and renders the other items for PostgreSQL's
    /// `FROM` / `USING`. Inner-join conditions of the target move to WHERE.
    fn dml_from<'f>(
        &mut self,
        target: &ObjectName,
        target_alias: Option<&ast::TableAlias>,
        target_hints: &[Expr],
        from: &'f [TableWithJoins],
    ) -> Result<DmlFrom, SqlError> {
        fn on(op: Option<&JoinOperator>) -> Option<&Expr> {
            match op {
                Some(
                    JoinOperator::Join(JoinConstraint::On(e))
                    | JoinOperator::Inner(JoinConstraint::On(e)),
                ) => Some(e),
                _ => None,
            }
        }
        let key = ident_key(name_parts(target).last().map(String::as_str).unwrap_or(""));
        let factor_key = |f: &TableFactor| match f {
            TableFactor::Table { name, alias, .. } => Some(match alias {
                Some(a) => ident_key(&a.name.value),
                None => ident_key(name_parts(name).last().map(String::as_str).unwrap_or("")),
            }),
            _ => None,
        };
        let mut found: Option<(usize, usize)> = None;
        for (i, twj) in from.iter().enumerate() {
            if factor_key(&twj.relation).as_deref() == Some(key.as_str()) {
                found = Some((i, 0));
            }
            for (k, j) in twj.joins.iter().enumerate() {
                if factor_key(&j.relation).as_deref() == Some(key.as_str()) {
                    found = Some((i, k + 1));
                }
            }
        }
        let (def, alias) = match found {
            Some((i, p)) => {
                let f = if p == 0 {
                    &from[i].relation
                } else {
                    &from[i].joins[p - 1].relation
                };
                let TableFactor::Table {
                    name,
                    alias,
                    with_hints,
                    ..
                } = f
                else {
                    return Err(unsupported("DML target"));
                };
                let def = self.table(name)?;
                self.hints(with_hints, &def)?;
                let a = alias
                    .as_ref()
                    .map(|a| ident_key(&a.name.value))
                    .unwrap_or_else(|| def.lc.clone());
                (def, a)
            }
            None => {
                let def = self.table(target)?;
                self.hints(target_hints, &def)?;
                let a = target_alias
                    .map(|a| ident_key(&a.name.value))
                    .unwrap_or_else(|| def.lc.clone());
                (def, a)
            }
        };
        if def.schema != "dbo" {
            return Err(unsupported(format!("changing sys.{}", def.name)));
        }
        if let Some(s) = self.scopes.last_mut() {
            s.push(ScopeTable {
                alias: alias.clone(),
                def: def.clone(),
            });
        }
        let mut moved: Vec<&'f Expr> = Vec::new();
        let mut items = Vec::new();
        for (i, twj) in from.iter().enumerate() {
            // (factor, join operator) entries of this item.
            let mut entries: Vec<(&'f TableFactor, Option<&'f JoinOperator>)> =
                vec![(&twj.relation, None)];
            entries.extend(
                twj.joins
                    .iter()
                    .map(|j| (&j.relation, Some(&j.join_operator))),
            );
            if let Some((fi, p)) = found {
                if fi == i {
                    let inner = |op: Option<&JoinOperator>| {
                        matches!(
                            op,
                            None | Some(JoinOperator::Join(_) | JoinOperator::Inner(_))
                        )
                    };
                    if !entries.iter().all(|(_, op)| inner(*op)) {
                        return Err(unsupported("outer joins in UPDATE/DELETE … FROM"));
                    }

                    if p == 0 {
                        entries.remove(0);
                        if !entries.is_empty() {
                            if let Some(e) = on(entries[0].1) {
                                moved.push(e);
                            }
                            entries[0].1 = None;
                        }
                    } else {
                        let (_, op) = entries.remove(p);
                        if let Some(e) = on(op) {
                            moved.push(e);
                        }
                    }
                }
            }
            if entries.is_empty() {
                continue;
            }
            let mut sql = String::new();
            for (k, (f, op)) in entries.iter().enumerate() {
                let rel = self.table_factor(f)?;
                if k == 0 {
                    sql.push_str(&rel);
                    continue;
                }
                let (kw, c) = match op {
                    Some(JoinOperator::Join(c) | JoinOperator::Inner(c)) => ("JOIN", Some(c)),
                    Some(JoinOperator::Left(c) | JoinOperator::LeftOuter(c)) => {
                        ("LEFT JOIN", Some(c))
                    }
                    Some(JoinOperator::Right(c) | JoinOperator::RightOuter(c)) => {
                        ("RIGHT JOIN", Some(c))
                    }
                    Some(JoinOperator::FullOuter(c)) => ("FULL JOIN", Some(c)),
                    Some(JoinOperator::CrossJoin(JoinConstraint::None)) => ("CROSS JOIN", None),
                    _ => return Err(unsupported("join kind")),
                };
                sql.push_str(&format!(" {kw} {rel}"));
                match c {
                    None => {}
                    Some(JoinConstraint::On(e)) => {
                        let te = self.expr(e)?;
                        sql.push_str(" ON ");
                        sql.push_str(&te.sql);
                    }
                    Some(_) => return Err(unsupported("JOIN USING/NATURAL (use ON)")),
                }
            }
            items.push(sql);
        }
        let mut extra = Vec::new();
        for e in moved {
            extra.push(self.expr(e)?.sql);
        }
        let from_sql = if items.is_empty() {
            None
        } else {
            Some(items.join(", "))
        };
        Ok((def, alias, from_sql, extra))
    }

    fn update(mut self, u: &ast::Update) -> Result<SqlPlan, SqlError> {
        if u.returning.is_some() {
            return Err(unsupported(
                "RETURNING (PostgreSQL; use OUTPUT INSERTED.col)",
            ));
        }
        if u.limit.is_some() || !u.order_by.is_empty() {
            return Err(unsupported("UPDATE TOP / ORDER BY"));
        }
        if !u.table.joins.is_empty() {
            return Err(unsupported("UPDATE with JOIN (use UPDATE … FROM)"));
        }
        let from: &[TableWithJoins] = match &u.from {
            None => &[],
            Some(ast::UpdateTableFromKind::AfterSet(t)) => t,
            Some(ast::UpdateTableFromKind::BeforeSet(_)) => {
                return Err(unsupported("UPDATE FROM … SET (not T-SQL)"))
            }
        };
        let (def, alias, from_sql, extra) = match &u.table.relation {
            TableFactor::Table {
                name,
                alias,
                with_hints,
                ..
            } => self.dml_from(name, alias.as_ref(), with_hints, from)?,
            other => return Err(unsupported(other)),
        };
        let mut sets = Vec::new();
        for a in &u.assignments {
            let target = match &a.target {
                ast::AssignmentTarget::ColumnName(n) => name_parts(n),
                _ => return Err(unsupported("UPDATE SET (a, b) = …")),
            };
            let cname = target.last().cloned().unwrap_or_default();
            if cname.starts_with('@') {
                return Err(unsupported("SET @variable = column in UPDATE"));
            }
            let col = def
                .column(&ident_key(&cname))
                .ok_or_else(|| invalid_column(&cname))?
                .clone();
            if col.identity {
                return Err(SqlError::new(
                    8102,
                    format!("Cannot update identity column '{}'.", col.name),
                ));
            }
            let te = self.expr(&a.value)?;
            sets.push(format!(
                "{} = {}",
                quote_ident(&col.lc),
                assign_to(&te, &col.ty)
            ));
        }
        let mut sql = format!(
            "UPDATE {} AS {} SET {}",
            def.pg_ref(),
            quote_ident(&alias),
            sets.join(", ")
        );
        // OUTPUT DELETED.x: PostgreSQL 15's RETURNING sees only the new row, so the target is
        // joined to itself by ctid; that copy is read before the update (the old values).
        let uses_deleted = u
            .output
            .as_ref()
            .is_some_and(|o| o.to_string().to_lowercase().contains("deleted."));
        let mut extra = extra;
        let mut from_sql = from_sql;
        if uses_deleted {
            let old = format!("{} AS \"deleted\"", def.pg_ref());
            from_sql = Some(match from_sql {
                Some(f) => format!("{f}, {old}"),
                None => old,
            });
            extra.push(format!("\"deleted\".ctid = {}.ctid", quote_ident(&alias)));
        }
        if let Some(f) = from_sql {
            sql.push_str(" FROM ");
            sql.push_str(&f);
        }
        self.finish_dml(
            sql,
            extra,
            u.selection.as_ref(),
            &u.output,
            def,
            &alias,
            &["inserted", "deleted"],
            Kind::Update,
        )
    }

    fn delete(mut self, d: &ast::Delete) -> Result<SqlPlan, SqlError> {
        if d.using.is_some() || d.limit.is_some() || !d.order_by.is_empty() {
            return Err(unsupported("DELETE … USING/LIMIT/ORDER BY (not T-SQL)"));
        }
        if d.returning.is_some() {
            return Err(unsupported(
                "RETURNING (PostgreSQL; use OUTPUT DELETED.col)",
            ));
        }
        let tables = match &d.from {
            FromTable::WithFromKeyword(t) | FromTable::WithoutKeyword(t) => t,
        };
        let (def, alias, using, extra) = match d.tables.as_slice() {
            // DELETE [FROM] T [WHERE …]
            [] => {
                if tables.len() != 1 || !tables[0].joins.is_empty() {
                    return Err(unsupported("DELETE with joins (use DELETE x FROM …)"));
                }
                match &tables[0].relation {
                    TableFactor::Table {
                        name,
                        alias,
                        with_hints,
                        ..
                    } => self.dml_from(name, alias.as_ref(), with_hints, &[])?,
                    other => return Err(unsupported(other)),
                }
            }
            // DELETE x FROM T x JOIN … [WHERE …]
            [target] => self.dml_from(target, None, &[], tables)?,
            _ => return Err(unsupported("DELETE of several tables")),
        };
        let mut sql = format!("DELETE FROM {} AS {}", def.pg_ref(), quote_ident(&alias));
        if let Some(u) = using {
            sql.push_str(" USING ");
            sql.push_str(&u);
        }
        self.finish_dml(
            sql,
            extra,
            d.selection.as_ref(),
            &d.output,
            def,
            &alias,
            &["deleted"],
            Kind::Delete,
        )
    }

    /// The common tail of UPDATE and DELETE: the WHERE clause (join conditions from the FROM
    /// rewrite plus the statement's own), OUTPUT INSERTED/DELETED as RETURNING — PostgreSQL's
    /// RETURNING sees the row under the target's alias, so the pseudo-table name is rewritten to
    /// it — and the plan.
    #[allow(clippy::too_many_arguments)]
    fn finish_dml(
        mut self,
        mut sql: String,
        mut conds: Vec<String>,
        selection: Option<&Expr>,
        output: &Option<OutputClause>,
        def: Arc<TableDef>,
        alias: &str,
        pseudo: &'static [&'static str],
        kind: Kind,
    ) -> Result<SqlPlan, SqlError> {
        if let Some(w) = selection {
            conds.push(self.expr(w)?.sql);
        }
        if !conds.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
        let (mut out_sql, out_cols) = self.output_items(output, &def, pseudo)?;
        // The first pseudo-table is the target row itself (INSERTED of an UPDATE, DELETED of a
        // DELETE); UPDATE's DELETED is the self-joined copy named "deleted".
        let from = format!("{}.", quote_ident(pseudo[0]));
        let to = format!("{}.", quote_ident(alias));
        for s in &mut out_sql {
            *s = s.replace(&from, &to);
        }
        if !out_sql.is_empty() {
            sql.push_str(" RETURNING ");
            sql.push_str(&out_sql.join(", "));
        }
        Ok(SqlPlan {
            pg: sql,
            binds: self.binds,
            columns: out_cols,
            kind,
            returns_rows: !out_sql.is_empty(),
            assign: Vec::new(),
            identity_col: false,
            lock_tables: self.locks,
            reseed: None,
            target: Some(def),
            local: None,
        })
    }

    // ----------------------------------------------------------------- queries

    /// Translates a query; returns PostgreSQL text and the output columns.
    pub fn query(&mut self, q: &Query) -> Result<(String, Vec<OutCol>), SqlError> {
        let mut with_sql = String::new();
        let ctes_before = self.ctes.len();
        if let Some(w) = &q.with {
            if w.recursive {
                return Err(unsupported("WITH RECURSIVE (not T-SQL)"));
            }
            let mut parts = Vec::new();
            for cte in &w.cte_tables {
                if cte.from.is_some() || cte.materialized.is_some() {
                    return Err(unsupported("CTE options"));
                }
                let (qs, mut cols) = self.query(&cte.query)?;
                if !cte.alias.columns.is_empty() {
                    if cte.alias.columns.len() != cols.len() {
                        return Err(SqlError::new(
                            8158,
                            format!(
                                "'{}' has more columns than were specified in the column list.",
                                cte.alias.name.value
                            ),
                        ));
                    }
                    for (c, a) in cols.iter_mut().zip(&cte.alias.columns) {
                        c.name = a.name.value.clone();
                        c.lc = ident_key(&a.name.value);
                    }
                }
                if cols.iter().any(|c| c.name.is_empty()) {
                    return Err(SqlError::new(
                        8155,
                        format!(
                            "No column name was specified for a column of '{}'.",
                            cte.alias.name.value
                        ),
                    ));
                }
                let key = ident_key(&cte.alias.name.value);
                let colnames: Vec<String> = cols.iter().map(|c| quote_ident(&c.lc)).collect();
                parts.push(format!(
                    "{}({}) AS ({qs})",
                    quote_ident(&key),
                    colnames.join(", ")
                ));
                let def = Arc::new(TableDef {
                    name: cte.alias.name.value.clone(),
                    lc: key.clone(),
                    schema: "",
                    object_id: 0,
                    columns: cols
                        .iter()
                        .map(|c| ColumnDef {
                            name: c.name.clone(),
                            lc: c.lc.clone(),
                            ty: c.ty.clone(),
                            nullable: c.nullable,
                            identity: false,
                        })
                        .collect(),
                });
                self.ctes.push((key, def));
            }
            with_sql = format!("WITH {} ", parts.join(", "));
        }
        let r = self.query_body(q);
        self.ctes.truncate(ctes_before);
        let (sql, cols) = r?;
        Ok((format!("{with_sql}{sql}"), cols))
    }

    fn query_body(&mut self, q: &Query) -> Result<(String, Vec<OutCol>), SqlError> {
        if !q.locks.is_empty() {
            return Err(unsupported(
                "FOR UPDATE/SHARE (PostgreSQL; use WITH (UPDLOCK))",
            ));
        }
        if q.for_clause.is_some() {
            return Err(unsupported("FOR XML/JSON"));
        }
        let mut offset = None;
        match &q.limit_clause {
            None => {}
            Some(LimitClause::LimitOffset {
                limit: None,
                offset: Some(o),
                limit_by,
            }) if limit_by.is_empty() => offset = Some(o.value.clone()),
            Some(_) => {
                return Err(unsupported(
                    "LIMIT (PostgreSQL/MySQL; use TOP or OFFSET … FETCH)",
                ))
            }
        }
        self.scopes.push(Vec::new());
        let r = self.query_inner(q, offset);
        self.scopes.pop();
        r
    }

    fn query_inner(
        &mut self,
        q: &Query,
        offset: Option<Expr>,
    ) -> Result<(String, Vec<OutCol>), SqlError> {
        let (mut sql, cols, top) = self.set_expr(&q.body)?;
        if let Some(ob) = &q.order_by {
            let exprs = match &ob.kind {
                OrderByKind::Expressions(e) => e,
                OrderByKind::All(_) => return Err(unsupported("ORDER BY ALL")),
            };
            let mut parts = Vec::new();
            for o in exprs {
                let (s, nullable) = match &o.expr {
                    Expr::Identifier(id)
                        if !id.value.starts_with('@')
                            && cols
                                .iter()
                                .any(|c| c.aliased && c.lc == ident_key(&id.value)) =>
                    {
                        // T-SQL resolves ORDER BY names against the select list's aliases first.
                        let key = ident_key(&id.value);
                        let nullable = cols
                            .iter()
                            .find(|c| c.aliased && c.lc == key)
                            .is_none_or(|c| c.nullable);
                        (quote_ident(&key), nullable)
                    }
                    Expr::Value(v) if matches!(v.value, AV::Number(_, _)) => {
                        let nullable = v
                            .value
                            .to_string()
                            .parse::<usize>()
                            .ok()
                            .and_then(|i| cols.get(i.wrapping_sub(1)))
                            .is_none_or(|c| c.nullable);
                        (v.value.to_string(), nullable)
                    }
                    e => {
                        let te = self.expr(e)?;
                        (te.sql, te.nullable)
                    }
                };
                let dir = match o.options.sort {
                    Some(ast::OrderBySort::Desc) => " DESC",
                    Some(ast::OrderBySort::Asc) | None => "",
                    Some(_) => return Err(unsupported("ORDER BY … USING")),
                };
                if o.options.nulls_first.is_some() {
                    return Err(unsupported("NULLS FIRST/LAST (not T-SQL)"));
                }
                // SQL Server sorts NULLs first ascending, last descending (PostgreSQL: the
                // opposite). Only said for nullable expressions, so that ORDER BY on NOT NULL
                // columns can still be served by an index in key order.
                let nulls = match (nullable, dir.is_empty()) {
                    (false, _) => "",
                    (true, true) => " NULLS FIRST",
                    (true, false) => " NULLS LAST",
                };
                parts.push(format!("{s}{dir}{nulls}"));
            }
            sql.push_str(" ORDER BY ");
            sql.push_str(&parts.join(", "));
        }
        if let Some(t) = top {
            sql.push_str(&format!(" LIMIT {t}"));
        }
        if let Some(o) = offset {
            if q.order_by.is_none() {
                return Err(SqlError::syntax(
                    "Incorrect syntax near 'OFFSET': OFFSET requires ORDER BY.",
                ));
            }
            let te = self.expr(&o)?;
            sql.push_str(&format!(" OFFSET ({})", te.sql));
        }
        if let Some(f) = &q.fetch {
            if f.percent || f.with_ties {
                return Err(unsupported("FETCH … PERCENT/WITH TIES"));
            }
            let n = match &f.quantity {
                Some(e) => self.expr(e)?.sql,
                None => "1".into(),
            };
            sql.push_str(&format!(" LIMIT ({n})"));
        }
        Ok((sql, cols))
    }

    fn set_expr(&mut self, b: &SetExpr) -> Result<(String, Vec<OutCol>, Option<String>), SqlError> {
        match b {
            SetExpr::Select(s) => self.select(s),
            SetExpr::Query(q) => {
                let (s, c) = self.query(q)?;
                Ok((format!("({s})"), c, None))
            }
            SetExpr::SetOperation {
                op,
                set_quantifier,
                left,
                right,
            } => {
                let opname = match op {
                    SetOperator::Union => "UNION",
                    SetOperator::Except => "EXCEPT",
                    SetOperator::Intersect => "INTERSECT",
                    _ => return Err(unsupported(op)),
                };
                let q = match set_quantifier {
                    SetQuantifier::All => " ALL",
                    SetQuantifier::None | SetQuantifier::Distinct => "",
                    _ => return Err(unsupported(set_quantifier)),
                };
                self.scopes.push(Vec::new());
                let l = self.set_expr(left);
                self.scopes.pop();
                let (ls, lc, lt) = l?;
                self.scopes.push(Vec::new());
                let r = self.set_expr(right);
                self.scopes.pop();
                let (rs, _rc, rt) = r?;
                let wrap = |s: String, t: Option<String>| match t {
                    Some(t) => format!("({s} LIMIT {t})"),
                    None => format!("({s})"),
                };
                Ok((
                    format!("{} {opname}{q} {}", wrap(ls, lt), wrap(rs, rt)),
                    lc,
                    None,
                ))
            }
            SetExpr::Values(_) => Err(unsupported("VALUES as a query")),
            other => Err(unsupported(first_words(&other.to_string()))),
        }
    }

    fn select(&mut self, s: &Select) -> Result<(String, Vec<OutCol>, Option<String>), SqlError> {
        if s.into.is_some() {
            return Err(unsupported("SELECT … INTO"));
        }
        if !s.lateral_views.is_empty()
            || s.prewhere.is_some()
            || !s.connect_by.is_empty()
            || !s.cluster_by.is_empty()
            || !s.distribute_by.is_empty()
            || !s.sort_by.is_empty()
            || !s.named_window.is_empty()
            || s.qualify.is_some()
            || s.value_table_mode.is_some()
            || s.exclude.is_some()
        {
            return Err(unsupported(first_words(&s.to_string())));
        }
        let mut sql = String::from("SELECT ");
        match &s.distinct {
            None => {}
            Some(ast::Distinct::Distinct) => sql.push_str("DISTINCT "),
            Some(other) => return Err(unsupported(other)),
        }
        let top = match &s.top {
            None => None,
            Some(t) => {
                if t.percent || t.with_ties {
                    return Err(unsupported("TOP … PERCENT/WITH TIES"));
                }
                match &t.quantity {
                    Some(TopQuantity::Constant(n)) => Some(n.to_string()),
                    Some(TopQuantity::Expr(e)) => Some(format!("({})", self.expr(e)?.sql)),
                    None => return Err(unsupported("TOP")),
                }
            }
        };
        // FROM first: it defines the scope of everything else.
        let mut from = Vec::new();
        for twj in &s.from {
            from.push(self.table_with_joins(twj)?);
        }
        let (items, cols) = self.projection(&s.projection)?;
        sql.push_str(&items.join(", "));
        if !from.is_empty() {
            sql.push_str(" FROM ");
            sql.push_str(&from.join(", "));
        }
        if let Some(w) = &s.selection {
            let te = self.expr(w)?;
            sql.push_str(" WHERE ");
            sql.push_str(&te.sql);
        }
        match &s.group_by {
            GroupByExpr::Expressions(e, m) if m.is_empty() => {
                if !e.is_empty() {
                    let mut g = Vec::new();
                    for x in e {
                        g.push(self.expr(x)?.sql);
                    }
                    sql.push_str(" GROUP BY ");
                    sql.push_str(&g.join(", "));
                }
            }
            other => return Err(unsupported(other)),
        }
        if let Some(h) = &s.having {
            let te = self.expr(h)?;
            sql.push_str(" HAVING ");
            sql.push_str(&te.sql);
        }
        Ok((sql, cols, top))
    }

    fn projection(&mut self, items: &[SelectItem]) -> Result<(Vec<String>, Vec<OutCol>), SqlError> {
        let mut sqls = Vec::new();
        let mut cols = Vec::new();
        for it in items {
            match it {
                SelectItem::UnnamedExpr(e) => {
                    let te = self.expr(e)?;
                    cols.push(OutCol {
                        lc: ident_key(&te.name),
                        name: te.name.clone(),
                        ty: te.ty.clone().unwrap_or(SqlType::Int),
                        nullable: te.nullable,
                        aliased: false,
                    });
                    sqls.push(te.sql);
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    let te = self.expr(expr)?;
                    let lc = ident_key(&alias.value);
                    cols.push(OutCol {
                        name: if alias.value.starts_with('@') {
                            String::new()
                        } else {
                            alias.value.clone()
                        },
                        lc: lc.clone(),
                        ty: te.ty.clone().unwrap_or(SqlType::Int),
                        nullable: te.nullable,
                        aliased: true,
                    });
                    sqls.push(format!("{} AS {}", te.sql, quote_ident(&lc)));
                }
                SelectItem::Wildcard(opts) => {
                    if opts.opt_exclude.is_some()
                        || opts.opt_except.is_some()
                        || opts.opt_replace.is_some()
                        || opts.opt_rename.is_some()
                    {
                        return Err(unsupported("* EXCEPT/REPLACE"));
                    }
                    let scope = self.scopes.last().cloned().unwrap_or_default();
                    if scope.is_empty() {
                        return Err(SqlError::new(263, "Must specify table to select from."));
                    }
                    for t in &scope {
                        self.expand(t, &mut sqls, &mut cols);
                    }
                }
                SelectItem::QualifiedWildcard(kind, _) => {
                    let n = match kind {
                        ast::SelectItemQualifiedWildcardKind::ObjectName(n) => name_parts(n),
                        ast::SelectItemQualifiedWildcardKind::Expr(e) => {
                            return Err(unsupported(e))
                        }
                    };
                    let alias = ident_key(&n.last().cloned().unwrap_or_default());
                    let t = self
                        .scopes
                        .iter()
                        .rev()
                        .flat_map(|s| s.iter())
                        .find(|t| t.alias == alias)
                        .cloned()
                        .ok_or_else(|| {
                            SqlError::new(
                                4104,
                                format!(
                                    "The multi-part identifier \"{}\" could not be bound.",
                                    n.join(".")
                                ),
                            )
                        })?;
                    self.expand(&t, &mut sqls, &mut cols);
                }
                other => return Err(unsupported(other)),
            }
        }
        Ok((sqls, cols))
    }

    fn expand(&self, t: &ScopeTable, sqls: &mut Vec<String>, cols: &mut Vec<OutCol>) {
        for c in &t.def.columns {
            sqls.push(format!("{}.{}", quote_ident(&t.alias), quote_ident(&c.lc)));
            cols.push(OutCol {
                name: c.name.clone(),
                lc: c.lc.clone(),
                ty: c.ty.clone(),
                nullable: c.nullable,
                aliased: false,
            });
        }
    }

    fn hints(&mut self, hints: &[Expr], def: &TableDef) -> Result<(), SqlError> {
        for h in hints {
            let name = match h {
                Expr::Identifier(i) => i.value.to_uppercase(),
                other => return Err(unsupported(format!("table hint {other}"))),
            };
            match name.as_str() {
                "NOLOCK" | "READUNCOMMITTED" | "ROWLOCK" | "READCOMMITTED" | "PAGLOCK"
                | "READPAST" | "NOWAIT" | "READCOMMITTEDLOCK" => {}
                "UPDLOCK" | "HOLDLOCK" | "XLOCK" | "SERIALIZABLE" | "TABLOCK" | "TABLOCKX"
                | "REPEATABLEREAD" => {
                    if def.schema == "dbo" && !self.locks.contains(&def.lc) {
                        self.locks.push(def.lc.clone());
                    }
                }
                other => return Err(unsupported(format!("table hint {other}"))),
            }
        }
        Ok(())
    }

    fn table_factor(&mut self, tf: &TableFactor) -> Result<String, SqlError> {
        match tf {
            TableFactor::Table {
                name,
                alias,
                args,
                with_hints,
                version,
                partitions,
                sample,
                index_directives,
                json_path,
                with_ordinality,
                ..
            } => {
                if args.is_some()
                    || version.is_some()
                    || !partitions.is_empty()
                    || sample.is_some()
                    || !index_directives.is_empty()
                    || json_path.is_some()
                    || *with_ordinality
                {
                    return Err(unsupported(tf));
                }
                let parts = name_parts(name);
                let cte = match parts.as_slice() {
                    [n] => {
                        let k = ident_key(n);
                        self.ctes
                            .iter()
                            .rev()
                            .find(|(c, _)| *c == k)
                            .map(|(_, d)| d.clone())
                    }
                    _ => None,
                };
                let def = match cte {
                    Some(d) => d,
                    None => self.table(name)?,
                };
                self.hints(with_hints, &def)?;
                let a = match alias {
                    Some(a) => {
                        if !a.columns.is_empty() {
                            return Err(unsupported("table alias column list"));
                        }
                        ident_key(&a.name.value)
                    }
                    None => def.lc.clone(),
                };
                let rel = if def.schema.is_empty() {
                    quote_ident(&def.lc)
                } else {
                    def.pg_ref()
                };
                let sql = format!("{rel} AS {}", quote_ident(&a));
                if let Some(s) = self.scopes.last_mut() {
                    s.push(ScopeTable { alias: a, def })
                }
                Ok(sql)
            }
            TableFactor::Derived {
                lateral: false,
                subquery,
                alias: Some(alias),
                ..
            } => {
                let (qs, cols) = self.query(subquery)?;
                let a = ident_key(&alias.name.value);
                let def = Arc::new(TableDef {
                    name: alias.name.value.clone(),
                    lc: a.clone(),
                    schema: "",
                    object_id: 0,
                    columns: cols
                        .iter()
                        .map(|c| ColumnDef {
                            name: c.name.clone(),
                            lc: c.lc.clone(),
                            ty: c.ty.clone(),
                            nullable: c.nullable,
                            identity: false,
                        })
                        .collect(),
                });
                if let Some(s) = self.scopes.last_mut() {
                    s.push(ScopeTable {
                        alias: a.clone(),
                        def,
                    })
                }
                Ok(format!("({qs}) AS {}", quote_ident(&a)))
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias: None,
            } => Ok(format!("({})", self.table_with_joins(table_with_joins)?)),
            other => Err(unsupported(other)),
        }
    }

    fn table_with_joins(&mut self, t: &TableWithJoins) -> Result<String, SqlError> {
        let mut sql = self.table_factor(&t.relation)?;
        for j in &t.joins {
            let (kw, c) = match &j.join_operator {
                JoinOperator::Join(c) | JoinOperator::Inner(c) => ("JOIN", Some(c)),
                JoinOperator::Left(c) | JoinOperator::LeftOuter(c) => ("LEFT JOIN", Some(c)),
                JoinOperator::Right(c) | JoinOperator::RightOuter(c) => ("RIGHT JOIN", Some(c)),
                JoinOperator::FullOuter(c) => ("FULL JOIN", Some(c)),
                JoinOperator::CrossJoin(JoinConstraint::None) => ("CROSS JOIN", None),
                other => {
                    return Err(unsupported(
                        format!("{other:?}")
                            .split('(')
                            .next()
                            .unwrap_or("join")
                            .to_string(),
                    ))
                }
            };
            let rel = self.table_factor(&j.relation)?;
            sql.push_str(&format!(" {kw} {rel}"));
            match c {
                None => {}
                Some(JoinConstraint::On(e)) => {
                    let te = self.expr(e)?;
                    sql.push_str(" ON ");
                    sql.push_str(&te.sql);
                }
                Some(_) => return Err(unsupported("JOIN USING/NATURAL (use ON)")),
            }
        }
        Ok(sql)
    }

    // ----------------------------------------------------------------- expressions

    fn resolve_column(&mut self, qual: &[String], col: &str) -> Result<TExpr, SqlError> {
        let lc = ident_key(col);
        let qual_lc = qual.last().map(|q| {
            if q.eq_ignore_ascii_case("inserted") || q.eq_ignore_ascii_case("deleted") {
                q.to_ascii_lowercase()
            } else {
                ident_key(q)
            }
        });
        if !self.output_alias.is_empty() {
            match &qual_lc {
                Some(q) if self.output_alias.contains(&q.as_str()) => {}
                Some(q) if q == "inserted" || q == "deleted" => {
                    return Err(unsupported(format!(
                        "{}.{col} in this statement",
                        q.to_uppercase()
                    )))
                }
                _ => {
                    return Err(SqlError::new(
                        4104,
                        format!("The multi-part identifier \"{col}\" could not be bound."),
                    ))
                }
            }
        }
        for scope in self.scopes.iter().rev() {
            let mut found: Option<(&ScopeTable, &ColumnDef)> = None;
            for t in scope {
                if let Some(q) = &qual_lc {
                    if &t.alias != q {
                        continue;
                    }
                }
                if let Some(c) = t.def.column(&lc) {
                    if found.is_some() {
                        return Err(SqlError::new(
                            209,
                            format!("Ambiguous column name '{col}'."),
                        ));
                    }
                    found = Some((t, c));
                }
            }
            if let Some((t, c)) = found {
                let sql = if self.unqualified {
                    quote_ident(&c.lc)
                } else {
                    format!("{}.{}", quote_ident(&t.alias), quote_ident(&c.lc))
                };
                return Ok(TExpr {
                    sql,
                    ty: Some(c.ty.clone()),
                    literal: false,
                    nullable: c.nullable,
                    name: col.to_string(),
                });
            }
            if let Some(q) = &qual_lc {
                if scope.iter().any(|t| &t.alias == q) {
                    return Err(invalid_column(col));
                }
            }
        }
        if let Some(q) = qual_lc {
            if !self.scopes.iter().flatten().any(|t| t.alias == q) {
                return Err(SqlError::new(
                    4104,
                    format!(
                        "The multi-part identifier \"{}.{col}\" could not be bound.",
                        qual.join(".")
                    ),
                ));
            }
        }
        Err(invalid_column(col))
    }

    fn variable(&mut self, name: &str) -> Result<TExpr, SqlError> {
        let lc = name.to_lowercase();
        let (src, ty) = match lc.as_str() {
            "@@rowcount" => (Bind::RowCount, SqlType::Int),
            "@@trancount" => (Bind::TranCount, SqlType::Int),
            "@@identity" => (
                Bind::Identity,
                SqlType::Decimal {
                    precision: 38,
                    scale: 0,
                },
            ),
            "@@spid" => {
                return Ok(TExpr::new(
                    "pg_backend_pid()::smallint".into(),
                    SqlType::SmallInt,
                ))
            }
            "@@error" => (Bind::Error, SqlType::Int),
            "@@version" => {
                return Ok(TExpr::new(
                    quote_lit(SERVER_VERSION_TEXT),
                    SqlType::NVarChar(Some(300)),
                ))
            }
            _ if lc.starts_with("@@") => return Err(unsupported(name)),
            _ => {
                if let Some(i) = self.params.iter().position(|(n, _)| n.to_lowercase() == lc) {
                    (Bind::Param(i), self.params[i].1.clone())
                } else if let Some(t) = self.vars.get(&lc) {
                    (Bind::Var(lc.clone()), t.clone())
                } else {
                    return Err(SqlError::new(
                        137,
                        format!("Must declare the scalar variable \"{name}\"."),
                    ));
                }
            }
        };
        let p = self.bind(src, ty.clone());
        Ok(TExpr {
            sql: p,
            ty: Some(ty),
            literal: false,
            nullable: true,
            name: String::new(),
        })
    }

    /// Translates an expression. The stack grows on demand (`recursive`): a client's
    /// `@P1 + @P2 + … + @P400` nests 400 levels deep, and an overflow would abort the process.
    #[recursive::recursive]
    pub fn expr(&mut self, e: &Expr) -> Result<TExpr, SqlError> {
        match e {
            Expr::Identifier(id) => {
                if id.value.starts_with('@') {
                    return self.variable(&id.value);
                }
                if id.quote_style.is_none() {
                    match id.value.to_uppercase().as_str() {
                        "CURRENT_TIMESTAMP" => {
                            return Ok(TExpr::new(
                                "emu_catalog.dt300(localtimestamp)".into(),
                                SqlType::DateTime,
                            ))
                        }
                        "NULL" => return Ok(null_lit()),
                        _ => {}
                    }
                }
                self.resolve_column(&[], &id.value)
            }
            Expr::CompoundIdentifier(parts) => {
                let names: Vec<String> = parts.iter().map(|p| p.value.clone()).collect();
                let (col, qual) = names.split_last().ok_or_else(|| unsupported(e))?;
                let qual: Vec<String> = if qual.len() > 1 {
                    qual[qual.len() - 1..].to_vec()
                } else {
                    qual.to_vec()
                };
                self.resolve_column(&qual, col)
            }
            Expr::Value(v) => self.literal(&v.value),
            Expr::Nested(inner) => {
                let mut t = self.expr(inner)?;
                t.sql = format!("({})", t.sql);
                Ok(t)
            }
            Expr::IsNull(x) | Expr::IsNotNull(x) => {
                let t = self.expr(x)?;
                let not = if matches!(e, Expr::IsNotNull(_)) {
                    " NOT"
                } else {
                    ""
                };
                Ok(TExpr::new(
                    format!("({} IS{not} NULL)", t.sql),
                    SqlType::Bit,
                ))
            }
            Expr::UnaryOp { op, expr } => {
                let t = self.expr(expr)?;
                let s = match op {
                    UnaryOperator::Not => format!("(NOT {})", t.sql),
                    UnaryOperator::Minus => format!("(-{})", t.sql),
                    UnaryOperator::Plus => t.sql.clone(),
                    other => return Err(unsupported(other)),
                };
                Ok(TExpr {
                    sql: s,
                    ty: t.ty.clone().or(Some(SqlType::Int)),
                    literal: false,
                    nullable: t.nullable,
                    name: String::new(),
                })
            }
            Expr::BinaryOp { left, op, right } => self.binary(left, op, right),
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let a = self.expr(expr)?;
                let l = self.expr(low)?;
                let h = self.expr(high)?;
                let (a1, l) = coerce_pair(&a, &l);
                let (_, h) = coerce_pair(&a, &h);
                let not = if *negated { " NOT" } else { "" };
                Ok(TExpr::new(
                    format!("({}{not} BETWEEN {} AND {})", a1.sql, l.sql, h.sql),
                    SqlType::Bit,
                ))
            }
            Expr::In {
                expr,
                target: ast::InTarget::List(list),
                negated,
                global: false,
            } => {
                let mut a = self.expr(expr)?;
                let strings = a.ty.as_ref().is_some_and(is_string);
                if strings {
                    pad_insensitive(expr, &mut a);
                }
                let mut items = Vec::new();
                for x in list {
                    let mut t = self.expr(x)?;
                    if strings && t.ty.as_ref().is_some_and(is_string) {
                        pad_insensitive(x, &mut t);
                    }
                    items.push(coerce_pair(&a, &t).1.sql);
                }
                let not = if *negated { " NOT" } else { "" };
                Ok(TExpr::new(
                    format!("({}{not} IN ({}))", a.sql, items.join(", ")),
                    SqlType::Bit,
                ))
            }
            Expr::In {
                expr,
                target: ast::InTarget::Subquery(subquery),
                negated,
                global: false,
            } => {
                let a = self.expr(expr)?;
                let (q, _) = self.query(subquery)?;
                let not = if *negated { " NOT" } else { "" };
                Ok(TExpr::new(
                    format!("({}{not} IN ({q}))", a.sql),
                    SqlType::Bit,
                ))
            }
            Expr::Exists { subquery, negated } => {
                let (q, _) = self.query(subquery)?;
                let not = if *negated { "NOT " } else { "" };
                Ok(TExpr::new(format!("({not}EXISTS ({q}))"), SqlType::Bit))
            }
            Expr::Subquery(q) => {
                let (s, cols) = self.query(q)?;
                let ty = cols.first().map(|c| c.ty.clone()).unwrap_or(SqlType::Int);
                Ok(TExpr::new(format!("({s})"), ty))
            }
            Expr::Like {
                negated,
                any: false,
                expr,
                pattern,
                escape_char,
            } => {
                let a = self.expr(expr)?;
                let mut p = self.expr(pattern)?;
                // T-SQL's [set] / [^set] classes have no PostgreSQL LIKE equivalent: refused
                // rather than matched literally.
                if let Expr::Value(v) = pattern.as_ref() {
                    if let AV::SingleQuotedString(s) | AV::NationalStringLiteral(s) = &v.value {
                        if s.contains('[') {
                            return Err(unsupported(
                                "LIKE with a [ ] character class (not supported by the emulator; use OR of LIKEs or IN)",
                            ));
                        }
                    }
                } else {
                    p.sql = format!("emu_catalog.like_pattern(({})::text)", p.sql);
                }
                let not = if *negated { " NOT" } else { "" };
                let esc = match escape_char {
                    None => String::new(),
                    Some(c) => format!(" ESCAPE {}", self.expr(c)?.sql),
                };
                // Nondeterministic collations reject LIKE in PostgreSQL 15: compare the
                // Turkish lower-case forms under a deterministic collation instead.
                Ok(TExpr::new(
                    format!(
                        "(lower(({})::text COLLATE emu_catalog.tr_det){not} LIKE lower(({})::text COLLATE emu_catalog.tr_det){esc})",
                        a.sql, p.sql
                    ),
                    SqlType::Bit,
                ))
            }
            Expr::ILike { .. } => Err(unsupported(
                "ILIKE (PostgreSQL; use LIKE, comparisons are case-insensitive)",
            )),
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let mut sql = String::from("CASE");
                if let Some(o) = operand {
                    sql.push(' ');
                    sql.push_str(&self.expr(o)?.sql);
                }
                let mut ty: Option<SqlType> = None;
                let mut results = Vec::new();
                for w in conditions {
                    let c = self.expr(&w.condition)?;
                    let r = self.expr(&w.result)?;
                    ty = higher(ty, r.ty.clone());
                    results.push((c.sql, r));
                }
                let els = match else_result {
                    Some(x) => {
                        let r = self.expr(x)?;
                        ty = higher(ty, r.ty.clone());
                        Some(r)
                    }
                    None => None,
                };
                let target = ty.clone().unwrap_or(SqlType::Int);
                for (c, r) in results {
                    sql.push_str(&format!(" WHEN {c} THEN {}", cast_if_needed(&r, &target)));
                }
                if let Some(r) = els {
                    sql.push_str(&format!(" ELSE {}", cast_if_needed(&r, &target)));
                }
                sql.push_str(" END");
                Ok(TExpr::new(sql, target))
            }
            Expr::Cast {
                kind,
                expr,
                data_type,
                format,
            } => {
                if format.is_some() {
                    return Err(unsupported("CAST … FORMAT"));
                }
                match kind {
                    CastKind::Cast => {}
                    CastKind::DoubleColon => {
                        return Err(unsupported(":: (PostgreSQL cast; use CAST)"))
                    }
                    _ => return Err(unsupported("TRY_CAST/SAFE_CAST")),
                }
                let t = self.expr(expr)?;
                let target = data_type_to_sql(data_type, 30)?;
                Ok(self.cast(&t, &target, None))
            }
            Expr::Convert {
                is_try: false,
                expr,
                data_type: Some(dt),
                charset: None,
                styles,
                ..
            } => {
                let t = self.expr(expr)?;
                let target = data_type_to_sql(dt, 30)?;
                let style = match styles.first() {
                    None => None,
                    Some(Expr::Value(v)) => match &v.value {
                        AV::Number(n, _) => n.parse::<i32>().ok(),
                        _ => return Err(unsupported("CONVERT style")),
                    },
                    Some(_) => return Err(unsupported("CONVERT style expression")),
                };
                Ok(self.cast(&t, &target, style))
            }
            Expr::Collate { expr, .. } => self.expr(expr),
            Expr::Function(f) => self.function(f),
            Expr::Trim {
                trim_where: None,
                trim_what: None,
                expr,
                trim_characters: None,
            } => {
                let t = self.expr(expr)?;
                Ok(TExpr::new(
                    format!("btrim({}, ' ')", t.sql),
                    t.ty_or(SqlType::NVarChar(Some(4000))),
                ))
            }
            Expr::Substring {
                expr,
                substring_from: Some(from),
                substring_for: Some(len),
                ..
            } => {
                let t = self.expr(expr)?;
                let f = self.expr(from)?;
                let l = self.expr(len)?;
                Ok(TExpr::new(
                    format!("substr({}, ({}), greatest(({}), 0))", t.sql, f.sql, l.sql),
                    t.ty_or(SqlType::NVarChar(Some(4000))),
                ))
            }
            other => Err(unsupported(first_words(&other.to_string()))),
        }
    }

    fn literal(&mut self, v: &AV) -> Result<TExpr, SqlError> {
        let lit = |sql: String, ty: SqlType| TExpr {
            sql,
            ty: Some(ty),
            literal: true,
            nullable: false,
            name: String::new(),
        };
        Ok(match v {
            AV::Number(n, _) => {
                if n.contains(['e', 'E']) {
                    lit(format!("({n})::double precision"), SqlType::Float)
                } else if let Some(dot) = n.find('.') {
                    let digits = n.chars().filter(|c| c.is_ascii_digit()).count();
                    let scale = n.len() - dot - 1;
                    let precision = digits.max(scale).max(1);
                    lit(
                        n.clone(),
                        SqlType::Decimal {
                            precision: precision.min(38) as u8,
                            scale: scale.min(38) as u8,
                        },
                    )
                } else {
                    match n.parse::<i64>() {
                        Ok(i) if i32::try_from(i).is_ok() => lit(n.clone(), SqlType::Int),
                        _ => lit(
                            format!("({n})::numeric"),
                            SqlType::Decimal {
                                precision: n.len().min(38) as u8,
                                scale: 0,
                            },
                        ),
                    }
                }
            }
            AV::SingleQuotedString(s) => lit(
                quote_lit(s),
                SqlType::VarChar(Some(s.chars().count().clamp(1, 8000) as u16)),
            ),
            AV::NationalStringLiteral(s) => lit(
                quote_lit(s),
                SqlType::NVarChar(Some(s.chars().count().clamp(1, 4000) as u16)),
            ),
            AV::Null => null_lit(),
            AV::Placeholder(p) => {
                return Err(unsupported(format!(
                    "{p} (PostgreSQL placeholder; use @P1 parameters)"
                )))
            }
            AV::DoubleQuotedString(s) => {
                return Err(unsupported(format!(
                    "\"{s}\" (double-quoted string literal; use '…')"
                )))
            }
            AV::Boolean(b) => return Err(unsupported(format!("{b} (boolean literal; use 1/0)"))),
            AV::DollarQuotedString(_) => return Err(unsupported("$$ (dollar-quoted string)")),
            AV::EscapedStringLiteral(_) => return Err(unsupported("E'…' (escaped string)")),
            other => return Err(unsupported(other)),
        })
    }

    fn binary(&mut self, l: &Expr, op: &BinaryOperator, r: &Expr) -> Result<TExpr, SqlError> {
        let mut a = self.expr(l)?;
        let mut b = self.expr(r)?;
        if matches!(
            op,
            BinaryOperator::Eq
                | BinaryOperator::NotEq
                | BinaryOperator::Lt
                | BinaryOperator::LtEq
                | BinaryOperator::Gt
                | BinaryOperator::GtEq
        ) {
            self.identity_as_bigint(&mut a, &b);
            self.identity_as_bigint(&mut b, &a);
            if a.ty.as_ref().is_some_and(is_string) && b.ty.as_ref().is_some_and(is_string) {
                pad_insensitive(l, &mut a);
                pad_insensitive(r, &mut b);
            }
        }
        // Two strings compare under the database collation even when neither is a column
        // (PostgreSQL would compare literals and parameters case-sensitively).
        let both_strings =
            a.ty.as_ref().is_some_and(is_string) && b.ty.as_ref().is_some_and(is_string);
        let cmp = |s: &str, a: &TExpr, b: &TExpr| {
            let (a, b) = coerce_pair(a, b);
            let coll = if both_strings {
                " COLLATE emu_catalog.tr_ci"
            } else {
                ""
            };
            TExpr::new(format!("({} {s} {}{coll})", a.sql, b.sql), SqlType::Bit)
        };
        Ok(match op {
            BinaryOperator::Eq => cmp("=", &a, &b),
            BinaryOperator::NotEq => cmp("<>", &a, &b),
            BinaryOperator::Lt => cmp("<", &a, &b),
            BinaryOperator::LtEq => cmp("<=", &a, &b),
            BinaryOperator::Gt => cmp(">", &a, &b),
            BinaryOperator::GtEq => cmp(">=", &a, &b),
            BinaryOperator::And => TExpr::new(format!("({} AND {})", a.sql, b.sql), SqlType::Bit),
            BinaryOperator::Or => TExpr::new(format!("({} OR {})", a.sql, b.sql), SqlType::Bit),
            BinaryOperator::Plus
            | BinaryOperator::Minus
            | BinaryOperator::Multiply
            | BinaryOperator::Divide
            | BinaryOperator::Modulo => {
                let at = a.ty.clone();
                let bt = b.ty.clone();
                let is_str = |t: &Option<SqlType>| t.as_ref().is_some_and(is_string);
                if matches!(op, BinaryOperator::Plus) && (is_str(&at) || is_str(&bt)) {
                    // T-SQL string concatenation; NULL + 'x' is NULL as in PostgreSQL's ||.
                    let len = |t: &Option<SqlType>| match t {
                        Some(SqlType::NVarChar(Some(n)) | SqlType::VarChar(Some(n))) => {
                            Some(*n as u32)
                        }
                        Some(SqlType::NChar(n) | SqlType::Char(n)) => Some(*n as u32),
                        None => Some(0),
                        _ => Some(30),
                    };
                    let n = match (len(&at), len(&bt)) {
                        (Some(x), Some(y)) if x + y <= 4000 => Some((x + y).max(1) as u16),
                        _ => None,
                    };
                    let nat = matches!(at, Some(SqlType::NVarChar(_) | SqlType::NChar(_)))
                        || matches!(bt, Some(SqlType::NVarChar(_) | SqlType::NChar(_)));
                    let ty = if nat {
                        SqlType::NVarChar(n)
                    } else {
                        SqlType::VarChar(n)
                    };
                    return Ok(TExpr::new(
                        format!("(({})::text || ({})::text)", a.sql, b.sql),
                        ty,
                    ));
                }
                let temporal = |t: &Option<SqlType>| t.as_ref().is_some_and(is_temporal);
                if matches!(op, BinaryOperator::Plus | BinaryOperator::Minus)
                    && temporal(&at)
                    && !temporal(&bt)
                {
                    let sign = if matches!(op, BinaryOperator::Plus) {
                        "+"
                    } else {
                        "-"
                    };
                    return Ok(TExpr::new(
                        format!("({} {sign} ({}) * interval '1 day')", a.sql, b.sql),
                        at.unwrap_or(SqlType::DateTime),
                    ));
                }
                let ty = arith_type(&at, &bt, op);
                let o = match op {
                    BinaryOperator::Plus => "+",
                    BinaryOperator::Minus => "-",
                    BinaryOperator::Multiply => "*",
                    BinaryOperator::Divide => "/",
                    _ => "%",
                };
                let (a2, b2) = (numeric_operand(&a), numeric_operand(&b));
                TExpr::new(format!("({a2} {o} {b2})"), ty)
            }
            BinaryOperator::BitwiseAnd => {
                TExpr::new(format!("({} & {})", a.sql, b.sql), a.ty_or(SqlType::Int))
            }
            BinaryOperator::BitwiseOr => {
                TExpr::new(format!("({} | {})", a.sql, b.sql), a.ty_or(SqlType::Int))
            }
            BinaryOperator::BitwiseXor => {
                TExpr::new(format!("({} # {})", a.sql, b.sql), a.ty_or(SqlType::Int))
            }
            BinaryOperator::StringConcat => {
                return Err(unsupported("|| (PostgreSQL concatenation; use +)"))
            }
            other => return Err(unsupported(other)),
        })
    }

    /// `x` is `SCOPE_IDENTITY()` / `@@IDENTITY` (decimal(38,0) in T-SQL, a `numeric` parameter
    /// here) compared with an integer expression: compare as `bigint` instead. PostgreSQL would
    /// otherwise cast the integer column to `numeric`, which no btree index on the column can
    /// serve, so `WHERE RECno = SCOPE_IDENTITY()` scanned the whole table on every call. The
    /// value is always an identity read as `i64`, so the cast is exact (NULL stays NULL) and the
    /// comparison's result is unchanged; the expression's T-SQL type stays decimal(38,0).
    fn identity_as_bigint(&self, x: &mut TExpr, other: &TExpr) {
        if !other.ty.as_ref().is_some_and(|t| {
            matches!(
                t,
                SqlType::TinyInt | SqlType::SmallInt | SqlType::Int | SqlType::BigInt
            )
        }) {
            return;
        }
        let is_identity_bind = [Bind::ScopeIdentity, Bind::Identity].iter().any(|b| {
            self.bind_ix
                .get(b)
                .is_some_and(|i| x.sql == format!("${}", i + 1))
        });
        if is_identity_bind {
            x.sql = format!("CAST({} AS bigint)", x.sql);
        }
    }

    fn cast(&mut self, t: &TExpr, target: &SqlType, style: Option<i32>) -> TExpr {
        let src = t.ty.clone();
        let pgt = pg_type_name(target);
        let sql = match (&src, target) {
            (_, _) if t.ty.is_none() => format!("CAST(NULL AS {pgt})"),
            (Some(s), tg)
                if is_integer(tg)
                    && matches!(
                        s,
                        SqlType::Float | SqlType::Real | SqlType::Decimal { .. } | SqlType::Money
                    ) =>
            {
                format!("CAST(trunc({}) AS {pgt})", t.sql)
            }
            (Some(s), SqlType::Bit) if is_numeric(s) => {
                format!("CAST(({} <> 0)::int AS smallint)", t.sql)
            }
            (Some(s), tg) if is_temporal(s) && is_string(tg) => {
                let fmt = match (style, s) {
                    (Some(112), _) => "YYYYMMDD",
                    (Some(23), _) | (None, SqlType::Date) => "YYYY-MM-DD",
                    (Some(104), _) => "DD.MM.YYYY",
                    (Some(103), _) => "DD/MM/YYYY",
                    (Some(101), _) => "MM/DD/YYYY",
                    (Some(108), _) => "HH24:MI:SS",
                    (Some(120), _) | (Some(20), _) => "YYYY-MM-DD HH24:MI:SS",
                    (Some(126), _) => "YYYY-MM-DD\"T\"HH24:MI:SS.MS",
                    (Some(127), _) => "YYYY-MM-DD\"T\"HH24:MI:SS.MS",
                    (_, SqlType::DateTime2(_)) => "YYYY-MM-DD HH24:MI:SS.US",
                    _ => "YYYY-MM-DD HH24:MI:SS.MS",
                };
                format!("CAST(to_char({}, '{fmt}') AS {pgt})", t.sql)
            }
            (_, SqlType::DateTime) => format!("emu_catalog.dt300(CAST({} AS timestamp))", t.sql),
            // SQL Server writes a uniqueidentifier as upper-case text.
            (Some(SqlType::UniqueIdentifier), tg) if is_string(tg) => {
                format!("CAST(upper(({})::text) AS {pgt})", t.sql)
            }
            (Some(s), tg) if is_string(s) && is_string(tg) => format!("CAST({} AS {pgt})", t.sql),
            _ => format!("CAST({} AS {pgt})", t.sql),
        };
        TExpr {
            sql,
            ty: Some(target.clone()),
            literal: false,
            nullable: t.nullable,
            name: String::new(),
        }
    }

    fn args(&mut self, f: &ast::Function) -> Result<Vec<FunctionArgExpr>, SqlError> {
        match &f.args {
            FunctionArguments::None => Ok(Vec::new()),
            FunctionArguments::List(l) => {
                if !l.clauses.is_empty() {
                    return Err(unsupported(format!("{} clauses", f.name)));
                }
                l.args
                    .iter()
                    .map(|a| match a {
                        FunctionArg::Unnamed(x) => Ok(x.clone()),
                        _ => Err(unsupported("named function arguments")),
                    })
                    .collect()
            }
            FunctionArguments::Subquery(_) => Err(unsupported("function(subquery)")),
        }
    }

    fn function(&mut self, f: &ast::Function) -> Result<TExpr, SqlError> {
        if f.over.is_some() {
            return Err(unsupported("window functions (OVER)"));
        }
        if f.filter.is_some()
            || (!f.within_group.is_empty() && !name_is(&f.name, "string_agg"))
            || f.null_treatment.is_some()
        {
            return Err(unsupported(&f.name));
        }
        let parts = name_parts(&f.name);
        let name = parts.last().cloned().unwrap_or_default().to_lowercase();
        let distinct = matches!(
            &f.args,
            FunctionArguments::List(l) if matches!(l.duplicate_treatment, Some(ast::DuplicateTreatment::Distinct))
        );
        let raw = self.args(f)?;
        let star = raw.len() == 1 && matches!(raw[0], FunctionArgExpr::Wildcard);
        let mut a = Vec::new();
        if !star {
            for x in &raw {
                match x {
                    FunctionArgExpr::Expr(e) => {
                        // DATEADD(day, …) / DATEDIFF(day, …): the first argument is a keyword.
                        if (name == "dateadd" || name == "datediff" || name == "datepart")
                            && a.is_empty()
                        {
                            if let Expr::Identifier(i) = e {
                                a.push(TExpr::new(i.value.to_lowercase(), SqlType::Int));
                                continue;
                            }
                        }
                        a.push(self.expr(e)?)
                    }
                    _ => return Err(unsupported(format!("{name}(*)"))),
                }
            }
        }
        let n = a.len();
        let need = |k: usize| -> Result<(), SqlError> {
            if n == k {
                Ok(())
            } else {
                Err(SqlError::new(
                    174,
                    format!("The {name} function requires {k} argument(s)."),
                ))
            }
        };
        let d = if distinct { "DISTINCT " } else { "" };
        let t = |sql: String, ty: SqlType| Ok(TExpr::new(sql, ty));
        match name.as_str() {
            "count" | "count_big" => {
                let ty = if name == "count" {
                    SqlType::Int
                } else {
                    SqlType::BigInt
                };
                let inner = if star {
                    "*".to_string()
                } else {
                    need(1)?;
                    format!("{d}{}", a[0].sql)
                };
                let mut r = TExpr::new(format!("count({inner})"), ty);
                r.nullable = false;
                Ok(r)
            }
            "sum" => {
                need(1)?;
                let ty = match a[0].ty_or(SqlType::Int) {
                    SqlType::Bit | SqlType::TinyInt | SqlType::SmallInt | SqlType::Int => {
                        SqlType::Int
                    }
                    SqlType::BigInt => SqlType::BigInt,
                    SqlType::Real | SqlType::Float => SqlType::Float,
                    SqlType::Decimal { scale, .. } => SqlType::Decimal {
                        precision: 38,
                        scale,
                    },
                    SqlType::Money => SqlType::Money,
                    _ => {
                        return Err(SqlError::new(
                            8117,
                            "Operand data type is invalid for sum operator.",
                        ))
                    }
                };
                t(format!("sum({d}{})", a[0].sql), ty)
            }
            "avg" => {
                need(1)?;
                let at = a[0].ty_or(SqlType::Int);
                if is_integer(&at) {
                    let ty = if at == SqlType::BigInt {
                        SqlType::BigInt
                    } else {
                        SqlType::Int
                    };
                    t(format!("trunc(avg({d}{}))", a[0].sql), ty)
                } else {
                    let ty = match at {
                        SqlType::Decimal { scale, .. } => SqlType::Decimal {
                            precision: 38,
                            scale: scale.max(6),
                        },
                        SqlType::Money => SqlType::Money,
                        _ => SqlType::Float,
                    };
                    t(format!("avg({d}{})", a[0].sql), ty)
                }
            }
            "max" | "min" => {
                need(1)?;
                t(format!("{name}({d}{})", a[0].sql), a[0].ty_or(SqlType::Int))
            }
            "isnull" => {
                need(2)?;
                let ty = a[0].ty.clone().or(a[1].ty.clone()).unwrap_or(SqlType::Int);
                let second = cast_if_needed(&a[1], &ty);
                let mut r = TExpr::new(format!("COALESCE({}, {second})", a[0].sql), ty);
                r.nullable = a[1].nullable;
                Ok(r)
            }
            "coalesce" => {
                if n < 2 {
                    return Err(SqlError::new(
                        174,
                        "The coalesce function requires 2 or more arguments.",
                    ));
                }
                let mut ty = None;
                for x in &a {
                    ty = higher(ty, x.ty.clone());
                }
                let ty = ty.unwrap_or(SqlType::Int);
                let items: Vec<String> = a.iter().map(|x| cast_if_needed(x, &ty)).collect();
                t(format!("COALESCE({})", items.join(", ")), ty)
            }
            "nullif" => {
                need(2)?;
                let (x, y) = coerce_pair(&a[0], &a[1]);
                t(
                    format!("NULLIF({}, {})", x.sql, y.sql),
                    a[0].ty_or(SqlType::Int),
                )
            }
            "getdate" | "current_timestamp" => {
                need(0)?;
                t(
                    "emu_catalog.dt300(localtimestamp)".into(),
                    SqlType::DateTime,
                )
            }
            "getutcdate" => {
                need(0)?;
                t(
                    "emu_catalog.dt300((now() AT TIME ZONE 'UTC'))".into(),
                    SqlType::DateTime,
                )
            }
            "sysdatetime" => {
                need(0)?;
                t("localtimestamp".into(), SqlType::DateTime2(7))
            }
            "sysutcdatetime" => {
                need(0)?;
                t("(now() AT TIME ZONE 'UTC')".into(), SqlType::DateTime2(7))
            }
            "newid" => {
                need(0)?;
                t("gen_random_uuid()".into(), SqlType::UniqueIdentifier)
            }
            "string_agg" => {
                need(2)?;
                let sep = &a[1];
                if !sep.literal {
                    return Err(unsupported(
                        "STRING_AGG with a separator that is not a literal (not supported by the emulator)",
                    ));
                }
                let order = if f.within_group.is_empty() {
                    String::new()
                } else {
                    let mut keys = Vec::new();
                    for o in &f.within_group {
                        let k = self.expr(&o.expr)?;
                        let dir = match o.options.sort {
                            Some(ast::OrderBySort::Desc) => " DESC NULLS LAST",
                            Some(ast::OrderBySort::Asc) | None => " NULLS FIRST",
                            Some(_) => return Err(unsupported("ORDER BY … USING")),
                        };
                        keys.push(format!("{}{dir}", k.sql));
                    }
                    format!(" ORDER BY {}", keys.join(", "))
                };
                // SQL Server: nvarchar(4000)/varchar(8000), or (n)varchar(max) for max input.
                let ty = match &a[0].ty {
                    Some(SqlType::NVarChar(None) | SqlType::VarChar(None)) => {
                        a[0].ty.clone().unwrap_or(SqlType::NVarChar(None))
                    }
                    Some(SqlType::VarChar(_) | SqlType::Char(_)) => SqlType::VarChar(Some(8000)),
                    _ => SqlType::NVarChar(Some(4000)),
                };
                t(
                    format!(
                        "string_agg(({})::text, ({})::text{order})",
                        a[0].sql, sep.sql
                    ),
                    ty,
                )
            }
            "error_number" | "error_message" | "error_severity" | "error_state" | "error_line"
            | "error_procedure" | "xact_state" => {
                need(0)?;
                let (b, ty) = match name.as_str() {
                    "error_number" => (Bind::ErrNumber, SqlType::Int),
                    "error_message" => (Bind::ErrMessage, SqlType::NVarChar(Some(4000))),
                    "error_severity" => (Bind::ErrSeverity, SqlType::Int),
                    "error_state" => (Bind::ErrState, SqlType::Int),
                    "error_line" => (Bind::ErrLine, SqlType::Int),
                    "xact_state" => (Bind::XactState, SqlType::SmallInt),
                    _ => return t("CAST(NULL AS text)".into(), SqlType::NVarChar(Some(128))),
                };
                let p = self.bind(b, ty.clone());
                t(p, ty)
            }
            "scope_identity" => {
                need(0)?;
                let ty = SqlType::Decimal {
                    precision: 38,
                    scale: 0,
                };
                let p = self.bind(Bind::ScopeIdentity, ty.clone());
                t(p, ty)
            }
            "object_id" => {
                if n == 0 || n > 2 {
                    return Err(SqlError::new(
                        174,
                        "The object_id function requires 1 to 2 arguments.",
                    ));
                }
                let second = if n == 2 {
                    format!("({})::text", a[1].sql)
                } else {
                    "NULL".into()
                };
                // A literal name is resolved here with the Turkish identifier rules.
                if a[0].literal && a[0].sql.len() >= 2 && a[0].sql.starts_with('\'') {
                    let raw = a[0].sql[1..a[0].sql.len() - 1].replace("''", "'");
                    let last = raw
                        .rsplit('.')
                        .next()
                        .unwrap_or("")
                        .replace(['[', ']', '"'], "");
                    return t(
                        format!(
                            "(SELECT object_id FROM emu_catalog.tables WHERE name_lc = {} AND ({second} IS NULL OR upper(btrim({second})) = 'U'))",
                            quote_lit(&ident_key(&last))
                        ),
                        SqlType::Int,
                    );
                }
                t(
                    format!("emu_catalog.object_id(({})::text, {second})", a[0].sql),
                    SqlType::Int,
                )
            }
            "iif" => {
                need(3)?;
                let ty = higher(a[1].ty.clone(), a[2].ty.clone()).unwrap_or(SqlType::Int);
                t(
                    format!(
                        "CASE WHEN {} THEN {} ELSE {} END",
                        a[0].sql,
                        cast_if_needed(&a[1], &ty),
                        cast_if_needed(&a[2], &ty)
                    ),
                    ty,
                )
            }
            "concat" => {
                if n < 2 {
                    return Err(SqlError::new(
                        189,
                        "The concat function requires 2 to 254 arguments.",
                    ));
                }
                let nat = a
                    .iter()
                    .any(|x| matches!(x.ty, Some(SqlType::NVarChar(_) | SqlType::NChar(_))));
                let items: Vec<String> = a.iter().map(|x| format!("({})::text", x.sql)).collect();
                let mut r = TExpr::new(
                    format!("concat({})", items.join(", ")),
                    if nat {
                        SqlType::NVarChar(Some(4000))
                    } else {
                        SqlType::VarChar(Some(8000))
                    },
                );
                r.nullable = false;
                Ok(r)
            }
            "db_name" => t(
                "current_setting('emu.database')".into(),
                SqlType::NVarChar(Some(128)),
            ),
            "len" => {
                need(1)?;
                let ty = match a[0].ty {
                    Some(SqlType::NVarChar(None) | SqlType::VarChar(None)) => SqlType::BigInt,
                    _ => SqlType::Int,
                };
                t(format!("length(rtrim(({})::text, ' '))", a[0].sql), ty)
            }
            "upper" | "lower" => {
                need(1)?;
                t(
                    format!("{name}(({})::text COLLATE emu_catalog.tr_det)", a[0].sql),
                    a[0].ty_or(SqlType::NVarChar(Some(4000))),
                )
            }
            "ltrim" | "rtrim" => {
                need(1)?;
                t(
                    format!("{name}(({})::text, ' ')", a[0].sql),
                    a[0].ty_or(SqlType::NVarChar(Some(4000))),
                )
            }
            "left" | "right" => {
                need(2)?;
                t(
                    format!("{name}(({})::text, {})", a[0].sql, a[1].sql),
                    a[0].ty_or(SqlType::NVarChar(Some(4000))),
                )
            }
            "substring" => {
                need(3)?;
                t(
                    format!(
                        "substr(({})::text, {}, greatest({}, 0))",
                        a[0].sql, a[1].sql, a[2].sql
                    ),
                    a[0].ty_or(SqlType::NVarChar(Some(4000))),
                )
            }
            "replace" => {
                need(3)?;
                // Turkish_CI_AS: the pattern matches case-insensitively with Turkish casing.
                t(
                    format!(
                        "emu_catalog.ci_replace(({})::text, ({})::text, ({})::text)",
                        a[0].sql, a[1].sql, a[2].sql
                    ),
                    a[0].ty_or(SqlType::NVarChar(Some(4000))),
                )
            }
            "charindex" => {
                need(2)?;
                t(
                    format!(
                        "emu_catalog.ci_charindex(({})::text, ({})::text)",
                        a[0].sql, a[1].sql
                    ),
                    SqlType::Int,
                )
            }
            "abs" => {
                need(1)?;
                t(format!("abs({})", a[0].sql), a[0].ty_or(SqlType::Int))
            }
            "round" => {
                if n != 2 && n != 3 {
                    return Err(SqlError::new(
                        174,
                        "The round function requires 2 or 3 arguments.",
                    ));
                }
                let ty = a[0].ty_or(SqlType::Float);
                t(
                    format!(
                        "CAST(round(({})::numeric, {}) AS {})",
                        a[0].sql,
                        a[1].sql,
                        pg_type_name(&ty)
                    ),
                    ty,
                )
            }
            "ceiling" | "floor" => {
                need(1)?;
                let f = if name == "ceiling" { "ceil" } else { "floor" };
                t(format!("{f}({})", a[0].sql), a[0].ty_or(SqlType::Float))
            }
            "year" | "month" | "day" => {
                need(1)?;
                t(
                    format!("CAST(extract({name} FROM {}) AS integer)", a[0].sql),
                    SqlType::Int,
                )
            }
            "datepart" => {
                need(2)?;
                let p = date_part(&a[0].sql)?;
                t(
                    format!("CAST(extract({p} FROM {}) AS integer)", a[1].sql),
                    SqlType::Int,
                )
            }
            "dateadd" => {
                need(3)?;
                let p = date_part(&a[0].sql)?;
                let ty = a[2].ty_or(SqlType::DateTime);
                let ty = if is_string(&ty) {
                    SqlType::DateTime
                } else {
                    ty
                };
                let base = format!("CAST({} AS timestamp)", a[2].sql);
                let sql = format!("({base} + ({}) * interval '1 {p}')", a[1].sql);
                let sql = match ty {
                    SqlType::Date => format!("CAST({sql} AS date)"),
                    SqlType::DateTime => format!("emu_catalog.dt300({sql})"),
                    _ => sql,
                };
                t(sql, ty)
            }
            "datediff" => {
                need(3)?;
                let p = date_part(&a[0].sql)?;
                let (x, y) = (
                    format!("CAST({} AS timestamp)", a[1].sql),
                    format!("CAST({} AS timestamp)", a[2].sql),
                );
                let sql = match p {
                    "day" => format!("(CAST({y} AS date) - CAST({x} AS date))"),
                    "year" => format!("CAST(extract(year FROM {y}) - extract(year FROM {x}) AS integer)"),
                    "month" => format!("CAST((extract(year FROM {y}) - extract(year FROM {x})) * 12 + extract(month FROM {y}) - extract(month FROM {x}) AS integer)"),
                    "hour" => format!("CAST(floor(extract(epoch FROM date_trunc('hour', {y}) - date_trunc('hour', {x})) / 3600) AS integer)"),
                    "minute" => format!("CAST(floor(extract(epoch FROM date_trunc('minute', {y}) - date_trunc('minute', {x})) / 60) AS integer)"),
                    "second" => format!("CAST(floor(extract(epoch FROM date_trunc('second', {y}) - date_trunc('second', {x}))) AS integer)"),
                    _ => format!("CAST(floor(extract(epoch FROM {y} - {x}) * 1000) AS integer)"),
                };
                t(sql, SqlType::Int)
            }
            "now" | "current_date" | "array_agg" | "to_char" | "to_date" | "nextval"
            | "currval" | "generate_series" | "concat_ws" | "strpos" | "ilike" | "date_trunc" => {
                Err(unsupported(format!(
                    "{name}() (PostgreSQL function, not T-SQL)"
                )))
            }
            _ => Err(unsupported(format!("{name}()"))),
        }
    }
}

/// SQL Server compares strings as if the shorter were padded with spaces, so trailing spaces
/// never matter. Literals lose theirs here and other expressions (parameters, variables,
/// functions) are wrapped in `rtrim`; a bare column is left alone so that its index still serves
/// the comparison — a difference the README lists (a stored value with trailing spaces).
fn pad_insensitive(e: &Expr, x: &mut TExpr) {
    match e {
        Expr::Identifier(i) if !i.value.starts_with('@') => {}
        Expr::CompoundIdentifier(_) => {}
        Expr::Nested(inner) => pad_insensitive(inner, x),
        Expr::Value(v) => {
            if let AV::SingleQuotedString(s) | AV::NationalStringLiteral(s) = &v.value {
                x.sql = quote_lit(s.trim_end_matches(' '));
            }
        }
        _ => x.sql = format!("rtrim({}, ' ')", x.sql),
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
        SqlType::Bit if !x.literal && *t != SqlType::Bit => {
            format!("CAST((({base}) <> 0)::int AS smallint)")
        }
        _ => base,
    }
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
