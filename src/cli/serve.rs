//! `bulkhead serve` and `bulkhead certificate verify`.

use std::io::Write;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::appliance::Appliance;
use crate::auth::tokens::{IssuerPolicy, Role};
use crate::config::{Config, ProcessRole};
use crate::ids::TenantId;

use super::UserFailure;
use super::args::ServeArgs;

pub(super) fn verify_certificate(
    config: &Config,
    file: &Path,
    jwks: Option<&Path>,
) -> Result<(), UserFailure> {
    let read_json = |path: &Path| -> Result<serde_json::Value, UserFailure> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| UserFailure(format!("cannot read {}: {error}", path.display())))?;
        serde_json::from_str(&text)
            .map_err(|error| UserFailure(format!("{} is not JSON: {error}", path.display())))
    };
    let document = read_json(file)?;
    let jws = document["jws"].as_str().ok_or_else(|| {
        UserFailure("the file has no `jws`: use the JSON `tenant delete` printed".into())
    })?;
    // The signature must be a deletion certificate's (its own `typ` and key), and the
    // claims a certificate's: an access token or a checkpoint wrapped as one is refused.
    let invalid = || {
        UserFailure("certificate signature is invalid for the appliance's certificate keys: this is not a deletion certificate it signed".into())
    };
    let payload = match jwks {
        Some(path) => read_json(path)?["keys"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .find_map(|key| crate::auth::tokens::verify_signed_document(jws, key).ok())
            .ok_or_else(invalid)?,
        None => crate::auth::tokens::Signer::load(&config.data_dir)
            .map_err(|error| UserFailure(error.to_string()))?
            .verify_certificate(jws)
            .map_err(|_| invalid())?,
    };
    if payload != document["certificate"] {
        return Err(UserFailure(
            "the certificate JSON differs from what was signed".into(),
        ));
    }
    println!(
        "certificate valid: tenant {} deleted at {}",
        payload["tenant_id"].as_str().unwrap_or("?"),
        payload["completed_at"].as_str().unwrap_or("?")
    );
    Ok(())
}

pub(super) fn serve(mut config: Config, args: ServeArgs) -> Result<(), UserFailure> {
    use crate::auth::tokens::{Signer, Verifier};
    let args = args.with_file()?;
    let sign_in = crate::api::SignIn::new(sign_in_providers(&args)?).map_err(UserFailure)?;
    if let Some(budget) = args.open_index_budget_bytes {
        config.open_index_budget_bytes = budget;
    }
    if let Some(idle) = seconds(args.open_index_idle_seconds) {
        config.open_index_idle = idle;
    }
    let failure = |error: &dyn std::fmt::Display| UserFailure(error.to_string());
    if args.tls_cert.is_some() != args.tls_key.is_some() {
        return Err(UserFailure(
            "TLS needs both --tls-cert and --tls-key".into(),
        ));
    }
    // An enterprise tenant's own process (issue 12) reads its tenant first: it opens
    // that tenant only.
    let spec = if args.tenant_process {
        let spec = read_child_spec()?;
        config.process_role = ProcessRole::Tenant(spec.0.clone());
        Some(spec)
    } else {
        config.process_role = ProcessRole::Supervisor;
        None
    };
    let appliance = std::sync::Arc::new(Appliance::open(config.clone())?);
    let signer = Signer::load(&config.data_dir).map_err(|error| failure(&error))?;
    let mut verifier = Verifier::new(&signer);
    for (jwks, policy) in identity_providers(&args)? {
        let binding = if policy.tenants.is_empty() {
            "no tenant".to_owned()
        } else {
            format!("{} tenants", policy.tenants.len())
        };
        let operator = if policy.operator { ", operator" } else { "" };
        let issuer = policy.issuer.clone();
        let count = verifier
            .trust_identity_provider(&jwks, policy)
            .map_err(|error| failure(&error))?;
        if spec.is_none() {
            eprintln!(
                "trusting {count} keys of identity provider {issuer} ({binding}{operator}) from {}",
                jwks.display()
            );
        }
    }
    let state = crate::api::AppState::new(appliance.clone(), signer, verifier, limits(&args))
        .with_sign_in(sign_in);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| failure(&error))?;
    if let Some((tenant_id, socket, identity)) = spec {
        if let Some(identity) = identity {
            appliance.adopt_customer_key(&tenant_id, &identity)?;
        }
        let state = state.serving_only(tenant_id);
        return runtime.block_on(serve_tenant_process(socket, state));
    }
    if !args.lazy_models {
        warm_up(appliance.clone());
    }
    let processes = crate::api::processes::TenantProcesses::new(process_settings(&config, &args)?)
        .map_err(|error| failure(&error))?;
    let state = state.with_tenant_processes(processes);
    let listen = args
        .listen
        .clone()
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(certificate), Some(private_key)) => Some(crate::server::TlsFiles {
            certificate,
            private_key,
        }),
        _ => None,
    };
    runtime.block_on(async move {
        let server = crate::server::Server::bind(&listen, tls.as_ref(), state)
            .await
            .map_err(|error| failure(&error))?;
        let address = server.local_addr().map_err(|error| failure(&error))?;
        let scheme = if server.is_tls() { "https" } else { "http" };
        println!("listening on {scheme}://{address}");
        let _ = std::io::stdout().flush();
        server
            .run(crate::server::shutdown_signal())
            .await
            .map_err(|error| failure(&error))
    })
}

/// The HTTP edge's limits from the options.
fn limits(args: &ServeArgs) -> crate::api::Limits {
    let defaults = crate::api::Limits::default();
    crate::api::Limits {
        inference_workers: args
            .inference_workers
            .unwrap_or(defaults.inference_workers)
            .max(1),
        inference_queue: args.inference_queue.unwrap_or(defaults.inference_queue),
        premium_workers: args.premium_workers.unwrap_or(defaults.premium_workers),
        premium_queue: args.premium_queue.unwrap_or(defaults.premium_queue),
        tenant_inference_share: args
            .tenant_inference_share
            .unwrap_or(defaults.tenant_inference_share),
        tenant_requests_per_minute: args
            .rate_limit
            .unwrap_or(defaults.tenant_requests_per_minute),
        premium_rate_multiplier: args
            .premium_rate_multiplier
            .unwrap_or(defaults.premium_rate_multiplier)
            .max(1),
        request_timeout: seconds(args.request_timeout).unwrap_or(defaults.request_timeout),
        max_concurrent_uploads: args
            .max_uploads
            .unwrap_or(defaults.max_concurrent_uploads)
            .max(1),
        failures: crate::api::FailureLimits {
            burst: args.failure_burst.unwrap_or(defaults.failures.burst),
            window: seconds(args.failure_window).unwrap_or(defaults.failures.window),
        },
        header_read_timeout: seconds(args.header_timeout).unwrap_or(defaults.header_read_timeout),
        idle_timeout: seconds(args.idle_timeout).unwrap_or(defaults.idle_timeout),
    }
}

/// Default address space of an enterprise tenant's process: room for the models, its
/// indexes and the thread stacks.
const DEFAULT_ENTERPRISE_MEMORY: u64 = 8 << 30;

/// How the main server runs enterprise tenants' processes: this binary, with the
/// arguments it was started with.
fn process_settings(
    config: &Config,
    args: &ServeArgs,
) -> Result<crate::api::processes::ProcessSettings, UserFailure> {
    let program = std::env::current_exe()
        .map_err(|error| UserFailure(format!("cannot find this program's path: {error}")))?;
    let socket_dir = config.data_dir.join("processes");
    // A Unix socket's path is at most 107 bytes.
    if socket_dir.as_os_str().len() + 32 > 107 {
        return Err(UserFailure(format!(
            "the data directory's path is too long for the enterprise tenants' sockets under {}: use a shorter one",
            socket_dir.display()
        )));
    }
    Ok(crate::api::processes::ProcessSettings {
        program,
        args: std::env::args_os().skip(1).collect(),
        socket_dir,
        memory_limit_bytes: args
            .enterprise_memory_limit_bytes
            .unwrap_or(DEFAULT_ENTERPRISE_MEMORY)
            .max(256 << 20),
        health_interval: seconds(args.enterprise_health_interval)
            .unwrap_or(std::time::Duration::from_secs(5)),
        health_timeout: seconds(args.enterprise_health_timeout)
            .unwrap_or(std::time::Duration::from_secs(10)),
        start_timeout: std::time::Duration::from_secs(30),
    })
}

/// An enterprise tenant's process: its tenant, socket and (BYOK) customer identity, one
/// JSON line on stdin from the main server.
fn read_child_spec() -> Result<(TenantId, PathBuf, Option<Zeroizing<String>>), UserFailure> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|error| UserFailure(format!("no tenant on stdin: {error}")))?;
    let spec: crate::api::processes::ChildSpec = serde_json::from_str(&line)
        .map_err(|error| UserFailure(format!("the tenant on stdin is malformed: {error}")))?;
    let tenant_id = TenantId::try_from(spec.tenant_id.as_str())
        .map_err(|_| UserFailure("the tenant on stdin is not a tenant id".into()))?;
    Ok((
        tenant_id,
        spec.socket,
        spec.customer_identity.map(Zeroizing::new),
    ))
}

/// Loads the embedding model and the language model on a thread of their own while the
/// server starts listening: requests that need one before it is ready wait for it (the
/// appliance loads each once); a missing model is logged here and reported to the asks
/// that need it.
fn warm_up(appliance: std::sync::Arc<Appliance>) {
    let spawned = std::thread::Builder::new()
        .name("model-warm-up".into())
        .spawn(move || {
            let started = std::time::Instant::now();
            let loaded = appliance
                .embedder()
                .map(drop)
                .and_then(|()| appliance.generator().map(drop));
            match loaded {
                Ok(()) => tracing::info!(
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "models loaded"
                ),
                Err(error) => tracing::warn!(%error, "models not loaded at start"),
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "models will load at the first request");
    }
}

/// Serves one enterprise tenant on its Unix socket until the main server closes this
/// process's stdin (it stopped or died) or SIGTERM.
async fn serve_tenant_process(
    socket: PathBuf,
    state: crate::api::AppState,
) -> Result<(), UserFailure> {
    use std::os::unix::fs::PermissionsExt;
    let failure = |error: &dyn std::fmt::Display| UserFailure(error.to_string());
    let _ = std::fs::remove_file(&socket);
    let listener = tokio::net::UnixListener::bind(&socket).map_err(|error| failure(&error))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|error| failure(&error))?;
    let (closed, stdin_closed) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        let _ = closed.send(());
    });
    println!("ready");
    let _ = std::io::stdout().flush();
    let shutdown = async move {
        tokio::select! {
            () = crate::server::shutdown_signal() => {}
            _ = stdin_closed => tracing::info!("main server gone: stopping"),
        }
    };
    let result = crate::server::serve_unix(listener, state, shutdown)
        .await
        .map_err(|error| failure(&error));
    let _ = std::fs::remove_file(&socket);
    result
}

/// A duration option given in seconds (at least one).
fn seconds(value: Option<u64>) -> Option<std::time::Duration> {
    value.map(|seconds| std::time::Duration::from_secs(seconds.max(1)))
}

/// The identity providers to trust, each with its binding: the `[[identity_provider]]`
/// tables, and the one of `--jwks`/`--jwks-issuer` (the operator's: platform_admin, and the
/// `--jwks-tenant` tenants only).
fn identity_providers(
    args: &ServeArgs,
) -> Result<Vec<(std::path::PathBuf, IssuerPolicy)>, UserFailure> {
    if args.jwks.is_some() != args.jwks_issuer.is_some() {
        return Err(UserFailure(
            "an identity provider needs both --jwks and --jwks-issuer".into(),
        ));
    }
    let tenants = |issuer: &str, tenants: &[String]| -> Result<Vec<TenantId>, UserFailure> {
        tenants
            .iter()
            .map(|tenant| {
                TenantId::try_from(tenant.as_str()).map_err(|_| {
                    UserFailure(format!(
                        "identity provider {issuer}: {tenant:?} is not a tenant id (t_ and 20 hex digits: `bulkhead tenant list`)"
                    ))
                })
            })
            .collect()
    };
    let mut providers = Vec::new();
    if let (Some(jwks), Some(issuer)) = (&args.jwks, &args.jwks_issuer) {
        if args.jwks_tenant.is_empty() {
            eprintln!(
                "identity provider {issuer} is bound to no tenant: its tokens may carry platform_admin only (bind tenants with --jwks-tenant or [[identity_provider]])"
            );
        }
        providers.push((
            jwks.clone(),
            IssuerPolicy {
                issuer: issuer.clone(),
                tenants: tenants(issuer, &args.jwks_tenant)?,
                tenant_claim: IssuerPolicy::DEFAULT_TENANT_CLAIM.to_owned(),
                roles: IssuerPolicy::TENANT_ROLES.to_vec(),
                operator: true,
                audience: IssuerPolicy::DEFAULT_AUDIENCE.to_owned(),
            },
        ));
    }
    for provider in &args.identity_provider {
        let issuer = &provider.issuer;
        let roles = match &provider.roles {
            None => IssuerPolicy::TENANT_ROLES.to_vec(),
            Some(roles) => roles
                .iter()
                .map(|role| {
                    Role::parse(role).ok_or_else(|| {
                        UserFailure(format!(
                            "identity provider {issuer}: unknown role {role:?} (reader, editor, admin, auditor)"
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        providers.push((
            provider.jwks.clone(),
            IssuerPolicy {
                issuer: issuer.clone(),
                tenants: tenants(issuer, &provider.tenants)?,
                tenant_claim: provider
                    .tenant_claim
                    .clone()
                    .unwrap_or_else(|| IssuerPolicy::DEFAULT_TENANT_CLAIM.to_owned()),
                roles,
                operator: provider.operator,
                audience: provider
                    .audience
                    .clone()
                    .unwrap_or_else(|| IssuerPolicy::DEFAULT_AUDIENCE.to_owned()),
            },
        ));
    }
    Ok(providers)
}

/// The web app's sign-in providers: the `[[identity_provider]]` tables with an
/// authorization endpoint, a token endpoint and a client id (all three or none).
fn sign_in_providers(args: &ServeArgs) -> Result<Vec<crate::api::SignInProvider>, UserFailure> {
    let mut providers = Vec::new();
    for provider in &args.identity_provider {
        let issuer = &provider.issuer;
        let (authorization_endpoint, token_endpoint, client_id) = match (
            &provider.authorization_endpoint,
            &provider.token_endpoint,
            &provider.client_id,
        ) {
            (None, None, None) => continue,
            (Some(authorization), Some(token), Some(client)) => {
                (authorization.clone(), token.clone(), client.clone())
            }
            _ => {
                return Err(UserFailure(format!(
                    "identity provider {issuer}: web sign-in needs authorization_endpoint, token_endpoint and client_id together"
                )));
            }
        };
        providers.push(crate::api::SignInProvider {
            issuer: issuer.clone(),
            display_name: provider
                .display_name
                .clone()
                .unwrap_or_else(|| issuer.clone()),
            authorization_endpoint,
            token_endpoint,
            client_id,
            scopes: provider
                .scopes
                .clone()
                .unwrap_or_else(|| "openid".to_owned()),
            audience: provider
                .audience
                .clone()
                .unwrap_or_else(|| IssuerPolicy::DEFAULT_AUDIENCE.to_owned()),
        });
    }
    Ok(providers)
}
