//! `write_detection` against serde_json on varied detections (fuzz-like: every optional field
//! present or absent, strings with quotes, backslashes, control characters and non-ASCII,
//! IPv4 and IPv6, extreme numbers and timestamps).

use std::borrow::Cow;
use std::net::IpAddr;

use super::*;
use crate::model::{
    Category, DetectionCounts, EvidenceKind, FlowState, Mitre, Rcode, Source, SourceId, SourceMark,
    Stage, Timestamp,
};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
    fn text(&mut self) -> String {
        const PIECES: &[&str] = &[
            "pool.supportxmr.com",
            "A x.pool.supportxmr.com -> 203.0.113.14 (ttl 300)",
            "\"",
            "\\",
            "\n",
            "\t",
            "\u{1}",
            "\u{1f}",
            " ",
            "\u{7f}",
            "é",
            "日本",
            "😀",
            "/",
            "</script>",
            "\u{2028}",
            "",
            "a",
        ];
        let n = self.below(6);
        (0..n)
            .map(|_| PIECES[self.below(PIECES.len() as u64) as usize])
            .collect()
    }
    fn ip(&mut self) -> IpAddr {
        if self.below(4) == 0 {
            IpAddr::from(std::net::Ipv6Addr::from(
                u128::from(self.next()) << self.below(64),
            ))
        } else {
            IpAddr::from((self.next() as u32).to_be_bytes())
        }
    }
    fn num(&mut self) -> u64 {
        match self.below(4) {
            0 => 0,
            1 => u64::MAX,
            _ => self.next() >> self.below(64),
        }
    }
    fn ts(&mut self) -> Timestamp {
        match self.below(6) {
            0 => Timestamp(self.next() as i64),
            1 => Timestamp::MIN,
            _ => Timestamp(1_700_000_000_000_000 + (self.below(1 << 50) as i64)),
        }
    }
    fn opt<T>(&mut self, f: impl FnOnce(&mut Rng) -> T) -> Option<T> {
        self.coin().then(|| f(self))
    }
    fn vec<T>(&mut self, max: u64, mut f: impl FnMut(&mut Rng) -> T) -> Vec<T> {
        let n = self.below(max + 1);
        (0..n).map(|_| f(self)).collect()
    }
}

fn evidence(r: &mut Rng) -> Evidence {
    const KINDS: [EvidenceKind; 5] = [
        EvidenceKind::DnsLookup,
        EvidenceKind::DnsBlocked,
        EvidenceKind::Flow,
        EvidenceKind::TlsSni,
        EvidenceKind::Stratum,
    ];
    const STATES: [FlowState; 4] = [
        FlowState::Attempted,
        FlowState::Rejected,
        FlowState::Established,
        FlowState::Closed,
    ];
    Evidence {
        ts: r.ts(),
        kind: KINDS[r.below(5) as usize],
        source: Source::new(r.text()),
        summary: r.text(),
        qname: r.opt(Rng::text),
        rcode: r.opt(|r| Rcode(r.below(5000) as u16)),
        answers: r.vec(4, Rng::ip),
        dst: r.opt(Rng::ip),
        dst_port: r.opt(|r| r.next() as u16),
        src_port: r.opt(|r| r.next() as u16),
        state: r.opt(|r| STATES[r.below(4) as usize]),
        bytes_out: r.opt(Rng::num),
        bytes_in: r.opt(Rng::num),
        duration_ms: r.opt(Rng::num),
        agent: r.opt(Rng::text),
        method: r.opt(Rng::text),
    }
}

fn detection(r: &mut Rng) -> Detection {
    const CATS: [Category; 4] = [
        Category::Pool,
        Category::BrowserMiner,
        Category::MinerProxy,
        Category::Allow,
    ];
    let cow = |r: &mut Rng, c: &'static str| {
        if r.coin() {
            Cow::Borrowed(c)
        } else {
            Cow::Owned(r.text())
        }
    };
    Detection {
        id: r.text(),
        client_ip: r.ip(),
        stage: Stage::ALL[r.below(6) as usize],
        risk_score: r.next() as u8,
        pool_domain: r.text(),
        query_names: r.vec(3, Rng::text),
        pool_ips: r.vec(3, Rng::ip),
        dst_ports: r.vec(3, |r| r.next() as u16),
        first_seen: r.ts(),
        last_seen: r.ts(),
        is_new: r.coin(),
        evidence: r.vec(7, evidence),
        sources: r.vec(2, |r| Source::new(r.text())),
        lists: r.vec(2, |r| ListHit {
            list: r.text(),
            entry: r.text(),
            category: CATS[r.below(4) as usize],
            line: r.next() as u32,
        }),
        mitre: Mitre {
            technique: cow(r, "T1496"),
            technique_name: cow(r, "Resource Hijacking"),
            tactic: cow(r, "Impact"),
            tactic_id: cow(r, "TA0040"),
        },
        kill_chain: cow(r, crate::model::KILL_CHAIN),
        title: cow(r, crate::model::DETECTION_TITLE),
        counts: DetectionCounts {
            lookups: r.num(),
            blocked_lookups: r.num(),
            flows: r.num(),
            established_flows: r.num(),
            stratum_flows: r.num(),
            bytes_out: r.num(),
            bytes_in: r.num(),
        },
        agents: r.vec(2, Rng::text),
        suppressed: r.coin(),
        suppression_id: r.opt(Rng::text),
        stage_changed: r.opt(Rng::ts),
        schema_version: r.next() as u32,
        retro: r.coin(),
        source_marks: r.vec(2, |r| SourceMark {
            source: SourceId(r.next()),
            offset: r.num(),
            seq: if r.coin() { 0 } else { r.next() as u32 },
        }),
    }
}

#[test]
fn same_bytes_as_serde() {
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut seen_escape = false;
    for i in 0..20_000 {
        let d = detection(&mut r);
        let want = serde_json::to_vec(&d).unwrap();
        let mut got = Vec::new();
        write_detection(&mut got, &d).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want),
            "case {i}: {d:?}"
        );
        seen_escape |= want.windows(2).any(|w| w == b"\\\"" || w == b"\\u");
    }
    assert!(
        seen_escape,
        "the generator produced strings that need escapes"
    );
}

/// The flood's own shape (what `scan` prints most): the engine's constants, IPv4, no escapes.
#[test]
fn same_bytes_as_serde_on_a_flood_detection() {
    let mut r = Rng(7);
    let mut d = detection(&mut r);
    d.mitre = Mitre::default();
    d.kill_chain = Cow::Borrowed(crate::model::KILL_CHAIN);
    d.title = Cow::Borrowed(crate::model::DETECTION_TITLE);
    d.id = "0006612caed65000256cdd7e".into();
    d.source_marks.clear();
    let mut got = Vec::new();
    write_detection(&mut got, &d).unwrap();
    assert_eq!(got, serde_json::to_vec(&d).unwrap());
}

/// The word-at-a-time escape test against the byte-wise rule: every byte value at every
/// position of strings up to 24 bytes (either side of an 8-byte word boundary, and in the
/// tail), over plain, UTF-8 and near-miss backgrounds (0x1f/0x20, 0x21/0x23, 0x5b/0x5d).
#[test]
fn the_escape_test_is_the_bytewise_rule() {
    let naive = |s: &[u8]| s.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
    let backgrounds: [&[u8]; 5] = [b"a", b"\xc3\xa9", b" ", b"!#", b"[]"];
    for len in 0..=24 {
        for bg in backgrounds {
            let base: Vec<u8> = bg.iter().copied().cycle().take(len).collect();
            assert_eq!(needs_escape(&base), naive(&base), "{base:?}");
            for at in 0..len {
                for v in 0..=255u8 {
                    let mut s = base.clone();
                    s[at] = v;
                    assert_eq!(needs_escape(&s), naive(&s), "byte {v:#x} at {at} of {s:?}");
                }
            }
        }
    }
}
