//! Tenants: creation, listing, deletion with its certificate, and operator scopes.

use super::*;

impl Appliance {
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
        self.audit(&crate::audit::AuditEvent {
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
            .map_err(|error| ApplianceError::Signing(error.to_string()))?;
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
}
