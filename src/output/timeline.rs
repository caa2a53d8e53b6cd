//! Wall clock and output time: where each recorded segment, pause and gap
//! lands in the stitched file, and the chapters that mark them.
//!
//! Pauses come from each chunk's `pauseResumeIntervals`; whether the paused
//! time is in the media was decided by validation (`pausesCut`). Gaps are
//! wall-clock discontinuities between consecutive chunks.
//!
//! With [`GapMode::Collapse`] paused time cut from the media stays out of the
//! file and a point marker shows where it was; with [`GapMode::Wallclock`]
//! output time equals wall-clock time: the stitcher holds the picture and
//! plays silence for every cut pause and gap (see [`holds`]).

use serde::{Deserialize, Serialize};

use crate::input::metadata::seconds_as_ms;

use crate::input::metadata::WallClock;
use crate::validate::{tolerance_ms, ValidatedRecording};

/// A chapter: a start time in seconds, a length (0 for a point marker) and a title.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Chapter {
    /// Start, seconds of output presentation time (`startMs` in JSON).
    #[serde(rename = "startMs", with = "seconds_as_ms")]
    pub start: f64,
    /// End, seconds (equal to `start` for a point marker; `endMs` in JSON).
    #[serde(rename = "endMs", with = "seconds_as_ms")]
    pub end: f64,
    /// Title shown by players.
    pub title: String,
}

/// A point where the output must wait for the wall clock (`--gaps wallclock`):
/// the chunk's media from `at` (seconds of the chunk's own presentation) on
/// must play at `resume_at` (seconds of output time). The wait is filled
/// with silent audio frames while the video holds its last frame.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hold {
    /// Position in the chunk's presented media, seconds (0: before the chunk).
    pub at: f64,
    /// Output time at which that media must play, seconds.
    pub resume_at: f64,
}

/// The longest wait for the wall clock one hold may insert (`--gaps
/// wallclock`), seconds: a day, as long as a gap between chunks may be
/// ([`MAX_GAP_MS`](crate::validate::MAX_GAP_MS)).
pub const MAX_HOLD_SECONDS: f64 = crate::validate::MAX_GAP_MS / 1000.0;

/// What to do with paused time and gaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GapMode {
    /// Paused time is not in the file; chapters mark where it was.
    #[default]
    Collapse,
    /// Output time equals wall-clock time: the picture holds and the audio is
    /// silent during pauses and gaps.
    Wallclock,
}

impl std::str::FromStr for GapMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "collapse" => Ok(GapMode::Collapse),
            "wallclock" => Ok(GapMode::Wallclock),
            other => Err(format!("unknown gap mode {other:?}: use collapse or wallclock")),
        }
    }
}

/// A stretch of the output that was recorded, mapped to the wall clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Segment {
    /// The chunk it comes from.
    pub chunk_index: u32,
    /// Start in the output, seconds.
    #[serde(rename = "outputStartMs", with = "seconds_as_ms")]
    pub output_start: f64,
    /// End in the output, seconds.
    #[serde(rename = "outputEndMs", with = "seconds_as_ms")]
    pub output_end: f64,
    /// Wall-clock time of `output_start`.
    pub wall_clock_start: WallClock,
    /// Wall-clock time of `output_end`.
    pub wall_clock_end: WallClock,
}

/// A pause or a gap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Interruption {
    /// The chunk it is in (pause) or before (gap).
    pub chunk_index: u32,
    /// When it started on the wall clock.
    pub wall_clock_start: WallClock,
    /// How long it lasted, milliseconds.
    pub duration_ms: f64,
    /// Where it is in the output, seconds.
    #[serde(rename = "outputStartMs", with = "seconds_as_ms")]
    pub output_start: f64,
    /// Where it ends in the output (equal to `output_start` when the time is not in the file).
    #[serde(rename = "outputEndMs", with = "seconds_as_ms")]
    pub output_end: f64,
    /// Whether the time is in the file (kept in the media, or held with `--gaps wallclock`).
    pub in_file: bool,
}

/// The recording's timeline in the output.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeline {
    /// Recorded segments, in output order.
    pub segments: Vec<Segment>,
    /// Pauses.
    pub pauses: Vec<Interruption>,
    /// Gaps between chunks.
    pub gaps: Vec<Interruption>,
    /// Chapters: one per segment, plus one per pause and gap.
    pub chapters: Vec<Chapter>,
}

fn ms(seconds: f64) -> f64 {
    seconds * 1000.0
}

/// Rounds seconds to the microsecond, so that reports stay short and stable.
pub(crate) fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// One chunk's wall-clock facts.
struct ChunkClock {
    index: u32,
    start: WallClock,
    duration_ms: f64,
    /// (wall start, duration ms), sorted.
    pauses: Vec<(WallClock, f64)>,
    cut: bool,
    /// Gaps after the chunk shorter than this are continuous ([`tolerance_ms`]).
    tolerance_ms: f64,
}

fn clocks(rec: &ValidatedRecording) -> Vec<Option<ChunkClock>> {
    rec.recording
        .chunks
        .iter()
        .zip(&rec.checks)
        .map(|(c, check)| {
            let m = c.metadata.as_ref()?;
            let mut pauses: Vec<(WallClock, f64)> = m.pauses.iter().map(|p| (p.start, p.duration_ms)).collect();
            pauses.sort_by_key(|p| p.0);
            Some(ChunkClock {
                index: m.index,
                start: m.start,
                duration_ms: m.duration_ms,
                pauses,
                cut: check.pauses_cut == Some(true),
                tolerance_ms: tolerance_ms(check.media.as_ref()),
            })
        })
        .collect()
}

/// The holds that make output time equal wall-clock time
/// ([`GapMode::Wallclock`]): before each chunk, and at each pause cut from
/// the media.
pub fn holds(rec: &ValidatedRecording) -> Vec<Vec<Hold>> {
    let clocks = clocks(rec);
    let Some(w0) = clocks.iter().flatten().next().map(|c| c.start) else {
        return vec![Vec::new(); clocks.len()];
    };
    clocks
        .iter()
        .map(|c| {
            let Some(c) = c else { return Vec::new() };
            let mut holds = vec![Hold {
                at: 0.0,
                resume_at: w0.ms_until(c.start) / 1000.0,
            }];
            if c.cut {
                let mut paused_before = 0.0;
                for &(start, dur) in &c.pauses {
                    let media_ms = c.start.ms_until(start) - paused_before;
                    paused_before += dur;
                    holds.push(Hold {
                        at: media_ms / 1000.0,
                        resume_at: w0.ms_until(start.plus_ms(dur)) / 1000.0,
                    });
                }
            }
            holds
        })
        .collect()
}

/// Builds the timeline from the chunks' wall clock and where the stitcher
/// placed them (`placements`, and `duration` of the output in seconds).
pub fn build(rec: &ValidatedRecording, audio_starts: &[f64], duration: f64, mode: GapMode) -> Timeline {
    let clocks = clocks(rec);
    let mut t = Timeline::default();
    for (k, clock) in clocks.iter().enumerate() {
        let Some(c) = clock else { continue };
        let out_start = audio_starts.get(k).copied().unwrap_or(0.0);
        let out_end = audio_starts.get(k + 1).copied().unwrap_or(duration);
        // Gap before this chunk.
        if let Some(Some(prev)) = k.checked_sub(1).map(|p| &clocks[p]) {
            let prev_end = prev.start.plus_ms(prev.duration_ms);
            let gap = prev_end.ms_until(c.start);
            if gap > prev.tolerance_ms {
                let in_file = mode == GapMode::Wallclock;
                let start = if in_file { out_start - gap / 1000.0 } else { out_start };
                t.gaps.push(Interruption {
                    chunk_index: c.index,
                    wall_clock_start: prev_end,
                    duration_ms: gap,
                    output_start: round6(start.max(0.0)),
                    output_end: round6(out_start),
                    in_file,
                });
            }
        }
        // Walk the chunk: recorded stretches between pauses.
        let mut segment = |from: f64, to: f64, wall_from: WallClock, wall_to: WallClock| {
            if to > from {
                t.segments.push(Segment {
                    chunk_index: c.index,
                    output_start: round6(from),
                    output_end: round6(to),
                    wall_clock_start: wall_from,
                    wall_clock_end: wall_to,
                });
            }
        };
        let mut seg_out = out_start;
        let mut seg_wall = c.start;
        let mut pauses = Vec::new();
        for &(p_start, dur) in &c.pauses {
            let into = seg_wall.ms_until(p_start).max(0.0);
            let p_out = (seg_out + into / 1000.0).min(out_end);
            segment(seg_out, p_out, seg_wall, p_start);
            let in_file = !c.cut || mode == GapMode::Wallclock;
            let p_end = if in_file {
                (p_out + dur / 1000.0).min(out_end)
            } else {
                p_out
            };
            pauses.push(Interruption {
                chunk_index: c.index,
                wall_clock_start: p_start,
                duration_ms: dur,
                output_start: round6(p_out),
                output_end: round6(p_end),
                in_file,
            });
            seg_out = p_end;
            seg_wall = p_start.plus_ms(dur);
        }
        // The output runs on past the chunk's wall-clock end by the tail
        // padding kept at the join; the wall clock ends with the chunk.
        let chunk_end = c.start.plus_ms(c.duration_ms).max(seg_wall);
        segment(
            seg_out,
            out_end,
            seg_wall,
            seg_wall.plus_ms(ms(out_end - seg_out)).min(chunk_end),
        );
        t.pauses.extend(pauses);
    }
    t.chapters = chapters(&t);
    t
}

fn chapters(t: &Timeline) -> Vec<Chapter> {
    let mut list: Vec<(f64, u8, Chapter)> = Vec::new();
    for s in &t.segments {
        list.push((
            s.output_start,
            1,
            Chapter {
                start: s.output_start,
                end: s.output_end,
                title: format!(
                    "Recorded {}–{} UTC (chunk {})",
                    s.wall_clock_start.time_of_day(),
                    s.wall_clock_end.time_of_day(),
                    s.chunk_index
                ),
            },
        ));
    }
    for (what, list_of) in [("Paused", &t.pauses), ("Gap", &t.gaps)] {
        for p in list_of {
            let end = p.wall_clock_start.plus_ms(p.duration_ms);
            list.push((
                p.output_start,
                0,
                Chapter {
                    start: p.output_start,
                    end: p.output_end,
                    title: format!(
                        "{what} {:.1} s ({}–{} UTC{})",
                        p.duration_ms / 1000.0,
                        p.wall_clock_start.time_of_day(),
                        end.time_of_day(),
                        if p.in_file { "" } else { ", not in the file" }
                    ),
                },
            ));
        }
    }
    list.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    list.into_iter().map(|(_, _, c)| c).collect()
}

/// The chapters as a WebVTT file (`kind="chapters"`). Point markers get one
/// millisecond so that every cue ends after it starts.
pub fn webvtt(chapters: &[Chapter]) -> String {
    let stamp = |s: f64| {
        let total = (s * 1000.0).round().max(0.0) as u64;
        format!(
            "{:02}:{:02}:{:02}.{:03}",
            total / 3_600_000,
            total / 60_000 % 60,
            total / 1000 % 60,
            total % 1000
        )
    };
    let mut out = String::from("WEBVTT\n");
    for (i, c) in chapters.iter().enumerate() {
        let end = if c.end > c.start { c.end } else { c.start + 0.001 };
        out.push_str(&format!(
            "\n{}\n{} --> {}\n{}\n",
            i + 1,
            stamp(c.start),
            stamp(end),
            c.title
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webvtt_format() {
        let v = webvtt(&[
            Chapter {
                start: 0.0,
                end: 3.5,
                title: "a".into(),
            },
            Chapter {
                start: 3.5,
                end: 3.5,
                title: "b".into(),
            },
            Chapter {
                start: 3661.25,
                end: 3700.0,
                title: "c".into(),
            },
        ]);
        assert_eq!(
            v,
            "WEBVTT\n\n1\n00:00:00.000 --> 00:00:03.500\na\n\n2\n00:00:03.500 --> 00:00:03.501\nb\n\n3\n01:01:01.250 --> 01:01:40.000\nc\n"
        );
    }

    #[test]
    fn gap_mode_parses() {
        assert_eq!("wallclock".parse::<GapMode>(), Ok(GapMode::Wallclock));
        assert_eq!(
            "sideways".parse::<GapMode>().unwrap_err(),
            "unknown gap mode \"sideways\": use collapse or wallclock"
        );
    }
}
