//! Connection pools for the two databases.
//!
//! The web side uses deadpool-postgres (every query except the LISTEN connection, which must own
//! its `Connection` to see notifications); the ERP side uses bb8 + bb8-tiberius, the same code
//! path in production, in the tests (against the emulator) and against a real SQL Server.

use bb8_tiberius::ConnectionManager;

/// The pooled ERP client type every ERP-side function takes.
pub type ErpClient = tiberius::Client<tokio_util::compat::Compat<tokio::net::TcpStream>>;
/// The ERP pool.
pub type ErpPool = bb8::Pool<ErpManager>;

/// bb8-tiberius' connection manager with a check-out test that also cleans up.
///
/// bb8-tiberius cannot tell a broken connection (`has_broken` is always false), so the pool has
/// to test every connection it hands out, which costs a round trip anyway. We make that round
/// trip useful: besides proving the connection alive it rolls back a transaction an interrupted
/// earlier user may have left open and switches `XACT_ABORT` off again. Every borrower therefore
/// starts on a clean session, which is what lets a posting send `BEGIN TRAN … COMMIT TRAN` in the
/// same round trip as its rows (see `crate::posting::erp`).
pub struct ErpManager {
    inner: ConnectionManager,
}

/// The statement of the check-out test: clean up, then prove the session answers.
/// (`SELECT @@TRANCOUNT` rather than `SELECT 1`: the server answers it from session state, and
/// the emulator too, without a query of its own.)
pub const ERP_CHECKOUT_SQL: &str =
    "IF @@TRANCOUNT > 0 ROLLBACK TRAN; SET XACT_ABORT OFF; SELECT @@TRANCOUNT";

impl ErpManager {
    /// A manager for connections made from `cfg`.
    pub fn new(cfg: tiberius::Config) -> Self {
        ErpManager {
            inner: ConnectionManager::new(cfg),
        }
    }
}

impl bb8::ManageConnection for ErpManager {
    type Connection = ErpClient;
    type Error = bb8_tiberius::Error;

    async fn connect(&self) -> Result<Self::Connection, Self::Error> {
        bb8::ManageConnection::connect(&self.inner).await
    }

    async fn is_valid(&self, conn: &mut Self::Connection) -> Result<(), Self::Error> {
        conn.simple_query(ERP_CHECKOUT_SQL)
            .await?
            .into_results()
            .await?;
        Ok(())
    }

    fn has_broken(&self, _conn: &mut Self::Connection) -> bool {
        false
    }
}
/// The web pool.
pub type WebPool = deadpool_postgres::Pool;

/// Errors building a pool: which side and why, so the operator knows which setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("invalid PostgreSQL connection string (check PG_* / DATABASE_URL): {0}")]
    WebConfig(String),
    #[error("invalid SQL Server connection string (check MSSQL_* / the ADO string): {0}")]
    ErpConfig(String),
    #[error("cannot connect to SQL Server: {0}")]
    ErpConnect(String),
}

/// Builds the web pool from a libpq-style URL or key=value string (no TLS; TLS is added by the
/// configuration layer).
pub fn web_pool(url: &str, max_size: usize) -> Result<WebPool, PoolError> {
    let pg: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| PoolError::WebConfig(e.to_string()))?;
    let mgr = deadpool_postgres::Manager::from_config(
        pg,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    deadpool_postgres::Pool::builder(mgr)
        .max_size(max_size)
        .build()
        .map_err(|e| PoolError::WebConfig(e.to_string()))
}

/// Builds the ERP pool from an ADO.NET connection string (`server=tcp:host,port;user=…;…`).
pub async fn erp_pool(ado: &str, max_size: u32) -> Result<ErpPool, PoolError> {
    let cfg =
        tiberius::Config::from_ado_string(ado).map_err(|e| PoolError::ErpConfig(e.to_string()))?;
    let mgr = ErpManager::new(cfg);
    bb8::Pool::builder()
        .max_size(max_size)
        .build(mgr)
        .await
        .map_err(|e| PoolError::ErpConnect(e.to_string()))
}

/// The connection type of a dedicated web connection (the LISTEN connection, one-off commands):
/// TLS or not is decided at connect time by the `sslmode`, so one type covers both.
pub type WebConnection = tokio_postgres::Connection<
    tokio_postgres::Socket,
    tokio_postgres_rustls::RustlsStream<tokio_postgres::Socket>,
>;

/// Errors setting up TLS for PostgreSQL; they name the setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read PG_SSL_ROOT_CERT {path}: {message}")]
    RootCert { path: String, message: String },
}

/// Accepts any server certificate. Used only with the explicit opt-out
/// `PG_SSL_INSECURE_SKIP_VERIFY=true`; traffic is still encrypted.
struct NoVerify;

impl rustls::client::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::Certificate,
        _intermediates: &[rustls::Certificate],
        _server_name: &rustls::ServerName,
        _scts: &mut dyn Iterator<Item = &[u8]>,
        _ocsp_response: &[u8],
        _now: std::time::SystemTime,
    ) -> Result<rustls::client::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::ServerCertVerified::assertion())
    }
}

/// Builds the rustls connector for PostgreSQL: the system trust store plus the configured extra
/// CA, verifying chain and host name unless verification was explicitly switched off.
pub fn pg_tls_connector(
    tls: &crate::config::PgTls,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    // A missing or partly unreadable system store is not fatal: an explicit root cert may suffice.
    if let Ok(native) = rustls_native_certs::load_native_certs() {
        for c in native {
            let _ = roots.add(&rustls::Certificate(c.0));
        }
    }
    if let Some(path) = &tls.root_cert {
        let err = |message: String| TlsSetupError::RootCert {
            path: path.display().to_string(),
            message,
        };
        let f = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
        let certs = rustls_pemfile::certs(&mut std::io::BufReader::new(f))
            .map_err(|e| err(e.to_string()))?;
        if certs.is_empty() {
            return Err(err("no PEM certificate found in the file".into()));
        }
        for c in certs {
            roots
                .add(&rustls::Certificate(c))
                .map_err(|e| err(e.to_string()))?;
        }
    }
    let mut cfg = rustls::ClientConfig::builder()
        .with_safe_defaults()
        .with_root_certificates(roots)
        .with_no_client_auth();
    if !tls.verify {
        cfg.dangerous()
            .set_certificate_verifier(std::sync::Arc::new(NoVerify));
    }
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(cfg))
}

/// Builds the web pool from the configuration, with TLS as configured (verify by default).
pub fn web_pool_from_config(cfg: &crate::config::WebDbConfig) -> Result<WebPool, PoolError> {
    let tls = pg_tls_connector(&cfg.tls).map_err(|e| PoolError::WebConfig(e.to_string()))?;
    let mgr = deadpool_postgres::Manager::from_config(
        cfg.pg_config(),
        tls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    deadpool_postgres::Pool::builder(mgr)
        .max_size(cfg.pool_size)
        .build()
        .map_err(|e| PoolError::WebConfig(e.to_string()))
}

/// Why a dedicated web connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum WebConnectError {
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    #[error("cannot connect to PostgreSQL: {}", error_chain(.0))]
    Pg(#[from] tokio_postgres::Error),
}

/// An error with all its sources (tokio-postgres hides the TLS reason in `source()`), so the
/// operator sees e.g. "invalid peer certificate: UnknownIssuer" rather than just "TLS handshake".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        let t = src.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = src.source();
    }
    s
}

/// Opens one dedicated web connection (for LISTEN or a one-off command) with TLS as configured.
/// The caller must poll the returned connection (spawn it or drive it for notifications).
pub async fn connect_web(
    cfg: &crate::config::WebDbConfig,
) -> Result<(tokio_postgres::Client, WebConnection), WebConnectError> {
    let tls = pg_tls_connector(&cfg.tls)?;
    Ok(cfg.pg_config().connect(tls).await?)
}

/// Builds the ERP pool from the configuration (encryption and certificate trust as configured).
pub async fn erp_pool_from_config(cfg: &crate::config::ErpDbConfig) -> Result<ErpPool, PoolError> {
    let mgr = ErpManager::new(cfg.tiberius_config());
    bb8::Pool::builder()
        .max_size(cfg.pool_size)
        .connection_timeout(std::time::Duration::from_secs(15))
        .build(mgr)
        .await
        .map_err(|e| PoolError::ErpConnect(e.to_string()))
}

/// Runs one of the queue's hot statements (claim, complete) as a prepared statement cached per
/// pooled connection.
///
/// Sent as text, each call would be parsed, analysed and planned again (they are CTEs over
/// `sync_queue` with joins): measured with perf during the documents/s benchmark, that parse and
/// plan work was a large part of the web database's CPU, once per claimed document. A connection
/// that lost its prepared statements behind our back (a pooler's `DISCARD ALL`) answers
/// "prepared statement does not exist": the cache is cleared and the statement runs once
/// unprepared, so the caller never sees that error.
pub async fn query_cached(
    client: &deadpool_postgres::ClientWrapper,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
    let stmt = client.prepare_cached(sql).await?;
    match client.query(&stmt, params).await {
        Err(e)
            if e.code() == Some(&tokio_postgres::error::SqlState::INVALID_SQL_STATEMENT_NAME) =>
        {
            client.statement_cache.clear();
            client.query(sql, params).await
        }
        r => r,
    }
}
