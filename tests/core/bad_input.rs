//! Bad input: each broken file fails alone with a clear reason; the good file beside it is
//! indexed, and the tenant keeps working.

use std::io::Write;

use crate::support::{cli, sample_contract, stdout};

fn zip_bomb_docx() -> Vec<u8> {
    // A docx whose document.xml inflates to 300 MiB of zeros (about 300 KB compressed).
    let mut buffer = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut buffer);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        zip.start_file("[Content_Types].xml", options).unwrap();
        zip.write_all(b"<Types/>").unwrap();
        zip.start_file("word/document.xml", options).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..300 {
            zip.write_all(&zeros).unwrap();
        }
        zip.finish().unwrap();
    }
    buffer.into_inner()
}

#[test]
fn broken_files_fail_clearly_and_affect_nothing_else() {
    let data = tempfile::tempdir().unwrap();
    let folder = tempfile::tempdir().unwrap();
    let pdf = crate::common::hosting_agreement_pdf();
    let (_, good_text) = sample_contract("ADUROBIOTECH");
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("empty.txt", Vec::new()),
        (
            "binary.pdf",
            (0..4096u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ),
        ("truncated.pdf", pdf[..pdf.len() * 3 / 10].to_vec()),
        ("bomb.docx", zip_bomb_docx()),
        (
            "latin1.txt",
            b"Caf\xe9 agreement \xff\xfe between parties".to_vec(),
        ),
        (
            "good.txt",
            format!("GOODMARKER551 {good_text}").into_bytes(),
        ),
        ("real.pdf", pdf.clone()),
    ];
    for (name, bytes) in &files {
        std::fs::write(folder.path().join(name), bytes).unwrap();
    }
    assert!(cli(data.path(), &["init"]).status.success());
    let tenant = stdout(&cli(data.path(), &["tenant", "create", "Careful"]))
        .trim()
        .to_owned();
    let started = std::time::Instant::now();
    let output = cli(
        data.path(),
        &[
            "ingest",
            "--tenant",
            &tenant,
            "--json",
            folder.path().to_str().unwrap(),
        ],
    );
    assert!(started.elapsed().as_secs() < 120, "no hang");
    assert_eq!(
        output.status.code(),
        Some(1),
        "a failed document is a failure the user can fix"
    );
    let report: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(report["indexed"], 2, "{report}");
    assert_eq!(report["failed"], 5, "{report}");
    let reason = |name: &str| -> String {
        report["documents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["filename"] == name)
            .unwrap_or_else(|| panic!("{name} missing from {report}"))["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        reason("empty.txt").contains("empty"),
        "{}",
        reason("empty.txt")
    );
    assert!(
        reason("binary.pdf").contains("not a supported document"),
        "{}",
        reason("binary.pdf")
    );
    let truncated = reason("truncated.pdf");
    assert!(truncated.contains("pdf"), "{truncated}");
    assert!(
        reason("bomb.docx").contains("decompression bomb"),
        "{}",
        reason("bomb.docx")
    );
    assert!(
        reason("latin1.txt").contains("UTF-8"),
        "{}",
        reason("latin1.txt")
    );

    // The good documents are searchable; the tenant keeps working.
    let search = cli(
        data.path(),
        &[
            "search",
            "--tenant",
            &tenant,
            "--mode",
            "keyword",
            "--json",
            "GOODMARKER551",
        ],
    );
    let results: serde_json::Value = serde_json::from_str(&stdout(&search)).unwrap();
    assert_eq!(results["results"][0]["filename"], "good.txt");
    let search = cli(
        data.path(),
        &[
            "search",
            "--tenant",
            &tenant,
            "--mode",
            "keyword",
            "--json",
            "Kingdom Connect",
        ],
    );
    let results: serde_json::Value = serde_json::from_str(&stdout(&search)).unwrap();
    assert_eq!(results["results"][0]["filename"], "real.pdf");
}

#[test]
fn oversized_upload_is_refused_before_it_is_stored() {
    let (_dir, appliance) = crate::support::fresh_appliance();
    let tenant = crate::support::new_tenant(&appliance, "Big");
    let limit = appliance.config().extract_limits.max_file_bytes as usize;
    let refused = appliance.upload(&tenant, "huge.txt", None, &vec![b'a'; limit + 1]);
    match refused {
        Err(bulkhead::appliance::ApplianceError::Document(
            bulkhead::ingest::extract::ExtractError::TooLarge { bytes, limit: max },
        )) => assert_eq!((bytes, max), (limit as u64 + 1, limit as u64)),
        other => panic!("{other:?}"),
    }
    assert!(appliance.list_documents(&tenant).unwrap().is_empty());
}
