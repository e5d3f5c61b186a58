//! Portable tenant exports: every document's original, extracted text, chunks with
//! offsets, embeddings and metadata, with a manifest of SHA-256 per file — one tar stream,
//! optionally encrypted to an age X25519 recipient the customer provides. Memory stays
//! bounded by one document whatever the tenant's size. `import` loads such an archive into
//! a tenant of another appliance without re-embedding, so it answers the same way; it
//! streams the archive twice (check, then store), so its memory is bounded by one
//! document too.
//!
//! Archive layout:
//! ```text
//! documents/<n>/original      the uploaded bytes
//! documents/<n>/document.json file name, content type, status, metadata, sizes
//! documents/<n>/text.txt      the extracted text (character offsets refer to it)
//! documents/<n>/chunks.jsonl  {"seq","start","end","text","embedding"} per line
//! manifest.json               format, tenant, model, and {path, bytes, sha256} per file (last)
//! ```

use std::io::{BufRead, Read, Seek, SeekFrom, Write};
use std::str::FromStr;

use sha2::Digest;

use crate::auth::TenantScope;
use crate::store::{DocumentStatus, NewChunk, Store, StoreError};

pub const FORMAT: &str = "bulkhead-export/1";

#[derive(Debug, thiserror::Error)]
pub enum PortabilityError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("archive i/o failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("invalid age recipient (expected `age1...`): {0}")]
    Recipient(String),
    #[error(
        "cannot decrypt the archive: {0}: pass the age identity (AGE-SECRET-KEY-...) matching its recipient"
    )]
    Decrypt(String),
    #[error("not a Bulkhead export: {0}")]
    Malformed(String),
    #[error("the archive fails its manifest check: {0}")]
    Integrity(String),
    #[error("the archive is too large to import: {0}")]
    TooLarge(String),
}

/// Bounds on an import: the archive's total size, and each file's (an import holds one
/// document's files in memory at a time).
#[derive(Clone, Debug)]
pub struct ImportLimits {
    /// Largest sum of the archive's file sizes.
    pub max_archive_bytes: u64,
    /// Largest single file (an original, its text, its chunks with embeddings).
    pub max_entry_bytes: u64,
}

impl Default for ImportLimits {
    fn default() -> Self {
        ImportLimits {
            max_archive_bytes: 1024 * 1024 * 1024,
            max_entry_bytes: 256 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Default, serde::Serialize)]
pub struct PortabilitySummary {
    pub documents: usize,
    pub chunks: usize,
    pub bytes: u64,
}

struct ManifestEntry {
    path: String,
    bytes: usize,
    sha256: String,
}

fn append<W: Write>(
    builder: &mut tar::Builder<W>,
    manifest: &mut Vec<ManifestEntry>,
    path: &str,
    data: &[u8],
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o600);
    header.set_mtime(0);
    header.set_cksum();
    builder.append_data(&mut header, path, data)?;
    manifest.push(ManifestEntry {
        path: path.to_owned(),
        bytes: data.len(),
        sha256: hex::encode(sha2::Sha256::digest(data)),
    });
    Ok(())
}

/// Writes the tenant's export to `out`, encrypted to `recipient` when given.
pub fn export(
    store: &Store,
    scope: &TenantScope,
    out: impl Write,
    recipient: Option<&str>,
) -> Result<PortabilitySummary, PortabilityError> {
    match recipient {
        None => write_archive(store, scope, out),
        Some(recipient) => {
            let recipient = age::x25519::Recipient::from_str(recipient.trim())
                .map_err(|error| PortabilityError::Recipient(error.to_string()))?;
            let encryptor =
                age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                    .map_err(|error| PortabilityError::Recipient(error.to_string()))?;
            let mut writer = encryptor.wrap_output(out)?;
            let summary = write_archive(store, scope, &mut writer)?;
            writer.finish()?;
            Ok(summary)
        }
    }
}

fn write_archive(
    store: &Store,
    scope: &TenantScope,
    out: impl Write,
) -> Result<PortabilitySummary, PortabilityError> {
    let mut builder = tar::Builder::new(out);
    let mut manifest = Vec::new();
    let mut summary = PortabilitySummary::default();
    // Output layer: only documents storage confirms are this tenant's leave in an export.
    let documents = crate::output::retain_owned(store, scope, store.list_documents(scope)?, |d| {
        &d.document_id
    })?;
    for (index, record) in documents.iter().enumerate() {
        if record.status != DocumentStatus::Indexed {
            continue;
        }
        // One document in memory at a time.
        let exported = store.export_document(scope, &record.document_id)?;
        let prefix = format!("documents/{index:06}");
        append(
            &mut builder,
            &mut manifest,
            &format!("{prefix}/original"),
            &exported.original,
        )?;
        let description = serde_json::json!({
            "document_id": record.document_id.to_string(),
            "filename": record.filename,
            "content_type": record.content_type,
            "bytes": record.bytes,
            "created_at": crate::time::rfc3339(record.created_at),
            "metadata": exported.metadata,
            "chunks": exported.chunks.len(),
            "page_starts": exported.page_starts,
        });
        append(
            &mut builder,
            &mut manifest,
            &format!("{prefix}/document.json"),
            description.to_string().as_bytes(),
        )?;
        append(
            &mut builder,
            &mut manifest,
            &format!("{prefix}/text.txt"),
            exported.text.unwrap_or_default().as_bytes(),
        )?;
        let mut lines = Vec::new();
        for (seq, chunk) in exported.chunks.iter().enumerate() {
            serde_json::to_writer(
                &mut lines,
                &serde_json::json!({"seq": seq, "start": chunk.start, "end": chunk.end, "text": chunk.text, "embedding": chunk.embedding}),
            )
            .map_err(|error| PortabilityError::Malformed(error.to_string()))?;
            lines.push(b'\n');
        }
        append(
            &mut builder,
            &mut manifest,
            &format!("{prefix}/chunks.jsonl"),
            &lines,
        )?;
        summary.documents += 1;
        summary.chunks += exported.chunks.len();
        summary.bytes += record.bytes;
    }
    let manifest_json = serde_json::json!({
        "format": FORMAT,
        "tenant_id": scope.tenant_id().to_string(),
        "exported_at": crate::time::rfc3339(crate::time::now()),
        "embedding_model": "all-MiniLM-L6-v2",
        "documents": summary.documents,
        "files": manifest.iter().map(|entry| serde_json::json!({"path": entry.path, "bytes": entry.bytes, "sha256": entry.sha256})).collect::<Vec<_>>(),
    });
    let mut ignored = Vec::new();
    append(
        &mut builder,
        &mut ignored,
        "manifest.json",
        manifest_json.to_string().as_bytes(),
    )?;
    builder.into_inner()?.flush()?;
    Ok(summary)
}

/// Loads an export into the tenant of `scope`. The archive is read twice, streamed: first
/// every file is checked against the manifest (which comes last) holding only hashes,
/// then the documents are stored one at a time, each file checked again against the
/// manifest. Nothing is stored unless the whole archive checks; memory is bounded by one
/// document (`limits`). Documents get new ids in the new tenant.
pub fn import(
    store: &Store,
    scope: &TenantScope,
    mut input: impl Read + Seek,
    identity: Option<&str>,
    limits: &ImportLimits,
) -> Result<PortabilitySummary, PortabilityError> {
    let verified = check_archive(decrypted(&mut input, identity)?, limits)?;
    input.seek(SeekFrom::Start(0))?;
    store_documents(
        store,
        scope,
        decrypted(&mut input, identity)?,
        limits,
        &verified,
    )
}

/// The archive's tar stream: `input` itself, or decrypted with the age identity.
fn decrypted<'a>(
    input: &'a mut (impl Read + 'a),
    identity: Option<&str>,
) -> Result<Box<dyn Read + 'a>, PortabilityError> {
    let Some(identity) = identity else {
        return Ok(Box::new(input));
    };
    let identity = age::x25519::Identity::from_str(identity.trim())
        .map_err(|error| PortabilityError::Decrypt(error.to_string()))?;
    let decryptor =
        age::Decryptor::new(input).map_err(|error| PortabilityError::Decrypt(error.to_string()))?;
    let reader = decryptor
        .decrypt(std::iter::once(&identity as &dyn age::Identity))
        .map_err(|error| PortabilityError::Decrypt(error.to_string()))?;
    Ok(Box::new(reader))
}

struct PendingDocument {
    original: Vec<u8>,
    description: serde_json::Value,
    text: String,
    chunks: Vec<NewChunk>,
}

/// Checks `entry`'s size against the limits (the tar header's first; the read is bounded
/// anyway) and adds it to the archive's `total`. Streams the entry into `sink`.
fn copy_entry(
    entry: &mut tar::Entry<'_, impl Read>,
    path: &str,
    total: &mut u64,
    limits: &ImportLimits,
    sink: &mut impl Write,
) -> Result<(), PortabilityError> {
    let too_large = |what: String| PortabilityError::TooLarge(what);
    let over_entry = || {
        too_large(format!(
            "{path} is over the limit of {} bytes per file",
            limits.max_entry_bytes
        ))
    };
    if entry.header().size()? > limits.max_entry_bytes {
        return Err(over_entry());
    }
    let copied = std::io::copy(
        &mut entry.take(limits.max_entry_bytes.saturating_add(1)),
        sink,
    )?;
    if copied > limits.max_entry_bytes {
        return Err(over_entry());
    }
    *total += copied;
    if *total > limits.max_archive_bytes {
        return Err(too_large(format!(
            "its files pass the limit of {} bytes: import the tenant's documents in smaller exports",
            limits.max_archive_bytes
        )));
    }
    Ok(())
}

/// Reads `entry` whole, within the limits.
fn read_entry(
    entry: &mut tar::Entry<'_, impl Read>,
    path: &str,
    total: &mut u64,
    limits: &ImportLimits,
) -> Result<Vec<u8>, PortabilityError> {
    let mut data = Vec::new();
    copy_entry(entry, path, total, limits, &mut data)?;
    Ok(data)
}

/// SHA-256 as a writer, so an entry can be hashed as it streams past.
struct Hashing(sha2::Sha256);

impl Write for Hashing {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The first pass: every file hashed as it streams past (only `document.json`, small, is
/// kept, for its content type), then the manifest checked against them. Returns the
/// verified SHA-256 of each path.
fn check_archive(
    input: impl Read,
    limits: &ImportLimits,
) -> Result<std::collections::HashMap<String, String>, PortabilityError> {
    let mut archive = tar::Archive::new(input);
    let mut total = 0u64;
    let mut hashes: Vec<(String, String)> = Vec::new();
    let mut manifest: Option<serde_json::Value> = None;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        if path == "manifest.json" {
            let data = read_entry(&mut entry, &path, &mut total, limits)?;
            manifest = Some(
                serde_json::from_slice(&data)
                    .map_err(|error| PortabilityError::Malformed(error.to_string()))?,
            );
            continue;
        }
        let sha256 = if path.ends_with("/document.json") {
            let data = read_entry(&mut entry, &path, &mut total, limits)?;
            check_description(&data)?;
            sha2::Sha256::digest(&data)
        } else {
            let mut hashing = Hashing(sha2::Sha256::new());
            copy_entry(&mut entry, &path, &mut total, limits, &mut hashing)?;
            hashing.0.finalize()
        };
        hashes.push((path, hex::encode(sha256)));
    }
    check_manifest(manifest, &hashes)?;
    Ok(hashes.into_iter().collect())
}

/// A document's description must parse, and name a content type Bulkhead stores.
fn check_description(data: &[u8]) -> Result<serde_json::Value, PortabilityError> {
    let description: serde_json::Value = serde_json::from_slice(data)
        .map_err(|error| PortabilityError::Malformed(error.to_string()))?;
    let content_type = description["content_type"].as_str().unwrap_or("text/plain");
    if !allowed_content_type(content_type) {
        return Err(PortabilityError::Malformed(
            "a document's content type is not one Bulkhead stores (txt, md, html, pdf, docx)"
                .into(),
        ));
    }
    Ok(description)
}

/// The content types an import may carry: those of the formats extraction produces,
/// since the stored value is served back as the original's `Content-Type`.
fn allowed_content_type(content_type: &str) -> bool {
    crate::ingest::extract::DocumentFormat::from_content_type(content_type).is_some()
}

/// The chunks of one document, from its `chunks.jsonl`.
fn parse_chunks(data: &[u8]) -> Result<Vec<NewChunk>, PortabilityError> {
    let mut chunks = Vec::new();
    for line in data.lines() {
        let line = line?;
        let chunk: serde_json::Value = serde_json::from_str(&line)
            .map_err(|error| PortabilityError::Malformed(error.to_string()))?;
        chunks.push(NewChunk {
            start: chunk["start"].as_u64().unwrap_or(0) as usize,
            end: chunk["end"].as_u64().unwrap_or(0) as usize,
            text: chunk["text"].as_str().unwrap_or_default().to_owned(),
            embedding: chunk["embedding"]
                .as_array()
                .map(|values| {
                    values
                        .iter()
                        .filter_map(|v| v.as_f64())
                        .map(|v| v as f32)
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    Ok(chunks)
}

/// The manifest (read last) must be of this format and list exactly the files read, each
/// with its SHA-256.
fn check_manifest(
    manifest: Option<serde_json::Value>,
    hashes: &[(String, String)],
) -> Result<(), PortabilityError> {
    let manifest =
        manifest.ok_or_else(|| PortabilityError::Malformed("no manifest.json".into()))?;
    if manifest["format"] != FORMAT {
        return Err(PortabilityError::Malformed(format!(
            "format is {}, expected {FORMAT}",
            manifest["format"]
        )));
    }
    let listed = manifest["files"].as_array().cloned().unwrap_or_default();
    if listed.len() != hashes.len() {
        return Err(PortabilityError::Integrity(
            "the manifest lists a different set of files".into(),
        ));
    }
    for (path, sha256) in hashes {
        let expected = listed.iter().find(|file| file["path"] == path.as_str());
        if expected.and_then(|file| file["sha256"].as_str()) != Some(sha256.as_str()) {
            return Err(PortabilityError::Integrity(format!(
                "{path} does not match its SHA-256"
            )));
        }
    }
    Ok(())
}

/// The second pass: each document's files (consecutive in an export) are read, checked
/// again against the verified hashes (the archive may have changed since the first pass),
/// and the document is stored before the next one is read. On any failure the documents
/// this import stored are removed again.
fn store_documents(
    store: &Store,
    scope: &TenantScope,
    input: impl Read,
    limits: &ImportLimits,
    verified: &std::collections::HashMap<String, String>,
) -> Result<PortabilitySummary, PortabilityError> {
    let mut summary = PortabilitySummary::default();
    let mut stored = Vec::new();
    let result = read_documents(input, limits, verified, &mut |document| {
        stored.push(store_document(store, scope, &document)?);
        summary.documents += 1;
        summary.chunks += document.chunks.len();
        summary.bytes += document.original.len() as u64;
        Ok(())
    });
    if let Err(error) = result {
        for document_id in &stored {
            if let Err(cleanup) = store.delete_document(scope, document_id) {
                tracing::error!(%cleanup, "could not remove a document of a failed import");
            }
        }
        return Err(error);
    }
    Ok(summary)
}

/// Reads the archive's documents one at a time, each file checked against `verified`,
/// and hands each to `each` as soon as it is complete.
fn read_documents(
    input: impl Read,
    limits: &ImportLimits,
    verified: &std::collections::HashMap<String, String>,
    each: &mut dyn FnMut(PendingDocument) -> Result<(), PortabilityError>,
) -> Result<(), PortabilityError> {
    let mut archive = tar::Archive::new(input);
    let mut total = 0u64;
    let mut current: Option<(String, PendingDocument)> = None;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.to_string_lossy().into_owned();
        if path == "manifest.json" {
            continue;
        }
        let data = read_entry(&mut entry, &path, &mut total, limits)?;
        if verified.get(&path).map(String::as_str)
            != Some(hex::encode(sha2::Sha256::digest(&data)).as_str())
        {
            return Err(PortabilityError::Integrity(format!(
                "{path} changed while it was being imported"
            )));
        }
        let (prefix, file) = path
            .rsplit_once('/')
            .ok_or_else(|| PortabilityError::Malformed(format!("unexpected entry {path}")))?;
        if current.as_ref().is_some_and(|(open, _)| open != prefix)
            && let Some((_, finished)) = current.take()
        {
            each(finished)?;
        }
        let (_, document) = current.get_or_insert_with(|| {
            (
                prefix.to_owned(),
                PendingDocument {
                    original: Vec::new(),
                    description: serde_json::Value::Null,
                    text: String::new(),
                    chunks: Vec::new(),
                },
            )
        });
        match file {
            "original" => document.original = data,
            "document.json" => document.description = check_description(&data)?,
            "text.txt" => {
                document.text = String::from_utf8(data)
                    .map_err(|_| PortabilityError::Malformed("text is not UTF-8".into()))?
            }
            "chunks.jsonl" => document.chunks = parse_chunks(&data)?,
            _ => {
                return Err(PortabilityError::Malformed(format!(
                    "unexpected entry {path}"
                )));
            }
        }
    }
    if let Some((_, finished)) = current {
        each(finished)?;
    }
    Ok(())
}

/// Stores one imported document with its chunks and vectors as they are.
fn store_document(
    store: &Store,
    scope: &TenantScope,
    document: &PendingDocument,
) -> Result<crate::ids::DocumentId, PortabilityError> {
    let description = &document.description;
    let filename = description["filename"].as_str().unwrap_or("unnamed");
    let content_type = description["content_type"].as_str().unwrap_or("text/plain");
    let metadata = description
        .get("metadata")
        .filter(|value| value.is_object());
    let page_starts = page_starts(description, &document.text)?;
    Ok(store.import_document(
        scope,
        &crate::store::DocumentImport {
            filename,
            metadata,
            original: &document.original,
            content_type,
            text: &document.text,
            chunks: &document.chunks,
            page_starts: &page_starts,
        },
    )?)
}

/// A PDF's page offsets from its description (absent in archives made before they were
/// exported: then the document offers no page view): rising, the first at 0, each inside
/// the text; anything else is a malformed archive.
fn page_starts(description: &serde_json::Value, text: &str) -> Result<Vec<u64>, PortabilityError> {
    let Some(values) = description.get("page_starts") else {
        return Ok(Vec::new());
    };
    let malformed =
        || PortabilityError::Malformed("a document's page_starts are not its pages".into());
    let starts: Vec<u64> = serde_json::from_value(values.clone()).map_err(|_| malformed())?;
    let length = text.chars().count() as u64;
    let rising = starts.windows(2).all(|pair| pair[0] <= pair[1]);
    let inside = starts.first().is_none_or(|first| *first == 0)
        && starts.last().is_none_or(|last| *last <= length);
    if rising && inside {
        Ok(starts)
    } else {
        Err(malformed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_starts_must_be_pages_of_the_text() {
        let text = "first page second page";
        let with = |starts: serde_json::Value| {
            page_starts(&serde_json::json!({"page_starts": starts}), text)
        };
        assert_eq!(with(serde_json::json!([0, 11])).unwrap(), [0, 11]);
        assert!(
            page_starts(&serde_json::json!({}), text)
                .unwrap()
                .is_empty()
        );
        for bad in [
            serde_json::json!([3, 11]),
            serde_json::json!([0, 11, 5]),
            serde_json::json!([0, 999]),
            serde_json::json!("0,11"),
            serde_json::json!([-1]),
        ] {
            assert!(
                matches!(with(bad.clone()), Err(PortabilityError::Malformed(_))),
                "{bad}"
            );
        }
    }
}
