//! Archives and outputs on object stores: `file://` URLs always, Azure Blob
//! Storage against Azurite (Microsoft's emulator) where Node is present
//! (skipped loudly otherwise, unless `RECSTITCH_REQUIRE_AZURITE=1`).
//!
//! Every stitch from or to a store is compared byte for byte with the same
//! stitch between local folders.

#[path = "util/azurite.rs"]
mod azurite;
mod util;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use azurite::{upload_tree, visible_objects, visible_objects_where, Azurite};
use serde_json::Value;
use sha2::{Digest, Sha256};
use util::gen;

/// The `good` fixture and the two recordings of `good_flat_two_recordings`
/// in one local folder.
fn fixture_archive(name: &str) -> PathBuf {
    let dir = util::temp_dir(name);
    util::copy_tree(&util::cases().join("good"), &dir.join("good"));
    util::copy_tree(&util::cases().join("good_flat_two_recordings"), &dir.join("flat"));
    dir
}

/// Runs `recstitch` with `args` and the environment `env`: exit code, stdout as JSON, stderr.
fn run_env(args: &[&str], env: &[(&str, String)]) -> (i32, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_recstitch"))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    (out.status.code().unwrap(), json, stderr)
}

fn run(archive: &str, out: &str, env: &[(&str, String)]) -> (i32, Value, String) {
    run_env(&["run", "--json", "--progress", "none", archive, "--out", out], env)
}

/// A report with every occurrence of the `from` paths replaced by the `to` ones.
fn renamed(report: &Value, pairs: &[(&str, &str)]) -> Value {
    let mut text = report.to_string();
    for (from, to) in pairs {
        text = text.replace(from, to);
    }
    serde_json::from_str(&text).unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn file_urls_stitch_like_local_folders() {
    let archive = fixture_archive("objstore-file-in");
    let local_out = util::temp_dir("objstore-file-local-out");
    let url_out_dir = util::temp_dir("objstore-file-url-out");
    let (code, local, _) = run(s(&archive), s(&local_out), &[]);
    assert_eq!(code, 0, "{local}");
    let archive_url = format!("file://{}", archive.display());
    let out_url = format!("file://{}", url_out_dir.display());
    let (code, remote, stderr) = run(&archive_url, &out_url, &[]);
    assert_eq!(code, 0, "{remote}\n{stderr}");
    assert_eq!(util::statuses(&remote), ["stitched"; 3]);
    assert_eq!(util::visible_files(&url_out_dir), util::visible_files(&local_out));
    let archive_s = archive.display().to_string();
    let out_s = local_out.display().to_string();
    assert_eq!(
        renamed(&local, &[(&archive_s, &archive_url), (&out_s, &out_url)]),
        remote
    );
    // A rerun skips what is up to date.
    let (code, again, _) = run(&archive_url, &out_url, &[]);
    assert_eq!(code, 0);
    assert_eq!(util::statuses(&again), ["skipped"; 3]);
    assert!(
        util::leftovers(&url_out_dir).is_empty(),
        "{:?}",
        util::leftovers(&url_out_dir)
    );
}

#[test]
fn unsupported_schemes_and_missing_stores_are_usage_errors() {
    let out = util::recstitch(&["validate", "s3://bucket/archive"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("s3://bucket/archive") && stderr.contains("not supported"),
        "{stderr}"
    );
    // fetch downloads into a local folder only, and says so before any request.
    let event = util::cases().join("good/3c57992b-07bf-4387-a8bc-a13561e8650a/event.json");
    let out = util::recstitch(&["fetch", event.to_str().unwrap(), "--into", "az://recordings/archive"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--into az://recordings/archive") && stderr.contains("local folder"),
        "{stderr}"
    );
    assert!(!Path::new("az:").exists());
}

#[test]
fn without_an_account_the_error_names_the_variables_to_set() {
    let good = util::cases().join("good");
    let mut command = Command::new(env!("CARGO_BIN_EXE_recstitch"));
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("AZURE_") || k.starts_with("AZURITE_")) {
        command.env_remove(k);
    }
    let out = command
        .args(["run", s(&good), "--out", "az://stitched/out"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for name in [
        "AZURE_STORAGE_ACCOUNT_NAME",
        "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_STORAGE_USE_EMULATOR",
    ] {
        assert!(stderr.contains(name), "{stderr}");
    }
    assert!(!stderr.contains("Generic MicrosoftAzure error"), "{stderr}");
}

#[test]
fn azurite_a_missing_output_container_is_one_plain_line_naming_it() {
    let Some(az) = Azurite::start("missing-container") else {
        return;
    };
    let good = util::cases().join("good");
    let out = Command::new(env!("CARGO_BIN_EXE_recstitch"))
        .args(["run", s(&good), "--out", "az://missing-container/out"])
        .envs(az.env())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("the container \"missing-container\" does not exist")
            && stderr.contains("az storage container create --name missing-container"),
        "{stderr}"
    );
    // No raw XML from the store in any error: an archive in a missing container.
    let out = Command::new(env!("CARGO_BIN_EXE_recstitch"))
        .args(["validate", "az://missing-container/archive"])
        .envs(az.env())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        !stderr.contains('<') && stderr.contains("ContainerNotFound"),
        "{stderr}"
    );
}

#[test]
fn secrets_never_reach_the_output() {
    // A store that cannot be reached, with a SAS token, then an account key.
    let sas = [
        ("AZURE_STORAGE_USE_EMULATOR", "true".to_string()),
        ("AZURITE_BLOB_STORAGE_URL", "http://127.0.0.1:1".into()),
        (
            "AZURE_STORAGE_SAS_KEY",
            "sv=2022-11-02&ss=b&sig=TOPSECRETSIGNATURE".into(),
        ),
        ("RECSTITCH_STORE_RETRIES", "1".into()),
    ];
    let key = [
        ("AZURE_STORAGE_ACCOUNT_NAME", "someaccount".to_string()),
        ("AZURE_STORAGE_ACCOUNT_KEY", "VE9QU0VDUkVUQUNDT1VOVEtFWQ==".into()),
        ("AZURE_STORAGE_ENDPOINT", "http://127.0.0.1:1/someaccount".into()),
        ("AZURE_STORAGE_ALLOW_HTTP", "true".into()),
        ("RECSTITCH_STORE_RETRIES", "1".into()),
    ];
    let good = util::cases().join("good");
    for env in [&sas[..], &key[..]] {
        for args in [
            vec!["validate", "--json", "az://recordings/archive"],
            vec!["run", "--json", s(&good), "--out", "az://stitched/out"],
            vec!["run", "--json", "az://recordings/archive", "--out", "az://stitched/out"],
        ] {
            let out = Command::new(env!("CARGO_BIN_EXE_recstitch"))
                .args(&args)
                .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
                .output()
                .unwrap();
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(out.status.code(), Some(2), "{args:?}: {all}");
            assert!(all.contains("az://"), "the error names the URL: {all}");
            for secret in ["TOPSECRET", "VE9QU0VDUkVU"] {
                assert!(!all.contains(secret), "{args:?} printed a secret: {all}");
            }
        }
    }
}

/// The bytes of an MP4's top-level boxes other than `mdat` bodies.
fn non_sample_bytes(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    let mut at = 0usize;
    let mut total = 0u64;
    while at + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let kind = &bytes[at + 4..at + 8];
        let (size, header) = match size {
            1 => (
                u64::from_be_bytes(bytes[at + 8..at + 16].try_into().unwrap()) as usize,
                16,
            ),
            0 => (bytes.len() - at, 8),
            n => (n, 8),
        };
        total += if kind == b"mdat" { header as u64 } else { size as u64 };
        at += size.max(8);
    }
    total
}

#[test]
fn azurite_blob_to_blob_matches_local() {
    let Some(az) = Azurite::start("basic") else { return };
    let archive = fixture_archive("objstore-az-in");
    let local_out = util::temp_dir("objstore-az-local-out");
    let input = az.container("recordings").join("archive");
    let output = az.container("stitched").join("out");
    upload_tree(&az.storage, &archive, &input);
    let env = az.env();
    let (archive_s, out_s) = (archive.display().to_string(), local_out.display().to_string());
    let (input_s, output_s) = (input.display().to_string(), output.display().to_string());

    // Validation reads the metadata, box headers and moov: never the samples.
    let media: Vec<PathBuf> = walkdir::WalkDir::new(&archive)
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .filter(|p| p.extension().is_some_and(|x| x == "mp4"))
        .collect();
    let all_bytes: u64 = walkdir::WalkDir::new(&archive)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.metadata().unwrap().len())
        .sum();
    let json_bytes: u64 = walkdir::WalkDir::new(&archive)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    let headers: u64 = media.iter().map(|p| non_sample_bytes(p)).sum();
    let before = az.storage.bytes_fetched("az://recordings");
    let mut scan = recstitch::ScanOptions::default();
    scan.storage = az.storage.clone();
    let scanned = recstitch::Archive::scan(&input, &scan).unwrap();
    assert_eq!(scanned.recordings.len(), 3);
    for r in &scanned.recordings {
        assert!(r.validate(&recstitch::ValidateOptions::default()).is_valid());
    }
    let fetched = az.storage.bytes_fetched("az://recordings") - before;
    let budget = headers + json_bytes + 1024 * media.len() as u64;
    assert!(
        fetched <= budget,
        "validation fetched {fetched} bytes; headers, moov and JSON are {budget} (all files {all_bytes})"
    );
    assert!(fetched < all_bytes);

    // probe reads an object as it reads a file.
    let one = &media[0];
    let rel = one.strip_prefix(&archive).unwrap().to_str().unwrap();
    let (code, local_probe, _) = run_env(&["probe", "--json", s(one)], &[]);
    let remote_one = format!("{input_s}/{rel}");
    let (code_r, remote_probe, stderr) = run_env(&["probe", "--json", &remote_one], &env);
    assert_eq!(code, 0);
    assert_eq!(code_r, 0, "{stderr}");
    assert_eq!(renamed(&local_probe, &[(s(one), &remote_one)]), remote_probe);

    // validate: the same report as the local folder's, apart from paths.
    let (code, local_v, _) = run_env(&["validate", "--json", &archive_s], &[]);
    assert_eq!(code, 0);
    let (code, remote_v, stderr) = run_env(&["validate", "--json", &input_s], &env);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(renamed(&local_v, &[(&archive_s, &input_s)]), remote_v);

    // --deep decodes the audio and walks the video from ranged reads: the same findings.
    let (code, local_d, _) = run_env(&["validate", "--json", "--deep", &archive_s], &[]);
    let (code_d, remote_d, stderr) = run_env(&["validate", "--json", "--deep", &input_s], &env);
    assert_eq!(
        (code_d, renamed(&local_d, &[(&archive_s, &input_s)])),
        (code, remote_d),
        "{stderr}"
    );

    // run blob -> blob: the same bytes, the same report apart from paths.
    let (code, local, _) = run(&archive_s, &out_s, &[]);
    assert_eq!(code, 0, "{local}");
    let (code, remote, stderr) = run(&input_s, &output_s, &env);
    assert_eq!(code, 0, "{remote}\n{stderr}");
    assert_eq!(util::statuses(&remote), ["stitched"; 3]);
    assert_eq!(renamed(&local, &[(&archive_s, &input_s), (&out_s, &output_s)]), remote);
    let local_files = util::visible_files(&local_out);
    assert_eq!(local_files.len(), 9, "3 recordings: mp4, manifest, chapters");
    assert_eq!(visible_objects(&az.storage, &output), local_files);

    // participants names the stitched objects.
    let (code, local_p, _) = run_env(&["participants", "--json", &archive_s, "--out", &out_s], &[]);
    assert_eq!(code, 0);
    let (code, remote_p, stderr) = run_env(&["participants", "--json", &input_s, "--out", &output_s], &env);
    assert_eq!(code, 0, "{stderr}");
    assert!(remote_p.to_string().contains(&format!("{output_s}/")), "{remote_p}");
    assert_eq!(
        renamed(&local_p, &[(&archive_s, &input_s), (&out_s, &output_s)]),
        remote_p
    );

    // A rerun skips every recording; a changed input is stitched again.
    let (code, again, stderr) = run(&input_s, &output_s, &env);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(util::statuses(&again), ["skipped"; 3]);
    let some_json = media[0].with_extension("json");
    let rel = some_json.strip_prefix(&archive).unwrap().to_str().unwrap();
    let key = PathBuf::from(format!("{input_s}/{rel}"));
    az.storage.write(&key, &std::fs::read(&some_json).unwrap()).unwrap();
    let (code, third, stderr) = run(&input_s, &output_s, &env);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        util::statuses(&third).iter().filter(|s| *s == "stitched").count(),
        1,
        "{third}"
    );
    assert_eq!(visible_objects(&az.storage, &output), local_files);
}

#[test]
fn azurite_mixed_directions() {
    let Some(az) = Azurite::start("mixed") else { return };
    let archive = fixture_archive("objstore-mixed-in");
    let local_out = util::temp_dir("objstore-mixed-local-out");
    let (code, _, _) = run(s(&archive), s(&local_out), &[]);
    assert_eq!(code, 0);
    let expected = util::visible_files(&local_out);
    let env = az.env();

    // local archive -> blob output.
    let output = az.container("mixed-out").join("stitched");
    let (code, report, stderr) = run(s(&archive), s(&output), &env);
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(visible_objects(&az.storage, &output), expected);

    // timeline pictures into a store: the local bytes.
    let pictures = util::temp_dir("objstore-mixed-pictures");
    let out = util::recstitch(&["timeline", s(&archive), "--out", s(&pictures)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let remote_pictures = output.join("timelines");
    let out = Command::new(env!("CARGO_BIN_EXE_recstitch"))
        .args(["timeline", s(&archive), "--out", s(&remote_pictures)])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expected_pictures = util::visible_files(&pictures);
    assert_eq!(expected_pictures.len(), 3);
    assert_eq!(visible_objects(&az.storage, &remote_pictures), expected_pictures);

    // blob archive -> local output.
    let input = az.container("mixed-in").join("a/b");
    upload_tree(&az.storage, &archive, &input);
    let back = util::temp_dir("objstore-mixed-back");
    let (code, report, stderr) = run(s(&input), s(&back), &env);
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(util::visible_files(&back), expected);
    assert!(util::leftovers(&back).is_empty());
}

/// Starts `recstitch run` with NDJSON progress and returns once it has
/// started stitching a recording whose key contains `key` (or has exited).
fn start_run(archive: &str, out: &str, env: &[(&str, String)], key: &str) -> std::process::Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_recstitch"))
        .args([
            "run",
            "--json",
            "--jobs",
            "1",
            "--progress",
            "json",
            archive,
            "--out",
            out,
        ])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.contains("\"stitching\"") && line.contains(key) {
            break;
        }
    }
    // Keep draining progress so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    child
}

fn sha256_of_object(storage: &recstitch::Storage, path: &Path) -> (String, u64) {
    let input = storage.open(path).unwrap();
    let len = input.len().unwrap();
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < len {
        let n = input.read_at(&mut buf, at).unwrap();
        assert!(n > 0);
        h.update(&buf[..n]);
        at += n as u64;
    }
    (h.finalize().iter().map(|b| format!("{b:02x}")).collect(), len)
}

#[test]
fn azurite_sigkill_mid_upload_leaves_nothing_and_a_rerun_completes() {
    let Some(az) = Azurite::start("kill") else { return };
    let archive = gen::long_recording();
    let output = az.container("killed").join("out");
    let mut env = az.env();
    // Small parts: many requests, so the upload is under way for a while.
    env.push(("RECSTITCH_STORE_PART_BYTES", (256 << 10).to_string()));
    let stored_before = az.stored_bytes();
    let mut child = start_run(s(&archive), s(&output), &env, "0-test-long");
    std::thread::sleep(Duration::from_millis(300));
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        running,
        "the run finished before it could be killed; make the recording longer"
    );
    // Parts had reached Azurite: the kill came in the middle of the upload.
    let staged = az.stored_bytes() - stored_before;
    assert!(
        staged >= 256 << 10,
        "only {staged} bytes reached Azurite before the kill"
    );
    eprintln!("killed with {staged} bytes of parts staged in Azurite");
    let left: Vec<String> = az
        .storage
        .list_all(&output)
        .unwrap()
        .into_iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert!(
        left.iter()
            .all(|p| !p.ends_with(".mp4") && !p.ends_with(".json") && !p.ends_with(".vtt")),
        "a killed upload left objects under final names: {left:?}"
    );

    // The rerun completes, with the bytes of a local run (in parts of a
    // size that is no multiple of anything the writer uses).
    env.retain(|(k, _)| *k != "RECSTITCH_STORE_PART_BYTES");
    env.push(("RECSTITCH_STORE_PART_BYTES", "100003".into()));
    let (code, report, stderr) = run(s(&archive), s(&output), &env);
    assert_eq!(code, 0, "{report}\n{stderr}");
    assert_eq!(util::statuses(&report), ["stitched"]);
    let local_out = util::temp_dir("objstore-kill-local");
    let (code, _, _) = run(s(&archive), s(&local_out), &[]);
    assert_eq!(code, 0);
    // MP4s left out (big).
    let objects = visible_objects_where(&az.storage, &output, |rel| !rel.ends_with(".mp4"));
    let local: Vec<(String, Vec<u8>)> = util::visible_files(&local_out)
        .into_iter()
        .filter(|(n, _)| !n.ends_with(".mp4"))
        .collect();
    assert_eq!(objects, local);
    let manifest: Value = serde_json::from_slice(&local.iter().find(|(n, _)| n.ends_with(".json")).unwrap().1).unwrap();
    let mp4 = report["recordings"][0]["output"].as_str().unwrap();
    let (sha, len) = sha256_of_object(&az.storage, Path::new(mp4));
    assert_eq!(sha, manifest["output"]["sha256"].as_str().unwrap());
    assert_eq!(len, manifest["output"]["bytes"].as_u64().unwrap());
    let _ = std::fs::remove_dir_all(&local_out);
}

#[test]
fn azurite_stopped_mid_run_is_a_clear_error_naming_the_url() {
    let Some(mut az) = Azurite::start("down") else { return };
    // The long recording and the fixtures, in one local archive.
    let archive = util::temp_dir("objstore-down-in");
    let long = gen::long_recording();
    for e in std::fs::read_dir(&long).unwrap() {
        let p = e.unwrap().path();
        if !p.file_name().unwrap().to_string_lossy().starts_with('.') {
            std::fs::hard_link(&p, archive.join(p.file_name().unwrap()))
                .or_else(|_| std::fs::copy(&p, archive.join(p.file_name().unwrap())).map(|_| ()))
                .unwrap();
        }
    }
    // The good fixture under a call id that sorts after the long
    // recording's: stitched after it, once Azurite is gone.
    let good = util::cases().join("good/3c57992b-07bf-4387-a8bc-a13561e8650a");
    let late_call = "ffffffff-0000-4000-8000-000000000000";
    std::fs::create_dir_all(archive.join("late")).unwrap();
    for e in std::fs::read_dir(&good).unwrap() {
        let p = e.unwrap().path();
        let to = archive.join("late").join(p.file_name().unwrap());
        if p.extension().is_some_and(|x| x == "json") {
            let text = std::fs::read_to_string(&p).unwrap();
            std::fs::write(to, text.replace("3c57992b-07bf-4387-a8bc-a13561e8650a", late_call)).unwrap();
        } else {
            std::fs::copy(&p, to).unwrap();
        }
    }
    let output = az.container("down").join("out");
    let mut env = az.env();
    env.push(("RECSTITCH_STORE_PART_BYTES", (256 << 10).to_string()));
    env.push(("RECSTITCH_STORE_RETRIES", "2".into()));
    env.push(("RECSTITCH_STORE_RETRY_TIMEOUT_SECS", "3".into()));
    let child = start_run(s(&archive), s(&output), &env, "0-test-long");
    // Stopped while the long recording's parts are uploading.
    std::thread::sleep(Duration::from_millis(300));
    az.stop();
    let started = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(120));
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let recordings = report["recordings"].as_array().unwrap();
    assert_eq!(recordings.len(), 2, "every recording is reported: {report}");
    // Both fail, each with the URL it could not write, after the retries:
    // the long one in the middle of its upload, the late one after it.
    for r in recordings {
        assert_eq!(r["status"], "failed", "{r}");
        let error = r["error"].as_str().unwrap();
        assert!(error.contains(&format!("{}/", output.display())), "{error}");
        assert!(error.contains("after 2 retries"), "{error}");
        assert!(!error.contains("sig="), "{error}");
        eprintln!("{}: {error}", r["recordingKey"]);
    }
    assert!(
        recordings.iter().any(|r| r["callId"] == late_call),
        "the batch went on to the recording after the failure: {report}"
    );
    let _ = std::fs::remove_dir_all(&archive);
}

#[test]
fn azurite_helpers_encode() {
    azurite::self_test();
}

#[test]
fn azurite_every_format_and_the_export_layout_match_local() {
    let Some(az) = Azurite::start("formats") else { return };
    let archive = util::temp_dir("objstore-formats-in");
    for case in ["good_export_layout", "good_wav", "good_wav_unmixed", "good_mp3_pause"] {
        util::copy_tree(&util::cases().join(case), &archive.join(case));
    }
    let local_out = util::temp_dir("objstore-formats-local-out");
    let input = az.container("formats-in").join("archive");
    let output = az.container("formats-out").join("stitched");
    upload_tree(&az.storage, &archive, &input);
    let env = az.env();
    let (archive_s, out_s) = (archive.display().to_string(), local_out.display().to_string());
    let (input_s, output_s) = (input.display().to_string(), output.display().to_string());
    let (code, local, _) = run(&archive_s, &out_s, &[]);
    assert_eq!(code, 0, "{local}");
    // The export layout pairs in a store as in a folder: no orphan.
    assert_eq!(local["orphans"], Value::Array(Vec::new()), "{local}");
    let (code, remote, stderr) = run(&input_s, &output_s, &env);
    assert_eq!(code, 0, "{remote}\n{stderr}");
    assert_eq!(util::statuses(&remote), ["stitched"; 5]);
    assert_eq!(renamed(&local, &[(&archive_s, &input_s), (&out_s, &output_s)]), remote);
    let local_files = util::visible_files(&local_out);
    let names: Vec<&str> = local_files.iter().map(|(n, _)| n.as_str()).collect();
    for ext in [".mp4", ".mp3", ".wav"] {
        assert!(names.iter().any(|n| n.ends_with(ext)), "no {ext} output in {names:?}");
    }
    assert_eq!(visible_objects(&az.storage, &output), local_files);
}
