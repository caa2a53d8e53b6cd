//! # recstitch
//!
//! Turns downloaded call-recording chunks (an MP4 plus a JSON metadata file
//! per chunk, and a completion event) into complete, verified archive files:
//! one MP4 per recording, stitched without re-encoding with audio and video in
//! sync at every join, plus a manifest and WebVTT chapters.
//!
//! The data flows through the modules in order:
//!
//! ```text
//! archive::Archive::scan    find metadata, media and event files; pair; group into recordings
//! media::probe              per chunk: bounded box read of moov -> tracks, sample tables, codecs
//! Recording::validate       rules (and deep checks) -> Vec<Finding { code, severity, chunkIndex, message }>
//! timeline                  wall clock <-> output time: segments, pauses, gaps, chapters
//! stitch::Stitcher::stitch  join plan (mux), moov first, sample bytes copied; manifest + chapters .vtt, atomically
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
//! (`moof`/`traf`/`trun`); audio-only MP4 when the metadata has no video
//! configuration; every metadata and event variant the service has written
//! (see the README). Not supported, and reported as findings: other codecs
//! (HEVC, MPEG-4 Part 2, MP3, HE-AAC), unmixed audio, mp3/wav recordings, and
//! codec changes between chunks that a decoder cannot follow (picture size,
//! sample rate, channels).
//!
//! With the cargo feature `object-store` (enabled by `cli`), archives and
//! output folders may also be object-store URLs (`az://container/prefix`):
//! see the `store` module.
//!
//! Every size and count read from a file is bounded by [`Limits`]; errors
//! are one [`Error`] type that names the file and the place in it.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

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
