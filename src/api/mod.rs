//! The HTTP API of API.md: a thin edge that parses and checks requests, mints the
//! [`TenantScope`] from a verified token, and calls the same [`Appliance`] as the CLI.
//!
//! Invariants: every tenant route's handler takes a [`Tenant<P>`] extractor, so the
//! permission is part of its type; a path naming another tenant is 403 `tenant_mismatch`
//! before anything is looked up; every error leaves in the [`ApiError`] shape; CPU-heavy
//! work runs on blocking threads behind a bounded pool (503 `overloaded` when full).
//! One `router()` per resource: `tenants`, `documents`, `query`, `audit`, `openai`, `ops`,
//! `web` (the browser app at `/`) and `sign_in` (its identity providers).

mod audit;
mod customer_key;
mod documents;
pub mod error;
mod failures;
mod gateway;
mod lanes;
pub mod metrics;
mod openai;
mod ops;
mod private_model;
pub mod processes;
mod query;
mod sign_in;
mod tenants;
mod web;

use std::collections::HashMap;
use std::marker::PhantomData;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::appliance::Appliance;
use crate::audit::{AuditEvent, Outcome};
use crate::auth::tokens::{Principal, Role, Signer, TokenError, Verifier};
use crate::auth::{self, AccessError, TenantScope};
use crate::store::Tier;
pub use error::ApiError;
pub use failures::FailureLimits;
use failures::{Admission, Budget, FailureLimiter};
use lanes::{Lane, LaneSize};
pub use sign_in::{SignIn, SignInProvider};

/// Limits of the HTTP edge.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Inference requests (search, ask) running at once.
    pub inference_workers: usize,
    /// Inference requests waiting for a worker; beyond this, 503 `overloaded`.
    pub inference_queue: usize,
    /// Of `inference_workers`, those reserved for premium tenants (at most all but one);
    /// standard work borrows them while idle (see `lanes`).
    pub premium_workers: usize,
    /// Premium requests waiting for a reserved worker; beyond this, premium queues as a
    /// standard tenant.
    pub premium_queue: usize,
    /// The most inference requests one standard tenant may have waiting or running; 0: the
    /// lane's places divided by the tenants using it.
    pub tenant_inference_share: usize,
    /// Requests per minute per tenant; 0 = unlimited.
    pub tenant_requests_per_minute: u32,
    /// Premium (and enterprise) tenants' rate limit, as a multiple of the standard one.
    pub premium_rate_multiplier: u32,
    /// Longest an ask or search may take.
    pub request_timeout: Duration,
    /// Uploads being received at once (each is held in memory up to the file size limit);
    /// beyond this, 503 `overloaded` with `Retry-After`.
    pub max_concurrent_uploads: usize,
    /// Failed requests audited one by one per source and per target tenant (see
    /// `failures`).
    pub failures: FailureLimits,
    /// Longest a client may take to send a request's headers (and the TLS handshake).
    pub header_read_timeout: Duration,
    /// A connection with nothing read or written for this long is closed; a request
    /// body that sends nothing for this long fails.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            inference_workers: 2,
            inference_queue: 8,
            premium_workers: 1,
            premium_queue: 4,
            tenant_inference_share: 0,
            tenant_requests_per_minute: 600,
            premium_rate_multiplier: 4,
            request_timeout: Duration::from_secs(120),
            max_concurrent_uploads: 4,
            failures: FailureLimits::default(),
            header_read_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub appliance: Arc<Appliance>,
    pub signer: Arc<Signer>,
    pub verifier: Arc<Verifier>,
    pub limits: Limits,
    pub metrics: Arc<metrics::Metrics>,
    /// Wakes the background indexer after an upload.
    pub indexer: Arc<Notify>,
    /// The identity providers the web app signs in with, and its page policy.
    pub sign_in: Arc<SignIn>,
    inference: Arc<Lane>,
    // Searches are short (one embedding, two index lookups): their own lane, so they
    // do not queue behind answers that take seconds.
    search: Arc<Lane>,
    rate: Arc<Mutex<HashMap<String, Bucket>>>,
    failures: Arc<FailureLimiter>,
    uploads: Arc<Semaphore>,
    /// The main server's enterprise tenants' processes (issue 12), when it runs them.
    processes: Option<Arc<processes::TenantProcesses>>,
    /// In an enterprise tenant's own process: that tenant, the only one it serves.
    tenant_process: Option<crate::ids::TenantId>,
}

impl AppState {
    pub fn new(
        appliance: Arc<Appliance>,
        signer: Signer,
        verifier: Verifier,
        limits: Limits,
    ) -> AppState {
        AppState {
            appliance,
            signer: Arc::new(signer),
            verifier: Arc::new(verifier),
            inference: Lane::new(LaneSize {
                workers: limits.inference_workers,
                reserved: limits.premium_workers,
                queue: limits.inference_queue,
                premium_queue: limits.premium_queue,
                tenant_share: limits.tenant_inference_share,
            }),
            search: Lane::new(LaneSize {
                workers: limits.inference_workers,
                reserved: limits.premium_workers,
                queue: 4 * (limits.inference_workers + limits.inference_queue).max(1)
                    - limits.inference_workers,
                premium_queue: 4 * limits.premium_queue,
                tenant_share: 4 * limits.tenant_inference_share,
            }),
            failures: Arc::new(FailureLimiter::new(limits.failures)),
            uploads: Arc::new(Semaphore::new(limits.max_concurrent_uploads.max(1))),
            limits,
            metrics: Arc::new(metrics::Metrics::default()),
            indexer: Arc::new(Notify::new()),
            rate: Arc::new(Mutex::new(HashMap::new())),
            processes: None,
            tenant_process: None,
            sign_in: Arc::new(SignIn::default()),
        }
    }

    /// The main server: enterprise tenants run in processes of their own (issue 12).
    pub fn with_tenant_processes(mut self, processes: Arc<processes::TenantProcesses>) -> AppState {
        self.processes = Some(processes);
        self
    }

    /// An enterprise tenant's own process: it serves `tenant_id` only.
    pub fn serving_only(mut self, tenant_id: crate::ids::TenantId) -> AppState {
        self.tenant_process = Some(tenant_id);
        self
    }

    /// The web app's sign-in providers (`serve`'s `[[identity_provider]]` tables with
    /// sign-in settings).
    pub fn with_sign_in(mut self, sign_in: SignIn) -> AppState {
        self.sign_in = Arc::new(sign_in);
        self
    }

    /// Runs CPU-heavy work on a blocking thread, within the bounded inference lane (fair
    /// between tenants, premium's reserved workers first: `lanes`) and the request
    /// timeout. A full lane answers 503, a tenant over its share 429, at once.
    pub async fn run_inference<T: Send + 'static>(
        &self,
        tenant: &TenantScope,
        tier: Tier,
        work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.run_in_lane(&self.inference, tenant, tier, work).await
    }

    /// Like [`AppState::run_inference`], in the search lane.
    pub async fn run_search<T: Send + 'static>(
        &self,
        tenant: &TenantScope,
        tier: Tier,
        work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.run_in_lane(&self.search, tenant, tier, work).await
    }

    async fn run_in_lane<T: Send + 'static>(
        &self,
        lane: &Arc<Lane>,
        tenant: &TenantScope,
        tier: Tier,
        work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let mut admission = lane
            .admit(tenant.tenant_id().as_str(), tier)
            .inspect_err(|error| {
                if matches!(error, ApiError::Overloaded { .. }) {
                    self.metrics.overloaded();
                }
            })?;
        let run = async move {
            admission.worker().await?;
            let pause = admission.pause_point();
            // The admission moves to the blocking thread: the worker stays taken until the
            // work has really ended, even when the request timed out before.
            tokio::task::spawn_blocking(move || {
                let _admission = admission;
                match pause {
                    Some(pause) => crate::llm::with_pause_point(pause, work),
                    None => work(),
                }
            })
            .await
            .map_err(|_| ApiError::Internal)?
        };
        tokio::time::timeout(self.limits.request_timeout, run)
            .await
            .unwrap_or(Err(ApiError::Overloaded {
                retry_after_seconds: 5,
            }))
    }

    /// Runs blocking store work (not inference) off the async threads.
    pub async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| ApiError::Internal)?
    }

    /// Appends an audit event. The write is a durable SQLite commit (an fsync), so it is
    /// done as blocking work, never on an async thread's time.
    pub fn audit(&self, event: AuditEvent) {
        let append = || {
            if let Err(error) = self.appliance.audit(&event) {
                tracing::error!(%error, "audit append failed");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(append)
            }
            _ => append(),
        }
    }

    /// Audits a failed request within `budget` (see `failures`): an entry of its own while
    /// the budget has room, else counted into the window's summary entry. Returns the
    /// seconds until the budget's window ends when the failure was counted, not written.
    fn audit_failure(&self, budget: &Budget, event: AuditEvent) -> Option<u64> {
        match self.failures.admit(budget) {
            Admission::Record => {
                self.audit(event);
                None
            }
            Admission::Coalesce {
                retry_after_seconds,
            } => {
                self.failures.coalesce(&event);
                Some(retry_after_seconds)
            }
        }
    }

    /// The error for a failure of `source`: `error` itself, or 429 once the source is over
    /// its failure budget.
    fn failure_response(&self, source: &Budget, event: AuditEvent, error: ApiError) -> ApiError {
        match self.audit_failure(source, event) {
            None => error,
            Some(retry_after_seconds) => ApiError::TooManyFailures {
                retry_after_seconds,
            },
        }
    }

    /// Writes the summary entries of failure windows that have closed (all of them when
    /// `all`, at shutdown). Blocking: the server calls it from a blocking thread.
    pub fn flush_failure_summaries(&self, all: bool) {
        for event in self.failures.due_summaries(all) {
            if let Err(error) = self.appliance.audit(&event) {
                tracing::error!(%error, "audit append failed");
            }
        }
    }

    /// How often the server should call [`AppState::flush_failure_summaries`].
    pub fn failure_flush_interval(&self) -> Duration {
        (self.failures.window() / 4).clamp(Duration::from_millis(250), Duration::from_secs(5))
    }

    /// A place among the uploads being received; 503 `overloaded` when all are taken.
    fn upload_permit(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        self.uploads.clone().try_acquire_owned().map_err(|_| {
            self.metrics.upload_refused();
            ApiError::Overloaded {
                retry_after_seconds: 2,
            }
        })
    }

    /// Token bucket per tenant: `tenant_requests_per_minute` a minute (premium and
    /// enterprise: `premium_rate_multiplier` times that), bursts up to that.
    fn check_rate(&self, tenant: &str, tier: Tier) -> Result<(), ApiError> {
        let per_minute = match tier {
            Tier::Standard => self.limits.tenant_requests_per_minute,
            Tier::Premium | Tier::Enterprise => self
                .limits
                .tenant_requests_per_minute
                .saturating_mul(self.limits.premium_rate_multiplier.max(1)),
        };
        if per_minute == 0 {
            return Ok(());
        }
        let mut buckets = self
            .rate
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = Instant::now();
        let bucket = buckets.entry(tenant.to_owned()).or_insert(Bucket {
            tokens: per_minute as f64,
            per_minute,
            updated: now,
        });
        if bucket.per_minute != per_minute {
            // The tier changed: the burst grows (or shrinks) by the difference at once.
            bucket.tokens += per_minute as f64 - bucket.per_minute as f64;
            bucket.tokens = bucket.tokens.max(0.0);
            bucket.per_minute = per_minute;
        }
        let refill = now.duration_since(bucket.updated).as_secs_f64() * per_minute as f64 / 60.0;
        bucket.tokens = (bucket.tokens + refill).min(per_minute as f64);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = ((1.0 - bucket.tokens) * 60.0 / per_minute as f64).ceil() as u64;
            Err(ApiError::RateLimited {
                retry_after_seconds: wait.max(1),
            })
        }
    }
}

struct Bucket {
    tokens: f64,
    /// The rate the bucket was filled at (it follows the tenant's tier).
    per_minute: u32,
    updated: Instant,
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(ops::router())
        .merge(tenants::router())
        .merge(customer_key::router())
        .merge(private_model::router())
        .merge(documents::router())
        .merge(query::router())
        .merge(audit::router())
        .merge(openai::router())
        .merge(web::router())
        .merge(sign_in::router())
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            gateway::guard,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            processes::only_own_tenant,
        ))
        .with_state(state)
}

// ---- authentication extractors -----------------------------------------------------------

/// A caller with a verified token (any role).
pub struct Caller(pub Principal);

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// The peer address of a request (set per connection by `server`), if known.
fn peer(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip())
}

/// Verifies the request's bearer token and that it has not been revoked; a rejected token
/// is audited (within the source's failure budget: 429 beyond it). Both the gateway and
/// the [`Tenant`] extractor call this, each on its own.
fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    path: &str,
) -> Result<Principal, ApiError> {
    let token = bearer(headers).ok_or(ApiError::Unauthenticated)?;
    let source = Budget::source(peer);
    let rejected = |reason: &dyn std::fmt::Display| {
        tracing::info!(%reason, "token rejected");
        let event = AuditEvent {
            tenant_id: None,
            actor: "anonymous".into(),
            action: "token.rejected",
            resource: path.chars().take(200).collect(),
            outcome: Outcome::Denied,
        };
        state.failure_response(&source, event, ApiError::Unauthenticated)
    };
    let principal = state.verifier.verify(token).map_err(|error| match error {
        TokenError::IssuerNotBound { ref tenant, .. } => {
            audit_unbound_issuer(state, &source, &error, tenant.as_ref(), path)
        }
        error => rejected(&error),
    })?;
    if state.appliance.token_revoked(&principal) {
        return Err(rejected(&"token revoked"));
    }
    Ok(principal)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        authenticate(
            state,
            &parts.headers,
            peer(&parts.extensions),
            parts.uri.path(),
        )
        .map(Caller)
    }
}

/// The caller of a tenant route. The application scope verifies the token itself rather
/// than trusting the gateway's check; only an ablation test build with this layer off
/// takes the token's claims unverified.
fn tenant_caller(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
    if crate::isolation::enabled(crate::isolation::Layer::Scope) {
        return authenticate(
            state,
            &parts.headers,
            peer(&parts.extensions),
            parts.uri.path(),
        );
    }
    #[cfg(feature = "ablation")]
    {
        bearer(&parts.headers)
            .and_then(Verifier::claims_unverified)
            .ok_or(ApiError::Unauthenticated)
    }
    #[cfg(not(feature = "ablation"))]
    {
        Err(ApiError::Unauthenticated)
    }
}

/// What a route requires of the caller's roles.
pub trait Permission: Send + Sync + 'static {
    const ROLES: &'static [Role];
}

/// Search, ask, list and read documents.
pub struct ReadDocuments;
impl Permission for ReadDocuments {
    const ROLES: &'static [Role] = &[Role::Reader, Role::Editor, Role::Admin];
}

/// Upload and delete documents.
pub struct WriteDocuments;
impl Permission for WriteDocuments {
    const ROLES: &'static [Role] = &[Role::Editor, Role::Admin];
}

/// Tenant administration: tokens (minting, revoking), export, usage.
pub struct AdministerTenant;
impl Permission for AdministerTenant {
    const ROLES: &'static [Role] = &[Role::Admin];
}

/// The audit log and access reviews.
pub struct ReadAudit;
impl Permission for ReadAudit {
    const ROLES: &'static [Role] = &[Role::Auditor, Role::Admin];
}

/// A caller allowed `P` on the tenant named in the path: the only way a handler gets a
/// [`TenantScope`].
pub struct Tenant<P: Permission> {
    pub scope: TenantScope,
    /// The tenant's tier as stored when the request was admitted.
    pub tier: Tier,
    pub principal: Principal,
    _permission: PhantomData<P>,
}

impl<P: Permission> FromRequestParts<AppState> for Tenant<P> {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Tenant<P>, ApiError> {
        let principal = tenant_caller(parts, state)?;
        let requested = RawPathParams::from_request_parts(parts, state)
            .await
            .ok()
            .and_then(|params| {
                params
                    .iter()
                    .find(|(name, _)| *name == "t")
                    .map(|(_, value)| value.to_owned())
            })
            .ok_or(ApiError::Internal)?;
        Tenant::admit(parts, state, principal, &requested)
    }
}

impl<P: Permission> Tenant<P> {
    /// The caller of a route without a tenant in its path (the OpenAI-compatible ones):
    /// the tenant is the token's own, never one the request names. A token without a
    /// tenant (a platform administrator's) is 403.
    pub fn of_token(parts: &Parts, state: &AppState) -> Result<Tenant<P>, ApiError> {
        let principal = tenant_caller(parts, state)?;
        let own = principal
            .tenant_id
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        Tenant::admit(parts, state, principal, &own)
    }

    /// Checks `principal` may do `P` on `requested` and mints the scope (audited when not).
    fn admit(
        parts: &Parts,
        state: &AppState,
        principal: Principal,
        requested: &str,
    ) -> Result<Tenant<P>, ApiError> {
        match auth::scope_for(&principal, requested, P::ROLES) {
            Ok(scope) => {
                // A token of a deleted tenant is no longer a credential. The record read
                // here is also the tier's one source: a tier change (any process) takes
                // effect on the next request, with nothing cached to invalidate.
                let Ok(record) = state.appliance.find_tenant(scope.tenant_id()) else {
                    return Err(ApiError::Unauthenticated);
                };
                state.check_rate(scope.tenant_id().as_str(), record.tier)?;
                Ok(Tenant {
                    scope,
                    tier: record.tier,
                    principal,
                    _permission: PhantomData,
                })
            }
            Err(AccessError::TenantMismatch) => Err(audit_mismatch(
                state,
                &principal,
                requested,
                peer(&parts.extensions),
                parts.uri.path(),
            )),
            Err(AccessError::Forbidden) => {
                let event = AuditEvent {
                    tenant_id: principal.tenant_id.as_ref().map(ToString::to_string),
                    actor: state
                        .appliance
                        .pseudonym(principal.tenant_id.as_ref(), &principal.subject),
                    action: "access.forbidden",
                    resource: route_of(parts),
                    outcome: Outcome::Denied,
                };
                let source = Budget::source(peer(&parts.extensions));
                Err(state.failure_response(&source, event, ApiError::Forbidden))
            }
        }
    }
}

impl<P: Permission> Tenant<P> {
    /// The caller as the audit log names them: a pseudonym keyed with the tenant's key.
    pub fn actor(&self, state: &AppState) -> String {
        state
            .appliance
            .pseudonym(Some(self.scope.tenant_id()), &self.principal.subject)
    }

    /// Audits an action of this caller on this tenant.
    pub fn audit(
        &self,
        state: &AppState,
        action: &'static str,
        resource: String,
        outcome: Outcome,
    ) {
        state.audit(AuditEvent {
            tenant_id: Some(self.scope.tenant_id().to_string()),
            actor: self.actor(state),
            action,
            resource,
            outcome,
        });
    }
}

/// A token of an identity provider beyond its binding (issue 11, finding 2): in the
/// platform's log with the issuer; in the named tenant's log (when it exists) as a denied
/// attempt, without the issuer (like a cross-tenant attempt). Both within their failure
/// budgets (the source's, the tenant's). Returns the error to answer.
fn audit_unbound_issuer(
    state: &AppState,
    source: &Budget,
    error: &TokenError,
    tenant: Option<&crate::ids::TenantId>,
    path: &str,
) -> ApiError {
    tracing::warn!(%error, "identity provider beyond its binding");
    let issuer = match error {
        TokenError::IssuerNotBound { issuer, .. } => issuer.as_str(),
        _ => "",
    };
    let event = AuditEvent {
        tenant_id: None,
        actor: format!("issuer:{}", issuer.chars().take(100).collect::<String>()),
        action: "token.issuer_not_bound",
        resource: path.chars().take(200).collect(),
        outcome: Outcome::Denied,
    };
    let response = state.failure_response(source, event, ApiError::Unauthenticated);
    if let Some(target) = tenant
        && state.appliance.find_tenant(target).is_ok()
    {
        audit_in_target(state, target.as_str(), "token.issuer_not_bound");
    }
    response
}

/// A cross-tenant attempt: in full in the caller's log (within the source's failure
/// budget); in the target's log (when the target exists, within the target's budget)
/// without the caller's identity. Returns the error to answer: 403 `tenant_mismatch`, or
/// 429 once the source is over its budget.
fn audit_mismatch(
    state: &AppState,
    principal: &Principal,
    requested: &str,
    peer: Option<IpAddr>,
    path: &str,
) -> ApiError {
    let appliance = &state.appliance;
    let event = AuditEvent {
        tenant_id: principal.tenant_id.as_ref().map(ToString::to_string),
        actor: appliance.pseudonym(principal.tenant_id.as_ref(), &principal.subject),
        action: "access.cross_tenant",
        resource: path.chars().take(300).collect(),
        outcome: Outcome::Denied,
    };
    let response = state.failure_response(&Budget::source(peer), event, ApiError::TenantMismatch);
    if let Ok(target) = crate::ids::TenantId::try_from(requested)
        && appliance.find_tenant(&target).is_ok()
    {
        audit_in_target(state, target.as_str(), "access.cross_tenant");
    }
    response
}

/// A denied attempt in the log of the tenant it aimed at, without the caller's identity,
/// within that tenant's failure budget.
fn audit_in_target(state: &AppState, target: &str, action: &'static str) {
    let event = AuditEvent {
        tenant_id: Some(target.to_owned()),
        actor: "external".into(),
        action,
        resource: "tenant".into(),
        outcome: Outcome::Denied,
    };
    state.audit_failure(&Budget::Target(target.to_owned()), event);
}

/// The matched route template (`/v1/tenants/{t}/documents`), never raw ids or content.
fn route_of(parts: &Parts) -> String {
    parts
        .extensions
        .get::<axum::extract::MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_default()
}

/// A platform administrator.
pub struct Platform(pub Principal);

impl FromRequestParts<AppState> for Platform {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Platform, ApiError> {
        let Caller(principal) = Caller::from_request_parts(parts, state).await?;
        if principal.has_any(&[Role::PlatformAdmin]) {
            Ok(Platform(principal))
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

/// JSON bodies whose rejections use the API's error shape.
pub struct ApiJson<T>(pub T);

impl<T, S> axum::extract::FromRequest<S> for ApiJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => {
                use axum::extract::rejection::JsonRejection;
                Err(match rejection {
                    JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType(
                        "expected `Content-Type: application/json`".into(),
                    ),
                    other => ApiError::InvalidRequest(format!(
                        "malformed JSON body: {}",
                        other.body_text()
                    )),
                })
            }
        }
    }
}
