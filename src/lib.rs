//! # recstitch
//!
//! Turns downloaded call-recording chunks (a media file plus a JSON metadata
//! file per chunk, and a completion event) into complete, verified archive
//! files: one file per recording in its format (MP4, MP3, WAV), stitched
//! without re-encoding with audio and video in sync at every join, plus a
//! manifest and WebVTT chapters.
//!
//! The folders are the stages the data goes through, in order (the files at
//! the top — `error`, `limits`, `finding`, `observe`, `io`, `storage` — are
//! shared by all of them):
//!
//! ```text
//! input::archive::Archive::scan    find metadata, media and event files; pair; group into recordings
//! formats::mp4::probe_in           per MP4 chunk: bounded box read of moov -> tracks, sample tables, codecs
//! formats::AudioFile::probe_in     per MP3 / WAV chunk: frame walk or RIFF chunk walk
//! validate (Recording::validate)   rules (and formats::deep for --deep) -> Vec<Finding { code, severity, chunkIndex, message }>
//! output::timeline                 wall clock <-> output time: segments, pauses, gaps, chapters
//! output::stitch::Stitcher::stitch join plan (MP4, MP3, WAV), header first, media bytes copied; manifest + chapters .vtt, atomically
//! output::report                   one JSON schema for every command
//! batch::run_batch                 all of it over an archive, in parallel, resumable
//! remote                           fetch from the service, object stores, --delete-after, the queue worker
//! ```
//!
//! Everything is read and written through a [`Storage`] the caller passes
//! in (local files by default); the root re-exports what an embedding
//! program needs.
//!
//! ```
//! use recstitch::{Archive, ScanOptions, StitchOptions, Stitcher, ValidateOptions};
//!
//! let archive = Archive::scan("fixtures/cases/good".as_ref(), &ScanOptions::default())?;
//! let out = std::env::temp_dir().join("recstitch-doc-example");
//! for recording in &archive.recordings {
//!     let checked = recording.validate(&ValidateOptions::default());
//!     assert!(checked.is_valid(), "{:?}", checked.findings);
//!     let manifest = Stitcher::new(StitchOptions::default()).stitch(&checked, &out)?;
//!     assert_eq!(manifest.chunks.len(), 3);
//!     println!("{} -> {} ({} bytes)", recording.key, manifest.output.path, manifest.output.bytes);
//! }
//! # Ok::<(), recstitch::Error>(())
//! ```
//!
//! ## Inputs
//!
//! Supported: MP4 (`ftyp` first) with one H.264 (`avc1`/`avc3`) video track
//! and one AAC-LC (`mp4a`) audio track, progressive or fragmented
//! (`moof`/`traf`/`trun`), at the frame rate and size the metadata states or,
//! when it states none, the service's own (8, 15, 16 fps; 1920x1080);
//! audio-only MP4; mixed MP3 (MPEG-1/2/2.5 Layer III), written with ID3v2
//! chapters and a Xing/LAME header; mixed and unmixed WAV (integer PCM,
//! RIFF, RF64, `WAVE_FORMAT_EXTENSIBLE`), written byte for byte with `cue `
//! points (RF64 past 4 GiB), unmixed channels mapped to their participants;
//! every metadata and event variant the service has written (see the
//! README). Not supported, and reported as findings: other codecs (HEVC,
//! MPEG-4 Part 2, MP3 inside MP4, HE-AAC), other containers (Ogg, FLAC,
//! Matroska, raw AAC), unmixed audio other than WAV, float PCM, a file of
//! another format than its metadata names, and changes between chunks that
//! a decoder cannot follow (picture size, sample rate, channels, format).
//!
//! With the cargo feature `object-store` (enabled by `cli`), archives and
//! output folders may also be object-store URLs (`az://container/prefix`)
//! mounted on a [`Storage`]: see the `remote::store` module.
//!
//! With the cargo feature `worker` (enabled by `cli`), the `remote::worker` module
//! takes completion events from an Azure Storage Queue and fetches,
//! stitches and verifies each recording: the archival worker, as a type.
//!
//! Every size and count read from a file is bounded by [`Limits`]; errors
//! are one [`Error`] type that names the file and the place in it.

#![deny(missing_docs)]
#![forbid(unsafe_code)]
// No function over 80 lines (clippy.toml): CI keeps it so.
#![warn(clippy::too_many_lines)]

// README's Rust examples are compiled, and run unless marked `no_run`, with
// the doc tests (the async one needs `object-store`).
#[cfg(all(doctest, feature = "object-store"))]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;

// Shared by every stage.
pub mod error;
pub mod finding;
pub mod io;
pub mod limits;
pub mod observe;
pub mod storage;

// The stages, in the order the data goes through them.
pub mod batch;
pub mod formats;
pub mod input;
pub mod output;
#[cfg(any(feature = "fetch", feature = "object-store"))]
pub mod remote;
pub mod validate;

// What an embedding program (an archival worker) needs, at the root.
pub use batch::{run_batch, BatchOptions, Progress, Shard};
pub use error::{Error, Result};
pub use finding::{Code, Finding, Severity};
pub use formats::mp4::{probe, Movie};
pub use formats::AudioFile;
pub use input::archive::{Archive, Chunk, FileKind, Orphan, Recording, ScanOptions};
pub use input::metadata::{ChunkMetadata, CompletionEvent, MediaFormat, WallClock};
pub use io::Cancel;
pub use limits::{Limit, Limits};
pub use observe::{Observer, Quiet};
pub use output::report::{RecordingReport, Report, Status};
pub use output::stitch::{Manifest, StitchOptions, Stitcher};
pub use output::timeline::GapMode;
#[cfg(feature = "fetch")]
pub use remote::archival::{delete_archived, verify_archived};
#[cfg(feature = "fetch")]
pub use remote::fetch::{Credentials, Deletion, FetchOptions, FetchReport, Fetcher, TrustedHosts};
#[cfg(feature = "worker")]
pub use remote::worker::{Worker, WorkerOptions};
pub use storage::Storage;
pub use validate::{ValidateOptions, ValidatedRecording};
