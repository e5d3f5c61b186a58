//! The durable indexing queue: claiming a job (atomically, with an owner and a lease; an
//! attempt is counted first), completing a document with its text and chunks in one
//! transaction, or failing it with a reason.
//!
//! Several processes may open one data directory (a server and `bulkhead ingest`). A job
//! is claimed in one immediate transaction that sets its `owner` (this store's
//! [`Store::owner`]) and `lease_until`, and only a job without an owner or with an expired
//! lease can be claimed: two claimers never get the same job. Completing or failing a job
//! checks that this store still owns it (`StoreError::JobLost` otherwise). On top of that,
//! indexing runs hold the data directory's exclusive indexer lock ([`Store::indexer_lock`],
//! `flock` on `indexer.lock`): while a process holds it nobody else is indexing, so jobs
//! another owner left behind (a crash, `kill -9`) are taken over at once instead of when
//! their lease runs out.

use std::fs::{File, OpenOptions, TryLockError};
use std::os::unix::fs::OpenOptionsExt;

use rusqlite::{OptionalExtension, TransactionBehavior, params};

use super::rows::sql;
use super::{NewChunk, Store, StoreError};
use crate::auth::TenantScope;
use crate::crypto::{self, Aad, ObjectKind};
use crate::ids::{ChunkId, DocumentId, TenantId};

/// A document that failed indexing this many times is marked failed rather than retried
/// forever (a poison document must not block the queue).
const MAX_JOB_ATTEMPTS: i64 = 3;

/// How long a claim is good for without the indexer lock: a claimer that dies leaves its
/// job to others after this long. Far longer than indexing one document takes (extraction
/// is stopped after its timeout; the text it yields is bounded).
pub const JOB_LEASE_SECONDS: i64 = 15 * 60;

/// The file whose `flock` is the indexer lock.
pub const INDEXER_LOCK_FILE: &str = "indexer.lock";

/// One queued document to index.
#[derive(Clone, Debug)]
pub struct IndexJob {
    pub(super) job_id: i64,
    pub document_id: DocumentId,
    /// True when earlier attempts all died (crash, kill): give up with a clear reason.
    pub exhausted: bool,
}

/// The data directory's exclusive indexer lock, held while it lives.
pub struct IndexerLock {
    // None where the file system has no `flock`: claims are then guarded by leases only.
    file: Option<File>,
}

impl IndexerLock {
    /// Whether the lock is really held (then no other process is indexing).
    pub fn exclusive(&self) -> bool {
        self.file.is_some()
    }
}

impl Store {
    /// This store's name as a job owner: unique per open store (process id and a random
    /// suffix).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Takes the data directory's exclusive indexer lock: with `wait`, blocks until the
    /// process holding it (a server's indexer, a `bulkhead ingest`) is done; without,
    /// `None` when another holds it. A file system without `flock` gives a lock that is
    /// not exclusive (leases still keep claims apart).
    pub fn indexer_lock(&self, wait: bool) -> Result<Option<IndexerLock>, StoreError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(self.root.join(INDEXER_LOCK_FILE))?;
        let locked = if wait {
            file.lock().map_err(TryLockError::Error)
        } else {
            file.try_lock()
        };
        match locked {
            Ok(()) => Ok(Some(IndexerLock { file: Some(file) })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(error)) if error.kind() == std::io::ErrorKind::Unsupported => {
                tracing::warn!(%error, "no file locks here: indexing claims rely on leases only");
                Ok(Some(IndexerLock { file: None }))
            }
            Err(TryLockError::Error(error)) => Err(error.into()),
        }
    }

    /// Claims the tenant's oldest claimable job for this store, in one immediate
    /// transaction: a job nobody owns, whose lease ran out, or (holding the exclusive
    /// `lock`: nobody else is indexing) any job. The claim counts an attempt (committed
    /// before work starts), so a document that crashes the indexer is retried a bounded
    /// number of times.
    pub fn claim_job(
        &self,
        scope: &TenantScope,
        lock: &IndexerLock,
    ) -> Result<Option<IndexJob>, StoreError> {
        let now = crate::time::now();
        let mut connection = self.tenant(scope);
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let job: Option<(String, i64, String, i64)> = transaction
            .query_row(
                &sql("SELECT tenant_id, job_id, document_id, attempts FROM t_jobs
                 WHERE tenant_id = ?1 AND (?2 OR owner IS NULL OR lease_until IS NULL OR lease_until <= ?3)
                 ORDER BY job_id LIMIT 1"),
                params![scope.tenant_id().as_str(), lock.exclusive(), now],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .optional()?;
        let Some((tenant, job_id, document, attempts)) = job else {
            return Ok(None);
        };
        transaction.execute(
            &sql(
                "UPDATE t_jobs SET attempts = attempts + 1, owner = ?1, lease_until = ?2
             WHERE job_id = ?3 AND tenant_id = ?4",
            ),
            params![
                self.owner,
                now + JOB_LEASE_SECONDS,
                job_id,
                scope.tenant_id().as_str()
            ],
        )?;
        transaction.commit()?;
        if !Self::row_is_ours(scope, &tenant) {
            return Ok(None);
        }
        let document_id = DocumentId::try_from(document.as_str())
            .map_err(|_| StoreError::DocumentNotFound(document.clone()))?;
        Ok(Some(IndexJob {
            job_id,
            document_id,
            exhausted: attempts >= MAX_JOB_ATTEMPTS,
        }))
    }

    /// Inside a job's completing transaction: fails with `JobLost` unless this store
    /// still owns the job (another claimer took it over after its lease ran out).
    fn check_job_owner(
        &self,
        transaction: &rusqlite::Transaction<'_>,
        scope: &TenantScope,
        job: &IndexJob,
    ) -> Result<(), StoreError> {
        let owner: Option<Option<String>> = transaction
            .query_row(
                &sql("SELECT owner FROM t_jobs WHERE job_id = ?1 AND tenant_id = ?2"),
                params![job.job_id, scope.tenant_id().as_str()],
                |row| row.get(0),
            )
            .optional()?;
        if owner.flatten().as_deref() == Some(self.owner.as_str()) {
            Ok(())
        } else {
            Err(StoreError::JobLost(job.document_id.to_string()))
        }
    }

    /// Commits an indexed document in one transaction: its text, chunks and vectors, its
    /// status, and the removal of its job. Returns the new chunks' row ids in order.
    pub fn complete_document(
        &self,
        scope: &TenantScope,
        job: &IndexJob,
        content_type: &str,
        text: &str,
        page_starts: &[u64],
        chunks: &[NewChunk],
    ) -> Result<Vec<u64>, StoreError> {
        let key = self.data_key(scope)?;
        let tenant = Some(scope.tenant_id());
        let document_id = &job.document_id;
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
        // The content type is sealed like the rest: an imported archive's is the tenant's
        // word (allow-listed by `portability`). A pdf's page starts too (issue 13).
        let seal = |kind, bytes: &[u8]| {
            key.seal(
                Aad {
                    tenant,
                    kind,
                    object_id: document_id.as_str(),
                },
                bytes,
            )
        };
        let text_sealed = seal(ObjectKind::DocumentText, text.as_bytes());
        let content_type_sealed = seal(ObjectKind::DocumentContentType, content_type.as_bytes());
        let pages_sealed = (!page_starts.is_empty()).then(|| {
            let json = serde_json::to_string(page_starts).expect("numbers encode as JSON");
            seal(ObjectKind::DocumentPages, json.as_bytes())
        });
        let mut connection = self.tenant(scope);
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        self.check_job_owner(&transaction, scope, job)?;
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
            &sql("UPDATE t_documents SET status = 'indexed', content_type = NULL, content_type_sealed = ?1, chunk_count = ?2, indexed_at = ?3, error_sealed = NULL, pages_sealed = ?6
             WHERE document_id = ?4 AND tenant_id = ?5"),
            params![
                content_type_sealed,
                chunks.len() as i64,
                crate::time::now(),
                document_id.as_str(),
                scope.tenant_id().as_str(),
                pages_sealed
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
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        self.check_job_owner(&transaction, scope, job)?;
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
        self.tenant_ids("SELECT DISTINCT tenant_id FROM jobs")
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
        let lock = store.indexer_lock(true).unwrap().unwrap();
        assert!(lock.exclusive());
        assert!(store.claim_job(&beta, &lock).unwrap().is_none());
        // Holding the exclusive lock, a job claimed before (by a run that died) is taken
        // over at once.
        for attempt in 1..=MAX_JOB_ATTEMPTS + 1 {
            let job = store.claim_job(&alpha, &lock).unwrap().unwrap();
            assert_eq!(job.document_id, document_id);
            assert_eq!(job.exhausted, attempt > MAX_JOB_ATTEMPTS);
        }
        let job = store.claim_job(&alpha, &lock).unwrap().unwrap();
        store.fail_document(&alpha, &job, "gave up").unwrap();
        let record = store.document(&alpha, &document_id).unwrap();
        assert_eq!(record.status, DocumentStatus::Failed);
        assert_eq!(record.error.as_deref(), Some("gave up"));
        assert!(store.tenants_with_jobs().unwrap().is_empty());
    }

    #[test]
    fn issue_11_racing_claimers_each_get_a_job_once_and_a_lost_job_cannot_be_completed() {
        let (dir, store) = temp_store();
        let alpha = new_tenant(&store, "Alpha");
        let documents: Vec<DocumentId> = (0..40)
            .map(|n| {
                store
                    .put_document(&alpha, &format!("{n}.txt"), None, b"a")
                    .unwrap()
            })
            .collect();
        // Two processes' stores, claiming without the indexer lock: leases only.
        let leases_only = IndexerLock { file: None };
        let claims: Vec<Vec<DocumentId>> = std::thread::scope(|threads| {
            let claimers: Vec<_> = (0..2)
                .map(|_| {
                    let other = Store::open(dir.path()).unwrap();
                    let (alpha, leases_only) = (&alpha, &leases_only);
                    threads.spawn(move || {
                        let mut claimed = Vec::new();
                        while let Some(job) = other.claim_job(alpha, leases_only).unwrap() {
                            assert!(!job.exhausted);
                            other.fail_document(alpha, &job, "done").unwrap();
                            claimed.push(job.document_id);
                        }
                        claimed
                    })
                })
                .collect();
            claimers.into_iter().map(|c| c.join().unwrap()).collect()
        });
        let mut all: Vec<DocumentId> = claims.concat();
        all.sort();
        let mut expected = documents.clone();
        expected.sort();
        assert_eq!(all, expected, "every job claimed exactly once");

        // A job another store claimed (lease running) is not claimable; its owner alone
        // completes it.
        let document_id = store.put_document(&alpha, "b.txt", None, b"b").unwrap();
        let other = Store::open(dir.path()).unwrap();
        let job = other.claim_job(&alpha, &leases_only).unwrap().unwrap();
        assert!(store.claim_job(&alpha, &leases_only).unwrap().is_none());
        assert!(matches!(
            store.fail_document(&alpha, &job, "not mine"),
            Err(StoreError::JobLost(_))
        ));
        // The exclusive indexer lock takes over a job whose owner is not indexing.
        let lock = store.indexer_lock(true).unwrap().unwrap();
        assert!(
            other.indexer_lock(false).unwrap().is_none(),
            "the lock is exclusive"
        );
        let taken = store.claim_job(&alpha, &lock).unwrap().unwrap();
        assert_eq!(taken.document_id, document_id);
        assert!(matches!(
            other.fail_document(&alpha, &job, "lost it"),
            Err(StoreError::JobLost(_))
        ));
        store.fail_document(&alpha, &taken, "mine").unwrap();
    }
}
