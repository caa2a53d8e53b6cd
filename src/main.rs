//! The `recstitch` command: argument parsing, printing and exit codes around
//! the library.

// No function over 80 lines (clippy.toml): CI keeps it so.
#![warn(clippy::too_many_lines)]

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use recstitch::batch::{run_batch, validate_isolated, BatchOptions, Shard};
use recstitch::observe::Quiet;
use recstitch::output::report::ProbeReport;
use recstitch::{
    Archive, GapMode, RecordingReport, Report, ScanOptions, Severity, StitchOptions, Storage, ValidateOptions,
};

mod cli;

use cli::{progress, worker as worker_cli};

/// Validate and stitch chunked call recordings.
#[derive(Parser)]
#[command(
    name = "recstitch",
    version,
    about,
    after_help = "Exit codes:\n  0  everything fine: every recording valid, stitched or up to date\n  1  some recording has error findings, failed or was cancelled (or a probed file is truncated)\n  2  the command could not run: bad arguments, unreadable archive, unusable --out\n  3  the archive holds no recording at all (an empty folder, a volume that did not mount)\n  (fetch: 0 every chunk fetched, 1 some chunk not fetched, 2 could not run)\n  (participants: 1 when the --id asked for appears in no recording)\n  (worker: 0 the queue stayed empty (--until-empty) or SIGTERM/SIGINT stopped it, 1 the queue service kept failing, 2 could not run: bad arguments, credentials, a missing queue or a refused key)\nA closed standard output (`| head`) ends a command quietly with 0."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print what was found in one MP4 file.
    Probe {
        /// The MP4 file.
        file: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check every recording of an archive folder without writing anything.
    Validate {
        /// The archive folder.
        archive: PathBuf,
        /// Print the report as one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// Also decode all audio and check the H.264 bitstream.
        #[arg(long)]
        deep: bool,
    },
    /// Validate, then stitch every recording without error findings.
    #[command(visible_alias = "stitch")]
    Run(RunArgs),
    /// Draw each recording's timeline as `<out>/<callId>/<name>.png` (the
    /// name as for `run`: start time in UTC and a short hash).
    Timeline {
        /// The archive folder.
        archive: PathBuf,
        /// Where to write the pictures.
        #[arg(long)]
        out: PathBuf,
        /// Also decode all audio, to draw its level.
        #[arg(long)]
        deep: bool,
    },
    /// Download the chunks of completion events from the service into an
    /// archive folder that `run` reads. Credentials come from the
    /// environment only: RECSTITCH_CONNECTION_STRING
    /// (endpoint=https://…/;accesskey=…), or RECSTITCH_ACCESS_TOKEN (with
    /// RECSTITCH_ENDPOINT). Exit codes: 0 every chunk fetched or already
    /// complete, 1 some chunk could not be fetched (each is named), 2 could
    /// not run.
    Fetch(FetchArgs),
    /// Archive the recordings whose completion events arrive on an Azure
    /// Storage Queue (from an Event Grid subscription): fetch, stitch into
    /// --out, verify, delete the message. The queue's account comes from
    /// AZURE_STORAGE_CONNECTION_STRING (or AZURE_STORAGE_ACCOUNT_NAME and
    /// AZURE_STORAGE_ACCOUNT_KEY), the service's credentials as for fetch.
    Worker(worker_cli::WorkerArgs),
    /// Print the JSON Schema of one of the three documents recstitch writes:
    /// the manifest, the report of `validate`/`run`, the report of `fetch`.
    Schema {
        /// Which document.
        #[arg(value_enum)]
        document: SchemaDocument,
    },
    /// For each participant id, the recordings it appears in (for
    /// personal-data requests). Exit codes: 0 found, 1 `--id` appears in no
    /// recording, 2 could not run, 3 the archive holds no recording.
    Participants {
        /// The archive folder.
        archive: PathBuf,
        /// Only this participant id.
        #[arg(long)]
        id: Option<String>,
        /// The output folder of `run`, to name each recording's stitched file.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// The arguments of `recstitch run`.
#[derive(clap::Args)]
struct RunArgs {
    /// The archive folder.
    archive: PathBuf,
    /// Where to write `<callId>/<name>.mp4` (+ `.json`, `chapters/<name>.vtt`);
    /// the name is the recording's start in UTC and a short hash of its key
    /// (`20240514T093000Z-1a2b3c4d`), the same on every run.
    #[arg(long)]
    out: PathBuf,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Paused time and gaps: `collapse` (left out, marked by chapters) or
    /// `wallclock` (held picture and silence, output time = wall clock).
    #[arg(long, default_value = "collapse")]
    gaps: GapMode,
    /// Recordings validated at once (default: the number of cores; at least 1).
    #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
    /// Redo recordings whose outputs are already up to date.
    #[arg(long)]
    force: bool,
    /// Only the recordings of part K of N (`0/3`, `1/3`, `2/3`): a stable
    /// split for running one archive on N machines.
    #[arg(long)]
    shard: Option<Shard>,
    /// Progress on stderr: `bar` (a terminal only), `json` (NDJSON events), `none`.
    #[arg(long, default_value = "bar")]
    progress: ProgressMode,
    /// Also decode all audio and check the H.264 bitstream.
    #[arg(long)]
    deep: bool,
    /// Also draw each recording's timeline as a PNG beside its outputs.
    #[arg(long)]
    timeline: bool,
    /// For unmixed WAV recordings, also write one mono WAV per participant
    /// (`<callId>/channels/<name>.ch<N>.<participantId>.wav`).
    #[arg(long)]
    split_channels: bool,
}

/// The arguments of `recstitch fetch`.
#[derive(clap::Args)]
struct FetchArgs {
    /// Completion event files as delivered (Event Grid or CloudEvents; one
    /// event or an array), or folders of them.
    #[arg(required = true)]
    events: Vec<PathBuf>,
    /// The archive folder: `<callId>/<documentId>.mp4` and `.json`, and
    /// `<callId>/event-<eventId>.json`.
    #[arg(long)]
    into: PathBuf,
    /// Chunks downloaded at once (default 4).
    #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
    /// Ranged parts of one chunk's media downloaded at once (default 4).
    #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(u16).range(1..=64))]
    parts: Option<u16>,
    /// Print the report as one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Progress on stderr: `bar` (a terminal only), `json` (NDJSON events), `none`.
    #[arg(long, default_value = "bar")]
    progress: ProgressMode,
    /// Retries after transient failures in a row (default 8).
    #[arg(long, allow_negative_numbers = true)]
    retries: Option<u32>,
    /// The first wait before a retry, in milliseconds (default 1000); it
    /// doubles each time, with jitter, and is at least the server's Retry-After.
    #[arg(long, allow_negative_numbers = true)]
    backoff_ms: Option<u64>,
    /// The stall window in seconds (default 60): a transfer that receives no
    /// byte for this long, or less than --min-rate on average over it, is
    /// abandoned and resumed.
    #[arg(long, allow_negative_numbers = true, value_parser = clap::value_parser!(u64).range(1..))]
    stall_timeout: Option<u64>,
    /// The slowest transfer accepted, in bytes per second averaged over the
    /// stall window (default 16384; 0: only a silent connection stalls).
    #[arg(long)]
    min_rate: Option<u64>,
    /// Each chunk must be fetched within 12 stall windows plus its size at
    /// this many bytes per second (default 262144: 1.5 GB in 12 min + 95 min);
    /// a chunk past its deadline fails, and a rerun resumes it.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    deadline_rate: Option<u64>,
    /// After fetching, stitch the archive into --out and delete each
    /// recording's chunks from the service once its stitched file matches
    /// its manifest (never a recording that failed any step).
    #[arg(long, requires = "out")]
    delete_after: bool,
    /// Where --delete-after stitches to.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SchemaDocument {
    /// The manifest beside each stitched file (`schemas/manifest.v2.json`).
    Manifest,
    /// The report of `validate --json` and `run --json` (`schemas/report.v2.json`).
    Report,
    /// The report of `fetch --json` (`schemas/fetch-report.v1.json`).
    FetchReport,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ProgressMode {
    Bar,
    Json,
    None,
}

/// Exit code: everything fine.
const EXIT_OK: u8 = 0;
/// Exit code: some recording has error findings (or did not stitch).
const EXIT_FINDINGS: u8 = 1;
/// Exit code: the command could not run (bad arguments, unreadable
/// archive, unusable output folder).
const EXIT_FAILED: u8 = 2;
/// Exit code: the archive holds no recording at all (an empty folder, a
/// volume that did not mount): nothing was checked, which is not success.
const EXIT_EMPTY: u8 = 3;

/// Scans `archive`, leaving out `out` when it lies inside it. `Err` carries
/// the exit code for an archive without recordings (after saying so on
/// stderr).
fn scan(storage: &Storage, archive: &Path, out: Option<&Path>) -> anyhow::Result<Result<Archive, u8>> {
    let mut options = ScanOptions::default();
    options.storage = storage.clone();
    options.exclude = out.map(|o| vec![o.to_path_buf()]).unwrap_or_default();
    let scanned = Archive::scan(archive, &options)?;
    if let Some(why) = scanned.nothing_found() {
        eprintln!("recstitch: {}", shown(&why.to_string()));
        return Ok(Err(EXIT_EMPTY));
    }
    Ok(Ok(scanned))
}

/// Makes the allocator hand every large block (128 KiB or more: sample
/// tables, the `moov`, I/O buffers) straight back to the system when it is
/// freed. By default glibc raises this threshold after the first large
/// free and keeps later large blocks in per-thread heaps, so the peak
/// memory of a 20-hour recording depended on thread timing: 47-59 MB over
/// runs, against 43 MB every run with the threshold fixed. (A program using
/// the library can do the same with
/// `GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072`.)
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn fix_mmap_threshold() {
    extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    const M_MMAP_THRESHOLD: i32 = -3;
    // SAFETY: mallopt only sets an allocator parameter; this runs first in
    // main, before any other thread exists.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn fix_mmap_threshold() {}

fn main() -> ExitCode {
    fix_mmap_threshold();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_FAILED } else { EXIT_OK });
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        // A reader that stopped reading (`| head`): quiet, as ripgrep and
        // the Unix tools are.
        Err(e) if is_broken_pipe(&e) => ExitCode::from(EXIT_OK),
        Err(e) => {
            // Our errors say their cause themselves; `{:#}` would repeat it.
            eprintln!("recstitch: {}", shown(&e.to_string()));
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Whether `e` is a write to standard output that failed because its
/// reader closed the pipe. (Only the top-level error is looked at: the
/// library's errors, a store upload's broken pipe among them, are
/// `recstitch::Error`s and stay errors.)
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    let kind = e
        .downcast_ref::<std::io::Error>()
        .map(std::io::Error::kind)
        .or_else(|| {
            e.downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
        });
    kind == Some(std::io::ErrorKind::BrokenPipe)
}

/// `path` as given, or, for an object-store URL (`az://container/prefix`),
/// the URL with its store mounted on `storage` (credentials from the
/// environment).
fn located(storage: &Storage, path: PathBuf) -> anyhow::Result<PathBuf> {
    #[cfg(feature = "object-store")]
    if let Some(url) = path.to_str().filter(|s| is_url(s)) {
        return Ok(storage.mount(url)?);
    }
    let _ = storage;
    Ok(path)
}

/// Whether an argument is a URL (`scheme://...`) rather than a path.
fn is_url(s: &str) -> bool {
    #[cfg(feature = "object-store")]
    return recstitch::remote::store::is_url(s);
    #[cfg(not(feature = "object-store"))]
    s.contains("://")
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    // Inputs and outputs: local files, and the stores that URL arguments name.
    let storage = Storage::default();
    let st = &storage;
    match cli.command {
        Command::Probe { file, json } => {
            let file = located(st, file)?;
            probe(st, &file, json)
        }
        Command::Validate { archive, json, deep } => {
            let archive = located(st, archive)?;
            validate(st, &archive, json, deep)
        }
        Command::Run(mut args) => {
            args.archive = located(st, args.archive)?;
            args.out = located(st, args.out)?;
            stitch(st, args)
        }
        Command::Fetch(mut args) => {
            if args.into.to_str().is_some_and(is_url) {
                anyhow::bail!(
                    "--into {}: fetch downloads into a local folder only (object stores are not supported there yet); \
                     `recstitch run FOLDER --out az://...` stitches from it into a store",
                    args.into.display()
                );
            }
            args.out = args.out.map(|o| located(st, o)).transpose()?;
            fetch(st, args)
        }
        Command::Worker(args) => worker_cli::worker(st, args),
        Command::Timeline { archive, out, deep } => {
            let (archive, out) = (located(st, archive)?, located(st, out)?);
            timeline(st, &archive, &out, deep)
        }
        Command::Participants { archive, id, out, json } => {
            let archive = located(st, archive)?;
            let out = out.map(|o| located(st, o)).transpose()?;
            participants(st, &archive, id.as_deref(), out.as_deref(), json)
        }
        Command::Schema { document } => {
            let text = match document {
                SchemaDocument::Manifest => recstitch::output::stitch::MANIFEST_SCHEMA,
                SchemaDocument::Report => recstitch::output::report::REPORT_SCHEMA,
                SchemaDocument::FetchReport => recstitch::remote::fetch::FETCH_REPORT_SCHEMA,
            };
            std::io::stdout().lock().write_all(text.as_bytes())?;
            Ok(EXIT_OK)
        }
    }
}

fn probe(storage: &Storage, file: &Path, json: bool) -> anyhow::Result<u8> {
    let limits = recstitch::Limits::default();
    let mut head = [0u8; 16];
    let input = storage.open(file).map_err(|e| recstitch::Error::io(file, e))?;
    let n = input.read_at(&mut head, 0).map_err(|e| recstitch::Error::io(file, e))?;
    let format = match recstitch::FileKind::sniff(&head[..n]) {
        recstitch::FileKind::Mp3 => Some(recstitch::input::metadata::MediaFormat::Mp3),
        recstitch::FileKind::Wav => Some(recstitch::input::metadata::MediaFormat::Wav),
        _ => None,
    };
    if let Some(format) = format {
        let audio = recstitch::formats::AudioFile::probe_in(storage, file, format, &limits)?;
        let report = recstitch::output::report::AudioProbeReport::new(&audio);
        if json {
            print_json(&report)?;
        } else {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{}: {} {} Hz, {} channel(s), {} ms, {} bit/s{}",
                report.path,
                format.name(),
                report.sample_rate,
                report.channels,
                report.duration_ms,
                report.bit_rate,
                report
                    .truncated
                    .as_ref()
                    .map(|t| format!("; truncated: {t}"))
                    .unwrap_or_default()
            )?;
            for q in &report.quirks {
                writeln!(out, "  quirk: {q}")?;
            }
        }
        return Ok(if report.truncated.is_some() {
            EXIT_FINDINGS
        } else {
            EXIT_OK
        });
    }
    let media = recstitch::formats::mp4::probe_in(storage, file, &limits)?;
    let report = ProbeReport::new(&media);
    if json {
        print_json(&report)?;
    } else {
        print_probe(&report)?;
    }
    Ok(if report.truncated.is_some() {
        EXIT_FINDINGS
    } else {
        EXIT_OK
    })
}

fn validate(storage: &Storage, archive: &Path, json: bool, deep: bool) -> anyhow::Result<u8> {
    let scanned = match scan(storage, archive, None)? {
        Ok(scanned) => scanned,
        Err(code) => return Ok(code),
    };
    let options = validate_options(deep);
    let recordings = scanned
        .recordings
        .iter()
        .map(|r| RecordingReport::from_validation(r, validate_isolated(r, &options)))
        .collect();
    let report = Report::new(&scanned, recordings);
    print_batch_report(&report, json)
}

fn validate_options(deep: bool) -> ValidateOptions {
    let mut options = ValidateOptions::default();
    options.deep = deep;
    options
}

/// `recstitch run`.
fn stitch(storage: &Storage, args: RunArgs) -> anyhow::Result<u8> {
    // The archive first: a command that fails creates no output folder.
    let scanned = match scan(storage, &args.archive, Some(&args.out))? {
        Ok(scanned) => scanned,
        Err(code) => return Ok(code),
    };
    storage.check_out_dir(&args.out)?;
    let mut options = BatchOptions::default();
    options.storage = storage.clone();
    options.force = args.force;
    options.shard = args.shard;
    options.stitch = StitchOptions::with_gaps(args.gaps);
    options.stitch.timeline = args.timeline;
    options.stitch.split_channels = args.split_channels;
    options.validate = validate_options(args.deep);
    if let Some(shard) = args.shard {
        if recstitch::batch::selected(&scanned, Some(shard)).is_empty() {
            eprintln!(
                "recstitch: shard {}/{} holds none of the archive's {} recording(s); nothing to do",
                shard.index(),
                shard.count(),
                scanned.recordings.len()
            );
        }
    }
    if let Some(jobs) = args.jobs {
        options.jobs = usize::from(jobs);
        options.stitch_jobs = options.stitch_jobs.min(options.jobs);
    }
    let out = &args.out;
    let report = match args.progress {
        ProgressMode::Json => run_batch(&scanned, out, &options, &progress::Ndjson),
        ProgressMode::Bar if std::io::stderr().is_terminal() => {
            let bar = progress::Bar::new();
            let report = run_batch(&scanned, out, &options, &bar);
            bar.finish();
            report
        }
        _ => run_batch(&scanned, out, &options, &Quiet),
    };
    print_batch_report(&report, args.json)
}

/// `recstitch fetch`.
fn fetch(storage: &Storage, args: FetchArgs) -> anyhow::Result<u8> {
    use recstitch::remote::fetch::{Credentials, Fetcher};
    let credentials = Credentials::from_env()?;
    let options = fetch_options(&args)?;
    if let Some(out) = &args.out {
        storage.check_out_dir(out)?;
    }
    let fetcher = Fetcher::new(credentials, options);
    let report = match args.progress {
        ProgressMode::Json => fetcher.fetch_with(&args.events, &args.into, &progress::FetchNdjson::default())?,
        ProgressMode::Bar if std::io::stderr().is_terminal() => {
            let bar = progress::FetchBar::new();
            let report = fetcher.fetch_with(&args.events, &args.into, &bar);
            bar.finish();
            report?
        }
        _ => fetcher.fetch_with(&args.events, &args.into, &Quiet)?,
    };
    let mut code = if report.all_fetched() { EXIT_OK } else { EXIT_FINDINGS };
    print_fetch_failures(&report);
    let mut json = serde_json::to_value(&report)?;
    let mut deletion_lines = Vec::new();
    if let (true, Some(out)) = (args.delete_after, args.out.as_deref()) {
        let mut scan_options = ScanOptions::default();
        scan_options.exclude = vec![out.to_path_buf()];
        let scanned = Archive::scan(&args.into, &scan_options)?;
        let mut batch = BatchOptions::default();
        batch.storage = storage.clone();
        let stitched = run_batch(&scanned, out, &batch, &Quiet);
        let deletions = recstitch::remote::archival::delete_archived(&fetcher, &report, &stitched, storage, out);
        if !stitched.all_good() || deletions.iter().any(|d| !d.deleted) {
            code = EXIT_FINDINGS;
        }
        for d in &deletions {
            deletion_lines.push(format!("{}: {}", shown(&d.document_id), shown(&d.reason)));
        }
        json["stitch"] = serde_json::to_value(&stitched)?;
        json["deletions"] = serde_json::to_value(&deletions)?;
    }
    if args.json {
        print_json(&json)?;
    } else {
        print_fetch_text(&report, &deletion_lines)?;
    }
    Ok(code)
}

/// The fetch options the arguments and the environment set.
fn fetch_options(args: &FetchArgs) -> anyhow::Result<recstitch::remote::fetch::FetchOptions> {
    let mut options = recstitch::remote::fetch::FetchOptions::default();
    options.trusted_hosts = recstitch::remote::fetch::TrustedHosts::from_env()?;
    if let Some(rate) = args.min_rate {
        options.min_rate = rate;
    }
    if let Some(rate) = args.deadline_rate {
        options.deadline_rate = rate;
    }
    if let Some(jobs) = args.jobs {
        options.jobs = usize::from(jobs);
    }
    if let Some(parts) = args.parts {
        options.parts = usize::from(parts);
    }
    if let Some(retries) = args.retries {
        options.retries = retries;
    }
    if let Some(ms) = args.backoff_ms {
        options.backoff = std::time::Duration::from_millis(ms);
    }
    if let Some(secs) = args.stall_timeout {
        options.stall_timeout = std::time::Duration::from_secs(secs);
    }
    Ok(options)
}

/// Every event and chunk that could not be fetched, on stderr.
fn print_fetch_failures(report: &recstitch::remote::fetch::FetchReport) {
    for f in &report.failed_events {
        eprintln!(
            "recstitch: {}{}: event not fetched: {}",
            shown(&f.source.display().to_string()),
            f.position.map(|p| format!("[{p}]")).unwrap_or_default(),
            shown(&f.error)
        );
    }
    for c in report.failed() {
        eprintln!(
            "recstitch: chunk {} (call {}, index {}) could not be fetched: {}",
            shown(&c.document_id),
            shown(&c.call_id),
            c.index,
            shown(c.error.as_deref().unwrap_or("unknown error"))
        );
    }
    if report.events.is_empty() {
        eprintln!(
            "recstitch: no recording completion event in the input ({} event(s) skipped); nothing to fetch",
            report.skipped.len()
        );
    }
}

/// The fetch report as text: skipped and failed events, warnings, one line
/// per chunk, the deletions, a summary.
fn print_fetch_text(report: &recstitch::remote::fetch::FetchReport, deletion_lines: &[String]) -> anyhow::Result<()> {
    use recstitch::remote::fetch::ChunkStatus;
    let mut out = std::io::stdout().lock();
    for s in &report.skipped {
        writeln!(
            out,
            "skipped {}{}: {}",
            shown(&s.source.display().to_string()),
            s.position.map(|p| format!("[{p}]")).unwrap_or_default(),
            shown(&s.reason)
        )?;
    }
    for f in &report.failed_events {
        writeln!(
            out,
            "FAILED     event {}{}: {}",
            shown(&f.source.display().to_string()),
            f.position.map(|p| format!("[{p}]")).unwrap_or_default(),
            shown(&f.error)
        )?;
    }
    for w in &report.warnings {
        writeln!(out, "warning: {}", shown(w))?;
    }
    for c in &report.chunks {
        let what = match c.status {
            ChunkStatus::Fetched if c.resumed => "resumed",
            ChunkStatus::Fetched => "fetched",
            ChunkStatus::UpToDate => "up to date",
            ChunkStatus::Failed => "FAILED",
        };
        let detail = match (&c.error, c.bytes) {
            (Some(e), _) => format!(": {}", shown(e)),
            (None, Some(b)) => format!(", {b} bytes"),
            (None, None) => String::new(),
        };
        let note = c
            .note
            .as_deref()
            .map(|n| format!(" ({})", shown(n)))
            .unwrap_or_default();
        writeln!(
            out,
            "{what:<10} {} (call {}, index {}){detail}{note}",
            shown(&c.document_id),
            shown(&c.call_id),
            c.index
        )?;
    }
    for line in deletion_lines {
        writeln!(out, "{line}")?;
    }
    let count = |s: ChunkStatus| report.chunks.iter().filter(|c| c.status == s).count();
    writeln!(
        out,
        "{} chunk(s) of {} recording(s): {} fetched, {} up to date, {} failed; {} bytes received{}",
        report.chunks.len(),
        report.events.len(),
        count(ChunkStatus::Fetched),
        count(ChunkStatus::UpToDate),
        count(ChunkStatus::Failed),
        report.bytes_transferred,
        match report.failed_events.len() {
            0 => String::new(),
            n => format!("; {n} event(s) not fetched"),
        }
    )?;
    Ok(())
}

/// Prints a `validate` or `run` report; the exit code it calls for.
fn print_batch_report(report: &Report, json: bool) -> anyhow::Result<u8> {
    if json {
        print_json(report)?;
    } else {
        print_report(report)?;
    }
    Ok(if report.all_good() { EXIT_OK } else { EXIT_FINDINGS })
}

fn timeline(storage: &Storage, archive: &Path, out: &Path, deep: bool) -> anyhow::Result<u8> {
    let scanned = match scan(storage, archive, Some(out))? {
        Ok(scanned) => scanned,
        Err(code) => return Ok(code),
    };
    storage.check_out_dir(out)?;
    let options = validate_options(deep);
    let mut stdout = std::io::stdout().lock();
    let mut code = EXIT_OK;
    for r in &scanned.recordings {
        let path = r.output_paths(out).timeline;
        match validate_isolated(r, &options) {
            Ok(validated) => {
                recstitch::output::picture::write_png(storage, &validated, &path)?;
                writeln!(stdout, "{}", path.display())?;
            }
            Err(e) => {
                eprintln!("recstitch: recording {}: {}", shown(&r.key), shown(&e.to_string()));
                code = EXIT_FINDINGS;
            }
        }
    }
    Ok(code)
}

/// `recstitch participants`: exit 3 for an archive without recordings (as
/// `validate`), 1 when the participant asked for appears in no recording.
fn participants(
    storage: &Storage,
    archive: &Path,
    id: Option<&str>,
    out: Option<&Path>,
    json: bool,
) -> anyhow::Result<u8> {
    let scanned = match scan(storage, archive, None)? {
        Ok(scanned) => scanned,
        Err(code) => return Ok(code),
    };
    let list = recstitch::output::report::participants(&scanned, id, out);
    let code = match id {
        Some(id) if list.is_empty() => {
            eprintln!(
                "recstitch: participant {id:?} appears in none of the {} recording(s) of {}",
                scanned.recordings.len(),
                archive.display()
            );
            EXIT_FINDINGS
        }
        _ => EXIT_OK,
    };
    if json {
        print_json(&list)?;
        return Ok(code);
    }
    let mut stdout = std::io::stdout().lock();
    for p in &list {
        writeln!(stdout, "{}", p.participant_id)?;
        for r in &p.recordings {
            writeln!(
                stdout,
                "  call {} recording {}: {} to {}{}{}",
                r.call_id,
                r.recording_key,
                r.start,
                r.end,
                r.channel.map(|c| format!(", channel {c}")).unwrap_or_default(),
                r.output.as_ref().map(|o| format!(", {o}")).unwrap_or_default()
            )?;
        }
    }
    if list.is_empty() && id.is_none() {
        writeln!(stdout, "no participant found")?;
    }
    Ok(code)
}

/// `s` for a terminal: control characters (which could move the cursor,
/// recolour or retitle it) escaped as `\u{1b}`, `\n`, …; the rest as it is.
fn shown(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

fn print_probe(r: &ProbeReport) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{}: {} bytes, brand {}, {} ms{}",
        r.path,
        r.file_size,
        r.major_brand,
        r.duration_ms,
        if r.fragmented { ", fragmented" } else { "" }
    )?;
    for t in &r.tracks {
        let codec = t.codec.as_ref().map(|c| c.name()).unwrap_or_else(|| "-".into());
        let detail = match &t.codec {
            Some(recstitch::formats::mp4::Codec::Avc(a)) => format!(
                "{}x{} profile {} level {}{}",
                a.width,
                a.height,
                a.profile_idc,
                a.level_idc,
                a.vui_fps_milli
                    .map(|f| format!(" vui {:.3} fps", f as f64 / 1000.0))
                    .unwrap_or_default()
            ),
            Some(recstitch::formats::mp4::Codec::Aac(a)) => format!("{} Hz, {} channel(s)", a.sample_rate, a.channels),
            _ => String::new(),
        };
        writeln!(
            out,
            "  track {} {:?} {codec} {detail}\n    timescale {}, {} samples ({} sync), presented {} ms from media time {}, rate {}, {} bit/s{}",
            t.id,
            t.kind,
            t.timescale,
            t.samples,
            t.sync_samples,
            t.presented_ms,
            t.presentation.start,
            t.rate.map(|r| format!("{r:.3}/s")).unwrap_or_else(|| "-".into()),
            t.bit_rate.unwrap_or(0.0),
            if t.composition_offsets { ", B-frames" } else { "" }
        )?;
    }
    if let Some(t) = &r.truncated {
        writeln!(out, "  TRUNCATED: {t}")?;
    }
    for q in &r.quirks {
        writeln!(out, "  quirk: {q}")?;
    }
    Ok(())
}

fn print_report(report: &Report) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    for r in &report.recordings {
        writeln!(
            out,
            "recording {} (call {}): {}",
            shown(&r.recording_key),
            shown(&r.call_id),
            r.status.as_str()
        )?;
        writeln!(out, "  index  {:<44} {:>12}  pauses", "document id", "media ms")?;
        for c in &r.chunks {
            let index = c.index.map(|i| i.to_string()).unwrap_or_else(|| "?".into());
            let ms = c
                .media_duration_ms
                .map(|d| format!("{d:.0}"))
                .unwrap_or_else(|| "-".into());
            let pauses = match c.pauses_cut {
                Some(true) => "cut from media",
                Some(false) => "kept in media",
                None => "-",
            };
            writeln!(out, "  {index:>5}  {:<44} {ms:>12}  {pauses}", shown(&c.document_id))?;
        }
        for f in &r.findings {
            let sev = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            let chunk = f
                .chunk_index
                .map(|i| format!("chunk {i}"))
                .unwrap_or_else(|| "recording".into());
            writeln!(
                out,
                "  {sev:<7} {:<26} {chunk:<10} {}",
                f.code.as_str(),
                shown(&f.message)
            )?;
        }
        if let Some(o) = &r.output {
            writeln!(out, "  output: {}", shown(&o.to_string()))?;
        }
        if let Some(e) = &r.error {
            writeln!(out, "  failed: {}", shown(e))?;
        }
    }
    if !report.orphans.is_empty() {
        writeln!(out, "orphans:")?;
        for o in &report.orphans {
            writeln!(out, "  {}: {}", shown(&o.path.display().to_string()), shown(&o.reason))?;
        }
    }
    let counts: Vec<String> = recstitch::Status::ALL
        .iter()
        .map(|s| (s, report.recordings.iter().filter(|r| r.status == *s).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect();
    let counts = if counts.is_empty() {
        String::new()
    } else {
        format!(": {}", counts.join(", "))
    };
    writeln!(
        out,
        "{} recording(s){counts}; {} orphan file(s)",
        report.recordings.len(),
        report.orphans.len()
    )?;
    Ok(())
}
