//! Reading values: durations, TOML files, and the parser that turns one key → value map into
//! typed settings, collecting every bad value with the name of its variable.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::*;

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

pub(super) fn parse_duration_or_secs(s: &str) -> Option<Duration> {
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

pub(super) struct Parser<'a> {
    pub(super) map: &'a BTreeMap<String, String>,
    pub(super) errors: Vec<SettingError>,
}

impl Parser<'_> {
    pub(super) fn get(&self, k: &str) -> Option<String> {
        self.map
            .get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    }

    pub(super) fn err(&mut self, var: &str, message: impl Into<String>) {
        self.errors.push(SettingError {
            var: var.into(),
            message: message.into(),
        });
    }

    pub(super) fn num<T>(&mut self, k: &str, default: T, min: T, max: T) -> T
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

    pub(super) fn bool(&mut self, k: &str, default: bool) -> bool {
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

    pub(super) fn duration(&mut self, k: &str, default: Duration) -> Duration {
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

    pub(super) fn optional_duration(
        &mut self,
        k: &str,
        default: Option<Duration>,
    ) -> Option<Duration> {
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

    pub(super) fn series(&mut self, k: &str, default: &str) -> String {
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

    pub(super) fn date(&mut self, k: &str, default: (i32, u32, u32)) -> chrono::NaiveDate {
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

    pub(super) fn code(&mut self, k: &str) -> Option<String> {
        let v = self.get(k)?;
        if v.chars().count() > 25 {
            self.err(k, format!("`{v}`: a Mikro code has at most 25 characters"));
            return None;
        }
        Some(v)
    }

    pub(super) fn timezone(&mut self) -> chrono_tz::Tz {
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

    pub(super) fn log_level(&mut self) -> String {
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

    pub(super) fn metrics_listen(&mut self) -> Option<SocketAddr> {
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
}

pub(super) fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}
