//! Token verification: the appliance's access-token key and configured identity-provider
//! keys, each with its algorithm allow-list.

use super::*;

struct TrustedKey {
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
    issuer: String,
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
                typ: Some(Purpose::AccessToken.typ()),
            },
        );
        Verifier { keys }
    }

    /// Trusts the keys of an identity provider (a JWKS file) for tokens whose `iss` is
    /// `issuer`. Each key is bound to the one algorithm its type allows: RS256 for RSA,
    /// ES256 for P-256, EdDSA for Ed25519. Keys without a `kid` are refused.
    pub fn trust_jwks_file(&mut self, path: &Path, issuer: &str) -> Result<usize, TokenError> {
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
                    issuer: issuer.to_owned(),
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
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[trusted.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        let data = jsonwebtoken::decode::<Claims>(token, &trusted.key, &validation)
            .map_err(|_| TokenError::Rejected("signature or claims invalid"))?;
        let claims = data.claims;
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
