//! `linkwise topo -o dot`: the Graphviz text is read back here with a small DOT
//! tokenizer (no Graphviz needed): strings are balanced and escaped once, labels break
//! lines with DOT's `\n`, and every node an edge links is declared. One test renders
//! through Graphviz itself when it is installed (`cargo test -- --ignored`).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::process::Command;

use linkwise_testkit::cli::{ok, profiles};
use serde_json::Value;

/// A DOT token: a quoted string (its raw text between the quotes, escapes kept), a
/// bare word, or punctuation (`--` is one token).
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Str(String),
    Word(String),
    Punct(String),
}

/// Splits DOT text into tokens; panics on an unterminated string or a backslash
/// before anything but `"`, `\` or `n` inside a string (the escapes linkwise means to
/// write: an escaped quote, a literal backslash, a centred line break).
fn tokens(dot: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut it = dot.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '"' => {
                let mut s = String::new();
                loop {
                    match it.next() {
                        Some('\\') => {
                            let e = it.next().expect("backslash at the end of the text");
                            assert!(
                                matches!(e, '"' | '\\' | 'n'),
                                "unexpected escape \\{e} in {s:?}"
                            );
                            s.push('\\');
                            s.push(e);
                        }
                        Some('"') => break,
                        Some(ch) => {
                            assert!(ch != '\n', "raw newline inside string {s:?}");
                            s.push(ch);
                        }
                        None => panic!("unterminated string {s:?}"),
                    }
                }
                out.push(Tok::Str(s));
            }
            '-' if it.peek() == Some(&'-') => {
                it.next();
                out.push(Tok::Punct("--".into()));
            }
            c if c.is_whitespace() => {}
            c if c.is_alphanumeric() || c == '_' || c == '.' || c == '#' => {
                let mut w = c.to_string();
                while let Some(&n) = it.peek() {
                    if n.is_alphanumeric() || n == '_' || n == '.' {
                        w.push(n);
                        it.next();
                    } else {
                        break;
                    }
                }
                out.push(Tok::Word(w));
            }
            c => out.push(Tok::Punct(c.to_string())),
        }
    }
    out
}

/// The lines of a label as Graphviz shows them: `\n` breaks a line, `\\` is a
/// backslash, `\"` a quote.
fn label_lines(raw: &str) -> Vec<String> {
    let mut lines = vec![String::new()];
    let mut it = raw.chars();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.next() {
                Some('n') => lines.push(String::new()),
                Some(e) => lines.last_mut().unwrap().push(e),
                None => panic!("backslash at the end of {raw:?}"),
            }
        } else {
            lines.last_mut().unwrap().push(c);
        }
    }
    lines
}

/// What a DOT graph declares and links.
#[derive(Debug, Default)]
struct Graph {
    /// Node statements: id and its `label` attribute (raw, escapes kept).
    nodes: Vec<(String, Option<String>)>,
    /// Edge endpoints.
    edges: Vec<(String, String)>,
}

fn parse(dot: &str) -> Graph {
    let t = tokens(dot);
    let depth = t.iter().fold(0i32, |d, x| match x {
        Tok::Punct(p) if p == "{" || p == "[" => d + 1,
        Tok::Punct(p) if p == "}" || p == "]" => {
            assert!(d > 0, "unbalanced brackets");
            d - 1
        }
        _ => d,
    });
    assert_eq!(depth, 0, "unbalanced brackets");
    let mut g = Graph::default();
    let id = |x: &Tok| match x {
        Tok::Str(s) => Some(s.clone()),
        _ => None,
    };
    for i in 0..t.len() {
        if t[i] == Tok::Punct("--".into()) {
            let (a, b) = (
                id(&t[i - 1]).expect("edge tail"),
                id(&t[i + 1]).expect("edge head"),
            );
            g.edges.push((a, b));
        }
        // `"id" [` not preceded by `--`: a node statement.
        if let Tok::Str(s) = &t[i]
            && t.get(i + 1) == Some(&Tok::Punct("[".into()))
            && (i == 0 || t[i - 1] != Tok::Punct("--".into()))
        {
            let mut label = None;
            let mut j = i + 2;
            while t[j] != Tok::Punct("]".into()) {
                if t[j] == Tok::Word("label".into()) && t[j + 1] == Tok::Punct("=".into()) {
                    label = id(&t[j + 2]);
                }
                j += 1;
            }
            g.nodes.push((s.clone(), label));
        }
    }
    g
}

/// Every edge endpoint has a node statement with a label, and no node is declared twice.
fn assert_declared(dot: &str, what: &str) -> Graph {
    let g = parse(dot);
    let declared: BTreeSet<&str> = g.nodes.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        declared.len(),
        g.nodes.len(),
        "{what}: a node declared twice"
    );
    for (id, label) in &g.nodes {
        assert!(
            label.as_deref().is_some_and(|l| !l.is_empty()),
            "{what}: {id} has no label"
        );
    }
    for (a, b) in &g.edges {
        for end in [a, b] {
            assert!(
                declared.contains(end.as_str()),
                "{what}: edge end {end} is not declared"
            );
        }
    }
    g
}

#[test]
fn dot_declares_every_linked_node_for_every_profile() {
    let names = profiles();
    assert!(names.len() >= 5, "{names:?}");
    for p in &names {
        let dot = ok(&["topo", "--source", &format!("profile:{p}"), "-o", "dot"]);
        let g = assert_declared(&dot, p);
        assert!(
            !g.edges.is_empty() || p.starts_with("pcie"),
            "{p}: no edges"
        );
    }
}

/// Regression: the CPU a GPU reaches over NVLink Fusion sits on a NUMA node that holds
/// no GPU, and was linked without ever being declared (Graphviz then drew a bare
/// ellipse named `cpu:riscv-fusion:0`).
#[test]
fn dot_declares_a_cpu_on_a_numa_node_without_gpus() {
    let dot = ok(&["topo", "--source", "profile:riscv-fusion", "-o", "dot"]);
    let g = assert_declared(&dot, "riscv-fusion");
    let cpu = g
        .nodes
        .iter()
        .find(|(id, _)| id.starts_with("cpu:"))
        .expect("a CPU node");
    assert_eq!(cpu.1.as_deref(), Some("CPU NUMA 0"));
}

/// Regression: labels were written with a doubled backslash (`GPU0\\nNVIDIA H100`), so
/// Graphviz printed a literal `\n` instead of breaking the line.
#[test]
fn dot_labels_break_lines_instead_of_printing_backslash_n() {
    for p in profiles() {
        let dot = ok(&["topo", "--source", &format!("profile:{p}"), "-o", "dot"]);
        assert!(!dot.contains("\\\\n"), "{p}: a doubled backslash before n");
        let g = parse(&dot);
        let gpu = g
            .nodes
            .iter()
            .find(|(id, _)| id.starts_with("gpu:"))
            .and_then(|(_, l)| l.clone())
            .expect("a GPU label");
        let lines = label_lines(&gpu);
        assert!(lines.len() >= 2, "{p}: {gpu}");
        assert!(lines[0].starts_with("GPU"), "{p}: {gpu}");
    }
}

#[test]
fn dot_escapes_quotes_and_backslashes_in_names() {
    let snap = ok(&["discover", "--source", "profile:dgx-h100", "-o", "json"]);
    let mut v: Value = serde_json::from_str(&snap).unwrap();
    v["gpus"][0]["model"] = Value::from(r#"NVIDIA "H100" \n-ish"#);
    v["source"] = Value::from(r#"lab "rack 7" \ node"#);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.json");
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    let source = format!("snapshot:{}", path.display());
    let dot = ok(&["topo", "--source", &source, "-o", "dot"]);
    let g = assert_declared(&dot, "odd names");
    // The label's second line is the model, its quotes and backslash escaped once.
    let labels: Vec<&str> = g.nodes.iter().filter_map(|(_, l)| l.as_deref()).collect();
    let odd = r#"GPU0\nNVIDIA \"H100\" \\n-ish\nisland0"#;
    assert!(labels.contains(&odd), "{labels:?}");
    assert_eq!(
        label_lines(odd),
        ["GPU0", r#"NVIDIA "H100" \n-ish"#, "island0"],
        "{labels:?}"
    );
    // The graph title carries the source with its quotes and backslash escaped.
    assert!(
        dot.contains(r#"label="linkwise fabric: lab \"rack 7\" \\ node""#),
        "{dot}"
    );
}

/// Renders through Graphviz: the labels come out as separate text lines and nothing
/// shows a literal `\n`.
#[test]
#[ignore = "needs graphviz (dot)"]
fn graphviz_renders_every_profile_with_line_breaks() {
    for p in profiles() {
        let dot = ok(&["topo", "--source", &format!("profile:{p}"), "-o", "dot"]);
        let path = std::env::temp_dir().join(format!("linkwise-pictures-{p}.dot"));
        std::fs::write(&path, &dot).unwrap();
        let o = Command::new("dot")
            .args(["-Tsvg", &path.display().to_string()])
            .output()
            .expect("graphviz `dot` on PATH");
        let _ = std::fs::remove_file(&path);
        assert!(
            o.status.success(),
            "{p}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let svg = String::from_utf8_lossy(&o.stdout);
        let texts: Vec<&str> = svg
            .split("<text")
            .skip(1)
            .filter_map(|t| t.split_once('>').and_then(|(_, r)| r.split_once("</text>")))
            .map(|(t, _)| t)
            .collect();
        assert!(
            texts.iter().any(|t| t.starts_with("GPU") && t.len() <= 6),
            "{p}: no line holding the GPU name alone: {texts:?}"
        );
        assert!(
            texts.iter().all(|t| !t.contains("\\n")),
            "{p}: a literal \\n: {texts:?}"
        );
    }
}
