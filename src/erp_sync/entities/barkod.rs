//! BARKOD_TANIMLARI → `urun_barkodlari`, keyed by `bar_kodu` = `barkod`.
//!
//! `stok_id` is resolved by `bar_stokkodu` = `stoklar.stok_kodu`; a barcode for a stock the web
//! does not know is rejected (and retried next run, e.g. after the product arrives).
//! `barkod_tipi` = `bar_barkodtipi` as text (Mikro's numeric type code; the reference web column
//! is text); `aktif` = `bar_iptal = 0`. A barcode that moves to another stock in Mikro moves on
//! the web. Deletes: web barcodes of ERP products (mapped in `int_kodmap_stok`) that Mikro no
//! longer has are deactivated or deleted per policy.

use deadpool_postgres::Transaction;

use crate::erp_sync::types::{
    col, Applied, DeletePolicy, Entity, Kind, Reconciled, Spec, Val, WebSchema,
};

/// Mikro side of the barcode sync.
pub static SPEC: Spec = Spec {
    entity: Entity::BARKOD,
    table: "BARKOD_TANIMLARI",
    recno: "bar_RECno",
    lastup: "bar_lastup_date",
    columns: &[
        col("bar_kodu", Kind::Str),
        col("bar_stokkodu", Kind::Str),
        col("bar_barkodtipi", Kind::Int),
        col("bar_iptal", Kind::Int),
    ],
    key_columns: &[col("bar_kodu", Kind::Str)],
    key: |v| v[0].s().to_string(),
    web_tables: &["urun_barkodlari", "stoklar", "int_kodmap_stok"],
};

pub(crate) async fn apply(
    tx: &Transaction<'_>,
    ws: &WebSchema,
    rows: &[&[Val]],
) -> Result<Applied, tokio_postgres::Error> {
    let mut applied = Applied::default();
    let (mut idx, mut stokkod) = (vec![], vec![]);
    for (i, r) in rows.iter().enumerate() {
        if r[0].s().trim().is_empty() {
            applied.rejects.push((i, "empty bar_kodu".into()));
            continue;
        }
        idx.push(i);
        stokkod.push(r[1].s().to_string());
    }
    if idx.is_empty() {
        return Ok(applied);
    }
    let kod: Vec<String> = idx.iter().map(|&i| rows[i][0].s().to_string()).collect();
    let tip: Vec<String> = idx.iter().map(|&i| rows[i][2].i().to_string()).collect();
    let aktif: Vec<bool> = idx.iter().map(|&i| rows[i][3].i() == 0).collect();
    let t = "urun_barkodlari";
    let tip_cast = ws.cast(t, "barkod_tipi");
    let has_aktif = ws.has(t, "aktif");
    // One statement: resolve the product by code, write what resolved, hand back the rest.
    let sql = format!(
        "WITH src AS (
            SELECT s.i, s.kod, w.id AS sid, s.tip{tip_cast} AS tip, s.aktif
            FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[]) WITH ORDINALITY
                 AS s(kod, stok, tip, aktif, i)
            LEFT JOIN stoklar w ON w.stok_kodu = s.stok),
         ok AS (SELECT * FROM src WHERE sid IS NOT NULL),
         upd AS (
            UPDATE urun_barkodlari w SET stok_id = s.sid, barkod_tipi = s.tip{ua}
            FROM ok s WHERE w.barkod = s.kod
              AND (w.stok_id, w.barkod_tipi{wa}) IS DISTINCT FROM (s.sid, s.tip{sa})
            RETURNING 1),
         ins AS (
            INSERT INTO urun_barkodlari (barkod, stok_id, barkod_tipi{ca})
            SELECT s.kod, s.sid, s.tip{sa} FROM ok s
            WHERE NOT EXISTS (SELECT 1 FROM urun_barkodlari w WHERE w.barkod = s.kod)
            RETURNING 1)
         SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM upd),
                (SELECT array_agg(i::int) FROM src WHERE sid IS NULL)",
        ua = if has_aktif { ", aktif = s.aktif" } else { "" },
        wa = if has_aktif { ", w.aktif" } else { "" },
        sa = if has_aktif { ", s.aktif" } else { "" },
        ca = if has_aktif { ", aktif" } else { "" },
    );
    let stmt = tx.prepare_cached(&sql).await?;
    let row = tx.query_one(&stmt, &[&kod, &stokkod, &tip, &aktif]).await?;
    applied.inserted = row.get::<_, i64>(0) as u64;
    applied.updated = row.get::<_, i64>(1) as u64;
    let missing: Option<Vec<i32>> = row.get(2);
    for j in missing.unwrap_or_default() {
        let j = (j - 1) as usize;
        applied.rejects.push((
            idx[j],
            format!("barcode for unknown stock `{}`", stokkod[j]),
        ));
    }
    Ok(applied)
}

pub(crate) async fn reconcile(
    tx: &Transaction<'_>,
    ws: &WebSchema,
    keys: &[Vec<Val>],
    policy: DeletePolicy,
) -> Result<Reconciled, tokio_postgres::Error> {
    let k = super::text_keys(keys);
    let gone = "SELECT w.id FROM urun_barkodlari w
                  JOIN int_kodmap_stok ms ON ms.web_stok_id = w.stok_id
                  LEFT JOIN unnest($1::text[]) AS k(kod) ON k.kod = w.barkod
                 WHERE k.kod IS NULL";
    let mut out = Reconciled::default();
    if policy == DeletePolicy::Delete || !ws.has("urun_barkodlari", "aktif") {
        if policy == DeletePolicy::Delete {
            let stmt = tx
                .prepare_cached(&format!("DELETE FROM urun_barkodlari WHERE id IN ({gone})"))
                .await?;
            out.deleted = tx.execute(&stmt, &[&k]).await?;
        } else {
            let stmt = tx
                .prepare_cached(&format!("SELECT count(*) FROM ({gone}) g"))
                .await?;
            out.missing = tx.query_one(&stmt, &[&k]).await?.get::<_, i64>(0) as u64;
        }
    } else {
        let stmt = tx
            .prepare_cached(&format!(
                "UPDATE urun_barkodlari SET aktif = false WHERE aktif AND id IN ({gone})"
            ))
            .await?;
        out.deactivated = tx.execute(&stmt, &[&k]).await?;
    }
    Ok(out)
}

erp_entity!(
    Barkod,
    BARKOD,
    "barkod",
    [
        "barkodlar",
        "urun_barkodlari",
        "barkod_tanimlari",
        "barcodes"
    ],
    "BARKOD_TANIMLARI → `urun_barkodlari`."
);
