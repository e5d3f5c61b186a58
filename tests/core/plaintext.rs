//! No plaintext tenant content on disk: markers planted in file names, metadata and text,
//! then every byte of every file under the data directory is scanned — SQLite and its WAL,
//! blobs, index files, anything else.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use bulkhead::index::SearchMode;

use crate::support::{all_files, fresh_appliance, new_tenant, sample_contract};

const WINDOW: usize = 40;

fn window_hash(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

#[test]
fn no_marker_and_no_run_of_document_text_is_written_to_disk() {
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
    let files = all_files(dir.path());
    assert!(files.iter().any(|f| f.ends_with("system.db")));
    assert!(files.iter().any(|f| f.to_string_lossy().contains("blobs")));
    assert!(
        files
            .iter()
            .any(|f| f.to_string_lossy().contains("text-index"))
    );
    for file in files {
        let name = file.to_string_lossy();
        for marker in markers {
            assert!(!name.contains(marker), "marker in a file name: {name}");
        }
        let bytes = std::fs::read(&file).unwrap();
        for marker in markers {
            assert!(
                memfind(&bytes, marker.as_bytes()).is_none(),
                "{marker} in plaintext in {name}"
            );
            assert!(
                memfind(&bytes, marker.to_lowercase().as_bytes()).is_none(),
                "{marker} (lowercased, as an index term) in {name}"
            );
        }
        for (offset, window) in bytes.windows(WINDOW).enumerate() {
            assert!(
                !document_windows.contains(&window_hash(window)),
                "a {WINDOW}-byte run of document text at offset {offset} of {name}"
            );
        }
    }
}

fn memfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}
