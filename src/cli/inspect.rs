//! `poolwatch inspect`: print the observations decoded from captures and logs.
//!
//! This is how a user checks what poolwatch sees before trusting its detections, and how the
//! tests compare poolwatch's reading of a capture with Wireshark's, Zeek's and Suricata's.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::capture::CaptureConfig;
use crate::ingest::IngestConfig;
use crate::input::{self, InputFormat};
use crate::model::Observation;

use super::out::OutTarget;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InspectOutput {
    /// One JSON object a line (`"observation": "dns"` or `"flow"`); see docs/observations.md.
    Json,
    /// One readable line per observation (alias: `table`).
    #[value(alias = "table")]
    Text,
}

fn inspect_help() -> String {
    format!(
        "Examples:\n  poolwatch inspect capture.pcap\n  \
poolwatch inspect --format bind /var/log/named/query.log | jq 'select(.qname | endswith(\"supportxmr.com\"))'\n  \
poolwatch inspect --only flow --output text capture.pcap\n  \
poolwatch inspect -o obs.jsonl capture.pcap && poolwatch scan --format observations obs.jsonl\n\n\
Formats (--format): {}.\n\n\
Exit status: 0 every input read to its end, 2 error (an input missing, unreadable, truncated or\n\
damaged; the others are still printed).",
        super::scan::FORMATS
    )
}

/// Print the DNS and flow observations decoded from pcap files and logs, one JSON object a line.
///
/// Every input kind yields the same shapes (docs/observations.md), so a capture and a resolver
/// log of the same traffic can be compared line by line.
#[derive(Debug, clap::Args)]
#[command(after_help = inspect_help())]
pub struct InspectArgs {
    /// Input format: `auto` (detected per file from its first bytes), `pcap`, `observations`
    /// (JSON lines as printed here), or a log format (see `poolwatch scan --help`).
    #[arg(long, default_value = "auto")]
    pub format: String,
    /// Output form: `json` (one observation a line) or `text` (`table` is an alias).
    #[arg(long, value_enum, default_value = "json")]
    pub output: InspectOutput,
    /// Write to FILE (complete when it appears) instead of standard output.
    #[arg(long = "out", short = 'o', value_name = "FILE", value_parser = super::out::parse_out_path)]
    pub out: Option<PathBuf>,
    /// Print only this kind of observation.
    #[arg(long, value_parser = ["dns", "flow"])]
    pub only: Option<String>,
    /// DNS server ports for packet input (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "53")]
    pub dns_ports: Vec<u16>,
    /// Capture files (pcap, pcapng) and log files; `-` reads standard input.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
}

pub fn run(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let format = InputFormat::parse(&args.format)?;
    let capture_cfg = CaptureConfig {
        dns_ports: args.dns_ports.clone(),
        ..CaptureConfig::default()
    };
    let ingest_cfg = IngestConfig::default();
    let mut out = OutTarget::open(args.out.as_deref()).context("opening the output file")?;
    let mut failed = 0usize;
    let failures = input::ReadFailures::new();
    for path in &args.inputs {
        // Per-file errors are reported and the other files still processed (as ripgrep does);
        // the exit code says that something failed.
        let opened = input::open_reporting(path, format, &capture_cfg, &ingest_cfg, &failures);
        let observations = match opened {
            Ok(o) => o,
            Err(e) => {
                // The error names the input.
                super::say(super::Level::Error, &e.to_string());
                failed += 1;
                continue;
            }
        };
        for obs in observations {
            let keep = match (&args.only, &obs) {
                (None, _) => true,
                (Some(k), Observation::Dns(_)) => k == "dns",
                (Some(k), Observation::Flow(_)) => k == "flow",
            };
            if !keep {
                continue;
            }
            let written = match args.output {
                InspectOutput::Json => serde_json::to_writer(&mut out, &obs)
                    .map_err(std::io::Error::from)
                    .and_then(|_| out.write_all(b"\n")),
                InspectOutput::Text => writeln!(out, "{}", text_line(&obs)),
            };
            if let Err(e) = written {
                // A closed pipe (`| head`) is a normal way to stop reading; any other write
                // error fails the command.
                super::out::finish(out, Err(e))?;
                return Ok(ExitCode::SUCCESS);
            }
        }
        // An input that ended early (truncated capture, read error, malformed line).
        for f in failures.take() {
            let _ = out.flush();
            super::say(super::Level::Error, &f.to_string());
            failed += 1;
        }
    }
    super::out::finish(out, Ok(()))?;
    Ok(if failed > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// A compact human rendering: `ts dns client -> server qname qtype rcode [answers]`.
fn text_line(obs: &Observation) -> String {
    match obs {
        Observation::Dns(d) => {
            let answers: Vec<String> = d
                .answers
                .iter()
                .map(|a| format!("{} {}", a.rtype, a.data))
                .collect();
            format!(
                "{} dns {} -> {} {} {} {} [{}]",
                d.ts,
                d.client,
                d.server
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "-".into()),
                d.qname,
                d.qtype,
                d.rcode.map(|r| r.to_string()).unwrap_or_else(|| "-".into()),
                answers.join(", ")
            )
        }
        Observation::Flow(f) => {
            let mut app = Vec::new();
            if let Some(m) = &f.app.stratum_method {
                app.push(format!("stratum={m}"));
            }
            if let Some(a) = &f.app.stratum_agent {
                app.push(format!("agent={a:?}"));
            }
            if let Some(s) = &f.app.sni {
                app.push(format!("sni={s}"));
            }
            format!(
                "{} flow {:?} {}:{} -> {}:{} {:?} out={}B/{}p in={}B/{}p {}",
                f.ts,
                f.proto,
                f.src,
                f.src_port,
                f.dst,
                f.dst_port,
                f.state,
                f.bytes_out,
                f.packets_out,
                f.bytes_in,
                f.packets_in,
                app.join(" ")
            )
        }
    }
}
