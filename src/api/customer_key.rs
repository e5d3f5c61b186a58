//! Customer-held keys of enterprise tenants (issue 12, BYOK): enrolment by the platform
//! admin (only the public recipient reaches the appliance), unlock by the tenant's admin
//! (the customer's identity, held in memory only), lock by either.
//!
//! Who may call: **unlock** only the tenant's own admin, who acts for the customer holding
//! the key; a platform admin never handles a tenant's key material. **lock** the tenant's
//! admin or a platform admin: locking only takes access away (an operator's emergency
//! stop), it reveals nothing.

use axum::Json;
use axum::Router;
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::routing::{post, put};
use serde::Deserialize;

use super::{AdministerTenant, ApiError, ApiJson, AppState, Budget, Caller, Platform, Tenant};
use crate::audit::{AuditEvent, Outcome};
use crate::auth::tokens::Role;
use crate::ids::TenantId;
use crate::wire;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{t}/customer-key", put(enrol))
        .route("/v1/tenants/{t}/unlock", post(unlock))
        .route("/v1/tenants/{t}/lock", post(lock))
}

/// The paths below a tenant that a platform admin may call (the gateway lets them through
/// to these handlers, which check the role themselves).
pub const PLATFORM_SUBROUTES: [&str; 3] = ["customer-key", "lock", "model"];

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolCustomerKey {
    /// The customer's age X25519 recipient, `age1...`.
    recipient: String,
}

#[utoipa::path(put, path = "/v1/tenants/{t}/customer-key", request_body = EnrolCustomerKey,
    params(("t" = String, Path, description = "tenant id")),
    responses((status = 200, body = wire::CustomerKey)), security(("bearer" = [])))]
pub async fn enrol(
    State(state): State<AppState>,
    Path(requested): Path<String>,
    Platform(principal): Platform,
    ApiJson(body): ApiJson<EnrolCustomerKey>,
) -> Result<Json<wire::CustomerKey>, ApiError> {
    let tenant_id = TenantId::try_from(requested.as_str())
        .map_err(|_| ApiError::NotFound("no tenant with this id".into()))?;
    let appliance = state.appliance.clone();
    let actor = state.appliance.pseudonym(None, &principal.subject);
    let enrolled = tenant_id.clone();
    let recipient = state
        .blocking(move || Ok(appliance.enrol_customer_key(&enrolled, &body.recipient, &actor)?))
        .await?;
    // Issue 12: the tenant's own process held the data key: it goes, and the tenant is
    // locked there too (no process until its admin unlocks it).
    if let Some(processes) = &state.processes {
        processes.stop_and_forget(&tenant_id).await;
    }
    Ok(Json(wire::CustomerKey {
        tenant_id: requested,
        customer_key: recipient.as_str().to_owned(),
        locked: true,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnlockTenant {
    /// The customer's age identity, `AGE-SECRET-KEY-1...` (the key file's content).
    identity: String,
}

#[utoipa::path(post, path = "/v1/tenants/{t}/unlock", request_body = UnlockTenant,
    params(("t" = String, Path, description = "tenant id")),
    responses((status = 200, body = wire::CustomerKey),
        (status = 401, description = "customer_key_rejected: the key does not open the data key"),
        (status = 429, description = "too many wrong keys: unlocking refused for a while")),
    security(("bearer" = [])))]
pub async fn unlock(
    State(state): State<AppState>,
    admin: Tenant<AdministerTenant>,
    extensions: axum::http::Extensions,
    ApiJson(body): ApiJson<UnlockTenant>,
) -> Result<Json<wire::CustomerKey>, ApiError> {
    let appliance = state.appliance.clone();
    let actor = admin.actor(&state);
    let scope = admin.scope.clone();
    let tenant_id = scope.tenant_id().clone();
    let identity = zeroize::Zeroizing::new(body.identity);
    let handover = identity.clone();
    let unlocked = state
        .blocking(move || {
            appliance.unlock_tenant(&scope, &identity, &actor)?;
            Ok(appliance.customer_recipient(scope.tenant_id())?)
        })
        .await;
    if unlocked.is_ok()
        && let Some(processes) = &state.processes
    {
        // Issue 12: the tenant's own process holds the key; this one lets go of it and
        // keeps only the identity, to hand each of the tenant's processes on its stdin.
        state.appliance.release_tenant(&tenant_id);
        processes.unlocked(&tenant_id, handover).await;
    }
    match unlocked {
        Ok(recipient) => Ok(Json(wire::CustomerKey {
            tenant_id: tenant_id.to_string(),
            customer_key: recipient.unwrap_or_default(),
            locked: false,
        })),
        // Attempts while refused are audited within the caller's failure budget (the
        // wrong keys themselves are, one by one, by the appliance).
        Err(error @ ApiError::UnlockRefused { .. }) => {
            let event = AuditEvent {
                tenant_id: Some(tenant_id.to_string()),
                actor: admin.actor(&state),
                action: "tenant.unlock",
                resource: "refused: too many wrong customer keys".into(),
                outcome: Outcome::Denied,
            };
            let source = Budget::source(super::peer(&extensions));
            Err(state.failure_response(&source, event, error))
        }
        Err(error) => Err(error),
    }
}

#[utoipa::path(post, path = "/v1/tenants/{t}/lock",
    params(("t" = String, Path, description = "tenant id")),
    responses((status = 200, body = wire::CustomerKey)), security(("bearer" = [])))]
pub async fn lock(
    State(state): State<AppState>,
    Path(requested): Path<String>,
    request: Request,
) -> Result<Json<wire::CustomerKey>, ApiError> {
    let (mut parts, _body) = request.into_parts();
    let Caller(principal) = Caller::from_request_parts(&mut parts, &state).await?;
    let (tenant_id, actor) =
        if principal.tenant_id.is_none() && principal.has_any(&[Role::PlatformAdmin]) {
            let tenant_id = TenantId::try_from(requested.as_str())
                .map_err(|_| ApiError::NotFound("no tenant with this id".into()))?;
            (
                tenant_id,
                state.appliance.pseudonym(None, &principal.subject),
            )
        } else {
            let admin = Tenant::<AdministerTenant>::from_request_parts(&mut parts, &state).await?;
            (admin.scope.tenant_id().clone(), admin.actor(&state))
        };
    let appliance = state.appliance.clone();
    let locked = tenant_id.clone();
    let recipient = state
        .blocking(move || {
            appliance.lock_tenant(&locked, &actor)?;
            Ok(appliance.customer_recipient(&locked)?)
        })
        .await?;
    // Issue 12: the tenant's own process, which held the key, is gone before this answers.
    if let Some(processes) = &state.processes {
        processes.stop_and_forget(&tenant_id).await;
    }
    Ok(Json(wire::CustomerKey {
        tenant_id: requested,
        customer_key: recipient.unwrap_or_default(),
        locked: true,
    }))
}

/// 423 `tenant_locked` for a locked BYOK tenant: for responses that stream (export, SSE),
/// which must refuse before their status line is sent rather than fail part-way.
pub(super) async fn refuse_if_locked(
    state: &AppState,
    scope: &crate::auth::TenantScope,
) -> Result<(), ApiError> {
    let (appliance, tenant_id) = (state.appliance.clone(), scope.tenant_id().clone());
    let locked = state
        .blocking(move || Ok(appliance.tenant_locked(&tenant_id)?))
        .await?;
    if locked {
        return Err(ApiError::TenantLocked);
    }
    Ok(())
}
