//! An enterprise tenant's own model (issue 12): `PUT /v1/tenants/{t}/model`, platform
//! admin only (the gateway lets a platform token reach it, and never forwards it to the
//! tenant's process). The tenant's process is restarted so its next answer uses the pin.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::put;
use serde::Deserialize;

use super::{ApiError, ApiJson, AppState, Platform};
use crate::ids::TenantId;
use crate::store::PrivateModel;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/tenants/{t}/model", put(pin))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinModel {
    /// The GGUF file on the appliance (an absolute path), or null for the appliance's model.
    gguf: Option<String>,
    /// Its SHA-256, 64 hex digits.
    sha256: Option<String>,
}

#[utoipa::path(put, path = "/v1/tenants/{t}/model", request_body = PinModel,
    params(("t" = String, Path, description = "tenant id")),
    responses((status = 200, description = "`{\"tenant_id\",\"gguf\",\"sha256\"}`"),
        (status = 400, description = "not an absolute path or not 64 hex digits"),
        (status = 409, description = "not an enterprise tenant")),
    security(("bearer" = [])))]
pub async fn pin(
    State(state): State<AppState>,
    Path(requested): Path<String>,
    Platform(principal): Platform,
    ApiJson(body): ApiJson<PinModel>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let tenant_id = TenantId::try_from(requested.as_str())
        .map_err(|_| ApiError::NotFound("no tenant with this id".into()))?;
    let model = match (body.gguf, body.sha256) {
        (Some(gguf), Some(sha256)) => Some(PrivateModel {
            path: gguf.into(),
            sha256,
        }),
        (None, None) => None,
        _ => {
            return Err(ApiError::InvalidRequest(
                "give both `gguf` and `sha256` (or neither, for the appliance's model)".into(),
            ));
        }
    };
    let appliance = state.appliance.clone();
    let actor = state.appliance.pseudonym(None, &principal.subject);
    let pinned = tenant_id.clone();
    let model = state
        .blocking(move || Ok(appliance.set_private_model(&pinned, model, &actor)?))
        .await?;
    if let Some(processes) = &state.processes {
        processes.stop(&tenant_id).await;
    }
    Ok(Json(serde_json::json!({
        "tenant_id": requested,
        "gguf": model.as_ref().map(|model| model.path.display().to_string()),
        "sha256": model.map(|model| model.sha256),
    })))
}
