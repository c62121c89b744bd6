//! KASALAR → `kasalar` (+ `int_kodmap_kasa`), keyed by `kas_kod` = `kasa_kodu`; `kasa_adi` = `kas_isim`.
//! Identity: the mapping first, then `kasa_kodu`, else a new row.

use deadpool_postgres::Transaction;

use crate::erp_sync::types::{
    col, Applied, DeletePolicy, Entity, Kind, Mapped, Reconciled, Spec, Val, WebSchema,
};

use crate::erp_sync::upsert::{apply_named, reconcile_mapped, Named};

/// Mikro side of the cash-box sync.
pub static SPEC: Spec = Spec {
    entity: Entity::KASA,
    table: "KASALAR",
    recno: "kas_RECno",
    lastup: "kas_lastup_date",
    columns: &[col("kas_kod", Kind::Str), col("kas_isim", Kind::Str)],
    key_columns: &[col("kas_kod", Kind::Str)],
    key: |v| v[0].s().to_string(),
    web_tables: &["kasalar", "int_kodmap_kasa"],
};

pub(crate) const NAMED: Named = Named {
    web_name: "kasa_adi",
    int_key: false,
    mapped: Mapped {
        web_table: "kasalar",
        web_code: "kasa_kodu",
        map_table: "int_kodmap_kasa",
        map_web: "web_kasa_id",
        map_erp: "erp_kasa_kod",
    },
};

pub(crate) async fn apply(
    tx: &Transaction<'_>,
    ws: &WebSchema,
    rows: &[&[Val]],
) -> Result<Applied, tokio_postgres::Error> {
    apply_named(tx, ws, &NAMED, rows).await
}

pub(crate) async fn reconcile(
    tx: &Transaction<'_>,
    ws: &WebSchema,
    keys: &[Vec<Val>],
    policy: DeletePolicy,
) -> Result<Reconciled, tokio_postgres::Error> {
    reconcile_mapped(tx, ws, &NAMED.mapped, &super::text_keys(keys), policy).await
}

erp_entity!(
    Kasa,
    KASA,
    "kasa",
    ["kasalar", "cash_boxes"],
    "KASALAR → `kasalar` (+ `int_kodmap_kasa`).", mapped: NAMED.mapped
);
