//! Properties of the whole pipeline over generated archives (see
//! `tests/util/spec.rs`, shared with the `pipeline` fuzz target): metadata
//! and event values of every odd shape, paired with real and mutated chunks.
//!
//! - the scan of a readable folder succeeds and nothing panics;
//! - whatever validates also stitches (with `--gaps wallclock`, a hold
//!   longer than a day may be refused with a clear error);
//! - ffprobe reads every stitched file, with its video and audio streams.

mod util;

use std::process::Command;

use arbitrary::{Arbitrary, Unstructured};
use recstitch::{Archive, GapMode, ScanOptions, StitchOptions, Stitcher, ValidateOptions};
use util::spec::{self, ArchiveSpec, Fixture};

/// Generated archives per run.
const CASES: u64 = 160;

/// `len` bytes from `seed` (xorshift), 85% of them zero: zero picks the
/// first variant of each choice, which keeps the fixture's own value, so
/// that many archives are valid and reach the stitcher.
fn biased_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = util::Rng(seed);
    (0..len)
        .map(|_| if rng.below(100) < 85 { 0 } else { rng.below(256) as u8 })
        .collect()
}

/// The stream types ffprobe finds in `path`, or why it failed.
fn ffprobe_streams(path: &std::path::Path) -> Result<String, String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .map_err(|e| e.to_string())?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() || !err.is_empty() {
        return Err(err);
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .replace('\n', " ")
        .trim()
        .to_string())
}

/// Checks the properties over the archive `bytes` generate; returns
/// (recordings, valid, stitched).
fn check_archive(name: &str, bytes: &[u8], fixture: &Fixture) -> (usize, usize, usize) {
    let input = ArchiveSpec::arbitrary(&mut Unstructured::new(bytes)).unwrap();
    let base = util::temp_dir(&format!("properties/{name}"));
    let (archive, out) = (base.join("archive"), base.join("out"));
    std::fs::create_dir_all(&archive).unwrap();
    spec::write(&input, fixture, &archive);
    let scanned = Archive::scan(&archive, &ScanOptions::default())
        .unwrap_or_else(|e| panic!("{name}: the scan failed: {e}\n{input:?}"));
    let gaps = if input.wallclock {
        GapMode::Wallclock
    } else {
        GapMode::Collapse
    };
    let stitcher = Stitcher::new(StitchOptions::with_gaps(gaps));
    let (mut valid, mut stitched) = (0, 0);
    for rec in &scanned.recordings {
        let checked = rec.validate(&ValidateOptions::default());
        if !checked.is_valid() {
            continue;
        }
        valid += 1;
        let manifest = match stitcher.stitch(&checked, &out) {
            Ok(m) => m,
            Err(e) if input.wallclock && e.to_string().contains("stitch with `--gaps collapse`") => continue,
            Err(e) => panic!("{name}: a valid recording did not stitch: {e}\n{input:?}"),
        };
        stitched += 1;
        let path = rec.output_paths(&out).media;
        let streams =
            ffprobe_streams(&path).unwrap_or_else(|e| panic!("{name}: ffprobe cannot read {}: {e}", path.display()));
        // Video, audio, and the chapters' text track (a data stream to ffprobe).
        assert_eq!(streams, "video audio data", "{name}: {}", manifest.output.path);
    }
    std::fs::remove_dir_all(&base).unwrap();
    (scanned.recordings.len(), valid, stitched)
}

/// Regression: the inputs the `pipeline` fuzz target found, replayed
/// (`fixtures/regressions/pipeline-inputs/`, each named after its bug).
#[test]
fn inputs_the_fuzzer_found_keep_the_properties() {
    if !util::have_tool("ffprobe") {
        return;
    }
    let fixture = Fixture::load(env!("CARGO_MANIFEST_DIR"));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/regressions/pipeline-inputs");
    let mut replayed = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        check_archive(&name, &std::fs::read(&path).unwrap(), &fixture);
        replayed += 1;
    }
    assert!(replayed >= 1, "no fuzzer input to replay");
}

#[test]
fn whatever_validates_also_stitches_and_ffprobe_reads_it() {
    if !util::have_tool("ffprobe") {
        return;
    }
    let fixture = Fixture::load(env!("CARGO_MANIFEST_DIR"));
    let (mut recordings, mut valid, mut stitched) = (0, 0, 0);
    for seed in 0..CASES {
        let (r, v, s) = check_archive(&seed.to_string(), &biased_bytes(seed, 768), &fixture);
        recordings += r;
        valid += v;
        stitched += s;
    }
    eprintln!("{CASES} archives: {recordings} recordings, {valid} valid, {stitched} stitched and read by ffprobe");
    // The property must have been exercised, on both sides.
    assert!(
        stitched as u64 >= CASES / 4,
        "only {stitched} of {recordings} recordings stitched"
    );
    assert!(
        valid < recordings,
        "every generated recording was valid: the generator lost its teeth"
    );
}
