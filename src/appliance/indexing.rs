//! The indexing queue: extract, chunk, embed, commit and add to the tenant's index.

use super::*;
use crate::catalogue;

impl Appliance {
    /// Indexes the queued documents of every tenant (the background indexer). Returns at
    /// once, having done nothing, while another process holds the indexer lock (a
    /// `bulkhead ingest`): its work is picked up on a later round.
    pub fn process_all_pending(&self) -> Result<usize, ApplianceError> {
        let mut processed = 0;
        for tenant_id in self.store.tenants_with_jobs()? {
            // A locked BYOK tenant's documents wait, queued, until it is unlocked.
            if self.store.tenant_locked(&tenant_id)? {
                continue;
            }
            // An enterprise tenant's documents are indexed by its own process (issue 12).
            if !self.served_here(&tenant_id)? {
                continue;
            }
            let scope = auth::operator_scope(tenant_id, OperatorReason::IndexingJob);
            match self.run_jobs(&scope, false, &mut |_| {})? {
                Some(outcomes) => processed += outcomes.len(),
                None => break,
            }
        }
        Ok(processed)
    }

    /// Indexes every queued document of the tenant (including ones a crash interrupted),
    /// calling `progress` after each. Waits while another process is indexing (the data
    /// directory's indexer lock), so a server and `bulkhead ingest` never index the same
    /// document; documents the other process indexed meanwhile are not in the outcomes.
    pub fn process_jobs(
        &self,
        scope: &TenantScope,
        progress: &mut dyn FnMut(&IndexOutcome),
    ) -> Result<Vec<IndexOutcome>, ApplianceError> {
        Ok(self.run_jobs(scope, true, progress)?.unwrap_or_default())
    }

    /// Like [`Appliance::process_jobs`], but `None` at once when another process is
    /// indexing (the CLI resuming interrupted work before a search).
    pub fn process_jobs_if_idle(
        &self,
        scope: &TenantScope,
    ) -> Result<Option<Vec<IndexOutcome>>, ApplianceError> {
        self.run_jobs(scope, false, &mut |_| {})
    }

    /// One indexing run: the indexer lock (waiting for it or not), then one atomically
    /// claimed job after another until the tenant's queue is empty.
    fn run_jobs(
        &self,
        scope: &TenantScope,
        wait: bool,
        progress: &mut dyn FnMut(&IndexOutcome),
    ) -> Result<Option<Vec<IndexOutcome>>, ApplianceError> {
        let _running = lock(&self.indexing);
        let Some(indexer) = self.store.indexer_lock(wait)? else {
            return Ok(None);
        };
        let mut outcomes = Vec::new();
        let mut seen = std::collections::HashSet::new();
        while let Some(job) = self.store.claim_job(scope, &indexer)? {
            // A job taken over by another indexer (leases only: no file locks here) is
            // left to it rather than claimed back and forth.
            if !seen.insert(job.document_id.clone()) {
                break;
            }
            match self.index_document(scope, &job) {
                Err(ApplianceError::Store(StoreError::JobLost(_))) => continue,
                result => {
                    let outcome = result?;
                    progress(&outcome);
                    outcomes.push(outcome);
                }
            }
        }
        if outcomes.iter().any(|outcome| outcome.result.is_ok()) {
            let index = self.tenant_index(scope)?;
            read(&index).persist(&self.store, scope)?;
        }
        Ok(Some(outcomes))
    }

    fn index_document(
        &self,
        scope: &TenantScope,
        job: &IndexJob,
    ) -> Result<IndexOutcome, ApplianceError> {
        let record = self.store.document(scope, &job.document_id)?;
        let outcome = |result| IndexOutcome {
            document_id: job.document_id.clone(),
            filename: record.filename.clone(),
            result,
        };
        if job.exhausted {
            let reason = "indexing was interrupted repeatedly: the document may be too large or malformed; re-save it and upload it again";
            self.store.fail_document(scope, job, reason)?;
            return Ok(outcome(Err(reason.to_owned())));
        }
        let original = self.store.document_original(scope, &job.document_id)?;
        let extracted =
            match extract::extract(&original, &record.filename, &self.config.extract_limits) {
                Ok(extracted) => extracted,
                Err(error) => {
                    let reason = error.to_string();
                    self.store.fail_document(scope, job, &reason)?;
                    return Ok(outcome(Err(reason)));
                }
            };
        drop(original);
        let pieces = self.chunker()?.chunk(&extracted.text);
        if pieces.is_empty() {
            let reason = ExtractError::NoText {
                format: extracted.format,
            }
            .to_string();
            self.store.fail_document(scope, job, &reason)?;
            return Ok(outcome(Err(reason)));
        }
        let texts: Vec<&str> = pieces.iter().map(|piece| piece.text.as_str()).collect();
        let embeddings = self.embedder()?.embed(&texts)?;
        let chunks: Vec<NewChunk> = pieces
            .into_iter()
            .zip(embeddings)
            .map(|(piece, embedding)| NewChunk {
                start: piece.start,
                end: piece.end,
                text: piece.text,
                embedding,
            })
            .collect();
        // Open (and reconcile) the index before committing, so the new chunks are added
        // exactly once: by `add` below, not also by the reconcile of a first open.
        let index = self.tenant_index(scope)?;
        // Commit and add under the write lock: no search sees the store with the chunks
        // but the index without them (which would look like another process's change).
        let mut index = write(&index);
        let row_ids = self.store.complete_document(
            scope,
            job,
            extracted.format.content_type(),
            &extracted.text,
            &extracted.page_starts,
            &chunks,
        )?;
        let additions: Vec<(u64, &str, &[f32])> = row_ids
            .iter()
            .zip(&chunks)
            .map(|(row_id, chunk)| (*row_id, chunk.text.as_str(), chunk.embedding.as_slice()))
            .collect();
        index.add(&additions)?;
        drop(index);
        // The catalogue is rebuildable from the stored text, so it is committed after the
        // document rather than in its transaction.
        self.store_catalogue(scope, &job.document_id, &extracted.text)?;
        Ok(outcome(Ok(chunks.len())))
    }

    /// Builds a document's catalogue from its extracted text and stores it sealed.
    fn store_catalogue(
        &self,
        scope: &TenantScope,
        document_id: &DocumentId,
        text: &str,
    ) -> Result<(), ApplianceError> {
        let catalogue = catalogue::catalogue(text);
        // Strings, numbers and lists only: encoding cannot fail.
        let encoded = serde_json::to_string(&catalogue).expect("a catalogue encodes as JSON");
        self.store.put_catalogue(scope, document_id, &encoded)?;
        self.forget_catalogues(scope);
        Ok(())
    }

    /// Builds the catalogue of every indexed document that has none (imported ones: an
    /// export carries the text, and the catalogue is rebuilt from it).
    pub(super) fn rebuild_missing_catalogues(
        &self,
        scope: &TenantScope,
    ) -> Result<usize, ApplianceError> {
        let have: std::collections::HashSet<DocumentId> = self
            .store
            .catalogues(scope)?
            .into_iter()
            .map(|(document_id, _)| document_id)
            .collect();
        let mut built = 0;
        for record in self.store.list_documents(scope)? {
            if have.contains(&record.document_id) {
                continue;
            }
            let stored = self.store.export_document(scope, &record.document_id)?;
            if let Some(text) = stored.text {
                self.store_catalogue(scope, &record.document_id, &text)?;
                built += 1;
            }
        }
        Ok(built)
    }
}
