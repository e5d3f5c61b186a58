//! Catalogue accuracy (`cargo bench --bench catalogue`): the rule-based catalogue of each
//! CUAD dev contract against the experts' document name and parties (`contracts.json`) and
//! normalised answers (`cuad_qa.jsonl`: Governing Law, Agreement Date, Effective Date,
//! Expiration Date, Parties). Pure text work: no models, no store. `CATALOGUE_VERBOSE=1`
//! prints each miss.

use std::collections::HashMap;

use bulkhead::catalogue;
use bulkhead::values::DateValue;
use serde_json::Value;

#[path = "common/mod.rs"]
mod common;

#[derive(Default)]
struct Score {
    n: usize,
    right: usize,
    missing: usize,
}

impl Score {
    fn add(&mut self, outcome: Option<bool>) {
        self.n += 1;
        match outcome {
            Some(true) => self.right += 1,
            Some(false) => {}
            None => self.missing += 1,
        }
    }
}

fn main() {
    let verbose = std::env::var_os("CATALOGUE_VERBOSE").is_some();
    let cuad = common::cuad_dir();
    let contracts: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(cuad.join("contracts.json")).unwrap())
            .unwrap();
    let mut normalized: HashMap<(String, String), String> = HashMap::new();
    for line in std::fs::read_to_string(cuad.join("cuad_qa.jsonl"))
        .unwrap()
        .lines()
    {
        let row: Value = serde_json::from_str(line).unwrap();
        if row["is_impossible"].as_bool() == Some(false) {
            normalized.insert(
                (
                    row["contract_file"].as_str().unwrap().to_owned(),
                    row["category"].as_str().unwrap().to_owned(),
                ),
                row["normalized_answer"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
    }

    let mut scores: Vec<(&str, Score)> = [
        "title",
        "parties (each)",
        "parties (all of a contract)",
        "governing law",
        "agreement date",
        "effective date",
        "expiration date",
    ]
    .into_iter()
    .map(|name| (name, Score::default()))
    .collect();
    let started = std::time::Instant::now();
    for contract in &contracts {
        let file = contract["file"].as_str().unwrap();
        let text = std::fs::read_to_string(cuad.join("contracts").join(file)).unwrap();
        let catalogue = catalogue::catalogue(&text);
        let expected = |category: &str| {
            normalized
                .get(&(file.to_owned(), category.to_owned()))
                .filter(|v| !v.trim().is_empty())
        };
        let miss = |field: &str, want: &str, got: &str| {
            if verbose {
                println!("{file}\n  {field}: want {want:?}, got {got:?}");
            }
        };

        // Title.
        let want = squash(contract["document_name"].as_str().unwrap_or_default());
        let got = catalogue.title.as_ref().map(|t| squash(&t.value));
        let outcome = got.as_ref().map(|g| g == &want);
        if outcome != Some(true) {
            miss("title", &want, got.as_deref().unwrap_or("-"));
        }
        scores[0].1.add(outcome);

        // Parties: each expert party whose name (before its parenthetical) is found.
        let want_parties: Vec<String> = contract["parties"]
            .as_str()
            .unwrap_or_default()
            .split(';')
            .filter_map(|p| {
                let name = squash(p.split(['(', '“', '"']).next()?);
                (name.len() >= 2 && !name.contains("party") && !name.contains("parties"))
                    .then_some(name)
            })
            .collect();
        let got_parties: Vec<String> = catalogue
            .parties
            .iter()
            .flat_map(|p| [Some(squash(&p.name)), p.alias.as_deref().map(squash)])
            .flatten()
            .collect();
        let mut all = true;
        for want in &want_parties {
            let found = got_parties.iter().any(|got| {
                got == want
                    || (got.len() >= 4
                        && (got.contains(want.as_str()) || want.contains(got.as_str())))
            });
            if !found {
                miss("party", want, &got_parties.join(" | "));
                all = false;
            }
            scores[1].1.add(if found {
                Some(true)
            } else if catalogue.parties.is_empty() {
                None
            } else {
                Some(false)
            });
        }
        if !want_parties.is_empty() {
            scores[2].1.add(Some(all));
        }

        // Governing law.
        if let Some(want) = expected("Governing Law") {
            let got = catalogue.governing_law.as_ref().map(|g| g.value.as_str());
            let outcome = got.map(|g| {
                want.split([';', ','])
                    .map(squash)
                    .filter(|w| !w.is_empty())
                    .any(|w| w.contains(&squash(g)) || squash(g).contains(&w))
            });
            if outcome != Some(true) {
                miss("governing law", want, got.unwrap_or("-"));
            }
            scores[3].1.add(outcome);
        }

        // Dates.
        for (index, category, field) in [
            (4, "Agreement Date", &catalogue.agreement_date),
            (5, "Effective Date", &catalogue.effective_date),
            (6, "Expiration Date", &catalogue.expiration_date),
        ] {
            if let Some(want) = expected(category) {
                let got = field.as_ref().map(|f| f.value);
                let outcome = got.map(|g| date_matches(want, g));
                if outcome != Some(true) {
                    miss(category, want, &got.map_or("-".into(), |g| g.to_string()));
                }
                scores[index].1.add(outcome);
            }
        }
    }
    println!(
        "catalogue of {} contracts in {:.2} s",
        contracts.len(),
        started.elapsed().as_secs_f64()
    );
    println!(
        "{:<28} {:>5} {:>7} {:>8} {:>9}",
        "field", "n", "right", "missing", "accuracy"
    );
    for (name, score) in &scores {
        println!(
            "{:<28} {:>5} {:>7} {:>8} {:>9.2}",
            name,
            score.n,
            score.right,
            score.missing,
            score.right as f64 / score.n.max(1) as f64
        );
    }
}

/// Lower case, letters and digits only, single spaces: "CO-BRANDING  AND" = "co branding and".
fn squash(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .filter(|w| {
            ![
                "inc",
                "llc",
                "ltd",
                "corp",
                "corporation",
                "the",
                "co",
                "limited",
                "a",
                "company",
            ]
            .contains(w)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// CUAD's m/d/yy with `[]` for what the contract leaves blank, against a found date.
fn date_matches(want: &str, got: DateValue) -> bool {
    if want.eq_ignore_ascii_case("perpetual") {
        return false;
    }
    let parts: Vec<Option<i32>> = want
        .trim()
        .split('/')
        .map(|p| p.trim().parse().ok())
        .collect();
    let [month, day, year] = parts.as_slice() else {
        return false;
    };
    let year = year.map(|y| match y {
        0..=50 => 2000 + y,
        51..=99 => 1900 + y,
        _ => y,
    });
    year.is_none_or(|y| y == got.year)
        && month.is_none_or(|m| Some(m as u8) == got.month)
        && day.is_none_or(|d| Some(d as u8) == got.day)
}
