//! Following log files like `tail -F`: many files and globs and `-` (stdin), surviving rotation
//! by rename-and-create and by copytruncate, picking up files that appear later, resuming from
//! persisted offsets. See `docs/follow.md` for the exact guarantees.
//!
//! The follower polls (no inotify: it works the same on every filesystem, including NFS and
//! container bind mounts, and a 250 ms poll of a few files costs nothing). Each poll, for each
//! file: note the identity (dev, inode) the path now has, read the open descriptor to EOF, hand
//! complete lines to the file's parser and the parser's observations to the sink, and only then
//! advance the offset. When the path has a new identity and the old descriptor is drained, switch
//! to the new file at offset 0.

//!
//! Layout: this module holds the follower itself (globs, rescans, the poll loop, shutdown);
//! [`file`] one followed file (open/resume, rotation, truncation, reads), [`stdin`] `-`,
//! [`offsets`] where read positions go (the sink or an [`OffsetStore`], and
//! [`JsonOffsetFile`]). Lines are split by the one bounded splitter of `ingest`
//! ([`crate::ingest::lines::LineSplitter`], [`MAX_LINE_LEN`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::lines::Piece;
use crate::metrics::{self, Counter};
use crate::model::{Observation, Source, SourceId, SourcePos};

use super::{detect_format, parser_for, IngestConfig, LogFormat, LogParser};

mod file;
mod offsets;
mod stdin;

use file::{identity, FileState};
pub use offsets::JsonOffsetFile;
use offsets::Offsets;
use stdin::StdinState;

pub use crate::ports::{FileOffset, OffsetStore};
use crate::ports::{Producer, ProducerReport, QueueSink, StopToken};

/// Longest line handed to a parser: the one line cap of `ingest` ([`crate::ingest::MAX_LINE_LEN`],
/// 256 KiB). Longer lines are skipped (counted) without being buffered whole, so a 10 MB line or
/// a binary file without newlines cannot exhaust memory.
pub use super::MAX_LINE_LEN;
/// Bytes at the start of a file that identify it (hashed into `FileOffset::fingerprint`). 256
/// bytes span the first lines of any log, which carry timestamps, so two files almost never share
/// them.
pub const FINGERPRINT_LEN: usize = 256;
/// Bytes read per `read` call.
const READ_CHUNK: usize = 64 * 1024;
/// Bytes offered to format detection; a file whose first this-many bytes (or
/// [`DETECT_MAX_LINES`] lines) are not recognised is skipped (counted, warned once).
pub const DETECT_HEAD_LEN: usize = 64 * 1024;
/// Complete lines after which an unrecognised file is given up on.
pub const DETECT_MAX_LINES: usize = 50;
/// Files followed at once (globs can match a lot); further matches are ignored and counted.
pub const MAX_FOLLOWED_FILES: usize = 4096;
/// Bytes read from one file per poll before moving on to the others (fairness, and the stop flag
/// is looked at in between).
const MAX_READ_PER_POLL: u64 = 16 * 1024 * 1024;
/// Identities (dev, inode) of files finished by rotation that are remembered with their final
/// offset, so a glob that also matches the rotated name (`query-20261126.log` under `*.log`)
/// resumes there instead of reading the file again. Oldest forgotten first.
const RETIRED_MAX: usize = 1024;
/// Stdin chunks buffered between the reader thread and the follower.
const STDIN_QUEUE: usize = 64;
/// First `seq` of the observations a parser flush releases (pending joins at a quiet time, a
/// rotation or shutdown): they are placed after every observation of the line before the flush
/// and before the next line's (see [`At`]).
const FLUSH_SEQ: u32 = 1 << 31;

/// Where the observations being delivered were read (see `model::SourcePos`): a line's start
/// offset, or for a parser flush the last byte before the next line with `seq` from
/// [`FLUSH_SEQ`]. Stdin has none (it cannot be read again).
#[derive(Clone, Copy, Debug)]
pub(super) struct At {
    pub(super) source: SourceId,
    pub(super) offset: u64,
    pub(super) seq: u32,
}

impl At {
    pub(super) fn line(source: SourceId, offset: u64) -> At {
        At {
            source,
            offset,
            seq: 0,
        }
    }

    /// Observations released by a flush when reading has reached `offset` (a line start):
    /// none can be placed before the first line.
    pub(super) fn flush(source: SourceId, offset: u64) -> Option<At> {
        Some(At {
            source,
            offset: offset.checked_sub(1)?,
            seq: FLUSH_SEQ,
        })
    }
}

/// Where to start in a file that has no stored offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    Beginning,
    End,
}

#[derive(Clone, Debug)]
pub struct FollowConfig {
    /// How often files are looked at.
    pub poll_interval: Duration,
    /// Start position for files present at start-up that have no stored offset. Files that
    /// appear later, and the successor of a rotated file, always start at the beginning.
    pub start_at: StartAt,
    /// Offsets are saved after this many lines of a file …
    pub save_every_lines: u64,
    /// … or this much time, whichever first; and always at rotation and shutdown.
    pub save_interval: Duration,
    /// A file quiet for this long has its parser flushed (pending joins emitted).
    pub flush_after_quiet: Duration,
    /// Globs are re-expanded this often to pick up files that appear later.
    pub rescan_interval: Duration,
}

impl Default for FollowConfig {
    fn default() -> Self {
        FollowConfig {
            poll_interval: Duration::from_millis(250),
            start_at: StartAt::Beginning,
            save_every_lines: 1000,
            save_interval: Duration::from_secs(1),
            flush_after_quiet: Duration::from_secs(2),
            rescan_interval: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FollowError {
    #[error("bad glob pattern {pattern:?}: {message}")]
    Pattern { pattern: String, message: String },
    #[error("offset file {path}: {message}")]
    OffsetFile { path: PathBuf, message: String },
}

/// Makes the parser for a followed file from its path and first complete lines; `None` while
/// the format cannot be told yet (e.g. the file is still empty).
pub type ParserFactory = Box<dyn FnMut(&Path, &[u8]) -> Option<Box<dyn LogParser>> + Send>;

/// The production factory: `format` if given, else detected with [`detect_format`]; parsers
/// from [`parser_for`], observations tagged `log:<format>:<path>`.
pub fn auto_parser_factory(format: Option<LogFormat>, cfg: IngestConfig) -> ParserFactory {
    Box::new(move |path: &Path, head: &[u8]| {
        let f = format.or_else(|| detect_format(head))?;
        let source = Source::log(f.name(), &path.display().to_string());
        Some(parser_for(f, source, &cfg))
    })
}

/// Where observations go (the producer port). A sink that returns `false` has gone: the
/// follower then stops (the line that produced the refused observation is not marked
/// processed).
pub use crate::ports::ObservationSink;

/// A sink into a tokio channel, for a follower running on a blocking thread
/// (`tokio::task::spawn_blocking`): blocks while the channel is full (back-pressure reaches the
/// file reads, never memory). Must not be called from an async context.
pub fn channel_sink(
    tx: tokio::sync::mpsc::Sender<Observation>,
) -> impl FnMut(Observation) -> bool + Send + Clone {
    move |obs| tx.blocking_send(obs).is_ok()
}

/// Counts of what a follower did (also exported as metrics).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FollowStats {
    pub lines: u64,
    pub bytes: u64,
    pub observations: u64,
    pub rotations: u64,
    pub truncations: u64,
    pub long_lines_skipped: u64,
    pub files_opened: u64,
    pub offset_save_errors: u64,
}

struct Metrics {
    lines: Counter,
    rotations: Counter,
    truncations: Counter,
    long_lines: Counter,
    appeared: Counter,
    undetected: Counter,
    save_errors: Counter,
    too_many_files: Counter,
    read_errors: Counter,
}

fn m() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| {
        let ev = |event| {
            metrics::counter(
                "poolwatch_follow_events_total",
                "Events while following log files, by kind.",
                &[("event", event)],
            )
        };
        Metrics {
            lines: metrics::counter(
                "poolwatch_follow_lines_total",
                "Lines read from followed log files and stdin.",
                &[],
            ),
            rotations: ev("rotation"),
            truncations: ev("truncation"),
            long_lines: ev("line_too_long"),
            appeared: ev("file_appeared"),
            undetected: ev("format_undetected"),
            save_errors: ev("offset_save_error"),
            too_many_files: ev("too_many_files"),
            read_errors: ev("read_error"),
        }
    })
}

enum Input {
    File(FileState),
    Stdin(StdinState),
}

/// Follows files, globs and stdin. Blocking: run it on a thread of its own.
pub struct Follower {
    patterns: Vec<String>,
    inputs: Vec<Input>,
    cfg: FollowConfig,
    factory: ParserFactory,
    offsets: Offsets,
    stats: FollowStats,
    last_rescan: Option<Instant>,
    out: Vec<Observation>,
    retired: std::collections::VecDeque<FileOffset>,
}

impl Follower {
    /// `inputs`: paths, glob patterns (`/var/log/named/*.log`) or `-` for stdin. Patterns are
    /// validated here; files need not exist yet.
    pub fn new(
        inputs: &[String],
        cfg: FollowConfig,
        factory: ParserFactory,
        store: Option<Arc<dyn OffsetStore>>,
    ) -> Result<Self, FollowError> {
        let mut patterns = Vec::new();
        let mut states = Vec::new();
        for inp in inputs {
            if inp == "-" {
                if !states.iter().any(|s| matches!(s, Input::Stdin(_))) {
                    states.push(Input::Stdin(StdinState::spawn()));
                }
                continue;
            }
            glob::Pattern::new(inp).map_err(|e| FollowError::Pattern {
                pattern: inp.clone(),
                message: e.to_string(),
            })?;
            patterns.push(inp.clone());
        }
        let mut f = Follower {
            patterns,
            inputs: states,
            cfg,
            factory,
            offsets: Offsets::new(store),
            stats: FollowStats::default(),
            last_rescan: None,
            out: Vec::new(),
            retired: std::collections::VecDeque::new(),
        };
        f.rescan(true);
        Ok(f)
    }

    pub fn stats(&self) -> &FollowStats {
        &self.stats
    }

    /// Paths currently followed (not stdin).
    pub fn files(&self) -> Vec<PathBuf> {
        self.inputs
            .iter()
            .filter_map(|i| match i {
                Input::File(f) => Some(f.path.clone()),
                Input::Stdin(_) => None,
            })
            .collect()
    }

    /// Follows until `stop` is set, the sink refuses, or (when stdin is the only input) stdin
    /// ends. On return every parser has been flushed and every offset saved.
    pub fn run(&mut self, sink: &mut dyn ObservationSink, stop: &AtomicBool) -> FollowStats {
        loop {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            let (progress, open) = self.poll_once(sink, stop);
            if !open {
                break;
            }
            if self.patterns.is_empty()
                && self
                    .inputs
                    .iter()
                    .all(|i| matches!(i, Input::Stdin(s) if s.eof))
            {
                break;
            }
            if !progress {
                sleep_unless_stopped(self.cfg.poll_interval, stop);
            }
        }
        self.shutdown(sink);
        self.stats.clone()
    }

    /// One pass over every input. Returns (whether any bytes were read, whether the sink is still
    /// open).
    pub fn poll_once(&mut self, sink: &mut dyn ObservationSink, stop: &AtomicBool) -> (bool, bool) {
        let now = Instant::now();
        if self
            .last_rescan
            .is_none_or(|t| now.duration_since(t) >= self.cfg.rescan_interval)
        {
            self.rescan(false);
        }
        let mut progress = false;
        for input in &mut self.inputs {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            let r = match input {
                Input::File(f) => f.poll(
                    &self.cfg,
                    &mut self.factory,
                    &mut self.offsets,
                    &mut self.stats,
                    &mut self.out,
                    sink,
                ),
                Input::Stdin(s) => s.poll(&mut self.factory, &mut self.stats, &mut self.out, sink),
            };
            if let Input::File(f) = input {
                if let Some(r) = f.retired.take() {
                    if self.retired.len() >= RETIRED_MAX {
                        self.retired.pop_front();
                    }
                    self.retired.push_back(r);
                }
            }
            match r {
                Ok(p) => progress |= p,
                Err(()) => return (progress, false),
            }
        }
        (progress, true)
    }

    /// Flushes every parser and saves every offset (also done by `run` on return).
    pub fn shutdown(&mut self, sink: &mut dyn ObservationSink) {
        for input in &mut self.inputs {
            match input {
                Input::File(f) => {
                    let at = f.flush_at();
                    let open =
                        flush_parser(&mut f.parser, &mut self.out, &mut self.stats, sink, at);
                    // A refused flush leaves the offset as it was saved last time (at-least-once).
                    if open {
                        f.save(&mut self.offsets, sink, &mut self.stats);
                    }
                }
                Input::Stdin(s) => {
                    flush_parser(&mut s.parser, &mut self.out, &mut self.stats, sink, None);
                }
            }
        }
    }

    fn rescan(&mut self, initial: bool) {
        self.last_rescan = Some(Instant::now());
        let mut known: BTreeMap<PathBuf, ()> = BTreeMap::new();
        for i in &self.inputs {
            if let Input::File(f) = i {
                known.insert(f.path.clone(), ());
            }
        }
        for pat in &self.patterns {
            let mut matched: Vec<PathBuf> = match glob::glob(pat) {
                Ok(paths) => paths.filter_map(Result::ok).collect(),
                Err(_) => Vec::new(),
            };
            // A plain path is followed even before it exists (tail -F).
            if matched.is_empty() && !has_glob_chars(pat) {
                matched.push(PathBuf::from(pat));
            }
            for p in matched {
                if known.contains_key(&p) || p.is_dir() {
                    continue;
                }
                if known.len() >= MAX_FOLLOWED_FILES {
                    m().too_many_files.inc();
                    break;
                }
                if !initial {
                    m().appeared.inc();
                }
                let start_at = if initial {
                    self.cfg.start_at
                } else {
                    StartAt::Beginning
                };
                let mut state = FileState::new(p.clone(), start_at);
                if !initial {
                    if let Ok(md) = std::fs::metadata(&p) {
                        let id = identity(&md);
                        // Still being drained under its old name: look again next rescan, once
                        // the old state has retired it with its final offset.
                        if self.inputs.iter().any(|i| {
                            matches!(i, Input::File(f) if f.file.is_some() && (f.dev, f.inode) == id)
                        }) {
                            continue;
                        }
                        state.resume = self
                            .retired
                            .iter()
                            .rev()
                            .find(|r| (r.dev, r.inode) == id)
                            .cloned();
                    }
                }
                known.insert(p, ());
                self.inputs.push(Input::File(state));
            }
        }
        if initial {
            self.claim_renamed_at_startup();
        }
    }

    /// At start-up, a followed path may hold a file that was followed under another name before
    /// the restart (rotated to a name the glob also matches). It resumes at that name's stored
    /// offset, and the other name does not go looking for it beside itself.
    fn claim_renamed_at_startup(&mut self) {
        let Some(store) = self.offsets.store() else {
            return;
        };
        let records: Vec<(usize, FileOffset)> = self
            .inputs
            .iter()
            .enumerate()
            .filter_map(|(i, inp)| match inp {
                Input::File(f) => store.load_offset(&f.key).map(|r| (i, r)),
                Input::Stdin(_) => None,
            })
            .collect();
        let mut claimed = Vec::new();
        for (i, inp) in self.inputs.iter_mut().enumerate() {
            let Input::File(f) = inp else { continue };
            let Ok(md) = std::fs::metadata(&f.path) else {
                continue;
            };
            let id = identity(&md);
            if records
                .iter()
                .any(|(j, r)| *j == i && (r.dev, r.inode) == id)
            {
                continue;
            }
            if let Some((j, r)) = records
                .iter()
                .find(|(j, r)| *j != i && (r.dev, r.inode) == id)
            {
                f.resume = Some(r.clone());
                claimed.push(*j);
            }
        }
        for j in claimed {
            if let Some(Input::File(f)) = self.inputs.get_mut(j) {
                f.no_rotated_search = true;
            }
        }
    }
}

fn has_glob_chars(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let deadline = Instant::now() + total;
    loop {
        let now = Instant::now();
        if now >= deadline || stop.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
}

/// Hands the observations in `out` to the sink, positioned from `at` (one `seq` each); false
/// when the sink refused.
fn deliver(
    out: &mut Vec<Observation>,
    stats: &mut FollowStats,
    sink: &mut dyn ObservationSink,
    at: Option<At>,
) -> bool {
    let mut open = true;
    let mut seq = at.map_or(0, |a| a.seq);
    for o in out.drain(..) {
        if open {
            stats.observations += 1;
            open = match at {
                Some(a) => {
                    let pos = SourcePos {
                        source: a.source,
                        offset: a.offset,
                        seq,
                    };
                    seq = seq.saturating_add(1);
                    sink.send_at(o, pos)
                }
                None => sink.send(o),
            };
        }
    }
    open
}

fn flush_parser(
    parser: &mut Option<Box<dyn LogParser>>,
    out: &mut Vec<Observation>,
    stats: &mut FollowStats,
    sink: &mut dyn ObservationSink,
    at: Option<At>,
) -> bool {
    if let Some(p) = parser.as_mut() {
        p.flush(out);
    }
    deliver(out, stats, sink, at)
}

/// One piece from the line splitter: a line is parsed and its observations delivered,
/// positioned at the line when `at` is given (false when the sink refused); an over-long line
/// is counted, by us and by the parser.
fn handle_piece(
    piece: Piece<'_>,
    parser: &mut dyn LogParser,
    out: &mut Vec<Observation>,
    stats: &mut FollowStats,
    sink: &mut dyn ObservationSink,
    at: Option<At>,
) -> bool {
    match piece {
        Piece::Line(line) => {
            stats.lines += 1;
            m().lines.inc();
            parser.parse_line(line, out);
            deliver(out, stats, sink, at)
        }
        Piece::TooLong => {
            stats.long_lines_skipped += 1;
            m().long_lines.inc();
            parser.line_too_long();
            true
        }
    }
}

impl Producer for Follower {
    fn name(&self) -> String {
        "follow".into()
    }

    fn run(mut self: Box<Self>, mut sink: QueueSink, stop: StopToken) -> ProducerReport {
        let st = Follower::run(&mut self, &mut sink, stop.flag());
        tracing::info!(
            lines = st.lines,
            observations = st.observations,
            "follower stopped"
        );
        ProducerReport {
            observations: st.observations,
            finished: !stop.is_stopped(),
            error: None,
        }
    }
}
