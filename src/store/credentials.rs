//! Credentials kept beside the tenants: first-admin invitations (stored as SHA-256 hashes,
//! never the secret), revoked token ids, and per-user revocation watermarks.
//!
//! These are system tables, not tenant tables: the tenant connection cannot reach them (its
//! authorizer allows only the `t_*` views). Every write takes the tenant's [`TenantScope`];
//! the one read without a scope, [`Store::token_revoked`], answers a yes or no about a
//! credential for the token's own tenant, before any scope exists, and returns no data.

use rusqlite::{OptionalExtension, params};
use sha2::Digest;

use super::{Store, StoreError};
use crate::auth::TenantScope;
use crate::ids::TenantId;

/// How long a first-admin invitation may be accepted.
pub const INVITATION_TTL_SECONDS: i64 = 24 * 3600;

/// A freshly issued invitation: the secret is shown once and stored only as a hash.
#[derive(Clone, Debug)]
pub struct Invitation {
    pub secret: String,
    pub expires_at: i64,
}

fn secret_hash(secret: &str) -> String {
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

impl Store {
    /// Issues the tenant's single-use invitation, valid for [`INVITATION_TTL_SECONDS`].
    pub fn issue_invitation(&self, scope: &TenantScope) -> Result<Invitation, StoreError> {
        let secret = format!("inv_{}", &*crate::crypto::SecretKey::generate().to_hex());
        let now = crate::time::now();
        let expires_at = now + INVITATION_TTL_SECONDS;
        self.connection().execute(
            "INSERT INTO invitations (secret_hash, tenant_id, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                secret_hash(&secret),
                scope.tenant_id().as_str(),
                now,
                expires_at
            ],
        )?;
        Ok(Invitation { secret, expires_at })
    }

    /// Uses up an invitation: the tenant it was for, or `None` when it is unknown, used or
    /// expired. One atomic update, so two concurrent accepts cannot both succeed.
    pub fn use_invitation(&self, secret: &str) -> Result<Option<TenantId>, StoreError> {
        let now = crate::time::now();
        let tenant: Option<String> = self
            .connection()
            .query_row(
                "UPDATE invitations SET used_at = ?2
                 WHERE secret_hash = ?1 AND used_at IS NULL AND expires_at > ?2
                 RETURNING tenant_id",
                params![secret_hash(secret), now],
                |row| row.get(0),
            )
            .optional()?;
        Ok(tenant.and_then(|tenant| TenantId::try_from(tenant.as_str()).ok()))
    }

    /// Refuses the token `jti` of the scope's tenant from now on.
    pub fn revoke_token(&self, scope: &TenantScope, jti: &str) -> Result<(), StoreError> {
        self.connection().execute(
            "INSERT OR IGNORE INTO revoked_tokens (tenant_id, jti, revoked_at) VALUES (?1, ?2, ?3)",
            params![scope.tenant_id().as_str(), jti, crate::time::now()],
        )?;
        Ok(())
    }

    /// Refuses every token of `user` (a pseudonym) of the scope's tenant issued up to now
    /// (including this second: a token's `iat` counts whole seconds).
    pub fn revoke_user_tokens(&self, scope: &TenantScope, user: &str) -> Result<i64, StoreError> {
        let now = crate::time::now();
        self.connection().execute(
            "INSERT INTO token_watermarks (tenant_id, user, not_before) VALUES (?1, ?2, ?3)
             ON CONFLICT (tenant_id, user) DO UPDATE SET not_before = MAX(not_before, ?3)",
            params![scope.tenant_id().as_str(), user, now],
        )?;
        Ok(now)
    }

    /// Whether a token of `tenant_id` with id `jti`, issued at `issued_at` to `user` (a
    /// pseudonym), has been revoked.
    pub fn token_revoked(
        &self,
        tenant_id: &TenantId,
        jti: &str,
        user: &str,
        issued_at: u64,
    ) -> Result<bool, StoreError> {
        let revoked: Option<i64> = self
            .connection()
            .query_row(
                "SELECT 1 FROM revoked_tokens WHERE tenant_id = ?1 AND jti = ?2
                 UNION ALL
                 SELECT 1 FROM token_watermarks
                   WHERE tenant_id = ?1 AND user = ?3 AND not_before >= ?4
                 LIMIT 1",
                params![tenant_id.as_str(), jti, user, issued_at as i64],
                |row| row.get(0),
            )
            .optional()?;
        Ok(revoked.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{new_tenant, temp_store};

    #[test]
    fn invitations_are_single_use_and_stored_hashed() {
        let (_dir, store) = temp_store();
        let tenant = new_tenant(&store, "Alpha");
        let invitation = store.issue_invitation(&tenant).unwrap();
        let stored: String = store
            .connection()
            .query_row("SELECT secret_hash FROM invitations", [], |row| row.get(0))
            .unwrap();
        assert_ne!(stored, invitation.secret);
        assert!(!stored.contains(&invitation.secret[4..]));
        assert_eq!(
            store.use_invitation(&invitation.secret).unwrap().as_ref(),
            Some(tenant.tenant_id())
        );
        assert_eq!(store.use_invitation(&invitation.secret).unwrap(), None);
        assert_eq!(store.use_invitation("inv_forged").unwrap(), None);
    }

    #[test]
    fn revocation_is_per_tenant_by_id_and_by_user() {
        let (_dir, store) = temp_store();
        let alpha = new_tenant(&store, "Alpha");
        let beta = new_tenant(&store, "Beta");
        store.revoke_token(&alpha, "j1").unwrap();
        assert!(
            store
                .token_revoked(alpha.tenant_id(), "j1", "u", 0)
                .unwrap()
        );
        assert!(!store.token_revoked(beta.tenant_id(), "j1", "u", 0).unwrap());
        let at = store.revoke_user_tokens(&alpha, "bob").unwrap() as u64;
        assert!(
            store
                .token_revoked(alpha.tenant_id(), "j2", "bob", at)
                .unwrap()
        );
        assert!(
            !store
                .token_revoked(alpha.tenant_id(), "j2", "bob", at + 1)
                .unwrap()
        );
        assert!(
            !store
                .token_revoked(beta.tenant_id(), "j2", "bob", at)
                .unwrap()
        );
    }
}
