//! Rotating the master key (issue 11, finding 9): every live tenant's data key (and name)
//! is re-wrapped under a new master key in one transaction, and the old key is destroyed.
//! A backup of `system.db` taken before the rotation then opens only with the old key:
//! once no copy of that key is left, a tenant deleted before the rotation cannot be
//! brought back from such a backup.
//!
//! Crash safety: the new key is written (fsynced) to `master.key.next` before the
//! transaction commits; after the commit the old `master.key` is overwritten in place and
//! synced, then `master.key.next` is renamed over it. [`Store::open`] finishes a rotation
//! a crash interrupted after its commit: when `master.key` no longer opens the database
//! and `master.key.next` does, the next key is put in place.

use std::io::Write;
use std::path::Path;

use rusqlite::{TransactionBehavior, params};
use zeroize::Zeroizing;

use super::{
    KEY_CHECK_PLAINTEXT, MASTER_KEY_ENV, MASTER_KEY_FILE, Store, StoreError, files, key_check_aad,
};
use crate::crypto::{Aad, ObjectKind, SecretKey};
use crate::ids::TenantId;

/// The new key of a rotation in progress.
pub const NEXT_MASTER_KEY_FILE: &str = "master.key.next";

impl Store {
    /// Re-wraps every live tenant's data key and name under a new master key, then
    /// destroys the old key file. Returns how many tenants' keys were re-wrapped. Needs
    /// the key file (a key from the environment is rotated there) and no other process
    /// using the data directory (stop `serve` first: it holds the old key).
    pub fn rotate_master_key(&mut self) -> Result<usize, StoreError> {
        if std::env::var(MASTER_KEY_ENV).is_ok() {
            return Err(StoreError::MasterKeyInEnvironment);
        }
        let next_path = self.root.join(NEXT_MASTER_KEY_FILE);
        // A leftover of a rotation that never committed (this store opened with the
        // current key, so the database is under it).
        match std::fs::remove_file(&next_path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error.into()),
        }
        let new_key = SecretKey::generate();
        new_key.write_new_file(&next_path)?;
        files::sync_dir(&self.root)?;
        let rewrapped = {
            let mut connection = self.connection();
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let rows: Vec<(String, String, Vec<u8>, Vec<u8>)> = {
                let mut statement = transaction
                    .prepare("SELECT tenant_id, key_id, wrapped_key, name_sealed FROM tenants")?;
                statement
                    .query_map([], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                    })?
                    .collect::<Result<_, _>>()?
            };
            for (tenant, key_id, wrapped, name_sealed) in &rows {
                let tenant_id = TenantId::try_from(tenant.as_str())
                    .map_err(|_| StoreError::TenantNotFound(tenant.clone()))?;
                let key_aad = Aad {
                    tenant: Some(&tenant_id),
                    kind: ObjectKind::DataKey,
                    object_id: key_id,
                };
                let name_aad = Aad {
                    tenant: Some(&tenant_id),
                    kind: ObjectKind::TenantName,
                    object_id: tenant_id.as_str(),
                };
                // Not `audited`: that appends to the log on this connection, held here.
                let data_key = Zeroizing::new(self.master_key.open(key_aad, wrapped)?);
                let name = self.master_key.open(name_aad, name_sealed)?;
                transaction.execute(
                    "UPDATE tenants SET wrapped_key = ?1, name_sealed = ?2 WHERE tenant_id = ?3",
                    params![
                        new_key.seal(key_aad, &data_key),
                        new_key.seal(name_aad, &name),
                        tenant
                    ],
                )?;
            }
            transaction.execute(
                "UPDATE appliance SET value = ?1 WHERE key = 'key_check'",
                params![new_key.seal(key_check_aad(), KEY_CHECK_PLAINTEXT)],
            )?;
            transaction.commit()?;
            rows.len()
        };
        self.master_key = new_key;
        // The old wrapped keys leave the WAL (`secure_delete` zeroes the old pages).
        self.truncate_wal()?;
        finish_rotation(&self.root)?;
        Ok(rewrapped)
    }
}

/// Puts the committed next key in place of the old one: the old key file overwritten in
/// place and synced, then the next key renamed over it.
pub(super) fn finish_rotation(root: &Path) -> Result<(), StoreError> {
    let current = root.join(MASTER_KEY_FILE);
    match std::fs::OpenOptions::new().write(true).open(&current) {
        Ok(mut file) => {
            let length = file.metadata()?.len() as usize;
            file.write_all(&vec![0u8; length])?;
            file.sync_all()?;
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error.into()),
    }
    std::fs::rename(root.join(NEXT_MASTER_KEY_FILE), &current)?;
    files::sync_dir(root)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{new_tenant, temp_store};
    use super::*;

    #[test]
    fn issue_11_a_rotated_master_key_rewraps_live_keys_and_an_interrupted_rotation_finishes() {
        let (dir, mut store) = temp_store();
        let alpha = new_tenant(&store, "Alpha");
        let document = store.put_document(&alpha, "a.txt", None, b"alpha").unwrap();
        let old_key = std::fs::read(dir.path().join(MASTER_KEY_FILE)).unwrap();
        assert_eq!(store.rotate_master_key().unwrap(), 1);
        let new_key = std::fs::read(dir.path().join(MASTER_KEY_FILE)).unwrap();
        assert_ne!(old_key, new_key);
        assert!(!dir.path().join(NEXT_MASTER_KEY_FILE).exists());
        drop(store);
        // The old key opens nothing; the new one opens everything as before.
        let old = SecretKey::from_hex(std::str::from_utf8(&old_key).unwrap()).unwrap();
        assert!(matches!(
            Store::open_with_key(dir.path(), old),
            Err(StoreError::WrongMasterKey)
        ));
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.find_tenant(alpha.tenant_id()).unwrap().name, "Alpha");
        assert_eq!(
            store.document_original(&alpha, &document).unwrap(),
            b"alpha"
        );
        drop(store);

        // A crash after the commit, before the files were swapped: open finishes it.
        let key_path = dir.path().join(MASTER_KEY_FILE);
        std::fs::rename(&key_path, dir.path().join(NEXT_MASTER_KEY_FILE)).unwrap();
        std::fs::write(&key_path, &old_key).unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.find_tenant(alpha.tenant_id()).unwrap().name, "Alpha");
        assert_eq!(std::fs::read(&key_path).unwrap(), new_key);
        assert!(!dir.path().join(NEXT_MASTER_KEY_FILE).exists());
    }
}
