//! Golden observations per log format: every fixture in `tests/data/logs/<format>.log` is parsed
//! and its observations, one JSON object a line, must equal
//! `tests/data/logs/<format>.expected.jsonl` — the contract `docs/observations.md` points at.
//!
//! After an intended change, rewrite the files and review the diff:
//! `POOLWATCH_BLESS=1 cargo test --test ingest_golden`.

use std::path::{Path, PathBuf};

use poolwatch::ingest::{self, IngestConfig, LogFormat};
use poolwatch::model::Timestamp;

const DIR: &str = "tests/data/logs";

/// Year-less formats are dated relative to this (2026-11-27T00:00:00Z), not the file's
/// modification time, so the output does not depend on the checkout.
const REFERENCE: Timestamp = Timestamp(1_795_737_600_000_000);

fn fixtures() -> Vec<(LogFormat, PathBuf)> {
    let mut v: Vec<(LogFormat, PathBuf)> = std::fs::read_dir(DIR)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let name = p.file_name()?.to_str()?.strip_suffix(".log")?.to_string();
            let format = LogFormat::parse(&name)
                .unwrap_or_else(|| panic!("{}: not named after a --format", p.display()));
            // Relative, so the `source` field is the same on every machine.
            Some((format, Path::new(DIR).join(p.file_name()?)))
        })
        .collect();
    v.sort_by(|a, b| a.1.cmp(&b.1));
    v
}

fn render(format: LogFormat, path: &Path) -> String {
    let cfg = IngestConfig {
        reference: Some(REFERENCE),
        ..IngestConfig::default()
    };
    let obs = ingest::read_all(path, Some(format), &cfg).unwrap();
    let mut out = String::new();
    for o in &obs {
        out.push_str(&serde_json::to_string(o).unwrap());
        out.push('\n');
    }
    out
}

#[test]
fn every_log_format_matches_its_golden_file() {
    let bless = std::env::var_os("POOLWATCH_BLESS").is_some_and(|v| v != "0");
    let fixtures = fixtures();
    assert!(fixtures.len() >= 10, "fixtures missing: {fixtures:?}");
    let mut failures = Vec::new();
    for (format, path) in fixtures {
        let got = render(format, &path);
        let golden = path.with_extension("expected.jsonl");
        if bless {
            std::fs::write(&golden, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (create it with POOLWATCH_BLESS=1 cargo test --test ingest_golden)",
                golden.display()
            )
        });
        if got != want {
            let line = got
                .lines()
                .zip(want.lines())
                .position(|(g, w)| g != w)
                .unwrap_or_else(|| got.lines().count().min(want.lines().count()));
            failures.push(format!(
                "{}: differs at line {} ({} observations, golden has {}):\n  got:  {}\n  want: {}",
                golden.display(),
                line + 1,
                got.lines().count(),
                want.lines().count(),
                got.lines().nth(line).unwrap_or("<end>"),
                want.lines().nth(line).unwrap_or("<end>"),
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n(after an intended change: POOLWATCH_BLESS=1 cargo test --test ingest_golden, then review the diff)",
        failures.join("\n")
    );
}

#[test]
fn golden_files_parse_back_into_observations() {
    // The golden files are the JSON contract: each line is an `Observation` again.
    for (_, path) in fixtures() {
        let golden = path.with_extension("expected.jsonl");
        let Ok(text) = std::fs::read_to_string(&golden) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            serde_json::from_str::<poolwatch::model::Observation>(line)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", golden.display(), i + 1));
        }
    }
}
