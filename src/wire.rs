//! The JSON shapes of API.md, shared by the CLI's `--json` output and (later) the HTTP
//! API. Only this module derives `Serialize` for wire types; core types stay free of
//! serialisation concerns and are converted here.

use serde::Serialize;
use utoipa::ToSchema;

use crate::appliance::{Answer, IndexOutcome, SearchResult};
use crate::audit::VerifyReport;
use crate::catalogue::Catalogue;
use crate::store::{self, ChunkRecord, DocumentRecord, TenantRecord};

/// `bulkhead audit verify` and `GET /v1/audit/verify`.
#[derive(Serialize)]
pub struct AuditVerification {
    pub ok: bool,
    pub entries: usize,
    pub head: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_bad_seq: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl From<&VerifyReport> for AuditVerification {
    fn from(report: &VerifyReport) -> AuditVerification {
        AuditVerification {
            ok: report.ok,
            entries: report.entries,
            head: report.head.clone(),
            first_bad_seq: report.first_bad_seq,
            problem: report.problem.clone(),
        }
    }
}

/// `GET /v1/tenants/{t}/usage` (the route adds the period's `from` and `to`).
#[derive(Serialize)]
pub struct Usage {
    pub documents: u64,
    pub chunks: u64,
    pub bytes_stored: u64,
    pub queries: u64,
    pub tokens_in: u64,
    pub tokens_out: u64,
}

impl From<&store::Usage> for Usage {
    fn from(usage: &store::Usage) -> Usage {
        Usage {
            documents: usage.documents,
            chunks: usage.chunks,
            bytes_stored: usage.bytes_stored,
            queries: usage.queries,
            tokens_in: usage.tokens_in,
            tokens_out: usage.tokens_out,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Tenant {
    pub tenant_id: String,
    pub name: String,
    pub tier: &'static str,
    pub created_at: String,
}

impl From<&TenantRecord> for Tenant {
    fn from(record: &TenantRecord) -> Tenant {
        Tenant {
            tenant_id: record.tenant_id.to_string(),
            name: record.name.clone(),
            tier: record.tier.as_str(),
            created_at: crate::time::rfc3339(record.created_at),
        }
    }
}

/// A created tenant with its single-use first-admin invitation (shown once).
#[derive(Serialize, ToSchema)]
pub struct CreatedTenant {
    #[serde(flatten)]
    pub tenant: Tenant,
    pub invitation: String,
    /// The customer's age recipient, when the tenant was created with one (issue 12).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_key: Option<String>,
}

/// A tenant's customer-held key (issue 12): `PUT /v1/tenants/{t}/customer-key`,
/// `POST …/unlock`, `POST …/lock`. The recipient is public; the identity never leaves the
/// customer except to unlock, and is never shown.
#[derive(Serialize, ToSchema)]
pub struct CustomerKey {
    pub tenant_id: String,
    pub customer_key: String,
    pub locked: bool,
}

#[derive(Serialize, ToSchema)]
pub struct TenantList {
    pub tenants: Vec<Tenant>,
    /// The cursor of the next page; `None` on the last.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Document {
    pub document_id: String,
    pub filename: String,
    pub content_type: Option<String>,
    pub bytes: u64,
    pub status: &'static str,
    pub chunks: u64,
    pub created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the contract says about itself, found at indexing (absent until indexed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub catalogue: Option<DocumentCatalogue>,
}

/// A document's catalogue: each field only when the rules found it. Dates are ISO 8601,
/// possibly without day or month ("2019-09", "2019") when the contract leaves them open.
#[derive(Serialize, ToSchema)]
pub struct DocumentCatalogue {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub parties: Vec<CataloguedParty>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub governing_law: Option<String>,
    pub summary: String,
}

#[derive(Serialize, ToSchema)]
pub struct CataloguedParty {
    pub name: String,
    /// The defined term the contract uses for it ("Licensor").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

impl From<&Catalogue> for DocumentCatalogue {
    fn from(catalogue: &Catalogue) -> DocumentCatalogue {
        let date = |field: &Option<crate::catalogue::Field<crate::values::DateValue>>| {
            field.as_ref().map(|field| field.value.to_string())
        };
        DocumentCatalogue {
            title: catalogue.title.as_ref().map(|field| field.value.clone()),
            parties: catalogue
                .parties
                .iter()
                .map(|party| CataloguedParty {
                    name: party.name.clone(),
                    alias: party.alias.clone(),
                })
                .collect(),
            agreement_date: date(&catalogue.agreement_date),
            effective_date: date(&catalogue.effective_date),
            expiration_date: date(&catalogue.expiration_date),
            governing_law: catalogue
                .governing_law
                .as_ref()
                .map(|field| field.value.clone()),
            summary: catalogue.summary.clone(),
        }
    }
}

impl Document {
    /// The document with its catalogue, when it has one.
    pub fn with_catalogue(record: &DocumentRecord, catalogue: Option<&Catalogue>) -> Document {
        Document {
            catalogue: catalogue.map(DocumentCatalogue::from),
            ..Document::from(record)
        }
    }
}

impl From<&DocumentRecord> for Document {
    fn from(record: &DocumentRecord) -> Document {
        Document {
            document_id: record.document_id.to_string(),
            filename: record.filename.clone(),
            content_type: record.content_type.clone(),
            bytes: record.bytes,
            status: record.status.as_str(),
            chunks: record.chunks,
            created_at: crate::time::rfc3339(record.created_at),
            error: record.error.clone(),
            catalogue: None,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct DocumentList {
    pub documents: Vec<Document>,
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct IngestedDocument {
    pub document_id: Option<String>,
    pub filename: String,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunks: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<&IndexOutcome> for IngestedDocument {
    fn from(outcome: &IndexOutcome) -> IngestedDocument {
        IngestedDocument {
            document_id: Some(outcome.document_id.to_string()),
            filename: outcome.filename.clone(),
            status: if outcome.result.is_ok() {
                "indexed"
            } else {
                "failed"
            },
            chunks: outcome.result.as_ref().ok().copied(),
            error: outcome.result.as_ref().err().cloned(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct IngestReport {
    pub documents: Vec<IngestedDocument>,
    pub indexed: usize,
    pub failed: usize,
}

#[derive(Serialize, ToSchema)]
pub struct Citation {
    pub document_id: String,
    pub chunk_id: String,
    pub filename: String,
    pub text: String,
    pub start: usize,
    pub end: usize,
}

impl From<&ChunkRecord> for Citation {
    fn from(chunk: &ChunkRecord) -> Citation {
        Citation {
            document_id: chunk.chunk_id.document_id().to_string(),
            chunk_id: chunk.chunk_id.to_string(),
            filename: chunk.filename.clone(),
            text: chunk.text.clone(),
            start: chunk.start,
            end: chunk.end,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TimingsMs {
    pub embed: u64,
    pub retrieve: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_token: Option<u64>,
    /// Running the prompt through the model; with `prompt_tokens`, prefill tokens/s.
    pub prefill_ms: u64,
    /// Sampling the answer after the prefill; with `answer_tokens`, decode tokens/s.
    pub decode_ms: u64,
    pub generate: u64,
    pub total: u64,
    pub prompt_tokens: usize,
    pub answer_tokens: usize,
}

#[derive(Serialize, ToSchema)]
pub struct AskResponse {
    pub answer: String,
    pub grounded: bool,
    pub citations: Vec<Citation>,
    pub timings_ms: TimingsMs,
}

impl From<&Answer> for AskResponse {
    fn from(answer: &Answer) -> AskResponse {
        let timings = &answer.timings;
        AskResponse {
            answer: answer.text.clone(),
            grounded: answer.grounded,
            citations: answer.citations.iter().map(Citation::from).collect(),
            timings_ms: TimingsMs {
                embed: timings.embed_ms,
                retrieve: timings.retrieve_ms,
                first_token: timings.first_token_ms,
                generate: timings.generate_ms,
                prefill_ms: timings.prefill_ms,
                decode_ms: timings.decode_ms,
                total: timings.total_ms,
                prompt_tokens: timings.prompt_tokens,
                answer_tokens: timings.answer_tokens,
            },
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SearchHit {
    pub document_id: String,
    pub chunk_id: String,
    pub filename: String,
    pub score: f32,
    pub text: String,
    pub start: usize,
    pub end: usize,
}

impl From<&SearchResult> for SearchHit {
    fn from(result: &SearchResult) -> SearchHit {
        let citation = Citation::from(&result.chunk);
        SearchHit {
            document_id: citation.document_id,
            chunk_id: citation.chunk_id,
            filename: citation.filename,
            score: result.score,
            text: citation.text,
            start: citation.start,
            end: citation.end,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SearchResponse {
    pub results: Vec<SearchHit>,
}

/// A minted token: `jti` revokes it (`DELETE /v1/tenants/{t}/tokens/{jti}`);
/// `expires_at` is RFC 3339.
#[derive(Serialize, ToSchema)]
pub struct Token {
    pub token: String,
    pub jti: String,
    pub expires_at: String,
}

impl From<crate::auth::tokens::MintedToken> for Token {
    fn from(minted: crate::auth::tokens::MintedToken) -> Token {
        Token {
            token: minted.token,
            jti: minted.jti,
            expires_at: crate::time::rfc3339(minted.expires_at as i64),
        }
    }
}

/// A token issued for a tenant, as its admins see it (never the token itself).
#[derive(Serialize, ToSchema)]
pub struct IssuedToken {
    pub jti: String,
    /// `null` while the tenant is locked (its customer holds its key).
    pub user: Option<String>,
    pub roles: Vec<String>,
    pub issued_at: String,
    pub expires_at: String,
    pub revoked: bool,
}

impl From<crate::store::IssuedToken> for IssuedToken {
    fn from(token: crate::store::IssuedToken) -> IssuedToken {
        IssuedToken {
            jti: token.jti,
            user: token.user,
            roles: token.roles,
            issued_at: crate::time::rfc3339(token.issued_at),
            expires_at: crate::time::rfc3339(token.expires_at),
            revoked: token.revoked,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct IssuedTokenList {
    pub tokens: Vec<IssuedToken>,
}

#[derive(Serialize, ToSchema)]
pub struct Uploaded {
    pub document_id: String,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunks: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A document's extracted text (`GET /v1/tenants/{t}/documents/{d}/text`): what
/// citations' and search hits' `start`/`end` count into, in characters.
#[derive(Serialize, ToSchema)]
pub struct DocumentText {
    pub document_id: String,
    pub text: String,
    /// A pdf's pages: where each starts in `text`, in characters (the first is 0); absent
    /// for other formats and for pdfs indexed before pages were recorded (issue 13).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page_starts: Option<Vec<u64>>,
}

// ---- web sign-in (`/v1/auth/providers`, `/v1/auth/session`) --------------------------

/// `GET /v1/auth/providers`: the identity providers users may sign in with from the web
/// app. Public: endpoints and client ids only, never the tenants a provider is bound to.
#[derive(Serialize, ToSchema)]
pub struct SignInProviders {
    pub providers: Vec<SignInProvider>,
}

/// One provider's OIDC settings for the authorization code flow with PKCE (S256).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct SignInProvider {
    /// The `iss` its tokens carry; identifies the provider in the list.
    pub issuer: String,
    pub display_name: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub client_id: String,
    /// Space-separated, `openid` first.
    pub scopes: String,
    /// The `aud` the appliance accepts from this provider: the app sends the token
    /// (id_token, else access token) addressed to it.
    pub audience: String,
}

/// `GET /v1/auth/session`: who the bearer token says the caller is, once the appliance
/// has verified it (the web app checks a token from sign-in with it before using it).
#[derive(Serialize, ToSchema)]
pub struct Session {
    pub sub: String,
    /// `null` for a platform admin.
    pub tenant_id: Option<String>,
    pub roles: Vec<String>,
    pub expires_at: String,
}

// ---- the OpenAI-compatible endpoint (`/v1/models`, `/v1/chat/completions`) ----------

/// `GET /v1/models`.
#[derive(Serialize, ToSchema)]
pub struct ModelList {
    pub object: &'static str,
    pub data: Vec<Model>,
}

#[derive(Serialize, ToSchema)]
pub struct Model {
    pub id: &'static str,
    pub object: &'static str,
    pub created: i64,
    pub owned_by: &'static str,
}

/// OpenAI's `chat.completion`, with the answer's `citations` (and `grounded`) on the
/// message.
#[derive(Serialize, ToSchema)]
pub struct ChatCompletion {
    pub id: String,
    pub object: &'static str,
    pub created: i64,
    pub model: &'static str,
    pub choices: Vec<ChatChoice>,
    pub usage: ChatUsage,
}

#[derive(Serialize, ToSchema)]
pub struct ChatChoice {
    pub index: u32,
    pub message: ChatMessage,
    pub finish_reason: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct ChatMessage {
    pub role: &'static str,
    pub content: String,
    pub grounded: bool,
    pub citations: Vec<Citation>,
}

/// Tokens the model read (the prompt) and wrote (the answer).
#[derive(Serialize, ToSchema, Clone, Copy)]
pub struct ChatUsage {
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub total_tokens: usize,
}

impl From<&Answer> for ChatUsage {
    fn from(answer: &Answer) -> ChatUsage {
        ChatUsage {
            prompt_tokens: answer.timings.prompt_tokens,
            completion_tokens: answer.timings.answer_tokens,
            total_tokens: answer.timings.prompt_tokens + answer.timings.answer_tokens,
        }
    }
}

/// OpenAI's `chat.completion.chunk`; the last one carries `finish_reason`, `usage`,
/// `grounded` and `citations`.
#[derive(Serialize, ToSchema)]
pub struct ChatCompletionChunk {
    pub id: String,
    pub object: &'static str,
    pub created: i64,
    pub model: &'static str,
    pub choices: Vec<ChunkChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<ChatUsage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grounded: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub citations: Option<Vec<Citation>>,
}

#[derive(Serialize, ToSchema)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: ChatDelta,
    pub finish_reason: Option<&'static str>,
}

#[derive(Serialize, ToSchema, Default)]
pub struct ChatDelta {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}
