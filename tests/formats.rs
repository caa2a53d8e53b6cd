//! Every format the service records today, stitched and checked with
//! ffmpeg/ffprobe as the outside oracle: 16 fps MP4 with current-schema
//! metadata, the service's own Blob export layout, mixed MP3 (chapters,
//! pauses, decoded sample counts), mixed WAV and unmixed 4-channel WAV
//! (PCM identical to the chunks', the channel map in the manifest).

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// `run --json` over a fixture case into a fresh folder: the report.
fn run_case(case: &str, out_name: &str, extra: &[&str]) -> Value {
    let out = util::temp_dir(out_name);
    let (code, report) = util::run_json_with(&util::cases().join(case), &out, extra);
    assert_eq!(code, 0, "{case}: run failed: {report:#}");
    for r in report["recordings"].as_array().unwrap() {
        assert_eq!(r["status"], "stitched", "{case}: {report:#}");
    }
    report
}

/// The outputs of a report's recordings, with their manifests.
fn outputs(report: &Value) -> Vec<(PathBuf, Value)> {
    report["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let manifest = PathBuf::from(r["manifest"].as_str().unwrap());
            let m: Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
            (PathBuf::from(r["output"].as_str().unwrap()), m)
        })
        .collect()
}

/// The chunks' media files of a manifest, in order, as full paths.
fn chunk_files(case: &str, manifest: &Value) -> Vec<PathBuf> {
    manifest["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| util::cases().join(case).join(c["media"].as_str().unwrap()))
        .collect()
}

/// Samples per channel ffmpeg decodes from `path`.
fn decoded_samples(path: &Path, channels: usize) -> usize {
    util::oracle::raw_pcm(path).len() / 2 / channels
}

#[test]
fn a_16_fps_recording_with_current_metadata_stitches_at_16_fps() {
    if !util::have_tool("ffprobe") {
        return;
    }
    let report = run_case("good_16fps_current_metadata", "formats-16fps", &[]);
    let chunk = &report["recordings"][0]["chunks"][0]["streams"];
    assert_eq!(chunk["frameRate"], 16.0, "{report:#}");
    assert_eq!(chunk["frameRateStated"], false, "{report:#}");
    let (output, manifest) = outputs(&report).remove(0);
    let frames = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-count_frames"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "default=nw=1:nk=1"])
        .arg(&output)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&frames.stdout).trim(), "192");
    assert_eq!(manifest["output"]["videoFrames"], 192);
    assert_eq!(manifest["output"]["streams"]["frameRate"], 16.0);
    // Each chunk on its own runs at 16/1.
    for c in chunk_files("good_16fps_current_metadata", &manifest) {
        assert_eq!(util::oracle::probe_field(&c, "v:0", "r_frame_rate"), "16/1");
    }
    assert_eq!(util::oracle::decode_errors(&output), "");
}

#[test]
fn the_services_blob_export_layout_pairs_every_file() {
    let (code, report) = util::recstitch_json(&[
        "validate",
        "--json",
        util::cases().join("good_export_layout").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["orphans"], Value::Array(vec![]), "{report:#}");
    let recs = report["recordings"].as_array().unwrap();
    assert_eq!(recs.len(), 2);
    let formats: Vec<&str> = recs
        .iter()
        .map(|r| r["chunks"][0]["streams"]["format"].as_str().unwrap())
        .collect();
    assert!(formats.contains(&"mp4") && formats.contains(&"mp3"), "{formats:?}");
    if !util::have_tool("ffmpeg") {
        return;
    }
    let report = run_case("good_export_layout", "formats-export", &[]);
    for (output, _) in outputs(&report) {
        assert_eq!(util::oracle::decode_errors(&output), "", "{}", output.display());
    }
}

/// The three MP3 chunks of `good_mp3_pause` decoded alone, samples each.
fn mp3_chunk_samples(manifest: &Value) -> Vec<usize> {
    chunk_files("good_mp3_pause", manifest)
        .iter()
        .map(|c| decoded_samples(c, 1))
        .collect()
}

#[test]
fn mixed_mp3_stitches_with_chapters_and_every_sample() {
    if !util::have_tool("ffmpeg") {
        return;
    }
    let report = run_case("good_mp3_pause", "formats-mp3", &[]);
    let (output, manifest) = outputs(&report).remove(0);
    assert_eq!(output.extension().unwrap(), "mp3");
    assert_eq!(util::oracle::decode_errors(&output), "");
    let per_chunk = mp3_chunk_samples(&manifest);
    let sum: usize = per_chunk.iter().sum();
    let got = decoded_samples(&output, 1);
    // MPEG-2 Layer III at 16 kHz: 576 samples a frame; what stays at a join
    // is the next chunk's encoder delay and this one's padding, within a frame pair.
    let joins = per_chunk.len() - 1;
    eprintln!("decoded {got} samples; the chunks alone {per_chunk:?} = {sum}");
    assert!(got >= sum && got - sum <= joins * 2 * 576, "{got} vs {sum}");
    // ffprobe reads the ID3v2 chapters: one per segment and one for the pause.
    let chapters = util::oracle::chapters(&output);
    let titles: Vec<&str> = chapters.iter().map(|c| c.1.as_str()).collect();
    assert!(titles.iter().any(|t| t.starts_with("Paused 2.5 s")), "{titles:?}");
    assert_eq!(chapters.len(), manifest["chapters"].as_array().unwrap().len());
    // The manifest's duration is what a decoder presents; ffprobe shows the
    // frame count of the new Xing header (every frame, priming included).
    let planned = manifest["output"]["durationMs"].as_f64().unwrap() / 1000.0;
    assert!(
        (planned - got as f64 / 16000.0).abs() < 0.001,
        "manifest {planned} s, decoded {got}"
    );
    let shown: f64 = util::oracle::probe_field(&output, "format", "duration")
        .parse()
        .unwrap();
    let frames = manifest["output"]["audioPackets"].as_f64().unwrap();
    assert!(
        (shown - frames * 576.0 / 16000.0).abs() < 0.001,
        "ffprobe {shown} s, {frames} frames"
    );
}

#[test]
fn mixed_mp3_in_wallclock_mode_plays_the_pause_as_silence() {
    if !util::have_tool("ffmpeg") {
        return;
    }
    let collapsed = outputs(&run_case("good_mp3_pause", "formats-mp3-c", &[])).remove(0);
    let held = outputs(&run_case("good_mp3_pause", "formats-mp3-w", &["--gaps", "wallclock"])).remove(0);
    assert_eq!(util::oracle::decode_errors(&held.0), "");
    let (a, b) = (decoded_samples(&collapsed.0, 1), decoded_samples(&held.0, 1));
    // Output time is wall-clock time: 11.5 s from the first chunk's start to
    // the last one's end, within a frame pair per join (what the joins keep
    // of the chunks' encoder delay and padding): + the 2.5 s pause.
    let joins = 2;
    assert!(b.abs_diff(184_000) <= joins * 2 * 576, "wallclock decodes {b} samples");
    assert!(
        b + joins * 2 * 576 >= a + 40_000,
        "wallclock adds {} samples to {a}",
        b - a
    );
    let pause = &held.1["pauses"][0];
    assert_eq!(pause["inFile"], true);
}

#[test]
fn mixed_wav_is_the_chunks_pcm_in_order() {
    if !util::have_tool("ffmpeg") {
        return;
    }
    let report = run_case("good_wav", "formats-wav", &[]);
    let (output, manifest) = outputs(&report).remove(0);
    assert_eq!(output.extension().unwrap(), "wav");
    let mut want = Vec::new();
    for c in chunk_files("good_wav", &manifest) {
        want.extend(util::oracle::raw_pcm(&c));
    }
    assert!(
        util::oracle::raw_pcm(&output) == want,
        "the stitched PCM is not the chunks' PCM in order"
    );
    assert_eq!(util::oracle::probe_field(&output, "a:0", "channels"), "1");
}

#[test]
fn unmixed_wav_keeps_every_channel_and_maps_participants() {
    if !util::have_tool("ffmpeg") {
        return;
    }
    let report = run_case("good_wav_unmixed", "formats-unmixed", &["--split-channels"]);
    let (output, manifest) = outputs(&report).remove(0);
    let mut want = Vec::new();
    for c in chunk_files("good_wav_unmixed", &manifest) {
        want.extend(util::oracle::raw_pcm(&c));
    }
    let got = util::oracle::raw_pcm(&output);
    assert!(got == want, "the stitched PCM is not the chunks' PCM in order");
    assert_eq!(util::oracle::probe_field(&output, "a:0", "channels"), "4");
    let channels = manifest["channels"].as_array().unwrap();
    assert_eq!(channels.len(), 4, "{manifest:#}");
    for (c, ch) in channels.iter().enumerate() {
        assert_eq!(ch["channel"], c);
        assert_eq!(ch["participantId"].is_null(), c == 3, "{ch}");
    }
    // Each participant's mono WAV is that channel's samples, exactly.
    let dir = output.parent().unwrap();
    for ch in &channels[..3] {
        let mono = util::oracle::raw_pcm(&dir.join(ch["path"].as_str().unwrap()));
        let c = ch["channel"].as_u64().unwrap() as usize;
        let expected: Vec<u8> = got
            .chunks_exact(8)
            .flat_map(|frame| frame[c * 2..c * 2 + 2].to_vec())
            .collect();
        assert!(mono == expected, "channel {c}'s WAV differs from the channel");
    }
    // `participants` lists each participant's channel.
    let (code, listed) = util::recstitch_json(&[
        "participants",
        "--json",
        util::cases().join("good_wav_unmixed").to_str().unwrap(),
    ]);
    assert_eq!(code, 0);
    let text = listed.to_string();
    assert!(text.contains("\"channel\":2"), "{text}");
}
