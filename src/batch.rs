//! The batch job: every recording of an archive, validated and stitched in
//! parallel stages joined by bounded channels, so memory stays flat whatever
//! the archive's size.
//!
//! ```text
//! feeder ──> validate workers (jobs) ──> stitch workers (stitch_jobs) ──> collector
//!          bounded                     bounded                         bounded
//! ```
//!
//! One bad recording never stops the batch: it is reported (`invalid`,
//! `failed`) and the others go on. Even a bug in recstitch is contained: a
//! panic while validating or stitching one recording makes that recording
//! `failed`, with the panic's message, and the batch goes on.
//!
//! Any number of batches may run over the same archive and output folder at
//! once (an event delivered twice, a retried job overlapping the original):
//! each recording is stitched under its lock (a lock file beside its outputs), and whoever gets
//! the lock second finds the outputs up to date and skips them. A recording whose outputs are up to date
//! (same inputs by path, size and modification time, same options, same
//! tool version, outputs untouched) is `skipped` unless `force` is set; a
//! batch killed at any point therefore resumes without redoing finished work.

use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::bounded;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::input::archive::{Archive, Recording};
use crate::io::{Cancel, Fnv1a, OutputPaths, READ_BACK_MAX};
use crate::observe::Observer;
use crate::output::report::{RecordingReport, Report, Status};
use crate::output::stitch::{StitchOptions, Stitcher};
use crate::storage::Storage;
use crate::validate::{ValidateOptions, ValidatedRecording};

/// One of `count` disjoint parts of an archive (`--shard K/N`); built
/// only through [`Shard::new`] or parsing, so `index < count` always holds.
///
/// ```compile_fail
/// // Private fields: no shard of 0 parts, nor one past its count.
/// let none = recstitch::batch::Shard { index: 0, count: 0 };
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u32,
    count: u32,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("{s:?} is not a shard: use K/N with 0 <= K < N, e.g. 0/3");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        Shard::new(index, count).ok_or_else(bad)
    }
}

impl Shard {
    /// Part `index` (from 0) of `count`; `None` unless `index < count`.
    pub fn new(index: u32, count: u32) -> Option<Shard> {
        (index < count).then_some(Shard { index, count })
    }

    /// This part, from 0.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// How many parts.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Whether `recording` belongs to this shard: a stable hash (FNV-1a, 64
    /// bits) of its call id and key, modulo the shard count. The same on
    /// every machine and every run.
    pub fn contains(&self, recording: &Recording) -> bool {
        let mut h = Fnv1a::default();
        h.write(recording.call_id.as_bytes());
        h.write(b"/");
        h.write(recording.key.as_bytes());
        h.finish() % u64::from(self.count) == u64::from(self.index)
    }

    /// Whether the orphan `path` is reported by this shard: each orphan by
    /// one shard only (a stable hash of its path), so that the shards'
    /// reports together list it once.
    pub fn reports_orphan(&self, path: &Path) -> bool {
        let mut h = Fnv1a::default();
        h.write(path.to_string_lossy().as_bytes());
        h.finish() % u64::from(self.count) == u64::from(self.index)
    }
}

/// Options for [`run_batch`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BatchOptions {
    /// Validation workers (default: the number of cores).
    pub jobs: usize,
    /// Recordings stitched at once (I/O bound, mostly waiting on syncs; default: twice the cores).
    pub stitch_jobs: usize,
    /// Redo recordings whose outputs are up to date.
    pub force: bool,
    /// Only this part of the archive.
    pub shard: Option<Shard>,
    /// Validation options.
    pub validate: ValidateOptions,
    /// Stitching options.
    pub stitch: StitchOptions,
    /// Cancels the batch: recordings not yet started are reported
    /// `cancelled`, a stitch under way stops between blocks of its copy.
    pub cancel: Cancel,
    /// Where the outputs (and the resumability state) are written: local
    /// files by default. The chunks are read from the archive's storage.
    pub storage: Storage,
}

impl Default for BatchOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        BatchOptions {
            jobs: cores,
            stitch_jobs: cores * 2,
            force: false,
            shard: None,
            validate: ValidateOptions::default(),
            stitch: StitchOptions::default(),
            cancel: Cancel::default(),
            storage: Storage::default(),
        }
    }
}

/// What the batch reports while it runs.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum Progress {
    /// The batch starts with this many recordings and input bytes.
    #[serde(rename_all = "camelCase")]
    Started {
        /// Recordings in this run (after sharding).
        recordings: usize,
        /// Bytes of their media files.
        input_bytes: u64,
    },
    /// A recording started stitching.
    #[serde(rename_all = "camelCase")]
    Stitching {
        /// Its call.
        call_id: String,
        /// Its key.
        recording_key: String,
        /// The name of its outputs ([`Recording::output_name`]): its start
        /// time and a short hash, which tell recordings apart.
        name: String,
        /// Bytes of its media files.
        input_bytes: u64,
    },
    /// A recording is done.
    #[serde(rename_all = "camelCase")]
    Finished {
        /// Its call.
        call_id: String,
        /// Its key.
        recording_key: String,
        /// The name of its outputs.
        name: String,
        /// What happened.
        status: Status,
        /// Bytes written for it.
        bytes_written: u64,
        /// Recordings done so far.
        done: usize,
        /// Recordings in the run.
        total: usize,
    },
}

impl Progress {
    /// `rec` starts stitching.
    fn stitching(rec: &Recording) -> Progress {
        Progress::Stitching {
            call_id: rec.call_id.clone(),
            recording_key: rec.key.clone(),
            name: rec.output_name(),
            input_bytes: input_bytes(rec),
        }
    }

    /// `rec` is done: the `done`th of `total`.
    fn finished(rec: &Recording, status: Status, bytes_written: u64, done: usize, total: usize) -> Progress {
        Progress::Finished {
            call_id: rec.call_id.clone(),
            recording_key: rec.key.clone(),
            name: rec.output_name(),
            status,
            bytes_written,
            done,
            total,
        }
    }
}

/// What the resumability check compares: one input's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileStamp {
    path: PathBuf,
    bytes: u64,
    modified_ns: i128,
    /// An object's ETag (objects in a store only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    etag: Option<String>,
}

/// The state file beside the outputs (`.<name>.state`): what the outputs were
/// made from. Kept apart from the manifest so that the manifest stays
/// byte-identical for identical inputs wherever they sit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    version: String,
    options: String,
    inputs: Vec<FileStamp>,
    outputs: Vec<FileStamp>,
}

fn stamp(storage: &Storage, path: &Path) -> Option<FileStamp> {
    let (bytes, modified_ns, etag) = storage.stamp(path)?;
    Some(FileStamp {
        path: path.to_path_buf(),
        bytes,
        modified_ns,
        etag,
    })
}

fn current_state(rec: &Recording, paths: &OutputPaths, options: &BatchOptions) -> Option<State> {
    let mut inputs = Vec::new();
    for c in &rec.chunks {
        inputs.push(stamp(&rec.storage, &c.metadata_path)?);
        inputs.push(stamp(&rec.storage, c.media_path.as_ref()?)?);
    }
    Some(State {
        version: env!("CARGO_PKG_VERSION").into(),
        options: serde_json::to_string(&options.stitch).ok()?,
        inputs,
        outputs: [&paths.media, &paths.chapters, &paths.manifest]
            .iter()
            .map(|p| stamp(&options.storage, p))
            .collect::<Option<_>>()?,
    })
}

/// Whether the outputs of `rec` in `out_dir` (in `options.storage`) are up
/// to date: made by this version with these stitch options from these inputs.
fn up_to_date(rec: &Recording, out_dir: &Path, options: &BatchOptions) -> bool {
    let paths = rec.output_paths(out_dir);
    let Ok(saved) = options.storage.read_own(&paths.state(), READ_BACK_MAX) else {
        return false;
    };
    let Ok(saved) = serde_json::from_slice::<State>(&saved) else {
        return false;
    };
    current_state(rec, &paths, options).is_some_and(|now| now == saved)
}

fn save_state(rec: &Recording, paths: &OutputPaths, options: &BatchOptions) -> Result<()> {
    let state = current_state(rec, paths, options).ok_or_else(|| {
        let vanished = std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "an input or output of the recording vanished while it was stitched",
        );
        Error::io(paths.dir(), vanished)
    })?;
    let json = serde_json::to_vec(&state).map_err(|e| Error::encode(&paths.state(), "the state", e))?;
    options.storage.write(&paths.state(), &json)
}

/// Runs `work`, turning a panic inside it into an error message: the last
/// line of defence that keeps one recording's bug from stopping a batch.
pub fn isolate<T>(work: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        Error::Internal(message)
    })
}

/// [`Recording::validate`] with panics contained ([`isolate`]).
pub fn validate_isolated(rec: &Recording, options: &ValidateOptions) -> Result<ValidatedRecording> {
    isolate(|| {
        #[cfg(test)]
        tests::maybe_panic(rec, "validate");
        rec.validate(options)
    })
}

/// Stitches one validated recording under its lock, unless (once the lock
/// is held) its outputs turn out to be up to date. Returns the bytes
/// written, or `None` when skipped.
fn stitch_one(
    stitcher: &Stitcher,
    validated: &mut ValidatedRecording,
    paths: &OutputPaths,
    out_dir: &Path,
    options: &BatchOptions,
) -> Result<Option<u64>> {
    let _lock = options.storage.lock(paths)?;
    // A link, a FIFO or a device planted where the state goes is refused,
    // never read or waited for.
    if !options.storage.is_remote(&paths.state()) {
        crate::io::check_not_special(&paths.state())?;
    }
    // Another process may have finished it while this one waited.
    if !options.force && up_to_date(&validated.recording, out_dir, options) {
        return Ok(None);
    }
    #[cfg(test)]
    tests::maybe_panic(&validated.recording, "stitch");
    let manifest = stitcher.stitch_locked_freeing(validated, paths)?;
    save_state(&validated.recording, paths, options)?;
    Ok(Some(manifest.output.bytes))
}

/// The recordings of `archive` in this run (after sharding), in report order.
pub fn selected(archive: &Archive, shard: Option<Shard>) -> Vec<&Recording> {
    archive
        .recordings
        .iter()
        .filter(|r| shard.is_none_or(|s| s.contains(r)))
        .collect()
}

fn input_bytes(rec: &Recording) -> u64 {
    rec.chunks
        .iter()
        .filter_map(|c| c.media_path.as_ref())
        .filter_map(|p| rec.storage.stamp(p))
        .map(|(bytes, ..)| bytes)
        .sum()
}

/// The validation stage for one recording: its report, and the validated
/// recording when it goes on to the stitch stage (else the report is final:
/// invalid, skipped, failed).
fn validate_stage(
    rec: &Recording,
    out_dir: &Path,
    options: &BatchOptions,
) -> (Option<ValidatedRecording>, RecordingReport) {
    let validated = match options
        .cancel
        .check()
        .and_then(|()| validate_isolated(rec, &options.validate))
    {
        Ok(v) => v,
        Err(e) => return (None, RecordingReport::from_validation(rec, Err(e))),
    };
    let mut report = RecordingReport::from_validated(&validated);
    if validated.is_valid() && !options.force && up_to_date(rec, out_dir, options) {
        report.status = Status::Skipped;
        set_outputs(&mut report, &rec.output_paths(out_dir));
    }
    // The picture helps most where something is wrong: draw it for invalid
    // recordings too (a stitched one gets it from the stitcher).
    if report.status == Status::Invalid && options.stitch.timeline {
        let path = rec.output_paths(out_dir).timeline;
        if let Err(e) = crate::output::picture::write_png(&options.storage, &validated, &path) {
            report.error = Some(e.to_string());
        }
    }
    let stitch = report.status == Status::Ok;
    (stitch.then_some(validated), report)
}

/// The stitch stage for one recording: its final report and the bytes written.
fn stitch_stage(
    stitcher: &Stitcher,
    validated: &mut ValidatedRecording,
    mut report: RecordingReport,
    out_dir: &Path,
    options: &BatchOptions,
) -> (RecordingReport, u64) {
    let rec = &validated.recording;
    let paths = rec.output_paths(out_dir);
    match isolate(|| stitch_one(stitcher, validated, &paths, out_dir, options)).and_then(|r| r) {
        Ok(written) => {
            report.status = if written.is_some() {
                Status::Stitched
            } else {
                Status::Skipped
            };
            set_outputs(&mut report, &paths);
            (report, written.unwrap_or(0))
        }
        Err(e) => (report.failed(e), 0),
    }
}

fn set_outputs(report: &mut RecordingReport, paths: &OutputPaths) {
    report.output = Some(paths.media.display().to_string());
    report.manifest = Some(paths.manifest.display().to_string());
}

/// Validates and stitches every selected recording of `archive` into
/// `out_dir`; the report lists every recording with its status.
pub fn run_batch(
    archive: &Archive,
    out_dir: &Path,
    options: &BatchOptions,
    observer: &dyn Observer<Progress>,
) -> Report {
    let recordings = selected(archive, options.shard);
    let total = recordings.len();
    observer.observe(&Progress::Started {
        recordings: total,
        input_bytes: recordings.iter().map(|r| input_bytes(r)).sum(),
    });
    let jobs = options.jobs.max(1);
    let stitch_jobs = options.stitch_jobs.max(1);
    let stitcher = Stitcher::new(options.stitch.clone())
        .with_cancel(options.cancel.clone())
        .with_storage(options.storage.clone());
    let done = AtomicUsize::new(0);
    let finish = |i: usize, rec: &Recording, report: RecordingReport, bytes: u64| {
        let n = done.fetch_add(1, Ordering::SeqCst) + 1;
        observer.observe(&Progress::finished(rec, report.status, bytes, n, total));
        (i, report)
    };

    let (to_validate, validate_rx) = bounded::<(usize, &Recording)>(jobs * 2);
    let (to_stitch, stitch_rx) = bounded(stitch_jobs);
    let (to_collect, results) = bounded::<(usize, RecordingReport)>(jobs * 2);
    let mut reports: Vec<Option<RecordingReport>> = vec![None; total];
    std::thread::scope(|s| {
        s.spawn(move || {
            for item in recordings.into_iter().enumerate() {
                if to_validate.send(item).is_err() {
                    break;
                }
            }
            // (Cancelled recordings still pass through, to be reported as such.)
        });
        for _ in 0..jobs {
            let (rx, to_stitch, to_collect) = (validate_rx.clone(), to_stitch.clone(), to_collect.clone());
            let finish = &finish;
            s.spawn(move || {
                for (i, rec) in rx {
                    let sent = match validate_stage(rec, out_dir, options) {
                        (Some(validated), report) => to_stitch.send((i, rec, validated, report)).is_ok(),
                        (None, report) => to_collect.send(finish(i, rec, report, 0)).is_ok(),
                    };
                    if !sent {
                        break;
                    }
                }
            });
        }
        drop((to_stitch, validate_rx));
        for _ in 0..stitch_jobs {
            let (rx, to_collect) = (stitch_rx.clone(), to_collect.clone());
            let (stitcher, finish) = (&stitcher, &finish);
            s.spawn(move || {
                for (i, rec, mut validated, report) in rx {
                    let rec: &Recording = rec;
                    observer.observe(&Progress::stitching(rec));
                    let (report, bytes) = stitch_stage(stitcher, &mut validated, report, out_dir, options);
                    if to_collect.send(finish(i, rec, report, bytes)).is_err() {
                        break;
                    }
                }
            });
        }
        drop((stitch_rx, to_collect));
        for (i, report) in results {
            reports[i] = Some(report);
        }
    });
    batch_report(archive, reports, options.shard)
}

/// The batch's report: the recordings' reports in order, and the orphans
/// this shard reports.
fn batch_report(archive: &Archive, reports: Vec<Option<RecordingReport>>, shard: Option<Shard>) -> Report {
    let mut report = Report::new(archive, reports.into_iter().flatten().collect());
    if let Some(shard) = shard {
        report.orphans.retain(|o| shard.reports_orphan(&o.path));
    }
    report
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_shard_is_only_made_with_its_index_below_its_count() {
        assert_eq!(Shard::new(0, 0), None);
        assert_eq!(Shard::new(3, 3), None);
        assert_eq!(Shard::new(2, 3).map(|s| (s.index(), s.count())), Some((2, 3)));
        assert!("0/0".parse::<Shard>().is_err());
        assert!("1/0".parse::<Shard>().is_err());
        assert_eq!("1/2".parse::<Shard>(), Ok(Shard::new(1, 2).unwrap()));
    }

    use super::*;
    use crate::input::archive::ScanOptions;
    use crate::observe::Quiet;

    /// The key prefix that makes a recording panic in a stage (tests only).
    const FORCE_PANIC: &str = "test-force-panic-in-";

    /// Panics when `rec`'s key asks for a panic in `stage`.
    pub(super) fn maybe_panic(rec: &Recording, stage: &str) {
        if rec.key.strip_prefix(FORCE_PANIC) == Some(stage) {
            panic!("forced panic in {stage} of {}", rec.key);
        }
    }

    #[test]
    fn a_cancelled_batch_reports_every_recording_cancelled_and_writes_nothing() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cases/good_flat_two_recordings");
        let archive = Archive::scan(&root, &ScanOptions::default()).unwrap();
        let out = std::env::temp_dir().join(format!("recstitch-cancel-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let options = BatchOptions::default();
        options.cancel.cancel();
        let report = run_batch(&archive, &out, &options, &Quiet);
        assert_eq!(report.recordings.len(), 2);
        for r in &report.recordings {
            assert_eq!(r.status, Status::Cancelled);
            assert!(matches!(r.cause.as_deref(), Some(Error::Cancelled)));
            assert_eq!(r.error.as_deref(), Some("cancelled"));
        }
        assert!(!out.exists(), "a cancelled batch wrote something");
    }

    #[test]
    fn the_shards_together_list_each_orphan_once() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cases/orphans");
        let archive = Archive::scan(&root, &ScanOptions::default()).unwrap();
        assert!(archive.orphans.len() >= 3, "{:?}", archive.orphans);
        let out = std::env::temp_dir().join(format!("recstitch-shard-orphans-{}", std::process::id()));
        let mut listed = Vec::new();
        for index in 0..3 {
            let options = BatchOptions {
                shard: Shard::new(index, 3),
                ..BatchOptions::default()
            };
            options.cancel.cancel(); // the orphans only: nothing is written
            listed.extend(run_batch(&archive, &out, &options, &Quiet).orphans);
        }
        listed.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(listed, archive.orphans);
        assert!(!out.exists());
    }

    #[test]
    fn a_cancelled_stitch_stops_and_leaves_nothing_under_a_final_name() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cases/good");
        let archive = Archive::scan(&root, &ScanOptions::default()).unwrap();
        let validated = archive.recordings[0].validate(&ValidateOptions::default());
        let out = std::env::temp_dir().join(format!("recstitch-cancel-stitch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let cancel = Cancel::new();
        cancel.cancel();
        let e = Stitcher::new(StitchOptions::default())
            .with_cancel(cancel)
            .stitch(&validated, &out)
            .unwrap_err();
        assert!(matches!(e, Error::Cancelled), "{e}");
        let left = validated.recording.output_paths(&out);
        assert!(!left.media.exists() && !left.manifest.exists() && !left.lock().exists());
        std::fs::remove_dir_all(&out).unwrap();
    }

    #[test]
    fn a_panic_in_one_recording_fails_it_and_the_batch_goes_on() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cases/good");
        let mut archive = Archive::scan(&root, &ScanOptions::default()).unwrap();
        let good = archive.recordings[0].clone();
        for stage in ["validate", "stitch"] {
            let mut bad = good.clone();
            bad.key = format!("{FORCE_PANIC}{stage}");
            bad.call_id = format!("call-{stage}");
            archive.recordings.push(bad);
        }
        let out = std::env::temp_dir().join(format!("recstitch-panic-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&out);
        let report = run_batch(&archive, &out, &BatchOptions::default(), &Quiet);
        let by_key = |k: &str| report.recordings.iter().find(|r| r.recording_key == k).unwrap();
        assert_eq!(by_key(&good.key).status, Status::Stitched);
        for stage in ["validate", "stitch"] {
            let r = by_key(&format!("{FORCE_PANIC}{stage}"));
            assert_eq!(r.status, Status::Failed, "{stage}");
            let error = r.error.as_deref().unwrap();
            assert!(error.starts_with("internal error (a bug in recstitch"), "{error}");
            assert!(
                error.ends_with(&format!("forced panic in {stage} of {FORCE_PANIC}{stage}")),
                "{error}"
            );
        }
        assert!(!report.all_good());
        // Nothing of the panicked stitch is left under a final name, nor its lock.
        let dir = out.join("call-stitch");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{left:?}");
        std::fs::remove_dir_all(&out).unwrap();
    }
}
