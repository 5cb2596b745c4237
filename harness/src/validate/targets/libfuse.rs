//! libfuse's `example/passthrough_hp`, from Debian's `fuse3` source packages (sid: 3.18,
//! trixie: 3.17, bookworm: 3.14, which predates passthrough: the negative control), built
//! with meson and ninja.

use std::path::Path;
use std::process::Command;

use proto::validate::{LibrarySuite, Spec, MOUNTPOINT, SOURCE};
use sha2::Digest;

use crate::env::apt::find_entry;
use crate::env::process;
use crate::error::{Error, Result};

/// libfuse's passthrough_hp, built from the `fuse3` source package of `suite` once.
/// What a build of this recipe has: a build made before it is made again, once.
const RECIPE: &str = "io_uring where liburing and libnuma are installed\n";

pub fn target(name: &str, suite: &str, cache: &Path) -> Result<Spec> {
    let root = cache.join("targets").join(name);
    let server = root.join("build/example/passthrough_hp");
    let recipe = root.join(".recipe");
    if std::fs::read_to_string(&recipe).ok().as_deref() != Some(RECIPE) {
        let _ = std::fs::remove_file(root.join(".built"));
    }
    let version = super::built_once(&root, &server, || {
        let version = build_libfuse(suite, cache, &root)?;
        std::fs::write(&recipe, RECIPE).map_err(|e| Error::io(recipe.display(), e))?;
        Ok(version)
    })?;
    // Built with FUSE over io_uring (3.18 with liburing): `-o io_uring` serves over the ring.
    let config = std::fs::read_to_string(root.join("build/fuse_config.h")).unwrap_or_default();
    let speaks_uring = config.lines().any(|l| l.trim() == "#define HAVE_URING");
    // It finds its libfuse3 through its rpath ($ORIGIN/../lib): nothing to add.
    let args = vec![SOURCE.into(), MOUNTPOINT.into(), "--foreground".into()];
    // passthrough_hp's own switch (3.17 on); 3.14 has no passthrough to switch off.
    let off = (suite != "bookworm").then(|| {
        let mut off = args.clone();
        off.push("--nopassthrough".into());
        off
    });
    let uring_args = speaks_uring.then(|| {
        let mut on = args.clone();
        on.extend(["-o".into(), "io_uring".into()]);
        on
    });
    Ok(Spec {
        target: name.into(),
        version: format!("libfuse {version} (Debian {suite})"),
        passthrough_off_args: off,
        uring_args,
        suite: own_suite(&root, &version)?,
        ..super::spec(&server, args)
    })
}

/// libfuse's own test suite (`test/run-tests.py`, 3.18 on) built in a tree of its own
/// (`suite/build`: tests and utils on), once; None for a release without that runner.
fn own_suite(root: &Path, version: &str) -> Result<Option<LibrarySuite>> {
    let Some(tree) = find_entry(&root.join("src"), |n| n.starts_with("fuse-"))? else {
        return Ok(None);
    };
    let runner = tree.join("test/run-tests.py");
    if !runner.is_file() {
        return Ok(None);
    }
    let dir = root.join("suite");
    let build = dir.join("build");
    super::built_once(&dir, &build.join("test/test_abi"), || {
        crate::env::provision::ensure("python3", "python3")?;
        eprintln!("building libfuse {version}'s own test suite (meson, ninja; about 20 s)");
        let _ = std::fs::remove_dir_all(&build);
        let mut setup = Command::new("meson");
        setup.arg("setup").arg(&build).arg(&tree);
        for option in [
            "-Dexamples=true",
            "-Dutils=true",
            "-Dtests=true",
            "-Duseroot=false",
            "-Ddisable-mtab=true",
        ] {
            setup.arg(option);
        }
        let failed = |e: Error| Error::BuildFailed {
            what: format!("building libfuse {version}'s test suite"),
            errors: e.to_string(),
            log: build.join("meson-logs/meson-log.txt"),
        };
        process::output(&mut setup).map_err(failed)?;
        process::output(Command::new("ninja").arg("-C").arg(&build)).map_err(failed)?;
        Ok(version.to_string())
    })?;
    Ok(Some(LibrarySuite {
        runner: runner.to_string_lossy().into_owned(),
        build_dir: build.to_string_lossy().into_owned(),
        chroot: None,
    }))
}

fn build_libfuse(suite: &str, cache: &Path, root: &Path) -> Result<String> {
    ensure_tools()?;
    // What an unfinished build left (not root itself: its lock is held).
    let src = root.join("src");
    let _ = std::fs::remove_dir_all(&src);
    let _ = std::fs::remove_dir_all(root.join("build"));
    let version = crate::env::apt::Apt::sources(cache)?.source("fuse3", suite, &src)?;
    let tarball = find_entry(&src, |n| n.contains(".orig.tar.") && !n.ends_with(".asc"))?
        .ok_or_else(|| Error::fetch(format!("the fuse3 source of {suite} has no .orig tarball")))?;
    process::output(
        Command::new("tar")
            .arg("-xf")
            .arg(&tarball)
            .arg("-C")
            .arg(&src),
    )?;
    // The tarball unpacks to one directory (fuse-3.18.3).
    let tree = find_entry(&src, |n| n.starts_with("fuse-"))?
        .filter(|p| p.is_dir())
        .ok_or_else(|| Error::fetch(format!("{} unpacked to no directory", tarball.display())))?;
    eprintln!("building libfuse {version} (meson, ninja; about 20 s)");
    build_tree(&tree, &root.join("build"), &version)?;
    Ok(version)
}

/// meson, ninja, the compilers; and liburing and libnuma for FUSE over io_uring (3.18 on),
/// without which (not root, no apt) libfuse builds without the ring and `--transport
/// uring` says so.
fn ensure_tools() -> Result<()> {
    for (binary, package) in [
        ("meson", "meson"),
        ("ninja", "ninja-build"),
        ("pkg-config", "pkg-config"),
        ("g++", "g++"),
    ] {
        crate::env::provision::ensure(binary, package)?;
    }
    for (package, header) in [
        ("liburing-dev", "/usr/include/liburing.h"),
        ("libnuma-dev", "/usr/include/numa.h"),
    ] {
        if let Err(e) = crate::env::provision::ensure_package(package, header) {
            eprintln!("libfuse: built without FUSE over io_uring: {e}");
        }
    }
    Ok(())
}

/// Configure `tree` into `build` once (meson), and build passthrough_hp (ninja: only what
/// changed since the last time).
fn build_tree(tree: &Path, build: &Path, version: &str) -> Result<()> {
    let what = format!("building libfuse {version}");
    if !build.join("build.ninja").is_file() {
        let _ = std::fs::remove_dir_all(build);
        std::fs::create_dir_all(build).map_err(|e| Error::io(build.display(), e))?;
        let options = std::fs::read_to_string(tree.join("meson_options.txt")).unwrap_or_default();
        let mut setup = Command::new("meson");
        setup.arg("setup").arg(build).arg(tree);
        for (option, value) in [
            ("examples", "true"),
            ("utils", "false"),
            ("tests", "false"),
            ("disable-mtab", "true"),
        ] {
            if options.contains(&format!("option('{option}'")) {
                setup.arg(format!("-D{option}={value}"));
            }
        }
        logged(&mut setup, &build.join("meson-setup.log"), &what)?;
    }
    logged(
        Command::new("ninja")
            .arg("-C")
            .arg(build)
            .arg("example/passthrough_hp"),
        &build.join("ninja.log"),
        &what,
    )
}

/// Run `cmd` with its whole output kept in `log`; a failure is the build's, naming the log
/// and the lines of it that say what went wrong (a compiler's `error:`, meson's `ERROR:`).
fn logged(cmd: &mut Command, log: &Path, what: &str) -> Result<()> {
    let command = process::describe(cmd);
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| Error::Spawn { command, source })?;
    let mut text = out.stdout;
    text.extend_from_slice(&out.stderr);
    std::fs::write(log, &text).map_err(|e| Error::io(log.display(), e))?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&text);
    let mut errors: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("error") || l.contains("ERROR"))
        .take(10)
        .collect();
    if errors.is_empty() {
        errors = text.lines().rev().take(10).collect::<Vec<_>>();
        errors.reverse();
    }
    Err(Error::BuildFailed {
        what: what.to_string(),
        errors: errors.join("\n"),
        log: log.to_path_buf(),
    })
}

/// libfuse's passthrough_hp from a libfuse source tree of the user's (`validate --server
/// libfuse --source PATH`: a checkout at any tag or commit), built in the cache, in a
/// build directory of its own per tree, incrementally each time: what the tree holds now.
pub fn from_tree(tree: &Path, cache: &Path) -> Result<Spec> {
    let tree = tree.canonicalize().map_err(|e| Error::BadLibrarySource {
        path: tree.to_path_buf(),
        why: format!("{e}; give the top of a libfuse checkout"),
    })?;
    if !tree.join("example/passthrough_hp.cc").is_file() || !tree.join("meson.build").is_file() {
        return Err(Error::BadLibrarySource {
            path: tree.clone(),
            why: "not a libfuse source tree (no meson.build and example/passthrough_hp.cc); \
                  give the top of a libfuse checkout"
                .into(),
        });
    }
    ensure_tools()?;
    let key = crate::kernel::image::hex(&sha2::Sha256::digest(tree.to_string_lossy().as_bytes()));
    let root = cache
        .join("targets")
        .join(format!("libfuse-tree-{}", &key[..12]));
    std::fs::create_dir_all(&root).map_err(|e| Error::io(root.display(), e))?;
    let _lock = crate::env::cache::lock(&root, "build of this server")?;
    let version = git_describe(&tree).unwrap_or_else(|| format!("tree {}", tree.display()));
    eprintln!(
        "building libfuse {version} from {} (meson, ninja)",
        tree.display()
    );
    build_tree(&tree, &root.join("build"), &version)?;
    let server = root.join("build/example/passthrough_hp");
    let args = vec![SOURCE.into(), MOUNTPOINT.into(), "--foreground".into()];
    let config = std::fs::read_to_string(root.join("build/fuse_config.h")).unwrap_or_default();
    let uring_args = config
        .lines()
        .any(|l| l.trim() == "#define HAVE_URING")
        .then(|| {
            let mut on = args.clone();
            on.extend(["-o".into(), "io_uring".into()]);
            on
        });
    Ok(Spec {
        target: "libfuse".into(),
        version: format!("libfuse {version} (source tree {})", tree.display()),
        uring_args,
        ..super::spec(&server, args)
    })
}

/// `git describe --tags --always --dirty` of `tree`, when it is a git checkout.
fn git_describe(tree: &Path) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(tree)
        .args(["describe", "--tags", "--always", "--dirty"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}
