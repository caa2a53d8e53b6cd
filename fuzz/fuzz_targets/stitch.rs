//! Validate (deep) and stitch a recording whose second chunk is the fuzzer's
//! input (seeded with the real chunk): never a panic, and nothing partial left.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use recstitch::{Archive, ScanOptions, StitchOptions, Stitcher, ValidateOptions};

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/cases/good/3c57992b-07bf-4387-a8bc-a13561e8650a");
const CHUNK0: &str = "0-eus-d11-293c5f93ea87298458e47ef52dda3bb9";
const CHUNK1: &str = "0-eus-d11-93febf7d8405595011fab94b54be8806";

fn dirs() -> &'static (PathBuf, PathBuf) {
    static DIRS: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    DIRS.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("recstitch-fuzz-{}", std::process::id()));
        let archive = base.join("archive");
        std::fs::create_dir_all(&archive).unwrap();
        for name in [CHUNK0, CHUNK1] {
            std::fs::copy(format!("{FIXTURE}/{name}.json"), archive.join(format!("{name}.json"))).unwrap();
        }
        std::fs::copy(format!("{FIXTURE}/{CHUNK0}.mp4"), archive.join(format!("{CHUNK0}.mp4"))).unwrap();
        (archive, base.join("out"))
    })
}

fuzz_target!(|data: &[u8]| {
    let (archive, out) = dirs();
    std::fs::write(archive.join(format!("{CHUNK1}.mp4")), data).unwrap();
    let scanned = Archive::scan(archive, &ScanOptions::default()).unwrap();
    let stitcher = Stitcher::new(StitchOptions::default());
    for rec in &scanned.recordings {
        let mut options = ValidateOptions::default();
        options.deep = true;
        let checked = rec.validate(&options);
        if checked.is_valid() {
            let _ = stitcher.stitch(&checked, out);
        }
    }
    let _ = std::fs::remove_dir_all(out);
});
