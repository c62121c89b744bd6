//! Statements: SELECT / INSERT / UPDATE / DELETE compiled into one PostgreSQL statement each,
//! OUTPUT INSERTED/DELETED as RETURNING, the UPDATE/DELETE … FROM rewrite.

use super::*;

impl<'a> Translator<'a> {
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

    pub(super) fn select_statement(mut self, q: &Query) -> Result<SqlPlan, SqlError> {
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
                        // An integer literal (a client's echo number, `SELECT @@TRANCOUNT,
                        // 17`): a slot of its own, so such a check costs no PostgreSQL
                        // statement (each distinct text would be prepared anew).
                        None => match e {
                            Expr::Value(ast::ValueWithSpan {
                                value: ast::Value::Number(n, _),
                                ..
                            }) if n.parse::<i32>().is_ok() => {
                                v.push(self.binds.len());
                                self.binds.push(BindSlot {
                                    src: Bind::Int(n.parse::<i64>().unwrap_or_default()),
                                    ty: SqlType::Int,
                                });
                            }
                            _ => break,
                        },
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
    pub(in crate::engine) fn local_slot(&self, e: &Expr) -> Option<usize> {
        self.local_bind(e)
            .and_then(|b| self.bind_ix.get(&b).copied())
    }

    pub(super) fn local_bind(&self, e: &Expr) -> Option<Bind> {
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

    pub(super) fn output_items(
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

    pub(super) fn insert(mut self, ins: &ast::Insert) -> Result<SqlPlan, SqlError> {
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
                    if cols.iter().any(|c| c.ty == SqlType::TinyInt) {
                        // Values for tinyint columns are range-checked as in VALUES (the
                        // derived table's columns are typed, so every column is converted as
                        // VALUES converts it).
                        let outer: Vec<String> = qcols
                            .iter()
                            .zip(&cols)
                            .enumerate()
                            .map(|(i, (q, c))| {
                                let x = TExpr {
                                    sql: format!("emu_q.c{i}"),
                                    ty: Some(q.ty.clone()),
                                    literal: false,
                                    nullable: true,
                                    name: String::new(),
                                };
                                assign_to(&x, &c.ty)
                            })
                            .collect();
                        let names: Vec<String> =
                            (0..qcols.len()).map(|i| format!("c{i}")).collect();
                        sql.push_str(&format!(
                            "SELECT {} FROM ({qs}) AS emu_q({})",
                            outer.join(", "),
                            names.join(", ")
                        ));
                    } else {
                        sql.push_str(&qs);
                    }
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
    pub(super) fn dml_from<'f>(
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

    pub(super) fn update(mut self, u: &ast::Update) -> Result<SqlPlan, SqlError> {
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

    pub(super) fn delete(mut self, d: &ast::Delete) -> Result<SqlPlan, SqlError> {
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
    pub(super) fn finish_dml(
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
}

impl<'a> Translator<'a> {
    /// The fused INSERT of Mikro's `INSERT …; UPDATE … SET x_RECid_RECno = x_RECno …` pair (see
    /// `engine::fuse`): `INSERT INTO T (id, c…) SELECT emu_id.v, <values, the UPDATE's where it
    /// sets a column> FROM (SELECT nextval(<T's identity sequence>)) emu_id(v) RETURNING id`. A
    /// plan with an empty `pg` when the pair does not qualify (cached like a plan, so the checks
    /// run once per batch text).
    pub(in crate::engine) fn insert_recid(
        self,
        ins: &ast::Insert,
        upd: &ast::Update,
    ) -> Result<SqlPlan, SqlError> {
        let none = SqlPlan {
            pg: String::new(),
            binds: Vec::new(),
            columns: Vec::new(),
            kind: Kind::Insert,
            returns_rows: false,
            assign: Vec::new(),
            identity_col: false,
            lock_tables: Vec::new(),
            reseed: None,
            target: None,
            local: None,
        };
        let Some((key, sets)) = crate::engine::fuse::recid_sets(upd) else {
            return Ok(none);
        };
        let ast::TableObject::TableName(name) = &ins.table else {
            return Ok(none);
        };
        let def = self.table(name)?;
        let Some(idc) = def.identity().cloned() else {
            return Ok(none);
        };
        if def.schema != "dbo" || ident_key(&key) != idc.lc {
            return Ok(none);
        }
        let id_ty = idc.ty.clone();
        // Column (lower-cased) → the PostgreSQL text of the value the UPDATE leaves in it.
        let mut over: Vec<(ColumnDef, String)> = Vec::new();
        for (cname, v) in &sets {
            let Some(col) = def.column(&ident_key(cname)).cloned() else {
                return Ok(none);
            };
            if col.identity || over.iter().any(|(c, _)| c.lc == col.lc) {
                return Ok(none);
            }
            let text = match v {
                crate::engine::fuse::RecidSet::Identity(n) => {
                    let widens = matches!(
                        (&id_ty, &col.ty),
                        (SqlType::Int, SqlType::Int | SqlType::BigInt)
                            | (SqlType::BigInt, SqlType::BigInt)
                    );
                    if ident_key(n) != idc.lc || !widens {
                        return Ok(none);
                    }
                    "emu_id.v".to_string()
                }
                crate::engine::fuse::RecidSet::Number(e) => {
                    let Expr::Value(ast::ValueWithSpan {
                        value: ast::Value::Number(n, _),
                        ..
                    }) = e
                    else {
                        return Ok(none);
                    };
                    let fits = match col.ty {
                        SqlType::Float | SqlType::Real => {
                            n.parse::<f64>().is_ok_and(f64::is_finite)
                        }
                        SqlType::Int => n.parse::<i32>().is_ok(),
                        SqlType::BigInt => n.parse::<i64>().is_ok(),
                        SqlType::SmallInt => n.parse::<i16>().is_ok(),
                        _ => false,
                    };
                    if !fits {
                        return Ok(none);
                    }
                    n.clone()
                }
            };
            over.push((col, text));
        }
        let Some(q) = &ins.source else {
            return Ok(none);
        };
        let SetExpr::Values(vals) = &*q.body else {
            return Ok(none);
        };
        let [row] = vals.rows.as_slice() else {
            return Ok(none);
        };
        let mut cols = Vec::with_capacity(ins.columns.len());
        for c in &ins.columns {
            let n = name_parts(c).last().cloned().unwrap_or_default();
            let col = def
                .column(&ident_key(&n))
                .ok_or_else(|| invalid_column(&n))?
                .clone();
            if col.identity || cols.iter().any(|x: &ColumnDef| x.lc == col.lc) {
                return Ok(none);
            }
            cols.push(col);
        }
        if row.len() != cols.len() {
            return Ok(none);
        }
        let mut names = vec![quote_ident(&idc.lc)];
        let mut values = vec!["emu_id.v".to_string()];
        let mut this = self;
        for (c, e) in cols.iter().zip(row.iter()) {
            if matches!(e, Expr::Identifier(id) if id.quote_style.is_none() && id.value.eq_ignore_ascii_case("DEFAULT"))
            {
                return Ok(none);
            }
            let te = this.expr(e)?;
            names.push(quote_ident(&c.lc));
            values.push(match over.iter().find(|(o, _)| o.lc == c.lc) {
                // The INSERT's value is still evaluated (its errors stay), the UPDATE's stored.
                Some((_, t)) if converts_safely(te.ty.as_ref(), &c.ty) => t.clone(),
                Some(_) => return Ok(none),
                None => assign_to(&te, &c.ty),
            });
        }
        for (o, t) in &over {
            if !cols.iter().any(|c| c.lc == o.lc) {
                names.push(quote_ident(&o.lc));
                values.push(t.clone());
            }
        }
        let sql = format!(
            "INSERT INTO {} AS {} ({}) SELECT {} FROM (SELECT CAST(nextval(pg_get_serial_sequence({}, {})) AS {})) AS emu_id(v) RETURNING {}.{}",
            def.pg_ref(),
            quote_ident("inserted"),
            names.join(", "),
            values.join(", "),
            quote_lit(&def.pg_ref()),
            quote_lit(&idc.lc),
            pg_type_name(&id_ty),
            quote_ident("inserted"),
            quote_ident(&idc.lc),
        );
        Ok(SqlPlan {
            pg: sql,
            binds: this.binds,
            columns: Vec::new(),
            kind: Kind::Insert,
            returns_rows: true,
            assign: Vec::new(),
            identity_col: true,
            lock_tables: this.locks,
            reseed: None,
            target: Some(def),
            local: None,
        })
    }
}

/// Whether storing a value of type `from` into a column of type `to` can never fail (the
/// INSERT's value of a column the fused UPDATE overwrites is then not sent).
fn converts_safely(from: Option<&SqlType>, to: &SqlType) -> bool {
    use SqlType as T;
    let Some(from) = from else {
        return false;
    };
    let small_int = matches!(from, T::Bit | T::TinyInt | T::SmallInt | T::Int);
    match to {
        T::Float => {
            small_int
                || matches!(
                    from,
                    T::BigInt | T::Float | T::Real | T::Decimal { .. } | T::Money
                )
        }
        T::Int => small_int,
        T::BigInt => small_int || *from == T::BigInt,
        _ => false,
    }
}
