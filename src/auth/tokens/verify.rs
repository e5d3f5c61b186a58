//! Token verification: the appliance's access-token key and configured identity-provider
//! keys, each with its algorithm allow-list, and each identity provider bound to the
//! tenants it may name and the roles it may grant.

use super::*;

/// What one identity provider's tokens may assert (issue 11, finding 2): which tenants
/// they may name (read from `tenant_claim`), which tenant roles they may grant, and
/// whether it is the operator's own provider, the only kind that may grant
/// `platform_admin`. A token beyond its issuer's binding is rejected
/// ([`TokenError::IssuerNotBound`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuerPolicy {
    /// The tokens' `iss`.
    pub issuer: String,
    pub tenants: Vec<TenantId>,
    /// The claim that carries the tenant id (`tenant_id` unless configured).
    pub tenant_claim: String,
    /// Tenant roles its tokens may carry.
    pub roles: Vec<Role>,
    /// The operator's provider: may grant `platform_admin`.
    pub operator: bool,
    /// The `aud` its tokens must carry: `bulkhead` unless configured. An OIDC id_token is
    /// addressed to the client (`aud` = the client_id), so a provider whose id_tokens sign
    /// users in to the web app names its client_id here, and only then are they accepted.
    pub audience: String,
}

impl IssuerPolicy {
    /// The claim that carries the tenant unless configured otherwise.
    pub const DEFAULT_TENANT_CLAIM: &str = "tenant_id";
    /// The audience a provider's tokens carry unless configured otherwise.
    pub const DEFAULT_AUDIENCE: &str = AUDIENCE;
    /// Every tenant role (what a provider may grant unless configured otherwise).
    pub const TENANT_ROLES: [Role; 4] = [Role::Reader, Role::Editor, Role::Admin, Role::Auditor];

    /// Refuses a policy that grants `platform_admin` without being the operator's, or
    /// names a tenant claim that is empty.
    pub fn check(&self) -> Result<(), TokenError> {
        if self.roles.contains(&Role::PlatformAdmin) {
            return Err(TokenError::Binding(format!(
                "issuer {}: platform_admin comes only from the operator's identity provider: set `operator = true` instead of listing the role",
                self.issuer
            )));
        }
        if self.tenant_claim.trim().is_empty() {
            return Err(TokenError::Binding(format!(
                "issuer {}: the tenant claim is empty",
                self.issuer
            )));
        }
        if self.audience.trim().is_empty() {
            return Err(TokenError::Binding(format!(
                "issuer {}: the audience is empty",
                self.issuer
            )));
        }
        if self.issuer == ISSUER {
            return Err(TokenError::Binding(format!(
                "issuer `{ISSUER}` is the appliance's own"
            )));
        }
        Ok(())
    }

    /// Whether a token of this issuer may name `tenant` with `roles`.
    fn allows(&self, tenant: Option<&TenantId>, roles: &[Role]) -> Result<(), TokenError> {
        let refused = |what| TokenError::IssuerNotBound {
            issuer: self.issuer.clone(),
            tenant: tenant.cloned(),
            what,
        };
        if let Some(tenant) = tenant
            && !self.tenants.contains(tenant)
        {
            return Err(refused("act for this tenant"));
        }
        for role in roles {
            let allowed = match role {
                Role::PlatformAdmin => self.operator,
                role => self.roles.contains(role),
            };
            if !allowed {
                return Err(refused(if *role == Role::PlatformAdmin {
                    "grant platform_admin: it is not the operator's"
                } else {
                    "grant this role"
                }));
            }
        }
        Ok(())
    }
}

struct TrustedKey {
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
    issuer: String,
    /// The `aud` this key's tokens must carry.
    audience: String,
    /// An identity provider's binding; `None` for the appliance's own key.
    policy: Option<Arc<IssuerPolicy>>,
    /// The header `typ` this key's tokens must carry: `at+jwt` for the appliance's own, so
    /// nothing else it signs passes as a token; none required of an identity provider.
    typ: Option<&'static str>,
}

/// Verifies tokens against the appliance's key and any configured identity-provider keys.
pub struct Verifier {
    keys: HashMap<String, TrustedKey>,
}

impl Verifier {
    pub fn new(signer: &Signer) -> Verifier {
        let mut keys = HashMap::new();
        // Only the access-token key: certificate and checkpoint keys vouch for no caller.
        keys.insert(
            signer.kid().to_owned(),
            TrustedKey {
                key: DecodingKey::from_ed_der(&signer.public_key()),
                algorithms: vec![Algorithm::EdDSA],
                issuer: ISSUER.to_owned(),
                audience: AUDIENCE.to_owned(),
                policy: None,
                typ: Some(Purpose::AccessToken.typ()),
            },
        );
        Verifier { keys }
    }

    /// Trusts the keys of an identity provider (a JWKS file) for tokens whose `iss` is
    /// the policy's issuer, within the policy's binding. Each key is bound to the one
    /// algorithm its type allows: RS256 for RSA, ES256 for P-256, EdDSA for Ed25519. Keys
    /// without a `kid` are refused.
    pub fn trust_identity_provider(
        &mut self,
        path: &Path,
        policy: IssuerPolicy,
    ) -> Result<usize, TokenError> {
        policy.check()?;
        let policy = Arc::new(policy);
        let text =
            std::fs::read_to_string(path).map_err(|error| TokenError::Jwks(error.to_string()))?;
        let set: JwkSet =
            serde_json::from_str(&text).map_err(|error| TokenError::Jwks(error.to_string()))?;
        let mut added = 0;
        for jwk in &set.keys {
            let kid = jwk
                .common
                .key_id
                .clone()
                .ok_or_else(|| TokenError::Jwks("a key has no kid".into()))?;
            let algorithm = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => Algorithm::RS256,
                AlgorithmParameters::EllipticCurve(curve) if curve.curve == EllipticCurve::P256 => {
                    Algorithm::ES256
                }
                AlgorithmParameters::OctetKeyPair(pair) if pair.curve == EllipticCurve::Ed25519 => {
                    Algorithm::EdDSA
                }
                _ => {
                    return Err(TokenError::Jwks(format!(
                        "key {kid}: only RSA, P-256 and Ed25519 keys are supported"
                    )));
                }
            };
            let key =
                DecodingKey::from_jwk(jwk).map_err(|error| TokenError::Jwks(error.to_string()))?;
            if self.keys.contains_key(&kid) {
                return Err(TokenError::Jwks(format!("key id {kid} is used twice")));
            }
            self.keys.insert(
                kid,
                TrustedKey {
                    key,
                    algorithms: vec![algorithm],
                    issuer: policy.issuer.clone(),
                    audience: policy.audience.clone(),
                    policy: Some(policy.clone()),
                    typ: None,
                },
            );
            added += 1;
        }
        Ok(added)
    }

    pub fn verify(&self, token: &str) -> Result<Principal, TokenError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| TokenError::Rejected("malformed header"))?;
        let kid = header
            .kid
            .as_deref()
            .ok_or(TokenError::Rejected("no kid"))?;
        let trusted = self
            .keys
            .get(kid)
            .ok_or(TokenError::Rejected("unknown kid"))?;
        if !trusted.algorithms.contains(&header.alg) {
            return Err(TokenError::Rejected("algorithm not allowed for this key"));
        }
        if let Some(typ) = trusted.typ
            && header.typ.as_deref() != Some(typ)
        {
            return Err(TokenError::Rejected("not an access token"));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[trusted.audience.as_str()]);
        validation.set_issuer(&[trusted.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &trusted.key, &validation)
            .map_err(|_| TokenError::Rejected("signature or claims invalid"))?;
        let mut claims = data.claims;
        if let Some(policy) = &trusted.policy
            && let Some(object) = claims.as_object_mut()
        {
            identity_provider_claims(object, policy, token);
        }
        let claims: Claims = serde_json::from_value(claims)
            .map_err(|_| TokenError::Rejected("signature or claims invalid"))?;
        let mut roles = Vec::new();
        for role in &claims.roles {
            roles.push(Role::parse(role).ok_or(TokenError::Rejected("unknown role"))?);
        }
        let tenant_id = claims
            .tenant_id
            .as_deref()
            .map(TenantId::try_from)
            .transpose()
            .map_err(|_| TokenError::Rejected("malformed tenant_id"))?;
        if let Some(policy) = &trusted.policy {
            policy.allows(tenant_id.as_ref(), &roles)?;
        }
        validate_grant(&claims.sub, tenant_id.as_ref(), &roles, 1)
            .map_err(|_| TokenError::Rejected("inconsistent roles and tenant"))?;
        Ok(Principal {
            subject: claims.sub,
            tenant_id,
            roles,
            token_id: claims.jti,
            issued_at: claims.iat,
            expires_at: claims.exp,
        })
    }
}

/// An identity provider's claims in the appliance's shape: the tenant from the claim the
/// provider names, `aud` as the one audience already checked (an OIDC id_token may list
/// several), and, where the provider sets no `jti` (OIDC does not require one in an
/// id_token), an id derived from the token itself, so revoking it by id still works.
fn identity_provider_claims(
    object: &mut serde_json::Map<String, serde_json::Value>,
    policy: &IssuerPolicy,
    token: &str,
) {
    let tenant = object.remove(&policy.tenant_claim);
    object.remove("tenant_id");
    if let Some(tenant) = tenant {
        object.insert("tenant_id".to_owned(), tenant);
    }
    object.insert(
        "aud".to_owned(),
        serde_json::Value::String(policy.audience.clone()),
    );
    if !object.get("jti").is_some_and(serde_json::Value::is_string) {
        let digest = sha2::Sha256::digest(token.as_bytes());
        let id = hex::encode(&digest[..16]);
        object.insert(
            "jti".to_owned(),
            serde_json::Value::String(format!("idp-{id}")),
        );
    }
}

impl Verifier {
    /// Ablation test builds only, for the isolation suite with both the gateway and the
    /// application scope switched off: the claims of a token, signature unchecked.
    #[cfg(feature = "ablation")]
    pub fn claims_unverified(token: &str) -> Option<Principal> {
        let claims = jsonwebtoken::dangerous::insecure_decode::<Claims>(token)
            .ok()?
            .claims;
        Some(Principal {
            subject: claims.sub,
            tenant_id: claims
                .tenant_id
                .as_deref()
                .and_then(|t| TenantId::try_from(t).ok()),
            roles: claims
                .roles
                .iter()
                .filter_map(|role| Role::parse(role))
                .collect(),
            token_id: claims.jti,
            issued_at: claims.iat,
            expires_at: claims.exp,
        })
    }
}
