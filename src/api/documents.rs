//! Documents: upload (multipart, streamed under a size limit, never written unencrypted),
//! list, metadata, original content, delete.

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use super::{ApiError, AppState, ReadDocuments, Tenant, WriteDocuments};
use crate::audit::Outcome;
use crate::ids::DocumentId;
use crate::store::DocumentStatus;
use crate::wire;

/// Room for the multipart framing and the metadata field around the file.
const MULTIPART_OVERHEAD: usize = 1 << 20;
const MAX_METADATA_BYTES: usize = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/tenants/{t}/documents",
            get(list).post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/v1/tenants/{t}/documents/{d}", get(get_one).delete(delete))
        .route("/v1/tenants/{t}/documents/{d}/content", get(content))
        .route("/v1/tenants/{t}/documents/{d}/text", get(text))
}

fn document_id(text: &str) -> Result<DocumentId, ApiError> {
    DocumentId::try_from(text).map_err(|_| ApiError::NotFound("no document with this id".into()))
}

/// Audits a successful action on one document, by the caller's pseudonym.
fn audit_document(
    state: &AppState,
    tenant: &Tenant<impl super::Permission>,
    action: &'static str,
    document_id: &DocumentId,
) {
    tenant.audit(state, action, document_id.to_string(), Outcome::Ok);
}

#[derive(Deserialize)]
pub struct UploadParams {
    #[serde(default)]
    wait: bool,
}

#[utoipa::path(post, path = "/v1/tenants/{t}/documents",
    params(("t" = String, Path, description = "tenant id"), ("wait" = Option<bool>, Query, description = "answer once indexed")),
    request_body(content_type = "multipart/form-data", description = "field `file`, optional field `metadata` (a JSON object)"),
    responses((status = 202, body = wire::Uploaded), (status = 201, body = wire::Uploaded)), security(("bearer" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    tenant: Tenant<WriteDocuments>,
    Query(params): Query<UploadParams>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    // Each upload is held in memory while it is received and sealed: a bounded number at
    // once (503 with Retry-After beyond it), taken before a byte of the body is read.
    let receiving = state.upload_permit()?;
    let limit = state.appliance.config().extract_limits.max_file_bytes as usize;
    let Upload {
        filename,
        bytes,
        metadata,
    } = read_upload(request, limit).await?;
    let appliance = state.appliance.clone();
    let scope = tenant.scope.clone();
    let document_id = state
        .blocking(move || Ok(appliance.upload(&scope, &filename, metadata.as_ref(), &bytes)?))
        .await?;
    drop(receiving);
    audit_document(&state, &tenant, "document.upload", &document_id);
    let uploaded = |status: StatusCode, state: &'static str, chunks: Option<u64>| {
        (
            status,
            Json(wire::Uploaded {
                document_id: document_id.to_string(),
                status: state,
                chunks,
                error: None,
            }),
        )
            .into_response()
    };
    if !params.wait {
        state.indexer.notify_one();
        return Ok(uploaded(StatusCode::ACCEPTED, "queued", None));
    }
    let appliance = state.appliance.clone();
    let scope = tenant.scope.clone();
    let id = document_id.clone();
    let record = state
        .blocking(move || {
            appliance.process_jobs(&scope, &mut |_| {})?;
            Ok(appliance.document(&scope, &id)?)
        })
        .await?;
    match record.status {
        DocumentStatus::Indexed => Ok(uploaded(
            StatusCode::CREATED,
            "indexed",
            Some(record.chunks),
        )),
        DocumentStatus::Failed => {
            Err(ApiError::Unprocessable(record.error.unwrap_or_else(|| {
                "the document could not be indexed".into()
            })))
        }
        DocumentStatus::Queued => Ok(uploaded(StatusCode::ACCEPTED, "queued", None)),
    }
}

/// An upload's parts, read from its multipart body.
struct Upload {
    filename: String,
    bytes: Vec<u8>,
    metadata: Option<serde_json::Value>,
}

/// Reads a multipart upload under the size limit: a declared length over it is refused
/// before a byte of the body is read, and the file is streamed into memory (never to
/// disk) and refused as soon as it passes the limit.
async fn read_upload(request: axum::extract::Request, limit: usize) -> Result<Upload, ApiError> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("multipart/form-data") {
        return Err(ApiError::UnsupportedMediaType(
            "upload as multipart/form-data with a `file` field".into(),
        ));
    }
    // A client sending `Expect: 100-continue` never sends an over-long body at all.
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<usize>().ok());
    let too_large =
        || ApiError::PayloadTooLarge(format!("the file is over the limit of {limit} bytes"));
    if declared.is_some_and(|length| length > limit + MULTIPART_OVERHEAD) {
        return Err(too_large());
    }
    let request = request.map(|body| {
        axum::body::Body::new(http_body_util::Limited::new(
            body,
            limit + MULTIPART_OVERHEAD,
        ))
    });
    let mut multipart = <Multipart as axum::extract::FromRequest<()>>::from_request(request, &())
        .await
        .map_err(|rejection| {
            ApiError::InvalidRequest(format!(
                "malformed multipart body: {}",
                rejection.body_text()
            ))
        })?;
    let multipart_error = |error: axum::extract::multipart::MultipartError| {
        if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::InvalidRequest(format!("malformed multipart body: {}", error.body_text()))
        }
    };
    let mut file: Option<(String, Vec<u8>)> = None;
    let mut metadata: Option<serde_json::Value> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        match field.name() {
            Some("file") => {
                let filename = field.file_name().unwrap_or("unnamed").to_owned();
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    if bytes.len() + chunk.len() > limit {
                        return Err(too_large());
                    }
                    bytes.extend_from_slice(&chunk);
                }
                file = Some((filename, bytes));
            }
            Some("metadata") => {
                let bytes = field.bytes().await.map_err(multipart_error)?;
                metadata = Some(parse_metadata(&bytes)?);
            }
            _ => {}
        }
    }
    let (filename, bytes) = file
        .ok_or_else(|| ApiError::InvalidRequest("the multipart body has no `file` field".into()))?;
    if bytes.is_empty() {
        return Err(ApiError::Unprocessable(
            "document is empty: upload a file with text in it".into(),
        ));
    }
    Ok(Upload {
        filename,
        bytes,
        metadata,
    })
}

/// An upload's `metadata` field: a JSON object of at most 64 KiB.
fn parse_metadata(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    if bytes.len() > MAX_METADATA_BYTES {
        return Err(ApiError::PayloadTooLarge("metadata is over 64 KiB".into()));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|_| ApiError::InvalidRequest("metadata must be a JSON object".into()))?;
    if !value.is_object() {
        return Err(ApiError::InvalidRequest(
            "metadata must be a JSON object".into(),
        ));
    }
    Ok(value)
}

#[derive(Deserialize)]
pub struct ListParams {
    cursor: Option<String>,
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/tenants/{t}/documents",
    params(("t" = String, Path, description = "tenant id"), ("cursor" = Option<String>, Query), ("limit" = Option<usize>, Query)),
    responses((status = 200, body = wire::DocumentList)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    tenant: Tenant<ReadDocuments>,
    Query(params): Query<ListParams>,
) -> Result<Json<wire::DocumentList>, ApiError> {
    let limit = params.limit.unwrap_or(100).clamp(1, 1000);
    let offset = match params.cursor.as_deref() {
        None | Some("") => 0,
        Some(cursor) => cursor
            .parse::<usize>()
            .map_err(|_| ApiError::InvalidRequest("malformed cursor".into()))?,
    };
    let appliance = state.appliance.clone();
    let scope = tenant.scope.clone();
    let documents = state
        .blocking(move || Ok(appliance.list_documents(&scope)?))
        .await?;
    let page: Vec<wire::Document> = documents
        .iter()
        .skip(offset)
        .take(limit)
        .map(wire::Document::from)
        .collect();
    let next = offset + page.len();
    Ok(Json(wire::DocumentList {
        documents: page,
        next_cursor: (next < documents.len()).then(|| next.to_string()),
    }))
}

#[utoipa::path(get, path = "/v1/tenants/{t}/documents/{d}",
    params(("t" = String, Path), ("d" = String, Path)),
    responses((status = 200, body = wire::Document)), security(("bearer" = [])))]
pub async fn get_one(
    State(state): State<AppState>,
    tenant: Tenant<ReadDocuments>,
    Path(path): Path<(String, String)>,
) -> Result<Json<wire::Document>, ApiError> {
    let document_id = document_id(&path.1)?;
    let appliance = state.appliance.clone();
    let scope = tenant.scope.clone();
    let (record, catalogue) = state
        .blocking(move || {
            let record = appliance.document(&scope, &document_id)?;
            let catalogue = appliance.document_catalogue(&scope, &document_id)?;
            Ok((record, catalogue))
        })
        .await?;
    Ok(Json(wire::Document::with_catalogue(
        &record,
        catalogue.as_ref(),
    )))
}

#[utoipa::path(get, path = "/v1/tenants/{t}/documents/{d}/content",
    params(("t" = String, Path), ("d" = String, Path)),
    responses((status = 200, description = "the original bytes")), security(("bearer" = [])))]
pub async fn content(
    State(state): State<AppState>,
    tenant: Tenant<ReadDocuments>,
    Path(path): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let document_id = document_id(&path.1)?;
    let appliance = state.appliance.clone();
    let scope = tenant.scope.clone();
    let id = document_id.clone();
    let (record, bytes) = state
        .blocking(move || {
            Ok((
                appliance.document(&scope, &id)?,
                appliance.document_original(&scope, &id)?,
            ))
        })
        .await?;
    audit_document(&state, &tenant, "document.download", &document_id);
    let content_type = record
        .content_type
        .unwrap_or_else(|| "application/octet-stream".into());
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_DISPOSITION, "attachment".to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        bytes,
    )
        .into_response())
}

#[utoipa::path(get, path = "/v1/tenants/{t}/documents/{d}/text",
    params(("t" = String, Path), ("d" = String, Path)),
    responses((status = 200, body = wire::DocumentText), (status = 409, description = "not indexed yet")),
    security(("bearer" = [])))]
pub async fn text(
    State(state): State<AppState>,
    tenant: Tenant<ReadDocuments>,
    Path(path): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let document_id = document_id(&path.1)?;
    let appliance = state.appliance.clone();
    let scope = tenant.scope.clone();
    let id = document_id.clone();
    let (text, page_starts) = state
        .blocking(move || {
            let text = appliance.document_text(&scope, &id)?;
            Ok((text, appliance.document_page_starts(&scope, &id)?))
        })
        .await?;
    let text = text.ok_or_else(|| ApiError::Conflict("the document is not indexed yet".into()))?;
    audit_document(&state, &tenant, "document.text", &document_id);
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(wire::DocumentText {
            document_id: document_id.to_string(),
            text,
            page_starts,
        }),
    )
        .into_response())
}

#[utoipa::path(delete, path = "/v1/tenants/{t}/documents/{d}",
    params(("t" = String, Path), ("d" = String, Path)),
    responses((status = 204, description = "deleted; gone from search and answers")), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    tenant: Tenant<WriteDocuments>,
    Path(path): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let document_id = document_id(&path.1)?;
    let appliance = state.appliance.clone();
    let scope = tenant.scope.clone();
    let id = document_id.clone();
    state
        .blocking(move || Ok(appliance.delete_document(&scope, &id)?))
        .await?;
    audit_document(&state, &tenant, "document.delete", &document_id);
    Ok(StatusCode::NO_CONTENT)
}
