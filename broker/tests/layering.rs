//! Imports inside the `herald` crate run one way. docs/architecture.md lists the layers, top
//! to bottom, on its "Layers, top to bottom:" line; this test reads that line and every file
//! under broker/src, and fails for each `crate::` or `super::` path (in a `use` or anywhere in
//! code) that names a module in the file's own layer or above it. A module may always use
//! itself. Unit tests inside broker/src follow the same rule (a test needing an upper layer
//! belongs in broker/tests/); comments, doc links and string literals are not imports.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

const LAYERS_LINE: &str = "Layers, top to bottom:";

/// Layers from the top: each a set of top-level modules (`lib` and `main` are the crate
/// roots) that may import any module of a lower layer, and none of their own or higher.
#[derive(Debug, PartialEq)]
struct Layers(Vec<Vec<String>>);

impl Layers {
    /// Reads the `Layers, top to bottom:` sentence: layers separated by `→`, peers by `,`,
    /// each module in backticks, up to the first `.` after the list.
    fn from_docs(text: &str) -> Layers {
        let start = text
            .find(LAYERS_LINE)
            .unwrap_or_else(|| panic!("docs/architecture.md has no {LAYERS_LINE:?} sentence"));
        let rest = &text[start + LAYERS_LINE.len()..];
        let end = rest.find('.').expect("the layer list ends with a period");
        let layers: Vec<Vec<String>> = rest[..end]
            .split('→')
            .map(|layer| {
                layer
                    .split('`')
                    .skip(1)
                    .step_by(2)
                    .map(str::to_owned)
                    .collect()
            })
            .collect();
        assert!(
            layers.len() > 1 && layers.iter().all(|l| !l.is_empty()),
            "cannot read the layers from {:?}",
            &rest[..end]
        );
        Layers(layers)
    }

    fn rank(&self, module: &str) -> Option<usize> {
        self.0.iter().position(|l| l.iter().any(|m| m == module))
    }

    fn describe(&self) -> String {
        let layers: Vec<String> = self.0.iter().map(|l| l.join(", ")).collect();
        layers.join(" → ")
    }
}

/// One import against the rule.
#[derive(Debug, PartialEq)]
struct Violation {
    file: String,
    line: usize,
    path: String,
    rule: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: `{}`: {}",
            self.file, self.line, self.path, self.rule
        )
    }
}

/// The module path of a file under src: `routing/queue/mod.rs` → `[routing, queue]`,
/// `pattern/parse.rs` → `[pattern, parse]`, the crate roots → `[lib]` / `[main]`.
fn module_path(file: &str) -> Vec<String> {
    let file = file.strip_suffix(".rs").expect("a .rs file");
    let mut parts: Vec<String> = file.split('/').map(str::to_owned).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The file's text with comments, string and character literals blanked (newlines kept, so
/// line numbers stay right).
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if c == 'r' && matches!(next, Some('"') | Some('#')) && raw_string_start(&chars, i) {
            // A raw string: r"…", r#"…"#, br"…", …
            let hashes = chars[i + 1..].iter().take_while(|&&h| h == '#').count();
            if chars.get(i + 1 + hashes) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            i += hashes + 2;
            while i < chars.len() {
                if chars[i] == '"' && chars[i + 1..].iter().take(hashes).all(|&h| h == '#') {
                    i += hashes + 1;
                    break;
                }
                blank(&mut out, chars[i]);
                i += 1;
            }
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if let Some(&c) = chars.get(i) {
                    blank(&mut out, c);
                }
                i += 1;
            }
            i += 1;
        } else if c == '\'' && next == Some('\\') {
            // An escaped character literal: '\n', '\'', '\u{..}'.
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Whether the `r` at `i` starts a raw string (`r"`, `br"`) rather than ending a name.
fn raw_string_start(chars: &[char], i: usize) -> bool {
    let ident = |j: usize| chars[j].is_alphanumeric() || chars[j] == '_';
    match i {
        0 => true,
        1 => chars[0] == 'b' || !ident(0),
        _ => !ident(i - 1) || (chars[i - 1] == 'b' && !ident(i - 2)),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Other,
}

fn tokens(code: &str) -> Vec<(Token, usize)> {
    let chars: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push((Token::Ident(chars[start..i].iter().collect()), line));
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push((Token::PathSep, line));
            i += 2;
        } else {
            out.push((
                match c {
                    '{' => Token::Open,
                    '}' => Token::Close,
                    ',' => Token::Comma,
                    _ => Token::Other,
                },
                line,
            ));
            i += 1;
        }
    }
    out
}

/// Every path in `source` (the file at `file` under src) that leaves its top-level module:
/// the path as written and the crate-level module it names, with its line.
fn crate_paths(file: &str, source: &str) -> Vec<(usize, String, String)> {
    let toks = tokens(&code_only(source));
    let file_module = module_path(file);
    // Inline `mod name { … }` blocks open at these brace depths, so `super` inside one
    // refers to the module around it.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut found = Vec::new();
    let ident = |k: usize| match toks.get(k) {
        Some((Token::Ident(s), _)) => Some(s.as_str()),
        _ => None,
    };
    let mut k = 0;
    while k < toks.len() {
        let (tok, line) = &toks[k];
        match tok {
            Token::Open => depth += 1,
            Token::Close => {
                depth -= 1;
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            Token::Ident(word) if word == "mod" => {
                if let (Some(name), Some((Token::Open, _))) = (ident(k + 1), toks.get(k + 2)) {
                    inline.push((name.to_owned(), depth));
                }
            }
            // `$crate` in a macro reads as `crate`: the crate's own root.
            Token::Ident(word)
                if (word == "crate" || word == "super")
                    && toks.get(k + 1).map(|t| &t.0) == Some(&Token::PathSep)
                    && k.checked_sub(1).and_then(ident) != Some("in")
                    // `a::crate` is not a path root; `pub(in crate::x)` is visibility.
                    && toks.get(k.wrapping_sub(1)).map(|t| &t.0) != Some(&Token::PathSep) =>
            {
                let mut here: Vec<String> = file_module.clone();
                here.extend(inline.iter().map(|(name, _)| name.clone()));
                if ["lib", "main"].contains(&here[0].as_str()) {
                    here.clear();
                }
                let mut written = vec![word.clone()];
                let mut j = k;
                if word == "crate" {
                    here.clear();
                    j += 2;
                } else {
                    while ident(j) == Some("super")
                        && toks.get(j + 1).map(|t| &t.0) == Some(&Token::PathSep)
                    {
                        here.pop();
                        if j != k {
                            written.push("super".to_owned());
                        }
                        j += 2;
                    }
                }
                if !here.is_empty() {
                    // Still inside a top-level module: not a crate-level import.
                    k = j;
                    continue;
                }
                // `crate::{a::X, b}`: each item names its own module.
                let roots: Vec<(String, String)> = if toks.get(j).map(|t| &t.0)
                    == Some(&Token::Open)
                {
                    group_roots(&toks, j)
                        .into_iter()
                        .map(|(root, item)| (root, format!("{}::{{{item}}}", written.join("::"))))
                        .collect()
                } else {
                    let mut path = written.clone();
                    let mut m = j;
                    while let Some(name) = ident(m) {
                        path.push(name.to_owned());
                        if toks.get(m + 1).map(|t| &t.0) != Some(&Token::PathSep) {
                            break;
                        }
                        m += 2;
                    }
                    match ident(j) {
                        Some(root) => vec![(root.to_owned(), path.join("::"))],
                        // `use super::*` from a top-level file: the whole crate root.
                        None if toks.get(j).map(|t| &t.0) == Some(&Token::Other) => {
                            vec![("*".to_owned(), format!("{}::*", written.join("::")))]
                        }
                        None => Vec::new(),
                    }
                };
                for (root, shown) in roots {
                    found.push((*line, shown, root));
                }
                k = j;
                continue;
            }
            _ => {}
        }
        k += 1;
    }
    found
}

/// The first name of each item of the brace group opening at `open`, with the item's text.
fn group_roots(toks: &[(Token, usize)], open: usize) -> Vec<(String, String)> {
    let mut roots = Vec::new();
    let mut depth = 0;
    let mut item = String::new();
    let mut root: Option<String> = None;
    for (tok, _) in &toks[open..] {
        match tok {
            Token::Open => {
                depth += 1;
                if depth > 1 {
                    item.push('{');
                }
                continue;
            }
            Token::Close => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
                item.push('}');
                continue;
            }
            Token::Comma if depth == 1 => {
                let text = std::mem::take(&mut item);
                if let Some(r) = root.take() {
                    roots.push((r, text));
                }
                continue;
            }
            Token::Ident(name) => {
                if root.is_none() && depth == 1 && name != "self" {
                    root = Some(name.clone());
                }
                item.push_str(name);
            }
            Token::PathSep => item.push_str("::"),
            Token::Comma => item.push_str(", "),
            Token::Other => item.push('*'),
        }
    }
    if let Some(r) = root {
        roots.push((r, item));
    }
    roots
}

/// The imports in `source` (the file `file`, relative to src) that break `layers`.
fn violations(layers: &Layers, file: &str, source: &str) -> Vec<Violation> {
    let own = module_path(file)[0].clone();
    let Some(own_rank) = layers.rank(&own) else {
        return vec![Violation {
            file: file.to_owned(),
            line: 1,
            path: own.clone(),
            rule: format!(
                "module `{own}` is in no layer; place it in docs/architecture.md's {LAYERS_LINE:?} sentence"
            ),
        }];
    };
    let mut found = Vec::new();
    for (line, path, root) in crate_paths(file, source) {
        if root == own {
            continue;
        }
        let rule = match layers.rank(&root) {
            Some(rank) if rank > own_rank => continue,
            Some(rank) if rank == own_rank => format!(
                "`{own}` and `{root}` are peers in one layer and may not import each other (layers: {})",
                layers.describe()
            ),
            Some(_) => format!(
                "`{own}` may not import `{root}`, a layer above it; imports run downward only: {}",
                layers.describe()
            ),
            None if root == "*" => {
                "a glob of the crate root reaches every layer; name the modules used".to_owned()
            }
            None => format!("`{root}` is no module in any layer: {}", layers.describe()),
        };
        found.push(Violation {
            file: file.to_owned(),
            line,
            path,
            rule,
        });
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn documented_layers() -> Layers {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = fs::read_to_string(root.join("../docs/architecture.md")).unwrap();
    Layers::from_docs(&docs)
}

#[test]
fn imports_run_one_way() {
    let layers = documented_layers();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(files.len() > 20, "broker/src was not found");
    let mut broken = Vec::new();
    let mut imports = 0;
    for path in &files {
        let file = path
            .strip_prefix(&src)
            .unwrap()
            .to_str()
            .unwrap()
            .replace('\\', "/");
        let source = fs::read_to_string(path).unwrap();
        imports += crate_paths(&file, &source).len();
        broken.extend(violations(&layers, &file, &source));
    }
    // A reader that found nothing would pass vacuously.
    assert!(imports > 50, "only {imports} crate paths found");
    let report: Vec<String> = broken.iter().map(|v| format!("broker/src/{v}")).collect();
    assert!(
        broken.is_empty(),
        "{} import(s) run the wrong way:\n{}",
        broken.len(),
        report.join("\n")
    );
}

#[test]
fn every_module_sits_in_one_layer() {
    let layers = documented_layers();
    let mut seen = BTreeMap::new();
    for (rank, layer) in layers.0.iter().enumerate() {
        for module in layer {
            assert!(
                seen.insert(module.clone(), rank).is_none(),
                "`{module}` is listed twice"
            );
        }
    }
    for root in [
        "lib", "main", "config", "routing", "session", "metrics", "pattern",
    ] {
        assert!(seen.contains_key(root), "`{root}` is in no layer");
    }
}

fn sample_layers() -> Layers {
    Layers::from_docs(
        "Layers, top to bottom: `lib`, `main` → `server` → `session` → `routing` → `access`, `auth` → `metrics`. More.",
    )
}

#[test]
fn the_layer_sentence_is_read() {
    let names = |layer: &[&str]| layer.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        sample_layers(),
        Layers(vec![
            names(&["lib", "main"]),
            names(&["server"]),
            names(&["session"]),
            names(&["routing"]),
            names(&["access", "auth"]),
            names(&["metrics"]),
        ])
    );
}

#[test]
fn a_planted_upward_import_is_caught() {
    let source = "//! Counters.\nuse std::sync::Arc;\n\nuse crate::session::close::CloseReason;\n";
    let found = violations(&sample_layers(), "metrics.rs", source);
    assert_eq!(found.len(), 1, "{found:?}");
    let text = found[0].to_string();
    assert!(
        text.starts_with("metrics.rs:4: `crate::session::close::CloseReason`: `metrics` may not import `session`, a layer above it"),
        "{text}"
    );
    assert!(text.contains("server → session → routing"), "{text}");
}

#[test]
fn paths_in_code_groups_and_through_super_are_read() {
    let layers = sample_layers();
    let paths = |file: &str, source: &str| -> Vec<String> {
        violations(&layers, file, source)
            .into_iter()
            .map(|v| format!("{}:{}", v.line, v.path))
            .collect()
    };
    // In a function body, and among downward items of a group.
    assert_eq!(
        paths(
            "routing/topic.rs",
            "use crate::{metrics::Stats, session::Session};\nfn f() {\n    crate::server::stop();\n}\n"
        ),
        ["1:crate::{session::Session}", "3:crate::server::stop"]
    );
    // `super` from a top-level file leaves the module; from a nested one it does not.
    assert_eq!(
        paths("access.rs", "use super::session::X;\n"),
        ["1:super::session::X"]
    );
    assert_eq!(paths("access.rs", "use super::*;\n"), ["1:super::*"]);
    assert_eq!(
        paths("routing/queue/fifo.rs", "use super::super::topic::X;\n"),
        Vec::<String>::new()
    );
    // Inside an inline module `super` is the file's module; one more level leaves it.
    assert_eq!(
        paths(
            "routing/topic.rs",
            "#[cfg(test)]\nmod tests {\n    use super::*;\n    use super::super::session::X;\n}\n"
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        paths(
            "access.rs",
            "#[cfg(test)]\nmod tests {\n    use super::*;\n    use super::super::session::X;\n}\nuse super::auth::Y;\n"
        ),
        ["4:super::super::session::X", "6:super::auth::Y"]
    );
}

#[test]
fn peers_may_not_import_each_other_and_comments_are_not_imports() {
    let layers = sample_layers();
    let found = violations(&layers, "access.rs", "use crate::auth::Identity;\n");
    assert_eq!(found.len(), 1);
    assert!(found[0].rule.contains("peers in one layer"), "{}", found[0]);
    let quiet = "/// See [`x`](crate::server::X).\n// crate::server\n/* crate::session /* nested */ crate::server */\n\
                 const A: &str = \"crate::server::X\";\nconst B: &str = r#\"crate::server\"#;\nconst C: char = '\\'';\n\
                 pub(crate) fn f<'a>(x: &'a str) -> &'a str { x }\npub(in crate::metrics) fn g() {}\n";
    assert_eq!(violations(&layers, "access.rs", quiet), Vec::new());
    let unknown = violations(&layers, "nowhere.rs", "");
    assert!(unknown[0].rule.contains("in no layer"), "{}", unknown[0]);
}
