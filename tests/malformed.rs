//! The malformed corpus: over a thousand broken variants of the fixtures —
//! truncation at every box boundary, byte flips inside `moov`, huge and zero
//! sizes and counts, `largesize` overflows, nesting-depth bombs, chunk
//! offsets past the end, disagreeing table counts, and metadata with every
//! field of the wrong type. Each must give a result or a typed error, never a
//! panic, within a time bound and under a memory cap.

mod util;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Cursor;
use std::path::Path;
use std::time::{Duration, Instant};

use recstitch::formats::mp4;
use recstitch::Limits;
use serde_json::Value;

/// Counts the bytes each thread has allocated, to cap what one variant may take.
struct Counting;

thread_local! {
    static CURRENT: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn track(delta: isize) {
    let _ = CURRENT.try_with(|c| {
        let now = c.get().saturating_add_signed(delta);
        c.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

// SAFETY: every call forwards to the system allocator unchanged; the counters
// are plain thread-local cells that never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        track(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        track(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        track(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Most a single variant may allocate beyond what was live before it.
const MEMORY_CAP: usize = 64 << 20;
/// Longest a single variant may take (a hang, not a performance bound).
const TIME_CAP: Duration = Duration::from_secs(5);

/// Runs `f` on this thread, measuring its peak allocation and time.
fn measured<T>(f: impl FnOnce() -> T) -> (T, usize, Duration) {
    let base = CURRENT.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let start = Instant::now();
    let v = f();
    (v, PEAK.with(Cell::get) - base, start.elapsed())
}

#[derive(Debug, Clone, Copy)]
struct BoxAt {
    offset: usize,
    size: usize,
    kind: [u8; 4],
}

const CONTAINERS: [&[u8; 4]; 7] = [b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"udta"];

/// Every box of the file, depth first, through the containers we know.
fn boxes(data: &[u8]) -> Vec<BoxAt> {
    fn walk(data: &[u8], from: usize, to: usize, out: &mut Vec<BoxAt>) {
        let mut pos = from;
        while pos + 8 <= to {
            let size = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
            if size < 8 || pos + size > to {
                break;
            }
            let kind: [u8; 4] = data[pos + 4..pos + 8].try_into().unwrap();
            out.push(BoxAt {
                offset: pos,
                size,
                kind,
            });
            if CONTAINERS.contains(&&kind) {
                walk(data, pos + 8, pos + size, out);
            }
            if &kind == b"stsd" {
                walk(data, pos + 16, pos + size, out);
            }
            pos += size;
        }
    }
    let mut out = Vec::new();
    walk(data, 0, data.len(), &mut out);
    out
}

/// Full boxes whose first field after version/flags is an entry count
/// (`stsz` has its count one field later).
fn count_offset(b: &BoxAt) -> Option<usize> {
    match &b.kind {
        b"stts" | b"ctts" | b"stsc" | b"stco" | b"co64" | b"stss" | b"elst" | b"stsd" | b"dref" => Some(b.offset + 12),
        b"stsz" => Some(b.offset + 16),
        _ => None,
    }
}

fn put_u32(v: &mut [u8], at: usize, x: u32) {
    if at + 4 <= v.len() {
        v[at..at + 4].copy_from_slice(&x.to_be_bytes());
    }
}

/// The broken variants of one MP4, each with a name.
fn media_variants(original: &[u8]) -> Vec<(String, Vec<u8>)> {
    let all = boxes(original);
    let moov = all
        .iter()
        .find(|b| &b.kind == b"moov")
        .copied()
        .expect("the fixture has a moov");
    let mut v: Vec<(String, Vec<u8>)> = Vec::new();
    let name = |b: &BoxAt| String::from_utf8_lossy(&b.kind).into_owned();
    // Truncation at every box boundary, and within every box header.
    for b in &all {
        for cut in [
            b.offset,
            b.offset + 4,
            b.offset + 8,
            b.offset + b.size - 1,
            b.offset + b.size,
        ] {
            if cut < original.len() {
                v.push((format!("truncated at {cut} ({})", name(b)), original[..cut].to_vec()));
            }
        }
    }
    for b in &all {
        // Huge, zero and off-by-one sizes.
        for size in [
            0u32,
            1,
            7,
            8,
            0x7FFF_FFFF,
            0xFFFF_FFFF,
            b.size as u32 + 1,
            b.size as u32 - 1,
        ] {
            let mut m = original.to_vec();
            put_u32(&mut m, b.offset, size);
            v.push((format!("{} size {size}", name(b)), m));
        }
        // largesize overflows: size 1 and a 64-bit size over the end (or under the header).
        for large in [u64::MAX, u64::MAX - 7, 1 << 63, 15, 0] {
            let mut m = original.to_vec();
            put_u32(&mut m, b.offset, 1);
            if b.offset + 16 <= m.len() {
                m[b.offset + 8..b.offset + 16].copy_from_slice(&large.to_be_bytes());
            }
            v.push((format!("{} largesize {large}", name(b)), m));
        }
        // Huge and zero entry counts, which make the tables disagree.
        if let Some(at) = count_offset(b) {
            for count in [0u32, 1, 2, 0x7FFF_FFFF, 0xFFFF_FFFF] {
                let mut m = original.to_vec();
                put_u32(&mut m, at, count);
                v.push((format!("{} count {count}", name(b)), m));
            }
        }
        // Every chunk offset past the end of the file.
        if &b.kind == b"stco" {
            for past in [original.len() as u32, original.len() as u32 + 1_000_000, u32::MAX] {
                let mut m = original.to_vec();
                let n = u32::from_be_bytes(m[b.offset + 12..b.offset + 16].try_into().unwrap()) as usize;
                for i in 0..n {
                    put_u32(&mut m, b.offset + 16 + 4 * i, past);
                }
                v.push((format!("stco offsets at {past}"), m));
            }
        }
        // A sample size table claiming far more bytes than the file holds.
        if &b.kind == b"stsz" {
            let mut m = original.to_vec();
            put_u32(&mut m, b.offset + 12, 0x00FF_FFFF);
            v.push(("stsz constant size 16 MiB".into(), m));
        }
    }
    // Byte flips inside moov.
    let mut rng = util::Rng(0xC0FFEE);
    for i in 0..400 {
        let mut m = original.to_vec();
        let at = moov.offset + 8 + rng.below(moov.size - 8);
        m[at] ^= 1 << rng.below(8);
        if i % 2 == 0 {
            let at = moov.offset + 8 + rng.below(moov.size - 8);
            m[at] = rng.below(256) as u8;
        }
        v.push((format!("flip {i}"), m));
    }
    v
}

/// An MP4 whose `moov` holds containers nested `depth` deep: the walker must
/// stop at the depth limit, not overflow the stack.
fn nesting_bomb(kind: &[u8; 4], depth: usize) -> Vec<u8> {
    let mut body: Vec<u8> = Vec::new();
    for _ in 0..depth {
        let mut outer = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        outer.extend_from_slice(kind);
        outer.extend_from_slice(&body);
        body = outer;
    }
    let mut file = vec![0, 0, 0, 16, b'f', b't', b'y', b'p', b'i', b's', b'o', b'm', 0, 0, 2, 0];
    let mut trak = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    trak.extend_from_slice(b"trak");
    trak.extend_from_slice(&body);
    file.extend_from_slice(&((trak.len() + 8) as u32).to_be_bytes());
    file.extend_from_slice(b"moov");
    file.extend_from_slice(&trak);
    file
}

#[test]
fn malformed_media_gives_typed_errors_never_panics() {
    let original = std::fs::read(
        util::cases().join("good/3c57992b-07bf-4387-a8bc-a13561e8650a/0-eus-d11-293c5f93ea87298458e47ef52dda3bb9.mp4"),
    )
    .unwrap();
    let mut variants = media_variants(&original);
    for (kind, depth) in [
        (b"mdia", 100_000),
        (b"minf", 50_000),
        (b"edts", 20),
        (b"stbl", 17),
        (b"trak", 100_000),
    ] {
        variants.push((
            format!("{} nested {depth} deep", String::from_utf8_lossy(kind)),
            nesting_bomb(kind, depth),
        ));
    }
    assert!(variants.len() >= 1000, "only {} variants", variants.len());
    let limits = Limits::default();
    let (mut ok, mut errors) = (0, std::collections::BTreeMap::<&'static str, usize>::new());
    let (mut worst_mem, mut worst_time) = (0, Duration::ZERO);
    for (name, bytes) in &variants {
        let len = bytes.len() as u64;
        let (result, mem, time) = measured(|| {
            std::panic::catch_unwind(|| {
                mp4::probe_reader(Cursor::new(bytes.as_slice()), len, Path::new("variant.mp4"), &limits)
            })
        });
        let result = result.unwrap_or_else(|_| panic!("probe panicked on variant {name:?}"));
        assert!(mem <= MEMORY_CAP, "variant {name:?} allocated {mem} bytes");
        assert!(time <= TIME_CAP, "variant {name:?} took {time:?}");
        worst_mem = worst_mem.max(mem);
        worst_time = worst_time.max(time);
        match result {
            Ok(m) => {
                ok += 1;
                // Whatever probes must also survive the rest of the checks.
                let _ = m.first_sample_past_end();
                let _ = recstitch::output::report::ProbeReport::new(&m);
            }
            Err(e) => *errors.entry(e.category()).or_default() += 1,
        }
    }
    eprintln!(
        "{} media variants: {ok} probed, errors {errors:?}; worst {worst_mem} bytes, {worst_time:?}",
        variants.len()
    );
    // The depth bombs end in a limit error that names the limit.
    let bomb = nesting_bomb(b"mdia", 100_000);
    let e = mp4::probe_reader(
        Cursor::new(&bomb[..]),
        bomb.len() as u64,
        Path::new("bomb.mp4"),
        &limits,
    )
    .unwrap_err();
    assert!(e.to_string().contains("max_box_depth"), "{e}");
}

/// The deepest box nesting `Limits::with` accepts is walked on half a
/// worker thread's default stack, and deeper ends in the limit error.
#[test]
fn the_deepest_box_nesting_limits_accept_fits_a_small_stack() {
    use recstitch::limits::{Limit, MAX_BOX_DEPTH};
    let limits = Limits::default().with(Limit::BoxDepth, MAX_BOX_DEPTH as u64).unwrap();
    assert!(Limits::default()
        .with(Limit::BoxDepth, MAX_BOX_DEPTH as u64 + 1)
        .is_err());
    for kind in [b"mdia", b"minf"] {
        let bomb = nesting_bomb(kind, MAX_BOX_DEPTH + 10);
        let limits = limits.clone();
        let e = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(move || {
                mp4::probe_reader(
                    Cursor::new(&bomb[..]),
                    bomb.len() as u64,
                    Path::new("bomb.mp4"),
                    &limits,
                )
            })
            .unwrap()
            .join()
            .unwrap()
            .unwrap_err();
        assert!(e.to_string().contains("max_box_depth"), "{e}");
    }
}

/// Every way to give a metadata field the wrong type.
fn wrong_types() -> Vec<Value> {
    vec![
        Value::Null,
        Value::Bool(true),
        serde_json::json!(-1),
        serde_json::json!(1e300),
        serde_json::json!("text"),
        serde_json::json!([]),
        serde_json::json!({}),
        serde_json::json!("2021-13-45T99:99:99Z"),
    ]
}

/// Paths to every value inside a JSON document.
fn paths(v: &Value, prefix: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{prefix}/{k}");
                out.push(p.clone());
                paths(x, p, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let p = format!("{prefix}/{i}");
                out.push(p.clone());
                paths(x, p, out);
            }
        }
        _ => {}
    }
}

#[test]
fn metadata_and_events_with_every_field_of_the_wrong_type() {
    let dir = util::cases().join("good/3c57992b-07bf-4387-a8bc-a13561e8650a");
    let meta: Value =
        serde_json::from_slice(&std::fs::read(dir.join("0-eus-d11-93febf7d8405595011fab94b54be8806.json")).unwrap())
            .unwrap();
    let event: Value = serde_json::from_slice(&std::fs::read(dir.join("event.json")).unwrap()).unwrap();
    let mut n = 0;
    let mut rejected = 0;
    for (doc, is_event) in [(meta, false), (event, true)] {
        let mut all = Vec::new();
        paths(&doc, String::new(), &mut all);
        for p in &all {
            for wrong in wrong_types() {
                let mut v = doc.clone();
                *v.pointer_mut(p).unwrap() = wrong.clone();
                let (result, mem, time) = measured(|| {
                    std::panic::catch_unwind(|| {
                        if is_event {
                            recstitch::input::metadata::parse_events(&v, Path::new("event.json")).map(|_| ())
                        } else {
                            recstitch::input::metadata::parse_metadata(&v, Path::new("meta.json")).map(|_| ())
                        }
                    })
                });
                let result = result.unwrap_or_else(|_| panic!("parsing panicked with {p} = {wrong}"));
                assert!(mem <= MEMORY_CAP && time <= TIME_CAP);
                if let Err(e) = result {
                    rejected += 1;
                    // The message names the file and the field.
                    let msg = e.to_string();
                    let field = p.rsplit('/').find(|s| s.parse::<usize>().is_err()).unwrap_or("");
                    assert!(msg.contains(field) || msg.contains("expected an object"), "{p}: {msg}");
                }
                n += 1;
            }
        }
    }
    eprintln!("{n} metadata/event variants, {rejected} rejected with a message naming the field");
    assert!(n >= 300, "only {n} variants");
}

#[test]
fn broken_chunks_through_the_whole_pipeline_are_reported_not_fatal() {
    let good = util::cases().join("good/3c57992b-07bf-4387-a8bc-a13561e8650a");
    let original = std::fs::read(good.join("0-eus-d11-293c5f93ea87298458e47ef52dda3bb9.mp4")).unwrap();
    let metadata = std::fs::read_to_string(good.join("0-eus-d11-293c5f93ea87298458e47ef52dda3bb9.json")).unwrap();
    let archive = util::temp_dir("malformed-archive");
    let variants = media_variants(&original);
    let picked: Vec<&(String, Vec<u8>)> = variants.iter().step_by(variants.len() / 60).collect();
    for (i, (_, bytes)) in picked.iter().enumerate() {
        let doc = format!("0-broken-{i:03}");
        let call = format!("{i:08}-0000-4000-8000-000000000000");
        std::fs::write(archive.join(format!("{doc}.mp4")), bytes).unwrap();
        let json = metadata
            .replace("0-eus-d11-293c5f93ea87298458e47ef52dda3bb9", &doc)
            .replace("3c57992b-07bf-4387-a8bc-a13561e8650a", &call);
        std::fs::write(archive.join(format!("{doc}.json")), json).unwrap();
    }
    let out = util::temp_dir("malformed-out");
    let o = util::recstitch(&[
        "run",
        "--json",
        "--deep",
        "--progress",
        "none",
        archive.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let code = o.status.code();
    assert!(
        matches!(code, Some(0) | Some(1)),
        "exit {code:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let report: Value = serde_json::from_slice(&o.stdout).unwrap();
    let recs = report["recordings"].as_array().unwrap();
    assert_eq!(recs.len(), picked.len());
    let mut statuses = std::collections::BTreeMap::<String, usize>::new();
    for r in recs {
        let s = r["status"].as_str().unwrap().to_string();
        assert!(["invalid", "failed", "stitched"].contains(&s.as_str()), "{r}");
        if s == "invalid" {
            assert!(r["findings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f["severity"] == "error"));
        }
        *statuses.entry(s).or_default() += 1;
    }
    eprintln!("{} broken chunks through run --deep: {statuses:?}", picked.len());
    // Nothing partial is left in the output folder.
    let leftovers = util::leftovers(&out);
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Regression (found by the `stitch` fuzzer): chunk 1 of the good recording
/// with an audio sample size of 1.5 GB. The deep check allocated a buffer of
/// that size before reading; now the sample is refused unread and the chunk
/// is reported truncated.
#[test]
fn regression_deep_check_does_not_allocate_a_huge_sample() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/regressions/huge-audio-sample-size.mp4");
    let media = recstitch::probe(&path, &Limits::default()).unwrap();
    assert!(media.first_sample_past_end().is_some());
    let ((audio, video), mem, _) = measured(|| {
        (
            recstitch::formats::deep::analyse_audio(
                &recstitch::Storage::local(),
                &media,
                &recstitch::Limits::default(),
            ),
            recstitch::formats::deep::check_video(
                &recstitch::Storage::local(),
                &media,
                Some(1),
                &recstitch::Limits::default(),
            ),
        )
    });
    assert!(mem <= MEMORY_CAP, "the deep check allocated {mem} bytes");
    assert!(audio.unwrap_err().to_string().contains("does not fit the file"));
    // Only the audio sample was made huge: the video walks cleanly, within the same memory cap.
    assert_eq!(video, Vec::new(), "the video of the chunk is intact");
    // Through validate --deep: reported as truncated, not decoded.
    let archive = util::temp_dir("regression-huge-sample");
    let good = util::cases().join("good/3c57992b-07bf-4387-a8bc-a13561e8650a");
    for name in [
        "0-eus-d11-293c5f93ea87298458e47ef52dda3bb9.mp4",
        "0-eus-d11-293c5f93ea87298458e47ef52dda3bb9.json",
        "0-eus-d11-93febf7d8405595011fab94b54be8806.json",
    ] {
        std::fs::copy(good.join(name), archive.join(name)).unwrap();
    }
    std::fs::copy(&path, archive.join("0-eus-d11-93febf7d8405595011fab94b54be8806.mp4")).unwrap();
    let (code, report) = util::recstitch_json(&["validate", "--json", "--deep", archive.to_str().unwrap()]);
    assert_eq!(code, 1);
    let codes: Vec<&str> = report["recordings"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"media.truncated") && !codes.contains(&"audio.decode_error"),
        "{codes:?}"
    );
}
