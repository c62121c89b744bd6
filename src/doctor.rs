//! `mikro-sync doctor`: checks everything an installation needs and says what to do about each
//! problem.
//!
//! Why: the old tool failed silently (wrong time zone, a missing trigger, a customer without a
//! Mikro code) and operators found out from an accountant. Each check here prints `ok`, `warn` or
//! `FAIL` with the fact it saw and, for anything not ok, the command or SQL that fixes it.

use std::time::Duration;

use chrono::Utc;
use tokio_util::compat::TokioAsyncWriteCompatExt;

use crate::config::{Config, ErpDbConfig, ErpEncrypt, PgSslMode};
use crate::db::{pg_error_text, ErpClient};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Fine.
    Ok,
    /// Works, but worth attention.
    Warn,
    /// Broken: documents will not flow until fixed.
    Fail,
}

/// One finding.
#[derive(Debug, Clone)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Verdict.
    pub level: Level,
    /// What was seen.
    pub detail: String,
    /// What to do (empty when ok).
    pub fix: String,
}

impl Check {
    fn ok(name: &str, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            level: Level::Ok,
            detail: detail.into(),
            fix: String::new(),
        }
    }
    fn warn(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            level: Level::Warn,
            detail: detail.into(),
            fix: fix.into(),
        }
    }
    fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            level: Level::Fail,
            detail: detail.into(),
            fix: fix.into(),
        }
    }
}

/// Renders findings as the text doctor prints.
pub fn render(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let tag = match c.level {
            Level::Ok => "[ ok ]",
            Level::Warn => "[warn]",
            Level::Fail => "[FAIL]",
        };
        out.push_str(&format!("{tag} {}: {}\n", c.name, c.detail));
        if !c.fix.is_empty() {
            for line in c.fix.lines() {
                out.push_str(&format!("       → {line}\n"));
            }
        }
    }
    out
}

/// Opens one ERP connection with the configured encryption.
pub async fn connect_erp(cfg: &ErpDbConfig) -> Result<ErpClient, String> {
    let tcfg = cfg.tiberius_config();
    let tcp = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(tcfg.get_addr()),
    )
    .await
    .map_err(|_| format!("TCP connect to {} timed out after 10 s", tcfg.get_addr()))?
    .map_err(|e| format!("TCP connect to {}: {e}", tcfg.get_addr()))?;
    let _ = tcp.set_nodelay(true);
    tokio::time::timeout(
        Duration::from_secs(15),
        tiberius::Client::connect(tcfg, tcp.compat_write()),
    )
    .await
    .map_err(|_| "login timed out after 15 s".to_string())?
    .map_err(|e| e.to_string())
}

async fn erp_scalar_i64(client: &mut ErpClient, sql: &str) -> Result<Option<i64>, String> {
    let row = client
        .simple_query(sql)
        .await
        .map_err(|e| e.to_string())?
        .into_row()
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.and_then(|r| {
        r.try_get::<i32, _>(0)
            .ok()
            .flatten()
            .map(i64::from)
            .or_else(|| r.try_get::<i64, _>(0).ok().flatten())
    }))
}

async fn erp_now(client: &mut ErpClient) -> Result<Option<chrono::NaiveDateTime>, String> {
    let row = client
        .simple_query("SELECT GETDATE()")
        .await
        .map_err(|e| e.to_string())?
        .into_row()
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.and_then(|r| r.try_get::<chrono::NaiveDateTime, _>(0).ok().flatten()))
}

/// What SQL Server says about itself in its PRELOGIN answer, before any TLS: its version and
/// whether it encrypts. Doctor reads it to name the exact setting when a connection fails and to
/// tell whether the password really travels in clear text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerPrelogin {
    /// Major, minor, build (16.0.x is SQL Server 2022, 10.50.x is 2008 R2).
    pub version: (u8, u8, u16),
    /// The server's answer to a client that offers login-only encryption.
    pub encryption: ServerEncryption,
}

/// The ENCRYPTION byte of a server's PRELOGIN answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerEncryption {
    /// ENCRYPT_NOT_SUP: no TLS at all, the login (and password) goes in clear text.
    NotSupported,
    /// ENCRYPT_OFF: TLS for the login only.
    LoginOnly,
    /// ENCRYPT_ON / ENCRYPT_REQ: the server forces encryption of the whole session.
    Forced,
}

impl ServerPrelogin {
    /// "SQL Server 2014 (12.0.6024)", or the bare version for one this table does not know.
    pub fn product(&self) -> String {
        let (major, minor, build) = self.version;
        let name = match (major, minor) {
            (10, 50) => "2008 R2",
            (10, _) => "2008",
            (11, _) => "2012",
            (12, _) => "2014",
            (13, _) => "2016",
            (14, _) => "2017",
            (15, _) => "2019",
            (16, _) => "2022",
            (17, _) => "2025",
            _ => "",
        };
        if name.is_empty() {
            format!("SQL Server {major}.{minor}.{build}")
        } else {
            format!("SQL Server {name} ({major}.{minor}.{build})")
        }
    }
}

/// Sends one PRELOGIN (offering login-only encryption, as SSMS does by default) and reads the
/// answer's VERSION and ENCRYPTION options; no TLS, no login. Bounded by `timeout`.
pub async fn prelogin_probe(addr: &str, timeout: Duration) -> Result<ServerPrelogin, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const VERSION: u8 = 0;
    const ENCRYPTION: u8 = 1;
    let exchange = async {
        let mut tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("TCP connect to {addr}: {e}"))?;
        // Options VERSION (6 bytes) and ENCRYPTION (1 byte), then the terminator; offsets count
        // from the start of the payload (2 × 5 option bytes + 1 terminator = 11).
        let payload: [u8; 18] = [
            VERSION, 0, 11, 0, 6, ENCRYPTION, 0, 17, 0, 1, 0xFF, 0, 0, 0, 0, 0, 0, 0x00,
        ];
        let len = (8 + payload.len()) as u16;
        let mut pkt = vec![0x12, 0x01, (len >> 8) as u8, len as u8, 0, 0, 1, 0];
        pkt.extend_from_slice(&payload);
        tcp.write_all(&pkt)
            .await
            .map_err(|e| format!("PRELOGIN to {addr}: {e}"))?;
        let mut head = [0u8; 8];
        tcp.read_exact(&mut head)
            .await
            .map_err(|e| format!("PRELOGIN answer from {addr}: {e}"))?;
        let total = u16::from_be_bytes([head[2], head[3]]) as usize;
        if head[0] != 0x04 || total < 8 {
            return Err(format!(
                "{addr} did not answer PRELOGIN as SQL Server does (packet type 0x{:02X})",
                head[0]
            ));
        }
        let mut body = vec![0u8; total - 8];
        tcp.read_exact(&mut body)
            .await
            .map_err(|e| format!("PRELOGIN answer from {addr}: {e}"))?;
        parse_prelogin_answer(&body).ok_or_else(|| format!("{addr}: unreadable PRELOGIN answer"))
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| {
        format!(
            "no PRELOGIN answer from {addr} within {} s",
            timeout.as_secs()
        )
    })?
}

fn parse_prelogin_answer(body: &[u8]) -> Option<ServerPrelogin> {
    let (mut version, mut encryption) = (None, None);
    let mut i = 0;
    while *body.get(i)? != 0xFF {
        let token = body[i];
        let off = u16::from_be_bytes([*body.get(i + 1)?, *body.get(i + 2)?]) as usize;
        let len = u16::from_be_bytes([*body.get(i + 3)?, *body.get(i + 4)?]) as usize;
        let data = body.get(off..off + len)?;
        match (token, len) {
            (0, 6..) => version = Some((data[0], data[1], u16::from_be_bytes([data[2], data[3]]))),
            (1, 1..) => {
                encryption = Some(match data[0] {
                    0x02 => ServerEncryption::NotSupported,
                    0x00 => ServerEncryption::LoginOnly,
                    _ => ServerEncryption::Forced,
                })
            }
            _ => {}
        }
        i += 5;
    }
    Some(ServerPrelogin {
        version: version?,
        encryption: encryption?,
    })
}

/// What doctor advises when the connection failed in or around the TLS handshake, from what
/// the server's PRELOGIN answer says about it; `None` when the failure is not about TLS.
fn tls_failure_fix(msg: &str, e: &ErpDbConfig, server: Option<&ServerPrelogin>) -> Option<String> {
    let m = msg.to_lowercase();
    let product = server
        .map(|s| s.product())
        .unwrap_or_else(|| "the server".into());
    if let Some(s) = server {
        if s.encryption == ServerEncryption::NotSupported && e.encrypt != ErpEncrypt::Plaintext {
            return Some(format!(
                "{product} offers no encryption at all (not even for the login): set \
                 MSSQL_ENCRYPT=plaintext, and know that the login password and the documents then \
                 travel in clear text; better, give the server a certificate (SQL Server \
                 Configuration Manager → Protocols → Certificate) and keep MSSQL_ENCRYPT=true"
            ));
        }
    }
    if tls_version_refused(&m) {
        return Some(format!(
            "{product} and mikro-sync share no TLS version: enable TLS 1.2 on the SQL Server, \
             or for a server that only speaks TLS 1.0/1.1 set OPENSSL_CONF to the file \
             docs/configuration.md shows (The Mikro database → Encryption)"
        ));
    }
    let handshake = ["handshake", "unexpected eof", "ssl routines", "tls", "ssl"]
        .iter()
        .any(|k| m.contains(k));
    if !handshake {
        return None;
    }
    Some(format!(
        "the TLS handshake with {product} failed: for SQL Server 2008 R2–2014 without the TLS 1.2 \
         updates set OPENSSL_CONF to the file docs/configuration.md shows (The Mikro database → \
         Encryption); SQL Server 2022 with \"Force Strict Encryption\" (TDS 8) is not supported, \
         turn it off; see docs/install.md, \"Legacy SQL Server and TLS\""
    ))
}

/// OpenSSL's ways of saying that client and server found no common TLS version.
fn tls_version_refused(msg: &str) -> bool {
    let m = msg.to_lowercase();
    [
        "unsupported protocol",
        "protocol version",
        "no protocols available",
    ]
    .iter()
    .any(|s| m.contains(s))
}

fn is_local_host(h: &str) -> bool {
    h == "localhost"
        || h.starts_with('/')
        || h.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// Runs every check (or, with `quick`, connectivity only) and returns the findings.
pub async fn checks(cfg: &Config, quick: bool) -> Vec<Check> {
    let mut out = Vec::new();
    // ---- web database ----
    let mut web_client = None;
    match cfg.web() {
        Err(e) => out.push(Check::fail("web database", "not configured", e.to_string())),
        Ok(w) => match crate::db::connect_web(w).await {
            Err(e) => {
                let msg = match &e {
                    crate::db::WebConnectError::Pg(p) => pg_error_text(p),
                    other => other.to_string(),
                };
                let fix = if msg.to_lowercase().contains("certificate") {
                    "the server certificate is not trusted: set PG_SSL_ROOT_CERT to the provider's CA file \
                     (Supabase: Database settings → SSL certificate), or as a last resort \
                     PG_SSL_INSECURE_SKIP_VERIFY=true"
                } else {
                    "check PG_HOST/PG_PORT/PG_DATABASE/PG_USER/PG_PASSWORD (or MIKRO_SYNC_PG_URL), \
                     and that the server accepts connections from this machine"
                };
                out.push(Check::fail(
                    "web database",
                    format!("cannot connect to {}: {msg}", w.display_masked()),
                    fix,
                ));
            }
            Ok((client, conn)) => {
                tokio::spawn(conn);
                if web_checks(cfg, w, &client, quick, &mut out).await {
                    web_client = Some(client);
                }
            }
        },
    }
    // ---- ERP database ----
    let mut erp_client = None;
    match cfg.erp() {
        Err(e) => out.push(Check::fail(
            "Mikro database",
            "not configured",
            e.to_string(),
        )),
        Ok(e) => match connect_erp(e).await {
            Err(msg) => {
                let lower = msg.to_lowercase();
                let server = if lower.contains("login failed") || lower.starts_with("tcp connect") {
                    None
                } else {
                    let addr = e.tiberius_config().get_addr();
                    prelogin_probe(&addr, Duration::from_secs(5)).await.ok()
                };
                let fix = if lower.contains("certificate") {
                    "the SQL Server certificate is not trusted: set MSSQL_TRUST_CERT_CA to its CA file, \
                     or explicitly MSSQL_TRUST_SERVER_CERTIFICATE=true (self-signed servers)"
                        .to_string()
                } else if lower.contains("login failed") {
                    "check MSSQL_USER / MSSQL_PASSWORD and that the login may use MSSQL_DATABASE"
                        .to_string()
                } else if let Some(fix) = tls_failure_fix(&msg, e, server.as_ref()) {
                    fix
                } else {
                    "check MSSQL_SERVER/MSSQL_PORT (SQL Server Configuration Manager: TCP/IP enabled, port), \
                     the firewall, and MSSQL_ENCRYPT"
                        .to_string()
                };
                out.push(Check::fail(
                    "Mikro database",
                    format!("cannot connect to {}: {msg}", e.display_masked()),
                    fix,
                ));
            }
            Ok(mut client) => {
                if erp_checks(cfg, e, &mut client, quick, &mut out).await {
                    erp_client = Some(client);
                }
            }
        },
    }
    // ---- mappings: every open document's customer and products resolve to a Mikro code ----
    if let Some(web) = &web_client {
        mapping_checks(
            web,
            erp_client.as_mut(),
            cfg.posting.default_cari_code.as_deref(),
            &mut out,
        )
        .await;
    }
    out
}

async fn web_checks(
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

async fn mapping_checks(
    client: &tokio_postgres::Client,
    erp: Option<&mut ErpClient>,
    default_cari: Option<&str>,
    out: &mut Vec<Check>,
) {
    // The code each open document will be posted with: the mapping table first, then the
    // configured default account for customers made on the web, then the web master row's own
    // code (the same order posting uses).
    let sql = "
        WITH open AS (
            SELECT entity_type, entity_id FROM sync_queue
             WHERE status IN ('pending', 'processing', 'failed')
             ORDER BY created_at LIMIT 500)
        SELECT 'cari' AS what, o.entity_type, o.entity_id::text, s.cari_hesap_id::text,
               coalesce(m.erp_cari_kod,
                        CASE WHEN c.id IS NOT NULL AND c.kaynak IS DISTINCT FROM 'erp' THEN $1::text END,
                        nullif(c.cari_kodu, ''))
          FROM open o JOIN satislar s ON o.entity_type = 'satis' AND s.id = o.entity_id
          LEFT JOIN int_kodmap_cari m ON m.web_cari_id = s.cari_hesap_id
          LEFT JOIN cari_hesaplar c ON c.id = s.cari_hesap_id
        UNION ALL
        SELECT 'cari', o.entity_type, o.entity_id::text, t.cari_hesap_id::text,
               coalesce(m.erp_cari_kod,
                        CASE WHEN c.id IS NOT NULL AND c.kaynak IS DISTINCT FROM 'erp' THEN $1::text END,
                        nullif(c.cari_kodu, ''))
          FROM open o JOIN tahsilatlar t ON o.entity_type = 'tahsilat' AND t.id = o.entity_id
          LEFT JOIN int_kodmap_cari m ON m.web_cari_id = t.cari_hesap_id
          LEFT JOIN cari_hesaplar c ON c.id = t.cari_hesap_id
        UNION ALL
        SELECT 'stok', o.entity_type, o.entity_id::text, k.stok_id::text,
               coalesce(ms.erp_stok_kod, nullif(st.stok_kodu, ''))
          FROM open o JOIN satis_kalemleri k ON o.entity_type = 'satis' AND k.satis_id = o.entity_id
          LEFT JOIN int_kodmap_stok ms ON ms.web_stok_id = k.stok_id
          LEFT JOIN stoklar st ON st.id = k.stok_id";
    let rows = match client.query(sql, &[&default_cari]).await {
        Ok(r) => r,
        Err(e) => {
            out.push(Check::warn(
                "mappings",
                format!("could not check ({})", pg_error_text(&e)),
                "the web tables differ from the reference schema; check mappings by hand",
            ));
            return;
        }
    };
    type Ref = (String, String, String, Option<String>, Option<String>);
    let refs: Vec<Ref> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect();
    // Which resolved codes exist in Mikro (one short query per distinct code).
    let mut unknown: std::collections::BTreeSet<(String, String)> = Default::default();
    let mut checked_in_mikro = false;
    if let Some(erp) = erp {
        checked_in_mikro = true;
        let mut codes: Vec<(String, String)> = refs
            .iter()
            .filter_map(|(w, _, _, _, c)| c.clone().map(|c| (w.clone(), c)))
            .collect();
        codes.sort();
        codes.dedup();
        for (what, code) in codes.into_iter().take(200) {
            let sql = if what == "cari" {
                "SELECT COUNT(*) FROM CARI_HESAPLAR WHERE cari_kod = @P1"
            } else {
                "SELECT COUNT(*) FROM STOKLAR WHERE sto_kod = @P1"
            };
            let n = match erp.query(sql, &[&code.as_str()]).await {
                Ok(st) => st
                    .into_row()
                    .await
                    .ok()
                    .flatten()
                    .and_then(|r| r.try_get::<i32, _>(0).ok().flatten()),
                Err(_) => None,
            };
            if n == Some(0) {
                unknown.insert((what, code));
            }
        }
    }
    let mut problems = Vec::new();
    for (what, kind, doc, master, code) in &refs {
        let master = master.clone().unwrap_or_else(|| "NULL".into());
        let (tbl, col_id, col_code, mikro) = if what == "cari" {
            (
                "int_kodmap_cari",
                "web_cari_id",
                "erp_cari_kod",
                "CARI_HESAPLAR",
            )
        } else {
            ("int_kodmap_stok", "web_stok_id", "erp_stok_kod", "STOKLAR")
        };
        let add = format!(
            "INSERT INTO {tbl} ({col_id}, {col_code}) VALUES ('{master}', '<Mikro code>');"
        );
        match code {
            None => problems.push(format!("{kind} {doc}: {what} {master} has no Mikro code: {add}")),
            Some(c) if unknown.contains(&(what.clone(), c.clone())) => problems.push(format!(
                "{kind} {doc}: {what} code '{c}' does not exist in Mikro {mikro}: create it in Mikro, or map the web row: {add}"
            )),
            _ => {}
        }
    }
    problems.sort();
    problems.dedup();
    if problems.is_empty() {
        out.push(Check::ok(
            "mappings",
            format!(
                "every open document's customer and products resolve to a Mikro code{}",
                if checked_in_mikro {
                    " that exists in Mikro"
                } else {
                    ""
                }
            ),
        ));
        return;
    }
    let n = problems.len();
    let mut fix: Vec<String> = problems.into_iter().take(10).collect();
    if n > 10 {
        fix.push(format!("… and {} more", n - 10));
    }
    fix.push("then `mikro-sync retry-failed` for the documents that already failed".into());
    out.push(Check::fail(
        "mappings",
        format!(
            "{n} reference(s) from open documents do not resolve to a Mikro customer or product"
        ),
        fix.join("\n"),
    ));
}

async fn erp_checks(
    cfg: &Config,
    e: &ErpDbConfig,
    client: &mut ErpClient,
    quick: bool,
    out: &mut Vec<Check>,
) -> bool {
    match erp_scalar_i64(client, "SELECT 1").await {
        Ok(_) => out.push(Check::ok(
            "Mikro database",
            format!("connected to {}:{}/{}", e.host, e.port, e.database),
        )),
        Err(m) => {
            out.push(Check::fail(
                "Mikro database",
                m,
                "check the login's rights on the database",
            ));
            return false;
        }
    }
    if quick {
        return false;
    }
    // The server's own PRELOGIN answer says whether the password really travels in clear text.
    let server = prelogin_probe(&e.tiberius_config().get_addr(), Duration::from_secs(5))
        .await
        .ok();
    let product = server
        .map(|s| format!("{}: ", s.product()))
        .unwrap_or_default();
    let forced = server.is_some_and(|s| s.encryption == ServerEncryption::Forced);
    out.push(match (e.encrypt, e.trust_server_certificate) {
        (ErpEncrypt::Required, false) => Check::ok(
            "Mikro TLS",
            format!("{product}encrypted, certificate verified"),
        ),
        (ErpEncrypt::Required, true) => Check::warn(
            "Mikro TLS",
            format!("{product}encrypted, but any certificate is accepted (MSSQL_TRUST_SERVER_CERTIFICATE=true)"),
            "prefer MSSQL_TRUST_CERT_CA=<the server's CA file> when the server has a self-signed certificate",
        ),
        (_, _) if forced => Check::ok(
            "Mikro TLS",
            format!(
                "{product}the server forces encryption, so the whole session is encrypted \
                 although MSSQL_ENCRYPT={}",
                match e.encrypt {
                    ErpEncrypt::Required => "true",
                    ErpEncrypt::LoginOnly => "false",
                    ErpEncrypt::Plaintext => "plaintext",
                }
            ),
        ),
        (ErpEncrypt::LoginOnly, _) if is_local_host(&e.host) => Check::ok(
            "Mikro TLS",
            format!(
                "{product}only the login is encrypted (local server): the password is not sent \
                 in clear text"
            ),
        ),
        (ErpEncrypt::LoginOnly, _) => Check::warn(
            "Mikro TLS",
            format!(
                "{product}only the login is encrypted (MSSQL_ENCRYPT=false): the password is \
                 not sent in clear text, the documents are"
            ),
            "set MSSQL_ENCRYPT=true (plus MSSQL_TRUST_CERT_CA or MSSQL_TRUST_SERVER_CERTIFICATE for self-signed servers)",
        ),
        (ErpEncrypt::Plaintext, _)
            if server.is_some_and(|s| s.encryption == ServerEncryption::NotSupported) =>
        {
            Check::warn(
                "Mikro TLS",
                format!(
                    "{product}no encryption at all (MSSQL_ENCRYPT=plaintext; the server offers \
                     none): the login password and the documents travel in clear text"
                ),
                "give the SQL Server a certificate (SQL Server Configuration Manager → Protocols → \
                 Certificate), then set MSSQL_ENCRYPT=true",
            )
        }
        (ErpEncrypt::Plaintext, _) => Check::warn(
            "Mikro TLS",
            format!(
                "{product}no encryption at all (MSSQL_ENCRYPT=plaintext): the login password \
                 and the documents travel in clear text"
            ),
            "set MSSQL_ENCRYPT=true (or at least false: the login, with the password, is then encrypted)",
        ),
    });
    for (table, col) in [
        ("CARI_HESAP_HAREKETLERI", "cha_RECno"),
        ("STOK_HAREKETLERI", "sth_RECno"),
        ("ODEME_EMIRLERI", "sck_RECno"),
    ] {
        if let Err(m) = erp_scalar_i64(client, &format!("SELECT TOP 1 {col} FROM {table}")).await {
            out.push(Check::fail(
                "Mikro tables",
                format!("cannot read {table}: {m}"),
                format!("grant the login SELECT, INSERT, UPDATE on {table}, or check MSSQL_DATABASE is the company database"),
            ));
        }
    }
    match erp_scalar_i64(client, "SELECT COUNT(*) FROM dbo.MIKROSYNC_LEDGER").await {
        Ok(n) => out.push(Check::ok(
            "ledger",
            format!(
                "dbo.MIKROSYNC_LEDGER present ({} documents posted)",
                n.unwrap_or(0)
            ),
        )),
        Err(m) => out.push(Check::fail(
            "ledger",
            format!("dbo.MIKROSYNC_LEDGER is not readable: {m}"),
            "run `mikro-sync setup --erp` once with a login allowed to CREATE TABLE, \
             then grant the daemon's login SELECT, INSERT on it",
        )),
    }
    match erp_now(client).await {
        Ok(Some(server_now)) => {
            let expected = Utc::now().with_timezone(&cfg.posting.tz).naive_local();
            let skew = (server_now - expected).num_seconds();
            // Mikro stamps lastup_date with its own clock; the ERP → web overlap must cover the
            // skew (plus Mikro's longest transaction), so warn well before it is used up.
            let overlap = cfg.erp_sync_overlap.as_secs() as i64;
            if skew.abs() * 2 >= overlap {
                out.push(Check::warn(
                    "ERP clock skew",
                    format!(
                        "SQL Server's clock is {:+} s off this machine's; \
                         the ERP → web overlap (MIKRO_SYNC_ERP_SYNC_OVERLAP) is {overlap} s",
                        skew
                    ),
                    "synchronise the clocks (NTP on both machines), or raise \
                     MIKRO_SYNC_ERP_SYNC_OVERLAP to at least twice the skew plus Mikro's longest \
                     transaction; rows stamped outside the overlap wait for the periodic full \
                     re-read (MIKRO_SYNC_ERP_SYNC_FULL_EVERY)",
                ));
            } else {
                out.push(Check::ok(
                    "ERP clock skew",
                    format!(
                        "{} s, within half the ERP → web overlap ({overlap} s)",
                        skew.abs()
                    ),
                ));
            }
            if skew.abs() > 120 {
                out.push(Check::warn(
                    "time zone",
                    format!(
                        "SQL Server's clock reads {server_now}, but now in {} is {} ({:+} min)",
                        cfg.posting.tz.name(),
                        expected.format("%Y-%m-%d %H:%M:%S"),
                        skew / 60
                    ),
                    "documents are dated in MIKRO_SYNC_TIMEZONE: set it to the company's zone, \
                     or fix the SQL Server machine's clock",
                ));
            } else {
                out.push(Check::ok(
                    "time zone",
                    format!(
                        "SQL Server's local time matches {} within {} s",
                        cfg.posting.tz.name(),
                        skew.abs()
                    ),
                ));
            }
        }
        Ok(None) => {}
        Err(m) => out.push(Check::warn(
            "time zone",
            format!("cannot read GETDATE(): {m}"),
            "",
        )),
    }
    true
}

/// The triggers write into `sync_queue_inbox` as the role that inserts the sale, and the worker
/// deletes from it: a role that may insert sales but not into the inbox would have its sales
/// rejected by PostgreSQL, and a daemon role without DELETE there would claim nothing new.
/// Both happen after an operator grants rights on `sync_queue` by hand and forgets the inbox.
async fn queue_rights(client: &tokio_postgres::Client, out: &mut Vec<Check>) {
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
