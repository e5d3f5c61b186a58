//! Authentication and the tenant pass.
//!
//! [`TenantScope`] is the only way to reach a tenant's data: every store, index and
//! inference call takes one. Its field is private, so only this module can mint it —
//! today from the local operator's command line (who holds the master key), later from a
//! verified JWT at the HTTP gateway. The tenant is fixed here, at the earliest point, and
//! is never derived from content further down.

use crate::ids::TenantId;

/// Proof that the caller may act on one tenant's data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantScope {
    tenant_id: TenantId,
}

impl TenantScope {
    pub fn tenant_id(&self) -> &TenantId {
        &self.tenant_id
    }
}

/// Why an operator on this machine acts on a tenant's data without a user token.
/// Spelling the reason out keeps maintenance access visible in code review and in logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperatorReason {
    /// `bulkhead ingest` / `ask` run by the appliance operator holding the master key.
    CommandLine,
    /// Background indexing of a document the tenant uploaded.
    IndexingJob,
    /// The bundled demo on sample data.
    Demo,
}

/// A scope for the local operator (holder of the master key and the data directory).
///
/// The caller must already have checked that the tenant exists; `reason` is logged.
pub fn operator_scope(tenant_id: TenantId, reason: OperatorReason) -> TenantScope {
    tracing::debug!(tenant = %tenant_id, ?reason, "operator tenant scope");
    TenantScope { tenant_id }
}
