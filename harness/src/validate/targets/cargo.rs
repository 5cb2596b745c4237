//! Targets built with cargo from crates.io: the fixtures in the workspace's `targets/`
//! (each a crate of its own with its own Cargo.lock, outside the workspace), and fuser's own
//! `examples/passthrough.rs`, built from the fuser crate cargo unpacked for a fixture.

use std::path::{Path, PathBuf};
use std::process::Command;

use proto::validate::{FixedFile, Spec, MOUNTPOINT, SOURCE};

use crate::env::process;
use crate::error::{Error, Result};

/// The fixture in `targets/<dir>`, built (incrementally: a no-op once built) into the cache.
/// `library` is the crate whose locked version the results record.
pub fn fixture(dir: &str, library: &str, cache: &Path) -> Result<Spec> {
    let crate_dir = crate::env::cache::workspace_root()
        .join("targets")
        .join(dir);
    let lock = crate_dir.join("Cargo.lock");
    let version = locked_version(&lock, library)?;
    let target_dir = cache.join("targets").join(dir).join("target");
    build(
        &crate_dir,
        &target_dir,
        &[],
        &format!("the {dir} fixture ({library} {version})"),
    )?;
    let bin = binary_name(&crate_dir)?;
    Ok(Spec {
        target: dir.into(),
        version: format!("{library} {version} (crates.io), fixture targets/{dir}"),
        ..super::spec(
            &target_dir.join("release").join(bin),
            vec![SOURCE.into(), MOUNTPOINT.into()],
        )
    })
}

/// The backing-id witness (`targets/backing-witness`, an `LD_PRELOAD` library), built into
/// the cache: its path.
pub fn witness(cache: &Path) -> Result<PathBuf> {
    let dir = crate::env::cache::workspace_root().join("targets/backing-witness");
    let target_dir = cache.join("targets/backing-witness/target");
    build(&dir, &target_dir, &[], "the backing-id witness")?;
    Ok(target_dir.join("release/libbacking_witness.so"))
}

/// fuser's `examples/passthrough.rs` as its authors wrote it: one file, `passthrough`,
/// backed by `/etc/profile`. Its crate pins a toolchain (`rust-toolchain`) that cannot be
/// installed here; the copy built is the crate without that file, with the installed stable.
pub fn fuser_example(cache: &Path) -> Result<Spec> {
    // The mirror fixture depends on the same fuser: building it unpacks the crate.
    let mirror = fixture("fuser-mirror", "fuser", cache)?;
    let version = mirror
        .version
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    let root = cache.join("targets/fuser");
    let src = root.join(format!("fuser-{version}"));
    let target_dir = root.join("target");
    let server = target_dir.join("release/examples/passthrough");
    super::built_once(&root, &server, || {
        let unpacked = registry_crate(&format!("fuser-{version}"))?;
        let _ = std::fs::remove_dir_all(&src);
        std::fs::create_dir_all(&root).map_err(|e| Error::io(root.display(), e))?;
        process::output(Command::new("cp").arg("-a").arg(&unpacked).arg(&src))?;
        let _ = std::fs::remove_file(src.join("rust-toolchain"));
        build(
            &src,
            &target_dir,
            &["--example", "passthrough"],
            &format!("fuser {version}'s examples/passthrough.rs"),
        )?;
        Ok(version.clone())
    })?;
    Ok(Spec {
        target: "fuser".into(),
        version: format!("fuser {version} (crates.io), examples/passthrough.rs"),
        fixed_file: Some(FixedFile {
            name: "passthrough".into(),
            backing: "/etc/profile".into(),
        }),
        // `cargo run --example passthrough MOUNTPOINT`, as its header says.
        ..super::spec(&server, vec![MOUNTPOINT.into()])
    })
}

/// `cargo build --release` of the crate in `dir` into `target_dir`.
fn build(dir: &Path, target_dir: &Path, extra: &[&str], what: &str) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.arg("build")
        .arg("--release")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .args(extra)
        // Whatever toolchain file a crate pins (fuser's names 1.85, which rustup would try
        // to download for its build script), the toolchain running us builds it.
        .env(
            "RUSTUP_TOOLCHAIN",
            std::env::var("RUSTUP_TOOLCHAIN").unwrap_or_else(|_| "stable".into()),
        );
    if dir.join("Cargo.lock").is_file() {
        cmd.arg("--locked");
    }
    process::output(&mut cmd).map_err(|e| Error::BuildFailed {
        what: format!("building {what}"),
        errors: e.to_string(),
        log: dir.join("Cargo.toml"),
    })?;
    Ok(())
}

/// The version of `package` a Cargo.lock pins.
fn locked_version(lock: &Path, package: &str) -> Result<String> {
    let text = std::fs::read_to_string(lock).map_err(|e| Error::io(lock.display(), e))?;
    let needle = format!("name = \"{package}\"");
    let mut lines = text.lines().skip_while(|l| l.trim() != needle);
    lines
        .nth(1)
        .and_then(|l| l.trim().strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .map(String::from)
        .ok_or_else(|| Error::fetch(format!("{} pins no {package}", lock.display())))
}

/// The `[package] name` of the crate in `dir`: its binary's name.
fn binary_name(dir: &Path) -> Result<String> {
    let manifest = dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).map_err(|e| Error::io(manifest.display(), e))?;
    text.lines()
        .find_map(|l| l.trim().strip_prefix("name = \""))
        .and_then(|v| v.strip_suffix('"'))
        .map(String::from)
        .ok_or_else(|| Error::fetch(format!("{} names no package", manifest.display())))
}

/// Where cargo unpacked the crate `name-version` from crates.io.
fn registry_crate(name: &str) -> Result<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_else(|| "/root/.cargo".into());
    let registries = home.join("registry/src");
    std::fs::read_dir(&registries)
        .map_err(|e| Error::io(registries.display(), e))?
        .flatten()
        .map(|r| r.path().join(name))
        .find(|p| p.join("Cargo.toml").is_file())
        .ok_or_else(|| {
            Error::fetch(format!(
                "cargo did not unpack {name} under {}",
                registries.display()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_pin_their_libraries() {
        let root = crate::env::cache::workspace_root().join("targets");
        assert_eq!(
            locked_version(&root.join("fuser-mirror/Cargo.lock"), "fuser").unwrap(),
            "0.18.0"
        );
        assert_eq!(
            locked_version(&root.join("fuse-backend-rs/Cargo.lock"), "fuse-backend-rs").unwrap(),
            "0.14.0"
        );
        assert_eq!(
            binary_name(&root.join("fuse-backend-rs")).unwrap(),
            "fuse-backend-rs-server"
        );
    }
}
