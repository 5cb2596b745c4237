//! The servers `cargo xtask validate` tests: built-in targets, fetched and built into the
//! cache on first use with the exact version recorded, or any server binary by path.
//!
//! One module per family: `libfuse` (Debian's fuse3 sources, meson), `cargo` (fuser and
//! fuse-backend-rs from crates.io, the fixtures in the workspace's `targets/`), `go_fuse`
//! (Debian's go-fuse and Go toolchain, unpacked, never installed).

mod cargo;
mod go_fuse;
mod libfuse;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use proto::validate::{Spec, MOUNTPOINT, SOURCE};

use crate::error::{Error, Result};

/// Delete every built target and the toolchains unpacked for them (Go), so the next
/// `resolve` fetches and builds afresh (`bench --validate --clean`); crates.io's downloads
/// stay in cargo's own cache.
pub fn forget_built(cache: &Path) {
    let _ = std::fs::remove_dir_all(cache.join("targets"));
    let _ = std::fs::remove_dir_all(cache.join("toolchains"));
}

/// Each built-in target: its name, and what it is.
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
    (
        "go-fuse",
        "go-fuse 2.9 (Debian sid), fs.NewLoopbackRoot: targets/go-fuse/loopback.go",
    ),
    (
        "go-fuse-2.8",
        "go-fuse 2.8 (Debian trixie-backports), the same loopback",
    ),
    (
        "go-fuse-2.4",
        "go-fuse 2.4 (Debian trixie), the same loopback: no passthrough",
    ),
    (
        "fuser",
        "fuser 0.18 (crates.io), its examples/passthrough.rs as it is: one file backed by /etc/profile",
    ),
    (
        "fuser-mirror",
        "fuser 0.18 (crates.io), a mirror server on its public API: targets/fuser-mirror",
    ),
    (
        "fuse-backend-rs",
        "fuse-backend-rs 0.14 (crates.io), PassthroughFs on a FuseSession: no passthrough",
    ),
];

/// One server of the broken-server suite: fuser-mirror with one bug planted
/// (`--bug NAME`), the kind of bug a library could ship, and what validation must say.
#[derive(Debug, Clone, Copy)]
pub struct Broken {
    /// The target's name (`cargo xtask validate --server broken-wrong-backing`).
    pub name: &'static str,
    /// fuser-mirror's `--bug`.
    pub bug: &'static str,
    /// The bug, in a sentence.
    pub what: &'static str,
    /// The validate case that must fail on it.
    pub caught_by: &'static str,
    /// Words the failed verdict's reason must hold: the bug named, not any failure.
    pub reason: &'static str,
    /// The verdict it must get: a failure, or for a server that dies or stops answering, a
    /// crash or a hang (never a harness error, nor a case timeout) whose reason also shows
    /// the server's stderr.
    pub verdict: proto::wire::Verdict,
}

/// The broken-server suite: validation's own mutation score. `cargo xtask test` validates
/// each on the host and requires its case to fail for its reason.
pub const BROKEN: &[Broken] = {
    use proto::wire::Verdict::{Crash, Fail, Hang};
    &[
        Broken {
            name: "broken-wrong-backing",
            bug: "wrong-backing",
            what: "hands the kernel the previous other inode's file as an open's backing file",
            caught_by: "validate.many_files",
            reason: "differs from its own bytes",
            verdict: Fail,
        },
        Broken {
            name: "broken-never-close",
            bug: "never-close",
            what: "never closes a backing id (no BACKING_CLOSE after the last release)",
            caught_by: "validate.backing_ids_released",
            reason: "still held by the kernel",
            verdict: Fail,
        },
        Broken {
            name: "broken-stale-backing",
            bug: "stale-backing",
            what: "keeps each inode's first backing id and reuses it after the file was replaced",
            caught_by: "validate.many_files",
            reason: "file e: read after it was replaced in {source}",
            verdict: Fail,
        },
        Broken {
            name: "broken-ignore-truncate",
            bug: "ignore-truncate",
            what: "acknowledges SETATTR with a size without truncating the file",
            caught_by: "validate.truncate_then_read",
            reason: "backing_size",
            verdict: Fail,
        },
        Broken {
            name: "broken-keep-cache",
            bug: "keep-cache",
            what: "answers FOPEN_KEEP_CACHE together with FOPEN_PASSTHROUGH",
            caught_by: "validate.many_files",
            reason: "open through the mount failed: EIO",
            verdict: Fail,
        },
        Broken {
            name: "broken-close-twice",
            bug: "close-twice",
            what: "closes every backing id twice",
            caught_by: "validate.many_files",
            reason: "a BACKING_CLOSE of the server failed",
            verdict: Fail,
        },
        Broken {
            name: "broken-close-reuse",
            bug: "close-reuse",
            what: "closes a backing id right after the open reply, while its file is open, and \
               gives its number to another inode's open",
            caught_by: "validate.many_files",
            reason: "open through the mount failed: EIO",
            verdict: Fail,
        },
        Broken {
            name: "broken-refused-zero-id",
            bug: "refused-zero-id",
            what: "answers FOPEN_PASSTHROUGH with backing id 0 where BACKING_OPEN was refused",
            caught_by: "validate.fallback_scope",
            reason: "EIO",
            verdict: Fail,
        },
        Broken {
            name: "broken-drop-writes",
            bug: "drop-writes",
            what: "serves writable opens itself and acknowledges WRITE without writing",
            caught_by: "validate.many_files",
            reason: "{source} after the close differs",
            verdict: Fail,
        },
        Broken {
            name: "broken-rename-flags-dropped",
            bug: "rename-flags-dropped",
            what:
                "drops RENAME's flags: RENAME_EXCHANGE becomes a plain rename over the other name",
            caught_by: "validate.names",
            reason: "RENAME_EXCHANGE c <-> d/b (ok)",
            verdict: Fail,
        },
        Broken {
            name: "broken-ignore-chmod",
            bug: "ignore-chmod",
            what: "acknowledges SETATTR with a mode without changing the mode",
            caught_by: "validate.attributes",
            reason: "SETATTR mode 640",
            verdict: Fail,
        },
        Broken {
            name: "broken-ignore-punch-hole",
            bug: "ignore-punch-hole",
            what: "acknowledges FALLOCATE PUNCH_HOLE without punching the hole",
            caught_by: "validate.fallocate",
            reason: "FALLOCATE PUNCH_HOLE at 64 KiB",
            verdict: Fail,
        },
        Broken {
            name: "broken-copy-from-start",
            bug: "copy-from-start",
            what: "answers COPY_FILE_RANGE from the start of the source file, whatever its offset",
            caught_by: "validate.copy_file_range",
            reason: "COPY_FILE_RANGE of in[10000..90000] to out at 50000",
            verdict: Fail,
        },
        Broken {
            name: "broken-no-dot-entries",
            bug: "no-dot-entries",
            what:
                "leaves `.` and `..` out of READDIR, as libfuse's passthrough_hp did before 3.17.1",
            caught_by: "validate.readdir",
            reason: "READDIR through the mount lacks 2 of {source}'s names: ., ..",
            verdict: Fail,
        },
        Broken {
            name: "broken-refuse-exec",
            bug: "refuse-exec",
            what: "refuses an OPEN that carries __FMODE_EXEC with EINVAL, as go-fuse 2.8.0's \
               loopback did (openat2 takes no unknown flag)",
            caught_by: "validate.exec",
            reason: "exec of {source}'s program through the mount: EINVAL",
            verdict: Fail,
        },
        Broken {
            name: "broken-times-follow-symlink",
            bug: "times-follow-symlink",
            what: "sets SETATTR's times of a symlink on its target, as go-fuse's loopback did \
               before 2.6.0",
            caught_by: "validate.attributes",
            reason: "SETATTR mtime of symlink l (AT_SYMLINK_NOFOLLOW)",
            verdict: Fail,
        },
        Broken {
            name: "broken-crash-on-open",
            bug: "crash-on-open",
            what: "aborts (SIGABRT) at its second OPEN, as a failed assertion in a library would",
            caught_by: "validate.many_files",
            reason: "signal 6 (SIGABRT)",
            verdict: Crash,
        },
        Broken {
            name: "broken-hang-on-open",
            bug: "hang-on-open",
            what: "never answers its second OPEN (the handler sleeps for ever)",
            caught_by: "validate.many_files",
            reason: "the harness aborted the connection",
            verdict: Hang,
        },
    ]
};

/// How long a server may take to mount.
const MOUNT_TIMEOUT_SECS: u64 = 10;

/// The server `server` names (a built-in target, a broken one, or a path), with `args` as
/// its argument template (a path's default: `{source} {mountpoint}`), and the backing-id
/// witness the agent preloads into it.
pub fn resolve(server: &str, args: &[String], cache: &Path) -> Result<Spec> {
    let spec = resolve_server(server, args, cache)?;
    Ok(Spec {
        witness: Some(cargo::witness(cache)?.to_string_lossy().into_owned()),
        ..spec
    })
}

/// `validate --server libfuse --source PATH`: libfuse's passthrough_hp built from the
/// user's libfuse source tree (any tag or commit), with the witness as [`resolve`] gives it.
pub fn resolve_source(server: &str, tree: &Path, cache: &Path) -> Result<Spec> {
    if server != "libfuse" {
        return Err(Error::BadLibrarySource {
            path: tree.to_path_buf(),
            why: format!(
                "only libfuse is built from a source tree (--server libfuse), not {server}"
            ),
        });
    }
    let spec = libfuse::from_tree(tree, cache)?;
    Ok(Spec {
        witness: Some(cargo::witness(cache)?.to_string_lossy().into_owned()),
        ..spec
    })
}

fn resolve_server(server: &str, args: &[String], cache: &Path) -> Result<Spec> {
    let built_in = match server {
        "libfuse" => Some(libfuse::target(server, "sid", cache)),
        "libfuse-3.17" => Some(libfuse::target(server, "trixie", cache)),
        "libfuse-3.14" => Some(libfuse::target(server, "bookworm", cache)),
        "go-fuse" => Some(go_fuse::target(server, None, cache)),
        "go-fuse-2.8" => Some(go_fuse::target(server, Some("trixie-backports"), cache)),
        "go-fuse-2.4" => Some(go_fuse::target(server, Some("trixie"), cache)),
        "fuser" => Some(cargo::fuser_example(cache)),
        "fuser-mirror" => Some(cargo::fixture("fuser-mirror", "fuser", cache)),
        "fuse-backend-rs" => Some(cargo::fixture("fuse-backend-rs", "fuse-backend-rs", cache)),
        _ => None,
    };
    if let Some(broken) = BROKEN.iter().find(|b| b.name == server) {
        let mirror = cargo::fixture("fuser-mirror", "fuser", cache)?;
        return Ok(Spec {
            target: broken.name.into(),
            version: format!(
                "{} with --bug {}: {}",
                mirror.version, broken.bug, broken.what
            ),
            args: ["--bug", broken.bug, SOURCE, MOUNTPOINT]
                .map(String::from)
                .to_vec(),
            ..mirror
        });
    }
    if let Some(spec) = built_in {
        let mut spec = spec?;
        if !args.is_empty() {
            spec.args = args.to_vec();
        }
        return Ok(spec);
    }
    if !server.contains('/') && !Path::new(server).exists() {
        let known: Vec<&str> = BUILT_IN
            .iter()
            .map(|(n, _)| *n)
            .chain(BROKEN.iter().map(|b| b.name))
            .collect();
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
        // Over the ring it runs as given: its arguments say how (`-o io_uring`), and the
        // kernel's count says whether it did.
        uring_args: Some(args.clone()),
        ..spec(&path, args)
    })
}

/// A spec for `server` with `args`, the rest as most targets have it.
fn spec(server: &Path, args: Vec<String>) -> Spec {
    Spec {
        target: String::new(),
        version: String::new(),
        server: server.to_string_lossy().into_owned(),
        args,
        env: Vec::new(),
        mount_timeout_secs: MOUNT_TIMEOUT_SECS,
        fixed_file: None,
        passthrough_off_args: None,
        witness: None,
        suite: None,
        uring_args: None,
        transport: Default::default(),
    }
}

/// `root/.built` says a build finished and what it built; `build` runs when it is missing
/// or `binary` is gone. Returns the version the marker holds.
fn built_once(
    root: &Path,
    binary: &Path,
    build: impl FnOnce() -> Result<String>,
) -> Result<String> {
    let marker = root.join(".built");
    let done = || match std::fs::read_to_string(&marker) {
        Ok(v) if binary.is_file() => Some(v.trim().to_string()),
        _ => None,
    };
    if let Some(v) = done() {
        return Ok(v);
    }
    std::fs::create_dir_all(root).map_err(|e| Error::io(root.display(), e))?;
    // Another harness may be building it: wait, then take its build if it finished.
    let _lock = crate::env::cache::lock(root, "build of this server")?;
    if let Some(v) = done() {
        return Ok(v);
    }
    let version = build()?;
    std::fs::write(&marker, &version).map_err(|e| Error::io(marker.display(), e))?;
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
