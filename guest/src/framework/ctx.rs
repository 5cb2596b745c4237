//! [`Ctx`]: what a case has at hand while it runs: its scratch space, its mounts, the
//! kernel's version, and the record of its observations and checks.

use proto::observation as key;
use std::path::{Path, PathBuf};

use serde::Serialize;

use proto::Observations;

use super::subject::{self, Subject};
use super::{Stop, NO_PASSTHROUGH};
use crate::fuse::{FuseFs, InitReply};

pub struct Ctx {
    /// The running kernel, for verdicts that changed on purpose between versions.
    pub kernel: crate::sys::KernelVersion,
    /// The server under test, when `cargo xtask validate` runs this case.
    pub server: Option<proto::validate::Spec>,
    /// What the end of that server's run showed.
    pub teardown: subject::Teardown,
    pub(super) observations: Observations,
    pub(super) failures: Vec<String>,
    /// Failures of rules that hold however the server served the I/O ([`Ctx::require`]).
    pub(super) firm: Vec<String>,
    /// A private tmpfs the case may fill as it likes.
    pub(super) work: PathBuf,
    pub(super) mounts: u32,
    /// Under validate: what `{source}` is on.
    pub source: subject::SourceKind,
    /// Mounts the case's `{source}` sits on, kept until the server under test has ended.
    pub keep: Vec<FuseFs>,
    /// Every mount of the agent's server asks for FUSE over io_uring (with its payloads
    /// where this says), and the case skips where the kernel does not offer it.
    pub(super) over_ring: Option<crate::fuse::Payload>,
}

impl Ctx {
    pub fn new(work: &Path) -> Self {
        Ctx {
            kernel: crate::sys::KernelVersion::running(),
            server: None,
            teardown: Default::default(),
            observations: Observations::new(),
            failures: Vec::new(),
            firm: Vec::new(),
            work: work.into(),
            mounts: 0,
            source: subject::SourceKind::Tmpfs,
            keep: Vec::new(),
            over_ring: None,
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

    /// A check that holds for every server under test, whether it passed the I/O through or
    /// served it: a file's bytes after its last close, a backing id let go of. Unlike
    /// [`Ctx::check`], a served path does not make it an observation.
    pub fn require(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.firm.push(what.into());
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
        if let Some(payload) = self.over_ring {
            init.io_uring = true;
            init.ring_payload = payload;
        }
        let fs = FuseFs::mount(&self.work.join(format!("fs{}", self.mounts)), init)?;
        let exchange = fs.wait_for_init()?;
        if self.over_ring.is_some() && !exchange.over_ring() {
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
        let Some(spec) = self.source_server()? else {
            let (fs, backing, _) = self.passthrough_file(name, contents)?;
            return Ok((Box::new(fs), backing));
        };
        let (source, backing) = self.source_with(name, contents)?;
        Ok((self.start_server(&spec, &source)?, backing))
    }

    /// Several files in `{source}` of the server under test (started once they are all
    /// there): the file system and `{source}`. Only under `validate`: the agent's own server
    /// is one flat directory of files each case registers itself.
    pub fn io_files(
        &mut self,
        files: &[(String, Vec<u8>)],
    ) -> Result<(Box<dyn Subject>, PathBuf), Stop> {
        let Some(spec) = self.source_server()? else {
            return Err(Stop::Skip(
                "several files of {source} at once: a case for a server under test".into(),
            ));
        };
        let source = self.own_tmpfs("source")?;
        for (name, contents) in files {
            std::fs::write(source.join(name), contents)?;
        }
        Ok((self.start_server(&spec, &source)?, source))
    }

    /// The server under test when it serves `{source}`: None in the catalog (the agent's
    /// own server), a skip for a server of one fixed file (`validate.fixed_file` tests it).
    fn source_server(&self) -> Result<Option<proto::validate::Spec>, Stop> {
        let Some(spec) = self.server.clone() else {
            return Ok(None);
        };
        if let Some(fixed) = &spec.fixed_file {
            return Err(Stop::Skip(format!(
                "{} serves one file of its own ({}, backed by {}), not {{source}}: \
                 validate.fixed_file tests it",
                spec.target, fixed.name, fixed.backing
            )));
        }
        Ok(Some(spec))
    }

    /// Start the server under test on `source`, in the case's scratch.
    pub fn start_server(
        &mut self,
        spec: &proto::validate::Spec,
        source: &Path,
    ) -> Result<Box<dyn Subject>, Stop> {
        let work = self.scratch("server")?;
        let server = subject::External::start(spec, source, &work, self.teardown.clone())?;
        Ok(Box::new(server))
    }

    /// `{source}` on the file system `self.source` names, holding `name` with `contents`:
    /// the directory and the file's path in it.
    fn source_with(&mut self, name: &str, contents: &[u8]) -> Result<(PathBuf, PathBuf), Stop> {
        use subject::SourceKind;
        let source = match self.source {
            SourceKind::Tmpfs => self.own_tmpfs("source")?,
            SourceKind::Ext4 => super::fixtures::ext4(self)?,
            SourceKind::Overlay => {
                let lower = self.own_tmpfs("lower")?;
                super::fixtures::overlay(self, "overlay", &lower)?
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
