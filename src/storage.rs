//! The storage seam: where the library reads its inputs and writes its
//! outputs.
//!
//! A [`Storage`] is passed in by the caller ([`ScanOptions::storage`](crate::ScanOptions::storage)
//! for an archive's inputs, which its recordings keep;
//! [`Stitcher::with_storage`](crate::Stitcher::with_storage) and
//! [`BatchOptions::storage`](crate::BatchOptions::storage) for outputs).
//! The default reads and writes local files. With the cargo feature
//! `object-store`, URLs mounted on it (`az://container/prefix`, see
//! [`crate::remote::store`]) name objects instead: every read and write below goes
//! to the local file system or to the store that a path lies in, and
//! nothing else in the library knows which. The MP4, MP3 and WAV readers
//! take a `Read + Seek` ([`Storage::with_reader`] gives it) and never learn
//! where their bytes live.
//!
//! Nothing is global: two storages never see each other's mounts, and the
//! requests of a storage's stores run on the caller's tokio runtime
//! ([`Storage::on_runtime`]) or on a small runtime the storage starts at
//! its first request and stops when its last clone is dropped.
//!
//! An async caller (a tokio worker) calls the library through
//! `tokio::task::spawn_blocking`, which is what it is for: the library's
//! calls block. Called straight from an async task it still works (each
//! wait runs on a thread of its own rather than panicking) but blocks the
//! task's thread; `tests/tokio_main.rs` runs the batch on an Azurite
//! archive from inside `#[tokio::main]`, both ways.
//!
//! ```
//! use recstitch::{Archive, ScanOptions, Storage};
//!
//! // Local files: the default.
//! let mut options = ScanOptions::default();
//! options.storage = Storage::local();
//! let archive = Archive::scan("fixtures/cases/good".as_ref(), &options)?;
//! assert!(!archive.storage.is_remote(&archive.root));
//! # Ok::<(), recstitch::Error>(())
//! ```

use std::fs::File;
use std::path::Path;
#[cfg(feature = "object-store")]
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::io::{self, OutputPaths, ReadSeek, RecordingLock};
#[cfg(feature = "object-store")]
use crate::limits::Limits;

/// Where inputs are read and outputs written: local files, and (feature
/// `object-store`) the object stores mounted on it. Cheap to clone; clones
/// share their mounts (a store mounted on one is seen by all), while two
/// storages made apart never see each other's.
#[derive(Clone, Default)]
pub struct Storage {
    #[cfg(feature = "object-store")]
    stores: std::sync::Arc<std::sync::OnceLock<crate::remote::store::Stores>>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        #[cfg(feature = "object-store")]
        if let Some(stores) = self.stores.get() {
            return f.debug_struct("Storage").field("mounts", &stores.roots()).finish();
        }
        f.write_str("Storage(local)")
    }
}

#[cfg(feature = "object-store")]
impl Storage {
    /// A storage whose object-store requests run on the caller's tokio
    /// runtime (`handle`, of a multi-thread runtime; a current-thread
    /// runtime cannot drive requests while the library waits for them, and
    /// is refused). Without it, a storage starts a small runtime of its own
    /// at its first request.
    pub fn on_runtime(handle: tokio::runtime::Handle) -> Result<Self> {
        let stores = crate::remote::store::Stores::on(handle)?;
        Ok(Storage {
            stores: std::sync::Arc::new(std::sync::OnceLock::from(stores)),
        })
    }

    fn stores(&self) -> &crate::remote::store::Stores {
        self.stores.get_or_init(crate::remote::store::Stores::new)
    }

    /// Mounts the store of the URL `url` (`az://container/prefix`, built
    /// from the environment; see [`crate::remote::store`]) and returns the URL,
    /// normalised (no trailing `/`), as the path that names it: pass it
    /// where a folder is taken. A URL whose root is already mounted reuses
    /// that store.
    pub fn mount(&self, url: &str) -> Result<PathBuf> {
        self.stores().mount(url)
    }

    /// Mounts a configured store under the URL root `root`
    /// (`scheme://authority`, e.g. `az://recordings`): paths under it name
    /// its objects from then on. Replaces a store mounted there before.
    pub fn mount_store(&self, root: &str, store: std::sync::Arc<dyn object_store::ObjectStore>) {
        self.stores().mount_store(root, store);
    }

    /// Bytes fetched by GETs from the store mounted at the URL root `root`
    /// (`az://container`), for tests and measurements.
    pub fn bytes_fetched(&self, root: &str) -> u64 {
        self.stores.get().map_or(0, |s| s.bytes_fetched(root))
    }

    /// The object that `path` names, when it lies in a mounted store.
    pub(crate) fn object(&self, path: &Path) -> Option<crate::remote::store::Object> {
        self.stores.get()?.object(path)
    }

    /// Every object under the folder URL `root`, hidden ones included,
    /// sorted, with its size.
    pub fn list_all(&self, root: &Path) -> Result<Vec<(PathBuf, u64)>> {
        crate::remote::store::list_all(&self.object_or_usage(root)?)
    }

    /// The files under `root` for discovery, when `root` is in a store.
    pub(crate) fn list(&self, root: &Path, exclude: &[PathBuf], limits: &Limits) -> Result<Vec<PathBuf>> {
        crate::remote::store::list(&self.object_or_usage(root)?, exclude, limits)
    }

    fn object_or_usage(&self, path: &Path) -> Result<crate::remote::store::Object> {
        self.object(path)
            .ok_or_else(|| Error::Usage(format!("{}: no store is mounted there", path.display())))
    }
}

/// Dispatches to the object at `$path` when it lies in a mounted store
/// (`$object` bound to it), else falls through to the local code after it.
macro_rules! remote {
    ($self:ident, $path:expr, |$object:ident| $remote:expr) => {
        #[cfg(feature = "object-store")]
        if let Some($object) = $self.object($path) {
            return $remote;
        }
    };
}

impl Storage {
    /// Local files only (the same as `Storage::default()`).
    pub fn local() -> Self {
        Storage::default()
    }

    /// Whether `path` names an object in a store mounted on this storage
    /// rather than a local file.
    pub fn is_remote(&self, path: &Path) -> bool {
        #[cfg(feature = "object-store")]
        return self.object(path).is_some();
        #[cfg(not(feature = "object-store"))]
        {
            let _ = path;
            false
        }
    }

    /// The whole file or object at `path`.
    pub fn read(&self, path: &Path) -> Result<Vec<u8>> {
        remote!(self, path, |o| o.read_all().map_err(|e| Error::io(path, e)));
        std::fs::read(path).map_err(|e| Error::io(path, e))
    }

    /// Writes `bytes` to `path` atomically (a temporary file renamed, or
    /// one PUT), creating a local file's folder when missing.
    pub fn write(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        remote!(self, path, |o| o.put(bytes));
        io::write_atomic(path, bytes)
    }

    /// Writes the file or object at `path` through `write`, which writes it
    /// whole and in order to the `File` it is given (a temporary file, or a
    /// pipe into one upload: never sought). Into a store, `replaces` (the
    /// old commit marker, a manifest) is deleted first when given; locally,
    /// the temporary file is synced and renamed. Nothing appears under
    /// `path` unless `write` and the upload succeed.
    pub(crate) fn write_with<T>(
        &self,
        path: &Path,
        replaces: Option<&Path>,
        write: impl FnOnce(&File) -> Result<T>,
    ) -> Result<T> {
        #[cfg(feature = "object-store")]
        if let Some(object) = self.object(path) {
            if let Some(old) = replaces.and_then(|m| self.object(m)) {
                old.delete()?;
            }
            return crate::remote::store::upload(&object, write);
        }
        let _ = replaces;
        let mut tmp = io::TempFile::create(path)?;
        let written = write(tmp.file())?;
        tmp.commit(path)?;
        Ok(written)
    }

    /// Checks that `out_dir` can take outputs before any work starts: a
    /// folder (created when missing) in which a file can be created, or a
    /// store location where a small object can be written (and removed).
    pub fn check_out_dir(&self, out_dir: &Path) -> Result<()> {
        #[cfg(feature = "object-store")]
        if let Some(stores) = self.stores.get().filter(|_| self.is_remote(out_dir)) {
            return crate::remote::store::check_writable(stores, out_dir);
        }
        io::check_out_dir(out_dir)
    }

    /// Opens the file or object at `path`, to be read from start to end.
    pub fn open(&self, path: &Path) -> std::io::Result<Input> {
        remote!(self, path, |o| o.reader(true).map(Input::Object));
        File::open(path).map(Input::File)
    }

    /// Opens the file or object at `path`, for reads here and there.
    pub fn open_scattered(&self, path: &Path) -> std::io::Result<Input> {
        remote!(self, path, |o| o.reader(false).map(Input::Object));
        File::open(path).map(Input::File)
    }

    /// Calls `probe` with a buffered reader of the file or object at `path`
    /// (of `buffer` bytes, for a file) and its size: the one way the MP4,
    /// MP3 and WAV probes are given their input.
    pub fn with_reader<T>(
        &self,
        path: &Path,
        buffer: usize,
        probe: impl FnOnce(&mut dyn ReadSeek, u64) -> Result<T>,
    ) -> Result<T> {
        #[cfg(feature = "object-store")]
        if let Some(object) = self.object(path) {
            let (mut reader, size) = crate::remote::store::probe_reader(&object).map_err(|e| Error::io(path, e))?;
            return probe(&mut reader, size);
        }
        io::with_reader(path, buffer, probe)
    }

    /// [`io::read_regular`] of a local file (a file recstitch wrote: a link
    /// or a FIFO in its place is an error), or the object at `path`.
    pub(crate) fn read_own(&self, path: &Path, max: u64) -> Result<Vec<u8>> {
        remote!(self, path, |o| o.read_bounded(max));
        io::read_regular(path, max)
    }

    /// Reads a whole input after checking its size against `max` bytes
    /// (a link is followed; a FIFO or a device is an error, never waited for).
    pub(crate) fn read_bounded(&self, path: &Path, max: u64) -> Result<Vec<u8>> {
        remote!(self, path, |o| o.read_bounded(max));
        io::read_bounded(path, max)
    }

    /// Reads up to `head.len()` bytes from the start of `path`; how many.
    pub(crate) fn read_head(&self, path: &Path, head: &mut [u8]) -> Result<usize> {
        remote!(self, path, |o| o.read_head(head));
        io::read_head(path, head)
    }

    /// Compares two inputs byte for byte, in blocks.
    pub(crate) fn files_equal(&self, a: &Path, b: &Path) -> Result<bool> {
        if self.is_remote(a) || self.is_remote(b) {
            let (ia, ib) = (self.open(a), self.open(b));
            return inputs_equal(
                &ia.map_err(|e| Error::io(a, e))?,
                a,
                &ib.map_err(|e| Error::io(b, e))?,
                b,
            );
        }
        io::files_equal(a, b)
    }

    /// Size, modification time (ns since the epoch) and, for an object, its
    /// ETag, of the file or object at `path`; `None` when it cannot be read.
    pub(crate) fn stamp(&self, path: &Path) -> Option<(u64, i128, Option<String>)> {
        remote!(self, path, |o| o.stamp());
        io::stamp(path)
    }

    /// Whether `path` is a file, or an object that exists.
    pub(crate) fn is_file(&self, path: &Path) -> bool {
        remote!(self, path, |o| o.stamp().is_some());
        path.is_file()
    }

    /// Creates the folder `dir` and its parents; nothing to do in a store.
    pub(crate) fn create_dir_all(&self, dir: &Path) -> Result<()> {
        if self.is_remote(dir) {
            return Ok(());
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
    }

    /// Removes the outputs a stitch that failed half-way had already put
    /// under their final names (best effort: the error that stopped it is
    /// what the caller reports), so that nothing incomplete is left there.
    pub(crate) fn remove_outputs(&self, paths: &OutputPaths) {
        for path in [&paths.manifest, &paths.media, &paths.chapters, &paths.timeline] {
            self.remove(path);
        }
    }

    /// Removes the file or object at `path`, best effort.
    fn remove(&self, path: &Path) {
        remote!(self, path, |o| {
            let _ = o.delete();
        });
        let _ = std::fs::remove_file(path);
    }

    /// SHA-256 (hex) and size of a file or object.
    #[cfg(feature = "fetch")]
    pub(crate) fn sha256(&self, path: &Path) -> Result<(String, u64)> {
        let input = self.open(path).map_err(|e| Error::io(path, e))?;
        sha256_input(&input, path)
    }

    /// Takes the lock of the recording whose outputs are `paths` (a local
    /// lock file, beside the outputs or, for outputs in a store, in the
    /// temporary folder: the processes of one machine take turns).
    pub(crate) fn lock(&self, paths: &OutputPaths) -> Result<RecordingLock> {
        RecordingLock::acquire(paths, self.is_remote(&paths.media))
    }
}

/// An input opened for positional reads: a local file, or an object in a
/// store (read ahead in large ranged GETs as it is read from start to end).
#[derive(Debug)]
pub enum Input {
    /// A local file.
    File(File),
    /// An object in a store.
    #[cfg(feature = "object-store")]
    Object(crate::remote::store::Reader),
}

impl From<File> for Input {
    fn from(file: File) -> Self {
        Input::File(file)
    }
}

impl Input {
    /// A hint that the input will be read from start to end (a larger
    /// readahead for a file; an object reads ahead anyway). Without it
    /// reading works the same.
    pub fn advise_sequential(&self) {
        match self {
            Input::File(f) => {
                let _ = rustix::fs::fadvise(f, 0, None, rustix::fs::Advice::Sequential);
            }
            #[cfg(feature = "object-store")]
            Input::Object(_) => {}
        }
    }

    /// Reads up to `buf.len()` bytes at `offset`; 0 at the end.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        match self {
            Input::File(f) => std::os::unix::fs::FileExt::read_at(f, buf, offset),
            #[cfg(feature = "object-store")]
            Input::Object(o) => o.read_at(buf, offset),
        }
    }

    /// Reads exactly `buf.len()` bytes at `offset`.
    pub fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Its size.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> std::io::Result<u64> {
        match self {
            Input::File(f) => f.metadata().map(|m| m.len()),
            #[cfg(feature = "object-store")]
            Input::Object(o) => Ok(o.len()),
        }
    }
}

/// [`io::files_equal`](crate::io) through [`Input`]s (`ia` of `a`, `ib` of `b`: objects
/// in a store).
pub(crate) fn inputs_equal(ia: &Input, a: &Path, ib: &Input, b: &Path) -> Result<bool> {
    let len = ia.len().map_err(|e| Error::io(a, e))?;
    if len != ib.len().map_err(|e| Error::io(b, e))? {
        return Ok(false);
    }
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < len {
        let n = ba.len().min(usize::try_from(len - at).unwrap_or(usize::MAX));
        ia.read_exact_at(&mut ba[..n], at).map_err(|e| Error::io(a, e))?;
        ib.read_exact_at(&mut bb[..n], at).map_err(|e| Error::io(b, e))?;
        if ba[..n] != bb[..n] {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

/// SHA-256 (hex) and size of `input` (the file or object at `path`).
#[cfg(feature = "fetch")]
pub(crate) fn sha256_input(input: &Input, path: &Path) -> Result<(String, u64)> {
    use sha2::{Digest, Sha256};
    input.advise_sequential();
    let len = input.len().map_err(|e| Error::io(path, e))?;
    let (mut h, mut buf, mut at) = (Sha256::new(), vec![0u8; 1 << 20], 0u64);
    while at < len {
        let n = input.read_at(&mut buf, at).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Err(Error::io(path, std::io::ErrorKind::UnexpectedEof.into()));
        }
        h.update(&buf[..n]);
        at += n as u64;
    }
    Ok((io::hex(&h.finalize()), len))
}
