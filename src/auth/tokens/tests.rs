use super::*;
use base64::Engine;

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn setup() -> (Signer, Verifier, TenantId) {
    let signer = Signer::from_seed(&SecretKey::generate()).unwrap();
    let verifier = Verifier::new(&signer);
    (signer, verifier, TenantId::generate())
}

#[test]
fn minted_tokens_verify_with_their_roles_and_tenant() {
    let (signer, verifier, tenant) = setup();
    let token = signer
        .mint("alice", Some(&tenant), &[Role::Reader], 60)
        .unwrap();
    let principal = verifier.verify(&token).unwrap();
    assert_eq!(principal.tenant_id, Some(tenant));
    assert_eq!(principal.roles, vec![Role::Reader]);
    let admin = signer
        .mint("ops", None, &[Role::PlatformAdmin], 60)
        .unwrap();
    assert_eq!(verifier.verify(&admin).unwrap().tenant_id, None);
}

#[test]
fn attacks_are_rejected() {
    let (signer, verifier, tenant) = setup();
    let token = signer
        .mint("alice", Some(&tenant), &[Role::Reader], 60)
        .unwrap();
    let parts: Vec<&str> = token.split('.').collect();
    // alg: none
    let none_header =
        b64(format!(r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#, signer.kid()).as_bytes());
    assert!(
        verifier
            .verify(&format!("{none_header}.{}.", parts[1]))
            .is_err()
    );
    // HS256 "signed" with the public key
    let hs_header = Header {
        kid: Some(signer.kid().to_owned()),
        ..Header::new(Algorithm::HS256)
    };
    let claims: Claims = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    let forged = jsonwebtoken::encode(
        &hs_header,
        &claims,
        &EncodingKey::from_secret(&signer.public_key()),
    )
    .unwrap();
    assert_eq!(
        verifier.verify(&forged),
        Err(TokenError::Rejected("algorithm not allowed for this key"))
    );
    // tampered payload: another tenant
    let mut tampered_claims = claims.clone();
    tampered_claims.tenant_id = Some(TenantId::generate().to_string());
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(&serde_json::to_vec(&tampered_claims).unwrap()),
        parts[2]
    );
    assert!(verifier.verify(&tampered).is_err());
    // unknown kid: a token from another appliance
    let (other, _, _) = setup();
    assert_eq!(
        verifier.verify(
            &other
                .mint("alice", Some(&tenant), &[Role::Reader], 60)
                .unwrap()
        ),
        Err(TokenError::Rejected("unknown kid"))
    );
    // expired, wrong audience, wrong issuer
    let mut expired = claims.clone();
    expired.exp = unix_now() - 3600;
    expired.iat = expired.exp - 60;
    expired.nbf = None;
    assert!(verifier.verify(&signer.sign(&expired).unwrap()).is_err());
    let mut audience = claims.clone();
    audience.aud = "someone-else".into();
    assert!(verifier.verify(&signer.sign(&audience).unwrap()).is_err());
    let mut issuer = claims.clone();
    issuer.iss = "evil".into();
    assert!(verifier.verify(&signer.sign(&issuer).unwrap()).is_err());
    // not yet valid
    let mut future = claims;
    future.nbf = Some(unix_now() + 3600);
    assert!(verifier.verify(&signer.sign(&future).unwrap()).is_err());
    assert!(verifier.verify("garbage").is_err());
}

#[test]
fn grants_are_consistent() {
    let tenant = TenantId::generate();
    assert!(validate_grant("u", Some(&tenant), &[Role::PlatformAdmin], 60).is_err());
    assert!(validate_grant("u", None, &[Role::Reader], 60).is_err());
    assert!(validate_grant("u", Some(&tenant), &[], 60).is_err());
    assert!(validate_grant("u", Some(&tenant), &[Role::Reader], MAX_TTL_SECONDS + 1).is_err());
    assert!(validate_grant("u", Some(&tenant), &[Role::Editor, Role::Auditor], 60).is_ok());
}

#[test]
fn identity_provider_keys_from_a_jwks_file_are_bound_to_their_issuer_and_algorithm() {
    let (signer, mut verifier, tenant) = setup();
    let issuer = "https://idp.example.com";
    // An EdDSA key and an ES256 key, as a company's identity provider would publish.
    let ed_seed = SecretKey::generate();
    let ed_key = SigningKey::from_bytes(ed_seed.expose());
    let ec_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let ec_public = ec_key.public_key_raw();
    let jwks = serde_json::json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "x": b64(&ed_key.verifying_key().to_bytes()), "kid": "idp-ed", "alg": "EdDSA"},
        {"kty": "EC", "crv": "P-256", "x": b64(&ec_public[1..33]), "y": b64(&ec_public[33..65]), "kid": "idp-ec", "alg": "ES256"},
    ]});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks.to_string()).unwrap();
    assert_eq!(
        verifier
            .trust_identity_provider(&path, bound(issuer, std::slice::from_ref(&tenant), false))
            .unwrap(),
        2
    );

    let now = unix_now();
    let claims = |iss: &str| Claims {
        sub: "sso-user".into(),
        tenant_id: Some(tenant.to_string()),
        roles: vec!["reader".into()],
        iss: iss.into(),
        aud: AUDIENCE.into(),
        exp: now + 60,
        iat: now,
        nbf: None,
        jti: "j1".into(),
        minted_by: None,
    };
    let sign = |kid: &str, algorithm: Algorithm, key: &EncodingKey, claims: &Claims| {
        let header = Header {
            kid: Some(kid.into()),
            ..Header::new(algorithm)
        };
        jsonwebtoken::encode(&header, claims, key).unwrap()
    };
    let ed_encoding = EncodingKey::from_ed_der(ed_key.to_pkcs8_der().unwrap().as_bytes());
    let ec_encoding = EncodingKey::from_ec_der(&ec_key.serialize_der());
    let principal = verifier
        .verify(&sign(
            "idp-ed",
            Algorithm::EdDSA,
            &ed_encoding,
            &claims(issuer),
        ))
        .unwrap();
    assert_eq!(principal.subject, "sso-user");
    assert!(
        verifier
            .verify(&sign(
                "idp-ec",
                Algorithm::ES256,
                &ec_encoding,
                &claims(issuer)
            ))
            .is_ok()
    );
    // The IdP's key cannot vouch for the appliance's issuer, nor with another algorithm.
    assert!(
        verifier
            .verify(&sign(
                "idp-ec",
                Algorithm::ES256,
                &ec_encoding,
                &claims(ISSUER)
            ))
            .is_err()
    );
    assert!(
        verifier
            .verify(&sign(
                "idp-ed",
                Algorithm::ES256,
                &ec_encoding,
                &claims(issuer)
            ))
            .is_err()
    );
    // The appliance's own tokens still verify.
    assert!(
        verifier
            .verify(
                &signer
                    .mint("a", Some(&tenant), &[Role::Reader], 60)
                    .unwrap()
            )
            .is_ok()
    );
    // A JWKS key without a kid is refused.
    std::fs::write(&path, r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#).unwrap();
    assert!(
        verifier
            .trust_identity_provider(&path, bound(issuer, &[], false))
            .is_err()
    );
}

fn bound(issuer: &str, tenants: &[TenantId], operator: bool) -> IssuerPolicy {
    IssuerPolicy {
        issuer: issuer.to_owned(),
        tenants: tenants.to_vec(),
        tenant_claim: IssuerPolicy::DEFAULT_TENANT_CLAIM.to_owned(),
        roles: IssuerPolicy::TENANT_ROLES.to_vec(),
        operator,
        audience: IssuerPolicy::DEFAULT_AUDIENCE.to_owned(),
    }
}

#[test]
fn issue_11_an_identity_provider_acts_only_for_its_tenants_and_roles() {
    let (_signer, mut verifier, alpha) = setup();
    let beta = TenantId::generate();
    let dir = tempfile::tempdir().unwrap();
    // Two providers: Alpha's (tenant in `org`, readers only) and the operator's.
    let mut providers = Vec::new();
    for (name, policy) in [
        (
            "alpha",
            IssuerPolicy {
                tenant_claim: "org".into(),
                roles: vec![Role::Reader],
                ..bound("https://alpha.example", std::slice::from_ref(&alpha), false)
            },
        ),
        ("ops", bound("https://ops.example", &[], true)),
    ] {
        let key = SigningKey::from_bytes(SecretKey::generate().expose());
        let jwks = serde_json::json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": b64(&key.verifying_key().to_bytes()), "kid": name, "alg": "EdDSA"},
        ]});
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, jwks.to_string()).unwrap();
        verifier.trust_identity_provider(&path, policy).unwrap();
        providers.push((name, key));
    }
    let now = unix_now();
    let token = |provider: usize, claims: serde_json::Value| {
        let (kid, key) = &providers[provider];
        let mut claims = claims;
        let issuer = ["https://alpha.example", "https://ops.example"][provider];
        for (field, value) in [
            ("sub", json_str("sso-user")),
            ("iss", json_str(issuer)),
            ("aud", json_str(AUDIENCE)),
            ("exp", (now + 60).into()),
            ("iat", now.into()),
            ("jti", json_str("j")),
        ] {
            claims[field] = value;
        }
        let header = Header {
            kid: Some((*kid).into()),
            ..Header::new(Algorithm::EdDSA)
        };
        let encoding = EncodingKey::from_ed_der(key.to_pkcs8_der().unwrap().as_bytes());
        jsonwebtoken::encode(&header, &claims, &encoding).unwrap()
    };
    let reader =
        |tenant: &TenantId| serde_json::json!({"org": tenant.as_str(), "roles": ["reader"]});
    // Alpha's provider reaches Alpha, through its own claim.
    let principal = verifier.verify(&token(0, reader(&alpha))).unwrap();
    assert_eq!(principal.tenant_id, Some(alpha.clone()));
    // Not Beta, not a role it may not grant, not platform_admin, and `tenant_id` is not
    // its tenant claim.
    let not_bound = |result: Result<Principal, TokenError>| match result {
        Err(TokenError::IssuerNotBound { tenant, .. }) => tenant,
        other => panic!("expected IssuerNotBound, got {other:?}"),
    };
    assert_eq!(
        not_bound(verifier.verify(&token(0, reader(&beta)))),
        Some(beta.clone())
    );
    assert_eq!(
        not_bound(verifier.verify(&token(
            0,
            serde_json::json!({"org": alpha.as_str(), "roles": ["admin"]})
        ))),
        Some(alpha.clone())
    );
    assert_eq!(
        not_bound(verifier.verify(&token(0, serde_json::json!({"roles": ["platform_admin"]})))),
        None
    );
    assert!(
        verifier
            .verify(&token(
                0,
                serde_json::json!({"tenant_id": beta.as_str(), "org": alpha.as_str(), "roles": ["reader"]})
            ))
            .unwrap()
            .tenant_id
            == Some(alpha.clone())
    );
    // The operator's provider grants platform_admin, but names no tenant.
    let admin = verifier
        .verify(&token(1, serde_json::json!({"roles": ["platform_admin"]})))
        .unwrap();
    assert_eq!(admin.roles, [Role::PlatformAdmin]);
    assert!(
        verifier
            .verify(&token(
                1,
                serde_json::json!({"tenant_id": alpha.as_str(), "roles": ["reader"]})
            ))
            .is_err()
    );
    // A provider cannot be configured to list platform_admin among its roles.
    let mut granting = bound("https://x.example", &[], false);
    granting.roles.push(Role::PlatformAdmin);
    assert!(granting.check().is_err());
}

fn json_str(text: &str) -> serde_json::Value {
    serde_json::Value::String(text.to_owned())
}

/// Issue 13: an OIDC id_token is addressed to the web app's client (`aud` = client_id,
/// possibly among others) and may carry no `jti`. It is accepted only from a provider
/// configured with that audience, never by default.
#[test]
fn issue_13_an_id_token_is_accepted_only_for_the_configured_audience() {
    let (_signer, _, tenant) = setup();
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::from_bytes(SecretKey::generate().expose());
    let jwks = serde_json::json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "x": b64(&key.verifying_key().to_bytes()), "kid": "idp-1", "alg": "EdDSA"},
    ]});
    let path = dir.path().join("idp.json");
    std::fs::write(&path, jwks.to_string()).unwrap();
    let now = unix_now();
    let id_token = |aud: serde_json::Value| {
        let claims = serde_json::json!({"sub": "sso-user", "iss": "https://idp.example",
            "aud": aud, "exp": now + 60, "iat": now, "nonce": "n-1",
            "tenant_id": tenant.as_str(), "roles": ["reader"]});
        let header = Header {
            kid: Some("idp-1".into()),
            ..Header::new(Algorithm::EdDSA)
        };
        let encoding = EncodingKey::from_ed_der(key.to_pkcs8_der().unwrap().as_bytes());
        jsonwebtoken::encode(&header, &claims, &encoding).unwrap()
    };
    let for_client = id_token(serde_json::json!(["bulkhead-web", "other-app"]));
    let signer = Signer::from_seed(&SecretKey::generate()).unwrap();

    let mut by_default = Verifier::new(&signer);
    by_default
        .trust_identity_provider(
            &path,
            bound("https://idp.example", std::slice::from_ref(&tenant), false),
        )
        .unwrap();
    assert_eq!(
        by_default.verify(&for_client),
        Err(TokenError::Rejected("signature or claims invalid"))
    );

    let mut configured = Verifier::new(&signer);
    let policy = IssuerPolicy {
        audience: "bulkhead-web".into(),
        ..bound("https://idp.example", std::slice::from_ref(&tenant), false)
    };
    configured.trust_identity_provider(&path, policy).unwrap();
    let principal = configured.verify(&for_client).unwrap();
    assert_eq!(principal.tenant_id, Some(tenant.clone()));
    assert_eq!(principal.roles, [Role::Reader]);
    // No `jti` from the provider: one derived from the token, the same each time.
    assert!(
        principal.token_id.starts_with("idp-"),
        "{}",
        principal.token_id
    );
    assert_eq!(
        configured.verify(&for_client).unwrap().token_id,
        principal.token_id
    );
    // A token for the appliance's default audience is not this provider's any more.
    assert!(
        configured
            .verify(&id_token(serde_json::json!("bulkhead")))
            .is_err()
    );
    // An empty audience is refused at configuration.
    let empty = IssuerPolicy {
        audience: " ".into(),
        ..bound("https://idp.example", &[], false)
    };
    assert!(empty.check().is_err());
}
