//! No module imports itself in a loop: the crate's modules form a layering a reader can follow
//! from `domain` up to `cli`, and a new cycle fails this test with the files that tie it.
//!
//! Two levels are checked, because a cycle hurts at both: between the top-level modules
//! (`admission` ↔ `telemetry`), and between sibling files of one folder (`memo/parse.rs` ↔
//! `memo/assemble.rs`). A parent's `mod.rs` and its children are exempt from the second: the
//! parent declares and re-exports its children, and children use the parent's shared types by
//! design. References are read from the source text (`crate::…` and `super::…` paths,
//! grouped imports included), with comments left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A source file as a module path: `src/store/sqlite.rs` → `["store", "sqlite"]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without `//` comments (doc links name modules without depending on them).
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            // A `//` inside a string (a URL) is rare in paths that matter; cutting there only
            // drops references, never invents one.
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path that starts at `root` (`crate` or `super`), grouped imports expanded:
/// `crate::{a::B, c}` gives `[a, B]` and `[c]`.
fn paths_from(text: &str, root: &str) -> Vec<Vec<String>> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let needle = format!("{root}::");
    let mut at = 0;
    while let Some(i) = text[at..].find(&needle) {
        let start = at + i;
        at = start + needle.len();
        let before = start.checked_sub(1).map(|j| bytes[j]);
        if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        // `super::super::x` is read as one level up by the caller; here only the first hop.
        parse_tail(text, at, Vec::new(), &mut out);
    }
    out
}

/// Reads `a::b::{c, d::e}` from `pos`, pushing every complete path onto `out`.
fn parse_tail(text: &str, mut pos: usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let bytes = text.as_bytes();
    let mut path = prefix;
    loop {
        while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
            pos += 1;
        }
        if pos < bytes.len() && bytes[pos] == b'{' {
            // A group: each comma-separated member continues the path.
            let mut depth = 0;
            let mut member_start = pos + 1;
            let mut i = pos;
            while i < bytes.len() {
                match bytes[i] {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            parse_tail(&text[..i], member_start, path.clone(), out);
                            return;
                        }
                    }
                    b',' if depth == 1 => {
                        parse_tail(&text[..i], member_start, path.clone(), out);
                        member_start = i + 1;
                    }
                    _ => {}
                }
                i += 1;
            }
            return;
        }
        let ident_start = pos;
        while pos < bytes.len() && (bytes[pos].is_ascii_alphanumeric() || bytes[pos] == b'_') {
            pos += 1;
        }
        if pos == ident_start {
            break;
        }
        path.push(text[ident_start..pos].to_string());
        if text[pos..].starts_with("::") {
            pos += 2;
        } else {
            break;
        }
    }
    if !path.is_empty() {
        out.push(path);
    }
}

/// The longest known module that `path` starts with.
fn resolve(path: &[String], modules: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
}

/// Every module a file refers to, as absolute module paths.
fn references(
    file_module: &[String],
    text: &str,
    modules: &BTreeSet<Vec<String>>,
) -> BTreeSet<Vec<String>> {
    let text = without_comments(text);
    let mut refs = BTreeSet::new();
    for p in paths_from(&text, "crate") {
        if let Some(m) = resolve(&p, modules) {
            refs.insert(m);
        }
    }
    // `super` of module a::b (file `a/b.rs` or `a/b/mod.rs`) is `a`.
    let mut parent = file_module.to_vec();
    parent.pop();
    for p in paths_from(&text, "super") {
        let mut abs = parent.clone();
        abs.extend(p);
        if let Some(m) = resolve(&abs, modules) {
            refs.insert(m);
        }
    }
    refs
}

/// A cycle in `edges`, if any, as the list of nodes around it.
fn find_cycle<N: Ord + Clone>(edges: &BTreeMap<N, BTreeSet<N>>) -> Option<Vec<N>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit<N: Ord + Clone>(
        n: &N,
        edges: &BTreeMap<N, BTreeSet<N>>,
        marks: &mut BTreeMap<N, Mark>,
        stack: &mut Vec<N>,
    ) -> Option<Vec<N>> {
        match marks.get(n) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = stack.iter().position(|s| s == n).unwrap_or(0);
                let mut cycle = stack[from..].to_vec();
                cycle.push(n.clone());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(n.clone(), Mark::Open);
        stack.push(n.clone());
        for m in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, edges, marks, stack) {
                return Some(c);
            }
        }
        stack.pop();
        marks.insert(n.clone(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for n in edges.keys() {
        let mut stack = Vec::new();
        if let Some(c) = visit(n, edges, &mut marks, &mut stack) {
            return Some(c);
        }
    }
    None
}

struct Crate {
    /// module path → (file, its references)
    files: BTreeMap<Vec<String>, (PathBuf, BTreeSet<Vec<String>>)>,
}

fn read_crate() -> Crate {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    paths.retain(|p| p.file_name().is_some_and(|n| n != "main.rs"));
    let modules: BTreeSet<Vec<String>> = paths.iter().map(|p| module_path(&src, p)).collect();
    let mut files = BTreeMap::new();
    for p in &paths {
        let m = module_path(&src, p);
        let text = std::fs::read_to_string(p).expect("read source");
        let refs = references(&m, &text, &modules);
        files.insert(m, (p.clone(), refs));
    }
    Crate { files }
}

fn show(m: &[String]) -> String {
    if m.is_empty() {
        "crate".to_string()
    } else {
        m.join("::")
    }
}

#[test]
fn top_level_modules_form_no_cycle() {
    let krate = read_crate();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut why: BTreeMap<(String, String), String> = BTreeMap::new();
    for (m, (file, refs)) in &krate.files {
        let Some(top) = m.first() else { continue };
        for r in refs {
            let Some(other) = r.first() else { continue };
            if other != top {
                edges.entry(top.clone()).or_default().insert(other.clone());
                why.entry((top.clone(), other.clone()))
                    .or_insert_with(|| file.display().to_string());
            }
        }
    }
    if let Some(cycle) = find_cycle(&edges) {
        let ties: Vec<String> = cycle
            .windows(2)
            .map(|w| {
                let file = why.get(&(w[0].clone(), w[1].clone())).cloned();
                format!("{} -> {} (in {})", w[0], w[1], file.unwrap_or_default())
            })
            .collect();
        panic!("module cycle: {}", ties.join(", "));
    }
}

#[test]
fn sibling_files_form_no_cycle() {
    let krate = read_crate();
    // Edges between files of the same folder only, parents and children left out.
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (m, (_, refs)) in &krate.files {
        for r in refs {
            let siblings = !m.is_empty()
                && !r.is_empty()
                && m.len() == r.len()
                && m[..m.len() - 1] == r[..r.len() - 1]
                && m != r;
            // A reference into a sibling's child counts as one to the sibling.
            let into_child = !m.is_empty()
                && r.len() > m.len()
                && r[..m.len() - 1] == m[..m.len() - 1]
                && r[m.len() - 1] != m[m.len() - 1];
            if siblings {
                edges.entry(m.clone()).or_default().insert(r.clone());
            } else if into_child {
                edges
                    .entry(m.clone())
                    .or_default()
                    .insert(r[..m.len()].to_vec());
            }
        }
    }
    if let Some(cycle) = find_cycle(&edges) {
        let names: Vec<String> = cycle.iter().map(|m| show(m)).collect();
        panic!("file cycle: {}", names.join(" -> "));
    }
}

#[test]
fn the_reader_finds_grouped_and_relative_imports() {
    let modules: BTreeSet<Vec<String>> = [
        vec!["a".to_string()],
        vec!["a".to_string(), "b".to_string()],
        vec!["a".to_string(), "c".to_string()],
        vec!["d".to_string()],
    ]
    .into_iter()
    .collect();
    let text = "use crate::{d::X, a::c::{Y, Z}};\n// crate::a::b::Nope\nuse super::b::W;\n";
    let refs = references(&["a".into(), "c".into()], text, &modules);
    let want: BTreeSet<Vec<String>> = [
        vec!["d".to_string()],
        vec!["a".to_string(), "c".to_string()],
        vec!["a".to_string(), "b".to_string()],
    ]
    .into_iter()
    .collect();
    assert_eq!(refs, want);
    let mut edges = BTreeMap::new();
    edges.insert(1, BTreeSet::from([2]));
    edges.insert(2, BTreeSet::from([1]));
    assert_eq!(find_cycle(&edges), Some(vec![1, 2, 1]));
    edges.insert(2, BTreeSet::new());
    assert_eq!(find_cycle(&edges), None);
}
