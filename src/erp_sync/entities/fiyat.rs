//! STOK_SATIS_FIYAT_LISTELERI → `urun_fiyat_listeleri`, keyed in Mikro by (stock, list, depot,
//! payment plan).
//!
//! The web holds one price per (product, price list), so only Mikro's general prices — depot 0
//! (all depots) and payment plan 0 — are written; depot- or plan-specific rows are counted as
//! skipped. `stok_id` is resolved by `stok_kodu`, `fiyat_tanimi_id` through
//! `int_kodmap_fiyat_liste` (then `sira_no`); a price whose product or list is unknown on the web
//! is rejected (and retried next run). A price of 0 is a price and is written. Prices of list
//! [`SALES_PRICE_LIST`] also set `stoklar.satis_fiyati`. Price rows have no history of their own
//! (sale lines carry their unit price), so a price deleted in Mikro is deleted on the web under
//! either delete policy: keeping a stale price would sell at a price Mikro no longer has.

use deadpool_postgres::Transaction;
use uuid::Uuid;

use super::{col, Applied, Reconciled, Spec};
use crate::erp_sync::read::{Kind, MikroRow, Val};
use crate::erp_sync::upsert::WebSchema;
use crate::erp_sync::{DeletePolicy, Entity};

/// The Mikro price list whose prices are the product's default sales price on the web.
pub const SALES_PRICE_LIST: i32 = 1;

/// Mikro side of the price sync.
pub static SPEC: Spec = Spec {
    entity: Entity::Fiyat,
    table: "STOK_SATIS_FIYAT_LISTELERI",
    recno: "sfiyat_RECno",
    lastup: "sfiyat_lastup_date",
    columns: &[
        col("sfiyat_stokkod", Kind::Str),
        col("sfiyat_listesirano", Kind::Int),
        col("sfiyat_deposirano", Kind::Int),
        col("sfiyat_odemeplan", Kind::Int),
        col("sfiyat_fiyati", Kind::Float),
    ],
    key_columns: &[
        col("sfiyat_stokkod", Kind::Str),
        col("sfiyat_listesirano", Kind::Int),
        col("sfiyat_deposirano", Kind::Int),
        col("sfiyat_odemeplan", Kind::Int),
    ],
    key: |v| format!("{}|{}|{}|{}", v[0].s(), v[1].i(), v[2].i(), v[3].i()),
    web_tables: &[
        "urun_fiyat_listeleri",
        "stoklar",
        "fiyat_tanimlari",
        "int_kodmap_fiyat_liste",
        "int_kodmap_stok",
    ],
};

pub(crate) async fn apply(
    tx: &Transaction<'_>,
    ws: &WebSchema,
    rows: &[&MikroRow],
) -> Result<Applied, tokio_postgres::Error> {
    let mut applied = Applied::default();
    let mut idx = vec![];
    let (mut kod, mut no) = (vec![], vec![]);
    for (i, r) in rows.iter().enumerate() {
        let v = &r.vals;
        if v[2].i() != 0 || v[3].i() != 0 {
            applied.skipped += 1;
            continue;
        }
        if v[4].f() < 0.0 {
            applied
                .rejects
                .push((i, format!("negative price {}", v[4].f())));
            continue;
        }
        idx.push(i);
        kod.push(v[0].s().to_string());
        no.push(v[1].i() as i32);
    }
    if idx.is_empty() {
        return Ok(applied);
    }
    let resolve = tx
        .prepare_cached(
            "SELECT (SELECT w.id FROM stoklar w WHERE w.stok_kodu = s.kod LIMIT 1),
                    COALESCE((SELECT f.id FROM int_kodmap_fiyat_liste m
                                JOIN fiyat_tanimlari f ON f.id = m.web_fiyat_tanimi_id
                               WHERE m.erp_liste_sirano = s.no LIMIT 1),
                             (SELECT f.id FROM fiyat_tanimlari f WHERE f.sira_no = s.no LIMIT 1))
             FROM unnest($1::text[], $2::int[]) WITH ORDINALITY AS s(kod, no, i) ORDER BY s.i",
        )
        .await?;
    let ids = tx.query(&resolve, &[&kod, &no]).await?;
    let (mut sid, mut fid, mut fiyat, mut lno) = (vec![], vec![], vec![], vec![]);
    for (j, r) in ids.iter().enumerate() {
        let i = idx[j];
        let s: Option<Uuid> = r.get(0);
        let f: Option<Uuid> = r.get(1);
        match (s, f) {
            (Some(s), Some(f)) => {
                sid.push(s);
                fid.push(f);
                fiyat.push(rows[i].vals[4].f());
                lno.push(no[j]);
            }
            (None, _) => applied
                .rejects
                .push((i, format!("unknown stock `{}` on the web", kod[j]))),
            (_, None) => applied
                .rejects
                .push((i, format!("unknown price list {} on the web", no[j]))),
        }
    }
    if sid.is_empty() {
        return Ok(applied);
    }
    let t = "urun_fiyat_listeleri";
    let cast = ws.cast(t, "fiyat");
    let touch = if ws.has(t, "guncelleme_tarihi") {
        ", guncelleme_tarihi = now()"
    } else {
        ""
    };
    let sales = if ws.has("stoklar", "satis_fiyati") {
        format!(
            ", sat AS (UPDATE stoklar st SET satis_fiyati = s.fiyat{c}
                FROM src s WHERE s.no = {SALES_PRICE_LIST} AND st.id = s.sid
                 AND st.satis_fiyati IS DISTINCT FROM s.fiyat{c} RETURNING 1)",
            c = ws.cast("stoklar", "satis_fiyati")
        )
    } else {
        String::new()
    };
    let sql = format!(
        "WITH src AS (
            SELECT s.sid, s.fid, s.fiyat{cast} AS fiyat, s.no
            FROM unnest($1::uuid[], $2::uuid[], $3::float8[], $4::int[]) AS s(sid, fid, fiyat, no)),
         upd AS (
            UPDATE urun_fiyat_listeleri w SET fiyat = s.fiyat{touch}
            FROM src s WHERE w.stok_id = s.sid AND w.fiyat_tanimi_id = s.fid
              AND w.fiyat IS DISTINCT FROM s.fiyat
            RETURNING 1),
         ins AS (
            INSERT INTO urun_fiyat_listeleri (stok_id, fiyat_tanimi_id, fiyat)
            SELECT s.sid, s.fid, s.fiyat FROM src s
            WHERE NOT EXISTS (SELECT 1 FROM urun_fiyat_listeleri w
                              WHERE w.stok_id = s.sid AND w.fiyat_tanimi_id = s.fid)
            RETURNING 1){sales}
         SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM upd)"
    );
    let stmt = tx.prepare_cached(&sql).await?;
    let row = tx.query_one(&stmt, &[&sid, &fid, &fiyat, &lno]).await?;
    applied.inserted = row.get::<_, i64>(0) as u64;
    applied.updated = row.get::<_, i64>(1) as u64;
    Ok(applied)
}

pub(crate) async fn reconcile(
    tx: &Transaction<'_>,
    _ws: &WebSchema,
    keys: &[Vec<Val>],
    _policy: DeletePolicy,
) -> Result<Reconciled, tokio_postgres::Error> {
    let (mut kod, mut no) = (vec![], vec![]);
    for k in keys {
        if k.len() == 4 && k[2].i() == 0 && k[3].i() == 0 {
            kod.push(k[0].s().to_string());
            no.push(k[1].i() as i32);
        }
    }
    let stmt = tx
        .prepare_cached(
            "DELETE FROM urun_fiyat_listeleri d
             USING urun_fiyat_listeleri w
               JOIN int_kodmap_stok ms ON ms.web_stok_id = w.stok_id
               JOIN int_kodmap_fiyat_liste mf ON mf.web_fiyat_tanimi_id = w.fiyat_tanimi_id
               LEFT JOIN unnest($1::text[], $2::int[]) AS k(kod, no)
                 ON k.kod = ms.erp_stok_kod AND k.no = mf.erp_liste_sirano
             WHERE d.ctid = w.ctid AND k.kod IS NULL",
        )
        .await?;
    let n = tx.execute(&stmt, &[&kod, &no]).await?;
    Ok(Reconciled {
        deleted: n,
        ..Reconciled::default()
    })
}
