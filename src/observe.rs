//! The one shape of every progress observer: an [`Observer`] of some event
//! type receives each event by reference, from whichever thread produced it.
//!
//! The batch ([`crate::batch::run_batch`]) reports
//! [`Progress`](crate::batch::Progress) events, the fetch (feature
//! `fetch`) reports `fetch::FetchProgress` events; both take a
//! `&dyn Observer<E>` of their event type. [`Quiet`] ignores every event
//! of every type, and a closure `Fn(&E) + Sync` is an observer of `E`:
//!
//! ```
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use recstitch::batch::{run_batch, BatchOptions, Progress};
//! use recstitch::{Archive, ScanOptions};
//!
//! let archive = Archive::scan("fixtures/cases/good".as_ref(), &ScanOptions::default())?;
//! let out = std::env::temp_dir().join("recstitch-observe-example");
//! let finished = AtomicUsize::new(0);
//! let count = |event: &Progress| {
//!     if let Progress::Finished { .. } = event {
//!         finished.fetch_add(1, Ordering::Relaxed);
//!     }
//! };
//! let report = run_batch(&archive, &out, &BatchOptions::default(), &count);
//! assert_eq!(finished.load(Ordering::Relaxed), report.recordings.len());
//! # Ok::<(), recstitch::Error>(())
//! ```

/// Receives events of type `E`, possibly from several threads at once.
pub trait Observer<E: ?Sized>: Sync {
    /// One event.
    fn observe(&self, event: &E);
}

/// An observer that ignores every event, of any type.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl<E: ?Sized> Observer<E> for Quiet {
    fn observe(&self, _: &E) {}
}

/// A closure is an observer: `&|event: &Progress| …`.
impl<E: ?Sized, F: Fn(&E) + Sync> Observer<E> for F {
    fn observe(&self, event: &E) {
        self(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn send<E>(observer: &dyn Observer<E>, events: impl IntoIterator<Item = E>) {
        for e in events {
            observer.observe(&e);
        }
    }

    #[test]
    fn quiet_takes_any_event_and_a_closure_sees_each() {
        send(&Quiet, [1u32, 2]);
        send(&Quiet, ["a".to_string()]);
        let seen = Mutex::new(Vec::new());
        send(&|e: &u32| seen.lock().unwrap().push(*e), [3u32, 4]);
        assert_eq!(*seen.lock().unwrap(), [3, 4]);
    }
}
