//! Debian's cloud kernels by series: which series the archive offers, the newest release of
//! each, how it is packaged, and fetching it into the cache.
//!
//! Two packagings. Up to 6.18, `linux-image-<rel>-cloud-amd64[-unsigned]` holds
//! `boot/vmlinuz-<rel>`, `boot/config-<rel>` and the modules. From 6.19 on,
//! `linux-image-<rel>` is an empty package depending on `linux-binary-<rel>`
//! (`usr/lib/modules/<rel>/vmlinuz`), `linux-modules-<rel>` (the modules) and
//! `linux-base-<rel>` (`usr/lib/modules/<rel>/config`). The archive keeps some 6.19, 7.0
//! and 7.1 images whose modules package is gone: such a series is listed, with what is
//! missing, and refused by name.

use std::path::{Path, PathBuf};

use crate::env::apt::Apt;
use crate::error::{Error, Result};
use crate::kernel::Kernel;

const FLAVOUR: &str = "-cloud-amd64";

/// How a release is packaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packaging {
    /// One `linux-image-<rel>[-unsigned]` package.
    Image(String),
    /// `linux-binary-<rel>`, `linux-modules-<rel>`, `linux-base-<rel>`.
    Split {
        /// `linux-binary-<rel>`: the vmlinuz.
        binary: String,
        /// `linux-modules-<rel>`.
        modules: String,
        /// `linux-base-<rel>`.
        base: String,
    },
}

impl Packaging {
    /// The packages to fetch, in order.
    pub fn packages(&self) -> Vec<&str> {
        match self {
            Packaging::Image(p) => vec![p],
            Packaging::Split {
                binary,
                modules,
                base,
            } => vec![binary, modules, base],
        }
    }
}

/// The newest release of one series the archive names.
#[derive(Debug, Clone)]
pub struct Offer {
    /// "6.18"
    pub series: String,
    /// "6.18.15+deb13-cloud-amd64"
    pub release: String,
    /// How it is packaged.
    pub packaging: Packaging,
    /// The package version apt would fetch ("6.18.15-1~bpo13+1"), once looked up.
    pub version: Option<String>,
    /// Packages the archive names but no longer has: the series cannot be fetched.
    pub missing: Vec<String>,
}

impl Offer {
    /// The cache directory the release is unpacked into.
    pub fn dir(&self, cache: &Path) -> PathBuf {
        cache.join("kernels").join(self.packaging.packages()[0])
    }

    /// Delete its unpacked copy from the cache, so the next fetch starts afresh
    /// (`bench --matrix --clean`).
    pub fn forget(&self, cache: &Path) {
        let _ = std::fs::remove_dir_all(self.dir(cache));
    }

    /// Whether it is unpacked in the cache already.
    pub fn cached(&self, cache: &Path) -> bool {
        self.dir(cache).join(".unpacked").exists()
    }
}

/// Every series the archive names, oldest first, each with its newest release and whether
/// its packages are all there.
pub fn available(apt: &Apt) -> Result<Vec<Offer>> {
    let mut names = apt.names("linux-image-")?;
    names.extend(apt.names("linux-binary-")?);
    let mut offers = newest_per_series(&names);
    // One look-up for every package of every offer: which ones apt can fetch.
    let wanted: Vec<&str> = offers.iter().flat_map(|o| o.packaging.packages()).collect();
    let candidates = apt.candidates(&wanted)?;
    for offer in &mut offers {
        for p in offer.packaging.packages() {
            match candidates.get(p) {
                Some(v) => {
                    offer.version.get_or_insert_with(|| v.clone());
                }
                None => offer.missing.push(p.to_string()),
            }
        }
    }
    Ok(offers)
}

/// The newest release of `series`, checked to be fetchable.
pub fn offer(apt: &Apt, series: &str) -> Result<Offer> {
    let offers = available(apt)?;
    let listed = || {
        offers
            .iter()
            .filter(|o| o.missing.is_empty())
            .map(|o| o.series.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(offer) = offers.iter().find(|o| o.series == series) else {
        return Err(Error::UnknownSeries {
            series: series.into(),
            known: listed(),
        });
    };
    if !offer.missing.is_empty() {
        return Err(Error::SeriesGone {
            series: series.into(),
            release: offer.release.clone(),
            missing: offer.missing.join(", "),
            known: listed(),
        });
    }
    Ok(offer.clone())
}

/// Every series that can be fetched: what `debian:all` means.
pub fn all(apt: &Apt) -> Result<Vec<String>> {
    Ok(available(apt)?
        .into_iter()
        .filter(|o| o.missing.is_empty())
        .map(|o| o.series)
        .collect())
}

/// Debian's cloud kernel of `series`, downloaded and unpacked into the cache once.
pub fn fetch(series: &str, cache: &Path) -> Result<Kernel> {
    let apt = Apt::new(cache)?;
    let offer = offer(&apt, series)?;
    let root = apt.fetch_all(&offer.packaging.packages(), &offer.dir(cache))?;
    let mut kernel = Kernel::from_package_tree(&root, &offer.release)?;
    kernel.identity.source = match &offer.version {
        Some(v) => format!("{} {v}", offer.packaging.packages()[0]),
        None => offer.packaging.packages()[0].to_string(),
    };
    kernel.identity.profile = "debian cloud-amd64".into();
    Ok(kernel)
}

/// What the harness has unpacked: one line per release directory under `<cache>/kernels`.
pub fn cached(cache: &Path) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(cache.join("kernels"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join(".unpacked").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort_by_key(|n| release_key(&release_of(n).unwrap_or_default()));
    found
}

/// From package names, the newest cloud release of each series with its packaging.
pub fn newest_per_series(names: &[String]) -> Vec<Offer> {
    use std::collections::BTreeMap;
    let has = |n: &str| names.iter().any(|x| x == n);
    let mut newest: BTreeMap<Vec<u64>, Offer> = BTreeMap::new();
    for name in names {
        let Some(release) = release_of(name) else {
            continue;
        };
        let packaging = if has(&format!("linux-binary-{release}")) {
            Packaging::Split {
                binary: format!("linux-binary-{release}"),
                modules: format!("linux-modules-{release}"),
                base: format!("linux-base-{release}"),
            }
        } else if has(&format!("linux-image-{release}-unsigned")) {
            Packaging::Image(format!("linux-image-{release}-unsigned"))
        } else {
            Packaging::Image(format!("linux-image-{release}"))
        };
        let series = crate::kernel::series(&release);
        let key = release_key(&release);
        let series_key = crate::env::apt::version_key(&series);
        let better = newest
            .get(&series_key)
            .is_none_or(|o| release_key(&o.release) < key);
        if better {
            newest.insert(
                series_key,
                Offer {
                    series,
                    release,
                    packaging,
                    version: None,
                    missing: Vec::new(),
                },
            );
        }
    }
    newest.into_values().collect()
}

/// "6.18.15+deb13-cloud-amd64" from a kernel package's name (image, binary, unsigned or
/// not); None for anything else (meta packages, -dbg, other flavours).
fn release_of(name: &str) -> Option<String> {
    let rest = name
        .strip_prefix("linux-image-")
        .or_else(|| name.strip_prefix("linux-binary-"))?;
    let rest = rest.strip_suffix("-unsigned").unwrap_or(rest);
    let upstream = rest.strip_suffix(FLAVOUR)?;
    // A release starts with its version: "cloud-amd64" alone is the meta package.
    upstream
        .chars()
        .next()
        .filter(char::is_ascii_digit)
        .map(|_| rest.to_string())
}

/// Orders releases of a series: "7.3.4+deb13" after "7.3" (an rc), "6.12.117+deb13" after
/// "6.12.117+deb12", "6.1.0-56" after "6.1.0-9". The flavour's digits are not counted.
fn release_key(release: &str) -> Vec<u64> {
    crate::env::apt::version_key(release.strip_suffix(FLAVOUR).unwrap_or(release))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn newest_release_of_each_series_and_its_packaging() {
        let offers = newest_per_series(&names(&[
            "linux-image-6.1.0-9-cloud-amd64-unsigned",
            "linux-image-6.1.0-56-cloud-amd64-unsigned",
            "linux-image-6.1.0-56-cloud-amd64",
            "linux-image-6.12.117+deb12-cloud-amd64-unsigned",
            "linux-image-6.12.117+deb13-cloud-amd64-unsigned",
            "linux-image-6.18.15+deb13-cloud-amd64",
            "linux-image-6.18.15+deb13-cloud-amd64-dbg",
            "linux-image-7.3-cloud-amd64",
            "linux-binary-7.3-cloud-amd64",
            "linux-image-7.3.4+deb13-cloud-amd64",
            "linux-binary-7.3.4+deb13-cloud-amd64",
            "linux-binary-unsigned-7.3.4+deb13-cloud-amd64",
            "linux-image-cloud-amd64",
            "linux-image-6.18.15+deb13-amd64",
        ]));
        let got: Vec<(&str, &str, &str)> = offers
            .iter()
            .map(|o| {
                (
                    o.series.as_str(),
                    o.release.as_str(),
                    o.packaging.packages()[0],
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "6.1",
                    "6.1.0-56-cloud-amd64",
                    "linux-image-6.1.0-56-cloud-amd64-unsigned"
                ),
                (
                    "6.12",
                    "6.12.117+deb13-cloud-amd64",
                    "linux-image-6.12.117+deb13-cloud-amd64-unsigned"
                ),
                (
                    "6.18",
                    "6.18.15+deb13-cloud-amd64",
                    "linux-image-6.18.15+deb13-cloud-amd64"
                ),
                (
                    "7.3",
                    "7.3.4+deb13-cloud-amd64",
                    "linux-binary-7.3.4+deb13-cloud-amd64"
                ),
            ]
        );
        assert_eq!(
            offers[3].packaging.packages(),
            [
                "linux-binary-7.3.4+deb13-cloud-amd64",
                "linux-modules-7.3.4+deb13-cloud-amd64",
                "linux-base-7.3.4+deb13-cloud-amd64"
            ]
        );
    }
}
