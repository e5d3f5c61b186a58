//! The audit log: an append-only record of who did what to which tenant's data.
//!
//! Entries live in the system database in a table that triggers make append-only. Users
//! appear only as keyed pseudonyms (a hash keyed with the tenant's data key, or the master
//! key for platform events), so the log can be kept after a user is forgotten. Entries
//! hold ids, actions and outcomes — never question text, file names or other content.
//! The tamper-evident hash chain and access reviews extend this module (compliance issue).

use serde::Serialize;

/// What happened, in a stable dotted vocabulary (`document.upload`, `access.denied`, ...).
#[derive(Clone, Debug)]
pub struct AuditEvent {
    /// `None` for appliance-wide events (tenant creation by a platform admin).
    pub tenant_id: Option<String>,
    /// A keyed pseudonym of the user, or a fixed label such as `external`.
    pub actor: String,
    pub action: &'static str,
    /// An id or a route template; never content.
    pub resource: String,
    pub outcome: Outcome,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    Denied,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }
}

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    tenant_id TEXT,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    resource TEXT NOT NULL,
    outcome TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_tenant ON audit_events(tenant_id, seq);
CREATE TRIGGER IF NOT EXISTS audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
";

/// A keyed pseudonym: the same user maps to the same string under one key, and nothing
/// about the user can be read from it without the key.
pub fn pseudonym(key: &[u8], subject: &str) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(b"bulkhead/audit-pseudonym/v1");
    hasher.update((key.len() as u32).to_le_bytes());
    hasher.update(key);
    hasher.update(subject.as_bytes());
    format!("u_{}", hex::encode(&hasher.finalize()[..12]))
}
