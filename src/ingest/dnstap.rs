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

use std::collections::{HashMap, VecDeque};
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

use super::IngestConfig;

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

// ---------------------------------------------------------------------------------------------
// Frame Streams
// ---------------------------------------------------------------------------------------------

/// One Frame Streams frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Data(&'a [u8]),
    Control {
        ctype: u32,
        /// Values of the CONTENT_TYPE fields (borrowed, possibly several in READY).
        content_types: Vec<&'a [u8]>,
    },
}

/// Incremental Frame Streams decoder: feed bytes as they arrive, take frames out. Buffers at
/// most one frame (≤ [`MAX_FRAME_LEN`]) plus one read.
#[derive(Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    start: usize,
}

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn feed(&mut self, data: &[u8]) {
        // Compact before growing so the buffer stays about one frame long.
        if self.start > 0 && (self.start >= self.buf.len() || self.start > READ_CHUNK) {
            self.buf.drain(..self.start.min(self.buf.len()));
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not yet part of a complete frame.
    pub fn pending(&self) -> usize {
        self.buf.len().saturating_sub(self.start)
    }

    /// The next complete frame, `Ok(None)` when more bytes are needed. An error means the stream
    /// cannot be resynchronised.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, DnstapError> {
        let avail = self.buf.get(self.start..).unwrap_or(&[]);
        let Some(len) = be32(avail, 0) else {
            return Ok(None);
        };
        let len = len as usize;
        if len != 0 {
            if len > MAX_FRAME_LEN {
                return Err(DnstapError::FrameTooLarge {
                    len,
                    max: MAX_FRAME_LEN,
                });
            }
            if avail.len() < 4 + len {
                return Ok(None);
            }
            let begin = self.start + 4;
            self.start += 4 + len;
            return Ok(self.buf.get(begin..begin + len).map(Frame::Data));
        }
        let Some(clen) = be32(avail, 4) else {
            return Ok(None);
        };
        let clen = clen as usize;
        if !(4..=MAX_CONTROL_LEN).contains(&clen) {
            return Err(DnstapError::BadControl {
                reason: "control frame length out of range",
            });
        }
        if avail.len() < 8 + clen {
            return Ok(None);
        }
        let begin = self.start + 8;
        self.start += 8 + clen;
        let body = self.buf.get(begin..begin + clen).unwrap_or(&[]);
        parse_control(body).map(Some)
    }
}

fn parse_control(body: &[u8]) -> Result<Frame<'_>, DnstapError> {
    let ctype = be32(body, 0).ok_or(DnstapError::BadControl {
        reason: "control frame without type",
    })?;
    let mut content_types = Vec::new();
    let mut pos = 4usize;
    while pos < body.len() {
        let (Some(ftype), Some(flen)) = (be32(body, pos), be32(body, pos + 4)) else {
            return Err(DnstapError::BadControl {
                reason: "truncated control field",
            });
        };
        let overrun = || DnstapError::BadControl {
            reason: "control field overruns frame",
        };
        // Checked: `flen` is the peer's u32, and `usize` may be 32 bits.
        let start = pos + 8; // pos < body.len() <= MAX_CONTROL_LEN
        let end = usize::try_from(flen)
            .ok()
            .and_then(|l| start.checked_add(l))
            .ok_or_else(overrun)?;
        let value = body.get(start..end).ok_or_else(overrun)?;
        if ftype == CONTROL_FIELD_CONTENT_TYPE {
            content_types.push(value);
        }
        pos = end;
    }
    Ok(Frame::Control {
        ctype,
        content_types,
    })
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(s.try_into().ok()?))
}

fn control_frame(ctype: u32, content_type: Option<&[u8]>) -> Vec<u8> {
    let mut body = ctype.to_be_bytes().to_vec();
    if let Some(ct) = content_type {
        body.extend_from_slice(&CONTROL_FIELD_CONTENT_TYPE.to_be_bytes());
        body.extend_from_slice(&(ct.len() as u32).to_be_bytes());
        body.extend_from_slice(ct);
    }
    let mut out = 0u32.to_be_bytes().to_vec();
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Encodes a Frame Streams file or stream: `START` (with the dnstap content type), the given
/// data frames, `STOP`. Used by tests, fixture generation and benchmarks.
pub fn encode_fstrm_file(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = control_frame(CONTROL_START, Some(CONTENT_TYPE));
    for f in frames {
        out.extend_from_slice(&(f.len() as u32).to_be_bytes());
        out.extend_from_slice(f);
    }
    out.extend_from_slice(&control_frame(CONTROL_STOP, None));
    out
}

/// Encodes one control frame (for test writers speaking bidirectional fstrm).
pub fn encode_control(ctype: ControlType, content_type: Option<&[u8]>) -> Vec<u8> {
    control_frame(ctype as u32, content_type)
}

/// Frame Streams control frame types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ControlType {
    Accept = 1,
    Start = 2,
    Stop = 3,
    Ready = 4,
    Finish = 5,
}

// ---------------------------------------------------------------------------------------------
// Protobuf (hand decoder for the dnstap schema)
// ---------------------------------------------------------------------------------------------

/// The fields of one `Dnstap` message that poolwatch uses (borrowed from the frame).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnstapMessage<'a> {
    pub identity: Option<&'a [u8]>,
    pub version: Option<&'a [u8]>,
    /// `Dnstap.type` (1 = MESSAGE).
    pub dnstap_type: Option<u64>,
    /// `Message.type` (5 = CLIENT_QUERY, 6 = CLIENT_RESPONSE, 3/4 = RESOLVER_*, …).
    pub message_type: Option<u64>,
    pub socket_family: Option<u64>,
    pub socket_protocol: Option<u64>,
    pub query_address: Option<&'a [u8]>,
    pub response_address: Option<&'a [u8]>,
    pub query_port: Option<u64>,
    pub response_port: Option<u64>,
    pub query_time_sec: Option<u64>,
    pub query_time_nsec: Option<u64>,
    pub query_message: Option<&'a [u8]>,
    pub response_time_sec: Option<u64>,
    pub response_time_nsec: Option<u64>,
    pub response_message: Option<&'a [u8]>,
}

enum PbValue<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

struct PbReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> PbReader<'a> {
    fn varint(&mut self) -> Result<u64, DnstapError> {
        let mut v: u64 = 0;
        for i in 0..10u32 {
            let b = *self.buf.get(self.pos).ok_or(DnstapError::Protobuf {
                reason: "truncated varint",
            })?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DnstapError::Protobuf {
            reason: "varint too long",
        })
    }

    fn field(&mut self) -> Result<Option<(u64, PbValue<'a>)>, DnstapError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = key >> 3;
        let value = match key & 7 {
            0 => PbValue::Varint(self.varint()?),
            1 => {
                self.skip(8)?;
                PbValue::Fixed
            }
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| DnstapError::Protobuf {
                    reason: "length overflow",
                })?;
                let end = self.pos.checked_add(len).ok_or(DnstapError::Protobuf {
                    reason: "length overflow",
                })?;
                let bytes = self.buf.get(self.pos..end).ok_or(DnstapError::Protobuf {
                    reason: "length-delimited field overruns message",
                })?;
                self.pos = end;
                PbValue::Bytes(bytes)
            }
            5 => {
                self.skip(4)?;
                PbValue::Fixed
            }
            _ => {
                return Err(DnstapError::Protobuf {
                    reason: "unsupported wire type",
                })
            }
        };
        Ok(Some((number, value)))
    }

    fn skip(&mut self, n: usize) -> Result<(), DnstapError> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        self.pos = end.ok_or(DnstapError::Protobuf {
            reason: "truncated fixed field",
        })?;
        Ok(())
    }
}

/// Decodes one dnstap protobuf frame. Unknown fields are skipped (forward compatible); wrong
/// wire types for known fields, truncations and overruns are errors.
pub fn decode_dnstap(frame: &[u8]) -> Result<DnstapMessage<'_>, DnstapError> {
    let mut m = DnstapMessage::default();
    let mut r = PbReader { buf: frame, pos: 0 };
    let mut message: Option<&[u8]> = None;
    while let Some((num, val)) = r.field()? {
        match (num, val) {
            (1, PbValue::Bytes(b)) => m.identity = Some(b),
            (2, PbValue::Bytes(b)) => m.version = Some(b),
            (14, PbValue::Bytes(b)) => message = Some(b),
            (15, PbValue::Varint(v)) => m.dnstap_type = Some(v),
            (1 | 2 | 14 | 15, _) => {
                return Err(DnstapError::Protobuf {
                    reason: "wrong wire type in Dnstap",
                })
            }
            _ => {}
        }
    }
    let Some(msg) = message else {
        return Ok(m);
    };
    let mut r = PbReader { buf: msg, pos: 0 };
    while let Some((num, val)) = r.field()? {
        match (num, val) {
            (1, PbValue::Varint(v)) => m.message_type = Some(v),
            (2, PbValue::Varint(v)) => m.socket_family = Some(v),
            (3, PbValue::Varint(v)) => m.socket_protocol = Some(v),
            (4, PbValue::Bytes(b)) => m.query_address = Some(b),
            (5, PbValue::Bytes(b)) => m.response_address = Some(b),
            (6, PbValue::Varint(v)) => m.query_port = Some(v),
            (7, PbValue::Varint(v)) => m.response_port = Some(v),
            (8, PbValue::Varint(v)) => m.query_time_sec = Some(v),
            (10, PbValue::Bytes(b)) => m.query_message = Some(b),
            (12, PbValue::Varint(v)) => m.response_time_sec = Some(v),
            (14, PbValue::Bytes(b)) => m.response_message = Some(b),
            // nsec fields are `fixed32` in dnstap.proto.
            (9, PbValue::Fixed) | (13, PbValue::Fixed) => {
                let v = fixed32_before(msg, r.pos);
                if num == 9 {
                    m.query_time_nsec = v;
                } else {
                    m.response_time_nsec = v;
                }
            }
            (1..=14, _) => {
                return Err(DnstapError::Protobuf {
                    reason: "wrong wire type in Message",
                })
            }
            _ => {}
        }
    }
    Ok(m)
}

/// The little-endian fixed32 that ends just before `end`.
fn fixed32_before(buf: &[u8], end: usize) -> Option<u64> {
    let s = buf.get(end.checked_sub(4)?..end)?;
    Some(u64::from(u32::from_le_bytes(s.try_into().ok()?)))
}

/// Encodes a dnstap `MESSAGE` frame (used by tests, fixture generation and benchmarks).
pub fn encode_dnstap(m: &DnstapMessage<'_>) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn key(out: &mut Vec<u8>, num: u64, wt: u64) {
        varint(out, (num << 3) | wt);
    }
    fn bytes(out: &mut Vec<u8>, num: u64, b: Option<&[u8]>) {
        if let Some(b) = b {
            key(out, num, 2);
            varint(out, b.len() as u64);
            out.extend_from_slice(b);
        }
    }
    fn int(out: &mut Vec<u8>, num: u64, v: Option<u64>) {
        if let Some(v) = v {
            key(out, num, 0);
            varint(out, v);
        }
    }
    fn fixed(out: &mut Vec<u8>, num: u64, v: Option<u64>) {
        if let Some(v) = v {
            key(out, num, 5);
            out.extend_from_slice(&(v as u32).to_le_bytes());
        }
    }
    let mut msg = Vec::new();
    int(&mut msg, 1, m.message_type);
    int(&mut msg, 2, m.socket_family);
    int(&mut msg, 3, m.socket_protocol);
    bytes(&mut msg, 4, m.query_address);
    bytes(&mut msg, 5, m.response_address);
    int(&mut msg, 6, m.query_port);
    int(&mut msg, 7, m.response_port);
    int(&mut msg, 8, m.query_time_sec);
    fixed(&mut msg, 9, m.query_time_nsec);
    bytes(&mut msg, 10, m.query_message);
    int(&mut msg, 12, m.response_time_sec);
    fixed(&mut msg, 13, m.response_time_nsec);
    bytes(&mut msg, 14, m.response_message);
    let mut out = Vec::new();
    bytes(&mut out, 1, m.identity);
    bytes(&mut out, 2, m.version);
    bytes(&mut out, 14, Some(&msg));
    int(&mut out, 15, Some(m.dnstap_type.unwrap_or(1)));
    out
}

// ---------------------------------------------------------------------------------------------
// Messages → observations
// ---------------------------------------------------------------------------------------------

struct Metrics {
    data_frames: Counter,
    control_frames: Counter,
    client_queries: Counter,
    client_responses: Counter,
    skipped_resolver: Counter,
    skipped_other: Counter,
    unanswered: Counter,
    evicted: Counter,
    err_protobuf: Counter,
    err_no_message: Counter,
    err_dns: Counter,
    err_address: Counter,
    err_not_message: Counter,
    err_stream: Counter,
}

fn m() -> &'static Metrics {
    static M: OnceLock<Metrics> = OnceLock::new();
    M.get_or_init(|| {
        let frames = |kind| {
            metrics::counter(
                "poolwatch_dnstap_frames_total",
                "Frame Streams frames read, by kind.",
                &[("kind", kind)],
            )
        };
        let msgs = |t| {
            metrics::counter(
                "poolwatch_dnstap_messages_total",
                "dnstap messages by outcome (client messages used; resolver/other types skipped).",
                &[("type", t)],
            )
        };
        let err = |reason| {
            metrics::counter(
                "poolwatch_dnstap_errors_total",
                "dnstap frames or messages rejected, by reason.",
                &[("reason", reason)],
            )
        };
        Metrics {
            data_frames: frames("data"),
            control_frames: frames("control"),
            client_queries: msgs("client_query"),
            client_responses: msgs("client_response"),
            skipped_resolver: msgs("skipped_resolver"),
            skipped_other: msgs("skipped_other"),
            unanswered: msgs("query_unanswered"),
            evicted: msgs("query_evicted"),
            err_protobuf: err("protobuf"),
            err_no_message: err("no_dns_message"),
            err_dns: err("dns_malformed"),
            err_address: err("bad_address"),
            err_not_message: err("not_message_type"),
            err_stream: err("stream"),
        }
    })
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct PairKey {
    client: IpAddr,
    port: Option<u16>,
    id: Option<u16>,
    qname: String,
    qtype: u16,
}

/// Turns decoded dnstap messages into observations, pairing CLIENT_RESPONSE with CLIENT_QUERY.
/// Memory: at most [`MAX_PENDING_QUERIES`] queries wait; a query waits at most
/// [`PAIR_WINDOW_US`] of message time.
pub struct Pairer {
    source: Source,
    pending: HashMap<PairKey, (u64, DnsObservation)>,
    order: VecDeque<(u64, PairKey)>,
    seq: u64,
    latest: Timestamp,
}

impl Pairer {
    pub fn new(source: Source) -> Self {
        Pairer {
            source,
            pending: HashMap::new(),
            order: VecDeque::new(),
            seq: 0,
            latest: Timestamp(i64::MIN),
        }
    }

    /// Queries waiting for a response.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Decodes one data frame and appends the observations it completes.
    pub fn push_frame(&mut self, frame: &[u8], out: &mut Vec<Observation>) {
        let mx = m();
        mx.data_frames.inc();
        let msg = match decode_dnstap(frame) {
            Ok(msg) => msg,
            Err(_) => {
                mx.err_protobuf.inc();
                return;
            }
        };
        self.push(&msg, out);
    }

    /// Handles one decoded message.
    pub fn push(&mut self, msg: &DnstapMessage<'_>, out: &mut Vec<Observation>) {
        let mx = m();
        if msg.dnstap_type.unwrap_or(1) != 1 {
            mx.err_not_message.inc();
            return;
        }
        match msg.message_type {
            Some(MSG_CLIENT_QUERY) => {
                mx.client_queries.inc();
                self.query(msg, out);
            }
            Some(MSG_CLIENT_RESPONSE) => {
                mx.client_responses.inc();
                self.response(msg, out);
            }
            Some(3 | 4) => mx.skipped_resolver.inc(),
            _ => mx.skipped_other.inc(),
        }
    }

    fn base(&self, msg: &DnstapMessage<'_>, wire: &[u8]) -> Option<(DnsObservation, PairKey)> {
        let mx = m();
        let Some(client) = msg.query_address.and_then(ip_from_bytes) else {
            mx.err_address.inc();
            return None;
        };
        let parsed = match parse_message(wire) {
            Ok(p) => p,
            Err(_) => {
                mx.err_dns.inc();
                return None;
            }
        };
        let Some((qname, qtype)) = parsed.questions.first().cloned() else {
            mx.err_dns.inc();
            return None;
        };
        let client_port = msg.query_port.and_then(|p| u16::try_from(p).ok());
        let transport = match msg.socket_protocol {
            Some(1) => Transport::Udp,
            Some(2) => Transport::Tcp,
            Some(3..=7) => Transport::Encrypted,
            _ => Transport::Unknown,
        };
        let ts = time(msg.query_time_sec, msg.query_time_nsec)
            .or_else(|| time(msg.response_time_sec, msg.response_time_nsec))
            .unwrap_or_default();
        let key = PairKey {
            client,
            port: client_port,
            id: Some(parsed.id),
            qname: qname.clone(),
            qtype: qtype.0,
        };
        let obs = DnsObservation {
            ts,
            client,
            client_port,
            server: msg.response_address.and_then(ip_from_bytes),
            server_port: msg.response_port.and_then(|p| u16::try_from(p).ok()),
            transport,
            id: Some(parsed.id),
            qname,
            qtype,
            rcode: parsed.is_response.then_some(parsed.rcode),
            answers: if parsed.is_response {
                parsed.answers
            } else {
                Vec::new()
            },
            answers_known: true,
            query_seen: true,
            rtt_us: None,
            truncated: parsed.is_response && parsed.truncated,
            salvaged: parsed.salvaged,
            source: self.source.clone(),
        };
        Some((obs, key))
    }

    fn query(&mut self, msg: &DnstapMessage<'_>, out: &mut Vec<Observation>) {
        let Some(wire) = msg.query_message else {
            m().err_no_message.inc();
            return;
        };
        let Some((obs, key)) = self.base(msg, wire) else {
            return;
        };
        self.latest = self.latest.max(obs.ts);
        self.expire(out);
        self.seq += 1;
        if let Some((_, old)) = self.pending.insert(key.clone(), (self.seq, obs)) {
            // A retransmission with the same id: the first copy was a real query too.
            m().unanswered.inc();
            out.push(Observation::Dns(old));
        }
        self.order.push_back((self.seq, key));
        while self.pending.len() > MAX_PENDING_QUERIES {
            if !self.pop_oldest(out) {
                break;
            }
            m().evicted.inc();
        }
        if self.order.len() > 2 * MAX_PENDING_QUERIES.max(self.pending.len()) {
            let pending = &self.pending;
            self.order
                .retain(|(s, k)| pending.get(k).is_some_and(|(ps, _)| ps == s));
        }
    }

    fn response(&mut self, msg: &DnstapMessage<'_>, out: &mut Vec<Observation>) {
        let Some(wire) = msg.response_message else {
            m().err_no_message.inc();
            return;
        };
        let Some((mut obs, key)) = self.base(msg, wire) else {
            return;
        };
        let resp_ts = time(msg.response_time_sec, msg.response_time_nsec);
        if let Some((_, q)) = self.pending.remove(&key) {
            obs.ts = q.ts;
            obs.transport = q.transport;
            obs.query_seen = true;
        } else {
            // A response alone carries the question and answers: a complete observation, but
            // its query was not seen in this stream.
            obs.query_seen = false;
            if msg.query_time_sec.is_none() {
                obs.ts = resp_ts.unwrap_or(obs.ts);
            }
        }
        if let Some(r) = resp_ts {
            obs.rtt_us = u64::try_from(r.0.saturating_sub(obs.ts.0)).ok();
        }
        self.latest = self.latest.max(resp_ts.unwrap_or(obs.ts));
        out.push(Observation::Dns(obs));
        self.expire(out);
    }

    /// Emits queries older than the pairing window (by message time).
    fn expire(&mut self, out: &mut Vec<Observation>) {
        let cutoff = self.latest.0.saturating_sub(PAIR_WINDOW_US);
        self.expire_before(cutoff, out);
    }

    fn expire_before(&mut self, cutoff: i64, out: &mut Vec<Observation>) {
        while let Some((seq, key)) = self.order.front() {
            match self.pending.get(key) {
                Some((s, q)) if s == seq => {
                    if q.ts.0 >= cutoff {
                        break;
                    }
                }
                _ => {
                    self.order.pop_front();
                    continue;
                }
            }
            self.pop_oldest(out);
            m().unanswered.inc();
        }
    }

    /// Emits queries whose response has not come within the window of wall-clock `now` (for
    /// live sockets, where message time stops advancing when traffic stops).
    pub fn expire_at(&mut self, now: Timestamp, out: &mut Vec<Observation>) {
        self.expire_before(now.0.saturating_sub(PAIR_WINDOW_US), out);
    }

    fn pop_oldest(&mut self, out: &mut Vec<Observation>) -> bool {
        while let Some((seq, key)) = self.order.pop_front() {
            if self.pending.get(&key).is_some_and(|(s, _)| *s == seq) {
                if let Some((_, q)) = self.pending.remove(&key) {
                    out.push(Observation::Dns(q));
                    return true;
                }
            }
        }
        false
    }

    /// End of input: every waiting query is emitted unanswered.
    pub fn finish(&mut self, out: &mut Vec<Observation>) {
        while self.pop_oldest(out) {
            m().unanswered.inc();
        }
        self.pending.clear();
    }
}

fn time(sec: Option<u64>, nsec: Option<u64>) -> Option<Timestamp> {
    let sec = i64::try_from(sec?).ok()?;
    let us = sec
        .checked_mul(1_000_000)?
        .checked_add(i64::try_from(nsec.unwrap_or(0) / 1000).ok()?)?;
    Some(Timestamp(us))
}

fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    if let Ok(a) = <[u8; 4]>::try_from(b) {
        return Some(IpAddr::V4(Ipv4Addr::from(a)));
    }
    <[u8; 16]>::try_from(b)
        .ok()
        .map(|a| IpAddr::V6(Ipv6Addr::from(a)))
}

// ---------------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Sockets (bidirectional Frame Streams)
// ---------------------------------------------------------------------------------------------

/// Where a dnstap listener accepts writers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListenAddr {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl ListenAddr {
    /// `unix:/run/dnstap.sock`, `tcp:127.0.0.1:6000`, a bare path or a bare `host:port`.
    pub fn parse(s: &str) -> Option<Self> {
        if let Some(p) = s.strip_prefix("unix:") {
            return Some(ListenAddr::Unix(PathBuf::from(p)));
        }
        if let Some(a) = s.strip_prefix("tcp:") {
            return a.parse().ok().map(ListenAddr::Tcp);
        }
        if let Ok(a) = s.parse() {
            return Some(ListenAddr::Tcp(a));
        }
        (!s.is_empty()).then(|| ListenAddr::Unix(PathBuf::from(s)))
    }
}

enum AnyListener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// A bound dnstap socket. `run` accepts resolver connections (one thread each, at most
/// [`MAX_CONNECTIONS`]) until the stop flag is set.
pub struct DnstapListener {
    listener: AnyListener,
    label: String,
    unix_path: Option<PathBuf>,
}

impl DnstapListener {
    /// Binds. A stale Unix socket file at the path is replaced (resolvers expect us to create it).
    pub fn bind(addr: &ListenAddr) -> Result<Self, DnstapError> {
        match addr {
            ListenAddr::Unix(path) => {
                if std::fs::symlink_metadata(path).is_ok_and(|md| {
                    use std::os::unix::fs::FileTypeExt;
                    md.file_type().is_socket()
                }) {
                    let _ = std::fs::remove_file(path);
                }
                let l = UnixListener::bind(path).map_err(|source| DnstapError::Listen {
                    addr: path.display().to_string(),
                    source,
                })?;
                Ok(DnstapListener {
                    listener: AnyListener::Unix(l),
                    label: format!("unix:{}", path.display()),
                    unix_path: Some(path.clone()),
                })
            }
            ListenAddr::Tcp(a) => {
                let l = TcpListener::bind(a).map_err(|source| DnstapError::Listen {
                    addr: a.to_string(),
                    source,
                })?;
                let label = format!("tcp:{}", l.local_addr().unwrap_or(*a));
                Ok(DnstapListener {
                    listener: AnyListener::Tcp(l),
                    label,
                    unix_path: None,
                })
            }
        }
    }

    /// Sets the Unix socket's permission bits. Resolvers run as their own user (`unbound`,
    /// `bind`, `knot-resolver`) and need write permission to connect: e.g. `0o660` with the
    /// socket's group set to the resolver's, or `0o666` on a host where every local user may
    /// inject dnstap. No-op for TCP.
    pub fn set_socket_mode(&self, mode: u32) -> Result<(), DnstapError> {
        use std::os::unix::fs::PermissionsExt;
        let Some(path) = &self.unix_path else {
            return Ok(());
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
            DnstapError::Listen {
                addr: path.display().to_string(),
                source,
            }
        })
    }

    /// The bound TCP address (useful with port 0).
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &self.listener {
            AnyListener::Tcp(l) => l.local_addr().ok(),
            AnyListener::Unix(_) => None,
        }
    }

    /// Accepts writers until `stop` is set; each connection's observations go to a clone of
    /// `sink` (returning `false` from the sink ends that connection). Blocking: run it on a
    /// thread of its own (`tokio::task::spawn_blocking`).
    pub fn run<S>(self, sink: S, stop: Arc<AtomicBool>) -> Result<(), DnstapError>
    where
        S: ObservationSink + Send + Clone + 'static,
    {
        self.serve(sink, StopToken::from_flag(stop))
    }

    /// [`run`](Self::run) with the service's stop token.
    pub fn serve<S>(self, sink: S, stop: StopToken) -> Result<(), DnstapError>
    where
        S: ObservationSink + Send + Clone + 'static,
    {
        let set_nb = match &self.listener {
            AnyListener::Unix(l) => l.set_nonblocking(true),
            AnyListener::Tcp(l) => l.set_nonblocking(true),
        };
        set_nb.map_err(|source| DnstapError::Listen {
            addr: self.label.clone(),
            source,
        })?;
        let active = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::new();
        while !stop.is_stopped() {
            let accepted: io::Result<Conn> = match &self.listener {
                AnyListener::Unix(l) => l.accept().map(|(s, _)| Conn::Unix(s)),
                AnyListener::Tcp(l) => l.accept().map(|(s, _)| Conn::Tcp(s)),
            };
            let conn = match accepted {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                Err(e) => {
                    tracing::warn!("dnstap listener {}: accept: {e}", self.label);
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            if active.load(Ordering::Relaxed) >= MAX_CONNECTIONS {
                m().err_stream.inc();
                tracing::warn!("dnstap listener {}: too many writers, refusing", self.label);
                continue;
            }
            active.fetch_add(1, Ordering::Relaxed);
            let source = Source::new(format!("dnstap:{}", self.label));
            let (sink, stop, active) = (sink.clone(), stop.clone(), active.clone());
            handles.retain(|h: &std::thread::JoinHandle<()>| !h.is_finished());
            handles.push(std::thread::spawn(move || {
                if let Err(e) = serve_conn(conn, source, sink, &stop) {
                    m().err_stream.inc();
                    tracing::warn!("dnstap writer session ended: {e}");
                }
                active.fetch_sub(1, Ordering::Relaxed);
            }));
        }
        for h in handles {
            let _ = h.join();
        }
        if let Some(p) = &self.unix_path {
            let _ = std::fs::remove_file(p);
        }
        Ok(())
    }
}

impl Producer for DnstapListener {
    fn name(&self) -> String {
        format!("dnstap {}", self.label)
    }

    fn run(self: Box<Self>, sink: QueueSink, stop: StopToken) -> ProducerReport {
        let label = self.label.clone();
        let error = self.serve(sink, stop).err().map(|e| {
            tracing::error!(listener = %label, error = %e, "dnstap listener stopped");
            e.to_string()
        });
        ProducerReport {
            observations: 0,
            finished: false,
            error,
        }
    }
}

enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Conn {
    fn prepare(&self) -> io::Result<()> {
        match self {
            Conn::Unix(s) => {
                s.set_nonblocking(false)?;
                s.set_read_timeout(Some(SOCKET_TICK))
            }
            Conn::Tcp(s) => {
                s.set_nonblocking(false)?;
                s.set_read_timeout(Some(SOCKET_TICK))
            }
        }
    }
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Unix(s) => s.read(buf),
            Conn::Tcp(s) => s.read(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Conn::Unix(s) => s.write_all(buf),
            Conn::Tcp(s) => s.write_all(buf),
        }
    }
}

/// One bidirectional Frame Streams session: READY → ACCEPT, START, data…, STOP → FINISH.
fn serve_conn<S>(
    mut conn: Conn,
    source: Source,
    mut sink: S,
    stop: &StopToken,
) -> Result<(), DnstapError>
where
    S: ObservationSink,
{
    let io_err = |source| DnstapError::Io {
        path: PathBuf::from("<dnstap socket>"),
        source,
    };
    conn.prepare().map_err(io_err)?;
    let mut dec = FrameDecoder::new();
    let mut pairer = Pairer::new(source);
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut out = Vec::new();
    let mut started = false;
    let mut finished = false;
    while !finished {
        if stop.is_stopped() {
            break;
        }
        match conn.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => dec.feed(chunk.get(..n).unwrap_or(&[])),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                pairer.expire_at(Timestamp::now(), &mut out);
            }
            Err(e) => return Err(io_err(e)),
        }
        let mut reply: Option<Vec<u8>> = None;
        loop {
            let frame = dec.next_frame()?;
            match frame {
                None => break,
                Some(Frame::Data(d)) => {
                    if !started {
                        return Err(DnstapError::Handshake {
                            reason: "data frame before START",
                        });
                    }
                    pairer.push_frame(d, &mut out);
                }
                Some(Frame::Control {
                    ctype,
                    content_types,
                }) => {
                    m().control_frames.inc();
                    match ctype {
                        CONTROL_READY => {
                            if !content_types.is_empty() && !content_types.contains(&CONTENT_TYPE) {
                                return Err(DnstapError::Handshake {
                                    reason: "writer does not offer protobuf:dnstap.Dnstap",
                                });
                            }
                            reply = Some(control_frame(CONTROL_ACCEPT, Some(CONTENT_TYPE)));
                        }
                        CONTROL_START => {
                            if content_types.iter().any(|c| *c != CONTENT_TYPE) {
                                return Err(DnstapError::ContentType {
                                    got: content_types
                                        .first()
                                        .map(|c| String::from_utf8_lossy(c).into_owned())
                                        .unwrap_or_default(),
                                });
                            }
                            started = true;
                        }
                        CONTROL_STOP => {
                            reply = Some(control_frame(CONTROL_FINISH, None));
                            finished = true;
                            break;
                        }
                        _ => {
                            return Err(DnstapError::Handshake {
                                reason: "unexpected control frame",
                            })
                        }
                    }
                }
            }
            if let Some(r) = reply.take() {
                conn.write_all(&r).map_err(io_err)?;
            }
        }
        if let Some(r) = reply.take() {
            conn.write_all(&r).map_err(io_err)?;
        }
        for o in out.drain(..) {
            if !sink.send(o) {
                return Ok(());
            }
        }
    }
    pairer.finish(&mut out);
    for o in out.drain(..) {
        if !sink.send(o) {
            break;
        }
    }
    Ok(())
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
