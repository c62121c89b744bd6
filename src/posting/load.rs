//! Reading one web document (PostgreSQL) with everything posting needs: the header, its lines,
//! the customer, and the Mikro codes resolved through the `int_kodmap_*` tables with their
//! fallbacks (`cari_kodu`, `stok_kodu`, `ban_kod`, `kasa_kodu`, then configured defaults).
//!
//! Each document is read with at most two statements (pipelined on the one connection). They are
//! server-side prepared statements (`PREPARE` once per connection, then `EXECUTE`): the sale
//! header joins seven tables, and planning that join costs more than executing it. A connection that cannot
//! keep them (a transaction-mode pooler) falls back to plain `query_typed`. The web client must not
//! be inside a transaction: the first `EXECUTE` on a connection fails (statement unknown) before
//! it is prepared. Unresolvable references become [`PostError::Data`] with a message naming the
//! table and the row to add, because the operator fixes them by hand.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::text::{code, CODE_MAX};
use super::{PostError, PostingConfig};

/// The customer of a document, with its Mikro code.
#[derive(Debug, Clone)]
pub struct Customer {
    /// `cari_hesaplar.id`.
    pub id: Uuid,
    /// Mikro `cari_kod`.
    pub code: String,
    /// `cari_adi` (Mikro writes the title into `cha_aciklama` of closed invoices and `sck_borclu`).
    pub name: String,
    /// Phone (`sck_borclu_tel`).
    pub phone: String,
    /// Tax number.
    pub vergi_no: String,
    /// Tax office.
    pub vergi_dairesi: String,
}

/// Where a sale is settled (DOMAIN §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Open account: `vadeli`, `acik_hesap`, `veresiye`, `''`/NULL; also `cek`/`senet` (the
    /// instrument itself arrives later as a collection; Mikro closes invoices only to a cash box
    /// or a bank).
    Open,
    /// Closed to a bank (`kredi_karti`, `havale`): Mikro bank code.
    Bank(String),
    /// Closed to the cash box (`nakit`): Mikro cash-box code.
    CashBox(String),
}

/// A sale line.
#[derive(Debug, Clone)]
pub struct SaleLine {
    /// `satis_kalemleri.id`.
    pub id: Uuid,
    /// `stoklar.id` (named in error messages).
    pub stok_id: Uuid,
    /// Mikro `sto_kod`.
    pub stok_code: String,
    /// Quantity.
    pub miktar: i32,
    /// Unit price.
    pub birim_fiyat: Decimal,
    /// VAT rate in percent.
    pub kdv_orani: Decimal,
    /// VAT amount.
    pub kdv_tutari: Decimal,
    /// Line total as the web app computed it.
    pub toplam_tutar: Decimal,
    /// Line discounts 1..6 (amounts).
    pub iskonto: [Decimal; 6],
    /// Free text.
    pub notlar: String,
    /// `stoklar.aktif` (false = passive in Mikro, `sto_pasif_fl = 1`).
    pub aktif: bool,
}

/// A sale with its lines.
#[derive(Debug, Clone)]
pub struct Sale {
    /// `satislar.id`.
    pub id: Uuid,
    /// `satislar.satis_no` (the web shop's number; empty when none).
    pub no: String,
    /// Document date.
    pub date: NaiveDate,
    /// `satis_tipi = 'iade'`.
    pub iade: bool,
    /// How it is settled.
    pub settlement: Settlement,
    /// The customer.
    pub customer: Customer,
    /// Subtotal (net).
    pub ara_toplam: Decimal,
    /// VAT total.
    pub kdv_tutari: Decimal,
    /// Grand total.
    pub toplam_tutar: Decimal,
    /// Header discounts 1..6 (amounts).
    pub iskonto: [Decimal; 6],
    /// Free text.
    pub notlar: String,
    /// Series from the web row, if set.
    pub seri: Option<String>,
    /// External document number.
    pub belge_no: String,
    /// Lines in `sira_no` order.
    pub lines: Vec<SaleLine>,
}

/// A collection (tahsilat).
#[derive(Debug, Clone)]
pub struct Collection {
    /// `tahsilatlar.id`.
    pub id: Uuid,
    /// `tahsilatlar.tahsilat_no` (the web shop's number; empty when none).
    pub no: String,
    /// Document date.
    pub date: NaiveDate,
    /// `tahsilat_tipi` as stored.
    pub tipi: String,
    /// Amount.
    pub tutar: Decimal,
    /// The customer.
    pub customer: Customer,
    /// Mikro bank code (mapping, `ban_kod`, or the configured default), if any.
    pub bank_code: Option<String>,
    /// Mikro cash-box code (mapping, `kasa_kodu`, or the configured default), if any.
    pub kasa_code: Option<String>,
    /// Why no bank code was found (for the error message if one is needed).
    pub bank_problem: String,
    /// Why no cash-box code was found.
    pub kasa_problem: String,
    /// Cheque / note serial number.
    pub cek_no: String,
    /// Due date.
    pub vade: Option<NaiveDate>,
    /// Drawee bank name (cheques).
    pub banka_adi: String,
    /// Free text.
    pub aciklama: String,
    /// Series from the web row, if set.
    pub seri: Option<String>,
    /// External document number.
    pub belge_no: String,
}

// The mappings (int_kodmap_*, one row at most: keyed by the web id) are read by scalar
// subqueries, not joins: each join adds to the planner's search, and with eleven tables joined
// planning the documents' claim cost several times running it (it is planned again on every
// connection and after every statistics change; docs/benchmarks.md).
const CUSTOMER_COLS: &str = "c.id, c.cari_adi, c.telefon, c.vergi_no, c.vergi_dairesi, \
     (SELECT mc.erp_cari_kod FROM int_kodmap_cari mc WHERE mc.web_cari_id = d.cari_hesap_id), \
     c.cari_kodu, c.kaynak::text";
const CUSTOMER_JOIN: &str = "LEFT JOIN cari_hesaplar c ON c.id = d.cari_hesap_id";
const PAY_COLS: &str = "d.banka_id, \
     (SELECT mb.erp_banka_kod FROM int_kodmap_banka mb WHERE mb.web_banka_id = d.banka_id), \
     b.ban_kod, d.kasa_id, \
     (SELECT mk.erp_kasa_kod FROM int_kodmap_kasa mk WHERE mk.web_kasa_id = d.kasa_id), \
     k.kasa_kodu";
const PAY_JOIN: &str = "LEFT JOIN bankalar b ON b.id = d.banka_id \
     LEFT JOIN kasalar k ON k.id = d.kasa_id";

/// A read statement with one `uuid` parameter, kept as a server-side prepared statement.
struct Prepared {
    /// `mikro_sync_<what>_<hash of the text>`: a changed text never meets an old statement.
    name: String,
    /// The statement, `$1` the document id.
    sql: String,
}

impl Prepared {
    fn new(what: &str, sql: String) -> Prepared {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in sql.as_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Prepared {
            name: format!("mikro_sync_{what}_{h:016x}"),
            sql,
        }
    }
}

/// Set when a prepared statement vanished right after `PREPARE` (a transaction-mode pooler hands
/// each statement to another server connection): from then on statements are sent whole.
static NO_SERVER_PREPARE: AtomicBool = AtomicBool::new(false);

/// Runs `p` for `id`: `EXECUTE` (the id is a `Uuid`, so its text form is safe to inline), with
/// one `PREPARE` on a connection that does not know the statement yet.
async fn read(
    web: &tokio_postgres::Client,
    p: &Prepared,
    id: Uuid,
) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
    let unknown =
        |e: &tokio_postgres::Error| e.code() == Some(&SqlState::INVALID_SQL_STATEMENT_NAME);
    if !NO_SERVER_PREPARE.load(Ordering::Relaxed) {
        let exec = format!("EXECUTE {}('{id}')", p.name);
        match web.query_typed(&exec, &[]).await {
            Ok(rows) => return Ok(rows),
            Err(e) if unknown(&e) => {}
            Err(e) => return Err(e),
        }
        match web
            .batch_execute(&format!("PREPARE {} (uuid) AS {}", p.name, p.sql))
            .await
        {
            // Already prepared by a concurrent read on this connection.
            Err(e) if e.code() != Some(&SqlState::DUPLICATE_PSTATEMENT) => return Err(e),
            _ => {}
        }
        match web.query_typed(&exec, &[]).await {
            Ok(rows) => return Ok(rows),
            Err(e) if unknown(&e) => {
                tracing::info!(
                    "the web connection does not keep prepared statements (a pooler?): \
                     sending the document reads unprepared"
                );
                NO_SERVER_PREPARE.store(true, Ordering::Relaxed);
            }
            Err(e) => return Err(e),
        }
    }
    web.query_typed(&p.sql, &[(&id, Type::UUID)]).await
}

fn pg(e: tokio_postgres::Error, what: &str) -> PostError {
    // Any failure reading the web side is worth retrying: connection problems are transient, and
    // a schema problem (missing int_kodmap_* table) is fixed by running `setup`, after which the
    // retry succeeds; the message says what failed.
    PostError::Transient(format!(
        "reading {what} from the web database: {}",
        crate::db::pg_error_text(&e)
    ))
}

fn opt_text(row: &tokio_postgres::Row, idx: usize) -> String {
    row.try_get::<_, Option<String>>(idx)
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// Reads the customer columns starting at `at` (see `CUSTOMER_COLS`).
fn customer(
    row: &tokio_postgres::Row,
    at: usize,
    doc: &str,
    cari_hesap_id: Option<Uuid>,
    cfg: &PostingConfig,
) -> Result<Customer, PostError> {
    let Some(cid) = cari_hesap_id else {
        return Err(PostError::Data(format!(
            "{doc} has no customer (cari_hesap_id is empty): set it to a row of cari_hesaplar"
        )));
    };
    let id: Option<Uuid> = row
        .try_get(at)
        .map_err(|e| PostError::Data(e.to_string()))?;
    let Some(id) = id else {
        return Err(PostError::Data(format!(
            "{doc} refers to customer {cid} (cari_hesap_id), which is not in cari_hesaplar: \
             set it to a row of cari_hesaplar"
        )));
    };
    let mapped = non_empty(row.try_get(at + 5).ok().flatten());
    let own = non_empty(row.try_get(at + 6).ok().flatten());
    // The configured default (MIKRO_SYNC_DEFAULT_CARI) books customers the web created
    // (kaynak not 'erp') that have no mapping; one imported from Mikro keeps its own code.
    let from_erp = opt_text(row, at + 7) == "erp";
    let default = cfg.default_cari_code.clone().filter(|_| !from_erp);
    let Some(raw) = mapped.or(default).or(own) else {
        return Err(missing_customer(doc, id));
    };
    Ok(Customer {
        id,
        code: code(
            &format!(
                "{doc}: Mikro code of customer {id} (int_kodmap_cari / cari_hesaplar.cari_kodu)"
            ),
            &raw,
            CODE_MAX,
        )?,
        name: opt_text(row, at + 1),
        phone: opt_text(row, at + 2),
        vergi_no: opt_text(row, at + 3),
        vergi_dairesi: opt_text(row, at + 4),
    })
}

/// The actionable message for a customer without a usable Mikro code.
pub fn missing_customer(doc: &str, id: Uuid) -> PostError {
    PostError::Data(format!(
        "{doc}: customer {id} (cari_hesaplar) has no Mikro code: add a row to int_kodmap_cari \
         (web_cari_id='{id}', erp_cari_kod='<code in CARI_HESAPLAR>'; several customers may share \
         one code), set cari_hesaplar.cari_kodu, or set MIKRO_SYNC_DEFAULT_CARI=<code in CARI_HESAPLAR> \
         to book every such customer to one account"
    ))
}

/// The actionable message for a product without a usable Mikro code.
pub fn missing_product(doc: &str, id: Uuid) -> PostError {
    PostError::Data(format!(
        "{doc}: product {id} (stoklar) has no Mikro code: add a row to int_kodmap_stok \
         (web_stok_id='{id}', erp_stok_kod='<code in STOKLAR>') or set stoklar.stok_kodu"
    ))
}

/// Resolves a bank: mapping → `ban_kod` → configured default. Returns the code or why not.
fn bank(
    row: &tokio_postgres::Row,
    at: usize,
    cfg: &PostingConfig,
    table: &str,
) -> Result<Result<String, String>, PostError> {
    let column = format!("{table}.banka_id");
    let id: Option<Uuid> = row.try_get(at).ok().flatten();
    let mapped = non_empty(row.try_get(at + 1).ok().flatten());
    let own = non_empty(row.try_get(at + 2).ok().flatten());
    resolve(
        id,
        mapped.or(own),
        cfg.default_bank_code.as_deref(),
        "bank",
        "int_kodmap_banka (web_banka_id='{id}', erp_banka_kod='<code in BANKALAR>') or set bankalar.ban_kod",
        &column,
        "MIKRO_SYNC_DEFAULT_BANKA=<code in BANKALAR>",
    )
}

/// Resolves a cash box: mapping → `kasa_kodu` → configured default.
fn kasa(
    row: &tokio_postgres::Row,
    at: usize,
    cfg: &PostingConfig,
    table: &str,
) -> Result<Result<String, String>, PostError> {
    let column = format!("{table}.kasa_id");
    let id: Option<Uuid> = row.try_get(at).ok().flatten();
    let mapped = non_empty(row.try_get(at + 1).ok().flatten());
    let own = non_empty(row.try_get(at + 2).ok().flatten());
    resolve(
        id,
        mapped.or(own),
        cfg.default_kasa_code.as_deref(),
        "cash box",
        "int_kodmap_kasa (web_kasa_id='{id}', erp_kasa_kod='<code in KASALAR>') or set kasalar.kasa_kodu",
        &column,
        "MIKRO_SYNC_DEFAULT_KASA=<code in KASALAR>",
    )
}

fn resolve(
    id: Option<Uuid>,
    found: Option<String>,
    default: Option<&str>,
    what: &str,
    fix: &str,
    column: &str,
    setting: &str,
) -> Result<Result<String, String>, PostError> {
    let raw = match (id, found) {
        (Some(_), Some(c)) => c,
        (Some(id), None) => {
            return Ok(Err(format!(
                "{what} {id} has no Mikro code: add a row to {}",
                fix.replace("{id}", &id.to_string())
            )))
        }
        (None, _) => match non_empty(default.map(str::to_string)) {
            Some(c) => c,
            None => {
                return Ok(Err(format!(
                    "no {what} given ({column} is empty) and no default configured: set {column}, \
                     or set {setting}"
                )))
            }
        },
    };
    Ok(Ok(code(&format!("Mikro {what} code"), &raw, CODE_MAX)?))
}

fn dec(row: &tokio_postgres::Row, idx: usize) -> Decimal {
    row.try_get::<_, Option<Decimal>>(idx)
        .ok()
        .flatten()
        .unwrap_or(Decimal::ZERO)
}

fn six(row: &tokio_postgres::Row, from: usize) -> [Decimal; 6] {
    let mut a = [Decimal::ZERO; 6];
    for (i, v) in a.iter_mut().enumerate() {
        *v = dec(row, from + i);
    }
    a
}

/// The sale's columns: header 0..=30 (PAY_COLS from 16, CUSTOMER_COLS from 22, satis_no 30),
/// the line's from 31 ([`SALE_WIDTH`] in all). `d` is the sale, `l` the line.
fn sale_cols() -> String {
    format!(
        "d.satis_tarihi, d.satis_tipi, d.odeme_sekli, d.ara_toplam, d.kdv_tutari, \
         d.toplam_tutar, d.notlar, d.fatura_seri_no, d.belge_no, \
         d.iskonto1, d.iskonto2, d.iskonto3, d.iskonto4, d.iskonto5, d.iskonto6, \
         d.cari_hesap_id, {PAY_COLS}, {CUSTOMER_COLS}, d.satis_no, \
         l.id, l.stok_id, \
         (SELECT ms.erp_stok_kod FROM int_kodmap_stok ms WHERE ms.web_stok_id = l.stok_id), \
         s.stok_kodu, l.miktar, l.birim_fiyat, \
         l.kdv_orani, l.kdv_tutari, l.toplam_tutar, l.notlar, \
         l.iskonto1, l.iskonto2, l.iskonto3, l.iskonto4, l.iskonto5, l.iskonto6, s.aktif"
    )
}

/// Number of [`sale_cols`].
const SALE_WIDTH: usize = 48;

/// The joins [`sale_cols`] reads, after `satislar d`.
fn sale_joins() -> String {
    format!(
        "{PAY_JOIN} {CUSTOMER_JOIN} \
         LEFT JOIN satis_kalemleri l ON l.satis_id = d.id \
         LEFT JOIN stoklar s ON s.id = l.stok_id"
    )
}

/// The collection's columns (PAY_COLS from 10, CUSTOMER_COLS from 16, tahsilat_no 24;
/// [`COLLECTION_WIDTH`] in all). `d` is the collection.
fn collection_cols() -> String {
    format!(
        "d.tahsilat_tarihi, d.tahsilat_tipi, d.tutar, d.cek_no, d.vade_tarihi, \
         d.banka_adi, d.aciklama, d.tahsilat_seri_no, d.belge_no, d.cari_hesap_id, \
         {PAY_COLS}, {CUSTOMER_COLS}, d.tahsilat_no"
    )
}

/// Number of [`collection_cols`].
const COLLECTION_WIDTH: usize = 25;

/// Reads a sale and its lines. `Ok(None)` when the sale row does not exist.
pub async fn sale(
    web: &tokio_postgres::Client,
    cfg: &PostingConfig,
    id: Uuid,
) -> Result<Option<Sale>, PostError> {
    static SALE: OnceLock<Prepared> = OnceLock::new();
    // Header and lines in ONE statement, so both come from one snapshot: a web app that commits
    // its lines after the header (or edits them) is seen either before or after, never half.
    // The header columns repeat on every line row; a sale without lines gives one row of NULL
    // line columns.
    let q = SALE.get_or_init(|| {
        Prepared::new(
            "sale",
            format!(
                "SELECT {} FROM satislar d {} \
                 WHERE d.id = $1 ORDER BY l.sira_no NULLS LAST, l.olusturma_tarihi, l.id",
                sale_cols(),
                sale_joins()
            ),
        )
    });
    let rows = read(web, q, id).await.map_err(|e| pg(e, "the sale"))?;
    if rows.is_empty() {
        return Ok(None);
    }
    let rows: Vec<&tokio_postgres::Row> = rows.iter().collect();
    parse_sale(&rows, 0, cfg, id).map(Some)
}

/// A sale from the rows of [`sale_cols`] starting at column `b` (one row per line, or one with
/// NULL line columns).
fn parse_sale(
    rows: &[&tokio_postgres::Row],
    b: usize,
    cfg: &PostingConfig,
    id: Uuid,
) -> Result<Sale, PostError> {
    let Some(h) = rows.first().copied() else {
        return Err(not_found(super::DocKind::Satis, id));
    };
    let l0 = b + 31;
    let no = opt_text(h, b + 30).trim().to_string();
    let lines: Vec<&tokio_postgres::Row> = rows
        .iter()
        .copied()
        .filter(|r| matches!(r.try_get::<_, Option<Uuid>>(l0), Ok(Some(_))))
        .collect();
    let doc = super::describe("sale", &no, id);
    let date: NaiveDate = h
        .try_get(b)
        .map_err(|e| PostError::Data(format!("{doc}: satis_tarihi: {e}")))?;
    let tipi = opt_text(h, b + 1);
    let iade = tipi.trim().eq_ignore_ascii_case("iade");
    let odeme = opt_text(h, b + 2).trim().to_lowercase();
    let cari_hesap_id: Option<Uuid> = h.try_get(b + 15).ok().flatten();
    // PAY_COLS start at 16, CUSTOMER_COLS at 22.
    let settlement = match odeme.as_str() {
        "" | "vadeli" | "acik_hesap" | "açık_hesap" | "veresiye" | "cek" | "senet" => {
            Settlement::Open
        }
        "kredi_karti" | "havale" => match bank(h, b + 16, cfg, "satislar")? {
            Ok(c) => Settlement::Bank(c),
            Err(why) => {
                return Err(PostError::Data(format!(
                    "{doc} is paid by {odeme} (closed to a bank): {why}"
                )))
            }
        },
        "nakit" => match kasa(h, b + 19, cfg, "satislar")? {
            Ok(c) => Settlement::CashBox(c),
            Err(why) => {
                return Err(PostError::Data(format!(
                    "{doc} is paid in cash (closed to a cash box): {why}"
                )))
            }
        },
        other => {
            return Err(PostError::Data(format!(
                "{doc} has odeme_sekli {other:?}; allowed: nakit, kredi_karti, havale, vadeli, \
                 acik_hesap, veresiye, cek, senet or empty"
            )))
        }
    };
    let customer = customer(h, b + 22, &doc, cari_hesap_id, cfg)?;
    let mut out_lines = Vec::with_capacity(lines.len());
    for (n, l) in lines.iter().enumerate() {
        let lid: Uuid = l
            .try_get(l0)
            .map_err(|e| PostError::Data(format!("{doc} line {}: {e}", n + 1)))?;
        let stok_id: Option<Uuid> = l.try_get(l0 + 1).ok().flatten();
        let Some(stok_id) = stok_id else {
            return Err(PostError::Data(format!(
                "{doc} line {} ({lid}) has no product (satis_kalemleri.stok_id is empty)",
                n + 1
            )));
        };
        let mapped = non_empty(l.try_get(l0 + 2).ok().flatten());
        let own = non_empty(l.try_get(l0 + 3).ok().flatten());
        let Some(raw) = mapped.or(own) else {
            return Err(missing_product(&doc, stok_id));
        };
        let miktar: i32 = l
            .try_get::<_, Option<i32>>(l0 + 4)
            .ok()
            .flatten()
            .unwrap_or(0);
        out_lines.push(SaleLine {
            id: lid,
            stok_id,
            stok_code: code(
                &format!("Mikro code of product {stok_id} (int_kodmap_stok / stoklar.stok_kodu)"),
                &raw,
                CODE_MAX,
            )?,
            miktar,
            birim_fiyat: dec(l, l0 + 5),
            kdv_orani: dec(l, l0 + 6),
            kdv_tutari: dec(l, l0 + 7),
            toplam_tutar: dec(l, l0 + 8),
            notlar: opt_text(l, l0 + 9),
            iskonto: six(l, l0 + 10),
            // A line whose product row is gone reads as active: its code check in Mikro decides.
            aktif: l
                .try_get::<_, Option<bool>>(l0 + 16)
                .ok()
                .flatten()
                .unwrap_or(true),
        });
    }
    Ok(Sale {
        id,
        no,
        date,
        iade,
        settlement,
        customer,
        ara_toplam: dec(h, b + 3),
        kdv_tutari: dec(h, b + 4),
        toplam_tutar: dec(h, b + 5),
        notlar: opt_text(h, b + 6),
        seri: non_empty(h.try_get(b + 7).ok().flatten()),
        belge_no: opt_text(h, b + 8),
        iskonto: six(h, b + 9),
        lines: out_lines,
    })
}

/// Reads a collection. `Ok(None)` when the row does not exist.
pub async fn collection(
    web: &tokio_postgres::Client,
    cfg: &PostingConfig,
    id: Uuid,
) -> Result<Option<Collection>, PostError> {
    static HEAD: OnceLock<Prepared> = OnceLock::new();
    let q = HEAD.get_or_init(|| {
        Prepared::new(
            "collection",
            format!(
                "SELECT {} FROM tahsilatlar d {PAY_JOIN} {CUSTOMER_JOIN} WHERE d.id = $1",
                collection_cols()
            ),
        )
    });
    let rows = read(web, q, id)
        .await
        .map_err(|e| pg(e, "the collection"))?;
    match rows.first() {
        Some(h) => parse_collection(h, 0, cfg, id).map(Some),
        None => Ok(None),
    }
}

/// A collection from the columns of [`collection_cols`] starting at column `b`.
fn parse_collection(
    h: &tokio_postgres::Row,
    b: usize,
    cfg: &PostingConfig,
    id: Uuid,
) -> Result<Collection, PostError> {
    // PAY_COLS start at 10, CUSTOMER_COLS at 16, tahsilat_no is 24.
    let no = opt_text(h, b + 24).trim().to_string();
    let doc = super::describe("collection", &no, id);
    let date: NaiveDate = h
        .try_get(b)
        .map_err(|e| PostError::Data(format!("{doc}: tahsilat_tarihi: {e}")))?;
    let cari_hesap_id: Option<Uuid> = h.try_get(b + 9).ok().flatten();
    let (bank_code, bank_problem) = match bank(h, b + 10, cfg, "tahsilatlar")? {
        Ok(c) => (Some(c), String::new()),
        Err(why) => (None, why),
    };
    let (kasa_code, kasa_problem) = match kasa(h, b + 13, cfg, "tahsilatlar")? {
        Ok(c) => (Some(c), String::new()),
        Err(why) => (None, why),
    };
    Ok(Collection {
        id,
        no,
        date,
        tipi: opt_text(h, b + 1),
        tutar: dec(h, b + 2),
        customer: customer(h, b + 16, &doc, cari_hesap_id, cfg)?,
        bank_code,
        kasa_code,
        bank_problem,
        kasa_problem,
        cek_no: opt_text(h, b + 3),
        vade: h.try_get(b + 4).ok().flatten(),
        banka_adi: opt_text(h, b + 5),
        aciklama: opt_text(h, b + 6),
        seri: non_empty(h.try_get(b + 7).ok().flatten()),
        belge_no: opt_text(h, b + 8),
    })
}

/// The data error of a document whose web row is gone.
pub(crate) fn not_found(kind: super::DocKind, id: Uuid) -> PostError {
    PostError::Data(match kind {
        super::DocKind::Satis => format!("sale {id} is not in satislar (deleted?)"),
        super::DocKind::Tahsilat => format!("collection {id} is not in tahsilatlar (deleted?)"),
    })
}

/// Columns of the claim (`queue::store`) before the documents' columns.
pub(crate) const CLAIM_WIDTH: usize = 8;

/// The final SELECT of the claim that also reads the claimed documents, given a CTE `claimed`
/// of [`CLAIM_WIDTH`] columns (`id`, `entity_type`, `entity_id`, …, `created_at` 5th). Each
/// claimed row comes back with its document in the same row(s), read in the claim's own
/// snapshot: the claim's columns, the sale's ([`sale_cols`], NULL for a collection), the
/// collection's ([`collection_cols`], NULL for a sale), whether the document exists, the
/// line order, and the header and line rows as JSON (see [`claimed_content`]). A sale has one
/// row per line; rows of one claim are adjacent, oldest first.
pub(crate) fn claimed_documents_sql() -> String {
    let claim = "q.id, q.entity_type, q.entity_id, q.retry_count, q.created_at, \
                 q.first_attempt_at, q.claimed_at, q.lease_expiries";
    let nulls = |n: usize| vec!["NULL"; n].join(", ");
    let ord = CLAIM_WIDTH + SALE_WIDTH + COLLECTION_WIDTH + 2;
    format!(
        "SELECT {claim}, {sale}, {no_coll}, d.id IS NOT NULL, l.sira_no, l.olusturma_tarihi, \
                row_to_json(d)::text, row_to_json(l)::text \
           FROM claimed q \
           LEFT JOIN satislar d ON q.entity_type = 'satis' AND d.id = q.entity_id {sale_joins} \
          WHERE q.entity_type IS DISTINCT FROM 'tahsilat' \
         UNION ALL \
         SELECT {claim}, {no_sale}, {coll}, d.id IS NOT NULL, NULL, NULL, row_to_json(d)::text, \
                NULL \
           FROM claimed q \
           LEFT JOIN tahsilatlar d ON d.id = q.entity_id {PAY_JOIN} {CUSTOMER_JOIN} \
          WHERE q.entity_type = 'tahsilat' \
         ORDER BY 5, 1, {ord} NULLS LAST, {ord2}, {lid}",
        sale = sale_cols(),
        sale_joins = sale_joins(),
        no_coll = nulls(COLLECTION_WIDTH),
        no_sale = nulls(SALE_WIDTH),
        coll = collection_cols(),
        ord2 = ord + 1,
        lid = CLAIM_WIDTH + 31 + 1,
    )
}

/// What the claim read of one document, from its rows of [`claimed_documents_sql`]: the header
/// and line rows as `row_to_json` text, which the completion compares with the document at the
/// write-back (`mikro_sync_posted_check` in sql/web/006_divergence.sql). None when the document
/// was not found.
pub(crate) fn claimed_content(
    kind: super::DocKind,
    rows: &[&tokio_postgres::Row],
) -> Option<std::sync::Arc<super::ClaimedRows>> {
    let at = CLAIM_WIDTH + SALE_WIDTH + COLLECTION_WIDTH + 3;
    let head: String = rows.first()?.try_get::<_, Option<String>>(at).ok()??;
    let lines = (kind == super::DocKind::Satis).then(|| {
        let mut out = String::new();
        let lines = rows
            .iter()
            .filter_map(|r| r.try_get::<_, Option<String>>(at + 1).ok().flatten());
        for (i, l) in lines.enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&l);
        }
        out
    });
    Some(std::sync::Arc::new(super::ClaimedRows { head, lines }))
}

/// The document of one claimed row from its rows of [`claimed_documents_sql`], as
/// [`super::load_document`] would have read it.
pub(crate) fn claimed_document(
    kind: super::DocKind,
    id: Uuid,
    rows: &[&tokio_postgres::Row],
    cfg: &PostingConfig,
) -> super::LoadedDocument {
    use super::{DocKind, LoadedDocument};
    let found_at = CLAIM_WIDTH + SALE_WIDTH + COLLECTION_WIDTH;
    let found = rows
        .first()
        .is_some_and(|r| r.try_get::<_, bool>(found_at).unwrap_or(false));
    let parsed = match (kind, found) {
        (DocKind::Satis, true) => {
            parse_sale(rows, CLAIM_WIDTH, cfg, id).map(|s| LoadedDocument::Sale(Box::new(s)))
        }
        (DocKind::Tahsilat, true) => match rows.first() {
            Some(h) => parse_collection(h, CLAIM_WIDTH + SALE_WIDTH, cfg, id)
                .map(|c| LoadedDocument::Collection(Box::new(c))),
            None => Err(not_found(kind, id)),
        },
        (_, false) => Err(not_found(kind, id)),
    };
    parsed.unwrap_or_else(|error| LoadedDocument::Invalid { kind, id, error })
}

#[cfg(test)]
mod tests {
    use mikro_emulator::harness::{Harness, HarnessOptions};

    use super::*;

    /// The reads are server-side prepared once per connection and survive the statements being
    /// dropped (`DEALLOCATE ALL`, as a pooler's reset would): re-prepared, same answer.
    #[tokio::test]
    async fn prepared_reads_are_reprepared_after_deallocate() {
        let h = Harness::start(HarnessOptions::default())
            .await
            .expect("harness");
        let web = h.web_client().await.expect("web");
        crate::setup::setup_web(&web).await.expect("setup_web");
        let id = Uuid::new_v4();
        web.batch_execute(&format!(
            "INSERT INTO satislar (id, cari_hesap_id, odeme_sekli, ara_toplam, kdv_tutari, \
             toplam_tutar) VALUES ('{id}', 'c0000000-0000-4000-8000-000000000001', 'vadeli', \
             100, 20, 120); \
             INSERT INTO satis_kalemleri (satis_id, stok_id, miktar, birim_fiyat, kdv_orani, \
             kdv_tutari, toplam_tutar, sira_no) VALUES ('{id}', \
             'b0000000-0000-4000-8000-000000000001', 1, 100, 20, 20, 120, 1)"
        ))
        .await
        .expect("insert sale");
        let cfg = PostingConfig::default();
        let first = sale(&web, &cfg, id).await.expect("read").expect("sale");
        let names: Vec<String> = web
            .query(
                "SELECT name FROM pg_prepared_statements WHERE name LIKE 'mikro_sync_%' \
                 ORDER BY name",
                &[],
            )
            .await
            .expect("prepared")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(
            names.len(),
            1,
            "header and lines are one statement: {names:?}"
        );
        web.batch_execute("DEALLOCATE ALL")
            .await
            .expect("deallocate");
        let again = sale(&web, &cfg, id).await.expect("read").expect("sale");
        assert_eq!(format!("{first:?}"), format!("{again:?}"));
        assert_eq!(again.lines.len(), 1);
        assert!(sale(&web, &cfg, Uuid::new_v4())
            .await
            .expect("read")
            .is_none());
    }
}
