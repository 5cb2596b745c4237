//! Picks the kernel modules the guest needs from a distro kernel's `lib/modules/<release>`:
//! those of the wanted ones that are not built in, with their dependencies, in load order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What the agent and the cases may need (`images/guest-modules.txt`). Built-in ones are
/// skipped; missing ones are the kernel's business (a case that needs one says so).
pub fn wanted() -> Vec<&'static str> {
    include_str!("../../../images/guest-modules.txt")
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .collect()
}

/// A module to pack, decompressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// The module's name, as modprobe knows it.
    pub name: String,
    /// Its contents, decompressed.
    pub bytes: Vec<u8>,
}

/// The modules to load, dependencies before dependents. Distro packages ship no modules.dep
/// (depmod makes it at install), so dependencies come from each module's own `.modinfo`.
pub fn select(modules_dir: &Path, wanted: &[&str]) -> Result<Vec<Module>> {
    let kernel_dir = modules_dir.join("kernel");
    if !kernel_dir.is_dir() {
        return Err(Error::BadModules(modules_dir.into()));
    }
    let mut index = HashMap::new();
    walk(&kernel_dir, &mut index);
    let mut order = Vec::new();
    for want in wanted {
        visit(&index, &normalise(want), &mut order)?;
    }
    Ok(order)
}

/// name -> file, for every module file under `dir`.
fn walk(dir: &Path, index: &mut HashMap<String, PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, index);
        } else if let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| n.contains(".ko"))
        {
            index.insert(module_name(name), path);
        }
    }
}

fn visit(index: &HashMap<String, PathBuf>, name: &str, order: &mut Vec<Module>) -> Result<()> {
    if order.iter().any(|m| m.name == name) {
        return Ok(());
    }
    // Not a file: built in, or not in this kernel at all. Either way nothing to load.
    let Some(path) = index.get(name) else {
        return Ok(());
    };
    let bytes = load_bytes(path)?;
    for dep in depends(&bytes) {
        visit(index, &dep, order)?;
    }
    order.push(Module {
        name: name.to_string(),
        bytes,
    });
    Ok(())
}

/// The `depends=a,b` entry of a module's .modinfo section (NUL-separated key=value strings).
fn depends(module: &[u8]) -> Vec<String> {
    let key = b"depends=";
    module
        .split(|&b| b == 0)
        .find_map(|field| field.strip_prefix(key))
        .map(|v| {
            String::from_utf8_lossy(v)
                .split(',')
                .filter(|d| !d.is_empty())
                .map(normalise)
                .collect()
        })
        .unwrap_or_default()
}

/// "fuse.ko.xz" -> "fuse"; '-' and '_' are the same to the kernel.
fn module_name(file: &str) -> String {
    normalise(file.split(".ko").next().unwrap_or(file))
}

fn normalise(name: &str) -> String {
    name.replace('-', "_")
}

/// The module's bytes, decompressed: the guest kernel may not decompress modules itself.
fn load_bytes(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path.display(), e))?;
    let file = path.to_string_lossy();
    if file.ends_with(".ko") {
        return Ok(raw);
    }
    if file.ends_with(".ko.xz") {
        let mut out = Vec::new();
        lzma_rs::xz_decompress(&mut &raw[..], &mut out).map_err(|e| {
            Error::io(
                path.display(),
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad xz data: {e}")),
            )
        })?;
        return Ok(out);
    }
    Err(Error::io(
        path.display(),
        std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "unsupported module compression (only .ko and .ko.xz)",
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_module(depends: &str) -> Vec<u8> {
        format!("\x7fELF junk\0license=GPL\0depends={depends}\0vermagic=6.12\0").into_bytes()
    }

    #[test]
    fn dependencies_come_first_and_builtins_are_skipped() {
        let dir = std::env::temp_dir().join(format!("fpt-modtest-{}", std::process::id()));
        let k = dir.join("kernel/drivers");
        std::fs::create_dir_all(&k).unwrap();
        std::fs::write(
            k.join("virtio_console.ko"),
            fake_module("virtio,virtio_ring"),
        )
        .unwrap();
        std::fs::write(k.join("virtio.ko"), fake_module("virtio_ring")).unwrap();
        std::fs::write(k.join("virtio_ring.ko"), fake_module("")).unwrap();
        std::fs::write(k.join("fuse.ko"), fake_module("")).unwrap();
        let names: Vec<String> = select(&dir, &["virtio-console", "fuse", "virtio_mmio"])
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        std::fs::remove_dir_all(&dir).unwrap();
        // virtio_mmio has no file: built in (or absent), nothing to load.
        assert_eq!(names, ["virtio_ring", "virtio", "virtio_console", "fuse"]);
    }

    #[test]
    fn a_directory_without_modules_is_refused() {
        assert!(matches!(
            select(Path::new("/nonexistent"), &wanted()),
            Err(Error::BadModules(_))
        ));
    }
}
