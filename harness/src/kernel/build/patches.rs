//! A patch series: `git format-patch` files and mbox series, in order, one mail per patch.
//! The working copy ([`super::workcopy`]) applies it with `git apply`, mail by mail,
//! stopping at the first that does not apply, as `git am` would.

use std::collections::BTreeSet;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::kernel::image::PatchInfo;

/// One mail of the series.
#[derive(Debug, Clone)]
struct Mail {
    name: String,
    text: Vec<u8>,
}

/// A patch series, split into mails.
#[derive(Debug, Clone, Default)]
pub struct Series {
    mails: Vec<Mail>,
}

impl Series {
    /// Read `files` in order, each a patch or an mbox of several.
    pub fn read(files: &[PathBuf]) -> Result<Series> {
        let mut mails = Vec::new();
        for file in files {
            let text = std::fs::read(file).map_err(|source| Error::PatchUnreadable {
                path: file.clone(),
                source,
            })?;
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

    /// Whether the series has no mail.
    pub fn is_empty(&self) -> bool {
        self.mails.is_empty()
    }

    /// Each mail's name and hash.
    pub fn infos(&self) -> Vec<PatchInfo> {
        self.mails
            .iter()
            .map(|m| PatchInfo {
                name: m.name.clone(),
                sha256: crate::kernel::image::hex(&Sha256::digest(&m.text))[..16].to_string(),
            })
            .collect()
    }

    /// The first `n` mails: the series as it stands after its patch `n`.
    pub fn prefix(&self, n: usize) -> Series {
        Series {
            mails: self.mails.iter().take(n).cloned().collect(),
        }
    }

    /// This series, then `more`.
    pub fn then(mut self, more: Series) -> Series {
        self.mails.extend(more.mails);
        self
    }

    /// How many mails.
    pub fn len(&self) -> usize {
        self.mails.len()
    }

    /// Each mail's name and text, in order.
    pub fn mails(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.mails
            .iter()
            .map(|m| (m.name.as_str(), m.text.as_slice()))
    }

    /// Each mail's subject (its `Subject:` header without the `[PATCH n/m]` tag), or its
    /// name when it has none.
    pub fn subjects(&self) -> Vec<String> {
        self.mails
            .iter()
            .map(|m| subject(&m.text).unwrap_or_else(|| m.name.clone()))
            .collect()
    }

    /// Every path any mail names, before or after it (renames and copies give both), as
    /// relative paths in the tree.
    pub fn paths(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for m in &self.mails {
            for line in String::from_utf8_lossy(&m.text).lines() {
                if let Some(rest) = line.strip_prefix("diff --git ") {
                    // "a/X b/Y": kernel paths hold no spaces.
                    for part in rest.split_whitespace() {
                        if let Some(p) = part.strip_prefix("a/").or_else(|| part.strip_prefix("b/"))
                        {
                            out.insert(p.to_string());
                        }
                    }
                } else if let Some(rest) = line
                    .strip_prefix("--- ")
                    .or_else(|| line.strip_prefix("+++ "))
                {
                    let p = rest.split('\t').next().unwrap_or(rest).trim();
                    if p != "/dev/null" {
                        let p = p
                            .strip_prefix("a/")
                            .or_else(|| p.strip_prefix("b/"))
                            .unwrap_or(p);
                        out.insert(p.to_string());
                    }
                }
            }
        }
        out
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

/// The `Subject:` header (folded lines joined), without a leading `[PATCH ...]` tag.
fn subject(mail: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(mail);
    let mut lines = text.lines();
    let mut subject = lines.find_map(|l| l.strip_prefix("Subject: "))?.to_string();
    for l in lines {
        if l.starts_with(' ') || l.starts_with('\t') {
            subject.push(' ');
            subject.push_str(l.trim());
        } else {
            break;
        }
    }
    let s = subject.trim();
    let s = match s.strip_prefix('[') {
        Some(rest) if s.starts_with("[PATCH") || s.starts_with("[RFC") => {
            rest.split_once(']').map_or(s, |(_, r)| r.trim_start())
        }
        _ => s,
    };
    Some(s.to_string())
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

/// From `git apply --verbose`: the "patch failed" line and the hunk it searched for.
pub(super) fn failing_hunk(stderr: &str) -> String {
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
    fn a_series_names_its_subjects_and_paths() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.mbox");
        let two = MAIL
            .replace("[PATCH] x", "[PATCH v2 2/2] fuse: do\n the thing")
            .replace("a/f b/f", "a/g b/h");
        std::fs::write(&f, format!("{MAIL}{two}")).unwrap();
        let s = Series::read(&[f]).unwrap();
        assert_eq!(s.subjects(), ["x", "fuse: do the thing"]);
        assert_eq!(s.paths().into_iter().collect::<Vec<_>>(), ["f", "g", "h"]);
        assert_eq!(s.prefix(1).len(), 1);
    }

    #[test]
    fn a_file_without_a_diff_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("notes.txt");
        std::fs::write(&f, "just words\n").unwrap();
        assert!(matches!(Series::read(&[f]), Err(Error::PatchFailed { .. })));
    }

    #[test]
    fn a_patch_that_is_not_there_is_named() {
        let e = Series::read(&["/no/such/fix.patch".into()]).unwrap_err();
        assert!(matches!(e, Error::PatchUnreadable { .. }), "{e}");
        assert_eq!(e.exit_code(), 34);
        assert!(
            e.to_string().starts_with("patch /no/such/fix.patch: "),
            "{e}"
        );
    }
}
