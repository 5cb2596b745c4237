//! What a kernel to boot is: its bzImage, modules, release and config ([`Kernel`], found in
//! a path or an unpacked package), and who it is in results ([`Identity`], with the patches
//! of a build, [`PatchInfo`]).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A kernel to boot: its bzImage, modules, release and identity.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The bzImage.
    pub bzimage: PathBuf,
    /// `lib/modules/<release>` of the same kernel, when it has modules we may need.
    pub modules: Option<PathBuf>,
    /// The release string from the bzImage header ("6.12.117+deb12-cloud-amd64").
    pub release: String,
    /// Who it is, for the results.
    pub identity: Identity,
    /// The kernel's .config, when we know where it is.
    pub config: Option<PathBuf>,
    /// For a kernel built here with `--coverage`: its objects, tree and series, which a
    /// coverage report reads.
    pub coverage: Option<crate::kernel::CoverageBuild>,
}

impl Kernel {
    /// Whether the kernel has ACPI: true unless its known .config says otherwise. Without
    /// it, microvm runs with acpi=off and QEMU names the virtio-mmio devices on the
    /// command line.
    pub fn has_acpi(&self) -> bool {
        let Some(config) = &self.config else {
            return true;
        };
        std::fs::read_to_string(config)
            .map_or(true, |text| text.lines().any(|l| l == "CONFIG_ACPI=y"))
    }
}

/// Who a kernel is: carried by every run's results.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Identity {
    /// The release string (`uname -r`).
    pub release: String,
    /// `git describe --always --dirty`, a package and its version, or a path.
    pub source: String,
    /// The patch series it was built with, in order.
    pub patches: Vec<PatchInfo>,
    /// The config profile it was built with; empty for a kernel we did not build.
    pub profile: String,
    /// sha256 of its .config, first 16 hex digits; empty when unknown.
    pub config_hash: String,
}

impl Kernel {
    /// A bzImage the user gave, checked to be one.
    pub fn from_path(bzimage: &Path, modules: Option<&Path>) -> Result<Kernel> {
        if !bzimage.exists() {
            return Err(Error::KernelMissing(bzimage.into()));
        }
        let bytes = std::fs::read(bzimage).map_err(|e| Error::io(bzimage.display(), e))?;
        let release = bzimage_release(&bytes).map_err(|why| Error::NotBzImage {
            path: bzimage.into(),
            why,
        })?;
        if let Some(m) = modules {
            if !m.join("kernel").is_dir() {
                return Err(Error::BadModules(m.into()));
            }
        }
        // A bzImage inside an unpacked Debian package: its modules are beside it.
        let found = match modules {
            Some(_) => None,
            None => package_root(bzimage).and_then(|root| modules_in(&root, &release)),
        };
        let modules = modules.or(found.as_deref());
        let identity = Identity {
            release: release.clone(),
            source: format!("bzImage {}", bzimage.display()),
            ..Default::default()
        };
        // A bzImage in a build tree: its .config is at the top of that tree; in a Debian
        // package, beside it or in the modules directory.
        let config = bzimage
            .ancestors()
            .nth(4)
            .filter(|_| bzimage.ends_with("arch/x86/boot/bzImage"))
            .map(|top| top.join(".config"))
            .into_iter()
            .chain(package_root(bzimage).into_iter().flat_map(|root| {
                [
                    root.join("boot").join(format!("config-{release}")),
                    root.join("usr/lib/modules").join(&release).join("config"),
                ]
            }))
            .find(|c| c.is_file());
        let config_hash = config.as_deref().map(file_hash).unwrap_or_default();
        Ok(Kernel {
            bzimage: bzimage.into(),
            modules: modules.map(Into::into),
            release,
            identity: Identity {
                config_hash,
                ..identity
            },
            config,
            coverage: None,
        })
    }

    /// The kernel of release `release` in an unpacked Debian package tree (either packaging:
    /// see [`crate::kernel::debian`]).
    pub fn from_package_tree(root: &Path, release: &str) -> Result<Kernel> {
        let bzimage = [
            root.join("boot").join(format!("vmlinuz-{release}")),
            root.join("usr/lib/modules").join(release).join("vmlinuz"),
        ]
        .into_iter()
        .find(|p| p.is_file())
        .or_else(|| first_match(&root.join("boot"), "vmlinuz-"))
        .ok_or_else(|| Error::fetch(format!("{} holds no vmlinuz of {release}", root.display())))?;
        Kernel::from_path(&bzimage, None)
    }
}

/// The release string of an x86 bzImage, read from its setup header, or why it is not one.
pub fn bzimage_release(bytes: &[u8]) -> Result<String, String> {
    // Boot protocol: 0xAA55 at 0x1FE, "HdrS" at 0x202, kernel_version (a pointer into the
    // setup code, minus 0x200) at 0x20E.
    if bytes.len() < 0x210 {
        return Err(format!(
            "{} bytes, too short for a boot sector and setup header",
            bytes.len()
        ));
    }
    if bytes[0x1FE..0x200] != [0x55, 0xAA] {
        return Err("no boot signature 0xAA55 at offset 0x1FE".into());
    }
    if &bytes[0x202..0x206] != b"HdrS" {
        return Err("no \"HdrS\" setup header magic at offset 0x202".into());
    }
    let ptr = u16::from_le_bytes([bytes[0x20E], bytes[0x20F]]) as usize + 0x200;
    let tail = bytes
        .get(ptr..)
        .ok_or("kernel_version points past the end")?;
    let end = tail
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(tail.len())
        .min(256);
    let version = String::from_utf8_lossy(&tail[..end]);
    let release = version.split_whitespace().next().unwrap_or("");
    if release.is_empty() {
        return Err("empty kernel_version string".into());
    }
    Ok(release.to_string())
}

/// "6.12" from "6.12.117+deb12-cloud-amd64": snapshots are kept per release series.
pub fn series(release: &str) -> String {
    release
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .next()
        .unwrap_or(release)
        .split('.')
        .take(2)
        .collect::<Vec<_>>()
        .join(".")
}

fn first_match(dir: &Path, prefix: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    found.sort();
    found.pop()
}

/// Where an unpacked Debian kernel package keeps the modules of `release`, if it has them:
/// `lib/modules/<release>` (Debian 12) or `usr/lib/modules/<release>` (merged /usr).
fn modules_in(root: &Path, release: &str) -> Option<PathBuf> {
    ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|d| root.join(d).join(release))
        .find(|m| m.join("kernel").is_dir())
}

/// The root of the unpacked package a bzImage sits in: `<root>/boot/vmlinuz-<rel>` or
/// `<root>/usr/lib/modules/<rel>/vmlinuz`.
fn package_root(bzimage: &Path) -> Option<PathBuf> {
    let name = bzimage.file_name()?.to_string_lossy();
    if name.starts_with("vmlinuz-") && bzimage.parent()?.ends_with("boot") {
        return Some(bzimage.parent()?.parent()?.to_path_buf());
    }
    if name == "vmlinuz" && bzimage.parent()?.parent()?.ends_with("usr/lib/modules") {
        return Some(bzimage.ancestors().nth(5)?.to_path_buf());
    }
    None
}

/// One patch of a series, as a kernel's identity names it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PatchInfo {
    /// File name, with the mail's index when the file is an mbox of several.
    pub name: String,
    /// sha256 of the mail, first 16 hex digits.
    pub sha256: String,
}

/// sha256 of a file, first 16 hex digits (empty if unreadable).
pub fn file_hash(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| hex(&Sha256::digest(&b))[..16].to_string())
        .unwrap_or_default()
}

/// Bytes as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_bzimage(version: &str) -> Vec<u8> {
        let mut b = vec![0u8; 0x400];
        b[0x1FE] = 0x55;
        b[0x1FF] = 0xAA;
        b[0x202..0x206].copy_from_slice(b"HdrS");
        let at = 0x300usize;
        b[0x20E..0x210].copy_from_slice(&((at - 0x200) as u16).to_le_bytes());
        b[at..at + version.len()].copy_from_slice(version.as_bytes());
        b
    }

    #[test]
    fn reads_the_release_from_the_setup_header() {
        let b = fake_bzimage("6.12.117+deb12-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP");
        assert_eq!(bzimage_release(&b).unwrap(), "6.12.117+deb12-cloud-amd64");
    }

    #[test]
    fn refuses_what_is_not_a_bzimage() {
        assert!(bzimage_release(b"#!/bin/sh\n")
            .unwrap_err()
            .contains("too short"));
        let mut b = fake_bzimage("6.1.0");
        b[0x202] = b'X';
        assert!(bzimage_release(&b).unwrap_err().contains("HdrS"));
        b = fake_bzimage("6.1.0");
        b[0x1FE] = 0;
        assert!(bzimage_release(&b).unwrap_err().contains("0xAA55"));
    }

    #[test]
    fn finds_the_root_of_an_unpacked_package() {
        assert_eq!(
            package_root(Path::new("/c/root/boot/vmlinuz-6.18.15+deb13-cloud-amd64")),
            Some(PathBuf::from("/c/root"))
        );
        assert_eq!(
            package_root(Path::new(
                "/c/root/usr/lib/modules/7.3.4+deb13-cloud-amd64/vmlinuz"
            )),
            Some(PathBuf::from("/c/root"))
        );
        assert_eq!(package_root(Path::new("/src/arch/x86/boot/bzImage")), None);
    }

    #[test]
    fn series_of_releases() {
        assert_eq!(series("6.12.117+deb12-cloud-amd64"), "6.12");
        assert_eq!(series("6.1.0-56-cloud-amd64"), "6.1");
        assert_eq!(series("6.18.44-fc-v657"), "6.18");
    }
}
