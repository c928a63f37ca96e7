//! Running untrusted parsing under a thread, `catch_unwind` and a deadline.
//!
//! Parsers we don't control can panic (pdf-extract on unusual CMaps) or spin on crafted
//! input. A panic on the caller's thread would take a worker down, and a loop would hold it
//! forever, so the work runs on its own thread and the caller waits at most the deadline.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

/// Parsers recurse on nested structures (PDF objects, XML); a roomier stack than the
/// default 2 MiB turns more crafted inputs into errors instead of a process-wide abort.
const STACK_BYTES: usize = 16 * 1024 * 1024;

/// How a guarded run ended.
#[derive(Debug)]
pub(crate) enum Outcome<T> {
    /// The closure returned.
    Done(T),
    /// The closure panicked; the panic message.
    Panicked(String),
    /// The deadline passed first.
    TimedOut,
}

/// Run `work` on a new thread named `name`, waiting at most `timeout` for it.
///
/// On a timeout the thread is abandoned, not killed: Rust has no safe way to stop a
/// thread, so it keeps its CPU and memory until the parser returns by itself (its result is
/// then dropped, since nobody receives it). The time limit bounds how long the caller
/// waits, not what the stray thread costs; size limits upstream bound that.
pub(crate) fn run_guarded<T, F>(
    name: &str,
    timeout: Duration,
    work: F,
) -> std::io::Result<Outcome<T>>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let (sender, receiver) = mpsc::sync_channel(1);
    // Spans don't follow a thread by themselves; re-enter the caller's (STYLE §3).
    let span = tracing::Span::current();
    thread::Builder::new()
        .name(name.to_owned())
        .stack_size(STACK_BYTES)
        .spawn(move || {
            let _entered = span.enter();
            let outcome = panic::catch_unwind(AssertUnwindSafe(work));
            // After a timeout the receiver is gone and the result has nowhere to go.
            let _ = sender.send(outcome);
        })?;
    Ok(match receiver.recv_timeout(timeout) {
        Ok(Ok(value)) => Outcome::Done(value),
        Ok(Err(payload)) => Outcome::Panicked(panic_message(payload.as_ref())),
        Err(RecvTimeoutError::Timeout) => Outcome::TimedOut,
        Err(RecvTimeoutError::Disconnected) => {
            Outcome::Panicked("the worker thread ended without a result".into())
        }
    })
}

/// The text of a panic payload (`panic!` gives a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    #[test]
    fn returns_the_value() {
        let out = run_guarded("t", Duration::from_secs(5), || 41 + 1).unwrap();
        assert!(matches!(out, Outcome::Done(42)));
    }

    #[test]
    fn a_panic_becomes_its_message() {
        let out = run_guarded("t", Duration::from_secs(5), || -> u8 {
            panic!("unsupported encoding X")
        })
        .unwrap();
        match out {
            Outcome::Panicked(message) => assert_eq!(message, "unsupported encoding X"),
            other => panic!("expected a panic, got {other:?}"),
        }
    }

    #[test]
    fn an_overrun_times_out() {
        let out = run_guarded("t", Duration::from_millis(20), || {
            thread::sleep(Duration::from_secs(2))
        })
        .unwrap();
        assert!(matches!(out, Outcome::TimedOut));
    }
}
