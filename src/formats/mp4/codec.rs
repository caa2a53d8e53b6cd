//! Codec configuration: what a sample description says about the stream.
//!
//! * H.264: the `avcC` box (ISO/IEC 14496-15 §5.3.3.1) holds the SPS and PPS;
//!   the SPS is parsed with `h264-reader` for profile, level, dimensions and
//!   the VUI frame rate.
//! * AAC: the `esds` box (ISO/IEC 14496-14 §5.6) holds a DecoderConfigDescriptor
//!   whose DecoderSpecificInfo is the AudioSpecificConfig (ISO/IEC 14496-3
//!   §1.6.2.1), parsed here for object type, sample rate and channels. The
//!   channel count of the sample entry is not trusted: ffmpeg writes 2 there
//!   even for mono.

use serde::Serialize;

use crate::error::{Here, Result};
use crate::formats::mp4::boxes::{BoxSlice, Children};

/// One sample description (`stsd` entry) of a track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleEntry {
    /// The entry's four-character code (`avc1`, `mp4a`, ...).
    pub fourcc: String,
    /// The whole entry box as found in the file, header included; the muxer
    /// writes it back unchanged.
    pub raw: Vec<u8>,
    /// What the entry says about the stream.
    pub codec: Codec,
}

/// The codec configuration of a sample description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "codec", rename_all = "camelCase")]
pub enum Codec {
    /// H.264 / AVC.
    Avc(AvcConfig),
    /// MPEG-4 audio carried in `mp4a` (AAC and relatives).
    Aac(AacConfig),
    /// Audio in `mp4a` that is not MPEG-4 audio (MP3, MPEG-2 audio, ...).
    OtherAudio {
        /// Sample entry code.
        fourcc: String,
        /// The `objectTypeIndication` of the `esds`, when there is one.
        object_type_indication: Option<u8>,
        /// Sample rate from the sample entry.
        sample_rate: u32,
        /// Channel count from the sample entry.
        channels: u16,
    },
    /// Anything else.
    Other {
        /// Sample entry code.
        fourcc: String,
    },
}

impl Codec {
    /// A short human name: `h264`, `aac-lc`, `mp3`, `mp4v`, ...
    pub fn name(&self) -> String {
        match self {
            Codec::Avc(_) => "h264".into(),
            Codec::Aac(a) => match a.object_type {
                2 => "aac-lc".into(),
                5 => "he-aac".into(),
                29 => "he-aac-v2".into(),
                1 => "aac-main".into(),
                n => format!("mpeg4-audio-{n}"),
            },
            Codec::OtherAudio {
                object_type_indication: Some(0x69 | 0x6B),
                ..
            } => "mp3".into(),
            Codec::OtherAudio { fourcc, .. } | Codec::Other { fourcc } => fourcc.clone(),
        }
    }
}

/// H.264 configuration from `avcC` and its first SPS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AvcConfig {
    /// `profile_idc` (66 Baseline, 77 Main, 100 High, ...).
    pub profile_idc: u8,
    /// `level_idc` (40 = level 4.0).
    pub level_idc: u8,
    /// Decoded picture width after cropping, from the SPS.
    pub width: u32,
    /// Decoded picture height after cropping, from the SPS.
    pub height: u32,
    /// Frame rate from the SPS VUI timing info, in millihertz, when present.
    pub vui_fps_milli: Option<u64>,
    /// Bytes in each NAL unit length prefix (1, 2 or 4).
    pub nal_length_size: u8,
    /// Width written in the sample entry.
    pub entry_width: u16,
    /// Height written in the sample entry.
    pub entry_height: u16,
    /// The SPS NAL units, verbatim.
    #[serde(skip)]
    pub sps: Vec<Vec<u8>>,
    /// The PPS NAL units, verbatim.
    #[serde(skip)]
    pub pps: Vec<Vec<u8>>,
}

/// MPEG-4 audio configuration from the AudioSpecificConfig.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AacConfig {
    /// Audio object type (2 = AAC-LC).
    pub object_type: u8,
    /// Sampling frequency in Hz.
    pub sample_rate: u32,
    /// Channel configuration (1 = mono, 2 = stereo; 0 = defined in-band).
    pub channels: u8,
    /// Samples per frame: 1024 (or 960 with `frameLengthFlag`).
    pub frame_length: u32,
    /// The AudioSpecificConfig bytes, verbatim.
    #[serde(skip)]
    pub asc: Vec<u8>,
}

const AVC1: [u8; 4] = *b"avc1";
const AVC3: [u8; 4] = *b"avc3";
const MP4A: [u8; 4] = *b"mp4a";
/// Bytes of a VisualSampleEntry before its child boxes (ISO/IEC 14496-12 §12.1.3).
const VISUAL_ENTRY_LEN: usize = 78;
/// Bytes of an AudioSampleEntry (version 0) before its child boxes (§12.2.3).
const AUDIO_ENTRY_LEN: usize = 28;

/// Parses one `stsd` entry.
pub(crate) fn parse_sample_entry(entry: &BoxSlice, here: &Here, quirks: &mut Vec<String>) -> Result<SampleEntry> {
    let here = here.child(entry.kind);
    let fourcc = fourcc_string(entry.kind.into());
    let kind: [u8; 4] = entry.kind.into();
    let body = entry.body();
    let codec = match kind {
        AVC1 | AVC3 => parse_avc_entry(body, &here)?,
        MP4A => parse_mp4a_entry(body, &here, &fourcc, quirks)?,
        _ => Codec::Other { fourcc: fourcc.clone() },
    };
    Ok(SampleEntry {
        fourcc,
        raw: entry.bytes.to_vec(),
        codec,
    })
}

/// Why a decoder cannot switch from one sample description to another
/// mid-stream ([`switchable`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecChange {
    /// H.264 whose picture size changes.
    #[error("picture size changes from {}x{} to {}x{}", .from.0, .from.1, .to.0, .to.1)]
    PictureSize {
        /// Width and height before.
        from: (u32, u32),
        /// Width and height after.
        to: (u32, u32),
    },
    /// AAC whose object type, sample rate, channels or frame length change.
    #[error("audio changes from {} Hz/{} ch to {} Hz/{} ch", .from.sample_rate, .from.channels, .to.sample_rate, .to.channels)]
    Audio {
        /// The configuration before.
        from: Box<AacConfig>,
        /// The configuration after.
        to: Box<AacConfig>,
    },
    /// Another codec altogether.
    #[error("codec changes from {from} to {to}")]
    Codec {
        /// The codec's name before ([`Codec::name`]).
        from: String,
        /// The codec's name after.
        to: String,
    },
}

/// Whether a decoder can switch from `a` to `b` mid-stream: same codec and
/// picture size, or same audio object type, rate and channels.
pub fn switchable(a: &Codec, b: &Codec) -> Result<(), CodecChange> {
    match (a, b) {
        (Codec::Avc(x), Codec::Avc(y)) if (x.width, x.height) == (y.width, y.height) => Ok(()),
        (Codec::Avc(x), Codec::Avc(y)) => Err(CodecChange::PictureSize {
            from: (x.width, x.height),
            to: (y.width, y.height),
        }),
        (Codec::Aac(x), Codec::Aac(y))
            if (x.object_type, x.sample_rate, x.channels, x.frame_length)
                == (y.object_type, y.sample_rate, y.channels, y.frame_length) =>
        {
            Ok(())
        }
        (Codec::Aac(x), Codec::Aac(y)) => Err(CodecChange::Audio {
            from: Box::new(x.clone()),
            to: Box::new(y.clone()),
        }),
        _ => Err(CodecChange::Codec {
            from: a.name(),
            to: b.name(),
        }),
    }
}

/// The four bytes as text, escaping anything unprintable.
pub(crate) fn fourcc_string(b: [u8; 4]) -> String {
    b.iter()
        .map(|&c| {
            if c.is_ascii_graphic() || c == b' ' {
                (c as char).to_string()
            } else {
                format!("\\x{c:02x}")
            }
        })
        .collect()
}

fn find_child<'a>(children: &'a [u8], kind: &[u8; 4], here: &Here) -> Result<Option<BoxSlice<'a>>> {
    let mut it = Children::new(children);
    while let Some(b) = it.next_box(here)? {
        if b.kind == mp4_atom::FourCC::new(kind) {
            return Ok(Some(b));
        }
    }
    Ok(None)
}

fn parse_avc_entry(body: &[u8], here: &Here) -> Result<Codec> {
    let fixed = body
        .get(..VISUAL_ENTRY_LEN)
        .ok_or_else(|| here.invalid("visual sample entry shorter than 78 bytes"))?;
    let entry_width = u16::from_be_bytes([fixed[24], fixed[25]]);
    let entry_height = u16::from_be_bytes([fixed[26], fixed[27]]);
    let children = &body[VISUAL_ENTRY_LEN..];
    let avcc_box = find_child(children, b"avcC", here)?
        .ok_or_else(|| here.invalid("no avcC box: the H.264 configuration is missing"))?;
    let here = here.child("avcC");
    let avcc: mp4_atom::Avcc = avcc_box.decode(&here)?;
    let sps = avcc
        .sequence_parameter_sets
        .first()
        .ok_or_else(|| here.invalid("avcC holds no sequence parameter set"))?;
    let parsed = parse_sps(sps, &here)?;
    Ok(Codec::Avc(AvcConfig {
        profile_idc: avcc.avc_profile_indication,
        level_idc: avcc.avc_level_indication,
        width: parsed.0,
        height: parsed.1,
        vui_fps_milli: parsed.2,
        nal_length_size: avcc.length_size,
        entry_width,
        entry_height,
        sps: avcc.sequence_parameter_sets.clone(),
        pps: avcc.picture_parameter_sets.clone(),
    }))
}

/// Width, height and VUI frame rate (mHz) of an SPS NAL unit.
pub(crate) fn parse_sps(nal: &[u8], here: &Here) -> Result<(u32, u32, Option<u64>)> {
    use h264_reader::nal::sps::SeqParameterSet;
    use h264_reader::rbsp::{decode_nal, BitReader};
    let here = here.child("sps");
    if nal.first().map(|h| h & 0x1f) != Some(7) {
        return Err(here.invalid("first parameter set is not an SPS NAL unit"));
    }
    let rbsp = decode_nal(nal).map_err(|e| here.invalid(format!("bad SPS NAL unit: {e}")))?;
    let sps = SeqParameterSet::from_bits(BitReader::new(&rbsp[..]))
        .map_err(|e| here.invalid(format!("SPS does not parse: {e:?}")))?;
    // h264-reader adds 1 to these without a check; real pictures are far below.
    if sps.pic_width_in_mbs_minus1 >= 1 << 16 || sps.pic_height_in_map_units_minus1 >= 1 << 16 {
        return Err(here.invalid("SPS picture size is out of range"));
    }
    let (w, h) = sps
        .pixel_dimensions()
        .map_err(|e| here.invalid(format!("SPS picture size: {e:?}")))?;
    let fps = sps
        .fps()
        .filter(|f| f.is_finite() && *f > 0.0 && *f < 1e6)
        .map(|f| (f * 1000.0).round() as u64);
    Ok((w, h, fps))
}

fn parse_mp4a_entry(body: &[u8], here: &Here, fourcc: &str, quirks: &mut Vec<String>) -> Result<Codec> {
    let fixed = body
        .get(..AUDIO_ENTRY_LEN)
        .ok_or_else(|| here.invalid("audio sample entry shorter than 28 bytes"))?;
    // QuickTime sound description versions 1 and 2 carry extra fields.
    let version = u16::from_be_bytes([fixed[8], fixed[9]]);
    let extra = match version {
        0 => 0,
        1 => 16,
        2 => 36,
        v => return Err(here.unsupported(format!("sound sample description version {v}"))),
    };
    let channels = u16::from_be_bytes([fixed[16], fixed[17]]);
    let sample_rate = u32::from(u16::from_be_bytes([fixed[24], fixed[25]]));
    let children = body
        .get(AUDIO_ENTRY_LEN + extra..)
        .ok_or_else(|| here.invalid("audio sample entry shorter than its version requires"))?;
    let esds_box = match find_child(children, b"esds", here)? {
        Some(b) => Some(b),
        // QuickTime puts it inside a `wave` box.
        None => match find_child(children, b"wave", here)? {
            Some(wave) => find_child(wave.body(), b"esds", &here.child("wave"))?,
            None => None,
        },
    };
    let Some(esds_box) = esds_box else {
        return Ok(Codec::OtherAudio {
            fourcc: fourcc.into(),
            object_type_indication: None,
            sample_rate,
            channels,
        });
    };
    let here = here.child("esds");
    let (object_type_indication, asc) = match esds_box.decode::<mp4_atom::Esds>(&here) {
        Ok(esds) => {
            let dc = esds.es_desc.dec_config;
            (
                dc.object_type_indication,
                dc.dec_specific.map(|d| d.raw).unwrap_or_default(),
            )
        }
        Err(strict) => {
            // Descriptor lengths that disagree with their contents, which
            // ffmpeg and Firefox read past: take what is there.
            let found = lenient_esds(esds_box.body()).ok_or(strict)?;
            quirks.push(format!(
                "{}: the ES descriptors' lengths disagree with their contents; the decoder configuration was read as ffmpeg reads it",
                here.context
            ));
            found
        }
    };
    // 0x40: MPEG-4 audio (ISO/IEC 14496-3); 0x66-0x68: MPEG-2 AAC profiles.
    if !matches!(object_type_indication, 0x40 | 0x66..=0x68) {
        return Ok(Codec::OtherAudio {
            fourcc: fourcc.into(),
            object_type_indication: Some(object_type_indication),
            sample_rate,
            channels,
        });
    }
    if asc.is_empty() {
        return Err(here.invalid("no AudioSpecificConfig in the decoder configuration"));
    }
    Ok(Codec::Aac(parse_audio_specific_config(&asc, &here)?))
}

/// The `objectTypeIndication` and AudioSpecificConfig of an `esds` body
/// (ISO/IEC 14496-1 §7.2.6.5-7), read leniently: a descriptor may claim more
/// bytes than its container holds (its contents are then cut at the
/// container's end) and a DecoderConfigDescriptor that swallows part of the
/// next descriptor still yields its own fields.
fn lenient_esds(body: &[u8]) -> Option<(u8, Vec<u8>)> {
    /// A descriptor's tag and body (cut at the end of `data`), and what follows it.
    fn descriptor(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, mut rest) = data.split_first()?;
        let mut len = 0usize;
        for _ in 0..4 {
            let (&b, r) = rest.split_first()?;
            rest = r;
            len = (len << 7) | usize::from(b & 0x7f);
            if b & 0x80 == 0 {
                break;
            }
        }
        let len = len.min(rest.len());
        Some((tag, &rest[..len], &rest[len..]))
    }
    // Full box header (version, flags), then the ES_Descriptor.
    let (tag, es, _) = descriptor(body.get(4..)?)?;
    if tag != 0x03 {
        return None;
    }
    let flags = *es.get(2)?;
    let mut skip = 3;
    if flags & 0x80 != 0 {
        skip += 2; // dependsOn_ES_ID
    }
    if flags & 0x40 != 0 {
        skip += 1 + usize::from(*es.get(skip)?); // URL
    }
    if flags & 0x20 != 0 {
        skip += 2; // OCR_ES_Id
    }
    let (tag, config, _) = descriptor(es.get(skip..)?)?;
    if tag != 0x04 {
        return None;
    }
    let object_type_indication = *config.first()?;
    // objectTypeIndication, streamType, bufferSizeDB, maxBitrate, avgBitrate: 13 bytes.
    let asc = match config.get(13..).and_then(descriptor) {
        Some((0x05, asc, _)) => asc.to_vec(),
        _ => Vec::new(),
    };
    Some((object_type_indication, asc))
}

/// Sampling frequencies by index (ISO/IEC 14496-3 §1.6.3.4).
const AAC_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Parses an AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1), its bits
/// read by `h264-reader`'s bit reader.
pub(crate) fn parse_audio_specific_config(asc: &[u8], here: &Here) -> Result<AacConfig> {
    use h264_reader::rbsp::{BitRead, BitReader};
    let here = here.child("AudioSpecificConfig");
    let mut bits = BitReader::new(asc);
    let short = |_| here.invalid("AudioSpecificConfig is too short");
    let mut object_type: u8 = bits.read::<5, u8>("audioObjectType").map_err(short)?;
    if object_type == 31 {
        object_type = 32 + bits.read::<6, u8>("audioObjectTypeExt").map_err(short)?;
    }
    let freq_index: u8 = bits.read::<4, u8>("samplingFrequencyIndex").map_err(short)?;
    let sample_rate = if freq_index == 15 {
        bits.read::<24, u32>("samplingFrequency").map_err(short)?
    } else {
        *AAC_RATES
            .get(usize::from(freq_index))
            .ok_or_else(|| here.invalid(format!("reserved sampling frequency index {freq_index}")))?
    };
    let channels: u8 = bits.read::<4, u8>("channelConfiguration").map_err(short)?;
    // GASpecificConfig's frameLengthFlag, for the AAC object types that have it.
    let frame_length = if matches!(object_type, 1..=4 | 6 | 7 | 17 | 19..=23) {
        match bits.read_bit("frameLengthFlag") {
            Ok(true) => 960,
            _ => 1024,
        }
    } else {
        1024
    };
    if sample_rate == 0 {
        return Err(here.invalid("sampling frequency is 0"));
    }
    Ok(AacConfig {
        object_type,
        sample_rate,
        channels,
        frame_length,
        asc: asc.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn here() -> Here<'static> {
        Here::new(Path::new("t.mp4"), "esds")
    }

    #[test]
    fn asc_aac_lc_16k_mono() {
        // object type 2, index 8 (16 kHz), 1 channel: 00010 1000 0001 000
        let c = parse_audio_specific_config(&[0x14, 0x08], &here()).unwrap();
        assert_eq!((c.object_type, c.sample_rate, c.channels), (2, 16000, 1));
        assert_eq!(c.frame_length, 1024);
    }

    #[test]
    fn asc_explicit_rate_and_escape_object_type() {
        // object type 31 -> 32 + 0 (= 32, layer 1), index 15, rate 12345, 2 channels
        let mut bits: u64 = 0;
        let mut n = 0;
        for (v, w) in [(31u64, 5), (0, 6), (15, 4), (12345, 24), (2, 4)] {
            bits = (bits << w) | v;
            n += w;
        }
        bits <<= 64 - n;
        let bytes = bits.to_be_bytes();
        let c = parse_audio_specific_config(&bytes[..6], &here()).unwrap();
        assert_eq!((c.object_type, c.sample_rate, c.channels), (32, 12345, 2));
    }

    #[test]
    fn asc_errors_are_clear() {
        assert!(parse_audio_specific_config(&[], &here())
            .unwrap_err()
            .to_string()
            .contains("too short"));
        // index 13 is reserved
        let e = parse_audio_specific_config(&[0x16, 0x88], &here()).unwrap_err();
        assert!(e.to_string().contains("reserved sampling frequency index 13"), "{e}");
    }

    #[test]
    fn sps_rejects_garbage_without_panicking() {
        for nal in [
            &[][..],
            &[0x67][..],
            &[0x67, 0xff, 0xff, 0xff, 0xff, 0xff][..],
            &[0x68, 1, 2][..],
        ] {
            let e = parse_sps(nal, &here()).unwrap_err();
            assert_eq!(e.category(), "invalid", "{nal:?}: {e}");
            assert!(e.to_string().contains("SPS"), "{nal:?}: {e}");
        }
    }
}
