//! Customer-held keys (issue 12, BYOK) for enterprise tenants: enrolment, unlock (with a
//! bound on wrong keys) and lock, each audited in the tenant's own log. The keys
//! themselves are `store::customer_key`'s; this adds the rules around them.

use std::time::Duration;

use super::*;
use crate::crypto::{CustomerIdentity, CustomerRecipient};

/// Wrong keys tolerated before unlocking the tenant is refused for [`UNLOCK_LOCKOUT`].
pub const MAX_UNLOCK_FAILURES: u32 = 5;
/// How long unlocking stays refused after [`MAX_UNLOCK_FAILURES`] wrong keys; also how long
/// a wrong key counts towards them.
pub const UNLOCK_LOCKOUT: Duration = Duration::from_secs(15 * 60);

/// Wrong keys given for one tenant (this process's memory only, like the keys).
#[derive(Default)]
pub(super) struct UnlockFailures {
    count: u32,
    first_at: Option<Instant>,
    refused_until: Option<Instant>,
}

impl Appliance {
    /// Wraps an enterprise tenant's data key to the customer's age recipient (`age1…`)
    /// inside the master key's wrapping. The tenant is locked from then on, in this
    /// process too, until its admin unlocks it with the matching identity. Audited.
    pub fn enrol_customer_key(
        &self,
        tenant_id: &TenantId,
        recipient: &str,
        actor: &str,
    ) -> Result<CustomerRecipient, ApplianceError> {
        let tenant = self.store.find_tenant(tenant_id)?;
        if tenant.tier != Tier::Enterprise {
            return Err(ApplianceError::Conflict(format!(
                "a customer-held key is for the enterprise tier; tenant {tenant_id} is {}: create it with `--tier enterprise`",
                tenant.tier.as_str()
            )));
        }
        let recipient = CustomerRecipient::parse(recipient).ok_or_else(|| {
            ApplianceError::InvalidRequest(
                "the customer key must be an age X25519 recipient (`age1...`, printed by `age-keygen`)".into(),
            )
        })?;
        let scope = auth::operator_scope(tenant_id.clone(), OperatorReason::CustomerKey);
        self.store.enrol_customer_key(&scope, &recipient)?;
        lock(&self.open_tenants).remove(tenant_id);
        self.audit(&crate::audit::AuditEvent {
            tenant_id: Some(tenant_id.to_string()),
            actor: actor.to_owned(),
            action: "tenant.customer_key.enrol",
            resource: format!("customer key {}", recipient.as_str()),
            outcome: crate::audit::Outcome::Ok,
        })?;
        Ok(recipient)
    }

    /// Unlocks the scope's tenant with its customer's age identity, held in this process's
    /// memory until [`Appliance::lock_tenant`] or exit. A wrong key is
    /// `StoreError::CustomerKeyRejected`, audited; after [`MAX_UNLOCK_FAILURES`] of them
    /// every attempt is `UnlockRefused` for [`UNLOCK_LOCKOUT`], the right key too.
    pub fn unlock_tenant(
        &self,
        scope: &TenantScope,
        identity: &str,
        actor: &str,
    ) -> Result<(), ApplianceError> {
        let tenant_id = scope.tenant_id();
        if let Some(retry_after) = self.unlock_refused_for(tenant_id) {
            return Err(ApplianceError::UnlockRefused {
                retry_after_seconds: retry_after.as_secs().max(1),
            });
        }
        let identity = CustomerIdentity::parse(identity).ok_or_else(|| {
            ApplianceError::InvalidRequest(
                "the key file must hold an age identity (`AGE-SECRET-KEY-1...`, as `age-keygen` writes it)".into(),
            )
        })?;
        let event = |outcome, resource: &str| crate::audit::AuditEvent {
            tenant_id: Some(tenant_id.to_string()),
            actor: actor.to_owned(),
            action: "tenant.unlock",
            resource: resource.to_owned(),
            outcome,
        };
        match self.store.unlock_tenant(tenant_id, identity) {
            Ok(()) => {
                lock(&self.unlock_failures).remove(tenant_id);
                self.audit(&event(crate::audit::Outcome::Ok, "customer key"))?;
                Ok(())
            }
            Err(StoreError::CustomerKeyRejected) => {
                let failures = self.count_unlock_failure(tenant_id);
                let resource = format!("wrong customer key ({failures} of {MAX_UNLOCK_FAILURES})");
                self.audit(&event(crate::audit::Outcome::Denied, &resource))?;
                Err(StoreError::CustomerKeyRejected.into())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Drops the tenant's customer key, data key and open index from this process's
    /// memory: its data cannot be read again until it is unlocked. Audited.
    pub fn lock_tenant(&self, tenant_id: &TenantId, actor: &str) -> Result<(), ApplianceError> {
        if self.store.customer_recipient(tenant_id)?.is_none() {
            return Err(StoreError::NoCustomerKey(tenant_id.to_string()).into());
        }
        self.store.lock_tenant(tenant_id);
        lock(&self.open_tenants).remove(tenant_id);
        self.audit(&crate::audit::AuditEvent {
            tenant_id: Some(tenant_id.to_string()),
            actor: actor.to_owned(),
            action: "tenant.lock",
            resource: "customer key dropped from memory".into(),
            outcome: crate::audit::Outcome::Ok,
        })?;
        Ok(())
    }

    /// Whether the tenant has a customer-held key this process does not hold now.
    pub fn tenant_locked(&self, tenant_id: &TenantId) -> Result<bool, ApplianceError> {
        Ok(self.store.tenant_locked(tenant_id)?)
    }

    /// The customer recipient of a BYOK tenant (`None` for the others).
    pub fn customer_recipient(
        &self,
        tenant_id: &TenantId,
    ) -> Result<Option<String>, ApplianceError> {
        Ok(self.store.customer_recipient(tenant_id)?)
    }

    /// How long unlocking the tenant stays refused, if it is.
    fn unlock_refused_for(&self, tenant_id: &TenantId) -> Option<Duration> {
        let now = Instant::now();
        lock(&self.unlock_failures)
            .get(tenant_id)
            .and_then(|failures| failures.refused_until)
            .and_then(|until| until.checked_duration_since(now))
            .filter(|left| !left.is_zero())
    }

    /// Counts a wrong key; returns how many count now (the oldest expires after
    /// [`UNLOCK_LOCKOUT`]), and starts the refusal at [`MAX_UNLOCK_FAILURES`].
    fn count_unlock_failure(&self, tenant_id: &TenantId) -> u32 {
        let now = Instant::now();
        let mut all = lock(&self.unlock_failures);
        let failures = all.entry(tenant_id.clone()).or_default();
        let expired = failures
            .first_at
            .is_none_or(|first| now.duration_since(first) >= UNLOCK_LOCKOUT);
        if expired {
            *failures = UnlockFailures {
                count: 0,
                first_at: Some(now),
                refused_until: None,
            };
        }
        failures.count += 1;
        if failures.count >= MAX_UNLOCK_FAILURES {
            failures.refused_until = Some(now + UNLOCK_LOCKOUT);
        }
        failures.count
    }
}
