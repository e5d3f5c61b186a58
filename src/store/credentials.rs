//! Credentials kept beside the tenants: first-admin invitations (stored as SHA-256 hashes,
//! never the secret), the tokens issued (their ids, never the tokens), revoked token ids,
//! and per-user revocation watermarks.
//!
//! These are system tables, not tenant tables: the tenant connection cannot reach them (its
//! authorizer allows only the `t_*` views). Every write takes the tenant's [`TenantScope`];
//! the one read without a scope, [`Store::token_revoked`], answers a yes or no about a
//! credential for the token's own tenant, before any scope exists, and returns no data.

use rusqlite::{OptionalExtension, params};
use sha2::Digest;

use super::{Store, StoreError};
use crate::auth::TenantScope;
use crate::crypto::{Aad, ObjectKind, SecretKey};
use crate::ids::TenantId;

/// How long a first-admin invitation may be accepted.
pub const INVITATION_TTL_SECONDS: i64 = 24 * 3600;

/// A freshly issued invitation: the secret is shown once and stored only as a hash.
#[derive(Clone, Debug)]
pub struct Invitation {
    pub secret: String,
    pub expires_at: i64,
}

/// A token issued for a tenant, as its admins see it.
#[derive(Clone, Debug, PartialEq)]
pub struct IssuedToken {
    pub jti: String,
    /// The user's name as given when the token was minted; `None` while its tenant is
    /// locked (a customer-held key), or when it was issued while locked.
    pub user: Option<String>,
    pub roles: Vec<String>,
    pub issued_at: i64,
    pub expires_at: i64,
    /// Refused from now on: revoked by id, or issued before its user's tokens were revoked.
    pub revoked: bool,
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

    /// Records a token issued for the scope's tenant: its id, its user's pseudonym and name
    /// (sealed with the tenant's key), roles and lifetime; never the token itself.
    pub fn record_issued_token(
        &self,
        scope: &TenantScope,
        token: &IssuedToken,
        pseudonym: &str,
    ) -> Result<(), StoreError> {
        // A tenant whose customer holds its key may be locked (its admin's first token
        // unlocks it): the token is still recorded, without the user's name.
        let user_sealed = match (self.unlocked_data_key(scope)?, &token.user) {
            (Some(key), Some(user)) => Some(key.seal(
                Aad {
                    tenant: Some(scope.tenant_id()),
                    kind: ObjectKind::TokenUser,
                    object_id: &token.jti,
                },
                user.as_bytes(),
            )),
            _ => None,
        };
        let connection = self.connection();
        // Expired tokens need no listing: forgotten as new ones are recorded.
        connection.execute(
            "DELETE FROM issued_tokens WHERE tenant_id = ?1 AND expires_at <= ?2",
            params![scope.tenant_id().as_str(), crate::time::now()],
        )?;
        connection.execute(
            "INSERT OR IGNORE INTO issued_tokens
               (tenant_id, jti, user, user_sealed, roles, issued_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                scope.tenant_id().as_str(),
                token.jti,
                pseudonym,
                user_sealed,
                token.roles.join(" "),
                token.issued_at,
                token.expires_at
            ],
        )?;
        Ok(())
    }

    /// The scope's tenant's tokens that have not expired, newest first, each marked when
    /// it is refused (revoked by id, or by its user's watermark).
    pub fn issued_tokens(&self, scope: &TenantScope) -> Result<Vec<IssuedToken>, StoreError> {
        let now = crate::time::now();
        let tenant = scope.tenant_id().as_str();
        let connection = self.connection();
        let mut statement = connection.prepare(
            "SELECT i.jti, i.user_sealed, i.roles, i.issued_at, i.expires_at,
                    EXISTS (SELECT 1 FROM revoked_tokens r
                              WHERE r.tenant_id = i.tenant_id AND r.jti = i.jti)
                    OR EXISTS (SELECT 1 FROM token_watermarks w
                              WHERE w.tenant_id = i.tenant_id AND w.user = i.user
                                AND w.not_before >= i.issued_at)
             FROM issued_tokens i WHERE i.tenant_id = ?1 AND i.expires_at > ?2
             ORDER BY i.issued_at DESC, i.jti",
        )?;
        let rows = statement
            .query_map(params![tenant, now], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, Option<Vec<u8>>>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, i64>(4)?,
                    row.get::<_, bool>(5)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        drop(statement);
        drop(connection);
        let key = self.unlocked_data_key(scope)?;
        rows.into_iter()
            .map(|(jti, sealed, roles, issued_at, expires_at, revoked)| {
                let user = match (&key, sealed) {
                    (Some(key), Some(sealed)) => Some(key.open_string(
                        Aad {
                            tenant: Some(scope.tenant_id()),
                            kind: ObjectKind::TokenUser,
                            object_id: &jti,
                        },
                        &sealed,
                    )?),
                    _ => None,
                };
                Ok(IssuedToken {
                    roles: roles.split_whitespace().map(str::to_owned).collect(),
                    jti,
                    user,
                    issued_at,
                    expires_at,
                    revoked,
                })
            })
            .collect()
    }

    /// The scope's data key, or `None` while the tenant is locked (see `customer_key`).
    fn unlocked_data_key(&self, scope: &TenantScope) -> Result<Option<SecretKey>, StoreError> {
        match self.data_key(scope) {
            Ok(key) => Ok(Some(key)),
            Err(StoreError::TenantLocked(_)) => Ok(None),
            Err(error) => Err(error),
        }
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
    use super::IssuedToken;

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

    #[test]
    fn issued_tokens_are_listed_per_tenant_with_the_user_sealed_and_revocations_shown() {
        let (_dir, store) = temp_store();
        let alpha = new_tenant(&store, "Alpha");
        let beta = new_tenant(&store, "Beta");
        let now = crate::time::now();
        let token = |jti: &str, user: &str, expires_at: i64| IssuedToken {
            jti: jti.into(),
            user: Some(user.into()),
            roles: vec!["reader".into(), "editor".into()],
            issued_at: now - 10,
            expires_at,
            revoked: false,
        };
        store
            .record_issued_token(
                &alpha,
                &token("j1", "alice@alpha.example", now + 60),
                "p-alice",
            )
            .unwrap();
        store
            .record_issued_token(&alpha, &token("j2", "bob@alpha.example", now + 60), "p-bob")
            .unwrap();
        store
            .record_issued_token(
                &alpha,
                &token("old", "carol@alpha.example", now - 1),
                "p-carol",
            )
            .unwrap();
        store.revoke_token(&alpha, "j1").unwrap();
        let listed = store.issued_tokens(&alpha).unwrap();
        let seen: Vec<(&str, &str, bool)> = listed
            .iter()
            .map(|t| {
                (
                    t.jti.as_str(),
                    t.user.as_deref().unwrap_or_default(),
                    t.revoked,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("j1", "alice@alpha.example", true),
                ("j2", "bob@alpha.example", false)
            ]
        );
        assert_eq!(listed[1].roles, ["reader", "editor"]);
        // Revoking a user's tokens marks the ones issued before it.
        store.revoke_user_tokens(&alpha, "p-bob").unwrap();
        assert!(store.issued_tokens(&alpha).unwrap()[1].revoked);
        assert!(store.issued_tokens(&beta).unwrap().is_empty());
        // The user's name is stored only sealed.
        let sealed: Vec<u8> = store
            .connection()
            .query_row(
                "SELECT user_sealed FROM issued_tokens WHERE jti = 'j2'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("bob@alpha"));
    }
}
