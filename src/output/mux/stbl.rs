//! The output's sample tables (ISO/IEC 14496-12 §8.6-8.7), encoded straight
//! into the `moov` bytes: no table is first built as one value per entry.
//! Nor is the `moov` itself held: [`Out`] hands its bytes on as they are
//! made, so a long recording's tables cost nothing beyond the plan.

use crate::error::{Error, Result};
use crate::formats::mp4::SampleTable;

fn encode_err(what: &str, message: impl std::fmt::Display) -> Error {
    Error::encode(std::path::Path::new(""), what, message)
}

/// A count or a 1-based index of the output as the 32 bits MP4 tables hold
/// (the plan keeps every track under `u32::MAX` samples).
pub(super) fn count32(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| encode_err("a sample table", format!("{n} entries do not fit 32 bits")))
}

/// Bytes an [`Out`] gathers before it hands them on.
const FLUSH: usize = 64 << 10;

/// Where replayed bytes go; `false` says stop.
pub(super) type Sink<'a> = &'a mut dyn FnMut(&[u8]) -> bool;

/// Where encoded boxes go. A box's size and a table's entry count are
/// known only once its body is written, so boxes are encoded twice from
/// the same plan: [`Out::measure`] keeps no bytes but notes every size and
/// count; [`Out::replay`] then hands the bytes on as they are made, each
/// size and count taken from the notes.
pub(super) struct Out<'a> {
    /// Bytes not yet handed on.
    buf: Vec<u8>,
    /// Bytes handed on (or, measuring, let go) before `buf`.
    done: u64,
    /// Sizes and counts, in the order their fields come.
    notes: Vec<u32>,
    /// Replaying: the next note, and where the bytes go (`false`: stop).
    replay: Option<(usize, Sink<'a>)>,
    /// The sink said stop: later bytes are dropped.
    stopped: bool,
}

/// A size or count field, written before its value is known.
#[derive(Debug, Clone, Copy)]
pub(super) struct Field(usize);

impl<'a> Out<'a> {
    /// An `Out` that measures.
    pub fn measure() -> Out<'static> {
        Out {
            buf: Vec::new(),
            done: 0,
            notes: Vec::new(),
            replay: None,
            stopped: false,
        }
    }

    /// An `Out` that hands the bytes to `sink`, with the sizes and counts
    /// of an earlier [`Out::measure`] of the same boxes.
    pub fn replay(notes: Vec<u32>, sink: Sink<'a>) -> Out<'a> {
        Out {
            buf: Vec::with_capacity(FLUSH),
            done: 0,
            notes,
            replay: Some((0, sink)),
            stopped: false,
        }
    }

    /// Bytes so far.
    pub fn len(&self) -> u64 {
        self.done + self.buf.len() as u64
    }

    pub fn put(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= FLUSH {
            self.flush();
        }
    }

    pub fn put32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }

    fn flush(&mut self) {
        if let Some((_, sink)) = &mut self.replay {
            if !self.stopped && !sink(&self.buf) {
                self.stopped = true;
            }
        }
        self.done += self.buf.len() as u64;
        self.buf.clear();
    }

    /// A 32-bit field whose value [`Out::set`] gives later.
    pub fn field(&mut self) -> Field {
        match &mut self.replay {
            None => {
                self.notes.push(0);
                self.put32(0);
                Field(self.notes.len() - 1)
            }
            Some((next, _)) => {
                let at = *next;
                *next += 1;
                let v = self.notes.get(at).copied().unwrap_or(0);
                self.put32(v);
                Field(at)
            }
        }
    }

    /// Gives `field` its value.
    pub fn set(&mut self, field: Field, value: u32) -> Result<()> {
        match (&self.replay, self.notes.get_mut(field.0)) {
            (None, Some(note)) => *note = value,
            (Some(_), Some(note)) if *note == value => {}
            _ => return Err(encode_err("the moov", "a box came out different the second time")),
        }
        Ok(())
    }

    /// The notes of a measure; hands the last bytes on when replaying.
    /// `false` when the sink said stop.
    pub fn finish(mut self) -> (Vec<u32>, bool) {
        self.flush();
        (self.notes, !self.stopped)
    }
}

/// The bytes `boxes` encodes, measured and then replayed into memory.
#[cfg(test)]
pub(super) fn encode(boxes: impl Fn(&mut Out) -> Result<()>) -> Result<Vec<u8>> {
    let mut measure = Out::measure();
    boxes(&mut measure)?;
    let (notes, _) = measure.finish();
    let mut bytes = Vec::new();
    let mut sink = |b: &[u8]| {
        bytes.extend_from_slice(b);
        true
    };
    let mut out = Out::replay(notes, &mut sink);
    boxes(&mut out)?;
    out.finish();
    Ok(bytes)
}

/// A box whose body `f` writes; its size is set after.
pub(super) fn write_box(out: &mut Out, kind: &[u8; 4], f: impl FnOnce(&mut Out) -> Result<()>) -> Result<()> {
    let start = out.len();
    let size = out.field();
    out.put(kind);
    f(out)?;
    let len = u32::try_from(out.len() - start).map_err(|_| encode_err("a box", "it exceeds 4 GiB"))?;
    out.set(size, len)
}

/// A full box with an entry count: `body` writes the entries and returns
/// how many it wrote; the box size and the count are set after.
fn table(out: &mut Out, kind: &[u8; 4], version: u8, body: impl FnOnce(&mut Out) -> Result<usize>) -> Result<()> {
    write_box(out, kind, |out| {
        out.put(&[version, 0, 0, 0]);
        let count_field = out.field();
        let count = body(out).and_then(count32)?;
        out.set(count_field, count)
    })
}

/// Writes run-length entries (count, value) of `values`.
fn runs<T: PartialEq + Copy>(out: &mut Out, values: impl Iterator<Item = T>, value: impl Fn(T) -> u32) -> usize {
    let mut entries = 0;
    let mut current: Option<(u32, T)> = None;
    let mut flush = |out: &mut Out, (n, v): (u32, T)| {
        out.put32(n);
        out.put32(value(v));
        entries += 1;
    };
    for v in values {
        current = match current {
            Some((n, c)) if c == v && n < u32::MAX => Some((n + 1, c)),
            Some(run) => {
                flush(out, run);
                Some((1, v))
            }
            None => Some((1, v)),
        };
    }
    if let Some(run) = current {
        flush(out, run);
    }
    entries
}

/// `stts`: run-length coded decode durations.
pub(super) fn stts(out: &mut Out, samples: &SampleTable) -> Result<()> {
    table(out, b"stts", 0, |b| {
        let mut n = 0;
        for (count, duration) in samples.duration_runs() {
            b.put32(count32(count)?);
            b.put32(duration);
            n += 1;
        }
        Ok(n)
    })
}

/// `ctts`: run-length coded composition offsets; nothing when all are 0.
/// Version 1 (signed) only when an offset is negative.
pub(super) fn ctts(out: &mut Out, samples: &SampleTable) -> Result<()> {
    let offsets = samples.composition_offsets();
    if offsets.len() == 0 {
        return Ok(());
    }
    let version = u8::from(offsets.clone().any(|o| o < 0));
    table(out, b"ctts", version, |b| Ok(runs(b, offsets, |o| o as u32)))
}

/// `stss`: the sync samples' 1-based numbers; nothing when every sample is one.
pub(super) fn stss(out: &mut Out, samples: &SampleTable) -> Result<()> {
    if samples.all_sync() {
        return Ok(());
    }
    table(out, b"stss", 0, |b| {
        let mut n = 0;
        for i in samples.sync_samples() {
            b.put32(count32(i + 1)?);
            n += 1;
        }
        Ok(n)
    })
}

/// `stsc` from the runs of one track: (samples per chunk, description) per
/// chunk, an entry where either changes.
pub(super) fn stsc(out: &mut Out, chunks: &[(u32, u32)]) -> Result<()> {
    table(out, b"stsc", 0, |b| {
        let mut n = 0;
        let mut last = None;
        for (i, &(count, desc)) in chunks.iter().enumerate() {
            if last != Some((count, desc)) {
                b.put32(count32(i + 1)?);
                b.put32(count);
                b.put32(desc);
                n += 1;
                last = Some((count, desc));
            }
        }
        Ok(n)
    })
}

/// `stsz`: one size for all when they are equal (and not 0), else each.
pub(super) fn stsz(out: &mut Out, samples: &SampleTable) -> Result<()> {
    write_box(out, b"stsz", |out| {
        out.put(&[0, 0, 0, 0]);
        let sizes = samples.sizes();
        match sizes.first() {
            Some(&first) if first > 0 && sizes.iter().all(|&s| s == first) => {
                out.put32(first);
                out.put32(count32(sizes.len())?);
            }
            _ => {
                out.put32(0);
                out.put32(count32(sizes.len())?);
                for &s in sizes {
                    out.put32(s);
                }
            }
        }
        Ok(())
    })
}

/// `stco`, or `co64` when asked: the chunk offsets.
pub(super) fn chunk_offsets(out: &mut Out, offsets: &[u64], co64: bool) -> Result<()> {
    if co64 {
        return table(out, b"co64", 0, |b| {
            for &o in offsets {
                b.put(&o.to_be_bytes());
            }
            Ok(offsets.len())
        });
    }
    table(out, b"stco", 0, |b| {
        for &o in offsets {
            let o = u32::try_from(o).map_err(|_| encode_err("stco", "a chunk offset exceeds 32 bits without co64"))?;
            b.put32(o);
        }
        Ok(offsets.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::mp4::Sample;
    use mp4_atom::{Atom, Ctts, Decode, Stsc, Stss, Stsz, StszSamples, Stts};

    fn s(duration: u32, cts: i32, sync: bool, size: u32) -> Sample {
        Sample {
            source: 0,
            offset: 0,
            size,
            duration,
            composition_offset: cts,
            sync,
            entry: 0,
        }
    }

    fn decode<T: Atom>(bytes: &[u8]) -> T {
        let mut buf = bytes;
        let header = mp4_atom::Header::decode(&mut buf).unwrap();
        assert_eq!(header.kind, T::KIND);
        T::decode_body(&mut buf).unwrap()
    }

    /// What a reader (mp4-atom's decoder) makes of the encoded tables.
    #[test]
    fn tables_decode_to_what_was_encoded() {
        let all = [
            s(1024, 2048, true, 10),
            s(1024, -1024, false, 10),
            s(1024, -1024, false, 11),
            s(1000, 0, true, 12),
        ];
        let samples: SampleTable = all.into_iter().collect();
        let out = encode(|o| stts(o, &samples)).unwrap();
        let t: Stts = decode(&out);
        assert_eq!(
            t.entries
                .iter()
                .map(|e| (e.sample_count, e.sample_delta))
                .collect::<Vec<_>>(),
            [(3, 1024), (1, 1000)]
        );
        let out = encode(|o| ctts(o, &samples)).unwrap();
        assert_eq!(out[8], 1, "negative offsets need version 1");
        let c: Ctts = decode(&out);
        assert_eq!(
            c.entries
                .iter()
                .map(|e| (e.sample_count, e.sample_offset))
                .collect::<Vec<_>>(),
            [(1, 2048), (2, -1024), (1, 0)]
        );
        let out = encode(|o| stss(o, &samples)).unwrap();
        assert_eq!(decode::<Stss>(&out).entries, [1, 4]);
        let out = encode(|o| stsz(o, &samples)).unwrap();
        assert_eq!(
            decode::<Stsz>(&out).samples,
            StszSamples::Different {
                sizes: vec![10, 10, 11, 12]
            }
        );
        let two: SampleTable = all[..2].iter().copied().collect();
        let out = encode(|o| stsz(o, &two)).unwrap();
        assert_eq!(
            decode::<Stsz>(&out).samples,
            StszSamples::Identical { count: 2, size: 10 }
        );
        let out = encode(|o| stsc(o, &[(3, 1), (3, 1), (2, 1), (2, 2)])).unwrap();
        let c: Stsc = decode(&out);
        assert_eq!(
            c.entries
                .iter()
                .map(|e| (e.first_chunk, e.samples_per_chunk, e.sample_description_index))
                .collect::<Vec<_>>(),
            [(1, 3, 1), (3, 2, 1), (4, 2, 2)]
        );
    }

    #[test]
    fn tables_with_nothing_to_say_are_left_out() {
        let all_sync_no_offsets: SampleTable = [s(1024, 0, true, 5), s(1024, 0, true, 6)].into_iter().collect();
        let out = encode(|o| {
            ctts(o, &all_sync_no_offsets)?;
            stss(o, &all_sync_no_offsets)
        })
        .unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn a_replay_hands_on_the_measured_bytes_in_pieces() {
        let many: SampleTable = (0..40_000)
            .map(|i| s(1024, i % 3, i % 30 == 0, 100 + i as u32 % 9))
            .collect();
        let boxes = |o: &mut Out| {
            write_box(o, b"stbl", |o| {
                stts(o, &many)?;
                ctts(o, &many)?;
                stss(o, &many)?;
                stsz(o, &many)
            })
        };
        let mut measure = Out::measure();
        boxes(&mut measure).unwrap();
        let size = measure.len();
        let (notes, _) = measure.finish();
        let mut pieces = Vec::new();
        let mut sink = |b: &[u8]| {
            pieces.push(b.to_vec());
            true
        };
        let mut out = Out::replay(notes.clone(), &mut sink);
        boxes(&mut out).unwrap();
        assert!(out.finish().1);
        assert!(pieces.len() > 1 && pieces.iter().all(|p| p.len() <= FLUSH + 8));
        let bytes = pieces.concat();
        assert_eq!(bytes.len() as u64, size);
        assert_eq!(&bytes[..4], &(size as u32).to_be_bytes());
        let stsz_box = decode::<Stsz>(&bytes[bytes.len() - (20 + 4 * 40_000)..]);
        assert!(matches!(stsz_box.samples, StszSamples::Different { ref sizes } if sizes.len() == 40_000));
        // A sink that stops: the rest is dropped, and the caller is told.
        let mut sink = |_: &[u8]| false;
        let mut out = Out::replay(notes, &mut sink);
        boxes(&mut out).unwrap();
        assert!(!out.finish().1);
    }
}
