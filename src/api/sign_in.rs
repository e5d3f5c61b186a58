//! Web sign-in through an identity provider (OIDC authorization code with PKCE, issue 13).
//!
//! The browser does the flow itself (`web/oidc.js`): the appliance publishes each
//! provider's public settings (`GET /v1/auth/providers`: endpoints, client id, scopes,
//! the audience it accepts; never the tenants a provider is bound to), adds the token
//! endpoints' origins to the page policy's `connect-src` (the code exchange is a `fetch`;
//! the authorization request is a top-level navigation and needs nothing), and checks the
//! token the browser got with the same bound-issuer verifier as every request
//! (`GET /v1/auth/session`). It never trusts what the browser says about the token, holds
//! no client secret (a public client: PKCE stands in for one) and keeps no session.

use axum::extract::State;
use axum::http::{HeaderValue, Uri};
use axum::routing::get;
use axum::{Json, Router};

use super::{AppState, Caller};
use crate::wire;

/// One identity provider's sign-in settings, from `[[identity_provider]]` in the config:
/// the very shape `GET /v1/auth/providers` lists.
pub use crate::wire::SignInProvider;

/// The providers users may sign in with, and the page policy that lets the app reach
/// their token endpoints.
#[derive(Debug)]
pub struct SignIn {
    providers: Vec<SignInProvider>,
    policy: HeaderValue,
}

impl Default for SignIn {
    fn default() -> SignIn {
        SignIn {
            providers: Vec::new(),
            policy: HeaderValue::from_str(&content_security_policy(&[]))
                .expect("the fixed policy is a valid header"),
        }
    }
}

impl SignIn {
    /// Checks each provider's endpoints (absolute `https` URLs; `http` only on a loopback
    /// host, for a provider on the same machine) and builds the policy. An endpoint that
    /// cannot be written into the policy as an origin is refused, never quoted.
    pub fn new(providers: Vec<SignInProvider>) -> Result<SignIn, String> {
        let mut origins = Vec::new();
        for provider in &providers {
            let issuer = &provider.issuer;
            origin_of(&provider.authorization_endpoint).map_err(|why| {
                format!("identity provider {issuer}: authorization_endpoint {why}")
            })?;
            let origin = origin_of(&provider.token_endpoint)
                .map_err(|why| format!("identity provider {issuer}: token_endpoint {why}"))?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
            let printable = |text: &str| {
                !text.trim().is_empty() && text.len() <= 200 && !text.chars().any(char::is_control)
            };
            if !printable(&provider.client_id) || !printable(&provider.display_name) {
                return Err(format!(
                    "identity provider {issuer}: client_id and display_name must be 1 to 200 printable characters"
                ));
            }
            if provider.scopes.split_whitespace().next() != Some("openid") {
                return Err(format!(
                    "identity provider {issuer}: scopes must start with `openid`"
                ));
            }
        }
        let policy = HeaderValue::from_str(&content_security_policy(&origins)).map_err(|_| {
            "a token endpoint's origin cannot be written into the policy".to_owned()
        })?;
        Ok(SignIn { providers, policy })
    }

    /// The Content-Security-Policy of every page and asset of the web app.
    pub fn policy(&self) -> &HeaderValue {
        &self.policy
    }
}

/// The policy: only this origin, no inline code, no framing; `connect-src` adds the
/// token endpoints' origins and nothing else; `frame-src` adds `blob:` alone, for the
/// original pdf the document viewer shows from memory (issue 13).
fn content_security_policy(token_origins: &[String]) -> String {
    let mut connect = String::from("'self'");
    for origin in token_origins {
        connect.push(' ');
        connect.push_str(origin);
    }
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src {connect}; frame-src 'self' blob:; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// `scheme://host[:port]` of an endpoint, refused unless it is an absolute `https` URL
/// (`http` on a loopback host) whose host is a plain name or address.
fn origin_of(endpoint: &str) -> Result<String, String> {
    let uri: Uri = endpoint
        .parse()
        .map_err(|_| format!("{endpoint:?} is not a URL"))?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(format!("{endpoint:?} is not an absolute URL"));
    };
    let host = authority.host();
    let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']');
    if authority.as_str().contains('@') || !authority.as_str().chars().all(plain) {
        return Err(format!("{endpoint:?} has a host that is not a plain name"));
    }
    let loopback = matches!(host, "localhost" | "127.0.0.1" | "[::1]");
    match scheme {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(format!(
                "{endpoint:?} must be https (http only on a loopback host)"
            ));
        }
    }
    Ok(format!("{scheme}://{authority}"))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/auth/providers", get(providers))
        .route("/v1/auth/session", get(session))
}

#[utoipa::path(get, path = "/v1/auth/providers",
    responses((status = 200, body = wire::SignInProviders, description = "the identity providers the web app can sign in with")))]
pub(super) async fn providers(State(state): State<AppState>) -> Json<wire::SignInProviders> {
    Json(wire::SignInProviders {
        providers: state.sign_in.providers.clone(),
    })
}

#[utoipa::path(get, path = "/v1/auth/session",
    responses((status = 200, body = wire::Session, description = "the verified token's user, tenant, roles and expiry"),
        (status = 401, description = "the appliance does not accept this token")),
    security(("bearer" = [])))]
pub(super) async fn session(Caller(principal): Caller) -> Json<wire::Session> {
    Json(wire::Session {
        sub: principal.subject,
        tenant_id: principal.tenant_id.map(|tenant| tenant.as_str().to_owned()),
        roles: principal
            .roles
            .iter()
            .map(|role| role.as_str().to_owned())
            .collect(),
        expires_at: crate::time::rfc3339(principal.expires_at as i64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_origins_reach_the_policy() {
        assert_eq!(
            origin_of("https://idp.example:8443/oauth2/token?x=1").unwrap(),
            "https://idp.example:8443"
        );
        assert_eq!(
            origin_of("http://127.0.0.1:9000/token").unwrap(),
            "http://127.0.0.1:9000"
        );
        for refused in [
            "http://idp.example/token",
            "/token",
            "javascript:alert(1)",
            "https://user@idp.example/token",
            "data:text/html,x",
            "https://idp.example;script-src/token",
            "https://idp.example 'unsafe-inline'/token",
        ] {
            assert!(origin_of(refused).is_err(), "{refused}");
        }
        let policy = content_security_policy(&["https://idp.example".into()]);
        assert!(
            policy.contains("connect-src 'self' https://idp.example;"),
            "{policy}"
        );
        assert_eq!(
            policy.replace(" https://idp.example", ""),
            content_security_policy(&[]),
            "nothing but connect-src changes"
        );
    }
}
