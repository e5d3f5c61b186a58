//! Search and ask. Both run in the bounded inference pool. `ask` streams as server-sent
//! events on request: `token` events carry only sentences that passed the output check
//! (the appliance checks sentence by sentence as the model generates), then `citations`,
//! then `done` with the full response object — the same object a non-streaming ask returns.

use std::convert::Infallible;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::{ApiError, ApiJson, AppState, ReadDocuments, Tenant};
use crate::audit::{AuditEvent, Outcome};
use crate::index::SearchMode;
use crate::wire;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{t}/search", post(search))
        .route("/v1/tenants/{t}/ask", post(ask))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    query: String,
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    mode: Option<String>,
}

#[utoipa::path(post, path = "/v1/tenants/{t}/search", request_body = SearchRequest,
    params(("t" = String, Path, description = "tenant id")),
    responses((status = 200, body = wire::SearchResponse)), security(("bearer" = [])))]
pub async fn search(
    State(state): State<AppState>,
    tenant: Tenant<ReadDocuments>,
    ApiJson(body): ApiJson<SearchRequest>,
) -> Result<Json<wire::SearchResponse>, ApiError> {
    let mode = match body.mode.as_deref() {
        None => SearchMode::Hybrid,
        Some(text) => SearchMode::parse(text).ok_or_else(|| {
            ApiError::InvalidRequest("mode must be hybrid, vector or keyword".into())
        })?,
    };
    let top_k = body.top_k.unwrap_or(5);
    if !(1..=50).contains(&top_k) {
        return Err(ApiError::InvalidRequest(
            "top_k must be between 1 and 50".into(),
        ));
    }
    let appliance = state.appliance.clone();
    let scope = tenant.scope.clone();
    let results = state
        .run_search(move || Ok(appliance.search(&scope, &body.query, top_k, mode)?))
        .await?;
    meter(&state, &tenant.scope, "search", 0, 0);
    tenant.audit(
        &state,
        "search",
        format!("{} results", results.len()),
        Outcome::Ok,
    );
    Ok(Json(wire::SearchResponse {
        results: results.iter().map(wire::SearchHit::from).collect(),
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    question: String,
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    stream: bool,
}

#[utoipa::path(post, path = "/v1/tenants/{t}/ask", request_body = AskRequest,
    params(("t" = String, Path, description = "tenant id")),
    responses((status = 200, body = wire::AskResponse, description = "JSON, or server-sent events `token`, `citations`, `done` when streaming")),
    security(("bearer" = [])))]
pub async fn ask(
    State(state): State<AppState>,
    tenant: Tenant<ReadDocuments>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<AskRequest>,
) -> Result<Response, ApiError> {
    if let Some(top_k) = body.top_k
        && !(1..=8).contains(&top_k)
    {
        return Err(ApiError::InvalidRequest(
            "top_k must be between 1 and 8".into(),
        ));
    }
    let wants_stream = body.stream
        || headers
            .get(header::ACCEPT)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|accept| accept.contains("text/event-stream"));
    let actor = tenant.actor(&state);
    let audit = {
        let state = state.clone();
        let scope = tenant.scope.clone();
        let tenant_id = tenant.scope.tenant_id().to_string();
        move |outcome, answer: Option<&crate::appliance::Answer>| {
            if let Some(answer) = answer {
                meter(
                    &state,
                    &scope,
                    "ask",
                    answer.timings.prompt_tokens,
                    answer.timings.answer_tokens,
                );
            }
            state.audit(AuditEvent {
                tenant_id: Some(tenant_id.clone()),
                actor: actor.clone(),
                action: "ask",
                resource: "question".into(),
                outcome,
            })
        }
    };
    let appliance = state.appliance.clone();
    let scope = tenant.scope.clone();
    if !wants_stream {
        let answer = state
            .run_inference(move || {
                Ok(appliance.ask(&scope, &body.question, body.top_k, &mut |_| true)?)
            })
            .await;
        audit(
            if answer.is_ok() {
                Outcome::Ok
            } else {
                Outcome::Failed
            },
            answer.as_ref().ok(),
        );
        return Ok(Json(wire::AskResponse::from(&answer?)).into_response());
    }

    // Streaming: the answer runs in the pool and sends checked text through a channel.
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let token_sender = sender.clone();
    let task_state = state.clone();
    tokio::spawn(async move {
        let result = task_state
            .run_inference(move || {
                Ok(
                    appliance.ask(&scope, &body.question, body.top_k, &mut |text| {
                        let event = Event::default()
                            .event("token")
                            .json_data(serde_json::json!({"text": text}));
                        // A closed stream (client gone) stops generation.
                        event
                            .map(|event| token_sender.send(event).is_ok())
                            .unwrap_or(true)
                    })?,
                )
            })
            .await;
        audit(
            if result.is_ok() {
                Outcome::Ok
            } else {
                Outcome::Failed
            },
            result.as_ref().ok(),
        );
        let events: Vec<Event> = match result {
            Ok(answer) => {
                let response = wire::AskResponse::from(&answer);
                [
                    Event::default().event("citations").json_data(&response.citations),
                    Event::default().event("done").json_data(&response),
                ]
                .into_iter()
                .filter_map(Result::ok)
                .collect()
            }
            Err(error) => Event::default()
                .event("error")
                .json_data(serde_json::json!({"error": {"code": error.code(), "message": error.message()}}))
                .into_iter()
                .collect(),
        };
        for event in events {
            let _ = sender.send(event);
        }
    });
    let stream = UnboundedReceiverStream::new(receiver).map(Ok::<Event, Infallible>);
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// Records a query for the tenant's usage (metering failures are logged, not fatal).
fn meter(
    state: &AppState,
    scope: &crate::auth::TenantScope,
    kind: &str,
    tokens_in: usize,
    tokens_out: usize,
) {
    if let Err(error) = state
        .appliance
        .record_usage(scope, kind, tokens_in, tokens_out)
    {
        tracing::error!(%error, "usage not recorded");
    }
}
