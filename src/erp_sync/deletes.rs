//! Rows deleted in Mikro: found by comparing keys, never by triggers in Mikro.
//!
//! Why key comparison: Mikro has no delete log and mikro-sync must not install triggers there.
//! Reading every key is cheap at these sizes (a few thousand to a hundred thousand short codes)
//! and runs on full runs and every `delete_check_every` otherwise.
//!
//! Safety: if Mikro returns no keys at all for a table while the web has mapped rows, nothing is
//! deactivated (a wrong database or an emptied table must not wipe the shop); a warning says so.

use tracing::warn;

use super::types::{DeletePolicy, Reconciled, Spec};
use super::upsert::Ctx;
use super::{read, SyncError};
use crate::db::ErpClient;

/// Compares keys and applies the delete policy for one entity, in one web transaction.
/// `known_keys`: every Mikro key when the caller just read the whole table (full run).
pub async fn reconcile(
    ctx: &mut Ctx,
    erp: &mut ErpClient,
    spec: &Spec,
    policy: DeletePolicy,
    known_keys: Option<Vec<Vec<read::Val>>>,
) -> Result<Reconciled, SyncError> {
    let keys = match known_keys {
        Some(k) => k,
        None => read::read_keys(erp, spec).await?,
    };
    if keys.is_empty() {
        warn!(
            table = spec.table,
            "Mikro returned no rows; skipping delete detection for safety"
        );
        return Ok(Reconciled::default());
    }
    let c = || format!("reconciling {} deletes", spec.entity);
    let (client, ws) = ctx.parts(spec).await?;
    let mut tx = client.transaction().await.map_err(SyncError::web(c()))?;
    tx.batch_execute("SET LOCAL mikro_sync.origin = 'erp'")
        .await
        .map_err(SyncError::web(c()))?;
    let out = {
        let sp = tx
            .savepoint("erp_sync_reconcile")
            .await
            .map_err(SyncError::web(c()))?;
        let r = spec
            .entity
            .def()
            .reconcile(&sp, ws, &keys, policy)
            .await
            .map_err(SyncError::web(c()))?;
        sp.commit().await.map_err(SyncError::web(c()))?;
        r
    };
    tx.commit().await.map_err(SyncError::web(c()))?;
    Ok(out)
}
