//! Opening an input file of any supported kind: a packet capture (handed to [`crate::capture`])
//! or a log (handed to [`crate::ingest`]), detected from its first bytes unless a format is given.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::capture::{self, CaptureConfig};
use crate::ingest::{self, IngestConfig, LogFormat};
use crate::model::{Observation, Timestamp};

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
    #[error("standard input cannot be sniffed: pass --format (pcap, or a log format)")]
    StdinNeedsFormat,
    #[error("cannot open {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: not an observation: {message}")]
    BadObservation {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error(transparent)]
    Capture(#[from] capture::CaptureError),
    #[error(transparent)]
    Ingest(#[from] ingest::IngestError),
}

/// Bytes read from the start of a file to decide what it is.
const SNIFF_LEN: usize = 64 * 1024;

/// An opened input, yielding observations in file order.
pub type Observations = Box<dyn Iterator<Item = Observation> + Send>;

/// Whether `path` holds a packet capture (pcap or pcapng magic).
pub fn is_capture(path: &Path) -> Result<bool, InputError> {
    let head = read_head(path)?;
    Ok(capture::looks_like_capture(&head))
}

fn read_head(path: &Path) -> Result<Vec<u8>, InputError> {
    if path == Path::new("-") {
        return Ok(Vec::new());
    }
    let mut f = File::open(path).map_err(|source| InputError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let mut buf = vec![0u8; SNIFF_LEN];
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(InputError::Open {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
    buf.truncate(n);
    Ok(buf)
}

/// Opens `path` as `format` (sniffed when `Auto`).
pub fn open(
    path: &Path,
    format: InputFormat,
    capture_cfg: &CaptureConfig,
    ingest_cfg: &IngestConfig,
) -> Result<Observations, InputError> {
    let format = match format {
        // Sniffing would consume bytes that libpcap (or the log reader) then never sees.
        InputFormat::Auto if path == Path::new("-") => return Err(InputError::StdinNeedsFormat),
        InputFormat::Auto => {
            let head = read_head(path)?;
            if capture::looks_like_capture(&head) {
                InputFormat::Pcap
            } else {
                InputFormat::Auto
            }
        }
        f => f,
    };
    match format {
        InputFormat::Pcap => Ok(Box::new(capture::open_file(path, capture_cfg)?)),
        InputFormat::Observations => open_observations(path),
        InputFormat::Log(f) => Ok(Box::new(ingest::open_file(path, Some(f), ingest_cfg)?)),
        InputFormat::Auto => Ok(Box::new(ingest::open_file(path, None, ingest_cfg)?)),
    }
}

/// Longest observation line accepted when replaying JSON lines.
const MAX_OBSERVATION_LINE: usize = 1 << 20;

/// Reads JSON-lines observations. A malformed line is an error naming the line: replay input is
/// produced by poolwatch itself, so damage should be loud rather than silently skipped.
fn open_observations(path: &Path) -> Result<Observations, InputError> {
    use std::io::BufRead;
    let f = File::open(path).map_err(|source| InputError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let reader = std::io::BufReader::new(f);
    let mut out = Vec::new();
    for (i, line) in reader.split(b'\n').enumerate() {
        let line = line.map_err(|source| InputError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |message: String| InputError::BadObservation {
            path: path.to_path_buf(),
            line: i as u64 + 1,
            message,
        };
        if line.len() > MAX_OBSERVATION_LINE {
            return Err(bad("line too long".into()));
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let obs: Observation = serde_json::from_slice(&line).map_err(|e| bad(e.to_string()))?;
        out.push(obs);
    }
    Ok(Box::new(out.into_iter()))
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
