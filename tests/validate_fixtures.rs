//! Runs `recstitch validate --json` on every fixture case and checks the
//! exact codes, severities and exit code the case was built to produce (see
//! fixtures/README.md).

mod util;

use std::collections::BTreeSet;

use serde_json::Value;
use util::{cases, recstitch_json};

/// (case folder, expected exit code, expected (code, severity) set, recordings)
type Case = (&'static str, i32, &'static [(&'static str, &'static str)], usize);

const EXPECTED: &[Case] = &[
    ("good", 0, &[], 1),
    ("good_flat_two_recordings", 0, &[], 2),
    ("orphans", 0, &[], 1),
    ("good_16fps_current_metadata", 0, &[], 1),
    ("good_export_layout", 0, &[], 2),
    ("good_mp3_pause", 0, &[], 1),
    ("good_wav", 0, &[], 1),
    ("good_wav_unmixed", 0, &[], 1),
    ("metadata_invalid", 1, &[("metadata.invalid", "error")], 2),
    ("metadata_mismatch", 1, &[("metadata.mismatch", "error")], 1),
    ("media_missing", 1, &[("media.missing", "error")], 1),
    ("media_empty", 1, &[("media.empty", "error")], 1),
    ("media_not_mp4", 1, &[("media.not_mp4", "error")], 1),
    ("media_truncated", 1, &[("media.truncated", "error")], 1),
    (
        "media_unsupported_format",
        1,
        &[("media.unsupported_format", "error")],
        1,
    ),
    (
        "media_unsupported_format_flac",
        1,
        &[("media.unsupported_format", "error")],
        1,
    ),
    ("media_format_mismatch", 1, &[("media.format_mismatch", "error")], 1),
    ("video_codec", 1, &[("video.codec", "error")], 1),
    ("audio_codec", 1, &[("audio.codec", "error")], 1),
    ("video_resolution", 1, &[("video.resolution", "error")], 1),
    ("video_frame_rate", 1, &[("video.frame_rate", "error")], 1),
    ("audio_sample_rate", 1, &[("audio.sample_rate", "error")], 1),
    ("audio_channels", 1, &[("audio.channels", "error")], 1),
    ("video_bitrate", 0, &[("video.bitrate", "warning")], 1),
    ("audio_bitrate", 0, &[("audio.bitrate", "warning")], 1),
    ("chunk_duration", 1, &[("chunk.duration", "error")], 1),
    ("chunk_missing_index", 1, &[("chunk.missing_index", "error")], 1),
    ("chunk_duplicate", 1, &[("chunk.duplicate", "error")], 1),
    ("chunk_duplicate_identical", 0, &[("chunk.duplicate", "warning")], 1),
    ("chunk_gap", 0, &[("chunk.gap", "warning")], 1),
    ("chunk_overlap", 0, &[("chunk.overlap", "warning")], 1),
    ("chunk_codec_change", 0, &[("chunk.codec_change", "warning")], 1),
    ("recording_incomplete", 1, &[("recording.incomplete", "error")], 1),
    // Only --deep sees these.
    ("audio_silent", 0, &[], 1),
    ("audio_decode_error", 0, &[], 1),
    ("video_bitstream", 0, &[], 1),
];

/// The same, with `--deep`.
const DEEP_EXPECTED: &[Case] = &[
    ("good", 0, &[], 1),
    ("good_mp3_pause", 0, &[], 1),
    ("good_wav", 0, &[], 1),
    ("good_wav_unmixed", 0, &[], 1),
    ("audio_silent", 0, &[("audio.silent", "warning")], 1),
    ("audio_decode_error", 1, &[("audio.decode_error", "error")], 1),
    ("video_bitstream", 1, &[("video.bitstream", "error")], 1),
];

fn findings(report: &Value) -> BTreeSet<(String, String)> {
    report["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["findings"].as_array().unwrap().iter())
        .map(|f| {
            (
                f["code"].as_str().unwrap().to_owned(),
                f["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn check_cases(table: &[Case], extra: &[&str]) {
    let mut failures = Vec::new();
    for (case, exit, codes, recordings) in table {
        let dir = cases().join(case);
        let mut args = vec!["validate", "--json", dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        let (code, report) = recstitch_json(&args);
        let got = findings(&report);
        let want: BTreeSet<(String, String)> = codes.iter().map(|(c, s)| (c.to_string(), s.to_string())).collect();
        let n = report["recordings"].as_array().unwrap().len();
        if code != *exit || got != want || n != *recordings {
            failures.push(format!(
                "{case}: exit {code} (want {exit}), {n} recordings (want {recordings}), codes {got:?} (want {want:?})"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_case_gives_exactly_its_codes_and_exit_code() {
    check_cases(EXPECTED, &[]);
}

#[test]
fn deep_cases_give_their_codes_at_the_right_chunk_and_time() {
    check_cases(DEEP_EXPECTED, &["--deep"]);
    let finding = |case: &str| {
        let dir = cases().join(case);
        let (_, report) = recstitch_json(&["validate", "--json", "--deep", dir.to_str().unwrap()]);
        report["recordings"][0]["findings"][0].clone()
    };
    // Packet 11 of chunk 1 (presented from 9216 / 16000 s) was overwritten.
    let f = finding("audio_decode_error");
    assert_eq!(f["chunkIndex"], 1);
    assert!(f["message"].as_str().unwrap().contains("the first at 0.576 s"), "{f}");
    // Chunk 1's audio is digital silence; chunk 0's is not.
    let f = finding("audio_silent");
    assert_eq!(f["chunkIndex"], 1);
    // The NAL length of the fourth video sample (0.375 s) was overwritten.
    let f = finding("video_bitstream");
    assert_eq!(f["chunkIndex"], 0);
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("sample 3 at 0.375 s: NAL length 2147483647"),
        "{f}"
    );
}

#[test]
fn every_case_folder_is_covered() {
    let mut on_disk: Vec<String> = std::fs::read_dir(cases())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = EXPECTED.iter().map(|e| e.0.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

#[test]
fn good_case_report_has_the_documented_shape() {
    let dir = cases().join("good");
    let (code, report) = recstitch_json(&["validate", "--json", dir.to_str().unwrap()]);
    assert_eq!(code, 0);
    let rec = &report["recordings"][0];
    assert_eq!(rec["callId"], "3c57992b-07bf-4387-a8bc-a13561e8650a");
    assert_eq!(rec["status"], "ok");
    let chunks = rec["chunks"].as_array().unwrap();
    let indices: Vec<u64> = chunks.iter().map(|c| c["index"].as_u64().unwrap()).collect();
    assert_eq!(indices, [0, 1, 2]);
    // chunk 1 lasts 4000 ms on the wall clock with a 1500 ms pause, and its media 2500 ms.
    assert_eq!(chunks[1]["pausesCut"], true);
    assert_eq!(chunks[0]["pausesCut"], Value::Null);
    assert_eq!(chunks[0]["mediaDurationMs"], 3000.0);
    assert_eq!(chunks[1]["mediaDurationMs"], 2500.0);
    assert!(chunks[0]["media"].as_str().unwrap().ends_with(".mp4"));
    assert!(chunks[0]["metadata"].as_str().unwrap().ends_with(".json"));
    assert_eq!(report["orphans"].as_array().unwrap().len(), 0);
}

#[test]
fn orphans_are_listed_with_reasons() {
    let dir = cases().join("orphans");
    let (_, report) = recstitch_json(&["validate", "--json", dir.to_str().unwrap()]);
    let orphans = report["orphans"].as_array().unwrap();
    let names: Vec<&str> = orphans
        .iter()
        .map(|o| o["path"].as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "0-eus-d11-ffff1eee3cba48609f068a8d4a450404.mp4",
            "hello.json",
            "notes.txt"
        ]
    );
    assert!(orphans.iter().all(|o| !o["reason"].as_str().unwrap().is_empty()));
}

#[test]
fn messages_name_the_problem() {
    let dir = cases().join("metadata_invalid");
    let (_, report) = recstitch_json(&["validate", "--json", dir.to_str().unwrap()]);
    let text = report.to_string();
    assert!(
        text.contains("field `chunkIndex`: expected a number, found the string \\\"zero\\\""),
        "{text}"
    );
    assert!(text.contains("x.json: not JSON: the file is an HTML page"), "{text}");
}

#[test]
fn unreadable_root_and_bad_arguments_exit_2() {
    let out = util::recstitch(&["validate", "/nonexistent/archive"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/archive: no such folder"));
    let out = util::recstitch(&["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let out = util::recstitch(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn human_output_lists_codes_too() {
    let dir = cases().join("video_frame_rate");
    let out = util::recstitch(&["validate", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("video.frame_rate"), "{text}");
    assert!(text.contains("10.000 fps"), "{text}");
}

#[test]
fn probe_prints_the_chunk() {
    let dir = cases().join("good/3c57992b-07bf-4387-a8bc-a13561e8650a");
    let file = dir.join("0-eus-d11-293c5f93ea87298458e47ef52dda3bb9.mp4");
    let (code, r) = recstitch_json(&["probe", "--json", file.to_str().unwrap()]);
    assert_eq!(code, 0);
    let video = &r["tracks"][0];
    assert_eq!(video["kind"], "video");
    assert_eq!(video["codec"]["codec"], "avc");
    assert_eq!(video["codec"]["width"], 1920);
    assert_eq!(video["codec"]["height"], 1080);
    assert_eq!(video["samples"], 24);
    assert_eq!(video["compositionOffsets"], true);
    let audio = &r["tracks"][1];
    assert_eq!(audio["codec"]["sampleRate"], 16000);
    assert_eq!(audio["codec"]["channels"], 1);
    // 3 s of 16 kHz audio after the 1024-sample priming packet trimmed by the edit list.
    assert_eq!(audio["presentation"]["start"], 1024);
    assert_eq!(audio["presentation"]["length"], 48000);
}

#[test]
fn timeline_picture_shows_the_chunks_and_the_pause() {
    use recstitch::output::picture::{BACKGROUND, CHUNK_COLOR, HEIGHT, PAUSE_COLOR, PLOT_LEFT, PLOT_WIDTH, WIDTH};
    let out = util::temp_dir("timeline-good");
    let dir = cases().join("good");
    let o = util::recstitch(&["timeline", dir.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let path = String::from_utf8(o.stdout).unwrap().trim().to_string();
    let img = image::open(&path).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (WIDTH, HEIGHT));
    // The recording spans 9.3 s of wall clock; the pause runs from 4.0 s to 5.5 s.
    let x = |s: f64| PLOT_LEFT + (s / 9.3 * f64::from(PLOT_WIDTH)).round() as u32;
    let bars_y = 95;
    assert_eq!(
        *img.get_pixel(x(4.75), 130),
        PAUSE_COLOR,
        "inside the pause, between bars and levels"
    );
    assert_eq!(
        *img.get_pixel(x(4.75), bars_y),
        PAUSE_COLOR,
        "the pause interrupts chunk 1's bar"
    );
    assert_eq!(*img.get_pixel(x(2.0), 130), BACKGROUND, "outside the pause");
    for s in [1.0, 3.5, 6.0, 8.5] {
        assert_eq!(*img.get_pixel(x(s), bars_y), CHUNK_COLOR, "a chunk bar at {s} s");
    }
}

#[test]
fn an_error_response_saved_as_metadata_is_metadata_invalid() {
    let dir = util::temp_dir("json-401");
    let chunk = "0-eus-d11-293c5f93ea87298458e47ef52dda3bb9";
    std::fs::copy(
        cases().join(format!("good/3c57992b-07bf-4387-a8bc-a13561e8650a/{chunk}.mp4")),
        dir.join(format!("{chunk}.mp4")),
    )
    .unwrap();
    std::fs::write(
        dir.join(format!("{chunk}.json")),
        r#"{"error":{"code":"Unauthorized","message":"401"}}"#,
    )
    .unwrap();
    std::fs::write(dir.join("unrelated.json"), r#"{"hello":1}"#).unwrap();
    let (code, report) = recstitch_json(&["validate", "--json", dir.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert_eq!(
        findings(&report),
        BTreeSet::from([("metadata.invalid".to_string(), "error".to_string())])
    );
    assert_eq!(
        report["recordings"][0]["chunks"][0]["media"].as_str().unwrap(),
        dir.join(format!("{chunk}.mp4")).to_str().unwrap()
    );
    let orphans = report["orphans"].as_array().unwrap();
    assert_eq!(orphans.len(), 1);
    assert!(orphans[0]["path"].as_str().unwrap().ends_with("unrelated.json"));
}
