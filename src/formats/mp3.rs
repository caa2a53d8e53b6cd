//! MP3 chunks: reading MPEG audio frames (and measuring their levels for
//! `--deep`).
//!
//! # Reading
//!
//! An MP3 file is a sequence of MPEG audio frames, each with a 4-byte header
//! (ISO/IEC 11172-3 §2.4.1.3 syntax, §2.4.2.3 semantics; the lower sampling
//! rates of ISO/IEC 13818-3 §2.4.1.3 / §2.4.2.3, and the unofficial MPEG-2.5
//! extension), possibly wrapped in tags that are no audio: an ID3v2 tag
//! at the start (with its footer), an APEv2 tag and a 128-byte ID3v1 `TAG` at
//! the end. Only Layer III is handled; Layers I and II and the free-format
//! bitrate are [`Error::Unsupported`]. A frame header is only accepted when
//! the next frame's header confirms it (same version, layer, rate and
//! channel count), so stray `0xFFF` bytes in junk are not taken for frames.
//!
//! The first frame may be a Xing/Info (or VBRI) header frame written by the
//! encoder instead of audio; LAME and FFmpeg add a LAME tag to it that
//! carries the encoder delay and padding (the LAME "Mp3 info tag" revision 1,
//! not part of ISO). The presented audio of a chunk is its decoded samples
//! minus the delay and the padding, as FFmpeg trims them: decoding starts
//! `delay + 529` samples in (529 is the decoder's own delay) and ends
//! `padding - 529` samples before the last frame's end.
//!
//! The side information of each Layer III frame (ISO/IEC 11172-3 §2.4.1.7
//! and §2.4.2.7; 13818-3 §2.4.1.7) is read for `main_data_begin` and the
//! `part2_3_length` of each granule: the bit reservoir. A frame's main data
//! may start in the frames before it, so a frame cannot simply be dropped or
//! have silence put before it (see `mux::mp3`).
//!
//! The join and the writer are in `mux::mp3`.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, Here, Result};
use crate::formats::deep::{AnalysisError, AudioAnalysis};

use crate::limits::{Limit, Limits};

/// The decoder's own delay in samples (the synthesis filter bank and the
/// overlap of the hybrid filter bank), which FFmpeg and LAME add to the
/// encoder delay of the LAME tag.
pub const DECODER_DELAY: u64 = 529;

/// Size of one read block when copying.
pub(crate) const BLOCK: usize = 128 << 10;
/// The probe reads headers from windows of this size.
pub(crate) const WINDOW: usize = 64 << 10;
/// Frames at the start of a chunk whose reservoir bytes the probe keeps (so
/// that leading priming frames can be dropped): the longest delay a LAME tag
/// can state (4095 + 529 samples) covers 8 frames of 576 samples.
pub(crate) const LEAD_FRAMES: usize = 9;
/// Most ID3v2 tags in a row followed at the start of a file.
pub(crate) const MAX_ID3V2_TAGS: u32 = 16;
/// Bytes of the LAME tag after the Xing fields.
pub(crate) const LAME_TAG_LEN: usize = 36;
/// The LAME tag CRC covers the first bytes of the header frame (FFmpeg and LAME).
pub(crate) const LAME_CRC_SPAN: usize = 190;
/// Encoder string written when chunk 0 names none.
pub(crate) const DEFAULT_ENCODER: &[u8; 9] = b"LAME3.100";

/// MPEG audio version (ISO/IEC 11172-3, 13818-3, and the MPEG-2.5 extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MpegVersion {
    /// MPEG-1 (32, 44.1, 48 kHz; 1152 samples per Layer III frame).
    Mpeg1,
    /// MPEG-2 low sampling frequencies (16, 22.05, 24 kHz; 576 samples per frame).
    Mpeg2,
    /// MPEG-2.5 (8, 11.025, 12 kHz; 576 samples per frame).
    Mpeg25,
}

impl std::fmt::Display for MpegVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MpegVersion::Mpeg1 => "MPEG-1",
            MpegVersion::Mpeg2 => "MPEG-2",
            MpegVersion::Mpeg25 => "MPEG-2.5",
        })
    }
}

/// Channel mode of the frame header (ISO/IEC 11172-3 §2.4.2.3 `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelMode {
    /// Two independent channels.
    Stereo,
    /// Mid/side or intensity stereo.
    JointStereo,
    /// Two unrelated channels.
    DualChannel,
    /// One channel.
    Mono,
}

impl std::fmt::Display for ChannelMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChannelMode::Stereo => "stereo",
            ChannelMode::JointStereo => "joint stereo",
            ChannelMode::DualChannel => "dual channel",
            ChannelMode::Mono => "mono",
        })
    }
}

pub(crate) const RATES: [[u32; 3]; 3] = [[44100, 48000, 32000], [22050, 24000, 16000], [11025, 12000, 8000]];
/// Bitrates in kbit/s by index: MPEG-1 Layer I, II, III; MPEG-2/2.5 Layer I, II and III.
pub(crate) const BITRATES: [[u16; 15]; 4] = [
    [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
    [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
    [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
    [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
];
pub(crate) const BITRATES_LSF: [u16; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];

/// A frame header (ISO/IEC 11172-3 §2.4.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) raw: [u8; 4],
    pub(crate) version: MpegVersion,
    /// 1, 2 or 3.
    pub(crate) layer: u8,
    pub(crate) crc: bool,
    pub(crate) bitrate_index: u8,
    pub(crate) rate_index: u8,
    pub(crate) padding: bool,
    pub(crate) mode: ChannelMode,
}

impl Header {
    /// The header in `b`, when it is one (free format included, bitrate 0).
    pub(crate) fn parse(b: [u8; 4]) -> Option<Header> {
        if b[0] != 0xFF || b[1] & 0xE0 != 0xE0 {
            return None;
        }
        let version = match (b[1] >> 3) & 3 {
            0 => MpegVersion::Mpeg25,
            2 => MpegVersion::Mpeg2,
            3 => MpegVersion::Mpeg1,
            _ => return None,
        };
        let layer = match (b[1] >> 1) & 3 {
            1 => 3,
            2 => 2,
            3 => 1,
            _ => return None,
        };
        let bitrate_index = b[2] >> 4;
        let rate_index = (b[2] >> 2) & 3;
        if bitrate_index == 15 || rate_index == 3 || b[3] & 3 == 2 {
            return None;
        }
        let mode = match b[3] >> 6 {
            0 => ChannelMode::Stereo,
            1 => ChannelMode::JointStereo,
            2 => ChannelMode::DualChannel,
            _ => ChannelMode::Mono,
        };
        Some(Header {
            raw: b,
            version,
            layer,
            crc: b[1] & 1 == 0,
            bitrate_index,
            rate_index,
            padding: b[2] & 2 != 0,
            mode,
        })
    }

    pub(crate) fn sample_rate(&self) -> u32 {
        let v = match self.version {
            MpegVersion::Mpeg1 => 0,
            MpegVersion::Mpeg2 => 1,
            MpegVersion::Mpeg25 => 2,
        };
        RATES[v][usize::from(self.rate_index)]
    }

    /// Bit/s of bitrate index `index` in this header's version and layer.
    pub(crate) fn bitrate_of(&self, index: u8) -> u32 {
        let i = usize::from(index.min(14));
        let kbps = match (self.version, self.layer) {
            (MpegVersion::Mpeg1, l) => BITRATES[usize::from(l.clamp(1, 3) - 1)][i],
            (_, 1) => BITRATES[3][i],
            _ => BITRATES_LSF[i],
        };
        u32::from(kbps) * 1000
    }

    pub(crate) fn samples_per_frame(&self) -> u32 {
        match (self.layer, self.version) {
            (1, _) => 384,
            (3, MpegVersion::Mpeg2 | MpegVersion::Mpeg25) => 576,
            _ => 1152,
        }
    }

    /// Frame length in bytes with bitrate index `index` and padding `pad`;
    /// `None` for the free format.
    pub(crate) fn frame_len_with(&self, index: u8, pad: bool) -> Option<u32> {
        let br = self.bitrate_of(index);
        if br == 0 {
            return None;
        }
        let rate = self.sample_rate();
        let pad = u32::from(pad);
        Some(match (self.layer, self.version) {
            (1, _) => (12 * br / rate + pad) * 4,
            (3, MpegVersion::Mpeg2 | MpegVersion::Mpeg25) => 72 * br / rate + pad,
            _ => 144 * br / rate + pad,
        })
    }

    pub(crate) fn frame_len(&self) -> Option<u32> {
        self.frame_len_with(self.bitrate_index, self.padding)
    }

    pub(crate) fn channels(&self) -> u16 {
        if self.mode == ChannelMode::Mono {
            1
        } else {
            2
        }
    }

    /// Bytes of Layer III side information.
    pub(crate) fn side_info_len(&self) -> usize {
        match (self.version, self.mode) {
            (MpegVersion::Mpeg1, ChannelMode::Mono) => 17,
            (MpegVersion::Mpeg1, _) => 32,
            (_, ChannelMode::Mono) => 9,
            _ => 17,
        }
    }

    /// Where the main data region starts in the frame.
    pub(crate) fn region_start(&self) -> usize {
        4 + if self.crc { 2 } else { 0 } + self.side_info_len()
    }

    /// Whether `other` belongs to the same stream (version, layer, rate and channel count).
    pub(crate) fn same_stream(&self, other: &Header) -> bool {
        self.version == other.version
            && self.layer == other.layer
            && self.rate_index == other.rate_index
            && self.channels() == other.channels()
    }

    /// This header with another bitrate index, no CRC, no padding and no
    /// mode extension: the header of a generated frame.
    pub(crate) fn generated(&self, index: u8) -> [u8; 4] {
        let mut b = self.raw;
        b[1] |= 1;
        b[2] = (index << 4) | (b[2] & 0x0C) | (b[2] & 1);
        b[3] &= 0xCF;
        b
    }
}

/// Reads bits from a byte slice, most significant first.
pub(crate) struct Bits<'a> {
    pub(crate) data: &'a [u8],
    pub(crate) pos: usize,
}

impl Bits<'_> {
    pub(crate) fn read(&mut self, n: usize) -> u32 {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = self.data.get(self.pos / 8).copied().unwrap_or(0);
            v = (v << 1) | u32::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        v
    }
    pub(crate) fn skip(&mut self, n: usize) {
        self.pos += n;
    }
}

/// `main_data_begin` and the main data bytes (the sum of `part2_3_length`,
/// rounded up) from a Layer III frame's side information.
pub(crate) fn side_info(h: &Header, si: &[u8]) -> (u16, u16) {
    let mut b = Bits { data: si, pos: 0 };
    let mono = h.mode == ChannelMode::Mono;
    let ch = if mono { 1 } else { 2 };
    let (mdb, granules, entry) = match h.version {
        MpegVersion::Mpeg1 => {
            let mdb = b.read(9);
            b.skip(if mono { 5 } else { 3 } + 4 * ch);
            (mdb, 2, 59)
        }
        _ => {
            let mdb = b.read(8);
            b.skip(if mono { 1 } else { 2 });
            (mdb, 1, 63)
        }
    };
    let mut bits = 0u32;
    for _ in 0..granules * ch {
        bits += b.read(12);
        b.skip(entry - 12);
    }
    // mdb < 512 and bits < 4 * 4096: both fit.
    (
        u16::try_from(mdb).unwrap_or(u16::MAX),
        u16::try_from(bits.div_ceil(8)).unwrap_or(u16::MAX),
    )
}

/// One audio frame of a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Byte offset of its header in the file.
    pub offset: u64,
    /// Its length in bytes, header included.
    pub size: u16,
    /// Its header's bitrate index.
    pub bitrate_index: u8,
    /// Where its main data region starts, from its header (header, CRC and side information before it).
    pub region_start: u8,
    /// `main_data_begin`: how many bytes its main data starts before its own region.
    pub main_data_begin: u16,
    /// Bytes of main data it uses (the sum of its `part2_3_length`, rounded up).
    pub main_data_len: u16,
}

impl Frame {
    pub(crate) fn region_len(&self) -> u16 {
        self.size.saturating_sub(u16::from(self.region_start))
    }

    /// Bytes at the end of its region that it does not use itself.
    pub(crate) fn unused_tail(&self) -> u16 {
        self.region_len()
            .saturating_sub(self.main_data_len.saturating_sub(self.main_data_begin))
    }

    pub(crate) fn end(&self) -> u64 {
        self.offset.saturating_add(u64::from(self.size))
    }
}

/// A probed MP3 chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct Mp3 {
    /// The file.
    pub path: PathBuf,
    /// MPEG version of its frames.
    pub version: MpegVersion,
    /// Channel mode of its first audio frame.
    pub channel_mode: ChannelMode,
    /// Sampling rate, Hz.
    pub sample_rate: u32,
    /// 1 or 2.
    pub channels: u16,
    /// Samples per channel in one frame: 1152 (MPEG-1) or 576.
    pub samples_per_frame: u32,
    /// Every audio frame, in file order (the Xing/Info/VBRI frame excluded).
    pub audio_frames: Vec<Frame>,
    /// Byte range of the audio frames: from the first audio frame's header
    /// to the end of the last one (tags, the header frame and trailing junk outside).
    pub audio_range: (u64, u64),
    /// Byte range of the Xing/Info/VBRI header frame, when there is one.
    pub header_frame: Option<(u64, u64)>,
    /// Average bitrate of the audio frames, bit/s.
    pub bitrate_avg: u32,
    /// Lowest frame bitrate, bit/s.
    pub bitrate_min: u32,
    /// Highest frame bitrate, bit/s.
    pub bitrate_max: u32,
    /// Encoder string of the LAME tag (`LAME…`, `Lavf…`, `Lavc…`), when there is one.
    pub encoder: Option<String>,
    /// Encoder delay from the LAME tag, samples (0 without one).
    pub encoder_delay: u32,
    /// Encoder padding from the LAME tag, samples (0 without one).
    pub encoder_padding: u32,
    /// What was odd but readable: junk skipped between frames, trailing bytes.
    pub quirks: Vec<String>,
    /// The last frame was cut short: how many bytes are missing.
    pub truncated: Option<String>,
    /// The LAME tag as found.
    pub(crate) lame: Option<[u8; LAME_TAG_LEN]>,
    /// The first audio frame's header bytes.
    pub(crate) first_header: [u8; 4],
    /// For each of the first frames, the main data bytes its
    /// `main_data_begin` points back to (empty when 0).
    pub(crate) lead_carry: Vec<Vec<u8>>,
}

impl Mp3 {
    /// Number of audio frames.
    pub fn frames(&self) -> u64 {
        self.audio_frames.len() as u64
    }

    /// Presented samples per channel: the frames' samples less the encoder
    /// delay and padding.
    pub fn samples(&self) -> u64 {
        (self.frames() * u64::from(self.samples_per_frame))
            .saturating_sub(u64::from(self.encoder_delay))
            .saturating_sub(u64::from(self.encoder_padding))
    }

    /// Presented duration, milliseconds.
    pub fn duration_ms(&self) -> f64 {
        self.samples() as f64 * 1000.0 / f64::from(self.sample_rate.max(1))
    }

    /// Average bitrate, bit/s.
    pub fn bitrate(&self) -> u32 {
        self.bitrate_avg
    }

    /// Decoded samples before the first presented one (0 without a LAME tag,
    /// as FFmpeg trims nothing then).
    pub(crate) fn lead(&self) -> u64 {
        if self.lame.is_some() {
            u64::from(self.encoder_delay) + DECODER_DELAY
        } else {
            0
        }
    }

    /// Decoded position of the end of the presented samples.
    pub(crate) fn presented_end(&self) -> u64 {
        let all = self.frames() * u64::from(self.samples_per_frame);
        let end = if self.lame.is_some() {
            (all + DECODER_DELAY).saturating_sub(u64::from(self.encoder_padding))
        } else {
            all
        };
        end.max(self.lead())
    }

    /// The header of its first audio frame.
    pub(crate) fn header(&self) -> Option<Header> {
        Header::parse(self.first_header)
    }
}

/// Reads a file through one window of [`WINDOW`] bytes, refilled where the
/// next read needs it: headers and side information are read from it, frame
/// bodies are passed over.
pub(crate) struct Window<R> {
    pub(crate) r: R,
    pub(crate) file_size: u64,
    pub(crate) buf: Vec<u8>,
    pub(crate) start: u64,
}

impl<R: Read + Seek> Window<R> {
    pub(crate) fn new(r: R, file_size: u64) -> Self {
        Window {
            r,
            file_size,
            buf: Vec::new(),
            start: 0,
        }
    }

    /// Up to `n` (at most [`WINDOW`]) bytes at `pos`; fewer at the end of the file.
    pub(crate) fn bytes(&mut self, pos: u64, n: usize) -> std::io::Result<&[u8]> {
        let n = n.min(WINDOW);
        let want_end = pos.saturating_add(n as u64).min(self.file_size);
        let buf_end = self.start + self.buf.len() as u64;
        if pos < self.start || want_end > buf_end {
            let len = usize::try_from(self.file_size.saturating_sub(pos).min(WINDOW as u64)).unwrap_or(WINDOW);
            self.buf.resize(len, 0);
            self.r.seek(SeekFrom::Start(pos))?;
            let mut got = 0;
            while got < len {
                match self.r.read(&mut self.buf[got..]) {
                    Ok(0) => break,
                    Ok(k) => got += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            self.buf.truncate(got);
            self.start = pos;
        }
        let from = usize::try_from(pos - self.start)
            .unwrap_or(usize::MAX)
            .min(self.buf.len());
        let to = usize::try_from(want_end.saturating_sub(self.start))
            .unwrap_or(usize::MAX)
            .clamp(from, self.buf.len());
        Ok(&self.buf[from..to])
    }

    pub(crate) fn header(&mut self, pos: u64) -> std::io::Result<Option<Header>> {
        let b = self.bytes(pos, 4)?;
        Ok(match b {
            [a, b, c, d] => Header::parse([*a, *b, *c, *d]),
            _ => None,
        })
    }
}

/// Bytes of the ID3v2 tag at `pos` (header, body and footer), when one starts there.
pub(crate) fn id3v2_len(b: &[u8]) -> Option<u64> {
    if b.len() < 10 || &b[..3] != b"ID3" || b[3] == 0xFF || b[4] == 0xFF || b[6..10].iter().any(|x| x & 0x80 != 0) {
        return None;
    }
    let size = b[6..10].iter().fold(0u64, |acc, &x| (acc << 7) | u64::from(x));
    let footer = if b[5] & 0x10 != 0 { 10 } else { 0 };
    Some(10 + size + footer)
}

/// What a candidate frame header at a position turned out to be.
pub(crate) enum Sync {
    /// A confirmed frame header.
    Frame(Header),
    /// No frame here.
    No,
}

pub(crate) struct Scanner<'p, R> {
    pub(crate) w: Window<R>,
    pub(crate) here: Here<'p>,
    pub(crate) end: u64,
}

impl<R: Read + Seek> Scanner<'_, R> {
    pub(crate) fn io(&self, e: std::io::Error) -> Error {
        self.here.io(e)
    }

    /// Whether a header `h` at `pos` is confirmed by `depth` following
    /// headers of the same stream (or by the audio ending right after it).
    pub(crate) fn confirm(&mut self, pos: u64, h: &Header, depth: u32) -> Result<bool> {
        let Some(len) = h.frame_len() else { return Ok(false) };
        let next = pos.saturating_add(u64::from(len));
        if next == self.end {
            return Ok(true);
        }
        if depth == 0 {
            return Ok(next < self.end);
        }
        if next.saturating_add(4) > self.end {
            return Ok(false);
        }
        match self.w.header(next).map_err(|e| self.io(e))? {
            Some(n) if n.same_stream(h) && n.frame_len().is_some() => self.confirm(next, &n, depth - 1),
            _ => Ok(false),
        }
    }

    /// What is at `pos`: a frame header confirmed by `depth` more (of the
    /// stream of `like`, when given).
    pub(crate) fn sync_at(&mut self, pos: u64, like: Option<&Header>, depth: u32) -> Result<Sync> {
        let Some(h) = self.w.header(pos).map_err(|e| self.io(e))? else {
            return Ok(Sync::No);
        };
        if like.is_some_and(|l| !l.same_stream(&h)) || h.frame_len().is_none() {
            return Ok(Sync::No);
        }
        Ok(if self.confirm(pos, &h, depth)? {
            Sync::Frame(h)
        } else {
            Sync::No
        })
    }

    /// The first confirmed frame header in `from..end`.
    pub(crate) fn find(&mut self, from: u64, like: Option<&Header>, depth: u32) -> Result<Option<(u64, Header)>> {
        let mut pos = from;
        while pos.saturating_add(4) <= self.end {
            let n = usize::try_from(self.end - pos).unwrap_or(WINDOW).min(WINDOW);
            let candidates: Vec<u64> = {
                let b = self.w.bytes(pos, n).map_err(|e| self.here.io(e))?;
                if b.len() < 4 {
                    return Ok(None);
                }
                b.windows(2)
                    .enumerate()
                    .filter(|(_, p)| p[0] == 0xFF && p[1] & 0xE0 == 0xE0)
                    .map(|(i, _)| pos + i as u64)
                    .collect()
            };
            for c in candidates {
                if let Sync::Frame(h) = self.sync_at(c, like, depth)? {
                    return Ok(Some((c, h)));
                }
            }
            // The last byte may start a sync that continues in the next window.
            pos += (n as u64).saturating_sub(1).max(1);
        }
        Ok(None)
    }

    /// Whether the stream looks like free-format Layer III: a header of
    /// bitrate index 0 that repeats at a fixed distance.
    pub(crate) fn free_format(&mut self, from: u64) -> Result<bool> {
        let n = usize::try_from(self.end.saturating_sub(from))
            .unwrap_or(WINDOW)
            .min(WINDOW);
        let b = self.w.bytes(from, n).map_err(|e| self.here.io(e))?;
        for i in 0..b.len().saturating_sub(4) {
            let Some(h) = Header::parse([b[i], b[i + 1], b[i + 2], b[i + 3]]) else {
                continue;
            };
            if h.bitrate_index != 0 || h.layer != 3 {
                continue;
            }
            let same = |j: usize| {
                b.get(j..j + 3)
                    .is_some_and(|x| x[0] == b[i] && x[1] == b[i + 1] && x[2] & 0xFD == b[i + 2] & 0xFD)
            };
            for d in 48..2900 {
                if same(i + d) && (same(i + 2 * d) || same(i + 2 * d + 1) || same(i + 2 * d - 1)) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// The LAME tag in a Xing/Info header frame `f` whose Xing fields start at
/// `at`, when its encoder string is one FFmpeg trusts for delay and padding.
pub(crate) fn lame_tag(f: &[u8], at: usize) -> Option<[u8; LAME_TAG_LEN]> {
    let flags = u32::from_be_bytes(f.get(at + 4..at + 8)?.try_into().ok()?);
    let mut pos = at + 8;
    for (bit, len) in [(1, 4), (2, 4), (4, 100), (8, 4)] {
        if flags & bit != 0 {
            pos += len;
        }
    }
    let tag: [u8; LAME_TAG_LEN] = f.get(pos..pos + LAME_TAG_LEN)?.try_into().ok()?;
    [b"LAME", b"Lavf", b"Lavc"]
        .iter()
        .any(|p| tag.starts_with(*p))
        .then_some(tag)
}

/// Probes an MP3 file.
pub fn probe(path: &Path, limits: &Limits) -> Result<Mp3> {
    probe_in(&crate::Storage::local(), path, limits)
}

/// [`probe`] of the file or object at `path` in `storage`.
pub fn probe_in(storage: &crate::Storage, path: &Path, limits: &Limits) -> Result<Mp3> {
    storage.with_reader(path, WINDOW, |r, size| probe_reader(r, size, path, limits))
}

/// Probes an MP3 from any seekable reader of `file_size` bytes; `path` is
/// only used in error messages and kept in the result.
pub fn probe_reader<R: Read + Seek>(r: R, file_size: u64, path: &Path, limits: &Limits) -> Result<Mp3> {
    let here = Here::new(path, "");
    let mut s = Scanner {
        w: Window::new(r, file_size),
        here: here.clone(),
        end: file_size,
    };
    let mut quirks = Vec::new();
    let start = s.leading_tags_end(file_size)?;
    s.end = s.trailing_tags_start(start, file_size, &mut quirks)?;
    let (first, h0) = s.first_frame(start, &mut quirks)?;
    let (header_frame, lame) = s.header_frame(first, &h0)?;
    let pos = header_frame.map_or(first, |(_, e)| e);
    let walk = s.walk_frames(pos, &h0, limits, &mut quirks)?;
    let (Some(f0), Some(fl)) = (walk.frames.first(), walk.frames.last()) else {
        return Err(here.invalid("no MPEG audio frame found after the Xing/Info header frame"));
    };
    let audio_range = (f0.offset, fl.end());
    let first_header = Header::parse(
        s.w.bytes(f0.offset, 4)
            .map_err(|e| here.io(e))?
            .try_into()
            .unwrap_or([0; 4]),
    )
    .map_or(h0.raw, |h| h.raw);
    let h1 = Header::parse(first_header).unwrap_or(h0);
    let spf = h0.samples_per_frame();
    let (bitrate_avg, bitrate_min, bitrate_max) = bitrates(&walk.frames, &h1, spf);
    let (delay, padding) = lame.map_or((0, 0), |t| {
        let v = (u32::from(t[21]) << 16) | (u32::from(t[22]) << 8) | u32::from(t[23]);
        (v >> 12, v & 0xFFF)
    });
    Ok(Mp3 {
        path: path.to_path_buf(),
        version: h1.version,
        channel_mode: h1.mode,
        sample_rate: h1.sample_rate(),
        channels: h1.channels(),
        samples_per_frame: spf,
        audio_frames: walk.frames,
        audio_range,
        header_frame,
        bitrate_avg,
        bitrate_min,
        bitrate_max,
        encoder: lame.map(|t| {
            String::from_utf8_lossy(&t[..9])
                .trim_end_matches(['\0', ' '])
                .to_string()
        }),
        encoder_delay: delay,
        encoder_padding: padding,
        quirks,
        truncated: walk.truncated,
        lame,
        first_header,
        lead_carry: walk.lead_carry,
    })
}

/// Average, lowest and highest bit rate of `frames` (bits per second).
fn bitrates(frames: &[Frame], h: &Header, spf: u32) -> (u32, u32, u32) {
    let bytes: u64 = frames.iter().map(|f| u64::from(f.size)).sum();
    let (mut min, mut max) = (u32::MAX, 0);
    for f in frames {
        let b = h.bitrate_of(f.bitrate_index);
        min = min.min(b);
        max = max.max(b);
    }
    let samples = frames.len() as u64 * u64::from(spf);
    let avg = u32::try_from(bytes.saturating_mul(8).saturating_mul(u64::from(h.sample_rate())) / samples.max(1))
        .unwrap_or(u32::MAX);
    (avg, min, max)
}

/// The audio frames the probe walked, and what it kept for the join.
struct Walk {
    frames: Vec<Frame>,
    truncated: Option<String>,
    /// The reservoir bytes each of the first [`LEAD_FRAMES`] frames needs.
    lead_carry: Vec<Vec<u8>>,
}

/// What the frame walk does next at a position.
enum Step {
    /// A frame of this header and length starts here.
    Frame(Header, u32),
    /// Junk: go on at this byte.
    Skip(u64),
    /// The audio ends here.
    End,
}

impl<R: Read + Seek> Scanner<'_, R> {
    /// Where the audio can start: after the ID3v2 tags at the start.
    fn leading_tags_end(&mut self, file_size: u64) -> Result<u64> {
        let mut start = 0u64;
        for _ in 0..MAX_ID3V2_TAGS {
            let Some(len) = id3v2_len(self.w.bytes(start, 10).map_err(|e| self.here.io(e))?) else {
                break;
            };
            let next = start.saturating_add(len);
            if next > file_size {
                return Err(self.here.child("ID3v2").truncated(format!(
                    "the ID3v2 tag at byte {start} claims {len} bytes; the file ends {} bytes after its start",
                    file_size - start
                )));
            }
            start = next;
        }
        Ok(start)
    }

    /// Where the audio ends: before an ID3v1 tag, and an APEv2 tag before it.
    fn trailing_tags_start(&mut self, start: u64, file_size: u64, quirks: &mut Vec<String>) -> Result<u64> {
        let here = self.here.clone();
        let mut end = file_size;
        if end >= start + 128 && self.w.bytes(end - 128, 3).map_err(|e| here.io(e))? == b"TAG" {
            end -= 128;
        }
        if end >= start + 32 {
            let footer = self.w.bytes(end - 32, 32).map_err(|e| here.io(e))?;
            if footer.len() == 32 && &footer[..8] == b"APETAGEX" {
                let size = u64::from(u32::from_le_bytes([footer[12], footer[13], footer[14], footer[15]]));
                let flags = u32::from_le_bytes([footer[20], footer[21], footer[22], footer[23]]);
                let total = size + if flags & 0x8000_0000 != 0 { 32 } else { 0 };
                if total >= 32 && total <= end - start {
                    end -= total;
                } else {
                    quirks.push(format!(
                        "an APEv2 tag footer at byte {} states {total} bytes, more than there are: left in place",
                        end - 32
                    ));
                }
            }
        }
        Ok(end)
    }

    /// The first frame from `start` on, confirmed by two more (or by the
    /// end of the audio): Layer III, with a bit rate in its header.
    fn first_frame(&mut self, start: u64, quirks: &mut Vec<String>) -> Result<(u64, Header)> {
        let here = self.here.clone();
        let Some((first, h0)) = self.find(start, None, 2)? else {
            if self.free_format(start)? {
                return Err(
                    here.unsupported("free-format bitrate (bitrate index 0): the frame length is not in the header")
                );
            }
            return Err(here.invalid("no MPEG audio frame found"));
        };
        if h0.layer != 3 {
            return Err(here.child(format!("frame at byte {first}")).unsupported(format!(
                "{} Layer {}: only Layer III (MP3) is handled",
                h0.version,
                ["I", "II"][usize::from(h0.layer - 1).min(1)]
            )));
        }
        if first > start {
            quirks.push(format!(
                "{} bytes before the first frame skipped (from byte {start})",
                first - start
            ));
        }
        Ok((first, h0))
    }

    /// A Xing/Info (with its LAME tag) or VBRI header frame at `first`:
    /// its byte range, and the LAME tag.
    #[allow(clippy::type_complexity)]
    fn header_frame(&mut self, first: u64, h0: &Header) -> Result<(Option<(u64, u64)>, Option<[u8; LAME_TAG_LEN]>)> {
        let len0 = usize::try_from(h0.frame_len().unwrap_or(0)).unwrap_or(0);
        let f = self.w.bytes(first, len0).map_err(|e| self.here.io(e))?;
        let at = 4 + h0.side_info_len();
        let tag = f.get(at..at + 4);
        let range = Some((first, first + len0 as u64));
        Ok(if tag == Some(b"Xing") || tag == Some(b"Info") {
            (range, lame_tag(f, at))
        } else if f.get(36..40) == Some(b"VBRI") {
            (range, None)
        } else {
            (None, None)
        })
    }

    /// Walks the audio frames of `like`'s stream from `pos` to the end of
    /// the audio, skipping junk (a quirk each), noting a last frame cut short.
    fn walk_frames(&mut self, mut pos: u64, like: &Header, limits: &Limits, quirks: &mut Vec<String>) -> Result<Walk> {
        let here = self.here.clone();
        let mut walk = Walk {
            frames: Vec::new(),
            truncated: None,
            lead_carry: Vec::new(),
        };
        let mut lead_stream: Vec<u8> = Vec::new();
        loop {
            let (h, len) = match self.step(pos, like, quirks, &mut walk.truncated)? {
                Step::End => break,
                Step::Skip(q) => {
                    pos = q;
                    continue;
                }
                Step::Frame(h, len) => (h, len),
            };
            let lead = walk.frames.len() < LEAD_FRAMES;
            let want = if lead {
                usize::try_from(len).unwrap_or(WINDOW)
            } else {
                h.region_start()
            };
            let f = self.w.bytes(pos, want).map_err(|e| here.io(e))?;
            let si = f
                .get(h.region_start() - h.side_info_len()..h.region_start())
                .unwrap_or(&[]);
            let (mdb, mlen) = side_info(&h, si);
            if lead {
                let need = usize::from(mdb);
                let mut carry = vec![0u8; need];
                let have = need.min(lead_stream.len());
                carry[need - have..].copy_from_slice(&lead_stream[lead_stream.len() - have..]);
                if walk.frames.is_empty() && need > 0 {
                    quirks.push(format!(
                        "the first audio frame's main_data_begin is {mdb}: it refers to {mdb} bytes before the audio, which a decoder lacks"
                    ));
                }
                walk.lead_carry.push(carry);
                lead_stream.extend_from_slice(f.get(h.region_start()..).unwrap_or(&[]));
            }
            limits.check(
                Limit::SamplesPerTrack,
                walk.frames.len() as u64 + 1,
                &here,
                "MPEG audio frames",
            )?;
            walk.frames.push(Frame {
                offset: pos,
                size: u16::try_from(len).map_err(|_| here.invalid("frame length over 65535 bytes"))?,
                bitrate_index: h.bitrate_index,
                region_start: u8::try_from(h.region_start()).unwrap_or(u8::MAX),
                main_data_begin: mdb,
                main_data_len: mlen,
            });
            pos = pos.saturating_add(u64::from(len));
        }
        Ok(walk)
    }

    /// What is at `pos` of the audio: a frame of `like`'s stream, junk to
    /// skip (a quirk), or the end (bytes left over are a quirk; a last frame
    /// cut short sets `truncated`).
    fn step(
        &mut self,
        pos: u64,
        like: &Header,
        quirks: &mut Vec<String>,
        truncated: &mut Option<String>,
    ) -> Result<Step> {
        let (here, end) = (self.here.clone(), self.end);
        if pos >= end {
            return Ok(Step::End);
        }
        let left_over = |quirks: &mut Vec<String>| {
            quirks.push(format!(
                "{} bytes after the last frame ignored (from byte {pos})",
                end - pos
            ));
            Step::End
        };
        if end - pos < 4 {
            return Ok(left_over(quirks));
        }
        let h = match self.w.header(pos).map_err(|e| here.io(e))? {
            Some(h) if h.same_stream(like) && h.frame_len().is_some() => h,
            // Junk: find the next confirmed frame.
            _ => {
                return Ok(match self.find(pos + 1, Some(like), 1)? {
                    Some((q, _)) => {
                        quirks.push(format!("{} junk bytes skipped at byte {pos}", q - pos));
                        Step::Skip(q)
                    }
                    None => left_over(quirks),
                })
            }
        };
        let len = h.frame_len().unwrap_or(0);
        let next = pos.saturating_add(u64::from(len));
        // A frame cut short: unless a confirmed frame starts inside it (then it is junk).
        let cut_short = |s: &mut Self, quirks: &mut Vec<String>| -> Result<Option<Step>> {
            Ok(match s.find(pos + 1, Some(like), 1)? {
                Some((q, _)) if q < next => {
                    quirks.push(format!(
                        "{} junk bytes skipped at byte {pos} (a frame cut short)",
                        q - pos
                    ));
                    Some(Step::Skip(q))
                }
                _ => None,
            })
        };
        if next > end {
            if let Some(skip) = cut_short(self, quirks)? {
                return Ok(skip);
            }
            *truncated = Some(format!(
                "the last frame, at byte {pos}, needs {len} bytes; the audio ends after {}: {} bytes missing",
                end - pos,
                next - end
            ));
            return Ok(Step::End);
        }
        if next + 4 <= end {
            // A frame not followed by a frame may be a frame cut short by the one that follows.
            let followed = matches!(self.w.header(next).map_err(|e| here.io(e))?, Some(n) if n.same_stream(like));
            if !followed {
                if let Some(skip) = cut_short(self, quirks)? {
                    return Ok(skip);
                }
            }
        }
        Ok(Step::Frame(h, len))
    }
}

/// Decodes every audio frame of the chunk with symphonia's MPEG audio
/// decoder, fed the frames the probe found (`--deep`): the level of each
/// second of presented audio, decode errors, clipping.
pub fn analyse(storage: &crate::Storage, mp3: &Mp3, limits: &Limits) -> Result<AudioAnalysis, AnalysisError> {
    use symphonia::core::codecs::audio::well_known::CODEC_ID_MP3;
    use symphonia::core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
    use symphonia::core::packet::PacketRef;
    use symphonia::core::units::{Duration, Timestamp};
    use symphonia::default::codecs::MpaDecoder;

    let mut params = AudioCodecParameters::new();
    params.for_codec(CODEC_ID_MP3);
    let mut decoder =
        MpaDecoder::try_new(&params, &AudioDecoderOptions::default()).map_err(|e| AnalysisError::Decoder {
            codec: "MP3",
            message: e.to_string(),
        })?;
    let named = |e: std::io::Error| AnalysisError::File(Error::io(&mp3.path, e));
    // A frame the probe found that the file no longer holds whole.
    let outside = |message: String| AnalysisError::File(Here::new(&mp3.path, "").invalid(message));
    let file = storage.open_scattered(&mp3.path).map_err(named)?;
    let file_len = file.len().map_err(named)?;
    let spf = u64::from(mp3.samples_per_frame);
    let (start, end) = (mp3.lead(), mp3.presented_end());
    let channels = usize::from(mp3.channels.max(1));
    // Frames are read in runs of contiguous frames of at most this many bytes.
    let run_max = limits.get(Limit::SampleBytes).clamp(1 << 12, 1 << 20);

    let mut meter = crate::formats::deep::Meter::new(mp3.sample_rate, channels, start, end);
    let mut pcm: Vec<f32> = Vec::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut buf_start = 0u64;
    let frames = &mp3.audio_frames;
    for (i, f) in frames.iter().enumerate() {
        let first = i as u64 * spf;
        if f.end() > file_len {
            return Err(outside(format!(
                "frame {i} at byte {} lies past the end of the file",
                f.offset
            )));
        }
        if f.offset < buf_start || f.end() > buf_start + buf.len() as u64 {
            let mut run_end = f.end();
            for n in &frames[i + 1..] {
                if n.offset != run_end || n.end() - f.offset > run_max || n.end() > file_len {
                    break;
                }
                run_end = n.end();
            }
            // At most `run_max` bytes, or one frame (under 2 KiB).
            let len = usize::try_from(run_end - f.offset).map_err(|e| outside(format!("frame {i}: {e}")))?;
            buf.resize(len, 0);
            file.read_exact_at(&mut buf, f.offset).map_err(named)?;
            buf_start = f.offset;
        }
        let from = usize::try_from(f.offset - buf_start).map_err(|e| outside(format!("frame {i}: {e}")))?;
        let data = buf
            .get(from..from + usize::from(f.size))
            .ok_or_else(|| outside(format!("frame {i} outside its read")))?;
        let packet = PacketRef::new(
            0,
            Timestamp::new(i64::try_from(first).unwrap_or(i64::MAX)),
            Duration::new(spf),
            data,
        );
        match decoder.decode_ref(&packet) {
            Ok(b) => b.copy_to_vec_interleaved(&mut pcm),
            Err(e) => {
                meter.decode_error(first, e.to_string());
                decoder.reset();
                pcm.clear();
                pcm.resize(usize::try_from(spf).unwrap_or(0) * channels, 0.0);
            }
        }
        meter.add(first, &pcm);
    }
    Ok(meter.finish())
}
