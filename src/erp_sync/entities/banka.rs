//! BANKALAR → `bankalar` (+ `int_kodmap_banka`), keyed by `ban_kod`; `banka_adi` = `ban_ismi`.
//! Identity: the mapping first, then `ban_kod`, else a new row.

use deadpool_postgres::Transaction;
use futures::future::BoxFuture;

use crate::erp_sync::types::{
    col, Applied, DeletePolicy, Entity, ErpEntity, Kind, Mapped, Reconciled, Spec, Val, WebSchema,
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

/// The entity (see [`Entity::BANKA`]).
pub struct Banka;

impl Entity {
    /// BANKALAR → `bankalar` (+ `int_kodmap_banka`).
    pub const BANKA: Entity = Entity(&Banka);
}

impl ErpEntity for Banka {
    fn name(&self) -> &'static str {
        "banka"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &["bankalar", "banks"]
    }

    fn spec(&self) -> &'static Spec {
        &SPEC
    }

    fn mapped(&self) -> Option<Mapped> {
        Some(NAMED.mapped)
    }

    fn apply<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        ws: &'a WebSchema,
        rows: &'a [&'a [Val]],
    ) -> BoxFuture<'a, Result<Applied, tokio_postgres::Error>> {
        Box::pin(apply(tx, ws, rows))
    }

    fn reconcile<'a>(
        &'a self,
        tx: &'a Transaction<'a>,
        ws: &'a WebSchema,
        keys: &'a [Vec<Val>],
        policy: DeletePolicy,
    ) -> BoxFuture<'a, Result<Reconciled, tokio_postgres::Error>> {
        Box::pin(reconcile(tx, ws, keys, policy))
    }
}
