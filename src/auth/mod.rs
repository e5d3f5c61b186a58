//! Authentication and the tenant pass.
//!
//! [`TenantScope`] is the only way to reach a tenant's data: every store, index and
//! inference call takes one. Its field is private, so only this module can mint it: from
//! a verified token whose tenant matches the request's ([`scope_for`]), or for the local
//! operator holding the master key ([`operator_scope`], with an explicit reason). The
//! tenant is fixed here, at the earliest point, and never derived from content further
//! down.

pub mod tokens;

use crate::ids::TenantId;
use tokens::{Principal, Role};

/// Proof that the caller may act on one tenant's data.
///
/// Code outside this module cannot mint one — neither with a struct literal:
///
/// ```compile_fail,E0451
/// use bulkhead::{auth::TenantScope, ids::TenantId};
/// let scope = TenantScope { tenant_id: TenantId::generate() };
/// ```
///
/// nor by any other constructor than the two in this module, which need a verified token
/// or an explicit operator reason:
///
/// ```
/// use bulkhead::auth::{operator_scope, OperatorReason};
/// use bulkhead::ids::TenantId;
/// let scope = operator_scope(TenantId::generate(), OperatorReason::CommandLine);
/// assert!(scope.tenant_id().as_str().starts_with("t_"));
/// ```
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
    /// Writing an audit entry (pseudonymising a user with the tenant's key).
    Audit,
    /// Deleting a tenant (counting what is removed, for the certificate).
    Deletion,
    /// Issuing a new tenant's first-admin invitation.
    Invitation,
    /// Enrolling a tenant's customer-held key (re-wrapping its data key, issue 12).
    CustomerKey,
}

impl OperatorReason {
    /// The reason as the audit log spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            OperatorReason::CommandLine => "command-line",
            OperatorReason::IndexingJob => "indexing-job",
            OperatorReason::Demo => "demo",
            OperatorReason::Audit => "audit",
            OperatorReason::Deletion => "deletion",
            OperatorReason::Invitation => "invitation",
            OperatorReason::CustomerKey => "customer-key",
        }
    }
}

/// A scope for the local operator (holder of the master key and the data directory).
///
/// The caller must already have checked that the tenant exists; `reason` is logged.
pub fn operator_scope(tenant_id: TenantId, reason: OperatorReason) -> TenantScope {
    tracing::debug!(tenant = %tenant_id, ?reason, "operator tenant scope");
    TenantScope { tenant_id }
}

/// Why a verified caller may not act on the tenant its request names.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// The request names a tenant that is not the caller's (the same answer whether or not
    /// that tenant or object exists).
    #[error("this token does not belong to the tenant in the request")]
    TenantMismatch,
    /// The caller's tenant, but not a role that allows this action.
    #[error("this token's roles do not allow this action")]
    Forbidden,
}

/// Mints the scope for a request naming `requested_tenant` (as written in the path, not yet
/// parsed: a malformed id is simply not the caller's). Tenant first, then role, so that a
/// foreign path is always `TenantMismatch`, whatever the caller's roles.
pub fn scope_for(
    principal: &Principal,
    requested_tenant: &str,
    allowed_roles: &[Role],
) -> Result<TenantScope, AccessError> {
    let Some(own_tenant) = &principal.tenant_id else {
        // Platform admins read no tenant content.
        return Err(AccessError::Forbidden);
    };
    if !crate::isolation::enabled(crate::isolation::Layer::Scope) {
        // Ablation test builds only: the scope is whatever the request names.
        let tenant_id =
            TenantId::try_from(requested_tenant).map_err(|_| AccessError::TenantMismatch)?;
        if !principal.has_any(allowed_roles) {
            return Err(AccessError::Forbidden);
        }
        return Ok(TenantScope { tenant_id });
    }
    if own_tenant.as_str() != requested_tenant {
        return Err(AccessError::TenantMismatch);
    }
    if !principal.has_any(allowed_roles) {
        return Err(AccessError::Forbidden);
    }
    Ok(TenantScope {
        tenant_id: own_tenant.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(tenant: Option<TenantId>, roles: &[Role]) -> Principal {
        Principal {
            subject: "u".into(),
            tenant_id: tenant,
            roles: roles.to_vec(),
            token_id: "j".into(),
            issued_at: 0,
            expires_at: u64::MAX,
        }
    }

    #[test]
    fn foreign_tenant_is_a_mismatch_before_roles_are_looked_at() {
        let a = TenantId::generate();
        let b = TenantId::generate();
        let reader = principal(Some(a.clone()), &[Role::Reader]);
        assert_eq!(
            scope_for(&reader, a.as_str(), &[Role::Reader])
                .unwrap()
                .tenant_id(),
            &a
        );
        assert_eq!(
            scope_for(&reader, b.as_str(), &[Role::Reader]),
            Err(AccessError::TenantMismatch)
        );
        assert_eq!(
            scope_for(&reader, b.as_str(), &[Role::Admin]),
            Err(AccessError::TenantMismatch)
        );
        assert_eq!(
            scope_for(&reader, "../x", &[Role::Reader]),
            Err(AccessError::TenantMismatch)
        );
        assert_eq!(
            scope_for(&reader, a.as_str(), &[Role::Editor]),
            Err(AccessError::Forbidden)
        );
        let platform = principal(None, &[Role::PlatformAdmin]);
        assert_eq!(
            scope_for(&platform, a.as_str(), &[Role::Reader]),
            Err(AccessError::Forbidden)
        );
    }
}
