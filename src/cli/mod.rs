//! The binary's own parts: terminal progress (`progress`) and the `worker`
//! command. The library knows nothing of terminals; everything here is the
//! command line's.

pub mod progress;
pub mod worker;
