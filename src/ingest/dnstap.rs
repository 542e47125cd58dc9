//! dnstap input (FOUNDATION STUB: the dnstap/follow helper builds it, keeping `DnstapError`,
//! `looks_like_fstrm` and `open_file`).

use std::path::Path;

use crate::model::Observation;

use super::IngestConfig;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnstapError {
    #[error("dnstap input is not built yet")]
    NotBuilt,
}

/// Frame Streams files start with a zero-length escape and a control frame.
pub fn looks_like_fstrm(head: &[u8]) -> bool {
    head.starts_with(&[0, 0, 0, 0])
}

pub fn open_file(
    _path: &Path,
    _cfg: &IngestConfig,
) -> Result<Box<dyn Iterator<Item = Observation> + Send>, DnstapError> {
    Err(DnstapError::NotBuilt)
}
