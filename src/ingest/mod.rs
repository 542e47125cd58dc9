//! Stage `ingest` (FOUNDATION STUB: the log-ingestion issue replaces this file's body, keeping
//! the entry points `LogFormat` (`parse`, `name`, `ALL`), `IngestConfig`, `IngestError`, `open_file`).

use std::path::{Path, PathBuf};

use crate::model::Observation;

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
