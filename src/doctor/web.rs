//! The web (PostgreSQL) database checks: connection, pooler, mikro-sync objects, queue rights.

use chrono::Utc;

use super::*;
use crate::config::PgSslMode;

pub(super) async fn web_checks(
    cfg: &Config,
    w: &crate::config::WebDbConfig,
    client: &tokio_postgres::Client,
    quick: bool,
    out: &mut Vec<Check>,
) -> bool {
    // First, because behind a transaction pooler the checks below would report false findings
    // (their prepared statements run on whichever backend the pooler picks).
    if !quick {
        use crate::pooler::SessionMode;
        match crate::pooler::detect(w).await {
            Ok(SessionMode::Session) => out.push(Check::ok(
                "web pooler",
                "session (direct or session pooler): ok, LISTEN and advisory locks work",
            )),
            Ok(mode) => {
                out.push(Check::fail(
                    "web pooler",
                    format!(
                        "transaction pooler: not supported ({}); the other web checks were skipped",
                        match mode {
                            SessionMode::Transaction {
                                first,
                                second,
                                other,
                            } => format!(
                                "one connection ran on backends {first} and {second}, \
                                 another's transaction on {other}"
                            ),
                            SessionMode::Session => String::new(),
                        }
                    ),
                    crate::pooler::FIX,
                ));
                return false;
            }
            Err(e) => out.push(Check::warn("web pooler", e.to_string(), "")),
        }
    }
    let version = match client
        .query_one("SELECT current_setting('server_version')", &[])
        .await
    {
        Ok(r) => r.get::<_, String>(0),
        Err(e) => {
            out.push(Check::fail(
                "web database",
                pg_error_text(&e),
                "check the login's rights",
            ));
            return false;
        }
    };
    out.push(Check::ok(
        "web database",
        format!(
            "connected to PostgreSQL {version} at {}:{}/{}",
            w.host, w.port, w.database
        ),
    ));
    if quick {
        return false;
    }
    // TLS
    let ssl = client
        .query_opt(
            "SELECT ssl, coalesce(version, '') FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await;
    match ssl {
        Ok(Some(r)) if r.get::<_, bool>(0) => out.push(Check::ok(
            "web TLS",
            format!(
                "encrypted ({}), certificate {}",
                r.get::<_, String>(1),
                if w.tls.verify {
                    "verified"
                } else {
                    "NOT verified (PG_SSL_INSECURE_SKIP_VERIFY=true)"
                }
            ),
        )),
        Ok(_) if is_local_host(&w.host) => {
            out.push(Check::ok("web TLS", "not encrypted (local server)"))
        }
        Ok(_) => out.push(Check::warn(
            "web TLS",
            format!(
                "not encrypted (sslmode={:?}) to a remote server",
                w.tls.mode
            ),
            "set PG_SSL=true (hosted databases such as Supabase require it)",
        )),
        Err(e) => out.push(Check::warn("web TLS", pg_error_text(&e), "")),
    }
    if w.tls.mode != PgSslMode::Disable && !w.tls.verify {
        out.push(Check::warn(
            "web TLS",
            "certificate verification is switched off",
            "set PG_SSL_ROOT_CERT to the server's CA and remove PG_SSL_INSECURE_SKIP_VERIFY",
        ));
    }
    // Queue and triggers
    let queue: Option<String> = client
        .query_one("SELECT to_regclass('sync_queue')::text", &[])
        .await
        .ok()
        .and_then(|r| r.get(0));
    if queue.is_none() {
        out.push(Check::fail(
            "queue",
            "no sync_queue table",
            "run `mikro-sync setup` (it also adopts the old tool's queue)",
        ));
    } else {
        match crate::status::gather(client, 5).await {
            Ok(st) => {
                let failed: i64 = st
                    .counts
                    .iter()
                    .filter(|c| c.1 == "failed")
                    .map(|c| c.2)
                    .sum();
                let pending: i64 = st
                    .counts
                    .iter()
                    .filter(|c| c.1 == "pending")
                    .map(|c| c.2)
                    .sum();
                let diverged: i64 = st
                    .counts
                    .iter()
                    .filter(|c| c.1 == "diverged")
                    .map(|c| c.2)
                    .sum();
                if diverged > 0 {
                    let first = st
                        .diverged
                        .first()
                        .map(|(t, id, op, _)| format!("; latest: {t} {id} ({op})"))
                        .unwrap_or_default();
                    out.push(Check::warn(
                        "divergences",
                        format!(
                            "{diverged} document(s) edited or deleted on the web after posting; \
                             Mikro was not changed{first}"
                        ),
                        "`mikro-sync status` prints each one with what changed; make the change in \
                         the Mikro program, then close it with the UPDATE its message gives",
                    ));
                } else {
                    out.push(Check::ok(
                        "divergences",
                        "no document edited or deleted after posting",
                    ));
                }
                let detail = format!(
                    "{pending} pending (oldest {}), {failed} failed, listener {}",
                    st.oldest_pending_secs
                        .map(crate::status::age)
                        .unwrap_or_else(|| "—".into()),
                    if st.listeners > 0 {
                        "connected"
                    } else {
                        "not connected"
                    }
                );
                if failed > 0 {
                    out.push(Check::warn(
                        "queue",
                        detail,
                        "see `mikro-sync status` for the messages; after fixing, `mikro-sync retry-failed`",
                    ));
                } else if st.listeners == 0 && pending > 0 {
                    out.push(Check::warn(
                        "queue",
                        detail,
                        "documents are waiting and no worker is listening: start `mikro-sync worker` \
                         (systemctl start mikro-sync)",
                    ));
                } else {
                    out.push(Check::ok("queue", detail));
                }
            }
            Err(e) => out.push(Check::warn("queue", e.to_string(), "")),
        }
    }
    let triggers = client
        .query(
            "SELECT t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
              WHERE NOT t.tgisinternal AND t.tgname IN ('satis_sync_trigger', 'tahsilat_sync_trigger')",
            &[],
        )
        .await;
    match triggers {
        Ok(rows) => {
            let found: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            for (trg, table) in [
                ("satis_sync_trigger", "satislar"),
                ("tahsilat_sync_trigger", "tahsilatlar"),
            ] {
                if found.iter().any(|(t, c)| t == trg && c == table) {
                    out.push(Check::ok("trigger", format!("{trg} on {table}")));
                } else {
                    out.push(Check::fail(
                        "trigger",
                        format!("{trg} on {table} is missing: new documents are not queued"),
                        "run `mikro-sync setup`",
                    ));
                }
            }
        }
        Err(e) => out.push(Check::warn("trigger", pg_error_text(&e), "")),
    }
    if queue.is_some() {
        queue_rights(client, out).await;
    }
    // Extra (old) triggers that would enqueue twice.
    if let Ok(rows) = client
        .query(
            "SELECT t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
              WHERE NOT t.tgisinternal AND c.relname IN ('satislar', 'tahsilatlar')
                AND t.tgname <> ALL($1::text[])
                AND pg_get_triggerdef(t.oid) ILIKE '%sync%'",
            &[&crate::setup::OUR_TRIGGERS
                .iter()
                .map(|(t, _)| *t)
                .collect::<Vec<_>>()],
        )
        .await
    {
        for r in rows {
            let (t, c): (String, String) = (r.get(0), r.get(1));
            out.push(Check::warn(
                "trigger",
                format!("another sync-looking trigger {t} on {c} may enqueue documents twice"),
                format!("if it is the old tool's, drop it: DROP TRIGGER {t} ON {c}; (or re-run `mikro-sync setup`)"),
            ));
        }
    }
    // Clock
    if let Ok(r) = client
        .query_one(
            "SELECT extract(epoch FROM now())::float8, current_setting('TimeZone')",
            &[],
        )
        .await
    {
        let pg_now: f64 = r.get(0);
        let local = Utc::now().timestamp_millis() as f64 / 1000.0;
        let skew = pg_now - local;
        if skew.abs() > 60.0 {
            out.push(Check::warn(
                "clock",
                format!("web database clock differs from this machine by {skew:.0} s"),
                "synchronise clocks (timedatectl set-ntp true); queue ages and latencies are computed across both",
            ));
        } else {
            out.push(Check::ok(
                "clock",
                format!(
                    "web database and this machine agree within {:.1} s (server TimeZone {})",
                    skew.abs(),
                    r.get::<_, String>(1)
                ),
            ));
        }
    }
    let _ = cfg;
    queue.is_some()
}

/// The triggers write into `sync_queue_inbox` as the role that inserts the sale, and the worker
/// deletes from it: a role that may insert sales but not into the inbox would have its sales
/// rejected by PostgreSQL, and a daemon role without DELETE there would claim nothing new.
/// Both happen after an operator grants rights on `sync_queue` by hand and forgets the inbox.
pub(super) async fn queue_rights(client: &tokio_postgres::Client, out: &mut Vec<Check>) {
    // One privilege per has_table_privilege call: with a list it is true when ANY of them is
    // held. A query error is reported as such, not as missing rights.
    let found = client
        .query_one(
            "SELECT ARRAY(SELECT quote_ident(r.rolname) FROM pg_roles r
                           WHERE (has_table_privilege(r.oid, 'satislar', 'INSERT')
                                  OR has_table_privilege(r.oid, 'tahsilatlar', 'INSERT'))
                             AND NOT has_table_privilege(r.oid, 'sync_queue_inbox', 'INSERT')
                             AND r.rolname !~ '^pg_'
                           ORDER BY 1),
                    quote_ident(current_user),
                    has_table_privilege('sync_queue_inbox', 'SELECT')
                    AND has_table_privilege('sync_queue_inbox', 'DELETE')
                    AND has_table_privilege('sync_queue', 'SELECT')
                    AND has_table_privilege('sync_queue', 'INSERT')
                    AND has_table_privilege('sync_queue', 'UPDATE')",
            &[],
        )
        .await
        .and_then(|r| {
            Ok((
                r.try_get::<_, Vec<String>>(0)?,
                r.try_get::<_, String>(1)?,
                r.try_get::<_, bool>(2)?,
            ))
        });
    let (writers, login, daemon_ok) = match found {
        Ok(v) => v,
        Err(e) => {
            out.push(Check::warn(
                "queue rights",
                pg_error_text(&e),
                "run `mikro-sync setup`",
            ));
            return;
        }
    };
    if !writers.is_empty() {
        let list = writers.join(", ");
        out.push(Check::fail(
            "queue rights",
            format!("role(s) {list} may insert sales or collections but not into sync_queue_inbox: PostgreSQL would reject their documents"),
            format!("GRANT INSERT ON sync_queue_inbox TO {list};"),
        ));
    } else if !daemon_ok {
        out.push(Check::fail(
            "queue rights",
            format!("this login ({login}) cannot move the queue's inbox: the worker needs SELECT, DELETE on sync_queue_inbox and SELECT, INSERT, UPDATE on sync_queue"),
            format!("GRANT SELECT, DELETE ON sync_queue_inbox TO {login}; GRANT SELECT, INSERT, UPDATE ON sync_queue TO {login};"),
        ));
    } else {
        out.push(Check::ok(
            "queue rights",
            "every role that may insert documents may write sync_queue_inbox; this login may move it",
        ));
    }
}
