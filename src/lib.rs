//! Bulkhead: a multi-tenant contract Q&A appliance in one binary.
//!
//! # Layout
//!
//! Dependencies point downward only.
//!
//! - `cli` — the command line (glue: parse, call `appliance`, print), and the demo.
//! - `server`, `api` — `bulkhead serve`: listener, TLS 1.3, graceful shutdown, the
//!   background indexer; the HTTP routes of API.md with token-checked tenant scopes.
//! - `audit`, `report` — the hash-chained audit log; access reviews from it.
//! - `portability` — tenant export (tar, optionally age-encrypted) and import.
//! - `wire` — the JSON shapes of API.md; the only place that derives `Serialize`.
//! - `appliance` — the core every front end calls: tenants, uploads, the indexing queue,
//!   search and grounded answers.
//! - `auth` — mints the `TenantScope` every tenant operation requires.
//! - `output` — the output layer: every document in a response is checked to be the
//!   tenant's.
//! - `answer` — grounding rules, prompt and citations (pure functions).
//! - `clauses`, `catalogue`, `answer_facts`, `values` — the clause vocabulary, the
//!   per-document catalogue, typed answers with their checker, and the typed values
//!   (jurisdictions, dates, periods, amounts) they share (pure functions, rules only).
//! - `resolution` — which contract a question names, and clause re-ranking scores.
//! - `index` — per-tenant vector (HNSW) and keyword (tantivy) indexes, fused by RRF.
//! - `ingest` — format sniffing, text extraction, chunking.
//! - `embed`, `llm` — local models on candle.
//! - `kernels` — the int8 GEMM (AVX-512 VNNI, chosen at run time) their linear layers run on.
//! - `store` — SQLite, encrypted blobs and index files, the job queue.
//! - `isolation` — the six isolation layers, and their test-only ablation switches.
//! - `crypto` — keys and authenticated encryption bound to tenant, kind and object.
//! - `ids`, `config`, `logging`, `time` — leaf utilities (`time`: the one clock and
//!   RFC 3339 format).

pub mod answer;
pub mod answer_facts;
pub mod api;
pub mod appliance;
pub mod audit;
pub mod auth;
pub mod catalogue;
pub mod clauses;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod embed;
pub mod ids;
pub mod index;
pub mod ingest;
pub mod isolation;
pub mod kernels;
pub mod llm;
pub mod logging;
pub mod output;
pub mod portability;
pub mod report;
pub mod resolution;
pub mod server;
pub mod store;
pub mod time;
pub mod values;
pub mod wire;
