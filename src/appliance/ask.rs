//! Retrieval and grounded answers.

use super::presence::Presence;
use super::*;

impl Appliance {
    pub fn search(
        &self,
        scope: &TenantScope,
        query: &str,
        top_k: usize,
        mode: SearchMode,
    ) -> Result<Vec<SearchResult>, ApplianceError> {
        let query = validate_query(query)?;
        let top_k = top_k.clamp(1, 50);
        // Hybrid is the product's search: clause-aware. Keyword and vector stay the plain
        // methods (the eval's baselines).
        let (hits, chunks) = if matches!(mode, SearchMode::Hybrid) {
            let mut searched = self.clause_search(scope, query, top_k, mode)?;
            let chunks = self.hit_chunks(scope, &mut searched)?;
            (searched.hits, chunks)
        } else {
            let vector = match mode {
                SearchMode::Keyword => None,
                SearchMode::Hybrid | SearchMode::Vector => Some(self.embedder()?.embed_one(query)?),
            };
            let index = self.tenant_index(scope)?;
            let hits = read(&index).search(vector.as_deref(), query, top_k, mode)?;
            let row_ids: Vec<u64> = hits.iter().map(|hit| hit.row_id).collect();
            let chunks = self.store.chunks(scope, &row_ids)?;
            (hits, chunks)
        };
        let scores: HashMap<u64, f32> = hits.iter().map(|hit| (hit.row_id, hit.score)).collect();
        let results = chunks
            .into_iter()
            .map(|chunk| SearchResult {
                score: scores.get(&chunk.row_id).copied().unwrap_or(0.0),
                chunk,
            })
            .collect();
        Ok(output::retain_owned(&self.store, scope, results, |r| {
            r.chunk.chunk_id.document_id()
        })?)
    }

    /// Answers from this tenant's documents only. `on_token` receives the answer as it is
    /// generated (return false to stop).
    pub fn ask(
        &self,
        scope: &TenantScope,
        question: &str,
        top_k: Option<usize>,
        on_token: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Answer, ApplianceError> {
        let started = Instant::now();
        let question = validate_query(question)?;
        let top_k = top_k.unwrap_or(self.config.answer_top_k).clamp(1, 8);
        let tenant = self.store.find_tenant(scope.tenant_id())?;
        // The tenant's own model (issue 12) must be there before anything is answered.
        self.require_private_model(scope.tenant_id())?;
        let mut timings = Timings::default();
        let ungrounded = |reason: Ungrounded, mut timings: Timings| {
            timings.total_ms = started.elapsed().as_millis() as u64;
            Answer {
                text: reason.message(),
                grounded: false,
                citations: Vec::new(),
                timings,
            }
        };
        let mut context = match self.retrieve_context(scope, question, top_k, &mut timings)? {
            Ok(context) => context,
            Err(reason @ Ungrounded::AbsentNames(_)) if names_a_contract(question) => {
                // A contract the tenant does not have: say which ones it does have.
                let mut answer = ungrounded(reason, timings);
                answer.text = self.with_closest_titles(scope, question, answer.text)?;
                return Ok(answer);
            }
            Err(reason) => return Ok(ungrounded(reason, timings)),
        };
        timings.retrieved_ms = Some(started.elapsed().as_millis() as u64);
        if let Some((text, cited)) = self.answer_without_model(scope, question, &mut context)? {
            // Checked against its passage before it is streamed (output layer).
            on_token(&text);
            let (text, citations) = context.cite(&text, cited);
            timings.total_ms = started.elapsed().as_millis() as u64;
            let grounded = !citations.is_empty();
            return Ok(Answer {
                text,
                grounded,
                citations,
                timings,
            });
        }
        self.rank_all(&mut context)?;
        let (excerpts, excerpt_chunks) =
            answer::excerpts_from_sentences(&context.retrieved, context.ranked(), top_k);
        let citable: Vec<bool> = excerpt_chunks
            .iter()
            .map(|&chunk| context.owned[chunk])
            .collect();
        let messages = answer::build_prompt(&tenant.name, question, &excerpts);

        // The answer is the clause quoted and the answer stated in one line (DESIGN.md).
        // The quote is known before the model runs, so it streams first: the reader has
        // the passage while the model reads it. The model's line follows once it has
        // passed the output check whole.
        let quote = context.best_quote();
        let mut first_token_ms = None;
        let mut stream = |piece: &str| {
            first_token_ms.get_or_insert_with(|| started.elapsed().as_millis() as u64);
            on_token(piece)
        };
        let listening = quote.as_ref().is_none_or(|(quote, _)| stream(quote));
        let generate_started = Instant::now();
        let (line, generation) = if listening {
            let (checked, generation) =
                self.generate_checked(scope, &messages, &excerpts, &citable)?;
            let line = stated_line(&checked, &excerpts, &citable, &excerpt_chunks);
            (line, Some(generation))
        } else {
            // The client left after the quote: nobody reads the model's line.
            (None, None)
        };
        timings.generate_ms = generate_started.elapsed().as_millis() as u64;
        if let Some(generation) = &generation {
            timings.prompt_tokens = generation.prompt_tokens;
            timings.answer_tokens = generation.generated_tokens;
            timings.prefill_ms = generation.prefill.as_millis() as u64;
            timings.decode_ms = generation
                .total
                .saturating_sub(generation.prefill)
                .as_millis() as u64;
        }
        let Some((text, cited)) = composed(quote, line, &excerpt_chunks, &mut stream) else {
            return Ok(ungrounded(unanswered(generation.as_ref()), timings));
        };
        timings.first_token_ms = first_token_ms;
        let (text, citations) = context.cite(&text, cited);
        timings.total_ms = started.elapsed().as_millis() as u64;
        Ok(Answer {
            text,
            grounded: true,
            citations,
            timings,
        })
    }

    /// An answer the rules extract, with the retrieved chunks it cites (none when it says
    /// a clause is absent): a typed value, else a yes/no clause's presence, else (unless
    /// the model answers clause questions) the clause's best sentence.
    fn answer_without_model(
        &self,
        scope: &TenantScope,
        question: &str,
        context: &mut AnswerContext,
    ) -> Result<Option<(String, Vec<usize>)>, ApplianceError> {
        if let Some(text) = self.value_clause_absent(scope, context)? {
            return Ok(Some((text, Vec::new())));
        }
        if let Some((text, chunk)) = self.typed_answer(scope, question, context)? {
            return Ok(Some((text, vec![chunk])));
        }
        Ok(match self.clause_presence(scope, question, context)? {
            Some(Presence::Found(text, chunks)) => Some((text, chunks)),
            Some(Presence::Absent(text)) => Some((text, Vec::new())),
            // A clause question no rule answers: the clause's sentence, unless the model
            // is configured to answer those.
            None if !self.config.model_for_clauses => match context.clause {
                Some(clause) => self
                    .clause_quote(context, clause)?
                    .map(|(quote, chunk)| (quote, vec![chunk])),
                None => None,
            },
            None => None,
        })
    }

    /// `text`, then the titles of the tenant's contracts closest to the one `question`
    /// names.
    fn with_closest_titles(
        &self,
        scope: &TenantScope,
        question: &str,
        text: String,
    ) -> Result<String, ApplianceError> {
        let titles = self.closest_titles(scope, question, CLOSEST_TITLES)?;
        if titles.is_empty() {
            return Ok(text);
        }
        Ok(format!(
            "{text} No contract of yours goes by that name; the closest are: {}.",
            titles
                .iter()
                .map(|title| format!("“{title}”"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }

    /// Retrieval for an answer: the question embedded, the tenant's index searched, the
    /// relevance check, the chunks read (prompt layer: the tenant's only), which of them
    /// the output layer lets out, and their sentences ranked. `Err(reason)` inside: there
    /// is nothing to answer from, and no model call is made.
    fn retrieve_context(
        &self,
        scope: &TenantScope,
        question: &str,
        top_k: usize,
        timings: &mut Timings,
    ) -> Result<Result<AnswerContext, Ungrounded>, ApplianceError> {
        let retrieve_started = Instant::now();
        let mut searched = self.clause_search(
            scope,
            question,
            top_k.max(answer::QUOTE_CANDIDATE_CHUNKS),
            SearchMode::Hybrid,
        )?;
        tracing::debug!(
            named_documents = searched.documents.as_ref().map_or(0, Vec::len),
            clause = searched.clause.map(|clause| clause.name),
            "clause search"
        );
        timings.embed_ms = searched.embed.as_millis() as u64;
        let index = self.tenant_index(scope)?;
        let (absent, chunk_count) = {
            let index = read(&index);
            // The words of a clause type the question names ("What does it say about
            // Uncapped Liability?") are the vocabulary's, not names the documents must
            // hold: a contract rarely says "uncapped".
            let clause_words: std::collections::HashSet<String> = searched
                .clause
                .map(crate::clauses::naming_words)
                .unwrap_or_default();
            let specific: Vec<&str> = answer::specific_words(question)
                .into_iter()
                .filter(|word| !clause_words.contains(&word.to_lowercase()))
                .collect();
            (index.absent_words(&specific), index.chunk_count())
        };
        let best_similarity = searched
            .hits
            .iter()
            .filter_map(|hit| hit.similarity)
            .reduce(f32::max);
        // A question that names one of the tenant's contracts is about that contract: the
        // similarity floor (which turns away questions the corpus cannot answer) does not
        // apply to the search within it, whose query has lost the naming words. The
        // answer's own checks (support, quote similarity) still do.
        let best_similarity = match (&searched.documents, best_similarity) {
            (Some(_), Some(similarity)) => Some(similarity.max(answer::MIN_SIMILARITY)),
            (_, similarity) => similarity,
        };
        // Retrieval without the query's embedding (resolving the contract, both index
        // searches, the re-ranking).
        timings.retrieve_ms = retrieve_started
            .elapsed()
            .saturating_sub(searched.embed)
            .as_millis() as u64;
        if let Err(reason) = answer::check_retrieval(best_similarity, &absent, chunk_count > 0) {
            return Ok(Err(reason));
        }
        // The retrieved set. The model is shown the sentences of it that best match the
        // question (grouped by chunk), not whole chunks: a short prompt keeps a small
        // model focused and its prefill fast. A quoted answer is the best of them.
        // The layers are applied before generation so that the stream is checked too.
        let retrieved = self.hit_chunks(scope, &mut searched)?;
        let (retrieved, owned) = self.usable_chunks(scope, retrieved)?;
        if !owned.contains(&true) {
            // Nothing retrieved that this tenant may be shown: no model call.
            return Ok(Err(Ungrounded::NothingRelevant));
        }
        // Sentences are ranked (embedded) only when an answer needs them: most rule
        // answers need none, or only a few.
        Ok(Ok(AnswerContext {
            ranked_chunks: retrieved.len(),
            retrieved,
            owned,
            question: question.to_owned(),
            query_vector: None,
            ranked: None,
            documents: searched.documents,
            clause: searched.clause,
        }))
    }

    /// Generates one sentence from the prompt, with the output check running as it is
    /// written: generation stops once the first sentence is complete, or once it can no
    /// longer pass the check. Returns the checked sentences and the generation.
    fn generate_checked(
        &self,
        scope: &TenantScope,
        messages: &[crate::llm::ChatMessage],
        excerpts: &[ChunkRecord],
        citable: &[bool],
    ) -> Result<(answer::SentenceGate, crate::llm::Generation), ApplianceError> {
        let generator = self.generator_for(scope.tenant_id())?;
        let options = GenerateOptions {
            max_new_tokens: self.config.max_answer_tokens,
            stop_sequences: vec!["\n\n".into(), "Question:".into()],
            draft_tokens: self.config.draft_tokens,
        };
        let mut checked = answer::SentenceGate::new(excerpts, citable);
        // The prompt asks for one sentence; once the model has completed one, stop: what a
        // small model adds after its first sentence is mostly embroidery, and decoding it
        // is most of the answer's latency. Stop as soon as the first sentence cannot pass
        // the check either: the answer is the same, and it is complete sooner.
        let generation = generator.generate(messages, &options, &mut |piece| {
            checked.push(piece);
            checked.kept.is_empty() && checked.dropped == 0 && !checked.doomed()
        })?;
        checked.finish();
        if checked.dropped > 0 {
            tracing::debug!(tenant = %scope.tenant_id(), dropped = checked.dropped, "unsupported answer sentences withheld");
        }
        Ok((checked, generation))
    }
}

/// The answer from the quote and the model's checked line (each with the chunks it cites,
/// indices into the retrieved set): the quote, then the line when it adds to it; the line
/// alone when there is no quote. Streams the line (the quote is out already). `None` with
/// neither.
fn composed(
    quote: Option<(String, usize)>,
    line: Option<(String, Vec<usize>)>,
    excerpt_chunks: &[usize],
    stream: &mut dyn FnMut(&str) -> bool,
) -> Option<(String, Vec<usize>)> {
    // The line's markers number the prompt's excerpts: they become the numbers its
    // citations are shown with.
    let shown = |line: &str, cited: &[usize]| {
        answer::renumber_markers(line, |excerpt| {
            let chunk = excerpt_chunks.get(excerpt)?;
            Some(cited.iter().position(|c| c == chunk)? + 1)
        })
    };
    Some(match (quote, line) {
        (Some((quote, chunk)), Some((line, cited))) if answer::adds_to(&line, &quote) => {
            let mut all = vec![chunk];
            all.extend(cited.into_iter().filter(|&index| index != chunk));
            let line = shown(&line, &all);
            stream(&format!(" {line}"));
            (format!("{quote} {line}"), all)
        }
        // A line that only repeats the quote, or none that passed the check.
        (Some((quote, chunk)), _) => (quote, vec![chunk]),
        (None, Some((line, cited))) => {
            let line = shown(&line, &cited);
            stream(&line);
            (line, cited)
        }
        (None, None) => return None,
    })
}

/// Why a model answer has neither a quote nor a line: the model said the excerpts do not
/// answer, or nothing it said can be traced back to them.
fn unanswered(generation: Option<&crate::llm::Generation>) -> Ungrounded {
    let declined = generation
        .is_some_and(|generation| answer::model_declined(&answer::clean_answer(&generation.text)));
    if declined {
        Ungrounded::ModelDeclined
    } else {
        Ungrounded::Unsupported
    }
}

/// The model's checked sentences as the answer's line, with the chunks (indices into the
/// retrieved set) they cite; `None` when no sentence passed, or (output layer) a sentence
/// is not supported by the excerpts it cites.
fn stated_line(
    checked: &answer::SentenceGate,
    excerpts: &[ChunkRecord],
    citable: &[bool],
    excerpt_chunks: &[usize],
) -> Option<(String, Vec<usize>)> {
    let text = checked.kept.join(" ");
    if text.is_empty() {
        return None;
    }
    let chosen = answer::choose_citations(&text, excerpts);
    let cited = if enabled(Layer::Output) {
        // Every sentence must be supported by excerpts it cites, all of them the tenant's
        // and retrieved for this request: else the line is withheld.
        answer::cite_support(&text, excerpts, citable, chosen)?
    } else {
        chosen
    };
    let chunks = cited
        .into_iter()
        .map(|index| excerpt_chunks[index])
        .collect();
    Some((text, chunks))
}

/// How many titles an answer about a contract the tenant does not have suggests.
const CLOSEST_TITLES: usize = 3;

/// Whether a question refers to a contract by a name ("the Lifeway endorsement
/// agreement", "the supply contract").
fn names_a_contract(question: &str) -> bool {
    let lower = question.to_lowercase();
    [
        "agreement",
        "contract",
        "amendment",
        "lease",
        "licen",
        "addendum",
        "deed",
        "memorandum",
    ]
    .iter()
    .any(|word| lower.contains(word))
}

impl Appliance {
    /// The chunks an answer may use and which of them it may show: the prompt layer keeps
    /// only the scope's tenant's chunks (nothing else reaches the model or a quote); the
    /// output layer says, per kept chunk, whether storage confirms its document is the
    /// tenant's.
    pub(super) fn usable_chunks(
        &self,
        scope: &TenantScope,
        mut chunks: Vec<ChunkRecord>,
    ) -> Result<(Vec<ChunkRecord>, Vec<bool>), ApplianceError> {
        if enabled(Layer::Prompt) {
            chunks.retain(|chunk| &chunk.tenant_id == scope.tenant_id());
        }
        let owned = output::owned(
            &self.store,
            scope,
            &chunks
                .iter()
                .map(|chunk| chunk.chunk_id.document_id())
                .collect::<Vec<_>>(),
        )?;
        Ok((chunks, owned))
    }
}

/// What an answer is built from: the retrieved chunks (the tenant's, by the prompt
/// layer), which of them storage confirms are the tenant's (output layer), and their
/// sentences ranked as answers to the question (on first use: `Appliance::ranked`).
pub(super) struct AnswerContext {
    pub(super) retrieved: Vec<ChunkRecord>,
    pub(super) owned: Vec<bool>,
    /// How many of `retrieved` the search returned (rules may add chunks after them).
    ranked_chunks: usize,
    question: String,
    /// The question without its specific words, embedded (on first use).
    query_vector: Option<Vec<f32>>,
    /// Every candidate sentence of the searched chunks, best answer first (on first use).
    ranked: Option<Vec<answer::RankedSentence>>,
    /// The documents the question names, when it names some.
    pub(super) documents: Option<Vec<DocumentId>>,
    /// The clause type the question is about, when it is about one.
    pub(super) clause: Option<&'static crate::clauses::ClauseType>,
}

impl AnswerContext {
    /// Every candidate sentence, best answer first, once `Appliance::rank_all` ranked
    /// them (empty before).
    fn ranked(&self) -> &[answer::RankedSentence] {
        self.ranked.as_deref().unwrap_or_default()
    }

    /// The best-ranked sentence the tenant may be shown, quoted, with its chunk. Called
    /// after the model's prompt was built, so the sentences are ranked already.
    fn best_quote(&self) -> Option<(String, usize)> {
        self.ranked()
            .iter()
            .find(|sentence| self.owned[sentence.chunk])
            .filter(|best| best.similarity >= answer::MIN_SIMILARITY)
            .map(|best| {
                (
                    answer::quoted_answer(&self.retrieved[best.chunk].filename, &best.text),
                    best.chunk,
                )
            })
    }

    /// The cited chunks the tenant may be shown, and the text with every identifier of a
    /// withheld chunk removed (output layer).
    fn cite(&self, text: &str, cited: Vec<usize>) -> (String, Vec<ChunkRecord>) {
        let citations: Vec<ChunkRecord> = cited
            .into_iter()
            .filter(|&index| self.owned[index])
            .map(|index| self.retrieved[index].clone())
            .collect();
        let withheld: Vec<(&DocumentId, &str)> = self
            .retrieved
            .iter()
            .zip(&self.owned)
            .filter(|(_, owned)| !**owned)
            .map(|(chunk, _)| (chunk.chunk_id.document_id(), chunk.filename.as_str()))
            .collect();
        (output::redact(text, &withheld), citations)
    }
}

impl Appliance {
    /// Ranks every candidate sentence of the searched chunks (once). The names in the
    /// question are left out of the comparison: they match every sentence of their own
    /// contract (the preamble most of all) and say nothing about which one answers.
    fn rank_all(&self, context: &mut AnswerContext) -> Result<(), ApplianceError> {
        if context.ranked.is_none() {
            let ranked = self.ranked_where(context, |_, _| true)?;
            context.ranked = Some(ranked);
        }
        Ok(())
    }

    /// The candidate sentences of the searched chunks that `keep` (chunk index, sentence)
    /// accepts, best answer first: only those are embedded, unless all are ranked already.
    /// The order among them is the order of the full ranking (each score is the sentence's
    /// own).
    pub(super) fn ranked_where(
        &self,
        context: &mut AnswerContext,
        keep: impl Fn(usize, &str) -> bool,
    ) -> Result<Vec<answer::RankedSentence>, ApplianceError> {
        if let Some(ranked) = &context.ranked {
            return Ok(ranked
                .iter()
                .filter(|s| keep(s.chunk, &s.text))
                .cloned()
                .collect());
        }
        let candidates: Vec<(usize, String)> =
            answer::candidate_sentences(&context.retrieved[..context.ranked_chunks])
                .into_iter()
                .filter(|(chunk, sentence)| keep(*chunk, sentence))
                .collect();
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let embedder = self.embedder()?;
        let generic_question = answer::without_specific_words(&context.question);
        if context.query_vector.is_none() {
            context.query_vector = Some(embedder.embed_one(&generic_question)?);
        }
        let texts: Vec<&str> = candidates.iter().map(|(_, s)| s.as_str()).collect();
        let vectors = embedder.embed(&texts)?;
        Ok(answer::rank_sentences(
            candidates,
            vectors,
            context.query_vector.as_deref().unwrap_or_default(),
            &generic_question,
        ))
    }

    /// The sentence that reads most like `clause` (its wording, heading, typed value),
    /// the best-ranked of equals, quoted, with its chunk: among the retrieved sentences
    /// about the clause when the rules know its wording (`evidence::about`), else in the
    /// best-retrieved chunk the tenant may be shown (retrieval has already put the clause
    /// first).
    fn clause_quote(
        &self,
        context: &mut AnswerContext,
        clause: &crate::clauses::ClauseType,
    ) -> Result<Option<(String, usize)>, ApplianceError> {
        let Some(top) = (0..context.ranked_chunks).find(|&chunk| context.owned[chunk]) else {
            return Ok(None);
        };
        let owned = context.owned.clone();
        let mut sentences = self.ranked_where(context, |chunk, sentence| {
            owned[chunk] && crate::clauses::evidence::about(clause, sentence)
        })?;
        if sentences.is_empty() {
            sentences = self.ranked_where(context, |chunk, _| chunk == top)?;
        }
        let best = answer::strongest(sentences, |sentence| {
            crate::resolution::clause_score(clause, &sentence.text)
        });
        Ok(best.map(|sentence| {
            (
                answer::quoted_answer(&context.retrieved[sentence.chunk].filename, &sentence.text),
                sentence.chunk,
            )
        }))
    }
}
