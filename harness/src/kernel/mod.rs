//! The kernel under test: where its bzImage and modules are, and what release it is.
//!
//! Three sources: Debian's cloud kernel packages (fetched with `apt-get download` into the
//! cache), any bzImage the user names, or the running kernel (host mode, no VM).

pub mod build;
pub mod debian;
pub mod fixture;
pub mod image;
pub mod modules;

pub use image::{series, Identity, Kernel, PatchInfo};

use std::path::PathBuf;

use crate::error::Result;

/// What the user asked for with `--kernel`.
#[derive(Debug, Clone)]
pub enum KernelChoice {
    /// Debian's cloud kernel of a series, the newest release available
    /// ([`crate::kernel::debian`]).
    Debian(String),
    /// A bzImage on disk.
    Path(PathBuf),
    /// The running kernel: no VM.
    Host,
    /// A kernel built from source first (`--src`, `--patch`, `--profile`, `--fragment`).
    Build(crate::kernel::build::BuildRequest),
    /// A kernel already fetched or built (a matrix resolves its kernels before it runs them).
    Fetched(Box<Kernel>),
}

/// `--kernel src:<tree>`: a kernel built from that source.
pub const SRC_PREFIX: &str = "src:";

impl KernelChoice {
    /// What `--kernel` means when it is not given.
    pub const DEFAULT: &'static str = "debian-6.12";

    /// `host`, `debian:<series>` (`debian-<series>` too), `src:<tree or debian:series>` (built
    /// from that source with the minimal profile: what `matrix` and `validate` name with
    /// `--coverage`), or a path.
    pub fn parse(s: &str) -> KernelChoice {
        if let Some(src) = s.strip_prefix(SRC_PREFIX) {
            return KernelChoice::Build(crate::kernel::build::BuildRequest {
                src: Some(src.into()),
                ..Default::default()
            });
        }
        match s {
            "host" => KernelChoice::Host,
            _ => match s
                .strip_prefix("debian:")
                .or_else(|| s.strip_prefix("debian-"))
            {
                Some(series) if series.split('.').all(|p| p.parse::<u32>().is_ok()) => {
                    KernelChoice::Debian(series.to_string())
                }
                _ => KernelChoice::Path(s.into()),
            },
        }
    }

    /// A column of a matrix or a validation: `kernel` parsed, and when it is built from
    /// source, built as `template` (the run's own `--profile` and `--fragment`) says.
    pub fn column(kernel: &str, template: Option<&crate::kernel::build::BuildRequest>) -> Self {
        let mut choice = KernelChoice::parse(kernel);
        if let (KernelChoice::Build(b), Some(t)) = (&mut choice, template) {
            b.profile = t.profile.clone();
            b.fragments = t.fragments.clone();
        }
        choice
    }

    /// `debian:all` becomes every series Debian's archive has whole; the rest stay as
    /// given, each once.
    pub fn expand(kernels: &[String]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for k in kernels {
            if k == "debian:all" {
                let apt = crate::env::apt::Apt::new(&crate::env::cache::dir())?;
                out.extend(
                    crate::kernel::debian::all(&apt)?
                        .into_iter()
                        .map(|s| format!("debian:{s}")),
                );
            } else if !out.contains(k) {
                out.push(k.clone());
            }
        }
        Ok(out)
    }

    /// Fetch a Debian kernel now (a matrix fetches its kernels one at a time before it runs
    /// them, apt's lists and locks being shared); any other choice as it is.
    pub fn fetched(self) -> Result<Self> {
        match self {
            KernelChoice::Debian(series) => {
                crate::kernel::debian::fetch(&series, &crate::env::cache::dir())
                    .map(|kernel| KernelChoice::Fetched(Box::new(kernel)))
            }
            other => Ok(other),
        }
    }

    /// The kernel to boot: fetched, found or built (with fs/fuse under gcov for
    /// `coverage`); None for the running kernel. `modules`: where a bzImage path's modules
    /// are, when not beside it.
    pub fn resolve(
        &self,
        coverage: bool,
        modules: Option<&std::path::Path>,
    ) -> Result<Option<Kernel>> {
        let cache = crate::env::cache::dir();
        Ok(match self {
            KernelChoice::Host => None,
            KernelChoice::Path(p) => Some(Kernel::from_path(p, modules)?),
            KernelChoice::Debian(series) => Some(crate::kernel::debian::fetch(series, &cache)?),
            KernelChoice::Build(b) => {
                let b = crate::kernel::build::BuildRequest {
                    coverage,
                    ..b.clone()
                };
                Some(crate::kernel::build::build(&b, &cache)?.kernel)
            }
            KernelChoice::Fetched(k) => Some((**k).clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices() {
        assert!(matches!(KernelChoice::parse("host"), KernelChoice::Host));
        assert!(matches!(KernelChoice::parse("debian-6.1"), KernelChoice::Debian(s) if s == "6.1"));
        assert!(matches!(KernelChoice::parse("debian:7.3"), KernelChoice::Debian(s) if s == "7.3"));
        assert!(
            matches!(KernelChoice::parse("debian-x"), KernelChoice::Path(p) if p.to_str() == Some("debian-x"))
        );
        assert!(matches!(
            KernelChoice::parse("src:debian:7.2"),
            KernelChoice::Build(b) if b.src.as_deref() == Some(std::path::Path::new("debian:7.2"))
        ));
    }
}

/// What a coverage report must know of a kernel built with `--coverage`; saved in the
/// run's `plan.json`, so that `replay` reports it again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CoverageBuild {
    /// The build's object directory (O=): the `.gcno` files, and the prefix of every
    /// counter file's path in the guest's debugfs.
    pub objects: PathBuf,
    /// This kernel's gcov notes (`.gcno`), kept apart from the object directory, which the
    /// next build of the entry changes: `<notes>/fs/fuse/*.gcno`.
    pub notes: PathBuf,
    /// The tree it was built from (the build entry's working copy): gcov reads the
    /// sources there.
    pub tree: PathBuf,
    /// The source tree the working copy follows (the tree before the series).
    pub origin: PathBuf,
    /// The source as results name it.
    pub source: String,
    /// The `--src` it was given (`debian:7.3`, a path), for the commands a message suggests.
    pub src_arg: String,
    /// The user's patch series (not the coverage patch): each mail's subject and text.
    pub series: Vec<(String, String)>,
    /// The lines the series changes in fs/fuse, per file, numbered as in the source.
    #[serde(default)]
    pub changed: std::collections::BTreeMap<String, std::collections::BTreeSet<u32>>,
}
