//! Document catalogues: what a contract says about itself (built by `catalogue` at
//! indexing), kept here as one opaque, sealed string per document. The store does not
//! know the catalogue's shape: the appliance encodes and decodes it.

use rusqlite::params;

use super::rows::sql;
use super::{Store, StoreError};
use crate::auth::TenantScope;
use crate::crypto::{Aad, ObjectKind};
use crate::ids::DocumentId;

impl Store {
    /// Stores (or replaces) a document's catalogue, sealed to the tenant and document.
    pub fn put_catalogue(
        &self,
        scope: &TenantScope,
        document_id: &DocumentId,
        catalogue: &str,
    ) -> Result<(), StoreError> {
        let key = self.data_key(scope)?;
        let sealed = key.seal(
            Aad {
                tenant: Some(scope.tenant_id()),
                kind: ObjectKind::DocumentCatalogue,
                object_id: document_id.as_str(),
            },
            catalogue.as_bytes(),
        );
        let mut connection = self.tenant(scope);
        let transaction = connection.transaction()?;
        transaction.execute(
            &sql("DELETE FROM t_document_catalogues WHERE document_id = ?1 AND tenant_id = ?2"),
            params![document_id.as_str(), scope.tenant_id().as_str()],
        )?;
        transaction.execute(
            &sql("INSERT INTO t_document_catalogues (document_id, tenant_id, catalogue_sealed) VALUES (?1, ?2, ?3)"),
            params![document_id.as_str(), scope.tenant_id().as_str(), sealed],
        )?;
        transaction.commit()?;
        Ok(())
    }

    /// Every catalogue of the tenant, by document. A row of another tenant is dropped
    /// (application scope) and each one is authenticated to its document (crypto).
    pub fn catalogues(&self, scope: &TenantScope) -> Result<Vec<(DocumentId, String)>, StoreError> {
        let rows: Vec<(String, String, Vec<u8>)> = self.tenant_rows(
            scope,
            &sql("SELECT tenant_id, document_id, catalogue_sealed FROM t_document_catalogues WHERE tenant_id = ?1 ORDER BY document_id"),
            params![scope.tenant_id().as_str()],
        )?;
        let key = self.data_key(scope)?;
        rows.into_iter()
            .filter(|row| Self::row_is_ours(scope, &row.0))
            .map(|(_, id, sealed)| {
                let document_id = DocumentId::try_from(id.as_str())
                    .map_err(|_| StoreError::DocumentNotFound(id.clone()))?;
                let text = self.open_text(
                    scope,
                    &key,
                    ObjectKind::DocumentCatalogue,
                    document_id.as_str(),
                    &sealed,
                )?;
                Ok((document_id, text))
            })
            .collect()
    }

    /// The documents that have a catalogue, in document id order: nothing is decrypted, so
    /// a cache of the decoded catalogues can check it is current at the cost of one query.
    pub fn catalogue_document_ids(
        &self,
        scope: &TenantScope,
    ) -> Result<Vec<DocumentId>, StoreError> {
        let rows: Vec<(String, String)> = self.tenant_rows(
            scope,
            &sql("SELECT tenant_id, document_id FROM t_document_catalogues WHERE tenant_id = ?1 ORDER BY document_id"),
            params![scope.tenant_id().as_str()],
        )?;
        rows.into_iter()
            .filter(|row| Self::row_is_ours(scope, &row.0))
            .map(|(_, id)| {
                DocumentId::try_from(id.as_str()).map_err(|_| StoreError::DocumentNotFound(id))
            })
            .collect()
    }

    /// One document's catalogue, if it has one.
    pub fn catalogue(
        &self,
        scope: &TenantScope,
        document_id: &DocumentId,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .catalogues(scope)?
            .into_iter()
            .find(|(id, _)| id == document_id)
            .map(|(_, text)| text))
    }
}
