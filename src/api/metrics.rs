//! Prometheus metrics: requests by route template and status, latency, inference pool
//! rejections. Labels are route templates, never ids or content.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;

#[derive(Default)]
struct RouteStats {
    count: u64,
    seconds_sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    // std mutex: updated once per request for a few nanoseconds, never across an await.
    routes: Mutex<BTreeMap<(String, String, u16), RouteStats>>,
    overloaded: AtomicU64,
    uploads_refused: AtomicU64,
}

impl Metrics {
    pub fn overloaded(&self) {
        self.overloaded.fetch_add(1, Ordering::Relaxed);
    }

    pub fn upload_refused(&self) {
        self.uploads_refused.fetch_add(1, Ordering::Relaxed);
    }

    fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut routes = self
            .routes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let stats = routes
            .entry((method.to_owned(), route.to_owned(), status))
            .or_default();
        stats.count += 1;
        stats.seconds_sum += seconds;
    }

    /// The Prometheus text exposition format.
    pub fn render(&self, open: &crate::appliance::OpenTenantStats) -> String {
        let mut out = String::new();
        let routes = self
            .routes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        out.push_str("# HELP bulkhead_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE bulkhead_http_requests_total counter\n");
        for ((method, route, status), stats) in routes.iter() {
            let _ = writeln!(
                out,
                "bulkhead_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {}",
                stats.count
            );
        }
        out.push_str("# HELP bulkhead_http_request_duration_seconds_sum Total time spent serving requests.\n");
        out.push_str("# TYPE bulkhead_http_request_duration_seconds_sum counter\n");
        for ((method, route, status), stats) in routes.iter() {
            let _ = writeln!(
                out,
                "bulkhead_http_request_duration_seconds_sum{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {:.6}",
                stats.seconds_sum
            );
        }
        counter(
            &mut out,
            "bulkhead_inference_rejected_total",
            "Requests refused with 503 because the inference pool was full.",
            self.overloaded.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "bulkhead_uploads_refused_total",
            "Uploads refused with 503 because the most uploads at once were being received.",
            self.uploads_refused.load(Ordering::Relaxed),
        );
        render_open_tenants(&mut out, open);
        out
    }
}

/// The open tenants (issue 12): how many, what they weigh against the budget, and how
/// many were evicted and why.
fn render_open_tenants(out: &mut String, open: &crate::appliance::OpenTenantStats) {
    gauge(
        out,
        "bulkhead_open_tenants",
        "Tenant indexes held in memory.",
        open.open_tenants as u64,
    );
    gauge(
        out,
        "bulkhead_open_tenants_pinned",
        "Tenant indexes held in memory that are never evicted (premium).",
        open.pinned_tenants as u64,
    );
    gauge(
        out,
        "bulkhead_open_tenant_bytes",
        "Approximate resident bytes of the tenant indexes held in memory.",
        open.open_bytes,
    );
    gauge(
        out,
        "bulkhead_open_tenant_budget_bytes",
        "The byte budget of the tenant indexes held in memory.",
        open.budget_bytes,
    );
    let _ = writeln!(
        out,
        "# HELP bulkhead_tenant_evictions_total Tenant indexes dropped from memory, by reason."
    );
    let _ = writeln!(out, "# TYPE bulkhead_tenant_evictions_total counter");
    let _ = writeln!(
        out,
        "bulkhead_tenant_evictions_total{{reason=\"budget\"}} {}",
        open.evicted_for_budget
    );
    let _ = writeln!(
        out,
        "bulkhead_tenant_evictions_total{{reason=\"idle\"}} {}",
        open.evicted_idle
    );
}

/// One gauge in the Prometheus text format, with its help and type lines.
fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} gauge");
    let _ = writeln!(out, "{name} {value}");
}

/// One counter in the Prometheus text format, with its help and type lines.
fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    let _ = writeln!(out, "{name} {value}");
}

/// The method as a metric label: the standard methods by name, anything else a client
/// invents as "OTHER" (one label, not one series per string sent).
fn method_label(method: &axum::http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "OTHER",
    }
}

/// Middleware: times each request and logs it with its request id (no content).
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method()).to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let request_id = crate::ids::DocumentId::generate().as_str()[2..14].to_owned();
    // Every log line of the request carries its id.
    let span = tracing::info_span!("request", request_id = %request_id, %method, %route);
    let response = tracing::Instrument::instrument(next.run(request), span).await;
    let seconds = started.elapsed().as_secs_f64();
    let status = response.status().as_u16();
    state.metrics.record(&method, &route, status, seconds);
    tracing::info!(
        request_id,
        method,
        route,
        status,
        elapsed_ms = (seconds * 1000.0) as u64,
        "request"
    );
    let mut response = response;
    if let Ok(value) = axum::http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}
