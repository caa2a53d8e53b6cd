//! Downloading recordings from the service before they expire (feature
//! `fetch`, on with the default `cli` feature).
//!
//! From completion events to an archive folder that
//! [`Archive::scan`](crate::Archive::scan) reads:
//!
//! ```text
//! ARCHIVE/<callId>/event-<eventId>.json    the event, saved first: the authority on the chunks
//! ARCHIVE/<callId>/<documentId>.json       each chunk's metadata
//! ARCHIVE/<callId>/<documentId>.mp4        each chunk's media (.mp3, .wav: the metadata's format)
//! ```
//!
//! Each chunk comes from its event's `contentLocation` / `metadataLocation`
//! when the event has them, else from `{endpoint}/recording/download/{documentId}`
//! and `…/metadata`. Requests are signed ([`auth`]). Media is downloaded in
//! up to [`FetchOptions::parts`] ranged parts at once, into a hidden
//! `.part` file that a rerun resumes (`download.rs`), and renamed to its
//! final name only when complete and checked; an HTML page, a JSON error
//! body or 0 bytes is never saved as a chunk. Transient failures
//! (connection errors, timeouts, 408, 429, 5xx, a body cut short) are
//! retried with exponential backoff and jitter, honouring `Retry-After`;
//! 401/403 stops the recording's other chunks. Events are fetched oldest
//! first and one older than [`FetchOptions::old_event_hours`] is warned
//! about: the service keeps recordings for 24 hours.
//!
//! ```no_run
//! use recstitch::remote::fetch::{Credentials, FetchOptions, Fetcher};
//!
//! let fetcher = Fetcher::new(Credentials::from_env()?, FetchOptions::default());
//! let report = fetcher.fetch(&["event.json".into()], "archive".as_ref())?;
//! for chunk in report.chunks.iter().filter(|c| c.error.is_some()) {
//!     eprintln!("{}: {}", chunk.document_id, chunk.error.as_deref().unwrap_or_default());
//! }
//! # Ok::<(), recstitch::Error>(())
//! ```

pub mod auth;
mod download;
mod events;
mod http;
pub mod trust;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Serialize;

pub use auth::{Credentials, CredentialsError, Location, UrlError};
pub use events::{FailedEvent, SkippedEvent};
pub use trust::{HostPattern, HostPatternError, TrustedHosts, Untrusted, TRUSTED_HOSTS_VAR};

use crate::error::{Error, Result};
use crate::input::metadata::{CompletionEvent, EventChunk, MediaFormat, WallClock};
use crate::io::{check_out_dir, safe_name, write_atomic, Cancel, FileLock};
use crate::limits::Limits;
use crate::observe::{Observer, Quiet};
use download::{ChunkError, Ctx, LocationError};
use http::{Client, Failure, Method};

/// Options for a [`Fetcher`]. `#[non_exhaustive]`: start from `Default`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FetchOptions {
    /// Chunks downloaded at once (default 4; at least 1).
    pub jobs: usize,
    /// Ranged parts of one chunk's media downloaded at once (default 4).
    pub parts: usize,
    /// The smallest part, and the size of the first request (default 8 MiB):
    /// media under twice this size comes in one part.
    pub part_size: u64,
    /// Connecting (default 30 s).
    pub connect_timeout: Duration,
    /// Sending a request and receiving its response's headers (default 60 s).
    pub response_timeout: Duration,
    /// The stall window (default 60 s): a transfer that receives no byte
    /// for this long, or fewer than [`FetchOptions::min_rate`] bytes per
    /// second averaged over it, is stalled: abandoned and resumed like a
    /// dropped connection.
    pub stall_timeout: Duration,
    /// The slowest transfer accepted, in bytes per second averaged over the
    /// stall window (default 16 KiB/s; 0: only a silent connection stalls).
    pub min_rate: u64,
    /// With [`FetchOptions::deadline_rate`], the time one chunk (its
    /// metadata and media, retries included) may take: this many stall
    /// windows (default 12: 12 minutes with the default window) ...
    pub deadline_windows: u32,
    /// ... plus the media's size at this rate, in bytes per second (default
    /// 256 KiB/s: a 1.5 GB chunk gets 12 min + 95 min). A chunk past its
    /// deadline fails; a rerun resumes it.
    pub deadline_rate: u64,
    /// The hosts besides the endpoint's that credentials may go to
    /// (default: the service's storage hosts; [`TrustedHosts::from_env`]
    /// adds [`TRUSTED_HOSTS_VAR`]'s).
    pub trusted_hosts: TrustedHosts,
    /// Retries of a transfer after transient failures in a row (default 8;
    /// an attempt that moved at least 1 MiB starts the count again).
    pub retries: u32,
    /// The first wait before a retry (default 1 s), doubled each time, with
    /// jitter (half of it random).
    pub backoff: Duration,
    /// The longest backoff (default 60 s).
    pub max_backoff: Duration,
    /// The longest `Retry-After` honoured (default 120 s).
    pub max_retry_after: Duration,
    /// The largest media accepted (default 64 GiB; chunks are ~1.5 GB).
    pub max_chunk_bytes: u64,
    /// How often a part's progress is synced and recorded (default 8 MiB).
    pub checkpoint_bytes: u64,
    /// Events older than this many hours are warned about (default 20; the
    /// service keeps recordings for 24).
    pub old_event_hours: f64,
    /// Budgets for the event and metadata documents.
    pub limits: Limits,
    /// Cancels the fetch between reads; partial downloads stay for a rerun.
    pub cancel: Cancel,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            jobs: 4,
            parts: 4,
            part_size: 8 << 20,
            connect_timeout: Duration::from_secs(30),
            response_timeout: Duration::from_secs(60),
            stall_timeout: Duration::from_secs(60),
            min_rate: 16 << 10,
            deadline_windows: 12,
            deadline_rate: 256 << 10,
            trusted_hosts: TrustedHosts::default(),
            retries: 8,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(120),
            max_chunk_bytes: 64 << 30,
            checkpoint_bytes: 8 << 20,
            old_event_hours: 20.0,
            limits: Limits::default(),
            cancel: Cancel::default(),
        }
    }
}

/// What a fetch reports while it runs, to an [`Observer<FetchProgress>`]
/// (NDJSON with `--progress json`).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum FetchProgress {
    /// The fetch starts: this many events and chunks.
    #[serde(rename_all = "camelCase")]
    Started {
        /// Completion events to fetch.
        events: usize,
        /// Chunks they list.
        chunks: usize,
    },
    /// A chunk's media transfer starts (or resumes) with its size known.
    #[serde(rename_all = "camelCase")]
    ChunkStarted {
        /// The chunk.
        document_id: String,
        /// Its media's size.
        bytes: u64,
        /// Bytes already there from an earlier run.
        already: u64,
    },
    /// Bytes arrived (reported per MiB or so).
    #[serde(rename_all = "camelCase")]
    Bytes {
        /// The chunk.
        document_id: String,
        /// How many, since the last report for this transfer.
        bytes: u64,
    },
    /// A transient failure; the transfer is tried again after a wait.
    #[serde(rename_all = "camelCase")]
    Retrying {
        /// The chunk.
        document_id: String,
        /// Retries so far.
        attempt: u32,
        /// The wait.
        delay_ms: u64,
        /// What failed.
        reason: String,
    },
    /// A chunk is done, one way or the other.
    #[serde(rename_all = "camelCase")]
    ChunkFinished {
        /// The chunk.
        document_id: String,
        /// `fetched`, `upToDate` or `failed`.
        status: ChunkStatus,
        /// Bytes received for it.
        bytes_transferred: u64,
        /// Why it failed.
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// Something to know (an old event, a skipped event).
    #[serde(rename_all = "camelCase")]
    Warning {
        /// What.
        message: String,
    },
    /// The fetch is over.
    #[serde(rename_all = "camelCase")]
    Finished {
        /// Chunks fetched or already complete.
        complete: usize,
        /// Chunks that could not be fetched.
        failed: usize,
        /// Bytes received.
        bytes_transferred: u64,
    },
}

/// What became of one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ChunkStatus {
    /// Downloaded by this fetch (perhaps resuming an earlier one).
    Fetched,
    /// Already complete in the archive; not downloaded again.
    UpToDate,
    /// Not fetched: see `error`.
    Failed,
}

/// One chunk of a [`FetchReport`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkReport {
    /// The chunk's document id.
    pub document_id: String,
    /// Its index in the recording.
    pub index: u32,
    /// The call.
    pub call_id: String,
    /// The recording (from the event's subject), when known.
    pub recording_id: Option<String>,
    /// The event that lists it.
    pub event_id: Option<String>,
    /// What became of it.
    pub status: ChunkStatus,
    /// The media file (when fetched or up to date).
    pub media: Option<PathBuf>,
    /// The metadata file (when fetched or up to date).
    pub metadata: Option<PathBuf>,
    /// The media's size.
    pub bytes: Option<u64>,
    /// Bytes received for it by this fetch.
    pub bytes_transferred: u64,
    /// Whether an earlier, interrupted download was resumed.
    pub resumed: bool,
    /// Retries after transient failures.
    pub retries: u32,
    /// For a failure: `authentication` (401/403), `untrusted` (a location
    /// on a host credentials may not go to: nothing was sent), `aborted`
    /// (another chunk of the recording failed authentication), `cancelled`
    /// or `failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Something to know about a chunk that did not fail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Where the service deletes it (`--delete-after`); not reported.
    #[serde(skip)]
    pub delete_location: Option<String>,
}

/// One completion event of a [`FetchReport`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventReport {
    /// The event's id.
    pub id: Option<String>,
    /// The file it came from.
    pub source: PathBuf,
    /// Where it was saved in the archive.
    pub saved: PathBuf,
    /// The call.
    pub call_id: String,
    /// The recording.
    pub recording_id: Option<String>,
    /// When the event was published.
    pub event_time: Option<WallClock>,
    /// Its age when the fetch started, in hours.
    pub age_hours: Option<f64>,
    /// The chunks it lists.
    pub chunks: Vec<String>,
}

/// Version of the fetch report's format; [`FETCH_REPORT_SCHEMA`] describes it.
pub const FETCH_REPORT_SCHEMA_VERSION: u32 = 1;
/// The JSON Schema of [`FetchReport`] as `fetch --json` prints it
/// (`schemas/fetch-report.v1.json`; `recstitch schema fetch-report`).
pub const FETCH_REPORT_SCHEMA: &str = include_str!("../../../schemas/fetch-report.v1.json");

/// What a fetch did, chunk by chunk.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchReport {
    /// [`FETCH_REPORT_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The archive folder.
    pub archive: PathBuf,
    /// The completion events fetched, oldest first.
    pub events: Vec<EventReport>,
    /// Events not fetched (other types, the same event twice).
    pub skipped: Vec<SkippedEvent>,
    /// Event files that could not be read or parsed, and events that
    /// could not be laid out in the archive: nothing of them was fetched.
    pub failed_events: Vec<FailedEvent>,
    /// Every chunk the events list, in the order fetched.
    pub chunks: Vec<ChunkReport>,
    /// Warnings (events close to expiry).
    pub warnings: Vec<String>,
    /// Bytes received in all.
    pub bytes_transferred: u64,
}

impl FetchReport {
    /// Whether every event was read and every chunk is in the archive
    /// (fetched or up to date).
    pub fn all_fetched(&self) -> bool {
        self.failed_events.is_empty() && self.chunks.iter().all(|c| c.status != ChunkStatus::Failed)
    }

    /// The chunks that could not be fetched.
    pub fn failed(&self) -> impl Iterator<Item = &ChunkReport> {
        self.chunks.iter().filter(|c| c.status == ChunkStatus::Failed)
    }
}

/// Downloads the chunks of completion events into an archive folder.
pub struct Fetcher {
    client: Client,
    options: FetchOptions,
}

/// One chunk to fetch.
struct Task {
    event: usize,
    document_id: String,
    index: u32,
    dir: PathBuf,
    media: std::result::Result<Location, LocationError>,
    metadata: std::result::Result<Location, LocationError>,
    delete_location: Option<String>,
}

impl Fetcher {
    /// A fetcher with these credentials and options.
    pub fn new(credentials: Credentials, options: FetchOptions) -> Fetcher {
        Fetcher {
            client: Client::new(credentials, &options),
            options,
        }
    }

    /// The options in force.
    pub fn options(&self) -> &FetchOptions {
        &self.options
    }

    /// [`Fetcher::fetch_with`] without progress.
    pub fn fetch(&self, events: &[PathBuf], archive: &Path) -> Result<FetchReport> {
        self.fetch_with(events, archive, &Quiet)
    }

    /// Fetches every chunk of the completion events in `events` (files, or
    /// folders of them) into `archive`.
    ///
    /// `Err` only when the fetch could not start: a folder without any
    /// event file, an archive folder that cannot be written. An event file
    /// that cannot be read or parsed, or an event that cannot be laid out
    /// in the archive, is in [`FetchReport::failed_events`] and the other
    /// events are fetched; a chunk that could not be fetched is `failed` in
    /// the report, with the reason.
    pub fn fetch_with(
        &self,
        events: &[PathBuf],
        archive: &Path,
        observer: &dyn Observer<FetchProgress>,
    ) -> Result<FetchReport> {
        let inputs = events::read_inputs(events, &self.options.limits)?;
        check_out_dir(archive)?;
        let now = SystemTime::now();
        let mut warnings = Vec::new();
        for s in &inputs.skipped {
            observer.observe(&FetchProgress::Warning {
                message: format!("{}{}: skipped: {}", s.source.display(), position(s.position), s.reason),
            });
        }
        let mut failed_events = inputs.failed;
        let mut incoming = Vec::new();
        let mut reports = Vec::new();
        let mut tasks = Vec::new();
        for inc in inputs.events {
            let (dir, saved) = match lay_out(&inc, archive) {
                Ok(laid) => laid,
                Err(e) => {
                    failed_events.push(FailedEvent {
                        source: inc.source.clone(),
                        position: inc.position,
                        id: inc.event.id.clone(),
                        error: e.to_string(),
                    });
                    continue;
                }
            };
            let (report, warning) = self.plan_event(&inc, dir, saved, incoming.len(), now, &mut tasks);
            if let Some(message) = warning {
                observer.observe(&FetchProgress::Warning {
                    message: message.clone(),
                });
                warnings.push(message);
            }
            reports.push(report);
            incoming.push(inc);
        }
        for f in &failed_events {
            observer.observe(&FetchProgress::Warning {
                message: format!(
                    "{}{}: not fetched: {}",
                    f.source.display(),
                    position(f.position),
                    f.error
                ),
            });
        }
        observer.observe(&FetchProgress::Started {
            events: incoming.len(),
            chunks: tasks.len(),
        });
        let chunks = self.run_tasks(&incoming, &tasks, observer);
        let report = FetchReport {
            schema_version: FETCH_REPORT_SCHEMA_VERSION,
            archive: archive.to_path_buf(),
            events: reports,
            skipped: inputs.skipped,
            failed_events,
            bytes_transferred: chunks.iter().map(|c| c.bytes_transferred).sum(),
            chunks,
            warnings,
        };
        observer.observe(&FetchProgress::Finished {
            complete: report.chunks.len() - report.failed().count(),
            failed: report.failed().count(),
            bytes_transferred: report.bytes_transferred,
        });
        Ok(report)
    }

    /// The tasks of one event's chunks (appended to `tasks`), its report,
    /// and a warning when it is old.
    fn plan_event(
        &self,
        inc: &events::Incoming,
        dir: PathBuf,
        saved: PathBuf,
        event: usize,
        now: SystemTime,
        tasks: &mut Vec<Task>,
    ) -> (EventReport, Option<String>) {
        let e = &inc.event;
        let age_hours = e.event_time.or(e.recording_start).map(|t| hours_since(t, now));
        let warning = age_hours.filter(|a| *a > self.options.old_event_hours).map(|age| {
            format!(
                "event {} (recording {}) is {age:.1} hours old: the service keeps recordings for 24 hours, its chunks may be gone",
                e.id.as_deref().unwrap_or("without id"),
                e.recording_id.as_deref().unwrap_or("?")
            )
        });
        let mut chunks = e.chunks.clone();
        chunks.sort_by_key(|c| c.index);
        for c in &chunks {
            tasks.push(Task {
                event,
                document_id: c.document_id.clone(),
                index: c.index,
                dir: dir.clone(),
                media: self.location(c.content_location.as_deref(), &c.document_id, false),
                metadata: self.location(c.metadata_location.as_deref(), &c.document_id, true),
                delete_location: c.delete_location.clone(),
            });
        }
        let report = EventReport {
            id: e.id.clone(),
            source: inc.source.clone(),
            saved,
            call_id: call_id_of(e),
            recording_id: e.recording_id.clone(),
            event_time: e.event_time,
            age_hours,
            chunks: chunks.iter().map(|c| c.document_id.clone()).collect(),
        };
        (report, warning)
    }

    /// Where a chunk's media or metadata is: the event's location, else the
    /// endpoint's documented download path; on a trusted host
    /// ([`TrustedHosts`]), else nothing is ever sent there.
    fn location(
        &self,
        given: Option<&str>,
        document_id: &str,
        metadata: bool,
    ) -> std::result::Result<Location, LocationError> {
        let what = if metadata {
            "metadataLocation"
        } else {
            "contentLocation"
        };
        let location = match given {
            Some(url) => Location::parse(url).map_err(|source| LocationError::Unusable { what, source })?,
            None => {
                let endpoint = self
                    .client
                    .credentials()
                    .endpoint()
                    .ok_or(LocationError::NoEndpoint { what })?;
                let mut segments = vec!["recording", "download", document_id];
                if metadata {
                    segments.push("metadata");
                }
                endpoint.join(&segments)
            }
        };
        self.client
            .check_trusted(&location)
            .map_err(|source| LocationError::Untrusted { what, source })?;
        Ok(location)
    }

    /// Runs the chunks on `jobs` threads, in order; the reports in task order.
    fn run_tasks(
        &self,
        incoming: &[events::Incoming],
        tasks: &[Task],
        observer: &dyn Observer<FetchProgress>,
    ) -> Vec<ChunkReport> {
        let aborts: Vec<AtomicBool> = incoming.iter().map(|_| AtomicBool::new(false)).collect();
        let results: Mutex<Vec<Option<ChunkReport>>> = Mutex::new(vec![None; tasks.len()]);
        let next = AtomicUsize::new(0);
        let workers = self.options.jobs.clamp(1, tasks.len().max(1));
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(task) = tasks.get(i) else { break };
                    let event = &incoming[task.event].event;
                    let report = self.run_task(task, event, &aborts[task.event], observer);
                    observer.observe(&FetchProgress::ChunkFinished {
                        document_id: report.document_id.clone(),
                        status: report.status,
                        bytes_transferred: report.bytes_transferred,
                        error: report.error.clone(),
                    });
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(report);
                });
            }
        });
        results
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .into_iter()
            .flatten()
            .collect()
    }

    /// One chunk: its metadata, then its media, under the chunk's lock (two
    /// fetches of the same event at once take turns; the second finds the
    /// files complete).
    fn run_task(
        &self,
        task: &Task,
        event: &CompletionEvent,
        abort: &AtomicBool,
        observer: &dyn Observer<FetchProgress>,
    ) -> ChunkReport {
        let mut report = ChunkReport {
            document_id: task.document_id.clone(),
            index: task.index,
            call_id: event.call_id.clone().unwrap_or_else(|| "unknown".into()),
            recording_id: event.recording_id.clone(),
            event_id: event.id.clone(),
            status: ChunkStatus::Failed,
            media: None,
            metadata: None,
            bytes: None,
            bytes_transferred: 0,
            resumed: false,
            retries: 0,
            error_kind: None,
            error: None,
            note: None,
            delete_location: task.delete_location.clone(),
        };
        if abort.load(Ordering::SeqCst) {
            return fail(report, ChunkError::Aborted);
        }
        let (media_loc, meta_loc) = match (&task.media, &task.metadata) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return fail(report, e.clone().into()),
        };
        let name = safe_name(&task.document_id);
        let meta_path = task.dir.join(format!("{name}.json"));
        let _lock = match FileLock::acquire(&task.dir.join(format!(".{name}.lock"))) {
            Ok(l) => l,
            Err(e) => return fail(report, e.into()),
        };
        let mut ctx = Ctx {
            client: &self.client,
            options: &self.options,
            observer,
            abort,
            document_id: &task.document_id,
            format: MediaFormat::Mp4,
            deadline: download::Deadline::start(&self.options),
        };
        let meta = match download::metadata(&ctx, meta_loc, &meta_path) {
            Ok(t) => t,
            Err(e) => return fail(report, e),
        };
        // The media's format (and so its extension) is the metadata's.
        ctx.format = crate::input::metadata::read_metadata(&meta_path, crate::Limits::default().max_json_bytes)
            .ok()
            .and_then(|m| m.recording.media_format())
            .unwrap_or(MediaFormat::Mp4);
        let media_path = task.dir.join(format!("{name}.{}", ctx.format.extension()));
        let media = match download::media(&ctx, media_loc, &media_path) {
            Ok(t) => t,
            Err(e) => {
                report.bytes_transferred = meta.transferred;
                return fail(report, with_what(e, "media"));
            }
        };
        report.status = if media.up_to_date && meta.up_to_date {
            ChunkStatus::UpToDate
        } else {
            ChunkStatus::Fetched
        };
        report.media = Some(media_path);
        report.metadata = Some(meta_path);
        report.bytes = Some(media.size);
        report.bytes_transferred = media.transferred.saturating_add(meta.transferred);
        report.resumed = media.resumed;
        report.retries = media.retries.saturating_add(meta.retries);
        report.note = media.note.or(meta.note);
        report
    }

    /// Deletes from the service the chunks `chunks` of recording
    /// `recording_id`, which the caller found safely archived (`--delete-after`:
    /// see [`crate::remote::archival`]), each at its own `deleteLocation` only: a
    /// trusted host ([`FetchOptions::trusted_hosts`]), and a path naming that
    /// chunk's object (`…/v1/objects/{documentId}`). A chunk without a
    /// `deleteLocation`, or whose location fails either check, is kept, with
    /// the reason, and nothing is sent for it. One [`Deletion`] per chunk,
    /// in order.
    pub fn delete_chunks(&self, recording_id: Option<&str>, chunks: &[EventChunk]) -> Vec<Deletion> {
        chunks
            .iter()
            .map(|c| {
                let (deleted, reason) = self.delete_one(c.delete_location.as_deref(), &c.document_id);
                Deletion {
                    document_id: c.document_id.clone(),
                    recording_id: recording_id.map(str::to_owned),
                    deleted,
                    reason,
                }
            })
            .collect()
    }

    /// Deletes one archived chunk at its `deleteLocation`: whether it was
    /// deleted, and what happened.
    fn delete_one(&self, delete_location: Option<&str>, document_id: &str) -> (bool, String) {
        let Some(url) = delete_location else {
            return (
                false,
                "kept on the service: the event gives no deleteLocation".to_string(),
            );
        };
        match self.deletable(url, document_id) {
            Err(why) => (false, format!("kept on the service: {why}; nothing was sent")),
            Ok(location) => match self.delete(&location, document_id) {
                Ok(()) => (true, "deleted from the service".to_string()),
                Err(why) => (false, format!("deleting failed: {why}")),
            },
        }
    }

    /// The `deleteLocation` of chunk `document_id`, when a DELETE may go
    /// there: on a trusted host, and naming that chunk's own object
    /// (`…/v1/objects/{documentId}`, as the service gives it); else why not.
    fn deletable(&self, url: &str, document_id: &str) -> std::result::Result<Location, DeleteError> {
        let location = Location::parse(url).map_err(DeleteError::Unusable)?;
        self.client.check_trusted(&location).map_err(DeleteError::Untrusted)?;
        let path = location.path_and_query().split('?').next().unwrap_or_default();
        let segments: Vec<&str> = path.trim_end_matches('/').rsplit('/').take(3).collect();
        let named = segments.first().map(|s| auth::percent_decode(s)).unwrap_or_default();
        if segments.get(1..3) != Some(&["objects", "v1"][..]) || named != document_id {
            return Err(DeleteError::OtherObject {
                url: location.url(),
                document_id: document_id.to_string(),
            });
        }
        Ok(location)
    }

    /// One signed DELETE, retried on transient failures.
    fn delete(&self, location: &Location, document_id: &str) -> std::result::Result<(), DeleteError> {
        let mut attempts = http::Attempts::new(&self.options);
        loop {
            match self.client.send(Method::Delete, location, None) {
                Ok(_) => return Ok(()),
                Err(Failure::Transient { why, retry_after }) => match attempts.next_delay(retry_after) {
                    Some(d) => http::sleep(d, &self.options.cancel, &|| false),
                    None => {
                        return Err(DeleteError::GaveUp {
                            document_id: document_id.to_string(),
                            why,
                        })
                    }
                },
                Err(other) => return Err(DeleteError::Refused(other)),
            }
        }
    }
}

/// Why a chunk is kept on the service (`deleteLocation` not used), or its
/// DELETE failed.
#[derive(Debug, thiserror::Error)]
enum DeleteError {
    /// The `deleteLocation` is not an `http(s)` URL that may be used.
    #[error("the deleteLocation is not usable: {0}")]
    Unusable(UrlError),
    /// The `deleteLocation` is on a host credentials may not go to.
    #[error("the deleteLocation's {0}")]
    Untrusted(Untrusted),
    /// The `deleteLocation` names another object than the chunk's own.
    #[error("the deleteLocation {url} does not name this chunk's object (…/v1/objects/{document_id})")]
    OtherObject { url: String, document_id: String },
    /// The DELETE kept failing in ways worth another attempt: the last one.
    #[error("{document_id}: gave up: {why}")]
    GaveUp { document_id: String, why: String },
    /// The service refused the DELETE.
    #[error("{}", .0.message())]
    Refused(Failure),
}

/// `report` of a chunk that failed with `e`: its error kind and message.
fn fail(mut report: ChunkReport, e: ChunkError) -> ChunkReport {
    report.error_kind = Some(e.kind().into());
    report.error = Some(e.to_string());
    report
}

/// What `--delete-after` did with one chunk ([`Fetcher::delete_chunks`]).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deletion {
    /// The chunk.
    pub document_id: String,
    /// Its recording.
    pub recording_id: Option<String>,
    /// Whether the service deleted it.
    pub deleted: bool,
    /// What happened, or why it was kept.
    pub reason: String,
}

fn with_what(e: ChunkError, what: &'static str) -> ChunkError {
    download::with_context(e, what)
}

/// `[3]` for an event at position 3 of its file's array.
fn position(p: Option<usize>) -> String {
    p.map(|p| format!("[{p}]")).unwrap_or_default()
}

fn call_id_of(e: &CompletionEvent) -> String {
    e.call_id.clone().unwrap_or_else(|| "unknown".into())
}

/// Where an event's chunks go (`ARCHIVE/<callId>/`, a real folder, not a
/// link) and where the event itself is saved (`event-<eventId>.json`,
/// saved first); names too long for a file system are shortened
/// ([`safe_name`]).
fn lay_out(inc: &events::Incoming, archive: &Path) -> Result<(PathBuf, PathBuf)> {
    let e = &inc.event;
    let dir = archive.join(safe_name(&call_id_of(e)));
    match std::fs::symlink_metadata(&dir) {
        Ok(m) if !m.is_dir() => {
            return Err(Error::io(
                &dir,
                std::io::Error::other("not a folder (a file or a symbolic link): not followed; remove it"),
            ))
        }
        Ok(_) => {}
        Err(_) => std::fs::create_dir_all(&dir).map_err(|err| Error::io(&dir, err))?,
    }
    let name =
        e.id.clone()
            .or_else(|| e.recording_id.clone())
            .or_else(|| e.chunks.first().map(|c| c.document_id.clone()))
            .unwrap_or_else(|| "unknown".into());
    let saved = dir.join(format!("event-{}.json", safe_name(&name)));
    save_event(&saved, &inc.raw)?;
    Ok((dir, saved))
}

/// Saves the event as delivered (pretty JSON), unless the same bytes are
/// there; what is there is read only when it is a regular file (a FIFO or a
/// link in its place is an error).
fn save_event(path: &Path, raw: &serde_json::Value) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(raw).map_err(|e| Error::encode(path, "the event", e))?;
    bytes.push(b'\n');
    crate::io::check_not_special(path)?;
    let max = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if crate::io::read_regular(path, max).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    write_atomic(path, &bytes)
}

fn hours_since(t: WallClock, now: SystemTime) -> f64 {
    let now_ns = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    now_ns.saturating_sub(t.0) as f64 / 3.6e12
}
