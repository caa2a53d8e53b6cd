//! Finding the chunks of an archive folder and grouping them into recordings.
//!
//! Files are identified by their content, never by their extension: an MP4
//! starts with an `ftyp` box; metadata and events are JSON of a known shape;
//! what a failed download leaves (empty files, HTML error pages, `401` JSON
//! bodies) is recognised as such. Media is paired with its metadata by the
//! `chunkDocumentId` inside the JSON and by file name, in any folder layout.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Here, Result};
use crate::finding::{Code, Finding};
use crate::input::metadata::{self, ChunkMetadata, CompletionEvent, EventChunk, MediaFormat};
use crate::io::{output_paths, OutputPaths};
use crate::limits::{Limit, Limits};
use crate::storage::Storage;

/// Options for [`Archive::scan`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ScanOptions {
    /// Resource budgets.
    pub limits: Limits,
    /// Completion event files to read besides those found in the folder
    /// (an archival worker receives the event on its own).
    pub events: Vec<PathBuf>,
    /// Folders not to scan: the output folder, when it lies inside the
    /// archive (its files are recstitch's own, never inputs).
    pub exclude: Vec<PathBuf>,
    /// Where the archive is read: local files by default, or an object
    /// store mounted on it. The recordings found keep it.
    pub storage: Storage,
}

/// What a file holds, judged from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FileKind {
    /// Zero bytes.
    Empty,
    /// Starts with an `ftyp` box.
    Mp4,
    /// An HTML or XML page.
    Html,
    /// A JSON document.
    Json,
    /// An MP3 file (an ID3 tag or MPEG audio frames).
    Mp3,
    /// A WAV file (RIFF/WAVE).
    Wav,
    /// AAC in ADTS frames (a raw `.aac`).
    Adts,
    /// An Ogg file (Opus, Vorbis).
    Ogg,
    /// A FLAC file.
    Flac,
    /// A Matroska or WebM file.
    Matroska,
    /// The file could not be read (the scan's message says why).
    Unreadable,
    /// Anything else.
    Other,
}

impl FileKind {
    /// Classifies the first bytes of a file.
    pub fn sniff(head: &[u8]) -> FileKind {
        if head.is_empty() {
            return FileKind::Empty;
        }
        if head.get(4..8) == Some(b"ftyp") {
            return FileKind::Mp4;
        }
        if head.starts_with(b"ID3") {
            return FileKind::Mp3;
        }
        if head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WAVE") {
            return FileKind::Wav;
        }
        if head.starts_with(b"OggS") {
            return FileKind::Ogg;
        }
        if head.starts_with(b"fLaC") {
            return FileKind::Flac;
        }
        if head.starts_with(&[0x1a, 0x45, 0xdf, 0xa3]) {
            return FileKind::Matroska;
        }
        // An MPEG audio frame sync: 11 bits set; layer bits 00 mean ADTS AAC.
        if let [0xff, b, ..] = head {
            if b & 0xe0 == 0xe0 {
                return if b & 0x06 == 0 { FileKind::Adts } else { FileKind::Mp3 };
            }
        }
        let text = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
        match text.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'<') => FileKind::Html,
            Some(b'{') | Some(b'[') => FileKind::Json,
            _ => FileKind::Other,
        }
    }

    /// Describes the kind for a message ("an HTML page").
    pub fn describe(self) -> &'static str {
        match self {
            FileKind::Empty => "an empty file",
            FileKind::Mp4 => "an MP4 file",
            FileKind::Html => "an HTML page (a saved error page?)",
            FileKind::Json => "a JSON document (a saved error response?)",
            FileKind::Unreadable => "a file that cannot be read",
            FileKind::Other => "not an MP4 (no ftyp box)",
            other => other.media_format().unwrap_or("a media file"),
        }
    }

    /// For a media format other than MP4, its name ("an MP3 file").
    pub fn media_format(self) -> Option<&'static str> {
        Some(match self {
            FileKind::Mp3 => "an MP3 file",
            FileKind::Wav => "a WAV file",
            FileKind::Adts => "an ADTS AAC file (raw .aac)",
            FileKind::Ogg => "an Ogg file",
            FileKind::Flac => "a FLAC file",
            FileKind::Matroska => "a Matroska/WebM file",
            _ => return None,
        })
    }
}

/// A chunk found in the archive: its metadata file and, when found, its media.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// The chunk's document id (from the metadata, else the file name).
    pub document_id: String,
    /// The metadata file.
    pub metadata_path: PathBuf,
    /// The parsed metadata; `None` when the file did not parse (a
    /// `metadata.invalid` finding says why).
    pub metadata: Option<ChunkMetadata>,
    /// The media file paired with the metadata.
    pub media_path: Option<PathBuf>,
    /// What the media file holds.
    pub media_kind: Option<FileKind>,
    /// The completion event's entry for this chunk, when an event lists it.
    pub event_entry: Option<EventChunk>,
}

impl Recording {
    /// The format of the recording's media: what its first chunk's metadata
    /// names, else what its first media file holds; MP4 when neither says.
    pub fn format(&self) -> MediaFormat {
        let stated = self
            .chunks
            .iter()
            .find_map(|c| c.metadata.as_ref().and_then(|m| m.recording.media_format()));
        let found = || {
            self.chunks.iter().find_map(|c| match c.media_kind {
                Some(FileKind::Mp3) => Some(MediaFormat::Mp3),
                Some(FileKind::Wav) => Some(MediaFormat::Wav),
                Some(FileKind::Mp4) => Some(MediaFormat::Mp4),
                _ => None,
            })
        };
        stated.or_else(found).unwrap_or(MediaFormat::Mp4)
    }

    /// When the recording started: the earliest start in its chunks'
    /// metadata, else its completion event's `recordingStartTime`.
    pub fn start(&self) -> Option<metadata::WallClock> {
        let chunks = self
            .chunks
            .iter()
            .filter_map(|c| c.metadata.as_ref().map(|m| m.start))
            .min();
        chunks.or_else(|| self.event.as_ref().and_then(|e| e.recording_start))
    }

    /// The name of the recording's outputs, which a person can read and
    /// which sorts by start time: its start in UTC to the second and the
    /// first 8 hex digits of the SHA-256 of its key
    /// (`20240514T093000Z-1a2b3c4d`), or `unknown-1a2b3c4d` when no
    /// metadata or event gives a start. The same chunks give the same name
    /// on every run; the full key is in the manifest.
    pub fn output_name(&self) -> String {
        output_name(self.start(), &self.key)
    }

    /// Where the recording's outputs go under `out_dir`: see
    /// [`Recording::output_name`] and [`output_paths`] (the extension is
    /// the recording's format's).
    pub fn output_paths(&self, out_dir: &Path) -> OutputPaths {
        output_paths(&self.call_id, &self.output_name(), self.format().extension(), out_dir)
    }
}

/// [`Recording::output_name`] of a recording that starts at `start` with
/// key `key`.
pub fn output_name(start: Option<metadata::WallClock>, key: &str) -> String {
    use sha2::{Digest, Sha256};
    let hash = crate::io::hex(&Sha256::digest(key.as_bytes())[..4]);
    let time = start
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(s.0)).ok())
        .map(|t| {
            format!(
                "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        });
    format!("{}-{hash}", time.as_deref().unwrap_or("unknown"))
}

impl Chunk {
    /// The chunk index from the metadata, or from the event.
    pub fn index(&self) -> Option<u32> {
        self.metadata
            .as_ref()
            .map(|m| m.index)
            .or(self.event_entry.as_ref().map(|e| e.index))
    }
}

/// The chunks of one recording session, ordered by index.
#[derive(Debug, Clone)]
pub struct Recording {
    /// The call.
    pub call_id: String,
    /// A stable key: the event's recording id when there is an event, else
    /// the document id of the recording's first chunk.
    pub key: String,
    /// The chunks, by index (duplicates kept next to each other).
    pub chunks: Vec<Chunk>,
    /// The completion event, when the archive holds one for this recording.
    pub event: Option<CompletionEvent>,
    /// Findings made while scanning (invalid metadata, duplicates).
    pub findings: Vec<Finding>,
    /// The archive folder it was found in (manifest paths are relative to it).
    pub root: PathBuf,
    /// Where its chunks are read (the storage the archive was scanned with).
    pub storage: Storage,
}

/// A file that belongs to no chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Orphan {
    /// The file.
    pub path: PathBuf,
    /// Why it was not used.
    pub reason: String,
}

/// The result of scanning an archive folder.
#[derive(Debug, Clone)]
pub struct Archive {
    /// The folder scanned.
    pub root: PathBuf,
    /// The recordings found, ordered by call id and key.
    pub recordings: Vec<Recording>,
    /// Files that belong to no chunk.
    pub orphans: Vec<Orphan>,
    /// How many files the scan examined (hidden files and excluded folders
    /// left out).
    pub files: usize,
    /// Where it was read ([`ScanOptions::storage`]).
    pub storage: Storage,
}

impl Archive {
    /// A sentence for an archive that holds no recording, naming the folder
    /// and what was found in it; `None` when there are recordings.
    pub fn nothing_found(&self) -> Option<String> {
        if !self.recordings.is_empty() {
            return None;
        }
        let what = match (self.files, self.orphans.len()) {
            (0, 0) => "it is empty (is the volume mounted?)".to_string(),
            (files, 0) => format!("{files} file(s), none of them chunk metadata or a completion event"),
            (files, orphans) => format!(
                "{files} file(s), none of them chunk metadata or a completion event; {orphans} listed as orphans (first: {}: {})",
                self.orphans[0].path.display(),
                self.orphans[0].reason
            ),
        };
        Some(format!("{} holds no recording: {what}", self.root.display()))
    }
}

/// The operating system's reason why `path` cannot be read, if it cannot.
pub(crate) fn unreadable_reason(storage: &Storage, path: &Path) -> Option<String> {
    match sniff_file(storage, path) {
        Ok(_) => None,
        Err(e) => Some(e.detail()),
    }
}

/// The most leading whitespace looked past to find what a text file is.
pub const MAX_LEADING_WHITESPACE: usize = 1 << 20;

/// Sniffs the head of the file at `path`. A head that is only whitespace
/// (JSON may start with any amount of it) is read further, in blocks, up to
/// [`MAX_LEADING_WHITESPACE`], and the kind decided by what follows it.
fn sniff_file(storage: &Storage, path: &Path) -> Result<FileKind> {
    let mut head = vec![0u8; 64];
    let n = storage.read_head(path, &mut head)?;
    head.truncate(n);
    let blank = |b: &[u8]| {
        let text = b.strip_prefix(b"\xef\xbb\xbf").unwrap_or(b);
        text.iter().all(u8::is_ascii_whitespace)
    };
    if n < 64 || !blank(&head) {
        return Ok(FileKind::sniff(&head));
    }
    // Only whitespace so far: read on until something else (bounded).
    let mut more = vec![0u8; MAX_LEADING_WHITESPACE.saturating_add(64)];
    let m = storage.read_head(path, &mut more)?;
    more.truncate(m);
    let text = more.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&more);
    match text.iter().position(|b| !b.is_ascii_whitespace()) {
        Some(start) => {
            let rest = &text[start..];
            Ok(FileKind::sniff(&rest[..rest.len().min(64)]))
        }
        None => Ok(FileKind::sniff(&head)),
    }
}

/// What [`walk`] found: the files, sorted, and the folders it could not read.
struct Walk {
    files: Vec<PathBuf>,
    unreadable: Vec<Orphan>,
}

/// Lists the files under `root`, sorted, skipping hidden entries and the
/// `exclude`d folders (canonical paths). Symbolic links to files are
/// followed, links to folders are not (so a link cycle cannot trap the
/// walk). An unreadable subfolder is listed and skipped; only an unreadable
/// `root` is an error.
fn walk(root: &Path, exclude: &[PathBuf], limits: &Limits) -> Result<Walk> {
    let mut files = Vec::new();
    let mut unreadable = Vec::new();
    let entries = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let below_root = e.depth() > 0;
            let hidden = below_root && e.file_name().to_string_lossy().starts_with('.');
            let excluded = below_root && e.file_type().is_dir() && is_excluded(e.path(), exclude);
            !hidden && !excluded
        });
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) if e.depth() == 0 => {
                let source = e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("cannot be walked"));
                return Err(Error::io(root, source));
            }
            Err(e) => {
                let path = e.path().map(Path::to_path_buf).unwrap_or_else(|| root.to_path_buf());
                let why = e.io_error().map_or_else(|| e.to_string(), ToString::to_string);
                unreadable.push(Orphan {
                    path,
                    reason: format!("folder that cannot be read, skipped: {why}"),
                });
                continue;
            }
        };
        let here = Here::new(entry.path(), "");
        if entry.file_type().is_dir() {
            limits.check_count(Limit::FolderDepth, entry.depth(), &here, "folder depth")?;
        } else if entry.path().is_file() {
            files.push(entry.into_path());
            limits.check_archive_files(files.len(), root)?;
        }
    }
    files.sort();
    Ok(Walk { files, unreadable })
}

/// Whether the folder `path` is one of `exclude` (canonical paths).
fn is_excluded(path: &Path, exclude: &[PathBuf]) -> bool {
    !exclude.is_empty() && std::fs::canonicalize(path).is_ok_and(|p| exclude.contains(&p))
}

/// Whether the text of a JSON document that does not parse is a completion
/// event's (it names the event's storage block or type, and no chunk
/// metadata field).
fn looks_like_event_text(bytes: &[u8]) -> bool {
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    (has(b"recordingStorageInfo") || has(b"RecordingFileStatusUpdated")) && !has(b"chunkDocumentId")
}

/// Whether a JSON document is a manifest that recstitch wrote.
fn is_own_manifest(v: &Value) -> bool {
    v.pointer("/tool/name").and_then(Value::as_str) == Some("recstitch") && v.get("recordingKey").is_some()
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The dot-separated parts of a file stem that can be a document id, when
/// the stem has more than one (`0-audiomp3.<documentId>`): a part shorter
/// than 8 characters names no document.
fn name_parts(stem: &str) -> impl Iterator<Item = &str> {
    let several = stem.contains('.');
    stem.split('.').filter(move |p| several && p.len() >= 8)
}

fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// A metadata file on its way to becoming a [`Chunk`].
struct MetaFile {
    path: PathBuf,
    parsed: Result<ChunkMetadata>,
    /// Document id: from the metadata, else recovered from the JSON, else the file stem.
    document_id: String,
    /// Call id: from the metadata, else recovered from the JSON.
    call_id: Option<String>,
}

impl Archive {
    /// Scans `root` recursively and groups what it finds into recordings.
    ///
    /// Fails only when the folder itself cannot be read; problems with
    /// individual files become findings or orphans.
    pub fn scan(root: &Path, options: &ScanOptions) -> Result<Archive> {
        let limits = &options.limits;
        #[cfg(feature = "object-store")]
        if options.storage.is_remote(root) {
            let files = options.storage.list(root, &options.exclude, limits)?;
            return Archive::from_walk(
                root,
                Walk {
                    files,
                    unreadable: Vec::new(),
                },
                options,
            );
        }
        if !root.is_dir() {
            let what = if root.exists() {
                "not a folder"
            } else {
                "no such folder"
            };
            return Err(Error::Usage(format!("{}: {what}", root.display())));
        }
        let exclude: Vec<PathBuf> = options
            .exclude
            .iter()
            .filter_map(|p| std::fs::canonicalize(p).ok())
            .collect();
        let walked = walk(root, &exclude, limits)?;
        Archive::from_walk(root, walked, options)
    }

    /// Groups the files `walked` found under `root` into recordings.
    fn from_walk(root: &Path, walked: Walk, options: &ScanOptions) -> Result<Archive> {
        let limits = &options.limits;
        let file_count = walked.files.len();
        let mut found = Found {
            orphans: walked.unreadable,
            storage: options.storage.clone(),
            ..Found::default()
        };
        for path in walked.files {
            found.classify(path, limits);
        }
        for path in &options.events {
            let bytes = options.storage.read_bounded(path, limits.max_json_bytes)?;
            let list = metadata::parse_events(&metadata::parse_json(&bytes, path)?, path)?;
            found.events.extend(list.into_iter().map(|e| (path.clone(), e)));
        }
        let events = unique_events(std::mem::take(&mut found.events));
        found.settle_other_json();
        found.set_outputs_aside();
        let chunks = pair(std::mem::take(&mut found.metas), &mut found.others);
        found.orphan_the_rest();
        let mut recordings = group(chunks, events, options)?;
        for r in &mut recordings {
            r.root = root.to_path_buf();
        }
        let mut orphans = found.orphans;
        orphans.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Archive {
            root: root.to_path_buf(),
            recordings,
            orphans,
            files: file_count,
            storage: options.storage.clone(),
        })
    }
}

/// The same event delivered twice (or given and also found) counts once.
fn unique_events(events: Vec<(PathBuf, CompletionEvent)>) -> Vec<(PathBuf, CompletionEvent)> {
    let mut unique: Vec<(PathBuf, CompletionEvent)> = Vec::with_capacity(events.len());
    for (path, e) in events {
        if !unique.iter().any(|(_, u)| *u == e) {
            unique.push((path, e));
        }
    }
    unique
}

/// The files of an archive sorted by what they hold, on the way to chunks.
#[derive(Default)]
struct Found {
    metas: Vec<MetaFile>,
    events: Vec<(PathBuf, CompletionEvent)>,
    /// Everything else: media, and whatever is not metadata or an event.
    others: Vec<(PathBuf, FileKind)>,
    orphans: Vec<Orphan>,
    /// `.json` files holding JSON that is neither metadata nor an event.
    other_json: Vec<PathBuf>,
    /// (folder, stem) of each manifest recstitch wrote: its siblings are outputs too.
    outputs: Vec<(PathBuf, String)>,
    /// Where the files are read.
    storage: Storage,
}

impl Found {
    /// Files `path` by its content (and, for failed downloads, its name).
    fn classify(&mut self, path: PathBuf, limits: &Limits) {
        let json_named = has_extension(&path, "json");
        let kind = match sniff_file(&self.storage, &path) {
            Ok(k) => k,
            // Metadata that cannot be read is still this chunk's metadata.
            Err(e) if json_named => {
                let why = Here::new(&path, "").invalid(format!("cannot be read: {}", e.detail()));
                return self.failed_metadata(path, why);
            }
            Err(_) => FileKind::Unreadable,
        };
        if kind != FileKind::Json {
            if json_named {
                // A `.json` that is not JSON: a metadata download that failed.
                let why = Here::new(&path, "").invalid(format!("not JSON: the file is {}", kind.describe()));
                return self.failed_metadata(path, why);
            }
            return self.others.push((path, kind));
        }
        let bytes = match self.storage.read_bounded(&path, limits.max_json_bytes) {
            Ok(bytes) => bytes,
            Err(e) if json_named => return self.failed_metadata(path, e),
            Err(_) => return self.others.push((path, kind)),
        };
        // Lists over their budgets are refused before they are parsed into memory.
        let parsed =
            metadata::check_list_budgets(&bytes, &path, limits).and_then(|()| metadata::parse_json(&bytes, &path));
        match parsed {
            Ok(v) => self.classify_json(path, &v, json_named),
            // A completion event cut short is no chunk: an orphan, never a
            // recording of its own.
            Err(e) if looks_like_event_text(&bytes) => self.orphans.push(Orphan {
                path,
                reason: format!("completion event that is not valid JSON (cut short?): {}", e.detail()),
            }),
            Err(e) if json_named => self.failed_metadata(path, e),
            Err(_) => self.others.push((path, kind)),
        }
    }

    /// Files a JSON document: a manifest of ours, chunk metadata, an event, or other.
    fn classify_json(&mut self, path: PathBuf, v: &Value, json_named: bool) {
        if is_own_manifest(v) {
            self.outputs
                .push((path.parent().map(Path::to_path_buf).unwrap_or_default(), stem(&path)));
            self.orphans.push(Orphan {
                path,
                reason: "a manifest written by recstitch: an output, not an input".into(),
            });
        } else if metadata::looks_like_metadata(v) {
            let parsed = metadata::parse_metadata(v, &path);
            let field = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
            self.metas.push(MetaFile {
                document_id: field("chunkDocumentId").unwrap_or_else(|| stem(&path)),
                call_id: field("callId"),
                path,
                parsed,
            });
        } else if metadata::looks_like_event(v) {
            match metadata::parse_events(v, &path) {
                Ok(list) => self.events.extend(list.into_iter().map(|e| (path.clone(), e))),
                Err(e) => self.orphans.push(Orphan {
                    path,
                    reason: format!("completion event that does not parse: {}", e.detail()),
                }),
            }
        } else if json_named {
            self.other_json.push(path);
        } else {
            self.others.push((path, FileKind::Json));
        }
    }

    /// A metadata file that did not parse (`why`), named after its file.
    fn failed_metadata(&mut self, path: PathBuf, why: Error) {
        self.metas.push(MetaFile {
            document_id: stem(&path),
            call_id: None,
            parsed: Err(why),
            path,
        });
    }

    /// A `.json` holding some other JSON (a `401` body, say) beside a media
    /// file of the same name is a metadata download that failed.
    fn settle_other_json(&mut self) {
        for path in std::mem::take(&mut self.other_json) {
            let name = stem(&path);
            if self.others.iter().any(|(p, _)| stem(p) == name) {
                let why = Here::new(&path, "")
                    .invalid("JSON that is not chunk metadata (an error response saved in its place?)");
                self.failed_metadata(path, why);
            } else {
                self.others.push((path, FileKind::Json));
            }
        }
    }

    /// The stitched file, chapters and picture beside a manifest of ours are
    /// outputs too: orphans, never inputs.
    fn set_outputs_aside(&mut self) {
        let (outputs, orphans) = (&self.outputs, &mut self.orphans);
        self.others.retain(|(path, _)| {
            let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
            // Beside the manifest, or in the chapters folder beside it.
            let beside = parent
                .file_name()
                .is_some_and(|n| n == crate::io::CHAPTERS_DIR || n == crate::io::CHANNELS_DIR)
                .then(|| parent.parent().map(Path::to_path_buf))
                .flatten();
            let name = stem(path);
            // A participant's channel: `<name>.ch<N>.<participantId>`.
            let key = name.split_once(".ch").map_or(name.as_str(), |(k, _)| k).to_string();
            let own = outputs.contains(&(parent, name.clone()))
                || beside.is_some_and(|b| outputs.contains(&(b.clone(), name)) || outputs.contains(&(b, key)));
            if own {
                orphans.push(Orphan {
                    path: path.clone(),
                    reason: "written by recstitch beside its manifest: an output, not an input".into(),
                });
            }
            !own
        });
    }

    /// Every file left after pairing is an orphan, with the reason.
    fn orphan_the_rest(&mut self) {
        for (path, kind) in std::mem::take(&mut self.others) {
            let reason = match kind {
                FileKind::Unreadable => format!(
                    "cannot be read: {}",
                    unreadable_reason(&self.storage, &path).unwrap_or_else(|| "unknown error".into())
                ),
                FileKind::Mp4 | FileKind::Mp3 | FileKind::Wav => format!(
                    "{} without metadata: no metadata file names it (by chunkDocumentId or file name)",
                    match kind {
                        FileKind::Mp4 => "MP4",
                        FileKind::Mp3 => "MP3",
                        _ => "WAV",
                    }
                ),
                FileKind::Json => "JSON that is neither chunk metadata nor a completion event".to_string(),
                other => format!("not a chunk, metadata or event file: {}", other.describe()),
            };
            self.orphans.push(Orphan { path, reason });
        }
    }
}

/// Pairs each metadata file with its media file, consuming those from `others`.
/// The parsed metadata, or the `metadata.invalid` finding of `path` saying why not.
fn parsed_or_finding(parsed: Result<ChunkMetadata>, path: &Path) -> (Option<ChunkMetadata>, Option<Finding>) {
    match parsed {
        Ok(md) => (Some(md), None),
        Err(e) => (
            None,
            Some(Finding::error(
                Code::MetadataInvalid,
                None,
                format!("{}: {}", path.display(), e.detail()),
            )),
        ),
    }
}

fn pair(metas: Vec<MetaFile>, others: &mut Vec<(PathBuf, FileKind)>) -> Vec<(Chunk, Option<String>, Option<Finding>)> {
    let mut by_stem: HashMap<String, Vec<usize>> = HashMap::new();
    // The service's own Blob export names a chunk `<chunk>-<token>.<documentId>.<ext>`:
    // each dot-separated part of a stem, with its folder.
    let mut by_part: HashMap<(Option<&Path>, &str), Vec<usize>> = HashMap::new();
    let stems: Vec<String> = others.iter().map(|(p, _)| stem(p)).collect();
    for (i, (p, _)) in others.iter().enumerate() {
        by_stem.entry(stems[i].clone()).or_default().push(i);
        for part in name_parts(&stems[i]) {
            by_part.entry((p.parent(), part)).or_default().push(i);
        }
    }
    let mut taken = vec![false; others.len()];
    let mut out = Vec::with_capacity(metas.len());
    for m in metas {
        let dir = m.path.parent();
        let meta_stem = stem(&m.path);
        let mut candidates: Vec<usize> = Vec::new();
        let whole = [m.document_id.as_str(), meta_stem.as_str()]
            .into_iter()
            .flat_map(|key| by_stem.get(key).into_iter().flatten());
        let parts = std::iter::once(m.document_id.as_str())
            .chain(name_parts(&meta_stem))
            .flat_map(|key| by_part.get(&(dir, key)).into_iter().flatten());
        for &i in whole.chain(parts) {
            if !taken[i] && !candidates.contains(&i) {
                candidates.push(i);
            }
        }
        let format = m.parsed.as_ref().ok().and_then(|md| md.recording.media_format());
        let ext = format.map_or("mp4", |f| f.extension());
        // Best candidate: same folder, then the whole name, then media by
        // content, then named after the metadata's format.
        let best = candidates.into_iter().min_by_key(|&i| {
            let (p, kind) = &others[i];
            (
                p.parent() != dir,
                stems[i] != m.document_id && stems[i] != meta_stem,
                !matches!(kind, FileKind::Mp4 | FileKind::Mp3 | FileKind::Wav),
                !has_extension(p, ext),
                p.clone(),
            )
        });
        let (media_path, media_kind) = match best {
            Some(i) => {
                taken[i] = true;
                (Some(others[i].0.clone()), Some(others[i].1))
            }
            None => (None, None),
        };
        let (metadata, finding) = parsed_or_finding(m.parsed, &m.path);
        let call_id = metadata.as_ref().map(|md| md.call_id.clone()).or(m.call_id);
        out.push((
            Chunk {
                document_id: m.document_id,
                metadata_path: m.path,
                metadata,
                media_path,
                media_kind,
                event_entry: None,
            },
            call_id,
            finding,
        ));
    }
    let mut i = 0;
    others.retain(|_| {
        i += 1;
        !taken[i - 1]
    });
    out
}

/// A chunk with the finding its metadata file gave while scanning.
type Item = (Chunk, Option<Finding>);

/// Groups chunks into recordings: by call, then by the event that lists
/// them, else by index sequences that restart at 0.
fn group(
    chunks: Vec<(Chunk, Option<String>, Option<Finding>)>,
    events: Vec<(PathBuf, CompletionEvent)>,
    scan: &ScanOptions,
) -> Result<Vec<Recording>> {
    let sorted = sort_by_event(chunks, &events);
    let mut recordings = Vec::new();
    let (mut by_event, mut extras) = (sorted.by_event, sorted.extras);
    for (i, (_, event)) in events.into_iter().enumerate() {
        let chunks = by_event.remove(&i).unwrap_or_default();
        let mut rec = event_recording(i, event, chunks, scan)?;
        rec.findings.extend(extras.remove(&i).unwrap_or_default());
        recordings.push(rec);
    }
    for (call_id, chunks) in sorted.by_call {
        recordings.extend(call_sessions(call_id, chunks, scan)?);
    }
    recordings.sort_by(|a, b| (&a.call_id, &a.key).cmp(&(&b.call_id, &b.key)));
    Ok(recordings)
}

/// Chunks sorted by who claims them.
struct ByEvent {
    /// The chunks each event (by position) lists.
    by_event: BTreeMap<usize, Vec<Item>>,
    /// The chunks no event lists, by call.
    by_call: BTreeMap<String, Vec<Item>>,
    /// `recording.extra_chunk` findings for the chunks an event's time span
    /// covers but the event does not list (left out).
    extras: BTreeMap<usize, Vec<Finding>>,
}

fn sort_by_event(
    chunks: Vec<(Chunk, Option<String>, Option<Finding>)>,
    events: &[(PathBuf, CompletionEvent)],
) -> ByEvent {
    // Which event (by position) lists which document id.
    let mut listed: HashMap<String, usize> = HashMap::new();
    for (i, (_, e)) in events.iter().enumerate() {
        for c in &e.chunks {
            listed.entry(c.document_id.clone()).or_insert(i);
        }
    }
    let mut sorted = ByEvent {
        by_event: BTreeMap::new(),
        by_call: BTreeMap::new(),
        extras: BTreeMap::new(),
    };
    for (mut chunk, call_id, finding) in chunks {
        if let Some(&e) = listed.get(&chunk.document_id) {
            chunk.event_entry = events[e]
                .1
                .chunks
                .iter()
                .find(|c| c.document_id == chunk.document_id)
                .cloned();
            sorted.by_event.entry(e).or_default().push((chunk, finding));
        } else if let Some(e) = covering_event(events, &chunk, call_id.as_deref()) {
            // The event is the authority on a recording's chunks: one it does
            // not list is reported, not stitched.
            sorted.extras.entry(e).or_default().push(Finding::warning(
                Code::RecordingExtraChunk,
                chunk.index(),
                format!(
                    "chunk {} ({}) falls within this recording's time span but its completion event does not list it; it is left out",
                    chunk.document_id,
                    chunk.metadata_path.display()
                ),
            ));
        } else {
            sorted
                .by_call
                .entry(call_id.unwrap_or_else(|| "unknown".into()))
                .or_default()
                .push((chunk, finding));
        }
    }
    sorted
}

/// The recording of event number `i`: its call and recording id from the
/// event (else from the chunks, else made up), its chunks as listed.
fn event_recording(i: usize, event: CompletionEvent, chunks: Vec<Item>, scan: &ScanOptions) -> Result<Recording> {
    let call_id = event
        .call_id
        .clone()
        .or_else(|| {
            chunks
                .iter()
                .find_map(|(c, _)| c.metadata.as_ref().map(|m| m.call_id.clone()))
        })
        .unwrap_or_else(|| "unknown".into());
    let key = event.recording_id.clone().unwrap_or_else(|| {
        let first = event
            .chunks
            .iter()
            .min_by_key(|c| c.index)
            .map(|c| c.document_id.clone());
        first.unwrap_or_else(|| format!("event-{i}"))
    });
    make_recording(call_id, Some(key), chunks, Some(event), scan)
}

/// The recordings of one call that no event describes: sessions in start
/// order, a new one wherever the index goes back (a stop and a new start).
/// Chunks whose metadata did not parse stay alone: nothing says where they belong.
fn call_sessions(call_id: String, chunks: Vec<Item>, scan: &ScanOptions) -> Result<Vec<Recording>> {
    let mut recordings = Vec::new();
    let (mut good, bad): (Vec<_>, Vec<_>) = chunks.into_iter().partition(|(c, _)| c.metadata.is_some());
    for b in bad {
        let key = b.0.document_id.clone();
        recordings.push(make_recording(call_id.clone(), Some(key), vec![b], None, scan)?);
    }
    good.sort_by(|(a, _), (b, _)| {
        let (ma, mb) = (a.metadata.as_ref(), b.metadata.as_ref());
        (ma.map(|m| m.start), a.index(), &a.document_id, &a.metadata_path).cmp(&(
            mb.map(|m| m.start),
            b.index(),
            &b.document_id,
            &b.metadata_path,
        ))
    });
    let mut session: Vec<Item> = Vec::new();
    for item in good {
        let restart = session.last().is_some_and(|(last, _)| {
            let (li, i) = (last.index(), item.0.index());
            i < li || (i == li && last.document_id != item.0.document_id)
        });
        if restart {
            let chunks = std::mem::take(&mut session);
            recordings.push(make_recording(call_id.clone(), None, chunks, None, scan)?);
        }
        session.push(item);
    }
    if !session.is_empty() {
        recordings.push(make_recording(call_id, None, session, None, scan)?);
    }
    Ok(recordings)
}

/// The event of the same call whose recording's wall-clock span contains
/// the chunk's start, when there is one.
fn covering_event(events: &[(PathBuf, CompletionEvent)], chunk: &Chunk, call_id: Option<&str>) -> Option<usize> {
    let m = chunk.metadata.as_ref()?;
    events.iter().position(|(_, e)| {
        let (Some(start), Some(ms)) = (e.recording_start, e.recording_duration_ms) else {
            return false;
        };
        e.call_id.as_deref() == call_id && start <= m.start && m.start < start.plus_ms(ms)
    })
}

fn make_recording(
    call_id: String,
    key: Option<String>,
    mut items: Vec<(Chunk, Option<Finding>)>,
    event: Option<CompletionEvent>,
    scan: &ScanOptions,
) -> Result<Recording> {
    if let Some((first, _)) = items.first() {
        let here = Here::new(&first.metadata_path, format!("recording of call {call_id}"));
        scan.limits
            .check_count(Limit::ChunksPerRecording, items.len(), &here, "number of chunks")?;
    }
    items.sort_by(|(a, _), (b, _)| {
        (a.index(), &a.document_id, &a.metadata_path).cmp(&(b.index(), &b.document_id, &b.metadata_path))
    });
    let key = key.unwrap_or_else(|| items.first().map(|(c, _)| c.document_id.clone()).unwrap_or_default());
    let mut findings = Vec::new();
    let mut chunks: Vec<Chunk> = Vec::with_capacity(items.len());
    for (chunk, finding) in items {
        let chunk_finding = finding.map(|mut f| {
            f.chunk_index = chunk.index();
            f
        });
        findings.extend(chunk_finding);
        if let Some(prev) = chunks.iter().find(|c| c.document_id == chunk.document_id) {
            let same = same_chunk(&scan.storage, prev, &chunk);
            let where_ = format!("{} and {}", prev.metadata_path.display(), chunk.metadata_path.display());
            match same {
                Ok(true) => {
                    findings.push(Finding::warning(
                        Code::ChunkDuplicate,
                        chunk.index(),
                        format!(
                            "chunk {} appears twice with identical bytes ({where_}); the copy is ignored",
                            chunk.document_id
                        ),
                    ));
                    continue;
                }
                Ok(false) => findings.push(Finding::error(
                    Code::ChunkDuplicate,
                    chunk.index(),
                    format!(
                        "chunk {} appears twice with different content ({where_}); keep the right one",
                        chunk.document_id
                    ),
                )),
                Err(e) => findings.push(Finding::error(
                    Code::ChunkDuplicate,
                    chunk.index(),
                    format!(
                        "chunk {} appears twice ({where_}) and could not be compared: {e}",
                        chunk.document_id
                    ),
                )),
            }
        }
        chunks.push(chunk);
    }
    Ok(Recording {
        call_id,
        key,
        chunks,
        event,
        findings,
        root: PathBuf::new(),
        storage: scan.storage.clone(),
    })
}

/// Whether two copies of a chunk have the same metadata and media bytes.
fn same_chunk(storage: &Storage, a: &Chunk, b: &Chunk) -> Result<bool> {
    if a.metadata != b.metadata {
        return Ok(false);
    }
    match (&a.media_path, &b.media_path) {
        (Some(pa), Some(pb)) => storage.files_equal(pa, pb),
        (None, None) => Ok(true),
        _ => Ok(false),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::validate::tests::Scenario;

    const GOOD: &str = "fixtures/cases/good/3c57992b-07bf-4387-a8bc-a13561e8650a";
    const DOC0: &str = "0-eus-d11-293c5f93ea87298458e47ef52dda3bb9";
    const DOC1: &str = "0-eus-d11-93febf7d8405595011fab94b54be8806";

    fn good(name: &str) -> Vec<u8> {
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(GOOD).join(name)).unwrap()
    }

    /// Chunk metadata of the good recording's chunk 0 with another document
    /// id, index and start time.
    fn metadata(doc: &str, call: &str, index: u32, start: &str) -> Vec<u8> {
        let mut v: Value = serde_json::from_slice(&good(&format!("{DOC0}.json"))).unwrap();
        v["chunkDocumentId"] = doc.into();
        v["callId"] = call.into();
        v["chunkIndex"] = index.into();
        v["chunkStartTime"] = start.into();
        serde_json::to_vec(&v).unwrap()
    }

    /// Scans a fresh folder holding `files` (relative path, bytes).
    fn scan_of(files: &[(&str, Vec<u8>)]) -> Archive {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("recstitch-archive-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (name, bytes) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        let archive = Archive::scan(&dir, &ScanOptions::default()).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        archive
    }

    fn findings(archive: &Archive) -> Vec<Finding> {
        archive.recordings.iter().flat_map(|r| r.findings.clone()).collect()
    }

    /// One scenario per finding the scan itself makes.
    pub(crate) fn scenarios() -> Vec<Scenario> {
        let media = good(&format!("{DOC0}.mp4"));
        let json = good(&format!("{DOC0}.json"));
        let mut other_media = media.clone();
        *other_media.last_mut().unwrap() ^= 1;
        vec![
            (
                "an error page saved as metadata",
                Code::MetadataInvalid,
                findings(&scan_of(&[
                    (&format!("{DOC0}.json"), b"<html>401</html>".to_vec()),
                    (&format!("{DOC0}.mp4"), media.clone()),
                ])),
            ),
            (
                "one chunk twice",
                Code::ChunkDuplicate,
                findings(&scan_of(&[
                    (&format!("a/{DOC0}.json"), json.clone()),
                    (&format!("a/{DOC0}.mp4"), media.clone()),
                    (&format!("b/{DOC0}.json"), json.clone()),
                    (&format!("b/{DOC0}.mp4"), other_media),
                ])),
            ),
            ("a chunk the event does not list", Code::RecordingExtraChunk, {
                let mut event: Value = serde_json::from_slice(&good("event.json")).unwrap();
                let listed = event[0]["data"]["recordingStorageInfo"]["recordingChunks"]
                    .as_array_mut()
                    .unwrap();
                listed.retain(|c| c["documentId"] != DOC1);
                findings(&scan_of(&[
                    ("event.json", serde_json::to_vec(&event).unwrap()),
                    (&format!("{DOC0}.json"), json.clone()),
                    (&format!("{DOC1}.json"), good(&format!("{DOC1}.json"))),
                ]))
            }),
        ]
    }

    #[test]
    fn identical_copies_are_one_chunk_and_differing_copies_an_error() {
        let (json, media) = (good(&format!("{DOC0}.json")), good(&format!("{DOC0}.mp4")));
        let archive = scan_of(&[
            (&format!("a/{DOC0}.json"), json.clone()),
            (&format!("a/{DOC0}.mp4"), media.clone()),
            (&format!("b/{DOC0}.json"), json),
            (&format!("b/{DOC0}.mp4"), media),
        ]);
        let rec = &archive.recordings[0];
        assert_eq!(rec.chunks.len(), 1);
        assert_eq!(rec.findings.len(), 1);
        assert_eq!(rec.findings[0].severity, crate::Severity::Warning);
        assert!(rec.findings[0].message.contains("appears twice with identical bytes"));
    }

    #[test]
    fn indices_that_restart_at_zero_begin_a_new_recording_of_the_call() {
        let call = "c0000000-0000-4000-8000-000000000001";
        let archive = scan_of(&[
            ("x0.json", metadata("x0", call, 0, "2024-05-14T09:30:00Z")),
            ("x1.json", metadata("x1", call, 1, "2024-05-14T09:30:03Z")),
            ("y0.json", metadata("y0", call, 0, "2024-05-14T10:00:00Z")),
            ("z0.json", metadata("z0", "another-call", 0, "2024-05-14T08:00:00Z")),
        ]);
        let shape: Vec<(&str, &str, Vec<&str>)> = archive
            .recordings
            .iter()
            .map(|r| {
                let docs = r.chunks.iter().map(|c| c.document_id.as_str()).collect();
                (r.call_id.as_str(), r.key.as_str(), docs)
            })
            .collect();
        assert_eq!(
            shape,
            [
                ("another-call", "z0", vec!["z0"]),
                (call, "x0", vec!["x0", "x1"]),
                (call, "y0", vec!["y0"]),
            ]
        );
    }

    #[test]
    fn output_names_are_the_start_in_utc_and_a_hash_of_the_key_and_sort_by_start() {
        let call = "c0000000-0000-4000-8000-000000000001";
        let files = [
            ("x0.json", metadata("x0", call, 0, "2024-05-14T11:30:00.5+02:00")),
            ("x1.json", metadata("x1", call, 1, "2024-05-14T09:30:03Z")),
            ("y0.json", metadata("y0", call, 0, "2024-05-14T10:00:00Z")),
            ("w0.json", metadata("w0", call, 0, "2024-05-13T23:59:59Z")),
        ];
        let names = |a: &Archive| a.recordings.iter().map(Recording::output_name).collect::<Vec<_>>();
        let archive = scan_of(&files);
        let mut by_name = names(&archive);
        // The same inputs give the same names, run after run.
        assert_eq!(by_name, names(&scan_of(&files)));
        assert_eq!(
            by_name[0],
            output_name(metadata::WallClock::parse("2024-05-13T23:59:59Z"), "w0")
        );
        let hash = crate::io::hex(&<sha2::Sha256 as sha2::Digest>::digest(b"x0")[..4]);
        let x = &archive.recordings.iter().find(|r| r.key == "x0").unwrap();
        assert_eq!(x.output_name(), format!("20240514T093000Z-{hash}"));
        // Sorted by name is sorted by start time.
        by_name.sort();
        let starts: Vec<_> = by_name
            .iter()
            .map(|n| {
                archive
                    .recordings
                    .iter()
                    .find(|r| &r.output_name() == n)
                    .unwrap()
                    .start()
            })
            .collect();
        assert!(starts.windows(2).all(|w| w[0] <= w[1]), "{by_name:?}");
        assert_eq!(output_name(None, "k").len(), "unknown-".len() + 8);
        let paths = x.output_paths(Path::new("out"));
        assert_eq!(
            paths.media,
            Path::new("out").join(call).join(format!("{}.mp4", x.output_name()))
        );
    }

    #[test]
    fn a_completion_event_cut_short_is_an_orphan_not_a_recording() {
        let event = good("event.json");
        let archive = scan_of(&[
            (&format!("{DOC0}.json"), good(&format!("{DOC0}.json"))),
            (&format!("{DOC0}.mp4"), good(&format!("{DOC0}.mp4"))),
            ("event.json", event[..event.len() / 2].to_vec()),
        ]);
        assert_eq!(archive.recordings.len(), 1, "{:?}", archive.recordings);
        assert_eq!(archive.recordings[0].key, DOC0);
        assert_eq!(archive.orphans.len(), 1);
        let reason = &archive.orphans[0].reason;
        assert!(
            reason.starts_with("completion event that is not valid JSON (cut short?): not valid JSON: EOF"),
            "{reason}"
        );
    }

    #[test]
    fn the_event_groups_its_chunks_under_its_recording_id() {
        let archive = Archive::scan(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cases/good"),
            &ScanOptions::default(),
        )
        .unwrap();
        assert_eq!(archive.recordings.len(), 1);
        let rec = &archive.recordings[0];
        assert!(rec.key.starts_with("eyJQbGF0Zm9ybUVuZHBvaW50SWQi"), "{}", rec.key);
        let indices: Vec<Option<u32>> = rec.chunks.iter().map(Chunk::index).collect();
        assert_eq!(indices, [Some(0), Some(1), Some(2)]);
        assert!(rec.chunks.iter().all(|c| c.event_entry.is_some()));
    }

    #[test]
    fn too_many_chunks_is_a_limit_error_that_names_the_limit() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/cases/good");
        let mut options = ScanOptions::default();
        options.limits.max_chunks_per_recording = 2;
        let e = Archive::scan(&root, &options).unwrap_err();
        assert_eq!(e.category(), "limit");
        assert!(
            e.to_string()
                .contains("number of chunks is 3, over the limit 2 (Limits::max_chunks_per_recording)"),
            "{e}"
        );
        options.limits = Limits {
            max_folder_depth: 0,
            ..Limits::default()
        };
        let e = Archive::scan(&root, &options).unwrap_err();
        assert!(e.to_string().contains("Limits::max_folder_depth"), "{e}");
    }

    #[test]
    fn sniffing_by_content() {
        assert_eq!(FileKind::sniff(b""), FileKind::Empty);
        assert_eq!(FileKind::sniff(b"\0\0\0\x18ftypmp42"), FileKind::Mp4);
        assert_eq!(FileKind::sniff(b"\n <!DOCTYPE html>"), FileKind::Html);
        assert_eq!(FileKind::sniff(b"\xef\xbb\xbf{\"error\":401}"), FileKind::Json);
        assert_eq!(FileKind::sniff(b"\0\0\0\x08moov"), FileKind::Other);
        assert_eq!(FileKind::sniff(b"\x7fELF"), FileKind::Other);
    }

    #[test]
    fn other_media_formats_are_named() {
        let cases: &[(&[u8], FileKind, &str)] = &[
            (b"ID3\x04\0", FileKind::Mp3, "an MP3 file"),
            (b"\xff\xfb\x90\x64", FileKind::Mp3, "an MP3 file"),
            (b"\xff\xf1\x50\x80", FileKind::Adts, "an ADTS AAC file (raw .aac)"),
            (b"RIFF\x24\0\0\0WAVEfmt ", FileKind::Wav, "a WAV file"),
            (b"OggS\0\x02", FileKind::Ogg, "an Ogg file"),
            (b"fLaC\0\0\0\x22", FileKind::Flac, "a FLAC file"),
            (b"\x1a\x45\xdf\xa3\x9f", FileKind::Matroska, "a Matroska/WebM file"),
        ];
        for &(head, kind, name) in cases {
            assert_eq!(FileKind::sniff(head), kind, "{head:?}");
            assert_eq!(kind.media_format(), Some(name));
        }
        assert_eq!(FileKind::sniff(b"RIFF\x24\0\0\0AVI "), FileKind::Other);
        assert_eq!(FileKind::Mp4.media_format(), None);
        assert_eq!(FileKind::Html.media_format(), None);
    }

    #[test]
    fn leading_whitespace_does_not_decide_the_file_kind() {
        let dir = std::env::temp_dir().join(format!("recstitch-sniff-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, pad, body, kind) in [
            ("json.json", 100, "{\"callId\":\"x\"}", FileKind::Json),
            ("bom.json", 5000, "[1]", FileKind::Json),
            ("page.json", 70, "<html></html>", FileKind::Html),
            ("blank.json", 80, "", FileKind::Other),
        ] {
            let bom = if name == "bom.json" { "\u{feff}" } else { "" };
            let text = format!("{bom}{}{body}", " \n\t\r".repeat(pad / 4 + 1));
            std::fs::write(dir.join(name), text).unwrap();
            assert_eq!(sniff_file(&Storage::local(), &dir.join(name)).unwrap(), kind, "{name}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
