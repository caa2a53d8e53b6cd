//! Whether a recording is safely archived, and `--delete-after` (feature
//! `fetch`): the step above the fetch and the stitch that joins their
//! reports, so that the first stage never learns of the last.
//!
//! ```text
//! fetch::Fetcher::fetch          chunks into the archive              → FetchReport
//! batch::run_batch               the archive into the output folder   → Report
//! archival::delete_archived      each recording checked: every chunk fetched, stitched or up to
//!                                date, its manifest read back listing every chunk, the output's
//!                                SHA-256 computed again and equal to the manifest's
//!   Fetcher::delete_chunks       then only, its chunks deleted from the service
//! ```
//!
//! [`verify_archived`] is the check on its own, for a recording found
//! through [`manifest_path`] (the worker's redelivered event).

use std::path::{Path, PathBuf};

use crate::error::{Error, Here};
use crate::input::metadata::EventChunk;
use crate::output::report::{Report, Status};
use crate::output::stitch::Manifest;
use crate::remote::fetch::{ChunkReport, ChunkStatus, Deletion, EventReport, FetchReport, Fetcher};
use crate::storage::Storage;

/// `--delete-after`: deletes from the service (with `fetcher`) every chunk
/// of each recording of `fetched` that is safely archived — every chunk
/// fetched, the recording stitched (or up to date) in `stitched`, its
/// manifest under `out_dir` read back, listing every chunk of the event,
/// and the stitched file's SHA-256 computed again and equal to the
/// manifest's (the outputs read through `storage`). Never before; never for
/// a recording that failed any of it (its chunks are kept, with the
/// reason). One [`Deletion`] per chunk of each event, in the fetch report's
/// order.
pub fn delete_archived(
    fetcher: &Fetcher,
    fetched: &FetchReport,
    stitched: &Report,
    storage: &Storage,
    out_dir: &Path,
) -> Vec<Deletion> {
    let mut out = Vec::new();
    for event in &fetched.events {
        let chunks: Vec<&ChunkReport> = fetched
            .chunks
            .iter()
            .filter(|c| c.event_id == event.id && c.call_id == event.call_id && event.chunks.contains(&c.document_id))
            .collect();
        match archived(event, &chunks, stitched, (storage, out_dir)) {
            Ok(()) => {
                let listed: Vec<EventChunk> = chunks.iter().map(|c| event_chunk(c)).collect();
                out.extend(fetcher.delete_chunks(event.recording_id.as_deref(), &listed));
            }
            Err(why) => out.extend(chunks.iter().map(|c| Deletion {
                document_id: c.document_id.clone(),
                recording_id: event.recording_id.clone(),
                deleted: false,
                reason: format!("kept on the service: {why}"),
            })),
        }
    }
    out
}

/// A fetched chunk as its event listed it: what [`Fetcher::delete_chunks`] needs.
fn event_chunk(c: &ChunkReport) -> EventChunk {
    EventChunk {
        document_id: c.document_id.clone(),
        index: c.index,
        delete_location: c.delete_location.clone(),
        ..EventChunk::default()
    }
}

/// Why a recording is not safely archived (its chunks are kept on the service).
#[derive(Debug, thiserror::Error)]
enum NotArchived {
    /// A chunk of the event failed, or is not in the fetch report.
    #[error("not every chunk was fetched")]
    NotFetched,
    /// The event's subject names no recording.
    #[error("the event names no recording id")]
    NoRecordingId,
    /// The stitch did not report the recording.
    #[error("the recording is not in the stitch report")]
    NotReported,
    /// The stitch reported it otherwise than stitched or up to date.
    #[error("the recording was not stitched (status {})", .0.as_str())]
    NotStitched(Status),
    /// The stitch report names no manifest, or one outside the output folder.
    #[error("the stitch report names no manifest under the output folder")]
    NoManifest,
    /// The output does not verify against its manifest.
    #[error(transparent)]
    Verify(#[from] VerifyError),
}

/// Whether the recording of `event` is safely archived: `Ok`, or why not.
fn archived(
    event: &EventReport,
    chunks: &[&ChunkReport],
    stitched: &Report,
    (storage, out_dir): (&Storage, &Path),
) -> std::result::Result<(), NotArchived> {
    if chunks.len() != event.chunks.len() || chunks.iter().any(|c| c.status == ChunkStatus::Failed) {
        return Err(NotArchived::NotFetched);
    }
    let key = event.recording_id.as_deref().ok_or(NotArchived::NoRecordingId)?;
    let rec = stitched
        .recordings
        .iter()
        .find(|r| r.call_id == event.call_id && r.recording_key == key)
        .ok_or(NotArchived::NotReported)?;
    if !matches!(rec.status, Status::Stitched | Status::Skipped) {
        return Err(NotArchived::NotStitched(rec.status));
    }
    // The manifest is where the stitch put it; the media's name is in it.
    let at = rec
        .manifest
        .as_deref()
        .map(Path::new)
        .filter(|m| m.starts_with(out_dir))
        .ok_or(NotArchived::NoManifest)?;
    verify_archived(storage, at, &event.chunks)?;
    Ok(())
}

/// Where `run` puts the manifest of recording `key` of call `call_id` that
/// starts at `start`, under `out_dir` (see [`crate::Recording::output_name`]).
pub fn manifest_path(call_id: &str, key: &str, start: Option<crate::WallClock>, out_dir: &Path) -> PathBuf {
    let name = crate::input::archive::output_name(start, key);
    crate::io::output_paths(call_id, &name, "mp4", out_dir).manifest
}

/// Whether the recording whose manifest is `at` is safely archived: the
/// manifest, read back, lists every chunk of `chunks`, and the stitched
/// file beside it has the SHA-256 and size the manifest states, computed
/// again (both read through `storage`). The manifest, or why not.
pub fn verify_archived(storage: &Storage, at: &Path, chunks: &[String]) -> std::result::Result<Manifest, VerifyError> {
    let bytes = storage.read_bounded(at, crate::io::READ_BACK_MAX)?;
    let here = Here::new(at, "");
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| here.invalid(format!("not a manifest: {e}")))?;
    let name = Path::new(&manifest.output.path)
        .file_name()
        .ok_or_else(|| here.invalid("names no stitched file"))?;
    let media = at.with_file_name(name);
    for doc in chunks {
        if !manifest.chunks.iter().any(|c| &c.document_id == doc) {
            return Err(VerifyError::ChunkNotListed {
                document_id: doc.clone(),
            });
        }
    }
    let (sha256, bytes) = storage.sha256(&media)?;
    if sha256 != manifest.output.sha256 || bytes != manifest.output.bytes {
        return Err(VerifyError::Mismatch {
            path: media,
            sha256,
            bytes,
            manifest_sha256: manifest.output.sha256,
            manifest_bytes: manifest.output.bytes,
        });
    }
    Ok(manifest)
}

/// Why a recording is not safely archived ([`verify_archived`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The manifest or the stitched file could not be read, or the manifest
    /// is not one (or names no stitched file): the library's error, naming
    /// the file.
    #[error(transparent)]
    File(#[from] Error),
    /// The manifest does not list a chunk of the event.
    #[error("the manifest does not list chunk {document_id}")]
    ChunkNotListed {
        /// The chunk's document id.
        document_id: String,
    },
    /// The stitched file's SHA-256 or size is not the manifest's.
    #[error("{} does not match its manifest (SHA-256 {sha256}, manifest {manifest_sha256})", path.display())]
    Mismatch {
        /// The stitched file.
        path: PathBuf,
        /// Its SHA-256, computed again (hex).
        sha256: String,
        /// Its size.
        bytes: u64,
        /// The SHA-256 the manifest states.
        manifest_sha256: String,
        /// The size the manifest states.
        manifest_bytes: u64,
    },
}
