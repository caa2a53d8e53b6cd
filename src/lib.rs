//! # recstitch
//!
//! Turns downloaded call-recording chunks (a media file plus a JSON metadata
//! file per chunk, and a completion event) into complete, verified archive
//! files: one file per recording in its format (MP4, MP3, WAV), stitched
//! without re-encoding with audio and video in sync at every join, plus a
//! manifest and WebVTT chapters.
//!
//! The data flows through the modules in order:
//!
//! ```text
//! archive::Archive::scan    find metadata, media and event files; pair; group into recordings
//! media::probe              per MP4 chunk: bounded box read of moov -> tracks, sample tables, codecs
//! audio::AudioFile::probe   per MP3 / WAV chunk: frame walk or RIFF chunk walk
//! Recording::validate       rules (and deep checks) -> Vec<Finding { code, severity, chunkIndex, message }>
//! timeline                  wall clock <-> output time: segments, pauses, gaps, chapters
//! stitch::Stitcher::stitch  join plan (mux: MP4, MP3, WAV), header first, media bytes copied; manifest + chapters .vtt, atomically
//! pipeline::run_batch       all of it over an archive, in parallel, resumable
//! report                    one JSON schema for every command
//! ```
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
//! output folders may also be object-store URLs (`az://container/prefix`):
//! see the `store` module.
//!
//! With the cargo feature `worker` (enabled by `cli`), the `worker` module
//! takes completion events from an Azure Storage Queue and fetches,
//! stitches and verifies each recording: the archival worker, as a type.
//!
//! Every size and count read from a file is bounded by [`Limits`]; errors
//! are one [`Error`] type that names the file and the place in it.

#![deny(missing_docs)]
#![forbid(unsafe_code)]
// No function over 80 lines (clippy.toml): CI keeps it so.
#![warn(clippy::too_many_lines)]

pub mod archive;
pub mod audio;
pub mod deep;
pub mod error;
#[cfg(feature = "fetch")]
pub mod fetch;
pub mod finding;
pub mod io;
pub mod limits;
pub mod media;
pub mod metadata;
pub mod mux;
pub mod picture;
pub mod pipeline;
pub mod report;
pub mod stitch;
#[cfg(feature = "object-store")]
pub mod store;
pub mod synth;
pub mod timeline;
pub mod validate;
#[cfg(feature = "worker")]
pub mod worker;

pub use archive::{Archive, Chunk, FileKind, Orphan, Recording, ScanOptions};
pub use error::{Error, Result};
pub use finding::{Code, Finding, Severity};
pub use limits::Limits;
pub use media::{probe, Movie};
pub use metadata::{ChunkMetadata, CompletionEvent, WallClock};
pub use report::{RecordingReport, Report, Status};
pub use stitch::{Manifest, StitchOptions, Stitcher};
pub use timeline::GapMode;
pub use validate::{ValidateOptions, ValidatedRecording};
