//! Operational routes: health, metrics, the OpenAPI description and the public keys.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use utoipa::OpenApi;

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/.well-known/jwks.json", get(jwks))
}

#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "the appliance is up")))]
async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = state.metrics.render(&state.appliance.open_tenant_stats());
    let (embedding, llm) = state.appliance.models_loaded();
    text.push_str(&format!(
        "# HELP bulkhead_model_loaded Whether a model is in memory (1) or not yet (0).\n\
         # TYPE bulkhead_model_loaded gauge\n\
         bulkhead_model_loaded{{model=\"embedding\"}} {}\n\
         bulkhead_model_loaded{{model=\"llm\"}} {}\n",
        u8::from(embedding),
        u8::from(llm)
    ));
    if let Some(processes) = &state.processes {
        text.push_str(&processes.render_metrics());
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}

#[utoipa::path(get, path = "/.well-known/jwks.json", responses((status = 200, description = "the appliance's public signing keys (OKP/Ed25519)")))]
async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    Json(state.signer.jwks())
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Bulkhead", description = "Multi-tenant contract Q&A appliance"),
    paths(
        healthz,
        metrics,
        jwks,
        super::tenants::create_tenant,
        super::customer_key::enrol,
        super::customer_key::unlock,
        super::customer_key::lock,
        super::private_model::pin,
        super::tenants::list_tenants,
        super::tenants::mint_token,
        super::tenants::list_tokens,
        super::tenants::revoke_token,
        super::tenants::accept_invitation,
        super::tenants::delete_tenant,
        super::tenants::change_tier,
        super::audit::events,
        super::audit::verify,
        super::audit::access_review,
        super::audit::usage,
        super::audit::export,
        super::documents::upload,
        super::documents::list,
        super::documents::get_one,
        super::documents::content,
        super::documents::delete,
        super::query::search,
        super::query::ask,
        super::documents::text,
        super::openai::models,
        super::openai::chat_completions,
        super::sign_in::providers,
        super::sign_in::session,
    ),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

async fn openapi() -> impl IntoResponse {
    Json(ApiDoc::openapi())
}
