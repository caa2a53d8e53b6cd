//! The one error type of the crate.
//!
//! Every error says where it happened (a file, and inside an MP4 the box path
//! such as `moov/trak[1]/mdia/minf/stbl/stsz`) and what was wrong, so that a
//! user can act on it without a debugger.

use std::fmt;
use std::path::{Path, PathBuf};

/// A specialised `Result` for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in recstitch.
///
/// Errors about *input* (a broken chunk, a malformed metadata file) are usually
/// turned into [`Finding`](crate::Finding)s by the validation layer so that a
/// batch keeps going; this type is what the lower layers report.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// The input is malformed: it breaks the MP4 or metadata format.
    #[error("{}{}: {message}", path.display(), after(context))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Where inside the file (box path or JSON field).
        context: String,
        /// What is wrong.
        message: String,
    },

    /// The input ends early: a box or a sample lies beyond the end of the
    /// file, or a required box (`moov`) never arrived. Usually an interrupted
    /// download: resume it.
    #[error("{}{}: truncated: {message}", path.display(), after(context))]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Where inside the file.
        context: String,
        /// What is missing.
        message: String,
    },

    /// The input is well formed but uses something recstitch does not handle.
    #[error("{}{}: unsupported: {message}", path.display(), after(context))]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// Where inside the file.
        context: String,
        /// What is not supported.
        message: String,
    },

    /// A size or count in the input exceeds one of the budgets in [`Limits`](crate::Limits).
    #[error("{}{}: {what} is {value}, over the limit {limit} (Limits::{name})", path.display(), after(context))]
    Limit {
        /// The file.
        path: PathBuf,
        /// Where inside the file.
        context: String,
        /// What was counted or measured.
        what: String,
        /// The name of the `Limits` field that was exceeded.
        name: &'static str,
        /// The value found in the input.
        value: u64,
        /// The limit in force.
        limit: u64,
    },

    /// An output could not be encoded: a box, table or file that its format
    /// cannot hold (a count past 32 bits, a PNG or JSON encoder's refusal).
    #[error("{}: cannot encode {what}: {message}", path.display())]
    Encode {
        /// The output file.
        path: PathBuf,
        /// What was being encoded.
        what: String,
        /// Why it failed.
        message: String,
    },

    /// Hashing a file failed for a reason other than reading it.
    #[error("{}: hashing failed: {message}", path.display())]
    Hash {
        /// The file being hashed (an input, or the output).
        path: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// The work was cancelled ([`Cancel`](crate::io::Cancel)).
    #[error("cancelled")]
    Cancelled,

    /// A bug in recstitch (a panic, contained): the message says where.
    #[error("internal error (a bug in recstitch, please report it with this recording): {0}")]
    Internal(String),

    /// The caller asked for something impossible (bad options, bad output folder).
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// The category of the error, stable for programs: `io`, `invalid`,
    /// `truncated`, `unsupported`, `limit`, `encode`, `hash`, `cancelled`,
    /// `internal` or `usage`.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::Invalid { .. } => "invalid",
            Error::Truncated { .. } => "truncated",
            Error::Unsupported { .. } => "unsupported",
            Error::Limit { .. } => "limit",
            Error::Encode { .. } => "encode",
            Error::Hash { .. } => "hash",
            Error::Cancelled => "cancelled",
            Error::Internal(_) => "internal",
            Error::Usage(_) => "usage",
        }
    }

    /// The same error, naming `path` when it names no file yet.
    pub(crate) fn with_path(self, path: &Path) -> Self {
        match self {
            Error::Encode { path: p, what, message } if p.as_os_str().is_empty() => Error::Encode {
                path: path.to_path_buf(),
                what,
                message,
            },
            other => other,
        }
    }

    /// An [`Error::Encode`] of `what` in the output `path`.
    pub(crate) fn encode(path: &Path, what: impl Into<String>, message: impl fmt::Display) -> Self {
        Error::Encode {
            path: path.to_path_buf(),
            what: what.into(),
            message: message.to_string(),
        }
    }

    /// The file the error is about, when there is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::Io { path, .. }
            | Error::Invalid { path, .. }
            | Error::Truncated { path, .. }
            | Error::Unsupported { path, .. }
            | Error::Limit { path, .. }
            | Error::Encode { path, .. }
            | Error::Hash { path, .. } => Some(path),
            Error::Cancelled | Error::Internal(_) | Error::Usage(_) => None,
        }
    }

    /// The error's message without the file name in front (for reports that
    /// already show the file).
    pub fn detail(&self) -> String {
        match self {
            Error::Io { source, .. } => source.to_string(),
            Error::Invalid { context, message, .. } => format!("{}{message}", before(context)),
            Error::Truncated { context, message, .. } => format!("{}truncated: {message}", before(context)),
            Error::Unsupported { context, message, .. } => format!("{}unsupported: {message}", before(context)),
            Error::Limit {
                context,
                what,
                name,
                value,
                limit,
                ..
            } => format!(
                "{}{what} is {value}, over the limit {limit} (Limits::{name})",
                before(context)
            ),
            Error::Encode { what, message, .. } => format!("cannot encode {what}: {message}"),
            Error::Hash { message, .. } => format!("hashing failed: {message}"),
            Error::Cancelled | Error::Internal(_) | Error::Usage(_) => self.to_string(),
        }
    }
}

/// `: <context>` after a file name, nothing for an empty context (so that a
/// message never holds an empty segment `: :`).
fn after(context: &str) -> String {
    if context.is_empty() {
        String::new()
    } else {
        format!(": {context}")
    }
}

/// `<context>: ` before a message, nothing for an empty context.
fn before(context: &str) -> String {
    if context.is_empty() {
        String::new()
    } else {
        format!("{context}: ")
    }
}

/// Builds errors that all share one file and a location inside it.
///
/// Parsers carry one of these so that every error they raise names the file
/// and the place without repeating the plumbing.
#[derive(Debug, Clone)]
pub(crate) struct Here<'a> {
    pub path: &'a Path,
    pub context: String,
}

impl<'a> Here<'a> {
    pub fn new(path: &'a Path, context: impl Into<String>) -> Self {
        Here {
            path,
            context: context.into(),
        }
    }

    /// The same file, one level deeper (`moov` -> `moov/trak[0]`).
    pub fn child(&self, name: impl fmt::Display) -> Here<'a> {
        let context = if self.context.is_empty() {
            name.to_string()
        } else {
            format!("{}/{}", self.context, name)
        };
        Here {
            path: self.path,
            context,
        }
    }

    pub fn invalid(&self, message: impl Into<String>) -> Error {
        Error::Invalid {
            path: self.path.to_path_buf(),
            context: self.context.clone(),
            message: message.into(),
        }
    }

    pub fn truncated(&self, message: impl Into<String>) -> Error {
        Error::Truncated {
            path: self.path.to_path_buf(),
            context: self.context.clone(),
            message: message.into(),
        }
    }

    pub fn unsupported(&self, message: impl Into<String>) -> Error {
        Error::Unsupported {
            path: self.path.to_path_buf(),
            context: self.context.clone(),
            message: message.into(),
        }
    }

    pub fn io(&self, source: std::io::Error) -> Error {
        Error::io(self.path, source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_context_leaves_no_empty_segment() {
        let e = Here::new(Path::new("event.json"), "").invalid("not valid JSON: EOF");
        assert_eq!(e.to_string(), "event.json: not valid JSON: EOF");
        assert_eq!(e.detail(), "not valid JSON: EOF");
        let e = Here::new(Path::new("a.mp4"), "moov").invalid("bad");
        assert_eq!(e.to_string(), "a.mp4: moov: bad");
        assert_eq!(e.detail(), "moov: bad");
    }
}
