//! The queue loop: receive a message, hold its lease while its work goes
//! on, delete it when done; set aside poison; stop when asked; return when
//! the queue stays empty (`until_empty`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::queue::{QueueClient, QueueError, QueueErrorKind, QueueMessage};
use super::{message, HandleError, Handled, Outcome, Worker, WorkerEvent};
use crate::io::Cancel;
use crate::observe::Observer;

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MessageOutcome {
    /// Its recording was archived and verified now; the message deleted.
    Archived,
    /// Its recording was archived before (a duplicate delivery); deleted.
    AlreadyArchived,
    /// Not a completion event; deleted with a note.
    Ignored,
    /// Its work failed; left to reappear when its lease runs out.
    Failed,
    /// Failed at its last allowed delivery: moved to `NAME-poison`, deleted.
    Poisoned,
    /// Stopped by a shutdown after the grace period; made visible at once.
    Released,
    /// Its lease could not be renewed; its work was stopped (another
    /// worker may have it now).
    LeaseLost,
}

impl MessageOutcome {
    /// The outcome's name, as in the NDJSON line.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageOutcome::Archived => "archived",
            MessageOutcome::AlreadyArchived => "alreadyArchived",
            MessageOutcome::Ignored => "ignored",
            MessageOutcome::Failed => "failed",
            MessageOutcome::Poisoned => "poisoned",
            MessageOutcome::Released => "released",
            MessageOutcome::LeaseLost => "leaseLost",
        }
    }
}

/// One message done: the per-message line (NDJSON with `"event": "message"`).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageReport {
    /// Always `message`.
    pub event: &'static str,
    /// The queue message's id.
    pub message_id: String,
    /// Its deliveries so far, this one included.
    pub dequeue_count: u32,
    /// What became of it.
    pub outcome: MessageOutcome,
    /// The event's id, when the message held an event.
    pub event_id: Option<String>,
    /// The event's type.
    pub event_type: Option<String>,
    /// The call.
    pub call_id: Option<String>,
    /// The recording.
    pub recording_id: Option<String>,
    /// The stitched file.
    pub output: Option<String>,
    /// Seconds the message took.
    pub seconds: f64,
    /// The stitched file's size.
    pub bytes: u64,
    /// Bytes received from the service.
    pub bytes_transferred: u64,
    /// Something to know.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Why its work failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a run did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// Messages received.
    pub messages: usize,
    /// Recordings archived now.
    pub archived: usize,
    /// Duplicates of recordings archived before.
    pub already_archived: usize,
    /// Events of other types.
    pub ignored: usize,
    /// Messages left to reappear.
    pub failed: usize,
    /// Messages moved to the poison queue.
    pub poisoned: usize,
    /// Messages released by a shutdown, or whose lease was lost.
    pub released: usize,
    /// Whether the run ended because a stop was asked for.
    pub stopped: bool,
}

impl RunSummary {
    fn count(&mut self, outcome: MessageOutcome) {
        self.messages += 1;
        let n = match outcome {
            MessageOutcome::Archived => &mut self.archived,
            MessageOutcome::AlreadyArchived => &mut self.already_archived,
            MessageOutcome::Ignored => &mut self.ignored,
            MessageOutcome::Failed => &mut self.failed,
            MessageOutcome::Poisoned => &mut self.poisoned,
            MessageOutcome::Released | MessageOutcome::LeaseLost => &mut self.released,
        };
        *n += 1;
    }
}

/// The lease on one message: its current pop receipt, and why it ended early.
struct Lease {
    receipt: Mutex<String>,
    lost: AtomicBool,
    released: AtomicBool,
}

impl Lease {
    fn receipt(&self) -> String {
        self.receipt.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Worker {
    /// Takes messages from `queue` until a stop is asked for
    /// ([`WorkerOptions::stop`](super::WorkerOptions::stop)) or, with
    /// `until_empty`, the queue has stayed empty; [`WorkerOptions::jobs`](super::WorkerOptions::jobs)
    /// messages at once. `Err` when the queue cannot be used: it does not
    /// exist, the key is refused, or the service kept failing for
    /// `max_outage`.
    pub fn run(&self, queue: &QueueClient, observer: &dyn Observer<WorkerEvent>) -> Result<RunSummary, QueueError> {
        // The queue must be there (Event Grid's subscription needs it too).
        queue.approximate_count()?;
        let summary = Mutex::new(RunSummary::default());
        let jobs = self.options.jobs.max(1);
        let results: Vec<Result<(), QueueError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..jobs)
                .map(|_| s.spawn(|| self.run_loop(queue, observer, &summary)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or(Err(QueueError {
                        queue: queue.name().to_string(),
                        host: queue.host(),
                        operation: "handling messages",
                        kind: QueueErrorKind::Other,
                        message: "a worker thread panicked (its message reappears when its lease runs out)".into(),
                    }))
                })
                .collect()
        });
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        let mut summary = summary.into_inner().unwrap_or_else(|e| e.into_inner());
        summary.stopped = self.options.stop.is_cancelled();
        Ok(summary)
    }

    fn run_loop(
        &self,
        queue: &QueueClient,
        observer: &dyn Observer<WorkerEvent>,
        summary: &Mutex<RunSummary>,
    ) -> Result<(), QueueError> {
        let o = &self.options;
        let mut idle = o.idle;
        let mut empty_since: Option<Instant> = None;
        let mut outage: Option<Instant> = None;
        while !o.stop.is_cancelled() {
            let msg = match queue.receive(o.visibility_timeout) {
                Ok(m) => {
                    outage = None;
                    m
                }
                Err(e) => {
                    self.outage(e, &mut outage, observer)?;
                    self.pause(o.idle.max(Duration::from_secs(1)));
                    continue;
                }
            };
            let Some(msg) = msg else {
                if o.until_empty {
                    // Empty means no message visible *or* leased by anyone.
                    match queue.approximate_count() {
                        Ok(0) if empty_since.get_or_insert_with(Instant::now).elapsed() >= o.empty_for => return Ok(()),
                        Ok(0) => {}
                        Ok(_) => empty_since = None,
                        Err(e) => self.outage(e, &mut outage, observer)?,
                    }
                    self.pause(o.idle);
                } else {
                    self.pause(idle);
                    idle = idle.saturating_mul(2).min(o.max_idle);
                }
                continue;
            };
            idle = o.idle;
            empty_since = None;
            let report = self.process(queue, &msg, observer);
            observer.observe(&WorkerEvent::Message(report.clone()));
            summary.lock().unwrap_or_else(|e| e.into_inner()).count(report.outcome);
        }
        Ok(())
    }

    /// A queue error while polling: retried (said to the observer) unless
    /// it is not transient or the outage has lasted `max_outage`.
    fn outage(
        &self,
        e: QueueError,
        since: &mut Option<Instant>,
        observer: &dyn Observer<WorkerEvent>,
    ) -> Result<(), QueueError> {
        if matches!(e.kind, QueueErrorKind::Auth | QueueErrorKind::NotFound) {
            return Err(e);
        }
        if since.get_or_insert_with(Instant::now).elapsed() >= self.options.max_outage {
            return Err(e);
        }
        observer.observe(&WorkerEvent::Note(format!("{e}; retrying")));
        Ok(())
    }

    /// Waits `d`, or less when a stop is asked for.
    fn pause(&self, d: Duration) {
        let end = Instant::now() + d;
        while !self.options.stop.is_cancelled() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(Duration::from_millis(100)));
        }
    }

    /// One message, start to end.
    fn process(&self, queue: &QueueClient, msg: &QueueMessage, observer: &dyn Observer<WorkerEvent>) -> MessageReport {
        let started = Instant::now();
        let mut report = MessageReport {
            event: "message",
            message_id: msg.id.clone(),
            dequeue_count: msg.dequeue_count,
            outcome: MessageOutcome::Failed,
            event_id: None,
            event_type: None,
            call_id: None,
            recording_id: None,
            output: None,
            seconds: 0.0,
            bytes: 0,
            bytes_transferred: 0,
            note: None,
            error: None,
        };
        let lease = Lease {
            receipt: Mutex::new(msg.pop_receipt.clone()),
            lost: AtomicBool::new(false),
            released: AtomicBool::new(false),
        };
        let result = message::event_of(&msg.text, &self.options.fetch.limits)
            .map_err(HandleError::from)
            .and_then(|event| {
                report.event_id = event
                    .get("id")
                    .and_then(Value::as_str)
                    .map(|s| s.chars().take(200).collect());
                report.event_type = crate::input::metadata::event_type(&event).map(|s| s.chars().take(200).collect());
                self.leased(queue, msg, &lease, observer, |cancel| {
                    self.handle(&event, cancel, observer)
                })
            });
        self.settle(queue, msg, &lease, result, &mut report);
        report.seconds = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
        report
    }

    /// Deletes, releases, poisons or leaves the message after its work.
    fn settle(
        &self,
        queue: &QueueClient,
        msg: &QueueMessage,
        lease: &Lease,
        result: Result<Handled, HandleError>,
        report: &mut MessageReport,
    ) {
        match result {
            Ok(done) => {
                report.outcome = match done.outcome {
                    Outcome::Archived => MessageOutcome::Archived,
                    Outcome::AlreadyArchived => MessageOutcome::AlreadyArchived,
                    Outcome::Ignored => MessageOutcome::Ignored,
                };
                report.event_type = done.event_type.or(report.event_type.take());
                report.call_id = done.call_id;
                report.recording_id = done.recording_id;
                report.output = done.output;
                report.bytes = done.bytes;
                report.bytes_transferred = done.bytes_transferred;
                report.note = done.note;
                if let Err(e) = with_retries(|| queue.delete(&msg.id, &lease.receipt())) {
                    // The work is done: the next delivery finds it archived.
                    report.outcome = MessageOutcome::Failed;
                    report.error = Some(format!("done, but the message could not be deleted: {e}"));
                }
            }
            Err(e) if lease.lost.load(Ordering::SeqCst) => {
                report.outcome = MessageOutcome::LeaseLost;
                report.error = Some(e.to_string());
            }
            Err(e) if lease.released.load(Ordering::SeqCst) => {
                report.outcome = MessageOutcome::Released;
                report.error = Some(e.to_string());
                if let Err(q) = with_retries(|| queue.set_visibility(&msg.id, &lease.receipt(), Duration::ZERO)) {
                    report.note = Some(format!(
                        "not made visible at once ({q}): it reappears when its lease runs out"
                    ));
                }
            }
            Err(e) if msg.dequeue_count >= self.options.max_dequeue => {
                let e = e.to_string();
                match self.poison(queue, msg, &lease.receipt(), &e) {
                    Ok(()) => report.outcome = MessageOutcome::Poisoned,
                    Err(q) => report.note = Some(format!("not moved to the poison queue: {q}")),
                }
                report.error = Some(e);
            }
            Err(e) => report.error = Some(e.to_string()),
        }
    }

    /// Moves a message to `NAME-poison` with the reason, then deletes it.
    /// The poison message is JSON: `reason`, `queue`, `messageId`,
    /// `dequeueCount` and `message` (the text as received); the text alone
    /// when that would be too large for a message.
    fn poison(&self, queue: &QueueClient, msg: &QueueMessage, receipt: &str, reason: &str) -> Result<(), QueueError> {
        let name = poison_name(queue.name());
        let poison = queue.sibling(&name).map_err(|e| QueueError {
            queue: name.clone(),
            host: queue.host(),
            operation: "naming the poison queue",
            kind: QueueErrorKind::Other,
            message: e.to_string(),
        })?;
        with_retries(|| poison.create())?;
        let envelope = serde_json::json!({
            "reason": reason,
            "queue": queue.name(),
            "messageId": msg.id,
            "dequeueCount": msg.dequeue_count,
            "message": msg.text,
        })
        .to_string();
        let text = if envelope.len() <= 48 << 10 {
            envelope
        } else {
            msg.text.clone()
        };
        with_retries(|| poison.put(&text, None))?;
        with_retries(|| queue.delete(&msg.id, receipt))
    }

    /// Runs `work` while a second thread keeps the message's lease: renewed
    /// every third of the visibility timeout; if a renewal fails, the work
    /// is cancelled. After a stop is asked for, the work has the grace
    /// period, then is cancelled and the lease marked released.
    fn leased<T>(
        &self,
        queue: &QueueClient,
        msg: &QueueMessage,
        lease: &Lease,
        observer: &dyn Observer<WorkerEvent>,
        work: impl FnOnce(&Cancel) -> Result<T, HandleError>,
    ) -> Result<T, HandleError> {
        let cancel = Cancel::new();
        let done = AtomicBool::new(false);
        std::thread::scope(|s| {
            s.spawn(|| self.keep_lease(queue, msg, lease, &cancel, &done, observer));
            let result = work(&cancel);
            done.store(true, Ordering::SeqCst);
            result
        })
    }

    fn keep_lease(
        &self,
        queue: &QueueClient,
        msg: &QueueMessage,
        lease: &Lease,
        cancel: &Cancel,
        done: &AtomicBool,
        observer: &dyn Observer<WorkerEvent>,
    ) {
        let visibility = self.options.visibility_timeout;
        let every = (visibility / 3).max(Duration::from_millis(300));
        let mut renewed = Instant::now();
        let mut stop_asked: Option<Instant> = None;
        while !done.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
            if self.options.stop.is_cancelled()
                && stop_asked.get_or_insert_with(Instant::now).elapsed() >= self.options.grace
            {
                lease.released.store(true, Ordering::SeqCst);
                cancel.cancel();
                return;
            }
            if renewed.elapsed() < every {
                continue;
            }
            match queue.set_visibility(&msg.id, &lease.receipt(), visibility) {
                Ok(receipt) => {
                    *lease.receipt.lock().unwrap_or_else(|e| e.into_inner()) = receipt;
                    renewed = Instant::now();
                }
                // A transient failure is tried again while the lease surely holds.
                Err(e) if e.kind == QueueErrorKind::Transient && renewed.elapsed() < visibility / 2 => {
                    observer.observe(&WorkerEvent::Note(format!("{e}; retrying")));
                }
                Err(e) => {
                    observer.observe(&WorkerEvent::Note(format!("{e}: the message's work is stopped")));
                    lease.lost.store(true, Ordering::SeqCst);
                    cancel.cancel();
                    return;
                }
            }
        }
    }
}

/// The poison queue of `queue`: `NAME-poison`.
pub(crate) fn poison_name(queue: &str) -> String {
    format!("{queue}-poison")
}

/// A queue operation, tried again twice after a transient failure.
fn with_retries<T>(mut op: impl FnMut() -> Result<T, QueueError>) -> Result<T, QueueError> {
    let mut delay = Duration::from_millis(200);
    for _ in 0..2 {
        match op() {
            Err(e) if e.kind == QueueErrorKind::Transient => {
                std::thread::sleep(delay);
                delay *= 4;
            }
            other => return other,
        }
    }
    op()
}
