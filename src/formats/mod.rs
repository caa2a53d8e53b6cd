//! The container formats, read: the stage between the archive's files and
//! the checks.
//!
//! * [`mp4`]: the MP4 reader (bounded box walk, sample tables, codecs) → [`mp4::Movie`];
//! * [`mp3`] and [`wav`]: the audio-only readers, mixed MP3, mixed WAV and
//!   unmixed (one participant per channel) WAV, and [`AudioFile`], either of them;
//! * [`deep`]: decoding for `--deep` (AAC, MP3 and PCM levels; the H.264 NAL walk).
//!
//! Every reader takes a `Read + Seek` (`probe_reader`) or the file or object
//! that a [`Storage`](crate::Storage) opens (`probe_in`), and never learns
//! where its bytes live. Validation checks what they found. The join plans and writers are in
//! `output::mux` (`mux::mp3`, `mux::wav`): a plan says where each chunk lands in the output
//! ([`AudioPlacement`]) before anything is written, so that the timeline and
//! its chapters can be made first and written into the file's head.

pub mod deep;
pub mod mp3;
pub mod mp4;
pub mod wav;

/// Where one chunk landed in an audio-only output: the counterpart of the
/// MP4 join's placement (the manifest's `join` of each chunk).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AudioPlacement {
    /// Output presentation time of the chunk's first presented sample, seconds.
    pub audio_start: f64,
    /// Presented audio of the chunk on its own, seconds.
    pub audio_presented: f64,
    /// Whole priming frames dropped at the chunk's start (MP3 chunks after
    /// the first, where the bit reservoir allows; 0 for WAV).
    pub dropped_priming_packets: u32,
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

use std::path::Path;

use crate::error::{Error, Result};
use crate::formats::deep::{AnalysisError, AudioAnalysis};
use crate::input::metadata::MediaFormat;
use crate::limits::Limits;

/// A probed audio-only chunk: an MP3 or a WAV.
#[derive(Debug, Clone)]
pub enum AudioFile {
    /// MPEG audio frames.
    Mp3(mp3::Mp3),
    /// RIFF/WAVE PCM.
    Wav(wav::Wav),
}

impl AudioFile {
    /// Probes the file at `path` as `format` (`Mp3` or `Wav`).
    pub fn probe(path: &Path, format: MediaFormat, limits: &Limits) -> Result<AudioFile> {
        Self::probe_in(&crate::Storage::local(), path, format, limits)
    }

    /// [`AudioFile::probe`] of the file or object at `path` in `storage`.
    pub fn probe_in(storage: &crate::Storage, path: &Path, format: MediaFormat, limits: &Limits) -> Result<AudioFile> {
        match format {
            MediaFormat::Mp3 => mp3::probe_in(storage, path, limits).map(AudioFile::Mp3),
            MediaFormat::Wav => wav::probe_in(storage, path, limits).map(AudioFile::Wav),
            MediaFormat::Mp4 => Self::probe_reader(std::io::empty(), 0, path, format, limits),
        }
    }

    /// Probes `format` from any seekable reader of `size` bytes; `path` names it in errors.
    pub fn probe_reader<R: std::io::Read + std::io::Seek>(
        r: R,
        size: u64,
        path: &Path,
        format: MediaFormat,
        limits: &Limits,
    ) -> Result<AudioFile> {
        match format {
            MediaFormat::Mp3 => mp3::probe_reader(r, size, path, limits).map(AudioFile::Mp3),
            MediaFormat::Wav => wav::probe_reader(r, size, path, limits).map(AudioFile::Wav),
            MediaFormat::Mp4 => Err(Error::Usage(format!(
                "{}: an MP4 is probed by recstitch::probe, not as audio",
                path.display()
            ))),
        }
    }

    /// The MP3, when it is one.
    pub fn as_mp3(&self) -> Option<&mp3::Mp3> {
        match self {
            AudioFile::Mp3(m) => Some(m),
            AudioFile::Wav(_) => None,
        }
    }

    /// The WAV, when it is one.
    pub fn as_wav(&self) -> Option<&wav::Wav> {
        match self {
            AudioFile::Wav(w) => Some(w),
            AudioFile::Mp3(_) => None,
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        match self {
            AudioFile::Mp3(m) => &m.path,
            AudioFile::Wav(w) => &w.path,
        }
    }

    /// Its format.
    pub fn format(&self) -> MediaFormat {
        match self {
            AudioFile::Mp3(_) => MediaFormat::Mp3,
            AudioFile::Wav(_) => MediaFormat::Wav,
        }
    }

    /// Samples per second.
    pub fn sample_rate(&self) -> u32 {
        match self {
            AudioFile::Mp3(m) => m.sample_rate,
            AudioFile::Wav(w) => w.sample_rate,
        }
    }

    /// Channels.
    pub fn channels(&self) -> u32 {
        u32::from(match self {
            AudioFile::Mp3(m) => m.channels,
            AudioFile::Wav(w) => w.channels,
        })
    }

    /// Presented duration, milliseconds.
    pub fn duration_ms(&self) -> f64 {
        match self {
            AudioFile::Mp3(m) => m.duration_ms(),
            AudioFile::Wav(w) => w.duration_ms(),
        }
    }

    /// Average bit rate of the audio, bits per second.
    pub fn bit_rate(&self) -> f64 {
        match self {
            AudioFile::Mp3(m) => m.bitrate() as f64,
            AudioFile::Wav(w) => w.byte_rate() as f64 * 8.0,
        }
    }

    /// What the reader tolerated (junk skipped, odd sizes), one sentence each.
    pub fn quirks(&self) -> &[String] {
        match self {
            AudioFile::Mp3(m) => &m.quirks,
            AudioFile::Wav(w) => &w.quirks,
        }
    }

    /// How the file is cut short, when it is.
    pub fn truncated(&self) -> Option<&str> {
        match self {
            AudioFile::Mp3(m) => m.truncated.as_deref(),
            AudioFile::Wav(w) => w.truncated.as_deref(),
        }
    }

    /// Decodes every sample (`--deep`): levels, decode errors, clipping.
    pub fn analyse(&self, storage: &crate::Storage, limits: &Limits) -> Result<AudioAnalysis, AnalysisError> {
        match self {
            AudioFile::Mp3(m) => mp3::analyse(storage, m, limits),
            AudioFile::Wav(w) => wav::analyse(storage, w, limits),
        }
    }

    /// The parameters a decoder cannot follow a change of, mid-stream.
    pub fn stream_key(&self) -> String {
        match self {
            AudioFile::Mp3(m) => format!("MP3 {} Hz, {} channel(s)", m.sample_rate, m.channels),
            AudioFile::Wav(w) => format!(
                "WAV {} Hz, {} channel(s), {}-bit",
                w.sample_rate, w.channels, w.bits_per_sample
            ),
        }
    }
}
