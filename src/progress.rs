//! Progress display for the command line: a bar on a terminal, or NDJSON
//! events for orchestrators.

use std::io::Write;
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use recstitch::pipeline::{Observer, Progress};

/// NDJSON progress events on stderr, one object per line.
pub struct Ndjson;

impl Observer for Ndjson {
    fn progress(&self, event: &Progress) {
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

impl Observer for Bar {
    fn progress(&self, event: &Progress) {
        match event {
            Progress::Started { recordings, .. } => self.bar.set_length(*recordings as u64),
            Progress::Stitching { recording_key, .. } => {
                let bytes = *self.bytes.lock().unwrap_or_else(|e| e.into_inner());
                self.bar
                    .set_message(message(bytes, self.bar.elapsed().as_secs_f64(), recording_key));
            }
            Progress::Finished {
                bytes_written,
                recording_key,
                ..
            } => {
                let mut bytes = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
                *bytes += bytes_written;
                self.bar.inc(1);
                self.bar
                    .set_message(message(*bytes, self.bar.elapsed().as_secs_f64(), recording_key));
            }
        }
    }
}

/// The recording first (so that a narrow terminal still shows which one),
/// then what was written and how fast.
fn message(bytes: u64, seconds: f64, current: &str) -> String {
    let mib = bytes as f64 / (1 << 20) as f64;
    let rate = if seconds > 0.0 { mib / seconds } else { 0.0 };
    let mut name: String = current.chars().take(20).collect();
    if current.chars().count() > 20 {
        name.push('…');
    }
    format!("{name} {mib:.1} MiB {rate:.1} MiB/s")
}
