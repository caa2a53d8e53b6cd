//! The library's modules form a tree that follows the data, and
//! docs/ARCHITECTURE.md says so truthfully.
//!
//! The modules are the rows of ARCHITECTURE.md's module table (`formats::mp4`,
//! `checks::validate`, `error`, ...): every source file of the library belongs
//! to the row whose path is the longest prefix of its own (`src/formats/mp4/boxes.rs`
//! is `formats::mp4::boxes`, which belongs to `formats::mp4`). What a module
//! uses is read from its sources: every `crate::` path (`crate::{A, B}` groups
//! too), every `super::` path, and every name the crate root re-exports
//! (`crate::Limits` is `limits::Limits`), outside comments and unit-test
//! modules. The tests check that no module uses one that uses it back, that
//! every file has a row and every row a file, and that each row's "uses"
//! column is exactly what its code uses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The library's source files (the binary's — `main.rs` and `cli/` — left out).
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let rel = p.strip_prefix(src()).unwrap().to_path_buf();
        if rel == Path::new("main.rs") || rel == Path::new("lib.rs") || rel.starts_with("cli") {
            continue;
        }
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a source file: `formats/mp4/mod.rs` -> `formats::mp4`.
fn path_of(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    parts
}

/// The rows of ARCHITECTURE.md's module table: module path -> its "uses".
fn table() -> BTreeMap<String, BTreeSet<String>> {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/ARCHITECTURE.md")).unwrap();
    let mut rows = BTreeMap::new();
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        assert_eq!(cells.len(), 3, "a module row has three cells: {line}");
        let module = cells[0].trim_matches('`').to_string();
        let uses = cells[2]
            .split(',')
            .map(|u| u.trim().trim_matches('`').to_string())
            .filter(|u| !u.is_empty() && u != "—")
            .collect();
        assert!(rows.insert(module.clone(), uses).is_none(), "{module} has two rows");
    }
    rows
}

/// The row that `path` (a module path, maybe with an item after it) belongs to.
fn row_of<'a>(rows: &'a BTreeMap<String, BTreeSet<String>>, path: &[String]) -> Option<&'a str> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find_map(|p| rows.get_key_value(&p).map(|(k, _)| k.as_str()))
}

/// Source text without comments and unit-test modules (which may borrow any
/// module's fixtures).
fn code_of(file: &Path) -> String {
    let source = std::fs::read_to_string(file).unwrap();
    let code = source.split("\n#[cfg(test)]\nmod tests").next().unwrap_or_default();
    let code = code
        .split("\n#[cfg(test)]\npub(crate) mod tests")
        .next()
        .unwrap_or_default();
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The paths that follow `prefix` (`crate::` or `super::`) in `text`, as
/// lists of identifiers: `crate::a::b::{C, d::E}` gives `a::b::C` and
/// `a::b::d::E`.
fn paths_after(text: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices(prefix) {
        if text[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            continue; // `super::super::` is read from its first `super::`
        }
        walk_path(&text[i + prefix.len()..], Vec::new(), &mut out);
    }
    out
}

fn walk_path(mut rest: &str, mut path: Vec<String>, out: &mut Vec<Vec<String>>) {
    loop {
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                walk_path(item.trim(), path.clone(), out);
            }
            return;
        }
        let name = ident(rest);
        if name.is_empty() {
            break;
        }
        rest = &rest[name.len()..];
        path.push(name);
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => break,
        }
    }
    if !path.is_empty() {
        out.push(path);
    }
}

/// The names the crate root re-exports, with the path each stands for.
fn root_exports() -> BTreeMap<String, Vec<String>> {
    let lib = std::fs::read_to_string(src().join("lib.rs")).unwrap();
    let mut names = BTreeMap::new();
    for item in lib.split(';').map(str::trim) {
        let Some(rest) = item.rsplit("pub use ").next().filter(|_| item.contains("pub use ")) else {
            continue;
        };
        let mut paths = Vec::new();
        walk_path(rest.trim(), Vec::new(), &mut paths);
        for p in paths {
            if let Some(last) = p.last() {
                names.insert(last.clone(), p.clone());
            }
        }
    }
    names
}

/// The edges `module -> module it uses`, by ARCHITECTURE.md's rows; and
/// the files that belong to no row.
fn edges(rows: &BTreeMap<String, BTreeSet<String>>) -> (Graph, Vec<String>) {
    let exports = root_exports();
    let mut files = Vec::new();
    sources(&src(), &mut files);
    let mut graph = Graph::new();
    let mut homeless = Vec::new();
    for file in files {
        let own = path_of(file.strip_prefix(src()).unwrap());
        let Some(from) = row_of(rows, &own) else {
            homeless.push(own.join("::"));
            continue;
        };
        let uses = graph.entry(from.to_string()).or_default();
        let code = code_of(&file);
        let mut used = paths_after(&code, "crate::");
        // `super::x` from `a/b/c.rs` (module a::b::c) is `a::b::x`; from a
        // `mod.rs` (module a::b) it is `a::x`.
        let parent: Vec<String> = own[..own.len().saturating_sub(1)].to_vec();
        used.extend(paths_after(&code, "super::").into_iter().map(|p| {
            let ups = p.iter().take_while(|n| *n == "super").count();
            let base = &parent[..parent.len().saturating_sub(ups)];
            [base.to_vec(), p[ups..].to_vec()].concat()
        }));
        for path in used {
            let path = match path.first().and_then(|n| exports.get(n)) {
                Some(full) if path.len() == 1 || !rows.contains_key(&path[0]) => {
                    [full.clone(), path[1..].to_vec()].concat()
                }
                _ => path,
            };
            if let Some(to) = row_of(rows, &path).filter(|to| *to != from) {
                uses.insert(to.to_string());
            }
        }
    }
    (graph, homeless)
}

/// A cycle through `start`, if there is one.
fn cycle_from(graph: &Graph, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(next.clone());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn no_module_uses_one_that_uses_it_back() {
    let rows = table();
    let (graph, _) = edges(&rows);
    assert!(graph.len() >= 10, "the sources were not read: {graph:?}");
    let cycles: Vec<String> = graph
        .keys()
        .filter_map(|m| cycle_from(&graph, m))
        .map(|c| c.join(" -> "))
        .collect();
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn architecture_md_lists_every_module_and_what_it_uses() {
    let rows = table();
    assert!(
        rows.len() >= 10,
        "ARCHITECTURE.md's module table was not read: {rows:?}"
    );
    let (graph, homeless) = edges(&rows);
    assert!(
        homeless.is_empty(),
        "source files that belong to no row of ARCHITECTURE.md's module table: {homeless:?}"
    );
    let mut wrong = Vec::new();
    for (module, said) in &rows {
        let Some(real) = graph.get(module) else {
            wrong.push(format!("{module}: a row, but no source file"));
            continue;
        };
        let missing: Vec<&String> = real.difference(said).collect();
        let extra: Vec<&String> = said.difference(real).collect();
        if !missing.is_empty() || !extra.is_empty() {
            wrong.push(format!(
                "{module}: uses {} (the table misses {missing:?}, lists {extra:?} that it does not use)",
                real.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "docs/ARCHITECTURE.md's \"uses\" column is wrong:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_readers_of_this_test_work() {
    let graph: Graph = [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec!["a"])]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
        .collect();
    assert_eq!(cycle_from(&graph, "a").unwrap(), ["a", "b", "c", "a"]);
    assert_eq!(cycle_from(&graph, "d"), None);
    let joined = |paths: Vec<Vec<String>>| paths.into_iter().map(|p| p.join("::")).collect::<Vec<_>>();
    assert_eq!(
        joined(paths_after(
            "use crate::formats::{mp4::Movie, AudioFile}; crate::Limits::default(); x::crate::no",
            "crate::"
        )),
        ["formats::mp4::Movie", "formats::AudioFile", "Limits::default"]
    );
    let rows: BTreeMap<String, BTreeSet<String>> = ["formats", "formats::mp4"]
        .map(|m| (m.to_string(), BTreeSet::new()))
        .into_iter()
        .collect();
    let p = |s: &str| s.split("::").map(String::from).collect::<Vec<_>>();
    assert_eq!(row_of(&rows, &p("formats::mp4::boxes::Header")), Some("formats::mp4"));
    assert_eq!(row_of(&rows, &p("formats::AudioFile")), Some("formats"));
    assert_eq!(row_of(&rows, &p("checks::validate")), None);
    assert_eq!(path_of(Path::new("formats/mp4/mod.rs")), ["formats", "mp4"]);
}

/// README's layout table names every file and folder at the top of `src/`,
/// and every `src/` path it names exists.
#[test]
fn readme_layout_matches_the_folders() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let layout = readme
        .split("\n## Layout\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has a Layout section");
    let mut named = BTreeSet::new();
    for line in layout.lines().filter(|l| l.starts_with("| `src/")) {
        let first = line.trim_start_matches('|').split(" | ").next().unwrap_or_default();
        for path in first.split(',').map(|p| p.trim().trim_matches('`')) {
            assert!(
                root.join(path).exists(),
                "README's layout names {path}, which does not exist"
            );
            named.insert(path.trim_end_matches('/').to_string());
        }
    }
    let mut missing = Vec::new();
    for e in std::fs::read_dir(src()).unwrap() {
        let name = format!("src/{}", e.unwrap().file_name().to_string_lossy());
        if !named.contains(&name) {
            missing.push(name);
        }
    }
    missing.sort();
    assert!(missing.is_empty(), "README's layout table does not name {missing:?}");
}
