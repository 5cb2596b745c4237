//! `cargo xtask mutate`: would any case notice if these lines were wrong? Each mutant (one
//! line of fs/fuse changed by [`operators`]) is one more patch after the series, so the build
//! entry's working copy and incremental build do the rest: one file recompiled, then a boot
//! that runs only the cases whose coverage reaches the mutated line. Against the baseline (a
//! coverage run of the tree with the series, the whole catalog) the mutant is killed (a
//! verdict fails, a case crashes or hangs, or only an observation changed: each said),
//! survives, does not compile, or is not reached (no case executes its line: nothing built).
//!
//! Finished mutants are appended to a state file in the cache, one JSON line each, keyed by
//! the tree, the profile, the series and the scope: an interrupted run (Ctrl-C) loses only the
//! mutant it was on, and the next run with the same arguments goes on from there.

pub mod operators;
pub mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proto::{CaseResult, Verdict};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::kernel::build::BuildRequest;
use crate::kernel::KernelChoice;
use crate::results::coverage::lines::LineMap;
use operators::Returns;

use crate::results::coverage::PROFILED;

/// How mutants are judged, in the state file's key: raised whenever `classify` or the
/// operators change, so that no run resumes from fates judged another way.
const JUDGED_BY: u32 = 4;

/// What to mutate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The lines the series adds or changes.
    Patch,
    /// Every line gcov counts in these files (`fs/fuse/backing.c`).
    Files(Vec<String>),
    /// Every line gcov counts in these functions, in whichever profiled file has them.
    Functions(Vec<String>),
}

/// A `mutate` run: the tree and series (`build`), what to mutate, and how runs boot.
#[derive(Debug, Clone)]
pub struct Request {
    /// The tree, profile and series (`--src`, `--profile`, `--patch`).
    pub build: BuildRequest,
    /// What to mutate.
    pub scope: Scope,
    /// Accelerator, CPUs, timeouts: every run's template (its kernel and cases are set here).
    pub template: crate::run::Request,
}

/// One mutant: where, how, and the cases that execute its line in the baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mutant {
    /// Stable over runs: the file, the line and the mutated text, hashed.
    pub id: String,
    /// The file, relative to the tree.
    pub file: String,
    /// Its line, numbered as after the series.
    pub line: u32,
    /// The function gcov puts the line in.
    pub function: Option<String>,
    /// Which operator made it ([`operators`]).
    pub operator: String,
    /// The line as the series leaves it.
    pub before: String,
    /// The line as the mutant makes it.
    pub after: String,
    /// The mutant as a diff of its file (three lines of context), as a reviewer reads it.
    pub diff: String,
    /// The cases that executed the line in the baseline: the mutant's run.
    pub cases: Vec<String>,
}

/// How a mutant was killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kill {
    /// A case's verdict went from pass to fail.
    Verdict,
    /// A case crashed (its process died, or the guest went down in it).
    Crash,
    /// The guest stopped making progress.
    Hang,
    /// The kernel reported something (a WARN, a BUG, a lockdep splat) in a case whose
    /// baseline run it did not: the console saw it, whatever the verdict.
    Kernel,
    /// Only an observation changed: the snapshot would show it, no verdict did.
    Snapshot,
}

/// What happened to a mutant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fate", rename_all = "snake_case")]
pub enum Fate {
    /// A case noticed.
    Killed {
        /// How.
        by: Kill,
        /// The first case that noticed, and what it said.
        case: String,
        /// The verdict's reason, or the observation that changed.
        detail: String,
    },
    /// Every case that runs the line still passed with the same observations.
    Survived,
    /// No case executes the line: nothing was built.
    NotReached,
    /// The mutated tree did not build.
    NotCompiled {
        /// The compiler's errors.
        errors: String,
    },
}

/// A mutant and its fate, as the state file and `mutants.json` keep them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// The mutant.
    pub mutant: Mutant,
    /// What happened to it.
    pub fate: Fate,
    /// Build and run, in seconds (0 for one not reached).
    pub seconds: f64,
    /// From docs/mutants.md: why this survivor changes nothing the UAPI promises.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equivalent: Option<String>,
}

/// Where a `mutate` run stands, for a progress bar.
pub struct Progress<'a> {
    /// Mutants judged (or taken from the state file) so far.
    pub done: usize,
    /// Mutants in all.
    pub total: usize,
    /// Taken from the state file of an earlier, interrupted run.
    pub resumed: usize,
    /// The mutant just judged.
    pub last: Option<&'a Outcome>,
    /// Mutants left times the mean of those built so far.
    pub left: Option<Duration>,
}

/// A whole `mutate` run.
#[derive(Debug)]
pub struct Mutation {
    /// Every mutant judged, in order.
    pub outcomes: Vec<Outcome>,
    /// `target/fpt-runs/<time>-mutate`: mutants.json, mutants.html.
    pub dir: PathBuf,
    /// The baseline run's artifacts (its coverage report beside).
    pub baseline: PathBuf,
    /// The state file a later run resumes from.
    pub state: PathBuf,
    /// Stopped by a signal before every mutant was judged.
    pub interrupted: bool,
}

/// Make, judge and report every mutant of `req`'s scope; `each` sees each one as it ends.
pub fn run(req: &Request, each: &mut dyn FnMut(&Progress)) -> Result<Mutation> {
    let cache = crate::env::cache::dir();
    let series = crate::kernel::build::Series::read(&req.build.patches)?;
    check_scope(req, series.is_empty(), &cache)?;
    eprintln!("mutate: the baseline (the tree with the series, every case, with coverage)");
    // The baseline: the tree with the series, every case, with coverage.
    let baseline = crate::run::run(
        &crate::run::Request {
            kernel: KernelChoice::Build(BuildRequest {
                coverage: true,
                ..req.build.clone()
            }),
            coverage: true,
            cases: Vec::new(),
            ..req.template.clone()
        },
        &mut |_| {},
    )?;
    let cov = crate::results::coverage::of_run(&baseline.artifacts)?
        .ok_or_else(|| Error::coverage("the baseline run left no coverage", None))?;
    let origin = cov.build.origin.clone();
    let targets = targets(&req.scope, &cov.patches, &cov.map)?;
    let state = state_file(req, &series, &cache)?;
    // The files as the series leaves them, applied apart: the entry's working copy is
    // shared with any other build of the entry (another terminal, a test beside this one).
    let files: Vec<String> = targets.iter().map(|(f, _)| f.clone()).collect();
    let tree = crate::kernel::build::series_applied(
        &origin,
        &series,
        &files,
        &state.with_extension("tree"),
    )?;
    let mutants = generate(&targets, &cov.map, &tree)?;
    let equivalents = report::equivalents();

    let mut done = load_state(&state);
    let scratch = state.with_extension("patches");
    std::fs::create_dir_all(&scratch).map_err(|e| Error::io(scratch.display(), e))?;
    let mut outcomes = Vec::new();
    let (mut built_secs, mut built_n, mut resumed) = (0.0, 0usize, 0usize);
    let mut interrupted = false;
    for (i, mutant) in mutants.iter().enumerate() {
        if crate::env::interrupt::requested().is_some() {
            interrupted = true;
            break;
        }
        let outcome = match done.remove(&mutant.id) {
            Some(o) => {
                resumed += 1;
                o
            }
            None => {
                let started = Instant::now();
                let fate = judge(req, mutant, &baseline.results, &scratch, &cache)?;
                let seconds = started.elapsed().as_secs_f64();
                if fate != Fate::NotReached {
                    built_secs += seconds;
                    built_n += 1;
                }
                let o = Outcome {
                    mutant: mutant.clone(),
                    fate,
                    seconds,
                    equivalent: None,
                };
                append_state(&state, &o)?;
                o
            }
        };
        let outcome = Outcome {
            equivalent: equivalents
                .get(&report::equivalence_key(&outcome.mutant))
                .cloned(),
            ..outcome
        };
        outcomes.push(outcome);
        let to_build = mutants[i + 1..]
            .iter()
            .filter(|m| !m.cases.is_empty())
            .count();
        each(&Progress {
            done: i + 1,
            total: mutants.len(),
            resumed,
            last: outcomes.last(),
            left: (built_n > 0)
                .then(|| Duration::from_secs_f64(built_secs / built_n as f64 * to_build as f64)),
        });
    }
    let dir = crate::env::cache::pages_dir("mutate")?;
    report::write(&dir, &outcomes, &baseline.artifacts)?;
    Ok(Mutation {
        outcomes,
        dir,
        baseline: baseline.artifacts,
        state,
        interrupted,
    })
}

/// Bad scope, said before anything is built.
fn check_scope(req: &Request, no_series: bool, cache: &Path) -> Result<()> {
    match &req.scope {
        Scope::Patch if no_series => Err(Error::MutateScope {
            what: "no --patch and no --file".into(),
            why: "give the patch whose lines to mutate, or --file fs/fuse/<file>.c".into(),
        }),
        Scope::Patch => Ok(()),
        Scope::Files(files) => {
            let src = crate::kernel::build::source_dir(&req.build, cache)?;
            for f in files {
                if !f.starts_with(PROFILED) || !f.ends_with(".c") {
                    return Err(Error::MutateScope {
                        what: f.clone(),
                        why: format!(
                            "only the files coverage profiles can be mutated ({PROFILED}*.c)"
                        ),
                    });
                }
                if !src.join(f).is_file() {
                    return Err(Error::MutateScope {
                        what: f.clone(),
                        why: format!("no such file in {}", src.display()),
                    });
                }
            }
            Ok(())
        }
        Scope::Functions(names) if names.is_empty() => Err(Error::MutateScope {
            what: "--function".into(),
            why: "name at least one function".into(),
        }),
        Scope::Functions(_) => Ok(()),
    }?;
    // Without a series the baseline is the base tree, whose coverage the entry may keep
    // already: a file or function no case reaches is then refused before anything builds.
    if no_series {
        let entry = crate::kernel::build::entry_dir(&req.build, cache)?;
        if let Some(base) = crate::results::coverage::reach::base_of_entry(&entry) {
            targets(&req.scope, &[], &base)?;
        }
    }
    Ok(())
}

/// The (file, line) pairs to mutate: lines gcov counts, in scope.
fn targets(
    scope: &Scope,
    patches: &[crate::results::coverage::patch::PatchCoverage],
    map: &crate::results::coverage::lines::LineMap,
) -> Result<Vec<(String, u32)>> {
    let mut out: Vec<(String, u32)> = Vec::new();
    match scope {
        Scope::Patch => {
            for p in patches {
                for f in p.files.iter().filter(|f| f.file.starts_with(PROFILED)) {
                    out.extend(f.executable.iter().map(|n| (f.file.clone(), *n)));
                }
            }
            if out.is_empty() {
                return Err(Error::MutateScope {
                    what: "the series".into(),
                    why: format!("it changes no line of code in {PROFILED} (only comments, declarations or other files)"),
                });
            }
        }
        Scope::Files(files) => {
            for f in files {
                let lines = map.files.get(f).ok_or_else(|| Error::MutateScope {
                    what: f.clone(),
                    why: "not built into this kernel".into(),
                })?;
                if lines.lines.values().all(|l| l.cases.is_empty()) {
                    return Err(Error::MutateNotReached { what: f.clone() });
                }
                out.extend(lines.lines.keys().map(|n| (f.clone(), *n)));
            }
        }
        Scope::Functions(names) => {
            for name in names {
                let (file, (start, end)) = map
                    .files
                    .iter()
                    .find_map(|(file, l)| l.functions.get(name).map(|r| (file, *r)))
                    .ok_or_else(|| Error::MutateScope {
                        what: name.clone(),
                        why: format!("no function of that name in a profiled file ({PROFILED})"),
                    })?;
                let lines = &map.files[file].lines;
                if lines.range(start..=end).all(|(_, l)| l.cases.is_empty()) {
                    return Err(Error::MutateNotReached { what: name.clone() });
                }
                out.extend(lines.range(start..=end).map(|(n, _)| (file.clone(), *n)));
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Every mutant of every target line, read from the baseline's working copy.
fn generate(targets: &[(String, u32)], map: &LineMap, tree: &Path) -> Result<Vec<Mutant>> {
    let mut texts: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut out = Vec::new();
    for (file, line) in targets {
        if !texts.contains_key(file.as_str()) {
            let path = tree.join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(path.display(), e))?;
            texts.insert(file, text.lines().map(str::to_string).collect());
        }
        let lines = &texts[file.as_str()];
        let Some(before) = lines.get(*line as usize - 1) else {
            continue;
        };
        let info = map.files.get(file).and_then(|f| f.lines.get(line));
        let function = info.and_then(|l| l.function.clone());
        let returns = returns_of(lines, map, file, function.as_deref());
        let cases: Vec<String> = info
            .map(|l| l.cases.iter().cloned().collect())
            .unwrap_or_default();
        let all: Vec<&str> = lines.iter().map(String::as_str).collect();
        for m in operators::of_line(before, returns) {
            let mut h = Sha256::new();
            h.update(format!("{file}:{line}:{}", m.text));
            out.push(Mutant {
                id: crate::kernel::image::hex(&h.finalize()[..8]),
                file: file.clone(),
                line: *line,
                function: function.clone(),
                operator: m.operator.to_string(),
                before: before.clone(),
                diff: hunk(file, &all, *line, before, &m.text),
                after: m.text,
                cases: cases.clone(),
            });
        }
    }
    Ok(out)
}

/// Whether `function` returns nothing: `void` before its name on its first line (or the line
/// above, for a return type on a line of its own).
fn returns_of(lines: &[String], map: &LineMap, file: &str, function: Option<&str>) -> Returns {
    let Some(name) = function else {
        return Returns::Value;
    };
    let Some((start, _)) = map.files.get(file).and_then(|f| f.functions.get(name)) else {
        return Returns::Value;
    };
    let at = *start as usize;
    let signature: String = lines[at.saturating_sub(2)..at.min(lines.len())].join(" ");
    let head = signature.split(name).next().unwrap_or("");
    let void = head.split_whitespace().any(|w| w == "void") && !head.contains('*');
    if void {
        Returns::Void
    } else {
        Returns::Value
    }
}

/// Build `mutant` as one more patch after the series and run the cases that reach its line.
fn judge(
    req: &Request,
    mutant: &Mutant,
    baseline: &[CaseResult],
    scratch: &Path,
    cache: &Path,
) -> Result<Fate> {
    if mutant.cases.is_empty() {
        return Ok(Fate::NotReached);
    }
    let patch = scratch.join(format!("mutant-{}.patch", mutant.id));
    let mail = format!(
        "From: fpt mutate\nSubject: [PATCH] mutant of {}:{} ({})\n\n---\n{}",
        mutant.file, mutant.line, mutant.operator, mutant.diff
    );
    std::fs::write(&patch, mail).map_err(|e| Error::io(patch.display(), e))?;
    let mut patches = req.build.patches.clone();
    patches.push(patch);
    let build = BuildRequest {
        patches,
        coverage: false,
        ..req.build.clone()
    };
    match crate::kernel::build::build(&build, cache) {
        Err(Error::BuildFailed { errors, .. }) => return Ok(Fate::NotCompiled { errors }),
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    // In the baseline's order, the catalog's: the command line then carries any number of
    // them (proto::catalog::cases_param), a hundred for a line most cases run.
    let cases: Vec<String> = baseline
        .iter()
        .filter(|b| mutant.cases.contains(&b.case))
        .map(|b| b.case.clone())
        .collect();
    // One kill settles the mutant: the cases after it are not run (what `classify` finds
    // first, in catalog order, is the same kill or an earlier one of another boot).
    let failed_before: BTreeSet<String> = baseline
        .iter()
        .filter(|b| b.verdict == Verdict::Fail)
        .map(|b| b.case.clone())
        .collect();
    let stop_at = crate::boot::vm::StopAt::new(move |r| {
        let was = failed_before.contains(&r.case).then_some(Verdict::Fail);
        kill_by(was, r.verdict).is_some()
    });
    let run = crate::run::run(
        &crate::run::Request {
            kernel: KernelChoice::Build(build),
            cases,
            coverage: false,
            stop_at: Some(stop_at),
            ..req.template.clone()
        },
        &mut |_| {},
    );
    match run {
        Ok(run) => Ok(classify(baseline, &run.results, run.died.as_deref())),
        // The mutated kernel never got to the agent: it broke more than a case.
        Err(e @ Error::BootTimeout { .. }) => Ok(Fate::Killed {
            by: Kill::Crash,
            case: "(boot)".into(),
            detail: e.to_string(),
        }),
        // Anything else is the harness's or the machine's trouble, not the mutant's: said,
        // and the mutant stays unjudged for the next run.
        Err(e) => Err(e),
    }
}

/// How a case's verdict kills a mutant, given its verdict in the baseline (`was`): a hang,
/// a crash (or a case the crash kept from running), or a failure the baseline did not have.
fn kill_by(was: Option<Verdict>, now: Verdict) -> Option<Kill> {
    match now {
        Verdict::Hang => Some(Kill::Hang),
        Verdict::Crash | Verdict::NotReached => Some(Kill::Crash),
        Verdict::Fail if was != Some(Verdict::Fail) => Some(Kill::Verdict),
        _ => None,
    }
}

/// Which of the mutant's cases noticed it, against the baseline's results.
pub fn classify(baseline: &[CaseResult], got: &[CaseResult], died: Option<&str>) -> Fate {
    let before = |case: &str| baseline.iter().find(|b| b.case == case);
    for r in got {
        let was = before(&r.case).map(|b| b.verdict);
        if let Some(by) = kill_by(was, r.verdict) {
            // A case whose process the kernel will not let go of hung in the kernel, though
            // the rest of the guest went on: the mutant is a hang.
            let by = match by {
                Kill::Crash if r.reason.contains(proto::wire::STUCK_IN_KERNEL) => Kill::Hang,
                by => by,
            };
            return Fate::Killed {
                by,
                case: r.case.clone(),
                detail: r.reason.lines().next().unwrap_or("").to_string(),
            };
        }
    }
    for r in got {
        let had = before(&r.case).map_or(0, |b| b.findings.len());
        if let Some(f) = r.findings.get(had) {
            return Fate::Killed {
                by: Kill::Kernel,
                case: r.case.clone(),
                detail: f.headline.clone(),
            };
        }
    }
    if let Some(why) = died {
        return Fate::Killed {
            by: Kill::Crash,
            case: "(guest)".into(),
            detail: why.to_string(),
        };
    }
    let base: Vec<CaseResult> = baseline
        .iter()
        .filter(|b| got.iter().any(|g| g.case == b.case))
        .cloned()
        .collect();
    match crate::loops::series::compare(&base, got).into_iter().next() {
        Some(c) => Fate::Killed {
            by: Kill::Snapshot,
            case: c.case,
            detail: format!("{}: {} -> {}", c.what, c.before, c.after),
        },
        None => Fate::Survived,
    }
}

/// One line of `lines` (1-based `line`, which reads `before`) becoming `after`, with three
/// lines of context each side: a diff `git apply` takes.
fn hunk(file: &str, lines: &[&str], line: u32, before: &str, after: &str) -> String {
    let at = line as usize - 1;
    let from = at.saturating_sub(3);
    let to = (at + 4).min(lines.len());
    let mut body = String::new();
    for (i, l) in lines[from..to].iter().enumerate() {
        if from + i == at {
            body.push_str(&format!("-{before}\n+{after}\n"));
        } else {
            body.push_str(&format!(" {l}\n"));
        }
    }
    let n = to - from;
    format!(
        "diff --git a/{file} b/{file}\n--- a/{file}\n+++ b/{file}\n@@ -{},{n} +{},{n} @@\n{body}",
        from + 1,
        from + 1
    )
}

/// `<cache>/mutants/<key>.jsonl`: the key is the tree, the profile, the series' contents and
/// the scope, so that only the same question resumes.
fn state_file(
    req: &Request,
    series: &crate::kernel::build::Series,
    cache: &Path,
) -> Result<PathBuf> {
    let src = crate::kernel::build::source_dir(&req.build, cache)?;
    let mut h = Sha256::new();
    h.update(JUDGED_BY.to_le_bytes());
    h.update(src.display().to_string());
    h.update(format!("{:?}", req.build.profile));
    for (_, text) in series.mails() {
        h.update(text);
    }
    h.update(format!("{:?}", req.scope));
    let dir = cache.join("mutants");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
    Ok(dir.join(format!(
        "{}.jsonl",
        crate::kernel::image::hex(&h.finalize()[..8])
    )))
}

/// The outcomes an earlier run finished, by mutant id (a torn last line is skipped).
fn load_state(path: &Path) -> BTreeMap<String, Outcome> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Outcome>(l).ok())
        .map(|o| (o.mutant.id.clone(), o))
        .collect()
}

fn append_state(path: &Path, o: &Outcome) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path.display(), e))?;
    writeln!(
        f,
        "{}",
        serde_json::to_string(o).expect("outcomes serialise")
    )
    .map_err(|e| Error::io(path.display(), e))
}

/// Counts of a run's outcomes, and its scores.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Mutants in all.
    pub mutants: usize,
    /// Killed, however.
    pub killed: usize,
    /// Of the killed, those only an observation noticed.
    pub killed_by_snapshot_only: usize,
    /// Survived, equivalent or not.
    pub survived: usize,
    /// Of the survivors, those docs/mutants.md explains as equivalent.
    pub equivalent: usize,
    /// On lines no case executes.
    pub not_reached: usize,
    /// That did not build.
    pub not_compiled: usize,
    /// Killed by a verdict (fail, crash, hang) or a kernel report, of the reached, compiled,
    /// non-equivalent.
    pub score: Option<f64>,
}

impl Summary {
    /// The counts of `outcomes`.
    pub fn of(outcomes: &[Outcome]) -> Summary {
        let mut s = Summary {
            mutants: outcomes.len(),
            ..Summary::default()
        };
        for o in outcomes {
            match &o.fate {
                Fate::Killed { by, .. } => {
                    s.killed += 1;
                    if *by == Kill::Snapshot {
                        s.killed_by_snapshot_only += 1;
                    }
                }
                Fate::Survived if o.equivalent.is_some() => {
                    s.survived += 1;
                    s.equivalent += 1;
                }
                Fate::Survived => s.survived += 1,
                Fate::NotReached => s.not_reached += 1,
                Fate::NotCompiled { .. } => s.not_compiled += 1,
            }
        }
        let judged = s.killed + s.survived - s.equivalent;
        s.score =
            (judged > 0).then(|| (s.killed - s.killed_by_snapshot_only) as f64 / judged as f64);
        s
    }
}

/// The files a run's outcomes touch, in order.
pub fn files(outcomes: &[Outcome]) -> BTreeSet<&str> {
    outcomes.iter().map(|o| o.mutant.file.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(case: &str, verdict: Verdict, obs: &[(&str, &str)]) -> CaseResult {
        let mut r = CaseResult::new(case, verdict, "");
        r.observations = obs
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
            .collect();
        r
    }

    #[test]
    fn a_mutant_is_killed_by_a_verdict_first_then_by_an_observation() {
        let base = [
            result("a", Verdict::Pass, &[("x", "1")]),
            result("b", Verdict::Pass, &[("y", "EINVAL")]),
        ];
        let same = classify(&base, &base, None);
        assert_eq!(same, Fate::Survived);
        let got = [
            result("a", Verdict::Pass, &[("x", "1")]),
            result("b", Verdict::Pass, &[("y", "EIO")]),
        ];
        assert!(matches!(
            classify(&base, &got, None),
            Fate::Killed { by: Kill::Snapshot, ref case, .. } if case == "b"
        ));
        let got = [
            result("a", Verdict::Fail, &[("x", "2")]),
            result("b", Verdict::Hang, &[]),
        ];
        assert!(matches!(
            classify(&base, &got, None),
            Fate::Killed { by: Kill::Verdict, ref case, .. } if case == "a"
        ));
        // A case process stuck in the kernel past its timeout: a hang, not a crash.
        let mut stuck = result("a", Verdict::Crash, &[]);
        stuck.reason = format!("timed out after 10 s; {}", proto::wire::STUCK_IN_KERNEL);
        assert!(matches!(
            classify(&base, &[stuck, base[1].clone()], None),
            Fate::Killed { by: Kill::Hang, .. }
        ));
        // A kernel report in a case that passes: killed all the same.
        let mut warned = result("a", Verdict::Pass, &[("x", "1")]);
        warned.findings.push(proto::wire::Finding {
            kind: proto::wire::FindingKind::Warning,
            headline: "WARNING: at lib/idr.c".into(),
            task: None,
            trace: Vec::new(),
        });
        assert!(matches!(
            classify(&base, &[warned, base[1].clone()], None),
            Fate::Killed { by: Kill::Kernel, ref detail, .. } if detail.contains("idr")
        ));
        // A case the baseline already failed is no kill by failing again.
        let base = [result("a", Verdict::Fail, &[])];
        assert_eq!(classify(&base, &base, None), Fate::Survived);
        assert!(matches!(
            classify(&base, &base, Some("kernel panic")),
            Fate::Killed {
                by: Kill::Crash,
                ..
            }
        ));
    }

    #[test]
    fn a_hunk_has_three_lines_of_context_and_applies_at_the_file_start() {
        let lines: Vec<String> = (1..=10).map(|n| format!("line {n}")).collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let h = hunk("fs/fuse/x.c", &lines, 5, "line 5", "LINE 5");
        assert!(
            h.contains("@@ -2,7 +2,7 @@\n line 2\n line 3\n line 4\n-line 5\n+LINE 5\n line 6\n"),
            "{h}"
        );
        let h = hunk("fs/fuse/x.c", &lines, 1, "line 1", "LINE 1");
        assert!(
            h.contains("@@ -1,4 +1,4 @@\n-line 1\n+LINE 1\n line 2\n"),
            "{h}"
        );
    }

    #[test]
    fn the_score_counts_verdict_kills_of_the_judged_non_equivalent() {
        let m = |id: &str| Mutant {
            id: id.into(),
            file: "fs/fuse/x.c".into(),
            line: 1,
            function: None,
            operator: "negate condition".into(),
            before: String::new(),
            after: String::new(),
            diff: String::new(),
            cases: vec!["a".into()],
        };
        let o = |id: &str, fate: Fate, eq: bool| Outcome {
            mutant: m(id),
            fate,
            seconds: 1.0,
            equivalent: eq.then(|| "why".into()),
        };
        let killed = |by| Fate::Killed {
            by,
            case: "a".into(),
            detail: String::new(),
        };
        let s = Summary::of(&[
            o("1", killed(Kill::Verdict), false),
            o("2", killed(Kill::Snapshot), false),
            o("3", Fate::Survived, false),
            o("4", Fate::Survived, true),
            o("5", Fate::NotReached, false),
            o(
                "6",
                Fate::NotCompiled {
                    errors: String::new(),
                },
                false,
            ),
        ]);
        assert_eq!((s.killed, s.survived, s.equivalent), (2, 2, 1));
        assert_eq!((s.not_reached, s.not_compiled), (1, 1));
        assert_eq!(s.score, Some(1.0 / 3.0));
    }
}
