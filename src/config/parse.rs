//! Reading values: durations, TOML files, and the parser that turns one key → value map into
//! typed settings, collecting every bad value with the name of its variable.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::settings::*;
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

impl<'a> Parser<'a> {
    pub(super) fn new(map: &'a BTreeMap<String, String>) -> Self {
        Parser {
            map,
            errors: Vec::new(),
        }
    }

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

    /// Reports a built-in default its own kind does not accept (a bug in [`SETTINGS`]; a unit
    /// test reads every default, so this never reaches an operator).
    fn bad_default(&mut self, s: &Setting) {
        self.err(
            s.name,
            format!("built-in default `{}` is not a valid value", s.default),
        );
    }

    /// The operator's value read by `read`, or the table's default read the same way; a bad
    /// value is reported with `expected` and the default used in its place.
    fn read<T>(
        &mut self,
        s: &Setting,
        read: impl Fn(&str) -> Option<T>,
        expected: impl FnOnce(&str) -> String,
    ) -> Option<T> {
        if let Some(v) = self.get(s.name) {
            if let Some(x) = read(&v) {
                return Some(x);
            }
            self.err(s.name, expected(&v));
        }
        let d = read(s.default);
        if d.is_none() {
            self.bad_default(s);
        }
        d
    }

    /// A [`Kind::Whole`] setting.
    pub(super) fn whole<T: TryFrom<i64> + Default>(&mut self, s: &Setting) -> T {
        let Kind::Whole { min, max } = s.kind else {
            self.bad_default(s);
            return T::default();
        };
        self.read(s, read_whole(min, max), |v| expected_whole(v, min, max))
            .unwrap_or_default()
    }

    /// A [`Kind::OptionalWhole`] setting: `None` when unset.
    pub(super) fn optional_whole<T: TryFrom<i64> + Default>(&mut self, s: &Setting) -> Option<T> {
        let Kind::OptionalWhole { min, max } = s.kind else {
            self.bad_default(s);
            return None;
        };
        let v = self.get(s.name)?;
        let n = read_whole(min, max)(&v);
        if n.is_none() {
            self.err(s.name, expected_whole(&v, min, max));
        }
        Some(n.unwrap_or_default())
    }

    /// A [`Kind::Bool`] setting.
    pub(super) fn bool(&mut self, s: &Setting) -> bool {
        self.read(s, parse_bool, |v| format!("`{v}`: expected true or false"))
            .unwrap_or_default()
    }

    /// A [`Kind::Duration`] setting.
    pub(super) fn duration(&mut self, s: &Setting) -> Duration {
        self.read(s, parse_duration_or_secs, expected_duration)
            .unwrap_or_default()
    }

    /// A [`Kind::OptionalDuration`] setting: `None` for off or zero.
    pub(super) fn optional_duration(&mut self, s: &Setting) -> Option<Duration> {
        let read = |v: &str| {
            if matches!(
                v.to_ascii_lowercase().as_str(),
                "off" | "0" | "false" | "none"
            ) {
                return Some(None);
            }
            parse_duration_or_secs(v).map(|d| Some(d).filter(|d| !d.is_zero()))
        };
        self.read(s, read, expected_duration).flatten()
    }

    /// A document series (at most 20 characters).
    pub(super) fn series(&mut self, s: &Setting) -> String {
        let read = |v: &str| (v.chars().count() <= 20).then(|| v.to_string());
        self.read(s, read, |v| {
            format!("`{v}`: a Mikro series has at most 20 characters")
        })
        .unwrap_or_default()
    }

    /// A date as `YYYY-MM-DD`.
    pub(super) fn date(&mut self, s: &Setting) -> chrono::NaiveDate {
        let read = |v: &str| chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").ok();
        self.read(s, read, |v| {
            format!("`{v}`: expected a date like 2000-01-01")
        })
        .unwrap_or_default()
    }

    /// A Mikro code (at most 25 characters); `None` when unset.
    pub(super) fn code(&mut self, s: &Setting) -> Option<String> {
        let v = self.get(s.name)?;
        if v.chars().count() > 25 {
            self.err(
                s.name,
                format!("`{v}`: a Mikro code has at most 25 characters"),
            );
            return None;
        }
        Some(v)
    }

    /// The company time zone, an IANA name.
    pub(super) fn timezone(&mut self) -> chrono_tz::Tz {
        let s = &MIKRO_SYNC_TIMEZONE;
        self.read(
            s,
            |v| v.parse::<chrono_tz::Tz>().ok(),
            |v| format!("`{v}`: expected an IANA time zone name such as Europe/Istanbul"),
        )
        .unwrap_or(chrono_tz::UTC)
    }

    /// `LOG_LEVEL` as a `tracing` filter directive.
    pub(super) fn log_level(&mut self) -> String {
        // The old tool used winston's level names.
        let mapped = |v: &str| match v.to_ascii_lowercase().as_str() {
            "verbose" => "debug".to_string(),
            "silly" => "trace".to_string(),
            "http" => "info".to_string(),
            _ => v.to_string(),
        };
        let read = |v: &str| {
            let m = mapped(v);
            tracing_subscriber::EnvFilter::try_new(&m)
                .is_ok()
                .then_some(m)
        };
        self.read(&LOG_LEVEL, read, |v| {
            let e = tracing_subscriber::EnvFilter::try_new(mapped(v))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            format!("`{v}`: expected error, warn, info, debug or trace (or a tracing filter such as `info,mikro_sync=debug`): {e}")
        })
        .unwrap_or_default()
    }

    /// `MIKRO_SYNC_LOG_FORMAT`.
    pub(super) fn log_format(&mut self) -> LogFormat {
        let read = |v: &str| match v.to_ascii_lowercase().as_str() {
            "text" | "pretty" | "plain" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        };
        self.read(&MIKRO_SYNC_LOG_FORMAT, read, |v| {
            format!("`{v}`: expected text or json")
        })
        .unwrap_or(LogFormat::Text)
    }

    /// `MIKRO_SYNC_METRICS_LISTEN`: `None` = off.
    pub(super) fn metrics_listen(&mut self) -> Option<SocketAddr> {
        let read = |v: &str| match v.to_ascii_lowercase().as_str() {
            "off" | "false" | "0" | "no" => Some(None),
            "on" | "true" | "1" | "yes" => Some(Some(SocketAddr::from(([127, 0, 0, 1], 9464)))),
            _ => match v.parse::<u16>() {
                Ok(port) => Some(Some(SocketAddr::from(([127, 0, 0, 1], port)))),
                Err(_) => v.parse::<SocketAddr>().ok().map(Some),
            },
        };
        self.read(&MIKRO_SYNC_METRICS_LISTEN, read, |v| {
            format!("`{v}`: expected off, on (127.0.0.1:9464), a port, or an address like 127.0.0.1:9464")
        })
        .flatten()
    }
}

fn read_whole<T: TryFrom<i64>>(min: i64, max: i64) -> impl Fn(&str) -> Option<T> {
    move |v| {
        v.parse::<i64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .and_then(|n| T::try_from(n).ok())
    }
}

fn expected_whole(v: &str, min: i64, max: i64) -> String {
    format!("`{v}`: expected a whole number from {min} to {max}")
}

fn expected_duration(v: &str) -> String {
    format!("`{v}`: expected a duration like 500ms, 5s, 2m or 1h")
}

pub(super) fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}
