//! Running an external program (tesseract, pdftoppm) under a deadline and a memory cap.
//!
//! OCR and page rendering run as child processes rather than linked libraries so that a
//! crash, an abort or a runaway allocation in native code (leptonica, poppler, tesseract)
//! ends that child, not the server; and a child, unlike a thread, can be killed when it
//! overruns, so a time limit really frees the CPU and memory it held.

use std::fs::File;
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How often a running child is checked on: short next to a page's OCR (seconds), long
/// enough that waiting costs nothing.
const POLL: Duration = Duration::from_millis(10);

/// How a child run ended, when it did not end normally.
#[derive(Debug)]
pub(crate) enum ChildError {
    /// The program is not installed (not found on `PATH`).
    NotFound,
    /// The deadline passed; the child was killed.
    TimedOut,
    /// The child exited unsuccessfully; its status and the end of its stderr.
    Failed {
        /// Exit status (a signal when killed, e.g. after hitting the memory cap).
        status: ExitStatus,
        /// The last part of what it wrote to stderr.
        stderr: String,
    },
    /// Starting or waiting for the child failed.
    Io(io::Error),
}

impl ChildError {
    /// A one-line description for error messages and logs (the end of stderr only).
    pub(crate) fn describe(&self, program: &str, max_memory_bytes: u64) -> String {
        let last = |stderr: &str| {
            let skip = stderr.chars().count().saturating_sub(300);
            stderr.chars().skip(skip).collect::<String>()
        };
        match self {
            ChildError::NotFound => format!("{program} is not installed"),
            ChildError::TimedOut => format!("{program} ran past its time limit"),
            ChildError::Failed { status, stderr } => match status.signal() {
                // Over RLIMIT_AS, allocations fail; C++ code then aborts or crashes.
                Some(signal) if max_memory_bytes > 0 => format!(
                    "{program} was killed by signal {signal} (over the {} MiB memory cap?): {}",
                    max_memory_bytes / (1024 * 1024),
                    last(stderr)
                ),
                Some(signal) => {
                    format!("{program} was killed by signal {signal}: {}", last(stderr))
                }
                None if max_memory_bytes > 0 => format!(
                    "{program} failed ({status}, under a {} MiB memory cap): {}",
                    max_memory_bytes / (1024 * 1024),
                    last(stderr)
                ),
                None => format!("{program} failed ({status}): {}", last(stderr)),
            },
            ChildError::Io(e) => format!("{program}: {e}"),
        }
    }
}

/// Run `command` with stdout written to `stdout_to`, killing it at `deadline`, with its
/// address space capped at `max_memory_bytes` (0: no cap). On success, the end of what it
/// wrote to stderr (warnings, such as a language tesseract could not load).
pub(crate) fn run(
    mut command: Command,
    stdout_to: &Path,
    deadline: Instant,
    max_memory_bytes: u64,
) -> Result<String, ChildError> {
    let stdout = File::create(stdout_to).map_err(ChildError::Io)?;
    let stderr_path = stdout_to.with_extension("stderr");
    let stderr = File::create(&stderr_path).map_err(ChildError::Io)?;
    command.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
    if max_memory_bytes > 0 {
        let limit = libc::rlimit {
            rlim_cur: max_memory_bytes,
            rlim_max: max_memory_bytes,
        };
        // SAFETY: the closure runs in the forked child before exec, where only
        // async-signal-safe calls are allowed; setrlimit is a plain system call on a value
        // copied into the closure, with no allocation or locking.
        unsafe {
            command.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_AS, &limit) == 0 {
                    Ok(())
                } else {
                    Err(io::Error::last_os_error())
                }
            });
        }
    }
    let mut child = command.spawn().map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ChildError::NotFound,
        _ => ChildError::Io(e),
    })?;
    let status = loop {
        match child.try_wait().map_err(ChildError::Io)? {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                // Kill and reap, so no zombie is left; an error here means it just exited.
                let _ = child.kill();
                let _ = child.wait();
                return Err(ChildError::TimedOut);
            }
            None => thread::sleep(POLL),
        }
    };
    let stderr = stderr_tail(&stderr_path);
    if status.success() {
        Ok(stderr)
    } else {
        Err(ChildError::Failed { status, stderr })
    }
}

/// The last 4 KiB of a stderr file, on one line: enough to hold tesseract's "Failed
/// loading language" among its other notes.
fn stderr_tail(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    let tail = bytes
        .get(bytes.len().saturating_sub(4096)..)
        .unwrap_or_default();
    String::from_utf8_lossy(tail).trim().replace('\n', " | ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn output_goes_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.txt");
        let far = Instant::now() + Duration::from_secs(10);
        run(sh("echo 你好"), &out, far, 0).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "你好\n");
    }

    #[test]
    fn an_overrun_is_killed_in_time() {
        let dir = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let result = run(
            sh("sleep 30"),
            &dir.path().join("o"),
            started + Duration::from_millis(200),
            0,
        );
        assert!(matches!(result, Err(ChildError::TimedOut)), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_missing_program_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let far = Instant::now() + Duration::from_secs(10);
        let result = run(
            Command::new("zhiku-no-such-program"),
            &dir.path().join("o"),
            far,
            0,
        );
        assert!(matches!(result, Err(ChildError::NotFound)), "{result:?}");
    }

    #[test]
    fn the_memory_cap_stops_a_big_allocation() {
        let dir = tempfile::tempdir().unwrap();
        let far = Instant::now() + Duration::from_secs(30);
        // python3 is part of the set-up; 512 MiB of bytes under a 256 MiB cap must fail.
        let mut big = Command::new("python3");
        big.args(["-c", "b = bytearray(512 * 1024 * 1024)"]);
        let result = run(big, &dir.path().join("o"), far, 256 * 1024 * 1024);
        match result {
            Err(ChildError::Failed { stderr, .. }) => {
                assert!(stderr.contains("MemoryError"), "{stderr}")
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        let failing = run(sh("echo oops >&2; exit 3"), &dir.path().join("p"), far, 0);
        match failing {
            Err(e @ ChildError::Failed { .. }) => {
                assert!(e.describe("sh", 0).contains("oops"), "{e:?}")
            }
            other => panic!("expected a failure, got {other:?}"),
        }
    }
}
