//! An archival worker built on the library alone: given the completion
//! event a recording service sent, it downloads the recording's chunks
//! into a folder, validates the recording and writes the stitched MP4, its
//! manifest and its chapters.
//!
//! ```sh
//! RECSTITCH_CONNECTION_STRING='endpoint=https://…/;accesskey=…' \
//!   cargo run --example archival_worker -- EVENT.json DOWNLOAD_FOLDER OUT_FOLDER
//! ```
//!
//! With credentials in the environment (`RECSTITCH_CONNECTION_STRING`, or
//! `RECSTITCH_ACCESS_TOKEN`) it fetches the event's chunks into
//! DOWNLOAD_FOLDER first (resuming what an earlier run left, skipping what
//! is complete); without, it works on the chunks already there.
//!
//! Exit code 0 when every recording the event announces was stitched, 1 when
//! one was not (its findings are printed) or a chunk could not be fetched,
//! 2 on bad arguments.

use std::path::PathBuf;
use std::process::ExitCode;

use recstitch::remote::fetch::{Credentials, FetchOptions, Fetcher, TrustedHosts};
use recstitch::{Archive, ScanOptions, Severity, StitchOptions, Stitcher, ValidateOptions};

/// Downloads the event's chunks into `folder`; `false` when one could not be fetched.
fn fetch(event: PathBuf, folder: &std::path::Path) -> Result<bool, recstitch::Error> {
    // Credentials go to the endpoint, the service's storage hosts and the
    // hosts in RECSTITCH_TRUSTED_HOSTS only.
    let mut options = FetchOptions::default();
    options.trusted_hosts = TrustedHosts::from_env()?;
    let fetcher = Fetcher::new(Credentials::from_env()?, options);
    let report = fetcher.fetch(&[event], folder)?;
    for w in &report.warnings {
        eprintln!("archival_worker: {w}");
    }
    for c in &report.chunks {
        match &c.error {
            Some(e) => eprintln!("archival_worker: chunk {} not fetched: {e}", c.document_id),
            None => println!(
                "{}: {:?}, {} bytes received",
                c.document_id, c.status, c.bytes_transferred
            ),
        }
    }
    Ok(report.all_fetched())
}

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [event, folder, out] = args.as_slice() else {
        eprintln!("usage: archival_worker EVENT.json DOWNLOAD_FOLDER OUT_FOLDER");
        return ExitCode::from(2);
    };
    let have_credentials = ["RECSTITCH_CONNECTION_STRING", "RECSTITCH_ACCESS_TOKEN"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
    if have_credentials {
        match fetch(event.clone(), folder) {
            Ok(true) => {}
            Ok(false) => return ExitCode::from(1),
            Err(e) => {
                eprintln!("archival_worker: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        println!(
            "no credentials in the environment: using the chunks already in {}",
            folder.display()
        );
    }
    let mut options = ScanOptions::default();
    options.events = vec![event.clone()];
    let archive = match Archive::scan(folder, &options) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("archival_worker: {e}");
            return ExitCode::from(2);
        }
    };
    let stitcher = Stitcher::new(StitchOptions::default());
    let mut all_stitched = true;
    // Only the recordings the event announces: the event is the authority.
    for recording in archive.recordings.iter().filter(|r| r.event.is_some()) {
        let checked = recording.validate(&ValidateOptions::default());
        for f in &checked.findings {
            let severity = if f.severity == Severity::Error {
                "error"
            } else {
                "warning"
            };
            println!("{} {severity} {}: {}", recording.key, f.code, f.message);
        }
        if !checked.is_valid() {
            all_stitched = false;
            continue;
        }
        // Given up to the stitch: the chunks' sample tables go once it has planned.
        match stitcher.stitch_owned(checked, out) {
            Ok(manifest) => {
                let files = manifest.files.expect("a stitch says where it wrote");
                // What a later step of the worker would do: read the manifest back.
                let written: recstitch::Manifest = match std::fs::read(&files.manifest)
                    .map_err(|e| e.to_string())
                    .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
                {
                    Ok(m) => m,
                    Err(e) => {
                        eprintln!("{}: {}: {e}", recording.key, files.manifest.display());
                        return ExitCode::from(1);
                    }
                };
                println!(
                    "{}: stitched {} ({} bytes, {} ms, sha256 {}), manifest schema v{}",
                    recording.key,
                    files.media.display(),
                    written.output.bytes,
                    written.output.duration_ms,
                    written.output.sha256,
                    written.schema_version
                );
            }
            Err(e) => {
                all_stitched = false;
                eprintln!("{}: {e}", recording.key);
            }
        }
    }
    if all_stitched {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
