//! The `mikro-sync` binary: parses the command line, loads the configuration, sets up logging
//! and runs the subcommand. Exit codes: 0 ok, 1 the command failed, 2 bad configuration or usage.

use clap::Parser;
use mikro_sync::cli::{self, Cli, CliError, Command};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let cfg = match cli.load_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("mikro-sync: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    // Commands that print reports keep stdout for the report; logs go to stderr-level noise only
    // when asked. The worker logs to stdout (journald).
    let log_dir = match cli.command {
        Command::Worker(_) => cfg.log_dir.clone(),
        _ => None,
    };
    let level = match cli.command {
        Command::Worker(_) | Command::SyncBidirectional(_) | Command::Sync(_) => {
            cfg.log_level.clone()
        }
        _ if cli.log_level.is_some() => cfg.log_level.clone(),
        // Reports keep stdout for themselves; only problems are logged (tiberius' own notice
        // about plaintext connections is not one).
        _ => "warn,tiberius=error".to_string(),
    };
    // The daemon logs to stdout (journald, `docker logs`); report commands log to stderr.
    let to_stderr = !matches!(cli.command, Command::Worker(_));
    let _guards = match mikro_sync::telemetry::init_with(
        &level,
        cfg.log_format,
        log_dir.as_deref(),
        to_stderr,
    ) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("mikro-sync: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mikro-sync: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(cli::run(cli, cfg)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(
            e @ (CliError::Config(_)
            | CliError::Unsupported(_)
            | CliError::Pool(mikro_sync::db::PoolError::ErpInstance(_))),
        ) => {
            eprintln!("mikro-sync: {e}");
            std::process::ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("mikro-sync: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
