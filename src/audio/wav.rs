//! WAV chunks: reading RIFF/WAVE (and RF64), planning the join, writing one WAV (RF64 past 4 GiB) with cue points.
// Placeholder until the reader lands.
use crate::error::{Error, Result};
use crate::limits::Limits;
use std::path::{Path, PathBuf};
/// A probed WAV chunk.
#[derive(Debug, Clone)]
pub struct Wav {
    /// The file.
    pub path: PathBuf,
    /// Sample rate.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u16,
    /// Bits.
    pub bits_per_sample: u16,
    /// Quirks.
    pub quirks: Vec<String>,
    /// Truncation.
    pub truncated: Option<String>,
}
impl Wav {
    /// Duration.
    pub fn duration_ms(&self) -> f64 {
        0.0
    }
    /// Byte rate.
    pub fn byte_rate(&self) -> u64 {
        0
    }
}
/// Probe.
pub fn probe_reader<R: std::io::Read + std::io::Seek>(_r: R, _size: u64, path: &Path, _l: &Limits) -> Result<Wav> {
    Err(Error::Usage(path.display().to_string()))
}
/// Analyse.
pub fn analyse(_m: &Wav, _l: &Limits) -> std::result::Result<crate::deep::AudioAnalysis, String> {
    Err(String::new())
}
/// Levels.
pub fn channel_levels(_m: &Wav, _l: &Limits) -> std::result::Result<Vec<f64>, String> {
    Err(String::new())
}
