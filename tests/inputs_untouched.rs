//! Inputs are never modified: bytes and modification times of every file
//! of an archive are the same after every command.

mod util;

use std::path::Path;
use std::time::SystemTime;

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>, SystemTime)> {
    util::files(dir, true)
        .into_iter()
        .map(|(name, bytes)| {
            let modified = std::fs::metadata(dir.join(&name)).unwrap().modified().unwrap();
            (name, bytes, modified)
        })
        .collect()
}

#[test]
fn every_command_leaves_every_input_as_it_was() {
    let archive = util::temp_dir("untouched-archive");
    util::copy_tree(&util::cases(), &archive);
    let out = util::temp_dir("untouched-out");
    let (a, o) = (archive.to_str().unwrap(), out.to_str().unwrap());
    let before = snapshot(&archive);
    let mut commands: Vec<Vec<&str>> = vec![
        vec!["validate", a],
        vec!["validate", "--json", "--deep", a],
        vec!["run", "--progress", "none", "--deep", "--timeline", a, "--out", o],
        vec!["run", "--progress", "none", a, "--out", o],
        vec![
            "run",
            "--progress",
            "none",
            "--force",
            "--gaps",
            "wallclock",
            a,
            "--out",
            o,
        ],
        vec!["timeline", "--deep", a, "--out", o],
        vec!["participants", "--json", a, "--out", o],
    ];
    let mp4s: Vec<String> = before
        .iter()
        .filter(|f| f.0.ends_with(".mp4"))
        .map(|f| archive.join(&f.0).display().to_string())
        .collect();
    for m in &mp4s {
        commands.push(vec!["probe", "--json", m]);
    }
    for args in &commands {
        let o = util::recstitch(args);
        assert!(
            matches!(o.status.code(), Some(0..=2)),
            "{args:?} crashed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let after = snapshot(&archive);
        assert_eq!(
            after.len(),
            before.len(),
            "{args:?} added or removed files in the archive"
        );
        for (b, a) in before.iter().zip(&after) {
            assert_eq!(b.0, a.0);
            assert!(b.1 == a.1, "{args:?} changed the bytes of {}", b.0);
            assert_eq!(b.2, a.2, "{args:?} changed the modification time of {}", b.0);
        }
    }
    eprintln!(
        "{} commands; {} input files unchanged after each",
        commands.len(),
        before.len()
    );
}
