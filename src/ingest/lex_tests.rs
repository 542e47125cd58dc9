//! Tests of `ingest::lex`: each fast reader against the general rule it stands for.

use super::*;
use crate::ingest::time::Zone;

#[test]
fn timestamps() {
    let mut t = TimeResolver::new(Zone::Utc, Timestamp::parse("2026-12-01T00:00:00Z"));
    let (ts, rest) = any_ts(b"26-Nov-2026 20:27:18.781 queries:", &mut t).unwrap();
    assert_eq!(ts, Timestamp::parse("2026-11-26T20:27:18.781Z").unwrap());
    assert_eq!(rest, b" queries:");
    let (ts, _) = any_ts(b"Nov 26 20:27:53 dnsmasq[1]:", &mut t).unwrap();
    assert_eq!(ts, Timestamp::parse("2026-11-26T20:27:53Z").unwrap());
    let (ts, _) = any_ts(b"Nov  7 17:04:19dnsmasq[1]:", &mut t).unwrap();
    assert_eq!(ts, Timestamp::parse("2026-11-07T17:04:19Z").unwrap());
    let (ts, _) = any_ts(b"[1795724797] unbound", &mut t).unwrap();
    assert_eq!(ts, Timestamp::from_secs(1_795_724_797));
    let (ts, _) = any_ts(b"2019-03-18T22:13:36.289-07:00 [INFO]", &mut t).unwrap();
    assert_eq!(ts, Timestamp::parse("2019-03-19T05:13:36.289Z").unwrap());
    assert!(any_ts(b"XXXXXXXXXX.XXXXXX", &mut t).is_none());
    assert!(any_ts(b"[", &mut t).is_none());
    assert!(any_ts(b"99-Nov-2026 20:27:18.781", &mut t).is_none());
}

#[test]
fn fields() {
    assert_eq!(
        kv(
            br#"msg="Question" qname="a.b" remote="1.2.3.4:5""#,
            b"qname"
        ),
        Some(&b"a.b"[..])
    );
    assert_eq!(kv(br#"xqname="a" qname=b"#, b"qname"), Some(&b"b"[..]));
    assert_eq!(
        parse_ip_port(b"127.0.0.1#53", b'#'),
        Some(("127.0.0.1".parse().unwrap(), 53))
    );
    assert_eq!(
        parse_endpoint(b"[::1]:37915"),
        Some(("::1".parse().unwrap(), Some(37915)))
    );
    assert_eq!(parse_u64(b"99999999999999999999"), None);
    assert_eq!(parse_ipv4(b"10.1.2.3"), Some([10, 1, 2, 3].into()));
    assert_eq!(parse_scaled(b"0.000455", 6), Some(455));
    assert_eq!(parse_scaled(b"1.5", 3), Some(1500));
    assert_eq!(parse_scaled(b"0.0001234567", 6), Some(123));
    assert_eq!(parse_scaled(b"12", 6), Some(12_000_000));
    assert_eq!(parse_scaled(b"-1", 6), None);
    assert_eq!(parse_scaled(b".", 6), None);
    for bad in [
        &b"1.2.3"[..],
        b"1.2.3.4.5",
        b"256.1.1.1",
        b"01.2.3.4",
        b"1..2.3",
        b"1.2.3.",
        b"",
    ] {
        assert_eq!(parse_ipv4(bad), None, "{bad:?}");
    }
    assert_eq!(parse_ip(b"0.0.0.0"), Some("0.0.0.0".parse().unwrap()));
    assert_eq!(find(b"a reply x is y", b" is "), Some(9));
    assert_eq!(find(b"iiis", b"is"), Some(2));
}

/// The one-pass `[epoch]` reader against the general rule (`memchr` for `]`, `epoch_ts`) on
/// every string over a small alphabet up to length 8 behind `[`, and on long digit runs.
#[test]
fn bracket_epoch_is_the_general_rule() {
    fn general(line: &[u8]) -> Option<(Timestamp, &[u8])> {
        let end = memchr::memchr(b']', line)?;
        let ts = epoch_ts(line.get(1..end)?)?;
        Some((ts, line.get(end + 1..)?))
    }
    let alphabet = [b'0', b'7', b'9', b'.', b']', b' ', b'x'];
    let mut hits = 0;
    let mut check = |line: &[u8]| {
        if let Some(fast) = bracket_epoch(line) {
            assert_eq!(
                Some(fast),
                general(line),
                "{:?}",
                String::from_utf8_lossy(line)
            );
            hits += 1;
        }
    };
    each_string(b"[", &alphabet, 8, &mut check);
    for digits in 1..=20 {
        for frac in 0..=8 {
            let mut l = format!("[{}", "9".repeat(digits));
            if frac > 0 {
                l.push('.');
                l.push_str(&"5".repeat(frac));
            }
            l.push_str("] unbound");
            check(l.as_bytes());
            check(l.replace('9', "1").as_bytes());
        }
    }
    check(b"[1736154000] unbound[2741:0] info: 10.1.7.5 a.example. A IN");
    assert!(hits > 10_000, "{hits}");
}

/// The word-at-a-time tokenizer (`tokens`, `next_token`, `space_at`) against the split and
/// byte-search definitions, on every string over a small alphabet up to length 6 and on long
/// random ones (blanks at every offset of a word, runs of blanks, bytes next to the blank
/// values).
#[test]
fn tokens_are_the_split_definition() {
    fn reference(b: &[u8]) -> Vec<&[u8]> {
        b.split(|c| *c == b' ' || *c == b'\t')
            .filter(|t| !t.is_empty())
            .collect()
    }
    // `next_token` and `space_at` against the definitions they speed up: the first token by
    // a byte search, the first space by a byte search.
    fn first_token(b: &[u8]) -> Option<(&[u8], &[u8])> {
        let b = trim_start(b);
        if b.is_empty() {
            return None;
        }
        let end = b
            .iter()
            .position(|c| *c == b' ' || *c == b'\t')
            .unwrap_or(b.len());
        Some((&b[..end], trim_start(&b[end..])))
    }
    let check = |buf: &[u8]| {
        assert_eq!(tokens(buf).collect::<Vec<_>>(), reference(buf), "{buf:?}");
        assert_eq!(next_token(buf), first_token(buf), "{buf:?}");
        assert_eq!(
            space_at(buf),
            buf.iter().position(|c| *c == b' '),
            "{buf:?}"
        );
    };
    let alphabet = [b' ', b'\t', b'a', 0x21, 0x1f, 0x09 ^ 0x80, 0xa0, b'\n'];
    each_string(b"", &alphabet, 6, check);
    let mut st = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..20_000 {
        let len = (next(&mut st) % 80) as usize;
        let dense = next(&mut st) % 4;
        let buf: Vec<u8> = (0..len)
            .map(|_| {
                let r = next(&mut st);
                if r % 8 < dense {
                    alphabet[(r >> 8) as usize % 2]
                } else {
                    alphabet[2 + (r >> 8) as usize % 6]
                }
            })
            .collect();
        check(&buf);
    }
}

/// Every string over `alphabet` of length 0 to `max_len`, each behind `prefix`, handed to `f`.
fn each_string(prefix: &[u8], alphabet: &[u8], max_len: u32, mut f: impl FnMut(&[u8])) {
    let mut buf = Vec::new();
    for len in 0..=max_len {
        for code in 0..alphabet.len().pow(len) {
            buf.clear();
            buf.extend_from_slice(prefix);
            let mut c = code;
            for _ in 0..len {
                buf.push(alphabet[c % alphabet.len()]);
                c /= alphabet.len();
            }
            f(&buf);
        }
    }
}

/// xorshift64*: a repeatable stream for the agreement test below.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// The hand-written IPv6 parser against std's: on valid addresses in several spellings
/// (compressed, full, zero-padded, upper case), on one-byte mutations of them and on
/// arbitrary strings over the address alphabet, `parse_ipv6_hex` is std's answer whenever
/// it gives one, and it gives one for every pure-hex spelling.
#[test]
fn ipv6_agrees_with_std() {
    use std::net::Ipv6Addr;
    let mut st = 0x9E37_79B9_7F4A_7C15u64;
    let alphabet = b"0123456789abcdefABCDEF::::..%gx ";
    let (mut hits, mut checked) = (0u32, 0u32);
    let mut check = |s: &[u8], must_hit: bool| {
        let fast = parse_ipv6_hex(s);
        let std = std::str::from_utf8(s)
            .ok()
            .and_then(|t| t.parse::<Ipv6Addr>().ok());
        if fast.is_some() {
            assert_eq!(fast, std, "{:?}", String::from_utf8_lossy(s));
            hits += 1;
        }
        if must_hit {
            assert_eq!(fast, std, "pure hex {:?}", String::from_utf8_lossy(s));
        }
        checked += 1;
    };
    for _ in 0..40_000 {
        // Groups with runs of zeros, so `::` appears in many places.
        let mut g = [0u16; 8];
        let mask = next(&mut st);
        for (k, v) in g.iter_mut().enumerate() {
            if mask >> k & 1 == 1 {
                *v = (next(&mut st) >> (next(&mut st) % 16)) as u16;
            }
        }
        let a = Ipv6Addr::from(g);
        let short = a.to_string();
        let full = g.map(|v| format!("{v:x}")).join(":");
        let padded = g.map(|v| format!("{v:04X}")).join(":");
        for sp in [&short, &full, &padded, &short.to_uppercase()] {
            check(sp.as_bytes(), !sp.contains('.'));
            // One-byte mutations: replace, insert, delete.
            let mut m = sp.as_bytes().to_vec();
            let at = (next(&mut st) as usize) % (m.len() + 1);
            let c = alphabet[(next(&mut st) as usize) % alphabet.len()];
            match next(&mut st) % 3 {
                0 if at < m.len() => m[at] = c,
                1 => m.insert(at, c),
                _ if at < m.len() => {
                    m.remove(at);
                }
                _ => m.push(c),
            }
            check(&m, false);
        }
        // Arbitrary strings over the alphabet.
        let len = (next(&mut st) % 42) as usize;
        let r: Vec<u8> = (0..len)
            .map(|_| alphabet[(next(&mut st) as usize) % alphabet.len()])
            .collect();
        check(&r, false);
    }
    for edge in [
        &b"::"[..],
        b":::",
        b"1::",
        b"::1",
        b"1:2:3:4:5:6:7::",
        b"::2:3:4:5:6:7:8",
        b"1:2:3:4:5:6:7:8::",
        b"::1:2:3:4:5:6:7:8",
        b"1:2:3:4:5:6:7:8:9",
        b"1:2:3:4:5:6:7",
        b"1::2::3",
        b"12345::",
        b"0000:0000::00000",
        b":1::",
        b"1:::2",
        b"",
    ] {
        check(edge, false);
    }
    assert!(hits > 100_000, "fast path taken {hits} of {checked}");
}

/// `name_into` gives what `name` gives, into a buffer that held something else.
#[test]
fn name_into_is_name() {
    let long = "a".repeat(1025);
    let cases: [&[u8]; 10] = [
        b"Pool.SupportXMR.com.",
        b"example.com",
        b".",
        b"",
        b"..",
        b"a..",
        "B\u{fc}cher.Example".as_bytes(),
        b"\xff\xfe",
        long.as_bytes(),
        &long.as_bytes()[..1024],
    ];
    for b in cases {
        let mut out = String::from("stale");
        let ok = name_into(b, &mut out);
        match name(b) {
            Some(n) => assert!(ok && out == n, "{b:?}"),
            None => assert!(!ok && out == "stale", "{b:?}"),
        }
    }
}

/// `parse_ipv4` is its definition — the dotted quad std reads that prints back as the input
/// (so canonical: no leading zeros, no empty or long octets) — on every string of up to 9
/// bytes over `0 1 2 5 .` and up to 7 over `0 9 6 . x`, and on random addresses with every
/// one-byte change (a digit, a dot or a letter put in, replaced or removed at each offset).
/// Fails when the leading-zero test is dropped.
#[test]
fn parse_ipv4_is_the_canonical_quad() {
    fn reference(b: &[u8]) -> Option<std::net::Ipv4Addr> {
        let s = std::str::from_utf8(b).ok()?;
        s.parse::<std::net::Ipv4Addr>()
            .ok()
            .filter(|a| a.to_string() == s)
    }
    let mut hits = 0;
    let mut check = |b: &[u8]| {
        let got = parse_ipv4(b);
        assert_eq!(got, reference(b), "{:?}", String::from_utf8_lossy(b));
        hits += usize::from(got.is_some());
    };
    each_string(b"", b"0125.", 9, &mut check);
    each_string(b"", b"096.x", 7, &mut check);
    let mut st = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..20_000 {
        let text = std::net::Ipv4Addr::from(next(&mut st) as u32).to_string();
        let t = text.as_bytes();
        check(t);
        for at in 0..=t.len() {
            for c in [b'0', b'9', b'.', b'x', b'3'] {
                let mut put = t.to_vec();
                put.insert(at, c);
                check(&put);
                if at < t.len() {
                    let mut changed = t.to_vec();
                    changed[at] = c;
                    check(&changed);
                }
            }
            if at < t.len() {
                let mut cut = t.to_vec();
                cut.remove(at);
                check(&cut);
            }
        }
    }
    assert!(hits > 20_000, "{hits}");
}

/// `parse_ip` is its definition — a canonical dotted quad, else std's IPv6 parser (brackets
/// stripped, at most 64 bytes) — on every string of up to 5 bytes over hex digits, colons, a
/// dot, brackets and a stray letter, on every spelling of random addresses (compressed, full,
/// padded, upper case, bracketed, with an IPv4 tail) and on one-byte mutations of them.
#[test]
fn parse_ip_is_v4_or_std_v6() {
    use std::net::Ipv6Addr;
    fn reference(s: &[u8]) -> Option<IpAddr> {
        let inner = match s {
            [b'[', inner @ .., b']'] => inner,
            _ => s,
        };
        if inner.is_empty() || inner.len() > 64 {
            return None;
        }
        if let Some(v4) = parse_ipv4(inner) {
            return Some(IpAddr::V4(v4));
        }
        let t = std::str::from_utf8(inner).ok()?;
        t.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    }
    let check = |s: &[u8]| {
        let text = String::from_utf8_lossy(s);
        assert_eq!(parse_ip(s), reference(s), "{text:?}");
    };
    each_string(b"", b"0fA:.[]g", 5, check);
    let alphabet = b"0123456789abcdefABCDEF::::..%gx []";
    let mut st = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..40_000 {
        let mut g = [0u16; 8];
        let mask = next(&mut st);
        for (k, v) in g.iter_mut().enumerate() {
            if mask >> k & 1 == 1 {
                *v = (next(&mut st) >> (next(&mut st) % 16)) as u16;
            }
        }
        let a = Ipv6Addr::from(g);
        let v4 = std::net::Ipv4Addr::from(next(&mut st) as u32);
        let spellings = [
            a.to_string(),
            g.map(|v| format!("{v:x}")).join(":"),
            g.map(|v| format!("{v:04X}")).join(":"),
            a.to_string().to_uppercase(),
            format!("[{a}]"),
            format!("::ffff:{v4}"),
            v4.to_string(),
        ];
        for sp in &spellings {
            check(sp.as_bytes());
            let mut m = sp.as_bytes().to_vec();
            let at = (next(&mut st) as usize) % (m.len() + 1);
            let c = alphabet[(next(&mut st) as usize) % alphabet.len()];
            match next(&mut st) % 3 {
                0 if at < m.len() => m[at] = c,
                1 => m.insert(at, c),
                _ if at < m.len() => {
                    m.remove(at);
                }
                _ => {}
            }
            check(&m);
        }
    }
}
