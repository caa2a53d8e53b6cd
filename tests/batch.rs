//! The batch job over a whole archive: statuses, resumability, shards.

mod util;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};

use recstitch::batch::{selected, Shard};
use recstitch::{Archive, ScanOptions};
use serde_json::Value;

#[test]
fn two_hundred_recordings_stitch_then_skip_then_redo_with_force() {
    let archive = util::copies_of_good(200);
    let out = util::temp_dir("batch-200");
    let a = archive.to_str().unwrap();
    let o = out.to_str().unwrap();
    let (code, report) = util::recstitch_json(&["run", "--json", "--progress", "none", a, "--out", o]);
    assert_eq!(code, 0);
    let s = util::statuses(&report);
    assert_eq!(s.len(), 200);
    assert!(s.iter().all(|s| s == "stitched"), "{s:?}");
    // Every recording has its three outputs; every output differs only by its ids.
    let files = util::visible_files(&out);
    assert_eq!(files.len(), 600);
    let (code, report) = util::recstitch_json(&["run", "--json", "--progress", "none", a, "--out", o]);
    assert_eq!(code, 0);
    assert!(util::statuses(&report).iter().all(|s| s == "skipped"));
    assert!(util::visible_files(&out) == files, "a skipping rerun changed outputs");
    // A changed input makes its recording out of date.
    let first = report["recordings"][0]["chunks"][0]["metadata"]
        .as_str()
        .unwrap()
        .to_string();
    let text = std::fs::read_to_string(&first).unwrap();
    std::fs::write(&first, &text).unwrap(); // same bytes, new modification time
    let (_, report) = util::recstitch_json(&["run", "--json", "--progress", "none", a, "--out", o]);
    let s = util::statuses(&report);
    assert_eq!(s.iter().filter(|s| *s == "stitched").count(), 1, "{s:?}");
    assert!(
        util::visible_files(&out) == files,
        "restitching identical inputs changed outputs"
    );
}

#[test]
fn shards_are_disjoint_and_cover_the_archive() {
    let archive = Archive::scan(&util::copies_of_good(200), &ScanOptions::default()).unwrap();
    let mut seen = BTreeSet::new();
    let mut sizes = Vec::new();
    for k in 0..3 {
        let shard: Shard = format!("{k}/3").parse().unwrap();
        let part = selected(&archive, Some(shard));
        sizes.push(part.len());
        for r in part {
            assert!(seen.insert(r.key.clone()), "{} is in two shards", r.key);
        }
    }
    assert_eq!(seen.len(), 200, "shards {sizes:?} do not cover the archive");
    assert!(sizes.iter().all(|&n| n > 40), "unbalanced shards {sizes:?}");
    for bad in ["3/3", "1/0", "x"] {
        assert_eq!(
            bad.parse::<Shard>().unwrap_err(),
            format!("{bad:?} is not a shard: use K/N with 0 <= K < N, e.g. 0/3")
        );
    }
}

#[test]
fn shard_option_selects_the_same_recordings_from_the_cli() {
    let archive = util::copies_of_good(200);
    let scanned = Archive::scan(&archive, &ScanOptions::default()).unwrap();
    let want: BTreeSet<String> = selected(&scanned, Some("1/3".parse().unwrap()))
        .iter()
        .map(|r| r.key.clone())
        .collect();
    let out = util::temp_dir("batch-shard");
    let (code, report) = util::recstitch_json(&[
        "run",
        "--json",
        "--progress",
        "none",
        "--shard",
        "1/3",
        archive.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let got: BTreeSet<String> = report["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["recordingKey"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, want);
}

#[test]
fn one_bad_recording_does_not_stop_the_batch() {
    let out = util::temp_dir("batch-mixed");
    let (code, report) = util::recstitch_json(&[
        "run",
        "--json",
        "--progress",
        "none",
        util::cases().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    let s = util::statuses(&report);
    assert!(s.iter().any(|s| s == "invalid"));
    // Every case without error findings stitched.
    // (the three --deep cases pass the header checks; good_export_layout
    // holds two recordings, one MP4 and one MP3)
    assert_eq!(s.iter().filter(|s| *s == "stitched").count(), 19, "{s:?}");
    assert!(s.iter().all(|s| s == "stitched" || s == "invalid"), "{s:?}");
}

#[test]
fn progress_json_is_one_event_per_line() {
    let out = util::temp_dir("batch-progress");
    let o = Command::new(env!("CARGO_BIN_EXE_recstitch"))
        .args([
            "run",
            "--progress",
            "json",
            util::cases().join("good").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8(o.stderr).unwrap();
    let events: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["started", "stitching", "finished"]);
    assert_eq!(events[2]["status"], "stitched");
    assert!(events[2]["bytesWritten"].as_u64().unwrap() > 100_000);
}

#[test]
fn sigkill_mid_batch_then_rerun_skips_finished_work_and_matches() {
    let archive = util::copies_of_good(30);
    let reference = util::temp_dir("batch-kill-reference");
    let run = |out: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_recstitch"))
            .args(["run", "--json", "--progress", "none", "--jobs", "2"])
            .arg(&archive)
            .arg("--out")
            .arg(out)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let started = std::time::Instant::now();
    assert!(run(&reference).wait_with_output().unwrap().status.success());
    let full = started.elapsed();
    let want = util::visible_files(&reference);
    // The batch is short: move the kill until it lands mid-batch.
    let mut fraction = 0.5f64;
    let mut mid_batch = false;
    for attempt in 0..8 {
        let out = util::temp_dir(&format!("batch-kill-{attempt}"));
        let mut child = run(&out);
        std::thread::sleep(full.mul_f64(fraction));
        let _ = child.kill();
        child.wait().unwrap();
        let done_before = util::visible_files(&out)
            .iter()
            .filter(|f| f.0.ends_with(".json"))
            .count();
        let o = run(&out).wait_with_output().unwrap();
        assert!(o.status.success());
        let report: Value = serde_json::from_slice(&o.stdout).unwrap();
        let s = util::statuses(&report);
        let skipped = s.iter().filter(|s| *s == "skipped").count();
        eprintln!("killed at {fraction:.2} of {full:?}: {done_before} manifests existed; the rerun skipped {skipped}");
        assert!(skipped <= done_before, "only finished recordings may be skipped");
        assert!(s.iter().all(|s| s == "skipped" || s == "stitched"));
        assert!(
            util::visible_files(&out) == want,
            "outputs differ from an uninterrupted run"
        );
        match skipped {
            0 => fraction = (fraction + 1.0) / 2.0,
            30 => fraction /= 2.0,
            _ => {
                mid_batch = true;
                break;
            }
        }
    }
    assert!(mid_batch, "no kill landed mid-batch");
}

#[test]
fn run_counts_statuses_draws_invalid_recordings_and_refuses_zero_jobs() {
    let out = util::temp_dir("batch-summary");
    let archive = util::cases().join("chunk_duration");
    let (a, o) = (archive.to_str().unwrap(), out.to_str().unwrap());
    let done = util::recstitch(&["run", "--timeline", "--progress", "none", a, "--out", o]);
    assert_eq!(done.status.code(), Some(1));
    let text = String::from_utf8_lossy(&done.stdout);
    assert!(text.lines().next().unwrap().ends_with(": invalid"), "{text}");
    assert_eq!(
        text.lines().last().unwrap(),
        "1 recording(s): 1 invalid; 0 orphan file(s)"
    );
    // The timeline of the invalid recording is drawn: that is where it helps.
    let pictures: Vec<Vec<u8>> = util::visible_files(&out)
        .into_iter()
        .filter(|(name, _)| name.ends_with(".png"))
        .map(|(_, bytes)| bytes)
        .collect();
    assert_eq!(pictures.len(), 1);
    assert!(pictures[0].starts_with(b"\x89PNG\r\n\x1a\n"));
    let zero = util::recstitch(&["run", "--jobs", "0", a, "--out", o]);
    assert_eq!(zero.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&zero.stderr).contains("invalid value '0' for '--jobs <JOBS>'"));
    let help = util::recstitch(&["--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Exit codes:\n  0  everything fine"));
}

/// `Stitcher::stitch_owned` frees the chunks' sample tables once it has
/// planned: what it writes must be what `stitch` writes, with pauses held
/// (`--gaps wallclock` plans from the tables) and the timeline picture.
#[test]
fn a_stitch_that_frees_the_tables_writes_the_same_bytes() {
    use recstitch::output::timeline::GapMode;
    use recstitch::{StitchOptions, Stitcher, ValidateOptions};
    let mut options = StitchOptions::with_gaps(GapMode::Wallclock);
    options.timeline = true;
    let stitcher = Stitcher::new(options);
    let mut stitched = 0;
    for case in ["good", "chunk_gap", "good_flat_two_recordings"] {
        let archive = Archive::scan(&util::cases().join(case), &ScanOptions::default()).unwrap();
        let (kept, freed) = (util::temp_dir("stitch-kept"), util::temp_dir("stitch-freed"));
        for recording in &archive.recordings {
            let checked = recording.validate(&ValidateOptions::default());
            assert!(checked.is_valid(), "{case}: {:?}", checked.findings);
            let a = stitcher.stitch(&checked, &kept).unwrap();
            let b = stitcher.stitch_owned(checked, &freed).unwrap();
            assert_eq!(a.output.sha256, b.output.sha256, "{case}");
            stitched += 1;
        }
        let (a, b) = (util::visible_files(&kept), util::visible_files(&freed));
        assert!(
            a.len() >= 4,
            "{case}: {:?}",
            a.iter().map(|(p, _)| p).collect::<Vec<_>>()
        );
        assert_eq!(a.len(), b.len(), "{case}");
        for ((pa, ba), (pb, bb)) in a.iter().zip(&b) {
            assert_eq!(pa, pb, "{case}");
            if pa.ends_with(".json") {
                // The manifest names the output folder; nothing else differs.
                let strip = |bytes: &[u8], dir: &std::path::Path| {
                    String::from_utf8_lossy(bytes).replace(&dir.display().to_string(), "OUT")
                };
                assert_eq!(strip(ba, &kept), strip(bb, &freed), "{case}: {pa}");
            } else {
                assert!(ba == bb, "{case}: {pa} differs");
            }
        }
    }
    assert!(stitched >= 4, "{stitched} recordings stitched");
}
