//! STOK_SATIS_FIYAT_LISTE_TANIMLARI → `fiyat_tanimlari` (+ `int_kodmap_fiyat_liste`), keyed by
//! `sfl_sirano` = `sira_no`; `fiyat_adi` = `sfl_aciklama`. Identity: the mapping first, then
//! `sira_no`, else a new row.

use deadpool_postgres::Transaction;

use crate::erp_sync::types::{
    col, Applied, DeletePolicy, Entity, Kind, Mapped, Reconciled, Spec, Val, WebSchema,
};

use crate::erp_sync::upsert::{apply_named, reconcile_mapped_int, Named};

/// Mikro side of the price-list sync.
pub static SPEC: Spec = Spec {
    entity: Entity::FIYAT_TANIM,
    table: "STOK_SATIS_FIYAT_LISTE_TANIMLARI",
    recno: "sfl_RECno",
    lastup: "sfl_lastup_date",
    columns: &[col("sfl_sirano", Kind::Int), col("sfl_aciklama", Kind::Str)],
    key_columns: &[col("sfl_sirano", Kind::Int)],
    key: |v| v[0].i().to_string(),
    web_tables: &["fiyat_tanimlari", "int_kodmap_fiyat_liste"],
};

pub(crate) const NAMED: Named = Named {
    web_name: "fiyat_adi",
    int_key: true,
    mapped: Mapped {
        web_table: "fiyat_tanimlari",
        web_code: "sira_no",
        map_table: "int_kodmap_fiyat_liste",
        map_web: "web_fiyat_tanimi_id",
        map_erp: "erp_liste_sirano",
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
    let k: Vec<i32> = keys
        .iter()
        .map(|k| k.first().map(|v| v.i() as i32).unwrap_or_default())
        .collect();
    reconcile_mapped_int(tx, ws, &NAMED.mapped, &k, policy).await
}

erp_entity!(
    FiyatTanim,
    FIYAT_TANIM,
    "fiyat_tanim",
    ["fiyat_tanimlari", "fiyat_liste", "stok_satis_fiyat_liste_tanimlari", "price_lists"],
    "STOK_SATIS_FIYAT_LISTE_TANIMLARI → `fiyat_tanimlari` (+ `int_kodmap_fiyat_liste`).", mapped: NAMED.mapped
);
