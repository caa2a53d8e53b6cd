//! Audio-only recordings: mixed MP3, mixed WAV and unmixed (one participant
//! per channel) WAV chunks, probed and stitched without re-encoding.
//!
//! Each format has a reader (`probe`), a join plan (`plan`) and a writer
//! (`write`), the counterparts of [`crate::media`] and [`crate::mux`] for
//! MP4. The plan says where each chunk lands in the output
//! ([`AudioPlacement`]) before anything is written, so that the timeline and
//! its chapters can be made first and written into the file's head.

pub mod mp3;
pub mod wav;

/// Where one chunk landed in an audio-only output: the counterpart of
/// [`crate::mux::plan::Placement`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudioPlacement {
    /// Output presentation time of the chunk's first presented sample, seconds.
    pub audio_start: f64,
    /// Presented audio of the chunk on its own, seconds.
    pub audio_presented: f64,
    /// Samples of the chunk's encoder delay (priming) kept in the output
    /// (MP3 chunks after the first; 0 for WAV).
    pub leftover_priming_samples: u64,
    /// Samples of the chunk's encoder padding kept at its end (MP3 chunks
    /// before the last; 0 for WAV).
    pub tail_padding_samples: u64,
    /// Samples of silence inserted before and inside the chunk (`--gaps wallclock`).
    pub silence_samples: u64,
}

/// What an audio-only output holds, known before it is written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudioLayout {
    /// Where each chunk landed, in chunk order.
    pub placements: Vec<AudioPlacement>,
    /// Presented duration of the output, seconds.
    pub duration: f64,
    /// Samples per channel the output presents (silence included).
    pub samples: u64,
    /// Packets written: MPEG audio frames for MP3 (silent frames included),
    /// 0 for WAV.
    pub packets: u64,
}
