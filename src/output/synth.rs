//! Synthetic inputs for benchmarks and tests: a real chunk's samples repeated
//! to any length, written with correct tables by the same writer the
//! stitcher uses. Long recordings can thus be measured without committing
//! large files or needing an encoder.
//!
//! The video is cut only at clean points (after a frame no later frame
//! refers back across), so the result decodes without errors; each
//! repetition restarts at the source's first (sync) sample.

use std::fs::File;
use std::path::Path;

use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::media::{probe, Movie, SampleTable, Track};
use crate::mux::plan::{OutTrack, Plan};
use crate::mux::write::{self, MuxInput, Source};

fn repeat(track: &Track, movie_timescale: u32, until: u64, cut_at_clean_points: bool) -> Result<OutTrack> {
    let p = track.presentation(movie_timescale);
    let mut out = OutTrack {
        timescale: track.timescale,
        entries: track.entries.clone(),
        samples: SampleTable::new(),
        edit_start: p.start,
        presented: 0,
    };
    if track.samples.is_empty() {
        return Err(Error::Usage("the source track has no samples".into()));
    }
    let clean: Vec<bool> = if cut_at_clean_points {
        let mut flags = vec![false; track.samples.len() + 1];
        for (i, _) in crate::mux::plan::clean_splits(track) {
            flags[i] = true;
        }
        flags[track.samples.len()] = true;
        flags
    } else {
        vec![true; track.samples.len() + 1]
    };
    let mut t = 0u64;
    'outer: loop {
        for (i, s) in track.samples.iter().enumerate() {
            if t >= until + p.start && clean[i] {
                break 'outer;
            }
            out.samples.push(s);
            t += u64::from(s.duration);
        }
    }
    out.presented = t.saturating_sub(p.start);
    Ok(out)
}

/// Writes to `out` an MP4 of about `seconds` made by repeating the samples of
/// the chunk at `source`. Returns the probe of the result.
pub fn repeat_chunk(source: &Path, seconds: f64, out: &Path) -> Result<Movie> {
    let limits = Limits::default();
    let media = probe(source, &limits)?;
    let audio = media
        .audio()
        .ok_or_else(|| Error::Usage(format!("{}: no audio track", source.display())))?;
    let until_a = (seconds * f64::from(audio.timescale)).round() as u64;
    let video = media
        .video()
        .map(|v| {
            repeat(
                v,
                media.movie_timescale,
                (seconds * f64::from(v.timescale)).round() as u64,
                true,
            )
        })
        .transpose()?;
    // Audio ends where the video does, at most.
    let until_a = video.as_ref().map_or(until_a, |v| {
        crate::media::rescale(v.presented, v.timescale, audio.timescale).min(until_a.max(1))
    });
    let audio = repeat(audio, media.movie_timescale, until_a, false)?;
    let plan = Plan {
        video,
        audio,
        placements: Vec::new(),
        silence: Vec::new(),
    };
    let sources = [Source {
        file: File::open(source).map_err(|e| Error::io(source, e))?.into(),
        path: source.to_path_buf(),
    }];
    let input = MuxInput {
        plan: &plan,
        chapters: &[],
        sources: &sources,
        creation_time: 0,
        cancel: crate::io::Cancel::default(),
    };
    let file = File::create(out).map_err(|e| Error::io(out, e))?;
    write::write_mp4(&input, &file, out)?;
    file.sync_all().map_err(|e| Error::io(out, e))?;
    probe(out, &limits)
}
