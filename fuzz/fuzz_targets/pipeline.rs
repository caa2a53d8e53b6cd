//! The whole pipeline over generated archives: metadata and event *values*
//! (indices, times, durations, pauses, sample rates, duplicate and missing
//! chunks) paired with real and mutated fixture media, through scan →
//! validate → stitch. Never a panic; whatever validates also stitches (with
//! `--gaps wallclock`, a hold longer than a day may be refused); every
//! stitched file probes.
#![no_main]

#[path = "../../tests/util/spec.rs"]
mod spec;

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use recstitch::{Archive, GapMode, ScanOptions, StitchOptions, Stitcher, ValidateOptions};

fn fixture() -> &'static spec::Fixture {
    static FIXTURE: OnceLock<spec::Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| spec::Fixture::load(concat!(env!("CARGO_MANIFEST_DIR"), "/..")))
}

/// A scratch folder, on a memory file system when there is one (the
/// stitcher syncs what it writes).
fn base() -> &'static PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    BASE.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        let root = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
        root.join(format!("recstitch-fuzz-pipeline-{}", std::process::id()))
    })
}

fuzz_target!(|input: spec::ArchiveSpec| {
    let (archive, out) = (base().join("archive"), base().join("out"));
    let _ = std::fs::remove_dir_all(base());
    std::fs::create_dir_all(&archive).unwrap();
    spec::write(&input, fixture(), &archive);
    let scanned = Archive::scan(&archive, &ScanOptions::default()).expect("the scan of a readable folder succeeds");
    let gaps = if input.wallclock { GapMode::Wallclock } else { GapMode::Collapse };
    let stitcher = Stitcher::new(StitchOptions::with_gaps(gaps));
    for rec in &scanned.recordings {
        let checked = rec.validate(&ValidateOptions::default());
        if !checked.is_valid() {
            continue;
        }
        match stitcher.stitch(&checked, &out) {
            Ok(manifest) => {
                let path = rec.output_paths(&out).media;
                let probed = recstitch::probe(&path, &recstitch::Limits::default());
                assert!(probed.is_ok(), "{} does not probe: {:?}", manifest.output.path, probed.err());
            }
            Err(e) => assert!(
                input.wallclock && e.category() == "unsupported" && e.to_string().contains("--gaps collapse"),
                "a valid recording did not stitch: {e}\n{input:?}"
            ),
        }
    }
});
