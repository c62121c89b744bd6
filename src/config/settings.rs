//! Every setting, declared once: its name, default, help text and how its value is read. The
//! parser takes defaults and ranges from here, and `docs/configuration.md` and `config --list`
//! are this table, so a default cannot differ between them.

/// One setting: the source of its row in `docs/configuration.md`, of `mikro-sync config --list`
/// and of what [`super::Config::from_map`] does when the variable is unset or out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// Variable name (`A / B`: two names, the first wins).
    pub name: &'static str,
    /// Default value. For the kinds below it is also the value the parser uses, read with the
    /// same rules as an operator's value; for [`Kind::Text`] it may describe the default instead.
    pub default: &'static str,
    /// What it does.
    pub help: &'static str,
    /// How the value is read.
    pub kind: Kind,
}

/// How a setting's value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A whole number from `min` to `max`.
    Whole {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// A whole number from `min` to `max`, or unset: then derived from other settings, as the
    /// default text says.
    OptionalWhole {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// A duration: `500ms`, `5s`, `2m`, `1h`, or a number of seconds.
    Duration,
    /// A duration, or `off` (also `0`, `false`, `none`).
    OptionalDuration,
    /// true or false (also 1/0, yes/no, on/off).
    Bool,
    /// Text read by its own rule in `config` (URLs, codes, names, addresses).
    Text,
}

/// A port setting's default, read from the table at compile time (a default that is not a port
/// fails the build), so the code's fallbacks and the documented defaults are one value.
const fn default_port(s: &Setting) -> u16 {
    let b = s.default.as_bytes();
    let mut n: u32 = 0;
    let mut i = 0;
    while i < b.len() {
        assert!(
            b[i].is_ascii_digit(),
            "a port setting's default must be digits"
        );
        n = n * 10 + (b[i] - b'0') as u32;
        assert!(
            n <= 65_535,
            "a port setting's default must be at most 65535"
        );
        i += 1;
    }
    assert!(n > 0, "a port setting's default must not be 0");
    n as u16
}

/// [`PG_PORT`]'s default.
pub const DEFAULT_PG_PORT: u16 = default_port(&PG_PORT);
/// [`MSSQL_PORT`]'s default.
pub const DEFAULT_MSSQL_PORT: u16 = default_port(&MSSQL_PORT);
/// [`MIKRO_SYNC_MSSQL_BROWSER_PORT`]'s default.
pub const DEFAULT_BROWSER_PORT: u16 = default_port(&MIKRO_SYNC_MSSQL_BROWSER_PORT);

pub const MIKRO_SYNC_PG_URL: Setting = Setting {
    name: "MIKRO_SYNC_PG_URL / DATABASE_URL",
    default: "—",
    help: "Web database as a postgres:// URL or key=value string; wins over PG_*",
    kind: Kind::Text,
};

pub const PG_HOST: Setting = Setting {
    name: "PG_HOST",
    default: "localhost",
    help: "Web database host (old tool's name)",
    kind: Kind::Text,
};

pub const PG_PORT: Setting = Setting {
    name: "PG_PORT",
    default: "5432",
    help: "Web database port",
    kind: Kind::Whole {
        min: 1,
        max: 65_535,
    },
};

pub const PG_DATABASE: Setting = Setting {
    name: "PG_DATABASE",
    default: "— (required)",
    help: "Web database name",
    kind: Kind::Text,
};

pub const PG_USER: Setting = Setting {
    name: "PG_USER",
    default: "— (required)",
    help: "Web database login",
    kind: Kind::Text,
};

pub const PG_PASSWORD: Setting = Setting {
    name: "PG_PASSWORD",
    default: "empty",
    help: "Web database password (never printed)",
    kind: Kind::Text,
};

pub const PG_SSL: Setting = Setting {
    name: "PG_SSL",
    default: "false (URL: its sslmode)",
    help: "true/require = TLS required, prefer, false/disable",
    kind: Kind::Text,
};

pub const PG_SSL_ROOT_CERT: Setting = Setting {
    name: "PG_SSL_ROOT_CERT",
    default: "system store",
    help: "Extra CA certificate (PEM) to trust, e.g. Supabase's",
    kind: Kind::Text,
};

pub const PG_SSL_INSECURE_SKIP_VERIFY: Setting = Setting {
    name: "PG_SSL_INSECURE_SKIP_VERIFY",
    default: "false",
    help: "Explicit opt-out of certificate verification",
    kind: Kind::Bool,
};

pub const MIKRO_SYNC_PG_POOL_SIZE: Setting = Setting {
    name: "MIKRO_SYNC_PG_POOL_SIZE",
    default: "8",
    help: "Web connection pool size. A worker also keeps its LISTEN connection and the completer's (`mikro-sync listener`, `mikro-sync completer` in `pg_stat_activity`): pool size + 2 connections in all",
    kind: Kind::Whole { min: 1, max: 1000 },
};

pub const MIKRO_SYNC_MSSQL_ADO: Setting = Setting {
    name: "MIKRO_SYNC_MSSQL_ADO",
    default: "—",
    help: "Mikro database as an ADO.NET string; wins over MSSQL_*",
    kind: Kind::Text,
};

pub const MSSQL_SERVER: Setting = Setting {
    name: "MSSQL_SERVER",
    default: "— (required)",
    help: "SQL Server host (`host`, `host\\INSTANCE` or `host,port`)",
    kind: Kind::Text,
};

pub const MSSQL_PORT: Setting = Setting {
    name: "MSSQL_PORT",
    default: "1433",
    help: "SQL Server port",
    kind: Kind::Whole {
        min: 1,
        max: 65_535,
    },
};

pub const MSSQL_DATABASE: Setting = Setting {
    name: "MSSQL_DATABASE",
    default: "— (required)",
    help: "Mikro company database",
    kind: Kind::Text,
};

pub const MSSQL_USER: Setting = Setting {
    name: "MSSQL_USER",
    default: "— (required)",
    help: "SQL login",
    kind: Kind::Text,
};

pub const MSSQL_PASSWORD: Setting = Setting {
    name: "MSSQL_PASSWORD",
    default: "empty",
    help: "SQL password (never printed)",
    kind: Kind::Text,
};

pub const MSSQL_ENCRYPT: Setting = Setting {
    name: "MSSQL_ENCRYPT",
    default: "true",
    help: "true = encrypt everything, false = login only, plaintext = no TLS",
    kind: Kind::Text,
};

pub const MSSQL_TRUST_SERVER_CERTIFICATE: Setting = Setting {
    name: "MSSQL_TRUST_SERVER_CERTIFICATE",
    default: "false",
    help: "Explicit opt-in: accept any server certificate",
    kind: Kind::Bool,
};

pub const MSSQL_TRUST_CERT_CA: Setting = Setting {
    name: "MSSQL_TRUST_CERT_CA",
    default: "—",
    help: "CA certificate to verify the server with instead",
    kind: Kind::Text,
};

pub const MIKRO_SYNC_MSSQL_POOL_SIZE: Setting = Setting {
    name: "MIKRO_SYNC_MSSQL_POOL_SIZE",
    default: "4",
    help: "ERP connection pool size",
    kind: Kind::Whole { min: 1, max: 1000 },
};

pub const MIKRO_SYNC_MSSQL_CONNECT_TIMEOUT: Setting = Setting {
    name: "MIKRO_SYNC_MSSQL_CONNECT_TIMEOUT",
    default: "15s",
    help: "Bound of one SQL Server connection attempt (TCP connect, TLS, login) and of a document's wait for a pooled connection. When it runs out the document is retried (transient) and the log names the server and the last connect error",
    kind: Kind::Duration,
};

pub const MIKRO_SYNC_MSSQL_QUERY_TIMEOUT: Setting = Setting {
    name: "MIKRO_SYNC_MSSQL_QUERY_TIMEOUT",
    default: "30s",
    help: "Longest wait for SQL Server's answer to any ERP statement (a posting's batch, the check-out test). Then the connection is dropped and the document retried (transient); the ledger keeps it exactly once. Keep it above `MIKRO_SYNC_NUMBER_LOCK_TIMEOUT`",
    kind: Kind::Duration,
};

pub const MIKRO_SYNC_MSSQL_BROWSER_PORT: Setting = Setting {
    name: "MIKRO_SYNC_MSSQL_BROWSER_PORT",
    default: "1434",
    help: "UDP port of SQL Server Browser, asked for the TCP port of a named instance (`host\\INSTANCE` without a port). Only tests need another value",
    kind: Kind::Whole { min: 1, max: 65_535 },
};

pub const MIKRO_SYNC_WORKER_CONCURRENCY: Setting = Setting {
    name: "MIKRO_SYNC_WORKER_CONCURRENCY",
    default: "4",
    help: "Documents in flight per worker. A document is read from PostgreSQL before it takes an ERP connection, so a value above `MIKRO_SYNC_MSSQL_POOL_SIZE` overlaps web reads with ERP transactions",
    kind: Kind::Whole { min: 1, max: 256 },
};

pub const BATCH_SIZE: Setting = Setting {
    name: "BATCH_SIZE",
    default: "100",
    help: "Queue rows claimed per batch",
    kind: Kind::Whole {
        min: 1,
        max: 10_000,
    },
};

pub const MIKRO_SYNC_WORKER_PREFETCH: Setting = Setting {
    name: "MIKRO_SYNC_WORKER_PREFETCH",
    default: "automatic",
    help: "Claimed rows kept ready beyond those in flight: a finished document's slot is refilled at once, and the worker claims when this buffer is below half (several rows per claim statement instead of one per document). Unset: sized automatically to three times what the slots consume during one claim's round trip (measured), between `MIKRO_SYNC_WORKER_CONCURRENCY` and `BATCH_SIZE`: `concurrency` next to the web database, more when it is far away (30 ms: ~40 rows at 500 documents/s). Buffered rows are leased like in-flight ones (renewed) and put back to `pending` on a graceful stop. A number pins it; 0 turns it off",
    kind: Kind::OptionalWhole { min: 0, max: 10_000 },
};

pub const MIKRO_SYNC_POLL_INTERVAL: Setting = Setting {
    name: "MIKRO_SYNC_POLL_INTERVAL",
    default: "5s",
    help: "Safety-net poll behind LISTEN/NOTIFY",
    kind: Kind::Duration,
};

pub const MAX_RETRY_COUNT: Setting = Setting {
    name: "MAX_RETRY_COUNT",
    default: "3",
    help: "Attempts for data errors before `failed`",
    kind: Kind::Whole { min: 1, max: 1000 },
};

pub const MIKRO_SYNC_RETRY_TRANSIENT_FOR: Setting = Setting {
    name: "MIKRO_SYNC_RETRY_TRANSIENT_FOR",
    default: "24h",
    help: "How long transient errors keep retrying",
    kind: Kind::Duration,
};

pub const MIKRO_SYNC_BACKOFF_INITIAL: Setting = Setting {
    name: "MIKRO_SYNC_BACKOFF_INITIAL",
    default: "1s",
    help: "First retry delay (exponential, with jitter)",
    kind: Kind::Duration,
};

pub const MIKRO_SYNC_BACKOFF_MAX: Setting = Setting {
    name: "MIKRO_SYNC_BACKOFF_MAX",
    default: "10m",
    help: "Longest retry delay (a hard bound, jitter included)",
    kind: Kind::Duration,
};

pub const MIKRO_SYNC_SETTLE_WINDOW: Setting = Setting {
    name: "MIKRO_SYNC_SETTLE_WINDOW",
    default: "60s",
    help: "How long a sale waits for its lines",
    kind: Kind::Duration,
};

pub const MIKRO_SYNC_STATS_INTERVAL: Setting = Setting {
    name: "MIKRO_SYNC_STATS_INTERVAL",
    default: "30s",
    help: "Queue statistics log interval",
    kind: Kind::Duration,
};

pub const MIKRO_SYNC_POSTING_TIMEOUT: Setting = Setting {
    name: "MIKRO_SYNC_POSTING_TIMEOUT",
    default: "2m",
    help: "Longest one posting may take; then it is a transient failure, retried (the ledger keeps it exactly-once)",
    kind: Kind::Duration,
};

pub const MIKRO_SYNC_MAX_LEASE_EXPIRIES: Setting = Setting {
    name: "MIKRO_SYNC_MAX_LEASE_EXPIRIES",
    default: "3",
    help: "Times a document may crash or hang the worker (its lease expired) before it ends `failed`; 0 = never",
    kind: Kind::Whole { min: 0, max: 1000 },
};

pub const MIKRO_SYNC_TIMEZONE: Setting = Setting {
    name: "MIKRO_SYNC_TIMEZONE",
    default: "Europe/Istanbul",
    help: "Company time zone for every Mikro datetime",
    kind: Kind::Text,
};

pub const MIKRO_SYNC_SERIES_SATIS: Setting = Setting {
    name: "MIKRO_SYNC_SERIES_SATIS",
    default: "ST",
    help: "Sale series when the web row has none",
    kind: Kind::Text,
};

pub const MIKRO_SYNC_SERIES_TAHSILAT: Setting = Setting {
    name: "MIKRO_SYNC_SERIES_TAHSILAT",
    default: "TH",
    help: "Collection series when the web row has none",
    kind: Kind::Text,
};

pub const MIKRO_SYNC_DEFAULT_BANKA: Setting = Setting {
    name: "MIKRO_SYNC_DEFAULT_BANKA",
    default: "—",
    help: "Bank code when a document paid to a bank names none",
    kind: Kind::Text,
};

pub const MIKRO_SYNC_DEFAULT_KASA: Setting = Setting {
    name: "MIKRO_SYNC_DEFAULT_KASA",
    default: "—",
    help: "Cash-box code when a cash document names none",
    kind: Kind::Text,
};

pub const MIKRO_SYNC_DEFAULT_CARI: Setting = Setting {
    name: "MIKRO_SYNC_DEFAULT_CARI",
    default: "off",
    help: "Mikro account (CARI_HESAPLAR code) for customers made on the web (kaynak not erp) with no int_kodmap_cari row",
    kind: Kind::Text,
};

pub const MIKRO_SYNC_EARLIEST_DATE: Setting = Setting {
    name: "MIKRO_SYNC_EARLIEST_DATE",
    default: "2000-01-01",
    help: "Documents dated before this are refused (failed, naming the document and date)",
    kind: Kind::Text,
};

pub const MIKRO_SYNC_MAX_DAYS_AHEAD: Setting = Setting {
    name: "MIKRO_SYNC_MAX_DAYS_AHEAD",
    default: "1",
    help: "Documents dated more than this many days after today (company time zone) are refused",
    kind: Kind::Whole {
        min: 0,
        max: 36_500,
    },
};

pub const MIKRO_SYNC_ALLOW_PASSIVE_PRODUCTS: Setting = Setting {
    name: "MIKRO_SYNC_ALLOW_PASSIVE_PRODUCTS",
    default: "false",
    help: "Post sale lines whose product is passive in Mikro (sto_pasif_fl; stoklar.aktif = false)",
    kind: Kind::Bool,
};

pub const MIKRO_SYNC_CEK_KASA: Setting = Setting {
    name: "MIKRO_SYNC_CEK_KASA",
    default: "ÇEK",
    help: "Portfolio box (KASALAR code) received cheques go to",
    kind: Kind::Text,
};

pub const MIKRO_SYNC_SENET_KASA: Setting = Setting {
    name: "MIKRO_SYNC_SENET_KASA",
    default: "SENET",
    help: "Portfolio box (KASALAR code) received notes go to",
    kind: Kind::Text,
};

pub const MIKRO_SYNC_DEPO_NO: Setting = Setting {
    name: "MIKRO_SYNC_DEPO_NO",
    default: "1",
    help: "Depot number on sale lines (sth_giris/cikis_depo_no)",
    kind: Kind::Whole {
        min: 0,
        max: 32_767,
    },
};

pub const MIKRO_SYNC_NUMBER_LOCK_TIMEOUT: Setting = Setting {
    name: "MIKRO_SYNC_NUMBER_LOCK_TIMEOUT",
    default: "10s",
    help: "Longest wait for the per-series numbering lock (then retried)",
    kind: Kind::Duration,
};

pub const MIKRO_SYNC_ERP_SYNC_INTERVAL: Setting = Setting {
    name: "MIKRO_SYNC_ERP_SYNC_INTERVAL",
    default: "60s",
    help: "ERP → web sync interval in the daemon (off disables)",
    kind: Kind::OptionalDuration,
};

pub const MIKRO_SYNC_ERP_SYNC_OVERLAP: Setting = Setting {
    name: "MIKRO_SYNC_ERP_SYNC_OVERLAP",
    default: "5m",
    help: "How far back every incremental ERP → web run re-reads: longer than Mikro's clock skew and longest transaction",
    kind: Kind::Duration,
};

pub const MIKRO_SYNC_ERP_SYNC_FULL_EVERY: Setting = Setting {
    name: "MIKRO_SYNC_ERP_SYNC_FULL_EVERY",
    default: "24h",
    help: "How often ERP → web re-reads everything and warns about rows it corrects (off disables)",
    kind: Kind::OptionalDuration,
};

pub const MIKRO_SYNC_METRICS_LISTEN: Setting = Setting {
    name: "MIKRO_SYNC_METRICS_LISTEN",
    default: "off",
    help: "Metrics/health listener: off, on (127.0.0.1:9464), port or address",
    kind: Kind::Text,
};

pub const LOG_LEVEL: Setting = Setting {
    name: "LOG_LEVEL",
    default: "info",
    help: "error, warn, info, debug, trace (winston names accepted) or a filter",
    kind: Kind::Text,
};

pub const MIKRO_SYNC_LOG_FORMAT: Setting = Setting {
    name: "MIKRO_SYNC_LOG_FORMAT",
    default: "text",
    help: "stdout format: text or json (also --log-format)",
    kind: Kind::Text,
};

pub const MIKRO_SYNC_LOG_DIR: Setting = Setting {
    name: "MIKRO_SYNC_LOG_DIR",
    default: "— (stdout only)",
    help: "Directory for daily-rolled combined.log and error.log",
    kind: Kind::Text,
};

/// Every setting mikro-sync reads, in the order of the documentation.
pub const SETTINGS: &[Setting] = &[
    MIKRO_SYNC_PG_URL,
    PG_HOST,
    PG_PORT,
    PG_DATABASE,
    PG_USER,
    PG_PASSWORD,
    PG_SSL,
    PG_SSL_ROOT_CERT,
    PG_SSL_INSECURE_SKIP_VERIFY,
    MIKRO_SYNC_PG_POOL_SIZE,
    MIKRO_SYNC_MSSQL_ADO,
    MSSQL_SERVER,
    MSSQL_PORT,
    MSSQL_DATABASE,
    MSSQL_USER,
    MSSQL_PASSWORD,
    MSSQL_ENCRYPT,
    MSSQL_TRUST_SERVER_CERTIFICATE,
    MSSQL_TRUST_CERT_CA,
    MIKRO_SYNC_MSSQL_POOL_SIZE,
    MIKRO_SYNC_MSSQL_CONNECT_TIMEOUT,
    MIKRO_SYNC_MSSQL_QUERY_TIMEOUT,
    MIKRO_SYNC_MSSQL_BROWSER_PORT,
    MIKRO_SYNC_WORKER_CONCURRENCY,
    BATCH_SIZE,
    MIKRO_SYNC_WORKER_PREFETCH,
    MIKRO_SYNC_POLL_INTERVAL,
    MAX_RETRY_COUNT,
    MIKRO_SYNC_RETRY_TRANSIENT_FOR,
    MIKRO_SYNC_BACKOFF_INITIAL,
    MIKRO_SYNC_BACKOFF_MAX,
    MIKRO_SYNC_SETTLE_WINDOW,
    MIKRO_SYNC_STATS_INTERVAL,
    MIKRO_SYNC_POSTING_TIMEOUT,
    MIKRO_SYNC_MAX_LEASE_EXPIRIES,
    MIKRO_SYNC_TIMEZONE,
    MIKRO_SYNC_SERIES_SATIS,
    MIKRO_SYNC_SERIES_TAHSILAT,
    MIKRO_SYNC_DEFAULT_BANKA,
    MIKRO_SYNC_DEFAULT_KASA,
    MIKRO_SYNC_DEFAULT_CARI,
    MIKRO_SYNC_EARLIEST_DATE,
    MIKRO_SYNC_MAX_DAYS_AHEAD,
    MIKRO_SYNC_ALLOW_PASSIVE_PRODUCTS,
    MIKRO_SYNC_CEK_KASA,
    MIKRO_SYNC_SENET_KASA,
    MIKRO_SYNC_DEPO_NO,
    MIKRO_SYNC_NUMBER_LOCK_TIMEOUT,
    MIKRO_SYNC_ERP_SYNC_INTERVAL,
    MIKRO_SYNC_ERP_SYNC_OVERLAP,
    MIKRO_SYNC_ERP_SYNC_FULL_EVERY,
    MIKRO_SYNC_METRICS_LISTEN,
    LOG_LEVEL,
    MIKRO_SYNC_LOG_FORMAT,
    MIKRO_SYNC_LOG_DIR,
];
