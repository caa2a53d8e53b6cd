//! Stitching a validated recording into one MP4, with its manifest and
//! WebVTT chapters, written atomically.
//!
//! Outputs for a recording go to `<out>/<callId>/<recordingKey>.mp4`, with
//! `.json` (the manifest) beside it and `chapters/<recordingKey>.vtt` (the
//! WebVTT chapters, in a folder of their own so that players do not load
//! them as subtitles). Each file is
//! written under a temporary name in the same folder, synced, then renamed;
//! the manifest is renamed last, so its presence means the set is complete.
//! The join itself is planned and written by [`crate::mux`].

use std::fs::File;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::finding::Finding;
use crate::io::{output_paths, sha256_file, sync_dir, write_atomic, OutputPaths, RecordingLock, TempFile};
use crate::media::Movie;
use crate::metadata::WallClock;
use crate::mux::plan::{self, Placement, Plan};
use crate::mux::write::{self, MuxInput, Source, Written};
use crate::timeline::{self, Chapter, GapMode, Interruption, Segment};
use crate::validate::ValidatedRecording;

/// Options for [`Stitcher`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StitchOptions {
    /// What to do with paused time and gaps.
    pub gaps: GapMode,
    /// Also draw the recording's timeline as a PNG beside the outputs.
    pub timeline: bool,
}

/// Stitches validated recordings.
#[derive(Debug, Clone, Default)]
pub struct Stitcher {
    options: StitchOptions,
}

/// The manifest written beside each stitched file.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
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
    /// What validation found (warnings only, for a stitched recording).
    pub findings: Vec<Finding>,
}

/// Name and version of the tool.
#[derive(Debug, Clone, Serialize)]
pub struct Tool {
    /// `recstitch`.
    pub name: &'static str,
    /// The crate version.
    pub version: &'static str,
}

/// The stitched file.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestOutput {
    /// The MP4's file name (it sits beside the manifest).
    pub path: String,
    /// The WebVTT chapters' path, relative to the manifest's folder
    /// (`chapters/<recordingKey>.vtt`).
    pub chapters_path: String,
    /// The timeline picture's file name, when drawn.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline_path: Option<String>,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
    /// Presented duration, milliseconds.
    pub duration_ms: f64,
    /// Video frames written.
    pub video_frames: usize,
    /// Audio packets written (generated silence included).
    pub audio_packets: usize,
    /// Audio samples the packets decode to.
    pub audio_samples: u64,
}

/// One input chunk in the manifest.
#[derive(Debug, Clone, Serialize)]
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
    /// Output byte range `[start, end)` of its samples.
    pub output_bytes: (u64, u64),
    /// Output time range `[start, end)`, seconds.
    pub output_time: (f64, f64),
    /// How the join into this chunk was made.
    pub join: Placement,
    /// RMS level of each second of the chunk's audio, dBFS (`--deep`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_levels_dbfs: Option<Vec<f64>>,
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
        Stitcher { options }
    }

    /// The options in force.
    pub fn options(&self) -> &StitchOptions {
        &self.options
    }

    /// Stitches `rec` (which must be valid) into `out_dir`.
    ///
    /// Waits for the recording's [`RecordingLock`] first, so that any number
    /// of threads and processes may stitch the same recording into the same
    /// folder: each writes the same bytes in turn.
    pub fn stitch(&self, rec: &ValidatedRecording, out_dir: &Path) -> Result<Manifest> {
        let paths = output_paths(&rec.recording.call_id, &rec.recording.key, out_dir);
        let _lock = RecordingLock::acquire(&paths)?;
        self.stitch_locked(rec, &paths)
    }

    /// [`Stitcher::stitch`] for a caller that holds the recording's lock.
    pub(crate) fn stitch_locked(&self, rec: &ValidatedRecording, paths: &OutputPaths) -> Result<Manifest> {
        if !rec.is_valid() {
            return Err(Error::Usage(format!(
                "recording {} has error findings; not stitched",
                rec.recording.key
            )));
        }
        let media: Vec<&Movie> = rec
            .checks
            .iter()
            .map(|c| c.media.as_ref())
            .collect::<Option<_>>()
            .ok_or_else(|| Error::Usage("a chunk of a valid recording has no probed media".into()))?;
        let plan = self.plan(rec, &media)?;
        let audio_starts: Vec<f64> = plan.placements.iter().map(|p| p.audio_start).collect();
        let tl = timeline::build(rec, &audio_starts, plan.duration(), self.options.gaps);
        let dir = paths.dir();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let (written, hashes) = write_media(rec, &media, &plan, &tl.chapters, paths)?;
        write_atomic(&paths.chapters, timeline::webvtt(&tl.chapters).as_bytes())?;
        if self.options.timeline {
            crate::picture::write_png(rec, &paths.timeline)?;
        }
        let chunks = manifest_chunks(rec, &media, &plan, &written, &hashes);
        let manifest = Manifest {
            tool: Tool {
                name: "recstitch",
                version: env!("CARGO_PKG_VERSION"),
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
                duration_ms: (plan.duration() * 1e6).round() / 1e3,
                video_frames: plan.video.as_ref().map_or(0, |v| v.samples.len()),
                audio_packets: plan.audio.samples.len(),
                audio_samples: plan.audio.media_duration(),
            },
            chunks,
            segments: tl.segments,
            pauses: tl.pauses,
            gaps: tl.gaps,
            chapters: tl.chapters,
            participants: participants(rec),
            findings: rec.findings.clone(),
        };
        let mut json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Usage(format!("manifest: {e}")))?;
        json.push(b'\n');
        write_atomic(&paths.manifest, &json)?;
        sync_dir(dir);
        Ok(manifest)
    }

    /// The join plan of `rec`, with holds for `--gaps wallclock`.
    fn plan(&self, rec: &ValidatedRecording, media: &[&Movie]) -> Result<Plan> {
        let holds = match self.options.gaps {
            GapMode::Collapse => vec![Vec::new(); media.len()],
            GapMode::Wallclock => timeline::holds(rec),
        };
        plan::plan(media, &holds).map_err(|why| Error::Unsupported {
            path: rec
                .recording
                .chunks
                .first()
                .map(|c| c.metadata_path.clone())
                .unwrap_or_default(),
            context: format!("recording {}", rec.recording.key),
            message: why,
        })
    }
}

/// Writes the stitched MP4 under a temporary name and commits it, hashing
/// the inputs side by side; returns what was written and each input's
/// (SHA-256, size).
fn write_media(
    rec: &ValidatedRecording,
    media: &[&Movie],
    plan: &Plan,
    chapters: &[Chapter],
    paths: &OutputPaths,
) -> Result<(Written, Vec<(String, u64)>)> {
    let sources = media
        .iter()
        .map(|m| {
            File::open(&m.path)
                .map(|file| Source {
                    file,
                    path: m.path.clone(),
                })
                .map_err(|e| Error::io(&m.path, e))
        })
        .collect::<Result<Vec<_>>>()?;
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
    };
    let mut tmp = TempFile::create(&paths.media)?;
    let (written, hashes) = rayon::join(
        || write::write_mp4(&input, tmp.file(), &paths.media),
        || media.iter().map(|m| sha256_file(&m.path)).collect::<Result<Vec<_>>>(),
    );
    let (written, hashes) = (written?, hashes?);
    tmp.commit(&paths.media)?;
    Ok((written, hashes))
}

/// The manifest's entry of each chunk with metadata.
fn manifest_chunks(
    rec: &ValidatedRecording,
    media: &[&Movie],
    plan: &Plan,
    written: &Written,
    hashes: &[(String, u64)],
) -> Vec<ManifestChunk> {
    let duration = plan.duration();
    rec.recording
        .chunks
        .iter()
        .zip(&rec.checks)
        .enumerate()
        .filter_map(|(k, (c, check))| {
            let m = c.metadata.as_ref()?;
            let start = plan.placements[k].audio_start;
            let end = plan.placements.get(k + 1).map_or(duration, |p| p.audio_start);
            Some(ManifestChunk {
                index: m.index,
                document_id: c.document_id.clone(),
                media: media[k].path.display().to_string(),
                metadata: c.metadata_path.display().to_string(),
                sha256: hashes[k].0.clone(),
                bytes: hashes[k].1,
                wall_clock_start: m.start,
                chunk_duration_ms: m.duration_ms,
                pauses_cut: check.pauses_cut,
                output_bytes: written.chunk_byte_ranges[k],
                output_time: (timeline::round6(start), timeline::round6(end)),
                join: plan.placements[k],
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
    use std::fs::OpenOptions;

    #[test]
    fn a_full_disk_is_a_clear_io_error() {
        // /dev/full answers every write with ENOSPC.
        let Ok(full) = OpenOptions::new().write(true).open("/dev/full") else {
            eprintln!("SKIPPED: no /dev/full on this system");
            return;
        };
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(
            "fixtures/cases/good/3c57992b-07bf-4387-a8bc-a13561e8650a/0-eus-d11-293c5f93ea87298458e47ef52dda3bb9.mp4",
        );
        let media = crate::probe(&source, &crate::Limits::default()).unwrap();
        let p = plan::plan(&[&media], &[]).unwrap();
        let sources = [Source {
            file: File::open(&source).unwrap(),
            path: source.clone(),
        }];
        let input = MuxInput {
            plan: &p,
            chapters: &[],
            sources: &sources,
            creation_time: 0,
        };
        let e = write::write_mp4(&input, &full, Path::new("out/x.mp4")).unwrap_err();
        assert_eq!(e.category(), "io");
        assert!(e.to_string().starts_with("out/x.mp4: No space left on device"), "{e}");
    }
}
