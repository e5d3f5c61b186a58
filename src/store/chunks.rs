//! Chunks and index snapshots: what the per-tenant indexes are built from, and their
//! sealed snapshot files.

use std::collections::HashMap;
use std::path::PathBuf;

use rusqlite::params;

use super::rows::sql;
use super::{Store, StoreError, files};
use crate::auth::TenantScope;
use crate::crypto::{self, Aad, ObjectKind};
use crate::ids::{ChunkId, DocumentId, TenantId};

/// A chunk ready to be stored: offsets are character offsets into the extracted text.
pub struct NewChunk {
    pub start: usize,
    pub end: usize,
    pub text: String,
    pub embedding: Vec<f32>,
}

/// A stored chunk's vector, for (re)building the vector index.
pub struct ChunkVector {
    pub row_id: u64,
    pub embedding: Vec<f32>,
}

/// A stored chunk's text, for the text index and for citations.
#[derive(Clone, Debug)]
pub struct ChunkRecord {
    /// The tenant the row says it belongs to (checked again by the prompt and output
    /// layers).
    pub tenant_id: TenantId,
    pub row_id: u64,
    pub chunk_id: ChunkId,
    pub filename: String,
    pub start: usize,
    pub end: usize,
    pub text: String,
}

impl Store {
    /// Every live chunk's vector (row id order), for building the vector index.
    pub fn chunk_vectors(&self, scope: &TenantScope) -> Result<Vec<ChunkVector>, StoreError> {
        let rows: Vec<(String, i64, String, i64, Vec<u8>)> = self.tenant_rows(
            scope,
            &sql("SELECT tenant_id, row_id, document_id, seq, embedding_sealed FROM t_chunks WHERE tenant_id = ?1 ORDER BY row_id"),
            params![scope.tenant_id().as_str()],
        )?;
        let key = self.data_key(scope)?;
        rows.into_iter()
            .filter(|row| Self::row_is_ours(scope, &row.0))
            .map(|(_, row_id, document, seq, sealed)| {
                let chunk_id = format!("{document}:{seq}");
                let bytes =
                    self.open_sealed(scope, &key, ObjectKind::ChunkEmbedding, &chunk_id, &sealed)?;
                Ok(ChunkVector {
                    row_id: row_id as u64,
                    embedding: crypto::bytes_to_f32s(&bytes),
                })
            })
            .collect()
    }

    /// A change counter for the whole database that moves whenever another connection —
    /// this process's tenant connection, or another process such as `bulkhead ingest`
    /// next to a running server — commits (`PRAGMA data_version`).
    pub fn data_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .connection()
            .query_row("PRAGMA data_version", [], |row| row.get(0))?)
    }

    /// The tenant's live chunks as (count, largest row id): what an up-to-date index
    /// holds. Row ids are never reused, so any change by another writer changes this.
    pub fn chunk_signature(&self, scope: &TenantScope) -> Result<(usize, u64), StoreError> {
        let (count, max): (i64, Option<i64>) = self.tenant(scope).query_row(
            &sql("SELECT COUNT(*), MAX(row_id) FROM t_chunks WHERE tenant_id = ?1"),
            params![scope.tenant_id().as_str()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        Ok((count as usize, max.unwrap_or(0) as u64))
    }

    /// Every live chunk's row id, ascending: what the indexes must contain.
    pub fn chunk_row_ids(&self, scope: &TenantScope) -> Result<Vec<u64>, StoreError> {
        let rows: Vec<(String, i64)> = self.tenant_rows(
            scope,
            &sql("SELECT tenant_id, row_id FROM t_chunks WHERE tenant_id = ?1 ORDER BY row_id"),
            params![scope.tenant_id().as_str()],
        )?;
        Ok(Self::owned_row_ids(scope, rows))
    }

    /// The row ids of rows (tenant, row id) that are the scope's (application scope).
    fn owned_row_ids(scope: &TenantScope, rows: Vec<(String, i64)>) -> Vec<u64> {
        rows.into_iter()
            .filter(|(tenant, _)| Self::row_is_ours(scope, tenant))
            .map(|(_, id)| id as u64)
            .collect()
    }

    /// The row ids of one document's chunks (a search within a named contract).
    pub fn document_row_ids(
        &self,
        scope: &TenantScope,
        document_id: &DocumentId,
    ) -> Result<Vec<u64>, StoreError> {
        let rows: Vec<(String, i64)> = self.tenant_rows(
            scope,
            &sql(
                "SELECT tenant_id, row_id FROM t_chunks WHERE tenant_id = ?1 AND document_id = ?2",
            ),
            params![scope.tenant_id().as_str(), document_id.as_str()],
        )?;
        Ok(Self::owned_row_ids(scope, rows))
    }

    /// Chunks by row id, decrypted, with their document's file name. Row ids that are not
    /// this tenant's are silently absent: the query filters by the scope's tenant.
    pub fn chunks(
        &self,
        scope: &TenantScope,
        row_ids: &[u64],
    ) -> Result<Vec<ChunkRecord>, StoreError> {
        if row_ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = row_ids
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        // Row ids are integers formatted by us, so inlining them is injection-free.
        let statement = format!(
            "SELECT c.tenant_id, c.row_id, c.document_id, c.seq, c.start_char, c.end_char, c.text_sealed, d.filename_sealed
             FROM t_chunks c JOIN t_documents d ON d.document_id = c.document_id AND d.tenant_id = c.tenant_id
             WHERE c.tenant_id = ?1 AND c.row_id IN ({list})"
        );
        type Row = (String, i64, String, i64, i64, i64, Vec<u8>, Vec<u8>);
        let rows: Vec<Row> =
            self.tenant_rows(scope, &sql(&statement), params![scope.tenant_id().as_str()])?;
        let key = self.data_key(scope)?;
        let mut by_id: HashMap<u64, ChunkRecord> = HashMap::with_capacity(rows.len());
        for (tenant, row_id, document, seq, start, end, text_sealed, filename_sealed) in rows {
            if !Self::row_is_ours(scope, &tenant) {
                continue;
            }
            let (Ok(tenant_id), Ok(document_id)) = (
                TenantId::try_from(tenant.as_str()),
                DocumentId::try_from(document.as_str()),
            ) else {
                continue;
            };
            let chunk_id = ChunkId::new(document_id.clone(), seq as u32);
            let chunk_label = chunk_id.to_string();
            let text = self.open_text(
                scope,
                &key,
                ObjectKind::ChunkText,
                &chunk_label,
                &text_sealed,
            )?;
            let filename = self.open_text(
                scope,
                &key,
                ObjectKind::DocumentFilename,
                document_id.as_str(),
                &filename_sealed,
            )?;
            by_id.insert(
                row_id as u64,
                ChunkRecord {
                    tenant_id,
                    row_id: row_id as u64,
                    chunk_id,
                    filename,
                    start: start as usize,
                    end: end as usize,
                    text,
                },
            );
        }
        // Keep the caller's (rank) order.
        Ok(row_ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    /// Seals an index snapshot for this tenant and replaces its file atomically.
    pub fn write_index_file(
        &self,
        scope: &TenantScope,
        kind: ObjectKind,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let key = self.data_key(scope)?;
        let sealed = key.seal(
            Aad {
                tenant: Some(scope.tenant_id()),
                kind,
                object_id: kind.label(),
            },
            bytes,
        );
        files::write_atomic(&self.index_path(scope, kind), &sealed)?;
        Ok(())
    }

    /// Reads and opens an index snapshot; `None` when there is none yet.
    pub fn read_index_file(
        &self,
        scope: &TenantScope,
        kind: ObjectKind,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let sealed = match std::fs::read(self.index_path(scope, kind)) {
            Ok(sealed) => sealed,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let key = self.data_key(scope)?;
        Ok(Some(self.open_sealed(
            scope,
            &key,
            kind,
            kind.label(),
            &sealed,
        )?))
    }

    fn index_path(&self, scope: &TenantScope, kind: ObjectKind) -> PathBuf {
        self.tenant_dir(scope)
            .join("index")
            .join(format!("{}.bin", kind.label()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::DocumentStatus;
    use super::super::test_support::{new_tenant, temp_store};
    use super::*;

    #[test]
    fn completed_chunks_round_trip_and_stay_with_their_tenant() {
        let (_dir, store) = temp_store();
        let alpha = new_tenant(&store, "Alpha");
        let beta = new_tenant(&store, "Beta");
        let document_id = store
            .put_document(&alpha, "a.txt", None, b"one two")
            .unwrap();
        let lock = store.indexer_lock(true).unwrap().unwrap();
        let job = store.claim_job(&alpha, &lock).unwrap().unwrap();
        let chunks = [
            NewChunk {
                start: 0,
                end: 3,
                text: "one".into(),
                embedding: vec![1.0, 0.0],
            },
            NewChunk {
                start: 4,
                end: 7,
                text: "two".into(),
                embedding: vec![0.0, 1.0],
            },
        ];
        let row_ids = store
            .complete_document(&alpha, &job, "text/plain", "one two", &[], &chunks)
            .unwrap();
        assert_eq!(row_ids.len(), 2);
        assert_eq!(
            store.document(&alpha, &document_id).unwrap().status,
            DocumentStatus::Indexed
        );
        assert_eq!(store.chunk_row_ids(&alpha).unwrap(), row_ids);
        assert_eq!(store.chunk_signature(&alpha).unwrap(), (2, row_ids[1]));
        let vectors = store.chunk_vectors(&alpha).unwrap();
        assert_eq!(vectors[1].embedding, [0.0, 1.0]);
        // Rank order is the caller's.
        let read = store.chunks(&alpha, &[row_ids[1], row_ids[0]]).unwrap();
        assert_eq!(read[0].text, "two");
        assert_eq!(read[0].chunk_id.to_string(), format!("{document_id}:1"));
        assert_eq!(
            (read[1].start, read[1].end, read[1].filename.as_str()),
            (0, 3, "a.txt")
        );
        assert!(store.chunks(&beta, &row_ids).unwrap().is_empty());
        assert_eq!(store.chunk_signature(&beta).unwrap(), (0, 0));

        assert!(
            store
                .read_index_file(&alpha, ObjectKind::TextIndex)
                .unwrap()
                .is_none()
        );
        store
            .write_index_file(&alpha, ObjectKind::TextIndex, b"snapshot")
            .unwrap();
        assert_eq!(
            store
                .read_index_file(&alpha, ObjectKind::TextIndex)
                .unwrap()
                .unwrap(),
            b"snapshot"
        );
    }
}
