//! Capture files through libpcap (pcap and pcapng, any byte order, µs or ns timestamps).

use std::collections::VecDeque;
use std::path::Path;

use super::{CaptureConfig, CaptureError, CaptureStats, Decoder};
use crate::model::{Observation, Source};

/// Observations decoded from one capture file, produced lazily as the iterator is advanced.
pub struct PcapReader {
    cap: Option<pcap::Capture<pcap::Offline>>,
    linktype: i32,
    decoder: Decoder,
    queue: VecDeque<Observation>,
    finished: bool,
}

impl PcapReader {
    pub(crate) fn open(path: &Path, cfg: &CaptureConfig) -> Result<Self, CaptureError> {
        let open_err = |message: String| CaptureError::Open {
            path: path.to_path_buf(),
            message,
        };
        let cap = if path == Path::new("-") {
            // libpcap reads a FILE*; give it its own descriptor so closing it leaves our stdin.
            // SAFETY: `dup` returns a fresh descriptor (or -1, checked) that nothing else owns;
            // `from_raw_fd` takes sole ownership of it.
            let fd = unsafe { libc::dup(0) };
            if fd < 0 {
                return Err(open_err(std::io::Error::last_os_error().to_string()));
            }
            unsafe { pcap::Capture::from_raw_fd(fd) }.map_err(|e| open_err(e.to_string()))?
        } else {
            pcap::Capture::from_file(path).map_err(|e| open_err(e.to_string()))?
        };
        let linktype = cap.get_datalink().0;
        if !super::link::supported(linktype) {
            tracing::warn!(path = %path.display(), linktype, "unsupported link type: packets will be counted, not decoded");
        }
        let name = if path == Path::new("-") {
            "-".to_string()
        } else {
            path.display().to_string()
        };
        Ok(PcapReader {
            cap: Some(cap),
            linktype,
            decoder: Decoder::new(cfg, Source::pcap(&name)),
            queue: VecDeque::new(),
            finished: false,
        })
    }

    /// Counters so far (complete once the iterator has returned `None`).
    pub fn stats(&self) -> CaptureStats {
        self.decoder.stats()
    }

    /// The file's libpcap link type.
    pub fn linktype(&self) -> i32 {
        self.linktype
    }

    fn finish(&mut self) {
        self.finished = true;
        self.cap = None;
        self.decoder.finish(&mut self.queue);
    }
}

impl Iterator for PcapReader {
    type Item = Observation;

    fn next(&mut self) -> Option<Observation> {
        loop {
            if let Some(o) = self.queue.pop_front() {
                return Some(o);
            }
            if self.finished {
                return None;
            }
            let Some(cap) = self.cap.as_mut() else {
                self.finish();
                continue;
            };
            match cap.next_packet() {
                Ok(p) => {
                    let ts = super::timeval_us(&p.header.ts);
                    self.decoder
                        .packet(ts, self.linktype, p.data, &mut self.queue);
                }
                Err(pcap::Error::NoMorePackets) => self.finish(),
                Err(e) => {
                    // A truncated or damaged file: keep what was read, say why it stopped.
                    tracing::warn!(error = %e, "capture file ended early");
                    self.decoder.stats_error("capture_read_error");
                    self.finish();
                }
            }
        }
    }
}
