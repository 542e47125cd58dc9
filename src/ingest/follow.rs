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

use std::collections::BTreeMap;
use std::fs::{File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::metrics::{self, Counter};
use crate::model::{Observation, Source};

use super::{detect_format, parser_for, IngestConfig, LogFormat, LogParser};

pub use crate::ports::{FileOffset, OffsetStore};

/// Longest line handed to a parser. Longer lines are skipped (counted) without being buffered
/// whole, so a 10 MB line or a binary file without newlines cannot exhaust memory. 1 MiB is far
/// beyond any real resolver log line (a Zeek/EVE JSON line with many answers is a few KiB).
pub const MAX_LINE_LEN: usize = 1024 * 1024;
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

/// Where observations go. Return `false` when the receiver is gone: the follower then stops
/// (the line that produced the refused observation is not marked processed).
pub trait ObservationSink {
    fn send(&mut self, obs: Observation) -> bool;
}

impl<F: FnMut(Observation) -> bool> ObservationSink for F {
    fn send(&mut self, obs: Observation) -> bool {
        self(obs)
    }
}

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

/// FNV-1a: stable across runs and Rust versions (the fingerprint is persisted).
fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Splits a byte stream into lines, bounded by [`MAX_LINE_LEN`], tracking the file offset of
/// the first unprocessed byte.
#[derive(Default)]
struct Lines {
    buf: Vec<u8>,
    /// File offset of the first byte not yet handed over (a line start).
    offset: u64,
    /// File offset of the next byte to read.
    read_pos: u64,
    /// Inside an over-long line: discard until its newline.
    skipping: bool,
}

enum Fed {
    Done,
    /// The sink refused an observation: stop following.
    SinkClosed,
}

impl Lines {
    fn reset(&mut self, pos: u64) {
        self.buf.clear();
        self.offset = pos;
        self.read_pos = pos;
        self.skipping = false;
    }

    /// Feeds freshly read bytes; `on_line` gets each complete line (without `\n` / `\r\n`) and
    /// returns false to stop.
    fn feed(
        &mut self,
        mut data: &[u8],
        stats: &mut FollowStats,
        on_line: &mut dyn FnMut(&[u8]) -> bool,
    ) -> Fed {
        self.read_pos += data.len() as u64;
        if self.skipping {
            let Some(i) = memchr::memchr(b'\n', data) else {
                return Fed::Done;
            };
            let rest = data.get(i + 1..).unwrap_or(&[]);
            self.offset = self.read_pos - rest.len() as u64;
            self.skipping = false;
            data = rest;
        }
        self.buf.extend_from_slice(data);
        let mut start = 0usize;
        let mut result = Fed::Done;
        while let Some(i) = self
            .buf
            .get(start..)
            .and_then(|rest| memchr::memchr(b'\n', rest))
        {
            let line = self.buf.get(start..start + i).unwrap_or(&[]);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if i > MAX_LINE_LEN {
                stats.long_lines_skipped += 1;
                m().long_lines.inc();
            } else if !on_line(line) {
                result = Fed::SinkClosed;
                break;
            }
            start += i + 1;
            self.offset += i as u64 + 1;
        }
        self.buf.drain(..start.min(self.buf.len()));
        if matches!(result, Fed::Done) && self.buf.len() > MAX_LINE_LEN {
            stats.long_lines_skipped += 1;
            m().long_lines.inc();
            self.buf.clear();
            self.buf.shrink_to(READ_CHUNK);
            self.skipping = true;
        }
        result
    }

    /// The rest of a finished file (rotated away) that has no final newline: one last line.
    fn take_final(&mut self) -> Option<Vec<u8>> {
        if self.skipping || self.buf.is_empty() {
            return None;
        }
        self.offset += self.buf.len() as u64;
        Some(std::mem::take(&mut self.buf))
    }
}

enum Input {
    File(FileState),
    Stdin(StdinState),
}

struct FileState {
    /// The path as followed (and the offset-store key, made absolute).
    path: PathBuf,
    key: String,
    file: Option<File>,
    dev: u64,
    inode: u64,
    fingerprint: u64,
    fingerprint_len: u32,
    /// Start position when opening with no stored offset.
    start_at: StartAt,
    /// The path now has another identity (or is gone): finish the old descriptor, then switch.
    draining: bool,
    /// Format could not be detected: ignored until the file is replaced.
    undetected: bool,
    lines: Lines,
    parser: Option<Box<dyn LogParser>>,
    unsaved_lines: u64,
    dirty: bool,
    /// Position to resume at instead of the stored one (same file seen under another name).
    resume: Option<FileOffset>,
    /// Another followed path holds our previous file: do not look for it beside us.
    no_rotated_search: bool,
    /// Set when a rotated-away file is finished: its identity and final offset.
    retired: Option<FileOffset>,
    last_save: Instant,
    last_data: Instant,
    flushed: bool,
}

struct StdinState {
    rx: Receiver<Vec<u8>>,
    lines: Lines,
    parser: Option<Box<dyn LogParser>>,
    head: Vec<u8>,
    eof: bool,
}

/// Follows files, globs and stdin. Blocking: run it on a thread of its own.
pub struct Follower {
    patterns: Vec<String>,
    inputs: Vec<Input>,
    cfg: FollowConfig,
    factory: ParserFactory,
    store: Option<Arc<dyn OffsetStore>>,
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
            store,
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
            if stop.load(Ordering::Relaxed) {
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
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let r = match input {
                Input::File(f) => f.poll(
                    &self.cfg,
                    &mut self.factory,
                    self.store.as_deref(),
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
                    let open = flush_parser(&mut f.parser, &mut self.out, &mut self.stats, sink);
                    // A refused flush leaves the offset as it was saved last time (at-least-once).
                    if open {
                        f.save(self.store.as_deref(), &mut self.stats);
                    }
                }
                Input::Stdin(s) => {
                    flush_parser(&mut s.parser, &mut self.out, &mut self.stats, sink);
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
        let Some(store) = self.store.as_deref() else {
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
        if now >= deadline || stop.load(Ordering::Relaxed) {
            return;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
}

/// Hands the observations in `out` to the sink; false when the sink refused.
fn deliver(
    out: &mut Vec<Observation>,
    stats: &mut FollowStats,
    sink: &mut dyn ObservationSink,
) -> bool {
    let mut open = true;
    for o in out.drain(..) {
        if open {
            stats.observations += 1;
            open = sink.send(o);
        }
    }
    open
}

fn flush_parser(
    parser: &mut Option<Box<dyn LogParser>>,
    out: &mut Vec<Observation>,
    stats: &mut FollowStats,
    sink: &mut dyn ObservationSink,
) -> bool {
    if let Some(p) = parser.as_mut() {
        p.flush(out);
    }
    deliver(out, stats, sink)
}

fn line_handler<'a>(
    parser: &'a mut Box<dyn LogParser>,
    out: &'a mut Vec<Observation>,
    stats: &'a mut FollowStats,
    sink: &'a mut dyn ObservationSink,
) -> impl FnMut(&[u8]) -> bool + 'a {
    move |line: &[u8]| {
        stats.lines += 1;
        m().lines.inc();
        parser.parse_line(line, out);
        deliver(out, stats, sink)
    }
}

fn identity(md: &Metadata) -> (u64, u64) {
    (md.dev(), md.ino())
}

impl FileState {
    fn new(path: PathBuf, start_at: StartAt) -> Self {
        let key = std::path::absolute(&path)
            .unwrap_or_else(|_| path.clone())
            .display()
            .to_string();
        let now = Instant::now();
        FileState {
            path,
            key,
            file: None,
            dev: 0,
            inode: 0,
            fingerprint: 0,
            fingerprint_len: 0,
            start_at,
            draining: false,
            undetected: false,
            lines: Lines::default(),
            parser: None,
            unsaved_lines: 0,
            dirty: false,
            resume: None,
            no_rotated_search: false,
            retired: None,
            last_save: now,
            last_data: now,
            flushed: true,
        }
    }

    fn offset_record(&self) -> FileOffset {
        FileOffset {
            dev: self.dev,
            inode: self.inode,
            offset: self.lines.offset,
            fingerprint: self.fingerprint,
            fingerprint_len: self.fingerprint_len,
        }
    }

    fn save(&mut self, store: Option<&dyn OffsetStore>, stats: &mut FollowStats) {
        let Some(store) = store else {
            return;
        };
        if !self.dirty || self.file.is_none() && self.inode == 0 {
            return;
        }
        match store.save_offset(&self.key, &self.offset_record()) {
            Ok(()) => {
                self.dirty = false;
                self.unsaved_lines = 0;
                self.last_save = Instant::now();
            }
            Err(e) => {
                stats.offset_save_errors += 1;
                m().save_errors.inc();
                tracing::warn!("cannot save read offset of {}: {e}", self.path.display());
            }
        }
    }

    /// Hash of the first bytes as they are now; (hash, length).
    fn current_fingerprint(file: &File) -> Option<(u64, u32)> {
        let mut head = [0u8; FINGERPRINT_LEN];
        let mut n = 0;
        while n < head.len() {
            match file.read_at(head.get_mut(n..)?, n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        Some((fnv1a(head.get(..n)?), n as u32))
    }

    /// `len` comes from the offset store, which may be corrupt or hand-edited: a length we never
    /// write (over `FINGERPRINT_LEN`) is a mismatch, not a multi-gigabyte allocation.
    fn fingerprint_prefix(file: &File, len: u32) -> Option<u64> {
        let mut buf = [0u8; FINGERPRINT_LEN];
        let head = buf.get_mut(..usize::try_from(len).ok()?)?;
        file.read_exact_at(head, 0).ok()?;
        Some(fnv1a(head))
    }

    /// Opens the path (or, after a restart, the rotated file that still holds our stored
    /// position). Returns false when there is nothing to open yet.
    fn open(
        &mut self,
        store: Option<&dyn OffsetStore>,
        stats: &mut FollowStats,
        fresh: bool,
    ) -> bool {
        let Ok(file) = File::open(&self.path) else {
            return false;
        };
        let Ok(md) = file.metadata() else {
            return false;
        };
        if !md.is_file() {
            return false;
        }
        let (dev, inode) = identity(&md);
        let stored = if fresh {
            None
        } else {
            self.resume
                .take()
                .or_else(|| store.and_then(|s| s.load_offset(&self.key)))
        };
        let mut stored_pos: Option<u64> = None;
        let mut rotated: Option<(File, u64, u64, u64)> = None;
        if let Some(st) = &stored {
            if (st.dev, st.inode) == (dev, inode)
                && fingerprint_matches(&file, st)
                && md.len() >= st.offset
            {
                stored_pos = Some(st.offset);
            } else if let Some((old, odev, oino)) =
                find_rotated(&self.path, st).filter(|_| !self.no_rotated_search)
            {
                // Rotated while we were not running: finish the old file first.
                rotated = Some((old, odev, oino, st.offset));
            } else {
                // Replaced while we were not running: all of the new file is unread.
                stored_pos = Some(0);
            }
        }
        let (mut file, dev, inode, pos) = match rotated {
            Some(r) => r,
            None => {
                let pos = stored_pos.unwrap_or(match (fresh, self.start_at) {
                    (false, StartAt::End) => md.len(),
                    _ => 0,
                });
                (file, dev, inode, pos)
            }
        };
        if pos > 0 && file.seek(SeekFrom::Start(pos)).is_err() {
            return false;
        }
        let (fp, fpl) = Self::current_fingerprint(&file).unwrap_or((0, 0));
        self.file = Some(file);
        self.dev = dev;
        self.inode = inode;
        self.fingerprint = fp;
        self.fingerprint_len = fpl;
        self.lines.reset(pos);
        self.draining = false;
        self.undetected = false;
        self.dirty = true;
        stats.files_opened += 1;
        true
    }

    fn poll(
        &mut self,
        cfg: &FollowConfig,
        factory: &mut ParserFactory,
        store: Option<&dyn OffsetStore>,
        stats: &mut FollowStats,
        out: &mut Vec<Observation>,
        sink: &mut dyn ObservationSink,
    ) -> Result<bool, ()> {
        if self.file.is_none() {
            // First open uses the stored offset / start position; a successor after rotation
            // (inode already known) starts at 0.
            let fresh = self.inode != 0;
            if !self.open(store, stats, fresh) {
                // Absent at start-up: when it appears, all of it is new.
                self.start_at = StartAt::Beginning;
                return Ok(false);
            }
        }
        // Identity of the path *before* reading, so bytes written to the old file up to the
        // rename are read below before we switch.
        let path_id = std::fs::metadata(&self.path).ok().map(|md| identity(&md));
        if path_id != Some((self.dev, self.inode)) {
            self.draining = true;
        }
        self.check_truncation(stats, out, sink)?;
        if self.parser.is_none() && !self.undetected && !self.detect(factory) {
            return Ok(false);
        }
        let read = self.read_available(stats, out, sink)?;
        let now = Instant::now();
        if read > 0 {
            self.last_data = now;
            self.flushed = false;
            self.update_fingerprint();
        }
        if self.draining && read == 0 {
            // The old descriptor is drained: its unterminated last line is complete now.
            if let (Some(tail), Some(p)) = (self.lines.take_final(), self.parser.as_mut()) {
                stats.lines += 1;
                m().lines.inc();
                p.parse_line(&tail, out);
            }
            if !flush_parser(&mut self.parser, out, stats, sink) {
                return Err(());
            }
            self.dirty = true;
            self.save(store, stats);
            stats.rotations += 1;
            m().rotations.inc();
            self.retired = Some(self.offset_record());
            self.file = None;
            self.parser = None;
            self.draining = false;
            // Successor: at offset 0 (if it exists yet).
            if self.open(store, stats, true) {
                self.save(store, stats);
                return self
                    .poll(cfg, factory, store, stats, out, sink)
                    .map(|_| true);
            }
            return Ok(true);
        }
        if !self.flushed && now.duration_since(self.last_data) >= cfg.flush_after_quiet {
            self.flushed = true;
            if !flush_parser(&mut self.parser, out, stats, sink) {
                return Err(());
            }
        }
        if self.dirty
            && (self.unsaved_lines >= cfg.save_every_lines
                || now.duration_since(self.last_save) >= cfg.save_interval)
        {
            self.save(store, stats);
        }
        Ok(read > 0)
    }

    /// copytruncate: the file got shorter than our read position, or its first bytes changed
    /// (truncated and rewritten past our position between two polls): start again at 0.
    fn check_truncation(
        &mut self,
        stats: &mut FollowStats,
        out: &mut Vec<Observation>,
        sink: &mut dyn ObservationSink,
    ) -> Result<(), ()> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        let Ok(md) = file.metadata() else {
            return Ok(());
        };
        let shrunk = md.len() < self.lines.read_pos;
        let rewritten = !shrunk
            && self.fingerprint_len > 0
            && Self::fingerprint_prefix(file, self.fingerprint_len) != Some(self.fingerprint);
        if !(shrunk || rewritten) {
            return Ok(());
        }
        if file.seek(SeekFrom::Start(0)).is_err() {
            return Ok(());
        }
        stats.truncations += 1;
        m().truncations.inc();
        self.lines.reset(0);
        let (fp, fpl) = Self::current_fingerprint(file).unwrap_or((0, 0));
        self.fingerprint = fp;
        self.fingerprint_len = fpl;
        self.dirty = true;
        // State joined across lines of the old content must not leak into the new.
        if !flush_parser(&mut self.parser, out, stats, sink) {
            return Err(());
        }
        Ok(())
    }

    fn update_fingerprint(&mut self) {
        if (self.fingerprint_len as usize) < FINGERPRINT_LEN {
            if let Some((fp, fpl)) = self.file.as_ref().and_then(Self::current_fingerprint) {
                self.fingerprint = fp;
                self.fingerprint_len = fpl;
            }
        }
    }

    /// Finds the parser from the file's first complete lines. False while undecided.
    fn detect(&mut self, factory: &mut ParserFactory) -> bool {
        let Some(file) = self.file.as_ref() else {
            return false;
        };
        let mut head = vec![0u8; DETECT_HEAD_LEN];
        let n = file.read_at(&mut head, 0).unwrap_or(0);
        head.truncate(n);
        let complete = match memchr::memrchr(b'\n', &head) {
            Some(i) => i + 1,
            None if n == DETECT_HEAD_LEN => n,
            None => return false,
        };
        let head = head.get(..complete).unwrap_or(&[]);
        if let Some(p) = factory(&self.path, head) {
            self.parser = Some(p);
            return true;
        }
        let lines = memchr::memchr_iter(b'\n', head).count();
        if lines >= DETECT_MAX_LINES || complete >= DETECT_HEAD_LEN {
            self.undetected = true;
            m().undetected.inc();
            tracing::warn!(
                "{}: log format not recognised; ignoring this file until it is replaced (give --format)",
                self.path.display()
            );
        }
        false
    }

    /// Reads the descriptor to EOF (bounded per poll). Returns bytes read.
    fn read_available(
        &mut self,
        stats: &mut FollowStats,
        out: &mut Vec<Observation>,
        sink: &mut dyn ObservationSink,
    ) -> Result<u64, ()> {
        let Some(file) = self.file.as_mut() else {
            return Ok(0);
        };
        let mut chunk = vec![0u8; READ_CHUNK];
        let mut total = 0u64;
        while total < MAX_READ_PER_POLL {
            let n = match file.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    m().read_errors.inc();
                    tracing::warn!("reading {}: {e}", self.path.display());
                    break;
                }
            };
            total += n as u64;
            stats.bytes += n as u64;
            let data = chunk.get(..n).unwrap_or(&[]);
            if self.undetected {
                // Ignored file: keep the position moving so a rewrite is still noticed.
                self.lines.read_pos += n as u64;
                self.lines.offset = self.lines.read_pos;
                continue;
            }
            let Some(parser) = self.parser.as_mut() else {
                break;
            };
            let before = stats.lines;
            let fed = {
                let mut stats_local = FollowStats::default();
                let mut on_line = line_handler(parser, out, &mut stats_local, sink);
                let mut scratch = FollowStats::default();
                let r = self.lines.feed(data, &mut scratch, &mut on_line);
                drop(on_line);
                stats_local.long_lines_skipped += scratch.long_lines_skipped;
                merge(stats, &stats_local);
                r
            };
            self.unsaved_lines += stats.lines - before;
            self.dirty = true;
            if matches!(fed, Fed::SinkClosed) {
                return Err(());
            }
        }
        Ok(total)
    }
}

fn merge(into: &mut FollowStats, s: &FollowStats) {
    into.lines += s.lines;
    into.observations += s.observations;
    into.long_lines_skipped += s.long_lines_skipped;
}

fn fingerprint_matches(file: &File, st: &FileOffset) -> bool {
    if st.fingerprint_len == 0 {
        return true;
    }
    FileState::fingerprint_prefix(file, st.fingerprint_len) == Some(st.fingerprint)
}

/// After a restart: the file with the stored identity, renamed beside the path by a rotation
/// (`query.log.1`, `query.log-20261126`, …), if it is still there, unchanged, and uncompressed.
fn find_rotated(path: &Path, st: &FileOffset) -> Option<(File, u64, u64)> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name()?.to_str()?;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let Some(ename) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if ename == name || !ename.starts_with(name) {
            continue;
        }
        let Ok(md) = entry.metadata() else { continue };
        if identity(&md) != (st.dev, st.inode) || md.len() < st.offset {
            continue;
        }
        let Ok(mut f) = File::open(entry.path()) else {
            continue;
        };
        if fingerprint_matches(&f, st) && f.seek(SeekFrom::Start(st.offset)).is_ok() {
            return Some((f, st.dev, st.inode));
        }
    }
    None
}

impl StdinState {
    fn spawn() -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(STDIN_QUEUE);
        // Blocking reads of stdin live on their own thread; the follower polls the channel.
        std::thread::spawn(move || {
            let mut stdin = io::stdin().lock();
            loop {
                let mut buf = vec![0u8; READ_CHUNK];
                match stdin.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        buf.truncate(n);
                        if tx.send(buf).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        });
        StdinState {
            rx,
            lines: Lines::default(),
            parser: None,
            head: Vec::new(),
            eof: false,
        }
    }

    fn poll(
        &mut self,
        factory: &mut ParserFactory,
        stats: &mut FollowStats,
        out: &mut Vec<Observation>,
        sink: &mut dyn ObservationSink,
    ) -> Result<bool, ()> {
        let mut progress = false;
        while !self.eof {
            let chunk = match self.rx.try_recv() {
                Ok(c) => c,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.eof = true;
                    // End of stdin: the format must be decided with what we have.
                    if self.parser.is_none() && !self.head.is_empty() {
                        self.parser = factory(Path::new("-"), &self.head);
                    }
                    let data = std::mem::take(&mut self.head);
                    if let Err(()) = self.feed(&data, stats, out, sink) {
                        return Err(());
                    }
                    if let (Some(tail), Some(p)) = (self.lines.take_final(), self.parser.as_mut()) {
                        stats.lines += 1;
                        p.parse_line(&tail, out);
                    }
                    if !flush_parser(&mut self.parser, out, stats, sink) {
                        return Err(());
                    }
                    break;
                }
            };
            progress = true;
            stats.bytes += chunk.len() as u64;
            if self.parser.is_none() {
                // Hold bytes until the format can be told from complete lines.
                if self.head.len() < DETECT_HEAD_LEN {
                    self.head.extend_from_slice(&chunk);
                }
                let complete = memchr::memrchr(b'\n', &self.head).map_or(0, |i| i + 1);
                if complete > 0 {
                    self.parser = factory(Path::new("-"), self.head.get(..complete).unwrap_or(&[]));
                }
                if self.parser.is_none() && self.head.len() < DETECT_HEAD_LEN {
                    continue;
                }
                if self.parser.is_none() {
                    m().undetected.inc();
                    tracing::warn!("stdin: log format not recognised (give --format)");
                    self.eof = true;
                    break;
                }
                let data = std::mem::take(&mut self.head);
                self.feed(&data, stats, out, sink)?;
                continue;
            }
            self.feed(&chunk, stats, out, sink)?;
        }
        Ok(progress)
    }

    fn feed(
        &mut self,
        data: &[u8],
        stats: &mut FollowStats,
        out: &mut Vec<Observation>,
        sink: &mut dyn ObservationSink,
    ) -> Result<(), ()> {
        let Some(parser) = self.parser.as_mut() else {
            return Ok(());
        };
        let mut local = FollowStats::default();
        let mut scratch = FollowStats::default();
        let mut on_line = line_handler(parser, out, &mut local, sink);
        let r = self.lines.feed(data, &mut scratch, &mut on_line);
        drop(on_line);
        local.long_lines_skipped += scratch.long_lines_skipped;
        merge(stats, &local);
        match r {
            Fed::Done => Ok(()),
            Fed::SinkClosed => Err(()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON offset file
// ---------------------------------------------------------------------------------------------

/// An [`OffsetStore`] in a small JSON file (`{"<path>": FileOffset, …}`), for `scan --follow`
/// without a database. Every save rewrites the file atomically (temporary file, fsync, rename),
/// so a crash leaves either the previous or the new positions, never a torn file.
pub struct JsonOffsetFile {
    path: PathBuf,
    map: Mutex<BTreeMap<String, FileOffset>>,
}

impl JsonOffsetFile {
    /// Opens (or starts) the offset file. A missing file is empty; an unreadable one is an error
    /// (silently starting over would re-read every log).
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, FollowError> {
        let path = path.into();
        let map = match std::fs::read(&path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => BTreeMap::new(),
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| FollowError::OffsetFile {
                path: path.clone(),
                message: e.to_string(),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                return Err(FollowError::OffsetFile {
                    path,
                    message: e.to_string(),
                })
            }
        };
        Ok(JsonOffsetFile {
            path,
            map: Mutex::new(map),
        })
    }

    fn write(&self, map: &BTreeMap<String, FileOffset>) -> io::Result<()> {
        use std::io::Write;
        let tmp = self.path.with_extension("tmp");
        let mut f = File::create(&tmp)?;
        let json = serde_json::to_vec_pretty(map).map_err(io::Error::other)?;
        f.write_all(&json)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)
    }
}

impl OffsetStore for JsonOffsetFile {
    fn load_offset(&self, key: &str) -> Option<FileOffset> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key).cloned()
    }

    fn save_offset(&self, key: &str, offset: &FileOffset) -> Result<(), String> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(key.to_string(), offset.clone());
        self.write(&map).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_fingerprint_length_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.log");
        std::fs::write(&path, b"line one\nline two\n").unwrap();
        let file = File::open(&path).unwrap();
        let (fp, len) = FileState::current_fingerprint(&file).unwrap();
        assert_eq!(FileState::fingerprint_prefix(&file, len), Some(fp));
        // A corrupt offset store: lengths we never write are a mismatch, without allocating.
        for bad in [FINGERPRINT_LEN as u32 + 1, u32::MAX] {
            assert_eq!(FileState::fingerprint_prefix(&file, bad), None);
            let st = FileOffset {
                dev: 0,
                inode: 0,
                offset: 0,
                fingerprint: fp,
                fingerprint_len: bad,
            };
            assert!(!fingerprint_matches(&file, &st));
        }
    }

    #[test]
    fn lines_split_and_bound() {
        let mut l = Lines::default();
        let mut stats = FollowStats::default();
        let mut got: Vec<Vec<u8>> = Vec::new();
        let mut f = |line: &[u8]| {
            got.push(line.to_vec());
            true
        };
        l.feed(b"a\r\nbb\nc", &mut stats, &mut f);
        assert_eq!(l.offset, 6);
        l.feed(b"c\n", &mut stats, &mut f);
        assert_eq!(l.offset, 9);
        let big = vec![b'x'; MAX_LINE_LEN + 10];
        l.feed(&big, &mut stats, &mut f);
        assert!(l.skipping);
        assert!(l.buf.is_empty());
        l.feed(b"yy\nok\n", &mut stats, &mut f);
        assert_eq!(stats.long_lines_skipped, 1);
        assert_eq!(l.offset, l.read_pos);
        let _ = &mut f;
        assert_eq!(
            got,
            vec![
                b"a".to_vec(),
                b"bb".to_vec(),
                b"cc".to_vec(),
                b"ok".to_vec()
            ]
        );
    }
}
