//! The table of every setting: the source of `docs/configuration.md` and `config --list`.

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
        help: "Web connection pool size. A worker also keeps its LISTEN connection and the completer's (`mikro-sync listener`, `mikro-sync completer` in `pg_stat_activity`): pool size + 2 connections in all",
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
        help: "Bound of one SQL Server connection attempt (TCP connect, TLS, login) and of a document's wait for a pooled connection. When it runs out the document is retried (transient) and the log names the server and the last connect error",
    },
    Setting {
        name: "MIKRO_SYNC_MSSQL_QUERY_TIMEOUT",
        default: "30s",
        help: "Longest wait for SQL Server's answer to any ERP statement (a posting's batch, the check-out test). Then the connection is dropped and the document retried (transient); the ledger keeps it exactly once. Keep it above `MIKRO_SYNC_NUMBER_LOCK_TIMEOUT`",
    },
    Setting {
        name: "MIKRO_SYNC_MSSQL_BROWSER_PORT",
        default: "1434",
        help: "UDP port of SQL Server Browser, asked for the TCP port of a named instance (`host\\INSTANCE` without a port). Only tests need another value",
    },
    Setting {
        name: "MIKRO_SYNC_WORKER_CONCURRENCY",
        default: "4",
        help: "Documents in flight per worker. A document is read from PostgreSQL before it takes an ERP connection, so a value above `MIKRO_SYNC_MSSQL_POOL_SIZE` overlaps web reads with ERP transactions",
    },
    Setting {
        name: "BATCH_SIZE",
        default: "100",
        help: "Queue rows claimed per batch",
    },
    Setting {
        name: "MIKRO_SYNC_WORKER_PREFETCH",
        default: "= concurrency",
        help: "Claimed rows kept ready beyond those in flight: under load a finished document's slot is refilled at once and the worker claims only when this buffer is below half (several rows per claim statement instead of one per document). Buffered rows are leased like in-flight ones and put back to `pending` on a graceful stop. 0 turns it off",
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
        help: "Longest retry delay (a hard bound, jitter included)",
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
        help: "Times a document may crash or hang the worker (its lease expired) before it ends `failed`; 0 = never",
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
