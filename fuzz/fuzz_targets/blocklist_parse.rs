//! Arbitrary bytes as a blocklist: parse in every format, compile, match, export.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poolwatch::matcher::{parse_list, Blocklists, ExportFormat, ListFormat, ListSource};
use poolwatch::model::Category;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let fmt = data
        .first()
        .map(|b| ListFormat::ALL[usize::from(*b) % ListFormat::ALL.len()]);
    let _ = parse_list(&text, None);
    let p = parse_list(&text, fmt);
    assert!(p.problems.len() as u64 <= p.invalid + p.skipped);
    if let Ok((b, _)) =
        Blocklists::build(vec![ListSource::memory("fuzz", Category::Pool, fmt, &text)])
    {
        for line in text.lines().take(64) {
            let _ = b.match_name(line);
        }
        if let Some(f) = data.get(1) {
            let _ = b.export(ExportFormat::ALL[usize::from(*f) % ExportFormat::ALL.len()]);
        }
    }
});
