//! Placeholder until the Wav writer lands.
use crate::audio::wav::Wav;
use crate::audio::AudioLayout;
use crate::error::{Error, Result};
use crate::timeline::{Chapter, Hold};
use std::path::Path;
/// Plan.
#[derive(Debug, Clone)]
pub struct WavPlan {
    /// Layout.
    pub layout: AudioLayout,
}
/// Plan.
pub fn plan(_chunks: &[&Wav], _holds: &[Vec<Hold>]) -> Result<WavPlan> {
    Err(Error::Usage("not yet".into()))
}
/// Output.
pub struct WavOutput<'a> {
    /// Plan.
    pub plan: &'a WavPlan,
    /// Chunks.
    pub chunks: &'a [&'a Wav],
    /// Sources.
    pub sources: &'a [super::write::Source],
    /// Chapters.
    pub chapters: &'a [Chapter],
    /// Cancel.
    pub cancel: crate::io::Cancel,
}
/// Write.
pub fn write(_input: &WavOutput, _out: &std::fs::File, _p: &Path) -> Result<super::write::Written> {
    Err(Error::Usage("not yet".into()))
}
/// Split.
pub fn write_channels(
    _input: &WavOutput,
    _outs: &[(u16, &std::fs::File, &Path)],
) -> Result<Vec<super::write::Written>> {
    Err(Error::Usage("not yet".into()))
}
