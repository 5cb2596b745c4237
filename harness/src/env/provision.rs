//! Makes sure the host tools exist: installs a missing one with the host's apt-get when we
//! are root on Debian/Ubuntu (the one place the host's own package manager is used), and
//! otherwise says exactly what to run.

use std::path::Path;
use std::process::Command;

use crate::error::{Error, Result};

/// Ensure `binary` is on PATH, installing Debian package `package` if we may.
pub fn ensure(binary: &str, package: &str) -> Result<()> {
    if on_path(binary) {
        return Ok(());
    }
    let fix = format!("install it with `sudo apt-get install -y {package}`");
    let can_install =
        rustix::process::geteuid().is_root() && Path::new("/usr/bin/apt-get").exists();
    if !can_install {
        return Err(Error::ToolMissing {
            tool: binary.into(),
            fix,
        });
    }
    if !apt_install(package) {
        // The package lists may be missing on a fresh machine: refresh them once and retry.
        let _ = crate::env::process::succeeds(Command::new("apt-get").args(["update", "-q"]));
        if !apt_install(package) {
            return Err(Error::ToolMissing {
                tool: binary.into(),
                fix,
            });
        }
    }
    if on_path(binary) {
        Ok(())
    } else {
        Err(Error::ToolMissing {
            tool: binary.into(),
            fix,
        })
    }
}

fn apt_install(package: &str) -> bool {
    eprintln!("installing {package} with apt-get");
    crate::env::process::succeeds(
        Command::new("apt-get")
            // Waits for dpkg's lock instead of failing: two harnesses (tests side by side)
            // may install at once.
            .args(["-o", "DPkg::Lock::Timeout=300"])
            .args(["install", "-y", "-q", "--no-install-recommends", package])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

/// Whether `binary` is on PATH.
pub fn on_path(binary: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(binary).is_file()))
        .unwrap_or(false)
}

/// What building a kernel needs beyond a C compiler: each binary with its Debian package.
const BUILD_TOOLS: &[(&str, &str)] = &[
    ("make", "make"),
    ("gcc", "gcc"),
    ("flex", "flex"),
    ("bison", "bison"),
    ("bc", "bc"),
    ("lz4", "lz4"),
    ("tar", "tar"),
    ("xz", "xz-utils"),
];

/// Ensure the kernel build tools and libelf's headers (objtool needs them).
pub fn ensure_build_tools() -> Result<()> {
    for (binary, package) in BUILD_TOOLS {
        ensure(binary, package)?;
    }
    if !Path::new("/usr/include/libelf.h").exists() {
        ensure_package("libelf-dev", "/usr/include/libelf.h")?;
    }
    Ok(())
}

/// Install `package` with the host's apt-get (root only), refreshing its lists once if the
/// first try fails.
pub fn install_package(package: &str) -> Result<()> {
    let missing = || Error::ToolMissing {
        tool: package.into(),
        fix: format!("install it with `sudo apt-get install -y {package}`"),
    };
    if !rustix::process::geteuid().is_root() {
        return Err(missing());
    }
    if apt_install(package) {
        return Ok(());
    }
    let _ = crate::env::process::succeeds(Command::new("apt-get").args(["update", "-q"]));
    if apt_install(package) {
        Ok(())
    } else {
        Err(missing())
    }
}

/// Install `package` for a file that is not a binary on PATH (a header, say), unless the
/// file is there already.
pub fn ensure_package(package: &str, file: &str) -> Result<()> {
    if Path::new(file).exists() {
        return Ok(());
    }
    let fix = format!("install it with `sudo apt-get install -y {package}`");
    let missing = || Error::ToolMissing {
        tool: file.into(),
        fix: fix.clone(),
    };
    if !rustix::process::geteuid().is_root() {
        return Err(missing());
    }
    if !apt_install(package) {
        // The package lists may be missing on a fresh machine: refresh them once and retry.
        let _ = crate::env::process::succeeds(Command::new("apt-get").args(["update", "-q"]));
        if !apt_install(package) {
            return Err(missing());
        }
    }
    if Path::new(file).exists() {
        Ok(())
    } else {
        Err(missing())
    }
}
