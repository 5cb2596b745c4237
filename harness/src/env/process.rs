//! The one way the harness runs a short-lived command: captured output, and an error that
//! names the command and shows what it said. Long-lived children with their own plumbing
//! (QEMU, make with a live line, the agent in host mode) use `std::process` directly.
//!
//! Why not xshell's `cmd!`: the commands here are built from paths and optional arguments
//! step by step, several need a working directory, environment or process group of their
//! own, and the errors must become `Error` values with exit codes; a plain `Command` and
//! these two functions do that with nothing in between.

use std::process::{Command, Output, Stdio};

use crate::error::{Error, Result};

/// Run `cmd` to its end; its output when it succeeded, else `Error::Command` with the last
/// lines of its stderr.
pub fn output(cmd: &mut Command) -> Result<Output> {
    let command = describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| Error::Spawn {
            command: command.clone(),
            source,
        })?;
    if out.status.success() {
        return Ok(out);
    }
    Err(Error::Command {
        command,
        status: out.status.to_string(),
        stderr: tail(&out.stderr, 12),
    })
}

/// Run `cmd` with its output hidden; whether it succeeded.
pub fn succeeds(cmd: &mut Command) -> bool {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.status().is_ok_and(|s| s.success())
}

/// "apt-get download linux-image-..." for messages.
pub fn describe(cmd: &Command) -> String {
    let mut words = vec![cmd.get_program().to_string_lossy().into_owned()];
    words.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

/// The last `n` non-empty lines of a command's output, joined.
pub fn tail(bytes: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_command_is_named_with_its_stderr() {
        let err = output(Command::new("sh").args(["-c", "echo one >&2; echo two >&2; exit 3"]))
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(
                "`sh -c echo one >&2; echo two >&2; exit 3` failed (exit status: 3): one\ntwo"
            ),
            "{text}"
        );
        assert!(matches!(
            output(&mut Command::new("/nonexistent/x")),
            Err(Error::Spawn { .. })
        ));
        assert!(succeeds(&mut Command::new("true")));
    }
}
