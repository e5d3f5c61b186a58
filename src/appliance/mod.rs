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
use crate::catalogue::Catalogue;
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

mod ask;
mod audit;
mod customer_key;
mod documents;
mod indexing;
mod open_tenants;
mod presence;
mod private_model;
mod process_role;
mod retrieval;
mod tenants;
mod typed;

pub use open_tenants::{EvictionReason, OpenTenantStats};
pub use private_model::check_model_file;

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
    /// The appliance's signing key could not be loaded or used.
    #[error("signing failed: {0}")]
    Signing(String),
    /// Too many wrong customer keys for this tenant (issue 12): unlocking is refused for a
    /// while, whatever key is given.
    #[error(
        "too many wrong customer keys for this tenant: unlocking is refused for {retry_after_seconds} s"
    )]
    UnlockRefused { retry_after_seconds: u64 },
    /// The tenant is served by another process (issue 12: an enterprise tenant's own).
    #[error("{0}")]
    ServedElsewhere(String),
    /// The tenant's own model (issue 12) is missing or is not the pinned file.
    #[error("{0}")]
    PrivateModel(String),
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
    /// When retrieval ended (the context retrieved and checked; the sentences not yet
    /// ranked), from the ask's start: `first_token_ms` minus this is the wait after
    /// retrieval. Not on the wire.
    pub retrieved_ms: Option<u64>,
    pub generate_ms: u64,
    /// Running the prompt through the model (0 when the model was not called).
    pub prefill_ms: u64,
    /// Sampling the answer's tokens after the prefill.
    pub decode_ms: u64,
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

/// A tenant's decoded catalogues by document, and the documents they were read for (in
/// id order): the cache is current while the store lists the same documents.
struct TenantCatalogues {
    documents: Vec<DocumentId>,
    by_document: Arc<HashMap<DocumentId, Catalogue>>,
}

struct OpenTenant {
    index: SharedIndex,
    /// The tenant's catalogues, decoded (tenant content: it lives and dies with this
    /// tenant's entry, never shared), read on first use after the entry opened.
    catalogues: Option<TenantCatalogues>,
    last_used: Instant,
    /// The store's `data_version` when the index was last known to match it.
    checked_version: i64,
    /// The index's approximate resident bytes when last measured (see `open_tenants`).
    index_bytes: u64,
    /// A premium tenant's index: never evicted.
    pinned: bool,
}

pub struct Appliance {
    config: Config,
    store: Store,
    // std mutexes: held only to fetch or insert an Arc, never during inference or I/O.
    embedder: Mutex<Option<Arc<Embedder>>>,
    chunker: Mutex<Option<Arc<Chunker>>>,
    generator: Mutex<Option<Arc<Generator>>>,
    // The last tenant's own model (issue 12), with the pin it was checked against.
    private_generator: Mutex<Option<(crate::store::PrivateModel, Arc<Generator>)>>,
    open_tenants: Mutex<HashMap<TenantId, OpenTenant>>,
    evictions: open_tenants::Evictions,
    // One indexing run at a time (std mutex, held on a blocking thread for the run): the
    // background indexer and an upload waiting for its document must not claim the same
    // jobs twice. Indexing is CPU-bound, so running them one after another costs nothing.
    indexing: Mutex<()>,
    // Wrong customer keys per tenant (std mutex: a map update, never held across work).
    unlock_failures: Mutex<HashMap<TenantId, customer_key::UnlockFailures>>,
}

impl Appliance {
    /// Opens an initialised data directory. Start-up does no per-tenant work (issue 12):
    /// no key unwrapped, no tenant directory read, no index opened; each tenant's happen on
    /// its first use.
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
            private_generator: Mutex::new(None),
            open_tenants: Mutex::new(HashMap::new()),
            evictions: open_tenants::Evictions::default(),
            indexing: Mutex::new(()),
            unlock_failures: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
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

    /// Whether the embedding model and the appliance's language model are in memory (a
    /// model still loading is not): never waits for a load.
    pub fn models_loaded(&self) -> (bool, bool) {
        let loaded = |slot: Option<bool>| slot.unwrap_or(false);
        (
            loaded(self.embedder.try_lock().ok().map(|slot| slot.is_some())),
            loaded(self.generator.try_lock().ok().map(|slot| slot.is_some())),
        )
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
    /// The tenant's open index, opening (decrypt + load + reconcile) it on first use, and
    /// again when another process (`bulkhead ingest` beside a running server) changed the
    /// tenant's chunks since.
    fn tenant_index(&self, scope: &TenantScope) -> Result<SharedIndex, ApplianceError> {
        // A locked BYOK tenant's index is never served, even one a request that raced the
        // lock put back in the map (issue 12): the key check refuses it first. Before it,
        // the process role: an enterprise tenant's data opens in its own process only.
        self.check_process_role(scope.tenant_id())?;
        self.store.data_key(scope)?;
        let version = self.store.data_version()?;
        let cached = {
            let mut open = lock(&self.open_tenants);
            open.get_mut(scope.tenant_id()).map(|tenant| {
                tenant.last_used = Instant::now();
                (tenant.index.clone(), tenant.checked_version)
            })
        };
        if let Some((index, checked)) = cached {
            // Deleted by another process (`bulkhead tenant delete` beside a server): its
            // index and key go now (the key check drops the cached key).
            if checked != version
                && let Err(error) = self.store.data_key(scope)
            {
                lock(&self.open_tenants).remove(scope.tenant_id());
                return Err(error.into());
            }
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
        // Leftovers of writes a crash interrupted (ciphertext): housekeeping, not fatal.
        if let Err(error) = self
            .store
            .remove_stale_tenant_temporaries(scope.tenant_id())
        {
            tracing::warn!(tenant = %scope.tenant_id(), %error, "could not remove stale temporary files");
        }
        let pinned = self.store.find_tenant(scope.tenant_id())?.tier == Tier::Premium;
        let opened = TenantIndex::open(&self.store, scope)?;
        let index_bytes = opened.approximate_bytes();
        let index = Arc::new(RwLock::new(opened));
        tracing::info!(
            tenant = %scope.tenant_id(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            index_bytes,
            pinned,
            "tenant index opened"
        );
        let mut open = lock(&self.open_tenants);
        let entry = open
            .entry(scope.tenant_id().clone())
            .or_insert_with(|| OpenTenant {
                index,
                catalogues: None,
                last_used: Instant::now(),
                checked_version: version,
                index_bytes,
                pinned,
            });
        let index = entry.index.clone();
        self.evict_beyond_budget(&mut open);
        Ok(index)
    }

    /// Drops the open indexes and cached data keys of tenants that no longer exist
    /// (deleted by another process); returns which were dropped. The server calls this
    /// every few seconds (issue 11, finding 9).
    pub fn forget_deleted_tenants(&self) -> Result<Vec<TenantId>, ApplianceError> {
        self.store.forget_deleted_keys()?;
        let live = self.store.live_tenants()?;
        let mut open = lock(&self.open_tenants);
        let gone: Vec<TenantId> = open
            .keys()
            .filter(|tenant_id| !live.contains(*tenant_id))
            .cloned()
            .collect();
        for tenant_id in &gone {
            open.remove(tenant_id);
            tracing::info!(tenant = %tenant_id, "deleted tenant's index and key dropped");
        }
        Ok(gone)
    }

    /// Drops a tenant's open index from memory (it reopens from its files on next use).
    pub fn evict(&self, scope: &TenantScope) {
        lock(&self.open_tenants).remove(scope.tenant_id());
    }

    pub fn open_tenant_count(&self) -> usize {
        lock(&self.open_tenants).len()
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
