//! The isolation suite (issue 4): two competitor tenants with real contracts and marker
//! strings, and over two hundred cross-tenant probes, run with every isolation layer on,
//! with each layer off in turn, with only one layer on, and with none. It prints the table
//! (configuration, probes, stopped, leaks) and writes it to
//! `target/isolation-report.md`.
//!
//! Requires the test-only `ablation` feature:
//! `cargo test --release --features ablation --test isolation -- --nocapture`.

#[path = "../common/mod.rs"]
mod common;
mod probes;
mod world;

use bulkhead::isolation::Layer;

struct Row {
    label: String,
    off: Vec<Layer>,
    outcomes: Vec<probes::Outcome>,
    failed_controls: Vec<String>,
}

impl Row {
    fn leaks(&self) -> usize {
        self.outcomes.iter().filter(|o| o.leak.is_some()).count()
    }
    fn leaks_in(&self, class: &str) -> usize {
        self.leaks_matching(class, "")
    }
    /// Leaks among the probes of `class` whose label starts with `prefix`.
    fn leaks_matching(&self, class: &str, prefix: &str) -> usize {
        self.leak_labels(class, prefix).len()
    }
    fn leak_labels(&self, class: &str, prefix: &str) -> Vec<String> {
        self.outcomes
            .iter()
            .filter(|o| o.class == class && o.label.starts_with(prefix))
            .filter_map(|o| o.leak.as_ref().map(|leak| format!("{}: {leak}", o.label)))
            .collect()
    }
}

/// The probes each layer must stop entirely on its own, from what it is designed to stop
/// (ARCHITECTURE.md, "Tenant isolation"), as (class, label prefix; "" for the whole
/// class). Each of these leaks with no layers on.
const STOPS_ALONE: [(Layer, &[(&str, &str)]); 6] = [
    (
        Layer::Gateway,
        &[
            ("foreign tenant in path", ""),
            ("path tricks", ""),
            ("forged and swapped tokens", ""),
        ],
    ),
    (
        Layer::Scope,
        &[
            ("foreign tenant in path", ""),
            ("path tricks", ""),
            ("foreign ids on own path", ""),
            ("forged and swapped tokens", ""),
            ("prompt injection", ""),
            ("files swapped between tenants", ""),
            ("raw SQL on a tenant connection", ""),
        ],
    ),
    (
        Layer::RowSecurity,
        &[
            ("prompt injection", ""),
            ("raw SQL on a tenant connection", ""),
        ],
    ),
    (
        Layer::Crypto,
        &[
            ("files swapped between tenants", ""),
            ("raw SQL on a tenant connection", ""),
        ],
    ),
    // The prompt layer guards what reaches the model: the asks, not the searches.
    (Layer::Prompt, &[("prompt injection", "ask ")]),
    (Layer::Output, &[("prompt injection", "")]),
];

/// Probes a layer is designed to stop alone but does not yet: 2 of the 16 leak with only
/// this layer on (reported with issue 14; probably the two "deletes reached" records);
/// asserted to leak still, so that a fix fails here and moves the entry to `STOPS_ALONE`.
const KNOWN_GAPS: [(Layer, &str, &str); 2] = [
    (Layer::RowSecurity, "foreign ids on own path", ""),
    (Layer::Output, "foreign ids on own path", ""),
];

fn configurations() -> Vec<(String, Vec<Layer>)> {
    let mut configurations = vec![("all six layers".to_owned(), Vec::new())];
    for layer in Layer::ALL {
        configurations.push((format!("without {}", layer.name()), vec![layer]));
    }
    for layer in Layer::ALL {
        let off = Layer::ALL.into_iter().filter(|l| *l != layer).collect();
        configurations.push((format!("only {}", layer.name()), off));
    }
    configurations.push(("no layers".to_owned(), Layer::ALL.to_vec()));
    configurations
}

#[test]
fn no_single_layer_is_load_bearing_and_each_one_stops_its_probe_classes_alone() {
    let with_crypto = world::prepare(&[]);
    let without_crypto = world::prepare(&[Layer::Crypto]);
    let mut rows = Vec::new();
    for (label, off) in configurations() {
        let base = if off.contains(&Layer::Crypto) {
            &without_crypto
        } else {
            &with_crypto
        };
        let (outcomes, failed_controls) = probes::run_all(base, &off);
        eprintln!(
            "{label}: {} probes, {} leaks, controls failed: {failed_controls:?}",
            outcomes.len(),
            outcomes.iter().filter(|o| o.leak.is_some()).count()
        );
        if off.len() == Layer::ALL.len() - 1 {
            for outcome in outcomes.iter().filter(|o| o.leak.is_some()) {
                eprintln!("  leaks [{}] {}", outcome.class, outcome.label);
            }
        }
        rows.push(Row {
            label,
            off,
            outcomes,
            failed_controls,
        });
    }

    let mut table =
        String::from("| configuration | probes | stopped | leaks |\n|---|---:|---:|---:|\n");
    for row in &rows {
        let probes = row.outcomes.len();
        table.push_str(&format!(
            "| {} | {probes} | {} | {} |\n",
            row.label,
            probes - row.leaks(),
            row.leaks()
        ));
    }
    table.push_str("\nLeaks by probe class:\n\n| configuration |");
    for class in probes::CLASSES {
        table.push_str(&format!(" {class} |"));
    }
    table.push_str("\n|---|");
    for _ in probes::CLASSES {
        table.push_str("---:|");
    }
    table.push('\n');
    for row in &rows {
        table.push_str(&format!("| {} |", row.label));
        for class in probes::CLASSES {
            let total = row.outcomes.iter().filter(|o| o.class == class).count();
            table.push_str(&format!(" {}/{total} |", row.leaks_in(class)));
        }
        table.push('\n');
    }
    println!("\n{table}");
    let report =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/isolation-report.md");
    let _ = std::fs::write(&report, &table);

    let no_layers = rows.last().unwrap();
    assert!(
        no_layers.outcomes.len() >= 200,
        "{} probes",
        no_layers.outcomes.len()
    );
    for row in &rows {
        if row.off.len() <= 1 {
            assert!(
                row.failed_controls.is_empty(),
                "{}: the tenants' own requests failed: {:?}",
                row.label,
                row.failed_controls
            );
            let leaks: Vec<String> = row
                .outcomes
                .iter()
                .filter_map(|o| {
                    o.leak
                        .as_ref()
                        .map(|leak| format!("[{}] {}: {leak}", o.class, o.label))
                })
                .collect();
            assert!(
                leaks.is_empty(),
                "{}: {} leaks\n{}",
                row.label,
                leaks.len(),
                leaks.join("\n")
            );
        }
    }
    let only = |layer: Layer| {
        let label = format!("only {}", layer.name());
        rows.iter().find(|row| row.label == label).unwrap()
    };
    for (layer, probes) in STOPS_ALONE {
        for &(class, prefix) in probes {
            assert!(
                no_layers.leaks_matching(class, prefix) > 0,
                "[{class}] {prefix}… leaks nothing with no layers on: these probes prove nothing"
            );
            let leaks = only(layer).leak_labels(class, prefix);
            assert!(
                leaks.is_empty(),
                "only {} must stop every [{class}] {prefix}… probe on its own; {} leaked:\n{}",
                layer.name(),
                leaks.len(),
                leaks.join("\n")
            );
        }
    }
    for (layer, class, prefix) in KNOWN_GAPS {
        assert!(
            only(layer).leaks_matching(class, prefix) > 0,
            "only {} now stops [{class}] {prefix}…: move it to STOPS_ALONE",
            layer.name()
        );
    }
}
