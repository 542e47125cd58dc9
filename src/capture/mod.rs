//! Stage `capture` (FOUNDATION STUB: the packet-input issue replaces this file's body, keeping
//! the entry points `CaptureConfig`, `CaptureError`, `open_file`, `looks_like_capture`).

use std::path::{Path, PathBuf};

use crate::model::Observation;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    #[error("cannot open capture {path}: {message}")]
    Open { path: PathBuf, message: String },
}

#[derive(Debug, Clone, Default)]
pub struct CaptureConfig {
    pub dns_ports: Vec<u16>,
}

/// Observations decoded from one capture file.
pub struct PcapReader {}

impl Iterator for PcapReader {
    type Item = Observation;
    fn next(&mut self) -> Option<Observation> {
        None
    }
}

pub fn open_file(path: &Path, _cfg: &CaptureConfig) -> Result<PcapReader, CaptureError> {
    Err(CaptureError::Open {
        path: path.to_path_buf(),
        message: "packet input is not built yet".into(),
    })
}

/// pcap (either byte order, µs or ns) or pcapng magic.
pub fn looks_like_capture(head: &[u8]) -> bool {
    matches!(
        head.get(..4),
        Some([0xd4, 0xc3, 0xb2, 0xa1])
            | Some([0xa1, 0xb2, 0xc3, 0xd4])
            | Some([0x4d, 0x3c, 0xb2, 0xa1])
            | Some([0xa1, 0xb2, 0x3c, 0x4d])
            | Some([0x0a, 0x0d, 0x0d, 0x0a])
    )
}
