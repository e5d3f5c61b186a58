//! Turning an uploaded original into indexable text: format sniffing and extraction
//! ([`extract`]) and token-aware chunking with character spans ([`chunk`]).
//! Knows nothing about tenants, storage or models beyond a tokenizer.

pub mod chunk;
pub mod extract;
pub mod sections;
