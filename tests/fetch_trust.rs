//! `recstitch fetch` against events, servers and archive folders shaped by
//! an attacker (issue 21): credentials only to trusted hosts, deletes only
//! of the chunk's own object, one bad event does not stop the others, a
//! trickling server does not hold a transfer forever, planted links and
//! FIFOs are not followed. Every server is on 127.0.0.1, started here.

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use recstitch::remote::fetch::{ChunkStatus, Credentials, FetchOptions, Fetcher, HostPattern};
use serde_json::Value;
use util::service::{self, event, Fault, Media, Recorder, ServedChunk, Service, KEY_B64};

const TOKEN: &str = "bearer-token-SECRET-0123";

/// Serves `n` synthetic chunks of `len` bytes for call `<name>-call`, their
/// locations on the service's storage host; the event.
fn serve(service: &Service, name: &str, n: usize, len: u64) -> (Value, Vec<String>) {
    serve_call(service, name, &format!("{name}-call"), n, len)
}

fn serve_call(service: &Service, name: &str, call: &str, n: usize, len: u64) -> (Value, Vec<String>) {
    let mut chunks = Vec::new();
    for i in 0..n {
        let doc = format!("0-test-{name}-{i}");
        service.add(&doc, Media::Synthetic(len), service::metadata(call, &doc, i as u32));
        chunks.push(ServedChunk::nth(doc, i, n));
    }
    let ev = event(
        &format!("ev-{name}"),
        call,
        &format!("rec-{name}"),
        &chunks,
        Some(&service.storage),
        &service::now_rfc3339(),
    );
    (ev, chunks.into_iter().map(|c| c.document_id).collect())
}

fn write_json(path: &Path, v: &Value) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    path.to_path_buf()
}

#[derive(Clone, Copy, Debug)]
enum Creds {
    AccessKey,
    Bearer,
}

/// `recstitch fetch --json --progress none ARGS` with `creds` and, when
/// given, `RECSTITCH_TRUSTED_HOSTS`.
fn fetch(service: &Service, creds: Creds, trusted: Option<&str>, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_recstitch"));
    c.arg("fetch").args(["--progress", "none"]);
    if !args.contains(&"--retries") {
        // Quick failures, unless the test wants the defaults.
        c.args(["--retries", "2", "--backoff-ms", "10"]);
    }
    c.args(args);
    c.env_remove("RECSTITCH_TRUSTED_HOSTS")
        .env_remove("RECSTITCH_CONNECTION_STRING")
        .env_remove("RECSTITCH_ACCESS_TOKEN")
        .env_remove("RECSTITCH_ENDPOINT");
    match creds {
        Creds::AccessKey => c.env("RECSTITCH_CONNECTION_STRING", service.connection_string(KEY_B64)),
        Creds::Bearer => c
            .env("RECSTITCH_ACCESS_TOKEN", TOKEN)
            .env("RECSTITCH_ENDPOINT", &service.endpoint),
    };
    if let Some(t) = trusted {
        c.env("RECSTITCH_TRUSTED_HOSTS", t);
    }
    c
}

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn report(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(o)))
}

fn assert_follows_the_schema(report: &Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/fetch-report.v1.json");
    let schema: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(report).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
}

/// A trusted fetcher for the library tests: the storage host named as the operator would.
fn fetcher(service: &Service, mut options: FetchOptions) -> Fetcher {
    options
        .trusted_hosts
        .operator
        .push(HostPattern::parse(&service.storage_authority()).unwrap());
    options.retries = 2;
    options.backoff = Duration::from_millis(10);
    Fetcher::new(
        Credentials::from_connection_string(&service.connection_string(KEY_B64)).unwrap(),
        options,
    )
}

#[test]
fn no_signed_request_reaches_an_untrusted_port_and_the_same_fetch_succeeds_once_it_is_trusted() {
    for creds in [Creds::AccessKey, Creds::Bearer] {
        let service = Service::start();
        service.accept_bearer(TOKEN);
        let (ev, docs) = serve(&service, "untrusted", 2, 50_000);
        let dir = util::temp_dir(&format!("trust-{creds:?}"));
        let file = write_json(&dir.join("event.json"), &ev);
        let archive = dir.join("archive");
        let args = ["--json", file.to_str().unwrap(), "--into", archive.to_str().unwrap()];
        let out = fetch(&service, creds, None, &args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{creds:?}: {}", text(&out));
        let r = report(&out);
        assert_follows_the_schema(&r);
        let storage = service.storage_authority();
        for c in r["chunks"].as_array().unwrap() {
            assert_eq!(c["errorKind"], "untrusted", "{c}");
            let e = c["error"].as_str().unwrap();
            assert!(e.contains(&format!("host {storage} is not trusted")), "{e}");
            assert!(
                e.contains("RECSTITCH_TRUSTED_HOSTS") && e.contains("nothing was sent"),
                "{e}"
            );
        }
        // Nothing reached the untrusted port: no signed request, no request at all.
        let log = service.log();
        assert!(log.iter().all(|l| !l.signed()), "{log:?}");
        assert!(log.is_empty(), "{log:?}");
        assert!(!text(&out).contains(TOKEN));
        // Named by the operator, the same fetch succeeds, byte for byte.
        let out = fetch(&service, creds, Some(&storage), &args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{creds:?}: {}", text(&out));
        for doc in &docs {
            let media = archive.join(format!("untrusted-call/{doc}.mp4"));
            assert!(service::is_synthetic(&media, 50_000), "{}", media.display());
        }
        assert!(service.log().iter().all(|l| l.status != 401));
    }
}

#[test]
fn a_bearer_token_goes_to_the_endpoints_own_host_but_not_to_the_service_storage_domains() {
    let service = Service::start();
    service.accept_bearer(TOKEN);
    let (mut ev, docs) = serve(&service, "bearer", 1, 30_000);
    // The earliest schema: no locations, the endpoint's download paths.
    for c in ev["data"]["recordingStorageInfo"]["recordingChunks"]
        .as_array_mut()
        .unwrap()
    {
        c.as_object_mut().unwrap().retain(|k, _| !k.ends_with("Location"));
    }
    let dir = util::temp_dir("trust-bearer-endpoint");
    let file = write_json(&dir.join("event.json"), &ev);
    let archive = dir.join("archive");
    let out = fetch(
        &service,
        Creds::Bearer,
        None,
        &[file.to_str().unwrap(), "--into", archive.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(service::is_synthetic(
        &archive.join(format!("bearer-call/{}.mp4", docs[0])),
        30_000
    ));
    // The library's rule: a storage domain takes a signature, never a token.
    let t = recstitch::remote::fetch::TrustedHosts::default();
    let storage =
        recstitch::remote::fetch::Location::parse("https://us.asm.skype.com/v1/objects/x/content/video").unwrap();
    let endpoint = recstitch::remote::fetch::Location::parse("https://acs.example.com/").unwrap();
    assert!(t.check(&storage, Some(&endpoint), false).is_ok());
    assert!(t.check(&storage, Some(&endpoint), true).is_err());
}

#[test]
fn a_redirect_to_an_untrusted_host_is_not_followed_and_one_to_a_trusted_host_is_signed_again() {
    let service = Service::start();
    let recorder = Recorder::start();
    let (ev, docs) = serve(&service, "redirect", 2, 40_000);
    let (away, home) = (&docs[0], &docs[1]);
    service.fault(
        away,
        Fault::Redirect {
            to: format!("{}/v1/objects/{away}/content/video", recorder.url),
        },
        u32::MAX,
    );
    service.fault(
        home,
        Fault::Redirect {
            to: format!("{}/recording/download/{home}", service.endpoint),
        },
        1,
    );
    let dir = util::temp_dir("trust-redirect");
    let file = write_json(&dir.join("event.json"), &ev);
    let archive = dir.join("archive");
    let report = fetcher(&service, FetchOptions::default())
        .fetch(&[file], &archive)
        .unwrap();
    let chunk = |d: &str| report.chunks.iter().find(|c| c.document_id == d).unwrap().clone();
    let a = chunk(away);
    assert_eq!(a.error_kind.as_deref(), Some("untrusted"), "{a:?}");
    let e = a.error.unwrap();
    assert!(e.contains(&format!("redirected to {}", recorder.authority())), "{e}");
    assert!(recorder.requests().is_empty(), "{:?}", recorder.requests());
    assert_eq!(chunk(home).status, ChunkStatus::Fetched);
    assert!(service::is_synthetic(
        &archive.join(format!("redirect-call/{home}.mp4")),
        40_000
    ));
    // The endpoint checked the signature made for it (its own host, no x-ms-host).
    let at_endpoint: Vec<_> = service.log().into_iter().filter(|l| l.listener == "endpoint").collect();
    assert_eq!(at_endpoint.len(), 1, "{at_endpoint:?}");
    assert_eq!(at_endpoint[0].status, 206);
    assert_eq!(at_endpoint[0].x_ms_host, None);
}

#[test]
fn delete_after_never_deletes_another_documents_object_or_anything_on_an_untrusted_host() {
    let service = Service::start();
    let recorder = Recorder::start();
    // The fixture recording, stitchable, its deleteLocations pointing elsewhere.
    let call = "3c57992b-07bf-4387-a8bc-a13561e8650a";
    let good = util::cases().join("good").join(call);
    let text_ev = std::fs::read_to_string(good.join("event.json")).unwrap();
    let mut ev: Value =
        serde_json::from_str(&text_ev.replace("https://us-storage.asm.skype.com", &service.storage)).unwrap();
    service.add(
        "0-victim",
        Media::Synthetic(1000),
        service::metadata("other-call", "0-victim", 0),
    );
    let chunks = ev[0]["data"]["recordingStorageInfo"]["recordingChunks"]
        .as_array_mut()
        .unwrap();
    for (i, c) in chunks.iter_mut().enumerate() {
        let doc = c["documentId"].as_str().unwrap().to_string();
        let media = std::fs::read(good.join(format!("{doc}.mp4"))).unwrap();
        service.add(
            &doc,
            Media::Bytes(Arc::new(media)),
            std::fs::read(good.join(format!("{doc}.json"))).unwrap(),
        );
        c["deleteLocation"] = match i {
            0 => format!("{}/v1/objects/0-victim", service.storage),
            1 => format!("{}/v1/objects/{doc}/../0-victim", service.storage),
            _ => format!("{}/v1/objects/{doc}", recorder.url),
        }
        .into();
    }
    let dir = util::temp_dir("trust-delete");
    let file = write_json(&dir.join("event.json"), &ev);
    let (archive, out_dir) = (dir.join("archive"), dir.join("out"));
    let args = [
        "--json",
        "--delete-after",
        "--out",
        out_dir.to_str().unwrap(),
        file.to_str().unwrap(),
        "--into",
        archive.to_str().unwrap(),
    ];
    let out = fetch(&service, Creds::AccessKey, Some(&service.storage_authority()), &args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r = report(&out);
    assert_eq!(r["stitch"]["recordings"][0]["status"], "stitched", "{r}");
    assert!(
        service.log().iter().all(|l| l.method != "DELETE"),
        "{:?}",
        service.log()
    );
    assert!(recorder.requests().is_empty());
    let deletions = r["deletions"].as_array().unwrap();
    assert_eq!(deletions.len(), 3);
    for d in deletions {
        assert_eq!(d["deleted"], false, "{d}");
        let why = d["reason"].as_str().unwrap();
        assert!(
            why.contains("kept on the service") && why.contains("nothing was sent"),
            "{why}"
        );
        assert!(
            why.contains("does not name this chunk's object") || why.contains("is not trusted"),
            "{why}"
        );
    }
}

#[test]
fn one_bad_event_does_not_stop_the_others_and_long_ids_get_names_that_fit() {
    let service = Service::start();
    let (good, good_docs) = serve(&service, "good", 1, 20_000);
    let long_call = "c".repeat(300);
    let (long, long_docs) = serve_call(&service, "long", &long_call, 1, 20_000);
    let (blocked, _) = serve(&service, "blocked", 1, 20_000);
    let dir = util::temp_dir("trust-isolation");
    let events = dir.join("events");
    write_json(&events.join("1-good.json"), &good);
    write_json(&events.join("2-long.json"), &long);
    write_json(&events.join("3-blocked.json"), &blocked);
    std::fs::write(events.join("4-broken.json"), "{\"id\": \"half an event").unwrap();
    let archive = dir.join("archive");
    // A file where the blocked event's call folder goes: it cannot be laid out.
    std::fs::create_dir_all(&archive).unwrap();
    std::fs::write(archive.join("blocked-call"), "in the way").unwrap();
    let args = ["--json", events.to_str().unwrap(), "--into", archive.to_str().unwrap()];
    let out = fetch(&service, Creds::AccessKey, Some(&service.storage_authority()), &args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r = report(&out);
    assert_follows_the_schema(&r);
    let failed = r["failedEvents"].as_array().unwrap();
    let sources: Vec<&str> = failed.iter().map(|f| f["source"].as_str().unwrap()).collect();
    assert_eq!(failed.len(), 2, "{r}");
    assert!(
        sources[0].ends_with("4-broken.json") || sources[1].ends_with("4-broken.json"),
        "{sources:?}"
    );
    assert!(sources.iter().any(|s| s.ends_with("3-blocked.json")), "{sources:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("4-broken.json") && stderr.contains("3-blocked.json"),
        "{stderr}"
    );
    // The others were fetched; the long call's folder has a name that fits, the same on a rerun.
    assert!(service::is_synthetic(
        &archive.join(format!("good-call/{}.mp4", good_docs[0])),
        20_000
    ));
    let long_dir = archive.join(recstitch::io::safe_name(&long_call));
    assert!(long_dir.file_name().unwrap().len() <= recstitch::io::MAX_SAFE_NAME);
    assert!(service::is_synthetic(
        &long_dir.join(format!("{}.mp4", long_docs[0])),
        20_000
    ));
    let again = fetch(&service, Creds::AccessKey, Some(&service.storage_authority()), &args)
        .output()
        .unwrap();
    let r2 = report(&again);
    let statuses: Vec<&str> = r2["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["upToDate", "upToDate"], "{r2}");
}

#[test]
fn a_trickling_location_fails_within_two_minutes_and_the_others_are_fetched() {
    let service = Service::start();
    let (ev, docs) = serve(&service, "trickle", 3, 100_000);
    service.throttle(&docs[1], 1);
    let dir = util::temp_dir("trust-trickle");
    let file = write_json(&dir.join("event.json"), &ev);
    let archive = dir.join("archive");
    let started = Instant::now();
    let out = fetch(
        &service,
        Creds::AccessKey,
        Some(&service.storage_authority()),
        // The defaults but for the stall window: 8 retries, backoff from 1 s.
        &[
            "--json",
            "--stall-timeout",
            "5",
            "--retries",
            "8",
            file.to_str().unwrap(),
            "--into",
            archive.to_str().unwrap(),
        ],
    )
    .output()
    .unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(120), "{took:?}");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r = report(&out);
    for c in r["chunks"].as_array().unwrap() {
        if c["documentId"] == docs[1].as_str() {
            assert_eq!(c["status"], "failed");
            let e = c["error"].as_str().unwrap();
            assert!(e.contains("deadline") || e.contains("stalled"), "{e}");
        } else {
            assert_eq!(c["status"], "fetched", "{c}");
        }
    }
    eprintln!("the trickling chunk failed after {took:?}");
}

#[cfg(unix)]
#[test]
fn planted_links_and_fifos_in_the_archive_are_not_followed_and_fetch_ends() {
    let service = Service::start();
    let (ev, docs) = serve(&service, "planted", 3, 30_000);
    let dir = util::temp_dir("trust-planted");
    let file = write_json(&dir.join("event.json"), &ev);
    let archive = dir.join("archive");
    let call_dir = archive.join("planted-call");
    std::fs::create_dir_all(&call_dir).unwrap();
    // A .part link to a file outside, with a forged progress record that matches it.
    let victim = dir.join("victim");
    std::fs::write(&victim, vec![7u8; 30_000]).unwrap();
    let part = call_dir.join(format!(".{}.mp4.part", docs[0]));
    std::os::unix::fs::symlink(&victim, &part).unwrap();
    use std::os::unix::fs::MetadataExt;
    let forged = serde_json::json!({
        "size": 30_000, "validator": null, "inode": std::fs::metadata(&victim).unwrap().ino(),
        "segments": [{ "start": 0, "end": 30_000, "done": 0 }]
    });
    write_json(&call_dir.join(format!(".{}.mp4.part.json", docs[0])), &forged);
    // A .lock link whose target does not exist yet.
    let created = dir.join("created-by-the-lock");
    std::os::unix::fs::symlink(&created, call_dir.join(format!(".{}.lock", docs[1]))).unwrap();
    // A FIFO where the third chunk's metadata goes.
    let fifo = call_dir.join(format!("{}.json", docs[2]));
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let mut child = fetch(
        &service,
        Creds::AccessKey,
        Some(&service.storage_authority()),
        &["--json", file.to_str().unwrap(), "--into", archive.to_str().unwrap()],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("fetch hung on a planted file");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r = report(&out);
    let error = |d: &str| {
        r["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["documentId"] == d)
            .unwrap()["error"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    for (doc, path, what) in [
        (&docs[0], &part, "a symbolic link"),
        (
            &docs[1],
            &call_dir.join(format!(".{}.lock", docs[1])),
            "a symbolic link",
        ),
        (&docs[2], &fifo, "a FIFO"),
    ] {
        let e = error(doc);
        assert!(
            e.contains(&path.display().to_string()) && e.contains(what),
            "{doc}: {e}"
        );
    }
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        vec![7u8; 30_000],
        "the link's target was written"
    );
    assert!(!created.exists(), "the lock link's target was created");
}

#[cfg(unix)]
#[test]
fn run_refuses_a_fifo_planted_as_its_state_instead_of_hanging() {
    let call = "3c57992b-07bf-4387-a8bc-a13561e8650a";
    let dir = util::temp_dir("trust-run-state");
    let archive = dir.join("archive");
    util::copy_tree(&util::cases().join("good").join(call), &archive.join(call));
    let out_dir = dir.join("out");
    let (code, _) = util::run_batch_json(&archive, &out_dir);
    assert_eq!(code, 0);
    let state = util::files(&out_dir.join(call), true)
        .into_iter()
        .map(|(n, _)| n)
        .find(|n| n.ends_with(".state"))
        .expect("a state file");
    let state = out_dir.join(call).join(state.rsplit('/').next().unwrap());
    std::fs::remove_file(&state).unwrap();
    assert!(Command::new("mkfifo").arg(&state).status().unwrap().success());
    let started = Instant::now();
    let (code, report) = util::run_batch_json(&archive, &out_dir);
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(code, 1, "{report}");
    let error = report["recordings"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("a FIFO") && error.contains(".state"), "{report}");
}

#[test]
fn control_characters_in_ids_are_escaped_in_text_output() {
    let service = Service::start();
    let recorder = Recorder::start();
    let doc = "0-evil\u{1b}]0;pwned\u{7}\u{1b}[2J";
    let ev = event(
        "ev-evil",
        "call\u{1b}[31m",
        "rec-evil",
        &[ServedChunk {
            document_id: doc.into(),
            index: 0,
            end_reason: "SessionEnded",
        }],
        Some(&recorder.url),
        &service::now_rfc3339(),
    );
    let dir = util::temp_dir("trust-escape");
    let file = write_json(&dir.join("event.json"), &ev);
    let out = fetch(
        &service,
        Creds::AccessKey,
        None,
        &[file.to_str().unwrap(), "--into", dir.join("archive").to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    for stream in [&out.stdout, &out.stderr] {
        assert!(!stream.iter().any(|b| *b == 0x1b || *b == 0x07), "{}", text(&out));
    }
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0-evil\\u{1b}]0;pwned\\u{7}"),
        "{}",
        text(&out)
    );
    assert!(recorder.requests().is_empty());
}
