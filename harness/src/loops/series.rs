//! `cargo xtask series`: the catalog on the base tree and after each patch of a series, in
//! order, every step built incrementally in the one working copy of its build entry; for
//! each patch, every verdict and observation that changed from the step before.
//!
//! A patch that does not apply ends the series there (the steps before it stand, the patch
//! and its hunk are named); a step that does not build is reported and the next patch is
//! tried, since a later patch may fix it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use proto::{CaseResult, Verdict};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::kernel::build::{BuildRequest, Series};
use crate::kernel::KernelChoice;
use crate::results::record::Run;
use crate::run::Request;

/// One step: the base (0) or the tree after patch `index`.
#[derive(Debug)]
pub struct Step {
    /// 0 for the base, else the patch's place in the series.
    pub index: usize,
    /// "base" or the patch's subject.
    pub subject: String,
    /// What happened to it.
    pub outcome: Outcome,
    /// Its build.
    pub build_time: Duration,
    /// Its run.
    pub run_time: Duration,
}

/// How one step went.
#[derive(Debug)]
pub enum Outcome {
    /// Built and ran; what changed from the last step that ran.
    Ran {
        /// The step's run.
        run: Box<Run>,
        /// What changed from the step before.
        changes: Vec<Change>,
    },
    /// The patch does not apply: the series ends here.
    DoesNotApply {
        /// What `patch` said.
        why: String,
    },
    /// The tree after this patch does not build.
    DoesNotBuild {
        /// The errors pulled out of the log.
        errors: String,
        /// The build log.
        log: PathBuf,
    },
}

/// One difference between two steps' results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The case.
    pub case: String,
    /// "verdict", or the observation's key.
    pub what: String,
    /// The value before.
    pub before: String,
    /// The value after.
    pub after: String,
}

/// Build and run the base and each step of `build`'s series (its `patches`) in order; `each` sees every step
/// as it ends.
pub fn run(
    build: &BuildRequest,
    template: &Request,
    each: &mut dyn FnMut(&Step),
) -> Result<Vec<Step>> {
    let series = Series::read(&build.patches)?;
    if series.is_empty() {
        return Err(Error::PatchFailed {
            patch: "(none)".into(),
            why: "series needs at least one --patch".into(),
        });
    }
    let subjects = series.subjects();
    let mut steps = Vec::new();
    let mut last: Option<Vec<CaseResult>> = None;
    for index in 0..=series.len() {
        let req = BuildRequest {
            first_patches: Some(index),
            // The entry the run boots: a coverage run's own.
            coverage: template.coverage,
            ..build.clone()
        };
        let subject = match index {
            0 => "base".to_string(),
            i => subjects[i - 1].clone(),
        };
        let started = Instant::now();
        let built = crate::kernel::build::build(&req, &crate::env::cache::dir());
        let build_time = started.elapsed();
        let outcome = match built {
            Err(Error::PatchFailed { patch, why }) => Outcome::DoesNotApply {
                why: format!("{patch}: {why}"),
            },
            Err(Error::BuildFailed { errors, log, .. }) => Outcome::DoesNotBuild { errors, log },
            Err(e) => return Err(e),
            Ok(_) => {
                let started = Instant::now();
                let run = crate::run::run(
                    &Request {
                        kernel: KernelChoice::Build(req.clone()),
                        ..template.clone()
                    },
                    &mut |_| {},
                )?;
                let run_time = started.elapsed();
                let changes = last
                    .as_deref()
                    .map_or_else(Vec::new, |before| compare(before, &run.results));
                last = Some(run.results.clone());
                let step = Step {
                    index,
                    subject,
                    outcome: Outcome::Ran {
                        run: Box::new(run),
                        changes,
                    },
                    build_time,
                    run_time,
                };
                each(&step);
                steps.push(step);
                continue;
            }
        };
        let stop = matches!(outcome, Outcome::DoesNotApply { .. });
        let step = Step {
            index,
            subject,
            outcome,
            build_time,
            run_time: Duration::ZERO,
        };
        each(&step);
        steps.push(step);
        if stop {
            break;
        }
    }
    Ok(steps)
}

/// Every verdict and observation that differs between two runs of the same cases, in the
/// order of `after`. A case only one of them ran counts as a verdict change from or to
/// "absent".
pub fn compare(before: &[CaseResult], after: &[CaseResult]) -> Vec<Change> {
    let mut out = Vec::new();
    let name = |v: Verdict| crate::results::table::verdict_name(v).to_string();
    for a in after {
        let Some(b) = before.iter().find(|b| b.case == a.case) else {
            out.push(change(&a.case, "verdict", "absent", &name(a.verdict)));
            continue;
        };
        if a.verdict != b.verdict {
            out.push(change(
                &a.case,
                "verdict",
                &name(b.verdict),
                &name(a.verdict),
            ));
        }
        let keys: std::collections::BTreeSet<&String> =
            b.observations.keys().chain(a.observations.keys()).collect();
        for k in keys {
            let (x, y) = (b.observations.get(k), a.observations.get(k));
            if x != y {
                let show = |v: Option<&serde_json::Value>| {
                    v.map_or_else(|| "(none)".to_string(), crate::results::table::show_value)
                };
                out.push(change(&a.case, k, &show(x), &show(y)));
            }
        }
    }
    for b in before {
        if !after.iter().any(|a| a.case == b.case) {
            out.push(change(&b.case, "verdict", &name(b.verdict), "absent"));
        }
    }
    out
}

fn change(case: &str, what: &str, before: &str, after: &str) -> Change {
    Change {
        case: case.into(),
        what: what.into(),
        before: before.into(),
        after: after.into(),
    }
}

/// Write series.json into a directory of its own under target/fpt-runs; its path.
pub fn write(steps: &[Step]) -> Result<PathBuf> {
    let dir = crate::env::cache::artifacts_dir("series")?;
    let path = dir.join("series.json");
    let text = serde_json::to_string_pretty(&to_json(steps)).unwrap_or_default();
    std::fs::write(&path, text).map_err(|e| Error::io(path.display(), e))?;
    Ok(path)
}

/// series.json: each step's subject, outcome, changes and artifacts.
pub fn to_json(steps: &[Step]) -> serde_json::Value {
    let steps: Vec<serde_json::Value> = steps
        .iter()
        .map(|s| {
            let mut v = serde_json::json!({
                "index": s.index,
                "subject": s.subject,
                "build_seconds": s.build_time.as_secs_f64(),
                "run_seconds": s.run_time.as_secs_f64(),
            });
            match &s.outcome {
                Outcome::Ran { run, changes } => {
                    v["outcome"] = "ran".into();
                    v["totals"] = crate::results::table::totals(&run.results).into();
                    v["artifacts"] = run.artifacts.display().to_string().into();
                    v["changes"] = serde_json::to_value(changes).unwrap_or_default();
                }
                Outcome::DoesNotApply { why } => {
                    v["outcome"] = "does not apply".into();
                    v["why"] = why.clone().into();
                }
                Outcome::DoesNotBuild { errors, log } => {
                    v["outcome"] = "does not build".into();
                    v["errors"] = errors.clone().into();
                    v["log"] = log.display().to_string().into();
                }
            }
            v
        })
        .collect();
    serde_json::json!({ "steps": steps })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(case: &str, verdict: Verdict, obs: &[(&str, &str)]) -> CaseResult {
        let mut r = CaseResult::new(case, verdict, "");
        for (k, v) in obs {
            r.observations.insert(k.to_string(), serde_json::json!(v));
        }
        r
    }

    #[test]
    fn names_every_verdict_and_observation_that_changed() {
        let before = [
            result("a.x", Verdict::Pass, &[("errno", "EINVAL"), ("n", "1")]),
            result("a.y", Verdict::Pass, &[]),
            result("a.gone", Verdict::Pass, &[]),
        ];
        let after = [
            result("a.x", Verdict::Fail, &[("errno", "EOPNOTSUPP"), ("n", "1")]),
            result("a.y", Verdict::Pass, &[("new", "v")]),
            result("a.new", Verdict::Skip, &[]),
        ];
        let got: Vec<String> = compare(&before, &after)
            .into_iter()
            .map(|c| format!("{} {}: {} -> {}", c.case, c.what, c.before, c.after))
            .collect();
        assert_eq!(
            got,
            [
                "a.x verdict: pass -> FAIL",
                "a.x errno: EINVAL -> EOPNOTSUPP",
                "a.y new: (none) -> v",
                "a.new verdict: absent -> skip",
                "a.gone verdict: pass -> absent",
            ]
        );
        assert!(compare(&after, &after).is_empty());
    }
}
