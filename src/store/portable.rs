//! Whole documents in and out, decrypted, for tenant export and import
//! (`crate::portability` writes and reads the archive).

use rusqlite::params;

use super::rows::sql;
use super::{DocumentRecord, IndexJob, NewChunk, Store, StoreError};
use crate::auth::TenantScope;
use crate::crypto::{self, ObjectKind};
use crate::ids::{ChunkId, DocumentId};

/// One document to import, with its text and chunks.
#[derive(Clone, Copy)]
pub struct DocumentImport<'a> {
    pub filename: &'a str,
    pub metadata: Option<&'a serde_json::Value>,
    pub original: &'a [u8],
    pub content_type: &'a str,
    pub text: &'a str,
    pub chunks: &'a [NewChunk],
    /// Where each page of a PDF starts in `text` (characters); empty for other formats.
    pub page_starts: &'a [u64],
}

/// One document as exported.
pub struct ExportedDocument {
    pub record: DocumentRecord,
    pub metadata: Option<serde_json::Value>,
    pub text: Option<String>,
    pub chunks: Vec<NewChunk>,
    pub original: Vec<u8>,
    /// Where each page of a PDF starts in `text`; empty when unknown.
    pub page_starts: Vec<u64>,
}

impl Store {
    /// Everything stored for one document, decrypted, for a portable export.
    pub fn export_document(
        &self,
        scope: &TenantScope,
        document_id: &DocumentId,
    ) -> Result<ExportedDocument, StoreError> {
        let record = self.document(scope, document_id)?;
        let key = self.data_key(scope)?;
        let (metadata_sealed, text_sealed): (Option<Vec<u8>>, Option<Vec<u8>>) = self.tenant(scope).query_row(
            &sql("SELECT d.metadata_sealed, t.text_sealed FROM t_documents d
             LEFT JOIN t_document_texts t ON t.document_id = d.document_id AND t.tenant_id = d.tenant_id
             WHERE d.document_id = ?1 AND d.tenant_id = ?2"),
            params![document_id.as_str(), scope.tenant_id().as_str()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        let open_document =
            |kind, sealed: &[u8]| self.open_text(scope, &key, kind, document_id.as_str(), sealed);
        let metadata = metadata_sealed
            .map(|sealed| open_document(ObjectKind::DocumentMetadata, &sealed))
            .transpose()?
            .and_then(|text| serde_json::from_str(&text).ok());
        let text = text_sealed
            .map(|sealed| open_document(ObjectKind::DocumentText, &sealed))
            .transpose()?;
        type Row = (i64, i64, i64, Vec<u8>, Vec<u8>);
        let rows: Vec<Row> = self.tenant_rows(
            scope,
            &sql(
                "SELECT seq, start_char, end_char, text_sealed, embedding_sealed FROM t_chunks
                 WHERE document_id = ?1 AND tenant_id = ?2 ORDER BY seq",
            ),
            params![document_id.as_str(), scope.tenant_id().as_str()],
        )?;
        let mut chunks = Vec::with_capacity(rows.len());
        for (seq, start, end, text_sealed, embedding_sealed) in rows {
            let chunk_id = ChunkId::new(document_id.clone(), seq as u32).to_string();
            chunks.push(NewChunk {
                start: start as usize,
                end: end as usize,
                text: self.open_text(
                    scope,
                    &key,
                    ObjectKind::ChunkText,
                    &chunk_id,
                    &text_sealed,
                )?,
                embedding: crypto::bytes_to_f32s(&self.open_sealed(
                    scope,
                    &key,
                    ObjectKind::ChunkEmbedding,
                    &chunk_id,
                    &embedding_sealed,
                )?),
            });
        }
        let original = self.document_original(scope, document_id)?;
        let page_starts = self
            .document_page_starts(scope, document_id)?
            .unwrap_or_default();
        Ok(ExportedDocument {
            record,
            metadata,
            text,
            chunks,
            original,
            page_starts,
        })
    }

    /// Stores an imported document with its text, chunks and vectors in one go (no
    /// re-embedding: the import answers exactly as the export did).
    pub fn import_document(
        &self,
        scope: &TenantScope,
        document: &DocumentImport<'_>,
    ) -> Result<DocumentId, StoreError> {
        let DocumentImport {
            filename,
            metadata,
            original,
            content_type,
            text,
            chunks,
            page_starts,
        } = *document;
        let document_id = self.queue_document(scope, filename, metadata, original, true)?;
        let job = {
            let connection = self.tenant(scope);
            let job_id: i64 = connection.query_row(
                &sql("SELECT job_id FROM t_jobs WHERE document_id = ?1 AND tenant_id = ?2"),
                params![document_id.as_str(), scope.tenant_id().as_str()],
                |row| row.get(0),
            )?;
            IndexJob {
                job_id,
                document_id: document_id.clone(),
                exhausted: false,
            }
        };
        self.complete_document(scope, &job, content_type, text, page_starts, chunks)?;
        Ok(document_id)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{new_tenant, temp_store};
    use super::*;

    #[test]
    fn an_exported_document_imports_with_its_chunks_unchanged() {
        let (_dir, store) = temp_store();
        let alpha = new_tenant(&store, "Alpha");
        let beta = new_tenant(&store, "Beta");
        let metadata = serde_json::json!({"kind": "nda"});
        let chunks = [NewChunk {
            start: 0,
            end: 5,
            text: "terms".into(),
            embedding: vec![0.5, 0.5],
        }];
        let imported = store
            .import_document(
                &alpha,
                &DocumentImport {
                    filename: "nda.txt",
                    metadata: Some(&metadata),
                    original: b"terms",
                    content_type: "application/pdf",
                    text: "terms",
                    chunks: &chunks,
                    page_starts: &[0, 3],
                },
            )
            .unwrap();
        let exported = store.export_document(&alpha, &imported).unwrap();
        assert_eq!(exported.record.filename, "nda.txt");
        assert_eq!(exported.metadata, Some(metadata));
        assert_eq!(exported.text.as_deref(), Some("terms"));
        assert_eq!(exported.original, b"terms");
        assert_eq!(exported.chunks[0].text, "terms");
        assert_eq!(exported.chunks[0].embedding, [0.5, 0.5]);
        // A PDF's page offsets travel with it, sealed like its text.
        assert_eq!(exported.page_starts, [0, 3]);
        assert!(store.export_document(&beta, &imported).is_err());
    }
}
