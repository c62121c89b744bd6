//! The Mikro program's row pattern `INSERT INTO T … VALUES (…)`, optionally `SET @v =
//! SCOPE_IDENTITY()`, then `UPDATE T SET x_RECid_RECno = x_RECno [, c = <number>]… WHERE x_RECno =
//! SCOPE_IDENTITY() | @v`, sent to PostgreSQL as one INSERT that writes the row as the UPDATE
//! leaves it (the identity is drawn first: `INSERT … SELECT … FROM (SELECT nextval(…)) emu_id`).
//!
//! Why: every posting writes each of its rows this way, and on the backing database the UPDATE
//! cost as much as a statement can (a new version of a 120-column row, one more bind, execute and
//! answer). Only under the pipelining conditions ([`Session::may_pipeline`]: XACT_ABORT ON in a
//! transaction, outside TRY), where the two statements run back to back with nothing observable
//! in between, and only for SET values that cannot fail (the identity into an integer column, a
//! number into a numeric column), so counts, `SCOPE_IDENTITY()`, `@@ROWCOUNT`, errors and the
//! rows stored are those of the two statements. The UPDATE's DONE (one row) is answered in its
//! turn without a PostgreSQL statement.

use super::*;
use sqlparser::ast::{ObjectName, TableFactor};

use super::translate::name_parts;

/// The UPDATE half of a fusable pair, found by [`recid_pair`].
pub(super) struct RecidPair<'a> {
    /// Node id of the INSERT (its plan cache key).
    pub ins_id: usize,
    pub ins: &'a ast::Insert,
    /// Node id of the UPDATE.
    pub upd_id: usize,
    pub upd: &'a ast::Update,
}

/// A SET of the UPDATE: the column (as written) and its value.
pub(super) enum RecidSet<'a> {
    /// `= <the identity column>` (its name as written).
    Identity(String),
    /// `= <number literal>`.
    Number(&'a Expr),
}

fn stmt_of(n: &Node) -> Option<(usize, &Statement)> {
    match n {
        Node::Stmt { id, stmt } => Some((*id, &**stmt)),
        _ => None,
    }
}

fn plain_ident(e: &Expr) -> Option<String> {
    match e {
        Expr::Identifier(i) => Some(i.value.clone()),
        Expr::CompoundIdentifier(p) => p.last().map(|i| i.value.clone()),
        Expr::Nested(x) => plain_ident(x),
        _ => None,
    }
}

/// The pair starting at `nodes[i]`, when its shape fits (the catalog checks come later, in
/// [`Translator::insert_recid`]).
pub(super) fn recid_pair(nodes: &[Node], i: usize) -> Option<RecidPair<'_>> {
    let (ins_id, Statement::Insert(ins)) = stmt_of(nodes.get(i)?)? else {
        return None;
    };
    let single_values = ins.source.as_ref().is_some_and(|q| {
        q.order_by.is_none()
            && q.limit_clause.is_none()
            && q.fetch.is_none()
            && matches!(&*q.body, ast::SetExpr::Values(v) if v.rows.len() == 1)
    });
    if !single_values || ins.output.is_some() || ins.columns.is_empty() {
        return None;
    }
    // `SET @v = SCOPE_IDENTITY()` in between: the UPDATE may name @v.
    let mut j = i + 1;
    let mut var = None;
    if let Some((_, name, value)) = nodes.get(j).and_then(single_var_set) {
        if !is_scope_identity(value) {
            return None;
        }
        var = Some(name);
        j += 1;
    }
    let (upd_id, Statement::Update(upd)) = stmt_of(nodes.get(j)?)? else {
        return None;
    };
    if upd.from.is_some()
        || upd.output.is_some()
        || upd.returning.is_some()
        || upd.limit.is_some()
        || !upd.order_by.is_empty()
        || !upd.table.joins.is_empty()
        || upd.or.is_some()
    {
        return None;
    }
    let TableFactor::Table {
        name: uname,
        alias: None,
        with_hints,
        ..
    } = &upd.table.relation
    else {
        return None;
    };
    let ast::TableObject::TableName(iname) = &ins.table else {
        return None;
    };
    if !with_hints.is_empty() || !names_equal(uname, iname) {
        return None;
    }
    let Some(Expr::BinaryOp {
        left,
        op: ast::BinaryOperator::Eq,
        right,
    }) = &upd.selection
    else {
        return None;
    };
    plain_ident(left)?;
    let by_identity = is_scope_identity(right)
        || matches!((&var, &**right), (Some(v), Expr::Identifier(i)) if i.value.to_lowercase() == *v);
    if !by_identity {
        return None;
    }
    Some(RecidPair {
        ins_id,
        ins,
        upd_id,
        upd,
    })
}

fn names_equal(a: &ObjectName, b: &ObjectName) -> bool {
    let norm = |n: &ObjectName| {
        let mut p: Vec<String> = name_parts(n).iter().map(|s| s.to_lowercase()).collect();
        if p.len() == 1 {
            p.insert(0, "dbo".into());
        }
        p
    };
    norm(a) == norm(b)
}

/// The UPDATE's SET list and the column its WHERE compares, when every value is one that
/// cannot fail (see the module docs; the types are checked against the catalog later).
pub(super) fn recid_sets(upd: &ast::Update) -> Option<(String, Vec<(String, RecidSet<'_>)>)> {
    let Some(Expr::BinaryOp { left, .. }) = &upd.selection else {
        return None;
    };
    let key = plain_ident(left)?;
    let mut sets = Vec::new();
    for a in &upd.assignments {
        let ast::AssignmentTarget::ColumnName(n) = &a.target else {
            return None;
        };
        let col = name_parts(n).last()?.clone();
        let v = match &a.value {
            Expr::Value(v) if matches!(v.value, ast::Value::Number(..)) => {
                RecidSet::Number(&a.value)
            }
            e => RecidSet::Identity(plain_ident(e)?),
        };
        sets.push((col, v));
    }
    (!sets.is_empty()).then_some((key, sets))
}

impl Session {
    /// Sends the fused INSERT of a [`RecidPair`] (see the module docs) and notes the UPDATE as
    /// answered. False (nothing sent, the INSERT runs as usual) when the pair does not qualify or
    /// the fused statement is not prepared in this session yet (it is prepared now, so the next
    /// batch uses it).
    pub(super) async fn defer_recid_pair(
        &mut self,
        batch: &Arc<Batch>,
        pair: &RecidPair<'_>,
        params: &[Param],
        out: &mut Vec<Output>,
    ) -> Result<bool, Fail> {
        if !self.may_pipeline() {
            return Ok(false);
        }
        let ins = pair.ins;
        let upd = pair.upd;
        // The fused plan's key in the batch's cache: node ids are below 64 × their count.
        // An INSERT that does not compile raises its error in its own turn.
        let Ok(plan) = self.plan_for(
            batch,
            pair.ins_id * 64 + 3,
            |cat, pt, vt| Translator::new(cat, pt, vt).insert_recid(ins, upd),
            params,
        ) else {
            return Ok(false);
        };
        if plan.pg.is_empty() || !self.deferrable(&plan) {
            return Ok(false);
        }
        if plan
            .binds
            .iter()
            .any(|b| !matches!(b.src, Bind::Param(_) | Bind::Var(_)))
        {
            return Ok(false);
        }
        // A lazy variable reads this table's identity sequence, which this row moves: it gets
        // its value first (as in `run_stmt`).
        let table = plan.target.as_ref().map(|t| t.lc.clone());
        if self
            .lazy_vars
            .values()
            .any(|l| l.table.is_some() && l.table == table)
        {
            self.flush(out).await?;
        }
        // The UPDATE compiles as it would in its turn; an error there is raised in its turn.
        let Ok(upd_plan) = self.plan_for(
            batch,
            pair.upd_id,
            |cat, pt, vt| Translator::new(cat, pt, vt).statement(&Statement::Update(upd.clone())),
            params,
        ) else {
            return Ok(false);
        };
        // As `run_stmt` sends a pipelined INSERT: with the pending identities read server-side,
        // else (after the answers were read) as it is.
        let sent_with_identities =
            !self.binds_current(&plan) && self.defer_scope(&plan, params, out).await?;
        if !sent_with_identities {
            if !self.binds_current(&plan) {
                return Ok(false);
            }
            if !self.defer(&plan, &plan.pg, params) {
                self.prepare_for_next_time(&plan, &plan.pg, out).await?;
                return Ok(false);
            }
        }
        self.pending_values_identity = true;
        self.fused_update = Some((pair.upd_id, upd_plan));
        Ok(true)
    }

    /// The UPDATE of a fused pair in its turn: its DONE (one row) and @@ROWCOUNT, in order
    /// behind the pipelined statements. False when `id` is not that UPDATE.
    pub(super) fn answer_fused_update(&mut self, id: usize) -> bool {
        match self.fused_update.take() {
            Some((upd, plan)) if upd == id => {
                self.pending.push_back(Pending {
                    plan,
                    fut: Box::pin(std::future::ready(Ok(PgResult::Count(1)))),
                    assign_identity: Vec::new(),
                });
                self.rowcount_after_flush = None;
                true
            }
            other => {
                self.fused_update = other;
                false
            }
        }
    }
}
