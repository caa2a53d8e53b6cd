//! Placeholder until the Mp3 writer lands.
use crate::audio::mp3::Mp3;
use crate::audio::AudioLayout;
use crate::error::{Error, Result};
use crate::timeline::{Chapter, Hold};
use std::path::Path;
/// Plan.
#[derive(Debug, Clone)]
pub struct Mp3Plan {
    /// Layout.
    pub layout: AudioLayout,
}
/// Plan.
pub fn plan(_chunks: &[&Mp3], _holds: &[Vec<Hold>]) -> Result<Mp3Plan> {
    Err(Error::Usage("not yet".into()))
}
/// Output.
pub struct Mp3Output<'a> {
    /// Plan.
    pub plan: &'a Mp3Plan,
    /// Chunks.
    pub chunks: &'a [&'a Mp3],
    /// Sources.
    pub sources: &'a [super::write::Source],
    /// Chapters.
    pub chapters: &'a [Chapter],
    /// Title.
    pub title: &'a str,
    /// Cancel.
    pub cancel: crate::io::Cancel,
}
/// Write.
pub fn write(_input: &Mp3Output, _out: &std::fs::File, _p: &Path) -> Result<super::write::Written> {
    Err(Error::Usage("not yet".into()))
}
