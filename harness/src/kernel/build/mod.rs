//! Builds the kernel under test from any tree: the default linux-source-7.3 package, or a
//! `--src` directory, with a patch series, a config profile and extra fragments.
//!
//! The given tree is never written to: make runs in a working copy of it (hard links, the
//! series applied: `workcopy`), out of tree (`O=`). Each (source, fragments, profile) gets
//! one output directory and one working copy under the cache, whatever the series, so a new
//! series, or none, rebuilds only what differs; a stamp says which outputs may be trusted.

pub mod changed;
mod config;
mod make;
mod patches;
mod seed;
pub mod source;
mod workcopy;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::kernel::image::{file_hash, hex, Identity, Kernel};

pub use config::{profile_names, Profile};
pub use patches::Series;
pub use workcopy::series_applied;

/// What to build.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// A kernel tree or git checkout; None: Debian's linux-source-7.3 (source::DEFAULT_PACKAGE).
    pub src: Option<PathBuf>,
    /// The patch series, in order (files or mboxes).
    pub patches: Vec<PathBuf>,
    /// Apply only the first N mails of the series (`cargo xtask series` steps through it).
    pub first_patches: Option<usize>,
    /// Profile name (`images/kernel/profiles/<name>.config`); None: minimal.
    pub profile: Option<String>,
    /// Extra config fragments, merged after the profile.
    pub fragments: Vec<PathBuf>,
    /// The developer's own .config to start from instead of tinyconfig.
    pub config: Option<PathBuf>,
    /// Show a live progress line while make runs.
    pub progress: bool,
    /// fs/fuse compiled with gcov (`--coverage`): `images/kernel/coverage/fuse-gcov.patch`
    /// after the series, in the same build entry (base.config has the kernel's gcov support),
    /// so turning coverage on or off rebuilds fs/fuse only.
    pub coverage: bool,
}

/// `images/kernel/coverage/`: the patch a coverage build adds to any tree.
fn coverage_dir() -> PathBuf {
    crate::env::cache::workspace_root().join("images/kernel/coverage")
}

/// The patch a coverage build adds last (its name in the kernel's identity).
pub const COVERAGE_PATCH: &str = "fuse-gcov.patch";

/// A build's result.
#[derive(Debug, Clone)]
pub struct Built {
    /// The kernel, as a run boots it.
    pub kernel: Kernel,
    /// The build directory (O=), with build.log beside it.
    pub dir: PathBuf,
    /// false when make found nothing to do.
    pub rebuilt: bool,
}

/// The directory of the tree `req` builds from (the default package's unpacked tree, or
/// `--src`): what a benchmark touches to time an incremental build.
pub fn source_dir(req: &BuildRequest, cache: &Path) -> Result<PathBuf> {
    Ok(source::resolve(req.src.as_deref(), cache)?.dir)
}

/// Build (or find already built) the kernel `req` describes.
pub fn build(req: &BuildRequest, cache: &Path) -> Result<Built> {
    let configured = configured(req, cache)?;
    let Configured {
        plan, tree, out, ..
    } = &configured;
    let rebuilt = make::bzimage(tree, out, &plan.entry.join("build.log"), req.progress)?;

    let (bzimage, config) = keep(&plan.entry, out)?;
    let mut kernel = Kernel::from_path(&bzimage, None)?;
    kernel.config = Some(config);
    kernel.identity = Identity {
        release: kernel.release.clone(),
        source: plan.src.describe(),
        patches: plan.series.infos(),
        profile: plan.profile.name.clone(),
        config_hash: file_hash(&out.join(".config")),
    };
    if req.coverage {
        let notes = keep_notes(&bzimage, out)?;
        kernel.coverage = Some(crate::kernel::CoverageBuild {
            objects: out.clone(),
            notes,
            tree: tree.clone(),
            origin: plan.src.dir.clone(),
            source: plan.src.describe(),
            src_arg: req
                .src
                .as_ref()
                .map_or(format!("debian:{}", source::DEFAULT_SERIES), |s| {
                    s.display().to_string()
                }),
            series: plan
                .series
                .mails()
                .filter(|(name, _)| *name != COVERAGE_PATCH)
                .zip(plan.series.subjects())
                .map(|((_, text), subject)| (subject, String::from_utf8_lossy(text).into_owned()))
                .collect(),
            changed: changed::in_dir(&plan.src.dir, tree, "fs/fuse"),
        });
    }
    Ok(Built {
        kernel,
        dir: plan.entry.clone(),
        rebuilt,
    })
}

/// A copy of the built bzImage and its .config under `<entry>/images/<hash>`, which no later
/// build writes: the output directory is shared by every series of the entry, and another
/// build (a bisect step, a second terminal) may replace its bzImage while this one boots.
/// The newest few are kept.
fn keep(entry: &Path, out: &Path) -> Result<(PathBuf, PathBuf)> {
    let built = out.join("arch/x86/boot/bzImage");
    let dir = entry.join("images").join(file_hash(&built));
    let (bzimage, config) = (dir.join("bzImage"), dir.join("config"));
    if !bzimage.is_file() {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
        for (from, to) in [(&built, &bzimage), (&out.join(".config"), &config)] {
            let tmp = to.with_extension("new");
            std::fs::copy(from, &tmp).map_err(|e| Error::io(from.display(), e))?;
            std::fs::rename(&tmp, to).map_err(|e| Error::io(to.display(), e))?;
        }
    }
    // Touched, so the oldest are the least recently used.
    let _ = std::fs::File::options()
        .append(true)
        .open(&bzimage)
        .and_then(|f| f.set_modified(std::time::SystemTime::now()));
    prune(&entry.join("images"), 8);
    Ok((bzimage, config))
}

/// A coverage build's gcov notes (`fs/fuse/*.gcno`) copied beside its kept bzImage: the
/// next build of the entry, with another series or none, rewrites or leaves stale the ones
/// in `out`, and the counters of this kernel must be read with this kernel's notes.
fn keep_notes(bzimage: &Path, out: &Path) -> Result<PathBuf> {
    let dir = bzimage.with_file_name("gcno");
    let from = out.join("fs/fuse");
    let to = dir.join("fs/fuse");
    std::fs::create_dir_all(&to).map_err(|e| Error::io(to.display(), e))?;
    for e in std::fs::read_dir(&from)
        .map_err(|e| Error::io(from.display(), e))?
        .flatten()
    {
        let path = e.path();
        if path.extension().is_some_and(|x| x == "gcno") {
            let target = to.join(e.file_name());
            if !target.is_file() {
                std::fs::copy(&path, &target).map_err(|e| Error::io(path.display(), e))?;
            }
        }
    }
    Ok(dir)
}

/// Remove all but the `keep` most recently used image directories.
fn prune(images: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(images) else {
        return;
    };
    let mut dirs: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let used = std::fs::metadata(e.path().join("bzImage"))
                .and_then(|m| m.modified())
                .ok()?;
            Some((used, e.path()))
        })
        .collect();
    dirs.sort();
    let extra = dirs.len().saturating_sub(keep);
    for (_, d) in dirs.into_iter().take(extra) {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Only the config step of [`build`]: the working copy synchronised and `out/.config` made
/// (or found made); its path. What `cargo xtask kernel config` does, as kunit_tool's config.
pub fn configure(req: &BuildRequest, cache: &Path) -> Result<PathBuf> {
    Ok(configured(req, cache)?.out.join(".config"))
}

/// A build entry locked, its working copy synchronised and its .config made: what make
/// starts from.
struct Configured {
    plan: Plan,
    tree: PathBuf,
    out: PathBuf,
    /// Held while the entry is in use.
    _lock: std::fs::File,
}

fn configured(req: &BuildRequest, cache: &Path) -> Result<Configured> {
    crate::env::provision::ensure_build_tools()?;
    let plan = plan(req, cache)?;
    std::fs::create_dir_all(&plan.entry).map_err(|e| Error::io(plan.entry.display(), e))?;
    // One build per entry at a time: two makes in one output directory corrupt it.
    let lock = crate::env::cache::lock(&plan.entry, "build")?;
    // A new entry of a series already built with this recipe starts from that build.
    match seed::from_sibling(&plan.entry, &plan.src.dir, &plan.fragments.fingerprint()) {
        Ok(Some(seeded)) => eprintln!(
            "build {}: starts from build {} (same profile and fragments, same series; its path \
             rewritten in {} files): make rebuilds what differs",
            short(&plan.entry),
            short(&seeded.from),
            seeded.rewritten
        ),
        Ok(None) => {}
        Err(e) => eprintln!(
            "build {}: could not start from a built sibling ({e}): building it whole",
            short(&plan.entry)
        ),
    }
    // The tree make runs in: the entry's working copy, the source plus the series.
    let (tree, synced) = workcopy::sync(&plan.src.dir, &plan.series, &plan.entry)?;
    if synced.written + synced.removed > 0 && !synced.created {
        eprintln!(
            "working copy: {} files written, {} removed (source plus {} patches)",
            synced.written,
            synced.removed,
            plan.series.len()
        );
    }
    let out = plan.entry.join("out");
    config::configure(&tree, &out, &plan.fragments)?;
    Ok(Configured {
        plan,
        tree,
        out,
        _lock: lock,
    })
}

/// An entry's name, for log lines.
fn short(entry: &Path) -> String {
    entry.file_name().map_or_else(
        || entry.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Everything a build is made of, and its cache entry.
struct Plan {
    src: source::Source,
    profile: Profile,
    fragments: config::Fragments,
    series: patches::Series,
    entry: PathBuf,
}

fn plan(req: &BuildRequest, cache: &Path) -> Result<Plan> {
    let src = source::resolve(req.src.as_deref(), cache)?;
    let profile = Profile::load(req.profile.as_deref().unwrap_or("minimal"))?;
    let fragments = config::Fragments::gather(&profile, &req.fragments, req.config.as_deref())?;
    let mut series = patches::Series::read(&req.patches)?;
    if let Some(n) = req.first_patches {
        series = series.prefix(n);
    }
    // After the user's series, whichever prefix of it: the tree they wrote it against.
    if req.coverage {
        series = series.then(patches::Series::read(&[
            coverage_dir().join(COVERAGE_PATCH)
        ])?);
    }
    // Not the series: one output directory and working copy per source, profile and
    // fragments, so that changing the series rebuilds only what it touches.
    let mut h = Sha256::new();
    h.update(src.cache_key().as_bytes());
    h.update(fragments.fingerprint().as_bytes());
    h.update(profile.name.as_bytes());
    let entry = cache.join("builds").join(&hex(&h.finalize())[..16]);
    Ok(Plan {
        src,
        profile,
        fragments,
        series,
        entry,
    })
}

/// The cache entry (build directory) `req` builds in, without building.
pub fn entry_dir(req: &BuildRequest, cache: &Path) -> Result<PathBuf> {
    Ok(plan(req, cache)?.entry)
}
