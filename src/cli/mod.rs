//! Command-line interface: flag definitions and the runner for each subcommand.
//!
//! Each subcommand lives in its own file and owns its flags (`scan.rs` defines `ScanArgs`, …).
//! Runners return `anyhow::Result<ExitCode>`: this is the binary's edge, where layer errors
//! become messages and exit codes.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod blocklist;
pub mod demo;
pub mod hunt;
pub mod inspect;
pub mod scan;
pub mod serve;

/// Detect unauthorised cryptocurrency mining from DNS: mining-pool lookups in packet captures and
/// resolver logs, correlated with the same client's later connections to the pool.
#[derive(Debug, Parser)]
#[command(name = "poolwatch", version, about, long_about = None, propagate_version = true)]
#[command(
    after_help = "Start with `poolwatch demo`, or `poolwatch scan FILE…` on your own captures and logs.\n\
Documentation: README.md, docs/detections.md (detection JSON), docs/api.md (REST API)."
)]
pub struct Cli {
    /// Log filter (tracing `EnvFilter` syntax, e.g. `info`, `poolwatch=debug`). Logs go to stderr
    /// [default: warn; `serve`: the config file's `log_level`, else info].
    #[arg(long, global = true, env = "POOLWATCH_LOG")]
    pub log_level: Option<String>,
    /// Write logs as JSON lines instead of text.
    #[arg(long, global = true, env = "POOLWATCH_LOG_JSON")]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Analyse pcap files and resolver/flow logs offline and print the detections.
    Scan(scan::ScanArgs),
    /// Print the decoded DNS and flow observations of captures and logs, one JSON object a line.
    Inspect(inspect::InspectArgs),
    /// Work with pool-domain lists: match names, lint files, count entries, export for blockers.
    Blocklist(blocklist::BlocklistArgs),
    /// Run the service: capture and follow inputs, correlate, store, and serve the REST API.
    Serve(serve::ServeArgs),
    /// Run the service on a fresh database fed with the bundled sample data, and show how to query it.
    Demo(demo::DemoArgs),
    /// What the DNS and flow history holds for names, addresses or CIDRs (docs/hunt.md).
    Hunt(hunt::HuntArgs),
}

/// The global logging flags, for the commands that initialise logging themselves.
#[derive(Clone, Debug, Default)]
pub struct LogFlags {
    /// `--log-level` / `POOLWATCH_LOG` when given.
    pub level: Option<String>,
    /// `--log-json` / `POOLWATCH_LOG_JSON`.
    pub json: bool,
}

/// Sets up logging to stderr.
pub fn init_logging(filter: &str, json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// Default log filter of the one-shot commands.
pub const DEFAULT_LOG_LEVEL: &str = "warn";

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // `serve` and `demo` set up logging themselves once the config file is read (its
    // `log_level`/`log_json` apply unless the flags are given).
    if !matches!(cli.command, Command::Serve(_) | Command::Demo(_)) {
        init_logging(
            cli.log_level.as_deref().unwrap_or(DEFAULT_LOG_LEVEL),
            cli.log_json,
        );
    }
    let log = LogFlags {
        level: cli.log_level,
        json: cli.log_json,
    };
    let result = match cli.command {
        Command::Scan(a) => scan::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Blocklist(a) => blocklist::run(a),
        Command::Serve(a) => serve::run(a, log),
        Command::Demo(a) => demo::run(a, log),
        Command::Hunt(a) => hunt::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("poolwatch: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
