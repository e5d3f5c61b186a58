//! Durable state: the SQLite system database, the encrypted original blobs and the
//! per-tenant directories, all under one data directory.
//!
//! Layout of the data directory:
//!
//! ```text
//! master.key            the key-encryption key (0600), unless given by environment
//! signing.key           the appliance's Ed25519 signing seed (0600)
//! system.db             SQLite (WAL): tenants, documents, chunks, jobs — tenant strings encrypted
//! tenants/<tenant_id>/  blobs/<document_id>.bin, index/{text,vectors}.bin — all encrypted
//! ```
//!
//! Invariants: every tenant-provided string or vector is sealed with the tenant's data key
//! (see [`crate::crypto`]) before it reaches SQLite or a file, so neither the database, its
//! WAL, nor any file holds plaintext tenant content. Every query filters by the
//! [`TenantScope`]'s tenant. This module knows nothing about parsing, models or HTTP.

pub mod files;
mod rows;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use crate::auth::TenantScope;
use crate::crypto::{self, Aad, CryptoError, ObjectKind, SecretKey};
use crate::ids::{ChunkId, DocumentId, TenantId};
use crate::isolation::{Layer, enabled};
use rows::{TenantConnection, TenantDb, sql};

pub const MASTER_KEY_FILE: &str = "master.key";
pub const SIGNING_KEY_FILE: &str = "signing.key";
pub const DATABASE_FILE: &str = "system.db";
pub const MASTER_KEY_ENV: &str = "BULKHEAD_MASTER_KEY";

/// A document that failed indexing this many times is marked failed rather than retried
/// forever (a poison document must not block the queue).
const MAX_JOB_ATTEMPTS: i64 = 3;

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
}

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocumentStatus {
    Queued,
    Indexed,
    Failed,
}

impl DocumentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentStatus::Queued => "queued",
            DocumentStatus::Indexed => "indexed",
            DocumentStatus::Failed => "failed",
        }
    }

    fn parse(text: &str) -> DocumentStatus {
        match text {
            "indexed" => DocumentStatus::Indexed,
            "failed" => DocumentStatus::Failed,
            _ => DocumentStatus::Queued,
        }
    }
}

#[derive(Clone, Debug)]
pub struct DocumentRecord {
    pub document_id: DocumentId,
    pub filename: String,
    pub content_type: Option<String>,
    pub bytes: u64,
    pub status: DocumentStatus,
    pub chunks: u64,
    pub error: Option<String>,
    pub created_at: i64,
}

/// A chunk ready to be stored: offsets are character offsets into the extracted text.
pub struct NewChunk {
    pub start: usize,
    pub end: usize,
    pub text: String,
    pub embedding: Vec<f32>,
}

/// A stored chunk's vector, for (re)building the vector index.
pub struct ChunkVector {
    pub row_id: u64,
    pub embedding: Vec<f32>,
}

/// A stored chunk's text, for the text index and for citations.
#[derive(Clone, Debug)]
pub struct ChunkRecord {
    /// The tenant the row says it belongs to (checked again by the prompt and output
    /// layers).
    pub tenant_id: TenantId,
    pub row_id: u64,
    pub chunk_id: ChunkId,
    pub filename: String,
    pub start: usize,
    pub end: usize,
    pub text: String,
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
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or(0)
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
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    document_id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL REFERENCES tenants(tenant_id),
    filename_sealed BLOB NOT NULL,
    metadata_sealed BLOB,
    content_type TEXT,
    bytes INTEGER NOT NULL,
    status TEXT NOT NULL,
    chunk_count INTEGER NOT NULL DEFAULT 0,
    error_sealed BLOB,
    created_at INTEGER NOT NULL,
    indexed_at INTEGER
);
CREATE INDEX IF NOT EXISTS documents_by_tenant ON documents(tenant_id, created_at);
CREATE TABLE IF NOT EXISTS document_texts (
    document_id TEXT PRIMARY KEY REFERENCES documents(document_id),
    tenant_id TEXT NOT NULL,
    text_sealed BLOB NOT NULL
);
-- AUTOINCREMENT: a row id is never reused, so an index snapshot can never confuse a
-- deleted chunk with a new one.
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
    enqueued_at INTEGER NOT NULL
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

impl Store {
    /// Creates the data directory, master key, signing key and database. Idempotent: an
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
        let signing_path = root.join(SIGNING_KEY_FILE);
        if !signing_path.exists() {
            SecretKey::generate().write_new_file(&signing_path)?;
            report.created_signing_key = true;
        }
        let connection = open_connection(&root.join(DATABASE_FILE))?;
        connection.execute_batch(SCHEMA)?;
        connection.execute_batch(crate::audit::SCHEMA)?;
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
        let master_key = match std::env::var(MASTER_KEY_ENV) {
            Ok(hex) => SecretKey::from_hex(&hex)?,
            Err(_) => SecretKey::read_file(&root.join(MASTER_KEY_FILE))?,
        };
        Self::open_with_key(root, master_key)
    }

    pub fn open_with_key(root: &Path, master_key: SecretKey) -> Result<Store, StoreError> {
        let database = root.join(DATABASE_FILE);
        if !database.exists() {
            return Err(StoreError::NotInitialised(root.to_path_buf()));
        }
        let connection = open_connection(&database)?;
        connection.execute_batch(SCHEMA)?;
        connection.execute_batch(crate::audit::SCHEMA)?;
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

    // ---- tenants -------------------------------------------------------------------

    pub fn create_tenant(&self, name: &str, tier: Tier) -> Result<TenantRecord, StoreError> {
        let tenant_id = TenantId::generate();
        let data_key = SecretKey::generate();
        let key_id = format!("k_{}", &TenantId::generate().as_str()[2..]);
        let wrapped = self.master_key.seal(
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
        let created_at = now();
        files::create_private_dir(
            &self
                .root
                .join("tenants")
                .join(tenant_id.as_str())
                .join("blobs"),
        )?;
        self.connection().execute(
            "INSERT INTO tenants (tenant_id, name_sealed, tier, key_id, wrapped_key, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                tenant_id.as_str(),
                name_sealed,
                tier.as_str(),
                key_id,
                wrapped,
                created_at
            ],
        )?;
        Ok(TenantRecord {
            tenant_id,
            name: name.to_owned(),
            tier,
            created_at,
        })
    }

    pub fn list_tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        let rows: Vec<(String, Vec<u8>, String, i64)> = {
            let connection = self.connection();
            let mut statement = connection.prepare(
                "SELECT tenant_id, name_sealed, tier, created_at FROM tenants ORDER BY created_at, tenant_id",
            )?;
            statement
                .query_map([], |row| {
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

    /// The tenant's record, or `TenantNotFound`. Used by auth before minting a scope.
    pub fn find_tenant(&self, tenant_id: &TenantId) -> Result<TenantRecord, StoreError> {
        self.list_tenants()?
            .into_iter()
            .find(|tenant| &tenant.tenant_id == tenant_id)
            .ok_or_else(|| StoreError::TenantNotFound(tenant_id.to_string()))
    }

    /// The tenant's data key, unwrapped with the master key (cached).
    pub fn data_key(&self, scope: &TenantScope) -> Result<SecretKey, StoreError> {
        if !enabled(Layer::Crypto) {
            // Ablation test builds only: one key for every tenant.
            return Ok(self.master_key.clone());
        }
        let tenant_id = scope.tenant_id();
        if let Some(key) = self
            .data_keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(tenant_id)
        {
            return Ok(key.clone());
        }
        let (key_id, wrapped): (String, Vec<u8>) = self
            .connection()
            .query_row(
                "SELECT key_id, wrapped_key FROM tenants WHERE tenant_id = ?1",
                params![tenant_id.as_str()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?
            .ok_or_else(|| StoreError::TenantNotFound(tenant_id.to_string()))?;
        let hex = zeroize::Zeroizing::new(self.audited(self.master_key.open_string(
            Aad {
                tenant: Some(tenant_id),
                kind: ObjectKind::DataKey,
                object_id: &key_id,
            },
            &wrapped,
        ))?);
        let key = SecretKey::from_hex(&hex)?;
        self.data_keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(tenant_id.clone(), key.clone());
        Ok(key)
    }

    // ---- documents -----------------------------------------------------------------

    /// Stores an uploaded original durably and queues it for indexing. When this returns
    /// `Ok`, the encrypted blob is fsynced and the metadata row and job are committed: the
    /// upload may be acknowledged.
    pub fn put_document(
        &self,
        scope: &TenantScope,
        filename: &str,
        metadata: Option<&serde_json::Value>,
        original: &[u8],
    ) -> Result<DocumentId, StoreError> {
        let key = self.data_key(scope)?;
        let tenant = Some(scope.tenant_id());
        let document_id = DocumentId::generate();
        let aad = |kind| Aad {
            tenant,
            kind,
            object_id: document_id.as_str(),
        };
        let blob = key.seal(aad(ObjectKind::DocumentBlob), original);
        files::write_atomic(&self.blob_path(scope, &document_id), &blob)?;
        let filename_sealed = key.seal(aad(ObjectKind::DocumentFilename), filename.as_bytes());
        let metadata_sealed = metadata.map(|value| {
            key.seal(
                aad(ObjectKind::DocumentMetadata),
                value.to_string().as_bytes(),
            )
        });
        let created_at = now();
        let mut connection = self.tenant(scope);
        let transaction = connection.transaction()?;
        transaction.execute(
            &sql("INSERT INTO t_documents (document_id, tenant_id, filename_sealed, metadata_sealed, bytes, status, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6)"),
            params![
                document_id.as_str(),
                scope.tenant_id().as_str(),
                filename_sealed,
                metadata_sealed,
                original.len() as i64,
                created_at
            ],
        )?;
        transaction.execute(
            &sql("INSERT INTO t_jobs (tenant_id, document_id, enqueued_at) VALUES (?1, ?2, ?3)"),
            params![scope.tenant_id().as_str(), document_id.as_str(), created_at],
        )?;
        transaction.commit()?;
        Ok(document_id)
    }

    /// The decrypted original bytes of a document.
    pub fn document_original(
        &self,
        scope: &TenantScope,
        document_id: &DocumentId,
    ) -> Result<Vec<u8>, StoreError> {
        self.require_document(scope, document_id)?;
        let sealed = std::fs::read(self.blob_path(scope, document_id))?;
        let key = self.data_key(scope)?;
        self.open_sealed(
            scope,
            &key,
            ObjectKind::DocumentBlob,
            document_id.as_str(),
            &sealed,
        )
    }

    fn require_document(
        &self,
        scope: &TenantScope,
        document_id: &DocumentId,
    ) -> Result<(), StoreError> {
        let found: Option<String> = self
            .tenant(scope)
            .query_row(
                &sql("SELECT tenant_id FROM t_documents WHERE document_id = ?1 AND tenant_id = ?2"),
                params![document_id.as_str(), scope.tenant_id().as_str()],
                |row| row.get(0),
            )
            .optional()?;
        found
            .filter(|tenant| Self::row_is_ours(scope, tenant))
            .map(|_| ())
            .ok_or_else(|| StoreError::DocumentNotFound(document_id.to_string()))
    }

    /// The queued indexing jobs of this tenant, oldest first. Claiming counts an attempt
    /// (committed before work starts), so a document that crashes the indexer is retried
    /// a bounded number of times.
    pub fn claim_jobs(&self, scope: &TenantScope) -> Result<Vec<IndexJob>, StoreError> {
        let mut connection = self.tenant(scope);
        let transaction = connection.transaction()?;
        let jobs: Vec<(String, i64, String, i64)> = {
            let mut statement = transaction.prepare(&sql(
                "SELECT tenant_id, job_id, document_id, attempts FROM t_jobs WHERE tenant_id = ?1 ORDER BY job_id",
            ))?;
            statement
                .query_map(params![scope.tenant_id().as_str()], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })?
                .collect::<Result<_, _>>()?
        };
        transaction.execute(
            &sql("UPDATE t_jobs SET attempts = attempts + 1 WHERE tenant_id = ?1"),
            params![scope.tenant_id().as_str()],
        )?;
        transaction.commit()?;
        let mut claimed = Vec::new();
        for (tenant, job_id, document, attempts) in jobs {
            if !Self::row_is_ours(scope, &tenant) {
                continue;
            }
            let Ok(document_id) = DocumentId::try_from(document.as_str()) else {
                continue;
            };
            claimed.push(IndexJob {
                job_id,
                document_id,
                exhausted: attempts >= MAX_JOB_ATTEMPTS,
            });
        }
        Ok(claimed)
    }

    /// Commits an indexed document in one transaction: its text, chunks and vectors, its
    /// status, and the removal of its job. Returns the new chunks' row ids in order.
    pub fn complete_document(
        &self,
        scope: &TenantScope,
        job: &IndexJob,
        content_type: &str,
        text: &str,
        chunks: &[NewChunk],
    ) -> Result<Vec<u64>, StoreError> {
        let key = self.data_key(scope)?;
        let tenant = Some(scope.tenant_id());
        let document_id = &job.document_id;
        let text_sealed = key.seal(
            Aad {
                tenant,
                kind: ObjectKind::DocumentText,
                object_id: document_id.as_str(),
            },
            text.as_bytes(),
        );
        let sealed_chunks: Vec<(Vec<u8>, Vec<u8>)> = chunks
            .iter()
            .enumerate()
            .map(|(seq, chunk)| {
                let chunk_id = ChunkId::new(document_id.clone(), seq as u32).to_string();
                let aad = |kind| Aad {
                    tenant,
                    kind,
                    object_id: &chunk_id,
                };
                (
                    key.seal(aad(ObjectKind::ChunkText), chunk.text.as_bytes()),
                    key.seal(
                        aad(ObjectKind::ChunkEmbedding),
                        &crypto::f32s_to_bytes(&chunk.embedding),
                    ),
                )
            })
            .collect();
        let mut connection = self.tenant(scope);
        let transaction = connection.transaction()?;
        // A retried job may have committed something before; if it had, replace it whole.
        for table in ["t_document_texts", "t_chunks"] {
            transaction.execute(
                &sql(&format!(
                    "DELETE FROM {table} WHERE document_id = ?1 AND tenant_id = ?2"
                )),
                params![document_id.as_str(), scope.tenant_id().as_str()],
            )?;
        }
        transaction.execute(
            &sql("INSERT INTO t_document_texts (document_id, tenant_id, text_sealed) VALUES (?1, ?2, ?3)"),
            params![document_id.as_str(), scope.tenant_id().as_str(), text_sealed],
        )?;
        {
            let mut insert = transaction.prepare(&sql(
                "INSERT INTO t_chunks (tenant_id, document_id, seq, start_char, end_char, text_sealed, embedding_sealed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            ))?;
            for (seq, (chunk, (text_sealed, embedding_sealed))) in
                chunks.iter().zip(sealed_chunks).enumerate()
            {
                insert.execute(params![
                    scope.tenant_id().as_str(),
                    document_id.as_str(),
                    seq as i64,
                    chunk.start as i64,
                    chunk.end as i64,
                    text_sealed,
                    embedding_sealed
                ])?;
            }
        }
        // Inserts through a view's trigger leave no last_insert_rowid: read them back.
        let row_ids: Vec<u64> = {
            let mut statement = transaction.prepare(&sql(
                "SELECT row_id FROM t_chunks WHERE document_id = ?1 AND tenant_id = ?2 ORDER BY seq",
            ))?;
            statement
                .query_map(
                    params![document_id.as_str(), scope.tenant_id().as_str()],
                    |row| row.get::<_, i64>(0),
                )?
                .map(|id| id.map(|id| id as u64))
                .collect::<Result<_, _>>()?
        };
        transaction.execute(
            &sql("UPDATE t_documents SET status = 'indexed', content_type = ?1, chunk_count = ?2, indexed_at = ?3, error_sealed = NULL
             WHERE document_id = ?4 AND tenant_id = ?5"),
            params![
                content_type,
                chunks.len() as i64,
                now(),
                document_id.as_str(),
                scope.tenant_id().as_str()
            ],
        )?;
        transaction.execute(
            &sql("DELETE FROM t_jobs WHERE job_id = ?1 AND tenant_id = ?2"),
            params![job.job_id, scope.tenant_id().as_str()],
        )?;
        transaction.commit()?;
        Ok(row_ids)
    }

    /// Marks a document failed with a reason the user can act on, and drops its job.
    pub fn fail_document(
        &self,
        scope: &TenantScope,
        job: &IndexJob,
        reason: &str,
    ) -> Result<(), StoreError> {
        let key = self.data_key(scope)?;
        let error_sealed = key.seal(
            Aad {
                tenant: Some(scope.tenant_id()),
                kind: ObjectKind::DocumentError,
                object_id: job.document_id.as_str(),
            },
            reason.as_bytes(),
        );
        let mut connection = self.tenant(scope);
        let transaction = connection.transaction()?;
        transaction.execute(
            &sql("UPDATE t_documents SET status = 'failed', error_sealed = ?1 WHERE document_id = ?2 AND tenant_id = ?3"),
            params![error_sealed, job.document_id.as_str(), scope.tenant_id().as_str()],
        )?;
        transaction.execute(
            &sql("DELETE FROM t_jobs WHERE job_id = ?1 AND tenant_id = ?2"),
            params![job.job_id, scope.tenant_id().as_str()],
        )?;
        transaction.commit()?;
        Ok(())
    }

    pub fn list_documents(&self, scope: &TenantScope) -> Result<Vec<DocumentRecord>, StoreError> {
        self.query_documents(scope, None)
    }

    pub fn document(
        &self,
        scope: &TenantScope,
        document_id: &DocumentId,
    ) -> Result<DocumentRecord, StoreError> {
        self.query_documents(scope, Some(document_id))?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::DocumentNotFound(document_id.to_string()))
    }

    fn query_documents(
        &self,
        scope: &TenantScope,
        only: Option<&DocumentId>,
    ) -> Result<Vec<DocumentRecord>, StoreError> {
        self.documents_from_sql(
            scope,
            &sql(&format!(
                "SELECT {DOCUMENT_COLUMNS} FROM t_documents
                 WHERE tenant_id = ?1 AND (?2 IS NULL OR document_id = ?2)
                 ORDER BY created_at, document_id"
            )),
            params![scope.tenant_id().as_str(), only.map(DocumentId::as_str)],
        )
    }

    /// Runs a document query on the scope's tenant connection and decodes its rows, which
    /// must have the [`DOCUMENT_COLUMNS`]. A row of another tenant is dropped (application
    /// scope) and every sealed field is authenticated (crypto): a query that forgot its
    /// tenant filter still returns nothing of anyone else's.
    pub fn documents_from_sql(
        &self,
        scope: &TenantScope,
        statement: &str,
        parameters: impl rusqlite::Params,
    ) -> Result<Vec<DocumentRecord>, StoreError> {
        type Row = (
            String,
            String,
            Vec<u8>,
            Option<String>,
            i64,
            String,
            i64,
            Option<Vec<u8>>,
            i64,
        );
        let rows: Vec<Row> = self.tenant_rows(scope, statement, parameters)?;
        let key = self.data_key(scope)?;
        rows.into_iter()
            .filter(|row| Self::row_is_ours(scope, &row.0))
            .map(
                |(
                    _,
                    id,
                    filename_sealed,
                    content_type,
                    bytes,
                    status,
                    chunks,
                    error_sealed,
                    created_at,
                )| {
                    let document_id = DocumentId::try_from(id.as_str())
                        .map_err(|_| StoreError::DocumentNotFound(id.clone()))?;
                    let open = |kind, sealed: &[u8]| {
                        self.open_text(scope, &key, kind, document_id.as_str(), sealed)
                    };
                    let filename = open(ObjectKind::DocumentFilename, &filename_sealed)?;
                    let error = error_sealed
                        .map(|sealed| open(ObjectKind::DocumentError, &sealed))
                        .transpose()?;
                    Ok(DocumentRecord {
                        document_id,
                        filename,
                        content_type,
                        bytes: bytes as u64,
                        status: DocumentStatus::parse(&status),
                        chunks: chunks as u64,
                        error,
                        created_at,
                    })
                },
            )
            .collect()
    }

    /// Test-only (ablation builds): runs a statement on the scope's tenant connection, as
    /// a store query with a bug in it would. The isolation suite's raw-SQL probes.
    #[cfg(feature = "ablation")]
    pub fn execute_as_tenant(
        &self,
        scope: &TenantScope,
        statement: &str,
    ) -> Result<usize, StoreError> {
        Ok(self.tenant(scope).execute(statement, [])?)
    }

    // ---- chunks --------------------------------------------------------------------

    /// Every live chunk's vector (row id order), for building the vector index.
    pub fn chunk_vectors(&self, scope: &TenantScope) -> Result<Vec<ChunkVector>, StoreError> {
        let rows: Vec<(String, i64, String, i64, Vec<u8>)> = self.tenant_rows(
            scope,
            &sql("SELECT tenant_id, row_id, document_id, seq, embedding_sealed FROM t_chunks WHERE tenant_id = ?1 ORDER BY row_id"),
            params![scope.tenant_id().as_str()],
        )?;
        let key = self.data_key(scope)?;
        rows.into_iter()
            .filter(|row| Self::row_is_ours(scope, &row.0))
            .map(|(_, row_id, document, seq, sealed)| {
                let chunk_id = format!("{document}:{seq}");
                let bytes =
                    self.open_sealed(scope, &key, ObjectKind::ChunkEmbedding, &chunk_id, &sealed)?;
                Ok(ChunkVector {
                    row_id: row_id as u64,
                    embedding: crypto::bytes_to_f32s(&bytes),
                })
            })
            .collect()
    }

    /// A change counter for the whole database that moves whenever another connection —
    /// this process's tenant connection, or another process such as `bulkhead ingest`
    /// next to a running server — commits (`PRAGMA data_version`).
    pub fn data_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .connection()
            .query_row("PRAGMA data_version", [], |row| row.get(0))?)
    }

    /// The tenant's live chunks as (count, largest row id): what an up-to-date index
    /// holds. Row ids are never reused, so any change by another writer changes this.
    pub fn chunk_signature(&self, scope: &TenantScope) -> Result<(usize, u64), StoreError> {
        let (count, max): (i64, Option<i64>) = self.tenant(scope).query_row(
            &sql("SELECT COUNT(*), MAX(row_id) FROM t_chunks WHERE tenant_id = ?1"),
            params![scope.tenant_id().as_str()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        Ok((count as usize, max.unwrap_or(0) as u64))
    }

    /// Every live chunk's row id, ascending: what the indexes must contain.
    pub fn chunk_row_ids(&self, scope: &TenantScope) -> Result<Vec<u64>, StoreError> {
        let rows: Vec<(String, i64)> = self.tenant_rows(
            scope,
            &sql("SELECT tenant_id, row_id FROM t_chunks WHERE tenant_id = ?1 ORDER BY row_id"),
            params![scope.tenant_id().as_str()],
        )?;
        Ok(rows
            .into_iter()
            .filter(|(tenant, _)| Self::row_is_ours(scope, tenant))
            .map(|(_, id)| id as u64)
            .collect())
    }

    /// Chunks by row id, decrypted, with their document's file name. Row ids that are not
    /// this tenant's are silently absent: the query filters by the scope's tenant.
    pub fn chunks(
        &self,
        scope: &TenantScope,
        row_ids: &[u64],
    ) -> Result<Vec<ChunkRecord>, StoreError> {
        if row_ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = row_ids
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        // Row ids are integers formatted by us, so inlining them is injection-free.
        let statement = format!(
            "SELECT c.tenant_id, c.row_id, c.document_id, c.seq, c.start_char, c.end_char, c.text_sealed, d.filename_sealed
             FROM t_chunks c JOIN t_documents d ON d.document_id = c.document_id AND d.tenant_id = c.tenant_id
             WHERE c.tenant_id = ?1 AND c.row_id IN ({list})"
        );
        type Row = (String, i64, String, i64, i64, i64, Vec<u8>, Vec<u8>);
        let rows: Vec<Row> =
            self.tenant_rows(scope, &sql(&statement), params![scope.tenant_id().as_str()])?;
        let key = self.data_key(scope)?;
        let mut by_id: HashMap<u64, ChunkRecord> = HashMap::with_capacity(rows.len());
        for (tenant, row_id, document, seq, start, end, text_sealed, filename_sealed) in rows {
            if !Self::row_is_ours(scope, &tenant) {
                continue;
            }
            let (Ok(tenant_id), Ok(document_id)) = (
                TenantId::try_from(tenant.as_str()),
                DocumentId::try_from(document.as_str()),
            ) else {
                continue;
            };
            let chunk_id = ChunkId::new(document_id.clone(), seq as u32);
            let chunk_label = chunk_id.to_string();
            let text = self.open_text(
                scope,
                &key,
                ObjectKind::ChunkText,
                &chunk_label,
                &text_sealed,
            )?;
            let filename = self.open_text(
                scope,
                &key,
                ObjectKind::DocumentFilename,
                document_id.as_str(),
                &filename_sealed,
            )?;
            by_id.insert(
                row_id as u64,
                ChunkRecord {
                    tenant_id,
                    row_id: row_id as u64,
                    chunk_id,
                    filename,
                    start: start as usize,
                    end: end as usize,
                    text,
                },
            );
        }
        // Keep the caller's (rank) order.
        Ok(row_ids.iter().filter_map(|id| by_id.remove(id)).collect())
    }

    /// Deletes a document: its chunks, text, job and row in one transaction, then its blob.
    /// Returns the deleted chunks' row ids, for the indexes to drop.
    pub fn delete_document(
        &self,
        scope: &TenantScope,
        document_id: &DocumentId,
    ) -> Result<Vec<u64>, StoreError> {
        self.require_document(scope, document_id)?;
        let tenant = scope.tenant_id().as_str();
        let row_ids: Vec<u64> = {
            let mut connection = self.tenant(scope);
            let transaction = connection.transaction()?;
            let row_ids = {
                let mut statement = transaction.prepare(&sql(
                    "SELECT row_id FROM t_chunks WHERE document_id = ?1 AND tenant_id = ?2",
                ))?;
                statement
                    .query_map(params![document_id.as_str(), tenant], |row| {
                        row.get::<_, i64>(0)
                    })?
                    .map(|id| id.map(|id| id as u64))
                    .collect::<Result<Vec<_>, _>>()?
            };
            for table in ["t_chunks", "t_document_texts", "t_jobs", "t_documents"] {
                transaction.execute(
                    &sql(&format!(
                        "DELETE FROM {table} WHERE document_id = ?1 AND tenant_id = ?2"
                    )),
                    params![document_id.as_str(), tenant],
                )?;
            }
            transaction.commit()?;
            row_ids
        };
        let blob = self.blob_path(scope, document_id);
        match std::fs::remove_file(&blob) {
            Ok(()) => {
                if let Some(dir) = blob.parent() {
                    files::sync_dir(dir)?;
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error.into()),
        }
        Ok(row_ids)
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
        let deletion = {
            let mut connection = self.connection();
            let transaction = connection.transaction()?;
            let key_id: String = transaction.query_row(
                "SELECT key_id FROM tenants WHERE tenant_id = ?1",
                params![tenant],
                |row| row.get(0),
            )?;
            for table in [
                "chunks",
                "document_texts",
                "jobs",
                "documents",
                "usage_events",
                "tenants",
            ] {
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
            Err(error) => return Err(error.into()),
        }
        self.connection()
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(deletion)
    }

    /// Everything stored for one document, decrypted, for a portable export.
    pub fn export_document(
        &self,
        scope: &TenantScope,
        document_id: &DocumentId,
    ) -> Result<ExportedDocument, StoreError> {
        let record = self.document(scope, document_id)?;
        let key = self.data_key(scope)?;
        let (metadata_sealed, text_sealed): (Option<Vec<u8>>, Option<Vec<u8>>) = self.tenant(scope).query_row(
            &sql("SELECT d.metadata_sealed, t.text_sealed FROM t_documents d
             LEFT JOIN t_document_texts t ON t.document_id = d.document_id AND t.tenant_id = d.tenant_id
             WHERE d.document_id = ?1 AND d.tenant_id = ?2"),
            params![document_id.as_str(), scope.tenant_id().as_str()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        let open_document =
            |kind, sealed: &[u8]| self.open_text(scope, &key, kind, document_id.as_str(), sealed);
        let metadata = metadata_sealed
            .map(|sealed| open_document(ObjectKind::DocumentMetadata, &sealed))
            .transpose()?
            .and_then(|text| serde_json::from_str(&text).ok());
        let text = text_sealed
            .map(|sealed| open_document(ObjectKind::DocumentText, &sealed))
            .transpose()?;
        type Row = (i64, i64, i64, Vec<u8>, Vec<u8>);
        let rows: Vec<Row> = self.tenant_rows(
            scope,
            &sql(
                "SELECT seq, start_char, end_char, text_sealed, embedding_sealed FROM t_chunks
                 WHERE document_id = ?1 AND tenant_id = ?2 ORDER BY seq",
            ),
            params![document_id.as_str(), scope.tenant_id().as_str()],
        )?;
        let mut chunks = Vec::with_capacity(rows.len());
        for (seq, start, end, text_sealed, embedding_sealed) in rows {
            let chunk_id = ChunkId::new(document_id.clone(), seq as u32).to_string();
            chunks.push(NewChunk {
                start: start as usize,
                end: end as usize,
                text: self.open_text(
                    scope,
                    &key,
                    ObjectKind::ChunkText,
                    &chunk_id,
                    &text_sealed,
                )?,
                embedding: crypto::bytes_to_f32s(&self.open_sealed(
                    scope,
                    &key,
                    ObjectKind::ChunkEmbedding,
                    &chunk_id,
                    &embedding_sealed,
                )?),
            });
        }
        let original = self.document_original(scope, document_id)?;
        Ok(ExportedDocument {
            record,
            metadata,
            text,
            chunks,
            original,
        })
    }

    /// Stores an imported document with its text, chunks and vectors in one go (no
    /// re-embedding: the import answers exactly as the export did).
    pub fn import_document(
        &self,
        scope: &TenantScope,
        document: &DocumentImport<'_>,
    ) -> Result<DocumentId, StoreError> {
        let DocumentImport {
            filename,
            metadata,
            original,
            content_type,
            text,
            chunks,
        } = *document;
        let document_id = self.put_document(scope, filename, metadata, original)?;
        let job = {
            let connection = self.tenant(scope);
            let job_id: i64 = connection.query_row(
                &sql("SELECT job_id FROM t_jobs WHERE document_id = ?1 AND tenant_id = ?2"),
                params![document_id.as_str(), scope.tenant_id().as_str()],
                |row| row.get(0),
            )?;
            IndexJob {
                job_id,
                document_id: document_id.clone(),
                exhausted: false,
            }
        };
        self.complete_document(scope, &job, content_type, text, chunks)?;
        Ok(document_id)
    }

    /// Records one query for metering.
    pub fn record_usage(
        &self,
        scope: &TenantScope,
        kind: &str,
        tokens_in: usize,
        tokens_out: usize,
    ) -> Result<(), StoreError> {
        self.tenant(scope).execute(
            &sql("INSERT INTO t_usage_events (tenant_id, at, kind, tokens_in, tokens_out) VALUES (?1, ?2, ?3, ?4, ?5)"),
            params![scope.tenant_id().as_str(), now(), kind, tokens_in as i64, tokens_out as i64],
        )?;
        Ok(())
    }

    /// The tenant's usage: what it stores now, and its queries and tokens in [from, to).
    pub fn usage(&self, scope: &TenantScope, from: i64, to: i64) -> Result<Usage, StoreError> {
        let connection = self.tenant(scope);
        let tenant = scope.tenant_id().as_str();
        let (documents, bytes, chunks) = stored_totals(&connection, tenant)?;
        let (queries, tokens_in, tokens_out): (i64, i64, i64) = connection.query_row(
            &sql(
                "SELECT COUNT(*), COALESCE(SUM(tokens_in), 0), COALESCE(SUM(tokens_out), 0)
             FROM t_usage_events WHERE tenant_id = ?1 AND at >= ?2 AND at < ?3",
            ),
            params![tenant, from, to],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )?;
        Ok(Usage {
            documents: documents as u64,
            chunks: chunks as u64,
            bytes_stored: bytes as u64,
            queries: queries as u64,
            tokens_in: tokens_in as u64,
            tokens_out: tokens_out as u64,
        })
    }

    /// Which tenant owns each of these documents, read from the base table on the system
    /// connection (independently of the tenant connection, its views and the scope's own
    /// filters): the output layer's check. Ids only, no content; unknown ids are absent.
    pub fn document_owners(
        &self,
        document_ids: &[&DocumentId],
    ) -> Result<HashMap<DocumentId, TenantId>, StoreError> {
        let connection = self.connection();
        let mut statement =
            connection.prepare("SELECT tenant_id FROM documents WHERE document_id = ?1")?;
        let mut owners = HashMap::with_capacity(document_ids.len());
        for &document_id in document_ids {
            let owner: Option<String> = statement
                .query_row(params![document_id.as_str()], |row| row.get(0))
                .optional()?;
            if let Some(owner) = owner.and_then(|owner| TenantId::try_from(owner.as_str()).ok()) {
                owners.insert(document_id.clone(), owner);
            }
        }
        Ok(owners)
    }

    /// Tenants with queued indexing jobs. Maintenance access (the background indexer):
    /// returns ids only, no content.
    pub fn tenants_with_jobs(&self) -> Result<Vec<TenantId>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare("SELECT DISTINCT tenant_id FROM jobs")?;
        let ids: Vec<String> = statement
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        Ok(ids
            .iter()
            .filter_map(|id| TenantId::try_from(id.as_str()).ok())
            .collect())
    }

    /// Appends an audit event (see [`crate::audit`]).
    ///
    /// The entry is chained to the last one inside an immediate transaction, so appends
    /// from several processes on one data directory still form a single chain.
    /// Returns the new entry's sequence number and hash.
    pub fn append_audit(
        &self,
        event: &crate::audit::AuditEvent,
    ) -> Result<(i64, [u8; 32]), StoreError> {
        let mut connection = self.connection();
        let transaction =
            connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let last: Option<(i64, Vec<u8>)> = transaction
            .query_row(
                "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        // AUTOINCREMENT never reuses a number, even after the last row is deleted.
        let next_seq: i64 = transaction.query_row(
            "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'audit_events'), 0) + 1",
            [],
            |row| row.get(0),
        )?;
        let prev_hash = last
            .map(|(_, hash)| hash)
            .unwrap_or_else(|| crate::audit::GENESIS.to_vec());
        let at = now();
        let hash = crate::audit::entry_hash(
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
        transaction.commit()?;
        Ok((next_seq, hash))
    }

    /// Stores a signed checkpoint of the chain head at `seq`.
    pub fn append_checkpoint(&self, seq: i64, head: &[u8], jws: &str) -> Result<(), StoreError> {
        self.connection().execute(
            "INSERT OR REPLACE INTO audit_checkpoints (seq, head, at, jws) VALUES (?1, ?2, ?3, ?4)",
            params![seq, head, now(), jws],
        )?;
        Ok(())
    }

    /// Every checkpoint: (seq, head, jws).
    pub fn audit_checkpoints(&self) -> Result<Vec<(i64, Vec<u8>, String)>, StoreError> {
        let connection = self.connection();
        let mut statement =
            connection.prepare("SELECT seq, head, jws FROM audit_checkpoints ORDER BY seq")?;
        let rows = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// The whole audit chain in `seq` order (maintenance access for verification: no
    /// content, only pseudonyms, ids and actions).
    pub fn audit_chain(&self) -> Result<Vec<crate::audit::ChainEntry>, StoreError> {
        let connection = self.connection();
        let mut statement = connection.prepare(
            "SELECT seq, at, tenant_id, actor, action, resource, outcome, prev_hash, hash FROM audit_events ORDER BY seq",
        )?;
        let entries = statement
            .query_map([], |row| {
                Ok(crate::audit::ChainEntry {
                    seq: row.get(0)?,
                    at: row.get(1)?,
                    tenant_id: row.get(2)?,
                    actor: row.get(3)?,
                    action: row.get(4)?,
                    resource: row.get(5)?,
                    outcome: row.get(6)?,
                    prev_hash: row.get(7)?,
                    hash: row.get(8)?,
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
        crate::audit::pseudonym(key.expose(), subject)
    }

    /// Audit events of one tenant, oldest first (`seq`, `at`, actor, action, resource,
    /// outcome), read through the tenant connection's view of the log.
    pub fn audit_events(&self, scope: &TenantScope) -> Result<Vec<AuditRow>, StoreError> {
        type Row = (String, i64, i64, String, String, String, String);
        let rows: Vec<Row> = self.tenant_rows(
            scope,
            &sql(
                "SELECT tenant_id, seq, at, actor, action, resource, outcome FROM t_audit_events
                 WHERE tenant_id = ?1 ORDER BY seq",
            ),
            params![scope.tenant_id().as_str()],
        )?;
        Ok(rows
            .into_iter()
            .filter(|row| Self::row_is_ours(scope, &row.0))
            .map(|(_, seq, at, actor, action, resource, outcome)| AuditRow {
                seq,
                at,
                actor,
                action,
                resource,
                outcome,
            })
            .collect())
    }

    /// Passes a decryption result on; an integrity failure (tampering, a file or row moved
    /// between tenants or objects) is also logged and audited in the owning tenant's log —
    /// with ids only — before it becomes an error. It is never garbage returned to a user.
    fn audited<T>(&self, result: Result<T, CryptoError>) -> Result<T, StoreError> {
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
                crate::audit::Outcome::Failed,
            );
        }
        Ok(result?)
    }

    /// Audits something the appliance itself detected (ids only); a failed append is
    /// logged, never allowed to hide the original error.
    fn audit_by_appliance(
        &self,
        tenant_id: Option<String>,
        action: &'static str,
        resource: String,
        outcome: crate::audit::Outcome,
    ) {
        let event = crate::audit::AuditEvent {
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

    /// Seals an index snapshot for this tenant and replaces its file atomically.
    pub fn write_index_file(
        &self,
        scope: &TenantScope,
        kind: ObjectKind,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let key = self.data_key(scope)?;
        let sealed = key.seal(
            Aad {
                tenant: Some(scope.tenant_id()),
                kind,
                object_id: kind.label(),
            },
            bytes,
        );
        files::write_atomic(&self.index_path(scope, kind), &sealed)?;
        Ok(())
    }

    /// Reads and opens an index snapshot; `None` when there is none yet.
    pub fn read_index_file(
        &self,
        scope: &TenantScope,
        kind: ObjectKind,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let sealed = match std::fs::read(self.index_path(scope, kind)) {
            Ok(sealed) => sealed,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let key = self.data_key(scope)?;
        Ok(Some(self.open_sealed(
            scope,
            &key,
            kind,
            kind.label(),
            &sealed,
        )?))
    }

    fn index_path(&self, scope: &TenantScope, kind: ObjectKind) -> PathBuf {
        self.tenant_dir(scope)
            .join("index")
            .join(format!("{}.bin", kind.label()))
    }
}

/// One document to import, with its text and chunks.
#[derive(Clone, Copy)]
pub struct DocumentImport<'a> {
    pub filename: &'a str,
    pub metadata: Option<&'a serde_json::Value>,
    pub original: &'a [u8],
    pub content_type: &'a str,
    pub text: &'a str,
    pub chunks: &'a [NewChunk],
}

/// One document as exported.
pub struct ExportedDocument {
    pub record: DocumentRecord,
    pub metadata: Option<serde_json::Value>,
    pub text: Option<String>,
    pub chunks: Vec<NewChunk>,
    pub original: Vec<u8>,
}

/// A tenant's usage for a period (stored totals are current).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Usage {
    pub documents: u64,
    pub chunks: u64,
    pub bytes_stored: u64,
    pub queries: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
}

/// What a tenant deletion removed.
#[derive(Clone, Debug)]
pub struct TenantDeletion {
    pub documents: u64,
    pub chunks: u64,
    pub bytes: u64,
    /// The id of the destroyed data key.
    pub key_id: String,
}

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

/// The columns [`Store::documents_from_sql`] decodes, in order.
pub const DOCUMENT_COLUMNS: &str = "tenant_id, document_id, filename_sealed, content_type, bytes, status, chunk_count, error_sealed, created_at";

/// A tenant's stored documents, original bytes and chunks.
fn stored_totals(
    connection: &TenantDb<'_>,
    tenant: &str,
) -> Result<(i64, i64, i64), rusqlite::Error> {
    let (documents, bytes): (i64, i64) = connection.query_row(
        &sql("SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM t_documents WHERE tenant_id = ?1"),
        params![tenant],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    let chunks: i64 = connection.query_row(
        &sql("SELECT COUNT(*) FROM t_chunks WHERE tenant_id = ?1"),
        params![tenant],
        |row| row.get(0),
    )?;
    Ok((documents, bytes, chunks))
}

/// One queued document to index.
#[derive(Clone, Debug)]
pub struct IndexJob {
    job_id: i64,
    pub document_id: DocumentId,
    /// True when earlier attempts all died (crash, kill): give up with a clear reason.
    pub exhausted: bool,
}

#[derive(Debug, Default)]
pub struct InitReport {
    pub created_master_key: bool,
    pub created_signing_key: bool,
    pub created_database: bool,
}

const KEY_CHECK_PLAINTEXT: &[u8] = b"bulkhead master key check v1";

fn key_check_aad() -> Aad<'static> {
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
