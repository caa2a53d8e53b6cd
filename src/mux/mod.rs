//! The join: how the chunks' sample tables become one track each
//! ([`plan`]), and the MP4 that holds them ([`write`]: `moov` first, then the
//! sample bytes copied from the chunks in large blocks).

pub mod plan;
pub(crate) mod write;

pub use plan::Placement;
pub use write::moov_bytes;
