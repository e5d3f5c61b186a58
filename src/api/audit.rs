//! The audit log over HTTP: a tenant's events (auditor, admin) and the chain check
//! (platform admin).

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use serde::Deserialize;

use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{AdministerTenant, ApiError, AppState, Platform, ReadAudit, Tenant};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/tenants/{t}/audit", get(events))
        .route("/v1/audit/verify", get(verify))
        .route("/v1/tenants/{t}/reports/access-review", get(access_review))
        .route("/v1/tenants/{t}/usage", get(usage))
        .route("/v1/tenants/{t}/export", axum::routing::post(export))
}

#[derive(Deserialize)]
pub struct EventParams {
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/tenants/{t}/audit",
    params(("t" = String, Path), ("from" = Option<String>, Query), ("to" = Option<String>, Query), ("limit" = Option<usize>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, description = "{events, next_cursor}")), security(("bearer" = [])))]
pub async fn events(
    State(state): State<AppState>,
    tenant: Tenant<ReadAudit>,
    Query(params): Query<EventParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (from, to) = period(&PeriodParams {
        from: params.from.clone(),
        to: params.to.clone(),
        quarter: None,
        format: None,
    })?;
    let after: i64 = match params.cursor.as_deref() {
        None | Some("") => 0,
        Some(cursor) => cursor
            .parse()
            .map_err(|_| ApiError::InvalidRequest("malformed cursor".into()))?,
    };
    let limit = params.limit.unwrap_or(100).clamp(1, 1000);
    let store_state = state.clone();
    let scope = tenant.scope.clone();
    let rows = state
        .blocking(move || Ok(store_state.appliance.audit_events(&scope)?))
        .await?;
    let selected: Vec<_> = rows
        .iter()
        .filter(|row| row.seq > after && row.at >= from && row.at < to)
        .take(limit + 1)
        .collect();
    let more = selected.len() > limit;
    let page = &selected[..selected.len().min(limit)];
    Ok(Json(serde_json::json!({
        "events": page.iter().map(|row| serde_json::json!({
            "seq": row.seq,
            "at": crate::time::rfc3339(row.at),
            "user": row.actor,
            "action": row.action,
            "resource": row.resource,
            "outcome": row.outcome,
        })).collect::<Vec<_>>(),
        "next_cursor": if more { page.last().map(|row| row.seq.to_string()) } else { None },
    })))
}

#[utoipa::path(get, path = "/v1/audit/verify", responses((status = 200, description = "{ok, entries, head}")), security(("bearer" = [])))]
pub async fn verify(
    State(state): State<AppState>,
    _platform: Platform,
) -> Result<Json<crate::wire::AuditVerification>, ApiError> {
    let store_state = state.clone();
    let report = state
        .blocking(move || {
            Ok(store_state
                .appliance
                .verify_audit(store_state.signer.as_ref())?)
        })
        .await?;
    Ok(Json(crate::wire::AuditVerification::from(&report)))
}

#[derive(Deserialize)]
pub struct PeriodParams {
    from: Option<String>,
    to: Option<String>,
    quarter: Option<String>,
    format: Option<String>,
}

fn period(params: &PeriodParams) -> Result<(i64, i64), ApiError> {
    crate::report::period(
        params.quarter.as_deref(),
        params.from.as_deref(),
        params.to.as_deref(),
    )
    .map_err(ApiError::InvalidRequest)
}

#[utoipa::path(get, path = "/v1/tenants/{t}/reports/access-review",
    params(("t" = String, Path), ("from" = Option<String>, Query), ("to" = Option<String>, Query), ("quarter" = Option<String>, Query), ("format" = Option<String>, Query, description = "json (default), csv or html")),
    responses((status = 200, description = "the access review")), security(("bearer" = [])))]
pub async fn access_review(
    State(state): State<AppState>,
    tenant: Tenant<ReadAudit>,
    Query(params): Query<PeriodParams>,
) -> Result<Response, ApiError> {
    let (from, to) = period(&params)?;
    let store_state = state.clone();
    let scope = tenant.scope.clone();
    let rows = state
        .blocking(move || Ok(store_state.appliance.audit_events(&scope)?))
        .await?;
    let tenant_id = tenant.scope.tenant_id().to_string();
    Ok(match params.format.as_deref().unwrap_or("json") {
        "json" => Json(crate::report::build(&tenant_id, &rows, from, to)).into_response(),
        "csv" => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            crate::report::to_csv(&rows, from, to),
        )
            .into_response(),
        "html" => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            crate::report::to_html(&crate::report::build(&tenant_id, &rows, from, to)),
        )
            .into_response(),
        _ => {
            return Err(ApiError::InvalidRequest(
                "format must be json, csv or html".into(),
            ));
        }
    })
}

#[utoipa::path(get, path = "/v1/tenants/{t}/usage",
    params(("t" = String, Path), ("from" = Option<String>, Query), ("to" = Option<String>, Query), ("quarter" = Option<String>, Query)),
    responses((status = 200, description = "documents, chunks, bytes stored, queries, tokens in/out")), security(("bearer" = [])))]
pub async fn usage(
    State(state): State<AppState>,
    tenant: Tenant<AdministerTenant>,
    Query(params): Query<PeriodParams>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (from, to) = period(&params)?;
    let store_state = state.clone();
    let scope = tenant.scope.clone();
    let usage = state
        .blocking(move || Ok(store_state.appliance.usage(&scope, from, to)?))
        .await?;
    let mut body =
        serde_json::to_value(crate::wire::Usage::from(&usage)).map_err(|_| ApiError::Internal)?;
    body["from"] = serde_json::json!(crate::time::rfc3339(from));
    body["to"] = serde_json::json!(crate::time::rfc3339(to.min(crate::time::LATEST_RFC3339)));
    Ok(Json(body))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// An age X25519 recipient (`age1...`) to encrypt the archive to.
    #[serde(default)]
    recipient: Option<String>,
}

/// Sends what a blocking writer writes as the chunks of a streamed body.
struct ChannelWriter(tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>);

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(bytes::Bytes::copy_from_slice(data)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[utoipa::path(post, path = "/v1/tenants/{t}/export", request_body = ExportRequest,
    params(("t" = String, Path)),
    responses((status = 200, description = "a streamed tar archive (age-encrypted with a recipient)")), security(("bearer" = [])))]
pub async fn export(
    State(state): State<AppState>,
    tenant: Tenant<AdministerTenant>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // The body is optional: empty means a plain (unencrypted) export.
    let request: ExportRequest = if body.iter().all(u8::is_ascii_whitespace) {
        ExportRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|error| ApiError::InvalidRequest(format!("malformed JSON body: {error}")))?
    };
    if let Some(recipient) = &request.recipient {
        use std::str::FromStr;
        age::x25519::Recipient::from_str(recipient.trim()).map_err(|_| {
            ApiError::InvalidRequest("recipient must be an age X25519 recipient (age1...)".into())
        })?;
    }
    // A locked BYOK tenant is refused before the stream starts (issue 12), not mid-way.
    super::customer_key::refuse_if_locked(&state, &tenant.scope).await?;
    let encrypted = request.recipient.is_some();
    let (sender, receiver) = tokio::sync::mpsc::channel(8);
    let appliance = state.appliance.clone();
    let scope = tenant.scope.clone();
    let audit_state = state.clone();
    let actor = tenant.actor(&state);
    tokio::task::spawn_blocking(move || {
        // Bounded memory: one document at a time, 8 chunks in flight to the client.
        let writer = std::io::BufWriter::with_capacity(256 * 1024, ChannelWriter(sender));
        let result = appliance.export_tenant(&scope, writer, request.recipient.as_deref());
        if let Err(error) = &result {
            tracing::error!(%error, "export failed");
        }
        audit_state.audit(crate::audit::AuditEvent {
            tenant_id: Some(scope.tenant_id().to_string()),
            actor,
            action: "export",
            resource: result
                .as_ref()
                .map(|s| format!("{} documents", s.documents))
                .unwrap_or_default(),
            outcome: if result.is_ok() {
                crate::audit::Outcome::Ok
            } else {
                crate::audit::Outcome::Failed
            },
        });
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(receiver);
    let content_type = if encrypted {
        "application/octet-stream"
    } else {
        "application/x-tar"
    };
    let filename = if encrypted {
        "export.tar.age"
    } else {
        "export.tar"
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{filename}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        axum::body::Body::from_stream(stream),
    )
        .into_response())
}
