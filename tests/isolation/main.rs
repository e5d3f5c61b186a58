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
        self.outcomes
            .iter()
            .filter(|o| o.class == class && o.leak.is_some())
            .count()
    }
}

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
fn no_single_layer_is_load_bearing_and_each_one_stops_probes_alone() {
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
        if row.off.len() == Layer::ALL.len() - 1 {
            // Alone, a layer must stop a class of probes that gets through with no layers.
            assert!(
                row.leaks() < no_layers.leaks(),
                "{} stops nothing on its own",
                row.label
            );
        }
    }
}
