//! Capture savefiles read as a stream by a pure-Rust reader: classic pcap (either byte order,
//! µs or ns magic, the "modified" Kuznetzov variant) and pcapng (sections of either byte order,
//! one Interface Description Block per interface with its own link type, `if_tsresol` and
//! `if_tsoffset`, Enhanced / Simple / obsolete Packet Blocks; other blocks are skipped).
//!
//! libpcap refuses a pcapng file whose interfaces have different link types (any ordinary
//! multi-interface `dumpcap` file) and needs a seekable `FILE*`; this reader needs neither: it
//! pulls from any [`Read`] (file, pipe, FIFO, process substitution) into one reusable buffer,
//! and a frame is a slice of that buffer (no allocation per packet).
//!
//! Damage is never silent: a record that claims more bytes than [`MAX_CAPLEN`], a block longer
//! than [`MAX_BLOCK_LEN`], a length trailer that does not match, a packet for an interface that
//! was never described, input that stops inside a record — each ends reading with a
//! [`SavefileError`] carrying the byte offset where it happened. Nothing here panics or
//! allocates from a length read out of the file.

use std::io::Read;
use std::sync::Arc;

use super::pool::Pool;

/// Largest captured frame accepted in a record: libpcap's own savefile maximum
/// (`MAXIMUM_SNAPLEN`, 256 KiB), which also covers a 64 KiB GRO/TSO super-frame and 9 KiB jumbo
/// frames. A larger length is damage (or an attack asking for a huge allocation): an error.
pub const MAX_CAPLEN: u32 = 262_144;
/// Largest pcapng block: a frame of [`MAX_CAPLEN`] plus its header, padding and 64 KiB of
/// options. Larger blocks (a corrupt length) are an error, not an allocation.
pub const MAX_BLOCK_LEN: u32 = MAX_CAPLEN + 65_536;
/// Interfaces described in one pcapng section at most (each costs a few bytes; real files
/// have a handful, a router capture a few hundred).
pub const MAX_INTERFACES: usize = 65_536;
/// Size of the reusable read buffer: large reads keep the syscall count low, and it holds
/// the largest block several times over.
const READ_BUF_LEN: usize = 1 << 20;

const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_IDB: u32 = 1;
const PCAPNG_PB: u32 = 2;
const PCAPNG_SPB: u32 = 3;
const PCAPNG_EPB: u32 = 6;
const PCAPNG_BOM: u32 = 0x1A2B_3C4D;
const OPT_END: u16 = 0;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;

/// Why a savefile could not be read (further).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SavefileErrorKind {
    #[error("not a pcap or pcapng file (magic {0:02x?})")]
    BadMagic([u8; 4]),
    #[error("input ends inside a {0}")]
    Truncated(&'static str),
    #[error("read error: {0}")]
    Io(String),
    #[error("record claims {0} captured bytes (more than the {MAX_CAPLEN} accepted)")]
    CaplenTooLarge(u32),
    #[error("pcapng block of {0} bytes (more than the {MAX_BLOCK_LEN} accepted)")]
    BlockTooLarge(u32),
    #[error("pcapng block length {0} is not a multiple of 4 of at least 12")]
    BadBlockLength(u32),
    #[error("pcapng block length trailer {trailer} differs from its header {header}")]
    TrailerMismatch { header: u32, trailer: u32 },
    #[error("pcapng section header with unknown byte-order magic {0:08x}")]
    BadByteOrder(u32),
    #[error("pcapng version {0}.{1} is not supported")]
    BadVersion(u16, u16),
    #[error("pcapng block {0} is shorter than its fixed fields")]
    ShortBlock(u32),
    #[error("packet for interface {0}, which this section never described")]
    UnknownInterface(u32),
    #[error("more than {MAX_INTERFACES} interfaces in one section")]
    TooManyInterfaces,
    #[error("interface time resolution option {0:#04x} is out of range")]
    BadTsResol(u8),
}

/// A savefile read that stopped: what went wrong and at which byte of the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {kind}")]
pub struct SavefileError {
    /// Offset of the record (or block) that could not be read, from the start of the input.
    pub offset: u64,
    pub kind: SavefileErrorKind,
}

/// One captured frame, borrowed from the reader's buffer until the next call.
#[derive(Debug)]
pub struct Frame<'a> {
    /// Capture time, µs since the epoch.
    pub ts_us: i64,
    /// The libpcap link type of the interface it was captured on.
    pub linktype: i32,
    pub data: &'a [u8],
}

#[derive(Clone, Copy, Debug)]
struct Interface {
    linktype: i32,
    snaplen: u32,
    /// Timestamp units per second (`if_tsresol`, default 10^6).
    units_per_sec: u64,
    /// `if_tsoffset`, in µs.
    offset_us: i64,
}

enum Format {
    Pcap {
        be: bool,
        nanos: bool,
        linktype: i32,
        /// Record header length: 16, or 24 for the "modified" (Kuznetzov) format.
        header_len: usize,
    },
    Pcapng {
        be: bool,
        interfaces: Vec<Interface>,
        /// Simple Packet Blocks carry no timestamp: they get the last one seen.
        last_ts: i64,
    },
}

/// A pull buffer over a reader: `ensure(n)` makes `n` bytes contiguous at `start`.
///
/// The buffer may be shared ([`Savefile::buffer`]: the decoder threads read their frames in
/// place); a refill then continues in another buffer (one given back to `spare`, or a new
/// one) and leaves the shared one to its readers.
struct Window {
    src: Box<dyn Read + Send>,
    buf: Arc<Vec<u8>>,
    spare: Option<Arc<Pool<Vec<u8>>>>,
    start: usize,
    end: usize,
    /// Input offset of `buf[start]`.
    offset: u64,
    eof: bool,
}

impl Window {
    fn new(src: Box<dyn Read + Send>) -> Self {
        Window {
            src,
            buf: Arc::new(vec![0; READ_BUF_LEN]),
            spare: None,
            start: 0,
            end: 0,
            offset: 0,
            eof: false,
        }
    }

    #[inline]
    fn available(&self) -> usize {
        self.end - self.start
    }

    /// Whether `n` bytes are available (false: input ended first).
    #[inline]
    fn ensure(&mut self, n: usize) -> Result<bool, SavefileError> {
        if self.available() >= n {
            return Ok(true);
        }
        self.fill(n)
    }

    #[cold]
    fn fill(&mut self, n: usize) -> Result<bool, SavefileError> {
        if Arc::get_mut(&mut self.buf).is_none() {
            // Frames of this buffer are still being read elsewhere: go on in another one.
            let mut next = self
                .spare
                .as_ref()
                .and_then(|p| p.take())
                .unwrap_or_default();
            next.resize(READ_BUF_LEN.max(n), 0);
            let tail = self.buf.get(self.start..self.end).unwrap_or_default();
            next.get_mut(..tail.len())
                .unwrap_or_default()
                .copy_from_slice(tail);
            self.end -= self.start;
            self.start = 0;
            self.buf = Arc::new(next);
        }
        let Some(buf) = Arc::get_mut(&mut self.buf) else {
            // A fresh `Arc` is never shared; never reached.
            return Err(SavefileError {
                offset: self.offset,
                kind: SavefileErrorKind::Io("read buffer still shared".into()),
            });
        };
        if self.start + n > buf.len() {
            buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if n > buf.len() {
                // Callers bound `n` by MAX_BLOCK_LEN (< READ_BUF_LEN); never reached in practice.
                buf.resize(n, 0);
            }
        }
        while self.available() < n {
            if self.eof {
                return Ok(false);
            }
            let Some(buf) = Arc::get_mut(&mut self.buf) else {
                return Ok(false);
            };
            let space = buf.get_mut(self.end..).unwrap_or_default();
            match self.src.read(space) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(SavefileError {
                        offset: self.offset + self.available() as u64,
                        kind: SavefileErrorKind::Io(e.to_string()),
                    })
                }
            }
        }
        Ok(true)
    }

    #[inline]
    fn bytes(&self, n: usize) -> &[u8] {
        self.buf.get(self.start..self.start + n).unwrap_or_default()
    }

    #[inline]
    fn consume(&mut self, n: usize) {
        let n = n.min(self.available());
        self.start += n;
        self.offset += n as u64;
    }
}

#[inline]
fn u16_at(b: &[u8], off: usize, be: bool) -> u16 {
    match b.get(off..off + 2) {
        Some(&[x, y]) if be => u16::from_be_bytes([x, y]),
        Some(&[x, y]) => u16::from_le_bytes([x, y]),
        _ => 0,
    }
}

#[inline]
fn u32_at(b: &[u8], off: usize, be: bool) -> u32 {
    match b.get(off..off + 4) {
        Some(&[w, x, y, z]) if be => u32::from_be_bytes([w, x, y, z]),
        Some(&[w, x, y, z]) => u32::from_le_bytes([w, x, y, z]),
        _ => 0,
    }
}

/// A streaming pcap / pcapng reader.
pub struct Savefile {
    win: Window,
    fmt: Format,
    /// Where the last frame's bytes start in [`Savefile::buffer`].
    last_at: usize,
}

impl Savefile {
    /// Reads the file header (pcap) or the first section header (pcapng).
    pub fn new(src: Box<dyn Read + Send>) -> Result<Self, SavefileError> {
        let mut win = Window::new(src);
        if !win.ensure(4)? {
            return Err(SavefileError {
                offset: 0,
                kind: if win.available() == 0 {
                    SavefileErrorKind::Truncated("file header (the input is empty)")
                } else {
                    SavefileErrorKind::Truncated("file header")
                },
            });
        }
        let magic: [u8; 4] = win.bytes(4).try_into().unwrap_or([0; 4]);
        let fmt = match magic {
            [0x0a, 0x0d, 0x0d, 0x0a] => Format::Pcapng {
                be: false,
                interfaces: Vec::new(),
                last_ts: 0,
            },
            _ => {
                let (be, nanos, header_len) = match u32::from_le_bytes(magic) {
                    0xa1b2_c3d4 => (false, false, 16),
                    0xa1b2_3c4d => (false, true, 16),
                    0xa1b2_cd34 => (false, false, 24),
                    _ => match u32::from_be_bytes(magic) {
                        0xa1b2_c3d4 => (true, false, 16),
                        0xa1b2_3c4d => (true, true, 16),
                        0xa1b2_cd34 => (true, false, 24),
                        _ => {
                            return Err(SavefileError {
                                offset: 0,
                                kind: SavefileErrorKind::BadMagic(magic),
                            })
                        }
                    },
                };
                if !win.ensure(24)? {
                    return Err(SavefileError {
                        offset: 0,
                        kind: SavefileErrorKind::Truncated("file header"),
                    });
                }
                // The upper bits of the link-type field carry FCS information (LT_LINKTYPE).
                let linktype = (u32_at(win.bytes(24), 20, be) & 0xffff) as i32;
                win.consume(24);
                Format::Pcap {
                    be,
                    nanos,
                    linktype,
                    header_len,
                }
            }
        };
        Ok(Savefile {
            win,
            fmt,
            last_at: 0,
        })
    }

    /// Lets the frames be read in place by other threads: [`Savefile::buffer`] holds the last
    /// frame at [`Savefile::last_at`] and stays valid while a clone of it is held; refills
    /// take their buffers from `spare` first.
    pub(crate) fn share_buffers(&mut self, spare: Arc<Pool<Vec<u8>>>) {
        self.win.spare = Some(spare);
    }

    /// The buffer the last frame was read from.
    pub(crate) fn buffer(&self) -> &Arc<Vec<u8>> {
        &self.win.buf
    }

    /// Where the last frame's bytes start in [`Savefile::buffer`].
    pub(crate) fn last_at(&self) -> usize {
        self.last_at
    }

    /// Input offset of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.win.offset
    }

    /// The link type of a classic pcap file, or of the first interface seen in a pcapng file.
    pub fn linktype(&self) -> Option<i32> {
        match &self.fmt {
            Format::Pcap { linktype, .. } => Some(*linktype),
            Format::Pcapng { interfaces, .. } => interfaces.first().map(|i| i.linktype),
        }
    }

    /// The next frame; `Ok(None)` at a clean end of input.
    #[inline]
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, SavefileError> {
        match self.fmt {
            Format::Pcap {
                be,
                nanos,
                linktype,
                header_len,
            } => self.next_pcap(be, nanos, linktype, header_len),
            Format::Pcapng { .. } => self.next_pcapng(),
        }
    }

    fn err(&self, kind: SavefileErrorKind) -> SavefileError {
        SavefileError {
            offset: self.win.offset,
            kind,
        }
    }

    #[inline]
    fn next_pcap(
        &mut self,
        be: bool,
        nanos: bool,
        linktype: i32,
        header_len: usize,
    ) -> Result<Option<Frame<'_>>, SavefileError> {
        if !self.win.ensure(header_len)? {
            if self.win.available() == 0 {
                return Ok(None);
            }
            return Err(self.err(SavefileErrorKind::Truncated("record header")));
        }
        let h = self.win.bytes(header_len);
        let (sec, frac, caplen) = (u32_at(h, 0, be), u32_at(h, 4, be), u32_at(h, 8, be));
        if caplen > MAX_CAPLEN {
            return Err(self.err(SavefileErrorKind::CaplenTooLarge(caplen)));
        }
        let total = header_len + caplen as usize;
        if !self.win.ensure(total)? {
            return Err(self.err(SavefileErrorKind::Truncated("packet record")));
        }
        let frac_us = if nanos { frac / 1000 } else { frac };
        let ts_us = i64::from(sec) * 1_000_000 + i64::from(frac_us);
        let from = self.win.start + header_len;
        self.win.consume(total);
        self.last_at = from;
        let data = self
            .win
            .buf
            .get(from..from + caplen as usize)
            .unwrap_or_default();
        Ok(Some(Frame {
            ts_us,
            linktype,
            data,
        }))
    }

    fn next_pcapng(&mut self) -> Result<Option<Frame<'_>>, SavefileError> {
        loop {
            if !self.win.ensure(8)? {
                if self.win.available() == 0 {
                    return Ok(None);
                }
                return Err(self.err(SavefileErrorKind::Truncated("block header")));
            }
            let Format::Pcapng { be, .. } = self.fmt else {
                return Ok(None);
            };
            let mut be = be;
            let head = self.win.bytes(8);
            if head.get(..4) == Some(&PCAPNG_SHB.to_le_bytes()) {
                // A section header sets the byte order of everything up to the next one.
                if !self.win.ensure(12)? {
                    return Err(self.err(SavefileErrorKind::Truncated("section header")));
                }
                let bom = self.win.bytes(12);
                be = match u32_at(bom, 8, true) {
                    PCAPNG_BOM => true,
                    x if x.swap_bytes() == PCAPNG_BOM => false,
                    x => return Err(self.err(SavefileErrorKind::BadByteOrder(x))),
                };
            }
            let head = self.win.bytes(8);
            let (btype, len) = (u32_at(head, 0, be), u32_at(head, 4, be));
            if len < 12 || len % 4 != 0 {
                return Err(self.err(SavefileErrorKind::BadBlockLength(len)));
            }
            if len > MAX_BLOCK_LEN {
                return Err(self.err(SavefileErrorKind::BlockTooLarge(len)));
            }
            let len = len as usize;
            if !self.win.ensure(len)? {
                return Err(self.err(SavefileErrorKind::Truncated("pcapng block")));
            }
            let block = self.win.bytes(len);
            let trailer = u32_at(block, len - 4, be);
            if trailer as usize != len {
                return Err(self.err(SavefileErrorKind::TrailerMismatch {
                    header: len as u32,
                    trailer,
                }));
            }
            let body_from = self.win.start + 8;
            match btype {
                PCAPNG_SHB => {
                    let body = self.win.bytes(len).get(8..len - 4).unwrap_or_default();
                    if body.len() < 16 {
                        return Err(self.err(SavefileErrorKind::ShortBlock(btype)));
                    }
                    let (major, minor) = (u16_at(body, 4, be), u16_at(body, 6, be));
                    if major != 1 {
                        return Err(self.err(SavefileErrorKind::BadVersion(major, minor)));
                    }
                    self.fmt = Format::Pcapng {
                        be,
                        interfaces: Vec::new(),
                        last_ts: 0,
                    };
                }
                PCAPNG_IDB => {
                    let iface = {
                        let body = self.win.bytes(len).get(8..len - 4).unwrap_or_default();
                        self.interface(body, be)?
                    };
                    let full = matches!(&self.fmt, Format::Pcapng { interfaces, .. } if interfaces.len() >= MAX_INTERFACES);
                    if full {
                        return Err(self.err(SavefileErrorKind::TooManyInterfaces));
                    }
                    if let Format::Pcapng { interfaces, .. } = &mut self.fmt {
                        interfaces.push(iface);
                    }
                }
                PCAPNG_EPB | PCAPNG_PB | PCAPNG_SPB => {
                    let (ts_us, linktype, data_off, caplen) = self.packet_fields(btype, len, be)?;
                    let from = body_from + data_off;
                    self.win.consume(len);
                    self.last_at = from;
                    let data = self.win.buf.get(from..from + caplen).unwrap_or_default();
                    return Ok(Some(Frame {
                        ts_us,
                        linktype,
                        data,
                    }));
                }
                // Name resolution, statistics, decryption secrets, custom blocks: not needed.
                _ => {}
            }
            self.win.consume(len);
        }
    }

    /// (timestamp µs, link type, data offset in the body, captured length) of a packet block.
    fn packet_fields(
        &mut self,
        btype: u32,
        len: usize,
        be: bool,
    ) -> Result<(i64, i32, usize, usize), SavefileError> {
        let body = self.win.bytes(len).get(8..len - 4).unwrap_or_default();
        let (iface_id, ts_raw, caplen, data_off) = match btype {
            PCAPNG_EPB => {
                if body.len() < 20 {
                    return Err(self.err(SavefileErrorKind::ShortBlock(btype)));
                }
                let ts = (u64::from(u32_at(body, 4, be)) << 32) | u64::from(u32_at(body, 8, be));
                (u32_at(body, 0, be), Some(ts), u32_at(body, 12, be), 20)
            }
            PCAPNG_PB => {
                if body.len() < 20 {
                    return Err(self.err(SavefileErrorKind::ShortBlock(btype)));
                }
                let ts = (u64::from(u32_at(body, 4, be)) << 32) | u64::from(u32_at(body, 8, be));
                (
                    u32::from(u16_at(body, 0, be)),
                    Some(ts),
                    u32_at(body, 12, be),
                    20,
                )
            }
            _ => {
                if body.len() < 4 {
                    return Err(self.err(SavefileErrorKind::ShortBlock(btype)));
                }
                // SPB: original length; the captured part is what fits the block and snaplen.
                let orig = u32_at(body, 0, be);
                (0, None, orig, 4)
            }
        };
        let Format::Pcapng {
            interfaces,
            last_ts,
            ..
        } = &mut self.fmt
        else {
            return Err(SavefileError {
                offset: self.win.offset,
                kind: SavefileErrorKind::UnknownInterface(iface_id),
            });
        };
        let Some(iface) = interfaces.get(iface_id as usize).copied() else {
            return Err(SavefileError {
                offset: self.win.offset,
                kind: SavefileErrorKind::UnknownInterface(iface_id),
            });
        };
        let room = body.len() - data_off;
        let caplen = if btype == PCAPNG_SPB {
            let mut c = caplen.min(room as u32);
            if iface.snaplen > 0 {
                c = c.min(iface.snaplen);
            }
            c
        } else {
            caplen
        };
        if caplen > MAX_CAPLEN {
            return Err(SavefileError {
                offset: self.win.offset,
                kind: SavefileErrorKind::CaplenTooLarge(caplen),
            });
        }
        if caplen as usize > room {
            return Err(SavefileError {
                offset: self.win.offset,
                kind: SavefileErrorKind::ShortBlock(btype),
            });
        }
        let ts_us = match ts_raw {
            Some(t) => {
                let us = to_micros(t, iface.units_per_sec).saturating_add(iface.offset_us);
                *last_ts = us;
                us
            }
            None => *last_ts,
        };
        Ok((ts_us, iface.linktype, data_off, caplen as usize))
    }

    fn interface(&self, body: &[u8], be: bool) -> Result<Interface, SavefileError> {
        if body.len() < 8 {
            return Err(self.err(SavefileErrorKind::ShortBlock(PCAPNG_IDB)));
        }
        let mut iface = Interface {
            linktype: i32::from(u16_at(body, 0, be)),
            snaplen: u32_at(body, 4, be),
            units_per_sec: 1_000_000,
            offset_us: 0,
        };
        let mut off = 8usize;
        while off + 4 <= body.len() {
            let (code, olen) = (
                u16_at(body, off, be),
                usize::from(u16_at(body, off + 2, be)),
            );
            off += 4;
            if code == OPT_END {
                break;
            }
            let Some(val) = body.get(off..off + olen) else {
                break; // An option running past the block: ignore the rest of the options.
            };
            match code {
                OPT_IF_TSRESOL if olen >= 1 => {
                    let v = val.first().copied().unwrap_or(6);
                    let units = if v & 0x80 != 0 {
                        1u64.checked_shl(u32::from(v & 0x7f))
                            .filter(|_| v & 0x7f < 64)
                    } else {
                        10u64.checked_pow(u32::from(v))
                    };
                    match units {
                        Some(u) if u > 0 => iface.units_per_sec = u,
                        _ => return Err(self.err(SavefileErrorKind::BadTsResol(v))),
                    }
                }
                OPT_IF_TSOFFSET if olen == 8 => {
                    let raw = if be {
                        i64::from_be_bytes(val.try_into().unwrap_or([0; 8]))
                    } else {
                        i64::from_le_bytes(val.try_into().unwrap_or([0; 8]))
                    };
                    iface.offset_us = raw.saturating_mul(1_000_000);
                }
                _ => {}
            }
            off += olen.div_ceil(4) * 4;
        }
        Ok(iface)
    }
}

/// `units` timestamp units (`per_sec` of them a second) as µs.
#[inline]
fn to_micros(units: u64, per_sec: u64) -> i64 {
    let us = match per_sec {
        1_000_000 => units,
        1_000_000_000 => units / 1000,
        p if p > 1_000_000 && p % 1_000_000 == 0 => units / (p / 1_000_000),
        p => {
            (u128::from(units) * 1_000_000 / u128::from(p.max(1))).min(u128::from(u64::MAX)) as u64
        }
    };
    i64::try_from(us).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap_le(nanos: bool, recs: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&(if nanos { 0xa1b2_3c4du32 } else { 0xa1b2_c3d4 }).to_le_bytes());
        b.extend_from_slice(&[2, 0, 4, 0]);
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&65535u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        for (s, f, d) in recs {
            b.extend_from_slice(&s.to_le_bytes());
            b.extend_from_slice(&f.to_le_bytes());
            b.extend_from_slice(&(d.len() as u32).to_le_bytes());
            b.extend_from_slice(&(d.len() as u32).to_le_bytes());
            b.extend_from_slice(d);
        }
        b
    }

    type Frames = Vec<(i64, i32, Vec<u8>)>;

    fn frames(bytes: Vec<u8>) -> (Frames, Option<SavefileError>) {
        let mut r = match Savefile::new(Box::new(std::io::Cursor::new(bytes))) {
            Ok(r) => r,
            Err(e) => return (Vec::new(), Some(e)),
        };
        let mut v = Vec::new();
        loop {
            match r.next_frame() {
                Ok(Some(f)) => v.push((f.ts_us, f.linktype, f.data.to_vec())),
                Ok(None) => return (v, None),
                Err(e) => return (v, Some(e)),
            }
        }
    }

    /// Frames read in place by other threads (`parallel`) stay intact while they are held:
    /// a refill of a shared buffer goes on in another one, and a buffer given back is reused.
    #[test]
    fn shared_buffers_are_never_overwritten_while_held() {
        // ≈ 3.5 buffers of frames, of varied sizes, each filled with its own index.
        let data: Vec<Vec<u8>> = (0..5000u32)
            .map(|i| vec![(i % 251) as u8; 200 + (i as usize * 37) % 1200])
            .collect();
        let recs: Vec<(u32, u32, &[u8])> = data
            .iter()
            .enumerate()
            .map(|(i, d)| (i as u32, 0, &d[..]))
            .collect();
        let bytes = pcap_le(false, &recs);
        assert!(bytes.len() > 3 * READ_BUF_LEN);
        let spare = Arc::new(Pool::new(2));
        let mut r = Savefile::new(Box::new(std::io::Cursor::new(bytes))).expect("header");
        r.share_buffers(Arc::clone(&spare));
        let mut held: std::collections::VecDeque<(usize, Arc<Vec<u8>>, usize, usize)> =
            std::collections::VecDeque::new();
        let (mut i, mut switches) = (0usize, 0usize);
        while let Some(f) = r.next_frame().expect("frame") {
            let len = f.data.len();
            let (at, buf) = (r.last_at(), Arc::clone(r.buffer()));
            if held
                .back()
                .is_some_and(|(_, last, _, _)| !Arc::ptr_eq(last, &buf))
            {
                switches += 1;
            }
            held.push_back((i, buf, at, len));
            // Hold the last 700 frames (more than a buffer's worth), as workers would.
            while held.len() > 700 {
                if let Some((j, b, at, len)) = held.pop_front() {
                    assert_eq!(b.get(at..at + len), Some(&data[j][..]), "frame {j}");
                    if let Some(v) = Arc::into_inner(b) {
                        spare.give(v);
                    }
                }
            }
            i += 1;
        }
        for (j, b, at, len) in held {
            assert_eq!(b.get(at..at + len), Some(&data[j][..]), "frame {j}");
        }
        assert_eq!(i, data.len());
        // The refills of held buffers moved on to other ones.
        assert!(switches >= 3, "{switches}");
    }

    #[test]
    fn pcap_micro_and_nano_magic() {
        let (v, e) = frames(pcap_le(false, &[(10, 5, b"abc"), (11, 0, b"")]));
        assert_eq!(e, None);
        assert_eq!(
            v,
            vec![(10_000_005, 1, b"abc".to_vec()), (11_000_000, 1, vec![])]
        );
        let (v, e) = frames(pcap_le(true, &[(10, 5_000, b"x")]));
        assert_eq!(e, None);
        assert_eq!(v[0].0, 10_000_005);
    }

    #[test]
    fn pcap_damage_is_an_error_with_its_offset() {
        let mut b = pcap_le(false, &[(1, 0, b"abcd")]);
        let good = b.len() as u64;
        // A second record claiming 1 GiB.
        b.extend_from_slice(&[0; 8]);
        b.extend_from_slice(&(1u32 << 30).to_le_bytes());
        b.extend_from_slice(&[0; 4]);
        let (v, e) = frames(b);
        assert_eq!(v.len(), 1);
        let e = e.unwrap();
        assert_eq!(e.offset, good);
        assert_eq!(e.kind, SavefileErrorKind::CaplenTooLarge(1 << 30));
        // Cut in the middle of a record.
        let b = pcap_le(false, &[(1, 0, b"abcd"), (2, 0, b"efgh")]);
        let (v, e) = frames(b[..b.len() - 2].to_vec());
        assert_eq!(v.len(), 1);
        assert_eq!(e.unwrap().offset, 24 + 16 + 4);
        assert!(frames(b"junkjunkjunkjunkjunkjunk".to_vec()).1.is_some());
        assert!(frames(Vec::new()).1.is_some());
    }

    #[test]
    fn tsresol_and_conversions() {
        assert_eq!(to_micros(5_000_000_000, 1_000_000_000), 5_000_000);
        assert_eq!(to_micros(1 << 20, 1 << 20), 1_000_000);
        assert_eq!(to_micros(7, 1_000_000), 7);
        assert_eq!(to_micros(3, 1000), 3000);
    }
}
