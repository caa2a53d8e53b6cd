//! Hostile input: mutated headers and malformed files must give a typed
//! error or a finding, never a panic or a hang.

mod util;

use std::io::Cursor;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use recstitch::formats::mp4;
use recstitch::Limits;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(util::cases().join(name)).unwrap()
}

/// Runs `f` on another thread and fails if it takes longer than `limit`
/// (a hang) or panics.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("no answer within {limit:?}: a hang"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the probe panicked"),
    }
}

/// The end of the `moov` box of a faststart file (where headers end).
fn header_end(bytes: &[u8]) -> usize {
    let mut pos = 0usize;
    while pos + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &bytes[pos + 4..pos + 8];
        if kind == b"mdat" || size < 8 {
            break;
        }
        pos += size;
    }
    pos.min(bytes.len())
}

#[test]
fn twenty_thousand_mutated_headers_never_panic_or_hang() {
    let original = fixture("good/3c57992b-07bf-4387-a8bc-a13561e8650a/0-eus-d11-293c5f93ea87298458e47ef52dda3bb9.mp4");
    let end = header_end(&original);
    assert!(end > 1000, "the fixture is expected to keep its moov first");
    let counts = within(Duration::from_secs(300), move || {
        let limits = Limits::default();
        let mut rng = util::Rng(0x5EED_0000_0000_0001);
        let (mut ok, mut err) = (0, 0);
        for _ in 0..20_000 {
            let mut bytes = original.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(end - 4);
                match rng.below(4) {
                    0 => bytes[at] = rng.next() as u8,
                    1 => bytes[at] ^= 1 << rng.below(8),
                    _ => {
                        let special = [0u32, 1, 7, 8, 9, 16, 0x7FFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFF8];
                        let v = if rng.below(2) == 0 {
                            special[rng.below(special.len())]
                        } else {
                            rng.next() as u32
                        };
                        bytes[at..at + 4].copy_from_slice(&v.to_be_bytes());
                    }
                }
            }
            let len = bytes.len() as u64;
            match mp4::probe_reader(Cursor::new(bytes), len, Path::new("mutated.mp4"), &limits) {
                Ok(_) => ok += 1,
                Err(_) => err += 1,
            }
        }
        (ok, err)
    });
    eprintln!("20000 mutations: {} probed, {} typed errors", counts.0, counts.1);
    assert_eq!(counts.0 + counts.1, 20_000);
    assert!(counts.1 > 1000, "mutations should break many headers");
}

/// Copies the fixture recording `case` into `dir` with the first media
/// file (of extension `ext`) replaced by `bytes`.
fn archive_with(case: &str, ext: &str, dir: &Path, bytes: &[u8]) {
    let _ = std::fs::remove_dir_all(dir);
    util::copy_tree(&util::cases().join(case), dir);
    let mut media: Vec<std::path::PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    media.sort();
    std::fs::write(&media[0], bytes).unwrap();
}

/// Mutated and cut MP3 and WAV chunks, through scan, validation (`--deep`),
/// and a stitch in both gap modes whenever the recording still validates:
/// a finding or a typed error each time, never a panic or a hang.
#[test]
fn mutated_mp3_and_wav_chunks_never_panic_through_validate_and_stitch() {
    use recstitch::{Archive, GapMode, ScanOptions, StitchOptions, Stitcher, ValidateOptions};
    for (case, ext, seed) in [("good_mp3_pause", "mp3", 1u64), ("good_wav_unmixed", "wav", 2)] {
        let mut first: Vec<std::path::PathBuf> = walkdir::WalkDir::new(util::cases().join(case))
            .into_iter()
            .map(|e| e.unwrap().into_path())
            .filter(|p| p.extension().is_some_and(|x| x == ext))
            .collect();
        first.sort();
        let original = std::fs::read(&first[0]).unwrap();
        let dir = util::temp_dir(&format!("hostile-{ext}"));
        let counts = within(Duration::from_secs(600), move || {
            let mut rng = util::Rng(0x5EED_0000_0000_0100 + seed);
            let (mut stitched, mut refused) = (0, 0);
            for round in 0..150 {
                let mut bytes = original.clone();
                if round % 5 == 0 {
                    bytes.truncate(rng.below(bytes.len()));
                } else {
                    // Headers live in the first few hundred bytes; frames after.
                    let span = if round % 2 == 0 {
                        400.min(bytes.len())
                    } else {
                        bytes.len()
                    };
                    for _ in 0..1 + rng.below(6) {
                        let at = rng.below(span);
                        bytes[at] = rng.next() as u8;
                    }
                }
                let archive = dir.join("archive");
                archive_with(case, ext, &archive, &bytes);
                let scanned = Archive::scan(&archive, &ScanOptions::default()).unwrap();
                let mut options = ValidateOptions::default();
                options.deep = round % 3 == 0;
                for rec in &scanned.recordings {
                    let checked = rec.validate(&options);
                    if !checked.is_valid() {
                        refused += 1;
                        continue;
                    }
                    for gaps in [GapMode::Collapse, GapMode::Wallclock] {
                        match Stitcher::new(StitchOptions::with_gaps(gaps)).stitch(&checked, &dir.join("out")) {
                            Ok(_) => stitched += 1,
                            Err(_) => refused += 1,
                        }
                    }
                }
            }
            (stitched, refused)
        });
        eprintln!("{case}: {} stitches, {} refusals", counts.0, counts.1);
        assert!(counts.0 > 0 && counts.1 > 0, "{case}: {counts:?}");
    }
}
