//! The mikro-sync ledger (`dbo.MIKROSYNC_LEDGER`, DOMAIN §6): one row per posted web document,
//! keyed by (document kind, web id), written in the same SQL Server transaction as the document.
//! A retry after a crash between the ERP commit and the web-side completion finds the row and
//! writes nothing. The web id lives only here, never in a Mikro business column.

use chrono::NaiveDateTime;
use tiberius::Row;

use super::erp::{datetime_param, get_int, get_text};
use super::PostError;

/// Placeholders of the head's parameters that key the ledger row (the ledger INSERT reuses
/// them).
#[derive(Debug, Clone)]
pub struct HeadParams {
    /// `ml_kind`.
    pub kind: String,
    /// `ml_web_id`.
    pub web_id: String,
    /// `cha_evrak_tip`.
    pub evrak_tip: String,
    /// Series.
    pub seri: String,
}

/// Columns of a ledger row the lookup returns. The lookup (in [`super::numbering`]) takes no lock
/// hint: the primary key is the guard. Two postings of the same document that race past the
/// lookup both write, but the second one's ledger INSERT waits for the first transaction and then
/// fails with a duplicate key (2627) — classified transient, so its whole transaction rolls back
/// and the retry finds the ledger row. (A range-lock hint would only make the loser wait earlier,
/// and on the emulator UPDLOCK/HOLDLOCK is a table lock that would serialise every posting.)
pub const LOOKUP_COLUMNS: &str = "ml_evrak_tip, ml_seri, ml_sira, ml_cha_recno";

/// A document already posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// `cha_evrak_tip` of the posted document.
    pub evrak_tip: i16,
    /// Series.
    pub seri: String,
    /// Number.
    pub sira: i32,
    /// RECno of its CHA row.
    pub cha_recno: i32,
}

/// Parses a lookup row.
pub fn parse(row: &Row) -> Result<Entry, PostError> {
    let bad = || PostError::Data("MIKROSYNC_LEDGER row has unexpected types".to_string());
    Ok(Entry {
        evrak_tip: get_int(row, 0)
            .and_then(|v| i16::try_from(v).ok())
            .ok_or_else(bad)?,
        seri: get_text(row, 1).ok_or_else(bad)?,
        sira: get_int(row, 2)
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(bad)?,
        cha_recno: get_int(row, 3)
            .and_then(|v| i32::try_from(v).ok())
            .ok_or_else(bad)?,
    })
}

/// Appends the ledger INSERT to a batch. `kind`, `web_id`, `evrak_tip`, `seri` are placeholders
/// already bound in the batch; `sira`, `cha`, `sck` are expressions (batch variables such as
/// `@sira`, or placeholders).
#[allow(clippy::too_many_arguments)]
pub fn insert_stmt(
    b: &mut crate::mikro::Batch,
    hp: &HeadParams,
    sira: &str,
    cha: &str,
    sck: &str,
    sth_count: i32,
    posted_at: NaiveDateTime,
) -> Result<(), PostError> {
    let count = b.param(crate::mikro::SqlParam::int(sth_count));
    let at = b.param(datetime_param(posted_at)?);
    b.stmt(&format!(
        "INSERT INTO dbo.MIKROSYNC_LEDGER (ml_kind, ml_web_id, ml_evrak_tip, ml_seri, ml_sira, \
         ml_cha_recno, ml_sck_recno, ml_sth_count, ml_posted_at) VALUES ({}, {}, {}, {}, {sira}, \
         {cha}, {sck}, {count}, {at})",
        hp.kind, hp.web_id, hp.evrak_tip, hp.seri
    ));
    Ok(())
}

/// Looks the document up in the ledger on its own (outside a posting batch). Used when a document
/// cannot be posted as it now reads on the web (invalid, incomplete, gone): if it is already in
/// Mikro, the ledger's number is what the web side must get, whatever the web row says now.
pub async fn lookup(
    erp: &mut crate::db::ErpClient,
    kind: super::DocKind,
    web_id: uuid::Uuid,
) -> Result<Option<Entry>, PostError> {
    let mut q = tiberius::Query::new(format!(
        "SELECT {LOOKUP_COLUMNS} FROM dbo.MIKROSYNC_LEDGER WHERE ml_kind = @P1 AND ml_web_id = @P2"
    ));
    q.bind(kind.as_str());
    q.bind(web_id);
    let sets = super::erp::run(erp, q, 1, "looking the document up in MIKROSYNC_LEDGER").await?;
    sets.first().and_then(|s| s.first()).map(parse).transpose()
}
