//! Enterprise tenants' own processes (issue 12, §3): the main server (`bulkhead serve`)
//! runs each enterprise tenant in use in a `bulkhead` child process of its own and
//! forwards that tenant's requests to it over a Unix socket.
//!
//! - **Lazily**: a child starts on its tenant's first forwarded request, so start-up
//!   still does no per-tenant work. A locked BYOK tenant gets none (423 `tenant_locked`)
//!   until it is unlocked; the main server keeps the customer's identity to give each
//!   child on its stdin (never argv, environment or disk) and drops its own copy of the
//!   data key. `lock`, a tier change and deletion stop the child.
//! - **Forwarding** (`forward`): every route under `/v1/tenants/{t}/…` that touches the
//!   tenant's data, and the OpenAI-compatible routes when the token's tenant is that
//!   tenant, after the gateway's own checks; bodies stream both ways (uploads, SSE).
//! - **One scheduler for the cores**: an ask or chat completion forwarded to a child
//!   holds one of the main server's inference workers (as premium work, `lanes`) until
//!   its answer has streamed out, so a child's generation never runs beside more
//!   generations than the lane allows.
//! - **Supervision** (`supervisor`): a child that exits is restarted with backoff; one
//!   that does not answer the health ping in time is killed and restarted. Meanwhile its
//!   tenant gets 503 `overloaded` with `Retry-After`, and nobody else notices.
//! - **The child** (`child`) serves that one tenant and refuses every other.

mod child;
mod supervisor;

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Uri, header};
use axum::response::Response;
use tokio::sync::watch;
use zeroize::Zeroizing;

use super::{ApiError, AppState};
use crate::ids::TenantId;
use crate::store::Tier;

pub use child::only_own_tenant;

/// The header that carries the client's address from the main server to a child.
pub const PEER_HEADER: &str = "x-bulkhead-peer";
/// The header a child adds to every response: its process id.
pub const PROCESS_HEADER: &str = "x-bulkhead-tenant-process";
/// The hidden `serve` flag that makes a `bulkhead` an enterprise tenant's process.
pub const CHILD_FLAG: &str = "--tenant-process";

/// How the main server runs enterprise tenants' processes.
#[derive(Clone, Debug)]
pub struct ProcessSettings {
    /// The `bulkhead` binary and the arguments the main server was started with (the child
    /// reads the same configuration, and gets [`CHILD_FLAG`] added).
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Where the sockets live: a 0700 directory under the data directory.
    pub socket_dir: PathBuf,
    /// The child's address space (`RLIMIT_AS`), set before it executes.
    pub memory_limit_bytes: u64,
    pub health_interval: Duration,
    pub health_timeout: Duration,
    /// Longest a child may take from spawn to listening.
    pub start_timeout: Duration,
}

/// What one child is doing, as the forwarders see it.
#[derive(Clone, Debug)]
enum Phase {
    Starting,
    Running {
        socket: PathBuf,
    },
    /// Exited, crashed or hung: restarting no earlier than this.
    Down {
        until: Instant,
    },
    Stopped,
}

/// One enterprise tenant's child and the task that supervises it.
struct Slot {
    phase: watch::Sender<Phase>,
    stop: watch::Sender<bool>,
    pid: AtomicU64,
}

/// What the main server writes on a child's stdin: one JSON line.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct ChildSpec {
    pub tenant_id: String,
    pub socket: PathBuf,
    /// A BYOK tenant's customer identity (`AGE-SECRET-KEY-1…`), unlocked by its admin.
    pub customer_identity: Option<String>,
}

/// The enterprise tenants' processes of one main server.
pub struct TenantProcesses {
    settings: ProcessSettings,
    slots: Mutex<HashMap<TenantId, Arc<Slot>>>,
    /// Customer identities of unlocked BYOK tenants, to give their children.
    identities: Mutex<HashMap<TenantId, Zeroizing<String>>>,
    restarts: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl TenantProcesses {
    /// Creates the socket directory (0700) and an empty set of children.
    pub fn new(settings: ProcessSettings) -> std::io::Result<Arc<TenantProcesses>> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&settings.socket_dir)?;
        std::fs::set_permissions(&settings.socket_dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(Arc::new(TenantProcesses {
            settings,
            slots: Mutex::new(HashMap::new()),
            identities: Mutex::new(HashMap::new()),
            restarts: AtomicU64::new(0),
        }))
    }

    /// A BYOK tenant was unlocked here: its identity is kept for its children, and any
    /// child started before (there is none while locked) is replaced.
    pub async fn unlocked(&self, tenant_id: &TenantId, identity: Zeroizing<String>) {
        lock(&self.identities).insert(tenant_id.clone(), identity);
        self.stop(tenant_id).await;
    }

    /// Stops the tenant's child and forgets its customer identity (lock, tier change,
    /// deletion); returns when the child has exited (or after 10 s).
    pub async fn stop_and_forget(&self, tenant_id: &TenantId) {
        lock(&self.identities).remove(tenant_id);
        self.stop(tenant_id).await;
    }

    /// Stops the tenant's child, if it has one; returns when it has exited (or after 10 s).
    pub async fn stop(&self, tenant_id: &TenantId) {
        let Some(slot) = lock(&self.slots).remove(tenant_id) else {
            return;
        };
        slot.stop.send_replace(true);
        let mut phase = slot.phase.subscribe();
        let stopped = phase.wait_for(|phase| matches!(phase, Phase::Stopped));
        let _ = tokio::time::timeout(Duration::from_secs(10), stopped).await;
    }

    /// Whether the tenant (an enterprise one) is to be served by a process of its own: not
    /// while it is a locked BYOK tenant, which has none (this process answers for it, and
    /// its store refuses its data: 423).
    pub fn serves(&self, state: &AppState, tenant_id: &TenantId) -> bool {
        if lock(&self.identities).contains_key(tenant_id) {
            return true;
        }
        !matches!(state.appliance.customer_recipient(tenant_id), Ok(Some(_)))
    }

    /// The Prometheus lines: children running, restarts.
    pub fn render_metrics(&self) -> String {
        let running = lock(&self.slots)
            .values()
            .filter(|slot| matches!(*slot.phase.borrow(), Phase::Running { .. }))
            .count();
        format!(
            "# HELP bulkhead_tenant_processes_running Enterprise tenants' own processes serving now.\n\
             # TYPE bulkhead_tenant_processes_running gauge\n\
             bulkhead_tenant_processes_running {running}\n\
             # HELP bulkhead_tenant_process_restarts_total Enterprise tenants' processes restarted after an exit, crash or hang.\n\
             # TYPE bulkhead_tenant_process_restarts_total counter\n\
             bulkhead_tenant_process_restarts_total {}\n",
            self.restarts.load(Ordering::Relaxed)
        )
    }

    /// The tenant's slot, starting its child when it has none. A locked BYOK tenant gets
    /// none: 423.
    fn slot(
        self: &Arc<Self>,
        state: &AppState,
        tenant_id: &TenantId,
    ) -> Result<Arc<Slot>, ApiError> {
        if let Some(slot) = lock(&self.slots).get(tenant_id) {
            return Ok(slot.clone());
        }
        let identity = lock(&self.identities).get(tenant_id).cloned();
        if identity.is_none() && state.appliance.customer_recipient(tenant_id)?.is_some() {
            return Err(ApiError::TenantLocked);
        }
        let mut slots = lock(&self.slots);
        if let Some(slot) = slots.get(tenant_id) {
            return Ok(slot.clone());
        }
        // From now on only the child holds this tenant's index and data key.
        state.appliance.release_tenant(tenant_id);
        let slot = Arc::new(Slot {
            phase: watch::channel(Phase::Starting).0,
            stop: watch::channel(false).0,
            pid: AtomicU64::new(0),
        });
        slots.insert(tenant_id.clone(), slot.clone());
        tokio::spawn(supervisor::supervise(
            self.clone(),
            slot.clone(),
            tenant_id.clone(),
            identity,
        ));
        Ok(slot)
    }

    /// The running child's socket, waiting while it starts; 503 while it is down.
    async fn socket(&self, slot: &Slot) -> Result<PathBuf, ApiError> {
        let mut phase = slot.phase.subscribe();
        let ready = tokio::time::timeout(
            self.settings.start_timeout,
            phase.wait_for(|phase| !matches!(phase, Phase::Starting)),
        )
        .await;
        let phase = match ready {
            Ok(Ok(phase)) => phase.clone(),
            _ => Phase::Starting,
        };
        match phase {
            Phase::Running { socket } => Ok(socket),
            Phase::Down { until } => Err(ApiError::Overloaded {
                retry_after_seconds: until
                    .saturating_duration_since(Instant::now())
                    .as_secs()
                    .clamp(1, 30),
            }),
            Phase::Starting | Phase::Stopped => Err(ApiError::Overloaded {
                retry_after_seconds: 2,
            }),
        }
    }
}

/// Forwards a request for an enterprise tenant to its process (starting it if needed)
/// and streams the answer back. Anything that goes wrong on the way is that tenant's
/// 503 `overloaded` with `Retry-After`, never a 500 and never another process's answer.
pub async fn forward(
    state: &AppState,
    processes: &Arc<TenantProcesses>,
    tenant_id: &TenantId,
    peer: Option<IpAddr>,
    request: Request,
) -> Result<Response, ApiError> {
    let slot = processes.slot(state, tenant_id)?;
    let socket = processes.socket(&slot).await?;
    // An answer generated in the tenant's process still takes one of this server's
    // inference workers until its last byte has left (scheduled as premium, `lanes`), so
    // one scheduler shares the cores between every tier's generations.
    let worker = if generates(&request) {
        let mut admission = state
            .inference
            .admit(tenant_id.as_str(), Tier::Enterprise)?;
        tokio::time::timeout(state.limits.request_timeout, admission.worker())
            .await
            .unwrap_or(Err(ApiError::Overloaded {
                retry_after_seconds: 5,
            }))?;
        Some(admission)
    } else {
        None
    };
    let (mut parts, body) = request.into_parts();
    parts.uri = parts
        .uri
        .path_and_query()
        .map(|path| Uri::from(path.clone()))
        .unwrap_or_else(|| Uri::from_static("/"));
    parts.version = axum::http::Version::HTTP_11;
    parts.headers.remove(PEER_HEADER);
    if let Some(peer) = peer.and_then(|peer| HeaderValue::from_str(&peer.to_string()).ok()) {
        parts.headers.insert(PEER_HEADER, peer);
    }
    if !parts.headers.contains_key(header::HOST) {
        parts
            .headers
            .insert(header::HOST, HeaderValue::from_static("localhost"));
    }
    let response = supervisor::send(&socket, Request::from_parts(parts, body))
        .await
        .map_err(|error| {
            tracing::warn!(tenant = %tenant_id, %error, "tenant process did not answer");
            ApiError::Overloaded {
                retry_after_seconds: 2,
            }
        })?;
    Ok(response.map(|body| {
        Body::new(http_body_util::BodyExt::map_frame(body, move |frame| {
            let _held = &worker;
            frame
        }))
    }))
}

/// Whether the request asks for a generated answer (an ask, a chat completion).
fn generates(request: &Request) -> bool {
    let path = request.uri().path();
    request.method() == axum::http::Method::POST
        && (path.ends_with("/ask") || path == "/v1/chat/completions")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, path: &str) -> Request {
        Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap()
    }

    #[test]
    fn asks_and_chat_completions_take_an_inference_worker_of_the_main_server() {
        assert!(generates(&request("POST", "/v1/tenants/t_1/ask")));
        assert!(generates(&request("POST", "/v1/chat/completions")));
        assert!(!generates(&request("POST", "/v1/tenants/t_1/search")));
        assert!(!generates(&request("GET", "/v1/models")));
        assert!(!generates(&request("POST", "/v1/tenants/t_1/documents")));
    }
}
