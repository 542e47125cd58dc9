//! `dns`'s unit tests: the decode, its salvage, the renderings and the wire reader's agreement
//! with hickory.

use super::*;

/// `www.example.com A` query, id 0x1234, RD.
fn query_bytes() -> Vec<u8> {
    let mut v = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for l in ["www", "example", "com"] {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.extend_from_slice(&[0, 0, 1, 0, 1]);
    v
}

fn response_bytes() -> Vec<u8> {
    let mut v = query_bytes();
    v[2] = 0x81;
    v[3] = 0x80;
    v[7] = 2; // ancount
              // CNAME www.example.com -> Edge.Example.NET.
    v.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60]);
    let mut target = Vec::new();
    for l in ["Edge", "Example", "NET"] {
        target.push(l.len() as u8);
        target.extend_from_slice(l.as_bytes());
    }
    target.push(0);
    v.extend_from_slice(&(target.len() as u16).to_be_bytes());
    let target_off = v.len();
    v.extend_from_slice(&target);
    // A edge.example.net -> 192.0.2.7
    v.extend_from_slice(&[
        0xc0,
        target_off as u8,
        0,
        1,
        0,
        1,
        0,
        0,
        1,
        0,
        0,
        4,
        192,
        0,
        2,
        7,
    ]);
    v
}

/// A NOERROR response with every record type the fast path checks: TXT and MX answers,
/// an SOA in the authority section (names compressed), an OPT with a cookie option.
fn full_sections_bytes() -> Vec<u8> {
    let mut v = query_bytes();
    v[2] = 0x81;
    v[3] = 0x80;
    v[7] = 2; // ancount
    v[9] = 1; // nscount
    v[11] = 1; // arcount
               // TXT www.example.com "v=1" "x"
    v.extend_from_slice(&[
        0xc0, 12, 0, 16, 0, 1, 0, 0, 0, 60, 0, 6, 3, b'v', b'=', b'1',
    ]);
    v.extend_from_slice(&[1, b'x']);
    // MX 10 mail.<example.com>
    v.extend_from_slice(&[0xc0, 12, 0, 15, 0, 1, 0, 0, 0, 60, 0, 9, 0, 10]);
    v.extend_from_slice(&[4, b'm', b'a', b'i', b'l', 0xc0, 16]);
    // SOA example.com: ns.<example.com> host.<example.com> + 5 numbers
    v.extend_from_slice(&[0xc0, 16, 0, 6, 0, 1, 0, 0, 0, 60, 0, 32]);
    v.extend_from_slice(&[2, b'n', b's', 0xc0, 16, 4, b'h', b'o', b's', b't', 0xc0, 16]);
    v.extend_from_slice(&[0; 20]);
    // OPT, payload 1232, a cookie option (code 10, 8 bytes).
    v.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 12, 0, 10, 0, 8]);
    v.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    v
}

/// The whole-message decode `parse_message` used before the sectional one, as a result to
/// compare (errors by their text: the salvage reason quotes it).
fn message_decode(wire: &[u8]) -> Result<ParsedMessage, String> {
    Message::from_vec(wire)
        .map(|m| from_message(&m))
        .map_err(|e| e.to_string())
}

/// Messages with every section and decoding rule the sectional decode must follow.
fn varied_messages() -> Vec<Vec<u8>> {
    let full = full_sections_bytes();
    // An OPT record with extended rcode bits (BADVERS-style: 16 + the header's 0).
    let mut ext = full.clone();
    let opt = ext.len() - 23;
    ext[opt + 5] = 1;
    // UPDATE (opcode 5): the answer section holds prerequisites, not answers.
    let mut update = response_bytes();
    update[2] = 0x80 | (5 << 3);
    // Two questions.
    let mut two = query_bytes();
    two[5] = 2;
    two.extend_from_slice(&[0xc0, 12, 0, 28, 0, 1]);
    // An OPT in the answer section (hickory rejects it: salvaged).
    let mut opt_answer = response_bytes();
    opt_answer[7] = 3;
    opt_answer.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    // An AAAA answer and an authority-only NXDOMAIN.
    let mut aaaa = query_bytes();
    aaaa[2] = 0x81;
    aaaa[3] = 0x80;
    aaaa[7] = 1;
    aaaa.extend_from_slice(&[0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16]);
    aaaa.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    let mut nx = full.clone();
    nx[3] = 0x83;
    nx[7] = 0;
    vec![
        full,
        ext,
        update,
        two,
        opt_answer,
        aaaa,
        nx,
        response_bytes(),
        query_bytes(),
    ]
}

/// Every truncation and single-bit flip of `base`, then `patches` copies with one to four
/// bytes replaced (by what matters to names — pointers, small lengths, offsets — or anything),
/// each handed to `f`; `seed` makes the patches repeatable.
pub(super) fn each_damaged(base: &[u8], patches: usize, seed: u64, mut f: impl FnMut(&[u8])) {
    let mut rng = seed;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for cut in 0..=base.len() {
        f(&base[..cut]);
    }
    for i in 0..base.len() {
        for bit in 0..8 {
            let mut v = base.to_vec();
            v[i] ^= 1 << bit;
            f(&v);
        }
    }
    for _ in 0..patches {
        let mut v = base.to_vec();
        for _ in 0..1 + next() % 4 {
            let i = (next() % v.len() as u64) as usize;
            v[i] = match next() % 4 {
                0 => 0xc0,
                1 => (next() % 64) as u8,
                _ => next() as u8,
            };
        }
        f(&v);
    }
}

/// Issue #11: the sectional decode gives what the whole-message decode gave — the same
/// observation fields, or the same error (so the same salvage) — on varied messages and on
/// every truncation, bit flip and random patch of them.
#[test]
fn sectional_decode_equals_the_message_decode() {
    let (mut checked, mut whole, mut failed) = (0, 0, 0);
    let mut check = |v: &[u8]| {
        let mine = decode_sections(v, None).map_err(|e| e.to_string());
        assert_eq!(mine, message_decode(v), "{v:02x?}");
        // Given its first question's rendered name (the fast path's), the same result.
        if let Some((name, _)) = mine.as_ref().ok().and_then(|m| m.questions.first()) {
            let named = decode_sections(v, Some(name)).map_err(|e| e.to_string());
            assert_eq!(named, mine, "{v:02x?}");
        }
        match mine {
            Ok(_) => whole += 1,
            Err(_) => failed += 1,
        }
        checked += 1;
    };
    let bases = varied_messages();
    for (k, base) in bases.iter().enumerate() {
        each_damaged(base, 4_000, 0x2545_f491_4f6c_dd1d + k as u64, &mut check);
    }
    // Both outcomes are exercised, not just one.
    assert!(checked > 30_000 && whole > 5_000 && failed > 5_000);
    // The cases above say what they are meant to.
    let ext = parse_message(&bases[1]).unwrap();
    assert_eq!(ext.rcode, Rcode(16));
    assert!(parse_message(&bases[2]).unwrap().answers.is_empty());
    assert_eq!(parse_message(&bases[3]).unwrap().questions.len(), 2);
    assert!(parse_message(&bases[4]).unwrap().salvaged.is_some());
    assert_eq!(
        parse_message(&bases[5]).unwrap().answers[0].data,
        "2001:db8::1"
    );
}

/// Issue #11: a message decoded whole takes the caller's rendering of its first question
/// (not rendered again), and a debug build checks it against hickory's.
#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "the fast path's rendering")]
fn a_given_first_name_is_used_and_checked() {
    let wire = &varied_messages()[0];
    let _ = parse_message_named(wire, "not.the.question");
}

/// A message hickory does not decode whole is salvaged as without the name.
#[test]
fn a_salvaged_message_is_the_same_given_its_name() {
    let wire = &varied_messages()[4];
    let plain = parse_message(wire).unwrap();
    assert!(plain.salvaged.is_some());
    let name = &plain.questions[0].0;
    assert_eq!(parse_message_named(wire, name).unwrap(), plain);
}

/// `push_label` renders every byte as the old per-byte rendering did.
#[test]
fn labels_render_byte_for_byte() {
    fn reference(label: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for &b in label {
            match b {
                b'.' | b'\\' => v.extend_from_slice(&[b'\\', b]),
                0x21..=0x7e => v.push(b.to_ascii_lowercase()),
                _ => v.extend_from_slice(format!("\\{b:03}").as_bytes()),
            }
        }
        v
    }
    let all: Vec<u8> = (0..=255u8).collect();
    for b in 0..=255u8 {
        let mut out = b"x".to_vec();
        push_label(&mut out, &[b, b'A', b]);
        assert_eq!(&out[1..], reference(&[b, b'A', b]).as_slice(), "{b}");
    }
    for w in all.chunks(7) {
        let mut out = Vec::new();
        push_label(&mut out, w);
        assert_eq!(out, reference(w));
    }
    let mut out = Vec::new();
    push_label(&mut out, b"MoneroOcean");
    assert_eq!(out, b"moneroocean");
}

#[test]
fn decodes_whole_says_what_hickory_does() {
    let full = full_sections_bytes();
    let m = parse_message(&full).unwrap();
    assert!(m.salvaged.is_none(), "{:?}", m.salvaged);
    assert_eq!(m.answers.len(), 2);
    assert!(wire::parse(&full).unwrap().decodes_whole());
    assert!(wire::parse(&response_bytes()).unwrap().decodes_whole());
    assert!(wire::parse(&query_bytes()).unwrap().decodes_whole());
    // An SOA one byte short: hickory salvages, the fast path declines.
    let mut v = full.clone();
    let soa_len = v.len() - 23 - 32 - 1;
    v[soa_len] = 31;
    assert!(parse_message(&v).unwrap().salvaged.is_some());
    assert!(!wire::parse(&v).unwrap().decodes_whole());
    // A client-subnet option instead of the cookie: hickory parses it, so the fast path
    // leaves the message to hickory.
    let mut v = full.clone();
    let code = v.len() - 12;
    v[code + 1] = 8;
    assert!(!wire::parse(&v).unwrap().decodes_whole());
    // Two OPT records: hickory rejects the second.
    let mut v = full.clone();
    v[11] = 2;
    v.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    assert!(parse_message(&v).unwrap().salvaged.is_some());
    assert!(!wire::parse(&v).unwrap().decodes_whole());
    differential::differential(&v).unwrap();
}

#[test]
fn name_str_lowercases_and_escapes() {
    let n = Name::from_labels(vec![
        b"Pool.X".to_vec(),
        b"A\\b\x00\xff".to_vec(),
        b"MoneroOcean".to_vec(),
        b"STREAM".to_vec(),
    ])
    .unwrap();
    assert_eq!(name_str(&n), "pool\\.x.a\\\\b\\000\\255.moneroocean.stream");
    assert_eq!(name_str(&Name::root()), ".");
}

#[test]
fn parses_query_and_response() {
    let q = parse_message(&query_bytes()).unwrap();
    assert_eq!(q.id, 0x1234);
    assert!(!q.is_response);
    assert_eq!(
        q.questions,
        vec![("www.example.com".to_string(), RrType::A)]
    );
    let r = parse_message(&response_bytes()).unwrap();
    assert!(r.is_response);
    assert_eq!(r.answers.len(), 2);
    assert_eq!(r.answers[0].data, "edge.example.net");
    assert_eq!(r.answers[1].name, "edge.example.net");
    assert_eq!(r.answers[1].data, "192.0.2.7");
    assert_eq!(r.answers[1].ttl, Some(256));
    assert!(r.salvaged.is_none());
}

#[test]
fn salvages_question_when_answers_are_damaged() {
    let mut v = response_bytes();
    let n = v.len();
    v.truncate(n - 3); // cut into the A record's rdata
    let r = parse_message(&v).unwrap();
    assert!(r.salvaged.is_some());
    assert_eq!(r.questions[0].0, "www.example.com");
    assert_eq!(r.answers.len(), 1, "the CNAME before the damage is kept");
}

#[test]
fn salvage_reasons_are_classified_by_error_type() {
    let mut v = response_bytes();
    let n = v.len();
    v.truncate(n - 3);
    let r = parse_message(&v).unwrap();
    assert_eq!(
        r.salvage_reason,
        Some(SalvageReason::Rdata),
        "{:?}",
        r.salvaged
    );
    // Cut inside the first answer's fixed fields: the message ends inside a record.
    let mut v = response_bytes();
    v.truncate(query_bytes().len() + 5);
    let r = parse_message(&v).unwrap();
    assert_eq!(
        r.salvage_reason,
        Some(SalvageReason::Truncated),
        "{:?}",
        r.salvaged
    );
    // A header alone is not a message; a question cut short is unreadable.
    let e = parse_message(&v[..5]).unwrap_err();
    assert_eq!(e.metric_reason(), "header");
    let e = parse_message(&query_bytes()[..15]).unwrap_err();
    assert_eq!(e.metric_reason(), "question");
    // A compression pointer to itself in the answer's owner name.
    let mut v = response_bytes();
    let q_end = query_bytes().len();
    v[q_end] = 0xc0;
    v[q_end + 1] = u8::try_from(q_end).unwrap();
    let r = parse_message(&v).unwrap();
    assert_eq!(
        r.salvage_reason,
        Some(SalvageReason::Name),
        "{:?}",
        r.salvaged
    );
    assert_eq!(SalvageReason::Name.as_str(), "name");
}

#[test]
fn ipv4_formatting() {
    for o in [
        [0, 0, 0, 0],
        [255, 255, 255, 255],
        [10, 9, 100, 199],
        [1, 20, 0, 250],
    ] {
        assert_eq!(ipv4_str(o), std::net::Ipv4Addr::from(o).to_string());
    }
}

#[test]
fn ipv6_formatting_equals_std() {
    let mut cases: Vec<std::net::Ipv6Addr> = [
        "::",
        "::1",
        "1::",
        "::ffff:1.2.3.4",
        "::1.2.3.4",
        "2001:db8::1",
        "2001:db8:0:0:1:0:0:1",
        "2001:0:0:1:0:0:0:1",
        "1:0:2:0:3:0:4:0",
        "0:0:1:0:0:1:0:0",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "64:ff9b::c000:201",
        "fe80::a:b0:c00:d000",
        "0:1:2:3:4:5:6:0",
    ]
    .iter()
    .filter_map(|t| t.parse().ok())
    .collect();
    // Every pattern of zero/non-zero groups, with varied group widths.
    for mask in 0u16..256 {
        let seg: Vec<u16> = (0..8u16)
            .map(|i| {
                if mask & (1 << i) != 0 {
                    0x1u16.wrapping_shl(u32::from(i) * 2) | i
                } else {
                    0
                }
            })
            .collect();
        let mut g = [0u16; 8];
        g.copy_from_slice(&seg);
        cases.push(std::net::Ipv6Addr::from(g));
    }
    for a in cases {
        assert_eq!(ipv6_str(a), a.to_string(), "{a:?}");
    }
}

#[test]
fn header_only_garbage_is_an_error() {
    assert!(parse_message(&[1, 2, 3]).is_err());
    let mut v = query_bytes();
    v.truncate(15);
    assert!(parse_message(&v).is_err());
}

#[test]
fn every_truncation_and_bitflip_is_safe() {
    each_damaged(&response_bytes(), 0, 0, |v| {
        let _ = parse_message(v);
    });
    // A compression loop.
    let mut v = query_bytes();
    v.truncate(12);
    v.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    let _ = parse_message(&v);
}

#[test]
fn wire_reader_reads_what_hickory_reads() {
    let r = response_bytes();
    let m = wire::parse(&r).unwrap();
    let q = m.question.unwrap();
    assert_eq!(q.name.to_normalised(), "www.example.com");
    assert_eq!((m.id, m.is_response(), m.ancount), (0x1234, true, 2));
    let answers: Vec<_> = m.answers().map(|a| a.unwrap()).collect();
    assert_eq!(answers[0].name.to_normalised(), "www.example.com");
    assert_eq!(
        answers[0].target().unwrap().to_normalised(),
        "edge.example.net"
    );
    assert_eq!(answers[1].ip(), Some("192.0.2.7".parse().unwrap()));
    assert_eq!(answers[1].name.to_normalised(), "edge.example.net");
    differential::differential(&r).unwrap();
    differential::differential(&query_bytes()).unwrap();
    // A pointer to itself, a forward pointer, a loop: errors, never a hang.
    let mut v = query_bytes();
    v.truncate(12);
    v.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    assert_eq!(wire::parse(&v).unwrap_err(), wire::WireError::Pointer);
    v.truncate(12);
    v.extend_from_slice(&[0xc0, 14, 0, 0, 1, 0, 1]);
    assert_eq!(wire::parse(&v).unwrap_err(), wire::WireError::Pointer);
}

/// The differential property over truncations, bit flips and random byte patches of real
/// messages (the fuzz target `dns_fastpath` does the same with coverage guidance).
#[test]
fn wire_reader_agrees_with_hickory_on_damaged_messages() {
    let bases = [response_bytes(), query_bytes(), full_sections_bytes()];
    let mut checked = 0;
    for (k, base) in bases.iter().enumerate() {
        each_damaged(base, 20_000, 0x9e37_79b9_7f4a_7c15 + k as u64, |v| {
            if let Err(e) = differential::differential(v) {
                panic!("{v:02x?}: {e}");
            }
            checked += 1;
        });
    }
    assert!(checked > 40_000);
}
