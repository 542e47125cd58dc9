//! Byte counting for `scan`'s progress bar: a reader around the opened file or stream that adds
//! what it hands out to a shared count. Kept at the outermost edge: the decoders in
//! `capture`/`ingest` see an ordinary `Read`.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{
    log_watched, observations, pcap_watched, read_head, InputError, InputFormat, Observations,
    ReadFailures,
};
use crate::capture::{self, CaptureConfig};
use crate::ingest::{self, IngestConfig, LogFormat};
use crate::model::Timestamp;

/// Bytes read so far from the inputs opened with [`super::open_counting`] (shared by their readers).
#[derive(Clone, Debug, Default)]
pub struct ByteCount {
    read: Arc<AtomicU64>,
    uncounted: Arc<AtomicU64>,
}

impl ByteCount {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes read so far, all inputs together.
    pub fn read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// Forgets what was read (the one input read again from its start).
    pub fn reset(&self) {
        self.read.store(0, Ordering::Relaxed);
    }

    /// Bytes of regular files that are read without being counted (dnstap files).
    pub fn uncounted(&self) -> u64 {
        self.uncounted.load(Ordering::Relaxed)
    }

    pub(super) fn wrap<R: Read>(&self, inner: R) -> Counting<R> {
        Counting {
            inner,
            read: Arc::clone(&self.read),
        }
    }
}

/// A reader that adds every byte it hands out to a shared count.
pub(super) struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A regular file opened through a [`Counting`] reader: the same readers [`super::open_reporting`]
/// uses (`capture::open_file` is `open_reader` over the `File`; a log file's modification
/// time is its reference for year-less timestamps, as `ingest::open_file` does).
pub(super) fn open_file_counted(
    path: &Path,
    format: InputFormat,
    capture_cfg: &CaptureConfig,
    ingest_cfg: &IngestConfig,
    failures: &ReadFailures,
    count: &ByteCount,
) -> Result<Observations, InputError> {
    let open_err = |source: std::io::Error| InputError::Open {
        path: path.to_path_buf(),
        source,
    };
    let format = match format {
        InputFormat::Auto if capture::looks_like_capture(&read_head(path)?) => InputFormat::Pcap,
        f => f,
    };
    let file = File::open(path).map_err(open_err)?;
    let meta = file.metadata().map_err(open_err)?;
    let log = match format {
        InputFormat::Pcap => {
            let src: Box<dyn Read + Send> = Box::new(count.wrap(file));
            let r = capture::open_reader(src, path, capture_cfg)?;
            return Ok(pcap_watched(r, path, failures));
        }
        InputFormat::Observations => {
            return Ok(observations(Box::new(count.wrap(file)), path, failures));
        }
        InputFormat::Log(f) => Some(f),
        InputFormat::Auto => None,
    };
    let r = open_log_counted(path, file, &meta, log, ingest_cfg, count)?;
    Ok(log_watched(r, path, failures))
}

/// A regular log file (or one sniffed as dnstap, opened by path) through a [`Counting`]
/// reader.
fn open_log_counted(
    path: &Path,
    file: File,
    meta: &std::fs::Metadata,
    log: Option<LogFormat>,
    ingest_cfg: &IngestConfig,
    count: &ByteCount,
) -> Result<ingest::LogReader, InputError> {
    let uncounted = |count: &ByteCount| {
        count.uncounted.fetch_add(meta.len(), Ordering::Relaxed);
    };
    if log == Some(LogFormat::Dnstap) {
        uncounted(count);
        return Ok(ingest::open_file(path, log, ingest_cfg)?);
    }
    let mut cfg = ingest_cfg.clone();
    if cfg.reference.is_none() {
        cfg.reference = meta
            .modified()
            .ok()
            .and_then(|m| m.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| Timestamp::from_micros(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)));
    }
    let before = count.read();
    let src: Box<dyn Read + Send> = Box::new(count.wrap(file));
    match ingest::open_reader(src, path, log, &cfg) {
        Ok(r) => Ok(r),
        // Sniffed as dnstap, which its own reader opens by path: take back the peeked bytes.
        Err(ingest::IngestError::NotFromStdin { .. }) => {
            count
                .read
                .fetch_sub(count.read().saturating_sub(before), Ordering::Relaxed);
            uncounted(count);
            Ok(ingest::open_file(path, log, ingest_cfg)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// A log file opened for `scan`'s exact log pre-filter (issue #16): the reader itself, so the
/// caller can read it into its correlation stage ([`ingest::LogReader::drain_into`]), with the
/// same byte counting and early-end reporting as [`super::open_counting`] gives.
pub struct FastLog {
    reader: ingest::LogReader,
    path: std::path::PathBuf,
    failures: ReadFailures,
}

impl FastLog {
    /// Reads the whole log into `sink`; an input that stopped early is reported to the
    /// [`ReadFailures`] like any other.
    pub fn drain_into(&mut self, sink: &mut dyn ingest::LogSink) {
        self.reader.drain_into(sink);
        if let Some((offset, message)) = self.reader.read_error() {
            self.failures.push(super::ReadFailure {
                path: self.path.clone(),
                offset: Some(offset),
                line: None,
                message: message.to_string(),
            });
        }
    }
}

/// Opens `path` for the log pre-filter when it is a regular file read as a log (`--format`
/// a log format, or `auto` and it does not sniff as a capture); `None` for anything else (the
/// caller opens it with [`super::open_counting`]).
pub fn open_log_counting(
    path: &Path,
    format: InputFormat,
    ingest_cfg: &IngestConfig,
    failures: &ReadFailures,
    count: &ByteCount,
) -> Result<Option<FastLog>, InputError> {
    if super::is_stream(path)? {
        return Ok(None);
    }
    let log = match format {
        InputFormat::Log(f) => Some(f),
        InputFormat::Auto if !capture::looks_like_capture(&read_head(path)?) => None,
        _ => return Ok(None),
    };
    let open_err = |source: std::io::Error| InputError::Open {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(open_err)?;
    let meta = file.metadata().map_err(open_err)?;
    let reader = open_log_counted(path, file, &meta, log, ingest_cfg, count)?;
    Ok(Some(FastLog {
        reader,
        path: path.to_path_buf(),
        failures: failures.clone(),
    }))
}

/// A capture file opened for `scan`'s packet fast path (issue #16): the reader itself, so the
/// caller can pass its correlation stage to [`capture::PcapReader::next_fast`], with the same
/// byte counting and early-end reporting as the boxed reader [`super::open_counting`] gives.
pub struct FastCapture {
    reader: capture::PcapReader,
    path: std::path::PathBuf,
    failures: ReadFailures,
    done: bool,
}

impl FastCapture {
    /// The next observation (see [`capture::PcapReader::next_fast`]); at the end, an input
    /// that stopped early is reported to the [`ReadFailures`] like any other.
    pub fn next_fast(
        &mut self,
        interest: &mut dyn capture::DnsInterest,
    ) -> Option<crate::model::Observation> {
        let next = self.reader.next_fast(interest);
        // A refused skip ends the threaded reader early: not a failure of the input (`scan`
        // reads it again on one thread).
        if next.is_none() && !self.done && !self.reader.mispredicted() {
            self.done = true;
            if let Some(e) = self.reader.error() {
                self.failures.push(super::ReadFailure {
                    path: self.path.clone(),
                    offset: Some(e.offset),
                    line: None,
                    message: e.kind.to_string(),
                });
            }
        }
        next
    }

    /// The capture counters (complete once [`FastCapture::next_fast`] returned `None`).
    pub fn stats(&self) -> capture::CaptureStats {
        self.reader.stats()
    }

    /// Decodes the file on `workers` fast-path threads (`scan --threads`, see
    /// [`capture::PcapReader::start_fast_threads`]); `false` when it was too late.
    pub fn start_threads(
        &mut self,
        cfg: &CaptureConfig,
        workers: usize,
        names: Arc<dyn capture::ListedNames>,
    ) -> std::io::Result<bool> {
        self.reader.start_fast_threads(cfg, workers, names)
    }

    /// Whether the threads stopped on a skip the consumer refused: what was read is not the
    /// capture's stream, and the caller reads the file again on one thread.
    pub fn mispredicted(&self) -> bool {
        self.reader.mispredicted()
    }

    /// See [`capture::PcapReader::bound_overflows`].
    pub fn bound_overflows(&self) -> u64 {
        self.reader.bound_overflows()
    }
}

/// Opens `path` for the fast path when it is a regular file read as a capture (`--format
/// pcap`, or `auto` and it sniffs as pcap/pcapng); `None` for anything else (the caller opens
/// it with [`super::open_counting`]).
pub fn open_capture_counting(
    path: &Path,
    format: InputFormat,
    capture_cfg: &CaptureConfig,
    failures: &ReadFailures,
    count: &ByteCount,
) -> Result<Option<FastCapture>, InputError> {
    if super::is_stream(path)? {
        return Ok(None);
    }
    let capture = match format {
        InputFormat::Pcap => true,
        InputFormat::Auto => capture::looks_like_capture(&read_head(path)?),
        _ => false,
    };
    if !capture {
        return Ok(None);
    }
    let file = File::open(path).map_err(|source| InputError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let src: Box<dyn Read + Send> = Box::new(count.wrap(file));
    let reader = capture::open_reader(src, path, capture_cfg)?;
    Ok(Some(FastCapture {
        reader,
        path: path.to_path_buf(),
        failures: failures.clone(),
        done: false,
    }))
}
