//! Unit tests of the reader's own machinery: the line-head cache and the bounded slab.

use super::*;
use crate::ingest::time::Zone;

/// 2026-12-03T00:00:00Z: year-less lines resolve against it.
const REFERENCE: Timestamp = Timestamp(1_796_256_000 * 1_000_000);

fn resolver() -> TimeResolver {
    TimeResolver::new(Zone::Utc, Some(REFERENCE))
}

/// Reading a line's head with the cache of the line before gives what reading it afresh
/// gives, and leaves the time resolver in the same state, for every pair of lines built from
/// heads (syslog forms, a host, glued and pid-less program tokens, `[epoch]`, ISO, a bad
/// timestamp, a head longer than the cache keeps) and messages (blank, glued to the token,
/// tabs, empty), with and without a line between them. Fails when a head that does not end in a blank is kept (`dnsmasq[1]:` then
/// `dnsmasq[1]:x …`) or when a failed head leaves the cache in place.
#[test]
fn head_cache_gives_the_uncached_reading() {
    let long_host = "h".repeat(MAX_HEAD);
    let heads: Vec<String> = vec![
        "Jan  6 09:00:00 dnsmasq[812]:".into(),
        "Jan  6 09:00:00 dnsmasq[812]: ".into(),
        "Jan  6 09:00:00 dnsmasq[813]: ".into(),
        "Jan  6 09:00:01 dnsmasq[812]: ".into(),
        "Dec 31 23:59:59 dnsmasq[812]: ".into(),
        "Jan  6 09:00:00.250 gw dnsmasq[812]:\t".into(),
        "Jan  6 09:00:00 dnsmasq:".into(),
        "Jan  6 09:00:00 dnsmasq ".into(),
        "Jan  6 17:04:19dnsmasq[123]: ".into(),
        "[1795724797.5] dnsmasq[9]: ".into(),
        "2026-11-26T20:27:53+01:00 dnsmasq[6972]: ".into(),
        "Foo  6 09:00:00 dnsmasq[812]: ".into(),
        "Jan  6 09:00:00 a b dnsmasq[812]: ".into(),
        format!("Jan  6 09:00:00 {long_host} dnsmasq[812]: "),
    ];
    let tails = [
        "query[A] a.example from 10.0.0.1",
        "x is y",
        ":x is y",
        " reply a.example is 1.2.3.4",
        "\tq",
        "",
    ];
    let lines: Vec<String> = heads
        .iter()
        .flat_map(|h| tails.iter().map(move |t| format!("{h}{t}")))
        .collect();
    // Between the two: nothing, a line whose timestamp is read but whose program token is
    // not (the resolver moves on), a line of another day.
    let middles = [
        None,
        Some("Jan  6 09:00:05 foo bar baz"),
        Some("Jan  7 10:00:00 dnsmasq[1]: x"),
    ];
    let mut hits = 0;
    for a in &lines {
        for m in middles {
            for b in &lines {
                let (mut cached, mut t1) = (Head::default(), resolver());
                let mut t2 = resolver();
                for l in [Some(a.as_str()), m].into_iter().flatten() {
                    let l = l.as_bytes();
                    assert_eq!(cached.read(l, &mut t1), Head::default().read(l, &mut t2));
                }
                let bb = b.as_bytes();
                hits += usize::from(cached.seen.is_some() && bb.starts_with(&cached.bytes));
                assert_eq!(
                    cached.read(bb, &mut t1),
                    Head::default().read(bb, &mut t2),
                    "{a:?}, {m:?}, then {b:?}"
                );
                assert_eq!(format!("{t1:?}"), format!("{t2:?}"), "{a:?}, {m:?}, {b:?}");
            }
        }
    }
    // The cache is used (most heads are kept), so the agreement is not vacuous.
    assert!(hits > lines.len(), "{hits}");
}

/// A flood of queries that are never answered, with answered transactions among them, keeps
/// at most the pending cap plus two transactions, and every query comes out once.
#[test]
fn slab_is_bounded_by_the_pending_cap() {
    let cap = 8;
    let mut p = Dnsmasq::new(cap);
    let mut ctx = Ctx {
        stats: crate::ingest::Stats::new("dnsmasq"),
        source: Source::new("t"),
        time: resolver(),
        pending_max: cap,
        prefilter: None,
    };
    let mut out = Vec::new();
    let mut queries = 0;
    for i in 0..1000 {
        let line = format!("Jan  6 09:00:00 dnsmasq[812]: query[A] n{i}.example from 10.0.0.1");
        p.line(line.as_bytes(), &mut ctx, &mut out);
        queries += 1;
        if i % 3 == 0 {
            let line = format!("Jan  6 09:00:00 dnsmasq[812]: reply n{i}.example is 192.0.2.1");
            p.line(line.as_bytes(), &mut ctx, &mut out);
        }
        assert!(p.slab.txs_len() <= cap + 2, "{}", p.slab.txs_len());
    }
    p.flush(&mut ctx, &mut out);
    assert_eq!(out.len(), queries);
    assert!(p.pending.is_empty() && p.current.is_none());
}

/// `answer_parts` is its rule (the first ` is ` after the verb, then the last word before it
/// and whether a word precedes that) on every message of up to 8 bytes after a verb over
/// blanks, `i`, `s` and a letter, and on random longer ones; the shortcut is taken on many of
/// them, so the agreement is not vacuous. Fails when the shortcut takes a name `is` (whose
/// space is the first ` is `).
#[test]
fn answer_parts_is_the_word_rule() {
    fn reference(msg: &[u8], verb_len: usize) -> Option<(Option<&[u8]>, &[u8])> {
        let i = lex::find(msg.get(verb_len..)?, b" is ")? + verb_len;
        let before = msg.get(..i)?;
        let words: Vec<&[u8]> = before
            .split(|c| *c == b' ')
            .filter(|w| !w.is_empty())
            .collect();
        let name = match words.as_slice() {
            [.., _, name] => Some(*name),
            _ => None,
        };
        Some((name, msg.get(i + 4..)?))
    }
    let alphabet = [b' ', b'\t', b'i', b's', b'x'];
    let mut fast = 0;
    let mut check = |tail: &[u8]| {
        let mut msg = b"reply".to_vec();
        msg.extend_from_slice(tail);
        let Some((verb, args)) = lex::next_token(&msg) else {
            return;
        };
        let got = answer_parts(&msg, verb.len(), args);
        assert_eq!(
            got,
            reference(&msg, verb.len()),
            "{:?}",
            String::from_utf8_lossy(&msg)
        );
        let at = msg.len() - args.len();
        fast += usize::from(got.is_some() && msg.get(at - 1) == Some(&b' '));
    };
    let mut buf = Vec::new();
    for len in 0..=8u32 {
        for code in 0..alphabet.len().pow(len) {
            buf.clear();
            let mut c = code;
            for _ in 0..len {
                buf.push(alphabet[c % alphabet.len()]);
                c /= alphabet.len();
            }
            check(&buf);
        }
    }
    let mut st = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..20_000 {
        st ^= st << 13;
        st ^= st >> 7;
        st ^= st << 17;
        let len = (st % 40) as usize;
        let tail: Vec<u8> = (0..len)
            .map(|k| alphabet[((st >> (k % 60)) as usize + k) % alphabet.len()])
            .collect();
        check(&tail);
        check(format!(" a.example{} is 10.0.0.1", String::from_utf8_lossy(&tail)).as_bytes());
    }
    assert!(fast > 1_000, "{fast}");
}

/// `qname_is` is `name_eq` on every normalised name and raw name of up to 4 bytes over
/// letters of both cases, a dot and a digit (the byte comparison only answers early). Fails
/// when the case-blind comparison behind it is dropped.
#[test]
fn qname_is_is_name_eq() {
    let alphabet = [b'a', b'A', b'.', b'7'];
    let mut all = vec![Vec::new()];
    for len in 1..=4u32 {
        for code in 0..alphabet.len().pow(len) {
            let mut c = code;
            all.push(
                (0..len)
                    .map(|_| {
                        let b = alphabet[c % alphabet.len()];
                        c /= alphabet.len();
                        b
                    })
                    .collect(),
            );
        }
    }
    let mut equal = 0;
    for q in &all {
        let Some(qname) = lex::name(q) else { continue };
        for raw in &all {
            let want = name_eq(&qname, raw);
            assert_eq!(qname_is(&qname, raw), want, "{qname:?} {raw:?}");
            equal += usize::from(want);
        }
    }
    assert!(equal > 100, "{equal}");
}
