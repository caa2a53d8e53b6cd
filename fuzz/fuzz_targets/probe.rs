//! Probe of arbitrary bytes: never a panic, a hang or an unbounded allocation.
#![no_main]

use std::io::Cursor;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use recstitch::formats::mp4;
use recstitch::Limits;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(m) = mp4::probe_reader(Cursor::new(data), data.len() as u64, Path::new("fuzz.mp4"), &limits) {
        let _ = m.first_sample_past_end();
        let _ = m.duration_ms();
        let _ = recstitch::output::report::ProbeReport::new(&m);
    }
});
