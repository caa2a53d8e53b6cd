//! [`SampleTable`]: a track's samples, kept about as compact as the file
//! encodes them.
//!
//! A 20-hour recording holds 1.7 to 2.3 million samples. One struct per
//! sample (32 bytes) would cost 54 to 74 MB for the chunks' tables and as
//! much again for the output plan; here a sample costs its 4-byte size, one
//! byte when the track has composition offsets (an index into the few
//! distinct offsets a B-frame pattern uses; 4 bytes past 256 distinct
//! ones), one bit for sync, and a share of the runs of bytes and of equal
//! durations it belongs to. A run's samples follow each other in one file,
//! either back to back or, as where a muxer interleaves its tracks sample
//! by sample, with gaps of up to 64 KiB between them, two bytes each.
//!
//! Samples go in with [`SampleTable::push`] and come out as [`Sample`]
//! values, by index ([`SampleTable::get`]) or in order ([`SampleTable::iter`],
//! [`SampleTable::range`]). Only durations, composition offsets and sync
//! flags change after a push.

use std::ops::Range;

/// [`Sample::source`] of generated audio (silence) that no input holds.
pub const SILENCE: u32 = u32::MAX;

/// One sample (a video frame or an audio packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sample {
    /// Which file holds its bytes: 0 in a chunk's own table; in an output
    /// plan, the index of the input chunk ([`SILENCE`] for generated audio).
    pub source: u32,
    /// Absolute offset of its first byte in that file.
    pub offset: u64,
    /// Its size in bytes.
    pub size: u32,
    /// Decode duration in track ticks.
    pub duration: u32,
    /// Composition offset (presentation time minus decode time), in ticks.
    pub composition_offset: i32,
    /// Whether it is a sync sample (a key frame).
    pub sync: bool,
    /// Index into the track's sample descriptions.
    pub entry: u8,
}

/// The most samples one byte run covers, so that finding a sample's offset
/// adds at most this many sizes (and gaps).
const RUN_MAX: usize = 64;

/// [`Run::gaps`] of a run whose samples lie back to back.
const CONTIGUOUS: u32 = u32::MAX;

/// Samples in one file, each at or after the end of the one before, with
/// one description.
#[derive(Debug, Clone, Copy)]
struct Run {
    first: usize,
    offset: u64,
    source: u32,
    /// Where in [`SampleTable::gaps`] the gaps before the run's second,
    /// third... samples are; [`CONTIGUOUS`] when they have none.
    gaps: u32,
    entry: u8,
}

/// The composition offsets of a track.
#[derive(Debug, Clone)]
enum Offsets {
    /// Per sample an index into `values` (empty while every offset is 0).
    Indexed { values: Vec<i32>, index: Vec<u8> },
    /// Per sample its offset, once there are more distinct values than a
    /// byte can name.
    Plain(Vec<i32>),
}

impl Default for Offsets {
    fn default() -> Self {
        Offsets::Indexed {
            values: Vec::new(),
            index: Vec::new(),
        }
    }
}

impl Offsets {
    /// Number of samples that have an entry (0 while every offset is 0).
    fn len(&self) -> usize {
        match self {
            Offsets::Indexed { index, .. } => index.len(),
            Offsets::Plain(v) => v.len(),
        }
    }

    fn get(&self, i: usize) -> i32 {
        match self {
            Offsets::Indexed { values, index } => index.get(i).map_or(0, |&k| values[usize::from(k)]),
            Offsets::Plain(v) => v.get(i).copied().unwrap_or(0),
        }
    }

    /// The index of `o` in `values`, added when new; `None` when `values` is full.
    fn index_of(values: &mut Vec<i32>, o: i32) -> Option<u8> {
        let k = match values.iter().position(|&v| v == o) {
            Some(k) => k,
            None if values.len() <= usize::from(u8::MAX) => {
                values.push(o);
                values.len() - 1
            }
            None => return None,
        };
        u8::try_from(k).ok()
    }

    /// Makes room for samples up to `n` (new ones 0) and sets sample `i`'s offset.
    fn set(&mut self, n: usize, i: usize, o: i32) {
        if let Offsets::Indexed { values, index } = self {
            // Entries made besides `i`'s (none when a push adds `i`) are 0.
            let fill = index.len() < n && !(index.len() == i && n == i + 1);
            let zero = if fill { Self::index_of(values, 0) } else { Some(0) };
            if let (Some(zero), Some(k)) = (zero, Self::index_of(values, o)) {
                index.resize(index.len().max(n), zero);
                index[i] = k;
                return;
            }
            let plain = index.iter().map(|&k| values[usize::from(k)]).collect();
            *self = Offsets::Plain(plain);
        }
        if let Offsets::Plain(v) = self {
            v.resize(v.len().max(n), 0);
            v[i] = o;
        }
    }

    fn reserve(&mut self, n: usize) {
        match self {
            Offsets::Indexed { index, .. } => index.reserve_exact(n),
            Offsets::Plain(v) => v.reserve_exact(n),
        }
    }
}

/// From sample `first` on, until the next step, every duration is `value`.
#[derive(Debug, Clone, Copy)]
struct Step {
    first: usize,
    value: u32,
}

/// A track's samples in decode order. See the [module](self) documentation.
#[derive(Debug, Clone, Default)]
pub struct SampleTable {
    sizes: Vec<u32>,
    runs: Vec<Run>,
    /// The gaps between the samples of runs that have some, in sample order.
    gaps: Vec<u16>,
    durations: Vec<Step>,
    offsets: Offsets,
    /// One bit per sample.
    sync: Vec<u64>,
    /// Where the last sample's bytes end.
    end: u64,
}

impl SampleTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty table with room for `n` samples' sizes and flags.
    pub fn with_capacity(n: usize) -> Self {
        let mut t = Self::new();
        t.reserve(n);
        t
    }

    /// Room for `n` more samples' sizes and flags.
    pub fn reserve(&mut self, n: usize) {
        self.sizes.reserve_exact(n);
        self.sync.reserve_exact(n.div_ceil(64));
        if self.offsets.len() > 0 {
            self.offsets.reserve(n);
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.sizes.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.sizes.is_empty()
    }

    /// Appends a sample.
    pub fn push(&mut self, s: Sample) {
        let i = self.len();
        // The gap after the last sample, when this one can join its run.
        let gap = self.runs.last().and_then(|r| {
            let joins = r.source == s.source && r.entry == s.entry && i - r.first < RUN_MAX;
            match s.offset.checked_sub(self.end) {
                _ if !joins => None,
                _ if s.source == SILENCE => Some(0),
                Some(gap) => u16::try_from(gap).ok(),
                None => None,
            }
        });
        match (gap, self.runs.last_mut()) {
            (Some(gap), Some(r)) => {
                if r.gaps == CONTIGUOUS && gap > 0 {
                    // The run's samples so far lay back to back.
                    r.gaps = u32::try_from(self.gaps.len()).unwrap_or(CONTIGUOUS);
                    if r.gaps != CONTIGUOUS {
                        self.gaps.resize(self.gaps.len() + (i - r.first - 1), 0);
                    }
                }
                if r.gaps != CONTIGUOUS {
                    self.gaps.push(gap);
                } else if gap > 0 {
                    // More gaps than a u32 can index: a run of its own.
                    self.start_run(i, &s);
                }
            }
            _ => self.start_run(i, &s),
        }
        if s.source != SILENCE {
            self.end = s.offset;
        }
        if s.source != SILENCE {
            self.end = self.end.saturating_add(u64::from(s.size));
        }
        if self.durations.last().is_none_or(|d| d.value != s.duration) {
            self.durations.push(Step {
                first: i,
                value: s.duration,
            });
        }
        if s.composition_offset != 0 || self.offsets.len() > 0 {
            self.offsets.set(i + 1, i, s.composition_offset);
        }
        if i.is_multiple_of(64) {
            self.sync.push(0);
        }
        if s.sync {
            self.sync[i / 64] |= 1 << (i % 64);
        }
        self.sizes.push(s.size);
    }

    fn start_run(&mut self, i: usize, s: &Sample) {
        self.runs.push(Run {
            first: i,
            offset: if s.source == SILENCE { 0 } else { s.offset },
            source: s.source,
            gaps: CONTIGUOUS,
            entry: s.entry,
        });
    }

    /// Sample `i`, or `None` past the end.
    pub fn get(&self, i: usize) -> Option<Sample> {
        self.range(i..i.saturating_add(1)).next()
    }

    /// The first sample.
    pub fn first(&self) -> Option<Sample> {
        self.get(0)
    }

    /// The last sample.
    pub fn last(&self) -> Option<Sample> {
        self.get(self.len().checked_sub(1)?)
    }

    /// Sample `i`'s description index, found without computing its offset.
    pub fn entry(&self, i: usize) -> Option<u8> {
        if i >= self.len() {
            return None;
        }
        let run = self.runs.partition_point(|r| r.first <= i).checked_sub(1)?;
        Some(self.runs[run].entry)
    }

    /// Every sample in decode order.
    pub fn iter(&self) -> Iter<'_> {
        self.range(0..self.len())
    }

    /// Samples `range` in decode order (clipped to the table).
    pub fn range(&self, range: Range<usize>) -> Iter<'_> {
        let cols = Timing::new(self, range);
        // Where the sample before `at` ends (its run's start for its first).
        let pos = self.runs.get(cols.run).map_or(0, |r| {
            let at = cols.at.max(r.first);
            self.offset_in(r, at).saturating_sub(self.gap_before(r, at))
        });
        Iter { cols, pos }
    }

    /// The offset of sample `i` of run `r`.
    fn offset_in(&self, r: &Run, i: usize) -> u64 {
        if r.source == SILENCE {
            return r.offset;
        }
        let before = self.sizes.get(r.first..i).unwrap_or(&[]);
        let o = before.iter().fold(r.offset, |o, &s| o.saturating_add(u64::from(s)));
        (r.first + 1..=i).fold(o, |o, j| o.saturating_add(self.gap_before(r, j)))
    }

    /// The gap between sample `i` of run `r` and the one before it.
    fn gap_before(&self, r: &Run, i: usize) -> u64 {
        if r.gaps == CONTIGUOUS || i <= r.first {
            return 0;
        }
        let at = r.gaps as usize + (i - r.first - 1);
        self.gaps.get(at).map_or(0, |&g| u64::from(g))
    }

    /// Every sample's size, in decode order.
    pub fn sizes(&self) -> &[u32] {
        &self.sizes
    }

    /// Sum of sample durations, in ticks (saturating).
    pub fn media_duration(&self) -> u64 {
        let ends = self.durations.iter().skip(1).map(|d| d.first).chain([self.len()]);
        self.durations
            .iter()
            .zip(ends)
            .map(|(d, end)| u64::from(d.value).saturating_mul((end - d.first) as u64))
            .fold(0, u64::saturating_add)
    }

    /// Sum of sample sizes, in bytes (saturating).
    pub fn byte_count(&self) -> u64 {
        self.sizes.iter().map(|&s| u64::from(s)).fold(0, u64::saturating_add)
    }

    /// Whether every sample is a sync sample.
    pub fn all_sync(&self) -> bool {
        let n = self.len();
        self.sync.iter().enumerate().all(|(w, &bits)| {
            let used = (n - w * 64).min(64);
            let mask = if used == 64 { u64::MAX } else { (1u64 << used) - 1 };
            bits & mask == mask
        })
    }

    /// Whether some composition offset is not 0.
    pub fn has_composition_offsets(&self) -> bool {
        match &self.offsets {
            Offsets::Indexed { values, index } => {
                let not_zero: Vec<bool> = values.iter().map(|&v| v != 0).collect();
                index.iter().any(|&k| not_zero[usize::from(k)])
            }
            Offsets::Plain(v) => v.iter().any(|&o| o != 0),
        }
    }

    /// The durations as runs: `(count, duration)` in decode order, each run
    /// as long as it can be (what `stts` holds).
    pub fn duration_runs(&self) -> impl Iterator<Item = (usize, u32)> + '_ {
        let ends = self.durations.iter().skip(1).map(|d| d.first).chain([self.len()]);
        self.durations.iter().zip(ends).map(|(d, end)| (end - d.first, d.value))
    }

    /// Runs of consecutive samples with one source and one description:
    /// `(count, source, entry)` in decode order (a source may span several runs).
    pub fn source_runs(&self) -> impl Iterator<Item = (usize, u32, u8)> + '_ {
        let ends = self.runs.iter().skip(1).map(|r| r.first).chain([self.len()]);
        self.runs
            .iter()
            .zip(ends)
            .map(|(r, end)| (end - r.first, r.source, r.entry))
    }

    /// Every sample's duration and description, in decode order: cheaper
    /// than [`SampleTable::iter`] where nothing else is wanted.
    pub fn durations_and_entries(&self) -> Timing<'_> {
        Timing::new(self, 0..self.len())
    }

    /// Every composition offset in decode order; none when all are 0.
    pub fn composition_offsets(&self) -> impl ExactSizeIterator<Item = i32> + Clone + '_ {
        let n = if self.has_composition_offsets() { self.len() } else { 0 };
        (0..n).map(|i| self.offsets.get(i))
    }

    /// The indices of the sync samples, in order.
    pub fn sync_samples(&self) -> impl Iterator<Item = usize> + '_ {
        let n = self.len();
        self.sync.iter().enumerate().flat_map(move |(w, &bits)| {
            let mut bits = bits;
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let b = bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    w * 64 + b
                })
            })
            .take_while(move |&i| i < n)
        })
    }

    /// Sets sample `i`'s duration (nothing past the end).
    pub fn set_duration(&mut self, i: usize, duration: u32) {
        let n = self.len();
        if i >= n {
            return;
        }
        let k = self.durations.partition_point(|d| d.first <= i) - 1;
        let old = self.durations[k].value;
        if old == duration {
            return;
        }
        let end = self.durations.get(k + 1).map_or(n, |d| d.first);
        let mut pieces = Vec::with_capacity(3);
        if self.durations[k].first < i {
            pieces.push(self.durations[k]);
        }
        pieces.push(Step {
            first: i,
            value: duration,
        });
        if i + 1 < end {
            pieces.push(Step {
                first: i + 1,
                value: old,
            });
        }
        self.durations.splice(k..=k, pieces);
        // Merge equal neighbours around the change, keeping one step per run.
        let mut j = k.max(1);
        let mut last = (k + 4).min(self.durations.len());
        while j < last {
            if self.durations[j].value == self.durations[j - 1].value {
                self.durations.remove(j);
                last -= 1;
            } else {
                j += 1;
            }
        }
    }

    /// Sets sample `i`'s composition offset (nothing past the end).
    pub fn set_composition_offset(&mut self, i: usize, offset: i32) {
        if i >= self.len() || (offset == 0 && self.offsets.len() == 0) {
            return;
        }
        self.offsets.set(self.len(), i, offset);
    }

    /// Sets whether sample `i` is a sync sample (nothing past the end).
    pub fn set_sync(&mut self, i: usize, sync: bool) {
        if let Some(word) = self.sync.get_mut(i / 64).filter(|_| i < self.sizes.len()) {
            let bit = 1u64 << (i % 64);
            if sync {
                *word |= bit;
            } else {
                *word &= !bit;
            }
        }
    }
}

impl PartialEq for SampleTable {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for SampleTable {}

impl Extend<Sample> for SampleTable {
    fn extend<I: IntoIterator<Item = Sample>>(&mut self, samples: I) {
        for s in samples {
            self.push(s);
        }
    }
}

impl FromIterator<Sample> for SampleTable {
    fn from_iter<I: IntoIterator<Item = Sample>>(samples: I) -> Self {
        let mut t = Self::new();
        t.extend(samples);
        t
    }
}

impl<'a> IntoIterator for &'a SampleTable {
    type Item = Sample;
    type IntoIter = Iter<'a>;
    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

/// Durations and descriptions of a [`SampleTable`]'s samples in decode
/// order; also where [`Iter`] is in the table's runs and steps.
#[derive(Debug, Clone)]
pub struct Timing<'a> {
    table: &'a SampleTable,
    at: usize,
    end: usize,
    /// The run of sample `at`, and where the next run starts.
    run: usize,
    run_end: usize,
    /// The duration step of sample `at`, and where the next one starts.
    step: usize,
    step_end: usize,
}

impl<'a> Timing<'a> {
    fn new(table: &'a SampleTable, range: Range<usize>) -> Self {
        let end = range.end.min(table.len());
        let at = range.start.min(end);
        let run = table.runs.partition_point(|r| r.first <= at).saturating_sub(1);
        let step = table.durations.partition_point(|d| d.first <= at).saturating_sub(1);
        Timing {
            table,
            at,
            end,
            run,
            run_end: table.runs.get(run + 1).map_or(usize::MAX, |r| r.first),
            step,
            step_end: table.durations.get(step + 1).map_or(usize::MAX, |d| d.first),
        }
    }

    /// Moves to the next sample: its index, and whether it starts a run.
    fn advance(&mut self) -> Option<(usize, bool)> {
        let t = self.table;
        let i = self.at;
        if i >= self.end {
            return None;
        }
        let new_run = i == self.run_end;
        if new_run {
            self.run += 1;
            self.run_end = t.runs.get(self.run + 1).map_or(usize::MAX, |n| n.first);
        }
        if i == self.step_end {
            self.step += 1;
            self.step_end = t.durations.get(self.step + 1).map_or(usize::MAX, |d| d.first);
        }
        self.at += 1;
        Some((i, new_run))
    }
}

impl Iterator for Timing<'_> {
    type Item = (u32, u8);

    fn next(&mut self) -> Option<(u32, u8)> {
        self.advance()?;
        Some((self.table.durations[self.step].value, self.table.runs[self.run].entry))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.at;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Timing<'_> {}

/// Samples of a [`SampleTable`] in decode order.
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    cols: Timing<'a>,
    /// Where the sample before the next one ends (in the next one's run).
    pos: u64,
}

impl Iterator for Iter<'_> {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        let (i, new_run) = self.cols.advance()?;
        let t = self.cols.table;
        let run = &t.runs[self.cols.run];
        if new_run {
            self.pos = run.offset;
        } else if run.gaps != CONTIGUOUS {
            self.pos = self.pos.saturating_add(t.gap_before(run, i));
        }
        let size = t.sizes[i];
        let s = Sample {
            source: run.source,
            offset: self.pos,
            size,
            duration: t.durations[self.cols.step].value,
            composition_offset: t.offsets.get(i),
            sync: t.sync[i / 64] >> (i % 64) & 1 == 1,
            entry: run.entry,
        };
        if run.source != SILENCE {
            self.pos = self.pos.saturating_add(u64::from(size));
        }
        Some(s)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.cols.size_hint()
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(i: u32) -> Sample {
        Sample {
            source: i / 100,
            // Contiguous, with a jump every 10 samples.
            offset: u64::from(i) * 10 + u64::from(i / 10) * 7,
            size: 10,
            duration: if i.is_multiple_of(7) { 3 } else { 1024 },
            composition_offset: if i > 50 { (i % 5) as i32 - 2 } else { 0 },
            sync: i.is_multiple_of(9),
            entry: (i / 150) as u8,
        }
    }

    #[test]
    fn gives_back_what_was_pushed() {
        let want: Vec<Sample> = (0..400).map(sample).collect();
        let t: SampleTable = want.iter().copied().collect();
        assert_eq!(t.len(), 400);
        assert_eq!(t.iter().collect::<Vec<_>>(), want);
        for (i, s) in want.iter().enumerate() {
            assert_eq!(t.get(i), Some(*s), "sample {i}");
            assert_eq!(t.entry(i), Some(s.entry), "sample {i}");
        }
        assert_eq!(t.entry(400), None);
        assert_eq!(t.get(400), None);
        for r in [0..0, 0..1, 5..77, 63..65, 128..400, 399..400, 390..500] {
            let got: Vec<Sample> = t.range(r.clone()).collect();
            assert_eq!(got, want[r.start..r.end.min(400)], "range {r:?}");
        }
        assert_eq!(
            t.media_duration(),
            want.iter().map(|s| u64::from(s.duration)).sum::<u64>()
        );
        assert_eq!(t.byte_count(), 4000);
        assert!(!t.all_sync());
        assert!(t.has_composition_offsets());
    }

    /// Samples as a muxer that interleaves two tracks sample by sample
    /// stores one of them: gaps (another track's samples) between most,
    /// now and then a gap too large for a run, a jump back, a new source.
    fn interleaved(n: u32) -> Vec<Sample> {
        let mut end = 1u64 << 30;
        (0..n)
            .map(|i| {
                let gap = match i % 97 {
                    0 => 70_000,
                    _ => u64::from(i % 3) * 300,
                };
                let offset = if i % 113 == 5 { end - 5_000 } else { end + gap };
                let size = 100 + i % 7;
                end = offset + u64::from(size);
                Sample {
                    source: i / 250,
                    offset,
                    size,
                    duration: 1024,
                    // A B-frame pattern: a few distinct offsets, over and over.
                    composition_offset: [2048, 5120, 1024, 0][(i % 4) as usize],
                    sync: i.is_multiple_of(32),
                    entry: 0,
                }
            })
            .collect()
    }

    #[test]
    fn samples_with_gaps_between_them_share_runs() {
        let want = interleaved(1000);
        let t: SampleTable = want.iter().copied().collect();
        assert_eq!(t.iter().collect::<Vec<_>>(), want);
        for (i, s) in want.iter().enumerate() {
            assert_eq!(t.get(i), Some(*s), "sample {i}");
        }
        for r in [0..0, 1..2, 3..70, 63..200, 500..1000, 999..1000] {
            let got: Vec<Sample> = t.range(r.clone()).collect();
            assert_eq!(got, want[r.clone()], "range {r:?}");
        }
        assert!(t.runs.len() < 1000 / 8, "{} runs", t.runs.len());
        assert!(matches!(&t.offsets, Offsets::Indexed { values, .. } if values.len() == 4));
        assert_eq!(
            t.composition_offsets().collect::<Vec<_>>(),
            want.iter().map(|s| s.composition_offset).collect::<Vec<_>>()
        );
    }

    #[test]
    fn many_distinct_composition_offsets_are_kept_plain() {
        let mut want: Vec<Sample> = (0..600).map(sample).collect();
        let mut t: SampleTable = want.iter().copied().collect();
        for (i, s) in want.iter_mut().enumerate().skip(100) {
            s.composition_offset = i as i32 * 3 - 1000;
            t.set_composition_offset(i, s.composition_offset);
        }
        assert!(matches!(t.offsets, Offsets::Plain(_)));
        assert_eq!(t.iter().collect::<Vec<_>>(), want);
        t.push(Sample {
            composition_offset: 77,
            ..sample(600)
        });
        assert_eq!(t.last().map(|s| s.composition_offset), Some(77));
    }

    #[test]
    fn silence_repeats_one_frame() {
        let mut t = SampleTable::new();
        let silent = Sample {
            source: SILENCE,
            size: 6,
            duration: 1024,
            sync: true,
            ..Sample::default()
        };
        t.extend(std::iter::repeat_n(silent, 1000));
        t.push(Sample {
            source: 2,
            offset: 500,
            ..silent
        });
        assert_eq!(t.get(999), Some(silent));
        assert_eq!(t.get(1000).map(|s| (s.source, s.offset)), Some((2, 500)));
        assert!(t.all_sync());
        assert!(!t.has_composition_offsets());
        // Runs of at most RUN_MAX samples, plus the real one.
        assert_eq!(t.runs.len(), 1000usize.div_ceil(RUN_MAX) + 1);
    }

    #[test]
    fn changes_keep_every_other_sample() {
        let mut want: Vec<Sample> = (0..300).map(sample).collect();
        let mut t: SampleTable = want.iter().copied().collect();
        for (i, d) in [
            (0, 5),
            (299, 7),
            (150, 1024),
            (151, 9),
            (152, 9),
            (151, 1024),
            (70, 3),
            (7, 1024),
        ] {
            t.set_duration(i, d);
            want[i].duration = d;
            assert_eq!(t.iter().collect::<Vec<_>>(), want, "after duration {d} at {i}");
            for w in t.durations.windows(2) {
                assert_ne!(w[0].value, w[1].value, "steps stay merged");
            }
        }
        t.set_composition_offset(3, 40);
        want[3].composition_offset = 40;
        t.set_sync(4, true);
        want[4].sync = true;
        t.set_sync(0, false);
        want[0].sync = false;
        t.set_duration(300, 1);
        t.set_sync(300, true);
        t.set_composition_offset(300, 1);
        assert_eq!(t.iter().collect::<Vec<_>>(), want);
        assert_eq!(t.len(), 300);
    }

    #[test]
    fn an_offset_on_the_first_sample_is_kept() {
        let t: SampleTable = [
            Sample {
                composition_offset: 7,
                ..sample(0)
            },
            sample(1),
        ]
        .into_iter()
        .collect();
        assert_eq!(t.iter().map(|s| s.composition_offset).collect::<Vec<_>>(), [7, 0]);
    }

    #[test]
    fn a_first_offset_set_later_leaves_the_others_0() {
        let mut t: SampleTable = (0..40).map(sample).collect();
        t.set_composition_offset(0, 5);
        t.set_composition_offset(39, -5);
        let want: Vec<i32> = (0..40)
            .map(|i| [5, -5][usize::from(i == 39)] * i32::from(i % 39 == 0))
            .collect();
        assert_eq!(t.composition_offsets().collect::<Vec<_>>(), want);
    }

    #[test]
    fn offsets_stay_empty_until_one_is_not_zero() {
        let mut t: SampleTable = (0..50).map(sample).collect();
        assert_eq!(t.offsets.len(), 0);
        t.set_composition_offset(10, 0);
        assert_eq!(t.offsets.len(), 0);
        t.push(Sample {
            composition_offset: -1,
            ..sample(50)
        });
        assert_eq!(t.offsets.len(), 51);
        assert_eq!(t.get(50).map(|s| s.composition_offset), Some(-1));
    }

    #[test]
    fn equal_tables_compare_equal_whatever_their_history() {
        let a: SampleTable = (0..100).map(sample).collect();
        let mut b = a.clone();
        b.set_composition_offset(60, 99);
        assert_ne!(a, b);
        b.set_composition_offset(60, a.get(60).unwrap().composition_offset);
        assert_eq!(a, b);
    }
}
