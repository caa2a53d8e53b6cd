//! WAV chunks: reading RIFF/WAVE (and RF64), and measuring their levels.
//! The join and the writer are in `mux::wav` (`plan`, `write`, `write_channels`).
//!
//! # Formats
//!
//! * RIFF/WAVE, after the Microsoft/IBM *Multimedia Programming Interface and
//!   Data Specifications 1.0* (1991): a `RIFF` header with form type `WAVE`,
//!   then chunks (four-character id, 32-bit little-endian size, body, a pad
//!   byte after an odd-sized body): `fmt ` (`WAVEFORMATEX`), `data`, and the
//!   marker chunks written here: `cue ` (cue points) and `LIST` of type
//!   `adtl` (associated data: `labl` labels and `ltxt` region lengths).
//! * `WAVE_FORMAT_EXTENSIBLE` (Microsoft, *Multiple Channel Audio Data and
//!   WAVE Files*): format tag 0xFFFE, `cbSize` 22, valid bits per sample, a
//!   speaker channel mask and a sub-format GUID whose first two bytes are
//!   the real format tag.
//! * RF64 (EBU Tech 3306; `BW64` of ITU-R BS.2088 is read alike): form id
//!   `RF64`, 0xFFFFFFFF in the 32-bit RIFF and `data` sizes, and a `ds64`
//!   chunk first holding the 64-bit RIFF size, data size, sample count and a
//!   table of other chunks' 64-bit sizes.
//!
//! Only integer PCM (8, 16, 24 and 32 bits) is stitched: its frames are
//! copied byte for byte, never decoded or resampled.
//!
//! # Reading, planning, writing
//!
//! [`probe`] walks the chunk headers and seeks past their bodies; only `fmt `
//! and `ds64` are read, each up to a fixed number of bytes. `plan` lays the
//! chunks' frames end to end, with digital silence where `--gaps wallclock`
//! holds for the wall clock. `write` writes the metadata chunks first (all
//! sizes are known up front) and then the frames, copied from the inputs in
//! blocks while every input is hashed in the same pass; `write_channels`
//! writes one mono file per channel in one pass. [`analyse`] and
//! [`channel_levels`] measure levels for `--deep`.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::error::{Error, Here, Result};
use crate::formats::deep::{to_dbfs, AnalysisError, AudioAnalysis, CLIP_LEVEL, FLOOR_DBFS};
use crate::limits::{Limit, Limits};

/// `WAVE_FORMAT_PCM`: integer PCM.
pub const WAVE_FORMAT_PCM: u16 = 0x0001;
/// `WAVE_FORMAT_IEEE_FLOAT`: floating-point PCM.
pub const WAVE_FORMAT_IEEE_FLOAT: u16 = 0x0003;
/// `WAVE_FORMAT_EXTENSIBLE`: the real format is in the sub-format GUID.
pub const WAVE_FORMAT_EXTENSIBLE: u16 = 0xFFFE;
/// Most channels a WAV may have here: the 18 speaker positions of the
/// `WAVE_FORMAT_EXTENSIBLE` channel mask.
pub const MAX_CHANNELS: u16 = 18;

/// Bytes of a `WAVE_FORMAT_EXTENSIBLE` `fmt ` body; no more of `fmt ` is read.
pub(crate) const FMT_EXTENSIBLE_LEN: u64 = 40;
/// Bytes of a `ds64` body before its table.
pub(crate) const DS64_LEN: u64 = 28;
/// Entries of the `ds64` table read at most (12 bytes each).
pub(crate) const DS64_TABLE_MAX: u64 = 64;
/// Bytes of the sub-format GUID after its two-byte format tag, common to
/// every `KSDATAFORMAT_SUBTYPE_*` made from a format tag
/// (`XXXXXXXX-0000-0010-8000-00AA00389B71`, little-endian fields).
pub(crate) const GUID_TAIL: [u8; 14] = [
    0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71,
];
/// Speaker bit of the front centre, the mask of a mono extensible file.
pub(crate) const SPEAKER_FRONT_CENTER: u32 = 0x4;
/// Size of one read block.
pub(crate) const BLOCK: usize = 128 << 10;

/// What a WAV chunk holds, as [`probe`] read it from its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wav {
    /// The file probed.
    pub path: PathBuf,
    /// Its size in bytes.
    pub file_size: u64,
    /// The format tag: [`WAVE_FORMAT_PCM`] (1) for integer PCM, the only
    /// one [`probe`] accepts; for `WAVE_FORMAT_EXTENSIBLE` the tag of its
    /// sub-format GUID.
    pub format_tag: u16,
    /// Whether `fmt ` is `WAVE_FORMAT_EXTENSIBLE` (0xFFFE).
    pub extensible: bool,
    /// Interleaved channels, 1 to [`MAX_CHANNELS`].
    pub channels: u16,
    /// Frames per second.
    pub sample_rate: u32,
    /// Bits of one sample's container: 8 (unsigned), 16, 24 or 32.
    pub bits_per_sample: u16,
    /// Bits of a sample that carry signal (extensible `wValidBitsPerSample`;
    /// `bits_per_sample` otherwise).
    pub valid_bits: u16,
    /// Bytes of one frame: `channels * bits_per_sample / 8`.
    pub block_align: u16,
    /// The speaker positions of the channels (`WAVE_FORMAT_EXTENSIBLE` only).
    pub channel_mask: Option<u32>,
    /// File offset of the first PCM byte.
    pub data_offset: u64,
    /// Bytes of whole frames really present in the file.
    pub data_len: u64,
    /// The `data` size the header gave (from `ds64` in an RF64 file; 0 or
    /// 0xFFFFFFFF as a streaming writer left it).
    pub declared_data_len: u64,
    /// Bytes after the last whole frame that are no whole frame (a cut-off
    /// file, or a data size that is not a multiple of `block_align`); not
    /// stitched.
    pub partial_frame_bytes: u64,
    /// Whether the file is RF64 (or BW64) rather than RIFF.
    pub rf64: bool,
    /// What the file does against the format that readers tolerate, and so
    /// recstitch does too: an odd-sized chunk without its pad byte, a size
    /// of 0 or 0xFFFFFFFF left by a streaming writer (the real size was
    /// taken from the file), chunks after `data`, a RIFF size that is not
    /// the file's. Reported as quirks.
    pub quirks: Vec<String>,
    /// When the `data` chunk claims more bytes than the file has: how many
    /// are missing. The frames that are there are stitched.
    pub truncated: Option<String>,
}

impl Wav {
    /// Whole sample frames present.
    pub fn frames(&self) -> u64 {
        if self.block_align == 0 {
            return 0;
        }
        self.data_len / u64::from(self.block_align)
    }

    /// Duration of the frames present, milliseconds.
    pub fn duration_ms(&self) -> f64 {
        if self.sample_rate == 0 {
            return 0.0;
        }
        self.frames() as f64 * 1000.0 / f64::from(self.sample_rate)
    }

    /// Bytes per second: `sample_rate * block_align` (which [`probe`] checked
    /// against the header's byte rate).
    pub fn byte_rate(&self) -> u64 {
        u64::from(self.sample_rate) * u64::from(self.block_align)
    }

    /// The format of its frames.
    pub(crate) fn format(&self) -> Format {
        Format {
            channels: self.channels,
            sample_rate: self.sample_rate,
            bits: self.bits_per_sample,
            valid_bits: self.valid_bits,
            mask: self.channel_mask,
        }
    }
}

/// A chunk id as text: its characters when printable, else hex.
pub(crate) fn fourcc(id: [u8; 4]) -> String {
    if plausible_id(id) {
        id.iter().map(|&b| char::from(b)).collect()
    } else {
        format!("{:02x}{:02x}{:02x}{:02x}", id[0], id[1], id[2], id[3])
    }
}

/// Whether four bytes can be a chunk id: printable ASCII.
pub(crate) fn plausible_id(id: [u8; 4]) -> bool {
    id.iter().all(|b| (0x20..=0x7e).contains(b))
}

pub(crate) fn le16(b: &[u8], at: usize) -> u16 {
    let mut v = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        v.copy_from_slice(s);
    }
    u16::from_le_bytes(v)
}

pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        v.copy_from_slice(s);
    }
    u32::from_le_bytes(v)
}

pub(crate) fn le64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        v.copy_from_slice(s);
    }
    u64::from_le_bytes(v)
}

/// The common name of a format tag, for messages.
pub(crate) fn format_name(tag: u16) -> &'static str {
    match tag {
        0x0001 => "integer PCM",
        0x0002 => "Microsoft ADPCM",
        0x0003 => "IEEE float",
        0x0006 => "A-law",
        0x0007 => "µ-law",
        0x0011 => "IMA ADPCM",
        0x0031 => "GSM 6.10",
        0x0050 => "MPEG audio",
        0x0055 => "MPEG Layer III",
        0x00FF | 0x1610 => "AAC",
        0xF1AC => "FLAC",
        _ => "an unknown format",
    }
}

/// Reads `buf.len()` bytes at `offset`.
pub(crate) fn read_exact_at<R: Read + Seek>(r: &mut R, offset: u64, buf: &mut [u8], here: &Here) -> Result<()> {
    r.seek(SeekFrom::Start(offset)).map_err(|e| here.io(e))?;
    r.read_exact(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            here.truncated(format!("the file ends within the {} bytes at byte {offset}", buf.len()))
        } else {
            here.io(e)
        }
    })
}

/// The id at `at`, when a whole chunk header fits there.
pub(crate) fn peek_id<R: Read + Seek>(r: &mut R, at: u64, file_size: u64, here: &Here) -> Option<[u8; 4]> {
    if at.checked_add(8)? > file_size {
        return None;
    }
    let mut id = [0u8; 4];
    read_exact_at(r, at, &mut id, here).ok()?;
    Some(id)
}

/// The `fmt ` chunk, checked.
pub(crate) struct Fmt {
    format_tag: u16,
    extensible: bool,
    channels: u16,
    sample_rate: u32,
    bits: u16,
    valid_bits: u16,
    block_align: u16,
    mask: Option<u32>,
}

/// The `WAVE_FORMAT_EXTENSIBLE` part of a `fmt ` body: the sub-format's
/// format tag, the channel mask and the valid bits per sample.
fn parse_extensible(b: &[u8], here: &Here) -> Result<(u16, u32, u16)> {
    if b.len() < 40 {
        return Err(here.invalid(format!(
            "a WAVE_FORMAT_EXTENSIBLE fmt chunk of {} bytes, shorter than the 40 it needs",
            b.len()
        )));
    }
    let cb_size = le16(b, 16);
    if cb_size < 22 {
        return Err(here.invalid(format!("cbSize is {cb_size}: WAVE_FORMAT_EXTENSIBLE needs at least 22")));
    }
    let guid = b.get(24..40).unwrap_or(&[]);
    if guid.get(2..) != Some(&GUID_TAIL[..]) {
        let text: String = guid.iter().map(|x| format!("{x:02x}")).collect();
        return Err(here.unsupported(format!(
            "WAVE_FORMAT_EXTENSIBLE with sub-format GUID {text} (not a format tag; only integer PCM is stitched)"
        )));
    }
    Ok((le16(b, 24), le32(b, 20), le16(b, 18)))
}

/// Parses and checks the first bytes of a `fmt ` body (`WAVEFORMATEX`,
/// `WAVEFORMATEXTENSIBLE`); `quirks` gets what is odd but harmless.
pub(crate) fn parse_fmt(b: &[u8], here: &Here, quirks: &mut Vec<String>) -> Result<Fmt> {
    let tag = le16(b, 0);
    let channels = le16(b, 2);
    let sample_rate = le32(b, 4);
    let byte_rate = le32(b, 8);
    let block_align = le16(b, 12);
    let bits = le16(b, 14);
    let (format_tag, extensible, mask, valid_bits) = if tag == WAVE_FORMAT_EXTENSIBLE {
        let (format_tag, mask, valid_bits) = parse_extensible(b, here)?;
        (format_tag, true, Some(mask), valid_bits)
    } else {
        (tag, false, None, bits)
    };
    if format_tag != WAVE_FORMAT_PCM {
        let via = if extensible { " (in WAVE_FORMAT_EXTENSIBLE)" } else { "" };
        return Err(here.unsupported(format!(
            "format tag 0x{format_tag:04X} ({}){via}: only integer PCM is stitched",
            format_name(format_tag)
        )));
    }
    if channels == 0 || channels > MAX_CHANNELS {
        return Err(here.invalid(format!("channels is {channels}: it must be 1 to {MAX_CHANNELS}")));
    }
    if sample_rate == 0 {
        return Err(here.invalid("sample_rate is 0"));
    }
    if !matches!(bits, 8 | 16 | 24 | 32) {
        return Err(here.unsupported(format!(
            "bits_per_sample is {bits}: only 8, 16, 24 and 32-bit PCM is stitched"
        )));
    }
    if valid_bits == 0 || valid_bits > bits {
        return Err(here.invalid(format!(
            "valid bits per sample is {valid_bits}, outside 1 to bits_per_sample ({bits})"
        )));
    }
    let expected_align = u32::from(channels) * u32::from(bits / 8);
    if u32::from(block_align) != expected_align {
        return Err(here.invalid(format!(
            "block_align is {block_align}, but channels × bits_per_sample / 8 is {expected_align}"
        )));
    }
    let expected_rate = u64::from(sample_rate) * u64::from(block_align);
    if u64::from(byte_rate) != expected_rate {
        return Err(here.invalid(format!(
            "byte_rate is {byte_rate}, but sample_rate × block_align is {expected_rate}"
        )));
    }
    if let Some(m) = mask {
        if m.count_ones() > u32::from(channels) {
            quirks.push(format!(
                "the channel mask 0x{m:X} names {} speakers for {channels} channels",
                m.count_ones()
            ));
        }
    }
    Ok(Fmt {
        format_tag,
        extensible,
        channels,
        sample_rate,
        bits,
        valid_bits,
        block_align,
        mask,
    })
}

/// The `ds64` chunk of an RF64 file (EBU Tech 3306).
pub(crate) struct Ds64 {
    riff_size: u64,
    data_size: u64,
    /// Other chunks' 64-bit sizes, by id.
    table: Vec<([u8; 4], u64)>,
}

pub(crate) fn parse_ds64<R: Read + Seek>(r: &mut R, body: u64, size: u64, file_size: u64, here: &Here) -> Result<Ds64> {
    if size < DS64_LEN {
        return Err(here.invalid(format!("ds64 is {size} bytes, shorter than its {DS64_LEN}")));
    }
    if body.checked_add(DS64_LEN).is_none_or(|end| end > file_size) {
        return Err(here.truncated("the file ends inside the ds64 chunk"));
    }
    let mut b = [0u8; 28];
    read_exact_at(r, body, &mut b, here)?;
    let entries = u64::from(le32(&b, 24));
    let fit = (size - DS64_LEN) / 12;
    let room = file_size.saturating_sub(body + DS64_LEN) / 12;
    let n = entries.min(fit).min(room).min(DS64_TABLE_MAX);
    let mut table = Vec::new();
    if n > 0 {
        // n <= DS64_TABLE_MAX: at most 768 bytes.
        let len = usize::try_from(n * 12).map_err(|_| here.invalid("ds64 table too large"))?;
        let mut t = vec![0u8; len];
        read_exact_at(r, body + DS64_LEN, &mut t, here)?;
        for e in t.chunks_exact(12) {
            let mut id = [0u8; 4];
            id.copy_from_slice(&e[..4]);
            table.push((id, le64(e, 4)));
        }
    }
    Ok(Ds64 {
        riff_size: le64(&b, 0),
        data_size: le64(&b, 8),
        table,
    })
}

/// The `data` chunk as found.
pub(crate) struct Data {
    offset: u64,
    declared: u64,
    /// Bytes of the chunk the file holds (to the declared end or the file's).
    present: u64,
    /// Whether the size was left by a streaming writer (taken from the file).
    streaming: bool,
}

/// Probes the WAV at `path`.
///
/// Errors are typed: [`Error::Invalid`] for a file that is not RIFF/WAVE (or
/// RF64/WAVE) or whose `fmt ` fields disagree (the field is named),
/// [`Error::Unsupported`] for a format other than integer PCM (the format
/// tag is named), [`Error::Truncated`] when the file ends before a `data`
/// chunk, [`Error::Limit`] when it has more chunks than
/// [`Limits::max_top_level_boxes`]. A `data` chunk that claims more bytes
/// than the file holds is not an error: see [`Wav::truncated`].
pub fn probe(path: &Path, limits: &Limits) -> Result<Wav> {
    probe_in(&crate::Storage::local(), path, limits)
}

/// [`probe`] of the file or object at `path` in `storage`.
pub fn probe_in(storage: &crate::Storage, path: &Path, limits: &Limits) -> Result<Wav> {
    storage.with_reader(path, 4 << 10, |r, size| probe_reader(r, size, path, limits))
}

/// Probes a WAV from any seekable reader of `file_size` bytes; `path` is
/// only used in error messages and kept in the [`Wav`].
pub fn probe_reader<R: Read + Seek>(mut r: R, file_size: u64, path: &Path, limits: &Limits) -> Result<Wav> {
    let here = Here::new(path, "");
    let (rf64, riff_size32) = riff_header(&mut r, file_size, &here)?;
    let mut walk = Chunks {
        rf64,
        file_size,
        quirks: Vec::new(),
        ds64: None,
        fmt: None,
        data: None,
        after_data: Vec::new(),
        count: 0,
    };
    walk.walk(&mut r, &here, limits)?;
    let Chunks {
        mut quirks,
        ds64,
        fmt,
        data,
        after_data,
        ..
    } = walk;
    let data = data.ok_or_else(|| {
        here.truncated("no data chunk: the download is incomplete or the recording was never finalised")
    })?;
    let fmt = fmt.ok_or_else(|| here.invalid("no fmt chunk"))?;
    if !after_data.is_empty() {
        quirks.push(format!("chunks after the data chunk: {}", after_data.join(", ")));
    }
    let truncated = (!data.streaming && data.present < data.declared).then(|| {
        format!(
            "the data chunk declares {} bytes, the file holds {}: {} bytes are missing",
            data.declared,
            data.present,
            data.declared - data.present
        )
    });
    let align = u64::from(fmt.block_align);
    let partial = data.present % align;
    if partial > 0 && truncated.is_none() {
        quirks.push(format!(
            "the data chunk's {} bytes are not a whole number of {align}-byte frames: the last {partial} bytes are not stitched",
            data.present
        ));
    }
    quirks.extend(riff_size_quirk(
        rf64.then_some(ds64.as_ref()),
        riff_size32,
        file_size,
        truncated.is_some(),
    ));
    Ok(Wav {
        path: path.to_path_buf(),
        file_size,
        format_tag: fmt.format_tag,
        extensible: fmt.extensible,
        channels: fmt.channels,
        sample_rate: fmt.sample_rate,
        bits_per_sample: fmt.bits,
        valid_bits: fmt.valid_bits,
        block_align: fmt.block_align,
        channel_mask: fmt.mask,
        data_offset: data.offset,
        data_len: data.present - partial,
        declared_data_len: data.declared,
        partial_frame_bytes: partial,
        rf64,
        quirks,
        truncated,
    })
}

/// What is odd about the RIFF size (`Some(ds64)` in an RF64 file) against
/// the file's `file_size`: a streaming writer's placeholder, or a size that
/// disagrees (a longer one is expected of a `truncated` file).
fn riff_size_quirk(ds64: Option<Option<&Ds64>>, riff_size32: u32, file_size: u64, truncated: bool) -> Option<String> {
    let end = match ds64 {
        Some(d) => d?.riff_size.checked_add(8)?,
        None if riff_size32 == 0 || riff_size32 == u32::MAX => {
            return Some(format!(
                "the RIFF size is 0x{riff_size32:08X}, as a streaming writer leaves it; the file's size was used"
            ))
        }
        None => u64::from(riff_size32) + 8,
    };
    (end < file_size || (end > file_size && !truncated))
        .then(|| format!("the RIFF header declares {end} bytes, the file has {file_size}"))
}

/// The RIFF (or RF64/BW64) header of a WAVE file: whether it is RF64, and
/// its 32-bit RIFF size.
fn riff_header<R: Read + Seek>(r: &mut R, file_size: u64, here: &Here) -> Result<(bool, u32)> {
    let head_here = here.child("RIFF header");
    if file_size < 12 {
        return Err(head_here.invalid(format!(
            "the file has {file_size} bytes, too few for a RIFF header: not a WAV file"
        )));
    }
    let mut head = [0u8; 12];
    read_exact_at(r, 0, &mut head, &head_here)?;
    let rf64 = match &head[..4] {
        b"RIFF" => false,
        b"RF64" | b"BW64" => true,
        b"RIFX" => {
            return Err(head_here.unsupported("RIFX (big-endian RIFF) is not supported"));
        }
        other => {
            return Err(head_here.invalid(format!(
                "the file starts with `{}`, not RIFF or RF64: not a WAV file",
                fourcc([other[0], other[1], other[2], other[3]])
            )));
        }
    };
    if &head[8..12] != b"WAVE" {
        return Err(head_here.invalid(format!(
            "a RIFF file of form `{}`, not WAVE: not a WAV file",
            fourcc([head[8], head[9], head[10], head[11]])
        )));
    }
    Ok((rf64, le32(&head, 4)))
}

/// What the walk over a WAVE file's chunks found.
struct Chunks {
    rf64: bool,
    file_size: u64,
    quirks: Vec<String>,
    ds64: Option<Ds64>,
    fmt: Option<Fmt>,
    data: Option<Data>,
    /// Ids of the chunks after `data`.
    after_data: Vec<String>,
    /// Chunks walked.
    count: u64,
}

impl Chunks {
    /// Walks the chunk headers from byte 12, reading `ds64` and `fmt ` and
    /// seeking past every other body, to the end of the file (or of a
    /// streaming `data` chunk).
    fn walk<R: Read + Seek>(&mut self, r: &mut R, here: &Here, limits: &Limits) -> Result<()> {
        let file_size = self.file_size;
        let mut pos = 12u64;
        while pos < file_size {
            let left = file_size - pos;
            if left < 8 {
                if self.data.is_some() {
                    self.quirks.push(format!(
                        "{left} stray bytes at the end of the file, too few for a chunk header, were ignored"
                    ));
                    break;
                }
                return Err(here.truncated(format!(
                    "the file ends inside a chunk header at byte {pos}, before any data chunk"
                )));
            }
            let mut h = [0u8; 8];
            read_exact_at(r, pos, &mut h, here)?;
            let id = [h[0], h[1], h[2], h[3]];
            let size32 = le32(&h, 4);
            if !plausible_id(id) {
                if self.data.is_some() {
                    self.quirks.push(format!(
                        "{left} bytes from byte {pos} are not a chunk (id {}) and were ignored",
                        fourcc(id)
                    ));
                    break;
                }
                return Err(here.invalid(format!("the bytes at {pos} are not a chunk header (id {})", fourcc(id))));
            }
            self.count += 1;
            limits.check(Limit::TopLevelBoxes, self.count, here, "number of chunks")?;
            let chunk_here = here.child(format!("{} at byte {pos}", fourcc(id).trim_end()));
            if self.rf64 && self.count == 1 && &id != b"ds64" {
                return Err(chunk_here.invalid("an RF64 file whose first chunk is not ds64"));
            }
            let size = self.size_of(id, size32, &chunk_here)?;
            // pos + 8 <= file_size: checked above.
            let streaming = self.take(r, (id, pos + 8, size, size32), &chunk_here)?;
            if streaming {
                break;
            }
            match self.next_chunk(r, (id, pos, size), &chunk_here, here)? {
                Some(next) => pos = next,
                None => break,
            }
        }
        Ok(())
    }

    /// The size of chunk `id`: its 32-bit size, or in RF64 the `ds64`'s for
    /// one marked 0xFFFFFFFF.
    fn size_of(&self, id: [u8; 4], size32: u32, chunk_here: &Here) -> Result<u64> {
        if !self.rf64 || size32 != u32::MAX {
            return Ok(u64::from(size32));
        }
        let ds = self
            .ds64
            .as_ref()
            .ok_or_else(|| chunk_here.invalid("size 0xFFFFFFFF without a ds64 chunk"))?;
        if &id == b"data" {
            return Ok(ds.data_size);
        }
        ds.table
            .iter()
            .find(|(t, _)| *t == id)
            .map(|(_, s)| *s)
            .ok_or_else(|| chunk_here.invalid("size 0xFFFFFFFF, and the ds64 table has no size for it"))
    }

    /// Takes what chunk `id` (body at `body`, `size` bytes) says; whether it
    /// is a streaming `data` chunk that runs to the end of the file.
    fn take<R: Read + Seek>(
        &mut self,
        r: &mut R,
        (id, body, size, size32): ([u8; 4], u64, u64, u32),
        chunk_here: &Here,
    ) -> Result<bool> {
        let (rf64, file_size, pos) = (self.rf64, self.file_size, body - 8);
        match &id {
            b"ds64" if !rf64 => self
                .quirks
                .push(format!("a ds64 chunk at byte {pos} in a plain RIFF file was ignored")),
            b"ds64" if self.ds64.is_some() => self
                .quirks
                .push(format!("a second ds64 chunk at byte {pos} was ignored")),
            b"ds64" => self.ds64 = Some(parse_ds64(r, body, size, file_size, chunk_here)?),
            b"fmt " if self.fmt.is_some() => self
                .quirks
                .push(format!("a second fmt chunk at byte {pos} was ignored")),
            b"fmt " => {
                if size < 16 {
                    return Err(chunk_here.invalid(format!("fmt is {size} bytes, shorter than the 16 it needs")));
                }
                let want = size.min(FMT_EXTENSIBLE_LEN);
                if body.checked_add(want).is_none_or(|end| end > file_size) {
                    return Err(chunk_here.truncated("the file ends inside the fmt chunk"));
                }
                // want <= 40.
                let mut b = vec![0u8; usize::try_from(want).unwrap_or(40)];
                read_exact_at(r, body, &mut b, chunk_here)?;
                self.fmt = Some(parse_fmt(&b, chunk_here, &mut self.quirks)?);
                if self.data.is_some() {
                    self.quirks.push("the fmt chunk comes after the data chunk".into());
                }
            }
            b"data" if self.data.is_some() => {
                return Err(
                    chunk_here.unsupported("a second data chunk: a WAV with more than one data chunk is not stitched")
                );
            }
            b"data" => {
                let available = file_size - body;
                let streaming = !rf64 && (size32 == u32::MAX || (size32 == 0 && available > 0));
                let present = if streaming {
                    self.quirks.push(format!(
                        "the data chunk's size is 0x{size32:08X}, as a streaming writer leaves it; the real size, {available} bytes to the end of the file, was used"
                    ));
                    available
                } else {
                    size.min(available)
                };
                self.data = Some(Data {
                    offset: body,
                    declared: size,
                    present,
                    streaming,
                });
                return Ok(streaming);
            }
            _ if self.data.is_some() => self.after_data.push(fourcc(id)),
            _ => {}
        }
        Ok(false)
    }

    /// Where the chunk after chunk `id` (at `pos`, `size` bytes) starts:
    /// after its pad byte when it has one; `None` when the walk ends here.
    fn next_chunk<R: Read + Seek>(
        &mut self,
        r: &mut R,
        (id, pos, size): ([u8; 4], u64, u64),
        chunk_here: &Here,
        here: &Here,
    ) -> Result<Option<u64>> {
        let file_size = self.file_size;
        let end = (pos + 8)
            .checked_add(size)
            .ok_or_else(|| chunk_here.invalid(format!("size {size} overflows")))?;
        if end > file_size {
            if &id == b"data" {
                return Ok(None);
            }
            if self.data.is_some() {
                self.quirks.push(format!(
                    "the chunk `{}` at byte {pos} claims {size} bytes; the file ends {} bytes short of it",
                    fourcc(id),
                    end - file_size
                ));
                return Ok(None);
            }
            return Err(chunk_here.truncated(format!(
                "the chunk claims {size} bytes; the file ends {} bytes short of it, before any data chunk",
                end - file_size
            )));
        }
        if size % 2 == 0 {
            return Ok(Some(end));
        }
        if end == file_size {
            self.quirks.push(format!(
                "the chunk `{}` at byte {pos} has an odd size ({size}) and no pad byte at the end of the file",
                fourcc(id)
            ));
            return Ok(Some(end));
        }
        // end < file_size, so end + 1 <= file_size.
        let after_pad = end + 1 == file_size || peek_id(r, end + 1, file_size, here).is_some_and(plausible_id);
        if !after_pad && peek_id(r, end, file_size, here).is_some_and(plausible_id) {
            self.quirks.push(format!(
                "the chunk `{}` at byte {pos} has an odd size ({size}) and no pad byte",
                fourcc(id)
            ));
            return Ok(Some(end));
        }
        Ok(Some(end + 1))
    }
}

/// Decodes one sample of `bits` (little-endian; 8-bit unsigned) to full scale 1.0.
pub(crate) fn sample_value(b: &[u8], bits: u16) -> f64 {
    match (bits, b) {
        (8, [x, ..]) => (f64::from(*x) - 128.0) / 128.0,
        (16, [a, c, ..]) => f64::from(i16::from_le_bytes([*a, *c])) / 32768.0,
        (24, [a, c, d, ..]) => f64::from(i32::from_le_bytes([0, *a, *c, *d]) >> 8) / 8_388_608.0,
        (32, [a, c, d, e, ..]) => f64::from(i32::from_le_bytes([*a, *c, *d, *e])) / 2_147_483_648.0,
        _ => 0.0,
    }
}

/// Reads the chunk's frames in blocks, handing each block of whole frames to `f`.
pub(crate) fn each_block(storage: &crate::Storage, wav: &Wav, mut f: impl FnMut(&[u8])) -> Result<(), AnalysisError> {
    if wav.format_tag != WAVE_FORMAT_PCM || !matches!(wav.bits_per_sample, 8 | 16 | 24 | 32) {
        return Err(AnalysisError::NotIntegerPcm {
            format_tag: wav.format_tag,
            bits_per_sample: wav.bits_per_sample,
        });
    }
    let named = |e: std::io::Error| AnalysisError::File(Error::io(&wav.path, e));
    let frame = u64::from(wav.block_align).max(1);
    let step = (BLOCK as u64 / frame).max(1) * frame;
    let file = storage.open(&wav.path).map_err(named)?;
    file.advise_sequential();
    let mut buf = vec![0u8; usize::try_from(step).unwrap_or(BLOCK)];
    let len = wav.data_len - wav.data_len % frame;
    let mut done = 0u64;
    while done < len {
        let n = usize::try_from((len - done).min(step)).unwrap_or(buf.len());
        let at = wav.data_offset.saturating_add(done);
        file.read_exact_at(&mut buf[..n], at).map_err(named)?;
        f(&buf[..n]);
        done += n as u64;
    }
    Ok(())
}

/// The deep audio check of a WAV chunk (`--deep`), the counterpart of
/// [`crate::formats::deep::analyse_audio`]: the RMS level of each second over all
/// channels, clipped samples (at or above [`CLIP_LEVEL`] of full scale),
/// frames counted in `samples`; `decode_errors` names a cut-off last frame.
/// PCM is read in fixed blocks, so `limits` sets no budget here.
pub fn analyse(storage: &crate::Storage, wav: &Wav, limits: &Limits) -> Result<AudioAnalysis, AnalysisError> {
    let _ = limits;
    let rate = u64::from(wav.sample_rate.max(1));
    let channels = usize::from(wav.channels.max(1));
    let sample = usize::from(wav.bits_per_sample / 8).max(1);
    let frame = channels * sample;
    let clip = f64::from(CLIP_LEVEL);
    let mut out = AudioAnalysis::default();
    let (mut sum, mut n) = (0.0f64, 0u64);
    let mut pos = 0u64;
    each_block(storage, wav, |block| {
        for fr in block.chunks_exact(frame) {
            for s in fr.chunks_exact(sample) {
                let x = sample_value(s, wav.bits_per_sample);
                sum += x * x;
                if x.abs() >= clip {
                    out.clipped_samples += 1;
                    out.first_clip.get_or_insert(pos as f64 / rate as f64);
                }
            }
            n += channels as u64;
            pos += 1;
            if pos.is_multiple_of(rate) {
                out.levels_dbfs.push(to_dbfs(sum / n as f64));
                (sum, n) = (0.0, 0);
            }
        }
    })?;
    if n > 0 {
        out.levels_dbfs.push(to_dbfs(sum / n as f64));
    }
    out.samples = pos;
    if wav.partial_frame_bytes > 0 {
        out.decode_errors.push((
            pos as f64 / rate as f64,
            format!(
                "the last frame is cut short: {} of its {} bytes",
                wav.partial_frame_bytes, wav.block_align
            ),
        ));
    }
    Ok(out)
}

/// The RMS level (dBFS, rounded to 0.1 dB) of each channel over the whole
/// chunk; [`FLOOR_DBFS`] for digital silence.
pub fn channel_levels(storage: &crate::Storage, wav: &Wav, limits: &Limits) -> Result<Vec<f64>, AnalysisError> {
    let _ = limits;
    let channels = usize::from(wav.channels.max(1));
    let sample = usize::from(wav.bits_per_sample / 8).max(1);
    let frame = channels * sample;
    let mut sums = vec![0.0f64; channels];
    let mut frames = 0u64;
    each_block(storage, wav, |block| {
        for fr in block.chunks_exact(frame) {
            for (sum, s) in sums.iter_mut().zip(fr.chunks_exact(sample)) {
                let x = sample_value(s, wav.bits_per_sample);
                *sum += x * x;
            }
            frames += 1;
        }
    })?;
    Ok(sums
        .into_iter()
        .map(|s| {
            if frames == 0 {
                FLOOR_DBFS
            } else {
                to_dbfs(s / frames as f64)
            }
        })
        .collect())
}

/// The format of the output's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Format {
    pub(crate) channels: u16,
    pub(crate) sample_rate: u32,
    pub(crate) bits: u16,
    pub(crate) valid_bits: u16,
    /// The chunks' speaker mask, when they carry one.
    pub(crate) mask: Option<u32>,
}

impl Format {
    /// Bytes of one sample.
    pub(crate) fn sample_bytes(&self) -> u64 {
        u64::from(self.bits / 8)
    }

    /// Bytes of one frame.
    pub(crate) fn frame_bytes(&self) -> u64 {
        u64::from(self.channels) * self.sample_bytes()
    }

    /// The byte of digital silence: 0x80 for unsigned 8-bit, else 0.
    pub(crate) fn silence_byte(&self) -> u8 {
        if self.bits == 8 {
            0x80
        } else {
            0
        }
    }

    /// Whether `fmt ` must be `WAVE_FORMAT_EXTENSIBLE`: more than two
    /// channels, more than 16 bits, or fewer valid bits than the container.
    pub(crate) fn needs_extensible(&self) -> bool {
        self.channels > 2 || self.bits > 16 || self.valid_bits != self.bits
    }

    /// The speaker mask written: the chunks' own, else the first N speaker
    /// bits (front centre for mono).
    pub(crate) fn speaker_mask(&self) -> u32 {
        match (self.mask, self.channels) {
            (Some(m), _) => m,
            (None, 1) => SPEAKER_FRONT_CENTER,
            (None, n) => (1u32 << n.min(MAX_CHANNELS)).wrapping_sub(1),
        }
    }

    /// One channel of this format.
    pub(crate) fn mono(&self) -> Format {
        Format {
            channels: 1,
            mask: None,
            ..*self
        }
    }
}
