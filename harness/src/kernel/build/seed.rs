//! A new build entry starts from a built one of the same recipe: a second tree of one series
//! (a bisect's worktree, a git checkout after Debian's package was built, a colleague's
//! branch) is then an incremental build of what differs, not a build from nothing.
//!
//! The donor is an entry whose output directory was last built whole with the same profile
//! and fragments (its `.fpt-fragments` stamp) from a tree of the same VERSION.PATCHLEVEL.
//! Its working copy and output directory are copied with their times, so make's view (every
//! object newer than what it was built from) holds in the copy exactly as in the donor; the
//! new entry's first sync then compares every file with its own source and writes the ones
//! that differ with the time of now, which make rebuilds.
//!
//! kbuild writes absolute paths into the output directory (`.cmd` files, the `source` link,
//! gcov's `.gcda` paths compiled into fs/fuse's objects). Entry directories are
//! `<cache>/builds/<16 hex>`, so the donor's prefix is replaced by the new one byte for byte,
//! same length, in every file (objects included) with its time kept. The config is made again
//! for the new tree, and vmlinux is removed so the kernel is linked again from the copied
//! objects: a bzImage never carries the donor's paths.
//!
//! The copy is made beside the entry and moved in tree first, output last: an output
//! directory never exists without the working copy its times belong to.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};

/// What a seeding did, for the build's log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seeded {
    /// The donor entry.
    pub from: PathBuf,
    /// Files whose donor paths were rewritten.
    pub rewritten: usize,
}

/// Start `entry` (new: neither working copy nor output yet) from a built sibling entry of
/// the same `fingerprint` whose tree has the `version` of `src`. None when there is none.
pub fn from_sibling(entry: &Path, src: &Path, fingerprint: &str) -> Result<Option<Seeded>> {
    if entry.join("tree").exists() || entry.join("out").exists() {
        return Ok(None);
    }
    let Some(version) = version(src) else {
        return Ok(None);
    };
    let Some(builds) = entry.parent() else {
        return Ok(None);
    };
    let Some(donor) = donor(builds, entry, fingerprint, &version) else {
        return Ok(None);
    };
    // The donor must not be built while it is copied.
    let _lock = crate::env::cache::lock(&donor, "build")?;
    if !is_donor(&donor, fingerprint, &version) {
        return Ok(None);
    }
    let (old, new) = (prefix(&donor)?, prefix(entry)?);
    if old.len() != new.len() {
        return Ok(None);
    }
    let tmp = entry.join("seed.new");
    let seeded = copy(&donor, entry, &tmp, &old, &new);
    // Whatever happened, nothing half-made stays: the build goes on from what is in place.
    let _ = remove_dir(&tmp);
    Ok(Some(Seeded {
        from: donor,
        rewritten: seeded?,
    }))
}

/// Copy the donor's working copy and output into `tmp`, rewrite, and move them into `entry`;
/// the number of files rewritten.
fn copy(donor: &Path, entry: &Path, tmp: &Path, old: &str, new: &str) -> Result<usize> {
    remove_dir(tmp)?;
    std::fs::create_dir_all(tmp).map_err(|e| Error::io(tmp.display(), e))?;
    for part in ["tree", "out"] {
        crate::env::process::output(
            Command::new("cp")
                .args(["-a", "--reflink=auto"])
                .arg(donor.join(part))
                .arg(tmp.join(part)),
        )?;
    }
    let out = tmp.join("out");
    let rewritten = rewrite(&out, old.as_bytes(), new.as_bytes())?;
    // Made again for this tree; linked again from the rewritten objects.
    for gone in [".fpt-built", ".fpt-fragments", "vmlinux"] {
        let _ = std::fs::remove_file(out.join(gone));
    }
    let rename =
        |from: &Path, to: &Path| std::fs::rename(from, to).map_err(|e| Error::io(to.display(), e));
    rename(&tmp.join("tree"), &entry.join("tree"))?;
    // Incomplete: the first sync compares every file with the source.
    std::fs::write(entry.join("tree.manifest"), "incomplete\n")
        .map_err(|e| Error::io(entry.display(), e))?;
    rename(&out, &entry.join("out"))?;
    Ok(rewritten)
}

/// The most recently built sibling of `entry` that can seed it.
fn donor(builds: &Path, entry: &Path, fingerprint: &str, version: &str) -> Option<PathBuf> {
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(builds)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|d| d != entry && is_donor(d, fingerprint, version))
        .filter_map(|d| {
            let built = std::fs::metadata(d.join("out/.fpt-built"))
                .and_then(|m| m.modified())
                .ok()?;
            Some((built, d))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, d)| d)
}

fn is_donor(dir: &Path, fingerprint: &str, version: &str) -> bool {
    let out = dir.join("out");
    out.join(".fpt-built").is_file()
        && std::fs::read_to_string(out.join(".fpt-fragments")).is_ok_and(|s| s == fingerprint)
        && self::version(&dir.join("tree")).as_deref() == Some(version)
}

/// VERSION.PATCHLEVEL from the top Makefile: the series a tree belongs to.
fn version(tree: &Path) -> Option<String> {
    let text = std::fs::read_to_string(tree.join("Makefile")).ok()?;
    let field = |name: &str| {
        text.lines().take(10).find_map(|l| {
            l.strip_prefix(name)?
                .trim()
                .strip_prefix('=')
                .map(str::trim)
        })
    };
    Some(format!("{}.{}", field("VERSION ")?, field("PATCHLEVEL ")?))
}

/// The entry's real path with a trailing slash: how kbuild writes it (it resolves links).
fn prefix(entry: &Path) -> Result<String> {
    let real = entry
        .canonicalize()
        .map_err(|e| Error::io(entry.display(), e))?;
    Ok(format!("{}/", real.display()))
}

/// Replace `old` by `new` (same length) in every file and absolute link under `dir`, each
/// file keeping its time; returns how many changed.
fn rewrite(dir: &Path, old: &[u8], new: &[u8]) -> Result<usize> {
    assert_eq!(old.len(), new.len(), "a same-length rewrite");
    let mut changed = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| Error::io(d.display(), e))? {
            let e = e.map_err(|e| Error::io(d.display(), e))?;
            let path = e.path();
            let md = std::fs::symlink_metadata(&path).map_err(|e| Error::io(path.display(), e))?;
            if md.is_dir() {
                stack.push(path);
            } else if md.file_type().is_symlink() {
                let target = std::fs::read_link(&path).map_err(|e| Error::io(path.display(), e))?;
                let bytes = target.as_os_str().as_encoded_bytes();
                if bytes.starts_with(old) {
                    let mut to = new.to_vec();
                    to.extend_from_slice(&bytes[old.len()..]);
                    std::fs::remove_file(&path).map_err(|e| Error::io(path.display(), e))?;
                    let to = PathBuf::from(String::from_utf8_lossy(&to).into_owned());
                    std::os::unix::fs::symlink(&to, &path)
                        .map_err(|e| Error::io(path.display(), e))?;
                    changed += 1;
                }
            } else if md.is_file() {
                let mut bytes = std::fs::read(&path).map_err(|e| Error::io(path.display(), e))?;
                if replace_all(&mut bytes, old, new) {
                    let file = std::fs::File::options()
                        .write(true)
                        .truncate(true)
                        .open(&path)
                        .map_err(|e| Error::io(path.display(), e))?;
                    std::io::Write::write_all(&mut &file, &bytes)
                        .map_err(|e| Error::io(path.display(), e))?;
                    let modified = md.modified().map_err(|e| Error::io(path.display(), e))?;
                    file.set_modified(modified)
                        .map_err(|e| Error::io(path.display(), e))?;
                    changed += 1;
                }
            }
        }
    }
    Ok(changed)
}

/// Replace every `old` in `bytes` by `new` of the same length; true when any was.
fn replace_all(bytes: &mut [u8], old: &[u8], new: &[u8]) -> bool {
    let mut any = false;
    let mut i = 0;
    while i + old.len() <= bytes.len() {
        if bytes[i..].starts_with(old) {
            bytes[i..i + old.len()].copy_from_slice(new);
            any = true;
            i += old.len();
        } else {
            i += 1;
        }
    }
    any
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(dir.display(), e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    const FINGERPRINT: &str = "f00d";

    /// A built entry `<builds>/<name>` of Linux 7.3: a tree, and an output directory with
    /// a .cmd file naming the tree, an object holding the gcda path, and the source link.
    fn built(builds: &Path, name: &str, patchlevel: u32) -> PathBuf {
        let entry = builds.join(name);
        std::fs::create_dir_all(&entry).unwrap();
        let real = builds.canonicalize().unwrap().join(name);
        let (tree, out) = (entry.join("tree"), entry.join("out"));
        std::fs::create_dir_all(tree.join("fs/fuse")).unwrap();
        std::fs::create_dir_all(out.join("fs/fuse")).unwrap();
        std::fs::write(
            tree.join("Makefile"),
            format!("# SPDX\nVERSION = 7\nPATCHLEVEL = {patchlevel}\nSUBLEVEL = 0\n"),
        )
        .unwrap();
        std::fs::write(tree.join("fs/fuse/file.c"), "int a;\n").unwrap();
        std::fs::write(
            out.join("fs/fuse/.file.o.cmd"),
            format!("savedcmd := gcc -I{}/tree/include\n", real.display()),
        )
        .unwrap();
        let mut object = b"\x7fELF\0".to_vec();
        object.extend_from_slice(format!("{}/out/fs/fuse/file.gcda\0", real.display()).as_bytes());
        std::fs::write(out.join("fs/fuse/file.o"), object).unwrap();
        std::fs::write(out.join("vmlinux"), "linked").unwrap();
        std::fs::write(out.join(".fpt-fragments"), FINGERPRINT).unwrap();
        std::fs::write(out.join(".fpt-built"), "1.0").unwrap();
        std::os::unix::fs::symlink(real.join("tree"), out.join("source")).unwrap();
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        for f in ["fs/fuse/.file.o.cmd", "fs/fuse/file.o"] {
            let file = std::fs::File::options()
                .write(true)
                .open(out.join(f))
                .unwrap();
            file.set_modified(old).unwrap();
        }
        entry
    }

    #[test]
    fn a_new_entry_starts_from_a_built_one_with_its_paths_and_times() {
        let dir = tempfile::tempdir().unwrap();
        let builds = dir.path().join("builds");
        let donor = built(&builds, "aaaaaaaaaaaaaaaa", 3);
        let entry = builds.join("bbbbbbbbbbbbbbbb");
        std::fs::create_dir_all(&entry).unwrap();
        let seeded = from_sibling(&entry, &donor.join("tree"), FINGERPRINT)
            .unwrap()
            .expect("seeded");
        assert_eq!(seeded.from, donor);
        // The .cmd file, the object and the link.
        assert_eq!(seeded.rewritten, 3);
        let real = builds.canonicalize().unwrap().join("bbbbbbbbbbbbbbbb");
        let out = entry.join("out");
        let cmd = std::fs::read_to_string(out.join("fs/fuse/.file.o.cmd")).unwrap();
        assert_eq!(
            cmd,
            format!("savedcmd := gcc -I{}/tree/include\n", real.display())
        );
        let object = std::fs::read(out.join("fs/fuse/file.o")).unwrap();
        let gcda = format!("{}/out/fs/fuse/file.gcda", real.display());
        assert!(object.windows(gcda.len()).any(|w| w == gcda.as_bytes()));
        assert_eq!(
            std::fs::read_link(out.join("source")).unwrap(),
            real.join("tree")
        );
        // Times kept: make sees the copy as it saw the donor.
        let old = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        for f in ["fs/fuse/.file.o.cmd", "fs/fuse/file.o"] {
            assert_eq!(
                std::fs::metadata(out.join(f)).unwrap().modified().unwrap(),
                old
            );
        }
        // Linked and configured again; the first sync compares everything.
        for gone in ["vmlinux", ".fpt-built", ".fpt-fragments"] {
            assert!(!out.join(gone).exists(), "{gone}");
        }
        assert_eq!(
            std::fs::read_to_string(entry.join("tree.manifest")).unwrap(),
            "incomplete\n"
        );
        assert!(!entry.join("seed.new").exists());
        // The donor is untouched.
        assert!(donor.join("out/vmlinux").is_file());
        // An entry that has a working copy is not new: never seeded again.
        assert_eq!(
            from_sibling(&entry, &donor.join("tree"), FINGERPRINT).unwrap(),
            None
        );
    }

    #[test]
    fn only_the_same_fragments_and_series_seed() {
        let dir = tempfile::tempdir().unwrap();
        let builds = dir.path().join("builds");
        let other_series = built(&builds, "cccccccccccccccc", 2);
        let entry = builds.join("dddddddddddddddd");
        std::fs::create_dir_all(&entry).unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("Makefile"), "VERSION = 7\nPATCHLEVEL = 3\n").unwrap();
        // 7.2 does not seed 7.3.
        assert_eq!(from_sibling(&entry, &src, FINGERPRINT).unwrap(), None);
        let same = built(&builds, "eeeeeeeeeeeeeeee", 3);
        // Another profile or fragments do not.
        assert_eq!(from_sibling(&entry, &src, "beef").unwrap(), None);
        // Unfinished (no trust marker) does not.
        std::fs::remove_file(same.join("out/.fpt-built")).unwrap();
        assert_eq!(from_sibling(&entry, &src, FINGERPRINT).unwrap(), None);
        std::fs::write(same.join("out/.fpt-built"), "1.0").unwrap();
        let seeded = from_sibling(&entry, &src, FINGERPRINT).unwrap().unwrap();
        assert_eq!(seeded.from, same);
        assert!(other_series.join("out/vmlinux").is_file());
    }
}
