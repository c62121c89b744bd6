//! Writing pages into the web database: one transaction per page, set-based statements, bad rows
//! isolated, retry list and watermark in the same transaction.
//!
//! Why bisect on data errors: the set-based statement is fast but all-or-nothing; a single value
//! PostgreSQL refuses (too long for a column, a constraint of the shop's own) would otherwise
//! stall the whole entity. The page is applied under a savepoint; on a data error (SQLSTATE class
//! 22 or 23) the half that failed is retried in halves until the offending rows stand alone, are
//! reported with PostgreSQL's message and go to the retry list. Other errors (connection,
//! permission, a trigger raising) fail the run, leaving the watermark where it was.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use deadpool_postgres::{Object, Transaction};

use super::read::{self, BadRow, MikroRow, Page};
use super::report::{PageOutcome, RejectedRow};
use super::types::{Applied, DeletePolicy, Entity, Mapped, Reconciled, Spec, Val, WebSchema};
use super::{watermark, SyncError};
use crate::db::{ErpClient, WebPool};

/// A mapped table with one name column (price lists, banks, cash boxes).
#[derive(Debug, Clone, Copy)]
pub struct Named {
    /// The web column that receives the Mikro name.
    pub web_name: &'static str,
    /// The ERP key is an integer (price list number) rather than a code.
    pub int_key: bool,
    /// Table, code column and mapping.
    pub mapped: Mapped,
}

/// Upsert for [`Named`] tables: identity through the mapping first, then the code column, else
/// a new row; the name and code are kept equal to Mikro's; mappings created for every row.
/// Rows: `vals[0]` = key, `vals[1]` = name.
pub async fn apply_named(
    tx: &Transaction<'_>,
    ws: &WebSchema,
    n: &Named,
    rows: &[&[Val]],
) -> Result<Applied, tokio_postgres::Error> {
    let mut applied = Applied::default();
    let (mut ik, mut tk, mut name) = (vec![], vec![], vec![]);
    for (i, r) in rows.iter().enumerate() {
        let (k, nm) = (&r[0], r[1].s().trim().to_string());
        if n.int_key {
            ik.push(k.i() as i32);
        } else {
            if k.s().trim().is_empty() {
                applied.rejects.push((i, "empty code".into()));
                continue;
            }
            tk.push(k.s().to_string());
        }
        name.push(if nm.is_empty() {
            if n.int_key {
                k.i().to_string()
            } else {
                k.s().to_string()
            }
        } else {
            nm
        });
    }
    if name.is_empty() {
        return Ok(applied);
    }
    let m = &n.mapped;
    let _ = ws;
    let sql = format!(
        "WITH src AS (SELECT * FROM unnest($1::{kt}[], $2::text[]) AS s(kod, adi)),
         tgt AS (
            SELECT s.kod, s.adi, COALESCE(
                (SELECT w.id FROM {t} w JOIN {mt} x ON x.{mw} = w.id WHERE x.{me} = s.kod LIMIT 1),
                (SELECT w.id FROM {t} w WHERE w.{c} = s.kod LIMIT 1)) AS id
            FROM src s),
         upd AS (
            UPDATE {t} w SET {nm} = g.adi, {c} = g.kod FROM tgt g
            WHERE w.id = g.id AND (w.{nm}, w.{c}) IS DISTINCT FROM (g.adi, g.kod)
            RETURNING w.id),
         ins AS (
            INSERT INTO {t} ({nm}, {c}) SELECT g.adi, g.kod FROM tgt g WHERE g.id IS NULL
            RETURNING id, {c}),
         map AS (
            INSERT INTO {mt} ({mw}, {me})
            SELECT i.id, i.{c} FROM ins i
            UNION ALL
            SELECT g.id, g.kod FROM tgt g WHERE g.id IS NOT NULL
            ON CONFLICT DO NOTHING
            RETURNING 1)
         SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM upd)",
        kt = if n.int_key { "int" } else { "text" },
        t = m.web_table,
        mt = m.map_table,
        mw = m.map_web,
        me = m.map_erp,
        c = m.web_code,
        nm = n.web_name,
    );
    let stmt = tx.prepare_cached(&sql).await?;
    let row = if n.int_key {
        tx.query_one(&stmt, &[&ik, &name]).await?
    } else {
        tx.query_one(&stmt, &[&tk, &name]).await?
    };
    applied.inserted = row.get::<_, i64>(0) as u64;
    applied.updated = row.get::<_, i64>(1) as u64;
    Ok(applied)
}

async fn deactivate_ids(
    tx: &Transaction<'_>,
    table: &str,
    ids: &[uuid::Uuid],
) -> Result<u64, tokio_postgres::Error> {
    let sql = format!("UPDATE {table} SET aktif = false WHERE id = ANY($1) AND aktif");
    tx.execute(sql.as_str(), &[&ids]).await
}

async fn reconcile_ids(
    tx: &Transaction<'_>,
    ws: &WebSchema,
    m: &Mapped,
    gone: Vec<uuid::Uuid>,
    policy: DeletePolicy,
) -> Result<Reconciled, tokio_postgres::Error> {
    let mut out = Reconciled::default();
    if gone.is_empty() {
        return Ok(out);
    }
    let has_aktif = ws.has(m.web_table, "aktif");
    if policy == DeletePolicy::Delete {
        // Delete one by one under a savepoint: a row still referenced (old sales point at the
        // customer) cannot go; it is deactivated where possible, otherwise reported.
        let mut kept = vec![];
        let del_map = format!("DELETE FROM {} WHERE {} = $1", m.map_table, m.map_web);
        let del_row = format!("DELETE FROM {} WHERE id = $1", m.web_table);
        for id in gone {
            tx.batch_execute("SAVEPOINT erp_sync_delete_one").await?;
            let res = async {
                tx.execute(del_map.as_str(), &[&id]).await?;
                tx.execute(del_row.as_str(), &[&id]).await
            }
            .await;
            match res {
                Ok(n) => {
                    tx.batch_execute("RELEASE SAVEPOINT erp_sync_delete_one")
                        .await?;
                    out.deleted += n;
                }
                Err(e) if is_data_error(&e) => {
                    tx.batch_execute("ROLLBACK TO SAVEPOINT erp_sync_delete_one")
                        .await?;
                    kept.push(id);
                }
                Err(e) => return Err(e),
            }
        }
        if !kept.is_empty() {
            if has_aktif {
                let n = kept.len() as u64;
                let d = deactivate_ids(tx, m.web_table, &kept).await?;
                out.deactivated += d;
                out.missing += n - d.min(n);
            } else {
                out.missing += kept.len() as u64;
            }
        }
    } else if has_aktif {
        out.deactivated = deactivate_ids(tx, m.web_table, &gone).await?;
    } else {
        out.missing = gone.len() as u64;
    }
    Ok(out)
}

/// Keeps mappings in step with the web: a mapping whose web row the web app deleted would
/// block the ERP code from being mapped again (codes are unique in the mapping), so it goes.
/// Runs with the periodic delete check, before the entity's pages, so a web row deleted on
/// the web and re-created by the same run gets its mapping.
pub async fn drop_dangling_mappings(ctx: &mut Ctx, spec: &Spec) -> Result<u64, SyncError> {
    let Some(m) = spec.entity.def().mapped() else {
        return Ok(0);
    };
    let (client, _) = ctx.parts(spec).await?;
    let sql = format!(
        "DELETE FROM {mt} x WHERE NOT EXISTS (SELECT 1 FROM {t} w WHERE w.id = x.{mw})",
        mt = m.map_table,
        t = m.web_table,
        mw = m.map_web
    );
    client
        .execute(sql.as_str(), &[])
        .await
        .map_err(SyncError::web("removing mappings of deleted web rows"))
}

/// Delete reconciliation for a mapped table with text codes: web rows whose mapping names a
/// code Mikro no longer has.
pub async fn reconcile_mapped(
    tx: &Transaction<'_>,
    ws: &WebSchema,
    m: &Mapped,
    keys: &[String],
    policy: DeletePolicy,
) -> Result<Reconciled, tokio_postgres::Error> {
    reconcile_mapped_keys(tx, ws, m, keys, "text", policy).await
}

/// As [`reconcile_mapped`] for integer keys (price lists).
pub async fn reconcile_mapped_int(
    tx: &Transaction<'_>,
    ws: &WebSchema,
    m: &Mapped,
    keys: &[i32],
    policy: DeletePolicy,
) -> Result<Reconciled, tokio_postgres::Error> {
    reconcile_mapped_keys(tx, ws, m, keys, "int", policy).await
}

/// The shared body of [`reconcile_mapped`] and [`reconcile_mapped_int`]: `pg_type` is the
/// PostgreSQL element type of the key array (`text` or `int`).
async fn reconcile_mapped_keys<K: tokio_postgres::types::ToSql + Sync>(
    tx: &Transaction<'_>,
    ws: &WebSchema,
    m: &Mapped,
    keys: &[K],
    pg_type: &str,
    policy: DeletePolicy,
) -> Result<Reconciled, tokio_postgres::Error> {
    let sql = format!(
        "SELECT x.{mw} FROM {mt} x JOIN {t} w ON w.id = x.{mw}
           LEFT JOIN unnest($1::{pg_type}[]) AS k(kod) ON k.kod = x.{me}
          WHERE k.kod IS NULL",
        mw = m.map_web,
        mt = m.map_table,
        me = m.map_erp,
        t = m.web_table
    );
    let gone: Vec<uuid::Uuid> = tx
        .query(sql.as_str(), &[&keys])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    reconcile_ids(tx, ws, m, gone, policy).await
}

/// A data problem of particular rows (SQLSTATE class 22 data exception, 23 integrity
/// violation), as opposed to a failure of the run.
pub fn is_data_error(e: &tokio_postgres::Error) -> bool {
    e.code()
        .map(|c| {
            let c = c.code();
            c.starts_with("22") || c.starts_with("23")
        })
        .unwrap_or(false)
}

/// The web side of one run: a dedicated connection and the schema (read lazily, so a run with
/// nothing to write does not pay for the catalog query).
pub struct Ctx {
    client: Object,
    schema: Option<WebSchema>,
    /// The web tables the schema is (to be) read for.
    tables: Vec<&'static str>,
}

impl Ctx {
    /// Takes a connection from the pool for the whole run.
    pub async fn new(pool: &WebPool) -> Result<Ctx, SyncError> {
        let client = pool
            .get()
            .await
            .map_err(|e| SyncError::WebPool(crate::db::pool_error_text(&e)))?;
        Ok(Ctx {
            client,
            schema: None,
            tables: Vec::new(),
        })
    }

    /// Names the entities this run covers, so their web schema is read in one query.
    pub fn expect(&mut self, entities: &[Entity]) {
        self.tables.extend(Entity::web_tables(entities));
    }

    /// The connection (for watermark reads outside a page transaction).
    pub fn client(&self) -> &Object {
        &self.client
    }

    /// Loads the schema if needed; returns the connection and the schema together (the
    /// connection mutably, for transactions).
    pub async fn parts(&mut self, spec: &Spec) -> Result<(&mut Object, &WebSchema), SyncError> {
        let missing = spec.web_tables.iter().any(|t| !self.tables.contains(t));
        if missing {
            self.tables.extend(spec.web_tables.iter().copied());
        }
        if self.schema.is_none() || missing {
            self.schema = Some(WebSchema::load(&self.client, &self.tables).await?);
        }
        let Ctx { client, schema, .. } = self;
        match schema {
            Some(ws) => {
                ws.require(spec)?;
                Ok((client, &*ws))
            }
            None => Err(SyncError::WebSchema("schema not loaded".into())),
        }
    }
}

/// Deduplicates by key (the last occurrence wins: rows are in (lastup, RECno) order, so the
/// last is Mikro's latest state), keeping (lastup, RECno) order. Why: one statement cannot
/// update the same web row twice, and the old tool's batches broke on exactly that.
fn dedup<'a>(spec: &Spec, rows: &'a [MikroRow]) -> Vec<&'a MikroRow> {
    let mut last: HashMap<String, usize> = HashMap::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        last.insert((spec.key)(&r.vals), i);
    }
    if last.len() == rows.len() {
        return rows.iter().collect();
    }
    let mut keep: Vec<usize> = last.into_values().collect();
    keep.sort_unstable();
    keep.into_iter().map(|i| &rows[i]).collect()
}

/// Applies rows in one transaction with bad-row isolation; optionally stores the watermark.
async fn apply_rows(
    client: &mut Object,
    ws: &WebSchema,
    spec: &Spec,
    rows: &[&MikroRow],
    bad: &[BadRow],
    watermark_to: Option<((read::Stamp, i32), Option<NaiveDateTime>)>,
) -> Result<PageOutcome, SyncError> {
    let entity = spec.entity;
    let ctx = || format!("applying a {entity} page");
    let mut out = PageOutcome::default();
    let mut tx = client.transaction().await.map_err(SyncError::web(ctx()))?;
    tx.batch_execute("SET LOCAL mikro_sync.origin = 'erp'")
        .await
        .map_err(SyncError::web(ctx()))?;

    let vals: Vec<&[Val]> = rows.iter().map(|r| r.vals.as_slice()).collect();
    let mut rejected_idx: Vec<(usize, String)> = vec![];
    let mut stack = vec![(0usize, rows.len())];
    while let Some((a, b)) = stack.pop() {
        if a >= b {
            continue;
        }
        let sp = tx
            .savepoint("erp_sync_page")
            .await
            .map_err(SyncError::web(ctx()))?;
        match entity.def().apply(&sp, ws, &vals[a..b]).await {
            Ok(ap) => {
                sp.commit().await.map_err(SyncError::web(ctx()))?;
                out.inserted += ap.inserted;
                out.updated += ap.updated;
                out.skipped += ap.skipped;
                rejected_idx.extend(ap.rejects.into_iter().map(|(i, r)| (a + i, r)));
            }
            Err(e) if is_data_error(&e) => {
                sp.rollback().await.map_err(SyncError::web(ctx()))?;
                if b - a == 1 {
                    rejected_idx.push((a, crate::db::pg_error_text(&e)));
                } else {
                    let mid = a + (b - a) / 2;
                    stack.push((mid, b));
                    stack.push((a, mid));
                }
            }
            Err(e) => return Err(SyncError::web(ctx())(e)),
        }
    }

    for (i, reason) in rejected_idx {
        let r = rows[i];
        out.rejects.push(RejectedRow {
            entity,
            recno: r.recno,
            key: (spec.key)(&r.vals),
            reason,
        });
    }
    for b in bad {
        out.rejects.push(RejectedRow {
            entity,
            recno: b.recno,
            key: b.key.clone(),
            reason: b.reason.clone(),
        });
    }
    // Retry list: record what failed, forget what applied.
    let ok_recnos: Vec<i32> = {
        let failed: std::collections::HashSet<i32> = out.rejects.iter().map(|r| r.recno).collect();
        rows.iter()
            .map(|r| r.recno)
            .filter(|n| !failed.contains(n))
            .collect()
    };
    watermark::retry_record(&tx, entity, &out.rejects)
        .await
        .map_err(SyncError::web(ctx()))?;
    out.retried = watermark::retry_clear(&tx, entity, &ok_recnos)
        .await
        .map_err(SyncError::web(ctx()))?;
    if let Some((last, checked_until)) = watermark_to {
        watermark::store(&tx, entity, last, checked_until)
            .await
            .map_err(SyncError::web(ctx()))?;
    }
    tx.commit().await.map_err(SyncError::web(ctx()))?;
    Ok(out)
}

/// Applies one page read from Mikro and advances the watermark to its last row, all in one
/// transaction.
pub async fn apply_page(
    ctx: &mut Ctx,
    spec: &Spec,
    page: &Page,
    checked_until: Option<NaiveDateTime>,
) -> Result<PageOutcome, SyncError> {
    let (client, ws) = ctx.parts(spec).await?;
    let rows = dedup(spec, &page.rows);
    let wm = page.last.map(|l| (l, checked_until));
    apply_rows(client, ws, spec, &rows, &page.bad, wm).await
}

/// Re-reads the rows in the retry list by RECno and applies them (without touching the
/// watermark). Rows gone from Mikro leave the list.
pub async fn retry_pending(
    ctx: &mut Ctx,
    erp: &mut ErpClient,
    spec: &Spec,
) -> Result<PageOutcome, SyncError> {
    let recnos = watermark::retry_list(ctx.client(), spec.entity).await?;
    if recnos.is_empty() {
        return Ok(PageOutcome::default());
    }
    let mut rows = vec![];
    let mut bad = vec![];
    let mut found = std::collections::HashSet::new();
    for r in read::read_by_recnos(erp, spec, &recnos).await? {
        match r {
            Ok(r) => {
                found.insert(r.recno);
                rows.push(r)
            }
            Err(b) => {
                found.insert(b.recno);
                bad.push(b)
            }
        }
    }
    let gone: Vec<i32> = recnos.into_iter().filter(|n| !found.contains(n)).collect();
    if !gone.is_empty() {
        watermark::retry_clear(ctx.client(), spec.entity, &gone)
            .await
            .map_err(SyncError::web("clearing the retry list"))?;
    }
    let (client, ws) = ctx.parts(spec).await?;
    let refs = dedup(spec, &rows);
    apply_rows(client, ws, spec, &refs, &bad, None).await
}
