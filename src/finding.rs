//! Findings: what validation says about a recording, one stable code each.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; the recording is still stitched.
    Warning,
    /// The recording is not stitched.
    Error,
}

macro_rules! codes {
    ($($(#[$doc:meta])* $variant:ident => $code:literal,)*) => {
        /// The stable finding codes. Programs match on [`Code::as_str`]; the
        /// README lists them with their meaning.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum Code {
            $($(#[$doc])* $variant,)*
        }

        impl Code {
            /// Every code, in documentation order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as written in reports, e.g. `video.frame_rate`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $code,)*
                }
            }
        }
    };
}

codes! {
    /// Metadata is not JSON, or a required field is missing or ill-typed.
    MetadataInvalid => "metadata.invalid",
    /// callId / resourceId / recordingInfo differ between chunks of one recording.
    MetadataMismatch => "metadata.mismatch",
    /// Metadata without its media file.
    MediaMissing => "media.missing",
    /// Zero-byte media file.
    MediaEmpty => "media.empty",
    /// The media file cannot be read (permissions, I/O error); the message carries the OS error.
    MediaUnreadable => "media.unreadable",
    /// The media file is HTML, JSON or anything without `ftyp`.
    MediaNotMp4 => "media.not_mp4",
    /// No `moov`, or samples beyond the end of the file.
    MediaTruncated => "media.truncated",
    /// The MP4 structure is malformed (tables that disagree, bad boxes).
    MediaInvalid => "media.invalid",
    /// The MP4 breaks the format in a way mainstream readers tolerate; so does recstitch.
    MediaQuirk => "media.quirk",
    /// A recording in a format recstitch does not stitch (Ogg, FLAC, unmixed audio other than WAV).
    MediaUnsupportedFormat => "media.unsupported_format",
    /// The media file is another format than its metadata says (an MP3 where the metadata says mp4).
    MediaFormatMismatch => "media.format_mismatch",
    /// The video is not H.264.
    VideoCodec => "video.codec",
    /// The audio is not AAC-LC.
    AudioCodec => "audio.codec",
    /// Picture dimensions differ from the metadata.
    VideoResolution => "video.resolution",
    /// Frame rate differs from the metadata by more than 1%.
    VideoFrameRate => "video.frame_rate",
    /// Audio sample rate differs from the metadata.
    AudioSampleRate => "audio.sample_rate",
    /// Audio channel count differs from the metadata.
    AudioChannels => "audio.channels",
    /// Average video bit rate above the nominal ceiling by more than 10%.
    VideoBitrate => "video.bitrate",
    /// Average audio bit rate above the nominal ceiling by more than 10%.
    AudioBitrate => "audio.bitrate",
    /// Media duration matches neither chunkDuration nor chunkDuration minus the pauses.
    ChunkDuration => "chunk.duration",
    /// A gap in the chunk index sequence.
    ChunkMissingIndex => "chunk.missing_index",
    /// The same chunk twice (warning when the bytes are identical).
    ChunkDuplicate => "chunk.duplicate",
    /// Wall-clock gap between consecutive chunks.
    ChunkGap => "chunk.gap",
    /// Wall-clock overlap between consecutive chunks.
    ChunkOverlap => "chunk.overlap",
    /// Codec configuration differs between chunks of a recording.
    ChunkCodecChange => "chunk.codec_change",
    /// The event lists chunks that are absent, or the last chunk's end reason says more should follow.
    RecordingIncomplete => "recording.incomplete",
    /// A chunk is present that the recording's completion event does not list.
    RecordingExtraChunk => "recording.extra_chunk",
    /// An AAC frame does not decode (`--deep`).
    AudioDecodeError => "audio.decode_error",
    /// A chunk or the whole recording is silent (`--deep`).
    AudioSilent => "audio.silent",
    /// The audio clips (`--deep`).
    AudioClipping => "audio.clipping",
    /// The H.264 bitstream is malformed, or lacks sync samples (`--deep`).
    VideoBitstream => "video.bitstream",
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == text)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown finding code {text:?}")))
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing validation found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// What was found.
    pub code: Code,
    /// How bad it is.
    pub severity: Severity,
    /// The chunk it is about, when it is about one.
    pub chunk_index: Option<u32>,
    /// A sentence a person can act on.
    pub message: String,
}

impl Finding {
    /// An error finding.
    pub fn error(code: Code, chunk_index: Option<u32>, message: impl Into<String>) -> Self {
        Finding {
            code,
            severity: Severity::Error,
            chunk_index,
            message: message.into(),
        }
    }

    /// A warning finding.
    pub fn warning(code: Code, chunk_index: Option<u32>, message: impl Into<String>) -> Self {
        Finding {
            code,
            severity: Severity::Warning,
            chunk_index,
            message: message.into(),
        }
    }
}

/// Whether any finding is an error.
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

/// Puts findings in their reporting order: recording-wide first, then by
/// chunk, then by code; the order of equal keys is kept.
pub fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by_key(|f| (f.chunk_index.map_or(0, |i| u64::from(i) + 1), f.code));
}
