//! The layering rule, checked: every `crate::<module>` reference in `src/` must be allowed by the
//! dependency table in ARCHITECTURE.md ("Allowed dependencies"), and that table must be free of
//! cycles. In the spirit of rust-analyzer's tidy tests: the table is the documentation, and this
//! test fails as soon as someone adds an upward import without changing the documented layers.
//! Unit-test code (`tests.rs` files, `tests/` directories, and everything from a file's first
//! `#[cfg(test)]` on) may wire real stages together and is not checked.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The allowed-dependency table: module → modules it may name as `crate::<module>`.
fn allowed_table() -> BTreeMap<String, BTreeSet<String>> {
    let doc = fs::read_to_string(Path::new(ROOT).join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let section = doc
        .split("## Allowed dependencies")
        .nth(1)
        .expect("ARCHITECTURE.md has a section \"## Allowed dependencies\"");
    let mut table = BTreeMap::new();
    for line in section.lines() {
        if line.starts_with("## ") {
            break;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | `module` | `a`, `b` | why |
        if cells.len() < 4 || !cells[1].starts_with('`') {
            continue;
        }
        let module = cells[1].trim_matches('`').to_string();
        let deps: BTreeSet<String> = cells[2]
            .split(',')
            .map(|d| d.trim().trim_matches('`').to_string())
            .filter(|d| !d.is_empty() && d != "—" && d != "-")
            .collect();
        assert!(
            table.insert(module.clone(), deps).is_none(),
            "module `{module}` appears twice in the table"
        );
    }
    assert!(!table.is_empty(), "the dependency table is empty");
    table
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("read src/")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file under `src/` belongs to (`src/store/keys.rs` → `store`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("non-empty");
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_string()
}

/// Removes `//` comments (line, doc) and string literals' contents, roughly: enough that
/// `crate::` in prose or in a string does not count.
fn code_only(line: &str) -> String {
    let mut out = String::new();
    let mut in_str = false;
    let mut prev = '\0';
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if in_str {
            if c == '"' && prev != '\\' {
                in_str = false;
                out.push('"');
            }
            prev = if prev == '\\' && c == '\\' { '\0' } else { c };
            continue;
        }
        if c == '/' && chars.peek() == Some(&'/') {
            break;
        }
        if c == '"' {
            in_str = true;
            out.push('"');
        } else {
            out.push(c);
        }
        prev = c;
    }
    out
}

/// Every top-level module named after `crate::` in `text`, including each name of a
/// `crate::{a::X, b}` group.
fn crate_refs(text: &str) -> Vec<String> {
    let mut refs = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        // `$crate::` and `foo_crate::` are not ours.
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut at_start = true;
            let mut ident = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => {
                        at_start = true;
                        continue;
                    }
                    _ => {}
                }
                if depth == 1 && at_start {
                    if c.is_alphanumeric() || c == '_' {
                        ident.push(c);
                        continue;
                    }
                    if !ident.is_empty() {
                        refs.push(std::mem::take(&mut ident));
                        at_start = false;
                    }
                }
            }
            if !ident.is_empty() {
                refs.push(ident);
            }
        } else {
            let ident: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !ident.is_empty() {
                refs.push(ident);
            }
        }
    }
    refs
}

#[test]
fn imports_follow_the_documented_layers() {
    let table = allowed_table();
    let src = Path::new(ROOT).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    let mut seen_modules = BTreeSet::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" {
            continue;
        }
        seen_modules.insert(module.clone());
        let Some(allowed) = table.get(&module) else {
            violations.push(format!(
                "{}: module `{module}` has no row in ARCHITECTURE.md's dependency table",
                file.display()
            ));
            continue;
        };
        let rel = file.strip_prefix(&src).unwrap_or(file);
        if rel.file_name().is_some_and(|n| n == "tests.rs")
            || rel.components().any(|c| c.as_os_str() == "tests")
        {
            continue;
        }
        let text = fs::read_to_string(file).expect("read source");
        let text = text.split("\n#[cfg(test)]").next().unwrap_or("");
        // Join lines so that a `use crate::{…}` group spanning lines is seen whole.
        let code: String = text.lines().map(code_only).collect::<Vec<_>>().join("\n");
        for dep in crate_refs(&code) {
            if dep == module || dep == "self" || dep == "super" {
                continue;
            }
            if !allowed.contains(&dep) {
                violations.push(format!(
                    "{}: `{module}` uses `crate::{dep}`, which the table does not allow",
                    file.strip_prefix(ROOT).unwrap_or(file).display()
                ));
            }
        }
    }
    for module in table.keys() {
        assert!(
            seen_modules.contains(module),
            "the table names `{module}`, which is not a module under src/"
        );
    }
    violations.sort();
    violations.dedup();
    assert!(
        violations.is_empty(),
        "upward or undocumented imports (fix the import, or change the layering in \
         ARCHITECTURE.md on purpose):\n  {}",
        violations.join("\n  ")
    );
}

#[test]
fn the_documented_layers_have_no_cycle() {
    let table = allowed_table();
    // Depth-first search for a back edge.
    fn visit(
        m: &str,
        table: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match state.get(m) {
            Some(2) => return None,
            Some(1) => {
                let start = path.iter().position(|p| p == m).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(m.to_string());
                return Some(cycle);
            }
            _ => {}
        }
        state.insert(m.to_string(), 1);
        path.push(m.to_string());
        for d in table.get(m).into_iter().flatten() {
            if let Some(c) = visit(d, table, state, path) {
                return Some(c);
            }
        }
        path.pop();
        state.insert(m.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in table.keys() {
        if let Some(cycle) = visit(m, &table, &mut state, &mut Vec::new()) {
            panic!("the dependency table has a cycle: {}", cycle.join(" → "));
        }
        for d in &table[m] {
            assert!(
                table.contains_key(d),
                "`{m}` may use `{d}`, which has no row of its own"
            );
        }
    }
}

#[test]
fn the_reference_scanner_sees_groups_and_ignores_prose() {
    let code =
        code_only("use crate::{model::Detection, query::{Page, Binding}, ports}; // crate::cli");
    assert_eq!(crate_refs(&code), vec!["model", "query", "ports"]);
    assert_eq!(
        crate_refs(&code_only(r#"let s = "crate::api";"#)),
        Vec::<String>::new()
    );
    assert_eq!(
        crate_refs("$crate::x foo_crate::y crate::store::Store"),
        vec!["store"]
    );
}
