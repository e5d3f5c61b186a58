//! Durable state: the SQLite system database, the encrypted original blobs and the
//! per-tenant directories, all under one data directory.
//!
//! Layout of the data directory:
//!
//! ```text
//! master.key            the key-encryption key (0600), unless given by environment
//! signing.key           the appliance's Ed25519 signing seed (0600; `auth::tokens` owns it)
//! system.db             SQLite (WAL): tenants, documents, chunks, jobs — tenant strings encrypted
//! indexer.lock          empty; its `flock` is the indexer lock (see `jobs`)
//! tenants/<tenant_id>/  blobs/<document_id>.bin, index/{text,vectors}.bin — all encrypted
//! ```
//!
//! Invariants: every tenant-provided string or vector is sealed with the tenant's data key
//! (see [`crate::crypto`]) before it reaches SQLite or a file, so neither the database, its
//! WAL, nor any file holds plaintext tenant content. Every query filters by the
//! [`TenantScope`]'s tenant. This module knows nothing about parsing, models or HTTP, and
//! nothing about signing keys: the audit checkpoint signer is handed to it
//! ([`Store::set_checkpoint_signer`]).
//!
//! Layout: this file holds the [`Store`] itself (opening, connections, sealing helpers);
//! each area has its own `impl Store` and types: [`tenants`], [`documents`], [`jobs`],
//! [`chunks`] (and index snapshots), [`credentials`] (invitations, revoked tokens), [`portable`] (export and import), [`usage`],
//! [`audit_log`]; [`rows`] is row security, [`files`] durable file writes.

mod audit_log;
mod catalogues;
mod chunks;
mod credentials;
mod customer_key;
mod documents;
pub mod files;
mod jobs;
mod master_key;
mod portable;
mod private_model;
mod rows;
mod tenants;
mod usage;

pub use audit_log::AuditRow;
pub use chunks::{ChunkRecord, ChunkVector, NewChunk};
pub use credentials::{INVITATION_TTL_SECONDS, Invitation, IssuedToken};
pub use documents::{DOCUMENT_COLUMNS, DocumentRecord, DocumentStatus};
pub use jobs::{INDEXER_LOCK_FILE, IndexJob, IndexerLock, JOB_LEASE_SECONDS};
pub use master_key::NEXT_MASTER_KEY_FILE;
pub use portable::{DocumentImport, ExportedDocument};
pub use private_model::PrivateModel;
pub use tenants::{TenantDeletion, TenantRecord, Tier};
pub use usage::Usage;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use crate::audit::CheckpointSigner;
use crate::auth::TenantScope;
use crate::crypto::{self, Aad, CryptoError, ObjectKind, SecretKey};
use crate::ids::{DocumentId, TenantId};
use crate::isolation::{Layer, enabled};
use rows::{TenantConnection, TenantDb};

pub const MASTER_KEY_FILE: &str = "master.key";
pub const DATABASE_FILE: &str = "system.db";
pub const MASTER_KEY_ENV: &str = "BULKHEAD_MASTER_KEY";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data directory {0} is not initialised: run `bulkhead init`")]
    NotInitialised(PathBuf),
    #[error(
        "the master key does not match this data directory: use the key file `bulkhead init` created for it, or set {MASTER_KEY_ENV} to that key"
    )]
    WrongMasterKey,
    #[error("no tenant with id {0}: `bulkhead tenant list` shows the tenants")]
    TenantNotFound(String),
    #[error("no document with id {0}")]
    DocumentNotFound(String),
    /// A BYOK tenant whose customer-held key this process does not hold (issue 12).
    #[error(
        "tenant {0} is locked: its data key is wrapped by a key its customer holds; its admin unlocks it with `POST /v1/tenants/{0}/unlock` or `bulkhead tenant unlock {0} --key-file FILE`"
    )]
    TenantLocked(String),
    #[error(
        "this key does not open the tenant's data key: give the age identity (AGE-SECRET-KEY-1...) whose recipient was enrolled"
    )]
    CustomerKeyRejected,
    #[error(
        "tenant {0} has no customer-held key: enrol one with `bulkhead tenant byok {0} --recipient age1...`"
    )]
    NoCustomerKey(String),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The application scope refused an object that says it belongs to another tenant.
    #[error("isolation violation: {kind} {object_id} is not this tenant's")]
    NotThisTenant {
        kind: &'static str,
        object_id: String,
    },
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("file error: {0}")]
    Io(#[from] std::io::Error),
    /// The audit entry was not written: it needs a signed checkpoint and none could be made.
    #[error(
        "audit entry {seq} not written: its checkpoint could not be signed ({reason}): check the signing key `bulkhead init` created"
    )]
    CheckpointUnsigned { seq: i64, reason: String },
    /// The master key comes from the environment: it is rotated where it is kept.
    #[error(
        "the master key comes from {MASTER_KEY_ENV}: rotate it where it is kept, or unset it to use the key file"
    )]
    MasterKeyInEnvironment,
    /// Another indexer took this job over (its lease ran out): its result is dropped.
    #[error("the indexing job of document {0} was taken over by another indexer")]
    JobLost(String),
}

/// The appliance's durable state. Cheap to share behind an `Arc`.
pub struct Store {
    root: PathBuf,
    master_key: SecretKey,
    // A std mutex: every critical section is a short synchronous SQLite call, never held
    // across an `.await`, and callers run on blocking threads.
    connection: Mutex<Connection>,
    // Tenant data is read and written only through this one, bound to a scope's tenant
    // (row security, see `rows`).
    tenant_connection: TenantConnection,
    // Unwrapped data keys, so each request does not pay an unwrap. std mutex, as above.
    data_keys: Mutex<HashMap<TenantId, SecretKey>>,
    // The customer-held identities of unlocked BYOK tenants: memory only, never written
    // (see `customer_key`). std mutex, as above; taken before `data_keys` when both are.
    customer_identities: Mutex<HashMap<TenantId, crypto::CustomerIdentity>>,
    // The `data_version` at which the cached keys were last checked against the tenants
    // table (a tenant deleted by another process drops its key).
    keys_checked_version: Mutex<Option<i64>>,
    // Signs the audit checkpoint every `audit::CHECKPOINT_EVERY` entries; installed by
    // whoever opens the store with the appliance key (see `audit_log`).
    checkpoint_signer: Option<Arc<dyn CheckpointSigner>>,
    // Audit entries waiting to be appended together (group commit, see `audit_log`).
    audit_queue: audit_log::AuditQueue,
    // This store's name as the owner of the jobs it claims (see `jobs`).
    owner: String,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS appliance (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS tenants (
    tenant_id TEXT PRIMARY KEY,
    name_sealed BLOB NOT NULL,
    tier TEXT NOT NULL,
    key_id TEXT NOT NULL,
    wrapped_key BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    -- The customer's age recipient (public) for a BYOK tenant, else NULL (issue 12).
    customer_recipient TEXT,
    -- An enterprise tenant's own GGUF and its SHA-256 (issue 12), else NULL.
    model_path TEXT,
    model_sha256 TEXT
);
CREATE TABLE IF NOT EXISTS documents (
    document_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(tenant_id),
    filename_sealed BLOB NOT NULL,
    metadata_sealed BLOB,
    -- Written by versions before issue 11; now NULL, the type is in content_type_sealed.
    content_type TEXT,
    bytes INTEGER NOT NULL,
    status TEXT NOT NULL,
    chunk_count INTEGER NOT NULL DEFAULT 0,
    error_sealed BLOB,
    created_at INTEGER NOT NULL,
    indexed_at INTEGER,
    content_type_sealed BLOB,
    -- Where each page of a pdf starts in its extracted text (issue 13): a sealed JSON
    -- array of character offsets; NULL for other formats and documents indexed before.
    pages_sealed BLOB
);
CREATE INDEX IF NOT EXISTS documents_by_tenant ON documents(tenant_id, created_at);
CREATE TABLE IF NOT EXISTS document_texts (
    document_id TEXT PRIMARY KEY REFERENCES documents(document_id),
    tenant_id TEXT NOT NULL,
    text_sealed BLOB NOT NULL
);
-- AUTOINCREMENT: a row id is never reused, so an index snapshot can never confuse a
-- deleted chunk with a new one.
-- What a contract says about itself (title, parties, dates, governing law), found by rules
-- at indexing; sealed like the text it was read from, and rebuildable from it.
CREATE TABLE IF NOT EXISTS document_catalogues (
    document_id TEXT PRIMARY KEY REFERENCES documents(document_id),
    tenant_id TEXT NOT NULL,
    catalogue_sealed BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    row_id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    document_id TEXT NOT NULL REFERENCES documents(document_id),
    seq INTEGER NOT NULL,
    start_char INTEGER NOT NULL,
    end_char INTEGER NOT NULL,
    text_sealed BLOB NOT NULL,
    embedding_sealed BLOB NOT NULL,
    UNIQUE (document_id, seq)
);
CREATE INDEX IF NOT EXISTS chunks_by_tenant ON chunks(tenant_id, row_id);
CREATE TABLE IF NOT EXISTS jobs (
    job_id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    document_id TEXT NOT NULL REFERENCES documents(document_id),
    attempts INTEGER NOT NULL DEFAULT 0,
    enqueued_at INTEGER NOT NULL,
    owner TEXT,
    lease_until INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_by_tenant ON jobs(tenant_id, job_id);
-- Metering: one row per query (counts and token numbers only, never content).
CREATE TABLE IF NOT EXISTS usage_events (
    tenant_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    tokens_in INTEGER NOT NULL,
    tokens_out INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_by_tenant ON usage_events(tenant_id, at);
-- Credentials (system tables, see `credentials`): invitations by the hash of their secret,
-- issued and revoked token ids, and per-user watermarks (tokens issued up to `not_before` are refused).
CREATE TABLE IF NOT EXISTS invitations (
    secret_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE TABLE IF NOT EXISTS revoked_tokens (
    tenant_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    revoked_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, jti)
);
-- Tokens issued for a tenant, so that its admins can see and revoke them: never the token
-- itself, only its id, the user's pseudonym (for watermarks) and name (sealed with the
-- tenant's key; NULL when issued while the tenant was locked), its roles and lifetime.
CREATE TABLE IF NOT EXISTS issued_tokens (
    tenant_id TEXT NOT NULL,
    jti TEXT NOT NULL,
    user TEXT NOT NULL,
    user_sealed BLOB,
    roles TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, jti)
);
CREATE TABLE IF NOT EXISTS token_watermarks (
    tenant_id TEXT NOT NULL,
    user TEXT NOT NULL,
    not_before INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, user)
);
";

fn open_connection(path: &Path) -> Result<Connection, rusqlite::Error> {
    let connection = Connection::open(path)?;
    // The system connection has no tenant: the tenant views are empty on it.
    rows::register_current_tenant(&connection, Arc::new(Mutex::new(None)))?;
    // WAL with synchronous=FULL: a committed transaction survives power loss.
    // temp_store=MEMORY: sorts and temporary tables never spill to a file on disk.
    connection.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;
         PRAGMA busy_timeout = 5000;
         PRAGMA secure_delete = ON;",
    )?;
    Ok(connection)
}

/// Brings a database created by an earlier version up to this one's tables, in one
/// immediate transaction (two processes opening it at once add each column once).
fn migrate(connection: &Connection) -> Result<(), rusqlite::Error> {
    const ADDED: &[(&str, &str, &str)] = &[
        ("jobs", "owner", "TEXT"),
        ("jobs", "lease_until", "INTEGER"),
        ("documents", "content_type_sealed", "BLOB"),
        ("tenants", "customer_recipient", "TEXT"),
        ("tenants", "model_path", "TEXT"),
        ("tenants", "model_sha256", "TEXT"),
        ("documents", "pages_sealed", "BLOB"),
    ];
    let missing = |table: &str, column: &str| -> Result<bool, rusqlite::Error> {
        let count: i64 = connection.query_row(
            "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = ?2",
            params![table, column],
            |row| row.get(0),
        )?;
        Ok(count == 0)
    };
    let mut needed = false;
    for (table, column, _) in ADDED {
        needed |= missing(table, column)?;
    }
    if !needed {
        return Ok(());
    }
    connection.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        for (table, column, kind) in ADDED {
            if missing(table, column)? {
                connection
                    .execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
            }
        }
        connection.execute_batch("COMMIT")
    })();
    if result.is_err() {
        let _ = connection.execute_batch("ROLLBACK");
    }
    result
}

impl Store {
    /// Creates the data directory, master key and database (`auth::tokens::Signer::init`
    /// creates the signing key). Idempotent: an
    /// existing directory is opened and checked, never overwritten.
    pub fn init(root: &Path) -> Result<InitReport, StoreError> {
        files::create_private_dir(root)?;
        let mut report = InitReport::default();
        let key_path = root.join(MASTER_KEY_FILE);
        let master_key = match std::env::var(MASTER_KEY_ENV) {
            Ok(hex) => SecretKey::from_hex(&hex)?,
            Err(_) if key_path.exists() => SecretKey::read_file(&key_path)?,
            Err(_) => {
                let key = SecretKey::generate();
                key.write_new_file(&key_path)?;
                report.created_master_key = true;
                key
            }
        };
        let connection = open_connection(&root.join(DATABASE_FILE))?;
        connection.execute_batch(SCHEMA)?;
        connection.execute_batch(crate::audit::SCHEMA)?;
        migrate(&connection)?;
        rows::schema(&connection)?;
        let check: Option<Vec<u8>> = connection
            .query_row(
                "SELECT value FROM appliance WHERE key = 'key_check'",
                [],
                |row| row.get(0),
            )
            .optional()?;
        match check {
            Some(sealed) => verify_key_check(&master_key, &sealed)?,
            None => {
                let sealed = master_key.seal(key_check_aad(), KEY_CHECK_PLAINTEXT);
                connection.execute(
                    "INSERT INTO appliance (key, value) VALUES ('key_check', ?1)",
                    params![sealed],
                )?;
                report.created_database = true;
            }
        }
        files::create_private_dir(&root.join("tenants"))?;
        Ok(report)
    }

    /// Opens an initialised data directory with the master key from the environment or
    /// the key file, and checks that the key is the one the directory was created with.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        let database = root.join(DATABASE_FILE);
        if !database.exists() {
            return Err(StoreError::NotInitialised(root.to_path_buf()));
        }
        if let Ok(hex) = std::env::var(MASTER_KEY_ENV) {
            return Self::open_with_key(root, SecretKey::from_hex(&hex)?);
        }
        let opened = SecretKey::read_file(&root.join(MASTER_KEY_FILE))
            .map_err(StoreError::from)
            .and_then(|key| Self::open_with_key(root, key));
        let next = root.join(master_key::NEXT_MASTER_KEY_FILE);
        match opened {
            // A master key rotation committed, then was interrupted before its files were
            // swapped: the next key opens the database; put it in place.
            Err(error) if next.exists() => {
                let Ok(store) = SecretKey::read_file(&next)
                    .map_err(StoreError::from)
                    .and_then(|key| Self::open_with_key(root, key))
                else {
                    return Err(error);
                };
                master_key::finish_rotation(root)?;
                tracing::warn!("finished a master key rotation that was interrupted");
                Ok(store)
            }
            opened => opened,
        }
    }

    pub fn open_with_key(root: &Path, master_key: SecretKey) -> Result<Store, StoreError> {
        let database = root.join(DATABASE_FILE);
        if !database.exists() {
            return Err(StoreError::NotInitialised(root.to_path_buf()));
        }
        let connection = open_connection(&database)?;
        connection.execute_batch(SCHEMA)?;
        connection.execute_batch(crate::audit::SCHEMA)?;
        migrate(&connection)?;
        rows::schema(&connection)?;
        let sealed: Vec<u8> = connection
            .query_row(
                "SELECT value FROM appliance WHERE key = 'key_check'",
                [],
                |row| row.get(0),
            )
            .optional()?
            .ok_or_else(|| StoreError::NotInitialised(root.to_path_buf()))?;
        verify_key_check(&master_key, &sealed)?;
        let tenant_connection = TenantConnection::new(open_connection(&database)?)?;
        Ok(Store {
            root: root.to_path_buf(),
            master_key,
            connection: Mutex::new(connection),
            tenant_connection,
            data_keys: Mutex::new(HashMap::new()),
            customer_identities: Mutex::new(HashMap::new()),
            keys_checked_version: Mutex::new(None),
            checkpoint_signer: None,
            audit_queue: audit_log::AuditQueue::default(),
            owner: {
                let suffix: [u8; 6] = rand::random();
                format!("{}-{}", std::process::id(), hex::encode(suffix))
            },
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn connection(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions
        // roll back on drop), so a poisoned lock is safe to keep using.
        self.connection
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The tenant connection, bound to this scope's tenant while the handle lives.
    fn tenant(&self, scope: &TenantScope) -> TenantDb<'_> {
        self.tenant_connection.bind(scope)
    }

    /// Runs a query on the scope's tenant connection and collects its rows as tuples.
    fn tenant_rows<T>(
        &self,
        scope: &TenantScope,
        statement: &str,
        parameters: impl rusqlite::Params,
    ) -> Result<Vec<T>, StoreError>
    where
        T: for<'r> TryFrom<&'r rusqlite::Row<'r>, Error = rusqlite::Error>,
    {
        let connection = self.tenant(scope);
        let mut prepared = connection.prepare(statement)?;
        let rows = prepared
            .query_map(parameters, |row| T::try_from(row))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Application scope: whether a row read for `scope` is the scope's tenant's.
    fn row_is_ours(scope: &TenantScope, tenant_column: &str) -> bool {
        !enabled(Layer::Scope) || tenant_column == scope.tenant_id().as_str()
    }

    /// Opens a sealed object of the scope's tenant: refused unless it says it is the
    /// scope's (application scope), then authenticated and decrypted (crypto).
    fn open_sealed(
        &self,
        scope: &TenantScope,
        key: &SecretKey,
        kind: ObjectKind,
        object_id: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        if enabled(Layer::Scope) && crypto::owner(sealed) != Some(scope.tenant_id().as_str()) {
            tracing::error!(tenant = %scope.tenant_id(), kind = kind.label(), object_id, "object of another tenant refused");
            self.audit_by_appliance(
                Some(scope.tenant_id().to_string()),
                "isolation.violation",
                format!("{} {object_id}", kind.label()),
                crate::audit::Outcome::Denied,
            );
            return Err(StoreError::NotThisTenant {
                kind: kind.label(),
                object_id: object_id.to_owned(),
            });
        }
        self.audited(key.open(
            Aad {
                tenant: Some(scope.tenant_id()),
                kind,
                object_id,
            },
            sealed,
        ))
    }

    /// Like [`Store::open_sealed`], for text.
    fn open_text(
        &self,
        scope: &TenantScope,
        key: &SecretKey,
        kind: ObjectKind,
        object_id: &str,
        sealed: &[u8],
    ) -> Result<String, StoreError> {
        let bytes = self.open_sealed(scope, key, kind, object_id, sealed)?;
        String::from_utf8(bytes).map_err(|_| {
            StoreError::Crypto(CryptoError::Integrity {
                tenant: Some(scope.tenant_id().to_string()),
                kind: kind.label(),
                object_id: object_id.to_owned(),
            })
        })
    }

    /// The directory of one tenant's files.
    pub fn tenant_dir(&self, scope: &TenantScope) -> PathBuf {
        self.root.join("tenants").join(scope.tenant_id().as_str())
    }

    fn blob_path(&self, scope: &TenantScope, document_id: &DocumentId) -> PathBuf {
        self.tenant_dir(scope)
            .join("blobs")
            .join(format!("{document_id}.bin"))
    }
}

#[derive(Debug, Default)]
pub struct InitReport {
    pub created_master_key: bool,
    pub created_database: bool,
}

pub(super) const KEY_CHECK_PLAINTEXT: &[u8] = b"bulkhead master key check v1";

pub(super) fn key_check_aad() -> Aad<'static> {
    Aad {
        tenant: None,
        kind: ObjectKind::KeyCheck,
        object_id: "appliance",
    }
}

fn verify_key_check(master_key: &SecretKey, sealed: &[u8]) -> Result<(), StoreError> {
    match master_key.open(key_check_aad(), sealed) {
        Ok(plaintext) if plaintext == KEY_CHECK_PLAINTEXT => Ok(()),
        _ => Err(StoreError::WrongMasterKey),
    }
}

/// A store in a temporary directory, for the unit tests of the store's modules.
#[cfg(test)]
pub(crate) mod test_support {
    use super::{Store, Tier};
    use crate::auth::{OperatorReason, TenantScope, operator_scope};

    pub fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        Store::init(dir.path()).unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    pub fn new_tenant(store: &Store, name: &str) -> TenantScope {
        let tenant = store.create_tenant(name, Tier::Standard).unwrap();
        operator_scope(tenant.tenant_id, OperatorReason::CommandLine)
    }
}
