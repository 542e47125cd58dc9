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

/// Dotted-quad text of `a` (as `a.to_string()`).
pub fn ipv4_text(a: Ipv4Addr, buf: &mut [u8; IPV4_LEN]) -> &[u8] {
    let mut len = 0;
    for (k, o) in a.octets().into_iter().enumerate() {
        if k > 0 {
            put(buf, &mut len, b'.');
        }
        if o >= 100 {
            put(buf, &mut len, b'0' + o / 100);
        }
        if o >= 10 {
            put(buf, &mut len, b'0' + (o / 10) % 10);
        }
        put(buf, &mut len, b'0' + o % 10);
    }
    buf.get(..len).unwrap_or_default()
}

/// Appends `b` at `buf[*len]` (four octets of at most three digits and three dots fit).
fn put(buf: &mut [u8; IPV4_LEN], len: &mut usize, b: u8) {
    if let Some(slot) = buf.get_mut(*len) {
        *slot = b;
        *len += 1;
    }
}

/// Appends ASCII `text` (digits and dots from the functions above) to `s` byte by byte: no
/// UTF-8 check, which `push_str` of the bytes would need first.
pub fn push_ascii(s: &mut String, text: &[u8]) {
    for &b in text {
        s.push(char::from(b));
    }
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
        let mut buf = [0u8; IPV4_LEN];
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
