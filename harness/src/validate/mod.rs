//! `cargo xtask validate`: a FUSE server or library as the test subject. The server's spec
//! (built-in target or path, `harness::validate::targets`) goes with a run of the `validate` cases on
//! each kernel asked for; the results become one table per target, one column per kernel.

pub mod targets;

use proto::observation as key;
use std::fmt::Write;

use proto::validate::Spec;
use proto::Verdict;

use crate::error::{Error, Result};
use crate::results::record::Run;
use crate::run::Request;

/// Run the validate cases against `spec` on each kernel of `requests` (one request per
/// kernel, each otherwise as `run` takes it). `each` sees every run as it ends.
pub fn validate(spec: &Spec, requests: &[Request], each: &mut dyn FnMut(&Run)) -> Result<Vec<Run>> {
    let mut runs = Vec::new();
    for req in requests {
        let req = Request {
            validate: Some(spec.clone()),
            ..req.clone()
        };
        let run = crate::run::run(&req, &mut |_| {})?;
        // A server that cannot start at all is bad input, said once: the agent reports the
        // first case's failure and skips the rest.
        if let Some(why) = run
            .results
            .first()
            .and_then(|r| r.observations.get(key::SERVER_DID_NOT_START))
        {
            return Err(Error::ServerDidNotStart(
                why.as_str().unwrap_or("").to_string(),
            ));
        }
        let mut run = run;
        if library_suite_results(&mut run) {
            crate::results::record::save(&run)?;
        }
        each(&run);
        runs.push(run);
    }
    Ok(runs)
}

/// The library's own suite (`validate.library_suite`'s observation) as results of their
/// own, after the case: `libfuse_suite.<test>` with the suite's verdict, so the table and
/// every report show them beside ours. Whether any were added.
fn library_suite_results(run: &mut Run) -> bool {
    let Some(outcomes) = run
        .results
        .iter()
        .find_map(|r| r.observations.get(key::LIBRARY_SUITE))
        .and_then(|v| v.as_object())
        .cloned()
    else {
        return false;
    };
    for (test, outcome) in outcomes {
        let outcome = outcome.as_str().unwrap_or("");
        let (verdict, reason) = match outcome.split_once(": ") {
            Some(("fail", why)) => (Verdict::Fail, why.to_string()),
            Some(("skip", why)) => (Verdict::Skip, why.to_string()),
            _ if outcome == "pass" => (Verdict::Pass, String::new()),
            _ => (Verdict::Fail, format!("the suite said {outcome:?}")),
        };
        let name = format!("{}.{}", key::LIBRARY_SUITE_GROUP, test.replace('/', "."));
        run.results
            .push(proto::CaseResult::new(&name, verdict, reason));
    }
    true
}

/// `--expect passthrough`: every path the target's snapshot for this kernel series (its
/// last known good run) has passed through (`read_requests: 0`, `write_requests: 0`) must
/// be passed through again; a path the server now served itself becomes a failed verdict,
/// so that a regression in a library release fails instead of changing a word of the table.
/// Returns the cases it failed; results.json is written again. A run without a snapshot, or
/// a case whose requests this kernel cannot count, is not judged.
pub fn expect_passthrough(run: &mut Run) -> Result<Vec<String>> {
    use crate::results::snapshot;
    let name = snapshot::name_of(run);
    let Some(known) = snapshot::load(&name) else {
        return Ok(Vec::new());
    };
    let through = |block: &str| {
        [key::READ_REQUESTS, key::WRITE_REQUESTS]
            .iter()
            .all(|k| block.lines().any(|l| l.trim() == format!("{k}: 0")))
    };
    let mut failed = Vec::new();
    for r in &mut run.results {
        let Some(block) = known.get(&r.case) else {
            continue;
        };
        let count = |k: &str| r.observations.get(k).and_then(|v| v.as_u64());
        let (Some(reads), Some(writes)) = (count(key::READ_REQUESTS), count(key::WRITE_REQUESTS))
        else {
            continue;
        };
        if through(block) && reads + writes > 0 && r.verdict.is_ok() {
            r.verdict = Verdict::Fail;
            r.reason = format!(
                "served by the server ({reads} READ, {writes} WRITE), but passed through in \
                 {name}, its last known good run (--expect passthrough)"
            );
            failed.push(r.case.clone());
        }
    }
    if !failed.is_empty() {
        crate::results::record::save(run)?;
    }
    Ok(failed)
}

/// How one validate case went on one kernel, for the table: where its I/O went, from the
/// READ and WRITE requests the kernel sent over the server's whole run.
fn path_cell(r: &proto::CaseResult) -> String {
    let obs = |k: &str| r.observations.get(k);
    let count = |k: &str| obs(k).and_then(|v| v.as_u64());
    let lags = obs(key::COHERENT_WITH_SOURCE) == Some(&serde_json::Value::Bool(false));
    match (
        r.verdict,
        count(key::READ_REQUESTS),
        count(key::WRITE_REQUESTS),
    ) {
        (Verdict::Skip, _, _) => match obs(key::OPEN_THROUGH_MOUNT).and_then(|v| v.as_str()) {
            Some(errno) if errno != "ok" => format!("not served (open: {errno})"),
            _ => "skip".into(),
        },
        (v @ (Verdict::Crash | Verdict::Hang | Verdict::NotReached), _, _) => v.name().into(),
        (v, _, _) if !v.is_ok() && obs(key::SOURCE_RELEASED).is_none() => v.name().into(),
        (_, Some(0), Some(0)) => "passed through".into(),
        (_, Some(_), Some(_)) if lags => "served (lags {source})".into(),
        (_, Some(_), Some(_)) => "served".into(),
        _ => obs(key::PASSED_THROUGH)
            .and_then(|v| v.as_str())
            .unwrap_or("-")
            .into(),
    }
}

/// The report: one row per question, one column per kernel and transport.
pub fn table(spec: &Spec, runs: &[Run]) -> String {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    let col = |f: &dyn Fn(&Run) -> String| runs.iter().map(f).collect::<Vec<_>>();
    rows.push(("kernel".into(), col(&|r| r.kernel_release.clone())));
    // The transport, and over the ring the kernel's count of what came through it.
    let transport = |r: &Run| -> String {
        if r.transport.unwrap_or(spec.transport) == proto::validate::Transport::Dev {
            return "/dev/fuse".into();
        }
        let counted = r
            .results
            .iter()
            .filter(|c| c.observations.contains_key(key::RING_REQUESTS))
            .count();
        let ringed = r
            .results
            .iter()
            .filter(|c| {
                c.observations
                    .get(key::RING_REQUESTS)
                    .and_then(|v| v.as_u64())
                    .is_some_and(|n| n > 0)
            })
            .count();
        match counted {
            0 => "FUSE over io_uring (not counted here)".into(),
            _ => format!("FUSE over io_uring ({ringed} of {counted} cases served over the ring)"),
        }
    };
    rows.push(("transport".into(), col(&transport)));
    // What the connection negotiated, read from the kernel's own struct (a BTF probe).
    let negotiated = |r: &Run, key: &str| -> String {
        r.results
            .iter()
            .find_map(|c| c.observations.get(key))
            .map_or("unknown (no BTF probe here)".into(), |v| match v {
                serde_json::Value::Bool(true) => "yes".into(),
                serde_json::Value::Bool(false) => "no".into(),
                v => format!("7.{v}"),
            })
    };
    rows.push((
        "protocol (kernel's view)".into(),
        col(&|r| negotiated(r, key::PROTOCOL_MINOR)),
    ));
    rows.push((
        "passthrough negotiated".into(),
        col(&|r| negotiated(r, key::PASSTHROUGH_NEGOTIATED)),
    ));
    rows.push((
        "passthrough engaged".into(),
        col(&|r| {
            let cells: Vec<String> = r.results.iter().map(path_cell).collect();
            let through = cells.iter().filter(|c| *c == "passed through").count();
            let paths = cells
                .iter()
                .filter(|c| *c == "passed through" || c.starts_with("served"))
                .count();
            match through {
                0 => format!("no (0 of {paths} paths)"),
                n => format!("yes ({n} of {paths} paths)"),
            }
        }),
    ));
    let suite_prefix = format!("{}.", key::LIBRARY_SUITE_GROUP);
    let cases: Vec<String> = runs.first().map_or(Vec::new(), |r| {
        r.results
            .iter()
            .map(|c| c.case.clone())
            .filter(|c| !c.starts_with(&suite_prefix))
            .collect()
    });
    for case in &cases {
        let name = case.strip_prefix("validate.").unwrap_or(case).to_string();
        rows.push((
            name,
            col(&|r| {
                r.results
                    .iter()
                    .find(|c| &c.case == case)
                    .map_or("-".into(), path_cell)
            }),
        ));
    }
    if runs.iter().any(|r| {
        r.results
            .iter()
            .any(|c| c.observations.contains_key(key::LIBRARY_SUITE_TOTALS))
    }) {
        rows.push((
            "the library's own tests".into(),
            col(&|r| {
                let totals = r
                    .results
                    .iter()
                    .find_map(|c| c.observations.get(key::LIBRARY_SUITE_TOTALS))
                    .and_then(|v| v.as_str())
                    .unwrap_or("-")
                    .to_string();
                let failed: Vec<&str> = r
                    .results
                    .iter()
                    .filter(|c| c.case.starts_with(&suite_prefix) && c.verdict == Verdict::Fail)
                    .map(|c| &c.case[suite_prefix.len()..])
                    .collect();
                match failed.as_slice() {
                    [] => totals,
                    _ => format!("{totals} ({})", failed.join(", ")),
                }
            }),
        ));
    }
    rows.push((
        "BACKING_OPEN (kprobe)".into(),
        col(&|r| {
            let sum = |k: &str| {
                r.results
                    .iter()
                    .filter_map(|c| c.observations.get(k)?.as_u64())
                    .sum::<u64>()
            };
            let errors: std::collections::BTreeSet<&str> = r
                .results
                .iter()
                .filter_map(|c| c.observations.get(key::BACKING_OPEN_ERRORS)?.as_array())
                .flatten()
                .filter_map(|e| e.as_str())
                .collect();
            if !r.results.iter().any(|c| {
                c.observations
                    .get(key::BACKING_OPENS)
                    .is_some_and(|v| v.is_u64())
            }) {
                return "unknown (no kprobe events)".into();
            }
            let errors: Vec<&str> = errors.into_iter().collect();
            let failed = if errors.is_empty() {
                "none failed".to_string()
            } else {
                format!("failed: {}", errors.join(", "))
            };
            format!(
                "{} ok, {failed}; {} closed by the server",
                sum(key::BACKING_OPENS),
                sum(key::BACKING_CLOSES)
            )
        }),
    ));
    rows.push((
        "fallback after a refused BACKING_OPEN".into(),
        col(&|r| {
            r.results
                .iter()
                .find(|c| c.case == "validate.fallback_scope")
                .map_or("-".into(), |c| {
                    match c
                        .observations
                        .get(key::FALLBACK_SCOPE)
                        .and_then(|v| v.as_str())
                    {
                        Some(scope) => scope.to_string(),
                        // The reason's last clause says what stopped it.
                        None => format!(
                            "{}: {}",
                            c.verdict.name(),
                            c.reason.rsplit(": ").next().unwrap_or("")
                        ),
                    }
                })
        }),
    ));
    rows.push((
        "data correct".into(),
        col(&|r| {
            let bad: Vec<&str> = r
                .results
                .iter()
                .filter(|c| {
                    c.verdict == Verdict::Fail && c.observations.contains_key(key::SOURCE_RELEASED)
                })
                .filter(|c| {
                    c.observations
                        .get(key::SOURCE_RELEASED)
                        .is_some_and(|v| v == "ok")
                })
                .map(|c| c.case.strip_prefix("validate.").unwrap_or(&c.case))
                .collect();
            if bad.is_empty() {
                "yes".into()
            } else {
                format!("no: {}", bad.join(", "))
            }
        }),
    ));
    rows.push((
        "leaks ({source} busy after exit)".into(),
        col(&|r| {
            let leaked = r
                .results
                .iter()
                .filter(|c| {
                    c.observations
                        .get(key::SOURCE_RELEASED)
                        .is_some_and(|v| v != "ok")
                })
                .count();
            if leaked == 0 {
                "none".into()
            } else {
                format!("{leaked} cases")
            }
        }),
    ));
    rows.push((
        "verdicts".into(),
        col(&|r| crate::results::table::totals(&r.results)),
    ));
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let widths: Vec<usize> = (0..runs.len())
        .map(|i| rows.iter().map(|(_, v)| v[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = format!("target {} ({})\n", spec.target, spec.version);
    for (key, values) in &rows {
        let _ = write!(out, "{key:width$}");
        for (v, w) in values.iter().zip(&widths) {
            let _ = write!(out, "  {v:w$}");
        }
        out.push('\n');
    }
    out
}
