//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The fixture cases folder.
pub fn cases() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cases")
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

/// Whether an ffmpeg tool is on PATH. When it is not, tests that need it
/// skip loudly, except under `RECSTITCH_REQUIRE_FFMPEG=1`, where they fail.
pub fn have_tool(tool: &str) -> bool {
    let flag = if tool.starts_with("ff") {
        "-version"
    } else {
        "--version"
    };
    let found = Command::new(tool)
        .arg(flag)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        if std::env::var("RECSTITCH_REQUIRE_FFMPEG").as_deref() == Ok("1") {
            panic!("{tool} is required (RECSTITCH_REQUIRE_FFMPEG=1) but was not found on PATH");
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
