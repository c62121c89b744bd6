//! Transactions: BEGIN/COMMIT/ROLLBACK as text and as Transaction Manager requests, nesting
//! as SQL Server counts it, the pipelined outermost COMMIT, savepoints and releasing
//! transaction-owned application locks.

use super::*;

impl Session {
    pub(super) fn begin_tran(&mut self, out: &mut Vec<Output>) {
        if self.trancount == 0 {
            let d = self.engine.next_tx.fetch_add(1, Ordering::SeqCst);
            self.tx_desc = Some(d);
            self.pending_begin = true;
            self.pg_tx = false;
            self.sp_held = false;
            self.ddl_in_tx = false;
            out.push(Output::Tx(TxEvent::Begin(d)));
        }
        self.trancount += 1;
        self.rowcount = 0;
    }

    pub(super) fn unlock_sql(keys: &[(i32, bool)]) -> String {
        keys.iter()
            .map(|(k, shared)| {
                format!(
                    "SELECT pg_advisory_unlock{}({}, {k});",
                    if *shared { "_shared" } else { "" },
                    locks::APPLOCK_CLASS
                )
            })
            .collect()
    }

    pub(super) async fn commit_tran(&mut self, out: &mut Vec<Output>) -> Result<(), SqlError> {
        if self.trancount == 0 {
            return Err(SqlError::new(
                3902,
                "The COMMIT TRANSACTION request has no corresponding BEGIN TRANSACTION.",
            ));
        }
        self.trancount -= 1;
        self.rowcount = 0;
        if self.trancount > 0 {
            return Ok(());
        }
        let desc = self.tx_desc.take().unwrap_or(0);
        let mut s = String::new();
        if self.pg_tx {
            s.push_str("COMMIT;");
        }
        let keys = std::mem::take(&mut self.tx_applocks);
        s.push_str(&Self::unlock_sql(&keys));
        self.pending_begin = false;
        self.pg_tx = false;
        self.sp_held = false;
        self.ddl_in_tx = false;
        self.user_savepoints.clear();
        if !s.is_empty() {
            if let Err(e) = self.client.batch_execute(&s).await {
                let cat = self.engine.catalog();
                let err = map_pg_error(&e, &self.err_ctx(&cat, None));
                let _ = self.client.batch_execute("ROLLBACK").await;
                self.release_after_failed_commit(&keys).await;
                out.push(Output::Tx(TxEvent::Rollback(desc)));
                return Err(err);
            }
        }
        out.push(Output::Tx(TxEvent::Commit(desc)));
        Ok(())
    }

    /// Whether `n` is a `COMMIT TRAN` that may follow pipelined DML without waiting for its
    /// answers ([`Session::commit_pipelined`]): the outermost commit, under XACT_ABORT ON,
    /// outside TRY, with DML still unanswered.
    pub(super) fn commit_pipelinable(&self, n: &Node) -> bool {
        matches!(n, Node::Stmt { stmt, .. } if matches!(**stmt, Statement::Commit { chain: false, .. }))
            && !self.pending.is_empty()
            && self.trancount == 1
            && self.may_pipeline()
    }

    /// The outermost `COMMIT TRAN` sent right behind the DML still in the pipeline, before
    /// their answers are read. PostgreSQL runs the statements, the COMMIT and the applock
    /// releases back to back, so the transaction (and a numbering applock) ends without a wait
    /// for the emulator in between — the lock is held one round trip less. Under XACT_ABORT ON
    /// this changes nothing visible: if a pipelined statement fails, PostgreSQL has already
    /// aborted the transaction, answers the COMMIT with a rollback, and the failing statement's
    /// error is reported in order, followed by the rollback, as SQL Server does.
    pub(super) async fn commit_pipelined(&mut self, out: &mut Vec<Output>) -> Result<(), Fail> {
        let mut s = String::from("COMMIT;");
        let keys = std::mem::take(&mut self.tx_applocks);
        s.push_str(&Self::unlock_sql(&keys));
        let client = self.client.clone();
        // Queued behind the pipelined statements.
        let fut = send_now(async move { client.batch_execute(&s).await });
        let flushed = self.flush(out).await;
        let committed = fut.await;
        // Either way the PostgreSQL transaction is over. The applocks are released by the same
        // message unless it failed, which stops it at the failing command.
        self.pg_tx = false;
        self.sp_held = false;
        if committed.is_err() {
            self.release_after_failed_commit(&keys).await;
        }
        if let Err(f) = flushed {
            // Left at @@TRANCOUNT 1: the caller reports the error, then `rollback_all` ends
            // the transaction (nothing left to send) and reports the rollback.
            if let Err(e) = committed {
                tracing::warn!(error = %e, "commit after a failed pipelined statement");
            }
            return Err(f);
        }
        match committed {
            Ok(()) => self.commit_tran(out).await.map_err(Fail::from),
            // The COMMIT itself failed (a deferred constraint): PostgreSQL rolled back; as
            // above, the caller reports the error and then the rollback.
            Err(e) => Err(self.pg_fail(&e, None)),
        }
    }

    /// Releases the transaction's applocks after a COMMIT message failed (PostgreSQL skips the
    /// rest of a message after an error, the unlocks included), so they do not outlive it.
    pub(super) async fn release_after_failed_commit(&mut self, keys: &[(i32, bool)]) {
        let sql = Self::unlock_sql(keys);
        if !sql.is_empty() {
            if let Err(e) = self.client.batch_execute(&sql).await {
                tracing::warn!(error = %e, "releasing applocks after a failed COMMIT failed");
            }
        }
    }

    /// ROLLBACK TRANSACTION (all levels), also used for XACT_ABORT and deadlocks.
    pub(super) async fn rollback_all(&mut self, out: &mut Vec<Output>) {
        if self.trancount == 0 && !self.pg_tx {
            return;
        }
        let desc = self.tx_desc.take().unwrap_or(0);
        let mut s = String::new();
        if self.pg_tx {
            s.push_str("ROLLBACK;");
        }
        let keys = std::mem::take(&mut self.tx_applocks);
        s.push_str(&Self::unlock_sql(&keys));
        if !s.is_empty() {
            if let Err(e) = self.client.batch_execute(&s).await {
                tracing::warn!(error = %e, "rollback failed");
            }
        }
        let ddl = self.ddl_in_tx;
        self.trancount = 0;
        self.pending_begin = false;
        self.pg_tx = false;
        self.sp_held = false;
        self.ddl_in_tx = false;
        self.user_savepoints.clear();
        self.rowcount = 0;
        if ddl {
            if let Err(e) = self.engine.reload_catalog(&self.client).await {
                tracing::warn!(error = %e, "catalog reload after rollback failed");
            }
        }
        out.push(Output::Tx(TxEvent::Rollback(desc)));
    }

    /// Transaction Manager request: begin (TM_BEGIN_XACT). Returns the new descriptor.
    pub async fn begin(&mut self, out: &mut Vec<Output>) {
        self.begin_tran(out);
    }

    /// Transaction Manager request: commit (TM_COMMIT_XACT); `begin_new` for fBeginXact.
    /// A TM commit commits the whole transaction (as SQL Server's TM request does).
    pub async fn commit(&mut self, begin_new: bool, out: &mut Vec<Output>) {
        if self.trancount > 0 {
            self.trancount = 1;
            if let Err(e) = self.commit_tran(out).await {
                out.push(Output::Error(e));
            }
        } else {
            out.push(Output::Error(SqlError::new(
                3902,
                "The COMMIT TRANSACTION request has no corresponding BEGIN TRANSACTION.",
            )));
        }
        if begin_new {
            self.begin_tran(out);
        }
    }

    /// Transaction Manager request: rollback (TM_ROLLBACK_XACT); `begin_new` for fBeginXact.
    pub async fn rollback(&mut self, begin_new: bool, out: &mut Vec<Output>) {
        if self.trancount > 0 {
            self.rollback_all(out).await;
        } else {
            out.push(Output::Error(SqlError::new(
                3903,
                "The ROLLBACK TRANSACTION request has no corresponding BEGIN TRANSACTION.",
            )));
        }
        if begin_new {
            self.begin_tran(out);
        }
    }

    /// The current transaction descriptor (0 when none), for the ALL_HEADERS echo checks.
    pub fn transaction_descriptor(&self) -> u64 {
        self.tx_desc.unwrap_or(0)
    }

    /// @@TRANCOUNT of the session (for tests and the protocol layer).
    pub fn trancount(&self) -> u32 {
        self.trancount
    }

    /// Whether SET NOCOUNT is ON (the protocol layer may omit DONE_COUNT; the engine already
    /// emits `Done { rows: None }` then).
    pub fn nocount(&self) -> bool {
        self.nocount
    }

    /// A handle that cancels the statement this session is running, from another task (the
    /// protocol layer can keep reading packets while `execute` runs and call it on Attention).
    /// The cancelled statement fails with error 3617; the transaction stays open, as on SQL
    /// Server.
    pub fn canceller(&self) -> Canceller {
        Canceller {
            token: self.client.cancel_token(),
        }
    }

    /// Called when the client sends Attention: abandon whatever the session was doing. The
    /// engine runs statements to completion before the protocol layer reads the next packet, so
    /// there is nothing in flight to cancel; the open transaction stays open, as in SQL Server.
    pub async fn attention(&mut self) {}

    /// Called when the TDS connection closes: roll back any open transaction, release locks.
    pub async fn close(&mut self) {
        let mut out = Vec::new();
        self.rollback_all(&mut out).await;
        let keys = std::mem::take(&mut self.session_applocks);
        if !keys.is_empty() {
            let _ = self.client.batch_execute(&Self::unlock_sql(&keys)).await;
        }
    }
}
