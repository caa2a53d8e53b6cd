//! Decoding `moov` (and `moof` fragments) into tracks with expanded sample
//! tables (ISO/IEC 14496-12 §8.6 "Track time structures", §8.7 "Track data
//! layout structures", §8.8 "Movie fragments").
//!
//! The box tree is walked here with [`Children`] so that nesting depth and
//! sizes stay under our control; leaf boxes are decoded by `mp4-atom`.

use mp4_atom::{
    Co64, Ctts, Elst, Hdlr, Mdhd, Mvhd, Stco, Stsc, Stss, Stsz, StszSamples, Stts, Tfdt, Tfhd, Tkhd, Trex, Trun,
};

use super::boxes::{BoxSlice, Children};
use super::codec::{self, SampleEntry};
use super::{track_kind, Edit, Sample, SampleTable, Track};
use crate::error::{Here, Result};
use crate::limits::{wide, Limit, Limits};

pub(crate) struct ParsedMoov {
    pub movie_timescale: u32,
    pub tracks: Vec<Track>,
    /// Departures from the format that were tolerated (see [`Movie::quirks`](super::Movie::quirks)).
    pub quirks: Vec<String>,
}

/// Calls `f` for each child box of `body`, with the child's path.
fn for_each_child<'a, 'h>(
    body: &'a [u8],
    here: &Here<'h>,
    mut f: impl FnMut(BoxSlice<'a>, Here<'h>) -> Result<()>,
) -> Result<()> {
    let mut it = Children::new(body);
    let mut seen: Vec<([u8; 4], usize)> = Vec::new();
    while let Some(b) = it.next_box(here)? {
        let kind: [u8; 4] = b.kind.into();
        // Name repeated boxes by their position: trak[0], trak[1], ...
        let n = match seen.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                seen.push((kind, 0));
                0
            }
        };
        let name = codec::fourcc_string(kind);
        let child = if matches!(&kind, b"trak" | b"traf" | b"trun") {
            here.child(format!("{name}[{n}]"))
        } else {
            here.child(name)
        };
        f(b, child)?;
    }
    Ok(())
}

/// The boxes of one `trak` that we need, found but not yet expanded.
#[derive(Default)]
struct TrakBoxes<'a, 'h> {
    tkhd: Option<Tkhd>,
    elst: Option<Elst>,
    mdhd: Option<Mdhd>,
    hdlr: Option<Hdlr>,
    stsd: Option<(BoxSlice<'a>, Here<'h>)>,
    stts: Option<Stts>,
    ctts: Option<Ctts>,
    stss: Option<Stss>,
    stsc: Option<Stsc>,
    stsz: Option<Stsz>,
    chunk_offsets: Option<Vec<u64>>,
}

/// Decodes `moov` and its fragments; `file_size` bounds what the tables may claim.
pub(crate) fn parse_moov(
    moov: &[u8],
    moofs: &[(u64, Vec<u8>)],
    file_size: u64,
    here: &Here,
    limits: &Limits,
) -> Result<ParsedMoov> {
    let here = here.child("moov");
    let mut mvhd: Option<Mvhd> = None;
    let mut traks: Vec<(TrakBoxes, Here)> = Vec::new();
    let mut trex: Vec<Trex> = Vec::new();
    for_each_child(moov, &here, |b, h| {
        match &<[u8; 4]>::from(b.kind) {
            b"mvhd" => mvhd = Some(b.decode(&h)?),
            b"trak" => {
                limits.check_count(Limit::Tracks, traks.len() + 1, &h, "number of tracks")?;
                let mut t = TrakBoxes::default();
                collect_trak(b.body(), &h, 2, limits, &mut t)?;
                traks.push((t, h));
            }
            b"mvex" => for_each_child(b.body(), &h, |b, h| {
                if &<[u8; 4]>::from(b.kind) == b"trex" && trex.len() < limits.max_tracks {
                    trex.push(b.decode(&h)?);
                }
                Ok(())
            })?,
            _ => {}
        }
        Ok(())
    })?;
    let mvhd = mvhd.ok_or_else(|| here.invalid("no mvhd box"))?;
    if mvhd.timescale == 0 {
        return Err(here.child("mvhd").invalid("movie timescale is 0"));
    }
    let mut tracks = Vec::with_capacity(traks.len());
    let mut quirks = Vec::new();
    for (t, h) in traks {
        tracks.push(build_track(t, &h, file_size, limits, &mut quirks)?);
    }
    if !moofs.is_empty() {
        add_fragments(&mut tracks, &trex, moofs, file_size, &here, limits)?;
    }
    Ok(ParsedMoov {
        movie_timescale: mvhd.timescale,
        tracks,
        quirks,
    })
}

/// Finds the boxes of interest under `trak`, descending through the
/// containers on the way to `stbl`.
fn collect_trak<'a, 'h>(
    body: &'a [u8],
    here: &Here<'h>,
    depth: usize,
    limits: &Limits,
    t: &mut TrakBoxes<'a, 'h>,
) -> Result<()> {
    limits.check_count(Limit::BoxDepth, depth, here, "box nesting depth")?;
    for_each_child(body, here, |b, h| {
        match &<[u8; 4]>::from(b.kind) {
            b"edts" | b"mdia" | b"minf" | b"stbl" => collect_trak(b.body(), &h, depth + 1, limits, t)?,
            b"tkhd" => t.tkhd = Some(b.decode(&h)?),
            b"elst" => t.elst = Some(b.decode(&h)?),
            b"mdhd" => t.mdhd = Some(b.decode(&h)?),
            b"hdlr" => t.hdlr = Some(b.decode(&h)?),
            b"stsd" => t.stsd = Some((b, h)),
            b"stts" => t.stts = Some(b.decode(&h)?),
            b"ctts" => t.ctts = Some(b.decode(&h)?),
            b"stss" => t.stss = Some(b.decode(&h)?),
            b"stsc" => t.stsc = Some(b.decode(&h)?),
            b"stsz" => t.stsz = Some(b.decode(&h)?),
            b"stco" => t.chunk_offsets = Some(b.decode::<Stco>(&h)?.entries.into_iter().map(u64::from).collect()),
            b"co64" => t.chunk_offsets = Some(b.decode::<Co64>(&h)?.entries),
            _ => {}
        }
        Ok(())
    })
}

fn build_track(
    mut t: TrakBoxes,
    here: &Here,
    file_size: u64,
    limits: &Limits,
    quirks: &mut Vec<String>,
) -> Result<Track> {
    let tkhd = t.tkhd.ok_or_else(|| here.invalid("no tkhd box"))?;
    let mdhd = t.mdhd.ok_or_else(|| here.invalid("no mdia/mdhd box"))?;
    let hdlr = t.hdlr.ok_or_else(|| here.invalid("no mdia/hdlr box"))?;
    if mdhd.timescale == 0 {
        return Err(here.child("mdia/mdhd").invalid("media timescale is 0"));
    }
    let edits = match t.elst {
        Some(elst) => {
            limits.check_count(
                Limit::Edits,
                elst.entries.len(),
                &here.child("edts/elst"),
                "number of edits",
            )?;
            elst.entries
                .iter()
                .map(|e| Edit {
                    segment_duration: e.segment_duration,
                    media_time: e.media_time,
                    rate: e.media_rate.integer(),
                })
                .collect()
        }
        None => Vec::new(),
    };
    let (stsd, stsd_here) = t.stsd.ok_or_else(|| here.invalid("no stbl/stsd box"))?;
    let entries = parse_stsd(stsd, &stsd_here, limits, quirks)?;
    let stbl = here.child("mdia/minf/stbl");
    if let Some(stsc) = t.stsc.as_mut() {
        let empty = drop_empty_stsc_runs(stsc);
        if empty > 0 {
            quirks.push(format!(
                "{}: {empty} entries repeat the next entry's first_chunk (runs of no chunk); ignored, as players do",
                stbl.child("stsc").context
            ));
        }
    }
    if let Some(ctts) = t.ctts.as_mut() {
        if signed_ctts(ctts) {
            quirks.push(format!(
                "{}: a version 0 ctts holds negative composition offsets written as unsigned numbers; read as signed, as players do",
                stbl.child("ctts").context
            ));
        }
    }
    let samples = expand_samples(
        SampleTables {
            stts: t.stts.ok_or_else(|| stbl.invalid("no stts box"))?,
            ctts: t.ctts,
            stss: t.stss,
            stsc: t.stsc.ok_or_else(|| stbl.invalid("no stsc box"))?,
            stsz: t.stsz.ok_or_else(|| stbl.invalid("no stsz box"))?,
            chunk_offsets: t.chunk_offsets.ok_or_else(|| stbl.invalid("no stco or co64 box"))?,
            entry_count: entries.len(),
            file_size,
        },
        &stbl,
        limits,
    )?;
    Ok(Track {
        id: tkhd.track_id,
        kind: track_kind(hdlr.handler),
        handler: codec::fourcc_string(hdlr.handler.into()),
        timescale: mdhd.timescale,
        declared_duration: mdhd.duration,
        language: mdhd.language,
        edits,
        entries,
        samples,
    })
}

/// Removes the `stsc` entries whose run is empty (the next entry starts at
/// the same chunk). Returns how many.
fn drop_empty_stsc_runs(stsc: &mut Stsc) -> usize {
    let before = stsc.entries.len();
    let firsts: Vec<u32> = stsc.entries.iter().map(|e| e.first_chunk).collect();
    let mut i = 0;
    stsc.entries.retain(|_| {
        i += 1;
        firsts.get(i) != firsts.get(i - 1)
    });
    before - stsc.entries.len()
}

/// Reads offsets of a version 0 `ctts` that only make sense as negative
/// numbers (2^31 and up: -1 written as 4294967295) as such. Returns
/// whether any was.
fn signed_ctts(ctts: &mut Ctts) -> bool {
    const WRAP: i64 = 1 << 32;
    let mut changed = false;
    for e in &mut ctts.entries {
        if (i64::from(i32::MAX) + 1..WRAP).contains(&e.sample_offset) {
            e.sample_offset -= WRAP;
            changed = true;
        }
    }
    changed
}

fn parse_stsd(stsd: BoxSlice, here: &Here, limits: &Limits, quirks: &mut Vec<String>) -> Result<Vec<SampleEntry>> {
    let body = stsd.body();
    let head = body
        .get(..8)
        .ok_or_else(|| here.invalid("stsd box shorter than its header fields"))?;
    let count = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
    limits.check(
        Limit::SampleDescriptions,
        u64::from(count),
        here,
        "number of sample descriptions",
    )?;
    // Bounded by the limit just checked.
    let mut entries = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut it = Children::new(&body[8..]);
    for _ in 0..count {
        let entry = it
            .next_box(here)?
            .ok_or_else(|| here.invalid(format!("stsd announces {count} entries but holds {}", entries.len())))?;
        entries.push(codec::parse_sample_entry(&entry, here, quirks)?);
    }
    if entries.is_empty() {
        return Err(here.invalid("stsd holds no sample description"));
    }
    Ok(entries)
}

/// The sample tables of one track, as decoded.
pub(crate) struct SampleTables {
    pub stts: Stts,
    pub ctts: Option<Ctts>,
    pub stss: Option<Stss>,
    pub stsc: Stsc,
    pub stsz: Stsz,
    pub chunk_offsets: Vec<u64>,
    pub entry_count: usize,
    /// Size of the file: samples of a fixed size cannot need more.
    pub file_size: u64,
}

/// Expands the run-length coded tables into a [`SampleTable`],
/// checking that every table covers exactly the samples `stsz` declares.
pub(crate) fn expand_samples(t: SampleTables, here: &Here, limits: &Limits) -> Result<SampleTable> {
    let (count, fixed_size) = match &t.stsz.samples {
        StszSamples::Identical { count, size } => (u64::from(*count), Some(*size)),
        StszSamples::Different { sizes } => (wide(sizes.len()), None),
    };
    limits.check(Limit::SamplesPerTrack, count, &here.child("stsz"), "sample count")?;
    // A count backed by no bytes: refuse it before allocating for it.
    if let Some(size) = fixed_size {
        check_fixed_size(count, size, t.file_size, &here.child("stsz"))?;
    }
    check_table_counts(&t, count, here)?;
    check_stsc(&t, count, here)?;
    // count <= max_samples_per_track, so this allocation is bounded.
    let n = usize::try_from(count).map_err(|_| here.child("stsz").invalid("sample count exceeds memory"))?;
    let ctts = t.ctts.as_ref().map_or(&[][..], |c| c.entries.as_slice());
    if let Some(off) = ctts
        .iter()
        .map(|e| e.sample_offset)
        .find(|&o| i32::try_from(o).is_err())
    {
        return Err(here
            .child("ctts")
            .invalid(format!("composition offset {off} out of range")));
    }
    let mut offsets = ctts
        .iter()
        .flat_map(|e| repeat_count(i32::try_from(e.sample_offset).unwrap_or(0), e.sample_count));
    let mut samples = lay_out_chunks(&t, n, here, || offsets.next().unwrap_or(0))?;
    if samples.len() != n {
        return Err(here
            .child("stsc")
            .invalid(format!("chunks hold {} samples but stsz has {count}", samples.len())));
    }
    if let Some(stss) = &t.stss {
        for &k in &stss.entries {
            let i = k
                .checked_sub(1)
                .and_then(|k| usize::try_from(k).ok())
                .filter(|&i| i < n)
                .ok_or_else(|| {
                    here.child("stss")
                        .invalid(format!("sync sample {k} is not a sample of the track (1..={count})"))
                })?;
            samples.set_sync(i, true);
        }
    }
    Ok(samples)
}

/// `value`, `count` times (a table run).
fn repeat_count<T: Clone>(value: T, count: u32) -> std::iter::RepeatN<T> {
    std::iter::repeat_n(value, usize::try_from(count).unwrap_or(usize::MAX))
}

/// `stts` (and `ctts`) must cover exactly the `count` samples of `stsz`.
fn check_table_counts(t: &SampleTables, count: u64, here: &Here) -> Result<()> {
    let stts_total: u64 = t.stts.entries.iter().map(|e| u64::from(e.sample_count)).sum();
    if stts_total != count {
        return Err(here
            .child("stts")
            .invalid(format!("durations cover {stts_total} samples but stsz has {count}")));
    }
    if let Some(ctts) = &t.ctts {
        let total: u64 = ctts.entries.iter().map(|e| u64::from(e.sample_count)).sum();
        if total != count {
            return Err(here.child("ctts").invalid(format!(
                "composition offsets cover {total} samples but stsz has {count}"
            )));
        }
    }
    Ok(())
}

/// `stsc` runs must be in chunk order, inside the chunk table, and name an
/// existing sample description.
fn check_stsc(t: &SampleTables, count: u64, here: &Here) -> Result<()> {
    let stsc = &t.stsc.entries;
    let chunks = wide(t.chunk_offsets.len());
    let stsc_here = here.child("stsc");
    for (i, e) in stsc.iter().enumerate() {
        let next_first = stsc.get(i + 1).map(|n| u64::from(n.first_chunk)).unwrap_or(chunks + 1);
        if e.first_chunk == 0 || u64::from(e.first_chunk) >= next_first || u64::from(e.first_chunk) > chunks {
            return Err(stsc_here.invalid(format!(
                "entry {i} has first_chunk {} out of order or past the {chunks} chunks",
                e.first_chunk
            )));
        }
        let description = usize::try_from(e.sample_description_index).unwrap_or(usize::MAX);
        if description == 0 || description > t.entry_count || u8::try_from(description - 1).is_err() {
            return Err(stsc_here.invalid(format!(
                "entry {i} names sample description {} of {}",
                e.sample_description_index, t.entry_count
            )));
        }
    }
    if stsc.is_empty() && count > 0 {
        return Err(stsc_here.invalid("no entries, but the track has samples"));
    }
    Ok(())
}

/// The first `n` samples as the chunk table lays them out (`stsc` runs of
/// samples per chunk, `stco`/`co64` offsets, `stsz` sizes, `stts` durations).
fn lay_out_chunks(
    t: &SampleTables,
    n: usize,
    here: &Here,
    mut composition_offset: impl FnMut() -> i32,
) -> Result<SampleTable> {
    let stsc = &t.stsc.entries;
    let chunks = wide(t.chunk_offsets.len());
    let size_of = |i: usize| -> u32 {
        match &t.stsz.samples {
            StszSamples::Identical { size, .. } => *size,
            StszSamples::Different { sizes } => sizes.get(i).copied().unwrap_or(0),
        }
    };
    let mut durations = t
        .stts
        .entries
        .iter()
        .flat_map(|e| repeat_count(e.sample_delta, e.sample_count));
    let mut samples = SampleTable::with_capacity(n);
    for (i, e) in stsc.iter().enumerate() {
        let next_first = stsc.get(i + 1).map(|n| u64::from(n.first_chunk)).unwrap_or(chunks + 1);
        // Checked by check_stsc: 1 <= description <= entry_count, which fits a u8.
        let entry = u8::try_from(e.sample_description_index.saturating_sub(1)).unwrap_or(u8::MAX);
        for chunk in u64::from(e.first_chunk)..next_first {
            // 1 <= chunk <= chunk_offsets.len(), checked by check_stsc.
            let at = usize::try_from(chunk - 1).unwrap_or(usize::MAX);
            let mut offset = t.chunk_offsets.get(at).copied().unwrap_or(0);
            for _ in 0..e.samples_per_chunk {
                if samples.len() >= n {
                    return Ok(samples);
                }
                let size = size_of(samples.len());
                samples.push(Sample {
                    source: 0,
                    offset,
                    size,
                    duration: durations.next().unwrap_or(0),
                    composition_offset: composition_offset(),
                    sync: t.stss.is_none(),
                    entry,
                });
                offset = offset.checked_add(u64::from(size)).ok_or_else(|| {
                    here.child("stco")
                        .invalid(format!("chunk {chunk}: sample offsets overflow"))
                })?;
            }
        }
    }
    Ok(samples)
}

/// Refuses `count` samples of `size` bytes each that the file cannot hold.
fn check_fixed_size(count: u64, size: u32, file_size: u64, here: &Here) -> Result<()> {
    if count > 0 && size == 0 {
        return Err(here.invalid(format!("{count} samples of 0 bytes")));
    }
    let need = count.saturating_mul(u64::from(size));
    if need > file_size {
        return Err(here.truncated(format!(
            "{count} samples of {size} bytes need {need} bytes but the file has {file_size}"
        )));
    }
    Ok(())
}

/// Appends the samples of `moof` fragments to their tracks (§8.8).
fn add_fragments(
    tracks: &mut [Track],
    trex: &[Trex],
    moofs: &[(u64, Vec<u8>)],
    file_size: u64,
    here: &Here,
    limits: &Limits,
) -> Result<()> {
    for (n, (moof_offset, body)) in moofs.iter().enumerate() {
        let moof_here = here.child(format!("moof[{n}]@{moof_offset}"));
        let mut cursor = *moof_offset;
        for traf in read_trafs(body, &moof_here)? {
            let track = tracks.iter_mut().find(|t| t.id == traf.tfhd.track_id).ok_or_else(|| {
                traf.here.invalid(format!(
                    "tfhd names track {} which the moov does not have",
                    traf.tfhd.track_id
                ))
            })?;
            let defaults = FragmentDefaults::new(&traf, trex.iter().find(|t| t.track_id == traf.tfhd.track_id));
            if defaults.description == 0
                || usize::try_from(defaults.description).unwrap_or(usize::MAX) > track.entries.len()
            {
                return Err(traf.here.invalid(format!(
                    "sample description {} of {}",
                    defaults.description,
                    track.entries.len()
                )));
            }
            let base = match traf.tfhd.base_data_offset {
                Some(b) => b,
                None if traf.tfhd.default_base_is_moof => *moof_offset,
                None => cursor,
            };
            cursor = add_truns(track, &traf, &defaults, base, file_size, limits)?;
        }
    }
    Ok(())
}

/// One `traf`: its header, its runs with their paths, and its own path.
struct Traf<'h> {
    tfhd: Tfhd,
    truns: Vec<(Trun, Here<'h>)>,
    here: Here<'h>,
}

fn read_trafs<'h>(moof: &[u8], here: &Here<'h>) -> Result<Vec<Traf<'h>>> {
    let mut trafs = Vec::new();
    for_each_child(moof, here, |b, h| {
        if &<[u8; 4]>::from(b.kind) != b"traf" {
            return Ok(());
        }
        let mut tfhd: Option<Tfhd> = None;
        let mut truns: Vec<(Trun, Here)> = Vec::new();
        for_each_child(b.body(), &h, |b, h| {
            match &<[u8; 4]>::from(b.kind) {
                b"tfhd" => tfhd = Some(b.decode(&h)?),
                // Not needed (samples follow the edit list), but it must decode.
                b"tfdt" => {
                    b.decode::<Tfdt>(&h)?;
                }
                b"trun" => truns.push((b.decode(&h)?, h)),
                _ => {}
            }
            Ok(())
        })?;
        let tfhd = tfhd.ok_or_else(|| h.invalid("no tfhd box"))?;
        trafs.push(Traf { tfhd, truns, here: h });
        Ok(())
    })?;
    Ok(trafs)
}

/// A fragment's sample defaults: from its `tfhd`, else the track's `trex`.
struct FragmentDefaults {
    description: u32,
    duration: u32,
    size: u32,
    flags: u32,
}

impl FragmentDefaults {
    fn new(traf: &Traf, trex: Option<&Trex>) -> Self {
        let tfhd = &traf.tfhd;
        FragmentDefaults {
            description: tfhd
                .sample_description_index
                .or(trex.map(|d| d.default_sample_description_index))
                .unwrap_or(1),
            duration: tfhd
                .default_sample_duration
                .or(trex.map(|d| d.default_sample_duration))
                .unwrap_or(0),
            size: tfhd
                .default_sample_size
                .or(trex.map(|d| d.default_sample_size))
                .unwrap_or(0),
            flags: tfhd
                .default_sample_flags
                .or(trex.map(|d| d.default_sample_flags))
                .unwrap_or(0),
        }
    }
}

/// Appends the samples of a `traf`'s runs, from `base`; returns where the
/// last run's data ends (the next `traf`'s implicit base).
fn add_truns(
    track: &mut Track,
    traf: &Traf,
    defaults: &FragmentDefaults,
    base: u64,
    file_size: u64,
    limits: &Limits,
) -> Result<u64> {
    let entry = u8::try_from(defaults.description - 1).map_err(|_| {
        traf.here
            .invalid(format!("sample description {} is too large", defaults.description))
    })?;
    let mut pos = base;
    for (trun, trun_here) in &traf.truns {
        let total = track.samples.len().saturating_add(trun.samples.len());
        limits.check_count(Limit::SamplesPerTrack, total, trun_here, "sample count")?;
        if let mp4_atom::TrunSamples::Inherited { count, .. } = trun.samples {
            check_fixed_size(u64::from(count), defaults.size, file_size, trun_here)?;
        }
        if let Some(off) = trun.data_offset {
            pos = base
                .checked_add_signed(i64::from(off))
                .ok_or_else(|| trun_here.invalid("data offset points before the start of the file"))?;
        }
        for e in trun.samples.iter() {
            let size = e.size.unwrap_or(defaults.size);
            let flags = e.flags.unwrap_or(defaults.flags);
            let cts = e.cts.unwrap_or(0);
            track.samples.push(Sample {
                source: 0,
                offset: pos,
                size,
                duration: e.duration.unwrap_or(defaults.duration),
                composition_offset: i32::try_from(cts)
                    .map_err(|_| trun_here.invalid(format!("composition offset {cts} out of range")))?,
                // sample_is_non_sync_sample is bit 16 of the flags (§8.8.3.1).
                sync: flags & 0x0001_0000 == 0,
                entry,
            });
            pos = pos
                .checked_add(u64::from(size))
                .ok_or_else(|| trun_here.invalid("sample offsets overflow"))?;
        }
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mp4_atom::{CttsEntry, StscEntry, SttsEntry};
    use std::path::Path;

    fn tables(sizes: Vec<u32>, stsc: Vec<(u32, u32)>, offsets: Vec<u64>) -> SampleTables {
        let n = sizes.len() as u32;
        SampleTables {
            stts: Stts {
                entries: vec![SttsEntry {
                    sample_count: n,
                    sample_delta: 1024,
                }],
            },
            ctts: None,
            stss: None,
            stsc: Stsc {
                entries: stsc
                    .into_iter()
                    .map(|(first_chunk, samples_per_chunk)| StscEntry {
                        first_chunk,
                        samples_per_chunk,
                        sample_description_index: 1,
                    })
                    .collect(),
            },
            stsz: Stsz {
                samples: StszSamples::Different { sizes },
            },
            chunk_offsets: offsets,
            entry_count: 1,
            file_size: u64::MAX,
        }
    }

    fn here() -> Here<'static> {
        Here::new(Path::new("t.mp4"), "stbl")
    }

    #[test]
    fn expands_chunks_into_sample_offsets() {
        let t = tables(vec![10, 20, 30, 40, 50], vec![(1, 2), (3, 1)], vec![100, 1000, 2000]);
        let s = expand_samples(t, &here(), &Limits::default()).unwrap();
        let offsets: Vec<u64> = s.iter().map(|s| s.offset).collect();
        // chunk 1: 2 samples, chunk 2: 2 samples, chunk 3: 1 sample
        assert_eq!(offsets, vec![100, 110, 1000, 1030, 2000]);
        assert!(s.iter().all(|s| s.sync && s.duration == 1024));
    }

    #[test]
    fn disagreeing_counts_are_errors() {
        let mut t = tables(vec![1, 2, 3], vec![(1, 3)], vec![0]);
        t.stts.entries[0].sample_count = 2;
        let e = expand_samples(t, &here(), &Limits::default()).unwrap_err();
        assert!(
            e.to_string()
                .contains("stbl/stts: durations cover 2 samples but stsz has 3"),
            "{e}"
        );

        let t = tables(vec![1, 2, 3], vec![(1, 2)], vec![0]);
        let e = expand_samples(t, &here(), &Limits::default()).unwrap_err();
        assert!(e.to_string().contains("chunks hold 2 samples"), "{e}");

        let mut t = tables(vec![1, 2, 3], vec![(1, 3)], vec![0]);
        t.ctts = Some(Ctts {
            entries: vec![CttsEntry {
                sample_count: 4,
                sample_offset: 0,
            }],
        });
        invalid(t, "ctts: composition offsets cover 4 samples but stsz has 3");

        let mut t = tables(vec![1, 2, 3], vec![(1, 3)], vec![0]);
        t.stss = Some(Stss { entries: vec![4] });
        invalid(t, "stss: sync sample 4 is not a sample of the track (1..=3)");
    }

    /// `expand_samples` refuses `t` as invalid, with a message ending in `message`.
    fn invalid(t: SampleTables, message: &str) {
        let e = expand_samples(t, &here(), &Limits::default()).unwrap_err();
        assert_eq!(e.category(), "invalid", "{e}");
        assert!(e.to_string().ends_with(message), "{e}");
    }

    #[test]
    fn stsc_out_of_order_or_bad_description_is_an_error() {
        let t = tables(vec![1, 2], vec![(2, 1), (1, 1)], vec![0, 10]);
        invalid(t, "stsc: entry 0 has first_chunk 2 out of order or past the 2 chunks");
        let t = tables(vec![1, 2], vec![(5, 1)], vec![0, 10]);
        invalid(t, "stsc: entry 0 has first_chunk 5 out of order or past the 2 chunks");
        let mut t = tables(vec![1, 2], vec![(1, 2)], vec![0]);
        t.stsc.entries[0].sample_description_index = 2;
        invalid(t, "stsc: entry 0 names sample description 2 of 1");
    }

    /// `count` samples of `size` bytes in one chunk, in a file of `file_size` bytes.
    fn fixed(count: u32, size: u32, file_size: u64) -> SampleTables {
        SampleTables {
            stts: Stts {
                entries: vec![SttsEntry {
                    sample_count: count,
                    sample_delta: 1,
                }],
            },
            ctts: None,
            stss: None,
            stsc: Stsc {
                entries: vec![StscEntry {
                    first_chunk: 1,
                    samples_per_chunk: count,
                    sample_description_index: 1,
                }],
            },
            stsz: Stsz {
                samples: StszSamples::Identical { count, size },
            },
            chunk_offsets: vec![0],
            entry_count: 1,
            file_size,
        }
    }

    #[test]
    fn hostile_sample_count_hits_the_limit_before_allocating() {
        let e = expand_samples(fixed(u32::MAX, 1, u64::MAX), &here(), &Limits::default()).unwrap_err();
        assert_eq!(e.category(), "limit");
        assert!(e.to_string().contains("max_samples_per_track"), "{e}");
    }

    #[test]
    fn a_count_the_file_cannot_hold_is_refused_before_allocating() {
        let Err(e) = expand_samples(fixed(3_000_000, 1, 40_000), &here(), &Limits::default()) else {
            panic!("accepted")
        };
        assert_eq!(e.category(), "truncated");
        assert!(
            e.to_string()
                .contains("3000000 samples of 1 bytes need 3000000 bytes but the file has 40000"),
            "{e}"
        );
        let Err(e) = expand_samples(fixed(3_000_000, 0, 40_000), &here(), &Limits::default()) else {
            panic!("accepted")
        };
        assert_eq!(e.category(), "invalid");
    }

    #[test]
    fn offsets_that_overflow_are_errors() {
        let t = tables(vec![u32::MAX, u32::MAX], vec![(1, 2)], vec![u64::MAX - 10]);
        invalid(t, "stco: chunk 1: sample offsets overflow");
    }

    #[test]
    fn stsc_entries_with_a_repeated_first_chunk_are_empty_runs() {
        let entry = |first_chunk| StscEntry {
            first_chunk,
            samples_per_chunk: 1,
            sample_description_index: 1,
        };
        let mut stsc = Stsc {
            entries: vec![entry(1), entry(1), entry(1), entry(3), entry(3), entry(5)],
        };
        assert_eq!(drop_empty_stsc_runs(&mut stsc), 3);
        let firsts: Vec<u32> = stsc.entries.iter().map(|e| e.first_chunk).collect();
        assert_eq!(firsts, [1, 3, 5]);
    }

    #[test]
    fn unsigned_ctts_offsets_past_i32_are_read_as_negative() {
        let entry = |sample_offset| CttsEntry {
            sample_count: 1,
            sample_offset,
        };
        let mut ctts = Ctts {
            entries: vec![entry(200), entry(4_294_967_096), entry(4_294_967_196)],
        };
        assert!(signed_ctts(&mut ctts));
        let offsets: Vec<i64> = ctts.entries.iter().map(|e| e.sample_offset).collect();
        assert_eq!(offsets, [200, -200, -100]);
        assert!(!signed_ctts(&mut ctts), "already signed");
    }
}
