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
    RateLimited {
        retry_after_seconds: u64,
    },
    /// Too many failed requests (bad tokens, cross-tenant attempts) from one client.
    TooManyFailures {
        retry_after_seconds: u64,
    },
    Overloaded {
        retry_after_seconds: u64,
    },
    Internal,
    /// A BYOK tenant whose customer-held key is not loaded (issue 12).
    TenantLocked,
    /// A customer key that does not open the tenant's data key.
    CustomerKeyRejected,
    /// Too many wrong customer keys: unlocking is refused for a while.
    UnlockRefused {
        retry_after_seconds: u64,
    },
    /// An enterprise tenant's own model is missing or not the pinned file (issue 12): the
    /// message names the file and checksum it needs.
    ModelUnavailable(String),
}

impl ApiError {
    /// The one table of errors: each variant's status, stable code and message.
    fn describe(&self) -> (StatusCode, &'static str, std::borrow::Cow<'_, str>) {
        use std::borrow::Cow::{Borrowed, Owned};
        match self {
            ApiError::InvalidRequest(message) => (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                Borrowed(message),
            ),
            ApiError::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                Borrowed("a valid bearer token is required: pass `Authorization: Bearer <token>`"),
            ),
            ApiError::Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                Borrowed("this token's roles do not allow this action"),
            ),
            ApiError::TenantMismatch => (
                StatusCode::FORBIDDEN,
                "tenant_mismatch",
                Borrowed("this token does not belong to the tenant in the path"),
            ),
            ApiError::NotFound(message) => (StatusCode::NOT_FOUND, "not_found", Borrowed(message)),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                Borrowed("this method is not allowed on this path"),
            ),
            ApiError::Conflict(message) => (StatusCode::CONFLICT, "conflict", Borrowed(message)),
            ApiError::PayloadTooLarge(message) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                Borrowed(message),
            ),
            ApiError::UnsupportedMediaType(message) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                Borrowed(message),
            ),
            ApiError::Unprocessable(message) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "unprocessable_document",
                Borrowed(message),
            ),
            ApiError::RateLimited {
                retry_after_seconds,
            } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                Owned(format!(
                    "too many requests for this tenant: retry after {retry_after_seconds} s"
                )),
            ),
            ApiError::TooManyFailures {
                retry_after_seconds,
            } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                Owned(format!(
                    "too many failed requests from this client: retry after {retry_after_seconds} s"
                )),
            ),
            ApiError::Overloaded {
                retry_after_seconds,
            } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "overloaded",
                Owned(format!(
                    "the appliance is at capacity: retry after {retry_after_seconds} s"
                )),
            ),
            ApiError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                Borrowed("internal error"),
            ),
            ApiError::TenantLocked => (
                StatusCode::LOCKED,
                "tenant_locked",
                Borrowed(
                    "this tenant's data is locked by a key its customer holds: its admin unlocks it with POST /v1/tenants/{t}/unlock",
                ),
            ),
            ApiError::CustomerKeyRejected => (
                StatusCode::UNAUTHORIZED,
                "customer_key_rejected",
                Borrowed(
                    "this key does not open the tenant's data key: give the age identity (AGE-SECRET-KEY-1...) whose recipient was enrolled",
                ),
            ),
            ApiError::ModelUnavailable(message) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "model_unavailable",
                Borrowed(message),
            ),
            ApiError::UnlockRefused {
                retry_after_seconds,
            } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                Owned(format!(
                    "too many wrong customer keys for this tenant: unlocking is refused, retry after {retry_after_seconds} s"
                )),
            ),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.describe().0
    }

    pub fn code(&self) -> &'static str {
        self.describe().1
    }

    pub fn message(&self) -> String {
        self.describe().2.into_owned()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code(), "message": self.message()}});
        let mut response = (self.status(), Json(body)).into_response();
        if let ApiError::RateLimited {
            retry_after_seconds,
        }
        | ApiError::TooManyFailures {
            retry_after_seconds,
        }
        | ApiError::Overloaded {
            retry_after_seconds,
        }
        | ApiError::UnlockRefused {
            retry_after_seconds,
        } = self
            && let Ok(value) = HeaderValue::from_str(&retry_after_seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        if let ApiError::ModelUnavailable(_) = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
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
            StoreError::TenantLocked(_) => ApiError::TenantLocked,
            StoreError::CustomerKeyRejected => ApiError::CustomerKeyRejected,
            error @ StoreError::NoCustomerKey(_) => ApiError::Conflict(error.to_string()),
            StoreError::NotInitialised(_)
            | StoreError::WrongMasterKey
            | StoreError::Crypto(_)
            | StoreError::NotThisTenant { .. }
            | StoreError::Database(_)
            | StoreError::Io(_)
            | StoreError::CheckpointUnsigned { .. }
            | StoreError::JobLost(_)
            | StoreError::MasterKeyInEnvironment => internal(&error),
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
                | ExtractError::NoText { .. }
                | ExtractError::ParserLimit
                | ExtractError::ParserUnavailable { .. }),
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
            error @ ApplianceError::Signing(_) => internal(&error),
            ApplianceError::PrivateModel(message) => ApiError::ModelUnavailable(message),
            ApplianceError::ServedElsewhere(message) => {
                tracing::warn!(%message, "request reached a process that does not serve its tenant");
                ApiError::Overloaded {
                    retry_after_seconds: 1,
                }
            }
            ApplianceError::UnlockRefused {
                retry_after_seconds,
            } => ApiError::UnlockRefused {
                retry_after_seconds,
            },
            ApplianceError::Portability(
                error @ (crate::portability::PortabilityError::Recipient(_)
                | crate::portability::PortabilityError::Decrypt(_)
                | crate::portability::PortabilityError::Malformed(_)
                | crate::portability::PortabilityError::Integrity(_)
                | crate::portability::PortabilityError::TooLarge(_)),
            ) => ApiError::InvalidRequest(error.to_string()),
            ApplianceError::Portability(
                error @ (crate::portability::PortabilityError::Store(_)
                | crate::portability::PortabilityError::Io(_)),
            ) => internal(&error),
        }
    }
}
