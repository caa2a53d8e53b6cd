//! The payload pass: every input byte is read once.
//!
//! A reader thread reads each input from its first byte to its last in
//! blocks and computes the input's SHA-256 on the way; the writing thread
//! takes the same blocks, puts the output's bytes together from them in
//! output order and computes the output's SHA-256; an I/O thread writes
//! them to the file. The two hashes, the bulk of the work, so run on two
//! cores side by side, neither waits for the disk, and the output needs no
//! second read.
//!
//! The output lays a chunk's samples in its own interleave, which need not
//! be the input's: the writer keeps a window of recent blocks, so samples a
//! little out of input order are served from memory. A piece that falls
//! behind the window (or an input already passed) is read again with a
//! positional read; that costs time, never correctness. Memory is bounded
//! by the block pool, whatever the length of the recording.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_channel::{bounded, Receiver, Sender};
use sha2::{Digest, Sha256};

use super::write::Source;
use crate::error::Error;
use crate::formats::mp4::SILENCE;
use crate::io::{hex, Cancel};
use crate::storage::Input;

/// Size of one read block.
const BLOCK: usize = 128 << 10;
/// Blocks the writer keeps for samples a little behind the read position.
const WINDOW_BLOCKS: usize = 8;
/// Blocks in flight from the reader to the writer.
const QUEUE_BLOCKS: usize = 4;
/// Blocks there are at most: in the window, in flight, and being read.
const POOL_BLOCKS: usize = WINDOW_BLOCKS + QUEUE_BLOCKS + 1;
/// Output buffer: writes go out in blocks of this size (a multiple of [`ALIGN`]).
const OUT_BUFFER: usize = 512 << 10;

/// A stretch of the output payload: `len` bytes of source `source` from
/// `offset`, or (`source` [`SILENCE`]) a silent frame of `len` bytes. 16
/// bytes: a 20-hour recording has a few hundred thousand pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Piece {
    pub source: u32,
    pub len: u32,
    pub offset: u64,
}

/// Everything before the payload (`ftyp`, `moov`, `mdat` header, chapter
/// samples), encoded as it is written: a long recording's `moov` is never
/// held whole.
pub(crate) trait Head: Sync {
    /// Hands the bytes to `put` in order, until it says stop (`false`);
    /// `Err` when a part of the head cannot be encoded.
    fn write(&self, put: &mut dyn FnMut(&[u8]) -> bool) -> Result<(), Error>;
}

/// A head held as bytes (in tests).
#[cfg(test)]
impl<const N: usize> Head for [u8; N] {
    fn write(&self, put: &mut dyn FnMut(&[u8]) -> bool) -> Result<(), Error> {
        put(self);
        Ok(())
    }
}

/// The payload in output order, in stretches whose pieces are made when
/// the pass comes to them: where the inputs interleave their tracks sample
/// by sample, a 20-hour recording has a piece per sample, millions, which
/// are never all held. A stretch's pieces (silence aside) come from one
/// source; the blocks a later stretch needs are kept with that in mind.
pub(crate) trait Payload: Sync {
    /// How many stretches there are.
    fn stretches(&self) -> usize;
    /// Appends the pieces of stretch `i` to `out`.
    fn pieces(&self, i: usize, out: &mut Vec<Piece>);
}

/// Pieces held as such (in tests): each one a stretch.
#[cfg(test)]
impl Payload for Vec<Piece> {
    fn stretches(&self) -> usize {
        self.len()
    }

    fn pieces(&self, i: usize, out: &mut Vec<Piece>) {
        out.extend(self.get(i));
    }
}

impl Piece {
    /// The bytes of a source, when the piece is one.
    fn source_bytes(&self) -> Option<(usize, u64, u64)> {
        (self.source != SILENCE).then_some((self.source as usize, self.offset, u64::from(self.len)))
    }
}

/// Why the pass stopped.
#[derive(Debug)]
pub(crate) enum PassError {
    /// The cancellation token was cancelled.
    Cancelled,
    /// An I/O error, on the source of that index (`Some`) or the output (`None`).
    Io(Option<usize>, std::io::Error),
    /// The head could not be encoded ([`Head::write`]).
    Head(Error),
}

/// What the pass produced.
#[derive(Debug)]
pub(crate) struct Passed {
    /// Bytes written: the head and the payload.
    pub size: u64,
    /// SHA-256 (hex) of the output.
    pub sha256: String,
    /// SHA-256 (hex) and size of each source, in source order.
    pub inputs: Vec<(String, u64)>,
    /// Bytes read a second time because they fell behind the window.
    pub reread: u64,
}

/// What the pass works from.
pub(crate) struct Pass<'a> {
    /// Everything before the payload.
    pub head: &'a dyn Head,
    /// The payload in output order.
    pub pieces: &'a dyn Payload,
    pub sources: &'a [Source],
    /// Bytes of generated silent frames.
    pub silence: &'a [u8],
    pub cancel: &'a Cancel,
}

/// A block of one source's bytes.
struct Block {
    /// Position of its source in the reading order.
    rank: usize,
    offset: u64,
    data: Vec<u8>,
}

impl Block {
    fn end(&self) -> u64 {
        self.offset + self.data.len() as u64
    }
}

/// Writes the head and the payload to `out`, reading every source once.
/// `progress` follows the bytes written.
pub(crate) fn run(pass: &Pass, out: &File, progress: &AtomicU64) -> Result<Passed, PassError> {
    let Survey {
        order,
        need_end,
        keep_after,
    } = survey(pass.pieces, pass.sources.len());
    let mut rank_of = vec![0; pass.sources.len()];
    for (rank, &s) in order.iter().enumerate() {
        rank_of[s] = rank;
    }
    let (blocks_tx, blocks_rx) = bounded::<Block>(QUEUE_BLOCKS);
    let (free_tx, free_rx) = bounded::<Vec<u8>>(POOL_BLOCKS);
    let abort = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let reader = Reader {
            pass,
            order: &order,
            need_end: &need_end,
            blocks: blocks_tx,
            free: free_rx,
            abort: &abort,
        };
        let reading = scope.spawn(move || reader.run());
        let mut writer = Writer {
            pass,
            rank_of: &rank_of,
            keep_after: &keep_after,
            blocks: blocks_rx,
            free: free_tx,
            window: VecDeque::new(),
            reread: 0,
        };
        let (to_io, staged) = bounded::<Staged>(OUT_QUEUE);
        let (spare, spares) = bounded::<Staged>(OUT_QUEUE + 1);
        let writing = scope.spawn(move || write_out(out, staged, spare, progress));
        let hashed = writer.run(Sink::new(to_io, spares));
        if hashed.is_err() {
            abort.store(true, Ordering::Relaxed);
        }
        // The I/O thread ends once the sink (and with it the channel) is gone.
        let written = match writing.join() {
            Ok(Ok(())) => hashed,
            Ok(Err(e)) => Err(PassError::Io(None, e)),
            Err(_) => Err(io_stopped()),
        };
        if written.is_err() {
            abort.store(true, Ordering::Relaxed);
        }
        let reread = writer.reread;
        // Dropping the writer closes its channels: a reader waiting on them wakes.
        drop(writer);
        let inputs = reading
            .join()
            .unwrap_or_else(|_| Err(PassError::Io(None, std::io::Error::other("the reading thread stopped"))));
        let (size, sha256) = written?;
        Ok(Passed {
            size,
            sha256,
            inputs: inputs?,
            reread,
        })
    })
}

/// What the pass needs to know of the whole payload before it starts.
struct Survey {
    /// Sources in the order the output first needs them; those it never
    /// needs (their hash is still wanted) last.
    order: Vec<usize>,
    /// For each source, the end of the last byte the output takes from it.
    need_end: Vec<u64>,
    /// For each stretch, the lowest offset of its source that a later
    /// stretch starts a piece at (`u64::MAX` when none does).
    keep_after: Vec<u64>,
}

/// One walk over the payload from its end (a stretch's pieces at a time).
fn survey(payload: &dyn Payload, sources: usize) -> Survey {
    let stretches = payload.stretches();
    let mut first_use = vec![(usize::MAX, usize::MAX); sources];
    let mut need_end = vec![0u64; sources];
    let mut low = vec![u64::MAX; sources];
    let mut keep_after = vec![u64::MAX; stretches];
    let mut pieces = Vec::new();
    for i in (0..stretches).rev() {
        pieces.clear();
        payload.pieces(i, &mut pieces);
        if let Some((source, ..)) = pieces.iter().find_map(Piece::source_bytes) {
            keep_after[i] = low[source];
        }
        for (j, p) in pieces.iter().enumerate().rev() {
            if let Some((source, offset, len)) = p.source_bytes() {
                first_use[source] = (i, j);
                need_end[source] = need_end[source].max(offset.saturating_add(len));
                low[source] = low[source].min(offset);
            }
        }
    }
    let mut order: Vec<usize> = (0..sources).collect();
    // Stable: sources never used keep their order, after the others.
    order.sort_by_key(|&s| first_use[s]);
    Survey {
        order,
        need_end,
        keep_after,
    }
}

/// Reads every source once, start to end, hashing it; sends the blocks the
/// output needs to the writer.
struct Reader<'a> {
    pass: &'a Pass<'a>,
    order: &'a [usize],
    need_end: &'a [u64],
    blocks: Sender<Block>,
    free: Receiver<Vec<u8>>,
    abort: &'a AtomicBool,
}

impl Reader<'_> {
    fn run(self) -> Result<Vec<(String, u64)>, PassError> {
        let mut hashes = vec![(String::new(), 0); self.pass.sources.len()];
        let mut allocated = 0;
        // Blocks the writer does not need (past what the output takes, or
        // once the writer is done) are hashed in a buffer of our own.
        let mut own = Vec::new();
        let mut writer_gone = false;
        for (rank, &s) in self.order.iter().enumerate() {
            let file = &self.pass.sources[s].file;
            // A hint for a larger readahead; without it reading works the same.
            file.advise_sequential();
            let mut h = Sha256::new();
            let mut offset = 0u64;
            loop {
                if self.pass.cancel.is_cancelled() {
                    return Err(PassError::Cancelled);
                }
                if self.abort.load(Ordering::Relaxed) {
                    return Ok(hashes);
                }
                let mut buf = None;
                if offset < self.need_end[s] && !writer_gone {
                    buf = match self.free.try_recv() {
                        Ok(b) => Some(b),
                        Err(_) if allocated < POOL_BLOCKS => {
                            allocated += 1;
                            Some(Vec::with_capacity(BLOCK))
                        }
                        Err(_) => self.free.recv().ok(),
                    };
                    writer_gone = buf.is_none();
                }
                let send = buf.is_some();
                let mut buf = buf.unwrap_or_else(|| std::mem::take(&mut own));
                buf.resize(BLOCK, 0);
                let n = fill(file, &mut buf, offset).map_err(|e| PassError::Io(Some(s), e))?;
                buf.truncate(n);
                h.update(&buf);
                let block = Block {
                    rank,
                    offset,
                    data: buf,
                };
                offset += n as u64;
                if !send {
                    own = block.data;
                } else if let Err(back) = self.blocks.send(block) {
                    // The writer is done (or failed, and says so): keep hashing.
                    writer_gone = true;
                    own = back.into_inner().data;
                }
                if n < BLOCK {
                    break;
                }
            }
            hashes[s] = (hex(&h.finalize()), offset);
        }
        Ok(hashes)
    }
}

/// Reads up to `buf.len()` bytes at `offset`, fewer only at the end of the file.
fn fill(file: &Input, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Writes the output in order from the reader's blocks, hashing it.
struct Writer<'a> {
    pass: &'a Pass<'a>,
    rank_of: &'a [usize],
    keep_after: &'a [u64],
    blocks: Receiver<Block>,
    free: Sender<Vec<u8>>,
    /// Recent blocks, in reading order.
    window: VecDeque<Block>,
    reread: u64,
}

impl Writer<'_> {
    /// Returns the bytes written and the output's SHA-256.
    fn run(&mut self, mut sink: Sink) -> Result<(u64, String), PassError> {
        let mut failed = None;
        let encoded = self.pass.head.write(&mut |b| match sink.put(b) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        encoded.map_err(PassError::Head)?;
        let mut pieces = Vec::new();
        let mut keep = Vec::new();
        for (i, &after) in self.keep_after.iter().enumerate() {
            if self.pass.cancel.is_cancelled() {
                return Err(PassError::Cancelled);
            }
            pieces.clear();
            self.pass.pieces.pieces(i, &mut pieces);
            keep_from(&pieces, after, &mut keep);
            for (p, &keep) in pieces.iter().zip(&keep) {
                match p.source_bytes() {
                    None => sink.put(&self.pass.silence[..p.len as usize])?,
                    Some((source, offset, len)) => self.piece(&mut sink, source, offset, len, keep)?,
                }
            }
        }
        sink.finish()
    }

    /// Writes `len` bytes of `source` at `offset`, block by block as they
    /// come. Blocks that end before `keep_later` (where the later pieces of
    /// this source start) and before the bytes still to write are let go.
    fn piece(
        &mut self,
        sink: &mut Sink,
        source: usize,
        offset: u64,
        len: u64,
        keep_later: u64,
    ) -> Result<(), PassError> {
        let rank = self.rank_of[source];
        let end = offset + len;
        let mut at = offset;
        while at < end {
            let keep = keep_later.min(at);
            self.release(|b| b.rank < rank || (b.rank == rank && b.end() <= keep));
            if let Some(b) = self
                .window
                .iter()
                .find(|b| b.rank == rank && b.offset <= at && at < b.end())
            {
                let to = end.min(b.end());
                sink.put(&b.data[(at - b.offset) as usize..(to - b.offset) as usize])?;
                at = to;
                continue;
            }
            // Behind the window, or a source the reader has passed; or the
            // source's last block came and ends before `at` (a short file,
            // which the positional read reports).
            let passed = self
                .window
                .iter()
                .any(|b| b.rank > rank || (b.rank == rank && b.offset > at));
            let ended = self
                .window
                .back()
                .is_some_and(|b| b.rank == rank && b.data.len() < BLOCK);
            if passed || ended {
                return self.reread(sink, source, (offset, len), at);
            }
            match self.blocks.recv() {
                Ok(b) => {
                    if self.window.len() >= WINDOW_BLOCKS {
                        self.release_oldest();
                    }
                    self.window.push_back(b);
                }
                // The reader stopped (cancelled, or failed on this source):
                // the positional read says what is wrong.
                Err(_) => return self.reread(sink, source, (offset, len), at),
            }
        }
        Ok(())
    }

    fn release(&mut self, done: impl Fn(&Block) -> bool) {
        while self.window.front().is_some_and(&done) {
            self.release_oldest();
        }
    }

    fn release_oldest(&mut self) {
        if let Some(b) = self.window.pop_front() {
            // A full pool or a closed channel: the buffer is simply freed.
            let _ = self.free.try_send(b.data);
        }
    }

    /// Reads the rest of a piece, from `at`, again with positional reads.
    fn reread(&mut self, sink: &mut Sink, source: usize, piece: (u64, u64), at: u64) -> Result<(), PassError> {
        if self.pass.cancel.is_cancelled() {
            return Err(PassError::Cancelled);
        }
        let (offset, len) = piece;
        let end = offset + len;
        let file = &self.pass.sources[source].file;
        let mut buf = vec![0u8; BLOCK.min(usize::try_from(end - at).unwrap_or(BLOCK))];
        let mut at = at;
        while at < end {
            let n = buf.len().min(usize::try_from(end - at).unwrap_or(usize::MAX));
            let got = fill(file, &mut buf[..n], at).map_err(|e| PassError::Io(Some(source), e))?;
            if got < n {
                let into = at + got as u64 - offset;
                let short = std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the file ended {into} bytes into a {len}-byte read at {offset}"),
                );
                return Err(PassError::Io(Some(source), short));
            }
            sink.put(&buf[..n])?;
            self.reread += n as u64;
            at += n as u64;
        }
        Ok(())
    }
}

/// For each piece of a stretch, the lowest source offset that a later
/// piece of the same source starts at (`u64::MAX` when none does), given
/// `after`, the lowest of the later stretches (see [`Survey::keep_after`]).
fn keep_from(pieces: &[Piece], after: u64, keep: &mut Vec<u64>) {
    keep.clear();
    keep.resize(pieces.len(), u64::MAX);
    let Some((ours, ..)) = pieces.iter().find_map(Piece::source_bytes) else {
        return;
    };
    let mut low = after;
    for (i, p) in pieces.iter().enumerate().rev() {
        if let Some((source, offset, _)) = p.source_bytes() {
            // A second source in one stretch is not expected: its blocks
            // are let go early, which costs a read, never correctness.
            if source == ours {
                keep[i] = low;
                low = low.min(offset);
            }
        }
    }
}

/// A buffer of output bytes on its way to the file: `len` bytes from
/// `start`, where the aligned part of `buf` begins.
struct Staged {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl Staged {
    fn new() -> Self {
        let buf = vec![0u8; OUT_BUFFER + ALIGN];
        let start = buf.as_ptr().align_offset(ALIGN).min(ALIGN);
        Staged { buf, start, len: 0 }
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
}

/// Direct I/O alignment (of memory, file offsets and lengths).
const ALIGN: usize = 4096;
/// Output buffers on their way to the file at once.
const OUT_QUEUE: usize = 2;

/// The output's front: hashes the bytes and gathers them into buffers that
/// [`write_out`] writes on its own thread, so that the hashing never waits
/// for the disk.
struct Sink {
    stage: Staged,
    to_io: Sender<Staged>,
    spare: Receiver<Staged>,
    buffers: usize,
    hash: Sha256,
    written: u64,
}

/// The I/O thread stopped (on an error, which it returns).
fn io_stopped() -> PassError {
    PassError::Io(None, std::io::Error::other("the output writer stopped"))
}

impl Sink {
    fn new(to_io: Sender<Staged>, spare: Receiver<Staged>) -> Self {
        Sink {
            stage: Staged::new(),
            to_io,
            spare,
            buffers: 1,
            hash: Sha256::new(),
            written: 0,
        }
    }

    fn put(&mut self, mut bytes: &[u8]) -> Result<(), PassError> {
        self.hash.update(bytes);
        self.written += bytes.len() as u64;
        while !bytes.is_empty() {
            let n = bytes.len().min(OUT_BUFFER - self.stage.len);
            let at = self.stage.start + self.stage.len;
            self.stage.buf[at..at + n].copy_from_slice(&bytes[..n]);
            self.stage.len += n;
            bytes = &bytes[n..];
            if self.stage.len == OUT_BUFFER {
                self.send()?;
            }
        }
        Ok(())
    }

    /// Hands the stage to the I/O thread and takes a spare buffer.
    fn send(&mut self) -> Result<(), PassError> {
        let next = match self.spare.try_recv() {
            Ok(b) => b,
            Err(_) if self.buffers <= OUT_QUEUE => {
                self.buffers += 1;
                Staged::new()
            }
            Err(_) => self.spare.recv().map_err(|_| io_stopped())?,
        };
        let full = std::mem::replace(&mut self.stage, next);
        self.stage.len = 0;
        self.to_io.send(full).map_err(|_| io_stopped())
    }

    /// Sends what is left; returns the bytes written and the output's SHA-256.
    fn finish(mut self) -> Result<(u64, String), PassError> {
        if self.stage.len > 0 {
            self.send()?;
        }
        Ok((self.written, hex(&self.hash.finalize())))
    }
}

/// Writes the staged buffers in order, with direct I/O where the file
/// system takes it: direct writes skip the page cache (no copy into it, no
/// writeback later, so the final sync has little left to do). Where direct
/// I/O is refused (tmpfs, a device), and for the unaligned tail, writes are
/// buffered as usual. Returns each buffer to `spare`; stops at the first
/// error.
fn write_out(out: &File, staged: Receiver<Staged>, spare: Sender<Staged>, progress: &AtomicU64) -> std::io::Result<()> {
    let mut direct = set_direct(out, true);
    let mut written = 0u64;
    let result = (|| {
        for block in staged {
            let bytes = block.bytes();
            if direct && bytes.len() % ALIGN != 0 {
                direct = set_direct(out, false);
            }
            let mut done = 0;
            while done < bytes.len() {
                match (&mut &*out).write(&bytes[done..]) {
                    Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                    Ok(n) => done += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    // The file system took the flag but refuses direct writes.
                    Err(e) if direct && e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                        direct = set_direct(out, false);
                    }
                    Err(e) => return Err(e),
                }
                // A short direct write leaves the rest unaligned: go on buffered.
                if direct && done % ALIGN != 0 {
                    direct = set_direct(out, false);
                }
            }
            written += bytes.len() as u64;
            progress.store(written, Ordering::Relaxed);
            // A closed or full channel: the buffer is simply freed.
            let _ = spare.try_send(block);
        }
        Ok(())
    })();
    if direct {
        set_direct(out, false);
    }
    result
}

/// Turns direct I/O on or off for `file`; whether it is now on. Only ever
/// on for a regular file: on a pipe the same flag means packet mode.
fn set_direct(file: &File, on: bool) -> bool {
    if on && !file.metadata().is_ok_and(|m| m.file_type().is_file()) {
        return false;
    }
    let Ok(flags) = rustix::fs::fcntl_getfl(file) else {
        return false;
    };
    let flags = if on {
        flags | rustix::fs::OFlags::DIRECT
    } else {
        flags - rustix::fs::OFlags::DIRECT
    };
    rustix::fs::fcntl_setfl(file, flags).is_ok() && on
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(dir: &std::path::Path, name: &str, bytes: &[u8]) -> Source {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        Source {
            file: File::open(&path).unwrap().into(),
            path,
        }
    }

    fn sha(bytes: &[u8]) -> String {
        hex(&Sha256::digest(bytes))
    }

    /// Runs the pass over `pieces` and checks the output, both hashes and
    /// the reread count against a direct computation.
    fn check(sources: &[Vec<u8>], pieces: &[Piece], reread: u64) {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<Source> = sources
            .iter()
            .enumerate()
            .map(|(i, b)| source(dir.path(), &format!("s{i}"), b))
            .collect();
        let silence = vec![7u8; 10];
        let mut expected = b"HEAD".to_vec();
        for p in pieces {
            match *p {
                Piece {
                    source: SILENCE, len, ..
                } => expected.extend_from_slice(&silence[..len as usize]),
                Piece { source, offset, len } => {
                    expected.extend_from_slice(&sources[source as usize][offset as usize..][..len as usize])
                }
            }
        }
        let out_path = dir.path().join("out");
        let out = File::create(&out_path).unwrap();
        let cancel = Cancel::new();
        let pieces = pieces.to_vec();
        let pass = Pass {
            head: b"HEAD",
            pieces: &pieces,
            sources: &files,
            silence: &silence,
            cancel: &cancel,
        };
        let done = run(&pass, &out, &AtomicU64::new(0)).unwrap();
        assert_eq!(std::fs::read(&out_path).unwrap(), expected);
        assert_eq!(done.size, expected.len() as u64);
        assert_eq!(done.sha256, sha(&expected));
        let inputs: Vec<(String, u64)> = sources.iter().map(|b| (sha(b), b.len() as u64)).collect();
        assert_eq!(done.inputs, inputs);
        assert_eq!(done.reread, reread);
    }

    fn bytes(n: usize, seed: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    fn src(source: u32, offset: usize, len: usize) -> Piece {
        Piece {
            source,
            offset: offset as u64,
            len: len as u32,
        }
    }

    fn silent(len: u32) -> Piece {
        Piece {
            source: SILENCE,
            len,
            offset: 0,
        }
    }

    #[test]
    fn in_order_pieces_are_read_once() {
        let a = bytes(3 * BLOCK + 17, 1);
        let b = bytes(BLOCK / 2, 2);
        let pieces = [
            src(0, 100, BLOCK),
            silent(10),
            src(0, BLOCK + 100, 2 * BLOCK - 100),
            src(1, 0, BLOCK / 2),
        ];
        check(&[a, b], &pieces, 0);
    }

    #[test]
    fn pieces_a_little_out_of_order_come_from_the_window() {
        let a = bytes(6 * BLOCK, 3);
        // Output order swaps neighbours across block boundaries.
        let pieces = [
            src(0, BLOCK + 10, 1000),
            src(0, 10, BLOCK),
            src(0, 3 * BLOCK, BLOCK),
            src(0, 2 * BLOCK, BLOCK),
        ];
        check(&[a], &pieces, 0);
    }

    #[test]
    fn pieces_behind_the_window_or_of_a_passed_source_are_read_again() {
        let a = bytes((WINDOW_BLOCKS + 4) * BLOCK, 4);
        let b = bytes(1000, 5);
        let far = (WINDOW_BLOCKS + 2) * BLOCK;
        let pieces = [src(0, far, 100), src(0, 0, 100), src(1, 0, 1000), src(0, 50, 10)];
        check(&[a, b], &pieces, 110);
    }

    #[test]
    fn a_long_output_with_an_unaligned_tail_is_whole() {
        // Several output blocks (direct writes where the file system takes
        // them), a head and a tail that are not aligned.
        let a = bytes(13 * BLOCK + 123, 6);
        check(&[a], &[src(0, 7, 13 * BLOCK + 100), silent(3)], 0);
    }

    #[test]
    fn a_pipe_gets_the_bytes_as_written() {
        // O_DIRECT on a pipe is packet mode, where a short read loses the
        // rest of a write: the flag is for regular files only.
        let (mut rx, tx) = std::io::pipe().unwrap();
        let out = File::from(std::os::fd::OwnedFd::from(tx));
        assert!(!set_direct(&out, true));
        let reading = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 1000];
            loop {
                match std::io::Read::read(&mut rx, &mut buf) {
                    Ok(0) => return got,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) => panic!("{e}"),
                }
            }
        });
        let a = bytes(3 * OUT_BUFFER + 5, 9);
        let dir = tempfile::tempdir().unwrap();
        let files = [source(dir.path(), "s0", &a)];
        let cancel = Cancel::new();
        let pieces = vec![src(0, 0, a.len())];
        let pass = Pass {
            head: b"",
            pieces: &pieces,
            sources: &files,
            silence: &[],
            cancel: &cancel,
        };
        run(&pass, &out, &AtomicU64::new(0)).unwrap();
        drop(out);
        assert!(reading.join().unwrap() == a);
    }

    #[test]
    fn sources_the_output_does_not_use_are_still_hashed() {
        check(&[bytes(10, 1), bytes(2 * BLOCK, 2), Vec::new()], &[src(0, 2, 5)], 0);
    }

    #[test]
    fn a_short_source_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let files = [source(dir.path(), "s0", &bytes(BLOCK + 5, 1))];
        let out = File::create(dir.path().join("out")).unwrap();
        let cancel = Cancel::new();
        let pieces = vec![src(0, BLOCK, 100)];
        let pass = Pass {
            head: b"",
            pieces: &pieces,
            sources: &files,
            silence: &[],
            cancel: &cancel,
        };
        match run(&pass, &out, &AtomicU64::new(0)) {
            Err(PassError::Io(Some(0), e)) => {
                assert_eq!(
                    e.to_string(),
                    format!("the file ended 5 bytes into a 100-byte read at {BLOCK}")
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
