//! KCIDB v5 JSON (the schema of the `kcidb-io` package, 5.3): for each run a checkout (the
//! kernel's source), a build (the kernel) and one test per case, with `path` = group.case,
//! `log_url` the console log and `misc` the verdict and observations.

use serde_json::{json, Value};

use crate::results::record::Run;
use crate::Verdict;

/// KCIDB's origin: who submitted the objects.
pub const ORIGIN: &str = "fpt";

/// KCIDB's status for a verdict. A crash or hang is ERROR (the case did not complete: the
/// kernel's state is in the console, not in a verdict); a case not reached is MISS.
pub fn status(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "PASS",
        Verdict::Fail => "FAIL",
        Verdict::Skip => "SKIP",
        Verdict::Crash | Verdict::Hang => "ERROR",
        Verdict::NotReached => "MISS",
    }
}

/// An id KCIDB accepts: origin, colon, anything without NUL.
fn id(parts: &[&str]) -> String {
    format!("{ORIGIN}:{}", parts.join(":"))
}

fn file_url(path: &std::path::Path) -> String {
    let abs = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    format!("file://{}", abs.display())
}

/// KCIDB v5 JSON of `runs`: one build and test per case, per kernel.
pub fn render(runs: &[&Run]) -> String {
    let (mut checkouts, mut builds, mut tests) = (Vec::new(), Vec::new(), Vec::new());
    for run in runs {
        let run_id = run
            .artifacts
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let checkout_id = id(&[&run_id, "checkout"]);
        let build_id = id(&[&run_id, "build"]);
        let mut checkout = json!({
            "id": checkout_id,
            "origin": ORIGIN,
            "tree_name": run.identity.source,
            "valid": true,
        });
        if !run.identity.patches.is_empty() {
            checkout["patchset_files"] = Value::Array(
                run.identity
                    .patches
                    .iter()
                    .map(|p| json!({"name": p.name, "url": format!("file://{}", p.name)}))
                    .collect(),
            );
        }
        checkouts.push(checkout);
        let config = if run.identity.profile.is_empty() {
            "unknown".to_string()
        } else {
            run.identity.profile.clone()
        };
        builds.push(json!({
            "id": build_id,
            "checkout_id": checkout_id,
            "origin": ORIGIN,
            "architecture": "x86_64",
            "config_name": config,
            "status": "PASS",
            "misc": {
                "release": run.kernel_release,
                "config_hash": run.identity.config_hash,
                "mode": run.mode,
            },
        }));
        let log = super::console_log(run).map(|p| file_url(&p));
        for (n, r) in run.results.iter().enumerate() {
            let mut test = json!({
                "id": id(&[&run_id, &r.case]),
                "build_id": build_id,
                "origin": ORIGIN,
                "path": r.case,
                "status": status(r.verdict),
                "number": {"value": n as f64},
                "duration": r.duration_ms as f64 / 1000.0,
                "environment": {"comment": run.mode},
                "misc": {
                    "verdict": r.verdict.name(),
                    "reason": r.reason,
                    "observations": r.observations,
                },
            });
            if let Some(url) = &log {
                test["log_url"] = Value::String(url.clone());
            }
            tests.push(test);
        }
    }
    let doc = json!({
        "version": {"major": 5, "minor": 3},
        "checkouts": checkouts,
        "builds": builds,
        "tests": tests,
    });
    serde_json::to_string_pretty(&doc).expect("serialises")
}
