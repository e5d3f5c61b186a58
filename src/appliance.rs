//! The core of Bulkhead that every front end (CLI, HTTP) calls: tenants, uploads, the
//! indexing queue, search and grounded answers.
//!
//! It owns the store, the models (loaded lazily, once) and the open tenant indexes (loaded
//! lazily per tenant, evicted least-recently-used), and knows nothing about HTTP or
//! terminals. Every method is synchronous and CPU- or disk-bound: async callers run it on
//! a blocking thread. Every tenant operation takes a [`TenantScope`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use crate::answer::{self, Ungrounded};
use crate::auth::{self, OperatorReason, TenantScope};
use crate::config::Config;
use crate::embed::{EmbedError, Embedder};
use crate::ids::{DocumentId, TenantId};
use crate::index::{IndexError, SearchMode, TenantIndex};
use crate::ingest::chunk::Chunker;
use crate::ingest::extract::{self, ExtractError};
use crate::isolation::{Layer, enabled};
use crate::llm::{GenerateOptions, Generator, LlmError};
use crate::output;
use crate::store::{
    ChunkRecord, DocumentRecord, IndexJob, NewChunk, Store, StoreError, TenantRecord, Tier,
};

#[derive(Debug, thiserror::Error)]
pub enum ApplianceError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Embedding(#[from] EmbedError),
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error(transparent)]
    Document(#[from] ExtractError),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Portability(#[from] crate::portability::PortabilityError),
}

/// The outcome of indexing one queued document.
#[derive(Clone, Debug)]
pub struct IndexOutcome {
    pub document_id: DocumentId,
    pub filename: String,
    pub result: Result<usize, String>,
}

/// A signed tenant deletion certificate: the JSON and the same JSON as a compact JWS
/// (EdDSA) that verifies with the appliance's published key.
#[derive(Clone, Debug)]
pub struct DeletionCertificate {
    pub certificate: serde_json::Value,
    pub jws: String,
}

/// One search result.
#[derive(Clone, Debug)]
pub struct SearchResult {
    pub chunk: ChunkRecord,
    pub score: f32,
}

#[derive(Clone, Debug, Default)]
pub struct Timings {
    pub embed_ms: u64,
    pub retrieve_ms: u64,
    pub first_token_ms: Option<u64>,
    pub generate_ms: u64,
    pub total_ms: u64,
    pub prompt_tokens: usize,
    pub answer_tokens: usize,
}

#[derive(Clone, Debug)]
pub struct Answer {
    pub text: String,
    pub grounded: bool,
    pub citations: Vec<ChunkRecord>,
    pub timings: Timings,
}

type SharedIndex = Arc<RwLock<TenantIndex>>;

struct OpenTenant {
    index: SharedIndex,
    last_used: Instant,
    /// The store's `data_version` when the index was last known to match it.
    checked_version: i64,
}

pub struct Appliance {
    config: Config,
    store: Store,
    // std mutexes: held only to fetch or insert an Arc, never during inference or I/O.
    embedder: Mutex<Option<Arc<Embedder>>>,
    chunker: Mutex<Option<Arc<Chunker>>>,
    generator: Mutex<Option<Arc<Generator>>>,
    open_tenants: Mutex<HashMap<TenantId, OpenTenant>>,
    // One indexing run at a time (std mutex, held on a blocking thread for the run): the
    // background indexer and an upload waiting for its document must not claim the same
    // jobs twice. Indexing is CPU-bound, so running them one after another costs nothing.
    indexing: Mutex<()>,
}

impl Appliance {
    /// Opens an initialised data directory. Start-up does no per-tenant work: indexes open
    /// on first use.
    pub fn open(config: Config) -> Result<Appliance, ApplianceError> {
        let mut store = Store::open(&config.data_dir)?;
        if let Some(signer) = crate::auth::tokens::checkpoint_signer(&config.data_dir) {
            store.set_checkpoint_signer(signer);
        }
        crate::index::vector::remove_stale_staging();
        Ok(Appliance {
            config,
            store,
            embedder: Mutex::new(None),
            chunker: Mutex::new(None),
            generator: Mutex::new(None),
            open_tenants: Mutex::new(HashMap::new()),
            indexing: Mutex::new(()),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    // ---- models ----------------------------------------------------------------------

    pub fn embedder(&self) -> Result<Arc<Embedder>, ApplianceError> {
        let mut slot = lock(&self.embedder);
        if let Some(embedder) = slot.as_ref() {
            return Ok(embedder.clone());
        }
        let embedder = Arc::new(Embedder::load(&self.config.embedding_model_dir)?);
        *slot = Some(embedder.clone());
        Ok(embedder)
    }

    fn chunker(&self) -> Result<Arc<Chunker>, ApplianceError> {
        let embedder = self.embedder()?;
        let mut slot = lock(&self.chunker);
        if let Some(chunker) = slot.as_ref() {
            return Ok(chunker.clone());
        }
        let chunker = Arc::new(Chunker::new(embedder.tokenizer().clone()));
        *slot = Some(chunker.clone());
        Ok(chunker)
    }

    pub fn generator(&self) -> Result<Arc<Generator>, ApplianceError> {
        let mut slot = lock(&self.generator);
        if let Some(generator) = slot.as_ref() {
            return Ok(generator.clone());
        }
        let generator = Arc::new(Generator::load(&self.config.llm_model)?);
        *slot = Some(generator.clone());
        Ok(generator)
    }

    // ---- tenants ---------------------------------------------------------------------

    pub fn create_tenant(&self, name: &str, tier: Tier) -> Result<TenantRecord, ApplianceError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(ApplianceError::InvalidRequest(
                "tenant name must be 1 to 200 printable characters".into(),
            ));
        }
        let taken = self
            .store
            .list_tenants()?
            .iter()
            .any(|tenant| tenant.name.to_lowercase() == name.to_lowercase());
        if taken {
            return Err(ApplianceError::Conflict(format!(
                "a tenant named “{name}” already exists: choose another name"
            )));
        }
        Ok(self.store.create_tenant(name, tier)?)
    }

    pub fn list_tenants(&self) -> Result<Vec<TenantRecord>, ApplianceError> {
        Ok(self.store.list_tenants()?)
    }

    /// Deletes a tenant (crypto-shredding) and returns the signed deletion certificate.
    /// `actor` is the pseudonym of who asked, for the audit log.
    pub fn delete_tenant(
        &self,
        tenant_id: &TenantId,
        actor: &str,
        signer: &crate::auth::tokens::Signer,
    ) -> Result<DeletionCertificate, ApplianceError> {
        let requested_at = crate::time::now();
        // Nothing may still be indexing this tenant while its files go.
        let _running = lock(&self.indexing);
        lock(&self.open_tenants).remove(tenant_id);
        let deletion = self.store.delete_tenant(tenant_id)?;
        self.store.append_audit(&crate::audit::AuditEvent {
            tenant_id: Some(tenant_id.to_string()),
            actor: actor.to_owned(),
            action: "tenant.delete",
            resource: tenant_id.to_string(),
            outcome: crate::audit::Outcome::Ok,
        })?;
        let head = crate::audit::verify_chain(&self.store.audit_chain()?).head;
        let certificate = serde_json::json!({
            "type": "bulkhead.tenant_deletion",
            "tenant_id": tenant_id.to_string(),
            "requested_at": crate::time::rfc3339(requested_at),
            "completed_at": crate::time::rfc3339(crate::time::now()),
            "deleted": {
                "documents": deletion.documents,
                "chunks": deletion.chunks,
                "bytes": deletion.bytes,
                "vector_index": true,
                "text_index": true,
                "blobs": true,
            },
            "destroyed_key_ids": [deletion.key_id],
            "audit_chain_head": head,
            "issuer": crate::auth::tokens::ISSUER,
            "kid": signer.kid(),
        });
        let jws = signer
            .sign(&certificate)
            .map_err(|error| ApplianceError::InvalidRequest(error.to_string()))?;
        Ok(DeletionCertificate { certificate, jws })
    }

    /// A scope for the local operator, after checking the tenant exists.
    pub fn operator_scope(
        &self,
        tenant_id: &TenantId,
        reason: OperatorReason,
    ) -> Result<TenantScope, ApplianceError> {
        self.store.find_tenant(tenant_id)?;
        Ok(auth::operator_scope(tenant_id.clone(), reason))
    }

    /// The tenant's open index, opening (decrypt + load + reconcile) it on first use, and
    /// again when another process (`bulkhead ingest` beside a running server) changed the
    /// tenant's chunks since.
    fn tenant_index(&self, scope: &TenantScope) -> Result<SharedIndex, ApplianceError> {
        let version = self.store.data_version()?;
        let cached = {
            let mut open = lock(&self.open_tenants);
            open.get_mut(scope.tenant_id()).map(|tenant| {
                tenant.last_used = Instant::now();
                (tenant.index.clone(), tenant.checked_version)
            })
        };
        if let Some((index, checked)) = cached {
            // Something committed since the last check: this process's own writes keep
            // the index in step; another process's do not, and show as a different
            // (count, largest row id).
            if checked == version
                || read(&index).signature() == self.store.chunk_signature(scope)?
            {
                if let Some(tenant) = lock(&self.open_tenants).get_mut(scope.tenant_id()) {
                    tenant.checked_version = version;
                }
                return Ok(index);
            }
            tracing::info!(tenant = %scope.tenant_id(), "tenant changed by another process; reopening its index");
            lock(&self.open_tenants).remove(scope.tenant_id());
        }
        // Opened outside the map lock: other tenants are not held up by this one's load.
        // Two concurrent first uses may both load; the first insert wins.
        let started = Instant::now();
        let index = Arc::new(RwLock::new(TenantIndex::open(&self.store, scope)?));
        tracing::info!(
            tenant = %scope.tenant_id(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "tenant index opened"
        );
        let mut open = lock(&self.open_tenants);
        let entry = open
            .entry(scope.tenant_id().clone())
            .or_insert_with(|| OpenTenant {
                index,
                last_used: Instant::now(),
                checked_version: version,
            });
        let index = entry.index.clone();
        self.evict_beyond_budget(&mut open);
        Ok(index)
    }

    fn evict_beyond_budget(&self, open: &mut HashMap<TenantId, OpenTenant>) {
        while open.len() > self.config.max_open_tenants {
            // Only indexes nobody is using right now may go.
            let victim = open
                .iter()
                .filter(|(_, tenant)| Arc::strong_count(&tenant.index) == 1)
                .min_by_key(|(_, tenant)| tenant.last_used)
                .map(|(tenant_id, _)| tenant_id.clone());
            match victim {
                Some(tenant_id) => {
                    open.remove(&tenant_id);
                    tracing::debug!(tenant = %tenant_id, "tenant index evicted");
                }
                None => break,
            }
        }
    }

    /// Drops a tenant's open index from memory (it reopens from its files on next use).
    pub fn evict(&self, scope: &TenantScope) {
        lock(&self.open_tenants).remove(scope.tenant_id());
    }

    pub fn open_tenant_count(&self) -> usize {
        lock(&self.open_tenants).len()
    }

    // ---- documents -------------------------------------------------------------------

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
        input: impl std::io::Read,
        identity: Option<&str>,
    ) -> Result<crate::portability::PortabilitySummary, ApplianceError> {
        let summary = crate::portability::import(&self.store, scope, input, identity)?;
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

    /// Indexes the queued documents of every tenant (the background indexer).
    pub fn process_all_pending(&self) -> Result<usize, ApplianceError> {
        let mut processed = 0;
        for tenant_id in self.store.tenants_with_jobs()? {
            let scope = auth::operator_scope(tenant_id, OperatorReason::IndexingJob);
            processed += self.process_jobs(&scope, &mut |_| {})?.len();
        }
        Ok(processed)
    }

    /// Indexes every queued document of the tenant (including ones a crash interrupted),
    /// calling `progress` after each.
    pub fn process_jobs(
        &self,
        scope: &TenantScope,
        progress: &mut dyn FnMut(&IndexOutcome),
    ) -> Result<Vec<IndexOutcome>, ApplianceError> {
        let _running = lock(&self.indexing);
        let jobs = self.store.claim_jobs(scope)?;
        let mut outcomes = Vec::with_capacity(jobs.len());
        for job in jobs {
            let outcome = self.index_document(scope, &job)?;
            progress(&outcome);
            outcomes.push(outcome);
        }
        if outcomes.iter().any(|outcome| outcome.result.is_ok()) {
            let index = self.tenant_index(scope)?;
            read(&index).persist(&self.store, scope)?;
        }
        Ok(outcomes)
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
            &chunks,
        )?;
        let additions: Vec<(u64, &str, &[f32])> = row_ids
            .iter()
            .zip(&chunks)
            .map(|(row_id, chunk)| (*row_id, chunk.text.as_str(), chunk.embedding.as_slice()))
            .collect();
        index.add(&additions)?;
        Ok(outcome(Ok(chunks.len())))
    }

    // ---- retrieval and answers -----------------------------------------------------------

    pub fn search(
        &self,
        scope: &TenantScope,
        query: &str,
        top_k: usize,
        mode: SearchMode,
    ) -> Result<Vec<SearchResult>, ApplianceError> {
        let query = validate_query(query)?;
        let top_k = top_k.clamp(1, 50);
        let vector = match mode {
            SearchMode::Keyword => None,
            SearchMode::Hybrid | SearchMode::Vector => Some(self.embedder()?.embed_one(query)?),
        };
        let index = self.tenant_index(scope)?;
        let hits = read(&index).search(vector.as_deref(), query, top_k, mode)?;
        let scores: HashMap<u64, f32> = hits.iter().map(|hit| (hit.row_id, hit.score)).collect();
        let row_ids: Vec<u64> = hits.iter().map(|hit| hit.row_id).collect();
        let chunks = self.store.chunks(scope, &row_ids)?;
        let results = chunks
            .into_iter()
            .map(|chunk| SearchResult {
                score: scores.get(&chunk.row_id).copied().unwrap_or(0.0),
                chunk,
            })
            .collect();
        Ok(output::retain_owned(&self.store, scope, results, |r| {
            r.chunk.chunk_id.document_id()
        })?)
    }

    /// Answers from this tenant's documents only. `on_token` receives the answer as it is
    /// generated (return false to stop).
    pub fn ask(
        &self,
        scope: &TenantScope,
        question: &str,
        top_k: Option<usize>,
        on_token: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Answer, ApplianceError> {
        let started = Instant::now();
        let question = validate_query(question)?;
        let top_k = top_k.unwrap_or(self.config.answer_top_k).clamp(1, 8);
        let tenant = self.store.find_tenant(scope.tenant_id())?;
        let mut timings = Timings::default();

        let query_vector = self.embedder()?.embed_one(question)?;
        timings.embed_ms = started.elapsed().as_millis() as u64;

        let retrieve_started = Instant::now();
        let index = self.tenant_index(scope)?;
        let (hits, absent, chunk_count) = {
            let index = read(&index);
            let specific = answer::specific_words(question);
            (
                index.search(
                    Some(&query_vector),
                    question,
                    top_k.max(answer::QUOTE_CANDIDATE_CHUNKS),
                    SearchMode::Hybrid,
                )?,
                index.absent_words(&specific),
                index.chunk_count(),
            )
        };
        let best_similarity = hits
            .iter()
            .filter_map(|hit| hit.similarity)
            .reduce(f32::max);
        timings.retrieve_ms = retrieve_started.elapsed().as_millis() as u64;

        let ungrounded = |reason: Ungrounded, mut timings: Timings| {
            timings.total_ms = started.elapsed().as_millis() as u64;
            Answer {
                text: reason.message(),
                grounded: false,
                citations: Vec::new(),
                timings,
            }
        };
        if let Err(reason) = answer::check_retrieval(best_similarity, &absent, chunk_count > 0) {
            return Ok(ungrounded(reason, timings));
        }
        // The retrieved set. The model is shown the sentences of it that best match the
        // question (grouped by chunk), not whole chunks: a short prompt keeps a small
        // model focused and its prefill fast. A quoted answer is the best of them.
        let row_ids: Vec<u64> = hits.iter().map(|hit| hit.row_id).collect();
        let mut retrieved = self.store.chunks(scope, &row_ids)?;
        // Prompt layer: only excerpts of the scope's tenant reach the model (or a quote).
        if enabled(Layer::Prompt) {
            retrieved.retain(|chunk| &chunk.tenant_id == scope.tenant_id());
        }
        // Output layer, decided before generation so that the stream is checked too: which
        // retrieved chunks storage says are this tenant's.
        let owned = output::owned(
            &self.store,
            scope,
            &retrieved
                .iter()
                .map(|chunk| chunk.chunk_id.document_id())
                .collect::<Vec<_>>(),
        )?;
        if !owned.contains(&true) {
            // Nothing retrieved that this tenant may be shown: no model call.
            return Ok(ungrounded(Ungrounded::NothingRelevant, timings));
        }
        let ranked = self.rank_sentences(question, &retrieved)?;
        let (excerpts, excerpt_chunks) =
            answer::excerpts_from_sentences(&retrieved, &ranked, top_k);
        let excerpts = excerpts.as_slice();
        let citable: Vec<bool> = excerpt_chunks.iter().map(|&chunk| owned[chunk]).collect();
        let messages = answer::build_prompt(&tenant.name, question, excerpts);

        let generator = self.generator()?;
        let generate_started = Instant::now();
        let options = GenerateOptions {
            max_new_tokens: self.config.max_answer_tokens,
            stop_sequences: vec!["\n\n".into(), "Question:".into()],
        };
        // The output check runs sentence by sentence while the model generates: only a
        // sentence the excerpts support is passed on (streamed), so a stream never shows
        // what the final answer withholds.
        let mut checked = SentenceGate::new(excerpts, &citable);
        let mut first_checked_ms = None;
        // The prompt asks for one sentence; once the model has completed one, stop: what a
        // small model adds after its first sentence is mostly embroidery, decoding it is
        // most of the answer's latency, and an unsupported first sentence is answered by a
        // quote instead.
        let generation = generator.generate(&messages, &options, &mut |piece| {
            let passed = checked.push(piece);
            if !passed.is_empty() {
                first_checked_ms.get_or_insert_with(|| started.elapsed().as_millis() as u64);
                if !on_token(&passed) {
                    return false;
                }
            }
            checked.kept.is_empty() && checked.dropped == 0
        })?;
        let last = checked.finish();
        if !last.is_empty() {
            first_checked_ms.get_or_insert_with(|| started.elapsed().as_millis() as u64);
            on_token(&last);
        }
        timings.generate_ms = generate_started.elapsed().as_millis() as u64;
        timings.prompt_tokens = generation.prompt_tokens;
        timings.answer_tokens = generation.generated_tokens;
        if checked.dropped > 0 {
            tracing::debug!(tenant = %scope.tenant_id(), dropped = checked.dropped, "unsupported answer sentences withheld");
        }

        let text = checked.kept.join(" ");
        let (text, cited) = if !text.is_empty() {
            let chosen = answer::choose_citations(&text, excerpts);
            let cited = if enabled(Layer::Output) {
                // Every sentence must be supported by excerpts it cites, all of them the
                // tenant's and retrieved for this request: else the answer is withheld.
                match answer::cite_support(&text, excerpts, &citable, chosen) {
                    Some(cited) => cited,
                    None => return Ok(ungrounded(Ungrounded::Unsupported, timings)),
                }
            } else {
                chosen
            };
            (
                text,
                cited
                    .into_iter()
                    .map(|index| excerpt_chunks[index])
                    .collect(),
            )
        } else if answer::model_declined(&answer::clean_answer(&generation.text)) {
            return Ok(ungrounded(Ungrounded::ModelDeclined, timings));
        } else {
            // Nothing the model said can be traced back: quote the sentence that best
            // answers the question instead, or refuse.
            match ranked
                .iter()
                .find(|sentence| owned[sentence.chunk])
                .filter(|best| best.similarity >= answer::MIN_SIMILARITY)
            {
                Some(best) => {
                    let quote = answer::quoted_answer(&retrieved[best.chunk].filename, &best.text);
                    first_checked_ms.get_or_insert_with(|| started.elapsed().as_millis() as u64);
                    on_token(&quote);
                    (quote, vec![best.chunk])
                }
                None => return Ok(ungrounded(Ungrounded::Unsupported, timings)),
            }
        };
        timings.first_token_ms = first_checked_ms;
        let citations: Vec<ChunkRecord> = cited
            .into_iter()
            .filter(|&index| owned[index])
            .map(|index| retrieved[index].clone())
            .collect();
        // Output layer: no identifier of a withheld chunk leaves in the text.
        let withheld: Vec<(&DocumentId, &str)> = retrieved
            .iter()
            .zip(&owned)
            .filter(|(_, owned)| !**owned)
            .map(|(chunk, _)| (chunk.chunk_id.document_id(), chunk.filename.as_str()))
            .collect();
        let text = output::redact(&text, &withheld);
        timings.total_ms = started.elapsed().as_millis() as u64;
        Ok(Answer {
            text,
            grounded: true,
            citations,
            timings,
        })
    }
}

impl Appliance {
    /// The sentences of the retrieved chunks, best answer first. The names in the
    /// question are left out of the comparison: they match every sentence of their own
    /// contract (the preamble most of all) and say nothing about which one answers.
    fn rank_sentences(
        &self,
        question: &str,
        retrieved: &[ChunkRecord],
    ) -> Result<Vec<answer::RankedSentence>, ApplianceError> {
        let candidates = answer::candidate_sentences(retrieved);
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let embedder = self.embedder()?;
        let generic_question = answer::without_specific_words(question);
        let query_vector = embedder.embed_one(&generic_question)?;
        let texts: Vec<&str> = candidates.iter().map(|(_, s)| s.as_str()).collect();
        let vectors = embedder.embed(&texts)?;
        let mut ranked: Vec<answer::RankedSentence> = candidates
            .into_iter()
            .zip(vectors)
            .map(|((chunk, text), vector)| {
                let similarity = crate::embed::dot(&vector, &query_vector);
                answer::RankedSentence {
                    score: answer::quote_score(similarity, &generic_question, &text),
                    similarity,
                    chunk,
                    text,
                }
            })
            .collect();
        ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
        Ok(ranked)
    }
}

/// Passes on only the sentences of a token stream that the tenant's excerpts support
/// (output layer; with it off in an ablation test build, everything passes).
struct SentenceGate {
    excerpts: Vec<ChunkRecord>,
    checking: bool,
    pending: String,
    kept: Vec<String>,
    dropped: usize,
}

impl SentenceGate {
    fn new(excerpts: &[ChunkRecord], citable: &[bool]) -> SentenceGate {
        SentenceGate {
            excerpts: excerpts
                .iter()
                .zip(citable)
                .filter(|(_, citable)| **citable)
                .map(|(excerpt, _)| excerpt.clone())
                .collect(),
            checking: enabled(Layer::Output),
            pending: String::new(),
            kept: Vec::new(),
            dropped: 0,
        }
    }

    /// Adds generated text; returns the newly completed, supported sentences.
    fn push(&mut self, piece: &str) -> String {
        self.pending.push_str(piece);
        let mut passed = String::new();
        while let Some(end) = answer::sentence_end(&self.pending) {
            let sentence: String = self.pending.drain(..end).collect();
            passed.push_str(&self.check(&sentence));
        }
        passed
    }

    /// Checks what is left when generation ends.
    fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.pending);
        self.check(&answer::clean_answer(&rest))
    }

    fn check(&mut self, sentence: &str) -> String {
        if sentence.trim().is_empty() {
            return String::new();
        }
        let (kept, dropped) = if self.checking {
            answer::supported_sentences(sentence, &self.excerpts)
        } else {
            (sentence.trim().to_owned(), 0)
        };
        self.dropped += dropped;
        if kept.is_empty() {
            return String::new();
        }
        let piece = if self.kept.is_empty() {
            kept.clone()
        } else {
            format!(" {kept}")
        };
        self.kept.push(kept);
        piece
    }
}

/// Queries are plain text of bounded length.
fn validate_query(query: &str) -> Result<&str, ApplianceError> {
    let query = query.trim();
    if query.is_empty() {
        return Err(ApplianceError::InvalidRequest(
            "the question is empty".into(),
        ));
    }
    if query.chars().count() > 2_000 {
        return Err(ApplianceError::InvalidRequest(
            "the question is longer than 2000 characters: shorten it".into(),
        ));
    }
    Ok(query)
}

/// Keeps the last path component and drops control characters: a file name is a label,
/// never a path.
pub fn sanitize_filename(name: &str) -> String {
    let base = Path::new(name)
        .file_name()
        .map(|base| base.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(255).collect();
    if cleaned.trim().is_empty() {
        "unnamed".to_owned()
    } else {
        cleaned
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read(index: &SharedIndex) -> std::sync::RwLockReadGuard<'_, TenantIndex> {
    index
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write(index: &SharedIndex) -> std::sync::RwLockWriteGuard<'_, TenantIndex> {
    index
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
