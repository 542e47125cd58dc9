//! Decimal numbers and dotted-quad IPv4 addresses as `Display` writes them (ASCII bytes, into
//! a stack buffer), without `core::fmt` (issue #11: a 65 536-client flood writes millions of
//! numbers and addresses into evidence summaries and its JSON result; through `write!` and
//! serde each cost hundreds of instructions).
//!
//! Users: the evidence summaries (`correlate::evidence`) and the JSON writer
//! (`output::detection_json`). `tests` compares both functions with `Display`.

use std::net::Ipv4Addr;

/// Digits of `u64::MAX`.
pub const U64_DIGITS: usize = 20;
/// Length of `255.255.255.255`.
pub const IPV4_LEN: usize = 15;
/// The buffer [`ipv4_text`] writes into: each octet is stored as four bytes at once (digits,
/// a dot, padding), so the last one may write one byte past the longest text.
pub const IPV4_BUF: usize = IPV4_LEN + 1;

/// Decimal text of `n` (as `n.to_string()`), written at the end of `buf`.
pub fn u64_text(n: u64, buf: &mut [u8; U64_DIGITS]) -> &[u8] {
    let mut i = buf.len();
    let mut n = n;
    loop {
        // u64::MAX has 20 digits: `i` stays in the buffer.
        i = i.saturating_sub(1);
        if let Some(b) = buf.get_mut(i) {
            // A digit: the cast cannot truncate.
            *b = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.get(i..).unwrap_or_default()
}

/// Per octet value: its digits followed by a dot, padded to four bytes, and the digit count.
const OCTETS: [([u8; 4], u8); 256] = octet_table();

// `v` < 256 = `t.len()` in the loop: the index is in bounds (a `const fn` cannot use `get_mut`).
#[allow(clippy::indexing_slicing)]
const fn octet_table() -> [([u8; 4], u8); 256] {
    let mut t = [([0u8; 4], 0u8); 256];
    let mut v = 0;
    while v < 256 {
        // `v` < 256: the casts cannot truncate.
        let (h, d, u) = ((v / 100) as u8, (v / 10 % 10) as u8, (v % 10) as u8);
        t[v] = if v >= 100 {
            ([b'0' + h, b'0' + d, b'0' + u, b'.'], 3)
        } else if v >= 10 {
            ([b'0' + d, b'0' + u, b'.', 0], 2)
        } else {
            ([b'0' + u, b'.', 0, 0], 1)
        };
        v += 1;
    }
    t
}

/// [`OCTETS`]' entry for `o` (every `u8` has one: the fallback is never taken, and the
/// compiler drops the check).
fn octet(o: u8) -> ([u8; 4], u8) {
    OCTETS.get(usize::from(o)).copied().unwrap_or(([0; 4], 0))
}

/// Dotted-quad text of `a` (as `a.to_string()`): four table lookups and four 4-byte stores
/// (issue #11: the digit-by-digit version was ≈ 150 instructions per address, and a flood's
/// result and summaries print about twelve addresses per detection).
pub fn ipv4_text(a: Ipv4Addr, buf: &mut [u8; IPV4_BUF]) -> &[u8] {
    let mut len = 0;
    for o in a.octets() {
        let (text, n) = octet(o);
        // `len` ≤ 12 before the fourth octet: `len + 4` ≤ 16 = IPV4_BUF.
        if let Some(d) = buf.get_mut(len..len + 4) {
            d.copy_from_slice(&text);
        }
        len += usize::from(n) + 1;
    }
    // Without the fourth octet's dot.
    buf.get(..len - 1).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_display_text() {
        let mut buf = [0u8; U64_DIGITS];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let edges = [
            0,
            1,
            9,
            10,
            99,
            100,
            255,
            256,
            999,
            1000,
            u64::MAX - 1,
            u64::MAX,
        ];
        for n in (0..2_000).chain(edges).chain((0..64).map(|s| 1u64 << s)) {
            assert_eq!(u64_text(n, &mut buf), n.to_string().as_bytes());
        }
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let n = x >> (x % 64);
            assert_eq!(u64_text(n, &mut buf), n.to_string().as_bytes());
        }
    }

    #[test]
    fn addresses_are_display_text() {
        let mut buf = [0u8; IPV4_BUF];
        for o in 0..=255u8 {
            for a in [
                Ipv4Addr::new(o, 0, 0, 0),
                Ipv4Addr::new(255, o, 9, 10),
                Ipv4Addr::new(1, 99, o, 100),
                Ipv4Addr::new(203, 0, 113, o),
            ] {
                assert_eq!(ipv4_text(a, &mut buf), a.to_string().as_bytes());
            }
        }
        let a = Ipv4Addr::new(255, 255, 255, 255);
        assert_eq!(ipv4_text(a, &mut buf), b"255.255.255.255");
    }
}
