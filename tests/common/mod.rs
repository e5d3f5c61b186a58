//! Helpers shared by the test binaries; each includes this file as `mod common`.

use std::path::PathBuf;

/// The bundled sample contract whose file name starts with `prefix`: its name and path.
pub fn sample_file(prefix: &str) -> (String, PathBuf) {
    let dir = bulkhead::config::sample_data_dir().join("contracts");
    let path = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(prefix)
        })
        .unwrap_or_else(|| panic!("no sample contract starting with {prefix}"));
    (
        path.file_name().unwrap().to_string_lossy().into_owned(),
        path,
    )
}

/// The PDF fixture: a three-page hosting agreement.
#[allow(dead_code)] // the benches upload no PDF
pub fn hosting_agreement_pdf() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/hosting-agreement.pdf"
    ))
    .unwrap()
}

/// Starts `bulkhead serve --listen 127.0.0.1:0` on a data directory with `extra` flags
/// and environment; returns the child and the base URL it printed (`http(s)://host:port`).
#[allow(dead_code)] // the core tests start no server
pub fn spawn_server(
    data_dir: &std::path::Path,
    extra: &[&str],
    env: &[(&str, String)],
    stderr: std::process::Stdio,
) -> (std::process::Child, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--models-dir")
        .arg(bulkhead::config::default_models_dir())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        // Test servers load the models when a request needs them, not all at start (the
        // CPU of two loads per server); `env` may say `false` (the default's own test).
        .env("BULKHEAD_LAZY_MODELS", "true")
        .envs(env.iter().map(|(name, value)| (name, value)))
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    (child, base)
}
