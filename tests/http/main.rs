//! HTTP gateway tests against a real `bulkhead serve` on port 0 (a child process), with
//! the real models and a real data directory.

mod abuse;
mod attacks;
mod bombs;
#[path = "../common/mod.rs"]
mod common;
mod endpoints;
mod enterprise;
mod harness;
mod identities;
mod integrity;
mod issuers;
mod openai;
mod operations;
mod processes;
mod scale;
mod tiers;
mod web;
