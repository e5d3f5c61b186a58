//! Isolation for third-party parsers: each runs on a worker thread of its own, under
//! `catch_unwind` and a timeout, so a panic becomes `Corrupt` and a parser that spins
//! becomes `Timeout` instead of taking the caller down with it.

use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, Once};
use std::thread;
use std::time::Duration;

use super::{DocumentFormat, ExtractError, corrupt};

const WORKER_NAME: &str = "bulkhead-extract";
/// Generous stack for parser recursion (html2text and lopdf recurse on nesting); it is
/// virtual memory, committed only as used.
const WORKER_STACK_BYTES: usize = 64 * 1024 * 1024;

/// Runs `job` on a dedicated thread, converting a panic into `Corrupt` and a job that
/// outlives `timeout` into `Timeout`.
///
/// Limitation: Rust cannot kill a thread. On timeout the worker is detached and keeps
/// running (and holding its copy of the document and CPU) until the parser returns on
/// its own; its result is then dropped. Callers should bound the number of concurrent
/// extractions so that a stream of hostile files cannot pile up stuck workers. A stack
/// overflow, an abort or an out-of-memory inside a parser is not catchable and takes the
/// process down: the known recursion hazards are refused up front ([`pdf_preflight`](super::pdf::pdf_preflight),
/// [`html_nesting_exceeds`](super::html::html_nesting_exceeds)) and the worker stack is large; the rest is contained by
/// running this worker inside the confined child process of [`child`](super::child),
/// which the server and the CLI always do.
pub(super) fn run_isolated<F>(
    format: DocumentFormat,
    timeout: Duration,
    job: F,
) -> Result<String, ExtractError>
where
    F: FnOnce() -> Result<String, ExtractError> + Send + 'static,
{
    install_quiet_panic_hook();
    // The job sits in a shared slot rather than being moved into the closure, so that
    // it can still be run inline if the OS refuses to start a thread.
    let slot = Arc::new(Mutex::new(Some(job)));
    let worker_slot = Arc::clone(&slot);
    // Capacity 1 so the worker's send never blocks, even after we stopped listening.
    let (tx, rx) = mpsc::sync_channel(1);
    let spawned = thread::Builder::new()
        .name(WORKER_NAME.to_owned())
        .stack_size(WORKER_STACK_BYTES)
        .spawn(move || {
            let outcome =
                panic::catch_unwind(AssertUnwindSafe(|| take_job(&worker_slot).map(|job| job())));
            // The receiver is gone if we timed out; nothing left to do then.
            let _ = tx.send(outcome);
        });
    if let Err(err) = spawned {
        // The OS refused a thread (resource exhaustion, possibly stuck workers). Refusing
        // the document would blame the file; running inline keeps the panic guard and
        // loses only the timeout, under conditions that are already exceptional.
        tracing::warn!(error = %err, "could not start extraction worker; extracting inline");
        return match panic::catch_unwind(AssertUnwindSafe(|| take_job(&slot).map(|job| job()))) {
            Ok(Some(result)) => result,
            Ok(None) | Err(_) => Err(crashed(format)),
        };
    }

    match rx.recv_timeout(timeout) {
        Ok(Ok(Some(result))) => result,
        // The slot was empty: cannot happen, the job is taken exactly once.
        Ok(Ok(None)) => Err(crashed(format)),
        Ok(Err(_payload)) => {
            // The payload is dropped unread: panic messages from parsers can quote
            // document bytes.
            tracing::warn!(format = format.as_str(), "document parser panicked");
            Err(crashed(format))
        }
        Err(RecvTimeoutError::Timeout) => {
            tracing::warn!(
                format = format.as_str(),
                timeout_s = timeout.as_secs_f64(),
                "document extraction timed out; worker thread left running detached"
            );
            Err(ExtractError::Timeout {
                seconds: timeout.as_secs_f64().ceil() as u64,
            })
        }
        // Only reachable if the worker died without unwinding through catch_unwind.
        Err(RecvTimeoutError::Disconnected) => Err(crashed(format)),
    }
}

fn take_job<F>(slot: &Mutex<Option<F>>) -> Option<F> {
    // A poisoned lock only means another holder panicked; the Option is still sound.
    slot.lock()
        .unwrap_or_else(|poison| poison.into_inner())
        .take()
}

fn crashed(format: DocumentFormat) -> ExtractError {
    corrupt(
        format,
        "the parser crashed on this file; re-save or re-export it and try again",
    )
}

/// Silences the default panic report for extraction workers only.
///
/// The default hook prints the panic message to stderr, and parser panic messages can
/// quote document bytes (e.g. `unwrap()` on a `FromUtf8Error`), which would end up in
/// the service logs. Panics on every other thread are passed to the previous hook
/// unchanged. Installed once per process; an application that later sets its own hook
/// replaces this filter.
fn install_quiet_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if thread::current().name() == Some(WORKER_NAME) {
                // Location only: file and line of the parser, no message.
                let location = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                tracing::warn!(%location, "panic in document parser (message suppressed)");
            } else {
                previous(info);
            }
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn worker_timeout_and_panic_are_contained() {
        let started = Instant::now();
        let err = run_isolated(DocumentFormat::Pdf, Duration::from_millis(100), || {
            thread::sleep(Duration::from_secs(3));
            Ok(String::new())
        })
        .expect_err("timeout");
        assert_eq!(err, ExtractError::Timeout { seconds: 1 });
        assert!(started.elapsed() < Duration::from_secs(1));

        let err = run_isolated(DocumentFormat::Pdf, Duration::from_secs(5), || {
            panic!("SECRET document text in a panic message")
        })
        .expect_err("panic");
        let ExtractError::Corrupt { format, detail } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*format, DocumentFormat::Pdf);
        assert!(!detail.contains("SECRET"));
        assert!(!err.to_string().contains("SECRET"));
    }
}
