//! `fpt-agent`: `/init` of the test VM, or run by hand (host mode).
//!
//! - as PID 1: set the VM up, run the cases named on the kernel command line, power off;
//! - `fpt-agent run [CASE,...|all]`: run cases on the running kernel, events on stdout;
//! - `fpt-agent case NAME`: one case, isolated (what `run` starts for each case).

use guest::{init, runner};

fn main() {
    if rustix::process::getpid().is_init() {
        init::main();
    }
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("case") if args.len() == 3 => runner::case_main(&args[2]),
        // A helper process of privilege.user_namespace_root.
        Some("userns-probe") if args.len() == 3 => guest::cases::privilege::userns_probe(&args[2]),
        Some("run") if args.len() <= 3 => {
            let selected = match init::select(args.get(2).map_or("all", String::as_str)) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("fpt-agent: {e}");
                    std::process::exit(2);
                }
            };
            let mut out = std::io::stdout().lock();
            if let Err(e) = runner::run_all(&selected, &mut out) {
                eprintln!("fpt-agent: writing results: {e}");
                std::process::exit(1);
            }
        }
        _ => {
            eprintln!("usage: fpt-agent run [all|CASE,CASE...] | fpt-agent case NAME");
            std::process::exit(2);
        }
    }
}
