//! Reading the structure of one MP4 chunk.
//!
//! [`probe`] reads box headers, the `moov` box and any `moof` fragments
//! (media bytes are never read), and returns per track the handler, the
//! timescale, the edit list, the expanded sample table and the codec
//! configuration. Every count and size is checked against [`Limits`] before it
//! is used.

mod boxes;
pub mod codec;
pub mod samples;
mod tables;

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use mp4_atom::FourCC;
use serde::Serialize;

use crate::error::{Error, Here, Result};
use crate::limits::{Limit, Limits};

pub use codec::{AacConfig, AvcConfig, Codec, SampleEntry};
pub use samples::{Sample, SampleTable, SILENCE};

/// What a chunk's MP4 holds: its movie (ISO/IEC 14496-12 §8.2), as the
/// probe read it from `moov` (and any `moof` fragments).
#[derive(Debug, Clone)]
pub struct Movie {
    /// The file probed.
    pub path: PathBuf,
    /// Its size in bytes.
    pub file_size: u64,
    /// `ftyp` major brand.
    pub major_brand: String,
    /// Whether the samples came from `moof` fragments.
    pub fragmented: bool,
    /// `mvhd` timescale (ticks per second of the movie timeline and edit lists).
    pub movie_timescale: u32,
    /// Byte range of each top-level `mdat` box body.
    pub mdat_ranges: Vec<(u64, u64)>,
    /// The tracks, in file order.
    pub tracks: Vec<Track>,
    /// What the file does against the format that mainstream readers
    /// (ffmpeg, Firefox) tolerate, and so recstitch does too: stray bytes
    /// after the last box, a second `moov`, ES descriptor lengths that
    /// disagree, negative offsets in a version 0 `ctts`. Reported as
    /// `media.quirk` warnings.
    pub quirks: Vec<String>,
}

/// What kind of track a `hdlr` announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TrackKind {
    /// `vide`.
    Video,
    /// `soun`.
    Audio,
    /// Anything else (text, metadata, hint).
    Other,
}

/// One entry of an edit list (ISO/IEC 14496-12 §8.6.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Edit {
    /// Length of the edit in the movie timescale.
    pub segment_duration: u64,
    /// Where the edit starts in media time (track timescale); `None` for an
    /// empty edit (a pause in presentation).
    pub media_time: Option<u64>,
    /// Playback rate, integer part (1 for normal play, 0 for a dwell).
    pub rate: i16,
}

/// One track of a chunk.
#[derive(Debug, Clone)]
pub struct Track {
    /// `tkhd` track id.
    pub id: u32,
    /// What the handler says it is.
    pub kind: TrackKind,
    /// The handler code (`vide`, `soun`, ...).
    pub handler: String,
    /// `mdhd` timescale: ticks per second.
    pub timescale: u32,
    /// `mdhd` duration in ticks (as written; not trusted for timing).
    pub declared_duration: u64,
    /// `mdhd` language code.
    pub language: String,
    /// The edit list, empty when there is none.
    pub edits: Vec<Edit>,
    /// Sample descriptions.
    pub entries: Vec<SampleEntry>,
    /// Every sample in decode order.
    pub samples: SampleTable,
}

impl Track {
    /// Sum of sample durations, in ticks.
    pub fn media_duration(&self) -> u64 {
        self.samples.media_duration()
    }

    /// Sum of sample sizes, in bytes.
    pub fn byte_count(&self) -> u64 {
        self.samples.byte_count()
    }

    /// The part of the media the edit list presents: `(start, length)` in
    /// track ticks, plus the empty time before it (also in track ticks).
    ///
    /// Only the common shape is modelled: optional leading empty edits, then
    /// one or more normal-rate edits that are taken as one span from the
    /// first edit's start. Without an edit list the whole media is presented.
    pub fn presentation(&self, movie_timescale: u32) -> Presentation {
        let to_track = |d: u64| rescale(d, movie_timescale, self.timescale);
        let mut empty = 0u64;
        let mut start = None;
        let mut length = 0u64;
        for e in &self.edits {
            match (e.media_time, start) {
                (None, None) => empty = empty.saturating_add(to_track(e.segment_duration)),
                (Some(t), None) => {
                    start = Some(t);
                    length = to_track(e.segment_duration);
                }
                (_, Some(_)) => length = length.saturating_add(to_track(e.segment_duration)),
            }
        }
        let media = self.media_duration();
        match start {
            None => Presentation {
                empty,
                start: 0,
                length: media,
            },
            Some(start) => Presentation {
                empty,
                start,
                // A zero-length edit means "to the end of the media".
                length: if length == 0 {
                    media.saturating_sub(start)
                } else {
                    length
                },
            },
        }
    }

    /// The sample description of the first sample (or the first entry).
    pub fn codec(&self) -> Option<&Codec> {
        let i = self.samples.first().map(|s| s.entry as usize).unwrap_or(0);
        self.entries.get(i).map(|e| &e.codec)
    }
}

/// How a track is presented after its edit list, in track ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Presentation {
    /// Empty time before the first sample is shown.
    pub empty: u64,
    /// Media time of the first presented instant.
    pub start: u64,
    /// Length of the presented media.
    pub length: u64,
}

/// `value * to / from`, rounded to nearest, saturating.
pub(crate) fn rescale(value: u64, from: u32, to: u32) -> u64 {
    if from == 0 {
        return 0;
    }
    let v = (u128::from(value) * u128::from(to) + u128::from(from) / 2) / u128::from(from);
    u64::try_from(v).unwrap_or(u64::MAX)
}

impl Movie {
    /// The first video track.
    pub fn video(&self) -> Option<&Track> {
        self.tracks.iter().find(|t| t.kind == TrackKind::Video)
    }

    /// The first audio track.
    pub fn audio(&self) -> Option<&Track> {
        self.tracks.iter().find(|t| t.kind == TrackKind::Audio)
    }

    /// Presented duration of a track in seconds, after its edit list.
    pub fn presented_seconds(&self, track: &Track) -> f64 {
        if track.timescale == 0 {
            return 0.0;
        }
        let p = track.presentation(self.movie_timescale);
        p.empty.saturating_add(p.length) as f64 / f64::from(track.timescale)
    }

    /// Presented duration of the chunk in milliseconds: the longest of its
    /// audio and video tracks.
    pub fn duration_ms(&self) -> f64 {
        self.tracks
            .iter()
            .filter(|t| t.kind != TrackKind::Other)
            .map(|t| self.presented_seconds(t) * 1000.0)
            .fold(0.0, f64::max)
    }

    /// Average frame rate of a track from its sample durations.
    pub fn frame_rate(track: &Track) -> Option<f64> {
        let d = track.media_duration();
        (d > 0 && track.timescale > 0).then(|| track.samples.len() as f64 * f64::from(track.timescale) / d as f64)
    }

    /// Average bit rate of a track over its media duration, bits per second.
    pub fn bit_rate(track: &Track) -> Option<f64> {
        let d = track.media_duration();
        (d > 0 && track.timescale > 0).then(|| track.byte_count() as f64 * 8.0 * f64::from(track.timescale) / d as f64)
    }

    /// The first sample whose bytes lie beyond the end of the file, as
    /// `(track id, sample index, sample end offset)`.
    pub fn first_sample_past_end(&self) -> Option<(u32, usize, u64)> {
        self.tracks.iter().find_map(|t| {
            t.samples.iter().enumerate().find_map(|(i, s)| {
                let end = s.offset.saturating_add(u64::from(s.size));
                (end > self.file_size).then_some((t.id, i, end))
            })
        })
    }
}

/// Probes the MP4 at `path`.
///
/// Errors are typed: [`Error::Truncated`] when the file ends before its
/// `moov` (or a box) does, [`Error::Invalid`] for a malformed structure,
/// [`Error::Limit`] when a count exceeds `limits`. Samples that point past
/// the end of the file are not an error here: see
/// [`Movie::first_sample_past_end`].
pub fn probe(path: &Path, limits: &Limits) -> Result<Movie> {
    probe_in(&crate::Storage::local(), path, limits)
}

/// [`probe`] of the file or object at `path` in `storage`.
pub fn probe_in(storage: &crate::Storage, path: &Path, limits: &Limits) -> Result<Movie> {
    storage.with_reader(path, 64 << 10, |r, size| probe_reader(r, size, path, limits))
}

/// Probes an MP4 from any seekable reader of `file_size` bytes; `path` is only
/// used in error messages.
pub fn probe_reader<R: Read + Seek>(mut r: R, file_size: u64, path: &Path, limits: &Limits) -> Result<Movie> {
    let here = Here::new(path, "");
    let mut top = boxes::TopLevel::new(file_size);
    let mut major_brand = None;
    let mut moov = None;
    let mut moofs: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut mdat_ranges = Vec::new();
    let mut quirks = Vec::new();
    let mut count = 0u64;
    loop {
        let b = match top.next_box(&mut r, &here) {
            Ok(Some(b)) => b,
            Ok(None) => break,
            // Bytes after the last box that are no box: ignored, as players
            // do, once the movie box has been read.
            Err(e @ (Error::Invalid { .. } | Error::Truncated { .. })) if moov.is_some() => {
                quirks.push(format!(
                    "{} bytes at the end of the file are not a box and were ignored ({})",
                    file_size.saturating_sub(top.position()),
                    e.detail()
                ));
                break;
            }
            Err(e) => return Err(e),
        };
        count += 1;
        limits.check(Limit::TopLevelBoxes, count, &here, "number of top-level boxes")?;
        let kind: [u8; 4] = b.kind.into();
        if count == 1 && &kind != b"ftyp" {
            return Err(here.invalid(format!(
                "the file does not start with an ftyp box (found `{}`): not an MP4",
                codec::fourcc_string(kind)
            )));
        }
        match &kind {
            b"ftyp" => {
                // Only the major brand is needed: read 4 bytes, whatever the box claims.
                let here = here.child("ftyp");
                if b.size < b.header_len + 4 || b.body_offset() + 4 > file_size {
                    return Err(here.invalid("ftyp box is shorter than a brand"));
                }
                let mut brand = [0u8; 4];
                r.seek(std::io::SeekFrom::Start(b.body_offset()))
                    .map_err(|e| here.io(e))?;
                r.read_exact(&mut brand).map_err(|e| here.io(e))?;
                major_brand = Some(codec::fourcc_string(brand));
            }
            b"moov" if moov.is_some() => quirks.push(format!(
                "a second moov box at byte {} was ignored; the first one is used, as players do",
                b.offset
            )),
            b"moov" => moov = Some(boxes::read_body(&mut r, &b, file_size, limits.max_moov_bytes, &here)?),
            b"moof" => {
                let body = boxes::read_body(&mut r, &b, file_size, limits.max_moov_bytes, &here)?;
                moofs.push((b.offset, body));
            }
            b"mdat" => mdat_ranges.push((b.body_offset(), b.end().min(file_size))),
            _ => {}
        }
    }
    let moov = moov.ok_or_else(|| {
        here.truncated("no moov box: the download is incomplete or the recording was never finalised")
    })?;
    let mut parsed = tables::parse_moov(&moov, &moofs, file_size, &here, limits)?;
    quirks.append(&mut parsed.quirks);
    Ok(Movie {
        path: path.to_path_buf(),
        file_size,
        major_brand: major_brand.unwrap_or_default(),
        fragmented: !moofs.is_empty(),
        movie_timescale: parsed.movie_timescale,
        mdat_ranges,
        tracks: parsed.tracks,
        quirks,
    })
}

/// The handler code as a track kind.
pub(crate) fn track_kind(handler: FourCC) -> TrackKind {
    match &<[u8; 4]>::from(handler) {
        b"vide" => TrackKind::Video,
        b"soun" => TrackKind::Audio,
        _ => TrackKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// Chunk 0 of the `good` fixture: `ftyp`, `moov`, then `mdat`.
    fn fixture() -> Vec<u8> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "fixtures/cases/good/3c57992b-07bf-4387-a8bc-a13561e8650a/0-eus-d11-293c5f93ea87298458e47ef52dda3bb9.mp4",
        );
        std::fs::read(path).unwrap()
    }

    fn probe_bytes(bytes: &[u8]) -> Result<Movie> {
        let len = u64::try_from(bytes.len()).unwrap();
        probe_reader(Cursor::new(bytes), len, Path::new("q.mp4"), &Limits::default())
    }

    /// `(offset, size)` of the first top-level box of `kind`.
    fn top_box(bytes: &[u8], kind: &[u8; 4]) -> (usize, usize) {
        let mut at = 0;
        loop {
            let size = usize::try_from(u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap())).unwrap();
            if &bytes[at + 4..at + 8] == kind {
                return (at, size);
            }
            at += size;
        }
    }

    #[test]
    fn a_second_moov_and_stray_bytes_at_the_end_are_quirks() {
        let original = fixture();
        let clean = probe_bytes(&original).unwrap();
        assert!(clean.quirks.is_empty(), "{:?}", clean.quirks);
        let (at, size) = top_box(&original, b"moov");
        let mut bytes = original.clone();
        bytes.extend_from_slice(&original[at..at + size]);
        bytes.extend_from_slice(&[0, 0, 0x0d]);
        let quirky = probe_bytes(&bytes).unwrap();
        assert_eq!(
            quirky.quirks,
            [
                format!("a second moov box at byte {} was ignored; the first one is used, as players do", original.len()),
                "3 bytes at the end of the file are not a box and were ignored (@{}: truncated: 3 stray bytes at the end of the file, too few for a box header)".replace("{}", &(original.len() + size).to_string()),
            ]
        );
        assert_eq!(quirky.tracks.len(), clean.tracks.len());
        assert_eq!(quirky.tracks[1].samples, clean.tracks[1].samples);
    }

    #[test]
    fn bytes_that_are_no_box_before_the_moov_are_still_an_error() {
        let original = fixture();
        let (at, _) = top_box(&original, b"moov");
        let mut bytes = original[..at].to_vec();
        bytes.extend_from_slice(&[0, 0, 0x0d]);
        let e = probe_bytes(&bytes).unwrap_err();
        assert_eq!(e.category(), "truncated");
        assert!(e.to_string().contains("3 stray bytes at the end of the file"), "{e}");
    }

    #[test]
    fn es_descriptor_lengths_that_disagree_are_read_as_ffmpeg_reads_them() {
        let mut bytes = fixture();
        let esds = bytes.windows(4).position(|w| w == b"esds").unwrap();
        // esds: version/flags, ES_Descriptor (tag 3, 4-byte length, ES_ID,
        // flags), then the DecoderConfigDescriptor (tag 4) with a 4-byte
        // length whose last byte is 23: claim 26, swallowing part of the
        // SLConfigDescriptor that follows it.
        let dcd = esds + 4 + 4 + 5 + 3;
        assert_eq!(bytes[dcd], 0x04);
        assert_eq!(bytes[dcd + 4], 23);
        bytes[dcd + 4] = 26;
        let probed = probe_bytes(&bytes).unwrap();
        let Some(Codec::Aac(aac)) = probed.audio().and_then(Track::codec) else {
            panic!("no AAC: {:?}", probed.audio().map(Track::codec));
        };
        assert_eq!((aac.object_type, aac.sample_rate, aac.channels), (2, 16000, 1));
        assert_eq!(
            probed.quirks,
            ["moov/trak[1]/mdia/minf/stbl/stsd/mp4a/esds: the ES descriptors' lengths disagree with their contents; the decoder configuration was read as ffmpeg reads it"]
        );
    }
}
