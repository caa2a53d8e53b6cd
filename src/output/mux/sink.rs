//! The output of the audio writers: bytes gathered in a buffer, hashed on
//! the way and written in large sequential writes, so that the same code
//! writes to a temporary file and to an upload pipe (an object store).

use std::fs::File;
use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::io::hex;

/// Bytes gathered before one write.
const OUT_BUFFER: usize = 512 << 10;
/// Largest run of one byte added to the buffer at once.
const FILL_STEP: u64 = 128 << 10;

/// A hashed, buffered, sequential output.
pub(crate) struct Sink<'a> {
    file: &'a File,
    path: &'a Path,
    buf: Vec<u8>,
    hash: Sha256,
    size: u64,
}

impl<'a> Sink<'a> {
    /// Writes to `file`, named `path` in errors, from its current position.
    pub(crate) fn new(file: &'a File, path: &'a Path) -> Self {
        Sink {
            file,
            path,
            buf: Vec::with_capacity(OUT_BUFFER + FILL_STEP as usize),
            hash: Sha256::new(),
            size: 0,
        }
    }

    /// Appends `bytes`.
    pub(crate) fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(bytes);
        self.flush_full()
    }

    /// Appends `n` bytes of `byte` (digital silence).
    pub(crate) fn fill(&mut self, byte: u8, mut n: u64) -> Result<()> {
        while n > 0 {
            let k = n.min(FILL_STEP);
            // k <= FILL_STEP, a small constant.
            self.buf.resize(self.buf.len() + k as usize, byte);
            n -= k;
            self.flush_full()?;
        }
        Ok(())
    }

    fn flush_full(&mut self) -> Result<()> {
        if self.buf.len() >= OUT_BUFFER {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.hash.update(&self.buf);
        (&mut &*self.file)
            .write_all(&self.buf)
            .map_err(|e| Error::io(self.path, e))?;
        self.size += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Writes what is left; the SHA-256 (hex) and size of the output.
    pub(crate) fn finish(mut self) -> Result<(String, u64)> {
        self.flush()?;
        Ok((hex(&self.hash.finalize()), self.size))
    }
}
