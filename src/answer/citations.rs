//! Citations: which excerpts an answer cites, and whether they support every sentence.

use super::grounding::supported_sentences;
use super::text::{content_words, split_sentences};
use crate::store::ChunkRecord;

/// Which excerpts (0-based) the answer cites: the `[n]` markers it wrote, else the
/// excerpts sharing the most words with it, else the top-ranked one.
pub fn choose_citations(answer: &str, excerpts: &[ChunkRecord]) -> Vec<usize> {
    let mut cited: Vec<usize> = Vec::new();
    for (_, number) in markers(answer) {
        if (1..=excerpts.len()).contains(&number) && !cited.contains(&(number - 1)) {
            cited.push(number - 1);
        }
    }
    if !cited.is_empty() {
        return cited;
    }
    let answer_words = content_words(answer);
    let mut best: Option<(usize, usize)> = None;
    for (index, excerpt) in excerpts.iter().enumerate() {
        let excerpt_words = content_words(&excerpt.text);
        let shared = answer_words
            .iter()
            .filter(|word| excerpt_words.contains(*word))
            .count();
        if shared > best.map_or(0, |(_, count)| count) {
            best = Some((index, shared));
        }
    }
    match best {
        Some((index, _)) => vec![index],
        None if !excerpts.is_empty() => vec![0],
        None => Vec::new(),
    }
}

/// The answer with each `[n]` marker (the number of an excerpt in the prompt) made the
/// number its excerpt has in the answer's list of citations, `position(n - 1)` (1-based),
/// or removed when that is `None`: a reader's "[1]" is the first citation shown.
pub fn renumber_markers(answer: &str, position: impl Fn(usize) -> Option<usize>) -> String {
    let mut out = String::with_capacity(answer.len());
    let mut copied = 0;
    for (at, number) in markers(answer) {
        if number == 0 {
            // Not an excerpt's number: left as written.
            continue;
        }
        let before = &answer[copied..at.start];
        match position(number - 1) {
            Some(shown) => {
                out.push_str(before);
                out.push_str(&format!("[{shown}]"));
            }
            None => out.push_str(before.trim_end_matches(' ')),
        }
        copied = at.end;
    }
    out.push_str(&answer[copied..]);
    out
}

/// The `[n]` markers of a text, each with its byte range and number.
fn markers(text: &str) -> impl Iterator<Item = (std::ops::Range<usize>, usize)> + '_ {
    let mut from = 0;
    std::iter::from_fn(move || {
        while let Some(open) = text[from..].find('[') {
            let start = from + open;
            from = start + 1;
            if let Some(close) = text[from..].find(']')
                && let Ok(number) = text[from..from + close].trim().parse::<usize>()
            {
                from += close + 1;
                return Some((start..from, number));
            }
        }
        None
    })
}

/// The citations of an answer all of whose sentences are supported: `chosen` (kept when
/// `citable`), plus, for a sentence they do not support, the first citable excerpt that
/// supports it alone. `None` when some sentence has no citable support: the answer must
/// be withheld.
pub fn cite_support(
    answer: &str,
    excerpts: &[ChunkRecord],
    citable: &[bool],
    chosen: Vec<usize>,
) -> Option<Vec<usize>> {
    let mut cited: Vec<usize> = chosen
        .into_iter()
        .filter(|&index| citable.get(index) == Some(&true))
        .collect();
    for sentence in split_sentences(answer) {
        if supported_sentences(sentence, &excerpts_at(excerpts, &cited)).1 == 0 {
            continue;
        }
        let alone = (0..excerpts.len()).find(|&index| {
            citable[index] && supported_sentences(sentence, &excerpts[index..=index]).1 == 0
        });
        match alone {
            Some(index) => cited.push(index),
            None => {
                // Supported only by several excerpts together: cite every citable one.
                let all: Vec<usize> = (0..excerpts.len()).filter(|&i| citable[i]).collect();
                if supported_sentences(sentence, &excerpts_at(excerpts, &all)).1 != 0 {
                    return None;
                }
                for index in all {
                    if !cited.contains(&index) {
                        cited.push(index);
                    }
                }
            }
        }
    }
    (!cited.is_empty()).then_some(cited)
}

/// Copies of the excerpts at `indices`, in that order.
fn excerpts_at(excerpts: &[ChunkRecord], indices: &[usize]) -> Vec<ChunkRecord> {
    indices
        .iter()
        .map(|&index| excerpts[index].clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::model_declined;
    use crate::answer::tests::excerpt;

    #[test]
    fn an_answer_supported_only_by_an_excerpt_it_may_not_cite_is_withheld() {
        let ours = excerpt("Either party may terminate this agreement with 60 days notice.");
        let theirs = excerpt("The settlement amount payable is 4,402,000 dollars in cash.");
        let answer = "The settlement amount payable is 4,402,000 dollars.";
        let excerpts = [ours.clone(), theirs.clone()];
        assert_eq!(
            cite_support(answer, &excerpts, &[true, true], vec![]),
            Some(vec![1])
        );
        assert_eq!(
            cite_support(answer, &excerpts, &[true, false], vec![1]),
            None
        );
        let ours_answer = "Either party may terminate this agreement with 60 days notice.";
        assert_eq!(
            cite_support(ours_answer, &excerpts, &[true, false], vec![1]),
            Some(vec![0]),
            "a citation of the other excerpt is dropped, the supporting one added"
        );
    }

    #[test]
    fn citations_follow_markers_then_word_overlap() {
        let excerpts = [
            excerpt("Governing law is the State of Illinois."),
            excerpt("The term ends on December 31, 2020."),
        ];
        assert_eq!(choose_citations("It ends in 2020 [2].", &excerpts), vec![1]);
        assert_eq!(
            choose_citations("The laws of Illinois govern.", &excerpts),
            vec![0]
        );
        assert_eq!(choose_citations("[7] nothing", &excerpts), vec![0]);
        assert!(model_declined("The documents do not say."));
    }

    #[test]
    fn markers_take_the_numbers_their_citations_are_shown_with() {
        // Excerpt 2 of the prompt is the answer's second citation; excerpt 3 is not cited.
        let shown = |excerpt: usize| match excerpt {
            1 => Some(2),
            0 => Some(1),
            _ => None,
        };
        assert_eq!(
            renumber_markers("It ends in 2020 [2], on notice [3]. See [a] and [1]", shown),
            "It ends in 2020 [2], on notice. See [a] and [1]"
        );
        assert_eq!(renumber_markers("[2][1] [", |e| Some(e + 5)), "[6][5] [");
    }
}
