//! Opening an input file of any supported kind: a packet capture (handed to [`crate::capture`])
//! or a log (handed to [`crate::ingest`]), detected from its first bytes unless a format is given.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::capture::{self, CaptureConfig};
use crate::ingest::{self, IngestConfig, LogFormat};
use crate::model::{Observation, Timestamp};

mod counted;
mod import;

use counted::open_file_counted;
pub use counted::{open_capture_counting, open_log_counting, ByteCount, FastCapture, FastLog};

pub use import::{Import, ImportError, MAX_IMPORTS};

/// What `--format` accepts: `auto`, `pcap`, or a log format name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputFormat {
    Auto,
    Pcap,
    /// JSON lines of observations, as `poolwatch inspect --output json` prints them (replay).
    Observations,
    Log(LogFormat),
}

impl InputFormat {
    pub fn parse(s: &str) -> Result<Self, InputError> {
        match s {
            "auto" => Ok(InputFormat::Auto),
            "pcap" | "pcapng" => Ok(InputFormat::Pcap),
            "observations" | "jsonl" => Ok(InputFormat::Observations),
            other => LogFormat::parse(other)
                .map(InputFormat::Log)
                .ok_or_else(|| InputError::UnknownFormat {
                    name: other.to_string(),
                }),
        }
    }

    /// Every accepted `--format` value, for help and error messages.
    pub fn names() -> Vec<&'static str> {
        let mut v = vec!["auto", "pcap", "observations"];
        v.extend(LogFormat::ALL.iter().map(|f| f.name()));
        v
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    #[error("unknown format {name:?}; expected one of: {}", InputFormat::names().join(", "))]
    UnknownFormat { name: String },
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Capture(#[from] capture::CaptureError),
    #[error(transparent)]
    Ingest(#[from] ingest::IngestError),
}

/// Bytes read from the start of a regular file to decide what it is.
const SNIFF_LEN: usize = 64 * 1024;
/// Bytes peeked from a stream (pipe, FIFO, process substitution) to tell a capture from a log:
/// the pcap/pcapng magic. The peeked bytes are put back in front of the stream.
const STREAM_PEEK_LEN: usize = 4;

/// An opened input, yielding observations in file order.
pub type Observations = Box<dyn Iterator<Item = Observation> + Send>;

/// An input that stopped before its end (cut inside a record, a damaged block, a read error,
/// a malformed observation line): what was read was used, but the result is incomplete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadFailure {
    pub path: PathBuf,
    /// Byte offset where reading stopped, when known.
    pub offset: Option<u64>,
    /// Line number, for line-based inputs.
    pub line: Option<u64>,
    pub message: String,
}

impl std::fmt::Display for ReadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.offset) {
            (Some(l), Some(o)) => write!(
                f,
                "{}:{l}: input ended early at byte {o}: {}",
                self.path.display(),
                self.message
            ),
            (Some(l), None) => write!(
                f,
                "{}:{l}: input ended early: {}",
                self.path.display(),
                self.message
            ),
            (None, Some(o)) => write!(
                f,
                "{}: input ended early at byte {o}: {}",
                self.path.display(),
                self.message
            ),
            (None, None) => write!(
                f,
                "{}: input ended early: {}",
                self.path.display(),
                self.message
            ),
        }
    }
}

/// Collects the [`ReadFailure`]s of the inputs opened with [`open_reporting`], as each one
/// reaches its end. Shared by clones; check it after the last observation was consumed.
#[derive(Clone, Debug, Default)]
pub struct ReadFailures(Arc<Mutex<Vec<ReadFailure>>>);

impl ReadFailures {
    pub fn new() -> Self {
        Self::default()
    }
    fn push(&self, f: ReadFailure) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(f);
    }
    /// The failures recorded so far (and forgets them).
    pub fn take(&self) -> Vec<ReadFailure> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Whether `path` holds a packet capture (pcap or pcapng magic). A stream (stdin, FIFO) cannot
/// be looked at without consuming it: `false`.
pub fn is_capture(path: &Path) -> Result<bool, InputError> {
    if is_stream(path)? {
        return Ok(false);
    }
    let head = read_head(path)?;
    Ok(capture::looks_like_capture(&head))
}

/// `-`, a FIFO, a pipe (`<(cmd)` gives `/dev/fd/N`), a character device: anything that is not a
/// regular file is read once, as a stream, and never reopened or seeked.
fn is_stream(path: &Path) -> Result<bool, InputError> {
    if path == Path::new("-") {
        return Ok(true);
    }
    let md = std::fs::metadata(path).map_err(|source| InputError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(!md.is_file() && !md.is_dir())
}

fn read_head(path: &Path) -> Result<Vec<u8>, InputError> {
    let mut f = File::open(path).map_err(|source| InputError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    fill(&mut f, SNIFF_LEN).map_err(|source| InputError::Open {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads up to `limit` bytes (fewer only at end of input).
fn fill(src: &mut dyn Read, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; limit];
    let mut n = 0;
    while n < buf.len() {
        match src.read(buf.get_mut(n..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    buf.truncate(n);
    Ok(buf)
}

/// Opens `path` as `format` (sniffed when `Auto`). A read failure at the end of the input is
/// logged but not reported; use [`open_reporting`] where the caller must know.
pub fn open(
    path: &Path,
    format: InputFormat,
    capture_cfg: &CaptureConfig,
    ingest_cfg: &IngestConfig,
) -> Result<Observations, InputError> {
    open_reporting(path, format, capture_cfg, ingest_cfg, &ReadFailures::new())
}

/// Opens `path` as `format` (sniffed when `Auto`); an input that ends early adds a
/// [`ReadFailure`] to `failures` when its iterator ends.
///
/// Regular files are sniffed from their first bytes and reopened by the reader. Streams (`-`,
/// FIFOs, `<(cmd)`) are opened once: a few bytes are peeked for the capture magic and chained
/// back in front of the stream, so nothing is lost and nothing seeks.
pub fn open_reporting(
    path: &Path,
    format: InputFormat,
    capture_cfg: &CaptureConfig,
    ingest_cfg: &IngestConfig,
    failures: &ReadFailures,
) -> Result<Observations, InputError> {
    open_inner(path, format, capture_cfg, ingest_cfg, failures, None)
}

/// [`open_reporting`], and every byte the decoder reads from `path` is added to `bytes` (the
/// progress bar of `scan`). The count is taken on the opened file or stream itself, before
/// any decoding. A dnstap file is read by its own reader and is not counted; its size is
/// added to [`ByteCount::uncounted`] instead.
pub fn open_counting(
    path: &Path,
    format: InputFormat,
    capture_cfg: &CaptureConfig,
    ingest_cfg: &IngestConfig,
    failures: &ReadFailures,
    bytes: &ByteCount,
) -> Result<Observations, InputError> {
    open_inner(path, format, capture_cfg, ingest_cfg, failures, Some(bytes))
}

fn open_inner(
    path: &Path,
    format: InputFormat,
    capture_cfg: &CaptureConfig,
    ingest_cfg: &IngestConfig,
    failures: &ReadFailures,
    bytes: Option<&ByteCount>,
) -> Result<Observations, InputError> {
    if let Some(count) = bytes {
        if !is_stream(path)? {
            return open_file_counted(path, format, capture_cfg, ingest_cfg, failures, count);
        }
    }
    let open_err = |source: std::io::Error| InputError::Open {
        path: path.to_path_buf(),
        source,
    };
    if !is_stream(path)? {
        let format = match format {
            InputFormat::Auto if capture::looks_like_capture(&read_head(path)?) => {
                InputFormat::Pcap
            }
            f => f,
        };
        return Ok(match format {
            InputFormat::Pcap => {
                pcap_watched(capture::open_file(path, capture_cfg)?, path, failures)
            }
            InputFormat::Observations => {
                let f = File::open(path).map_err(open_err)?;
                observations(Box::new(f), path, failures)
            }
            InputFormat::Log(f) => log_watched(
                ingest::open_file(path, Some(f), ingest_cfg)?,
                path,
                failures,
            ),
            InputFormat::Auto => {
                log_watched(ingest::open_file(path, None, ingest_cfg)?, path, failures)
            }
        });
    }
    let mut src: Box<dyn Read + Send> = if path == Path::new("-") {
        Box::new(std::io::stdin())
    } else {
        Box::new(File::open(path).map_err(open_err)?)
    };
    let head = match format {
        InputFormat::Auto => fill(&mut *src, STREAM_PEEK_LEN).map_err(open_err)?,
        _ => Vec::new(),
    };
    let format = match format {
        InputFormat::Auto if capture::looks_like_capture(&head) => InputFormat::Pcap,
        f => f,
    };
    let src: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(head).chain(src));
    let src: Box<dyn Read + Send> = match bytes {
        Some(count) => Box::new(count.wrap(src)),
        None => src,
    };
    Ok(match format {
        InputFormat::Pcap => pcap_watched(
            capture::open_reader(src, path, capture_cfg)?,
            path,
            failures,
        ),
        InputFormat::Observations => observations(src, path, failures),
        InputFormat::Log(f) => log_watched(
            ingest::open_reader(src, path, Some(f), ingest_cfg)?,
            path,
            failures,
        ),
        InputFormat::Auto => log_watched(
            ingest::open_reader(src, path, None, ingest_cfg)?,
            path,
            failures,
        ),
    })
}

/// Where (byte offset, when known) and why an input ended early.
type EarlyEnd = (Option<u64>, String);

/// Passes observations through; when the inner iterator ends, asks `probe` whether it ended
/// early and records that.
struct Watched<I> {
    inner: I,
    probe: fn(&I) -> Option<EarlyEnd>,
    path: PathBuf,
    failures: ReadFailures,
    done: bool,
}

impl<I: Iterator<Item = Observation>> Iterator for Watched<I> {
    type Item = Observation;
    #[inline]
    fn next(&mut self) -> Option<Observation> {
        let next = self.inner.next();
        if next.is_none() && !self.done {
            self.done = true;
            if let Some((offset, message)) = (self.probe)(&self.inner) {
                self.failures.push(ReadFailure {
                    path: self.path.clone(),
                    offset,
                    line: None,
                    message,
                });
            }
        }
        next
    }
}

fn pcap_watched(r: capture::PcapReader, path: &Path, failures: &ReadFailures) -> Observations {
    Box::new(Watched {
        inner: r,
        probe: |r: &capture::PcapReader| r.error().map(|e| (Some(e.offset), e.kind.to_string())),
        path: path.to_path_buf(),
        failures: failures.clone(),
        done: false,
    })
}

fn log_watched(r: ingest::LogReader, path: &Path, failures: &ReadFailures) -> Observations {
    Box::new(Watched {
        inner: r,
        probe: |r: &ingest::LogReader| r.read_error().map(|(o, m)| (Some(o), m.to_string())),
        path: path.to_path_buf(),
        failures: failures.clone(),
        done: false,
    })
}

/// Longest observation line accepted when replaying JSON lines: an observation carries at most
/// two 512-byte payload prefixes (hex) and a few hundred answers, far below this. Longer lines
/// are skipped and counted (`poolwatch_input_lines_skipped_total{reason="too_long"}`), with
/// reading resuming at the next newline: the reader's memory is this plus one read chunk.
pub const MAX_OBSERVATION_LINE: usize = 1 << 20;

/// Streams JSON-lines observations. A malformed line stops this input and is reported as a
/// [`ReadFailure`] naming the line: replay input is produced by poolwatch itself, so damage
/// should be loud rather than silently skipped.
fn observations(src: Box<dyn Read + Send>, path: &Path, failures: &ReadFailures) -> Observations {
    Box::new(ObservationLines {
        lines: BoundedLines::new(src, MAX_OBSERVATION_LINE),
        path: path.to_path_buf(),
        failures: failures.clone(),
        done: false,
        long_lines: long_lines_counter("observations"),
    })
}

fn long_lines_counter(input: &'static str) -> crate::metrics::Counter {
    crate::metrics::counter(
        "poolwatch_input_lines_skipped_total",
        "Input lines skipped outside the log parsers, by input and reason.",
        &[("input", input), ("reason", "too_long")],
    )
}

struct ObservationLines {
    lines: BoundedLines<Box<dyn Read + Send>>,
    path: PathBuf,
    failures: ReadFailures,
    done: bool,
    long_lines: crate::metrics::Counter,
}

impl ObservationLines {
    fn fail(&mut self, offset: Option<u64>, line: Option<u64>, message: String) {
        self.done = true;
        self.failures.push(ReadFailure {
            path: self.path.clone(),
            offset,
            line,
            message,
        });
    }
}

enum Step {
    End,
    Blank,
    Obs(Box<Observation>),
    Io(std::io::Error),
    Bad {
        line: u64,
        offset: u64,
        message: String,
    },
}

impl Iterator for ObservationLines {
    type Item = Observation;
    fn next(&mut self) -> Option<Observation> {
        while !self.done {
            let before = self.lines.skipped();
            let step = match self.lines.next_line() {
                Ok(None) => Step::End,
                Err(e) => Step::Io(e),
                Ok(Some(l)) if l.bytes.iter().all(u8::is_ascii_whitespace) => Step::Blank,
                Ok(Some(l)) => match serde_json::from_slice::<Observation>(l.bytes) {
                    Ok(o) => Step::Obs(Box::new(o)),
                    Err(e) => Step::Bad {
                        line: l.number,
                        offset: l.offset,
                        message: e.to_string(),
                    },
                },
            };
            let skipped = self.lines.skipped() - before;
            if skipped > 0 {
                self.long_lines.add(skipped);
                tracing::warn!(path = %self.path.display(), max = MAX_OBSERVATION_LINE, "observation line too long: skipped");
            }
            match step {
                Step::End => self.done = true,
                Step::Blank => {}
                Step::Obs(o) => return Some(*o),
                Step::Io(e) => {
                    let at = self.lines.offset();
                    self.fail(Some(at), None, e.to_string());
                }
                Step::Bad {
                    line,
                    offset,
                    message,
                } => {
                    self.fail(
                        Some(offset),
                        Some(line),
                        format!("not an observation: {message}"),
                    );
                }
            }
        }
        None
    }
}

/// Parses JSON-lines observations from memory (the fuzz target and tests): every line that is
/// one, in order; the first malformed line ends it, as in replay.
pub fn parse_observation_lines(data: &[u8]) -> (Vec<Observation>, Option<ReadFailure>) {
    let failures = ReadFailures::new();
    let src: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(data.to_vec()));
    let obs: Vec<Observation> = observations(src, Path::new("-"), &failures).collect();
    (obs, failures.take().into_iter().next())
}

/// One line handed out by [`BoundedLines`].
pub struct Line<'a> {
    /// Without its `\n` (and a `\r` before it).
    pub bytes: &'a [u8],
    /// 1-based line number in the input (over-long lines count too).
    pub number: u64,
    /// Byte offset of the line's start.
    pub offset: u64,
}

/// Bytes asked of the source per read.
const LINE_READ_CHUNK: usize = 64 * 1024;

/// Splits a byte stream into lines of at most `max` bytes without ever holding more than
/// `max` + one read chunk: a longer line is skipped (counted in [`BoundedLines::skipped`]) and
/// reading resumes after its newline. Never `read_line` into an unbounded buffer.
pub struct BoundedLines<R> {
    src: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max: usize,
    skipping: bool,
    eof: bool,
    /// Input offset of `buf[start]`.
    offset: u64,
    line_no: u64,
    skipped: u64,
}

impl<R: Read> BoundedLines<R> {
    pub fn new(src: R, max: usize) -> Self {
        let max = max.max(1);
        BoundedLines {
            src,
            buf: vec![0; max + LINE_READ_CHUNK],
            start: 0,
            end: 0,
            max,
            skipping: false,
            eof: false,
            offset: 0,
            line_no: 0,
            skipped: 0,
        }
    }

    /// Lines longer than the maximum skipped so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Input offset of the next unread line.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next line within the limit; `Ok(None)` at end of input. A final line without a
    /// newline is handed out too.
    pub fn next_line(&mut self) -> std::io::Result<Option<Line<'_>>> {
        loop {
            let window = self.buf.get(self.start..self.end).unwrap_or_default();
            if let Some(i) = memchr::memchr(b'\n', window) {
                let (from, at) = (self.start, self.offset);
                self.start += i + 1;
                self.offset += i as u64 + 1;
                if self.skipping {
                    self.skipping = false;
                    continue;
                }
                self.line_no += 1;
                if i > self.max {
                    self.skipped += 1;
                    continue;
                }
                return Ok(Some(self.line(from, i, at)));
            }
            let pending = self.end - self.start;
            if pending > self.max {
                // No newline within the limit: drop what is buffered, then the rest of the line.
                if !self.skipping {
                    self.skipping = true;
                    self.line_no += 1;
                    self.skipped += 1;
                }
                self.offset += pending as u64;
                self.start = self.end;
                continue;
            }
            if self.eof {
                if pending == 0 || self.skipping {
                    self.offset += pending as u64;
                    self.start = self.end;
                    return Ok(None);
                }
                let (from, at) = (self.start, self.offset);
                self.start = self.end;
                self.offset += pending as u64;
                self.line_no += 1;
                return Ok(Some(self.line(from, pending, at)));
            }
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            let space = self.buf.get_mut(self.end..).unwrap_or_default();
            match self.src.read(space) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn line(&self, from: usize, len: usize, offset: u64) -> Line<'_> {
        let bytes = self.buf.get(from..from + len).unwrap_or_default();
        Line {
            bytes: bytes.strip_suffix(b"\r").unwrap_or(bytes),
            number: self.line_no,
            offset,
        }
    }
}

/// Merges inputs into one stream ordered by `Observation::ts()`: a k-way merge in which each
/// input keeps its own order and ties go to the earlier input. One input is passed through as
/// it is (no heap on the per-observation path).
pub fn merge_by_time(mut readers: Vec<Observations>) -> Observations {
    if readers.len() == 1 {
        if let Some(r) = readers.pop() {
            return r;
        }
    }
    Box::new(Merge::new(readers))
}

struct Merge {
    readers: Vec<Observations>,
    heap: BinaryHeap<Reverse<(Timestamp, usize, u64)>>,
    heads: Vec<Option<Observation>>,
    seq: u64,
}

impl Merge {
    fn new(mut readers: Vec<Observations>) -> Self {
        let mut heap = BinaryHeap::new();
        let mut heads = Vec::with_capacity(readers.len());
        let mut seq = 0;
        for (i, r) in readers.iter_mut().enumerate() {
            let h = r.next();
            if let Some(o) = &h {
                heap.push(Reverse((o.ts(), i, seq)));
                seq += 1;
            }
            heads.push(h);
        }
        Merge {
            readers,
            heap,
            heads,
            seq,
        }
    }
}

impl Iterator for Merge {
    type Item = Observation;
    fn next(&mut self) -> Option<Observation> {
        let Reverse((_, i, _)) = self.heap.pop()?;
        let obs = self.heads.get_mut(i)?.take()?;
        let next = self.readers.get_mut(i).and_then(|r| r.next());
        if let Some(o) = &next {
            self.heap.push(Reverse((o.ts(), i, self.seq)));
            self.seq += 1;
        }
        if let Some(slot) = self.heads.get_mut(i) {
            *slot = next;
        }
        Some(obs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DnsObservation, RrType, Source, Transport};

    fn obs(ts: i64, name: &str) -> Observation {
        Observation::Dns(DnsObservation {
            ts: Timestamp(ts),
            client: "192.0.2.1".parse().unwrap(),
            client_port: None,
            server: None,
            server_port: None,
            transport: Transport::Udp,
            id: None,
            qname: name.into(),
            qtype: RrType::A,
            rcode: None,
            answers: vec![],
            answers_known: true,
            query_seen: true,
            rtt_us: None,
            truncated: false,
            salvaged: None,
            source: Source::new("test"),
        })
    }

    fn names(o: Observations) -> Vec<String> {
        o.map(|o| match o {
            Observation::Dns(d) => d.qname,
            Observation::Flow(_) => String::new(),
        })
        .collect()
    }

    #[test]
    fn bounded_lines_skip_and_count_long_lines_and_keep_offsets() {
        let data = b"ab\r\n0123456789abc\n\nxyz\n0123456789\ntail".to_vec();
        let mut r = BoundedLines::new(std::io::Cursor::new(data), 10);
        let mut got = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            got.push((
                String::from_utf8_lossy(l.bytes).into_owned(),
                l.number,
                l.offset,
            ));
        }
        assert_eq!(
            got,
            [
                ("ab".to_string(), 1, 0),
                (String::new(), 3, 18),
                ("xyz".to_string(), 4, 19),
                ("0123456789".to_string(), 5, 23),
                ("tail".to_string(), 6, 34),
            ]
        );
        assert_eq!(r.skipped(), 1);
        // A newline-free stream far larger than the cap: skipped, never buffered whole.
        struct Endless(u64);
        impl Read for Endless {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Ok(0);
                }
                let n = buf.len().min(self.0 as usize);
                buf[..n].fill(b'x');
                self.0 -= n as u64;
                Ok(n)
            }
        }
        let mut r = BoundedLines::new(Endless(50 << 20), 4096);
        assert!(r.next_line().unwrap().is_none());
        assert_eq!(r.skipped(), 1);
        assert!(r.buf.len() <= 4096 + LINE_READ_CHUNK);
        assert_eq!(r.offset(), 50 << 20);
    }

    #[test]
    fn observation_lines_stop_at_a_malformed_line_naming_it() {
        let good = serde_json::to_string(&obs(7, "pool.example")).unwrap();
        let data = format!("{good}\n\n{good}\nnot json\n{good}\n");
        let (v, fail) = parse_observation_lines(data.as_bytes());
        assert_eq!(v.len(), 2);
        let f = fail.unwrap();
        assert_eq!(f.line, Some(4));
        assert_eq!(f.offset, Some(2 * good.len() as u64 + 3));
        assert!(f.to_string().starts_with("-:4: input ended early at byte"));
    }

    #[test]
    fn merge_orders_by_time_keeping_each_input_order_and_ties_to_the_first() {
        let a: Observations = Box::new(vec![obs(1, "a1"), obs(5, "a5"), obs(5, "a5b")].into_iter());
        let b: Observations = Box::new(vec![obs(0, "b0"), obs(5, "b5"), obs(9, "b9")].into_iter());
        let c: Observations = Box::new(Vec::new().into_iter());
        assert_eq!(
            names(merge_by_time(vec![a, b, c])),
            ["b0", "a1", "a5", "a5b", "b5", "b9"]
        );
        // An input out of order is not reordered internally (it is trusted to be roughly sorted).
        let d: Observations = Box::new(vec![obs(3, "d3"), obs(2, "d2")].into_iter());
        assert_eq!(names(merge_by_time(vec![d])), ["d3", "d2"]);
        assert!(names(merge_by_time(Vec::new())).is_empty());
    }
}
