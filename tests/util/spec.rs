//! Archives generated from unstructured bytes: a recording's metadata and
//! completion-event *values* (indices, times, durations, pauses, sample
//! rates, sizes, duplicate and missing chunks) paired with the real chunks
//! of the `good` fixture, whole or mutated.
//!
//! Shared by the structure-aware fuzz target (`fuzz/fuzz_targets/pipeline.rs`,
//! which includes this file) and the property tests (`tests/properties.rs`,
//! which feed it seeded random bytes).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use arbitrary::{Arbitrary, Result, Unstructured};
use serde_json::{json, Value};

/// The `good` fixture recording: its three chunks and its event.
pub struct Fixture {
    /// Media bytes of chunks 0, 1, 2.
    pub media: Vec<Vec<u8>>,
    /// `(offset, length)` of each chunk's `moov` box.
    pub moov: Vec<(usize, usize)>,
    /// Metadata of chunks 0, 1, 2.
    pub metadata: Vec<Value>,
}

/// The folder of the `good` fixture recording.
pub fn good_dir(manifest_dir: &str) -> PathBuf {
    Path::new(manifest_dir).join("fixtures/cases/good/3c57992b-07bf-4387-a8bc-a13561e8650a")
}

/// The document ids of the good recording's chunks, by index.
pub const DOCS: [&str; 3] = [
    "0-eus-d11-293c5f93ea87298458e47ef52dda3bb9",
    "0-eus-d11-93febf7d8405595011fab94b54be8806",
    "0-eus-d11-9b5d9438ec5d9630fb8d71727c7f2ad8",
];

impl Fixture {
    /// Reads the fixture from the repository at `manifest_dir`.
    pub fn load(manifest_dir: &str) -> Fixture {
        let dir = good_dir(manifest_dir);
        let mut media = Vec::new();
        let mut moov = Vec::new();
        let mut metadata = Vec::new();
        for doc in DOCS {
            let bytes = std::fs::read(dir.join(format!("{doc}.mp4"))).expect("fixture media");
            moov.push(find_box(&bytes, b"moov").expect("fixture has a moov"));
            media.push(bytes);
            let text = std::fs::read_to_string(dir.join(format!("{doc}.json"))).expect("fixture metadata");
            metadata.push(serde_json::from_str(&text).expect("fixture metadata is JSON"));
        }
        Fixture { media, moov, metadata }
    }
}

/// `(offset, size)` of the first top-level box of `kind`.
fn find_box(bytes: &[u8], kind: &[u8; 4]) -> Option<(usize, usize)> {
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[at..at + 4].try_into().ok()?) as usize;
        if &bytes[at + 4..at + 8] == kind {
            return Some((at, size));
        }
        if size < 8 {
            return None;
        }
        at += size;
    }
    None
}

/// A whole generated archive.
#[derive(Debug)]
pub struct ArchiveSpec {
    /// One to six chunk files (a chunk may repeat another's document id).
    pub chunks: Vec<ChunkSpec>,
    /// A completion event, when there is one.
    pub event: Option<EventSpec>,
    /// Stitch with `--gaps wallclock` rather than `collapse`.
    pub wallclock: bool,
}

impl<'a> Arbitrary<'a> for ArchiveSpec {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        let n = u.int_in_range(1..=6)?;
        let chunks = (0..n).map(|_| ChunkSpec::arbitrary(u)).collect::<Result<_>>()?;
        Ok(ArchiveSpec {
            chunks,
            event: Option::<EventSpec>::arbitrary(u)?,
            wallclock: bool::arbitrary(u)?,
        })
    }
}

/// A chunk file: which fixture it starts from and what is changed.
#[derive(Debug, Arbitrary)]
pub struct ChunkSpec {
    /// The fixture chunk (0-2) whose media and metadata it starts from.
    pub base: u8,
    /// Its document id: the base's (0), or one of a few others.
    pub doc: u8,
    /// What the media file is.
    pub media: MediaSpec,
    /// `chunkIndex`.
    pub index: Number,
    /// `chunkStartTime`, moved by this many milliseconds.
    pub start_shift: Number,
    /// `chunkDuration`.
    pub duration: Number,
    /// `pauseResumeIntervals`: kept, or replaced by these (start offset from
    /// the chunk start, duration; milliseconds).
    pub pauses: Option<Vec<(Number, Number)>>,
    /// `audioConfiguration.sampleRate`.
    pub sample_rate: Number,
    /// `audioConfiguration.channels`.
    pub channels: Number,
    /// `videoConfiguration.framerate`.
    pub frame_rate: Number,
    /// `videoConfiguration.longerSideLength`.
    pub longer_side: Number,
    /// `recordingInfo.format`: mp4, mp3, wav or anything.
    pub format: Format,
    /// Its `callId`: the fixture's (0) or another.
    pub call: u8,
}

/// A value for a numeric field: mostly the fixture's own, else one of the
/// shapes that break arithmetic.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Number {
    /// The fixture's value.
    Keep,
    /// A small integer.
    Small(i16),
    /// Any integer.
    Int(i64),
    /// Any unsigned 32-bit integer (`u32::MAX` included).
    U32(u32),
    /// Any float (finite or not).
    Float(f64),
    /// The value as a string.
    Text(i32),
    /// `null`.
    Null,
}

impl Number {
    /// The JSON for this value, `keep` being the fixture's.
    fn json(self, keep: &Value) -> Value {
        match self {
            Number::Keep => keep.clone(),
            Number::Small(v) => json!(v),
            Number::Int(v) => json!(v),
            Number::U32(v) => json!(v),
            Number::Float(v) if v.is_finite() => json!(v),
            Number::Float(_) => json!("NaN"),
            Number::Text(v) => json!(v.to_string()),
            Number::Null => Value::Null,
        }
    }

    /// A shift in milliseconds.
    fn ms(self) -> i64 {
        match self {
            Number::Keep | Number::Null | Number::Text(_) => 0,
            Number::Small(v) => i64::from(v) * 100,
            Number::Int(v) => v,
            Number::U32(v) => i64::from(v),
            Number::Float(v) if v.is_finite() => v.clamp(-9e15, 9e15) as i64,
            Number::Float(_) => 0,
        }
    }
}

/// `recordingInfo.format`.
#[derive(Debug, Clone, Arbitrary)]
pub enum Format {
    /// As the fixture (mp4).
    Keep,
    /// `mp3`.
    Mp3,
    /// `wav`.
    Wav,
    /// Anything.
    Other(String),
}

/// What a chunk's media file holds.
#[derive(Debug, Arbitrary)]
pub enum MediaSpec {
    /// The base chunk's media, unchanged.
    Keep,
    /// No media file.
    Missing,
    /// Zero bytes.
    Empty,
    /// An HTML error page.
    Html,
    /// An MP3 file (an ID3 tag and a frame header).
    Mp3,
    /// The base chunk cut after this many bytes.
    Truncated(u32),
    /// The base chunk with bytes of its `moov` overwritten: (position in
    /// the `moov`, value).
    Mutated(Vec<(u16, u8)>),
}

/// A completion event.
#[derive(Debug, Arbitrary)]
pub struct EventSpec {
    /// Listed chunks: (document id choice as in [`ChunkSpec::doc`], index,
    /// whether its end reason ends the session).
    pub chunks: Vec<(u8, Number, bool)>,
    /// `recordingStartTime`, moved by this many milliseconds from chunk 0's start.
    pub start_shift: Number,
    /// `recordingDurationMs`.
    pub duration: Number,
}

fn doc_id(base: u8, doc: u8) -> String {
    match doc % 4 {
        0 => DOCS[usize::from(base % 3)].to_string(),
        n => format!("0-eus-d11-f0000000000000000000000000000{n:03}"),
    }
}

fn call_id(call: u8) -> &'static str {
    match call % 3 {
        0 | 1 => "3c57992b-07bf-4387-a8bc-a13561e8650a",
        _ => "b0000000-0000-4000-8000-000000000002",
    }
}

/// A wall-clock time `base` moved by `shift_ms`, as RFC 3339 (or a string
/// that is not a time when it is out of range).
fn shifted_time(base: &Value, shift_ms: i64) -> Value {
    let Some(text) = base.as_str() else { return base.clone() };
    let Some(t) = recstitch::WallClock::parse(text) else {
        return base.clone();
    };
    let ns = i128::from(t.0) + i128::from(shift_ms) * 1_000_000;
    match i64::try_from(ns) {
        Ok(ns) if ns >= 0 => json!(recstitch::WallClock(ns).to_rfc3339()),
        _ => json!(format!("{text} shifted by {shift_ms} ms")),
    }
}

/// Writes `spec` as an archive folder at `dir` (which must be empty).
pub fn write(spec: &ArchiveSpec, fixture: &Fixture, dir: &Path) {
    for c in &spec.chunks {
        let base = usize::from(c.base % 3);
        let doc = doc_id(c.base, c.doc);
        let mut m = fixture.metadata[base].clone();
        let md = m.as_object_mut().unwrap();
        md.insert("chunkDocumentId".into(), json!(doc));
        md.insert("callId".into(), json!(call_id(c.call)));
        let index = md["chunkIndex"].clone();
        md.insert("chunkIndex".into(), c.index.json(&index));
        let start = md["chunkStartTime"].clone();
        md.insert("chunkStartTime".into(), shifted_time(&start, c.start_shift.ms()));
        let duration = md["chunkDuration"].clone();
        md.insert("chunkDuration".into(), c.duration.json(&duration));
        if let Some(pauses) = &c.pauses {
            let list: Vec<Value> = pauses
                .iter()
                .take(4)
                .map(|(at, d)| json!({ "startTime": shifted_time(&start, at.ms()), "duration": d.json(&json!(1000)) }))
                .collect();
            md.insert("pauseResumeIntervals".into(), json!(list));
        }
        let info = &mut md["recordingInfo"];
        let audio = &mut info["audioConfiguration"];
        let rate = audio["sampleRate"].clone();
        audio["sampleRate"] = c.sample_rate.json(&rate);
        let channels = audio["channels"].clone();
        audio["channels"] = c.channels.json(&channels);
        let video = &mut info["videoConfiguration"];
        let fps = video["framerate"].clone();
        video["framerate"] = c.frame_rate.json(&fps);
        let longer = video["longerSideLength"].clone();
        video["longerSideLength"] = c.longer_side.json(&longer);
        match &c.format {
            Format::Keep => {}
            Format::Mp3 => info["format"] = json!("mp3"),
            Format::Wav => info["format"] = json!("wav"),
            Format::Other(s) => info["format"] = json!(s),
        }
        // Two chunk files with one document id go to two folders.
        let folder = dir.join(format!("c{}", dir_count(dir)));
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(
            folder.join(format!("{doc}.json")),
            serde_json::to_vec_pretty(&m).unwrap(),
        )
        .unwrap();
        let media = folder.join(format!("{doc}.mp4"));
        let original = &fixture.media[base];
        match &c.media {
            MediaSpec::Keep => std::fs::write(&media, original).unwrap(),
            MediaSpec::Missing => {}
            MediaSpec::Empty => std::fs::write(&media, b"").unwrap(),
            MediaSpec::Html => std::fs::write(&media, b"<!DOCTYPE html><html><body>403</body></html>").unwrap(),
            MediaSpec::Mp3 => std::fs::write(&media, b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x64\x00").unwrap(),
            MediaSpec::Truncated(n) => {
                let n = usize::try_from(*n).unwrap_or(usize::MAX) % (original.len() + 1);
                std::fs::write(&media, &original[..n]).unwrap();
            }
            MediaSpec::Mutated(edits) => {
                let mut bytes = original.clone();
                let (at, len) = fixture.moov[base];
                for &(pos, value) in edits.iter().take(8) {
                    bytes[at + usize::from(pos) % len] = value;
                }
                std::fs::write(&media, bytes).unwrap();
            }
        }
    }
    if let Some(e) = &spec.event {
        let first = &fixture.metadata[0];
        let chunks: Vec<Value> = e
            .chunks
            .iter()
            .take(6)
            .map(|(doc, index, ends)| {
                let base = doc % 3;
                json!({
                    "documentId": doc_id(base, doc / 3),
                    "index": index.json(&json!(base)),
                    "endReason": if *ends { "SessionEnded" } else { "ChunkMaximumSizeExceeded" },
                })
            })
            .collect();
        let event = json!([{
            "id": "53b48cc7-abba-47f7-ad21-273d2b386b21",
            "subject": format!("/recording/call/{}/serverCallId/x/recordingId/generated", call_id(0)),
            "data": {
                "recordingStorageInfo": { "recordingChunks": chunks },
                "recordingStartTime": shifted_time(&first["chunkStartTime"], e.start_shift.ms()),
                "recordingDurationMs": e.duration.json(&json!(9300)),
            },
            "eventType": "Microsoft.Communication.RecordingFileStatusUpdated",
        }]);
        std::fs::write(dir.join("event.json"), serde_json::to_vec_pretty(&event).unwrap()).unwrap();
    }
}

fn dir_count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}
