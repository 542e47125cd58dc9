//! dnstap input: Frame Streams (fstrm) files and live sockets carrying `protobuf:dnstap.Dnstap`.
//!
//! Resolvers (BIND, Unbound, Knot Resolver, CoreDNS, dnsdist) write dnstap either to a file
//! (unidirectional fstrm: `START`, data frames, `STOP`) or to a Unix/TCP socket (bidirectional
//! fstrm: the writer sends `READY`, we answer `ACCEPT`, then `START`, data, `STOP`, we answer
//! `FINISH`). Each data frame is one protobuf `Dnstap` message; we hand-decode the few fields we
//! need with a bounds-checked varint reader (no generated code, no allocation per field).
//!
//! `CLIENT_QUERY` / `CLIENT_RESPONSE` become [`DnsObservation`]s: a response is paired with its
//! query (client address/port, DNS id, question) when both are present; a response alone is a
//! complete observation since it repeats the question. Every other message type (the resolver's
//! own upstream traffic, auth, forwarder, …) is counted and skipped: those carry clients' names
//! but the resolver is not the client. DNS wire decoding is `crate::dns::parse_message`.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::dns::parse_message;
use crate::metrics::{self, Counter};
use crate::model::{DnsObservation, Observation, Source, Timestamp, Transport};
use crate::ports::{ObservationSink, Producer, ProducerReport, QueueSink, StopToken};

use super::pending::Pending;
use super::IngestConfig;

mod fstrm;
mod pair;
mod proto;
mod socket;

pub use fstrm::*;
pub use pair::*;
pub use proto::*;
pub use socket::*;

/// The only content type we accept (dnstap.proto's fstrm content type).
pub const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";
/// Largest data frame accepted. A dnstap message holds at most two DNS messages (≤ 64 KiB each
/// over TCP) plus a few addresses and identity strings; 256 KiB leaves ample room while bounding
/// what one hostile length field can make us buffer.
pub const MAX_FRAME_LEN: usize = 256 * 1024;
/// Largest control frame (the fstrm reference implementation's own limit,
/// `FSTRM_CONTROL_FRAME_LENGTH_MAX`).
pub const MAX_CONTROL_LEN: usize = 512;
/// Queries waiting for their response. Beyond it the oldest is emitted unanswered, so a flood of
/// unanswered queries cannot grow memory.
pub const MAX_PENDING_QUERIES: usize = 65_536;
/// A query whose response has not arrived within this much message time is emitted unanswered
/// (resolvers give up on clients well before: Unbound's and BIND's client timeouts are < 10 s).
pub const PAIR_WINDOW_US: i64 = 10_000_000;
/// Concurrent writer connections on one listener (a resolver opens one per worker thread).
pub const MAX_CONNECTIONS: usize = 64;
/// How often blocked socket reads wake up to look at the stop flag and expire pending queries.
const SOCKET_TICK: Duration = Duration::from_millis(200);
/// Read size for files and sockets.
const READ_CHUNK: usize = 64 * 1024;

/// Frame Streams control frame types.
const CONTROL_ACCEPT: u32 = 1;
const CONTROL_START: u32 = 2;
const CONTROL_STOP: u32 = 3;
const CONTROL_READY: u32 = 4;
const CONTROL_FINISH: u32 = 5;
const CONTROL_FIELD_CONTENT_TYPE: u32 = 1;

/// dnstap `Message.type` values we act on.
const MSG_CLIENT_QUERY: u64 = 5;
const MSG_CLIENT_RESPONSE: u64 = 6;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnstapError {
    #[error("cannot read dnstap input {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("not a Frame Streams file (expected a START control frame)")]
    NotFstrm,
    #[error("Frame Streams content type {got:?} is not protobuf:dnstap.Dnstap")]
    ContentType { got: String },
    #[error("bad Frame Streams control frame: {reason}")]
    BadControl { reason: &'static str },
    #[error("Frame Streams frame of {len} bytes exceeds the {max}-byte limit")]
    FrameTooLarge { len: usize, max: usize },
    #[error("bad dnstap protobuf: {reason}")]
    Protobuf { reason: &'static str },
    #[error("Frame Streams handshake failed: {reason}")]
    Handshake { reason: &'static str },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: io::Error,
    },
}

/// Whether `head` starts like a Frame Streams file: an escape (zero length), a control frame of
/// sane length, and the START type.
pub fn looks_like_fstrm(head: &[u8]) -> bool {
    let (Some(esc), Some(len), Some(ctype)) = (be32(head, 0), be32(head, 4), be32(head, 8)) else {
        return false;
    };
    esc == 0 && (4..=MAX_CONTROL_LEN as u32).contains(&len) && ctype == CONTROL_START
}

/// Opens a dnstap Frame Streams file; yields client DNS observations in file order (a query is
/// held until its response or the end of the file). Corrupt frames are counted and skipped; a
/// corrupt frame length ends the file (there is no way to resynchronise).
pub fn open_file(
    path: &Path,
    cfg: &IngestConfig,
) -> Result<Box<dyn Iterator<Item = Observation> + Send>, DnstapError> {
    let _ = cfg;
    let mut file = File::open(path).map_err(|source| DnstapError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut head = [0u8; 12];
    let n = read_full(&mut file, &mut head).map_err(|source| DnstapError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !looks_like_fstrm(head.get(..n).unwrap_or(&[])) {
        return Err(DnstapError::NotFstrm);
    }
    let mut decoder = FrameDecoder::new();
    decoder.feed(head.get(..n).unwrap_or(&[]));
    let source = Source::new(format!("dnstap:file:{}", path.display()));
    Ok(Box::new(FileReader {
        file: Some(file),
        decoder,
        pairer: Pairer::new(source),
        out: VecDeque::new(),
        chunk: vec![0u8; READ_CHUNK],
    }))
}

struct FileReader {
    file: Option<File>,
    decoder: FrameDecoder,
    pairer: Pairer,
    out: VecDeque<Observation>,
    chunk: Vec<u8>,
}

impl FileReader {
    /// Reads until at least one observation is ready or the file ends.
    fn fill(&mut self) {
        let mut batch = Vec::new();
        while self.out.is_empty() {
            // Take every complete frame first.
            while self.file.is_some() {
                match self.decoder.next_frame() {
                    Ok(Some(Frame::Data(d))) => self.pairer.push_frame(d, &mut batch),
                    Ok(Some(Frame::Control {
                        ctype,
                        content_types,
                    })) => {
                        m().control_frames.inc();
                        if ctype == CONTROL_START
                            && content_types.iter().any(|ct| *ct != CONTENT_TYPE)
                        {
                            tracing::warn!("dnstap file: unexpected content type, stopping");
                            m().err_stream.inc();
                            self.file = None;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!("dnstap file: {e}; ignoring the rest");
                        m().err_stream.inc();
                        self.file = None;
                    }
                }
            }
            self.out.extend(batch.drain(..));
            if !self.out.is_empty() {
                return;
            }
            let Some(file) = self.file.as_mut() else {
                self.finish();
                return;
            };
            match file.read(&mut self.chunk) {
                Ok(0) => {
                    if self.decoder.pending() > 0 {
                        tracing::warn!("dnstap file: truncated final frame");
                        m().err_stream.inc();
                    }
                    self.file = None;
                }
                Ok(n) => self.decoder.feed(self.chunk.get(..n).unwrap_or(&[])),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::warn!("dnstap file: read error: {e}");
                    m().err_stream.inc();
                    self.file = None;
                }
            }
        }
    }

    fn finish(&mut self) {
        if self.pairer.pending() == 0 {
            return;
        }
        let mut batch = Vec::new();
        self.pairer.finish(&mut batch);
        self.out.extend(batch);
    }
}

impl Iterator for FileReader {
    type Item = Observation;
    fn next(&mut self) -> Option<Observation> {
        if self.out.is_empty() {
            self.fill();
        }
        self.out.pop_front()
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(buf.get_mut(n..).unwrap_or(&mut [])) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_bounds() {
        // 11-byte varint, truncated varint, overrunning length: all errors, no panic.
        assert!(decode_dnstap(&[
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
        ])
        .is_err());
        assert!(decode_dnstap(&[0x08, 0x80]).is_err());
        assert!(decode_dnstap(&[0x72, 0x05, 0x00]).is_err());
        assert!(decode_dnstap(&[]).is_ok());
    }

    #[test]
    fn control_field_lengths_are_checked() {
        let field = |flen: u32, value: &[u8]| {
            let mut b = CONTROL_START.to_be_bytes().to_vec();
            b.extend_from_slice(&CONTROL_FIELD_CONTENT_TYPE.to_be_bytes());
            b.extend_from_slice(&flen.to_be_bytes());
            b.extend_from_slice(value);
            b
        };
        match parse_control(&field(3, b"abc")) {
            Ok(Frame::Control { content_types, .. }) => assert_eq!(content_types, [b"abc"]),
            other => panic!("{other:?}"),
        }
        for flen in [4, u32::MAX - 7, u32::MAX] {
            assert!(matches!(
                parse_control(&field(flen, b"abc")),
                Err(DnstapError::BadControl { .. })
            ));
        }
    }

    #[test]
    fn control_round_trip() {
        let f = encode_fstrm_file(&[vec![1, 2, 3]]);
        assert!(looks_like_fstrm(&f));
        let mut d = FrameDecoder::new();
        d.feed(&f);
        assert!(matches!(
            d.next_frame(),
            Ok(Some(Frame::Control { ctype: 2, .. }))
        ));
        assert_eq!(d.next_frame().ok().flatten(), Some(Frame::Data(&[1, 2, 3])));
        assert!(matches!(
            d.next_frame(),
            Ok(Some(Frame::Control { ctype: 3, .. }))
        ));
        assert_eq!(d.next_frame().ok().flatten(), None);
    }
}
