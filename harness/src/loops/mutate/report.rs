//! What a `mutate` run says: the summary and every survivor as a review comment (file, line,
//! the mutant's diff, the cases that ran the line) in the terminal, `mutants.json`, and a
//! self-contained `mutants.html` that links the baseline's coverage page. Survivors that
//! docs/mutants.md explains as equivalent are marked so and left out of the score.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Fate, Kill, Mutant, Outcome, Summary};
use crate::error::{Error, Result};

/// Every outcome and the summary, in a run's directory.
pub const JSON: &str = "mutants.json";
/// The page of every mutant, in a run's directory.
pub const HTML: &str = "mutants.html";

/// The key docs/mutants.md gives a mutant by: `file:line` and its mutated line, trimmed.
pub fn equivalence_key(m: &Mutant) -> (String, String) {
    (format!("{}:{}", m.file, m.line), m.after.trim().to_string())
}

/// docs/mutants.md's equivalent mutants: `| file:line | `mutated line` | why |` rows.
pub fn equivalents() -> BTreeMap<(String, String), String> {
    let path = crate::env::cache::workspace_root().join("docs/mutants.md");
    parse_equivalents(&std::fs::read_to_string(path).unwrap_or_default())
}

fn parse_equivalents(doc: &str) -> BTreeMap<(String, String), String> {
    doc.lines()
        .filter(|l| l.starts_with("| fs/"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.trim().trim_matches('|').split(" | ").collect();
            let [at, text, why] = cells[..] else {
                return None;
            };
            let text = text.trim().strip_prefix('`')?.strip_suffix('`')?;
            // A `|` of the mutated line is written `\|`, as a Markdown table needs.
            let text = text.replace("\\|", "|");
            Some((
                (at.trim().to_string(), text.trim().to_string()),
                why.trim().to_string(),
            ))
        })
        .collect()
}

/// The terminal report: per file the counts, then each survivor that is not equivalent.
pub fn text(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    for file in super::files(outcomes) {
        let of: Vec<Outcome> = outcomes
            .iter()
            .filter(|o| o.mutant.file == file)
            .cloned()
            .collect();
        out.push_str(&format!("{file}: {}\n", summary_line(&Summary::of(&of))));
    }
    if super::files(outcomes).len() > 1 {
        out.push_str(&format!("all: {}\n", summary_line(&Summary::of(outcomes))));
    }
    for o in outcomes {
        if o.fate == Fate::Survived && o.equivalent.is_none() {
            out.push_str(&format!(
                "\nsurvived: {}:{} ({}, {}); the cases that ran the line: {}\n{}",
                o.mutant.file,
                o.mutant.line,
                o.mutant.operator,
                o.mutant.function.as_deref().unwrap_or("?"),
                some_of(&o.mutant.cases),
                indent(&o.mutant.diff)
            ));
        }
    }
    out
}

/// "12 mutants: 9 killed (1 only by an observation), 2 survived (1 equivalent), 1 not
/// reached, 0 not compiled; score 89%".
pub fn summary_line(s: &Summary) -> String {
    format!(
        "{} mutants: {} killed ({} only by an observation), {} survived ({} equivalent), {} not reached, {} not compiled; score {}",
        s.mutants,
        s.killed,
        s.killed_by_snapshot_only,
        s.survived,
        s.equivalent,
        s.not_reached,
        s.not_compiled,
        s.score
            .map_or("- (nothing judged)".to_string(), |x| format!("{:.0}%", x * 100.0))
    )
}

/// How many cases a review comment names before "and N more" (mutants.json has them all).
const NAMED: usize = 5;

/// "a, b, c, d, e and 95 more": a line most cases run would name a hundred.
fn some_of(cases: &[String]) -> String {
    match cases.len() {
        n if n > NAMED => format!("{} and {} more", cases[..NAMED].join(", "), n - NAMED),
        _ => cases.join(", "),
    }
}

fn indent(diff: &str) -> String {
    diff.lines()
        .skip_while(|l| !l.starts_with("@@"))
        .map(|l| format!("    {l}\n"))
        .collect()
}

/// `mutants.json` and `mutants.html` in `dir`.
pub fn write(dir: &Path, outcomes: &[Outcome], baseline: &Path) -> Result<()> {
    let json = serde_json::json!({
        "summary": Summary::of(outcomes),
        "baseline": baseline,
        "outcomes": outcomes,
    });
    let path = dir.join(JSON);
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&json).expect("serialises"),
    )
    .map_err(|e| Error::io(path.display(), e))?;
    let path = dir.join(HTML);
    std::fs::write(&path, html(outcomes, baseline)).map_err(|e| Error::io(path.display(), e))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// "killed (verdict)", "survived", "equivalent", "not reached", ...: a fate as reports name it.
pub fn fate_name(o: &Outcome) -> String {
    match &o.fate {
        Fate::Killed { by, .. } => format!(
            "killed ({})",
            match by {
                Kill::Verdict => "verdict",
                Kill::Crash => "crash",
                Kill::Hang => "hang",
                Kill::Kernel => "kernel report",
                Kill::Snapshot => "observation only",
            }
        ),
        Fate::Survived if o.equivalent.is_some() => "equivalent".into(),
        Fate::Survived => "survived".into(),
        Fate::NotReached => "not reached".into(),
        Fate::NotCompiled { .. } => "not compiled".into(),
    }
}

fn html(outcomes: &[Outcome], baseline: &Path) -> String {
    let coverage = baseline.join("coverage/html/index.html");
    let mut rows = String::new();
    for o in outcomes {
        let why = match &o.fate {
            Fate::Killed { case, detail, .. } => format!("{case}: {detail}"),
            Fate::NotCompiled { errors } => errors.lines().next().unwrap_or("").to_string(),
            _ => o.equivalent.clone().unwrap_or_default(),
        };
        rows.push_str(&format!(
            "<tr data-fate=\"{}\"><td>{}:{}</td><td>{}</td><td>{}</td><td>{}</td><td><pre>{}</pre></td><td>{}</td><td>{}</td></tr>\n",
            escape(&fate_name(o)),
            escape(&o.mutant.file),
            o.mutant.line,
            escape(o.mutant.function.as_deref().unwrap_or("")),
            escape(&o.mutant.operator),
            escape(&fate_name(o)),
            escape(&indent(&o.mutant.diff)),
            escape(&why),
            escape(&some_of(&o.mutant.cases)),
        ));
    }
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>mutants</title>\n<style>body{{font-family:sans-serif}}td{{vertical-align:top;border-bottom:1px solid #ddd;padding:2px 6px}}tr[data-fate=survived]{{background:#fdd}}pre{{margin:0}}</style></head><body>\n<h1>Mutants</h1>\n<p>{}</p>\n<p>Baseline coverage: <a href=\"file://{}\">{}</a></p>\n<table><tr><th>line</th><th>function</th><th>operator</th><th>fate</th><th>mutant</th><th>why</th><th>cases that ran the line</th></tr>\n{rows}</table></body></html>\n",
        escape(&summary_line(&Summary::of(outcomes))),
        escape(&coverage.display().to_string()),
        escape(&coverage.display().to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalents_are_read_from_their_table() {
        let doc = "# x\n\n| mutant | line | why |\n|---|---|---|\n\
                   | fs/fuse/passthrough.c:126 | `if (ret <= 0)` | ret 0 leaves ki_pos as it was |\n";
        let eq = parse_equivalents(doc);
        assert_eq!(
            eq.get(&(
                "fs/fuse/passthrough.c:126".to_string(),
                "if (ret <= 0)".to_string()
            ))
            .map(String::as_str),
            Some("ret 0 leaves ki_pos as it was")
        );
        assert_eq!(eq.len(), 1);
        let piped = parse_equivalents("| fs/fuse/iomode.c:176 | `a && b \\|\\|` | why |\n");
        assert!(piped.contains_key(&("fs/fuse/iomode.c:176".to_string(), "a && b ||".to_string())));
    }

    #[test]
    fn a_review_comment_names_a_few_cases_and_counts_the_rest() {
        let cases: Vec<String> = (0..8).map(|i| format!("g.c{i}")).collect();
        assert_eq!(some_of(&cases), "g.c0, g.c1, g.c2, g.c3, g.c4 and 3 more");
        assert_eq!(some_of(&cases[..2]), "g.c0, g.c1");
    }
}
