//! `mikro-sync config`: the effective configuration, secrets masked.

use clap::Args;

use super::CliError;
use crate::config::{Config, SETTINGS};

/// Options of `mikro-sync config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// List every setting with its default instead of the effective values.
    #[arg(long)]
    pub list: bool,
}

/// Prints the configuration. Passwords are shown as `***`.
pub fn run(cfg: &Config, args: ConfigArgs) -> Result<(), CliError> {
    if args.list {
        let w = SETTINGS.iter().map(|s| s.name.len()).max().unwrap_or(0);
        let d = SETTINGS
            .iter()
            .map(|s| s.default.chars().count())
            .max()
            .unwrap_or(0);
        for s in SETTINGS {
            let pad = d - s.default.chars().count();
            println!(
                "{:<w$}  {}{}  {}",
                s.name,
                s.default,
                " ".repeat(pad),
                s.help
            );
        }
        return Ok(());
    }
    print!("{}", cfg.render_masked());
    Ok(())
}
