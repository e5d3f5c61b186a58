//! The appliance's audit door: every front end (HTTP, CLI) records what it did to a
//! tenant's data here, and reads the log, usage and tenant records through here instead
//! of reaching into the store.

use super::*;
use crate::audit::{AuditEvent, Outcome, VerifyReport};
use crate::store::{AuditRow, Usage};

impl Appliance {
    /// Appends an event to the hash-chained log (a durable commit), with the signed
    /// checkpoint every 100th entry needs, whichever door the event came through.
    pub fn audit(&self, event: &AuditEvent) -> Result<(), ApplianceError> {
        self.store.append_audit(event)?;
        Ok(())
    }

    /// Records an action of the local operator (who holds the master key and needs no
    /// token) on a tenant's data: in the tenant's log as an operator action, the operator
    /// pseudonymised like a user, with the reason spelled out.
    pub fn audit_operator(
        &self,
        scope: &TenantScope,
        reason: OperatorReason,
        action: &'static str,
        resource: &str,
    ) -> Result<(), ApplianceError> {
        let operator = std::env::var("USER").unwrap_or_else(|_| "operator".to_owned());
        self.audit(&AuditEvent {
            tenant_id: Some(scope.tenant_id().to_string()),
            actor: format!(
                "operator:{}",
                self.pseudonym(Some(scope.tenant_id()), &operator)
            ),
            action,
            resource: format!("{resource} [{}]", reason.as_str()),
            outcome: Outcome::Ok,
        })
    }

    /// A keyed pseudonym of a user of this tenant (or of the platform when `None`).
    pub fn pseudonym(&self, tenant_id: Option<&TenantId>, subject: &str) -> String {
        let pseudonym = self.store.pseudonym(tenant_id, subject);
        // The main server keeps no enterprise tenant's data key (issue 12): the one just
        // used (unwrapped to key the pseudonym) is dropped again at once.
        if let Some(tenant_id) = tenant_id
            && !self.served_here(tenant_id).unwrap_or(true)
        {
            self.store.lock_tenant(tenant_id);
        }
        pseudonym
    }

    /// The tenant's audit events, oldest first.
    pub fn audit_events(&self, scope: &TenantScope) -> Result<Vec<AuditRow>, ApplianceError> {
        Ok(self.store.audit_events(scope)?)
    }

    /// Recomputes the hash chain and checks the signed checkpoints with `verifier`.
    pub fn verify_audit(
        &self,
        verifier: &dyn crate::audit::CheckpointVerifier,
    ) -> Result<VerifyReport, ApplianceError> {
        Ok(self.store.verify_audit(verifier)?)
    }

    /// The tenant's usage between `from` (inclusive) and `to` (exclusive), Unix seconds.
    pub fn usage(&self, scope: &TenantScope, from: i64, to: i64) -> Result<Usage, ApplianceError> {
        Ok(self.store.usage(scope, from, to)?)
    }

    /// Meters one query of the tenant (counts and token numbers only).
    pub fn record_usage(
        &self,
        scope: &TenantScope,
        kind: &str,
        tokens_in: usize,
        tokens_out: usize,
    ) -> Result<(), ApplianceError> {
        Ok(self
            .store
            .record_usage(scope, kind, tokens_in, tokens_out)?)
    }

    /// The tenant's record; `TenantNotFound` once it is deleted.
    pub fn find_tenant(&self, tenant_id: &TenantId) -> Result<TenantRecord, ApplianceError> {
        Ok(self.store.find_tenant(tenant_id)?)
    }
}
