//! The audit log's storage: the one writer of the hash chain (every append, from HTTP, the
//! CLI or the store itself, goes through [`Store::append_audit`], which writes the signed
//! checkpoint when one is due), and its readers. Hashing and verification are
//! [`crate::audit`]'s.
//!
//! **Group commit** (issue 11, finding 6): appends that arrive while another is being
//! committed queue up and are chained and committed together, in one transaction and one
//! fsync, by the first of them to find no commit in progress. Each still gets its own sequence
//! number, hash and result; every 100th entry's signed checkpoint is in the same
//! transaction as the entry. When a batch fails (a checkpoint that cannot be signed), its
//! entries are appended one by one, so only the failing entry fails.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use rusqlite::types::Value;
use rusqlite::{OptionalExtension, params};

use super::rows::sql;
use super::{Store, StoreError};
use crate::audit::{self, AuditEvent, CheckpointSigner};
use crate::auth::TenantScope;
use crate::crypto::CryptoError;
use crate::ids::TenantId;

/// One stored audit event.
#[derive(Clone, Debug)]
pub struct AuditRow {
    pub seq: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub outcome: String,
}

/// Reads audit columns whatever their stored type, noting the first that is not the type
/// the appliance writes.
#[derive(Default)]
struct Lenient {
    problem: Option<String>,
}

impl Lenient {
    fn wrong(&mut self, column: &str, expected: &str, value: &Value) {
        if self.problem.is_none() {
            let found = match value {
                Value::Null => "null",
                Value::Integer(_) => "an integer",
                Value::Real(_) => "a real number",
                Value::Text(_) => "text",
                Value::Blob(_) => "a blob",
            };
            self.problem = Some(format!("column `{column}` holds {found}, not {expected}"));
        }
    }

    fn integer(&mut self, column: &str, value: Value) -> i64 {
        match value {
            Value::Integer(number) => number,
            other => {
                self.wrong(column, "an integer", &other);
                0
            }
        }
    }

    fn text(&mut self, column: &str, value: Value) -> String {
        match value {
            Value::Text(text) => text,
            other => {
                self.wrong(column, "text", &other);
                String::from_utf8_lossy(&Self::bytes(other)).into_owned()
            }
        }
    }

    fn blob(&mut self, column: &str, value: Value) -> Vec<u8> {
        match value {
            Value::Blob(bytes) => bytes,
            other => {
                self.wrong(column, "a blob", &other);
                Self::bytes(other)
            }
        }
    }

    fn bytes(value: Value) -> Vec<u8> {
        match value {
            Value::Null => Vec::new(),
            Value::Integer(number) => number.to_string().into_bytes(),
            Value::Real(number) => number.to_string().into_bytes(),
            Value::Text(text) => text.into_bytes(),
            Value::Blob(bytes) => bytes,
        }
    }
}

/// Appends waiting to be committed, and the results of those another append committed
/// for them.
#[derive(Default)]
pub(super) struct AuditQueue {
    // std mutex: held for a push or a swap, never across SQLite work or an await.
    pending: Mutex<Pending>,
    // Signalled when a batch has committed (or failed).
    committed: Condvar,
    commits: AtomicU64,
}

#[derive(Default)]
struct Pending {
    next_ticket: u64,
    // Whether an append is committing a batch now.
    committing: bool,
    waiting: Vec<(u64, AuditEvent)>,
    done: HashMap<u64, Result<(i64, [u8; 32]), StoreError>>,
}

/// Lets the waiting appends go on when the one committing their batch panics.
struct Committing<'a>(&'a AuditQueue);

impl Drop for Committing<'_> {
    fn drop(&mut self) {
        self.0.lock().committing = false;
        self.0.committed.notify_all();
    }
}

impl AuditQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Store {
    /// Installs the signer of the audit checkpoints (the appliance key). Whoever opens the
    /// store for writing installs it (`Appliance::open`). Without one, appending an entry
    /// that needs a checkpoint fails closed ([`StoreError::CheckpointUnsigned`]) rather
    /// than leaving a gap in the signed record: the store cannot load the key itself,
    /// since signing keys are `auth::tokens`' and `auth::tokens` depends on nothing here.
    pub fn set_checkpoint_signer(&mut self, signer: Arc<dyn CheckpointSigner>) {
        self.checkpoint_signer = Some(signer);
    }

    /// Appends an audit event (see [`crate::audit`]): the one way anything writes to the
    /// audit log.
    ///
    /// The entry is chained to the last one inside an immediate transaction, so appends
    /// from several processes on one data directory still form a single chain. Every
    /// [`audit::CHECKPOINT_EVERY`]th entry is committed together with a checkpoint of the
    /// chain head signed by the installed signer, or not at all. Appends arriving together
    /// share one transaction (group commit, see the module's documentation).
    /// Returns the new entry's sequence number and hash.
    pub fn append_audit(&self, event: &AuditEvent) -> Result<(i64, [u8; 32]), StoreError> {
        let queue = &self.audit_queue;
        let mut pending = queue.lock();
        let ticket = pending.next_ticket;
        pending.next_ticket += 1;
        pending.waiting.push((ticket, event.clone()));
        loop {
            if let Some(result) = pending.done.remove(&ticket) {
                return result;
            }
            if pending.committing {
                // Another append is committing: this one waits, queued, and is committed
                // with the others that arrive meanwhile.
                pending = queue
                    .committed
                    .wait(pending)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                continue;
            }
            if !pending
                .waiting
                .iter()
                .any(|(waiting, _)| *waiting == ticket)
            {
                // Taken by an append that panicked while committing it.
                return Err(StoreError::Io(std::io::Error::other(
                    "the audit entry was lost in a failed commit: see the log",
                )));
            }
            pending.committing = true;
            let batch = std::mem::take(&mut pending.waiting);
            drop(pending);
            let committing = Committing(queue);
            let results = {
                let mut connection = self.connection();
                self.append_batch(&mut connection, &batch)
            };
            std::mem::forget(committing);
            pending = queue.lock();
            pending.committing = false;
            for ((waiting, _), result) in batch.iter().zip(results) {
                pending.done.insert(*waiting, result);
            }
            queue.committed.notify_all();
        }
    }

    /// How many transactions have committed audit entries since the store was opened (fewer
    /// than the entries when appends were grouped).
    pub fn audit_commits(&self) -> u64 {
        self.audit_queue.commits.load(Ordering::Relaxed)
    }

    /// Appends `batch` in one transaction; if that fails, each entry in one of its own.
    fn append_batch(
        &self,
        connection: &mut rusqlite::Connection,
        batch: &[(u64, AuditEvent)],
    ) -> Vec<Result<(i64, [u8; 32]), StoreError>> {
        let events: Vec<&AuditEvent> = batch.iter().map(|(_, event)| event).collect();
        match self.append_in_transaction(connection, &events) {
            Ok(appended) => appended.into_iter().map(Ok).collect(),
            Err(error) if events.len() == 1 => vec![Err(error)],
            Err(_) => events
                .iter()
                .map(|event| {
                    self.append_in_transaction(connection, std::slice::from_ref(event))
                        .map(|appended| appended[0])
                })
                .collect(),
        }
    }

    /// Chains `events` after the last entry and commits them, with the checkpoints that
    /// fall among them, in one immediate transaction: all or nothing.
    fn append_in_transaction(
        &self,
        connection: &mut rusqlite::Connection,
        events: &[&AuditEvent],
    ) -> Result<Vec<(i64, [u8; 32])>, StoreError> {
        let transaction =
            connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Whatever the last row holds, even if it was edited behind the appliance's back
        // (`audit verify` reports that): the log keeps being written.
        let last: Option<Vec<u8>> = transaction
            .query_row(
                "SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1",
                [],
                |row| Ok(Lenient::default().blob("hash", row.get::<_, Value>(0)?)),
            )
            .optional()?;
        // AUTOINCREMENT never reuses a number, even after the last row is deleted.
        let first_seq: i64 = transaction.query_row(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit_events'), 0) + 1",
            [],
            |row| row.get(0),
        )?;
        let mut prev_hash = last.unwrap_or_else(|| audit::GENESIS.to_vec());
        let mut appended = Vec::with_capacity(events.len());
        for (next_seq, event) in (first_seq..).zip(events) {
            let at = crate::time::now();
            let hash = audit::entry_hash(
                &prev_hash,
                next_seq,
                at,
                event.tenant_id.as_deref(),
                &event.actor,
                event.action,
                &event.resource,
                event.outcome.as_str(),
            );
            transaction.execute(
                "INSERT INTO audit_events (seq, at, tenant_id, actor, action, resource, outcome, prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    next_seq,
                    at,
                    event.tenant_id,
                    event.actor,
                    event.action,
                    event.resource,
                    event.outcome.as_str(),
                    prev_hash,
                    hash.to_vec()
                ],
            )?;
            if audit::needs_checkpoint(next_seq) {
                let jws = self.sign_checkpoint(next_seq, &hash)?;
                transaction.execute(
                    "INSERT OR REPLACE INTO audit_checkpoints (seq, head, at, jws) VALUES (?1, ?2, ?3, ?4)",
                    params![next_seq, hash.to_vec(), at, jws],
                )?;
            }
            appended.push((next_seq, hash));
            prev_hash = hash.to_vec();
        }
        transaction.commit()?;
        self.audit_queue.commits.fetch_add(1, Ordering::Relaxed);
        Ok(appended)
    }

    fn sign_checkpoint(&self, seq: i64, head: &[u8]) -> Result<String, StoreError> {
        let unsigned = |reason: String| {
            tracing::error!(seq, %reason, "audit checkpoint not signed: entry refused");
            StoreError::CheckpointUnsigned { seq, reason }
        };
        let signer = self
            .checkpoint_signer
            .as_ref()
            .ok_or_else(|| unsigned("no signing key installed".into()))?;
        signer
            .sign_checkpoint(seq, head)
            .map_err(|error| unsigned(error.to_string()))
    }

    /// Verifies the stored chain and its signed checkpoints (see [`audit::verify`]).
    pub fn verify_audit(
        &self,
        verifier: &dyn audit::CheckpointVerifier,
    ) -> Result<audit::VerifyReport, StoreError> {
        let entries = self.audit_chain()?;
        let checkpoints = self.audit_checkpoints()?;
        Ok(audit::verify(&entries, &checkpoints, verifier))
    }

    /// Every checkpoint: (seq, head, jws).
    pub fn audit_checkpoints(&self) -> Result<Vec<(i64, Vec<u8>, String)>, StoreError> {
        let connection = self.connection();
        let mut statement =
            connection.prepare("SELECT seq, head, jws FROM audit_checkpoints ORDER BY seq")?;
        // Read whatever was stored: a checkpoint edited behind the appliance's back fails
        // its signature check in `audit::verify`, rather than the read.
        let rows = statement
            .query_map([], |row| {
                let mut read = Lenient::default();
                Ok((
                    read.integer("seq", row.get(0)?),
                    read.blob("head", row.get(1)?),
                    read.text("jws", row.get(2)?),
                ))
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// The whole audit chain in `seq` order (maintenance access for verification: no
    /// content, only pseudonyms, ids and actions). A row whose column was given another
    /// type behind the appliance's back is read anyway and marked malformed, so that
    /// verification names it and nothing else (a tenant's deletion above all) fails on it.
    pub fn audit_chain(&self) -> Result<Vec<audit::ChainEntry>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare(
            "SELECT seq, at, tenant_id, actor, action, resource, outcome, prev_hash, hash FROM audit_events ORDER BY seq",
        )?;
        let entries = statement
            .query_map([], |row| {
                let mut read = Lenient::default();
                let value = |index| row.get::<_, Value>(index);
                Ok(audit::ChainEntry {
                    seq: read.integer("seq", value(0)?),
                    at: read.integer("at", value(1)?),
                    tenant_id: match value(2)? {
                        Value::Null => None,
                        other => Some(read.text("tenant_id", other)),
                    },
                    actor: read.text("actor", value(3)?),
                    action: read.text("action", value(4)?),
                    resource: read.text("resource", value(5)?),
                    outcome: read.text("outcome", value(6)?),
                    prev_hash: read.blob("prev_hash", value(7)?),
                    hash: read.blob("hash", value(8)?),
                    malformed: read.problem,
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(entries)
    }

    /// A keyed pseudonym for a user of this tenant (or of the platform when `None`).
    pub fn pseudonym(&self, tenant_id: Option<&TenantId>, subject: &str) -> String {
        let key = tenant_id
            .map(|tenant| {
                crate::auth::operator_scope(tenant.clone(), crate::auth::OperatorReason::Audit)
            })
            .and_then(|scope| self.data_key(&scope).ok())
            .unwrap_or_else(|| self.master_key.clone());
        audit::pseudonym(key.expose(), subject)
    }

    /// Audit events of one tenant, oldest first (`seq`, `at`, actor, action, resource,
    /// outcome), read through the tenant connection's view of the log.
    pub fn audit_events(&self, scope: &TenantScope) -> Result<Vec<AuditRow>, StoreError> {
        type Row = (Value, Value, Value, Value, Value, Value, Value);
        let rows: Vec<Row> = self.tenant_rows(
            scope,
            &sql(
                "SELECT tenant_id, seq, at, actor, action, resource, outcome FROM t_audit_events
                 WHERE tenant_id = ?1 ORDER BY seq",
            ),
            params![scope.tenant_id().as_str()],
        )?;
        // Read whatever was stored (`audit verify` names a row edited behind the
        // appliance's back; listing the log does not fail on it).
        Ok(rows
            .into_iter()
            .filter_map(|(tenant, seq, at, actor, action, resource, outcome)| {
                let mut read = Lenient::default();
                let tenant = read.text("tenant_id", tenant);
                Self::row_is_ours(scope, &tenant).then(|| AuditRow {
                    seq: read.integer("seq", seq),
                    at: read.integer("at", at),
                    actor: read.text("actor", actor),
                    action: read.text("action", action),
                    resource: read.text("resource", resource),
                    outcome: read.text("outcome", outcome),
                })
            })
            .collect())
    }

    /// Passes a decryption result on; an integrity failure (tampering, a file or row moved
    /// between tenants or objects) is also logged and audited in the owning tenant's log —
    /// with ids only — before it becomes an error. It is never garbage returned to a user.
    pub(super) fn audited<T>(&self, result: Result<T, CryptoError>) -> Result<T, StoreError> {
        if let Err(CryptoError::Integrity {
            tenant,
            kind,
            object_id,
        }) = &result
        {
            tracing::error!(
                tenant = tenant.as_deref().unwrap_or("-"),
                kind,
                object_id,
                "integrity check failed"
            );
            self.audit_by_appliance(
                tenant.clone(),
                "integrity.failure",
                format!("{kind} {object_id}"),
                audit::Outcome::Failed,
            );
        }
        Ok(result?)
    }

    /// Audits something the appliance itself detected (ids only); a failed append is
    /// logged, never allowed to hide the original error.
    pub(super) fn audit_by_appliance(
        &self,
        tenant_id: Option<String>,
        action: &'static str,
        resource: String,
        outcome: audit::Outcome,
    ) {
        let event = AuditEvent {
            tenant_id,
            actor: "appliance".into(),
            action,
            resource,
            outcome,
        };
        if let Err(error) = self.append_audit(&event) {
            tracing::error!(%error, "audit append failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{new_tenant, temp_store};
    use super::*;
    use crate::audit::{CheckpointError, CheckpointVerifier, Outcome};

    /// Signs by writing the payload out: enough to see what was signed and when.
    struct FakeSigner;

    impl CheckpointSigner for FakeSigner {
        fn sign_checkpoint(&self, seq: i64, head: &[u8]) -> Result<String, CheckpointError> {
            Ok(audit::checkpoint_payload(seq, head).to_string())
        }
    }

    impl CheckpointVerifier for FakeSigner {
        fn verified_payload(&self, jws: &str) -> Option<serde_json::Value> {
            serde_json::from_str(jws).ok()
        }
    }

    fn event(action: &'static str) -> AuditEvent {
        AuditEvent {
            tenant_id: Some("t_0123456789abcdef0123".into()),
            actor: "u_test".into(),
            action,
            resource: "r".into(),
            outcome: Outcome::Ok,
        }
    }

    #[test]
    fn appended_entries_form_a_chain_that_verifies() {
        let (_dir, store) = temp_store();
        let (first, first_hash) = store.append_audit(&event("ask")).unwrap();
        let (second, _) = store.append_audit(&event("search")).unwrap();
        assert_eq!((first, second), (1, 2));
        let chain = store.audit_chain().unwrap();
        assert_eq!(chain[1].prev_hash, first_hash);
        assert_eq!(chain[1].action, "search");
        let report = store.verify_audit(&FakeSigner).unwrap();
        assert!(report.ok);
        assert_eq!(report.entries, 2);
    }

    /// Issue 14: every append path checkpoints — entry 100 written by anyone (the CLI,
    /// tenant deletion, the store's own integrity audits) gets its signed checkpoint.
    #[test]
    fn every_hundredth_entry_is_checkpointed_or_not_written() {
        let (dir, mut store) = temp_store();
        for _ in 1..audit::CHECKPOINT_EVERY {
            store.append_audit(&event("ask")).unwrap();
        }
        // Without a signer the entry that needs a checkpoint fails closed, and nothing of
        // it is written.
        assert!(matches!(
            store.append_audit(&event("ask")),
            Err(StoreError::CheckpointUnsigned { seq: 100, .. })
        ));
        assert_eq!(store.audit_chain().unwrap().len(), 99);
        assert!(store.audit_checkpoints().unwrap().is_empty());

        store.set_checkpoint_signer(Arc::new(FakeSigner));
        let (seq, head) = store.append_audit(&event("ask")).unwrap();
        assert_eq!(seq, 100);
        let checkpoints = store.audit_checkpoints().unwrap();
        assert_eq!(checkpoints.len(), 1);
        assert_eq!(
            (checkpoints[0].0, checkpoints[0].1.as_slice()),
            (100, &head[..])
        );
        assert!(store.verify_audit(&FakeSigner).unwrap().ok);

        // The store's own integrity audit goes through the same writer.
        let alpha = new_tenant(&store, "Alpha");
        let document_id = store.put_document(&alpha, "a.txt", None, b"a").unwrap();
        let blob = dir
            .path()
            .join("tenants")
            .join(alpha.tenant_id().as_str())
            .join("blobs")
            .join(format!("{document_id}.bin"));
        let mut sealed = std::fs::read(&blob).unwrap();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        std::fs::write(&blob, sealed).unwrap();
        assert!(store.document_original(&alpha, &document_id).is_err());
        let chain = store.audit_chain().unwrap();
        let failure = chain.last().unwrap();
        assert_eq!(
            (failure.seq, failure.action.as_str(), failure.actor.as_str()),
            (101, "integrity.failure", "appliance")
        );
        let events = store.audit_events(&alpha).unwrap();
        assert_eq!(events.last().unwrap().action, "integrity.failure");
        assert!(store.verify_audit(&FakeSigner).unwrap().ok);
    }
}
