//! The web database (PostgreSQL): connection settings and TLS, and how they are read.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::parse::Parser;
use super::settings::*;
use super::*;

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

impl Parser<'_> {
    pub(super) fn pg_tls(&mut self, url_mode: Option<PgSslMode>) -> PgTls {
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
        let insecure = self.bool(&PG_SSL_INSECURE_SKIP_VERIFY);
        let root_cert = self.get("PG_SSL_ROOT_CERT").map(PathBuf::from);
        PgTls {
            mode,
            verify: !insecure,
            root_cert,
        }
    }

    pub(super) fn web(&mut self) -> Option<WebDbConfig> {
        let pool_size = self.whole(&MIKRO_SYNC_PG_POOL_SIZE);
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
            let port = pg.get_ports().first().copied().unwrap_or(DEFAULT_PG_PORT);
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
        let port = self.whole(&PG_PORT);
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
            host: self
                .get(PG_HOST.name)
                .unwrap_or_else(|| PG_HOST.default.into()),
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
}
