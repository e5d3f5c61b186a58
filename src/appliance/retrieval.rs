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
    /// Time spent embedding the query.
    pub embed: std::time::Duration,
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
        let embed_started = Instant::now();
        let vector = match mode {
            SearchMode::Keyword => None,
            SearchMode::Hybrid | SearchMode::Vector => Some(self.embedder()?.embed_one(&query)?),
        };
        let embed = embed_started.elapsed();
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
        if let (Some([document]), Some(clause)) = (documents.as_deref(), clause) {
            self.lead_with_catalogue_field(
                scope, document, clause, question, &mut hits, &mut read,
            )?;
        }
        hits.truncate(k);
        Ok(ClauseHits {
            hits,
            documents,
            clause,
            embed,
            read,
        })
    }

    /// A question about a contract's title, parties or dates is about the passage its
    /// catalogue took the field from: that chunk leads the hits.
    fn lead_with_catalogue_field(
        &self,
        scope: &TenantScope,
        document: &DocumentId,
        clause: &ClauseType,
        question: &str,
        hits: &mut Vec<Hit>,
        read: &mut HashMap<u64, ChunkRecord>,
    ) -> Result<(), ApplianceError> {
        let Some(span) = self
            .stored_catalogue(scope, document)?
            .and_then(|catalogue| catalogue_span(&catalogue, clause.answer, question))
        else {
            return Ok(());
        };
        let holds = |chunk: &ChunkRecord| {
            chunk.chunk_id.document_id() == document
                && chunk.start <= span.start
                && span.start < chunk.end
        };
        let row_id = match read.values().find(|chunk| holds(chunk)) {
            Some(chunk) => chunk.row_id,
            None => {
                let rows = self.store.document_row_ids(scope, document)?;
                let Some(chunk) = self
                    .store
                    .chunks(scope, &rows)?
                    .into_iter()
                    .find(|chunk| holds(chunk))
                else {
                    return Ok(());
                };
                let row_id = chunk.row_id;
                if !read.is_empty() {
                    read.insert(row_id, chunk);
                }
                row_id
            }
        };
        let top = hits.first().map_or(1.0, |hit| hit.score);
        let lead = match hits.iter().position(|hit| hit.row_id == row_id) {
            Some(at) => hits.remove(at),
            None => Hit {
                row_id,
                score: top,
                similarity: None,
                keyword_score: None,
            },
        };
        hits.insert(
            0,
            Hit {
                score: top.max(lead.score) + f32::EPSILON,
                ..lead
            },
        );
        Ok(())
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

    /// The titles (else file names) of the tenant's contracts most like the one
    /// `question` names, best first, at most `n`.
    pub(super) fn closest_titles(
        &self,
        scope: &TenantScope,
        question: &str,
        n: usize,
    ) -> Result<Vec<String>, ApplianceError> {
        let records = self.store.list_documents(scope)?;
        let catalogues = self.catalogue_map(scope)?;
        let named = named_documents(&records, &catalogues);
        Ok(resolution::closest(question, &named, n)
            .into_iter()
            .map(|index| {
                named[index]
                    .title
                    .unwrap_or(named[index].filename)
                    .to_owned()
            })
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
        let catalogues = self.catalogue_map(scope)?;
        let named = named_documents(&records, &catalogues);
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

/// The tenant's documents as the naming rules see them: catalogue title, party names and
/// defined terms, file name.
pub(super) fn named_documents<'a>(
    records: &'a [crate::store::DocumentRecord],
    catalogues: &'a HashMap<DocumentId, Catalogue>,
) -> Vec<NamedDocument<'a>> {
    records
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
                                std::iter::once(party.name.as_str()).chain(party.alias.as_deref())
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                filename: record.filename.as_str(),
            }
        })
        .collect()
}

/// Where in the contract its catalogue found what a question of shape `shape` asks for:
/// the title, the parties (from the first named to the last), or the date the question
/// means (effective, expiration, else the agreement date).
pub(super) fn catalogue_span(
    catalogue: &Catalogue,
    shape: clauses::AnswerShape,
    question: &str,
) -> Option<std::ops::Range<usize>> {
    match shape {
        clauses::AnswerShape::Name => catalogue.title.as_ref().map(|title| title.span.clone()),
        clauses::AnswerShape::Parties => Some(
            catalogue.parties.iter().map(|p| p.span.start).min()?
                ..catalogue.parties.iter().map(|p| p.span.end).max()?,
        ),
        clauses::AnswerShape::Date => catalogue_date(catalogue, question).map(|d| d.span.clone()),
        _ => None,
    }
}

/// The catalogue date a question means.
pub(super) fn catalogue_date<'c>(
    catalogue: &'c Catalogue,
    question: &str,
) -> Option<&'c crate::catalogue::Field<crate::values::DateValue>> {
    let lower = question.to_lowercase();
    if lower.contains("effective") {
        catalogue.effective_date.as_ref()
    } else if lower.contains("expir") || lower.contains("end date") {
        catalogue.expiration_date.as_ref()
    } else {
        catalogue
            .agreement_date
            .as_ref()
            .or(catalogue.effective_date.as_ref())
    }
}
