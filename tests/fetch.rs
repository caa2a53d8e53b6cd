//! `recstitch fetch` and `recstitch::remote::fetch` against a stand-in for the
//! service (tests/util/service.rs): real HTTP on 127.0.0.1, every request's
//! signature checked by the server, faults injected per document id.

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use recstitch::remote::fetch::{ChunkStatus, Credentials, FetchOptions, FetchReport, Fetcher, HostPattern};
use serde_json::Value;
use util::service::{self, event, Fault, Media, ServedChunk, Service, KEY_B64};

const GOOD_CALL: &str = "3c57992b-07bf-4387-a8bc-a13561e8650a";

fn good_dir() -> PathBuf {
    util::cases().join("good").join(GOOD_CALL)
}

/// The fixture recording's chunks: (document id, media bytes, metadata bytes).
fn good_chunks() -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let mut docs: Vec<String> = std::fs::read_dir(good_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".mp4"))
        .map(|n| n.trim_end_matches(".mp4").to_string())
        .collect();
    docs.sort();
    docs.into_iter()
        .map(|d| {
            let media = std::fs::read(good_dir().join(format!("{d}.mp4"))).unwrap();
            let meta = std::fs::read(good_dir().join(format!("{d}.json"))).unwrap();
            (d, media, meta)
        })
        .collect()
}

/// Serves the fixture recording and returns its event, rewritten so that
/// its locations point at the service's storage host.
fn serve_good(service: &Service) -> Value {
    for (doc, media, meta) in good_chunks() {
        service.add(&doc, Media::Bytes(Arc::new(media)), meta);
    }
    let text = std::fs::read_to_string(good_dir().join("event.json")).unwrap();
    let text = text.replace("https://us-storage.asm.skype.com", &service.storage);
    serde_json::from_str(&text).unwrap()
}

fn write_json(path: &Path, v: &Value) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    path.to_path_buf()
}

/// Options for quick tests: short waits, small parts.
fn quick() -> FetchOptions {
    let mut o = FetchOptions::default();
    o.backoff = Duration::from_millis(20);
    o.max_backoff = Duration::from_millis(200);
    o.retries = 4;
    o.stall_timeout = Duration::from_secs(1);
    o.response_timeout = Duration::from_secs(10);
    o.max_retry_after = Duration::from_secs(5);
    o.part_size = 8 * 1024;
    o.checkpoint_bytes = 8 * 1024;
    o
}

/// A fetcher with the service's connection string, trusting its storage host.
fn fetcher(service: &Service, mut options: FetchOptions) -> Fetcher {
    let creds = Credentials::from_connection_string(&service.connection_string(KEY_B64)).unwrap();
    options
        .trusted_hosts
        .operator
        .push(HostPattern::parse(&service.storage_authority()).unwrap());
    Fetcher::new(creds, options)
}

/// One recording of `n` chunks with generated ids, served from fixture media.
fn serve_recording(service: &Service, name: &str, n: usize, locations: bool) -> (Value, Vec<String>) {
    let call = format!("{name}-call");
    let sources = good_chunks();
    let mut chunks = Vec::new();
    for i in 0..n {
        let doc = format!("0-test-{name}-{i}");
        let media = sources[i % sources.len()].1.clone();
        service.add(
            &doc,
            Media::Bytes(Arc::new(media)),
            service::metadata(&call, &doc, i as u32),
        );
        chunks.push(ServedChunk::nth(doc, i, n));
    }
    let base = locations.then_some(service.storage.as_str());
    let ev = event(
        &format!("ev-{name}"),
        &call,
        &format!("rec-{name}"),
        &chunks,
        base,
        &service::now_rfc3339(),
    );
    (ev, chunks.into_iter().map(|c| c.document_id).collect())
}

fn source_media(i: usize) -> Vec<u8> {
    good_chunks()[i % 3].1.clone()
}

fn chunk<'a>(report: &'a FetchReport, doc: &str) -> &'a recstitch::remote::fetch::ChunkReport {
    report.chunks.iter().find(|c| c.document_id == doc).unwrap()
}

/// Every hidden partial or lock file under `dir`.
fn partials(dir: &Path) -> Vec<String> {
    util::files(dir, true)
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.contains(".part") || n.ends_with(".lock") || n.ends_with(".tmp"))
        .collect()
}

/// Runs `recstitch fetch` with the connection string for `key`.
fn fetch_cli(service: &Service, key: &str, args: &[&str]) -> Output {
    fetch_command(service, key, args).output().unwrap()
}

/// `recstitch fetch ARGS` with the service's connection string made with
/// `key`, trusting its storage host.
fn fetch_command(service: &Service, key: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_recstitch"));
    command
        .arg("fetch")
        .args(args)
        .env("RECSTITCH_CONNECTION_STRING", service.connection_string(key))
        .env("RECSTITCH_TRUSTED_HOSTS", service.storage_authority())
        .env_remove("RECSTITCH_ACCESS_TOKEN");
    command
}

/// `recstitch fetch --json --progress none EVENT --into ARCHIVE` with the right key.
fn fetch_json(service: &Service, event: &Path, archive: &Path) -> Output {
    fetch_cli(
        service,
        KEY_B64,
        &[
            "--json",
            "--progress",
            "none",
            event.to_str().unwrap(),
            "--into",
            archive.to_str().unwrap(),
        ],
    )
}

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Serves one synthetic chunk of `len` bytes (document `0-test-<name>-0`
/// of call `<call>-call`) and writes the completion event that lists it
/// into `dir`; returns the document id and the event file.
fn serve_synthetic(service: &Service, name: &str, call: &str, len: u64, dir: &Path) -> (String, PathBuf) {
    let doc = format!("0-test-{name}-0");
    let call = format!("{call}-call");
    service.add(&doc, Media::Synthetic(len), service::metadata(&call, &doc, 0));
    let ev = event(
        &format!("ev-{name}"),
        &call,
        &format!("rec-{name}"),
        &[ServedChunk {
            document_id: doc.clone(),
            index: 0,
            end_reason: "SessionEnded",
        }],
        Some(&service.storage),
        &service::now_rfc3339(),
    );
    let file = write_json(&dir.join("event.json"), &ev);
    (doc, file)
}

/// Checks a `fetch --json` report against `schemas/fetch-report.v1.json`.
fn assert_follows_the_schema(report: &Value) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/fetch-report.v1.json");
    let schema: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema itself is valid");
    let errors: Vec<String> = validator
        .iter_errors(report)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "the fetch report breaks its schema:\n{}",
        errors.join("\n")
    );
}

#[test]
fn fetch_then_run_stitches_the_fixture_recording_and_a_second_fetch_transfers_no_media() {
    let service = Service::start();
    let ev = serve_good(&service);
    let dir = util::temp_dir("fetch-good");
    let event_file = write_json(&dir.join("in/event.json"), &ev);
    let archive = dir.join("archive");
    let out = fetch_json(&service, &event_file, &archive);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_follows_the_schema(&report);
    assert_eq!(report["chunks"].as_array().unwrap().len(), 3);
    assert!(report["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["status"] == "fetched"));
    // Byte-identical, in the layout run reads, with the event beside them.
    let call_dir = archive.join(GOOD_CALL);
    for (doc, media, meta) in good_chunks() {
        assert_eq!(
            std::fs::read(call_dir.join(format!("{doc}.mp4"))).unwrap(),
            media,
            "{doc}"
        );
        assert_eq!(
            std::fs::read(call_dir.join(format!("{doc}.json"))).unwrap(),
            meta,
            "{doc}"
        );
    }
    assert!(call_dir
        .join("event-53b48cc7-abba-47f7-ad21-273d2b386b21.json")
        .is_file());
    assert!(partials(&archive).is_empty(), "{:?}", partials(&archive));
    // Every request went to the storage host, signed with the endpoint's host.
    let log = service.log();
    assert_eq!(log.iter().filter(|l| l.what == "metadata").count(), 3);
    let endpoint_host = service.endpoint.trim_start_matches("http://");
    for l in &log {
        assert_eq!(l.listener, "storage");
        assert_ne!(l.status, 401, "{l:?}");
        assert_eq!(l.x_ms_host.as_deref(), Some(endpoint_host));
    }
    // run stitches what fetch wrote.
    let (code, run) = util::run_batch_json(&archive, &dir.join("out"));
    assert_eq!(code, 0, "{run}");
    let recs = run["recordings"].as_array().unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["status"], "stitched");
    assert_eq!(recs[0]["chunks"].as_array().unwrap().len(), 3);
    assert!(run["orphans"].as_array().unwrap().is_empty(), "{run}");
    // A second fetch finds everything complete: one byte of each media to
    // confirm its size, no metadata request, nothing rewritten.
    service.clear_log();
    let again = fetch_json(&service, &event_file, &archive);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again));
    let report: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_follows_the_schema(&report);
    assert!(
        report["chunks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "upToDate"),
        "{report}"
    );
    let log = service.log();
    assert_eq!(log.len(), 3, "{log:?}");
    for l in &log {
        assert_eq!(l.what, "media");
        assert_eq!(l.range.as_deref(), Some("bytes=0-0"));
        assert!(l.body_bytes <= 1, "{l:?}");
    }
    assert_eq!(report["bytesTransferred"], 0);
}

#[test]
fn chunks_without_locations_come_from_the_endpoints_download_paths() {
    let service = Service::start();
    let (ev, docs) = serve_recording(&service, "endpoint", 2, false);
    let dir = util::temp_dir("fetch-endpoint");
    let file = write_json(&dir.join("event.json"), &ev);
    let report = fetcher(&service, quick()).fetch(&[file], &dir.join("archive")).unwrap();
    assert!(report.all_fetched(), "{report:?}");
    for (i, doc) in docs.iter().enumerate() {
        let got = std::fs::read(dir.join(format!("archive/endpoint-call/{doc}.mp4"))).unwrap();
        assert_eq!(got, source_media(i));
    }
    let log = service.log();
    assert!(!log.is_empty());
    for l in &log {
        assert_eq!(l.listener, "endpoint", "{l:?}");
        assert!(l.path.starts_with("/recording/download/0-test-endpoint-"), "{l:?}");
        assert_eq!(l.x_ms_host, None);
        assert_ne!(l.status, 401, "{l:?}");
    }
    assert!(log.iter().any(|l| l.path.ends_with("/metadata")));
}

/// One recording of one chunk with `fault` injected `times`; the report and the archive.
fn with_fault(name: &str, fault: Fault, times: u32, options: FetchOptions) -> (FetchReport, PathBuf, Service, String) {
    let service = Service::start();
    let (ev, docs) = serve_recording(&service, name, 1, true);
    service.fault(&docs[0], fault, times);
    let dir = util::temp_dir(&format!("fetch-fault-{name}"));
    let file = write_json(&dir.join("event.json"), &ev);
    let archive = dir.join("archive");
    let report = fetcher(&service, options).fetch(&[file], &archive).unwrap();
    let media = archive.join(format!("{name}-call/{}.mp4", docs[0]));
    let doc = docs[0].clone();
    (report, media, service, doc)
}

/// The fault was met and survived: the file is the source's bytes.
fn assert_recovered(report: &FetchReport, media: &Path, doc: &str) {
    let c = chunk(report, doc);
    assert_eq!(c.status, ChunkStatus::Fetched, "{c:?}");
    assert!(c.retries >= 1, "the fault was not met: {c:?}");
    assert_eq!(std::fs::read(media).unwrap(), source_media(0));
    assert!(partials(media.parent().unwrap()).is_empty());
}

/// The fault persisted: the chunk failed naming what came back, and no media file exists.
fn assert_refused(report: &FetchReport, media: &Path, doc: &str, what: &str) {
    let c = chunk(report, doc);
    assert_eq!(c.status, ChunkStatus::Failed);
    let e = c.error.as_deref().unwrap();
    assert!(e.contains(what), "{e}");
    assert!(!media.exists(), "{} was saved", media.display());
    assert!(
        partials(media.parent().unwrap())
            .iter()
            .all(|p| !p.contains(".mp4.part")),
        "a partial file of a refused body"
    );
    assert!(!report.all_fetched());
}

#[test]
fn a_connection_dropped_mid_body_is_resumed_with_range() {
    let mut options = quick();
    options.parts = 1;
    let (report, media, service, doc) = with_fault("drop", Fault::Drop { after: 5000 }, 3, options);
    assert_recovered(&report, &media, &doc);
    let ranges: Vec<String> = service
        .log()
        .iter()
        .filter(|l| l.what == "media")
        .map(|l| l.range.clone().unwrap())
        .collect();
    let len = source_media(0).len();
    assert_eq!(
        ranges,
        [
            "bytes=0-8191".to_string(),
            format!("bytes=5000-{}", len - 1),
            format!("bytes=10000-{}", len - 1),
            format!("bytes=15000-{}", len - 1)
        ]
    );
    // Each range began where the bytes received ended: no byte twice.
    assert_eq!(service.media_bytes_sent(&doc), len as u64);
}

#[test]
fn a_503_is_retried_after_its_retry_after() {
    let (report, media, service, doc) = with_fault("unavailable", Fault::Unavailable { retry_after: 1 }, 2, quick());
    assert_recovered(&report, &media, &doc);
    let times: Vec<Duration> = service
        .log()
        .iter()
        .filter(|l| l.document_id == doc && l.what == "media")
        .map(|l| l.at)
        .collect();
    assert!(times.len() >= 3);
    for w in times.windows(2).take(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(950),
            "retried before Retry-After: {times:?}"
        );
    }
}

#[test]
fn a_429_is_retried_with_backoff() {
    let (report, media, service, doc) = with_fault("toomany", Fault::TooMany, 3, quick());
    assert_recovered(&report, &media, &doc);
    assert_eq!(chunk(&report, &doc).retries, 3);
    let statuses: Vec<u16> = service
        .log()
        .iter()
        .filter(|l| l.what == "media")
        .map(|l| l.status)
        .collect();
    assert_eq!(&statuses[..3], &[429, 429, 429]);
}

#[test]
fn a_200_with_an_html_page_is_never_saved_as_media() {
    let (report, media, _s, doc) = with_fault("html", Fault::Html, u32::MAX, quick());
    assert_refused(&report, &media, &doc, "an HTML page");
    assert!(chunk(&report, &doc).error.as_deref().unwrap().contains("Sign in"));
}

#[test]
fn a_200_with_a_json_error_body_is_never_saved_as_media() {
    let (report, media, _s, doc) = with_fault("jsonerror", Fault::JsonError, u32::MAX, quick());
    assert_refused(&report, &media, &doc, "a JSON document");
    assert!(chunk(&report, &doc).error.as_deref().unwrap().contains("InternalError"));
}

#[test]
fn a_200_with_zero_bytes_is_never_saved_as_media() {
    let (report, media, _s, doc) = with_fault("empty", Fault::Empty, u32::MAX, quick());
    assert_refused(&report, &media, &doc, "0 bytes");
}

#[test]
fn a_zero_byte_answer_that_the_service_then_corrects_is_fetched() {
    let (report, media, _s, doc) = with_fault("emptyonce", Fault::Empty, 1, quick());
    assert_recovered(&report, &media, &doc);
}

#[test]
fn a_stalled_body_is_abandoned_after_the_stall_timeout_and_resumed() {
    let started = Instant::now();
    let (report, media, service, doc) = with_fault("stall", Fault::Stall { after: 3000, secs: 8 }, 1, quick());
    assert_recovered(&report, &media, &doc);
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "waited for the stall: {:?}",
        started.elapsed()
    );
    let resumed =
        |l: &service::Logged| l.document_id == doc && l.range.as_deref().is_some_and(|r| r.starts_with("bytes=3000-"));
    assert!(service.log().iter().any(resumed), "{:?}", service.log());
}

#[test]
fn a_content_length_shorter_than_the_range_is_noticed_and_resumed() {
    let mut options = quick();
    options.parts = 1;
    let (report, media, service, doc) = with_fault("wronglength", Fault::WrongLength { short: 1000 }, 2, options);
    assert_recovered(&report, &media, &doc);
    let len = source_media(0).len();
    let ranges: Vec<String> = service
        .log()
        .iter()
        .filter(|l| l.what == "media")
        .map(|l| l.range.clone().unwrap())
        .collect();
    assert_eq!(
        ranges,
        [
            "bytes=0-8191".to_string(),
            format!("bytes=7192-{}", len - 1),
            format!("bytes={}-{}", len - 1000, len - 1)
        ]
    );
}

#[test]
fn a_403_stops_the_recording_with_an_authentication_error_and_spares_other_recordings() {
    let service = Service::start();
    let (ev1, docs1) = serve_recording(&service, "forbidden", 3, true);
    let (ev2, docs2) = serve_recording(&service, "allowed", 2, true);
    service.fault(&docs1[0], Fault::Forbidden, u32::MAX);
    let dir = util::temp_dir("fetch-forbidden");
    let files = vec![
        write_json(&dir.join("a.json"), &ev1),
        write_json(&dir.join("b.json"), &ev2),
    ];
    let mut options = quick();
    options.jobs = 1;
    let report = fetcher(&service, options).fetch(&files, &dir.join("archive")).unwrap();
    let first = chunk(&report, &docs1[0]);
    assert_eq!(first.error_kind.as_deref(), Some("authentication"), "{first:?}");
    assert!(first.error.as_deref().unwrap().contains("403"));
    for d in &docs1[1..] {
        assert_eq!(chunk(&report, d).error_kind.as_deref(), Some("aborted"));
    }
    // The recording's other chunks were never asked for.
    assert!(service.log().iter().all(|l| !docs1[1..].contains(&l.document_id)));
    for d in &docs2 {
        assert_eq!(chunk(&report, d).status, ChunkStatus::Fetched);
    }
    assert_eq!(
        service.log().iter().filter(|l| l.status == 403).count(),
        1,
        "403 is not retried"
    );
}

#[test]
fn a_wrong_key_is_an_authentication_error_with_no_file_and_the_key_in_no_output() {
    let service = Service::start();
    let ev = serve_good(&service);
    let dir = util::temp_dir("fetch-wrong-key");
    let file = write_json(&dir.join("event.json"), &ev);
    let archive = dir.join("archive");
    let wrong = "d3Jvbmcta2V5LXRoYXQtaXMtbm90LXRoZS1zZXJ2aWNlcw==";
    let out = fetch_cli(
        &service,
        wrong,
        &[
            "--progress",
            "json",
            file.to_str().unwrap(),
            "--into",
            archive.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let all = text(&out);
    assert!(all.contains("authentication failed (HTTP 401)"), "{all}");
    for (doc, _, _) in good_chunks() {
        assert!(all.contains(&doc), "the failed chunk {doc} is named: {all}");
    }
    assert!(!all.contains(wrong) && !all.contains("wrong-key-that"), "{all}");
    let chunk_files: Vec<String> = util::files(&archive, true)
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| !n.contains("event-"))
        .collect();
    assert!(chunk_files.is_empty(), "{chunk_files:?}");
    // The server did sign-check and refuse every request.
    assert!(service.log().iter().all(|l| l.status == 401));
}

#[test]
fn the_secret_appears_in_no_output() {
    let service = Service::start();
    let ev = serve_good(&service);
    service.fault("0-eus-d11-93febf7d8405595011fab94b54be8806", Fault::Html, u32::MAX);
    let dir = util::temp_dir("fetch-secret");
    let file = write_json(&dir.join("event.json"), &ev);
    let decoded = "test-access-key-0123456789";
    let mut outputs = Vec::new();
    for (i, args) in [
        vec!["--json", "--progress", "json"],
        vec!["--progress", "none"],
        vec!["--progress", "bar"],
    ]
    .into_iter()
    .enumerate()
    {
        let archive = dir.join(format!("archive{i}"));
        let mut a = args.clone();
        a.extend([
            file.to_str().unwrap(),
            "--into",
            archive.to_str().unwrap(),
            "--retries",
            "1",
            "--backoff-ms",
            "10",
        ]);
        let out = fetch_cli(&service, KEY_B64, &a);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        outputs.push(text(&out));
        for (_, bytes) in util::files(&archive, true) {
            let s = String::from_utf8_lossy(&bytes);
            assert!(!s.contains(KEY_B64) && !s.contains(decoded));
        }
    }
    // A connection string that does not parse: its error does not repeat it.
    let bad = Command::new(env!("CARGO_BIN_EXE_recstitch"))
        .args([
            "fetch",
            file.to_str().unwrap(),
            "--into",
            dir.join("x").to_str().unwrap(),
        ])
        .env(
            "RECSTITCH_CONNECTION_STRING",
            format!("endpoint=nonsense;accesskey={KEY_B64}"),
        )
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    outputs.push(text(&bad));
    for o in &outputs {
        assert!(!o.contains(KEY_B64) && !o.contains(decoded), "{o}");
    }
    // Without credentials: exit 2, naming the variable.
    let none = Command::new(env!("CARGO_BIN_EXE_recstitch"))
        .args([
            "fetch",
            file.to_str().unwrap(),
            "--into",
            dir.join("y").to_str().unwrap(),
        ])
        .env_remove("RECSTITCH_CONNECTION_STRING")
        .env_remove("RECSTITCH_ACCESS_TOKEN")
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("RECSTITCH_CONNECTION_STRING"));
}

#[test]
fn thirty_recordings_with_faults_on_a_fifth_of_the_chunks() {
    let service = Service::start();
    let dir = util::temp_dir("fetch-thirty");
    let mut files = Vec::new();
    let mut all_docs = Vec::new();
    for r in 0..30 {
        let (ev, docs) = serve_recording(&service, &format!("r{r:02}"), 3, r % 2 == 0);
        files.push(write_json(&dir.join(format!("events/ev{r:02}.json")), &ev));
        all_docs.extend(
            docs.into_iter()
                .enumerate()
                .map(|(i, d)| (format!("r{r:02}-call"), d, i)),
        );
    }
    // 18 of the 90 chunks: transient faults that a retry survives, and
    // persistent bad bodies that must be refused.
    let faults: Vec<(Fault, u32, bool)> = vec![
        (Fault::Drop { after: 3000 }, 2, true),
        (Fault::Unavailable { retry_after: 1 }, 1, true),
        (Fault::TooMany, 2, true),
        (Fault::Stall { after: 2000, secs: 4 }, 1, true),
        (Fault::WrongLength { short: 700 }, 1, true),
        (Fault::Empty, 1, true),
        (Fault::Html, u32::MAX, false),
        (Fault::JsonError, u32::MAX, false),
        (Fault::Empty, u32::MAX, false),
    ];
    let mut unfetchable = Vec::new();
    for k in 0..18 {
        let (_, doc, _) = &all_docs[k * 5 + 2];
        let (fault, times, recoverable) = faults[k % faults.len()].clone();
        service.fault(doc, fault, times);
        if !recoverable {
            unfetchable.push(doc.clone());
        }
    }
    let archive = dir.join("archive");
    let out = fetch_cli(
        &service,
        KEY_B64,
        &[
            "--json",
            "--progress",
            "none",
            "--jobs",
            "6",
            "--retries",
            "3",
            "--backoff-ms",
            "20",
            "--stall-timeout",
            "1",
            dir.join("events").to_str().unwrap(),
            "--into",
            archive.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_follows_the_schema(&report);
    assert_eq!(report["chunks"].as_array().unwrap().len(), 90);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (call, doc, i) in &all_docs {
        let media = archive.join(call).join(format!("{doc}.mp4"));
        if unfetchable.contains(doc) {
            assert!(!media.exists(), "{doc}");
            assert!(stderr.contains(doc.as_str()), "{doc} is not named: {stderr}");
        } else {
            assert_eq!(std::fs::read(&media).unwrap(), source_media(*i), "{doc}");
        }
    }
    let failed: Vec<&str> = report["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "failed")
        .map(|c| c["documentId"].as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = unfetchable.iter().map(String::as_str).collect();
    expected.sort();
    let mut failed_sorted = failed.clone();
    failed_sorted.sort();
    assert_eq!(failed_sorted, expected);
    assert!(partials(&archive).iter().all(|p| !p.ends_with(".lock")));
}

#[test]
fn sigkill_mid_download_then_a_rerun_resumes_with_range_and_ends_byte_identical() {
    let service = Service::start();
    let len: u64 = 64 << 20;
    let dir = util::temp_dir("fetch-kill");
    let (doc, file) = serve_synthetic(&service, "big", "big", len, &dir);
    service.throttle(&doc, 4 << 20);
    let archive = dir.join("archive");
    let args = [
        "--progress",
        "none",
        file.to_str().unwrap(),
        "--into",
        archive.to_str().unwrap(),
    ];
    let mut child = fetch_command(&service, KEY_B64, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Four parts of 16 MiB at 4 MiB/s each: kill once each has passed its
    // first 8 MiB checkpoint, well before the end.
    let deadline = Instant::now() + Duration::from_secs(60);
    while service.media_bytes_sent(&doc) < 48 << 20 {
        assert!(Instant::now() < deadline, "the download did not progress");
        assert!(child.try_wait().unwrap().is_none(), "fetch ended before the kill");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let final_path = archive.join(format!("big-call/{doc}.mp4"));
    assert!(!final_path.exists(), "a partial download under its final name");
    assert!(archive.join(format!("big-call/.{doc}.mp4.part")).exists());
    // What the kill left is invisible to the archive scan.
    let (_, validated) = util::recstitch_json(&["validate", "--json", archive.to_str().unwrap()]);
    assert!(validated["orphans"].as_array().unwrap().is_empty(), "{validated}");
    let before = service.log().len();
    let sent_before = service.media_bytes_sent(&doc);
    let out = fetch_json(&service, &file, &archive);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["chunks"][0]["resumed"], true, "{report}");
    let after: Vec<_> = service.log()[before..].to_vec();
    let part_starts = [0u64, 16 << 20, 32 << 20, 48 << 20];
    let resumed_ranges: Vec<u64> = after
        .iter()
        .filter(|l| l.what == "media")
        .filter_map(|l| {
            l.range
                .as_deref()?
                .strip_prefix("bytes=")?
                .split('-')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(
        !resumed_ranges.is_empty() && resumed_ranges.iter().all(|s| !part_starts.contains(s)),
        "the rerun restarted parts instead of resuming them: {resumed_ranges:?}"
    );
    let sent_after = service.media_bytes_sent(&doc) - sent_before;
    assert!(
        sent_after < len - (24 << 20),
        "the rerun fetched {sent_after} bytes of {len}"
    );
    assert!(
        service::is_synthetic(&final_path, len),
        "the result differs from the source"
    );
    assert!(partials(&archive).is_empty(), "{:?}", partials(&archive));
}

#[test]
fn large_media_comes_in_parallel_ranged_parts() {
    let service = Service::start();
    let len: u64 = (40 << 20) + 12345;
    let dir = util::temp_dir("fetch-parts");
    let (doc, file) = serve_synthetic(&service, "parts", "parts", len, &dir);
    service.throttle(&doc, 16 << 20);
    let mut options = quick();
    options.part_size = 4 << 20;
    options.checkpoint_bytes = 4 << 20;
    let report = fetcher(&service, options).fetch(&[file], &dir.join("archive")).unwrap();
    assert!(report.all_fetched(), "{report:?}");
    assert!(service::is_synthetic(
        &dir.join(format!("archive/parts-call/{doc}.mp4")),
        len
    ));
    let media: Vec<_> = service.log().into_iter().filter(|l| l.what == "media").collect();
    let ranges: Vec<(u64, u64)> = media
        .iter()
        .map(|l| {
            let r = l.range.as_deref().unwrap().strip_prefix("bytes=").unwrap();
            let (a, b) = r.split_once('-').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        })
        .collect();
    assert_eq!(ranges.len(), 5, "the first request, then four parts: {ranges:?}");
    // The parts ran at once: every part's request began before the others ended.
    let parts: Vec<_> = media
        .iter()
        .filter(|l| !l.range.as_deref().unwrap().starts_with("bytes=0-"))
        .collect();
    for a in &parts {
        for b in &parts {
            assert!(a.at < b.finished.unwrap(), "{a:?} began after {b:?} ended");
        }
    }
    // Disjoint, and together the whole object.
    let mut covered: Vec<(u64, u64)> = ranges[1..].to_vec();
    covered.sort();
    assert_eq!(covered[0].0, 4 << 20);
    assert_eq!(covered.last().unwrap().1, len - 1);
    assert!(covered.windows(2).all(|w| w[0].1 + 1 == w[1].0));
    assert_eq!(service.media_bytes_sent(&doc), len, "no byte was fetched twice");
}

#[test]
fn cloud_events_arrays_folders_duplicates_and_validation_events() {
    let service = Service::start();
    let (eg, docs1) = serve_recording(&service, "eventgrid", 1, true);
    let (ev2, docs2) = serve_recording(&service, "cloud", 1, true);
    // The same recording event in CloudEvents 1.0 form.
    let cloud = serde_json::json!({
        "specversion": "1.0",
        "id": ev2["id"],
        "source": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Communication/CommunicationServices/test",
        "subject": ev2["subject"],
        "type": "Microsoft.Communication.RecordingFileStatusUpdated",
        "time": ev2["eventTime"],
        "data": ev2["data"],
    });
    let validation = serde_json::json!({
        "id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66",
        "topic": "/subscriptions/x",
        "subject": "",
        "data": { "validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6" },
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": "2024-05-14T09:30:00Z",
        "dataVersion": "1"
    });
    let dir = util::temp_dir("fetch-schemas");
    write_json(&dir.join("events/1.json"), &Value::Array(vec![validation, eg.clone()]));
    write_json(&dir.join("events/2.json"), &cloud);
    write_json(&dir.join("events/3-again.json"), &eg);
    std::fs::write(dir.join("events/notes.txt"), "not an event").unwrap();
    let report = fetcher(&service, quick())
        .fetch(&[dir.join("events")], &dir.join("archive"))
        .unwrap();
    assert!(report.all_fetched(), "{report:?}");
    assert_eq!(report.events.len(), 2);
    assert_eq!(report.chunks.len(), 2);
    for (call, doc) in [("eventgrid-call", &docs1[0]), ("cloud-call", &docs2[0])] {
        assert_eq!(
            std::fs::read(dir.join(format!("archive/{call}/{doc}.mp4"))).unwrap(),
            source_media(0)
        );
    }
    let reasons: Vec<&str> = report.skipped.iter().map(|s| s.reason.as_str()).collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("subscription validation")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("delivered twice")), "{reasons:?}");
    // The saved CloudEvent is a completion event the archive scan reads.
    let saved = std::fs::read(dir.join("archive/cloud-call/event-ev-cloud.json")).unwrap();
    let saved: Value = serde_json::from_slice(&saved).unwrap();
    assert_eq!(saved["type"], "Microsoft.Communication.RecordingFileStatusUpdated");
    let scanned = recstitch::Archive::scan(&dir.join("archive"), &recstitch::ScanOptions::default()).unwrap();
    assert_eq!(scanned.recordings.len(), 2);
    assert!(scanned.recordings.iter().all(|r| r.event.is_some()));
}

#[test]
fn events_are_fetched_oldest_first_and_an_old_one_is_warned_about() {
    let service = Service::start();
    let (mut young, young_docs) = serve_recording(&service, "young", 1, true);
    let (mut old, old_docs) = serve_recording(&service, "old", 1, true);
    let now = SystemTime::now();
    young["eventTime"] = service::time_rfc3339(now - Duration::from_secs(3600)).into();
    old["eventTime"] = service::time_rfc3339(now - Duration::from_secs(26 * 3600)).into();
    let dir = util::temp_dir("fetch-order");
    let files = vec![
        write_json(&dir.join("a-young.json"), &young),
        write_json(&dir.join("b-old.json"), &old),
    ];
    let mut options = quick();
    options.jobs = 1;
    let report = fetcher(&service, options).fetch(&files, &dir.join("archive")).unwrap();
    assert!(report.all_fetched());
    assert_eq!(report.chunks[0].document_id, old_docs[0]);
    let log = service.log();
    assert_eq!(log[0].document_id, old_docs[0]);
    assert_eq!(log.last().unwrap().document_id, young_docs[0]);
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        report.warnings[0].contains("ev-old") && report.warnings[0].contains("26.0 hours old"),
        "{:?}",
        report.warnings
    );
}

#[test]
fn delete_after_deletes_only_recordings_stitched_and_verified() {
    let service = Service::start();
    let good = serve_good(&service);
    let (broken, broken_docs) = serve_recording(&service, "broken", 2, true);
    service.fault(&broken_docs[1], Fault::Html, u32::MAX);
    let dir = util::temp_dir("fetch-delete");
    let files = [
        write_json(&dir.join("good.json"), &good),
        write_json(&dir.join("broken.json"), &broken),
    ];
    let archive = dir.join("archive");
    let out_dir = dir.join("out");
    let out = fetch_cli(
        &service,
        KEY_B64,
        &[
            "--json",
            "--progress",
            "none",
            "--retries",
            "1",
            "--backoff-ms",
            "10",
            "--delete-after",
            "--out",
            out_dir.to_str().unwrap(),
            files[0].to_str().unwrap(),
            files[1].to_str().unwrap(),
            "--into",
            archive.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let deleted: Vec<String> = service
        .log()
        .iter()
        .filter(|l| l.method == "DELETE" && l.status == 200)
        .map(|l| l.document_id.clone())
        .collect();
    let mut good_docs: Vec<String> = good_chunks().into_iter().map(|c| c.0).collect();
    good_docs.sort();
    let mut deleted_sorted = deleted.clone();
    deleted_sorted.sort();
    assert_eq!(deleted_sorted, good_docs, "{report}");
    // Deleted only after the stitched file existed and matched its manifest.
    let manifest_dir = out_dir.join(GOOD_CALL);
    assert!(std::fs::read_dir(&manifest_dir).unwrap().count() >= 2);
    let kept: Vec<&Value> = report["deletions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["deleted"] == false)
        .collect();
    assert_eq!(kept.len(), 2);
    assert!(kept
        .iter()
        .all(|d| d["reason"].as_str().unwrap().contains("not every chunk was fetched")));
}

/// Throughput and peak memory of `recstitch fetch` for one 1.5 GB chunk
/// from the local stand-in service (README, "Fetching from the service").
/// Run: `cargo test --test fetch -- --ignored throughput --nocapture`.
#[test]
#[ignore]
fn throughput_of_a_1_5_gb_chunk() {
    let service = Service::start();
    // RECSTITCH_THROUGHPUT_BYTES gives another size (memory does not grow with it).
    let len: u64 = std::env::var("RECSTITCH_THROUGHPUT_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_500_000_000);
    let dir = util::temp_dir("fetch-throughput");
    let (doc, file) = serve_synthetic(&service, "throughput", "tp", len, &dir);
    let archive = dir.join("archive");
    let started = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(env!("CARGO_BIN_EXE_recstitch"))
        .args([
            "fetch",
            "--progress",
            "none",
            file.to_str().unwrap(),
            "--into",
            archive.to_str().unwrap(),
        ])
        .env("RECSTITCH_CONNECTION_STRING", service.connection_string(KEY_B64))
        .env("RECSTITCH_TRUSTED_HOSTS", service.storage_authority())
        .output()
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let rss = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes): "))
        .unwrap_or("?");
    let path = archive.join(format!("tp-call/{doc}.mp4"));
    assert!(service::is_synthetic(&path, len), "the result differs from the source");
    println!(
        "{len}-byte chunk: {seconds:.2} s, {:.0} MB/s, peak RSS {rss} KiB",
        len as f64 / seconds / 1e6
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `examples/archival_worker.rs` with credentials in the environment:
/// event → fetch → validate → stitch, with the library alone. (The example
/// is built by `cargo test`; run on its own, this test says SKIPPED when
/// the example was not built.)
#[test]
fn the_archival_worker_fetches_validates_and_stitches() {
    let worker = Path::new(env!("CARGO_BIN_EXE_recstitch"))
        .parent()
        .unwrap()
        .join("examples/archival_worker");
    if !worker.exists() {
        eprintln!("SKIPPED: {} is not built (cargo test builds it)", worker.display());
        return;
    }
    let service = Service::start();
    let ev = serve_good(&service);
    let dir = util::temp_dir("fetch-worker");
    let file = write_json(&dir.join("event.json"), &ev);
    let (download, out) = (dir.join("download"), dir.join("out"));
    let done = Command::new(&worker)
        .args([&file, &download, &out])
        .env("RECSTITCH_CONNECTION_STRING", service.connection_string(KEY_B64))
        .env("RECSTITCH_TRUSTED_HOSTS", service.storage_authority())
        .output()
        .unwrap();
    assert_eq!(done.status.code(), Some(0), "{}", text(&done));
    for (doc, media, _) in good_chunks() {
        assert_eq!(
            std::fs::read(download.join(GOOD_CALL).join(format!("{doc}.mp4"))).unwrap(),
            media
        );
    }
    let stitched: Vec<String> = util::visible_files(&out)
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.ends_with(".mp4"))
        .collect();
    assert_eq!(stitched.len(), 1, "{stitched:?}");
    assert!(String::from_utf8_lossy(&done.stdout).contains("stitched"));
    assert_eq!(service.log().iter().filter(|l| l.what == "media").count(), 3);
}

/// The MP3 fixture recording served as the service serves audio chunks
/// (`…/content/audio`); returns its event.
fn serve_mp3_recording(service: &Service, replace_media: Option<&[u8]>) -> Value {
    let dir = util::cases().join("good_mp3_pause");
    let mut metas: Vec<PathBuf> = walkdir::WalkDir::new(&dir)
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    metas.sort();
    let mut chunks = Vec::new();
    for meta in &metas {
        let v: Value = serde_json::from_slice(&std::fs::read(meta).unwrap()).unwrap();
        let doc = v["chunkDocumentId"].as_str().unwrap().to_string();
        let media = match replace_media {
            Some(bytes) => bytes.to_vec(),
            None => std::fs::read(meta.with_extension("mp3")).unwrap(),
        };
        service.add(&doc, Media::Bytes(Arc::new(media)), std::fs::read(meta).unwrap());
        chunks.push(ServedChunk {
            document_id: doc,
            index: v["chunkIndex"].as_u64().unwrap() as u32,
            end_reason: "SessionEnded",
        });
    }
    chunks.sort_by_key(|c| c.index);
    let last = chunks.len() - 1;
    for c in &mut chunks[..last] {
        c.end_reason = "ChunkMaximumSizeExceeded";
    }
    let call = metas[0]
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let mut ev = event(
        "ev-mp3",
        &call,
        "rec-mp3",
        &chunks,
        Some(&service.storage),
        &service::now_rfc3339(),
    );
    for c in ev["data"]["recordingStorageInfo"]["recordingChunks"]
        .as_array_mut()
        .unwrap()
    {
        let media = c["contentLocation"]
            .as_str()
            .unwrap()
            .replace("/content/video", "/content/audio");
        c["contentLocation"] = media.into();
    }
    ev
}

#[test]
fn audio_chunks_are_saved_in_their_format_and_stitch_to_an_mp3() {
    let service = Service::start();
    let ev = serve_mp3_recording(&service, None);
    let dir = util::temp_dir("fetch-mp3");
    let event = write_json(&dir.join("event.json"), &ev);
    let report = fetcher(&service, quick())
        .fetch(&[event], &dir.join("archive"))
        .unwrap();
    assert!(
        report.chunks.iter().all(|c| c.status == ChunkStatus::Fetched),
        "{report:?}"
    );
    for c in &report.chunks {
        let media = c.media.as_ref().unwrap();
        assert_eq!(media.extension().unwrap(), "mp3", "{}", media.display());
    }
    let (code, run) = util::run_batch_json(&dir.join("archive"), &dir.join("out"));
    assert_eq!(code, 0, "{run:#}");
    assert!(
        run["recordings"][0]["output"].as_str().unwrap().ends_with(".mp3"),
        "{run:#}"
    );
}

#[test]
fn an_mp4_body_where_the_metadata_says_mp3_is_never_saved() {
    let service = Service::start();
    let mp4 = std::fs::read(good_dir().join(format!("{}.mp4", good_chunks()[0].0))).unwrap();
    let ev = serve_mp3_recording(&service, Some(&mp4));
    let dir = util::temp_dir("fetch-mp3-wrong");
    let event = write_json(&dir.join("event.json"), &ev);
    let report = fetcher(&service, quick())
        .fetch(&[event], &dir.join("archive"))
        .unwrap();
    for c in &report.chunks {
        assert_eq!(c.status, ChunkStatus::Failed, "{c:?}");
        let e = c.error.as_deref().unwrap();
        assert!(e.contains("an MP4 file") && e.contains("instead of an MP3"), "{e}");
    }
    let saved: Vec<String> = util::files(&dir.join("archive"), false)
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n.ends_with(".mp3") || n.ends_with(".mp4"))
        .collect();
    assert!(saved.is_empty(), "{saved:?}");
}
