//! go-fuse's loopback file system (`fs.NewLoopbackRoot`, passthrough on by default), built
//! offline from Debian's packages: the library (`golang-github-hanwen-go-fuse-dev`) and the
//! modules it needs, and a Go toolchain (bookworm's is too old), all unpacked into the cache
//! and never installed. Debian ships the library without `example/`, so the `main` is the
//! workspace's fixture `targets/go-fuse/loopback.go`.

use std::fmt::Write;
use std::path::Path;
use std::process::Command;

use proto::validate::{Spec, MOUNTPOINT, SOURCE};

use crate::env::apt::Apt;
use crate::env::process;
use crate::error::{Error, Result};

const LIBRARY: &str = "golang-github-hanwen-go-fuse-dev";

/// Each Go module the build resolves: its path, and where Debian puts it under
/// `/usr/share/gocode/src` (go-fuse/v2 lives in its directory without the /v2).
const MODULES: &[(&str, &str)] = &[
    ("github.com/hanwen/go-fuse/v2", "github.com/hanwen/go-fuse"),
    ("golang.org/x/sys", "golang.org/x/sys"),
    ("golang.org/x/sync", "golang.org/x/sync"),
    (
        "github.com/kylelemons/godebug",
        "github.com/kylelemons/godebug",
    ),
    (
        "github.com/moby/sys/mountinfo",
        "github.com/moby/sys/mountinfo",
    ),
];
const PACKAGES: &[&str] = &[
    LIBRARY,
    "golang-golang-x-sys-dev",
    "golang-golang-x-sync-dev",
    "golang-github-kylelemons-godebug-dev",
    "golang-github-moby-sys-dev",
];

/// The loopback target `name`, on the library of Debian's `suite` (None: the newest the
/// archive has, sid's).
pub fn target(name: &str, suite: Option<&str>, cache: &Path) -> Result<Spec> {
    let root = cache.join("targets").join(name);
    let server = root.join("go-fuse-loopback");
    let fixture = crate::env::cache::workspace_root().join("targets/go-fuse/loopback.go");
    // A changed fixture is built again.
    let stale = match (modified(&fixture), modified(&server)) {
        (Some(f), Some(s)) => f > s,
        _ => true,
    };
    if stale {
        let _ = std::fs::remove_file(root.join(".built"));
    }
    let version = super::built_once(&root, &server, || build(cache, suite, &root, &fixture))?;
    Ok(Spec {
        target: name.into(),
        version,
        ..super::spec(&server, vec![SOURCE.into(), MOUNTPOINT.into()])
    })
}

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).ok()?.modified().ok()
}

fn build(cache: &Path, suite: Option<&str>, root: &Path, fixture: &Path) -> Result<String> {
    let apt = Apt::new(cache)?;
    let library = match suite {
        None => apt.candidate(LIBRARY)?,
        Some(suite) => apt.version_in(LIBRARY, suite)?,
    }
    .ok_or_else(|| {
        Error::fetch(format!(
            "Debian's archive has no {LIBRARY} in {}",
            suite.unwrap_or("any suite")
        ))
    })?;
    let pinned = format!("{LIBRARY}={library}");
    // The newest Go toolchain the archive has.
    let mut gos: Vec<String> = apt
        .names("golang-1.")?
        .into_iter()
        .filter(|n| n.ends_with("-go"))
        .collect();
    gos.sort_by_key(|n| crate::env::apt::version_key(n));
    let go = gos
        .pop()
        .ok_or_else(|| Error::fetch("Debian's archive has no golang-1.*-go"))?;
    let series = go.trim_start_matches("golang-").trim_end_matches("-go");
    let go_src = format!("golang-{series}-src");
    let go_version = apt.candidate(&go)?.unwrap_or_default();
    let mut packages: Vec<&str> = PACKAGES.to_vec();
    packages[0] = &pinned;
    packages.extend([go.as_str(), go_src.as_str()]);
    let tree = apt.fetch_all(
        &packages,
        &cache
            .join("toolchains")
            .join(format!("go-{series}-{library}")),
    )?;
    let goroot = tree.join(format!("usr/lib/go-{series}"));
    let gocode = tree.join("usr/share/gocode/src");

    // A module of its own that resolves every dependency to Debian's copy: no network.
    let work = root.join("build");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| Error::io(work.display(), e))?;
    let mut gomod = "module fpt/go-fuse-loopback\n\ngo 1.22\n\n".to_string();
    let _ = writeln!(gomod, "require {} v2.9.0\n\nreplace (", MODULES[0].0);
    for (module, dir) in MODULES {
        let _ = writeln!(gomod, "\t{module} => {}", gocode.join(dir).display());
    }
    gomod.push_str(")\n");
    let write = |name: &str, text: &[u8]| {
        let p = work.join(name);
        std::fs::write(&p, text).map_err(|e| Error::io(p.display(), e))
    };
    write("go.mod", gomod.as_bytes())?;
    write(
        "loopback.go",
        &std::fs::read(fixture).map_err(|e| Error::io(fixture.display(), e))?,
    )?;
    eprintln!("building go-fuse {library}'s loopback with Go {go_version} (about 30 s)");
    let mut cmd = Command::new(goroot.join("bin/go"));
    cmd.current_dir(&work)
        .args(["build", "-trimpath", "-o"])
        .arg(root.join("go-fuse-loopback"))
        .arg(".")
        .env("GOROOT", &goroot)
        .env("GOPATH", root.join("gopath"))
        .env("GOCACHE", root.join("gocache"))
        .env("GO111MODULE", "on")
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOSUMDB", "off")
        .env("GOTOOLCHAIN", "local")
        // Static: it runs in the guest from the shared root without a loader.
        .env("CGO_ENABLED", "0");
    process::output(&mut cmd).map_err(|e| Error::BuildFailed {
        what: "building go-fuse's loopback".into(),
        errors: e.to_string(),
        log: work.join("go.mod"),
    })?;
    Ok(format!(
        "go-fuse {library} (Debian), Go {go_version}, fixture targets/go-fuse"
    ))
}
