//! `poolwatch blocklist match|lint|stats|export`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::input::BoundedLines;
use crate::matcher::{self, Blocklists, ExportFormat, ListFormat, Severity};

/// Longest line of names read by `blocklist match -`: the list parser's line cap (a DNS name
/// is at most 253 bytes; longer lines are skipped and counted).
const MAX_NAME_LINE: usize = matcher::parse::MAX_LINE_LEN;
use crate::model::{Category, ListHit};

use super::out::{self, OutTarget};

/// Work with pool-domain lists.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Without --blocklist every command uses the lists shipped in the binary \
(blocklists/manifest.toml). A --blocklist PATH may be a list file or a directory of lists \
(with its own manifest.toml, or every non-documentation file in it). Formats: plain, hosts, \
adblock, dnsmasq (detected per file). See docs/blocklists.md.\n\n\
Examples:\n  poolwatch blocklist match pool.supportxmr.com\n  \
poolwatch blocklist lint my-pools.txt\n  poolwatch blocklist stats --output json\n  \
poolwatch blocklist export --format rpz -o /etc/bind/poolwatch.rpz\n\n\
Exit status: match 0 a name listed, 1 none listed; lint 0 clean, 1 problems; stats and export 0;\n\
every command 2 on errors."
)]
pub struct BlocklistArgs {
    #[command(subcommand)]
    pub command: BlocklistCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum BlocklistCommand {
    /// Tell for each name whether it matches, and which list, entry, category and line flagged it.
    #[command(
        after_help = "Examples:\n  poolwatch blocklist match xmr-eu1.nanopool.org\n  \
cut -f2 names.tsv | poolwatch blocklist match --output json -\n  \
poolwatch blocklist match -b my-pools.txt --only-matches - < names.txt\n\n\
A name an allowlist entry covers prints ALLOW (JSON: matched false, category allow, the entry)\n\
and counts as not listed.\n\n\
Exit status (like grep): 0 at least one name listed, 1 none listed, 2 error."
    )]
    Match(MatchArgs),
    /// Check list files and report every problem as FILE:LINE: message.
    #[command(after_help = "Examples:\n  poolwatch blocklist lint my-pools.txt\n  \
poolwatch blocklist lint --strict --quiet blocklists/\n\n\
Exit status: 0 no errors (and with --strict no warnings), 1 problems found, 2 error (a file\n\
missing or unreadable).")]
    Lint(LintArgs),
    /// Count entries per list and category.
    #[command(after_help = "Examples:\n  poolwatch blocklist stats\n  \
poolwatch blocklist stats -b my-pools.txt --output json | jq .entries\n\n\
Exit status: 0 printed, 2 error.")]
    Stats(StatsArgs),
    /// Write the compiled set for a blocker or sensor (formats below).
    #[command(
        after_help = "Formats (--format): rpz, hosts, dnsmasq, unbound, adblock, nftables,\n\
suricata-dataset, suricata-rules (dns.query and tls.sni rules per entry, subdomains included;\n\
sids 1496000000-1499999999, stable per entry; docs/blocklists.md).\n\n\
Examples:\n  poolwatch blocklist export --format rpz -o /etc/bind/db.poolwatch\n  \
poolwatch blocklist export --format suricata-dataset -o /var/lib/suricata/poolwatch.lst\n  \
poolwatch blocklist export --format suricata-rules -o /var/lib/suricata/rules/poolwatch.rules\n  \
poolwatch blocklist export --format unbound > /etc/unbound/unbound.conf.d/poolwatch.conf\n\n\
Exit status: 0 written, 2 error."
    )]
    Export(ExportArgs),
}

/// `--output` of `match` and `stats`: `text` (`table` an alias) or `json`.
pub use super::out::TextOrJson as Output;

#[derive(Debug, clap::Args)]
pub struct MatchArgs {
    /// List file or directory (repeatable); default: the shipped lists.
    #[arg(long = "blocklist", short = 'b', value_name = "PATH")]
    pub blocklists: Vec<PathBuf>,
    /// Output format: `text` (name, verdict, list:line, entry, category; `table` is an alias)
    /// or `json` (one object a line: name, matched, entry, list, category, line).
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
    /// Write to FILE (complete when it appears) instead of standard output.
    #[arg(long = "out", short = 'o', value_name = "FILE", value_parser = out::parse_out_path)]
    pub out: Option<PathBuf>,
    /// Print only the names that match.
    #[arg(long)]
    pub only_matches: bool,
    /// Names to check; `-` reads one name a line from standard input.
    #[arg(value_name = "NAME", required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct LintArgs {
    /// Force the format instead of detecting it per file: plain, hosts, adblock, dnsmasq, rules.
    #[arg(long, value_name = "F")]
    pub format: Option<String>,
    /// Treat warnings (skipped cosmetic or URL rules) as errors.
    #[arg(long)]
    pub strict: bool,
    /// Print only the per-file summary, not every problem.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// List files to check (directories: every list in them).
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// List file or directory (repeatable); default: the shipped lists.
    #[arg(long = "blocklist", short = 'b', value_name = "PATH")]
    pub blocklists: Vec<PathBuf>,
    /// Output format: `text` (a table; `table` is an alias) or `json` (the build report).
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
    /// Write to FILE (complete when it appears) instead of standard output.
    #[arg(long = "out", short = 'o', value_name = "FILE", value_parser = out::parse_out_path)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// rpz, hosts, dnsmasq, unbound, adblock, nftables, suricata-dataset or suricata-rules.
    #[arg(long, short = 'f', value_name = "FORMAT")]
    pub format: String,
    /// List file or directory (repeatable); default: the shipped lists.
    #[arg(long = "blocklist", short = 'b', value_name = "PATH")]
    pub blocklists: Vec<PathBuf>,
    /// Write here instead of standard output (written to a temporary file, then renamed).
    #[arg(long = "out", short = 'o', value_name = "FILE", value_parser = out::parse_out_path)]
    pub out: Option<PathBuf>,
}

pub fn run(args: BlocklistArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        BlocklistCommand::Match(a) => run_match(a),
        BlocklistCommand::Lint(a) => run_lint(a),
        BlocklistCommand::Stats(a) => run_stats(a),
        BlocklistCommand::Export(a) => run_export(a),
    }
}

fn load(paths: &[PathBuf]) -> anyhow::Result<Blocklists> {
    let (b, report) = Blocklists::load_with_report(paths).context("cannot load the blocklists")?;
    let bad: Vec<String> = report
        .lists
        .iter()
        .filter(|l| l.invalid > 0)
        .map(|l| format!("{} ({})", l.name, l.invalid))
        .collect();
    if !bad.is_empty() {
        tracing::warn!(
            "invalid lines dropped in {}; `poolwatch blocklist lint FILE` lists them",
            bad.join(", ")
        );
    }
    Ok(b)
}

fn run_match(a: MatchArgs) -> anyhow::Result<ExitCode> {
    let b = load(&a.blocklists)?;
    let mut out = OutTarget::open(a.out.as_deref()).context("opening the output file")?;
    let mut any = false;
    let mut line: Vec<u8> = Vec::with_capacity(256);
    let mut emit = |name: &str, out: &mut OutTarget| -> std::io::Result<()> {
        // The covering entry, an allow included: "why is this not flagged?" has an answer.
        let hit = b.explain_name(name);
        let matched = hit.is_some_and(|h| h.category != Category::Allow);
        any |= matched;
        if a.only_matches && !matched {
            return Ok(());
        }
        write_result(out, a.output, name, hit)
    };
    for n in &a.names {
        if n != "-" {
            if let Err(e) = emit(n, &mut out) {
                return out::finish(out, Err(e)).map(|_| ExitCode::SUCCESS);
            }
            continue;
        }
        let stdin = std::io::stdin();
        // Bytes, bounded (never `read_line`): one non-UTF-8 line must not end the stream and a
        // newline-free stream must not grow a buffer without limit.
        let mut input = BoundedLines::new(stdin.lock(), MAX_NAME_LINE);
        loop {
            let l = match input.next_line() {
                Ok(Some(l)) => l,
                Ok(None) => break,
                Err(e) => {
                    out.abandon();
                    return Err(anyhow::Error::new(e).context("reading names from stdin"));
                }
            };
            line.clear();
            line.extend_from_slice(l.bytes);
            let text = String::from_utf8_lossy(&line);
            let name = text.trim();
            if name.is_empty() || name.starts_with('#') {
                continue;
            }
            if let Err(e) = emit(name, &mut out) {
                return out::finish(out, Err(e)).map(|_| ExitCode::SUCCESS);
            }
        }
        if input.skipped() > 0 {
            super::say(
                super::Level::Warn,
                &format!(
                    "{} line(s) longer than {MAX_NAME_LINE} bytes skipped",
                    input.skipped()
                ),
            );
        }
    }
    out::finish(out, Ok(()))?;
    Ok(if any {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn write_result<W: Write>(
    out: &mut W,
    output: Output,
    name: &str,
    hit: Option<&ListHit>,
) -> std::io::Result<()> {
    match output {
        Output::Json => {
            out.write_all(b"{\"name\":")?;
            serde_json::to_writer(&mut *out, name)?;
            match hit {
                Some(h) => {
                    let matched = h.category != Category::Allow;
                    write!(out, ",\"matched\":{matched},\"entry\":")?;
                    serde_json::to_writer(&mut *out, &h.entry)?;
                    out.write_all(b",\"list\":")?;
                    serde_json::to_writer(&mut *out, &h.list)?;
                    write!(out, ",\"category\":\"{}\",\"line\":{}}}", h.category, h.line)?;
                    out.write_all(b"\n")
                }
                None => out.write_all(
                    b",\"matched\":false,\"entry\":null,\"list\":null,\"category\":null,\"line\":null}\n",
                ),
            }
        }
        Output::Text => match hit {
            Some(h) => writeln!(
                out,
                "{name}\t{}\t{}:{}\t{}\t{}",
                if h.category == Category::Allow {
                    "ALLOW"
                } else {
                    "MATCH"
                },
                h.list,
                h.line,
                h.entry,
                h.category
            ),
            None => writeln!(out, "{name}\t-"),
        },
    }
}

fn run_lint(a: LintArgs) -> anyhow::Result<ExitCode> {
    let format = match &a.format {
        Some(f) => Some(f.parse::<ListFormat>().map_err(anyhow::Error::msg)?),
        None => None,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut errors, mut warnings) = (0u64, 0u64);
    for path in &a.files {
        let sources = matcher::ListSource::from_path(path)
            .with_context(|| format!("cannot lint {}", path.display()))?;
        for src in sources {
            let parsed = matcher::parse_list(&src.text, format.or(src.format));
            let shown = src.origin.display_path();
            if !a.quiet {
                for p in &parsed.problems {
                    let sev = match p.severity {
                        Severity::Error => "error",
                        Severity::Warning => "warning",
                    };
                    writeln!(out, "{}:{}: {sev}: {}", shown.display(), p.line, p.message)?;
                }
            }
            // Entries that cover far more than pools (multi-purpose sites, public suffixes).
            let (precision, imprecise) = matcher::precision::lint(&parsed, src.category);
            if !a.quiet {
                for p in &precision {
                    writeln!(
                        out,
                        "{}:{}: warning: {}",
                        shown.display(),
                        p.line,
                        p.message
                    )?;
                }
                let more = imprecise.saturating_sub(precision.len() as u64);
                if more > 0 {
                    writeln!(out, "{}: {more} more precision warnings", shown.display())?;
                }
            }
            warnings += imprecise;
            let hidden =
                (parsed.invalid + parsed.skipped).saturating_sub(parsed.problems.len() as u64);
            if hidden > 0 && !a.quiet {
                writeln!(out, "{}: {hidden} more problems not shown", shown.display())?;
            }
            if parsed.entries.is_empty() && parsed.invalid == 0 {
                writeln!(out, "{}: warning: no entries", shown.display())?;
                warnings += 1;
            }
            writeln!(
                out,
                "{}: {} format, {} entries, {} errors, {} skipped",
                shown.display(),
                parsed.format.map_or("?", ListFormat::as_str),
                parsed.entries.len(),
                parsed.invalid,
                parsed.skipped
            )?;
            errors += parsed.invalid;
            warnings += parsed.skipped;
        }
    }
    out.flush()?;
    let failed = errors > 0 || (a.strict && warnings > 0);
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn run_stats(a: StatsArgs) -> anyhow::Result<ExitCode> {
    let b = load(&a.blocklists)?;
    let s = b.stats();
    let mut out = OutTarget::open(a.out.as_deref()).context("opening the output file")?;
    let written = write_stats(&mut out, a.output, s);
    out::finish(out, written)?;
    Ok(ExitCode::SUCCESS)
}

fn write_stats(
    out: &mut OutTarget,
    output: Output,
    s: &matcher::BuildReport,
) -> std::io::Result<()> {
    match output {
        Output::Json => {
            serde_json::to_writer_pretty(&mut *out, s)?;
            writeln!(out)?;
        }
        Output::Text => {
            writeln!(
                out,
                "{:<28} {:<14} {:<8} {:>9} {:>9} {:>7} {:>7} {:>7}",
                "LIST", "CATEGORY", "FORMAT", "PARSED", "KEPT", "DUPS", "INVALID", "SKIPPED"
            )?;
            for l in &s.lists {
                writeln!(
                    out,
                    "{:<28} {:<14} {:<8} {:>9} {:>9} {:>7} {:>7} {:>7}",
                    l.name,
                    l.category.as_str(),
                    l.format.map_or("?", ListFormat::as_str),
                    l.parsed,
                    l.kept,
                    l.duplicates,
                    l.invalid,
                    l.skipped
                )?;
            }
            writeln!(out)?;
            for (c, n) in &s.categories {
                writeln!(out, "{c:<14} {n:>9}")?;
            }
            writeln!(
                out,
                "total          {:>9}  ({} names, {} addresses; compiled in {:.1} ms, automaton {} KiB)",
                s.entries,
                s.domains,
                s.addresses,
                s.compile_ms,
                s.automaton_bytes / 1024
            )?;
        }
    }
    Ok(())
}

fn run_export(a: ExportArgs) -> anyhow::Result<ExitCode> {
    let format: ExportFormat = a.format.parse().map_err(anyhow::Error::msg)?;
    let b = load(&a.blocklists)?;
    let text = b.export(format);
    let mut out = match OutTarget::open(a.out.as_deref()) {
        Ok(o) => o,
        Err(e) => {
            let shown = a.out.as_deref().map(|p| p.display().to_string());
            return Err(anyhow::Error::new(e)
                .context(format!("cannot write {}", shown.unwrap_or_default())));
        }
    };
    let written = out.write_all(text.as_bytes());
    out::finish(out, written)?;
    Ok(ExitCode::SUCCESS)
}
