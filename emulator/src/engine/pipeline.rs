//! Pipelining: statements sent to PostgreSQL without waiting for their answers (DML under
//! XACT_ABORT in a transaction, `SET @v = SCOPE_IDENTITY()`, the numbering MAX), prepared
//! statements, and reading the answers back in order as if each statement had run alone.

use super::*;

impl Session {
    /// The SQL sent before a statement inside a transaction: the deferred BEGIN, the statement
    /// savepoint and the UPDLOCK/HOLDLOCK table locks.
    pub(super) fn pre_sql(&mut self, locks: &[String]) -> Option<String> {
        if self.trancount == 0 {
            return None;
        }
        let mut s = String::new();
        if self.pending_begin {
            s.push_str("BEGIN;");
            self.pending_begin = false;
            self.pg_tx = true;
        }
        // Under XACT_ABORT ON every error rolls the whole transaction back (see `fail`), so a
        // statement savepoint would never be rolled back to: skip it (it costs a subtransaction
        // and a parsed simple query per statement). A savepoint left from before the option was
        // switched on stays held and is released by the next statement that takes one.
        if !self.xact_abort {
            if self.sp_held {
                s.push_str("RELEASE SAVEPOINT emu_sp;");
            }
            s.push_str("SAVEPOINT emu_sp;");
            self.sp_held = true;
        }
        for t in locks {
            s.push_str(&format!(
                "SELECT pg_advisory_xact_lock({});",
                locks::table_lock_key(t)
            ));
        }
        (!s.is_empty()).then_some(s)
    }

    pub(super) fn bind_values(&self, plan: &SqlPlan, params: &[Param]) -> Vec<Value> {
        plan.binds
            .iter()
            .map(|b| match &b.src {
                Bind::Param(i) => params
                    .get(*i)
                    .map(|p| param_value(&p.value, &p.ty))
                    .unwrap_or(Value::Null),
                Bind::Var(n) => self
                    .vars
                    .get(n)
                    .map(|(t, v)| param_value(v, t))
                    .unwrap_or(Value::Null),
                Bind::RowCount => Value::Int(self.rowcount),
                Bind::Error => Value::Int(self.last_error as i64),
                Bind::ErrNumber => self
                    .error_info
                    .as_ref()
                    .map_or(Value::Null, |e| Value::Int(e.number as i64)),
                Bind::ErrMessage => self
                    .error_info
                    .as_ref()
                    .map_or(Value::Null, |e| Value::String(e.message.clone())),
                Bind::ErrSeverity => self
                    .error_info
                    .as_ref()
                    .map_or(Value::Null, |e| Value::Int(e.class as i64)),
                Bind::ErrState => self
                    .error_info
                    .as_ref()
                    .map_or(Value::Null, |e| Value::Int(e.state as i64)),
                Bind::ErrLine => self
                    .error_info
                    .as_ref()
                    .map_or(Value::Null, |_| Value::Int(1)),
                Bind::XactState => Value::Int((self.trancount > 0) as i64),
                Bind::TranCount => Value::Int(self.trancount as i64),
                Bind::Int(n) => Value::Int(*n),
                Bind::ScopeIdentity => self
                    .scope_identity
                    .map_or(Value::Null, |i| Value::Decimal(Decimal::from(i))),
                Bind::Identity => self
                    .last_identity
                    .map_or(Value::Null, |i| Value::Decimal(Decimal::from(i))),
            })
            .collect()
    }

    /// Runs a plan on PostgreSQL; returns its rows (columns coerced to the plan's T-SQL types; an
    /// extra identity column is returned as read). For DML without RETURNING the affected-row
    /// count is returned as `rowcount` and the row vector is empty.
    pub(super) async fn exec_plan(
        &mut self,
        plan: &SqlPlan,
        params: &[Param],
    ) -> Result<Vec<Vec<Value>>, Fail> {
        let values = self.bind_values(plan, params);
        if let Some(local) = &plan.local {
            let src: Vec<Value> = local
                .iter()
                .map(|i| values.get(*i).cloned().unwrap_or(Value::Null))
                .collect();
            let row: Vec<Value> = src
                .iter()
                .zip(&plan.columns)
                .map(|(v, c)| coerce(v.clone(), &c.ty))
                .collect();
            // A value that does not convert (e.g. 'abc' AS int) or does not fit the integer
            // type goes to PostgreSQL, which raises the conversion / overflow error.
            if row
                .iter()
                .zip(&src)
                .zip(&plan.columns)
                .all(|((v, s), c)| convert::fits(v, &c.ty) && int_in_range(s, v, &c.ty))
            {
                self.rowcount = 1;
                return Ok(vec![row]);
            }
        }
        let pre = self.pre_sql(&plan.lock_tables);
        let types = bind_types(plan);
        let cached = self
            .stmts
            .get(&plan.pg)
            .and_then(|l| l.iter().find(|(t, _)| *t == types))
            .map(|(_, s)| s.clone());
        let stmt = match cached {
            Some(s) => s,
            None => {
                // First use in this session: run the prelude alone, then prepare.
                if let Some(p) = &pre {
                    self.client
                        .batch_execute(p)
                        .await
                        .map_err(|e| self.pg_fail(&e, Some(plan.kind)))?;
                }
                let s = self
                    .client
                    .prepare_typed(&plan.pg, &types)
                    .await
                    .map_err(|e| self.pg_fail(&e, Some(plan.kind)))?;
                if self.stmts.len() >= MAX_PREPARED {
                    // Ad-hoc SQL with literals would otherwise grow without bound; dropping
                    // the handles closes the statements in PostgreSQL.
                    self.stmts.clear();
                }
                self.stmts
                    .entry(plan.pg.clone())
                    .or_default()
                    .push((types, s.clone()));
                return self.run_prepared(plan, &s, &values, None).await;
            }
        };
        self.run_prepared(plan, &stmt, &values, pre.as_deref())
            .await
    }

    /// A statement of the engine's own (not a translated T-SQL plan) prepared once per session
    /// and kept in the session's statement cache.
    pub(super) async fn prepared(
        &mut self,
        sql: &str,
        types: &[tokio_postgres::types::Type],
    ) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
        if let Some(s) = self
            .stmts
            .get(sql)
            .and_then(|l| l.iter().find(|(t, _)| t.as_slice() == types))
            .map(|(_, s)| s.clone())
        {
            return Ok(s);
        }
        let s = self.client.prepare_typed(sql, types).await?;
        if self.stmts.len() >= MAX_PREPARED {
            self.stmts.clear();
        }
        self.stmts
            .entry(sql.to_string())
            .or_default()
            .push((types.to_vec(), s.clone()));
        Ok(s)
    }

    /// The session side of [`Session::deferrable`]: inside an open PostgreSQL transaction under
    /// XACT_ABORT ON, outside TRY, with no deferred BEGIN. Also the condition for pipelining
    /// `SET @v = SCOPE_IDENTITY()` and the COMMIT.
    pub(super) fn may_pipeline(&self) -> bool {
        self.xact_abort
            && self.trancount > 0
            && self.pg_tx
            && !self.pending_begin
            && self.try_depth == 0
    }

    /// Whether a DML plan may be pipelined: inside an open PostgreSQL transaction under
    /// XACT_ABORT ON, outside TRY, with nothing to send before it (no deferred BEGIN, no
    /// table lock), no OUTPUT rows, no local answer and no reseed. Under XACT_ABORT ON any
    /// error rolls the whole transaction back and ends the batch, and PostgreSQL refuses every
    /// later statement of the aborted transaction, so statements sent after a failing one
    /// have no effect — exactly as if they had not been sent — while the first error is still
    /// reported as that statement's error, in order. Saves one round trip per statement
    /// (Mikro's INSERT → UPDATE RECid sequences, the ledger row).
    pub(super) fn deferrable(&self, plan: &SqlPlan) -> bool {
        self.may_pipeline()
            && matches!(plan.kind, Kind::Insert | Kind::Update | Kind::Delete)
            && plan.columns.is_empty()
            && plan.assign.is_empty()
            && plan.local.is_none()
            && plan.reseed.is_none()
            && plan.lock_tables.is_empty()
    }

    /// Pipelines a plan that binds SCOPE_IDENTITY() while the INSERT that sets it is still
    /// unanswered (Mikro's `INSERT …; UPDATE … SET x_RECid_RECno = x_RECno WHERE x_RECno =
    /// SCOPE_IDENTITY()`): the statement is sent with `(SELECT lastval())` in place of the
    /// parameter.
    /// PostgreSQL runs it after that INSERT, whose identity default was the session's last
    /// `nextval` (no triggers, no explicit identity values, nothing else calls `nextval` in
    /// between), so `lastval()` is the value SCOPE_IDENTITY() would have had. Only for SQL
    /// without quotes (the placeholder is replaced textually). The variant is prepared on first
    /// use (after reading the pending answers). False when not applicable: nothing sent, and
    /// the pending answers are read (SCOPE_IDENTITY() is current for the plain plan).
    pub(super) async fn defer_scope(
        &mut self,
        plan: &Arc<SqlPlan>,
        params: &[Param],
        out: &mut Vec<Output>,
    ) -> Result<bool, Fail> {
        if plan.pg.contains('\'') {
            self.flush(out).await?;
            return Ok(false);
        }
        let mut pg = plan.pg.clone();
        for (i, b) in plan.binds.iter().enumerate().rev() {
            match &b.src {
                // An uncorrelated subquery is evaluated once (an InitPlan parameter), so the
                // comparison still uses the primary key; a bare lastval() is volatile.
                Bind::ScopeIdentity => {
                    pg = replace_placeholder(&pg, i + 1, "(SELECT lastval())");
                }
                Bind::Var(v) => {
                    if let Some(l) = self.lazy_vars.get(v) {
                        pg = replace_placeholder(&pg, i + 1, &l.expr);
                    }
                }
                _ => {}
            }
        }
        let types = bind_types(plan);
        let known = self
            .stmts
            .get(&pg)
            .is_some_and(|l| l.iter().any(|(t, _)| *t == types));
        if !known {
            self.prepare_for_next_time(plan, &pg, out).await?;
            // SCOPE_IDENTITY() is known again: the plain plan runs (and is pipelined) as is.
            return Ok(false);
        }
        if self.defer(plan, &pg, params) {
            return Ok(true);
        }
        self.flush(out).await?;
        Ok(false)
    }

    /// Prepares `pg` (a plan's text or a variant with the same parameters) for this session,
    /// after reading the answers still in the pipeline, so the next batch can pipeline it.
    pub(super) async fn prepare_for_next_time(
        &mut self,
        plan: &SqlPlan,
        pg: &str,
        out: &mut Vec<Output>,
    ) -> Result<(), Fail> {
        self.flush(out).await?;
        self.prepared(pg, &bind_types(plan))
            .await
            .map_err(|e| self.pg_fail(&e, Some(plan.kind)))?;
        Ok(())
    }

    /// Sends a deferrable plan (as PostgreSQL text `pg`: the plan's, or a variant with the same
    /// parameters) without waiting for its answer ([`Session::flush`] reads it). False
    /// (nothing sent) when the statement is not prepared in this session yet.
    pub(super) fn defer(&mut self, plan: &Arc<SqlPlan>, pg: &str, params: &[Param]) -> bool {
        let types = bind_types(plan);
        let Some(stmt) = self
            .stmts
            .get(pg)
            .and_then(|l| l.iter().find(|(t, _)| *t == types))
            .map(|(_, s)| s.clone())
        else {
            return false;
        };
        let values = self.bind_values(plan, params);
        let client = self.client.clone();
        let returns_rows = plan.returns_rows;
        let fut = send_now(async move {
            let args: Vec<PgArg<'_>> = values.iter().map(PgArg).collect();
            let refs: Vec<&(dyn ToSql + Sync)> =
                args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
            if returns_rows {
                client.query(&stmt, &refs).await.map(PgResult::Rows)
            } else {
                client.execute(&stmt, &refs).await.map(PgResult::Count)
            }
        });
        self.pending.push_back(Pending {
            plan: plan.clone(),
            fut,
            assign_identity: Vec::new(),
        });
        // This statement's count is now the newest @@ROWCOUNT.
        self.rowcount_after_flush = None;
        true
    }

    /// Reads the answers of pipelined statements in order: row counts, SCOPE_IDENTITY and
    /// DONE tokens as if each had run alone. The first error is returned (after the remaining
    /// answers, which PostgreSQL refuses in the aborted transaction, are read and dropped).
    pub(super) async fn flush(&mut self, out: &mut Vec<Output>) -> Result<(), Fail> {
        self.pending_values_identity = false;
        let mut first: Option<Fail> = None;
        while let Some(Pending {
            plan,
            fut,
            assign_identity,
        }) = self.pending.pop_front()
        {
            let r = fut.await;
            if first.is_some() {
                continue;
            }
            let rows = match r {
                Err(e) => {
                    first = Some(self.pg_fail(&e, Some(plan.kind)));
                    continue;
                }
                Ok(PgResult::Count(n)) => {
                    self.rowcount = n as i64;
                    Vec::new()
                }
                Ok(PgResult::Rows(rows)) => match self.convert_rows(&plan, &rows) {
                    Ok(v) => v,
                    Err(f) => {
                        first = Some(f);
                        continue;
                    }
                },
            };
            if let Err(f) = self.finish_plan(&plan, rows, out).await {
                first = Some(f);
                continue;
            }
            for (name, ty) in assign_identity {
                let v = self
                    .scope_identity
                    .map_or(Value::Null, |i| Value::Decimal(Decimal::from(i)));
                self.vars.insert(name, (ty.clone(), coerce(v, &ty)));
            }
        }
        self.lazy_vars.clear();
        match self.rowcount_after_flush.take() {
            Some(n) if first.is_none() => self.rowcount = n,
            _ => {}
        }
        first.map_or(Ok(()), Err)
    }

    /// PostgreSQL rows → values coerced to the plan's T-SQL types; sets @@ROWCOUNT.
    pub(super) fn convert_rows(
        &mut self,
        plan: &SqlPlan,
        rows: &[tokio_postgres::Row],
    ) -> Result<Vec<Vec<Value>>, Fail> {
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let mut v = Vec::with_capacity(r.len());
            for i in 0..r.len() {
                let x = read_value(r, i)?;
                let x = if let Some(c) = plan.columns.get(i) {
                    coerce(x, &c.ty)
                } else if let Some((_, t)) = plan.assign.get(i) {
                    coerce(x, t)
                } else {
                    x
                };
                v.push(x);
            }
            out.push(v);
        }
        self.rowcount = rows.len() as i64;
        Ok(out)
    }

    pub(super) async fn run_prepared(
        &mut self,
        plan: &SqlPlan,
        stmt: &tokio_postgres::Statement,
        values: &[Value],
        pre: Option<&str>,
    ) -> Result<Vec<Vec<Value>>, Fail> {
        let args: Vec<PgArg<'_>> = values.iter().map(PgArg).collect();
        let refs: Vec<&(dyn ToSql + Sync)> =
            args.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
        enum R {
            Rows(Vec<tokio_postgres::Row>),
            Count(u64),
        }
        let main = async {
            if plan.returns_rows {
                self.client.query(stmt, &refs).await.map(R::Rows)
            } else {
                self.client.execute(stmt, &refs).await.map(R::Count)
            }
        };
        let res = match pre {
            Some(p) => {
                let (a, b) = futures::join!(self.client.batch_execute(p), main);
                if let Err(e) = a {
                    return Err(self.pg_fail(&e, Some(plan.kind)));
                }
                b
            }
            None => main.await,
        };
        let res = res.map_err(|e| self.pg_fail(&e, Some(plan.kind)))?;
        match res {
            R::Count(n) => {
                self.rowcount = n as i64;
                Ok(Vec::new())
            }
            R::Rows(rows) => self.convert_rows(plan, &rows),
        }
    }

    pub(super) async fn finish_plan(
        &mut self,
        plan: &SqlPlan,
        mut rows: Vec<Vec<Value>>,
        out: &mut Vec<Output>,
    ) -> Result<(), Fail> {
        let count = self.rowcount;
        if plan.identity_col {
            let mut last = None;
            for r in &mut rows {
                if let Some(Value::Int(i)) = r.pop() {
                    last = Some(i);
                }
            }
            if let Some(i) = last {
                self.scope_identity = Some(i);
                self.last_identity = Some(i);
            }
        }
        if let Some((table, col)) = &plan.reseed {
            let sql = format!(
                "SELECT emu_catalog.reseed({}, {})",
                catalog::quote_lit(table),
                catalog::quote_lit(col)
            );
            self.client
                .batch_execute(&sql)
                .await
                .map_err(|e| self.pg_fail(&e, Some(plan.kind)))?;
        }
        if !plan.assign.is_empty() {
            if let Some(last) = rows.last() {
                for (i, (name, ty)) in plan.assign.iter().enumerate() {
                    let v = last.get(i).cloned().unwrap_or(Value::Null);
                    self.vars
                        .insert(name.clone(), (ty.clone(), coerce_var(v, ty)));
                }
            }
            self.rowcount = count;
            return Ok(());
        }
        if !plan.columns.is_empty() {
            let columns = plan
                .columns
                .iter()
                .map(|c| Column {
                    name: c.name.clone(),
                    ty: c.ty.clone(),
                    nullable: c.nullable,
                })
                .collect();
            out.push(Output::Rows { columns, rows });
        }
        self.rowcount = count;
        out.push(Output::Done {
            rows: if self.nocount {
                None
            } else {
                Some(count as u64)
            },
        });
        Ok(())
    }

    /// `SET @v = SCOPE_IDENTITY()` (or `CAST(SCOPE_IDENTITY() AS int)`) right behind a pipelined
    /// INSERT, as Mikro's posting does after the CHA header: instead of waiting for the INSERT's
    /// answer (one round trip, inside the numbering lock), the variable is noted as "the identity
    /// of that INSERT". Pipelined statements that bind it get, in its place, `currval` of the
    /// table's identity sequence — the same value while no other row goes into that table,
    /// which [`Session::run_stmt`] guarantees by answering first — and the variable gets its
    /// value when the INSERT's answer is read ([`Session::flush`]). Anything else that reads
    /// variables runs after a flush. Only under the conditions of [`Session::deferrable`], for
    /// an `int`/`bigint` variable, when the newest identity-producing pipelined statement is an
    /// `INSERT … VALUES`. True when the statement was handled this way.
    pub(super) fn defer_identity_var(&mut self, n: &Node) -> bool {
        let Some((_, name, value)) = single_var_set(n) else {
            return false;
        };
        if !is_scope_identity(value) || !self.may_pipeline() || !self.pending_values_identity {
            return false;
        }
        let Some((ty, _)) = self.vars.get(&name) else {
            return false;
        };
        let cast = match ty {
            SqlType::Int => "int4",
            SqlType::BigInt => "int8",
            _ => return false,
        };
        let ty = ty.clone();
        let Some(p) = self.pending.iter_mut().rev().find(|p| p.plan.identity_col) else {
            return false;
        };
        let Some(t) = p.plan.target.as_ref() else {
            return false;
        };
        let Some(col) = t.identity() else {
            return false;
        };
        let expr = format!(
            "(SELECT currval(pg_get_serial_sequence({}, {})))::{cast}",
            catalog::quote_lit(&t.pg_ref()),
            catalog::quote_lit(&col.lc)
        );
        let table = t.lc.clone();
        p.assign_identity.push((name.clone(), ty));
        self.lazy_vars.insert(
            name,
            LazyVar {
                expr,
                table: Some(table),
            },
        );
        self.rowcount_after_flush = Some(1);
        true
    }

    /// Whether every value the plan binds is known now: parameters and variables that are not
    /// waiting for a pipelined answer (no @@ROWCOUNT, SCOPE_IDENTITY() …, which must be
    /// current when bound).
    pub(super) fn binds_current(&self, plan: &SqlPlan) -> bool {
        plan.binds.iter().all(|b| match &b.src {
            Bind::Param(_) => true,
            Bind::Var(v) => !self.lazy_vars.contains_key(v),
            _ => false,
        })
    }

    /// `SET @v = <expression PostgreSQL evaluates>` for an integer variable, under the
    /// conditions of [`Session::may_pipeline`] — Mikro-style numbering's `SET @sira = (SELECT
    /// ISNULL(MAX(…), 0) + 1 FROM … )` right behind `sp_getapplock`. Instead of waiting for the
    /// value (one round trip while the numbering lock is held), the statement is sent with the
    /// rest of the pipeline and also stores its value in a transaction-local setting
    /// (`set_config(…, true)`); pipelined statements that bind the variable read that setting
    /// (see [`Session::defer_scope`]) and the variable gets its value when the answer is read
    /// ([`Session::flush`]), before anything that reads variables on this side runs. On a real
    /// SQL Server the whole batch runs server-side; this keeps the emulator's lock hold time
    /// close to one round trip. Not taken (false, nothing sent) when the value is known here
    /// (constants, `@@ROWCOUNT` …), the expression binds anything but parameters and current
    /// variables, its type is not the variable's, or the statement is not prepared in this
    /// session yet (it is prepared now, so the next batch pipelines it).
    pub(super) async fn defer_scalar_var(
        &mut self,
        batch: &Arc<Batch>,
        n: &Node,
        params: &[Param],
        out: &mut Vec<Output>,
    ) -> Result<bool, Fail> {
        let Some((id, name, value)) = single_var_set(n) else {
            return Ok(false);
        };
        if !self.may_pipeline() {
            return Ok(false);
        }
        let Some((ty, _)) = self.vars.get(&name) else {
            return Ok(false);
        };
        let cast = match ty {
            SqlType::SmallInt => "int2",
            SqlType::Int => "int4",
            SqlType::BigInt => "int8",
            _ => return Ok(false),
        };
        if name.len() > 30 || self.const_value(value, params).is_some() {
            return Ok(false);
        }
        let ty = ty.clone();
        // A setting name of identifier characters only, the same for every batch (so the
        // statements that read it are prepared once).
        let setting: String = name.bytes().map(|b| format!("{b:02x}")).collect();
        let setting = format!("emu.v_{setting}");
        let e = value;
        let plan = self.plan_for(
            batch,
            id * 64 + 2,
            |cat, pt, vt| {
                let mut tr = Translator::new(cat, pt, vt);
                let te = tr.expr(e)?;
                let local = tr.local_slot(e).map(|i| vec![i]);
                Ok(scalar_plan(
                    format!(
                        "SELECT s.v FROM (SELECT ({}) AS v) s, \
                         LATERAL set_config({}, coalesce(s.v::text, ''), true) c",
                        te.sql,
                        catalog::quote_lit(&setting)
                    ),
                    tr.binds,
                    te.ty.clone().unwrap_or(SqlType::Int),
                    vec![(name.clone(), ty.clone())],
                    local,
                ))
            },
            params,
        )?;
        let binds_current = self.binds_current(&plan);
        // Same type as the variable: the value stored is the value assigned, no conversion
        // (and no conversion error) moves to another statement.
        if plan.local.is_some() || plan.columns[0].ty != ty || !binds_current {
            return Ok(false);
        }
        if !self.defer(&plan, &plan.pg, params) {
            self.prepare_for_next_time(&plan, &plan.pg, out).await?;
            return Ok(false);
        }
        let expr = format!(
            "(SELECT NULLIF(current_setting({}, true), '')::{cast})",
            catalog::quote_lit(&setting)
        );
        self.lazy_vars.insert(name, LazyVar { expr, table: None });
        Ok(true)
    }
}
