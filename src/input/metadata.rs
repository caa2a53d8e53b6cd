//! Chunk metadata and completion events, with every variant the service has
//! produced normalised away (see the table in the README).
//!
//! Parsing goes through `serde_json::Value` and reads each field by hand so
//! that an error names the file, the field and what was wrong ("field
//! `chunkIndex`: expected a non-negative integer, found the string \"zero\"").

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::error::{Here, Result};

/// A wall-clock instant, in nanoseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WallClock(pub i64);

impl WallClock {
    /// Parses an ISO 8601 / RFC 3339 timestamp with up to 9 fractional
    /// digits and `Z` or a `±hh:mm` offset.
    pub fn parse(s: &str) -> Option<WallClock> {
        let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
        i64::try_from(t.unix_timestamp_nanos()).ok().map(WallClock)
    }

    /// Milliseconds from `self` to `later` (negative when `later` is earlier).
    pub fn ms_until(self, later: WallClock) -> f64 {
        later.0.saturating_sub(self.0) as f64 / 1e6
    }

    /// This instant moved by `ms` milliseconds.
    pub fn plus_ms(self, ms: f64) -> WallClock {
        WallClock(self.0.saturating_add((ms * 1e6).round() as i64))
    }

    /// RFC 3339 in UTC with 7 fractional digits, as the service writes.
    pub fn to_rfc3339(self) -> String {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0))
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.nanosecond() / 100
        )
    }

    /// `hh:mm:ss` of the instant in UTC (for chapter titles).
    pub fn time_of_day(self) -> String {
        let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0))
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
    }
}

impl fmt::Display for WallClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for WallClock {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for WallClock {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        WallClock::parse(&text).ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not an RFC 3339 time")))
    }
}

/// Serde for a time in seconds written as milliseconds rounded to the
/// microsecond (`3.00799560546875` s is `3007.996` ms): the unit of every
/// time field of the manifest, named `…Ms`.
pub mod seconds_as_ms {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Milliseconds with three decimals.
    pub fn round(seconds: f64) -> f64 {
        (seconds * 1e6).round() / 1e3
    }

    /// Writes `seconds` as milliseconds.
    pub fn serialize<S: Serializer>(seconds: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(round(*seconds))
    }

    /// Reads milliseconds back as seconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(f64::deserialize(d)? / 1e3)
    }
}

/// The metadata of one chunk (one `.json` per chunk).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChunkMetadata {
    /// The communication resource.
    pub resource_id: String,
    /// The call.
    pub call_id: String,
    /// The chunk's document id, which names its download.
    pub document_id: String,
    /// Position of the chunk in its recording, from 0.
    pub index: u32,
    /// Wall-clock start of the chunk.
    pub start: WallClock,
    /// Wall-clock length of the chunk in milliseconds.
    pub duration_ms: f64,
    /// Pauses during the chunk.
    pub pauses: Vec<PauseInterval>,
    /// What the service says it recorded.
    pub recording: RecordingInfo,
    /// Participant ids (for personal-data export requests).
    pub participants: Vec<Participant>,
}

impl ChunkMetadata {
    /// Wall-clock end of the chunk: its start plus `chunkDuration`.
    pub fn end(&self) -> WallClock {
        self.start.plus_ms(self.duration_ms)
    }
}

/// One pause: from `start` (wall clock), `duration_ms` long.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PauseInterval {
    /// When the recording was paused.
    pub start: WallClock,
    /// How long it stayed paused, in milliseconds.
    pub duration_ms: f64,
}

/// A participant of the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Participant {
    /// The participant id (`8:acs:...`).
    pub participant_id: String,
    /// Audio channel, for unmixed audio only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<u32>,
}

/// The `recordingInfo` block, normalised.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingInfo {
    /// `mixed` or `unmixed` (whichever of `contentType`/`channelType` holds it).
    pub content: String,
    /// `audioVideo`, `audioOnly`, ... (whichever field holds it).
    pub channel: String,
    /// Container format: `mp4`, `mp3`, `wav`.
    pub format: String,
    /// Audio settings, when present.
    pub audio: Option<AudioConfiguration>,
    /// Video settings; absent for audio-only recordings.
    pub video: Option<VideoConfiguration>,
}

impl RecordingInfo {
    /// Whether the metadata describes an audio-only recording: its channel
    /// type says audio, its format is audio only (mp3, wav), or it names no
    /// channel type and has no video configuration. A channel type of
    /// `audioVideo` without a `videoConfiguration` is the current schema of
    /// an audio+video recording, not an audio-only one.
    pub fn audio_only(&self) -> bool {
        let channel = self.channel.to_ascii_lowercase();
        if channel.starts_with("audioonly") || channel == "audio" {
            return true;
        }
        if channel == "audiovideo" {
            return false;
        }
        self.video.is_none() || matches!(self.media_format(), Some(MediaFormat::Mp3 | MediaFormat::Wav))
    }

    /// Whether each participant has a channel of their own (`unmixed`).
    pub fn unmixed(&self) -> bool {
        self.content.eq_ignore_ascii_case("unmixed")
    }

    /// The container format the metadata names, when recstitch knows it.
    pub fn media_format(&self) -> Option<MediaFormat> {
        MediaFormat::parse(&self.format)
    }
}

/// The container format of a chunk's media and of a stitched output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaFormat {
    /// MP4 (H.264 + AAC, or AAC alone).
    Mp4,
    /// MPEG-1/2 Layer III.
    Mp3,
    /// RIFF/WAVE PCM (RF64 for outputs past 4 GiB).
    Wav,
}

impl MediaFormat {
    /// The format named by metadata (`mp4`) or an event (`Mp4`), in any case.
    pub fn parse(s: &str) -> Option<MediaFormat> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mp4" => Some(MediaFormat::Mp4),
            "mp3" => Some(MediaFormat::Mp3),
            "wav" => Some(MediaFormat::Wav),
            _ => None,
        }
    }

    /// The file extension, without the dot: `mp4`, `mp3`, `wav`.
    pub fn extension(self) -> &'static str {
        match self {
            MediaFormat::Mp4 => "mp4",
            MediaFormat::Mp3 => "mp3",
            MediaFormat::Wav => "wav",
        }
    }

    /// The name for messages: `MP4`, `MP3`, `WAV`.
    pub fn name(self) -> &'static str {
        match self {
            MediaFormat::Mp4 => "MP4",
            MediaFormat::Mp3 => "MP3",
            MediaFormat::Wav => "WAV",
        }
    }
}

/// `audioConfiguration`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AudioConfiguration {
    /// Sample rate in Hz.
    pub sample_rate: Option<u32>,
    /// Nominal bit rate (a ceiling), bits per second.
    pub bit_rate: Option<u64>,
    /// Channel count.
    pub channels: Option<u32>,
}

/// `videoConfiguration`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoConfiguration {
    /// Longer side of the picture in pixels.
    pub longer_side: Option<u32>,
    /// Shorter side of the picture in pixels.
    pub shorter_side: Option<u32>,
    /// Frames per second (`framerate` or `frameRate`).
    pub frame_rate: Option<f64>,
    /// Nominal bit rate (a ceiling), bits per second.
    pub bit_rate: Option<u64>,
}

/// A JSON object with field access that reports precise errors.
struct JsonObject<'a, 'h> {
    map: &'a Map<String, Value>,
    here: Here<'h>,
}

fn json_kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.chars().count() > 40 => format!("a {}-character string", s.chars().count()),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

impl<'a, 'h> JsonObject<'a, 'h> {
    fn new(v: &'a Value, here: Here<'h>) -> Result<Self> {
        match v {
            Value::Object(map) => Ok(JsonObject { map, here }),
            other => Err(here.invalid(format!("expected an object, found {}", json_kind(other)))),
        }
    }

    fn field_here(&self, key: &str) -> Here<'h> {
        self.here.child(format!("field `{key}`"))
    }

    /// The first of `keys` that is present and not null.
    fn get(&self, keys: &[&str]) -> Option<(&'a Value, Here<'h>)> {
        keys.iter().find_map(|k| {
            self.map
                .get(*k)
                .filter(|v| !v.is_null())
                .map(|v| (v, self.field_here(k)))
        })
    }

    fn require(&self, keys: &[&str]) -> Result<(&'a Value, Here<'h>)> {
        self.get(keys)
            .ok_or_else(|| self.field_here(keys[0]).invalid("missing"))
    }

    fn string(&self, keys: &[&str]) -> Result<String> {
        let (v, h) = self.require(keys)?;
        as_string(v, &h)
    }

    fn opt_string(&self, keys: &[&str]) -> Result<Option<String>> {
        self.get(keys).map(|(v, h)| as_string(v, &h)).transpose()
    }

    fn object(&self, keys: &[&str]) -> Result<Option<JsonObject<'a, 'h>>> {
        self.get(keys).map(|(v, h)| JsonObject::new(v, h)).transpose()
    }
}

fn as_string(v: &Value, here: &Here) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => Err(here.invalid(format!("expected a string, found {}", json_kind(other)))),
    }
}

/// A number given as a JSON number or a numeric string ("16000").
fn as_f64(v: &Value, here: &Here) -> Result<f64> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    n.filter(|n| n.is_finite())
        .ok_or_else(|| here.invalid(format!("expected a number, found {}", json_kind(v))))
}

fn as_u64(v: &Value, here: &Here) -> Result<u64> {
    let n = as_f64(v, here)?;
    if n < 0.0 || n.fract() != 0.0 || n > 9.0e15 {
        return Err(here.invalid(format!("expected a non-negative integer, found {}", json_kind(v))));
    }
    Ok(n as u64)
}

fn as_u32(v: &Value, here: &Here) -> Result<u32> {
    u32::try_from(as_u64(v, here)?).map_err(|_| here.invalid(format!("{} is too large", json_kind(v))))
}

fn as_time(v: &Value, here: &Here) -> Result<WallClock> {
    let s = as_string(v, here)?;
    WallClock::parse(&s).ok_or_else(|| {
        here.invalid(format!(
            "{s:?} is not an ISO 8601 timestamp (expected e.g. 2021-03-24T18:52:14.1321393Z)"
        ))
    })
}

/// The longest duration a metadata or event field may give, milliseconds
/// (100 days): anything longer is not a recording but a broken value, and
/// would carry wall-clock arithmetic out of range.
pub const MAX_DURATION_MS: f64 = 100.0 * 24.0 * 3600.0 * 1000.0;

fn as_duration_ms(v: &Value, here: &Here) -> Result<f64> {
    let ms = as_f64(v, here)?;
    if ms < 0.0 {
        return Err(here.invalid(format!("duration {ms} is negative")));
    }
    if ms > MAX_DURATION_MS {
        return Err(here.invalid(format!(
            "duration {ms} ms is longer than 100 days: not a real recording's"
        )));
    }
    Ok(ms)
}

/// Parses JSON bytes, naming the file on error and recognising the
/// non-JSON bodies that broken downloads leave (HTML error pages).
pub(crate) fn parse_json(bytes: &[u8], path: &Path) -> Result<Value> {
    let text = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    serde_json::from_slice(text).map_err(|e| {
        let here = Here::new(path, "");
        let start = text.iter().find(|b| !b.is_ascii_whitespace()).copied();
        match start {
            None => here.invalid("the file is empty"),
            Some(b'<') => here.invalid("not JSON: the file is an HTML or XML page (a failed download?)"),
            _ => here.invalid(format!("not valid JSON: {e}")),
        }
    })
}

/// Whether a JSON value looks like chunk metadata (used to classify files).
pub(crate) fn looks_like_metadata(v: &Value) -> bool {
    v.as_object().is_some_and(|m| {
        ["chunkDocumentId", "chunkIndex", "recordingInfo", "chunkStartTime"]
            .iter()
            .filter(|k| m.contains_key(**k))
            .count()
            >= 1
            && (m.contains_key("callId") || m.contains_key("chunkDocumentId") || m.contains_key("recordingInfo"))
    })
}

/// Whether a JSON value looks like a completion event or a list of them.
pub(crate) fn looks_like_event(v: &Value) -> bool {
    let one = |e: &Value| {
        e.pointer("/data/recordingStorageInfo").is_some()
            || e.get("eventType")
                .and_then(Value::as_str)
                .is_some_and(|t| t.contains("RecordingFileStatusUpdated"))
            || e.get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.contains("RecordingFileStatusUpdated"))
    };
    match v {
        Value::Array(items) => !items.is_empty() && items.iter().any(one),
        other => one(other),
    }
}

/// Parses chunk metadata from a JSON value read from `path`.
pub fn parse_metadata(v: &Value, path: &Path) -> Result<ChunkMetadata> {
    let o = JsonObject::new(v, Here::new(path, ""))?;
    let index = {
        let (v, h) = o.require(&["chunkIndex"])?;
        as_u32(v, &h)?
    };
    let start = {
        let (v, h) = o.require(&["chunkStartTime"])?;
        as_time(v, &h)?
    };
    let duration_ms = {
        let (v, h) = o.require(&["chunkDuration"])?;
        as_duration_ms(v, &h)?
    };
    let pauses = match o.get(&["pauseResumeIntervals"]) {
        None => Vec::new(),
        Some((Value::Array(items), h)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let p = JsonObject::new(item, h.child(format!("[{i}]")))?;
                let (start, start_here) = p.require(&["startTime"])?;
                let (duration, duration_here) = p.require(&["duration"])?;
                Ok(PauseInterval {
                    start: as_time(start, &start_here)?,
                    duration_ms: as_duration_ms(duration, &duration_here)?,
                })
            })
            .collect::<Result<_>>()?,
        Some((other, h)) => return Err(h.invalid(format!("expected an array, found {}", json_kind(other)))),
    };
    let info = o
        .object(&["recordingInfo"])?
        .ok_or_else(|| o.field_here("recordingInfo").invalid("missing"))?;
    let participants = match o.get(&["participants"]) {
        None => Vec::new(),
        Some((Value::Array(items), h)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let p = JsonObject::new(item, h.child(format!("[{i}]")))?;
                let channel = p.get(&["channel"]).map(|(v, h)| as_u32(v, &h)).transpose()?;
                Ok(Participant {
                    participant_id: p.string(&["participantId"])?,
                    channel,
                })
            })
            .collect::<Result<_>>()?,
        Some((other, h)) => return Err(h.invalid(format!("expected an array, found {}", json_kind(other)))),
    };
    Ok(ChunkMetadata {
        resource_id: o.opt_string(&["resourceId"])?.unwrap_or_default(),
        call_id: o.string(&["callId"])?,
        document_id: o.string(&["chunkDocumentId"])?,
        index,
        start,
        duration_ms,
        pauses,
        recording: parse_recording_info(&info)?,
        participants,
    })
}

fn parse_recording_info(o: &JsonObject) -> Result<RecordingInfo> {
    // Early files: contentType "mixed", channelType "audioVideo"; later files
    // swap the two. Sort the values by what they say.
    let a = o.opt_string(&["contentType"])?.unwrap_or_default();
    let b = o.opt_string(&["channelType"])?.unwrap_or_default();
    let is_content = |s: &str| matches!(s.to_ascii_lowercase().as_str(), "mixed" | "unmixed");
    let (content, channel) = if is_content(&b) && !is_content(&a) {
        (b, a)
    } else {
        (a, b)
    };
    let audio = o
        .object(&["audioConfiguration"])?
        .map(|a| -> Result<AudioConfiguration> {
            Ok(AudioConfiguration {
                sample_rate: a.get(&["sampleRate"]).map(|(v, h)| as_u32(v, &h)).transpose()?,
                bit_rate: a.get(&["bitRate"]).map(|(v, h)| as_u64(v, &h)).transpose()?,
                channels: a.get(&["channels"]).map(|(v, h)| as_u32(v, &h)).transpose()?,
            })
        })
        .transpose()?;
    let video = o
        .object(&["videoConfiguration"])?
        .map(|v| -> Result<VideoConfiguration> {
            Ok(VideoConfiguration {
                longer_side: v.get(&["longerSideLength"]).map(|(v, h)| as_u32(v, &h)).transpose()?,
                shorter_side: v.get(&["shorterSideLength"]).map(|(v, h)| as_u32(v, &h)).transpose()?,
                frame_rate: v
                    .get(&["framerate", "frameRate"])
                    .map(|(v, h)| as_f64(v, &h))
                    .transpose()?,
                bit_rate: v.get(&["bitRate"]).map(|(v, h)| as_u64(v, &h)).transpose()?,
            })
        })
        .transpose()?;
    Ok(RecordingInfo {
        content,
        channel,
        format: o.opt_string(&["format"])?.unwrap_or_else(|| "mp4".into()),
        audio,
        video,
    })
}

/// One completion event (`RecordingFileStatusUpdated`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CompletionEvent {
    /// The event's id (`id`, in both schemas).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// When the event was published (`eventTime`, CloudEvents `time`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_time: Option<WallClock>,
    /// The call id, from the subject.
    pub call_id: Option<String>,
    /// The server call id, from the subject.
    pub server_call_id: Option<String>,
    /// The recording id, from the subject: the recording's key.
    pub recording_id: Option<String>,
    /// When the recording started.
    pub recording_start: Option<WallClock>,
    /// Its length in milliseconds.
    pub recording_duration_ms: Option<f64>,
    /// Why the session ended.
    pub session_end_reason: Option<String>,
    /// The chunks, as the service lists them.
    pub chunks: Vec<EventChunk>,
}

/// One chunk listed by a completion event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventChunk {
    /// The chunk's document id.
    pub document_id: String,
    /// Its index.
    pub index: u32,
    /// Why the chunk ended (`SessionEnded`, `ChunkMaximumSizeExceeded`, ...).
    pub end_reason: Option<String>,
    /// Where its media is downloaded from (`contentLocation`; current API versions only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_location: Option<String>,
    /// Where its metadata is downloaded from (`metadataLocation`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata_location: Option<String>,
    /// Where it is deleted from the service (`deleteLocation`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delete_location: Option<String>,
}

impl EventChunk {
    /// Whether the end reason says the recording session ended here (rather
    /// than the chunk being cut for size or time, with more to follow).
    pub fn ends_session(&self) -> bool {
        match &self.end_reason {
            None => true,
            Some(r) => {
                let r = r.to_ascii_lowercase();
                r.contains("ended") || r.contains("stop")
            }
        }
    }
}

/// The type an event states: Event Grid's `eventType` or CloudEvents' `type`.
pub fn event_type(v: &Value) -> Option<&str> {
    v.get("eventType").or_else(|| v.get("type")).and_then(Value::as_str)
}

/// Whether one event (an object, not a list) is a recording's completion
/// event (`RecordingFileStatusUpdated`, or an event without a type that
/// carries `data.recordingStorageInfo`).
pub fn is_completion_event(v: &Value) -> bool {
    match event_type(v) {
        Some(t) => t.contains("RecordingFileStatusUpdated"),
        None => v.pointer("/data/recordingStorageInfo").is_some(),
    }
}

/// Parses one completion event (an object); `position` is its place in an
/// array, for messages.
pub fn parse_one_event(v: &Value, path: &Path, position: Option<usize>) -> Result<CompletionEvent> {
    let here = Here::new(path, "");
    match position {
        Some(i) => parse_event(v, here.child(format!("[{i}]"))),
        None => parse_event(v, here),
    }
}

/// Parses a completion event file: one event object or an array of them.
pub fn parse_events(v: &Value, path: &Path) -> Result<Vec<CompletionEvent>> {
    let here = Here::new(path, "");
    match v {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, e)| parse_event(e, here.child(format!("[{i}]"))))
            .collect(),
        other => Ok(vec![parse_event(other, here)?]),
    }
}

fn parse_event(v: &Value, here: Here) -> Result<CompletionEvent> {
    let o = JsonObject::new(v, here)?;
    let subject = o.opt_string(&["subject"])?.unwrap_or_default();
    let part = |name: &str| -> Option<String> {
        let mut it = subject.split('/');
        it.by_ref().find(|p| p.eq_ignore_ascii_case(name));
        it.next().filter(|s| !s.is_empty()).map(str::to_owned)
    };
    let data = o
        .object(&["data"])?
        .ok_or_else(|| o.field_here("data").invalid("missing"))?;
    let storage = data
        .object(&["recordingStorageInfo"])?
        .ok_or_else(|| data.field_here("recordingStorageInfo").invalid("missing"))?;
    let (list, list_here) = storage.require(&["recordingChunks"])?;
    let Value::Array(items) = list else {
        return Err(list_here.invalid(format!("expected an array, found {}", json_kind(list))));
    };
    let chunks = items
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let c = JsonObject::new(c, list_here.child(format!("[{i}]")))?;
            let (iv, ih) = c.require(&["index"])?;
            Ok(EventChunk {
                document_id: c.string(&["documentId"])?,
                index: as_u32(iv, &ih)?,
                end_reason: c.opt_string(&["endReason"])?,
                content_location: c.opt_string(&["contentLocation"])?,
                metadata_location: c.opt_string(&["metadataLocation"])?,
                delete_location: c.opt_string(&["deleteLocation"])?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(CompletionEvent {
        id: o.opt_string(&["id"])?,
        event_time: o.get(&["eventTime", "time"]).map(|(v, h)| as_time(v, &h)).transpose()?,
        call_id: part("call"),
        server_call_id: part("serverCallId"),
        recording_id: part("recordingId"),
        recording_start: data
            .get(&["recordingStartTime"])
            .map(|(v, h)| as_time(v, &h))
            .transpose()?,
        recording_duration_ms: data
            .get(&["recordingDurationMs"])
            .map(|(v, h)| as_duration_ms(v, &h))
            .transpose()?,
        session_end_reason: data.opt_string(&["sessionEndReason"])?,
        chunks,
    })
}

/// A completion event parsed from `v` (item `position` of `path`), with no
/// more chunks than [`crate::Limits::max_chunks_per_recording`].
#[cfg(feature = "fetch")]
pub(crate) fn parse_completion_event(
    v: &Value,
    path: &Path,
    position: Option<usize>,
    limits: &crate::Limits,
) -> Result<CompletionEvent> {
    let event = parse_one_event(v, path, position)?;
    limits.check_count(
        crate::limits::Limit::ChunksPerRecording,
        event.chunks.len(),
        &Here::new(path, "data/recordingStorageInfo/recordingChunks"),
        "number of chunks",
    )?;
    Ok(event)
}

/// Reads and parses a metadata file (its lists within the default
/// [`Limits`](crate::Limits)).
pub fn read_metadata(path: &Path, max_bytes: u64) -> Result<ChunkMetadata> {
    let bytes = crate::io::read_bounded(path, max_bytes)?;
    check_list_budgets(&bytes, path, &crate::Limits::default())?;
    parse_metadata(&parse_json(&bytes, path)?, path)
}

/// Checks the lists of a metadata document (`participants`,
/// `pauseResumeIntervals` at its top level) against their budgets by
/// counting their items in the bytes, before any of it is parsed into
/// memory. Anything that is not such a document passes.
pub(crate) fn check_list_budgets(bytes: &[u8], path: &Path, limits: &crate::Limits) -> Result<()> {
    use crate::limits::Limit;
    let mut depth = 0usize;
    let (mut in_string, mut escaped) = (false, false);
    let (mut string_start, mut last_key) = (0usize, &b""[..]);
    // The list being counted: its budget, its name, commas at its level, whether it has an item.
    let mut counting: Option<(Limit, &'static str)> = None;
    let (mut commas, mut items) = (0u64, false);
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
                if depth == 1 {
                    last_key = bytes.get(string_start..i).unwrap_or_default();
                }
            }
            continue;
        }
        let in_list = depth == 2 && counting.is_some();
        match b {
            b'"' => {
                in_string = true;
                string_start = i.saturating_add(1);
                items |= in_list;
            }
            b'[' | b'{' => {
                if depth == 1 && b == b'[' {
                    counting = match last_key {
                        b"participants" => Some((Limit::ParticipantsPerChunk, "participants")),
                        b"pauseResumeIntervals" => Some((Limit::PausesPerChunk, "pauseResumeIntervals")),
                        _ => None,
                    };
                    (commas, items) = (0, false);
                }
                items |= in_list;
                depth = depth.saturating_add(1);
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 1 {
                    if let Some((which, name)) = counting.take() {
                        let n = if items { commas.saturating_add(1) } else { 0 };
                        let what = format!("number of {name}");
                        limits.check(which, n, &Here::new(path, format!("field `{name}`")), &what)?;
                    }
                }
            }
            b',' if in_list => commas = commas.saturating_add(1),
            _ if in_list && !b.is_ascii_whitespace() => items = true,
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
          "resourceId": "29bd5ea9-e0fc-4d00-8f6f-339b1f0ee2e2",
          "callId": "43563209-4ec6-4119-be5b-88398cda2caf",
          "chunkDocumentId": "0-eus-d11-05bf22b166dfb2119e3ff85d98906121",
          "chunkIndex": 0,
          "chunkStartTime": "2021-03-24T18:52:14.1321393Z",
          "chunkDuration": 15000.0,
          "pauseResumeIntervals": [{ "startTime": "2021-03-24T18:52:17.9450001Z", "duration": 5220 }],
          "recordingInfo": {
            "contentType": "mixed", "channelType": "audioVideo", "format": "mp4",
            "audioConfiguration": { "sampleRate": "16000", "bitRate": 128000, "channels": 1 },
            "videoConfiguration": { "longerSideLength": 1920, "shorterSideLength": 1080, "framerate": 8, "bitRate": 1000000 }
          },
          "participants": [{ "participantId": "8:acs:29bd5ea9_00000008" }]
        })
    }

    fn parse(v: &Value) -> Result<ChunkMetadata> {
        parse_metadata(v, Path::new("m.json"))
    }

    #[test]
    fn documented_example_parses() {
        let m = parse(&sample()).unwrap();
        assert_eq!(m.index, 0);
        assert_eq!(m.duration_ms, 15000.0);
        assert_eq!(m.start.to_rfc3339(), "2021-03-24T18:52:14.1321393Z");
        assert_eq!(m.pauses[0].duration_ms, 5220.0);
        assert_eq!(m.start.ms_until(m.pauses[0].start), 3812.8608);
        assert_eq!(m.recording.audio.unwrap().sample_rate, Some(16000));
        assert_eq!(m.recording.video.unwrap().frame_rate, Some(8.0));
        assert_eq!(m.recording.content, "mixed");
        assert!(!m.recording.audio_only());
    }

    #[test]
    fn variants_are_normalised() {
        let mut v = sample();
        v["chunkDuration"] = json!(15000);
        v["recordingInfo"]["audioConfiguration"]["sampleRate"] = json!(16000);
        v["recordingInfo"]["contentType"] = json!("audioVideo");
        v["recordingInfo"]["channelType"] = json!("mixed");
        let vc = v["recordingInfo"]["videoConfiguration"].as_object_mut().unwrap();
        vc.remove("framerate");
        vc.insert("frameRate".into(), json!(15));
        v["chunkStartTime"] = json!("2021-03-24T19:52:14.132139312+01:00");
        v["somethingNew"] = json!({"x": [1, 2]});
        let m = parse(&v).unwrap();
        assert_eq!(m.duration_ms, 15000.0);
        assert_eq!(m.recording.audio.unwrap().sample_rate, Some(16000));
        assert_eq!(m.recording.content, "mixed");
        assert_eq!(m.recording.channel, "audioVideo");
        assert_eq!(m.recording.video.unwrap().frame_rate, Some(15.0));
        assert_eq!(m.start.0 % 1_000_000_000, 132_139_312);
        assert_eq!(m.start.to_rfc3339(), "2021-03-24T18:52:14.1321393Z");
    }

    #[test]
    fn audio_only_without_video_configuration() {
        let mut v = sample();
        v["recordingInfo"].as_object_mut().unwrap().remove("videoConfiguration");
        v["recordingInfo"]["channelType"] = json!("audioOnly");
        let m = parse(&v).unwrap();
        assert!(m.recording.video.is_none());
        assert!(m.recording.audio_only());
    }

    #[test]
    fn audio_video_without_video_configuration_is_the_current_schema() {
        // Today's audio+video metadata states no frame rate or size at all.
        let mut v = sample();
        v["recordingInfo"].as_object_mut().unwrap().remove("videoConfiguration");
        v["recordingInfo"]["contentType"] = json!("audioVideo");
        v["recordingInfo"]["channelType"] = json!("mixed");
        let m = parse(&v).unwrap();
        assert!(m.recording.video.is_none());
        assert!(!m.recording.audio_only());
        assert_eq!(m.recording.media_format(), Some(MediaFormat::Mp4));
        v["recordingInfo"]["contentType"] = json!("audio");
        v["recordingInfo"]["channelType"] = json!("unmixed");
        v["recordingInfo"]["format"] = json!("Wav");
        let m = parse(&v).unwrap();
        assert!(m.recording.audio_only() && m.recording.unmixed());
        assert_eq!(m.recording.media_format(), Some(MediaFormat::Wav));
    }

    #[test]
    fn errors_name_the_file_and_field() {
        let mut v = sample();
        v["chunkIndex"] = json!("zero");
        let e = parse(&v).unwrap_err().to_string();
        assert_eq!(
            e,
            "m.json: field `chunkIndex`: expected a number, found the string \"zero\""
        );

        let mut v = sample();
        v.as_object_mut().unwrap().remove("callId");
        assert_eq!(parse(&v).unwrap_err().to_string(), "m.json: field `callId`: missing");

        let mut v = sample();
        v["pauseResumeIntervals"][0]["startTime"] = json!("yesterday");
        let e = parse(&v).unwrap_err().to_string();
        assert!(
            e.starts_with("m.json: field `pauseResumeIntervals`/[0]/field `startTime`: \"yesterday\" is not"),
            "{e}"
        );

        let mut v = sample();
        v["chunkDuration"] = json!(-5);
        assert!(parse(&v).unwrap_err().to_string().contains("negative"));

        let mut v = sample();
        v["chunkIndex"] = json!(1.5);
        assert!(parse(&v).unwrap_err().to_string().contains("non-negative integer"));
    }

    #[test]
    fn non_json_bodies_are_recognised() {
        let p = Path::new("x.json");
        let e = parse_json(b"<!DOCTYPE html><html>", p).unwrap_err().to_string();
        assert!(e.contains("HTML"), "{e}");
        assert!(parse_json(b"  ", p).unwrap_err().to_string().contains("empty"));
        assert!(parse_json(b"{\"a\":", p)
            .unwrap_err()
            .to_string()
            .contains("not valid JSON"));
        assert!(parse_json(b"\xef\xbb\xbf{}", p).is_ok());
    }

    #[test]
    fn events_single_or_array() {
        let e = json!({
          "id": "7283825e", "subject": "/recording/call/CALL/serverCallId/SRV/recordingId/REC",
          "data": { "recordingStorageInfo": { "recordingChunks": [
              { "documentId": "0-eus-d12-801b", "index": 0, "endReason": "SessionEnded" } ] },
            "recordingStartTime": "2021-07-27T15:20:23.6089755Z", "recordingDurationMs": 6620,
            "sessionEndReason": "CallEnded" },
          "eventType": "Microsoft.Communication.RecordingFileStatusUpdated"
        });
        assert!(looks_like_event(&e));
        assert!(!looks_like_metadata(&e));
        assert!(looks_like_metadata(&sample()));
        assert!(!looks_like_event(&sample()));
        let one = parse_events(&e, Path::new("e.json")).unwrap();
        let many = parse_events(&json!([e.clone(), e]), Path::new("e.json")).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(many.len(), 2);
        let ev = &one[0];
        assert_eq!(ev.call_id.as_deref(), Some("CALL"));
        assert_eq!(ev.recording_id.as_deref(), Some("REC"));
        assert_eq!(ev.chunks[0].index, 0);
        assert!(ev.chunks[0].ends_session());
        let cut = EventChunk {
            document_id: "x".into(),
            index: 0,
            end_reason: Some("ChunkMaximumSizeExceeded".into()),
            ..EventChunk::default()
        };
        assert!(!cut.ends_session());
    }

    #[test]
    fn lists_over_their_budgets_are_refused_before_parsing() {
        let limits = crate::Limits {
            max_participants_per_chunk: 3,
            max_pauses_per_chunk: 2,
            ..crate::Limits::default()
        };
        let path = Path::new("m.json");
        let ok = br#"{"callId":"a,b","participants":[{"participantId":"x,[y"},{"participantId":"z"},{}],
            "pauseResumeIntervals":[],"nested":{"participants":[1,2,3,4,5]}}"#;
        assert!(check_list_budgets(ok, path, &limits).is_ok());
        let many = br#"{"participants":[{"participantId":"1"},{"participantId":"2"},{"participantId":"3"},{"participantId":"4"}]}"#;
        let e = check_list_budgets(many, path, &limits).unwrap_err().to_string();
        assert_eq!(
            e,
            "m.json: field `participants`: number of participants is 4, over the limit 3 (Limits::max_participants_per_chunk)"
        );
        let pauses = br#"{"pauseResumeIntervals":[{"startTime":"\"]","duration":1},{},{}]}"#;
        let e = check_list_budgets(pauses, path, &limits).unwrap_err().to_string();
        assert!(
            e.contains("number of pauseResumeIntervals is 3") && e.contains("max_pauses_per_chunk"),
            "{e}"
        );
        assert!(check_list_budgets(b"[1,2,3]", path, &limits).is_ok());
        assert!(check_list_budgets(b"\"unterminated", path, &limits).is_ok());
    }
}
