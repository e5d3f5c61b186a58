//! The open tenants (issue 12): which tenants' indexes are held in memory, what they
//! weigh, and which go when memory is short.
//!
//! Each open tenant accounts its approximate resident bytes (the HNSW vectors and graph,
//! the keyword index, its cached catalogues; see [`TenantIndex::approximate_bytes`]). When
//! the open tenants weigh more than `Config::open_index_budget_bytes`, the least recently
//! used are evicted until they fit; a tenant idle longer than `Config::open_index_idle`
//! is evicted too. Never evicted: an index in use right now (someone holds its `Arc`),
//! and a premium tenant's (`Tier::Premium`: pinned, read from its record when it opens).
//! An evicted tenant reopens from its sealed files on next use.

use super::*;

/// What an open tenant's cache entry costs besides its indexes: the entry, its cached
/// data key, the tantivy reader's structures. Measured with `cargo bench --bench tenants`.
const ENTRY_OVERHEAD_BYTES: u64 = 64 * 1024;

/// Why a tenant's index left memory (the metric's label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvictionReason {
    /// The open tenants weighed more than the budget.
    Budget,
    /// Unused for longer than the idle time.
    Idle,
}

/// The open tenants at a glance, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenTenantStats {
    pub open_tenants: usize,
    /// Of which pinned (premium).
    pub pinned_tenants: usize,
    pub open_bytes: u64,
    pub budget_bytes: u64,
    pub evicted_for_budget: u64,
    pub evicted_idle: u64,
}

/// Eviction counters since the appliance opened.
#[derive(Default)]
pub(super) struct Evictions {
    budget: std::sync::atomic::AtomicU64,
    idle: std::sync::atomic::AtomicU64,
}

impl Evictions {
    fn count(&self, reason: EvictionReason) {
        let counter = match reason {
            EvictionReason::Budget => &self.budget,
            EvictionReason::Idle => &self.idle,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl OpenTenant {
    /// The entry's approximate resident bytes: its indexes (as of the last time they were
    /// not being written), its catalogues and the entry itself.
    pub(super) fn bytes(&mut self) -> u64 {
        if let Ok(index) = self.index.try_read() {
            self.index_bytes = index.approximate_bytes();
        }
        let catalogues = self
            .catalogues
            .as_ref()
            .map_or(0, |cached| catalogue_bytes(&cached.by_document));
        self.index_bytes + catalogues + ENTRY_OVERHEAD_BYTES
    }

    /// Whether nobody but the cache holds the index.
    fn idle_now(&self) -> bool {
        Arc::strong_count(&self.index) == 1
    }
}

/// Approximate bytes of decoded catalogues: the structures and their strings.
fn catalogue_bytes(by_document: &HashMap<DocumentId, Catalogue>) -> u64 {
    by_document
        .values()
        .map(|catalogue| {
            let strings = catalogue.summary.len()
                + catalogue
                    .title
                    .as_ref()
                    .map_or(0, |title| title.value.len())
                + catalogue.parties.len() * 128;
            (std::mem::size_of::<(DocumentId, Catalogue)>() + 2 * strings) as u64
        })
        .sum()
}

impl Appliance {
    /// Evicts the least recently used tenants that may go (unpinned, not in use) until the
    /// open tenants fit the byte budget.
    pub(super) fn evict_beyond_budget(&self, open: &mut HashMap<TenantId, OpenTenant>) {
        let budget = self.config.open_index_budget_bytes;
        let mut total: u64 = open.values_mut().map(OpenTenant::bytes).sum();
        while total > budget {
            let victim = open
                .iter()
                .filter(|(_, tenant)| !tenant.pinned && tenant.idle_now())
                .min_by_key(|(_, tenant)| tenant.last_used)
                .map(|(tenant_id, _)| tenant_id.clone());
            let Some(tenant_id) = victim else {
                break;
            };
            if let Some(mut tenant) = open.remove(&tenant_id) {
                total = total.saturating_sub(tenant.bytes());
            }
            self.evictions.count(EvictionReason::Budget);
            tracing::debug!(tenant = %tenant_id, total, budget, "tenant index evicted: over the byte budget");
        }
    }

    /// Evicts the tenants unused for longer than the idle time (never a pinned one or one
    /// in use), then any still over the budget (one that was in use when it went over);
    /// returns how many went. The server calls this every few seconds.
    pub fn evict_idle_tenants(&self) -> usize {
        let idle = self.config.open_index_idle;
        let mut open = lock(&self.open_tenants);
        let victims: Vec<TenantId> = open
            .iter()
            .filter(|(_, tenant)| {
                !tenant.pinned && tenant.idle_now() && tenant.last_used.elapsed() >= idle
            })
            .map(|(tenant_id, _)| tenant_id.clone())
            .collect();
        for tenant_id in &victims {
            open.remove(tenant_id);
            self.evictions.count(EvictionReason::Idle);
            tracing::debug!(tenant = %tenant_id, "tenant index evicted: idle");
        }
        let before = open.len();
        self.evict_beyond_budget(&mut open);
        victims.len() + (before - open.len())
    }

    /// Pins (premium) or unpins an open tenant's index after its tier changed; a tenant
    /// not open reads its tier when it opens.
    pub fn set_tenant_pinned(&self, tenant_id: &TenantId, tier: Tier) {
        let mut open = lock(&self.open_tenants);
        if let Some(tenant) = open.get_mut(tenant_id) {
            tenant.pinned = tier == Tier::Premium;
        }
        self.evict_beyond_budget(&mut open);
    }

    /// The open tenants, their bytes, the budget and the evictions so far.
    pub fn open_tenant_stats(&self) -> OpenTenantStats {
        let mut open = lock(&self.open_tenants);
        OpenTenantStats {
            open_tenants: open.len(),
            pinned_tenants: open.values().filter(|tenant| tenant.pinned).count(),
            open_bytes: open.values_mut().map(OpenTenant::bytes).sum(),
            budget_bytes: self.config.open_index_budget_bytes,
            evicted_for_budget: self
                .evictions
                .budget
                .load(std::sync::atomic::Ordering::Relaxed),
            evicted_idle: self
                .evictions
                .idle
                .load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Whether the tenant's index is in memory now.
    pub fn is_tenant_open(&self, tenant_id: &TenantId) -> bool {
        lock(&self.open_tenants).contains_key(tenant_id)
    }
}
