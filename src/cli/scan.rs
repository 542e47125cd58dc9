//! `poolwatch scan`: the whole pipeline over pcaps and logs, merged in time order, printing the
//! detections.
//!
//! Exit codes (like `clamscan`): 0 = ran, no unsuppressed detection; 1 = ran, at least one
//! unsuppressed detection; 2 = error (bad path, unknown format, unusable database, an input
//! that ended early: truncated or damaged capture, read error, malformed observation line).

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::capture::CaptureConfig;
use crate::correlate::{DetectionStore, Engine, EngineConfig, EngineLimits, Pipeline};
use crate::ingest::IngestConfig;
use crate::input::{self, InputFormat};
use crate::matcher::{self, Blocklists};
use crate::model::Detection;
use crate::output::{EventKind, Format, Observer, OutputEvent};
use crate::store::{MemoryStore, Store};

use super::out::OutTarget;

/// Inputs larger than this (bytes, all files together) get a progress bar on a terminal.
const PROGRESS_MIN_BYTES: u64 = 8 << 20;
/// The progress bar is moved on every this many observations.
const PROGRESS_EVERY: u64 = 1024;
/// Most inputs merged at once (each holds an open reader).
const MAX_INPUTS: usize = 4_096;

/// `scan --output`: the shared `text|json` (`table` an alias of `text`) and the alert shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ScanOutput {
    /// A readable table (alias: `table`).
    #[value(alias = "table")]
    Text,
    /// One Detection JSON object a line (docs/detections.md).
    Json,
    /// Elastic Common Schema alerts, one a line (docs/outputs.md).
    Ecs,
    /// Suricata EVE alerts, one a line (docs/outputs.md).
    Eve,
}

/// Every `--format` value, as the help texts of `scan` and `inspect` list them (a test keeps
/// it equal to `InputFormat::names()`).
pub const FORMATS: &str = "auto, pcap, observations, bind, unbound, dnsmasq, knot, pdns, \
coredns, windows-dns, zeek-dns, zeek-conn, eve, dnstap";

fn scan_help() -> String {
    format!(
        "Examples:\n  \
poolwatch scan capture.pcap\n  \
poolwatch scan --output json capture.pcap query.log | jq .\n  \
poolwatch scan --output ecs -o alerts.ecs.json capture.pcap\n  \
tcpdump -i eth0 -U -w - port 53 or port 3333 | poolwatch scan -\n\n\
Formats (--format): {FORMATS}.\n\n\
Exit status: 0 no unsuppressed detection, 1 at least one detection, 2 error (bad argument,\n\
unreadable or truncated input, unusable database)."
    )
}

/// Analyse captures and logs offline and print the detections.
#[derive(Debug, clap::Args)]
#[command(after_help = scan_help())]
pub struct ScanArgs {
    /// Input format for every INPUT: auto (sniffed), pcap, observations (JSON lines from
    /// `inspect --output json`), or a log format name.
    #[arg(long, default_value = "auto")]
    pub format: String,
    /// Pool list file(s) (default: the built-in lists).
    #[arg(long = "blocklist", value_name = "PATH")]
    pub blocklists: Vec<PathBuf>,
    /// Output: `text` (a readable table; `table` is an alias), `json` (one Detection per line,
    /// see docs/detections.md), `ecs` (Elastic Common Schema alerts) or `eve` (Suricata EVE
    /// alerts), one a line, the shapes the `serve` sinks write (docs/outputs.md).
    #[arg(long, value_enum, default_value = "text")]
    pub output: ScanOutput,
    /// Write the result to FILE (complete when it appears) instead of standard output.
    #[arg(long = "out", short = 'o', value_name = "FILE", value_parser = super::out::parse_out_path)]
    pub out: Option<PathBuf>,
    /// Keep the sled database here (default: a temporary one, deleted on exit).
    #[arg(long, value_name = "DIR")]
    pub db: Option<PathBuf>,
    /// A resolver / DNS infrastructure address: never reported for its own lookups.
    #[arg(long = "resolver", value_name = "IP")]
    pub resolvers: Vec<IpAddr>,
    /// A sinkhole address: answers pointing there count as blocked lookups.
    #[arg(long = "sinkhole", value_name = "IP")]
    pub sinkholes: Vec<IpAddr>,
    /// Grace added to answer TTLs while flows still count as following the lookup (seconds).
    #[arg(long, value_name = "SECS", default_value_t = 6 * 3600)]
    pub binding_grace: i64,
    /// `is_new` look-back (days).
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub lookback_days: i64,
    /// Do not learn DNS infrastructure from traffic (only --resolver addresses are excluded).
    #[arg(long)]
    pub no_learn_resolvers: bool,
    /// Never show a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Also keep the DNS and flow history in the --db database (for `poolwatch hunt` and the
    /// retro-hunt, docs/hunt.md); a directory INPUT is then read file by file (recursively).
    #[arg(long, requires = "db")]
    pub history: bool,
    /// Days of history kept (counted back from the newest observation).
    #[arg(long, value_name = "DAYS", default_value_t = crate::hunt::DEFAULT_RETENTION_DAYS)]
    pub history_retention_days: u32,
    /// Byte cap of the history (oldest day evicted first).
    #[arg(long, value_name = "BYTES", default_value_t = crate::hunt::DEFAULT_MAX_BYTES)]
    pub history_max_bytes: u64,
    /// Threads per capture file (default 1: one thread decodes and correlates). With the packet
    /// fast path (one capture, no --db, no --history) N threads decode and the main one checks
    /// their skips and correlates; otherwise N - 1 decode, every message in full (measured
    /// slower than one thread on 2 cores, docs/performance.md). The detections are the same
    /// for any N while the pending-query and flow tables stay under their caps (each worker
    /// has a 1/N share; under pressure the evidence can differ, README) (issue #16).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: Option<u16>,
    /// Decode every DNS message of a capture with hickory-proto, also those the packet fast
    /// path would skip (no listed name, nothing the engine holds for its answers). The result
    /// is the same; this is the reference the fast path is tested against (issue #16,
    /// docs/performance.md). The fast path runs for a single capture file without --history
    /// (with --threads above 1: also without --db).
    #[arg(long)]
    pub no_fast_path: bool,
    /// Parse every log line in full, also those the list pre-filter would drop (BIND and
    /// Unbound lines naming no listed pool) or read lite (dnsmasq transactions of unlisted
    /// names). The result is the same; this is the reference the pre-filter is tested against
    /// (issue #16, docs/performance.md). The pre-filter runs without --history; dnsmasq
    /// transactions the engine holds nothing for are skipped when one log is the only input.
    #[arg(long)]
    pub no_log_prefilter: bool,
    /// Capture files, resolver logs or observation JSON lines; `-` (stdin), FIFOs and `<(cmd)`
    /// are read as streams, sniffed like files.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
}

pub fn run(mut args: ScanArgs) -> anyhow::Result<ExitCode> {
    // One run, then exit: memory freed mid-run is kept for reuse, not faulted in again.
    crate::util::malloc::keep_freed_memory();
    if args.history {
        args.inputs = super::hunt::expand_dirs(&args.inputs, MAX_INPUTS)?;
    }
    if args.inputs.len() > MAX_INPUTS {
        anyhow::bail!(
            "too many inputs ({}; at most {MAX_INPUTS})",
            args.inputs.len()
        );
    }
    let format = InputFormat::parse(&args.format)?;
    if let Some(dir) = &args.db {
        if dir.exists() && !dir.is_dir() {
            anyhow::bail!("--db {}: not a directory", dir.display());
        }
    }
    let mut total_bytes = 0u64;
    let mut stdin_inputs = 0;
    for p in &args.inputs {
        if p == Path::new("-") {
            // Standard input is a stream: no size, read once.
            stdin_inputs += 1;
            continue;
        }
        let md = std::fs::metadata(p).with_context(|| format!("cannot read {}", p.display()))?;
        if md.is_dir() {
            anyhow::bail!("{} is a directory; give the files inside it", p.display());
        }
        total_bytes = total_bytes.saturating_add(md.len());
    }
    if stdin_inputs > 1 {
        anyhow::bail!("`-` (standard input) can be given only once");
    }
    // The lists come first: the log pre-filter needs them before the inputs open.
    let lists = Blocklists::load(&args.blocklists).context("loading pool lists")?;
    // Without --history only listed lookups matter: log lines naming no listed pool are
    // dropped before parsing (`ingest::prefilter`, BIND and Unbound).
    let lists = matcher::shared(lists);
    let prefilter = (!args.history && !args.no_log_prefilter).then(|| {
        let l = lists.load_full();
        Arc::new(crate::ingest::Prefilter::new(Box::new(move |n| {
            l.match_name_bytes(n).is_some()
        })))
    });
    let ccfg = CaptureConfig {
        // Default 1, not `parallel::default_threads()`: see the flag's help.
        threads: args.threads.map_or(1, usize::from),
        ..CaptureConfig::default()
    };
    let icfg = IngestConfig {
        prefilter: prefilter.clone(),
        ..IngestConfig::default()
    };
    let failures = input::ReadFailures::new();
    let bytes = input::ByteCount::new();
    // The packet fast path needs the engine's answers in stream order: one capture file and no
    // history recorder (it wants every message). With --threads the workers guess and this
    // thread checks every skip (`capture::parallel_fast`); a refused one means reading the
    // file again on one thread, which a --db store already written to cannot take.
    let one_thread = CaptureConfig {
        threads: 1,
        ..ccfg.clone()
    };
    let mut fast = None;
    if !args.no_fast_path && !args.history && (ccfg.threads == 1 || args.db.is_none()) {
        if let [p] = args.inputs.as_slice() {
            fast = input::open_capture_counting(p, format, &one_thread, &failures, &bytes)?;
        }
    }
    // The log pre-filter's skips need the engine's answers in stream order too: one log file,
    // read straight into the pipeline.
    let mut fast_log = None;
    if fast.is_none() && prefilter.is_some() {
        if let [p] = args.inputs.as_slice() {
            fast_log = input::open_log_counting(p, format, &icfg, &failures, &bytes)?;
        }
    }
    let mut readers = Vec::with_capacity(args.inputs.len());
    for p in args
        .inputs
        .iter()
        .filter(|_| fast.is_none() && fast_log.is_none())
    {
        // The error names the input (`cannot open PATH: reason`).
        let r = input::open_counting(p, format, &ccfg, &icfg, &failures, &bytes)?;
        readers.push(r);
    }
    // Streams (stdin, FIFOs, `<(cmd)`) have no size: bytes and rate only. dnstap files are
    // read by their own reader, uncounted, and left out of the total.
    let streams = args.inputs.iter().any(|p| is_stream(p));
    let total = (!streams).then(|| total_bytes.saturating_sub(bytes.uncounted()));
    let wanted = !args.no_progress && (streams || total_bytes >= PROGRESS_MIN_BYTES);

    let Built {
        mut pipeline,
        mut memory,
        mut recorder,
        mut reader,
    } = build_pipeline(&args, Arc::clone(&lists))?;
    let bar = wanted
        .then(|| super::progress::Progress::start(bytes.clone(), total))
        .flatten();
    let mut n = 0u64;
    let mut progress = || {
        n += 1;
        if n % PROGRESS_EVERY == 0 {
            if let Some(b) = &bar {
                b.update();
            }
        }
    };
    let mut skipped_log_observations = 0;
    if let Some(cap) = fast.as_mut() {
        if ccfg.threads > 1 {
            // N decoder threads, not N - 1: on the fast path this thread only checks skips and
            // correlates (≈ 15% of the instructions past the list load); 2 workers measured
            // 1.22x one thread's wall clock on 2 cores, 1 worker 1.05x (docs/performance.md).
            let names = Arc::new(ScanLists(pipeline.engine().lists_snapshot()));
            cap.start_threads(&ccfg, ccfg.threads, names)
                .context("starting the decoder threads")?;
        }
        scan_capture_fast(cap, &mut pipeline, &mut progress)?;
        if cap.mispredicted() {
            // A worker skipped a response this engine needed (a pool address bound on another
            // worker): nothing of this run is kept; the file is read again on one thread.
            tracing::info!(
                "a decoder thread's skip was refused: reading the capture again on one thread"
            );
            drop(pipeline);
            bytes.reset();
            let [p] = args.inputs.as_slice() else {
                anyhow::bail!("the fast path reads one capture");
            };
            *cap = input::open_capture_counting(p, format, &one_thread, &failures, &bytes)?
                .context("reopening the capture")?;
            Built {
                pipeline,
                memory,
                recorder,
                reader,
            } = build_pipeline(&args, Arc::clone(&lists))?;
            scan_capture_fast(cap, &mut pipeline, &mut progress)?;
        }
        if cap.bound_overflows() > 0 {
            tracing::info!(
                workers = cap.bound_overflows(),
                cap = crate::capture::parallel_fast::MAX_BOUND_IPS,
                "decoder threads: bound-address table full, every answered response decoded after"
            );
        }
    } else if let Some(log) = fast_log.as_mut() {
        skipped_log_observations = scan_log_fast(log, &mut pipeline, &mut progress)?;
    } else {
        for obs in &mut input::merge_by_time(readers) {
            if let Some(r) = &recorder {
                r.record(&obs);
            }
            pipeline.push(obs)?;
            progress();
        }
    }
    if let Some(b) = bar {
        b.finish();
    }
    // The readers' tables (the capture's flow table is the largest: ≈ 40 MB at 200 k flows)
    // are not needed past the input: freed before the result is gathered, the run's peak (the
    // merged readers went with their loop; the fast path's capture goes here).
    drop(fast);
    drop(fast_log);
    // Without --db the process exits after printing: the engine's tables are not freed.
    let summary = if memory.is_some() {
        pipeline.finish_leaking()?
    } else {
        pipeline.finish()?
    };
    if let Some(r) = recorder.take() {
        r.flush().context("writing the history")?;
    }
    tracing::info!(
        observations = summary.observations,
        new = summary.new,
        upgraded = summary.upgraded,
        evicted = summary.engine.evicted,
        flushes = summary.flushes,
        prefiltered_log_lines = prefilter.as_ref().map_or(0, |p| p.skipped()),
        skipped_log_observations,
        "scan finished"
    );

    if let Some(m) = &memory {
        let d = m.dropped();
        if d.detections > 0 {
            super::say(
                super::Level::Warn,
                &format!(
                    "{} detection(s) beyond the in-memory limit of {} were not kept; \
                     use --db DIR for a result this large",
                    d.detections,
                    crate::store::MAX_MEMORY_DETECTIONS
                ),
            );
        }
    }
    // Boxed, in print order (first seen, then id; ids are unique).
    let dets: Vec<Box<Detection>> = match &memory {
        Some(m) => m.take_sorted(),
        None => {
            let mut v = reader.take_detections()?;
            v.sort_by(|a, b| (a.first_seen, &a.id).cmp(&(b.first_seen, &b.id)));
            v.into_iter().map(Box::new).collect()
        }
    };
    let mut out = OutTarget::open(args.out.as_deref()).context("opening the output file")?;
    let written = write_detections(&mut out, args.output, &dets, summary.observations);
    super::out::finish(out, written)?;
    // An input that stopped early makes the result incomplete: "no detections" must never
    // stand for "could not read". What was read is still reported above.
    let failed = failures.take();
    if !failed.is_empty() {
        for f in &failed {
            super::say(super::Level::Error, &f.to_string());
        }
        super::say(
            super::Level::Error,
            &format!(
                "{} input(s) could not be read to their end; the result is incomplete",
                failed.len()
            ),
        );
        return Ok(ExitCode::from(2));
    }
    let found = dets.iter().any(|d| !d.suppressed);
    // The process exits next: freeing every detection one by one would only cost time (a
    // flood's result is hundreds of MB).
    std::mem::forget(dets);
    Ok(if found {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// What a scan pushes into and reads its result back from.
struct Built {
    pipeline: Pipeline,
    /// Without --db: the in-memory store (the result is taken from it).
    memory: Option<MemoryStore>,
    recorder: Option<Arc<crate::hunt::Recorder>>,
    /// A second handle of the pipeline's store, to read the result back.
    reader: Box<dyn DetectionStore>,
}

/// The store (in memory without --db), the engine and the pipeline of a scan.
fn build_pipeline(args: &ScanArgs, lists: matcher::SharedBlocklists) -> anyhow::Result<Built> {
    // Without --db nothing outlives the run: an in-memory store (no sled, no temp directory).
    let mut memory = None;
    let mut recorder = None;
    let store: Box<dyn DetectionStore> = match &args.db {
        // The error names the database; one that this run would create and cannot finish is
        // removed again (no half-made database left behind).
        Some(dir) => {
            let fresh = !dir.exists();
            let s = match Store::open(dir) {
                Ok(s) => s,
                Err(e) => {
                    if fresh {
                        let _ = std::fs::remove_dir_all(dir);
                    }
                    return Err(e.into());
                }
            };
            if args.history {
                let cfg = crate::hunt::HistoryConfig {
                    retention_days: args.history_retention_days.max(1),
                    max_bytes: args.history_max_bytes,
                };
                recorder = Some(crate::hunt::Recorder::new(Arc::new(s.clone()), cfg));
            }
            Box::new(s)
        }
        None => {
            let m = MemoryStore::detections_only();
            memory = Some(m.clone());
            Box::new(m)
        }
    };
    // Both stores are shared handles: one for the pipeline, one to read the result back.
    let reader = store.clone_handle();
    let cfg = EngineConfig {
        binding_grace_secs: args.binding_grace.max(0),
        lookback_secs: args.lookback_days.max(0).saturating_mul(86_400),
        resolvers: args.resolvers.clone(),
        sinkholes: args.sinkholes.clone(),
        learn_infrastructure: !args.no_learn_resolvers,
        // Without --db the store is memory too: no incident is evicted into it (EngineLimits).
        limits: match args.db {
            None => EngineLimits::in_memory(crate::store::MAX_MEMORY_DETECTIONS),
            Some(_) => EngineLimits::default(),
        },
        ..EngineConfig::default()
    };
    let engine = Engine::new(cfg, lists);
    let pipeline = Pipeline::with_store(engine, Some(store))?;
    Ok(Built {
        pipeline,
        memory,
        recorder,
        reader,
    })
}

/// The fast path's list questions on the decoder threads: the engine's own tests
/// (`Engine::dns_name_listed_in`, `Engine::dns_ip_listed_in`) against the snapshot this scan
/// uses throughout.
struct ScanLists(Arc<crate::matcher::Blocklists>);

impl crate::capture::ListedNames for ScanLists {
    fn name_listed(&self, name: &str) -> bool {
        Engine::dns_name_listed_in(&self.0, name)
    }
    fn ip_listed(&self, ip: IpAddr) -> bool {
        Engine::dns_ip_listed_in(&self.0, ip)
    }
}

/// Feeds one capture to `pipeline` through the packet fast path (issue #16): DNS messages
/// the engine says cannot matter are counted by [`Pipeline::push_skipped`] instead of decoded
/// (`correlate::skip`). `each` runs after every observation pushed. The result equals pushing
/// every observation of the same file (`scan --no-fast-path`; `tests/it/scan_fastpath.rs`).
pub fn scan_capture_fast(
    cap: &mut input::FastCapture,
    pipeline: &mut Pipeline,
    each: &mut dyn FnMut(),
) -> Result<(), crate::correlate::PipelineError> {
    // `scan` never reloads its lists: one snapshot serves every message.
    let lists = pipeline.engine().lists_snapshot();
    let mut interest = EngineInterest {
        pipeline,
        lists,
        error: None,
    };
    while let Some(obs) = cap.next_fast(&mut interest) {
        if let Some(e) = interest.error.take() {
            return Err(e);
        }
        interest.pipeline.push(obs)?;
        each();
    }
    interest.error.map_or(Ok(()), Err)
}

/// The fast path's questions, answered by the pipeline's engine in stream order.
struct EngineInterest<'a> {
    pipeline: &'a mut Pipeline,
    /// The engine's lists, fixed for the scan.
    lists: std::sync::Arc<crate::matcher::Blocklists>,
    /// A store error while a skipped message was pushed (reported after the current read).
    error: Option<crate::correlate::PipelineError>,
}

impl crate::capture::DnsInterest for EngineInterest<'_> {
    fn name_listed(&mut self, name: &str) -> bool {
        // Noted: `on_dns` takes a listed name's hit from the engine instead of matching the
        // name again (issue #11).
        self.pipeline.dns_name_listed_noting(&self.lists, name)
    }
    fn answers_matter(&mut self, client: IpAddr, ips: &[IpAddr]) -> bool {
        self.pipeline
            .engine()
            .dns_answers_matter_in(&self.lists, client, ips)
    }
    fn skipped(&mut self, s: crate::model::DnsSkim) {
        if let Err(e) = self.pipeline.push_skipped(&s) {
            self.error.get_or_insert(e);
        }
    }
}

/// Reads one log into `pipeline` (issue #16): every observation is pushed before the next
/// line is parsed, so the dnsmasq parser can ask the engine whether an unlisted transaction's
/// addresses matter (`Engine::dns_answers_matter`) and hand it over skipped
/// ([`Pipeline::push_skipped_log`]) instead of built. `each` runs after every observation
/// pushed. Returns the number of skipped observations. The result equals pushing every
/// observation of the same file (`scan --no-log-prefilter`; `tests/it/scan_logs.rs`).
pub fn scan_log_fast(
    log: &mut input::FastLog,
    pipeline: &mut Pipeline,
    each: &mut dyn FnMut(),
) -> Result<u64, crate::correlate::PipelineError> {
    // `scan` never reloads its lists: one snapshot serves every transaction.
    let lists = pipeline.engine().lists_snapshot();
    let mut sink = EngineLogSink {
        pipeline,
        lists,
        each,
        error: None,
        skipped: 0,
    };
    log.drain_into(&mut sink);
    sink.error.map_or(Ok(sink.skipped), Err)
}

/// The log reader's consumer: the pipeline, asked in stream order.
struct EngineLogSink<'a> {
    pipeline: &'a mut Pipeline,
    /// The engine's lists, fixed for the scan.
    lists: std::sync::Arc<crate::matcher::Blocklists>,
    each: &'a mut dyn FnMut(),
    /// The first store error; what follows it is not pushed (reported when reading ends).
    error: Option<crate::correlate::PipelineError>,
    skipped: u64,
}

impl crate::ingest::LogSink for EngineLogSink<'_> {
    fn push(&mut self, obs: crate::model::Observation) {
        if self.error.is_some() {
            return;
        }
        if let Err(e) = self.pipeline.push(obs) {
            self.error = Some(e);
        }
        (self.each)();
    }
    fn answers_matter(&mut self, client: IpAddr, ips: &[IpAddr]) -> bool {
        self.pipeline
            .engine()
            .dns_answers_matter_in(&self.lists, client, ips)
    }
    fn skipped(&mut self, ts: crate::model::Timestamp) {
        if self.error.is_some() {
            return;
        }
        self.skipped += 1;
        if let Err(e) = self.pipeline.push_skipped_log(ts) {
            self.error = Some(e);
        }
    }
}

/// Starting capacity of the buffer one JSON detection line is rendered into (a flood's
/// detection with six evidence items is ≈ 2.8 KB); it grows for longer ones.
const DETECTION_LINE_CAPACITY: usize = 4096;

fn write_detections(
    out: &mut OutTarget,
    output: ScanOutput,
    dets: &[Box<Detection>],
    observations: u64,
) -> std::io::Result<()> {
    if output == ScanOutput::Json {
        // Hand-written, the same bytes as serde_json (`output::detection_json`), each line
        // rendered into one reused buffer (its many small pieces are copies into a `Vec`, not
        // calls through the output's writer) and written at once.
        let mut line = Vec::with_capacity(DETECTION_LINE_CAPACITY);
        for d in dets {
            line.clear();
            crate::output::detection_json::write_detection(&mut line, d)?;
            line.push(b'\n');
            out.write_all(&line)?;
        }
    } else if let Some(format) = match output {
        ScanOutput::Ecs => Some(Format::Ecs),
        ScanOutput::Eve => Some(Format::Eve),
        ScanOutput::Text | ScanOutput::Json => None,
    } {
        // One record per detection, its final state, as a `new` event with sequence 0 (an
        // offline scan has no update history); `created` is the detection's last_seen so the
        // output depends on the input only.
        let observer = Observer::local(None);
        for d in dets {
            let ev = OutputEvent::detection(EventKind::New, 0, d.last_seen, Detection::clone(d));
            out.write_all(&crate::output::format::render_json(format, &ev, &observer))?;
            out.write_all(b"\n")?;
        }
    } else {
        print_table(out, dets, observations)?;
    }
    out.flush()
}

/// Whether `p` is read as a stream (no size known): `-`, a FIFO, `<(cmd)`.
fn is_stream(p: &Path) -> bool {
    p == Path::new("-") || std::fs::metadata(p).is_ok_and(|m| !m.is_file())
}

fn print_table(
    w: &mut impl Write,
    dets: &[Box<Detection>],
    observations: u64,
) -> std::io::Result<()> {
    if dets.is_empty() {
        writeln!(w, "no detections ({observations} observations)")?;
        return Ok(());
    }
    // Wide enough for the longest client shown (IPv6 up to 39 chars), at least the header.
    let cw = dets
        .iter()
        .map(|d| d.client_ip.to_string().len())
        .max()
        .unwrap_or(0)
        .max("CLIENT".len());
    writeln!(
        w,
        "{:<27} {:<cw$} {:<18} {:>4}  {:<28} {:<22} FLAGS",
        "FIRST SEEN", "CLIENT", "STAGE", "RISK", "POOL", "DESTINATIONS"
    )?;
    for d in dets {
        let dst: Vec<String> = d
            .pool_ips
            .iter()
            .take(2)
            .map(|ip| ip.to_string())
            .chain(d.dst_ports.first().map(|p| format!(":{p}")))
            .collect();
        let mut flags = Vec::new();
        if d.is_new {
            flags.push("new");
        }
        if d.suppressed {
            flags.push("suppressed");
        }
        if d.counts.lookups + d.counts.blocked_lookups == 0 && d.stage.is_contact() {
            flags.push("no-lookup");
        }
        writeln!(
            w,
            "{:<27} {:<cw$} {:<18} {:>4}  {:<28} {:<22} {}",
            d.first_seen.to_rfc3339(),
            d.client_ip,
            d.stage.as_str(),
            d.risk_score,
            clip(&d.pool_domain, 28),
            clip(&dst.join(" "), 22),
            flags.join(",")
        )?;
        if let Some(a) = d.agents.first() {
            writeln!(w, "{:<27} agent: {}", "", clip(a, 100))?;
        }
        if !d.query_names.is_empty() {
            writeln!(
                w,
                "{:<27} names: {}",
                "",
                clip(&d.query_names.join(", "), 100)
            )?;
        }
    }
    let unsuppressed = dets.iter().filter(|d| !d.suppressed).count();
    writeln!(
        w,
        "\n{} detection(s), {unsuppressed} unsuppressed, from {observations} observations",
        dets.len()
    )
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn help_lists_every_format() {
        let listed: Vec<&str> = super::FORMATS.split(", ").collect();
        assert_eq!(listed, crate::input::InputFormat::names());
    }
}
