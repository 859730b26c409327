//! The module structure of `src/`, drawn from its imports: no circle, and nothing on the
//! request path reaches back up (`main` → app → functions → domain → authy). Each module's
//! `crate::<module>` references outside its tests are its imports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The modules each module of `src/` refers to (`crate::<name>`), tests and comments left out.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                files.push(entry.unwrap().path());
            }
            continue;
        }
        let rel = path
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if !rel.ends_with(".rs") || rel.starts_with("bin/") || rel == "main.rs" || rel == "lib.rs" {
            continue;
        }
        let module = rel
            .trim_end_matches(".rs")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let deps = graph.entry(module.clone()).or_default();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (i, _) in line.match_indices("crate::") {
                let name: String = line[i + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    deps.insert(name);
                }
            }
        }
    }
    graph
}

#[test]
fn src_has_no_import_circle_and_nothing_reaches_back_up() {
    let graph = imports();
    for module in graph.keys() {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&String> = graph[module].iter().collect();
        while let Some(next) = todo.pop() {
            assert_ne!(next, module, "import circle through {module}: {graph:?}");
            if seen.insert(next.clone()) {
                todo.extend(graph.get(next).into_iter().flatten());
            }
        }
    }
    // Below the app nothing imports it; below the functions nothing imports them; the
    // domain types import nothing of the crate.
    for (module, deps) in &graph {
        if !["app", "dev"].contains(&module.as_str()) {
            assert!(!deps.contains("app"), "{module} reaches back up to app");
        }
        if !["app", "dev", "functions"].contains(&module.as_str()) {
            assert!(
                !deps.contains("functions"),
                "{module} reaches back up to functions"
            );
        }
        assert!(
            !deps.contains("dev") && !deps.contains("simulator") || module == "dev",
            "{module} depends on the development tools"
        );
    }
    assert!(
        graph["domain"].is_empty(),
        "domain imports {:?}",
        graph["domain"]
    );
    // The offline policy check is a tool for admins (render-policies --check-against): it
    // stands alone, so it cannot pull the request path into the tool or the other way round.
    assert!(
        graph["policy_check"].is_empty(),
        "policy_check imports {:?}",
        graph["policy_check"]
    );
    assert!(graph.len() >= 10, "src/ modules not found: {graph:?}");
}
