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
