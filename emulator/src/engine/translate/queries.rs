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
        self.last_select_trimmed = false;
        let (mut sql, cols, top) = self.set_expr(&q.body)?;
        // ORDER BY of a grouped/DISTINCT select names its columns as the select list does.
        let trim_before = self.trim_strings;
        self.trim_strings =
            matches!(q.body.as_ref(), SetExpr::Select(_)) && self.last_select_trimmed;
        let r = self.order_fetch(q, offset, &mut sql, &cols, top);
        self.trim_strings = trim_before;
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
                    SetQuantifier::All => " ALL",
                    SetQuantifier::None | SetQuantifier::Distinct => "",
                    _ => return Err(unsupported(set_quantifier)),
                };
                // Without ALL, rows that differ only in trailing spaces are one row: UNION
                // groups its operands' stored values (see `union_grouped`), EXCEPT and
                // INTERSECT compare their operands' values without trailing spaces.
                let dedup = q.is_empty();
                let grouped = dedup && matches!(op, SetOperator::Union);
                self.scopes.push(Vec::new());
                self.set_operand = dedup && !grouped;
                let l = self.set_expr(left);
                self.scopes.pop();
                let (ls, lc, lt) = l?;
                self.scopes.push(Vec::new());
                self.set_operand = dedup && !grouped;
                let r = self.set_expr(right);
                self.scopes.pop();
                let (rs, _rc, rt) = r?;
                let wrap = |s: String, t: Option<String>| match t {
                    Some(t) => format!("({s} LIMIT {t})"),
                    None => format!("({s})"),
                };
                if grouped && lc.iter().any(|c| is_string(&c.ty)) {
                    let all = format!("{} UNION ALL {}", wrap(ls, lt), wrap(rs, rt));
                    return Ok((union_grouped(&all, &lc), lc, None));
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
        // FROM and WHERE compare stored values; only this select's own list may trim them.
        let outer = std::mem::replace(&mut self.trim_strings, false);
        let outer_keys = self.min_keys.take();
        let r = self.select_inner(s);
        self.trim_strings = outer;
        self.min_keys = outer_keys;
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
        let set_operand = std::mem::take(&mut self.set_operand);
        let grouped = matches!(&s.group_by, GroupByExpr::Expressions(e, _) if !e.is_empty());
        let distinct = match &s.distinct {
            None => false,
            Some(ast::Distinct::Distinct) => true,
            Some(other) => return Err(unsupported(other)),
        };
        let trimmed = set_operand || grouped || distinct;
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
        let trim_before = std::mem::replace(&mut self.trim_strings, trimmed);
        let r = self.grouped_projection(s, set_operand, grouped, distinct);
        self.trim_strings = trim_before;
        let (items, cols, group_keys) = r?;
        if distinct && group_keys.is_none() {
            sql.push_str("DISTINCT ");
        }
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
        if let Some(g) = group_keys {
            sql.push_str(" GROUP BY ");
            sql.push_str(&g.join(", "));
        }
        if let Some(h) = &s.having {
            let trim_before = std::mem::replace(&mut self.trim_strings, trimmed);
            let te = self.expr(h);
            self.trim_strings = trim_before;
            sql.push_str(" HAVING ");
            sql.push_str(&te?.sql);
        }
        self.last_select_trimmed = trimmed;
        Ok((sql, cols, top))
    }

    /// The select list of `s` and its GROUP BY keys, character values compared without
    /// trailing spaces. A grouped (or DISTINCT, run as GROUP BY over the whole list) character
    /// column comes back as `min()` of its stored values: one value of the group as stored,
    /// which is what SQL Server returns, rather than the trimmed key. Set operands keep the
    /// trimmed values (their de-duplication needs equal values on both sides).
    #[allow(clippy::type_complexity)]
    fn grouped_projection(
        &mut self,
        s: &Select,
        set_operand: bool,
        grouped: bool,
        distinct: bool,
    ) -> Result<(Vec<String>, Vec<OutCol>, Option<Vec<String>>), SqlError> {
        let mut keys = Vec::new();
        match &s.group_by {
            GroupByExpr::Expressions(e, m) if m.is_empty() => {
                for x in e {
                    keys.push(self.expr(x)?.sql);
                }
            }
            other => return Err(unsupported(other)),
        }
        let aggregates_before = self.aggregates;
        let (items, item_keys, cols) = self.projection_keyed(&s.projection)?;
        // DISTINCT runs as GROUP BY over the list unless it holds aggregates or a constant
        // (PostgreSQL would read `GROUP BY 2` as an ordinal).
        let as_group = distinct
            && !grouped
            && self.aggregates == aggregates_before
            && item_keys.iter().all(|k| k.contains(['"', '$']));
        if as_group {
            keys = item_keys;
        }
        if set_operand || !(grouped || as_group) {
            return Ok((items, cols, grouped.then_some(keys)));
        }
        self.min_keys = Some(keys.clone());
        let r = self.projection_keyed(&s.projection);
        self.min_keys = None;
        Ok((r?.0, cols, Some(keys)))
    }
    pub(super) fn projection(
        &mut self,
        items: &[SelectItem],
    ) -> Result<(Vec<String>, Vec<OutCol>), SqlError> {
        let (sqls, _, cols) = self.projection_keyed(items)?;
        Ok((sqls, cols))
    }

    /// A grouped character column as `min()` of its stored values (see
    /// [`Self::grouped_projection`]): `te` is the column read without trailing spaces.
    fn stored_value(&self, e: &Expr, te: &TExpr) -> String {
        let bare = matches!(e, Expr::Identifier(i) if !i.value.starts_with('@'))
            || matches!(e, Expr::CompoundIdentifier(_));
        match (&self.min_keys, te.sql.strip_prefix("rtrim(")) {
            (Some(keys), Some(rest)) if bare && keys.contains(&te.sql) => {
                format!("min({})", rest.strip_suffix(", ' ')").unwrap_or(rest))
            }
            _ => te.sql.clone(),
        }
    }

    /// The select list: items (with aliases), the same expressions without aliases, columns.
    #[allow(clippy::type_complexity)]
    fn projection_keyed(
        &mut self,
        items: &[SelectItem],
    ) -> Result<(Vec<String>, Vec<String>, Vec<OutCol>), SqlError> {
        let mut sqls = Vec::new();
        let mut keys = Vec::new();
        let mut cols = Vec::new();
        for it in items {
            match it {
                SelectItem::UnnamedExpr(e) => {
                    let te = self.expr(e)?;
                    keys.push(te.sql.clone());
                    let sql = self.stored_value(e, &te);
                    cols.push(OutCol {
                        lc: ident_key(&te.name),
                        name: te.name.clone(),
                        ty: te.ty.clone().unwrap_or(SqlType::Int),
                        nullable: te.nullable,
                        aliased: false,
                    });
                    sqls.push(sql);
                }
                SelectItem::ExprWithAlias { expr, alias } => {
                    let te = self.expr(expr)?;
                    keys.push(te.sql.clone());
                    let sql = self.stored_value(expr, &te);
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
                    sqls.push(format!("{sql} AS {}", quote_ident(&lc)));
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
                        self.expand(t, &mut sqls, &mut keys, &mut cols);
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
                    self.expand(&t, &mut sqls, &mut keys, &mut cols);
                }
                other => return Err(unsupported(other)),
            }
        }
        Ok((sqls, keys, cols))
    }

    pub(super) fn expand(
        &self,
        t: &ScopeTable,
        sqls: &mut Vec<String>,
        keys: &mut Vec<String>,
        cols: &mut Vec<OutCol>,
    ) {
        for c in &t.def.columns {
            let col = format!("{}.{}", quote_ident(&t.alias), quote_ident(&c.lc));
            if self.trim_strings && is_string(&c.ty) {
                let key = format!("rtrim({col}, ' ')");
                let grouped = self.min_keys.as_ref().is_some_and(|k| k.contains(&key));
                sqls.push(if grouped {
                    format!("min({col})")
                } else {
                    key.clone()
                });
                keys.push(key);
            } else {
                sqls.push(col.clone());
                keys.push(col);
            }
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

/// UNION without ALL over `all` (the operands joined by UNION ALL): one row per group of
/// rows equal under SQL Server's comparison (character columns without trailing spaces), each
/// character column as one of the group's stored values, as SQL Server returns it.
fn union_grouped(all: &str, cols: &[OutCol]) -> String {
    let mut names = Vec::new();
    let mut items = Vec::new();
    let mut keys = Vec::new();
    for (i, c) in cols.iter().enumerate() {
        let v = format!("\"_u\".\"_c{}\"", i + 1);
        names.push(format!("\"_c{}\"", i + 1));
        let out = if c.lc.is_empty() {
            format!("\"_c{}\"", i + 1)
        } else {
            quote_ident(&c.lc)
        };
        if is_string(&c.ty) {
            items.push(format!("min({v}) AS {out}"));
            keys.push(format!("rtrim({v}, ' ')"));
        } else {
            items.push(format!("{v} AS {out}"));
            keys.push(v);
        }
    }
    format!(
        "SELECT {} FROM ({all}) AS \"_u\"({}) GROUP BY {}",
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
