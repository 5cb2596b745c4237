//! `repro`: one case run until it does not pass.

use harness::results::table;

use crate::args::Target;
use crate::fail::fail;

pub(crate) fn repro(
    target: &Target,
    runs: u32,
    same_boot: bool,
    server: Option<&str>,
    args: &[String],
) -> i32 {
    if target.cases.len() != 1 {
        eprintln!("error: repro takes exactly one --case");
        return 2;
    }
    let mut request = target.request();
    if let Some(server) = server {
        match harness::validate::targets::resolve(server, args, &harness::env::cache::dir()) {
            Ok(spec) => request.validate = Some(spec),
            Err(e) => return fail(&e),
        }
    }
    let args: Vec<String> = std::env::args().skip(2).collect();
    let rerun = harness::loops::repro::rerun_command(&args);
    let outcome =
        harness::loops::repro::repro(&request, runs, same_boot, &rerun, &mut |round, run| {
            println!("run {round}: {}", table::totals(&run.results));
        });
    match outcome {
        Ok(harness::loops::repro::Repro::Clean { .. }) => {
            println!(
                "{}: no failure and no kernel report in {runs} runs",
                target.cases[0]
            );
            0
        }
        Ok(harness::loops::repro::Repro::Hit {
            round,
            run,
            case,
            how,
        }) => {
            let r = run
                .results
                .iter()
                .find(|r| r.case == case)
                .expect("the hit is a result");
            println!(
                "run {round}: {case} {}: {}",
                table::verdict_name(r.verdict),
                r.reason.lines().next().unwrap_or("")
            );
            println!("{how}\nartifacts: {}", run.artifacts.display());
            1
        }
        Err(e) => fail(&e),
    }
}
