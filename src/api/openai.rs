//! The OpenAI-compatible endpoint: `GET /v1/models` and `POST /v1/chat/completions`, so
//! tools that speak the OpenAI API (the `openai` client, LangChain, Open WebUI) ask the
//! tenant's contracts.
//!
//! The tenant is the bearer token's own ([`Tenant::of_token`]), never one the body names;
//! a token without a tenant (a platform administrator's) is 403. The answer is the same
//! [`super::query::Asker`] run as `/ask` (audit, metering, the bounded pool), and a stream
//! carries only text that passed the output check. Errors use OpenAI's shape,
//! `{"error":{"message","type","code"}}`, with the API's status codes.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::query::{Asker, stream_answer};
use super::{ApiError, AppState, ReadDocuments, Tenant};
use crate::wire;

/// The one model this appliance serves: its grounded, cited answers.
pub const MODEL_ID: &str = "bulkhead";

/// The longest question, in characters (as `/ask`).
const MAX_QUESTION_CHARS: usize = 2_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat_completions))
}

/// An error in OpenAI's shape.
pub struct OpenAiError {
    error: ApiError,
    code: Option<&'static str>,
    message: Option<String>,
}

impl From<ApiError> for OpenAiError {
    fn from(error: ApiError) -> OpenAiError {
        OpenAiError {
            error,
            code: None,
            message: None,
        }
    }
}

fn invalid(message: impl Into<String>) -> OpenAiError {
    ApiError::InvalidRequest(message.into()).into()
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let status = self.error.status();
        let kind = match status.as_u16() {
            401 => "authentication_error",
            403 | 423 => "permission_error",
            429 => "rate_limit_error",
            500.. => "server_error",
            _ => "invalid_request_error",
        };
        let body = serde_json::json!({"error": {
            "message": self.message.unwrap_or_else(|| self.error.message()),
            "type": kind,
            "param": null,
            "code": self.code.unwrap_or(self.error.code()),
        }});
        let retry_after = self
            .error
            .into_response()
            .headers()
            .get(header::RETRY_AFTER)
            .cloned();
        let mut response = (status, Json(body)).into_response();
        if let Some(value) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// A reader of the token's own tenant, with rejections in OpenAI's shape.
pub struct OpenAiCaller(Tenant<ReadDocuments>);

impl FromRequestParts<AppState> for OpenAiCaller {
    type Rejection = OpenAiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<OpenAiCaller, OpenAiError> {
        Ok(OpenAiCaller(Tenant::of_token(parts, state)?))
    }
}

#[utoipa::path(get, path = "/v1/models",
    responses((status = 200, body = wire::ModelList)), security(("bearer" = [])))]
pub async fn models(_caller: OpenAiCaller) -> Json<wire::ModelList> {
    Json(wire::ModelList {
        object: "list",
        data: vec![wire::Model {
            id: MODEL_ID,
            object: "model",
            created: 0,
            owned_by: "bulkhead",
        }],
    })
}

/// The part of OpenAI's chat request Bulkhead reads; other fields (`temperature`,
/// `max_tokens`, ...) are accepted and ignored: answers are greedy and sized by the
/// appliance.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct ChatRequest {
    model: String,
    messages: Vec<ChatRequestMessage>,
    #[serde(default)]
    stream: bool,
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct ChatRequestMessage {
    role: String,
    /// A string, or an array of content parts (`{"type":"text","text"}`).
    #[serde(default)]
    #[schema(value_type = Object)]
    content: serde_json::Value,
}

impl ChatRequestMessage {
    fn text(&self) -> String {
        match &self.content {
            serde_json::Value::String(text) => text.clone(),
            serde_json::Value::Array(parts) => parts
                .iter()
                .filter(|part| part["type"] == "text")
                .filter_map(|part| part["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        }
    }
}

#[utoipa::path(post, path = "/v1/chat/completions", request_body = ChatRequest,
    responses((status = 200, body = wire::ChatCompletion, description = "JSON, or with `stream` server-sent `chat.completion.chunk` events ending `data: [DONE]`")),
    security(("bearer" = [])))]
pub async fn chat_completions(
    State(state): State<AppState>,
    OpenAiCaller(tenant): OpenAiCaller,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, OpenAiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            OpenAiError::from(ApiError::PayloadTooLarge(
                "the request body is too large".into(),
            ))
        } else {
            invalid("the request body could not be read")
        }
    })?;
    let request: ChatRequest = serde_json::from_slice(&body)
        .map_err(|error| invalid(format!("malformed chat completion request: {error}")))?;
    let (last, earlier) = questions(&request)?;
    let question = follow_up(&state, &tenant, &last, &earlier).await?;
    let asker = Asker::new(&state, &tenant);
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = crate::time::now();
    if !request.stream {
        let answer = asker.ask(question, None, |_| true).await?;
        let response = wire::AskResponse::from(&answer);
        return Ok(Json(wire::ChatCompletion {
            id,
            object: "chat.completion",
            created,
            model: MODEL_ID,
            choices: vec![wire::ChatChoice {
                index: 0,
                message: wire::ChatMessage {
                    role: "assistant",
                    content: response.answer,
                    grounded: response.grounded,
                    citations: response.citations,
                },
                finish_reason: "stop",
            }],
            usage: wire::ChatUsage::from(&answer),
        })
        .into_response());
    }
    let chunk = move |delta: wire::ChatDelta, last: Option<&crate::appliance::Answer>| {
        let response = last.map(wire::AskResponse::from);
        wire::ChatCompletionChunk {
            id: id.clone(),
            object: "chat.completion.chunk",
            created,
            model: MODEL_ID,
            choices: vec![wire::ChunkChoice {
                index: 0,
                delta,
                finish_reason: last.map(|_| "stop"),
            }],
            usage: last.map(wire::ChatUsage::from),
            grounded: response.as_ref().map(|response| response.grounded),
            citations: response.map(|response| response.citations),
        }
    };
    let first = Event::default()
        .json_data(chunk(
            wire::ChatDelta {
                role: Some("assistant"),
                content: Some(String::new()),
            },
            None,
        ))
        .ok();
    let token_chunk = chunk.clone();
    // The role comes first, as in OpenAI's streams, before any answer text.
    let mut response = stream_answer(
        asker,
        question,
        None,
        first.into_iter().collect(),
        move |text| {
            let delta = wire::ChatDelta {
                role: None,
                content: Some(text.to_owned()),
            };
            Event::default().json_data(token_chunk(delta, None)).ok()
        },
        move |result| {
            let last = match result {
                Ok(answer) => {
                    Event::default().json_data(chunk(wire::ChatDelta::default(), Some(&answer)))
                }
                Err(error) => {
                    let error = OpenAiError::from(error);
                    let status = error.error.status();
                    let body = serde_json::json!({"error": {
                        "message": error.error.message(),
                        "type": if status.is_server_error() { "server_error" } else { "invalid_request_error" },
                        "code": error.error.code(),
                    }});
                    Event::default().json_data(body)
                }
            };
            last.into_iter()
                .chain(std::iter::once(Event::default().data("[DONE]")))
                .collect()
        },
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// The conversation's user messages with text: the last one (checked: the question) and
/// the earlier ones. The model must be this appliance's.
fn questions(request: &ChatRequest) -> Result<(String, Vec<String>), OpenAiError> {
    if request.model != MODEL_ID {
        return Err(OpenAiError {
            error: ApiError::NotFound(String::new()),
            code: Some("model_not_found"),
            message: Some(format!(
                "the model `{}` does not exist or you do not have access to it: use `{MODEL_ID}`",
                request.model.chars().take(100).collect::<String>()
            )),
        });
    }
    let questions: Vec<String> = request
        .messages
        .iter()
        .filter(|message| message.role == "user")
        .map(ChatRequestMessage::text)
        .filter(|text| !text.trim().is_empty())
        .collect();
    let Some((last, earlier)) = questions.split_last() else {
        return Err(invalid("the request has no user message with text"));
    };
    if last.chars().count() > MAX_QUESTION_CHARS {
        return Err(invalid(format!(
            "the question is longer than {MAX_QUESTION_CHARS} characters: shorten it"
        )));
    }
    Ok((last.clone(), earlier.to_vec()))
}

/// The question to answer: the last user message, and when it names none of the tenant's
/// contracts but an earlier user message did ("And when does it expire?" after "Who are
/// the parties to the X agreement?"), the words that named it, carried over.
async fn follow_up(
    state: &AppState,
    tenant: &Tenant<ReadDocuments>,
    last: &str,
    earlier: &[String],
) -> Result<String, OpenAiError> {
    if earlier.is_empty() {
        return Ok(last.to_owned());
    }
    let appliance = state.appliance.clone();
    let scope = tenant.scope.clone();
    let last = last.to_owned();
    let earlier = earlier.to_vec();
    Ok(state
        .blocking(move || {
            if appliance.contract_naming_words(&scope, &last)?.is_some() {
                return Ok(last);
            }
            for previous in earlier.iter().rev() {
                if let Some(naming) = appliance.contract_naming_words(&scope, previous)? {
                    let question = format!("{naming}: {}", without_connective(&last));
                    if question.chars().count() <= MAX_QUESTION_CHARS {
                        return Ok(question);
                    }
                    break;
                }
            }
            Ok(last)
        })
        .await?)
}

/// A follow-up without its leading "and"/"also"/"so".
fn without_connective(question: &str) -> &str {
    let trimmed = question.trim();
    for connective in ["and ", "also ", "so ", "then "] {
        if let (Some(head), Some(rest)) = (
            trimmed.get(..connective.len()),
            trimmed.get(connective.len()..),
        ) && head.eq_ignore_ascii_case(connective)
            && !rest.trim().is_empty()
        {
            return rest.trim_start();
        }
    }
    trimmed
}

#[cfg(test)]
mod tests {
    use super::without_connective;

    #[test]
    fn a_follow_up_loses_its_leading_connective_only() {
        assert_eq!(
            without_connective("and when does it expire?"),
            "when does it expire?"
        );
        assert_eq!(without_connective("Andorra law?"), "Andorra law?");
        assert_eq!(without_connective("When?"), "When?");
    }
}
