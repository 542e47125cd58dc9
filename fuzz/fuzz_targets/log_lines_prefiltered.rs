//! The readings that only run under `scan`'s list pre-filter (`ingest::prefilter`): BIND's and
//! Unbound's early drop of lines naming no listed pool, and dnsmasq's lite reading of the
//! transactions of unlisted names (`ingest/dnsmasq/tx.rs`, `apply_lite`). The first byte picks the
//! format (BIND, Unbound, dnsmasq) and, for dnsmasq, a small pending table; the rest, split into
//! lines, is read with and without a pre-filter built as `scan` builds it
//! (`Prefilter::new` over `Blocklists::match_name_bytes`) over a small list compiled by
//! the real matcher (three pool entries, one allow entry under one of them).
//!
//! Checked, as the code promises it (`ingest/prefilter.rs`, `IngestConfig::prefilter`):
//! * BIND, Unbound: the pre-filter only drops (Unbound: while query-line time does not go
//!   backwards, see below). The filtered observations are a subsequence of
//!   the unfiltered ones, and every unfiltered observation whose query name the lists match
//!   (`match_name` on the normalised name, the engine's test) is among them, in order: the two
//!   runs restricted to listed names are equal. (These logs carry no answers.) The pending
//!   table is made larger than the input has lines: a full table evicts by age, and dropping
//!   lines changes which query is evicted first, which the pre-filter does not promise to keep.
//! * dnsmasq, no sink: the lite reading is exact, so the observations are *equal* (any cap).
//! * dnsmasq, read through a [`LogSink`] that says an answer matters when one of its addresses
//!   ends in an odd byte: the stream is the unfiltered one with some observations replaced by a
//!   skip, and each skipped one has the skip's time and client, no server, a query name and
//!   answer names/CNAME targets the lists do not match, and exactly the A/AAAA addresses the
//!   sink was asked about (for which it said "does not matter").
#![no_main]

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use poolwatch::ingest::{self, IngestConfig, LogFormat, LogSink, Prefilter};
use poolwatch::matcher::{Blocklists, ListSource};
use poolwatch::model::{Category, DnsObservation, Observation, RrType, Source, Timestamp};

/// The listed entries (plain domains: the label-suffix rule applies).
const POOLS: &str = "supportxmr.com\nnanopool.org\nmoneroocean.stream\n";
/// An allow entry under a listed one: the matcher reports no hit for it.
const ALLOWED: &str = "allow.nanopool.org\n";
/// Fixed reference time for year-less and time-less lines (2026-12-03T00:00:00Z): both readings
/// must see the same clock.
const REFERENCE_SECS: i64 = 1_796_256_000;

struct Fixture {
    lists: Arc<Blocklists>,
    pre: Arc<Prefilter>,
}

fn fixture() -> Option<&'static Fixture> {
    static F: OnceLock<Option<Fixture>> = OnceLock::new();
    F.get_or_init(|| {
        let (b, _) = Blocklists::build(vec![
            ListSource::memory("pools", Category::Pool, None, POOLS),
            ListSource::memory("allow", Category::Allow, None, ALLOWED),
        ])
        .ok()?;
        let lists = Arc::new(b);
        let l = Arc::clone(&lists);
        // As `scan` builds it (`cli/scan.rs`).
        let pre = Arc::new(Prefilter::new(Box::new(move |n| {
            l.match_name_bytes(n).is_some()
        })));
        Some(Fixture { lists, pre })
    })
    .as_ref()
}

fn dns(o: &Observation) -> Option<&DnsObservation> {
    match o {
        Observation::Dns(d) => Some(d),
        Observation::Flow(_) => None,
    }
}

/// The engine's list test on a DNS observation's query name.
fn listed_qname(lists: &Blocklists, o: &Observation) -> bool {
    dns(o).is_some_and(|d| lists.match_name(&d.qname).is_some())
}

/// Reads `lines` with `cfg`, every line's observations in order.
fn read(format: LogFormat, cfg: &IngestConfig, lines: &[&[u8]]) -> Vec<Observation> {
    let mut p = ingest::parser_for(format, Source::new("fuzz"), cfg);
    let mut out = Vec::new();
    for l in lines {
        p.parse_line(l, &mut out);
    }
    p.flush(&mut out);
    out
}

/// One item of a reading through the sink.
#[derive(Debug)]
enum Event {
    Obs(Observation),
    Skip {
        ts: Timestamp,
        client: IpAddr,
        ips: Vec<IpAddr>,
    },
}

/// A consumer that says an answer matters when one of its addresses ends in an odd byte.
#[derive(Default)]
struct Sink {
    events: Vec<Event>,
    /// The last `answers_matter` question answered "no": the skip that follows is about it.
    asked: Option<(IpAddr, Vec<IpAddr>)>,
}

fn matters(ips: &[IpAddr]) -> bool {
    ips.iter().any(|ip| {
        let last = match ip {
            IpAddr::V4(v4) => v4.octets()[3],
            IpAddr::V6(v6) => v6.octets()[15],
        };
        last % 2 == 1
    })
}

impl LogSink for Sink {
    fn push(&mut self, obs: Observation) {
        self.events.push(Event::Obs(obs));
    }
    fn answers_matter(&mut self, client: IpAddr, ips: &[IpAddr]) -> bool {
        let m = matters(ips);
        self.asked = (!m).then(|| (client, ips.to_vec()));
        m
    }
    fn skipped(&mut self, ts: Timestamp) {
        let asked = self.asked.take();
        assert!(
            asked.is_some(),
            "skipped without a \"does not matter\" answer"
        );
        if let Some((client, ips)) = asked {
            self.events.push(Event::Skip { ts, client, ips });
        }
    }
}

/// Reads `lines` through a [`Sink`], as `LineReader::drain_into` does: each line's
/// observations reach the sink before the next line is parsed.
fn read_into(format: LogFormat, cfg: &IngestConfig, lines: &[&[u8]]) -> Vec<Event> {
    let mut p = ingest::parser_for(format, Source::new("fuzz"), cfg);
    let mut sink = Sink::default();
    let mut batch = Vec::new();
    for l in lines {
        p.parse_line_into(l, &mut batch, &mut sink);
        for o in batch.drain(..) {
            sink.push(o);
        }
    }
    p.flush_into(&mut batch, &mut sink);
    for o in batch.drain(..) {
        sink.push(o);
    }
    sink.events
}

/// `skip` stands for `o`: same time and client, nothing the engine could act on.
fn check_skip(lists: &Blocklists, o: &Observation, ts: Timestamp, client: IpAddr, ips: &[IpAddr]) {
    let Some(d) = dns(o) else {
        panic!("a skip in place of a flow: {o:?}");
    };
    assert_eq!(d.ts, ts, "skip time: {d:?}");
    assert_eq!(d.client, client, "skip client: {d:?}");
    assert!(d.server.is_none(), "skipped with a server: {d:?}");
    assert!(
        lists.match_name(&d.qname).is_none(),
        "skipped a listed name: {d:?}"
    );
    for a in &d.answers {
        assert!(
            lists.match_name(&a.name).is_none(),
            "skipped a listed owner: {d:?}"
        );
        if a.rtype == RrType::CNAME || a.rtype == RrType::DNAME {
            assert!(
                lists.match_name(&a.data).is_none(),
                "skipped a listed target: {d:?}"
            );
        }
    }
    let answered: Vec<IpAddr> = d.answer_ips().collect();
    assert_eq!(answered, ips, "skip asked about other addresses: {d:?}");
}

/// Whether a query line (a line read alone gives a query-only observation) is logged earlier
/// than a query line before it.
fn query_time_goes_back(cfg: &IngestConfig, lines: &[&[u8]]) -> bool {
    let mut last = None;
    for l in lines {
        let alone = read(LogFormat::Unbound, cfg, &[l]);
        let query = alone
            .iter()
            .filter_map(dns)
            .find(|d| d.query_seen && d.rcode.is_none());
        if let Some(d) = query {
            if last.is_some_and(|t| d.ts < t) {
                return true;
            }
            last = Some(d.ts);
        }
    }
    false
}

fuzz_target!(|data: &[u8]| {
    let Some(fx) = fixture() else {
        return;
    };
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let format = [LogFormat::Bind, LogFormat::Unbound, LogFormat::Dnsmasq][usize::from(sel % 3)];
    let lines: Vec<&[u8]> = rest.split(|c| *c == b'\n').collect();
    let small_table = format == LogFormat::Dnsmasq && (sel / 3) % 2 == 1;
    let plain = IngestConfig {
        reference: Some(Timestamp::from_secs(REFERENCE_SECS)),
        max_line_len: 4096,
        pending_max: if small_table {
            1 + usize::from(sel / 6) % 8
        } else {
            lines.len() + 1
        },
        ..IngestConfig::default()
    };
    let filtered = IngestConfig {
        prefilter: Some(Arc::clone(&fx.pre)),
        ..plain.clone()
    };
    let full = read(format, &plain, &lines);
    let pre = read(format, &filtered, &lines);
    if format == LogFormat::Dnsmasq {
        assert!(full == pre, "lite reading differs:\n{full:#?}\n{pre:#?}");
        let events = read_into(format, &filtered, &lines);
        assert_eq!(events.len(), full.len(), "{events:#?}\n{full:#?}");
        for (e, o) in events.iter().zip(&full) {
            match e {
                Event::Obs(p) => assert_eq!(p, o),
                Event::Skip { ts, client, ips } => check_skip(&fx.lists, o, *ts, *client, ips),
            }
        }
        return;
    }
    if format == LogFormat::Unbound && query_time_goes_back(&plain, &lines) {
        // The weaker promise: Unbound's pending queries time out oldest first and the sweep
        // stops at the first one still waiting (`Pending::drain_expired`), so a dropped query
        // line logged later than a kept one that follows it holds that one back in the
        // unfiltered reading only. The pre-filter keeps the observations while query-line
        // time does not go backwards (resolver logs are written in time order).
        return;
    }
    // Only drops: `pre` is a subsequence of `full` …
    let mut it = full.iter();
    for p in &pre {
        assert!(
            it.any(|o| o == p),
            "not in the unfiltered reading: {p:#?}\n{full:#?}"
        );
    }
    // … and keeps every listed one.
    let listed_full: Vec<&Observation> =
        full.iter().filter(|o| listed_qname(&fx.lists, o)).collect();
    let listed_pre: Vec<&Observation> = pre.iter().filter(|o| listed_qname(&fx.lists, o)).collect();
    assert!(
        listed_full == listed_pre,
        "listed observations differ:\n{listed_full:#?}\n{listed_pre:#?}"
    );
});
