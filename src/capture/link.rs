//! Link layer: strip the frame header of each supported link type down to an IP packet.

/// Link types we decode (libpcap `LINKTYPE_*` values).
pub const LINKTYPE_NULL: i32 = 0;
pub const LINKTYPE_ETHERNET: i32 = 1;
/// `DLT_RAW` as most platforms number it in files.
pub const LINKTYPE_RAW: i32 = 101;
/// `DLT_RAW` as OpenBSD/some libpcap builds write it.
pub const LINKTYPE_RAW_ALT: i32 = 12;
pub const LINKTYPE_RAW_ALT2: i32 = 14;
pub const LINKTYPE_FDDI: i32 = 10;
pub const LINKTYPE_LOOP: i32 = 108;
pub const LINKTYPE_LINUX_SLL: i32 = 113;
pub const LINKTYPE_IPV4: i32 = 228;
pub const LINKTYPE_IPV6: i32 = 229;
pub const LINKTYPE_LINUX_SLL2: i32 = 276;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;

/// Most VLAN tags peeled off one frame. QinQ is two; more is either exotic or an attack that
/// would make us loop over attacker-controlled headers.
pub const MAX_VLAN_TAGS: usize = 4;

/// The network-layer protocol a frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L3 {
    Ipv4,
    Ipv6,
}

/// Why a frame was not decoded (a fixed vocabulary: these become metric labels).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkSkip {
    /// Frame shorter than its link header.
    Truncated,
    /// A link type we do not decode.
    UnsupportedLinktype,
    /// Not IPv4/IPv6 (ARP, LLDP, …): normal traffic, counted, not an error.
    NotIp,
    /// More VLAN tags than [`MAX_VLAN_TAGS`].
    TooManyTags,
}

impl LinkSkip {
    pub fn reason(self) -> &'static str {
        match self {
            LinkSkip::Truncated => "link_truncated",
            LinkSkip::UnsupportedLinktype => "unsupported_linktype",
            LinkSkip::NotIp => "not_ip",
            LinkSkip::TooManyTags => "too_many_vlan_tags",
        }
    }
}

/// Whether we can decode this link type at all (checked once per capture).
pub fn supported(linktype: i32) -> bool {
    matches!(
        linktype,
        LINKTYPE_NULL
            | LINKTYPE_ETHERNET
            | LINKTYPE_RAW
            | LINKTYPE_RAW_ALT
            | LINKTYPE_RAW_ALT2
            | LINKTYPE_LOOP
            | LINKTYPE_LINUX_SLL
            | LINKTYPE_IPV4
            | LINKTYPE_IPV6
            | LINKTYPE_LINUX_SLL2
            | LINKTYPE_FDDI
    )
}

/// Strips the link header: returns the network protocol and the bytes after the header.
pub fn decode(linktype: i32, frame: &[u8]) -> Result<(L3, &[u8]), LinkSkip> {
    match linktype {
        LINKTYPE_ETHERNET => ethernet(frame),
        LINKTYPE_RAW | LINKTYPE_RAW_ALT | LINKTYPE_RAW_ALT2 => raw(frame),
        LINKTYPE_IPV4 => Ok((L3::Ipv4, frame)),
        LINKTYPE_IPV6 => Ok((L3::Ipv6, frame)),
        LINKTYPE_LINUX_SLL => {
            // pkttype(2) hatype(2) halen(2) addr(8) protocol(2)
            let proto = be16(frame, 14).ok_or(LinkSkip::Truncated)?;
            let rest = frame.get(16..).ok_or(LinkSkip::Truncated)?;
            ethertype(proto, rest)
        }
        LINKTYPE_LINUX_SLL2 => {
            // protocol(2) reserved(2) ifindex(4) hatype(2) pkttype(1) halen(1) addr(8)
            let proto = be16(frame, 0).ok_or(LinkSkip::Truncated)?;
            let rest = frame.get(20..).ok_or(LinkSkip::Truncated)?;
            ethertype(proto, rest)
        }
        LINKTYPE_NULL | LINKTYPE_LOOP => {
            let fam = frame.get(..4).ok_or(LinkSkip::Truncated)?;
            let rest = frame.get(4..).ok_or(LinkSkip::Truncated)?;
            // NULL is in the capturing host's byte order, LOOP in network order; the AF values
            // are small, so whichever end holds a non-zero byte tells us.
            let af = if linktype == LINKTYPE_LOOP || (fam[0] == 0 && fam[1] == 0) {
                u32::from_be_bytes([fam[0], fam[1], fam[2], fam[3]])
            } else {
                u32::from_le_bytes([fam[0], fam[1], fam[2], fam[3]])
            };
            match af {
                2 => Ok((L3::Ipv4, rest)),
                // AF_INET6 differs by OS: BSD 24, FreeBSD 28, Darwin 30, Linux 10.
                10 | 24 | 28 | 30 => Ok((L3::Ipv6, rest)),
                _ => Err(LinkSkip::NotIp),
            }
        }
        LINKTYPE_FDDI => {
            // FC(1) DA(6) SA(6), then LLC/SNAP AA AA 03 OUI(3) ethertype(2). Some writers pad
            // the header by 3 bytes; look for the SNAP header at both places.
            for off in [13usize, 16] {
                if frame.get(off..off + 3) == Some(&[0xaa, 0xaa, 0x03][..]) {
                    let ty = be16(frame, off + 6).ok_or(LinkSkip::Truncated)?;
                    return ethertype(ty, frame.get(off + 8..).ok_or(LinkSkip::Truncated)?);
                }
            }
            Err(if frame.len() < 21 {
                LinkSkip::Truncated
            } else {
                LinkSkip::NotIp
            })
        }
        _ => Err(LinkSkip::UnsupportedLinktype),
    }
}

/// Ethernet II with up to [`MAX_VLAN_TAGS`] 802.1Q/802.1ad tags.
pub fn ethernet(frame: &[u8]) -> Result<(L3, &[u8]), LinkSkip> {
    let mut ty = be16(frame, 12).ok_or(LinkSkip::Truncated)?;
    let mut off = 14usize;
    let mut tags = 0;
    while matches!(ty, ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD) {
        tags += 1;
        if tags > MAX_VLAN_TAGS {
            return Err(LinkSkip::TooManyTags);
        }
        ty = be16(frame, off + 2).ok_or(LinkSkip::Truncated)?;
        off += 4;
    }
    let rest = frame.get(off..).ok_or(LinkSkip::Truncated)?;
    ethertype(ty, rest)
}

fn raw(frame: &[u8]) -> Result<(L3, &[u8]), LinkSkip> {
    match frame.first().map(|b| b >> 4) {
        Some(4) => Ok((L3::Ipv4, frame)),
        Some(6) => Ok((L3::Ipv6, frame)),
        Some(_) => Err(LinkSkip::NotIp),
        None => Err(LinkSkip::Truncated),
    }
}

const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
const ETHERTYPE_MPLS: u16 = 0x8847;
const ETHERTYPE_MPLS_MCAST: u16 = 0x8848;
/// MPLS labels popped at most (real stacks are 1–3 deep).
pub const MAX_MPLS_LABELS: usize = 8;

fn ethertype(ty: u16, rest: &[u8]) -> Result<(L3, &[u8]), LinkSkip> {
    match ty {
        ETHERTYPE_IPV4 => Ok((L3::Ipv4, rest)),
        ETHERTYPE_IPV6 => Ok((L3::Ipv6, rest)),
        // PPPoE session (DSL access networks): 6-byte header, then the PPP protocol.
        ETHERTYPE_PPPOE_SESSION => match be16(rest, 6).ok_or(LinkSkip::Truncated)? {
            0x0021 => Ok((L3::Ipv4, rest.get(8..).ok_or(LinkSkip::Truncated)?)),
            0x0057 => Ok((L3::Ipv6, rest.get(8..).ok_or(LinkSkip::Truncated)?)),
            _ => Err(LinkSkip::NotIp),
        },
        // MPLS: pop to the bottom of the stack; the payload's version nibble says which IP.
        ETHERTYPE_MPLS | ETHERTYPE_MPLS_MCAST => {
            let mut off = 0usize;
            for _ in 0..MAX_MPLS_LABELS {
                let entry = be32(rest, off).ok_or(LinkSkip::Truncated)?;
                off += 4;
                if entry & 0x100 != 0 {
                    return raw(rest.get(off..).ok_or(LinkSkip::Truncated)?);
                }
            }
            Err(LinkSkip::TooManyTags)
        }
        _ => Err(LinkSkip::NotIp),
    }
}

#[inline]
pub(crate) fn be16(b: &[u8], off: usize) -> Option<u16> {
    let s = b.get(off..off.checked_add(2)?)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

#[inline]
pub(crate) fn be32(b: &[u8], off: usize) -> Option<u32> {
    let s = b.get(off..off.checked_add(4)?)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qinq_and_sll2() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 20, 0x86, 0xdd, 0x60]);
        assert_eq!(decode(LINKTYPE_ETHERNET, &f), Ok((L3::Ipv6, &[0x60u8][..])));
        let mut s = vec![0x08, 0x00];
        s.extend_from_slice(&[0u8; 18]);
        s.push(0x45);
        assert_eq!(
            decode(LINKTYPE_LINUX_SLL2, &s),
            Ok((L3::Ipv4, &[0x45u8][..]))
        );
        assert_eq!(
            decode(LINKTYPE_NULL, &[2, 0, 0, 0, 0x45]),
            Ok((L3::Ipv4, &[0x45u8][..]))
        );
        assert_eq!(
            decode(LINKTYPE_LOOP, &[0, 0, 0, 24, 0x60]),
            Ok((L3::Ipv6, &[0x60u8][..]))
        );
        assert_eq!(decode(999, &f), Err(LinkSkip::UnsupportedLinktype));
        for cut in 0..f.len() {
            let _ = decode(LINKTYPE_ETHERNET, &f[..cut]);
            let _ = decode(LINKTYPE_LINUX_SLL, &f[..cut]);
        }
    }
}
