//! Deep checks (`--deep`): what header checks cannot see.
//!
//! * Audio: every AAC frame is decoded with symphonia, fed from our own
//!   demuxer (the sample table from [`probe`](crate::probe)) with the
//!   AudioSpecificConfig from `esds`; no second MP4 parser is involved. The
//!   decoded audio gives a per-second level (RMS in dBFS), decode errors,
//!   silence and clipping.
//! * Video, without a video decoder: each sample's NAL units must fill it
//!   exactly (length prefixes per the `avcC` length size), NAL headers must
//!   be valid, every slice's picture parameter set must be known, the chunk
//!   must start with a sync sample, and long stretches without one are noted.
//!
//! The thresholds are the public constants below.

use crate::storage::Input;
use crate::storage::Storage;

use symphonia::core::codecs::audio::well_known::CODEC_ID_AAC;
use symphonia::core::codecs::audio::{AudioCodecParameters, AudioDecoder, AudioDecoderOptions};
use symphonia::core::packet::PacketRef;
use symphonia::core::units::{Duration, Timestamp};
use symphonia::default::codecs::AacDecoder;

use h264_reader::rbsp::{BitRead, BitReader};

use crate::finding::{Code, Finding};
use crate::formats::mp4::{AvcConfig, Codec, Movie, Sample, SampleTable, Track};
use crate::limits::{Limit, Limits};

/// A second whose RMS level is below this (dBFS) counts as silent.
pub const SILENCE_DBFS: f64 = -60.0;
/// A chunk (or recording) is reported silent when at least this share of
/// its seconds is silent.
pub const SILENT_SHARE: f64 = 0.95;
/// A decoded sample at or above this magnitude (full scale is 1.0) is clipped.
pub const CLIP_LEVEL: f32 = 0.999;
/// A chunk is reported clipping when more than this share of its samples clip.
pub const CLIPPING_SHARE: f64 = 0.001;
/// Longest stretch without a sync sample before it is reported, seconds.
pub const MAX_SYNC_GAP_SECONDS: f64 = 10.0;
/// Level reported for a second of digital silence (the log of zero is unbounded).
pub const FLOOR_DBFS: f64 = -120.0;

/// What the deep audio check found in one chunk.
#[derive(Debug, Clone, Default)]
pub struct AudioAnalysis {
    /// RMS level of each second of presented audio, dBFS (rounded to 0.1 dB).
    pub levels_dbfs: Vec<f64>,
    /// Frames that did not decode: (presented time in seconds, what failed).
    pub decode_errors: Vec<(f64, String)>,
    /// Samples at or above [`CLIP_LEVEL`].
    pub clipped_samples: u64,
    /// Samples decoded within the presentation.
    pub samples: u64,
    /// Presented time of the first clipped sample, seconds.
    pub first_clip: Option<f64>,
}

impl AudioAnalysis {
    /// Share of seconds below [`SILENCE_DBFS`].
    pub fn silent_share(&self) -> f64 {
        if self.levels_dbfs.is_empty() {
            return 0.0;
        }
        self.levels_dbfs.iter().filter(|&&l| l < SILENCE_DBFS).count() as f64 / self.levels_dbfs.len() as f64
    }
}

/// Reads the bytes of consecutive samples, coalescing those that are
/// contiguous in the file into one read.
struct SampleReader<'a> {
    file: &'a Input,
    file_len: u64,
    buf: Vec<u8>,
    buf_start: u64,
    /// [`Limits::max_sample_bytes`].
    max_sample: u64,
}

impl<'a> SampleReader<'a> {
    fn new(file: &'a Input, limits: &Limits) -> std::io::Result<Self> {
        Ok(SampleReader {
            file,
            file_len: file.len()?,
            buf: Vec::new(),
            buf_start: 0,
            max_sample: limits.get(Limit::SampleBytes),
        })
    }
}

impl SampleReader<'_> {
    /// The bytes of sample `i` (`s`) of `samples`.
    fn bytes(&mut self, samples: &SampleTable, i: usize, s: Sample) -> std::io::Result<&[u8]> {
        // Never allocate from an unchecked size: a sample is read only when it
        // is of a plausible size and lies inside the file.
        let end = s.offset.saturating_add(u64::from(s.size));
        if u64::from(s.size) > self.max_sample || end > self.file_len {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("sample {i} of {} bytes at {} does not fit the file", s.size, s.offset),
            ));
        }
        let too_big = |_| std::io::Error::new(std::io::ErrorKind::InvalidData, "sample too large for memory");
        let cached_end = self
            .buf_start
            .saturating_add(u64::try_from(self.buf.len()).map_err(too_big)?);
        if s.offset < self.buf_start || end > cached_end {
            // Read this sample and the following contiguous ones, up to 1 MiB.
            let mut run_end = end;
            for n in samples.range(i + 1..samples.len()) {
                let n_end = run_end.saturating_add(u64::from(n.size));
                if n.offset != run_end || n_end - s.offset > 1 << 20 || n_end > self.file_len {
                    break;
                }
                run_end = n_end;
            }
            // run_end - s.offset is at most 1 MiB or one checked sample.
            self.buf
                .resize(usize::try_from(run_end - s.offset).map_err(too_big)?, 0);
            self.file.read_exact_at(&mut self.buf, s.offset)?;
            self.buf_start = s.offset;
        }
        let from = usize::try_from(s.offset - self.buf_start).map_err(too_big)?;
        let to = from.saturating_add(usize::try_from(s.size).map_err(too_big)?);
        self.buf
            .get(from..to)
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "sample outside its read"))
    }
}

/// RMS level in dBFS of a mean square, rounded to 0.1 dB, [`FLOOR_DBFS`] at the least.
pub(crate) fn to_dbfs(mean_square: f64) -> f64 {
    if mean_square <= 0.0 {
        return FLOOR_DBFS;
    }
    let db = 10.0 * mean_square.log10();
    ((db.max(FLOOR_DBFS)) * 10.0).round() / 10.0
}

/// Why the deep audio check could not decode a chunk at all (frames that
/// do not decode are counted in [`AudioAnalysis::decode_errors`] instead).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnalysisError {
    /// The chunk has no audio track.
    #[error("no audio track")]
    NoAudioTrack,
    /// The MP4's audio is not AAC, the one codec decoded there.
    #[error("the audio is not AAC")]
    NotAac,
    /// A WAV's samples are not integer PCM of 8, 16, 24 or 32 bits.
    #[error("format tag 0x{format_tag:04X} with {bits_per_sample} bits is not integer PCM")]
    NotIntegerPcm {
        /// The `fmt ` chunk's format tag.
        format_tag: u16,
        /// Bits per sample.
        bits_per_sample: u16,
    },
    /// The decoder refuses the stream's configuration.
    #[error("the {codec} decoder refuses this configuration: {message}")]
    Decoder {
        /// `AAC` or `MP3`.
        codec: &'static str,
        /// The decoder's words.
        message: String,
    },
    /// The file could not be read, or a frame lies outside it: the
    /// library's error, naming the file.
    #[error(transparent)]
    File(#[from] crate::Error),
}

/// Decodes every AAC frame of the chunk's audio track.
pub fn analyse_audio(storage: &Storage, media: &Movie, limits: &Limits) -> Result<AudioAnalysis, AnalysisError> {
    let track = media.audio().ok_or(AnalysisError::NoAudioTrack)?;
    let Some(Codec::Aac(aac)) = track.codec() else {
        return Err(AnalysisError::NotAac);
    };
    let mut params = AudioCodecParameters::new();
    params
        .for_codec(CODEC_ID_AAC)
        .with_extra_data(aac.asc.clone().into_boxed_slice());
    let mut decoder =
        AacDecoder::try_new(&params, &AudioDecoderOptions::default()).map_err(|e| AnalysisError::Decoder {
            codec: "AAC",
            message: e.to_string(),
        })?;
    let named = |e: std::io::Error| AnalysisError::File(crate::Error::io(&media.path, e));
    let file = storage.open_scattered(&media.path).map_err(named)?;
    let mut reader = SampleReader::new(&file, limits).map_err(named)?;
    let p = track.presentation(media.movie_timescale);
    let rate = f64::from(aac.sample_rate);
    // Decoded samples are counted in the codec's rate; media time in the track's.
    let to_samples = |ticks: u64| (ticks as f64 * rate / f64::from(track.timescale)).round() as u64;
    let (start, end) = (to_samples(p.start), to_samples(p.start.saturating_add(p.length)));
    let channels = u64::from(aac.channels.max(1));
    let mut meter = Meter::new(aac.sample_rate, usize::from(aac.channels), start, end);
    let mut pcm: Vec<f32> = Vec::new();
    let mut ticks = 0u64;
    for (i, sample) in track.samples.iter().enumerate() {
        // Each packet's samples start at its own decode time, whatever the
        // decoder's output delay.
        let first = to_samples(ticks);
        ticks += u64::from(sample.duration);
        let data = reader.bytes(&track.samples, i, sample).map_err(named)?;
        let packet = PacketRef::new(
            0,
            Timestamp::new(i64::try_from(first).unwrap_or(i64::MAX)),
            Duration::new(1024),
            data,
        );
        match decoder.decode_ref(&packet) {
            Ok(buf) => buf.copy_to_vec_interleaved(&mut pcm),
            Err(e) => {
                meter.decode_error(first, e.to_string());
                decoder.reset();
                pcm.clear();
                pcm.resize((aac.frame_length as u64 * channels) as usize, 0.0);
            }
        }
        meter.add(first, &pcm);
    }
    Ok(meter.finish())
}

/// What the deep checks measure of decoded audio: the RMS level of each
/// second of presented audio (samples `start..end`, counted from the
/// chunk's first decoded sample), clipping, decode errors. One for AAC,
/// MP3 and PCM alike.
pub(crate) struct Meter {
    out: AudioAnalysis,
    rate: f64,
    per_second: u64,
    channels: usize,
    start: u64,
    end: u64,
    second: u64,
    sum: f64,
    n: u64,
}

impl Meter {
    /// A meter of `channels` interleaved channels at `rate` Hz presenting
    /// samples `start..end`.
    pub(crate) fn new(rate: u32, channels: usize, start: u64, end: u64) -> Self {
        Meter {
            out: AudioAnalysis::default(),
            rate: f64::from(rate.max(1)),
            per_second: u64::from(rate.max(1)),
            channels: channels.max(1),
            start,
            end,
            second: 0,
            sum: 0.0,
            n: 0,
        }
    }

    /// Decoded samples (interleaved, full scale 1.0) from sample `first` on.
    pub(crate) fn add(&mut self, first: u64, pcm: &[f32]) {
        for (pos, frame) in (first..).zip(pcm.chunks(self.channels)) {
            if pos < self.start || pos >= self.end {
                continue;
            }
            let s = (pos - self.start) / self.per_second;
            if s != self.second && self.n > 0 {
                self.out.levels_dbfs.push(to_dbfs(self.sum / self.n as f64));
                (self.sum, self.n) = (0.0, 0);
            }
            self.second = s;
            for &x in frame {
                self.sum += f64::from(x) * f64::from(x);
                if x.abs() >= CLIP_LEVEL {
                    self.out.clipped_samples += 1;
                    self.out.first_clip.get_or_insert((pos - self.start) as f64 / self.rate);
                }
            }
            self.n += self.channels as u64;
            self.out.samples += 1;
        }
    }

    /// A packet from sample `first` on that did not decode, and why.
    pub(crate) fn decode_error(&mut self, first: u64, why: String) {
        let at = first.saturating_sub(self.start) as f64 / self.rate;
        self.out.decode_errors.push((at, why));
    }

    /// The analysis, the last (partial) second included.
    pub(crate) fn finish(mut self) -> AudioAnalysis {
        if self.n > 0 {
            self.out.levels_dbfs.push(to_dbfs(self.sum / self.n as f64));
        }
        self.out
    }
}

/// Findings of the deep audio check of one chunk.
pub fn audio_findings(a: &AudioAnalysis, index: Option<u32>) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some((first, why)) = a.decode_errors.first() {
        out.push(Finding::error(
            Code::AudioDecodeError,
            index,
            format!(
                "{} AAC frame(s) do not decode; the first at {first:.3} s of the chunk: {why}",
                a.decode_errors.len()
            ),
        ));
    }
    let share = a.silent_share();
    if share >= SILENT_SHARE {
        out.push(Finding::warning(
            Code::AudioSilent,
            index,
            format!(
                "{:.0}% of the chunk's {} s is below {SILENCE_DBFS} dBFS: no audible audio",
                share * 100.0,
                a.levels_dbfs.len()
            ),
        ));
    }
    if a.samples > 0 && a.clipped_samples as f64 / a.samples as f64 > CLIPPING_SHARE {
        out.push(Finding::warning(
            Code::AudioClipping,
            index,
            format!(
                "{:.2}% of the samples clip (at or above {CLIP_LEVEL} of full scale), from {:.3} s",
                a.clipped_samples as f64 * 100.0 / a.samples as f64,
                a.first_clip.unwrap_or(0.0)
            ),
        ));
    }
    out
}

/// The `n`th unsigned Exp-Golomb field (ISO/IEC 14496-10 §9.1) at the
/// start of a NAL unit's payload, read by `h264-reader` from the RBSP.
fn nth_ue(nal: &[u8], n: usize) -> Option<u32> {
    let rbsp = h264_reader::rbsp::decode_nal(nal).ok()?;
    let mut bits = BitReader::new(&rbsp[..]);
    let mut value = None;
    for _ in 0..n {
        value = Some(bits.read_ue("field").ok()?);
    }
    value
}

/// The id of a PPS NAL unit (its first field).
fn pps_id(nal: &[u8]) -> Option<u32> {
    nth_ue(nal, 1)
}

/// Checks the H.264 bitstream structure of a chunk's video track.
pub fn check_video(storage: &Storage, media: &Movie, index: Option<u32>, limits: &Limits) -> Vec<Finding> {
    let Some(track) = media.video() else { return Vec::new() };
    let Some(Codec::Avc(avc)) = track.codec() else {
        return Vec::new();
    };
    let mut problems: Vec<String> = Vec::new();
    let mut note = |p: String| {
        if problems.len() < 5 {
            problems.push(p);
        }
    };
    if track.samples.first().is_some_and(|s| !s.sync) {
        note("the chunk does not start with a sync sample (it cannot be decoded on its own)".into());
    }
    match storage.open_scattered(&media.path) {
        Ok(file) => walk_nals(track, avc, &file, limits, &mut note),
        Err(e) => note(format!("{}: {e}", media.path.display())),
    }
    let mut out = Vec::new();
    if !problems.is_empty() {
        out.push(Finding::error(Code::VideoBitstream, index, problems.join("; ")));
    }
    if let Some((at, gap)) = longest_sync_gap(track) {
        if gap > MAX_SYNC_GAP_SECONDS {
            out.push(Finding::warning(
                Code::VideoBitstream,
                index,
                format!("no sync sample for {gap:.1} s from {at:.3} s: seeking there shows nothing until the next one"),
            ));
        }
    }
    out
}

fn walk_nals(track: &Track, avc: &AvcConfig, file: &Input, limits: &Limits, note: &mut impl FnMut(String)) {
    let len_size = usize::from(avc.nal_length_size);
    if !matches!(len_size, 1 | 2 | 4) {
        note(format!("avcC NAL length size {len_size} is not 1, 2 or 4"));
        return;
    }
    let mut known_pps: Vec<u32> = avc.pps.iter().filter_map(|p| pps_id(p)).collect();
    let mut reader = match SampleReader::new(file, limits) {
        Ok(r) => r,
        Err(e) => return note(format!("the file cannot be read: {e}")),
    };
    let ts = f64::from(track.timescale.max(1));
    let mut t = 0u64;
    for (i, sample) in track.samples.iter().enumerate() {
        let at = t as f64 / ts;
        t += u64::from(sample.duration);
        let data = match reader.bytes(&track.samples, i, sample) {
            Ok(d) => d,
            Err(e) => {
                note(format!("sample {i} at {at:.3} s cannot be read: {e}"));
                return;
            }
        };
        let mut pos = 0usize;
        while pos < data.len() {
            let Some(prefix) = data.get(pos..pos + len_size) else {
                note(format!(
                    "sample {i} at {at:.3} s: {} stray bytes after its last NAL unit",
                    data.len() - pos
                ));
                break;
            };
            let n = prefix.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            pos += len_size;
            let Some(nal) = data.get(pos..pos + n).filter(|_| n > 0) else {
                note(format!(
                    "sample {i} at {at:.3} s: NAL length {n} runs past the sample's {} bytes",
                    data.len()
                ));
                break;
            };
            pos += n;
            let header = nal[0];
            let kind = header & 0x1f;
            if header & 0x80 != 0 {
                note(format!("sample {i} at {at:.3} s: NAL unit with forbidden_zero_bit set"));
            }
            match kind {
                1 | 5 => {
                    // slice_header: first_mb_in_slice, slice_type, pic_parameter_set_id
                    match nth_ue(&nal[..nal.len().min(64)], 3) {
                        Some(id) if known_pps.contains(&id) => {}
                        Some(id) => note(format!("sample {i} at {at:.3} s: slice refers to unknown PPS {id}")),
                        None => note(format!("sample {i} at {at:.3} s: slice header does not parse")),
                    }
                }
                8 => known_pps.extend(pps_id(nal)),
                0 | 24..=31 => note(format!("sample {i} at {at:.3} s: NAL unit of reserved type {kind}")),
                _ => {}
            }
        }
    }
}

/// The longest presented stretch without a sync sample: (start, seconds).
fn longest_sync_gap(track: &Track) -> Option<(f64, f64)> {
    let ts = f64::from(track.timescale.max(1));
    let mut t = 0u64;
    let mut last_sync = 0u64;
    let mut best: Option<(f64, f64)> = None;
    for s in &track.samples {
        if s.sync {
            let gap = (t - last_sync) as f64 / ts;
            if best.is_none_or(|b| gap > b.1) {
                best = Some((last_sync as f64 / ts, gap));
            }
            last_sync = t;
        }
        t += u64::from(s.duration);
    }
    let gap = (t - last_sync) as f64 / ts;
    if best.is_none_or(|b| gap > b.1) {
        best = Some((last_sync as f64 / ts, gap));
    }
    best
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::validate::tests::{media, Scenario};

    /// One scenario per finding of the deep checks.
    pub(crate) fn scenarios() -> Vec<Scenario> {
        let analysis = |edit: fn(&mut AudioAnalysis)| {
            let mut a = AudioAnalysis {
                levels_dbfs: vec![-20.0; 4],
                samples: 64_000,
                ..AudioAnalysis::default()
            };
            edit(&mut a);
            audio_findings(&a, Some(1))
        };
        let mut not_sync = media(1);
        not_sync.tracks[0].samples.set_sync(0, false);
        vec![
            (
                "a frame that does not decode",
                Code::AudioDecodeError,
                analysis(|a| a.decode_errors.push((0.576, "invalid channel element".into()))),
            ),
            (
                "silence",
                Code::AudioSilent,
                analysis(|a| a.levels_dbfs = vec![-90.0; 4]),
            ),
            (
                "clipping",
                Code::AudioClipping,
                analysis(|a| {
                    a.clipped_samples = 1000;
                    a.first_clip = Some(0.25);
                }),
            ),
            (
                "no sync sample first",
                Code::VideoBitstream,
                check_video(&crate::Storage::local(), &not_sync, Some(1), &Limits::default()),
            ),
        ]
    }

    #[test]
    fn an_intact_chunk_gives_no_deep_finding() {
        let m = media(1);
        assert_eq!(
            check_video(&crate::Storage::local(), &m, Some(1), &Limits::default()),
            Vec::new()
        );
        let a = analyse_audio(&crate::Storage::local(), &m, &Limits::default()).unwrap();
        assert_eq!(audio_findings(&a, Some(1)), Vec::new());
        assert_eq!(a.levels_dbfs.len(), 3, "2.5 s of audio: three seconds started");
    }

    #[test]
    fn fields_of_a_nal_unit() {
        // A header byte, then 1 -> 0, 010 -> 1, 011 -> 2, 00100 -> 3.
        let nal = [0x68, 0b1010_0110, 0b0100_0000];
        let got: Vec<Option<u32>> = (1..=4).map(|n| nth_ue(&nal, n)).collect();
        assert_eq!(got, [Some(0), Some(1), Some(2), Some(3)]);
        assert_eq!(pps_id(&nal), Some(0));
        assert_eq!(nth_ue(&[0x68, 0, 0, 0, 0, 0], 1), None, "more than 31 leading zeros");
        assert_eq!(nth_ue(&[0x68], 1), None, "no payload");
    }

    #[test]
    fn levels() {
        assert_eq!(to_dbfs(0.0), FLOOR_DBFS);
        assert_eq!(to_dbfs(1.0), 0.0);
        assert_eq!(to_dbfs(0.5 * 0.5), -6.0);
    }
}
