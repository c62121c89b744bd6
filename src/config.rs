//! Configuration: environment variables, an optional `.env` file and an optional TOML file.
//!
//! Why this shape: operators migrating from the old Node tool keep their `.env` unchanged, so its
//! names (`PG_HOST`, `MSSQL_SERVER`, `BATCH_SIZE`, …) are read as they are; every newer setting
//! is `MIKRO_SYNC_*`. All parsing happens in [`Config::from_map`], a pure function over a
//! key → value map, so tests need no process environment and every bad value is reported at
//! start with the name of the variable that holds it. The full table of settings, with defaults,
//! is in `docs/configuration.md` and mirrored by [`SETTINGS`].
//!
//! Precedence (highest first): process environment, `.env` in the working directory, the TOML
//! file given with `--config`, built-in defaults.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A secret string (a password). Its `Debug` and `Display` print `***`, so a config dumped into
/// a log or a panic message never leaks it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The real value, for the one place that needs it (building a connection).
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// True when no secret was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "(empty)" } else { "***" })
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// One problem with one setting; the message names the variable so the operator knows what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// The variable name (`PG_PORT`, `MIKRO_SYNC_POLL_INTERVAL`, …).
    pub var: String,
    /// What is wrong and what is accepted.
    pub message: String,
}

impl fmt::Display for SettingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.var, self.message)
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// One or more settings have invalid values (all of them are listed).
    #[error("invalid configuration:\n{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<SettingError>),
    /// A connection this command needs is not configured.
    #[error("{0}")]
    Missing(String),
    /// The `.env` or TOML file could not be read or parsed.
    #[error("cannot read {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// PostgreSQL TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgTls {
    /// Whether TLS is used: disable, prefer (TLS when the server offers it) or require.
    pub mode: PgSslMode,
    /// Verify the server certificate chain and host name (default true). Turning it off is the
    /// explicit opt-out `PG_SSL_INSECURE_SKIP_VERIFY=true`.
    pub verify: bool,
    /// Extra CA certificate (PEM) to trust besides the system store, e.g. Supabase's root CA.
    pub root_cert: Option<PathBuf>,
}

/// How PostgreSQL TLS is negotiated (libpq's `sslmode` subset tokio-postgres implements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgSslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it.
    Prefer,
    /// TLS or fail.
    Require,
}

impl PgSslMode {
    fn as_str(self) -> &'static str {
        match self {
            PgSslMode::Disable => "disable",
            PgSslMode::Prefer => "prefer",
            PgSslMode::Require => "require",
        }
    }
}

/// The web database (PostgreSQL) connection.
#[derive(Clone)]
pub struct WebDbConfig {
    /// Host name, IP address or unix socket directory.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Database name.
    pub database: String,
    /// Login.
    pub user: String,
    /// Password (masked everywhere).
    pub password: Secret,
    /// TLS.
    pub tls: PgTls,
    /// Connection pool size.
    pub pool_size: usize,
    /// Where the settings came from (`PG_*` or a URL variable), shown by `mikro-sync config`.
    pub source: String,
    /// The parsed URL, when configured by one: its other parameters (`options`,
    /// `target_session_attrs`, extra hosts, …) are kept as given.
    pub url_config: Option<tokio_postgres::Config>,
}

impl fmt::Debug for WebDbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebDbConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("tls", &self.tls)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

impl WebDbConfig {
    /// The tokio-postgres configuration (with the real password; never log it).
    pub fn pg_config(&self) -> tokio_postgres::Config {
        let mut c = match &self.url_config {
            Some(u) => u.clone(),
            None => {
                let mut c = tokio_postgres::Config::new();
                c.host(&self.host).port(self.port);
                c
            }
        };
        c.dbname(&self.database).user(&self.user);
        if c.get_application_name().is_none() {
            c.application_name("mikro-sync");
        }
        if c.get_connect_timeout().is_none() {
            c.connect_timeout(Duration::from_secs(10));
        }
        c.keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .ssl_mode(match self.tls.mode {
                PgSslMode::Disable => tokio_postgres::config::SslMode::Disable,
                PgSslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
                PgSslMode::Require => tokio_postgres::config::SslMode::Require,
            });
        if !self.password.is_empty() {
            c.password(self.password.expose());
        }
        c
    }

    /// A display form with the password masked.
    pub fn display_masked(&self) -> String {
        format!(
            "postgres://{}:{}@{}:{}/{} (sslmode={}, verify={}{})",
            self.user,
            if self.password.is_empty() { "" } else { "***" },
            self.host,
            self.port,
            self.database,
            self.tls.mode.as_str(),
            self.tls.verify,
            self.tls
                .root_cert
                .as_ref()
                .map(|p| format!(", root cert {}", p.display()))
                .unwrap_or_default()
        )
    }
}

/// SQL Server encryption, as tiberius offers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErpEncrypt {
    /// Everything encrypted (`MSSQL_ENCRYPT=true`, the default).
    Required,
    /// Only the login packet encrypted (`MSSQL_ENCRYPT=false`, SQL Server's classic behaviour).
    LoginOnly,
    /// No TLS at all (`MSSQL_ENCRYPT=plaintext`; for servers without TLS support, e.g. some test setups).
    Plaintext,
}

impl ErpEncrypt {
    fn as_str(self) -> &'static str {
        match self {
            ErpEncrypt::Required => "true",
            ErpEncrypt::LoginOnly => "false",
            ErpEncrypt::Plaintext => "plaintext",
        }
    }
}

/// The Mikro database (SQL Server) connection.
#[derive(Clone)]
pub struct ErpDbConfig {
    /// Host name or IP address.
    pub host: String,
    /// Named instance (`host\INSTANCE`), if any.
    pub instance: Option<String>,
    /// TCP port.
    pub port: u16,
    /// Database name (the Mikro company database, e.g. `MikroDB_V16_FIRMA`).
    pub database: String,
    /// SQL login.
    pub user: String,
    /// Password (masked everywhere).
    pub password: Secret,
    /// Encryption level.
    pub encrypt: ErpEncrypt,
    /// Accept any server certificate: the explicit opt-in `MSSQL_TRUST_SERVER_CERTIFICATE=true`.
    pub trust_server_certificate: bool,
    /// A CA certificate (PEM/DER) to trust for the server certificate instead of trusting blindly.
    pub trust_cert_ca: Option<PathBuf>,
    /// Connection pool size.
    pub pool_size: u32,
    /// Where the settings came from.
    pub source: String,
    /// Whether the port was given (`host,port`, `MSSQL_PORT`); a named instance without one is
    /// looked up through SQL Server Browser.
    pub port_explicit: bool,
    /// SQL Server Browser's UDP port (`MIKRO_SYNC_MSSQL_BROWSER_PORT`, 1434).
    pub browser_port: u16,
    /// Bound of one connection attempt (`MIKRO_SYNC_MSSQL_CONNECT_TIMEOUT`).
    pub connect_timeout: Duration,
    /// Bound of every ERP statement (`MIKRO_SYNC_MSSQL_QUERY_TIMEOUT`).
    pub query_timeout: Duration,
}

impl fmt::Debug for ErpDbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErpDbConfig")
            .field("host", &self.host)
            .field("instance", &self.instance)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password)
            .field("encrypt", &self.encrypt)
            .field("trust_server_certificate", &self.trust_server_certificate)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

impl ErpDbConfig {
    /// Where connections go (host, port or SQL Browser lookup, instance).
    pub fn target(&self) -> crate::erp_net::ErpTarget {
        crate::erp_net::ErpTarget {
            host: self.host.clone(),
            port: self.port,
            port_explicit: self.port_explicit || self.instance.is_none(),
            instance: self.instance.clone(),
            browser_port: self.browser_port,
        }
    }

    /// The tiberius configuration (with the real password; never log it).
    pub fn tiberius_config(&self) -> tiberius::Config {
        let mut c = tiberius::Config::new();
        c.host(&self.host);
        c.port(self.port);
        if let Some(i) = &self.instance {
            c.instance_name(i);
        }
        c.database(&self.database);
        c.application_name("mikro-sync");
        c.authentication(tiberius::AuthMethod::sql_server(
            &self.user,
            self.password.expose(),
        ));
        c.encryption(match self.encrypt {
            ErpEncrypt::Required => tiberius::EncryptionLevel::Required,
            ErpEncrypt::LoginOnly => tiberius::EncryptionLevel::Off,
            ErpEncrypt::Plaintext => tiberius::EncryptionLevel::NotSupported,
        });
        if self.trust_server_certificate {
            c.trust_cert();
        } else if let Some(ca) = &self.trust_cert_ca {
            c.trust_cert_ca(ca.display().to_string());
        }
        c
    }

    /// An ADO.NET connection string with the real password (for `db::erp_pool`; never log it).
    pub fn ado_string(&self) -> String {
        let server = match &self.instance {
            Some(i) => format!("tcp:{}\\{},{}", self.host, i, self.port),
            None => format!("tcp:{},{}", self.host, self.port),
        };
        let mut s = format!(
            "server={server};database={};user={};password={};encrypt={};TrustServerCertificate={}",
            ado_quote(&self.database),
            ado_quote(&self.user),
            ado_quote(self.password.expose()),
            match self.encrypt {
                ErpEncrypt::Required => "true",
                ErpEncrypt::LoginOnly => "false",
                ErpEncrypt::Plaintext => "DANGER_PLAINTEXT",
            },
            self.trust_server_certificate
        );
        if let (false, Some(ca)) = (self.trust_server_certificate, &self.trust_cert_ca) {
            s.push_str(&format!(";TrustServerCertificateCA={}", ca.display()));
        }
        s
    }

    /// A display form with the password masked.
    pub fn display_masked(&self) -> String {
        format!(
            "mssql://{}:{}@{}{}:{}/{} (encrypt={}, trust_server_certificate={}{})",
            self.user,
            if self.password.is_empty() { "" } else { "***" },
            self.host,
            self.instance
                .as_ref()
                .map(|i| format!("\\{i}"))
                .unwrap_or_default(),
            self.port,
            self.database,
            self.encrypt.as_str(),
            self.trust_server_certificate,
            self.trust_cert_ca
                .as_ref()
                .map(|p| format!(", ca {}", p.display()))
                .unwrap_or_default()
        )
    }
}

fn ado_quote(v: &str) -> String {
    if v.contains(';') || v.contains('=') || v.starts_with(' ') || v.ends_with(' ') {
        format!("{{{}}}", v.replace('}', "}}"))
    } else {
        v.to_string()
    }
}

/// Log output format on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (journald adds its own timestamps).
    Text,
    /// One JSON object per line.
    Json,
}

/// Worker (web → ERP) settings.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerSettings {
    /// Documents posted concurrently by one worker process.
    pub concurrency: usize,
    /// Rows claimed per batch (`BATCH_SIZE`).
    pub batch_size: usize,
    /// Claimed rows kept ready beyond those in flight, so a freed slot starts the next document
    /// without a claim round trip (`MIKRO_SYNC_WORKER_PREFETCH`, default = concurrency, 0 = off).
    pub prefetch: Option<usize>,
    /// Safety-net poll interval; LISTEN/NOTIFY wakes the worker immediately.
    pub poll_interval: Duration,
    /// Attempts for data errors (missing mapping, validation) before `failed` (`MAX_RETRY_COUNT`).
    pub max_data_attempts: u32,
    /// Total time transient failures (connection lost, deadlock) keep being retried.
    pub transient_retry_for: Duration,
    /// First backoff delay.
    pub backoff_initial: Duration,
    /// Longest backoff delay.
    pub backoff_max: Duration,
    /// How long a sale without lines waits for them before failing with "no lines".
    pub settle_window: Duration,
    /// How often queue statistics are logged.
    pub stats_interval: Duration,
    /// Longest one posting may take before it counts as a transient failure.
    pub posting_timeout: Duration,
    /// Lease expiries (the worker crashed or hung holding it) before a document ends `failed`.
    pub max_lease_expiries: u32,
}

/// Posting settings (how documents are written into Mikro).
#[derive(Debug, Clone, PartialEq)]
pub struct PostingSettings {
    /// The company's time zone; every Mikro datetime is local wall-clock time in it.
    pub timezone: chrono_tz::Tz,
    /// Series for sales when the web row has none.
    pub sale_series: String,
    /// Series for collections when the web row has none.
    pub collection_series: String,
    /// Bank code used when a document paid to a bank names none.
    pub default_bank: Option<String>,
    /// Cash-box code used when a cash document names none.
    pub default_kasa: Option<String>,
    /// Mikro account for customers made on the web without a mapping (off = none).
    pub default_cari: Option<String>,
    /// Portfolio box (`KASALAR.kas_kod`) received cheques go to.
    pub cek_box: String,
    /// Portfolio box received promissory notes go to.
    pub senet_box: String,
    /// Depot number written on sale lines.
    pub depot_no: i32,
    /// How long a posting waits for the per-series numbering lock.
    pub number_lock_timeout: Duration,
    /// Document dates before this are refused.
    pub earliest_date: chrono::NaiveDate,
    /// Document dates more than this many days after today (company zone) are refused.
    pub max_days_ahead: i64,
    /// Post sale lines whose product is passive in Mikro.
    pub allow_passive_products: bool,
}

/// The whole effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The web database; `None` when nothing is configured (commands that need it fail with
    /// [`ConfigError::Missing`]).
    pub web: Option<WebDbConfig>,
    /// The Mikro database; `None` when nothing is configured.
    pub erp: Option<ErpDbConfig>,
    /// Worker settings.
    pub worker: WorkerSettings,
    /// Posting settings.
    pub posting: PostingSettings,
    /// ERP → web sync interval in the daemon; `None` disables it.
    pub erp_sync_interval: Option<Duration>,
    /// How far back every incremental ERP → web run re-reads (clock skew, long transactions).
    pub erp_sync_overlap: Duration,
    /// How often the ERP → web sync re-reads each entity in full; `None` = never.
    pub erp_sync_full_every: Option<Duration>,
    /// Metrics/health HTTP listener; `None` (default) = off.
    pub metrics_listen: Option<SocketAddr>,
    /// `tracing` filter directive (from `LOG_LEVEL`).
    pub log_level: String,
    /// stdout log format.
    pub log_format: LogFormat,
    /// Directory for `combined.log` and `error.log`; `None` = stdout only.
    pub log_dir: Option<PathBuf>,
}

impl Config {
    /// The web database settings, or a message saying which variables to set.
    pub fn web(&self) -> Result<&WebDbConfig, ConfigError> {
        self.web.as_ref().ok_or_else(|| {
            ConfigError::Missing(
                "the web database is not configured: set MIKRO_SYNC_PG_URL (or DATABASE_URL), \
                 or PG_HOST, PG_DATABASE, PG_USER and PG_PASSWORD (see docs/configuration.md)"
                    .into(),
            )
        })
    }

    /// The Mikro database settings, or a message saying which variables to set.
    pub fn erp(&self) -> Result<&ErpDbConfig, ConfigError> {
        self.erp.as_ref().ok_or_else(|| {
            ConfigError::Missing(
                "the Mikro (SQL Server) database is not configured: set MIKRO_SYNC_MSSQL_ADO, or \
                 MSSQL_SERVER, MSSQL_DATABASE, MSSQL_USER and MSSQL_PASSWORD (see docs/configuration.md)"
                    .into(),
            )
        })
    }

    /// Loads the configuration for a process: the TOML file (if given), `.env` (if present) and
    /// the process environment, then [`Config::from_map`].
    pub fn load(toml_file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut map = BTreeMap::new();
        if let Some(p) = toml_file {
            map.extend(read_toml_file(p)?);
        }
        let dotenv = Path::new(".env");
        if dotenv.is_file() {
            let iter = dotenvy::from_path_iter(dotenv).map_err(|e| ConfigError::File {
                path: dotenv.into(),
                message: e.to_string(),
            })?;
            for item in iter {
                let (k, v) = item.map_err(|e| ConfigError::File {
                    path: dotenv.into(),
                    message: e.to_string(),
                })?;
                map.insert(k, v);
            }
        }
        for (k, v) in std::env::vars() {
            map.insert(k, v);
        }
        Config::from_map(&map)
    }

    /// Parses the configuration from a key → value map (names as in docs/configuration.md).
    /// Pure: no environment, no files. Collects every invalid value before failing.
    pub fn from_map(map: &BTreeMap<String, String>) -> Result<Config, ConfigError> {
        let mut p = Parser {
            map,
            errors: Vec::new(),
        };
        let web = p.web();
        let erp = p.erp();
        let defaults_batch = 100;
        let worker = WorkerSettings {
            concurrency: p.num("MIKRO_SYNC_WORKER_CONCURRENCY", 4usize, 1, 256),
            batch_size: p.num("BATCH_SIZE", defaults_batch, 1, 10_000),
            prefetch: p
                .get("MIKRO_SYNC_WORKER_PREFETCH")
                .map(|_| p.num("MIKRO_SYNC_WORKER_PREFETCH", 0usize, 0, 10_000)),
            poll_interval: p.duration("MIKRO_SYNC_POLL_INTERVAL", Duration::from_secs(5)),
            max_data_attempts: p.num("MAX_RETRY_COUNT", 3u32, 1, 1000),
            transient_retry_for: p.duration(
                "MIKRO_SYNC_RETRY_TRANSIENT_FOR",
                Duration::from_secs(24 * 3600),
            ),
            backoff_initial: p.duration("MIKRO_SYNC_BACKOFF_INITIAL", Duration::from_secs(1)),
            backoff_max: p.duration("MIKRO_SYNC_BACKOFF_MAX", Duration::from_secs(600)),
            settle_window: p.duration("MIKRO_SYNC_SETTLE_WINDOW", Duration::from_secs(60)),
            stats_interval: p.duration("MIKRO_SYNC_STATS_INTERVAL", Duration::from_secs(30)),
            posting_timeout: p.duration("MIKRO_SYNC_POSTING_TIMEOUT", Duration::from_secs(120)),
            max_lease_expiries: p.num("MIKRO_SYNC_MAX_LEASE_EXPIRIES", 3u32, 0, 1000),
        };
        if worker.posting_timeout.is_zero() {
            p.err(
                "MIKRO_SYNC_POSTING_TIMEOUT",
                "must be greater than 0 (e.g. 2m): every posting needs a bound",
            );
        }
        if worker.poll_interval.is_zero() {
            p.err(
                "MIKRO_SYNC_POLL_INTERVAL",
                "must be greater than 0 (it is the safety net behind LISTEN/NOTIFY)",
            );
        }
        if worker.backoff_max < worker.backoff_initial {
            p.err(
                "MIKRO_SYNC_BACKOFF_MAX",
                "must not be smaller than MIKRO_SYNC_BACKOFF_INITIAL",
            );
        }
        let sale_series = p.series("MIKRO_SYNC_SERIES_SATIS", "ST");
        let posting = PostingSettings {
            timezone: p.timezone(),
            sale_series,
            collection_series: p.series("MIKRO_SYNC_SERIES_TAHSILAT", "TH"),
            default_bank: p.code("MIKRO_SYNC_DEFAULT_BANKA"),
            default_kasa: p.code("MIKRO_SYNC_DEFAULT_KASA"),
            default_cari: p
                .code("MIKRO_SYNC_DEFAULT_CARI")
                .filter(|c| !c.eq_ignore_ascii_case("off")),
            cek_box: p
                .code("MIKRO_SYNC_CEK_KASA")
                .unwrap_or_else(|| "ÇEK".into()),
            senet_box: p
                .code("MIKRO_SYNC_SENET_KASA")
                .unwrap_or_else(|| "SENET".into()),
            depot_no: p.num("MIKRO_SYNC_DEPO_NO", 1i32, 0, 32_767),
            number_lock_timeout: p
                .duration("MIKRO_SYNC_NUMBER_LOCK_TIMEOUT", Duration::from_secs(10)),
            earliest_date: p.date("MIKRO_SYNC_EARLIEST_DATE", (2000, 1, 1)),
            max_days_ahead: p.num("MIKRO_SYNC_MAX_DAYS_AHEAD", 1i64, 0, 36_500),
            allow_passive_products: p.bool("MIKRO_SYNC_ALLOW_PASSIVE_PRODUCTS", false),
        };
        let erp_sync_interval = p.optional_duration(
            "MIKRO_SYNC_ERP_SYNC_INTERVAL",
            Some(Duration::from_secs(60)),
        );
        let erp_sync_overlap = p.duration("MIKRO_SYNC_ERP_SYNC_OVERLAP", Duration::from_secs(300));
        let erp_sync_full_every = p.optional_duration(
            "MIKRO_SYNC_ERP_SYNC_FULL_EVERY",
            Some(Duration::from_secs(24 * 3600)),
        );
        let metrics_listen = p.metrics_listen();
        let log_level = p.log_level();
        let log_format = match p.get("MIKRO_SYNC_LOG_FORMAT") {
            None => LogFormat::Text,
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "text" | "pretty" | "plain" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => {
                    p.err(
                        "MIKRO_SYNC_LOG_FORMAT",
                        format!("`{v}`: expected text or json"),
                    );
                    LogFormat::Text
                }
            },
        };
        let log_dir = p.get("MIKRO_SYNC_LOG_DIR").map(PathBuf::from);
        if !p.errors.is_empty() {
            return Err(ConfigError::Invalid(p.errors));
        }
        Ok(Config {
            web,
            erp,
            worker,
            posting,
            erp_sync_interval,
            erp_sync_overlap,
            erp_sync_full_every,
            metrics_listen,
            log_level,
            log_format,
            log_dir,
        })
    }

    /// The effective configuration as `NAME = value` lines, secrets masked; what
    /// `mikro-sync config` prints.
    pub fn render_masked(&self) -> String {
        let mut out = Vec::<(String, String)>::new();
        let d = |d: Duration| humantime(d);
        match &self.web {
            Some(w) => {
                out.push(("web database".into(), w.display_masked()));
                out.push(("  from".into(), w.source.clone()));
                out.push(("MIKRO_SYNC_PG_POOL_SIZE".into(), w.pool_size.to_string()));
            }
            None => out.push(("web database".into(), "(not configured)".into())),
        }
        match &self.erp {
            Some(e) => {
                out.push(("Mikro database".into(), e.display_masked()));
                out.push(("  from".into(), e.source.clone()));
                out.push(("MIKRO_SYNC_MSSQL_POOL_SIZE".into(), e.pool_size.to_string()));
            }
            None => out.push(("Mikro database".into(), "(not configured)".into())),
        }
        let w = &self.worker;
        out.push((
            "MIKRO_SYNC_WORKER_CONCURRENCY".into(),
            w.concurrency.to_string(),
        ));
        out.push(("BATCH_SIZE".into(), w.batch_size.to_string()));
        out.push((
            "MIKRO_SYNC_WORKER_PREFETCH".into(),
            match w.prefetch {
                Some(n) => n.to_string(),
                None => format!("{} (= concurrency)", w.concurrency),
            },
        ));
        out.push(("MIKRO_SYNC_POLL_INTERVAL".into(), d(w.poll_interval)));
        out.push(("MAX_RETRY_COUNT".into(), w.max_data_attempts.to_string()));
        out.push((
            "MIKRO_SYNC_RETRY_TRANSIENT_FOR".into(),
            d(w.transient_retry_for),
        ));
        out.push(("MIKRO_SYNC_BACKOFF_INITIAL".into(), d(w.backoff_initial)));
        out.push(("MIKRO_SYNC_BACKOFF_MAX".into(), d(w.backoff_max)));
        out.push(("MIKRO_SYNC_SETTLE_WINDOW".into(), d(w.settle_window)));
        out.push(("MIKRO_SYNC_STATS_INTERVAL".into(), d(w.stats_interval)));
        out.push(("MIKRO_SYNC_POSTING_TIMEOUT".into(), d(w.posting_timeout)));
        out.push((
            "MIKRO_SYNC_MAX_LEASE_EXPIRIES".into(),
            w.max_lease_expiries.to_string(),
        ));
        let p = &self.posting;
        out.push(("MIKRO_SYNC_TIMEZONE".into(), p.timezone.name().to_string()));
        out.push(("MIKRO_SYNC_SERIES_SATIS".into(), p.sale_series.clone()));
        out.push((
            "MIKRO_SYNC_SERIES_TAHSILAT".into(),
            p.collection_series.clone(),
        ));
        out.push((
            "MIKRO_SYNC_DEFAULT_BANKA".into(),
            p.default_bank.clone().unwrap_or_else(|| "(none)".into()),
        ));
        out.push((
            "MIKRO_SYNC_DEFAULT_KASA".into(),
            p.default_kasa.clone().unwrap_or_else(|| "(none)".into()),
        ));
        out.push((
            "MIKRO_SYNC_DEFAULT_CARI".into(),
            p.default_cari.clone().unwrap_or_else(|| "off".into()),
        ));
        out.push(("MIKRO_SYNC_CEK_KASA".into(), p.cek_box.clone()));
        out.push(("MIKRO_SYNC_SENET_KASA".into(), p.senet_box.clone()));
        out.push(("MIKRO_SYNC_DEPO_NO".into(), p.depot_no.to_string()));
        out.push((
            "MIKRO_SYNC_NUMBER_LOCK_TIMEOUT".into(),
            d(p.number_lock_timeout),
        ));
        out.push((
            "MIKRO_SYNC_EARLIEST_DATE".into(),
            p.earliest_date.to_string(),
        ));
        out.push((
            "MIKRO_SYNC_MAX_DAYS_AHEAD".into(),
            p.max_days_ahead.to_string(),
        ));
        out.push((
            "MIKRO_SYNC_ALLOW_PASSIVE_PRODUCTS".into(),
            p.allow_passive_products.to_string(),
        ));
        out.push((
            "MIKRO_SYNC_ERP_SYNC_INTERVAL".into(),
            self.erp_sync_interval
                .map(d)
                .unwrap_or_else(|| "off".into()),
        ));
        out.push((
            "MIKRO_SYNC_ERP_SYNC_OVERLAP".into(),
            d(self.erp_sync_overlap),
        ));
        out.push((
            "MIKRO_SYNC_ERP_SYNC_FULL_EVERY".into(),
            self.erp_sync_full_every
                .map(d)
                .unwrap_or_else(|| "off".into()),
        ));
        out.push((
            "MIKRO_SYNC_METRICS_LISTEN".into(),
            self.metrics_listen
                .map(|a| a.to_string())
                .unwrap_or_else(|| "off".into()),
        ));
        out.push(("LOG_LEVEL".into(), self.log_level.clone()));
        out.push((
            "MIKRO_SYNC_LOG_FORMAT".into(),
            match self.log_format {
                LogFormat::Text => "text".into(),
                LogFormat::Json => "json".into(),
            },
        ));
        out.push((
            "MIKRO_SYNC_LOG_DIR".into(),
            self.log_dir
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(stdout only)".into()),
        ));
        let width = out.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        out.iter()
            .map(|(k, v)| format!("{k:<width$}  {v}\n"))
            .collect()
    }
}

/// Formats a duration the way the configuration accepts it (`5s`, `2m`, `500ms`).
pub fn humantime(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0s".into()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Parses `500ms`, `5s`, `2m`, `1h`, `1d` or a plain number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (num, unit) = if split == 0 {
        return None;
    } else {
        s.split_at(split)
    };
    let n: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" | "sec" | "secs" => n,
        "m" | "min" | "mins" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

fn parse_duration_or_secs(s: &str) -> Option<Duration> {
    let t = s.trim();
    if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()) {
        return t.parse().ok().map(Duration::from_secs);
    }
    parse_duration(t)
}

/// Reads a TOML file into the flat key → value map [`Config::from_map`] takes: nested tables
/// are joined with `_` and upper-cased (`[pg] host = "x"` → `PG_HOST`; `[mikro_sync]
/// poll_interval = "5s"` → `MIKRO_SYNC_POLL_INTERVAL`); flat upper-case keys work as they are.
pub fn read_toml_file(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.into(),
        message: e.to_string(),
    })?;
    let map = parse_toml(&text).map_err(|message| ConfigError::File {
        path: path.into(),
        message,
    })?;
    // A typo in a file is silent otherwise: reject names mikro-sync does not read.
    let unknown: Vec<&String> = map.keys().filter(|k| !is_known_setting(k)).collect();
    if !unknown.is_empty() {
        return Err(ConfigError::File {
            path: path.into(),
            message: format!(
                "unknown setting(s) {}; see `mikro-sync config --list`",
                unknown
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    Ok(map)
}

/// True for a name listed in [`SETTINGS`] (each `A / B` entry lists two names).
pub fn is_known_setting(name: &str) -> bool {
    SETTINGS
        .iter()
        .any(|s| s.name.split(" / ").any(|n| n.trim() == name))
}

/// Parses TOML text into the flat map (see [`read_toml_file`]).
pub fn parse_toml(text: &str) -> Result<BTreeMap<String, String>, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    let mut out = BTreeMap::new();
    fn walk(
        prefix: &str,
        t: &toml::Table,
        out: &mut BTreeMap<String, String>,
    ) -> Result<(), String> {
        for (k, v) in t {
            let key = if prefix.is_empty() {
                k.to_ascii_uppercase()
            } else {
                format!("{prefix}_{}", k.to_ascii_uppercase())
            };
            match v {
                toml::Value::Table(inner) => walk(&key, inner, out)?,
                toml::Value::String(s) => {
                    out.insert(key, s.clone());
                }
                toml::Value::Integer(i) => {
                    out.insert(key, i.to_string());
                }
                toml::Value::Float(f) => {
                    out.insert(key, f.to_string());
                }
                toml::Value::Boolean(b) => {
                    out.insert(key, b.to_string());
                }
                other => return Err(format!("{key}: unsupported value {other}")),
            }
        }
        Ok(())
    }
    walk("", &table, &mut out)?;
    Ok(out)
}

struct Parser<'a> {
    map: &'a BTreeMap<String, String>,
    errors: Vec<SettingError>,
}

impl Parser<'_> {
    fn get(&self, k: &str) -> Option<String> {
        self.map
            .get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    fn err(&mut self, var: &str, message: impl Into<String>) {
        self.errors.push(SettingError {
            var: var.into(),
            message: message.into(),
        });
    }

    fn num<T>(&mut self, k: &str, default: T, min: T, max: T) -> T
    where
        T: std::str::FromStr + PartialOrd + Copy + fmt::Display,
    {
        match self.get(k) {
            None => default,
            Some(v) => match v.parse::<T>() {
                Ok(n) if n >= min && n <= max => n,
                _ => {
                    self.err(
                        k,
                        format!("`{v}`: expected a whole number from {min} to {max}"),
                    );
                    default
                }
            },
        }
    }

    fn bool(&mut self, k: &str, default: bool) -> bool {
        match self.get(k) {
            None => default,
            Some(v) => match parse_bool(&v) {
                Some(b) => b,
                None => {
                    self.err(k, format!("`{v}`: expected true or false"));
                    default
                }
            },
        }
    }

    fn duration(&mut self, k: &str, default: Duration) -> Duration {
        match self.get(k) {
            None => default,
            Some(v) => match parse_duration_or_secs(&v) {
                Some(d) => d,
                None => {
                    self.err(
                        k,
                        format!("`{v}`: expected a duration like 500ms, 5s, 2m or 1h"),
                    );
                    default
                }
            },
        }
    }

    fn optional_duration(&mut self, k: &str, default: Option<Duration>) -> Option<Duration> {
        match self.get(k) {
            Some(v)
                if matches!(
                    v.to_ascii_lowercase().as_str(),
                    "off" | "0" | "false" | "none"
                ) =>
            {
                None
            }
            Some(_) => Some(self.duration(k, Duration::ZERO)).filter(|d| !d.is_zero()),
            None => default,
        }
    }

    fn series(&mut self, k: &str, default: &str) -> String {
        match self.get(k) {
            None => default.to_string(),
            Some(v) if v.chars().count() <= 20 => v,
            Some(v) => {
                self.err(
                    k,
                    format!("`{v}`: a Mikro series has at most 20 characters"),
                );
                default.to_string()
            }
        }
    }

    fn date(&mut self, k: &str, default: (i32, u32, u32)) -> chrono::NaiveDate {
        let d =
            chrono::NaiveDate::from_ymd_opt(default.0, default.1, default.2).unwrap_or_default();
        match self.get(k) {
            None => d,
            Some(v) => match chrono::NaiveDate::parse_from_str(&v, "%Y-%m-%d") {
                Ok(x) => x,
                Err(_) => {
                    self.err(k, format!("`{v}`: expected a date like 2000-01-01"));
                    d
                }
            },
        }
    }

    fn code(&mut self, k: &str) -> Option<String> {
        let v = self.get(k)?;
        if v.chars().count() > 25 {
            self.err(k, format!("`{v}`: a Mikro code has at most 25 characters"));
            return None;
        }
        Some(v)
    }

    fn timezone(&mut self) -> chrono_tz::Tz {
        match self.get("MIKRO_SYNC_TIMEZONE") {
            None => chrono_tz::Europe::Istanbul,
            Some(v) => match v.parse::<chrono_tz::Tz>() {
                Ok(tz) => tz,
                Err(_) => {
                    self.err(
                        "MIKRO_SYNC_TIMEZONE",
                        format!("`{v}`: expected an IANA time zone name such as Europe/Istanbul"),
                    );
                    chrono_tz::Europe::Istanbul
                }
            },
        }
    }

    fn log_level(&mut self) -> String {
        let Some(v) = self.get("LOG_LEVEL") else {
            return "info".into();
        };
        // The old tool used winston's level names.
        let mapped = match v.to_ascii_lowercase().as_str() {
            "verbose" => "debug".to_string(),
            "silly" => "trace".to_string(),
            "http" => "info".to_string(),
            _ => v.clone(),
        };
        match tracing_subscriber::EnvFilter::try_new(&mapped) {
            Ok(_) => mapped,
            Err(e) => {
                self.err(
                    "LOG_LEVEL",
                    format!("`{v}`: expected error, warn, info, debug or trace (or a tracing filter such as `info,mikro_sync=debug`): {e}"),
                );
                "info".into()
            }
        }
    }

    fn metrics_listen(&mut self) -> Option<SocketAddr> {
        let k = "MIKRO_SYNC_METRICS_LISTEN";
        let v = self.get(k)?;
        match v.to_ascii_lowercase().as_str() {
            "off" | "false" | "0" | "no" => None,
            "on" | "true" | "1" | "yes" => Some(SocketAddr::from(([127, 0, 0, 1], 9464))),
            _ => {
                if let Ok(port) = v.parse::<u16>() {
                    return Some(SocketAddr::from(([127, 0, 0, 1], port)));
                }
                match v.parse::<SocketAddr>() {
                    Ok(a) => Some(a),
                    Err(_) => {
                        self.err(
                            k,
                            format!("`{v}`: expected off, on (127.0.0.1:9464), a port, or an address like 127.0.0.1:9464"),
                        );
                        None
                    }
                }
            }
        }
    }

    /// The SQL Server CA file: the TLS library tells PEM from DER by the file name only, so any
    /// other name is refused here, with the fix, instead of at every connection attempt.
    fn erp_ca_file(&mut self, var: &str, value: Option<String>) -> Option<PathBuf> {
        let path = PathBuf::from(value?);
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        if !matches!(ext.as_deref(), Some("pem" | "crt" | "der")) {
            self.err(
                var,
                format!(
                    "CA file `{}`: name it *.pem or *.crt (PEM) or *.der (DER); the file type is \
                     read from the name",
                    path.display()
                ),
            );
        }
        Some(path)
    }

    fn pg_tls(&mut self, url_mode: Option<PgSslMode>) -> PgTls {
        let mode = match (self.get("PG_SSL"), url_mode) {
            (Some(v), _) => match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" | "require" => PgSslMode::Require,
                "false" | "0" | "no" | "off" | "disable" => PgSslMode::Disable,
                "prefer" => PgSslMode::Prefer,
                _ => {
                    self.err(
                        "PG_SSL",
                        format!("`{v}`: expected true, false, require, prefer or disable"),
                    );
                    PgSslMode::Disable
                }
            },
            (None, Some(m)) => m,
            (None, None) => PgSslMode::Disable,
        };
        let insecure = self.bool("PG_SSL_INSECURE_SKIP_VERIFY", false);
        let root_cert = self.get("PG_SSL_ROOT_CERT").map(PathBuf::from);
        PgTls {
            mode,
            verify: !insecure,
            root_cert,
        }
    }

    fn web(&mut self) -> Option<WebDbConfig> {
        let pool_size = self.num("MIKRO_SYNC_PG_POOL_SIZE", 8usize, 1, 1000);
        let url_var = ["MIKRO_SYNC_PG_URL", "DATABASE_URL"]
            .into_iter()
            .find(|k| self.get(k).is_some());
        if let Some(var) = url_var {
            let url = self.get(var).unwrap_or_default();
            let pg: tokio_postgres::Config = match url.parse() {
                Ok(c) => c,
                Err(e) => {
                    self.err(
                        var,
                        format!("not a valid PostgreSQL URL or key=value string: {e}"),
                    );
                    return None;
                }
            };
            let host = pg
                .get_hosts()
                .first()
                .map(|h| match h {
                    tokio_postgres::config::Host::Tcp(s) => s.clone(),
                    tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                })
                .unwrap_or_else(|| "localhost".into());
            let port = pg.get_ports().first().copied().unwrap_or(5432);
            let url_mode = match pg.get_ssl_mode() {
                tokio_postgres::config::SslMode::Disable => PgSslMode::Disable,
                tokio_postgres::config::SslMode::Require => PgSslMode::Require,
                _ => {
                    // tokio-postgres defaults to prefer; only honour it when written.
                    if url.contains("sslmode=prefer") {
                        PgSslMode::Prefer
                    } else if url.contains("sslmode=") {
                        PgSslMode::Require
                    } else {
                        PgSslMode::Disable
                    }
                }
            };
            let tls = self.pg_tls(Some(url_mode));
            let Some(user) = pg.get_user().map(str::to_string) else {
                self.err(var, "the URL names no user");
                return None;
            };
            let database = pg.get_dbname().unwrap_or(&user).to_string();
            let password = pg
                .get_password()
                .map(|p| Secret::new(String::from_utf8_lossy(p)))
                .or_else(|| self.get("PG_PASSWORD").map(Secret::new))
                .unwrap_or_default();
            return Some(WebDbConfig {
                host,
                port,
                database,
                user,
                password,
                tls,
                pool_size,
                source: var.to_string(),
                url_config: Some(pg),
            });
        }
        let any = [
            "PG_HOST",
            "PG_DATABASE",
            "PG_USER",
            "PG_PASSWORD",
            "PG_PORT",
        ]
        .iter()
        .any(|k| self.get(k).is_some());
        let tls = self.pg_tls(None);
        if !any {
            return None;
        }
        let port = self.num("PG_PORT", 5432u16, 1, u16::MAX);
        let mut missing = Vec::new();
        let database = self.get("PG_DATABASE").unwrap_or_else(|| {
            missing.push("PG_DATABASE");
            String::new()
        });
        let user = self.get("PG_USER").unwrap_or_else(|| {
            missing.push("PG_USER");
            String::new()
        });
        for m in missing {
            self.err(
                m,
                "is required when the web database is configured with PG_* variables",
            );
        }
        Some(WebDbConfig {
            host: self.get("PG_HOST").unwrap_or_else(|| "localhost".into()),
            port,
            database,
            user,
            password: self
                .map
                .get("PG_PASSWORD")
                .cloned()
                .map(Secret::new)
                .unwrap_or_default(),
            tls,
            pool_size,
            source: "PG_* variables".into(),
            url_config: None,
        })
    }

    fn erp(&mut self) -> Option<ErpDbConfig> {
        let pool_size = self.num("MIKRO_SYNC_MSSQL_POOL_SIZE", 4u32, 1, 1000);
        let bounds = ErpBounds {
            browser_port: self.num("MIKRO_SYNC_MSSQL_BROWSER_PORT", 1434u16, 1, u16::MAX),
            connect_timeout: self
                .duration("MIKRO_SYNC_MSSQL_CONNECT_TIMEOUT", Duration::from_secs(15)),
            query_timeout: self.duration("MIKRO_SYNC_MSSQL_QUERY_TIMEOUT", Duration::from_secs(30)),
        };
        for (k, d) in [
            ("MIKRO_SYNC_MSSQL_CONNECT_TIMEOUT", bounds.connect_timeout),
            ("MIKRO_SYNC_MSSQL_QUERY_TIMEOUT", bounds.query_timeout),
        ] {
            if d < Duration::from_millis(100) {
                self.err(
                    k,
                    "must be at least 100ms (every ERP wait needs a bound the server can meet)",
                );
            }
        }
        if let Some(ado) = self.get("MIKRO_SYNC_MSSQL_ADO") {
            return self.erp_from_ado(&ado, pool_size, bounds);
        }
        let any = [
            "MSSQL_SERVER",
            "MSSQL_DATABASE",
            "MSSQL_USER",
            "MSSQL_PASSWORD",
        ]
        .iter()
        .any(|k| self.get(k).is_some());
        let encrypt = self.erp_encrypt("MSSQL_ENCRYPT", None);
        let trust = self.bool("MSSQL_TRUST_SERVER_CERTIFICATE", false);
        let ca = self.erp_ca_file("MSSQL_TRUST_CERT_CA", self.get("MSSQL_TRUST_CERT_CA"));
        // Validated even when unused: a bad value is reported, never silently ignored.
        let port_setting = self.num("MSSQL_PORT", 1433u16, 1, u16::MAX);
        if !any {
            return None;
        }
        let server = self.get("MSSQL_SERVER").unwrap_or_else(|| {
            self.err(
                "MSSQL_SERVER",
                "is required (host name or IP of SQL Server)",
            );
            String::new()
        });
        // Accept `host`, `host\INSTANCE` and `host,port` as SQL Server tools do.
        let (server, port_in_server) = match server.split_once(',') {
            Some((h, p)) => match p.trim().parse::<u16>() {
                Ok(p) => (h.trim().to_string(), Some(p)),
                Err(_) => {
                    self.err(
                        "MSSQL_SERVER",
                        format!("`{server}`: the part after ',' must be a port"),
                    );
                    (h.to_string(), None)
                }
            },
            None => (server, None),
        };
        let (host, instance) = match server.split_once('\\') {
            Some((h, i)) => (h.to_string(), Some(i.to_string())),
            None => (server, None),
        };
        let port_explicit = port_in_server.is_some() || self.get("MSSQL_PORT").is_some();
        let port = port_in_server.unwrap_or(port_setting);
        let database = self.get("MSSQL_DATABASE").unwrap_or_else(|| {
            self.err("MSSQL_DATABASE", "is required (the Mikro company database)");
            String::new()
        });
        let user = self.get("MSSQL_USER").unwrap_or_else(|| {
            self.err("MSSQL_USER", "is required (a SQL Server login)");
            String::new()
        });
        Some(ErpDbConfig {
            host,
            instance,
            port,
            database,
            user,
            password: self
                .map
                .get("MSSQL_PASSWORD")
                .cloned()
                .map(Secret::new)
                .unwrap_or_default(),
            encrypt,
            trust_server_certificate: trust,
            trust_cert_ca: ca,
            pool_size,
            source: "MSSQL_* variables".into(),
            port_explicit,
            browser_port: bounds.browser_port,
            connect_timeout: bounds.connect_timeout,
            query_timeout: bounds.query_timeout,
        })
    }

    fn erp_encrypt(&mut self, var: &str, value: Option<String>) -> ErpEncrypt {
        let v = value.or_else(|| self.get(var));
        match v {
            None => ErpEncrypt::Required,
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "required" | "strict" | "mandatory" => ErpEncrypt::Required,
                "false" | "0" | "no" | "off" | "optional" => ErpEncrypt::LoginOnly,
                "plaintext" | "danger_plaintext" | "none" | "not_supported" => {
                    ErpEncrypt::Plaintext
                }
                _ => {
                    self.err(var, format!("`{v}`: expected true, false or plaintext"));
                    ErpEncrypt::Required
                }
            },
        }
    }

    fn erp_from_ado(
        &mut self,
        ado: &str,
        pool_size: u32,
        bounds: ErpBounds,
    ) -> Option<ErpDbConfig> {
        const VAR: &str = "MIKRO_SYNC_MSSQL_ADO";
        if let Err(e) = tiberius::Config::from_ado_string(ado) {
            self.err(VAR, format!("not a valid ADO.NET connection string: {e}"));
            return None;
        }
        let mut kv = BTreeMap::new();
        for part in split_ado(ado) {
            if let Some((k, v)) = part.split_once('=') {
                kv.insert(
                    k.trim().to_ascii_lowercase().replace(' ', ""),
                    unquote_ado(v.trim()),
                );
            }
        }
        let pick = |names: &[&str]| names.iter().find_map(|n| kv.get(*n).cloned());
        let server = pick(&["server", "datasource", "address", "addr", "networkaddress"])
            .unwrap_or_default();
        let server = server.trim_start_matches("tcp:").to_string();
        let (server, port, port_explicit) = match server.split_once(',') {
            Some((h, p)) => (h.to_string(), p.trim().parse().unwrap_or(1433), true),
            None => (server, 1433, false),
        };
        let (host, instance) = match server.split_once('\\') {
            Some((h, i)) => (h.to_string(), Some(i.to_string())),
            None => (server, None),
        };
        if host.is_empty() {
            self.err(VAR, "names no server (server=tcp:host,port)");
            return None;
        }
        let encrypt = self.erp_encrypt(VAR, pick(&["encrypt"]));
        let trust = match pick(&["trustservercertificate"]) {
            None => false,
            Some(v) => match parse_bool(&v) {
                Some(b) => b,
                None => {
                    self.err(
                        VAR,
                        format!("TrustServerCertificate=`{v}`: expected true or false"),
                    );
                    false
                }
            },
        };
        Some(ErpDbConfig {
            host,
            instance,
            port,
            database: pick(&["database", "initialcatalog"]).unwrap_or_default(),
            user: pick(&["user", "userid", "uid", "username"]).unwrap_or_default(),
            password: Secret::new(pick(&["password", "pwd"]).unwrap_or_default()),
            encrypt,
            trust_server_certificate: trust,
            trust_cert_ca: self.erp_ca_file(VAR, pick(&["trustservercertificateca"])),
            pool_size,
            source: VAR.into(),
            port_explicit,
            browser_port: bounds.browser_port,
            connect_timeout: bounds.connect_timeout,
            query_timeout: bounds.query_timeout,
        })
    }
}

/// The ERP connection bounds, read once for both ways of configuring the ERP.
struct ErpBounds {
    browser_port: u16,
    connect_timeout: Duration,
    query_timeout: Duration,
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn split_ado(s: &str) -> Vec<String> {
    // Splits on `;` outside `{…}` / quotes.
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    for c in s.chars() {
        match (c, quote) {
            ('{', None) => {
                depth += 1;
                cur.push(c)
            }
            ('}', None) => {
                depth -= 1;
                cur.push(c)
            }
            ('"' | '\'', None) if depth == 0 => {
                quote = Some(c);
                cur.push(c)
            }
            (q, Some(open)) if q == open => {
                quote = None;
                cur.push(c)
            }
            (';', None) if depth <= 0 => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        parts.push(cur);
    }
    parts
}

fn unquote_ado(v: &str) -> String {
    let v = v.trim();
    if v.len() >= 2 && v.starts_with('{') && v.ends_with('}') {
        v[1..v.len() - 1].replace("}}", "}")
    } else if v.len() >= 2
        && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')))
    {
        v[1..v.len() - 1].to_string()
    } else {
        v.to_string()
    }
}

/// One documented setting: name, default and meaning; the source of the table in
/// `docs/configuration.md` and of `mikro-sync config --list`.
pub struct Setting {
    /// Variable name.
    pub name: &'static str,
    /// Default value.
    pub default: &'static str,
    /// What it does.
    pub help: &'static str,
}

/// Every setting mikro-sync reads.
pub const SETTINGS: &[Setting] = &[
    Setting {
        name: "MIKRO_SYNC_PG_URL / DATABASE_URL",
        default: "—",
        help: "Web database as a postgres:// URL or key=value string; wins over PG_*",
    },
    Setting {
        name: "PG_HOST",
        default: "localhost",
        help: "Web database host (old tool's name)",
    },
    Setting {
        name: "PG_PORT",
        default: "5432",
        help: "Web database port",
    },
    Setting {
        name: "PG_DATABASE",
        default: "— (required)",
        help: "Web database name",
    },
    Setting {
        name: "PG_USER",
        default: "— (required)",
        help: "Web database login",
    },
    Setting {
        name: "PG_PASSWORD",
        default: "empty",
        help: "Web database password (never printed)",
    },
    Setting {
        name: "PG_SSL",
        default: "false (URL: its sslmode)",
        help: "true/require = TLS required, prefer, false/disable",
    },
    Setting {
        name: "PG_SSL_ROOT_CERT",
        default: "system store",
        help: "Extra CA certificate (PEM) to trust, e.g. Supabase's",
    },
    Setting {
        name: "PG_SSL_INSECURE_SKIP_VERIFY",
        default: "false",
        help: "Explicit opt-out of certificate verification",
    },
    Setting {
        name: "MIKRO_SYNC_PG_POOL_SIZE",
        default: "8",
        help: "Web connection pool size",
    },
    Setting {
        name: "MIKRO_SYNC_MSSQL_ADO",
        default: "—",
        help: "Mikro database as an ADO.NET string; wins over MSSQL_*",
    },
    Setting {
        name: "MSSQL_SERVER",
        default: "— (required)",
        help: "SQL Server host (`host`, `host\\INSTANCE` or `host,port`)",
    },
    Setting {
        name: "MSSQL_PORT",
        default: "1433",
        help: "SQL Server port",
    },
    Setting {
        name: "MSSQL_DATABASE",
        default: "— (required)",
        help: "Mikro company database",
    },
    Setting {
        name: "MSSQL_USER",
        default: "— (required)",
        help: "SQL login",
    },
    Setting {
        name: "MSSQL_PASSWORD",
        default: "empty",
        help: "SQL password (never printed)",
    },
    Setting {
        name: "MSSQL_ENCRYPT",
        default: "true",
        help: "true = encrypt everything, false = login only, plaintext = no TLS",
    },
    Setting {
        name: "MSSQL_TRUST_SERVER_CERTIFICATE",
        default: "false",
        help: "Explicit opt-in: accept any server certificate",
    },
    Setting {
        name: "MSSQL_TRUST_CERT_CA",
        default: "—",
        help: "CA certificate to verify the server with instead",
    },
    Setting {
        name: "MIKRO_SYNC_MSSQL_POOL_SIZE",
        default: "4",
        help: "ERP connection pool size",
    },
    Setting {
        name: "MIKRO_SYNC_MSSQL_CONNECT_TIMEOUT",
        default: "15s",
        help: "Bound of one SQL Server connection attempt (TCP, TLS, login) and of waiting for a pooled one",
    },
    Setting {
        name: "MIKRO_SYNC_MSSQL_QUERY_TIMEOUT",
        default: "30s",
        help: "Longest wait for SQL Server's answer to any statement; then the connection is dropped and the document retried",
    },
    Setting {
        name: "MIKRO_SYNC_MSSQL_BROWSER_PORT",
        default: "1434",
        help: "SQL Server Browser UDP port asked for a named instance's port (`host\\INSTANCE` without a port)",
    },
    Setting {
        name: "MIKRO_SYNC_WORKER_CONCURRENCY",
        default: "4",
        help: "Documents posted concurrently per worker",
    },
    Setting {
        name: "BATCH_SIZE",
        default: "100",
        help: "Queue rows claimed per batch",
    },
    Setting {
        name: "MIKRO_SYNC_WORKER_PREFETCH",
        default: "= concurrency",
        help: "Claimed rows kept ready beyond those in flight (0 = off)",
    },
    Setting {
        name: "MIKRO_SYNC_POLL_INTERVAL",
        default: "5s",
        help: "Safety-net poll behind LISTEN/NOTIFY",
    },
    Setting {
        name: "MAX_RETRY_COUNT",
        default: "3",
        help: "Attempts for data errors before `failed`",
    },
    Setting {
        name: "MIKRO_SYNC_RETRY_TRANSIENT_FOR",
        default: "24h",
        help: "How long transient errors keep retrying",
    },
    Setting {
        name: "MIKRO_SYNC_BACKOFF_INITIAL",
        default: "1s",
        help: "First retry delay (exponential, with jitter)",
    },
    Setting {
        name: "MIKRO_SYNC_BACKOFF_MAX",
        default: "10m",
        help: "Longest retry delay",
    },
    Setting {
        name: "MIKRO_SYNC_SETTLE_WINDOW",
        default: "60s",
        help: "How long a sale waits for its lines",
    },
    Setting {
        name: "MIKRO_SYNC_STATS_INTERVAL",
        default: "30s",
        help: "Queue statistics log interval",
    },
    Setting {
        name: "MIKRO_SYNC_POSTING_TIMEOUT",
        default: "2m",
        help: "Longest one posting may take; then it is a transient failure, retried (the ledger keeps it exactly-once)",
    },
    Setting {
        name: "MIKRO_SYNC_MAX_LEASE_EXPIRIES",
        default: "3",
        help: "Times a document may crash or hang the worker (lease expired) before it ends failed; 0 = never",
    },
    Setting {
        name: "MIKRO_SYNC_TIMEZONE",
        default: "Europe/Istanbul",
        help: "Company time zone for every Mikro datetime",
    },
    Setting {
        name: "MIKRO_SYNC_SERIES_SATIS",
        default: "ST",
        help: "Sale series when the web row has none",
    },
    Setting {
        name: "MIKRO_SYNC_SERIES_TAHSILAT",
        default: "TH",
        help: "Collection series when the web row has none",
    },
    Setting {
        name: "MIKRO_SYNC_DEFAULT_BANKA",
        default: "—",
        help: "Bank code when a document paid to a bank names none",
    },
    Setting {
        name: "MIKRO_SYNC_DEFAULT_KASA",
        default: "—",
        help: "Cash-box code when a cash document names none",
    },
    Setting {
        name: "MIKRO_SYNC_DEFAULT_CARI",
        default: "off",
        help: "Mikro account (CARI_HESAPLAR code) for customers made on the web (kaynak not erp) with no int_kodmap_cari row",
    },
    Setting {
        name: "MIKRO_SYNC_EARLIEST_DATE",
        default: "2000-01-01",
        help: "Documents dated before this are refused (failed, naming the document and date)",
    },
    Setting {
        name: "MIKRO_SYNC_MAX_DAYS_AHEAD",
        default: "1",
        help: "Documents dated more than this many days after today (company time zone) are refused",
    },
    Setting {
        name: "MIKRO_SYNC_ALLOW_PASSIVE_PRODUCTS",
        default: "false",
        help: "Post sale lines whose product is passive in Mikro (sto_pasif_fl; stoklar.aktif = false)",
    },
    Setting {
        name: "MIKRO_SYNC_CEK_KASA",
        default: "ÇEK",
        help: "Portfolio box (KASALAR code) received cheques go to",
    },
    Setting {
        name: "MIKRO_SYNC_SENET_KASA",
        default: "SENET",
        help: "Portfolio box (KASALAR code) received notes go to",
    },
    Setting {
        name: "MIKRO_SYNC_DEPO_NO",
        default: "1",
        help: "Depot number on sale lines (sth_giris/cikis_depo_no)",
    },
    Setting {
        name: "MIKRO_SYNC_NUMBER_LOCK_TIMEOUT",
        default: "10s",
        help: "Longest wait for the per-series numbering lock (then retried)",
    },
    Setting {
        name: "MIKRO_SYNC_ERP_SYNC_INTERVAL",
        default: "60s",
        help: "ERP → web sync interval in the daemon (off disables)",
    },
    Setting {
        name: "MIKRO_SYNC_ERP_SYNC_OVERLAP",
        default: "5m",
        help: "How far back every incremental ERP → web run re-reads: longer than Mikro's clock skew and longest transaction",
    },
    Setting {
        name: "MIKRO_SYNC_ERP_SYNC_FULL_EVERY",
        default: "24h",
        help: "How often ERP → web re-reads everything and warns about rows it corrects (off disables)",
    },
    Setting {
        name: "MIKRO_SYNC_METRICS_LISTEN",
        default: "off",
        help: "Metrics/health listener: off, on (127.0.0.1:9464), port or address",
    },
    Setting {
        name: "LOG_LEVEL",
        default: "info",
        help: "error, warn, info, debug, trace (winston names accepted) or a filter",
    },
    Setting {
        name: "MIKRO_SYNC_LOG_FORMAT",
        default: "text",
        help: "stdout format: text or json (also --log-format)",
    },
    Setting {
        name: "MIKRO_SYNC_LOG_DIR",
        default: "— (stdout only)",
        help: "Directory for daily-rolled combined.log and error.log",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_or_secs("5"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("abc"), None);
        assert_eq!(humantime(Duration::from_secs(120)), "2m");
    }
}
