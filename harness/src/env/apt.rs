//! Debian's package archive, through an apt configuration of the harness's own: its sources
//! list, package lists and download cache live under `<cache>/apt/` and are passed to
//! apt-get and apt-cache with `-o Dir::...`, so the host's own sources lists are never read
//! or edited, and no root is needed to refresh them. Every package the harness fetches
//! (kernels, kernel sources, and later libraries) comes through [`Apt::fetch`]: downloaded
//! with `apt-get download`, unpacked with `dpkg-deb -x`, kept with a marker, never installed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::env::process;
use crate::error::{Error, Result};

/// The binary suites the harness reads: every suite Debian's archive serves, so that each
/// kernel series from 6.1 on, and the Go toolchain and libraries the targets need, are one
/// name away. Each line: archive path, suite. Backports and experimental are not candidates
/// by default (apt's pins), which is what picking "the newest of a series" by name wants.
const SUITES: &[(&str, &str)] = &[
    ("debian", "bookworm"),
    ("debian", "bookworm-updates"),
    ("debian-security", "bookworm-security"),
    ("debian", "bookworm-backports"),
    ("debian", "trixie"),
    ("debian", "trixie-updates"),
    ("debian-security", "trixie-security"),
    ("debian", "trixie-backports"),
    ("debian", "sid"),
    ("debian", "experimental"),
];
/// The source suites libraries are built from: `package/suite` picks one.
const SOURCE_SUITES: &[(&str, &str)] = &[
    ("debian", "bookworm"),
    ("debian", "trixie"),
    ("debian", "sid"),
];
const MIRROR: &str = "http://deb.debian.org";
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// Package lists older than this are refreshed before a look-up.
const LISTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// The harness's private view of the archive.
pub struct Apt {
    root: PathBuf,
    /// Held while this configuration is in use: two harnesses on one machine (two tests
    /// side by side) must not refresh its lists or unpack one package at once.
    _lock: std::fs::File,
}

impl Apt {
    /// Debian's binary packages, every suite: the configuration under `<cache>/apt/`. Holds
    /// its lock until dropped: a second `Apt` of one configuration waits (in this process
    /// too, so never make one while another is alive).
    pub fn new(cache: &Path) -> Result<Apt> {
        Apt::configured(&cache.join("apt"), "deb", SUITES)
    }

    /// Source packages of Debian 12, 13 and unstable: the configuration under
    /// `<cache>/apt-src/`.
    pub fn sources(cache: &Path) -> Result<Apt> {
        Apt::configured(&cache.join("apt-src"), "deb-src", SOURCE_SUITES)
    }

    /// A configuration at `root` listing `suites` as `kind` (deb or deb-src) lines, written if
    /// it is not there yet.
    fn configured(root: &Path, kind: &str, suites: &[(&str, &str)]) -> Result<Apt> {
        crate::env::provision::ensure("apt-get", "apt")?;
        crate::env::provision::ensure("dpkg-deb", "dpkg")?;
        let root = root.to_path_buf();
        for dir in ["lists/partial", "cache/archives/partial", "sources.list.d"] {
            let d = root.join(dir);
            std::fs::create_dir_all(&d).map_err(|e| Error::io(d.display(), e))?;
        }
        let list: String = suites
            .iter()
            .map(|(archive, suite)| {
                format!("{kind} [signed-by={KEYRING}] {MIRROR}/{archive} {suite} main\n")
            })
            .collect();
        let sources = root.join("sources.list");
        if std::fs::read_to_string(&sources).ok().as_deref() != Some(list.as_str()) {
            std::fs::write(&sources, list).map_err(|e| Error::io(sources.display(), e))?;
            // New suites: the old lists no longer match.
            let _ = std::fs::remove_file(root.join("lists/.fpt-updated"));
        }
        let _lock = crate::env::cache::lock(&root, "use of the harness's package lists")?;
        Ok(Apt { root, _lock })
    }

    /// `tool` (apt-get, apt-cache) pointed at our configuration.
    fn command(&self, tool: &str) -> Command {
        let mut cmd = Command::new(tool);
        let dir = |d: &str| self.root.join(d).to_string_lossy().into_owned();
        for (key, value) in [
            ("Dir::Etc::SourceList", dir("sources.list")),
            ("Dir::Etc::SourceParts", dir("sources.list.d")),
            ("Dir::State::Lists", dir("lists")),
            ("Dir::Cache", dir("cache")),
            // Keep apt's binary package cache (hosts built for containers turn it off):
            // without it every apt-cache call parses all ten suites' lists again (2 s).
            ("Dir::Cache::pkgcache", dir("cache/pkgcache.bin")),
            ("Dir::Cache::srcpkgcache", dir("cache/srcpkgcache.bin")),
        ] {
            cmd.arg("-o").arg(format!("{key}={value}"));
        }
        cmd
    }

    /// Refresh the package lists (`apt-get update` with our configuration).
    pub fn update(&self) -> Result<()> {
        eprintln!("refreshing the harness's package lists (apt-get update, private configuration)");
        let mut cmd = self.command("apt-get");
        cmd.args(["update", "-q"]);
        process::output(&mut cmd)
            .map_err(|e| Error::fetch_from("refreshing the package lists", e))?;
        let stamp = self.root.join("lists/.fpt-updated");
        std::fs::write(&stamp, "").map_err(|e| Error::io(stamp.display(), e))
    }

    /// Refresh the lists if they were never fetched or are older than a day.
    fn fresh_lists(&self) -> Result<()> {
        let stamp = self.root.join("lists/.fpt-updated");
        let age = std::fs::metadata(&stamp)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok());
        match age {
            Some(a) if a < LISTS_MAX_AGE => Ok(()),
            _ => self.update(),
        }
    }

    /// Every package name that starts with `prefix`.
    pub fn names(&self, prefix: &str) -> Result<Vec<String>> {
        self.fresh_lists()?;
        let mut cmd = self.command("apt-cache");
        cmd.args(["pkgnames", prefix]);
        let out =
            process::output(&mut cmd).map_err(|e| Error::fetch_from("listing packages", e))?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect())
    }

    /// The version `apt-get download PACKAGE` would fetch.
    pub fn candidate(&self, package: &str) -> Result<Option<String>> {
        self.fresh_lists()?;
        let mut cmd = self.command("apt-cache");
        cmd.args(["policy", package]);
        let out = process::output(&mut cmd).map_err(|e| Error::fetch_from(package, e))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let v = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Candidate:"))
            .map(|v| v.trim().to_string());
        Ok(v.filter(|v| v != "(none)" && !v.is_empty()))
    }

    /// The version of `package` that `suite` (bookworm, trixie-backports, sid...) carries.
    pub fn version_in(&self, package: &str, suite: &str) -> Result<Option<String>> {
        self.fresh_lists()?;
        let mut cmd = self.command("apt-cache");
        cmd.args(["madison", package]);
        let out = process::output(&mut cmd).map_err(|e| Error::fetch_from(package, e))?;
        Ok(parse_madison(&String::from_utf8_lossy(&out.stdout), suite))
    }

    /// The candidate version of each of `packages` that apt can fetch; those it cannot
    /// (named by another package but gone from the archive) are left out. One apt-cache call.
    pub fn candidates(
        &self,
        packages: &[&str],
    ) -> Result<std::collections::HashMap<String, String>> {
        self.fresh_lists()?;
        let mut cmd = self.command("apt-cache");
        cmd.arg("policy").args(packages);
        let out = process::output(&mut cmd)
            .map_err(|e| Error::fetch_from("asking which packages are there", e))?;
        Ok(parse_policy(&String::from_utf8_lossy(&out.stdout)))
    }

    /// `package` (or `package=version`) downloaded and unpacked into `dir/root`, once: a
    /// marker says the unpacking finished. Returns `dir/root`.
    pub fn fetch(&self, package: &str, dir: &Path) -> Result<PathBuf> {
        self.fetch_all(&[package], dir)
    }

    /// Several packages unpacked into the one tree `dir/root` (a toolchain and the
    /// libraries it builds with), once.
    pub fn fetch_all(&self, packages: &[&str], dir: &Path) -> Result<PathBuf> {
        let root = dir.join("root");
        let done = dir.join(".unpacked");
        if done.exists() {
            return Ok(root);
        }
        let names = packages.join(" ");
        eprintln!("fetching {names} (apt-get download)");
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
        let mut args = vec!["download", "-q"];
        args.extend_from_slice(packages);
        self.apt_get_in(dir, &args)?;
        let debs: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir.display(), e))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "deb"))
            .collect();
        if debs.len() != packages.len() {
            return Err(Error::fetch(format!(
                "apt-get download {names} left {} .deb files",
                debs.len()
            )));
        }
        for deb in debs {
            process::output(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))
                .map_err(|e| Error::fetch_from(format!("unpacking {}", deb.display()), e))?;
            let _ = std::fs::remove_file(&deb);
        }
        std::fs::write(&done, &names).map_err(|e| Error::io(done.display(), e))?;
        Ok(root)
    }
}

impl Apt {
    /// The source package `package` of `suite` downloaded into `dir` (its .dsc, tarballs
    /// and signature; nothing unpacked, no dpkg-dev needed); returns its version.
    pub fn source(&self, package: &str, suite: &str, dir: &Path) -> Result<String> {
        self.fresh_lists()?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
        eprintln!("fetching the source of {package} from {suite} (apt-get source --download-only)");
        self.apt_get_in(
            dir,
            &[
                "source",
                "--download-only",
                "-q",
                &format!("{package}/{suite}"),
            ],
        )?;
        let dsc = find_entry(dir, |n| n.ends_with(".dsc"))?
            .and_then(|p| Some(p.file_name()?.to_string_lossy().into_owned()))
            .ok_or_else(|| {
                Error::fetch(format!("apt-get source {package}/{suite} left no .dsc"))
            })?;
        // fuse3_3.18.3-1.dsc -> 3.18.3-1
        let stem = dsc.trim_end_matches(".dsc");
        Ok(stem.split_once('_').map_or(stem, |(_, v)| v).to_string())
    }
}

impl Apt {
    /// `apt-get ARGS` in `dir`; if it fails, the lists are refreshed and it is tried once
    /// more (lists a day old can name a version the mirror no longer has).
    fn apt_get_in(&self, dir: &Path, args: &[&str]) -> Result<()> {
        let run = || {
            let mut cmd = self.command("apt-get");
            cmd.args(args).current_dir(dir);
            process::output(&mut cmd)
        };
        if run().is_err() {
            self.update()?;
            run().map_err(|e| Error::fetch_from("apt-get source", e))?;
        }
        Ok(())
    }
}

/// The version on the line of `apt-cache madison` output whose archive is `suite`
/// (` pkg | 2.8.0-1~bpo13+1 | http://deb.debian.org/debian trixie-backports/main amd64 Packages`).
fn parse_madison(text: &str, suite: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let [_, version, archive] = cells[..] else {
            return None;
        };
        let dist = archive.split_whitespace().nth(1)?;
        (dist.split('/').next() == Some(suite)).then(|| version.to_string())
    })
}

/// `apt-cache policy A B ...` output: package -> candidate, for those that have one.
fn parse_policy(text: &str) -> std::collections::HashMap<String, String> {
    let mut found = std::collections::HashMap::new();
    let mut package = None;
    for line in text.lines() {
        if !line.starts_with(' ') {
            package = line.strip_suffix(':').map(String::from);
        } else if let (Some(p), Some(v)) = (&package, line.trim().strip_prefix("Candidate:")) {
            let v = v.trim();
            if v != "(none)" && !v.is_empty() {
                found.insert(p.clone(), v.to_string());
            }
        }
    }
    found
}

/// The first entry of `dir` whose file name `wanted` accepts.
pub fn find_entry(dir: &Path, wanted: impl Fn(&str) -> bool) -> Result<Option<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir.display(), e))?;
    Ok(entries
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().is_some_and(|n| wanted(&n.to_string_lossy()))))
}

/// Numeric parts of a package name or version, for "6.12.117" > "6.12.99".
pub fn version_key(name: &str) -> Vec<u64> {
    name.split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn madison_gives_the_version_of_one_suite() {
        let text = " golang-github-hanwen-go-fuse-dev |    2.9.0-1 | http://deb.debian.org/debian sid/main amd64 Packages
 golang-github-hanwen-go-fuse-dev | 2.8.0-1~bpo13+1 | http://deb.debian.org/debian trixie-backports/main amd64 Packages
 golang-github-hanwen-go-fuse-dev |    2.4.2-3 | http://deb.debian.org/debian trixie/main amd64 Packages
";
        assert_eq!(
            parse_madison(text, "trixie-backports").as_deref(),
            Some("2.8.0-1~bpo13+1")
        );
        assert_eq!(parse_madison(text, "trixie").as_deref(), Some("2.4.2-3"));
        assert_eq!(parse_madison(text, "bookworm"), None);
    }

    #[test]
    fn versions_compare_by_their_numbers() {
        assert!(
            version_key("linux-image-6.12.117+deb12") > version_key("linux-image-6.12.99+deb12")
        );
        assert!(version_key("6.1.0-56") > version_key("6.1.0-9"));
    }

    #[test]
    fn policy_names_the_candidates_apt_can_fetch() {
        let text = "linux-modules-6.19.14+deb13-cloud-amd64:\n  Installed: (none)\n  Candidate: (none)\n  Version table:\nlinux-binary-6.19.14+deb13-cloud-amd64:\n  Installed: (none)\n  Candidate: 6.19.14-1~bpo13+1\n  Version table:\n     6.19.14-1~bpo13+1 100\n";
        let got = parse_policy(text);
        assert_eq!(got.len(), 1);
        assert_eq!(
            got["linux-binary-6.19.14+deb13-cloud-amd64"],
            "6.19.14-1~bpo13+1"
        );
    }

    #[test]
    fn the_private_configuration_names_its_own_lists() {
        let cache = tempfile::tempdir().unwrap();
        let apt = Apt::new(cache.path()).unwrap();
        let cmd = apt.command("apt-cache");
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args
            .iter()
            .any(|a| a.starts_with("Dir::State::Lists=")
                && a.contains(&*cache.path().to_string_lossy())));
        let list = std::fs::read_to_string(cache.path().join("apt/sources.list")).unwrap();
        assert!(list.contains(" bookworm main"), "{list}");
    }
}
