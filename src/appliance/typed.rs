//! Typed answers (issue 9): a question asking for a value (governing law, a date, the
//! parties, a period, an amount) is answered with one sentence built around the value
//! the rules extract — from the named contract's catalogue (parties, dates) or from the
//! best retrieved clause — citing the retrieved chunk it came from. The sentence must
//! pass the checker (every value and name in the cited passage) and the same support
//! check as a model's answer; else the answer is the passage's sentence, quoted.

use super::ask::AnswerContext;
use super::*;
use crate::answer_facts::{self, FactKind};
use crate::clauses::evidence;
use crate::values::{DateValue, MONTHS};

/// How many of the best retrieved chunks a value is looked for in.
const TYPED_CANDIDATES: usize = 3;

impl Appliance {
    /// The typed answer and the retrieved chunk it cites, or `None` (then the model
    /// answers as before).
    pub(super) fn typed_answer(
        &self,
        scope: &TenantScope,
        question: &str,
        context: &AnswerContext,
    ) -> Result<Option<(String, usize)>, ApplianceError> {
        // "Can a party terminate … (by giving notice and letting a period expire)?" asks
        // whether the contract has a clause; the presence answer says so, with the clause.
        let yes_no_clause = context
            .clause
            .is_some_and(|clause| clause.answer == crate::clauses::AnswerShape::YesNo);
        if yes_no_clause && answer_facts::asks_yes_or_no(question) {
            return Ok(None);
        }
        let asks_name = context
            .clause
            .is_some_and(|clause| clause.answer == crate::clauses::AnswerShape::Name);
        let found = if asks_name {
            self.title_from_catalogue(scope, context)?
        } else {
            let Some(kind) = answer_facts::kind_for_question(question) else {
                return Ok(None);
            };
            if matches!(kind, FactKind::YesNo) {
                return Ok(None);
            }
            match self.value_from_catalogue(scope, question, kind, context)? {
                Some(found) => Some(found),
                None => value_from_clauses(kind, context),
            }
        };
        let Some((sentence, chunk, span)) = found else {
            return Ok(None);
        };
        let passage = &context.retrieved[chunk];
        let checked = answer_facts::check_answer(&sentence, &[passage.text.as_str()]).is_empty()
            && answer::cite_support(
                &sentence,
                std::slice::from_ref(passage),
                &[context.owned[chunk]],
                vec![0],
            )
            .is_some();
        if checked {
            return Ok(Some((sentence, chunk)));
        }
        // Not every word of the sentence is in the passage: the passage speaks for itself.
        Ok(sentence_around(&passage.text, span)
            .map(|quote| (answer::quoted_answer(&passage.filename, &quote), chunk)))
    }

    /// The named contract's title from its catalogue, when the chunk holding it was
    /// retrieved for this request and may be shown.
    fn title_from_catalogue(
        &self,
        scope: &TenantScope,
        context: &AnswerContext,
    ) -> Result<Option<(String, usize, std::ops::Range<usize>)>, ApplianceError> {
        let Some(document) = context.documents.as_ref().and_then(|d| d.first()) else {
            return Ok(None);
        };
        let Some(title) = self
            .stored_catalogue(scope, document)?
            .and_then(|catalogue| catalogue.title)
        else {
            return Ok(None);
        };
        let sentence = format!("The contract is titled “{}”.", title.value);
        Ok(holding_chunk(context, document, &title.span)
            .map(|(chunk, span)| (sentence, chunk, span)))
    }

    /// Parties and dates from the named contract's catalogue, when the chunk holding the
    /// field was retrieved for this request and may be shown.
    fn value_from_catalogue(
        &self,
        scope: &TenantScope,
        question: &str,
        kind: FactKind,
        context: &AnswerContext,
    ) -> Result<Option<(String, usize, std::ops::Range<usize>)>, ApplianceError> {
        let Some(document) = context.documents.as_ref().and_then(|d| d.first()) else {
            return Ok(None);
        };
        if !matches!(kind, FactKind::Parties | FactKind::Date) {
            return Ok(None);
        }
        let Some(catalogue) = self.stored_catalogue(scope, document)? else {
            return Ok(None);
        };
        let (sentence, span) = if matches!(kind, FactKind::Parties) {
            let names: Vec<&str> = catalogue.parties.iter().map(|p| p.name.as_str()).collect();
            let Some(span) = super::retrieval::catalogue_span(
                &catalogue,
                crate::clauses::AnswerShape::Parties,
                question,
            ) else {
                return Ok(None);
            };
            (format!("The parties are {}.", join_names(&names)), span)
        } else {
            let Some(field) = super::retrieval::catalogue_date(&catalogue, question) else {
                return Ok(None);
            };
            (
                format!("The date is {}.", spoken_date(field.value)),
                field.span.clone(),
            )
        };
        Ok(holding_chunk(context, document, &span).map(|(chunk, span)| (sentence, chunk, span)))
    }
}

/// The retrieved chunk of `document` the tenant may be shown that holds `span`, and the
/// span relative to it.
fn holding_chunk(
    context: &AnswerContext,
    document: &DocumentId,
    span: &std::ops::Range<usize>,
) -> Option<(usize, std::ops::Range<usize>)> {
    let chunk = context
        .retrieved
        .iter()
        .enumerate()
        .position(|(i, chunk)| {
            context.owned[i]
                && chunk.chunk_id.document_id() == document
                && chunk.start <= span.start
                && span.end <= chunk.end
        })?;
    let offset = context.retrieved[chunk].start;
    Some((chunk, span.start - offset..span.end - offset))
}

/// A value extracted from the best retrieved chunks the tenant may be shown.
fn value_from_clauses(
    kind: FactKind,
    context: &AnswerContext,
) -> Option<(String, usize, std::ops::Range<usize>)> {
    let candidates = (0..context.retrieved.len())
        .filter(|&i| context.owned[i])
        .take(TYPED_CANDIDATES);
    for chunk in candidates {
        let Some(fact) = clause_fact(kind, context.clause, &context.retrieved[chunk].text) else {
            continue;
        };
        let sentence = match kind {
            FactKind::Jurisdiction => format!("It is governed by the laws of {}.", fact.value),
            FactKind::Duration => format!("The period is {}.", fact.value),
            FactKind::NoticePeriod => format!("The notice period is {}.", fact.value),
            FactKind::Amount => format!("The amount is {}.", fact.value),
            // Dates without a catalogue say which date they are only in their clause.
            FactKind::Date | FactKind::Parties | FactKind::YesNo => return None,
        };
        return Some((sentence, chunk, fact.span));
    }
    None
}

/// The first value of `kind` in `text`; for a clause type the evidence rules know, the
/// first in a sentence about that clause (the warranty's "6 months", not the payment
/// terms' "30 days" beside it), its span still in characters of `text`.
fn clause_fact(
    kind: FactKind,
    clause: Option<&crate::clauses::ClauseType>,
    text: &str,
) -> Option<answer_facts::Fact> {
    let Some(clause) = clause.filter(|clause| evidence::knows(clause)) else {
        return answer_facts::extract(kind, text);
    };
    answer::sentences_at(text)
        .filter(|(_, sentence)| evidence::about(clause, sentence))
        .find_map(|(at, sentence)| {
            let mut fact = answer_facts::extract(kind, sentence)?;
            let before = text[..at].chars().count();
            fact.span = fact.span.start + before..fact.span.end + before;
            Some(fact)
        })
}

/// "A", "A and B", "A, B and C".
fn join_names(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
    }
}

/// "March 14, 2018", "June 2020", "2019".
fn spoken_date(date: DateValue) -> String {
    let month = date
        .month
        .and_then(|m| MONTHS.get(usize::from(m).wrapping_sub(1)))
        .map(|name| {
            let mut chars = name.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        });
    match (month, date.day) {
        (Some(month), Some(day)) => format!("{month} {day}, {}", date.year),
        (Some(month), None) => format!("{month} {}", date.year),
        _ => date.year.to_string(),
    }
}

/// The sentence of `text` around the character span `span`.
fn sentence_around(text: &str, span: std::ops::Range<usize>) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    if span.start >= chars.len() {
        return None;
    }
    let is_end = |c: char| matches!(c, '.' | ';' | '\n');
    let mut start = span.start;
    while start > 0 && !is_end(chars[start - 1]) {
        start -= 1;
    }
    let mut end = span.end.min(chars.len());
    while end < chars.len() && !is_end(chars[end]) {
        end += 1;
    }
    let end = (end + 1).min(chars.len());
    let sentence: String = chars[start..end].iter().collect();
    let sentence = sentence.split_whitespace().collect::<Vec<_>>().join(" ");
    (!sentence.is_empty()).then_some(sentence)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clause_s_value_comes_from_a_sentence_about_the_clause() {
        let warranty = crate::clauses::CLAUSE_TYPES
            .iter()
            .find(|clause| clause.name == "Warranty Duration")
            .unwrap();
        let text = "Payments will be due within 30 days after delivery. Should the Services \
                    become defective within 6 months from their delivery, the Supplier shall \
                    re-perform them.";
        let fact = clause_fact(FactKind::Duration, Some(warranty), text).unwrap();
        assert_eq!(fact.value, "6 months");
        let chars: Vec<char> = text.chars().collect();
        let found: String = chars[fact.span.clone()].iter().collect();
        assert!(found.contains('6'), "{found}");
        // Without a clause type, the first value in the passage.
        let any = clause_fact(FactKind::Duration, None, text).unwrap();
        assert_eq!(any.value, "30 days");
    }

    #[test]
    fn values_are_spoken_plainly() {
        assert_eq!(join_names(&["A", "B", "C"]), "A, B and C");
        let date = DateValue {
            year: 2018,
            month: Some(3),
            day: Some(14),
        };
        assert_eq!(spoken_date(date), "March 14, 2018");
        assert_eq!(
            sentence_around("First one. The laws of Japan apply. Last.", 23..28).as_deref(),
            Some("The laws of Japan apply.")
        );
    }
}
