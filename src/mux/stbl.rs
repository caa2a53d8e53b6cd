//! The output's sample tables (ISO/IEC 14496-12 §8.6-8.7), encoded straight
//! into the `moov` bytes: no table is first built as one value per entry,
//! so a long recording's tables cost their encoded size and nothing more.

use crate::error::{Error, Result};
use crate::media::SampleTable;

fn encode_err(what: &str, message: impl std::fmt::Display) -> Error {
    Error::encode(std::path::Path::new(""), what, message)
}

/// A count or a 1-based index of the output as the 32 bits MP4 tables hold
/// (the plan keeps every track under `u32::MAX` samples).
pub(super) fn count32(n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| encode_err("a sample table", format!("{n} entries do not fit 32 bits")))
}

fn put32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// A full box with an entry count: `body` appends the entries and returns
/// how many it wrote; the box size and the count are patched in after.
fn table(
    out: &mut Vec<u8>,
    kind: &[u8; 4],
    version: u8,
    body: impl FnOnce(&mut Vec<u8>) -> Result<usize>,
) -> Result<()> {
    let start = out.len();
    put32(out, 0);
    out.extend_from_slice(kind);
    out.extend_from_slice(&[version, 0, 0, 0]);
    let count_at = out.len();
    put32(out, 0);
    // On an error the box is taken back: `out` holds whole boxes only.
    let count = match body(out).and_then(count32) {
        Ok(n) => n,
        Err(e) => {
            out.truncate(start);
            return Err(e);
        }
    };
    out[count_at..count_at + 4].copy_from_slice(&count.to_be_bytes());
    let size = u32::try_from(out.len() - start).map_err(|_| encode_err("a sample table", "it exceeds 4 GiB"))?;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// Appends run-length entries (count, value) of `values`.
fn runs<T: PartialEq + Copy>(out: &mut Vec<u8>, values: impl Iterator<Item = T>, value: impl Fn(T) -> u32) -> usize {
    let mut entries = 0;
    let mut current: Option<(u32, T)> = None;
    let mut flush = |out: &mut Vec<u8>, (n, v): (u32, T)| {
        put32(out, n);
        put32(out, value(v));
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
pub(super) fn stts(out: &mut Vec<u8>, samples: &SampleTable) -> Result<()> {
    table(out, b"stts", 0, |b| {
        let mut n = 0;
        for (count, duration) in samples.duration_runs() {
            put32(b, count32(count)?);
            put32(b, duration);
            n += 1;
        }
        Ok(n)
    })
}

/// `ctts`: run-length coded composition offsets; nothing when all are 0.
/// Version 1 (signed) only when an offset is negative.
pub(super) fn ctts(out: &mut Vec<u8>, samples: &SampleTable) -> Result<()> {
    let offsets = samples.composition_offsets();
    if offsets.is_empty() {
        return Ok(());
    }
    let version = u8::from(offsets.iter().any(|&o| o < 0));
    table(out, b"ctts", version, |b| {
        Ok(runs(b, offsets.iter().copied(), |o| o as u32))
    })
}

/// `stss`: the sync samples' 1-based numbers; nothing when every sample is one.
pub(super) fn stss(out: &mut Vec<u8>, samples: &SampleTable) -> Result<()> {
    if samples.all_sync() {
        return Ok(());
    }
    table(out, b"stss", 0, |b| {
        let mut n = 0;
        for i in samples.sync_samples() {
            put32(b, count32(i + 1)?);
            n += 1;
        }
        Ok(n)
    })
}

/// `stsc` from the runs of one track: (samples per chunk, description) per
/// chunk, an entry where either changes.
pub(super) fn stsc(out: &mut Vec<u8>, chunks: &[(u32, u32)]) -> Result<()> {
    table(out, b"stsc", 0, |b| {
        let mut n = 0;
        let mut last = None;
        for (i, &(count, desc)) in chunks.iter().enumerate() {
            if last != Some((count, desc)) {
                put32(b, count32(i + 1)?);
                put32(b, count);
                put32(b, desc);
                n += 1;
                last = Some((count, desc));
            }
        }
        Ok(n)
    })
}

/// `stsz`: one size for all when they are equal (and not 0), else each.
pub(super) fn stsz(out: &mut Vec<u8>, samples: &SampleTable) -> Result<()> {
    let start = out.len();
    put32(out, 0);
    out.extend_from_slice(b"stsz");
    out.extend_from_slice(&[0, 0, 0, 0]);
    let sizes = samples.sizes();
    match sizes.first() {
        Some(&first) if first > 0 && sizes.iter().all(|&s| s == first) => {
            put32(out, first);
            put32(out, count32(sizes.len())?);
        }
        _ => {
            put32(out, 0);
            put32(out, count32(sizes.len())?);
            for &s in sizes {
                put32(out, s);
            }
        }
    }
    let size = u32::try_from(out.len() - start).map_err(|_| encode_err("stsz", "it exceeds 4 GiB"))?;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// `stco`, or `co64` when asked: the chunk offsets.
pub(super) fn chunk_offsets(out: &mut Vec<u8>, offsets: &[u64], co64: bool) -> Result<()> {
    if co64 {
        return table(out, b"co64", 0, |b| {
            for &o in offsets {
                b.extend_from_slice(&o.to_be_bytes());
            }
            Ok(offsets.len())
        });
    }
    table(out, b"stco", 0, |b| {
        for &o in offsets {
            let o = u32::try_from(o).map_err(|_| encode_err("stco", "a chunk offset exceeds 32 bits without co64"))?;
            put32(b, o);
        }
        Ok(offsets.len())
    })
}

/// An upper bound of the tables' encoded size for `samples` in `chunks`
/// chunks, to reserve the `moov` once (untouched capacity costs no memory).
pub(super) fn bound(samples: usize, chunks: usize) -> usize {
    // stts, ctts: 8 per sample at worst; stss, stsz: 4; stsc: 12 and co64: 8 per chunk.
    samples
        .saturating_mul(24)
        .saturating_add(chunks.saturating_mul(20))
        .saturating_add(256)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::Sample;
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
        let mut out = Vec::new();
        stts(&mut out, &samples).unwrap();
        let t: Stts = decode(&out);
        assert_eq!(
            t.entries
                .iter()
                .map(|e| (e.sample_count, e.sample_delta))
                .collect::<Vec<_>>(),
            [(3, 1024), (1, 1000)]
        );
        out.clear();
        ctts(&mut out, &samples).unwrap();
        assert_eq!(out[8], 1, "negative offsets need version 1");
        let c: Ctts = decode(&out);
        assert_eq!(
            c.entries
                .iter()
                .map(|e| (e.sample_count, e.sample_offset))
                .collect::<Vec<_>>(),
            [(1, 2048), (2, -1024), (1, 0)]
        );
        out.clear();
        stss(&mut out, &samples).unwrap();
        assert_eq!(decode::<Stss>(&out).entries, [1, 4]);
        out.clear();
        stsz(&mut out, &samples).unwrap();
        assert_eq!(
            decode::<Stsz>(&out).samples,
            StszSamples::Different {
                sizes: vec![10, 10, 11, 12]
            }
        );
        out.clear();
        stsz(&mut out, &all[..2].iter().copied().collect()).unwrap();
        assert_eq!(
            decode::<Stsz>(&out).samples,
            StszSamples::Identical { count: 2, size: 10 }
        );
        out.clear();
        stsc(&mut out, &[(3, 1), (3, 1), (2, 1), (2, 2)]).unwrap();
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
        let mut out = Vec::new();
        ctts(&mut out, &all_sync_no_offsets).unwrap();
        stss(&mut out, &all_sync_no_offsets).unwrap();
        assert!(out.is_empty());
    }
}
