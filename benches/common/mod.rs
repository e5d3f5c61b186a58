//! Helpers shared by the benchmark harnesses; each includes this file as `mod common`.

use std::time::Duration;

/// A whole number from the environment, else `default`.
#[allow(dead_code)] // the catalogue bench has no sizes to read
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The sample at `fraction` (0.5: the median) of sorted samples; zero when there are none.
#[allow(dead_code)] // the catalogue bench times nothing
pub fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * fraction).round() as usize]
}

/// The CUAD dev set (`CUAD_DIR`, default `data/eval/cuad-dev` in this repository).
#[allow(dead_code)] // the load bench uses the bundled samples, not CUAD
pub fn cuad_dir() -> std::path::PathBuf {
    std::env::var_os("CUAD_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/eval/cuad-dev")
        })
}

/// The first `count` CUAD dev contracts, in file-name order.
#[allow(dead_code)] // as above
pub fn cuad_contracts(count: usize) -> Vec<std::path::PathBuf> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(cuad_dir().join("contracts"))
        .expect("CUAD dev contracts (set CUAD_DIR)")
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files.truncate(count);
    files
}

/// The multi-threaded tokio runtime the load benches drive their clients and server on.
#[allow(dead_code)] // only the load benches serve in process
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// An HTTP server for `state` on a free loopback port, in this process: its base URL, the
/// sender that stops it, and the task to await once stopped.
#[allow(dead_code)] // only the load benches serve in process
pub async fn serve_in_process(
    state: bulkhead::api::AppState,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), bulkhead::server::ServeError>>,
) {
    let server = bulkhead::server::Server::bind("127.0.0.1:0", None, state)
        .await
        .unwrap();
    let base = format!("http://{}", server.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    (base, stop, serving)
}

/// A freshly initialised data directory's appliance (repository models), with the signer
/// and verifier of its tokens.
#[allow(dead_code)] // only the load benches serve
pub fn fresh_appliance(
    data: &std::path::Path,
) -> (
    std::sync::Arc<bulkhead::appliance::Appliance>,
    bulkhead::auth::tokens::Signer,
    bulkhead::auth::tokens::Verifier,
) {
    use bulkhead::auth::tokens::{Signer, Verifier};
    bulkhead::store::Store::init(data).unwrap();
    Signer::init(data).unwrap();
    let appliance = std::sync::Arc::new(
        bulkhead::appliance::Appliance::open(bulkhead::config::Config::new(
            data.to_path_buf(),
            bulkhead::config::default_models_dir(),
        ))
        .unwrap(),
    );
    let signer = Signer::load(data).unwrap();
    let verifier = Verifier::new(&signer);
    (appliance, signer, verifier)
}
