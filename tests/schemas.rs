//! The manifest and the report against their published JSON Schemas
//! (`schemas/*.v2.json`, checked by the `jsonschema` crate), read back with
//! serde, and the same bytes whatever the caller's working directory.

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn schema(name: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas").join(name);
    let schema: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).expect("the schema itself is valid")
}

/// Every error of `value` against `validator`, as text.
fn violations(validator: &jsonschema::Validator, value: &Value) -> Vec<String> {
    validator
        .iter_errors(value)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// Every manifest (`*.json` beside a stitched MP4) under `dir`.
fn manifests(dir: &Path) -> Vec<PathBuf> {
    util::files(dir, false)
        .into_iter()
        .map(|(name, _)| dir.join(name))
        .filter(|p| p.extension().is_some_and(|e| e == "json") && p.with_extension("mp4").exists())
        .collect()
}

#[test]
fn every_fixture_report_and_manifest_validates_against_its_schema() {
    let (report_schema, manifest_schema) = (schema("report.v2.json"), schema("manifest.v2.json"));
    let mut checked_manifests = 0;
    let mut failures = Vec::new();
    let cases: Vec<PathBuf> = std::fs::read_dir(util::cases())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for (n, case) in cases.iter().enumerate() {
        for gaps in ["collapse", "wallclock"] {
            let out = util::temp_dir(&format!("schemas/{n}-{gaps}"));
            let (_, report) = util::run_json_with(case, &out, &["--deep", "--gaps", gaps]);
            for v in violations(&report_schema, &report) {
                failures.push(format!("{} report: {v}", case.display()));
            }
            for path in manifests(&out) {
                let manifest: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
                for v in violations(&manifest_schema, &manifest) {
                    failures.push(format!("{}: {v}", path.display()));
                }
                checked_manifests += 1;
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        checked_manifests >= 20,
        "only {checked_manifests} manifests were checked"
    );
}

#[test]
fn the_schemas_refuse_what_breaks_them() {
    let manifest_schema = schema("manifest.v2.json");
    let out = util::temp_dir("schemas-refuse");
    let (code, report) = util::run_batch_json(&util::cases().join("good"), &out);
    assert_eq!(code, 0);
    let path = PathBuf::from(report["recordings"][0]["manifest"].as_str().unwrap());
    let good: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(violations(&manifest_schema, &good), Vec::<String>::new());
    let broken = |edit: fn(&mut Value)| {
        let mut m = good.clone();
        edit(&mut m);
        violations(&manifest_schema, &m)
    };
    assert!(!broken(|m| m["schemaVersion"] = 1.into()).is_empty());
    assert!(!broken(|m| m["output"]["sha256"] = "xyz".into()).is_empty());
    assert!(!broken(|m| m["chunks"][0]["outputStart"] = 0.into()).is_empty());
    assert!(!broken(|m| m["segments"][0]["wallClockEnd"] = "yesterday".into()).is_empty());
}

#[test]
fn manifests_read_back_with_serde_byte_for_byte() {
    let out = util::temp_dir("schemas-roundtrip");
    for gaps in ["collapse", "wallclock"] {
        let archive = util::cases().join("good");
        let (code, report) = util::run_json_with(&archive, &out, &["--deep", "--gaps", gaps, "--force"]);
        assert_eq!(code, 0);
        let path = PathBuf::from(report["recordings"][0]["manifest"].as_str().unwrap());
        let bytes = std::fs::read(&path).unwrap();
        let manifest: recstitch::Manifest = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(manifest.schema_version, 2);
        assert!(manifest.files.is_none(), "where the files are is not part of the JSON");
        let mut again = serde_json::to_vec_pretty(&manifest).unwrap();
        again.push(b'\n');
        assert!(
            again == bytes,
            "{gaps}: the manifest does not read back to the same bytes"
        );
        let report: recstitch::Report = serde_json::from_value(report).unwrap();
        assert_eq!(report.recordings[0].status, recstitch::Status::Stitched);
    }
}

#[test]
fn manifest_bytes_do_not_depend_on_the_working_directory() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut manifests = Vec::new();
    for (cwd, archive) in [
        (root.to_path_buf(), PathBuf::from("fixtures/cases/good")),
        (std::env::temp_dir(), root.join("fixtures/cases/good")),
    ] {
        let out = util::temp_dir(&format!("schemas-cwd-{}", manifests.len()));
        let done = Command::new(env!("CARGO_BIN_EXE_recstitch"))
            .current_dir(&cwd)
            .args([
                "run",
                "--progress",
                "none",
                archive.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
        let found = self::manifests(&out);
        assert_eq!(found.len(), 1);
        manifests.push(std::fs::read(&found[0]).unwrap());
    }
    assert!(
        manifests[0] == manifests[1],
        "the manifest depends on the working directory"
    );
}

#[test]
fn chunk_byte_ranges_are_contiguous_and_do_not_overlap() {
    let out = util::temp_dir("schemas-ranges");
    let (_, report) = util::run_batch_json(&util::cases().join("good"), &out);
    let path = PathBuf::from(report["recordings"][0]["manifest"].as_str().unwrap());
    let m: recstitch::Manifest = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let ranges: Vec<(u64, u64)> = m
        .chunks
        .iter()
        .map(|c| (c.output_byte_start, c.output_byte_end))
        .collect();
    for pair in ranges.windows(2) {
        assert_eq!(pair[0].1, pair[1].0, "{ranges:?}");
    }
    assert!(ranges.iter().all(|(a, b)| a < b), "{ranges:?}");
    assert_eq!(ranges.last().unwrap().1, m.output.bytes, "{ranges:?}");
}

#[test]
fn the_cli_prints_the_published_schemas() {
    for (doc, file) in [
        ("manifest", "manifest.v2.json"),
        ("report", "report.v2.json"),
        ("fetch-report", "fetch-report.v1.json"),
    ] {
        let done = util::recstitch(&["schema", doc]);
        assert!(done.status.success());
        let published = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas").join(file)).unwrap();
        assert!(
            done.stdout == published,
            "recstitch schema {doc} differs from schemas/{file}"
        );
    }
}

#[test]
fn the_schemas_list_every_finding_code() {
    for file in ["manifest.v2.json", "report.v2.json"] {
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas").join(file)).unwrap();
        for code in recstitch::Code::ALL {
            assert!(
                text.contains(&format!("\"{}\"", code.as_str())),
                "schemas/{file} lacks {code}"
            );
        }
    }
}
