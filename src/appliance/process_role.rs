//! Which tenants this process may open (issue 12): the main server never opens an
//! enterprise tenant's indexes (each has a process of its own), and an enterprise
//! tenant's process opens that tenant only. Checked before any key or index is touched,
//! so a request that reached the wrong process fails closed.

use super::*;
use crate::config::ProcessRole;
use crate::crypto::CustomerIdentity;

impl Appliance {
    /// Refuses a tenant this process must not open (see [`ProcessRole`]).
    pub(super) fn check_process_role(&self, tenant_id: &TenantId) -> Result<(), ApplianceError> {
        match &self.config.process_role {
            ProcessRole::InProcess => Ok(()),
            ProcessRole::Tenant(own) if own == tenant_id => Ok(()),
            ProcessRole::Tenant(_) => Err(ApplianceError::ServedElsewhere(
                "this process serves one enterprise tenant only".into(),
            )),
            ProcessRole::Supervisor => {
                // A locked BYOK tenant has no process: the key check here refuses it (423).
                if self.store.find_tenant(tenant_id)?.tier == Tier::Enterprise
                    && !self.store.tenant_locked(tenant_id)?
                {
                    Err(ApplianceError::ServedElsewhere(format!(
                        "tenant {tenant_id} is served by its own process"
                    )))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Whether the background indexer of this process indexes the tenant's queued
    /// documents.
    pub(super) fn served_here(&self, tenant_id: &TenantId) -> Result<bool, ApplianceError> {
        match self.check_process_role(tenant_id) {
            Ok(()) => Ok(true),
            Err(ApplianceError::ServedElsewhere(_)) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Drops the tenant's open index, cached data key and customer identity from this
    /// process's memory, without an audit entry: the main server hands an enterprise
    /// tenant over to its own process this way (its data stays readable there).
    pub fn release_tenant(&self, tenant_id: &TenantId) {
        lock(&self.open_tenants).remove(tenant_id);
        self.store.lock_tenant(tenant_id);
    }

    /// Installs a BYOK tenant's customer identity in this process (an enterprise tenant's
    /// process, given it by the main server, which checked and audited the unlock).
    pub fn adopt_customer_key(
        &self,
        tenant_id: &TenantId,
        identity: &str,
    ) -> Result<(), ApplianceError> {
        self.check_process_role(tenant_id)?;
        let identity = CustomerIdentity::parse(identity).ok_or_else(|| {
            ApplianceError::InvalidRequest("the customer identity is not an age identity".into())
        })?;
        Ok(self.store.unlock_tenant(tenant_id, identity)?)
    }
}
