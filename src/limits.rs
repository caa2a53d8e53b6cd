//! Resource budgets applied to everything read from input files.
//!
//! Every size and count taken from a file is checked against one of these
//! before it is used to allocate, loop or seek. The defaults are generous for
//! real recordings (a 4-hour chunk at 16 fps has about 230,000 video and
//! 225,000 audio samples) and small enough that a hostile file cannot exhaust
//! memory.

/// The budgets. Construct with [`Limits::default`] and adjust fields.
#[derive(Debug, Clone, PartialEq, Eq)]
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
        }
    }
}
