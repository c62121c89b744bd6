//! A collection (tahsilat makbuzu) → one CHA row, plus one ODEME_EMIRLERI row for cheque, note,
//! transfer and card (DOMAIN §5.2, scenarios T-* of `scenarios.tsv`), in the Mikro program's order:
//! INSERT ODEME_EMIRLERI → set its RECid → INSERT CHA → UPDATE the ODEME row's owner, location,
//! first-movement fields and `sck_sonpoz` → set CHA's RECid (and `cha_karsidgrupno` for bank-side
//! instruments).
//!
//! Values taken from the T-* captures: `cha_karsid_kur 1`; `cha_vade` = due date (or document date)
//! as `YYYYMMDD`; `cha_trefno = sck_refno`; `sck_borclu` = the account's `cari_unvan1` read from Mikro
//! inside the posting batch; `sck_vdaire_no` = tax office
//! and tax number joined by a space; `sck_nerede_cari_cins` 4 (portfolio box) for cheque/note and 2
//! (bank) for transfer/card; bank group numbers 9 (incoming transfer) and 7 (customer card) in
//! `sck_nerede_cari_grupno` and `cha_karsidgrupno`; `sck_sonpoz` 2 for transfer/card, 0 otherwise;
//! cheque/note `cha_aciklama` built as `/sck_no/sck_banka_adres1/sck_sube_adres2/sck_hesapno_sehir`.
//!
//! Readings where the captures are silent: `sck_ilk_evrak_seri` is set to the document series in the
//! UPDATE (the traces used the empty series, so setting it there equals not setting it); collections
//! take a fresh number like sales (a number chosen on the web could collide with Mikro's series);
//! free-text `aciklama` goes to `cha_aciklama` for cash, transfer and card.

use chrono::Datelike;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use chrono::NaiveDateTime;

use super::envelope;
use super::erp::{classify_mikro, datetime_param};
use super::load::Collection;
use super::master::Codes;
use super::numbering::{self, Head, RefnoRequest};
use super::text::{truncate, ACIKLAMA_MAX, BELGE_NO_MAX, TEXT50_MAX};
use super::time::{document_date, vade_int};
use super::{validate, DocKind, PostError, Posted, PostingConfig};
use crate::db::ErpClient;
use crate::mikro::{Batch, Row, SqlParam, CARI_HESAP_HAREKETLERI, ODEME_EMIRLERI};

/// `cha_evrak_tip` of a collection receipt.
pub const EVRAK_TIP: i16 = 1;

/// One row of DOMAIN §5.2's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// `tahsilat_tipi`.
    pub name: &'static str,
    /// `cha_cinsi`.
    pub cinsi: i16,
    /// `cha_kasa_hizmet`: 4 cash/portfolio box, 2 bank.
    pub kasa_hizmet: i32,
    /// `cha_sntck_poz`.
    pub sntck_poz: i32,
    /// `sck_tip` and refno prefix, when an ODEME_EMIRLERI row is written.
    pub sck: Option<(i16, &'static str)>,
    /// Bank group number (`cha_karsidgrupno`, `sck_nerede_cari_grupno`), from the traces.
    pub grupno: i32,
    /// `sck_sonpoz` after the UPDATE.
    pub sonpoz: i32,
}

/// The five collection kinds.
pub const KINDS: [Kind; 5] = [
    Kind {
        name: "nakit",
        cinsi: 0,
        kasa_hizmet: 4,
        sntck_poz: 0,
        sck: None,
        grupno: 0,
        sonpoz: 0,
    },
    Kind {
        name: "cek",
        cinsi: 1,
        kasa_hizmet: 4,
        sntck_poz: 0,
        sck: Some((0, "MC")),
        grupno: 0,
        sonpoz: 0,
    },
    Kind {
        name: "senet",
        cinsi: 2,
        kasa_hizmet: 4,
        sntck_poz: 0,
        sck: Some((1, "MS")),
        grupno: 0,
        sonpoz: 0,
    },
    Kind {
        name: "havale",
        cinsi: 17,
        kasa_hizmet: 2,
        sntck_poz: 2,
        sck: Some((4, "MH")),
        grupno: 9,
        sonpoz: 2,
    },
    Kind {
        name: "kredi_karti",
        cinsi: 19,
        kasa_hizmet: 2,
        sntck_poz: 2,
        sck: Some((6, "MK")),
        grupno: 7,
        sonpoz: 2,
    },
];

/// Looks up a `tahsilat_tipi`; anything else is a data error naming the value and the allowed ones.
pub fn kind(tipi: &str, doc: &str) -> Result<Kind, PostError> {
    let t = tipi.trim().to_lowercase();
    KINDS.iter().copied().find(|k| k.name == t).ok_or_else(|| {
        PostError::Data(format!(
            "{doc} has tahsilat_tipi {tipi:?}; allowed: nakit, cek, senet, havale, kredi_karti"
        ))
    })
}

fn money(d: Decimal) -> f64 {
    d.to_f64().unwrap_or(0.0)
}

/// Posts a loaded collection.
pub async fn post(
    erp: &mut ErpClient,
    cfg: &PostingConfig,
    c: &Collection,
) -> Result<Posted, PostError> {
    let doc = super::describe("collection", &c.no, c.id);
    let k = kind(&c.tipi, &doc)?;
    validate::document_date(&doc, "tahsilatlar.tahsilat_tarihi", c.date, cfg)?;
    if c.tutar <= Decimal::ZERO {
        return Err(PostError::Data(format!(
            "{doc}: tahsilatlar.tutar is {}; a collection amount must be positive: correct tutar",
            c.tutar
        )));
    }
    if matches!(k.name, "cek" | "senet") {
        let what = if k.name == "cek" { "cheque" } else { "note" };
        if c.cek_no.trim().is_empty() {
            return Err(PostError::Data(format!(
                "{doc}: a {what} ({}) needs its number, and tahsilatlar.cek_no is empty: set cek_no",
                k.name
            )));
        }
        let Some(vade) = c.vade else {
            return Err(PostError::Data(format!(
                "{doc}: a {what} ({}) needs its due date, and tahsilatlar.vade_tarihi is empty: \
                 set vade_tarihi",
                k.name
            )));
        };
        validate::storable(&doc, "tahsilatlar.vade_tarihi", vade)?;
        if vade < c.date {
            return Err(PostError::Data(format!(
                "{doc}: tahsilatlar.vade_tarihi {vade} is before the document date \
                 tahsilat_tarihi {}: correct vade_tarihi (or tahsilat_tarihi)",
                c.date
            )));
        }
    } else if let Some(vade) = c.vade {
        validate::storable(&doc, "tahsilatlar.vade_tarihi", vade)?;
    }
    let seri = super::series(
        c.seri.as_deref(),
        &cfg.collection_series,
        "tahsilatlar.tahsilat_seri_no",
        &doc,
    )?;
    // Counter account: cash box, portfolio box or bank.
    let (hizkod, is_bank) = match k.name {
        "nakit" => match &c.kasa_code {
            Some(kc) => (kc.clone(), false),
            None => {
                return Err(PostError::Data(format!(
                    "{doc} is cash: {}",
                    c.kasa_problem
                )))
            }
        },
        "cek" => (cfg.cek_box_code.clone(), false),
        "senet" => (cfg.senet_box_code.clone(), false),
        _ => match &c.bank_code {
            Some(b) => (b.clone(), true),
            None => {
                return Err(PostError::Data(format!(
                    "{doc} is {}: {}",
                    k.name, c.bank_problem
                )))
            }
        },
    };
    let now = super::time::now_local(cfg.tz);
    let date = document_date(c.date);
    let vade = c.vade.unwrap_or(c.date);
    let codes = Codes {
        cari: c.customer.code.clone(),
        cari_web_id: Some(c.customer.id),
        bank: is_bank.then(|| hizkod.clone()),
        kasa: (!is_bank).then(|| hizkod.clone()),
        ..Default::default()
    };
    let refno_req = k.sck.map(|(sck_tip, prefix)| RefnoRequest {
        prefix,
        year: c.date.year(),
        sck_tip,
    });
    let is_instrument_text = matches!(k.name, "cek" | "senet");
    let sck_no = if is_instrument_text {
        truncate("sck_no", &c.cek_no, TEXT50_MAX)
    } else {
        String::new()
    };
    let banka_adres1 = if k.name == "cek" {
        truncate("sck_banka_adres1", &c.banka_adi, TEXT50_MAX)
    } else {
        String::new()
    };
    let aciklama = if is_instrument_text {
        truncate(
            "cha_aciklama",
            &format!("/{sck_no}/{banka_adres1}//"),
            ACIKLAMA_MAX,
        )
    } else {
        truncate("cha_aciklama", &c.aciklama, ACIKLAMA_MAX)
    };

    // Rows, built before the transaction; `@sira`, `@refno`, `@sck`, `@cha` are batch variables.
    let m = |e| classify_mikro(e, "building the ODEME_EMIRLERI row");
    let sck_row = match k.sck {
        None => None,
        Some((sck_tip, _)) => {
            let mut r = Row::new(&ODEME_EMIRLERI);
            r.set("sck_tip", sck_tip).map_err(m)?;
            r.set(
                "sck_vdaire_no",
                truncate(
                    "sck_vdaire_no",
                    &format!("{} {}", c.customer.vergi_dairesi, c.customer.vergi_no),
                    TEXT50_MAX,
                ),
            )
            .map_err(m)?;
            r.set("sck_vade", document_date(vade)).map_err(m)?;
            r.set("sck_tutar", money(c.tutar)).map_err(m)?;
            r.set("sck_banka_adres1", banka_adres1.as_str())
                .map_err(m)?;
            r.set(
                "sck_borclu_tel",
                truncate("sck_borclu_tel", &c.customer.phone, TEXT50_MAX),
            )
            .map_err(m)?;
            r.set("sck_no", sck_no.as_str()).map_err(m)?;
            if k.name == "senet" {
                r.set("sck_duzen_tarih", date).map_err(m)?;
            }
            Some(r)
        }
    };
    let mh = |e| classify_mikro(e, "building the CHA row");
    let mut h = Row::new(&CARI_HESAP_HAREKETLERI);
    h.set("cha_evrak_tip", EVRAK_TIP).map_err(mh)?;
    h.set("cha_evrakno_seri", seri.as_str()).map_err(mh)?;
    h.set("cha_tarihi", date).map_err(mh)?;
    h.set("cha_tip", 1i16).map_err(mh)?;
    h.set("cha_cinsi", k.cinsi).map_err(mh)?;
    h.set("cha_normal_Iade", 0u8).map_err(mh)?;
    h.set("cha_tpoz", 0).map_err(mh)?;
    h.set(
        "cha_belge_no",
        truncate("cha_belge_no", &c.belge_no, BELGE_NO_MAX),
    )
    .map_err(mh)?;
    h.set("cha_belge_tarih", date).map_err(mh)?;
    h.set("cha_aciklama", aciklama.as_str()).map_err(mh)?;
    h.set("cha_cari_cins", 0i16).map_err(mh)?;
    h.set("cha_kod", c.customer.code.as_str()).map_err(mh)?;
    h.set("cha_ciro_cari_kodu", "").map_err(mh)?;
    h.set("cha_grupno", 0).map_err(mh)?;
    h.set("cha_kasa_hizmet", k.kasa_hizmet).map_err(mh)?;
    h.set("cha_kasa_hizkod", hizkod.as_str()).map_err(mh)?;
    h.set("cha_karsid_kur", 1).map_err(mh)?;
    h.set("cha_meblag", money(c.tutar)).map_err(mh)?;
    h.set("cha_aratoplam", money(c.tutar)).map_err(mh)?;
    h.set("cha_vade", vade_int(vade)).map_err(mh)?;
    h.set("cha_sntck_poz", k.sntck_poz).map_err(mh)?;
    h.set("cha_uuid", "").map_err(mh)?;

    let head = Head {
        kind: DocKind::Tahsilat,
        web_id: c.id,
        evrak_tip: EVRAK_TIP,
        seri: &seri,
        refno: refno_req,
        codes: &codes,
        lock_timeout_ms: cfg.lock_timeout_ms,
        title: sck_row.is_some(),
    };
    let mut body = CollectionRows {
        header: h,
        instrument: sck_row.map(|row| Instrument {
            row,
            owner: c.customer.code.clone(),
            location: hizkod.clone(),
            location_cins: if is_bank { 2 } else { 4 },
            grupno: k.grupno,
            sonpoz: k.sonpoz,
            date,
            seri: seri.clone(),
        }),
        now,
    };
    envelope::post(erp, cfg, &head, now, &doc, &mut body).await
}

/// The CHA row and, for cheque, note, transfer and card, the ODEME_EMIRLERI row; `@sira`,
/// `@refno`, `@sck`, `@cha` are batch variables.
struct CollectionRows {
    header: Row,
    instrument: Option<Instrument>,
    now: NaiveDateTime,
}

/// The ODEME_EMIRLERI row and what its UPDATE after the CHA insert sets.
struct Instrument {
    row: Row,
    owner: String,
    location: String,
    location_cins: i16,
    grupno: i32,
    sonpoz: i32,
    date: NaiveDateTime,
    seri: String,
}

impl envelope::Body for CollectionRows {
    const WRITING: &'static str = "writing the collection";

    // A collection always fits one call: BEGIN, rows and COMMIT in one round trip.
    fn first(&mut self, b: &mut Batch) -> Result<bool, PostError> {
        let now = self.now;
        let mh = |e| classify_mikro(e, "building the CHA row");
        let Some(i) = &self.instrument else {
            // Cash: INSERT CHA, RECid.
            b.insert(&self.header, now, &[("cha_evrakno_sira", "@sira")])
                .map_err(mh)?;
            b.stmt("SET @cha = CAST(SCOPE_IDENTITY() AS int)");
            b.stmt(
                "UPDATE dbo.CARI_HESAP_HAREKETLERI SET cha_RECid_RECno = cha_RECno \
                 WHERE cha_RECno = @cha",
            );
            return Ok(true);
        };
        // INSERT SCK → its RECid → INSERT CHA → UPDATE SCK owner/location → CHA RECid.
        b.insert(
            &i.row,
            now,
            &[("sck_refno", "@refno"), ("sck_borclu", numbering::TITLE)],
        )
        .map_err(|e| classify_mikro(e, "building the ODEME_EMIRLERI row"))?;
        b.stmt("SET @sck = CAST(SCOPE_IDENTITY() AS int)");
        b.stmt(
            "UPDATE dbo.ODEME_EMIRLERI SET sck_RECid_RECno = sck_RECno \
             WHERE sck_RECno = @sck",
        );
        b.insert(
            &self.header,
            now,
            &[("cha_evrakno_sira", "@sira"), ("cha_trefno", "@refno")],
        )
        .map_err(mh)?;
        b.stmt("SET @cha = CAST(SCOPE_IDENTITY() AS int)");
        let lastup = b.param(datetime_param(now)?);
        let sahip = b.param(SqlParam::text(i.owner.as_str()));
        let cins = b.param(SqlParam::smallint(i.location_cins));
        let nerede = b.param(SqlParam::text(i.location.as_str()));
        let grupno = b.param(SqlParam::int(i.grupno));
        let tarih = b.param(datetime_param(i.date)?);
        let ilk_seri = b.param(SqlParam::text(i.seri.as_str()));
        let sonpoz = b.param(SqlParam::int(i.sonpoz));
        b.stmt(&format!(
            "UPDATE dbo.ODEME_EMIRLERI SET sck_lastup_date = {lastup}, \
             sck_sahip_cari_kodu = {sahip}, sck_nerede_cari_cins = {cins}, \
             sck_nerede_cari_kodu = {nerede}, sck_nerede_cari_grupno = {grupno}, \
             sck_ilk_hareket_tarihi = {tarih}, sck_ilk_evrak_seri = {ilk_seri}, \
             sck_ilk_evrak_sira_no = @sira, sck_son_hareket_tarihi = {tarih}, \
             sck_sonpoz = {sonpoz} WHERE sck_RECno = @sck"
        ));
        b.stmt(&format!(
            "UPDATE dbo.CARI_HESAP_HAREKETLERI SET cha_RECid_RECno = cha_RECno, \
             cha_karsidgrupno = {grupno} WHERE cha_RECno = @cha"
        ));
        Ok(true)
    }

    fn ledger_sck(&self) -> &'static str {
        if self.instrument.is_some() {
            "@sck"
        } else {
            "0"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(kind(" Havale ", "c").unwrap().cinsi, 17);
        assert_eq!(kind("kredi_karti", "c").unwrap().sck, Some((6, "MK")));
        let e = kind("bitcoin", "collection 1").unwrap_err();
        assert!(
            matches!(e, PostError::Data(m) if m.contains("\"bitcoin\"") && m.contains("kredi_karti"))
        );
    }
}
