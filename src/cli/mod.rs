//! The command line: parses arguments into typed commands, calls the [`Appliance`], and
//! prints human-readable text or (`--json`) the wire shapes of API.md.
//!
//! Exit codes: 0 success, 1 a failure the user can fix (message on stderr), 2 bad usage.
//! This module is glue: it holds no business rules of its own. Every command that reads
//! or changes a tenant's data is recorded in that tenant's audit log as an operator
//! action ([`Appliance::audit_operator`]).

mod args;
mod demo;
mod doctor;
mod output;
mod serve;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::appliance::{Answer, Appliance, ApplianceError, IndexOutcome};
use crate::auth::{OperatorReason, TenantScope};
use crate::config::Config;
use crate::ids::{DocumentId, TenantId};
use crate::store::{DocumentStatus, JOB_LEASE_SECONDS, Store, Tier};
use crate::wire;

pub use args::Cli;
use args::{
    AuditCommand, CertificateCommand, Command, KeyCommand, ModeArg, ReportCommand, ReportFormat,
    SigningKeyCommand, TenantCommand, TokenArgs, TokenCommand,
};
pub use output::{print_citations, print_timings, snippet};
use output::{print_json, progress_bar};

/// The version, marked in a test build whose isolation layers can be switched off.
pub const VERSION: &str = if crate::isolation::ABLATION_BUILD {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (ablation test build: not for production)"
    )
} else {
    env!("CARGO_PKG_VERSION")
};

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
    let config = Config::resolve(
        cli.data_dir.clone(),
        cli.models_dir.clone(),
        cli.llm.map(Into::into),
    );
    match cli.command {
        Command::Init => init(&config),
        Command::Tenant { command } => tenant(config, command),
        Command::Ingest {
            tenant,
            paths,
            json,
        } => ingest_command(config, &tenant, &paths, json),
        Command::Ask {
            tenant,
            question,
            top_k,
            json,
        } => {
            let (appliance, scope) = open_tenant(config, &tenant)?;
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
        } => search(config, &tenant, &query, top_k, mode, json),
        Command::Documents { tenant, json } => documents(config, &tenant, json),
        Command::Demo => demo::run(&config, cli.data_dir.is_some()),
        Command::Serve(args) => serve::serve(config, *args),
        Command::Doctor { tls_cert, tls_key } => doctor::doctor(&config, tls_cert, tls_key),
        Command::Audit {
            command: AuditCommand::Verify,
        } => audit_verify(config),
        Command::Certificate {
            command: CertificateCommand::Verify { file, jwks },
        } => serve::verify_certificate(&config, &file, jwks.as_deref()),
        Command::Export {
            tenant,
            out,
            recipient,
        } => export(config, &tenant, &out, recipient.as_deref()),
        Command::Import {
            tenant,
            file,
            identity,
        } => import(config, &tenant, &file, identity.as_deref()),
        Command::Report {
            command:
                ReportCommand::AccessReview {
                    tenant,
                    quarter,
                    from,
                    to,
                    format,
                },
        } => access_review(
            config,
            &tenant,
            [quarter.as_deref(), from.as_deref(), to.as_deref()],
            format,
        ),
        Command::Token(args) => token(config, args),
        Command::SigningKey {
            command: SigningKeyCommand::Rotate,
        } => rotate_signing_key(config),
        Command::Key {
            command: KeyCommand::Rotate,
        } => rotate_master_key(config),
        Command::InternalExtract => crate::ingest::extract::serve_child()
            .map_err(|error| UserFailure(format!("extract: {error}"))),
    }
}

fn rotate_signing_key(config: Config) -> Result<(), UserFailure> {
    let appliance = Appliance::open(config)?;
    let signer = crate::auth::tokens::Signer::rotate(&appliance.config().data_dir)
        .map_err(|error| UserFailure(error.to_string()))?;
    appliance.audit(&crate::audit::AuditEvent {
        tenant_id: None,
        actor: "operator".into(),
        action: "signing_key.rotate",
        resource: signer.kid().to_owned(),
        outcome: crate::audit::Outcome::Ok,
    })?;
    println!(
        "signing key rotated (access tokens {}): every earlier token is refused; restart `serve` to use it",
        signer.kid()
    );
    Ok(())
}

fn rotate_master_key(config: Config) -> Result<(), UserFailure> {
    let mut appliance = Appliance::open(config)?;
    let rewrapped = appliance.rotate_master_key()?;
    println!(
        "master key rotated: {rewrapped} tenant keys re-wrapped, the old key destroyed; backups of system.db made before now open only with the old key: back up system.db and master.key again"
    );
    Ok(())
}

fn init(config: &Config) -> Result<(), UserFailure> {
    let report = Store::init(&config.data_dir)?;
    let created_signing_key = crate::auth::tokens::Signer::init(&config.data_dir)
        .map_err(|error| UserFailure(error.to_string()))?;
    let said = |created: bool| if created { "created" } else { "kept" };
    println!(
        "initialised {} (master key {}, signing key {}, database {})",
        config.data_dir.display(),
        said(report.created_master_key),
        said(created_signing_key),
        said(report.created_database),
    );
    Ok(())
}

fn tenant(config: Config, command: TenantCommand) -> Result<(), UserFailure> {
    let appliance = Appliance::open(config)?;
    match command {
        TenantCommand::Create {
            name,
            tier,
            customer_key,
            json,
        } => {
            let tier = tier.into();
            // Checked before anything is created: a bad key creates no tenant.
            if let Some(recipient) = &customer_key
                && (tier != Tier::Enterprise
                    || crate::crypto::CustomerRecipient::parse(recipient).is_none())
            {
                return Err(UserFailure(
                    "--customer-key takes an age recipient (`age1...`) and needs --tier enterprise"
                        .into(),
                ));
            }
            let (tenant, invitation) =
                appliance.create_tenant_with_invitation(&name, tier, "operator")?;
            let customer_key = match &customer_key {
                Some(recipient) => Some(
                    appliance
                        .enrol_customer_key(&tenant.tenant_id, recipient, "operator")?
                        .as_str()
                        .to_owned(),
                ),
                None => None,
            };
            if json {
                print_json(&wire::CreatedTenant {
                    tenant: wire::Tenant::from(&tenant),
                    invitation: invitation.secret,
                    customer_key,
                });
            } else {
                println!("{}", tenant.tenant_id);
            }
        }
        TenantCommand::Delete { tenant } => {
            let tenant_id = tenant_id(&tenant)?;
            let signer = crate::auth::tokens::Signer::load(appliance.config().data_dir.as_path())
                .map_err(|error| UserFailure(error.to_string()))?;
            let deleted = appliance.delete_tenant(&tenant_id, "operator", &signer)?;
            print_json(
                &serde_json::json!({"certificate": deleted.certificate, "jws": deleted.jws}),
            );
        }
        TenantCommand::Byok { tenant, recipient } => {
            let tenant_id = tenant_id(&tenant)?;
            let recipient = appliance.enrol_customer_key(&tenant_id, &recipient, "operator")?;
            println!(
                "tenant {tenant_id}: data key wrapped to {} and the master key; locked until its admin unlocks it",
                recipient.as_str()
            );
        }
        TenantCommand::Unlock { tenant, key_file } => {
            let tenant_id = tenant_id(&tenant)?;
            let identity =
                zeroize::Zeroizing::new(std::fs::read_to_string(&key_file).map_err(|error| {
                    UserFailure(format!("cannot read {}: {error}", key_file.display()))
                })?);
            let scope = appliance.operator_scope(&tenant_id, OperatorReason::CustomerKey)?;
            appliance.unlock_tenant(&scope, &identity, "operator")?;
            println!(
                "tenant {tenant_id}: the customer key opens its data key; unlocked in this process only (unlock a running server with POST /v1/tenants/{tenant_id}/unlock)"
            );
        }
        TenantCommand::Model {
            tenant,
            gguf,
            sha256,
            clear: _,
        } => {
            let tenant_id = tenant_id(&tenant)?;
            let model = match (gguf, sha256) {
                (Some(path), Some(sha256)) => Some(crate::store::PrivateModel {
                    path: std::path::absolute(&path).unwrap_or(path),
                    sha256,
                }),
                _ => None,
            };
            match appliance.set_private_model(&tenant_id, model, "operator")? {
                Some(model) => println!(
                    "tenant {tenant_id}: answers with {} (sha256 {}) in its own process",
                    model.path.display(),
                    model.sha256
                ),
                None => println!("tenant {tenant_id}: answers with the appliance's model"),
            }
        }
        TenantCommand::Tier { tenant, tier, json } => {
            let tenant = appliance.change_tier(&tenant_id(&tenant)?, tier.into(), "operator")?;
            if json {
                print_json(&wire::Tenant::from(&tenant));
            } else {
                println!("{} {}", tenant.tenant_id, tenant.tier.as_str());
            }
        }
        TenantCommand::List { json } => {
            let tenants = appliance.list_tenants()?;
            if json {
                print_json(&wire::TenantList {
                    tenants: tenants.iter().map(wire::Tenant::from).collect(),
                    next_cursor: None,
                });
            } else {
                output::print_tenants(&tenants);
            }
        }
    }
    Ok(())
}

fn ingest_command(
    config: Config,
    tenant: &str,
    paths: &[PathBuf],
    json: bool,
) -> Result<(), UserFailure> {
    let (appliance, scope) = open_tenant(config, tenant)?;
    let report = ingest(&appliance, &scope, paths, !json)?;
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

fn search(
    config: Config,
    tenant: &str,
    query: &str,
    top_k: usize,
    mode: ModeArg,
    json: bool,
) -> Result<(), UserFailure> {
    let (appliance, scope) = open_tenant(config, tenant)?;
    resume_pending(&appliance, &scope)?;
    let results = appliance.search(&scope, query, top_k, mode.into())?;
    audit(
        &appliance,
        &scope,
        "search",
        &format!("{} results", results.len()),
    )?;
    if json {
        print_json(&wire::SearchResponse {
            results: results.iter().map(wire::SearchHit::from).collect(),
        });
    } else {
        output::print_results(&results);
    }
    Ok(())
}

fn documents(config: Config, tenant: &str, json: bool) -> Result<(), UserFailure> {
    let (appliance, scope) = open_tenant(config, tenant)?;
    let documents = appliance.list_documents(&scope)?;
    // Only the catalogues of listed documents (which the output layer checked) are shown.
    let catalogues: std::collections::HashMap<_, _> =
        appliance.catalogues(&scope)?.into_iter().collect();
    audit(
        &appliance,
        &scope,
        "document.list",
        &format!("{} documents", documents.len()),
    )?;
    if json {
        print_json(&wire::DocumentList {
            documents: documents
                .iter()
                .map(|record| {
                    wire::Document::with_catalogue(record, catalogues.get(&record.document_id))
                })
                .collect(),
            next_cursor: None,
        });
    } else {
        output::print_documents(&documents, &catalogues);
    }
    Ok(())
}

fn audit_verify(config: Config) -> Result<(), UserFailure> {
    let appliance = Appliance::open(config)?;
    let signer = crate::auth::tokens::Signer::load(&appliance.config().data_dir)
        .map_err(|error| UserFailure(error.to_string()))?;
    let report = appliance.verify_audit(&signer)?;
    print_json(&wire::AuditVerification::from(&report));
    if report.ok {
        Ok(())
    } else {
        Err(UserFailure(format!(
            "the audit chain is broken: {}",
            report.problem.unwrap_or_default()
        )))
    }
}

fn export(
    config: Config,
    tenant: &str,
    out: &Path,
    recipient: Option<&str>,
) -> Result<(), UserFailure> {
    let (appliance, scope) = open_tenant(config, tenant)?;
    let file = create_private_file(out)
        .map_err(|error| UserFailure(format!("cannot create {}: {error}", out.display())))?;
    if recipient.is_none() {
        eprintln!(
            "warning: {} is not encrypted: it holds the tenant's documents in plaintext; keep it private or export with --recipient age1...",
            out.display()
        );
    }
    let summary = appliance.export_tenant(&scope, std::io::BufWriter::new(file), recipient)?;
    audit(
        &appliance,
        &scope,
        "export",
        &format!("{} documents", summary.documents),
    )?;
    eprintln!(
        "exported {} documents ({} chunks) to {}",
        summary.documents,
        summary.chunks,
        out.display()
    );
    Ok(())
}

/// Creates (or truncates) `path` readable by the owner only, even when it existed with a
/// wider mode: an export holds a tenant's documents.
fn create_private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

fn import(
    config: Config,
    tenant: &str,
    file: &Path,
    identity: Option<&Path>,
) -> Result<(), UserFailure> {
    let (appliance, scope) = open_tenant(config, tenant)?;
    let identity = identity
        .map(|path| {
            std::fs::read_to_string(path)
                .map_err(|error| UserFailure(format!("cannot read {}: {error}", path.display())))
        })
        .transpose()?;
    let identity = identity.as_deref().map(|text| {
        text.lines()
            .find(|line| line.starts_with("AGE-SECRET-KEY-"))
            .unwrap_or(text)
            .to_owned()
    });
    let input = std::fs::File::open(file)
        .map_err(|error| UserFailure(format!("cannot open {}: {error}", file.display())))?;
    let summary =
        appliance.import_tenant(&scope, std::io::BufReader::new(input), identity.as_deref())?;
    audit(
        &appliance,
        &scope,
        "import",
        &format!("{} documents", summary.documents),
    )?;
    println!(
        "imported {} documents ({} chunks)",
        summary.documents, summary.chunks
    );
    Ok(())
}

/// `period` is `[quarter, from, to]` as given on the command line.
fn access_review(
    config: Config,
    tenant: &str,
    [quarter, from, to]: [Option<&str>; 3],
    format: ReportFormat,
) -> Result<(), UserFailure> {
    let (appliance, scope) = open_tenant(config, tenant)?;
    let (start, end) = crate::report::period(quarter, from, to).map_err(UserFailure)?;
    let rows = appliance.audit_events(&scope)?;
    let tenant_id = scope.tenant_id().to_string();
    match format {
        ReportFormat::Csv => print!("{}", crate::report::to_csv(&rows, start, end)),
        ReportFormat::Html => println!(
            "{}",
            crate::report::to_html(&crate::report::build(&tenant_id, &rows, start, end))
        ),
        ReportFormat::Json => print_json(&crate::report::build(&tenant_id, &rows, start, end)),
    }
    Ok(())
}

fn token(config: Config, args: TokenArgs) -> Result<(), UserFailure> {
    use crate::auth::tokens::{Grant, Role};
    let appliance = Appliance::open(config)?;
    match args.command {
        Some(TokenCommand::Revoke { tenant, jti, user }) => {
            let scope = scope(&appliance, &tenant)?;
            match (jti, user) {
                (Some(jti), _) => appliance.revoke_token(&scope, &jti, "operator")?,
                (None, Some(user)) => appliance.revoke_user_tokens(&scope, &user, "operator")?,
                (None, None) => return Err(UserFailure("name a token id or --user".into())),
            }
            eprintln!("revoked");
            return Ok(());
        }
        Some(TokenCommand::List { tenant, json }) => {
            let scope = scope(&appliance, &tenant)?;
            let tokens = appliance.issued_tokens(&scope)?;
            if json {
                print_json(&wire::IssuedTokenList {
                    tokens: tokens.into_iter().map(wire::IssuedToken::from).collect(),
                });
            } else {
                output::print_tokens(&tokens);
            }
            return Ok(());
        }
        None => {}
    }
    let signer = crate::auth::tokens::Signer::load(&appliance.config().data_dir)
        .map_err(|error| UserFailure(error.to_string()))?;
    let minted = if args.platform_admin {
        signer.issue(&Grant {
            subject: "platform-admin",
            tenant_id: None,
            roles: &[Role::PlatformAdmin],
            ttl_seconds: args.ttl,
            not_after: None,
            minted_by: Some("operator".into()),
        })
    } else {
        let scope = scope(&appliance, args.tenant.as_deref().unwrap_or_default())?;
        let roles: Vec<Role> = args.role.iter().map(|&role| role.into()).collect();
        let user = args.user.as_deref().unwrap_or_default();
        let minted = signer.issue(&Grant {
            subject: user,
            tenant_id: Some(scope.tenant_id()),
            roles: &roles,
            ttl_seconds: args.ttl,
            not_after: None,
            minted_by: Some("operator".into()),
        });
        if let Ok(minted) = &minted {
            appliance.record_issued_token(&scope, user, &roles, minted)?;
            let pseudonym = appliance.pseudonym(Some(scope.tenant_id()), user);
            audit(
                &appliance,
                &scope,
                "token.mint",
                &format!("{pseudonym} token {}", minted.jti),
            )?;
        }
        minted
    }
    .map_err(|error| UserFailure(error.to_string()))?;
    if args.json {
        print_json(&wire::Token::from(minted));
    } else {
        println!("{}", minted.token);
    }
    Ok(())
}

fn tenant_id(tenant: &str) -> Result<TenantId, UserFailure> {
    TenantId::try_from(tenant)
        .map_err(|error| UserFailure(format!("{error}: `bulkhead tenant list` shows the tenants")))
}

fn scope(appliance: &Appliance, tenant: &str) -> Result<TenantScope, UserFailure> {
    Ok(appliance.operator_scope(&tenant_id(tenant)?, OperatorReason::CommandLine)?)
}

/// Opens the appliance and the operator's scope on one tenant.
fn open_tenant(config: Config, tenant: &str) -> Result<(Appliance, TenantScope), UserFailure> {
    let appliance = Appliance::open(config)?;
    let scope = scope(&appliance, tenant)?;
    Ok((appliance, scope))
}

/// Records an operator action on the tenant's data in the tenant's audit log.
fn audit(
    appliance: &Appliance,
    scope: &TenantScope,
    action: &'static str,
    resource: &str,
) -> Result<(), UserFailure> {
    Ok(appliance.audit_operator(scope, OperatorReason::CommandLine, action, resource)?)
}

/// Finishes indexing that an earlier, interrupted run left queued.
fn resume_pending(appliance: &Appliance, scope: &TenantScope) -> Result<(), UserFailure> {
    // Another process (a running server) that is indexing finishes that work itself.
    let outcomes = appliance.process_jobs_if_idle(scope)?.unwrap_or_default();
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
    let mut acknowledged = Vec::new();
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
                audit(appliance, scope, "document.upload", document_id.as_str())?;
                acknowledged.push(document_id.clone());
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
    let mut show = |outcome: &IndexOutcome| {
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
    };
    let mut outcomes = appliance.process_jobs(scope, &mut show)?;
    // A server beside this command may have indexed some of these documents itself.
    for outcome in indexed_elsewhere(appliance, scope, &acknowledged, &outcomes)? {
        show(&outcome);
        outcomes.push(outcome);
    }
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

/// The outcomes of the `uploaded` documents that are not among `outcomes`: another process
/// (a running server's indexer) indexed them, or is indexing them (then they are waited for).
fn indexed_elsewhere(
    appliance: &Appliance,
    scope: &TenantScope,
    uploaded: &[DocumentId],
    outcomes: &[IndexOutcome],
) -> Result<Vec<IndexOutcome>, UserFailure> {
    let mut elsewhere = Vec::new();
    for document_id in uploaded {
        if outcomes
            .iter()
            .any(|outcome| &outcome.document_id == document_id)
        {
            continue;
        }
        let mut record = appliance.document(scope, document_id)?;
        // Claimed by an indexer that holds no file lock (leases only): give it time.
        let deadline =
            std::time::Instant::now() + std::time::Duration::from_secs(JOB_LEASE_SECONDS as u64);
        while record.status == DocumentStatus::Queued && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(500));
            appliance.process_jobs(scope, &mut |_| {})?;
            record = appliance.document(scope, document_id)?;
        }
        let result = match record.status {
            DocumentStatus::Indexed => Ok(record.chunks as usize),
            DocumentStatus::Failed => Err(record.error.unwrap_or_default()),
            DocumentStatus::Queued => Err("still queued: another indexer holds it".to_owned()),
        };
        elsewhere.push(IndexOutcome {
            document_id: record.document_id,
            filename: record.filename,
            result,
        });
    }
    Ok(elsewhere)
}

/// Asks and, when `human`, prints the checked answer and its sources. On a terminal the
/// answer streams as the appliance checks it, sentence by sentence (the text the HTTP
/// stream carries, never raw model tokens); piped, it is printed whole once complete, so
/// a script reads exactly the final answer.
pub fn ask(
    appliance: &Appliance,
    scope: &TenantScope,
    question: &str,
    top_k: Option<usize>,
    human: bool,
) -> Result<Answer, UserFailure> {
    use std::io::IsTerminal;
    let live = human && std::io::stdout().is_terminal();
    let mut shown = String::new();
    let answer = appliance.ask(scope, question, top_k, &mut |piece| {
        if live {
            let mut out = std::io::stdout().lock();
            // A terminal that went away only loses the preview; the answer is still returned.
            let _ = out.write_all(piece.as_bytes()).and_then(|()| out.flush());
            shown.push_str(piece);
        }
        true
    })?;
    audit(appliance, scope, "ask", "question")?;
    if human {
        match answer.text.strip_prefix(shown.as_str()) {
            Some(rest) => println!("{rest}"),
            // The final checks changed what was streamed (an identifier withheld, the
            // answer refused): the final answer replaces it.
            None => println!("\n[revised after the final checks]\n{}", answer.text),
        }
        print_citations(&answer);
        print_timings(&answer);
    }
    Ok(answer)
}
