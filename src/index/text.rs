//! Full-text search (BM25) over a tenant's chunks with tantivy, held in RAM.
//!
//! The index lives in a `RamDirectory`; [`TextIndex::snapshot`] and
//! [`TextIndex::restore`] turn it into one byte string and back, which the caller seals
//! with the tenant's key before it touches disk. Chunk text is indexed, not stored: the
//! text itself stays in the encrypted store. Deleted chunks are removed by term.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use tantivy::collector::TopDocs;
use tantivy::directory::{Directory, RamDirectory};
use tantivy::indexer::IndexWriterOptions;
use tantivy::query::QueryParser;
use tantivy::schema::{
    Field, INDEXED, IndexRecordOption, STORED, Schema, TextFieldIndexing, TextOptions, Value,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{
    DocSet, Index, IndexReader, IndexWriter, ReloadPolicy, TERMINATED, TantivyDocument, Term,
};

const ANALYZER: &str = "bulkhead_en";
const WRITER_MEMORY_BYTES: usize = 32_000_000;

#[derive(Debug, thiserror::Error)]
pub enum TextIndexError {
    #[error("text index error: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("text index snapshot is malformed")]
    MalformedSnapshot,
}

pub struct TextIndex {
    index: Index,
    /// The index's files (shared with `index`), for their size.
    directory: RamDirectory,
    reader: IndexReader,
    row_id: Field,
    text: Field,
}

fn schema() -> (Schema, Field, Field) {
    let mut builder = Schema::builder();
    let row_id = builder.add_u64_field("row_id", INDEXED | STORED);
    let indexing = TextFieldIndexing::default()
        .set_tokenizer(ANALYZER)
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    let text = builder.add_text_field(
        "text",
        TextOptions::default().set_indexing_options(indexing),
    );
    (builder.build(), row_id, text)
}

fn analyzer() -> TextAnalyzer {
    let builder = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser);
    match StopWordFilter::new(Language::English) {
        Some(stop_words) => builder
            .filter(stop_words)
            .filter(Stemmer::new(Language::English))
            .build(),
        None => builder.filter(Stemmer::new(Language::English)).build(),
    }
}

impl TextIndex {
    pub fn new() -> Result<TextIndex, TextIndexError> {
        let (schema, _, _) = schema();
        let directory = RamDirectory::create();
        let index = Index::create(directory.clone(), schema, Default::default())?;
        Self::from_index(index, directory)
    }

    fn from_index(index: Index, directory: RamDirectory) -> Result<TextIndex, TextIndexError> {
        index.tokenizers().register(ANALYZER, analyzer());
        let (_, row_id, text) = schema();
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(TextIndex {
            index,
            directory,
            reader,
            row_id,
            text,
        })
    }

    /// Adds chunks and deletes row ids, then commits and makes them searchable.
    ///
    /// The writer lives for this call only (issue 12): an open tenant holds no writer, so
    /// none of its threads (an indexing worker, a segment updater, merge threads) nor its
    /// arena, and thousands of open tenants cost their indexes' bytes, not thousands of
    /// idle threads. The merges the commit starts finish before it returns.
    pub fn apply(&mut self, add: &[(u64, &str)], remove: &[u64]) -> Result<(), TextIndexError> {
        let options = IndexWriterOptions::builder()
            .num_worker_threads(1)
            .num_merge_threads(1)
            .memory_budget_per_thread(WRITER_MEMORY_BYTES)
            .build();
        let mut writer: IndexWriter = self.index.writer_with_options(options)?;
        for row_id in remove {
            writer.delete_term(Term::from_field_u64(self.row_id, *row_id));
        }
        for (row_id, text) in add {
            // Delete first, so that adding a chunk twice (a retried job, a reconcile racing
            // an add) never duplicates it.
            writer.delete_term(Term::from_field_u64(self.row_id, *row_id));
            let mut document = TantivyDocument::default();
            document.add_u64(self.row_id, *row_id);
            document.add_text(self.text, text);
            writer.add_document(document)?;
        }
        writer.commit()?;
        writer.wait_merging_threads()?;
        self.reader.reload()?;
        Ok(())
    }

    /// Approximate resident bytes: the index's files in memory.
    pub fn approximate_bytes(&self) -> u64 {
        self.directory.total_mem_usage() as u64
    }

    /// Every row id in the index.
    pub fn row_ids(&self) -> Result<HashSet<u64>, TextIndexError> {
        // Read from the row id's term dictionary (one 8-byte big-endian term per chunk)
        // and its postings, not from the document store: a cold open of a 10k-chunk
        // tenant decompressed every stored document for this (issue 12).
        let searcher = self.reader.searcher();
        let mut ids = HashSet::new();
        for segment in searcher.segment_readers() {
            let alive = segment.alive_bitset();
            let inverted = segment.inverted_index(self.row_id)?;
            let io = |error: std::io::Error| TextIndexError::Tantivy(error.into());
            let mut terms = inverted.terms().stream().map_err(io)?;
            while terms.advance() {
                let Ok(key) = <[u8; 8]>::try_from(terms.key()) else {
                    return Err(TextIndexError::MalformedSnapshot);
                };
                let mut postings = inverted
                    .read_postings_from_terminfo(terms.value(), IndexRecordOption::Basic)
                    .map_err(io)?;
                let mut doc = postings.doc();
                while doc != TERMINATED {
                    if alive.is_none_or(|alive| alive.is_alive(doc)) {
                        ids.insert(u64::from_be_bytes(key));
                        break;
                    }
                    doc = postings.advance();
                }
            }
        }
        Ok(ids)
    }

    /// BM25 search: (row id, score), best first. Query syntax is not interpreted: the
    /// question is plain words.
    pub fn search(&self, query: &str, k: usize) -> Result<Vec<(u64, f32)>, TextIndexError> {
        let terms = self.analyse(query);
        if terms.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let parser = QueryParser::for_index(&self.index, vec![self.text]);
        // Analysed terms are lowercase alphanumerics, so joining them is a safe query.
        let (parsed, _) = parser.parse_query_lenient(&terms.join(" "));
        let searcher = self.reader.searcher();
        let top = searcher.search(&parsed, &TopDocs::with_limit(k).order_by_score())?;
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let document: TantivyDocument = searcher.doc(address)?;
            if let Some(id) = document.get_first(self.row_id).and_then(|v| v.as_u64()) {
                hits.push((id, score));
            }
        }
        Ok(hits)
    }

    /// The words of `words` (as written) whose analysed form occurs in no chunk.
    pub fn absent_words(&self, words: &[&str]) -> Vec<String> {
        let searcher = self.reader.searcher();
        words
            .iter()
            .filter(|word| {
                let terms = self.analyse(word);
                !terms.is_empty()
                    && terms.iter().any(|term| {
                        searcher
                            .doc_freq(&Term::from_field_text(self.text, term))
                            .map_or(true, |count| count == 0)
                    })
            })
            .map(|word| (*word).to_owned())
            .collect()
    }

    fn analyse(&self, text: &str) -> Vec<String> {
        let mut analyzer = analyzer();
        let mut stream = analyzer.token_stream(text);
        let mut terms = Vec::new();
        while stream.advance() {
            terms.push(stream.token().text.clone());
        }
        terms
    }

    /// The whole index as one byte string: `[name_len u32][name][data_len u64][data]...`.
    pub fn snapshot(&self) -> Result<Vec<u8>, TextIndexError> {
        let directory = self.index.directory();
        let mut names: Vec<PathBuf> = directory.list_managed_files().into_iter().collect();
        names.push(PathBuf::from("meta.json"));
        names.push(PathBuf::from(".managed.json"));
        names.sort();
        names.dedup();
        let mut out = Vec::new();
        for name in names {
            let Ok(data) = directory.atomic_read(&name) else {
                continue;
            };
            let name = name.to_string_lossy();
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&(data.len() as u64).to_le_bytes());
            out.extend_from_slice(&data);
        }
        Ok(out)
    }

    pub fn restore(snapshot: &[u8]) -> Result<TextIndex, TextIndexError> {
        fn take<'a>(rest: &mut &'a [u8], count: usize) -> Result<&'a [u8], TextIndexError> {
            if rest.len() < count {
                return Err(TextIndexError::MalformedSnapshot);
            }
            let (head, tail) = rest.split_at(count);
            *rest = tail;
            Ok(head)
        }
        fn take_array<const N: usize>(rest: &mut &[u8]) -> Result<[u8; N], TextIndexError> {
            take(rest, N)?
                .try_into()
                .map_err(|_| TextIndexError::MalformedSnapshot)
        }
        let directory = RamDirectory::create();
        let mut rest = snapshot;
        while !rest.is_empty() {
            let name_len = u32::from_le_bytes(take_array(&mut rest)?) as usize;
            let name = std::str::from_utf8(take(&mut rest, name_len)?)
                .map_err(|_| TextIndexError::MalformedSnapshot)?
                .to_owned();
            let data_len = u64::from_le_bytes(take_array(&mut rest)?) as usize;
            let data = take(&mut rest, data_len)?;
            directory
                .atomic_write(Path::new(&name), data)
                .map_err(|_| TextIndexError::MalformedSnapshot)?;
        }
        let index = Index::open(directory.clone())?;
        Self::from_index(index, directory)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_deletes_and_survives_a_snapshot() {
        let mut index = TextIndex::new().unwrap();
        index
            .apply(
                &[
                    (
                        1,
                        "The Supplier shall indemnify the Purchaser against all claims.",
                    ),
                    (2, "This Agreement terminates on December 31, 2027."),
                    (3, "Governing law: the laws of the State of Delaware."),
                ],
                &[],
            )
            .unwrap();
        assert_eq!(index.search("when does it terminate?", 3).unwrap()[0].0, 2);
        assert_eq!(
            index.absent_words(&["Delaware", "Pepsi"]),
            vec!["Pepsi".to_owned()]
        );
        let restored = TextIndex::restore(&index.snapshot().unwrap()).unwrap();
        assert_eq!(
            restored.search("indemnification claims", 3).unwrap()[0].0,
            1
        );
        let mut restored = restored;
        restored.apply(&[], &[2]).unwrap();
        assert!(restored.search("terminate", 3).unwrap().is_empty());
        assert_eq!(restored.row_ids().unwrap(), HashSet::from([1, 3]));
        // Row ids come from the term dictionary: large ones decode whole.
        restored
            .apply(&[((1 << 40) + 7, "Notice period.")], &[3])
            .unwrap();
        assert_eq!(
            restored.row_ids().unwrap(),
            HashSet::from([1, (1 << 40) + 7])
        );
    }
}
