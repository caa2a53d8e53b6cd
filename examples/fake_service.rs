//! A stand-in for the recording service, to try `recstitch fetch` without
//! one: it serves the recordings of an archive folder over HTTP on
//! 127.0.0.1, checking every request's HMAC-SHA256 signature as the
//! service does (the same server the fetch tests use,
//! `tests/util/service.rs`), and writes a completion event per recording
//! and the connection string to use.
//!
//! ```sh
//! cargo run --example fake_service -- ARCHIVE [FOLDER]
//! ```
//!
//! FOLDER (default `target/fake-service`) receives `events/<n>.json`, one
//! completion event per recording of ARCHIVE whose chunks all have media,
//! with locations on the fake storage host, and `env`, shell lines that
//! export `RECSTITCH_CONNECTION_STRING` and `RECSTITCH_TRUSTED_HOSTS` (the
//! fake storage host). The server runs until it is
//! stopped (Ctrl-C). README's "Try fetch locally" shows a whole session.

#[allow(dead_code)]
#[path = "../tests/util/service.rs"]
mod service;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use recstitch::{Archive, Recording, ScanOptions};
use service::{Media, ServedChunk, Service, KEY_B64};

/// Serves the chunks of `rec` and returns its completion event, or `None`
/// when a chunk lacks its media or metadata.
fn serve(service: &Service, rec: &Recording, n: usize) -> std::io::Result<Option<serde_json::Value>> {
    let mut chunks = Vec::new();
    for (i, c) in rec.chunks.iter().enumerate() {
        let (Some(media), Some(index)) = (&c.media_path, c.index()) else {
            return Ok(None);
        };
        let bytes = std::fs::read(media)?;
        let metadata = std::fs::read(&c.metadata_path)?;
        service.add(&c.document_id, Media::Bytes(Arc::new(bytes)), metadata);
        chunks.push(ServedChunk {
            document_id: c.document_id.clone(),
            index,
            end_reason: if i + 1 == rec.chunks.len() {
                "SessionEnded"
            } else {
                "ChunkMaximumSizeExceeded"
            },
        });
    }
    let recording_id = rec.event.as_ref().and_then(|e| e.recording_id.clone());
    Ok(Some(service::event(
        &format!("fake-event-{n}"),
        &rec.call_id,
        recording_id.as_deref().unwrap_or(&rec.key),
        &chunks,
        Some(&service.storage),
        &service::now_rfc3339(),
    )))
}

/// Writes the events and the `env` file into `folder`; how many events.
fn write_session(service: &Service, archive: &Archive, folder: &Path) -> Result<usize, String> {
    let events = folder.join("events");
    std::fs::create_dir_all(&events).map_err(|e| format!("{}: {e}", events.display()))?;
    let mut n = 0;
    for rec in &archive.recordings {
        match serve(service, rec, n) {
            Ok(Some(event)) => {
                let path = events.join(format!("{n}.json"));
                let json = serde_json::to_vec_pretty(&event).map_err(|e| e.to_string())?;
                std::fs::write(&path, json).map_err(|e| format!("{}: {e}", path.display()))?;
                n += 1;
            }
            Ok(None) => eprintln!(
                "fake_service: recording {} of call {} is not served: a chunk lacks its media",
                rec.key, rec.call_id
            ),
            Err(e) => return Err(format!("recording {}: {e}", rec.key)),
        }
    }
    let env = folder.join("env");
    // Its storage host is another port of 127.0.0.1: trusted by name, as an
    // operator trusts their own storage hosts.
    let line = format!(
        "export RECSTITCH_CONNECTION_STRING='{}'\nexport RECSTITCH_TRUSTED_HOSTS='{}'\n",
        service.connection_string(KEY_B64),
        service.storage_authority()
    );
    std::fs::write(&env, line).map_err(|e| format!("{}: {e}", env.display()))?;
    Ok(n)
}

fn main() -> ExitCode {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let (archive, folder) = match args.as_slice() {
        [a] => (a.clone(), PathBuf::from("target/fake-service")),
        [a, f] => (a.clone(), f.clone()),
        _ => {
            eprintln!("usage: fake_service ARCHIVE [FOLDER]");
            return ExitCode::from(2);
        }
    };
    let scanned = match Archive::scan(&archive, &ScanOptions::default()) {
        Ok(scanned) => scanned,
        Err(e) => {
            eprintln!("fake_service: {e}");
            return ExitCode::from(2);
        }
    };
    let service = Service::start();
    let n = match write_session(&service, &scanned, &folder) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("fake_service: {e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "serving {n} recording(s) of {}: endpoint {}, storage {}",
        archive.display(),
        service.endpoint,
        service.storage
    );
    println!("events: {}", folder.join("events").display());
    println!("credentials: . {}", folder.join("env").display());
    println!("stop with Ctrl-C");
    loop {
        std::thread::park();
    }
}
