//! The validation rules: each chunk against its metadata, and each recording
//! as a whole. Rules add [`Finding`]s; none stops at the first problem.

use std::path::Path;

use rayon::prelude::*;

use crate::error::Error;
use crate::finding::{has_errors, sort_findings, Code, Finding};
use crate::formats::mp4::{self, Codec, Movie, TrackKind};
use crate::formats::AudioFile;
use crate::input::archive::{Chunk, FileKind, Recording};
use crate::input::metadata::{AudioConfiguration, ChunkMetadata, CompletionEvent, MediaFormat, VideoConfiguration};
use crate::limits::Limits;
use crate::storage::Storage;

/// Options for [`Recording::validate`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ValidateOptions {
    /// Resource budgets for probing.
    pub limits: Limits,
    /// Also decode all audio and walk the H.264 bitstream ([`crate::formats::deep`]).
    pub deep: bool,
}

/// What the service records when the metadata does not say: the media is
/// checked against these instead.
pub mod defaults {
    /// Longer side of the picture.
    pub const LONGER_SIDE: u32 = 1920;
    /// Shorter side of the picture.
    pub const SHORTER_SIDE: u32 = 1080;
    /// The frame rates the service has recorded at: 8 fps before about
    /// 2023, 16 fps today, 15 fps also seen. Current metadata states none.
    pub const FRAME_RATES: [f64; 3] = [8.0, 15.0, 16.0];
    /// Audio sample rate.
    pub const SAMPLE_RATE: u32 = 16000;
    /// Audio channels of a mixed recording.
    pub const CHANNELS: u32 = 1;
}

/// Relative frame-rate difference tolerated.
const FRAME_RATE_TOLERANCE: f64 = 0.01;
/// Share by which an average bit rate may exceed its nominal ceiling.
const BITRATE_TOLERANCE: f64 = 0.10;
/// Smallest tolerance between wall-clock and media times, milliseconds:
/// durations that differ by less, and gaps or overlaps between chunks that
/// are shorter, are continuous. See [`tolerance_ms`].
pub const TOLERANCE_MS: f64 = 250.0;

/// The tolerance for a chunk's times: the larger of [`TOLERANCE_MS`] and one
/// frame of its video. The one rule for `chunk.duration`, `chunk.gap` and
/// `chunk.overlap` findings and for the gaps the timeline marks.
pub fn tolerance_ms(media: Option<&Movie>) -> f64 {
    let frame_ms = media
        .and_then(Movie::video)
        .and_then(Movie::frame_rate)
        .filter(|f| *f > 0.0)
        .map_or(0.0, |f| 1000.0 / f);
    TOLERANCE_MS.max(frame_ms)
}
/// The largest gap or overlap between consecutive chunks that can be real,
/// milliseconds: a day. Chunks are at most hours long and follow each other;
/// anything further apart is a broken time, not a recording.
pub const MAX_GAP_MS: f64 = 24.0 * 3600.0 * 1000.0;

/// What validation learned about one chunk.
#[derive(Debug, Clone, Default)]
pub struct ChunkCheck {
    /// The probed media, when the chunk's MP4 could be read.
    pub media: Option<Movie>,
    /// Presented media duration in milliseconds.
    pub media_duration_ms: Option<f64>,
    /// Whether the paused time was cut out of the media (`Some(true)`), kept
    /// in it (`Some(false)`), or cannot be told (`None`: no pauses, or the
    /// duration matched neither case).
    pub pauses_cut: Option<bool>,
    /// The deep audio analysis (`deep` only).
    pub audio: Option<crate::formats::deep::AudioAnalysis>,
    /// The probed audio file of an MP3 or WAV chunk (`media` is `None` then).
    pub audio_file: Option<AudioFile>,
    /// What the media holds, as found (for reports and manifests).
    pub streams: Option<Streams>,
}

/// What a chunk's media holds, as found in the file (not as the metadata
/// says): reports and manifests show it, so that a recording whose metadata
/// states no frame rate or picture size still says what it has.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Streams {
    /// The container: `mp4`, `mp3` or `wav`.
    pub format: MediaFormat,
    /// Audio samples per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_rate: Option<u32>,
    /// Audio channels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<u32>,
    /// Picture width, pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Picture height, pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Video frames per second (3 decimals).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_rate: Option<f64>,
    /// Whether the metadata stated the frame rate (`false`: checked against
    /// the service's own rates, [`defaults::FRAME_RATES`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_rate_stated: Option<bool>,
}

impl Streams {
    /// What an MP4 holds.
    fn of_movie(media: &Movie, md: Option<&ChunkMetadata>) -> Streams {
        let (mut width, mut height, mut sample_rate, mut channels) = (None, None, None, None);
        for track in media.tracks.iter() {
            match track.codec() {
                Some(Codec::Avc(avc)) => (width, height) = (Some(avc.width), Some(avc.height)),
                Some(Codec::Aac(aac)) => {
                    (sample_rate, channels) = (Some(aac.sample_rate), Some(u32::from(aac.channels)))
                }
                _ => {}
            }
        }
        let video = media.video();
        Streams {
            format: MediaFormat::Mp4,
            sample_rate,
            channels,
            width,
            height,
            frame_rate: video.and_then(Movie::frame_rate).map(|f| (f * 1000.0).round() / 1000.0),
            frame_rate_stated: video.map(|_| {
                md.and_then(|m| m.recording.video.as_ref())
                    .and_then(|v| v.frame_rate)
                    .is_some()
            }),
        }
    }

    /// What an MP3 or WAV holds.
    fn of_audio(file: &AudioFile) -> Streams {
        Streams {
            format: file.format(),
            sample_rate: Some(file.sample_rate()),
            channels: Some(file.channels()),
            width: None,
            height: None,
            frame_rate: None,
            frame_rate_stated: None,
        }
    }
}

/// A recording with the outcome of its validation.
#[derive(Debug, Clone)]
pub struct ValidatedRecording {
    /// The recording as scanned.
    pub recording: Recording,
    /// One check per chunk, in the order of `recording.chunks`.
    pub checks: Vec<ChunkCheck>,
    /// Every finding (scan and validation), sorted.
    pub findings: Vec<Finding>,
}

impl ValidatedRecording {
    /// Whether the recording has no error finding (and may be stitched).
    pub fn is_valid(&self) -> bool {
        !has_errors(&self.findings)
    }

    /// Frees every chunk's sample tables, once a stitch has planned from
    /// them (the batch does, before writing: a 20-hour recording's tables
    /// take about 13 MB). Frame rates and durations read from them are gone too.
    pub(crate) fn drop_sample_tables(&mut self) {
        for media in self.checks.iter_mut().filter_map(|c| c.media.as_mut()) {
            for track in &mut media.tracks {
                track.samples = crate::formats::mp4::SampleTable::new();
            }
        }
    }
}

impl Recording {
    /// Probes every chunk (in parallel) and applies every rule.
    pub fn validate(&self, options: &ValidateOptions) -> ValidatedRecording {
        let probed: Vec<(ChunkCheck, Vec<Finding>)> = self
            .chunks
            .par_iter()
            .map(|c| check_chunk(&self.storage, c, options))
            .collect();
        let mut findings = self.findings.clone();
        let mut checks = Vec::with_capacity(probed.len());
        for (check, f) in probed {
            checks.push(check);
            findings.extend(f);
        }
        recording_rules(self, &checks, &mut findings);
        sort_findings(&mut findings);
        ValidatedRecording {
            recording: self.clone(),
            checks,
            findings,
        }
    }
}

/// Probes one chunk and checks it against its own metadata.
fn check_chunk(storage: &Storage, chunk: &Chunk, options: &ValidateOptions) -> (ChunkCheck, Vec<Finding>) {
    let mut out = Vec::new();
    let mut check = ChunkCheck::default();
    let index = chunk.index();
    let Some((path, format)) = media_to_probe(storage, chunk, index, &mut out) else {
        return (check, out);
    };
    if format != MediaFormat::Mp4 {
        check_audio_chunk(storage, chunk, (path, format), options, (&mut check, &mut out));
        return (check, out);
    }
    let media = match mp4::probe_in(storage, path, &options.limits) {
        Ok(m) => m,
        Err(e) => {
            out.push(probe_failure(e, index));
            return (check, out);
        }
    };
    let whole = check_truncation(&media, index, &mut out);
    let edits_ok = check_edits(&media, index, &mut out);
    let duration = media.duration_ms();
    check.media_duration_ms = Some(duration);
    check_quirks(&media, index, &mut out);
    if let Some(md) = &chunk.metadata {
        check_pauses(md, index, &mut out);
        check_streams(md, &media, index, &mut out);
        check.pauses_cut = check_duration(md, duration, tolerance_ms(Some(&media)), index, &mut out);
    }
    // A truncated chunk is reported as such; its samples are not decoded.
    if options.deep && whole && edits_ok {
        check.audio = deep_checks(storage, &media, index, &options.limits, &mut out);
    }
    check.streams = Some(Streams::of_movie(&media, chunk.metadata.as_ref()));
    check.media = Some(media);
    (check, out)
}

/// Probes an MP3 or WAV chunk and checks it against its metadata: the
/// counterpart of the MP4 rules, with the same finding codes.
fn check_audio_chunk(
    storage: &Storage,
    chunk: &Chunk,
    (path, format): (&Path, MediaFormat),
    options: &ValidateOptions,
    (check, out): (&mut ChunkCheck, &mut Vec<Finding>),
) {
    let index = chunk.index();
    let file = match AudioFile::probe_in(storage, path, format, &options.limits) {
        Ok(f) => f,
        Err(e) => return out.push(probe_failure(e, index)),
    };
    if let Some(why) = file.truncated() {
        out.push(Finding::error(
            Code::MediaTruncated,
            index,
            format!("{}: {why}: the download is incomplete", path.display()),
        ));
    }
    for quirk in file.quirks() {
        out.push(Finding::warning(
            Code::MediaQuirk,
            index,
            format!("{}: {quirk}", path.display()),
        ));
    }
    let duration = file.duration_ms();
    check.media_duration_ms = Some(duration);
    if let Some(md) = &chunk.metadata {
        check_pauses(md, index, out);
        check_audio_file(md, &file, index, out);
        check.pauses_cut = check_duration(md, duration, TOLERANCE_MS, index, out);
    }
    if options.deep && file.truncated().is_none() {
        match file.analyse(storage, &options.limits) {
            Ok(a) => {
                out.extend(crate::formats::deep::audio_findings(&a, index));
                check.audio = Some(a);
            }
            Err(why) => out.push(Finding::error(Code::AudioDecodeError, index, why.to_string())),
        }
    }
    check.streams = Some(Streams::of_audio(&file));
    check.audio_file = Some(file);
}

/// `audio.sample_rate`, `audio.channels`, `audio.bitrate` of an MP3 or WAV;
/// for unmixed audio, every participant's channel must exist.
fn check_audio_file(md: &ChunkMetadata, file: &AudioFile, index: Option<u32>, out: &mut Vec<Finding>) {
    let expected = md.recording.audio.as_ref();
    let rate = expected.and_then(|a| a.sample_rate).unwrap_or(defaults::SAMPLE_RATE);
    if file.sample_rate() != rate {
        let said = if expected.and_then(|a| a.sample_rate).is_some() {
            "the metadata says"
        } else {
            "the service records"
        };
        out.push(Finding::error(
            Code::AudioSampleRate,
            index,
            format!("audio is sampled at {} Hz; {said} {rate}", file.sample_rate()),
        ));
    }
    let channels = file.channels();
    match expected.and_then(|a| a.channels) {
        Some(stated) if stated != channels => out.push(Finding::error(
            Code::AudioChannels,
            index,
            format!("audio has {channels} channel(s); the metadata says {stated}"),
        )),
        None if !md.recording.unmixed() && channels != defaults::CHANNELS => out.push(Finding::error(
            Code::AudioChannels,
            index,
            format!(
                "mixed audio has {channels} channel(s); the service records {}",
                defaults::CHANNELS
            ),
        )),
        _ => {}
    }
    for p in &md.participants {
        if let Some(c) = p.channel.filter(|&c| c >= channels) {
            out.push(Finding::error(
                Code::AudioChannels,
                index,
                format!(
                    "participant {} is on channel {c}, but the audio has {channels} channel(s) (0-based)",
                    p.participant_id
                ),
            ));
        }
    }
    if let Some(nominal) = expected.and_then(|a| a.bit_rate).filter(|&n| n > 0) {
        // PCM's rate is fixed by its format: only a compressed stream has a ceiling to keep.
        let actual = file.bit_rate();
        if file.format() == MediaFormat::Mp3 && actual > nominal as f64 * (1.0 + BITRATE_TOLERANCE) {
            out.push(Finding::warning(
                Code::AudioBitrate,
                index,
                format!(
                    "average audio bit rate is {actual:.0} bit/s, {:.0}% above the nominal {nominal}",
                    (actual / nominal as f64 - 1.0) * 100.0
                ),
            ));
        }
    }
}

/// The chunk's media file and its format when there is one to probe;
/// otherwise the finding that says why not (`media.missing`,
/// `media.unsupported_format`, `media.format_mismatch`, `media.unreadable`,
/// `media.empty`, `media.not_mp4`).
fn media_to_probe<'c>(
    storage: &Storage,
    chunk: &'c Chunk,
    index: Option<u32>,
    out: &mut Vec<Finding>,
) -> Option<(&'c Path, MediaFormat)> {
    let stated = chunk.metadata.as_ref().and_then(|m| m.recording.media_format());
    let Some(path) = &chunk.media_path else {
        // Without metadata nothing says this was a chunk: metadata.invalid says enough.
        if chunk.metadata.is_some() {
            out.push(Finding::error(
                Code::MediaMissing,
                index,
                format!(
                    "no media file for chunk {} (expected {}.{} near {})",
                    chunk.document_id,
                    chunk.document_id,
                    stated.unwrap_or(MediaFormat::Mp4).extension(),
                    chunk.metadata_path.display()
                ),
            ));
        }
        return None;
    };
    let shown = path.display();
    let finding = match chunk_format(chunk.metadata.as_ref(), chunk.media_kind) {
        Ok(Some(format)) => return Some((path.as_path(), format)),
        Err((code, why)) => Finding::error(code, index, format!("{shown}: {why}")),
        Ok(None) => match chunk.media_kind {
            Some(FileKind::Unreadable) => {
                let why = crate::input::archive::unreadable_reason(storage, path)
                    .unwrap_or_else(|| "it could not be read while scanning".into());
                Finding::error(Code::MediaUnreadable, index, format!("{shown} cannot be read: {why}"))
            }
            Some(FileKind::Empty) => Finding::error(
                Code::MediaEmpty,
                index,
                format!("{shown} is empty (0 bytes): download it again"),
            ),
            Some(kind) => Finding::error(
                Code::MediaNotMp4,
                index,
                format!(
                    "{shown} is {}, not an {}: download it again",
                    kind.describe(),
                    stated.unwrap_or(MediaFormat::Mp4).name()
                ),
            ),
            None => return Some((path.as_path(), stated.unwrap_or(MediaFormat::Mp4))),
        },
    };
    out.push(finding);
    None
}

/// The format a chunk is read and stitched as: what its file holds, which
/// must be what its metadata says. `Ok(None)` when the file holds no media
/// at all (empty, unreadable, an error page: the caller says which);
/// otherwise the code and reason why it cannot be stitched.
fn chunk_format(md: Option<&ChunkMetadata>, kind: Option<FileKind>) -> Result<Option<MediaFormat>, (Code, String)> {
    const STITCHED: &str = "recstitch stitches MP4, MP3 and WAV recordings";
    let stated = match md.map(|m| (m.recording.media_format(), &m.recording.format)) {
        Some((None, named)) => {
            return Err((
                Code::MediaUnsupportedFormat,
                format!("the metadata describes a recording in format {named:?}; {STITCHED}"),
            ))
        }
        Some((Some(f), _)) => Some(f),
        None => None,
    };
    let found = match kind {
        Some(FileKind::Mp4) => Some(MediaFormat::Mp4),
        Some(FileKind::Mp3) => Some(MediaFormat::Mp3),
        Some(FileKind::Wav) => Some(MediaFormat::Wav),
        Some(other) => {
            if let Some(name) = other.media_format() {
                return Err((Code::MediaUnsupportedFormat, format!("the file is {name}; {STITCHED}")));
            }
            return Ok(None);
        }
        None => None,
    };
    let Some(format) = found.or(stated) else {
        return Ok(None);
    };
    if let Some(md) = md {
        let per_participant = md.participants.iter().any(|p| p.channel.is_some());
        if (md.recording.unmixed() || per_participant) && format != MediaFormat::Wav {
            return Err((
                Code::MediaUnsupportedFormat,
                format!(
                    "the metadata describes unmixed audio (one channel per participant) in {}: the service writes unmixed recordings as WAV, and recstitch stitches unmixed WAV only",
                    format.name()
                ),
            ));
        }
    }
    match stated {
        Some(said) if said != format => Err((
            Code::MediaFormatMismatch,
            format!(
                "the metadata says format {:?} but the file is {}: a wrong file saved under this chunk's name?",
                md.map_or("", |m| m.recording.format.as_str()),
                kind.map_or("another format", FileKind::describe)
            ),
        )),
        _ => Ok(Some(format)),
    }
}

/// The finding for a chunk whose MP4 structure could not be read.
fn probe_failure(e: Error, index: Option<u32>) -> Finding {
    let code = match e {
        Error::Truncated { .. } => Code::MediaTruncated,
        Error::Io { .. } => Code::MediaUnreadable,
        _ => Code::MediaInvalid,
    };
    Finding::error(code, index, e.to_string())
}

/// `media.truncated` for samples past the end of the file; whether the
/// chunk is whole.
fn check_truncation(media: &Movie, index: Option<u32>, out: &mut Vec<Finding>) -> bool {
    let Some((track, sample, end)) = media.first_sample_past_end() else {
        return true;
    };
    out.push(Finding::error(
        Code::MediaTruncated,
        index,
        format!(
            "{}: track {track} sample {sample} ends at byte {end} but the file has {} bytes: the download is incomplete",
            media.path.display(),
            media.file_size
        ),
    ));
    false
}

/// `media.quirk`: what the probe tolerated, one warning each.
fn check_quirks(media: &Movie, index: Option<u32>, out: &mut Vec<Finding>) {
    for quirk in &media.quirks {
        out.push(Finding::warning(
            Code::MediaQuirk,
            index,
            format!("{}: {quirk}", media.path.display()),
        ));
    }
}

/// `--deep`: decodes the audio and walks the video bitstream.
fn deep_checks(
    storage: &Storage,
    media: &Movie,
    index: Option<u32>,
    limits: &Limits,
    out: &mut Vec<Finding>,
) -> Option<crate::formats::deep::AudioAnalysis> {
    let audio = match crate::formats::deep::analyse_audio(storage, media, limits) {
        Ok(a) => {
            out.extend(crate::formats::deep::audio_findings(&a, index));
            Some(a)
        }
        Err(why) => {
            out.push(Finding::error(Code::AudioDecodeError, index, why.to_string()));
            None
        }
    };
    out.extend(crate::formats::deep::check_video(storage, media, index, limits));
    audio
}

/// `media.invalid`: an edit list must present media that is there. One
/// that starts at or past the end of its track's media presents nothing of
/// it; one that presents longer than the samples last (beyond the chunk's
/// tolerance) describes a track its samples do not hold (a wrong `mdhd`
/// timescale, durations of zero). No join can be planned from either.
fn check_edits(media: &Movie, index: Option<u32>, out: &mut Vec<Finding>) -> bool {
    let mut ok = true;
    let tolerance_s = tolerance_ms(Some(media)) / 1000.0;
    for track in media.tracks.iter().filter(|t| t.kind != TrackKind::Other) {
        let media_ticks = track.media_duration();
        let p = track.presentation(media.movie_timescale);
        let rate = f64::from(track.timescale.max(1));
        let why = if p.start > 0 && p.start >= media_ticks {
            format!(
                "edit list (edts/elst media_time) starts at {} ticks, at or past the end of its media ({media_ticks} ticks at {} Hz): nothing of the track would play",
                p.start, track.timescale
            )
        } else if (p.length as f64 - media_ticks as f64) / rate > tolerance_s {
            format!(
                "edit list presents {:.3} s but its samples last {:.3} s (mdhd timescale {} Hz): the track does not hold what it claims",
                p.length as f64 / rate,
                media_ticks as f64 / rate,
                track.timescale
            )
        } else {
            continue;
        };
        ok = false;
        out.push(Finding::error(
            Code::MediaInvalid,
            index,
            format!("{}: track {} ({}) {why}", media.path.display(), track.id, track.handler),
        ));
    }
    ok
}

/// `metadata.invalid`: pause intervals must lie inside their chunk's wall
/// clock span (which is `chunkDuration` long, or that plus the pauses when
/// the pauses are not counted in it) and must not overlap each other.
fn check_pauses(md: &ChunkMetadata, index: Option<u32>, out: &mut Vec<Finding>) {
    let paused: f64 = md.pauses.iter().map(|p| p.duration_ms).sum();
    let latest_end = md.start.plus_ms(md.duration_ms + paused + TOLERANCE_MS);
    let earliest = md.start.plus_ms(-TOLERANCE_MS);
    let mut order: Vec<usize> = (0..md.pauses.len()).collect();
    order.sort_by_key(|&i| (md.pauses[i].start, i));
    let mut previous: Option<(usize, crate::WallClock)> = None;
    for &i in &order {
        let p = &md.pauses[i];
        let end = p.start.plus_ms(p.duration_ms);
        let mut why = Vec::new();
        if p.start < earliest {
            why.push(format!(
                "starts {:.0} ms before the chunk does",
                -md.start.ms_until(p.start)
            ));
        }
        if end > latest_end {
            why.push(format!(
                "ends {:.0} ms after the chunk's {:.0} ms (pauses included) do",
                md.start.ms_until(end) - md.duration_ms - paused,
                md.duration_ms + paused
            ));
        }
        if let Some((j, prev_end)) = previous {
            if prev_end.ms_until(p.start) < -TOLERANCE_MS {
                why.push(format!(
                    "starts {:.0} ms before pauseResumeIntervals[{j}] ends",
                    -prev_end.ms_until(p.start)
                ));
            }
        }
        if !why.is_empty() {
            out.push(Finding::error(
                Code::MetadataInvalid,
                index,
                format!(
                    "pauseResumeIntervals[{i}] ({}, {} ms) {}: the pause does not fit the chunk",
                    p.start,
                    p.duration_ms,
                    why.join(" and ")
                ),
            ));
        }
        if previous.is_none_or(|(_, e)| end > e) {
            previous = Some((i, end));
        }
    }
}

/// Codec, picture, frame rate, audio and bit-rate rules.
fn check_streams(md: &ChunkMetadata, media: &Movie, index: Option<u32>, out: &mut Vec<Finding>) {
    let info = &md.recording;
    match (media.video(), info.audio_only()) {
        (None, false) => out.push(Finding::error(
            Code::VideoCodec,
            index,
            "the metadata describes video but the MP4 has no video track",
        )),
        (Some(track), _) => check_video_stream(info.video.as_ref(), track, index, out),
        (None, true) => {}
    }
    match media.audio() {
        None => out.push(Finding::error(Code::AudioCodec, index, "the MP4 has no audio track")),
        Some(track) => check_audio_stream(info.audio.as_ref(), track, index, out),
    }
}

/// `video.codec`, `video.resolution`, `video.frame_rate`, `video.bitrate`.
fn check_video_stream(
    expected: Option<&VideoConfiguration>,
    track: &mp4::Track,
    index: Option<u32>,
    out: &mut Vec<Finding>,
) {
    match track.codec() {
        Some(Codec::Avc(avc)) => {
            let stated = (
                expected.and_then(|v| v.longer_side),
                expected.and_then(|v| v.shorter_side),
            );
            let longer = stated.0.unwrap_or(defaults::LONGER_SIDE);
            let shorter = stated.1.unwrap_or(defaults::SHORTER_SIDE);
            let (w, h) = (avc.width, avc.height);
            if (w.max(h), w.min(h)) != (longer, shorter) {
                let said = match stated {
                    (Some(_), Some(_)) => "the metadata says",
                    (None, None) => "the metadata states no picture size and the service records",
                    _ => "the metadata and the service's own size give",
                };
                out.push(Finding::error(
                    Code::VideoResolution,
                    index,
                    format!("video is {w}x{h}; {said} {longer}x{shorter}"),
                ));
            }
        }
        other => out.push(Finding::error(
            Code::VideoCodec,
            index,
            format!("video codec is {}; expected H.264", codec_name(other)),
        )),
    }
    if let Some(fps) = Movie::frame_rate(track) {
        let near = |want: f64| want > 0.0 && ((fps - want) / want).abs() <= FRAME_RATE_TOLERANCE;
        match expected.and_then(|v| v.frame_rate) {
            Some(stated) if stated > 0.0 && !near(stated) => out.push(Finding::error(
                Code::VideoFrameRate,
                index,
                format!("video runs at {fps:.3} fps; the metadata says {stated}"),
            )),
            None if !defaults::FRAME_RATES.into_iter().any(near) => out.push(Finding::error(
                Code::VideoFrameRate,
                index,
                format!(
                    "video runs at {fps:.3} fps; the metadata states no frame rate and the service records at {}",
                    defaults::FRAME_RATES.map(|f| format!("{f}")).join(", ") + " fps"
                ),
            )),
            _ => {}
        }
    }
    let nominal = expected.and_then(|v| v.bit_rate);
    check_bitrate(Code::VideoBitrate, "video", track, nominal, index, out);
}

/// `audio.codec`, `audio.sample_rate`, `audio.channels`, `audio.bitrate`.
fn check_audio_stream(
    expected: Option<&AudioConfiguration>,
    track: &mp4::Track,
    index: Option<u32>,
    out: &mut Vec<Finding>,
) {
    match track.codec() {
        Some(Codec::Aac(aac)) => {
            if aac.object_type != 2 {
                out.push(Finding::error(
                    Code::AudioCodec,
                    index,
                    format!("audio is {}; expected AAC-LC", Codec::Aac(aac.clone()).name()),
                ));
            }
            let said = |stated: Option<u32>| {
                if stated.is_some() {
                    "the metadata says"
                } else {
                    "the metadata states none and the service records"
                }
            };
            let stated = expected.and_then(|a| a.sample_rate);
            let rate = stated.unwrap_or(defaults::SAMPLE_RATE);
            if aac.sample_rate != rate {
                out.push(Finding::error(
                    Code::AudioSampleRate,
                    index,
                    format!("audio is sampled at {} Hz; {} {rate}", aac.sample_rate, said(stated)),
                ));
            }
            let stated = expected.and_then(|a| a.channels);
            let channels = stated.unwrap_or(defaults::CHANNELS);
            if u32::from(aac.channels) != channels {
                out.push(Finding::error(
                    Code::AudioChannels,
                    index,
                    format!("audio has {} channel(s); {} {channels}", aac.channels, said(stated)),
                ));
            }
        }
        other => out.push(Finding::error(
            Code::AudioCodec,
            index,
            format!("audio codec is {}; expected AAC-LC", codec_name(other)),
        )),
    }
    let nominal = expected.and_then(|a| a.bit_rate);
    check_bitrate(Code::AudioBitrate, "audio", track, nominal, index, out);
}

fn codec_name(codec: Option<&Codec>) -> String {
    codec.map(Codec::name).unwrap_or_else(|| "unknown".into())
}

fn check_bitrate(
    code: Code,
    what: &str,
    track: &mp4::Track,
    nominal: Option<u64>,
    index: Option<u32>,
    out: &mut Vec<Finding>,
) {
    let (Some(nominal), Some(actual)) = (nominal, Movie::bit_rate(track)) else {
        return;
    };
    if nominal > 0 && actual > nominal as f64 * (1.0 + BITRATE_TOLERANCE) {
        out.push(Finding::warning(
            code,
            index,
            format!(
                "average {what} bit rate is {:.0} bit/s, {:.0}% above the nominal {nominal}",
                actual,
                (actual / nominal as f64 - 1.0) * 100.0
            ),
        ));
    }
}

/// `chunk.duration`: decides whether paused time was cut from the media.
fn check_duration(
    md: &ChunkMetadata,
    media_ms: f64,
    tolerance: f64,
    index: Option<u32>,
    out: &mut Vec<Finding>,
) -> Option<bool> {
    let paused: f64 = md.pauses.iter().map(|p| p.duration_ms).sum();
    let kept = (media_ms - md.duration_ms).abs() <= tolerance;
    let cut = (media_ms - (md.duration_ms - paused)).abs() <= tolerance;
    match (kept, cut) {
        (true, true) => None,
        (true, false) => Some(false),
        (false, true) => Some(true),
        (false, false) => {
            let also = if md.pauses.is_empty() {
                String::new()
            } else {
                format!(
                    " nor chunkDuration minus the pauses ({:.0} ms)",
                    md.duration_ms - paused
                )
            };
            out.push(Finding::error(
                Code::ChunkDuration,
                index,
                format!(
                    "media lasts {media_ms:.0} ms, which matches neither chunkDuration ({:.0} ms){also} within {tolerance:.0} ms",
                    md.duration_ms
                ),
            ));
            None
        }
    }
}

/// Rules about the recording as a whole.
fn recording_rules(rec: &Recording, checks: &[ChunkCheck], out: &mut Vec<Finding>) {
    let with_md: Vec<(usize, &ChunkMetadata)> = rec
        .chunks
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c.metadata.as_ref().map(|m| (i, m)))
        .collect();
    if rec.chunks.is_empty() && rec.event.as_ref().is_none_or(|e| !e.chunks.is_empty()) {
        out.push(Finding::error(
            Code::RecordingIncomplete,
            None,
            "no chunk of this recording is in the archive",
        ));
    }
    check_mismatch(&with_md, out);
    check_indices(&with_md, out);
    check_continuity(&with_md, checks, out);
    check_codec_changes(rec, checks, out);
    check_format_changes(rec, checks, out);
    check_recording_silence(checks, out);
    if let Some(event) = &rec.event {
        check_against_event(rec, event, out);
    }
}

/// `metadata.mismatch`: every chunk's ids and recording info against the first's.
fn check_mismatch(with_md: &[(usize, &ChunkMetadata)], out: &mut Vec<Finding>) {
    if let Some((_, first)) = with_md.first() {
        for (_, m) in &with_md[1..] {
            let mut diffs = Vec::new();
            if m.call_id != first.call_id {
                diffs.push(format!("callId {} vs {}", m.call_id, first.call_id));
            }
            if m.resource_id != first.resource_id {
                diffs.push(format!("resourceId {} vs {}", m.resource_id, first.resource_id));
            }
            if m.recording != first.recording {
                diffs.push("recordingInfo differs".into());
            }
            if !diffs.is_empty() {
                out.push(Finding::error(
                    Code::MetadataMismatch,
                    Some(m.index),
                    format!(
                        "chunk {} disagrees with chunk {}: {}",
                        m.index,
                        first.index,
                        diffs.join("; ")
                    ),
                ));
            }
        }
    }
}

/// `chunk.missing_index`: holes in the indices 0..=max.
fn check_indices(with_md: &[(usize, &ChunkMetadata)], out: &mut Vec<Finding>) {
    let mut indices: Vec<u32> = with_md.iter().map(|(_, m)| m.index).collect();
    indices.sort_unstable();
    indices.dedup();
    if let Some(&max) = indices.last() {
        let mut missing = Vec::new();
        // u64: the next index after u32::MAX is still a number.
        let mut want = 0u64;
        for &i in &indices {
            let i = u64::from(i);
            if i > want {
                missing.push(if i - want == 1 {
                    want.to_string()
                } else {
                    format!("{}-{}", want, i - 1)
                });
            }
            want = i + 1;
        }
        if !missing.is_empty() {
            out.push(Finding::error(
                Code::ChunkMissingIndex,
                None,
                format!(
                    "chunk index(es) {} missing before {max}: the recording has a hole",
                    missing.join(", ")
                ),
            ));
        }
    }
}

/// `chunk.gap` / `chunk.overlap` between consecutive indices.
fn check_continuity(with_md: &[(usize, &ChunkMetadata)], checks: &[ChunkCheck], out: &mut Vec<Finding>) {
    for pair in with_md.windows(2) {
        let ((ia, a), (_, b)) = (pair[0], pair[1]);
        if u64::from(b.index) != u64::from(a.index) + 1 {
            continue;
        }
        let tolerance = tolerance_ms(checks[ia].media.as_ref());
        let expected = a.end();
        let delta = expected.ms_until(b.start);
        if delta.abs() > MAX_GAP_MS {
            out.push(Finding::error(
                if delta > 0.0 { Code::ChunkGap } else { Code::ChunkOverlap },
                Some(b.index),
                format!(
                    "chunk {} starts {:.1} hours {} chunk {} ends ({} vs {}): consecutive chunks of one recording cannot be more than a day apart; check chunkStartTime and chunkDuration",
                    b.index,
                    delta.abs() / 3_600_000.0,
                    if delta > 0.0 { "after" } else { "before" },
                    a.index,
                    b.start,
                    expected
                ),
            ));
        } else if delta > tolerance {
            out.push(Finding::warning(
                Code::ChunkGap,
                Some(b.index),
                format!(
                    "chunk {} starts {delta:.0} ms after chunk {} ends ({} vs {})",
                    b.index, a.index, b.start, expected
                ),
            ));
        } else if delta < -tolerance {
            out.push(Finding::warning(
                Code::ChunkOverlap,
                Some(b.index),
                format!(
                    "chunk {} starts {:.0} ms before chunk {} ends ({} vs {})",
                    b.index, -delta, a.index, b.start, expected
                ),
            ));
        }
    }
}

/// `chunk.codec_change`: an error for a change no decoder can follow
/// mid-stream (against the first probed chunk), a warning for changed
/// parameter sets or AudioSpecificConfig (against the previous one).
fn check_codec_changes(rec: &Recording, checks: &[ChunkCheck], out: &mut Vec<Finding>) {
    let mut first: Option<(u32, Vec<Codec>)> = None;
    let mut prev: Option<(u32, Vec<Vec<u8>>, Vec<u8>)> = None;
    for (c, check) in rec.chunks.iter().zip(checks) {
        let Some(media) = &check.media else { continue };
        let codecs: Vec<Codec> = [media.video(), media.audio()]
            .into_iter()
            .flatten()
            .filter_map(|t| t.codec().cloned())
            .collect();
        match &first {
            None => first = Some((c.index().unwrap_or(0), codecs)),
            Some((fi, first)) => {
                for (a, b) in first.iter().zip(&codecs) {
                    if let Err(why) = crate::formats::mp4::codec::switchable(a, b) {
                        out.push(Finding::error(
                            Code::ChunkCodecChange,
                            c.index(),
                            format!("{why} since chunk {fi}: a player cannot switch mid-stream, so the recording is not stitched"),
                        ));
                    }
                }
            }
        }
        let (sets, asc) = codec_fingerprint(media);
        if let Some((pi, psets, pasc)) = &prev {
            let mut what = Vec::new();
            if &sets != psets {
                what.push("H.264 parameter sets (SPS/PPS)");
            }
            if &asc != pasc {
                what.push("AAC AudioSpecificConfig");
            }
            if !what.is_empty() {
                out.push(Finding::warning(
                    Code::ChunkCodecChange,
                    c.index(),
                    format!("{} differ from chunk {pi}", what.join(" and ")),
                ));
            }
        }
        prev = Some((c.index().unwrap_or(0), sets, asc));
    }
}

/// `chunk.codec_change` between formats, and in an MP3 or WAV recording
/// any change of rate, channels or sample size: one output file cannot
/// hold both.
fn check_format_changes(rec: &Recording, checks: &[ChunkCheck], out: &mut Vec<Finding>) {
    let mut first: Option<(Option<u32>, &Streams, Option<String>)> = None;
    for (c, check) in rec.chunks.iter().zip(checks) {
        let Some(streams) = &check.streams else { continue };
        let key = check.audio_file.as_ref().map(AudioFile::stream_key);
        let Some((fi, fs, fkey)) = &first else {
            first = Some((c.index(), streams, key));
            continue;
        };
        let why = if streams.format != fs.format {
            format!(
                "the media is {} where chunk {} is {}",
                streams.format.name(),
                fi.unwrap_or(0),
                fs.format.name()
            )
        } else if key != *fkey {
            format!(
                "the audio is {} where chunk {} is {}",
                key.unwrap_or_default(),
                fi.unwrap_or(0),
                fkey.clone().unwrap_or_default()
            )
        } else {
            continue;
        };
        out.push(Finding::error(
            Code::ChunkCodecChange,
            c.index(),
            format!("{why}: one file cannot hold both, so the recording is not stitched"),
        ));
    }
}

/// `audio.silent` for the whole recording (`--deep` only).
fn check_recording_silence(checks: &[ChunkCheck], out: &mut Vec<Finding>) {
    let levels: Vec<f64> = checks
        .iter()
        .filter_map(|c| c.audio.as_ref())
        .flat_map(|a| a.levels_dbfs.iter().copied())
        .collect();
    if checks.len() > 1 && !levels.is_empty() {
        let share = levels
            .iter()
            .filter(|&&l| l < crate::formats::deep::SILENCE_DBFS)
            .count() as f64
            / levels.len() as f64;
        if share >= crate::formats::deep::SILENT_SHARE {
            out.push(Finding::warning(
                Code::AudioSilent,
                None,
                format!(
                    "{:.0}% of the recording's {} s is silent: the recording has no audible audio",
                    share * 100.0,
                    levels.len()
                ),
            ));
        }
    }
}

/// `recording.incomplete` / `recording.extra_chunk` against the completion event.
fn check_against_event(rec: &Recording, event: &CompletionEvent, out: &mut Vec<Finding>) {
    if event.chunks.is_empty() {
        out.push(Finding::error(
            Code::RecordingIncomplete,
            None,
            "the completion event lists no chunks (recordingChunks is empty): there is nothing to stitch",
        ));
    }
    let present: Vec<&str> = rec.chunks.iter().map(|c| c.document_id.as_str()).collect();
    let absent: Vec<String> = event
        .chunks
        .iter()
        .filter(|c| !present.contains(&c.document_id.as_str()))
        .map(|c| format!("{} (index {})", c.document_id, c.index))
        .collect();
    if !absent.is_empty() {
        out.push(Finding::error(
            Code::RecordingIncomplete,
            None,
            format!(
                "the completion event lists {} chunk(s) that are not in the archive: {}",
                absent.len(),
                absent.join(", ")
            ),
        ));
    }
    if let Some(last) = event.chunks.iter().max_by_key(|c| c.index) {
        if !last.ends_session() {
            out.push(Finding::error(
                Code::RecordingIncomplete,
                Some(last.index),
                format!(
                    "the last chunk listed (index {}) ended with {:?}, not a session end: more chunks should follow",
                    last.index,
                    last.end_reason.as_deref().unwrap_or("")
                ),
            ));
        }
    }
    for c in &rec.chunks {
        if !event.chunks.iter().any(|e| e.document_id == c.document_id) {
            out.push(Finding::warning(
                Code::RecordingExtraChunk,
                c.index(),
                format!(
                    "chunk {} is not listed by the recording's completion event",
                    c.document_id
                ),
            ));
        }
    }
}

/// The parameter sets and AudioSpecificConfig of a chunk, for comparison.
fn codec_fingerprint(media: &Movie) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut sets = Vec::new();
    let mut asc = Vec::new();
    for t in &media.tracks {
        match (t.kind, t.codec()) {
            (TrackKind::Video, Some(Codec::Avc(a))) => {
                sets.extend(a.sps.iter().cloned());
                sets.extend(a.pps.iter().cloned());
            }
            (TrackKind::Audio, Some(Codec::Aac(a))) => asc = a.asc.clone(),
            _ => {}
        }
    }
    (sets, asc)
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::PathBuf;

    use serde_json::Value;

    use super::*;
    use crate::finding::Severity;
    use crate::input::metadata::{CompletionEvent, EventChunk};

    /// What a unit test of a rule expects: a name, the code it must give,
    /// and the findings it gave.
    pub(crate) type Scenario = (&'static str, Code, Vec<Finding>);

    const DOCS: [&str; 3] = [
        "0-eus-d11-293c5f93ea87298458e47ef52dda3bb9",
        "0-eus-d11-93febf7d8405595011fab94b54be8806",
        "0-eus-d11-9b5d9438ec5d9630fb8d71727c7f2ad8",
    ];

    fn good(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/cases/good/3c57992b-07bf-4387-a8bc-a13561e8650a")
            .join(name)
    }

    /// Chunk `i` of the good fixture recording, probed.
    pub(crate) fn media(i: usize) -> Movie {
        crate::probe(&good(&format!("{}.mp4", DOCS[i])), &Limits::default()).unwrap()
    }

    /// Chunk `i`'s metadata, after `edit` of its JSON.
    pub(crate) fn metadata_with(i: usize, edit: impl FnOnce(&mut Value)) -> ChunkMetadata {
        let path = good(&format!("{}.json", DOCS[i]));
        let mut v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        edit(&mut v);
        crate::input::metadata::parse_metadata(&v, &path).unwrap()
    }

    fn metadata(i: usize) -> ChunkMetadata {
        metadata_with(i, |_| {})
    }

    fn chunk(i: usize) -> Chunk {
        Chunk {
            document_id: DOCS[i].into(),
            metadata_path: good(&format!("{}.json", DOCS[i])),
            metadata: Some(metadata(i)),
            media_path: Some(good(&format!("{}.mp4", DOCS[i]))),
            media_kind: Some(FileKind::Mp4),
            event_entry: None,
        }
    }

    fn recording(chunks: Vec<Chunk>) -> Recording {
        Recording {
            call_id: "call".into(),
            key: "key".into(),
            chunks,
            event: None,
            findings: Vec::new(),
            root: good(""),
            storage: Storage::local(),
        }
    }

    fn probed(media: Movie) -> ChunkCheck {
        ChunkCheck {
            media: Some(media),
            ..ChunkCheck::default()
        }
    }

    /// The findings `rule` adds.
    fn run(rule: impl FnOnce(&mut Vec<Finding>)) -> Vec<Finding> {
        let mut out = Vec::new();
        rule(&mut out);
        out
    }

    /// The findings of `check_streams` for chunk 1 after `edit` of its metadata.
    fn streams(edit: impl FnOnce(&mut Value)) -> Vec<Finding> {
        let md = metadata_with(1, edit);
        run(|out| check_streams(&md, &media(1), Some(1), out))
    }

    fn event(chunks: &[(usize, &str)]) -> CompletionEvent {
        CompletionEvent {
            call_id: Some("call".into()),
            recording_id: Some("key".into()),
            chunks: chunks
                .iter()
                .map(|&(i, end)| EventChunk {
                    document_id: DOCS[i].into(),
                    index: u32::try_from(i).unwrap(),
                    end_reason: Some(end.into()),
                    ..EventChunk::default()
                })
                .collect(),
            ..CompletionEvent::default()
        }
    }

    /// The findings of the recording rules over the three good chunks, after `edit`.
    fn recording_findings(edit: impl FnOnce(&mut Recording, &mut Vec<ChunkCheck>)) -> Vec<Finding> {
        let mut rec = recording((0..3).map(chunk).collect());
        let mut checks: Vec<ChunkCheck> = (0..3).map(|i| probed(media(i))).collect();
        edit(&mut rec, &mut checks);
        run(|out| recording_rules(&rec, &checks, out))
    }

    /// One scenario per rule of this module, each named after what it breaks.
    pub(crate) fn scenarios() -> Vec<Scenario> {
        let mut all = media_scenarios();
        all.extend(stream_scenarios());
        all.extend(recording_scenarios());
        all
    }

    /// Scenarios of the rules about one chunk's media file.
    fn media_scenarios() -> Vec<Scenario> {
        let to_probe = |c: &Chunk| {
            run(|o| {
                media_to_probe(&Storage::local(), c, Some(1), o);
            })
        };
        let mut missing = chunk(1);
        missing.media_path = None;
        let with_kind = |kind| {
            let mut c = chunk(1);
            c.media_kind = Some(kind);
            c
        };
        let gone = {
            let mut c = with_kind(FileKind::Unreadable);
            c.media_path = Some(good("no-such-file.mp4"));
            c
        };
        let mut short = media(1);
        short.file_size = 100;
        let mut past_edit = media(1);
        past_edit.tracks[1].edits[0].media_time = Some(1 << 30);
        let mut quirky = media(1);
        quirky
            .quirks
            .push("3 bytes at the end of the file are not a box and were ignored".into());
        vec![
            ("no media file", Code::MediaMissing, to_probe(&missing)),
            (
                "a FLAC file",
                Code::MediaUnsupportedFormat,
                to_probe(&with_kind(FileKind::Flac)),
            ),
            (
                "an MP3 file where the metadata says mp4",
                Code::MediaFormatMismatch,
                to_probe(&with_kind(FileKind::Mp3)),
            ),
            ("unreadable", Code::MediaUnreadable, to_probe(&gone)),
            ("zero bytes", Code::MediaEmpty, to_probe(&with_kind(FileKind::Empty))),
            ("an HTML page", Code::MediaNotMp4, to_probe(&with_kind(FileKind::Html))),
            (
                "samples past the end",
                Code::MediaTruncated,
                run(|o| {
                    let _ = check_truncation(&short, Some(1), o);
                }),
            ),
            (
                "edit past the media",
                Code::MediaInvalid,
                run(|o| {
                    let _ = check_edits(&past_edit, Some(1), o);
                }),
            ),
            ("a quirk", Code::MediaQuirk, run(|o| check_quirks(&quirky, Some(1), o))),
        ]
    }

    /// Scenarios of the rules about a chunk against its metadata.
    fn stream_scenarios() -> Vec<Scenario> {
        let mut no_video = media(1);
        no_video.tracks.retain(|t| t.kind != TrackKind::Video);
        let mut no_audio = media(1);
        no_audio.tracks.retain(|t| t.kind != TrackKind::Audio);
        let md1 = metadata(1);
        vec![
            (
                "no video track",
                Code::VideoCodec,
                run(|o| check_streams(&md1, &no_video, Some(1), o)),
            ),
            (
                "no audio track",
                Code::AudioCodec,
                run(|o| check_streams(&md1, &no_audio, Some(1), o)),
            ),
            (
                "picture size",
                Code::VideoResolution,
                streams(|v| v["recordingInfo"]["videoConfiguration"]["longerSideLength"] = 1280.into()),
            ),
            (
                "frame rate",
                Code::VideoFrameRate,
                streams(|v| v["recordingInfo"]["videoConfiguration"]["framerate"] = 15.into()),
            ),
            (
                "sample rate",
                Code::AudioSampleRate,
                streams(|v| v["recordingInfo"]["audioConfiguration"]["sampleRate"] = 48000.into()),
            ),
            (
                "channels",
                Code::AudioChannels,
                streams(|v| v["recordingInfo"]["audioConfiguration"]["channels"] = 2.into()),
            ),
            (
                "video bit rate",
                Code::VideoBitrate,
                streams(|v| v["recordingInfo"]["videoConfiguration"]["bitRate"] = 1000.into()),
            ),
            (
                "audio bit rate",
                Code::AudioBitrate,
                streams(|v| v["recordingInfo"]["audioConfiguration"]["bitRate"] = 100.into()),
            ),
            ("duration", Code::ChunkDuration, {
                let md = metadata_with(1, |v| v["chunkDuration"] = 60000.into());
                let m = media(1);
                run(|o| {
                    let _ = check_duration(&md, m.duration_ms(), tolerance_ms(Some(&m)), Some(1), o);
                })
            }),
            ("a pause before the chunk", Code::MetadataInvalid, {
                let md = metadata_with(1, |v| {
                    v["pauseResumeIntervals"][0]["startTime"] = "2024-05-14T09:29:00Z".into()
                });
                run(|o| check_pauses(&md, Some(1), o))
            }),
        ]
    }

    #[test]
    fn without_a_stated_frame_rate_the_services_own_rates_are_accepted() {
        let no_video_config = |v: &mut Value| {
            v["recordingInfo"].as_object_mut().unwrap().remove("videoConfiguration");
            v["recordingInfo"]["contentType"] = "audioVideo".into();
            v["recordingInfo"]["channelType"] = "mixed".into();
        };
        // The fixture runs at 8 fps, one of the service's rates: no finding.
        assert_eq!(streams(no_video_config), Vec::new());
        // A rate the service never records: the message says the metadata stated none.
        let md = metadata_with(1, no_video_config);
        let mut m = media(1);
        let video = m.tracks.iter_mut().find(|t| t.kind == TrackKind::Video).unwrap();
        video.timescale *= 3; // the same ticks now last a third: 24 fps
        let f = run(|o| check_streams(&md, &m, Some(1), o));
        let msg = f
            .iter()
            .find(|f| f.code == Code::VideoFrameRate)
            .map(|f| f.message.clone());
        let msg = msg.expect("24 fps is not a rate of the service");
        assert!(msg.contains("the metadata states no frame rate"), "{msg}");
        assert!(!msg.contains("the metadata says"), "{msg}");
        // A stated rate is still checked against the media.
        let stated = streams(|v| v["recordingInfo"]["videoConfiguration"]["framerate"] = 16.into());
        assert!(stated[0].message.contains("the metadata says 16"), "{stated:?}");
    }

    /// Scenarios of the rules about a recording as a whole.
    fn recording_scenarios() -> Vec<Scenario> {
        vec![
            (
                "another call",
                Code::MetadataMismatch,
                recording_findings(|r, _| {
                    r.chunks[2].metadata = Some(metadata_with(2, |v| v["callId"] = "other".into()));
                }),
            ),
            (
                "no chunk 1",
                Code::ChunkMissingIndex,
                recording_findings(|r, c| {
                    r.chunks.remove(1);
                    c.remove(1);
                }),
            ),
            (
                "chunk 2 late",
                Code::ChunkGap,
                recording_findings(|r, _| {
                    r.chunks[2].metadata = Some(metadata_with(2, |v| {
                        v["chunkStartTime"] = "2024-05-14T09:30:12.1234567Z".into()
                    }));
                }),
            ),
            (
                "chunk 2 early",
                Code::ChunkOverlap,
                recording_findings(|r, _| {
                    r.chunks[2].metadata = Some(metadata_with(2, |v| {
                        v["chunkStartTime"] = "2024-05-14T09:30:05.1234567Z".into()
                    }));
                }),
            ),
            (
                "new AudioSpecificConfig",
                Code::ChunkCodecChange,
                recording_findings(|_, c| {
                    let m = c[2].media.as_mut().unwrap();
                    if let Codec::Aac(a) = &mut m.tracks[1].entries[0].codec {
                        a.asc.push(0);
                    }
                }),
            ),
            ("an event that lists more", Code::RecordingIncomplete, {
                let rec = recording(vec![chunk(0)]);
                run(|o| check_against_event(&rec, &event(&[(0, "ChunkMaximumSizeExceeded"), (1, "SessionEnded")]), o))
            }),
            ("an event that lists less", Code::RecordingExtraChunk, {
                let rec = recording(vec![chunk(0), chunk(1)]);
                run(|o| check_against_event(&rec, &event(&[(0, "SessionEnded")]), o))
            }),
            ("a silent recording", Code::AudioSilent, {
                let silent = |n| ChunkCheck {
                    audio: Some(crate::formats::deep::AudioAnalysis {
                        levels_dbfs: vec![-90.0; n],
                        ..Default::default()
                    }),
                    ..ChunkCheck::default()
                };
                run(|o| check_recording_silence(&[silent(3), silent(2)], o))
            }),
        ]
    }

    #[test]
    fn each_rule_gives_its_code() {
        let mut wrong = Vec::new();
        for (name, code, findings) in scenarios() {
            if !findings.iter().any(|f| f.code == code) {
                wrong.push(format!("{name}: want {code}, got {findings:?}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn every_finding_code_is_triggered_by_a_unit_test() {
        let triggered: std::collections::BTreeSet<Code> = scenarios()
            .into_iter()
            .chain(crate::input::archive::tests::scenarios())
            .chain(crate::formats::deep::tests::scenarios())
            .filter(|(_, code, findings)| findings.iter().any(|f| f.code == *code))
            .map(|(_, code, _)| code)
            .collect();
        let untested: Vec<&str> = Code::ALL
            .iter()
            .filter(|c| !triggered.contains(c))
            .map(|c| c.as_str())
            .collect();
        assert!(untested.is_empty(), "no unit test triggers {untested:?}");
    }

    #[test]
    fn the_good_recording_gives_no_finding_and_messages_say_what_was_found() {
        assert_eq!(recording_findings(|_, _| {}), Vec::new());
        let f = streams(|v| v["recordingInfo"]["videoConfiguration"]["framerate"] = 15.into());
        assert_eq!(f[0].message, "video runs at 8.000 fps; the metadata says 15");
        assert_eq!((f[0].severity, f[0].chunk_index), (Severity::Error, Some(1)));
        let f = recording_findings(|r, c| {
            r.chunks.remove(1);
            c.remove(1);
        });
        assert_eq!(
            f[0].message,
            "chunk index(es) 1 missing before 2: the recording has a hole"
        );
    }

    /// Regression (found by the `pipeline` fuzz target): an audio `mdhd`
    /// timescale of 4278206080 Hz made the samples last nothing while the
    /// edit list presented 2.5 s; the chunk validated and the plan refused it.
    #[test]
    fn an_edit_list_longer_than_its_samples_is_invalid() {
        let mut m = media(1);
        m.tracks[1].timescale = 0xff00_3e80;
        let f = run(|o| assert!(!check_edits(&m, Some(1), o)));
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].code, Code::MediaInvalid);
        assert!(
            f[0].message.ends_with(
                "track 2 (soun) edit list presents 2.500 s but its samples last 0.000 s (mdhd timescale 4278206080 Hz): the track does not hold what it claims"
            ),
            "{}",
            f[0].message
        );
        assert_eq!(run(|o| assert!(check_edits(&media(1), Some(1), o))), Vec::new());
    }

    #[test]
    fn gaps_of_more_than_a_day_are_errors() {
        let f = recording_findings(|r, _| {
            r.chunks[2].metadata = Some(metadata_with(2, |v| {
                v["chunkStartTime"] = "2024-05-16T09:30:07Z".into()
            }));
        });
        let gap = f.iter().find(|f| f.code == Code::ChunkGap).unwrap();
        assert_eq!(gap.severity, Severity::Error);
        assert!(
            gap.message.contains("cannot be more than a day apart"),
            "{}",
            gap.message
        );
    }

    #[test]
    fn a_picture_size_change_between_chunks_is_an_error() {
        let f = recording_findings(|_, c| {
            let m = c[2].media.as_mut().unwrap();
            if let Codec::Avc(a) = &mut m.tracks[0].entries[0].codec {
                a.width = 1280;
                a.height = 720;
            }
        });
        let change = f.iter().find(|f| f.severity == Severity::Error).unwrap();
        assert_eq!(change.code, Code::ChunkCodecChange);
        assert!(
            change
                .message
                .starts_with("picture size changes from 1920x1080 to 1280x720 since chunk 0"),
            "{}",
            change.message
        );
    }
}
