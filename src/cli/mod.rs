//! Command-line interface: flag definitions and the runner for each subcommand.
//!
//! Each subcommand lives in its own file and owns its flags (`scan.rs` defines `ScanArgs`, …).
//! Runners return `anyhow::Result<ExitCode>`: this is the binary's edge, where layer errors
//! become messages and exit codes. The contract every subcommand keeps (README "Exit codes"):
//! exit codes stated in its `--help`, `--output text|json` (`table` an alias of `text`),
//! `-o`/`--out FILE`, examples in its `--help`, and one error line that names each thing once.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{CommandFactory as _, Parser, Subcommand};

pub mod blocklist;
pub mod demo;
pub mod docs;
pub mod hunt;
pub mod inspect;
pub mod out;
pub mod progress;
pub mod scan;
pub mod serve;

/// Exit status: success (clean scan, name listed, configuration valid).
pub const EXIT_OK: u8 = 0;
/// Exit status: the command ran and found something (`scan`: detections; `blocklist match`:
/// no name listed; `blocklist lint`: problems).
pub const EXIT_FOUND: u8 = 1;
/// Exit status: an error (bad arguments, unreadable input, unusable database, failed start-up).
pub const EXIT_ERROR: u8 = 2;

/// Detect unauthorised cryptocurrency mining from DNS: mining-pool lookups in packet captures and
/// resolver logs, correlated with the same client's later connections to the pool.
#[derive(Debug, Parser)]
#[command(
    name = "poolwatch",
    version = crate::version::VERSION,
    long_version = long_version(),
    about,
    long_about = None,
    propagate_version = true
)]
#[command(
    after_help = "Examples:\n  poolwatch demo\n  poolwatch scan capture.pcap query.log\n  \
poolwatch blocklist match xmr-eu1.nanopool.org\n  poolwatch serve --config /etc/poolwatch/poolwatch.toml\n\n\
Exit status: 0 success, 1 found (scan: detections; blocklist match: nothing listed), 2 error;\n\
each subcommand's --help states its own.\n\
Documentation: README.md, docs/detections.md (detection JSON), docs/api.md (REST API), man poolwatch."
)]
pub struct Cli {
    /// Log filter (tracing `EnvFilter` syntax, e.g. `info`, `poolwatch=debug`). Logs go to stderr
    /// [default: warn; `serve`: the config file's `log_level`, else info].
    #[arg(long, global = true, env = "POOLWATCH_LOG", value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Write every line on stderr (logs, warnings, errors) as one JSON object.
    #[arg(long, global = true, env = "POOLWATCH_LOG_JSON")]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

fn long_version() -> &'static str {
    static V: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    V.get_or_init(crate::version::long)
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
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(docs::CompletionsArgs),
    /// Print the man page (roff), or write one page per subcommand into a directory.
    Manpage(docs::ManpageArgs),
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

/// Whether stderr carries JSON lines only (set once logging is set up).
static LOG_JSON: AtomicBool = AtomicBool::new(false);

/// Sets up logging to stderr: colours only on a terminal; with `json`, one JSON object a line.
/// The filter can be swapped later (SIGHUP reload of `log_level`).
pub fn init_logging(filter: &str, json: bool) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{fmt, reload, EnvFilter};
    LOG_JSON.store(json, Ordering::Relaxed);
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("warn"));
    let (filter, handle) = reload::Layer::new(filter);
    let json_layer = json.then(|| {
        fmt::layer()
            .json()
            .with_ansi(false)
            .with_writer(progress::StderrLine::default)
    });
    let text_layer = (!json).then(|| {
        fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(progress::StderrLine::default)
    });
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(json_layer)
        .with(text_layer)
        .try_init()
        .is_ok();
    if installed {
        crate::service::reload::set_log_reloader(Box::new(move |f: &str| {
            let new = EnvFilter::try_new(f).map_err(|e| format!("log filter {f:?}: {e}"))?;
            handle.reload(new).map_err(|e| e.to_string())
        }));
    }
}

/// Severity of a [`say`] line.
#[derive(Clone, Copy, Debug)]
pub enum Level {
    Error,
    Warn,
    Info,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
        }
    }
}

/// Writes a message for the user to stderr, whatever the log filter: `poolwatch: MSG` as text,
/// or with `--log-json` a JSON object in the shape of the log lines (`timestamp`, `level`,
/// `fields.message`, `target`), so that every stderr line parses.
pub fn say(level: Level, msg: &str) {
    // Through the progress bar's writer: a message prints above the bar, never through it.
    let line = if LOG_JSON.load(Ordering::Relaxed) {
        json_line(level, msg)
    } else {
        match level {
            Level::Error => format!("poolwatch: error: {msg}"),
            Level::Warn => format!("poolwatch: warning: {msg}"),
            Level::Info => msg.to_string(),
        }
    };
    progress::write_stderr(format!("{line}\n").as_bytes());
}

fn json_line(level: Level, msg: &str) -> String {
    let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    serde_json::json!({
        "timestamp": ts,
        "level": level.as_str(),
        "fields": {"message": msg},
        "target": "poolwatch",
    })
    .to_string()
}

/// Whether stderr is JSON lines (`--log-json`).
pub fn log_json() -> bool {
    LOG_JSON.load(Ordering::Relaxed)
}

/// An error chain as one line, each part once: a layer whose message already quotes its source
/// (`cannot open X: No such file`) is not followed by that source again.
pub fn error_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = tidy_debug(&cause.to_string());
        let text = text.trim();
        if text.is_empty() || parts.iter().any(|p| p.contains(text)) {
            continue;
        }
        // A context that the next layer's message repeats and extends: keep the longer one.
        match parts.last_mut() {
            Some(last) if text.starts_with(last.as_str()) => *last = text.to_string(),
            _ => parts.push(text.to_string()),
        }
    }
    parts.join(": ")
}

/// Rewrites the `Debug` rendering of an OS error that some libraries put into their messages
/// (`Os { code: 11, kind: WouldBlock, message: "Resource temporarily unavailable" }`) the way
/// `std::io::Error` displays it (`Resource temporarily unavailable (os error 11)`).
pub fn tidy_debug(text: &str) -> String {
    const OPEN: &str = "Os { code: ";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(OPEN) {
        let (before, from) = rest.split_at(i);
        let Some(end) = from.find(" }") else { break };
        let body = from.get(OPEN.len()..end).unwrap_or_default();
        let code = body.split(',').next().unwrap_or_default().trim();
        let message = body
            .split_once("message: \"")
            .and_then(|(_, m)| m.strip_suffix('"'))
            .unwrap_or("system error");
        out.push_str(before);
        out.push_str(&format!("{message} (os error {code})"));
        rest = from.get(end + 2..).unwrap_or_default();
    }
    out.push_str(rest);
    out
}

/// Default log filter of the one-shot commands.
pub const DEFAULT_LOG_LEVEL: &str = "warn";

/// Whether `--log-json`/`POOLWATCH_LOG_JSON` was asked for, before clap has parsed (for
/// argument errors).
fn json_requested() -> bool {
    let env = std::env::var("POOLWATCH_LOG_JSON")
        .map(|v| matches!(v.as_str(), "1" | "true" | "yes" | "on"))
        .unwrap_or(false);
    env || std::env::args_os().any(|a| a == "--log-json")
}

/// Entry point used by `main.rs`.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                || !json_requested()
            {
                // Help and version to stdout (exit 0); usage errors to stderr, exit 2.
                e.exit();
            }
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            let msg = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("{}", json_line(Level::Error, msg));
            return ExitCode::from(EXIT_ERROR);
        }
    };
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
        Command::Completions(a) => docs::completions(a, Cli::command()),
        Command::Manpage(a) => docs::manpage(a, Cli::command()),
        Command::Hunt(a) => hunt::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            say(Level::Error, &error_line(&e));
            ExitCode::from(EXIT_ERROR)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_line_names_each_part_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let e = anyhow::Error::new(io).context("cannot open /x: No such file or directory");
        let e = e.context("cannot open /x");
        assert_eq!(error_line(&e), "cannot open /x: No such file or directory");
    }

    #[test]
    fn os_error_debug_is_rewritten() {
        let t = "cannot open database /d: IO error: could not acquire lock on \"/d/db\": \
                 Os { code: 11, kind: WouldBlock, message: \"Resource temporarily unavailable\" }";
        assert_eq!(
            tidy_debug(t),
            "cannot open database /d: IO error: could not acquire lock on \"/d/db\": \
             Resource temporarily unavailable (os error 11)"
        );
        assert_eq!(tidy_debug("plain"), "plain");
        assert_eq!(tidy_debug("Os { code: 2"), "Os { code: 2");
    }

    #[test]
    fn json_lines_parse() {
        let v: serde_json::Value =
            serde_json::from_str(&json_line(Level::Warn, "a \"quoted\"\nline")).unwrap();
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["fields"]["message"], "a \"quoted\"\nline");
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
