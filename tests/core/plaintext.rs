//! No plaintext tenant content on disk: markers planted in file names, metadata and text,
//! then every byte of every file under the data directory is scanned — SQLite and its WAL,
//! blobs, index files, anything else — and every file in shared memory (`/dev/shm`) and
//! the temporary directory, also after a server was killed with SIGKILL in the middle of
//! indexing (issue 11, finding 8).

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bulkhead::index::SearchMode;

use crate::support::{all_files, cli, fresh_appliance, new_tenant, sample_contract, stdout};

const WINDOW: usize = 40;

fn window_hash(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

#[test]
fn no_marker_and_no_run_of_document_text_is_written_to_disk() {
    let started = SystemTime::now();
    let (dir, appliance) = fresh_appliance();
    let tenant = new_tenant(&appliance, "TENANTNAMEMARKER Holdings");
    let contract = sample_contract("DRAGONSYSTEMS");
    let marked_text = format!(
        "TEXTMARKERQX81 Master services terms.\n\n{}\n\nClosing note TEXTMARKERQX81.",
        contract.1
    );
    let metadata =
        serde_json::json!({"client": "METAMARKERZZ29", "matter": "Project METAMARKERZZ29"});
    appliance
        .upload(
            &tenant,
            "FILEMARKERJD93 services.txt",
            Some(&metadata),
            marked_text.as_bytes(),
        )
        .unwrap();
    appliance
        .upload(&tenant, &contract.0, None, contract.1.as_bytes())
        .unwrap();
    let outcomes = appliance.process_jobs(&tenant, &mut |_| {}).unwrap();
    assert!(outcomes.iter().all(|outcome| outcome.result.is_ok()));
    // Use it: searches and an answer write index snapshots and touch the database.
    let hits = appliance
        .search(&tenant, "TEXTMARKERQX81", 3, SearchMode::Keyword)
        .unwrap();
    assert!(hits[0].chunk.text.contains("TEXTMARKERQX81"));
    appliance
        .ask(
            &tenant,
            "How much notice must Dragon give to terminate without cause?",
            None,
            &mut |_| true,
        )
        .unwrap();
    drop(appliance);

    let markers = [
        "TEXTMARKERQX81",
        "METAMARKERZZ29",
        "FILEMARKERJD93",
        "TENANTNAMEMARKER",
    ];
    let mut document_windows = HashSet::new();
    for text in [&marked_text, &contract.1] {
        for window in text.as_bytes().windows(WINDOW) {
            // Runs of mostly blanks or repeated punctuation are not content.
            let distinct: HashSet<u8> = window.iter().copied().collect();
            if distinct.len() >= 12 {
                document_windows.insert(window_hash(window));
            }
        }
    }
    // Nor in shared memory or the temporary directory (where an index dump was once
    // staged), whatever else wrote there.
    assert_no_marker_in(&scratch_files(started, &[]), &markers);

    let files = all_files(dir.path());
    assert!(files.iter().any(|f| f.ends_with("system.db")));
    assert!(files.iter().any(|f| f.to_string_lossy().contains("blobs")));
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().contains("text-index"))
    );
    assert_no_marker_in(&files, &markers);
    for file in files {
        let name = file.to_string_lossy();
        let bytes = std::fs::read(&file).unwrap();
        for (offset, window) in bytes.windows(WINDOW).enumerate() {
            assert!(
                !document_windows.contains(&window_hash(window)),
                "a {WINDOW}-byte run of document text at offset {offset} of {name}"
            );
        }
    }
}

/// No marker (as written, or lowercased as an index term) in the name or the bytes of any
/// of `files`. A file that vanished or cannot be read (another user's) is skipped.
fn assert_no_marker_in(files: &[PathBuf], markers: &[&str]) {
    for file in files {
        let name = file.to_string_lossy();
        let Ok(bytes) = std::fs::read(file) else {
            continue;
        };
        for marker in markers {
            assert!(!name.contains(marker), "marker in a file name: {name}");
            assert!(
                memfind(&bytes, marker.as_bytes()).is_none(),
                "{marker} in plaintext in {name}"
            );
            assert!(
                memfind(&bytes, marker.to_lowercase().as_bytes()).is_none(),
                "{marker} (lowercased, as an index term) in {name}"
            );
        }
    }
}

/// Every file in `/dev/shm`, in `extra` directories, and every file of the temporary
/// directory changed since `since` (a marker made by this run cannot be in an older one;
/// the temporary directory is shared with everything else on the machine).
fn scratch_files(since: SystemTime, extra: &[&Path]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let shared_memory = Path::new("/dev/shm");
    for dir in [shared_memory].iter().chain(extra) {
        collect_files(dir, None, &mut files);
    }
    let since = since - Duration::from_secs(2);
    collect_files(&std::env::temp_dir(), Some(since), &mut files);
    files
}

/// Regular files under `dir` (changed since `since`, when given); directories that cannot
/// be read are skipped, links are not followed.
fn collect_files(dir: &Path, since: Option<SystemTime>, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            collect_files(&entry.path(), since, files);
        } else if kind.is_file() {
            let recent = since.is_none_or(|since| {
                entry
                    .metadata()
                    .and_then(|metadata| metadata.modified())
                    .is_ok_and(|modified| modified >= since)
            });
            if recent {
                files.push(entry.path());
            }
        }
    }
}

/// Issue 11, finding 8: a server killed with SIGKILL while it indexes leaves no plaintext
/// in shared memory, in its temporary directory (`TMPDIR`) or the machine's, or in its
/// data directory. The markers are made at run time, so no other file can hold them.
#[tokio::test(flavor = "multi_thread")]
async fn issue_11_no_plaintext_in_shared_memory_or_temp_files_after_kill_9_mid_indexing() {
    let started = SystemTime::now();
    let nonce = started
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        ^ u128::from(std::process::id()) << 64;
    let marker = |kind: &str| format!("{kind}KILLMARK{:X}", nonce % (1u128 << 60));
    let (text_marker, file_marker, name_marker) = (marker("TEXT"), marker("FILE"), marker("NAME"));
    let data = tempfile::tempdir().unwrap();
    let temp = tempfile::tempdir().unwrap();
    assert!(cli(data.path(), &["init"]).status.success());
    let created = cli(
        data.path(),
        &[
            "tenant",
            "create",
            &format!("{name_marker} Holdings"),
            "--json",
        ],
    );
    let tenant: serde_json::Value = serde_json::from_str(&stdout(&created)).unwrap();
    let tenant = tenant["tenant_id"].as_str().unwrap().to_owned();
    let token = stdout(&cli(
        data.path(),
        &[
            "token", "--tenant", &tenant, "--user", "ed", "--role", "editor",
        ],
    ))
    .trim()
    .to_owned();
    let (mut server, base) = crate::common::spawn_server(
        data.path(),
        &[],
        &[("TMPDIR", temp.path().display().to_string())],
        std::process::Stdio::null(),
    );
    let http = reqwest::Client::new();
    let documents = format!("{base}/v1/tenants/{tenant}/documents");
    let upload = |index: usize| {
        let prefixes = ["DRAGONSYSTEMS", "LifewayFoods", "ADUROBIOTECH", "VEONEER"];
        let (_, text) = sample_contract(prefixes[index % prefixes.len()]);
        let body = format!("{text_marker} document {index}.\n\n{text}\n\n{text_marker}");
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(body.into_bytes())
                .file_name(format!("{file_marker} {index}.txt")),
        );
        http.post(&documents)
            .bearer_auth(&token)
            .multipart(form)
            .send()
    };
    let indexed = || async {
        let listed: serde_json::Value = http
            .get(&documents)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        listed["documents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|document| document["status"] == "indexed")
            .count()
    };
    let wait_until_indexed = |count: usize| async move {
        for _ in 0..1200 {
            if indexed().await >= count {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("fewer than {count} documents indexed in two minutes");
    };
    // One document indexed and its tenant's index snapshot written (sealed) ...
    assert_eq!(upload(0).await.unwrap().status(), 202);
    wait_until_indexed(1).await;
    // ... then SIGKILL while the indexer is in the middle of seven more.
    for index in 1..8 {
        assert_eq!(upload(index).await.unwrap().status(), 202);
    }
    wait_until_indexed(2).await;
    server.kill().unwrap();
    server.wait().unwrap();

    let markers = [
        text_marker.as_str(),
        file_marker.as_str(),
        name_marker.as_str(),
    ];
    let mut files = scratch_files(started, &[temp.path()]);
    files.extend(all_files(data.path()));
    assert!(files.iter().any(|file| file.ends_with("system.db")));
    assert_no_marker_in(&files, &markers);
}

fn memfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
