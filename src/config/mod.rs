//! Configuration: environment variables, an optional `.env` file and an optional TOML file.
//!
//! Why this shape: operators migrating from the old Node tool keep their `.env` unchanged, so its
//! names (`PG_HOST`, `MSSQL_SERVER`, `BATCH_SIZE`, …) are read as they are; every newer setting
//! is `MIKRO_SYNC_*`. All parsing happens in [`Config::from_map`], a pure function over a
//! key → value map, so tests need no process environment and every bad value is reported at
//! start with the name of the variable that holds it. Each setting is declared once in
//! [`SETTINGS`] (name, default, help, how it is read); the parser, the `Default` of the option
//! structs and `docs/configuration.md` all come from there.
//!
//! Precedence (highest first): process environment, `.env` in the working directory, the TOML
//! file given with `--config`, built-in defaults.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod erp;
mod parse;
mod posting;
mod secret;
mod settings;
mod web;

pub use erp::*;
pub use parse::{humantime, is_known_setting, parse_duration, parse_toml, read_toml_file};
pub use posting::PostingConfig;
pub use secret::Secret;
pub use settings::{
    Kind, Setting, DEFAULT_BROWSER_PORT, DEFAULT_MSSQL_PORT, DEFAULT_PG_PORT, SETTINGS,
};
pub use web::*;

use parse::Parser;
use settings::*;

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
    /// without a claim round trip (`MIKRO_SYNC_WORKER_PREFETCH`; None: sized automatically from
    /// the measured claim round trip, 0 = off).
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
    pub posting: PostingConfig,
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
    /// The posting settings (what `posting` takes).
    pub fn posting_config(&self) -> PostingConfig {
        self.posting.clone()
    }

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
        let mut p = Parser::new(map);
        let config = p.config();
        if !p.errors.is_empty() {
            return Err(ConfigError::Invalid(p.errors));
        }
        Ok(config)
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
                None => "automatic".into(),
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
        out.push(("MIKRO_SYNC_TIMEZONE".into(), p.tz.name().to_string()));
        out.push(("MIKRO_SYNC_SERIES_SATIS".into(), p.sale_series.clone()));
        out.push((
            "MIKRO_SYNC_SERIES_TAHSILAT".into(),
            p.collection_series.clone(),
        ));
        out.push((
            "MIKRO_SYNC_DEFAULT_BANKA".into(),
            p.default_bank_code
                .clone()
                .unwrap_or_else(|| "(none)".into()),
        ));
        out.push((
            "MIKRO_SYNC_DEFAULT_KASA".into(),
            p.default_kasa_code
                .clone()
                .unwrap_or_else(|| "(none)".into()),
        ));
        out.push((
            "MIKRO_SYNC_DEFAULT_CARI".into(),
            p.default_cari_code.clone().unwrap_or_else(|| "off".into()),
        ));
        out.push(("MIKRO_SYNC_CEK_KASA".into(), p.cek_box_code.clone()));
        out.push(("MIKRO_SYNC_SENET_KASA".into(), p.senet_box_code.clone()));
        out.push(("MIKRO_SYNC_DEPO_NO".into(), p.depot_no.to_string()));
        out.push((
            "MIKRO_SYNC_NUMBER_LOCK_TIMEOUT".into(),
            d(Duration::from_millis(p.lock_timeout_ms.max(0) as u64)),
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

impl Default for Config {
    /// Nothing configured: no databases, every setting at its default from [`SETTINGS`].
    fn default() -> Self {
        Parser::new(&BTreeMap::new()).config()
    }
}

impl Default for WorkerSettings {
    /// Every worker setting at its default from [`SETTINGS`].
    fn default() -> Self {
        Parser::new(&BTreeMap::new()).worker()
    }
}

impl Default for PostingConfig {
    /// Every posting setting at its default from [`SETTINGS`].
    fn default() -> Self {
        Parser::new(&BTreeMap::new()).posting()
    }
}

impl Parser<'_> {
    fn config(&mut self) -> Config {
        Config {
            web: self.web(),
            erp: self.erp(),
            worker: self.worker(),
            posting: self.posting(),
            erp_sync_interval: self.optional_duration(&MIKRO_SYNC_ERP_SYNC_INTERVAL),
            erp_sync_overlap: self.duration(&MIKRO_SYNC_ERP_SYNC_OVERLAP),
            erp_sync_full_every: self.optional_duration(&MIKRO_SYNC_ERP_SYNC_FULL_EVERY),
            metrics_listen: self.metrics_listen(),
            log_level: self.log_level(),
            log_format: self.log_format(),
            log_dir: self.get(MIKRO_SYNC_LOG_DIR.name).map(PathBuf::from),
        }
    }

    fn worker(&mut self) -> WorkerSettings {
        let worker = WorkerSettings {
            concurrency: self.whole(&MIKRO_SYNC_WORKER_CONCURRENCY),
            batch_size: self.whole(&BATCH_SIZE),
            prefetch: self.optional_whole(&MIKRO_SYNC_WORKER_PREFETCH),
            poll_interval: self.duration(&MIKRO_SYNC_POLL_INTERVAL),
            max_data_attempts: self.whole(&MAX_RETRY_COUNT),
            transient_retry_for: self.duration(&MIKRO_SYNC_RETRY_TRANSIENT_FOR),
            backoff_initial: self.duration(&MIKRO_SYNC_BACKOFF_INITIAL),
            backoff_max: self.duration(&MIKRO_SYNC_BACKOFF_MAX),
            settle_window: self.duration(&MIKRO_SYNC_SETTLE_WINDOW),
            stats_interval: self.duration(&MIKRO_SYNC_STATS_INTERVAL),
            posting_timeout: self.duration(&MIKRO_SYNC_POSTING_TIMEOUT),
            max_lease_expiries: self.whole(&MIKRO_SYNC_MAX_LEASE_EXPIRIES),
        };
        if worker.posting_timeout.is_zero() {
            self.err(
                MIKRO_SYNC_POSTING_TIMEOUT.name,
                "must be greater than 0 (e.g. 2m): every posting needs a bound",
            );
        }
        if worker.poll_interval.is_zero() {
            self.err(
                MIKRO_SYNC_POLL_INTERVAL.name,
                "must be greater than 0 (it is the safety net behind LISTEN/NOTIFY)",
            );
        }
        if worker.backoff_max < worker.backoff_initial {
            self.err(
                MIKRO_SYNC_BACKOFF_MAX.name,
                "must not be smaller than MIKRO_SYNC_BACKOFF_INITIAL",
            );
        }
        worker
    }

    fn posting(&mut self) -> PostingConfig {
        let cek = &MIKRO_SYNC_CEK_KASA;
        let senet = &MIKRO_SYNC_SENET_KASA;
        let default_cari = &MIKRO_SYNC_DEFAULT_CARI;
        PostingConfig {
            tz: self.timezone(),
            sale_series: self.series(&MIKRO_SYNC_SERIES_SATIS),
            collection_series: self.series(&MIKRO_SYNC_SERIES_TAHSILAT),
            default_bank_code: self.code(&MIKRO_SYNC_DEFAULT_BANKA),
            default_kasa_code: self.code(&MIKRO_SYNC_DEFAULT_KASA),
            default_cari_code: self
                .code(default_cari)
                .filter(|c| !c.eq_ignore_ascii_case(default_cari.default)),
            cek_box_code: self.code(cek).unwrap_or_else(|| cek.default.into()),
            senet_box_code: self.code(senet).unwrap_or_else(|| senet.default.into()),
            depot_no: self.whole(&MIKRO_SYNC_DEPO_NO),
            lock_timeout_ms: self
                .duration(&MIKRO_SYNC_NUMBER_LOCK_TIMEOUT)
                .as_millis()
                .min(i32::MAX as u128) as i32,
            earliest_date: self.date(&MIKRO_SYNC_EARLIEST_DATE),
            max_days_ahead: self.whole(&MIKRO_SYNC_MAX_DAYS_AHEAD),
            allow_passive_products: self.bool(&MIKRO_SYNC_ALLOW_PASSIVE_PRODUCTS),
            skip_balance_check: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse::parse_duration_or_secs;
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_or_secs("5"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("abc"), None);
        assert_eq!(humantime(Duration::from_secs(120)), "2m");
    }

    /// The parser reads each default from the table with the operator's rules, so a table
    /// default its own kind rejects must be caught here, not by an operator.
    #[test]
    fn every_table_default_is_read_by_its_own_rule() {
        let empty = BTreeMap::new();
        let read = |s: &Setting| {
            let mut p = Parser::new(&empty);
            match s.kind {
                Kind::Whole { .. } => drop(p.whole::<i64>(s)),
                Kind::OptionalWhole { .. } => drop(p.optional_whole::<i64>(s)),
                Kind::Duration => drop(p.duration(s)),
                Kind::OptionalDuration => drop(p.optional_duration(s)),
                Kind::Bool => drop(p.bool(s)),
                Kind::Text => {}
            }
            p.errors
        };
        for s in SETTINGS {
            assert_eq!(read(s), vec![], "{}", s.name);
        }
        let bad = Setting {
            default: "soon",
            kind: Kind::Duration,
            ..MIKRO_SYNC_POLL_INTERVAL
        };
        assert_eq!(read(&bad).len(), 1, "a bad default is reported");
        let c = Config::from_map(&empty).expect("every default is valid");
        assert_eq!(c.worker, WorkerSettings::default());
    }
}
