//! Frame Streams (fstrm): the incremental frame decoder, control frames and the encoders
//! tests and benchmarks use.

#[allow(unused_imports)]
use super::*;

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

pub(super) fn parse_control(body: &[u8]) -> Result<Frame<'_>, DnstapError> {
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

pub(super) fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(s.try_into().ok()?))
}

pub(super) fn control_frame(ctype: u32, content_type: Option<&[u8]>) -> Vec<u8> {
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
