//! Capture files (pcap and pcapng) through the streaming [`Savefile`] reader: regular files,
//! standard input, FIFOs and process substitution alike (nothing here seeks). Live capture
//! stays on libpcap (`live.rs`). With `CaptureConfig::threads` > 1 the frames are decoded by
//! worker threads (`parallel.rs`), the observations still in capture order.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use super::flows::FINISH_BATCH;
use super::parallel::Parallel;
use super::parallel_fast::{ListedNames, ParallelFast};
use super::savefile::{Savefile, SavefileError};
use super::txn::{DnsInterest, Fast};
use super::{CaptureConfig, CaptureError, CaptureStats, Decoder};
use crate::model::{Observation, Source};

/// Observations decoded from one capture file, produced lazily as the iterator is advanced.
///
/// When the input stops early (cut inside a record, a damaged block, a read error) the
/// iterator still ends normally, with what was read; [`PcapReader::error`] then says why and at
/// which byte. Callers that report results must check it: "no detections" must never stand for
/// "could not read".
pub struct PcapReader {
    file: Option<Savefile>,
    linktype: i32,
    /// Link types already warned about as unsupported (one warning each, not one per packet).
    warned: Vec<i32>,
    decoder: Decoder,
    queue: VecDeque<Observation>,
    finished: bool,
    error: Option<SavefileError>,
    name: String,
    /// `CaptureConfig::threads` > 1: the frames are decoded by worker threads instead.
    parallel: Option<Parallel>,
    /// [`PcapReader::start_fast_threads`]: decoded by fast-path worker threads instead.
    parallel_fast: Option<ParallelFast>,
}

impl PcapReader {
    pub(crate) fn open(path: &Path, cfg: &CaptureConfig) -> Result<Self, CaptureError> {
        let src: Box<dyn Read + Send> = if path == Path::new("-") {
            Box::new(std::io::stdin())
        } else {
            let f = File::open(path).map_err(|e| CaptureError::Open {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
            Box::new(f)
        };
        Self::from_reader(src, path, cfg)
    }

    /// A reader over an already opened stream (`path` names it in messages and sources).
    pub fn from_reader(
        src: Box<dyn Read + Send>,
        path: &Path,
        cfg: &CaptureConfig,
    ) -> Result<Self, CaptureError> {
        let file = Savefile::new(src).map_err(|e| CaptureError::Open {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let name = path.display().to_string();
        let linktype = file.linktype().unwrap_or(-1);
        let (file, parallel) = if cfg.threads > 1 {
            // The consumer (correlation, in `scan`) is one of the threads: the others decode.
            let workers = cfg.threads - 1;
            let p = Parallel::start(file, cfg, Source::pcap(&name), workers, name.clone())
                .map_err(|e| CaptureError::Open {
                    path: path.to_path_buf(),
                    message: format!("cannot start the decoder threads: {e}"),
                })?;
            (None, Some(p))
        } else {
            (Some(file), None)
        };
        Ok(PcapReader {
            linktype,
            file,
            warned: Vec::new(),
            decoder: Decoder::new(cfg, Source::pcap(&name)),
            queue: VecDeque::new(),
            finished: false,
            error: None,
            name,
            parallel,
            parallel_fast: None,
        })
    }

    /// Hands the rest of the file to `workers` fast-path decoder threads
    /// (`parallel_fast`, `scan --threads`): [`PcapReader::next_fast`] then merges their
    /// results and checks their skips with its `interest`. `names` answers the list questions
    /// on the workers; `cfg` gives the caps they share. Only before the first frame is read,
    /// on a reader opened with one thread (otherwise it changes nothing and says so).
    pub fn start_fast_threads(
        &mut self,
        cfg: &CaptureConfig,
        workers: usize,
        names: Arc<dyn ListedNames>,
    ) -> std::io::Result<bool> {
        if self.parallel.is_some()
            || self.parallel_fast.is_some()
            || self.decoder.stats().packets > 0
        {
            return Ok(false);
        }
        let Some(file) = self.file.take() else {
            return Ok(false);
        };
        let source = Source::pcap(&self.name);
        let p = ParallelFast::start(file, cfg, source, workers, names, self.name.clone())?;
        self.parallel_fast = Some(p);
        Ok(true)
    }

    /// Whether the fast-path threads stopped because the consumer refused one of their skips
    /// (`parallel_fast`): the observations returned are not the capture's, read it again on
    /// one thread.
    pub fn mispredicted(&self) -> bool {
        self.parallel_fast
            .as_ref()
            .is_some_and(|p| p.mispredicted())
    }

    /// Fast-path threads whose table of bound addresses overflowed (`parallel_fast::MAX_BOUND_IPS`).
    pub fn bound_overflows(&self) -> u64 {
        self.parallel_fast
            .as_ref()
            .map_or(0, |p| p.bound_overflows())
    }

    /// Counters so far (complete once the iterator has returned `None`).
    pub fn stats(&self) -> CaptureStats {
        if let Some(p) = &self.parallel_fast {
            return p.stats();
        }
        match &self.parallel {
            Some(p) => p.stats(),
            None => self.decoder.stats(),
        }
    }

    /// The link type of a pcap file, or of the first interface of a pcapng file (each pcapng
    /// interface keeps its own; -1 before the first one is described).
    pub fn linktype(&self) -> i32 {
        self.linktype
    }

    /// Why reading stopped before the end of the input, if it did (byte offset included).
    pub fn error(&self) -> Option<&SavefileError> {
        if let Some(p) = &self.parallel_fast {
            return p.error();
        }
        match &self.parallel {
            Some(p) => p.error(),
            None => self.error.as_ref(),
        }
    }

    /// End of input, one step: the next batch of the decoder's final reports
    /// ([`FINISH_BATCH`] at most, so the queue never holds whole tables); `finished` once the
    /// last is queued. Called again while the queue is empty and `file` is gone.
    fn finish(&mut self, fast: Fast<'_, '_>) {
        self.file = None;
        self.finished = self
            .decoder
            .finish_some(&mut self.queue, fast, FINISH_BATCH);
    }

    /// The next observation, with the DNS fast path (issue #16, `txn::DnsInterest`): DNS
    /// messages that cannot matter to `interest` are handed to it as skipped, in their place
    /// between the observations returned. The caller must have handed every observation
    /// returned so far to the same consumer `interest` asks. With fast-path threads
    /// ([`PcapReader::start_fast_threads`]) the workers answer the list questions and
    /// `interest` is asked only whether the answers of each skipped response matter; with
    /// decoder threads (`CaptureConfig::threads` > 1) there is no fast path: it is
    /// [`Iterator::next`].
    pub fn next_fast(&mut self, interest: &mut dyn DnsInterest) -> Option<Observation> {
        if let Some(p) = self.parallel_fast.as_mut() {
            return p.next_fast(interest);
        }
        self.next_with(Some(interest))
    }

    fn next_with(&mut self, mut fast: Fast<'_, '_>) -> Option<Observation> {
        if let Some(p) = self.parallel_fast.as_mut() {
            // Plain iteration cannot take the workers' skips: it stops, and the reader
            // reports `mispredicted` (read it again on one thread).
            p.refuse();
            return None;
        }
        if let Some(p) = self.parallel.as_mut() {
            return p.next();
        }
        loop {
            if let Some(o) = self.queue.pop_front() {
                return Some(o);
            }
            if self.finished {
                return None;
            }
            let Some(file) = self.file.as_mut() else {
                self.finish(fast.as_deref_mut());
                continue;
            };
            let mut unsupported = None;
            match file.next_frame() {
                Ok(Some(f)) => {
                    if self.linktype == -1 {
                        self.linktype = f.linktype;
                    }
                    if !super::link::supported(f.linktype) {
                        unsupported = Some(f.linktype);
                    }
                    match fast.as_deref_mut() {
                        Some(i) => self.decoder.packet_fast(
                            f.ts_us,
                            f.linktype,
                            f.data,
                            &mut self.queue,
                            i,
                        ),
                        None => self
                            .decoder
                            .packet(f.ts_us, f.linktype, f.data, &mut self.queue),
                    }
                }
                Ok(None) => self.finish(fast.as_deref_mut()),
                Err(e) => {
                    // Keep what was read; say why and where it stopped.
                    tracing::warn!(path = %self.name, error = %e, "capture file ended early");
                    self.decoder.stats_error("capture_read_error");
                    self.error = Some(e);
                    self.finish(fast.as_deref_mut());
                }
            }
            if let Some(lt) = unsupported {
                self.warn_linktype(lt);
            }
        }
    }

    fn warn_linktype(&mut self, linktype: i32) {
        if !self.warned.contains(&linktype) && self.warned.len() < 64 {
            self.warned.push(linktype);
            tracing::warn!(path = %self.name, linktype, "unsupported link type: packets will be counted, not decoded");
        }
    }
}

impl Iterator for PcapReader {
    type Item = Observation;

    fn next(&mut self) -> Option<Observation> {
        self.next_with(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic pcap (Ethernet) of `frames`, one microsecond apart.
    fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut b = Vec::new();
        // Magic, version 2.4, zone, sigfigs, snaplen, Ethernet.
        for x in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65_535, 1] {
            b.extend_from_slice(&x.to_le_bytes());
        }
        for (i, f) in frames.iter().enumerate() {
            let len = u32::try_from(f.len()).unwrap_or(0);
            let usec = u32::try_from(i).unwrap_or(0);
            for x in [1_700_000_000u32, usec, len, len] {
                b.extend_from_slice(&x.to_le_bytes());
            }
            b.extend_from_slice(f);
        }
        b
    }

    /// Ethernet + IPv4 (no checksum) + `l4` of protocol `proto`.
    fn frame(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let total = u16::try_from(20 + l4.len()).unwrap_or(0);
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(l4);
        f
    }

    fn syn(sport: u16) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(&sport.to_be_bytes());
        t.extend_from_slice(&3333u16.to_be_bytes());
        t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
        frame([10, 1, 0, 1], [192, 0, 2, 7], 6, &t)
    }

    fn query(sport: u16) -> Vec<u8> {
        let mut dns = sport.to_be_bytes().to_vec();
        dns.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        dns.extend_from_slice(b"\x01q\x07example\x03com\x00\x00\x01\x00\x01");
        let mut u = Vec::new();
        u.extend_from_slice(&sport.to_be_bytes());
        u.extend_from_slice(&53u16.to_be_bytes());
        u.extend_from_slice(&u16::try_from(8 + dns.len()).unwrap_or(0).to_be_bytes());
        u.extend_from_slice(&[0, 0]);
        u.extend_from_slice(&dns);
        frame([10, 1, 0, 2], [192, 0, 2, 53], 17, &u)
    }

    /// Issue #11: at the end of input the reader's queue holds one batch of the final
    /// reports, not every pending query and open flow at once — and every one still comes out,
    /// queries first, then flows, oldest first.
    #[test]
    fn the_end_of_input_is_queued_in_bounded_batches() {
        let (flows, queries) = (2 * FINISH_BATCH + 300, FINISH_BATCH + 200);
        let mut frames: Vec<Vec<u8>> = (0..flows).map(|i| syn(10_000 + i as u16)).collect();
        frames.extend((0..queries).map(|i| query(20_000 + i as u16)));
        let bytes = pcap(&frames);
        let cfg = CaptureConfig {
            track_flows: true,
            ..CaptureConfig::default()
        };
        let src: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(bytes));
        let mut r = match PcapReader::from_reader(src, Path::new("batches.pcap"), &cfg) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        let (mut most, mut got) = (0usize, Vec::new());
        while let Some(o) = r.next() {
            most = most.max(r.queue.len() + 1);
            got.push(o);
        }
        assert!(r.error().is_none(), "{:?}", r.error());
        assert!(most <= FINISH_BATCH, "{most} observations queued at once");
        let (dns, flow): (Vec<_>, Vec<_>) =
            got.iter().partition(|o| matches!(o, Observation::Dns(_)));
        assert_eq!((dns.len(), flow.len()), (queries, flows));
        let first_flow = got
            .iter()
            .position(|o| matches!(o, Observation::Flow(_)))
            .unwrap_or(0);
        assert_eq!(first_flow, queries, "the pending queries come first");
        let ts: Vec<_> = got.iter().map(Observation::ts).collect();
        assert!(ts[..queries].is_sorted() && ts[queries..].is_sorted());
    }
}
