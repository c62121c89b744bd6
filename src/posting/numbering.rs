//! The guarded head of every posting batch (DOMAIN §5.3 and §6), sent in the same round trip as
//! the document's rows:
//!
//! 1. ledger lookup for (kind, web id), counted in the same statement as step 2 — a hit means
//!    "already posted": nothing is written, and the ledger row is selected for the caller;
//! 2. master-data checks (customer, products, bank, cash box exist in Mikro, see [`super::master`]),
//!    counted into variables — a miss writes nothing and is diagnosed afterwards;
//! 3. `sp_getapplock` on `mikro-sync:<evrak_tip>:<seri>` (exclusive, owned by the transaction),
//!    then `ISNULL(MAX(cha_evrakno_sira), 0) + 1` for (evrak tip, series) into `@sira`: every
//!    mikro-sync posting of a series is serialised until its commit, so numbers are unique and
//!    consecutive. The lock is held only for the rest of this one batch, which also commits (the Mikro
//!    program reads MAX without a lock, so what matters is keeping the window short);
//! 4. for instruments, a second applock on `mikro-sync:refno:<prefix>:<year>` and the next running
//!    refno into `@refno` (highest existing of that prefix and year + 1, 8 digits). Locks are always
//!    taken in this order (number, then refno), so two postings cannot deadlock on them.
//!
//! The caller appends its INSERT/UPDATE statements inside the guarded block (using `@sira`, `@cha`,
//! `@sck`, `@refno`), then [`end_block`] ends the block and [`select_outcome`] selects the outcome
//! as the batch's last result set; [`parse`] reads it.

use tiberius::Row;
use uuid::Uuid;

use super::erp::{get_int, get_text};
use super::ledger::{self, HeadParams};
use super::master::Codes;
use super::{refno, DocKind, PostError};
use crate::mikro::{Batch, SqlParam};

/// A refno request: prefix (`MC`, `MS`, `MH`, `MK`) and year.
#[derive(Debug, Clone, Copy)]
pub struct RefnoRequest<'a> {
    /// Two-letter prefix.
    pub prefix: &'a str,
    /// Year of the document.
    pub year: i32,
    /// `sck_tip` the prefix belongs to (the MAX uses the (sck_tip, sck_refno) index).
    pub sck_tip: i16,
}

/// What the head needs to know.
#[derive(Debug, Clone)]
pub struct Head<'a> {
    /// Document kind.
    pub kind: DocKind,
    /// Web id.
    pub web_id: Uuid,
    /// `cha_evrak_tip`.
    pub evrak_tip: i16,
    /// Series.
    pub seri: &'a str,
    /// Refno to allocate, if any.
    pub refno: Option<RefnoRequest<'a>>,
    /// Master data to check.
    pub codes: &'a Codes,
    /// Lock wait limit.
    pub lock_timeout_ms: i32,
    /// Read the customer's title (`cari_unvan1`) from Mikro into `@unvan`, for the columns the
    /// Mikro program fills with it ([`TITLE`]).
    pub title: bool,
}

/// The customer's title as the Mikro program writes it (`cha_aciklama` of closed invoices,
/// `sck_borclu`): `CARI_HESAPLAR.cari_unvan1` as Mikro has it at posting time (the web's
/// `cari_adi` is unvan1 + unvan2 after the import), cut to the 50 characters of those columns.
pub const TITLE: &str = "LEFT(ISNULL(@unvan, N''), 50)";

/// The applock resource name for a series (at most 255 characters; series are ≤ 20). Applock
/// names compare byte for byte while the MAX below compares under the database collation, so the
/// name carries the series in Turkish upper case: spellings Mikro considers one series take one
/// lock.
pub fn series_resource(evrak_tip: i16, seri: &str) -> String {
    format!(
        "mikro-sync:{evrak_tip}:{}",
        super::text::turkish_upper(seri.trim())
    )
}

/// Appends the head and opens the guarded block (see the module docs).
pub fn open(b: &mut Batch, h: &Head<'_>) -> HeadParams {
    for v in [
        "@posted int",
        "@c_cari int",
        "@c_stok int",
        "@c_bank int",
        "@c_kasa int",
        "@lock int",
        "@lock2 int",
        "@sira int",
        "@cha int",
        "@sck int",
        "@n int",
        "@refno nvarchar(25)",
        "@unvan nvarchar(200)",
        "@maxref nvarchar(25)",
    ] {
        b.stmt(&format!("DECLARE {v}"));
    }
    let kind = b.param(SqlParam::text(h.kind.as_str()));
    let web_id = b.param(SqlParam::guid(h.web_id));
    // The ledger lookup and all master-data checks in one statement (one round trip); the
    // ledger row itself is selected only when there is one (a retry, rare).
    let ledger_where =
        format!("FROM dbo.MIKROSYNC_LEDGER WHERE ml_kind = {kind} AND ml_web_id = {web_id}");
    let mut gate = vec!["@posted = 0".to_string()];
    let mut assigns = vec![format!("@posted = (SELECT COUNT(*) {ledger_where})")];
    let cari = b.param(SqlParam::text(h.codes.cari.clone()));
    assigns.push(format!(
        "@c_cari = (SELECT COUNT(*) FROM dbo.CARI_HESAPLAR WHERE cari_kod = {cari})"
    ));
    gate.push("@c_cari > 0".into());
    if h.title {
        assigns.push(format!(
            "@unvan = (SELECT MAX(cari_unvan1) FROM dbo.CARI_HESAPLAR WHERE cari_kod = {cari})"
        ));
    }
    if !h.codes.stoks.is_empty() {
        let mut parts = Vec::new();
        for list in h.codes.in_lists() {
            let ph: Vec<String> = list
                .into_iter()
                .map(|c| b.param(SqlParam::text(c)))
                .collect();
            parts.push(format!(
                "(SELECT COUNT(*) FROM dbo.STOKLAR WHERE sto_kod IN ({}))",
                ph.join(", ")
            ));
        }
        assigns.push(format!("@c_stok = {}", parts.join(" + ")));
        let n = b.param(SqlParam::int(
            i32::try_from(h.codes.stoks.len()).unwrap_or(i32::MAX),
        ));
        gate.push(format!("@c_stok >= {n}"));
    }
    if let Some(bank) = &h.codes.bank {
        let p = b.param(SqlParam::text(bank.clone()));
        assigns.push(format!(
            "@c_bank = (SELECT COUNT(*) FROM dbo.BANKALAR WHERE ban_kod = {p})"
        ));
        gate.push("@c_bank > 0".into());
    }
    if let Some(kasa) = &h.codes.kasa {
        let p = b.param(SqlParam::text(kasa.clone()));
        assigns.push(format!(
            "@c_kasa = (SELECT COUNT(*) FROM dbo.KASALAR WHERE kas_kod = {p})"
        ));
        gate.push("@c_kasa > 0".into());
    }
    b.stmt(&format!("SELECT {}", assigns.join(", ")));
    b.stmt(&format!(
        "IF @posted > 0 SELECT {} {ledger_where}",
        ledger::LOOKUP_COLUMNS
    ));
    b.raw(&format!(";\nIF {}\nBEGIN\n", gate.join(" AND ")), false);
    let res = b.param(SqlParam::text(series_resource(h.evrak_tip, h.seri)));
    let timeout = b.param(SqlParam::int(h.lock_timeout_ms));
    b.stmt(&format!(
        "EXEC @lock = sp_getapplock @Resource = {res}, @LockMode = 'Exclusive', \
         @LockOwner = 'Transaction', @LockTimeout = {timeout}"
    ));
    let mut lock_gate = "@lock >= 0".to_string();
    if let Some(r) = h.refno {
        let res2 = b.param(SqlParam::text(format!(
            "mikro-sync:refno:{}:{}",
            r.prefix, r.year
        )));
        b.stmt(&format!(
            "EXEC @lock2 = sp_getapplock @Resource = {res2}, @LockMode = 'Exclusive', \
             @LockOwner = 'Transaction', @LockTimeout = {timeout}"
        ));
        lock_gate.push_str(" AND @lock2 >= 0");
    }
    b.raw(&format!("\nIF {lock_gate}\nBEGIN\n"), false);
    let evrak_tip = b.param(SqlParam::smallint(h.evrak_tip));
    let seri = b.param(SqlParam::text(h.seri));
    b.stmt(&format!(
        "SET @sira = (SELECT ISNULL(MAX(cha_evrakno_sira), 0) + 1 FROM dbo.CARI_HESAP_HAREKETLERI \
         WHERE cha_evrak_tip = {evrak_tip} AND cha_evrakno_seri = {seri})"
    ));
    if let Some(r) = h.refno {
        let tip = b.param(SqlParam::smallint(r.sck_tip));
        let lo = b.param(SqlParam::text(refno::year_prefix(r.prefix, r.year)));
        let hi = b.param(SqlParam::text(refno::year_upper(r.prefix, r.year)));
        b.stmt(&format!(
            "SET @maxref = (SELECT MAX(sck_refno) FROM dbo.ODEME_EMIRLERI WHERE sck_tip = {tip} \
             AND sck_refno >= {lo} AND sck_refno <= {hi})"
        ));
        b.stmt("SET @n = ISNULL(CAST(RIGHT(@maxref, 8) AS int), 0) + 1");
        b.stmt(&format!(
            "SET @refno = {lo} + RIGHT(N'0000000' + CAST(@n AS nvarchar(8)), 8)"
        ));
    }
    HeadParams {
        kind,
        web_id,
        evrak_tip,
        seri,
    }
}

/// Closes the guarded block.
pub fn end_block(b: &mut Batch) {
    b.raw("\nEND\nEND", true);
}

/// Selects the outcome (the batch's last result set). In a batch that also commits, it goes
/// after `COMMIT TRAN` ([`super::erp::wrap_in_transaction`]): it needs nothing from the server,
/// and a statement between the last row and the COMMIT would make the server wait for the rows
/// before it may commit (the emulator sends the COMMIT right behind the rows otherwise), holding
/// the series lock that much longer.
pub fn select_outcome(b: &mut Batch) {
    b.stmt(
        "SELECT @posted AS posted, @lock AS lock_result, @lock2 AS lock2_result, @sira AS sira, \
         @cha AS cha_recno, @sck AS sck_recno, @refno AS refno",
    );
}

/// How the head ended.
#[derive(Debug)]
pub enum HeadOutcome {
    /// The ledger already holds the document; nothing was written.
    AlreadyPosted(ledger::Entry),
    /// The master-data checks failed; nothing was written (diagnose with [`Codes::verify`]).
    ChecksFailed,
    /// Rows written.
    Written {
        /// Number.
        sira: i32,
        /// CHA RECno.
        cha_recno: i32,
        /// ODEME_EMIRLERI RECno (0 when none).
        sck_recno: i32,
        /// Refno (empty when none).
        refno: String,
    },
}

/// Reads the head's outcome from the batch's result sets: the outcome is the last one; when it
/// says "posted", the ledger row is the first.
pub fn parse(sets: &[Vec<Row>], lock_timeout_ms: i32) -> Result<HeadOutcome, PostError> {
    let mut rows = sets.iter().filter_map(|s| s.first());
    let first = rows.next();
    let last = rows
        .next_back()
        .or(first)
        .ok_or_else(|| PostError::Transient("the posting batch returned no outcome".into()))?;
    if get_int(last, 0).unwrap_or(0) > 0 {
        // Already posted: the ledger row is the first result set, the outcome the last.
        return match first {
            Some(row) if !std::ptr::eq(row, last) => {
                Ok(HeadOutcome::AlreadyPosted(ledger::parse(row)?))
            }
            _ => Err(PostError::Transient(
                "the ledger row was counted but not returned; retrying".into(),
            )),
        };
    }
    let lock = get_int(last, 1);
    let lock2 = get_int(last, 2);
    let Some(lock) = lock else {
        return Ok(HeadOutcome::ChecksFailed);
    };
    for (what, code) in [("numbering", Some(lock)), ("refno", lock2)] {
        if let Some(c) = code {
            if c < 0 {
                return Err(PostError::Transient(format!(
                    "could not get the {what} lock within {lock_timeout_ms} ms (sp_getapplock \
                     returned {c})"
                )));
            }
        }
    }
    let int = |i: usize, what: &str| {
        get_int(last, i)
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(|| PostError::Data(format!("the posting batch returned no {what}")))
    };
    Ok(HeadOutcome::Written {
        sira: int(3, "document number")?,
        cha_recno: int(4, "CHA RECno")?,
        sck_recno: get_int(last, 5)
            .and_then(|v| i32::try_from(v).ok())
            .unwrap_or(0),
        refno: get_text(last, 6).unwrap_or_default(),
    })
}
