//! `poolwatch hunt --db DIR NAME…`: what the DNS and flow history of a database holds for
//! names (suffix semantics, like list entries), addresses, CIDRs or `ip:port` endpoints. Reads
//! only; creates no detections (docs/hunt.md).
//!
//! Exit codes (like `grep`): 0 = the history holds something for at least one target,
//! 1 = nothing, 2 = error (no such database, a target that is neither a name nor an address).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::hunt::Hunter;
use crate::model::Timestamp;
use crate::ports::{HuntReport, HuntRequest};
use crate::store::Store;

/// Rows of each kind shown per target by default.
pub const DEFAULT_LIMIT: usize = 1_000;
/// Most targets per run.
pub const MAX_TARGETS: usize = 1_000;
/// Deepest directory level `scan --history` descends into.
const MAX_DIR_DEPTH: usize = 16;

#[derive(Debug, clap::Args)]
pub struct HuntArgs {
    /// The database written by `serve` or `scan --db DIR --history`.
    #[arg(long, value_name = "DIR")]
    pub db: PathBuf,
    /// Only what happened at or after this time (RFC 3339 or Unix seconds).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Lookups and flows shown per target at most.
    #[arg(long, default_value_t = DEFAULT_LIMIT)]
    pub limit: usize,
    /// `table` (readable) or `json` (one report per target and line, the shape of
    /// `GET /api/v1/hunt`).
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    pub output: String,
    /// Domains, IP addresses, CIDRs or ip:port endpoints.
    #[arg(required = true, value_name = "NAME")]
    pub targets: Vec<String>,
}

pub fn run(args: HuntArgs) -> anyhow::Result<ExitCode> {
    if args.targets.len() > MAX_TARGETS {
        anyhow::bail!(
            "too many targets ({}; at most {MAX_TARGETS})",
            args.targets.len()
        );
    }
    if !args.db.is_dir() {
        anyhow::bail!("{} is not a database directory", args.db.display());
    }
    let since = match &args.since {
        Some(s) => Some(
            Timestamp::parse(s)
                .with_context(|| format!("--since {s:?} is neither RFC 3339 nor Unix seconds"))?,
        ),
        None => None,
    };
    let store = Store::open(&args.db).with_context(|| format!("database {}", args.db.display()))?;
    let hunter = Hunter::new(Arc::new(store), None);
    let mut reports = Vec::with_capacity(args.targets.len());
    for t in &args.targets {
        let req = HuntRequest {
            target: t.clone(),
            since,
            limit: args.limit,
        };
        reports.push(
            hunter
                .hunt_target(&req)
                .with_context(|| format!("hunting {t}"))?,
        );
    }
    let found = reports
        .iter()
        .any(|r| !r.lookups.is_empty() || !r.flows.is_empty());
    if let Err(e) = write(&args.output, &reports) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e.into());
        }
    }
    Ok(if found {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn write(output: &str, reports: &[HuntReport]) -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    for r in reports {
        if output == "json" {
            serde_json::to_writer(&mut w, r)?;
            writeln!(w)?;
            continue;
        }
        writeln!(
            w,
            "{} ({}): {} name(s), {} client(s), {} lookup row(s), {} flow row(s){}",
            r.target,
            r.kind,
            r.names.len(),
            r.clients.len(),
            r.lookups.len(),
            r.flows.len(),
            if r.truncated { " [truncated]" } else { "" }
        )?;
        for l in &r.lookups {
            writeln!(
                w,
                "  lookup {} {} {} x{} {}{}{}",
                l.first.to_rfc3339(),
                l.client,
                l.name,
                l.count,
                l.rcode.as_deref().unwrap_or("-"),
                l.via_cname
                    .as_deref()
                    .map(|c| format!(" via CNAME {c}"))
                    .unwrap_or_default(),
                if l.folded { " (folded)" } else { "" }
            )?;
        }
        for f in &r.flows {
            writeln!(
                w,
                "  flow   {} {} -> {}:{}/{} x{} {}{} out={} in={}{} ({})",
                f.first.to_rfc3339(),
                f.client,
                f.dst,
                f.dst_port,
                f.proto,
                f.count,
                if f.established {
                    "established"
                } else {
                    "attempted"
                },
                if f.stratum { " stratum" } else { "" },
                f.bytes_out,
                f.bytes_in,
                f.sni
                    .as_deref()
                    .map(|s| format!(" sni={s}"))
                    .unwrap_or_default(),
                f.why
            )?;
        }
    }
    w.flush()
}

/// `scan --history`: directories among `inputs` are replaced by the regular files below them
/// (sorted, at most `max` files in all, [`MAX_DIR_DEPTH`] levels).
pub fn expand_dirs(inputs: &[PathBuf], max: usize) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            walk(p, 0, max, &mut out)?;
        } else {
            out.push(p.clone());
        }
        if out.len() > max {
            anyhow::bail!("too many inputs (more than {max} files)");
        }
    }
    Ok(out)
}

fn walk(dir: &Path, depth: usize, max: usize, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if depth > MAX_DIR_DEPTH {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read directory {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for e in entries {
        if e.is_dir() {
            walk(&e, depth + 1, max, out)?;
        } else if e.is_file() {
            out.push(e);
        }
        if out.len() > max {
            anyhow::bail!("too many inputs (more than {max} files)");
        }
    }
    Ok(())
}
