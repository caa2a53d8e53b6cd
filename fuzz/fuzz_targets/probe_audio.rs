//! Probe of arbitrary bytes as an MP3 and as a WAV: never a panic, a hang
//! or an unbounded allocation.
#![no_main]

use std::io::Cursor;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use recstitch::formats::AudioFile;
use recstitch::input::metadata::MediaFormat;
use recstitch::Limits;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    for format in [MediaFormat::Mp3, MediaFormat::Wav] {
        let probed = AudioFile::probe_reader(Cursor::new(data), data.len() as u64, Path::new("fuzz"), format, &limits);
        if let Ok(a) = probed {
            let _ = a.duration_ms();
            let _ = a.bit_rate();
            let _ = recstitch::output::report::AudioProbeReport::new(&a);
        }
    }
});
