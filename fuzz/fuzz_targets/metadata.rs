//! Metadata and completion event parsing of arbitrary JSON.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = recstitch::input::metadata::parse_metadata(&v, Path::new("fuzz.json"));
        let _ = recstitch::input::metadata::parse_events(&v, Path::new("fuzz.json"));
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = recstitch::WallClock::parse(s);
    }
});
