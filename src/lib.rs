//! # recstitch
//!
//! Turns downloaded call-recording chunks (an MP4 plus a JSON metadata file
//! per chunk, and a completion event) into complete, verified archive files.
//!
//! The data flows through the modules in order:
//!
//! ```text
//! archive::Archive::scan   find metadata, media and event files; pair; group into recordings
//! media::probe             per chunk: bounded box read of moov -> tracks, sample tables, codecs
//! Recording::validate      rules -> Vec<Finding { code, severity, chunkIndex, message }>
//! report::Report           one JSON schema for every command
//! ```
//!
//! ```no_run
//! use recstitch::{Archive, ScanOptions, ValidateOptions};
//!
//! let archive = Archive::scan("fixtures/cases/good".as_ref(), &ScanOptions::default())?;
//! for recording in &archive.recordings {
//!     let checked = recording.validate(&ValidateOptions::default());
//!     for f in &checked.findings {
//!         println!("{} {} {}", recording.key, f.code, f.message);
//!     }
//! }
//! # Ok::<(), recstitch::Error>(())
//! ```
//!
//! ## Inputs
//!
//! Supported: MP4 (`ftyp` first) with one H.264 (`avc1`/`avc3`) video track
//! and one AAC-LC (`mp4a`) audio track, progressive or fragmented
//! (`moof`/`traf`/`trun`); audio-only MP4 when the metadata has no video
//! configuration; every metadata and event variant the service has written.
//! Not supported (reported as findings): other codecs, unmixed audio, mp3/wav
//! recordings.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod archive;
pub mod deep;
pub mod error;
pub mod finding;
pub mod limits;
pub mod media;
pub mod metadata;
pub mod mux;
pub mod picture;
pub mod pipeline;
pub mod report;
pub mod synth;
pub mod timeline;
pub mod validate;

pub use archive::{Archive, Chunk, FileKind, Orphan, Recording, ScanOptions};
pub use error::{Error, Result};
pub use finding::{Code, Finding, Severity};
pub use limits::Limits;
pub use media::{probe, MediaInfo};
pub use metadata::{ChunkMetadata, CompletionEvent, WallClock};
pub use mux::{Manifest, StitchOptions, Stitcher};
pub use report::{RecordingReport, Report, Status};
pub use timeline::GapMode;
pub use validate::{ValidateOptions, ValidatedRecording};
