//! The enterprise tenant's own process serves that tenant only (defence in depth: the
//! main server forwards only its requests, and this checks again).
//!
//! - `/v1/tenants/{t}/…` with another tenant: 403 `tenant_mismatch`; the tenant's
//!   platform routes (its record, key enrolment, lock, unlock) are the main server's: 404.
//! - The OpenAI-compatible routes: only with a token of this tenant (verified here too).
//! - `/healthz` (the main server's health ping); anything else: 404.
//!
//! The gateway and the handlers then verify the token again, as in the main server. The
//! client's address comes from the main server's [`super::PEER_HEADER`] (only the main
//! server can reach the socket: its directory is 0700), and every response says which
//! process served it ([`super::PROCESS_HEADER`]).

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::super::customer_key::PLATFORM_SUBROUTES;
use super::super::{ApiError, AppState, bearer};

pub async fn only_own_tenant(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(own) = state.tenant_process.clone() else {
        return next.run(request).await;
    };
    let peer = request
        .headers()
        .get(super::PEER_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<IpAddr>().ok());
    if let Some(peer) = peer {
        request
            .extensions_mut()
            .insert(ConnectInfo(SocketAddr::new(peer, 0)));
    }
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.split('/').collect();
    let verdict = match segments.as_slice() {
        ["", "healthz"] => Ok(()),
        ["", "v1", "tenants", tenant, rest @ ..] if !rest.is_empty() => {
            if *tenant != own.as_str() {
                Err(ApiError::TenantMismatch)
            } else if matches!(rest, [segment] if PLATFORM_SUBROUTES.contains(segment) || *segment == "unlock")
            {
                Err(ApiError::NotFound("no such route".into()))
            } else {
                Ok(())
            }
        }
        ["", "v1", "models"] | ["", "v1", "chat", "completions"] => {
            let principal =
                bearer(request.headers()).and_then(|token| state.verifier.verify(token).ok());
            match principal {
                None => Err(ApiError::Unauthenticated),
                Some(principal) if principal.tenant_id.as_ref() == Some(&own) => Ok(()),
                Some(_) => Err(ApiError::TenantMismatch),
            }
        }
        _ => Err(ApiError::NotFound("no such route".into())),
    };
    let mut response = match verdict {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    };
    response
        .headers_mut()
        .insert(super::PROCESS_HEADER, HeaderValue::from(std::process::id()));
    response
}
