//! Queries: SELECT, joins, derived tables, CTEs, set operations, GROUP BY / ORDER BY / TOP /
//! OFFSET, with SQL Server's result typing.

use super::*;

impl<'a> Translator<'a> {
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
                let def = derived_table(&cte.alias.name.value, key.clone(), &cols);
                self.ctes.push((key, def));
            }
            with_sql = format!("WITH {} ", parts.join(", "));
        }
        let r = self.query_body(q);
        self.ctes.truncate(ctes_before);
        let (sql, cols) = r?;
        Ok((format!("{with_sql}{sql}"), cols))
    }

    pub(super) fn query_body(&mut self, q: &Query) -> Result<(String, Vec<OutCol>), SqlError> {
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

    pub(super) fn query_inner(
        &mut self,
        q: &Query,
        offset: Option<Expr>,
    ) -> Result<(String, Vec<OutCol>), SqlError> {
        self.last_select_keys = None;
        let (mut sql, cols, top) = self.set_expr(&q.body)?;
        // ORDER BY of a grouped/DISTINCT select reads its columns as the select list does.
        let keys = match q.body.as_ref() {
            SetExpr::Select(_) => self.last_select_keys.take(),
            _ => None,
        };
        let n = self.group_keys.len();
        self.group_keys.extend(keys);
        let r = self.order_fetch(q, offset, &mut sql, &cols, top);
        self.group_keys.truncate(n);
        r?;
        Ok((sql, cols))
    }

    /// ORDER BY, TOP, OFFSET and FETCH of a query whose body is `sql`.
    fn order_fetch(
        &mut self,
        q: &Query,
        offset: Option<Expr>,
        sql: &mut String,
        cols: &[OutCol],
        top: Option<String>,
    ) -> Result<(), SqlError> {
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
                        (self.regrouped(te.sql), te.nullable)
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
        Ok(())
    }

    pub(super) fn set_expr(
        &mut self,
        b: &SetExpr,
    ) -> Result<(String, Vec<OutCol>, Option<String>), SqlError> {
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
                    SetQuantifier::All if !matches!(op, SetOperator::Union) => {
                        return Err(unsupported(format!("{opname} ALL (not T-SQL)")))
                    }
                    SetQuantifier::All => " ALL",
                    SetQuantifier::None | SetQuantifier::Distinct => "",
                    _ => return Err(unsupported(set_quantifier)),
                };
                // Without ALL, rows that differ only in trailing spaces are one row, returned
                // as one of their stored values (see `set_grouped`).
                let dedup = q.is_empty();
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
                if dedup && lc.iter().any(|c| is_string(&c.ty)) {
                    let sql = set_grouped(op, &wrap(ls, lt), &wrap(rs, rt), &lc);
                    return Ok((sql, lc, None));
                }
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

    pub(super) fn select(
        &mut self,
        s: &Select,
    ) -> Result<(String, Vec<OutCol>, Option<String>), SqlError> {
        // An outer select's grouping stays visible (a correlated subquery may read its
        // grouped columns); this select's own keys are dropped when it is done.
        let n = self.group_keys.len();
        let r = self.select_inner(s);
        self.group_keys.truncate(n);
        r
    }

    fn select_inner(
        &mut self,
        s: &Select,
    ) -> Result<(String, Vec<OutCol>, Option<String>), SqlError> {
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
        let grouped = matches!(&s.group_by, GroupByExpr::Expressions(e, _) if !e.is_empty());
        let distinct = match &s.distinct {
            None => false,
            Some(ast::Distinct::Distinct) => true,
            Some(other) => return Err(unsupported(other)),
        };
        let mut sql = String::from("SELECT ");
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
        // WHERE runs before grouping: it reads stored values.
        let selection = match &s.selection {
            Some(w) => Some(self.expr(w)?.sql),
            None => None,
        };
        let depth = self.scopes.len().saturating_sub(1);
        let mut keys = Vec::new();
        match &s.group_by {
            GroupByExpr::Expressions(e, m) if m.is_empty() => {
                for x in e {
                    let k = self.expr(x)?;
                    keys.push((k.sql, k.ty));
                }
            }
            other => return Err(unsupported(other)),
        }
        if grouped {
            self.group_keys.push((depth, string_keys(&keys)));
        }
        let aggregates_before = self.aggregates;
        let (mut items, cols) = self.projection_items(&s.projection)?;
        // DISTINCT runs as GROUP BY over the list (so that values differing only in trailing
        // spaces are one) unless it holds aggregates or only constants.
        let as_group = distinct
            && !grouped
            && self.aggregates == aggregates_before
            && items.iter().any(|i| !i.literal);
        if as_group {
            keys = items
                .iter()
                .filter(|i| !i.literal)
                .map(|i| (i.sql.clone(), i.ty.clone()))
                .collect();
            self.group_keys.push((depth, string_keys(&keys)));
        }
        let rendered: Vec<String> = items
            .iter_mut()
            .map(|i| {
                let v = self.regrouped(std::mem::take(&mut i.sql));
                match &i.alias {
                    Some(a) => format!("{v} AS {}", quote_ident(a)),
                    None => v,
                }
            })
            .collect();
        if distinct && !as_group {
            sql.push_str("DISTINCT ");
        }
        sql.push_str(&rendered.join(", "));
        if !from.is_empty() {
            sql.push_str(" FROM ");
            sql.push_str(&from.join(", "));
        }
        if let Some(w) = selection {
            sql.push_str(" WHERE ");
            sql.push_str(&w);
        }
        if grouped || as_group {
            // Character keys are compared without trailing spaces, as SQL Server pads them.
            let g: Vec<String> = keys
                .iter()
                .map(|(k, ty)| {
                    if ty.as_ref().is_some_and(is_string) {
                        format!("rtrim({k}, ' ')")
                    } else {
                        k.clone()
                    }
                })
                .collect();
            sql.push_str(" GROUP BY ");
            sql.push_str(&g.join(", "));
        }
        if let Some(h) = &s.having {
            let te = self.expr(h)?;
            sql.push_str(" HAVING ");
            sql.push_str(&self.regrouped(te.sql));
        }
        self.last_select_keys = if grouped || as_group {
            self.group_keys.last().cloned()
        } else {
            None
        };
        Ok((sql, cols, top))
    }

    /// `sql` is a character GROUP BY key of the select being translated: one of its group's
    /// stored values (`min()`), which is what SQL Server returns, rather than the key compared
    /// without trailing spaces.
    pub(super) fn regrouped(&self, sql: String) -> String {
        let depth = self.scopes.len().saturating_sub(1);
        if self
            .group_keys
            .iter()
            .any(|(d, keys)| *d == depth && keys.contains(&sql))
        {
            format!("min({sql})")
        } else {
            sql
        }
    }

    pub(super) fn projection(
        &mut self,
        items: &[SelectItem],
    ) -> Result<(Vec<String>, Vec<OutCol>), SqlError> {
        let (items, cols) = self.projection_items(items)?;
        let sqls = items
            .into_iter()
            .map(|i| match i.alias {
                Some(a) => format!("{} AS {}", i.sql, quote_ident(&a)),
                None => i.sql,
            })
            .collect();
        Ok((sqls, cols))
    }

    /// The select list: each item's expression (without its alias) and the result columns.
    fn projection_items(
        &mut self,
        items: &[SelectItem],
    ) -> Result<(Vec<Item>, Vec<OutCol>), SqlError> {
        let mut out = Vec::new();
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
                    out.push(Item::new(te, None));
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
                    out.push(Item::new(te, Some(lc)));
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
                        self.expand(t, &mut out, &mut cols);
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
                    self.expand(&t, &mut out, &mut cols);
                }
                other => return Err(unsupported(other)),
            }
        }
        Ok((out, cols))
    }

    pub(super) fn expand(&self, t: &ScopeTable, items: &mut Vec<Item>, cols: &mut Vec<OutCol>) {
        for c in &t.def.columns {
            let col = format!("{}.{}", quote_ident(&t.alias), quote_ident(&c.lc));
            let mut te = TExpr::new(col, c.ty.clone());
            te.nullable = c.nullable;
            items.push(Item::new(te, None));
            cols.push(OutCol {
                name: c.name.clone(),
                lc: c.lc.clone(),
                ty: c.ty.clone(),
                nullable: c.nullable,
                aliased: false,
            });
        }
    }

    pub(super) fn hints(&mut self, hints: &[Expr], def: &TableDef) -> Result<(), SqlError> {
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

    pub(super) fn table_factor(&mut self, tf: &TableFactor) -> Result<String, SqlError> {
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
                let def = derived_table(&alias.name.value, a.clone(), &cols);
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

    pub(super) fn table_with_joins(&mut self, t: &TableWithJoins) -> Result<String, SqlError> {
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
}

/// A select-list item: its PostgreSQL expression and alias (lower-cased).
pub(super) struct Item {
    sql: String,
    alias: Option<String>,
    ty: Option<SqlType>,
    literal: bool,
}

impl Item {
    fn new(te: TExpr, alias: Option<String>) -> Item {
        Item {
            sql: te.sql,
            alias,
            ty: te.ty,
            literal: te.literal,
        }
    }
}

/// The character keys among `keys` (their stored-value expressions).
fn string_keys(keys: &[(String, Option<SqlType>)]) -> Vec<String> {
    keys.iter()
        .filter(|(_, t)| t.as_ref().is_some_and(is_string))
        .map(|(k, _)| k.clone())
        .collect()
}

/// UNION, EXCEPT or INTERSECT without ALL of `l` and `r`: one row per group of rows equal
/// under SQL Server's comparison (character columns without trailing spaces), each character
/// column as one of the group's stored values from the left operand, as SQL Server returns it.
/// Grouping (rather than PostgreSQL's own set operators over trimmed values) keeps the stored
/// value and treats NULLs as equal, as set operators do.
fn set_grouped(op: &SetOperator, l: &str, r: &str, cols: &[OutCol]) -> String {
    let mut names = vec!["\"_s\"".to_string()];
    let mut items = Vec::new();
    let mut keys = Vec::new();
    let left_only = if matches!(op, SetOperator::Intersect) {
        " FILTER (WHERE \"_u\".\"_s\" = 1)"
    } else {
        ""
    };
    for (i, c) in cols.iter().enumerate() {
        let v = format!("\"_u\".\"_c{}\"", i + 1);
        names.push(format!("\"_c{}\"", i + 1));
        let out = if c.lc.is_empty() {
            format!("\"_c{}\"", i + 1)
        } else {
            quote_ident(&c.lc)
        };
        if is_string(&c.ty) {
            items.push(format!("min({v}){left_only} AS {out}"));
            keys.push(format!("rtrim({v}, ' ')"));
        } else {
            items.push(format!("{v} AS {out}"));
            keys.push(v);
        }
    }
    let having = match op {
        SetOperator::Except => " HAVING bool_and(\"_u\".\"_s\" = 1)",
        SetOperator::Intersect => {
            " HAVING bool_or(\"_u\".\"_s\" = 1) AND bool_or(\"_u\".\"_s\" = 2)"
        }
        _ => "",
    };
    format!(
        "SELECT {} FROM (SELECT 1, \"_l\".* FROM {l} AS \"_l\" UNION ALL SELECT 2, \"_r\".* FROM {r} AS \"_r\") AS \"_u\"({}) GROUP BY {}{having}",
        items.join(", "),
        names.join(", "),
        keys.join(", ")
    )
}

/// The table a CTE or a derived table exposes: its query's output columns, none an identity.
fn derived_table(name: &str, lc: String, cols: &[OutCol]) -> Arc<TableDef> {
    Arc::new(TableDef {
        name: name.to_string(),
        lc,
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
    })
}
