//! Unit tests of the reader plumbing (`mod.rs`).

use super::*;

#[test]
fn names_round_trip() {
    for f in LogFormat::ALL {
        assert_eq!(LogFormat::parse(f.name()), Some(*f));
    }
    assert_eq!(LogFormat::parse("pihole"), Some(LogFormat::Dnsmasq));
    assert_eq!(LogFormat::parse("nope"), None);
}

#[test]
fn sampling_is_sparse() {
    let n: Vec<u64> = (1..=1000).filter(|n| should_sample(*n)).collect();
    assert_eq!(n, vec![1, 10, 100, 1000]);
}

#[test]
fn reader_skips_long_lines_and_keeps_going() {
    let mut data = Vec::new();
    data.extend_from_slice(b"26-Nov-2026 20:27:18.781 queries: info: client @0x1 10.0.0.1#1 (a.com): query: a.com IN A + (10.0.0.53)\n");
    data.extend(std::iter::repeat_n(b'x', 3000));
    data.extend_from_slice(b"\n26-Nov-2026 20:27:18.781 queries: info: client @0x1 10.0.0.2#1 (b.com): query: b.com IN A + (10.0.0.53)");
    let cfg = IngestConfig {
        max_line_len: 1000,
        ..Default::default()
    };
    let parser = parser_for(LogFormat::Bind, Source::new("t"), &cfg);
    let r = LineReader::new(
        Box::new(std::io::Cursor::new(data)),
        Vec::new(),
        parser,
        1000,
    );
    let names: Vec<String> = r
        .filter_map(|o| match o {
            Observation::Dns(d) => Some(d.qname),
            _ => None,
        })
        .collect();
    assert_eq!(names, vec!["a.com", "b.com"]);
}
