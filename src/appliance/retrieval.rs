//! Clause-aware retrieval (issue 9): the contract a question names is resolved from the
//! catalogues and searched alone, the naming words leave the query, the keyword side also
//! searches for the clause type's usual wording, and the top candidates are re-ranked by
//! how much they read like that clause.

use std::collections::HashSet;

use super::*;
use crate::clauses::{self, ClauseType};
use crate::index::Hit;
use crate::resolution::{self, NamedDocument};

/// How many fused candidates the clause re-ranking looks at.
const RERANK_CANDIDATES: usize = 50;
/// What one point of clause score is worth against reciprocal-rank fusion (the first
/// place of one list is worth 1/61 ≈ 0.016).
const CLAUSE_WEIGHT: f32 = 0.006;

/// The outcome of a clause-aware search.
pub(super) struct ClauseHits {
    pub hits: Vec<Hit>,
    /// The documents the question named, when it named some.
    pub documents: Option<Vec<DocumentId>>,
    /// The clause type the question is about, when it is about one.
    pub clause: Option<&'static ClauseType>,
    /// The candidates' chunks the re-ranking read, by row id (empty when there was no
    /// re-ranking): [`Appliance::hit_chunks`] reuses them instead of reading them again.
    read: HashMap<u64, ChunkRecord>,
}

impl Appliance {
    /// Searches for the clause a question asks about: see the module comment.
    pub(super) fn clause_search(
        &self,
        scope: &TenantScope,
        question: &str,
        k: usize,
        mode: SearchMode,
    ) -> Result<ClauseHits, ApplianceError> {
        let (documents, query) = self.resolve_contract(scope, question)?;
        let within: Option<HashSet<u64>> = match &documents {
            Some(documents) => {
                let mut rows = HashSet::new();
                for document in documents {
                    rows.extend(self.store.document_row_ids(scope, document)?);
                }
                Some(rows)
            }
            None => None,
        };
        let clause = clauses::detect(&query).first().copied();
        // A question about the contract's own name or parties looks for exactly the words
        // that named it: those stay in the query (the search is still within it).
        let query = match clause.map(|clause| clause.answer) {
            Some(clauses::AnswerShape::Name | clauses::AnswerShape::Parties) => question.to_owned(),
            _ => query,
        };
        let text_query = clauses::expand_query(&query);
        let vector = match mode {
            SearchMode::Keyword => None,
            SearchMode::Hybrid | SearchMode::Vector => Some(self.embedder()?.embed_one(&query)?),
        };
        let index = self.tenant_index(scope)?;
        let mut hits = read(&index).search_within(
            vector.as_deref(),
            &text_query,
            k.max(RERANK_CANDIDATES),
            mode,
            within.as_ref(),
        )?;
        let mut read = HashMap::new();
        if let Some(clause) = clause {
            let row_ids: Vec<u64> = hits.iter().map(|hit| hit.row_id).collect();
            read = self
                .store
                .chunks(scope, &row_ids)?
                .into_iter()
                .map(|chunk| (chunk.row_id, chunk))
                .collect();
            for hit in &mut hits {
                if let Some(chunk) = read.get(&hit.row_id) {
                    hit.score += CLAUSE_WEIGHT * resolution::clause_score(clause, &chunk.text);
                }
            }
            hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.row_id.cmp(&b.row_id)));
        }
        hits.truncate(k);
        Ok(ClauseHits {
            hits,
            documents,
            clause,
            read,
        })
    }

    /// The kept hits' chunks in rank order, as [`Store::chunks`] returns them: taken from
    /// what the re-ranking already read, else read now.
    pub(super) fn hit_chunks(
        &self,
        scope: &TenantScope,
        searched: &mut ClauseHits,
    ) -> Result<Vec<ChunkRecord>, ApplianceError> {
        let row_ids: Vec<u64> = searched.hits.iter().map(|hit| hit.row_id).collect();
        if searched.read.is_empty() {
            return Ok(self.store.chunks(scope, &row_ids)?);
        }
        Ok(row_ids
            .iter()
            .filter_map(|row_id| searched.read.remove(row_id))
            .collect())
    }

    /// The documents `question` names (by catalogue title, party names and file name) and
    /// the question without the naming words; `None` and the question as asked when it
    /// names none clearly.
    fn resolve_contract(
        &self,
        scope: &TenantScope,
        question: &str,
    ) -> Result<(Option<Vec<DocumentId>>, String), ApplianceError> {
        let records = self.store.list_documents(scope)?;
        let catalogues: HashMap<DocumentId, Catalogue> =
            self.catalogues(scope)?.into_iter().collect();
        let named: Vec<NamedDocument<'_>> = records
            .iter()
            .map(|record| {
                let catalogue = catalogues.get(&record.document_id);
                NamedDocument {
                    title: catalogue
                        .and_then(|c| c.title.as_ref())
                        .map(|title| title.value.as_str()),
                    parties: catalogue
                        .map(|c| {
                            c.parties
                                .iter()
                                .flat_map(|party| {
                                    std::iter::once(party.name.as_str())
                                        .chain(party.alias.as_deref())
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    filename: record.filename.as_str(),
                }
            })
            .collect();
        Ok(match resolution::resolve(question, &named) {
            Some(resolved) => (
                Some(
                    resolved
                        .documents
                        .iter()
                        .map(|&i| records[i].document_id.clone())
                        .collect(),
                ),
                resolved.query,
            ),
            None => (None, question.to_owned()),
        })
    }
}
