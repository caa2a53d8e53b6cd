//! What a new user meets in the first hour (issue 24): outputs that others
//! can read, names a person can read, quiet pipes, exit codes that are
//! never silent, no folders left by a failed command, fetch errors that say
//! where.

mod util;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use serde_json::Value;
use util::service::{self, Media, ServedChunk, Service, KEY_B64};

const BIN: &str = env!("CARGO_BIN_EXE_recstitch");

/// `recstitch ARGS` under the umask `mask` (through `sh`, as a login shell sets it).
fn under_umask(mask: &str, args: &[&str], env: &[(&str, String)]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("umask {mask} && exec \"$0\" \"$@\""))
        .arg(BIN)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap()
}

/// Every file under `dir`, hidden ones too, with its permission bits.
fn modes(dir: &Path) -> Vec<(PathBuf, u32)> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path().to_path_buf(),
                e.metadata().unwrap().permissions().mode() & 0o777,
            )
        })
        .collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn every_file_run_writes_follows_the_umask() {
    for (mask, mode) in [("022", 0o644), ("077", 0o600)] {
        let out = util::temp_dir(&format!("umask-run-{mask}"));
        for case in ["good", "good_mp3_pause", "good_wav_unmixed"] {
            let done = under_umask(
                mask,
                &[
                    "run",
                    "--timeline",
                    "--split-channels",
                    util::cases().join(case).to_str().unwrap(),
                    "--out",
                    out.to_str().unwrap(),
                ],
                &[],
            );
            assert_eq!(done.status.code(), Some(0), "{case}: {}", stderr(&done));
        }
        let files = modes(&out);
        // Media (three formats), manifests, chapters, pictures, state, channels.
        for ext in [".mp4", ".mp3", ".wav", ".json", ".vtt", ".png", ".state"] {
            assert!(
                files.iter().any(|(p, _)| p.to_string_lossy().ends_with(ext)),
                "no {ext} among {files:?}"
            );
        }
        assert!(files.iter().any(|(p, _)| p.to_string_lossy().contains("/channels/")));
        for (path, got) in &files {
            assert_eq!(*got, mode, "umask {mask}: {} is {got:o}", path.display());
        }
    }
}

/// Serves the `good` fixture recording; its event (locations on the
/// service's storage host) in `dir/event.json`.
fn serve_good(service: &Service, dir: &Path) -> PathBuf {
    let call_dir = util::cases().join("good/3c57992b-07bf-4387-a8bc-a13561e8650a");
    let mut chunks = Vec::new();
    let archive = recstitch::Archive::scan(&call_dir, &recstitch::ScanOptions::default()).unwrap();
    for (i, c) in archive.recordings[0].chunks.iter().enumerate() {
        let media = std::fs::read(c.media_path.as_ref().unwrap()).unwrap();
        let metadata = std::fs::read(&c.metadata_path).unwrap();
        service.add(&c.document_id, Media::Bytes(Arc::new(media)), metadata);
        chunks.push(ServedChunk {
            document_id: c.document_id.clone(),
            index: i as u32,
            end_reason: if i == 2 {
                "SessionEnded"
            } else {
                "ChunkMaximumSizeExceeded"
            },
        });
    }
    let event = service::event(
        "ev-umask",
        "3c57992b-07bf-4387-a8bc-a13561e8650a",
        "rec-umask",
        &chunks,
        Some(&service.storage),
        &service::now_rfc3339(),
    );
    let path = dir.join("event.json");
    std::fs::write(&path, serde_json::to_vec(&event).unwrap()).unwrap();
    path
}

#[test]
fn every_file_fetch_writes_follows_the_umask() {
    let service = Service::start();
    let dir = util::temp_dir("umask-fetch");
    let event = serve_good(&service, &dir);
    let archive = dir.join("archive");
    let stitched = dir.join("stitched");
    let env = [
        ("RECSTITCH_CONNECTION_STRING", service.connection_string(KEY_B64)),
        ("RECSTITCH_TRUSTED_HOSTS", service.storage_authority()),
    ];
    let done = under_umask(
        "022",
        &[
            "fetch",
            "--progress",
            "none",
            event.to_str().unwrap(),
            "--into",
            archive.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    let done = under_umask(
        "022",
        &["run", archive.to_str().unwrap(), "--out", stitched.to_str().unwrap()],
        &[],
    );
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    let fetched = modes(&archive);
    // Three chunks' media and metadata, and the event.
    assert_eq!(fetched.len(), 7, "{fetched:?}");
    for (path, got) in fetched.iter().chain(&modes(&stitched)) {
        assert_eq!(*got, 0o644, "{} is {got:o}", path.display());
    }
}

#[test]
fn fetch_errors_name_the_host_and_port_they_tried() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = util::temp_dir("fetch-refused");
    let chunks = [ServedChunk {
        document_id: "0-test-refused-0".into(),
        index: 0,
        end_reason: "SessionEnded",
    }];
    // No locations: the chunks are asked of the endpoint, where nothing listens.
    let event = service::event(
        "ev-refused",
        "refused-call",
        "rec",
        &chunks,
        None,
        &service::now_rfc3339(),
    );
    let file = dir.join("event.json");
    std::fs::write(&file, serde_json::to_vec(&event).unwrap()).unwrap();
    let done = Command::new(BIN)
        .args(["fetch", "--progress", "none", "--retries", "1", "--backoff-ms", "10"])
        .arg(&file)
        .arg("--into")
        .arg(dir.join("archive"))
        .env(
            "RECSTITCH_CONNECTION_STRING",
            format!("endpoint=http://127.0.0.1:{port}/;accesskey={KEY_B64}"),
        )
        .output()
        .unwrap();
    let err = stderr(&done);
    assert_eq!(done.status.code(), Some(1), "{err}");
    assert!(err.contains("gave up after"), "{err}");
    assert!(
        err.contains(&format!("(GET 127.0.0.1:{port}/recording/download/0-test-refused-0")),
        "{err}"
    );
}

#[test]
fn a_closed_pipe_is_quiet() {
    let chunk =
        util::cases().join("good/3c57992b-07bf-4387-a8bc-a13561e8650a/0-eus-d11-293c5f93ea87298458e47ef52dda3bb9.mp4");
    let good = util::cases().join("good");
    for args in [
        vec!["probe", chunk.to_str().unwrap(), "--json"],
        vec!["probe", chunk.to_str().unwrap()],
        vec!["validate", good.to_str().unwrap()],
        vec!["validate", "--json", good.to_str().unwrap()],
        vec!["schema", "manifest"],
    ] {
        // A pipe whose reader is gone before the command writes: every write fails.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let done = Command::new(BIN)
            .args(&args)
            .stdout(Stdio::from(writer))
            .output()
            .unwrap();
        assert_eq!(stderr(&done), "", "{args:?}");
        assert_eq!(done.status.code(), Some(0), "{args:?}");
    }
}

#[test]
fn participants_is_never_silent() {
    let empty = util::temp_dir("participants-empty");
    let done = util::recstitch(&["participants", empty.to_str().unwrap()]);
    assert_eq!(done.status.code(), Some(3), "{}", stderr(&done));
    assert!(stderr(&done).contains("holds no recording"));
    let good = util::cases().join("good");
    for json in [false, true] {
        let mut args = vec!["participants", good.to_str().unwrap(), "--id", "nobody"];
        if json {
            args.push("--json");
        }
        let done = util::recstitch(&args);
        assert_eq!(done.status.code(), Some(1), "{}", stderr(&done));
        assert!(
            stderr(&done).contains("participant \"nobody\" appears in none of the 1 recording(s)"),
            "{}",
            stderr(&done)
        );
    }
    let (code, list) = util::recstitch_json(&["participants", good.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0);
    let someone = list[0]["participantId"].as_str().unwrap().to_string();
    let done = util::recstitch(&["participants", good.to_str().unwrap(), "--id", &someone]);
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
}

#[test]
fn a_failed_command_leaves_no_new_folder() {
    let dir = util::temp_dir("no-new-folder");
    let empty = dir.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let missing = dir.join("missing");
    for (command, archive, code) in [
        ("run", &missing, 2),
        ("timeline", &missing, 2),
        ("run", &empty, 3),
        ("timeline", &empty, 3),
    ] {
        let out = dir.join("out/nested");
        let done = util::recstitch(&[command, archive.to_str().unwrap(), "--out", out.to_str().unwrap()]);
        assert_eq!(done.status.code(), Some(code), "{command}: {}", stderr(&done));
        assert!(
            !dir.join("out").exists(),
            "{command} {} left a folder",
            archive.display()
        );
    }
    let done = util::recstitch(&["run", missing.to_str().unwrap(), "--out", "x"]);
    assert!(stderr(&done).contains("missing: no such folder"), "{}", stderr(&done));
}

/// The stitched files under `out`, relative, sorted.
fn stitched_names(out: &Path) -> Vec<String> {
    let mut names: Vec<String> = util::visible_files(out)
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.ends_with(".mp4"))
        .collect();
    names.sort();
    names
}

#[test]
fn output_names_are_readable_stable_and_sort_by_start_time() {
    let archive = util::temp_dir("names-archive");
    util::copy_tree(&util::cases().join("good"), &archive.join("good"));
    util::copy_tree(&util::cases().join("good_flat_two_recordings"), &archive.join("flat"));
    let first = util::temp_dir("names-first");
    let second = util::temp_dir("names-second");
    let (code, report) = util::run_json_with(&archive, &first, &[]);
    assert_eq!(code, 0);
    let (code, _) = util::run_json_with(&archive, &second, &[]);
    assert_eq!(code, 0);
    let names = stitched_names(&first);
    assert_eq!(names.len(), 3);
    assert_eq!(names, stitched_names(&second), "two runs give the same names");
    for name in &names {
        let file = name.rsplit('/').next().unwrap();
        let (time, hash) = file.trim_end_matches(".mp4").split_once('-').unwrap();
        assert!(time.len() == 16 && &time[8..9] == "T" && time.ends_with('Z'), "{name}");
        assert!(hash.len() == 8 && hash.bytes().all(|b| b.is_ascii_hexdigit()), "{name}");
    }
    // Within a call, the names sort as the recordings' start times do.
    let scanned = recstitch::Archive::scan(&archive, &recstitch::ScanOptions::default()).unwrap();
    let mut by_call: std::collections::BTreeMap<&str, Vec<(String, recstitch::WallClock)>> = Default::default();
    for r in &scanned.recordings {
        by_call
            .entry(&r.call_id)
            .or_default()
            .push((r.output_name(), r.start().unwrap()));
    }
    assert!(by_call.values().any(|v| v.len() == 2));
    for mut list in by_call.into_values() {
        list.sort();
        assert!(list.windows(2).all(|w| w[0].1 <= w[1].1), "{list:?}");
    }
    // The full key stays in the manifest and the report.
    for r in report["recordings"].as_array().unwrap() {
        let manifest: Value = serde_json::from_slice(&std::fs::read(r["manifest"].as_str().unwrap()).unwrap()).unwrap();
        assert_eq!(manifest["recordingKey"], r["recordingKey"]);
    }
}

#[test]
fn the_progress_events_carry_the_output_name() {
    let out = util::temp_dir("progress-name");
    let done = util::recstitch(&[
        "run",
        "--progress",
        "json",
        util::cases().join("good").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(done.status.code(), Some(0));
    let name = stitched_names(&out)[0]
        .rsplit('/')
        .next()
        .unwrap()
        .trim_end_matches(".mp4")
        .to_string();
    let events: Vec<Value> = stderr(&done)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for kind in ["stitching", "finished"] {
        let e = events.iter().find(|e| e["event"] == kind).unwrap();
        assert_eq!(e["name"], name.as_str(), "{e}");
    }
}

#[test]
fn stitch_is_run_and_a_negative_count_is_named() {
    let out = util::temp_dir("stitch-alias");
    let good = util::cases().join("good");
    let done = util::recstitch(&["stitch", good.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    assert_eq!(stitched_names(&out).len(), 1);
    let done = util::recstitch(&["run", good.to_str().unwrap(), "--out", "x", "--jobs", "-1"]);
    assert_eq!(done.status.code(), Some(2));
    let err = stderr(&done);
    assert!(err.contains("invalid value '-1' for '--jobs <JOBS>'"), "{err}");
    assert!(!err.contains("-- -1"), "{err}");
}
