//! `matrix.html`: the whole grid of a matrix run as one self-contained page (inline style,
//! no script, no server): a row per case, a column per kernel, each cell coloured by its
//! verdict and carrying the case's reason and observations as its tooltip (`title`).
//!
//! Cells carry `data-case`, `data-kernel` and `data-verdict`, so a browser test can read
//! what the page shows without parsing its layout.

use crate::loops::matrix::grid::Matrix;
use crate::results::table::show_value as show;
use crate::Verdict;

/// Escape text for an HTML text node or a double-quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A verdict as a CSS class and a `data-verdict` value: "pass", "not_reached".
pub fn class(v: Verdict) -> String {
    v.name().replace(' ', "_")
}

const STYLE: &str = "
body { font: 13px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 2px 8px; white-space: nowrap; }
th { background: #f3f3f3; position: sticky; top: 0; }
td.case { font-family: monospace; }
tr.differs td.case { font-weight: bold; }
.pass { background: #c8e6c9; }
.skip { background: #eeeeee; color: #666; }
.fail { background: #ef9a9a; }
.crash { background: #b71c1c; color: #fff; }
.hang { background: #6a1b9a; color: #fff; }
.not_reached { background: #fff59d; }
.absent { background: #fff; color: #bbb; }
td.verdict { cursor: help; text-align: center; }
td.value { font-family: monospace; white-space: normal; max-width: 40em; }
a.odiff { color: #c62828; text-decoration: none; font-weight: bold; }
.legend span.verdict { display: inline-block; padding: 1px 8px; margin-right: 4px; }
";

/// The page of a matrix run.
pub fn page(m: &Matrix) -> String {
    titled(
        m,
        "FUSE passthrough matrix",
        "FUSE passthrough: the catalog across kernels",
    )
}

/// The page with a title and heading of its own: `validate.html` is the same grid of one
/// target's validate cases (and its library's own tests) across kernels.
pub fn titled(m: &Matrix, title: &str, heading: &str) -> String {
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str(&format!("<title>{}</title>", escape(title)));
    h.push_str(&format!("<style>{STYLE}</style></head><body>\n"));
    h.push_str(&format!("<h1>{}</h1>\n", escape(heading)));
    let differing = m.differing_verdicts();
    h.push_str(&format!(
        "<p id=\"summary\">{} kernels, {} cases, {} with a verdict that is not the same everywhere; {:.0} s. Hover a cell for its reason and observations.</p>\n",
        m.columns.len(),
        m.cases().len(),
        differing.len(),
        m.elapsed.as_secs_f64()
    ));
    h.push_str("<p class=\"legend\">");
    for v in Verdict::ALL {
        h.push_str(&format!(
            "<span class=\"verdict {}\">{}</span>",
            class(v),
            v.name()
        ));
    }
    h.push_str("</p>\n<table id=\"kernels\"><tr><th>kernel</th><th>release</th><th>source</th><th>run</th><th>time</th></tr>\n");
    for c in &m.columns {
        let (release, source, run) = match &c.outcome {
            Ok(r) => (
                r.kernel_release.clone(),
                r.identity.source.clone(),
                crate::results::table::totals(&r.results),
            ),
            Err(e) => (String::new(), c.kernel.clone(), format!("did not run: {e}")),
        };
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0} s</td></tr>\n",
            escape(&c.label),
            escape(&release),
            escape(&source),
            escape(&run),
            c.elapsed.as_secs_f64()
        ));
    }
    h.push_str("</table>\n<h2>Verdicts</h2>\n<table id=\"grid\"><tr><th>case</th>");
    for c in &m.columns {
        h.push_str(&format!("<th>{}</th>", escape(&c.label)));
    }
    h.push_str("</tr>\n");
    let observed = m.differing_observations();
    for case in m.cases() {
        let row = m.row(&case);
        let differs = differing.iter().any(|(c, _)| *c == case);
        let keys: Vec<&str> = observed
            .iter()
            .filter(|(c, _, _)| *c == case)
            .map(|(_, k, _)| k.as_str())
            .collect();
        let marker = if keys.is_empty() {
            String::new()
        } else {
            format!(
                " <a class=\"odiff\" href=\"#obs-{}\" title=\"observations that differ: {}\">≠</a>",
                escape(&case),
                escape(&keys.join(", "))
            )
        };
        h.push_str(&format!(
            "<tr{}><td class=\"case\">{}{marker}</td>",
            if differs { " class=\"differs\"" } else { "" },
            escape(&case)
        ));
        for (col, cell) in m.columns.iter().zip(row) {
            match cell {
                Some(r) => {
                    let v = class(r.verdict);
                    let mut tip = String::new();
                    if !r.reason.is_empty() {
                        tip.push_str(&r.reason);
                        tip.push('\n');
                    }
                    for (k, val) in &r.observations {
                        tip.push_str(&format!("{k}: {}\n", show(val)));
                    }
                    h.push_str(&format!(
                        "<td class=\"verdict {v}\" data-case=\"{}\" data-kernel=\"{}\" data-verdict=\"{v}\" title=\"{}\">{}</td>",
                        escape(&case),
                        escape(&col.label),
                        escape(tip.trim_end()),
                        r.verdict.name()
                    ));
                }
                None => h.push_str(&format!(
                    "<td class=\"verdict absent\" data-case=\"{}\" data-kernel=\"{}\" data-verdict=\"absent\">–</td>",
                    escape(&case),
                    escape(&col.label)
                )),
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
    // Every observation that is not the same everywhere, side by side.
    h.push_str("<h2>Observations that differ</h2>\n");
    if observed.is_empty() {
        h.push_str("<p>None: every kernel observed the same.</p>\n");
    } else {
        h.push_str("<table id=\"observations\"><tr><th>case</th><th>observation</th>");
        for c in &m.columns {
            h.push_str(&format!("<th>{}</th>", escape(&c.label)));
        }
        h.push_str("</tr>\n");
        let mut anchored = std::collections::BTreeSet::new();
        for (case, key, cells) in &observed {
            let id = if anchored.insert(case.clone()) {
                format!(" id=\"obs-{}\"", escape(case))
            } else {
                String::new()
            };
            h.push_str(&format!(
                "<tr{id}><td class=\"case\">{}</td><td>{}</td>",
                escape(case),
                escape(key)
            ));
            for v in cells {
                h.push_str(&format!(
                    "<td class=\"value\">{}</td>",
                    escape(v.as_deref().unwrap_or("–"))
                ));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n");
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<a href=\"x\">&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;"
        );
    }
}
