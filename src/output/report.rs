//! The JSON report shared by `validate` and `run`.
//!
//! ```json
//! {"schemaVersion":2,"recordings":[{"callId":"…","recordingKey":"…","status":"ok",
//!   "chunks":[{"index":0,"documentId":"…","media":"path","metadata":"path",
//!              "mediaDurationMs":3000.0,"pausesCut":null}],
//!   "findings":[{"code":"video.frame_rate","severity":"error","chunkIndex":1,"message":"…"}]}],
//!  "orphans":[{"path":"…","reason":"…"}]}
//! ```

use serde::{Deserialize, Serialize};

use crate::finding::Finding;
use crate::input::archive::{Archive, Orphan};
use crate::validate::ValidatedRecording;

/// What happened to a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Validated without error findings (`validate`).
    Ok,
    /// Has error findings; not stitched.
    Invalid,
    /// Stitched by this run.
    Stitched,
    /// Already stitched and up to date; left alone.
    Skipped,
    /// Validating or stitching failed (see `error`).
    Failed,
    /// The batch was cancelled before the recording was done.
    Cancelled,
}

/// The version of the report's layout ([`Report::schema_version`]);
/// [`REPORT_SCHEMA`] describes it.
pub const REPORT_SCHEMA_VERSION: u32 = 2;

/// The report's JSON Schema (`schemas/report.v2.json`; version 2 added
/// each chunk's `streams`).
pub const REPORT_SCHEMA: &str = include_str!("../../schemas/report.v2.json");

/// The whole report. Reads back with serde; `schemas/report.v2.json` is its
/// published JSON Schema.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// [`REPORT_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// One entry per recording.
    pub recordings: Vec<RecordingReport>,
    /// Files that belong to no chunk.
    pub orphans: Vec<Orphan>,
}

/// One recording in the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingReport {
    /// The call.
    pub call_id: String,
    /// The recording's stable key.
    pub recording_key: String,
    /// What happened to it.
    pub status: Status,
    /// Its chunks.
    pub chunks: Vec<ChunkReport>,
    /// What validation found.
    pub findings: Vec<Finding>,
    /// The stitched file (`run`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// The manifest beside it (`run`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// Why it failed (status `failed` or `cancelled`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The error itself, for library callers (not part of the JSON).
    #[serde(skip)]
    pub cause: Option<std::sync::Arc<crate::Error>>,
}

/// One chunk in the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkReport {
    /// Chunk index, when known.
    pub index: Option<u32>,
    /// Document id.
    pub document_id: String,
    /// Media file, when found.
    pub media: Option<String>,
    /// Metadata file.
    pub metadata: String,
    /// Presented media duration, milliseconds (3 decimals).
    pub media_duration_ms: Option<f64>,
    /// Whether paused time was cut from the media; `null` when no pause or undecidable.
    pub pauses_cut: Option<bool>,
    /// What the media holds, as found (format, rate, channels, picture,
    /// frame rate and whether the metadata stated it); absent when it could
    /// not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streams: Option<crate::validate::Streams>,
}

impl Status {
    /// The status as the JSON report and the text report spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Invalid => "invalid",
            Status::Stitched => "stitched",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    /// Every status, in the order a summary lists them.
    pub const ALL: [Status; 6] = [
        Status::Ok,
        Status::Stitched,
        Status::Skipped,
        Status::Invalid,
        Status::Failed,
        Status::Cancelled,
    ];
}

impl RecordingReport {
    /// The report entry of a recording's validation: its outcome, or the
    /// error that stopped it (status `failed`).
    pub fn from_validation(rec: &crate::Recording, outcome: crate::Result<ValidatedRecording>) -> Self {
        match outcome {
            Ok(v) => Self::from_validated(&v),
            Err(error) => RecordingReport {
                call_id: rec.call_id.clone(),
                recording_key: rec.key.clone(),
                status: Status::Ok,
                chunks: Vec::new(),
                findings: rec.findings.clone(),
                output: None,
                manifest: None,
                error: None,
                cause: None,
            }
            .failed(error),
        }
    }

    /// This report, failed with `error` (status `cancelled` for
    /// [`Error::Cancelled`](crate::Error::Cancelled), else `failed`).
    pub fn failed(mut self, error: crate::Error) -> Self {
        self.status = if matches!(error, crate::Error::Cancelled) {
            Status::Cancelled
        } else {
            Status::Failed
        };
        self.error = Some(error.to_string());
        self.cause = Some(std::sync::Arc::new(error));
        self
    }

    /// The report entry of a validated recording (status `ok` or `invalid`).
    pub fn from_validated(v: &ValidatedRecording) -> Self {
        let chunks = v
            .recording
            .chunks
            .iter()
            .zip(&v.checks)
            .map(|(c, check)| ChunkReport {
                index: c.index(),
                document_id: c.document_id.clone(),
                media: c.media_path.as_ref().map(|p| p.display().to_string()),
                metadata: c.metadata_path.display().to_string(),
                media_duration_ms: check.media_duration_ms.map(round3),
                pauses_cut: check.pauses_cut,
                streams: check.streams.clone(),
            })
            .collect();
        RecordingReport {
            call_id: v.recording.call_id.clone(),
            recording_key: v.recording.key.clone(),
            status: if v.is_valid() { Status::Ok } else { Status::Invalid },
            chunks,
            findings: v.findings.clone(),
            output: None,
            manifest: None,
            error: None,
            cause: None,
        }
    }
}

impl Report {
    /// A report with the archive's orphans and the given recordings.
    pub fn new(archive: &Archive, recordings: Vec<RecordingReport>) -> Self {
        Report {
            schema_version: REPORT_SCHEMA_VERSION,
            recordings,
            orphans: archive.orphans.clone(),
        }
    }

    /// Whether every recording is `ok`, `stitched` or `skipped`.
    pub fn all_good(&self) -> bool {
        self.recordings
            .iter()
            .all(|r| matches!(r.status, Status::Ok | Status::Stitched | Status::Skipped))
    }
}

/// What `recstitch probe` prints about one MP4.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeReport {
    /// The file.
    pub path: String,
    /// Its size in bytes.
    pub file_size: u64,
    /// `ftyp` major brand.
    pub major_brand: String,
    /// Whether samples come from movie fragments.
    pub fragmented: bool,
    /// Movie timescale.
    pub movie_timescale: u32,
    /// Presented duration (longest audio/video track), milliseconds.
    pub duration_ms: f64,
    /// The tracks.
    pub tracks: Vec<TrackReport>,
    /// Set when a sample lies beyond the end of the file.
    pub truncated: Option<String>,
    /// Departures from the format that were tolerated (`media.quirk`).
    pub quirks: Vec<String>,
}

/// One track in a [`ProbeReport`].
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackReport {
    /// Track id.
    pub id: u32,
    /// Video, audio or other.
    pub kind: crate::formats::mp4::TrackKind,
    /// Handler code.
    pub handler: String,
    /// Media timescale.
    pub timescale: u32,
    /// Codec configuration of the first sample description.
    pub codec: Option<crate::formats::mp4::Codec>,
    /// Number of sample descriptions.
    pub sample_descriptions: usize,
    /// Number of samples.
    pub samples: usize,
    /// Number of sync samples.
    pub sync_samples: usize,
    /// Sum of sample durations, ticks.
    pub media_duration: u64,
    /// How the edit list presents the media.
    pub presentation: crate::formats::mp4::Presentation,
    /// Presented duration, milliseconds.
    pub presented_ms: f64,
    /// Frames (or packets) per second from the sample durations.
    pub rate: Option<f64>,
    /// Average bit rate, bits per second.
    pub bit_rate: Option<f64>,
    /// The edit list.
    pub edits: Vec<crate::formats::mp4::Edit>,
    /// Whether any sample has a composition offset (B-frames).
    pub composition_offsets: bool,
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// What `probe` says of an MP3 or WAV file.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AudioProbeReport {
    /// The file.
    pub path: String,
    /// Its format (`mp3`, `wav`).
    pub format: crate::input::metadata::MediaFormat,
    /// Samples per second.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u32,
    /// Presented duration, milliseconds (3 decimals).
    pub duration_ms: f64,
    /// Average bit rate of the audio, bits per second.
    pub bit_rate: u64,
    /// How the file is cut short, when it is.
    pub truncated: Option<String>,
    /// Departures from the format that were tolerated (`media.quirk`).
    pub quirks: Vec<String>,
}

impl AudioProbeReport {
    /// Summarises a probed MP3 or WAV.
    pub fn new(a: &crate::formats::AudioFile) -> Self {
        AudioProbeReport {
            path: a.path().display().to_string(),
            format: a.format(),
            sample_rate: a.sample_rate(),
            channels: a.channels(),
            duration_ms: round3(a.duration_ms()),
            bit_rate: a.bit_rate().round() as u64,
            truncated: a.truncated().map(str::to_owned),
            quirks: a.quirks().to_vec(),
        }
    }
}

impl ProbeReport {
    /// Summarises a probed file.
    pub fn new(m: &crate::formats::mp4::Movie) -> Self {
        use crate::formats::mp4::Movie;
        let tracks = m
            .tracks
            .iter()
            .map(|t| TrackReport {
                id: t.id,
                kind: t.kind,
                handler: t.handler.clone(),
                timescale: t.timescale,
                codec: t.codec().cloned(),
                sample_descriptions: t.entries.len(),
                samples: t.samples.len(),
                sync_samples: t.samples.iter().filter(|s| s.sync).count(),
                media_duration: t.media_duration(),
                presentation: t.presentation(m.movie_timescale),
                presented_ms: round3(m.presented_seconds(t) * 1000.0),
                rate: Movie::frame_rate(t).map(round3),
                bit_rate: Movie::bit_rate(t).map(f64::round),
                edits: t.edits.clone(),
                composition_offsets: t.samples.iter().any(|s| s.composition_offset != 0),
            })
            .collect();
        ProbeReport {
            path: m.path.display().to_string(),
            file_size: m.file_size,
            major_brand: m.major_brand.clone(),
            fragmented: m.fragmented,
            movie_timescale: m.movie_timescale,
            duration_ms: round3(m.duration_ms()),
            tracks,
            truncated: m.first_sample_past_end().map(|(track, sample, end)| {
                format!(
                    "track {track} sample {sample} ends at byte {end}, past the end of the file ({} bytes)",
                    m.file_size
                )
            }),
            quirks: m.quirks.clone(),
        }
    }
}

/// One participant and the recordings it appears in (`recstitch participants`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantReport {
    /// The participant id.
    pub participant_id: String,
    /// Its recordings, in archive order.
    pub recordings: Vec<ParticipantRecording>,
}

/// A recording a participant appears in.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantRecording {
    /// The call.
    pub call_id: String,
    /// The recording's key.
    pub recording_key: String,
    /// Wall-clock start of its first chunk.
    pub start: crate::input::metadata::WallClock,
    /// Wall-clock end of its last chunk.
    pub end: crate::input::metadata::WallClock,
    /// The stitched file, when `out` was given and it exists.
    pub output: Option<String>,
    /// The participant's channel in an unmixed recording
    /// (`participants[].channel`), when the metadata gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<u32>,
}

/// Every participant of `archive` (or only `id`) with its recordings,
/// sorted by participant id; the stitched files looked for under `out`
/// through the archive's storage.
pub fn participants(archive: &Archive, id: Option<&str>, out: Option<&std::path::Path>) -> Vec<ParticipantReport> {
    let mut by_id: std::collections::BTreeMap<String, Vec<ParticipantRecording>> = Default::default();
    for rec in &archive.recordings {
        let metas: Vec<&crate::input::metadata::ChunkMetadata> =
            rec.chunks.iter().filter_map(|c| c.metadata.as_ref()).collect();
        let (Some(start), Some(end)) = (metas.iter().map(|m| m.start).min(), metas.iter().map(|m| m.end()).max())
        else {
            continue;
        };
        let output = out
            .map(|o| rec.output_paths(o).media)
            .filter(|p| archive.storage.is_file(p))
            .map(|p| p.display().to_string());
        let mut ids: Vec<&str> = metas
            .iter()
            .flat_map(|m| m.participants.iter().map(|p| p.participant_id.as_str()))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        for pid in ids.into_iter().filter(|p| id.is_none_or(|want| want == *p)) {
            let channel = metas
                .iter()
                .flat_map(|m| &m.participants)
                .find(|p| p.participant_id == pid && p.channel.is_some())
                .and_then(|p| p.channel);
            by_id.entry(pid.to_string()).or_default().push(ParticipantRecording {
                call_id: rec.call_id.clone(),
                recording_key: rec.key.clone(),
                start,
                end,
                output: output.clone(),
                channel,
            });
        }
    }
    by_id
        .into_iter()
        .map(|(participant_id, recordings)| ParticipantReport {
            participant_id,
            recordings,
        })
        .collect()
}
