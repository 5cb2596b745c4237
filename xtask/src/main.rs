//! `cargo xtask`: the command line. Each command is a module of its own that parses nothing
//! and orchestrates nothing: it calls into `harness` and prints what comes back.
//! `args` is the command line; this file sends each subcommand to its module.

use std::process::ExitCode;

use clap::Parser;

mod args;
mod bench;
mod cases;
mod coverage;
mod devloop;
mod fail;
mod kernel;
mod matrix;
mod mutate;
mod repro;
mod run;
mod soak;
mod test;
mod tidy;
mod validate;

use args::{AccelArg, Cli, Cmd, KernelCmd};
use harness::boot::qemu::Accel;
use harness::kernel::build::BuildRequest;

fn main() -> ExitCode {
    let cli = Cli::parse();
    harness::env::interrupt::install();
    let code = dispatch(cli);
    ExitCode::from(code as u8)
}

/// Each subcommand to its function; the exit code it returns.
fn dispatch(cli: Cli) -> i32 {
    match cli.command {
        Cmd::Run(args) => run::run(&args),
        Cmd::Replay {
            dir,
            reports,
            coverage,
        } => run::replay(&dir, &reports, coverage),
        Cmd::Validate {
            server,
            kernels,
            cases,
            bless,
            expect,
            reports,
            coverage,
            profile,
            transports,
            source,
            args,
        } => validate::validate(
            &server,
            &kernels,
            &cases,
            (bless, coverage, profile, transports, source),
            expect,
            &reports,
            &args,
        ),
        Cmd::Test { full } => test::test(full),
        Cmd::Bench {
            matrix: true,
            clean,
            ..
        } => matrix::bench(clean),
        Cmd::Bench {
            target,
            io: true,
            server,
            ..
        } => devloop::bench_io(&target, server.as_deref()),
        // `bench --coverage` (the run option): the coverage loop on 7.3 built from source.
        Cmd::Bench { target, runs, .. } if target.coverage => {
            coverage::bench(&target.request(), runs)
        }
        Cmd::Bench {
            target,
            kernel_build: true,
            clean,
            ..
        } => bench::kernel_build(&target, clean),
        Cmd::Bench {
            target,
            runs,
            validate: Some(server),
            clean,
            ..
        } => bench::validate(&target, &server, runs, clean),
        Cmd::Bench {
            target,
            runs,
            all,
            clean,
            ..
        } => bench::bench(&target, runs, all, clean),
        Cmd::Soak { target, runs } => soak::soak(&target, runs),
        Cmd::Repro {
            target,
            runs,
            same_boot,
            server,
            server_args,
        } => repro::repro(&target, runs, same_boot, server.as_deref(), &server_args),
        Cmd::Kernel {
            command: KernelCmd::Build(source),
        } => kernel::build(&source),
        Cmd::Kernel {
            command: KernelCmd::Config(source),
        } => kernel::config(&source),
        Cmd::Cases { markdown } => cases::cases(markdown),
        Cmd::Kernels => matrix::kernels(),
        Cmd::Bisect {
            src,
            good,
            bad,
            case,
            observation,
            profile,
            fragments,
            config,
            accel,
        } => devloop::bisect(harness::loops::bisect::Request {
            tree: src,
            good,
            bad,
            case,
            observation,
            build: BuildRequest {
                profile,
                fragments,
                config,
                ..Default::default()
            },
            accel: accel.map(|a| match a {
                AccelArg::Kvm => Accel::Kvm,
                AccelArg::Tcg => Accel::Tcg,
            }),
            step_command: devloop::bisect_step_command(),
        }),
        Cmd::BisectStep { state } => harness::loops::bisect::step(&state),
        Cmd::Mutate {
            target,
            files,
            functions,
        } => mutate::mutate(&target, &files, &functions),
        Cmd::Series { target, reports } => {
            if target.source.patches.is_empty() {
                eprintln!("error: series needs --patch (a format-patch file or an mbox series; repeatable)");
                2
            } else {
                devloop::series(&target, &reports)
            }
        }
        Cmd::Matrix(args) => matrix::matrix(&args),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_parses() {
        use clap::CommandFactory;
        crate::args::Cli::command().debug_assert();
    }

    /// `--bless` writes whole snapshots: with `--case` or `--shard` it is refused (exit 2)
    /// before anything is built, fetched or run, and no snapshot changes.
    #[test]
    fn bless_of_part_of_the_catalog_is_refused_before_anything_runs() {
        use clap::Parser;
        let snapshots = harness::env::cache::workspace_root().join("tests/snapshots");
        let before = listing(&snapshots);
        for line in [
            "validate --server fuser --case validate.round_trip --bless",
            "validate --server /no/such/server --kernel host --case validate.round_trip --bless",
            "run --kernel host --case init.offer --bless",
            "run --kernel host --shard 1/2 --bless",
            "matrix --kernel host --kernel debian:6.12 --case init.offer --bless",
        ] {
            let args = std::iter::once("xtask").chain(line.split(' '));
            let cli = crate::args::Cli::try_parse_from(args).expect(line);
            assert_eq!(super::dispatch(cli), 2, "{line}");
        }
        assert_eq!(listing(&snapshots), before, "a snapshot changed");
    }

    /// Bad input that is found before any work has a code of its own.
    #[test]
    fn a_series_patch_that_does_not_exist_has_its_own_code() {
        use clap::Parser;
        let cli =
            crate::args::Cli::try_parse_from(["xtask", "series", "--patch", "/no/such/fix.patch"])
                .unwrap();
        assert_eq!(super::dispatch(cli), 34);
    }

    /// Every snapshot file with its contents.
    fn listing(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(listing(&path));
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
        out.sort();
        out
    }
}
