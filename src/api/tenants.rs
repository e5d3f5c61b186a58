//! Tenants (platform admin), first-admin invitations (the invitation is the credential),
//! and tokens (the tenant's own admins only: a platform admin never mints for a tenant,
//! which would let it read the tenant's content).

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use serde::Deserialize;

use super::{AdministerTenant, ApiError, ApiJson, AppState, Platform, Tenant};
use crate::audit::{AuditEvent, Outcome};
use crate::auth::tokens::{Grant, MintedToken, Role};
use crate::auth::{OperatorReason, TenantScope};
use crate::ids::TenantId;
use crate::store::Tier;
use crate::wire;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants", post(create_tenant).get(list_tenants))
        .route(
            "/v1/tenants/{t}",
            axum::routing::delete(delete_tenant).patch(change_tier),
        )
        .route("/v1/tenants/{t}/tokens", post(mint_token).get(list_tokens))
        .route(
            "/v1/tenants/{t}/tokens/{jti}",
            axum::routing::delete(revoke_token),
        )
        .route("/v1/invitations/accept", post(accept_invitation))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    name: String,
    #[serde(default)]
    tier: Option<String>,
    /// An enterprise tenant's customer-held key from the start: an age recipient `age1...`.
    #[serde(default)]
    customer_key: Option<String>,
}

#[utoipa::path(post, path = "/v1/tenants", request_body = CreateTenant,
    responses((status = 201, body = wire::CreatedTenant)), security(("bearer" = [])))]
pub async fn create_tenant(
    State(state): State<AppState>,
    Platform(principal): Platform,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<(StatusCode, Json<wire::CreatedTenant>), ApiError> {
    let tier = match body.tier.as_deref() {
        None => Tier::Standard,
        Some(text) => parse_tier(text)?,
    };
    // Checked before anything is created: a bad key creates no tenant.
    if let Some(recipient) = &body.customer_key {
        if tier != Tier::Enterprise {
            return Err(ApiError::InvalidRequest(
                "a customer_key is for tier enterprise only".into(),
            ));
        }
        crate::crypto::CustomerRecipient::parse(recipient).ok_or_else(|| {
            ApiError::InvalidRequest(
                "customer_key must be an age X25519 recipient (`age1...`)".into(),
            )
        })?;
    }
    let appliance = state.appliance.clone();
    let actor = state.appliance.pseudonym(None, &principal.subject);
    let (tenant, invitation, customer_key) = state
        .blocking(move || {
            let (tenant, invitation) =
                appliance.create_tenant_with_invitation(&body.name, tier, &actor)?;
            let customer_key = match &body.customer_key {
                Some(recipient) => Some(
                    appliance
                        .enrol_customer_key(&tenant.tenant_id, recipient, &actor)?
                        .as_str()
                        .to_owned(),
                ),
                None => None,
            };
            Ok((tenant, invitation, customer_key))
        })
        .await?;
    state.audit(AuditEvent {
        tenant_id: Some(tenant.tenant_id.to_string()),
        actor: state.appliance.pseudonym(None, &principal.subject),
        action: "tenant.create",
        resource: tenant.tenant_id.to_string(),
        outcome: Outcome::Ok,
    });
    Ok((
        StatusCode::CREATED,
        Json(wire::CreatedTenant {
            tenant: wire::Tenant::from(&tenant),
            invitation: invitation.secret,
            customer_key,
        }),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitation {
    invitation: String,
    user: String,
}

/// How long the first admin's token lives: the tenant's admins (or its identity provider)
/// make every later token, and none outlives the one that made it.
const FIRST_ADMIN_TTL_SECONDS: u64 = 7 * 24 * 3600;

#[utoipa::path(post, path = "/v1/invitations/accept", request_body = AcceptInvitation,
    responses((status = 201, body = wire::Token), (status = 401, description = "unknown, used or expired invitation")))]
pub async fn accept_invitation(
    State(state): State<AppState>,
    extensions: axum::http::Extensions,
    ApiJson(body): ApiJson<AcceptInvitation>,
) -> Result<(StatusCode, Json<wire::Token>), ApiError> {
    let peer = super::peer(&extensions);
    // Checked before the invitation is used up, so a bad user name does not burn it.
    crate::auth::tokens::validate_grant(
        &body.user,
        Some(&TenantId::generate()),
        &[Role::Admin],
        FIRST_ADMIN_TTL_SECONDS,
    )
    .map_err(|error| ApiError::InvalidRequest(error.to_string()))?;
    let appliance = state.appliance.clone();
    let (secret, user) = (body.invitation, body.user.clone());
    let accepted = state
        .blocking(move || Ok(appliance.accept_invitation(&secret, &user)?))
        .await?;
    let Some(tenant_id) = accepted else {
        let event = AuditEvent {
            tenant_id: None,
            actor: "anonymous".into(),
            action: "invitation.rejected",
            resource: "/v1/invitations/accept".into(),
            outcome: Outcome::Denied,
        };
        let source = super::Budget::source(peer);
        return Err(state.failure_response(&source, event, ApiError::Unauthenticated));
    };
    let minted = state
        .signer
        .issue(&Grant {
            subject: &body.user,
            tenant_id: Some(&tenant_id),
            roles: &[Role::Admin],
            ttl_seconds: FIRST_ADMIN_TTL_SECONDS,
            not_after: None,
            minted_by: Some("invitation".into()),
        })
        .map_err(|error| ApiError::InvalidRequest(error.to_string()))?;
    let scope = crate::auth::operator_scope(tenant_id.clone(), OperatorReason::Invitation);
    let minted = record_issued(&state, scope, body.user.clone(), vec![Role::Admin], minted).await?;
    let user = state.appliance.pseudonym(Some(&tenant_id), &body.user);
    state.audit(AuditEvent {
        tenant_id: Some(tenant_id.to_string()),
        actor: user.clone(),
        action: "token.mint",
        resource: format!("{user} token {}", minted.jti),
        outcome: Outcome::Ok,
    });
    Ok((StatusCode::CREATED, Json(wire::Token::from(minted))))
}

/// The query of `GET /v1/tenants`, read as text so that a malformed value is API.md's 400.
#[derive(Deserialize)]
pub struct TenantPage {
    cursor: Option<String>,
    limit: Option<String>,
}

/// Tenants per page by default, and at most (as for documents).
const DEFAULT_TENANT_PAGE: usize = 100;
const MAX_TENANT_PAGE: usize = 1000;

#[utoipa::path(get, path = "/v1/tenants",
    params(("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<usize>, Query, description = "1 to 1000, default 100")),
    responses((status = 200, body = wire::TenantList), (status = 400, description = "malformed cursor or limit")),
    security(("bearer" = [])))]
pub async fn list_tenants(
    State(state): State<AppState>,
    _platform: Platform,
    axum::extract::Query(page): axum::extract::Query<TenantPage>,
) -> Result<Json<wire::TenantList>, ApiError> {
    let limit = match page.limit.as_deref() {
        None | Some("") => DEFAULT_TENANT_PAGE,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|limit| (1..=MAX_TENANT_PAGE).contains(limit))
            .ok_or_else(|| {
                ApiError::InvalidRequest(format!(
                    "limit must be a number from 1 to {MAX_TENANT_PAGE}"
                ))
            })?,
    };
    let after = match page.cursor.as_deref() {
        None | Some("") => None,
        Some(cursor) => Some(parse_tenant_cursor(cursor).ok_or_else(|| {
            ApiError::InvalidRequest(
                "malformed cursor: pass the next_cursor of the previous page".into(),
            )
        })?),
    };
    let appliance = state.appliance.clone();
    let (tenants, more) = state
        .blocking(move || {
            let after = after.as_ref().map(|(at, tenant_id)| (*at, tenant_id));
            Ok(appliance.list_tenants_page(after, limit)?)
        })
        .await?;
    let next_cursor = match tenants.last() {
        Some(last) if more => Some(format!("{}_{}", last.created_at, last.tenant_id)),
        _ => None,
    };
    Ok(Json(wire::TenantList {
        tenants: tenants.iter().map(wire::Tenant::from).collect(),
        next_cursor,
    }))
}

/// A tenant page's cursor: the last tenant's `<created_at>_<tenant id>` (its place in the
/// listing order: a tenant created or deleted meanwhile never shifts another page).
fn parse_tenant_cursor(cursor: &str) -> Option<(i64, TenantId)> {
    let (at, tenant_id) = cursor.split_once('_')?;
    let at = at.parse::<i64>().ok().filter(|at| *at >= 0)?;
    Some((at, TenantId::try_from(tenant_id).ok()?))
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
    admin: Tenant<AdministerTenant>,
    ApiJson(body): ApiJson<MintToken>,
) -> Result<(StatusCode, Json<wire::Token>), ApiError> {
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
    let minter = admin.actor(&state);
    let tenant_id = admin.scope.tenant_id();
    // No longer than the minting token: an admin cannot outlast its own access.
    let minted = state
        .signer
        .issue(&Grant {
            subject: &body.user,
            tenant_id: Some(tenant_id),
            roles: &roles,
            ttl_seconds: body.ttl_seconds.unwrap_or(3600),
            not_after: Some(admin.principal.expires_at),
            minted_by: Some(minter),
        })
        .map_err(|error| ApiError::InvalidRequest(error.to_string()))?;
    let minted = record_issued(
        &state,
        admin.scope.clone(),
        body.user.clone(),
        roles,
        minted,
    )
    .await?;
    let user = state.appliance.pseudonym(Some(tenant_id), &body.user);
    admin.audit(
        &state,
        "token.mint",
        format!("{user} token {}", minted.jti),
        Outcome::Ok,
    );
    Ok((StatusCode::CREATED, Json(wire::Token::from(minted))))
}

/// Records a token just minted (see [`Appliance::record_issued_token`]) and hands it back.
async fn record_issued(
    state: &AppState,
    scope: TenantScope,
    user: String,
    roles: Vec<Role>,
    minted: MintedToken,
) -> Result<MintedToken, ApiError> {
    let appliance = state.appliance.clone();
    state
        .blocking(move || {
            appliance.record_issued_token(&scope, &user, &roles, &minted)?;
            Ok(minted)
        })
        .await
}

#[utoipa::path(get, path = "/v1/tenants/{t}/tokens",
    params(("t" = String, Path, description = "tenant id")),
    responses((status = 200, body = wire::IssuedTokenList)), security(("bearer" = [])))]
pub async fn list_tokens(
    State(state): State<AppState>,
    admin: Tenant<AdministerTenant>,
) -> Result<Json<wire::IssuedTokenList>, ApiError> {
    let appliance = state.appliance.clone();
    let scope = admin.scope.clone();
    let tokens = state
        .blocking(move || Ok(appliance.issued_tokens(&scope)?))
        .await?;
    Ok(Json(wire::IssuedTokenList {
        tokens: tokens.into_iter().map(wire::IssuedToken::from).collect(),
    }))
}

#[utoipa::path(delete, path = "/v1/tenants/{t}/tokens/{jti}",
    params(("t" = String, Path, description = "tenant id"), ("jti" = String, Path, description = "the token's id")),
    responses((status = 204, description = "the token is refused from now on")), security(("bearer" = [])))]
pub async fn revoke_token(
    State(state): State<AppState>,
    admin: Tenant<AdministerTenant>,
    Path((_tenant, jti)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let appliance = state.appliance.clone();
    let actor = admin.actor(&state);
    let scope = admin.scope.clone();
    state
        .blocking(move || Ok(appliance.revoke_token(&scope, &jti, &actor)?))
        .await?;
    Ok(StatusCode::NO_CONTENT)
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
    // An enterprise tenant's own process goes first (issue 12).
    if let Some(processes) = &state.processes {
        processes.stop_and_forget(&tenant_id).await;
    }
    let deleted = state
        .blocking(move || Ok(appliance.delete_tenant(&tenant_id, &actor, &signer)?))
        .await?;
    Ok(Json(
        serde_json::json!({"certificate": deleted.certificate, "jws": deleted.jws}),
    ))
}

fn parse_tier(text: &str) -> Result<Tier, ApiError> {
    Tier::parse(text).ok_or_else(|| {
        ApiError::InvalidRequest("tier must be standard, premium or enterprise".into())
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeTier {
    tier: String,
}

#[utoipa::path(patch, path = "/v1/tenants/{t}", request_body = ChangeTier,
    params(("t" = String, Path, description = "tenant id")),
    responses((status = 200, body = wire::Tenant), (status = 400, description = "unknown tier"),
        (status = 404, description = "no such tenant")),
    security(("bearer" = [])))]
pub async fn change_tier(
    State(state): State<AppState>,
    Path(requested): Path<String>,
    Platform(principal): Platform,
    ApiJson(body): ApiJson<ChangeTier>,
) -> Result<Json<wire::Tenant>, ApiError> {
    let tier = parse_tier(&body.tier)?;
    let tenant_id = TenantId::try_from(requested.as_str())
        .map_err(|_| ApiError::NotFound("no tenant with this id".into()))?;
    let appliance = state.appliance.clone();
    let actor = state.appliance.pseudonym(None, &principal.subject);
    let changed = tenant_id.clone();
    let tenant = state
        .blocking(move || Ok(appliance.change_tier(&changed, tier, &actor)?))
        .await?;
    // Issue 12: an enterprise tenant is served by its own process from its next request
    // (this process lets go of its index and key now); one that leaves enterprise comes
    // back here, its process stopped.
    if let Some(processes) = &state.processes {
        if tenant.tier == Tier::Enterprise {
            state.appliance.release_tenant(&tenant_id);
        } else {
            processes.stop_and_forget(&tenant_id).await;
        }
    }
    Ok(Json(wire::Tenant::from(&tenant)))
}
