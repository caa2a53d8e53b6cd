//! Synthetic inputs for benchmarks and tests: a real chunk's samples repeated
//! to any length, written with correct tables by the same writer the
//! stitcher uses. Long recordings can thus be measured without committing
//! large files or needing an encoder.
//!
//! The video is cut only at clean points (after a frame no later frame
//! refers back across), so the result decodes without errors; each
//! repetition restarts at the source's first (sync) sample.
//!
//! Behind the cargo feature `bench-support`, which the benches, tests and
//! `examples/synth.rs` turn on: a tool of this repository, not part of the
//! library's API.

use std::fs::File;
use std::path::Path;

use crate::error::{Error, Result};
use crate::formats::mp4::{probe, Movie, SampleTable, Track};
use crate::limits::Limits;
use crate::output::mux::plan::{OutTrack, Plan};
use crate::output::mux::write::{self, MuxInput, Source};

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
        for (i, _) in clean_splits(track) {
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
        crate::formats::mp4::rescale(v.presented, v.timescale, audio.timescale).min(until_a.max(1))
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

/// Decode indices `i` (1..n) before which the video can be split without
/// reordering: every frame decoded before `i` is presented before every
/// frame decoded from `i` on. Returned with the split's presentation time
/// (ticks, chunk media time).
fn clean_splits(track: &Track) -> Vec<(usize, i64)> {
    let n = track.samples.len();
    let mut cts = Vec::with_capacity(n);
    let mut t = 0i64;
    for s in &track.samples {
        cts.push(t + i64::from(s.composition_offset));
        t += i64::from(s.duration);
    }
    let mut suffix_min = vec![i64::MAX; n + 1];
    for i in (0..n).rev() {
        suffix_min[i] = suffix_min[i + 1].min(cts[i]);
    }
    let mut prefix_max = i64::MIN;
    let mut out = Vec::new();
    for i in 1..n {
        prefix_max = prefix_max.max(cts[i - 1]);
        if prefix_max < suffix_min[i] {
            out.push((i, suffix_min[i]));
        }
    }
    out
}

/// The `ftyp`, `moov` and `mdat` header a stitch of `chunks` (in index
/// order, `--gaps collapse`) would write; for inspection and benchmarks.
/// The plan behind it stays internal.
pub fn header_of(chunks: &[&Movie]) -> Result<Vec<u8>> {
    let plan = crate::output::mux::plan::plan(chunks, &[]).map_err(|e| {
        e.unsupported(
            chunks.first().map(|m| m.path.clone()).unwrap_or_default(),
            "the join plan",
        )
    })?;
    crate::output::mux::write::moov_bytes(&plan, &[])
}
