//! The HTTP API of API.md: a thin edge that parses and checks requests, mints the
//! [`TenantScope`] from a verified token, and calls the same [`Appliance`] as the CLI.
//!
//! Invariants: every tenant route's handler takes a [`Tenant<P>`] extractor, so the
//! permission is part of its type; a path naming another tenant is 403 `tenant_mismatch`
//! before anything is looked up; every error leaves in the [`ApiError`] shape; CPU-heavy
//! work runs on blocking threads behind a bounded pool (503 `overloaded` when full).
//! One `router()` per resource: `tenants`, `documents`, `query`, `audit`, `openai`, `ops`,
//! and `web` (the browser app at `/`).

mod audit;
mod documents;
pub mod error;
mod gateway;
pub mod metrics;
mod openai;
mod ops;
mod query;
mod tenants;
mod web;

use std::collections::HashMap;
use std::marker::PhantomData;
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
pub use error::ApiError;

/// Limits of the HTTP edge.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Inference requests (search, ask) running at once.
    pub inference_workers: usize,
    /// Inference requests waiting for a worker; beyond this, 503 `overloaded`.
    pub inference_queue: usize,
    /// Requests per minute per tenant; 0 = unlimited.
    pub tenant_requests_per_minute: u32,
    /// Longest an ask or search may take.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            inference_workers: 2,
            inference_queue: 8,
            tenant_requests_per_minute: 600,
            request_timeout: Duration::from_secs(120),
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
    admission: Arc<Semaphore>,
    workers: Arc<Semaphore>,
    // Searches are short (one embedding, two index lookups): their own lane, so they
    // do not queue behind answers that take seconds.
    search_admission: Arc<Semaphore>,
    search_workers: Arc<Semaphore>,
    rate: Arc<Mutex<HashMap<String, Bucket>>>,
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
            admission: Arc::new(Semaphore::new(
                limits.inference_workers + limits.inference_queue,
            )),
            workers: Arc::new(Semaphore::new(limits.inference_workers.max(1))),
            search_admission: Arc::new(Semaphore::new(
                4 * (limits.inference_workers + limits.inference_queue).max(1),
            )),
            search_workers: Arc::new(Semaphore::new(limits.inference_workers.max(1))),
            limits,
            metrics: Arc::new(metrics::Metrics::default()),
            indexer: Arc::new(Notify::new()),
            rate: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Runs CPU-heavy work on a blocking thread, within the bounded inference pool and
    /// the request timeout. A full pool answers 503 at once instead of queueing.
    pub async fn run_inference<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.run_in_lane(&self.admission, &self.workers, work).await
    }

    /// Like [`AppState::run_inference`], in the search lane.
    pub async fn run_search<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        self.run_in_lane(&self.search_admission, &self.search_workers, work)
            .await
    }

    async fn run_in_lane<T: Send + 'static>(
        &self,
        admission: &Arc<Semaphore>,
        workers: &Arc<Semaphore>,
        work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let admitted: OwnedSemaphorePermit =
            admission.clone().try_acquire_owned().map_err(|_| {
                self.metrics.overloaded();
                ApiError::Overloaded {
                    retry_after_seconds: 1,
                }
            })?;
        let run = async {
            let _worker = workers
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| ApiError::Internal)?;
            tokio::task::spawn_blocking(work)
                .await
                .map_err(|_| ApiError::Internal)?
        };
        let result = tokio::time::timeout(self.limits.request_timeout, run)
            .await
            .unwrap_or(Err(ApiError::Overloaded {
                retry_after_seconds: 5,
            }));
        drop(admitted);
        result
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

    /// Token bucket per tenant: `tenant_requests_per_minute` a minute, bursts up to that.
    fn check_rate(&self, tenant: &str) -> Result<(), ApiError> {
        let per_minute = self.limits.tenant_requests_per_minute;
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
            updated: now,
        });
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
    updated: Instant,
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(ops::router())
        .merge(tenants::router())
        .merge(documents::router())
        .merge(query::router())
        .merge(audit::router())
        .merge(openai::router())
        .merge(web::router())
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

/// Verifies the request's bearer token and that it has not been revoked; a rejected token
/// is audited. Both the gateway and the [`Tenant`] extractor call this, each on its own.
fn authenticate(state: &AppState, headers: &HeaderMap, path: &str) -> Result<Principal, ApiError> {
    let token = bearer(headers).ok_or(ApiError::Unauthenticated)?;
    let rejected = |reason: &dyn std::fmt::Display| {
        tracing::info!(%reason, "token rejected");
        state.audit(AuditEvent {
            tenant_id: None,
            actor: "anonymous".into(),
            action: "token.rejected",
            resource: path.chars().take(200).collect(),
            outcome: Outcome::Denied,
        });
        ApiError::Unauthenticated
    };
    let principal = state.verifier.verify(token).map_err(|error| match error {
        TokenError::IssuerNotBound { ref tenant, .. } => {
            audit_unbound_issuer(state, &error, tenant.as_ref(), path);
            ApiError::Unauthenticated
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
        authenticate(state, &parts.headers, parts.uri.path()).map(Caller)
    }
}

/// The caller of a tenant route. The application scope verifies the token itself rather
/// than trusting the gateway's check; only an ablation test build with this layer off
/// takes the token's claims unverified.
fn tenant_caller(parts: &Parts, state: &AppState) -> Result<Principal, ApiError> {
    if crate::isolation::enabled(crate::isolation::Layer::Scope) {
        return authenticate(state, &parts.headers, parts.uri.path());
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
                // A token of a deleted tenant is no longer a credential.
                if state.appliance.find_tenant(scope.tenant_id()).is_err() {
                    return Err(ApiError::Unauthenticated);
                }
                state.check_rate(scope.tenant_id().as_str())?;
                Ok(Tenant {
                    scope,
                    principal,
                    _permission: PhantomData,
                })
            }
            Err(AccessError::TenantMismatch) => {
                audit_mismatch(state, &principal, requested, parts.uri.path());
                Err(ApiError::TenantMismatch)
            }
            Err(AccessError::Forbidden) => {
                state.audit(AuditEvent {
                    tenant_id: principal.tenant_id.as_ref().map(ToString::to_string),
                    actor: state
                        .appliance
                        .pseudonym(principal.tenant_id.as_ref(), &principal.subject),
                    action: "access.forbidden",
                    resource: route_of(parts),
                    outcome: Outcome::Denied,
                });
                Err(ApiError::Forbidden)
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
/// attempt, without the issuer (like a cross-tenant attempt).
fn audit_unbound_issuer(
    state: &AppState,
    error: &TokenError,
    tenant: Option<&crate::ids::TenantId>,
    path: &str,
) {
    tracing::warn!(%error, "identity provider beyond its binding");
    let issuer = match error {
        TokenError::IssuerNotBound { issuer, .. } => issuer.as_str(),
        _ => "",
    };
    state.audit(AuditEvent {
        tenant_id: None,
        actor: format!("issuer:{}", issuer.chars().take(100).collect::<String>()),
        action: "token.issuer_not_bound",
        resource: path.chars().take(200).collect(),
        outcome: Outcome::Denied,
    });
    if let Some(target) = tenant
        && state.appliance.find_tenant(target).is_ok()
    {
        state.audit(AuditEvent {
            tenant_id: Some(target.to_string()),
            actor: "external".into(),
            action: "token.issuer_not_bound",
            resource: "tenant".into(),
            outcome: Outcome::Denied,
        });
    }
}

/// A cross-tenant attempt: in full in the caller's log; in the target's log (when the
/// target exists) without the caller's identity.
fn audit_mismatch(state: &AppState, principal: &Principal, requested: &str, path: &str) {
    let appliance = &state.appliance;
    state.audit(AuditEvent {
        tenant_id: principal.tenant_id.as_ref().map(ToString::to_string),
        actor: appliance.pseudonym(principal.tenant_id.as_ref(), &principal.subject),
        action: "access.cross_tenant",
        resource: path.chars().take(300).collect(),
        outcome: Outcome::Denied,
    });
    if let Ok(target) = crate::ids::TenantId::try_from(requested)
        && appliance.find_tenant(&target).is_ok()
    {
        state.audit(AuditEvent {
            tenant_id: Some(target.to_string()),
            actor: "external".into(),
            action: "access.cross_tenant",
            resource: "tenant".into(),
            outcome: Outcome::Denied,
        });
    }
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
