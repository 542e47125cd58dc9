//! pcap and pcapng writers with a running clock.

#[allow(unused_imports)]
use super::*;

pub const LINKTYPE_ETHERNET: u32 = 1;
pub const LINKTYPE_LINUX_SLL2: u32 = 276;

/// A classic pcap file in memory (little endian, µs).
pub struct Pcap {
    pub bytes: Vec<u8>,
}

impl Pcap {
    pub fn new(linktype: u32) -> Self {
        let mut b = Vec::new();
        b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        b.extend_from_slice(&2u16.to_le_bytes());
        b.extend_from_slice(&4u16.to_le_bytes());
        b.extend_from_slice(&0i32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&65535u32.to_le_bytes());
        b.extend_from_slice(&linktype.to_le_bytes());
        Pcap { bytes: b }
    }
    /// Appends one frame at `t_us` µs after 2026-11-26T12:00:00Z.
    pub fn push(&mut self, t_us: u64, frame: &[u8]) {
        let t = EPOCH_US + t_us;
        self.bytes
            .extend_from_slice(&((t / 1_000_000) as u32).to_le_bytes());
        self.bytes
            .extend_from_slice(&((t % 1_000_000) as u32).to_le_bytes());
        self.bytes
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.bytes
            .extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(frame);
    }
}

impl Pcap {
    /// The records written so far: (µs after the builders' epoch, frame).
    pub fn records(&self) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut off = 24;
        while off + 16 <= self.bytes.len() {
            let u = |o: usize| u32::from_le_bytes(self.bytes[o..o + 4].try_into().unwrap());
            let t = u64::from(u(off)) * 1_000_000 + u64::from(u(off + 4)) - EPOCH_US;
            let len = u(off + 8) as usize;
            out.push((t, self.bytes[off + 16..off + 16 + len].to_vec()));
            off += 16 + len;
        }
        out
    }
}

/// 2026-11-26T12:00:00Z in µs: time 0 of every builder.
pub const EPOCH_US: u64 = 1_795_694_400_000_000;

pub const LINKTYPE_RAW: u16 = 101;
pub const LINKTYPE_LINUX_SLL: u16 = 113;

/// A pcapng file in memory, as dumpcap writes one: sections (either byte order), one Interface
/// Description Block per interface with its own link type and `if_tsresol`, Enhanced Packet
/// Blocks, and any other block on request.
pub struct Pcapng {
    pub bytes: Vec<u8>,
    be: bool,
    /// Units per second of each interface of the current section.
    units: Vec<u64>,
}

impl Pcapng {
    pub fn new(big_endian: bool) -> Self {
        let mut p = Pcapng {
            bytes: Vec::new(),
            be: big_endian,
            units: Vec::new(),
        };
        p.section(big_endian);
        p
    }
    fn u16b(&self, v: u16) -> [u8; 2] {
        if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn u32b(&self, v: u32) -> [u8; 4] {
        if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    /// Appends a block of `btype` with `body` (padded to 4 bytes).
    pub fn block(&mut self, btype: u32, body: &[u8]) {
        let mut body = body.to_vec();
        while body.len() % 4 != 0 {
            body.push(0);
        }
        let len = (12 + body.len()) as u32;
        let (t, l) = (self.u32b(btype), self.u32b(len));
        self.bytes.extend_from_slice(&t);
        self.bytes.extend_from_slice(&l);
        self.bytes.extend_from_slice(&body);
        self.bytes.extend_from_slice(&l);
    }
    /// Starts a new section (its interfaces start again at 0).
    pub fn section(&mut self, big_endian: bool) {
        self.be = big_endian;
        self.units.clear();
        let mut body = Vec::new();
        body.extend_from_slice(&self.u32b(0x1A2B_3C4D));
        body.extend_from_slice(&self.u16b(1));
        body.extend_from_slice(&self.u16b(0));
        body.extend_from_slice(&[0xff; 8]); // section length unknown
        body.extend_from_slice(&[0, 0, 0, 0]); // opt_endofopt
        self.block(0x0A0D_0D0A, &body);
    }
    /// Describes an interface; `tsresol` is the `if_tsresol` byte (None: µs). Returns its id.
    pub fn interface(&mut self, linktype: u16, tsresol: Option<u8>) -> u32 {
        let mut body = Vec::new();
        body.extend_from_slice(&self.u16b(linktype));
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&self.u32b(262_144));
        // if_name, then if_tsresol, then the end of options.
        let name = format!("if{}", self.units.len());
        body.extend_from_slice(&self.u16b(2));
        body.extend_from_slice(&self.u16b(name.len() as u16));
        body.extend_from_slice(name.as_bytes());
        while body.len() % 4 != 0 {
            body.push(0);
        }
        let mut units = 1_000_000u64;
        if let Some(r) = tsresol {
            body.extend_from_slice(&self.u16b(9));
            body.extend_from_slice(&self.u16b(1));
            body.extend_from_slice(&[r, 0, 0, 0]);
            units = if r & 0x80 != 0 {
                1 << (r & 0x7f)
            } else {
                10u64.pow(u32::from(r))
            };
        }
        body.extend_from_slice(&[0, 0, 0, 0]);
        self.block(1, &body);
        self.units.push(units);
        (self.units.len() - 1) as u32
    }
    /// An Enhanced Packet Block on interface `iface` at `t_us` after the builders' epoch.
    pub fn packet(&mut self, iface: u32, t_us: u64, frame: &[u8]) {
        let units = self.units.get(iface as usize).copied().unwrap_or(1_000_000);
        let t = ((EPOCH_US + t_us) as u128 * units as u128 / 1_000_000) as u64;
        let mut body = Vec::new();
        body.extend_from_slice(&self.u32b(iface));
        body.extend_from_slice(&self.u32b((t >> 32) as u32));
        body.extend_from_slice(&self.u32b(t as u32));
        body.extend_from_slice(&self.u32b(frame.len() as u32));
        body.extend_from_slice(&self.u32b(frame.len() as u32));
        body.extend_from_slice(frame);
        self.block(6, &body);
    }
    /// A Simple Packet Block (interface 0, no timestamp).
    pub fn simple_packet(&mut self, frame: &[u8]) {
        let mut body = Vec::new();
        body.extend_from_slice(&self.u32b(frame.len() as u32));
        body.extend_from_slice(frame);
        self.block(3, &body);
    }
}
