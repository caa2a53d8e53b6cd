//! Hostile input: mutated headers and malformed files must give a typed
//! error or a finding, never a panic or a hang.

mod util;

use std::io::Cursor;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use recstitch::{media, Limits};

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(util::cases().join(name)).unwrap()
}

/// Runs `f` on another thread and fails if it takes longer than `limit`
/// (a hang) or panics.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(v) => v,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("no answer within {limit:?}: a hang"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the probe panicked"),
    }
}

/// The end of the `moov` box of a faststart file (where headers end).
fn header_end(bytes: &[u8]) -> usize {
    let mut pos = 0usize;
    while pos + 8 <= bytes.len() {
        let size = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &bytes[pos + 4..pos + 8];
        if kind == b"mdat" || size < 8 {
            break;
        }
        pos += size;
    }
    pos.min(bytes.len())
}

#[test]
fn twenty_thousand_mutated_headers_never_panic_or_hang() {
    let original = fixture("good/3c57992b-07bf-4387-a8bc-a13561e8650a/0-eus-d11-293c5f93ea87298458e47ef52dda3bb9.mp4");
    let end = header_end(&original);
    assert!(end > 1000, "the fixture is expected to keep its moov first");
    let counts = within(Duration::from_secs(300), move || {
        let limits = Limits::default();
        let mut rng = util::Rng(0x5EED_0000_0000_0001);
        let (mut ok, mut err) = (0, 0);
        for _ in 0..20_000 {
            let mut bytes = original.clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(end - 4);
                match rng.below(4) {
                    0 => bytes[at] = rng.next() as u8,
                    1 => bytes[at] ^= 1 << rng.below(8),
                    _ => {
                        let special = [0u32, 1, 7, 8, 9, 16, 0x7FFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFF8];
                        let v = if rng.below(2) == 0 {
                            special[rng.below(special.len())]
                        } else {
                            rng.next() as u32
                        };
                        bytes[at..at + 4].copy_from_slice(&v.to_be_bytes());
                    }
                }
            }
            let len = bytes.len() as u64;
            match media::probe_reader(Cursor::new(bytes), len, Path::new("mutated.mp4"), &limits) {
                Ok(_) => ok += 1,
                Err(_) => err += 1,
            }
        }
        (ok, err)
    });
    eprintln!("20000 mutations: {} probed, {} typed errors", counts.0, counts.1);
    assert_eq!(counts.0 + counts.1, 20_000);
    assert!(counts.1 > 1000, "mutations should break many headers");
}
