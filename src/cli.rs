//! The command line: parses arguments into typed commands, calls the [`Appliance`], and
//! prints human-readable text or (`--json`) the wire shapes of API.md.
//!
//! Exit codes: 0 success, 1 a failure the user can fix (message on stderr), 2 bad usage.
//! This module is glue: it holds no business rules of its own.

use std::io::{IsTerminal, Write};

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use crate::appliance::{Answer, Appliance, ApplianceError, IndexOutcome};
use crate::auth::{OperatorReason, TenantScope};
use crate::config::Config;
use crate::ids::TenantId;
use crate::index::SearchMode;
use crate::store::{Store, Tier};
use crate::wire;

/// The version, marked in a test build whose isolation layers can be switched off.
pub const VERSION: &str = if crate::isolation::ABLATION_BUILD {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (ablation test build: not for production)"
    )
} else {
    env!("CARGO_PKG_VERSION")
};

#[derive(Parser, Debug)]
#[command(
    name = "bulkhead",
    version = crate::cli::VERSION,
    about = "Multi-tenant contract Q&A with local models"
)]
pub struct Cli {
    /// Data directory [env: BULKHEAD_DATA_DIR, default ./bulkhead-data]
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Models directory [env: BULKHEAD_MODELS_DIR, default ./models]
    #[arg(long, global = true)]
    models_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create the data directory, master key (0600), signing key and database; idempotent
    Init,
    /// Manage tenants
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Upload files or folders for a tenant and index them
    Ingest {
        #[arg(long)]
        tenant: String,
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Answer a question from the tenant's documents, with citations
    Ask {
        #[arg(long)]
        tenant: String,
        question: String,
        #[arg(long)]
        top_k: Option<usize>,
        #[arg(long)]
        json: bool,
    },
    /// Search the tenant's documents (hybrid, vector or keyword)
    Search {
        #[arg(long)]
        tenant: String,
        query: String,
        #[arg(long, default_value_t = 5)]
        top_k: usize,
        #[arg(long, default_value = "hybrid", value_parser = ["hybrid", "vector", "keyword"])]
        mode: String,
        #[arg(long)]
        json: bool,
    },
    /// List the tenant's documents and their indexing status
    Documents {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
    /// The whole story on the bundled sample contracts, in a temporary data directory
    Demo,
    /// Check the audit log's hash chain; exit code 1 when it is broken
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Write the tenant's portable archive (originals, text, chunks, embeddings, metadata)
    Export {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        out: PathBuf,
        /// Encrypt to this age X25519 recipient (`age1...`)
        #[arg(long)]
        recipient: Option<String>,
    },
    /// Load an export into a tenant of this appliance
    Import {
        #[arg(long)]
        tenant: String,
        file: PathBuf,
        /// File holding the age identity (`AGE-SECRET-KEY-...`) for an encrypted export
        #[arg(long)]
        identity: Option<PathBuf>,
    },
    /// Compliance reports
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Verify a deletion certificate
    Certificate {
        #[command(subcommand)]
        command: CertificateCommand,
    },
    /// Serve the HTTP API (plain HTTP on loopback by default; TLS 1.3 only with a certificate)
    Serve(ServeArgs),
    /// Print a token signed with the appliance's key
    Token(TokenArgs),
}

/// `serve` options. Each comes from the flag, else its environment variable, else the
/// `--config` file (TOML, same names with underscores), else the default.
#[derive(clap::Args, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeArgs {
    /// TOML file with any of the options below (flags and environment take precedence)
    #[arg(long, env = "BULKHEAD_CONFIG")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "BULKHEAD_LISTEN")]
    listen: Option<String>,
    /// PEM certificate chain; enables TLS 1.3 (with --tls-key)
    #[arg(long, env = "BULKHEAD_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert
    #[arg(long, env = "BULKHEAD_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// JWKS file of an identity provider whose tokens are accepted (with --jwks-issuer)
    #[arg(long, env = "BULKHEAD_JWKS")]
    jwks: Option<PathBuf>,
    /// The `iss` of the identity provider's tokens
    #[arg(long, env = "BULKHEAD_JWKS_ISSUER")]
    jwks_issuer: Option<String>,
    /// Inference requests (search, ask) running at once [default: 2]
    #[arg(long, env = "BULKHEAD_INFERENCE_WORKERS")]
    inference_workers: Option<usize>,
    /// Inference requests allowed to wait; beyond that, 503 overloaded [default: 8]
    #[arg(long, env = "BULKHEAD_INFERENCE_QUEUE")]
    inference_queue: Option<usize>,
    /// Requests per minute per tenant, 0 for unlimited [default: 600]
    #[arg(long, env = "BULKHEAD_RATE_LIMIT")]
    rate_limit: Option<u32>,
    /// Longest time for one search or ask, in seconds [default: 120]
    #[arg(long, env = "BULKHEAD_REQUEST_TIMEOUT")]
    request_timeout: Option<u64>,
}

impl ServeArgs {
    /// Fills what flags and environment left unset from the config file.
    fn with_file(mut self) -> Result<ServeArgs, UserFailure> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path).map_err(|error| {
            UserFailure(format!(
                "cannot read config file {}: {error}",
                path.display()
            ))
        })?;
        let file: ServeArgs = toml::from_str(&text).map_err(|error| {
            UserFailure(format!(
                "config file {} is invalid: {error}",
                path.display()
            ))
        })?;
        macro_rules! fill {
            ($($field:ident),*) => { $( if self.$field.is_none() { self.$field = file.$field; } )* };
        }
        fill!(
            listen,
            tls_cert,
            tls_key,
            jwks,
            jwks_issuer,
            inference_workers,
            inference_queue,
            rate_limit,
            request_timeout
        );
        Ok(self)
    }
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["platform_admin", "tenant"])))]
struct TokenArgs {
    /// A platform administrator's token (manages tenants, reads no tenant content)
    #[arg(long)]
    platform_admin: bool,
    /// The tenant the token belongs to
    #[arg(long, requires_all = ["user", "role"])]
    tenant: Option<String>,
    /// The user's id (`sub`)
    #[arg(long)]
    user: Option<String>,
    /// reader, editor, admin or auditor (repeatable)
    #[arg(long, value_parser = ["reader", "editor", "admin", "auditor"])]
    role: Vec<String>,
    /// Lifetime: 90s, 30m, 1h, 7d
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    ttl: u64,
    #[arg(long)]
    json: bool,
}

fn parse_ttl(text: &str) -> Result<u64, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let number: u64 = number
        .parse()
        .map_err(|_| format!("invalid ttl `{text}`: use e.g. 90s, 30m, 1h, 7d"))?;
    let seconds = match unit {
        "" | "s" => number,
        "m" => number * 60,
        "h" => number * 3600,
        "d" => number * 86_400,
        _ => return Err(format!("invalid ttl unit in `{text}`: use s, m, h or d")),
    };
    Ok(seconds)
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Recompute the chain: prints {ok, entries, head} and where it breaks
    Verify,
}

#[derive(Subcommand, Debug)]
enum ReportCommand {
    /// Who accessed what, denied attempts, deletions and downloads for a period
    AccessReview {
        #[arg(long)]
        tenant: String,
        /// A calendar quarter, e.g. 2026Q4
        #[arg(long, conflicts_with_all = ["from", "to"])]
        quarter: Option<String>,
        /// Start (RFC 3339), inclusive
        #[arg(long)]
        from: Option<String>,
        /// End (RFC 3339), exclusive
        #[arg(long)]
        to: Option<String>,
        #[arg(long, default_value = "json", value_parser = ["json", "csv", "html"])]
        format: String,
    },
}

#[derive(Subcommand, Debug)]
enum CertificateCommand {
    /// Check a certificate file printed by `tenant delete` against the appliance's key
    Verify {
        file: PathBuf,
        /// Verify against this JWKS file (e.g. a saved /.well-known/jwks.json) instead of
        /// the data directory's key
        #[arg(long)]
        jwks: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum TenantCommand {
    /// Delete a tenant for good and print the signed deletion certificate (JSON)
    Delete { tenant: String },
    /// Create a tenant and print its id
    Create {
        name: String,
        #[arg(long, default_value = "standard", value_parser = ["standard", "premium", "enterprise"])]
        tier: String,
        #[arg(long)]
        json: bool,
    },
    /// List tenants
    List {
        #[arg(long)]
        json: bool,
    },
}

/// A failure to report on stderr with exit code 1.
#[derive(Debug)]
pub struct UserFailure(pub String);

impl From<ApplianceError> for UserFailure {
    fn from(error: ApplianceError) -> Self {
        UserFailure(error.to_string())
    }
}

impl From<crate::store::StoreError> for UserFailure {
    fn from(error: crate::store::StoreError) -> Self {
        UserFailure(error.to_string())
    }
}

pub fn run(cli: Cli) -> Result<(), UserFailure> {
    let config = Config::resolve(cli.data_dir.clone(), cli.models_dir.clone());
    match cli.command {
        Command::Init => {
            let report = Store::init(&config.data_dir)?;
            let created_signing_key = crate::auth::tokens::Signer::init(&config.data_dir)
                .map_err(|error| UserFailure(error.to_string()))?;
            println!(
                "initialised {} (master key {}, signing key {}, database {})",
                config.data_dir.display(),
                if report.created_master_key {
                    "created"
                } else {
                    "kept"
                },
                if created_signing_key {
                    "created"
                } else {
                    "kept"
                },
                if report.created_database {
                    "created"
                } else {
                    "kept"
                },
            );
            Ok(())
        }
        Command::Tenant { command } => {
            let appliance = Appliance::open(config)?;
            match command {
                TenantCommand::Create { name, tier, json } => {
                    let tier = Tier::parse(&tier).unwrap_or(Tier::Standard);
                    let tenant = appliance.create_tenant(&name, tier)?;
                    if json {
                        print_json(&wire::Tenant::from(&tenant));
                    } else {
                        println!("{}", tenant.tenant_id);
                    }
                }
                TenantCommand::Delete { tenant } => {
                    let tenant_id = TenantId::try_from(tenant.as_str()).map_err(|error| {
                        UserFailure(format!("{error}: `bulkhead tenant list` shows the tenants"))
                    })?;
                    let signer =
                        crate::auth::tokens::Signer::load(appliance.config().data_dir.as_path())
                            .map_err(|error| UserFailure(error.to_string()))?;
                    let deleted = appliance.delete_tenant(&tenant_id, "operator", &signer)?;
                    print_json(
                        &serde_json::json!({"certificate": deleted.certificate, "jws": deleted.jws}),
                    );
                }
                TenantCommand::List { json } => {
                    let tenants = appliance.list_tenants()?;
                    if json {
                        print_json(&wire::TenantList {
                            tenants: tenants.iter().map(wire::Tenant::from).collect(),
                        });
                    } else {
                        for tenant in &tenants {
                            println!(
                                "{}  {:<10}  {}  {}",
                                tenant.tenant_id,
                                tenant.tier.as_str(),
                                crate::time::rfc3339(tenant.created_at),
                                tenant.name
                            );
                        }
                    }
                }
            }
            Ok(())
        }
        Command::Ingest {
            tenant,
            paths,
            json,
        } => {
            let appliance = Appliance::open(config)?;
            let scope = scope(&appliance, &tenant)?;
            let report = ingest(&appliance, &scope, &paths, !json)?;
            if json {
                print_json(&report);
            } else {
                println!("indexed {}, failed {}", report.indexed, report.failed);
            }
            if report.failed > 0 {
                return Err(UserFailure(format!(
                    "{} of {} documents failed (reasons above)",
                    report.failed,
                    report.failed + report.indexed
                )));
            }
            Ok(())
        }
        Command::Ask {
            tenant,
            question,
            top_k,
            json,
        } => {
            let appliance = Appliance::open(config)?;
            let scope = scope(&appliance, &tenant)?;
            resume_pending(&appliance, &scope)?;
            let answer = ask(&appliance, &scope, &question, top_k, !json)?;
            if json {
                print_json(&wire::AskResponse::from(&answer));
            }
            Ok(())
        }
        Command::Search {
            tenant,
            query,
            top_k,
            mode,
            json,
        } => {
            let appliance = Appliance::open(config)?;
            let scope = scope(&appliance, &tenant)?;
            resume_pending(&appliance, &scope)?;
            let mode = SearchMode::parse(&mode).unwrap_or_default();
            let results = appliance.search(&scope, &query, top_k, mode)?;
            if json {
                print_json(&wire::SearchResponse {
                    results: results.iter().map(wire::SearchHit::from).collect(),
                });
            } else {
                for (rank, result) in results.iter().enumerate() {
                    println!(
                        "{}. {} [{}..{}] score {:.4}\n   {}",
                        rank + 1,
                        result.chunk.filename,
                        result.chunk.start,
                        result.chunk.end,
                        result.score,
                        snippet(&result.chunk.text, 200)
                    );
                }
            }
            Ok(())
        }
        Command::Documents { tenant, json } => {
            let appliance = Appliance::open(config)?;
            let scope = scope(&appliance, &tenant)?;
            let documents = appliance.list_documents(&scope)?;
            if json {
                print_json(&wire::DocumentList {
                    documents: documents.iter().map(wire::Document::from).collect(),
                    next_cursor: None,
                });
            } else {
                for document in &documents {
                    println!(
                        "{}  {:<8}  {:>4} chunks  {}{}",
                        document.document_id,
                        document.status.as_str(),
                        document.chunks,
                        document.filename,
                        document
                            .error
                            .as_deref()
                            .map(|error| format!(" — {error}"))
                            .unwrap_or_default()
                    );
                }
            }
            Ok(())
        }
        Command::Demo => crate::demo::run(&config, cli.data_dir.is_some()),
        Command::Serve(args) => serve(config, args),
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            let store = Store::open(&config.data_dir)?;
            let signer = crate::auth::tokens::Signer::load(&config.data_dir)
                .map_err(|error| UserFailure(error.to_string()))?;
            let report = store.verify_audit(&signer)?;
            print_json(&crate::wire::AuditVerification::from(&report));
            if report.ok {
                Ok(())
            } else {
                Err(UserFailure(format!(
                    "the audit chain is broken: {}",
                    report.problem.unwrap_or_default()
                )))
            }
        }
        Command::Certificate {
            command: CertificateCommand::Verify { file, jwks },
        } => verify_certificate(&config, &file, jwks.as_deref()),
        Command::Export {
            tenant,
            out,
            recipient,
        } => {
            let appliance = Appliance::open(config)?;
            let scope = scope(&appliance, &tenant)?;
            let file = std::fs::File::create(&out).map_err(|error| {
                UserFailure(format!("cannot create {}: {error}", out.display()))
            })?;
            let summary = appliance.export_tenant(
                &scope,
                std::io::BufWriter::new(file),
                recipient.as_deref(),
            )?;
            appliance.store().append_audit(&crate::audit::AuditEvent {
                tenant_id: Some(scope.tenant_id().to_string()),
                actor: "operator".into(),
                action: "export",
                resource: format!("{} documents", summary.documents),
                outcome: crate::audit::Outcome::Ok,
            })?;
            eprintln!(
                "exported {} documents ({} chunks) to {}",
                summary.documents,
                summary.chunks,
                out.display()
            );
            Ok(())
        }
        Command::Import {
            tenant,
            file,
            identity,
        } => {
            let appliance = Appliance::open(config)?;
            let scope = scope(&appliance, &tenant)?;
            let identity = identity
                .map(|path| {
                    std::fs::read_to_string(&path).map_err(|error| {
                        UserFailure(format!("cannot read {}: {error}", path.display()))
                    })
                })
                .transpose()?;
            let identity = identity.as_deref().map(|text| {
                text.lines()
                    .find(|line| line.starts_with("AGE-SECRET-KEY-"))
                    .unwrap_or(text)
                    .to_owned()
            });
            let input = std::fs::File::open(&file)
                .map_err(|error| UserFailure(format!("cannot open {}: {error}", file.display())))?;
            let summary = appliance.import_tenant(
                &scope,
                std::io::BufReader::new(input),
                identity.as_deref(),
            )?;
            appliance.store().append_audit(&crate::audit::AuditEvent {
                tenant_id: Some(scope.tenant_id().to_string()),
                actor: "operator".into(),
                action: "import",
                resource: format!("{} documents", summary.documents),
                outcome: crate::audit::Outcome::Ok,
            })?;
            println!(
                "imported {} documents ({} chunks)",
                summary.documents, summary.chunks
            );
            Ok(())
        }
        Command::Report {
            command:
                ReportCommand::AccessReview {
                    tenant,
                    quarter,
                    from,
                    to,
                    format,
                },
        } => {
            let appliance = Appliance::open(config)?;
            let scope = scope(&appliance, &tenant)?;
            let parse = |text: &str| {
                crate::time::parse_rfc3339(text).ok_or_else(|| {
                    UserFailure(format!(
                        "`{text}` is not an RFC 3339 time (e.g. 2026-10-01T00:00:00Z)"
                    ))
                })
            };
            let (start, end) = match quarter {
                Some(quarter) => crate::report::quarter_bounds(&quarter)
                    .ok_or_else(|| UserFailure("--quarter must look like 2026Q4".into()))?,
                None => (
                    from.as_deref().map(parse).transpose()?.unwrap_or(0),
                    to.as_deref().map(parse).transpose()?.unwrap_or(i64::MAX),
                ),
            };
            let rows = appliance.store().audit_events(&scope)?;
            let tenant_id = scope.tenant_id().to_string();
            match format.as_str() {
                "csv" => print!("{}", crate::report::to_csv(&rows, start, end)),
                "html" => println!(
                    "{}",
                    crate::report::to_html(&crate::report::build(&tenant_id, &rows, start, end))
                ),
                _ => print_json(&crate::report::build(&tenant_id, &rows, start, end)),
            }
            Ok(())
        }
        Command::Token(args) => {
            Appliance::open(config.clone())?;
            let signer = crate::auth::tokens::Signer::load(&config.data_dir)
                .map_err(|error| UserFailure(error.to_string()))?;
            let token = if args.platform_admin {
                signer.mint(
                    "platform-admin",
                    None,
                    &[crate::auth::tokens::Role::PlatformAdmin],
                    args.ttl,
                )
            } else {
                let appliance = Appliance::open(config)?;
                let scope = scope(&appliance, args.tenant.as_deref().unwrap_or_default())?;
                let roles: Vec<_> = args
                    .role
                    .iter()
                    .filter_map(|role| crate::auth::tokens::Role::parse(role))
                    .collect();
                signer.mint(
                    args.user.as_deref().unwrap_or_default(),
                    Some(scope.tenant_id()),
                    &roles,
                    args.ttl,
                )
            }
            .map_err(|error| UserFailure(error.to_string()))?;
            if args.json {
                print_json(&wire::Token { token });
            } else {
                println!("{token}");
            }
            Ok(())
        }
    }
}

fn verify_certificate(
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
    let keys: Vec<serde_json::Value> = match jwks {
        Some(path) => read_json(path)?["keys"]
            .as_array()
            .cloned()
            .unwrap_or_default(),
        None => vec![
            crate::auth::tokens::Signer::load(&config.data_dir)
                .map_err(|error| UserFailure(error.to_string()))?
                .jwk(),
        ],
    };
    let payload = keys
        .iter()
        .find_map(|key| crate::auth::tokens::verify_signed_document(jws, key).ok())
        .ok_or_else(|| {
            UserFailure("certificate signature is invalid for the appliance's key".into())
        })?;
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

fn serve(config: Config, args: ServeArgs) -> Result<(), UserFailure> {
    use crate::auth::tokens::{Signer, Verifier};
    let args = args.with_file()?;
    let failure = |error: &dyn std::fmt::Display| UserFailure(error.to_string());
    if args.tls_cert.is_some() != args.tls_key.is_some() {
        return Err(UserFailure(
            "TLS needs both --tls-cert and --tls-key".into(),
        ));
    }
    if args.jwks.is_some() != args.jwks_issuer.is_some() {
        return Err(UserFailure(
            "an identity provider needs both --jwks and --jwks-issuer".into(),
        ));
    }
    let appliance = std::sync::Arc::new(Appliance::open(config.clone())?);
    let signer = Signer::load(&config.data_dir).map_err(|error| failure(&error))?;
    let mut verifier = Verifier::new(&signer);
    if let (Some(jwks), Some(issuer)) = (&args.jwks, &args.jwks_issuer) {
        let count = verifier
            .trust_jwks_file(jwks, issuer)
            .map_err(|error| failure(&error))?;
        eprintln!(
            "trusting {count} identity-provider keys from {}",
            jwks.display()
        );
    }
    let defaults = crate::api::Limits::default();
    let limits = crate::api::Limits {
        inference_workers: args
            .inference_workers
            .unwrap_or(defaults.inference_workers)
            .max(1),
        inference_queue: args.inference_queue.unwrap_or(defaults.inference_queue),
        tenant_requests_per_minute: args
            .rate_limit
            .unwrap_or(defaults.tenant_requests_per_minute),
        request_timeout: args
            .request_timeout
            .map(|seconds| std::time::Duration::from_secs(seconds.max(1)))
            .unwrap_or(defaults.request_timeout),
    };
    let listen = args
        .listen
        .clone()
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let state = crate::api::AppState::new(appliance, signer, verifier, limits);
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(certificate), Some(private_key)) => Some(crate::server::TlsFiles {
            certificate,
            private_key,
        }),
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| failure(&error))?;
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

fn scope(appliance: &Appliance, tenant: &str) -> Result<TenantScope, UserFailure> {
    let tenant_id = TenantId::try_from(tenant).map_err(|error| {
        UserFailure(format!("{error}: `bulkhead tenant list` shows the tenants"))
    })?;
    Ok(appliance.operator_scope(&tenant_id, OperatorReason::CommandLine)?)
}

/// Finishes indexing that an earlier, interrupted run left queued.
fn resume_pending(appliance: &Appliance, scope: &TenantScope) -> Result<(), UserFailure> {
    let outcomes = appliance.process_jobs(scope, &mut |_| {})?;
    if !outcomes.is_empty() {
        eprintln!("resumed indexing of {} queued documents", outcomes.len());
    }
    Ok(())
}

/// Every regular file under `paths` (folders recursively, hidden entries skipped), sorted.
pub fn collect_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    fn walk(path: &Path, out: &mut Vec<PathBuf>) {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            entries.sort();
            for entry in entries {
                let hidden = entry
                    .file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with('.'));
                if !hidden {
                    walk(&entry, out);
                }
            }
        } else {
            out.push(path.to_path_buf());
        }
    }
    let mut files = Vec::new();
    for path in paths {
        walk(path, &mut files);
    }
    files
}

/// Uploads every file durably (printing one `queued` line per acknowledged file), then
/// indexes the tenant's queue.
pub fn ingest(
    appliance: &Appliance,
    scope: &TenantScope,
    paths: &[PathBuf],
    human: bool,
) -> Result<wire::IngestReport, UserFailure> {
    let files = collect_files(paths);
    let mut documents = Vec::new();
    let mut failed = 0;
    let bar = progress_bar(files.len() as u64 * 2);
    for file in &files {
        let filename = file
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        bar.set_message(filename.clone());
        let uploaded = std::fs::read(file)
            .map_err(|error| format!("cannot read file: {error}"))
            .and_then(|bytes| {
                appliance
                    .upload(scope, &filename, None, &bytes)
                    .map_err(|error| error.to_string())
            });
        match uploaded {
            Ok(document_id) => {
                if human {
                    bar.suspend(|| {
                        println!("queued   {document_id}  {filename}");
                        let _ = std::io::stdout().flush();
                    });
                }
            }
            Err(error) => {
                failed += 1;
                if human {
                    bar.suspend(|| eprintln!("failed   {}: {error}", file.display()));
                }
                documents.push(wire::IngestedDocument {
                    document_id: None,
                    filename,
                    status: "failed",
                    chunks: None,
                    error: Some(error),
                });
                bar.inc(1);
            }
        }
        bar.inc(1);
    }
    let outcomes = appliance.process_jobs(scope, &mut |outcome: &IndexOutcome| {
        bar.inc(1);
        if human {
            bar.suspend(|| match &outcome.result {
                Ok(chunks) => println!(
                    "indexed  {}  {} ({chunks} chunks)",
                    outcome.document_id, outcome.filename
                ),
                Err(reason) => eprintln!(
                    "failed   {}  {}: {reason}",
                    outcome.document_id, outcome.filename
                ),
            });
        }
    })?;
    bar.finish_and_clear();
    failed += outcomes.iter().filter(|o| o.result.is_err()).count();
    let indexed = outcomes.iter().filter(|o| o.result.is_ok()).count();
    documents.extend(outcomes.iter().map(wire::IngestedDocument::from));
    Ok(wire::IngestReport {
        documents,
        indexed,
        failed,
    })
}

fn progress_bar(length: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(length);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Asks and, when `human`, prints the checked answer and its sources. The answer is
/// printed whole, after the output checks, never as raw model tokens.
pub fn ask(
    appliance: &Appliance,
    scope: &TenantScope,
    question: &str,
    top_k: Option<usize>,
    human: bool,
) -> Result<Answer, UserFailure> {
    let answer = appliance.ask(scope, question, top_k, &mut |_| true)?;
    if human {
        println!("{}", answer.text);
        print_citations(&answer);
    }
    Ok(answer)
}

pub fn print_citations(answer: &Answer) {
    for (number, citation) in answer.citations.iter().enumerate() {
        println!(
            "  [{}] {} (characters {}–{})\n      “{}”",
            number + 1,
            citation.filename,
            citation.start,
            citation.end,
            snippet(&citation.text, 160)
        );
    }
}

pub fn snippet(text: &str, max_chars: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max_chars {
        flat
    } else {
        format!("{}…", flat.chars().take(max_chars).collect::<String>())
    }
}

fn print_json<T: serde::Serialize>(value: &T) {
    match serde_json::to_string(value) {
        Ok(text) => println!("{text}"),
        Err(error) => eprintln!("error: cannot serialise output: {error}"),
    }
}
