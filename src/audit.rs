//! The audit log: an append-only record of who did what to which tenant's data.
//!
//! Entries live in the system database in a table that triggers make append-only. Users
//! appear only as keyed pseudonyms (a hash keyed with the tenant's data key, or the master
//! key for platform events), so the log can be kept after a user is forgotten. Entries
//! hold ids, actions and outcomes — never question text, file names or other content.
//!
//! Tamper evidence: each entry stores the hash of the previous entry and its own hash over
//! all its fields and that previous hash ([`entry_hash`]). [`verify_chain`] recomputes the
//! chain and names the first entry that was changed, removed or reordered; every
//! [`CHECKPOINT_EVERY`]th entry gets a checkpoint of the chain head signed through a
//! [`CheckpointSigner`], which [`verify_checkpoints`] checks.
//!
//! Pure: hashing and verification only. Persisting entries is `store::audit_log`'s job
//! (the one writer); signing keys are `auth::tokens`'. This module imports neither.

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
    outcome TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_tenant ON audit_events(tenant_id, seq);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    seq INTEGER PRIMARY KEY,
    head BLOB NOT NULL,
    at INTEGER NOT NULL,
    jws TEXT NOT NULL
);
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

/// A signed checkpoint is written every this many entries.
pub const CHECKPOINT_EVERY: i64 = 100;

/// Whether the entry with this sequence number gets a signed checkpoint of the chain head.
pub fn needs_checkpoint(seq: i64) -> bool {
    seq % CHECKPOINT_EVERY == 0
}

/// What a checkpoint signs: the chain head (hex) at entry `seq`.
pub fn checkpoint_payload(seq: i64, head: &[u8]) -> serde_json::Value {
    serde_json::json!({"type": "bulkhead.audit_checkpoint", "seq": seq, "head": hex::encode(head)})
}

/// Why a checkpoint could not be signed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CheckpointError(pub String);

/// Signs checkpoints of the chain head with the appliance key. Implemented by
/// `auth::tokens::Signer` and handed to the store by whoever opens it, so the store — the
/// one audit writer — checkpoints without depending on `auth`.
pub trait CheckpointSigner: Send + Sync {
    /// A compact JWS over [`checkpoint_payload`]`(seq, head)`.
    fn sign_checkpoint(&self, seq: i64, head: &[u8]) -> Result<String, CheckpointError>;
}

/// Checks a checkpoint's signature against the appliance's public key.
pub trait CheckpointVerifier {
    /// The signed payload, or `None` when the signature is not the appliance's.
    fn verified_payload(&self, jws: &str) -> Option<serde_json::Value>;
}

/// Checks signed checkpoints (seq, head, jws) against the chain: each must verify with
/// the appliance key and name the hash the chain has at its position.
pub fn verify_checkpoints(
    entries: &[ChainEntry],
    checkpoints: &[(i64, Vec<u8>, String)],
    verifier: &dyn CheckpointVerifier,
) -> Result<usize, String> {
    for (seq, head, jws) in checkpoints {
        let payload = verifier
            .verified_payload(jws)
            .ok_or_else(|| format!("checkpoint at entry {seq} is not signed by this appliance"))?;
        let signed_head = payload["head"].as_str().unwrap_or_default();
        if payload["seq"] != *seq || signed_head != hex::encode(head) {
            return Err(format!("checkpoint at entry {seq} was altered"));
        }
        match entries.iter().find(|entry| entry.seq == *seq) {
            Some(entry) if hex::encode(&entry.hash) == signed_head => {}
            _ => {
                return Err(format!(
                    "the chain at entry {seq} differs from its signed checkpoint"
                ));
            }
        }
    }
    Ok(checkpoints.len())
}

/// Verifies a stored chain and its signed checkpoints: [`verify_chain`], then, if the
/// chain holds, [`verify_checkpoints`].
pub fn verify(
    entries: &[ChainEntry],
    checkpoints: &[(i64, Vec<u8>, String)],
    verifier: &dyn CheckpointVerifier,
) -> VerifyReport {
    let mut report = verify_chain(entries);
    if report.ok
        && let Err(problem) = verify_checkpoints(entries, checkpoints, verifier)
    {
        report.ok = false;
        report.problem = Some(problem);
    }
    report
}

/// The hash before the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// One stored entry with its chain fields.
#[derive(Clone, Debug)]
pub struct ChainEntry {
    pub seq: i64,
    pub at: i64,
    pub tenant_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub outcome: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
    /// Set when a stored column did not have its type (a row edited behind the
    /// appliance's back): which column, and what it held. Such an entry never verifies.
    pub malformed: Option<String>,
}

/// SHA-256 over the previous hash and every field, each length-prefixed so that no two
/// different entries encode alike.
#[allow(clippy::too_many_arguments)]
pub fn entry_hash(
    prev_hash: &[u8],
    seq: i64,
    at: i64,
    tenant_id: Option<&str>,
    actor: &str,
    action: &str,
    resource: &str,
    outcome: &str,
) -> [u8; 32] {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(b"bulkhead/audit/v1");
    hasher.update(prev_hash);
    hasher.update(seq.to_le_bytes());
    hasher.update(at.to_le_bytes());
    for field in [
        tenant_id.unwrap_or("\u{0}none"),
        actor,
        action,
        resource,
        outcome,
    ] {
        hasher.update((field.len() as u64).to_le_bytes());
        hasher.update(field.as_bytes());
    }
    hasher.finalize().into()
}

impl ChainEntry {
    fn computed_hash(&self) -> [u8; 32] {
        entry_hash(
            &self.prev_hash,
            self.seq,
            self.at,
            self.tenant_id.as_deref(),
            &self.actor,
            &self.action,
            &self.resource,
            &self.outcome,
        )
    }
}

/// The result of checking the chain (shown as `wire::AuditVerification`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    pub ok: bool,
    pub entries: usize,
    /// Hash of the last entry (hex); the genesis hash for an empty log.
    pub head: String,
    /// The first entry (by position) where the chain breaks.
    pub first_bad_seq: Option<i64>,
    pub problem: Option<String>,
}

/// Recomputes the chain over entries in `seq` order.
pub fn verify_chain(entries: &[ChainEntry]) -> VerifyReport {
    let mut expected_prev: Vec<u8> = GENESIS.to_vec();
    let mut previous_seq = 0i64;
    let broken = |entry: &ChainEntry, problem: String| VerifyReport {
        ok: false,
        entries: entries.len(),
        head: entries
            .last()
            .map(|e| hex::encode(&e.hash))
            .unwrap_or_else(|| hex::encode(GENESIS)),
        first_bad_seq: Some(entry.seq),
        problem: Some(problem),
    };
    for entry in entries {
        if let Some(problem) = &entry.malformed {
            return broken(
                entry,
                format!(
                    "entry {} was tampered with: {problem} (integrity error: the row was edited outside the appliance)",
                    entry.seq
                ),
            );
        }
        if entry.prev_hash != expected_prev {
            return broken(
                entry,
                format!(
                    "entry {} does not follow entry {previous_seq}: an entry before it was removed, inserted or reordered",
                    entry.seq
                ),
            );
        }
        if entry.computed_hash().as_slice() != entry.hash.as_slice() {
            return broken(
                entry,
                format!("entry {} was modified after it was written", entry.seq),
            );
        }
        if entry.seq <= previous_seq {
            return broken(entry, format!("entry {} is out of order", entry.seq));
        }
        expected_prev = entry.hash.clone();
        previous_seq = entry.seq;
    }
    VerifyReport {
        ok: true,
        entries: entries.len(),
        head: hex::encode(&expected_prev),
        first_bad_seq: None,
        problem: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(count: i64) -> Vec<ChainEntry> {
        let mut prev = GENESIS.to_vec();
        (1..=count)
            .map(|seq| {
                let mut entry = ChainEntry {
                    seq,
                    at: 1_700_000_000 + seq,
                    tenant_id: Some("t_0123456789abcdef0123".into()),
                    actor: "u_1".into(),
                    action: "ask".into(),
                    resource: "question".into(),
                    outcome: "ok".into(),
                    prev_hash: prev.clone(),
                    hash: Vec::new(),
                    malformed: None,
                };
                entry.hash = entry.computed_hash().to_vec();
                prev = entry.hash.clone();
                entry
            })
            .collect()
    }

    #[test]
    fn any_edit_removal_or_reordering_is_found_and_located() {
        let entries = chain(5);
        assert!(verify_chain(&entries).ok);
        let mut edited = entries.clone();
        edited[2].outcome = "denied".into();
        assert_eq!(verify_chain(&edited).first_bad_seq, Some(3));
        let mut removed = entries.clone();
        removed.remove(1);
        assert_eq!(verify_chain(&removed).first_bad_seq, Some(3));
        let mut reordered = entries.clone();
        reordered.swap(1, 2);
        assert_eq!(verify_chain(&reordered).first_bad_seq, Some(3));
        let mut mistyped = entries.clone();
        mistyped[3].malformed = Some("column `at` holds text".into());
        let report = verify_chain(&mistyped);
        assert_eq!(report.first_bad_seq, Some(4));
        assert!(report.problem.unwrap().contains("tampered"));
        let mut truncated_head = entries;
        truncated_head.remove(0);
        assert_eq!(verify_chain(&truncated_head).first_bad_seq, Some(2));
    }
}
