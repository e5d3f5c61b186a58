//! Starting, watching and restarting one enterprise tenant's process.
//!
//! The child is this very binary, run with the main server's own arguments and
//! [`super::CHILD_FLAG`]. Between fork and exec it gets its address-space limit
//! (`RLIMIT_AS`) and no core dumps (a core file would be tenant data on disk). Its stdin
//! carries one JSON line ([`super::ChildSpec`]: the tenant, the socket, a BYOK tenant's
//! customer identity) and then stays open: the child exits when it closes, so a main
//! server that dies takes its children with it. The child answers `ready` on stdout once
//! its socket listens.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use zeroize::Zeroizing;

use super::{ChildSpec, Phase, Slot, TenantProcesses};
use crate::ids::TenantId;

const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A child that served this long before it ended restarts without waiting.
const STABLE_RUN: Duration = Duration::from_secs(60);

/// How a running child ended.
enum End {
    Stopped,
    Exited(String),
    Hung,
}

/// Runs the tenant's child until the slot is stopped, restarting it when it exits,
/// crashes or hangs.
pub(super) async fn supervise(
    processes: Arc<TenantProcesses>,
    slot: Arc<Slot>,
    tenant_id: TenantId,
    identity: Option<Zeroizing<String>>,
) {
    let mut stop = slot.stop.subscribe();
    let mut backoff = FIRST_BACKOFF;
    let socket = processes
        .settings
        .socket_dir
        .join(format!("{tenant_id}.sock"));
    while !*stop.borrow() {
        slot.phase.send_replace(Phase::Starting);
        let started = Instant::now();
        match start(&processes, &tenant_id, &socket, identity.as_ref()).await {
            Ok((mut child, stdin)) => {
                let pid = child.id().unwrap_or(0);
                slot.pid.store(u64::from(pid), Ordering::Relaxed);
                tracing::info!(tenant = %tenant_id, pid, "tenant process serving");
                slot.phase.send_replace(Phase::Running {
                    socket: socket.clone(),
                });
                let end = watch(&processes, &mut child, &socket, &mut stop).await;
                let _ = child.start_kill();
                let _ = child.wait().await;
                drop(stdin);
                match end {
                    End::Stopped => break,
                    End::Exited(status) => {
                        tracing::error!(tenant = %tenant_id, pid, %status, "tenant process exited; restarting");
                    }
                    End::Hung => {
                        tracing::error!(tenant = %tenant_id, pid, "tenant process did not answer its health check; killed, restarting");
                    }
                }
            }
            Err(error) => {
                tracing::error!(tenant = %tenant_id, %error, "tenant process failed to start");
            }
        }
        if *stop.borrow() {
            break;
        }
        processes.restarts.fetch_add(1, Ordering::Relaxed);
        if started.elapsed() >= STABLE_RUN {
            backoff = FIRST_BACKOFF;
        }
        slot.phase.send_replace(Phase::Down {
            until: Instant::now() + backoff,
        });
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    let _ = std::fs::remove_file(&socket);
    slot.phase.send_replace(Phase::Stopped);
}

/// Spawns the child under its limits, hands it its spec and waits for `ready`.
async fn start(
    processes: &TenantProcesses,
    tenant_id: &TenantId,
    socket: &Path,
    identity: Option<&Zeroizing<String>>,
) -> std::io::Result<(Child, ChildStdin)> {
    let settings = &processes.settings;
    let _ = std::fs::remove_file(socket);
    let mut command = tokio::process::Command::new(&settings.program);
    command
        .args(&settings.args)
        .arg(super::CHILD_FLAG)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    let memory = settings.memory_limit_bytes;
    // SAFETY: `confine` makes only async-signal-safe system calls (setrlimit) and does
    // not allocate, as required between fork and exec.
    unsafe {
        command.pre_exec(move || confine(memory));
    }
    let mut child = command.spawn()?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let stdout = child.stdout.take().expect("stdout is piped");
    let spec = ChildSpec {
        tenant_id: tenant_id.to_string(),
        socket: socket.to_owned(),
        customer_identity: identity.map(|identity| identity.to_string()),
    };
    let mut line = Zeroizing::new(serde_json::to_vec(&spec).map_err(std::io::Error::other)?);
    drop(spec.customer_identity.map(Zeroizing::new));
    line.push(b'\n');
    let handshake = async {
        stdin.write_all(&line).await?;
        stdin.flush().await?;
        let mut lines = BufReader::new(stdout).lines();
        match lines.next_line().await? {
            Some(ready) if ready.trim() == "ready" => {}
            other => {
                return Err(std::io::Error::other(format!(
                    "the tenant process said {other:?} instead of ready"
                )));
            }
        }
        // Whatever it prints later is drained, so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(())
    };
    match tokio::time::timeout(settings.start_timeout, handshake).await {
        Ok(Ok(())) => Ok((child, stdin)),
        Ok(Err(error)) => {
            let _ = child.start_kill();
            Err(error)
        }
        Err(_) => {
            let _ = child.start_kill();
            Err(std::io::Error::other(
                "the tenant process did not start in time",
            ))
        }
    }
}

/// Watches a running child: its exit, the stop signal, and the health ping.
async fn watch(
    processes: &TenantProcesses,
    child: &mut Child,
    socket: &Path,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> End {
    let settings = &processes.settings;
    loop {
        tokio::select! {
            status = child.wait() => {
                return End::Exited(status.map_or_else(|error| error.to_string(), |status| status.to_string()));
            }
            _ = stop.changed() => return End::Stopped,
            () = tokio::time::sleep(settings.health_interval) => {
                if !healthy(socket, settings.health_timeout).await {
                    return End::Hung;
                }
            }
        }
    }
}

/// Whether the child answers `GET /healthz` within `timeout`.
async fn healthy(socket: &Path, timeout: Duration) -> bool {
    let ping = Request::get("/healthz")
        .header(axum::http::header::HOST, "localhost")
        .body(Body::empty())
        .expect("a static request");
    matches!(
        tokio::time::timeout(timeout, send(socket, ping)).await,
        Ok(Ok(response)) if response.status().is_success()
    )
}

/// Sends one request over a new connection to the child's socket.
pub(super) async fn send(
    socket: &Path,
    request: Request,
) -> Result<axum::http::Response<Incoming>, String> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|error| format!("connect: {error}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| format!("handshake: {error}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender
        .send_request(request)
        .await
        .map_err(|error| format!("request: {error}"))
}

/// Between fork and exec: the address-space limit, and no core file.
fn confine(memory_bytes: u64) -> std::io::Result<()> {
    for (resource, value) in [(libc::RLIMIT_AS, memory_bytes), (libc::RLIMIT_CORE, 0)] {
        let limit = libc::rlimit {
            rlim_cur: value as libc::rlim_t,
            rlim_max: value as libc::rlim_t,
        };
        // SAFETY: a valid pointer to a stack value, read only during the call.
        if unsafe { libc::setrlimit(resource, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
