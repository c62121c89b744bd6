//! Posting one web document into Mikro as the document the Mikro program itself would write.
//!
//! [`post_document`] is the contract with the queue (`crate::queue`): it reads the web document
//! (`load`), validates it, and writes it inside one SQL Server transaction that first consults the
//! mikro-sync ledger (`ledger`, exactly-once in effect, DOMAIN §6), reserves the document number
//! under a per-series lock ([`numbering`]), writes the rows column-for-column as the Mikro program
//! does (`sale`, `collection`, built on [`crate::mikro`]) and records the ledger row.
//!
//! Errors are classified for the retry policy: [`PostError::Transient`] (connection, timeout,
//! deadlock, lock timeout), [`PostError::Data`] (fix the data or a mapping; the message says how) and
//! [`PostError::NotReady`] (a sale whose lines are not committed yet, or do not add up to its
//! header yet: `validate::balance`). A document that fails either way is first looked up in the
//! ledger, so one already in Mikro is completed with its number (`ledger_first`).

pub(crate) mod collection;
pub(crate) mod envelope;
pub mod erp;
pub(crate) mod ledger;
pub(crate) mod load;
pub mod master;
pub mod numbering;
pub mod refno;
pub(crate) mod sale;
pub mod text;
pub(crate) mod time;
pub(crate) mod validate;
pub(crate) mod vat;

use tracing::Instrument;
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

pub use crate::config::PostingConfig;

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
#[derive(Debug, Clone, thiserror::Error)]
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

/// A document's rows as the claim read them, each as PostgreSQL's `row_to_json` text: the
/// completion compares them with the rows as they are when the number is written back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedRows {
    /// The header row (`satislar` / `tahsilatlar`).
    pub head: String,
    /// A sale's lines in posting order, joined by `,` (empty: none); None for a collection.
    pub lines: Option<String>,
}

/// A document read from the web database and validated, ready to be written into Mikro.
///
/// Loading and posting are separate steps so a worker can read the next document from
/// PostgreSQL while the ERP connection is still busy with the previous one (the ERP pool, not
/// the web reads, is what bounds documents/s).
#[derive(Debug)]
pub enum LoadedDocument {
    /// A sale with its lines.
    Sale(Box<load::Sale>),
    /// A collection.
    Collection(Box<load::Collection>),
    /// A document that cannot be posted as it reads now (a data error or not complete yet). It
    /// still goes to [`post_loaded`], which consults the ledger first: a document already in
    /// Mikro is completed with its number whatever its web row says now.
    Invalid {
        /// Kind.
        kind: DocKind,
        /// Web id.
        id: Uuid,
        /// Why it cannot be posted.
        error: PostError,
    },
}

impl LoadedDocument {
    /// The kind and web id of the document (for the tracing span).
    fn key(&self) -> (DocKind, Uuid) {
        match self {
            LoadedDocument::Sale(s) => (DocKind::Satis, s.id),
            LoadedDocument::Collection(c) => (DocKind::Tahsilat, c.id),
            LoadedDocument::Invalid { kind, id, .. } => (*kind, *id),
        }
    }
}

/// Reads and validates one document from the web database (no ERP access). A document that is
/// gone from the web table is a data error naming the table. Call it outside a web transaction:
/// the reads are prepared once per connection, and a connection that lost its prepared
/// statements (a pooler, `DISCARD ALL`) re-prepares after a failed first try, which would abort
/// an open transaction.
pub async fn load_document(
    web: &tokio_postgres::Client,
    cfg: &PostingConfig,
    kind: DocKind,
    web_id: Uuid,
) -> Result<LoadedDocument, PostError> {
    let span = tracing::info_span!("load_document", kind = kind.as_str(), doc_id = %web_id);
    let loaded = async move {
        match kind {
            DocKind::Satis => match load::sale(web, cfg, web_id).await? {
                Some(s) => Ok(LoadedDocument::Sale(Box::new(s))),
                None => Err(load::not_found(kind, web_id)),
            },
            DocKind::Tahsilat => match load::collection(web, cfg, web_id).await? {
                Some(c) => Ok(LoadedDocument::Collection(Box::new(c))),
                None => Err(load::not_found(kind, web_id)),
            },
        }
    }
    .instrument(span)
    .await;
    match loaded {
        Err(e @ (PostError::Data(_) | PostError::NotReady(_))) => Ok(LoadedDocument::Invalid {
            kind,
            id: web_id,
            error: e,
        }),
        other => other,
    }
}

/// Writes a loaded document into Mikro exactly once in effect (see [`post_document`]).
pub async fn post_loaded(
    erp: &mut ErpClient,
    cfg: &PostingConfig,
    doc: &LoadedDocument,
) -> Result<Posted, PostError> {
    let (kind, web_id) = doc.key();
    let span = tracing::info_span!("post_document", kind = kind.as_str(), doc_id = %web_id);
    async move {
        let r = match doc {
            LoadedDocument::Sale(s) => sale::post(erp, cfg, s).await,
            LoadedDocument::Collection(c) => collection::post(erp, cfg, c).await,
            LoadedDocument::Invalid { error, .. } => Err(error.clone()),
        };
        let r = match r {
            Err(e @ (PostError::Data(_) | PostError::NotReady(_))) => {
                envelope::ledger_first(erp, kind, web_id, e).await
            }
            r => r,
        };
        match &r {
            Ok(p) => tracing::info!(
                seri = %p.seri,
                sira = p.sira,
                cha_recno = p.cha_recno,
                already_posted = p.already_posted,
                "posted"
            ),
            Err(e) => tracing::warn!(error = %e, "posting failed"),
        }
        r
    }
    .instrument(span)
    .await
}

/// Posts one document into Mikro exactly once in effect: inside one ERP transaction it checks the mikro-sync ledger,
/// allocates the number, writes the rows and the ledger row. A document already in the ledger is not written again;
/// its recorded number is returned with `already_posted = true`.
///
/// `erp` must have no transaction open: the posting sends its own `BEGIN TRAN … COMMIT TRAN`,
/// which inside a caller's transaction would only nest (the COMMIT would not commit). Connections
/// from [`crate::db::ErpPool`] are cleaned on check-out; a caller's own connection is its
/// caller's to keep clean.
pub async fn post_document(
    web: &tokio_postgres::Client,
    erp: &mut ErpClient,
    cfg: &PostingConfig,
    kind: DocKind,
    web_id: Uuid,
) -> Result<Posted, PostError> {
    let doc = match load_document(web, cfg, kind, web_id).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(kind = kind.as_str(), doc_id = %web_id, error = %e, "posting failed");
            return Err(e);
        }
    };
    post_loaded(erp, cfg, &doc).await
}

/// How messages name a web document: its kind, the web shop's number and its id
/// (`sale WEB-S-0007 (id 5f0c…)`), or the id alone when the row has no number.
pub fn describe(kind: &str, no: &str, id: Uuid) -> String {
    if no.is_empty() {
        format!("{kind} (id {id}, no number)")
    } else {
        format!("{kind} {no} (id {id})")
    }
}

/// The series to post under: the web row's if set, else the configured one; must fit
/// `cha_evrakno_seri` (nvarchar(20)). It is canonical ([`canonical_series`]): every spelling that
/// Mikro's Turkish_CI_AS collation considers equal is written, locked and numbered as one.
pub(crate) fn series(
    web: Option<&str>,
    configured: &str,
    column: &str,
    doc: &str,
) -> Result<String, PostError> {
    let c = configured.trim();
    match web.map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) => {
            let s = text::code(&format!("{doc}: the series in {column}"), s, text::SERI_MAX)?;
            Ok(canonical_series(&s, c))
        }
        None => {
            if c.chars().count() > text::SERI_MAX {
                return Err(PostError::Data(format!(
                    "the configured series {c:?} is longer than {} characters",
                    text::SERI_MAX
                )));
            }
            Ok(c.to_string())
        }
    }
}

/// One spelling per series as Mikro compares them (Turkish_CI_AS: case-insensitive with Turkish
/// `i`/`İ`, `ı`/`I`, accent-sensitive): the configured series' own spelling when the series
/// equals it, else the series in Turkish upper case ([`text::turkish_upper`]). So `st`, `St` and
/// `ST` are all written as the configured `ST`, `şt` as `ŞT`, and `is`/`İs` as `İS`.
pub fn canonical_series(seri: &str, configured: &str) -> String {
    let key = text::turkish_upper(seri.trim());
    if key == text::turkish_upper(configured.trim()) {
        configured.trim().to_string()
    } else {
        key
    }
}
