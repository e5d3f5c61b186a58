//! Parsing in a child process (issue 11, finding 5): the server and the CLI re-execute
//! their own binary as `bulkhead __extract` for every html, pdf and docx, so that a
//! decompression bomb, a parser that spins, a stack overflow or an abort costs one short
//! process and never the appliance.
//!
//! The child is confined before it runs any code of ours ([`confine`], between `fork` and
//! `exec`): address space ([`ExtractLimits::parser_memory_bytes`]), CPU seconds, no file
//! writes (`RLIMIT_FSIZE` 0), no core dump (a core file would be the document's text on
//! disk), no new privileges, and it dies with its parent. The parent kills it when the
//! time budget is spent. Its environment is empty and its stderr goes nowhere: parser
//! messages can quote the document.
//!
//! Protocol: the parent writes one JSON line ([`Request`]: the format and the limits)
//! followed by the document's bytes on the child's stdin; the child writes one JSON
//! [`Reply`] on stdout and exits 0. Anything else (a signal, a non-zero exit, a reply
//! that does not parse, the deadline) is a failure of the document, never a retry.
//!
//! What this module must not do: log or return document content, or let the child's
//! output grow the parent's memory beyond the text size limit.

use std::io::{self, BufRead, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{Confinement, DocumentFormat, ExtractError, ExtractLimits};

/// The hidden subcommand that runs a parser (see `cli::args`).
pub const INTERNAL_COMMAND: &str = "__extract";

/// Seconds of grace the parent gives the child beyond the time budget, so that the
/// child's own, more precise timeout report usually arrives before the kill.
const KILL_GRACE: Duration = Duration::from_secs(2);
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// The first line on the child's stdin.
#[derive(serde::Serialize, serde::Deserialize)]
struct Request {
    format: DocumentFormat,
    limits: ExtractLimits,
}

/// The child's one line on stdout.
#[derive(serde::Serialize, serde::Deserialize)]
enum Reply {
    Text(String),
    Failed(ExtractError),
}

/// Parses `input` as `format` in a confined child process running `program`.
pub(super) fn parse_in_child(
    program: &Path,
    format: DocumentFormat,
    input: &[u8],
    limits: &ExtractLimits,
) -> Result<String, ExtractError> {
    let started = Instant::now();
    let request = Request {
        format,
        limits: ExtractLimits {
            confinement: Confinement::Thread,
            ..limits.clone()
        },
    };
    let mut header = serde_json::to_vec(&request).map_err(|error| unavailable(&error))?;
    header.push(b'\n');

    let memory_bytes = limits.parser_memory_bytes;
    let cpu_seconds = limits.timeout.as_secs_f64().ceil() as u64 + 1;
    let mut command = Command::new(program);
    command
        .arg(INTERNAL_COMMAND)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    // SAFETY: `confine` makes only async-signal-safe system calls (setrlimit, prctl) and
    // does not allocate, as required between fork and exec.
    unsafe {
        command.pre_exec(move || confine(memory_bytes, cpu_seconds));
    }
    let mut child = command.spawn().map_err(|error| unavailable(&error))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let stdout = child.stdout.take().expect("stdout is piped");
    // The text can legitimately be as large as a docx may inflate to; the JSON escaping
    // of a few characters gets some slack. Beyond that the pipe is closed on the child.
    let reply_limit = limits.max_decompressed_bytes.saturating_mul(2) + 4096;

    let (status, reply) = thread::scope(|scope| {
        // Both directions run beside the wait, so neither a child that stops reading nor
        // one that writes a lot can block the parent past the deadline.
        scope.spawn(move || {
            // A child that dies early closes the pipe: the write error is expected.
            let _ = stdin
                .write_all(&header)
                .and_then(|()| stdin.write_all(input));
        });
        let reader = scope.spawn(move || {
            let mut reply = Vec::new();
            let read = stdout.take(reply_limit).read_to_end(&mut reply);
            read.map(|_| reply)
        });
        let status = wait_until(&mut child, started + limits.timeout + KILL_GRACE);
        let reply = reader.join().unwrap_or_else(|_| Ok(Vec::new()));
        (status, reply)
    });

    let elapsed_ms = started.elapsed().as_millis() as u64;
    let status = match status {
        Ok(Some(status)) => status,
        Ok(None) => {
            tracing::warn!(
                format = format.as_str(),
                elapsed_ms,
                "document parser killed at its deadline"
            );
            return Err(ExtractError::ParserLimit);
        }
        Err(error) => return Err(unavailable(&error)),
    };
    if let Some(signal) = status.signal() {
        // SIGABRT (allocation refused under RLIMIT_AS), SIGSEGV (stack overflow), SIGXCPU
        // or SIGKILL (RLIMIT_CPU): the document asked for more than it may have.
        tracing::warn!(
            format = format.as_str(),
            signal,
            elapsed_ms,
            "document parser stopped by a signal"
        );
        return Err(ExtractError::ParserLimit);
    }
    let reply = reply.ok().filter(|_| status.success());
    match reply.as_deref().map(serde_json::from_slice::<Reply>) {
        Some(Ok(Reply::Text(text))) => Ok(text),
        Some(Ok(Reply::Failed(error))) => Err(error),
        // Exit 0 with a reply cut at the limit or garbled.
        Some(Err(_)) => Err(ExtractError::ParserLimit),
        None => Err(exited(status)),
    }
}

/// Waits for the child until `deadline`; kills it then and returns `None`.
fn wait_until(child: &mut Child, deadline: Instant) -> io::Result<Option<ExitStatus>> {
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            // Killing a process that has just exited is harmless; the wait reaps it.
            let _ = child.kill();
            child.wait()?;
            return Ok(None);
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// Runs between fork and exec in the child: resource limits and privileges.
fn confine(memory_bytes: u64, cpu_seconds: u64) -> io::Result<()> {
    set_limit(libc::RLIMIT_AS, memory_bytes, memory_bytes)?;
    // SIGXCPU at the soft limit, SIGKILL a second later.
    set_limit(libc::RLIMIT_CPU, cpu_seconds, cpu_seconds + 1)?;
    set_limit(libc::RLIMIT_FSIZE, 0, 0)?;
    set_limit(libc::RLIMIT_CORE, 0, 0)?;
    // SAFETY: prctl with integer arguments only.
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn set_limit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: a valid pointer to a stack value, read only during the call.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn unavailable(error: &dyn std::fmt::Display) -> ExtractError {
    ExtractError::ParserUnavailable {
        detail: error.to_string(),
    }
}

fn exited(status: ExitStatus) -> ExtractError {
    ExtractError::ParserUnavailable {
        detail: format!("the parser process exited with {status} without an answer"),
    }
}

/// The child's side: reads the request and the document on stdin, parses on a worker
/// thread (large stack, panics contained), writes the reply on stdout.
///
/// The limits were set before this binary started ([`confine`]); nothing here trusts the
/// document to be small.
pub fn serve_child() -> io::Result<()> {
    let mut input = io::stdin().lock();
    let mut header = Vec::new();
    input
        .by_ref()
        .take(64 * 1024)
        .read_until(b'\n', &mut header)?;
    let request: Request = serde_json::from_slice(&header)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
    let limits = request.limits;
    let mut document = Vec::new();
    input
        .take(limits.max_file_bytes.saturating_add(1))
        .read_to_end(&mut document)?;
    let reply = if document.len() as u64 > limits.max_file_bytes {
        Reply::Failed(ExtractError::TooLarge {
            bytes: document.len() as u64,
            limit: limits.max_file_bytes,
        })
    } else {
        let format = request.format;
        let timeout = limits.timeout;
        match super::worker::run_isolated(format, timeout, move || {
            super::parse(format, &document, &limits)
        }) {
            Ok(text) => Reply::Text(text),
            Err(error) => Reply::Failed(error),
        }
    };
    let mut stdout = io::stdout().lock();
    serde_json::to_writer(&mut stdout, &reply)
        .map_err(|error| io::Error::new(io::ErrorKind::BrokenPipe, error))?;
    stdout.flush()
}
