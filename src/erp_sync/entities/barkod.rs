//! BARKOD_TANIMLARI → `urun_barkodlari`, keyed by `bar_kodu` = `barkod`.
//!
//! `stok_id` is resolved by `bar_stokkodu` = `stoklar.stok_kodu`; a barcode for a stock the web
//! does not know is rejected (and retried next run, e.g. after the product arrives).
//! `barkod_tipi` = `bar_barkodtipi` as text (Mikro's numeric type code; the reference web column
//! is text); `aktif` = `bar_iptal = 0`. A barcode that moves to another stock in Mikro moves on
//! the web. Deletes: web barcodes of ERP products (mapped in `int_kodmap_stok`) that Mikro no
//! longer has are deactivated or deleted per policy.

use deadpool_postgres::Transaction;
use uuid::Uuid;

use super::{col, Applied, Reconciled, Spec};
use crate::erp_sync::read::{Kind, MikroRow, Val};
use crate::erp_sync::upsert::WebSchema;
use crate::erp_sync::{DeletePolicy, Entity};

/// Mikro side of the barcode sync.
pub static SPEC: Spec = Spec {
    entity: Entity::Barkod,
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
    rows: &[&MikroRow],
) -> Result<Applied, tokio_postgres::Error> {
    let mut applied = Applied::default();
    let (mut idx, mut stokkod) = (vec![], vec![]);
    for (i, r) in rows.iter().enumerate() {
        if r.vals[0].s().trim().is_empty() {
            applied.rejects.push((i, "empty bar_kodu".into()));
            continue;
        }
        idx.push(i);
        stokkod.push(r.vals[1].s().to_string());
    }
    if idx.is_empty() {
        return Ok(applied);
    }
    let resolve = tx
        .prepare_cached(
            "SELECT (SELECT w.id FROM stoklar w WHERE w.stok_kodu = s.kod LIMIT 1)
             FROM unnest($1::text[]) WITH ORDINALITY AS s(kod, i) ORDER BY s.i",
        )
        .await?;
    let ids = tx.query(&resolve, &[&stokkod]).await?;
    let (mut kod, mut sid, mut tip, mut aktif) = (vec![], vec![], vec![], vec![]);
    for (j, r) in ids.iter().enumerate() {
        let i = idx[j];
        let s: Option<Uuid> = r.get(0);
        match s {
            Some(s) => {
                let v = &rows[i].vals;
                kod.push(v[0].s().to_string());
                sid.push(s);
                tip.push(v[2].i().to_string());
                aktif.push(v[3].i() == 0);
            }
            None => applied
                .rejects
                .push((i, format!("barcode for unknown stock `{}`", stokkod[j]))),
        }
    }
    if kod.is_empty() {
        return Ok(applied);
    }
    let t = "urun_barkodlari";
    let tip_cast = ws.cast(t, "barkod_tipi");
    let has_aktif = ws.has(t, "aktif");
    let sql = format!(
        "WITH src AS (
            SELECT s.kod, s.sid, s.tip{tip_cast} AS tip, s.aktif
            FROM unnest($1::text[], $2::uuid[], $3::text[], $4::bool[]) AS s(kod, sid, tip, aktif)),
         upd AS (
            UPDATE urun_barkodlari w SET stok_id = s.sid, barkod_tipi = s.tip{ua}
            FROM src s WHERE w.barkod = s.kod
              AND (w.stok_id, w.barkod_tipi{wa}) IS DISTINCT FROM (s.sid, s.tip{sa})
            RETURNING 1),
         ins AS (
            INSERT INTO urun_barkodlari (barkod, stok_id, barkod_tipi{ca})
            SELECT s.kod, s.sid, s.tip{sa} FROM src s
            WHERE NOT EXISTS (SELECT 1 FROM urun_barkodlari w WHERE w.barkod = s.kod)
            RETURNING 1)
         SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM upd)",
        ua = if has_aktif { ", aktif = s.aktif" } else { "" },
        wa = if has_aktif { ", w.aktif" } else { "" },
        sa = if has_aktif { ", s.aktif" } else { "" },
        ca = if has_aktif { ", aktif" } else { "" },
    );
    let stmt = tx.prepare_cached(&sql).await?;
    let row = tx.query_one(&stmt, &[&kod, &sid, &tip, &aktif]).await?;
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
