//! `cargo xtask bisect`: the first commit at which one case's verdict (or one of its
//! observations) changed, by `git bisect run` in a worktree of the harness's own.
//!
//! The user's checkout and its HEAD are never touched: the worktree lives in the cache (one
//! per tree, kept between bisects, so its build entry is incremental across them) and is
//! registered with `git worktree add`. The endpoints are evaluated first: the good commit's
//! result is what "good" means for every step (anything else is bad), and a range whose ends
//! agree is refused. A commit that does not build is skipped (`git bisect skip`, exit 125).
//! Each step is this program again (`xtask bisect-step`), reading the state file written
//! here and appending what it found to the steps log.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::boot::qemu::Accel;
use crate::error::{Error, Result};
use crate::kernel::build::BuildRequest;
use crate::kernel::KernelChoice;

/// What to bisect.
#[derive(Debug, Clone)]
pub struct Request {
    /// The top of a kernel git checkout.
    pub tree: PathBuf,
    /// The good end: a commit, tag or branch.
    pub good: String,
    /// The bad end.
    pub bad: String,
    /// The case to watch.
    pub case: String,
    /// Bisect on this observation of the case instead of its verdict.
    pub observation: Option<String>,
    /// Profile, fragments and config of every step's build (`src` and `patches` unused).
    pub build: BuildRequest,
    /// The accelerator; None: probe.
    pub accel: Option<Accel>,
    /// The command `git bisect run` runs for each step, state file appended: this program's
    /// `bisect-step`.
    pub step_command: Vec<String>,
}

/// What every step reads: written once by [`run`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// The harness's own worktree of the tree.
    pub worktree: PathBuf,
    /// The case to watch.
    pub case: String,
    /// Its observation to watch instead of the verdict.
    pub observation: Option<String>,
    /// Config profile of each step's build.
    pub profile: Option<String>,
    /// Extra config fragments of each step's build.
    pub fragments: Vec<PathBuf>,
    /// The .config each step's build starts from.
    pub config: Option<PathBuf>,
    /// "kvm", "tcg", or none (probe).
    pub accel: Option<String>,
    /// The good commit's result: a step giving anything else is bad.
    pub good_result: String,
    /// JSON lines, one per step.
    pub steps_log: PathBuf,
}

/// One evaluated commit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Step {
    /// The commit's hash.
    pub commit: String,
    /// Its subject line.
    pub subject: String,
    /// The verdict or observation, or "does not build".
    pub result: String,
    /// "good", "bad" or "skip".
    pub call: String,
    /// The step's run, when it built.
    pub artifacts: Option<PathBuf>,
}

/// What a bisect found.
#[derive(Debug)]
pub struct Outcome {
    /// The first commit whose result differs from the good end's.
    pub first_bad: String,
    /// Its subject line.
    pub subject: String,
    /// The good end, evaluated.
    pub good: Step,
    /// The bad end, evaluated.
    pub bad: Step,
    /// The commits git bisect had evaluated, in order.
    pub steps: Vec<Step>,
    /// bisect.json, git-bisect.log and git's own output.
    pub dir: PathBuf,
}

/// Bisect `req`; `each` sees the endpoints and every step as they end.
pub fn run(req: &Request, each: &mut dyn FnMut(&Step)) -> Result<Outcome> {
    let tree = git_top(&req.tree)?;
    crate::kernel::build::source::check_tree(&tree)?;
    let good = rev(&tree, &req.good)?;
    let bad = rev(&tree, &req.bad)?;
    // Held to the end: the steps check out commits in the worktree this bisect owns.
    let (worktree, _lock) = worktree(&tree, &bad)?;
    if !git(&tree, &["merge-base", "--is-ancestor", &good, &bad])?
        .status
        .success()
    {
        // git bisect's own word on it (in our worktree: the user's stays untouched), then
        // ours.
        let said = git_text(
            &worktree,
            &["bisect", "start", "--no-checkout", &bad, &good],
        );
        let _ = git(&worktree, &["bisect", "reset", "--quiet"]);
        return Err(Error::Bisect {
            why: format!(
                "--good {} is not an ancestor of --bad {}: good and bad the wrong way round? \
                 (git bisect says: {})",
                req.good,
                req.bad,
                said.trim()
            ),
        });
    }
    let dir = crate::env::cache::artifacts_dir("bisect")?;
    let state = State {
        worktree: worktree.clone(),
        case: req.case.clone(),
        observation: req.observation.clone(),
        profile: req.build.profile.clone(),
        fragments: req.build.fragments.clone(),
        config: req.build.config.clone(),
        accel: req.accel.map(|a| match a {
            Accel::Kvm => "kvm".to_string(),
            Accel::Tcg => "tcg".to_string(),
        }),
        good_result: String::new(),
        steps_log: dir.join("steps.jsonl"),
    };
    // The endpoints, evaluated here: what good means, and that the range is worth it.
    let good_step = checkout_and_evaluate(&state, &good)?;
    each(&good_step);
    let bad_step = checkout_and_evaluate(&state, &bad)?;
    each(&bad_step);
    for s in [&good_step, &bad_step] {
        if s.result == DOES_NOT_BUILD {
            return Err(Error::Bisect {
                why: format!(
                    "{} ({}) does not build: fix the range's ends",
                    s.commit, s.subject
                ),
            });
        }
    }
    if good_step.result == bad_step.result {
        return Err(Error::Bisect {
            why: format!(
                "{} gives {} at both {} and {}: nothing changed between them",
                what(&state),
                good_step.result,
                req.good,
                req.bad
            ),
        });
    }
    let state = State {
        good_result: good_step.result.clone(),
        ..state
    };
    let state_file = dir.join("state.json");
    std::fs::write(
        &state_file,
        serde_json::to_string_pretty(&state).expect("state serialises"),
    )
    .map_err(|e| Error::io(state_file.display(), e))?;

    let _ = git(&worktree, &["bisect", "reset"]);
    let started = git(&worktree, &["bisect", "start", &bad, &good])?;
    if !started.status.success() {
        return Err(Error::Bisect {
            why: format!(
                "git bisect start: {}",
                String::from_utf8_lossy(&started.stderr).trim()
            ),
        });
    }
    // Each step's result is streamed by the step itself (stderr is ours); git's own lines go
    // to a log.
    let log_path = dir.join("git-bisect-run.log");
    let log = std::fs::File::create(&log_path).map_err(|e| Error::io(log_path.display(), e))?;
    let (program, args) = req
        .step_command
        .split_first()
        .expect("a step command is given");
    let status = Command::new("git")
        .current_dir(&worktree)
        .args(["bisect", "run", program])
        .args(args)
        .arg(&state_file)
        .stdin(Stdio::null())
        .stdout(log)
        .status()
        .map_err(|source| Error::Spawn {
            command: "git bisect run".into(),
            source,
        })?;
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    let bisect_log = git_text(&worktree, &["bisect", "log"]);
    let _ = std::fs::write(dir.join("git-bisect.log"), &bisect_log);
    let first_bad = output
        .lines()
        .find_map(|l| l.strip_suffix(" is the first bad commit"))
        .map(str::to_string);
    let _ = git(&worktree, &["bisect", "reset"]);
    let steps = read_steps(&state.steps_log);
    let Some(first_bad) = first_bad else {
        let tail: Vec<&str> = output.lines().rev().take(8).collect();
        return Err(Error::Bisect {
            why: format!(
                "git bisect run ended ({status}) without a first bad commit (log {}):\n{}",
                log_path.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ),
        });
    };
    let subject = git_text(&tree, &["log", "-1", "--format=%s", &first_bad])
        .trim()
        .to_string();
    let outcome = Outcome {
        first_bad,
        subject,
        good: good_step,
        bad: bad_step,
        steps,
        dir,
    };
    let json = serde_json::json!({
        "case": req.case,
        "observation": req.observation,
        "good": outcome.good,
        "bad": outcome.bad,
        "first_bad": outcome.first_bad,
        "subject": outcome.subject,
        "steps": outcome.steps,
    });
    let path = outcome.dir.join("bisect.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&json).unwrap_or_default(),
    )
    .map_err(|e| Error::io(path.display(), e))?;
    Ok(outcome)
}

const DOES_NOT_BUILD: &str = "does not build";

/// One step of `git bisect run`, in a process of its own: evaluate the worktree's HEAD and
/// answer git: 0 good, 1 bad, 125 skip (does not build), 128 stop (anything else broke).
pub fn step(state_file: &Path) -> i32 {
    // git bisect run hands its GIT_* variables down; kbuild's setlocalversion would then
    // find the worktree's repository from the working copy and name the kernel "+": a
    // different release (and rebuild) than the ends got.
    let git_vars: Vec<String> = std::env::vars()
        .map(|(k, _)| k)
        .filter(|k| k.starts_with("GIT_"))
        .collect();
    for k in git_vars {
        std::env::remove_var(k);
    }
    let state: State = match std::fs::read_to_string(state_file)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
    {
        Some(s) => s,
        None => {
            eprintln!("bisect step: cannot read {}", state_file.display());
            return 128;
        }
    };
    let head = match rev(&state.worktree, "HEAD") {
        Ok(h) => h,
        Err(e) => {
            eprintln!("bisect step: {e}");
            return 128;
        }
    };
    match evaluate(&state, &head) {
        Ok(step) => {
            eprintln!(
                "  {} {}: {} ({})",
                &step.commit[..12.min(step.commit.len())],
                step.subject,
                step.result,
                step.call
            );
            match step.call.as_str() {
                "good" => 0,
                "skip" => 125,
                _ => 1,
            }
        }
        Err(e) => {
            eprintln!("bisect step at {head}: {e}");
            128
        }
    }
}

fn checkout_and_evaluate(state: &State, commit: &str) -> Result<Step> {
    let out = git(
        &state.worktree,
        &["checkout", "--quiet", "--detach", "-f", commit],
    )?;
    if !out.status.success() {
        return Err(Error::Bisect {
            why: format!(
                "git checkout {commit} in {}: {}",
                state.worktree.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    evaluate(state, commit)
}

/// Build the worktree as it is (incrementally), run the case, and call the result.
fn evaluate(state: &State, commit: &str) -> Result<Step> {
    let subject = git_text(&state.worktree, &["log", "-1", "--format=%s", commit])
        .trim()
        .to_string();
    let build = BuildRequest {
        src: Some(state.worktree.clone()),
        profile: state.profile.clone(),
        fragments: state.fragments.clone(),
        config: state.config.clone(),
        ..Default::default()
    };
    let mut step = Step {
        commit: commit.to_string(),
        subject,
        result: DOES_NOT_BUILD.into(),
        call: "skip".into(),
        artifacts: None,
    };
    match crate::kernel::build::build(&build, &crate::env::cache::dir()) {
        Err(Error::BuildFailed { .. }) => {
            append(&state.steps_log, &step);
            return Ok(step);
        }
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    let run = crate::run::run(
        &crate::run::Request {
            kernel: KernelChoice::Build(build),
            cases: vec![state.case.clone()],
            accel: state.accel.as_deref().map(|a| match a {
                "kvm" => Accel::Kvm,
                _ => Accel::Tcg,
            }),
            ..Default::default()
        },
        &mut |_| {},
    )?;
    let result = run.results.iter().find(|r| r.case == state.case);
    step.result = match (result, &state.observation) {
        (None, _) => "no result".into(),
        (Some(r), None) => crate::results::table::verdict_name(r.verdict).into(),
        (Some(r), Some(key)) => r
            .observations
            .get(key)
            .map_or_else(|| "(none)".into(), crate::results::table::show_value),
    };
    step.call = if state.good_result.is_empty() {
        "end".into()
    } else if step.result == state.good_result {
        "good".into()
    } else {
        "bad".into()
    };
    step.artifacts = Some(run.artifacts.clone());
    append(&state.steps_log, &step);
    Ok(step)
}

fn what(state: &State) -> String {
    match &state.observation {
        Some(k) => format!("{} observation {k}", state.case),
        None => format!("{}'s verdict", state.case),
    }
}

fn append(log: &Path, step: &Step) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = writeln!(f, "{}", serde_json::to_string(step).unwrap_or_default());
    }
}

/// The steps git bisect ran (the endpoints, evaluated before it, left out).
fn read_steps(log: &Path) -> Vec<Step> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Step>(l).ok())
        .filter(|s| s.call != "end")
        .collect()
}

/// The harness's worktree of `tree`, at `commit`: made once, reused (and reset) after.
fn worktree(tree: &Path, commit: &str) -> Result<(PathBuf, std::fs::File)> {
    use sha2::Digest;
    let key = crate::kernel::image::hex(&sha2::Sha256::digest(tree.to_string_lossy().as_bytes()));
    let home = crate::env::cache::dir().join("bisect").join(&key[..16]);
    std::fs::create_dir_all(&home).map_err(|e| Error::io(home.display(), e))?;
    // One bisect of a tree at a time: a second one would check out its commits under the
    // first one's build.
    let lock = crate::env::cache::lock(&home, "bisect of this tree")?;
    let wt = home.join("worktree");
    if wt.join(".git").exists() && git(&wt, &["rev-parse", "--git-dir"])?.status.success() {
        let _ = git(&wt, &["bisect", "reset", "--quiet"]);
        return Ok((wt, lock));
    }
    let _ = std::fs::remove_dir_all(&wt);
    let _ = git(tree, &["worktree", "prune"]);
    let wt_str = wt.to_string_lossy().into_owned();
    let out = git(
        tree,
        &["worktree", "add", "--detach", "-f", &wt_str, commit],
    )?;
    if !out.status.success() {
        return Err(Error::Bisect {
            why: format!(
                "git worktree add: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    Ok((wt, lock))
}

/// The top of the git checkout `dir` is: it must be `dir` itself.
fn git_top(dir: &Path) -> Result<PathBuf> {
    let canonical = dir.canonicalize().map_err(|_| Error::NotGitTree {
        dir: dir.into(),
        why: "no such directory".into(),
    })?;
    let out = git(&canonical, &["rev-parse", "--show-toplevel"])?;
    let top = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || top.is_empty() {
        return Err(Error::NotGitTree {
            dir: dir.into(),
            why: "git rev-parse found no repository".into(),
        });
    }
    if Path::new(&top) != canonical {
        return Err(Error::NotGitTree {
            dir: dir.into(),
            why: format!("it is inside the checkout {top}, not its top"),
        });
    }
    Ok(canonical)
}

/// The full commit id of `rev`.
fn rev(dir: &Path, rev: &str) -> Result<String> {
    let spec = format!("{rev}^{{commit}}");
    let out = git(dir, &["rev-parse", "--verify", "--quiet", &spec])?;
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || id.is_empty() {
        return Err(Error::UnknownRevision {
            rev: rev.into(),
            dir: dir.into(),
        });
    }
    Ok(id)
}

fn git(dir: &Path, args: &[&str]) -> Result<std::process::Output> {
    Command::new("git")
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            command: format!("git {}", args.first().copied().unwrap_or("")),
            source,
        })
}

/// stdout and stderr of a git command, as text (empty if it could not run).
fn git_text(dir: &Path, args: &[&str]) -> String {
    git(dir, args).map_or_else(
        |_| String::new(),
        |o| {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s
        },
    )
}
