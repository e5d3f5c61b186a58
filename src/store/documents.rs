//! Documents: durable uploads (blob fsynced, row and job committed), listing, deletion,
//! and the system connection's ownership check for the output layer.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};

use super::rows::sql;
use super::{Store, StoreError, files};
use crate::auth::TenantScope;
use crate::crypto::{Aad, ObjectKind};
use crate::ids::{DocumentId, TenantId};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocumentStatus {
    Queued,
    Indexed,
    Failed,
}

impl DocumentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentStatus::Queued => "queued",
            DocumentStatus::Indexed => "indexed",
            DocumentStatus::Failed => "failed",
        }
    }

    fn parse(text: &str) -> DocumentStatus {
        match text {
            "indexed" => DocumentStatus::Indexed,
            "failed" => DocumentStatus::Failed,
            _ => DocumentStatus::Queued,
        }
    }
}

#[derive(Clone, Debug)]
pub struct DocumentRecord {
    pub document_id: DocumentId,
    pub filename: String,
    pub content_type: Option<String>,
    pub bytes: u64,
    pub status: DocumentStatus,
    pub chunks: u64,
    pub error: Option<String>,
    pub created_at: i64,
}

/// The columns [`Store::decode_documents`] decodes, in order.
pub const DOCUMENT_COLUMNS: &str = "tenant_id, document_id, filename_sealed, content_type, bytes, status, chunk_count, error_sealed, created_at, content_type_sealed";

impl Store {
    /// Stores an uploaded original durably and queues it for indexing. When this returns
    /// `Ok`, the encrypted blob is fsynced and the metadata row and job are committed: the
    /// upload may be acknowledged.
    pub fn put_document(
        &self,
        scope: &TenantScope,
        filename: &str,
        metadata: Option<&serde_json::Value>,
        original: &[u8],
    ) -> Result<DocumentId, StoreError> {
        self.queue_document(scope, filename, metadata, original, false)
    }

    /// [`Store::put_document`]; with `claimed`, the job is this store's from the start
    /// (an import completes it at once: no indexer beside it may claim it meanwhile).
    pub(super) fn queue_document(
        &self,
        scope: &TenantScope,
        filename: &str,
        metadata: Option<&serde_json::Value>,
        original: &[u8],
        claimed: bool,
    ) -> Result<DocumentId, StoreError> {
        let key = self.data_key(scope)?;
        let tenant = Some(scope.tenant_id());
        let document_id = DocumentId::generate();
        let aad = |kind| Aad {
            tenant,
            kind,
            object_id: document_id.as_str(),
        };
        let blob = key.seal(aad(ObjectKind::DocumentBlob), original);
        files::write_atomic(&self.blob_path(scope, &document_id), &blob)?;
        let filename_sealed = key.seal(aad(ObjectKind::DocumentFilename), filename.as_bytes());
        let metadata_sealed = metadata.map(|value| {
            key.seal(
                aad(ObjectKind::DocumentMetadata),
                value.to_string().as_bytes(),
            )
        });
        let created_at = crate::time::now();
        let mut connection = self.tenant(scope);
        let transaction = connection.transaction()?;
        transaction.execute(
            &sql("INSERT INTO t_documents (document_id, tenant_id, filename_sealed, metadata_sealed, bytes, status, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6)"),
            params![
                document_id.as_str(),
                scope.tenant_id().as_str(),
                filename_sealed,
                metadata_sealed,
                original.len() as i64,
                created_at
            ],
        )?;
        transaction.execute(
            &sql("INSERT INTO t_jobs (tenant_id, document_id, enqueued_at, owner, lease_until) VALUES (?1, ?2, ?3, ?4, ?5)"),
            params![
                scope.tenant_id().as_str(),
                document_id.as_str(),
                created_at,
                claimed.then_some(self.owner.as_str()),
                claimed.then_some(created_at + super::JOB_LEASE_SECONDS)
            ],
        )?;
        transaction.commit()?;
        Ok(document_id)
    }

    /// The decrypted original bytes of a document.
    pub fn document_original(
        &self,
        scope: &TenantScope,
        document_id: &DocumentId,
    ) -> Result<Vec<u8>, StoreError> {
        self.require_document(scope, document_id)?;
        let sealed = std::fs::read(self.blob_path(scope, document_id))?;
        let key = self.data_key(scope)?;
        self.open_sealed(
            scope,
            &key,
            ObjectKind::DocumentBlob,
            document_id.as_str(),
            &sealed,
        )
    }

    /// Where each page of the document starts in its extracted text, in characters
    /// (issue 13): `None` for a format without pages, and for a document indexed before
    /// pages were recorded.
    pub fn document_page_starts(
        &self,
        scope: &TenantScope,
        document_id: &DocumentId,
    ) -> Result<Option<Vec<u64>>, StoreError> {
        let row: Option<(String, Option<Vec<u8>>)> = self
            .tenant(scope)
            .query_row(
                &sql("SELECT tenant_id, pages_sealed FROM t_documents WHERE document_id = ?1 AND tenant_id = ?2"),
                params![document_id.as_str(), scope.tenant_id().as_str()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let Some((_, sealed)) = row.filter(|(tenant, _)| Self::row_is_ours(scope, tenant)) else {
            return Err(StoreError::DocumentNotFound(document_id.to_string()));
        };
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let key = self.data_key(scope)?;
        let json = self.open_text(
            scope,
            &key,
            ObjectKind::DocumentPages,
            document_id.as_str(),
            &sealed,
        )?;
        // Written by this store as a JSON array: anything else offers no page view.
        Ok(serde_json::from_str(&json).ok())
    }

    fn require_document(
        &self,
        scope: &TenantScope,
        document_id: &DocumentId,
    ) -> Result<(), StoreError> {
        let found: Option<String> = self
            .tenant(scope)
            .query_row(
                &sql("SELECT tenant_id FROM t_documents WHERE document_id = ?1 AND tenant_id = ?2"),
                params![document_id.as_str(), scope.tenant_id().as_str()],
                |row| row.get(0),
            )
            .optional()?;
        found
            .filter(|tenant| Self::row_is_ours(scope, tenant))
            .map(|_| ())
            .ok_or_else(|| StoreError::DocumentNotFound(document_id.to_string()))
    }

    pub fn list_documents(&self, scope: &TenantScope) -> Result<Vec<DocumentRecord>, StoreError> {
        self.query_documents(scope, None)
    }

    pub fn document(
        &self,
        scope: &TenantScope,
        document_id: &DocumentId,
    ) -> Result<DocumentRecord, StoreError> {
        self.query_documents(scope, Some(document_id))?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::DocumentNotFound(document_id.to_string()))
    }

    fn query_documents(
        &self,
        scope: &TenantScope,
        only: Option<&DocumentId>,
    ) -> Result<Vec<DocumentRecord>, StoreError> {
        self.decode_documents(
            scope,
            &sql(&format!(
                "SELECT {DOCUMENT_COLUMNS} FROM t_documents
                 WHERE tenant_id = ?1 AND (?2 IS NULL OR document_id = ?2)
                 ORDER BY created_at, document_id"
            )),
            params![scope.tenant_id().as_str(), only.map(DocumentId::as_str)],
        )
    }

    /// Test-only (ablation builds): [`Store::decode_documents`] for any statement, as a
    /// store query with a bug in it would run. The isolation suite's raw-SQL probes.
    #[cfg(feature = "ablation")]
    pub fn documents_from_sql(
        &self,
        scope: &TenantScope,
        statement: &str,
        parameters: impl rusqlite::Params,
    ) -> Result<Vec<DocumentRecord>, StoreError> {
        self.decode_documents(scope, statement, parameters)
    }

    /// Runs a document query on the scope's tenant connection and decodes its rows, which
    /// must have the [`DOCUMENT_COLUMNS`]. A row of another tenant is dropped (application
    /// scope) and every sealed field is authenticated (crypto): a query that forgot its
    /// tenant filter still returns nothing of anyone else's.
    fn decode_documents(
        &self,
        scope: &TenantScope,
        statement: &str,
        parameters: impl rusqlite::Params,
    ) -> Result<Vec<DocumentRecord>, StoreError> {
        type Row = (
            String,
            String,
            Vec<u8>,
            Option<String>,
            i64,
            String,
            i64,
            Option<Vec<u8>>,
            i64,
            Option<Vec<u8>>,
        );
        let rows: Vec<Row> = self.tenant_rows(scope, statement, parameters)?;
        let key = self.data_key(scope)?;
        rows.into_iter()
            .filter(|row| Self::row_is_ours(scope, &row.0))
            .map(
                |(
                    _,
                    id,
                    filename_sealed,
                    content_type,
                    bytes,
                    status,
                    chunks,
                    error_sealed,
                    created_at,
                    content_type_sealed,
                )| {
                    let document_id = DocumentId::try_from(id.as_str())
                        .map_err(|_| StoreError::DocumentNotFound(id.clone()))?;
                    let open = |kind, sealed: &[u8]| {
                        self.open_text(scope, &key, kind, document_id.as_str(), sealed)
                    };
                    let filename = open(ObjectKind::DocumentFilename, &filename_sealed)?;
                    let error = error_sealed
                        .map(|sealed| open(ObjectKind::DocumentError, &sealed))
                        .transpose()?;
                    // Sealed since issue 11; plaintext in rows written before.
                    let content_type = content_type_sealed
                        .map(|sealed| open(ObjectKind::DocumentContentType, &sealed))
                        .transpose()?
                        .or(content_type);
                    Ok(DocumentRecord {
                        document_id,
                        filename,
                        content_type,
                        bytes: bytes as u64,
                        status: DocumentStatus::parse(&status),
                        chunks: chunks as u64,
                        error,
                        created_at,
                    })
                },
            )
            .collect()
    }

    /// Test-only (ablation builds): runs a statement on the scope's tenant connection, as
    /// a store query with a bug in it would. The isolation suite's raw-SQL probes.
    #[cfg(feature = "ablation")]
    pub fn execute_as_tenant(
        &self,
        scope: &TenantScope,
        statement: &str,
    ) -> Result<usize, StoreError> {
        Ok(self.tenant(scope).execute(statement, [])?)
    }

    /// Deletes a document: its chunks, text, job and row in one transaction, then its blob.
    /// Returns the deleted chunks' row ids, for the indexes to drop.
    pub fn delete_document(
        &self,
        scope: &TenantScope,
        document_id: &DocumentId,
    ) -> Result<Vec<u64>, StoreError> {
        self.require_document(scope, document_id)?;
        let tenant = scope.tenant_id().as_str();
        let row_ids: Vec<u64> = {
            let mut connection = self.tenant(scope);
            let transaction = connection.transaction()?;
            let row_ids = {
                let mut statement = transaction.prepare(&sql(
                    "SELECT row_id FROM t_chunks WHERE document_id = ?1 AND tenant_id = ?2",
                ))?;
                statement
                    .query_map(params![document_id.as_str(), tenant], |row| {
                        row.get::<_, i64>(0)
                    })?
                    .map(|id| id.map(|id| id as u64))
                    .collect::<Result<Vec<_>, _>>()?
            };
            for table in [
                "t_chunks",
                "t_document_texts",
                "t_document_catalogues",
                "t_jobs",
                "t_documents",
            ] {
                transaction.execute(
                    &sql(&format!(
                        "DELETE FROM {table} WHERE document_id = ?1 AND tenant_id = ?2"
                    )),
                    params![document_id.as_str(), tenant],
                )?;
            }
            transaction.commit()?;
            row_ids
        };
        let blob = self.blob_path(scope, document_id);
        match std::fs::remove_file(&blob) {
            Ok(()) => {
                if let Some(dir) = blob.parent() {
                    files::sync_dir(dir)?;
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error.into()),
        }
        Ok(row_ids)
    }

    /// Which tenant owns each of these documents, read from the base table on the system
    /// connection (independently of the tenant connection, its views and the scope's own
    /// filters): the output layer's check. Ids only, no content; unknown ids are absent.
    pub fn document_owners(
        &self,
        document_ids: &[&DocumentId],
    ) -> Result<HashMap<DocumentId, TenantId>, StoreError> {
        let connection = self.connection();
        let mut statement =
            connection.prepare("SELECT tenant_id FROM documents WHERE document_id = ?1")?;
        let mut owners = HashMap::with_capacity(document_ids.len());
        for &document_id in document_ids {
            let owner: Option<String> = statement
                .query_row(params![document_id.as_str()], |row| row.get(0))
                .optional()?;
            if let Some(owner) = owner.and_then(|owner| TenantId::try_from(owner.as_str()).ok()) {
                owners.insert(document_id.clone(), owner);
            }
        }
        Ok(owners)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{new_tenant, temp_store};
    use super::*;

    #[test]
    fn a_document_is_listed_read_and_deleted_only_by_its_tenant() {
        let (_dir, store) = temp_store();
        let alpha = new_tenant(&store, "Alpha");
        let beta = new_tenant(&store, "Beta");
        let metadata = serde_json::json!({"kind": "nda"});
        let document_id = store
            .put_document(&alpha, "nda.txt", Some(&metadata), b"secret terms")
            .unwrap();

        let listed = store.list_documents(&alpha).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].document_id, document_id);
        assert_eq!(listed[0].filename, "nda.txt");
        assert_eq!(listed[0].status, DocumentStatus::Queued);
        assert_eq!(listed[0].bytes, 12);
        assert_eq!(
            store.document_original(&alpha, &document_id).unwrap(),
            b"secret terms"
        );
        assert!(store.list_documents(&beta).unwrap().is_empty());
        assert!(matches!(
            store.document(&beta, &document_id),
            Err(StoreError::DocumentNotFound(_))
        ));
        assert!(store.delete_document(&beta, &document_id).is_err());
        let owners = store.document_owners(&[&document_id]).unwrap();
        assert_eq!(owners.get(&document_id), Some(alpha.tenant_id()));

        store.delete_document(&alpha, &document_id).unwrap();
        assert!(store.list_documents(&alpha).unwrap().is_empty());
        assert!(store.document_owners(&[&document_id]).unwrap().is_empty());
    }
}
