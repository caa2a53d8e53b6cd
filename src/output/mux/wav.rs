//! Stitched WAV: the join plan of WAV chunks and the writer of one
//! RIFF/WAVE (RF64 past 4 GiB) with `cue ` points and `LIST`/`adtl` labels;
//! the formats are described in [`crate::formats::wav`].

use std::fs::File;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::formats::wav::*;
use crate::formats::{AudioLayout, AudioPlacement};
use crate::io::{hex, Cancel};
use crate::output::mux::sink::Sink;
use crate::output::mux::write::{Source, Written};
use crate::output::timeline::{Chapter, Hold, MAX_HOLD_SECONDS};

/// A stretch of the output's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece {
    /// `len` bytes of chunk `chunk`'s file from `offset`.
    Data { chunk: usize, offset: u64, len: u64 },
    /// Frames of digital silence.
    Silence { frames: u64 },
}

/// How the chunks become one WAV, known before anything is written.
#[derive(Debug, Clone)]
pub struct WavPlan {
    /// Where each chunk lands, and what the output holds.
    pub layout: AudioLayout,
    format: Format,
    /// The output's frames in order.
    pieces: Vec<Piece>,
    chunks: usize,
}

/// An [`Error::Unsupported`] about chunk `k` of the join.
fn join_error(path: &Path, k: usize, message: impl Into<String>) -> Error {
    Error::Unsupported {
        path: path.to_path_buf(),
        context: format!("chunk {k}"),
        message: message.into(),
    }
}

/// Plans the join of `chunks` in the given order, with silence where
/// `holds` (per chunk, `--gaps wallclock`; empty for `--gaps collapse`)
/// waits for the wall clock.
///
/// All chunks must share format, channels, sample rate and bits
/// ([`Error::Unsupported`] naming the chunk and what differs otherwise). A
/// hold at `at` seconds of chunk `k`'s own audio (0: before it) splits the
/// chunk at frame `round(at * rate)` and inserts `round((resume_at - now) *
/// rate)` frames of silence when that is at least one frame; a hold before
/// the first frame of the output, or at or past the end of its chunk's
/// audio, inserts nothing (the next chunk's hold waits for it). A wait
/// longer than [`MAX_HOLD_SECONDS`] is an error.
pub fn plan(chunks: &[&Wav], holds: &[Vec<Hold>]) -> Result<WavPlan> {
    let format = common_format(chunks)?;
    let rate = f64::from(format.sample_rate);
    let mut pieces = Vec::new();
    let mut placements = Vec::with_capacity(chunks.len());
    let mut out = 0u64;
    for (k, c) in chunks.iter().enumerate() {
        let holds = holds.get(k).map_or(&[][..], Vec::as_slice);
        placements.push(lay_chunk((k, c), holds, &format, &mut pieces, &mut out)?);
    }
    Ok(WavPlan {
        layout: AudioLayout {
            placements,
            duration: out as f64 / rate,
            samples: out,
            packets: 0,
        },
        format,
        pieces,
        chunks: chunks.len(),
    })
}

/// The format every chunk shares, or the chunk that differs and how.
fn common_format(chunks: &[&Wav]) -> Result<Format> {
    let first = chunks.first().ok_or_else(|| Error::Unsupported {
        path: PathBuf::new(),
        context: "the join plan".into(),
        message: "no chunks to join".into(),
    })?;
    let format = Format {
        mask: chunks.iter().find_map(|c| c.channel_mask),
        ..first.format()
    };
    for (k, c) in chunks.iter().enumerate() {
        if let Some((what, this, other)) = difference(c, first, format.mask) {
            return Err(join_error(
                &c.path,
                k,
                format!("its {what} ({this}) differs from the other chunks' ({other}); chunks of one output must share format, channels, rate and bits"),
            ));
        }
        if c.format_tag != WAVE_FORMAT_PCM || u64::from(c.block_align) != format.frame_bytes() {
            return Err(join_error(&c.path, k, "not integer PCM with a consistent block_align"));
        }
    }
    Ok(format)
}

/// What of `c`'s format differs from `first`'s (and the output's `mask`):
/// the field, `c`'s value and the other.
fn difference(c: &Wav, first: &Wav, mask: Option<u32>) -> Option<(&'static str, String, String)> {
    if c.format_tag != first.format_tag {
        return Some((
            "format tag",
            format!("0x{:04X}", c.format_tag),
            format!("0x{:04X}", first.format_tag),
        ));
    }
    if c.channels != first.channels {
        return Some(("channel count", c.channels.to_string(), first.channels.to_string()));
    }
    if c.sample_rate != first.sample_rate {
        return Some((
            "sample rate",
            format!("{} Hz", c.sample_rate),
            format!("{} Hz", first.sample_rate),
        ));
    }
    if c.bits_per_sample != first.bits_per_sample || c.valid_bits != first.valid_bits {
        return Some((
            "bits per sample",
            format!("{} ({} valid)", c.bits_per_sample, c.valid_bits),
            format!("{} ({} valid)", first.bits_per_sample, first.valid_bits),
        ));
    }
    match (c.channel_mask, mask) {
        (Some(a), Some(b)) if a != b => Some(("channel mask", format!("0x{a:X}"), format!("0x{b:X}"))),
        _ => None,
    }
}

/// Lays chunk `k` (`c`) out from output frame `out`: its frames, split where
/// its `holds` wait for the wall clock, with the silence they ask for.
fn lay_chunk(
    (k, c): (usize, &Wav),
    holds: &[Hold],
    format: &Format,
    pieces: &mut Vec<Piece>,
    out: &mut u64,
) -> Result<AudioPlacement> {
    let rate = f64::from(format.sample_rate);
    let frames = c.data_len / format.frame_bytes();
    let mut splits = Vec::new();
    for h in holds {
        if !h.at.is_finite() || !h.resume_at.is_finite() {
            return Err(join_error(&c.path, k, "a hold for the wall clock that is not a number"));
        }
        // Clamped to 0..=frames, so the cast is exact.
        let split = (h.at.max(0.0) * rate).round().min(frames as f64) as u64;
        if split == 0 || split < frames {
            splits.push((split, h.resume_at));
        }
    }
    splits.sort_by_key(|s| s.0);
    let mut cursor = 0u64;
    let mut start = None;
    let mut silence = 0u64;
    for (split, resume_at) in splits {
        span(pieces, (k, c), (cursor, split), out, &mut start)?;
        cursor = cursor.max(split);
        if *out == 0 {
            // The output starts with the first chunk's first frame.
            continue;
        }
        let wait = resume_at - *out as f64 / rate;
        if wait > MAX_HOLD_SECONDS {
            return Err(join_error(&c.path, k, format!(
                "a pause or gap of {wait:.0} s is longer than {MAX_HOLD_SECONDS:.0} s, the longest wait `--gaps wallclock` holds; check the chunks' times or stitch with `--gaps collapse`"
            )));
        }
        let n = (wait * rate).round();
        if n >= 1.0 {
            // 1 <= n <= MAX_HOLD_SECONDS * rate: exact as an integer.
            let n = n as u64;
            pieces.push(Piece::Silence { frames: n });
            silence += n;
            *out = out
                .checked_add(n)
                .ok_or_else(|| join_error(&c.path, k, "the output is too long"))?;
        }
    }
    span(pieces, (k, c), (cursor, frames), out, &mut start)?;
    let start = start.unwrap_or(*out);
    Ok(AudioPlacement {
        audio_start: start as f64 / rate,
        audio_presented: frames as f64 / rate,
        dropped_priming_packets: 0,
        leftover_priming_samples: 0,
        tail_padding_samples: 0,
        silence_samples: silence,
    })
}

/// Appends frames `from..to` of chunk `k` (`c`) at output frame `out`;
/// `start` takes the output frame of the chunk's first frame.
fn span(
    pieces: &mut Vec<Piece>,
    (k, c): (usize, &Wav),
    (from, to): (u64, u64),
    out: &mut u64,
    start: &mut Option<u64>,
) -> Result<()> {
    if to <= from {
        return Ok(());
    }
    let frame = u64::from(c.block_align);
    let too_long = || join_error(&c.path, k, "the output is too long");
    start.get_or_insert(*out);
    let offset = c.data_offset.checked_add(from * frame).ok_or_else(too_long)?;
    let len = (to - from) * frame;
    match pieces.last_mut() {
        // Right after the previous piece of the same chunk (a hold that inserted nothing).
        Some(Piece::Data {
            chunk,
            offset: o,
            len: l,
        }) if *chunk == k && o.checked_add(*l) == Some(offset) => *l += len,
        _ => pieces.push(Piece::Data { chunk: k, offset, len }),
    }
    *out = out.checked_add(to - from).ok_or_else(too_long)?;
    Ok(())
}

/// Everything [`write()`] and [`write_channels`] need.
pub struct WavOutput<'a> {
    /// The plan.
    pub plan: &'a WavPlan,
    /// The chunks, in the plan's order.
    pub chunks: &'a [&'a Wav],
    /// The input files, by chunk.
    pub sources: &'a [Source],
    /// Chapters, in order: written as cue points with labels.
    pub chapters: &'a [Chapter],
    /// Stops the copy between blocks when cancelled.
    pub cancel: Cancel,
}

/// Appends a chunk: id, 32-bit size, body, pad byte.
fn put_chunk(out: &mut Vec<u8>, id: &[u8; 4], body: &[u8], path: &Path) -> Result<()> {
    let size = u32::try_from(body.len()).map_err(|_| Error::encode(path, fourcc(*id), "it exceeds 4 GiB"))?;
    out.extend_from_slice(id);
    out.extend_from_slice(&size.to_le_bytes());
    out.extend_from_slice(body);
    if body.len() % 2 == 1 {
        out.push(0);
    }
    Ok(())
}

/// The `fmt ` chunk: plain PCM, or `WAVE_FORMAT_EXTENSIBLE` when the format needs it.
fn fmt_chunk(out: &mut Vec<u8>, f: &Format, path: &Path) -> Result<()> {
    let align =
        u16::try_from(f.frame_bytes()).map_err(|_| Error::encode(path, "fmt", "block_align exceeds 16 bits"))?;
    let byte_rate = u32::try_from(u64::from(f.sample_rate) * f.frame_bytes())
        .map_err(|_| Error::encode(path, "fmt", "byte rate exceeds 32 bits"))?;
    let extensible = f.needs_extensible();
    let mut b = Vec::with_capacity(40);
    let tag = if extensible {
        WAVE_FORMAT_EXTENSIBLE
    } else {
        WAVE_FORMAT_PCM
    };
    b.extend_from_slice(&tag.to_le_bytes());
    b.extend_from_slice(&f.channels.to_le_bytes());
    b.extend_from_slice(&f.sample_rate.to_le_bytes());
    b.extend_from_slice(&byte_rate.to_le_bytes());
    b.extend_from_slice(&align.to_le_bytes());
    b.extend_from_slice(&f.bits.to_le_bytes());
    if extensible {
        b.extend_from_slice(&22u16.to_le_bytes());
        b.extend_from_slice(&f.valid_bits.to_le_bytes());
        b.extend_from_slice(&f.speaker_mask().to_le_bytes());
        b.extend_from_slice(&WAVE_FORMAT_PCM.to_le_bytes());
        b.extend_from_slice(&GUID_TAIL);
    }
    put_chunk(out, b"fmt ", &b, path)
}

/// A chapter's first frame and length in frames, within `frames`.
fn chapter_frames(c: &Chapter, rate: u32, frames: u64) -> (u64, u64) {
    let to_frames = |s: f64| {
        let v = (s * f64::from(rate)).round();
        if v.is_finite() && v > 0.0 {
            (v.min(frames as f64)) as u64
        } else {
            0
        }
    };
    let start = to_frames(c.start);
    let end = if c.end > c.start {
        to_frames(c.end).max(start)
    } else {
        start
    };
    (start, end - start)
}

/// The `cue ` chunk and the `LIST`/`adtl` chunk with a `labl` per cue point
/// and an `ltxt` (purpose `rgn `) per ranged chapter; nothing without chapters.
fn marker_chunks(out: &mut Vec<u8>, chapters: &[Chapter], rate: u32, frames: u64, path: &Path) -> Result<()> {
    if chapters.is_empty() {
        return Ok(());
    }
    let too_far = |_| Error::encode(path, "cue", "a chapter starts or lasts past 2^32 frames");
    let count = u32::try_from(chapters.len()).map_err(|_| Error::encode(path, "cue", "too many chapters"))?;
    let mut cue = Vec::with_capacity(4 + 24 * chapters.len());
    let mut adtl = Vec::new();
    adtl.extend_from_slice(b"adtl");
    cue.extend_from_slice(&count.to_le_bytes());
    for (id, c) in (1u32..).zip(chapters) {
        let (start, len) = chapter_frames(c, rate, frames);
        let start = u32::try_from(start).map_err(too_far)?;
        cue.extend_from_slice(&id.to_le_bytes());
        cue.extend_from_slice(&start.to_le_bytes());
        cue.extend_from_slice(b"data");
        cue.extend_from_slice(&0u32.to_le_bytes());
        cue.extend_from_slice(&0u32.to_le_bytes());
        cue.extend_from_slice(&start.to_le_bytes());
        let mut labl = Vec::with_capacity(5 + c.title.len());
        labl.extend_from_slice(&id.to_le_bytes());
        labl.extend(c.title.bytes().map(|b| if b == 0 { b' ' } else { b }));
        labl.push(0);
        put_chunk(&mut adtl, b"labl", &labl, path)?;
        if len > 0 {
            let len = u32::try_from(len).map_err(too_far)?;
            let mut ltxt = Vec::with_capacity(20);
            ltxt.extend_from_slice(&id.to_le_bytes());
            ltxt.extend_from_slice(&len.to_le_bytes());
            ltxt.extend_from_slice(b"rgn ");
            // Country, language, dialect, code page: unspecified.
            ltxt.extend_from_slice(&[0; 8]);
            put_chunk(&mut adtl, b"ltxt", &ltxt, path)?;
        }
    }
    put_chunk(out, b"cue ", &cue, path)?;
    put_chunk(out, b"LIST", &adtl, path)
}

/// Everything before the frames: the RIFF (or RF64 and `ds64`) header,
/// `fmt `, the markers and the `data` header. RF64 when the RIFF or data
/// size passes `max32` (`u32::MAX`; smaller in tests).
fn header(f: &Format, frames: u64, chapters: &[Chapter], path: &Path, max32: u64) -> Result<Vec<u8>> {
    let too_long = || Error::encode(path, "data", "the output exceeds 2^64 bytes");
    let data_len = frames.checked_mul(f.frame_bytes()).ok_or_else(too_long)?;
    let mut meta = Vec::new();
    fmt_chunk(&mut meta, f, path)?;
    marker_chunks(&mut meta, chapters, f.sample_rate, frames, path)?;
    let meta_len = u64::try_from(meta.len()).map_err(|_| too_long())?;
    // "WAVE", the metadata, the data header, the frames and their pad byte.
    let riff = (4 + 8 + data_len % 2)
        .checked_add(meta_len)
        .and_then(|v| v.checked_add(data_len))
        .ok_or_else(too_long)?;
    let mut head = Vec::with_capacity(meta.len() + 64);
    if riff <= max32 && data_len <= max32 {
        head.extend_from_slice(b"RIFF");
        head.extend_from_slice(&u32::try_from(riff).map_err(|_| too_long())?.to_le_bytes());
        head.extend_from_slice(b"WAVE");
        head.extend_from_slice(&meta);
        head.extend_from_slice(b"data");
        head.extend_from_slice(&u32::try_from(data_len).map_err(|_| too_long())?.to_le_bytes());
    } else {
        let riff = riff.checked_add(8 + DS64_LEN).ok_or_else(too_long)?;
        head.extend_from_slice(b"RF64");
        head.extend_from_slice(&u32::MAX.to_le_bytes());
        head.extend_from_slice(b"WAVE");
        head.extend_from_slice(b"ds64");
        head.extend_from_slice(&28u32.to_le_bytes());
        head.extend_from_slice(&riff.to_le_bytes());
        head.extend_from_slice(&data_len.to_le_bytes());
        head.extend_from_slice(&frames.to_le_bytes());
        head.extend_from_slice(&0u32.to_le_bytes());
        head.extend_from_slice(&meta);
        head.extend_from_slice(b"data");
        head.extend_from_slice(&u32::MAX.to_le_bytes());
    }
    Ok(head)
}

/// Output frames handed out by [`pass`].
enum Frames<'b> {
    /// Whole frames of an input.
    Pcm(&'b [u8]),
    /// Frames of silence.
    Silence(u64),
}

/// Checks that the output's parts belong together.
fn check_output(input: &WavOutput) -> Result<()> {
    if input.chunks.len() != input.plan.chunks || input.sources.len() != input.plan.chunks {
        return Err(Error::Internal(format!(
            "the WAV plan has {} chunks, the writer got {} chunks and {} sources",
            input.plan.chunks,
            input.chunks.len(),
            input.sources.len()
        )));
    }
    Ok(())
}

/// Reads every input once from its first byte to its last, in blocks,
/// hashing it; hands the output's frames, in output order, to `emit`.
/// Returns each input's SHA-256 (hex) and size.
fn pass(input: &WavOutput, emit: &mut dyn FnMut(Frames<'_>) -> Result<()>) -> Result<Vec<(String, u64)>> {
    let f = input.plan.format;
    let frame = f.frame_bytes().max(1);
    // Whole frames per block: at most BLOCK bytes (a frame is at most 72).
    let step = (BLOCK as u64 / frame).max(1) * frame;
    let step_frames = step / frame;
    let mut buf = vec![0u8; usize::try_from(step).unwrap_or(BLOCK)];
    let mut inputs = Vec::with_capacity(input.sources.len());
    let mut pieces = input.plan.pieces.iter().peekable();
    let silence = |n: u64, emit: &mut dyn FnMut(Frames<'_>) -> Result<()>| -> Result<()> {
        let mut left = n;
        while left > 0 {
            input.cancel.check()?;
            let k = left.min(step_frames);
            emit(Frames::Silence(k))?;
            left -= k;
        }
        Ok(())
    };
    for (k, src) in input.sources.iter().enumerate() {
        let io = |e| Error::io(&src.path, e);
        src.file.advise_sequential();
        let mut hash = Sha256::new();
        let mut pos = 0u64;
        while let Some(p) = pieces.next_if(|p| match p {
            Piece::Silence { .. } => true,
            Piece::Data { chunk, .. } => *chunk == k,
        }) {
            match *p {
                Piece::Silence { frames } => silence(frames, emit)?,
                Piece::Data { offset, len, .. } => {
                    if offset < pos {
                        return Err(Error::Internal(format!(
                            "WAV plan: chunk {k}'s pieces are out of order"
                        )));
                    }
                    let end = offset
                        .checked_add(len)
                        .ok_or_else(|| Error::Internal("WAV plan: a piece overflows".into()))?;
                    // Bytes before the piece: hashed only.
                    let mut span = Span {
                        src,
                        buf: &mut buf,
                        hash: &mut hash,
                        cancel: &input.cancel,
                    };
                    pos = span.read(pos, offset, None)?;
                    pos = span.read(pos, end, Some(&mut *emit))?;
                }
            }
        }
        // The rest of the file, to its end as it is now.
        loop {
            input.cancel.check()?;
            let n = match src.file.read_at(&mut buf, pos) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io(e)),
            };
            hash.update(&buf[..n]);
            pos += n as u64;
        }
        inputs.push((hex(&hash.finalize()), pos));
    }
    for p in pieces {
        match *p {
            Piece::Silence { frames } => silence(frames, emit)?,
            Piece::Data { chunk, .. } => {
                return Err(Error::Internal(format!("WAV plan: chunk {chunk} has no source")));
            }
        }
    }
    Ok(inputs)
}

/// Where a pass hands the output's frames.
type Emit<'e> = &'e mut dyn FnMut(Frames<'_>) -> Result<()>;

/// One input read in blocks of `buf`, every byte hashed.
struct Span<'s> {
    src: &'s Source,
    buf: &'s mut [u8],
    hash: &'s mut Sha256,
    cancel: &'s Cancel,
}

impl Span<'_> {
    /// Reads `pos..end`, handing the bytes to `emit` when given; returns `end`.
    fn read(&mut self, mut pos: u64, end: u64, mut emit: Option<Emit<'_>>) -> Result<u64> {
        let step = self.buf.len() as u64;
        while pos < end {
            self.cancel.check()?;
            let n = usize::try_from((end - pos).min(step)).unwrap_or(self.buf.len());
            let block = &mut self.buf[..n];
            self.src
                .file
                .read_exact_at(block, pos)
                .map_err(|e| Error::io(&self.src.path, e))?;
            self.hash.update(&*block);
            if let Some(emit) = emit.as_mut() {
                emit(Frames::Pcm(block))?;
            }
            pos += n as u64;
        }
        Ok(pos)
    }
}

/// Each chunk's output byte range, for frames of `frame` bytes from `base`.
fn chunk_ranges(plan: &WavPlan, base: u64, frame: u64, input_frame: u64) -> Vec<(u64, u64)> {
    let mut ranges = vec![(u64::MAX, 0u64); plan.chunks];
    let mut pos = base;
    for p in &plan.pieces {
        let len = match *p {
            Piece::Silence { frames } => frames.saturating_mul(frame),
            Piece::Data { chunk, len, .. } => {
                let len = (len / input_frame.max(1)).saturating_mul(frame);
                if let Some(r) = ranges.get_mut(chunk) {
                    r.0 = r.0.min(pos);
                    r.1 = r.1.max(pos.saturating_add(len));
                }
                len
            }
        };
        pos = pos.saturating_add(len);
    }
    ranges
        .into_iter()
        .map(|(a, b)| if a == u64::MAX { (0, 0) } else { (a, b) })
        .collect()
}

/// Writes the stitched WAV to `out`: `fmt `, `cue ` and `LIST`/`adtl`
/// (when there are chapters), then `data` with the chunks' frames in order
/// and silence where the plan holds; RF64 with `ds64` when a size passes
/// 32 bits. Every input is read and hashed in the same pass
/// (`Written::inputs`).
pub fn write(input: &WavOutput, out: &File, out_path: &Path) -> Result<Written> {
    write_limited(input, out, out_path, u64::from(u32::MAX))
}

/// [`write()`], with RF64 past `max32` bytes.
fn write_limited(input: &WavOutput, out: &File, out_path: &Path, max32: u64) -> Result<Written> {
    check_output(input)?;
    let f = input.plan.format;
    let frames = input.plan.layout.samples;
    let head = header(&f, frames, input.chapters, out_path, max32)?;
    let base = head.len() as u64;
    let mut sink = Sink::new(out, out_path);
    sink.put(&head)?;
    let frame = f.frame_bytes();
    let silence = f.silence_byte();
    let inputs = pass(input, &mut |frames| match frames {
        Frames::Pcm(b) => sink.put(b),
        Frames::Silence(n) => sink.fill(silence, n * frame),
    })?;
    if frames % 2 == 1 && frame % 2 == 1 {
        sink.put(&[0])?;
    }
    let (sha256, size) = sink.finish()?;
    Ok(Written {
        size,
        sha256,
        chunk_byte_ranges: chunk_ranges(input.plan, base, frame, frame),
        inputs,
        reread: 0,
    })
}

/// Writes one mono WAV per requested channel (`--split-channels`), in one
/// pass over the inputs: `outs` holds the channel (0 for the first), the
/// open file and its path. Each holds that channel's samples exactly, with
/// the same rate, bits and chapters as [`write()`] would write.
pub fn write_channels(input: &WavOutput, outs: &[(u16, &File, &Path)]) -> Result<Vec<Written>> {
    write_channels_limited(input, outs, u64::from(u32::MAX))
}

/// [`write_channels`], with RF64 past `max32` bytes.
fn write_channels_limited(input: &WavOutput, outs: &[(u16, &File, &Path)], max32: u64) -> Result<Vec<Written>> {
    check_output(input)?;
    let f = input.plan.format;
    for &(c, _, path) in outs {
        if c >= f.channels {
            return Err(Error::Usage(format!(
                "{}: channel {c} was asked for; the chunks have channels 0 to {}",
                path.display(),
                f.channels - 1
            )));
        }
    }
    let mono = f.mono();
    let frames = input.plan.layout.samples;
    let sample = usize::try_from(f.sample_bytes()).unwrap_or(1);
    let frame = usize::try_from(f.frame_bytes()).unwrap_or(1);
    let mut sinks = Vec::with_capacity(outs.len());
    let mut base = 0;
    for &(_, file, path) in outs {
        let head = header(&mono, frames, input.chapters, path, max32)?;
        base = head.len() as u64;
        let mut sink = Sink::new(file, path);
        sink.put(&head)?;
        sinks.push(sink);
    }
    let mut scratch = Vec::with_capacity(BLOCK);
    let silence = f.silence_byte();
    let inputs = pass(input, &mut |frames| {
        for (sink, &(c, _, _)) in sinks.iter_mut().zip(outs) {
            match frames {
                Frames::Pcm(b) => {
                    let at = usize::from(c) * sample;
                    scratch.clear();
                    for fr in b.chunks_exact(frame) {
                        scratch.extend_from_slice(&fr[at..at + sample]);
                    }
                    sink.put(&scratch)?;
                }
                Frames::Silence(n) => sink.fill(silence, n * mono.frame_bytes())?,
            }
        }
        Ok(())
    })?;
    let odd = frames % 2 == 1 && mono.frame_bytes() % 2 == 1;
    let ranges = chunk_ranges(input.plan, base, mono.frame_bytes(), f.frame_bytes());
    let mut written = Vec::with_capacity(sinks.len());
    for mut sink in sinks {
        if odd {
            sink.put(&[0])?;
        }
        let (sha256, size) = sink.finish()?;
        written.push(Written {
            size,
            sha256,
            chunk_byte_ranges: ranges.clone(),
            inputs: inputs.clone(),
            reread: 0,
        });
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::deep::FLOOR_DBFS;
    use crate::formats::wav::{analyse, channel_levels, probe, probe_reader, Wav};
    use crate::limits::Limits;
    use crate::storage::Input;
    use std::io::Cursor;

    fn fmt_pcm(channels: u16, rate: u32, bits: u16) -> Vec<u8> {
        let align = channels * bits / 8;
        let mut b = Vec::new();
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&channels.to_le_bytes());
        b.extend_from_slice(&rate.to_le_bytes());
        b.extend_from_slice(&(rate * u32::from(align)).to_le_bytes());
        b.extend_from_slice(&align.to_le_bytes());
        b.extend_from_slice(&bits.to_le_bytes());
        b
    }

    fn fmt_ext(channels: u16, rate: u32, bits: u16, mask: u32, sub: u16) -> Vec<u8> {
        let mut b = fmt_pcm(channels, rate, bits);
        b[..2].copy_from_slice(&0xFFFEu16.to_le_bytes());
        b.extend_from_slice(&22u16.to_le_bytes());
        b.extend_from_slice(&bits.to_le_bytes());
        b.extend_from_slice(&mask.to_le_bytes());
        b.extend_from_slice(&sub.to_le_bytes());
        b.extend_from_slice(&GUID_TAIL);
        b
    }

    /// A chunk with its pad byte.
    fn chunk(id: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut b = id.to_vec();
        b.extend_from_slice(&u32::try_from(body.len()).unwrap().to_le_bytes());
        b.extend_from_slice(body);
        if body.len() % 2 == 1 {
            b.push(0);
        }
        b
    }

    fn riff(chunks: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = chunks.concat();
        let mut b = b"RIFF".to_vec();
        b.extend_from_slice(&u32::try_from(body.len() + 4).unwrap().to_le_bytes());
        b.extend_from_slice(b"WAVE");
        b.extend_from_slice(&body);
        b
    }

    fn wav(channels: u16, rate: u32, bits: u16, pcm: &[u8]) -> Vec<u8> {
        riff(&[chunk(b"fmt ", &fmt_pcm(channels, rate, bits)), chunk(b"data", pcm)])
    }

    /// `frames` frames of `channels` 16-bit samples, a pattern that differs by `seed`.
    fn pcm16(frames: usize, channels: usize, seed: u16) -> Vec<u8> {
        (0..frames * channels)
            .flat_map(|i| (u16::try_from(i % 60000).unwrap().wrapping_mul(7).wrapping_add(seed)).to_le_bytes())
            .collect()
    }

    fn probe_bytes(bytes: &[u8]) -> Result<Wav> {
        probe_limited(bytes, &Limits::default())
    }

    fn probe_limited(bytes: &[u8], limits: &Limits) -> Result<Wav> {
        let len = u64::try_from(bytes.len()).unwrap();
        probe_reader(Cursor::new(bytes), len, Path::new("c.wav"), limits)
    }

    /// The chunks of a RIFF file: (id, body), pad bytes skipped.
    fn chunks_of(bytes: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 12;
        while at + 8 <= bytes.len() {
            let id: [u8; 4] = bytes[at..at + 4].try_into().unwrap();
            let mut size = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
            if size == u32::MAX as usize && &id == b"data" {
                size = bytes.len() - at - 8;
            }
            let end = (at + 8 + size).min(bytes.len());
            out.push((id, bytes[at + 8..end].to_vec()));
            at = end + size % 2;
        }
        out
    }

    #[test]
    fn a_pcm_wav_is_read() {
        let pcm = pcm16(1600, 1, 0);
        let w = probe_bytes(&wav(1, 16000, 16, &pcm)).unwrap();
        assert_eq!(
            (w.format_tag, w.extensible, w.channels, w.sample_rate, w.bits_per_sample),
            (1, false, 1, 16000, 16)
        );
        assert_eq!((w.block_align, w.valid_bits, w.channel_mask), (2, 16, None));
        assert_eq!((w.data_offset, w.data_len, w.declared_data_len), (44, 3200, 3200));
        assert_eq!((w.frames(), w.duration_ms(), w.byte_rate()), (1600, 100.0, 32000));
        assert!(!w.rf64 && w.truncated.is_none() && w.partial_frame_bytes == 0);
        assert!(w.quirks.is_empty(), "{:?}", w.quirks);
    }

    #[test]
    fn an_extensible_four_channel_wav_keeps_its_mask() {
        let pcm = pcm16(100, 4, 0);
        let bytes = riff(&[
            chunk(b"fmt ", &fmt_ext(4, 16000, 16, 0x33, 1)),
            chunk(b"LIST", b"INFOISFT\x04\0\0\0abc\0"),
            chunk(b"data", &pcm),
        ]);
        let w = probe_bytes(&bytes).unwrap();
        assert_eq!(
            (w.format_tag, w.extensible, w.channels, w.channel_mask),
            (1, true, 4, Some(0x33))
        );
        assert_eq!((w.block_align, w.frames()), (8, 100));
        assert!(w.quirks.is_empty(), "{:?}", w.quirks);
    }

    #[test]
    fn odd_chunks_with_and_without_their_pad_byte() {
        // 8-bit mono, 3 frames: an odd data chunk, padded, then a chunk after it.
        let pcm = [0x80u8, 0x90, 0x70];
        let padded = riff(&[
            chunk(b"junk", b"odd"),
            chunk(b"fmt ", &fmt_pcm(1, 8000, 8)),
            chunk(b"data", &pcm),
            chunk(b"LIST", b"INFO"),
        ]);
        let w = probe_bytes(&padded).unwrap();
        assert_eq!((w.data_len, w.frames()), (3, 3));
        assert_eq!(w.quirks, ["chunks after the data chunk: LIST"]);

        // The same without pad bytes (a writer that forgot them).
        let mut bare = b"RIFF\0\0\0\0WAVE".to_vec();
        bare.extend_from_slice(b"junk\x03\0\0\0odd");
        bare.extend_from_slice(&chunk(b"fmt ", &fmt_pcm(1, 8000, 8)));
        bare.extend_from_slice(b"data\x03\0\0\0");
        bare.extend_from_slice(&pcm);
        bare.extend_from_slice(&chunk(b"LIST", b"INFO"));
        let riff_size = u32::try_from(bare.len() - 8).unwrap();
        bare[4..8].copy_from_slice(&riff_size.to_le_bytes());
        let w = probe_bytes(&bare).unwrap();
        assert_eq!((w.data_len, w.data_offset), (3, 55));
        assert_eq!(
            w.quirks,
            [
                "the chunk `junk` at byte 12 has an odd size (3) and no pad byte",
                "the chunk `data` at byte 47 has an odd size (3) and no pad byte",
                "chunks after the data chunk: LIST",
            ]
        );

        // An odd data chunk last in the file, without its pad byte.
        let mut last = wav(1, 8000, 8, &pcm);
        last.pop();
        let w = probe_bytes(&last).unwrap();
        assert_eq!(w.data_len, 3);
        assert_eq!(w.quirks.len(), 2, "{:?}", w.quirks);
        assert!(
            w.quirks[0].contains("no pad byte at the end of the file"),
            "{:?}",
            w.quirks
        );
        assert!(w.quirks[1].starts_with("the RIFF header declares"), "{:?}", w.quirks);
    }

    #[test]
    fn a_streaming_header_takes_the_size_from_the_file() {
        let pcm = pcm16(1000, 2, 3);
        let mut bytes = wav(2, 16000, 16, &pcm);
        bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        bytes[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        bytes.push(0x11); // half a sample: not a frame
        let w = probe_bytes(&bytes).unwrap();
        assert_eq!(
            (w.data_len, w.declared_data_len, w.partial_frame_bytes),
            (4000, u64::from(u32::MAX), 1)
        );
        assert!(w.truncated.is_none());
        assert_eq!(w.quirks.len(), 3, "{:?}", w.quirks);
        assert!(w.quirks[0].contains("0xFFFFFFFF, as a streaming writer leaves it"));
        assert!(w.quirks[1].contains("not a whole number of 4-byte frames"));
        assert!(w.quirks[2].starts_with("the RIFF size is 0xFFFFFFFF"));
        // A data size of 0 with frames after it is the same.
        bytes[40..44].copy_from_slice(&0u32.to_le_bytes());
        let w = probe_bytes(&bytes).unwrap();
        assert_eq!((w.data_len, w.declared_data_len), (4000, 0));
    }

    #[test]
    fn a_truncated_data_chunk_keeps_the_whole_frames_there() {
        let pcm = pcm16(500, 1, 0);
        let mut bytes = wav(1, 16000, 16, &pcm);
        bytes.truncate(44 + 301);
        let w = probe_bytes(&bytes).unwrap();
        assert_eq!((w.data_len, w.partial_frame_bytes, w.declared_data_len), (300, 1, 1000));
        assert_eq!(
            w.truncated.as_deref(),
            Some("the data chunk declares 1000 bytes, the file holds 301: 699 bytes are missing")
        );
        assert!(w.quirks.is_empty(), "{:?}", w.quirks);
    }

    #[test]
    fn what_is_not_a_stitchable_wav_is_an_error() {
        let e = probe_bytes(b"OggS\0\x02\0\0\0\0\0\0\0\0").unwrap_err();
        assert_eq!(e.category(), "invalid");
        assert!(e.to_string().contains("starts with `OggS`, not RIFF or RF64"), "{e}");
        let e = probe_bytes(b"RIFF\x04\0\0\0AVI ").unwrap_err();
        assert!(e.to_string().contains("form `AVI `, not WAVE"), "{e}");
        assert_eq!(probe_bytes(b"RIFF").unwrap_err().category(), "invalid");

        let mut float = fmt_pcm(1, 16000, 32);
        float[..2].copy_from_slice(&3u16.to_le_bytes());
        let e = probe_bytes(&riff(&[chunk(b"fmt ", &float), chunk(b"data", &[0; 8])])).unwrap_err();
        assert_eq!(e.category(), "unsupported");
        assert!(e.to_string().contains("format tag 0x0003 (IEEE float)"), "{e}");
        let e = probe_bytes(&riff(&[
            chunk(b"fmt ", &fmt_ext(2, 16000, 32, 3, 3)),
            chunk(b"data", &[0; 8]),
        ]))
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("0x0003 (IEEE float) (in WAVE_FORMAT_EXTENSIBLE)"),
            "{e}"
        );

        let mut bad_align = fmt_pcm(2, 16000, 16);
        bad_align[12..14].copy_from_slice(&2u16.to_le_bytes());
        let e = probe_bytes(&riff(&[chunk(b"fmt ", &bad_align), chunk(b"data", &[0; 8])])).unwrap_err();
        assert_eq!(e.category(), "invalid");
        assert!(
            e.to_string()
                .contains("block_align is 2, but channels × bits_per_sample / 8 is 4"),
            "{e}"
        );
        let mut bad_rate = fmt_pcm(1, 16000, 16);
        bad_rate[8..12].copy_from_slice(&16000u32.to_le_bytes());
        let e = probe_bytes(&riff(&[chunk(b"fmt ", &bad_rate), chunk(b"data", &[0; 8])])).unwrap_err();
        assert!(
            e.to_string()
                .contains("byte_rate is 16000, but sample_rate × block_align is 32000"),
            "{e}"
        );
        let e = probe_bytes(&riff(&[
            chunk(b"fmt ", &fmt_pcm(19, 16000, 16)),
            chunk(b"data", &[0; 38]),
        ]))
        .unwrap_err();
        assert!(e.to_string().contains("channels is 19"), "{e}");

        let e = probe_bytes(&riff(&[chunk(b"fmt ", &fmt_pcm(1, 16000, 16))])).unwrap_err();
        assert_eq!(e.category(), "truncated");
        let e = probe_bytes(&riff(&[chunk(b"data", &[0; 8])])).unwrap_err();
        assert!(e.to_string().contains("no fmt chunk"), "{e}");
        let e = probe_bytes(&riff(&[
            chunk(b"fmt ", &fmt_pcm(1, 16000, 16)),
            chunk(b"data", &[0; 8]),
            chunk(b"data", &[0; 8]),
        ]))
        .unwrap_err();
        assert_eq!(e.category(), "unsupported");
    }

    #[test]
    fn a_chunk_count_bomb_hits_the_limit() {
        let mut chunks = vec![chunk(b"fmt ", &fmt_pcm(1, 16000, 16))];
        chunks.extend(std::iter::repeat_n(chunk(b"junk", b""), 200));
        chunks.push(chunk(b"data", &[0; 8]));
        let bytes = riff(&chunks);
        assert_eq!(probe_bytes(&bytes).unwrap().frames(), 4);
        let limits = Limits {
            max_top_level_boxes: 100,
            ..Limits::default()
        };
        let e = probe_limited(&bytes, &limits).unwrap_err();
        assert_eq!(e.category(), "limit");
        assert!(e.to_string().contains("number of chunks is 101"), "{e}");
    }

    #[test]
    fn cut_and_mutated_headers_never_panic() {
        let good = riff(&[
            chunk(b"junk", b"odd"),
            chunk(b"fmt ", &fmt_ext(4, 16000, 16, 0x33, 1)),
            chunk(b"LIST", b"INFOISFT\x03\0\0\0ab\0"),
            chunk(b"data", &pcm16(20, 4, 0)),
            chunk(b"cue ", &[0; 4]),
        ]);
        let mut rf64 = good.clone();
        rf64[..4].copy_from_slice(b"RF64");
        for base in [&good, &rf64] {
            for cut in 0..base.len() {
                let _ = probe_bytes(&base[..cut]);
            }
            for at in 0..120.min(base.len()) {
                for v in [0u8, 1, 0x7f, 0x80, 0xfe, 0xff] {
                    let mut m = base.clone();
                    m[at] = v;
                    if let Ok(w) = probe_bytes(&m) {
                        assert!(w.data_offset + w.data_len <= m.len() as u64);
                        assert_eq!(w.data_len % u64::from(w.block_align), 0);
                    }
                }
            }
        }
    }

    fn probed(bytes: &[u8], name: &str) -> Wav {
        let len = u64::try_from(bytes.len()).unwrap();
        probe_reader(Cursor::new(bytes), len, Path::new(name), &Limits::default()).unwrap()
    }

    #[test]
    fn the_plan_without_holds_lays_chunks_end_to_end() {
        let a = probed(&wav(1, 16000, 16, &pcm16(16000, 1, 0)), "a.wav");
        let b = probed(&wav(1, 16000, 16, &pcm16(8000, 1, 1)), "b.wav");
        for holds in [vec![], vec![vec![], vec![]]] {
            let p = plan(&[&a, &b], &holds).unwrap();
            assert_eq!((p.layout.samples, p.layout.duration, p.layout.packets), (24000, 1.5, 0));
            let starts: Vec<f64> = p.layout.placements.iter().map(|x| x.audio_start).collect();
            assert_eq!(starts, [0.0, 1.0]);
            assert_eq!(p.layout.placements[1].audio_presented, 0.5);
            assert_eq!(p.pieces.len(), 2);
        }
        let c = probed(&wav(1, 48000, 16, &pcm16(480, 1, 0)), "c.wav");
        let e = plan(&[&a, &c], &[]).unwrap_err();
        assert_eq!(e.category(), "unsupported");
        assert_eq!(
            e.to_string(),
            "c.wav: chunk 1: unsupported: its sample rate (48000 Hz) differs from the other chunks' (16000 Hz); chunks of one output must share format, channels, rate and bits"
        );
        let d = probed(&wav(2, 16000, 16, &pcm16(480, 2, 0)), "d.wav");
        assert!(plan(&[&a, &d], &[])
            .unwrap_err()
            .to_string()
            .contains("channel count (2)"));
    }

    #[test]
    fn holds_insert_silence_for_the_wall_clock() {
        let a = probed(&wav(1, 1000, 16, &pcm16(1000, 1, 0)), "a.wav");
        let b = probed(&wav(1, 1000, 16, &pcm16(500, 1, 1)), "b.wav");
        let hold = |at, resume_at| Hold { at, resume_at };
        let holds = vec![
            // Before the output starts: nothing to wait after.
            vec![hold(0.0, 0.3), hold(0.4, 0.9)],
            vec![hold(0.0, 3.0), hold(0.2, 3.2004), hold(0.3, 3.7), hold(0.5, 9.0)],
        ];
        let p = plan(&[&a, &b], &holds).unwrap();
        let pl = &p.layout.placements;
        assert_eq!((pl[0].audio_start, pl[0].silence_samples), (0.0, 500));
        // Chunk 0 ends at 1.5 s; chunk 1 waits until 3.0 s, then 0.5 s inside
        // it (the hold of 0.4 ms rounds to no frame; the one at the end of
        // the chunk is past its audio).
        assert_eq!((pl[1].audio_start, pl[1].silence_samples), (3.0, 1500 + 400));
        assert_eq!(p.layout.samples, 3900);
        assert_eq!(
            p.pieces,
            [
                Piece::Data {
                    chunk: 0,
                    offset: 44,
                    len: 800
                },
                Piece::Silence { frames: 500 },
                Piece::Data {
                    chunk: 0,
                    offset: 844,
                    len: 1200
                },
                Piece::Silence { frames: 1500 },
                Piece::Data {
                    chunk: 1,
                    offset: 44,
                    len: 600
                },
                Piece::Silence { frames: 400 },
                Piece::Data {
                    chunk: 1,
                    offset: 644,
                    len: 400
                },
            ]
        );
        let too_long = vec![vec![], vec![hold(0.0, 1.0 + MAX_HOLD_SECONDS + 2.0)]];
        let e = plan(&[&a, &b], &too_long).unwrap_err();
        assert!(
            e.to_string().contains("b.wav: chunk 1: unsupported: a pause or gap of"),
            "{e}"
        );
    }

    /// Files of a test, in a folder removed on drop.
    struct Scratch(tempfile::TempDir);

    impl Scratch {
        fn new() -> Self {
            Scratch(tempfile::tempdir().unwrap())
        }

        fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
            let p = self.0.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        }

        fn path(&self, name: &str) -> PathBuf {
            self.0.path().join(name)
        }
    }

    fn sha(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    fn sources(chunks: &[Wav]) -> Vec<Source> {
        chunks
            .iter()
            .map(|c| Source {
                file: Input::File(File::open(&c.path).unwrap()),
                path: c.path.clone(),
            })
            .collect()
    }

    /// Writes the chunks (file bytes) stitched with `holds` and `chapters`,
    /// RF64 past `max32`; returns the probed chunks, the output and what was written.
    fn stitch(
        dir: &Scratch,
        files: &[Vec<u8>],
        holds: &[Vec<Hold>],
        chapters: &[Chapter],
        max32: u64,
    ) -> (Vec<Wav>, Vec<u8>, Written) {
        let chunks: Vec<Wav> = files
            .iter()
            .enumerate()
            .map(|(k, b)| probe(&dir.file(&format!("{k}.wav"), b), &Limits::default()).unwrap())
            .collect();
        let refs: Vec<&Wav> = chunks.iter().collect();
        let p = plan(&refs, holds).unwrap();
        let srcs = sources(&chunks);
        let input = WavOutput {
            plan: &p,
            chunks: &refs,
            sources: &srcs,
            chapters,
            cancel: Cancel::new(),
        };
        let out_path = dir.path("out.wav");
        let out = File::create(&out_path).unwrap();
        let written = write_limited(&input, &out, &out_path, max32).unwrap();
        drop(out);
        let bytes = std::fs::read(&out_path).unwrap();
        (chunks, bytes, written)
    }

    fn data_of(w: &Wav, file: &[u8]) -> Vec<u8> {
        let at = usize::try_from(w.data_offset).unwrap();
        file[at..at + usize::try_from(w.data_len).unwrap()].to_vec()
    }

    fn chapter(start: f64, end: f64, title: &str) -> Chapter {
        Chapter {
            start,
            end,
            title: title.into(),
        }
    }

    /// The labels (cue id, text) and regions (cue id, length) of a `LIST`/`adtl` body.
    #[allow(clippy::type_complexity)]
    fn adtl_of(adtl: &[u8]) -> (Vec<(u32, String)>, Vec<(u32, u32)>) {
        assert_eq!(&adtl[..4], b"adtl");
        let mut labels = Vec::new();
        let mut regions = Vec::new();
        let mut at = 4;
        while at < adtl.len() {
            let size = le32(adtl, at + 4) as usize;
            let body = &adtl[at + 8..at + 8 + size];
            match &adtl[at..at + 4] {
                b"labl" => {
                    assert_eq!(body.last(), Some(&0));
                    labels.push((le32(body, 0), String::from_utf8(body[4..size - 1].to_vec()).unwrap()));
                }
                b"ltxt" => {
                    assert_eq!(&body[8..12], b"rgn ");
                    regions.push((le32(body, 0), le32(body, 4)));
                }
                other => panic!("unexpected {other:?}"),
            }
            at += 8 + size + size % 2;
        }
        (labels, regions)
    }

    #[test]
    fn a_stitched_wav_holds_the_chunks_frames_and_the_chapters() {
        let dir = Scratch::new();
        let files = vec![
            wav(1, 16000, 16, &pcm16(16000, 1, 0)),
            riff(&[
                chunk(b"fmt ", &fmt_pcm(1, 16000, 16)),
                chunk(b"LIST", b"INFOISFT\x03\0\0\0ab\0"),
                chunk(b"data", &pcm16(8000, 1, 5)),
                chunk(b"id3 ", b"tag"),
            ]),
        ];
        let chapters = [
            chapter(0.0, 1.0, "Chunk 0"),
            chapter(1.0, 1.0, "Gap"),
            chapter(1.0, 1.5, "Chunk 1, ünïcode"),
        ];
        let (chunks, out, written) = stitch(&dir, &files, &[], &chapters, u64::from(u32::MAX));
        let w = probed(&out, "out.wav");
        assert!(w.quirks.is_empty(), "{:?}", w.quirks);
        assert!(!w.rf64 && !w.extensible);
        assert_eq!(
            (w.channels, w.sample_rate, w.bits_per_sample, w.frames()),
            (1, 16000, 16, 24000)
        );
        let expected = [data_of(&chunks[0], &files[0]), data_of(&chunks[1], &files[1])].concat();
        assert_eq!(data_of(&w, &out), expected);
        // Hashes and ranges.
        assert_eq!(written.size, out.len() as u64);
        assert_eq!(written.sha256, sha(&out));
        assert_eq!(written.reread, 0);
        let inputs: Vec<(String, u64)> = files.iter().map(|f| (sha(f), f.len() as u64)).collect();
        assert_eq!(written.inputs, inputs);
        assert_eq!(
            written.chunk_byte_ranges,
            [
                (w.data_offset, w.data_offset + 32000),
                (w.data_offset + 32000, w.data_offset + 48000)
            ]
        );
        // The metadata before the data: fmt, cue, LIST/adtl.
        let cs = chunks_of(&out);
        let ids: Vec<&[u8; 4]> = cs.iter().map(|(id, _)| id).collect();
        assert_eq!(ids, [b"fmt ", b"cue ", b"LIST", b"data"]);
        let cue = &cs[1].1;
        assert_eq!(le32(cue, 0), 3);
        let points: Vec<(u32, u32, u32)> = cue[4..]
            .chunks_exact(24)
            .map(|p| {
                assert_eq!(&p[8..12], b"data");
                (le32(p, 0), le32(p, 4), le32(p, 20))
            })
            .collect();
        assert_eq!(points, [(1, 0, 0), (2, 16000, 16000), (3, 16000, 16000)]);
        let (labels, regions) = adtl_of(&cs[2].1);
        assert_eq!(
            labels,
            [
                (1, "Chunk 0".into()),
                (2, "Gap".into()),
                (3, "Chunk 1, ünïcode".to_string())
            ]
        );
        assert_eq!(regions, [(1, 16000), (3, 8000)]);

        // Deterministic: the same inputs give the same bytes.
        let (_, again, _) = stitch(&dir, &files, &[], &chapters, u64::from(u32::MAX));
        assert_eq!(again, out);
    }

    #[test]
    fn silence_fills_the_holds_and_odd_data_is_padded() {
        let dir = Scratch::new();
        // 8-bit mono: silence is 0x80, and an odd byte count needs a pad byte.
        let a: Vec<u8> = (0..1001u32).map(|i| u8::try_from(i % 251).unwrap()).collect();
        let b: Vec<u8> = (0..500u32).map(|i| u8::try_from(i % 13).unwrap()).collect();
        let files = vec![wav(1, 1000, 8, &a), wav(1, 1000, 8, &b)];
        let holds = vec![
            vec![Hold {
                at: 0.5,
                resume_at: 0.7,
            }],
            vec![Hold {
                at: 0.0,
                resume_at: 2.0,
            }],
        ];
        let (_, out, written) = stitch(&dir, &files, &holds, &[], u64::from(u32::MAX));
        let w = probed(&out, "out.wav");
        assert!(w.quirks.is_empty(), "{:?}", w.quirks);
        let expected = [&a[..500], &[0x80; 200], &a[500..], &[0x80; 799], &b[..]].concat();
        assert_eq!(expected.len(), 2500);
        assert_eq!(data_of(&w, &out), expected);
        assert_eq!(out.len() % 2, 0);
        let base = w.data_offset;
        assert_eq!(
            written.chunk_byte_ranges,
            [(base, base + 1201), (base + 2000, base + 2500)]
        );
    }

    #[test]
    fn rf64_past_the_threshold_reads_back() {
        let dir = Scratch::new();
        let files = vec![wav(2, 8000, 24, &pcm16(300, 3, 1)), wav(2, 8000, 24, &pcm16(150, 3, 2))];
        let chapters = [chapter(0.0, 0.01, "one")];
        let (chunks, out, written) = stitch(&dir, &files, &[], &chapters, 1000);
        assert_eq!(&out[..4], b"RF64");
        assert_eq!(&out[4..8], &[0xFF; 4]);
        assert_eq!(&out[12..16], b"ds64");
        assert_eq!(le64(&out, 20), out.len() as u64 - 8);
        let w = probed(&out, "out.wav");
        assert!(w.rf64 && w.extensible, "{w:?}");
        assert!(w.quirks.is_empty(), "{:?}", w.quirks);
        assert_eq!(
            (w.channels, w.bits_per_sample, w.channel_mask, w.frames()),
            (2, 24, Some(3), 450)
        );
        assert_eq!(le64(&out, 36), 450, "ds64 sample count");
        let expected = [data_of(&chunks[0], &files[0]), data_of(&chunks[1], &files[1])].concat();
        assert_eq!(data_of(&w, &out), expected);
        assert_eq!(written.sha256, sha(&out));
        // Below the threshold the same stitch is plain RIFF.
        let (_, small, _) = stitch(&dir, &files, &[], &chapters, u64::from(u32::MAX));
        assert_eq!(&small[..4], b"RIFF");
        assert_eq!(out.len(), small.len() + 36);
    }

    #[test]
    fn split_channels_are_the_deinterleaved_input() {
        let dir = Scratch::new();
        let pa = pcm16(700, 3, 1);
        let pb = pcm16(301, 3, 9);
        let files = [wav(3, 8000, 16, &pa), wav(3, 8000, 16, &pb)];
        let chunks: Vec<Wav> = files
            .iter()
            .enumerate()
            .map(|(k, b)| probe(&dir.file(&format!("{k}.wav"), b), &Limits::default()).unwrap())
            .collect();
        let refs: Vec<&Wav> = chunks.iter().collect();
        let holds = vec![
            vec![],
            vec![Hold {
                at: 0.0,
                resume_at: 0.1,
            }],
        ];
        let p = plan(&refs, &holds).unwrap();
        let srcs = sources(&chunks);
        let chapters = [chapter(0.0, 0.05, "a")];
        let input = WavOutput {
            plan: &p,
            chunks: &refs,
            sources: &srcs,
            chapters: &chapters,
            cancel: Cancel::new(),
        };
        let (p0, p2) = (dir.path("c0.wav"), dir.path("c2.wav"));
        let (f0, f2) = (File::create(&p0).unwrap(), File::create(&p2).unwrap());
        let written = write_channels(&input, &[(0, &f0, &p0), (2, &f2, &p2)]).unwrap();
        let channel = |pcm: &[u8], c: usize| -> Vec<u8> {
            pcm.chunks_exact(6).flat_map(|f| f[c * 2..c * 2 + 2].to_vec()).collect()
        };
        for (i, (path, c)) in [(&p0, 0), (&p2, 2)].into_iter().enumerate() {
            let out = std::fs::read(path).unwrap();
            let w = probed(&out, "mono.wav");
            assert_eq!(
                (w.channels, w.sample_rate, w.bits_per_sample, w.extensible),
                (1, 8000, 16, false)
            );
            let gap = vec![0u8; 2 * (800 - 700)];
            assert_eq!(data_of(&w, &out), [channel(&pa, c), gap, channel(&pb, c)].concat());
            assert_eq!(written[i].sha256, sha(&out));
            assert_eq!(written[i].size, out.len() as u64);
            assert_eq!(written[i].inputs[1], (sha(&files[1]), files[1].len() as u64));
            let base = w.data_offset;
            assert_eq!(
                written[i].chunk_byte_ranges,
                [(base, base + 1400), (base + 1600, base + 2202)]
            );
            assert!(chunks_of(&out).iter().any(|(id, _)| id == b"cue "));
        }
        let bad = write_channels(&input, &[(3, &f0, &p0)]).unwrap_err();
        assert_eq!(bad.category(), "usage");
    }

    #[test]
    fn a_cancelled_write_stops() {
        let dir = Scratch::new();
        let files = [wav(1, 8000, 16, &pcm16(100, 1, 0))];
        let chunks = vec![probe(&dir.file("0.wav", &files[0]), &Limits::default()).unwrap()];
        let refs: Vec<&Wav> = chunks.iter().collect();
        let p = plan(&refs, &[]).unwrap();
        let srcs = sources(&chunks);
        let cancel = Cancel::new();
        cancel.cancel();
        let input = WavOutput {
            plan: &p,
            chunks: &refs,
            sources: &srcs,
            chapters: &[],
            cancel,
        };
        let out_path = dir.path("out.wav");
        let out = File::create(&out_path).unwrap();
        assert!(matches!(write(&input, &out, &out_path), Err(Error::Cancelled)));
    }

    #[test]
    fn levels_and_clipping_are_measured() {
        let dir = Scratch::new();
        // Stereo, 1.5 s at 1 kHz: left a full-scale square wave (clipping),
        // right digital silence.
        let pcm: Vec<u8> = (0..1500)
            .flat_map(|i| {
                let l: i16 = if i % 2 == 0 { i16::MAX } else { i16::MIN };
                [l.to_le_bytes(), 0i16.to_le_bytes()].concat()
            })
            .collect();
        let mut bytes = wav(2, 1000, 16, &pcm);
        bytes.truncate(bytes.len() - 2); // half of the last frame
        let w = probe(&dir.file("0.wav", &bytes), &Limits::default()).unwrap();
        let a = analyse(&crate::Storage::local(), &w, &Limits::default()).unwrap();
        assert_eq!(a.samples, 1499);
        assert_eq!(a.levels_dbfs, [-3.0, -3.0]);
        assert_eq!(a.clipped_samples, 1499);
        assert_eq!(a.first_clip, Some(0.0));
        assert_eq!(a.decode_errors.len(), 1);
        assert_eq!(a.decode_errors[0].0, 1.499);
        let levels = channel_levels(&crate::Storage::local(), &w, &Limits::default()).unwrap();
        assert_eq!(levels, [0.0, FLOOR_DBFS]);
        // 24-bit and 8-bit samples decode to full scale.
        assert_eq!(sample_value(&[0xFF, 0xFF, 0x7F], 24), 8_388_607.0 / 8_388_608.0);
        assert_eq!(sample_value(&[0x00, 0x00, 0x80], 24), -1.0);
        assert_eq!(sample_value(&[0x00], 8), -1.0);
        assert_eq!(sample_value(&[0x80], 8), 0.0);
    }

    /// Runs a tool; `None` (and a note) when it is not installed.
    fn tool(name: &str, args: &[&str]) -> Option<Vec<u8>> {
        match std::process::Command::new(name).args(args).output() {
            Ok(o) => {
                assert!(
                    o.status.success(),
                    "{name} {args:?}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                Some(o.stdout)
            }
            Err(e) => {
                assert!(
                    std::env::var("RECSTITCH_REQUIRE_FFMPEG").as_deref() != Ok("1"),
                    "{name} is required: {e}"
                );
                println!("SKIPPED: {name} is not available ({e})");
                None
            }
        }
    }

    #[test]
    fn ffmpeg_decodes_the_stitch_and_reads_rf64() {
        let dir = Scratch::new();
        let mut files = Vec::new();
        for (k, freq) in [440, 660].into_iter().enumerate() {
            let path = dir.path(&format!("{k}.wav"));
            let source = format!("sine=frequency={freq}:duration=0.{}:sample_rate=16000", 5 + k);
            let p = path.to_str().unwrap();
            let made = tool(
                "ffmpeg",
                &[
                    "-v",
                    "error",
                    "-y",
                    "-f",
                    "lavfi",
                    "-i",
                    &source,
                    "-ac",
                    "4",
                    "-c:a",
                    "pcm_s16le",
                    p,
                ],
            );
            if made.is_none() {
                return;
            }
            files.push(std::fs::read(&path).unwrap());
        }
        let chapters = [chapter(0.0, 0.5, "first"), chapter(0.5, 1.1, "second")];
        for max32 in [u64::from(u32::MAX), 64] {
            let (chunks, out, _) = stitch(&dir, &files, &[], &chapters, max32);
            assert_eq!(chunks[0].channels, 4);
            assert!(chunks.iter().all(|c| c.quirks.is_empty()), "{chunks:?}");
            assert_eq!(&out[..4], if max32 == 64 { b"RF64" } else { b"RIFF" });
            let out_path = dir.file(&format!("check-{max32}.wav"), &out);
            let o = out_path.to_str().unwrap();
            let decoded = tool("ffmpeg", &["-v", "error", "-i", o, "-f", "s16le", "-"]).unwrap();
            let expected = [data_of(&chunks[0], &files[0]), data_of(&chunks[1], &files[1])].concat();
            assert_eq!(decoded.len(), 4 * 2 * 17600);
            assert!(
                decoded == expected,
                "ffmpeg decodes other samples than the chunks' ({max32})"
            );
            let probe = tool(
                "ffprobe",
                &[
                    "-v",
                    "error",
                    "-show_entries",
                    "stream=channels,duration",
                    "-of",
                    "default=nw=1",
                    o,
                ],
            )
            .unwrap();
            let text = String::from_utf8(probe).unwrap();
            assert!(text.contains("channels=4"), "{text}");
            assert!(text.contains("duration=1.100000"), "{text}");
        }
    }
}
