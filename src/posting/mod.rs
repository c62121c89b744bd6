//! Posting one web document into Mikro as the document the Mikro program itself would write.
//!
//! STUB: the signatures below are the contract with the queue (`crate::queue`); the posting work
//! fills in the bodies (sale.rs, collection.rs, numbering.rs, ledger.rs, …).

use uuid::Uuid;

use crate::db::ErpClient;

/// The two document kinds the web app produces; the `entity_type` spelling in `sync_queue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocKind {
    /// `satislar` → CHA header (evrak tip 63) + STH lines.
    Satis,
    /// `tahsilatlar` → CHA receipt (evrak tip 1) [+ ODEME_EMIRLERI].
    Tahsilat,
}

impl DocKind {
    /// The one spelling used in `sync_queue.entity_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Satis => "satis",
            DocKind::Tahsilat => "tahsilat",
        }
    }

    /// Parses the `sync_queue.entity_type` spelling.
    pub fn parse(s: &str) -> Option<DocKind> {
        match s {
            "satis" => Some(DocKind::Satis),
            "tahsilat" => Some(DocKind::Tahsilat),
            _ => None,
        }
    }
}

/// Settings that decide how documents are written (from configuration).
#[derive(Debug, Clone)]
pub struct PostingConfig {
    /// The company's time zone: every Mikro datetime is local wall-clock time in it.
    pub tz: chrono_tz::Tz,
    /// Series for sales when the web row has none.
    pub sale_series: String,
    /// Series for collections when the web row has none.
    pub collection_series: String,
}

impl Default for PostingConfig {
    fn default() -> Self {
        PostingConfig { tz: chrono_tz::Europe::Istanbul, sale_series: "ST".into(), collection_series: "TH".into() }
    }
}

/// What a successful (or previously successful) posting produced; written back to the web row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// Mikro document series (`cha_evrakno_seri`).
    pub seri: String,
    /// Mikro document number (`cha_evrakno_sira`).
    pub sira: i32,
    /// RECno of the CHA row.
    pub cha_recno: i32,
    /// True when the ledger showed the document was already in Mikro (a retry after a crash).
    pub already_posted: bool,
}

/// Why a posting did not happen. The class decides the retry policy.
#[derive(Debug, thiserror::Error)]
pub enum PostError {
    /// Worth retrying until the total retry time runs out: connection lost, timeout, deadlock (1205), lock timeout.
    #[error("temporary ERP/web failure: {0}")]
    Transient(String),
    /// The document itself is wrong or unresolvable (missing mapping, validation). The message tells the operator
    /// what to add or fix. Retried a few times, then `failed`.
    #[error("{0}")]
    Data(String),
    /// The document is not complete yet (a sale header committed before its lines). Retried with backoff within a
    /// settle window, then `failed` with the message.
    #[error("{0}")]
    NotReady(String),
}

/// Posts one document into Mikro exactly once in effect: inside one ERP transaction it checks the mikro-sync ledger,
/// allocates the number, writes the rows and the ledger row. A document already in the ledger is not written again;
/// its recorded number is returned with `already_posted = true`.
pub async fn post_document(
    web: &tokio_postgres::Client,
    erp: &mut ErpClient,
    cfg: &PostingConfig,
    kind: DocKind,
    web_id: Uuid,
) -> Result<Posted, PostError> {
    let _ = (web, erp, cfg, kind, web_id);
    Err(PostError::Transient("posting not implemented yet".into()))
}
