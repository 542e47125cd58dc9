//! Stage `ingest` (FOUNDATION STUB: the log-ingestion issue replaces this file's body, keeping
//! the entry points `LogFormat` (`parse`, `name`, `ALL`), `IngestConfig`, `IngestError`, `open_file`).

use std::path::{Path, PathBuf};

use crate::model::{Observation, Source};

pub mod dnstap;
pub mod follow;

/// A per-file, stateful line parser (state: e.g. dnsmasq joins reply lines to their query).
pub trait LogParser: Send {
    /// Parses one line (without its line terminator); appends zero or more observations.
    /// Bad lines are counted and skipped, never fatal.
    fn parse_line(&mut self, line: &[u8], out: &mut Vec<Observation>);
    /// End of input (or a quiet period when following): emits what is still pending.
    fn flush(&mut self, out: &mut Vec<Observation>);
}

/// The parser for `format`; observations carry `source`.
pub fn parser_for(format: LogFormat, source: Source, _cfg: &IngestConfig) -> Box<dyn LogParser> {
    let _ = (format, source);
    unimplemented_parser()
}

fn unimplemented_parser() -> Box<dyn LogParser> {
    struct Nothing;
    impl LogParser for Nothing {
        fn parse_line(&mut self, _line: &[u8], _out: &mut Vec<Observation>) {}
        fn flush(&mut self, _out: &mut Vec<Observation>) {}
    }
    Box::new(Nothing)
}

/// Guesses the format of a log from its first bytes (a few lines).
pub fn detect_format(_head: &[u8]) -> Option<LogFormat> {
    None
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LogFormat {
    Bind,
}

impl LogFormat {
    pub const ALL: &'static [LogFormat] = &[LogFormat::Bind];
    pub fn name(self) -> &'static str {
        match self {
            LogFormat::Bind => "bind",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|f| f.name() == s)
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    #[error("cannot open log {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[error(transparent)]
    Dnstap(#[from] dnstap::DnstapError),
}

#[derive(Debug, Clone, Default)]
pub struct IngestConfig {}

pub struct LogReader {}

impl Iterator for LogReader {
    type Item = Observation;
    fn next(&mut self) -> Option<Observation> {
        None
    }
}

pub fn open_file(
    path: &Path,
    _format: Option<LogFormat>,
    _cfg: &IngestConfig,
) -> Result<LogReader, IngestError> {
    Err(IngestError::Open {
        path: path.to_path_buf(),
        message: "log input is not built yet".into(),
    })
}
