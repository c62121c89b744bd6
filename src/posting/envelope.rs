//! The transactional envelope every posting goes through, whatever the document: the guarded head
//! (ledger check, master-data checks, numbering applock and number, [`super::numbering`]), the
//! document's rows ([`Body`]), the ledger row, the ERP transaction (one round trip with `BEGIN` and
//! `COMMIT` when the document fits one call, else `BEGIN`, further batches, `COMMIT`) and the
//! outcome (written, already posted, or a master-data miss diagnosed).
//!
//! Why one place: exactly-once depends on every document taking the lock, checking and writing
//! the ledger and committing in the same order; `sale` and `collection` only build rows.

use chrono::NaiveDateTime;
use uuid::Uuid;

use super::erp::{self, run};
use super::ledger::{self, HeadParams};
use super::master;
use super::numbering::{self, Head, HeadOutcome};
use super::{DocKind, PostError, Posted, PostingConfig};
use crate::db::ErpClient;
use crate::mikro::{Batch, SqlParam};

/// A document's rows as the envelope writes them.
pub(crate) trait Body {
    /// What the messages call the first call (`writing the sale`).
    const WRITING: &'static str;
    /// What the messages call a further call.
    const WRITING_MORE: &'static str = Self::WRITING;

    /// Appends the document's statements to the first batch, inside the guarded block: the
    /// number is `@sira`, the CHA RECno must end in `@cha` (an ODEME_EMIRLERI RECno in `@sck`).
    /// Returns true when the whole document is in this batch.
    fn first(&mut self, b: &mut Batch) -> Result<bool, PostError>;

    /// Appends the next part to a further batch, the number and CHA RECno being the parameters
    /// `sira` and `cha`. Returns true when the document is complete with this batch.
    fn more(&mut self, _b: &mut Batch, _sira: &str, _cha: &str) -> Result<bool, PostError> {
        Ok(true)
    }

    /// The ledger's `ml_sck_recno` expression (`@sck` or `0`).
    fn ledger_sck(&self) -> &'static str {
        "0"
    }

    /// The ledger's `ml_sth_count`.
    fn sth_count(&self) -> i32 {
        0
    }
}

/// Writes one document exactly once in effect: head, rows, ledger row, transaction, outcome.
pub(crate) async fn post(
    erp: &mut ErpClient,
    cfg: &PostingConfig,
    head: &Head<'_>,
    now: NaiveDateTime,
    doc: &str,
    body: &mut impl Body,
) -> Result<Posted, PostError> {
    let result = write(erp, cfg, head, now, doc, body).await;
    finish(erp, result).await
}

async fn write<B: Body>(
    erp: &mut ErpClient,
    cfg: &PostingConfig,
    head: &Head<'_>,
    now: NaiveDateTime,
    doc: &str,
    body: &mut B,
) -> Result<Outcome, PostError> {
    let mut b = Batch::new();
    let hp = numbering::open(&mut b, head);
    let one_trip = body.first(&mut b)?;
    if one_trip {
        ledger::insert_stmt(
            &mut b,
            &hp,
            "@sira",
            "@cha",
            body.ledger_sck(),
            body.sth_count(),
            now,
        )?;
    }
    numbering::end_block(&mut b);
    // The usual document fits one call: BEGIN, rows and COMMIT in one round trip, so the series
    // lock is held only while the server runs that batch. A larger one opens the transaction
    // first and commits after its last batch.
    if one_trip {
        erp::wrap_in_transaction(&mut b, numbering::select_outcome);
    } else {
        numbering::select_outcome(&mut b);
        erp::begin(erp).await?;
    }
    let sets = run(erp, b.into_query(), 2, B::WRITING).await?;
    let (sira, cha_recno) = match numbering::parse(&sets, cfg.lock_timeout_ms)? {
        HeadOutcome::AlreadyPosted(e) => {
            return Ok(Outcome::Already(Posted {
                seri: e.seri,
                sira: e.sira,
                cha_recno: e.cha_recno,
                already_posted: true,
            }))
        }
        HeadOutcome::ChecksFailed => return Err(master::diagnose(erp, head.codes, doc).await),
        HeadOutcome::Written {
            sira, cha_recno, ..
        } => (sira, cha_recno),
    };
    let mut done = one_trip;
    while !done {
        let mut b = Batch::new();
        let sira_p = b.param(SqlParam::int(sira));
        let cha_p = b.param(SqlParam::int(cha_recno));
        done = body.more(&mut b, &sira_p, &cha_p)?;
        if done {
            let hp = HeadParams {
                kind: b.param(SqlParam::text(head.kind.as_str())),
                web_id: b.param(SqlParam::guid(head.web_id)),
                evrak_tip: b.param(SqlParam::smallint(head.evrak_tip)),
                seri: b.param(SqlParam::text(head.seri)),
            };
            ledger::insert_stmt(
                &mut b,
                &hp,
                &sira_p,
                &cha_p,
                body.ledger_sck(),
                body.sth_count(),
                now,
            )?;
        }
        b.into_query()
            .execute(erp)
            .await
            .map_err(|e| erp::classify(e, B::WRITING_MORE))?;
    }
    let posted = Posted {
        seri: head.seri.to_string(),
        sira,
        cha_recno,
        already_posted: false,
    };
    Ok(if one_trip {
        Outcome::Committed(posted)
    } else {
        Outcome::Written(posted)
    })
}

/// How the transactional part of a posting ended.
#[derive(Debug)]
enum Outcome {
    /// Rows written; commit.
    Written(Posted),
    /// Rows written and committed in the same batch ([`erp::wrap_in_transaction`]).
    Committed(Posted),
    /// The ledger already had the document; nothing written, roll back.
    Already(Posted),
}

/// Ends the ERP transaction according to the outcome: commit what was written, roll back otherwise.
/// A failed COMMIT is transient: if it did commit after all, the retry finds the ledger row.
async fn finish(
    erp: &mut ErpClient,
    result: Result<Outcome, PostError>,
) -> Result<Posted, PostError> {
    match result {
        Ok(Outcome::Written(p)) => match erp::commit(erp).await {
            Ok(()) => Ok(p),
            Err(e) => {
                erp::rollback_quietly(erp).await;
                Err(match e {
                    PostError::Data(m) => PostError::Transient(m),
                    other => other,
                })
            }
        },
        Ok(Outcome::Committed(p)) => Ok(p),
        Ok(Outcome::Already(p)) => {
            erp::rollback_quietly(erp).await;
            Ok(p)
        }
        Err(e) => {
            erp::rollback_quietly(erp).await;
            Err(e)
        }
    }
}

/// A document that cannot be posted as it reads now may already be in Mikro (posted, then its web
/// row changed or went away before the web side was completed): the ledger decides, so such a
/// document is completed with its number instead of failing. A ledger that cannot be read makes
/// the failure transient (retried), never a final one for a document that might be posted.
pub(crate) async fn ledger_first(
    erp: &mut ErpClient,
    kind: DocKind,
    web_id: Uuid,
    e: PostError,
) -> Result<Posted, PostError> {
    match ledger::lookup(erp, kind, web_id).await {
        Ok(Some(entry)) => {
            tracing::info!(
                seri = %entry.seri,
                sira = entry.sira,
                web_problem = %e,
                "already in Mikro: completing with the ledger's number, not the web row as it reads now"
            );
            Ok(Posted {
                seri: entry.seri,
                sira: entry.sira,
                cha_recno: entry.cha_recno,
                already_posted: true,
            })
        }
        Ok(None) => Err(e),
        Err(le) => Err(PostError::Transient(format!(
            "{e} (and the ledger could not be read to see whether it is already posted: {le})"
        ))),
    }
}
