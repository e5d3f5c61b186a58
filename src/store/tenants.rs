//! Tenants: records, sealed names, wrapped data keys, and deletion by crypto-shredding.

use rusqlite::params;

use super::{Store, StoreError, files, usage::stored_totals};
use crate::auth::TenantScope;
use crate::crypto::{Aad, ObjectKind, SecretKey};
use crate::ids::TenantId;
use crate::isolation::{Layer, enabled};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    Standard,
    Premium,
    Enterprise,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Standard => "standard",
            Tier::Premium => "premium",
            Tier::Enterprise => "enterprise",
        }
    }

    pub fn parse(text: &str) -> Option<Tier> {
        match text {
            "standard" => Some(Tier::Standard),
            "premium" => Some(Tier::Premium),
            "enterprise" => Some(Tier::Enterprise),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct TenantRecord {
    pub tenant_id: TenantId,
    pub name: String,
    pub tier: Tier,
    pub created_at: i64,
}

/// What a tenant deletion removed.
#[derive(Clone, Debug)]
pub struct TenantDeletion {
    pub documents: u64,
    pub chunks: u64,
    pub bytes: u64,
    /// The id of the destroyed data key.
    pub key_id: String,
    /// Checked after the deletion (issue 11, finding 9): no snapshot file and no row of
    /// what each index is built from (chunk vectors; chunk and document texts) remains.
    pub vector_index_removed: bool,
    pub text_index_removed: bool,
    /// No original's file and no document row remains.
    pub blobs_removed: bool,
    /// The WAL was checkpointed and truncated to nothing: no copy of the wrapped key is
    /// left in it.
    pub wal_truncated: bool,
}

/// A tenant row about to be inserted.
struct NewTenantRow {
    record: TenantRecord,
    key_id: String,
    wrapped_key: Vec<u8>,
    name_sealed: Vec<u8>,
}

impl Store {
    pub fn create_tenant(&self, name: &str, tier: Tier) -> Result<TenantRecord, StoreError> {
        let mut created = self.create_tenants(&[(name, tier)])?;
        Ok(created.remove(0))
    }

    /// Creates tenants in one transaction (one commit, however many): provisioning
    /// thousands of tenants costs one durable write, not one each. Names are the caller's
    /// to check.
    pub fn create_tenants(
        &self,
        tenants: &[(&str, Tier)],
    ) -> Result<Vec<TenantRecord>, StoreError> {
        let rows: Vec<NewTenantRow> = tenants
            .iter()
            .map(|(name, tier)| self.new_tenant_row(name, *tier))
            .collect();
        for row in &rows {
            files::create_private_dir(
                &self
                    .root
                    .join("tenants")
                    .join(row.record.tenant_id.as_str())
                    .join("blobs"),
            )?;
        }
        let mut connection = self.connection();
        let transaction = connection.transaction()?;
        {
            let mut insert = transaction.prepare(
                "INSERT INTO tenants (tenant_id, name_sealed, tier, key_id, wrapped_key, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for row in &rows {
                insert.execute(params![
                    row.record.tenant_id.as_str(),
                    row.name_sealed,
                    row.record.tier.as_str(),
                    row.key_id,
                    row.wrapped_key,
                    row.record.created_at
                ])?;
            }
        }
        transaction.commit()?;
        Ok(rows.into_iter().map(|row| row.record).collect())
    }

    /// A new tenant's record with its fresh data key wrapped by the master key and its
    /// name sealed.
    fn new_tenant_row(&self, name: &str, tier: Tier) -> NewTenantRow {
        let tenant_id = TenantId::generate();
        let data_key = SecretKey::generate();
        let key_id = format!("k_{}", &TenantId::generate().as_str()[2..]);
        let wrapped_key = self.master_key.seal(
            Aad {
                tenant: Some(&tenant_id),
                kind: ObjectKind::DataKey,
                object_id: &key_id,
            },
            data_key.to_hex().as_bytes(),
        );
        let name_sealed = self.master_key.seal(
            Aad {
                tenant: Some(&tenant_id),
                kind: ObjectKind::TenantName,
                object_id: tenant_id.as_str(),
            },
            name.as_bytes(),
        );
        NewTenantRow {
            record: TenantRecord {
                tenant_id,
                name: name.to_owned(),
                tier,
                created_at: crate::time::now(),
            },
            key_id,
            wrapped_key,
            name_sealed,
        }
    }

    pub fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        self.tenant_records(
            "SELECT tenant_id, name_sealed, tier, created_at FROM tenants ORDER BY created_at, tenant_id",
            [],
        )
    }

    /// One page of tenants in listing order (creation time, then id), after the tenant
    /// `after` names by (created_at, tenant id): a keyset page, so a tenant created or
    /// deleted meanwhile never shifts another into or out of the pages. Decrypts the
    /// page's names only.
    pub fn list_tenants_page(
        &self,
        after: Option<(i64, &TenantId)>,
        limit: usize,
    ) -> Result<Vec<TenantRecord>, StoreError> {
        let limit = limit as i64;
        match after {
            None => self.tenant_records(
                "SELECT tenant_id, name_sealed, tier, created_at FROM tenants
                 ORDER BY created_at, tenant_id LIMIT ?1",
                params![limit],
            ),
            Some((created_at, tenant_id)) => self.tenant_records(
                "SELECT tenant_id, name_sealed, tier, created_at FROM tenants
                 WHERE (created_at, tenant_id) > (?1, ?2)
                 ORDER BY created_at, tenant_id LIMIT ?3",
                params![created_at, tenant_id.as_str(), limit],
            ),
        }
    }

    /// The tenant records a query of (tenant_id, name_sealed, tier, created_at) returns,
    /// names opened with the master key.
    fn tenant_records(
        &self,
        query: &str,
        parameters: impl rusqlite::Params,
    ) -> Result<Vec<TenantRecord>, StoreError> {
        let rows: Vec<(String, Vec<u8>, String, i64)> = {
            let connection = self.connection();
            let mut statement = connection.prepare(query)?;
            statement
                .query_map(parameters, |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })?
                .collect::<Result<_, _>>()?
        };
        rows.into_iter()
            .map(|(id, name_sealed, tier, created_at)| {
                let tenant_id = TenantId::try_from(id.as_str())
                    .map_err(|_| StoreError::TenantNotFound(id.clone()))?;
                let name = self.audited(self.master_key.open_string(
                    Aad {
                        tenant: Some(&tenant_id),
                        kind: ObjectKind::TenantName,
                        object_id: tenant_id.as_str(),
                    },
                    &name_sealed,
                ))?;
                Ok(TenantRecord {
                    tenant_id,
                    name,
                    tier: Tier::parse(&tier).unwrap_or(Tier::Standard),
                    created_at,
                })
            })
            .collect()
    }

    /// Changes a tenant's tier (one row; nothing else about the tenant moves), or
    /// `TenantNotFound`.
    pub fn set_tier(&self, tenant_id: &TenantId, tier: Tier) -> Result<(), StoreError> {
        let changed = self.connection().execute(
            "UPDATE tenants SET tier = ?1 WHERE tenant_id = ?2",
            params![tier.as_str(), tenant_id.as_str()],
        )?;
        if changed == 0 {
            return Err(StoreError::TenantNotFound(tenant_id.to_string()));
        }
        Ok(())
    }

    /// The tenant's record, or `TenantNotFound`. Used by auth before minting a scope, on
    /// every request: one row, one name opened, whatever the number of tenants.
    pub fn find_tenant(&self, tenant_id: &TenantId) -> Result<TenantRecord, StoreError> {
        self.tenant_records(
            "SELECT tenant_id, name_sealed, tier, created_at FROM tenants WHERE tenant_id = ?1",
            params![tenant_id.as_str()],
        )?
        .pop()
        .ok_or_else(|| StoreError::TenantNotFound(tenant_id.to_string()))
    }

    /// The tenant's data key, unwrapped with the master key (and, for a tenant with a
    /// customer-held key, the customer's identity this process holds), cached.
    pub fn data_key(&self, scope: &TenantScope) -> Result<SecretKey, StoreError> {
        if !enabled(Layer::Crypto) {
            // Ablation test builds only: one key for every tenant.
            return Ok(self.master_key.clone());
        }
        let tenant_id = scope.tenant_id();
        // A key cached before another process deleted its tenant is not used again.
        self.forget_deleted_keys()?;
        if let Some(key) = self
            .data_keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(tenant_id)
        {
            return Ok(key.clone());
        }
        // A BYOK tenant's key opens only with its customer's identity, held while it is
        // unlocked (`customer_key`); without it this is `TenantLocked`, master key or not.
        let row = self.key_row(tenant_id)?;
        let identities = self.identities();
        let key = self.unwrap_key_row(tenant_id, &row, identities.get(tenant_id))?;
        // Cached under the identities' lock: a `lock_tenant` racing this cannot be undone
        // by an insert after it.
        self.data_keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(tenant_id.clone(), key.clone());
        drop(identities);
        Ok(key)
    }

    /// Deletes a tenant for good: its rows, its files, and its wrapped data key — without
    /// the key, any copy of its ciphertext (a backup, a stray page) is noise. The audit log
    /// keeps its entries, whose pseudonyms can no longer be resolved. Then the WAL is
    /// checkpointed and truncated so no page with the old key survives in it
    /// (`secure_delete` zeroes freed pages in the database file).
    pub fn delete_tenant(&self, tenant_id: &TenantId) -> Result<TenantDeletion, StoreError> {
        self.find_tenant(tenant_id)?;
        let tenant = tenant_id.as_str();
        let (documents, bytes, chunks) = stored_totals(
            &self.tenant(&crate::auth::operator_scope(
                tenant_id.clone(),
                crate::auth::OperatorReason::Deletion,
            )),
            tenant,
        )?;
        let mut deletion = {
            let mut connection = self.connection();
            let transaction = connection.transaction()?;
            let key_id: String = transaction.query_row(
                "SELECT key_id FROM tenants WHERE tenant_id = ?1",
                params![tenant],
                |row| row.get(0),
            )?;
            for table in TENANT_TABLES {
                transaction.execute(
                    &format!("DELETE FROM {table} WHERE tenant_id = ?1"),
                    params![tenant],
                )?;
            }
            transaction.commit()?;
            TenantDeletion {
                documents: documents as u64,
                chunks: chunks as u64,
                bytes: bytes as u64,
                key_id,
                vector_index_removed: false,
                text_index_removed: false,
                blobs_removed: false,
                wal_truncated: false,
            }
        };
        self.data_keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(tenant_id);
        let dir = self.root.join("tenants").join(tenant);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => files::sync_dir(&self.root.join("tenants"))?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => tracing::error!(tenant, %error, "tenant directory not removed"),
        }
        deletion.wal_truncated = self.truncate_wal()?;
        // What the certificate claims, checked on disk and in the database.
        let rows_left = |table: &str| -> Result<bool, StoreError> {
            let count: i64 = self.connection().query_row(
                &format!("SELECT COUNT(*) FROM {table} WHERE tenant_id = ?1"),
                params![tenant],
                |row| row.get(0),
            )?;
            Ok(count > 0)
        };
        let gone = |path: std::path::PathBuf| !path.exists();
        let index = dir.join("index");
        deletion.vector_index_removed =
            gone(index.join(format!("{}.bin", ObjectKind::VectorIndex.label())))
                && !rows_left("chunks")?;
        deletion.text_index_removed =
            gone(index.join(format!("{}.bin", ObjectKind::TextIndex.label())))
                && !rows_left("chunks")?
                && !rows_left("document_texts")?;
        deletion.blobs_removed = gone(dir.join("blobs")) && !rows_left("documents")?;
        Ok(deletion)
    }

    /// Checkpoints the WAL into the database and truncates it, retrying while readers
    /// hold it (for up to ten seconds). Returns whether it completed; when it did not,
    /// says so loudly in the log.
    pub fn truncate_wal(&self) -> Result<bool, StoreError> {
        for attempt in 0..100 {
            let (busy, log, checkpointed): (i64, i64, i64) =
                self.connection()
                    .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                    })?;
            if busy == 0 && log == checkpointed {
                return Ok(true);
            }
            tracing::debug!(
                attempt,
                busy,
                log,
                checkpointed,
                "WAL checkpoint incomplete; retrying"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        tracing::error!(
            "the WAL could not be checkpointed and truncated: a reader keeps it; pages of deleted data may remain in system.db-wal until the next checkpoint"
        );
        Ok(false)
    }

    /// The ids of the tenants that exist now.
    pub fn live_tenants(&self) -> Result<std::collections::HashSet<TenantId>, StoreError> {
        self.tenant_ids("SELECT tenant_id FROM tenants")
    }

    /// The tenant ids a maintenance query (ids only, no content) returns.
    pub(super) fn tenant_ids<C: FromIterator<TenantId>>(
        &self,
        query: &str,
    ) -> Result<C, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare(query)?;
        let ids: Vec<String> = statement
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(ids
            .iter()
            .filter_map(|id| TenantId::try_from(id.as_str()).ok())
            .collect())
    }

    /// Drops the cached data keys of tenants that no longer exist (another process
    /// deleted them), whenever something was committed elsewhere since the last check.
    pub fn forget_deleted_keys(&self) -> Result<(), StoreError> {
        let version = self.data_version()?;
        let mut checked = self
            .keys_checked_version
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *checked == Some(version) {
            return Ok(());
        }
        let live = self.live_tenants()?;
        self.data_keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(|tenant_id, _| live.contains(tenant_id));
        *checked = Some(version);
        Ok(())
    }
}

/// The tables holding a tenant's rows, children first (the audit log keeps its entries).
const TENANT_TABLES: [&str; 11] = [
    "chunks",
    "document_texts",
    "document_catalogues",
    "jobs",
    "documents",
    "usage_events",
    "invitations",
    "revoked_tokens",
    "issued_tokens",
    "token_watermarks",
    "tenants",
];

#[cfg(test)]
mod tests {
    use super::super::test_support::{new_tenant, temp_store};
    use super::*;

    #[test]
    fn a_created_tenant_is_listed_found_and_shredded_on_deletion() {
        let (_dir, store) = temp_store();
        let alpha = new_tenant(&store, "Alpha Cola Corp");
        let beta = new_tenant(&store, "Beta Soda Inc");
        // Listed by creation time, then id: within one second the order is the ids'.
        let mut names: Vec<String> = store
            .list_tenants()
            .unwrap()
            .into_iter()
            .map(|tenant| tenant.name)
            .collect();
        names.sort();
        assert_eq!(names, ["Alpha Cola Corp", "Beta Soda Inc"]);
        assert_eq!(
            store.find_tenant(alpha.tenant_id()).unwrap().name,
            "Alpha Cola Corp"
        );
        store.put_document(&alpha, "a.txt", None, b"alpha").unwrap();

        let deletion = store.delete_tenant(alpha.tenant_id()).unwrap();
        assert_eq!((deletion.documents, deletion.bytes), (1, 5));
        assert!(deletion.key_id.starts_with("k_"));
        assert!(matches!(
            store.find_tenant(alpha.tenant_id()),
            Err(StoreError::TenantNotFound(_))
        ));
        assert!(!store.tenant_dir(&alpha).exists());
        assert!(matches!(
            store.data_key(&alpha),
            Err(StoreError::TenantNotFound(_))
        ));
        assert!(store.data_key(&beta).is_ok());
    }
}
