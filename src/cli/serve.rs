//! `poolwatch serve`: flags (all also `POOLWATCH_*` env vars and config-file keys) and the runner.
//!
//! The runner that wires capture/follow/correlation/store into the API lands after the store and
//! list engine merge; today `--check-config` validates and prints the effective settings.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::config::{CliOptions, Settings};

/// Run the detector as a service: capture, follow logs, correlate, store, serve the REST API.
///
/// Precedence: flags > environment (POOLWATCH_*) > config file > defaults. Every flag that takes
/// a list may be repeated; a list given on the command line replaces the file's list.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: poolwatch serve --config poolwatch.toml --listen 127.0.0.1:8080\n\
Documentation: poolwatch.example.toml (every key), docs/api.md (REST API)."
)]
pub struct ServeArgs {
    #[command(flatten)]
    pub options: Box<CliOptions>,
    /// Validate the configuration, print the effective settings (tokens redacted) and exit.
    #[arg(long)]
    pub check_config: bool,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(&args.options).context("configuration")?;
    if args.check_config {
        println!("{}", serde_json::to_string_pretty(&settings)?);
        return Ok(ExitCode::SUCCESS);
    }
    anyhow::bail!("`serve` is not wired to the pipeline in this build yet (try --check-config)")
}
