//! Every log line parser (selected by the first byte) plus format detection, on arbitrary bytes
//! split into lines. Checks: no panic, no runaway memory (small caps), observations format.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poolwatch::ingest::{self, IngestConfig, LogFormat};
use poolwatch::model::Source;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let _ = ingest::detect_format(rest);
    let formats = LogFormat::ALL;
    let format = formats[sel as usize % formats.len()];
    let cfg = IngestConfig {
        pending_max: 64,
        max_line_len: 4096,
        ..IngestConfig::default()
    };
    let mut p = ingest::parser_for(format, Source::new("fuzz"), &cfg);
    let mut out = Vec::new();
    for line in rest.split(|c| *c == b'\n') {
        p.parse_line(line, &mut out);
    }
    p.flush(&mut out);
    for o in &out {
        let _ = format!("{o:?}");
    }
});
