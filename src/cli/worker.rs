//! `recstitch worker`: arguments, signals, the per-message lines and the
//! exit code around `recstitch::remote::worker`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use recstitch::remote::fetch::{Credentials, TrustedHosts};
use recstitch::remote::worker::{
    MessageReport, QueueClient, QueueErrorKind, StorageAccount, Worker, WorkerEvent, WorkerOptions,
};
use recstitch::Observer;

use crate::{shown, ProgressMode, EXIT_FAILED, EXIT_FINDINGS, EXIT_OK};

/// The arguments of `recstitch worker`.
#[derive(clap::Args)]
#[command(
    after_help = "Exit codes:\n  0  the queue stayed empty (--until-empty), or SIGTERM/SIGINT stopped the worker\n  1  the queue service kept failing (5 minutes)\n  2  could not run: bad arguments, no credentials, a missing queue, a refused key, an unusable --out\nA message whose work fails is left on the queue (not an exit code); at --max-dequeue deliveries it goes to NAME-poison."
)]
pub struct WorkerArgs {
    /// The queue the Event Grid subscription delivers to (failed messages
    /// go to NAME-poison).
    #[arg(long)]
    queue: String,
    /// Where to write `<callId>/<recordingKey>.mp4` (+ manifest, chapters):
    /// a folder or `az://container/prefix`.
    #[arg(long)]
    out: PathBuf,
    /// The local staging archive the chunks are fetched into (kept);
    /// default: a folder under the system's temporary directory, each
    /// recording's part removed once it is archived.
    #[arg(long)]
    archive: Option<PathBuf>,
    /// Delete each recording's chunks from the service once its output is
    /// verified (as `fetch --delete-after`).
    #[arg(long)]
    delete_after: bool,
    /// Exit 0 once the queue has stayed empty (nothing visible or leased) for a few seconds.
    #[arg(long)]
    until_empty: bool,
    /// The lease on a message, in seconds (renewed every third of it while its work goes on).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=604_800))]
    visibility_timeout: u64,
    /// Deliveries after which a failing message is moved to NAME-poison.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    max_dequeue: u32,
    /// Messages handled at once (default 1).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: Option<u16>,
    /// Seconds the current work may go on after SIGTERM/SIGINT before it is
    /// stopped and its message made visible again.
    #[arg(long, default_value_t = 20)]
    grace: u64,
    /// Progress on stderr: `json` (NDJSON: fetch and stitch events and one
    /// `message` line per message); otherwise one text line per message.
    #[arg(long, default_value = "bar")]
    progress: ProgressMode,
}

/// `recstitch worker`.
pub fn worker(storage: &recstitch::Storage, args: WorkerArgs) -> anyhow::Result<u8> {
    let account = StorageAccount::from_env()?;
    let queue = QueueClient::new(account.clone(), &args.queue)?;
    let poison = format!("{}-poison", args.queue);
    if !recstitch::remote::worker::queue::valid_queue_name(&poison) {
        anyhow::bail!(
            "--queue {}: too long for its poison queue {poison} (63 characters at most)",
            args.queue
        );
    }
    let mut out = args.out.clone();
    if let Some(url) = out.to_str().filter(|s| crate::is_url(s)) {
        // `az://` outputs on the queue's account when a connection string gave it.
        if url.starts_with("az://") {
            account.mount_container(storage, url)?;
        }
        out = crate::located(storage, out)?;
    }
    storage.check_out_dir(&out)?;
    let credentials = Credentials::from_env()?;
    let mut options = WorkerOptions::default();
    options.fetch.trusted_hosts = TrustedHosts::from_env()?;
    options.batch.storage = storage.clone();
    options.archive = args.archive.clone();
    options.delete_after = args.delete_after;
    options.until_empty = args.until_empty;
    options.visibility_timeout = Duration::from_secs(args.visibility_timeout);
    options.max_dequeue = args.max_dequeue;
    options.grace = Duration::from_secs(args.grace);
    options.jobs = args.jobs.map_or(1, usize::from);
    watch_signals(&options.stop)?;
    let worker = Worker::new(credentials, out, options)?;
    let lines = Lines {
        json: args.progress == ProgressMode::Json,
    };
    match worker.run(&queue, &lines) {
        Ok(summary) => {
            lines.note(&format!(
                "{}: {} message(s): {} archived, {} already archived, {} ignored, {} failed, {} poisoned, {} released{}",
                shown(queue.name()),
                summary.messages,
                summary.archived,
                summary.already_archived,
                summary.ignored,
                summary.failed,
                summary.poisoned,
                summary.released,
                if summary.stopped { "; stopped" } else { "" }
            ));
            Ok(EXIT_OK)
        }
        Err(e) => {
            eprintln!("recstitch: {}", shown(&e.to_string()));
            Ok(match e.kind {
                QueueErrorKind::Auth | QueueErrorKind::NotFound => EXIT_FAILED,
                _ => EXIT_FINDINGS,
            })
        }
    }
}

/// SIGTERM and SIGINT ask the worker to stop (a second one ends the
/// process at once, exit 1).
fn watch_signals(stop: &recstitch::io::Cancel) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        signal_hook::flag::register_conditional_shutdown(signal, 1, flag.clone())?;
        signal_hook::flag::register(signal, flag.clone())?;
    }
    let stop = stop.clone();
    std::thread::spawn(move || loop {
        if flag.load(Ordering::SeqCst) {
            stop.cancel();
            eprintln!("recstitch: stopping: no new message; the current work has its grace period");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    });
    Ok(())
}

/// The lines on stderr: NDJSON, or one text line per message.
struct Lines {
    json: bool,
}

impl Lines {
    fn ndjson<T: serde::Serialize>(&self, value: &T) {
        if let Ok(line) = serde_json::to_string(value) {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    }
}

impl Observer<WorkerEvent> for Lines {
    fn observe(&self, event: &WorkerEvent) {
        match event {
            WorkerEvent::Message(r) => self.message(r),
            WorkerEvent::Fetch(e) if self.json => self.ndjson(e),
            WorkerEvent::Batch(e) if self.json => self.ndjson(e),
            WorkerEvent::Note(text) => self.note(text),
            _ => {}
        }
    }
}

impl Lines {
    fn message(&self, r: &MessageReport) {
        if self.json {
            return self.ndjson(r);
        }
        let what = match (&r.call_id, &r.recording_id) {
            (Some(c), Some(k)) => format!("call {} recording {}", shown(c), shown(k)),
            _ => r
                .event_type
                .as_deref()
                .map(|t| shown(t).into_owned())
                .unwrap_or_default(),
        };
        let detail = r.error.as_deref().or(r.note.as_deref()).unwrap_or_default();
        let _ = writeln!(
            std::io::stderr().lock(),
            "recstitch: message {} (delivery {}): event {} {what}: {} in {:.1} s, {} bytes{}{}",
            shown(&r.message_id),
            r.dequeue_count,
            shown(r.event_id.as_deref().unwrap_or("-")),
            r.outcome.as_str(),
            r.seconds,
            r.bytes,
            if detail.is_empty() { "" } else { ": " },
            shown(detail)
        );
    }

    fn note(&self, text: &str) {
        if self.json {
            self.ndjson(&serde_json::json!({"event": "note", "message": text}));
        } else {
            let _ = writeln!(std::io::stderr().lock(), "recstitch: {}", shown(text));
        }
    }
}
