//! Documents: durable uploads, listing and reading (each checked by the output layer),
//! portable export and import, deletion.

use super::*;

impl Appliance {
    /// Stores an upload durably and queues it; returns once it may be acknowledged.
    pub fn upload(
        &self,
        scope: &TenantScope,
        filename: &str,
        metadata: Option<&serde_json::Value>,
        original: &[u8],
    ) -> Result<DocumentId, ApplianceError> {
        let limit = self.config.extract_limits.max_file_bytes;
        if original.len() as u64 > limit {
            return Err(ExtractError::TooLarge {
                bytes: original.len() as u64,
                limit,
            }
            .into());
        }
        let filename = sanitize_filename(filename);
        Ok(self
            .store
            .put_document(scope, &filename, metadata, original)?)
    }

    pub fn list_documents(
        &self,
        scope: &TenantScope,
    ) -> Result<Vec<DocumentRecord>, ApplianceError> {
        let documents = self.store.list_documents(scope)?;
        Ok(output::retain_owned(&self.store, scope, documents, |d| {
            &d.document_id
        })?)
    }

    pub fn document(
        &self,
        scope: &TenantScope,
        document_id: &DocumentId,
    ) -> Result<DocumentRecord, ApplianceError> {
        self.require_owned(scope, document_id)?;
        Ok(self.store.document(scope, document_id)?)
    }

    /// The catalogue of one document (title, parties, dates, governing law), if indexing
    /// built one. The document must be the tenant's, by storage.
    pub fn document_catalogue(
        &self,
        scope: &TenantScope,
        document_id: &DocumentId,
    ) -> Result<Option<Catalogue>, ApplianceError> {
        self.require_owned(scope, document_id)?;
        // Straight from the store: reading one catalogue should not open the tenant's
        // index, which the answer path's cache lives with.
        Ok(self
            .store
            .catalogue(scope, document_id)?
            .and_then(|text| serde_json::from_str(&text).ok()))
    }

    /// A document's catalogue as stored (read through the tenant's scope, cached with its
    /// open index), without the output layer's check: for the answer path, which checks
    /// what it cites itself.
    pub(super) fn stored_catalogue(
        &self,
        scope: &TenantScope,
        document_id: &DocumentId,
    ) -> Result<Option<Catalogue>, ApplianceError> {
        Ok(self.catalogue_map(scope)?.get(document_id).cloned())
    }

    /// Every catalogue of the tenant by document, decrypted and decoded once per open
    /// index rather than on every ask (issue 10). The cache sits in the tenant's own
    /// open-index entry (tenant content is never shared) and is read again when the
    /// documents with a catalogue are no longer the ones it was read for (an ingest or a
    /// deletion, here or in another process) or when this process stores one.
    pub(super) fn catalogue_map(
        &self,
        scope: &TenantScope,
    ) -> Result<Arc<HashMap<DocumentId, Catalogue>>, ApplianceError> {
        // Opens the entry, and drops it when another process changed the tenant.
        self.tenant_index(scope)?;
        let documents = self.store.catalogue_document_ids(scope)?;
        let cached = lock(&self.open_tenants)
            .get(scope.tenant_id())
            .and_then(|tenant| tenant.catalogues.as_ref())
            .filter(|cached| cached.documents == documents)
            .map(|cached| cached.by_document.clone());
        if let Some(by_document) = cached {
            return Ok(by_document);
        }
        let by_document: Arc<HashMap<DocumentId, Catalogue>> =
            Arc::new(self.catalogues(scope)?.into_iter().collect());
        if let Some(tenant) = lock(&self.open_tenants).get_mut(scope.tenant_id()) {
            tenant.catalogues = Some(TenantCatalogues {
                documents,
                by_document: by_document.clone(),
            });
        }
        Ok(by_document)
    }

    /// Drops the tenant's cached catalogues (after this process stored or deleted one).
    pub(super) fn forget_catalogues(&self, scope: &TenantScope) {
        if let Some(tenant) = lock(&self.open_tenants).get_mut(scope.tenant_id()) {
            tenant.catalogues = None;
        }
    }

    /// Every catalogue of the tenant, by document (documents indexed before catalogues
    /// existed have none). Read through the tenant's scope like every store read; callers
    /// show only the catalogues of documents the output layer passed.
    pub fn catalogues(
        &self,
        scope: &TenantScope,
    ) -> Result<Vec<(DocumentId, Catalogue)>, ApplianceError> {
        Ok(self
            .store
            .catalogues(scope)?
            .into_iter()
            .filter_map(|(id, text)| Some((id, serde_json::from_str(&text).ok()?)))
            .collect())
    }

    /// Output layer: a document about to be returned must be the tenant's, by storage.
    fn require_owned(
        &self,
        scope: &TenantScope,
        document_id: &DocumentId,
    ) -> Result<(), ApplianceError> {
        if output::owned(&self.store, scope, &[document_id])?[0] {
            Ok(())
        } else {
            Err(StoreError::DocumentNotFound(document_id.to_string()).into())
        }
    }

    pub fn document_original(
        &self,
        scope: &TenantScope,
        document_id: &DocumentId,
    ) -> Result<Vec<u8>, ApplianceError> {
        self.require_owned(scope, document_id)?;
        Ok(self.store.document_original(scope, document_id)?)
    }

    /// A document's extracted text (what citations' `start`/`end` count into); `None`
    /// until it is indexed. The document must be the tenant's, by storage.
    pub fn document_text(
        &self,
        scope: &TenantScope,
        document_id: &DocumentId,
    ) -> Result<Option<String>, ApplianceError> {
        self.require_owned(scope, document_id)?;
        Ok(self.store.export_document(scope, document_id)?.text)
    }

    /// Where each page of a pdf starts in its extracted text, in characters (issue 13);
    /// `None` for other formats and for documents indexed before pages were recorded.
    pub fn document_page_starts(
        &self,
        scope: &TenantScope,
        document_id: &DocumentId,
    ) -> Result<Option<Vec<u64>>, ApplianceError> {
        self.require_owned(scope, document_id)?;
        Ok(self.store.document_page_starts(scope, document_id)?)
    }

    /// The words of `question` that name one of the tenant's contracts (by catalogue
    /// title, party names and file name, as `crate::resolution` decides), or `None` when
    /// it names none clearly: a conversation carries them over to a follow-up question.
    pub fn contract_naming_words(
        &self,
        scope: &TenantScope,
        question: &str,
    ) -> Result<Option<String>, ApplianceError> {
        let records = self.list_documents(scope)?;
        let catalogues = self.catalogue_map(scope)?;
        let named = super::retrieval::named_documents(&records, &catalogues);
        let Some(resolved) = crate::resolution::resolve(question, &named) else {
            return Ok(None);
        };
        let bare = |word: &str| word.trim_matches(|c: char| !c.is_alphanumeric()).to_owned();
        let kept: std::collections::HashSet<String> = resolved
            .query
            .split_whitespace()
            .map(|word| bare(word).to_lowercase())
            .collect();
        let naming: Vec<String> = question
            .split_whitespace()
            .map(bare)
            .filter(|word| !word.is_empty() && !kept.contains(&word.to_lowercase()))
            .collect();
        Ok((!naming.is_empty()).then(|| naming.join(" ")))
    }

    /// Streams the tenant's portable export to `out` (see [`crate::portability`]).
    pub fn export_tenant(
        &self,
        scope: &TenantScope,
        out: impl std::io::Write,
        recipient: Option<&str>,
    ) -> Result<crate::portability::PortabilitySummary, ApplianceError> {
        Ok(crate::portability::export(
            &self.store,
            scope,
            out,
            recipient,
        )?)
    }

    /// Loads an export into this tenant; its indexes pick the documents up at once.
    pub fn import_tenant(
        &self,
        scope: &TenantScope,
        input: impl std::io::Read + std::io::Seek,
        identity: Option<&str>,
    ) -> Result<crate::portability::PortabilitySummary, ApplianceError> {
        let summary = crate::portability::import(
            &self.store,
            scope,
            input,
            identity,
            &self.config.import_limits,
        )?;
        self.rebuild_missing_catalogues(scope)?;
        // The next use reopens the index, which reconciles it with the imported chunks.
        self.evict(scope);
        Ok(summary)
    }

    /// Deletes a document; it is gone from search and answers when this returns.
    pub fn delete_document(
        &self,
        scope: &TenantScope,
        document_id: &DocumentId,
    ) -> Result<(), ApplianceError> {
        let index = self.tenant_index(scope)?;
        // Under the index's write lock: no search sees the store without the document but
        // the index with it.
        let mut index = write(&index);
        let row_ids = self.store.delete_document(scope, document_id)?;
        index.remove(&row_ids)?;
        if index.compact_if_needed(&self.store, scope)? {
            tracing::info!(tenant = %scope.tenant_id(), "vector index compacted");
        }
        index.persist(&self.store, scope)?;
        Ok(())
    }
}
