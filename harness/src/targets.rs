//! The servers `cargo xtask validate` tests: built-in targets, fetched and built into the
//! cache on first use with the exact version recorded, or any server binary by path.
//!
//! Built in so far: libfuse's `example/passthrough_hp` from Debian's `fuse3` source packages
//! (sid: 3.18, trixie: 3.17, bookworm: 3.14, which predates passthrough: the negative
//! control), built with meson and ninja.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use proto::validate::{Spec, MOUNTPOINT, SOURCE};

use crate::debian::find_entry;
use crate::error::{Error, Result};
use crate::process;

/// Each built-in target: its name, what it is, and how to get it.
pub const BUILT_IN: &[(&str, &str)] = &[
    (
        "libfuse",
        "libfuse 3.18 (Debian sid's fuse3), example/passthrough_hp",
    ),
    (
        "libfuse-3.17",
        "libfuse 3.17 (Debian trixie's fuse3), example/passthrough_hp",
    ),
    (
        "libfuse-3.14",
        "libfuse 3.14 (Debian bookworm's fuse3), example/passthrough_hp: no passthrough",
    ),
];

/// How long a server may take to mount.
const MOUNT_TIMEOUT_SECS: u64 = 10;

/// The server `server` names (a built-in target or a path), with `args` as its argument
/// template (a path's default: `{source} {mountpoint}`).
pub fn resolve(server: &str, args: &[String], cache: &Path) -> Result<Spec> {
    let suite = match server {
        "libfuse" => Some("sid"),
        "libfuse-3.17" => Some("trixie"),
        "libfuse-3.14" => Some("bookworm"),
        _ => None,
    };
    if let Some(suite) = suite {
        let mut spec = libfuse(server, suite, cache)?;
        if !args.is_empty() {
            spec.args = args.to_vec();
        }
        return Ok(spec);
    }
    if !server.contains('/') && !Path::new(server).exists() {
        let known: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
        return Err(Error::UnknownTarget {
            name: server.into(),
            known: known.join(", "),
        });
    }
    let path = PathBuf::from(server);
    let bad = |why: &str| Error::BadServer {
        path: path.clone(),
        why: why.into(),
    };
    let meta = std::fs::metadata(&path).map_err(|_| bad("no such file"))?;
    if !meta.is_file() {
        return Err(bad("not a file"));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(bad("not executable"));
    }
    let path = path
        .canonicalize()
        .map_err(|e| Error::io(path.display(), e))?;
    let args = if args.is_empty() {
        vec![SOURCE.into(), MOUNTPOINT.into()]
    } else {
        args.to_vec()
    };
    Ok(Spec {
        target: path
            .file_name()
            .map_or("server".into(), |n| n.to_string_lossy().into_owned()),
        version: format!("a binary given by path ({})", path.display()),
        server: path.to_string_lossy().into_owned(),
        args,
        env: Vec::new(),
        mount_timeout_secs: MOUNT_TIMEOUT_SECS,
    })
}

/// libfuse's passthrough_hp, built from the `fuse3` source package of `suite` once.
fn libfuse(name: &str, suite: &str, cache: &Path) -> Result<Spec> {
    let root = cache.join("targets").join(name);
    let marker = root.join(".built");
    let server = root.join("build/example/passthrough_hp");
    let version = match std::fs::read_to_string(&marker) {
        Ok(v) if server.is_file() => v.trim().to_string(),
        _ => build_libfuse(suite, cache, &root)?,
    };
    std::fs::write(&marker, &version).map_err(|e| Error::io(marker.display(), e))?;
    Ok(Spec {
        target: name.into(),
        version: format!("libfuse {version} (Debian {suite})"),
        server: server.to_string_lossy().into_owned(),
        // It finds its libfuse3 through its rpath ($ORIGIN/../lib): nothing to add.
        args: vec![SOURCE.into(), MOUNTPOINT.into(), "--foreground".into()],
        env: Vec::new(),
        mount_timeout_secs: MOUNT_TIMEOUT_SECS,
    })
}

fn build_libfuse(suite: &str, cache: &Path, root: &Path) -> Result<String> {
    for (binary, package) in [
        ("meson", "meson"),
        ("ninja", "ninja-build"),
        ("pkg-config", "pkg-config"),
        ("g++", "g++"),
    ] {
        crate::provision::ensure(binary, package)?;
    }
    let _ = std::fs::remove_dir_all(root);
    let src = root.join("src");
    let version = crate::debian::Apt::sources(cache)?.source("fuse3", suite, &src)?;
    let tarball = find_entry(&src, |n| n.contains(".orig.tar.") && !n.ends_with(".asc"))?
        .ok_or_else(|| Error::Fetch(format!("the fuse3 source of {suite} has no .orig tarball")))?;
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
        .ok_or_else(|| Error::Fetch(format!("{} unpacked to no directory", tarball.display())))?;
    eprintln!("building libfuse {version} (meson, ninja; about 20 s)");
    let options = std::fs::read_to_string(tree.join("meson_options.txt")).unwrap_or_default();
    let mut setup = Command::new("meson");
    setup.arg("setup").arg(root.join("build")).arg(&tree);
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
    let failed = |e: Error| Error::BuildFailed {
        what: format!("building libfuse {version}"),
        errors: e.to_string(),
        log: root.join("build/meson-logs/meson-log.txt"),
    };
    process::output(&mut setup).map_err(failed)?;
    process::output(
        Command::new("ninja")
            .arg("-C")
            .arg(root.join("build"))
            .arg("example/passthrough_hp"),
    )
    .map_err(failed)?;
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_servers_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let err = resolve(&missing.to_string_lossy(), &[], dir.path()).unwrap_err();
        assert!(err.to_string().contains("no such file"), "{err}");
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "x").unwrap();
        let err = resolve(&plain.to_string_lossy(), &[], dir.path()).unwrap_err();
        assert!(err.to_string().contains("not executable"), "{err}");
        let err = resolve("no-such-library", &[], dir.path()).unwrap_err();
        assert!(err.to_string().contains("libfuse-3.14"), "{err}");
        let spec = resolve("/bin/true", &[], dir.path()).unwrap();
        assert_eq!(spec.args, ["{source}", "{mountpoint}"]);
    }
}
