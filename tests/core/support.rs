//! Shared helpers: data directories, the appliance, sample documents, the CLI binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use bulkhead::appliance::Appliance;
use bulkhead::auth::{OperatorReason, TenantScope};
use bulkhead::config::{self, Config};
use bulkhead::store::{Store, Tier};

pub fn sample_contract(prefix: &str) -> (String, String) {
    let (name, path) = crate::common::sample_file(prefix);
    (name, std::fs::read_to_string(&path).unwrap())
}

pub fn config_for(data_dir: &Path) -> Config {
    Config::new(data_dir.to_path_buf(), config::default_models_dir())
}

/// A fresh, initialised data directory and an appliance on it.
pub fn fresh_appliance() -> (tempfile::TempDir, Arc<Appliance>) {
    let dir = tempfile::tempdir().unwrap();
    Store::init(dir.path()).unwrap();
    bulkhead::auth::tokens::Signer::init(dir.path()).unwrap();
    let appliance = Appliance::open(config_for(dir.path())).unwrap();
    (dir, Arc::new(appliance))
}

pub fn new_tenant(appliance: &Appliance, name: &str) -> TenantScope {
    let record = appliance.create_tenant(name, Tier::Standard).unwrap();
    appliance
        .operator_scope(&record.tenant_id, OperatorReason::CommandLine)
        .unwrap()
}

/// Uploads and indexes documents; panics if any fails.
pub fn ingest(appliance: &Appliance, scope: &TenantScope, documents: &[(&str, &str)]) {
    for (filename, text) in documents {
        appliance
            .upload(scope, filename, None, text.as_bytes())
            .unwrap();
    }
    let outcomes = appliance.process_jobs(scope, &mut |_| {}).unwrap();
    for outcome in outcomes {
        assert!(outcome.result.is_ok(), "{:?}", outcome.result);
    }
}

pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bulkhead"))
}

/// Runs the CLI on a data directory.
pub fn cli(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(binary())
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--models-dir")
        .arg(config::default_models_dir())
        .args(args)
        .env_remove("BULKHEAD_MASTER_KEY")
        .output()
        .unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every regular file under `dir`, recursively.
pub fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                pending.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files
}
