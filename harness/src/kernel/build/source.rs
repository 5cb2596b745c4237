//! Where the kernel source comes from, and what to call it.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::env::process;
use crate::error::{Error, Result};

/// The series whose Debian source package is the default tree: the newest the archive carries,
/// the tree patches to fs/fuse are written against.
pub const DEFAULT_SERIES: &str = "7.3";

/// The Debian package whose tree is the default source (`linux-source-` and the series).
pub const DEFAULT_PACKAGE: &str = "linux-source-7.3";

/// The kernel tree a build starts from.
#[derive(Debug, Clone)]
pub struct Source {
    /// Its top directory.
    pub dir: PathBuf,
    /// Where it came from.
    pub kind: Kind,
}

/// Where a source tree came from.
#[derive(Debug, Clone)]
pub enum Kind {
    /// Debian's source package, unpacked into the cache: ours, never edited.
    Package {
        /// The package (`linux-source-7.3`).
        name: String,
        /// Its version.
        version: String,
    },
    /// A git checkout the user gave.
    Git,
    /// A plain tree the user gave.
    Plain,
}

impl Source {
    /// What results name as the source.
    pub fn describe(&self) -> String {
        match &self.kind {
            Kind::Package { name, version } => format!("{name} {version}"),
            Kind::Git => git(&self.dir, &["describe", "--always", "--dirty", "--tags"])
                .unwrap_or_else(|| format!("git tree {}", self.dir.display())),
            Kind::Plain => format!(
                "tree {} ({})",
                self.dir.display(),
                makefile_version(&self.dir).unwrap_or_default()
            ),
        }
    }

    /// The part of the build cache key that names the source: its path (and a package's
    /// version), not its contents, so edits to the tree rebuild incrementally in the same
    /// output directory.
    pub fn cache_key(&self) -> String {
        let mut key = self.dir.to_string_lossy().into_owned();
        if let Kind::Package { version, .. } = &self.kind {
            key.push('@');
            key.push_str(version);
        }
        key
    }
}

/// What `--src` takes besides a directory: `debian:<series>`, Debian's `linux-source-<series>`.
pub const DEBIAN_PREFIX: &str = "debian:";

/// The Debian source package `--src debian:<series>` names, if it names one.
pub fn debian_package(src: &Path) -> Option<String> {
    let series = src.to_str()?.strip_prefix(DEBIAN_PREFIX)?;
    Some(format!("linux-source-{series}"))
}

/// Every `linux-source-<series>` Debian's archive carries, as the series `--src
/// debian:<series>` takes, oldest first.
pub fn debian_series(cache: &Path) -> Result<Vec<String>> {
    let apt = crate::env::apt::Apt::new(cache)?;
    let mut series: Vec<String> = apt
        .names("linux-source-")?
        .into_iter()
        .filter_map(|n| n.strip_prefix("linux-source-").map(String::from))
        // Only `<major>.<minor>`: not linux-source itself nor other packagings.
        .filter(|s| {
            s.split('.').count() == 2
                && s.split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    series.sort_by_key(|s| crate::env::apt::version_key(s));
    series.dedup();
    Ok(series)
}

/// `--src DIR`, checked to be a kernel tree; `--src debian:<series>` or none, Debian's
/// source package of that series (7.3 by default), unpacked once.
pub fn resolve(src: Option<&Path>, cache: &Path) -> Result<Source> {
    let Some(dir) = src else {
        return package(cache, DEFAULT_PACKAGE);
    };
    if let Some(name) = debian_package(dir) {
        return package(cache, &name);
    }
    let dir = dir.canonicalize().map_err(|_| Error::NotKernelTree {
        dir: dir.into(),
        why: "no such directory".into(),
    })?;
    check_tree(&dir)?;
    let kind = if dir.join(".git").exists() {
        Kind::Git
    } else {
        Kind::Plain
    };
    Ok(Source { dir, kind })
}

/// A kernel tree has a top Makefile with VERSION and PATCHLEVEL, a Kconfig, and fs/fuse.
pub fn check_tree(dir: &Path) -> Result<()> {
    let why = if makefile_version(dir).is_none() {
        Some("no top-level Makefile with VERSION and PATCHLEVEL")
    } else if !dir.join("Kconfig").is_file() {
        Some("no Kconfig at the top")
    } else if !dir.join("fs/fuse").is_dir() {
        Some("no fs/fuse")
    } else {
        None
    };
    match why {
        Some(why) => Err(Error::NotKernelTree {
            dir: dir.into(),
            why: why.into(),
        }),
        None => Ok(()),
    }
}

/// "6.12.117" from the top Makefile.
pub fn makefile_version(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("Makefile")).ok()?;
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == name).then(|| v.trim().to_string())
        })
    };
    let (v, p) = (field("VERSION")?, field("PATCHLEVEL")?);
    let s = field("SUBLEVEL").unwrap_or_default();
    Some(format!("{v}.{p}.{s}"))
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `linux-source-<series>`: fetched and unpacked through the harness's apt configuration,
/// its tarball untarred, once.
fn package(cache: &Path, name: &str) -> Result<Source> {
    let name = name.to_string();
    // An unpacked tree is used as it is: asking apt costs a second on every build.
    if let Some(found) = unpacked(cache, &name) {
        return Ok(found);
    }
    let apt = crate::env::apt::Apt::new(cache)?;
    let version = apt.candidate(&name)?.ok_or_else(|| {
        Error::fetch(format!(
            "Debian's archive has no {name}; give --src a kernel tree or another debian:<series> (6.12, 7.2, 7.3)"
        ))
    })?;
    let root = cache
        .join("sources")
        .join(format!("{name}_{version}").replace(['~', '+', ':'], "_"));
    let dir = root.join(&name);
    let done = root.join(".unpacked");
    if !done.exists() {
        eprintln!("unpacking {name} {version} (once; about 30 s)");
        let _ = std::fs::remove_dir_all(&root);
        let deb_root = apt.fetch(&format!("{name}={version}"), &root.join("deb"))?;
        let tarball = deb_root.join("usr/src").join(format!("{name}.tar.xz"));
        process::output(
            Command::new("tar")
                .arg("-xf")
                .arg(&tarball)
                .arg("-C")
                .arg(&root),
        )
        .map_err(|e| Error::fetch_from(format!("untarring {}", tarball.display()), e))?;
        let _ = std::fs::remove_dir_all(root.join("deb"));
        check_tree(&dir)?;
        std::fs::write(&done, &version).map_err(|e| Error::io(done.display(), e))?;
    }
    Ok(Source {
        dir,
        kind: Kind::Package { name, version },
    })
}

/// The newest tree of `name` already unpacked in the cache, with its version.
fn unpacked(cache: &Path, name: &str) -> Option<Source> {
    let mut found: Vec<(String, PathBuf)> = std::fs::read_dir(cache.join("sources"))
        .ok()?
        .flatten()
        .filter(|e| e.path().join(".unpacked").exists())
        .filter_map(|e| {
            let dir = e.file_name().to_string_lossy().into_owned();
            let version = std::fs::read_to_string(e.path().join(".unpacked")).ok()?;
            dir.starts_with(&format!("{name}_"))
                .then(|| (version.trim().to_string(), e.path().join(name)))
        })
        .filter(|(v, _)| !v.is_empty())
        .collect();
    found.sort_by_key(|(v, _)| crate::env::apt::version_key(v));
    let (version, dir) = found.pop()?;
    Some(Source {
        dir,
        kind: Kind::Package {
            name: name.to_string(),
            version,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_package_is_the_default_series() {
        assert_eq!(DEFAULT_PACKAGE, format!("linux-source-{DEFAULT_SERIES}"));
        assert_eq!(
            debian_package(Path::new(&format!("debian:{DEFAULT_SERIES}"))).as_deref(),
            Some(DEFAULT_PACKAGE)
        );
    }

    #[test]
    fn reads_the_version_from_the_makefile() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("Makefile"),
            "# SPDX\nVERSION = 6\nPATCHLEVEL = 12\nSUBLEVEL = 117\nEXTRAVERSION =\n",
        )
        .unwrap();
        assert_eq!(makefile_version(dir.path()).unwrap(), "6.12.117");
        let err = check_tree(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no Kconfig"), "{err}");
        std::fs::write(dir.path().join("Kconfig"), "").unwrap();
        std::fs::create_dir_all(dir.path().join("fs/fuse")).unwrap();
        check_tree(dir.path()).unwrap();
    }

    #[test]
    fn a_directory_that_is_not_a_kernel_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            resolve(Some(dir.path()), dir.path()),
            Err(Error::NotKernelTree { .. })
        ));
    }
}
