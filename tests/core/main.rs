//! Integration tests of the core loop, with the real models (fetched by models/fetch.sh)
//! and real SQLite files in temporary data directories. One binary, modules per concern.

mod answers;
mod bad_input;
#[path = "../common/mod.rs"]
mod common;
mod compliance;
mod crash;
mod doctor;
mod isolation;
mod issue_11;
mod plaintext;
mod scale;
mod support;
mod tenants_and_keys;
