//! Customer-held keys (issue 12, BYOK): an enterprise tenant's data key wrapped twice,
//! first to the customer's age recipient, then by the master key, so that opening it needs
//! both. The customer's identity is held in this process's memory while the tenant is
//! unlocked, never written anywhere; without it [`Store::data_key`] refuses the tenant
//! with [`StoreError::TenantLocked`], whoever holds the master key.
//!
//! Stored: `tenants.customer_recipient` (the public `age1…` recipient, NULL for a tenant
//! without one) and `tenants.wrapped_key` = master-key seal of (age ciphertext of the data
//! key's hex). Rotating the master key re-wraps the outer layer only, without the customer.

use rusqlite::{OptionalExtension, params};

use super::{Store, StoreError};
use crate::auth::TenantScope;
use crate::crypto::{Aad, CustomerIdentity, CustomerRecipient, ObjectKind, SecretKey};
use crate::ids::TenantId;

/// A tenant's key row: its id, its wrapped key and its customer's recipient (`age1…`),
/// if any. Any recipient, even one that no longer parses, marks the tenant as BYOK: fail
/// closed rather than fall back to the master key alone.
pub(super) struct KeyRow {
    pub key_id: String,
    pub wrapped: Vec<u8>,
    pub recipient: Option<String>,
}

impl Store {
    pub(super) fn key_row(&self, tenant_id: &TenantId) -> Result<KeyRow, StoreError> {
        let row: Option<(String, Vec<u8>, Option<String>)> = self
            .connection()
            .query_row(
                "SELECT key_id, wrapped_key, customer_recipient FROM tenants WHERE tenant_id = ?1",
                params![tenant_id.as_str()],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .optional()?;
        let (key_id, wrapped, recipient) =
            row.ok_or_else(|| StoreError::TenantNotFound(tenant_id.to_string()))?;
        Ok(KeyRow {
            key_id,
            wrapped,
            recipient,
        })
    }

    /// Opens a key row's wrapping with the master key and, for a BYOK tenant, with the
    /// customer's identity (`None`: locked). The data key's hex, zeroed on drop.
    pub(super) fn unwrap_key_row(
        &self,
        tenant_id: &TenantId,
        row: &KeyRow,
        identity: Option<&CustomerIdentity>,
    ) -> Result<SecretKey, StoreError> {
        let outer = zeroize::Zeroizing::new(self.audited(self.master_key.open(
            Aad {
                tenant: Some(tenant_id),
                kind: ObjectKind::DataKey,
                object_id: &row.key_id,
            },
            &row.wrapped,
        ))?);
        let hex = match (&row.recipient, identity) {
            (None, _) => outer,
            (Some(_), None) => return Err(StoreError::TenantLocked(tenant_id.to_string())),
            (Some(_), Some(identity)) => identity
                .unwrap(&outer)
                .ok_or(StoreError::CustomerKeyRejected)?,
        };
        let hex = std::str::from_utf8(&hex).map_err(|_| StoreError::CustomerKeyRejected)?;
        Ok(SecretKey::from_hex(hex)?)
    }

    /// The customer recipient a tenant's data key is wrapped to (`None`: the master key
    /// alone wraps it).
    pub fn customer_recipient(&self, tenant_id: &TenantId) -> Result<Option<String>, StoreError> {
        Ok(self.key_row(tenant_id)?.recipient)
    }

    /// Whether the tenant has a customer-held key that this process does not hold now.
    pub fn tenant_locked(&self, tenant_id: &TenantId) -> Result<bool, StoreError> {
        Ok(self.key_row(tenant_id)?.recipient.is_some()
            && !self.identities().contains_key(tenant_id))
    }

    /// Wraps the tenant's data key to `recipient` inside the master key's wrapping (the
    /// same data key: nothing is re-encrypted). The tenant is locked afterwards: this
    /// process forgets its data key, and the master-only wrapping leaves the database and
    /// its WAL (`secure_delete`, then a WAL truncation). A tenant that already has a
    /// customer key must be unlocked to move to another.
    pub fn enrol_customer_key(
        &self,
        scope: &TenantScope,
        recipient: &CustomerRecipient,
    ) -> Result<(), StoreError> {
        let data_key = self.data_key(scope)?;
        let tenant_id = scope.tenant_id();
        let key_id: String = self.connection().query_row(
            "SELECT key_id FROM tenants WHERE tenant_id = ?1",
            params![tenant_id.as_str()],
            |row| row.get(0),
        )?;
        let wrapped = self.master_key.seal(
            Aad {
                tenant: Some(tenant_id),
                kind: ObjectKind::DataKey,
                object_id: &key_id,
            },
            &recipient.wrap(data_key.to_hex().as_bytes()),
        );
        drop(data_key);
        self.connection().execute(
            "UPDATE tenants SET wrapped_key = ?1, customer_recipient = ?2 WHERE tenant_id = ?3",
            params![wrapped, recipient.as_str(), tenant_id.as_str()],
        )?;
        self.lock_tenant(tenant_id);
        self.truncate_wal()?;
        Ok(())
    }

    /// Checks `identity` against the tenant's customer-wrapped data key and, when it opens
    /// it, holds both in this process's memory until [`Store::lock_tenant`] or exit.
    pub fn unlock_tenant(
        &self,
        tenant_id: &TenantId,
        identity: CustomerIdentity,
    ) -> Result<(), StoreError> {
        let row = self.key_row(tenant_id)?;
        if row.recipient.is_none() {
            return Err(StoreError::NoCustomerKey(tenant_id.to_string()));
        }
        let key = self.unwrap_key_row(tenant_id, &row, Some(&identity))?;
        // Identities before data keys, as everywhere (see `data_key`).
        let mut identities = self.identities();
        self.data_keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(tenant_id.clone(), key);
        identities.insert(tenant_id.clone(), identity);
        Ok(())
    }

    /// Drops the tenant's customer identity and cached data key from this process's
    /// memory. Idempotent; a tenant without a customer key keeps working from the master
    /// key (only its cached key goes).
    pub fn lock_tenant(&self, tenant_id: &TenantId) {
        let mut identities = self.identities();
        identities.remove(tenant_id);
        self.data_keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(tenant_id);
    }

    /// The unlocked tenants' identities. Lock order: this map, then `data_keys`, so an
    /// unwrap racing a lock cannot put a key back after the lock removed it.
    pub(super) fn identities(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<TenantId, CustomerIdentity>> {
        self.customer_identities
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{new_tenant, temp_store};
    use super::*;

    #[test]
    fn enterprise_locked_tenant_cannot_be_opened_with_the_master_key_alone() {
        let (dir, store) = temp_store();
        let scope = new_tenant(&store, "Gamma Bottling");
        let marker = "MARKER-enterprise-7f3a";
        let document = store
            .put_document(&scope, "secret.txt", None, marker.as_bytes())
            .unwrap();
        let data_key_hex = store.data_key(&scope).unwrap().to_hex();
        let identity = CustomerIdentity::generate();
        store
            .enrol_customer_key(&scope, &identity.recipient())
            .unwrap();

        // This process forgot the key; a fresh store with the master key (the operator)
        // cannot open it either.
        for reader in [&store, &Store::open(dir.path()).unwrap()] {
            assert!(matches!(
                reader.data_key(&scope),
                Err(StoreError::TenantLocked(_))
            ));
            assert!(matches!(
                reader.document_original(&scope, &document),
                Err(StoreError::TenantLocked(_))
            ));
            assert!(reader.tenant_locked(scope.tenant_id()).unwrap());
        }
        // Even the master key's own unwrapping yields only the customer's ciphertext.
        let row = store.key_row(scope.tenant_id()).unwrap();
        let outer = store
            .master_key
            .open(
                Aad {
                    tenant: Some(scope.tenant_id()),
                    kind: ObjectKind::DataKey,
                    object_id: &row.key_id,
                },
                &row.wrapped,
            )
            .unwrap();
        assert!(outer.starts_with(b"age-encryption.org/v1"));
        assert!(
            !outer
                .windows(data_key_hex.len())
                .any(|window| window == data_key_hex.as_bytes())
        );
        assert!(matches!(
            store.unwrap_key_row(scope.tenant_id(), &row, None),
            Err(StoreError::TenantLocked(_))
        ));

        // The wrong identity is rejected; the right one unlocks; lock drops it again.
        assert!(matches!(
            store.unlock_tenant(scope.tenant_id(), CustomerIdentity::generate()),
            Err(StoreError::CustomerKeyRejected)
        ));
        let secret = identity.to_secret_string();
        store
            .unlock_tenant(scope.tenant_id(), CustomerIdentity::parse(&secret).unwrap())
            .unwrap();
        assert_eq!(store.data_key(&scope).unwrap().to_hex(), data_key_hex);
        assert_eq!(
            store.document_original(&scope, &document).unwrap(),
            marker.as_bytes()
        );
        store.lock_tenant(scope.tenant_id());
        assert!(matches!(
            store.data_key(&scope),
            Err(StoreError::TenantLocked(_))
        ));
    }

    #[test]
    fn rotating_the_master_key_rewraps_the_outer_layer_without_the_customer() {
        let (dir, mut store) = temp_store();
        let scope = new_tenant(&store, "Epsilon Water");
        let document = store
            .put_document(&scope, "a.txt", None, b"alpha clause")
            .unwrap();
        let identity = CustomerIdentity::generate();
        store
            .enrol_customer_key(&scope, &identity.recipient())
            .unwrap();
        assert_eq!(store.rotate_master_key().unwrap(), 1);
        let reopened = Store::open(dir.path()).unwrap();
        assert!(matches!(
            reopened.data_key(&scope),
            Err(StoreError::TenantLocked(_))
        ));
        reopened.unlock_tenant(scope.tenant_id(), identity).unwrap();
        assert_eq!(
            reopened.document_original(&scope, &document).unwrap(),
            b"alpha clause"
        );
    }

    /// `Appliance::tenant_index` checks the key on every request: that check must stay far
    /// below a request's cost (prints the figure; run with `--nocapture`).
    #[test]
    fn the_per_request_key_check_of_an_unlocked_tenant_costs_microseconds() {
        let (_dir, store) = temp_store();
        let scope = new_tenant(&store, "Zeta Juice");
        let identity = CustomerIdentity::generate();
        store
            .enrol_customer_key(&scope, &identity.recipient())
            .unwrap();
        let started = std::time::Instant::now();
        store.unlock_tenant(scope.tenant_id(), identity).unwrap();
        let unlock = started.elapsed();
        let rounds = 10_000;
        let started = std::time::Instant::now();
        for _ in 0..rounds {
            store.data_key(&scope).unwrap();
        }
        let per_check = started.elapsed() / rounds;
        let started = std::time::Instant::now();
        for _ in 0..1_000 {
            assert!(store.tenant_locked(scope.tenant_id()).is_ok());
        }
        let per_locked_check = started.elapsed() / 1_000;
        eprintln!(
            "unlock (age X25519 unwrap + master unwrap): {unlock:?}; cached key check: {per_check:?}; locked-state query: {per_locked_check:?}"
        );
        assert!(
            per_check < std::time::Duration::from_millis(1),
            "{per_check:?}"
        );
    }

    #[test]
    fn a_tenant_without_a_customer_key_cannot_be_unlocked() {
        let (_dir, store) = temp_store();
        let scope = new_tenant(&store, "Delta Drinks");
        assert!(matches!(
            store.unlock_tenant(scope.tenant_id(), CustomerIdentity::generate()),
            Err(StoreError::NoCustomerKey(_))
        ));
        assert!(!store.tenant_locked(scope.tenant_id()).unwrap());
    }
}
