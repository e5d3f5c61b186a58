//! The one error type at the HTTP edge: a stable code and status per variant, the error
//! shape of API.md, and no internal detail in a response (the detail goes to the log).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::appliance::ApplianceError;
use crate::embed::EmbedError;
use crate::ingest::extract::ExtractError;
use crate::llm::LlmError;
use crate::store::StoreError;

#[derive(Debug)]
pub enum ApiError {
    InvalidRequest(String),
    Unauthenticated,
    Forbidden,
    TenantMismatch,
    NotFound(String),
    MethodNotAllowed,
    Conflict(String),
    PayloadTooLarge(String),
    UnsupportedMediaType(String),
    Unprocessable(String),
    RateLimited { retry_after_seconds: u64 },
    Overloaded { retry_after_seconds: u64 },
    Internal,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::TenantMismatch => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::Unauthenticated => "unauthenticated",
            ApiError::Forbidden => "forbidden",
            ApiError::TenantMismatch => "tenant_mismatch",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Unprocessable(_) => "unprocessable_document",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Overloaded { .. } => "overloaded",
            ApiError::Internal => "internal",
        }
    }

    pub fn message(&self) -> String {
        match self {
            ApiError::InvalidRequest(message)
            | ApiError::NotFound(message)
            | ApiError::Conflict(message)
            | ApiError::PayloadTooLarge(message)
            | ApiError::UnsupportedMediaType(message)
            | ApiError::Unprocessable(message) => message.clone(),
            ApiError::Unauthenticated => {
                "a valid bearer token is required: pass `Authorization: Bearer <token>`".into()
            }
            ApiError::Forbidden => "this token's roles do not allow this action".into(),
            ApiError::TenantMismatch => {
                "this token does not belong to the tenant in the path".into()
            }
            ApiError::MethodNotAllowed => "this method is not allowed on this path".into(),
            ApiError::RateLimited {
                retry_after_seconds,
            } => {
                format!("too many requests for this tenant: retry after {retry_after_seconds} s")
            }
            ApiError::Overloaded {
                retry_after_seconds,
            } => {
                format!("the appliance is at capacity: retry after {retry_after_seconds} s")
            }
            ApiError::Internal => "internal error".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code(), "message": self.message()}});
        let mut response = (self.status(), Json(body)).into_response();
        if let ApiError::RateLimited {
            retry_after_seconds,
        }
        | ApiError::Overloaded {
            retry_after_seconds,
        } = self
            && let Ok(value) = HeaderValue::from_str(&retry_after_seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

/// Logs the internal detail and returns the generic 500.
fn internal(error: &dyn std::fmt::Display) -> ApiError {
    tracing::error!(%error, "internal error");
    ApiError::Internal
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::DocumentNotFound(_) => {
                ApiError::NotFound("no document with this id".into())
            }
            StoreError::TenantNotFound(_) => ApiError::NotFound("no tenant with this id".into()),
            StoreError::NotInitialised(_)
            | StoreError::WrongMasterKey
            | StoreError::Crypto(_)
            | StoreError::NotThisTenant { .. }
            | StoreError::Database(_)
            | StoreError::Io(_)
            | StoreError::CheckpointUnsigned { .. } => internal(&error),
        }
    }
}

impl From<ApplianceError> for ApiError {
    fn from(error: ApplianceError) -> Self {
        match error {
            ApplianceError::Store(error) => error.into(),
            ApplianceError::InvalidRequest(message) => ApiError::InvalidRequest(message),
            ApplianceError::Conflict(message) => ApiError::Conflict(message),
            ApplianceError::Document(ExtractError::TooLarge { bytes, limit }) => {
                ApiError::PayloadTooLarge(format!(
                    "document is {bytes} bytes, over the limit of {limit} bytes"
                ))
            }
            ApplianceError::Document(
                error @ (ExtractError::Empty
                | ExtractError::Unsupported { .. }
                | ExtractError::Corrupt { .. }
                | ExtractError::DecompressionBomb { .. }
                | ExtractError::Timeout { .. }
                | ExtractError::NoText { .. }),
            ) => ApiError::Unprocessable(error.to_string()),
            ApplianceError::Llm(LlmError::PromptTooLong { .. }) => ApiError::InvalidRequest(
                "the question is too long for the model: shorten it".into(),
            ),
            ApplianceError::Llm(
                error @ (LlmError::ModelMissing { .. }
                | LlmError::ModelCorrupt { .. }
                | LlmError::UnsupportedModel(_)
                | LlmError::Inference(_)),
            ) => internal(&error),
            ApplianceError::Embedding(
                error @ (EmbedError::ModelMissing { .. }
                | EmbedError::ModelCorrupt { .. }
                | EmbedError::Inference(_)),
            ) => internal(&error),
            ApplianceError::Index(error) => internal(&error),
            ApplianceError::Portability(
                error @ (crate::portability::PortabilityError::Recipient(_)
                | crate::portability::PortabilityError::Decrypt(_)
                | crate::portability::PortabilityError::Malformed(_)
                | crate::portability::PortabilityError::Integrity(_)),
            ) => ApiError::InvalidRequest(error.to_string()),
            ApplianceError::Portability(
                error @ (crate::portability::PortabilityError::Store(_)
                | crate::portability::PortabilityError::Io(_)),
            ) => internal(&error),
        }
    }
}
