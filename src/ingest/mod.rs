//! Stage `ingest`: resolver and sensor logs → [`Observation`]s.
//!
//! Every supported text format has a line parser (one module each) behind [`LogParser`]; a
//! parser is stateful per file where the format spreads one transaction over several lines
//! (dnsmasq, Unbound, PowerDNS, EVE v1). [`open_file`] reads a whole file (or stdin) with bounded
//! line length; [`follow`] tails files; [`dnstap`] reads Frame Streams. Format reference:
//! `docs/ingest.md`.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::metrics::{self, Counter};
use crate::model::{DnsObservation, Observation, RrType, Source, Timestamp, Transport};

mod detect;
pub mod dnstap;
pub mod follow;
pub mod lines;

mod bind;
mod coredns;
mod dnsmasq;
mod eve;
mod knot;
pub(crate) mod lex;
mod pdns;
pub(crate) mod pending;
pub mod prefilter;
mod sink;
pub mod time;
mod unbound;
mod windows;
mod zeek;

pub use detect::detect_format;
pub use prefilter::Prefilter;
pub use sink::LogSink;
pub use time::Zone;

/// Longest line handed to a parser. Longer lines (a binary file, a runaway writer) are skipped
/// and counted (`reason="too_long"`); reading resumes at the next newline. 256 KiB holds the
/// largest real record (an EVE/Zeek JSON line for a DNS response of the 64 KiB maximum is far
/// smaller in practice) while bounding the reader's memory.
pub const MAX_LINE_LEN: usize = 256 * 1024;
/// Transactions waiting for their reply line, per file (dnsmasq, Unbound, PowerDNS, EVE).
/// Replies follow their query within milliseconds, so even a busy resolver has a few thousand
/// outstanding; past the cap the oldest is emitted unanswered.
pub const PENDING_MAX: usize = 16 * 1024;
/// A query still without its reply after this much log time is emitted unanswered (resolvers
/// give up after a few seconds; this bounds how stale an unanswered observation gets).
pub const PENDING_TIMEOUT_SECS: i64 = 30;
/// Upper bound for a configured line cap: the reader's buffer is one line plus one chunk.
const MAX_LINE_LEN_LIMIT: usize = 64 * 1024 * 1024;
/// Bytes read per `read` call.
const READ_CHUNK: usize = 256 * 1024;
/// Bytes of the start of a file used to detect its format.
pub const DETECT_LEN: usize = 64 * 1024;

/// A per-file, stateful line parser (state: e.g. dnsmasq joins reply lines to their query).
pub trait LogParser: Send {
    /// Parses one line (without its line terminator); appends zero or more observations.
    /// Bad lines are counted and skipped, never fatal.
    fn parse_line(&mut self, line: &[u8], out: &mut Vec<Observation>);
    /// End of input (or a quiet period when following): emits what is still pending.
    fn flush(&mut self, out: &mut Vec<Observation>);
    /// A line over the reader's cap was skipped without being buffered (counted by the parser
    /// as `reason="too_long"`).
    fn line_too_long(&mut self) {}
    /// [`LogParser::parse_line`] with the consumer at hand ([`LogSink`], `scan`): a format
    /// with an exact skip (dnsmasq) may hand an unlisted transaction over as skipped.
    fn parse_line_into(&mut self, line: &[u8], out: &mut Vec<Observation>, sink: &mut dyn LogSink) {
        let _ = sink;
        self.parse_line(line, out);
    }
    /// [`LogParser::flush`] with the consumer at hand.
    fn flush_into(&mut self, out: &mut Vec<Observation>, sink: &mut dyn LogSink) {
        let _ = sink;
        self.flush(out);
    }
}

/// Every supported log format. Names (for `--format`) are stable and lowercase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogFormat {
    /// BIND 9 querylog (+ query-errors).
    Bind,
    /// Unbound log-queries / log-replies / log-local-actions.
    Unbound,
    /// dnsmasq log-queries (and =extra); Pi-hole's pihole.log.
    Dnsmasq,
    /// Knot Resolver daemon log (no per-query records: use dnstap).
    Knot,
    /// PowerDNS Recursor quiet=no query log (structured and classic).
    Pdns,
    /// CoreDNS `log` plugin (plain or JSON-wrapped container logs).
    CoreDns,
    /// Windows DNS Server debug log.
    WindowsDns,
    /// Zeek dns.log (TSV or JSON).
    ZeekDns,
    /// Zeek conn.log (TSV or JSON).
    ZeekConn,
    /// Suricata EVE JSON: dns (v1/v2/v3), flow and netflow events.
    Eve,
    /// dnstap Frame Streams (not line-based; see [`dnstap`]).
    Dnstap,
}

impl LogFormat {
    pub const ALL: &'static [LogFormat] = &[
        LogFormat::Bind,
        LogFormat::Unbound,
        LogFormat::Dnsmasq,
        LogFormat::Knot,
        LogFormat::Pdns,
        LogFormat::CoreDns,
        LogFormat::WindowsDns,
        LogFormat::ZeekDns,
        LogFormat::ZeekConn,
        LogFormat::Eve,
        LogFormat::Dnstap,
    ];

    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Bind => "bind",
            LogFormat::Unbound => "unbound",
            LogFormat::Dnsmasq => "dnsmasq",
            LogFormat::Knot => "knot",
            LogFormat::Pdns => "pdns",
            LogFormat::CoreDns => "coredns",
            LogFormat::WindowsDns => "windows-dns",
            LogFormat::ZeekDns => "zeek-dns",
            LogFormat::ZeekConn => "zeek-conn",
            LogFormat::Eve => "eve",
            LogFormat::Dnstap => "dnstap",
        }
    }

    /// A format name or an alias (`pihole`, `named`, `kresd`, `powerdns`, `suricata`, `windows`).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        if let Some(f) = Self::ALL.iter().copied().find(|f| f.name() == s) {
            return Some(f);
        }
        Some(match s {
            "pihole" | "pi-hole" => LogFormat::Dnsmasq,
            "named" | "bind9" => LogFormat::Bind,
            "kresd" | "knot-resolver" => LogFormat::Knot,
            "powerdns" | "pdns-recursor" => LogFormat::Pdns,
            "suricata" | "eve-json" => LogFormat::Eve,
            "windows" | "windns" => LogFormat::WindowsDns,
            _ => return None,
        })
    }

    /// Whether the format carries answer data (addresses, CNAME targets).
    pub fn has_answers(self) -> bool {
        matches!(
            self,
            LogFormat::Dnsmasq | LogFormat::ZeekDns | LogFormat::Eve | LogFormat::Dnstap
        )
    }
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    #[error("cannot open log {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error(
        "{path}: cannot tell the log format from its first lines; pass --format (one of: {})",
        LogFormat::ALL.iter().map(|f| f.name()).collect::<Vec<_>>().join(", ")
    )]
    UnknownFormat { path: PathBuf },
    #[error("{path}: {format} input cannot be read from stdin")]
    NotFromStdin { path: PathBuf, format: LogFormat },
    #[error(transparent)]
    Dnstap(#[from] dnstap::DnstapError),
}

/// Settings for reading logs.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// Zone of timestamps that carry none (BIND, syslog, dnsmasq, Windows). Default UTC.
    pub zone: Zone,
    /// Reference "now" for logs without a year: the year is chosen so that a timestamp is not
    /// more than a day after this. `None`: the file's modification time (stdin and followed
    /// files: the wall clock).
    pub reference: Option<Timestamp>,
    /// Longest accepted line ([`MAX_LINE_LEN`]).
    pub max_line_len: usize,
    /// Cap of each parser's pending-transaction table ([`PENDING_MAX`]).
    pub pending_max: usize,
    /// Drop lines whose query name is not listed before parsing them ([`prefilter`]; BIND
    /// and Unbound), and read dnsmasq transactions of unlisted names lite (the observations
    /// are the same; read through a [`LogSink`], some are skipped). `None` (the default):
    /// every line is parsed in full.
    pub prefilter: Option<Arc<Prefilter>>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            zone: Zone::Utc,
            reference: None,
            max_line_len: MAX_LINE_LEN,
            pending_max: PENDING_MAX,
            prefilter: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Parser plumbing
// ---------------------------------------------------------------------------------------------

/// How many samples of bad lines are logged: the 1st, 10th, 100th, … of each reason.
fn should_sample(n: u64) -> bool {
    n > 0 && (n == 1 || (n % 10 == 0 && 10u64.pow(n.ilog10()) == n))
}

/// Per-parser counters (registered once; incrementing is an atomic add).
pub(crate) struct Stats {
    format: &'static str,
    lines: Counter,
    ignored: Counter,
    errors: Vec<(&'static str, Counter, u64)>,
}

impl Stats {
    fn new(format: &'static str) -> Self {
        Stats {
            format,
            lines: metrics::counter(
                "poolwatch_log_lines_total",
                "Log lines read, by format.",
                &[("format", format)],
            ),
            ignored: metrics::counter(
                "poolwatch_log_lines_ignored_total",
                "Well-formed log lines that carry no query (daemon messages, headers), by format.",
                &[("format", format)],
            ),
            errors: Vec::new(),
        }
    }

    /// Counts a line that could not be parsed, and logs a sample now and then.
    pub(crate) fn error(&mut self, reason: &'static str, line: &[u8]) {
        let idx = match self.errors.iter().position(|(r, _, _)| *r == reason) {
            Some(i) => i,
            None => {
                let c = metrics::counter(
                    "poolwatch_log_parse_errors_total",
                    "Log lines that could not be parsed, by format and reason.",
                    &[("format", self.format), ("reason", reason)],
                );
                self.errors.push((reason, c, 0));
                self.errors.len() - 1
            }
        };
        if let Some((_, c, n)) = self.errors.get_mut(idx) {
            c.inc();
            *n += 1;
            if should_sample(*n) {
                let sample = String::from_utf8_lossy(line.get(..200).unwrap_or(line));
                tracing::warn!(format = self.format, reason, count = *n, sample = %sample, "unparsable log line");
            }
        }
    }

    pub(crate) fn ignored(&self) {
        self.ignored.inc();
    }
}

/// What every line parser gets besides the line.
pub(crate) struct Ctx {
    pub stats: Stats,
    pub source: Source,
    pub time: time::TimeResolver,
    pub pending_max: usize,
    /// Set for the formats whose unlisted lines may be dropped unparsed.
    pub prefilter: Option<Arc<Prefilter>>,
}

impl Ctx {
    /// With the pre-filter on: true (and the line counted as dropped) when the raw query name
    /// `name` is certainly not listed, so the line can be dropped unparsed.
    #[inline]
    pub fn unlisted(&self, name: &[u8]) -> bool {
        match &self.prefilter {
            Some(p) if !p.may_match(name) => {
                p.skip();
                true
            }
            _ => false,
        }
    }

    /// A query-only observation with the usual defaults; parsers fill in what they know.
    pub fn dns(
        &self,
        ts: Timestamp,
        client: IpAddr,
        qname: String,
        qtype: RrType,
    ) -> DnsObservation {
        DnsObservation {
            ts,
            client,
            client_port: None,
            server: None,
            server_port: None,
            transport: Transport::Unknown,
            id: None,
            qname,
            qtype,
            rcode: None,
            answers: Vec::new(),
            answers_known: false,
            query_seen: true,
            rtt_us: None,
            truncated: false,
            salvaged: None,
            source: self.source.clone(),
        }
    }
}

/// The per-format part of a parser.
pub(crate) trait LineParser: Send {
    fn line(&mut self, line: &[u8], ctx: &mut Ctx, out: &mut Vec<Observation>);
    fn flush(&mut self, _ctx: &mut Ctx, _out: &mut Vec<Observation>) {}
    /// [`LineParser::line`] with the consumer at hand (see [`LogParser::parse_line_into`]).
    fn line_into(
        &mut self,
        line: &[u8],
        ctx: &mut Ctx,
        out: &mut Vec<Observation>,
        _sink: &mut dyn LogSink,
    ) {
        self.line(line, ctx, out);
    }
    fn flush_into(&mut self, ctx: &mut Ctx, out: &mut Vec<Observation>, _sink: &mut dyn LogSink) {
        self.flush(ctx, out);
    }
}

struct Driver<P> {
    inner: P,
    ctx: Ctx,
    max_line_len: usize,
}

impl<P: LineParser> Driver<P> {
    /// The line handed to the format's parser: `None` when the driver accounted for it
    /// (over-long, blank).
    #[inline]
    fn admit<'l>(&mut self, line: &'l [u8]) -> Option<&'l [u8]> {
        self.ctx.stats.lines.inc();
        if line.len() > self.max_line_len.clamp(1, MAX_LINE_LEN_LIMIT) {
            self.ctx.stats.error("too_long", &[]);
            return None;
        }
        let line = lex::trim_end(line);
        if line.iter().all(|c| c.is_ascii_whitespace()) {
            self.ctx.stats.ignored();
            return None;
        }
        Some(line)
    }
}

impl<P: LineParser> LogParser for Driver<P> {
    fn parse_line(&mut self, line: &[u8], out: &mut Vec<Observation>) {
        if let Some(line) = self.admit(line) {
            self.inner.line(line, &mut self.ctx, out);
        }
    }

    fn flush(&mut self, out: &mut Vec<Observation>) {
        self.inner.flush(&mut self.ctx, out);
    }

    fn parse_line_into(&mut self, line: &[u8], out: &mut Vec<Observation>, sink: &mut dyn LogSink) {
        if let Some(line) = self.admit(line) {
            self.inner.line_into(line, &mut self.ctx, out, sink);
        }
    }

    fn flush_into(&mut self, out: &mut Vec<Observation>, sink: &mut dyn LogSink) {
        self.inner.flush_into(&mut self.ctx, out, sink);
    }

    fn line_too_long(&mut self) {
        self.ctx.stats.lines.inc();
        self.ctx.stats.error("too_long", &[]);
    }
}

/// Dnstap is not line-based: every line handed to this parser is an error.
struct NotLines;
impl LineParser for NotLines {
    fn line(&mut self, line: &[u8], ctx: &mut Ctx, _out: &mut Vec<Observation>) {
        ctx.stats.error("not_line_based", line);
    }
}

/// The parser for `format`; observations carry `source`.
pub fn parser_for(format: LogFormat, source: Source, cfg: &IngestConfig) -> Box<dyn LogParser> {
    let ctx = Ctx {
        stats: Stats::new(format.name()),
        source,
        time: time::TimeResolver::new(cfg.zone, cfg.reference),
        pending_max: cfg.pending_max.max(1),
        // Only where an unlisted line cannot change a verdict (no answers, `prefilter`), and
        // for dnsmasq's exact lite reading.
        prefilter: match format {
            LogFormat::Bind | LogFormat::Unbound | LogFormat::Dnsmasq => cfg.prefilter.clone(),
            _ => None,
        },
    };
    let max_line_len = cfg.max_line_len;
    fn boxed<P: LineParser + 'static>(
        inner: P,
        ctx: Ctx,
        max_line_len: usize,
    ) -> Box<dyn LogParser> {
        Box::new(Driver {
            inner,
            ctx,
            max_line_len,
        })
    }
    let pm = ctx.pending_max;
    match format {
        LogFormat::Bind => boxed(bind::Bind, ctx, max_line_len),
        LogFormat::Unbound => boxed(unbound::Unbound::new(pm), ctx, max_line_len),
        LogFormat::Dnsmasq => boxed(dnsmasq::Dnsmasq::new(pm), ctx, max_line_len),
        LogFormat::Knot => boxed(knot::Knot::default(), ctx, max_line_len),
        LogFormat::Pdns => boxed(pdns::Pdns::new(pm), ctx, max_line_len),
        LogFormat::CoreDns => boxed(coredns::CoreDns, ctx, max_line_len),
        LogFormat::WindowsDns => boxed(windows::Windows::new(pm), ctx, max_line_len),
        LogFormat::ZeekDns | LogFormat::ZeekConn => {
            boxed(zeek::Zeek::new(format), ctx, max_line_len)
        }
        LogFormat::Eve => boxed(eve::Eve::new(pm), ctx, max_line_len),
        LogFormat::Dnstap => boxed(NotLines, ctx, max_line_len),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading whole files
// ---------------------------------------------------------------------------------------------

/// Observations of one log file, in file order (dnstap files are delegated to [`dnstap`]).
pub struct LogReader {
    inner: ReaderInner,
}

enum ReaderInner {
    Lines(Box<LineReader>),
    Other(Box<dyn Iterator<Item = Observation> + Send>),
}

impl LogReader {
    /// Why reading stopped before the end of the input (a read error), with the number of bytes
    /// read until then; `None` when the input was read to its end.
    pub fn read_error(&self) -> Option<(u64, &str)> {
        match &self.inner {
            ReaderInner::Lines(r) => r.failed.as_deref().map(|m| (r.read_total, m)),
            ReaderInner::Other(_) => None,
        }
    }
}

impl Iterator for LogReader {
    type Item = Observation;
    fn next(&mut self) -> Option<Observation> {
        match &mut self.inner {
            ReaderInner::Lines(r) => r.next(),
            ReaderInner::Other(it) => it.next(),
        }
    }
}

/// Reads a byte stream line by line ([`lines::LineSplitter`], at most `max_line_len` bytes a
/// line) and feeds a parser.
pub struct LineReader {
    src: Box<dyn Read + Send>,
    /// The bytes read last (at first: those read for detection); `chunk[fed..filled]` are not
    /// fed to the splitter yet.
    chunk: Vec<u8>,
    fed: usize,
    filled: usize,
    lines: lines::LineSplitter,
    eof: bool,
    flushed: bool,
    parser: Box<dyn LogParser>,
    /// Observations ready to hand out, in order. A chunk's lines are parsed together into
    /// `batch`, which then becomes `ready` (the two allocations trade places): each observation
    /// is moved once out of the parser's output, never shuffled by a `reverse`.
    ready: VecDeque<Observation>,
    batch: Vec<Observation>,
    read_errors: u32,
    /// Bytes read from `src` so far (the offset of a read failure).
    read_total: u64,
    /// Why reading stopped before the end of input, if it did.
    failed: Option<String>,
}

/// Consecutive read errors tolerated before the reader gives up (EINTR-like hiccups).
const MAX_READ_ERRORS: u32 = 3;
/// Bytes handed to the line splitter at a time (a handful of lines): parsing a whole read
/// chunk at once kept hundreds of observations alive together, and their allocations then missed
/// the allocator's per-thread cache (issue #12's dnsmasq cost).
const FEED_SLICE: usize = 1024;

impl LineReader {
    /// A reader over `src` whose first bytes (already read, e.g. for detection) are `head`.
    pub fn new(
        src: Box<dyn Read + Send>,
        head: Vec<u8>,
        parser: Box<dyn LogParser>,
        max_line_len: usize,
    ) -> Self {
        let max_line_len = max_line_len.clamp(1, MAX_LINE_LEN_LIMIT);
        LineReader {
            src,
            filled: head.len(),
            fed: 0,
            chunk: head,
            lines: lines::LineSplitter::new(max_line_len),
            eof: false,
            flushed: false,
            parser,
            ready: VecDeque::new(),
            batch: Vec::new(),
            read_errors: 0,
            read_total: 0,
            failed: None,
        }
    }

    /// Parses lines until some observations are ready or input ends.
    fn fill(&mut self) {
        while self.batch.is_empty() {
            if self.fed < self.filled {
                // A slice of the chunk at a time: the observations of a few lines are handed
                // out before the next lines are parsed, so their strings are freed (and their
                // memory reused) while hot, as when lines were parsed one by one.
                let end = self.filled.min(self.fed.saturating_add(FEED_SLICE));
                let data = self.chunk.get(self.fed..end).unwrap_or(&[]);
                self.fed = end;
                let (parser, batch) = (&mut self.parser, &mut self.batch);
                self.lines.feed(data, &mut |piece, _| {
                    match piece {
                        lines::Piece::Line(l) => parser.parse_line(l, batch),
                        lines::Piece::TooLong => parser.line_too_long(),
                    }
                    true
                });
                continue;
            }
            if self.eof {
                if let Some((line, _)) = self.lines.finish() {
                    self.parser.parse_line(&line, &mut self.batch);
                    continue;
                }
                if !self.flushed {
                    self.flushed = true;
                    self.parser.flush(&mut self.batch);
                }
                return;
            }
            self.read_chunk();
        }
    }

    /// Reads the next chunk of input (sets `eof` at its end or after repeated errors).
    fn read_chunk(&mut self) {
        if self.chunk.len() < READ_CHUNK {
            self.chunk.resize(READ_CHUNK, 0);
        }
        match self.src.read(&mut self.chunk) {
            Ok(0) => self.eof = true,
            Ok(n) => {
                self.read_total += n as u64;
                self.read_errors = 0;
                self.fed = 0;
                self.filled = n;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                self.read_errors += 1;
                if self.read_errors >= MAX_READ_ERRORS {
                    tracing::warn!(error = %e, "log read failed; treating as end of input");
                    self.failed = Some(e.to_string());
                    self.eof = true;
                }
            }
        }
    }
}

impl Iterator for LineReader {
    type Item = Observation;
    fn next(&mut self) -> Option<Observation> {
        if let Some(o) = self.ready.pop_front() {
            return Some(o);
        }
        self.fill();
        if self.batch.is_empty() {
            return None;
        }
        // Both conversions keep the allocation (`ready` is empty, so no rotation either).
        let spent = Vec::from(std::mem::take(&mut self.ready));
        self.ready = VecDeque::from(std::mem::replace(&mut self.batch, spent));
        self.ready.pop_front()
    }
}

fn read_head(src: &mut dyn Read, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; limit];
    let mut n = 0;
    while n < limit {
        match src.read(buf.get_mut(n..).unwrap_or(&mut [])) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    buf.truncate(n);
    Ok(buf)
}

/// Opens a log file (`-` = stdin) as `format`, or as the detected format when `None`.
/// A year-less log is dated relative to `cfg.reference`, else the file's modification time.
pub fn open_file(
    path: &Path,
    format: Option<LogFormat>,
    cfg: &IngestConfig,
) -> Result<LogReader, IngestError> {
    let open_err = |message: String| IngestError::Open {
        path: path.to_path_buf(),
        message,
    };
    let is_stdin = path == Path::new("-");
    let mut cfg = cfg.clone();
    let src: Box<dyn Read + Send> = if is_stdin {
        Box::new(std::io::stdin())
    } else {
        let f = File::open(path).map_err(|e| open_err(e.to_string()))?;
        let meta = f.metadata().map_err(|e| open_err(e.to_string()))?;
        if meta.is_dir() {
            return Err(open_err("is a directory".into()));
        }
        if cfg.reference.is_none() {
            cfg.reference = meta
                .modified()
                .ok()
                .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| Timestamp::from_micros(d.as_micros().min(i64::MAX as u128) as i64));
        }
        Box::new(f)
    };
    if format == Some(LogFormat::Dnstap) && !is_stdin {
        return Ok(LogReader {
            inner: ReaderInner::Other(dnstap::open_file(path, &cfg)?),
        });
    }
    open_stream(src, path, is_stdin, format, &cfg)
}

/// Reads a log from an already opened stream (a pipe, FIFO or process substitution whose first
/// bytes may have been peeked and chained back in front); `path` names it in sources and
/// messages. dnstap needs a file path, so it is refused here.
pub fn open_reader(
    src: Box<dyn Read + Send>,
    path: &Path,
    format: Option<LogFormat>,
    cfg: &IngestConfig,
) -> Result<LogReader, IngestError> {
    open_stream(src, path, true, format, cfg)
}

fn open_stream(
    mut src: Box<dyn Read + Send>,
    path: &Path,
    is_stdin: bool,
    format: Option<LogFormat>,
    cfg: &IngestConfig,
) -> Result<LogReader, IngestError> {
    let open_err = |message: String| IngestError::Open {
        path: path.to_path_buf(),
        message,
    };
    let cfg = cfg.clone();
    if format == Some(LogFormat::Dnstap) && is_stdin {
        return Err(IngestError::NotFromStdin {
            path: path.to_path_buf(),
            format: LogFormat::Dnstap,
        });
    }
    let head = read_head(&mut *src, DETECT_LEN).map_err(|e| open_err(e.to_string()))?;
    let format = match format {
        Some(f) => f,
        None => detect_format(&head).ok_or_else(|| IngestError::UnknownFormat {
            path: path.to_path_buf(),
        })?,
    };
    if format == LogFormat::Dnstap {
        if is_stdin {
            return Err(IngestError::NotFromStdin {
                path: path.to_path_buf(),
                format,
            });
        }
        return Ok(LogReader {
            inner: ReaderInner::Other(dnstap::open_file(path, &cfg)?),
        });
    }
    let source = Source::log(format.name(), &path.display().to_string());
    let parser = parser_for(format, source, &cfg);
    Ok(LogReader {
        inner: ReaderInner::Lines(Box::new(LineReader::new(
            src,
            head,
            parser,
            cfg.max_line_len,
        ))),
    })
}

/// Reads a whole file or stdin and returns its observations with the format used (a convenience
/// for tests and the CLI; big files should be iterated with [`open_file`]).
pub fn read_all(
    path: &Path,
    format: Option<LogFormat>,
    cfg: &IngestConfig,
) -> Result<Vec<Observation>, IngestError> {
    Ok(open_file(path, format, cfg)?.collect())
}

/// Parses an in-memory log (tests, fuzzing, benches): every line, then `flush`.
pub fn parse_bytes(format: LogFormat, data: &[u8], cfg: &IngestConfig) -> Vec<Observation> {
    let mut p = parser_for(format, Source::log(format.name(), "-"), cfg);
    let mut out = Vec::new();
    for line in data.split(|c| *c == b'\n') {
        p.parse_line(line, &mut out);
    }
    p.flush(&mut out);
    out
}

#[cfg(test)]
mod tests;
