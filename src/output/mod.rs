//! What a stitch writes: the timeline of a recording ([`timeline`]:
//! segments, pauses, gaps, chapters), the join plans and writers of each
//! format (`mux`, internal), the stitcher that writes the media, chapters, picture
//! and manifest atomically ([`stitch`]), the timeline picture
//! ([`picture`]), and the JSON reports ([`report`]).

pub(crate) mod mux;
pub mod picture;
pub mod report;
pub mod stitch;
// Synthetic inputs for the benches and tests only (feature `bench-support`,
// which they turn on through a dev-dependency): not part of the API.
#[cfg(feature = "bench-support")]
#[doc(hidden)]
pub mod synth;
pub mod timeline;
