//! `mikro-emulator` binary: a TDS (SQL Server wire protocol) endpoint backed by PostgreSQL.
//!
//! Why a binary besides the library: the demo and manual checks with FreeTDS `tsql`,
//! python-tds or SSMS-like tools need a long-running server on a fixed port.

use clap::{Parser, ValueEnum};
use mikro_emulator::engine::Engine;
use mikro_emulator::server::{split_go_batches, start_with_engine};
use mikro_emulator::value::Output;
use mikro_emulator::{EmulatorConfig, TlsMode};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TlsArg {
    Off,
    Optional,
    Required,
}

/// A TDS server that runs Mikro's T-SQL subset on PostgreSQL.
#[derive(Debug, Parser)]
#[command(name = "mikro-emulator", version, about)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:1433")]
    listen: SocketAddr,
    /// PostgreSQL URL of the database that stores the emulated database.
    #[arg(long, env = "MIKRO_EMULATOR_PG")]
    pg: String,
    /// SQL authentication login.
    #[arg(long, default_value = "sa")]
    user: String,
    /// SQL authentication password.
    #[arg(long, env = "MIKRO_EMULATOR_PASSWORD", hide_env_values = true)]
    password: String,
    /// Database name clients log in to.
    #[arg(long, default_value = "MikroDB")]
    database: String,
    /// T-SQL files to run at start, in order (batches split on lines that are just `GO`).
    #[arg(long, num_args = 1..)]
    schema: Vec<PathBuf>,
    /// TLS offer in PRELOGIN.
    #[arg(long, value_enum, default_value = "optional")]
    tls: TlsArg,
    /// Log filter (tracing-subscriber EnvFilter syntax, e.g. `info` or `mikro_emulator=debug`).
    #[arg(long, default_value = "info")]
    log_level: String,
}

async fn load_schema(engine: &std::sync::Arc<Engine>, files: &[PathBuf]) -> Result<(), String> {
    if files.is_empty() {
        return Ok(());
    }
    let mut session = engine.session().await.map_err(|e| e.to_string())?;
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        for (i, batch) in split_go_batches(&text).iter().enumerate() {
            let mut out = Vec::new();
            session.execute(batch, &[], &mut out).await;
            if let Some(Output::Error(e)) = out.iter().find(|o| matches!(o, Output::Error(_))) {
                session.close().await;
                return Err(format!("{} batch {}: {e}", f.display(), i + 1));
            }
        }
        tracing::info!(file = %f.display(), "schema loaded");
    }
    session.close().await;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let engine = match Engine::with_database(&args.pg, Some(&args.database)).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("mikro-emulator: cannot use the PostgreSQL database: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = load_schema(&engine, &args.schema).await {
        eprintln!("mikro-emulator: loading the schema failed: {e}");
        return ExitCode::FAILURE;
    }
    let config = EmulatorConfig {
        listen: args.listen,
        pg_url: args.pg.clone(),
        user: args.user.clone(),
        password: args.password.clone(),
        database: args.database.clone(),
        tls: match args.tls {
            TlsArg::Off => TlsMode::Off,
            TlsArg::Optional => TlsMode::Optional,
            TlsArg::Required => TlsMode::Required,
        },
    };
    let handle = match start_with_engine(config, engine).await {
        Ok(h) => h,
        Err(e) => {
            eprintln!("mikro-emulator: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("mikro-emulator listening on {}", handle.addr);
    shutdown_signal().await;
    tracing::info!("shutting down");
    handle.shutdown().await;
    ExitCode::SUCCESS
}
