//! The output layer (isolation layer 6): the last check before anything leaves.
//!
//! Every document and chunk in a response — search results, an answer's citations and
//! quote, document listings and downloads — is checked against storage to belong to the
//! requesting tenant ([`Store::document_owners`], read on the system connection, so it does
//! not rely on the tenant connection, its views or the scope's own query filters). What
//! is not the tenant's is dropped, and its identifiers (document id, file name) are removed
//! from the answer text. For answers, citations must also be in this request's retrieved
//! set, and an answer whose sentences its cited excerpts do not support is withheld
//! (`grounded: false`). Streams pass the same check sentence by sentence (see
//! `answer::SentenceGate` and ARCHITECTURE.md).

use std::collections::HashSet;

use crate::auth::TenantScope;
use crate::ids::DocumentId;
use crate::isolation::{Layer, enabled};
use crate::store::{Store, StoreError};

/// Whether each document is the scope's tenant's, by storage (all true when this layer
/// is off in an ablation test build).
pub fn owned(
    store: &Store,
    scope: &TenantScope,
    documents: &[&DocumentId],
) -> Result<Vec<bool>, StoreError> {
    if !enabled(Layer::Output) {
        return Ok(vec![true; documents.len()]);
    }
    let owners = store.document_owners(documents)?;
    let owned: Vec<bool> = documents
        .iter()
        .map(|document| owners.get(*document) == Some(scope.tenant_id()))
        .collect();
    let foreign = owned.iter().filter(|owned| !**owned).count();
    if foreign > 0 {
        tracing::error!(tenant = %scope.tenant_id(), foreign, "output layer withheld items of another tenant");
    }
    Ok(owned)
}

/// Keeps the items whose document is the scope's tenant's.
pub fn retain_owned<T>(
    store: &Store,
    scope: &TenantScope,
    items: Vec<T>,
    document: impl Fn(&T) -> &DocumentId,
) -> Result<Vec<T>, StoreError> {
    let ids: Vec<&DocumentId> = items.iter().map(&document).collect();
    let owned = owned(store, scope, &ids)?;
    Ok(items
        .into_iter()
        .zip(owned)
        .filter_map(|(item, owned)| owned.then_some(item))
        .collect())
}

/// Removes the identifiers of what was withheld (document ids, file names) from text.
pub fn redact(text: &str, withheld: &[(&DocumentId, &str)]) -> String {
    let mut text = text.to_owned();
    let mut seen = HashSet::new();
    for (document, filename) in withheld {
        for identifier in [document.as_str(), filename] {
            if identifier.len() >= 3 && seen.insert(identifier.to_string()) {
                text = text.replace(identifier, "[withheld]");
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn withheld_identifiers_are_removed_from_text() {
        let document = DocumentId::generate();
        let text = format!("See {document} and beta-settlement.pdf, not alpha.pdf.");
        let redacted = redact(&text, &[(&document, "beta-settlement.pdf")]);
        assert!(!redacted.contains(document.as_str()));
        assert!(!redacted.contains("beta-settlement"));
        assert!(redacted.contains("alpha.pdf"));
    }
}
