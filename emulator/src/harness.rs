//! Test harness: a throwaway PostgreSQL cluster with `web` and `erp` databases, the emulator on an
//! ephemeral port with the Mikro schema and seed data loaded, and ready connection settings.
//!
//! Why: mikro-sync's tests, its `demo` and other projects' tests all need the same two
//! endpoints — a web PostgreSQL and a Mikro SQL Server reached through tiberius over the
//! network — in a few seconds, with nothing installed but PostgreSQL. Everything lives as long as
//! the [`Harness`] value and is removed when it is dropped (also when a test panics).
//!
//! When the environment variable `MIKRO_TEST_MSSQL` holds an ADO connection string of a REAL
//! SQL Server, the ERP side is a fresh, uniquely named database on that server instead (created
//! with `COLLATE Turkish_CI_AS`, loaded with the same `sql/mikro` files, dropped on drop), so the
//! whole suite can be run against the real thing; [`Harness::is_real_sql_server`] tells tests.
//!
//! The emulator runs as tasks on the caller's tokio runtime. Tests that block a thread (spawning
//! processes synchronously, `std::thread::sleep`, blocking clients) should use
//! `#[tokio::test(flavor = "multi_thread")]` so the emulator keeps being served.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mikro_emulator::harness::{Harness, HarnessOptions};
//! let h = Harness::start(HarnessOptions::default()).await?;
//! // ERP side through tiberius, exactly as the daemon connects in production:
//! let mut erp = h.erp_client().await?;
//! let row = erp
//!     .query("SELECT cari_unvan1 FROM CARI_HESAPLAR WHERE cari_kod = @P1", &[&"120.01.001"])
//!     .await?
//!     .into_row()
//!     .await?;
//! assert!(row.is_some());
//! // Web side through tokio-postgres:
//! let web = h.web_client().await?;
//! let n: i64 = web.query_one("SELECT count(*) FROM stoklar", &[]).await?.get(0);
//! assert_eq!(n, 12);
//! // Or hand the settings to the code under test:
//! println!("{} / {}", h.web_url(), h.erp_ado());
//! # Ok(()) }
//! ```

use std::time::{Duration, Instant};

use tiberius::{AuthMethod, Client, Config, EncryptionLevel};
use tokio::net::TcpStream;
use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

use crate::pgcluster::{PgCluster, PgClusterError, PgClusterOptions};
use crate::server::{EmulatorConfig, EmulatorError, EmulatorHandle, TlsMode};

/// The Mikro reference schema (T-SQL), in load order: `(file name, SQL)`. Embedded so the
/// harness works from any crate that depends on mikro-emulator, without the source tree.
pub const MIKRO_SCHEMA: &[(&str, &str)] = &[
    (
        "010_CARI_HESAP_HAREKETLERI.sql",
        include_str!("../../sql/mikro/010_CARI_HESAP_HAREKETLERI.sql"),
    ),
    (
        "020_STOK_HAREKETLERI.sql",
        include_str!("../../sql/mikro/020_STOK_HAREKETLERI.sql"),
    ),
    (
        "030_ODEME_EMIRLERI.sql",
        include_str!("../../sql/mikro/030_ODEME_EMIRLERI.sql"),
    ),
    (
        "040_CARI_HESAPLAR.sql",
        include_str!("../../sql/mikro/040_CARI_HESAPLAR.sql"),
    ),
    (
        "050_STOKLAR.sql",
        include_str!("../../sql/mikro/050_STOKLAR.sql"),
    ),
    (
        "060_STOK_SATIS_FIYAT_LISTELERI.sql",
        include_str!("../../sql/mikro/060_STOK_SATIS_FIYAT_LISTELERI.sql"),
    ),
    (
        "070_STOK_SATIS_FIYAT_LISTE_TANIMLARI.sql",
        include_str!("../../sql/mikro/070_STOK_SATIS_FIYAT_LISTE_TANIMLARI.sql"),
    ),
    (
        "080_BARKOD_TANIMLARI.sql",
        include_str!("../../sql/mikro/080_BARKOD_TANIMLARI.sql"),
    ),
    (
        "090_BANKALAR.sql",
        include_str!("../../sql/mikro/090_BANKALAR.sql"),
    ),
    (
        "100_KASALAR.sql",
        include_str!("../../sql/mikro/100_KASALAR.sql"),
    ),
];

/// Seed data for the Mikro schema (customers, products, prices, barcodes, banks, cash boxes).
pub const MIKRO_SEED: (&str, &str) = ("900_seed.sql", include_str!("../../sql/mikro/900_seed.sql"));

/// The reference web schema (PostgreSQL) — tests and demo only, never production.
pub const WEB_SCHEMA: &str = include_str!("../../sql/web-reference/schema.sql");

/// Web seed rows whose codes equal the Mikro seed's codes (fixed uuids, see the file header).
pub const WEB_SEED: &str = include_str!("../../sql/web-reference/seed.sql");

/// Login the harness configures on the emulator (SQL authentication).
pub const EMULATOR_USER: &str = "sa";
/// Password of [`EMULATOR_USER`]; test-only.
pub const EMULATOR_PASSWORD: &str = "Mikro.Test-2026";
/// Database name the emulator announces (Mikro databases look like `MikroDB_V15_02`).
pub const EMULATOR_DATABASE: &str = "MikroDB";

/// Environment variable holding an ADO string of a real SQL Server to test against.
pub const REAL_SQL_SERVER_ENV: &str = "MIKRO_TEST_MSSQL";

/// What to prepare. The default is everything: Mikro schema + seed, web schema + seed.
#[derive(Debug, Clone)]
pub struct HarnessOptions {
    /// Load `sql/mikro/900_seed.sql` into the ERP database.
    pub mikro_seed: bool,
    /// Create the reference web tables in `web`.
    pub web_schema: bool,
    /// Insert the reference web seed (implies nothing unless `web_schema` is on).
    pub web_seed: bool,
    /// Start the PostgreSQL cluster with TLS (self-signed; see [`Harness::pg_ca_cert_pem`]).
    pub pg_tls: bool,
    /// Which TLS the emulator offers (default: optional, so both ADO strings work).
    pub emulator_tls: TlsMode,
    /// Ignore `MIKRO_TEST_MSSQL` and always use the emulator.
    pub force_emulator: bool,
    /// PostgreSQL `timezone` of the emulator's backing database, which is what `GETDATE()`
    /// returns (e.g. `"Europe/Istanbul"`, the zone a real Mikro server runs in). `None` keeps
    /// the machine's zone.
    pub erp_timezone: Option<String>,
    /// Extra PostgreSQL server settings for the throwaway cluster, e.g.
    /// `("shared_preload_libraries", "pg_stat_statements")` to see which statements a benchmark
    /// spends its time in (the emulator's backing database lives in the same cluster).
    pub pg_settings: Vec<(String, String)>,
}

impl Default for HarnessOptions {
    fn default() -> Self {
        HarnessOptions {
            mikro_seed: true,
            web_schema: true,
            web_seed: true,
            pg_tls: false,
            emulator_tls: TlsMode::Optional,
            force_emulator: false,
            erp_timezone: None,
            pg_settings: Vec::new(),
        }
    }
}

impl HarnessOptions {
    /// Empty databases: the Mikro schema without seed rows, and no web tables.
    pub fn bare() -> Self {
        HarnessOptions {
            mikro_seed: false,
            web_schema: false,
            web_seed: false,
            ..Default::default()
        }
    }
}

/// Why the harness could not start.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// The throwaway PostgreSQL cluster failed (see the message for what to install).
    #[error(transparent)]
    Pg(#[from] PgClusterError),
    /// The emulator did not start.
    #[error("emulator: {0}")]
    Emulator(#[from] EmulatorError),
    /// A schema or seed file failed to load on the ERP side.
    #[error("loading {file} into the ERP database failed: {message}")]
    Load { file: String, message: String },
    /// Connecting to the ERP side through tiberius failed.
    #[error("ERP connection failed: {0}")]
    Connect(String),
    /// `MIKRO_TEST_MSSQL` is set but unusable.
    #[error("{REAL_SQL_SERVER_ENV}: {0}")]
    RealServer(String),
}

/// A tiberius client over tokio, as the daemon uses it.
pub type ErpClient = Client<Compat<TcpStream>>;

/// The ERP endpoint's connection settings (emulator or real SQL Server).
#[derive(Debug, Clone)]
struct ErpEndpoint {
    host: String,
    port: u16,
    user: String,
    password: String,
    database: String,
    /// True for a real SQL Server (`MIKRO_TEST_MSSQL`).
    real: bool,
    /// For a real server: the given ADO string's pairs with the test database substituted, so
    /// its own settings (encryption, certificates, timeouts) are kept.
    real_pairs: Vec<(String, String)>,
}

/// A real SQL Server test database to drop on drop.
#[derive(Debug)]
struct RealDb {
    admin_ado: String,
    name: String,
}

/// A running harness: throwaway PostgreSQL (`web`, `erp`), the emulator (or a test database on a
/// real SQL Server), schemas and seed loaded. Drop stops and removes everything.
pub struct Harness {
    // Field order is drop order: the emulator before the cluster it stores its data in.
    emulator: Option<EmulatorHandle>,
    real_db: Option<RealDb>,
    erp: ErpEndpoint,
    pg: PgCluster,
    started_in: Duration,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("web_url", &self.web_url())
            .field("erp_host", &self.erp.host)
            .field("erp_port", &self.erp.port)
            .field("erp_database", &self.erp.database)
            .field("real_sql_server", &self.erp.real)
            .field("started_in", &self.started_in)
            .finish()
    }
}

impl Harness {
    /// Starts everything; returns when the ERP database has its schema (and seed) and the web
    /// database its reference tables (if asked). Typically 1–3 s with the emulator.
    pub async fn start(opts: HarnessOptions) -> Result<Harness, HarnessError> {
        let t0 = Instant::now();
        let pg = PgCluster::start_with(PgClusterOptions {
            tls: opts.pg_tls,
            settings: opts.pg_settings.clone(),
        })
        .await?;
        pg.create_database("web").await?;
        if opts.web_schema {
            pg.execute("web", WEB_SCHEMA).await?;
            if opts.web_seed {
                pg.execute("web", WEB_SEED).await?;
            }
        }

        let real = if opts.force_emulator {
            None
        } else {
            std::env::var(REAL_SQL_SERVER_ENV)
                .ok()
                .filter(|s| !s.trim().is_empty())
        };
        let (emulator, real_db, erp) = match real {
            None => {
                pg.create_database("erp").await?;
                if let Some(tz) = &opts.erp_timezone {
                    pg.execute(
                        "postgres",
                        &format!(
                            "ALTER DATABASE erp SET timezone = '{}'",
                            tz.replace('\'', "''")
                        ),
                    )
                    .await?;
                }
                let handle = crate::server::start(EmulatorConfig {
                    listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                    pg_url: pg.url("erp"),
                    user: EMULATOR_USER.into(),
                    password: EMULATOR_PASSWORD.into(),
                    database: EMULATOR_DATABASE.into(),
                    tls: opts.emulator_tls,
                })
                .await?;
                let erp = ErpEndpoint {
                    host: "127.0.0.1".into(),
                    port: handle.addr.port(),
                    user: EMULATOR_USER.into(),
                    password: EMULATOR_PASSWORD.into(),
                    database: EMULATOR_DATABASE.into(),
                    real: false,
                    real_pairs: Vec::new(),
                };
                (Some(handle), None, erp)
            }
            Some(ado) => {
                let (erp, db) = create_real_database(&ado).await?;
                (None, Some(db), erp)
            }
        };
        let mut h = Harness {
            emulator,
            real_db,
            erp,
            pg,
            started_in: Duration::ZERO,
        };
        h.load_mikro(opts.mikro_seed).await?;
        h.started_in = t0.elapsed();
        tracing::info!(
            started_in_ms = h.started_in.as_millis() as u64,
            real_sql_server = h.erp.real,
            "harness ready"
        );
        Ok(h)
    }

    async fn load_mikro(&self, seed: bool) -> Result<(), HarnessError> {
        let mut client = self.erp_client().await?;
        let files = MIKRO_SCHEMA
            .iter()
            .copied()
            .chain(seed.then_some(MIKRO_SEED));
        for (name, sql) in files {
            run_batch(&mut client, sql)
                .await
                .map_err(|message| HarnessError::Load {
                    file: name.to_string(),
                    message,
                })?;
        }
        Ok(())
    }

    /// How long [`Harness::start`] took (cluster, databases, emulator, schema, seed).
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// True when the ERP side is a real SQL Server (`MIKRO_TEST_MSSQL`), false for the emulator.
    /// Tests that check emulator-only details (e.g. its PostgreSQL storage) skip on true.
    pub fn is_real_sql_server(&self) -> bool {
        self.erp.real
    }

    /// Parameter counts of the RPC calls the emulator received (`None` against a real SQL
    /// Server), e.g. to assert that a client stays a margin below SQL Server's 2,100.
    pub fn erp_rpc_stats(&self) -> Option<std::sync::Arc<crate::server::RpcStats>> {
        self.emulator.as_ref().map(|e| e.rpc_stats())
    }

    /// The throwaway PostgreSQL cluster (for extra databases or direct inspection).
    pub fn pg(&self) -> &PgCluster {
        &self.pg
    }

    /// URL of the `web` database (PostgreSQL, superuser `postgres`, no password).
    pub fn web_url(&self) -> String {
        self.pg.url("web")
    }

    /// PEM of the PostgreSQL server certificate when started with `pg_tls`.
    pub fn pg_ca_cert_pem(&self) -> Option<&str> {
        self.pg.ca_cert_pem()
    }

    /// URL of the PostgreSQL database in which the emulator stores the ERP tables; `None` on a
    /// real SQL Server. For white-box assertions only — clients must go through TDS.
    pub fn erp_pg_url(&self) -> Option<String> {
        (!self.erp.real).then(|| self.pg.url("erp"))
    }

    /// ERP host (127.0.0.1 for the emulator).
    pub fn host(&self) -> &str {
        &self.erp.host
    }

    /// ERP TCP port.
    pub fn port(&self) -> u16 {
        self.erp.port
    }

    /// ERP login name.
    pub fn user(&self) -> &str {
        &self.erp.user
    }

    /// ERP password (test-only credentials; do not log in production code).
    pub fn password(&self) -> &str {
        &self.erp.password
    }

    /// ERP database name.
    pub fn database(&self) -> &str {
        &self.erp.database
    }

    /// ADO connection string without encryption (`encrypt=DANGER_PLAINTEXT`; tiberius then stays
    /// in plaintext for the whole session). On a real SQL Server: the `MIKRO_TEST_MSSQL` string
    /// with the test database, its encryption settings unchanged (servers often force TLS).
    pub fn erp_ado(&self) -> String {
        if self.erp.real {
            return join_ado(&self.erp.real_pairs);
        }
        format!(
            "server=tcp:{},{};user={};password={};database={};encrypt=DANGER_PLAINTEXT;TrustServerCertificate=true",
            self.erp.host, self.erp.port, self.erp.user, ado_quote(&self.erp.password), self.erp.database
        )
    }

    /// ADO connection string with TLS, as mikro-sync runs in production
    /// (`encrypt=true;TrustServerCertificate=true`).
    pub fn erp_ado_tls(&self) -> String {
        if self.erp.real {
            let mut pairs: Vec<(String, String)> = self
                .erp
                .real_pairs
                .iter()
                .filter(|(k, _)| k != "encrypt" && k != "trustservercertificate")
                .cloned()
                .collect();
            pairs.push(("encrypt".into(), "true".into()));
            pairs.push(("TrustServerCertificate".into(), "true".into()));
            return join_ado(&pairs);
        }
        format!(
            "server=tcp:{},{};user={};password={};database={};encrypt=true;TrustServerCertificate=true",
            self.erp.host, self.erp.port, self.erp.user, ado_quote(&self.erp.password), self.erp.database
        )
    }

    /// A tiberius [`Config`] for the ERP side: plaintext on the emulator; on a real server the
    /// settings of `MIKRO_TEST_MSSQL` (pointing at the test database).
    pub fn erp_config(&self) -> Config {
        if self.erp.real {
            if let Ok(c) = Config::from_ado_string(&self.erp_ado()) {
                return c;
            }
        }
        let mut c = Config::new();
        c.host(&self.erp.host);
        c.port(self.erp.port);
        c.authentication(AuthMethod::sql_server(&self.erp.user, &self.erp.password));
        c.database(&self.erp.database);
        if self.erp.real {
            c.encryption(EncryptionLevel::Required);
        } else {
            c.encryption(EncryptionLevel::NotSupported);
        }
        c.trust_cert();
        c
    }

    /// Opens a tiberius connection to the ERP database.
    pub async fn erp_client(&self) -> Result<ErpClient, HarnessError> {
        connect(self.erp_config())
            .await
            .map_err(HarnessError::Connect)
    }

    /// Opens a tokio-postgres connection to the `web` database (connection task spawned).
    pub async fn web_client(&self) -> Result<tokio_postgres::Client, HarnessError> {
        let (client, conn) = tokio_postgres::connect(&self.web_url(), tokio_postgres::NoTls)
            .await
            .map_err(|e| HarnessError::Pg(PgClusterError::Sql(e.to_string())))?;
        tokio::spawn(conn);
        Ok(client)
    }

    /// Runs a T-SQL batch on the ERP database (e.g. extra fixtures); errors come back as text.
    pub async fn erp_exec(&self, sql: &str) -> Result<(), HarnessError> {
        let mut c = self.erp_client().await?;
        run_batch(&mut c, sql)
            .await
            .map_err(|message| HarnessError::Load {
                file: "erp_exec".into(),
                message,
            })
    }

    /// Stops the emulator gracefully (waiting for sessions), then everything else.
    pub async fn shutdown(mut self) {
        if let Some(h) = self.emulator.take() {
            h.shutdown().await;
        }
        if let Some(db) = self.real_db.take() {
            drop_real_database(db).await;
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.emulator.take();
        if let Some(db) = self.real_db.take() {
            // Drop is synchronous; run the DROP DATABASE on a helper thread with its own runtime
            // (works whether or not we are inside a tokio runtime).
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(drop_real_database(db));
                }
            })
            .join();
        }
    }
}

/// Quotes an ADO value when it contains characters that would split it.
fn ado_quote(v: &str) -> String {
    if v.contains([';', '=', '{', '}', '\'', '"']) || v.starts_with(' ') || v.ends_with(' ') {
        format!("{{{}}}", v.replace('}', "}}"))
    } else {
        v.to_string()
    }
}

/// Runs a batch and drains every result; the first error is returned as text.
async fn run_batch(client: &mut ErpClient, sql: &str) -> Result<(), String> {
    let stream = client.simple_query(sql).await.map_err(|e| e.to_string())?;
    stream.into_results().await.map_err(|e| e.to_string())?;
    Ok(())
}

async fn connect(config: Config) -> Result<ErpClient, String> {
    let addr = config.get_addr();
    let mut last = String::new();
    // The emulator is listening when start() returns; retry briefly anyway for slow machines.
    for _ in 0..3 {
        match TcpStream::connect(&addr).await {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                return Client::connect(config.clone(), tcp.compat_write())
                    .await
                    .map_err(|e| e.to_string());
            }
            Err(e) => {
                last = e.to_string();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    Err(format!("cannot reach {addr}: {last}"))
}

/// Parsed `key=value;…` pairs of an ADO string (keys lower-cased, `{…}` quoting removed).
fn parse_ado(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.trim().is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq]
            .trim()
            .trim_start_matches(';')
            .trim()
            .to_lowercase();
        let after = rest[eq + 1..].trim_start();
        let (value, next) = if let Some(stripped) = after.strip_prefix('{') {
            let mut v = String::new();
            let mut chars = stripped.char_indices();
            let mut end = stripped.len();
            while let Some((i, c)) = chars.next() {
                if c == '}' {
                    if stripped[i + 1..].starts_with('}') {
                        v.push('}');
                        chars.next();
                    } else {
                        end = i + 1;
                        break;
                    }
                } else {
                    v.push(c);
                }
            }
            let tail = &stripped[end.min(stripped.len())..];
            let next = tail.find(';').map(|i| &tail[i + 1..]).unwrap_or("");
            (v, next)
        } else {
            match after.find(';') {
                Some(i) => (after[..i].trim().to_string(), &after[i + 1..]),
                None => (after.trim().to_string(), ""),
            }
        };
        if !key.is_empty() {
            out.push((key, value));
        }
        rest = next;
    }
    out
}

fn ado_get<'a>(pairs: &'a [(String, String)], keys: &[&str]) -> Option<&'a str> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| keys.contains(&k.as_str()))
        .map(|(_, v)| v.as_str())
}

/// Builds an ADO string from pairs, replacing the database.
fn ado_with_database(pairs: &[(String, String)], db: &str) -> String {
    let mut out: Vec<(String, String)> = pairs
        .iter()
        .filter(|(k, _)| k != "database" && k != "initial catalog")
        .cloned()
        .collect();
    out.push(("database".into(), db.into()));
    join_ado(&out)
}

fn join_ado(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", ado_quote(v)))
        .collect::<Vec<_>>()
        .join(";")
}

async fn create_real_database(ado: &str) -> Result<(ErpEndpoint, RealDb), HarnessError> {
    let pairs = parse_ado(ado);
    let server = ado_get(&pairs, &["server", "data source", "address", "addr"])
        .ok_or_else(|| HarnessError::RealServer("no server= in the ADO string".into()))?;
    let server = server.trim_start_matches("tcp:");
    let (host, port) = match server.split_once(',') {
        Some((h, p)) => (
            h.to_string(),
            p.trim()
                .parse::<u16>()
                .map_err(|_| HarnessError::RealServer(format!("bad port in {server:?}")))?,
        ),
        None => (server.to_string(), 1433),
    };
    let user = ado_get(&pairs, &["user", "user id", "uid"])
        .unwrap_or_default()
        .to_string();
    let password = ado_get(&pairs, &["password", "pwd"])
        .unwrap_or_default()
        .to_string();
    let name = format!(
        "mikro_test_{}",
        uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .get(..12)
            .unwrap_or("x")
    );
    let admin_ado = ado_with_database(&pairs, "master");
    let config =
        Config::from_ado_string(&admin_ado).map_err(|e| HarnessError::RealServer(e.to_string()))?;
    let mut admin = connect(config).await.map_err(HarnessError::RealServer)?;
    run_batch(
        &mut admin,
        &format!("CREATE DATABASE [{name}] COLLATE Turkish_CI_AS"),
    )
    .await
    .map_err(|e| HarnessError::RealServer(format!("CREATE DATABASE {name}: {e}")))?;
    Ok((
        ErpEndpoint {
            host,
            port,
            user,
            password,
            database: name.clone(),
            real: true,
            real_pairs: pairs
                .iter()
                .filter(|(k, _)| k != "database" && k != "initial catalog")
                .cloned()
                .chain([("database".to_string(), name.clone())])
                .collect(),
        },
        RealDb { admin_ado, name },
    ))
}

async fn drop_real_database(db: RealDb) {
    let Ok(config) = Config::from_ado_string(&db.admin_ado) else {
        return;
    };
    match connect(config).await {
        Ok(mut c) => {
            let sql = format!(
                "ALTER DATABASE [{0}] SET SINGLE_USER WITH ROLLBACK IMMEDIATE; DROP DATABASE [{0}]",
                db.name
            );
            if let Err(e) = run_batch(&mut c, &sql).await {
                tracing::warn!(database = %db.name, error = %e, "could not drop the test database");
            }
        }
        Err(e) => {
            tracing::warn!(database = %db.name, error = %e, "could not connect to drop the test database")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ado_parsing_handles_quotes_and_aliases() {
        let p = parse_ado("Server=tcp:db.example,1444;User Id=sa;Password={a;b}}c};Database=x;TrustServerCertificate=true");
        assert_eq!(ado_get(&p, &["server"]), Some("tcp:db.example,1444"));
        assert_eq!(ado_get(&p, &["user", "user id"]), Some("sa"));
        assert_eq!(ado_get(&p, &["password"]), Some("a;b}c"));
        let s = ado_with_database(&p, "master");
        assert!(s.ends_with("database=master"), "{s}");
        assert!(!s.contains("database=x"), "{s}");
        assert_eq!(parse_ado(&s).len(), p.len());
    }

    #[test]
    fn embedded_files_are_all_there() {
        assert_eq!(MIKRO_SCHEMA.len(), 10);
        for (name, sql) in MIKRO_SCHEMA {
            let table = name
                .trim_end_matches(".sql")
                .split_once('_')
                .map(|x| x.1)
                .unwrap_or("");
            assert!(
                sql.contains(&format!("IF OBJECT_ID(N'dbo.{table}', N'U') IS NULL")),
                "{name}"
            );
        }
        assert!(MIKRO_SEED.1.contains("120.01.001"));
        assert!(WEB_SEED.contains("120.01.001"));
    }
}
