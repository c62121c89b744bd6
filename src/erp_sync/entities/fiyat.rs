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

use crate::erp_sync::types::{
    col, Applied, DeletePolicy, Entity, Kind, Reconciled, Spec, Val, WebSchema,
};

/// The Mikro price list whose prices are the product's default sales price on the web.
pub const SALES_PRICE_LIST: i32 = 1;

/// Mikro side of the price sync.
pub static SPEC: Spec = Spec {
    entity: Entity::FIYAT,
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
    rows: &[&[Val]],
) -> Result<Applied, tokio_postgres::Error> {
    let mut applied = Applied::default();
    let mut idx = vec![];
    let (mut kod, mut no) = (vec![], vec![]);
    for (i, r) in rows.iter().enumerate() {
        let v = *r;
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
    let fiyat: Vec<f64> = idx.iter().map(|&i| rows[i][4].f()).collect();
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
                FROM ok s WHERE s.no = {SALES_PRICE_LIST} AND st.id = s.sid
                 AND st.satis_fiyati IS DISTINCT FROM s.fiyat{c} RETURNING 1)",
            c = ws.cast("stoklar", "satis_fiyati")
        )
    } else {
        String::new()
    };
    // One statement: resolve product and list ids (the list through its mapping first, then
    // `sira_no`), write what resolved, and hand back the positions that did not.
    let sql = format!(
        "WITH lists AS (
            SELECT DISTINCT ON (no) no, id FROM (
                SELECT m.erp_liste_sirano AS no, f.id, 0 AS pri
                  FROM int_kodmap_fiyat_liste m JOIN fiyat_tanimlari f ON f.id = m.web_fiyat_tanimi_id
                UNION ALL
                SELECT f.sira_no, f.id, 1 FROM fiyat_tanimlari f) x
            ORDER BY no, pri),
         src AS (
            SELECT s.i, s.no, s.fiyat{cast} AS fiyat, w.id AS sid, l.id AS fid
            FROM unnest($1::text[], $2::int[], $3::float8[]) WITH ORDINALITY AS s(kod, no, fiyat, i)
            LEFT JOIN stoklar w ON w.stok_kodu = s.kod
            LEFT JOIN lists l ON l.no = s.no),
         ok AS (SELECT * FROM src WHERE sid IS NOT NULL AND fid IS NOT NULL),
         upd AS (
            UPDATE urun_fiyat_listeleri w SET fiyat = s.fiyat{touch}
            FROM ok s WHERE w.stok_id = s.sid AND w.fiyat_tanimi_id = s.fid
              AND w.fiyat IS DISTINCT FROM s.fiyat
            RETURNING 1),
         ins AS (
            INSERT INTO urun_fiyat_listeleri (stok_id, fiyat_tanimi_id, fiyat)
            SELECT s.sid, s.fid, s.fiyat FROM ok s
            WHERE NOT EXISTS (SELECT 1 FROM urun_fiyat_listeleri w
                              WHERE w.stok_id = s.sid AND w.fiyat_tanimi_id = s.fid)
            RETURNING 1){sales}
         SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM upd),
                (SELECT array_agg(i::int) FROM src WHERE sid IS NULL),
                (SELECT array_agg(i::int) FROM src WHERE sid IS NOT NULL AND fid IS NULL)"
    );
    let stmt = tx.prepare_cached(&sql).await?;
    let row = tx.query_one(&stmt, &[&kod, &no, &fiyat]).await?;
    applied.inserted = row.get::<_, i64>(0) as u64;
    applied.updated = row.get::<_, i64>(1) as u64;
    let no_stock: Option<Vec<i32>> = row.get(2);
    let no_list: Option<Vec<i32>> = row.get(3);
    for j in no_stock.unwrap_or_default() {
        let j = (j - 1) as usize;
        applied
            .rejects
            .push((idx[j], format!("unknown stock `{}` on the web", kod[j])));
    }
    for j in no_list.unwrap_or_default() {
        let j = (j - 1) as usize;
        applied
            .rejects
            .push((idx[j], format!("unknown price list {} on the web", no[j])));
    }
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

erp_entity!(
    Fiyat,
    FIYAT,
    "fiyat",
    [
        "fiyatlar",
        "urun_fiyat_listeleri",
        "stok_satis_fiyat_listeleri",
        "prices"
    ],
    "STOK_SATIS_FIYAT_LISTELERI → `urun_fiyat_listeleri`."
);
