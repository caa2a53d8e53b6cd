//! Files in and out: bounded reads, byte comparison and hashing of inputs;
//! and where outputs go and how they get there: output paths, temporary
//! files, atomic writes, the per-recording lock, the check of an output folder.
//!
//! Every output is written under a temporary name in its final folder,
//! synced, then renamed, so that a reader (or a rerun after a crash) sees a
//! complete file or none. Several processes may work on one archive and one
//! output folder at once (a retried job overlapping the original, an event
//! delivered twice): the outputs of one recording are written only while
//! holding that recording's lock (`RecordingLock`), so no process ever
//! removes or overwrites another's live temporary files.

use std::fs::{File, OpenOptions};
use std::hash::Hasher;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Here, Result};
use crate::limits::Limit;

/// Opens `path` with `options` for a regular file only: never waiting on a
/// FIFO or a device (opened non-blocking, which is cleared once the file is
/// known to be regular) and, unless `follow`, never through a symbolic link
/// (`O_NOFOLLOW`, also when creating). Anything else at `path` (a link, a
/// FIFO, a device, a folder) is an error naming the path.
pub(crate) fn open_regular(path: &Path, options: &mut OpenOptions, follow: bool) -> Result<File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut flags = rustix::fs::OFlags::NONBLOCK;
        if !follow {
            flags |= rustix::fs::OFlags::NOFOLLOW;
        }
        options.custom_flags(i32::from_ne_bytes(flags.bits().to_ne_bytes()));
    }
    let file = options.open(path).map_err(|e| {
        #[cfg(unix)]
        if !follow && e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
            return not_regular(path, "a symbolic link");
        }
        Error::io(path, e)
    })?;
    let kind = file.metadata().map_err(|e| Error::io(path, e))?.file_type();
    if !kind.is_file() {
        return Err(not_regular(path, describe_type(&kind)));
    }
    #[cfg(unix)]
    {
        let flags = rustix::fs::fcntl_getfl(&file).map_err(|e| Error::io(path, e.into()))?;
        rustix::fs::fcntl_setfl(&file, flags - rustix::fs::OFlags::NONBLOCK).map_err(|e| Error::io(path, e.into()))?;
    }
    Ok(file)
}

/// Whether something other than a regular file is at `path` (not
/// following a link): `Err` naming what it is. Nothing there is `Ok`.
pub(crate) fn check_not_special(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if !m.file_type().is_file() => Err(not_regular(path, describe_type(&m.file_type()))),
        _ => Ok(()),
    }
}

fn describe_type(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_block_device() || kind.is_char_device() {
            return "a device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}

fn not_regular(path: &Path, what: &str) -> Error {
    Error::io(
        path,
        std::io::Error::other(format!(
            "{what} where recstitch expects a regular file: not followed or opened; remove it"
        )),
    )
}

/// [`read_bounded`] of a regular file reached without a symbolic link
/// (files recstitch keeps in an archive: progress records, saved events,
/// metadata).
pub(crate) fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>> {
    let file = open_regular(path, OpenOptions::new().read(true), false)?;
    read_file_bounded(path, file, max)
}

/// Reads a whole file after checking its size against `max` bytes
/// ([`Limits::max_json_bytes`](crate::Limits::max_json_bytes)). A link is
/// followed; anything but a regular file (a FIFO, a device) is an error,
/// never waited for.
pub(crate) fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>> {
    let file = open_regular(path, OpenOptions::new().read(true), true)?;
    read_file_bounded(path, file, max)
}

fn read_file_bounded(path: &Path, file: File, max: u64) -> Result<Vec<u8>> {
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    Limit::JsonBytes.check(len, max, &Here::new(path, ""), "file size")?;
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(max).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    Ok(bytes)
}

/// The most recstitch reads back of a file it wrote itself (a recording's
/// resumability state, a manifest being verified): far above what a real
/// one holds, a bound on what a file planted in its place can cost.
pub(crate) const READ_BACK_MAX: u64 = 64 << 20;

/// Reads up to `head.len()` bytes from the start of `path`; returns how many.
pub(crate) fn read_head(path: &Path, head: &mut [u8]) -> Result<usize> {
    let mut file = open_regular(path, OpenOptions::new().read(true), true)?;
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    Ok(n)
}

/// Compares two files byte for byte, in blocks.
pub(crate) fn files_equal(a: &Path, b: &Path) -> Result<bool> {
    let mut fa = File::open(a).map_err(|e| Error::io(a, e))?;
    let mut fb = File::open(b).map_err(|e| Error::io(b, e))?;
    let la = fa.metadata().map_err(|e| Error::io(a, e))?.len();
    let lb = fb.metadata().map_err(|e| Error::io(b, e))?.len();
    if la != lb {
        return Ok(false);
    }
    let mut ba = vec![0u8; 1 << 16];
    let mut bb = vec![0u8; 1 << 16];
    loop {
        let n = fa.read(&mut ba).map_err(|e| Error::io(a, e))?;
        if n == 0 {
            return Ok(true);
        }
        fb.read_exact(&mut bb[..n]).map_err(|e| Error::io(b, e))?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
    }
}

/// A reader that can seek: what the probes read a file or an object through
/// ([`Storage::with_reader`](crate::Storage::with_reader)).
pub trait ReadSeek: Read + std::io::Seek {}
impl<T: Read + std::io::Seek> ReadSeek for T {}

/// Calls `probe` with a reader of the file at `path`, buffered with
/// `buffer` bytes, and its size (see [`Storage::with_reader`](crate::Storage::with_reader)).
pub(crate) fn with_reader<T>(
    path: &Path,
    buffer: usize,
    probe: impl FnOnce(&mut dyn ReadSeek, u64) -> Result<T>,
) -> Result<T> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    probe(&mut std::io::BufReader::with_capacity(buffer, file), size)
}

/// Size and modification time (ns since the epoch) of the local file at
/// `path`, and no ETag (an object's comes from [`Storage`](crate::Storage));
/// `None` when it cannot be read.
pub(crate) fn stamp(path: &Path) -> Option<(u64, i128, Option<String>)> {
    let m = std::fs::metadata(path).ok()?;
    let modified_ns = m
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    Some((m.len(), modified_ns, None))
}

/// Lower-case hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A cancellation token: clones share one flag; [`Cancel::cancel`] asks all
/// work that holds it to stop (a batch between recordings, a stitch between
/// blocks of its copy). Work that stops returns [`Error::Cancelled`] and
/// leaves nothing under a final name.
#[derive(Debug, Clone, Default)]
pub struct Cancel(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Cancel {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Cancel::default()
    }

    /// Asks the work holding this token (or a clone) to stop.
    pub fn cancel(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// `Err(Error::Cancelled)` once cancelled.
    pub fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Cancelled)
        } else {
            Ok(())
        }
    }
}

/// Where a recording's outputs go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputPaths {
    /// The stitched MP4.
    pub media: PathBuf,
    /// The manifest JSON.
    pub manifest: PathBuf,
    /// The WebVTT chapters, in a `chapters/` folder beside the MP4: players
    /// (mpv, VLC) load a `.vtt` named like the video, or like it plus a
    /// suffix, as subtitles, and would show the chapter titles over the
    /// picture; they do not look in `chapters/`.
    pub chapters: PathBuf,
    /// The timeline picture (`--timeline`).
    pub timeline: PathBuf,
}

impl OutputPaths {
    /// The folder that holds them.
    pub fn dir(&self) -> &Path {
        self.media.parent().unwrap_or(Path::new("."))
    }

    /// The recording's lock file (hidden, beside the outputs).
    pub fn lock(&self) -> PathBuf {
        self.hidden("lock")
    }

    /// The resumability state (hidden, beside the outputs).
    pub fn state(&self) -> PathBuf {
        self.hidden("state")
    }

    fn hidden(&self, ext: &str) -> PathBuf {
        let stem = self
            .media
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.media.with_file_name(format!(".{stem}.{ext}"))
    }

    /// Every file the recording may have written, hidden state included.
    fn all(&self) -> [PathBuf; 5] {
        [
            self.media.clone(),
            self.manifest.clone(),
            self.chapters.clone(),
            self.timeline.clone(),
            self.state(),
        ]
    }
}

/// The longest name [`safe_name`] gives, in bytes: with the longest
/// prefix and suffix recstitch adds (`.` and `.mp4.part.json`), a name stays
/// well under the 255 bytes file systems allow.
pub const MAX_SAFE_NAME: usize = 120;

/// Makes a name safe as one path component: anything but ASCII letters,
/// digits, `.`, `_` and `-` becomes `_` (recording ids can hold `/` and
/// `+`). A name longer than [`MAX_SAFE_NAME`] keeps its first 103
/// characters, then `-` and 16 hex digits of the SHA-256 of the whole id:
/// the same id always gives the same name, different ids different names.
pub fn safe_name(s: &str) -> String {
    let name = plain_safe_name(s);
    if name.len() <= MAX_SAFE_NAME {
        return name;
    }
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(s.as_bytes());
    let keep = MAX_SAFE_NAME - 17;
    format!("{}-{}", &name[..keep], hex(&digest[..8]))
}

fn plain_safe_name(s: &str) -> String {
    let name: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match name.trim_start_matches('.') {
        "" => "_".into(),
        rest => rest.into(),
    }
}

/// The folder beside the outputs that holds the WebVTT chapters.
pub const CHAPTERS_DIR: &str = "chapters";

/// The folder beside the outputs that holds one mono WAV per participant
/// of an unmixed recording (`--split-channels`).
pub const CHANNELS_DIR: &str = "channels";

/// The output paths of a recording named `name` under `out_dir`:
/// `<out_dir>/<callId>/<name>.{<extension>,json,png}` (the extension of
/// the recording's format: `mp4`, `mp3`, `wav`) and
/// `<out_dir>/<callId>/chapters/<name>.vtt`, both names made safe with
/// [`safe_name`]. A recording's name is
/// [`Recording::output_name`](crate::Recording::output_name).
pub fn output_paths(call_id: &str, name: &str, extension: &str, out_dir: &Path) -> OutputPaths {
    let dir = out_dir.join(safe_name(call_id));
    let key = safe_name(name);
    OutputPaths {
        media: dir.join(format!("{key}.{extension}")),
        manifest: dir.join(format!("{key}.json")),
        chapters: dir.join(CHAPTERS_DIR).join(format!("{key}.vtt")),
        timeline: dir.join(format!("{key}.png")),
    }
}

/// Checks that `out_dir` can take outputs before any work starts: it is a
/// folder (created when missing) in which a file can be created.
pub(crate) fn check_out_dir(out_dir: &Path) -> Result<()> {
    let usage = |what: &str| Error::Usage(format!("output folder {}: {what}", out_dir.display()));
    if out_dir.exists() && !out_dir.is_dir() {
        return Err(usage("exists and is not a folder"));
    }
    std::fs::create_dir_all(out_dir).map_err(|e| usage(&format!("cannot be created: {e}")))?;
    tempfile::Builder::new()
        .prefix(".recstitch-write-check.")
        .tempfile_in(out_dir)
        .map_err(|e| usage(&format!("is not writable: {e}")))?;
    Ok(())
}

/// A file being written under a temporary name beside its final path;
/// removed unless committed.
pub(crate) struct TempFile {
    file: tempfile::NamedTempFile,
}

/// The prefix of the temporary files of `final_path`: `.<name>.`.
fn temp_prefix(final_path: &Path) -> String {
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.")
}

/// The suffix of every temporary file.
const TEMP_SUFFIX: &str = ".tmp";
/// Random characters in a temporary file's name.
const TEMP_RANDOM: usize = 8;

/// Whether the file `name` is a temporary file of `final_path`:
/// `.<name>.<8 random>.tmp`, or `.<name>.tmp-<pid>` as older versions wrote.
fn is_temp_of(name: &str, final_path: &Path) -> bool {
    let prefix = temp_prefix(final_path);
    let Some(rest) = name.strip_prefix(prefix.as_str()) else {
        return false;
    };
    let current = rest
        .strip_suffix(TEMP_SUFFIX)
        .is_some_and(|r| r.len() == TEMP_RANDOM && r.bytes().all(|b| b.is_ascii_alphanumeric()));
    let older = rest
        .strip_prefix("tmp-")
        .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()));
    current || older
}

impl TempFile {
    /// Creates `.<name>.<random>.tmp` beside `final_path` (never an existing
    /// file), with the mode a new file gets (`0666` less the umask, as `cp`
    /// and ffmpeg create theirs), which the final file keeps.
    pub fn create(final_path: &Path) -> Result<Self> {
        let dir = final_path.parent().unwrap_or(Path::new("."));
        let mut builder = tempfile::Builder::new();
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let file = builder
            .prefix(&temp_prefix(final_path))
            .suffix(TEMP_SUFFIX)
            .rand_bytes(TEMP_RANDOM)
            .tempfile_in(dir)
            .map_err(|e| Error::io(dir, e))?;
        Ok(TempFile { file })
    }

    /// The open file.
    pub fn file(&mut self) -> &mut File {
        self.file.as_file_mut()
    }

    /// Syncs and renames onto `final_path`.
    pub fn commit(self, final_path: &Path) -> Result<()> {
        self.file
            .as_file()
            .sync_all()
            .map_err(|e| Error::io(self.file.path(), e))?;
        self.file
            .persist(final_path)
            .map_err(|e| Error::io(final_path, e.error))?;
        Ok(())
    }

    #[cfg(test)]
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

/// Writes `bytes` to `path` atomically, creating its folder when missing.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut tmp = TempFile::create(path)?;
    tmp.file().write_all(bytes).map_err(|e| Error::io(path, e))?;
    tmp.commit(path)
}

/// Makes the renames in `dir` durable; not every platform can open a folder.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The exclusive right to write one recording's outputs, across threads and
/// processes (an advisory lock on `.<name>.lock` beside the outputs).
///
/// Holding it, a writer may remove what a killed writer left behind: no
/// live writer of the same outputs can exist. The lock file is removed on
/// release; a waiter that finds it was removed while it waited takes the
/// lock again on the new file.
#[derive(Debug)]
pub(crate) struct RecordingLock {
    _lock: FileLock,
}

impl RecordingLock {
    /// Waits for the lock of the recording whose outputs are `paths`,
    /// creating their folder when missing, then removes the temporary files
    /// a killed run may have left. Outputs in a store (`remote`) are locked
    /// by a local file in the temporary folder (see [`remote_lock_path`]).
    pub(crate) fn acquire(paths: &OutputPaths, remote: bool) -> Result<Self> {
        let path = if remote {
            remote_lock_path(&paths.media)
        } else {
            paths.lock()
        };
        let dir = if remote {
            path.parent().unwrap_or(Path::new("."))
        } else {
            paths.dir()
        };
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let lock = RecordingLock {
            _lock: FileLock::acquire(&path)?,
        };
        if !remote {
            lock.remove_stale(paths);
        }
        Ok(lock)
    }

    /// Removes the temporary files of `paths` that a killed writer left.
    fn remove_stale(&self, paths: &OutputPaths) {
        for fin in paths.all() {
            let Some(Ok(entries)) = fin.parent().map(std::fs::read_dir) else {
                continue;
            };
            for e in entries.flatten() {
                if is_temp_of(&e.file_name().to_string_lossy(), &fin) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// Where the lock of the outputs at `path` in a store is kept: a local
/// file, so that the processes of one machine take turns (processes on
/// other machines are not held off: they write the same bytes).
fn remote_lock_path(path: &Path) -> PathBuf {
    let mut h = Fnv1a::default();
    h.write(path.to_string_lossy().as_bytes());
    std::env::temp_dir()
        .join("recstitch-store-locks")
        .join(format!("{:016x}.lock", h.finish()))
}

/// FNV-1a: a tiny, stable, well-known hash (the std hasher is not stable across releases).
pub(crate) struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv1a {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// An exclusive advisory lock on a lock file (created when missing, removed
/// on release): a recording's outputs ([`RecordingLock`]), a chunk being
/// downloaded.
#[derive(Debug)]
pub(crate) struct FileLock {
    path: PathBuf,
    file: File,
}

impl FileLock {
    /// Waits for the lock on `path`; when the holder removed the file as we
    /// waited, locks the new one.
    pub fn acquire(path: &Path) -> Result<Self> {
        loop {
            // Never through a planted link (which would create its target),
            // never a FIFO in its place.
            let file = open_regular(
                path,
                OpenOptions::new().read(true).write(true).create(true).truncate(false),
                false,
            )?;
            file.lock().map_err(|e| Error::io(path, e))?;
            if same_file(&file, path) {
                return Ok(FileLock {
                    path: path.to_path_buf(),
                    file,
                });
            }
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Removed while still locked, so that no one locks a file that is gone.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

/// Whether the open `file` is the file now at `path`.
#[cfg(unix)]
fn same_file(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_: &File, path: &Path) -> bool {
    path.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("recstitch-output-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn an_uncommitted_temporary_file_is_removed() {
        let dir = temp("uncommitted");
        let target = dir.join("x.mp4");
        let mut t = TempFile::create(&target).unwrap();
        t.file().write_all(b"partial").unwrap();
        let temp = t.path().to_path_buf();
        assert!(temp.exists());
        assert!(temp.file_name().unwrap().to_string_lossy().starts_with(".x.mp4."));
        drop(t);
        assert!(!temp.exists() && !target.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_lock_excludes_a_second_holder_and_cleans_only_stale_temporaries() {
        let dir = temp("lock");
        let paths = output_paths("call", "rec", "mp4", &dir);
        let lock = RecordingLock::acquire(&paths, false).unwrap();
        let lock_path = paths.lock();
        assert!(lock_path.exists());
        // A temporary left by a killed writer, and one of another recording.
        std::fs::write(paths.dir().join(".rec.mp4.abcd1234.tmp"), b"stale").unwrap();
        std::fs::write(paths.dir().join(".rec.json.tmp-4242"), b"stale, old naming").unwrap();
        // Another recording's live temporaries: `other`, and `rec.mp4` whose
        // media is `rec.mp4.mp4`.
        std::fs::write(paths.dir().join(".other.mp4.abcd1234.tmp"), b"live").unwrap();
        std::fs::write(paths.dir().join(".rec.mp4.mp4.abcd1234.tmp"), b"live").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = {
            let paths = paths.clone();
            std::thread::spawn(move || {
                let second = RecordingLock::acquire(&paths, false).unwrap();
                tx.send(()).unwrap();
                drop(second);
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(
            rx.try_recv().is_err(),
            "a second holder got the lock while the first held it"
        );
        drop(lock);
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the waiter gets the lock once it is released");
        waiter.join().unwrap();
        assert!(!paths.dir().join(".rec.mp4.abcd1234.tmp").exists());
        assert!(!paths.dir().join(".rec.json.tmp-4242").exists());
        assert!(paths.dir().join(".other.mp4.abcd1234.tmp").exists());
        assert!(paths.dir().join(".rec.mp4.mp4.abcd1234.tmp").exists());
        assert!(!lock_path.exists(), "the lock file is removed on release");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_output_folder_that_is_a_file_is_refused() {
        let dir = temp("outcheck");
        let file = dir.join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let e = check_out_dir(&file).unwrap_err();
        assert_eq!(e.category(), "usage");
        assert!(e.to_string().ends_with("a-file: exists and is not a folder"), "{e}");
        let e = check_out_dir(&file.join("below")).unwrap_err();
        assert!(e.to_string().contains("cannot be created"), "{e}");
        check_out_dir(&dir.join("new/nested")).unwrap();
        assert!(dir.join("new/nested").is_dir());
        assert_eq!(std::fs::read_dir(dir.join("new/nested")).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn long_names_are_shortened_the_same_way_every_time() {
        let long = "c".repeat(300);
        let a = safe_name(&long);
        assert!(a.len() <= MAX_SAFE_NAME, "{}", a.len());
        assert_eq!(a, safe_name(&long));
        assert_ne!(a, safe_name(&format!("{long}d")));
        assert!(a.starts_with(&"c".repeat(100)));
        assert_eq!(safe_name("0-eus-d12-801b/3f"), "0-eus-d12-801b_3f");
    }

    #[cfg(unix)]
    #[test]
    fn links_fifos_and_devices_are_refused_never_followed_or_waited_for() {
        let dir = temp("special");
        std::fs::create_dir_all(&dir).unwrap();
        let victim = dir.join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let link = dir.join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let dangling = dir.join("dangling");
        std::os::unix::fs::symlink(dir.join("created-through-the-link"), &dangling).unwrap();
        let fifo = dir.join("fifo");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let create = || {
            let mut o = OpenOptions::new();
            o.read(true).write(true).create(true).truncate(true);
            o
        };
        for path in [&link, &dangling] {
            let e = open_regular(path, &mut create(), false).unwrap_err().to_string();
            assert!(
                e.contains("a symbolic link") && e.contains(&path.display().to_string()),
                "{e}"
            );
        }
        assert!(!dir.join("created-through-the-link").exists());
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        let e = read_bounded(&fifo, 100).unwrap_err().to_string();
        assert!(e.contains("a FIFO"), "{e}");
        assert!(read_regular(&fifo, 100).unwrap_err().to_string().contains("a FIFO"));
        assert!(read_bounded(Path::new("/dev/null"), 100)
            .unwrap_err()
            .to_string()
            .contains("a device"));
        assert!(check_not_special(&fifo).is_err() && check_not_special(&link).is_err());
        assert!(check_not_special(&victim).is_ok() && check_not_special(&dir.join("none")).is_ok());
        // Followed when asked (a file the operator named), still a regular file only.
        assert_eq!(read_bounded(&link, 100).unwrap(), b"keep");
        assert!(FileLock::acquire(&dangling).is_err());
        assert!(!dir.join("created-through-the-link").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
