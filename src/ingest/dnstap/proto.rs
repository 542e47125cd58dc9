//! The dnstap protobuf schema, hand-decoded with a bounds-checked varint reader (no generated
//! code, no allocation per field), and its encoder for tests and benchmarks.

#[allow(unused_imports)]
use super::*;

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

pub(super) enum PbValue<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

pub(super) struct PbReader<'a> {
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
pub(super) fn fixed32_before(buf: &[u8], end: usize) -> Option<u64> {
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
