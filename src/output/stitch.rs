//! Stitching a validated recording into one MP4, with its manifest and
//! WebVTT chapters, written atomically.
//!
//! Outputs for a recording go to `<out>/<callId>/<name>.mp4` (see `Recording::output_name`), with
//! `.json` (the manifest) beside it and `chapters/<name>.vtt` (the
//! WebVTT chapters, in a folder of their own so that players do not load
//! them as subtitles). Each file is
//! written under a temporary name in the same folder, synced, then renamed;
//! the manifest is renamed last, so its presence means the set is complete.
//! The join itself is planned and written by `output::mux` (internal).

use std::fs::File;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::finding::Finding;
use crate::formats::mp4::Movie;
use crate::formats::{AudioFile, AudioPlacement};
use crate::input::metadata::{seconds_as_ms, MediaFormat, WallClock};
use crate::io::{sync_dir, Cancel, OutputPaths};
use crate::output::mux::mp3::{self, Mp3Output, Mp3Plan};
use crate::output::mux::plan::{self, Placement, Plan};
use crate::output::mux::wav::{self, WavOutput, WavPlan};
use crate::output::mux::write::{self, MuxInput, Source, Written};
use crate::output::timeline::{self, Chapter, GapMode, Hold, Interruption, Segment};
use crate::storage::Storage;
use crate::validate::{Streams, ValidatedRecording};

/// Options for [`Stitcher`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct StitchOptions {
    /// What to do with paused time and gaps.
    pub gaps: GapMode,
    /// Also draw the recording's timeline as a PNG beside the outputs.
    pub timeline: bool,
    /// For an unmixed WAV recording, also write one mono WAV per
    /// participant's channel (`channels/<name>.ch<N>.<participantId>.wav`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub split_channels: bool,
}

impl StitchOptions {
    /// The default options with paused time and gaps handled as `gaps`.
    pub fn with_gaps(gaps: GapMode) -> Self {
        StitchOptions {
            gaps,
            ..StitchOptions::default()
        }
    }
}

/// Stitches validated recordings.
#[derive(Debug, Clone, Default)]
pub struct Stitcher {
    options: StitchOptions,
    cancel: Cancel,
    storage: Storage,
}

/// The version of the manifest's layout ([`Manifest::schema_version`]);
/// [`MANIFEST_SCHEMA`] describes it.
pub const MANIFEST_SCHEMA_VERSION: u32 = 2;

/// The manifest's JSON Schema (`schemas/manifest.v2.json`).
pub const MANIFEST_SCHEMA: &str = include_str!("../../schemas/manifest.v2.json");

/// The manifest written beside each stitched file. Reads back with serde
/// (`serde_json::from_slice::<Manifest>`); `schemas/manifest.v2.json` is its
/// published JSON Schema. Every time is in milliseconds (fields named `…Ms`,
/// rounded to the microsecond) or RFC 3339; input paths are relative to the
/// archive root, output paths to the manifest's folder. Version 2 added the
/// output's `streams` (format, rate, channels, picture) and the `channels`
/// map of unmixed audio.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// [`MANIFEST_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The tool that wrote it.
    pub tool: Tool,
    /// The options used.
    pub options: StitchOptions,
    /// The call.
    pub call_id: String,
    /// The recording's key.
    pub recording_key: String,
    /// The stitched file.
    pub output: ManifestOutput,
    /// The input chunks.
    pub chunks: Vec<ManifestChunk>,
    /// Recorded segments: output time to wall clock.
    pub segments: Vec<Segment>,
    /// Pauses.
    pub pauses: Vec<Interruption>,
    /// Gaps between chunks.
    pub gaps: Vec<Interruption>,
    /// Chapters as written into the file.
    pub chapters: Vec<Chapter>,
    /// Participant ids, sorted, without duplicates.
    pub participants: Vec<String>,
    /// Unmixed audio: every channel of the output with the participant it
    /// carries (`null`: no participant used it). Empty for mixed recordings.
    #[serde(default)]
    pub channels: Vec<ChannelMap>,
    /// What validation found (warnings only, for a stitched recording).
    pub findings: Vec<Finding>,
    /// Where the outputs were written (full paths), when this manifest comes
    /// from [`Stitcher::stitch`]; not part of the JSON (`None` when read back).
    #[serde(skip)]
    pub files: Option<OutputPaths>,
}

/// Name and version of the tool.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tool {
    /// `recstitch`.
    pub name: String,
    /// The crate version.
    pub version: String,
}

/// The stitched file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestOutput {
    /// The MP4's file name (it sits beside the manifest).
    pub path: String,
    /// The WebVTT chapters' path, relative to the manifest's folder
    /// (`chapters/<name>.vtt`).
    pub chapters_path: String,
    /// The timeline picture's file name, when drawn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline_path: Option<String>,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// What the file holds: format, audio rate and channels, picture size
    /// and frame rate (as found in the chunks, whether or not their
    /// metadata stated them).
    pub streams: Streams,
    /// Presented duration, milliseconds.
    pub duration_ms: f64,
    /// Video frames written.
    pub video_frames: usize,
    /// Audio packets written (generated silence included): AAC frames,
    /// MPEG audio frames; 0 for WAV.
    pub audio_packets: usize,
    /// Audio samples the packets decode to.
    pub audio_samples: u64,
}

/// One channel of an unmixed recording's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelMap {
    /// The channel, 0-based.
    pub channel: u32,
    /// The participant on it (`participants[].channel` of the metadata);
    /// `null` when no participant used the channel.
    pub participant_id: Option<String>,
    /// The mono WAV of this channel (`--split-channels`), relative to the
    /// manifest's folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// One input chunk in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestChunk {
    /// Chunk index.
    pub index: u32,
    /// Document id.
    pub document_id: String,
    /// The media file.
    pub media: String,
    /// The metadata file.
    pub metadata: String,
    /// SHA-256 of the media file.
    pub sha256: String,
    /// Size of the media file.
    pub bytes: u64,
    /// Wall-clock start.
    pub wall_clock_start: WallClock,
    /// Wall-clock length, milliseconds (`chunkDuration`).
    pub chunk_duration_ms: f64,
    /// Whether the paused time was cut from its media.
    pub pauses_cut: Option<bool>,
    /// First output byte of its samples (each chunk's samples are one
    /// contiguous range; ranges do not overlap).
    pub output_byte_start: u64,
    /// Output byte just past its samples.
    pub output_byte_end: u64,
    /// Where it starts in the output, seconds (`outputStartMs` in JSON).
    #[serde(rename = "outputStartMs", with = "seconds_as_ms")]
    pub output_start: f64,
    /// Where the next chunk (or the output) starts, seconds (`outputEndMs`).
    #[serde(rename = "outputEndMs", with = "seconds_as_ms")]
    pub output_end: f64,
    /// How the join into this chunk was made.
    pub join: Join,
    /// RMS level of each second of the chunk's audio, dBFS (`--deep`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_levels_dbfs: Option<Vec<f64>>,
}

/// How one chunk was joined (see the join plan in `mux::plan`), in milliseconds
/// rounded to the microsecond, samples and ticks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Join {
    /// Output time of the chunk's first real audio sample.
    pub audio_start_ms: f64,
    /// Output time of its first presented video frame.
    pub video_start_ms: Option<f64>,
    /// `videoStartMs - audioStartMs` as planned.
    pub planned_offset_ms: Option<f64>,
    /// Presented audio of the chunk.
    pub audio_presented_ms: f64,
    /// Whole priming packets dropped at its start.
    pub dropped_priming_packets: u32,
    /// Priming samples left at its start.
    pub leftover_priming_samples: u64,
    /// Samples of tail padding kept at its end.
    pub tail_padding_samples: u64,
    /// Ticks added to (or removed from) its last video sample to meet the next chunk.
    pub video_adjust_ticks: i64,
}

impl From<&AudioPlacement> for Join {
    fn from(p: &AudioPlacement) -> Self {
        let ms = seconds_as_ms::round;
        Join {
            audio_start_ms: ms(p.audio_start),
            video_start_ms: None,
            planned_offset_ms: None,
            audio_presented_ms: ms(p.audio_presented),
            dropped_priming_packets: p.dropped_priming_packets,
            leftover_priming_samples: p.leftover_priming_samples,
            tail_padding_samples: p.tail_padding_samples,
            video_adjust_ticks: 0,
        }
    }
}

impl From<&Placement> for Join {
    fn from(p: &Placement) -> Self {
        let ms = seconds_as_ms::round;
        Join {
            audio_start_ms: ms(p.audio_start),
            video_start_ms: p.video_start.map(ms),
            planned_offset_ms: p.planned_offset_ms.map(|o| (o * 1e3).round() / 1e3),
            audio_presented_ms: ms(p.audio_presented),
            dropped_priming_packets: p.dropped_priming_packets,
            leftover_priming_samples: p.leftover_priming_samples,
            tail_padding_samples: p.tail_padding_samples,
            video_adjust_ticks: p.video_adjust_ticks,
        }
    }
}

/// `path` relative to the archive `root` (`/` separated), so that the
/// manifest is the same whatever folder the caller worked from; as given
/// when it lies outside the root.
fn relative(path: &Path, root: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(rel) if !root.as_os_str().is_empty() => rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/"),
        _ => path.display().to_string(),
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Seconds from 1904-01-01 (the MP4 epoch) to `t`, for `creation_time`.
fn mp4_time(t: WallClock) -> u64 {
    const EPOCH_DIFF: i64 = 2_082_844_800;
    u64::try_from(t.0.div_euclid(1_000_000_000) + EPOCH_DIFF).unwrap_or(0)
}

impl Stitcher {
    /// A stitcher with `options`.
    pub fn new(options: StitchOptions) -> Self {
        Stitcher {
            options,
            cancel: Cancel::default(),
            storage: Storage::default(),
        }
    }

    /// The same stitcher, writing its outputs to `storage` (local files by
    /// default). The chunks are read from their recording's own storage.
    pub fn with_storage(mut self, storage: Storage) -> Self {
        self.storage = storage;
        self
    }

    /// The same stitcher, stopping its copies (with [`Error::Cancelled`],
    /// nothing left under a final name) once `cancel` is cancelled.
    pub fn with_cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = cancel;
        self
    }

    /// The options in force.
    pub fn options(&self) -> &StitchOptions {
        &self.options
    }

    /// Stitches `rec` (which must be valid) into `out_dir`.
    ///
    /// Waits for the recording's lock first, so that any number
    /// of threads and processes may stitch the same recording into the same
    /// folder: each writes the same bytes in turn.
    pub fn stitch(&self, rec: &ValidatedRecording, out_dir: &Path) -> Result<Manifest> {
        let paths = rec.recording.output_paths(out_dir);
        let _lock = self.storage.lock(&paths)?;
        let prepared = self.prepare(rec, &paths)?;
        self.finish(rec, prepared, &paths)
    }

    /// [`Stitcher::stitch`] of a recording the caller gives up: the chunks'
    /// sample tables are freed once the join plan is made, before anything
    /// is written, so that memory holds one set of tables at a time (for a
    /// 20-hour recording the chunks' tables take about 13 MB). The outputs
    /// are the same bytes as [`Stitcher::stitch`]'s.
    pub fn stitch_owned(&self, mut rec: ValidatedRecording, out_dir: &Path) -> Result<Manifest> {
        let paths = rec.recording.output_paths(out_dir);
        let _lock = self.storage.lock(&paths)?;
        self.stitch_locked_freeing(&mut rec, &paths)
    }

    /// [`Stitcher::stitch_owned`] for a caller that holds the recording's lock.
    pub(crate) fn stitch_locked_freeing(&self, rec: &mut ValidatedRecording, paths: &OutputPaths) -> Result<Manifest> {
        let prepared = self.prepare(rec, paths)?;
        // Writing needs the plan only.
        rec.drop_sample_tables();
        self.finish(rec, prepared, paths)
    }

    /// What stitching decides before it writes: the join plan, the timeline
    /// and the timeline picture. These are the only steps that read the
    /// chunks' sample tables; [`Stitcher::finish`] reads none.
    pub(crate) fn prepare(&self, rec: &ValidatedRecording, paths: &OutputPaths) -> Result<Prepared> {
        if !rec.is_valid() {
            return Err(Error::Usage(format!(
                "recording {} has error findings; not stitched",
                rec.recording.key
            )));
        }
        let plan = self.plan(rec)?;
        let timeline = timeline::build(rec, &plan.audio_starts(), plan.duration(), self.options.gaps);
        let picture = if self.options.timeline {
            Some(crate::output::picture::png(rec, &paths.timeline)?)
        } else {
            None
        };
        Ok(Prepared {
            plan,
            timeline,
            picture,
        })
    }

    /// Writes what [`Stitcher::prepare`] decided: the media, the chapters,
    /// the picture, then the manifest.
    pub(crate) fn finish(&self, rec: &ValidatedRecording, prepared: Prepared, paths: &OutputPaths) -> Result<Manifest> {
        let Prepared {
            plan,
            timeline: tl,
            picture,
        } = prepared;
        let inputs = input_paths(rec)?;
        let dir = paths.dir();
        self.storage.create_dir_all(dir)?;
        self.cancel.check()?;
        let written = self.write_media(rec, &inputs, &plan, &tl.chapters, paths)?;
        // A stitch that fails after its media is in place (no room for the
        // chapters or the manifest) leaves nothing under its final names.
        self.write_the_rest(rec, &inputs, plan, tl, picture, written, paths)
            .inspect_err(|_| self.storage.remove_outputs(paths))
    }

    /// [`Stitcher::finish`] after the media: the channels, chapters,
    /// picture and, last, the manifest.
    #[allow(clippy::too_many_arguments)]
    fn write_the_rest(
        &self,
        rec: &ValidatedRecording,
        inputs: &[&Path],
        plan: Joined,
        tl: timeline::Timeline,
        picture: Option<Vec<u8>>,
        written: Written,
        paths: &OutputPaths,
    ) -> Result<Manifest> {
        let channels = self.write_channels(rec, inputs, &plan, &tl.chapters, paths)?;
        self.storage
            .write(&paths.chapters, timeline::webvtt(&tl.chapters).as_bytes())?;
        if let Some(png) = picture {
            self.storage.write(&paths.timeline, &png)?;
        }
        let chunks = manifest_chunks(rec, inputs, &plan, &written);
        let streams = rec
            .checks
            .iter()
            .find_map(|c| c.streams.clone())
            .ok_or_else(|| Error::Usage("a valid recording has no probed chunk".into()))?;
        let (video_frames, audio_packets, audio_samples) = plan.counts();
        let manifest = Manifest {
            schema_version: MANIFEST_SCHEMA_VERSION,
            tool: Tool {
                name: "recstitch".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            options: self.options.clone(),
            call_id: rec.recording.call_id.clone(),
            recording_key: rec.recording.key.clone(),
            output: ManifestOutput {
                path: file_name(&paths.media),
                chapters_path: format!("{}/{}", crate::io::CHAPTERS_DIR, file_name(&paths.chapters)),
                timeline_path: self.options.timeline.then(|| file_name(&paths.timeline)),
                bytes: written.size,
                sha256: written.sha256,
                streams,
                duration_ms: (plan.duration() * 1e6).round() / 1e3,
                video_frames,
                audio_packets,
                audio_samples,
            },
            chunks,
            segments: tl.segments,
            pauses: tl.pauses,
            gaps: tl.gaps,
            chapters: tl.chapters,
            participants: participants(rec),
            channels,
            findings: rec.findings.clone(),
            files: Some(paths.clone()),
        };
        let mut json =
            serde_json::to_vec_pretty(&manifest).map_err(|e| Error::encode(&paths.manifest, "the manifest", e))?;
        json.push(b'\n');
        self.storage.write(&paths.manifest, &json)?;
        sync_dir(paths.dir());
        Ok(manifest)
    }

    /// The join plan of `rec` in its format, with holds for `--gaps wallclock`.
    fn plan(&self, rec: &ValidatedRecording) -> Result<Joined> {
        let holds = match self.options.gaps {
            GapMode::Collapse => vec![Vec::new(); rec.checks.len()],
            GapMode::Wallclock => timeline::holds(rec),
        };
        match rec.recording.format() {
            MediaFormat::Mp4 => self
                .plan_mp4(rec, &movies(rec)?, &holds)
                .map(|p| Joined::Mp4(Box::new(p))),
            MediaFormat::Mp3 => mp3::plan(&audio_files(rec, AudioFile::as_mp3)?, &holds).map(Joined::Mp3),
            MediaFormat::Wav => wav::plan(&audio_files(rec, AudioFile::as_wav)?, &holds).map(Joined::Wav),
        }
    }

    /// The MP4 join plan of `rec`.
    fn plan_mp4(&self, rec: &ValidatedRecording, media: &[&Movie], holds: &[Vec<Hold>]) -> Result<Plan> {
        plan::plan(media, holds).map_err(|e| {
            e.unsupported(
                rec.recording
                    .chunks
                    .first()
                    .map(|c| c.metadata_path.clone())
                    .unwrap_or_default(),
                format!("recording {}", rec.recording.key),
            )
        })
    }

    /// Writes the stitched file under a temporary name (or uploads it) and
    /// commits it, hashing the inputs side by side.
    fn write_media(
        &self,
        rec: &ValidatedRecording,
        inputs: &[&Path],
        plan: &Joined,
        chapters: &[Chapter],
        paths: &OutputPaths,
    ) -> Result<Written> {
        let sources = open_sources(&rec.recording.storage, inputs)?;
        let write = |out: &File| -> Result<Written> {
            match plan {
                Joined::Mp4(plan) => {
                    let first_start = rec
                        .recording
                        .chunks
                        .iter()
                        .find_map(|c| c.metadata.as_ref().map(|m| m.start));
                    let input = MuxInput {
                        plan,
                        chapters,
                        sources: &sources,
                        creation_time: first_start.map_or(0, mp4_time),
                        cancel: self.cancel.clone(),
                    };
                    write::write_mp4(&input, out, &paths.media)
                }
                Joined::Mp3(plan) => {
                    let chunks = audio_files(rec, AudioFile::as_mp3)?;
                    let title = title(rec);
                    let input = Mp3Output {
                        plan,
                        chunks: &chunks,
                        sources: &sources,
                        chapters,
                        title: &title,
                        cancel: self.cancel.clone(),
                    };
                    mp3::write(&input, out, &paths.media)
                }
                Joined::Wav(plan) => {
                    let chunks = audio_files(rec, AudioFile::as_wav)?;
                    let input = WavOutput {
                        plan,
                        chunks: &chunks,
                        sources: &sources,
                        chapters,
                        cancel: self.cancel.clone(),
                    };
                    wav::write(&input, out, &paths.media)
                }
            }
        };
        self.storage.write_with(&paths.media, Some(&paths.manifest), write)
    }

    /// `--split-channels` of an unmixed WAV: one mono WAV per channel that
    /// a participant used; the channel map of the manifest (empty for
    /// mixed recordings).
    fn write_channels(
        &self,
        rec: &ValidatedRecording,
        inputs: &[&Path],
        plan: &Joined,
        chapters: &[Chapter],
        paths: &OutputPaths,
    ) -> Result<Vec<ChannelMap>> {
        let Joined::Wav(wav_plan) = plan else {
            return Ok(Vec::new());
        };
        let unmixed = rec
            .recording
            .chunks
            .iter()
            .filter_map(|c| c.metadata.as_ref())
            .any(|m| m.recording.unmixed() || m.participants.iter().any(|p| p.channel.is_some()));
        if !unmixed {
            return Ok(Vec::new());
        }
        let count = rec
            .checks
            .iter()
            .find_map(|c| c.audio_file.as_ref().map(AudioFile::channels))
            .unwrap_or(0);
        let mut map: Vec<ChannelMap> = (0..count)
            .map(|channel| ChannelMap {
                channel,
                participant_id: channel_participant(rec, channel),
                path: None,
            })
            .collect();
        if !self.options.split_channels {
            return Ok(map);
        }
        let chunks = audio_files(rec, AudioFile::as_wav)?;
        let sources = open_sources(&rec.recording.storage, inputs)?;
        let input = WavOutput {
            plan: wav_plan,
            chunks: &chunks,
            sources: &sources,
            chapters,
            cancel: self.cancel.clone(),
        };
        let dir = paths.dir().join(crate::io::CHANNELS_DIR);
        self.storage.create_dir_all(&dir)?;
        for m in map.iter_mut().filter(|m| m.participant_id.is_some()) {
            let who = crate::io::safe_name(m.participant_id.as_deref().unwrap_or_default());
            let name = format!("{}.ch{}.{who}.wav", file_stem(&paths.media), m.channel);
            let path = dir.join(&name);
            let channel = u16::try_from(m.channel).map_err(|_| Error::Usage("channel out of range".into()))?;
            self.storage.write_with(&path, None, |out| {
                wav::write_channels(&input, &[(channel, out, path.as_path())])?
                    .pop()
                    .ok_or_else(|| Error::Internal("no channel written".into()))
            })?;
            m.path = Some(format!("{}/{name}", crate::io::CHANNELS_DIR));
        }
        Ok(map)
    }
}

/// The participant on `channel` of an unmixed recording, from the first
/// chunk whose metadata names one.
fn channel_participant(rec: &ValidatedRecording, channel: u32) -> Option<String> {
    rec.recording
        .chunks
        .iter()
        .filter_map(|c| c.metadata.as_ref())
        .flat_map(|m| &m.participants)
        .find(|p| p.channel == Some(channel))
        .map(|p| p.participant_id.clone())
}

/// The MP3's title: the call and when the recording started.
fn title(rec: &ValidatedRecording) -> String {
    let start = rec
        .recording
        .chunks
        .iter()
        .filter_map(|c| c.metadata.as_ref())
        .map(|m| m.start)
        .min();
    match start {
        Some(t) => format!("Call {}, recorded {}", rec.recording.call_id, t.to_rfc3339()),
        None => format!("Call {}", rec.recording.call_id),
    }
}

/// How a recording's chunks are joined: per format. (One per recording
/// being stitched, never in a collection: the variants' sizes do not matter.)
#[allow(clippy::large_enum_variant)]
pub(crate) enum Joined {
    /// MP4: the sample tables of the output (boxed: much larger than the others).
    Mp4(Box<Plan>),
    /// MP3: frame runs and silent frames.
    Mp3(Mp3Plan),
    /// WAV: PCM ranges and silence.
    Wav(WavPlan),
}

impl Joined {
    /// Presented duration of the output, seconds.
    fn duration(&self) -> f64 {
        match self {
            Joined::Mp4(p) => p.duration(),
            Joined::Mp3(p) => p.layout.duration,
            Joined::Wav(p) => p.layout.duration,
        }
    }

    /// Output time of each chunk's first presented audio sample, seconds.
    fn audio_starts(&self) -> Vec<f64> {
        match self {
            Joined::Mp4(p) => p.placements.iter().map(|p| p.audio_start).collect(),
            Joined::Mp3(p) => p.layout.placements.iter().map(|p| p.audio_start).collect(),
            Joined::Wav(p) => p.layout.placements.iter().map(|p| p.audio_start).collect(),
        }
    }

    /// How chunk `k` was joined.
    fn join(&self, k: usize) -> Option<Join> {
        match self {
            Joined::Mp4(p) => p.placements.get(k).map(Join::from),
            Joined::Mp3(p) => p.layout.placements.get(k).map(Join::from),
            Joined::Wav(p) => p.layout.placements.get(k).map(Join::from),
        }
    }

    /// Video frames, audio packets and audio samples written.
    fn counts(&self) -> (usize, usize, u64) {
        match self {
            Joined::Mp4(p) => (
                p.video.as_ref().map_or(0, |v| v.samples.len()),
                p.audio.samples.len(),
                p.audio.media_duration(),
            ),
            Joined::Mp3(p) => (
                0,
                usize::try_from(p.layout.packets).unwrap_or(usize::MAX),
                p.layout.samples,
            ),
            Joined::Wav(p) => (0, 0, p.layout.samples),
        }
    }
}

/// The plan, timeline and picture of one recording, made while its sample
/// tables are at hand (see [`Stitcher::prepare`]).
pub(crate) struct Prepared {
    plan: Joined,
    timeline: timeline::Timeline,
    picture: Option<Vec<u8>>,
}

/// The probed media of every chunk of a valid MP4 recording.
fn movies(rec: &ValidatedRecording) -> Result<Vec<&Movie>> {
    rec.checks
        .iter()
        .map(|c| c.media.as_ref())
        .collect::<Option<_>>()
        .ok_or_else(|| Error::Usage("a chunk of a valid recording has no probed media".into()))
}

/// The probed audio files of every chunk of a valid MP3 or WAV recording.
fn audio_files<T>(rec: &ValidatedRecording, as_format: fn(&AudioFile) -> Option<&T>) -> Result<Vec<&T>> {
    rec.checks
        .iter()
        .map(|c| c.audio_file.as_ref().and_then(as_format))
        .collect::<Option<_>>()
        .ok_or_else(|| Error::Usage("a chunk of a valid recording is not in the recording's format".into()))
}

/// Every chunk's media file, in chunk order.
fn input_paths(rec: &ValidatedRecording) -> Result<Vec<&Path>> {
    rec.checks
        .iter()
        .map(|c| {
            c.media
                .as_ref()
                .map(|m| m.path.as_path())
                .or_else(|| c.audio_file.as_ref().map(AudioFile::path))
        })
        .collect::<Option<_>>()
        .ok_or_else(|| Error::Usage("a chunk of a valid recording has no probed media".into()))
}

/// The inputs, opened for the copy.
fn open_sources(storage: &Storage, inputs: &[&Path]) -> Result<Vec<Source>> {
    inputs
        .iter()
        .map(|path| {
            storage
                .open(path)
                .map(|file| Source {
                    file,
                    path: path.to_path_buf(),
                })
                .map_err(|e| Error::io(*path, e))
        })
        .collect()
}

fn file_stem(p: &Path) -> String {
    p.file_stem()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The manifest's entry of each chunk with metadata.
fn manifest_chunks(rec: &ValidatedRecording, inputs: &[&Path], plan: &Joined, written: &Written) -> Vec<ManifestChunk> {
    let duration = plan.duration();
    let starts = plan.audio_starts();
    rec.recording
        .chunks
        .iter()
        .zip(&rec.checks)
        .enumerate()
        .filter_map(|(k, (c, check))| {
            let m = c.metadata.as_ref()?;
            let start = *starts.get(k)?;
            let end = starts.get(k + 1).copied().unwrap_or(duration);
            Some(ManifestChunk {
                index: m.index,
                document_id: c.document_id.clone(),
                media: relative(inputs.get(k)?, &rec.recording.root),
                metadata: relative(&c.metadata_path, &rec.recording.root),
                sha256: written.inputs.get(k)?.0.clone(),
                bytes: written.inputs.get(k)?.1,
                wall_clock_start: m.start,
                chunk_duration_ms: m.duration_ms,
                pauses_cut: check.pauses_cut,
                output_byte_start: written.chunk_byte_ranges.get(k)?.0,
                output_byte_end: written.chunk_byte_ranges.get(k)?.1,
                output_start: timeline::round6(start),
                output_end: timeline::round6(end),
                join: plan.join(k)?,
                audio_levels_dbfs: check.audio.as_ref().map(|a| a.levels_dbfs.clone()),
            })
        })
        .collect()
}

/// The participant ids of every chunk, sorted, without duplicates.
fn participants(rec: &ValidatedRecording) -> Vec<String> {
    let mut ids: Vec<String> = rec
        .recording
        .chunks
        .iter()
        .filter_map(|c| c.metadata.as_ref())
        .flat_map(|m| m.participants.iter().map(|p| p.participant_id.clone()))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{File, OpenOptions};

    /// Runs `f` with a mux input for chunk 0 of the good fixture alone.
    fn with_one_chunk(cancel: Cancel, f: impl FnOnce(&MuxInput)) {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "fixtures/cases/good/3c57992b-07bf-4387-a8bc-a13561e8650a/0-eus-d11-293c5f93ea87298458e47ef52dda3bb9.mp4",
        );
        let media = crate::probe(&source, &crate::Limits::default()).unwrap();
        let p = plan::plan(&[&media], &[]).unwrap();
        let sources = [Source {
            file: File::open(&source).unwrap().into(),
            path: source.clone(),
        }];
        f(&MuxInput {
            plan: &p,
            chapters: &[],
            sources: &sources,
            creation_time: 0,
            cancel,
        });
    }

    #[test]
    fn a_full_disk_is_a_clear_io_error() {
        // /dev/full answers every write with ENOSPC.
        let Ok(full) = OpenOptions::new().write(true).open("/dev/full") else {
            eprintln!("SKIPPED: no /dev/full on this system");
            return;
        };
        with_one_chunk(Cancel::default(), |input| {
            let e = write::write_mp4(input, &full, Path::new("out/x.mp4")).unwrap_err();
            assert_eq!(e.category(), "io");
            assert!(e.to_string().starts_with("out/x.mp4: No space left on device"), "{e}");
        });
    }

    #[test]
    fn every_input_byte_is_read_once_and_hashed() {
        use sha2::{Digest, Sha256};
        with_one_chunk(Cancel::default(), |input| {
            let out = tempfile::tempfile().unwrap();
            let w = write::write_mp4(input, &out, Path::new("out/x.mp4")).unwrap();
            assert_eq!(w.reread, 0, "the service's interleave is served from the window");
            let bytes = std::fs::read(&input.sources[0].path).unwrap();
            let sha = crate::io::hex(&Sha256::digest(&bytes));
            assert_eq!(w.inputs, vec![(sha, bytes.len() as u64)]);
        });
    }

    #[test]
    fn a_copy_stops_when_cancelled() {
        let cancel = Cancel::new();
        cancel.cancel();
        let sink = OpenOptions::new().write(true).open("/dev/null").unwrap();
        with_one_chunk(cancel, |input| {
            let e = write::write_mp4(input, &sink, Path::new("out/x.mp4")).unwrap_err();
            assert!(matches!(e, Error::Cancelled), "{e}");
        });
    }
}
