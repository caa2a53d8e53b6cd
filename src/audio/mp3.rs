//! MP3 chunks: reading MPEG audio frames, planning the join, writing one MP3 with ID3v2 chapters and a Xing/LAME header.
// Placeholder until the reader lands.
use crate::error::{Error, Result};
use crate::limits::Limits;
use std::path::{Path, PathBuf};
/// A probed MP3 chunk.
#[derive(Debug, Clone)]
pub struct Mp3 {
    /// The file.
    pub path: PathBuf,
    /// Sample rate.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u16,
    /// Quirks.
    pub quirks: Vec<String>,
    /// Truncation.
    pub truncated: Option<String>,
}
impl Mp3 {
    /// Duration.
    pub fn duration_ms(&self) -> f64 {
        0.0
    }
    /// Bit rate.
    pub fn bitrate(&self) -> f64 {
        0.0
    }
}
/// Probe.
pub fn probe_reader<R: std::io::Read + std::io::Seek>(_r: R, _size: u64, path: &Path, _l: &Limits) -> Result<Mp3> {
    Err(Error::Usage(path.display().to_string()))
}
/// Analyse.
pub fn analyse(_m: &Mp3, _l: &Limits) -> std::result::Result<crate::deep::AudioAnalysis, String> {
    Err(String::new())
}
