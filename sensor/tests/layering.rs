//! The dependency direction of the library, read from its source: every `crate::<module>`
//! path in code (comments aside) is an edge from the file's top-level module to that
//! module. A stage may use earlier stages and the shared modules, never a later stage
//! (and so never `export` or `runtime` from a stage before them); the shared modules use
//! only what is listed for them; and the module graph has no cycle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The data path, in order.
/// `control` (the control plane) comes last: it steers the runtime, and nothing on the
/// data path may reach it.
const STAGES: [&str; 10] =
    ["capture", "decode", "flow", "fingerprint", "features", "inference", "learn", "export", "runtime", "control"];

/// Modules every stage may use, with what each of them may use itself.
const SHARED: [(&str, &[&str]); 4] =
    [("error", &[]), ("metric_names", &[]), ("config", &["error"]), ("stats", &["decode"])];

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("src dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Top-level module of a file under `src/` (`src/flow/mod.rs` -> flow, `src/stats.rs` -> stats).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("under src");
    let first = rel.components().next().expect("component").as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_owned()
}

/// `crate::X` references in code lines (line comments and doc comments skipped).
fn references(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            // `crate::{a, b::c}`: every first name inside the braces (on this line).
            let names: Vec<&str> = match after.strip_prefix('{') {
                Some(inner) => inner
                    .split('}')
                    .next()
                    .unwrap_or("")
                    .split(',')
                    .map(|n| n.trim().split("::").next().unwrap_or(""))
                    .collect(),
                None => vec![after],
            };
            for n in names {
                let name: String = n.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    out.insert(name);
                }
            }
            rest = after;
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rs_files(&src, &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let m = module_of(&src, &f);
        if m == "main" || m == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&f).expect("read source");
        let refs = references(&text);
        g.entry(m.clone()).or_default().extend(refs.into_iter().filter(|r| *r != m));
    }
    g
}

#[test]
fn stages_use_only_earlier_stages_and_shared_modules() {
    let g = graph();
    let shared: BTreeMap<&str, &[&str]> = SHARED.into_iter().collect();
    let mut wrong = Vec::new();
    for (m, uses) in &g {
        let allowed: BTreeSet<&str> = if let Some(pos) = STAGES.iter().position(|s| s == m) {
            STAGES[..pos].iter().copied().chain(shared.keys().copied()).collect()
        } else if let Some(own) = shared.get(m.as_str()) {
            own.iter().copied().collect()
        } else {
            wrong.push(format!("{m}: neither a stage nor a shared module (add it to STAGES or SHARED)"));
            continue;
        };
        for u in uses {
            if !allowed.contains(u.as_str()) {
                wrong.push(format!("{m} uses crate::{u}"));
            }
        }
    }
    assert!(wrong.is_empty(), "dependency direction broken:\n{}", wrong.join("\n"));
}

// Depth-first search; a module met again on the current path closes a cycle.
fn visit(
    m: &str,
    g: &BTreeMap<String, BTreeSet<String>>,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(i) = path.iter().position(|p| p == m) {
        return Some(path[i..].iter().cloned().chain([m.to_owned()]).collect());
    }
    if !done.insert(m.to_owned()) {
        return None;
    }
    path.push(m.to_owned());
    for n in g.get(m).into_iter().flatten() {
        if let Some(c) = visit(n, g, path, done) {
            return Some(c);
        }
    }
    path.pop();
    None
}

#[test]
fn the_module_graph_has_no_cycle() {
    let g = graph();
    let mut done = BTreeSet::new();
    for m in g.keys() {
        let mut path = Vec::new();
        if let Some(c) = visit(m, &g, &mut path, &mut done) {
            panic!("cycle: {}", c.join(" -> "));
        }
    }
}

#[test]
fn the_reader_finds_references_in_code_only() {
    let refs = references(
        "use crate::flow::X; // crate::runtime\n/// [`crate::export`]\nlet a = crate::stats::S;\nuse crate::{learn::Head, error};",
    );
    assert_eq!(refs, ["error", "flow", "learn", "stats"].into_iter().map(String::from).collect());
}

/// What the parser crate (`parse/`, `nightjar-parse`) may depend on: parsers, hashes and
/// the types shared with the XDP program. No classifier, no metrics, no runtime: the
/// fuzz targets of the decoders build it alone, and a parser cannot reach a counter or a
/// model by accident.
const PARSER_CRATE_DEPENDENCIES: [&str; 8] =
    ["etherparse", "httparse", "md-5", "nightjar-common", "sha1", "sha2", "tls-parser", "x509-parser"];

#[test]
fn the_parser_crate_depends_on_parsers_only() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../parse/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("parse/Cargo.toml");
    let doc: toml::Table = text.parse().expect("parse/Cargo.toml is TOML");
    let deps = doc.get("dependencies").and_then(toml::Value::as_table).expect("[dependencies]");
    let extra: Vec<&String> = deps.keys().filter(|d| !PARSER_CRATE_DEPENDENCIES.contains(&d.as_str())).collect();
    assert!(extra.is_empty(), "nightjar-parse depends on {extra:?}: parsers only (see PARSER_CRATE_DEPENDENCIES)");
    // The types shared with the XDP program come without aya (`user` feature off).
    let common = deps.get("nightjar-common").and_then(toml::Value::as_table).expect("nightjar-common");
    assert!(common.get("features").is_none(), "nightjar-parse must not turn on nightjar-common's features");
    for table in ["build-dependencies", "features"] {
        assert!(doc.get(table).is_none(), "nightjar-parse has [{table}]: keep it plain");
    }
}
