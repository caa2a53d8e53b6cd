//! Resource budgets applied to everything read from input files.
//!
//! Every size and count taken from a file is checked against one of these
//! before it is used to allocate, loop or seek. The defaults are generous for
//! real recordings (a 4-hour chunk at 16 fps has about 230,000 video and
//! 225,000 audio samples) and small enough that a hostile file cannot exhaust
//! memory.
//!
//! Every check goes through `Limits::check` with a [`Limit`], so that an
//! exceeded budget is always an [`Error::Limit`] naming the budget to raise.
//!
//! A budget other than the default is set through [`Limits::with`], which
//! refuses a value the code cannot work with:
//!
//! ```
//! use recstitch::limits::{Limit, Limits};
//!
//! let limits = Limits::default().with(Limit::Tracks, 4)?.with(Limit::JsonBytes, 1 << 20)?;
//! assert_eq!(limits.max_tracks(), 4);
//! assert!(Limits::default().with(Limit::Tracks, 0).is_err()); // no file has no track
//! # Ok::<(), recstitch::Error>(())
//! ```

use crate::error::{Error, Here, Result};

/// The budgets: [`Limits::default`], adjusted with [`Limits::with`]; each
/// read with its getter (or [`Limits::get`]).
///
/// The fields are visible inside the crate only, where the readers check
/// against them; outside, a `Limits` holds only values [`Limits::with`]
/// accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    // Each documented at its getter of the same name.
    pub(crate) max_moov_bytes: u64,
    pub(crate) max_samples_per_track: u64,
    pub(crate) max_tracks: usize,
    pub(crate) max_sample_descriptions: usize,
    pub(crate) max_edits: usize,
    pub(crate) max_box_depth: usize,
    pub(crate) max_top_level_boxes: u64,
    pub(crate) max_json_bytes: u64,
    pub(crate) max_chunks_per_recording: usize,
    pub(crate) max_archive_files: usize,
    pub(crate) max_folder_depth: usize,
    pub(crate) max_sample_bytes: u64,
    pub(crate) max_participants_per_chunk: usize,
    pub(crate) max_pauses_per_chunk: usize,
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

/// The deepest box nesting [`Limits::with`] accepts for
/// [`Limit::BoxDepth`] (default 16; a real file nests about 8): the box
/// walk recurses once per level, several KiB of stack each in a debug
/// build, and this many levels fit in half a thread's default stack
/// (`tests/malformed.rs` walks them on 1 MiB).
pub const MAX_BOX_DEPTH: usize = 64;

/// One of the budgets of [`Limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// [`Limits::max_moov_bytes()`].
    MoovBytes,
    /// [`Limits::max_samples_per_track()`].
    SamplesPerTrack,
    /// [`Limits::max_tracks()`].
    Tracks,
    /// [`Limits::max_sample_descriptions()`].
    SampleDescriptions,
    /// [`Limits::max_edits()`].
    Edits,
    /// [`Limits::max_box_depth()`].
    BoxDepth,
    /// [`Limits::max_top_level_boxes()`].
    TopLevelBoxes,
    /// [`Limits::max_json_bytes()`].
    JsonBytes,
    /// [`Limits::max_chunks_per_recording()`].
    ChunksPerRecording,
    /// [`Limits::max_archive_files()`].
    ArchiveFiles,
    /// [`Limits::max_folder_depth()`].
    FolderDepth,
    /// [`Limits::max_sample_bytes()`].
    SampleBytes,
    /// [`Limits::max_participants_per_chunk()`].
    ParticipantsPerChunk,
    /// [`Limits::max_pauses_per_chunk()`].
    PausesPerChunk,
}

impl Limit {
    /// Its name in [`Limits`] (the getter's), as errors give it.
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

    /// The values [`Limits::with`] accepts for this budget. 0 only where an
    /// input may do without: subfolders (0: a flat archive), edit lists,
    /// participants, pauses (0 refuses an input that has one). At most
    /// [`MAX_BOX_DEPTH`] for [`Limit::BoxDepth`], `u32::MAX` for
    /// [`Limit::SamplesPerTrack`] (MP4's sample counts are 32-bit), the
    /// largest buffer (`isize::MAX` bytes) for the budgets of bytes held in
    /// memory, and what a `usize` holds for the counts.
    pub fn accepted(self) -> std::ops::RangeInclusive<u64> {
        let counts = wide(usize::MAX);
        let buffer = u64::try_from(isize::MAX).unwrap_or(u64::MAX);
        match self {
            Limit::MoovBytes | Limit::JsonBytes | Limit::SampleBytes => 1..=buffer,
            Limit::SamplesPerTrack => 1..=u64::from(u32::MAX),
            Limit::TopLevelBoxes => 1..=u64::MAX,
            Limit::BoxDepth => 1..=wide(MAX_BOX_DEPTH),
            Limit::Tracks | Limit::SampleDescriptions | Limit::ChunksPerRecording | Limit::ArchiveFiles => 1..=counts,
            // 0: a flat archive; no edit list, participant or pause accepted.
            Limit::FolderDepth | Limit::Edits | Limit::ParticipantsPerChunk | Limit::PausesPerChunk => 0..=counts,
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
    /// Largest `moov` (or one `moof`) box read into memory, in bytes.
    /// Default 64 MiB: a 4-hour chunk's `moov` is under 4 MiB.
    pub fn max_moov_bytes(&self) -> u64 {
        self.max_moov_bytes
    }

    /// Most samples in one track of one chunk (sum over fragments).
    /// Default 4,000,000.
    pub fn max_samples_per_track(&self) -> u64 {
        self.max_samples_per_track
    }

    /// Most tracks in one file. Default 16.
    pub fn max_tracks(&self) -> usize {
        self.max_tracks
    }

    /// Most sample descriptions (`stsd` entries) in one track. Default 16.
    pub fn max_sample_descriptions(&self) -> usize {
        self.max_sample_descriptions
    }

    /// Most entries in one edit list. Default 64.
    pub fn max_edits(&self) -> usize {
        self.max_edits
    }

    /// Deepest box nesting followed. Default 16 (a real `stsd` entry is at depth 8).
    pub fn max_box_depth(&self) -> usize {
        self.max_box_depth
    }

    /// Most top-level boxes (and `moof` fragments) walked in one file. Default 100,000.
    pub fn max_top_level_boxes(&self) -> u64 {
        self.max_top_level_boxes
    }

    /// Largest metadata or event JSON file read, in bytes. Default 16 MiB.
    pub fn max_json_bytes(&self) -> u64 {
        self.max_json_bytes
    }

    /// Most chunks in one recording. Default 10,000.
    pub fn max_chunks_per_recording(&self) -> usize {
        self.max_chunks_per_recording
    }

    /// Most files examined in one archive scan. Default 1,000,000.
    pub fn max_archive_files(&self) -> usize {
        self.max_archive_files
    }

    /// Deepest folder nesting followed in an archive scan. Default 32.
    pub fn max_folder_depth(&self) -> usize {
        self.max_folder_depth
    }

    /// Largest single sample read into memory by the deep checks, in bytes.
    /// Default 64 MiB (a 1080p key frame is well under 1 MiB).
    pub fn max_sample_bytes(&self) -> u64 {
        self.max_sample_bytes
    }

    /// Most participants listed in one chunk's metadata. Default 10,000 (a
    /// call has at most a few hundred; each costs memory and a manifest line).
    pub fn max_participants_per_chunk(&self) -> usize {
        self.max_participants_per_chunk
    }

    /// Most pause intervals in one chunk's metadata. Default 10,000 (one a
    /// second for almost 3 hours; each becomes a manifest entry and a chapter).
    pub fn max_pauses_per_chunk(&self) -> usize {
        self.max_pauses_per_chunk
    }

    /// These budgets with `which` set to `value`; `Err` ([`Error::Usage`])
    /// when `value` is outside [`Limit::accepted`]: 0 where every input
    /// would fail against it (every file has a `moov`, a track, a sample,
    /// a box; every recording a chunk, every archive a file), and more than the code can hold or
    /// walk (a byte budget over the largest buffer this machine can
    /// allocate, more samples in a track than MP4's 32-bit counts, a box
    /// depth past what the recursive walk may nest safely).
    pub fn with(mut self, which: Limit, value: u64) -> Result<Limits> {
        let accepted = which.accepted();
        if !accepted.contains(&value) {
            return Err(Error::Usage(format!(
                "Limits::{} = {value}: accepted values are {} to {}",
                which.name(),
                accepted.start(),
                accepted.end()
            )));
        }
        let count = || usize::try_from(value).unwrap_or(usize::MAX);
        match which {
            Limit::MoovBytes => self.max_moov_bytes = value,
            Limit::SamplesPerTrack => self.max_samples_per_track = value,
            Limit::Tracks => self.max_tracks = count(),
            Limit::SampleDescriptions => self.max_sample_descriptions = count(),
            Limit::Edits => self.max_edits = count(),
            Limit::BoxDepth => self.max_box_depth = count(),
            Limit::TopLevelBoxes => self.max_top_level_boxes = value,
            Limit::JsonBytes => self.max_json_bytes = value,
            Limit::ChunksPerRecording => self.max_chunks_per_recording = count(),
            Limit::ArchiveFiles => self.max_archive_files = count(),
            Limit::FolderDepth => self.max_folder_depth = count(),
            Limit::SampleBytes => self.max_sample_bytes = value,
            Limit::ParticipantsPerChunk => self.max_participants_per_chunk = count(),
            Limit::PausesPerChunk => self.max_pauses_per_chunk = count(),
        }
        Ok(self)
    }

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

    /// Checks how many files a listing of the archive at `root` has found
    /// so far (a local walk or an object-store listing).
    pub(crate) fn check_archive_files(&self, count: usize, root: &std::path::Path) -> Result<()> {
        self.check_count(Limit::ArchiveFiles, count, &Here::new(root, ""), "number of files")
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

    const ALL: [Limit; 14] = [
        Limit::MoovBytes,
        Limit::SamplesPerTrack,
        Limit::Tracks,
        Limit::SampleDescriptions,
        Limit::Edits,
        Limit::BoxDepth,
        Limit::TopLevelBoxes,
        Limit::JsonBytes,
        Limit::ChunksPerRecording,
        Limit::ArchiveFiles,
        Limit::FolderDepth,
        Limit::SampleBytes,
        Limit::ParticipantsPerChunk,
        Limit::PausesPerChunk,
    ];

    #[test]
    fn with_sets_one_budget_and_refuses_what_the_code_cannot_work_with() {
        let defaults = Limits::default();
        for which in ALL {
            let accepted = which.accepted();
            assert!(accepted.contains(&defaults.get(which)), "{}", which.name());
            for value in [*accepted.start(), 7, *accepted.end()] {
                let set = defaults.clone().with(which, value).unwrap();
                assert_eq!(set.get(which), value, "{}", which.name());
                for other in ALL.iter().filter(|o| **o != which) {
                    assert_eq!(set.get(*other), defaults.get(*other));
                }
            }
            if let Some(over) = accepted.end().checked_add(1) {
                let e = defaults.clone().with(which, over).unwrap_err();
                assert_eq!(e.category(), "usage");
                assert!(e.to_string().contains(which.name()), "{e}");
            }
        }
        let zero_refused: Vec<&str> = ALL
            .iter()
            .filter(|w| defaults.clone().with(**w, 0).is_err())
            .map(|w| w.name())
            .collect();
        assert_eq!(zero_refused.len(), 10, "{zero_refused:?}");
        for flat in [
            Limit::FolderDepth,
            Limit::Edits,
            Limit::ParticipantsPerChunk,
            Limit::PausesPerChunk,
        ] {
            assert!(!zero_refused.contains(&flat.name()));
        }
        let e = defaults.with(Limit::BoxDepth, 65).unwrap_err();
        assert_eq!(e.to_string(), "Limits::max_box_depth = 65: accepted values are 1 to 64");
        assert_eq!(Limits::default().with(Limit::Tracks, 3).unwrap().max_tracks(), 3);
    }
}
