//! Document numbers (DOMAIN §5.3) and refnos, reserved in the first statement of the posting
//! transaction together with the ledger lookup, in one round trip:
//!
//! 1. ledger lookup for (kind, web id) — a hit means "already posted", the caller rolls back;
//! 2. `sp_getapplock` on `mikro-sync:<evrak_tip>:<seri>` (exclusive, owned by the transaction), then
//!    `ISNULL(MAX(cha_evrakno_sira), 0) + 1` for (evrak tip, series): every mikro-sync posting of a
//!    series is serialised until its commit, so numbers are unique and consecutive. The lock is
//!    held only for the few statements of one document (the Mikro program reads MAX without a lock,
//!    so holding it long would not protect against it anyway — short is what matters);
//! 3. for instruments, a second applock on `mikro-sync:refno:<prefix>:<year>` and the highest refno
//!    of that prefix and year. Locks are always taken in this order (number, then refno), so two
//!    postings cannot deadlock on them;
//! 4. the master-data checks of [`super::master`] (customer, products, bank, cash box exist).

use tiberius::Query;
use uuid::Uuid;

use super::erp::{get_int, get_text, run};
use super::master::Codes;
use super::{ledger, refno, DocKind, PostError};
use crate::db::ErpClient;
use crate::mikro::cached_sql;

/// What the reservation found.
#[derive(Debug)]
pub enum Reserved {
    /// The ledger already holds the document.
    AlreadyPosted(ledger::Entry),
    /// Fresh numbers, valid until the transaction ends.
    Fresh {
        /// Next `cha_evrakno_sira` of the series.
        sira: i32,
        /// Next refno, when one was asked for.
        refno: Option<String>,
    },
}

/// A refno request: prefix (`MC`, `MS`, `MH`, `MK`) and year.
#[derive(Debug, Clone, Copy)]
pub struct RefnoRequest<'a> {
    /// Two-letter prefix.
    pub prefix: &'a str,
    /// Year of the document.
    pub year: i32,
}

fn sql(with_refno: bool, codes: &Codes) -> &'static str {
    let variant = format!(
        "reserve{}:{}",
        if with_refno { "+refno" } else { "" },
        codes.shape()
    );
    cached_sql("MIKROSYNC", &variant, || {
        let mut s = format!(
            "{};\n\
             DECLARE @lock int;\n\
             EXEC @lock = sp_getapplock @Resource = @P3, @LockMode = 'Exclusive', \
             @LockOwner = 'Transaction', @LockTimeout = @P4;\n\
             SELECT @lock AS lock_result;\n\
             SELECT ISNULL(MAX(cha_evrakno_sira), 0) + 1 AS next_sira \
             FROM dbo.CARI_HESAP_HAREKETLERI WHERE cha_evrak_tip = @P5 AND cha_evrakno_seri = @P6",
            ledger::lookup_sql(1)
        );
        let mut next = 7;
        if with_refno {
            s.push_str(
                ";\n\
                 DECLARE @lock2 int;\n\
                 EXEC @lock2 = sp_getapplock @Resource = @P7, @LockMode = 'Exclusive', \
                 @LockOwner = 'Transaction', @LockTimeout = @P4;\n\
                 SELECT @lock2 AS lock_result;\n\
                 SELECT MAX(sck_refno) AS max_refno FROM dbo.ODEME_EMIRLERI \
                 WHERE sck_refno >= @P8 AND sck_refno <= @P9",
            );
            next = 10;
        }
        let (checks, _) = codes.sql(next);
        s.push_str(";\n");
        s.push_str(&checks);
        s
    })
}

/// The applock resource name for a series (at most 255 characters; series are ≤ 20).
pub fn series_resource(evrak_tip: i16, seri: &str) -> String {
    format!("mikro-sync:{evrak_tip}:{seri}")
}

/// Checks the ledger and reserves the next number (and refno) inside the open transaction.
#[allow(clippy::too_many_arguments)]
pub async fn reserve(
    erp: &mut ErpClient,
    kind: DocKind,
    web_id: Uuid,
    doc: &str,
    evrak_tip: i16,
    seri: &str,
    refno_req: Option<RefnoRequest<'_>>,
    codes: &Codes,
    lock_timeout_ms: i32,
) -> Result<Reserved, PostError> {
    let mut q = Query::new(sql(refno_req.is_some(), codes));
    ledger::bind_lookup(&mut q, kind, web_id);
    q.bind(series_resource(evrak_tip, seri));
    q.bind(lock_timeout_ms);
    q.bind(evrak_tip);
    q.bind(seri.to_string());
    if let Some(r) = refno_req {
        q.bind(format!("mikro-sync:refno:{}:{}", r.prefix, r.year));
        q.bind(refno::year_prefix(r.prefix, r.year));
        q.bind(refno::year_upper(r.prefix, r.year));
    }
    codes.bind(&mut q);
    let base = if refno_req.is_some() { 5 } else { 3 };
    let res = run(erp, q, base + codes.sets(), "reserving the document number").await?;
    if let Some(row) = res[0].first() {
        return Ok(Reserved::AlreadyPosted(ledger::parse(row)?));
    }
    let lock_ok = |set: &Vec<tiberius::Row>, what: &str| -> Result<(), PostError> {
        let code = set.first().and_then(|r| get_int(r, 0));
        match code {
            Some(c) if c >= 0 => Ok(()),
            Some(c) => Err(PostError::Transient(format!(
                "could not get the {what} lock within {lock_timeout_ms} ms (sp_getapplock returned {c})"
            ))),
            None => Err(PostError::Transient(format!(
                "sp_getapplock for the {what} returned no result"
            ))),
        }
    };
    lock_ok(&res[1], &format!("series {evrak_tip}/{seri:?} numbering"))?;
    let sira = res[2]
        .first()
        .and_then(|r| get_int(r, 0))
        .and_then(|v| i32::try_from(v).ok())
        .ok_or_else(|| PostError::Data("MAX(cha_evrakno_sira) returned no number".into()))?;
    let refno = match refno_req {
        None => None,
        Some(r) => {
            lock_ok(&res[3], "refno")?;
            let max = res[4].first().and_then(|row| get_text(row, 0));
            Some(refno::next(r.prefix, r.year, max.as_deref())?)
        }
    };
    codes.verify(&res[base..], doc)?;
    Ok(Reserved::Fresh { sira, refno })
}
