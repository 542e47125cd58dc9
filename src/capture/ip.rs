//! Network layer: IPv4 and IPv6 (with extension headers), fragment detection.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::link::{be16, be32};

pub const PROTO_IPIP: u8 = 4;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_IPV6: u8 = 41;
pub const PROTO_GRE: u8 = 47;

/// Most IPv6 extension headers walked before the upper-layer header. Real packets carry one or
/// two; a long chain is an evasion attempt or garbage.
pub const MAX_EXT_HEADERS: usize = 8;

/// A fragment of a larger datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fragment {
    pub id: u32,
    /// Byte offset of this fragment's data in the datagram.
    pub offset: usize,
    pub more: bool,
}

/// One decoded IP header: addresses, upper protocol, and its payload (trimmed to the IP length,
/// so Ethernet padding is gone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpPacket<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub payload: &'a [u8],
    pub frag: Option<Fragment>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpSkip {
    Truncated,
    BadVersion,
    BadHeaderLength,
    TooManyExtHeaders,
}

impl IpSkip {
    pub fn reason(self) -> &'static str {
        match self {
            IpSkip::Truncated => "ip_truncated",
            IpSkip::BadVersion => "ip_bad_version",
            IpSkip::BadHeaderLength => "ip_bad_header_length",
            IpSkip::TooManyExtHeaders => "ipv6_too_many_ext_headers",
        }
    }
}

pub fn ipv4(b: &[u8]) -> Result<IpPacket<'_>, IpSkip> {
    let first = *b.first().ok_or(IpSkip::Truncated)?;
    if first >> 4 != 4 {
        return Err(IpSkip::BadVersion);
    }
    let ihl = usize::from(first & 0x0f) * 4;
    if ihl < 20 {
        return Err(IpSkip::BadHeaderLength);
    }
    let total = usize::from(be16(b, 2).ok_or(IpSkip::Truncated)?);
    if b.len() < ihl {
        return Err(IpSkip::Truncated);
    }
    // Total length 0 happens with TSO on the capturing host: trust the frame then. A snaplen
    // cut leaves fewer bytes than `total`; keep what we have (the transport layer checks).
    let end = if total == 0 {
        b.len()
    } else {
        total.min(b.len())
    };
    if end < ihl {
        return Err(IpSkip::BadHeaderLength);
    }
    let id = be16(b, 4).ok_or(IpSkip::Truncated)?;
    let ff = be16(b, 6).ok_or(IpSkip::Truncated)?;
    let more = ff & 0x2000 != 0;
    let offset = usize::from(ff & 0x1fff) * 8;
    let src = Ipv4Addr::from(be32(b, 12).ok_or(IpSkip::Truncated)?);
    let dst = Ipv4Addr::from(be32(b, 16).ok_or(IpSkip::Truncated)?);
    let proto = *b.get(9).ok_or(IpSkip::Truncated)?;
    let frag = (more || offset != 0).then_some(Fragment {
        id: u32::from(id),
        offset,
        more,
    });
    Ok(IpPacket {
        src: IpAddr::V4(src),
        dst: IpAddr::V4(dst),
        proto,
        payload: b.get(ihl..end).ok_or(IpSkip::Truncated)?,
        frag,
    })
}

pub fn ipv6(b: &[u8]) -> Result<IpPacket<'_>, IpSkip> {
    let first = *b.first().ok_or(IpSkip::Truncated)?;
    if first >> 4 != 6 {
        return Err(IpSkip::BadVersion);
    }
    let plen = usize::from(be16(b, 4).ok_or(IpSkip::Truncated)?);
    let src: [u8; 16] = b
        .get(8..24)
        .and_then(|s| s.try_into().ok())
        .ok_or(IpSkip::Truncated)?;
    let dst: [u8; 16] = b
        .get(24..40)
        .and_then(|s| s.try_into().ok())
        .ok_or(IpSkip::Truncated)?;
    // Payload length 0 is a jumbogram (or TSO); use the frame.
    let end = if plen == 0 {
        b.len()
    } else {
        40usize.saturating_add(plen).min(b.len())
    };
    let mut next = *b.get(6).ok_or(IpSkip::Truncated)?;
    let mut off = 40usize;
    let mut frag = None;
    for _ in 0..MAX_EXT_HEADERS {
        match next {
            // Hop-by-hop, routing, destination options, mobility: (next, len in 8-octet units - 1)
            0 | 43 | 60 | 135 => {
                let nh = *b.get(off).ok_or(IpSkip::Truncated)?;
                let len = (usize::from(*b.get(off + 1).ok_or(IpSkip::Truncated)?) + 1) * 8;
                next = nh;
                off += len;
            }
            // AH: length in 4-octet units - 2.
            51 => {
                let nh = *b.get(off).ok_or(IpSkip::Truncated)?;
                let len = (usize::from(*b.get(off + 1).ok_or(IpSkip::Truncated)?) + 2) * 4;
                next = nh;
                off += len;
            }
            44 => {
                let nh = *b.get(off).ok_or(IpSkip::Truncated)?;
                let fo = be16(b, off + 2).ok_or(IpSkip::Truncated)?;
                let id = be32(b, off + 4).ok_or(IpSkip::Truncated)?;
                let offset = usize::from(fo >> 3) * 8;
                let more = fo & 1 != 0;
                // An "atomic fragment" (offset 0, M=0) is a whole datagram.
                if more || offset != 0 {
                    frag = Some(Fragment { id, offset, more });
                }
                next = nh;
                off += 8;
                if frag.is_some() {
                    // Headers after the fragment header belong to the reassembled payload.
                    break;
                }
            }
            _ => {
                if off > end {
                    return Err(IpSkip::Truncated);
                }
                return Ok(IpPacket {
                    src: IpAddr::V6(Ipv6Addr::from(src)),
                    dst: IpAddr::V6(Ipv6Addr::from(dst)),
                    proto: next,
                    payload: b.get(off..end).ok_or(IpSkip::Truncated)?,
                    frag,
                });
            }
        }
    }
    if frag.is_some() {
        return Ok(IpPacket {
            src: IpAddr::V6(Ipv6Addr::from(src)),
            dst: IpAddr::V6(Ipv6Addr::from(dst)),
            proto: next,
            payload: b.get(off..end).ok_or(IpSkip::Truncated)?,
            frag,
        });
    }
    Err(IpSkip::TooManyExtHeaders)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_fragment_and_padding() {
        let mut p = vec![
            0x45, 0, 0, 24, 0, 7, 0x20, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p.extend_from_slice(&[1, 2, 3, 4, 0xee, 0xee]); // 2 bytes of Ethernet padding
        let ip = ipv4(&p).unwrap();
        assert_eq!(ip.payload, &[1, 2, 3, 4]);
        assert_eq!(
            ip.frag,
            Some(Fragment {
                id: 7,
                offset: 0,
                more: true
            })
        );
        for cut in 0..p.len() {
            let _ = ipv4(&p[..cut]);
        }
    }

    #[test]
    fn ipv6_ext_headers() {
        let mut p = vec![0x60, 0, 0, 0, 0, 20, 0, 64];
        p.extend_from_slice(&[0u8; 32]);
        // hop-by-hop (8 bytes) → fragment (8 bytes, offset 0, M=1) → UDP
        p.extend_from_slice(&[44, 0, 0, 0, 0, 0, 0, 0]);
        p.extend_from_slice(&[17, 0, 0, 1, 0, 0, 0, 9]);
        p.extend_from_slice(&[9, 9, 9, 9]);
        let ip = ipv6(&p).unwrap();
        assert_eq!(ip.proto, 17);
        assert_eq!(ip.payload, &[9, 9, 9, 9]);
        assert_eq!(ip.frag.map(|f| (f.id, f.more)), Some((9, true)));
        for cut in 0..p.len() {
            let _ = ipv6(&p[..cut]);
        }
    }
}
