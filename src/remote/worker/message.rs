//! What a queue message holds: one event as Event Grid puts it on a
//! Storage Queue — base64-encoded JSON (current deliveries) or plain JSON
//! (some older ones), in the Event Grid or the CloudEvents 1.0 schema.
//! Every message is hostile until parsed: a message that is not one event
//! is an error (left to reappear, then set aside as poison), never a panic.

use std::path::Path;

use base64::Engine;
use serde_json::Value;

use crate::input::metadata::{self, CompletionEvent};
use crate::limits::Limits;

/// What one event asks of the worker.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// A recording's completion event (`RecordingFileStatusUpdated`): its chunks to archive.
    Completion(Box<CompletionEvent>),
    /// Any other event (the subscription validation event, other events
    /// of the resource): nothing to do; why, for the log.
    Other {
        /// Its type (`eventType` or `type`).
        event_type: String,
        /// Why nothing is done.
        note: String,
    },
}

/// Why a message is not one event the worker can act on (it is left to
/// reappear, then set aside as poison).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// Longer than a JSON document may be ([`Limits::max_json_bytes`]).
    #[error("{bytes} bytes: more than the {max} bytes a JSON document may have")]
    TooLarge {
        /// The text's length.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// Neither JSON nor base64.
    #[error("neither JSON nor base64-encoded JSON")]
    NotBase64,
    /// Text that looks like JSON but does not parse.
    #[error("not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// Base64 whose bytes are not JSON.
    #[error("base64 of something that is not JSON: {0}")]
    Base64NotJson(#[source] serde_json::Error),
    /// An array of more (or fewer) than one event.
    #[error("an array of {0} events (a queue subscription puts one event per message)")]
    Array(usize),
    /// JSON that is not an object.
    #[error("not an event (expected a JSON object)")]
    NotAnObject,
    /// An object without `eventType` or `type`.
    #[error("not an event: no eventType or type")]
    NoEventType,
    /// A completion event that does not parse: the library's error.
    #[error(transparent)]
    Completion(#[from] crate::Error),
    /// A completion event that lists no chunk.
    #[error("a completion event that lists no chunk")]
    NoChunk,
}

/// The one event in a message's text: plain JSON, or base64 of JSON; an
/// array of exactly one event is accepted too. `Err` says why the text is
/// not one event.
pub fn event_of(text: &str, limits: &Limits) -> Result<Value, MessageError> {
    let text = text.trim();
    let max = usize::try_from(limits.max_json_bytes).unwrap_or(usize::MAX);
    if text.len() > max {
        return Err(MessageError::TooLarge { bytes: text.len(), max });
    }
    let bytes = if looks_like_json(text) {
        text.as_bytes().to_vec()
    } else {
        let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact.as_bytes())
            .map_err(|_| MessageError::NotBase64)?
    };
    let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        if looks_like_json(text) {
            MessageError::Json(e)
        } else {
            MessageError::Base64NotJson(e)
        }
    })?;
    match value {
        Value::Object(_) => Ok(value),
        Value::Array(mut items) if items.len() == 1 => Ok(items.remove(0)),
        Value::Array(items) => Err(MessageError::Array(items.len())),
        _ => Err(MessageError::NotAnObject),
    }
}

/// Whether a message's text is JSON (an object or an array) rather than base64.
fn looks_like_json(text: &str) -> bool {
    // 0x7B: an opening brace.
    matches!(text.bytes().next(), Some(0x7B | b'['))
}

/// What `event` asks for. `Err` for an object that is not an event at all
/// (no `eventType` or `type`) or a completion event that cannot be parsed.
pub fn classify(event: &Value, limits: &Limits) -> Result<EventKind, MessageError> {
    if !event.is_object() {
        return Err(MessageError::NotAnObject);
    }
    if metadata::is_completion_event(event) {
        let parsed = metadata::parse_completion_event(event, Path::new("message"), None, limits)?;
        if parsed.chunks.is_empty() {
            return Err(MessageError::NoChunk);
        }
        return Ok(EventKind::Completion(Box::new(parsed)));
    }
    let Some(event_type) = metadata::event_type(event) else {
        return Err(MessageError::NoEventType);
    };
    let note = if event_type.ends_with("SubscriptionValidationEvent") {
        "a subscription validation event: nothing to do (a queue endpoint needs no handshake)".to_string()
    } else {
        format!("an event of type {event_type}, not a recording's completion event: nothing to do")
    };
    Ok(EventKind::Other {
        event_type: event_type.chars().take(200).collect(),
        note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completion() -> Value {
        serde_json::json!({
            "id": "e1",
            "subject": "/recording/call/c1/serverCallId/s1/recordingId/r1",
            "eventType": "Microsoft.Communication.RecordingFileStatusUpdated",
            "eventTime": "2024-01-01T00:00:00Z",
            "data": {"recordingStorageInfo": {"recordingChunks": [
                {"documentId": "d0", "index": 0, "endReason": "SessionEnded"}
            ]}}
        })
    }

    #[test]
    fn plain_base64_and_arrays_of_one() {
        let limits = Limits::default();
        let text = completion().to_string();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&text);
        assert_eq!(event_of(&text, &limits).unwrap(), completion());
        assert_eq!(event_of(&b64, &limits).unwrap(), completion());
        assert_eq!(event_of(&format!("[{text}]"), &limits).unwrap(), completion());
        assert_eq!(
            event_of(&format!("[{text},{text}]"), &limits).unwrap_err().to_string(),
            "an array of 2 events (a queue subscription puts one event per message)"
        );
        assert!(matches!(
            classify(&completion(), &limits).unwrap(),
            EventKind::Completion(e) if e.recording_id.as_deref() == Some("r1")
        ));
    }

    #[test]
    fn hostile_messages_are_errors() {
        let limits = Limits::default();
        let deep = "[".repeat(100_000);
        for text in [
            "not json at all",
            "",
            "42",
            "\"a string\"",
            "{",
            deep.as_str(),
            "e30", // base64 of "{}" without padding
            "////",
        ] {
            let r = event_of(text, &limits).and_then(|v| classify(&v, &limits));
            assert!(r.is_err(), "{text:.20}: {r:?}");
        }
        let no_chunks = serde_json::json!({"eventType": "Microsoft.Communication.RecordingFileStatusUpdated",
            "subject": "/recording/call/c/serverCallId/s/recordingId/r", "data": {"recordingStorageInfo": {"recordingChunks": []}}});
        assert!(classify(&no_chunks, &limits).is_err());
    }

    #[test]
    fn other_events_are_noted() {
        let limits = Limits::default();
        let validation = serde_json::json!({"id": "v", "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "data": {"validationCode": "x"}});
        let EventKind::Other { note, .. } = classify(&validation, &limits).unwrap() else {
            panic!("not a note")
        };
        assert!(note.contains("validation"));
        let cloud = serde_json::json!({"specversion": "1.0", "type": "Microsoft.Communication.CallEnded", "id": "x"});
        assert!(matches!(classify(&cloud, &limits).unwrap(), EventKind::Other { .. }));
    }
}
