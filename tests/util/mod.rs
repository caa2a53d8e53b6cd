//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The fixture cases folder.
pub fn cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cases")
}

/// The status of each recording of a `validate`/`run` JSON report.
pub fn statuses(report: &serde_json::Value) -> Vec<String> {
    report["recordings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_string())
        .collect()
}

/// Runs the `recstitch` binary with `args`.
pub fn recstitch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_recstitch"))
        .args(args)
        .output()
        .expect("run recstitch")
}

/// Runs the binary and parses its stdout as JSON.
pub fn recstitch_json(args: &[&str]) -> (i32, serde_json::Value) {
    let out = recstitch(args);
    let code = out.status.code().expect("exit code");
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, json)
}

/// `recstitch run --json --progress none ARCHIVE --out OUT`.
pub fn run_batch(archive: &Path, out: &Path) -> Output {
    recstitch(&[
        "run",
        "--json",
        "--progress",
        "none",
        archive.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ])
}

/// [`run_batch`] with its exit code and its report.
pub fn run_batch_json(archive: &Path, out: &Path) -> (i32, serde_json::Value) {
    let done = run_batch(archive, out);
    let report = serde_json::from_slice(&done.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&done.stdout),
            String::from_utf8_lossy(&done.stderr)
        )
    });
    (done.status.code().expect("exit code"), report)
}

/// Whether an outside tool is on PATH. When it is not, tests that need it
/// skip loudly, except under `RECSTITCH_REQUIRE_FFMPEG=1` (ffmpeg's tools,
/// MediaInfo) or `RECSTITCH_REQUIRE_PLAYERS=1` (mpv, VLC), where they fail.
pub fn have_tool(tool: &str) -> bool {
    let flag = if tool.starts_with("ff") {
        "-version"
    } else {
        "--version"
    };
    // VLC answers as root too (with a refusal), so its presence is enough.
    let found = Command::new(tool)
        .arg(flag)
        .output()
        .map(|o| o.status.success() || tool == "cvlc")
        .unwrap_or(false);
    // Players answer to their own variable; ffmpeg's tools and MediaInfo to RECSTITCH_REQUIRE_FFMPEG.
    let require = if matches!(tool, "mpv" | "cvlc") {
        "RECSTITCH_REQUIRE_PLAYERS"
    } else {
        "RECSTITCH_REQUIRE_FFMPEG"
    };
    if !found {
        if std::env::var(require).as_deref() == Ok("1") {
            panic!("{tool} is required ({require}=1) but was not found on PATH");
        }
        eprintln!("SKIPPED: {tool} not found on PATH; this oracle test did not run");
    }
    found
}

/// A fresh temporary folder under the target directory.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub mod gen;
pub mod oracle;
#[cfg(feature = "fetch")]
pub mod service;
pub mod spec;

/// Builds (or reuses) an archive of `n` copies of the `good` fixture
/// recording under fresh call, document and recording ids.
pub fn copies_of_good(n: usize) -> PathBuf {
    // Tests of one binary run in parallel threads: build each archive once.
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("generated/copies-{n}"));
    if dir.join(".complete").exists() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let src = cases().join("good/3c57992b-07bf-4387-a8bc-a13561e8650a");
    let call = "3c57992b-07bf-4387-a8bc-a13561e8650a";
    let mut names: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let docs: Vec<String> = names
        .iter()
        .filter(|n| n.ends_with(".mp4"))
        .map(|n| n.trim_end_matches(".mp4").to_string())
        .collect();
    let event = std::fs::read_to_string(src.join("event.json")).unwrap();
    let rec_id = event
        .split("/recordingId/")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    for i in 0..n {
        let new_call = format!("{i:08}-0000-4000-8000-000000000000");
        let out = dir.join(&new_call);
        std::fs::create_dir_all(&out).unwrap();
        let rename = |text: &str| {
            let mut t = text.replace(call, &new_call).replace(&rec_id, &format!("rec{i:05}"));
            for d in &docs {
                t = t.replace(d.as_str(), &format!("{d}-{i:05}"));
            }
            t
        };
        for name in &names {
            let target = out.join(rename(name));
            if name.ends_with(".json") {
                std::fs::write(&target, rename(&std::fs::read_to_string(src.join(name)).unwrap())).unwrap();
            } else {
                std::fs::copy(src.join(name), &target).unwrap();
            }
        }
    }
    std::fs::write(dir.join(".complete"), "").unwrap();
    dir
}

/// A small, seeded generator (a 64-bit LCG): the same sequence on every
/// run, so that generated cases are reproducible.
pub struct Rng(pub u64);

impl Rng {
    /// The next 47 bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 17
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A command running `program` as an unprivileged user (nobody) when the
/// tests run as root, for whom permissions do not stop reading and whom
/// VLC refuses; as is otherwise.
pub fn unprivileged(program: &str) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root {
        return Command::new(program);
    }
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "env"]);
    c.arg(format!("HOME={}", std::env::temp_dir().display()));
    c.arg(program);
    c
}

/// `recstitch run --json --progress none ARCHIVE --out OUT` with `extra`
/// arguments, its exit code and its report.
pub fn run_json_with(archive: &Path, out: &Path, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["run", "--json", "--progress", "none"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[archive.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    recstitch_json(&args)
}

/// Copies the folder tree `from` into `to` (created when missing).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let target = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_tree(&p, &target);
        } else {
            std::fs::copy(&p, &target).unwrap();
        }
    }
}

/// The files under `dir` (hidden ones included) that are temporaries
/// (`.<name>.<random>.tmp`) or recording locks (`.<key>.lock`): after a
/// finished run there must be none.
pub fn leftovers(dir: &Path) -> Vec<String> {
    files(dir, true)
        .into_iter()
        .map(|(name, _)| name)
        .filter(|n| n.ends_with(".tmp") || n.contains(".tmp-") || n.ends_with(".lock"))
        .collect()
}

/// Every non-hidden file under `dir` with its bytes, sorted by relative path.
pub fn visible_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    files(dir, false)
}

/// Every file under `dir` (hidden ones too when `hidden`) with its bytes,
/// sorted by relative path.
pub fn files(dir: &Path, hidden: bool) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd {
            let p = e.unwrap().path();
            if !hidden && p.file_name().unwrap().to_string_lossy().starts_with('.') {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}
