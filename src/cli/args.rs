//! The command line's grammar: every command, flag and value, typed. Values with a fixed
//! set of choices are `ValueEnum`s, so a typo is a usage error (exit 2), never a
//! different request.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::auth::tokens::Role;
use crate::config::LlmChoice;
use crate::index::SearchMode;
use crate::store::Tier;

use super::UserFailure;

#[derive(Parser, Debug)]
#[command(
    name = "bulkhead",
    version = super::VERSION,
    about = "Multi-tenant contract Q&A with local models"
)]
pub struct Cli {
    /// Data directory [env: BULKHEAD_DATA_DIR, default ./bulkhead-data]
    #[arg(long, global = true)]
    pub(super) data_dir: Option<PathBuf>,
    /// Models directory [env: BULKHEAD_MODELS_DIR, default ./models]
    #[arg(long, global = true)]
    pub(super) models_dir: Option<PathBuf>,
    /// Language model that answers [default: smollm2, or the file BULKHEAD_LLM_MODEL
    /// names]; qwen2.5-coder-0.5b is optional: `models/fetch.sh --optional
    /// qwen2.5-coder-0.5b` first
    #[arg(long, global = true, env = crate::config::LLM_ENV)]
    pub(super) llm: Option<LlmArg>,
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Subcommand, Debug)]
pub(super) enum Command {
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
        #[arg(long, value_enum, default_value_t = ModeArg::Hybrid)]
        mode: ModeArg,
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
    Serve(Box<ServeArgs>),
    /// Check what the appliance needs (CPU, models, key permissions, disk space, TLS files)
    /// and say what to fix; exit 1 when a check fails
    Doctor {
        /// The certificate `serve` will use
        #[arg(long, env = "BULKHEAD_TLS_CERT")]
        tls_cert: Option<PathBuf>,
        /// Its private key
        #[arg(long, env = "BULKHEAD_TLS_KEY")]
        tls_key: Option<PathBuf>,
    },
    /// Print a token signed with the appliance's key (or `token revoke` one)
    Token(TokenArgs),
    /// The appliance's signing key
    SigningKey {
        #[command(subcommand)]
        command: SigningKeyCommand,
    },
    /// The master key (which wraps every tenant's data key)
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Internal: parse one document from stdin in a confined child process (the server
    /// and the CLI start it; see `ingest::extract`). Not for people.
    #[command(name = "__extract", hide = true)]
    InternalExtract,
}

#[derive(Subcommand, Debug)]
pub(super) enum KeyCommand {
    /// Re-wrap every tenant's data key under a new master key and destroy the old one
    /// (stop `serve` first; back up system.db and master.key again afterwards)
    Rotate,
}

#[derive(Subcommand, Debug)]
pub(super) enum SigningKeyCommand {
    /// Replace the signing key: every token it signed stops working; its certificate and
    /// audit checkpoint keys are kept (public halves) to verify what it signed
    Rotate,
}

/// `serve` options. Each comes from the flag, else its environment variable, else the
/// `--config` file (TOML, same names with underscores), else the default.
#[derive(clap::Args, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServeArgs {
    /// TOML file with any of the options below (flags and environment take precedence)
    #[arg(long, env = "BULKHEAD_CONFIG")]
    #[serde(skip)]
    pub(super) config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]
    #[arg(long, env = "BULKHEAD_LISTEN")]
    pub(super) listen: Option<String>,
    /// PEM certificate chain; enables TLS 1.3 (with --tls-key)
    #[arg(long, env = "BULKHEAD_TLS_CERT")]
    pub(super) tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert
    #[arg(long, env = "BULKHEAD_TLS_KEY")]
    pub(super) tls_key: Option<PathBuf>,
    /// JWKS file of an identity provider whose tokens are accepted (with --jwks-issuer)
    #[arg(long, env = "BULKHEAD_JWKS")]
    pub(super) jwks: Option<PathBuf>,
    /// The `iss` of the identity provider's tokens. This provider is the operator's: it
    /// may grant platform_admin, and its tokens may name only the --jwks-tenant tenants
    /// (other providers: `[[identity_provider]]` in the config file)
    #[arg(long, env = "BULKHEAD_JWKS_ISSUER")]
    pub(super) jwks_issuer: Option<String>,
    /// A tenant the --jwks provider's tokens may name (repeatable, or comma-separated)
    #[arg(long, env = "BULKHEAD_JWKS_TENANTS", value_delimiter = ',')]
    #[serde(default)]
    pub(super) jwks_tenant: Vec<String>,
    /// Identity providers, each bound to the tenants it may name and the roles it may
    /// grant: `[[identity_provider]]` tables in the config file
    #[arg(skip)]
    #[serde(default)]
    pub(super) identity_provider: Vec<IdentityProviderArgs>,
    /// Inference requests (search, ask) running at once [default: 2]
    #[arg(long, env = "BULKHEAD_INFERENCE_WORKERS")]
    pub(super) inference_workers: Option<usize>,
    /// Inference requests allowed to wait; beyond that, 503 overloaded [default: 8]
    #[arg(long, env = "BULKHEAD_INFERENCE_QUEUE")]
    pub(super) inference_queue: Option<usize>,
    /// Of the inference workers, those reserved for premium and enterprise tenants (at
    /// most all but one); standard work borrows them while idle and gives them back at its
    /// next token when premium work arrives, and waits while premium work runs
    /// [default: 1]
    #[arg(long, env = "BULKHEAD_PREMIUM_WORKERS")]
    pub(super) premium_workers: Option<usize>,
    /// Premium requests allowed to wait for a reserved worker; beyond that, premium
    /// queues like a standard tenant [default: 4]
    #[arg(long, env = "BULKHEAD_PREMIUM_QUEUE")]
    pub(super) premium_queue: Option<usize>,
    /// Inference requests one standard tenant may have waiting or running, 0 for the
    /// places divided by the tenants asking; beyond it, 429 [default: 0]
    #[arg(long, env = "BULKHEAD_TENANT_INFERENCE_SHARE")]
    pub(super) tenant_inference_share: Option<usize>,
    /// Premium and enterprise tenants' rate limit, as a multiple of --rate-limit
    /// [default: 4]
    #[arg(long, env = "BULKHEAD_PREMIUM_RATE_MULTIPLIER")]
    pub(super) premium_rate_multiplier: Option<u32>,
    /// Requests per minute per tenant, 0 for unlimited [default: 600]
    #[arg(long, env = "BULKHEAD_RATE_LIMIT")]
    pub(super) rate_limit: Option<u32>,
    /// Longest time for one search or ask, in seconds [default: 120]
    #[arg(long, env = "BULKHEAD_REQUEST_TIMEOUT")]
    pub(super) request_timeout: Option<u64>,
    /// Uploads received at once; beyond that, 503 overloaded [default: 4]
    #[arg(long, env = "BULKHEAD_MAX_UPLOADS")]
    pub(super) max_uploads: Option<usize>,
    /// Seconds a client may take to send a request's headers (and the TLS handshake)
    /// [default: 15]
    #[arg(long, env = "BULKHEAD_HEADER_TIMEOUT")]
    pub(super) header_timeout: Option<u64>,
    /// Seconds a connection may stay silent before it is closed [default: 60]
    #[arg(long, env = "BULKHEAD_IDLE_TIMEOUT")]
    pub(super) idle_timeout: Option<u64>,
    /// Failed requests (bad tokens, cross-tenant attempts) audited one by one per client
    /// address and per target tenant in each failure window; later ones are counted in
    /// one audit entry, and the client gets 429 [default: 10]
    #[arg(long, env = "BULKHEAD_FAILURE_BURST")]
    pub(super) failure_burst: Option<u32>,
    /// The failure window, in seconds [default: 60]
    #[arg(long, env = "BULKHEAD_FAILURE_WINDOW")]
    pub(super) failure_window: Option<u64>,
    /// Bytes the open tenants' indexes may take in memory; beyond it the least recently
    /// used are evicted (premium tenants' never) [default: a quarter of total memory]
    #[arg(long, env = "BULKHEAD_OPEN_INDEX_BUDGET_BYTES")]
    pub(super) open_index_budget_bytes: Option<u64>,
    /// Seconds an unused tenant's index stays in memory (premium tenants' always)
    /// [default: 900]
    #[arg(long, env = "BULKHEAD_OPEN_INDEX_IDLE_SECONDS")]
    pub(super) open_index_idle_seconds: Option<u64>,
    /// Address space (RLIMIT_AS) of each enterprise tenant's own process, in bytes
    /// [default: 8 GiB]
    #[arg(long, env = "BULKHEAD_ENTERPRISE_MEMORY_LIMIT_BYTES")]
    pub(super) enterprise_memory_limit_bytes: Option<u64>,
    /// Seconds between health checks of each enterprise tenant's process [default: 5]
    #[arg(long, env = "BULKHEAD_ENTERPRISE_HEALTH_INTERVAL")]
    pub(super) enterprise_health_interval: Option<u64>,
    /// Seconds an enterprise tenant's process may take to answer a health check before
    /// it is killed and restarted [default: 10]
    #[arg(long, env = "BULKHEAD_ENTERPRISE_HEALTH_TIMEOUT")]
    pub(super) enterprise_health_timeout: Option<u64>,
    /// Load the embedding model and the language model at the first request that needs
    /// them instead of at start (the default loads both in the background as the server
    /// starts, so the first ask does not wait for them)
    #[arg(long, env = "BULKHEAD_LAZY_MODELS")]
    #[serde(default)]
    pub(super) lazy_models: bool,
    /// Internal: this process is an enterprise tenant's own, started by `serve`, which
    /// writes its tenant on stdin
    #[arg(long, hide = true)]
    #[serde(skip)]
    pub(super) tenant_process: bool,
}

/// One trusted identity provider: an `[[identity_provider]]` table of the config file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct IdentityProviderArgs {
    /// The tokens' `iss`.
    pub(super) issuer: String,
    /// Its public keys (a JWKS file).
    pub(super) jwks: PathBuf,
    /// The tenants its tokens may name.
    #[serde(default)]
    pub(super) tenants: Vec<String>,
    /// The claim that carries the tenant id [default: tenant_id].
    pub(super) tenant_claim: Option<String>,
    /// The tenant roles it may grant [default: reader, editor, admin, auditor].
    pub(super) roles: Option<Vec<String>>,
    /// The operator's own provider: it may grant platform_admin.
    #[serde(default)]
    pub(super) operator: bool,
    /// The `aud` its tokens must carry [default: bulkhead]; for web sign-in with
    /// id_tokens, the client_id.
    pub(super) audience: Option<String>,
    /// Web sign-in (OIDC authorization code with PKCE): the provider's name on the
    /// sign-in page [default: the issuer].
    pub(super) display_name: Option<String>,
    /// Web sign-in: the provider's authorization endpoint.
    pub(super) authorization_endpoint: Option<String>,
    /// Web sign-in: the provider's token endpoint (its origin is added to the web app's
    /// `connect-src`).
    pub(super) token_endpoint: Option<String>,
    /// Web sign-in: the web app's client id at the provider (a public client, no secret).
    pub(super) client_id: Option<String>,
    /// Web sign-in: the scopes asked for [default: openid].
    pub(super) scopes: Option<String>,
}

impl ServeArgs {
    /// Fills what flags and environment left unset from the config file.
    pub(super) fn with_file(mut self) -> Result<ServeArgs, UserFailure> {
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
            premium_workers,
            premium_queue,
            tenant_inference_share,
            premium_rate_multiplier,
            rate_limit,
            request_timeout,
            max_uploads,
            header_timeout,
            idle_timeout,
            failure_burst,
            failure_window,
            open_index_budget_bytes,
            open_index_idle_seconds,
            enterprise_memory_limit_bytes,
            enterprise_health_interval,
            enterprise_health_timeout
        );
        if self.jwks_tenant.is_empty() {
            self.jwks_tenant = file.jwks_tenant;
        }
        self.lazy_models |= file.lazy_models;
        self.identity_provider = file.identity_provider;
        Ok(self)
    }
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["platform_admin", "tenant"])))]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(super) struct TokenArgs {
    #[command(subcommand)]
    pub(super) command: Option<TokenCommand>,
    /// A platform administrator's token (manages tenants, reads no tenant content)
    #[arg(long)]
    pub(super) platform_admin: bool,
    /// The tenant the token belongs to
    #[arg(long, requires_all = ["user", "role"])]
    pub(super) tenant: Option<String>,
    /// The user's id (`sub`)
    #[arg(long)]
    pub(super) user: Option<String>,
    /// reader, editor, admin or auditor (repeatable)
    #[arg(long, value_enum)]
    pub(super) role: Vec<RoleArg>,
    /// Lifetime: 90s, 30m, 1h, 7d
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    pub(super) ttl: u64,
    #[arg(long)]
    pub(super) json: bool,
}

#[derive(Subcommand, Debug)]
pub(super) enum TokenCommand {
    /// Refuse a token (by its `jti`) or every token a user was issued up to now (audited)
    #[command(group(clap::ArgGroup::new("which").required(true).args(["jti", "user"])))]
    Revoke {
        #[arg(long)]
        tenant: String,
        /// The token's id (its `jti` claim; `token --json` prints it)
        jti: Option<String>,
        /// Revoke every token issued to this user until now
        #[arg(long)]
        user: Option<String>,
    },
    /// List the tenant's tokens that have not expired (never the tokens themselves)
    List {
        #[arg(long)]
        tenant: String,
        /// One JSON object, as `GET /v1/tenants/{t}/tokens`
        #[arg(long)]
        json: bool,
    },
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
pub(super) enum AuditCommand {
    /// Recompute the chain: prints {ok, entries, head} and where it breaks
    Verify,
}

#[derive(Subcommand, Debug)]
pub(super) enum ReportCommand {
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
        #[arg(long, value_enum, default_value_t = ReportFormat::Json)]
        format: ReportFormat,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum CertificateCommand {
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
pub(super) enum TenantCommand {
    /// Delete a tenant for good and print the signed deletion certificate (JSON)
    Delete { tenant: String },
    /// Create a tenant and print its id (`--json`: with its first-admin invitation)
    Create {
        name: String,
        #[arg(long, value_enum, default_value_t = TierArg::Standard)]
        tier: TierArg,
        /// An enterprise tenant's customer-held key from the start: the customer's age
        /// recipient (`age1...`, from `age-keygen`); its data is locked until unlocked
        #[arg(long, value_name = "RECIPIENT")]
        customer_key: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Wrap an enterprise tenant's data key to a key its customer holds (BYOK): locked
    /// from then on until its admin unlocks it with the matching age identity
    Byok {
        tenant: String,
        /// The customer's age recipient (`age1...`); the identity stays with the customer
        #[arg(long, value_name = "RECIPIENT")]
        recipient: String,
    },
    /// Check a BYOK tenant's customer key and unlock the tenant in this process only (a
    /// running server is unlocked with `POST /v1/tenants/{t}/unlock`)
    Unlock {
        tenant: String,
        /// A file holding the customer's age identity (`AGE-SECRET-KEY-1...`)
        #[arg(long, value_name = "FILE")]
        key_file: PathBuf,
    },
    /// Pin an enterprise tenant's own model: a GGUF file on the appliance and its
    /// SHA-256, loaded only in the tenant's own process (`--clear`: the appliance's model)
    Model {
        tenant: String,
        #[arg(
            long,
            value_name = "PATH",
            required_unless_present = "clear",
            requires = "sha256"
        )]
        gguf: Option<PathBuf>,
        /// The file's SHA-256 (`sha256sum FILE`), 64 hex digits
        #[arg(long, value_name = "HEX", requires = "gguf")]
        sha256: Option<String>,
        #[arg(long, conflicts_with_all = ["gguf", "sha256"])]
        clear: bool,
    },
    /// List tenants
    List {
        #[arg(long)]
        json: bool,
    },
    /// Move a tenant to another tier, online: a running server schedules its next request
    /// under the new tier (audited in the tenant's log and the platform's)
    Tier {
        tenant: String,
        #[arg(value_enum)]
        tier: TierArg,
        #[arg(long)]
        json: bool,
    },
}

/// `--llm`: the names of `config::LlmChoice`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(super) enum LlmArg {
    Smollm2,
    #[value(name = "qwen2.5-coder-0.5b")]
    QwenCoder05b,
}

impl From<LlmArg> for LlmChoice {
    fn from(llm: LlmArg) -> LlmChoice {
        match llm {
            LlmArg::Smollm2 => LlmChoice::SmolLm2,
            LlmArg::QwenCoder05b => LlmChoice::QwenCoder05b,
        }
    }
}

/// `tenant create --tier`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(super) enum TierArg {
    Standard,
    Premium,
    Enterprise,
}

impl From<TierArg> for Tier {
    fn from(tier: TierArg) -> Tier {
        match tier {
            TierArg::Standard => Tier::Standard,
            TierArg::Premium => Tier::Premium,
            TierArg::Enterprise => Tier::Enterprise,
        }
    }
}

/// `search --mode`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(super) enum ModeArg {
    Hybrid,
    Vector,
    Keyword,
}

impl From<ModeArg> for SearchMode {
    fn from(mode: ModeArg) -> SearchMode {
        match mode {
            ModeArg::Hybrid => SearchMode::Hybrid,
            ModeArg::Vector => SearchMode::Vector,
            ModeArg::Keyword => SearchMode::Keyword,
        }
    }
}

/// `token --role`: the tenant roles (a platform admin's token is `--platform-admin`).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(super) enum RoleArg {
    Reader,
    Editor,
    Admin,
    Auditor,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::Reader => Role::Reader,
            RoleArg::Editor => Role::Editor,
            RoleArg::Admin => Role::Admin,
            RoleArg::Auditor => Role::Auditor,
        }
    }
}

/// `report access-review --format`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(super) enum ReportFormat {
    Json,
    Csv,
    Html,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llm_names_are_the_configurations() {
        for arg in LlmArg::value_variants() {
            let name = arg.to_possible_value().expect("named");
            assert_eq!(name.get_name(), LlmChoice::from(*arg).name());
        }
        assert_eq!(LlmArg::value_variants().len(), LlmChoice::ALL.len());
    }
}
