//! The archival worker (feature `worker`, on with the default `cli`
//! feature): from a completion event on an Azure Storage Queue to a
//! verified recording in the output folder or container.
//!
//! ```text
//! Event Grid ──(one event per message)──▶ Storage Queue ◀── workers (KEDA scales them)
//!
//! QueueClient::receive          lease a message (its visibility timeout); renewed while it works
//! message::event_of / classify  base64 or plain JSON; Event Grid or CloudEvents; one event
//! Worker::handle                RecordingFileStatusUpdated:
//!   fetch::Fetcher               chunks into a staging archive (resumable; chunk locks)
//!   batch::run_batch             stitch into the output (the recording's lock; skip when up to date)
//!   archival::verify_archived    the output's SHA-256, read back, equals its manifest's
//!   archival::delete_archived    --delete-after: the chunks from the service
//! QueueClient::delete           the message, once its work is done
//! ```
//!
//! Other event types are deleted with a note. A message that is not an
//! event, or whose work fails, is left to reappear when its lease runs
//! out; at [`WorkerOptions::max_dequeue`] deliveries it is moved to the
//! queue `NAME-poison` with the reason, and deleted. Delivery is at least
//! once and work is idempotent: an event whose recording is already
//! archived (verified) is deleted without fetching again, and two workers
//! on the same recording meet at its locks.
//!
//! The library is synchronous; from an async runtime, run
//! [`Worker::run`] or [`Worker::handle`] on a blocking thread
//! (`tokio::task::spawn_blocking`). [`Worker::handle`] works alone, for a
//! worker with a queue client or a loop of its own:
//!
//! ```no_run
//! use recstitch::remote::fetch::Credentials;
//! use recstitch::io::Cancel;
//! use recstitch::remote::worker::{message, Worker, WorkerOptions};
//! use recstitch::Quiet;
//!
//! let worker = Worker::new(Credentials::from_env()?, "archive-out".into(), WorkerOptions::default())?;
//! let text = std::fs::read_to_string("message.txt").unwrap(); // as the queue gave it
//! let event = message::event_of(&text, &Default::default()).expect("one event");
//! match worker.handle(&event, &Cancel::new(), &Quiet) {
//!     Ok(done) => println!("{:?}: {} bytes", done.outcome, done.bytes),
//!     Err(e) => eprintln!("left for a retry: {e}"),
//! }
//! # Ok::<(), recstitch::Error>(())
//! ```

pub mod message;
pub mod queue;
mod run;

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::batch::{run_batch, BatchOptions, Progress};
use crate::error::{Error, Result};
use crate::input::metadata::CompletionEvent;
use crate::io::{safe_name, Cancel};
use crate::observe::Observer;
use crate::output::report::Status;
use crate::remote::archival::{delete_archived, manifest_path, verify_archived, VerifyError};
use crate::remote::fetch::{Credentials, FetchOptions, FetchProgress, Fetcher};
use crate::{Archive, ScanOptions};
pub use message::{EventKind, MessageError};
pub use queue::{AccountError, QueueClient, QueueError, QueueErrorKind, QueueMessage, StorageAccount};
pub use run::{MessageReport, RunSummary};

/// Options for a [`Worker`]. `#[non_exhaustive]`: start from `Default`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerOptions {
    /// How chunks are fetched (its `cancel` is replaced for each message).
    pub fetch: FetchOptions,
    /// How recordings are stitched (its `cancel` is replaced for each message).
    pub batch: BatchOptions,
    /// The staging archive; `None`: a folder under the system's temporary
    /// directory, each event's part removed once its message is done.
    pub archive: Option<PathBuf>,
    /// After the output is verified, delete the chunks from the service.
    pub delete_after: bool,
    /// The lease on a message (default 60 s), renewed every third of it
    /// while its work goes on.
    pub visibility_timeout: std::time::Duration,
    /// Deliveries after which a message that still fails is moved to
    /// `NAME-poison` (default 5).
    pub max_dequeue: u32,
    /// Return once the queue has been empty (no message visible or leased)
    /// for [`WorkerOptions::empty_for`].
    pub until_empty: bool,
    /// How long the queue must stay empty (default 3 s).
    pub empty_for: std::time::Duration,
    /// The first wait when the queue has no visible message (default 1 s);
    /// without `until_empty` it doubles up to [`WorkerOptions::max_idle`].
    pub idle: std::time::Duration,
    /// The longest wait between polls of an idle queue (default 30 s).
    pub max_idle: std::time::Duration,
    /// After a stop is asked for, how long the current work may go on
    /// before it is stopped and its message made visible (default 20 s).
    pub grace: std::time::Duration,
    /// How long the queue service may keep failing before the run gives up
    /// (default 5 min).
    pub max_outage: std::time::Duration,
    /// Messages handled at once (default 1).
    pub jobs: usize,
    /// Asks the run to stop: no new message is taken (see [`WorkerOptions::grace`]).
    pub stop: Cancel,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        use std::time::Duration;
        WorkerOptions {
            fetch: FetchOptions::default(),
            batch: BatchOptions::default(),
            archive: None,
            delete_after: false,
            visibility_timeout: Duration::from_secs(60),
            max_dequeue: 5,
            until_empty: false,
            empty_for: Duration::from_secs(3),
            idle: Duration::from_secs(1),
            max_idle: Duration::from_secs(30),
            grace: Duration::from_secs(20),
            max_outage: Duration::from_secs(300),
            jobs: 1,
            stop: Cancel::default(),
        }
    }
}

/// What became of one event that was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// Fetched, stitched (or found up to date by the stitch) and verified now.
    Archived,
    /// Already archived and verified by an earlier delivery: nothing fetched.
    AlreadyArchived,
    /// Not a completion event: nothing to do.
    Ignored,
}

/// One event handled.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Handled {
    /// What became of it.
    pub outcome: Outcome,
    /// The event's id.
    pub event_id: Option<String>,
    /// The event's type.
    pub event_type: Option<String>,
    /// The call.
    pub call_id: Option<String>,
    /// The recording.
    pub recording_id: Option<String>,
    /// The stitched file.
    pub output: Option<String>,
    /// Its size.
    pub bytes: u64,
    /// Bytes received from the service.
    pub bytes_transferred: u64,
    /// Something to know (why an event was ignored, deletions kept).
    pub note: Option<String>,
}

/// Why the work for one event failed ([`Worker::handle`]): the message is
/// left to reappear, and set aside as poison after
/// [`WorkerOptions::max_dequeue`] deliveries. Running the work again is safe.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HandleError {
    /// The message is not one event that can be acted on.
    #[error(transparent)]
    Message(#[from] MessageError),
    /// The completion event's subject names no call.
    #[error("the event's subject names no call")]
    NoCall,
    /// The completion event's subject names no recording.
    #[error("the event's subject names no recording")]
    NoRecording,
    /// The event could not be written to the staging folder for the fetch.
    #[error(transparent)]
    StageEvent(serde_json::Error),
    /// The library failed: the staging folder, the fetch, the scan of the
    /// staging archive, or the work was cancelled.
    #[error(transparent)]
    Library(#[from] Error),
    /// A chunk of the recording could not be fetched.
    #[error("chunk {document_id} not fetched: {error}")]
    ChunkNotFetched {
        /// The chunk.
        document_id: String,
        /// Why, as the fetch report says it.
        error: String,
    },
    /// The event could not be fetched at all.
    #[error("event not fetched: {0}")]
    EventNotFetched(String),
    /// The fetched recording is not in the staging archive.
    #[error("recording {key} of call {call} is not in the staging archive")]
    NotStaged {
        /// The call.
        call: String,
        /// The recording.
        key: String,
    },
    /// The stitch reported no recording.
    #[error("the stitch reported nothing")]
    NothingStitched,
    /// The recording was not stitched (nor up to date).
    #[error("recording {key} {}: {why}", .status.as_str())]
    NotStitched {
        /// The recording.
        key: String,
        /// Its status in the stitch report.
        status: Status,
        /// Its error, or its first error findings (`code: message; …`).
        why: String,
    },
    /// The stitch reported no manifest for the recording.
    #[error("the stitch reported no manifest")]
    NoManifest,
    /// The stitched recording does not verify against its manifest.
    #[error(transparent)]
    Verify(#[from] VerifyError),
    /// `delete_after`: a chunk was kept on the service.
    #[error("chunk {document_id}: {reason}")]
    NotDeleted {
        /// The chunk.
        document_id: String,
        /// Why it was kept, or the DELETE failed.
        reason: String,
    },
}

/// What a worker reports while it runs, to an
/// [`Observer<WorkerEvent>`](crate::Observer) (the one observer shape;
/// [`Quiet`](crate::Quiet) ignores it all).
#[derive(Debug, Clone)]
pub enum WorkerEvent {
    /// One message done, one way or another.
    Message(MessageReport),
    /// Progress of the fetch of a message's chunks.
    Fetch(FetchProgress),
    /// Progress of the stitch.
    Batch(Progress),
    /// Something to know (a queue error that is retried, a stop asked for).
    Note(String),
}

/// The worker: fetches, stitches and verifies the recordings that
/// completion events announce. [`Worker::run`] drives it from a queue.
pub struct Worker {
    credentials: Credentials,
    out: PathBuf,
    options: WorkerOptions,
    stage: PathBuf,
    /// The default staging folder, removed when the worker is dropped.
    _temp: Option<tempfile::TempDir>,
}

impl Worker {
    /// A worker writing into `out` (a folder, or a mounted object-store
    /// URL), fetching with `credentials`. `Err` when the staging folder
    /// cannot be made.
    pub fn new(credentials: Credentials, out: PathBuf, options: WorkerOptions) -> Result<Worker> {
        let (stage, temp) = match &options.archive {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
                (dir.clone(), None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("recstitch-worker-")
                    .tempdir()
                    .map_err(|e| Error::io(std::env::temp_dir(), e))?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        Ok(Worker {
            credentials,
            out,
            options,
            stage,
            _temp: temp,
        })
    }

    /// The options.
    pub fn options(&self) -> &WorkerOptions {
        &self.options
    }

    /// Handles one event (as [`message::event_of`] gives it): a completion
    /// event's recording fetched into the staging archive, stitched into the
    /// output, verified (the output's SHA-256 read back equals its
    /// manifest's) and, with [`WorkerOptions::delete_after`], deleted from
    /// the service; any other event ignored with a note. `cancel` stops the
    /// work between reads (partial downloads stay for the next attempt).
    /// `Err` says why the work failed; running it again is safe.
    pub fn handle(
        &self,
        event: &Value,
        cancel: &Cancel,
        observer: &dyn Observer<WorkerEvent>,
    ) -> std::result::Result<Handled, HandleError> {
        let limits = &self.options.fetch.limits;
        let completion = match message::classify(event, limits)? {
            EventKind::Other { event_type, note } => {
                return Ok(Handled {
                    outcome: Outcome::Ignored,
                    event_id: event.get("id").and_then(Value::as_str).map(str::to_owned),
                    event_type: Some(event_type),
                    call_id: None,
                    recording_id: None,
                    output: None,
                    bytes: 0,
                    bytes_transferred: 0,
                    note: Some(note),
                })
            }
            EventKind::Completion(e) => e,
        };
        let call = completion.call_id.clone().ok_or(HandleError::NoCall)?;
        let key = completion.recording_id.clone().ok_or(HandleError::NoRecording)?;
        let chunks: Vec<String> = completion.chunks.iter().map(|c| c.document_id.clone()).collect();
        let mut done = Handled {
            outcome: Outcome::AlreadyArchived,
            event_id: completion.id.clone(),
            event_type: crate::input::metadata::event_type(event).map(str::to_owned),
            call_id: Some(call.clone()),
            recording_id: Some(key.clone()),
            output: None,
            bytes: 0,
            bytes_transferred: 0,
            note: None,
        };
        let fetcher = self.fetcher(cancel);
        // Delivered before (at least once): verified already, nothing to fetch.
        // Named after the recording's start: the event's here, which is
        // chunk 0's start (else the recording is simply fetched and found
        // up to date).
        let at = manifest_path(&call, &key, completion.recording_start, &self.out);
        if let Ok(manifest) = verify_archived(&self.options.batch.storage, &at, &chunks) {
            done.bytes = manifest.output.bytes;
            done.output = Some(output_of(&at, &manifest));
            if self.options.delete_after {
                done.note =
                    deletions_note(&fetcher.delete_chunks(completion.recording_id.as_deref(), &completion.chunks));
            }
            return Ok(done);
        }
        let stage = self.stage_of(&completion);
        let result = self.archive(event, &completion, &fetcher, &stage, cancel, observer, &mut done);
        if result.is_ok() && self.options.archive.is_none() {
            let _ = std::fs::remove_dir_all(&stage);
        }
        result.map(|()| done)
    }

    /// A fetcher whose work `cancel` stops.
    fn fetcher(&self, cancel: &Cancel) -> Fetcher {
        let mut options = self.options.fetch.clone();
        options.cancel = cancel.clone();
        Fetcher::new(self.credentials.clone(), options)
    }

    /// The event's own staging folder (`STAGE/<event id>/`), so that a
    /// redelivery resumes its downloads and the archive it is stitched
    /// from holds this recording only.
    fn stage_of(&self, event: &CompletionEvent) -> PathBuf {
        let name = event.id.as_deref().or(event.recording_id.as_deref()).unwrap_or("event");
        self.stage.join(format!("event-{}", safe_name(name)))
    }

    /// Fetch, stitch, verify and (with `delete_after`) delete one recording.
    #[allow(clippy::too_many_arguments)]
    fn archive(
        &self,
        event: &Value,
        completion: &CompletionEvent,
        fetcher: &Fetcher,
        stage: &Path,
        cancel: &Cancel,
        observer: &dyn Observer<WorkerEvent>,
        done: &mut Handled,
    ) -> std::result::Result<(), HandleError> {
        let call = done.call_id.clone().unwrap_or_default();
        let key = done.recording_id.clone().unwrap_or_default();
        // The event goes to the fetch as a file, beside (not inside) the archive.
        let mut incoming = tempfile::Builder::new()
            .prefix(".incoming-")
            .suffix(".json")
            .tempfile_in(&self.stage)
            .map_err(|e| Error::io(&self.stage, e))?;
        serde_json::to_writer(incoming.as_file_mut(), event).map_err(HandleError::StageEvent)?;
        let path = incoming.path().to_path_buf();
        let fetched = fetcher.fetch_with(std::slice::from_ref(&path), stage, &|e: &FetchProgress| {
            observer.observe(&WorkerEvent::Fetch(e.clone()))
        })?;
        drop(incoming);
        done.bytes_transferred = fetched.bytes_transferred;
        if let Some(c) = fetched.failed().next() {
            return Err(HandleError::ChunkNotFetched {
                document_id: c.document_id.clone(),
                error: c.error.clone().unwrap_or_else(|| "unknown error".into()),
            });
        }
        if let Some(f) = fetched.failed_events.first() {
            return Err(HandleError::EventNotFetched(f.error.clone()));
        }
        cancel.check()?;
        let mut archive = Archive::scan(stage, &ScanOptions::default())?;
        archive.recordings.retain(|r| r.call_id == call && r.key == key);
        if archive.recordings.is_empty() {
            return Err(HandleError::NotStaged { call, key });
        }
        let mut batch = self.options.batch.clone();
        batch.cancel = cancel.clone();
        batch.shard = None;
        let stitched = run_batch(&archive, &self.out, &batch, &|e: &Progress| {
            observer.observe(&WorkerEvent::Batch(e.clone()))
        });
        let report = stitched.recordings.first().ok_or(HandleError::NothingStitched)?;
        if !matches!(report.status, Status::Stitched | Status::Skipped) {
            return Err(stitch_failure(report));
        }
        let chunks: Vec<String> = completion.chunks.iter().map(|c| c.document_id.clone()).collect();
        let at = report
            .manifest
            .as_deref()
            .map(Path::new)
            .ok_or(HandleError::NoManifest)?;
        let manifest = verify_archived(&self.options.batch.storage, at, &chunks)?;
        // Skipped: another worker stitched the same inputs first (under the recording's lock).
        done.outcome = if report.status == Status::Stitched {
            Outcome::Archived
        } else {
            Outcome::AlreadyArchived
        };
        done.bytes = manifest.output.bytes;
        done.output = Some(output_of(at, &manifest));
        if self.options.delete_after {
            let deletions = delete_archived(fetcher, &fetched, &stitched, &self.options.batch.storage, &self.out);
            if let Some(d) = deletions.iter().find(|d| !d.deleted) {
                return Err(HandleError::NotDeleted {
                    document_id: d.document_id.clone(),
                    reason: d.reason.clone(),
                });
            }
            done.note = deletions_note(&deletions);
        }
        Ok(())
    }
}

/// Why a recording was not stitched: its error, or its error findings.
fn stitch_failure(report: &crate::RecordingReport) -> HandleError {
    let why = match &report.error {
        Some(e) => e.clone(),
        None => {
            let findings: Vec<String> = report
                .findings
                .iter()
                .filter(|f| f.severity == crate::Severity::Error)
                .take(3)
                .map(|f| format!("{}: {}", f.code, f.message))
                .collect();
            findings.join("; ")
        }
    };
    HandleError::NotStitched {
        key: report.recording_key.clone(),
        status: report.status,
        why,
    }
}

fn deletions_note(deletions: &[crate::remote::fetch::Deletion]) -> Option<String> {
    let deleted = deletions.iter().filter(|d| d.deleted).count();
    let kept: Vec<String> = deletions
        .iter()
        .filter(|d| !d.deleted)
        .map(|d| format!("{}: {}", d.document_id, d.reason))
        .collect();
    Some(if kept.is_empty() {
        format!("{deleted} chunk(s) deleted from the service")
    } else {
        format!("{deleted} chunk(s) deleted from the service; kept: {}", kept.join("; "))
    })
}

/// The stitched file beside the manifest at `at`, as a path for reports.
fn output_of(at: &Path, manifest: &crate::Manifest) -> String {
    at.with_file_name(&manifest.output.path).display().to_string()
}
