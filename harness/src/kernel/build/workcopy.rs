//! The build's working copy of a source tree (`<entry>/tree`): what make builds from. It
//! stays at one path whatever series is applied, so kbuild's absolute paths in the output
//! directory stay valid and every build of the entry is incremental.
//!
//! Each build brings it to "the source as it is now, plus the series", changing only what
//! differs:
//! - the files the series touches are made first in a scratch directory (a patch that does
//!   not apply fails there, the working copy untouched) and written only where their content
//!   differs from the working copy's, so a file a new series leaves as it was keeps its time
//!   and is not rebuilt;
//! - every other file is a hard link to the source's file (made once by `cp -al`: an edit in
//!   place shows at once), or a file of its own whose content was found equal to the
//!   source's (kept: its older time spares a rebuild). Where the content differs, the
//!   source's file is copied in with the time of now, so make always rebuilds from it;
//! - a manifest lists every path that may differ from the source. It is written, marked
//!   incomplete, before the first change and rewritten complete after the last: a sync cut
//!   short (Ctrl-C, a crash, a full disk) is repaired by the next one.
//!
//! The source is never written to: files are replaced by rename, never written through a
//! link.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::patches::Series;
use crate::error::{Error, Result};

/// What a sync did, for the build's log line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Synced {
    /// The working copy was made afresh (first build of the entry, or it was unusable).
    pub created: bool,
    /// Files written because their content changed (series or source).
    pub written: usize,
    /// Files removed (gone from the source, or only the old series had them).
    pub removed: usize,
}

/// Bring `<entry>/tree` to `src` plus `series`; returns its path and what changed.
pub fn sync(src: &Path, series: &Series, entry: &Path) -> Result<(PathBuf, Synced)> {
    sync_with(src, series, entry, None)
}

/// [`sync`], stopping (as an interruption would) after `stop_after` changes: for the tests.
pub(crate) fn sync_with(
    src: &Path,
    series: &Series,
    entry: &Path,
    stop_after: Option<usize>,
) -> Result<(PathBuf, Synced)> {
    let tree = entry.join("tree");
    let manifest_path = entry.join("tree.manifest");
    // The series first, in scratch: nothing is changed when it does not apply.
    let scratch = entry.join("scratch");
    let touched = series.paths();
    let patched = apply_in_scratch(src, series, &touched, &scratch);
    let patched = match patched {
        Ok(p) => p,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&scratch);
            return Err(e);
        }
    };

    let mut done = Synced::default();
    let mut manifest = Manifest::read(&manifest_path);
    if !tree.is_dir() || manifest.is_none() {
        remove_dir(&tree)?;
        link_copy(src, &tree)?;
        done.created = true;
        manifest = Some(Manifest::default());
    }
    let mut manifest = manifest.unwrap_or_default();
    // Whatever happens below, the next sync must look at these.
    manifest.complete = false;
    manifest.touched.extend(touched.iter().cloned());
    manifest.write(&manifest_path)?;

    let mut budget = stop_after.unwrap_or(usize::MAX);
    let mut spend = |n: &mut usize| -> bool {
        *n += 1;
        if budget == 0 {
            return false;
        }
        budget -= 1;
        true
    };

    // The series' files: the scratch version, or gone.
    for rel in &touched {
        let want = patched.join(rel);
        let have = tree.join(rel);
        let differs = match std::fs::symlink_metadata(&want) {
            Ok(_) => !same_content(&want, &have),
            Err(_) => std::fs::symlink_metadata(&have).is_ok(),
        };
        if !differs {
            continue;
        }
        if !spend(&mut done.written) {
            return Err(interrupted());
        }
        if want.exists() {
            write_fresh(&want, &have)?;
        } else {
            remove_file(&have)?;
        }
        manifest.pinned.remove(rel);
    }
    let _ = std::fs::remove_dir_all(&scratch);

    // Everything else follows the source.
    let src_files = walk(src)?;
    let tree_files = walk(&tree)?;
    for (rel, s) in &src_files {
        if touched.contains(rel) {
            continue;
        }
        let in_sync = match tree_files.get(rel) {
            Some(t) if t.dev == s.dev && t.ino == s.ino => {
                manifest.pinned.remove(rel);
                true
            }
            Some(_) if manifest.pinned.get(rel) == Some(&s.signature()) => true,
            Some(_) if same_content(&src.join(rel), &tree.join(rel)) => {
                manifest.pinned.insert(rel.clone(), s.signature());
                true
            }
            _ => false,
        };
        if in_sync {
            continue;
        }
        if !spend(&mut done.written) {
            return Err(interrupted());
        }
        // A copy with the time of now, never a link to a file whose time may be older than
        // the objects built from what was here (a previous series' version, another
        // checkout's): make must rebuild from it.
        write_fresh(&src.join(rel), &tree.join(rel))?;
        manifest.pinned.insert(rel.clone(), s.signature());
    }
    for rel in tree_files.keys() {
        if src_files.contains_key(rel) || touched.contains(rel) {
            continue;
        }
        if !spend(&mut done.removed) {
            return Err(interrupted());
        }
        remove_file(&tree.join(rel))?;
        manifest.pinned.remove(rel);
    }
    manifest.touched = touched;
    manifest.complete = true;
    manifest.write(&manifest_path)?;
    Ok((tree, done))
}

fn interrupted() -> Error {
    Error::io(
        "working copy",
        std::io::Error::new(std::io::ErrorKind::Interrupted, "sync stopped on request"),
    )
}

/// `files` of `src` as `series` leaves them, in a fresh `scratch` (with every other file the
/// series touches): what a tool that reads the patched tree needs while the entry's own
/// working copy may be switched by another build (`mutate` reads its files from here).
pub fn series_applied(
    src: &Path,
    series: &Series,
    files: &[String],
    scratch: &Path,
) -> Result<PathBuf> {
    let mut paths = series.paths();
    paths.extend(files.iter().cloned());
    apply_in_scratch(src, series, &paths, scratch)
}

/// Copy `paths` that exist in `src` into a fresh `scratch` and apply `series` there.
fn apply_in_scratch(
    src: &Path,
    series: &Series,
    paths: &BTreeSet<String>,
    scratch: &Path,
) -> Result<PathBuf> {
    remove_dir(scratch)?;
    std::fs::create_dir_all(scratch).map_err(|e| Error::io(scratch.display(), e))?;
    for rel in paths {
        let from = src.join(rel);
        if std::fs::symlink_metadata(&from).is_ok_and(|m| m.is_file()) {
            let to = scratch.join(rel);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io(parent.display(), e))?;
            }
            std::fs::copy(&from, &to).map_err(|e| Error::io(to.display(), e))?;
        }
    }
    let mails = scratch.join(".fpt-mails");
    std::fs::create_dir_all(&mails).map_err(|e| Error::io(mails.display(), e))?;
    for (i, (name, text)) in series.mails().enumerate() {
        let file = mails.join(format!("{:04}.patch", i + 1));
        std::fs::write(&file, text).map_err(|e| Error::io(file.display(), e))?;
        let out = Command::new("git")
            .current_dir(scratch)
            // Never let git find a repository above the scratch directory: paths would be
            // taken relative to it.
            .env(
                "GIT_CEILING_DIRECTORIES",
                scratch.parent().unwrap_or(scratch),
            )
            .args(["apply", "--verbose", "--whitespace=nowarn"])
            .arg(&file)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| Error::Spawn {
                command: "git apply".into(),
                source,
            })?;
        if !out.status.success() {
            return Err(Error::PatchFailed {
                patch: name.to_string(),
                why: super::patches::failing_hunk(&String::from_utf8_lossy(&out.stderr)),
            });
        }
    }
    std::fs::remove_dir_all(&mails).map_err(|e| Error::io(mails.display(), e))?;
    Ok(scratch.to_path_buf())
}

/// The first working copy: hard links to every file of `src` (its `.git` left out).
fn link_copy(src: &Path, tree: &Path) -> Result<()> {
    if let Some(parent) = tree.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent.display(), e))?;
    }
    let linked = Command::new("cp")
        .arg("-al")
        .arg(src)
        .arg(tree)
        .stderr(Stdio::null())
        .status();
    if !linked.is_ok_and(|s| s.success()) {
        // Another file system: hard links cannot cross it, copy instead.
        remove_dir(tree)?;
        crate::env::process::output(
            Command::new("cp")
                .args(["-a", "--reflink=auto"])
                .arg(src)
                .arg(tree),
        )?;
    }
    let git = tree.join(".git");
    if git.is_dir() {
        remove_dir(&git)?;
    } else {
        let _ = std::fs::remove_file(&git);
    }
    Ok(())
}

/// Files and symlinks under `root` by path relative to it, `.git` left out.
fn walk(root: &Path) -> Result<BTreeMap<String, Meta>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(dir.display(), e))?;
        for e in entries {
            let e = e.map_err(|e| Error::io(dir.display(), e))?;
            let name = e.file_name();
            if name == ".git" {
                continue;
            }
            let path = rel.join(&name);
            let md = e
                .metadata()
                .map_err(|err| Error::io(e.path().display(), err))?;
            if md.is_dir() {
                stack.push(path);
            } else {
                out.insert(
                    path.to_string_lossy().into_owned(),
                    Meta {
                        dev: md.dev(),
                        ino: md.ino(),
                        size: md.size(),
                        mtime_ns: md.mtime() as i128 * 1_000_000_000 + md.mtime_nsec() as i128,
                    },
                );
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl Meta {
    /// What says a source file is still the one whose content was compared.
    fn signature(&self) -> String {
        format!("{}:{}:{}", self.ino, self.size, self.mtime_ns)
    }
}

/// Same kind and same bytes (or the same link target).
fn same_content(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (std::fs::symlink_metadata(a), std::fs::symlink_metadata(b)) else {
        return false;
    };
    if ma.file_type().is_symlink() || mb.file_type().is_symlink() {
        return ma.file_type().is_symlink()
            && mb.file_type().is_symlink()
            && std::fs::read_link(a).ok() == std::fs::read_link(b).ok();
    }
    if ma.len() != mb.len() || (ma.mode() & 0o111) != (mb.mode() & 0o111) {
        return false;
    }
    match (std::fs::read(a), std::fs::read(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

/// Replace `to` with a new file (or symlink) holding what `from` holds, by rename: a hard
/// link at `to` is cut, never written through.
fn write_fresh(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent.display(), e))?;
    }
    let name = to
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let tmp = to.with_file_name(format!(".{name}.fpt-new"));
    let _ = std::fs::remove_file(&tmp);
    let md = std::fs::symlink_metadata(from).map_err(|e| Error::io(from.display(), e))?;
    if md.file_type().is_symlink() {
        let target = std::fs::read_link(from).map_err(|e| Error::io(from.display(), e))?;
        std::os::unix::fs::symlink(target, &tmp).map_err(|e| Error::io(tmp.display(), e))?;
    } else {
        std::fs::copy(from, &tmp).map_err(|e| Error::io(tmp.display(), e))?;
    }
    std::fs::rename(&tmp, to).map_err(|e| Error::io(to.display(), e))
}

fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path.display(), e)),
        _ => Ok(()),
    }
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(dir.display(), e)),
        _ => Ok(()),
    }
}

/// `<entry>/tree.manifest`: the paths that may differ from the source.
#[derive(Debug, Default)]
struct Manifest {
    /// The last sync ended.
    complete: bool,
    /// Paths the series of the last (or an unfinished) sync touched.
    touched: BTreeSet<String>,
    /// Files of the working copy's own whose content equals the source file with this
    /// signature (inode, size, time).
    pinned: BTreeMap<String, String>,
}

impl Manifest {
    /// None when there is none, or it is unreadable: the working copy is then made afresh.
    fn read(path: &Path) -> Option<Manifest> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut m = Manifest::default();
        let mut lines = text.lines();
        m.complete = match lines.next()? {
            "complete" => true,
            "incomplete" => false,
            _ => return None,
        };
        for line in lines {
            match line.split_once('\t')? {
                ("touched", p) => {
                    m.touched.insert(p.to_string());
                }
                ("pinned", rest) => {
                    let (p, sig) = rest.split_once('\t')?;
                    m.pinned.insert(p.to_string(), sig.to_string());
                }
                _ => return None,
            }
        }
        Some(m)
    }

    fn write(&self, path: &Path) -> Result<()> {
        let mut text = String::from(if self.complete {
            "complete\n"
        } else {
            "incomplete\n"
        });
        for p in &self.touched {
            text.push_str(&format!("touched\t{p}\n"));
        }
        for (p, sig) in &self.pinned {
            text.push_str(&format!("pinned\t{p}\t{sig}\n"));
        }
        let tmp = path.with_extension("manifest.new");
        std::fs::write(&tmp, text).map_err(|e| Error::io(tmp.display(), e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path.display(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// A small tree: files in directories, an executable script, a symlink.
    fn source(dir: &Path) -> PathBuf {
        let src = dir.join("src");
        for (p, text) in [
            ("Makefile", "VERSION = 6\n"),
            ("fs/fuse/file.c", "int a;\nint b;\nint c;\n"),
            ("fs/fuse/dev.c", "int d;\n"),
            ("fs/other.c", "int o;\n"),
        ] {
            let f = src.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(&f, text).unwrap();
        }
        let script = src.join("scripts/run.sh");
        std::fs::create_dir_all(script.parent().unwrap()).unwrap();
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        std::os::unix::fs::symlink("fuse/file.c", src.join("fs/link.c")).unwrap();
        std::fs::create_dir_all(src.join(".git")).unwrap();
        std::fs::write(src.join(".git/HEAD"), "ref\n").unwrap();
        src
    }

    fn mail(subject: &str, diff: &str) -> String {
        format!("From 0 Mon Sep 17 00:00:00 2001\nSubject: [PATCH] {subject}\n\n---\n{diff}")
    }

    /// A: changes file.c, adds new.c. B: changes file.c otherwise, deletes dev.c.
    fn series(dir: &Path, which: &str) -> Series {
        let text = match which {
            "A" => mail(
                "a",
                "diff --git a/fs/fuse/file.c b/fs/fuse/file.c\n--- a/fs/fuse/file.c\n+++ b/fs/fuse/file.c\n@@ -1,3 +1,3 @@\n int a;\n-int b;\n+int bb;\n int c;\ndiff --git a/fs/fuse/new.c b/fs/fuse/new.c\nnew file mode 100644\n--- /dev/null\n+++ b/fs/fuse/new.c\n@@ -0,0 +1 @@\n+int n;\n",
            ),
            "B" => mail(
                "b",
                "diff --git a/fs/fuse/file.c b/fs/fuse/file.c\n--- a/fs/fuse/file.c\n+++ b/fs/fuse/file.c\n@@ -1,3 +1,3 @@\n int a;\n int b;\n-int c;\n+int cc;\ndiff --git a/fs/fuse/dev.c b/fs/fuse/dev.c\ndeleted file mode 100644\n--- a/fs/fuse/dev.c\n+++ /dev/null\n@@ -1 +0,0 @@\n-int d;\n",
            ),
            "bad" => mail(
                "bad",
                "diff --git a/fs/fuse/file.c b/fs/fuse/file.c\n--- a/fs/fuse/file.c\n+++ b/fs/fuse/file.c\n@@ -1,3 +1,3 @@\n int x;\n-int y;\n+int z;\n int w;\n",
            ),
            _ => return Series::default(),
        };
        let f = dir.join(format!("{which}.patch"));
        std::fs::write(&f, text).unwrap();
        Series::read(&[f]).unwrap()
    }

    /// What a fresh copy of `src` with `series` applied holds: path -> (content or link
    /// target, executable).
    fn fresh(dir: &Path, src: &Path, series: &Series) -> BTreeMap<String, (Vec<u8>, bool)> {
        let entry = dir.join(format!("fresh-{}", series.fingerprint().len()));
        let _ = std::fs::remove_dir_all(&entry);
        let (tree, synced) = sync(src, series, &entry).unwrap();
        assert!(synced.created);
        let out = contents(&tree);
        std::fs::remove_dir_all(&entry).unwrap();
        out
    }

    fn contents(tree: &Path) -> BTreeMap<String, (Vec<u8>, bool)> {
        walk(tree)
            .unwrap()
            .into_keys()
            .map(|rel| {
                let p = tree.join(&rel);
                let md = std::fs::symlink_metadata(&p).unwrap();
                let body = if md.file_type().is_symlink() {
                    std::fs::read_link(&p)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned()
                        .into_bytes()
                } else {
                    std::fs::read(&p).unwrap()
                };
                (rel, (body, md.mode() & 0o111 != 0))
            })
            .collect()
    }

    #[test]
    fn switching_series_back_and_forth_matches_a_fresh_copy_every_time() {
        let dir = tempfile::tempdir().unwrap();
        let src = source(dir.path());
        let entry = dir.path().join("entry");
        let src_before = contents(&src);
        let none = Series::default();
        let (a, b) = (series(dir.path(), "A"), series(dir.path(), "B"));
        for (step, s) in [&none, &a, &b, &none, &a, &a, &b].iter().enumerate() {
            let (tree, _) = sync(&src, s, &entry).unwrap();
            assert_eq!(contents(&tree), fresh(dir.path(), &src, s), "step {step}");
        }
        assert!(!entry.join("tree/.git").exists());
        assert_eq!(contents(&src), src_before, "the source was written to");
    }

    #[test]
    fn what_a_series_does_not_change_keeps_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let src = source(dir.path());
        let entry = dir.path().join("entry");
        let a = series(dir.path(), "A");
        let (tree, _) = sync(&src, &a, &entry).unwrap();
        let ino = |p: &str| std::fs::metadata(tree.join(p)).unwrap().ino();
        let (other, file) = (ino("fs/other.c"), ino("fs/fuse/file.c"));
        assert_eq!(
            other,
            std::fs::metadata(src.join("fs/other.c")).unwrap().ino()
        );
        // The same series again: nothing written.
        let (_, again) = sync(&src, &a, &entry).unwrap();
        assert_eq!((again.written, again.removed), (0, 0));
        assert_eq!(ino("fs/fuse/file.c"), file);
        // Another series: only what differs.
        let (_, switched) = sync(&src, &series(dir.path(), "B"), &entry).unwrap();
        assert_eq!(ino("fs/other.c"), other);
        assert_ne!(ino("fs/fuse/file.c"), file);
        // file.c (B's version), new.c gone, dev.c gone.
        assert_eq!((switched.written, switched.removed), (2, 1), "{switched:?}");
    }

    #[test]
    fn edits_in_the_source_are_part_of_the_build() {
        let dir = tempfile::tempdir().unwrap();
        let src = source(dir.path());
        let entry = dir.path().join("entry");
        let a = series(dir.path(), "A");
        let (tree, _) = sync(&src, &a, &entry).unwrap();
        // In place (the link shows it), by replacement (an editor's rename), a new file, a
        // deleted one.
        std::fs::write(src.join("fs/other.c"), "int o2;\n").unwrap();
        std::fs::write(src.join("fs/fuse/dev.c.tmp"), "int d2;\n").unwrap();
        std::fs::rename(src.join("fs/fuse/dev.c.tmp"), src.join("fs/fuse/dev.c")).unwrap();
        std::fs::write(src.join("fs/added.c"), "int x;\n").unwrap();
        std::fs::remove_file(src.join("Makefile")).unwrap();
        sync(&src, &a, &entry).unwrap();
        assert_eq!(contents(&tree), fresh(dir.path(), &src, &a));
    }

    #[test]
    fn a_sync_cut_short_is_repaired_by_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let src = source(dir.path());
        let entry = dir.path().join("entry");
        let (a, b) = (series(dir.path(), "A"), series(dir.path(), "B"));
        sync(&src, &a, &entry).unwrap();
        for stop in 0..3 {
            assert!(sync_with(&src, &b, &entry, Some(stop)).is_err());
            let (tree, _) = sync(&src, &none_or(stop, &a), &entry).unwrap();
            assert_eq!(contents(&tree), fresh(dir.path(), &src, &none_or(stop, &a)));
            sync(&src, &a, &entry).unwrap();
        }
    }

    fn none_or(stop: usize, a: &Series) -> Series {
        if stop.is_multiple_of(2) {
            Series::default()
        } else {
            a.clone()
        }
    }

    #[test]
    fn a_patch_that_does_not_apply_leaves_the_working_copy_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let src = source(dir.path());
        let entry = dir.path().join("entry");
        let a = series(dir.path(), "A");
        let (tree, _) = sync(&src, &a, &entry).unwrap();
        let before = contents(&tree);
        let err = sync(&src, &series(dir.path(), "bad"), &entry).unwrap_err();
        assert!(
            matches!(&err, Error::PatchFailed { patch, why } if patch == "bad.patch" && why.contains("fs/fuse/file.c")),
            "{err}"
        );
        assert_eq!(contents(&tree), before);
    }
}
