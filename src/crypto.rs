//! Encryption at rest: the master key, per-tenant data keys and authenticated encryption
//! of every object a tenant gives us.
//!
//! Every ciphertext is AES-256-GCM with associated data that binds the tenant, the kind of
//! object and the object's id ([`Aad`]), so a blob, row or index file copied to another
//! tenant, or to another object of the same tenant, fails to decrypt instead of returning
//! someone else's bytes. This module knows nothing about SQLite, files or HTTP; it never
//! logs key material or plaintext.

use std::fmt;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::RngCore;
use zeroize::{Zeroize, Zeroizing};

use crate::ids::TenantId;

/// Layout of a sealed object: a format byte, the owner (one length byte and the tenant
/// id, empty for appliance-wide objects), the 96-bit nonce, then ciphertext and tag.
/// The owner is in the clear so that the application scope can refuse another tenant's
/// object before decrypting it ([`owner`]); the associated data authenticates it.
const FORMAT_V2: u8 = 2;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
pub const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The ciphertext does not authenticate under this key and associated data: it was
    /// tampered with, belongs to another tenant or object, or the key is wrong.
    #[error(
        "integrity check failed for {kind} {object_id}: the data was modified, moved from another tenant or object, or the key is wrong"
    )]
    Integrity {
        /// The tenant the data was expected to belong to (`None`: appliance-wide).
        tenant: Option<String>,
        kind: &'static str,
        object_id: String,
    },
    #[error("master key file {path} is readable by other users: run `chmod 600 {path}`")]
    KeyFilePermissions { path: String },
    #[error("master key is malformed: expected 64 hex digits ({detail})")]
    MalformedKey { detail: String },
    #[error("cannot read master key file {path}: {source}")]
    KeyFileIo {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// What a ciphertext is, as bound into its associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    KeyCheck,
    DataKey,
    TenantName,
    DocumentBlob,
    DocumentText,
    DocumentFilename,
    DocumentMetadata,
    DocumentError,
    DocumentContentType,
    DocumentCatalogue,
    DocumentPages,
    ChunkText,
    ChunkEmbedding,
    TextIndex,
    VectorIndex,
    TokenUser,
}

impl ObjectKind {
    pub fn label(self) -> &'static str {
        match self {
            ObjectKind::KeyCheck => "key-check",
            ObjectKind::DataKey => "data-key",
            ObjectKind::TenantName => "tenant-name",
            ObjectKind::DocumentBlob => "document-blob",
            ObjectKind::DocumentText => "document-text",
            ObjectKind::DocumentFilename => "document-filename",
            ObjectKind::DocumentMetadata => "document-metadata",
            ObjectKind::DocumentError => "document-error",
            ObjectKind::DocumentContentType => "document-content-type",
            ObjectKind::DocumentCatalogue => "document-catalogue",
            ObjectKind::DocumentPages => "document-pages",
            ObjectKind::ChunkText => "chunk-text",
            ObjectKind::TokenUser => "token-user",
            ObjectKind::ChunkEmbedding => "chunk-embedding",
            ObjectKind::TextIndex => "text-index",
            ObjectKind::VectorIndex => "vector-index",
        }
    }
}

/// Associated data: who owns the object, what it is and which one it is.
#[derive(Clone, Copy, Debug)]
pub struct Aad<'a> {
    /// `None` for appliance-wide objects (the key check).
    pub tenant: Option<&'a TenantId>,
    pub kind: ObjectKind,
    pub object_id: &'a str,
}

impl Aad<'_> {
    fn encode(&self) -> Vec<u8> {
        if !crate::isolation::enabled(crate::isolation::Layer::Crypto) {
            // Ablation test builds only: no binding at all.
            return b"bulkhead/v1".to_vec();
        }
        // Length-prefixed fields, so that no two different triples encode alike.
        let tenant = self.tenant.map(TenantId::as_str).unwrap_or("");
        let mut out = Vec::with_capacity(16 + tenant.len() + self.object_id.len());
        out.extend_from_slice(b"bulkhead/v1");
        for field in [tenant, self.kind.label(), self.object_id] {
            out.extend_from_slice(&(field.len() as u32).to_le_bytes());
            out.extend_from_slice(field.as_bytes());
        }
        out
    }
}

/// A 256-bit AES-GCM key. Zeroed on drop; never printed.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rand::rng().fill_bytes(bytes.as_mut());
        Self(bytes)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        let array: [u8; KEY_LEN] = bytes.try_into().map_err(|_| CryptoError::MalformedKey {
            detail: format!("{} bytes instead of {KEY_LEN}", bytes.len()),
        })?;
        Ok(Self(Zeroizing::new(array)))
    }

    pub fn from_hex(text: &str) -> Result<Self, CryptoError> {
        let mut bytes = hex::decode(text.trim()).map_err(|error| CryptoError::MalformedKey {
            detail: error.to_string(),
        })?;
        let key = Self::from_bytes(&bytes);
        bytes.zeroize();
        key
    }

    /// The raw key bytes, for deriving other key types (the Ed25519 signing key).
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(&self.0[..]))
    }

    /// Reads a key file written by [`SecretKey::write_new_file`], refusing one that other
    /// users can read: a leaked master key unlocks every tenant.
    pub fn read_file(path: &Path) -> Result<Self, CryptoError> {
        let display = path.display().to_string();
        let io_error = |source| CryptoError::KeyFileIo {
            path: display.clone(),
            source,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(io_error)?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(CryptoError::KeyFilePermissions { path: display });
            }
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(io_error)?);
        Self::from_hex(&text)
    }

    /// Writes a fresh key file with mode 0600, failing if the file exists.
    pub fn write_new_file(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path)?;
        file.write_all(self.to_hex().as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(self.0.as_ref()).expect("key length is fixed at 32 bytes")
    }

    /// Encrypts `plaintext` bound to `aad`. A fresh random nonce per call.
    pub fn seal(&self, aad: Aad<'_>, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce_bytes = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce_bytes);
        let nonce = Nonce::from(nonce_bytes);
        let aad_bytes = aad.encode();
        let ciphertext = self
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad_bytes,
                },
            )
            .expect("AES-GCM encryption cannot fail for in-memory buffers under 64 GiB");
        let owner = aad.tenant.map(TenantId::as_str).unwrap_or("");
        let mut out = Vec::with_capacity(2 + owner.len() + NONCE_LEN + ciphertext.len());
        out.push(FORMAT_V2);
        out.push(owner.len() as u8);
        out.extend_from_slice(owner.as_bytes());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ciphertext);
        out
    }

    /// Decrypts what [`SecretKey::seal`] produced under the same associated data.
    pub fn open(&self, aad: Aad<'_>, sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let integrity = || CryptoError::Integrity {
            tenant: aad.tenant.map(ToString::to_string),
            kind: aad.kind.label(),
            object_id: aad.object_id.to_owned(),
        };
        let Some((_, body)) = split_owner(sealed) else {
            return Err(integrity());
        };
        if body.len() < NONCE_LEN + TAG_LEN {
            return Err(integrity());
        }
        let nonce_bytes: [u8; NONCE_LEN] = body[..NONCE_LEN].try_into().map_err(|_| integrity())?;
        let aad_bytes = aad.encode();
        self.cipher()
            .decrypt(
                &Nonce::from(nonce_bytes),
                Payload {
                    msg: &body[NONCE_LEN..],
                    aad: &aad_bytes,
                },
            )
            .map_err(|_| integrity())
    }

    /// Like [`SecretKey::open`], for text that was sealed from a `&str`.
    pub fn open_string(&self, aad: Aad<'_>, sealed: &[u8]) -> Result<String, CryptoError> {
        let bytes = self.open(aad, sealed)?;
        String::from_utf8(bytes).map_err(|_| CryptoError::Integrity {
            tenant: aad.tenant.map(ToString::to_string),
            kind: aad.kind.label(),
            object_id: aad.object_id.to_owned(),
        })
    }
}

/// A customer-held key (issue 12, BYOK): an age X25519 key pair whose secret half, the
/// identity (`AGE-SECRET-KEY-1…`), only the customer keeps. The appliance stores the public
/// half, the recipient (`age1…`), and wraps a tenant's data key to it inside the master
/// key's wrapping, so opening the data key needs both. The identity is held in memory
/// only while the tenant is unlocked (age zeroes it on drop) and never printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomerRecipient(String);

pub struct CustomerIdentity(age::x25519::Identity);

impl fmt::Debug for CustomerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CustomerIdentity(..)")
    }
}

impl CustomerRecipient {
    /// Checks an age X25519 recipient (`age1…`).
    pub fn parse(text: &str) -> Option<CustomerRecipient> {
        use std::str::FromStr;
        let recipient = age::x25519::Recipient::from_str(text.trim()).ok()?;
        Some(CustomerRecipient(recipient.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Encrypts `plaintext` so that only the matching identity opens it (age format).
    pub fn wrap(&self, plaintext: &[u8]) -> Vec<u8> {
        use std::io::Write;
        use std::str::FromStr;
        let recipient =
            age::x25519::Recipient::from_str(&self.0).expect("checked when it was parsed");
        let encryptor =
            age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                .expect("one X25519 recipient is always accepted");
        let mut out = Vec::with_capacity(plaintext.len() + 256);
        let mut writer = encryptor
            .wrap_output(&mut out)
            .expect("writing to memory cannot fail");
        writer
            .write_all(plaintext)
            .and_then(|()| writer.finish().map(drop))
            .expect("writing to memory cannot fail");
        out
    }
}

impl CustomerIdentity {
    /// Reads an age identity (`AGE-SECRET-KEY-1…`, as `age-keygen` writes it: comment lines
    /// starting with `#` are skipped). `None` when the text holds no identity.
    pub fn parse(text: &str) -> Option<CustomerIdentity> {
        use std::str::FromStr;
        text.lines()
            .map(str::trim)
            .find(|line| !line.is_empty() && !line.starts_with('#'))
            .and_then(|line| age::x25519::Identity::from_str(line).ok())
            .map(CustomerIdentity)
    }

    /// Generates a fresh identity (tests and demos: a customer runs `age-keygen`).
    pub fn generate() -> CustomerIdentity {
        CustomerIdentity(age::x25519::Identity::generate())
    }

    pub fn recipient(&self) -> CustomerRecipient {
        CustomerRecipient(self.0.to_public().to_string())
    }

    /// The identity as `age-keygen` writes it (tests and demos only: never logged).
    pub fn to_secret_string(&self) -> Zeroizing<String> {
        use age::secrecy::ExposeSecret;
        Zeroizing::new(self.0.to_string().expose_secret().to_owned())
    }

    /// Opens what [`CustomerRecipient::wrap`] produced; `None` when this is not the
    /// matching identity or the ciphertext was changed.
    pub fn unwrap(&self, wrapped: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        use std::io::Read;
        let decryptor = age::Decryptor::new(wrapped).ok()?;
        let mut reader = decryptor
            .decrypt(std::iter::once(&self.0 as &dyn age::Identity))
            .ok()?;
        let mut plaintext = Zeroizing::new(Vec::new());
        reader.read_to_end(&mut plaintext).ok()?;
        Some(plaintext)
    }
}

/// The tenant a sealed object says it belongs to (`Some("")`: appliance-wide), or `None`
/// when it is not a sealed object at all. Unauthenticated until the object is opened.
pub fn owner(sealed: &[u8]) -> Option<&str> {
    split_owner(sealed).map(|(owner, _)| owner)
}

fn split_owner(sealed: &[u8]) -> Option<(&str, &[u8])> {
    let (&format, rest) = sealed.split_first()?;
    let (&length, rest) = rest.split_first()?;
    if format != FORMAT_V2 || rest.len() < length as usize {
        return None;
    }
    let (owner, body) = rest.split_at(length as usize);
    Some((std::str::from_utf8(owner).ok()?, body))
}

/// Encodes embedding vectors for sealing (little-endian f32).
pub fn f32s_to_bytes(values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|value| value.to_le_bytes())
        .collect()
}

/// Inverse of [`f32s_to_bytes`].
pub fn bytes_to_f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aad<'a>(tenant: &'a TenantId, kind: ObjectKind, id: &'a str) -> Aad<'a> {
        Aad {
            tenant: Some(tenant),
            kind,
            object_id: id,
        }
    }

    #[test]
    fn sealed_object_opens_only_under_its_own_tenant_kind_and_id() {
        let key = SecretKey::generate();
        let tenant_a = TenantId::generate();
        let tenant_b = TenantId::generate();
        let sealed = key.seal(
            aad(&tenant_a, ObjectKind::ChunkText, "d_1:0"),
            b"secret clause",
        );
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            key.open(aad(&tenant_a, ObjectKind::ChunkText, "d_1:0"), &sealed)
                .unwrap(),
            b"secret clause"
        );
        assert!(
            key.open(aad(&tenant_b, ObjectKind::ChunkText, "d_1:0"), &sealed)
                .is_err()
        );
        assert!(
            key.open(aad(&tenant_a, ObjectKind::ChunkText, "d_1:1"), &sealed)
                .is_err()
        );
        assert!(
            key.open(aad(&tenant_a, ObjectKind::DocumentText, "d_1:0"), &sealed)
                .is_err()
        );
        assert!(
            SecretKey::generate()
                .open(aad(&tenant_a, ObjectKind::ChunkText, "d_1:0"), &sealed)
                .is_err()
        );
        assert_eq!(owner(&sealed), Some(tenant_a.as_str()));
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(
            key.open(aad(&tenant_a, ObjectKind::ChunkText, "d_1:0"), &tampered)
                .is_err()
        );
    }

    #[test]
    fn key_file_must_not_be_readable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let key = SecretKey::generate();
        key.write_new_file(&path).unwrap();
        assert_eq!(SecretKey::read_file(&path).unwrap().to_hex(), key.to_hex());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                SecretKey::read_file(&path),
                Err(CryptoError::KeyFilePermissions { .. })
            ));
        }
    }
}
