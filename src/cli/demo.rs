//! `bulkhead demo`: the whole story on the bundled sample contracts.
//!
//! Two competitor tenants each get three real CUAD contracts (CC BY 4.0, see
//! `data/CUAD_v1_README.txt`), ask about their own contracts, then ask about the other's
//! and are told their documents do not say. The sample files are compiled into the binary
//! so the demo runs from anywhere; it uses a fresh temporary data directory unless
//! `--data-dir` is given.

use std::path::PathBuf;

use super::UserFailure;
use crate::appliance::Appliance;
use crate::auth::{OperatorReason, TenantScope};
use crate::config::Config;
use crate::store::{Store, Tier};

struct SampleTenant {
    name: &'static str,
    contracts: &'static [(&'static str, &'static str)],
    questions: &'static [&'static str],
    /// A question about the other tenant's contract.
    foreign_question: &'static str,
}

macro_rules! contract {
    ($file:literal) => {
        ($file, include_str!(concat!("../../data/contracts/", $file)))
    };
}

const NORTHWIND: SampleTenant = SampleTenant {
    name: "Northwind Beverages",
    contracts: &[
        contract!(
            "LifewayFoodsInc_20160316_10-K_EX-10.24_9489766_EX-10.24_Endorsement Agreement.txt"
        ),
        contract!("ADUROBIOTECH,INC_06_02_2020-EX-10.7-CONSULTING AGREEMENT(1).txt"),
        contract!("DRAGONSYSTEMSINC_01_08_1999-EX-10.17-OUTSOURCING AGREEMENT.txt"),
    ],
    questions: &[
        "Which state's laws govern the Lifeway endorsement agreement?",
        "Until when does the consulting agreement with Aduro continue?",
        "How much notice must Dragon give to terminate the outsourcing agreement without cause?",
    ],
    foreign_question: "How long is the term of the web site hosting agreement with Kingdom Connect?",
};

const CONTOSO: SampleTenant = SampleTenant {
    name: "Contoso Foods",
    contracts: &[
        contract!("VEONEER,INC_02_21_2020-EX-10.11-JOINT VENTURE AGREEMENT.txt"),
        contract!("SoupmanInc_20150814_8-K_EX-10.1_9230148_EX-10.1_Franchise Agreement2.txt"),
        contract!(
            "BOLIVARMININGCORP_05_23_2003-EX-2.1-VISP WEB SITE BUILDING AND HOSTING AGREEMENT.txt"
        ),
    ],
    questions: &[
        "How long is the term of the web site hosting agreement with Kingdom Connect?",
        "Which country's laws govern the Veoneer amendment?",
    ],
    foreign_question: "Which state's laws govern the Lifeway endorsement agreement?",
};

pub fn run(config: &Config, data_dir_given: bool) -> Result<(), UserFailure> {
    let temporary = if data_dir_given {
        None
    } else {
        Some(tempfile_dir().map_err(|error| {
            UserFailure(format!("cannot create a temporary directory: {error}"))
        })?)
    };
    let mut config = config.clone();
    if let Some(dir) = &temporary {
        config.data_dir = dir.clone();
    }
    let result = run_in(&config);
    if let Some(dir) = temporary {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "bulkhead-demo-{}",
        crate::ids::TenantId::generate()
    ));
    crate::store::files::create_private_dir(&dir)?;
    Ok(dir)
}

fn run_in(config: &Config) -> Result<(), UserFailure> {
    println!(
        "== Bulkhead demo — data directory {}",
        config.data_dir.display()
    );
    Store::init(&config.data_dir)?;
    crate::auth::tokens::Signer::init(&config.data_dir)
        .map_err(|error| UserFailure(error.to_string()))?;
    let appliance = Appliance::open(config.clone())?;
    // The language model loads while the contracts are indexed, not at the first answer
    // that needs it (a failure shows at that answer).
    std::thread::scope(|threads| {
        threads.spawn(|| appliance.generator().map(drop));
        story(&appliance)
    })
}

/// Both tenants' contracts indexed, their questions asked, and each one's question about
/// the other's contract.
fn story(appliance: &Appliance) -> Result<(), UserFailure> {
    let mut tenants: Vec<(&SampleTenant, TenantScope)> = Vec::new();
    for sample in [&NORTHWIND, &CONTOSO] {
        let record = appliance.create_tenant(sample.name, Tier::Standard)?;
        let scope = appliance.operator_scope(&record.tenant_id, OperatorReason::Demo)?;
        println!("\n== Tenant {} ({})", sample.name, record.tenant_id);
        for (filename, text) in sample.contracts {
            appliance.upload(&scope, filename, None, text.as_bytes())?;
        }
        let outcomes = appliance.process_jobs(&scope, &mut |outcome| match &outcome.result {
            Ok(chunks) => println!("   indexed {} ({chunks} chunks)", outcome.filename),
            Err(reason) => println!("   FAILED {}: {reason}", outcome.filename),
        })?;
        if outcomes.iter().any(|outcome| outcome.result.is_err()) {
            return Err(UserFailure("a sample contract failed to index".into()));
        }
        tenants.push((sample, scope));
    }

    for (sample, scope) in &tenants {
        println!("\n== {} asks about its own contracts", sample.name);
        for question in sample.questions {
            println!("\nQ: {question}\nA: ");
            // `ask` prints the answer's timings line (retrieval, prefill, decode, total).
            super::ask(appliance, scope, question, None, true)?;
        }
    }

    println!("\n== Each tenant asks about the other's contract");
    for (sample, scope) in &tenants {
        println!("\n{} — Q: {}\nA: ", sample.name, sample.foreign_question);
        let answer = super::ask(appliance, scope, sample.foreign_question, None, true)?;
        let foreign = tenants
            .iter()
            .find(|(other, _)| other.name != sample.name)
            .map(|(other, _)| other.contracts)
            .unwrap_or_default();
        let leaked = answer.citations.iter().any(|citation| {
            foreign
                .iter()
                .any(|(filename, _)| *filename == citation.filename)
        });
        if answer.grounded || leaked {
            return Err(UserFailure(format!(
                "isolation check failed: {} was answered from documents it does not own",
                sample.name
            )));
        }
    }
    println!("\n== Done: every answer came from the asking tenant's own contracts.");
    Ok(())
}
