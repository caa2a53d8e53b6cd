//! A recording's story at a glance: a PNG timeline.
//!
//! Layout (pixels; `WIDTH` x `HEIGHT`): a title line; a wall-clock axis;
//! the chunks as bars labelled with their index (red when a chunk has an
//! error finding); pauses shaded orange and gaps shaded grey over the whole
//! band from [`BAND_TOP`] to [`BAND_BOTTOM`], each labelled with its length;
//! the audio level strip (one bar per second, `--deep`); and a red marker
//! with its code for each finding, where it occurs.
//!
//! Wall-clock time `t` maps to `x = PLOT_LEFT + (t - start) / span * PLOT_WIDTH`,
//! where `start`..`start + span` is the recording's first chunk start to its
//! last chunk end.

use image::{Rgb, RgbImage};

use crate::finding::{Code, Severity};
use crate::input::metadata::{ChunkMetadata, WallClock};
use crate::validate::ValidatedRecording;

/// Picture width.
pub const WIDTH: u32 = 1200;
/// Picture height.
pub const HEIGHT: u32 = 260;
/// Left edge of the time axis.
pub const PLOT_LEFT: u32 = 100;
/// Width of the time axis.
pub const PLOT_WIDTH: u32 = 1070;
/// Top of the band that pauses and gaps shade.
pub const BAND_TOP: u32 = 62;
/// Bottom of that band.
pub const BAND_BOTTOM: u32 = 200;
const BARS: (u32, u32) = (78, 112);
const LEVELS: (u32, u32) = (140, 190);
const FINDINGS_Y: u32 = 206;

/// Background.
pub const BACKGROUND: Rgb<u8> = Rgb([255, 255, 255]);
/// Chunks without error findings.
pub const CHUNK_COLOR: Rgb<u8> = Rgb([66, 133, 244]);
/// Chunks with error findings.
pub const BAD_CHUNK_COLOR: Rgb<u8> = Rgb([219, 68, 55]);
/// Pauses.
pub const PAUSE_COLOR: Rgb<u8> = Rgb([255, 204, 128]);
/// Gaps between chunks.
pub const GAP_COLOR: Rgb<u8> = Rgb([210, 210, 210]);
/// Wall-clock time two chunks both claim (an overlap), striped over the bars.
pub const OVERLAP_COLOR: Rgb<u8> = Rgb([142, 36, 170]);
const LEVEL_COLOR: Rgb<u8> = Rgb([52, 168, 83]);
const SILENT_COLOR: Rgb<u8> = Rgb([150, 150, 150]);
const TEXT: Rgb<u8> = Rgb([40, 40, 40]);
const FINDING_COLOR: Rgb<u8> = Rgb([200, 30, 30]);
const WARNING_COLOR: Rgb<u8> = Rgb([230, 140, 0]);

struct Canvas {
    img: RgbImage,
}

impl Canvas {
    fn rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, c: Rgb<u8>) {
        let (w, h) = (i64::from(self.img.width()), i64::from(self.img.height()));
        for y in y0.max(0)..y1.min(h) {
            for x in x0.max(0)..x1.min(w) {
                self.img.put_pixel(x as u32, y as u32, c);
            }
        }
    }

    /// Text in the 8x8 public-domain font; characters beyond ASCII become
    /// '?'. Text that would run past the right edge is moved left to fit.
    /// Returns where the text ends.
    fn text(&mut self, x: i64, y: i64, s: &str, c: Rgb<u8>) -> i64 {
        let right = i64::from(self.img.width()) - 2;
        let mut cx = x.min(right - text_width(s)).max(0);
        for ch in s.chars() {
            let ch = match ch {
                '–' | '—' => '-',
                c if c.is_ascii() => c,
                _ => '?',
            };
            let glyph = font8x8::legacy::BASIC_LEGACY[ch as usize];
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits >> col & 1 == 1 {
                        self.rect(cx + col, y + row as i64, cx + col + 1, y + row as i64 + 1, c);
                    }
                }
            }
            cx += 8;
        }
        cx
    }
}

fn text_width(s: &str) -> i64 {
    s.chars().count() as i64 * 8
}

/// Tick spacing for a span, in seconds: about ten ticks.
fn tick_step(span_s: f64) -> f64 {
    const STEPS: [f64; 14] = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
    ];
    STEPS.iter().copied().find(|s| span_s / s <= 10.0).unwrap_or(14400.0)
}

fn seconds_label(d: f64) -> String {
    if d >= 60.0 {
        format!("{:.0} min {:.0} s", (d / 60.0).floor(), d % 60.0)
    } else {
        format!("{d:.1} s")
    }
}

/// Where the recording's wall clock lands on the picture.
struct Plot<'r> {
    /// The chunks with metadata: (position in the recording, metadata).
    chunks: Vec<(usize, &'r ChunkMetadata)>,
    /// Wall-clock start of the earliest chunk.
    start: WallClock,
    /// Seconds from `start` to the end of the latest chunk (at least 1 ms).
    span: f64,
    /// Seconds between axis ticks.
    step: f64,
}

impl Plot<'_> {
    /// The x coordinate of a wall-clock instant.
    fn x_of(&self, t: WallClock) -> i64 {
        i64::from(PLOT_LEFT) + (self.start.ms_until(t) / 1000.0 / self.span * f64::from(PLOT_WIDTH)).round() as i64
    }
}

/// Draws the timeline of a validated recording.
pub fn draw(rec: &ValidatedRecording) -> RgbImage {
    let mut c = Canvas {
        img: RgbImage::from_pixel(WIDTH, HEIGHT, BACKGROUND),
    };
    let chunks: Vec<(usize, &ChunkMetadata)> = rec
        .recording
        .chunks
        .iter()
        .enumerate()
        .filter_map(|(i, ch)| ch.metadata.as_ref().map(|m| (i, m)))
        .collect();
    let title = format!("call {}  recording {}", rec.recording.call_id, rec.recording.key);
    let title: String = title.chars().take(140).collect();
    c.text(8, 8, &title, TEXT);
    let Some(start) = chunks.iter().map(|(_, m)| m.start).min() else {
        c.text(8, 40, "no chunk metadata: nothing to draw", TEXT);
        return c.img;
    };
    let end = chunks.iter().map(|(_, m)| m.end()).max().unwrap_or(start);
    let span = start.ms_until(end).max(1.0) / 1000.0;
    let plot = Plot {
        chunks,
        start,
        span,
        step: tick_step(span),
    };
    c.text(
        8,
        22,
        &format!("{} - {} UTC, {}", start, end.time_of_day(), seconds_label(span)),
        TEXT,
    );
    draw_axis(&mut c, &plot);
    draw_chunks(&mut c, &plot, rec);
    draw_tick_labels(&mut c, &plot);
    draw_levels(&mut c, &plot, rec);
    draw_interruptions(&mut c, &plot, rec);
    draw_findings(&mut c, &plot, rec);
    c.img
}

/// The wall-clock axis with its ticks, and the rows' names.
fn draw_axis(c: &mut Canvas, plot: &Plot) {
    let axis_y = i64::from(BAND_TOP) - 30;
    c.rect(
        i64::from(PLOT_LEFT),
        axis_y + 10,
        i64::from(PLOT_LEFT + PLOT_WIDTH),
        axis_y + 11,
        TEXT,
    );
    let mut t = 0.0;
    while t <= plot.span + 1e-9 {
        let x = i64::from(PLOT_LEFT) + (t / plot.span * f64::from(PLOT_WIDTH)).round() as i64;
        c.rect(x, axis_y + 6, x + 1, axis_y + 11, TEXT);
        t += plot.step;
    }
    c.text(8, i64::from(BARS.0) + 12, "chunks", TEXT);
    c.text(8, i64::from(LEVELS.0) + 18, "audio", TEXT);
    c.text(8, i64::from(FINDINGS_Y), "findings", TEXT);
}

/// One bar per chunk over its wall-clock span, red when it has an error.
fn draw_chunks(c: &mut Canvas, plot: &Plot, rec: &ValidatedRecording) {
    let chunk_has_error = |index: u32| {
        rec.findings
            .iter()
            .any(|f| f.chunk_index == Some(index) && f.severity == Severity::Error)
    };
    for (_, m) in &plot.chunks {
        let (x0, x1) = (plot.x_of(m.start), plot.x_of(m.end()));
        let color = if chunk_has_error(m.index) {
            BAD_CHUNK_COLOR
        } else {
            CHUNK_COLOR
        };
        c.rect(x0 + 1, i64::from(BARS.0), x1.max(x0 + 2), i64::from(BARS.1), color);
        let label = format!("#{}", m.index);
        if x1 - x0 > text_width(&label) + 4 {
            c.text(x0 + 4, i64::from(BARS.0) + 13, &label, BACKGROUND);
        }
    }
}

/// Tick labels, below the findings (under the bars they would collide with pauses).
fn draw_tick_labels(c: &mut Canvas, plot: &Plot) {
    let mut t = 0.0;
    let mut next_free = i64::MIN;
    while t <= plot.span + 1e-9 {
        let x = i64::from(PLOT_LEFT) + (t / plot.span * f64::from(PLOT_WIDTH)).round() as i64;
        let label = plot.start.plus_ms(t * 1000.0).time_of_day();
        let lx = x - text_width(&label) / 2;
        if lx >= next_free {
            next_free = c.text(lx, i64::from(HEIGHT) - 14, &label, TEXT) + 8;
            c.rect(x, i64::from(HEIGHT) - 20, x + 1, i64::from(HEIGHT) - 16, TEXT);
        }
        t += plot.step;
    }
}

/// Audio levels: one bar per second of each chunk's media, laid over its wall-clock span.
fn draw_levels(c: &mut Canvas, plot: &Plot, rec: &ValidatedRecording) {
    let (ly0, ly1) = (i64::from(LEVELS.0), i64::from(LEVELS.1));
    let mut any_levels = false;
    for (i, m) in &plot.chunks {
        let Some(audio) = rec.checks.get(*i).and_then(|c| c.audio.as_ref()) else {
            continue;
        };
        any_levels = true;
        // Where each pause cut from the media sits in media time.
        let mut before = 0.0;
        let cut: Vec<(f64, f64)> = if rec.checks[*i].pauses_cut == Some(true) {
            m.pauses
                .iter()
                .map(|p| {
                    let at = m.start.ms_until(p.start) - before;
                    before += p.duration_ms;
                    (at, p.duration_ms)
                })
                .collect()
        } else {
            Vec::new()
        };
        for (s, &level) in audio.levels_dbfs.iter().enumerate() {
            let media_ms = s as f64 * 1000.0;
            let wall_ms = media_ms
                + cut
                    .iter()
                    .filter(|(at, _)| *at <= media_ms)
                    .map(|(_, d)| d)
                    .sum::<f64>();
            let right = i64::from(PLOT_LEFT + PLOT_WIDTH);
            let x0 = plot.x_of(m.start.plus_ms(wall_ms)).min(right - 1);
            let x1 = plot.x_of(m.start.plus_ms(wall_ms + 1000.0)).clamp(x0 + 1, right);
            if level < crate::formats::deep::SILENCE_DBFS {
                c.rect(x0, ly1 - 2, x1, ly1, SILENT_COLOR);
            } else {
                let h = ((level - crate::formats::deep::SILENCE_DBFS) / -crate::formats::deep::SILENCE_DBFS
                    * (ly1 - ly0) as f64) as i64;
                c.rect(x0, ly1 - h.max(1), x1, ly1, LEVEL_COLOR);
            }
        }
    }
    if !any_levels {
        c.text(i64::from(PLOT_LEFT), ly0 + 18, no_levels_note(rec), SILENT_COLOR);
    }
}

/// Why a picture has no audio levels: the audio of a truncated or
/// undecodable chunk is not decoded even with `--deep`; otherwise `--deep`
/// was not asked for.
fn no_levels_note(rec: &ValidatedRecording) -> &'static str {
    let has = |code: Code| rec.findings.iter().any(|f| f.code == code);
    if has(Code::MediaTruncated) || has(Code::MediaInvalid) {
        "audio levels: not decoded, a chunk is truncated or invalid (see the findings)"
    } else if has(Code::AudioDecodeError) {
        "audio levels: the audio does not decode (see the findings)"
    } else {
        "audio levels: run with --deep"
    }
}

/// Pauses and gaps over the chunks and levels: nothing was recorded then.
fn draw_interruptions(c: &mut Canvas, plot: &Plot, rec: &ValidatedRecording) {
    let (band_top, band_bottom) = (i64::from(BAND_TOP), i64::from(BAND_BOTTOM));
    let mut labels: Vec<(i64, String)> = Vec::new();
    for w in plot.chunks.windows(2) {
        let prev_end = w[0].1.end();
        let gap = prev_end.ms_until(w[1].1.start);
        let tolerance = crate::validate::tolerance_ms(rec.checks[w[0].0].media.as_ref());
        if gap < -tolerance {
            // Both chunks claim this time: stripes across both bars.
            let (x0, x1) = (plot.x_of(w[1].1.start), plot.x_of(prev_end));
            for y in (i64::from(BARS.0)..i64::from(BARS.1)).step_by(4) {
                c.rect(x0, y, x1.max(x0 + 1), y + 2, OVERLAP_COLOR);
            }
            labels.push((x0, format!("overlap {}", seconds_label(-gap / 1000.0))));
        }
        if gap > tolerance {
            c.rect(
                plot.x_of(prev_end),
                band_top,
                plot.x_of(w[1].1.start).max(plot.x_of(prev_end) + 1),
                band_bottom,
                GAP_COLOR,
            );
            labels.push((plot.x_of(prev_end), format!("gap {}", seconds_label(gap / 1000.0))));
        }
    }
    for (_, m) in &plot.chunks {
        for p in &m.pauses {
            let (x0, x1) = (plot.x_of(p.start), plot.x_of(p.start.plus_ms(p.duration_ms)));
            c.rect(x0, band_top, x1.max(x0 + 1), band_bottom, PAUSE_COLOR);
            labels.push((x0, format!("pause {}", seconds_label(p.duration_ms / 1000.0))));
        }
    }
    let mut next_free = i64::MIN;
    for (x, label) in labels {
        let x = x.max(next_free);
        next_free = c.text(x, band_top - 12, &label, TEXT) + 8;
    }
}

/// Findings: a marker at the chunk (or recording start) with its code.
fn draw_findings(c: &mut Canvas, plot: &Plot, rec: &ValidatedRecording) {
    let mut next_free = i64::MIN;
    for f in &rec.findings {
        let at = f
            .chunk_index
            .and_then(|i| plot.chunks.iter().find(|(_, m)| m.index == i))
            .map_or(plot.start, |(_, m)| m.start);
        let x = plot.x_of(at);
        let color = if f.severity == Severity::Error {
            FINDING_COLOR
        } else {
            WARNING_COLOR
        };
        c.rect(x, i64::from(FINDINGS_Y) - 4, x + 3, i64::from(FINDINGS_Y) + 10, color);
        let lx = (x + 5).max(next_free);
        next_free = c.text(lx, i64::from(FINDINGS_Y), f.code.as_str(), color) + 8;
    }
}

/// Draws and writes the PNG atomically to `path` in `storage` (a local
/// file's folder created when missing).
pub fn write_png(storage: &crate::Storage, rec: &ValidatedRecording, path: &std::path::Path) -> crate::Result<()> {
    storage.write(path, &png(rec, path)?)
}

/// The PNG bytes of `rec`'s timeline (`path` names it in an error).
pub(crate) fn png(rec: &ValidatedRecording, path: &std::path::Path) -> crate::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    draw(rec)
        .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
        .map_err(|e| crate::Error::encode(path, "the timeline PNG", e))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::archive::{Archive, ScanOptions};

    fn drawn(case: &str) -> RgbImage {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/cases")
            .join(case);
        let archive = Archive::scan(&root, &ScanOptions::default()).unwrap();
        draw(&archive.recordings[0].validate(&crate::ValidateOptions::default()))
    }

    #[test]
    fn an_overlap_is_striped_and_a_gap_shaded() {
        let overlap = drawn("chunk_overlap");
        assert!(overlap.pixels().any(|p| *p == OVERLAP_COLOR), "no overlap drawn");
        let gap = drawn("chunk_gap");
        assert!(gap.pixels().any(|p| *p == GAP_COLOR), "no gap drawn");
        assert!(!gap.pixels().any(|p| *p == OVERLAP_COLOR), "an overlap drawn for a gap");
    }

    #[test]
    fn a_truncated_chunk_is_why_there_are_no_levels_even_with_deep() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cases");
        let deep = crate::ValidateOptions {
            deep: true,
            ..Default::default()
        };
        let note = |case: &str, options: &crate::ValidateOptions| {
            let archive = Archive::scan(&root.join(case), &ScanOptions::default()).unwrap();
            no_levels_note(&archive.recordings[0].validate(options))
        };
        assert!(note("media_truncated", &deep).contains("truncated"));
        assert_eq!(
            note("good", &crate::ValidateOptions::default()),
            "audio levels: run with --deep"
        );
    }

    #[test]
    fn text_at_the_right_edge_is_moved_left_to_fit() {
        let mut c = Canvas {
            img: RgbImage::from_pixel(WIDTH, HEIGHT, BACKGROUND),
        };
        let end = c.text(i64::from(WIDTH) - 10, 20, "pause 1.5 s", TEXT);
        assert!(end <= i64::from(WIDTH), "text ends at {end}");
        let inked = (0..WIDTH)
            .filter(|&x| (20..28).any(|y| *c.img.get_pixel(x, y) == TEXT))
            .count();
        assert!(inked > 20, "the text was not drawn");
    }
}
