//! Running one statement: SELECT/INSERT/UPDATE/DELETE plans, SET and variables, expressions
//! the engine evaluates itself (conditions of IF, FROM-less SELECTs of variables) and the
//! round trips it saves that way.

use super::*;

impl Session {
    pub(super) async fn run_stmt(
        &mut self,
        batch: &Arc<Batch>,
        id: usize,
        stmt: &Statement,
        params: &[Param],
        out: &mut Vec<Output>,
    ) -> Result<(), Fail> {
        if self.implicit_tx
            && self.trancount == 0
            && !matches!(stmt, Statement::Query(q) if matches!(&*q.body, ast::SetExpr::Select(s) if s.from.is_empty()))
            && matches!(
                stmt,
                Statement::Query(_)
                    | Statement::Insert(_)
                    | Statement::Update(_)
                    | Statement::Delete(_)
                    | Statement::CreateTable(_)
                    | Statement::CreateIndex(_)
                    | Statement::Drop { .. }
                    | Statement::AlterTable(_)
                    | Statement::Truncate(_)
            )
        {
            self.begin_tran(out);
        }
        match stmt {
            Statement::Query(_)
            | Statement::Insert(_)
            | Statement::Update(_)
            | Statement::Delete(_) => {
                let plan = self.plan_for(
                    batch,
                    id,
                    |cat, pt, vt| Translator::new(cat, pt, vt).statement(stmt),
                    params,
                )?;
                if plan.kind == Kind::Insert {
                    if let (Some((_, _)), Some(t)) = (&plan.reseed, &plan.target) {
                        if self.identity_insert.as_deref() != Some(t.lc.as_str()) {
                            return Err(SqlError::new(
                                544,
                                format!(
                                    "Cannot insert explicit value for identity column in table '{}' when IDENTITY_INSERT is set to OFF.",
                                    t.name
                                ),
                            )
                            .into());
                        }
                    }
                }
                if self.deferrable(&plan) {
                    // A lazy variable reads its table's identity sequence: another row into that
                    // table would move it, so the variable gets its value first.
                    if plan.identity_col
                        && plan.target.as_ref().is_some_and(|t| {
                            self.lazy_vars
                                .values()
                                .any(|l| l.table.as_deref() == Some(t.lc.as_str()))
                        })
                    {
                        self.flush(out).await?;
                    }
                    let values_insert = matches!(
                        stmt,
                        Statement::Insert(i) if i.source.as_ref().is_some_and(
                            |q| matches!(*q.body, ast::SetExpr::Values(_))
                        )
                    );
                    let only_scope = plan.binds.iter().all(|b| {
                        matches!(b.src, Bind::Param(_) | Bind::Var(_) | Bind::ScopeIdentity)
                    });
                    let current = self.binds_current(&plan);
                    let scope = plan
                        .binds
                        .iter()
                        .any(|b| matches!(b.src, Bind::ScopeIdentity));
                    if !current && only_scope && (!scope || self.pending_values_identity) {
                        if self.defer_scope(&plan, params, out).await? {
                            if plan.identity_col {
                                self.pending_values_identity = values_insert;
                            }
                            return Ok(());
                        }
                    } else if !current {
                        // @@ROWCOUNT, SCOPE_IDENTITY() … must be current when bound.
                        self.flush(out).await?;
                    }
                    if self.defer(&plan, &plan.pg, params) {
                        if plan.identity_col {
                            self.pending_values_identity = values_insert;
                        }
                        return Ok(());
                    }
                }
                self.flush(out).await?;
                let rows = self.exec_plan(&plan, params).await?;
                self.finish_plan(&plan, rows, out).await
            }
            Statement::CreateTable(ct) => {
                let cat = self.engine.catalog();
                let p = ddl::create_table(&cat, ct)?;
                self.run_ddl(&p.script, out).await
            }
            Statement::CreateIndex(ci) => {
                let cat = self.engine.catalog();
                let p = ddl::create_index(&cat, ci)?;
                self.run_ddl(&p.script, out).await
            }
            Statement::Drop {
                object_type,
                if_exists,
                names,
                table,
                ..
            } => {
                let cat = self.engine.catalog();
                let p = ddl::drop(&cat, object_type, *if_exists, names, table)?;
                self.run_ddl(&p.script, out).await
            }
            Statement::AlterTable(at) => {
                let cat = self.engine.catalog();
                let p = ddl::alter_table(&cat, at)?;
                self.run_ddl(&p.script, out).await
            }
            Statement::Truncate(t) => {
                let cat = self.engine.catalog();
                let p = ddl::truncate(&cat, t)?;
                self.run_ddl(&p.script, out).await
            }
            Statement::StartTransaction {
                begin: true,
                statements,
                modes,
                ..
            } if statements.is_empty() && modes.is_empty() => {
                self.begin_tran(out);
                Ok(())
            }
            Statement::Commit { chain: false, .. } => {
                if self.pending.is_empty() {
                    self.commit_tran(out).await.map_err(Fail::from)
                } else {
                    self.commit_pipelined(out).await
                }
            }
            Statement::Savepoint { name } => {
                if self.trancount == 0 {
                    return Err(SqlError::new(
                        628,
                        "Cannot issue SAVE TRANSACTION when there is no active transaction.",
                    )
                    .into());
                }
                let mut sql = String::new();
                if self.pending_begin {
                    sql.push_str("BEGIN;");
                    self.pending_begin = false;
                    self.pg_tx = true;
                }
                sql.push_str(&format!(
                    "SAVEPOINT {}",
                    catalog::quote_ident(&format!("emu_u_{}", name.value))
                ));
                self.client
                    .batch_execute(&sql)
                    .await
                    .map_err(|e| self.pg_fail(&e, None))?;
                // The next statement must not RELEASE the statement savepoint below the
                // user's savepoint (that would destroy it): it opens a new one on top.
                self.sp_held = false;
                self.user_savepoints.push(name.value.clone());
                Ok(())
            }
            Statement::Rollback {
                chain: false,
                savepoint: Some(name),
            } if self.trancount > 0 && self.user_savepoints.contains(&name.value) => {
                let pos = self
                    .user_savepoints
                    .iter()
                    .rposition(|n| *n == name.value)
                    .unwrap_or(0);
                self.user_savepoints.truncate(pos + 1);
                self.client
                    .batch_execute(&format!(
                        "ROLLBACK TO SAVEPOINT {}",
                        catalog::quote_ident(&format!("emu_u_{}", name.value))
                    ))
                    .await
                    .map_err(|e| self.pg_fail(&e, None))?;
                self.sp_held = false;
                self.rowcount = 0;
                Ok(())
            }
            Statement::Rollback { chain: false, .. } => {
                if self.trancount == 0 {
                    return Err(SqlError::new(
                        3903,
                        "The ROLLBACK TRANSACTION request has no corresponding BEGIN TRANSACTION.",
                    )
                    .into());
                }
                self.rollback_all(out).await;
                Ok(())
            }
            Statement::Declare { stmts, .. } => {
                for (k, d) in stmts.iter().enumerate() {
                    if d.declare_type.is_some() || d.for_query.is_some() {
                        return Err(unsupported("DECLARE CURSOR/TABLE").into());
                    }
                    let dt = d
                        .data_type
                        .as_ref()
                        .ok_or_else(|| unsupported("DECLARE without a type"))?;
                    let ty = data_type_to_sql(dt, 1)?;
                    let init = match &d.assignment {
                        None => None,
                        Some(
                            DeclareAssignment::Expr(e)
                            | DeclareAssignment::Default(e)
                            | DeclareAssignment::MsSqlAssignment(e),
                        ) => Some(e.as_ref()),
                        Some(_) => return Err(unsupported("DECLARE assignment form").into()),
                    };
                    for name in &d.names {
                        let lc = name.value.to_lowercase();
                        if !lc.starts_with('@') {
                            return Err(unsupported(format!("DECLARE {}", name.value)).into());
                        }
                        if self.vars.contains_key(&lc) {
                            return Err(SqlError::new(
                                134,
                                format!(
                                    "The variable name '{}' has already been declared. Variable names must be unique within a query batch or stored procedure.",
                                    name.value
                                ),
                            )
                            .into());
                        }
                        let v = match init {
                            None => Value::Null,
                            Some(e) => self.eval(batch, id * 64 + k + 1, e, params).await?.0,
                        };
                        self.vars.insert(lc, (ty.clone(), coerce_var(v, &ty)));
                    }
                }
                Ok(())
            }
            Statement::Set(s) => self.run_set(batch, id, s, params).await,
            Statement::Print(p) => {
                let (v, _) = self.eval(batch, id * 64 + 1, &p.message, params).await?;
                let msg = match coerce(v, &SqlType::NVarChar(None)) {
                    Value::String(s) => s,
                    _ => String::new(),
                };
                out.push(Output::Info {
                    number: 0,
                    message: msg,
                });
                Ok(())
            }
            Statement::Use(_) => Ok(()),
            Statement::Throw(t) => {
                let (Some(n), Some(m), Some(st)) = (&t.error_number, &t.message, &t.state) else {
                    if let Some(e) = &self.error_info {
                        // THROW; inside CATCH rethrows the error being handled.
                        return Err(Fail {
                            err: e.clone(),
                            pg: false,
                            abort: true,
                        });
                    }
                    return Err(SqlError::new(
                        10704,
                        "To rethrow an error, a THROW statement must be used inside a CATCH block.",
                    )
                    .into());
                };
                let number = match self.eval(batch, id * 64 + 1, n, params).await?.0 {
                    Value::Int(i) if i >= 50000 => i as i32,
                    _ => {
                        return Err(SqlError::new(
                            35100,
                            "Error number in THROW statement is outside the valid range. Specify an error number in the valid range of 50000 to 2147483647.",
                        )
                        .into())
                    }
                };
                let message = match coerce(
                    self.eval(batch, id * 64 + 2, m, params).await?.0,
                    &SqlType::NVarChar(None),
                ) {
                    Value::String(s) => s,
                    _ => String::new(),
                };
                let state = match self.eval(batch, id * 64 + 3, st, params).await?.0 {
                    Value::Int(i) => i.clamp(0, 255) as u8,
                    _ => 1,
                };
                Err(Fail {
                    err: SqlError {
                        number,
                        class: 16,
                        state,
                        message,
                    },
                    pg: false,
                    abort: true,
                })
            }
            Statement::RaisError {
                message,
                severity,
                state,
                arguments,
                ..
            } => {
                let fmt = match coerce(
                    self.eval(batch, id * 64 + 1, message, params).await?.0,
                    &SqlType::NVarChar(None),
                ) {
                    Value::String(s) => s,
                    Value::Int(n) => {
                        return Err(SqlError::new(
                            2732,
                            format!(
                                "Error number {n} is invalid (the emulator has no sys.messages)."
                            ),
                        )
                        .into())
                    }
                    _ => String::new(),
                };
                let sev = match self.eval(batch, id * 64 + 2, severity, params).await?.0 {
                    Value::Int(i) => i.clamp(0, 25) as u8,
                    _ => 16,
                };
                let st = match self.eval(batch, id * 64 + 3, state, params).await?.0 {
                    Value::Int(i) => i.clamp(0, 255) as u8,
                    _ => 1,
                };
                let mut args = Vec::new();
                for (k, a) in arguments.iter().enumerate() {
                    let v = coerce(
                        self.eval(batch, id * 64 + 4 + k, a, params).await?.0,
                        &SqlType::NVarChar(None),
                    );
                    args.push(match v {
                        Value::String(s) => s,
                        _ => "(null)".to_string(),
                    });
                }
                let text = raiserror_format(&fmt, &args);
                if sev <= 10 {
                    out.push(Output::Info {
                        number: 50000,
                        message: text,
                    });
                    Ok(())
                } else {
                    Err(SqlError {
                        number: 50000,
                        class: sev.min(18),
                        state: st,
                        message: text,
                    }
                    .into())
                }
            }
            Statement::Execute {
                name: Some(name), ..
            } => Err(
                SqlError::new(2812, format!("Could not find stored procedure '{name}'.")).into(),
            ),
            other => {
                let s = other.to_string();
                let head: String = s.split_whitespace().take(3).collect::<Vec<_>>().join(" ");
                Err(unsupported(head).into())
            }
        }
    }

    pub(super) async fn run_set(
        &mut self,
        batch: &Arc<Batch>,
        id: usize,
        s: &Set,
        params: &[Param],
    ) -> Result<(), Fail> {
        match s {
            Set::SingleAssignment {
                scope: None,
                hivevar: false,
                variable,
                values,
            } if values.len() == 1 => {
                let name = variable.to_string().to_lowercase();
                if !name.starts_with('@') {
                    return Err(unsupported(format!("SET {name}")).into());
                }
                let ty = self
                    .vars
                    .get(&name)
                    .map(|(t, _)| t.clone())
                    .ok_or_else(|| {
                        SqlError::new(
                            137,
                            format!("Must declare the scalar variable \"{variable}\"."),
                        )
                    })?;
                let (v, _) = self.eval(batch, id * 64 + 1, &values[0], params).await?;
                let v = coerce_var(v, &ty);
                if matches!(v, Value::Int(_)) && !int_in_range(&Value::Null, &v, &ty) {
                    // `SET @i = <bigint too large>`: SQL Server refuses the assignment. (Other
                    // values keep the conversion rules of the statement that uses them.)
                    return Err(SqlError::new(
                        8115,
                        format!(
                            "Arithmetic overflow error converting expression to data type {}.",
                            catalog::type_to_string(&ty)
                        ),
                    )
                    .into());
                }
                self.vars.insert(name, (ty.clone(), v));
                self.rowcount = 1;
                Ok(())
            }
            Set::SetSessionParam(SetSessionParamKind::Generic(g)) => {
                let name = g.names.join(" ").to_uppercase();
                let val = g.value.to_uppercase();
                let on = val == "ON";
                match name.as_str() {
                    "NOCOUNT" => self.nocount = on,
                    "XACT_ABORT" => self.xact_abort = on,
                    "IMPLICIT_TRANSACTIONS" => self.implicit_tx = on,
                    "LOCK_TIMEOUT" => {
                        let ms: i64 = val
                            .parse()
                            .map_err(|_| unsupported(format!("SET LOCK_TIMEOUT {val}")))?;
                        self.lock_timeout_ms = ms;
                        let pg = if ms < 0 { 0 } else { ms.max(1) };
                        self.client
                            .batch_execute(&format!("SET lock_timeout = {pg}"))
                            .await
                            .map_err(|e| self.pg_fail(&e, None))?;
                    }
                    "ANSI_NULLS"
                    | "QUOTED_IDENTIFIER"
                    | "ANSI_WARNINGS"
                    | "ANSI_PADDING"
                    | "ARITHABORT"
                    | "CONCAT_NULL_YIELDS_NULL"
                    | "ANSI_NULL_DFLT_ON"
                    | "NUMERIC_ROUNDABORT"
                    | "DATEFORMAT"
                    | "LANGUAGE"
                    | "TEXTSIZE"
                    | "DEADLOCK_PRIORITY"
                    | "DATEFIRST"
                    | "CURSOR_CLOSE_ON_COMMIT"
                    | "ANSI_DEFAULTS"
                    | "STATISTICS IO"
                    | "STATISTICS TIME" => {}
                    other => return Err(unsupported(format!("SET {other}")).into()),
                }
                Ok(())
            }
            Set::SetSessionParam(SetSessionParamKind::IdentityInsert(ii)) => {
                let parts = translate::name_parts(&ii.obj);
                let cat = self.engine.catalog();
                let def = cat.resolve(&parts).ok_or_else(|| {
                    SqlError::new(208, format!("Invalid object name '{}'.", ii.obj))
                })?;
                match ii.value {
                    SessionParamValue::On => self.identity_insert = Some(def.lc.clone()),
                    SessionParamValue::Off => {
                        if self.identity_insert.as_deref() == Some(def.lc.as_str()) {
                            self.identity_insert = None;
                        }
                    }
                }
                Ok(())
            }
            Set::SetTransaction {
                modes,
                snapshot: None,
                session: false,
            } => {
                for m in modes {
                    match m {
                        TransactionMode::IsolationLevel(
                            TransactionIsolationLevel::ReadCommitted
                            | TransactionIsolationLevel::ReadUncommitted,
                        ) => {}
                        other => {
                            return Err(unsupported(format!(
                                "SET TRANSACTION {other} (only READ COMMITTED / READ UNCOMMITTED)"
                            ))
                            .into())
                        }
                    }
                }
                Ok(())
            }
            other => Err(unsupported(other).into()),
        }
    }

    /// Evaluates a scalar expression (DECLARE/SET/PRINT/EXEC arguments). Literals, parameters
    /// and variables are evaluated locally; anything else with one `SELECT` round trip.
    pub(super) async fn eval(
        &mut self,
        batch: &Arc<Batch>,
        key: usize,
        e: &Expr,
        params: &[Param],
    ) -> Result<(Value, SqlType), Fail> {
        if let Some(v) = self.const_value(e, params) {
            return Ok(v);
        }
        let plan = self.plan_for(
            batch,
            key,
            |cat, pt, vt| {
                let mut tr = Translator::new(cat, pt, vt);
                let te = tr.expr(e)?;
                let ty = te.ty.clone().unwrap_or(SqlType::Int);
                // Only integer results are answered locally (`SET @n = @@ROWCOUNT`,
                // `SET @id = CAST(SCOPE_IDENTITY() AS int)`): string, float and decimal
                // conversions keep PostgreSQL's rules.
                let local = te
                    .ty
                    .as_ref()
                    .filter(|t| {
                        matches!(
                            t,
                            SqlType::TinyInt | SqlType::SmallInt | SqlType::Int | SqlType::BigInt
                        )
                    })
                    .and(tr.local_slot(e))
                    .map(|i| vec![i]);
                Ok(scalar_plan(
                    format!("SELECT {}", te.sql),
                    tr.binds,
                    ty,
                    Vec::new(),
                    local,
                ))
            },
            params,
        )?;
        let rows = self.exec_plan(&plan, params).await?;
        let ty = plan.columns[0].ty.clone();
        let v = rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .unwrap_or(Value::Null);
        Ok((v, ty))
    }

    pub(super) fn const_value(&self, e: &Expr, params: &[Param]) -> Option<(Value, SqlType)> {
        match e {
            Expr::Value(v) => match &v.value {
                ast::Value::Number(n, _) if !n.contains(['.', 'e', 'E']) => {
                    let i: i64 = n.parse().ok()?;
                    Some((Value::Int(i), SqlType::Int))
                }
                ast::Value::Number(n, _) if !n.contains(['e', 'E']) => {
                    let d: Decimal = n.parse().ok()?;
                    Some((
                        Value::Decimal(d),
                        SqlType::Decimal {
                            precision: 38,
                            scale: d.scale() as u8,
                        },
                    ))
                }
                ast::Value::SingleQuotedString(s) => Some((
                    Value::String(s.clone()),
                    SqlType::VarChar(Some(s.chars().count().clamp(1, 8000) as u16)),
                )),
                ast::Value::NationalStringLiteral(s) => Some((
                    Value::String(s.clone()),
                    SqlType::NVarChar(Some(s.chars().count().clamp(1, 4000) as u16)),
                )),
                ast::Value::Null => Some((Value::Null, SqlType::Int)),
                _ => None,
            },
            // A session value the engine keeps itself (`IF @@TRANCOUNT > 0 ROLLBACK TRAN`, sent
            // before every posting, needs no PostgreSQL round trip).
            Expr::Identifier(i) if i.value.eq_ignore_ascii_case("@@trancount") => {
                Some((Value::Int(i64::from(self.trancount)), SqlType::Int))
            }
            Expr::Identifier(i) if i.value.starts_with('@') && !i.value.starts_with("@@") => {
                let lc = i.value.to_lowercase();
                if let Some(p) = params.iter().find(|p| p.name.to_lowercase() == lc) {
                    return Some((param_value(&p.value, &p.ty), p.ty.clone()));
                }
                self.vars.get(&lc).map(|(t, v)| (v.clone(), t.clone()))
            }
            Expr::UnaryOp {
                op: ast::UnaryOperator::Minus,
                expr,
            } => match self.const_value(expr, params)? {
                (Value::Int(i), t) => Some((Value::Int(-i), t)),
                (Value::Decimal(d), t) => Some((Value::Decimal(-d), t)),
                _ => None,
            },
            _ => None,
        }
    }

    pub(super) async fn eval_cond(
        &mut self,
        batch: &Arc<Batch>,
        id: usize,
        cond: &Expr,
        params: &[Param],
    ) -> Result<bool, Fail> {
        if let Some(v) = self.local_cond(cond, params) {
            // As after the one-row SELECT PostgreSQL would have answered.
            self.rowcount = 1;
            return Ok(v == Some(true));
        }
        let plan = self.plan_for(
            batch,
            id,
            |cat, pt, vt| {
                let mut tr = Translator::new(cat, pt, vt);
                let te = tr.expr(cond)?;
                Ok(SqlPlan {
                    pg: format!("SELECT CASE WHEN {} THEN 1 ELSE 0 END", te.sql),
                    binds: tr.binds,
                    columns: vec![OutCol {
                        name: String::new(),
                        lc: String::new(),
                        ty: SqlType::Int,
                        nullable: false,
                        aliased: false,
                    }],
                    kind: Kind::Select,
                    returns_rows: true,
                    assign: Vec::new(),
                    identity_col: false,
                    lock_tables: tr.locks,
                    reseed: None,
                    target: None,
                    local: None,
                })
            },
            params,
        )?;
        let rows = self.exec_plan(&plan, params).await?;
        Ok(matches!(
            rows.first().and_then(|r| r.first()),
            Some(Value::Int(1))
        ))
    }

    /// Evaluates an `IF` condition without PostgreSQL when it only compares integer literals,
    /// parameters, variables and @@TRANCOUNT (`IF @posted = 0 AND @c_cari > 0`, `IF @lock >= 0`,
    /// `IF @@TRANCOUNT > 0`), joined by
    /// AND / OR / NOT: saves a round trip and a statement savepoint per `IF`. Three-valued
    /// logic as in T-SQL (`Some(None)` is UNKNOWN: a comparison with NULL). `None` when
    /// anything else is involved (strings, decimals, functions, subqueries): PostgreSQL
    /// decides those, with its collations and conversions.
    pub(super) fn local_cond(&self, e: &Expr, params: &[Param]) -> Option<Option<bool>> {
        use ast::BinaryOperator as B;
        match e {
            Expr::Nested(x) => self.local_cond(x, params),
            Expr::UnaryOp {
                op: ast::UnaryOperator::Not,
                expr,
            } => self.local_cond(expr, params).map(|v| v.map(|b| !b)),
            Expr::BinaryOp { left, op, right } => match op {
                B::And | B::Or => {
                    let l = self.local_cond(left, params)?;
                    let r = self.local_cond(right, params)?;
                    Some(match (op, l, r) {
                        (B::And, Some(false), _) | (B::And, _, Some(false)) => Some(false),
                        (B::And, Some(true), Some(true)) => Some(true),
                        (B::Or, Some(true), _) | (B::Or, _, Some(true)) => Some(true),
                        (B::Or, Some(false), Some(false)) => Some(false),
                        _ => None,
                    })
                }
                B::Eq | B::NotEq | B::Lt | B::LtEq | B::Gt | B::GtEq => {
                    let int = |x: &Expr| match self.const_value(x, params)? {
                        (Value::Int(i), _) => Some(Some(i)),
                        (Value::Null, t) if catalog::is_integer(&t) => Some(None),
                        _ => None,
                    };
                    let (l, r) = (int(left)?, int(right)?);
                    Some(match (l, r) {
                        (Some(a), Some(b)) => Some(match op {
                            B::Eq => a == b,
                            B::NotEq => a != b,
                            B::Lt => a < b,
                            B::LtEq => a <= b,
                            B::Gt => a > b,
                            _ => a >= b,
                        }),
                        _ => None,
                    })
                }
                _ => None,
            },
            _ => None,
        }
    }
}
