//! Arbitrary bytes as (a) a flow's first payload for the Stratum rule (`capture::payload`) and (b) JSON-lines
//! observations fed to the correlation engine and a temporary store, plus (c) a list cursor.
//! The observations are fed twice with source positions (`correlate::replay`): the second pass
//! is a re-read after a crash, and must not panic either. A second engine takes each
//! observation by value (`Engine::observe_owned`, the pipeline's: it may keep the
//! observation's strings); its changes must equal the first engine's, event by event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poolwatch::capture::payload::classify_client;
use poolwatch::correlate::{Engine, EngineConfig};
use poolwatch::matcher::{self, Blocklists, SharedBlocklists};
use poolwatch::model::{AppInfo, Observation, SourceId, SourcePos};

fuzz_target!(|data: &[u8]| {
    let _ = classify_client(data, &mut AppInfo::default());
    // Compiled once: compiling the built-in lists per input was most of the target's time.
    static LISTS: std::sync::OnceLock<Option<SharedBlocklists>> = std::sync::OnceLock::new();
    let Some(lists) = LISTS
        .get_or_init(|| Blocklists::builtin().ok().map(matcher::shared))
        .clone()
    else {
        return;
    };
    let mut e = Engine::new(EngineConfig::default(), lists.clone());
    let mut owned = Engine::new(EngineConfig::default(), lists);
    let obs: Vec<(Observation, Option<SourcePos>)> = data
        .split(|b| *b == b'\n')
        .enumerate()
        .filter_map(|(i, line)| {
            let o = serde_json::from_slice::<Observation>(line).ok()?;
            // Two sources and an unpositioned one, offsets out of order now and then.
            let pos = match line.len() % 3 {
                0 => None,
                k => Some(SourcePos {
                    source: SourceId(k as u64),
                    offset: (i as u64).wrapping_mul(7) % 11,
                    seq: (line.len() % 2) as u32,
                }),
            };
            Some((o, pos))
        })
        .collect();
    for _pass in 0..2 {
        for (o, pos) in &obs {
            let borrowed = e.observe_at(o, *pos);
            owned.set_next_position(*pos);
            let taken = owned.observe_owned(o.clone());
            assert_eq!(format!("{borrowed:?}"), format!("{taken:?}"), "{o:?}");
        }
    }
    assert_eq!(format!("{:?}", e.drain()), format!("{:?}", owned.drain()));
    // One temporary database for the whole run (opening one per input would dominate).
    static STORE: std::sync::OnceLock<Option<poolwatch::store::Store>> = std::sync::OnceLock::new();
    let store = STORE.get_or_init(|| poolwatch::store::Store::open_temporary().ok());
    if let (Ok(s), Some(store)) = (std::str::from_utf8(data), store) {
        let _ = store.list_detections(&Default::default(), 10, Some(s));
        let _ = store.get_detection(s);
    }
});
