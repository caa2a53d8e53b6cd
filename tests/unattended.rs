//! Unattended safety: nothing an archive holds, and no second worker on the
//! same archive and output, stops a batch or misleads its operator.

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use util::{cases, copy_tree, files, leftovers, recstitch, recstitch_json, temp_dir};

const GOOD_CALL: &str = "3c57992b-07bf-4387-a8bc-a13561e8650a";

fn regressions() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/regressions")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The report's recording of `call_id`.
fn recording<'a>(report: &'a Value, call_id: &str) -> &'a Value {
    report["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["callId"] == call_id)
        .unwrap_or_else(|| panic!("no recording of call {call_id} in {report}"))
}

fn codes(recording: &Value) -> Vec<String> {
    recording["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_string())
        .collect()
}

/// Each input that once panicked, as a folder of `fixtures/regressions/`,
/// with its call id and the finding it must now give instead.
const REGRESSIONS: &[(&str, &str, &str)] = &[
    (
        "chunk-index-u32-max",
        "a1000000-0000-4000-8000-000000000001",
        "chunk.missing_index",
    ),
    (
        "event-without-chunks",
        "a1000000-0000-4000-8000-000000000002",
        "recording.incomplete",
    ),
    (
        "audio-edit-past-media",
        "a1000000-0000-4000-8000-000000000003",
        "media.invalid",
    ),
    // Found by the pipeline fuzz target: an audio mdhd timescale of
    // 4278206080 Hz made the samples last nothing while the edit list
    // presented 2.5 s; the chunk validated and the plan then refused it.
    (
        "edit-list-longer-than-its-samples",
        "a1000000-0000-4000-8000-000000000004",
        "media.invalid",
    ),
];

#[test]
fn inputs_that_once_panicked_give_findings_and_the_good_recording_beside_them_stitches() {
    let archive = temp_dir("regressions/archive");
    copy_tree(&cases().join("good"), &archive);
    for (folder, _, _) in REGRESSIONS {
        copy_tree(&regressions().join(folder), &archive.join(folder));
    }
    let out = temp_dir("regressions/out");
    let run = util::run_batch(&archive, &out);
    assert!(!stderr(&run).contains("panicked"), "{}", stderr(&run));
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(recording(&report, GOOD_CALL)["status"], "stitched");
    for (folder, call, code) in REGRESSIONS {
        let r = recording(&report, call);
        assert_eq!(r["status"], "invalid", "{folder}: {r}");
        assert!(codes(r).iter().any(|c| c == code), "{folder}: want {code}, got {r}");
    }
    let f = &recording(&report, "a1000000-0000-4000-8000-000000000003")["findings"][0]["message"];
    assert!(
        f.as_str()
            .unwrap()
            .contains("edit list (edts/elst media_time) starts at 1048576 ticks"),
        "{f}"
    );
}

/// Starts `recstitch` with `args`, output captured.
fn spawn(args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_recstitch"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start recstitch")
}

/// Runs `run` over `archive` into `out` in several processes at once (one
/// per entry of `extra`, added to the arguments); all must exit 0.
fn run_at_once(archive: &Path, out: &Path, extra: &[&[&str]]) {
    let children: Vec<_> = extra
        .iter()
        .map(|more| {
            let mut args = vec![
                "run",
                "--progress",
                "none",
                archive.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ];
            args.extend_from_slice(more);
            spawn(&args)
        })
        .collect();
    for child in children {
        let done = child.wait_with_output().unwrap();
        assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    }
}

#[test]
fn concurrent_runs_write_exactly_what_one_run_writes() {
    let archive = util::copies_of_good(6);
    let single = temp_dir("concurrent/single");
    run_at_once(&archive, &single, &[&[]]);
    let expected = files(&single, false);
    assert_eq!(expected.len(), 18);
    for round in 0..2 {
        let out = temp_dir(&format!("concurrent/three-{round}"));
        run_at_once(&archive, &out, &[&[], &[], &[]]);
        assert!(
            files(&out, false) == expected,
            "round {round}: outputs differ from a single run's"
        );
        assert_eq!(leftovers(&out), Vec::<String>::new(), "round {round}");
    }
    // Every shard twice, all at once.
    let out = temp_dir("concurrent/shards");
    let shards: Vec<String> = (0..3).map(|k| format!("{k}/3")).collect();
    let args: Vec<[&str; 2]> = shards.iter().chain(&shards).map(|s| ["--shard", s.as_str()]).collect();
    let extra: Vec<&[&str]> = args.iter().map(|a| a.as_slice()).collect();
    run_at_once(&archive, &out, &extra);
    assert!(
        files(&out, false) == expected,
        "sharded outputs differ from a single run's"
    );
    assert_eq!(leftovers(&out), Vec::<String>::new());
}

#[test]
fn out_inside_the_archive_works_on_every_rerun() {
    let archive = temp_dir("out-inside/archive");
    copy_tree(&cases().join("good"), &archive);
    let out = archive.join("stitched");
    for (round, status) in ["stitched", "skipped", "skipped"].into_iter().enumerate() {
        let (code, report) = util::run_batch_json(&archive, &out);
        assert_eq!(code, 0, "round {round}: {report}");
        assert_eq!(
            report["recordings"].as_array().unwrap().len(),
            1,
            "round {round}: {report}"
        );
        assert_eq!(report["recordings"][0]["status"], status, "round {round}");
        assert_eq!(report["orphans"], serde_json::json!([]), "round {round}");
    }
    // Without --out, the outputs are recognised by content and left out.
    let (code, report) = recstitch_json(&["validate", "--json", archive.to_str().unwrap()]);
    assert_eq!(code, 0, "{report}");
    let orphans = report["orphans"].as_array().unwrap();
    assert_eq!(orphans.len(), 3, "{report}");
    assert!(
        orphans
            .iter()
            .all(|o| o["reason"].as_str().unwrap().contains("an output, not an input")),
        "{report}"
    );
}

#[test]
fn an_archive_without_recordings_exits_3_and_says_what_it_holds() {
    let empty = temp_dir("no-recordings/empty");
    let out = temp_dir("no-recordings/out");
    for args in [
        vec!["validate", empty.to_str().unwrap()],
        vec!["run", empty.to_str().unwrap(), "--out", out.to_str().unwrap()],
    ] {
        let done = recstitch(&args);
        assert_eq!(done.status.code(), Some(3), "{args:?}");
        let e = stderr(&done);
        assert!(
            e.contains(&format!("{} holds no recording: it is empty", empty.display())),
            "{e}"
        );
    }
    let stray = temp_dir("no-recordings/stray");
    std::fs::write(stray.join("page.mp4"), "<!DOCTYPE html><html>403</html>").unwrap();
    let done = recstitch(&["validate", stray.to_str().unwrap()]);
    assert_eq!(done.status.code(), Some(3));
    assert!(
        stderr(&done).contains("1 file(s), none of them chunk metadata or a completion event"),
        "{}",
        stderr(&done)
    );
}

/// Runs `recstitch` as an unprivileged user when this test runs as root (for
/// whom permissions do not stop reading), else as is.
fn recstitch_unprivileged(args: &[&str]) -> Output {
    util::unprivileged(env!("CARGO_BIN_EXE_recstitch"))
        .args(args)
        .output()
        .expect("run recstitch (setpriv from util-linux, as root)")
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Opens every folder on the way to `dir` to other users.
fn open_to_all(dir: &Path) {
    for d in dir
        .ancestors()
        .take_while(|d| d.starts_with(env!("CARGO_TARGET_TMPDIR")))
    {
        chmod(d, 0o777);
    }
}

#[test]
fn unreadable_files_and_folders_are_reported_with_the_os_error() {
    let archive = temp_dir("unreadable/archive");
    copy_tree(&cases().join("good"), &archive);
    open_to_all(&archive);
    let dir = archive.join(GOOD_CALL);
    chmod(&dir, 0o777);
    let chunk1 = dir.join("0-eus-d11-93febf7d8405595011fab94b54be8806.mp4");
    chmod(&chunk1, 0o000);
    let metadata2 = dir.join("0-eus-d11-9b5d9438ec5d9630fb8d71727c7f2ad8.json");
    chmod(&metadata2, 0o000);
    let locked = archive.join("locked");
    std::fs::create_dir_all(&locked).unwrap();
    std::fs::write(locked.join("x.json"), "{}").unwrap();
    chmod(&locked, 0o000);
    let done = recstitch_unprivileged(&["validate", "--json", archive.to_str().unwrap()]);
    chmod(&locked, 0o755);
    chmod(&chunk1, 0o644);
    chmod(&metadata2, 0o644);
    assert_eq!(done.status.code(), Some(1), "{}", stderr(&done));
    let report: Value = serde_json::from_slice(&done.stdout).unwrap();
    let r = recording(&report, GOOD_CALL);
    assert_eq!(codes(r), ["media.unreadable", "metadata.invalid"], "{r}");
    for (finding, chunk) in r["findings"].as_array().unwrap().iter().zip([1, 2]) {
        let message = finding["message"].as_str().unwrap();
        assert!(
            message.ends_with("cannot be read: Permission denied (os error 13)"),
            "{message}"
        );
        assert_eq!(finding["chunkIndex"], chunk);
    }
    let orphans = report["orphans"].as_array().unwrap();
    assert_eq!(orphans.len(), 1, "{report}");
    assert!(orphans[0]["path"].as_str().unwrap().ends_with("/locked"));
    assert_eq!(
        orphans[0]["reason"],
        "folder that cannot be read, skipped: Permission denied (os error 13)"
    );
}

#[test]
fn an_unusable_out_is_refused_before_any_work() {
    let base = temp_dir("bad-out");
    let file = base.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let good = cases().join("good");
    let g = good.to_str().unwrap();
    let below = file.join("below");
    for (out, why) in [
        (&file, "exists and is not a folder"),
        (&below, "cannot be created: Not a directory (os error 20)"),
    ] {
        let done = recstitch(&["run", g, "--out", out.to_str().unwrap()]);
        assert_eq!(done.status.code(), Some(2));
        assert_eq!(
            stderr(&done).trim_end(),
            format!("recstitch: output folder {}: {why}", out.display())
        );
        assert!(done.stdout.is_empty(), "work was done before the check");
    }
    let read_only = base.join("read-only");
    std::fs::create_dir_all(&read_only).unwrap();
    open_to_all(&base);
    chmod(&read_only, 0o555);
    let done = recstitch_unprivileged(&["run", g, "--out", read_only.to_str().unwrap()]);
    assert_eq!(done.status.code(), Some(2), "{}", stderr(&done));
    assert!(
        stderr(&done).contains("is not writable: Permission denied"),
        "{}",
        stderr(&done)
    );
    assert_eq!(std::fs::read_dir(&read_only).unwrap().count(), 0);
}

#[test]
fn a_flac_recording_is_named_an_unsupported_format() {
    let dir = cases().join("media_unsupported_format_flac");
    let (code, report) = recstitch_json(&["validate", "--json", dir.to_str().unwrap()]);
    assert_eq!(code, 1);
    let f = &report["recordings"][0]["findings"][0];
    assert_eq!(f["code"], "media.unsupported_format");
    let message = f["message"].as_str().unwrap();
    assert!(
        message.ends_with("the file is a FLAC file; recstitch stitches MP4, MP3 and WAV recordings"),
        "{message}"
    );
    assert!(!message.contains("download it again"));
}

#[test]
fn an_mp3_saved_as_an_mp4_chunk_is_a_format_mismatch() {
    let dir = cases().join("media_format_mismatch");
    let (code, report) = recstitch_json(&["validate", "--json", dir.to_str().unwrap()]);
    assert_eq!(code, 1);
    let f = &report["recordings"][0]["findings"][0];
    assert_eq!(f["code"], "media.format_mismatch");
    let message = f["message"].as_str().unwrap();
    assert!(
        message.contains("the metadata says format \"mp4\" but the file is an MP3 file"),
        "{message}"
    );
}

#[test]
fn a_chunk_with_stray_bytes_at_its_end_stitches_with_a_quirk_warning() {
    if !util::have_tool("ffprobe") {
        return;
    }
    let archive = temp_dir("quirk/archive");
    copy_tree(&cases().join("good"), &archive);
    let chunk2 = archive
        .join(GOOD_CALL)
        .join("0-eus-d11-9b5d9438ec5d9630fb8d71727c7f2ad8.mp4");
    let mut bytes = std::fs::read(&chunk2).unwrap();
    bytes.extend_from_slice(&[0, 0, 0x0d]);
    std::fs::write(&chunk2, bytes).unwrap();
    let out = temp_dir("quirk/out");
    let (code, report) = util::run_batch_json(&archive, &out);
    assert_eq!(code, 0, "{report}");
    let r = &report["recordings"][0];
    assert_eq!(r["status"], "stitched");
    assert_eq!(codes(r), ["media.quirk"]);
    let f = &r["findings"][0];
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["chunkIndex"], 2);
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("3 bytes at the end of the file are not a box and were ignored"),
        "{f}"
    );
    let output = Path::new(r["output"].as_str().unwrap());
    assert_eq!(util::oracle::decode_errors(output), "");
}

#[test]
fn an_os_error_is_said_once() {
    let missing = util::temp_dir("os-error-once").join("nothing-here.mp4");
    let done = recstitch(&["probe", missing.to_str().unwrap()]);
    assert_eq!(done.status.code(), Some(2));
    assert_eq!(
        stderr(&done).trim_end(),
        format!(
            "recstitch: {}: No such file or directory (os error 2)",
            missing.display()
        )
    );
}
