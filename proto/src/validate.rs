//! What `cargo xtask validate` tells the agent about the server under test: which binary,
//! with which arguments, and what to call it in the results. The host writes it as JSON; the
//! agent finds it through [`SPEC_ENV`] (host mode) or at [`GUEST_SPEC`] (in the VM).

use serde::{Deserialize, Serialize};

/// The environment variable naming the spec file.
pub const SPEC_ENV: &str = "FPT_VALIDATE_SPEC";
/// Where the spec is in the initramfs.
pub const GUEST_SPEC: &str = "/fpt/validate.json";

/// The placeholders of an argument template.
pub const SOURCE: &str = "{source}";
pub const MOUNTPOINT: &str = "{mountpoint}";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spec {
    /// What the results call it: a built-in target's name, or the binary's file name.
    pub target: String,
    /// Library and version, as exact as the harness knows ("libfuse 3.18.3").
    pub version: String,
    /// The server binary, as the agent can run it.
    pub server: String,
    /// Its arguments, `{source}` and `{mountpoint}` filled in per case.
    pub args: Vec<String>,
    /// Extra environment (LD_LIBRARY_PATH for a library built in the cache, say).
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// How long the server may take to mount.
    pub mount_timeout_secs: u64,
    /// Set for a server that serves one file of its own choosing instead of `{source}`
    /// (fuser's `examples/passthrough.rs`): only `validate.fixed_file` applies to it.
    #[serde(default)]
    pub fixed_file: Option<FixedFile>,
    /// The arguments that run the same server with its passthrough switched off, where it
    /// has such a switch (`bench --io --server` measures it as the plain FUSE path).
    #[serde(default)]
    pub passthrough_off_args: Option<Vec<String>>,
    /// The backing-id witness (an `LD_PRELOAD` library recording BACKING_OPEN and
    /// BACKING_CLOSE and their answers), as the agent can load it.
    #[serde(default)]
    pub witness: Option<String>,
    /// The library's own test suite, where the harness knows how to run it (libfuse 3.18's
    /// `test/run-tests.py`): `validate.library_suite` runs it on the kernel under test.
    #[serde(default)]
    pub suite: Option<LibrarySuite>,
    /// The arguments that run the same server over FUSE over io_uring, where it speaks it
    /// (libfuse 3.18 built with liburing: `-o io_uring`).
    #[serde(default)]
    pub uring_args: Option<Vec<String>>,
    /// The transport this run validates (`validate --transport`).
    #[serde(default)]
    pub transport: Transport,
}

/// How the kernel hands the server its requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// `read(2)` and `write(2)` on `/dev/fuse`.
    #[default]
    Dev,
    /// FUSE over io_uring (6.14+, `fuse.enable_uring`): the server's ring entries.
    Uring,
}

impl Transport {
    /// "dev" or "uring", as `--transport` and the snapshot names say it.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Dev => "dev",
            Transport::Uring => "uring",
        }
    }
}

impl Spec {
    /// This spec on `transport`: over the ring, the server's ring arguments where it has
    /// them (a server without them stays as it is, and its cases skip, saying why).
    pub fn on(mut self, transport: Transport) -> Spec {
        if transport == Transport::Uring {
            if let Some(args) = &self.uring_args {
                self.args = args.clone();
            }
        }
        self.transport = transport;
        self
    }
}

/// A library's own test suite, as the agent runs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibrarySuite {
    /// The runner (`test/run-tests.py` of the source tree), a host path.
    pub runner: String,
    /// The build tree with the test binaries (`--build-dir`), a host path.
    pub build_dir: String,
    /// In a VM: the host's root as the guest sees it, to chroot into before running (the
    /// suite needs the host's python3, shell and tools at their own paths).
    #[serde(default)]
    pub chroot: Option<String>,
}

/// The one file a fixed server serves, and the file it backs it with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedFile {
    /// Its name in the mount's root.
    pub name: String,
    /// The backing file's path, as the server opens it.
    pub backing: String,
}

impl Spec {
    /// The arguments for one run of the server.
    pub fn args_for(&self, source: &str, mountpoint: &str) -> Vec<String> {
        self.args
            .iter()
            .map(|a| a.replace(SOURCE, source).replace(MOUNTPOINT, mountpoint))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A spec of server `/bin/x` with `args`, the rest empty.
    fn spec(args: &[&str]) -> Spec {
        Spec {
            target: "x".into(),
            version: "x 1".into(),
            server: "/bin/x".into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: vec![],
            mount_timeout_secs: 10,
            fixed_file: None,
            passthrough_off_args: None,
            witness: None,
            suite: None,
            uring_args: None,
            transport: Transport::Dev,
        }
    }

    #[test]
    fn templates_are_filled() {
        let spec = spec(&["{source}", "{mountpoint}", "-o", "src={source}"]);
        assert_eq!(spec.args_for("/s", "/m"), ["/s", "/m", "-o", "src=/s"]);
    }

    #[test]
    fn over_the_ring_a_server_runs_with_its_ring_arguments() {
        let plain = spec(&["{source}"]);
        let ringed = Spec {
            uring_args: Some(vec!["{source}".into(), "-o".into(), "io_uring".into()]),
            ..plain.clone()
        };
        let on = ringed.clone().on(Transport::Uring);
        assert_eq!(on.args, ["{source}", "-o", "io_uring"]);
        assert_eq!(on.transport, Transport::Uring);
        assert_eq!(ringed.on(Transport::Dev).args, ["{source}"]);
        // Without ring arguments it stays as it is; its cases skip, saying why.
        assert_eq!(plain.on(Transport::Uring).args, ["{source}"]);
    }
}
