//! Tenants: creation, listing, deletion with its certificate, and operator scopes.

use super::*;

/// What a BYOK tenant's deletion certificate says about the key its customer holds.
pub const CUSTOMER_KEY_STATEMENT: &str = "this tenant's data key was also wrapped to a key only the customer holds: the customer destroying that key makes every copy of the tenant's data, backups included, unreadable, and no operator holding the master key can undo it";

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

    /// Creates a tenant and its one first-admin invitation (single use, 24 hours), recorded
    /// in the tenant's own audit log. `actor` is the pseudonym of who asked.
    pub fn create_tenant_with_invitation(
        &self,
        name: &str,
        tier: Tier,
        actor: &str,
    ) -> Result<(TenantRecord, crate::store::Invitation), ApplianceError> {
        let tenant = self.create_tenant(name, tier)?;
        let scope = auth::operator_scope(tenant.tenant_id.clone(), OperatorReason::Invitation);
        let invitation = self.store.issue_invitation(&scope)?;
        self.audit(&crate::audit::AuditEvent {
            tenant_id: Some(tenant.tenant_id.to_string()),
            actor: actor.to_owned(),
            action: "invitation.issue",
            resource: format!(
                "first-admin invitation, expires {}",
                crate::time::rfc3339(invitation.expires_at)
            ),
            outcome: crate::audit::Outcome::Ok,
        })?;
        Ok((tenant, invitation))
    }

    /// Uses up a first-admin invitation for `user`: the tenant it admits them to, or
    /// `None` (nothing changes) when it is unknown, used or expired. Audited in the
    /// tenant's log.
    pub fn accept_invitation(
        &self,
        secret: &str,
        user: &str,
    ) -> Result<Option<TenantId>, ApplianceError> {
        let Some(tenant_id) = self.store.use_invitation(secret)? else {
            return Ok(None);
        };
        if self.store.find_tenant(&tenant_id).is_err() {
            return Ok(None);
        }
        self.audit(&crate::audit::AuditEvent {
            tenant_id: Some(tenant_id.to_string()),
            actor: self.pseudonym(Some(&tenant_id), user),
            action: "invitation.accept",
            resource: "first-admin invitation".into(),
            outcome: crate::audit::Outcome::Ok,
        })?;
        Ok(Some(tenant_id))
    }

    /// Records a token just issued for the scope's tenant to `user` with `roles`, so that
    /// the tenant's admins can list and revoke it (never the token itself).
    pub fn record_issued_token(
        &self,
        scope: &TenantScope,
        user: &str,
        roles: &[auth::tokens::Role],
        minted: &auth::tokens::MintedToken,
    ) -> Result<(), ApplianceError> {
        let token = crate::store::IssuedToken {
            jti: minted.jti.clone(),
            user: Some(user.to_owned()),
            roles: roles.iter().map(|role| role.as_str().to_owned()).collect(),
            issued_at: crate::time::now(),
            expires_at: minted.expires_at as i64,
            revoked: false,
        };
        let pseudonym = self.pseudonym(Some(scope.tenant_id()), user);
        Ok(self.store.record_issued_token(scope, &token, &pseudonym)?)
    }

    /// The tenant's tokens that have not expired, newest first, marked when revoked.
    pub fn issued_tokens(
        &self,
        scope: &TenantScope,
    ) -> Result<Vec<crate::store::IssuedToken>, ApplianceError> {
        Ok(self.store.issued_tokens(scope)?)
    }

    /// Revokes the token `jti` of the scope's tenant, audited in its log.
    pub fn revoke_token(
        &self,
        scope: &TenantScope,
        jti: &str,
        actor: &str,
    ) -> Result<(), ApplianceError> {
        if jti.is_empty() || jti.len() > 200 || jti.chars().any(char::is_control) {
            return Err(ApplianceError::InvalidRequest(
                "a token id is 1 to 200 printable characters".into(),
            ));
        }
        self.store.revoke_token(scope, jti)?;
        self.audit(&crate::audit::AuditEvent {
            tenant_id: Some(scope.tenant_id().to_string()),
            actor: actor.to_owned(),
            action: "token.revoke",
            resource: format!("token {jti}"),
            outcome: crate::audit::Outcome::Ok,
        })?;
        Ok(())
    }

    /// Revokes every token of `user` of the scope's tenant issued up to now, audited.
    pub fn revoke_user_tokens(
        &self,
        scope: &TenantScope,
        user: &str,
        actor: &str,
    ) -> Result<(), ApplianceError> {
        let pseudonym = self.pseudonym(Some(scope.tenant_id()), user);
        self.store.revoke_user_tokens(scope, &pseudonym)?;
        self.audit(&crate::audit::AuditEvent {
            tenant_id: Some(scope.tenant_id().to_string()),
            actor: actor.to_owned(),
            action: "token.revoke",
            resource: format!("every token of user {pseudonym}"),
            outcome: crate::audit::Outcome::Ok,
        })?;
        Ok(())
    }

    /// Whether a verified token has been revoked (by its id, or all of its user's). Tokens
    /// without a tenant (platform admins) are revoked by rotating the signing key. A
    /// store error counts as revoked: fail closed.
    pub fn token_revoked(&self, principal: &crate::auth::tokens::Principal) -> bool {
        let Some(tenant_id) = &principal.tenant_id else {
            return false;
        };
        let user = self.pseudonym(Some(tenant_id), &principal.subject);
        self.store
            .token_revoked(tenant_id, &principal.token_id, &user, principal.issued_at)
            .unwrap_or_else(|error| {
                tracing::error!(%error, "revocation check failed: refusing the token");
                true
            })
    }

    /// Moves a tenant to another tier, online (issue 12): one row changes, so uploads and
    /// indexing in flight go on; the next request is scheduled under the new tier.
    /// Audited in the tenant's own log and the platform's. `actor` is who asked.
    pub fn change_tier(
        &self,
        tenant_id: &TenantId,
        tier: Tier,
        actor: &str,
    ) -> Result<TenantRecord, ApplianceError> {
        let previous = self.store.find_tenant(tenant_id)?.tier;
        // A customer-held key is what the enterprise tier promises its customer: it is not
        // dropped by a tier change (only the customer's deletion ends it).
        if tier != Tier::Enterprise && self.store.customer_recipient(tenant_id)?.is_some() {
            return Err(ApplianceError::Conflict(format!(
                "tenant {tenant_id} holds its customer's key: it stays enterprise"
            )));
        }
        self.store.set_tier(tenant_id, tier)?;
        // Premium indexes stay in memory; a tenant leaving premium may be evicted again.
        self.set_tenant_pinned(tenant_id, tier);
        let change = format!("tier {} -> {}", previous.as_str(), tier.as_str());
        for log in [Some(tenant_id.to_string()), None] {
            let resource = match &log {
                Some(_) => change.clone(),
                None => format!("{tenant_id} {change}"),
            };
            self.audit(&crate::audit::AuditEvent {
                tenant_id: log,
                actor: actor.to_owned(),
                action: "tenant.tier",
                resource,
                outcome: crate::audit::Outcome::Ok,
            })?;
        }
        Ok(self.store.find_tenant(tenant_id)?)
    }

    pub fn list_tenants(&self) -> Result<Vec<TenantRecord>, ApplianceError> {
        Ok(self.store.list_tenants()?)
    }

    /// Up to `limit` tenants after the one `after` names by (created_at, tenant id), in
    /// listing order, and whether more follow. Reads the page's rows only.
    pub fn list_tenants_page(
        &self,
        after: Option<(i64, &TenantId)>,
        limit: usize,
    ) -> Result<(Vec<TenantRecord>, bool), ApplianceError> {
        let mut page = self.store.list_tenants_page(after, limit + 1)?;
        let more = page.len() > limit;
        page.truncate(limit);
        Ok((page, more))
    }

    /// Creates many tenants in one store transaction (provisioning, `cargo bench --bench
    /// tenants`): each name checked as [`Appliance::create_tenant`] checks it, against
    /// the existing tenants and the others of the batch.
    pub fn create_tenants(
        &self,
        tenants: &[(String, Tier)],
    ) -> Result<Vec<TenantRecord>, ApplianceError> {
        let mut taken: std::collections::HashSet<String> = self
            .store
            .list_tenants()?
            .into_iter()
            .map(|tenant| tenant.name.to_lowercase())
            .collect();
        let mut batch = Vec::with_capacity(tenants.len());
        for (name, tier) in tenants {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
                return Err(ApplianceError::InvalidRequest(
                    "tenant name must be 1 to 200 printable characters".into(),
                ));
            }
            if !taken.insert(name.to_lowercase()) {
                return Err(ApplianceError::Conflict(format!(
                    "a tenant named “{name}” already exists: choose another name"
                )));
            }
            batch.push((name, *tier));
        }
        Ok(self.store.create_tenants(&batch)?)
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
        let customer_recipient = self.store.customer_recipient(tenant_id)?;
        let deletion = self.store.delete_tenant(tenant_id)?;
        self.store.lock_tenant(tenant_id);
        // Again: a search that began before the rows went may have reopened it.
        lock(&self.open_tenants).remove(tenant_id);
        // The tenant is gone: nothing about the audit log may turn that into a failure
        // (a GDPR deletion is never blocked). A log that cannot be written or read is
        // logged here, said in the certificate, and reported by `audit verify`.
        let logged = self.audit(&crate::audit::AuditEvent {
            tenant_id: Some(tenant_id.to_string()),
            actor: actor.to_owned(),
            action: "tenant.delete",
            resource: tenant_id.to_string(),
            outcome: crate::audit::Outcome::Ok,
        });
        if let Err(error) = &logged {
            tracing::error!(tenant = %tenant_id, %error, "tenant deleted, but its deletion was not audited");
        }
        let head = match self.store.audit_chain() {
            Ok(chain) => crate::audit::verify_chain(&chain).head,
            Err(error) => {
                tracing::error!(%error, "audit chain unreadable");
                String::new()
            }
        };
        let mut certificate = serde_json::json!({
            "type": "bulkhead.tenant_deletion",
            "tenant_id": tenant_id.to_string(),
            "requested_at": crate::time::rfc3339(requested_at),
            "completed_at": crate::time::rfc3339(crate::time::now()),
            "deleted": {
                "documents": deletion.documents,
                "chunks": deletion.chunks,
                "bytes": deletion.bytes,
                "vector_index": deletion.vector_index_removed,
                "text_index": deletion.text_index_removed,
                "blobs": deletion.blobs_removed,
            },
            "wal_truncated": deletion.wal_truncated,
            "destroyed_key_ids": [deletion.key_id],
            "audit_chain_head": head,
            "audit_logged": logged.is_ok(),
            "issuer": crate::auth::tokens::ISSUER,
            "kid": signer.kid_for(crate::auth::tokens::Purpose::DeletionCertificate),
        });
        if let Some(recipient) = customer_recipient {
            certificate["customer_held_key"] = serde_json::json!({
                "recipient": recipient,
                "statement": CUSTOMER_KEY_STATEMENT,
            });
        }
        let jws = signer
            .sign_certificate(&certificate)
            .map_err(|error| ApplianceError::Signing(error.to_string()))?;
        Ok(DeletionCertificate { certificate, jws })
    }

    /// Re-wraps every live tenant's data key under a new master key and destroys the old
    /// key (`bulkhead key rotate`; see `store::master_key`), audited in the platform's log.
    /// Refused while another process indexes in the data directory (a running server
    /// holds the old key: stop it first).
    pub fn rotate_master_key(&mut self) -> Result<usize, ApplianceError> {
        let Some(_indexer) = self.store.indexer_lock(false)? else {
            return Err(ApplianceError::Conflict(
                "another process is using this data directory: stop `bulkhead serve` first".into(),
            ));
        };
        let rewrapped = self.store.rotate_master_key()?;
        self.audit(&crate::audit::AuditEvent {
            tenant_id: None,
            actor: "operator".into(),
            action: "master_key.rotate",
            resource: format!("{rewrapped} tenant keys re-wrapped"),
            outcome: crate::audit::Outcome::Ok,
        })?;
        Ok(rewrapped)
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
