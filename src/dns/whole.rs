//! A message that [`WireMessage::decodes_whole`] holds for, built into its [`ParsedMessage`]
//! from the zero-copy reader instead of hickory (issue #11: every response of a pool-lookup
//! flood is listed and decoded; hickory's decode of those was ≈ 130 M of the flood's 824 M
//! instructions, docs/performance.md). Only the answers this reader renders exactly as
//! [`super::parse_message`] does are built here — A, AAAA, CNAME, NS and PTR, which is what a
//! resolver answers a pool lookup with — and anything else (a TXT, MX or SOA answer, more than
//! [`super::MAX_ANSWERS`] answers) is `None`: the caller decodes with hickory as before.
//!
//! hickory stays the reference: `dns::differential` (the `dns_fastpath` fuzz target and the
//! `dns::tests` fixtures) asserts that wherever this gives a message, it equals
//! `parse_message_named`'s, field by field.

use super::wire::{WireMessage, TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_NS, TYPE_OPT, TYPE_PTR};
use super::{ipv4_str, ipv6_str, ParsedMessage};
use crate::model::{DnsAnswer, Rcode, RrType};

/// `w` as `parse_message_named(bytes, first_name)` reads it, or `None` where this reader does
/// not build that (see the module doc). `w.decodes_whole()` must hold (the caller has checked
/// it: the fast path only hands such messages on) and `first_name` is `w`'s first question as
/// `WireName::write_normalised` renders it.
pub fn parsed(w: &WireMessage<'_>, first_name: &str) -> Option<ParsedMessage> {
    debug_assert!(w.decodes_whole(), "only a message hickory reads whole");
    let q = w.question?;
    let answers_n = usize::from(w.ancount);
    if answers_n > super::MAX_ANSWERS {
        return None;
    }
    let mut answers = Vec::with_capacity(answers_n);
    // hickory's rcode: the header's four bits, extended by the OPT record's high eight.
    let mut rcode = u16::from(w.rcode_low());
    let additional_from = answers_n + usize::from(w.nscount);
    for (i, r) in w.records().enumerate() {
        let r = r.ok()?;
        if i >= additional_from {
            if r.rtype == TYPE_OPT {
                rcode = (u16::from((r.ttl >> 24) as u8) << 4) | u16::from(w.rcode_low());
            }
            continue;
        }
        if i >= answers_n {
            continue;
        }
        let data = match r.rtype {
            TYPE_A | TYPE_AAAA => match r.ip()? {
                std::net::IpAddr::V4(a) => ipv4_str(a.octets()),
                std::net::IpAddr::V6(a) => ipv6_str(a),
            },
            TYPE_CNAME | TYPE_NS | TYPE_PTR => r.target()?.to_normalised(),
            _ => return None,
        };
        // An owner that is the question's name (nearly every answer of a pool lookup) takes
        // its rendering instead of rendering the same labels again.
        let name = if r.name.has_labels_of(&q.name) {
            first_name.to_owned()
        } else {
            r.name.to_normalised()
        };
        answers.push(DnsAnswer {
            name,
            rtype: RrType(r.rtype),
            ttl: Some(r.ttl),
            data,
        });
    }
    Some(ParsedMessage {
        id: w.id,
        is_response: w.is_response(),
        opcode: w.opcode(),
        rcode: Rcode(rcode),
        truncated: w.truncated(),
        recursion_desired: w.recursion_desired(),
        questions: vec![(first_name.to_owned(), RrType(q.qtype))],
        answers,
        salvaged: None,
        salvage_reason: None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{parse_message_named, tests::each_damaged, wire};
    use super::*;

    /// `pool.example A`: a CNAME to `Edge.Example.NET.`, its A and AAAA answers, an NS in
    /// the authority section and (with `ext_rcode`) an OPT record whose high rcode bits extend
    /// the header's (BADVERS-style, 16 and up).
    fn response(ext_rcode: Option<u8>) -> Vec<u8> {
        let mut v = vec![0xab, 0xcd, 0x83, 0x83, 0, 1, 0, 3, 0, 1, 0, 0];
        let name = |v: &mut Vec<u8>, labels: &[&str]| {
            for l in labels {
                v.push(l.len() as u8);
                v.extend_from_slice(l.as_bytes());
            }
            v.push(0);
        };
        name(&mut v, &["Pool", "example"]);
        v.extend_from_slice(&[0, 1, 0, 1]);
        let mut target = Vec::new();
        name(&mut target, &["Edge", "Example", "NET"]);
        v.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60]);
        v.extend_from_slice(&(target.len() as u16).to_be_bytes());
        let at = v.len() as u8;
        v.extend_from_slice(&target);
        v.extend_from_slice(&[0xc0, at, 0, 1, 0, 1, 0, 0, 1, 0, 0, 4, 192, 0, 2, 7]);
        v.extend_from_slice(&[0xc0, at, 0, 28, 0, 1, 0, 0, 1, 0, 0, 16]);
        v.extend_from_slice(&[0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        v.extend_from_slice(&[0xc0, 12, 0, 2, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, at]);
        if let Some(high) = ext_rcode {
            v[11] = 1;
            v.extend_from_slice(&[0, 0, 41, 4, 0xd0, high, 0, 0, 0, 0, 0]);
        }
        v
    }

    fn whole(bytes: &[u8]) -> Option<ParsedMessage> {
        let w = wire::parse(bytes).ok().filter(|w| w.decodes_whole())?;
        parsed(&w, &w.question?.name.to_normalised())
    }

    #[test]
    fn a_listed_response_is_built_as_hickory_reads_it() {
        for ext in [None, Some(0), Some(1), Some(0xff)] {
            let v = response(ext);
            let mine = whole(&v).expect("A, AAAA and CNAME answers are built here");
            let hickory = parse_message_named(&v, "pool.example").expect("hickory reads it");
            assert_eq!(mine, hickory, "ext rcode {ext:?}");
            assert_eq!(mine.answers.len(), 3);
            assert_eq!(mine.answers[2].data, "2001:db8::1");
            assert_eq!(mine.rcode.0, u16::from(ext.unwrap_or(0)) << 4 | 3);
            assert!(mine.is_response && mine.recursion_desired && mine.truncated);
        }
    }

    #[test]
    fn other_answers_are_left_to_hickory() {
        // The same message with its A answer retyped as TXT (4 bytes: one 3-byte string).
        let mut v = response(None);
        let p = v
            .windows(6)
            .position(|w| w == [0, 4, 192, 0, 2, 7])
            .expect("the A record");
        v[p - 7] = 16;
        v[p + 2..p + 6].copy_from_slice(&[3, b'a', b'b', b'c']);
        assert!(parse_message_named(&v, "pool.example").is_ok());
        assert_eq!(whole(&v), None);
    }

    #[test]
    fn an_owner_written_out_is_rendered_or_reused_as_hickory_reads_it() {
        // The question `Pool.example`, one A answer whose owner is written out (no pointer):
        // the same bytes (reused), other case (rendered: the same text), another name.
        for owner in ["Pool.example", "POOL.example", "pool.example.net", "Pool"] {
            let mut v = vec![0, 7, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
            for name in ["Pool.example", owner] {
                for l in name.split('.') {
                    v.push(l.len() as u8);
                    v.extend_from_slice(l.as_bytes());
                }
                v.push(0);
                v.extend_from_slice(&[0, 1, 0, 1]);
            }
            v.extend_from_slice(&[0, 0, 0, 60, 0, 4, 198, 51, 100, 9]);
            let mine = whole(&v).expect("an A answer");
            assert_eq!(
                Ok(&mine),
                parse_message_named(&v, "pool.example")
                    .as_ref()
                    .map_err(|_| ())
            );
            assert_eq!(mine.answers[0].name, owner.to_ascii_lowercase());
        }
    }

    /// On damaged copies (truncations, bit flips, byte patches) wherever this builds a message
    /// it is hickory's; and it builds one for many of them (the property is exercised).
    #[test]
    fn damaged_messages_are_built_as_hickory_reads_them_or_not_at_all() {
        let mut built = 0;
        for (k, ext) in [None, Some(1)].into_iter().enumerate() {
            each_damaged(&response(ext), 20_000, 0x51ed_270b + k as u64, |v| {
                if let Some(mine) = whole(v) {
                    let name = mine.questions[0].0.clone();
                    assert_eq!(
                        Ok(&mine),
                        parse_message_named(v, &name).as_ref().map_err(|_| ())
                    );
                    built += 1;
                }
            });
        }
        assert!(built > 2_000, "{built} built");
    }
}
