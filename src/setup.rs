//! `mikro-sync setup`: installs mikro-sync's objects in the web database, and (`--erp`) the
//! ledger table in the Mikro database.
//!
//! The web install is a list of versioned SQL files (`sql/web/NNN_*.sql`, embedded with
//! `include_str!`). Each file is idempotent; `mikro_sync_schema_version` records what was
//! applied with a checksum, so a second run changes nothing and an edited file is re-applied.
//! Concurrent setups serialise on an advisory lock. The report says what was done: the queue and
//! its row count, each trigger and its table.
//!
//! Files 001–009 are the queue's (this module), 010–019 the ERP→web sync's; a test checks that
//! every file in `sql/web/` is listed in [`WEB_MIGRATIONS`].

use std::fmt;

use crate::db::ErpClient;

/// One versioned install file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The `NNN` prefix; applied in this order.
    pub version: i32,
    /// The file name (recorded, shown in the report).
    pub name: &'static str,
    /// The SQL text.
    pub sql: &'static str,
}

macro_rules! web_migration {
    ($v:expr, $name:literal) => {
        Migration {
            version: $v,
            name: $name,
            sql: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/sql/web/", $name)),
        }
    };
}

/// Every web install file, in order. Add new files here (the test `every_sql_file_is_listed`
/// fails otherwise).
pub const WEB_MIGRATIONS: &[Migration] = &[
    web_migration!(1, "001_schema_version.sql"),
    web_migration!(2, "002_kaynak.sql"),
    web_migration!(3, "003_sync_queue.sql"),
    web_migration!(4, "004_kodmap.sql"),
    web_migration!(5, "005_triggers.sql"),
    web_migration!(6, "006_divergence.sql"),
    web_migration!(10, "010_erp_sync.sql"),
];

/// The ledger DDL for the Mikro database (the only DDL mikro-sync ever runs there).
pub const ERP_LEDGER_SQL: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/sql/erp/001_ledger.sql"
));

/// Serialises concurrent `setup` runs ('mikrosyS').
const SETUP_LOCK_KEY: i64 = 0x6D69_6B72_6F73_7953;

/// The web tables mikro-sync needs to find (the web app owns them).
const REQUIRED_WEB_TABLES: &[&str] = &[
    "satislar",
    "satis_kalemleri",
    "tahsilatlar",
    "cari_hesaplar",
];

/// The triggers mikro-sync owns: (trigger, table).
pub const OUR_TRIGGERS: &[(&str, &str)] = &[
    ("satis_sync_trigger", "satislar"),
    ("tahsilat_sync_trigger", "tahsilatlar"),
    ("sync_queue_requeue_trigger", "sync_queue"),
    ("satis_divergence_update_trigger", "satislar"),
    ("satis_divergence_delete_trigger", "satislar"),
    ("tahsilat_divergence_update_trigger", "tahsilatlar"),
    ("tahsilat_divergence_delete_trigger", "tahsilatlar"),
    ("satis_kalemi_divergence_trigger", "satis_kalemleri"),
    ("satis_kalemi_added_trigger", "satis_kalemleri"),
    ("sync_queue_inbox_check_trigger", "sync_queue_inbox"),
];

/// Setup failures, each naming what to check.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The web app's tables are not there: wrong database or schema.
    #[error("web table(s) {0} not found: is PG_DATABASE the web shop's database (and the search_path its schema)?")]
    MissingWebTables(String),
    /// A statement failed.
    #[error("{step}: {}", crate::db::pg_error_text(source))]
    Web {
        /// What was being done.
        step: String,
        /// The PostgreSQL error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The ERP DDL failed (the login needs CREATE TABLE rights for `setup --erp` only).
    #[error("creating the ledger table dbo.MIKROSYNC_LEDGER in Mikro: {0} (does this SQL login have CREATE TABLE rights? only `setup --erp` needs them)")]
    Erp(#[source] tiberius::error::Error),
}

fn web_err(step: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> SetupError {
    let step = step.into();
    move |source| SetupError::Web { step, source }
}

/// What one file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// Applied for the first time.
    Applied,
    /// Applied before, but the file changed since: applied again (files are idempotent).
    Reapplied,
    /// Applied before, unchanged: skipped.
    Unchanged,
}

/// What [`setup_web`] did and found.
#[derive(Debug, Clone, Default)]
pub struct SetupReport {
    /// Each install file and its outcome.
    pub steps: Vec<(String, StepOutcome)>,
    /// Old triggers removed (`trigger on table`): another tool's enqueue triggers that would
    /// post documents twice.
    pub removed_triggers: Vec<String>,
    /// Rows in `sync_queue` after setup.
    pub queue_rows: i64,
    /// Rows by status after setup.
    pub queue_by_status: Vec<(String, i64)>,
    /// mikro-sync's triggers found after setup: (trigger, table).
    pub triggers: Vec<(String, String)>,
}

impl SetupReport {
    /// True when this run changed anything.
    pub fn changed(&self) -> bool {
        !self.removed_triggers.is_empty()
            || self.steps.iter().any(|(_, o)| *o != StepOutcome::Unchanged)
    }
}

impl fmt::Display for SetupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, outcome) in &self.steps {
            let what = match outcome {
                StepOutcome::Applied => "applied",
                StepOutcome::Reapplied => "re-applied (file changed)",
                StepOutcome::Unchanged => "already applied",
            };
            writeln!(f, "  {name}: {what}")?;
        }
        for t in &self.removed_triggers {
            writeln!(
                f,
                "  removed old trigger {t} (would enqueue documents twice)"
            )?;
        }
        let by: Vec<String> = self
            .queue_by_status
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        writeln!(
            f,
            "queue sync_queue ready: {} rows{}",
            self.queue_rows,
            if by.is_empty() {
                String::new()
            } else {
                format!(" ({})", by.join(", "))
            }
        )?;
        for (t, table) in &self.triggers {
            writeln!(f, "trigger {t} on {table}")?;
        }
        if self.changed() {
            write!(f, "setup complete")
        } else {
            write!(f, "nothing to do: everything was already installed")
        }
    }
}

/// A small, dependency-free checksum of a file's text (FNV-1a 64), to notice edited files.
pub fn checksum(sql: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sql.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Installs (or updates) everything mikro-sync needs in the web database. Idempotent: a second
/// run changes nothing and says so. Safe to run while workers are running.
pub async fn setup_web(client: &tokio_postgres::Client) -> Result<SetupReport, SetupError> {
    let missing: Vec<String> = {
        let rows = client
            .query(
                "SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NULL",
                &[&REQUIRED_WEB_TABLES],
            )
            .await
            .map_err(web_err("checking the web tables"))?;
        rows.iter().map(|r| r.get(0)).collect()
    };
    if !missing.is_empty() {
        return Err(SetupError::MissingWebTables(missing.join(", ")));
    }
    client
        .execute("SELECT pg_advisory_lock($1)", &[&SETUP_LOCK_KEY])
        .await
        .map_err(web_err("taking the setup lock"))?;
    let result = setup_locked(client).await;
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&SETUP_LOCK_KEY])
        .await;
    result
}

async fn setup_locked(client: &tokio_postgres::Client) -> Result<SetupReport, SetupError> {
    let mut report = SetupReport::default();
    // 001 creates the version table itself; it is a no-op when it exists.
    client
        .batch_execute(WEB_MIGRATIONS[0].sql)
        .await
        .map_err(web_err(WEB_MIGRATIONS[0].name))?;
    let applied: Vec<(i32, String)> = client
        .query(
            "SELECT version, checksum FROM mikro_sync_schema_version",
            &[],
        )
        .await
        .map_err(web_err("reading mikro_sync_schema_version"))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();

    report.removed_triggers = remove_foreign_triggers(client).await?;

    for m in WEB_MIGRATIONS {
        let sum = checksum(m.sql);
        let outcome = match applied.iter().find(|(v, _)| *v == m.version) {
            Some((_, s)) if *s == sum => StepOutcome::Unchanged,
            Some(_) => StepOutcome::Reapplied,
            None => StepOutcome::Applied,
        };
        if outcome != StepOutcome::Unchanged {
            apply(client, m, &sum).await?;
            tracing::info!(file = m.name, ?outcome, "web setup step");
        }
        report.steps.push((m.name.to_string(), outcome));
    }

    let rows = client
        .query(
            "SELECT status, count(*) FROM sync_queue GROUP BY status ORDER BY status",
            &[],
        )
        .await
        .map_err(web_err("counting sync_queue"))?;
    report.queue_by_status = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    report.queue_rows = report.queue_by_status.iter().map(|(_, n)| n).sum();
    let names: Vec<&str> = OUR_TRIGGERS.iter().map(|(t, _)| *t).collect();
    let rows = client
        .query(
            "SELECT t.tgname::text, c.relname::text FROM pg_trigger t
               JOIN pg_class c ON c.oid = t.tgrelid
              WHERE NOT t.tgisinternal AND t.tgname = ANY($1) AND pg_table_is_visible(c.oid)
              ORDER BY c.relname, t.tgname",
            &[&names],
        )
        .await
        .map_err(web_err("listing triggers"))?;
    report.triggers = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok(report)
}

async fn apply(
    client: &tokio_postgres::Client,
    m: &Migration,
    sum: &str,
) -> Result<(), SetupError> {
    client
        .batch_execute("BEGIN")
        .await
        .map_err(web_err(m.name))?;
    let r = async {
        client.batch_execute(m.sql).await?;
        client
            .execute(
                "INSERT INTO mikro_sync_schema_version (version, name, checksum) VALUES ($1, $2, $3)
                 ON CONFLICT (version) DO UPDATE SET name = EXCLUDED.name,
                     checksum = EXCLUDED.checksum, applied_at = now()",
                &[&m.version, &m.name, &sum],
            )
            .await?;
        client.batch_execute("COMMIT").await
    }
    .await;
    if let Err(e) = r {
        let _ = client.batch_execute("ROLLBACK").await;
        return Err(SetupError::Web {
            step: m.name.to_string(),
            source: e,
        });
    }
    Ok(())
}

/// Drops other tools' triggers on `satislar`/`tahsilatlar` that write into `sync_queue` (the
/// old tool's duplicates posted documents twice). Returns `trigger on table` for each.
async fn remove_foreign_triggers(
    client: &tokio_postgres::Client,
) -> Result<Vec<String>, SetupError> {
    let ours: Vec<&str> = OUR_TRIGGERS.iter().map(|(t, _)| *t).collect();
    let rows = client
        .query(
            "SELECT t.tgname::text, c.relname::text FROM pg_trigger t
               JOIN pg_class c ON c.oid = t.tgrelid
               JOIN pg_proc p ON p.oid = t.tgfoid
              WHERE NOT t.tgisinternal AND c.relname IN ('satislar', 'tahsilatlar')
                AND pg_table_is_visible(c.oid)
                AND p.prosrc ILIKE '%sync_queue%' AND NOT (t.tgname = ANY($1))",
            &[&ours],
        )
        .await
        .map_err(web_err("looking for old triggers"))?;
    let mut removed = Vec::new();
    for r in rows {
        let (trigger, table): (String, String) = (r.get(0), r.get(1));
        client
            .batch_execute(&format!(
                "DROP TRIGGER IF EXISTS {} ON {}",
                quote_ident(&trigger),
                quote_ident(&table)
            ))
            .await
            .map_err(web_err(format!(
                "dropping old trigger {trigger} on {table}"
            )))?;
        tracing::warn!(trigger, table, "removed an old enqueue trigger");
        removed.push(format!("{trigger} on {table}"));
    }
    Ok(removed)
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// What [`setup_erp`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErpSetupReport {
    /// True when the ledger table was created by this run (false: it existed).
    pub created: bool,
}

impl fmt::Display for ErpSetupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.created {
            write!(f, "ledger table dbo.MIKROSYNC_LEDGER created")
        } else {
            write!(
                f,
                "ledger table dbo.MIKROSYNC_LEDGER already present: nothing to do"
            )
        }
    }
}

/// Creates mikro-sync's ledger table in the Mikro database (`setup --erp`; the only DDL
/// mikro-sync runs there, so the daemon's runtime login needs no DDL rights). Idempotent.
pub async fn setup_erp(erp: &mut ErpClient) -> Result<ErpSetupReport, SetupError> {
    let existed = ledger_exists(erp).await?;
    if !existed {
        erp.simple_query(ERP_LEDGER_SQL)
            .await
            .map_err(SetupError::Erp)?
            .into_results()
            .await
            .map_err(SetupError::Erp)?;
    }
    Ok(ErpSetupReport { created: !existed })
}

/// True when `dbo.MIKROSYNC_LEDGER` exists (`doctor` uses it too).
pub async fn ledger_exists(erp: &mut ErpClient) -> Result<bool, SetupError> {
    let row = erp
        .simple_query(
            "SELECT CASE WHEN OBJECT_ID(N'dbo.MIKROSYNC_LEDGER', N'U') IS NULL THEN 0 ELSE 1 END",
        )
        .await
        .map_err(SetupError::Erp)?
        .into_row()
        .await
        .map_err(SetupError::Erp)?;
    Ok(row.and_then(|r| r.get::<i32, _>(0)).unwrap_or(0) == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sql_file_is_listed() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/sql/web");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<String> = WEB_MIGRATIONS.iter().map(|m| m.name.to_string()).collect();
        assert_eq!(files, listed, "sql/web files and WEB_MIGRATIONS differ");
        for m in WEB_MIGRATIONS {
            let prefix: i32 = m.name[..3].parse().unwrap();
            assert_eq!(prefix, m.version, "{}", m.name);
        }
    }
}
