//! `cargo xtask repro`: one case again and again (a fresh boot each time, or N times in one
//! boot) until it does not pass or the kernel reports something; that run's artifacts get a
//! `repro.txt` with the kernel's identity, the command that reruns it and the QEMU command.

use proto::Verdict;

use crate::error::Result;
use crate::results::record::Run;
use crate::run::Request;

/// How a repro ended.
pub enum Repro {
    /// Every round passed with no kernel report.
    Clean {
        /// Rounds run.
        rounds: u32,
    },
    /// Round `round` hit: `case` did not pass or the kernel reported something.
    Hit {
        /// The round, from 1.
        round: u32,
        /// That round's run, its artifacts kept.
        run: Box<Run>,
        /// The case.
        case: String,
        /// What it did: its verdict and reason, or the kernel's report.
        how: String,
    },
}

/// `req` names one case; `rerun` is the `cargo xtask run ...` command that reruns it.
pub fn repro(
    req: &Request,
    runs: u32,
    same_boot: bool,
    rerun: &str,
    each: &mut dyn FnMut(u32, &Run),
) -> Result<Repro> {
    let mut req = req.clone();
    let rounds = if same_boot {
        req.cases = vec![req.cases[0].clone(); runs as usize];
        1
    } else {
        runs
    };
    for round in 1..=rounds {
        let run = crate::run::run(&req, &mut |_| {})?;
        let hit = run
            .results
            .iter()
            .find(|r| r.verdict != Verdict::Pass || !r.findings.is_empty())
            .map(|r| r.case.clone());
        let Some(case) = hit else {
            each(round, &run);
            continue;
        };
        let qemu =
            std::fs::read_to_string(run.artifacts.join("qemu-command.txt")).unwrap_or_default();
        let how = format!(
            "{}\nrerun: cargo xtask {rerun}\nqemu: {}",
            crate::results::table::identity(&run.identity, &run.mode),
            qemu.trim()
        );
        let _ = std::fs::write(run.artifacts.join("repro.txt"), &how);
        return Ok(Repro::Hit {
            round,
            run: Box::new(run),
            case,
            how,
        });
    }
    Ok(Repro::Clean { rounds })
}

/// The command line that reruns what a `repro` command line found, once: `run` with the
/// same options, repro's own dropped; with a server under test (`--server`, which `run`
/// does not take), `repro` itself with `--runs 1`.
pub fn rerun_command(repro_args: &[String]) -> String {
    let with_server = repro_args
        .iter()
        .any(|a| a == "--server" || a.starts_with("--server="));
    let mut args = repro_args.iter();
    let mut again = vec![if with_server { "repro" } else { "run" }.to_string()];
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => {
                args.next();
            }
            "--same-boot" => {}
            _ if a.starts_with("--runs=") => {}
            _ => again.push(a.clone()),
        }
    }
    if with_server {
        // Before any `--` that starts the server's own arguments.
        let at = again.iter().position(|a| a == "--").unwrap_or(again.len());
        again.insert(at, "--runs 1".into());
    }
    again.join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_rerun_command_drops_repros_own_options() {
        let args: Vec<String> = [
            "--case",
            "a.b",
            "--runs",
            "5",
            "--same-boot",
            "--runs=3",
            "--profile",
            "debug",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            super::rerun_command(&args),
            "run --case a.b --profile debug"
        );
    }
}
