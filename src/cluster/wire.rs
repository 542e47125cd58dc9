//! What travels over NATS: the versioned observation and detection encodings, the partition
//! of a client address and the subject names. Pure functions, the same on every node.
//!
//! * Observation message: one version byte ([`OBS_VERSION`]), one kind byte ([`KIND_PRIMARY`]
//!   or [`KIND_CONTEXT`]) and the observation's JSON (the public `docs/observations.md` shape,
//!   so any tool can read the stream).
//! * Context copies: a DNS answer that a server gave a client teaches the *server's*
//!   correlator that the server is a resolver (the learned-resolver rule needs answers to
//!   several clients, which live in other partitions). So the sensor also sends such an
//!   answered query to the server's partition as a context copy: name replaced by
//!   [`CONTEXT_QNAME`], answers removed — it can teach the resolver rule and nothing else (it
//!   matches no list, binds no address).
//! * Detection update: one version byte ([`DETECTION_VERSION`]) followed by
//!   `{"kind": "new"|"upgrade"|"update", "detection": {…}}` (the `docs/detections.md` shape).
//! * Partition: FNV-1a (64 bit) over the client address' bytes (IPv4: 4 bytes, an IPv4-mapped
//!   IPv6 address counts as its IPv4 address; IPv6: 16 bytes), modulo the partition count. The
//!   client of a DNS observation is its `client`, of a flow its originator `src`: a client's
//!   lookups and its flows meet in one partition, hence in one correlator.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::model::{Detection, Observation};
use crate::ports::ChangeKind;

/// Version byte of observation messages. A reader refuses (counts and drops) other versions.
pub const OBS_VERSION: u8 = 1;
/// Kind byte: the observation belongs to this partition.
pub const KIND_PRIMARY: u8 = b'o';
/// Kind byte: a context copy for the server's partition (see the module docs).
pub const KIND_CONTEXT: u8 = b'c';
/// The name a context copy carries (`.invalid` is reserved, RFC 6761: it matches no list).
pub const CONTEXT_QNAME: &str = "context.poolwatch.invalid";
/// Version byte of detection update messages.
pub const DETECTION_VERSION: u8 = 1;
/// Largest message accepted from the stream (and the streams' `max_message_size`): an
/// observation is a few hundred bytes, a detection with its evidence cap a few KiB.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Subject prefix of observations: `poolwatch.obs.<partition>`.
pub const OBS_SUBJECT_PREFIX: &str = "poolwatch.obs";
/// Subject prefix of detection updates: `poolwatch.detections.<detection id>`.
pub const DETECTION_SUBJECT_PREFIX: &str = "poolwatch.detections";
/// Most partitions a cluster may have (a consumer and a lease each).
pub const MAX_PARTITIONS: u16 = 1024;

/// Why a message could not be decoded (counted by reason and dropped).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    #[error("empty message")]
    Empty,
    #[error("message of {0} bytes is over the {MAX_MESSAGE_BYTES}-byte cap")]
    TooLarge(usize),
    #[error("unknown encoding version {0}")]
    Version(u8),
    #[error("malformed body: {0}")]
    Body(String),
}

impl WireError {
    /// Metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            WireError::Empty => "empty",
            WireError::TooLarge(_) => "too_large",
            WireError::Version(_) => "version",
            WireError::Body(_) => "body",
        }
    }
}

/// The address whose partition an observation belongs to.
pub fn client_of(obs: &Observation) -> IpAddr {
    match obs {
        Observation::Dns(d) => d.client,
        Observation::Flow(f) => f.src,
    }
}

/// FNV-1a 64-bit (offset basis 0xcbf29ce484222325, prime 0x100000001b3).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The partition of `ip` among `partitions` (at least 1).
pub fn partition_of(ip: IpAddr, partitions: u16) -> u16 {
    let n = u64::from(partitions.max(1));
    let h = match ip {
        IpAddr::V4(v4) => fnv1a(&v4.octets()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => fnv1a(&v4.octets()),
            None => fnv1a(&v6.octets()),
        },
    };
    // h % n < n <= u16::MAX.
    u16::try_from(h % n).unwrap_or(0)
}

pub fn obs_subject(partition: u16) -> String {
    format!("{OBS_SUBJECT_PREFIX}.{partition}")
}

/// The partition named by an observation subject.
pub fn partition_of_subject(subject: &str) -> Option<u16> {
    subject
        .strip_prefix(OBS_SUBJECT_PREFIX)?
        .strip_prefix('.')?
        .parse()
        .ok()
}

pub fn detection_subject(id: &str) -> String {
    // Detection ids are hex (`correlate::engine::detection_id`); anything else is made
    // subject-safe so that a foreign id cannot add tokens or wildcards.
    let safe: String = id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{DETECTION_SUBJECT_PREFIX}.{safe}")
}

/// The context copy of `obs` for its server's partition, when it has one: an answered DNS
/// query seen from a server to another address, in a partition other than the client's.
pub fn context_copy(obs: &Observation, partitions: u16) -> Option<(u16, Observation)> {
    let Observation::Dns(d) = obs else {
        return None;
    };
    let server = d.server?;
    if server == d.client || d.rcode.is_none() || !d.query_seen {
        return None;
    }
    let p = partition_of(server, partitions);
    if p == partition_of(d.client, partitions) {
        return None;
    }
    Some((p, neutralise(obs.clone())))
}

/// What a context copy may carry: the reserved name, no answers.
pub fn neutralise(obs: Observation) -> Observation {
    match obs {
        Observation::Dns(mut d) => {
            d.qname = CONTEXT_QNAME.to_string();
            d.answers.clear();
            d.salvaged = None;
            Observation::Dns(d)
        }
        other => other,
    }
}

pub fn encode_observation(obs: &Observation, kind: u8) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(256);
    out.push(OBS_VERSION);
    out.push(kind);
    serde_json::to_writer(&mut out, obs).map_err(|e| WireError::Body(e.to_string()))?;
    if out.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge(out.len()));
    }
    Ok(out)
}

fn body(bytes: &[u8], version: u8) -> Result<&[u8], WireError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge(bytes.len()));
    }
    let (&v, rest) = bytes.split_first().ok_or(WireError::Empty)?;
    if v != version {
        return Err(WireError::Version(v));
    }
    Ok(rest)
}

/// Decodes an observation message. A context copy comes back neutralised whatever it
/// carried, and a flow can never be one.
pub fn decode_observation(bytes: &[u8]) -> Result<(u8, Observation), WireError> {
    let rest = body(bytes, OBS_VERSION)?;
    let (&kind, json) = rest.split_first().ok_or(WireError::Empty)?;
    let obs: Observation =
        serde_json::from_slice(json).map_err(|e| WireError::Body(e.to_string()))?;
    match (kind, &obs) {
        (KIND_PRIMARY, _) => Ok((kind, obs)),
        (KIND_CONTEXT, Observation::Dns(_)) => Ok((kind, neutralise(obs))),
        _ => Err(WireError::Body(format!("bad kind byte {kind}"))),
    }
}

/// One detection change as published by a correlator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectionUpdate {
    /// `new`, `upgraded` or `updated`: the one change kind ([`ChangeKind`]).
    pub kind: ChangeKind,
    pub detection: Detection,
}

impl DetectionUpdate {
    pub fn new(kind: ChangeKind, detection: Detection) -> Self {
        DetectionUpdate { kind, detection }
    }
    pub fn change_kind(&self) -> ChangeKind {
        self.kind
    }
}

pub fn encode_detection(u: &DetectionUpdate) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(1024);
    out.push(DETECTION_VERSION);
    serde_json::to_writer(&mut out, u).map_err(|e| WireError::Body(e.to_string()))?;
    if out.len() > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge(out.len()));
    }
    Ok(out)
}

pub fn decode_detection(bytes: &[u8]) -> Result<DetectionUpdate, WireError> {
    serde_json::from_slice(body(bytes, DETECTION_VERSION)?)
        .map_err(|e| WireError::Body(e.to_string()))
}

/// Whether `incoming` carries at least as much as `stored` (the materialised view keeps the
/// most advanced copy of a detection: replays and a partition's new owner never move it back).
/// Stage, then last activity, then the evidence counters decide.
pub fn supersedes(incoming: &Detection, stored: &Detection) -> bool {
    let weight = |d: &Detection| {
        (
            d.stage,
            d.last_seen,
            d.counts.lookups + d.counts.flows + d.counts.blocked_lookups,
            d.counts.bytes_out + d.counts.bytes_in,
        )
    };
    weight(incoming) >= weight(stored)
}
