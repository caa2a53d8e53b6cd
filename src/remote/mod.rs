//! Where the archive meets the service and the cloud: downloading the chunks
//! that completion events list ([`fetch`], feature `fetch`), object stores
//! as archives and output folders ([`store`], feature `object-store`), the
//! check that a recording is safely archived before its chunks are deleted
//! ([`archival`]), and the queue worker that runs all of it per event
//! ([`worker`], feature `worker`).

#[cfg(feature = "fetch")]
pub mod archival;
#[cfg(feature = "fetch")]
pub mod fetch;
#[cfg(feature = "object-store")]
pub mod store;
#[cfg(feature = "worker")]
pub mod worker;
