//! The join plan: how the chunks' sample tables become one track each.
//!
//! # How the joins are made exact
//!
//! Every chunk is an independent encode. Its AAC track starts with encoder
//! priming (typically one 1024-sample packet) that the chunk's edit list
//! trims, and its last packet decodes to a whole frame even when the chunk's
//! audio ends earlier (tail padding). Its H.264 track with B-frames starts
//! with a composition delay, also trimmed by the edit list.
//!
//! Players differ in how far they honour edit lists: ffmpeg presents only a
//! leading edit reliably (a prototype with one edit per chunk drifted by 32
//! and 189 ms at its joins), so the output has **one leading edit per track**
//! and everything else is expressed in the sample tables:
//!
//! * audio: chunk 0 keeps its priming packets, trimmed by the leading edit;
//!   later chunks drop the whole packets their own edit trimmed (leftover
//!   priming samples, when the trim is not a whole number of packets, stay and
//!   are counted). Every packet keeps its duration, except that the last
//!   packet of each chunk before a join is given its decoded length (one
//!   frame), so the timeline matches what a decoder outputs: the tail padding
//!   stays in the file and the timeline accounts for it. The very last packet
//!   keeps its real duration.
//! * video: samples keep their durations and composition offsets; the last
//!   sample (in decode order) before each join is lengthened (or shortened)
//!   so that the next chunk's first presented frame starts exactly where that
//!   chunk's first real audio sample starts. The error is below half a video
//!   tick (0.03 ms at a 16384 Hz timescale).
//!
//! The original timescales are kept; times are moved between timescales by
//! rounding cumulative times, never by summing rounded durations.

use std::path::PathBuf;

use crate::error::Error;
use crate::formats::mp4::codec::{switchable, CodecChange};
pub use crate::formats::mp4::SILENCE;
use crate::formats::mp4::{rescale, Codec, Movie, Sample, SampleEntry, SampleTable, Track};
use crate::output::timeline::{Hold, MAX_HOLD_SECONDS};

/// A sample of the output: [`Sample::source`] is the input chunk that holds
/// its bytes ([`SILENCE`] for generated audio), its times are in output ticks.
pub type OutSample = Sample;

/// One output track.
#[derive(Debug, Clone)]
pub struct OutTrack {
    /// Ticks per second (the first chunk's timescale, kept).
    pub timescale: u32,
    /// Sample descriptions, verbatim from the chunks (one per distinct configuration).
    pub entries: Vec<SampleEntry>,
    /// Samples in decode order.
    pub samples: SampleTable,
    /// Media time where presentation starts (the leading edit).
    pub edit_start: u64,
    /// Presented length in ticks.
    pub presented: u64,
}

impl OutTrack {
    /// Sum of sample durations.
    pub fn media_duration(&self) -> u64 {
        self.samples.media_duration()
    }
}

/// Where one chunk landed in the output.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    /// Output presentation time of the chunk's first real audio sample, seconds.
    pub audio_start: f64,
    /// Output presentation time of the chunk's first presented video frame, seconds.
    pub video_start: Option<f64>,
    /// `video_start - audio_start` in milliseconds, as planned.
    pub planned_offset_ms: Option<f64>,
    /// Presented audio of the chunk, seconds.
    pub audio_presented: f64,
    /// Whole priming packets dropped at the chunk's start.
    pub dropped_priming_packets: u32,
    /// Priming samples left at the start (a trim that is not whole packets).
    pub leftover_priming_samples: u64,
    /// Samples of tail padding kept at the end of the chunk (decoded but not
    /// presented by the chunk on its own).
    pub tail_padding_samples: u64,
    /// Ticks added to (or, negative, removed from) the duration of the
    /// chunk's last video sample to meet the next chunk.
    pub video_adjust_ticks: i64,
}

/// The whole plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The output video track, when the chunks have video.
    pub video: Option<OutTrack>,
    /// The output audio track.
    pub audio: OutTrack,
    /// Where each chunk landed.
    pub placements: Vec<Placement>,
    /// The bytes of a silent audio frame, for samples whose source is [`SILENCE`].
    pub silence: Vec<u8>,
}

impl Plan {
    /// Presented duration of the output in seconds (longest track).
    pub fn duration(&self) -> f64 {
        let a = self.audio.presented as f64 / f64::from(self.audio.timescale);
        let v = self
            .video
            .as_ref()
            .map_or(0.0, |v| v.presented as f64 / f64::from(v.timescale));
        a.max(v)
    }
}

/// Why a recording cannot be stitched: what of which chunk the output
/// cannot hold. `chunk` is the chunk's position in the recording (from 0).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum PlanError {
    /// No chunk at all.
    #[error("the recording has no chunk")]
    NoChunk,
    /// The first chunk has no audio track, which every output has.
    #[error("chunk 0 has no audio track")]
    FirstHasNoAudio,
    /// More chunks than a sample's source index holds.
    #[error("too many chunks")]
    TooManyChunks,
    /// A later chunk has no audio track.
    #[error("chunk {chunk}: no audio track")]
    NoAudioTrack { chunk: usize },
    /// A later chunk has no video track though chunk 0 has one.
    #[error("chunk {chunk}: no video track (chunk 0 has one)")]
    NoVideoTrack { chunk: usize },
    /// A track without samples.
    #[error("chunk {chunk}: the {track} track has no samples")]
    NoSamples { chunk: usize, track: &'static str },
    /// A sample description a decoder cannot switch to mid-stream.
    #[error("chunk {chunk}: {track}: {change}")]
    CodecChange {
        chunk: usize,
        track: &'static str,
        #[source]
        change: CodecChange,
    },
    /// More distinct sample descriptions than an output sample can name.
    #[error("chunk {chunk}: {track}: more than 255 distinct sample descriptions")]
    TooManyEntries { chunk: usize, track: &'static str },
    /// A sample names a sample description (`entry`, from 1) its track lacks.
    #[error("chunk {chunk}: sample description {entry} does not exist")]
    NoSuchEntry { chunk: usize, entry: u32 },
    /// The audio edit list starts at or past the end of the audio (ticks).
    #[error(
        "chunk {chunk}: the audio edit list starts at {trim} ticks, at or past the end of the audio ({end} ticks)"
    )]
    EditPastEnd { chunk: usize, trim: u64, end: u64 },
    /// What the audio edit list trims leaves no audio after the samples kept.
    #[error("chunk {chunk}: the audio edit list starts past the chunk's audio")]
    EditPastAudio { chunk: usize },
    /// The chunk's audio would start before chunk 0's.
    #[error("chunk {chunk}: audio starts before chunk 0's")]
    AudioBeforeFirst { chunk: usize },
    /// The output audio would be longer than its times can count.
    #[error("chunk {chunk}: the audio is too long")]
    AudioTooLong { chunk: usize },
    /// More priming packets than a count holds.
    #[error("chunk {chunk}: too many priming packets")]
    TooManyPrimingPackets { chunk: usize },
    /// A pause or gap longer than `--gaps wallclock` holds (seconds).
    #[error("chunk {chunk}: a pause or gap of {seconds:.0} s is longer than {max:.0} s, the longest wait `--gaps wallclock` holds; check the chunks' times or stitch with `--gaps collapse`", max = MAX_HOLD_SECONDS)]
    HoldTooLong { chunk: usize, seconds: f64 },
    /// Silence is needed but no silent frame can be made for the audio.
    #[error("chunk {chunk}: no silent frame for this audio configuration")]
    NoSilentFrame { chunk: usize },
    /// More silent frames than memory can count.
    #[error("chunk {chunk}: too many silent frames")]
    TooManySilentFrames { chunk: usize },
    /// The silent frame is longer than a sample size holds.
    #[error("silent frame too long")]
    SilentFrameTooLong,
    /// The AAC frame is longer than a sample duration holds.
    #[error("AAC frame too long")]
    FrameTooLong,
    /// A join with no video sample before it to lengthen.
    #[error("no video sample before a join")]
    NoVideoBeforeJoin,
    /// The gap before a chunk is longer than one sample duration holds.
    #[error("chunk {chunk}: the gap before this chunk is too long")]
    GapTooLong { chunk: usize },
    /// A pause inside a chunk is longer than one sample duration holds.
    #[error("chunk {chunk}: a pause is too long for one sample duration")]
    PauseTooLong { chunk: usize },
    /// A composition offset (output ticks) that does not fit 32 bits.
    #[error("composition offset {offset} does not fit the output")]
    CompositionOffset { offset: i64 },
    /// A sample duration (output ticks) that does not fit 32 bits.
    #[error("sample duration {duration} is too long")]
    SampleDuration { duration: u64 },
    /// More samples than one MP4 track holds.
    #[error("{count} {track} samples do not fit one MP4 track (at most 4294967295)")]
    TooManySamples { track: &'static str, count: usize },
}

impl PlanError {
    /// The library's error for a plan of the recording whose first file is
    /// `path`, `context` naming it: [`Error::Unsupported`], the plan's
    /// message kept word for word.
    pub(crate) fn unsupported(self, path: PathBuf, context: impl Into<String>) -> Error {
        Error::Unsupported {
            path,
            context: context.into(),
            message: self.to_string(),
        }
    }
}

/// Decode times of a track's samples rescaled to `timescale`, plus the end.
fn rescaled_decode_times(track: &Track, timescale: u32) -> Vec<u64> {
    let mut t = 0u64;
    let mut out = Vec::with_capacity(track.samples.len() + 1);
    for s in &track.samples {
        out.push(rescale(t, track.timescale, timescale));
        t += u64::from(s.duration);
    }
    out.push(rescale(t, track.timescale, timescale));
    out
}

fn to_i32(v: i64) -> Result<i32, PlanError> {
    i32::try_from(v).map_err(|_| PlanError::CompositionOffset { offset: v })
}

/// Maps the sample descriptions of a track onto the output's list, reusing
/// an entry when the configuration is the same. Returns the index map.
/// `track` (of chunk `chunk`) is `audio` or `video`, for errors.
fn merge_entries(
    out: &mut Vec<SampleEntry>,
    source: &Track,
    chunk: usize,
    track: &'static str,
) -> Result<Vec<u8>, PlanError> {
    let mut map = Vec::with_capacity(source.entries.len());
    let number = |i: usize| u8::try_from(i).map_err(|_| PlanError::TooManyEntries { chunk, track });
    for e in &source.entries {
        if let Some(i) = out.iter().position(|o| o.codec == e.codec) {
            map.push(number(i)?);
            continue;
        }
        if let Some(first) = out.first() {
            switchable(&first.codec, &e.codec).map_err(|change| PlanError::CodecChange { chunk, track, change })?;
        }
        map.push(number(out.len())?);
        out.push(e.clone());
    }
    Ok(map)
}

/// The output sample description of chunk `chunk`'s sample (`map` from [`merge_entries`]).
fn mapped_entry(map: &[u8], s: Sample, chunk: usize) -> Result<u8, PlanError> {
    map.get(usize::from(s.entry)).copied().ok_or(PlanError::NoSuchEntry {
        chunk,
        entry: u32::from(s.entry) + 1,
    })
}

/// `a - b` as a signed tick count, saturating at the ends of `i64`.
fn signed_diff(a: u64, b: u64) -> i64 {
    let d = i128::from(a) - i128::from(b);
    i64::try_from(d).unwrap_or(if d < 0 { i64::MIN } else { i64::MAX })
}

/// Seconds to ticks at `timescale`, rounded; saturating (the value comes
/// from metadata and may be anything finite).
fn seconds_to_ticks(seconds: f64, timescale: u32) -> i64 {
    let t = (seconds * f64::from(timescale)).round();
    if t.is_nan() {
        0
    } else {
        // In range after the clamp, so the conversion is exact.
        t.clamp(-9.0e18, 9.0e18) as i64
    }
}

fn frame_length(track: &Track) -> u64 {
    match track.codec() {
        Some(Codec::Aac(a)) => u64::from(a.frame_length),
        _ => 1024,
    }
}

/// Plans the output of `chunks` (in index order), waiting for the wall clock
/// at `holds[k]` (sorted by `at`; empty for `--gaps collapse`).
pub fn plan(chunks: &[&Movie], holds: &[Vec<Hold>]) -> Result<Plan, PlanError> {
    let first = chunks.first().ok_or(PlanError::NoChunk)?;
    let first_audio = first.audio().ok_or(PlanError::FirstHasNoAudio)?;
    let video_timescale = first.video().map(|v| v.timescale);
    let mut planner = Planner::new(first_audio.timescale, video_timescale, holds, chunks.len() - 1);
    // The output holds about as many samples as the inputs: reserved once
    // (the inputs' tables are already held, so the count is bounded), not
    // grown by doubling, which would hold two copies at each step.
    let count =
        |track: fn(&Movie) -> Option<&Track>| chunks.iter().filter_map(|c| track(c)).map(|t| t.samples.len()).sum();
    planner.audio.samples.reserve(count(Movie::audio));
    if let Some(v) = &mut planner.video {
        v.samples.reserve(count(Movie::video));
    }
    for (k, chunk) in chunks.iter().enumerate() {
        let (mut placement, join) = planner.add_audio(k, chunk)?;
        planner.add_video(k, chunk, &join, &mut placement)?;
        planner.placements.push(placement);
    }
    planner.finish()
}

/// The plan being built, chunk by chunk. Times are output media times in
/// the track's ticks.
struct Planner<'h> {
    holds: &'h [Vec<Hold>],
    audio: OutTrack,
    video: Option<OutTrack>,
    placements: Vec<Placement>,
    silence: Vec<u8>,
    /// Where the audio written so far ends.
    audio_end: u64,
    /// Where the video written so far ends (decode time).
    video_end: u64,
    /// Chunk 0's first real audio sample: output time 0.
    first_audio_start: u64,
    /// Chunk 0's video edit start.
    first_video_edit: u64,
    /// Index of the last chunk.
    last: usize,
}

/// What placing a chunk's audio tells the placing of its video.
struct AudioJoin {
    /// Output time of the chunk's first real audio sample, audio ticks since
    /// chunk 0's.
    start: u64,
    /// Silence inserted inside the chunk: (chunk media time, inserted ticks),
    /// audio ticks.
    inserted: Vec<(i64, u64)>,
}

fn empty_track(timescale: u32) -> OutTrack {
    OutTrack {
        timescale,
        entries: Vec::new(),
        samples: SampleTable::new(),
        edit_start: 0,
        presented: 0,
    }
}

/// How a chunk's audio edit list trims it, in output audio ticks.
struct AudioTrim {
    /// Decode times of the packets, and the end.
    times: Vec<u64>,
    /// Where the edit starts.
    trim: u64,
    /// How much the edit presents.
    presented: u64,
    /// Whole priming packets dropped (none for chunk 0: its edit trims them).
    drop: usize,
    /// Priming samples left after the dropped packets.
    leftover: u64,
}

impl AudioTrim {
    fn new(k: usize, a: &Track, movie_timescale: u32, ats: u32) -> Result<AudioTrim, PlanError> {
        let pa = a.presentation(movie_timescale);
        let times = rescaled_decode_times(a, ats);
        let trim = rescale(pa.start, a.timescale, ats);
        let media_end = times.last().copied().unwrap_or(0);
        if trim >= media_end {
            return Err(PlanError::EditPastEnd {
                chunk: k,
                trim,
                end: media_end,
            });
        }
        let drop = if k == 0 { 0 } else { priming_packets(&times, trim) };
        // times[drop] <= trim < media_end: some audio remains after the trim.
        let leftover = trim - times[drop];
        Ok(AudioTrim {
            presented: rescale(pa.length, a.timescale, ats),
            times,
            trim,
            drop,
            leftover,
        })
    }
}

/// Whole priming packets a later chunk drops: those its edit list trims
/// entirely (`times` are decode times, `trim` the edit's start).
fn priming_packets(times: &[u64], trim: u64) -> usize {
    let packets = times.len().saturating_sub(1);
    (0..packets).take_while(|&i| times[i + 1] <= trim).count()
}

impl<'h> Planner<'h> {
    fn new(audio_timescale: u32, video_timescale: Option<u32>, holds: &'h [Vec<Hold>], last: usize) -> Self {
        Planner {
            holds,
            audio: empty_track(audio_timescale),
            video: video_timescale.map(empty_track),
            placements: Vec::with_capacity(last + 1),
            silence: Vec::new(),
            audio_end: 0,
            video_end: 0,
            first_audio_start: 0,
            first_video_edit: 0,
            last,
        }
    }

    /// Appends chunk `k`'s audio: its priming dropped (chunk 0's stays,
    /// trimmed by the leading edit), silence inserted where a hold waits for
    /// the wall clock, the last packet before a join given a whole frame.
    fn add_audio(&mut self, k: usize, chunk: &Movie) -> Result<(Placement, AudioJoin), PlanError> {
        let src = u32::try_from(k).map_err(|_| PlanError::TooManyChunks)?;
        let ats = self.audio.timescale;
        let a = chunk.audio().ok_or(PlanError::NoAudioTrack { chunk: k })?;
        if a.samples.is_empty() {
            return Err(PlanError::NoSamples {
                chunk: k,
                track: "audio",
            });
        }
        let entry_map = merge_entries(&mut self.audio.entries, a, k, "audio")?;
        let cut = AudioTrim::new(k, a, chunk.movie_timescale, ats)?;
        let (times, trim, drop, leftover) = (&cut.times, cut.trim, cut.drop, cut.leftover);
        let mut start = self
            .audio_end
            .checked_add(leftover)
            .ok_or(PlanError::AudioTooLong { chunk: k })?;
        if k == 0 {
            self.first_audio_start = start;
            self.audio.edit_start = start;
        }
        let frame = rescale(frame_length(a), a.timescale, ats).max(1);
        let half_frame = i64::try_from(frame / 2).unwrap_or(i64::MAX);
        let holds = self.holds;
        let mut pending = holds.get(k).map_or(&[][..], Vec::as_slice).iter().peekable();
        let mut inserted: Vec<(i64, u64)> = Vec::new();
        for (i, s) in a.samples.iter().enumerate().skip(drop) {
            let local = signed_diff(times[i], trim);
            while let Some(hold) = pending.next_if(|h| {
                let at = seconds_to_ticks(h.at, ats);
                i == drop && at <= 0 || (at > 0 && local >= at.saturating_sub(half_frame))
            }) {
                if self.audio.samples.is_empty() {
                    continue;
                }
                let content_start = self.audio_end + if i == drop { leftover } else { 0 };
                let entry = mapped_entry(&entry_map, s, k)?;
                let ticks = self.hold_silence(k, a, entry, hold, content_start, frame)?;
                if ticks > 0 && i == drop {
                    start += ticks;
                } else if ticks > 0 {
                    inserted.push((local, ticks));
                }
            }
            let mut duration = times[i + 1] - times[i];
            if i == a.samples.len() - 1 && k != self.last {
                // The decoder outputs a whole frame: keep the padding in the timeline.
                duration = duration.max(frame);
            }
            let entry = mapped_entry(&entry_map, s, k)?;
            self.audio.samples.push(out_sample(src, s, duration, 0, entry)?);
            self.audio_end += duration;
        }
        self.audio_placement(k, &cut, start, inserted)
    }

    /// Where chunk `k`'s audio landed, once its samples are in: its first
    /// real sample at output time `start`.
    fn audio_placement(
        &mut self,
        k: usize,
        cut: &AudioTrim,
        start: u64,
        inserted: Vec<(i64, u64)>,
    ) -> Result<(Placement, AudioJoin), PlanError> {
        let ats = f64::from(self.audio.timescale);
        let kept_after_start = self
            .audio_end
            .checked_sub(start)
            .and_then(|t| t.checked_sub(inserted.iter().map(|(_, t)| t).sum::<u64>()))
            .ok_or(PlanError::EditPastAudio { chunk: k })?;
        let since_first = start
            .checked_sub(self.first_audio_start)
            .ok_or(PlanError::AudioBeforeFirst { chunk: k })?;
        let placement = Placement {
            audio_start: since_first as f64 / ats,
            audio_presented: cut.presented as f64 / ats,
            dropped_priming_packets: u32::try_from(cut.drop)
                .map_err(|_| PlanError::TooManyPrimingPackets { chunk: k })?,
            leftover_priming_samples: cut.leftover,
            tail_padding_samples: kept_after_start.saturating_sub(cut.presented),
            ..Placement::default()
        };
        if k == self.last {
            self.audio.presented = since_first.saturating_add(cut.presented.min(kept_after_start));
        }
        let join = AudioJoin {
            start: since_first,
            inserted,
        };
        Ok((placement, join))
    }

    /// Silent frames until the wall clock reaches `hold.resume_at`, from
    /// output time `content_start`; returns the ticks inserted (0: none).
    fn hold_silence(
        &mut self,
        k: usize,
        a: &Track,
        entry: u8,
        hold: &Hold,
        content_start: u64,
        frame: u64,
    ) -> Result<u64, PlanError> {
        let ats = self.audio.timescale;
        let now = content_start.saturating_sub(self.first_audio_start) as f64 / f64::from(ats);
        let wait = hold.resume_at - now;
        if wait > MAX_HOLD_SECONDS {
            return Err(PlanError::HoldTooLong {
                chunk: k,
                seconds: wait,
            });
        }
        let frames = (wait * f64::from(ats) / frame as f64).round();
        if frames < 1.0 {
            return Ok(0);
        }
        // 1 <= frames <= MAX_HOLD_SECONDS * ats: exact as an integer.
        let frames = frames as u64;
        if self.silence.is_empty() {
            self.silence = silent_frame(a).ok_or(PlanError::NoSilentFrame { chunk: k })?;
        }
        let silent = OutSample {
            source: SILENCE,
            offset: 0,
            size: u32::try_from(self.silence.len()).map_err(|_| PlanError::SilentFrameTooLong)?,
            duration: u32::try_from(frame).map_err(|_| PlanError::FrameTooLong)?,
            composition_offset: 0,
            sync: true,
            entry,
        };
        let count = usize::try_from(frames).map_err(|_| PlanError::TooManySilentFrames { chunk: k })?;
        self.audio.samples.extend(std::iter::repeat_n(silent, count));
        let ticks = frames * frame;
        self.audio_end += ticks;
        Ok(ticks)
    }

    /// Appends chunk `k`'s video, its first presented frame placed on its
    /// first real audio sample (by lengthening the last sample before the
    /// join), the picture held where silence was inserted inside it.
    fn add_video(
        &mut self,
        k: usize,
        chunk: &Movie,
        join: &AudioJoin,
        placement: &mut Placement,
    ) -> Result<(), PlanError> {
        let src = u32::try_from(k).map_err(|_| PlanError::TooManyChunks)?;
        let ats = self.audio.timescale;
        let Some(video) = self.video.as_mut() else {
            return Ok(());
        };
        let vts = video.timescale;
        let v = chunk.video().ok_or(PlanError::NoVideoTrack { chunk: k })?;
        if v.samples.is_empty() {
            return Err(PlanError::NoSamples {
                chunk: k,
                track: "video",
            });
        }
        let entry_map = merge_entries(&mut video.entries, v, k, "video")?;
        let pv = v.presentation(chunk.movie_timescale);
        let edit_start = rescale(pv.start, v.timescale, vts);
        let vtimes = rescaled_decode_times(v, vts);
        if k == 0 {
            self.first_video_edit = edit_start;
            video.edit_start = edit_start;
        } else {
            // The decode time at which this chunk's first presented frame shows
            // on its first real audio sample.
            let target = rescale(join.start, ats, vts)
                .saturating_add(self.first_video_edit)
                .checked_sub(edit_start);
            let last = video.samples.len().checked_sub(1).ok_or(PlanError::NoVideoBeforeJoin)?;
            let prev = video.samples.get(last).ok_or(PlanError::NoVideoBeforeJoin)?;
            let prev_start = self.video_end - u64::from(prev.duration);
            let wanted = target.map_or(0, |t| t.saturating_sub(prev_start)).max(1);
            let duration = u32::try_from(wanted).map_err(|_| PlanError::GapTooLong { chunk: k })?;
            if let Some(p) = self.placements.last_mut() {
                p.video_adjust_ticks = i64::from(duration) - i64::from(prev.duration);
            }
            video.samples.set_duration(last, duration);
            self.video_end = prev_start + u64::from(duration);
        }
        let decode_start = self.video_end;
        for (i, s) in v.samples.iter().enumerate() {
            let duration = vtimes[i + 1] - vtimes[i];
            let cts = rescale_signed(i64::from(s.composition_offset), v.timescale, vts);
            let entry = mapped_entry(&entry_map, s, k)?;
            video.samples.push(out_sample(src, s, duration, to_i32(cts)?, entry)?);
            self.video_end += duration;
        }
        let held = hold_picture(video, (k, v), &join.inserted, ats, pv.start)?;
        self.video_end += held;
        let v_start = decode_start.saturating_add(edit_start) as f64 - self.first_video_edit as f64;
        placement.video_start = Some(v_start / f64::from(vts));
        placement.planned_offset_ms = Some((v_start / f64::from(vts) - placement.audio_start) * 1000.0);
        if k == self.last {
            let length = rescale(pv.length, v.timescale, vts);
            video.presented = decode_start
                .saturating_add(edit_start)
                .saturating_sub(self.first_video_edit)
                .saturating_add(length);
        }
        Ok(())
    }

    /// The finished plan, once every track fits an MP4 track.
    fn finish(self) -> Result<Plan, PlanError> {
        for (what, track) in [("audio", Some(&self.audio)), ("video", self.video.as_ref())] {
            let n = track.map_or(0, |t| t.samples.len());
            if u32::try_from(n).is_err() {
                return Err(PlanError::TooManySamples { track: what, count: n });
            }
        }
        Ok(Plan {
            video: self.video,
            audio: self.audio,
            placements: self.placements,
            silence: self.silence,
        })
    }
}

/// The most samples after a hold over which its decode-time gap is spread.
const HOLD_STRETCH: usize = 64;

/// Holds the picture where silence was `inserted` inside chunk `k` (its
/// video `v`, the last `v.samples.len()` samples of `video`): every frame
/// the chunk presents before the pause point keeps its time, every frame at
/// or after it presents later by the silence, so the picture on screen
/// through the hold is the last frame before the pause and the video
/// resumes within half a frame of where the manifest says.
///
/// Only composition offsets and decode durations change. Frames decoded
/// before the last frame presented before the pause, but presented after it
/// (B-frame reordering), get the whole shift in their composition offset.
/// From that decode position on, the decode-time gap is spread over the next
/// samples (at most [`HOLD_STRETCH`]): each is lengthened by an equal share
/// and its composition offset raised by what the samples before it have not
/// yet added. One long decode gap stalls a frame-threaded decoder (ffmpeg's,
/// in VLC), which gives a frame out only once more packets arrive: VLC
/// showed the two frames before such a gap 0.4-0.5 s late every time;
/// spread, none. Returns the ticks added.
fn hold_picture(
    video: &mut OutTrack,
    (k, v): (usize, &Track),
    inserted: &[(i64, u64)],
    audio_timescale: u32,
    edit_start: u64,
) -> Result<u64, PlanError> {
    if inserted.is_empty() {
        return Ok(0);
    }
    // The chunk's own presentation times, in its track ticks.
    let mut t = 0i64;
    let pts: Vec<i64> = v
        .samples
        .iter()
        .map(|s| {
            let p = t.saturating_add(i64::from(s.composition_offset));
            t = t.saturating_add(i64::from(s.duration));
            p
        })
        .collect();
    let base = video.samples.len() - v.samples.len();
    let too_long = || PlanError::PauseTooLong { chunk: k };
    let frames = i64::try_from(v.samples.len()).unwrap_or(i64::MAX).max(1);
    let half_frame = i64::try_from(v.media_duration()).unwrap_or(0) / frames / 2;
    let mut added = 0u64;
    for &(at, ticks) in inserted {
        let pause = rescale_signed(at, audio_timescale, v.timescale)
            .saturating_add(i64::try_from(edit_start).unwrap_or(i64::MAX));
        // A frame presents after the pause when it starts past the pause point
        // less half a frame: the video resumes within half a frame of it.
        let pause = pause.saturating_sub(half_frame);
        // The first decode position from which every frame presents after the pause.
        let Some(from) = pts.iter().rposition(|&p| p < pause).map(|i| i + 1) else {
            continue;
        };
        if from >= pts.len() {
            continue;
        }
        let add = rescale(ticks, audio_timescale, video.timescale);
        let add_cts = i64::try_from(add).map_err(|_| too_long())?;
        let raise = |samples: &mut SampleTable, i: usize, by: i64| -> Result<(), PlanError> {
            let s = samples.get(i).ok_or_else(too_long)?;
            let offset = i32::try_from(i64::from(s.composition_offset) + by).map_err(|_| too_long())?;
            samples.set_composition_offset(i, offset);
            Ok(())
        };
        for (j, p) in pts.iter().enumerate().take(from) {
            if *p >= pause {
                raise(&mut video.samples, base + j, add_cts)?;
            }
        }
        let end = video.samples.len().min(base + from + HOLD_STRETCH);
        let count = end - (base + from);
        let n = u64::try_from(count).unwrap_or(1).max(1);
        let (share, rest) = (add / n, add % n);
        let mut shifted = 0u64;
        for (j, i) in (base + from..end).enumerate() {
            let extra = share + if j + 1 == count { rest } else { 0 };
            raise(
                &mut video.samples,
                i,
                i64::try_from(add - shifted).map_err(|_| too_long())?,
            )?;
            let duration = video.samples.get(i).map_or(0, |s| u64::from(s.duration));
            video
                .samples
                .set_duration(i, u32::try_from(duration + extra).map_err(|_| too_long())?);
            shifted += extra;
        }
        added += add;
    }
    Ok(added)
}

/// One AAC-LC raw data block of digital silence (ISO/IEC 14496-3 §4.4.2):
/// for each channel an `individual_channel_stream` with `max_sfb = 0` (no
/// spectral data), then `ID_END`. Mono uses one SCE, stereo one CPE.
fn silent_frame(track: &Track) -> Option<Vec<u8>> {
    let Some(Codec::Aac(aac)) = track.codec() else {
        return None;
    };
    if aac.object_type != 2 {
        return None;
    }
    let mut bits: Vec<u8> = Vec::new();
    let mut put = |value: u32, n: u32| {
        for i in (0..n).rev() {
            bits.push(((value >> i) & 1) as u8);
        }
    };
    // global_gain, ics_info (reserved, window_sequence, window_shape, max_sfb,
    // predictor_data_present), then pulse, tns and gain control absent.
    let ics = |put: &mut dyn FnMut(u32, u32)| {
        put(100, 8);
        put(0, 1);
        put(0, 2);
        put(0, 1);
        put(0, 6);
        put(0, 1);
        put(0, 3);
    };
    match aac.channels {
        1 => {
            put(0, 3); // ID_SCE
            put(0, 4);
            ics(&mut put);
        }
        2 => {
            put(1, 3); // ID_CPE
            put(0, 4);
            put(0, 1); // common_window
            ics(&mut put);
            ics(&mut put);
        }
        _ => return None,
    }
    put(7, 3); // ID_END
    while !bits.len().is_multiple_of(8) {
        bits.push(0);
    }
    Some(
        bits.chunks(8)
            .map(|b| b.iter().fold(0u8, |acc, &x| (acc << 1) | x))
            .collect(),
    )
}

fn rescale_signed(v: i64, from: u32, to: u32) -> i64 {
    let m = i64::try_from(rescale(v.unsigned_abs(), from, to)).unwrap_or(i64::MAX);
    if v < 0 {
        -m
    } else {
        m
    }
}

fn out_sample(source: u32, s: Sample, duration: u64, cts: i32, entry: u8) -> Result<OutSample, PlanError> {
    Ok(OutSample {
        source,
        offset: s.offset,
        size: s.size,
        duration: u32::try_from(duration).map_err(|_| PlanError::SampleDuration { duration })?,
        composition_offset: cts,
        sync: s.sync,
        entry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::mp4::{AacConfig, AvcConfig, Edit, Movie, SampleEntry, TrackKind};
    use std::path::PathBuf;

    const VTS: u32 = 16384;
    const ATS: u32 = 16000;

    fn entry(codec: Codec) -> SampleEntry {
        SampleEntry {
            fourcc: "x".into(),
            raw: vec![0, 0, 0, 8, b'x', b'x', b'x', b'x'],
            codec,
        }
    }

    fn aac() -> Codec {
        Codec::Aac(AacConfig {
            object_type: 2,
            sample_rate: ATS,
            channels: 1,
            frame_length: 1024,
            asc: vec![0x14, 0x08],
        })
    }

    fn avc() -> Codec {
        Codec::Avc(AvcConfig {
            profile_idc: 100,
            level_idc: 40,
            width: 1920,
            height: 1080,
            vui_fps_milli: None,
            nal_length_size: 4,
            entry_width: 1920,
            entry_height: 1080,
            sps: vec![vec![0x67]],
            pps: vec![vec![0x68]],
        })
    }

    fn sample(duration: u32, cts: i32, sync: bool) -> Sample {
        Sample {
            source: 0,
            offset: 0,
            size: 1,
            duration,
            composition_offset: cts,
            sync,
            entry: 0,
        }
    }

    /// A chunk: `frames` video frames at 8 fps with I B B P-style offsets
    /// (edit starts at 2 frames), `packets` audio packets of 1024 with the
    /// last `last` long, trimmed by `trim` samples.
    fn chunk(frames: usize, packets: usize, last: u32, trim: u64) -> Movie {
        let d = VTS / 8;
        let video: Vec<Sample> = (0..frames)
            .map(|i| match i % 3 {
                0 => sample(d, 2 * d as i32, i % 12 == 0),
                1 => sample(d, 4 * d as i32, false),
                _ => sample(d, 0, false),
            })
            .collect();
        let mut audio: Vec<Sample> = (0..packets).map(|_| sample(1024, 0, true)).collect();
        audio.last_mut().unwrap().duration = last;
        let a_len = (packets as u64 - 1) * 1024 + u64::from(last) - trim;
        Movie {
            path: PathBuf::from("c.mp4"),
            file_size: 1 << 20,
            major_brand: "isom".into(),
            fragmented: false,
            movie_timescale: 1000,
            mdat_ranges: vec![],
            quirks: vec![],
            tracks: vec![
                Track {
                    id: 1,
                    kind: TrackKind::Video,
                    handler: "vide".into(),
                    timescale: VTS,
                    declared_duration: 0,
                    language: "und".into(),
                    edits: vec![Edit {
                        segment_duration: frames as u64 * 125,
                        media_time: Some(2 * u64::from(d)),
                        rate: 1,
                    }],
                    entries: vec![entry(avc())],
                    samples: video.into_iter().collect(),
                },
                Track {
                    id: 2,
                    kind: TrackKind::Audio,
                    handler: "soun".into(),
                    timescale: ATS,
                    declared_duration: 0,
                    language: "und".into(),
                    edits: vec![Edit {
                        segment_duration: a_len * 1000 / u64::from(ATS),
                        media_time: Some(trim),
                        rate: 1,
                    }],
                    entries: vec![entry(aac())],
                    samples: audio.into_iter().collect(),
                },
            ],
        }
    }

    #[test]
    fn later_chunks_drop_their_priming_packet_and_keep_tail_padding() {
        // 3 s of audio: 1024 priming + 48000 real = 47 full packets + 896.
        let a = chunk(24, 48, 896, 1024);
        let b = chunk(24, 48, 896, 1024);
        let p = plan(&[&a, &b], &[]).unwrap();
        // chunk 0 keeps all 48 packets (its priming is trimmed by the edit), chunk 1 drops one.
        assert_eq!(p.audio.samples.len(), 48 + 47);
        assert_eq!(p.placements[1].dropped_priming_packets, 1);
        assert_eq!(p.placements[1].leftover_priming_samples, 0);
        // The packet before the join decodes to a whole frame and keeps that length.
        assert_eq!(p.audio.samples.get(47).unwrap().duration, 1024);
        assert_eq!(p.placements[0].tail_padding_samples, 128);
        // The very last packet keeps its real duration.
        assert_eq!(p.audio.samples.last().unwrap().duration, 896);
        // No packet other than the last is shorter than a frame.
        assert!(p
            .audio
            .samples
            .range(0..p.audio.samples.len() - 1)
            .all(|s| s.duration == 1024));
        assert_eq!(p.audio.edit_start, 1024);
        // Chunk 1's real audio starts after 48000 + 128 samples of chunk 0.
        assert_eq!(p.placements[1].audio_start, 48128.0 / 16000.0);
        // Nothing presented is dropped; the excess is the tail padding.
        assert_eq!(p.audio.presented, 48128 + 48000);
    }

    #[test]
    fn a_trim_of_partial_packets_leaves_counted_priming() {
        let a = chunk(24, 48, 896, 1024);
        let b = chunk(24, 49, 960, 2112); // 2048 + 64 priming samples
        let p = plan(&[&a, &b], &[]).unwrap();
        assert_eq!(p.placements[1].dropped_priming_packets, 2);
        assert_eq!(p.placements[1].leftover_priming_samples, 64);
        assert_eq!(p.placements[1].audio_start, (48128.0 + 64.0) / 16000.0);
    }

    #[test]
    fn video_of_the_next_chunk_starts_on_its_first_real_audio_sample() {
        let a = chunk(24, 48, 896, 1024);
        let b = chunk(24, 48, 896, 1024);
        let c = chunk(18, 37, 960, 1024);
        let p = plan(&[&a, &b, &c], &[]).unwrap();
        let v = p.video.as_ref().unwrap();
        // Composition offsets are kept as they were.
        assert_eq!(v.samples.get(0).unwrap().composition_offset, 2 * 2048);
        assert_eq!(v.samples.get(25).unwrap().composition_offset, 4 * 2048);
        for pl in &p.placements {
            let off = pl.planned_offset_ms.unwrap();
            assert!(off.abs() < 0.031, "planned offset {off} ms");
        }
        // 3.008 s at 16384 Hz is 49283.07 ticks: chunk 0's last frame is lengthened by 131 ticks.
        assert_eq!(p.placements[0].video_adjust_ticks, 49283 - 24 * 2048);
        assert_eq!(v.samples.get(23).unwrap().duration, 2048 + 131);
        // Decode times never go backwards.
        assert!(v.samples.iter().all(|s| s.duration > 0));
    }

    #[test]
    fn incompatible_chunks_are_refused() {
        let a = chunk(24, 48, 896, 1024);
        let mut b = chunk(24, 48, 896, 1024);
        if let Codec::Avc(cfg) = &mut b.tracks[0].entries[0].codec {
            cfg.width = 1280;
            cfg.height = 720;
        }
        let err = plan(&[&a, &b], &[]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "chunk 1: video: picture size changes from 1920x1080 to 1280x720"
        );
        // A new SPS with the same size becomes a second sample description.
        let mut c = chunk(24, 48, 896, 1024);
        if let Codec::Avc(cfg) = &mut c.tracks[0].entries[0].codec {
            cfg.sps = vec![vec![0x67, 1]];
        }
        let p = plan(&[&a, &c], &[]).unwrap();
        let v = p.video.unwrap();
        assert_eq!(v.entries.len(), 2);
        assert_eq!(v.samples.get(0).unwrap().entry, 0);
        assert_eq!(v.samples.get(24).unwrap().entry, 1);
    }

    #[test]
    fn holds_insert_silence_and_lengthen_the_picture() {
        let a = chunk(24, 48, 896, 1024);
        let b = chunk(24, 48, 896, 1024);
        // Chunk 1 must start at 5 s (a 2 s gap) on the output clock.
        let holds = vec![
            vec![],
            vec![Hold {
                at: 0.0,
                resume_at: 5.0,
            }],
        ];
        let p = plan(&[&a, &b], &holds).unwrap();
        let silent = p.audio.samples.iter().filter(|s| s.source == SILENCE).count();
        // (5.0 - 3.008) s = 31872 samples = 31.1 frames -> 31 frames.
        assert_eq!(silent, 31);
        assert!(!p.silence.is_empty());
        let start = p.placements[1].audio_start;
        assert!(
            (start - 5.0).abs() <= 0.5 * 1024.0 / 16000.0,
            "chunk 1 starts at {start}"
        );
        assert!(p.placements[1].planned_offset_ms.unwrap().abs() < 0.031);
    }

    #[test]
    fn a_hold_inside_a_chunk_holds_one_picture_and_spreads_its_decode_gap() {
        // Video without B-frames: a clean split before every frame.
        let plain = || {
            let mut c = chunk(24, 48, 896, 1024);
            c.tracks[0].samples = c.tracks[0]
                .samples
                .iter()
                .map(|s| Sample {
                    composition_offset: 0,
                    ..s
                })
                .collect();
            c.tracks[0].edits[0].media_time = Some(0);
            c
        };
        let (a, b) = (plain(), plain());
        // Chunk 1 pauses after 1 s of its media for 2 s of wall clock.
        let holds = vec![
            vec![],
            vec![Hold {
                at: 1.0,
                resume_at: 6.008,
            }],
        ];
        let p = plan(&[&a, &b], &holds).unwrap();
        let v = p.video.as_ref().unwrap();
        let chunk1: Vec<Sample> = v.samples.range(24..v.samples.len()).collect();
        // Decode durations: none shorter than a frame, none carrying the whole hold.
        assert!(chunk1.iter().all(|s| s.duration >= 2048), "{chunk1:?}");
        let longest = chunk1.iter().map(|s| s.duration).max().unwrap();
        assert!(longest < 2048 + 16384, "one sample carries {longest} ticks");
        // Presentation: one picture held about 2 s, every other one a frame long.
        let mut dts = 0i64;
        let mut pts: Vec<i64> = Vec::new();
        for s in &v.samples {
            pts.push(dts + i64::from(s.composition_offset));
            dts += i64::from(s.duration);
        }
        let mut chunk1_pts = pts[24..].to_vec();
        chunk1_pts.sort_unstable();
        let steps: Vec<i64> = chunk1_pts.windows(2).map(|w| w[1] - w[0]).collect();
        let held: Vec<&i64> = steps.iter().filter(|&&d| d != 2048).collect();
        assert_eq!(held.len(), 1, "{steps:?}");
        assert!((*held[0] - 2048 - 2 * 16384).abs() < 2048, "held {} ticks", held[0]);
        // Decode order still precedes presentation.
        let mut dts = 0i64;
        for (s, p) in v.samples.iter().zip(&pts) {
            assert!(*p >= dts, "a frame presents before it decodes");
            dts += i64::from(s.duration);
        }
    }

    #[test]
    fn silent_frames_are_well_formed() {
        let a = chunk(3, 3, 1024, 1024);
        let mono = silent_frame(&a.tracks[1]).unwrap();
        // SCE, tag 0, global_gain 100, ics_info all zero, no tools, END: 32 bits.
        // 000 0000 01100100 0 00 0 000000 0 000 111
        assert_eq!(mono, vec![0x00, 0xC8, 0x00, 0x07]);
        let mut st = a.tracks[1].clone();
        if let Codec::Aac(cfg) = &mut st.entries[0].codec {
            cfg.channels = 2;
        }
        assert_eq!(silent_frame(&st).unwrap().len(), 7);
    }
}
