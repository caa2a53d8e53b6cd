//! An async worker calls the library from inside its own tokio runtime. This
//! test has no harness: its `main` below is a worker's `#[tokio::main]`, and
//! it runs the batch on an `az://` archive (Azurite on a free port) two ways:
//!
//! * straight from the async body, with the storage's own runtime (no
//!   panic: each wait runs on a thread of its own);
//! * through `spawn_blocking`, with a storage whose object-store requests run
//!   on this runtime ([`recstitch::Storage::on_runtime`]), as README advises.
//!
//! Both must write the bytes `recstitch run` writes between local folders.
//! Skipped loudly without Node/Azurite, unless `RECSTITCH_REQUIRE_AZURITE=1`.

#[path = "util/azurite.rs"]
#[allow(dead_code)]
mod azurite;
mod util;

use std::path::Path;

use azurite::{upload_tree, visible_objects, Azurite};
use recstitch::{run_batch, Archive, BatchOptions, Quiet, Report, ScanOptions, Storage};

fn batch_on(storage: &Storage, from: &Path, to: &Path) -> Report {
    let mut scan = ScanOptions::default();
    scan.storage = storage.clone();
    let scanned = Archive::scan(from, &scan).expect("the az:// archive scans");
    let mut batch = BatchOptions::default();
    batch.storage = storage.clone();
    run_batch(&scanned, to, &batch, &Quiet)
}

fn statuses(r: &Report) -> Vec<&'static str> {
    r.recordings.iter().map(|x| x.status.as_str()).collect()
}

#[tokio::main]
async fn main() {
    let Some(az) = Azurite::start("tokio-main") else { return };
    let archive = util::temp_dir("tokio-main-in");
    util::copy_tree(&util::cases().join("good"), &archive.join("good"));
    util::copy_tree(&util::cases().join("good_flat_two_recordings"), &archive.join("flat"));
    let input = az.container("recordings").join("archive");
    let output = az.container("stitched").join("out");
    upload_tree(&az.storage, &archive, &input);

    // Straight from async code, on the storage's own runtime.
    let direct = batch_on(&az.storage, &input, &output);
    assert_eq!(statuses(&direct), ["stitched"; 3], "{direct:?}");

    // On a blocking thread, the requests on this runtime.
    let ours = Storage::on_runtime(tokio::runtime::Handle::current()).expect("a multi-thread runtime");
    az.mount_on(&ours, "recordings");
    az.mount_on(&ours, "stitched");
    let other = output.with_file_name("on-the-callers-runtime");
    let (i, o) = (input.clone(), other.clone());
    let blocking = tokio::task::spawn_blocking(move || batch_on(&ours, &i, &o))
        .await
        .expect("the blocking task ends");
    assert_eq!(statuses(&blocking), ["stitched"; 3], "{blocking:?}");

    let local_out = util::temp_dir("tokio-main-local-out");
    let run = util::recstitch(&[
        "run",
        &archive.display().to_string(),
        "--out",
        &local_out.display().to_string(),
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let local_files = util::visible_files(&local_out);
    assert_eq!(local_files.len(), 9, "3 recordings: media, manifest, chapters");
    assert_eq!(visible_objects(&az.storage, &output), local_files);
    assert_eq!(visible_objects(&az.storage, &other), local_files);
    println!("tokio_main: the batch ran on an az:// archive from inside #[tokio::main], both ways, with the local run's bytes");
}
