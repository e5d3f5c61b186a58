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
        .run_search(&tenant.scope, tenant.tier, move || {
            Ok(appliance.search(&scope, &body.query, top_k, mode)?)
        })
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
    let asker = Asker::new(&state, &tenant);
    if !wants_stream {
        let answer = asker.ask(body.question, body.top_k, |_| true).await?;
        return Ok(Json(wire::AskResponse::from(&answer)).into_response());
    }
    super::customer_key::refuse_if_locked(&state, &tenant.scope).await?;
    Ok(stream_answer(
        asker,
        body.question,
        body.top_k,
        Vec::new(),
        |text| {
            Event::default()
                .event("token")
                .json_data(serde_json::json!({"text": text}))
                .ok()
        },
        |result| {
            match result {
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
        }
        },
    ))
}

/// One ask on behalf of a tenant's caller: runs in the inference pool, then meters the
/// tokens and audits the outcome. Shared by `/ask` and the OpenAI-compatible endpoint.
pub(super) struct Asker {
    state: AppState,
    scope: crate::auth::TenantScope,
    tier: crate::store::Tier,
    actor: String,
}

impl Asker {
    pub(super) fn new(state: &AppState, tenant: &Tenant<ReadDocuments>) -> Asker {
        Asker {
            state: state.clone(),
            scope: tenant.scope.clone(),
            tier: tenant.tier,
            actor: tenant.actor(state),
        }
    }

    /// The checked answer; `on_text` receives only text that passed the output check
    /// (returning `false` stops generation: the client is gone).
    pub(super) async fn ask(
        self,
        question: String,
        top_k: Option<usize>,
        mut on_text: impl FnMut(&str) -> bool + Send + 'static,
    ) -> Result<crate::appliance::Answer, ApiError> {
        let appliance = self.state.appliance.clone();
        let scope = self.scope.clone();
        let result = self
            .state
            .run_inference(&self.scope, self.tier, move || {
                Ok(appliance.ask(&scope, &question, top_k, &mut on_text)?)
            })
            .await;
        if let Ok(answer) = &result {
            meter(
                &self.state,
                &self.scope,
                "ask",
                answer.timings.prompt_tokens,
                answer.timings.answer_tokens,
            );
        }
        self.state.audit(AuditEvent {
            tenant_id: Some(self.scope.tenant_id().to_string()),
            actor: self.actor,
            action: "ask",
            resource: "question".into(),
            outcome: if result.is_ok() {
                Outcome::Ok
            } else {
                Outcome::Failed
            },
        });
        result
    }
}

/// A streamed ask as server-sent events: the answer runs in the pool and each piece of
/// checked text becomes the event `token` makes; `finish` turns the outcome into the
/// closing events, after the `opening` ones. A closed stream (client gone) stops generation.
pub(super) fn stream_answer(
    asker: Asker,
    question: String,
    top_k: Option<usize>,
    opening: Vec<Event>,
    token: impl Fn(&str) -> Option<Event> + Send + 'static,
    finish: impl FnOnce(Result<crate::appliance::Answer, ApiError>) -> Vec<Event> + Send + 'static,
) -> Response {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel::<Event>();
    for event in opening {
        let _ = sender.send(event);
    }
    let token_sender = sender.clone();
    tokio::spawn(async move {
        let result = asker
            .ask(question, top_k, move |text| match token(text) {
                Some(event) => token_sender.send(event).is_ok(),
                None => true,
            })
            .await;
        for event in finish(result) {
            let _ = sender.send(event);
        }
    });
    let stream = UnboundedReceiverStream::new(receiver).map(Ok::<Event, Infallible>);
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Records a query for the tenant's usage (metering failures are logged, not fatal).
pub(super) fn meter(
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
