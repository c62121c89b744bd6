//! The Mikro database (SQL Server): connection settings, encryption, the ADO.NET connection
//! string, and how they are read.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::parse::{parse_bool, Parser};
use super::settings::*;
use super::*;

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
    /// SQL Server Browser's UDP port (`MIKRO_SYNC_MSSQL_BROWSER_PORT`).
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

impl Parser<'_> {
    /// The SQL Server CA file: the TLS library tells PEM from DER by the file name only, so any
    /// other name is refused here, with the fix, instead of at every connection attempt.
    pub(super) fn erp_ca_file(&mut self, var: &str, value: Option<String>) -> Option<PathBuf> {
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

    fn erp_bounds(&mut self) -> ErpBounds {
        ErpBounds {
            browser_port: self.whole(&MIKRO_SYNC_MSSQL_BROWSER_PORT),
            connect_timeout: self.duration(&MIKRO_SYNC_MSSQL_CONNECT_TIMEOUT),
            query_timeout: self.duration(&MIKRO_SYNC_MSSQL_QUERY_TIMEOUT),
        }
    }

    pub(super) fn erp(&mut self) -> Option<ErpDbConfig> {
        let pool_size = self.whole(&MIKRO_SYNC_MSSQL_POOL_SIZE);
        let bounds = self.erp_bounds();
        for (k, d) in [
            (
                MIKRO_SYNC_MSSQL_CONNECT_TIMEOUT.name,
                bounds.connect_timeout,
            ),
            (MIKRO_SYNC_MSSQL_QUERY_TIMEOUT.name, bounds.query_timeout),
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
        let trust = self.bool(&MSSQL_TRUST_SERVER_CERTIFICATE);
        let ca = self.erp_ca_file("MSSQL_TRUST_CERT_CA", self.get("MSSQL_TRUST_CERT_CA"));
        // Validated even when unused: a bad value is reported, never silently ignored.
        let port_setting = self.whole(&MSSQL_PORT);
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

    pub(super) fn erp_encrypt(&mut self, var: &str, value: Option<String>) -> ErpEncrypt {
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

    pub(super) fn erp_from_ado(
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
            Some((h, p)) => match p.trim().parse::<u16>() {
                Ok(port) if port > 0 => (h.to_string(), port, true),
                _ => {
                    self.err(
                        VAR,
                        format!(
                            "`server={server}`: the port after the comma must be a number from 1 \
                             to 65535 (server=tcp:host,1433)"
                        ),
                    );
                    return None;
                }
            },
            None => (server, DEFAULT_MSSQL_PORT, false),
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErpBounds {
    /// SQL Server Browser's UDP port (`MIKRO_SYNC_MSSQL_BROWSER_PORT`).
    pub browser_port: u16,
    /// One connection attempt (`MIKRO_SYNC_MSSQL_CONNECT_TIMEOUT`).
    pub connect_timeout: Duration,
    /// One statement's answer (`MIKRO_SYNC_MSSQL_QUERY_TIMEOUT`).
    pub query_timeout: Duration,
}

impl Default for ErpBounds {
    /// The bounds of the default configuration, from [`SETTINGS`].
    fn default() -> Self {
        Parser::new(&BTreeMap::new()).erp_bounds()
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
