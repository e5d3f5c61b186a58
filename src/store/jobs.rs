//! The durable indexing queue: claiming jobs (an attempt is counted first), completing a
//! document with its text and chunks in one transaction, or failing it with a reason.

use rusqlite::params;

use super::rows::sql;
use super::{NewChunk, Store, StoreError};
use crate::auth::TenantScope;
use crate::crypto::{self, Aad, ObjectKind};
use crate::ids::{ChunkId, DocumentId, TenantId};

/// A document that failed indexing this many times is marked failed rather than retried
/// forever (a poison document must not block the queue).
const MAX_JOB_ATTEMPTS: i64 = 3;

/// One queued document to index.
#[derive(Clone, Debug)]
pub struct IndexJob {
    pub(super) job_id: i64,
    pub document_id: DocumentId,
    /// True when earlier attempts all died (crash, kill): give up with a clear reason.
    pub exhausted: bool,
}

impl Store {
    /// The queued indexing jobs of this tenant, oldest first. Claiming counts an attempt
    /// (committed before work starts), so a document that crashes the indexer is retried
    /// a bounded number of times.
    pub fn claim_jobs(&self, scope: &TenantScope) -> Result<Vec<IndexJob>, StoreError> {
        let mut connection = self.tenant(scope);
        let transaction = connection.transaction()?;
        let jobs: Vec<(String, i64, String, i64)> = {
            let mut statement = transaction.prepare(&sql(
                "SELECT tenant_id, job_id, document_id, attempts FROM t_jobs WHERE tenant_id = ?1 ORDER BY job_id",
            ))?;
            statement
                .query_map(params![scope.tenant_id().as_str()], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })?
                .collect::<Result<_, _>>()?
        };
        transaction.execute(
            &sql("UPDATE t_jobs SET attempts = attempts + 1 WHERE tenant_id = ?1"),
            params![scope.tenant_id().as_str()],
        )?;
        transaction.commit()?;
        let mut claimed = Vec::new();
        for (tenant, job_id, document, attempts) in jobs {
            if !Self::row_is_ours(scope, &tenant) {
                continue;
            }
            let Ok(document_id) = DocumentId::try_from(document.as_str()) else {
                continue;
            };
            claimed.push(IndexJob {
                job_id,
                document_id,
                exhausted: attempts >= MAX_JOB_ATTEMPTS,
            });
        }
        Ok(claimed)
    }

    /// Commits an indexed document in one transaction: its text, chunks and vectors, its
    /// status, and the removal of its job. Returns the new chunks' row ids in order.
    pub fn complete_document(
        &self,
        scope: &TenantScope,
        job: &IndexJob,
        content_type: &str,
        text: &str,
        chunks: &[NewChunk],
    ) -> Result<Vec<u64>, StoreError> {
        let key = self.data_key(scope)?;
        let tenant = Some(scope.tenant_id());
        let document_id = &job.document_id;
        let text_sealed = key.seal(
            Aad {
                tenant,
                kind: ObjectKind::DocumentText,
                object_id: document_id.as_str(),
            },
            text.as_bytes(),
        );
        let sealed_chunks: Vec<(Vec<u8>, Vec<u8>)> = chunks
            .iter()
            .enumerate()
            .map(|(seq, chunk)| {
                let chunk_id = ChunkId::new(document_id.clone(), seq as u32).to_string();
                let aad = |kind| Aad {
                    tenant,
                    kind,
                    object_id: &chunk_id,
                };
                (
                    key.seal(aad(ObjectKind::ChunkText), chunk.text.as_bytes()),
                    key.seal(
                        aad(ObjectKind::ChunkEmbedding),
                        &crypto::f32s_to_bytes(&chunk.embedding),
                    ),
                )
            })
            .collect();
        let mut connection = self.tenant(scope);
        let transaction = connection.transaction()?;
        // A retried job may have committed something before; if it had, replace it whole.
        for table in ["t_document_texts", "t_chunks"] {
            transaction.execute(
                &sql(&format!(
                    "DELETE FROM {table} WHERE document_id = ?1 AND tenant_id = ?2"
                )),
                params![document_id.as_str(), scope.tenant_id().as_str()],
            )?;
        }
        transaction.execute(
            &sql("INSERT INTO t_document_texts (document_id, tenant_id, text_sealed) VALUES (?1, ?2, ?3)"),
            params![document_id.as_str(), scope.tenant_id().as_str(), text_sealed],
        )?;
        {
            let mut insert = transaction.prepare(&sql(
                "INSERT INTO t_chunks (tenant_id, document_id, seq, start_char, end_char, text_sealed, embedding_sealed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            ))?;
            for (seq, (chunk, (text_sealed, embedding_sealed))) in
                chunks.iter().zip(sealed_chunks).enumerate()
            {
                insert.execute(params![
                    scope.tenant_id().as_str(),
                    document_id.as_str(),
                    seq as i64,
                    chunk.start as i64,
                    chunk.end as i64,
                    text_sealed,
                    embedding_sealed
                ])?;
            }
        }
        // Inserts through a view's trigger leave no last_insert_rowid: read them back.
        let row_ids: Vec<u64> = {
            let mut statement = transaction.prepare(&sql(
                "SELECT row_id FROM t_chunks WHERE document_id = ?1 AND tenant_id = ?2 ORDER BY seq",
            ))?;
            statement
                .query_map(
                    params![document_id.as_str(), scope.tenant_id().as_str()],
                    |row| row.get::<_, i64>(0),
                )?
                .map(|id| id.map(|id| id as u64))
                .collect::<Result<_, _>>()?
        };
        transaction.execute(
            &sql("UPDATE t_documents SET status = 'indexed', content_type = ?1, chunk_count = ?2, indexed_at = ?3, error_sealed = NULL
             WHERE document_id = ?4 AND tenant_id = ?5"),
            params![
                content_type,
                chunks.len() as i64,
                crate::time::now(),
                document_id.as_str(),
                scope.tenant_id().as_str()
            ],
        )?;
        transaction.execute(
            &sql("DELETE FROM t_jobs WHERE job_id = ?1 AND tenant_id = ?2"),
            params![job.job_id, scope.tenant_id().as_str()],
        )?;
        transaction.commit()?;
        Ok(row_ids)
    }

    /// Marks a document failed with a reason the user can act on, and drops its job.
    pub fn fail_document(
        &self,
        scope: &TenantScope,
        job: &IndexJob,
        reason: &str,
    ) -> Result<(), StoreError> {
        let key = self.data_key(scope)?;
        let error_sealed = key.seal(
            Aad {
                tenant: Some(scope.tenant_id()),
                kind: ObjectKind::DocumentError,
                object_id: job.document_id.as_str(),
            },
            reason.as_bytes(),
        );
        let mut connection = self.tenant(scope);
        let transaction = connection.transaction()?;
        transaction.execute(
            &sql("UPDATE t_documents SET status = 'failed', error_sealed = ?1 WHERE document_id = ?2 AND tenant_id = ?3"),
            params![error_sealed, job.document_id.as_str(), scope.tenant_id().as_str()],
        )?;
        transaction.execute(
            &sql("DELETE FROM t_jobs WHERE job_id = ?1 AND tenant_id = ?2"),
            params![job.job_id, scope.tenant_id().as_str()],
        )?;
        transaction.commit()?;
        Ok(())
    }

    /// Tenants with queued indexing jobs. Maintenance access (the background indexer):
    /// returns ids only, no content.
    pub fn tenants_with_jobs(&self) -> Result<Vec<TenantId>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare("SELECT DISTINCT tenant_id FROM jobs")?;
        let ids: Vec<String> = statement
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(ids
            .iter()
            .filter_map(|id| TenantId::try_from(id.as_str()).ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::super::DocumentStatus;
    use super::super::test_support::{new_tenant, temp_store};
    use super::*;

    #[test]
    fn a_claimed_job_counts_attempts_until_it_is_exhausted() {
        let (_dir, store) = temp_store();
        let alpha = new_tenant(&store, "Alpha");
        let beta = new_tenant(&store, "Beta");
        let document_id = store.put_document(&alpha, "a.txt", None, b"a").unwrap();
        assert_eq!(
            store.tenants_with_jobs().unwrap(),
            [alpha.tenant_id().clone()]
        );
        assert!(store.claim_jobs(&beta).unwrap().is_empty());
        for attempt in 1..=MAX_JOB_ATTEMPTS + 1 {
            let jobs = store.claim_jobs(&alpha).unwrap();
            assert_eq!(jobs.len(), 1);
            assert_eq!(jobs[0].document_id, document_id);
            assert_eq!(jobs[0].exhausted, attempt > MAX_JOB_ATTEMPTS);
        }
        let job = store.claim_jobs(&alpha).unwrap().remove(0);
        store.fail_document(&alpha, &job, "gave up").unwrap();
        let record = store.document(&alpha, &document_id).unwrap();
        assert_eq!(record.status, DocumentStatus::Failed);
        assert_eq!(record.error.as_deref(), Some("gave up"));
        assert!(store.tenants_with_jobs().unwrap().is_empty());
    }
}
