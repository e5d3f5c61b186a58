//! Crash safety: `kill -9` of an ingesting process, then a restart. Every document the
//! process acknowledged (`queued` line) is present and searchable afterwards, and the
//! database is intact.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::{binary, cli, sample_contract, stdout};

fn marker(index: usize) -> String {
    format!("CRASHMARK{index:03}X")
}

/// Writes `count` contracts, each with its own marker, into a folder.
fn write_documents(dir: &std::path::Path, count: usize) {
    let samples = [
        "LifewayFoods",
        "ADUROBIOTECH",
        "DRAGONSYSTEMS",
        "BOLIVARMINING",
        "VEONEER",
    ];
    for index in 0..count {
        let (_, text) = sample_contract(samples[index % samples.len()]);
        let body = format!("Document {index}. Reference {}.\n\n{text}", marker(index));
        std::fs::write(dir.join(format!("contract-{index:02}.txt")), body).unwrap();
    }
}

/// Starts `ingest`, kills it with SIGKILL once `kill_after(line)` says so, and returns
/// the document ids it acknowledged.
fn ingest_and_kill(
    data: &std::path::Path,
    tenant: &str,
    folder: &std::path::Path,
    kill_after: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut child = Command::new(binary())
        .arg("--data-dir")
        .arg(data)
        .arg("--models-dir")
        .arg(bulkhead::config::default_models_dir())
        .args(["ingest", "--tenant", tenant])
        .arg(folder)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acknowledged = Vec::new();
    let reader = BufReader::new(child.stdout.take().unwrap());
    for line in reader.lines() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("queued") {
            acknowledged.push(rest.split_whitespace().next().unwrap().to_owned());
        }
        if kill_after(&line) {
            // SIGKILL: no destructor, no flush, no chance to clean up.
            child.kill().unwrap();
            break;
        }
    }
    child.wait().unwrap();
    acknowledged
}

fn assert_all_present_and_searchable(
    data: &std::path::Path,
    tenant: &str,
    acknowledged: &[String],
) {
    // Searching resumes the interrupted indexing first.
    let output = cli(
        data,
        &[
            "search",
            "--tenant",
            tenant,
            "--mode",
            "keyword",
            "--json",
            "Reference",
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listing = cli(data, &["documents", "--tenant", tenant, "--json"]);
    assert!(listing.status.success());
    let documents: serde_json::Value = serde_json::from_str(&stdout(&listing)).unwrap();
    let documents = documents["documents"].as_array().unwrap();
    for document_id in acknowledged {
        let document = documents
            .iter()
            .find(|d| d["document_id"] == document_id.as_str())
            .unwrap_or_else(|| panic!("acknowledged document {document_id} lost"));
        assert_eq!(document["status"], "indexed", "{document}");
        let index: usize = document["filename"].as_str().unwrap()[9..11]
            .parse()
            .unwrap();
        let found = cli(
            data,
            &[
                "search",
                "--tenant",
                tenant,
                "--mode",
                "keyword",
                "--json",
                &marker(index),
            ],
        );
        let results: serde_json::Value = serde_json::from_str(&stdout(&found)).unwrap();
        assert_eq!(
            results["results"][0]["document_id"],
            document_id.as_str(),
            "document {index} is searchable by its marker"
        );
    }
    // The database is intact.
    let connection = rusqlite::Connection::open(data.join("system.db")).unwrap();
    let check: String = connection
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn kill_during_indexing_loses_no_acknowledged_document() {
    let data = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    write_documents(folder.path(), 8);
    assert!(cli(data.path(), &["init"]).status.success());
    let tenant = stdout(&cli(data.path(), &["tenant", "create", "Crashy"]))
        .trim()
        .to_owned();
    let acknowledged = ingest_and_kill(data.path(), &tenant, folder.path(), |line| {
        line.starts_with("indexed")
    });
    assert_eq!(
        acknowledged.len(),
        8,
        "all uploads are acknowledged before indexing starts"
    );
    assert_all_present_and_searchable(data.path(), &tenant, &acknowledged);
}

#[test]
fn kill_during_upload_loses_no_acknowledged_document() {
    let data = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    write_documents(folder.path(), 6);
    assert!(cli(data.path(), &["init"]).status.success());
    let tenant = stdout(&cli(data.path(), &["tenant", "create", "Crashy"]))
        .trim()
        .to_owned();
    let acknowledged = ingest_and_kill(data.path(), &tenant, folder.path(), |line| {
        line.starts_with("queued") && line.contains("contract-02")
    });
    assert!(acknowledged.len() >= 3);
    assert_all_present_and_searchable(data.path(), &tenant, &acknowledged);
}
