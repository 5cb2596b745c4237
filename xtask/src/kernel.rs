//! `kernel build` and `kernel config`.

use crate::args::Source;
use crate::fail::fail;
use harness::results::table;

/// `kernel build`: the build's identity, bzImage and log, and how long it took.
pub(crate) fn build(source: &Source) -> i32 {
    let started = std::time::Instant::now();
    match harness::kernel::build::build(&source.request(), &harness::env::cache::dir()) {
        Ok(built) => {
            println!("{}", table::identity(&built.kernel.identity, &"built"));
            println!("bzImage: {}", built.kernel.bzimage.display());
            println!("build log: {}", built.dir.join("build.log").display());
            let what = if built.rebuilt { "built" } else { "up to date" };
            println!("{what} in {:.1} s", started.elapsed().as_secs_f64());
            0
        }
        Err(e) => fail(&e),
    }
}

/// `kernel config`: only the build's .config, checked, and its path.
pub(crate) fn config(source: &Source) -> i32 {
    match harness::kernel::build::configure(&source.request(), &harness::env::cache::dir()) {
        Ok(config) => {
            println!("config: {}", config.display());
            0
        }
        Err(e) => fail(&e),
    }
}
