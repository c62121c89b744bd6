//! STOKLAR → `stoklar` (+ `int_kodmap_stok`), keyed by `sto_kod` = `stok_kodu`.
//!
//! Mapping: `stok_adi` = `sto_isim`; `birim_turu` = `sto_birim1_ad` (the web default when
//! empty); `alis_fiyati` = `sto_standartmaliyet`; `kdv_orani` from the retail VAT pointer
//! `sto_perakende_vergi` through [`crate::mikro::vat_rate`] (an unknown pointer rejects the row rather
//! than guess a rate); `aktif` = `sto_pasif_fl = 0`, so passive products reach the web as
//! inactive. `satis_fiyati` is written by the price sync from list 1 (see `fiyat.rs`).

use deadpool_postgres::Transaction;

use crate::erp_sync::types::{
    col, Applied, DeletePolicy, Entity, Kind, Mapped, Reconciled, Spec, Val, WebSchema,
};

use crate::erp_sync::upsert::reconcile_mapped;

/// Mikro side of the product sync.
pub static SPEC: Spec = Spec {
    entity: Entity::STOK,
    table: "STOKLAR",
    recno: "sto_RECno",
    lastup: "sto_lastup_date",
    columns: &[
        col("sto_kod", Kind::Str),
        col("sto_isim", Kind::Str),
        col("sto_birim1_ad", Kind::Str),
        col("sto_standartmaliyet", Kind::Float),
        col("sto_pasif_fl", Kind::Int),
        col("sto_perakende_vergi", Kind::Int),
    ],
    key_columns: &[col("sto_kod", Kind::Str)],
    key: |v| v[0].s().to_string(),
    web_tables: &["stoklar", "int_kodmap_stok"],
};

pub(crate) const MAPPED: Mapped = Mapped {
    web_table: "stoklar",
    web_code: "stok_kodu",
    map_table: "int_kodmap_stok",
    map_web: "web_stok_id",
    map_erp: "erp_stok_kod",
};

pub(crate) async fn apply(
    tx: &Transaction<'_>,
    ws: &WebSchema,
    rows: &[&[Val]],
) -> Result<Applied, tokio_postgres::Error> {
    let mut applied = Applied::default();
    let (mut kod, mut adi, mut birim, mut alis, mut kdv, mut aktif) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (i, r) in rows.iter().enumerate() {
        let v = *r;
        if v[0].s().trim().is_empty() {
            applied.rejects.push((i, "empty sto_kod".into()));
            continue;
        }
        let ptr = v[5].i();
        let Some(rate) = crate::mikro::vat_rate(ptr) else {
            applied.rejects.push((
                i,
                format!("sto_perakende_vergi = {ptr} is not a known VAT pointer (1..5)"),
            ));
            continue;
        };
        kod.push(v[0].s().to_string());
        adi.push(if v[1].s().trim().is_empty() {
            v[0].s().to_string()
        } else {
            v[1].s().to_string()
        });
        birim.push(super::opt(v[2].s()));
        alis.push(v[3].f());
        kdv.push(f64::from(rate));
        aktif.push(v[4].i() == 0);
    }
    if kod.is_empty() {
        return Ok(applied);
    }
    let t = "stoklar";
    let kaynak = ws.has(t, "kaynak");
    let alis_t = ws.cast(t, "alis_fiyati");
    let kdv_t = ws.cast(t, "kdv_orani");
    let set_extra = format!(
        "{}{}",
        if kaynak { ", kaynak = 'erp'" } else { "" },
        if ws.has(t, "guncelleme_tarihi") {
            ", guncelleme_tarihi = now()"
        } else {
            ""
        }
    );
    let sql = format!(
        "WITH src AS (
            SELECT s.kod, s.adi, COALESCE(s.birim, 'ADET') AS birim, s.alis{alis_t} AS alis,
                   s.kdv{kdv_t} AS kdv, s.aktif
            FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::float8[], $6::bool[])
                AS s(kod, adi, birim, alis, kdv, aktif)),
         upd AS (
            UPDATE stoklar w SET stok_adi = s.adi, birim_turu = s.birim, alis_fiyati = s.alis,
                   kdv_orani = s.kdv, aktif = s.aktif{set_extra}
            FROM src s WHERE w.stok_kodu = s.kod
              AND (w.stok_adi, w.birim_turu, w.alis_fiyati, w.kdv_orani, w.aktif{kw})
                  IS DISTINCT FROM (s.adi, s.birim, s.alis, s.kdv, s.aktif{ks})
            RETURNING w.id),
         ins AS (
            INSERT INTO stoklar (stok_kodu, stok_adi, birim_turu, alis_fiyati, kdv_orani, aktif{kc})
            SELECT s.kod, s.adi, s.birim, s.alis, s.kdv, s.aktif{kv} FROM src s
            WHERE NOT EXISTS (SELECT 1 FROM stoklar w WHERE w.stok_kodu = s.kod)
            RETURNING id, stok_kodu),
         {map}
         SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM upd)",
        kw = if kaynak { ", w.kaynak::text" } else { "" },
        ks = if kaynak { ", 'erp'::text" } else { "" },
        kc = if kaynak { ", kaynak" } else { "" },
        kv = if kaynak { ", 'erp'" } else { "" },
        map = MAPPED.map_cte("ins"),
    );
    let stmt = tx.prepare_cached(&sql).await?;
    let row = tx
        .query_one(&stmt, &[&kod, &adi, &birim, &alis, &kdv, &aktif])
        .await?;
    applied.inserted = row.get::<_, i64>(0) as u64;
    applied.updated = row.get::<_, i64>(1) as u64;
    Ok(applied)
}

pub(crate) async fn reconcile(
    tx: &Transaction<'_>,
    ws: &WebSchema,
    keys: &[Vec<Val>],
    policy: DeletePolicy,
) -> Result<Reconciled, tokio_postgres::Error> {
    reconcile_mapped(tx, ws, &MAPPED, &super::text_keys(keys), policy).await
}

erp_entity!(
    Stok,
    STOK,
    "stok",
    ["stoklar", "products"],
    "STOKLAR → `stoklar` (+ `int_kodmap_stok`).", mapped: MAPPED
);
