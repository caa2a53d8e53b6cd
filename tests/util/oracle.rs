//! ffmpeg as an independent oracle: what a real decoder presents, measured
//! from decoded frames and samples, never from our own tables.

use std::path::Path;
use std::process::Command;

fn ffmpeg(args: &[&str]) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error"])
        .args(args)
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// One decoded frame as `-f framemd5` reports it.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Presentation time, seconds.
    pub pts: f64,
    /// Presentation time in stream ticks.
    pub pts_ticks: i64,
    /// Duration in stream ticks.
    pub duration: i64,
    /// MD5 of the decoded frame.
    pub md5: String,
}

/// Decoded frames of the first stream of `kind` (`v` or `a`).
pub fn frames(path: &Path, kind: &str) -> Vec<Frame> {
    // Stream time base and no frame dropping or duplication: what the decoder presents, unrounded.
    let out = ffmpeg(&[
        "-i",
        path.to_str().unwrap(),
        "-map",
        &format!("0:{kind}:0"),
        "-enc_time_base",
        "-1",
        "-fps_mode",
        "passthrough",
        "-f",
        "framemd5",
        "-",
    ]);
    let text = String::from_utf8(out).unwrap();
    let mut tb = (1i64, 1i64);
    let mut frames = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("#tb 0:") {
            let (n, d) = rest.trim().split_once('/').unwrap();
            tb = (n.trim().parse().unwrap(), d.trim().parse().unwrap());
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let p: Vec<&str> = line.split(',').map(str::trim).collect();
        let pts: i64 = p[2].parse().unwrap();
        frames.push(Frame {
            pts: pts as f64 * tb.0 as f64 / tb.1 as f64,
            pts_ticks: pts,
            duration: p[3].parse().unwrap(),
            md5: p[5].to_string(),
        });
    }
    frames
}

/// The decoded audio as mono 16-bit samples at `rate`.
pub fn pcm(path: &Path, rate: u32) -> Vec<i16> {
    let out = ffmpeg(&[
        "-i",
        path.to_str().unwrap(),
        "-map",
        "0:a:0",
        "-ac",
        "1",
        "-ar",
        &rate.to_string(),
        "-f",
        "s16le",
        "-",
    ]);
    out.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect()
}

/// The lag in `lo..hi` where `needle` best matches `hay` (normalised cross-correlation).
pub fn best_lag(hay: &[i16], needle: &[i16], lo: usize, hi: usize) -> (usize, f64) {
    let n2: f64 = needle.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    let mut best = (lo, f64::MIN);
    for lag in lo..hi.min(hay.len().saturating_sub(needle.len())) {
        let w = &hay[lag..lag + needle.len()];
        let mut dot = 0i64;
        let mut h2 = 0i64;
        for (&a, &b) in w.iter().zip(needle) {
            dot += i64::from(a) * i64::from(b);
            h2 += i64::from(a) * i64::from(a);
        }
        let score = dot as f64 / ((h2 as f64 * n2).sqrt() + 1e-9);
        if score > best.1 {
            best = (lag, score);
        }
    }
    best
}

/// What ffmpeg presents at one join.
#[derive(Debug, Clone)]
pub struct Join {
    /// Output time of the chunk's first presented video frame, seconds.
    pub video_start: f64,
    /// Output time of the chunk's first real audio sample, seconds.
    pub audio_start: f64,
    /// Correlation score of the audio match (1.0 is a perfect match).
    pub score: f64,
}

impl Join {
    /// Video minus audio start, milliseconds.
    pub fn offset_ms(&self) -> f64 {
        (self.video_start - self.audio_start) * 1000.0
    }
}

/// Measures, for each input chunk, where its first video frame and its first
/// real audio sample land in `output`, as ffmpeg decodes them.
///
/// Video: the output frame whose decoded MD5 equals the chunk's first
/// presented frame (searching after the previous chunk). Audio: the lag at
/// which the chunk's decoded audio (from its 2049th sample, past any
/// difference caused by the join) best correlates with the output's.
pub fn joins(output: &Path, chunks: &[&Path], rate: u32) -> Vec<Join> {
    let out_video = frames(output, "v");
    let out_audio = frames(output, "a");
    // The PCM positions are presentation times only if frames are contiguous.
    for w in out_audio.windows(2) {
        assert_eq!(
            w[0].pts_ticks + w[0].duration,
            w[1].pts_ticks,
            "audio frames of the output are not contiguous"
        );
    }
    assert_eq!(
        out_audio.first().map(|f| f.pts_ticks),
        Some(0),
        "output audio does not start at 0"
    );
    let out_pcm = pcm(output, rate);
    let skip = 2048;
    let window = (rate as usize) / 2;
    let mut joins: Vec<Join> = Vec::new();
    for chunk in chunks {
        let first = frames(chunk, "v").into_iter().next().expect("chunk has video");
        let after = joins.last().map_or(-1.0, |j| j.video_start + 0.01);
        let video_start = out_video
            .iter()
            .find(|f| f.md5 == first.md5 && f.pts > after)
            .unwrap_or_else(|| panic!("first frame of {} not found in the output", chunk.display()))
            .pts;
        let chunk_pcm = pcm(chunk, rate);
        let needle = &chunk_pcm[skip..skip + window];
        // Search a second either side of the video start.
        let centre = (video_start * f64::from(rate)) as usize + skip;
        let lo = centre.saturating_sub(rate as usize);
        let (lag, score) = best_lag(&out_pcm, needle, lo, centre + rate as usize);
        joins.push(Join {
            video_start,
            audio_start: (lag as f64 - skip as f64) / f64::from(rate),
            score,
        });
    }
    joins
}

/// `ffmpeg -v error` decoding the whole of `path` into `format` on stdout.
fn decode_to(path: &Path, format: &str) -> std::process::Output {
    Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-i",
            path.to_str().unwrap(),
            "-f",
            format,
            "-",
        ])
        .output()
        .expect("run ffmpeg")
}

/// What ffmpeg decodes `path` to, as raw little-endian 16-bit PCM of all channels.
pub fn raw_pcm(path: &Path) -> Vec<u8> {
    let out = decode_to(path, "s16le");
    assert!(out.status.success(), "ffmpeg cannot decode {}", path.display());
    out.stdout
}

/// Everything ffmpeg prints at `-v error` while decoding the whole file.
pub fn decode_errors(path: &Path) -> String {
    let out = decode_to(path, "null");
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        text.push_str("(ffmpeg failed)");
    }
    text
}

/// `ffprobe -show_chapters` as (start seconds, title).
pub fn chapters(path: &Path) -> Vec<(f64, String)> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-show_chapters", "-of", "json", path.to_str().unwrap()])
        .output()
        .expect("run ffprobe");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["chapters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["start_time"].as_str().unwrap().parse().unwrap(),
                c["tags"]["title"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// A field of `ffprobe -show_format` / `-show_streams` for `selector` (`format` or `a:0`, `v:0`).
pub fn probe_field(path: &Path, selector: &str, field: &str) -> String {
    let mut cmd = Command::new("ffprobe");
    cmd.args(["-v", "error"]);
    if selector == "format" {
        cmd.args(["-show_entries", &format!("format={field}")]);
    } else {
        cmd.args(["-select_streams", selector, "-show_entries", &format!("stream={field}")]);
    }
    let out = cmd
        .args(["-of", "default=nw=1:nk=1", path.to_str().unwrap()])
        .output()
        .expect("run ffprobe");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
