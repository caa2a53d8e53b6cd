//! Crash safety: `recstitch run` killed with SIGKILL at random points never
//! leaves a partial file under a final name, and a rerun produces exactly the
//! bytes of an uninterrupted run.

mod util;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use util::gen;

fn run(archive: &Path, out: &Path) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_recstitch"))
        .args([
            "run",
            "--json",
            archive.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn sigkill_at_random_points_leaves_no_partial_output_and_reruns_identically() {
    let archive = gen::long_recording();
    let reference_dir = util::temp_dir("crash-reference");
    let started = Instant::now();
    assert!(run(&archive, &reference_dir).wait().unwrap().success());
    let full = started.elapsed();
    let reference = util::visible_files(&reference_dir);
    assert_eq!(reference.len(), 3);
    let points: usize = std::env::var("RECSTITCH_KILL_POINTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    // A fixed-seed generator: the same points on every run of the test.
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut killed_mid_write = 0;
    for point in 0..points {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let delay = full.mul_f64((seed >> 11) as f64 / (1u64 << 53) as f64);
        let out = util::temp_dir(&format!("crash-{point}"));
        let mut child = run(&archive, &out);
        std::thread::sleep(delay);
        let finished_first = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        child.wait().unwrap();
        // Whatever is under a final name is complete and correct.
        let left = util::files(&out, true);
        let mut temps = 0;
        for (name, bytes) in &left {
            if name.ends_with(".tmp") {
                temps += 1;
                continue;
            }
            // The state file, and the recording's lock (released by the kill).
            if name.ends_with(".state") || name.ends_with(".lock") {
                continue;
            }
            let want = reference
                .iter()
                .find(|r| &r.0 == name)
                .unwrap_or_else(|| panic!("unexpected file {name}"));
            assert!(
                &want.1 == bytes,
                "point {point} ({delay:?}): {name} is partial or different"
            );
        }
        if !finished_first && temps > 0 {
            killed_mid_write += 1;
        }
        // A rerun completes with the same bytes and leaves no temporary file.
        assert!(
            run(&archive, &out).wait().unwrap().success(),
            "rerun after point {point} failed"
        );
        assert!(
            util::visible_files(&out) == reference,
            "rerun after point {point} ({delay:?}) differs from an uninterrupted run"
        );
        assert!(
            !util::files(&out, true)
                .iter()
                .any(|f| f.0.ends_with(".tmp") || f.0.ends_with(".lock")),
            "a temporary or lock file survived the rerun"
        );
        eprintln!(
            "point {point}: killed after {delay:?}, {} file(s) left, {temps} temporary",
            left.len()
        );
    }
    eprintln!("{killed_mid_write} of {points} kills landed while an output was being written");
    assert!(
        points == 0 || killed_mid_write > 0,
        "no kill landed mid-write; the test proves nothing"
    );
}
