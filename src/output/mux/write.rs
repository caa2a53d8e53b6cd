//! Writing the stitched MP4: `ftyp`, `moov` (fast start), `mdat`.
//!
//! The `moov` is encoded from the plan's tables as it is written (its size
//! does not depend on where `mdat` lands, so it is first measured, see
//! [`stbl::Out`], then encoded into the output with the real chunk
//! offsets). Sample bytes are then copied from the input files in large
//! blocks, coalescing samples that are contiguous in their source, while a
//! SHA-256 of the output is computed on the way.
//!
//! Container boxes are written here (with `stbl::write_box`); leaf boxes are
//! encoded by `mp4-atom`.

use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;

use mp4_atom::{
    Chpl, ChplEntry, Dinf, Dref, DrefEntry, Edts, Elst, ElstEntry, Encode, FixedPoint, FourCC, Hdlr, Mdhd, Mvhd, Nmhd,
    Smhd, Tkhd, TrackReferenceTypeBox, Tref, Tx3g, Udta, Url, Vmhd,
};

use super::payload::{self, Pass, PassError, Piece};
use super::plan::{OutSample, OutTrack, Plan, SILENCE};
use super::stbl;
use super::stbl::{write_box, Out};
use crate::error::{Error, Result};
use crate::formats::mp4::SampleTable;
use crate::io::Cancel;
use crate::output::timeline::Chapter;

/// Longest run of one track's samples stored together, in seconds.
const MAX_RUN_SECONDS: f64 = 1.0;
/// Bytes written between two early writeback requests.
const WRITEBACK_STEP: u64 = 32 << 20;
/// Timescale of the movie (`mvhd`, `tkhd` and edit durations): milliseconds.
/// MediaInfo reads durations right with 1000 (and the audio rate), wrong
/// with the video's 16384; edits only round their length up to a
/// millisecond, their start stays in the track's own ticks.
const MOVIE_TIMESCALE: u32 = 1000;
/// Timescale of the chapter track.
const CHAPTER_TIMESCALE: u32 = 1000;

const VIDEO_ID: u32 = 1;
const AUDIO_ID: u32 = 2;
const CHAPTER_ID: u32 = 3;

/// Which of the output's two media tracks (the chapter track aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AvTrack {
    Video,
    Audio,
}

/// A run of consecutive samples of one track stored as one chunk.
#[derive(Debug, Clone, Copy)]
struct Run {
    which: AvTrack,
    first: usize,
    count: usize,
    /// Offset from the start of the mdat payload.
    rel_offset: u64,
}

/// What writing produced.
#[derive(Debug, Clone)]
pub struct Written {
    /// Bytes written.
    pub size: u64,
    /// SHA-256 of the whole file, hex.
    pub sha256: String,
    /// Per input chunk, the output byte range `[start, end)` its samples occupy.
    pub chunk_byte_ranges: Vec<(u64, u64)>,
    /// Per input chunk, the SHA-256 (hex) and size of the whole file, read
    /// in the same pass as the copy.
    pub inputs: Vec<(String, u64)>,
    /// Input bytes read a second time (samples far out of input order);
    /// tests hold the pass to reading once.
    #[cfg_attr(not(test), allow(dead_code))]
    pub reread: u64,
}

/// An open input file.
pub struct Source {
    /// The file (or object).
    pub file: crate::storage::Input,
    /// Its path, for error messages.
    pub path: std::path::PathBuf,
}

/// Everything the writer needs.
pub struct MuxInput<'a> {
    /// The plan.
    pub plan: &'a Plan,
    /// Chapters, in order.
    pub chapters: &'a [Chapter],
    /// The input files, by chunk.
    pub sources: &'a [Source],
    /// Seconds since 1904-01-01 for `creation_time` (the recording's start).
    pub creation_time: u64,
    /// Stops the copy between blocks when cancelled.
    pub cancel: Cancel,
}

/// An [`Error::Encode`] of the MP4 header, its file named by [`write_mp4`].
fn encode_err(what: &str, message: impl std::fmt::Display) -> Error {
    Error::encode(std::path::Path::new(""), what, message)
}

fn atom_err(e: mp4_atom::Error) -> Error {
    encode_err("a box", e)
}

fn leaf<T: Encode>(out: &mut Out, atom: &T) -> Result<()> {
    let mut bytes = Vec::new();
    atom.encode(&mut bytes).map_err(atom_err)?;
    out.put(&bytes);
    Ok(())
}

/// Splits the two tracks into runs of at most [`MAX_RUN_SECONDS`], each run
/// with a single sample description and from a single input chunk,
/// interleaved chunk by chunk and, within a chunk, by decode time. So every
/// chunk's samples fill one contiguous byte range of the output.
fn interleave(plan: &Plan) -> Vec<Run> {
    struct Cursor<'a> {
        which: AvTrack,
        track: &'a OutTrack,
        samples: std::iter::Peekable<crate::formats::mp4::samples::Timing<'a>>,
        chunks: Vec<u32>,
        next: usize,
        time: u64,
    }
    fn cursor(which: AvTrack, track: &OutTrack) -> Cursor<'_> {
        Cursor {
            which,
            track,
            samples: track.samples.durations_and_entries().peekable(),
            chunks: chunk_of_samples(track),
            next: 0,
            time: 0,
        }
    }
    let mut cursors: Vec<Cursor> = Vec::new();
    if let Some(v) = &plan.video {
        cursors.push(cursor(AvTrack::Video, v));
    }
    cursors.push(cursor(AvTrack::Audio, &plan.audio));
    let mut runs = Vec::new();
    // The earliest chunk goes first; within it, the track furthest behind in decode time.
    while let Some(c) = cursors
        .iter_mut()
        .filter(|c| c.next < c.track.samples.len())
        .min_by(|a, b| {
            let ta = a.time as f64 / f64::from(a.track.timescale);
            let tb = b.time as f64 / f64::from(b.track.timescale);
            a.chunks[a.next].cmp(&b.chunks[b.next]).then(ta.total_cmp(&tb))
        })
    {
        let limit = c.time + (MAX_RUN_SECONDS * f64::from(c.track.timescale)) as u64;
        let first = c.next;
        let chunk = c.chunks[first];
        let Cursor {
            samples,
            chunks,
            next,
            time,
            ..
        } = c;
        let entry = samples.peek().map_or(0, |s| s.1);
        while let Some((duration, _)) =
            samples.next_if(|s| (*next == first || *time < limit) && s.1 == entry && chunks[*next] == chunk)
        {
            *time += u64::from(duration);
            *next += 1;
        }
        runs.push(Run {
            which: c.which,
            first,
            count: c.next - first,
            rel_offset: 0,
        });
    }
    runs
}

/// The input chunk each sample of `track` belongs to: its source; for
/// generated silence, the chunk whose media follows it (the one it waits for).
fn chunk_of_samples(track: &OutTrack) -> Vec<u32> {
    let mut chunks = Vec::with_capacity(track.samples.len());
    for (count, source, _) in track.samples.source_runs() {
        chunks.extend(std::iter::repeat_n(source, count));
    }
    let mut next_real = chunks.iter().rev().copied().find(|&s| s != SILENCE).unwrap_or(0);
    for c in chunks.iter_mut().rev() {
        if *c == SILENCE {
            *c = next_real;
        } else {
            next_real = *c;
        }
    }
    chunks
}

fn track_of(plan: &Plan, which: AvTrack) -> &OutTrack {
    match which {
        AvTrack::Video => plan.video.as_ref().expect("video runs only exist with a video track"),
        AvTrack::Audio => &plan.audio,
    }
}

fn samples_bytes(samples: &SampleTable, first: usize, count: usize) -> u64 {
    let sizes = samples.sizes();
    let run = sizes
        .get(first..first.saturating_add(count).min(sizes.len()))
        .unwrap_or(&[]);
    run.iter().map(|&s| u64::from(s)).sum()
}

/// The chapter track's samples: a 16-bit length and UTF-8 text (3GPP TS 26.245 §5.17).
fn chapter_samples(chapters: &[Chapter]) -> Vec<Vec<u8>> {
    chapters
        .iter()
        .map(|c| {
            let text = c.title.as_bytes();
            let len = text.len().min(u16::MAX as usize);
            let mut s = Vec::with_capacity(len + 2);
            s.extend_from_slice(&(len as u16).to_be_bytes());
            s.extend_from_slice(&text[..len]);
            s
        })
        .collect()
}

fn stsd(out: &mut Out, entries: &[&[u8]]) -> Result<()> {
    write_box(out, b"stsd", |b| {
        b.put(&[0, 0, 0, 0]);
        b.put32(stbl::count32(entries.len())?);
        for e in entries {
            b.put(e);
        }
        Ok(())
    })
}

fn dinf(out: &mut Out) -> Result<()> {
    leaf(
        out,
        &Dinf {
            dref: Dref {
                entries: vec![DrefEntry::Url(Url::default())],
            },
        },
    )
}

fn movie_ticks(ticks: u64, from: u32, to: u32) -> u64 {
    // Round up so that no presented media is cut off by the edit.
    let v = (u128::from(ticks) * u128::from(to)).div_ceil(u128::from(from.max(1)));
    u64::try_from(v).unwrap_or(u64::MAX)
}

struct TrackBox<'a> {
    id: u32,
    handler: &'static [u8; 4],
    name: &'static str,
    timescale: u32,
    samples: &'a SampleTable,
    entries: Vec<&'a [u8]>,
    edit_start: Option<u64>,
    presented: u64,
    offsets: Vec<u64>,
    chunks: Vec<(u32, u32)>,
    size: Option<(u16, u16)>,
    chapter_ref: bool,
    enabled: bool,
}

fn trak(out: &mut Out, t: &TrackBox, movie_timescale: u32, creation: u64, co64: bool) -> Result<()> {
    let duration = movie_ticks(t.presented, t.timescale, movie_timescale);
    write_box(out, b"trak", |b| {
        tkhd(b, t, duration, creation)?;
        if t.chapter_ref {
            leaf(
                b,
                &Tref {
                    track_reference_type_boxes: vec![TrackReferenceTypeBox {
                        reference_type: FourCC::new(b"chap"),
                        track_ids: vec![CHAPTER_ID],
                    }],
                },
            )?;
        }
        if let Some(start) = t.edit_start {
            leaf(
                b,
                &Edts {
                    elst: Some(Elst {
                        entries: vec![ElstEntry {
                            segment_duration: duration,
                            media_time: Some(start),
                            media_rate: FixedPoint::new(1, 0),
                        }],
                    }),
                },
            )?;
        }
        write_box(b, b"mdia", |b| {
            leaf(
                b,
                &Mdhd {
                    creation_time: creation,
                    modification_time: creation,
                    timescale: t.timescale,
                    duration: t.samples.media_duration(),
                    language: "und".into(),
                },
            )?;
            leaf(
                b,
                &Hdlr {
                    handler: FourCC::new(t.handler),
                    name: t.name.into(),
                },
            )?;
            write_box(b, b"minf", |b| {
                match t.handler {
                    b"vide" => leaf(b, &Vmhd::default())?,
                    b"soun" => leaf(b, &Smhd::default())?,
                    _ => leaf(b, &Nmhd {})?,
                }
                dinf(b)?;
                stbl(b, t, co64)
            })
        })
    })
}

fn tkhd(out: &mut Out, t: &TrackBox, duration: u64, creation: u64) -> Result<()> {
    let (w, h) = t.size.unwrap_or((0, 0));
    leaf(
        out,
        &Tkhd {
            creation_time: creation,
            modification_time: creation,
            track_id: t.id,
            duration,
            layer: 0,
            alternate_group: 0,
            enabled: t.enabled,
            in_movie: t.enabled,
            size_is_aspect_ratio: false,
            volume: if t.handler == b"soun" {
                FixedPoint::new(1, 0)
            } else {
                FixedPoint::new(0, 0)
            },
            matrix: Default::default(),
            width: FixedPoint::new(w, 0),
            height: FixedPoint::new(h, 0),
        },
    )
}

/// The sample tables (ISO/IEC 14496-12 §8.5-8.7).
fn stbl(out: &mut Out, t: &TrackBox, co64: bool) -> Result<()> {
    write_box(out, b"stbl", |b| {
        stsd(b, &t.entries)?;
        stbl::stts(b, t.samples)?;
        stbl::ctts(b, t.samples)?;
        stbl::stss(b, t.samples)?;
        stbl::stsc(b, &t.chunks)?;
        stbl::stsz(b, t.samples)?;
        stbl::chunk_offsets(b, &t.offsets, co64)
    })
}

/// The layout: runs with their offsets and the chapter samples' offset.
struct Layout {
    runs: Vec<Run>,
    chapter_samples: Vec<Vec<u8>>,
    payload: u64,
}

fn layout(plan: &Plan, chapters: &[Chapter]) -> Layout {
    let chapter_samples = chapter_samples(chapters);
    let mut pos: u64 = chapter_samples.iter().map(|s| s.len() as u64).sum();
    let mut runs = interleave(plan);
    for r in &mut runs {
        r.rel_offset = pos;
        let t = track_of(plan, r.which);
        pos += samples_bytes(&t.samples, r.first, r.count);
    }
    Layout {
        runs,
        chapter_samples,
        payload: pos,
    }
}

/// Appends the `moov` for a payload that starts at file offset `base`.
fn moov(out: &mut Out, input: &MuxInput, lay: &Layout, base: u64, co64: bool) -> Result<()> {
    let plan = input.plan;
    let movie_timescale = MOVIE_TIMESCALE;
    let duration_s = plan.duration();
    let movie_duration = (duration_s * f64::from(movie_timescale)).ceil() as u64;
    let creation = input.creation_time;
    let chapter_track = chapter_track(input, lay, duration_s);
    let has_chapters = chapter_track.is_some();
    write_box(out, b"moov", |b| {
        leaf(
            b,
            &Mvhd {
                creation_time: creation,
                modification_time: creation,
                timescale: movie_timescale,
                duration: movie_duration,
                rate: FixedPoint::new(1, 0),
                volume: FixedPoint::new(1, 0),
                matrix: Default::default(),
                next_track_id: CHAPTER_ID + 1,
            },
        )?;
        if plan.video.is_some() {
            let video = media_track_box(plan, lay, AvTrack::Video, base, has_chapters)?;
            trak(b, &video, movie_timescale, creation, co64)?;
        }
        let audio = media_track_box(plan, lay, AvTrack::Audio, base, has_chapters)?;
        trak(b, &audio, movie_timescale, creation, co64)?;
        if let Some((samples, entry)) = &chapter_track {
            let t = TrackBox {
                id: CHAPTER_ID,
                handler: b"text",
                name: "Chapters",
                timescale: CHAPTER_TIMESCALE,
                samples,
                entries: vec![entry.as_slice()],
                edit_start: None,
                presented: samples.iter().map(|s| u64::from(s.duration)).sum(),
                offsets: vec![base],
                chunks: vec![(stbl::count32(samples.len())?, 1)],
                size: None,
                chapter_ref: false,
                enabled: false,
            };
            trak(b, &t, movie_timescale, creation, co64)?;
            chapter_list(b, input.chapters)?;
        }
        Ok(())
    })
}

/// The chapter text track's samples (one per chapter, lasting until the
/// next) and its `tx3g` sample description; `None` without chapters.
fn chapter_track(input: &MuxInput, lay: &Layout, duration_s: f64) -> Option<(SampleTable, Vec<u8>)> {
    if input.chapters.is_empty() {
        return None;
    }
    let total_ms = (duration_s * 1000.0).round() as u64;
    let starts: Vec<u64> = input
        .chapters
        .iter()
        .map(|c| (c.start * 1000.0).round() as u64)
        .collect();
    let samples = lay
        .chapter_samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let end = if input.chapters[i].end > input.chapters[i].start {
                (input.chapters[i].end * 1000.0).round() as u64
            } else {
                starts[i]
            };
            let end = starts
                .get(i + 1)
                .copied()
                .map_or(total_ms.max(end), |next| next.min(end.max(starts[i])));
            OutSample {
                source: SILENCE,
                offset: 0,
                size: u32::try_from(s.len()).unwrap_or(u32::MAX),
                duration: u32::try_from(end.saturating_sub(starts[i])).unwrap_or(u32::MAX),
                composition_offset: 0,
                sync: true,
                entry: 0,
            }
        })
        .collect();
    let mut entry = Vec::new();
    let tx3g = Tx3g {
        data_reference_index: 1,
        ..Tx3g::default()
    };
    let _ = tx3g.encode(&mut entry);
    Some((samples, entry))
}

/// The Nero chapter list (`udta/chpl`) that some players read instead of
/// the text track; it holds at most 255 chapters.
fn chapter_list(out: &mut Out, chapters: &[Chapter]) -> Result<()> {
    if chapters.len() > 255 {
        return Ok(());
    }
    let entries = chapters
        .iter()
        .map(|c| ChplEntry {
            start: (c.start * 1e7).round() as u64,
            title: c.title.clone(),
        })
        .collect::<Vec<_>>();
    leaf(
        out,
        &Udta {
            chpl: Some(Chpl { entries }),
            ..Default::default()
        },
    )
}

/// The video or audio track: its runs become chunks at `base` plus their
/// offset in the payload.
fn media_track_box<'p>(
    plan: &'p Plan,
    lay: &Layout,
    which: AvTrack,
    base: u64,
    has_chapters: bool,
) -> Result<TrackBox<'p>> {
    let t = track_of(plan, which);
    let mut offsets = Vec::new();
    let mut chunks = Vec::new();
    for r in lay.runs.iter().filter(|r| r.which == which) {
        offsets.push(base + r.rel_offset);
        let entry = t.samples.entry(r.first).unwrap_or(0);
        chunks.push((stbl::count32(r.count)?, u32::from(entry) + 1));
    }
    let (handler, name, id) = match which {
        AvTrack::Video => (b"vide", "VideoHandler", VIDEO_ID),
        AvTrack::Audio => (b"soun", "SoundHandler", AUDIO_ID),
    };
    let size = match (which, t.entries.first().map(|e| &e.codec)) {
        (AvTrack::Video, Some(crate::formats::mp4::Codec::Avc(a))) => Some((
            u16::try_from(a.width).unwrap_or(0),
            u16::try_from(a.height).unwrap_or(0),
        )),
        _ => None,
    };
    Ok(TrackBox {
        id,
        handler,
        name,
        timescale: t.timescale,
        samples: &t.samples,
        entries: t.entries.iter().map(|e| e.raw.as_slice()).collect(),
        edit_start: Some(t.edit_start),
        presented: t.presented,
        offsets,
        chunks,
        size,
        chapter_ref: has_chapters && (which == AvTrack::Video || plan.video.is_none()),
        enabled: true,
    })
}

/// Everything before the sample bytes: `ftyp`, `moov`, the `mdat` header
/// and the chapter samples, as measured; written by [`Head::write`].
struct Head<'a> {
    input: &'a MuxInput<'a>,
    lay: &'a Layout,
    co64: bool,
    /// The file offset where the payload starts.
    base: u64,
    /// The sizes and counts of the `moov`'s boxes (see [`Out`]).
    notes: Vec<u32>,
}

/// Lays out the header. The `moov` size does not depend on where `mdat`
/// lands, so it is measured with offsets 0 and written with the real ones;
/// `co64` only when a chunk offset would not fit 32 bits, and a 64-bit
/// `mdat` size only when the payload needs it.
fn head<'a>(input: &'a MuxInput<'a>, lay: &'a Layout) -> Result<Head<'a>> {
    let measure = |co64: bool| -> Result<(u64, Vec<u32>)> {
        let mut out = Out::measure();
        moov(&mut out, input, lay, 0, co64)?;
        let len = out.len();
        Ok((len, out.finish().0))
    };
    let base_for = |moov_len: u64| FTYP.len() as u64 + moov_len + mdat_header(lay).len() as u64;
    let last_run = lay.runs.last().map_or(0, |r| r.rel_offset);
    // Decided with the larger co64 moov, so that a 32-bit table surely fits.
    let (largest, _) = measure(true)?;
    let co64 = base_for(largest) + last_run > u64::from(u32::MAX);
    let (len, notes) = measure(co64)?;
    Ok(Head {
        input,
        lay,
        co64,
        base: base_for(len),
        notes,
    })
}

const FTYP: [u8; 32] = *b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2avc1mp41";

/// The `mdat` header for the payload: a 64-bit size only when needed.
fn mdat_header(lay: &Layout) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(16);
    match u32::try_from(lay.payload + 8) {
        Ok(size) => {
            bytes.extend_from_slice(&size.to_be_bytes());
            bytes.extend_from_slice(b"mdat");
        }
        Err(_) => {
            bytes.extend_from_slice(&1u32.to_be_bytes());
            bytes.extend_from_slice(b"mdat");
            bytes.extend_from_slice(&(lay.payload + 16).to_be_bytes());
        }
    }
    bytes
}

impl Head<'_> {
    /// Hands the header's bytes to `sink` as they are encoded, until it
    /// says stop (`false`).
    fn write(&self, sink: &mut dyn FnMut(&[u8]) -> bool) -> Result<()> {
        if !sink(&FTYP) {
            return Ok(());
        }
        let mut out = Out::replay(self.notes.clone(), sink);
        moov(&mut out, self.input, self.lay, self.base, self.co64)?;
        out.put(&mdat_header(self.lay));
        for s in &self.lay.chapter_samples {
            out.put(s);
        }
        out.finish();
        Ok(())
    }
}

impl payload::Head for Head<'_> {
    fn write(&self, put: &mut dyn FnMut(&[u8]) -> bool) -> Result<()> {
        Head::write(self, put)
    }
}

/// The `ftyp`, `moov` and `mdat` header a stitch of `plan` would write, with
/// chunk offsets as they would be; for inspection and benchmarks.
#[cfg(any(test, feature = "bench-support"))]
pub(crate) fn moov_bytes(plan: &Plan, chapters: &[Chapter]) -> Result<Vec<u8>> {
    let input = MuxInput {
        plan,
        chapters,
        sources: &[],
        creation_time: 0,
        cancel: Cancel::default(),
    };
    let lay = layout(plan, chapters);
    let head = head(&input, &lay)?;
    let mut bytes = Vec::new();
    head.write(&mut |b| {
        bytes.extend_from_slice(b);
        true
    })?;
    Ok(bytes)
}

/// Writes the whole MP4 to `file` (positioned at 0).
pub fn write_mp4(input: &MuxInput, file: &File, out_path: &std::path::Path) -> Result<Written> {
    let plan = input.plan;
    let lay = layout(plan, input.chapters);
    let head = head(input, &lay).map_err(|e| e.with_path(out_path))?;
    let base = head.base;
    let chunk_byte_ranges = chunk_byte_ranges(plan, &lay, base, input.sources.len());
    let pieces = RunPieces { plan, runs: &lay.runs };

    // The payload pass reads every input once (see `payload`); a third
    // thread starts writeback early, so that the final sync waits for
    // little; it sleeps on I/O and costs no CPU to speak of.
    let written_bytes = AtomicU64::new(0);
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let passed = std::thread::scope(|scope| {
        let written_bytes = &written_bytes;
        scope.spawn(move || {
            let mut synced = 0;
            // Wakes every 20 ms, and at once when the pass is over.
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(std::time::Duration::from_millis(20)) {
                let now = written_bytes.load(Ordering::Relaxed);
                if now >= synced + WRITEBACK_STEP {
                    // An error here shows again in the final sync, which is checked.
                    let _ = file.sync_data();
                    synced = now;
                }
            }
        });
        let pass = Pass {
            head: &head,
            pieces: &pieces,
            sources: input.sources,
            silence: &plan.silence,
            cancel: &input.cancel,
        };
        let passed = payload::run(&pass, file, written_bytes);
        drop(stop);
        passed
    });
    let passed = passed.map_err(|e| match e {
        PassError::Cancelled => Error::Cancelled,
        PassError::Io(None, e) => Error::io(out_path, e),
        PassError::Io(Some(i), e) => Error::io(&input.sources[i].path, e),
        PassError::Head(e) => e.with_path(out_path),
    })?;
    Ok(Written {
        size: passed.size,
        sha256: passed.sha256,
        chunk_byte_ranges,
        inputs: passed.inputs,
        reread: passed.reread,
    })
}

/// The payload in output order, a run at a time, with samples that follow
/// each other in their source coalesced into one piece.
struct RunPieces<'a> {
    plan: &'a Plan,
    runs: &'a [Run],
}

impl payload::Payload for RunPieces<'_> {
    fn stretches(&self) -> usize {
        self.runs.len()
    }

    fn pieces(&self, i: usize, out: &mut Vec<Piece>) {
        let Some(r) = self.runs.get(i) else { return };
        let t = track_of(self.plan, r.which);
        for s in t.samples.range(r.first..r.first + r.count) {
            match out.last_mut() {
                Some(p)
                    if s.source != SILENCE
                        && p.source == s.source
                        && p.offset.saturating_add(u64::from(p.len)) == s.offset
                        && p.len.checked_add(s.size).is_some() =>
                {
                    p.len += s.size
                }
                _ => out.push(Piece {
                    source: s.source,
                    len: s.size,
                    offset: if s.source == SILENCE { 0 } else { s.offset },
                }),
            }
        }
    }
}

/// Per source, the output byte range its samples occupy (`(0, 0)` for none).
fn chunk_byte_ranges(plan: &Plan, lay: &Layout, base: u64, sources: usize) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = vec![(u64::MAX, 0); sources];
    for r in &lay.runs {
        let t = track_of(plan, r.which);
        let mut pos = base + r.rel_offset;
        for s in t.samples.range(r.first..r.first + r.count) {
            let len = u64::from(s.size);
            if s.source != SILENCE {
                let range = &mut ranges[s.source as usize];
                range.0 = range.0.min(pos);
                range.1 = range.1.max(pos + len);
            }
            pos += len;
        }
    }
    ranges
        .into_iter()
        .map(|(a, b)| if a == u64::MAX { (0, 0) } else { (a, b) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(duration: u32, entry: u8) -> OutSample {
        OutSample {
            source: 0,
            offset: 0,
            size: 10,
            duration,
            composition_offset: 0,
            sync: true,
            entry,
        }
    }

    #[test]
    fn co64_is_used_only_when_needed() {
        let out = stbl::encode(|o| stbl::chunk_offsets(o, &[1, u64::from(u32::MAX)], false)).unwrap();
        assert_eq!(&out[4..8], b"stco");
        let e = stbl::encode(|o| stbl::chunk_offsets(o, &[u64::from(u32::MAX) + 1], false)).unwrap_err();
        assert_eq!(e.category(), "encode");
        assert_eq!(
            e.with_path(std::path::Path::new("out/x.mp4")).to_string(),
            "out/x.mp4: cannot encode stco: a chunk offset exceeds 32 bits without co64"
        );
        let out = stbl::encode(|o| stbl::chunk_offsets(o, &[u64::from(u32::MAX) + 1], true)).unwrap();
        assert_eq!(&out[4..8], b"co64");
        assert_eq!(&out[out.len() - 8..], &(u64::from(u32::MAX) + 1).to_be_bytes());
    }

    /// A plan whose samples add up to more than 4 GiB (bytes are never read).
    fn huge_plan(sample: u32, count: usize) -> Plan {
        use crate::formats::mp4::{AacConfig, Codec, SampleEntry};
        let entry = SampleEntry {
            fourcc: "mp4a".into(),
            raw: vec![0, 0, 0, 8, b'm', b'p', b'4', b'a'],
            codec: Codec::Aac(AacConfig {
                object_type: 2,
                sample_rate: 16000,
                channels: 1,
                frame_length: 1024,
                asc: vec![],
            }),
        };
        let samples = std::iter::repeat_n(
            OutSample {
                size: sample,
                ..s(1024, 0)
            },
            count,
        )
        .collect();
        let audio = OutTrack {
            timescale: 16000,
            entries: vec![entry],
            samples,
            edit_start: 0,
            presented: 1024 * count as u64,
        };
        Plan {
            video: None,
            audio,
            placements: vec![],
            silence: vec![],
        }
    }

    fn boxes_of(bytes: &[u8]) -> Vec<[u8; 4]> {
        bytes.windows(4).filter_map(|w| <[u8; 4]>::try_from(w).ok()).collect()
    }

    #[test]
    fn co64_and_a_64_bit_mdat_only_past_4_gib() {
        // Runs hold one second (about 16 packets) each: 64 MiB in all stays in 32 bits.
        let small = moov_bytes(&huge_plan(1 << 20, 64), &[]).unwrap();
        let kinds = boxes_of(&small);
        assert!(kinds.contains(b"stco") && !kinds.contains(b"co64"));
        // 64 packets of 128 MiB: the third run starts past 4 GiB.
        let big = moov_bytes(&huge_plan(1 << 27, 64), &[]).unwrap();
        let kinds = boxes_of(&big);
        assert!(kinds.contains(b"co64") && !kinds.contains(b"stco"), "8 GiB needs co64");
        // The mdat header at the end: size 1, then a 64-bit size of 8 GiB + 16.
        let tail = &big[big.len() - 16..];
        assert_eq!(&tail[..8], &[0, 0, 0, 1, b'm', b'd', b'a', b't']);
        assert_eq!(
            u64::from_be_bytes(tail[8..].try_into().unwrap()),
            64 * (1u64 << 27) + 16
        );
        // The co64 table's last offset lies past 4 GiB.
        let at = big.windows(4).position(|w| w == b"co64").unwrap() + 4;
        let count = u32::from_be_bytes(big[at + 4..at + 8].try_into().unwrap()) as usize;
        let last = &big[at + 8 + 8 * (count - 1)..at + 16 + 8 * (count - 1)];
        assert!(u64::from_be_bytes(last.try_into().unwrap()) > u64::from(u32::MAX));
    }

    #[test]
    fn movie_ticks_round_up() {
        assert_eq!(movie_ticks(48000, 16000, 16384), 49152);
        assert_eq!(movie_ticks(1, 16000, 1000), 1);
        assert_eq!(movie_ticks(0, 16000, 1000), 0);
    }
}
