//! Connection pools for the two databases.
//!
//! The web side uses deadpool-postgres (every query except the LISTEN connection, which must own
//! its `Connection` to see notifications); the ERP side uses bb8 with our own connection manager
//! ([`ErpManager`]: bounded connect, keepalive, SQL Browser), the same code path in production, in
//! the tests (against the emulator) and against a real SQL Server.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::ErpBounds;
use crate::erp_net::{ErpNetError, ErpTarget};

/// The pooled ERP client type every ERP-side function takes.
pub type ErpClient = tiberius::Client<tokio_util::compat::Compat<tokio::net::TcpStream>>;

/// Bounds of ERP connections. `Default` is what the daemon uses when nothing is configured.
#[derive(Debug, Clone)]
pub struct ErpOptions {
    /// TCP connect (after the SQL Browser lookup) + TLS + login, per attempt; also how long a
    /// borrower waits for a pooled connection.
    pub connect_timeout: Duration,
    /// Longest wait for the answer to any ERP statement (see [`erp_query_timeout`]).
    pub query_timeout: Duration,
}

impl Default for ErpOptions {
    fn default() -> Self {
        let b = ErpBounds::default();
        ErpOptions {
            connect_timeout: b.connect_timeout,
            query_timeout: b.query_timeout,
        }
    }
}

/// 0 until a pool sets it: then the configured default applies.
static ERP_QUERY_TIMEOUT_MS: AtomicU64 = AtomicU64::new(0);

/// The longest wait for the answer to one ERP statement, process-wide: the posting and check-out
/// functions take a bare `&mut ErpClient`, so the bound travels here rather than with the client.
/// Set by the last ERP pool built (one per process in the daemon); before that, the default of
/// `MIKRO_SYNC_MSSQL_QUERY_TIMEOUT`.
pub fn erp_query_timeout() -> Duration {
    match ERP_QUERY_TIMEOUT_MS.load(Ordering::Relaxed) {
        0 => {
            static DEFAULT: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
            *DEFAULT.get_or_init(|| ErpBounds::default().query_timeout)
        }
        ms => Duration::from_millis(ms),
    }
}

/// Sets [`erp_query_timeout`].
pub fn set_erp_query_timeout(d: Duration) {
    ERP_QUERY_TIMEOUT_MS.store(
        d.as_millis().clamp(1, u128::from(u64::MAX)) as u64,
        Ordering::Relaxed,
    );
}

/// Why a new ERP connection failed: the network part or the TDS login, always naming the server.
#[derive(Debug, thiserror::Error)]
pub enum ErpConnectError {
    /// Name resolution, SQL Browser or TCP.
    #[error(transparent)]
    Net(#[from] ErpNetError),
    /// TLS or login.
    #[error("TLS/login with SQL Server at {addr} failed: {message}")]
    Login { addr: String, message: String },
    /// TLS or login did not finish in time.
    #[error("SQL Server at {addr} accepted TCP but did not finish TLS/login within {ms} ms")]
    LoginTimeout { addr: String, ms: u128 },
    /// The check-out test failed: the connection is discarded and another one taken.
    #[error("ERP connection check failed: {0}")]
    Check(String),
}

/// Whether the ERP answers, as seen by connection attempts: one WARN when it stops, one INFO when
/// it is back, and the last connect error for messages that would otherwise say only "timed out".
#[derive(Debug, Default)]
pub struct ErpHealth {
    state: Mutex<HealthState>,
}

#[derive(Debug, Default)]
struct HealthState {
    down_since: Option<Instant>,
    last_error: Option<String>,
}

static ERP_UNREACHABLE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// True while the ERP is unreachable (an outage already announced by one WARN): per-document
/// retry lines caused by it can then stay below WARN.
pub fn erp_unreachable() -> bool {
    ERP_UNREACHABLE.load(Ordering::Relaxed)
}

impl ErpHealth {
    fn failed(&self, target: &str, e: &ErpConnectError) {
        let Ok(mut s) = self.state.lock() else { return };
        let msg = e.to_string();
        ERP_UNREACHABLE.store(true, Ordering::Relaxed);
        if s.down_since.is_none() {
            s.down_since = Some(Instant::now());
            tracing::warn!(erp = %target, error = %msg,
                "ERP (SQL Server) unreachable; documents wait in the queue and are retried");
        }
        s.last_error = Some(msg);
    }

    fn connected(&self, target: &str) {
        ERP_UNREACHABLE.store(false, Ordering::Relaxed);
        let Ok(mut s) = self.state.lock() else { return };
        if let Some(t) = s.down_since.take() {
            tracing::info!(erp = %target, down_for_ms = t.elapsed().as_millis() as u64,
                "ERP (SQL Server) reachable again");
        }
        s.last_error = None;
    }

    /// The last connect error while the ERP is unreachable; `None` when it is up.
    pub fn last_error(&self) -> Option<String> {
        self.state.lock().ok().and_then(|s| s.last_error.clone())
    }

    /// True while connection attempts fail.
    pub fn is_down(&self) -> bool {
        self.state
            .lock()
            .map(|s| s.down_since.is_some())
            .unwrap_or(false)
    }
}

/// The ERP connection manager: bounded connect (SQL Browser lookup for a named instance, TCP with
/// keepalive and user timeout, TLS and login), and a check-out test that also cleans up.
///
/// tiberius cannot tell a broken connection, so the pool tests every connection it hands out,
/// which costs a round trip anyway. We make that round trip useful: besides proving the
/// connection alive it rolls back a transaction an interrupted earlier user may have left open and
/// switches `XACT_ABORT` off again. Every borrower therefore starts on a clean session, which is
/// what lets a posting send `BEGIN TRAN … COMMIT TRAN` in the same round trip as its rows (see
/// `crate::posting::erp`). The test also echoes a number: a connection whose earlier statement
/// timed out may still deliver that statement's late answer, and must then be discarded rather
/// than answer the next borrower with it.
pub struct ErpManager {
    cfg: tiberius::Config,
    target: ErpTarget,
    opts: ErpOptions,
    health: Arc<ErpHealth>,
    nonce: AtomicU32,
}

/// The check-out statement without its echo number (`SELECT @@TRANCOUNT` rather than `SELECT 1`:
/// the server answers it from session state, and the emulator too, without a query of its own).
pub const ERP_CHECKOUT_SQL: &str =
    "IF @@TRANCOUNT > 0 ROLLBACK TRAN; SET XACT_ABORT OFF; SELECT @@TRANCOUNT";

impl ErpManager {
    /// A manager for connections made from `cfg` to `target`.
    pub fn new(cfg: tiberius::Config, target: ErpTarget, opts: ErpOptions) -> Self {
        ErpManager {
            cfg,
            target,
            opts,
            health: Arc::new(ErpHealth::default()),
            nonce: AtomicU32::new(0),
        }
    }

    async fn connect_once(&self) -> Result<ErpClient, ErpConnectError> {
        use tokio_util::compat::TokioAsyncWriteCompatExt;
        let t = &self.target;
        let port = t.resolve_port().await?;
        let addr = match &t.instance {
            Some(i) => format!("{}:{} (instance {})", t.host, port, i),
            None => format!("{}:{}", t.host, port),
        };
        let to = self.opts.connect_timeout;
        let login = |cfg: tiberius::Config, tcp: tokio::net::TcpStream| async move {
            match tokio::time::timeout(to, tiberius::Client::connect(cfg, tcp.compat_write())).await
            {
                Err(_) => Err(None),
                Ok(r) => r.map_err(Some),
            }
        };
        let tcp = crate::erp_net::connect_tcp(&t.host, port, to).await?;
        match login(self.cfg.clone(), tcp).await {
            Ok(c) => Ok(c),
            // Azure SQL and availability-group listeners may redirect the login once.
            Err(Some(tiberius::error::Error::Routing { host, port })) => {
                let mut cfg = self.cfg.clone();
                cfg.host(&host);
                cfg.port(port);
                let addr = format!("{host}:{port} (redirected from {addr})");
                let tcp = crate::erp_net::connect_tcp(&host, port, to).await?;
                login(cfg, tcp).await.map_err(|e| login_error(e, addr, to))
            }
            Err(e) => Err(login_error(e, addr, to)),
        }
    }
}

fn login_error(e: Option<tiberius::error::Error>, addr: String, to: Duration) -> ErpConnectError {
    match e {
        None => ErpConnectError::LoginTimeout {
            addr,
            ms: to.as_millis(),
        },
        Some(e) => ErpConnectError::Login {
            addr,
            message: error_chain(&e),
        },
    }
}

impl bb8::ManageConnection for ErpManager {
    type Connection = ErpClient;
    type Error = ErpConnectError;

    async fn connect(&self) -> Result<Self::Connection, Self::Error> {
        match self.connect_once().await {
            Ok(c) => {
                self.health.connected(&self.target.display());
                Ok(c)
            }
            Err(e) => {
                self.health.failed(&self.target.display(), &e);
                Err(e)
            }
        }
    }

    async fn is_valid(&self, conn: &mut Self::Connection) -> Result<(), Self::Error> {
        let n = i64::from(self.nonce.fetch_add(1, Ordering::Relaxed) % 1000) + 1;
        let sql = format!("{ERP_CHECKOUT_SQL}, {n}");
        let check = async {
            let sets = conn.simple_query(sql).await?.into_results().await?;
            Ok::<_, tiberius::error::Error>(sets)
        };
        let sets = tokio::time::timeout(erp_query_timeout(), check)
            .await
            .map_err(|_| {
                ErpConnectError::Check(format!(
                    "no answer within {} ms",
                    erp_query_timeout().as_millis()
                ))
            })?
            .map_err(|e| ErpConnectError::Check(error_chain(&e)))?;
        let echoed = match sets.as_slice() {
            [rows] if rows.len() == 1 => crate::mikro::get_int(&rows[0], 1),
            _ => None,
        };
        if echoed != Some(n) {
            return Err(ErpConnectError::Check(
                "the connection answered with something else (a late answer to a statement that \
                 timed out); discarded"
                    .into(),
            ));
        }
        Ok(())
    }

    fn has_broken(&self, _conn: &mut Self::Connection) -> bool {
        false
    }
}

/// The ERP pool: bb8 with [`ErpManager`], and a `get` whose error names the server and the last
/// connect error (bb8 alone says only "Timed out in bb8").
#[derive(Clone)]
pub struct ErpPool {
    pool: bb8::Pool<ErpManager>,
    health: Arc<ErpHealth>,
    target: String,
    wait: Duration,
}

impl std::fmt::Debug for ErpPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErpPool")
            .field("target", &self.target)
            .field("state", &self.pool.state())
            .finish()
    }
}

/// Why the ERP pool handed out no connection.
#[derive(Debug, thiserror::Error)]
pub enum ErpPoolError {
    /// Connection attempts fail: the cause is the last one's.
    #[error("SQL Server {target} unreachable (no connection within {waited_ms} ms): {cause}")]
    Unreachable {
        target: String,
        waited_ms: u128,
        cause: String,
    },
    /// The server answers but every connection stayed busy.
    #[error(
        "no free ERP connection within {waited_ms} ms (all {size} in use; \
         MIKRO_SYNC_MSSQL_POOL_SIZE)"
    )]
    Busy { waited_ms: u128, size: u32 },
}

impl ErpPool {
    /// A connection that passed the check-out test, or why there is none.
    pub async fn get(&self) -> Result<bb8::PooledConnection<'_, ErpManager>, ErpPoolError> {
        let t0 = Instant::now();
        match self.pool.get().await {
            Ok(c) => Ok(c),
            Err(e) => {
                let waited_ms = t0.elapsed().as_millis();
                let cause = match e {
                    bb8::RunError::User(e) => Some(e.to_string()),
                    bb8::RunError::TimedOut => self.health.last_error(),
                };
                Err(match cause {
                    Some(cause) => ErpPoolError::Unreachable {
                        target: self.target.clone(),
                        waited_ms,
                        cause,
                    },
                    None => ErpPoolError::Busy {
                        waited_ms,
                        size: self.pool.state().connections,
                    },
                })
            }
        }
    }

    /// bb8's counters.
    pub fn state(&self) -> bb8::State {
        self.pool.state()
    }

    /// Whether connection attempts fail now.
    pub fn health(&self) -> &ErpHealth {
        &self.health
    }

    /// The server as configured (`host:port` or `host\INSTANCE`).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// How long `get` waits.
    pub fn wait(&self) -> Duration {
        self.wait
    }
}

/// Builds the ERP pool; sets the process-wide [`erp_query_timeout`] from `opts`.
pub async fn erp_pool_with(
    cfg: tiberius::Config,
    target: ErpTarget,
    max_size: u32,
    opts: ErpOptions,
) -> Result<ErpPool, PoolError> {
    set_erp_query_timeout(opts.query_timeout);
    let wait = opts.connect_timeout;
    let display = target.display();
    let mgr = ErpManager::new(cfg, target, opts);
    let health = mgr.health.clone();
    let pool = bb8::Pool::builder()
        .max_size(max_size)
        .connection_timeout(wait)
        .build(mgr)
        .await
        .map_err(|e| PoolError::ErpConnect(e.to_string()))?;
    Ok(ErpPool {
        pool,
        health,
        target: display,
        wait,
    })
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
    /// A named instance could not be resolved at start (exit code 2: a setting to fix).
    #[error("cannot find the SQL Server instance: {0}")]
    ErpInstance(String),
}

/// TCP keepalive, TCP user timeout and connect timeout on every web socket, so a peer that
/// vanished silently (no RST: a dead NAT entry, a pulled cable) is noticed within about 30 s
/// instead of the kernel's ~15 minutes of retransmissions: keepalive probes after 15 s idle,
/// every 5 s, 3 unanswered ones end the connection; unacknowledged data ends it after 30 s.
/// Values already set in a URL (`connect_timeout`, `keepalives_idle`, …) win for the first two.
pub fn harden_web_config(c: &mut tokio_postgres::Config) {
    if c.get_connect_timeout().is_none() {
        c.connect_timeout(WEB_CONNECT_TIMEOUT);
    }
    if c.get_tcp_user_timeout().is_none() {
        c.tcp_user_timeout(std::time::Duration::from_secs(30));
    }
    c.keepalives(true)
        .keepalives_idle(std::time::Duration::from_secs(15))
        .keepalives_interval(std::time::Duration::from_secs(5))
        .keepalives_retries(3);
}

/// Bound of opening one web connection.
pub const WEB_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Session settings of every pooled web connection, sent once when it is opened.
///
/// Why a generic plan: the hot statements are prepared once per connection (see
/// [`query_cached`]), and with the default `plan_cache_mode` each connection plans the
/// documents' claim (eleven joined tables) five times for custom plans before it settles on the
/// generic one; each planning costs several times the claim's execution. Forced generic, it is
/// planned once per connection, and again only when a table's statistics change.
pub const WEB_SESSION_SQL: &str = "SET plan_cache_mode = force_generic_plan";

/// The pool's own bounds: waiting for a free connection, opening one, recycling one.
fn bounded_web_pool(
    mgr: deadpool_postgres::Manager,
    max_size: usize,
) -> Result<WebPool, PoolError> {
    deadpool_postgres::Pool::builder(mgr)
        .post_create(deadpool_postgres::Hook::async_fn(|client, _| {
            Box::pin(async move {
                // deadpool bounds the connect, not its hooks.
                match tokio::time::timeout(
                    WEB_CONNECT_TIMEOUT,
                    client.batch_execute(WEB_SESSION_SQL),
                )
                .await
                {
                    Ok(r) => r.map_err(deadpool_postgres::HookError::Backend),
                    Err(_) => Err(deadpool_postgres::HookError::Message(
                        format!("no answer to `{WEB_SESSION_SQL}` within {WEB_CONNECT_TIMEOUT:?}")
                            .into(),
                    )),
                }
            })
        }))
        .max_size(max_size)
        // The most recently used connection first: the hot one has the statements prepared and
        // planned, while the others idle (FIFO would rotate through all, each planning once).
        .queue_mode(deadpool_postgres::QueueMode::Lifo)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(std::time::Duration::from_secs(30)))
        .create_timeout(Some(
            WEB_CONNECT_TIMEOUT + std::time::Duration::from_secs(5),
        ))
        .recycle_timeout(Some(std::time::Duration::from_secs(10)))
        .build()
        .map_err(|e| PoolError::WebConfig(e.to_string()))
}

/// Builds the web pool from a libpq-style URL or key=value string (no TLS; TLS is added by the
/// configuration layer).
pub fn web_pool(url: &str, max_size: usize) -> Result<WebPool, PoolError> {
    let mut pg: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| PoolError::WebConfig(e.to_string()))?;
    harden_web_config(&mut pg);
    let mgr = deadpool_postgres::Manager::from_config(
        pg,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    bounded_web_pool(mgr, max_size)
}

/// Builds the ERP pool from an ADO.NET connection string (`server=tcp:host,port;user=…;…`),
/// with default bounds.
pub async fn erp_pool(ado: &str, max_size: u32) -> Result<ErpPool, PoolError> {
    erp_pool_ado_with(ado, max_size, ErpOptions::default()).await
}

/// [`erp_pool`] with explicit bounds (tests and benchmarks shorten them).
pub async fn erp_pool_ado_with(
    ado: &str,
    max_size: u32,
    opts: ErpOptions,
) -> Result<ErpPool, PoolError> {
    let cfg =
        tiberius::Config::from_ado_string(ado).map_err(|e| PoolError::ErpConfig(e.to_string()))?;
    let addr = cfg.get_addr();
    let (host, port) = match addr.rsplit_once(':') {
        Some((h, p)) => (
            h.to_string(),
            p.parse().unwrap_or(crate::config::DEFAULT_MSSQL_PORT),
        ),
        None => (addr, crate::config::DEFAULT_MSSQL_PORT),
    };
    let target = ErpTarget {
        host,
        port,
        port_explicit: true,
        instance: None,
        browser_port: crate::config::DEFAULT_BROWSER_PORT,
    };
    erp_pool_with(cfg, target, max_size, opts).await
}

/// The connection type of a dedicated web connection (the LISTEN connection, one-off commands):
/// TLS or not is decided at connect time by the `sslmode`, so one type covers both.
pub type WebConnection = tokio_postgres::Connection<
    tokio_postgres::Socket,
    <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<
        tokio_postgres::Socket,
    >>::Stream,
>;

/// Errors setting up TLS for PostgreSQL; they name the setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read PG_SSL_ROOT_CERT {path}: {message}")]
    RootCert { path: String, message: String },
    #[error("cannot set up TLS for PostgreSQL: {0}")]
    Provider(String),
}

/// Accepts any server certificate. Used only with the explicit opt-out
/// `PG_SSL_INSECURE_SKIP_VERIFY=true`; traffic is still encrypted and the handshake signatures
/// are still checked, so the peer at least holds the key of the certificate it shows.
#[derive(Debug)]
struct NoVerify(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Reads the extra CA file: every PEM certificate in it must parse and be usable as a root.
fn load_root_cert(
    path: &std::path::Path,
    roots: &mut rustls::RootCertStore,
) -> Result<(), TlsSetupError> {
    use rustls::pki_types::pem::PemObject;
    let err = |message: String| TlsSetupError::RootCert {
        path: path.display().to_string(),
        message,
    };
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let mut found = 0usize;
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| err(format!("not a PEM certificate file ({e})")))?;
        roots.add(cert).map_err(|e| err(e.to_string()))?;
        found += 1;
    }
    if found == 0 {
        return Err(err("no PEM certificate found in the file".into()));
    }
    Ok(())
}

/// Builds the rustls connector for PostgreSQL: the system trust store plus the configured extra
/// CA, verifying chain and host name unless verification was explicitly switched off.
///
/// The crypto provider is ring, named here rather than installed process-wide, so nothing depends
/// on which provider another crate might have installed first. (rustls now prefers aws-lc-rs for
/// its post-quantum key exchange; ring keeps the build free of aws-lc's C toolchain and is what
/// the rest of the dependency tree already links.)
#[allow(deprecated)]
pub fn pg_tls_connector(
    tls: &crate::config::PgTls,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, TlsSetupError> {
    let mut roots = rustls::RootCertStore::empty();
    // A missing or partly unreadable system store is not fatal: an explicit root cert may suffice.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = &tls.root_cert {
        load_root_cert(path, &mut roots)?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Provider(e.to_string()))?;
    let cfg = if tls.verify {
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    };
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(cfg))
}

/// Builds the web pool from the configuration, with TLS as configured (verify by default).
pub fn web_pool_from_config(cfg: &crate::config::WebDbConfig) -> Result<WebPool, PoolError> {
    let tls = pg_tls_connector(&cfg.tls).map_err(|e| PoolError::WebConfig(e.to_string()))?;
    let mut pg = cfg.pg_config();
    harden_web_config(&mut pg);
    let mgr = deadpool_postgres::Manager::from_config(
        pg,
        tls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    bounded_web_pool(mgr, cfg.pool_size)
}

/// Why a dedicated web connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum WebConnectError {
    #[error(transparent)]
    Tls(#[from] TlsSetupError),
    #[error("cannot connect to PostgreSQL: {}", error_chain(.0))]
    Pg(#[from] tokio_postgres::Error),
}

/// An error with all its sources on one line (tokio-postgres hides the TLS reason and the whole
/// server error in `source()`: its own text is just "db error"), so the operator sees e.g.
/// "invalid peer certificate: UnknownIssuer" or "db error: ERROR 57P01: terminating connection
/// due to administrator command" rather than just "TLS handshake" or "db error".
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        let t = match src.downcast_ref::<tokio_postgres::error::DbError>() {
            Some(db) => pg_db_error(db),
            None => src.to_string(),
        };
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = src.source();
    }
    s
}

/// The one text of a PostgreSQL error for messages and logs: a server error in full (severity,
/// SQLSTATE, message, detail, hint), anything else with its causes (tokio-postgres' own Display
/// says only "db error" or "error communicating with the server").
pub fn pg_error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => pg_db_error(db),
        None => error_chain(e),
    }
}

/// [`pg_error_text`] for the web pool's errors (deadpool wraps the connect error as "Error
/// occurred while creating a new object: db error").
pub fn pool_error_text(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(pg) => {
            format!(
                "cannot open a web database connection: {}",
                pg_error_text(pg)
            )
        }
        deadpool_postgres::PoolError::PostCreateHook(deadpool_postgres::HookError::Backend(pg)) => {
            format!(
                "cannot set up a new web database connection ({WEB_SESSION_SQL}): {}",
                pg_error_text(pg)
            )
        }
        other => error_chain(other),
    }
}

/// A PostgreSQL server error on one line: severity, SQLSTATE, message, detail, hint, where.
pub fn pg_db_error(db: &tokio_postgres::error::DbError) -> String {
    let mut s = format!("{} {}: {}", db.severity(), db.code().code(), db.message());
    let extra: Vec<String> = [
        ("detail", db.detail()),
        ("hint", db.hint()),
        ("where", db.where_()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| format!("{k}: {}", v.replace('\n', " "))))
    .collect();
    if !extra.is_empty() {
        s.push_str(&format!(" ({})", extra.join("; ")));
    }
    s
}

/// Opens one dedicated web connection (for LISTEN or a one-off command) with TLS as configured.
/// The caller must poll the returned connection (spawn it or drive it for notifications).
pub async fn connect_web(
    cfg: &crate::config::WebDbConfig,
) -> Result<(tokio_postgres::Client, WebConnection), WebConnectError> {
    let tls = pg_tls_connector(&cfg.tls)?;
    let mut pg = cfg.pg_config();
    harden_web_config(&mut pg);
    Ok(pg.connect(tls).await?)
}

/// Builds the ERP pool from the configuration (encryption, certificate trust and bounds as
/// configured). A named instance without a port is looked up once here, so a wrong instance name
/// or a silent SQL Server Browser stops the program at start with the fix, instead of retrying
/// documents forever.
pub async fn erp_pool_from_config(cfg: &crate::config::ErpDbConfig) -> Result<ErpPool, PoolError> {
    let target = cfg.target();
    if target.needs_browser() {
        target
            .resolve_port()
            .await
            .map_err(|e| PoolError::ErpInstance(e.to_string()))?;
    }
    erp_pool_with(
        cfg.tiberius_config(),
        target,
        cfg.pool_size,
        ErpOptions {
            connect_timeout: cfg.connect_timeout,
            query_timeout: cfg.query_timeout,
        },
    )
    .await
}

/// Runs one of the queue's hot statements (claim, complete) as a prepared statement cached per
/// pooled connection.
///
/// Sent as text, each call would be parsed, analysed and planned again (they are CTEs over
/// `sync_queue` with joins), and that work, once per claimed document, is a large part of the
/// web database's CPU. A connection
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
