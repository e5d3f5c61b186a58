//! Logging set-up. Logs go to stderr, as text or JSON (`BULKHEAD_LOG_FORMAT=json`), with
//! the level from `RUST_LOG` (default `warn`). Nothing logs tenant content: modules log
//! ids, counts and timings only, and the document parsers' own logs — which dump glyph
//! maps, fonts and streams, i.e. document content — are switched off whatever `RUST_LOG`
//! says (issue 11).

use tracing::Subscriber;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, fmt, layer::SubscriberExt};

/// Targets (crates, through the `log` bridge) whose logs quote documents. Always off.
pub const CONTENT_LOGGING_TARGETS: &[&str] = &[
    "lopdf",
    "pdf_extract",
    "adobe_cmap_parser",
    "type1_encoding_parser",
    "cff_parser",
    "postscript",
    "html2text",
    "html5ever",
    "markup5ever",
    "quick_xml",
    "zip",
];

pub fn init() {
    let registry =
        tracing_subscriber::registry().with(filter(std::env::var("RUST_LOG").ok().as_deref()));
    let result = if std::env::var("BULKHEAD_LOG_FORMAT").as_deref() == Ok("json") {
        registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init()
    } else {
        registry
            .with(fmt::layer().with_writer(std::io::stderr))
            .try_init()
    };
    // A second init (tests) is harmless.
    let _ = result;
}

/// The filter for `rust_log` (`RUST_LOG`'s value; `warn` when absent or malformed), and
/// after it a filter that drops every event of the [`CONTENT_LOGGING_TARGETS`]. A
/// separate filter rather than `target=off` directives: a more specific directive
/// (`lopdf::parser=trace`) or a span directive (`[request]=trace`) would beat those.
pub fn filter<S>(rust_log: Option<&str>) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let levels = rust_log
        .and_then(|value| EnvFilter::try_new(value).ok())
        .unwrap_or_else(|| EnvFilter::new("warn"));
    levels.and_then(tracing_subscriber::filter::filter_fn(|metadata| {
        !is_content_target(metadata.target())
    }))
}

fn is_content_target(target: &str) -> bool {
    CONTENT_LOGGING_TARGETS.iter().any(|content| {
        target
            .strip_prefix(content)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts the events that pass the filter, per target prefix.
    struct Count(Arc<[AtomicUsize; 2]>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Count {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            let slot = usize::from(event.metadata().target().starts_with("bulkhead"));
            self.0[slot].fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn issue_11_parser_logs_never_pass_even_at_trace() {
        for rust_log in [
            Some("trace"),
            Some("lopdf=trace,pdf_extract=trace,trace"),
            Some("debug,lopdf::parser=trace"),
            Some("error,[request]=trace,pdf_extract::font=trace"),
            None,
        ] {
            let counts = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
            let subscriber = tracing_subscriber::registry()
                .with(filter(rust_log))
                .with(Count(Arc::clone(&counts)));
            tracing::subscriber::with_default(subscriber, || {
                tracing::trace!(target: "lopdf::parser", "glyph map of the document");
                tracing::debug!(target: "lopdf::reader", "stream dump");
                tracing::error!(target: "pdf_extract", "font widths");
                tracing::warn!(target: "pdf_extract::font", "encoding");
                tracing::error!(target: "bulkhead::store", "ids only");
                let span = tracing::error_span!("request");
                let _inside = span.enter();
                tracing::error!(target: "pdf_extract::font", "inside a request span");
            });
            assert_eq!(counts[0].load(Ordering::SeqCst), 0, "{rust_log:?}");
            assert_eq!(counts[1].load(Ordering::SeqCst), 1, "{rust_log:?}");
        }
    }
}
