//! How every command ends on an error: one line for people, and the error's exit code.

/// Say what went wrong (with a panic's last console lines) and give its exit code.
pub(crate) fn fail(e: &harness::Error) -> i32 {
    eprintln!("error: {e}");
    if let harness::Error::BootPanic { tail, .. } = e {
        eprintln!("last console lines:");
        for line in tail {
            eprintln!("  {line}");
        }
    }
    e.exit_code()
}
