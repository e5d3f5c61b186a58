//! Tenants (platform admin) and tokens (tenant admin or platform admin).

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use serde::Deserialize;

use super::{AdministerTenant, ApiError, ApiJson, AppState, Caller, Platform};
use crate::audit::{AuditEvent, Outcome};
use crate::auth::tokens::Role;
use crate::ids::TenantId;
use crate::store::Tier;
use crate::wire;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants", post(create_tenant).get(list_tenants))
        .route("/v1/tenants/{t}", axum::routing::delete(delete_tenant))
        .route("/v1/tenants/{t}/tokens", post(mint_token))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    name: String,
    #[serde(default)]
    tier: Option<String>,
}

#[utoipa::path(post, path = "/v1/tenants", request_body = CreateTenant,
    responses((status = 201, body = wire::Tenant)), security(("bearer" = [])))]
pub async fn create_tenant(
    State(state): State<AppState>,
    Platform(principal): Platform,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<(StatusCode, Json<wire::Tenant>), ApiError> {
    let tier = match body.tier.as_deref() {
        None => Tier::Standard,
        Some(text) => Tier::parse(text).ok_or_else(|| {
            ApiError::InvalidRequest("tier must be standard, premium or enterprise".into())
        })?,
    };
    let appliance = state.appliance.clone();
    let tenant = state
        .blocking(move || Ok(appliance.create_tenant(&body.name, tier)?))
        .await?;
    state.audit(AuditEvent {
        tenant_id: Some(tenant.tenant_id.to_string()),
        actor: state.appliance.pseudonym(None, &principal.subject),
        action: "tenant.create",
        resource: tenant.tenant_id.to_string(),
        outcome: Outcome::Ok,
    });
    Ok((StatusCode::CREATED, Json(wire::Tenant::from(&tenant))))
}

#[utoipa::path(get, path = "/v1/tenants", responses((status = 200, body = wire::TenantList)), security(("bearer" = [])))]
pub async fn list_tenants(
    State(state): State<AppState>,
    _platform: Platform,
) -> Result<Json<wire::TenantList>, ApiError> {
    let appliance = state.appliance.clone();
    let tenants = state
        .blocking(move || Ok(appliance.list_tenants()?))
        .await?;
    Ok(Json(wire::TenantList {
        tenants: tenants.iter().map(wire::Tenant::from).collect(),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MintToken {
    user: String,
    roles: Vec<String>,
    #[serde(default)]
    ttl_seconds: Option<u64>,
}

#[utoipa::path(post, path = "/v1/tenants/{t}/tokens", request_body = MintToken,
    params(("t" = String, Path, description = "tenant id")),
    responses((status = 201, body = wire::Token)), security(("bearer" = [])))]
pub async fn mint_token(
    State(state): State<AppState>,
    Path(requested): Path<String>,
    caller: Caller,
    ApiJson(body): ApiJson<MintToken>,
) -> Result<(StatusCode, Json<wire::Token>), ApiError> {
    // A tenant admin mints for its own tenant only; a platform admin for any tenant.
    let principal = caller.0;
    let tenant_id = if principal.has_any(&[Role::PlatformAdmin]) {
        let tenant_id = TenantId::try_from(requested.as_str())
            .map_err(|_| ApiError::NotFound("no tenant with this id".into()))?;
        state.appliance.find_tenant(&tenant_id)?;
        tenant_id
    } else {
        match crate::auth::scope_for(
            &principal,
            &requested,
            <AdministerTenant as super::Permission>::ROLES,
        ) {
            Ok(scope) => scope.tenant_id().clone(),
            Err(crate::auth::AccessError::TenantMismatch) => {
                super::audit_mismatch(
                    &state,
                    &principal,
                    &requested,
                    &format!("/v1/tenants/{requested}/tokens"),
                );
                return Err(ApiError::TenantMismatch);
            }
            Err(crate::auth::AccessError::Forbidden) => return Err(ApiError::Forbidden),
        }
    };
    let mut roles = Vec::new();
    for role in &body.roles {
        match Role::parse(role) {
            Some(Role::PlatformAdmin) | None => {
                return Err(ApiError::InvalidRequest(format!(
                    "unknown or not grantable role `{role}`: use reader, editor, admin or auditor"
                )));
            }
            Some(role) => roles.push(role),
        }
    }
    let token = state
        .signer
        .mint(
            &body.user,
            Some(&tenant_id),
            &roles,
            body.ttl_seconds.unwrap_or(3600),
        )
        .map_err(|error| ApiError::InvalidRequest(error.to_string()))?;
    state.audit(AuditEvent {
        tenant_id: Some(tenant_id.to_string()),
        actor: state
            .appliance
            .pseudonym(principal.tenant_id.as_ref(), &principal.subject),
        action: "token.mint",
        resource: state.appliance.pseudonym(Some(&tenant_id), &body.user),
        outcome: Outcome::Ok,
    });
    Ok((StatusCode::CREATED, Json(wire::Token { token })))
}

#[utoipa::path(delete, path = "/v1/tenants/{t}", params(("t" = String, Path, description = "tenant id")),
    responses((status = 200, description = "the deletion certificate and the same certificate as a compact JWS (EdDSA)")),
    security(("bearer" = [])))]
pub async fn delete_tenant(
    State(state): State<AppState>,
    Path(requested): Path<String>,
    Platform(principal): Platform,
) -> Result<Json<serde_json::Value>, ApiError> {
    let tenant_id = TenantId::try_from(requested.as_str())
        .map_err(|_| ApiError::NotFound("no tenant with this id".into()))?;
    let appliance = state.appliance.clone();
    let signer = state.signer.clone();
    let actor = state.appliance.pseudonym(None, &principal.subject);
    let deleted = state
        .blocking(move || Ok(appliance.delete_tenant(&tenant_id, &actor, &signer)?))
        .await?;
    Ok(Json(
        serde_json::json!({"certificate": deleted.certificate, "jws": deleted.jws}),
    ))
}
