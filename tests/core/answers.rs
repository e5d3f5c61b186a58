//! Answers without the model (issue 9): a contract's title, a clause's sentence quoted,
//! and "it isn't there" said plainly when no sentence of the named contract reads as the
//! clause asked about; and an answer with the model: the clause quoted first, then the
//! model's line.

use crate::support::{fresh_appliance, ingest, new_tenant, sample_contract};

#[test]
fn clause_questions_quote_the_clause_or_say_it_is_absent() {
    let (_dir, appliance) = fresh_appliance();
    let scope = new_tenant(&appliance, "Counsel");
    let (consulting_name, consulting) = sample_contract("ADUROBIOTECH");
    let (endorsement_name, endorsement) = sample_contract("Lifeway");
    ingest(
        &appliance,
        &scope,
        &[
            (&consulting_name, &consulting),
            (&endorsement_name, &endorsement),
        ],
    );
    let ask = |question: &str| {
        appliance
            .ask(&scope, question, None, &mut |_| true)
            .unwrap()
    };

    // Present: the clause's own sentence, from the named contract, cited.
    let assignment = ask("Can the consultant assign the consulting agreement?");
    assert!(assignment.grounded, "{}", assignment.text);
    assert!(
        assignment.text.contains("shall not be assignable"),
        "{}",
        assignment.text
    );
    let cited = &assignment.citations[0];
    assert_eq!(cited.filename, consulting_name);
    let clause_at = consulting.find("shall not be assignable").unwrap();
    let clause_at = consulting[..clause_at].chars().count();
    assert!(cited.start <= clause_at && clause_at < cited.end);

    // Absent: said so, naming the contract and the clause, with nothing cited.
    let absent = ask("Does the consulting agreement have a most favored nation clause?");
    assert!(
        absent
            .text
            .contains("CONSULTING AGREEMENT does not contain a most favoured nation clause"),
        "{}",
        absent.text
    );
    assert!(!absent.grounded && absent.citations.is_empty());

    // A clause type named in the vocabulary's own words, which no contract uses
    // ("uncapped"): answered about the contract, not declined for a missing word.
    let uncapped = ask("What does the consulting agreement say about Uncapped Liability?");
    assert!(
        uncapped.text.contains("CONSULTING AGREEMENT")
            && uncapped.text.contains("uncapped liability clause"),
        "{}",
        uncapped.text
    );

    // A contract the tenant does not have: said so, with the closest titles it has.
    let unknown = ask("Which law governs the Veoneer joint venture agreement?");
    assert!(!unknown.grounded && unknown.citations.is_empty());
    assert!(
        unknown.text.contains("the closest are")
            && unknown.text.contains("CONSULTING AGREEMENT")
            && !unknown.text.contains("Japan"),
        "{}",
        unknown.text
    );

    // Across the tenant: every contract with the clause, each quoted and cited.
    let across = ask("Which contracts have an anti-assignment clause?");
    assert!(
        across.text.starts_with("2 of your contracts"),
        "{}",
        across.text
    );
    let mut cited: Vec<&str> = across
        .citations
        .iter()
        .map(|c| c.filename.as_str())
        .collect();
    cited.sort_unstable();
    let mut expected = vec![consulting_name.as_str(), endorsement_name.as_str()];
    expected.sort_unstable();
    assert_eq!(cited, expected);

    // The title, from the catalogue, citing the passage it stands in.
    let title = ask("What is the name of the consulting agreement?");
    assert!(
        title.text.contains("CONSULTING AGREEMENT"),
        "{}",
        title.text
    );
    assert_eq!(title.citations[0].filename, consulting_name);
    assert_eq!(title.citations[0].start, 0);
}

/// Issue 10: catalogues are decoded once per open tenant index, not on every ask. The
/// cache must follow an ingest (a contract added after the first ask is named and
/// answered) and must never answer for another tenant.
#[test]
fn issue_10_cached_catalogues_follow_ingest_and_stay_with_their_tenant() {
    let (_dir, appliance) = fresh_appliance();
    let scope = new_tenant(&appliance, "Counsel");
    let other = new_tenant(&appliance, "Rival");
    let (consulting_name, consulting) = sample_contract("ADUROBIOTECH");
    let (venture_name, venture) = sample_contract("VEONEER");
    ingest(&appliance, &scope, &[(&consulting_name, &consulting)]);
    ingest(&appliance, &other, &[(&venture_name, &venture)]);
    let question = "Which law governs the Veoneer joint venture agreement?";
    let ask = |scope| appliance.ask(scope, question, None, &mut |_| true).unwrap();

    // Not this tenant's contract (its catalogues are now cached): no answer from the
    // other tenant's.
    let before = ask(&scope);
    assert!(!before.grounded, "{}", before.text);
    assert!(!before.text.contains("Japan"), "{}", before.text);
    // The other tenant has it.
    let theirs = ask(&other);
    assert!(
        theirs.grounded && theirs.text.contains("Japan"),
        "{}",
        theirs.text
    );

    // Ingested after the first ask: named and answered.
    ingest(&appliance, &scope, &[(&venture_name, &venture)]);
    let after = ask(&scope);
    assert!(after.grounded, "{}", after.text);
    assert!(after.text.contains("Japan"), "{}", after.text);
    assert!(
        after
            .citations
            .iter()
            .all(|cited| cited.tenant_id == *scope.tenant_id()),
    );
}

/// A question no rule answers goes to the model, and its answer is the clause quoted, then
/// the model's checked line (DESIGN.md): the quote streams before the model has read the
/// prompt, and the stream is exactly the final answer.
#[test]
fn a_model_answer_streams_the_quoted_clause_first_then_its_checked_line() {
    let (_dir, appliance) = fresh_appliance();
    let scope = new_tenant(&appliance, "Counsel");
    let (consulting_name, consulting) = sample_contract("ADUROBIOTECH");
    ingest(&appliance, &scope, &[(&consulting_name, &consulting)]);
    let mut pieces: Vec<String> = Vec::new();
    let answer = appliance
        .ask(
            &scope,
            "Until when does the consulting agreement with Aduro continue?",
            None,
            &mut |piece| {
                pieces.push(piece.to_owned());
                true
            },
        )
        .unwrap();
    assert!(answer.timings.prompt_tokens > 0, "the model answered");
    assert!(answer.grounded, "{}", answer.text);
    assert_eq!(pieces.concat(), answer.text, "the stream is the answer");

    let opening = format!("According to {consulting_name}: “");
    let quoted = pieces[0]
        .strip_prefix(&opening)
        .and_then(|rest| rest.strip_suffix('”'))
        .unwrap_or_else(|| panic!("the first piece is a quote: {:?}", pieces[0]));
    let flat = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(quoted.contains("December 31, 2020"), "{quoted}");
    let cited = &answer.citations[0];
    assert_eq!(cited.filename, consulting_name);
    assert!(
        flat(&cited.text).contains(quoted),
        "the quote's chunk is cited first"
    );
    if let Some(line) = pieces.get(1) {
        assert!(line.starts_with(' '), "{line:?}");
        assert_eq!(pieces.len(), 2, "one line after the quote: {pieces:?}");
    }
}
