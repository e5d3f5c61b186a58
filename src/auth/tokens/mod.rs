//! JSON Web Tokens: the appliance's own Ed25519 (EdDSA) tokens, and tokens from enterprise
//! identity providers whose public keys are configured as JWKS files, each bound to the
//! tenants it may name and the roles it may grant ([`IssuerPolicy`]).
//!
//! Verification is strict: the header's `kid` must name a known key, the header's `alg`
//! must be on that key's allow-list (so `alg: none`, HS256 signed with a public key, or an
//! algorithm swap are refused before any signature check), and `aud`, `iss`, `exp` and
//! `nbf` are checked. Knows nothing about HTTP; never logs a token.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::audit::{CheckpointError, CheckpointSigner, CheckpointVerifier};
use crate::crypto::SecretKey;
use crate::ids::TenantId;

/// `iss` of the appliance's own tokens, and the only accepted `aud`.
pub const ISSUER: &str = "bulkhead";
pub const AUDIENCE: &str = "bulkhead";
/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 30;
/// Longest lifetime the appliance mints.
pub const MAX_TTL_SECONDS: u64 = 30 * 24 * 3600;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    Reader,
    Editor,
    Admin,
    Auditor,
    PlatformAdmin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Editor => "editor",
            Role::Admin => "admin",
            Role::Auditor => "auditor",
            Role::PlatformAdmin => "platform_admin",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "reader" => Some(Role::Reader),
            "editor" => Some(Role::Editor),
            "admin" => Some(Role::Admin),
            "auditor" => Some(Role::Auditor),
            "platform_admin" => Some(Role::PlatformAdmin),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Any reason a token is not accepted. The reason is for the log, never the client.
    #[error("token rejected: {0}")]
    Rejected(&'static str),
    #[error("invalid token request: {0}")]
    InvalidRequest(String),
    #[error("signing key unusable: {0}: run `bulkhead init`")]
    SigningKey(String),
    #[error("identity provider key file unusable: {0}")]
    Jwks(String),
    #[error("identity provider configuration refused: {0}")]
    Binding(String),
    /// A valid token of a configured identity provider naming a tenant it is not bound
    /// to, or a role it may not grant (issue 11, finding 2).
    #[error("token rejected: issuer {issuer} may not {what}")]
    IssuerNotBound {
        issuer: String,
        /// The tenant the token named, when it named one.
        tenant: Option<TenantId>,
        what: &'static str,
    },
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    pub iss: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    pub jti: String,
    /// Who minted this token (a pseudonym in the tenant's audit log), when a tenant admin
    /// or an invitation did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minted_by: Option<String>,
}

/// Who is calling, from a verified token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    /// `None` for platform admins.
    pub tenant_id: Option<TenantId>,
    pub roles: Vec<Role>,
    pub token_id: String,
    /// `iat` and `exp` (Unix seconds): revocation compares the first, minting caps at the
    /// second.
    pub issued_at: u64,
    pub expires_at: u64,
}

impl Principal {
    pub fn has_any(&self, roles: &[Role]) -> bool {
        self.roles.iter().any(|role| roles.contains(role))
    }
}

/// The appliance's Ed25519 signing seed in the data directory (0600).
pub const SIGNING_KEY_FILE: &str = "signing.key";
/// Public keys of rotated-out seeds (JSON, public halves only): they still verify the audit
/// log's checkpoints and old deletion certificates, never access tokens.
pub const RETIRED_KEYS_FILE: &str = "signing.retired.json";

/// Seconds since the Unix epoch, as the JWT claims count them ([`crate::time::now`]).
fn unix_now() -> u64 {
    crate::time::now() as u64
}

/// What a signature is for. Each purpose has its own JOSE `typ` and its own Ed25519 key,
/// derived from the seed in `signing.key` (HKDF-SHA256 with the purpose as label), so a
/// signature made for one purpose never verifies as another: a reader's access token
/// wrapped as a deletion certificate is signed by the wrong key and has the wrong `typ`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    AccessToken,
    DeletionCertificate,
    AuditCheckpoint,
}

impl Purpose {
    /// The JOSE header `typ` of this purpose's signatures.
    pub fn typ(self) -> &'static str {
        match self {
            Purpose::AccessToken => "at+jwt",
            Purpose::DeletionCertificate => "bulkhead-deletion-certificate+jws",
            Purpose::AuditCheckpoint => "bulkhead-audit-checkpoint+jws",
        }
    }

    /// The HKDF label of this purpose's key.
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::AccessToken => b"bulkhead signing key v1: access tokens",
            Purpose::DeletionCertificate => b"bulkhead signing key v1: deletion certificates",
            Purpose::AuditCheckpoint => b"bulkhead signing key v1: audit checkpoints",
        }
    }

    /// The prefix of this purpose's key ids, so a JWKS reader sees what each key is for.
    fn kid_prefix(self) -> &'static str {
        match self {
            Purpose::AccessToken => "at",
            Purpose::DeletionCertificate => "cert",
            Purpose::AuditCheckpoint => "audit",
        }
    }

    /// The claims a signed document of this purpose must carry (`type`), checked after its
    /// signature. Access tokens are checked by [`Verifier::verify`] instead.
    fn document_type(self) -> Option<&'static str> {
        match self {
            Purpose::AccessToken => None,
            Purpose::DeletionCertificate => Some("bulkhead.tenant_deletion"),
            Purpose::AuditCheckpoint => Some("bulkhead.audit_checkpoint"),
        }
    }
}

/// One purpose's key pair.
struct PurposeKey {
    signing_key: SigningKey,
    encoding_key: EncodingKey,
    kid: String,
}

impl PurposeKey {
    fn new(signing_key: SigningKey, kid_prefix: &str) -> Result<PurposeKey, TokenError> {
        let der = signing_key
            .to_pkcs8_der()
            .map_err(|error| TokenError::SigningKey(error.to_string()))?;
        // The key id is a fingerprint of the public key: stable across restarts.
        let fingerprint =
            hex::encode(&sha2::Sha256::digest(signing_key.verifying_key().to_bytes())[..8]);
        let kid = if kid_prefix.is_empty() {
            fingerprint
        } else {
            format!("{kid_prefix}-{fingerprint}")
        };
        Ok(PurposeKey {
            encoding_key: EncodingKey::from_ed_der(der.as_bytes()),
            signing_key,
            kid,
        })
    }

    fn public_key(&self) -> [u8; 32] {
        self.signing_key.verifying_key().to_bytes()
    }
}

/// A public key that verifies documents of one purpose, as a JWK would carry it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey {
    /// `None` for the undivided key of appliances before per-purpose keys: it verifies
    /// certificates and checkpoints by their claims (`type`) alone, never access tokens.
    pub purpose: Option<Purpose>,
    pub kid: String,
    /// The Ed25519 public key, base64url.
    pub x: String,
}

impl PublicKey {
    fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": self.x,
            "kid": self.kid,
            "alg": "EdDSA",
            "use": "sig",
        })
    }

    /// Whether this key may verify a document of `purpose`.
    fn verifies(&self, purpose: Purpose) -> bool {
        match self.purpose {
            Some(own) => own == purpose,
            None => purpose != Purpose::AccessToken,
        }
    }
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The appliance's signing keys: one per [`Purpose`], derived from `signing.key` (created
/// by `init`), and the public halves of retired seeds.
pub struct Signer {
    access: PurposeKey,
    certificate: PurposeKey,
    checkpoint: PurposeKey,
    /// The seed's own (undivided) key, which signed everything before per-purpose keys:
    /// kept to verify old certificates and checkpoints by their claims. It signs nothing.
    legacy: PublicKey,
    /// Keys of rotated-out seeds, for certificates and checkpoints only.
    retired: Vec<PublicKey>,
}

impl Signer {
    /// Creates the signing key in an initialised data directory unless it has one (part of
    /// `bulkhead init`; never overwrites). Returns whether it created one.
    pub fn init(data_dir: &Path) -> Result<bool, TokenError> {
        let path = data_dir.join(SIGNING_KEY_FILE);
        if path.exists() {
            return Ok(false);
        }
        SecretKey::generate()
            .write_new_file(&path)
            .map_err(|error| TokenError::SigningKey(error.to_string()))?;
        Ok(true)
    }

    pub fn load(data_dir: &Path) -> Result<Signer, TokenError> {
        let seed = SecretKey::read_file(&data_dir.join(SIGNING_KEY_FILE))
            .map_err(|error| TokenError::SigningKey(error.to_string()))?;
        let mut signer = Signer::from_seed(&seed)?;
        signer.retired = read_retired(data_dir)?;
        Ok(signer)
    }

    pub fn from_seed(seed: &SecretKey) -> Result<Signer, TokenError> {
        let derive = |purpose: Purpose| -> Result<PurposeKey, TokenError> {
            let mut derived = zeroize::Zeroizing::new([0u8; 32]);
            hkdf::Hkdf::<sha2::Sha256>::new(None, seed.expose())
                .expand(purpose.label(), derived.as_mut())
                .map_err(|error| TokenError::SigningKey(error.to_string()))?;
            PurposeKey::new(SigningKey::from_bytes(&derived), purpose.kid_prefix())
        };
        let legacy = PurposeKey::new(SigningKey::from_bytes(seed.expose()), "")?;
        Ok(Signer {
            access: derive(Purpose::AccessToken)?,
            certificate: derive(Purpose::DeletionCertificate)?,
            checkpoint: derive(Purpose::AuditCheckpoint)?,
            legacy: PublicKey {
                purpose: None,
                x: b64url(&legacy.public_key()),
                kid: legacy.kid,
            },
            retired: Vec::new(),
        })
    }

    /// Replaces the seed with a new one, keeping the old seed's certificate and checkpoint
    /// public keys in [`RETIRED_KEYS_FILE`] so the audit log and old certificates still
    /// verify. Every access token signed with the old seed stops verifying.
    pub fn rotate(data_dir: &Path) -> Result<Signer, TokenError> {
        let old = Signer::load(data_dir)?;
        let mut retired = old.retired.clone();
        for key in [
            old.public(Purpose::DeletionCertificate),
            old.public(Purpose::AuditCheckpoint),
            old.legacy.clone(),
        ] {
            if !retired.contains(&key) {
                retired.push(key);
            }
        }
        let failure = |error: &dyn std::fmt::Display| TokenError::SigningKey(error.to_string());
        let text = serde_json::to_vec_pretty(&retired).map_err(|error| failure(&error))?;
        let retired_path = data_dir.join(RETIRED_KEYS_FILE);
        let staged = data_dir.join(format!("{RETIRED_KEYS_FILE}.tmp"));
        std::fs::write(&staged, text).map_err(|error| failure(&error))?;
        std::fs::rename(&staged, &retired_path).map_err(|error| failure(&error))?;
        // The retired keys are durable before the seed that could re-derive them goes.
        let seed = SecretKey::generate();
        let staged_seed = data_dir.join(format!("{SIGNING_KEY_FILE}.tmp"));
        let _ = std::fs::remove_file(&staged_seed);
        seed.write_new_file(&staged_seed)
            .map_err(|error| failure(&error))?;
        std::fs::rename(&staged_seed, data_dir.join(SIGNING_KEY_FILE))
            .map_err(|error| failure(&error))?;
        Signer::load(data_dir)
    }

    fn key(&self, purpose: Purpose) -> &PurposeKey {
        match purpose {
            Purpose::AccessToken => &self.access,
            Purpose::DeletionCertificate => &self.certificate,
            Purpose::AuditCheckpoint => &self.checkpoint,
        }
    }

    /// The current public key of `purpose`.
    pub fn public(&self, purpose: Purpose) -> PublicKey {
        let key = self.key(purpose);
        PublicKey {
            purpose: Some(purpose),
            kid: key.kid.clone(),
            x: b64url(&key.public_key()),
        }
    }

    /// The access-token key's id.
    pub fn kid(&self) -> &str {
        &self.access.kid
    }

    /// The key id of `purpose`'s current key.
    pub fn kid_for(&self, purpose: Purpose) -> &str {
        &self.key(purpose).kid
    }

    /// The access-token public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.access.public_key()
    }

    /// The access-token public key as a JWK (OKP / Ed25519).
    pub fn jwk(&self) -> serde_json::Value {
        self.public(Purpose::AccessToken).jwk()
    }

    /// Every key a verifier may need, for `/.well-known/jwks.json`: the current deletion
    /// certificate key first, then the access-token and checkpoint keys, then retired keys
    /// (which verify certificates and checkpoints only). The `kid` prefix names the purpose.
    pub fn jwks(&self) -> serde_json::Value {
        let mut keys: Vec<serde_json::Value> = [
            Purpose::DeletionCertificate,
            Purpose::AccessToken,
            Purpose::AuditCheckpoint,
        ]
        .into_iter()
        .map(|purpose| self.public(purpose).jwk())
        .collect();
        keys.extend(self.retired.iter().map(PublicKey::jwk));
        keys.push(self.legacy.jwk());
        serde_json::json!({ "keys": keys })
    }

    /// Signs claims as a compact JWS (EdDSA) for `purpose`, with its `typ` and `kid`.
    pub fn sign_for<T: Serialize>(
        &self,
        purpose: Purpose,
        claims: &T,
    ) -> Result<String, TokenError> {
        let key = self.key(purpose);
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(purpose.typ().to_owned());
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding_key)
            .map_err(|error| TokenError::SigningKey(error.to_string()))
    }

    /// Signs access-token claims (`typ: at+jwt`, the access-token key).
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, TokenError> {
        self.sign_for(Purpose::AccessToken, claims)
    }

    /// Signs a deletion certificate (which must say `type: bulkhead.tenant_deletion`).
    pub fn sign_certificate(&self, certificate: &serde_json::Value) -> Result<String, TokenError> {
        if certificate["type"] != "bulkhead.tenant_deletion" {
            return Err(TokenError::InvalidRequest(
                "not a deletion certificate".into(),
            ));
        }
        self.sign_for(Purpose::DeletionCertificate, certificate)
    }

    /// Verifies a deletion certificate with the current or a retired certificate key and
    /// returns its payload.
    pub fn verify_certificate(&self, jws: &str) -> Result<serde_json::Value, TokenError> {
        self.verify_document(Purpose::DeletionCertificate, jws)
    }

    fn verify_document(
        &self,
        purpose: Purpose,
        jws: &str,
    ) -> Result<serde_json::Value, TokenError> {
        let current = self.public(purpose);
        std::iter::once(&current)
            .chain(&self.retired)
            .chain(std::iter::once(&self.legacy))
            .filter(|key| key.verifies(purpose))
            .find_map(|key| verify_document_with(purpose, jws, key).ok())
            .ok_or(TokenError::Rejected(
                "not signed for this purpose by this appliance",
            ))
    }

    /// Mints a token. Platform admins have no tenant; everyone else has exactly one.
    pub fn mint(
        &self,
        subject: &str,
        tenant_id: Option<&TenantId>,
        roles: &[Role],
        ttl_seconds: u64,
    ) -> Result<String, TokenError> {
        self.issue(&Grant {
            subject,
            tenant_id,
            roles,
            ttl_seconds,
            not_after: None,
            minted_by: None,
        })
        .map(|minted| minted.token)
    }

    /// Mints a token for `grant`: its `exp` is capped at `grant.not_after` (the minting
    /// token's own expiry), and it names its minter.
    pub fn issue(&self, grant: &Grant<'_>) -> Result<MintedToken, TokenError> {
        validate_grant(
            grant.subject,
            grant.tenant_id,
            grant.roles,
            grant.ttl_seconds,
        )?;
        let now = unix_now();
        let mut exp = now + grant.ttl_seconds;
        if let Some(not_after) = grant.not_after {
            if not_after <= now {
                return Err(TokenError::InvalidRequest(
                    "the minting token has expired".into(),
                ));
            }
            exp = exp.min(not_after);
        }
        let jti = crate::ids::DocumentId::generate().as_str()[2..].to_owned();
        let claims = Claims {
            sub: grant.subject.to_owned(),
            tenant_id: grant.tenant_id.map(ToString::to_string),
            roles: grant
                .roles
                .iter()
                .map(|role| role.as_str().to_owned())
                .collect(),
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            exp,
            iat: now,
            nbf: Some(now),
            jti: jti.clone(),
            minted_by: grant.minted_by.clone(),
        };
        Ok(MintedToken {
            token: self.sign(&claims)?,
            jti,
            expires_at: exp,
        })
    }
}

/// What a token is minted for.
pub struct Grant<'a> {
    pub subject: &'a str,
    pub tenant_id: Option<&'a TenantId>,
    pub roles: &'a [Role],
    pub ttl_seconds: u64,
    /// The latest `exp` allowed: the minting token's own.
    pub not_after: Option<u64>,
    /// Who minted it (a pseudonym), carried as the `minted_by` claim.
    pub minted_by: Option<String>,
}

/// A minted token with its id and expiry (Unix seconds).
#[derive(Clone, Debug)]
pub struct MintedToken {
    pub token: String,
    pub jti: String,
    pub expires_at: u64,
}

fn read_retired(data_dir: &Path) -> Result<Vec<PublicKey>, TokenError> {
    match std::fs::read(data_dir.join(RETIRED_KEYS_FILE)) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|error| {
            TokenError::SigningKey(format!("{RETIRED_KEYS_FILE} is unreadable: {error}"))
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(TokenError::SigningKey(error.to_string())),
    }
}

/// The checkpoint key signs the audit log's checkpoints (the store calls it; see
/// `store::audit_log`).
impl CheckpointSigner for Signer {
    fn sign_checkpoint(&self, seq: i64, head: &[u8]) -> Result<String, CheckpointError> {
        self.sign_for(
            Purpose::AuditCheckpoint,
            &crate::audit::checkpoint_payload(seq, head),
        )
        .map_err(|error| CheckpointError(error.to_string()))
    }
}

/// Checkpoints are verified against the current and retired checkpoint keys.
impl CheckpointVerifier for Signer {
    fn verified_payload(&self, jws: &str) -> Option<serde_json::Value> {
        self.verify_document(Purpose::AuditCheckpoint, jws).ok()
    }
}

/// The checkpoint signer for a store opened on `data_dir`: the appliance key, or `None`
/// (logged) when it cannot be loaded — the store then refuses an audit entry that needs a
/// checkpoint rather than write it unsigned.
pub fn checkpoint_signer(data_dir: &Path) -> Option<Arc<dyn CheckpointSigner>> {
    match Signer::load(data_dir) {
        Ok(signer) => Some(Arc::new(signer)),
        Err(error) => {
            tracing::warn!(%error, "no audit checkpoint signer: entries that need a checkpoint will be refused");
            None
        }
    }
}

/// Verifies a deletion certificate (a compact JWS made by [`Signer::sign_certificate`])
/// against an Ed25519 public key given as a JWK (`x`, `kid`), and returns its payload.
/// The header's `typ` must be the certificate's and the payload must say
/// `type: bulkhead.tenant_deletion`; a key whose `kid` names another purpose is refused.
pub fn verify_signed_document(
    jws: &str,
    jwk: &serde_json::Value,
) -> Result<serde_json::Value, TokenError> {
    let kid = jwk["kid"].as_str().unwrap_or_default();
    let purpose = match kid.split_once('-') {
        None => None,
        Some(("cert", _)) => Some(Purpose::DeletionCertificate),
        Some(_) => return Err(TokenError::Rejected("not a certificate key")),
    };
    let key = PublicKey {
        purpose,
        kid: kid.to_owned(),
        x: jwk["x"]
            .as_str()
            .ok_or(TokenError::Rejected("the key has no `x`"))?
            .to_owned(),
    };
    verify_document_with(Purpose::DeletionCertificate, jws, &key)
}

/// Verifies a signed document of `purpose` with one public key: the algorithm, the key id,
/// the `typ` (the purpose's own; for the undivided pre-purpose key, the generic `JWT`),
/// the signature, then the claims the purpose requires.
fn verify_document_with(
    purpose: Purpose,
    jws: &str,
    key: &PublicKey,
) -> Result<serde_json::Value, TokenError> {
    if !key.verifies(purpose) {
        return Err(TokenError::Rejected("a key of another purpose"));
    }
    let decoding = DecodingKey::from_ed_components(&key.x)
        .map_err(|_| TokenError::Rejected("malformed key"))?;
    let header =
        jsonwebtoken::decode_header(jws).map_err(|_| TokenError::Rejected("malformed header"))?;
    if header.alg != Algorithm::EdDSA {
        return Err(TokenError::Rejected("not an EdDSA signature"));
    }
    if header.kid.as_deref().is_some_and(|kid| kid != key.kid) {
        return Err(TokenError::Rejected("signed with another key"));
    }
    let typ_ok = match key.purpose {
        Some(_) => header.typ.as_deref() == Some(purpose.typ()),
        None => matches!(header.typ.as_deref(), None | Some("JWT")),
    };
    if !typ_ok {
        return Err(TokenError::Rejected("a signature of another purpose"));
    }
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let payload = jsonwebtoken::decode::<serde_json::Value>(jws, &decoding, &validation)
        .map(|data| data.claims)
        .map_err(|_| TokenError::Rejected("signature invalid"))?;
    let expected_type = purpose.document_type();
    if expected_type.is_none() || payload["type"].as_str() != expected_type {
        return Err(TokenError::Rejected("the claims are not this purpose's"));
    }
    // Access-token claims never belong in a certificate or a checkpoint.
    if ["aud", "roles", "sub"]
        .iter()
        .any(|claim| payload.get(claim).is_some())
    {
        return Err(TokenError::Rejected("the claims are not this purpose's"));
    }
    Ok(payload)
}

/// The rules every minted token follows, checked before signing.
pub fn validate_grant(
    subject: &str,
    tenant_id: Option<&TenantId>,
    roles: &[Role],
    ttl_seconds: u64,
) -> Result<(), TokenError> {
    let invalid = |message: &str| Err(TokenError::InvalidRequest(message.to_owned()));
    if subject.trim().is_empty() || subject.len() > 200 || subject.chars().any(char::is_control) {
        return invalid("user must be 1 to 200 printable characters");
    }
    if roles.is_empty() {
        return invalid("at least one role is required");
    }
    if ttl_seconds == 0 || ttl_seconds > MAX_TTL_SECONDS {
        return invalid("ttl must be between 1 second and 30 days");
    }
    let platform = roles.contains(&Role::PlatformAdmin);
    match (platform, tenant_id) {
        (true, Some(_)) => invalid("platform_admin tokens belong to no tenant"),
        (true, None) if roles.len() > 1 => {
            invalid("platform_admin cannot be combined with tenant roles")
        }
        (false, None) => invalid("tenant roles need a tenant"),
        _ => Ok(()),
    }
}

mod verify;
pub use verify::{IssuerPolicy, Verifier};

#[cfg(test)]
mod tests;
