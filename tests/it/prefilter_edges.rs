//! The log pre-filter's promise on hostile lines (issue #11; found by the
//! `log_lines_prefiltered` fuzz target): for BIND and Unbound, reading with `scan`'s pre-filter
//! keeps every observation whose query name is listed, with the same fields (time included),
//! whatever the line's shape — the pre-filter looks where the parser looks, and a dropped line
//! still moves the clock that year-less (syslog) times are inferred from.

use std::sync::Arc;

use poolwatch::ingest::{self, IngestConfig, LogFormat, Prefilter};
use poolwatch::matcher::{Blocklists, ListSource};
use poolwatch::model::{Category, Observation, Source, Timestamp};

const POOLS: &str = "supportxmr.com\nnanopool.org\n";

fn lists() -> Arc<Blocklists> {
    let src = ListSource::memory("pools", Category::Pool, None, POOLS);
    Arc::new(Blocklists::build(vec![src]).unwrap().0)
}

/// Reads `text` line by line, with the pre-filter built as `scan` builds it or without it.
fn read(format: LogFormat, text: &str, lists: &Arc<Blocklists>, filtered: bool) -> Vec<String> {
    let l = Arc::clone(lists);
    let cfg = IngestConfig {
        // 2026-12-03T00:00:00Z: a December reference, so a year-less January is next year's
        // only when the line before it says so.
        reference: Timestamp::parse("2026-12-03T00:00:00Z"),
        prefilter: filtered.then(|| {
            Arc::new(Prefilter::new(Box::new(move |n| {
                l.match_name_bytes(n).is_some()
            })))
        }),
        ..IngestConfig::default()
    };
    let mut p = ingest::parser_for(format, Source::new("t"), &cfg);
    let mut out = Vec::new();
    for line in text.lines() {
        p.parse_line(line.as_bytes(), &mut out);
    }
    p.flush(&mut out);
    out.iter()
        .filter_map(|o| match o {
            Observation::Dns(d) if lists.match_name(&d.qname).is_some() => {
                Some(format!("{} {} {} {}", d.ts, d.client, d.qname, d.qtype))
            }
            _ => None,
        })
        .collect()
}

/// The listed observations with and without the pre-filter; they must be equal and not empty.
fn check(format: LogFormat, text: &str, want: &[&str]) {
    let lists = lists();
    let all = read(format, text, &lists, false);
    assert_eq!(all, want, "unfiltered reading of {text:?}");
    let kept = read(format, text, &lists, true);
    assert_eq!(
        kept, all,
        "the pre-filter changed the listed observations of {text:?}"
    );
}

#[test]
fn bind_prefilter_looks_after_the_tokens_the_parser_skips() {
    // The `@0x…` token itself holds `query: `: the parser skips it, so must the pre-filter.
    check(
        LogFormat::Bind,
        "26-Nov-2026 20:27:18.781 queries: info: client @0xquery: 127.0.10.17#59593 (x): \
         query: supportxmr.com IN A +\n",
        &["2026-11-26T20:27:18.781000Z 127.0.10.17 supportxmr.com A"],
    );
}

#[test]
fn dropped_lines_still_set_the_year_of_the_next() {
    // A December line (unlisted, dropped) then a January one: the year rolls over only because
    // of the line before, so the dropped line's time must still be read.
    let syslog = "Dec  2 10:00:00 host named[1]: client 10.0.0.1#1 (a): query: example.com IN A +\n\
                  Jan  1 00:00:01 host named[1]: client 10.0.0.1#1 (b): query: supportxmr.com IN A +\n";
    check(
        LogFormat::Bind,
        syslog,
        &["2027-01-01T00:00:01.000000Z 10.0.0.1 supportxmr.com A"],
    );
    // The line before may carry its year (BIND's own time) and the next none.
    let mixed = "26-Dec-2026 23:59:00.000 client 10.0.0.1#1 (a): query: example.com IN A +\n\
                 Jan  1 00:00:01 host named[1]: client 10.0.0.1#1 (b): query: supportxmr.com IN A +\n";
    check(
        LogFormat::Bind,
        mixed,
        &["2027-01-01T00:00:01.000000Z 10.0.0.1 supportxmr.com A"],
    );
    let unbound = "Dec  2 10:00:00 host unbound[1:0]: info: 10.0.0.1 example.com. A IN\n\
                   Jan  1 00:00:01 host unbound[1:0]: info: 10.0.0.1 supportxmr.com. A IN\n";
    check(
        LogFormat::Unbound,
        unbound,
        &["2027-01-01T00:00:01.000000Z 10.0.0.1 supportxmr.com A"],
    );
}
