//! Stitched MP3: the join plan of MP3 chunks and the writer of one MP3
//! with ID3v2 chapters and a Xing/LAME header; reading is in
//! [`crate::formats::mp3`].
//!
//! # Planning
//!
//! The output is the chunks' audio frames in order, the encoder delay of
//! chunk 0 and the padding of the last chunk written in the output's LAME
//! tag for players to trim. At each join the previous chunk's padding and
//! the next chunk's delay stay in the output; whole frames that are pure
//! padding (end of a chunk) or pure priming (start of a chunk) are dropped
//! when the bit reservoir allows it. `--gaps wallclock` inserts silent frames
//! (side information all zero: every granule decodes to zero). Where a real
//! frame follows inserted or dropped frames and its `main_data_begin` points
//! back `N` bytes, those `N` bytes of the original main-data stream are
//! written at the end of the frame before it: a silent frame's main data is
//! all unused, and a real frame's unused tail may carry them.
//!
//! # Writing
//!
//! One ID3v2.4 tag (title, `CHAP` chapters and one `CTOC`, per the ID3v2
//! Chapter Frame Addendum), a new Xing or Info frame with frame and byte
//! counts, a 100-entry TOC and a LAME tag, then the frames copied in blocks
//! from the inputs, each input read once from start to end and hashed on the
//! way.

use std::fs::File;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Here, Result};
use crate::formats::mp3::*;
use crate::formats::{AudioLayout, AudioPlacement};
use crate::io::{hex, Cancel};
use crate::output::mux::sink::Sink;
use crate::output::mux::write::{Source, Written};
use crate::output::timeline::{Chapter, Hold, MAX_HOLD_SECONDS};

/// Bytes of the main-data stream that frame `frame` of chunk `chunk` points
/// back to (its `main_data_begin`, `len` bytes), to be written at the end
/// of the output frame before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Carry {
    chunk: usize,
    frame: usize,
    len: u16,
}

/// A stretch of the output after the header frame.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// Frames `first..first + count` of chunk `chunk`, bytes `start..end` of
    /// its file; with `patch`, the last `patch.len` bytes are replaced by a carry.
    Copy {
        chunk: usize,
        first: usize,
        count: usize,
        start: u64,
        end: u64,
        patch: Option<Carry>,
    },
    /// `count` silent frames of bitrate index `bitrate_index`; the last one of
    /// index `last_index`, ending with `carry`.
    Silence {
        count: u64,
        bitrate_index: u8,
        last_index: u8,
        carry: Option<Carry>,
    },
}

/// The output of [`plan`]: where each chunk lands, and the output as a list
/// of pieces (runs of frames of a chunk, silent frames).
#[derive(Debug, Clone, PartialEq)]
pub struct Mp3Plan {
    /// Where each chunk landed, the output's length and frame count.
    pub layout: AudioLayout,
    pieces: Vec<Piece>,
    /// Header of chunk 0's first audio frame: the template of generated frames.
    template: [u8; 4],
    /// The Xing/Info header frame with its LAME tag.
    xing: Vec<u8>,
    /// Per chunk, the byte range of its frames from the end of the header frame.
    chunk_ranges: Vec<(u64, u64)>,
}

/// Lays out the output as it is planned.
struct Builder {
    template: Header,
    pieces: Vec<Piece>,
    frames: u64,
    bytes: u64,
    ranges: Vec<(u64, u64)>,
    bitrates: [bool; 16],
}

impl Builder {
    fn push_frame(&mut self, k: usize, m: &Mp3, i: usize) {
        let f = m.audio_frames[i];
        let size = u64::from(f.size);
        let joined = match self.pieces.last_mut() {
            Some(Piece::Copy {
                chunk,
                count,
                end,
                patch: None,
                ..
            }) if *chunk == k && *end == f.offset => {
                *count += 1;
                *end = f.end();
                true
            }
            _ => false,
        };
        if !joined {
            self.pieces.push(Piece::Copy {
                chunk: k,
                first: i,
                count: 1,
                start: f.offset,
                end: f.end(),
                patch: None,
            });
        }
        let r = &mut self.ranges[k];
        r.0 = r.0.min(self.bytes);
        r.1 = r.1.max(self.bytes + size);
        self.bytes += size;
        self.frames += 1;
        self.bitrates[usize::from(f.bitrate_index & 15)] = true;
    }

    /// `count` silent frames at bitrate `index`; the last one carries the
    /// reservoir bytes `carry` says, unsupported (at `here`) when no frame
    /// of the stream can.
    fn push_silence(&mut self, count: u64, index: u8, carry: Option<Carry>, here: &Here) -> Result<()> {
        let need = carry.map_or(0, |c| c.len);
        let last_index = carrying_index(&self.template, index, need)
            .ok_or_else(|| here.unsupported(format!("no frame of this stream can carry {need} reservoir bytes")))?;
        let len = |i: u8| u64::from(self.template.frame_len_with(i, false).unwrap_or(0));
        self.bytes += (count - 1) * len(index) + len(last_index);
        self.frames += count;
        self.bitrates[usize::from(index & 15)] = true;
        self.bitrates[usize::from(last_index & 15)] = true;
        self.pieces.push(Piece::Silence {
            count,
            bitrate_index: index,
            last_index,
            carry,
        });
        Ok(())
    }

    fn patch(&mut self, carry: Carry) {
        if let Some(Piece::Copy { patch, .. }) = self.pieces.last_mut() {
            *patch = Some(carry);
        }
    }

    /// Output byte offset (from the end of the header frame) of each frame in `targets` (ascending).
    fn offsets(&self, chunks: &[&Mp3], targets: &[u64]) -> Vec<u64> {
        let mut out = Vec::with_capacity(targets.len());
        let mut t = targets.iter().peekable();
        let (mut frame, mut pos) = (0u64, 0u64);
        for p in &self.pieces {
            match p {
                Piece::Copy {
                    chunk,
                    first,
                    count,
                    start,
                    ..
                } => {
                    while let Some(&&want) = t.peek() {
                        if want >= frame + *count as u64 {
                            break;
                        }
                        let i = first + usize::try_from(want - frame).unwrap_or(0);
                        let off = chunks[*chunk].audio_frames.get(i).map_or(0, |f| f.offset);
                        out.push(pos + off.saturating_sub(*start));
                        t.next();
                    }
                    frame += *count as u64;
                    pos += p_len(p, &self.template);
                }
                Piece::Silence {
                    count, bitrate_index, ..
                } => {
                    let len = u64::from(self.template.frame_len_with(*bitrate_index, false).unwrap_or(0));
                    while let Some(&&want) = t.peek() {
                        if want >= frame + count {
                            break;
                        }
                        out.push(pos + (want - frame) * len);
                        t.next();
                    }
                    frame += count;
                    pos += p_len(p, &self.template);
                }
            }
        }
        out.resize(targets.len(), pos);
        out
    }
}

/// Bytes of a piece in the output.
fn p_len(p: &Piece, template: &Header) -> u64 {
    match p {
        Piece::Copy { start, end, .. } => end - start,
        Piece::Silence {
            count,
            bitrate_index,
            last_index,
            ..
        } => {
            let len = |i: u8| u64::from(template.frame_len_with(i, false).unwrap_or(0));
            (count - 1) * len(*bitrate_index) + len(*last_index)
        }
    }
}

/// Main data bytes of a generated frame (no CRC) of bitrate index `index`.
fn region_of(h: &Header, index: u8) -> u32 {
    h.frame_len_with(index, false)
        .unwrap_or(0)
        .saturating_sub(u32::try_from(4 + h.side_info_len()).unwrap_or(u32::MAX))
}

/// The bitrate index of a silent frame that carries `need` bytes: `index`
/// when it can, else the smallest that can.
fn carrying_index(h: &Header, index: u8, need: u16) -> Option<u8> {
    std::iter::once(index)
        .chain(1..15)
        .find(|&i| region_of(h, i) >= u32::from(need))
}

/// A generated frame: header `h` with bitrate index `index`, zero side
/// information (every granule decodes to zero) and main data, ending with `carry`.
fn silent_frame(h: &Header, index: u8, carry: &[u8]) -> Vec<u8> {
    let len = usize::try_from(h.frame_len_with(index, false).unwrap_or(0)).unwrap_or(0);
    let mut f = vec![0u8; len.max(4)];
    f[..4].copy_from_slice(&h.generated(index));
    let at = f.len().saturating_sub(carry.len()).max(4);
    let n = f.len() - at;
    f[at..].copy_from_slice(&carry[carry.len() - n..]);
    f
}

/// Silent frames that make the output wait `wait` seconds.
fn hold_frames(wait: f64, rate: f64, spf: u64, here: &Here) -> Result<u64> {
    if wait.is_nan() || wait > MAX_HOLD_SECONDS {
        return Err(here.unsupported(format!(
            "a pause or gap of {wait:.0} s is longer than {MAX_HOLD_SECONDS:.0} s, the longest wait `--gaps wallclock` holds; check the chunks' times or stitch with `--gaps collapse`"
        )));
    }
    let frames = (wait * rate / spf as f64).round();
    if frames < 1.0 {
        return Ok(0);
    }
    // 1 <= frames <= MAX_HOLD_SECONDS * rate: exact as an integer.
    Ok(frames as u64)
}

/// The CRC-16 of the LAME tag (polynomial 0x8005, reflected, initial 0).
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc = 0u16;
    for &b in bytes {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xA001 } else { crc >> 1 };
        }
    }
    crc
}

/// The output's Xing (VBR) or Info (CBR) frame with a 100-entry TOC and a
/// LAME tag carrying chunk 0's delay and the last chunk's padding.
fn xing_frame(b: &Builder, chunks: &[&Mp3], vbr: bool) -> Result<Vec<u8>> {
    let (c0, cl) = (chunks[0], chunks[chunks.len() - 1]);
    let h = &b.template;
    let at = 4 + h.side_info_len();
    let lame_at = at + 120;
    let need = (lame_at + LAME_TAG_LEN).max(LAME_CRC_SPAN);
    let own = c0.audio_frames.first().map_or(0, |f| f.bitrate_index);
    let index = std::iter::once(own)
        .chain(1..15)
        .find(|&i| {
            h.frame_len_with(i, false)
                .is_some_and(|l| usize::try_from(l).is_ok_and(|l| l >= need))
        })
        .ok_or_else(|| Here::new(&c0.path, "output").unsupported("no frame of this stream can hold a Xing header"))?;
    let len = h.frame_len_with(index, false).unwrap_or(0);
    let total = u64::from(len) + b.bytes;
    let too_long =
        |what: &str| Here::new(&c0.path, "output").unsupported(format!("{what}: a Xing header counts at most 2^32"));
    let frames32 = u32::try_from(b.frames).map_err(|_| too_long("too many frames"))?;
    let total32 = u32::try_from(total).map_err(|_| too_long("too many bytes"))?;
    // `len` is at most 1441 (MPEG-1 at 320 kbit/s and 32 kHz).
    let mut f = vec![0u8; usize::try_from(len).unwrap_or(0).max(need)];
    f[..4].copy_from_slice(&h.generated(index));
    f[at..at + 4].copy_from_slice(if vbr { b"Xing" } else { b"Info" });
    f[at + 4..at + 8].copy_from_slice(&0x0Fu32.to_be_bytes());
    f[at + 8..at + 12].copy_from_slice(&frames32.to_be_bytes());
    f[at + 12..at + 16].copy_from_slice(&total32.to_be_bytes());
    let targets: Vec<u64> = (0..100u64).map(|i| i * b.frames / 100).collect();
    for (i, off) in b.offsets(chunks, &targets).into_iter().enumerate() {
        let pos = u64::from(len) + off;
        f[at + 16 + i] = u8::try_from((pos * 256 / total.max(1)).min(255)).unwrap_or(255);
    }
    // Quality (4 bytes) stays 0.
    let t = &mut f[lame_at..lame_at + LAME_TAG_LEN];
    match &c0.lame {
        Some(l) => {
            t[..9].copy_from_slice(&l[..9]);
            // Revision and VBR method, lowpass; encoding flags and ABR bitrate;
            // misc (noise shaping, stereo mode, source rate); preset and surround.
            t[9..11].copy_from_slice(&l[9..11]);
            t[19..21].copy_from_slice(&l[19..21]);
            t[24] = l[24];
            t[26..28].copy_from_slice(&l[26..28]);
        }
        None => t[..9].copy_from_slice(DEFAULT_ENCODER),
    }
    let (delay, padding) = (c0.encoder_delay.min(4095), cl.encoder_padding.min(4095));
    let v = (delay << 12) | padding;
    t[21..24].copy_from_slice(&v.to_be_bytes()[1..]);
    t[28..32].copy_from_slice(&total32.to_be_bytes());
    let crc = crc16(&f[..LAME_CRC_SPAN]);
    f[lame_at + 34..lame_at + 36].copy_from_slice(&crc.to_be_bytes());
    Ok(f)
}

/// Plans the join of `chunks` in order, with the waits `holds` asks for
/// (`--gaps wallclock`; empty for `--gaps collapse`).
///
/// All chunks must share MPEG version, sampling rate and channel mode.
/// Output time is presentation time after the output's own delay (chunk 0's)
/// is trimmed; the placements say where each chunk's first presented sample
/// lands and what was kept of delays and paddings at the joins (in decoded
/// samples, the decoder's delay included).
pub fn plan(chunks: &[&Mp3], holds: &[Vec<Hold>]) -> Result<Mp3Plan> {
    let Some(c0) = chunks.first() else {
        return Err(Error::Usage("no MP3 chunks to join".into()));
    };
    let template = c0
        .header()
        .ok_or_else(|| Here::new(&c0.path, "chunk 0").invalid("no frame header"))?;
    check_joinable(chunks)?;
    let join = Join {
        spf: u64::from(c0.samples_per_frame),
        rate: f64::from(c0.sample_rate),
        out_lead: u64::from(c0.encoder_delay) + DECODER_DELAY,
        last: chunks.len() - 1,
    };
    let mut b = Builder {
        template,
        pieces: Vec::new(),
        frames: 0,
        bytes: 0,
        ranges: vec![(u64::MAX, 0); chunks.len()],
        bitrates: [false; 16],
    };
    let mut placements = Vec::with_capacity(chunks.len());
    let mut prev_tail = 0u16;
    for (k, m) in chunks.iter().enumerate() {
        let holds = holds.get(k).cloned().unwrap_or_default();
        let (placement, tail) = join.lay_chunk(&mut b, (k, m), holds, prev_tail)?;
        placements.push(placement);
        prev_tail = tail;
    }
    let vbr = b.bitrates.iter().filter(|&&x| x).count() > 1;
    let xing = xing_frame(&b, chunks, vbr)?;
    let trimmed = u64::from(c0.encoder_delay) + u64::from(chunks[join.last].encoder_padding);
    let samples = (b.frames * join.spf).saturating_sub(trimmed);
    Ok(Mp3Plan {
        layout: AudioLayout {
            placements,
            duration: samples as f64 / join.rate,
            samples,
            packets: b.frames,
        },
        template: template.raw,
        xing,
        chunk_ranges: b.ranges.iter().map(|&(s, e)| (s.min(e), e)).collect(),
        pieces: b.pieces,
    })
}

/// Every chunk has audio frames and shares chunk 0's MPEG version,
/// sampling rate and channel mode; otherwise the chunk and what differs.
fn check_joinable(chunks: &[&Mp3]) -> Result<()> {
    let Some(c0) = chunks.first() else { return Ok(()) };
    for (k, c) in chunks.iter().enumerate() {
        let here = Here::new(&c.path, format!("chunk {k}"));
        if c.audio_frames.is_empty() {
            return Err(here.invalid("no audio frame"));
        }
        let differs = [
            (
                c.version != c0.version,
                format!("{} (chunk 0: {})", c.version, c0.version),
            ),
            (
                c.sample_rate != c0.sample_rate,
                format!("{} Hz (chunk 0: {} Hz)", c.sample_rate, c0.sample_rate),
            ),
            (
                c.channel_mode != c0.channel_mode,
                format!("{} (chunk 0: {})", c.channel_mode, c0.channel_mode),
            ),
        ];
        let what: Vec<String> = differs.into_iter().filter(|d| d.0).map(|d| d.1).collect();
        if !what.is_empty() {
            return Err(here.unsupported(format!(
                "chunk {k} differs from chunk 0 in {}: MP3 chunks can only be joined without re-encoding when they agree",
                what.join(", ")
            )));
        }
    }
    Ok(())
}

/// What every chunk's layout shares: samples per frame, the rate, the
/// output's own lead (chunk 0's delay and the decoder's) and the last index.
struct Join {
    spf: u64,
    rate: f64,
    out_lead: u64,
    last: usize,
}

impl Join {
    /// Lays chunk `k` (`m`) out after what `b` holds: the priming frames
    /// the reservoir lets it drop, silence for the holds before it and
    /// inside it, its frames. Returns its placement and the unused tail of
    /// its last frame (room for the next chunk's reservoir bytes).
    fn lay_chunk(
        &self,
        b: &mut Builder,
        (k, m): (usize, &Mp3),
        mut holds: Vec<Hold>,
        prev_tail: u16,
    ) -> Result<(AudioPlacement, u16)> {
        let (spf, rate, out_lead, last) = (self.spf, self.rate, self.out_lead, self.last);
        let here = Here::new(&m.path, format!("chunk {k}"));
        let n = m.audio_frames.len();
        let (lead, end) = (m.lead(), m.presented_end());
        // Whole frames of padding at the end of a chunk before the last.
        let drop_back = if k < last {
            usize::try_from((n as u64).saturating_sub(end.div_ceil(spf))).unwrap_or(0)
        } else {
            0
        }
        .min(n - 1);
        let kept_end = n - drop_back;
        // Whole frames of priming at the start of a chunk after the first.
        let max_front = if k > 0 {
            usize::try_from(lead / spf)
                .unwrap_or(0)
                .min(kept_end - 1)
                .min(m.lead_carry.len().saturating_sub(1))
        } else {
            0
        };
        holds.sort_by(|a, b| a.at.total_cmp(&b.at));
        let split = holds.iter().position(|h| h.at > 0.0).unwrap_or(holds.len());
        let (before, inside) = holds.split_at(split);
        let need = |i: usize| if i == 0 { 0 } else { m.audio_frames[i].main_data_begin };
        // Silent frames before the chunk whose first kept frame is `d`.
        let before_silence = |d: usize, out_frames: u64| -> Result<u64> {
            if out_frames == 0 {
                return Ok(0);
            }
            let mut inserted = 0;
            for h in before {
                let content = (out_frames + inserted) * spf + lead - d as u64 * spf;
                let now = (content as f64 - out_lead as f64) / rate;
                inserted += hold_frames(h.resume_at - now, rate, spf, &here)?;
            }
            Ok(inserted)
        };
        let mut d = max_front;
        let mut silence = before_silence(d, b.frames)?;
        if silence == 0 && d > 0 {
            // The frame before is the previous chunk's last: its unused tail
            // must hold what the first kept frame needs from the reservoir.
            d = (0..=max_front).rev().find(|&d| need(d) <= prev_tail).unwrap_or(0);
            silence = before_silence(d, b.frames)?;
        }
        if silence > 0 {
            b.push_silence(silence, silence_index(m), carry(k, m, d), &here)?;
        } else if let Some(c) = carry(k, m, d) {
            b.patch(c);
        }
        let (inside_silence, first_presented_out) = self.lay_frames(b, (k, m), d..kept_end, inside, &here)?;
        let placement = AudioPlacement {
            audio_start: first_presented_out.saturating_sub(out_lead) as f64 / rate,
            audio_presented: m.samples() as f64 / rate,
            dropped_priming_packets: u32::try_from(d).unwrap_or(u32::MAX),
            leftover_priming_samples: if k == 0 { 0 } else { lead - d as u64 * spf },
            tail_padding_samples: if k == last {
                0
            } else {
                (kept_end as u64 * spf).saturating_sub(end)
            },
            silence_samples: (silence + inside_silence) * spf,
        };
        Ok((placement, m.audio_frames[kept_end - 1].unused_tail()))
    }

    /// Pushes frames `frames` of chunk `k` (`m`), with silence where the
    /// holds `inside` it wait for the wall clock; returns the samples of
    /// silence frames inserted and the output sample of its first presented
    /// sample.
    fn lay_frames(
        &self,
        b: &mut Builder,
        (k, m): (usize, &Mp3),
        frames: std::ops::Range<usize>,
        inside: &[Hold],
        here: &Here,
    ) -> Result<(u64, u64)> {
        let (spf, rate) = (self.spf, self.rate);
        let lead = m.lead();
        let mut inside_silence = 0u64;
        let first_presented = usize::try_from(lead / spf).unwrap_or(usize::MAX);
        let mut first_presented_out = None;
        let mut pending = inside.iter().peekable();
        for i in frames {
            let local = (i as u64 * spf) as f64 - lead as f64;
            while let Some(h) = pending.next_if(|h| local >= h.at * rate - spf as f64 / 2.0) {
                let now = ((b.frames * spf) as f64 - self.out_lead as f64) / rate;
                let count = hold_frames(h.resume_at - now, rate, spf, here)?;
                if count > 0 && b.frames > 0 {
                    b.push_silence(count, silence_index(m), carry(k, m, i), here)?;
                    inside_silence += count;
                }
            }
            if i == first_presented {
                first_presented_out = Some(b.frames * spf + lead % spf);
            }
            b.push_frame(k, m, i);
        }
        Ok((inside_silence, first_presented_out.unwrap_or(b.frames * spf)))
    }
}

/// The bitrate index of the silent frames inserted in chunk `m`: its own
/// when it is constant, else the smallest (widened to carry reservoir bytes).
fn silence_index(m: &Mp3) -> u8 {
    if m.bitrate_min == m.bitrate_max {
        m.audio_frames[0].bitrate_index
    } else {
        1
    }
}

/// The reservoir bytes frame `i` of chunk `k` (`m`) needs from before it,
/// when it needs any.
fn carry(k: usize, m: &Mp3, i: usize) -> Option<Carry> {
    let need = if i == 0 { 0 } else { m.audio_frames[i].main_data_begin };
    (need > 0).then_some(Carry {
        chunk: k,
        frame: i,
        len: need,
    })
}

/// Everything [`write`] needs.
pub struct Mp3Output<'a> {
    /// The plan.
    pub plan: &'a Mp3Plan,
    /// The chunks, in the order given to [`plan`].
    pub chunks: &'a [&'a Mp3],
    /// The chunks' files, opened, in the same order.
    pub sources: &'a [Source],
    /// Chapters, in order.
    pub chapters: &'a [Chapter],
    /// Title of the recording (`TIT2`).
    pub title: &'a str,
    /// Stops the copy between blocks when cancelled.
    pub cancel: Cancel,
}

/// Milliseconds of `seconds`, rounded, within `u32`.
fn ms32(seconds: f64) -> u32 {
    let ms = (seconds * 1000.0).round();
    if ms.is_nan() || ms <= 0.0 {
        0
    } else if ms >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        // 0 < ms < 2^32, integral.
        ms as u32
    }
}

/// The ID3v2.4 tag: the title, one `CHAP` per chapter and a top-level,
/// ordered `CTOC` listing them; no padding.
fn id3_tag(title: &str, chapters: &[Chapter]) -> Result<Vec<u8>, id3::Error> {
    use id3::frame::{Chapter as Chap, Frame as Id3Frame, TableOfContents};
    use id3::TagLike;
    let mut tag = id3::Tag::new();
    tag.set_title(title);
    let mut ids = Vec::with_capacity(chapters.len());
    for (i, c) in chapters.iter().enumerate() {
        let id = format!("chp{i}");
        let start = ms32(c.start);
        let end = ms32(c.end).max(start.saturating_add(1));
        tag.add_frame(Chap {
            element_id: id.clone(),
            start_time: start,
            end_time: end,
            start_offset: u32::MAX,
            end_offset: u32::MAX,
            frames: vec![Id3Frame::text("TIT2", c.title.clone())],
        });
        ids.push(id);
    }
    if !ids.is_empty() {
        tag.add_frame(TableOfContents {
            element_id: "toc".into(),
            top_level: true,
            ordered: true,
            elements: ids,
            frames: Vec::new(),
        });
    }
    let mut out = Vec::new();
    id3::Encoder::new()
        .version(id3::Version::Id3v24)
        .encode(&tag, &mut out)?;
    Ok(out)
}

/// One input read from start to end in blocks, hashed on the way; the
/// block before the current one is kept for reservoir bytes just behind.
struct InputPass<'a> {
    source: &'a Source,
    hash: Sha256,
    cur: Vec<u8>,
    cur_start: u64,
    prev: Vec<u8>,
    prev_start: u64,
    read_end: u64,
    reread: u64,
}

impl<'a> InputPass<'a> {
    fn new(source: &'a Source) -> Self {
        source.file.advise_sequential();
        InputPass {
            source,
            hash: Sha256::new(),
            cur: Vec::new(),
            cur_start: 0,
            prev: Vec::new(),
            prev_start: 0,
            read_end: 0,
            reread: 0,
        }
    }

    fn io(&self, e: std::io::Error) -> Error {
        Error::io(&self.source.path, e)
    }

    /// Reads the next block; false at the end of the input.
    fn next_block(&mut self) -> Result<bool> {
        std::mem::swap(&mut self.prev, &mut self.cur);
        self.prev_start = self.cur_start;
        self.cur.resize(BLOCK, 0);
        let mut n = 0;
        while n < BLOCK {
            match self.source.file.read_at(&mut self.cur[n..], self.read_end + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io(e)),
            }
        }
        self.cur.truncate(n);
        self.hash.update(&self.cur);
        self.cur_start = self.read_end;
        self.read_end += n as u64;
        Ok(n > 0)
    }

    /// Copies bytes `start..end` of the input to `sink`.
    fn copy(&mut self, start: u64, end: u64, sink: &mut Sink, cancel: &Cancel) -> Result<()> {
        let mut pos = start;
        while pos < end {
            if pos >= self.read_end {
                cancel.check()?;
                if !self.next_block()? {
                    return Err(Here::new(&self.source.path, "").truncated(format!(
                        "the file ends at byte {}, before byte {end} of its frames",
                        self.read_end
                    )));
                }
                continue;
            }
            let upto = end.min(self.read_end);
            if pos >= self.cur_start {
                let (a, b) = (
                    usize::try_from(pos - self.cur_start),
                    usize::try_from(upto - self.cur_start),
                );
                let (Ok(a), Ok(b)) = (a, b) else { break };
                sink.put(&self.cur[a..b])?;
            } else {
                // Behind the current block (not expected): read it again.
                let upto = upto.min(self.cur_start);
                let mut buf = vec![0u8; usize::try_from(upto - pos).unwrap_or(0)];
                self.source.file.read_exact_at(&mut buf, pos).map_err(|e| self.io(e))?;
                self.reread += buf.len() as u64;
                sink.put(&buf)?;
                pos = upto;
                continue;
            }
            pos = upto;
        }
        Ok(())
    }

    /// Byte `pos` of the input, from the blocks held or read again.
    fn byte_range(&mut self, pos: u64, out: &mut [u8]) -> Result<()> {
        let len = out.len() as u64;
        let within = |start: u64, block: &[u8]| pos >= start && pos + len <= start + block.len() as u64;
        if within(self.cur_start, &self.cur) {
            let a = usize::try_from(pos - self.cur_start).unwrap_or(0);
            out.copy_from_slice(&self.cur[a..a + out.len()]);
        } else if within(self.prev_start, &self.prev) {
            let a = usize::try_from(pos - self.prev_start).unwrap_or(0);
            out.copy_from_slice(&self.prev[a..a + out.len()]);
        } else {
            self.source.file.read_exact_at(out, pos).map_err(|e| self.io(e))?;
            self.reread += len;
        }
        Ok(())
    }

    /// Reads the rest of the input; its SHA-256 (hex) and size.
    fn finish(mut self, cancel: &Cancel) -> Result<((String, u64), u64)> {
        while self.next_block()? {
            cancel.check()?;
        }
        Ok(((hex(&self.hash.finalize()), self.read_end), self.reread))
    }
}

/// The main-data bytes `c` names: from the probe for a chunk's first
/// frames, else from the input being read (the frames just before).
fn carry_bytes(c: &Carry, chunks: &[&Mp3], pass: Option<&mut InputPass>) -> Result<Vec<u8>> {
    let m = chunks[c.chunk];
    let len = usize::from(c.len);
    if let Some(b) = m.lead_carry.get(c.frame) {
        if b.len() == len {
            return Ok(b.clone());
        }
    }
    let mut out = vec![0u8; len];
    let Some(pass) = pass else { return Ok(out) };
    // Walk back through the regions of the frames before it.
    let mut need = len;
    for f in m.audio_frames[..c.frame].iter().rev() {
        if need == 0 {
            break;
        }
        let region = usize::from(f.region_len());
        let take = region.min(need);
        let from = f.end() - take as u64;
        pass.byte_range(from, &mut out[need - take..need])?;
        need -= take;
    }
    Ok(out)
}

/// Moves the pass to chunk `k`, reading the inputs before it to their end.
fn advance<'s>(
    pass: &mut Option<(usize, InputPass<'s>)>,
    k: usize,
    sources: &'s [Source],
    inputs: &mut Vec<(String, u64)>,
    reread: &mut u64,
    cancel: &Cancel,
) -> Result<()> {
    loop {
        match pass {
            Some((at, _)) if *at == k => return Ok(()),
            Some((at, _)) if *at > k => return Err(Error::Internal("MP3 plan out of chunk order".into())),
            _ => {}
        }
        let next = pass.as_ref().map_or(0, |(at, _)| at + 1);
        if let Some((_, p)) = pass.take() {
            let (h, r) = p.finish(cancel)?;
            inputs.push(h);
            *reread += r;
        }
        let source = sources
            .get(next)
            .ok_or_else(|| Error::Internal("MP3 plan names a chunk without a source".into()))?;
        *pass = Some((next, InputPass::new(source)));
    }
}

/// Writes the stitched MP3 to `out` (named `out_path` in errors): the ID3v2
/// tag, the Xing/Info frame, then the planned frames, each input read once
/// and hashed.
pub fn write(input: &Mp3Output, out: &File, out_path: &Path) -> Result<Written> {
    let plan = input.plan;
    let n = input.chunks.len();
    if input.sources.len() != n || plan.chunk_ranges.len() != n {
        return Err(Error::Usage(format!(
            "{} chunks, {} sources and a plan for {} chunks",
            n,
            input.sources.len(),
            plan.chunk_ranges.len()
        )));
    }
    let template = Header::parse(plan.template).ok_or_else(|| Error::Internal("MP3 plan without a header".into()))?;
    let tag = id3_tag(input.title, input.chapters).map_err(|e| Error::encode(out_path, "the ID3v2 tag", e))?;
    let head = (tag.len() + plan.xing.len()) as u64;
    let mut sink = Sink::new(out, out_path);
    sink.put(&tag)?;
    sink.put(&plan.xing)?;
    let cancel = &input.cancel;
    let mut inputs = Vec::with_capacity(n);
    let mut reread = 0;
    let mut pass: Option<(usize, InputPass)> = None;
    for piece in &plan.pieces {
        cancel.check()?;
        match piece {
            Piece::Copy {
                chunk,
                start,
                end,
                patch,
                ..
            } => {
                advance(&mut pass, *chunk, input.sources, &mut inputs, &mut reread, cancel)?;
                let Some((_, p)) = pass.as_mut() else { continue };
                let keep = end - patch.map_or(0, |c| u64::from(c.len));
                p.copy(*start, keep, &mut sink, cancel)?;
                if let Some(c) = patch {
                    sink.put(&carry_bytes(c, input.chunks, None)?)?;
                }
            }
            Piece::Silence {
                count,
                bitrate_index,
                last_index,
                carry,
            } => {
                let tail = match carry {
                    Some(c) => {
                        let p = pass.as_mut().filter(|(at, _)| *at == c.chunk).map(|(_, p)| p);
                        carry_bytes(c, input.chunks, p)?
                    }
                    None => Vec::new(),
                };
                let plain = silent_frame(&template, *bitrate_index, &[]);
                for i in 1..*count {
                    if i % 4096 == 0 {
                        cancel.check()?;
                    }
                    sink.put(&plain)?;
                }
                sink.put(&silent_frame(&template, *last_index, &tail))?;
            }
        }
    }
    if n > 0 {
        advance(&mut pass, n - 1, input.sources, &mut inputs, &mut reread, cancel)?;
    }
    if let Some((_, p)) = pass.take() {
        let (h, r) = p.finish(cancel)?;
        inputs.push(h);
        reread += r;
    }
    let (sha256, size) = sink.finish()?;
    Ok(Written {
        size,
        sha256,
        chunk_byte_ranges: plan.chunk_ranges.iter().map(|&(s, e)| (head + s, head + e)).collect(),
        inputs,
        reread,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::mp3::{analyse, probe, probe_reader, Mp3};
    use crate::limits::Limits;
    use crate::storage::Input;
    use std::path::PathBuf;
    use std::process::Command;

    /// MPEG-2, Layer III, 48 kbit/s, 16 kHz, mono, no CRC: 216-byte frames.
    const H16: [u8; 4] = [0xFF, 0xF3, 0x68, 0xC4];
    const REGION16: usize = 216 - 4 - 9;

    struct BitWriter {
        out: Vec<u8>,
        bits: usize,
    }
    impl BitWriter {
        fn put(&mut self, v: u32, n: usize) {
            for i in (0..n).rev() {
                if self.bits.is_multiple_of(8) {
                    self.out.push(0);
                }
                let last = self.out.len() - 1;
                self.out[last] |= ((v.checked_shr(i as u32).unwrap_or(0) & 1) as u8) << (7 - self.bits % 8);
                self.bits += 1;
            }
        }
    }

    /// A frame of header `h` with `main_data_begin` `mdb`, main data of
    /// `len` bytes, and region `region`.
    fn frame(h: [u8; 4], mdb: u16, len: u16, region: &[u8]) -> Vec<u8> {
        let hd = Header::parse(h).unwrap();
        let mut w = BitWriter {
            out: Vec::new(),
            bits: 0,
        };
        let mono = hd.mode == ChannelMode::Mono;
        let ch = if mono { 1 } else { 2 };
        let (granules, entry) = match hd.version {
            MpegVersion::Mpeg1 => {
                w.put(u32::from(mdb), 9);
                w.put(0, if mono { 5 } else { 3 } + 4 * ch);
                (2, 59)
            }
            _ => {
                w.put(u32::from(mdb), 8);
                w.put(0, if mono { 1 } else { 2 });
                (1, 63)
            }
        };
        let parts = granules * ch;
        let mut left = u32::from(len) * 8;
        for g in 0..parts {
            let p = if g + 1 == parts {
                left
            } else {
                (u32::from(len) * 8 / parts as u32).min(left)
            };
            left -= p;
            w.put(p, 12);
            w.put(0, entry - 12);
        }
        let mut f = h.to_vec();
        f.extend_from_slice(&w.out[..hd.side_info_len()]);
        f.extend_from_slice(region);
        assert_eq!(f.len(), hd.frame_len().unwrap() as usize);
        f
    }

    /// `n` frames of a 16 kHz mono stream whose reservoir is used as an
    /// encoder would: each frame's main data (`lens(i)` bytes, filled with
    /// a signature of the chunk and frame) starts as far back as it can.
    /// Returns the frames' bytes and each frame's main data.
    fn stream(n: usize, seed: u8, lens: impl Fn(usize) -> usize) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut main = vec![0xEEu8; n * REGION16];
        let mut mdbs = Vec::new();
        let mut datas = Vec::new();
        let mut r = 0usize;
        for i in 0..n {
            let mdb = r.min(255);
            let s = i * REGION16;
            let len = lens(i).min(mdb + REGION16);
            let data: Vec<u8> = (0..len)
                .map(|j| (seed as usize * 31 + i * 7 + j * 13) as u8 % 251)
                .collect();
            main[s - mdb..s - mdb + len].copy_from_slice(&data);
            mdbs.push((mdb, len));
            datas.push(data);
            r = mdb + REGION16 - len;
        }
        let mut out = Vec::new();
        for (i, &(mdb, len)) in mdbs.iter().enumerate() {
            let s = i * REGION16;
            out.extend(frame(H16, mdb as u16, len as u16, &main[s..s + REGION16]));
        }
        (out, datas)
    }

    /// An Info frame with a LAME tag stating `delay` and `padding`.
    fn info_frame(frames: u32, delay: u32, padding: u32) -> Vec<u8> {
        let mut f = vec![0u8; 216];
        f[..4].copy_from_slice(&H16);
        let at = 13;
        f[at..at + 4].copy_from_slice(b"Info");
        f[at + 4..at + 8].copy_from_slice(&0x0Fu32.to_be_bytes());
        f[at + 8..at + 12].copy_from_slice(&frames.to_be_bytes());
        let t = at + 120;
        f[t..t + 9].copy_from_slice(b"Lavc59.37");
        let v = (delay << 12) | padding;
        f[t + 21..t + 24].copy_from_slice(&v.to_be_bytes()[1..]);
        f
    }

    fn id3v2(body: usize, footer: bool) -> Vec<u8> {
        let mut t = b"ID3\x04\x00".to_vec();
        t.push(if footer { 0x10 } else { 0 });
        let s = body as u32;
        t.extend([
            (s >> 21) as u8 & 0x7F,
            (s >> 14) as u8 & 0x7F,
            (s >> 7) as u8 & 0x7F,
            s as u8 & 0x7F,
        ]);
        t.extend(vec![0u8; body]);
        if footer {
            t.extend(b"3DI\x04\x00\x10");
            t.extend(&t[6..10].to_vec());
        }
        t
    }

    fn probe_bytes(b: &[u8]) -> Result<Mp3> {
        probe_reader(
            std::io::Cursor::new(b),
            b.len() as u64,
            Path::new("mem.mp3"),
            &Limits::default(),
        )
    }

    /// A LAME-like chunk: an Info frame (delay 576, padding 832), `n` frames.
    fn chunk(n: usize, seed: u8, lens: impl Fn(usize) -> usize) -> (Vec<u8>, Vec<Vec<u8>>) {
        chunk_with(n, seed, 832, lens)
    }

    fn chunk_with(n: usize, seed: u8, padding: u32, lens: impl Fn(usize) -> usize) -> (Vec<u8>, Vec<Vec<u8>>) {
        let mut b = id3v2(20, false);
        b.extend(info_frame(n as u32, 576, padding));
        let (frames, datas) = stream(n, seed, lens);
        b.extend(frames);
        (b, datas)
    }

    #[test]
    fn probes_tags_header_frame_and_frames() {
        let mut b = id3v2(100, true);
        b.extend(info_frame(10, 576, 832));
        let (frames, _) = stream(10, 1, |i| 100 + i * 10);
        b.extend(&frames);
        let mut v1 = b"TAG".to_vec();
        v1.resize(128, b' ');
        b.extend(v1);
        let m = probe_bytes(&b).unwrap();
        let start = 120 + 216;
        assert_eq!(m.header_frame, Some((120, 120 + 216)));
        assert_eq!(m.frames(), 10);
        assert_eq!(m.audio_range, (start as u64, (start + 2160) as u64));
        assert_eq!((m.encoder_delay, m.encoder_padding), (576, 832));
        assert_eq!(m.encoder.as_deref(), Some("Lavc59.37"));
        assert_eq!(m.samples(), 10 * 576 - 576 - 832);
        assert_eq!(
            (m.version, m.sample_rate, m.channels, m.samples_per_frame),
            (MpegVersion::Mpeg2, 16000, 1, 576)
        );
        assert_eq!((m.bitrate_min, m.bitrate_max, m.bitrate()), (48000, 48000, 48000));
        assert!(m.quirks.is_empty(), "{:?}", m.quirks);
        assert!(m.truncated.is_none());
        assert_eq!(m.audio_frames[1].main_data_begin, (REGION16 - 100) as u16);
        assert_eq!(m.audio_frames[0].main_data_len, 100);
        assert!((m.duration_ms() - 4352.0 / 16.0).abs() < 1e-9);
    }

    #[test]
    fn skips_junk_and_trailing_bytes_and_an_ape_tag() {
        let (frames, _) = stream(8, 2, |_| 150);
        let mut b = b"junk before".to_vec();
        b.extend(&frames[..4 * 216]);
        b.extend(vec![0x11u8; 37]);
        b.extend(&frames[4 * 216..]);
        b.extend(b"trailing garbage that is no frame at all, fifty by".iter());
        let mut ape = b"APETAGEX".to_vec();
        ape.extend(2000u32.to_le_bytes());
        ape.extend(32u32.to_le_bytes());
        ape.extend(0u32.to_le_bytes());
        ape.extend(0u32.to_le_bytes());
        ape.extend([0u8; 8]);
        b.extend(ape);
        let m = probe_bytes(&b).unwrap();
        assert_eq!(m.frames(), 8);
        assert_eq!(m.quirks.len(), 3, "{:?}", m.quirks);
        assert!(m.quirks[0].contains("11 bytes before the first frame"));
        assert!(m.quirks[1].contains("37 junk bytes skipped at byte"));
        assert!(
            m.quirks[2].contains("50 bytes after the last frame ignored"),
            "{:?}",
            m.quirks
        );
        assert_eq!(m.audio_range.1, (11 + 8 * 216 + 37) as u64);
    }

    #[test]
    fn reports_a_truncated_last_frame() {
        let (frames, _) = stream(6, 3, |_| 150);
        let b = &frames[..frames.len() - 20];
        let m = probe_bytes(b).unwrap();
        assert_eq!(m.frames(), 5);
        assert!(
            m.truncated.as_deref().unwrap().contains("20 bytes missing"),
            "{:?}",
            m.truncated
        );
    }

    #[test]
    fn caps_frames_with_the_limits() {
        let (frames, _) = stream(6, 3, |_| 150);
        let limits = Limits {
            max_samples_per_track: 3,
            ..Limits::default()
        };
        let e = probe_reader(
            std::io::Cursor::new(&frames),
            frames.len() as u64,
            Path::new("x"),
            &limits,
        )
        .unwrap_err();
        assert_eq!(e.category(), "limit", "{e}");
    }

    #[test]
    fn refuses_no_frames_layer_ii_and_free_format() {
        let html = b"<!DOCTYPE html><html><body>Not found</body></html>".repeat(40);
        let e = probe_bytes(&html).unwrap_err();
        assert_eq!(e.category(), "invalid");
        assert!(e.to_string().contains("no MPEG audio frame found"));
        // Pseudo-random bytes, rich in 0xFF.
        let mut x = 12345u32;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if x >> 28 == 0 {
                    0xFF
                } else {
                    (x >> 16) as u8
                }
            })
            .collect();
        assert_eq!(probe_bytes(&noise).unwrap_err().category(), "invalid");
        // MPEG-1 Layer II, 128 kbit/s, 48 kHz: 384-byte frames.
        let mut l2 = Vec::new();
        for _ in 0..5 {
            let mut f = vec![0u8; 384];
            f[..4].copy_from_slice(&[0xFF, 0xFD, 0x84, 0xC4]);
            l2.extend(f);
        }
        let e = probe_bytes(&l2).unwrap_err();
        assert_eq!(e.category(), "unsupported", "{e}");
        // Free format Layer III: bitrate index 0, frames of 300 bytes.
        let mut ff = Vec::new();
        for _ in 0..6 {
            let mut f = vec![0u8; 300];
            f[..4].copy_from_slice(&[0xFF, 0xFB, 0x04, 0xC4]);
            ff.extend(f);
        }
        let e = probe_bytes(&ff).unwrap_err();
        assert!(e.to_string().contains("free-format"), "{e}");
    }

    fn hold(at: f64, resume_at: f64) -> Hold {
        Hold { at, resume_at }
    }

    #[test]
    fn plans_drops_at_joins_when_the_reservoir_allows() {
        let (a, _) = chunk(20, 1, |i| if i == 0 { 60 } else { 180 });
        let (b, _) = chunk(20, 2, |i| if i == 0 { 60 } else { 180 });
        let (a, b) = (probe_bytes(&a).unwrap(), probe_bytes(&b).unwrap());
        assert!(b.audio_frames[1].main_data_begin > 0);
        assert!(a.audio_frames[19].unused_tail() >= b.audio_frames[1].main_data_begin);
        let p = plan(&[&a, &b], &[]).unwrap();
        let l = &p.layout;
        assert_eq!(l.packets, 39);
        assert_eq!(l.samples, 39 * 576 - 576 - 832);
        assert_eq!(l.placements[0].tail_padding_samples, 832 - 529);
        assert_eq!(l.placements[1].leftover_priming_samples, 1105 - 576);
        assert_eq!(l.placements[0].audio_start, 0.0);
        // Chunk 1's first presented sample: after chunk 0's 20 frames less its lead, one frame dropped.
        let expect = (20 * 576 - 1105 + (1105 - 576)) as f64 / 16000.0;
        assert!((l.placements[1].audio_start - expect).abs() < 1e-9);
        assert!(matches!(
            p.pieces[0],
            Piece::Copy {
                patch: Some(Carry { chunk: 1, frame: 1, .. }),
                ..
            }
        ));
        // Presented total = sum of presented + kept priming and padding.
        let kept: u64 = l
            .placements
            .iter()
            .map(|p| p.leftover_priming_samples + p.tail_padding_samples)
            .sum();
        assert_eq!(l.samples, a.samples() + b.samples() + kept);

        // A full last frame in chunk 0: no room for the carry, nothing dropped.
        let (a2, _) = chunk(20, 1, |i| if i == 19 { 400 } else { 180 });
        let a2 = probe_bytes(&a2).unwrap();
        assert!(a2.audio_frames[19].unused_tail() < b.audio_frames[1].main_data_begin);
        let p = plan(&[&a2, &b], &[]).unwrap();
        assert_eq!(p.layout.packets, 40);
        assert_eq!(p.layout.placements[1].leftover_priming_samples, 1105);
        assert!(matches!(p.pieces[0], Piece::Copy { patch: None, .. }));

        // Padding of 1500 samples: 971 decoded samples after the presented
        // end, one whole frame of them dropped.
        let (a3, _) = chunk_with(20, 1, 1500, |_| 180);
        let a3 = probe_bytes(&a3).unwrap();
        let p = plan(&[&a3, &b], &[]).unwrap();
        assert_eq!(p.layout.packets, 38);
        assert_eq!(p.layout.placements[0].tail_padding_samples, 1500 - 529 - 576);
        assert_eq!(p.layout.placements[1].leftover_priming_samples, 529);
        // The last chunk keeps its padding (the output's LAME tag states it).
        let p = plan(&[&b, &a3], &[]).unwrap();
        assert_eq!(p.layout.packets, 39);
        assert_eq!(p.layout.samples, 39 * 576 - 576 - 1500);

        // Without a LAME tag nothing is known to be priming or padding.
        let (plain, _) = stream(20, 4, |_| 180);
        let plain = probe_bytes(&plain).unwrap();
        assert_eq!(
            (plain.encoder_delay, plain.encoder_padding, plain.header_frame),
            (0, 0, None)
        );
        let p = plan(&[&a, &plain, &plain], &[]).unwrap();
        assert_eq!(p.layout.packets, 60);
        assert_eq!(p.layout.placements[1].leftover_priming_samples, 0);
        assert_eq!(p.layout.placements[1].tail_padding_samples, 0);
        assert_eq!(p.layout.samples, 60 * 576 - 576);
    }

    #[test]
    fn plans_holds_with_silence_and_carries() {
        let (a, _) = chunk(50, 1, |_| 180);
        let (b, _) = chunk(50, 2, |_| 180);
        let (a, b) = (probe_bytes(&a).unwrap(), probe_bytes(&b).unwrap());
        // Chunk 1 must start at 3 s of output; chunk 0 pauses 0.5 s at 0.2 s.
        let holds = vec![vec![hold(0.0, 0.0), hold(0.2, 0.7)], vec![hold(0.0, 3.0)]];
        let p = plan(&[&a, &b], &holds).unwrap();
        let l = &p.layout;
        let frame_s = 576.0 / 16000.0;
        assert!(
            (l.placements[1].audio_start - 3.0).abs() <= frame_s / 2.0 + 1e-9,
            "{l:?}"
        );
        assert_eq!(l.placements[0].silence_samples, (0.5 / frame_s).round() as u64 * 576);
        // Silence before chunk 1 carries the reservoir of its first kept frame (a dropped priming frame).
        let sil: Vec<&Piece> = p.pieces.iter().filter(|p| matches!(p, Piece::Silence { .. })).collect();
        assert_eq!(sil.len(), 2);
        assert!(matches!(
            sil[0],
            Piece::Silence {
                carry: Some(Carry { chunk: 0, .. }),
                ..
            }
        ));
        assert!(matches!(
            sil[1],
            Piece::Silence {
                carry: Some(Carry { chunk: 1, frame: 1, .. }),
                ..
            }
        ));
        let silent = (l.placements[0].silence_samples + l.placements[1].silence_samples) / 576;
        assert_eq!(l.packets, 99 + silent);
        // A wait longer than a day is refused.
        let e = plan(&[&a, &b], &[vec![], vec![hold(0.0, 200_000.0)]]).unwrap_err();
        assert_eq!(e.category(), "unsupported");
        // Chunks that differ are refused, naming the chunk.
        let mut c = b.clone();
        c.sample_rate = 22050;
        let e = plan(&[&a, &c], &[]).unwrap_err();
        assert!(
            e.to_string().contains("chunk 1") && e.to_string().contains("22050"),
            "{e}"
        );
    }

    #[test]
    fn silent_frames_are_headers_and_zeros() {
        let h = Header::parse(H16).unwrap();
        let f = silent_frame(&h, 6, &[1, 2, 3]);
        assert_eq!(f.len(), 216);
        assert_eq!(&f[..4], &H16);
        assert!(f[4..213].iter().all(|&b| b == 0));
        assert_eq!(&f[213..], &[1, 2, 3]);
        assert_eq!(carrying_index(&h, 1, 200), Some(6));
        assert_eq!(carrying_index(&h, 6, 255), Some(8));
    }

    /// The main data of every frame of an MP3 file as a decoder sees it
    /// (taking `main_data_begin` bytes from the frames before).
    fn decoded_main_data(bytes: &[u8], m: &Mp3) -> Vec<Vec<u8>> {
        let mut stream: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        for f in &m.audio_frames {
            let o = f.offset as usize;
            let s = stream.len();
            stream.extend_from_slice(&bytes[o + usize::from(f.region_start)..o + usize::from(f.size)]);
            let mdb = usize::from(f.main_data_begin);
            let len = usize::from(f.main_data_len);
            assert!(mdb <= s, "frame at {o} reaches before the stream");
            out.push(stream[s - mdb..s - mdb + len].to_vec());
        }
        out
    }

    struct Written3 {
        bytes: Vec<u8>,
        written: Written,
        plan: Mp3Plan,
        out: PathBuf,
    }

    fn stitch(dir: &Path, files: &[Vec<u8>], holds: &[Vec<Hold>], chapters: &[Chapter]) -> Written3 {
        let mut paths = Vec::new();
        for (i, f) in files.iter().enumerate() {
            let p = dir.join(format!("c{i}.mp3"));
            std::fs::write(&p, f).unwrap();
            paths.push(p);
        }
        stitch_paths(dir, &paths, holds, chapters)
    }

    fn stitch_paths(dir: &Path, paths: &[PathBuf], holds: &[Vec<Hold>], chapters: &[Chapter]) -> Written3 {
        let chunks: Vec<Mp3> = paths.iter().map(|p| probe(p, &Limits::default()).unwrap()).collect();
        let refs: Vec<&Mp3> = chunks.iter().collect();
        let plan = plan(&refs, holds).unwrap();
        let sources: Vec<Source> = paths
            .iter()
            .map(|p| Source {
                file: Input::from(File::open(p).unwrap()),
                path: p.clone(),
            })
            .collect();
        let out = dir.join(if holds.is_empty() { "out.mp3" } else { "out-held.mp3" });
        let file = File::create(&out).unwrap();
        let written = write(
            &Mp3Output {
                plan: &plan,
                chunks: &refs,
                sources: &sources,
                chapters,
                title: "Call",
                cancel: Cancel::new(),
            },
            &file,
            &out,
        )
        .unwrap();
        drop(file);
        let bytes = std::fs::read(&out).unwrap();
        Written3 {
            bytes,
            written,
            plan,
            out,
        }
    }

    fn sha(b: &[u8]) -> String {
        hex(&Sha256::digest(b))
    }

    fn chapters() -> Vec<Chapter> {
        vec![
            Chapter {
                start: 0.0,
                end: 1.0,
                title: "Segment 1".into(),
            },
            Chapter {
                start: 1.0,
                end: 1.0,
                title: "Paused".into(),
            },
            Chapter {
                start: 1.0,
                end: 2.5,
                title: "Segment 2".into(),
            },
        ]
    }

    #[test]
    fn writes_and_reads_back_with_the_reservoir_intact() {
        let dir = tempfile::tempdir().unwrap();
        type Lens = fn(usize) -> usize;
        let specs: [(u8, Lens); 3] = [
            (1, |i| if i == 0 { 60 } else { 180 }),
            (2, |_| 150),
            (3, |i| 100 + i % 90),
        ];
        let mut files = Vec::new();
        let mut datas = Vec::new();
        for (seed, lens) in specs {
            let (f, d) = chunk(40, seed, lens);
            files.push(f);
            datas.push(d);
        }
        for holds in [
            vec![],
            vec![
                vec![hold(0.1, 0.6)],
                vec![hold(0.0, 2.0), hold(0.3, 3.0)],
                vec![hold(0.0, 5.0)],
            ],
        ] {
            let w = stitch(dir.path(), &files, &holds, &chapters());
            let out = probe(&w.out, &Limits::default()).unwrap();
            let l = &w.plan.layout;
            assert_eq!(out.frames(), l.packets);
            assert_eq!((out.encoder_delay, out.encoder_padding), (576, 832));
            assert_eq!(out.samples(), l.samples);
            assert!(out.quirks.is_empty(), "{:?}", out.quirks);
            assert_eq!(w.written.size, w.bytes.len() as u64);
            assert_eq!(w.written.sha256, sha(&w.bytes));
            assert_eq!(w.written.reread, 0);
            for (k, f) in files.iter().enumerate() {
                assert_eq!(w.written.inputs[k], (sha(f), f.len() as u64));
            }
            // The reservoir: every real frame sees its own main data.
            let seen: Vec<Vec<u8>> = decoded_main_data(&w.bytes, &out)
                .into_iter()
                .filter(|d| !d.is_empty())
                .collect();
            let mut expect = Vec::new();
            for (k, p) in l.placements.iter().enumerate() {
                let dropped_front = if k == 0 {
                    0
                } else {
                    ((1105 - p.leftover_priming_samples) / 576) as usize
                };
                expect.extend(datas[k][dropped_front..].iter().cloned());
            }
            assert_eq!(seen.len(), expect.len());
            assert!(seen == expect, "a frame's main data differs after stitching");
            // The chunks' byte ranges hold their frames.
            let r = w.written.chunk_byte_ranges[1];
            let m1 = probe_bytes(&files[1]).unwrap();
            let last = m1.audio_frames.last().unwrap();
            // (its last frame's tail may carry chunk 2's reservoir bytes).
            let at = (r.1 - u64::from(last.size)) as usize;
            assert_eq!(
                &w.bytes[at..at + 100],
                &files[1][last.offset as usize..last.offset as usize + 100]
            );
            id3_tag_holds_the_chapters(&w.out);
            // The LAME tag CRC.
            let x = out.header_frame.unwrap().0 as usize;
            let crc = crc16(&{
                let mut f = w.bytes[x..x + 190].to_vec();
                f[167..169].fill(0);
                f
            });
            assert_eq!(&w.bytes[x + 167..x + 169], &crc.to_be_bytes());
            // Deterministic.
            let again = stitch(dir.path(), &files, &holds, &chapters());
            assert_eq!(again.bytes, w.bytes);
        }
    }

    #[test]
    fn cancel_stops_the_write() {
        let dir = tempfile::tempdir().unwrap();
        let (f, _) = chunk(10, 1, |_| 150);
        let p = dir.path().join("c.mp3");
        std::fs::write(&p, &f).unwrap();
        let m = probe(&p, &Limits::default()).unwrap();
        let plan = plan(&[&m], &[]).unwrap();
        let sources = [Source {
            file: Input::from(File::open(&p).unwrap()),
            path: p.clone(),
        }];
        let cancel = Cancel::new();
        cancel.cancel();
        let out = dir.path().join("o.mp3");
        let e = write(
            &Mp3Output {
                plan: &plan,
                chunks: &[&m],
                sources: &sources,
                chapters: &[],
                title: "",
                cancel,
            },
            &File::create(&out).unwrap(),
            &out,
        )
        .unwrap_err();
        assert_eq!(e.category(), "cancelled");
    }

    fn ffmpeg_present() -> bool {
        let ok = Command::new("ffmpeg")
            .arg("-version")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            if std::env::var("RECSTITCH_REQUIRE_FFMPEG").as_deref() == Ok("1") {
                panic!("ffmpeg is required (RECSTITCH_REQUIRE_FFMPEG=1) but not found");
            }
            eprintln!("SKIPPED: ffmpeg not found");
        }
        ok
    }

    /// Samples per channel ffmpeg decodes from `path`, and what it printed at level error.
    fn ffmpeg_decode(path: &Path) -> (u64, String) {
        let (pcm, errors) = ffmpeg_pcm(path);
        (pcm.len() as u64, errors)
    }

    /// The samples ffmpeg decodes from `path` (mono, 16-bit).
    fn ffmpeg_pcm(path: &Path) -> (Vec<i16>, String) {
        let o = Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(path)
            .args(["-f", "s16le", "-ac", "1", "-"])
            .output()
            .unwrap();
        let pcm = o
            .stdout
            .chunks_exact(2)
            .map(|b| i16::from_le_bytes([b[0], b[1]]))
            .collect();
        (pcm, String::from_utf8_lossy(&o.stderr).into_owned())
    }

    /// The first sample of `alone` from which `out` holds the same samples
    /// up to `alone[j0 + 1000]`.
    fn equal_from(out: &[i16], alone: &[i16], j0: usize) -> Option<usize> {
        let probe = &alone[j0..j0 + 1000];
        let x = out.windows(1000).position(|w| w == probe)?;
        let back = (0..=j0.min(x)).take_while(|&d| out[x - d] == alone[j0 - d]).last()?;
        Some(j0 - back)
    }

    fn ffprobe(path: &Path, what: &[&str]) -> String {
        let o = Command::new("ffprobe")
            .args(["-v", "error"])
            .args(what)
            .arg(path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The output's ID3v2 tag, read by the `id3` crate: the title, three
    /// `CHAP`s (a point marker one millisecond long) and one ordered `CTOC`.
    fn id3_tag_holds_the_chapters(out: &Path) {
        use id3::TagLike;
        let tag = id3::Tag::read_from_path(out).unwrap();
        assert_eq!(tag.title(), Some("Call"));
        let chaps: Vec<_> = tag.chapters().collect();
        assert_eq!(chaps.len(), 3);
        assert_eq!((chaps[1].start_time, chaps[1].end_time), (1000, 1001));
        assert_eq!(chaps[2].frames[0].content().text(), Some("Segment 2"));
        let toc: Vec<_> = tag.tables_of_contents().collect();
        assert_eq!(toc.len(), 1);
        assert!(toc[0].top_level && toc[0].ordered);
        assert_eq!(toc[0].elements, vec!["chp0", "chp1", "chp2"]);
    }

    /// ffprobe lists the output's three chapters, and its duration is the
    /// layout's (or, with ffmpeg 5, every frame's).
    fn ffprobe_reads_chapters_and_duration(out: &Path, l: &AudioLayout) {
        let spf = 576u64;
        let chaps = ffprobe(
            out,
            &[
                "-show_entries",
                "chapter=start_time,end_time:chapter_tags=title",
                "-of",
                "csv",
            ],
        );
        assert_eq!(chaps.lines().count(), 3, "{chaps}");
        assert!(chaps.contains("Segment 2"), "{chaps}");
        let d: f64 = ffprobe(out, &["-show_entries", "format=duration", "-of", "csv=p=0"])
            .trim()
            .parse()
            .unwrap();
        // ffmpeg 5 states the duration of all frames; later versions less delay and padding.
        let all = (l.packets * spf) as f64 / 16000.0;
        let frame = spf as f64 / 16000.0;
        eprintln!("ffprobe duration {d}, layout {}, all frames {all}", l.duration);
        assert!(
            (d - l.duration).abs() <= frame || (d - all).abs() <= frame,
            "ffprobe says {d} s"
        );
    }

    /// Three 2-second chunks encoded by ffmpeg's libmp3lame (16 kHz mono,
    /// 48 kbit/s) into `dir`. Chunk 1 is a chirp (a sine is periodic: its
    /// samples cannot be matched to one place), at the sine's level.
    fn lame_chunks(dir: &Path) -> Vec<PathBuf> {
        let sources = [
            "sine=frequency=440:sample_rate=16000:duration=2",
            "aevalsrc=0.125*sin(2*PI*(200+300*t)*t):s=16000:d=2",
            "sine=frequency=880:sample_rate=16000:duration=2",
        ];
        let mut paths = Vec::new();
        for (i, source) in sources.iter().enumerate() {
            let p = dir.join(format!("c{i}.mp3"));
            let st = Command::new("ffmpeg")
                .args(["-v", "error", "-y", "-f", "lavfi", "-i", source])
                .args(["-ac", "1", "-c:a", "libmp3lame", "-b:a", "48k"])
                .arg(&p)
                .status()
                .unwrap();
            assert!(st.success());
            paths.push(p);
        }
        paths
    }

    /// A LAME chunk made by ffmpeg: the analysis decodes it without error,
    /// its presented samples, two seconds at a sine's level.
    fn analyses_like_ffmpeg(c: &Mp3) {
        eprintln!(
            "chunk: {} frames, encoder {:?}, delay {}, padding {}, frame 1 main_data_begin {}, last frame free tail {}",
            c.frames(),
            c.encoder,
            c.encoder_delay,
            c.encoder_padding,
            c.audio_frames[1].main_data_begin,
            c.audio_frames.last().unwrap().unused_tail()
        );
        let a = analyse(&crate::Storage::local(), c, &Limits::default()).unwrap();
        assert!(a.decode_errors.is_empty(), "{:?}", a.decode_errors);
        assert_eq!(a.samples, c.samples());
        assert_eq!(a.levels_dbfs.len(), 2);
        assert!(
            a.levels_dbfs.iter().all(|&l| l > -25.0 && l < -18.0),
            "{:?}",
            a.levels_dbfs
        );
    }

    #[test]
    fn ffmpeg_decodes_stitched_lame_chunks() {
        if !ffmpeg_present() {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let paths = lame_chunks(dir.path());
        let chunks: Vec<Mp3> = paths.iter().map(|p| probe(p, &Limits::default()).unwrap()).collect();
        let alone: u64 = paths.iter().map(|p| ffmpeg_decode(p).0).sum();
        chunks.iter().for_each(analyses_like_ffmpeg);
        let spf = 576u64;
        let chunk1 = ffmpeg_pcm(&paths[1]).0;
        for holds in [vec![], vec![vec![], vec![hold(0.0, 5.0), hold(1.0, 7.0)], vec![]]] {
            let w = stitch_paths(dir.path(), &paths, &holds, &chapters());
            let l = &w.plan.layout;
            let (pcm, errors) = ffmpeg_pcm(&w.out);
            let decoded = pcm.len() as u64;
            assert_eq!(errors, "", "ffmpeg -v error printed something");
            if !holds.is_empty() {
                // Inside the wait before chunk 1 (from 2.1 s to 4.9 s): digital silence.
                assert!(
                    pcm[2100 * 16..4900 * 16].iter().all(|&x| x == 0),
                    "the silent frames are not silent"
                );
                // And in the pause inside chunk 1 (from about 6.015 s, the
                // last frame's overlap fading out, to 7 s).
                assert!(
                    pcm[6100 * 16..6950 * 16].iter().all(|&x| x == 0),
                    "the silent frames are not silent"
                );
                assert!(pcm[7100 * 16..7900 * 16].iter().any(|&x| x != 0));
            }
            // Chunk 1 decodes in the output as it does alone, from shortly after
            // the join (no hold) or the pause (hold): the reservoir is intact.
            let j0 = 25_000;
            let agree = equal_from(&pcm, &chunk1, j0);
            eprintln!("chunk 1 decodes as alone from its sample {agree:?}");
            // Without the reservoir carries they agree only from samples 875
            // and 17765: the frame after the drop or the pause decodes wrong.
            let agree = agree.expect("chunk 1 found in the output");
            if holds.is_empty() {
                // The dropped priming frame: from within the first kept frame.
                assert!(agree < spf as usize, "{agree}");
            } else {
                // The pause at 1 s: before frame 30 (presented from 30 * 576 - 1105);
                // the overlap and the synthesis filter bank differ for two granules.
                assert!(agree < 30 * 576 - 1105 + 2 * spf as usize, "{agree}");
            }
            let silence: u64 = l.placements.iter().map(|p| p.silence_samples).sum();
            let extra = decoded as i64 - (alone + silence) as i64;
            eprintln!("holds {holds:?}: ffmpeg decoded {decoded}, chunks alone {alone}, silence {silence}: {extra} more; layout {l:?}");
            assert!(
                extra >= 0 && extra as u64 <= 2 * spf * 2,
                "{extra} samples beyond the chunks and silence"
            );
            assert_eq!(decoded, l.samples, "ffmpeg honours the LAME tag's delay and padding");
            ffprobe_reads_chapters_and_duration(&w.out, l);
            // Our own analysis of the output.
            let out = probe(&w.out, &Limits::default()).unwrap();
            let a = analyse(&crate::Storage::local(), &out, &Limits::default()).unwrap();
            assert!(a.decode_errors.is_empty(), "{:?}", a.decode_errors);
            assert_eq!(a.samples, l.samples);
        }
    }
}
