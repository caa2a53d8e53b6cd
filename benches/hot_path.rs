//! The hot path, on inputs synthesised from the committed fixtures (a real
//! chunk's samples repeated to length): no encoder and no large committed
//! files needed. Run `cargo bench`; CI runs it in a short mode.

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use recstitch::{Archive, Limits, ScanOptions, StitchOptions, Stitcher, ValidateOptions};

fn fixture_chunk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/cases/good/3c57992b-07bf-4387-a8bc-a13561e8650a/0-eus-d11-293c5f93ea87298458e47ef52dda3bb9.mp4")
}

fn work_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A chunk of `seconds` made from the fixture.
fn long_chunk(seconds: u32) -> PathBuf {
    let path = work_dir().join(format!("chunk-{seconds}s.mp4"));
    if !path.exists() {
        recstitch::output::synth::repeat_chunk(&fixture_chunk(), f64::from(seconds), &path).unwrap();
    }
    path
}

/// An archive holding one recording of `n` chunks of `seconds` each.
fn long_recording(n: usize, seconds: u32) -> PathBuf {
    let dir = work_dir().join(format!("recording-{n}x{seconds}s"));
    if dir.join(".complete").exists() {
        return dir;
    }
    std::fs::create_dir_all(&dir).unwrap();
    let chunk = long_chunk(seconds);
    let ms = recstitch::probe(&chunk, &Limits::default())
        .unwrap()
        .duration_ms()
        .round() as u64;
    for i in 0..n {
        let doc = format!("0-bench-{i}");
        std::fs::copy(&chunk, dir.join(format!("{doc}.mp4"))).unwrap();
        let start = 1_717_236_000_000u64 + i as u64 * ms;
        let secs = start / 1000;
        let stamp = format!(
            "2024-06-01T{:02}:{:02}:{:02}.{:03}Z",
            secs / 3600 % 24,
            secs / 60 % 60,
            secs % 60,
            start % 1000
        );
        let json = format!(
            r#"{{"resourceId":"r","callId":"bench-call","chunkDocumentId":"{doc}","chunkIndex":{i},"chunkStartTime":"{stamp}","chunkDuration":{ms},"recordingInfo":{{"contentType":"mixed","channelType":"audioVideo","format":"mp4","audioConfiguration":{{"sampleRate":16000,"channels":1}},"videoConfiguration":{{"longerSideLength":1920,"shorterSideLength":1080,"framerate":8}}}}}}"#
        );
        std::fs::write(dir.join(format!("{doc}.json")), json).unwrap();
    }
    std::fs::write(dir.join(".complete"), "").unwrap();
    dir
}

fn probe_one_hour_chunk(c: &mut Criterion) {
    let chunk = long_chunk(3600);
    let limits = Limits::default();
    let samples: usize = recstitch::probe(&chunk, &limits)
        .unwrap()
        .tracks
        .iter()
        .map(|t| t.samples.len())
        .sum();
    let mut g = c.benchmark_group("probe");
    g.throughput(Throughput::Elements(samples as u64));
    g.bench_function("one_hour_chunk", |b| {
        b.iter(|| recstitch::probe(&chunk, &limits).unwrap())
    });
    g.finish();
}

fn validate_recording(c: &mut Criterion) {
    let archive = Archive::scan(&long_recording(3, 1200), &ScanOptions::default()).unwrap();
    let rec = &archive.recordings[0];
    c.bench_function("validate/three_20min_chunks", |b| {
        b.iter(|| rec.validate(&ValidateOptions::default()))
    });
}

fn build_moov(c: &mut Criterion) {
    let archive = Archive::scan(&long_recording(3, 1200), &ScanOptions::default()).unwrap();
    let checked = archive.recordings[0].validate(&ValidateOptions::default());
    let media: Vec<&recstitch::Movie> = checked.checks.iter().map(|c| c.media.as_ref().unwrap()).collect();
    c.bench_function("moov/three_20min_chunks", |b| {
        b.iter(|| recstitch::output::synth::header_of(&media).unwrap())
    });
}

/// The table builder at the length of a 20-hour recording: twenty 1-hour
/// chunks (85,200 samples each), 1.7 million samples, planned and encoded
/// into the stitched `moov` (no file is written).
fn build_moov_twenty_hours(c: &mut Criterion) {
    let hour = recstitch::probe(&long_chunk(3600), &Limits::default()).unwrap();
    let media = vec![&hour; 20];
    let samples: usize = media.iter().flat_map(|m| &m.tracks).map(|t| t.samples.len()).sum();
    assert!(samples > 1_700_000, "{samples} samples");
    let mut g = c.benchmark_group("moov");
    g.throughput(Throughput::Elements(samples as u64));
    g.sample_size(10);
    g.bench_function("twenty_hours_1.7M_samples", |b| {
        b.iter(|| recstitch::output::synth::header_of(&media).unwrap())
    });
    g.finish();
}

fn stitch_one_hour(c: &mut Criterion) {
    let archive = Archive::scan(&long_recording(3, 1200), &ScanOptions::default()).unwrap();
    let checked = archive.recordings[0].validate(&ValidateOptions::default());
    let bytes: u64 = checked.checks.iter().map(|c| c.media.as_ref().unwrap().file_size).sum();
    let out = work_dir().join("out");
    let stitcher = Stitcher::new(StitchOptions::default());
    let mut g = c.benchmark_group("stitch");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(10);
    g.bench_function("one_hour_recording", |b| {
        b.iter(|| stitcher.stitch(&checked, &out).unwrap())
    });
    g.finish();
}

fn decode_audio(c: &mut Criterion) {
    let media = recstitch::probe(&long_chunk(1200), &Limits::default()).unwrap();
    let frames = media.audio().unwrap().samples.len() as u64;
    let mut g = c.benchmark_group("deep");
    g.throughput(Throughput::Elements(frames));
    g.sample_size(10);
    g.bench_function("aac_decode_20min_chunk", |b| {
        b.iter(|| {
            recstitch::formats::deep::analyse_audio(&recstitch::Storage::local(), &media, &recstitch::Limits::default())
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    probe_one_hour_chunk,
    validate_recording,
    build_moov,
    build_moov_twenty_hours,
    stitch_one_hour,
    decode_audio
);
criterion_main!(benches);
