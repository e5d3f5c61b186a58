//! The gateway (isolation layer 1): the edge checks every request to a tenant's routes
//! before any handler runs.
//!
//! - The bearer token is verified (signature, algorithm bound to its key id, `typ`,
//!   audience, issuer, expiry) and must not be revoked: 401 otherwise.
//! - The tenant segment of the path, exactly as sent (before any decoding), must be the
//!   token's tenant: 403 `tenant_mismatch` otherwise, audited. Platform administrators
//!   reach only the platform routes of a tenant, its deletion and its customer-held key's
//!   enrolment and lock: never its tokens (minting an admin token would let them read its
//!   content) nor its unlock.
//! - The rest of the path may hold no dot segments, encoded separators or doubled
//!   slashes (404), and a document id must be well-formed (404).
//! - A JSON body may not name a tenant (`tenant`, `tenant_id`, `tenantId`, at any depth):
//!   the tenant comes from the path and the token only (400).
//!
//! The handlers' [`super::Tenant`] extractor then verifies the token again, on its own,
//! and mints the scope (layer 2): either check alone stops a foreign path.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState, audit_mismatch, authenticate, peer};
use crate::auth::tokens::Role;
use crate::ids::{DocumentId, TenantId};
use crate::isolation::{Layer, enabled};
use crate::store::Tier;

/// Largest JSON body the gateway inspects; larger ones are refused (no JSON route takes
/// anything near this).
const MAX_JSON_BODY: usize = 1 << 20;

pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !enabled(Layer::Gateway) {
        return next.run(request).await;
    }
    let peer = peer(request.extensions());
    match check(&state, request).await {
        Ok((request, None)) => next.run(request).await,
        // An enterprise tenant's request goes to its own process (issue 12).
        Ok((request, Some(tenant_id))) => match &state.processes {
            Some(processes) => {
                super::processes::forward(&state, processes, &tenant_id, peer, request)
                    .await
                    .unwrap_or_else(IntoResponse::into_response)
            }
            None => next.run(request).await,
        },
        Err(error) => error.into_response(),
    }
}

/// The request if it may pass, with the enterprise tenant whose own process must serve
/// it (when the main server runs such processes).
async fn check(
    state: &AppState,
    request: Request,
) -> Result<(Request, Option<TenantId>), ApiError> {
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.split('/').collect();
    if matches!(
        segments.as_slice(),
        ["", "v1", "models"] | ["", "v1", "chat", "completions"]
    ) {
        let tenant = openai_forward(state, &request);
        return Ok((request, tenant));
    }
    // ["", "v1", "tenants", "{t}", ...]: only a tenant's own routes.
    if segments.len() < 4 || segments[1] != "v1" || segments[2] != "tenants" {
        return Ok((request, None));
    }
    let peer = peer(request.extensions());
    let principal = authenticate(state, request.headers(), peer, &path)?;
    let requested = segments[3];
    let rest = &segments[4..];
    // A tenant's own record (deletion) and its customer-held key's enrolment and lock
    // (issue 12): never its content, tokens or unlock.
    let platform_route = match rest {
        [] => true,
        [segment] => super::customer_key::PLATFORM_SUBROUTES.contains(segment),
        _ => false,
    };
    match &principal.tenant_id {
        Some(own) if own.as_str() == requested => {}
        Some(_) => {
            return Err(audit_mismatch(state, &principal, requested, peer, &path));
        }
        None if platform_route && principal.has_any(&[Role::PlatformAdmin]) => {}
        None => return Err(ApiError::Forbidden),
    }
    // The tenant's data routes, not its record, key enrolment, lock or unlock (which the
    // main server handles, stopping or starting the process).
    let data_route = !platform_route && rest != ["unlock"] && principal.tenant_id.is_some();
    let lower = path.to_ascii_lowercase();
    let tricks = ["%2f", "%5c", "%2e", "%00", "%25", "\\"];
    if tricks.iter().any(|trick| lower.contains(trick))
        || rest
            .iter()
            .any(|segment| matches!(*segment, "" | "." | ".."))
    {
        return Err(ApiError::NotFound("no such route".into()));
    }
    if rest.first() == Some(&"documents")
        && let Some(document) = rest.get(1)
        && DocumentId::try_from(*document).is_err()
    {
        return Err(ApiError::NotFound("no document with this id".into()));
    }
    let forward = if data_route {
        enterprise(state, requested)
    } else {
        None
    };
    // A tenant no longer served by a process of its own (its tier changed with the CLI
    // beside this server) has that process stopped before this server answers for it.
    if data_route
        && forward.is_none()
        && let (Some(processes), Ok(tenant_id)) = (&state.processes, TenantId::try_from(requested))
    {
        processes.stop(&tenant_id).await;
    }
    let is_json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !is_json {
        return Ok((request, forward));
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_JSON_BODY)
        .await
        .map_err(|error| {
            let error = error.into_inner();
            if error.is::<http_body_util::LengthLimitError>() {
                ApiError::PayloadTooLarge("JSON body over 1 MiB".into())
            } else {
                // A body that stalled (see `server::connection`) or broke off.
                ApiError::InvalidRequest(format!("the request body could not be read: {error}"))
            }
        })?;
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes)
        && names_a_tenant(&value)
    {
        return Err(ApiError::InvalidRequest(
            "a request body may not name a tenant: the tenant is the one in the path and the token"
                .into(),
        ));
    }
    Ok((Request::from_parts(parts, Body::from(bytes)), forward))
}

/// The tenant, when it is an enterprise tenant and this server runs enterprise tenants
/// in their own processes.
fn enterprise(state: &AppState, tenant: &str) -> Option<TenantId> {
    let processes = state.processes.as_ref()?;
    let tenant_id = TenantId::try_from(tenant).ok()?;
    let record = state.appliance.find_tenant(&tenant_id).ok()?;
    (record.tier == Tier::Enterprise && processes.serves(state, &tenant_id)).then_some(tenant_id)
}

/// The OpenAI-compatible routes name no tenant: the token's tenant is the one. A token
/// that does not verify is left to the handler here (which answers and audits it).
fn openai_forward(state: &AppState, request: &Request) -> Option<TenantId> {
    state.processes.as_ref()?;
    let principal =
        super::bearer(request.headers()).and_then(|token| state.verifier.verify(token).ok())?;
    enterprise(state, principal.tenant_id?.as_str())
}

fn names_a_tenant(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Object(map) => map.iter().any(|(key, value)| {
            matches!(
                key.to_ascii_lowercase().as_str(),
                "tenant" | "tenant_id" | "tenantid"
            ) || names_a_tenant(value)
        }),
        serde_json::Value::Array(items) => items.iter().any(names_a_tenant),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::names_a_tenant;

    #[test]
    fn bodies_naming_a_tenant_at_any_depth_are_recognised() {
        for body in [
            r#"{"question":"q","tenant":"t_1"}"#,
            r#"{"query":"q","filter":{"Tenant_ID":"t_1"}}"#,
            r#"[{"tenantId":"t_1"}]"#,
        ] {
            assert!(
                names_a_tenant(&serde_json::from_str(body).unwrap()),
                "{body}"
            );
        }
        assert!(!names_a_tenant(
            &serde_json::from_str(r#"{"question":"Which tenant pays the rent?"}"#).unwrap()
        ));
    }
}
