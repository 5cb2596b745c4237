//! `fpt-agent`: `/init` of the test VM, or run by hand (host mode).
//!
//! - as PID 1: set the VM up, run the cases named on the kernel command line, power off;
//! - `fpt-agent run [CASE,...|all]`: run cases on the running kernel, events on stdout;
//! - `fpt-agent case NAME`: one case, isolated (what `run` starts for each case);
//! - `fpt-agent list --json`: the catalog, as the host reads it.

use guest::runner::Markers;
use guest::{cases, pid1, runner};

fn main() {
    if rustix::process::getpid().is_init() {
        pid1::main();
    }
    let args: Vec<String> = std::env::args().collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args[1..] {
        ["case", name] => runner::case_main(name),
        // A helper process of privilege.user_namespace_root.
        ["userns-probe", dir] => cases::privilege::userns_probe(dir),
        ["list", "--json"] => {
            println!(
                "{}",
                serde_json::to_string(&cases::infos()).expect("the catalog serialises")
            );
        }
        ["run"] | ["run", _] => {
            let selected = match cases::select(args.get(2).copied().unwrap_or("all")) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("fpt-agent: {e}");
                    std::process::exit(2);
                }
            };
            let mut out = std::io::stdout().lock();
            let hello = proto::Event::Hello {
                kernel_release: rustix::system::uname()
                    .release()
                    .to_string_lossy()
                    .into_owned(),
                cases: selected.iter().map(|c| c.name.to_string()).collect(),
                modules: Vec::new(),
                share: None,
            };
            let ran = runner::emit(&mut out, &hello)
                .and_then(|()| runner::run_all(&selected, &mut out, Markers::None, None));
            if let Err(e) = ran {
                eprintln!("fpt-agent: writing results: {e}");
                std::process::exit(1);
            }
        }
        _ => {
            eprintln!("usage: fpt-agent run [all|CASE,CASE...] | fpt-agent case NAME | fpt-agent list --json");
            std::process::exit(2);
        }
    }
}
