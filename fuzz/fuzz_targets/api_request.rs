//! API request inputs: the detections query string (every filter parser) and the service
//! configuration file (TOML + validation).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = poolwatch::api::parse_detection_query(text);
    if let Ok(file) = poolwatch::config::FileConfig::parse(text) {
        let _ = poolwatch::config::Settings::resolve(&Default::default(), file);
    }
});
