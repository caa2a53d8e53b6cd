//! `recstitch worker` against real parts: Azurite's queue and blob
//! services (the Azure Storage emulator) and the signature-checking
//! stand-in for the recording service (tests/util/service.rs). Skipped,
//! loudly, without Azurite, unless `RECSTITCH_REQUIRE_AZURITE=1`.

mod util;

#[path = "util/azurite.rs"]
#[allow(dead_code)]
mod azurite;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use recstitch::remote::worker::{QueueClient, StorageAccount};
use serde_json::Value;
use util::service::{Media, Service, KEY_B64};

use azurite::Azurite;

const GOOD_CALL: &str = "3c57992b-07bf-4387-a8bc-a13561e8650a";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The emulators, the service and a folder for one test.
struct Setup {
    queue: Azurite,
    blob: Azurite,
    service: Service,
    dir: PathBuf,
    /// The output container: `stitched` for the issue's own scenario, its
    /// own name for each other test (the tests of this file run at once
    /// and mount their containers in one process).
    container: String,
}

impl Setup {
    fn start(name: &str) -> Option<Setup> {
        let queue = Azurite::start_queue(&format!("worker-{name}"))?;
        let blob = Azurite::start(&format!("worker-{name}"))?;
        Some(Setup {
            queue,
            blob,
            service: Service::start(),
            dir: util::temp_dir(&format!("worker-{name}")),
            container: if name == "main" {
                "stitched".into()
            } else {
                format!("stitched-{name}")
            },
        })
    }

    /// The development account's connection string with both emulators' endpoints.
    fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={a};AccountKey={k};BlobEndpoint={b}/{a};QueueEndpoint={q}/{a};",
            a = azurite::ACCOUNT,
            k = azurite::KEY,
            b = self.blob.url(),
            q = self.queue.url()
        )
    }

    /// The queue `name`, created.
    fn queue(&self, name: &str) -> QueueClient {
        let account = StorageAccount::from_connection_string(&self.connection_string()).unwrap();
        let q = QueueClient::new(account, name).unwrap();
        q.create().unwrap();
        q
    }

    /// `recstitch worker ARGS` with the queue account's connection string
    /// and the service's credentials, trusting its storage host.
    fn worker(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_recstitch"));
        c.arg("worker")
            .args(args)
            .env("AZURE_STORAGE_CONNECTION_STRING", self.connection_string())
            .env("RECSTITCH_CONNECTION_STRING", self.service.connection_string(KEY_B64))
            .env("RECSTITCH_TRUSTED_HOSTS", self.service.storage_authority())
            .env_remove("RECSTITCH_ACCESS_TOKEN")
            .env_remove("AZURE_STORAGE_ACCOUNT_NAME")
            .env_remove("AZURE_STORAGE_ACCOUNT_KEY")
            .env_remove("AZURE_STORAGE_USE_EMULATOR");
        c
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.worker(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// Serves a copy of the fixture recording as recording `n` (its own
    /// call, recording and document ids) and returns its completion event
    /// (Event Grid schema), locations on the service's storage host.
    fn serve(&self, n: usize) -> Value {
        let dir = util::cases().join("good").join(GOOD_CALL);
        let text = std::fs::read_to_string(dir.join("event.json")).unwrap();
        let original: Value = serde_json::from_str(&text).unwrap();
        let original = &original[0];
        let recording = original["subject"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
        let event_id = original["id"].as_str().unwrap().to_string();
        let docs: Vec<String> = original["data"]["recordingStorageInfo"]["recordingChunks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["documentId"].as_str().unwrap().to_string())
            .collect();
        let rename = |s: &str| {
            let mut s = s
                .replace(GOOD_CALL, &format!("call-{n}"))
                .replace(&recording, &format!("recording-{n}"))
                .replace(&event_id, &format!("event-{n}"))
                .replace("https://us-storage.asm.skype.com", &self.service.storage);
            for d in &docs {
                s = s.replace(d, &format!("{d}-{n}"));
            }
            s
        };
        for d in &docs {
            let media = std::fs::read(dir.join(format!("{d}.mp4"))).unwrap();
            let meta = std::fs::read_to_string(dir.join(format!("{d}.json"))).unwrap();
            self.service.add(
                &format!("{d}-{n}"),
                Media::Bytes(Arc::new(media)),
                rename(&meta).into_bytes(),
            );
        }
        let event: Value = serde_json::from_str(&rename(&text)).unwrap();
        event[0].clone()
    }

    /// The document ids of recording `n`.
    fn docs(&self, event: &Value) -> Vec<String> {
        event["data"]["recordingStorageInfo"]["recordingChunks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["documentId"].as_str().unwrap().to_string())
            .collect()
    }

    fn throttle(&self, event: &Value, bytes_per_sec: u64) {
        for d in self.docs(event) {
            self.service.throttle(&d, bytes_per_sec);
        }
    }

    /// `recstitch fetch` + `recstitch run` of `events` into a local folder.
    fn fetch_and_run(&self, events: &[&Value]) -> PathBuf {
        let mut files = Vec::new();
        for (i, e) in events.iter().enumerate() {
            let f = self.dir.join(format!("reference-events/{i}.json"));
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, serde_json::to_vec(e).unwrap()).unwrap();
            files.push(f.to_str().unwrap().to_string());
        }
        let archive = self.dir.join("reference-archive");
        let out = self.dir.join("reference-out");
        let mut fetch = Command::new(env!("CARGO_BIN_EXE_recstitch"));
        fetch
            .args(["fetch", "--progress", "none", "--into", archive.to_str().unwrap()])
            .args(&files)
            .env("RECSTITCH_CONNECTION_STRING", self.service.connection_string(KEY_B64))
            .env("RECSTITCH_TRUSTED_HOSTS", self.service.storage_authority());
        let o = fetch.output().unwrap();
        assert!(o.status.success(), "fetch: {}", text(&o));
        let o = util::recstitch(&[
            "run",
            archive.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--progress",
            "none",
        ]);
        assert!(o.status.success(), "run: {}", text(&o));
        out
    }
}

/// `event` in the CloudEvents 1.0 schema.
fn cloud_event(event: &Value) -> Value {
    serde_json::json!({
        "specversion": "1.0",
        "id": event["id"],
        "source": event["topic"],
        "subject": event["subject"],
        "type": event["eventType"],
        "time": event["eventTime"],
        "datacontenttype": "application/json",
        "data": event["data"],
    })
}

fn base64_of(v: &Value) -> String {
    B64.encode(serde_json::to_vec(v).unwrap())
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The `message` lines of a worker's NDJSON stderr.
fn message_lines(stderr: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "message")
        .collect()
}

fn outcomes(lines: &[Value], outcome: &str) -> Vec<Value> {
    lines.iter().filter(|l| l["outcome"] == outcome).cloned().collect()
}

/// Waits for `child` for at most `limit`; its output, or a panic (after killing it).
fn wait_for(mut child: Child, limit: Duration) -> Output {
    let start = Instant::now();
    while start.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let o = child.wait_with_output().unwrap();
    panic!("the worker did not exit within {limit:?}: {}", text(&o));
}

impl Setup {
    /// `az://<container>/out`, its container created and mounted in this process.
    fn out(&self) -> String {
        self.blob.container(&self.container);
        format!("az://{}/out", self.container)
    }

    /// Every visible object under [`Setup::out`], by relative name.
    fn stitched(&self) -> Vec<(String, Vec<u8>)> {
        azurite::visible_objects(&self.blob.storage, Path::new(&format!("az://{}/out", self.container)))
    }
}

#[test]
fn three_events_a_duplicate_a_validation_event_and_poison() {
    let Some(s) = Setup::start("main") else { return };
    let out = s.out();
    let q = s.queue("recordings");
    let (e1, e2, e3) = (s.serve(1), s.serve(2), s.serve(3));
    let validation = serde_json::json!({
        "id": "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66",
        "topic": "/subscriptions/x",
        "subject": "",
        "data": { "validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6" },
        "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "eventTime": "2024-05-14T09:30:00Z",
        "dataVersion": "1"
    });
    let garbage = "this is not an event <&> {";
    for m in [
        base64_of(&e1),
        cloud_event(&e2).to_string(),
        base64_of(&validation),
        serde_json::to_string(&e3).unwrap(),
        base64_of(&e1),
        garbage.to_string(),
    ] {
        q.put(&m, None).unwrap();
    }
    let stage = s.dir.join("stage");
    let started = Instant::now();
    let o = s
        .worker(&[
            "--queue",
            "recordings",
            "--out",
            &out,
            "--archive",
            stage.to_str().unwrap(),
            "--until-empty",
            "--visibility-timeout",
            "10",
            "--max-dequeue",
            "2",
            "--progress",
            "json",
        ])
        .output()
        .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let lines = message_lines(&o.stderr);
    eprintln!("worker: {seconds:.1} s, {} message lines", lines.len());
    assert_eq!(outcomes(&lines, "archived").len(), 3, "{}", text(&o));
    assert_eq!(outcomes(&lines, "alreadyArchived").len(), 1, "{}", text(&o));
    assert_eq!(outcomes(&lines, "ignored").len(), 1, "{}", text(&o));
    assert_eq!(outcomes(&lines, "failed").len(), 1, "{}", text(&o));
    assert_eq!(outcomes(&lines, "poisoned").len(), 1, "{}", text(&o));
    assert_eq!(outcomes(&lines, "poisoned")[0]["dequeueCount"], 2);

    // Byte-identical to fetch + run of the same events.
    assert_matches_fetch_and_run(&s, &[&e1, &e2, &e3]);
    assert_eq!(s.stitched().iter().filter(|(n, _)| n.ends_with(".mp4")).count(), 3);

    // The queue is empty; the bad message is on recordings-poison, with the reason.
    assert_eq!(q.approximate_count().unwrap(), 0);
    let poison = s.queue("recordings-poison");
    let p = poison
        .receive(Duration::from_secs(30))
        .unwrap()
        .expect("a poison message");
    let envelope: Value = serde_json::from_str(&p.text).unwrap();
    assert_eq!(envelope["message"], garbage);
    assert_eq!(envelope["queue"], "recordings");
    assert!(envelope["reason"].as_str().unwrap().contains("JSON"), "{envelope}");
    assert!(poison.receive(Duration::from_secs(1)).unwrap().is_none());
    // No secret in the output.
    let all = text(&o);
    assert!(!all.contains(azurite::KEY) && !all.contains(KEY_B64), "{all}");
}

/// Waits until `check` holds, for at most `limit`.
fn wait_until(limit: Duration, what: &str, check: impl Fn() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends SIGTERM to `child`.
fn terminate(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM");
}

/// The outputs in `az://stitched/out` equal those of fetch + run of `events`.
fn assert_matches_fetch_and_run(s: &Setup, events: &[&Value]) {
    let reference = util::visible_files(&s.fetch_and_run(events));
    let objects = s.stitched();
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&objects), names(&reference));
    for ((name, a), (_, b)) in objects.iter().zip(&reference) {
        assert!(a == b, "{name} differs from fetch + run");
    }
}

#[test]
fn sigterm_mid_recording_exits_0_and_a_second_worker_completes_it() {
    let Some(s) = Setup::start("sigterm") else { return };
    let out = s.out();
    let q = s.queue("recordings");
    let e = s.serve(1);
    // About 10 s per chunk: the recording is in progress for a while.
    s.throttle(&e, 4096);
    q.put(&base64_of(&e), None).unwrap();
    let stage = s.dir.join("stage");
    let common = [
        "--queue",
        "recordings",
        "--out",
        &out,
        "--archive",
        stage.to_str().unwrap(),
        "--visibility-timeout",
        "30",
        "--progress",
        "json",
    ];
    let mut args = common.to_vec();
    args.extend(["--grace", "1"]);
    let first = s.spawn(&args);
    let doc = s.docs(&e)[0].clone();
    wait_until(Duration::from_secs(60), "the first bytes of the recording", || {
        s.service.media_bytes_sent(&doc) > 0
    });
    let asked = Instant::now();
    terminate(&first);
    let o = wait_for(first, Duration::from_secs(30));
    let stopped_in = asked.elapsed();
    eprintln!("SIGTERM to exit: {:.1} s", stopped_in.as_secs_f64());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let lines = message_lines(&o.stderr);
    assert_eq!(lines.len(), 1, "{}", text(&o));
    assert_eq!(lines[0]["outcome"], "released", "{}", text(&o));
    assert!(
        s.stitched().is_empty(),
        "nothing is written before the recording is complete"
    );

    // Made visible at once: a second worker takes it now, not after the 30 s lease.
    s.throttle(&e, 1 << 30);
    let mut args = common.to_vec();
    args.push("--until-empty");
    let started = Instant::now();
    let o = s.worker(&args).output().unwrap();
    let second = started.elapsed();
    eprintln!("second worker: {:.1} s", second.as_secs_f64());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let lines = message_lines(&o.stderr);
    assert_eq!(lines.len(), 1, "{}", text(&o));
    assert_eq!(lines[0]["outcome"], "archived", "{}", text(&o));
    assert_eq!(lines[0]["dequeueCount"], 2);
    assert!(second < Duration::from_secs(25), "the message was not released at once");
    assert_eq!(q.approximate_count().unwrap(), 0);
    assert_matches_fetch_and_run(&s, &[&e]);
}

/// Two workers started at once with `args`, each run to its exit (0):
/// the message lines of each.
fn two_workers(s: &Setup, args: &[&str]) -> Vec<Vec<Value>> {
    let workers = [s.spawn(args), s.spawn(args)];
    workers
        .into_iter()
        .map(|w| {
            let o = wait_for(w, Duration::from_secs(120));
            assert_eq!(o.status.code(), Some(0), "{}", text(&o));
            message_lines(&o.stderr)
        })
        .collect()
}

#[test]
fn two_workers_on_four_messages_write_each_recording_once() {
    let Some(s) = Setup::start("two") else { return };
    let out = s.out();
    let q = s.queue("recordings");
    let (a, b) = (s.serve(1), s.serve(2));
    // Slow enough that both workers hold a copy of the same event at once.
    s.throttle(&a, 32 << 10);
    s.throttle(&b, 32 << 10);
    for m in [base64_of(&a), base64_of(&a), base64_of(&b), b.to_string()] {
        q.put(&m, None).unwrap();
    }
    let stage = s.dir.join("stage");
    let args = [
        "--queue",
        "recordings",
        "--out",
        &out,
        "--archive",
        stage.to_str().unwrap(),
        "--until-empty",
        "--visibility-timeout",
        "10",
        "--progress",
        "json",
    ];
    let per_worker = two_workers(&s, &args);
    assert!(
        per_worker.iter().all(|mine| !mine.is_empty()),
        "each worker took a message: {per_worker:?}"
    );
    let lines: Vec<Value> = per_worker.concat();
    assert_eq!(lines.len(), 4, "{lines:?}");
    let mut archived: Vec<String> = outcomes(&lines, "archived")
        .iter()
        .map(|l| l["recordingId"].as_str().unwrap().to_string())
        .collect();
    archived.sort();
    assert_eq!(archived, ["recording-1", "recording-2"], "each written once: {lines:?}");
    assert_eq!(outcomes(&lines, "alreadyArchived").len(), 2, "{lines:?}");
    assert_eq!(q.approximate_count().unwrap(), 0);
    assert_matches_fetch_and_run(&s, &[&a, &b]);
}

#[test]
fn work_that_outlasts_the_visibility_timeout_gets_no_second_delivery() {
    let Some(s) = Setup::start("lease") else { return };
    let out = s.out();
    let q = s.queue("recordings");
    let e = s.serve(1);
    // The reference first: the worker deletes the chunks from the service.
    let reference = util::visible_files(&s.fetch_and_run(&[&e]));
    s.service.clear_log();
    // About 10 s of work against a 3 s lease.
    s.throttle(&e, 4096);
    q.put(&base64_of(&e), None).unwrap();
    let args = [
        "--queue",
        "recordings",
        "--out",
        &out,
        "--delete-after",
        "--until-empty",
        "--visibility-timeout",
        "3",
        "--progress",
        "json",
    ];
    let lines: Vec<Value> = two_workers(&s, &args).concat();
    assert_eq!(lines.len(), 1, "one delivery only: {lines:?}");
    assert_eq!(lines[0]["outcome"], "archived");
    assert_eq!(lines[0]["dequeueCount"], 1);
    let seconds = lines[0]["seconds"].as_f64().unwrap();
    eprintln!("work: {seconds:.1} s against a 3 s visibility timeout");
    assert!(seconds > 6.0, "the work outlasted the lease twice over: {seconds}");
    assert_eq!(q.approximate_count().unwrap(), 0);
    assert_eq!(s.stitched(), reference);
    // --delete-after: each chunk deleted once, after its recording was verified.
    let mut deleted: Vec<String> = s
        .service
        .log()
        .iter()
        .filter(|l| l.method == "DELETE" && l.status == 200)
        .map(|l| l.document_id.clone())
        .collect();
    deleted.sort();
    assert_eq!(deleted, s.docs(&e));
    assert!(
        lines[0]["note"].as_str().unwrap().contains("3 chunk(s) deleted"),
        "{lines:?}"
    );
}

#[test]
fn a_missing_queue_or_a_wrong_key_is_a_clear_error_without_secrets() {
    let Some(s) = Setup::start("errors") else { return };
    let out = s.dir.join("out");
    let o = s
        .worker(&["--queue", "missing", "--out", out.to_str().unwrap(), "--until-empty"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("queue missing on 127.0.0.1:"), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    s.queue("recordings");
    let wrong = s.connection_string().replace(azurite::KEY, KEY_B64);
    let o = s
        .worker(&["--queue", "recordings", "--out", out.to_str().unwrap(), "--until-empty"])
        .env("AZURE_STORAGE_CONNECTION_STRING", &wrong)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("queue recordings on 127.0.0.1:") && err.contains("HTTP 403"),
        "{err}"
    );
    assert!(!err.contains(KEY_B64) && !err.contains(azurite::KEY), "{err}");
    let o = s
        .worker(&["--queue", "Bad_Name", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}
