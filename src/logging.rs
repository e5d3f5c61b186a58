//! Logging set-up. Logs go to stderr, as text or JSON (`BULKHEAD_LOG_FORMAT=json`), with
//! the level from `RUST_LOG` (default `warn`). Nothing logs tenant content: modules log
//! ids, counts and timings only.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if std::env::var("BULKHEAD_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
    // A second init (tests) is harmless.
    let _ = result;
}
