//! Token-aware chunking with overlap.
//!
//! Chunks are sized in tokens of the embedding model's own tokenizer, so no chunk is
//! truncated when embedded, and each keeps its character span in the extracted text so
//! that citations can point at the exact passage. Knows nothing about storage or tenants.

use text_splitter::{ChunkConfig, TextSplitter};
use tokenizers::Tokenizer;

/// Target chunk size in embedding-model tokens: a range lets the splitter prefer clause
/// and paragraph boundaries. The upper bound stays under the model's 256-token window.
pub const CHUNK_TOKENS_MIN: usize = 96;
pub const CHUNK_TOKENS_MAX: usize = 160;
/// Overlap between consecutive chunks, so a sentence cut at a boundary is whole in one.
pub const CHUNK_OVERLAP_TOKENS: usize = 24;

/// One chunk: `start..end` are character (not byte) offsets into the extracted text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextChunk {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

pub struct Chunker {
    splitter: TextSplitter<Tokenizer>,
}

impl Chunker {
    /// `tokenizer` is the embedding model's; its truncation and padding are switched off
    /// here so that sizes are true lengths.
    pub fn new(mut tokenizer: Tokenizer) -> Chunker {
        tokenizer.with_padding(None);
        // Disabling truncation cannot fail; the Result only reports invalid parameters.
        let _ = tokenizer.with_truncation(None);
        let config = ChunkConfig::new(CHUNK_TOKENS_MIN..CHUNK_TOKENS_MAX)
            .with_overlap(CHUNK_OVERLAP_TOKENS)
            .expect("overlap is smaller than the chunk size")
            .with_sizer(tokenizer);
        Chunker {
            splitter: TextSplitter::new(config),
        }
    }

    pub fn chunk(&self, text: &str) -> Vec<TextChunk> {
        self.splitter
            .chunk_char_indices(text)
            .map(|piece| TextChunk {
                start: piece.char_offset,
                end: piece.char_offset + piece.chunk.chars().count(),
                text: piece.chunk.to_owned(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunker() -> Chunker {
        let path = crate::config::default_models_dir().join("minilm/tokenizer.json");
        Chunker::new(Tokenizer::from_file(path).expect("run models/fetch.sh"))
    }

    #[test]
    fn chunks_cover_the_text_with_exact_character_spans() {
        let text = std::fs::read_to_string(
            crate::config::sample_data_dir()
                .join("contracts/ADUROBIOTECH,INC_06_02_2020-EX-10.7-CONSULTING AGREEMENT(1).txt"),
        )
        .unwrap();
        let text = format!("Prélude — “quoted” ünïcode. {text}");
        let chunks = chunker().chunk(&text);
        assert!(chunks.len() > 5);
        let chars: Vec<char> = text.chars().collect();
        for chunk in &chunks {
            let span: String = chars[chunk.start..chunk.end].iter().collect();
            assert_eq!(span, chunk.text);
        }
        // Consecutive chunks overlap or are separated by whitespace only: no text is lost.
        for pair in chunks.windows(2) {
            if pair[1].start > pair[0].end {
                let gap: String = chars[pair[0].end..pair[1].start].iter().collect();
                assert!(gap.trim().is_empty(), "text lost between chunks: {gap:?}");
            }
        }
    }
}
