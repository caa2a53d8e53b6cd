//! The join: how the chunks' sample tables become one track each
//! (`plan`), and the MP4 that holds them (`write`: `moov` first, then the
//! sample bytes copied from the chunks in large blocks).

pub(crate) mod mp3;
mod payload;
pub(crate) mod plan;
mod sink;
mod stbl;
pub(crate) mod wav;
pub(crate) mod write;

use crate::error::{Error, Result};
use crate::media::Movie;

/// The `ftyp`, `moov` and `mdat` header a stitch of `chunks` (in index
/// order, `--gaps collapse`) would write; for inspection and benchmarks.
/// The plan behind it stays internal.
pub fn header_of(chunks: &[&Movie]) -> Result<Vec<u8>> {
    let plan = plan::plan(chunks, &[]).map_err(|why| Error::Unsupported {
        path: chunks.first().map(|m| m.path.clone()).unwrap_or_default(),
        context: "the join plan".into(),
        message: why,
    })?;
    write::moov_bytes(&plan, &[])
}
