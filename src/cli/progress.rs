//! Progress display for the command line: a bar on a terminal, or NDJSON
//! events for orchestrators.

use std::io::Write;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use recstitch::batch::Progress;
use recstitch::observe::Observer;
use recstitch::remote::fetch::FetchProgress;

/// NDJSON progress events on stderr, one object per line.
pub struct Ndjson;

impl Observer<Progress> for Ndjson {
    fn observe(&self, event: &Progress) {
        if let Ok(line) = serde_json::to_string(event) {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{line}");
        }
    }
}

/// A progress bar: recordings done of total, bytes written, rate, ETA and
/// the recording being stitched.
pub struct Bar {
    bar: ProgressBar,
    bytes: Mutex<u64>,
}

impl Bar {
    pub fn new() -> Self {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{elapsed} [{bar:20}] {pos}/{len} eta {eta} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        Bar {
            bar,
            bytes: Mutex::new(0),
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Observer<Progress> for Bar {
    fn observe(&self, event: &Progress) {
        match event {
            Progress::Started { recordings, .. } => self.bar.set_length(*recordings as u64),
            Progress::Stitching { name, .. } => {
                let bytes = *self.bytes.lock().unwrap_or_else(|e| e.into_inner());
                self.bar
                    .set_message(message(bytes, self.bar.elapsed().as_secs_f64(), name));
            }
            Progress::Finished {
                bytes_written, name, ..
            } => {
                let mut bytes = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
                *bytes += bytes_written;
                self.bar.inc(1);
                self.bar
                    .set_message(message(*bytes, self.bar.elapsed().as_secs_f64(), name));
            }
        }
    }
}

/// The recording first (its output name: start time and a short hash, so
/// that a narrow terminal still shows which one), then what was written
/// and how fast.
fn message(bytes: u64, seconds: f64, current: &str) -> String {
    let mib = bytes as f64 / (1 << 20) as f64;
    let rate = if seconds > 0.0 { mib / seconds } else { 0.0 };
    let mut name: String = current.chars().take(32).collect();
    if current.chars().count() > 32 {
        name.push('…');
    }
    format!("{name} {mib:.1} MiB {rate:.1} MiB/s")
}

/// NDJSON fetch events on stderr; byte counts are summed per chunk and
/// written at most twice a second per chunk.
#[derive(Default)]
pub struct FetchNdjson {
    pending: Mutex<std::collections::HashMap<String, (u64, std::time::Instant)>>,
}

impl Observer<FetchProgress> for FetchNdjson {
    fn observe(&self, event: &FetchProgress) {
        let line = match event {
            FetchProgress::Bytes { document_id, bytes } => {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                let now = std::time::Instant::now();
                let entry = pending.entry(document_id.clone()).or_insert((0, now));
                entry.0 += bytes;
                if now.duration_since(entry.1) < std::time::Duration::from_millis(500) {
                    return;
                }
                let summed = FetchProgress::Bytes {
                    document_id: document_id.clone(),
                    bytes: entry.0,
                };
                *entry = (0, now);
                serde_json::to_string(&summed)
            }
            FetchProgress::ChunkFinished { document_id, .. } => {
                let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                if let Some((bytes, _)) = pending.remove(document_id).filter(|(b, _)| *b > 0) {
                    let flushed = FetchProgress::Bytes {
                        document_id: document_id.clone(),
                        bytes,
                    };
                    if let Ok(line) = serde_json::to_string(&flushed) {
                        let _ = writeln!(std::io::stderr().lock(), "{line}");
                    }
                }
                serde_json::to_string(event)
            }
            other => serde_json::to_string(other),
        };
        if let Ok(line) = line {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    }
}

/// A fetch progress bar: bytes received of the sizes known so far, rate,
/// ETA, and chunks done of all.
pub struct FetchBar {
    bar: ProgressBar,
    chunks: Mutex<(usize, usize)>,
}

impl FetchBar {
    pub fn new() -> Self {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{elapsed} [{bar:20}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        FetchBar {
            bar,
            chunks: Mutex::new((0, 0)),
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    fn show_chunks(&self) {
        let (done, all) = *self.chunks.lock().unwrap_or_else(|e| e.into_inner());
        self.bar.set_message(format!("{done}/{all} chunks"));
    }
}

impl Observer<FetchProgress> for FetchBar {
    fn observe(&self, event: &FetchProgress) {
        match event {
            FetchProgress::Started { chunks, .. } => {
                self.chunks.lock().unwrap_or_else(|e| e.into_inner()).1 = *chunks;
                self.show_chunks();
            }
            FetchProgress::ChunkStarted { bytes, already, .. } => {
                self.bar.inc_length(*bytes);
                self.bar.inc(*already);
            }
            FetchProgress::Bytes { bytes, .. } => self.bar.inc(*bytes),
            FetchProgress::ChunkFinished { .. } => {
                self.chunks.lock().unwrap_or_else(|e| e.into_inner()).0 += 1;
                self.show_chunks();
            }
            FetchProgress::Warning { message } => self.bar.println(format!("warning: {message}")),
            FetchProgress::Retrying {
                document_id,
                delay_ms,
                reason,
                ..
            } => self
                .bar
                .println(format!("{document_id}: retrying in {delay_ms} ms: {reason}")),
            FetchProgress::Finished { .. } => {}
        }
    }
}
