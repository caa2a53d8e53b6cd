//! Makes real chunks with ffmpeg at test time (too big to commit), cached
//! under the target folder.

use std::path::{Path, PathBuf};
use std::process::Command;

/// One chunk to make.
pub struct Spec {
    /// Media length, seconds.
    pub seconds: f64,
    /// Chirp base frequency; also sets the hue, so chunks differ in picture and sound.
    pub freq: u32,
    /// Wall-clock offset of the chunk's start from the recording's start, ms.
    pub start_ms: u64,
    /// `chunkDuration` in the metadata, ms.
    pub chunk_duration_ms: u64,
    /// Pauses: (offset from chunk start ms, duration ms).
    pub pauses: Vec<(u64, u64)>,
}

const T0_UNIX: i64 = 1_717_236_000; // 2024-06-01T10:00:00Z

fn stamp(ms: u64) -> String {
    let t = T0_UNIX + (ms / 1000) as i64;
    let (h, m, s) = ((t / 3600) % 24, (t / 60) % 60, t % 60);
    format!("2024-06-01T{h:02}:{m:02}:{s:02}.{:03}0000Z", ms % 1000)
}

/// Encodes one chunk: H.264 High with B-frames at 1920x1080, 8 fps; AAC-LC 16 kHz mono.
pub fn encode(out: &Path, seconds: f64, freq: u32) {
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=1920x1080:rate=8,hue=h={}", freq % 360))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("aevalsrc=0.4*sin(2*PI*({freq}*t+40*t*t)):s=16000"))
        .args(["-t", &seconds.to_string(), "-map", "0:v", "-map", "1:a"])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-profile:v",
            "high",
            "-bf",
            "2",
            "-g",
            "16",
        ])
        .args(["-crf", "40", "-pix_fmt", "yuv420p", "-threads", "1"])
        .args(["-c:a", "aac", "-ar", "16000", "-ac", "1", "-b:a", "32k"])
        .args([
            "-fflags",
            "+bitexact",
            "-flags:v",
            "+bitexact",
            "-flags:a",
            "+bitexact",
            "-map_metadata",
            "-1",
        ])
        .arg(out)
        .status()
        .expect("run ffmpeg");
    assert!(status.success(), "ffmpeg could not encode {}", out.display());
}

/// Writes chunk metadata for `spec` as chunk `index` of call `call`.
pub fn metadata(call: &str, doc: &str, index: usize, spec: &Spec) -> String {
    let pauses: Vec<String> = spec
        .pauses
        .iter()
        .map(|(at, d)| format!(r#"{{"startTime":"{}","duration":{d}}}"#, stamp(spec.start_ms + at)))
        .collect();
    format!(
        r#"{{"resourceId":"11111111-2222-3333-4444-555555555555","callId":"{call}","chunkDocumentId":"{doc}",
"chunkIndex":{index},"chunkStartTime":"{}","chunkDuration":{},"pauseResumeIntervals":[{}],
"recordingInfo":{{"contentType":"mixed","channelType":"audioVideo","format":"mp4",
"audioConfiguration":{{"sampleRate":"16000","bitRate":128000,"channels":1}},
"videoConfiguration":{{"longerSideLength":1920,"shorterSideLength":1080,"framerate":8,"bitRate":1000000}}}},
"participants":[{{"participantId":"8:acs:test_{index}"}}]}}"#,
        stamp(spec.start_ms),
        spec.chunk_duration_ms,
        pauses.join(",")
    )
}

/// Makes (or reuses) an archive folder `name` holding one recording of the
/// given chunks; returns the folder and the chunk media paths in order.
pub fn archive(name: &str, specs: &[Spec]) -> (PathBuf, Vec<PathBuf>) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("generated").join(name);
    let call = "cafe0000-1111-2222-3333-444455556666";
    let paths: Vec<PathBuf> = (0..specs.len())
        .map(|i| dir.join(format!("0-test-{name}-{i}.mp4")))
        .collect();
    let marker = dir.join(".complete");
    let recipe: String = specs
        .iter()
        .map(|s| {
            format!(
                "{}:{}:{}:{}:{:?};",
                s.seconds, s.freq, s.start_ms, s.chunk_duration_ms, s.pauses
            )
        })
        .collect();
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(recipe.as_str()) {
        return (dir, paths);
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (i, (spec, path)) in specs.iter().zip(&paths).enumerate() {
        encode(path, spec.seconds, spec.freq);
        let doc = path.file_stem().unwrap().to_str().unwrap();
        std::fs::write(path.with_extension("json"), metadata(call, doc, i, spec)).unwrap();
    }
    std::fs::write(&marker, recipe).unwrap();
    (dir, paths)
}

/// A recording of three 20-minute chunks made from a fixture chunk (by
/// `recstitch::output::synth`), made once and shared by the tests that need one;
/// one test binary at a time makes it.
pub fn long_recording() -> PathBuf {
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("generated/three20min");
    let marker = dir.join(".complete");
    if marker.exists() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let source =
        super::cases().join("good/3c57992b-07bf-4387-a8bc-a13561e8650a/0-eus-d11-293c5f93ea87298458e47ef52dda3bb9.mp4");
    let mut start_ms = 0u64;
    for i in 0..3 {
        let doc = format!("0-test-long-{i}");
        let media = recstitch::output::synth::repeat_chunk(&source, 1200.0, &dir.join(format!("{doc}.mp4"))).unwrap();
        let ms = media.duration_ms().round() as u64;
        let spec = Spec {
            seconds: 0.0,
            freq: 0,
            start_ms,
            chunk_duration_ms: ms,
            pauses: vec![],
        };
        std::fs::write(
            dir.join(format!("{doc}.json")),
            metadata("dead0000-1111-2222-3333-444455556666", &doc, i, &spec),
        )
        .unwrap();
        start_ms += ms;
    }
    std::fs::write(&marker, "").unwrap();
    dir
}
