//! The house rules of ARCHITECTURE.md, checked on the source itself: top-level modules
//! import each other without cycles, no source file is over 800 lines, and no function is
//! over 120 lines.
//!
//! The checks read `src/` as text. They rely on rustfmt's layout (CI checks it): a
//! function ends at the first later line that is its own indentation followed by `}`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_FILE_LINES: usize = 800;
const MAX_FUNCTION_LINES: usize = 120;

fn source_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("src/ is readable")
            .map(|entry| entry.expect("directory entry").path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.len() > 20, "found only {} source files", files.len());
    files
}

/// The top-level module a file belongs to (`src/store/rows.rs` → `store`); `None` for the
/// crate root and the binary.
fn top_module(path: &Path) -> Option<String> {
    let relative = path
        .strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
        .ok()?;
    let first = relative.components().next()?.as_os_str().to_str()?;
    match first {
        "lib.rs" | "main.rs" => None,
        name => Some(name.trim_end_matches(".rs").to_owned()),
    }
}

/// The code of a file without comments and without its unit tests (which may reach any
/// module).
fn production_code(text: &str) -> String {
    let mut code = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed == "#[cfg(test)]" && lines.peek().is_some_and(|next| next.contains("mod ")) {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        code.push_str(line);
        code.push('\n');
    }
    code
}

/// Top-level module → the top-level modules its code names through `crate::`.
fn module_imports() -> BTreeMap<String, BTreeSet<String>> {
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in source_files() {
        let Some(module) = top_module(&path) else {
            continue;
        };
        let code = production_code(&std::fs::read_to_string(&path).expect("readable"));
        let targets = graph.entry(module.clone()).or_default();
        for (index, _) in code.match_indices("crate::") {
            let rest = &code[index + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `use crate::{a, b}` groups are not used in this code base; a bare
            // `crate::` followed by `{` would be missed, so refuse it.
            assert!(
                !name.is_empty(),
                "{}: write `crate::module::...` paths, not `crate::{{...}}` groups",
                path.display()
            );
            if name != module {
                targets.insert(name);
            }
        }
    }
    graph
}

/// Every cycle's modules, found by depth-first search (each cycle reported once per
/// entry point is enough to fail).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        found: &mut Vec<Vec<String>>,
    ) {
        if let Some(position) = path.iter().position(|seen| seen == node) {
            let mut cycle = path[position..].to_vec();
            cycle.push(node.to_owned());
            found.push(cycle);
            return;
        }
        if done.contains(node) {
            return;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, path, done, found);
        }
        path.pop();
        done.insert(node.to_owned());
    }
    let mut found = Vec::new();
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        visit(node, graph, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

#[test]
fn top_level_modules_import_each_other_without_cycles() {
    let graph = module_imports();
    assert!(
        graph
            .get("api")
            .is_some_and(|targets| targets.contains("appliance")),
        "the import scan found no api → appliance edge: it is broken"
    );
    let found = cycles(&graph);
    assert!(
        found.is_empty(),
        "import cycles between top-level modules: {}",
        found
            .iter()
            .map(|cycle| cycle.join(" → "))
            .collect::<Vec<_>>()
            .join("; ")
    );
}

/// Module → its rank in ARCHITECTURE.md's code map (0 at the top). Modules named in one
/// heading share a rank.
fn documented_order() -> BTreeMap<String, usize> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
            .expect("ARCHITECTURE.md is readable");
    let map = text
        .split("## Code map")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("ARCHITECTURE.md has a code map");
    let mut order = BTreeMap::new();
    for (rank, heading) in map
        .lines()
        .filter_map(|line| line.strip_prefix("### "))
        .enumerate()
    {
        for name in heading.split('`').skip(1).step_by(2) {
            order.insert(name.to_owned(), rank);
        }
    }
    order
}

#[test]
fn imports_point_down_architecture_md_code_map() {
    let order = documented_order();
    let graph = module_imports();
    let mut problems = Vec::new();
    for (module, targets) in &graph {
        let Some(rank) = order.get(module) else {
            problems.push(format!("`{module}` is not in ARCHITECTURE.md's code map"));
            continue;
        };
        for target in targets {
            match order.get(target) {
                Some(target_rank) if target_rank < rank => problems.push(format!(
                    "{module} imports {target}, which is listed above it"
                )),
                Some(_) => {}
                None => problems.push(format!("`{target}` is not in ARCHITECTURE.md's code map")),
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(node, targets)| {
        (
            node.to_owned(),
            targets.into_iter().map(str::to_owned).collect(),
        )
    })
    .collect();
    assert_eq!(cycles(&graph), vec![vec!["a", "b", "c", "a"]]);
}

#[test]
fn no_source_file_is_over_800_lines() {
    let long: Vec<String> = source_files()
        .iter()
        .filter_map(|path| {
            let lines = std::fs::read_to_string(path)
                .expect("readable")
                .lines()
                .count();
            (lines > MAX_FILE_LINES).then(|| format!("{} ({lines} lines)", path.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_FILE_LINES} lines: {long:?}"
    );
}

/// (line number, name, length) of every function with a body in `text`.
fn function_lengths(text: &str) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut functions = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let Some(name) = function_name(trimmed) else {
            continue;
        };
        let indent = &line[..line.len() - trimmed.len()];
        // A declaration without a body (trait method) or a body on one line.
        if trimmed.ends_with(';') || trimmed.ends_with('}') {
            continue;
        }
        let closing = format!("{indent}}}");
        if let Some(end) = lines[index + 1..]
            .iter()
            .position(|later| *later == closing || later.starts_with(&format!("{closing} ")))
        {
            functions.push((index + 1, name, end + 2));
        }
    }
    functions
}

/// The name of the function a line declares, if it declares one.
fn function_name(trimmed: &str) -> Option<String> {
    let mut rest = trimmed;
    for prefix in [
        "pub(crate) ",
        "pub(super) ",
        "pub ",
        "const ",
        "async ",
        "unsafe ",
    ] {
        rest = rest.strip_prefix(prefix).unwrap_or(rest);
    }
    let rest = rest.strip_prefix("fn ")?;
    let name: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

#[test]
fn the_function_scan_measures_functions() {
    let text = "fn short() {}\n\nimpl X {\n    pub fn three(&self) {\n        body();\n    }\n}\nfn outer() {\n    let x = 1;\n}\n";
    assert_eq!(
        function_lengths(text),
        vec![(4, "three".to_owned(), 3), (8, "outer".to_owned(), 3)]
    );
}

#[test]
fn no_function_is_over_120_lines() {
    let mut long = Vec::new();
    let mut measured = 0;
    for path in source_files() {
        let text = std::fs::read_to_string(&path).expect("readable");
        for (line, name, length) in function_lengths(&text) {
            measured += 1;
            if length > MAX_FUNCTION_LINES {
                long.push(format!("{}:{line} {name} ({length} lines)", path.display()));
            }
        }
    }
    assert!(measured > 300, "measured only {measured} functions");
    assert!(
        long.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines: {long:#?}"
    );
}
