//! Resource budgets applied to everything read from input files.
//!
//! Every size and count taken from a file is checked against one of these
//! before it is used to allocate, loop or seek. The defaults are generous for
//! real recordings (a 4-hour chunk at 16 fps has about 230,000 video and
//! 225,000 audio samples) and small enough that a hostile file cannot exhaust
//! memory.
//!
//! Every check goes through `Limits::check` with a [`Limit`], so that an
//! exceeded budget is always an [`Error::Limit`] naming the field to raise.

use crate::error::{Error, Here, Result};

/// The budgets. Construct with [`Limits::default`] and adjust fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest `moov` (or one `moof`) box read into memory, in bytes.
    /// Default 64 MiB: a 4-hour chunk's `moov` is under 4 MiB.
    pub max_moov_bytes: u64,
    /// Most samples in one track of one chunk (sum over fragments).
    /// Default 4,000,000.
    pub max_samples_per_track: u64,
    /// Most tracks in one file. Default 16.
    pub max_tracks: usize,
    /// Most sample descriptions (`stsd` entries) in one track. Default 16.
    pub max_sample_descriptions: usize,
    /// Most entries in one edit list. Default 64.
    pub max_edits: usize,
    /// Deepest box nesting followed. Default 16 (a real `stsd` entry is at depth 8).
    pub max_box_depth: usize,
    /// Most top-level boxes (and `moof` fragments) walked in one file. Default 100,000.
    pub max_top_level_boxes: u64,
    /// Largest metadata or event JSON file read, in bytes. Default 16 MiB.
    pub max_json_bytes: u64,
    /// Most chunks in one recording. Default 10,000.
    pub max_chunks_per_recording: usize,
    /// Most files examined in one archive scan. Default 1,000,000.
    pub max_archive_files: usize,
    /// Deepest folder nesting followed in an archive scan. Default 32.
    pub max_folder_depth: usize,
    /// Largest single sample read into memory by the deep checks, in bytes.
    /// Default 64 MiB (a 1080p key frame is well under 1 MiB).
    pub max_sample_bytes: u64,
    /// Most participants listed in one chunk's metadata. Default 10,000 (a
    /// call has at most a few hundred; each costs memory and a manifest line).
    pub max_participants_per_chunk: usize,
    /// Most pause intervals in one chunk's metadata. Default 10,000 (one a
    /// second for almost 3 hours; each becomes a manifest entry and a chapter).
    pub max_pauses_per_chunk: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_moov_bytes: 64 << 20,
            max_samples_per_track: 4_000_000,
            max_tracks: 16,
            max_sample_descriptions: 16,
            max_edits: 64,
            max_box_depth: 16,
            max_top_level_boxes: 100_000,
            max_json_bytes: 16 << 20,
            max_chunks_per_recording: 10_000,
            max_archive_files: 1_000_000,
            max_folder_depth: 32,
            max_sample_bytes: 64 << 20,
            max_participants_per_chunk: 10_000,
            max_pauses_per_chunk: 10_000,
        }
    }
}

/// One of the budgets of [`Limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// [`Limits::max_moov_bytes`].
    MoovBytes,
    /// [`Limits::max_samples_per_track`].
    SamplesPerTrack,
    /// [`Limits::max_tracks`].
    Tracks,
    /// [`Limits::max_sample_descriptions`].
    SampleDescriptions,
    /// [`Limits::max_edits`].
    Edits,
    /// [`Limits::max_box_depth`].
    BoxDepth,
    /// [`Limits::max_top_level_boxes`].
    TopLevelBoxes,
    /// [`Limits::max_json_bytes`].
    JsonBytes,
    /// [`Limits::max_chunks_per_recording`].
    ChunksPerRecording,
    /// [`Limits::max_archive_files`].
    ArchiveFiles,
    /// [`Limits::max_folder_depth`].
    FolderDepth,
    /// [`Limits::max_sample_bytes`].
    SampleBytes,
    /// [`Limits::max_participants_per_chunk`].
    ParticipantsPerChunk,
    /// [`Limits::max_pauses_per_chunk`].
    PausesPerChunk,
}

impl Limit {
    /// The name of its field in [`Limits`].
    pub fn name(self) -> &'static str {
        match self {
            Limit::MoovBytes => "max_moov_bytes",
            Limit::SamplesPerTrack => "max_samples_per_track",
            Limit::Tracks => "max_tracks",
            Limit::SampleDescriptions => "max_sample_descriptions",
            Limit::Edits => "max_edits",
            Limit::BoxDepth => "max_box_depth",
            Limit::TopLevelBoxes => "max_top_level_boxes",
            Limit::JsonBytes => "max_json_bytes",
            Limit::ChunksPerRecording => "max_chunks_per_recording",
            Limit::ArchiveFiles => "max_archive_files",
            Limit::FolderDepth => "max_folder_depth",
            Limit::SampleBytes => "max_sample_bytes",
            Limit::ParticipantsPerChunk => "max_participants_per_chunk",
            Limit::PausesPerChunk => "max_pauses_per_chunk",
        }
    }

    /// An [`Error::Limit`] at `here` when `value` (of `what`) is over `limit`.
    pub(crate) fn check(self, value: u64, limit: u64, here: &Here, what: &str) -> Result<()> {
        if value <= limit {
            return Ok(());
        }
        Err(Error::Limit {
            path: here.path.to_path_buf(),
            context: here.context.clone(),
            what: what.into(),
            name: self.name(),
            value,
            limit,
        })
    }
}

/// A count as `u64` (lossless on every platform Rust supports).
pub(crate) fn wide(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl Limits {
    /// The value of one budget.
    pub fn get(&self, which: Limit) -> u64 {
        match which {
            Limit::MoovBytes => self.max_moov_bytes,
            Limit::SamplesPerTrack => self.max_samples_per_track,
            Limit::Tracks => wide(self.max_tracks),
            Limit::SampleDescriptions => wide(self.max_sample_descriptions),
            Limit::Edits => wide(self.max_edits),
            Limit::BoxDepth => wide(self.max_box_depth),
            Limit::TopLevelBoxes => self.max_top_level_boxes,
            Limit::JsonBytes => self.max_json_bytes,
            Limit::ChunksPerRecording => wide(self.max_chunks_per_recording),
            Limit::ArchiveFiles => wide(self.max_archive_files),
            Limit::FolderDepth => wide(self.max_folder_depth),
            Limit::SampleBytes => self.max_sample_bytes,
            Limit::ParticipantsPerChunk => wide(self.max_participants_per_chunk),
            Limit::PausesPerChunk => wide(self.max_pauses_per_chunk),
        }
    }

    /// An [`Error::Limit`] at `here` when `value` (of `what`) is over the
    /// budget `which`.
    pub(crate) fn check(&self, which: Limit, value: u64, here: &Here, what: &str) -> Result<()> {
        which.check(value, self.get(which), here, what)
    }

    /// [`Limits::check`] for a count.
    pub(crate) fn check_count(&self, which: Limit, count: usize, here: &Here, what: &str) -> Result<()> {
        self.check(which, wide(count), here, what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn a_check_names_the_field_to_raise() {
        let limits = Limits {
            max_tracks: 2,
            ..Limits::default()
        };
        let here = Here::new(Path::new("c.mp4"), "moov");
        assert!(limits.check_count(Limit::Tracks, 2, &here, "number of tracks").is_ok());
        let e = limits
            .check_count(Limit::Tracks, 3, &here, "number of tracks")
            .unwrap_err();
        assert_eq!(e.category(), "limit");
        assert_eq!(
            e.to_string(),
            "c.mp4: moov: number of tracks is 3, over the limit 2 (Limits::max_tracks)"
        );
        assert_eq!(limits.get(Limit::SampleBytes), 64 << 20);
    }
}
