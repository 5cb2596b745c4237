//! The kernel configuration: `images/kernel/base.config`, a profile, and any extra
//! fragments, merged onto `make ARCH=x86_64 tinyconfig`, settled with `olddefconfig`, then
//! checked: every option a fragment asked for must be in the result, as kunit_tool does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

fn images_dir() -> PathBuf {
    crate::env::cache::workspace_root()
        .join("images")
        .join("kernel")
}

/// The profiles there are: `images/kernel/profiles/*.config`.
pub fn profile_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(images_dir().join("profiles"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_suffix(".config")
                        .map(String::from)
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// A config profile: `images/kernel/profiles/<name>.config` and what it includes.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Its name, as `--profile` takes it.
    pub name: String,
    /// Its fragment files, included ones first.
    pub files: Vec<PathBuf>,
}

impl Profile {
    /// A profile and what it includes (`# include: NAME` lines).
    pub fn load(name: &str) -> Result<Profile> {
        let mut files = Vec::new();
        include(name, &mut files, 0)?;
        Ok(Profile {
            name: name.to_string(),
            files,
        })
    }
}

fn include(name: &str, files: &mut Vec<PathBuf>, depth: u32) -> Result<()> {
    let path = images_dir().join("profiles").join(format!("{name}.config"));
    let text = std::fs::read_to_string(&path).map_err(|_| Error::UnknownProfile {
        name: name.into(),
        known: profile_names().join(", "),
    })?;
    if depth > 4 {
        return Err(Error::BadFragment {
            path,
            why: "includes nest more than 4 deep".into(),
        });
    }
    for line in text.lines() {
        if let Some(inner) = line.strip_prefix("# include:") {
            include(inner.trim(), files, depth + 1)?;
        }
    }
    if !files.contains(&path) {
        files.push(path);
    }
    Ok(())
}

/// The fragments of one build, in merge order: base, profile, extras; and the .config they
/// are merged over (tinyconfig when none).
#[derive(Debug, Clone)]
pub struct Fragments {
    pub files: Vec<PathBuf>,
    pub base: Option<PathBuf>,
}

impl Fragments {
    pub fn gather(profile: &Profile, extra: &[PathBuf], base: Option<&Path>) -> Result<Fragments> {
        if let Some(b) = base {
            let text = std::fs::read_to_string(b).map_err(|_| Error::BadConfig {
                path: b.into(),
                why: "no such file".into(),
            })?;
            if parse(&text).is_empty() {
                return Err(Error::BadConfig {
                    path: b.into(),
                    why: "no CONFIG_ line in it: not a kernel .config".into(),
                });
            }
        }
        let mut files = vec![images_dir().join("base.config")];
        files.extend(profile.files.iter().cloned());
        for f in extra {
            if !f.is_file() {
                return Err(Error::BadFragment {
                    path: f.clone(),
                    why: "no such file".into(),
                });
            }
            files.push(f.clone());
        }
        Ok(Fragments {
            files,
            base: base.map(Path::to_path_buf),
        })
    }

    /// Hash of every fragment's text, in order: a changed fragment means a new config.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        if let Some(b) = &self.base {
            h.update(b"base config\0");
            h.update(std::fs::read(b).unwrap_or_default());
            h.update(b"\0");
        }
        for f in &self.files {
            h.update(std::fs::read(f).unwrap_or_default());
            h.update(b"\0");
        }
        crate::kernel::image::hex(&h.finalize())
    }

    /// What the fragments ask for, the later fragment winning: symbol -> what is wanted.
    fn wanted(&self) -> BTreeMap<String, Wanted> {
        let mut want = BTreeMap::new();
        for f in &self.files {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            let optional = optional_symbols(&text);
            for (sym, value) in parse(&text) {
                let wanted = Wanted {
                    value,
                    from: f.clone(),
                    optional: optional.contains(&sym),
                };
                want.insert(sym, wanted);
            }
        }
        want
    }
}

/// One option a fragment asks for.
#[derive(Debug, Clone)]
struct Wanted {
    /// Its value, "n" for "is not set".
    value: String,
    /// The fragment that asked.
    from: PathBuf,
    /// Marked `# where defined:`: asked for only where the tree's Kconfig defines it.
    optional: bool,
}

/// The one rule for options that exist in some trees only (renamed, folded into another,
/// removed): the fragment says `# where defined:` on the line before the option, and a tree
/// whose Kconfig does not define it builds without it, saying so. No version numbers: the
/// tree's own Kconfig decides.
const WHERE_DEFINED: &str = "# where defined:";

/// The symbols of `text` whose line follows a [`WHERE_DEFINED`] line.
fn optional_symbols(text: &str) -> std::collections::HashSet<String> {
    let mut out = std::collections::HashSet::new();
    let mut marked = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with(WHERE_DEFINED) {
            marked = true;
            continue;
        }
        if let Some((sym, _)) = parse(line).pop() {
            if marked {
                out.insert(sym);
            }
        }
        marked = false;
    }
    out
}

/// `CONFIG_X=v` and `# CONFIG_X is not set` lines, as (X, v) with v = "n" for the latter.
pub fn parse(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if let Some(rest) = l
                .strip_prefix("# CONFIG_")
                .and_then(|r| r.strip_suffix(" is not set"))
            {
                return Some((rest.to_string(), "n".to_string()));
            }
            let (k, v) = l.strip_prefix("CONFIG_")?.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

/// Make `out/.config` from the fragments, unless it was made from these very fragments.
pub fn configure(tree: &Path, out: &Path, fragments: &Fragments) -> Result<()> {
    let stamp = out.join(".fpt-fragments");
    let fingerprint = fragments.fingerprint();
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == fingerprint)
        && out.join(".config").is_file()
    {
        say_changes(fragments, out);
        return Ok(());
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out.display(), e))?;
    let _ = std::fs::remove_file(&stamp);
    // A new config means make must run, whatever the tree's times say.
    let _ = std::fs::remove_file(out.join(".fpt-built"));
    match &fragments.base {
        // The developer's own config: olddefconfig first brings it to this tree's Kconfig.
        Some(base) => {
            std::fs::copy(base, out.join(".config")).map_err(|e| Error::io(base.display(), e))?;
            make(tree, out, &["olddefconfig"])?;
        }
        None => make(tree, out, &["tinyconfig"])?,
    }
    let before: BTreeMap<String, String> = parse(
        &std::fs::read_to_string(out.join(".config")).map_err(|e| Error::io("out/.config", e))?,
    )
    .into_iter()
    .collect();
    let merged = Command::new(tree.join("scripts/kconfig/merge_config.sh"))
        .current_dir(tree)
        .env("ARCH", "x86_64")
        .arg("-m")
        .arg("-O")
        .arg(out)
        .arg(out.join(".config"))
        .args(&fragments.files)
        .output()
        .map_err(|source| Error::Spawn {
            command: "merge_config.sh".into(),
            source,
        })?;
    if !merged.status.success() {
        return Err(Error::BuildFailed {
            what: "merge_config.sh".into(),
            errors: String::from_utf8_lossy(&merged.stderr).into_owned(),
            log: out.join(".config"),
        });
    }
    make(tree, out, &["olddefconfig"])?;
    let have = parse(
        &std::fs::read_to_string(out.join(".config")).map_err(|e| Error::io("out/.config", e))?,
    );
    let have: BTreeMap<String, String> = have.into_iter().collect();
    let (problems, left_out) = check(&fragments.wanted(), &have, tree);
    if !problems.is_empty() {
        return Err(Error::ConfigMismatch(problems));
    }
    for line in &left_out {
        eprintln!("config: {line}");
    }
    if fragments.base.is_some() {
        // What the agent needed that the developer's config did not have: kept, and said
        // (again each time the same config is used).
        let changed = changes(&before, &have);
        let _ = std::fs::write(out.join(CHANGES), changed.join("\n"));
        say_changes(fragments, out);
    }
    std::fs::write(&stamp, fingerprint).map_err(|e| Error::io(stamp.display(), e))
}

/// Where the options a `--config` had to change are kept, one per line.
const CHANGES: &str = ".fpt-config-changes";

/// Over a `--config`: which of its options the agent's fragments changed, on stderr.
fn say_changes(fragments: &Fragments, out: &Path) {
    let Some(base) = &fragments.base else {
        return;
    };
    let report = out.join(CHANGES);
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    let changed: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    eprintln!(
        "config: {} options of {} changed for the agent{}",
        changed.len(),
        base.display(),
        if changed.is_empty() {
            String::new()
        } else {
            format!(
                " (also in {}):\n  {}",
                report.display(),
                changed.join("\n  ")
            )
        }
    );
}

/// Each option whose value differs between two configs, as "CONFIG_X: a -> b" ("n" for
/// unset).
fn changes(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let (a, b) = (
                before.get(k).map_or("n", String::as_str),
                after.get(k).map_or("n", String::as_str),
            );
            (a != b).then(|| format!("CONFIG_{k}: {a} -> {b}"))
        })
        .collect()
}

/// Every wanted option that the final config does not have, with why; and apart, each
/// `# where defined:` option left out because this tree's Kconfig does not define it.
fn check(
    want: &BTreeMap<String, Wanted>,
    have: &BTreeMap<String, String>,
    tree: &Path,
) -> (Vec<String>, Vec<String>) {
    let mut known: Option<std::collections::HashSet<String>> = None;
    let (mut problems, mut left_out) = (Vec::new(), Vec::new());
    for (sym, wanted) in want {
        let val = &wanted.value;
        let got = have.get(sym).map(String::as_str).unwrap_or("n");
        let ok = if val == "n" { got == "n" } else { got == val };
        if ok {
            continue;
        }
        let symbols = known.get_or_insert_with(|| kconfig_symbols(tree));
        let from = wanted
            .from
            .file_name()
            .map_or(String::new(), |f| f.to_string_lossy().into_owned());
        if wanted.optional && !symbols.contains(sym) {
            left_out.push(format!(
                "CONFIG_{sym} ({from}) left out: this tree's Kconfig does not define it"
            ));
            continue;
        }
        problems.push(if !symbols.contains(sym) {
            format!("CONFIG_{sym} ({from}): unknown option, no Kconfig defines it")
        } else {
            format!("CONFIG_{sym}={val} ({from}): did not survive olddefconfig, now {got} (a dependency is off)")
        });
    }
    (problems, left_out)
}

/// Every symbol any Kconfig file of the tree defines.
fn kconfig_symbols(tree: &Path) -> std::collections::HashSet<String> {
    let mut out = std::collections::HashSet::new();
    let mut stack = vec![tree.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let name = e.file_name();
            let name = name.to_string_lossy();
            if path.is_dir() {
                if !name.starts_with('.') {
                    stack.push(path);
                }
            } else if name.starts_with("Kconfig") {
                for line in std::fs::read_to_string(&path).unwrap_or_default().lines() {
                    let mut words = line.split_whitespace();
                    if let (Some("config" | "menuconfig"), Some(sym)) = (words.next(), words.next())
                    {
                        out.insert(sym.to_string());
                    }
                }
            }
        }
    }
    out
}

fn make(tree: &Path, out: &Path, targets: &[&str]) -> Result<()> {
    let result = Command::new("make")
        .current_dir(tree)
        .arg(format!("O={}", out.display()))
        .arg("ARCH=x86_64")
        .env("LOCALVERSION", "")
        .args(targets)
        .output()
        .map_err(|source| Error::Spawn {
            command: "make".into(),
            source,
        })?;
    if result.status.success() {
        return Ok(());
    }
    Err(Error::BuildFailed {
        what: format!("make {}", targets.join(" ")),
        errors: String::from_utf8_lossy(&result.stderr)
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n"),
        log: out.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn lists_each_option_that_changed() {
        let before: BTreeMap<String, String> = [("A", "y"), ("B", "m"), ("C", "y")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let after: BTreeMap<String, String> = [("A", "y"), ("B", "y"), ("D", "y")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            changes(&before, &after),
            ["CONFIG_B: m -> y", "CONFIG_C: y -> n", "CONFIG_D: n -> y"]
        );
    }

    use super::*;

    #[test]
    fn parses_both_spellings() {
        let got = parse("# comment\nCONFIG_FUSE_FS=y\n# CONFIG_VT is not set\nCONFIG_NR_CPUS=8\n");
        assert_eq!(
            got,
            [
                ("FUSE_FS".into(), "y".into()),
                ("VT".into(), "n".into()),
                ("NR_CPUS".into(), "8".into())
            ]
        );
    }

    #[test]
    fn names_each_option_that_did_not_survive() {
        let tree = tempfile::tempdir().unwrap();
        std::fs::write(
            tree.path().join("Kconfig"),
            "config FUSE_PASSTHROUGH\n\tbool\nconfig VT\n",
        )
        .unwrap();
        let wanted = |value: &str, optional: bool| Wanted {
            value: value.into(),
            from: PathBuf::from("base.config"),
            optional,
        };
        let want: BTreeMap<_, _> = [
            ("FUSE_PASSTHROUGH".to_string(), wanted("y", false)),
            ("NO_SUCH_THING".to_string(), wanted("y", false)),
            ("RENAMED_AWAY".to_string(), wanted("y", true)),
            ("VT".to_string(), wanted("n", false)),
        ]
        .into_iter()
        .collect();
        let have: BTreeMap<_, _> = [("VT".to_string(), "n".to_string())].into_iter().collect();
        let (problems, left_out) = check(&want, &have, tree.path());
        assert_eq!(problems, [
            "CONFIG_FUSE_PASSTHROUGH=y (base.config): did not survive olddefconfig, now n (a dependency is off)",
            "CONFIG_NO_SUCH_THING (base.config): unknown option, no Kconfig defines it",
        ]);
        assert_eq!(
            left_out,
            ["CONFIG_RENAMED_AWAY (base.config) left out: this tree's Kconfig does not define it"]
        );
    }

    #[test]
    fn where_defined_marks_the_next_option_only() {
        let text =
            "# where defined: 7.x folds it into SYSCTL\nCONFIG_PROC_SYSCTL=y\nCONFIG_SYSFS=y\n";
        let got = optional_symbols(text);
        assert!(
            got.contains("PROC_SYSCTL") && !got.contains("SYSFS"),
            "{got:?}"
        );
    }

    #[test]
    fn every_fragment_option_marked_where_defined_is_an_option_line() {
        // A marker before a comment or a blank line would mark nothing: a typo.
        for f in std::fs::read_dir(images_dir().join("profiles"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .chain([images_dir().join("base.config")])
        {
            let text = std::fs::read_to_string(&f).unwrap();
            let lines: Vec<&str> = text.lines().map(str::trim).collect();
            for (i, l) in lines.iter().enumerate() {
                if l.starts_with(WHERE_DEFINED) {
                    let next = lines.get(i + 1).copied().unwrap_or("");
                    assert!(
                        !parse(next).is_empty(),
                        "{}:{}: `{WHERE_DEFINED}` must stand right above an option",
                        f.display(),
                        i + 1
                    );
                }
            }
        }
    }

    #[test]
    fn profiles_include_others() {
        let kasan = Profile::load("kasan").unwrap();
        let names: Vec<String> = kasan
            .files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["debug.config", "kasan.config"]);
        assert!(matches!(
            Profile::load("nope"),
            Err(Error::UnknownProfile { .. })
        ));
    }
}
