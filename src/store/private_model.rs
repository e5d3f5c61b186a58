//! An enterprise tenant's own language model (issue 12): a GGUF file on the appliance,
//! pinned by its SHA-256. Stored in the clear in `tenants.model_path` / `model_sha256`:
//! the operator's configuration, not the tenant's content (`bulkhead doctor` reads it).

use std::path::PathBuf;

use rusqlite::params;

use super::{Store, StoreError};
use crate::ids::TenantId;

/// A pinned model: the file and the SHA-256 (64 lowercase hex digits) it must have.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrivateModel {
    pub path: PathBuf,
    pub sha256: String,
}

impl Store {
    /// Pins the tenant's own model, or removes the pin (`None`).
    pub fn set_private_model(
        &self,
        tenant_id: &TenantId,
        model: Option<&PrivateModel>,
    ) -> Result<(), StoreError> {
        let changed = self.connection().execute(
            "UPDATE tenants SET model_path = ?1, model_sha256 = ?2 WHERE tenant_id = ?3",
            params![
                model.map(|model| model.path.to_string_lossy().into_owned()),
                model.map(|model| model.sha256.clone()),
                tenant_id.as_str()
            ],
        )?;
        if changed == 0 {
            return Err(StoreError::TenantNotFound(tenant_id.to_string()));
        }
        Ok(())
    }

    /// The tenant's pinned model, if it has one.
    pub fn private_model(&self, tenant_id: &TenantId) -> Result<Option<PrivateModel>, StoreError> {
        let (path, sha256): (Option<String>, Option<String>) = self.connection().query_row(
            "SELECT model_path, model_sha256 FROM tenants WHERE tenant_id = ?1",
            params![tenant_id.as_str()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        Ok(path.zip(sha256).map(|(path, sha256)| PrivateModel {
            path: PathBuf::from(path),
            sha256,
        }))
    }

    /// Every tenant's pinned model (for `bulkhead doctor`).
    pub fn private_models(&self) -> Result<Vec<(TenantId, PrivateModel)>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare(
            "SELECT tenant_id, model_path, model_sha256 FROM tenants
             WHERE model_path IS NOT NULL AND model_sha256 IS NOT NULL ORDER BY tenant_id",
        )?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })?;
        let mut models = Vec::new();
        for row in rows {
            let (tenant, path, sha256) = row?;
            if let Ok(tenant_id) = TenantId::try_from(tenant.as_str()) {
                models.push((
                    tenant_id,
                    PrivateModel {
                        path: PathBuf::from(path),
                        sha256,
                    },
                ));
            }
        }
        Ok(models)
    }
}
