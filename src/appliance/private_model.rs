//! An enterprise tenant's own language model (issue 12): a GGUF pinned by its SHA-256,
//! checked and loaded in the process that answers for the tenant (its own, under `serve`;
//! the main server never loads it). A file that is missing or has another checksum makes
//! the tenant's asks fail with [`ApplianceError::PrivateModel`], naming the file and the
//! checksum it needs; the appliance's model is never used instead.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::*;
use crate::store::PrivateModel;

impl Appliance {
    /// Pins an enterprise tenant's own model (`None`: back to the appliance's model).
    /// Only the pin is checked here (an absolute path, 64 hex digits): the file may be
    /// copied onto the appliance later. Audited in the tenant's log.
    pub fn set_private_model(
        &self,
        tenant_id: &TenantId,
        model: Option<PrivateModel>,
        actor: &str,
    ) -> Result<Option<PrivateModel>, ApplianceError> {
        let tenant = self.store.find_tenant(tenant_id)?;
        if tenant.tier != Tier::Enterprise {
            return Err(ApplianceError::Conflict(format!(
                "a private model is for the enterprise tier; tenant {tenant_id} is {}",
                tenant.tier.as_str()
            )));
        }
        let model = model
            .map(|model| {
                let sha256 = model.sha256.trim().to_ascii_lowercase();
                if sha256.len() != 64 || !sha256.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                    return Err(ApplianceError::InvalidRequest(
                        "sha256 must be the model file's SHA-256, 64 hex digits (`sha256sum FILE`)"
                            .into(),
                    ));
                }
                if !model.path.is_absolute() {
                    return Err(ApplianceError::InvalidRequest(
                        "the model file must be an absolute path on the appliance".into(),
                    ));
                }
                Ok(PrivateModel {
                    path: model.path,
                    sha256,
                })
            })
            .transpose()?;
        self.store.set_private_model(tenant_id, model.as_ref())?;
        *lock(&self.private_generator) = None;
        let resource = match &model {
            Some(model) => format!("private model sha256 {}", model.sha256),
            None => "private model removed".into(),
        };
        self.audit(&crate::audit::AuditEvent {
            tenant_id: Some(tenant_id.to_string()),
            actor: actor.to_owned(),
            action: "tenant.model",
            resource,
            outcome: crate::audit::Outcome::Ok,
        })?;
        Ok(model)
    }

    /// The tenant's pinned model, if any.
    pub fn private_model(
        &self,
        tenant_id: &TenantId,
    ) -> Result<Option<PrivateModel>, ApplianceError> {
        Ok(self.store.private_model(tenant_id)?)
    }

    /// Every tenant's pinned model (`bulkhead doctor`).
    pub fn private_models(&self) -> Result<Vec<(TenantId, PrivateModel)>, ApplianceError> {
        Ok(self.store.private_models()?)
    }

    /// For a tenant with its own model: that model is there and checked (loading it),
    /// else the error naming the file and checksum it needs.
    pub(super) fn require_private_model(&self, tenant_id: &TenantId) -> Result<(), ApplianceError> {
        if self.store.private_model(tenant_id)?.is_some() {
            self.generator_for(tenant_id)?;
        }
        Ok(())
    }

    /// The model that answers for the tenant: its own when it has one pinned (checked
    /// against the pin, then loaded once), else the appliance's.
    pub(super) fn generator_for(
        &self,
        tenant_id: &TenantId,
    ) -> Result<Arc<Generator>, ApplianceError> {
        let Some(model) = self.store.private_model(tenant_id)? else {
            return self.generator();
        };
        // Its own process (or the command line): never the main server (`ProcessRole`).
        self.check_process_role(tenant_id)?;
        let mut slot = lock(&self.private_generator);
        if let Some((loaded, generator)) = slot.as_ref()
            && *loaded == model
        {
            return Ok(generator.clone());
        }
        check_model_file(&model).map_err(ApplianceError::PrivateModel)?;
        let generator = Arc::new(Generator::load(&model.path)?);
        *slot = Some((model, generator.clone()));
        Ok(generator)
    }
}

/// Checks a pinned model file: `Err` says which file and checksum the tenant needs.
pub fn check_model_file(model: &PrivateModel) -> Result<(), String> {
    let needs = format!(
        "this tenant answers with its own model {} (sha256 {})",
        model.path.display(),
        model.sha256
    );
    match sha256_of(&model.path) {
        Err(error) => Err(format!(
            "{needs}, which cannot be read ({error}): copy that file onto the appliance"
        )),
        Ok(actual) if actual != model.sha256 => Err(format!(
            "{needs}, but that file's sha256 is {actual}: put the pinned file there, or pin this one with `bulkhead tenant model`"
        )),
        Ok(_) => Ok(()),
    }
}

fn sha256_of(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex::encode(hasher.finalize()))
}
