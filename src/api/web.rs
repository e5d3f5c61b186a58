//! The web app at `GET /`: one HTML page, plain JavaScript modules and CSS, embedded in
//! the binary (`include_str!` of `web/`), so it works air-gapped. No build step and no
//! third-party script: see ARCHITECTURE.md. Every response carries a strict
//! Content-Security-Policy (`default-src 'self'`, no inline script or style), and the app
//! talks only to this API with the bearer token the user pasted or got by signing in
//! with an identity provider (kept in session storage, never in a cookie).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::{ApiError, AppState};

const INDEX: &str = include_str!("../../web/index.html");

/// The assets, by file name: (content type, text).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/api.js"),
    ),
    (
        "oidc.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/oidc.js"),
    ),
    (
        "views.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/views.js"),
    ),
    (
        "admin.js",
        "text/javascript; charset=utf-8",
        include_str!("../../web/admin.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../web/app.css"),
    ),
    (
        "report.css",
        "text/css; charset=utf-8",
        include_str!("../../web/report.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../web/favicon.svg"),
    ),
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        // Where an identity provider sends the browser back after sign-in (the OIDC
        // redirect URI): the same page, which finishes the flow (`web/oidc.js`).
        .route("/signin/callback", get(index))
        .route("/assets/{name}", get(asset))
}

/// A page or asset under the policy of `sign_in`: only this origin, no inline script or
/// style, no framing; the configured token endpoints' origins in `connect-src` only.
fn page(state: &AppState, content_type: &'static str, body: &'static str) -> Response {
    let mut response = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        state.sign_in.policy().clone(),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn index(State(state): State<AppState>) -> Response {
    page(&state, "text/html; charset=utf-8", INDEX)
}

async fn asset(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    ASSETS
        .iter()
        .find(|(file, _, _)| *file == name)
        .map(|(_, content_type, body)| page(&state, content_type, body))
        .ok_or_else(|| ApiError::NotFound("no such asset".into()))
}
