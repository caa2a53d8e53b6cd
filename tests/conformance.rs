//! Conformance: stitch real chunks and check the result with ffmpeg/ffprobe
//! as an independent decoder (never with our own tables).

mod util;

use std::path::{Path, PathBuf};

use util::gen::{self, Spec};
use util::oracle;

const RATE: u32 = 16000;

/// Stitches `archive` with `extra` options; returns the single output file.
fn stitch(archive: &Path, out: &Path, extra: &[&str]) -> PathBuf {
    let mut args = vec![
        "run",
        "--json",
        archive.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (code, report) = util::recstitch_json(&args);
    assert_eq!(code, 0, "run failed: {report:#}");
    let recs = report["recordings"].as_array().unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["status"], "stitched", "{report:#}");
    PathBuf::from(recs[0]["output"].as_str().unwrap())
}

fn audio_seconds(path: &Path) -> f64 {
    oracle::probe_field(path, "a:0", "duration").parse().unwrap()
}

/// Every check of the stitch issue that an outside decoder can make.
fn check_stitched(output: &Path, chunks: &[PathBuf]) {
    let errors = oracle::decode_errors(output);
    assert!(
        errors.is_empty(),
        "ffmpeg reported errors decoding {}:\n{errors}",
        output.display()
    );

    let refs: Vec<&Path> = chunks.iter().map(PathBuf::as_path).collect();
    let joins = oracle::joins(output, &refs, RATE);
    for (k, j) in joins.iter().enumerate() {
        eprintln!(
            "chunk {k}: video {:.6} s, audio {:.6} s, offset {:+.3} ms (match {:.3})",
            j.video_start,
            j.audio_start,
            j.offset_ms(),
            j.score
        );
        assert!(j.score > 0.9, "chunk {k}: audio match too weak ({:.3})", j.score);
        assert!(
            j.offset_ms().abs() <= 1.0,
            "chunk {k}: A/V offset {:.3} ms exceeds 1 ms",
            j.offset_ms()
        );
    }

    let frames = |p: &Path, kind| oracle::frames(p, kind);
    let out_video = frames(output, "v").len();
    let in_video: usize = chunks.iter().map(|c| frames(c, "v").len()).sum();
    assert_eq!(out_video, in_video, "video frame count");
    let samples = |p: &Path| frames(p, "a").iter().map(|f| f.duration).sum::<i64>();
    let out_samples = samples(output);
    let in_samples: i64 = chunks.iter().map(|c| samples(c)).sum();
    assert_eq!(out_samples, in_samples, "decoded audio sample count");

    let presented: f64 = chunks.iter().map(|c| audio_seconds(c)).sum();
    let got = audio_seconds(output);
    let joins_n = (chunks.len() - 1) as f64;
    eprintln!("audio presented {got:.6} s; chunks sum {presented:.6} s");
    assert!(
        got >= presented - 0.5 / f64::from(RATE),
        "audio {got} s is shorter than the chunks' {presented} s"
    );
    assert!(
        got < presented + joins_n * 1024.0 / f64::from(RATE),
        "audio {got} s exceeds {presented} s by a frame per join"
    );

    let chapters = oracle::chapters(output);
    assert!(chapters.len() >= chunks.len(), "chapters: {chapters:?}");
    assert_eq!(chapters[0].0, 0.0);
}

#[test]
fn fixture_recording_stitches_in_sync() {
    if !util::have_tool("ffmpeg") {
        return;
    }
    let archive = util::cases().join("good");
    let out = util::temp_dir("conformance-good");
    let output = stitch(&archive, &out, &[]);
    let dir = archive.join("3c57992b-07bf-4387-a8bc-a13561e8650a");
    let chunks: Vec<PathBuf> = [
        "0-eus-d11-293c5f93ea87298458e47ef52dda3bb9",
        "0-eus-d11-93febf7d8405595011fab94b54be8806",
        "0-eus-d11-9b5d9438ec5d9630fb8d71727c7f2ad8",
    ]
    .iter()
    .map(|d| dir.join(format!("{d}.mp4")))
    .collect();
    check_stitched(&output, &chunks);
    let chapters = oracle::chapters(&output);
    let titles: Vec<&str> = chapters.iter().map(|c| c.1.as_str()).collect();
    assert!(titles.iter().any(|t| t.starts_with("Paused 1.5 s")), "{titles:?}");
}

#[test]
fn three_independent_20s_chunks_stitch_in_sync() {
    if !util::have_tool("ffmpeg") {
        return;
    }
    let specs: Vec<Spec> = (0..3)
        .map(|i| Spec {
            seconds: 20.5,
            freq: 300 + 170 * i as u32,
            start_ms: 20_500 * i as u64,
            chunk_duration_ms: 20_500,
            pauses: vec![],
        })
        .collect();
    let (archive, chunks) = gen::archive("three20", &specs);
    let out = util::temp_dir("conformance-three20");
    let output = stitch(&archive, &out, &[]);
    check_stitched(&output, &chunks);
}

fn read_all(dir: &Path) -> Vec<(String, Vec<u8>)> {
    util::visible_files(dir)
}

#[test]
fn same_inputs_give_byte_identical_outputs() {
    let archive = util::cases().join("good");
    let a = util::temp_dir("determinism-a");
    let b = util::temp_dir("determinism-b");
    for gaps in ["collapse", "wallclock"] {
        stitch(&archive, &a, &["--gaps", gaps]);
        let first = read_all(&a);
        stitch(&archive, &a, &["--gaps", gaps, "--force"]);
        stitch(&archive, &b, &["--gaps", gaps]);
        assert_eq!(
            first.len(),
            3,
            "mp4, json and vtt: {:?}",
            first.iter().map(|f| &f.0).collect::<Vec<_>>()
        );
        assert!(first == read_all(&a), "a rerun changed the outputs ({gaps})");
        assert!(
            first == read_all(&b),
            "another output folder changed the outputs ({gaps})"
        );
    }
}

#[test]
fn wallclock_output_lasts_the_wall_clock_span_with_silence_in_the_pause() {
    if !util::have_tool("ffmpeg") {
        return;
    }
    let archive = util::cases().join("good");
    let out = util::temp_dir("conformance-wallclock");
    let output = stitch(&archive, &out, &["--gaps", "wallclock"]);
    let errors = oracle::decode_errors(&output);
    assert!(errors.is_empty(), "{errors}");
    // The event says the recording spans 9300 ms of wall clock; one frame is 125 ms.
    let duration: f64 = oracle::probe_field(&output, "format", "duration").parse().unwrap();
    assert!(
        (duration - 9.3).abs() <= 0.125,
        "wallclock output lasts {duration} s, not 9.3 s"
    );
    let video: f64 = oracle::probe_field(&output, "v:0", "duration").parse().unwrap();
    assert!((video - 9.3).abs() <= 0.125, "video lasts {video} s");
    // The pause (09:30:04.1 to 09:30:05.6 on the wall clock, 4.0 s to 5.5 s in the file) is silent.
    let pcm = oracle::pcm(&output, RATE);
    let quiet = &pcm[(4.1 * 16000.0) as usize..(5.4 * 16000.0) as usize];
    assert!(quiet.iter().all(|&s| s == 0), "the pause is not silent");
    let loud = &pcm[(5.7 * 16000.0) as usize..(6.0 * 16000.0) as usize];
    assert!(loud.iter().any(|&s| s.abs() > 1000), "no sound after the pause");
    let chapters = oracle::chapters(&output);
    let pause = chapters
        .iter()
        .find(|c| c.1.starts_with("Paused 1.5 s"))
        .expect("pause chapter");
    assert!((pause.0 - 4.0).abs() < 0.05, "pause chapter at {}", pause.0);
}

#[test]
fn mediainfo_reads_the_output() {
    if !util::have_tool("mediainfo") {
        return;
    }
    let archive = util::cases().join("good");
    let out = util::temp_dir("conformance-mediainfo");
    let output = stitch(&archive, &out, &[]);
    let o = std::process::Command::new("mediainfo")
        .arg("--Output=JSON")
        .arg(&output)
        .output()
        .unwrap();
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let tracks = v["media"]["track"].as_array().unwrap();
    let kinds: Vec<&str> = tracks.iter().map(|t| t["@type"].as_str().unwrap()).collect();
    assert!(
        kinds.contains(&"Video") && kinds.contains(&"Audio") && kinds.contains(&"Menu"),
        "{kinds:?}"
    );
    let video = tracks.iter().find(|t| t["@type"] == "Video").unwrap();
    assert_eq!(video["Format"], "AVC");
    assert_eq!(video["Width"], "1920");
    assert_eq!(video["Height"], "1080");
    let audio = tracks.iter().find(|t| t["@type"] == "Audio").unwrap();
    assert_eq!(audio["Format"], "AAC");
    assert_eq!(audio["SamplingRate"], "16000");
}

#[test]
fn fragmented_chunks_hold_the_same_samples_as_progressive_ones() {
    if !util::have_tool("ffmpeg") {
        return;
    }
    let dir = util::temp_dir("fragmented");
    let limits = recstitch::Limits::default();
    let good = util::cases().join("good/3c57992b-07bf-4387-a8bc-a13561e8650a");
    for name in [
        "0-eus-d11-293c5f93ea87298458e47ef52dda3bb9",
        "0-eus-d11-93febf7d8405595011fab94b54be8806",
        "0-eus-d11-9b5d9438ec5d9630fb8d71727c7f2ad8",
    ] {
        let src = good.join(format!("{name}.mp4"));
        let frag = dir.join(format!("{name}.mp4"));
        let status = std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-i"])
            .arg(&src)
            .args(["-c", "copy", "-movflags", "frag_keyframe+empty_moov+default_base_moof"])
            .arg(&frag)
            .status()
            .unwrap();
        assert!(status.success());
        let a = recstitch::probe(&src, &limits).unwrap();
        let b = recstitch::probe(&frag, &limits).unwrap();
        assert!(!a.fragmented && b.fragmented);
        let (fa, fb) = (std::fs::read(&src).unwrap(), std::fs::read(&frag).unwrap());
        for (ta, tb) in a.tracks.iter().zip(&b.tracks) {
            assert_eq!(ta.kind, tb.kind);
            assert_eq!(ta.samples.len(), tb.samples.len(), "{name}: sample count");
            for (i, (sa, sb)) in ta.samples.iter().zip(&tb.samples).enumerate() {
                assert_eq!(
                    (sa.size, sa.sync),
                    (sb.size, sb.sync),
                    "{name} {:?} sample {i}",
                    ta.kind
                );
                // The offsets from trun/tfhd point at the same bytes.
                let bytes =
                    |f: &[u8], s: recstitch::formats::mp4::Sample| f[s.offset as usize..][..s.size as usize].to_vec();
                assert!(
                    bytes(&fa, sa) == bytes(&fb, sb),
                    "{name} {:?} sample {i}: different bytes",
                    ta.kind
                );
            }
        }
    }
}
