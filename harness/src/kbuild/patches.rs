//! A patch series (`git format-patch` files and mbox series, in order) and the patched copy
//! of a tree it applies to. Each mail is applied with `git apply`, in order, stopping at the
//! first that does not apply, as `git am` would.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::source::Source;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PatchInfo {
    /// File name, with the mail's index when the file is an mbox of several.
    pub name: String,
    /// sha256 of the mail, first 16 hex digits.
    pub sha256: String,
}

/// One mail of the series.
#[derive(Debug, Clone)]
struct Mail {
    name: String,
    text: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
pub struct Series {
    mails: Vec<Mail>,
}

impl Series {
    pub fn read(files: &[PathBuf]) -> Result<Series> {
        let mut mails = Vec::new();
        for file in files {
            let text = std::fs::read(file)
                .map_err(|e| Error::io(format!("patch {}", file.display()), e))?;
            let base = file.file_name().map_or_else(
                || file.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            let parts = split_mbox(&text);
            if parts.iter().all(|p| !has_diff(p)) {
                return Err(Error::PatchFailed {
                    patch: base,
                    why: "no diff in it".into(),
                });
            }
            let total = parts.len();
            for (i, text) in parts.into_iter().enumerate() {
                let name = if total > 1 {
                    format!("{base} [{}/{total}]", i + 1)
                } else {
                    base.clone()
                };
                mails.push(Mail { name, text });
            }
        }
        Ok(Series { mails })
    }

    pub fn is_empty(&self) -> bool {
        self.mails.is_empty()
    }

    pub fn infos(&self) -> Vec<PatchInfo> {
        self.mails
            .iter()
            .map(|m| PatchInfo {
                name: m.name.clone(),
                sha256: super::hex(&Sha256::digest(&m.text))[..16].to_string(),
            })
            .collect()
    }

    /// What the build cache key takes from the series: the mails' contents, in order.
    pub fn fingerprint(&self) -> String {
        self.infos()
            .iter()
            .map(|p| p.sha256.clone())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// An mbox holds mails that each start with a "From " line; a format-patch file is one mail.
fn split_mbox(text: &[u8]) -> Vec<Vec<u8>> {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    for line in text.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"From ") || parts.is_empty() {
            parts.push(Vec::new());
        }
        parts
            .last_mut()
            .expect("pushed above")
            .extend_from_slice(line);
    }
    parts.retain(|p| has_diff(p));
    if parts.is_empty() {
        parts.push(text.to_vec());
    }
    parts
}

fn has_diff(mail: &[u8]) -> bool {
    mail.split(|&b| b == b'\n')
        .any(|l| l.starts_with(b"diff --git ") || l.starts_with(b"--- a/"))
}

/// The patched copy of `src`, made afresh for every build under `entry/tree`, so it is always
/// the tree as it is now plus the series. The copy is of hard links: quick, and `git apply`
/// replaces a file rather than writing into it, so the source is never touched. Unpatched
/// files keep their times, so make only rebuilds what the series (or an edit) changed. A
/// series that does not apply leaves no tree behind.
pub fn patched_tree(src: &Source, series: &Series, entry: &Path) -> Result<PathBuf> {
    let tree = entry.join("tree");
    remove(&tree)?;
    let linked = Command::new("cp")
        .arg("-al")
        .arg(&src.dir)
        .arg(&tree)
        .stderr(Stdio::null())
        .status();
    if !linked.is_ok_and(|s| s.success()) {
        // Another filesystem: hard links cannot cross it, copy instead.
        remove(&tree)?;
        let copied = crate::process::output(
            Command::new("cp")
                .args(["-a", "--reflink=auto"])
                .arg(&src.dir)
                .arg(&tree),
        );
        if let Err(e) = copied {
            let _ = remove(&tree);
            return Err(e);
        }
    }
    let mail_dir = entry.join("mails");
    let _ = std::fs::create_dir_all(&mail_dir);
    let outcome = apply_all(series, &tree, &mail_dir);
    let _ = std::fs::remove_dir_all(&mail_dir);
    if outcome.is_err() {
        let _ = remove(&tree);
    }
    outcome.map(|()| tree)
}

fn apply_all(series: &Series, tree: &Path, mail_dir: &Path) -> Result<()> {
    for (i, mail) in series.mails.iter().enumerate() {
        let file = mail_dir.join(format!("{:04}.patch", i + 1));
        std::fs::write(&file, &mail.text).map_err(|e| Error::io(file.display(), e))?;
        let out = Command::new("git")
            .current_dir(tree)
            .args(["apply", "--verbose", "--whitespace=nowarn"])
            .arg(&file)
            .output()
            .map_err(|source| Error::Spawn {
                command: "git apply".into(),
                source,
            })?;
        if !out.status.success() {
            return Err(Error::PatchFailed {
                patch: mail.name.clone(),
                why: failing_hunk(&String::from_utf8_lossy(&out.stderr)),
            });
        }
    }
    Ok(())
}

fn remove(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(dir.display(), e)),
        _ => Ok(()),
    }
}

/// From `git apply --verbose`: the "patch failed" line and the hunk it searched for.
fn failing_hunk(stderr: &str) -> String {
    let mut lines = stderr.lines().filter(|l| !l.starts_with("Checking patch"));
    let mut out: Vec<&str> = Vec::new();
    for l in lines.by_ref() {
        out.push(l);
        if out.len() >= 25 {
            break;
        }
    }
    if out.is_empty() {
        "git apply failed without a word".into()
    } else {
        out.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIL: &str = "From 1234 Mon Sep 17 00:00:00 2001\nSubject: [PATCH] x\n\n---\ndiff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n";

    #[test]
    fn an_mbox_splits_into_its_mails() {
        let mbox = format!("{MAIL}{MAIL}");
        assert_eq!(split_mbox(mbox.as_bytes()).len(), 2);
        assert_eq!(split_mbox(MAIL.as_bytes()).len(), 1);
    }

    #[test]
    fn a_series_names_each_mail_and_hashes_it() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("0001-x.patch");
        let series = dir.path().join("series.mbox");
        std::fs::write(&one, MAIL).unwrap();
        std::fs::write(&series, format!("{MAIL}{}", MAIL.replace("+b", "+c"))).unwrap();
        let s = Series::read(&[one, series]).unwrap();
        let names: Vec<String> = s.infos().into_iter().map(|p| p.name).collect();
        assert_eq!(
            names,
            ["0001-x.patch", "series.mbox [1/2]", "series.mbox [2/2]"]
        );
        let hashes: Vec<String> = s.infos().into_iter().map(|p| p.sha256).collect();
        assert_eq!(hashes[0], hashes[1]);
        assert_ne!(hashes[1], hashes[2]);
    }

    #[test]
    fn a_file_without_a_diff_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("notes.txt");
        std::fs::write(&f, "just words\n").unwrap();
        assert!(matches!(Series::read(&[f]), Err(Error::PatchFailed { .. })));
    }
}
