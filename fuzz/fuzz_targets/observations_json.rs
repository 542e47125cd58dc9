//! Arbitrary bytes as a `--format observations` replay stream (`input::parse_observation_lines`:
//! the bounded line reader plus the observation JSON), and through `input::BoundedLines` with a
//! small cap, checking its promises: no line over the cap, no newline inside a line, offsets
//! that point at the line in the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poolwatch::input::{parse_observation_lines, BoundedLines};

fuzz_target!(|data: &[u8]| {
    let (obs, failure) = parse_observation_lines(data);
    // Whatever parsed serialises again (the replay contract: inspect output in, same out).
    for o in &obs {
        let _ = serde_json::to_vec(o);
    }
    if let Some(f) = failure {
        assert!(f.offset.is_none_or(|o| o as usize <= data.len()));
    }
    let cap = 1 + usize::from(data.first().copied().unwrap_or(0)) % 64;
    let mut lines = BoundedLines::new(std::io::Cursor::new(data), cap);
    let mut last = 0u64;
    while let Ok(Some(l)) = lines.next_line() {
        assert!(l.bytes.len() <= cap);
        assert!(!l.bytes.contains(&b'\n'));
        assert!(l.number > last);
        last = l.number;
        let at = l.offset as usize;
        assert_eq!(data.get(at..at + l.bytes.len()), Some(l.bytes));
    }
});
