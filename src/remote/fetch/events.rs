//! The events to fetch, as delivered: Event Grid schema (one object or an
//! array), CloudEvents 1.0, or a folder of such files. Events of other
//! types (`Microsoft.EventGrid.SubscriptionValidationEvent`, …) are set
//! aside with a note.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::input::metadata::{self, CompletionEvent};
use crate::io::{read_bounded, read_regular};
use crate::limits::Limits;

/// One completion event to fetch.
#[derive(Debug, Clone)]
pub(crate) struct Incoming {
    /// The file it came from.
    pub source: PathBuf,
    /// Its place in the file's array, if it was in one.
    pub position: Option<usize>,
    /// The event as delivered (saved beside the chunks).
    pub raw: Value,
    /// The event, parsed.
    pub event: CompletionEvent,
}

/// An event that is not fetched, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkippedEvent {
    /// The file it came from.
    pub source: PathBuf,
    /// Its place in the file's array, if it was in one.
    pub position: Option<usize>,
    /// Its id.
    pub id: Option<String>,
    /// Its type (`eventType` or `type`).
    pub event_type: Option<String>,
    /// Why it is not fetched.
    pub reason: String,
}

/// An event that could not be fetched at all: its file cannot be read or
/// parsed, or the event cannot be laid out in the archive. The other
/// events are fetched.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedEvent {
    /// The file it came from.
    pub source: PathBuf,
    /// Its place in the file's array, if it was in one.
    pub position: Option<usize>,
    /// Its id, when it could be read.
    pub id: Option<String>,
    /// Why.
    pub error: String,
}

/// What the inputs hold: the completion events to fetch (oldest first,
/// each once), the events set aside, and the inputs that failed.
pub(crate) struct Inputs {
    pub events: Vec<Incoming>,
    pub skipped: Vec<SkippedEvent>,
    pub failed: Vec<FailedEvent>,
}

/// The completion events of `inputs` (files or folders), oldest first, each
/// once; the others set aside. A file or an event that cannot be read or
/// parsed is a [`FailedEvent`]; the others are still fetched. `Err` only
/// for a folder without any event file (a wrong argument).
pub(crate) fn read_inputs(inputs: &[PathBuf], limits: &Limits) -> Result<Inputs> {
    let mut events = Vec::new();
    let mut skipped = Vec::new();
    let mut failed = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut files: Vec<PathBuf> = walkdir::WalkDir::new(input)
                .follow_links(false)
                .sort_by_file_name()
                .into_iter()
                .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'))
                .filter_map(std::result::Result::ok)
                .filter(|e| e.file_type().is_file())
                .map(walkdir::DirEntry::into_path)
                .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case("json")))
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(Error::Usage(format!(
                    "{}: no event file (*.json) in the folder",
                    input.display()
                )));
            }
            for file in files {
                // Found in a folder: never through a link, never a FIFO.
                read_file(&file, false, limits, &mut events, &mut skipped, &mut failed);
            }
        } else {
            // Named by the operator: a link is followed, a FIFO is not waited for.
            read_file(input, true, limits, &mut events, &mut skipped, &mut failed);
        }
    }
    // The same event delivered twice (Event Grid delivers at least once).
    let mut unique: Vec<Incoming> = Vec::with_capacity(events.len());
    for e in events {
        if let Some(first) = unique.iter().find(|u| u.event == e.event) {
            skipped.push(SkippedEvent {
                source: e.source.clone(),
                position: None,
                id: e.event.id.clone(),
                event_type: metadata::event_type(&e.raw).map(str::to_owned),
                reason: format!("the same event as in {} (delivered twice)", first.source.display()),
            });
        } else {
            unique.push(e);
        }
    }
    // Oldest first: their chunks expire first. Events without a time first of all.
    unique.sort_by_key(|e| e.event.event_time.or(e.event.recording_start));
    Ok(Inputs {
        events: unique,
        skipped,
        failed,
    })
}

fn read_file(
    path: &Path,
    follow: bool,
    limits: &Limits,
    events: &mut Vec<Incoming>,
    skipped: &mut Vec<SkippedEvent>,
    failed: &mut Vec<FailedEvent>,
) {
    let fail = |position: Option<usize>, id: Option<String>, e: Error| FailedEvent {
        source: path.to_path_buf(),
        position,
        id,
        error: e.to_string(),
    };
    let read = if follow {
        read_bounded(path, limits.max_json_bytes)
    } else {
        read_regular(path, limits.max_json_bytes)
    };
    let value = match read.and_then(|bytes| metadata::parse_json(&bytes, path)) {
        Ok(v) => v,
        Err(e) => return failed.push(fail(None, None, e)),
    };
    let items: Vec<(Option<usize>, Value)> = match value {
        Value::Array(items) => items.into_iter().enumerate().map(|(i, v)| (Some(i), v)).collect(),
        other => vec![(None, other)],
    };
    for (position, item) in items {
        let id = item.get("id").and_then(Value::as_str).map(str::to_owned);
        if !item.is_object() {
            failed.push(fail(
                position,
                None,
                Error::Invalid {
                    path: path.to_path_buf(),
                    context: position.map(|i| format!("[{i}]")).unwrap_or_default(),
                    message: "not an event (expected a JSON object)".into(),
                },
            ));
            continue;
        }
        if metadata::is_completion_event(&item) {
            let event = match metadata::parse_completion_event(&item, path, position, limits) {
                Ok(e) => e,
                Err(e) => {
                    failed.push(fail(position, id, e));
                    continue;
                }
            };
            events.push(Incoming {
                source: path.to_path_buf(),
                position,
                raw: item,
                event,
            });
        } else {
            let event_type = metadata::event_type(&item).map(str::to_owned);
            let reason = match event_type.as_deref() {
                Some(t) if t.ends_with("SubscriptionValidationEvent") => {
                    "a subscription validation event (answered by the webhook, not fetched)".to_string()
                }
                Some(t) => format!("an event of type {t}, not a recording's completion event"),
                None => "not an event: no eventType or type".to_string(),
            };
            skipped.push(SkippedEvent {
                source: path.to_path_buf(),
                position,
                id: item.get("id").and_then(Value::as_str).map(str::to_owned),
                event_type,
                reason,
            });
        }
    }
}
