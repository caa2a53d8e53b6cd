//! Makes a long chunk for benchmarks: `cargo run --release --example synth -- SOURCE.mp4 SECONDS OUT.mp4`
//! repeats the samples of a real chunk until the output lasts about SECONDS.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [source, seconds, out] = args.as_slice() else {
        eprintln!("usage: synth SOURCE.mp4 SECONDS OUT.mp4");
        return ExitCode::from(2);
    };
    let Ok(seconds) = seconds.parse::<f64>() else {
        eprintln!("synth: SECONDS must be a number, got {seconds:?}");
        return ExitCode::from(2);
    };
    match recstitch::output::synth::repeat_chunk(&PathBuf::from(source), seconds, &PathBuf::from(out)) {
        Ok(m) => {
            println!("{}: {} bytes, {:.3} s", out, m.file_size, m.duration_ms() / 1000.0);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("synth: {e}");
            ExitCode::from(1)
        }
    }
}
