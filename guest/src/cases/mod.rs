//! The conformance cases: the catalog, and the small context each case runs with.
//!
//! A case records *observations* (what the kernel did: errno names, byte and request counts)
//! and *checks* (what the UAPI promises). The verdict follows from the checks alone; the
//! observations go into the snapshot.

mod audit;
mod backing_open;
mod bench;
mod faults;
mod ids;
mod init;
mod io;
mod lifetime;
mod open_reply;
pub mod privilege;
mod regression;
mod selftest;
mod stacking;
pub mod subject;
mod uring;
mod validate;

use proto::observation as key;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use serde::Serialize;

use proto::{CaseInfo, CaseResult, Observations, Verdict};

use crate::fuse::{FuseFs, InitReply};
use subject::Subject;

pub use proto::wire::NO_PASSTHROUGH;

/// One case, declared with named fields and the rest from its group's `DEFAULTS` (itself
/// built on [`Case::DEFAULT`]): `Case { name: "io.x", rule: "...", verdict_rule: "...",
/// run: x, ..DEFAULTS }`. The group is the name's first part.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// `group.name`, unique; what `--case` takes.
    pub name: &'static str,
    /// The rule under test, as the UAPI or the kernel states it.
    pub rule: &'static str,
    /// What makes the verdict pass.
    pub verdict_rule: &'static str,
    /// Killed (and reported as crash) after this long.
    pub timeout: Duration,
    /// May take the kernel down: never in a full run, never on the host; name it to run it.
    pub kills_kernel: bool,
    /// Runs against the server under test (`cargo xtask validate`): see [`Ctx::io_file`].
    pub external_server: bool,
    /// Reads the host's root over virtio-fs at `/host`: the harness shares it.
    pub uses_host_share: bool,
    /// What the case leaves busy on purpose after it ends, and why. Every other case must
    /// leave every file system it mounted free to unmount ([`audit`]).
    pub keeps_busy: Option<&'static str>,
    /// Runs with the agent's server on FUSE over io_uring (the `uring` group's copies of
    /// other groups' cases): [`uring`].
    pub over_ring: bool,
    /// Waits on a kernel timer (tens of seconds): not in a run that names no case.
    pub slow: bool,
    pub run: fn(&mut Ctx) -> Result<(), Stop>,
}

impl Case {
    /// What every declaration starts from; a unit test checks that each case replaced the
    /// name, the rule, the verdict rule and the run.
    pub const DEFAULT: Case = Case {
        name: "",
        rule: "",
        verdict_rule: "",
        timeout: Duration::from_secs(10),
        kills_kernel: false,
        external_server: false,
        uses_host_share: false,
        keeps_busy: None,
        over_ring: false,
        slow: false,
        run: undeclared,
    };

    pub fn group(&self) -> &'static str {
        proto::catalog::group_of(self.name)
    }

    /// What `fpt-agent list --json` says of it.
    pub fn info(&self) -> CaseInfo {
        CaseInfo {
            name: self.name.into(),
            rule: self.rule.into(),
            verdict_rule: self.verdict_rule.into(),
            timeout_secs: self.timeout.as_secs(),
            kills_kernel: self.kills_kernel,
            external_server: self.external_server,
            uses_host_share: self.uses_host_share,
            slow: self.slow,
        }
    }
}

fn undeclared(_: &mut Ctx) -> Result<(), Stop> {
    Err(Stop::Broken(
        "this case was declared without a run function".into(),
    ))
}

/// Every case, in the order a full run takes them.
pub fn catalog() -> &'static [Case] {
    static CATALOG: std::sync::OnceLock<Vec<Case>> = std::sync::OnceLock::new();
    CATALOG.get_or_init(|| {
        let mut all = Vec::new();
        all.extend(init::cases());
        all.extend(privilege::cases());
        all.extend(backing_open::cases());
        all.extend(ids::cases());
        all.extend(open_reply::cases());
        all.extend(stacking::cases());
        all.extend(lifetime::cases());
        all.extend(io::cases());
        all.extend(regression::cases());
        all.extend(faults::cases());
        let over_ring = uring::cases(&all);
        all.extend(over_ring);
        all.extend(bench::cases());
        all.extend(selftest::cases());
        all.extend(validate::cases());
        all
    })
}

pub fn find(name: &str) -> Option<&'static Case> {
    catalog().iter().find(|c| c.name == name)
}

/// The catalog as the host reads it.
pub fn infos() -> Vec<CaseInfo> {
    catalog().iter().map(Case::info).collect()
}

/// "all" (every case a default run takes) or a comma-separated list of names and patterns
/// (`uring.*`: see [`proto::catalog::pattern_takes`]).
pub fn select(list: &str) -> Result<Vec<&'static Case>, String> {
    let names: Vec<&str> = match list {
        "all" => Vec::new(),
        _ => list.split(',').filter(|n| !n.is_empty()).collect(),
    };
    proto::catalog::select(catalog(), &names, validating()).map_err(|e| e.to_string())
}

/// Whether this run has a server under test (its spec is in the environment or the image):
/// then a pattern may take the cases that run against it.
fn validating() -> bool {
    std::env::var_os(proto::validate::SPEC_ENV).is_some()
        || std::path::Path::new(proto::validate::GUEST_SPEC).exists()
}

impl proto::catalog::Selectable for Case {
    fn name(&self) -> &str {
        self.name
    }
    fn kills_kernel(&self) -> bool {
        self.kills_kernel
    }
    fn external_server(&self) -> bool {
        self.external_server
    }
    fn slow(&self) -> bool {
        self.slow
    }
}

/// Why a case stopped before its end.
#[derive(Debug)]
pub enum Stop {
    /// The case does not apply to this kernel.
    Skip(String),
    /// The case could not set itself up: a failure, but not one of the rule under test.
    Broken(String),
    /// The server under test did not start or mount: nothing about the kernel or the
    /// library's passthrough can be said.
    NoServer(String),
}

impl From<std::io::Error> for Stop {
    fn from(e: std::io::Error) -> Self {
        Stop::Broken(format!("setup failed: {e}"))
    }
}

impl From<Errno> for Stop {
    fn from(e: Errno) -> Self {
        Stop::Broken(format!("setup failed: {}", crate::sys::errno_name(e)))
    }
}

pub struct Ctx {
    /// The running kernel, for verdicts that changed on purpose between versions.
    pub kernel: crate::sys::KernelVersion,
    /// The server under test, when `cargo xtask validate` runs this case.
    server: Option<proto::validate::Spec>,
    /// What the end of that server's run showed.
    teardown: subject::Teardown,
    observations: Observations,
    failures: Vec<String>,
    /// A private tmpfs the case may fill as it likes.
    work: PathBuf,
    mounts: u32,
    /// Under validate: what `{source}` is on.
    pub source: subject::SourceKind,
    /// Mounts the case's `{source}` sits on, kept until the server under test has ended.
    keep: Vec<FuseFs>,
    /// Every mount of the agent's server asks for FUSE over io_uring, and the case skips
    /// where the kernel does not offer it.
    over_ring: bool,
}

impl Ctx {
    pub fn new(work: &Path) -> Self {
        Ctx {
            kernel: crate::sys::KernelVersion::running(),
            server: None,
            teardown: Default::default(),
            observations: Observations::new(),
            failures: Vec::new(),
            work: work.into(),
            mounts: 0,
            source: subject::SourceKind::Tmpfs,
            keep: Vec::new(),
            over_ring: false,
        }
    }

    /// Record what happened under `key`.
    pub fn observe(&mut self, key: &str, value: impl Serialize) {
        let value = serde_json::to_value(value).expect("observations are plain data");
        self.observations.insert(key.to_string(), value);
    }

    /// A rule check: when `ok` is false the case fails with `what`, and goes on.
    pub fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.failures.push(what.into());
        }
    }

    /// Observe `actual` under `key` and check it equals `expected`.
    pub fn expect(&mut self, key: &str, actual: impl Into<String>, expected: &str) {
        let actual = actual.into();
        self.check(
            actual == expected,
            format!("{key}: expected {expected}, got {actual}"),
        );
        self.observe(key, actual);
    }

    /// [`Ctx::expect`] where the agent's own server answers (its answers are known), a mere
    /// observation where a server under test does (the library decides).
    pub fn expect_own(&mut self, key: &str, actual: impl Into<String>, expected: &str) {
        if self.server.is_none() {
            self.expect(key, actual, expected);
        } else {
            self.observe(key, actual.into());
        }
    }

    /// Observe a count under `key` and check it equals `expected`.
    pub fn expect_count(&mut self, key: &str, actual: u64, expected: u64) {
        self.check(
            actual == expected,
            format!("{key}: expected {expected}, got {actual}"),
        );
        self.observe(key, actual);
    }

    /// A fresh directory on the case's tmpfs.
    pub fn scratch(&mut self, name: &str) -> std::io::Result<PathBuf> {
        let dir = self.work.join(name);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// A fresh tmpfs mounted at a new directory: a backing file alone on it keeps it busy
    /// (umount gives EBUSY) exactly as long as the kernel holds the file.
    pub fn own_tmpfs(&mut self, name: &str) -> Result<PathBuf, Stop> {
        let dir = self.scratch(name)?;
        rustix::mount::mount(
            "fpt-backing",
            &dir,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            None,
        )?;
        Ok(dir)
    }

    /// Mount a FUSE filesystem whose server answers INIT with `init`, and wait for INIT.
    pub fn mount(
        &mut self,
        mut init: InitReply,
    ) -> Result<(FuseFs, crate::fuse::InitExchange), Stop> {
        self.mounts += 1;
        init.io_uring |= self.over_ring;
        let fs = FuseFs::mount(&self.work.join(format!("fs{}", self.mounts)), init)?;
        let exchange = fs.wait_for_init()?;
        if self.over_ring && !exchange.over_ring() {
            return Err(Stop::Broken(
                "the kernel did not offer FUSE_OVER_IO_URING with fuse.enable_uring on".into(),
            ));
        }
        Ok((fs, exchange))
    }

    /// Mount a filesystem that asks for passthrough with `max_stack_depth`; skip the case on a
    /// kernel that does not offer it.
    pub fn mount_passthrough(&mut self, max_stack_depth: u32) -> Result<FuseFs, Stop> {
        self.mount_offering(InitReply::passthrough(max_stack_depth))
    }

    /// Mount with any INIT answer, skipping the case on a kernel that does not offer
    /// passthrough.
    pub fn mount_offering(&mut self, init: InitReply) -> Result<FuseFs, Stop> {
        let (fs, exchange) = self.mount(init)?;
        if !exchange.kernel_offers_passthrough() {
            return Err(Stop::Skip(NO_PASSTHROUGH.into()));
        }
        Ok(fs)
    }

    /// A passthrough filesystem serving `name` (holding `contents`) with a registered
    /// backing id: what most cases start from. Returns the fs, the backing path and the id.
    pub fn passthrough_file(
        &mut self,
        name: &str,
        contents: &[u8],
    ) -> Result<(FuseFs, PathBuf, i32), Stop> {
        let fs = self.mount_passthrough(1)?;
        let backing = fs.backing_dir.join(name);
        std::fs::write(&backing, contents)?;
        let id = fs.add_passthrough_file_at(name, &backing)?;
        Ok((fs, backing, id))
    }

    /// The file `name` holding `contents`, for an I/O case: on the agent's own passthrough
    /// server, or, under `validate`, in `{source}` of the server under test (started now).
    /// Returns the file system and the file's path on its backing file system.
    pub fn io_file(
        &mut self,
        name: &str,
        contents: &[u8],
    ) -> Result<(Box<dyn Subject>, PathBuf), Stop> {
        let Some(spec) = self.server.clone() else {
            let (fs, backing, _) = self.passthrough_file(name, contents)?;
            return Ok((Box::new(fs), backing));
        };
        if let Some(fixed) = &spec.fixed_file {
            return Err(Stop::Skip(format!(
                "{} serves one file of its own ({}, backed by {}), not {{source}}: \
                 validate.fixed_file tests it",
                spec.target, fixed.name, fixed.backing
            )));
        }
        let (source, backing) = self.source_with(name, contents)?;
        let work = self.scratch("server")?;
        let server = subject::External::start(&spec, &source, &work, self.teardown.clone())?;
        Ok((Box::new(server), backing))
    }

    /// `{source}` on the file system `self.source` names, holding `name` with `contents`:
    /// the directory and the file's path in it.
    fn source_with(&mut self, name: &str, contents: &[u8]) -> Result<(PathBuf, PathBuf), Stop> {
        use subject::SourceKind;
        let source = match self.source {
            SourceKind::Tmpfs => self.own_tmpfs("source")?,
            SourceKind::Ext4 => stacking::ext4(self)?,
            SourceKind::Overlay => {
                let lower = self.own_tmpfs("lower")?;
                stacking::overlay(self, "overlay", &lower)?
                    .map_err(|e| Stop::Broken(format!("overlay mount: {e}")))?
            }
            SourceKind::Fuse => {
                // The agent's own passthrough server (depth 1) serves the file, backed by a
                // tmpfs of its own.
                let fs = self.mount_passthrough(1)?;
                let backing = self.own_tmpfs("lower")?.join(name);
                std::fs::write(&backing, contents)?;
                fs.add_passthrough_file_at(name, &backing)?;
                let dir = fs.path("");
                self.keep.push(fs);
                return Ok((dir.clone(), dir.join(name)));
            }
        };
        std::fs::write(source.join(name), contents)?;
        Ok((source.clone(), source.join(name)))
    }

    /// Where the I/O went. For the agent's own server a rule: it saw no READ and no WRITE,
    /// the proof passthrough engaged. For a server under test an observation: the library
    /// decides whether to use passthrough.
    pub fn expect_bypassed(&mut self, fs: &dyn Subject) {
        use crate::fuse::abi::op;
        let (reads, writes) = (fs.requests(op::READ), fs.requests(op::WRITE));
        if self.server.is_none() {
            self.expect_count(key::READ_REQUESTS, reads.unwrap_or(u64::MAX), 0);
            self.expect_count(key::WRITE_REQUESTS, writes.unwrap_or(u64::MAX), 0);
            return;
        }
        // Counted here, a served path's WRITEs would race the write-back: the totals are
        // taken when the server is stopped (`subject::External`'s drop).
        if reads.is_none() || writes.is_none() {
            self.observe(key::PASSED_THROUGH, "unknown: no fuse tracepoint here");
        }
    }
}

/// Run one case in this process and turn what it did into a result.
pub fn run_case(case: &Case, work: &Path) -> CaseResult {
    let start = Instant::now();
    let mounted_before = audit::before();
    let mut ctx = Ctx::new(work);
    if case.external_server {
        match proto_spec() {
            Some(spec) => ctx.server = Some(spec),
            None => {
                return CaseResult::new(
                    case.name,
                    Verdict::Skip,
                    "no server under test: `cargo xtask validate` runs it",
                )
            }
        }
    }
    let ring = if case.over_ring {
        ctx.over_ring = true;
        match uring::enable(&ctx, true) {
            Ok(on) => Some(on),
            Err(stop) => return finish(case, start, ctx, Err(stop)),
        }
    } else {
        None
    };
    let mut stopped = (case.run)(&mut ctx);
    if ring.is_some() && stopped.is_ok() {
        uring::check_served_through_ring(&mut ctx);
    }
    drop(ring);
    // The server under test has been stopped (its subject dropped): what did its end show?
    let teardown: Vec<(String, serde_json::Value)> = ctx.teardown.borrow_mut().drain(..).collect();
    let served = teardown.iter().any(|(k, v)| {
        (k == key::READ_REQUESTS || k == key::WRITE_REQUESTS) && v.as_u64().is_some_and(|n| n > 0)
    });
    if served {
        // The server served (some of) the I/O itself: the mount is then a cached FUSE file,
        // whose rule is coherence through the server, not with {source} at every moment (a
        // write-back cache lags behind, a page cache keeps what {source} has since changed).
        // Only passthrough promises the latter, so here it is an observation.
        let mut incoherent = std::mem::take(&mut ctx.failures);
        if let Err(Stop::Broken(why)) = &stopped {
            incoherent.push(why.clone());
            stopped = Ok(());
        }
        ctx.observe(key::COHERENT_WITH_SOURCE, incoherent.is_empty());
        if !incoherent.is_empty() {
            ctx.observe("incoherent", incoherent);
        }
    }
    for (key, value) in teardown {
        if key == key::SOURCE_RELEASED {
            ctx.check(
                value == "ok",
                format!("{{source}} still busy after the unmount and the server's exit: {value}"),
            );
        }
        ctx.observe(&key, value);
    }
    // The release audit: the case has ended its connections; what it mounted must come off.
    ctx.keep.clear();
    let found = audit::release_since(&mounted_before);
    match (case.keeps_busy, found.busy.is_empty()) {
        (None, false) => ctx.check(
            false,
            format!(
                "backing file system still busy after the case: {}",
                found.busy.join(", ")
            ),
        ),
        (Some(_), false) => ctx.observe("kept_busy", &found.busy),
        (Some(why), true) => ctx.check(
            false,
            format!("declared to keep a mount busy ({why}), but every mount came off: the declaration is stale"),
        ),
        (None, true) => {}
    }
    ctx.check(
        found.backing_files.is_empty(),
        format!(
            "fusectl backing_files not empty after the case: {}",
            found.backing_files.join("; ")
        ),
    );
    finish(case, start, ctx, stopped)
}

/// The verdict, from how the case stopped and what its checks found.
fn finish(case: &Case, start: Instant, mut ctx: Ctx, stopped: Result<(), Stop>) -> CaseResult {
    let crashed = ctx
        .observations
        .get(key::SERVER_CRASHED)
        .and_then(|v| v.as_str())
        .map(String::from);
    let (verdict, reason) = match stopped {
        // Whatever the I/O then showed, the server died under it.
        _ if crashed.is_some() => (
            Verdict::Crash,
            format!(
                "the server under test died during the case: {}",
                crashed.unwrap_or_default()
            ),
        ),
        Err(Stop::Skip(why)) => (Verdict::Skip, why),
        Err(Stop::Broken(why)) => (Verdict::Fail, why),
        Err(Stop::NoServer(why)) => {
            ctx.observe(key::SERVER_DID_NOT_START, &why);
            (Verdict::Fail, why)
        }
        Ok(()) if ctx.failures.is_empty() => (Verdict::Pass, String::new()),
        Ok(()) => (Verdict::Fail, ctx.failures.join("; ")),
    };
    CaseResult {
        observations: ctx.observations,
        duration_ms: start.elapsed().as_millis() as u64,
        ..CaseResult::new(case.name, verdict, reason)
    }
}

/// The server under test, from the spec file `cargo xtask validate` wrote.
fn proto_spec() -> Option<proto::validate::Spec> {
    let path = std::env::var_os(proto::validate::SPEC_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| proto::validate::GUEST_SPEC.into());
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Unmount `dir` (not lazily), retrying for up to 2 s: the kernel drops its last reference
/// to a backing file asynchronously after the final release. "ok" or the last errno.
pub fn unmount_when_released(dir: &Path) -> String {
    let mut last = String::new();
    for _ in 0..200 {
        last = crate::sys::outcome(&rustix::mount::unmount(
            dir,
            rustix::mount::UnmountFlags::empty(),
        ));
        // EINVAL: nothing is mounted there (any more); waiting will not change that.
        if last == "ok" || last == "EINVAL" {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    last
}

/// Drop the clean page cache of `file` (so a plain FUSE file's next read goes to its
/// server): fadvise(DONTNEED), or where the kernel has no fadvise (tinyconfig leaves
/// CONFIG_ADVISE_SYSCALLS off) every clean page cache through /proc/sys/vm/drop_caches.
pub fn drop_page_cache(file: &std::fs::File) -> std::io::Result<()> {
    match rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::DontNeed) {
        Err(Errno::NOSYS) => std::fs::write("/proc/sys/vm/drop_caches", "1"),
        other => other.map_err(Into::into),
    }
}

/// Deterministic bytes that differ at every offset and between seeds, so a misplaced or
/// stale block never compares equal by accident.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    // Eight bytes per xorshift step: the I/O cases make tens of MiB of it under TCG.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_names_are_unique_and_grouped() {
        let mut names: Vec<_> = catalog().iter().map(|c| c.name).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "duplicate case names");
        for c in catalog() {
            assert!(
                c.name.contains('.') && !c.group().is_empty(),
                "{} has no group",
                c.name
            );
            assert!(
                !c.name.contains(','),
                "{}: commas separate names on the command line",
                c.name
            );
            assert!(
                !c.rule.is_empty() && !c.verdict_rule.is_empty(),
                "{}: a rule and a verdict rule",
                c.name
            );
            assert_ne!(c.rule, c.verdict_rule, "{}", c.name);
        }
    }

    #[test]
    fn selects_cases_by_name() {
        assert!(select("all").unwrap().iter().all(|c| !c.kills_kernel));
        assert!(!select("selftest.panic").unwrap().is_empty());
        assert_eq!(select("init.offer").unwrap()[0].name, "init.offer");
        let ring = select("uring.*").unwrap();
        assert!(ring.len() > 3 && ring.iter().all(|c| c.group() == "uring"));
        assert!(
            select("selftest.*").is_err(),
            "selftests are named one by one"
        );
        assert!(select("nothing.*").is_err());
        assert!(select("init.offer,nope").unwrap_err().contains("nope"));
    }

    #[test]
    fn docs_cases_md_is_current() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/cases.md");
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        let facts = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/kernel-facts.md"),
        )
        .unwrap_or_default();
        let want = proto::catalog::markdown(&infos()) + &proto::catalog::coverage(&infos(), &facts);
        assert!(
            on_disk == want,
            "docs/cases.md is stale: run `cargo xtask cases --markdown > docs/cases.md`"
        );
    }

    #[test]
    fn patterns_differ_by_seed() {
        assert_ne!(pattern(1, 64), pattern(2, 64));
        assert_eq!(pattern(7, 64), pattern(7, 64));
        assert_eq!(pattern(7, 13).len(), 13);
        assert_eq!(pattern(7, 13)[..], pattern(7, 64)[..13]);
    }
}
