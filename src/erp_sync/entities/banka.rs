//! BANKALAR → `bankalar` (+ `int_kodmap_banka`), keyed by `ban_kod`; `banka_adi` = `ban_ismi`.
//! Identity: the mapping first, then `ban_kod`, else a new row.

use deadpool_postgres::Transaction;

use crate::erp_sync::types::{
    col, Applied, DeletePolicy, Entity, Kind, Mapped, Reconciled, Spec, Val, WebSchema,
};

use crate::erp_sync::upsert::{apply_named, reconcile_mapped, Named};

/// Mikro side of the bank sync.
pub static SPEC: Spec = Spec {
    entity: Entity::BANKA,
    table: "BANKALAR",
    recno: "ban_RECno",
    lastup: "ban_lastup_date",
    columns: &[col("ban_kod", Kind::Str), col("ban_ismi", Kind::Str)],
    key_columns: &[col("ban_kod", Kind::Str)],
    key: |v| v[0].s().to_string(),
    web_tables: &["bankalar", "int_kodmap_banka"],
};

pub(crate) const NAMED: Named = Named {
    web_name: "banka_adi",
    int_key: false,
    mapped: Mapped {
        web_table: "bankalar",
        web_code: "ban_kod",
        map_table: "int_kodmap_banka",
        map_web: "web_banka_id",
        map_erp: "erp_banka_kod",
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
    Banka,
    BANKA,
    "banka",
    ["bankalar", "banks"],
    "BANKALAR → `bankalar` (+ `int_kodmap_banka`).", mapped: NAMED.mapped
);
