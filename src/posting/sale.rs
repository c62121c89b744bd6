//! A sale → one CARI_HESAP_HAREKETLERI header + one STOK_HAREKETLERI row per line (DOMAIN §5.1,
//! scenarios S-* and SI-* of `scenarios.tsv`), in the Mikro program's statement order:
//! INSERT CHA (`RECid_RECno 0`, `karsid_kur 0`) → SCOPE_IDENTITY → UPDATE RECid + `karsid_kur 1`
//! → per line INSERT STH → SCOPE_IDENTITY → UPDATE RECid.
//!
//! Round trips per sale: one, when the sale fits one call (up to ~60 lines): `SET XACT_ABORT ON;
//! BEGIN TRAN`, ledger check, master-data checks, numbering lock and number, the header, the
//! lines, the ledger row, `COMMIT TRAN` (see [`super::numbering`] and
//! [`super::erp::wrap_in_transaction`]); the series lock is held only while the server runs that
//! batch. A longer sale: BEGIN, the first batch, one more batch per further ~65 lines, COMMIT.
//!
//! Readings where the captures are silent (documented here, not guessed quietly):
//! - `sth_tutar` = quantity × unit price (the amount before discounts and VAT, Mikro's meaning);
//!   discounts go to `sth_iskonto1..6`, the line VAT amount to `sth_vergi`.
//! - `cha_meblag` = `toplam_tutar`, `cha_aratoplam` = `ara_toplam` of the web row.
//! - `cha_aciklama`: open-account invoices carry the web notes (the program writes what the user
//!   typed; the traced user typed nothing); closed invoices carry the account's `cari_unvan1`
//!   read from Mikro inside the posting batch ([`super::numbering::TITLE`]), as traced.
//! - `sth_belge_no` repeats `cha_belge_no` (both `N''` in the traces).
//! - header VAT buckets: see [`super::vat`].

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use chrono::NaiveDateTime;

use super::envelope;
use super::erp::classify_mikro;
use super::load::{Sale, Settlement};
use super::master::Codes;
use super::numbering::{self, Head};
use super::text::{truncate, ACIKLAMA_MAX, BELGE_NO_MAX};
use super::time::document_date;
use super::{validate, vat, DocKind, PostError, Posted, PostingConfig};
use crate::db::ErpClient;
use crate::mikro::{Batch, Row, CARI_HESAP_HAREKETLERI, STOK_HAREKETLERI};

/// `cha_evrak_tip` of a sales invoice.
pub const EVRAK_TIP: i16 = 63;

/// A line ready to write.
struct Line {
    stok_id: uuid::Uuid,
    stok_code: String,
    miktar: f64,
    tutar: f64,
    iskonto: [f64; 6],
    vergi_pntr: i32,
    vergi: f64,
    aciklama: String,
}

fn money(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(0.0)
}

/// Checks the sale (see [`super::validate`]) and resolves VAT pointers; returns the lines and
/// header VAT buckets. Data errors first (they do not go away by waiting), then the balance
/// (not ready: lines may still be coming).
fn validate(
    s: &Sale,
    cfg: &PostingConfig,
    doc: &str,
) -> Result<(Vec<Line>, [Decimal; 10]), PostError> {
    validate::document_date(doc, "satislar.satis_tarihi", s.date, cfg)?;
    if s.lines.is_empty() {
        // Not ready: the header may have been committed before its lines.
        return validate::balance(doc, s.toplam_tutar, Decimal::ZERO, [])
            .map(|()| (vec![], [Decimal::ZERO; 10]));
    }
    let mut lines = Vec::with_capacity(s.lines.len());
    let mut vat_pairs = Vec::with_capacity(s.lines.len());
    let mut line_totals = Vec::with_capacity(s.lines.len());
    for (n, l) in s.lines.iter().enumerate() {
        let what = format!("{doc} line {} (satis_kalemleri.id {})", n + 1, l.id);
        if l.miktar <= 0 {
            return Err(PostError::Data(format!(
                "{what}: miktar is {}; a quantity must be positive: correct miktar (a return is \
                 a sale with satis_tipi = 'iade')",
                l.miktar
            )));
        }
        for (name, v) in [
            ("birim_fiyat", l.birim_fiyat),
            ("kdv_tutari", l.kdv_tutari),
            ("toplam_tutar", l.toplam_tutar),
        ]
        .into_iter()
        .chain(l.iskonto.iter().enumerate().map(|(i, v)| (ISK[i], *v)))
        {
            if v < Decimal::ZERO {
                return Err(PostError::Data(format!(
                    "{what}: {name} is {v}; amounts must not be negative: correct {name}"
                )));
            }
        }
        if !l.aktif && !cfg.allow_passive_products {
            return Err(PostError::Data(format!(
                "{what}: product {} (Mikro code {}) is passive in Mikro (stoklar.aktif = false, \
                 from sto_pasif_fl): put an active product on the line (stok_id), or set \
                 MIKRO_SYNC_ALLOW_PASSIVE_PRODUCTS=true to post passive products",
                l.stok_id, l.stok_code
            )));
        }
        let pntr = vat::pointer(l.kdv_orani, &what)?;
        vat_pairs.push((pntr, l.kdv_tutari));
        let gross = Decimal::from(l.miktar) * l.birim_fiyat;
        line_totals.push(gross - l.iskonto.iter().sum::<Decimal>() + l.kdv_tutari);
        lines.push(Line {
            stok_id: l.stok_id,
            stok_code: l.stok_code.clone(),
            miktar: f64::from(l.miktar),
            tutar: money(gross),
            iskonto: l.iskonto.map(money),
            vergi_pntr: pntr,
            vergi: money(l.kdv_tutari),
            aciklama: truncate("sth_aciklama", &l.notlar, ACIKLAMA_MAX),
        });
    }
    if s.toplam_tutar <= Decimal::ZERO {
        return Err(PostError::Data(format!(
            "{doc}: satislar.toplam_tutar is {}; a sale must have a positive total: correct \
             toplam_tutar (a return is a positive sale with satis_tipi = 'iade')",
            s.toplam_tutar
        )));
    }
    for (name, v) in [("ara_toplam", s.ara_toplam), ("kdv_tutari", s.kdv_tutari)]
        .into_iter()
        .chain(s.iskonto.iter().enumerate().map(|(i, v)| (ISK[i], *v)))
    {
        if v < Decimal::ZERO {
            return Err(PostError::Data(format!(
                "{doc}: satislar.{name} is {v}; amounts must not be negative: correct {name}"
            )));
        }
    }
    if !cfg.skip_balance_check {
        validate::balance(
            doc,
            s.toplam_tutar,
            s.iskonto.iter().sum::<Decimal>(),
            line_totals,
        )?;
    }
    Ok((lines, vat::buckets(vat_pairs)))
}

const ISK: [&str; 6] = [
    "iskonto1", "iskonto2", "iskonto3", "iskonto4", "iskonto5", "iskonto6",
];

/// Most parameters one call may carry (SQL Server's limit is 2,100).
const MAX_PARAMS: usize = 2_000;

/// Posts a loaded sale (see the module docs). Round trips: BEGIN; one batch with the guarded
/// head, the header and as many lines as fit (the ledger row too when all lines fit); one more
/// batch per further ~16 lines; COMMIT.
pub async fn post(erp: &mut ErpClient, cfg: &PostingConfig, s: &Sale) -> Result<Posted, PostError> {
    let doc = super::describe("sale", &s.no, s.id);
    let (lines, buckets) = validate(s, cfg, &doc)?;
    let seri = super::series(
        s.seri.as_deref(),
        &cfg.sale_series,
        "satislar.fatura_seri_no",
        &doc,
    )?;
    let iade = u8::from(s.iade);
    let now = super::time::now_local(cfg.tz);
    let date = document_date(s.date);

    let (tpoz, cari_cins, kod, grupno, aciklama, bank, kasa) = match &s.settlement {
        Settlement::Open => (
            0,
            0i16,
            s.customer.code.clone(),
            0,
            truncate("cha_aciklama", &s.notlar, ACIKLAMA_MAX),
            None,
            None,
        ),
        // Closed invoices carry the customer's title as Mikro has it (numbering::TITLE).
        Settlement::Bank(b) => (1, 2, b.clone(), 1, String::new(), Some(b.clone()), None),
        Settlement::CashBox(k) => (1, 4, k.clone(), 0, String::new(), None, Some(k.clone())),
    };
    let closed = !matches!(s.settlement, Settlement::Open);
    let belge_no = truncate("cha_belge_no", &s.belge_no, BELGE_NO_MAX);
    let codes = Codes {
        cari: s.customer.code.clone(),
        cari_web_id: Some(s.customer.id),
        bank,
        kasa,
        ..Default::default()
    }
    .with_stoks(
        lines
            .iter()
            .map(|l| (l.stok_code.as_str(), Some(l.stok_id))),
    );

    // Header row: everything but the number (`@sira`, known only inside the batch).
    let m = |e| classify_mikro(e, "building the CHA row");
    let mut h = Row::new(&CARI_HESAP_HAREKETLERI);
    h.set("cha_evrak_tip", EVRAK_TIP).map_err(m)?;
    h.set("cha_evrakno_seri", seri.as_str()).map_err(m)?;
    h.set("cha_tarihi", date).map_err(m)?;
    h.set("cha_tip", 0i16).map_err(m)?;
    h.set("cha_cinsi", 6i16).map_err(m)?;
    h.set("cha_normal_Iade", iade).map_err(m)?;
    h.set("cha_tpoz", tpoz).map_err(m)?;
    h.set("cha_belge_no", belge_no.as_str()).map_err(m)?;
    h.set("cha_belge_tarih", date).map_err(m)?;
    h.set("cha_aciklama", aciklama.as_str()).map_err(m)?;
    h.set("cha_cari_cins", cari_cins).map_err(m)?;
    h.set("cha_kod", kod.as_str()).map_err(m)?;
    h.set("cha_ciro_cari_kodu", s.customer.code.as_str())
        .map_err(m)?;
    h.set("cha_grupno", grupno).map_err(m)?;
    h.set("cha_meblag", money(s.toplam_tutar)).map_err(m)?;
    h.set("cha_aratoplam", money(s.ara_toplam)).map_err(m)?;
    for (i, v) in s.iskonto.iter().enumerate() {
        h.set(&format!("cha_ft_iskonto{}", i + 1), money(*v))
            .map_err(m)?;
    }
    for (i, v) in buckets.iter().enumerate() {
        h.set(&format!("cha_vergi{}", i + 1), money(*v))
            .map_err(m)?;
    }
    h.set("cha_karsid_kur", 0).map_err(m)?;
    h.set("cha_uuid", uuid::Uuid::new_v4().to_string().to_uppercase())
        .map_err(m)?;

    // Line rows: everything but the number and the header link.
    let ml = |e| classify_mikro(e, "building an STH row");
    let mut rows = Vec::with_capacity(lines.len());
    for (satirno, l) in lines.iter().enumerate() {
        let mut r = Row::new(&STOK_HAREKETLERI);
        r.set("sth_tarih", date).map_err(ml)?;
        r.set("sth_tip", 1i16).map_err(ml)?;
        r.set("sth_cins", 0i16).map_err(ml)?;
        r.set("sth_normal_iade", iade).map_err(ml)?;
        r.set("sth_evraktip", 4i16).map_err(ml)?;
        r.set("sth_evrakno_seri", seri.as_str()).map_err(ml)?;
        r.set("sth_satirno", i64::try_from(satirno).unwrap_or(i64::MAX))
            .map_err(ml)?;
        r.set("sth_belge_no", belge_no.as_str()).map_err(ml)?;
        r.set("sth_belge_tarih", date).map_err(ml)?;
        r.set("sth_stok_kod", l.stok_code.as_str()).map_err(ml)?;
        r.set("sth_cari_cinsi", 0i16).map_err(ml)?;
        r.set("sth_cari_kodu", s.customer.code.as_str())
            .map_err(ml)?;
        r.set("sth_miktar", l.miktar).map_err(ml)?;
        r.set("sth_miktar2", l.miktar).map_err(ml)?;
        r.set("sth_tutar", l.tutar).map_err(ml)?;
        for (i, v) in l.iskonto.iter().enumerate() {
            r.set(&format!("sth_iskonto{}", i + 1), *v).map_err(ml)?;
        }
        r.set("sth_vergi_pntr", l.vergi_pntr).map_err(ml)?;
        r.set("sth_vergi", l.vergi).map_err(ml)?;
        r.set("sth_aciklama", l.aciklama.as_str()).map_err(ml)?;
        r.set("sth_fat_recid_dbcno", 0).map_err(ml)?;
        r.set("sth_giris_depo_no", cfg.depot_no).map_err(ml)?;
        r.set("sth_cikis_depo_no", cfg.depot_no).map_err(ml)?;
        r.set("sth_malkbl_sevk_tarihi", date).map_err(ml)?;
        r.set("sth_fiyat_liste_no", if s.iade { 0 } else { 1 })
            .map_err(ml)?;
        rows.push(r);
    }
    let head = Head {
        kind: DocKind::Satis,
        web_id: s.id,
        evrak_tip: EVRAK_TIP,
        seri: &seri,
        refno: None,
        codes: &codes,
        lock_timeout_ms: cfg.lock_timeout_ms,
        title: closed,
    };
    let mut body = SaleRows {
        header: h,
        lines: rows,
        next: 0,
        closed,
        now,
    };
    envelope::post(erp, cfg, &head, now, &doc, &mut body).await
}

/// The header and line rows, everything but the number and the header link.
struct SaleRows {
    header: Row,
    lines: Vec<Row>,
    /// The first line not written yet.
    next: usize,
    closed: bool,
    now: NaiveDateTime,
}

const STH_RECID: &str = "UPDATE dbo.STOK_HAREKETLERI SET sth_RECid_RECno = sth_RECno \
                         WHERE sth_RECno = SCOPE_IDENTITY()";

impl SaleRows {
    /// Appends lines while they fit one call (`reserve` parameters kept for what follows).
    fn lines(
        &mut self,
        b: &mut Batch,
        sira: &str,
        cha: &str,
        reserve: usize,
    ) -> Result<bool, PostError> {
        let ml = |e| classify_mikro(e, "building an STH row");
        while self.next < self.lines.len()
            && b.param_count() + self.lines[self.next].max_params() + reserve <= MAX_PARAMS
        {
            b.insert(
                &self.lines[self.next],
                self.now,
                &[("sth_evrakno_sira", sira), ("sth_fat_recid_recno", cha)],
            )
            .map_err(ml)?;
            b.stmt(STH_RECID);
            self.next += 1;
        }
        Ok(self.next == self.lines.len())
    }
}

impl envelope::Body for SaleRows {
    const WRITING: &'static str = "writing the sale";
    const WRITING_MORE: &'static str = "writing the STH lines";

    fn first(&mut self, b: &mut Batch) -> Result<bool, PostError> {
        let mut exprs = vec![("cha_evrakno_sira", "@sira")];
        if self.closed {
            // Closed invoices carry the customer's title as Mikro has it.
            exprs.push(("cha_aciklama", numbering::TITLE));
        }
        b.insert(&self.header, self.now, &exprs)
            .map_err(|e| classify_mikro(e, "building the CHA row"))?;
        b.stmt("SET @cha = CAST(SCOPE_IDENTITY() AS int)");
        b.stmt(
            "UPDATE dbo.CARI_HESAP_HAREKETLERI SET cha_RECid_RECno = cha_RECno, \
             cha_karsid_kur = 1 WHERE cha_RECno = @cha",
        );
        self.lines(b, "@sira", "@cha", 2)
    }

    fn more(&mut self, b: &mut Batch, sira: &str, cha: &str) -> Result<bool, PostError> {
        self.lines(b, sira, cha, 4)
    }

    fn sth_count(&self) -> i32 {
        i32::try_from(self.lines.len()).unwrap_or(i32::MAX)
    }
}
