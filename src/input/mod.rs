//! What an archive holds, before any media is read: the chunk metadata and
//! completion events in every variant the service has written
//! ([`metadata`]), and the discovery that pairs each metadata file with its
//! media and groups chunks into recordings ([`archive`]).

pub mod archive;
pub mod metadata;
