//! Arbitrary bytes as (a) a flow's first payload for the Stratum rule (`capture::payload`) and (b) JSON-lines
//! observations fed to the correlation engine and a temporary store, plus (c) a list cursor.
#![no_main]

use libfuzzer_sys::fuzz_target;
use poolwatch::capture::payload::classify_client;
use poolwatch::correlate::{Engine, EngineConfig};
use poolwatch::matcher::{self, Blocklists};
use poolwatch::model::{AppInfo, Observation};

fuzz_target!(|data: &[u8]| {
    let _ = classify_client(data, &mut AppInfo::default());
    let Ok(lists) = Blocklists::builtin() else {
        return;
    };
    let mut e = Engine::new(EngineConfig::default(), matcher::shared(lists));
    for line in data.split(|b| *b == b'\n') {
        if let Ok(o) = serde_json::from_slice::<Observation>(line) {
            let _ = e.observe(&o);
        }
    }
    let _ = e.drain();
    // One temporary database for the whole run (opening one per input would dominate).
    static STORE: std::sync::OnceLock<Option<poolwatch::store::Store>> = std::sync::OnceLock::new();
    let store = STORE.get_or_init(|| poolwatch::store::Store::open_temporary().ok());
    if let (Ok(s), Some(store)) = (std::str::from_utf8(data), store) {
        let _ = store.list_detections(&Default::default(), 10, Some(s));
        let _ = store.get_detection(s);
    }
});
