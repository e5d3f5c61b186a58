//! A tenant's search indexes: vector (HNSW) and keyword (BM25), fused by reciprocal rank.
//!
//! Both indexes are caches of the durable chunks in [`crate::store`]: opening a tenant
//! reconciles them with the store (adding chunks the snapshot lacks, dropping ones that
//! were deleted), so a crash between a commit and a snapshot loses nothing. Snapshots are
//! sealed with the tenant's key by the store; nothing here writes a file itself.

pub mod text;
pub mod vector;

use std::collections::{HashMap, HashSet};

use crate::auth::TenantScope;
use crate::crypto::ObjectKind;
use crate::store::{Store, StoreError};
use text::{TextIndex, TextIndexError};
use vector::VectorIndex;

/// Reciprocal-rank-fusion constant (Cormack et al.): damps the weight of top ranks.
const RRF_K: f32 = 60.0;
/// How many keyword hits a search within some chunks filters.
const KEYWORD_FILTER_CANDIDATES: usize = 2_000;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Text(#[from] TextIndexError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SearchMode {
    #[default]
    Hybrid,
    Vector,
    Keyword,
}

impl SearchMode {
    pub fn parse(text: &str) -> Option<SearchMode> {
        match text {
            "hybrid" => Some(SearchMode::Hybrid),
            "vector" => Some(SearchMode::Vector),
            "keyword" => Some(SearchMode::Keyword),
            _ => None,
        }
    }
}

/// One fused result.
#[derive(Clone, Debug)]
pub struct Hit {
    pub row_id: u64,
    /// The fused (RRF) score used for ranking.
    pub score: f32,
    /// Cosine similarity to the query, when the vector index returned this chunk.
    pub similarity: Option<f32>,
    /// BM25 score, when the keyword index returned this chunk.
    pub keyword_score: Option<f32>,
}

pub struct TenantIndex {
    vector: VectorIndex,
    text: TextIndex,
}

impl TenantIndex {
    /// Loads the tenant's sealed snapshots and reconciles them with the store: chunks the
    /// snapshots lack are added, deleted ones dropped, and changed snapshots rewritten.
    pub fn open(store: &Store, scope: &TenantScope) -> Result<TenantIndex, IndexError> {
        let started = std::time::Instant::now();
        let live: HashSet<u64> = store.chunk_row_ids(scope)?.into_iter().collect();
        let mut changed = false;

        let mut text = match cached_snapshot(store, scope, ObjectKind::TextIndex)? {
            Some(snapshot) => TextIndex::restore(&snapshot).unwrap_or_else(|error| {
                tracing::warn!(tenant = %scope.tenant_id(), %error, "text index snapshot unreadable; rebuilding");
                changed = true;
                TextIndex::new().expect("an empty RAM index can always be created")
            }),
            None => TextIndex::new()?,
        };
        let indexed = text.row_ids()?;
        let mut missing: Vec<u64> = live.difference(&indexed).copied().collect();
        missing.sort_unstable();
        let stale: Vec<u64> = indexed.difference(&live).copied().collect();
        if !missing.is_empty() || !stale.is_empty() {
            let chunks = store.chunks(scope, &missing)?;
            let add: Vec<(u64, &str)> = chunks
                .iter()
                .map(|chunk| (chunk.row_id, chunk.text.as_str()))
                .collect();
            text.apply(&add, &stale)?;
            changed = true;
        }

        let text_ms = started.elapsed().as_millis() as u64;
        let restored = cached_snapshot(store, scope, ObjectKind::VectorIndex)?
            .and_then(|snapshot| VectorIndex::restore(&snapshot));
        let mut vector = match restored {
            Some(vector) => vector,
            None => {
                changed = true;
                VectorIndex::new(live.len())
            }
        };
        let stale: Vec<u64> = vector.live_ids().difference(&live).copied().collect();
        vector.remove(&stale);
        if vector.len() < live.len() {
            let vectors = store.chunk_vectors(scope)?;
            let items: Vec<(u64, &[f32])> = vectors
                .iter()
                .filter(|item| !vector.live_ids().contains(&item.row_id))
                .map(|item| (item.row_id, item.embedding.as_slice()))
                .collect();
            vector.insert(&items);
            changed = true;
        }
        changed |= !stale.is_empty();

        let index = TenantIndex { vector, text };
        if changed {
            index.persist(store, scope)?;
        }
        tracing::debug!(
            tenant = %scope.tenant_id(),
            text_ms,
            vector_ms = started.elapsed().as_millis() as u64 - text_ms,
            chunks = live.len(),
            changed,
            "tenant index loaded"
        );
        Ok(index)
    }

    /// (count, largest row id) of the chunks indexed: compare with
    /// [`Store::chunk_signature`] to see whether another writer changed the tenant.
    pub fn signature(&self) -> (usize, u64) {
        let ids = self.vector.live_ids();
        (ids.len(), ids.iter().copied().max().unwrap_or(0))
    }

    /// Approximate resident bytes of both indexes (the open-tenant budget counts these).
    pub fn approximate_bytes(&self) -> u64 {
        self.vector.approximate_bytes() + self.text.approximate_bytes()
    }

    pub fn chunk_count(&self) -> usize {
        self.vector.len()
    }

    /// Adds committed chunks (row id, text, vector). Call [`TenantIndex::persist`] after a
    /// batch: until then a crash only costs a reconcile on the next open.
    pub fn add(&mut self, chunks: &[(u64, &str, &[f32])]) -> Result<(), IndexError> {
        let vectors: Vec<(u64, &[f32])> = chunks.iter().map(|(id, _, v)| (*id, *v)).collect();
        self.vector.insert(&vectors);
        let texts: Vec<(u64, &str)> = chunks.iter().map(|(id, t, _)| (*id, *t)).collect();
        self.text.apply(&texts, &[])?;
        Ok(())
    }

    /// Drops deleted chunks from both indexes at once (tombstones in the graph).
    pub fn remove(&mut self, row_ids: &[u64]) -> Result<(), IndexError> {
        self.vector.remove(row_ids);
        self.text.apply(&[], row_ids)?;
        Ok(())
    }

    /// Rebuilds the vector graph without its tombstones once they pass a fifth of it
    /// (searches filter tombstones, so they cost time and memory, not correctness).
    pub fn compact_if_needed(
        &mut self,
        store: &Store,
        scope: &TenantScope,
    ) -> Result<bool, IndexError> {
        let tombstones = self.vector.tombstones();
        if tombstones < 64 || tombstones * 5 < self.vector.len() + tombstones {
            return Ok(false);
        }
        let vectors = store.chunk_vectors(scope)?;
        let mut rebuilt = VectorIndex::new(vectors.len());
        let items: Vec<(u64, &[f32])> = vectors
            .iter()
            .map(|item| (item.row_id, item.embedding.as_slice()))
            .collect();
        rebuilt.insert(&items);
        self.vector = rebuilt;
        Ok(true)
    }

    /// Writes both snapshots, sealed, replacing the old files atomically.
    pub fn persist(&self, store: &Store, scope: &TenantScope) -> Result<(), IndexError> {
        store.write_index_file(scope, ObjectKind::TextIndex, &self.text.snapshot()?)?;
        if let Some(snapshot) = self.vector.snapshot() {
            store.write_index_file(scope, ObjectKind::VectorIndex, &snapshot)?;
        }
        Ok(())
    }

    /// Words of the question that no chunk of this tenant contains.
    pub fn absent_words(&self, words: &[&str]) -> Vec<String> {
        self.text.absent_words(words)
    }

    /// Hybrid search: each index proposes candidates, fused by reciprocal rank.
    pub fn search(
        &self,
        query_vector: Option<&[f32]>,
        query_text: &str,
        k: usize,
        mode: SearchMode,
    ) -> Result<Vec<Hit>, IndexError> {
        self.search_within(query_vector, query_text, k, mode, None)
    }

    /// Like [`TenantIndex::search`], among the chunks `within` only (one contract's, when
    /// a question names it). The keyword side filters a longer list: tantivy has no
    /// cheap filter by row id here, and one contract's chunks are a small part of most
    /// tenants' indexes.
    pub fn search_within(
        &self,
        query_vector: Option<&[f32]>,
        query_text: &str,
        k: usize,
        mode: SearchMode,
        within: Option<&HashSet<u64>>,
    ) -> Result<Vec<Hit>, IndexError> {
        let candidates = (k * 4).max(20);
        let vector_hits = match (mode, query_vector) {
            (SearchMode::Hybrid | SearchMode::Vector, Some(query)) => {
                self.vector.search_within(query, candidates, within)
            }
            _ => Vec::new(),
        };
        let keyword_hits = match mode {
            SearchMode::Hybrid | SearchMode::Keyword => match within {
                None => self.text.search(query_text, candidates)?,
                Some(within) => self
                    .text
                    .search(query_text, KEYWORD_FILTER_CANDIDATES.max(candidates))?
                    .into_iter()
                    .filter(|(row_id, _)| within.contains(row_id))
                    .take(candidates)
                    .collect(),
            },
            SearchMode::Vector => Vec::new(),
        };
        let mut fused: HashMap<u64, Hit> = HashMap::new();
        // Each list contributes at most once per chunk (its best rank).
        for (rank, (row_id, similarity)) in vector_hits.into_iter().enumerate() {
            let hit = fused.entry(row_id).or_insert_with(|| Hit::empty(row_id));
            if hit.similarity.is_none() {
                hit.score += 1.0 / (RRF_K + rank as f32 + 1.0);
                hit.similarity = Some(similarity);
            }
        }
        for (rank, (row_id, score)) in keyword_hits.into_iter().enumerate() {
            let hit = fused.entry(row_id).or_insert_with(|| Hit::empty(row_id));
            if hit.keyword_score.is_none() {
                hit.score += 1.0 / (RRF_K + rank as f32 + 1.0);
                hit.keyword_score = Some(score);
            }
        }
        let mut hits: Vec<Hit> = fused.into_values().collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row_id.cmp(&b.row_id)));
        hits.truncate(k);
        Ok(hits)
    }
}

/// A sealed snapshot, or `None` when there is none or it fails its integrity check (a file
/// swapped from another tenant, tampered with): the store has audited that, and the index
/// is rebuilt from durable state instead of trusting the file.
fn cached_snapshot(
    store: &Store,
    scope: &TenantScope,
    kind: ObjectKind,
) -> Result<Option<Vec<u8>>, IndexError> {
    match store.read_index_file(scope, kind) {
        Ok(snapshot) => Ok(snapshot),
        Err(StoreError::Crypto(_) | StoreError::NotThisTenant { .. }) => {
            tracing::warn!(tenant = %scope.tenant_id(), kind = kind.label(), "index snapshot rejected; rebuilding");
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

impl Hit {
    fn empty(row_id: u64) -> Hit {
        Hit {
            row_id,
            score: 0.0,
            similarity: None,
            keyword_score: None,
        }
    }
}
