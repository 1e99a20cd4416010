//! The metrics reference in docs/metrics.md cannot drift from the code. Its
//! generated section is exactly what the metric definitions produce (regenerate with
//! `FW_REGENERATE_METRICS_DOC=1 cargo test --test metrics_docs`), its table parsed back gives
//! the definitions, both agree with the product's fixed list of 37 metrics
//! (tests/fixtures/metrics-contract.md),
//! and every recording site the reference names exists in the sources.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fraiseql_wire::metrics::{MetricDef, MetricKind, DEFINITIONS};

const BEGIN: &str =
    "<!-- BEGIN GENERATED: metrics reference (FW_REGENERATE_METRICS_DOC=1 cargo test --test metrics_docs) -->";
const END: &str = "<!-- END GENERATED: metrics reference -->";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn code(s: &str) -> String {
    format!("`{s}`")
}

fn fmt_bound(b: f64) -> String {
    format!("{b}")
}

/// The generated section of docs/metrics.md.
fn generate() -> String {
    let mut out = String::new();
    out.push_str(BEGIN);
    out.push_str("\n\n");
    out.push_str("| name | type | labels | meaning | when it moves | recorded in |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    for d in DEFINITIONS {
        let labels: Vec<String> = d.labels.iter().map(|l| code(l)).collect();
        let sites: Vec<String> = d
            .sites
            .iter()
            .map(|(file, f)| format!("`{f}` ({file})"))
            .collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            code(d.name),
            d.kind.as_str(),
            labels.join(", "),
            d.help,
            d.moves,
            sites.join("; ")
        ));
    }
    out.push_str("\nHistogram buckets (upper bounds; `+Inf` is implicit):\n\n");
    out.push_str("| histogram | buckets |\n|---|---|\n");
    for d in DEFINITIONS
        .iter()
        .filter(|d| d.kind == MetricKind::Histogram)
    {
        let b: Vec<String> = d.buckets.iter().map(|b| fmt_bound(*b)).collect();
        out.push_str(&format!("| {} | {} |\n", code(d.name), b.join(", ")));
    }
    out.push('\n');
    out.push_str(END);
    out
}

fn section(doc: &str) -> Option<(usize, usize)> {
    let start = doc.find(BEGIN)?;
    let end = doc[start..].find(END)? + start + END.len();
    Some((start, end))
}

fn strip_code(s: &str) -> String {
    s.trim().trim_matches('`').to_string()
}

/// Rows of the markdown tables of `text` whose first cell is a backquoted metric name:
/// (cells, the `## ` heading the table is under).
fn metric_rows(text: &str) -> Vec<(Vec<String>, String)> {
    let mut heading = String::new();
    let mut rows = Vec::new();
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("## ") {
            heading = h.trim().to_string();
        }
        let line = line.trim();
        if !line.starts_with("| `fraiseql_") {
            continue;
        }
        let cells: Vec<String> = line
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect();
        rows.push((cells, heading.clone()));
    }
    rows
}

/// `entity, status (\`success\`/...)` -> ["entity", "status"].
fn label_list(cell: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in cell.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(strip_code(&cur));
                cur.clear();
            }
            _ if depth == 0 => cur.push(c),
            _ => {}
        }
    }
    if !cur.trim().is_empty() {
        out.push(strip_code(&cur));
    }
    out
}

fn def_map() -> BTreeMap<&'static str, &'static MetricDef> {
    DEFINITIONS.iter().map(|d| (d.name, d)).collect()
}

#[test]
fn generated_reference_matches_the_code() {
    let path = root().join("docs/metrics.md");
    let doc = std::fs::read_to_string(&path).expect("docs/metrics.md exists");
    let generated = generate();
    let (start, end) = section(&doc).expect("docs/metrics.md has the generated section markers");
    if std::env::var_os("FW_REGENERATE_METRICS_DOC").is_some() {
        let updated = format!("{}{}{}", &doc[..start], generated, &doc[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    assert!(
        doc[start..end] == generated,
        "docs/metrics.md is out of date: run `FW_REGENERATE_METRICS_DOC=1 cargo test --test metrics_docs`"
    );
    for d in DEFINITIONS {
        for text in [d.help, d.moves] {
            assert!(!text.contains('|') && !text.contains('\n'), "{}", d.name);
        }
    }
}

#[test]
fn reference_table_parses_back_to_the_definitions() {
    let doc = std::fs::read_to_string(root().join("docs/metrics.md")).unwrap();
    let (start, end) = section(&doc).expect("markers");
    let rows = metric_rows(&doc[start..end]);
    let defs = def_map();
    let table: Vec<_> = rows.iter().filter(|(c, _)| c.len() == 6).collect();
    assert_eq!(table.len(), 37, "37 rows in the reference table");
    for (cells, _) in table {
        let name = strip_code(&cells[0]);
        let d = defs
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{name}: documented but not defined"));
        assert_eq!(cells[1], d.kind.as_str(), "{name}: type");
        assert_eq!(label_list(&cells[2]), d.labels, "{name}: labels");
        assert_eq!(cells[3], d.help, "{name}: meaning");
        assert_eq!(cells[4], d.moves, "{name}: when it moves");
    }
}

/// The product's list: `## Counters` / `## Histograms` / `## Gauges` tables of
/// `| name | labels | meaning |`.
#[test]
fn definitions_match_the_product_metric_list() {
    let path = root().join("tests/fixtures/metrics-contract.md");
    let list = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let rows = metric_rows(&list);
    assert_eq!(rows.len(), 37, "37 metrics in the product list");
    let defs = def_map();
    let mut seen = Vec::new();
    for (cells, heading) in &rows {
        let name = strip_code(&cells[0]);
        let d = defs
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{name}: in the product list but not defined"));
        let kind = match heading.as_str() {
            "Counters" => MetricKind::Counter,
            "Histograms" => MetricKind::Histogram,
            "Gauges" => MetricKind::Gauge,
            other => panic!("{name} under unexpected heading {other:?}"),
        };
        assert_eq!(d.kind, kind, "{name}: type");
        assert_eq!(label_list(&cells[1]), d.labels, "{name}: labels");
        // Our meaning starts with the product list's.
        let want = cells[2].trim_end_matches('.').to_lowercase();
        assert!(
            d.help.to_lowercase().starts_with(&want),
            "{name}: meaning {:?} does not start with {:?}",
            d.help,
            cells[2]
        );
        seen.push(name);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 37);
}

#[test]
fn recording_sites_exist() {
    for d in DEFINITIONS {
        assert!(!d.sites.is_empty(), "{}: no recording site", d.name);
        for (file, f) in d.sites {
            let src = std::fs::read_to_string(Path::new(&root()).join(file))
                .unwrap_or_else(|e| panic!("{}: {file}: {e}", d.name));
            let func = f.rsplit("::").next().unwrap();
            assert!(
                src.contains(&format!("fn {func}(")) || src.contains(&format!("fn {func}<")),
                "{}: {file} has no fn {func}",
                d.name
            );
            // Sites in the facade itself are events for features that parse rows.
            assert!(
                file.starts_with("src/metrics/") || src.contains("metrics::"),
                "{}: {file} records no metric",
                d.name
            );
        }
    }
}
