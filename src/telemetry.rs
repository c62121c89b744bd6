//! Logging: `tracing` to stdout (text or JSON, journald-friendly) and, when a log directory is
//! configured, daily-rolled `combined.log` (everything the filter lets through) and `error.log`
//! (errors only), as the old tool's operators expect.
//!
//! Why spans: the worker wraps each document in a span carrying `queue_id`, `kind` and `web_id`;
//! both formats print the span fields on every line, so `grep <web id> combined.log` finds the
//! whole story of one document. Secrets never reach a log because the configuration types print
//! `***` for them (see `crate::config::Secret`).

use std::path::Path;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// Keeps the background log-file writers alive; drop it last (it flushes on drop).
pub struct LogGuards {
    _guards: Vec<tracing_appender::non_blocking::WorkerGuard>,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The log directory cannot be created or written.
    #[error("cannot use log directory {dir} (MIKRO_SYNC_LOG_DIR): {message}")]
    LogDir {
        /// The directory.
        dir: String,
        /// Why.
        message: String,
    },
    /// The filter directive is invalid (normally caught by the configuration already).
    #[error("invalid LOG_LEVEL filter: {0}")]
    Filter(String),
}

/// `level` with tiberius' own INFO lines off ("Begin transaction", "Commit transaction", database
/// and packet-size changes: half of all lines under load, none of them actionable), unless the
/// directive names tiberius itself. Its warnings and errors stay.
pub fn quiet_tiberius(level: &str) -> String {
    if level.contains("tiberius") {
        level.to_string()
    } else {
        format!("{level},tiberius=warn")
    }
}

/// Installs the global subscriber. `level` is a `tracing` filter directive (`info`,
/// `info,mikro_sync=debug`); `RUST_LOG`, when set, wins for the stdout and combined outputs.
pub fn init(
    level: &str,
    format: LogFormat,
    dir: Option<&Path>,
) -> Result<LogGuards, TelemetryError> {
    init_with(level, format, dir, false)
}

/// Like [`init`]; with `to_stderr` the console output goes to stderr, so a command's report on
/// stdout (`sync`, `status`, …) stays clean for pipes.
pub fn init_with(
    level: &str,
    format: LogFormat,
    dir: Option<&Path>,
    to_stderr: bool,
) -> Result<LogGuards, TelemetryError> {
    // The console writer runs on its own thread: a stalled stdout (a full pipe, a stuck
    // journald) must never block the runtime threads that post documents. Lines are dropped
    // rather than waited for when its buffer is full.
    let (console_writer, console_guard) = if to_stderr {
        tracing_appender::non_blocking(std::io::stderr())
    } else {
        tracing_appender::non_blocking(std::io::stdout())
    };
    let console = || console_writer.clone();
    let filter = || -> Result<EnvFilter, TelemetryError> {
        match std::env::var("RUST_LOG") {
            Ok(v) if !v.trim().is_empty() => {
                EnvFilter::try_new(v).map_err(|e| TelemetryError::Filter(e.to_string()))
            }
            _ => EnvFilter::try_new(quiet_tiberius(level))
                .map_err(|e| TelemetryError::Filter(e.to_string())),
        }
    };
    use std::io::IsTerminal;
    // Under systemd, journald stamps every line itself.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let ansi = if to_stderr {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    };
    let stdout_layer: Box<dyn Layer<_> + Send + Sync> = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_target(true)
            .with_writer(console())
            .with_filter(filter()?)
            .boxed(),
        LogFormat::Text if journald => tracing_subscriber::fmt::layer()
            .without_time()
            .with_ansi(false)
            .with_writer(console())
            .with_filter(filter()?)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(console())
            .with_filter(filter()?)
            .boxed(),
    };
    let mut guards = vec![console_guard];
    let mut layers = vec![stdout_layer];
    if let Some(dir) = dir {
        let derr = |e: &dyn std::fmt::Display| TelemetryError::LogDir {
            dir: dir.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| derr(&e))?;
        let appender = |name: &str| {
            tracing_appender::rolling::RollingFileAppender::builder()
                .rotation(tracing_appender::rolling::Rotation::DAILY)
                .filename_prefix(name)
                .max_log_files(14)
                .build(dir)
                .map_err(|e| derr(&e))
        };
        let (combined, g1) = tracing_appender::non_blocking(appender("combined.log")?);
        let (errors, g2) = tracing_appender::non_blocking(appender("error.log")?);
        guards.push(g1);
        guards.push(g2);
        let file_layer = |w: tracing_appender::non_blocking::NonBlocking| match format {
            LogFormat::Json => tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .with_writer(w)
                .boxed(),
            LogFormat::Text => tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(w)
                .boxed(),
        };
        layers.push(file_layer(combined).with_filter(filter()?).boxed());
        layers.push(
            file_layer(errors)
                .with_filter(tracing_subscriber::filter::LevelFilter::ERROR)
                .boxed(),
        );
    }
    // A second init (tests calling twice) is harmless: the first subscriber stays.
    let _ = tracing_subscriber::registry().with(layers).try_init();
    Ok(LogGuards { _guards: guards })
}
