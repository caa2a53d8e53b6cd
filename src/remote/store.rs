//! Archives and outputs on object stores (cargo feature `object-store`):
//! the object-store side of [`Storage`](crate::Storage).
//!
//! An archive or an output folder may be an object-store URL instead of a
//! local folder: `az://container/prefix` (also `abfs://`, `abfss://`,
//! `azure://`, `adl://`) for Azure Blob Storage, `file:///abs/path` and
//! `memory://name/prefix`, through the `object_store` crate.
//! [`Storage::mount`](crate::Storage::mount) builds the store of a URL from
//! the crate's standard environment variables (`AZURE_STORAGE_ACCOUNT_NAME`,
//! `AZURE_STORAGE_ACCOUNT_KEY`, `AZURE_STORAGE_SAS_KEY`, managed identity,
//! `AZURE_STORAGE_USE_EMULATOR` with `AZURITE_BLOB_STORAGE_URL`) and returns
//! the URL as a path; a worker with its own configured store gives it with
//! [`Storage::mount_store`](crate::Storage::mount_store). From then on,
//! every path under that URL (`az://container/prefix/call/x.mp4`) names an
//! object for that storage, and the library reads and writes it as it
//! would a file:
//!
//! * discovery lists the prefix (keys with a component starting with `.`
//!   are left out, as hidden files are);
//! * the probe reads the ranges it needs (box headers, `moov`, `moof`) with
//!   ranged GETs, never the sample data;
//! * the stitch reads each input start to end in ranged GETs of
//!   [`RANGE_BYTES`], [`RANGES_AHEAD`] in flight beyond the one being read;
//! * the stitched file is written as one multipart upload, in order, with at
//!   most [`PARTS_IN_FLIGHT`] parts uploading besides the one being filled;
//!   a failed or cancelled stitch aborts it, and nothing appears under the
//!   final name (the object exists once the upload completes);
//! * small outputs (manifest, chapters, state) are single PUTs, atomic; the
//!   manifest is written last and is the commit marker;
//! * the resumability state compares inputs by size, last-modified time and
//!   ETag.
//!
//! Retries with backoff on throttling, 5xx and connection errors come from
//! the crate's retry configuration (its defaults; `RECSTITCH_STORE_RETRIES`
//! and `RECSTITCH_STORE_RETRY_TIMEOUT_SECS` change them). Errors name the
//! object's URL; query strings (a SAS token) are cut from every message.
//!
//! Nothing here is global: the mounts belong to the storage value the
//! caller passes in, and the requests run on the caller's runtime
//! ([`Storage::on_runtime`](crate::Storage::on_runtime)) or on a small one
//! the storage starts at its first request and stops when dropped. The
//! stitched file reaches its upload through a pipe: a failed upload closes
//! it, and the writer stops with a broken pipe, which Rust programs ignore
//! as a signal; a host program that does not ignore `SIGPIPE` should.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};

use crate::error::{Error, Here, Result};
use crate::limits::{Limit, Limits};

/// Bytes of one ranged GET of the stitch's sequential read.
pub const RANGE_BYTES: u64 = 4 << 20;
/// Ranged GETs in flight ahead of the one being read.
pub const RANGES_AHEAD: usize = 3;
/// Default bytes of one part of a multipart upload
/// (`RECSTITCH_STORE_PART_BYTES` changes it, at least 64 KiB).
pub const PART_BYTES: usize = 8 << 20;
/// Parts uploading at once, besides the one being filled.
pub const PARTS_IN_FLIGHT: usize = 2;
/// Bytes the probe asks for when it reads a box header.
const PROBE_BUFFER: usize = 32;

/// A store mounted under a URL root (`az://container`, `memory://name`, `file://`).
struct Mount {
    root: String,
    store: Arc<dyn ObjectStore>,
    fetched: Arc<AtomicU64>,
}

/// Makes rustls on *ring* the process's TLS crypto when no other is set:
/// the Azure client is built on rustls without a crypto of its own (so the
/// build needs no C compiler), and ring is what the rest of recstitch
/// uses. A caller that installed another provider keeps it. Call it before
/// building an Azure store of your own (see the module's example).
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err: another thread installed one first, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Where the requests of a [`Storage`](crate::Storage)'s stores run: the
/// caller's runtime (a handle given to
/// [`Storage::on_runtime`](crate::Storage::on_runtime)), or a small one of
/// the storage's own (two worker threads), started at its first request and
/// stopped when the last clone of the storage is dropped. Nothing is global.
pub(crate) struct Exec {
    given: Option<tokio::runtime::Handle>,
    own: OnceLock<OwnRuntime>,
}

/// A runtime that shuts down in the background when dropped, so that
/// dropping it is safe from async code too.
struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl Exec {
    fn handle(&self) -> tokio::runtime::Handle {
        if let Some(h) = &self.given {
            return h.clone();
        }
        let own = self.own.get_or_init(|| {
            OwnRuntime(Some(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .thread_name("recstitch-store")
                    .enable_all()
                    .build()
                    .expect("the object-store runtime starts (threads and a timer)"),
            ))
        });
        own.0.as_ref().expect("a runtime until dropped").handle().clone()
    }

    /// Runs `f` to completion and waits for it.
    fn block_on<F>(&self, f: F) -> F::Output
    where
        F: std::future::Future + Send,
        F::Output: Send,
    {
        let handle = self.handle();
        if tokio::runtime::Handle::try_current().is_err() {
            return handle.block_on(f);
        }
        // Called from inside an async task (a worker calling the library
        // straight from async code): blocking the task's thread on a
        // runtime would panic, so the wait happens on a thread of its own.
        // (From async code, prefer `tokio::task::spawn_blocking`: this still
        // blocks the calling thread.)
        std::thread::scope(|scope| {
            scope
                .spawn(|| handle.block_on(f))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    fn spawn<F>(&self, f: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle().spawn(f)
    }
}

/// The object stores of a [`Storage`](crate::Storage), each under its URL
/// root, and where their requests run. Clones of a storage share them.
pub(crate) struct Stores {
    mounts: RwLock<Vec<Mount>>,
    exec: Arc<Exec>,
}

impl Stores {
    /// No store yet; requests on a runtime of their own, started at the
    /// first one.
    pub(crate) fn new() -> Self {
        Self::with_exec(None)
    }

    /// No store yet; requests on `handle`'s runtime, which must be
    /// multi-thread (a current-thread one cannot drive requests while the
    /// library waits for them).
    pub(crate) fn on(handle: tokio::runtime::Handle) -> Result<Self> {
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return Err(Error::Usage(
                "the storage needs a multi-thread tokio runtime: a current-thread runtime cannot \
                 drive requests while the library waits for them (use Storage::default() instead)"
                    .into(),
            ));
        }
        Ok(Self::with_exec(Some(handle)))
    }

    fn with_exec(given: Option<tokio::runtime::Handle>) -> Self {
        Stores {
            mounts: RwLock::new(Vec::new()),
            exec: Arc::new(Exec {
                given,
                own: OnceLock::new(),
            }),
        }
    }

    /// The URL roots mounted, in order.
    pub(crate) fn roots(&self) -> Vec<String> {
        let mounts = self.mounts.read().unwrap_or_else(PoisonError::into_inner);
        mounts.iter().map(|m| m.root.clone()).collect()
    }

    /// Bytes fetched by GETs from the store mounted at `root`.
    pub(crate) fn bytes_fetched(&self, root: &str) -> u64 {
        self.mounts
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|m| m.root == root.trim_end_matches('/'))
            .map_or(0, |m| m.fetched.load(Ordering::Relaxed))
    }

    /// Mounts the store of `url` (built from the environment) and returns the
    /// URL, normalised (no trailing `/`), as the path that names it: pass it
    /// where a folder is taken ([`Archive::scan`](crate::Archive::scan),
    /// [`Stitcher::stitch`](crate::Stitcher::stitch), the batch). A URL whose
    /// root is already mounted reuses that store.
    pub(crate) fn mount(&self, url: &str) -> Result<PathBuf> {
        let (root, key) = split_url(url).ok_or_else(|| usage(url, "not a URL"))?;
        let path = PathBuf::from(join(&root, &key));
        if self.mounted(&root) {
            return Ok(path);
        }
        let scheme = root.split_once("://").map_or("", |(s, _)| s);
        let store: Arc<dyn ObjectStore> = match scheme {
            "az" | "abfs" | "abfss" | "azure" | "adl" => {
                // Client options (timeouts, proxy, `AZURE_ALLOW_HTTP`) stay as the
                // environment sets them.
                install_crypto_provider();
                let built = object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(root.clone())
                    .with_retry(retry_config())
                    .build()
                    .map_err(|e| match e.to_string() {
                        why if why.contains("Account must be specified") => usage(url, ACCOUNT_SETTINGS),
                        why => usage(url, format!("cannot open the container: {why}")),
                    })?;
                Arc::new(built)
            }
            "memory" => Arc::new(object_store::memory::InMemory::new()),
            "file" => Arc::new(object_store::local::LocalFileSystem::new()),
            _ => {
                return Err(usage(
                    url,
                    format!(
                        "{scheme}:// is not supported by this build (az://, abfs://, abfss://, file://, memory://)"
                    ),
                ))
            }
        };
        self.mount_store(&root, store);
        Ok(path)
    }

    fn mounted(&self, root: &str) -> bool {
        self.mounts
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|m| m.root == root)
    }

    /// Registers a configured store under the URL root `root`
    /// (`scheme://authority`, e.g. `az://recordings`): paths under it name its
    /// objects from then on. Replaces a store mounted there before.
    pub(crate) fn mount_store(&self, root: &str, store: Arc<dyn ObjectStore>) {
        let root = root.trim_end_matches('/');
        let root = if root.ends_with(':') {
            format!("{root}//")
        } else {
            root.to_string()
        };
        let mut mounts = self.mounts.write().unwrap_or_else(PoisonError::into_inner);
        mounts.retain(|m| m.root != root);
        mounts.push(Mount {
            root,
            store,
            fetched: Arc::default(),
        });
    }

    /// The object that `path` names, when it lies in a mounted store.
    pub(crate) fn object(&self, path: &Path) -> Option<Object> {
        let s = path.to_str()?;
        if !s.contains("://") {
            return None;
        }
        let mounts = self.mounts.read().unwrap_or_else(PoisonError::into_inner);
        let m = mounts.iter().find(|m| {
            s.strip_prefix(m.root.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || m.root.ends_with("://"))
        })?;
        let key = s[m.root.len()..].trim_matches('/');
        let key = Key::parse(key).unwrap_or_else(|_| Key::from(key));
        Some(Object {
            store: m.store.clone(),
            key,
            url: path.to_path_buf(),
            fetched: m.fetched.clone(),
            exec: self.exec.clone(),
        })
    }
}

/// Whether `s` is a URL (`scheme://…`) rather than a local path.
pub fn is_url(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| {
        scheme.len() >= 2
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
            && scheme.as_bytes()[0].is_ascii_alphabetic()
    })
}

/// The root (`scheme://authority`) and key (the rest, without slashes at
/// either end) of a URL.
fn split_url(url: &str) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme == "file" {
        return Some(("file://".into(), rest.trim_matches('/').into()));
    }
    let (authority, key) = rest.split_once('/').unwrap_or((rest, ""));
    Some((format!("{scheme}://{authority}"), key.trim_matches('/').into()))
}

/// The URL of `key` under `root` (`file://` + `/tmp/x` gives `file:///tmp/x`).
fn join(root: &str, key: &str) -> String {
    if key.is_empty() {
        root.to_string()
    } else {
        format!("{root}/{key}")
    }
}

fn usage(url: &str, what: impl std::fmt::Display) -> Error {
    Error::Usage(format!("{}: {}", redact(url), redact(&what.to_string())))
}

/// The retry configuration: the crate's defaults, or the environment's.
fn retry_config() -> object_store::RetryConfig {
    let mut retry = object_store::RetryConfig::default();
    if let Some(n) = std::env::var("RECSTITCH_STORE_RETRIES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        retry.max_retries = n;
    }
    if let Some(s) = std::env::var("RECSTITCH_STORE_RETRY_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
    {
        retry.retry_timeout = s;
        retry.backoff.max_backoff = retry
            .backoff
            .max_backoff
            .min(retry.retry_timeout.max(Duration::from_millis(100)));
    }
    retry
}

/// One object: its store, key and URL.
#[derive(Clone)]
pub(crate) struct Object {
    store: Arc<dyn ObjectStore>,
    key: Key,
    url: PathBuf,
    fetched: Arc<AtomicU64>,
    exec: Arc<Exec>,
}

/// Removes query strings (a SAS token) from a message.
fn redact(message: &str) -> String {
    let message = without_xml(message);
    let mut out = String::with_capacity(message.len());
    let mut rest = message.as_str();
    while let Some(q) = rest.find('?') {
        out.push_str(&rest[..q]);
        let tail = &rest[q + 1..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ')' | '>' | ','))
            .unwrap_or(tail.len());
        if tail[..end].contains('=') {
            out.push_str("?…");
        } else {
            out.push('?');
            out.push_str(&tail[..end]);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// `message` with the XML error body that a store sent back (`<?xml …
/// <Error><Code>ContainerNotFound</Code><Message>…`) replaced by its code
/// and the first line of its message, so that every error is one plain line.
fn without_xml(message: &str) -> String {
    let Some(start) = message.find("<?xml").or_else(|| message.find("<Error>")) else {
        return message.to_string();
    };
    let body = &message[start..];
    let tag = |name: &str| {
        let (open, close) = (format!("<{name}>"), format!("</{name}>"));
        let from = body.find(&open)? + open.len();
        let to = body[from..].find(&close)? + from;
        Some(body[from..to].lines().next().unwrap_or_default().trim().to_string())
    };
    let head = message[..start].trim_end().trim_end_matches(':');
    let said = match (tag("Code"), tag("Message")) {
        (Some(code), Some(text)) => format!("{code}: {text}"),
        (Some(code), None) => code,
        _ => "an XML error body".into(),
    };
    let tail = body
        .find("</Error>")
        .map_or("", |end| body[end + "</Error>".len()..].trim());
    format!("{head}: {said}{}{tail}", if tail.is_empty() { "" } else { " " })
}

/// The container of an Azure URL root (`az://container`,
/// `abfs://container@account.dfs.core.windows.net`).
fn container_of(url: &str) -> Option<String> {
    let (root, _) = split_url(url)?;
    let (_, authority) = root.split_once("://")?;
    let container = authority.split_once('@').map_or(authority, |(c, _)| c);
    (!container.is_empty()).then(|| container.to_string())
}

/// The environment that names a storage account, for a store built without one.
const ACCOUNT_SETTINGS: &str = "no storage account is configured: set AZURE_STORAGE_ACCOUNT_NAME with \
     AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_KEY (or run with a managed identity), or \
     AZURE_STORAGE_USE_EMULATOR=true (and AZURITE_BLOB_STORAGE_URL) for Azurite";

/// An object-store error as an I/O error (not found stays not found).
fn io_err(e: object_store::Error) -> std::io::Error {
    let kind = match e {
        object_store::Error::NotFound { .. } => std::io::ErrorKind::NotFound,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
            std::io::ErrorKind::PermissionDenied
        }
        _ => std::io::ErrorKind::Other,
    };
    std::io::Error::new(kind, redact(&e.to_string()))
}

fn join_err(e: tokio::task::JoinError) -> std::io::Error {
    std::io::Error::other(format!("an object-store request stopped: {e}"))
}

impl Object {
    pub(crate) fn head(&self) -> std::io::Result<ObjectMeta> {
        self.exec.block_on(self.store.head(&self.key)).map_err(io_err)
    }

    fn get_range(&self, start: u64, end: u64) -> std::io::Result<Bytes> {
        if start >= end {
            return Ok(Bytes::new());
        }
        let bytes = self
            .exec
            .block_on(self.store.get_range(&self.key, start..end))
            .map_err(io_err)?;
        self.fetched.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes)
    }

    /// Reads up to `head.len()` bytes from the start; how many.
    pub(crate) fn read_head(&self, head: &mut [u8]) -> Result<usize> {
        let size = self.head().map_err(|e| Error::io(&self.url, e))?.size;
        let n = head.len().min(usize::try_from(size).unwrap_or(usize::MAX));
        let bytes = self.get_range(0, n as u64).map_err(|e| Error::io(&self.url, e))?;
        let n = bytes.len().min(n);
        head[..n].copy_from_slice(&bytes[..n]);
        Ok(n)
    }

    /// Reads the whole object after checking its size against `max`.
    pub(crate) fn read_bounded(&self, max: u64) -> Result<Vec<u8>> {
        let size = self.head().map_err(|e| Error::io(&self.url, e))?.size;
        Limit::JsonBytes.check(size, max, &Here::new(&self.url, ""), "file size")?;
        Ok(self.get_range(0, size).map_err(|e| Error::io(&self.url, e))?.to_vec())
    }

    /// Reads the whole object, when it exists.
    pub(crate) fn read_all(&self) -> std::io::Result<Vec<u8>> {
        let size = self.head()?.size;
        Ok(self.get_range(0, size)?.to_vec())
    }

    /// Writes `bytes` in one PUT (atomic: readers see the old object or the new one).
    pub(crate) fn put(&self, bytes: &[u8]) -> Result<()> {
        let payload = PutPayload::from(Bytes::copy_from_slice(bytes));
        self.exec
            .block_on(self.store.put(&self.key, payload))
            .map(|_| ())
            .map_err(|e| Error::io(&self.url, io_err(e)))
    }

    /// Deletes the object (gone already is fine).
    pub(crate) fn delete(&self) -> Result<()> {
        match self.exec.block_on(self.store.delete(&self.key)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::io(&self.url, io_err(e))),
        }
    }

    /// Size, last-modified time (ns since the epoch) and ETag.
    pub(crate) fn stamp(&self) -> Option<(u64, i128, Option<String>)> {
        let meta = self.head().ok()?;
        let ns = meta.last_modified.timestamp_nanos_opt().map_or(0, i128::from);
        Some((meta.size, ns, meta.e_tag))
    }

    /// Opens the object for positional reads; `sequential` reads ahead in
    /// large ranges for a reader that goes from start to end.
    pub(crate) fn reader(&self, sequential: bool) -> std::io::Result<Reader> {
        let size = self.head()?.size;
        Ok(Reader {
            object: self.clone(),
            size,
            sequential,
            ahead: Mutex::new(Ahead::default()),
        })
    }
}

/// An object opened for positional reads.
pub struct Reader {
    object: Object,
    size: u64,
    sequential: bool,
    ahead: Mutex<Ahead>,
}

/// The ranges read ahead of a sequential reader: ranges are numbered
/// `offset / RANGE_BYTES`.
#[derive(Default)]
struct Ahead {
    /// The range being read from.
    current: Option<(u64, Vec<u8>)>,
    /// The next ranges, in order, being fetched.
    pending: VecDeque<(u64, tokio::task::JoinHandle<std::io::Result<Vec<u8>>>)>,
    /// Where the last sequential read ended.
    next: u64,
    /// Buffers of ranges read, for the next ones: the same few buffers
    /// serve the whole object, allocated on the reading thread (so that the
    /// allocator does not scatter them over its per-thread arenas).
    spare: Vec<Vec<u8>>,
}

impl Ahead {
    /// Lets the read-ahead go (at the end of the object).
    fn release(&mut self) {
        self.current = None;
        self.spare.clear();
        for (_, h) in self.pending.drain(..) {
            h.abort();
        }
    }
}

impl Drop for Ahead {
    fn drop(&mut self) {
        for (_, h) in self.pending.drain(..) {
            h.abort();
        }
    }
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reader({})", self.object.url.display())
    }
}

impl Reader {
    /// The object's size.
    pub fn len(&self) -> u64 {
        self.size
    }

    /// Whether the object is empty.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Reads up to `buf.len()` bytes at `offset`; 0 at the end.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        if offset >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let end = self.size.min(offset.saturating_add(buf.len() as u64));
        if !self.sequential {
            return self.direct(buf, offset, end);
        }
        let mut a = self.ahead.lock().unwrap_or_else(PoisonError::into_inner);
        let idx = offset / RANGE_BYTES;
        let in_window = a
            .current
            .as_ref()
            .is_some_and(|(c, _)| idx >= *c && idx <= *c + RANGES_AHEAD as u64);
        if !in_window {
            if offset != a.next && (a.current.is_some() || !a.pending.is_empty()) {
                // A read away from the sequence: leave the read-ahead alone.
                drop(a);
                return self.direct(buf, offset, end);
            }
            a.release();
        }
        if a.current.as_ref().is_none_or(|(c, _)| *c != idx) {
            while a.pending.front().is_some_and(|(i, _)| *i < idx) {
                if let Some((_, h)) = a.pending.pop_front() {
                    h.abort();
                }
            }
            let bytes = match a.pending.front() {
                Some((i, _)) if *i == idx => {
                    let (_, h) = a.pending.pop_front().expect("a front");
                    self.object.exec.block_on(h).map_err(join_err)??
                }
                _ => {
                    let buf = a.spare.pop().unwrap_or_default();
                    self.object.exec.block_on(self.fetch(idx, buf))?
                }
            };
            if let Some((_, old)) = a.current.replace((idx, bytes)) {
                a.spare.push(old);
            }
            self.top_up(&mut a, idx);
        }
        let (c, bytes) = a.current.as_ref().expect("a current range");
        let from = usize::try_from(offset - c * RANGE_BYTES).unwrap_or(usize::MAX);
        if from >= bytes.len() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the object is shorter than it was when opened",
            ));
        }
        let n = (bytes.len() - from).min(usize::try_from(end - offset).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&bytes[from..from + n]);
        a.next = offset + n as u64;
        if a.next >= self.size {
            // Done with this object: let the memory go.
            a.release();
        }
        Ok(n)
    }

    /// Fetches range `idx` into `buf` (its bytes replaced).
    fn fetch(&self, idx: u64, buf: Vec<u8>) -> impl std::future::Future<Output = std::io::Result<Vec<u8>>> + 'static {
        let start = idx * RANGE_BYTES;
        let end = self.size.min(start + RANGE_BYTES);
        let (store, key) = (self.object.store.clone(), self.object.key.clone());
        let fetched = self.object.fetched.clone();
        let mut buf = buf;
        buf.clear();
        buf.reserve_exact(usize::try_from(end - start).unwrap_or(0));
        async move {
            let options = object_store::GetOptions {
                range: Some((start..end).into()),
                ..Default::default()
            };
            let mut body = store.get_opts(&key, options).await.map_err(io_err)?.into_stream();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(io_err)?;
                fetched.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                buf.extend_from_slice(&chunk);
            }
            Ok(buf)
        }
    }

    /// Starts fetching the ranges after `idx`, up to [`RANGES_AHEAD`].
    fn top_up(&self, a: &mut Ahead, idx: u64) {
        let mut next = a.pending.back().map_or(idx + 1, |(i, _)| i + 1);
        while a.pending.len() < RANGES_AHEAD && next * RANGE_BYTES < self.size {
            let buf = a.spare.pop().unwrap_or_default();
            let h = self.object.exec.spawn(self.fetch(next, buf));
            a.pending.push_back((next, h));
            next += 1;
        }
    }

    fn direct(&self, buf: &mut [u8], offset: u64, end: u64) -> std::io::Result<usize> {
        let bytes = self.object.get_range(offset, end)?;
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        Ok(n)
    }
}

/// `Read + Seek` over a [`Reader`], for the probe.
struct Cursor {
    reader: Reader,
    pos: u64,
}

impl Read for Cursor {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.reader.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Cursor {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.reader.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = pos.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

/// The object as a `Read + Seek` for the probe, and its size: reads go out
/// as ranged GETs of what the probe asks for (box headers, `moov`).
pub(crate) fn probe_reader(object: &Object) -> std::io::Result<(impl Read + Seek, u64)> {
    let reader = object.reader(false)?;
    let size = reader.size;
    Ok((
        std::io::BufReader::with_capacity(PROBE_BUFFER, Cursor { reader, pos: 0 }),
        size,
    ))
}

/// The objects under the folder URL `root`, sorted: keys with a component
/// starting with `.` left out, and those under an `exclude`d URL.
pub(crate) fn list(object: &Object, exclude: &[PathBuf], limits: &Limits) -> Result<Vec<PathBuf>> {
    let root = object.url.as_path();
    let prefix = (!object.key.as_ref().is_empty()).then_some(&object.key);
    let base = root.to_string_lossy().trim_end_matches('/').to_string();
    let exclude: Vec<String> = exclude
        .iter()
        .filter_map(|p| p.to_str())
        .map(|p| format!("{}/", p.trim_end_matches('/')))
        .collect();
    let mut files = Vec::new();
    object.exec.block_on(async {
        let mut listing = object.store.list(prefix);
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| Error::io(root, io_err(e)))?;
            let rel = match prefix {
                Some(p) => meta
                    .location
                    .prefix_match(p)
                    .map(|parts| parts.map(|p| p.as_ref().to_string()).collect()),
                None => Some(
                    meta.location
                        .parts()
                        .map(|p| p.as_ref().to_string())
                        .collect::<Vec<_>>(),
                ),
            };
            let Some(rel) = rel else { continue };
            if rel.is_empty() || rel.iter().any(|p: &String| p.starts_with('.')) {
                continue;
            }
            let url = format!("{base}/{}", rel.join("/"));
            if exclude.iter().any(|x| url.starts_with(x.as_str())) {
                continue;
            }
            files.push(PathBuf::from(url));
            limits.check_archive_files(files.len(), root)?;
        }
        Ok::<_, Error>(())
    })?;
    files.sort();
    Ok(files)
}

/// Checks that the folder URL `out` can take outputs: a small object can
/// be written there (and is removed).
pub(crate) fn check_writable(stores: &Stores, out: &Path) -> Result<()> {
    let probe = out.join(format!(".recstitch-write-check.{}", std::process::id()));
    let object = stores
        .object(&probe)
        .ok_or_else(|| usage(&out.display().to_string(), "no store is mounted there"))?;
    object.put(b"").map_err(|e| {
        let why = e.detail();
        let url = out.display().to_string();
        match container_of(&url).filter(|_| why.contains("ContainerNotFound")) {
            Some(container) => Error::Usage(format!(
                "output folder {url}: the container {container:?} does not exist; create it first \
                 (`az storage container create --name {container}`, or in Azure Storage Explorer)"
            )),
            None => Error::Usage(format!("output folder {url}: is not writable: {why}")),
        }
    })?;
    let _ = object.delete();
    Ok(())
}

fn part_bytes() -> usize {
    std::env::var("RECSTITCH_STORE_PART_BYTES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(PART_BYTES, |n| n.max(64 << 10))
}

/// Writes the object at `path` in one multipart upload of what `write`
/// writes to the file it is given (a pipe: written in order, never sought).
/// The object appears when the upload completes; when `write` or the upload
/// fails, the upload is aborted and nothing appears.
pub(crate) fn upload<T>(object: &Object, write: impl FnOnce(&File) -> Result<T>) -> Result<T> {
    let url = object.url.clone();
    let (from, to) = std::io::pipe().map_err(|e| Error::io(&url, e))?;
    let out = File::from(OwnedFd::from(to));
    let failed = Arc::new(AtomicBool::new(false));
    let uploading = {
        let (object, failed) = (object.clone(), failed.clone());
        std::thread::Builder::new()
            .name("recstitch-upload".into())
            .spawn(move || upload_from(&object, from, &failed))
            .map_err(|e| Error::io(&url, e))?
    };
    let written = write(&out);
    if written.is_err() {
        failed.store(true, Ordering::SeqCst);
    }
    drop(out);
    let uploaded = uploading
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the upload thread stopped")));
    match (written, uploaded) {
        (Ok(t), Ok(())) => Ok(t),
        // The upload's own error says more than the broken pipe it caused.
        (Err(Error::Io { source, .. }), Err(up)) if source.kind() == std::io::ErrorKind::BrokenPipe => {
            Err(Error::io(&url, up))
        }
        (Err(e), _) => Err(e),
        (Ok(_), Err(up)) => Err(Error::io(&url, up)),
    }
}

/// A part's bytes, given back to the pool once the upload lets them go.
struct PooledPart {
    bytes: Vec<u8>,
    pool: std::sync::mpsc::Sender<Vec<u8>>,
}

impl AsRef<[u8]> for PooledPart {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

impl Drop for PooledPart {
    fn drop(&mut self) {
        let _ = self.pool.send(std::mem::take(&mut self.bytes));
    }
}

/// Reads the pipe into parts and uploads them; completes at the end of the
/// pipe unless `failed`, else aborts.
fn upload_from(object: &Object, mut from: std::io::PipeReader, failed: &AtomicBool) -> std::io::Result<()> {
    let mut upload = object
        .exec
        .block_on(object.store.put_multipart(&object.key))
        .map_err(io_err)?;
    let part = part_bytes();
    let mut in_flight: VecDeque<tokio::task::JoinHandle<object_store::Result<()>>> = VecDeque::new();
    let result = (|| {
        // Reads go through a buffer larger than a pipe packet: a pipe in
        // packet mode (O_DIRECT, which the writer may set) drops the rest of
        // a packet that a smaller read does not take.
        let mut scratch = vec![0u8; 64 << 10];
        // Parts come back here once uploaded: the same few buffers serve
        // the whole upload.
        let (give_back, returned) = std::sync::mpsc::channel::<Vec<u8>>();
        // Room for a part and one more read: a buffer never grows.
        let room = part + scratch.len();
        let mut buf: Vec<u8> = Vec::with_capacity(room);
        loop {
            let n = match from.read(&mut scratch) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            buf.extend_from_slice(&scratch[..n]);
            while buf.len() >= part || (n == 0 && !buf.is_empty()) {
                while in_flight.len() >= PARTS_IN_FLIGHT {
                    let h = in_flight.pop_front().expect("a part in flight");
                    object.exec.block_on(h).map_err(join_err)?.map_err(io_err)?;
                }
                let mut rest = returned.try_recv().unwrap_or_else(|_| Vec::with_capacity(room));
                rest.clear();
                rest.extend_from_slice(buf.get(part..).unwrap_or_default());
                buf.truncate(part);
                let full = std::mem::replace(&mut buf, rest);
                let owner = PooledPart {
                    bytes: full,
                    pool: give_back.clone(),
                };
                let put = upload.put_part(PutPayload::from(Bytes::from_owner(owner)));
                in_flight.push_back(object.exec.spawn(put));
            }
            if n == 0 {
                break;
            }
        }
        while let Some(h) = in_flight.pop_front() {
            object.exec.block_on(h).map_err(join_err)?.map_err(io_err)?;
        }
        if failed.load(Ordering::SeqCst) {
            return Err(std::io::Error::other("the stitch stopped; upload aborted"));
        }
        object.exec.block_on(upload.complete()).map(|_| ()).map_err(io_err)
    })();
    if result.is_err() {
        // Stops the writer at its next write (a broken pipe).
        drop(from);
        for h in in_flight.drain(..) {
            h.abort();
        }
        let _ = object.exec.block_on(upload.abort());
    }
    result
}

/// Every object under the folder URL `root` (its store mounted), hidden
/// ones included, sorted, with its size.
pub(crate) fn list_all(object: &Object) -> Result<Vec<(PathBuf, u64)>> {
    let root = object.url.as_path();
    let prefix = (!object.key.as_ref().is_empty()).then_some(&object.key);
    let base = root.to_string_lossy().trim_end_matches('/').to_string();
    let mut out = object.exec.block_on(async {
        let mut listing = object.store.list(prefix);
        let mut out = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| Error::io(root, io_err(e)))?;
            let rel: Vec<String> = match prefix {
                Some(p) => match meta.location.prefix_match(p) {
                    Some(parts) => parts.map(|p| p.as_ref().to_string()).collect(),
                    None => continue,
                },
                None => meta.location.parts().map(|p| p.as_ref().to_string()).collect(),
            };
            out.push((PathBuf::from(format!("{base}/{}", rel.join("/"))), meta.size));
        }
        Ok::<_, Error>(out)
    })?;
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_storages_keep_their_own_mounts() {
        let (a, b) = (Stores::new(), Stores::new());
        let root = a.mount("memory://mine/x").unwrap();
        a.object(&root.join("k")).unwrap().put(b"a").unwrap();
        assert!(b.object(&root.join("k")).is_none(), "b mounted nothing");
        b.mount("memory://mine").unwrap();
        let theirs = b.object(&root.join("k")).unwrap();
        assert_eq!(theirs.head().unwrap_err().kind(), std::io::ErrorKind::NotFound);
        assert_eq!(a.roots(), vec!["memory://mine".to_string()]);
    }

    #[test]
    fn a_current_thread_runtime_is_refused() {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let e = Stores::on(rt.handle().clone()).err().unwrap();
        assert!(e.to_string().contains("multi-thread"), "{e}");
    }

    #[test]
    fn urls_are_told_from_paths() {
        assert!(is_url("az://recordings/archive"));
        assert!(is_url("memory://x"));
        assert!(is_url("file:///tmp/x"));
        assert!(!is_url("/tmp/x"));
        assert!(!is_url("c://x"));
        assert!(!is_url("archive"));
    }

    #[test]
    fn roots_and_keys() {
        assert_eq!(split_url("az://c/a/b/"), Some(("az://c".into(), "a/b".into())));
        assert_eq!(split_url("az://c"), Some(("az://c".into(), "".into())));
        assert_eq!(split_url("file:///tmp/x/"), Some(("file://".into(), "tmp/x".into())));
    }

    #[test]
    fn query_strings_are_cut() {
        assert_eq!(
            redact("GET http://h/c/x.mp4?sv=2020&sig=SECRET failed"),
            "GET http://h/c/x.mp4?… failed"
        );
        assert_eq!(redact("why? no idea"), "why? no idea");
    }

    #[test]
    fn an_xml_error_body_becomes_its_code_and_message() {
        let raw = "Error performing PUT http://h/acct/c/x?sig=S in 2ms - Server returned non-2xx status code: \
                   404 Not Found: <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n  <Code>ContainerNotFound</Code>\n  \
                   <Message>The specified container does not exist.\nRequestId:1\nTime:x</Message>\n</Error>";
        let plain = redact(raw);
        assert_eq!(
            plain,
            "Error performing PUT http://h/acct/c/x?… in 2ms - Server returned non-2xx status code: 404 Not Found: \
             ContainerNotFound: The specified container does not exist."
        );
        assert_eq!(redact("x: <Error>junk"), "x: an XML error body");
        assert_eq!(container_of("az://stitched/out").as_deref(), Some("stitched"));
        assert_eq!(
            container_of("abfss://c1@acct.dfs.core.windows.net/p").as_deref(),
            Some("c1")
        );
    }

    #[test]
    fn a_failed_write_aborts_the_upload_and_leaves_no_object() {
        use std::io::Write;
        let stores = Stores::new();
        let root = stores.mount("memory://abort").unwrap();
        let path = root.join("call/rec.mp4");
        let o = stores.object(&path).unwrap();
        let e = upload(&o, |mut f| {
            f.write_all(&vec![7u8; 3 * PART_BYTES + 5]).unwrap();
            Err::<(), _>(Error::Cancelled)
        })
        .unwrap_err();
        assert!(matches!(e, Error::Cancelled), "{e}");
        assert_eq!(o.head().unwrap_err().kind(), std::io::ErrorKind::NotFound);
        // And a write that succeeds gives the object, in order.
        let bytes: Vec<u8> = (0..PART_BYTES * 2 + 12345).map(|i| (i % 251) as u8).collect();
        upload(&o, |mut f| f.write_all(&bytes).map_err(|e| Error::io(&path, e))).unwrap();
        assert_eq!(o.read_all().unwrap(), bytes);
    }

    #[test]
    fn objects_read_and_write_in_memory() {
        let stores = Stores::new();
        let root = stores.mount("memory://unit/a").unwrap();
        assert_eq!(root, PathBuf::from("memory://unit/a"));
        let o = stores.object(&root.join("x/y.bin")).unwrap();
        o.put(&(0..=255u8).cycle().take(10 << 20).collect::<Vec<_>>()).unwrap();
        let r = o.reader(true).unwrap();
        let mut buf = vec![0u8; 300_000];
        let mut at = 0;
        loop {
            let n = r.read_at(&mut buf, at).unwrap();
            assert!(buf[..n]
                .iter()
                .enumerate()
                .all(|(i, b)| *b == ((at as usize + i) % 256) as u8));
            at += n as u64;
            if n == 0 {
                break;
            }
        }
        assert_eq!(at, 10 << 20);
        let mut small = [0u8; 4];
        assert_eq!(r.read_at(&mut small, 9_000_000).unwrap(), 4);
        assert_eq!(small[0], (9_000_000 % 256) as u8);
        let files = list(&stores.object(&root).unwrap(), &[], &Limits::default()).unwrap();
        assert_eq!(files, vec![PathBuf::from("memory://unit/a/x/y.bin")]);
        assert!(stores.object(Path::new("memory://other/x")).is_none());
    }
}
