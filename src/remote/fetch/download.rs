//! One chunk's two downloads: the metadata (small, one request) and the
//! media (up to ~1.5 GB, in parallel ranged parts, resumable).
//!
//! The media is written to `.<name>.part` beside its final name, with its
//! progress in `.<name>.part.json` (the object's size and validator, and
//! how far each part has got, recorded after the bytes were synced). Both
//! are hidden, so an archive scan never sees them. A rerun after any
//! interruption (a dropped connection, a kill, a reboot) resumes each part
//! with `Range` where its progress says; the file is renamed to its final
//! name only when every byte has arrived, its length is the object's and
//! it starts like an MP4.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::auth::{Location, UrlError, ENDPOINT_VAR};
use super::http::{self, excerpt, header, parse_content_range, Attempts, Client, Failure, Method};
use super::trust::Untrusted;
use super::{FetchOptions, FetchProgress};
use crate::input::archive::FileKind;
use crate::input::metadata::{self, MediaFormat};
use crate::io::{check_not_special, open_regular, read_head, read_regular, sync_dir, write_atomic};
use crate::observe::Observer;

/// What a chunk's transfer needs from its surroundings.
pub(crate) struct Ctx<'a> {
    pub client: &'a Client,
    pub options: &'a FetchOptions,
    pub observer: &'a dyn Observer<FetchProgress>,
    /// Set when a chunk of the same recording met an authentication failure.
    pub abort: &'a AtomicBool,
    pub document_id: &'a str,
    /// The media's format, as the chunk's metadata names it: what a body
    /// must hold to be saved as the media.
    pub format: MediaFormat,
    /// When the chunk must be done by.
    pub deadline: Deadline,
}

/// A chunk's deadline: [`FetchOptions::deadline_windows`] stall windows from
/// its start, extended by its media's size at [`FetchOptions::deadline_rate`]
/// once the size is known.
pub(crate) struct Deadline {
    started: Instant,
    /// Milliseconds allowed from `started`.
    allowed_ms: AtomicU64,
}

impl Deadline {
    /// A deadline of the base allowance from now.
    pub(crate) fn start(options: &FetchOptions) -> Deadline {
        Deadline {
            started: Instant::now(),
            allowed_ms: AtomicU64::new(millis(base_allowance(options))),
        }
    }

    /// Allows the base plus `size` bytes at the deadline rate.
    fn extend_for(&self, size: u64, options: &FetchOptions) {
        let secs = size / options.deadline_rate.max(1);
        let total = base_allowance(options).saturating_add(Duration::from_secs(secs));
        self.allowed_ms.store(millis(total), Ordering::SeqCst);
    }

    fn allowed(&self) -> Duration {
        Duration::from_millis(self.allowed_ms.load(Ordering::SeqCst))
    }

    fn passed(&self) -> bool {
        self.started.elapsed() >= self.allowed()
    }
}

fn base_allowance(options: &FetchOptions) -> Duration {
    options.stall_timeout.saturating_mul(options.deadline_windows.max(1))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A body reader that gives up on a slow or late transfer: fewer than
/// [`FetchOptions::min_rate`] bytes per second averaged over a stall window
/// is a stall, and past the chunk's deadline nothing more is read. Both are
/// `TimedOut` errors, as a connection that went silent is.
pub(crate) struct Paced<'c, 'a, R> {
    inner: R,
    ctx: &'c Ctx<'a>,
    window_started: Instant,
    window_bytes: u64,
}

impl<'c, 'a, R: Read> Paced<'c, 'a, R> {
    pub(crate) fn new(inner: R, ctx: &'c Ctx<'a>) -> Self {
        Paced {
            inner,
            ctx,
            window_started: Instant::now(),
            window_bytes: 0,
        }
    }
}

impl<R: Read> Read for Paced<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let timed_out = |why: String| std::io::Error::new(std::io::ErrorKind::TimedOut, why);
        if self.ctx.deadline.passed() {
            return Err(timed_out(deadline_message(&self.ctx.deadline)));
        }
        let n = self.inner.read(buf)?;
        self.window_bytes = self.window_bytes.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
        let window = self.ctx.options.stall_timeout.max(Duration::from_millis(1));
        let elapsed = self.window_started.elapsed();
        if elapsed >= window {
            let floor = self.ctx.options.min_rate as f64 * elapsed.as_secs_f64();
            if (self.window_bytes as f64) < floor {
                return Err(timed_out(format!(
                    "stalled: {} bytes in {:.1} s, under the floor of {} bytes/s (--min-rate)",
                    self.window_bytes,
                    elapsed.as_secs_f64(),
                    self.ctx.options.min_rate
                )));
            }
            self.window_started = Instant::now();
            self.window_bytes = 0;
        }
        Ok(n)
    }
}

fn deadline_message(deadline: &Deadline) -> String {
    ChunkError::Deadline {
        seconds: deadline.allowed().as_secs(),
    }
    .to_string()
}

/// The file kind a body of `format` starts as.
fn kind_of(format: MediaFormat) -> FileKind {
    match format {
        MediaFormat::Mp4 => FileKind::Mp4,
        MediaFormat::Mp3 => FileKind::Mp3,
        MediaFormat::Wav => FileKind::Wav,
    }
}

impl Ctx<'_> {
    fn stopped(&self) -> Option<Stop> {
        if self.options.cancel.is_cancelled() {
            Some(Stop::Cancelled)
        } else if self.abort.load(Ordering::SeqCst) {
            Some(Stop::Aborted)
        } else if self.deadline.passed() {
            Some(Stop::Deadline(self.deadline.allowed().as_secs()))
        } else {
            None
        }
    }

    /// Waits before the next attempt after `failure`; `Err` when the
    /// retries are used up or the work was stopped meanwhile.
    fn retry(
        &self,
        attempts: &mut Attempts,
        why: &str,
        retry_after: Option<std::time::Duration>,
    ) -> Result<(), ChunkError> {
        let Some(delay) = attempts.next_delay(retry_after) else {
            return Err(ChunkError::GaveUp {
                attempts: attempts.retries.saturating_add(1),
                why: why.to_string(),
            });
        };
        self.observer.observe(&FetchProgress::Retrying {
            document_id: self.document_id.to_string(),
            attempt: attempts.retries,
            delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            reason: why.to_string(),
        });
        http::sleep(delay, &self.options.cancel, &|| {
            self.abort.load(Ordering::SeqCst) || self.deadline.passed()
        });
        match self.stopped() {
            Some(stop) => Err(stop.into()),
            None => Ok(()),
        }
    }

    /// The common handling of a failed attempt: wait and go on, or end.
    fn after(&self, attempts: &mut Attempts, failure: Failure) -> Result<(), ChunkError> {
        match failure {
            Failure::Transient { why, retry_after } => self.retry(attempts, &why, retry_after),
            Failure::Auth(why) => {
                self.abort.store(true, Ordering::SeqCst);
                Err(ChunkError::Auth(why))
            }
            Failure::Untrusted(why) => Err(ChunkError::Untrusted(why)),
            Failure::Changed(change) => Err(ChunkError::Changed(change)),
            other => Err(ChunkError::Refused(other)),
        }
    }
}

#[derive(Debug, Clone)]
enum Stop {
    Cancelled,
    Aborted,
    /// The chunk's deadline (seconds from its start) passed.
    Deadline(u64),
}

impl From<Stop> for ChunkError {
    fn from(s: Stop) -> Self {
        match s {
            Stop::Cancelled => ChunkError::Cancelled,
            Stop::Aborted => ChunkError::Aborted,
            Stop::Deadline(seconds) => ChunkError::Deadline { seconds },
        }
    }
}

/// Why a chunk was not fetched. The message is the chunk's `error` in the
/// fetch report, [`ChunkError::kind`] its `errorKind`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ChunkError {
    /// 401/403 (what the service said): the recording's other chunks are not tried.
    #[error("{0}")]
    Auth(String),
    /// A location (or a redirect) on a host credentials may not go to.
    #[error("{0}")]
    Untrusted(String),
    /// Not tried, or stopped: another chunk of the recording failed authentication.
    #[error("not fetched: another chunk of this recording failed authentication")]
    Aborted,
    /// The fetch was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// The event gives no location that may be used.
    #[error(transparent)]
    Location(#[from] LocationError),
    /// Failures worth another attempt, until the attempts ran out: the last one.
    #[error("gave up after {attempts} attempt(s): {why}")]
    GaveUp { attempts: u32, why: String },
    /// The chunk's deadline (seconds from its start) passed.
    #[error("the chunk's deadline of {seconds} s passed (stall windows, --stall-timeout, plus its size at --deadline-rate); a rerun resumes it")]
    Deadline { seconds: u64 },
    /// An answer not worth another attempt ([`Failure::Fatal`], [`Failure::RangeNotSatisfiable`]).
    #[error("{}", .0.message())]
    Refused(Failure),
    /// The object changed on the service under a partial download, which is discarded.
    #[error(transparent)]
    Changed(ObjectChanged),
    /// A file in the archive (the media, its `.part`, its progress, the
    /// metadata, the chunk's lock) could not be checked, read or written.
    #[error(transparent)]
    File(#[from] crate::Error),
    /// Writing bytes received, or the progress, failed (`what` was being done).
    #[error("{what}: {source}")]
    Write {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The complete `.part` does not have the object's length.
    #[error("{}: {len} bytes where {expected} were expected", path.display())]
    Length { path: PathBuf, len: u64, expected: u64 },
    /// The complete download does not start as the media its metadata names.
    #[error("the downloaded media is {}, not an {}", found.describe(), expected.name())]
    NotMedia { found: FileKind, expected: MediaFormat },
    /// The media is already under its final name with another size than the service's.
    #[error("{} exists with {local} bytes but the service has {remote}: move it aside to fetch it again", path.display())]
    Differs { path: PathBuf, local: u64, remote: u64 },
    /// A part's thread panicked.
    #[error("a download thread panicked")]
    Panicked,
    /// The error of one of the chunk's two downloads (`metadata`, `media`).
    #[error("{what}: {source}")]
    Of {
        what: &'static str,
        #[source]
        source: Box<ChunkError>,
    },
}

impl ChunkError {
    /// The fetch report's `errorKind`: `authentication`, `untrusted`,
    /// `aborted`, `cancelled` or `failed`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            ChunkError::Auth(_) => "authentication",
            ChunkError::Untrusted(_) | ChunkError::Location(LocationError::Untrusted { .. }) => "untrusted",
            ChunkError::Aborted => "aborted",
            ChunkError::Cancelled => "cancelled",
            ChunkError::Of { source, .. } => source.kind(),
            _ => "failed",
        }
    }
}

/// Why the event's location of a chunk's media or metadata (`what`:
/// `contentLocation`, `metadataLocation`) is not used: nothing is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LocationError {
    /// Not an `http(s)` URL that may be used.
    #[error("the event's {what} is not usable: {source}")]
    Unusable { what: &'static str, source: UrlError },
    /// No location, and no endpoint to make one from.
    #[error("the event has no {what} and no endpoint is known (set {ENDPOINT_VAR} with the bearer token)")]
    NoEndpoint { what: &'static str },
    /// On a host credentials may not go to.
    #[error("the event's {what}: {source}")]
    Untrusted { what: &'static str, source: Untrusted },
}

/// How the object changed on the service under a partial download.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ObjectChanged {
    /// Its `ETag` (or `Last-Modified`) is another.
    #[error(
        "the media {CHANGED} during the download (validator {was} became {now}); the partial download is discarded"
    )]
    Validator { was: String, now: String },
    /// Its size is another.
    #[error("the media {CHANGED}: it had {was} bytes, now {now} ; the partial download is discarded")]
    Size { was: u64, now: u64 },
}

/// What one file's transfer did.
#[derive(Debug, Clone, Default)]
pub(crate) struct Transfer {
    /// The file's size.
    pub size: u64,
    /// Bytes received over the network for it (this run).
    pub transferred: u64,
    /// Whether it continued a partial download.
    pub resumed: bool,
    /// Whether the file was already complete.
    pub up_to_date: bool,
    /// Retries made.
    pub retries: u32,
    /// Something worth saying (a size that could not be confirmed).
    pub note: Option<String>,
}

/// Downloads a chunk's metadata to `final_path` unless it is there already.
pub(crate) fn metadata(ctx: &Ctx, location: &Location, final_path: &Path) -> Result<Transfer, ChunkError> {
    let max = ctx.options.limits.max_json_bytes;
    check_not_special(final_path)?;
    if let Ok(bytes) = read_regular(final_path, max) {
        if metadata::parse_json(&bytes, final_path).is_ok() {
            return Ok(Transfer {
                size: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
                up_to_date: true,
                ..Transfer::default()
            });
        }
    }
    let mut attempts = Attempts::new(ctx.options);
    loop {
        if let Some(stop) = ctx.stopped() {
            return Err(stop.into());
        }
        let failure = match get_metadata(ctx, location, max) {
            Ok(bytes) => {
                write_atomic(final_path, &bytes)?;
                let size = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
                return Ok(Transfer {
                    size,
                    transferred: size,
                    retries: attempts.retries,
                    ..Transfer::default()
                });
            }
            Err(f) => f,
        };
        ctx.after(&mut attempts, failure.clone())
            .map_err(|e| with_context(e, "metadata"))?;
    }
}

/// The error as one of `what` (`metadata`, `media`) that failed; a stop
/// (aborted, cancelled) is the chunk's, not one download's.
pub(crate) fn with_context(e: ChunkError, what: &'static str) -> ChunkError {
    match e {
        ChunkError::Aborted | ChunkError::Cancelled => e,
        source => ChunkError::Of {
            what,
            source: Box::new(source),
        },
    }
}

/// One attempt at the metadata: the body, checked to be chunk metadata.
fn get_metadata(ctx: &Ctx, location: &Location, max: u64) -> Result<Vec<u8>, Failure> {
    let mut response = ctx.client.send(Method::Get, location, None)?;
    let status = response.status().as_u16();
    let mut bytes = Vec::new();
    Paced::new(response.body_mut().as_reader(), ctx)
        .take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::transient(format!("reading the body failed: {e}")))?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > max {
        return Err(Failure::Fatal(format!(
            "the metadata is larger than {max} bytes (Limits::max_json_bytes)"
        )));
    }
    let content_type = header(&response, "content-type").unwrap_or_default();
    let kind = FileKind::sniff(&bytes);
    metadata::check_list_budgets(&bytes, Path::new(ctx.document_id), &ctx.options.limits)
        .map_err(|e| Failure::Fatal(format!("the metadata is refused: {e}")))?;
    let value = match metadata::parse_json(&bytes, Path::new(ctx.document_id)) {
        Ok(v) => v,
        Err(_) => {
            return Err(Failure::transient(bad_body(
                status,
                &content_type,
                kind,
                &bytes,
                "chunk metadata (JSON)",
            )));
        }
    };
    if !metadata::looks_like_metadata(&value) {
        return Err(Failure::transient(format!(
            "the service answered {status} with JSON that is not chunk metadata (an error response?): {}",
            excerpt(&bytes)
        )));
    }
    Ok(bytes)
}

/// "the service answered 200 with an HTML page (text/html) instead of …: <excerpt>".
fn bad_body(status: u16, content_type: &str, kind: FileKind, bytes: &[u8], wanted: &str) -> String {
    let ct = if content_type.is_empty() {
        String::new()
    } else {
        format!(" ({content_type})")
    };
    let what = if bytes.is_empty() {
        "0 bytes".to_string()
    } else {
        kind.describe().to_string()
    };
    let said = if bytes.is_empty() {
        String::new()
    } else {
        format!(": {}", excerpt(bytes))
    };
    format!("the service answered {status} with {what}{ct} instead of {wanted}{said}")
}

/// The progress of a partial media download, kept beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Resume {
    /// The object's size.
    size: u64,
    /// Its `ETag` (else `Last-Modified`), when the server gave one.
    validator: Option<String>,
    /// The `.part` file's inode (unix), so that a file put in its place is not trusted.
    inode: u64,
    /// The parts, contiguous from 0 to `size`.
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Segment {
    /// First byte.
    start: u64,
    /// One past the last byte.
    end: u64,
    /// Bytes from `start` that are written (and synced).
    done: u64,
}

impl Segment {
    fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }
}

/// The most parts a progress file may describe.
const MAX_SEGMENTS: usize = 64;

fn part_paths(final_path: &Path) -> (PathBuf, PathBuf) {
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (
        final_path.with_file_name(format!(".{name}.part")),
        final_path.with_file_name(format!(".{name}.part.json")),
    )
}

#[cfg(unix)]
fn inode(file: &File) -> u64 {
    use std::os::unix::fs::MetadataExt;
    file.metadata().map(|m| m.ino()).unwrap_or(0)
}

#[cfg(not(unix))]
fn inode(_: &File) -> u64 {
    0
}

#[cfg(unix)]
fn write_at(file: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(windows)]
fn write_at(file: &File, mut buf: &[u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(file, buf, offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        buf = &buf[n..];
        offset += n as u64;
    }
    Ok(())
}

/// The partial download left by an earlier run, when it can be trusted:
/// its progress parses and is consistent, and the `.part` file is the one
/// it describes (same inode, the object's length). Otherwise both are removed.
fn load_resume(part: &Path, progress: &Path) -> Option<(Resume, File)> {
    let loaded = (|| {
        let bytes = read_regular(progress, 1 << 20).ok()?;
        let resume: Resume = serde_json::from_slice(&bytes).ok()?;
        let file = open_regular(part, OpenOptions::new().read(true).write(true), false).ok()?;
        let len = file.metadata().ok()?.len();
        let mut at = 0u64;
        let consistent = !resume.segments.is_empty()
            && resume.segments.len() <= MAX_SEGMENTS
            && resume.segments.iter().all(|s| {
                let ok = s.start == at && s.start <= s.end && s.done <= s.len();
                at = s.end;
                ok
            })
            && at == resume.size;
        (consistent && len == resume.size && inode(&file) == resume.inode).then_some((resume, file))
    })();
    if loaded.is_none() {
        let _ = std::fs::remove_file(part);
        let _ = std::fs::remove_file(progress);
    }
    loaded
}

/// The parts of an object of `size` bytes: up to `parts`, none shorter than
/// `part_size` (one part when the server does not do ranges).
fn plan(size: u64, parts: usize, part_size: u64, ranges: bool) -> Vec<Segment> {
    let wanted = if ranges {
        (size / part_size.max(1)).clamp(1, u64::try_from(parts.clamp(1, MAX_SEGMENTS)).unwrap_or(1))
    } else {
        1
    };
    let each = size.div_ceil(wanted);
    let mut segments = Vec::new();
    let mut start = 0;
    while start < size {
        let end = start.saturating_add(each).min(size);
        segments.push(Segment { start, end, done: 0 });
        start = end;
    }
    segments
}

/// The first response of a new download, its head already read.
struct First {
    size: u64,
    ranges: bool,
    validator: Option<String>,
    head: Vec<u8>,
    reader: ureq::BodyReader<'static>,
    /// One past the last byte this response delivers.
    covers: u64,
}

/// Asks for the first part (`Range: bytes=0-…`), learns the object's size,
/// and refuses what is not media of the chunk's format before anything is written.
fn first_request(ctx: &Ctx, location: &Location) -> Result<First, Failure> {
    // At least enough for the sniff, whatever the part size.
    let first_end = ctx.options.part_size.max(64).saturating_sub(1);
    let response = match ctx.client.send(Method::Get, location, Some((0, Some(first_end)))) {
        Err(Failure::RangeNotSatisfiable(Some(0))) => {
            return Err(Failure::transient(
                "the service answered with 0 bytes (416 for the first byte of an empty object)",
            ))
        }
        other => other?,
    };
    let status = response.status().as_u16();
    let content_type = header(&response, "content-type").unwrap_or_default();
    let validator = header(&response, "etag").or_else(|| header(&response, "last-modified"));
    let length = header(&response, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
    let (size, ranges, covers) = match status {
        206 => {
            let cr = header(&response, "content-range")
                .and_then(|v| parse_content_range(&v))
                .ok_or_else(|| Failure::Fatal("a 206 response without a valid Content-Range".into()))?;
            let (Some((0, last)), Some(total)) = (cr.range, cr.total) else {
                return Err(Failure::Fatal(
                    "the server answered another range than the one asked for, or no size".into(),
                ));
            };
            (total, true, last.saturating_add(1))
        }
        200 => {
            let len = length.ok_or_else(|| {
                Failure::Fatal("the server sent no Content-Length: the download could not be checked".into())
            })?;
            (len, false, len)
        }
        other => return Err(Failure::Fatal(format!("unexpected HTTP {other} for a download"))),
    };
    if size > ctx.options.max_chunk_bytes {
        return Err(Failure::Fatal(format!(
            "the service says the media has {size} bytes, over the limit {} (FetchOptions::max_chunk_bytes)",
            ctx.options.max_chunk_bytes
        )));
    }
    let mut reader = response.into_body().into_reader();
    let mut head = Vec::with_capacity(64);
    let want = covers.min(64);
    Paced::new(&mut reader, ctx)
        .take(want)
        .read_to_end(&mut head)
        .map_err(|e| Failure::transient(format!("reading the body failed: {e}")))?;
    let kind = FileKind::sniff(&head);
    let wanted = kind_of(ctx.format);
    if size == 0 || kind != wanted {
        // Read a little more of a text body for the message.
        if kind != wanted && !head.is_empty() {
            let _ = (&mut reader).take(512).read_to_end(&mut head);
        }
        return Err(Failure::transient(bad_body(
            status,
            &content_type,
            kind,
            &head,
            &format!("an {}", ctx.format.name()),
        )));
    }
    if u64::try_from(head.len()).unwrap_or(0) < want {
        return Err(Failure::transient(format!(
            "the connection closed after {} of {size} bytes",
            head.len()
        )));
    }
    Ok(First {
        size,
        ranges,
        validator,
        head,
        reader,
        covers,
    })
}

/// The state the parts of one download share.
struct Shared<'a> {
    ctx: &'a Ctx<'a>,
    file: File,
    progress_path: PathBuf,
    resume: Mutex<Resume>,
    /// Bytes written per part, ahead of what `resume` has recorded.
    written: Vec<AtomicU64>,
    /// Set when one part failed: the others stop.
    stop: AtomicBool,
    transferred: AtomicU64,
    retries: AtomicU64,
}

impl Shared<'_> {
    /// Records the progress: first the counts, then a sync of the file,
    /// then the record, so that it never claims bytes that are not on disk.
    fn checkpoint(&self) -> std::io::Result<()> {
        let counts: Vec<u64> = self.written.iter().map(|w| w.load(Ordering::SeqCst)).collect();
        self.file.sync_data()?;
        let mut resume = self.resume.lock().unwrap_or_else(|e| e.into_inner());
        for (s, done) in resume.segments.iter_mut().zip(counts) {
            s.done = done.min(s.len());
        }
        let json = serde_json::to_vec(&*resume).map_err(std::io::Error::other)?;
        write_atomic(&self.progress_path, &json).map_err(|e| std::io::Error::other(e.to_string()))
    }

    fn stopped(&self) -> Option<ChunkError> {
        if let Some(s) = self.ctx.stopped() {
            return Some(s.into());
        }
        self.stop.load(Ordering::SeqCst).then_some(ChunkError::Aborted)
    }
}

/// A new download: the first request (retried), the `.part` file at its
/// full size, the plan of its parts; and the first response, whose body
/// part 0 goes on reading.
fn start_download(
    ctx: &Ctx,
    location: &Location,
    part: &Path,
    attempts: &mut Attempts,
) -> Result<(Resume, File, First), ChunkError> {
    let f = loop {
        if let Some(stop) = ctx.stopped() {
            return Err(stop.into());
        }
        match first_request(ctx, location) {
            Ok(f) => break f,
            Err(failure) => ctx.after(attempts, failure)?,
        }
    };
    let file = open_regular(
        part,
        OpenOptions::new().read(true).write(true).create(true).truncate(true),
        false,
    )?;
    file.set_len(f.size).map_err(|e| crate::Error::io(part, e))?;
    let resume = Resume {
        size: f.size,
        validator: f.validator.clone(),
        inode: inode(&file),
        segments: plan(f.size, ctx.options.parts, ctx.options.part_size, f.ranges),
    };
    Ok((resume, file, f))
}

/// Runs every unfinished part on its own thread (part 0 takes the first
/// response, when there is one); the outcome of each.
fn run_parts(
    shared: &Shared,
    resume: &Resume,
    location: &Location,
    mut first: Option<First>,
) -> Vec<Result<(), ChunkError>> {
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for (i, seg) in resume.segments.iter().enumerate() {
            let initial = if i == 0 { first.take() } else { None };
            if seg.done >= seg.len() && initial.is_none() {
                continue;
            }
            let location = location.clone();
            handles.push(scope.spawn(move || {
                let r = run_segment(shared, &location, i, initial);
                if r.is_err() {
                    shared.stop.store(true, Ordering::SeqCst);
                }
                r
            }));
        }
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or(Err(ChunkError::Panicked)))
            .collect()
    })
}

/// The first real error of the parts: an authentication failure before an
/// abort, a failure before the stops it caused.
fn first_error(results: Vec<Result<(), ChunkError>>) -> Option<ChunkError> {
    let mut errors: Vec<ChunkError> = results.into_iter().filter_map(Result::err).collect();
    errors.sort_by_key(|e| match e.kind() {
        "authentication" | "untrusted" => 0,
        "cancelled" => 2,
        "aborted" => 3,
        _ => 1,
    });
    errors.into_iter().next()
}

/// Downloads a chunk's media to `final_path`, resuming a partial download,
/// unless it is there already.
pub(crate) fn media(ctx: &Ctx, location: &Location, final_path: &Path) -> Result<Transfer, ChunkError> {
    let (part, progress) = part_paths(final_path);
    // A link, a FIFO or a device planted in the archive under one of these
    // names is never followed, written through or waited for.
    for path in [final_path, &part, &progress] {
        check_not_special(path)?;
    }
    if final_path.exists() {
        let _ = std::fs::remove_file(&part);
        let _ = std::fs::remove_file(&progress);
        return up_to_date(ctx, location, final_path);
    }
    let mut attempts = Attempts::new(ctx.options);
    let mut first = None;
    let (resume, file) = match load_resume(&part, &progress) {
        Some(found) => found,
        None => {
            let (resume, file, f) = start_download(ctx, location, &part, &mut attempts)?;
            first = Some(f);
            (resume, file)
        }
    };
    let resumed = first.is_none();
    let size = resume.size;
    ctx.deadline.extend_for(size, ctx.options);
    ctx.observer.observe(&FetchProgress::ChunkStarted {
        document_id: ctx.document_id.to_string(),
        bytes: size,
        already: resume.segments.iter().map(|s| s.done).sum(),
    });
    let shared = Shared {
        ctx,
        written: resume.segments.iter().map(|s| AtomicU64::new(s.done)).collect(),
        resume: Mutex::new(resume.clone()),
        file,
        progress_path: progress.clone(),
        stop: AtomicBool::new(false),
        transferred: AtomicU64::new(0),
        retries: AtomicU64::new(u64::from(attempts.retries)),
    };
    shared.checkpoint().map_err(|e| crate::Error::io(&progress, e))?;
    let results = run_parts(&shared, &resume, location, first);
    let transferred = shared.transferred.load(Ordering::SeqCst);
    let retries = u32::try_from(shared.retries.load(Ordering::SeqCst)).unwrap_or(u32::MAX);
    if let Some(e) = first_error(results) {
        let _ = shared.checkpoint();
        if matches!(e, ChunkError::Changed(_)) {
            let _ = std::fs::remove_file(&part);
            let _ = std::fs::remove_file(&progress);
        }
        return Err(e);
    }
    finish(&shared, &part, final_path, size)?;
    let _ = std::fs::remove_file(&progress);
    if let Some(dir) = final_path.parent() {
        sync_dir(dir);
    }
    Ok(Transfer {
        size,
        transferred,
        resumed,
        up_to_date: false,
        retries,
        note: None,
    })
}

/// Words of the error for an object that changed under a partial download.
const CHANGED: &str = "changed on the service";

/// Checks the complete `.part` and renames it to its final name.
fn finish(shared: &Shared, part: &Path, final_path: &Path, size: u64) -> Result<(), ChunkError> {
    let io = |e: std::io::Error| crate::Error::io(part, e);
    shared.file.sync_all().map_err(io)?;
    let len = shared.file.metadata().map_err(io)?.len();
    if len != size {
        return Err(ChunkError::Length {
            path: part.to_path_buf(),
            len,
            expected: size,
        });
    }
    let mut head = [0u8; 16];
    let n = read_head(part, &mut head)?;
    let kind = FileKind::sniff(&head[..n]);
    if kind != kind_of(shared.ctx.format) {
        return Err(ChunkError::NotMedia {
            found: kind,
            expected: shared.ctx.format,
        });
    }
    std::fs::rename(part, final_path).map_err(|e| crate::Error::io(final_path, e).into())
}

/// One part: requests its remaining range until it is complete, retrying.
/// Waits before a part's next attempt after `failure`, or gives up;
/// counts the retries in the chunk's total.
fn retry(shared: &Shared, attempts: &mut Attempts, failure: Failure) -> Result<(), ChunkError> {
    let before = attempts.retries;
    let result = shared.ctx.after(attempts, failure);
    shared
        .retries
        .fetch_add(u64::from(attempts.retries.saturating_sub(before)), Ordering::SeqCst);
    result
}

fn run_segment(shared: &Shared, location: &Location, i: usize, mut initial: Option<First>) -> Result<(), ChunkError> {
    let ctx = shared.ctx;
    let (seg, size, validator) = {
        let r = shared.resume.lock().unwrap_or_else(|e| e.into_inner());
        (r.segments[i], r.size, r.validator.clone())
    };
    let mut attempts = Attempts::new(ctx.options);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let done = shared.written[i].load(Ordering::SeqCst);
        if done >= seg.len() {
            return Ok(());
        }
        if let Some(e) = shared.stopped() {
            return Err(e);
        }
        let pos = seg.start.saturating_add(done);
        let (mut reader, covers, from) = match initial.take() {
            Some(f) => {
                // The head was read already: write it first.
                let n = u64::try_from(f.head.len()).unwrap_or(0);
                write_at(&shared.file, &f.head, 0).map_err(|source| ChunkError::Write {
                    what: "writing",
                    source,
                })?;
                shared.written[i].store(n, Ordering::SeqCst);
                shared.transferred.fetch_add(n, Ordering::SeqCst);
                (f.reader, f.covers, n)
            }
            None => match range_request(
                ctx,
                location,
                pos,
                seg.end,
                size,
                validator.as_deref(),
                seg.start == 0 && seg.end == size,
            ) {
                Ok((reader, covers, restarted)) => {
                    if restarted {
                        // The server sent the whole object: start the part again from byte 0.
                        shared.written[i].store(0, Ordering::SeqCst);
                        (reader, covers, 0)
                    } else {
                        (reader, covers, pos)
                    }
                }
                Err(failure) => {
                    retry(shared, &mut attempts, failure)?;
                    continue;
                }
            },
        };
        let before = shared.written[i].load(Ordering::SeqCst);
        let result = stream(
            shared,
            i,
            &mut Paced::new(&mut reader, ctx),
            from.saturating_sub(seg.start),
            covers.min(seg.end),
            &mut buf,
        );
        let gained = shared.written[i].load(Ordering::SeqCst).saturating_sub(before);
        if gained >= 1 << 20 {
            attempts.progressed();
        }
        match result {
            Ok(()) => {}
            Err(StreamError::Write(what, source)) => return Err(ChunkError::Write { what, source }),
            Err(StreamError::Read(why)) => {
                if let Some(e) = shared.stopped() {
                    return Err(e);
                }
                retry(shared, &mut attempts, Failure::transient(why))?;
            }
        }
    }
}

/// Asks for `start..end` and checks that the answer is that range of the
/// same object: the reader, one past the last byte it delivers, and
/// whether the server sent the whole object instead (it ignores `Range`;
/// accepted for a download in one part only).
fn range_request(
    ctx: &Ctx,
    location: &Location,
    start: u64,
    end: u64,
    size: u64,
    validator: Option<&str>,
    whole_object_ok: bool,
) -> Result<(ureq::BodyReader<'static>, u64, bool), Failure> {
    let response = ctx
        .client
        .send(Method::Get, location, Some((start, Some(end.saturating_sub(1)))))?;
    let got = header(&response, "etag").or_else(|| header(&response, "last-modified"));
    if let (Some(was), Some(now)) = (validator, got.as_deref()) {
        if was != now {
            return Err(Failure::Changed(ObjectChanged::Validator {
                was: was.to_string(),
                now: now.to_string(),
            }));
        }
    }
    let (covers, restarted) = match response.status().as_u16() {
        206 => {
            let cr = header(&response, "content-range").and_then(|v| parse_content_range(&v));
            match cr {
                Some(cr) if cr.total.is_some_and(|t| t != size) => {
                    return Err(Failure::Changed(ObjectChanged::Size {
                        was: size,
                        now: cr.total.unwrap_or(0),
                    }))
                }
                Some(cr) => match cr.range {
                    Some((a, b)) if a == start => (b.saturating_add(1), false),
                    _ => {
                        return Err(Failure::transient(
                            "the server answered another range than the one asked for",
                        ))
                    }
                },
                None => return Err(Failure::transient("a 206 response without a valid Content-Range")),
            }
        }
        200 if whole_object_ok => {
            let length = header(&response, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
            if length != Some(size) {
                return Err(Failure::transient(
                    "the server sent the whole object with another length",
                ));
            }
            (size, start != 0)
        }
        200 => return Err(Failure::Fatal("the server does not honour Range requests".into())),
        other => return Err(Failure::Fatal(format!("unexpected HTTP {other} for a download"))),
    };
    let content_type = header(&response, "content-type").unwrap_or_default();
    if content_type.starts_with("text/html") || content_type.starts_with("application/json") {
        let mut response = response;
        let said = http::excerpt_of(&mut response);
        return Err(Failure::transient(format!(
            "the service answered a range with {content_type} instead of media bytes: {said}"
        )));
    }
    Ok((response.into_body().into_reader(), covers, restarted))
}

enum StreamError {
    /// Reading the body failed (worth another attempt): why.
    Read(String),
    /// Writing the bytes or the progress failed: what was being done, and the error.
    Write(&'static str, std::io::Error),
}

/// Copies the body into part `i` from `offset` (relative to its start)
/// until `end` (absolute), recording progress as it goes.
fn stream(
    shared: &Shared,
    i: usize,
    reader: &mut impl Read,
    offset: u64,
    end: u64,
    buf: &mut [u8],
) -> Result<(), StreamError> {
    let ctx = shared.ctx;
    let seg_start = {
        let r = shared.resume.lock().unwrap_or_else(|e| e.into_inner());
        r.segments[i].start
    };
    let mut pos = seg_start.saturating_add(offset);
    let mut since_report = 0u64;
    let report = |bytes: u64| {
        ctx.observer.observe(&FetchProgress::Bytes {
            document_id: ctx.document_id.to_string(),
            bytes,
        })
    };
    let result = loop {
        if pos >= end {
            break Ok(());
        }
        if shared.stopped().is_some() {
            break Err(StreamError::Read("stopped".into()));
        }
        let want = usize::try_from((end - pos).min(buf.len() as u64)).unwrap_or(buf.len());
        let n = match reader.read(&mut buf[..want]) {
            Ok(0) => {
                break Err(StreamError::Read(format!(
                    "the body ended at byte {pos}, before byte {end} that its Content-Range announced"
                )))
            }
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(StreamError::Read(format!("the transfer broke off at byte {pos}: {e}"))),
        };
        if let Err(e) = write_at(&shared.file, &buf[..n], pos) {
            break Err(StreamError::Write("writing the partial download", e));
        }
        let n = n as u64;
        pos += n;
        let old = shared.written[i].fetch_add(n, Ordering::SeqCst);
        shared.transferred.fetch_add(n, Ordering::SeqCst);
        since_report += n;
        if since_report >= 1 << 20 {
            report(since_report);
            since_report = 0;
        }
        // A checkpoint each time the part crosses a multiple of checkpoint_bytes.
        let every = ctx.options.checkpoint_bytes.max(1);
        if old / every != old.saturating_add(n) / every {
            if let Err(e) = shared.checkpoint() {
                break Err(StreamError::Write("recording the download's progress", e));
            }
        }
    };
    if since_report > 0 {
        report(since_report);
    }
    result
}

/// A media file already under its final name: complete by construction
/// (only complete, checked files are renamed there). Its size is compared
/// with the service's (`Range: bytes=0-0`, one byte transferred) when the
/// service still has it.
fn up_to_date(ctx: &Ctx, location: &Location, final_path: &Path) -> Result<Transfer, ChunkError> {
    let local = std::fs::metadata(final_path)
        .map_err(|e| crate::Error::io(final_path, e))?
        .len();
    let mut attempts = Attempts::new(ctx.options);
    let remote = loop {
        if let Some(stop) = ctx.stopped() {
            return Err(stop.into());
        }
        match remote_size(ctx, location) {
            Ok(size) => break Ok(size),
            Err(Failure::Auth(why)) => {
                ctx.abort.store(true, Ordering::SeqCst);
                return Err(ChunkError::Auth(why));
            }
            Err(Failure::Untrusted(why)) => return Err(ChunkError::Untrusted(why)),
            Err(Failure::Transient { why, retry_after }) => {
                if ctx.retry(&mut attempts, &why, retry_after).is_err() {
                    break Err(why);
                }
            }
            Err(other) => break Err(other.message()),
        }
    };
    let note = match remote {
        Ok(remote) if remote == local => None,
        Ok(remote) => {
            return Err(ChunkError::Differs {
                path: final_path.to_path_buf(),
                local,
                remote,
            })
        }
        Err(why) => Some(format!("kept as it is; its size could not be confirmed: {why}")),
    };
    Ok(Transfer {
        size: local,
        up_to_date: true,
        retries: attempts.retries,
        note,
        ..Transfer::default()
    })
}

/// The object's size from a one-byte range request.
fn remote_size(ctx: &Ctx, location: &Location) -> Result<u64, Failure> {
    let response = match ctx.client.send(Method::Get, location, Some((0, Some(0)))) {
        Err(Failure::RangeNotSatisfiable(Some(size))) => return Ok(size),
        other => other?,
    };
    match response.status().as_u16() {
        206 => header(&response, "content-range")
            .and_then(|v| parse_content_range(&v))
            .and_then(|cr| cr.total)
            .ok_or_else(|| Failure::Fatal("a 206 response without a size in Content-Range".into())),
        _ => header(&response, "content-length")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| Failure::Fatal("no Content-Length".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_split_into_bounded_parts() {
        const MIB: u64 = 1 << 20;
        assert_eq!(plan(5 * MIB, 4, 8 * MIB, true).len(), 1);
        assert_eq!(plan(20 * MIB, 4, 8 * MIB, true).len(), 2);
        let p = plan(1_500_000_000, 4, 8 * MIB, true);
        assert_eq!(p.len(), 4);
        assert_eq!(p[0].start, 0);
        assert_eq!(p.last().unwrap().end, 1_500_000_000);
        assert!(p.windows(2).all(|w| w[0].end == w[1].start));
        assert_eq!(plan(1_500_000_000, 4, 8 * MIB, false).len(), 1);
        assert_eq!(
            plan(1, 4, 8 * MIB, true),
            vec![Segment {
                start: 0,
                end: 1,
                done: 0
            }]
        );
    }

    #[test]
    fn a_progress_file_that_does_not_match_its_part_is_discarded() {
        let dir = std::env::temp_dir().join(format!("recstitch-resume-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (part, progress) = part_paths(&dir.join("doc.mp4"));
        assert!(part.ends_with(".doc.mp4.part") && progress.ends_with(".doc.mp4.part.json"));
        let file = File::create(&part).unwrap();
        file.set_len(100).unwrap();
        let good = Resume {
            size: 100,
            validator: None,
            inode: inode(&file),
            segments: vec![
                Segment {
                    start: 0,
                    end: 60,
                    done: 10,
                },
                Segment {
                    start: 60,
                    end: 100,
                    done: 0,
                },
            ],
        };
        std::fs::write(&progress, serde_json::to_vec(&good).unwrap()).unwrap();
        assert_eq!(load_resume(&part, &progress).unwrap().0, good);
        let mut bad = good.clone();
        bad.segments[1].start = 61;
        std::fs::write(&progress, serde_json::to_vec(&bad).unwrap()).unwrap();
        assert!(load_resume(&part, &progress).is_none());
        assert!(!part.exists() && !progress.exists(), "both are removed");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn chunk_errors_give_the_report_its_kind_and_message() {
        let changed = with_context(ChunkError::Changed(ObjectChanged::Size { was: 10, now: 12 }), "media");
        assert_eq!(changed.kind(), "failed");
        assert_eq!(
            changed.to_string(),
            "media: the media changed on the service: it had 10 bytes, now 12 ; the partial download is discarded"
        );
        let untrusted = with_context(ChunkError::Untrusted("host h is not trusted".into()), "metadata");
        assert_eq!(
            (untrusted.kind(), untrusted.to_string().as_str()),
            ("untrusted", "metadata: host h is not trusted")
        );
        let aborted = with_context(ChunkError::Aborted, "media");
        assert_eq!(aborted.kind(), "aborted");
        assert_eq!(
            aborted.to_string(),
            "not fetched: another chunk of this recording failed authentication"
        );
        let location = ChunkError::from(LocationError::NoEndpoint {
            what: "contentLocation",
        });
        assert_eq!(
            location.to_string(),
            "the event has no contentLocation and no endpoint is known (set RECSTITCH_ENDPOINT with the bearer token)"
        );
        assert_eq!(
            ChunkError::Deadline { seconds: 90 }.to_string(),
            "the chunk's deadline of 90 s passed (stall windows, --stall-timeout, plus its size at --deadline-rate); a rerun resumes it"
        );
        let gave_up = ChunkError::GaveUp {
            attempts: 3,
            why: "HTTP 503".into(),
        };
        assert_eq!(
            (gave_up.kind(), gave_up.to_string().as_str()),
            ("failed", "gave up after 3 attempt(s): HTTP 503")
        );
    }
}
