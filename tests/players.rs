//! Outside readers of stitched files: mpv and VLC (what a person sees),
//! MediaInfo (what an archivist reads), ffprobe, and Firefox's MP4 parser
//! (`mp4parse`). They must show chapters as chapters, never as subtitles,
//! and agree on durations.
//!
//! mpv and VLC skip loudly where they are missing, except under
//! `RECSTITCH_REQUIRE_PLAYERS=1` (`.ci/run` sets it and installs them);
//! ffprobe and MediaInfo follow `RECSTITCH_REQUIRE_FFMPEG`.

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Stitches the `good` fixture with `--gaps <mode>` into a fresh folder of
/// the test `test`; returns the stitched MP4 (its chapters are in
/// `chapters/` beside it).
fn stitched(test: &str, mode: &str) -> PathBuf {
    let out = util::temp_dir(&format!("players-{test}-{mode}"));
    let archive = util::cases().join("good");
    let (code, report) = util::run_json_with(&archive, &out, &["--gaps", mode]);
    assert_eq!(code, 0, "{report}");
    PathBuf::from(report["recordings"][0]["output"].as_str().unwrap())
}

/// Runs a command that prints to stdout/stderr; both, as text.
fn output_of(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run the player");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    text.replace('\r', "\n")
}

#[test]
fn mpv_shows_no_subtitle_and_lists_the_chapters() {
    if !util::have_tool("mpv") {
        return;
    }
    for mode in ["collapse", "wallclock"] {
        let file = stitched("mpv", mode);
        let text = output_of(
            Command::new("mpv")
                .args(["--no-config", "--vo=null", "--ao=null", "--end=0.1"])
                .arg("--term-playing-msg=CHAPTERS=${chapters}")
                .arg(&file),
        );
        assert!(
            text.contains("Video --vid=1"),
            "{mode}: mpv did not play the file:\n{text}"
        );
        assert!(!text.contains("Subs"), "{mode}: mpv loaded a subtitle track:\n{text}");
        let chapters: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("CHAPTERS="))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("{mode}: no chapter count:\n{text}"));
        assert!(chapters >= 3, "{mode}: {chapters} chapters");
    }
}

/// Runs `cvlc` on `file` with verbose logs and `extra` arguments,
/// unprivileged when this test runs as root (VLC refuses root).
fn vlc_log(file: &Path, extra: &[&str]) -> String {
    let mut cmd = util::unprivileged("cvlc");
    cmd.args([
        "--intf",
        "dummy",
        "--vout",
        "dummy",
        "--aout",
        "dummy",
        "--play-and-exit",
        "-vv",
    ]);
    output_of(cmd.args(extra).arg(file))
}

/// Opens every folder from the target's temporary folder down to `file`
/// to other users, so that an unprivileged player can read it.
fn open_to_all(file: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for d in file.ancestors().skip(1) {
        if !d.starts_with(env!("CARGO_TARGET_TMPDIR")) {
            break;
        }
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
}

#[test]
fn vlc_uses_the_chapter_track_for_chapters_and_loads_no_subtitle() {
    if !util::have_tool("cvlc") {
        return;
    }
    let file = stitched("vlc", "collapse");
    open_to_all(&file);
    let log = vlc_log(&file, &["--run-time=1"]);
    assert!(
        log.contains("adding track[Id 0x1] video"),
        "VLC did not read the file:\n{log}"
    );
    assert!(log.contains("for chapter"), "VLC found no chapter track:\n{log}");
    assert!(
        !log.contains("autodetected subtitle"),
        "VLC loaded a subtitle file:\n{log}"
    );
    assert!(
        !log.contains("adding track[Id 0x3]"),
        "VLC offers the chapter track as a track:\n{log}"
    );
}

/// Presented duration in seconds as Firefox's MP4 parser reads it: the
/// longest audio or video track, from its edit list (else its media).
fn mp4parse_duration(file: &Path) -> f64 {
    let mut f = std::fs::File::open(file).unwrap();
    let context = mp4parse::read_mp4(&mut f).expect("mp4parse reads the file");
    let movie = context.timescale.map(|t| t.0 as f64).unwrap_or(1000.0);
    context
        .tracks
        .iter()
        .filter(|t| matches!(t.track_type, mp4parse::TrackType::Video | mp4parse::TrackType::Audio))
        .map(|t| match (t.edited_duration, t.duration, t.timescale) {
            (Some(edit), _, _) => edit.0 as f64 / movie,
            (None, Some(d), Some(ts)) => d.0 as f64 / ts.0 as f64,
            _ => 0.0,
        })
        .fold(0.0, f64::max)
}

/// One number MediaInfo gives for `file` (`--Inform=<section>;%<field>%`).
fn mediainfo_number(file: &Path, section: &str, field: &str) -> f64 {
    let text = output_of(
        Command::new("mediainfo")
            .arg(format!("--Inform={section};%{field}%"))
            .arg(file),
    );
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("MediaInfo's {section} {field}: {text:?}"))
}

/// (General duration s, audio duration s, audio frame count, video duration s) from MediaInfo.
fn mediainfo(file: &Path) -> (f64, f64, f64, f64) {
    (
        mediainfo_number(file, "General", "Duration") / 1000.0,
        mediainfo_number(file, "Audio", "Duration") / 1000.0,
        mediainfo_number(file, "Audio", "FrameCount"),
        mediainfo_number(file, "Video", "Duration") / 1000.0,
    )
}

#[test]
fn mediainfo_ffprobe_and_mp4parse_agree_on_durations() {
    if !util::have_tool("mediainfo") || !util::have_tool("ffprobe") {
        return;
    }
    let frame = 1.0 / 8.0;
    let mut checked = 0;
    // Every fixture case that stitches, in both gap modes.
    let mut cases: Vec<PathBuf> = std::fs::read_dir(util::cases())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    for (n, case) in cases.iter().enumerate() {
        for mode in ["collapse", "wallclock"] {
            let out = util::temp_dir(&format!("players-durations-{n}-{mode}"));
            let (_, report) = util::run_json_with(case, &out, &["--gaps", mode]);
            for r in report["recordings"].as_array().unwrap() {
                // MP4s: MP3 and WAV durations are checked in tests/formats.rs.
                let mp4 = |o: &&str| o.ends_with(".mp4") && r["status"] == "stitched";
                let Some(output) = r["output"].as_str().filter(mp4) else {
                    continue;
                };
                // MP3 and WAV outputs: see `mediainfo_and_mpv_read_the_audio_only_outputs`.
                if !output.ends_with(".mp4") {
                    continue;
                }
                check_durations(Path::new(output), frame, &format!("{} {mode}", case.display()));
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "only {checked} outputs were compared");
}

fn check_durations(file: &Path, frame: f64, what: &str) {
    let ffprobe: f64 = util::oracle::probe_field(file, "format", "duration").parse().unwrap();
    // The audio frames ffmpeg decodes and presents (a part-presented last one included).
    let decoded = output_of(
        Command::new("ffprobe")
            .args(["-v", "error", "-count_frames", "-select_streams", "a:0"])
            .args(["-show_entries", "stream=nb_read_frames", "-of", "default=nw=1:nk=1"])
            .arg(file),
    );
    let audio_packets: f64 = decoded
        .lines()
        .find_map(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("{what}: ffprobe counted no audio frame: {decoded}"));
    let (general, audio, audio_frames, video) = mediainfo(file);
    let parsed = mp4parse_duration(file);
    for (who, d) in [("MediaInfo", general), ("mp4parse", parsed)] {
        assert!(
            (d - ffprobe).abs() <= frame,
            "{what}: {who} says {d:.3} s, ffprobe {ffprobe:.3} s"
        );
    }
    assert!((audio - ffprobe).abs() <= frame, "{what}: MediaInfo audio {audio} s");
    assert!(
        video <= general + 1e-9,
        "{what}: video {video} s past the file's {general} s"
    );
    // MediaInfo counts whole frames of the duration.
    assert!(
        (audio_frames - audio_packets).abs() <= 1.0,
        "{what}: MediaInfo {audio_frames} audio frames, ffprobe {audio_packets}"
    );
}

#[test]
fn vlc_plays_the_wallclock_output_without_late_pictures() {
    if !util::have_tool("cvlc") {
        return;
    }
    let file = stitched("vlc-wallclock", "wallclock");
    open_to_all(&file);
    let log = vlc_log(&file, &[]);
    assert!(log.contains("EOF reached"), "VLC did not play to the end:\n{log}");
    let late: Vec<&str> = log.lines().filter(|l| l.contains("too late")).collect();
    assert!(late.is_empty(), "VLC showed pictures late: {late:?}");
}

/// Presentation times (seconds) of the stream `selector` of `file`, sorted,
/// with each packet's size.
fn packets(file: &Path, selector: &str) -> Vec<(f64, u64)> {
    let text = output_of(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-select_streams",
                selector,
                "-show_entries",
                "packet=pts_time,size",
            ])
            .args(["-of", "csv=p=0"])
            .arg(file),
    );
    let mut out: Vec<(f64, u64)> = text
        .lines()
        .filter_map(|l| {
            let (t, s) = l.split_once(',')?;
            Some((t.parse().ok()?, s.trim().parse().ok()?))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

#[test]
fn wallclock_pauses_hold_and_resume_where_the_manifest_says() {
    if !util::have_tool("ffprobe") {
        return;
    }
    let file = stitched("pauses", "wallclock");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(file.with_extension("json")).unwrap()).unwrap();
    let pause = &manifest["pauses"][0];
    let (start, end) = (
        pause["outputStartMs"].as_f64().unwrap() / 1000.0,
        pause["outputEndMs"].as_f64().unwrap() / 1000.0,
    );
    let aac_frame = 1024.0 / 16000.0;
    // Audio: the generated silent frames (4 bytes, mono) fill the pause.
    let audio = packets(&file, "a:0");
    let silent: Vec<f64> = audio.iter().filter(|p| p.1 == 4).map(|p| p.0).collect();
    let (first, last) = (silent[0], silent[silent.len() - 1] + aac_frame);
    assert!(
        (first - start).abs() <= aac_frame,
        "silence starts at {first}, the pause at {start}"
    );
    assert!(
        (last - end).abs() <= aac_frame,
        "audio resumes at {last}, the manifest says {end}"
    );
    assert!(
        ((last - first) - (end - start)).abs() <= aac_frame,
        "silence lasts {}",
        last - first
    );
    // Video: one picture held across the pause; the next within an AAC frame of the resume.
    let video = packets(&file, "v:0");
    let (held, resumed) = video
        .windows(2)
        .map(|w| (w[0].0, w[1].0))
        .max_by(|a, b| (a.1 - a.0).total_cmp(&(b.1 - b.0)))
        .unwrap();
    assert!(
        (resumed - end).abs() <= aac_frame,
        "video resumes at {resumed}, the manifest says {end}"
    );
    assert!(
        held < start,
        "the held picture starts at {held}, after the pause at {start}"
    );
}

/// The stitched MP3 and WAVs, as MediaInfo and mpv read them: the duration
/// the manifest states, and mpv lists the MP3's ID3v2 chapters.
#[test]
fn mediainfo_and_mpv_read_the_audio_only_outputs() {
    if !util::have_tool("mediainfo") {
        return;
    }
    for case in ["good_mp3_pause", "good_wav", "good_wav_unmixed"] {
        for mode in ["collapse", "wallclock"] {
            let out = util::temp_dir(&format!("players-audio-{case}-{mode}"));
            let (code, report) = util::run_json_with(&util::cases().join(case), &out, &["--gaps", mode]);
            assert_eq!(code, 0, "{report}");
            let file = PathBuf::from(report["recordings"][0]["output"].as_str().unwrap());
            let manifest: serde_json::Value =
                serde_json::from_slice(&std::fs::read(report["recordings"][0]["manifest"].as_str().unwrap()).unwrap())
                    .unwrap();
            let planned = manifest["output"]["durationMs"].as_f64().unwrap() / 1000.0;
            let general = mediainfo_number(&file, "General", "Duration") / 1000.0;
            // MediaInfo reads an MP3's length from the Xing header (every
            // frame, the encoder delay and padding included: under 0.1 s).
            assert!(
                (general - planned).abs() <= 0.1,
                "{case} {mode}: MediaInfo {general} s, manifest {planned} s"
            );
            if file.extension().is_none_or(|e| e != "mp3") || !util::have_tool("mpv") {
                continue;
            }
            let text = output_of(
                Command::new("mpv")
                    .args(["--no-config", "--vo=null", "--ao=null", "--end=0.1"])
                    .arg("--term-playing-msg=CHAPTERS=${chapters}")
                    .arg(&file),
            );
            let chapters: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("CHAPTERS="))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or_else(|| panic!("{case} {mode}: no chapter count:\n{text}"));
            assert_eq!(
                chapters,
                manifest["chapters"].as_array().unwrap().len(),
                "{case} {mode}"
            );
        }
    }
}
