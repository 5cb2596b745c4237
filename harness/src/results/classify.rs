//! Reads the kernel console as it streams and recognises the kernel's own reports: panics,
//! Oopses, BUGs, WARNINGs, KASAN, lockdep, hung tasks, soft and hard lockups, RCU stalls and
//! refcount warnings, each with its first line, the task it names and its whole trace.
//!
//! The patterns are the kernel's own wording (lib/bug.c, kernel/panic.c, kernel/hung_task.c,
//! kernel/watchdog.c, kernel/rcu/tree_stall.h, lib/refcount.c, mm/kasan/report.c,
//! kernel/locking/lockdep.c); `tests/corpus/` holds real captures they are tested on.

pub use proto::{Finding, FindingKind as Kind};

use crate::results::console::strip_timestamp;

/// What a headline line says, if it starts a report.
fn headline_kind(line: &str) -> Option<Kind> {
    let l = line;
    Some(if l.starts_with("Kernel panic - not syncing") {
        Kind::Panic
    } else if l.starts_with("BUG: KASAN:") {
        Kind::Kasan
    } else if l.contains("BUG: soft lockup") {
        Kind::SoftLockup
    } else if l.contains("Watchdog detected hard LOCKUP") {
        Kind::HardLockup
    } else if l.starts_with("INFO: task ") && l.contains(" blocked for more than ") {
        Kind::HungTask
    } else if l.contains("rcu: INFO: ") && l.contains("stall")
        || l.contains("detected stalls on CPUs/tasks")
    {
        Kind::RcuStall
    } else if l.starts_with("WARNING: possible circular locking dependency")
        || l.starts_with("WARNING: possible recursive locking")
        || l.starts_with("WARNING: inconsistent lock state")
        || l.starts_with("WARNING: bad unlock balance")
        || l.starts_with("WARNING: suspicious RCU usage")
        || l.starts_with("WARNING: held lock freed")
    {
        Kind::Lockdep
    } else if l.starts_with("refcount_t: ") {
        Kind::Refcount
    } else if l.starts_with("Oops: ") {
        Kind::Oops
    } else if l.starts_with("BUG: ") || l.starts_with("kernel BUG at ") {
        Kind::Bug
    } else if l.starts_with("WARNING: CPU: ")
        || l.starts_with("WARNING: at ")
        // 7.x: "WARNING: fs/fuse/backing.c:72 at fuse_backing_id_free+0xa/0x14, CPU#0: init/31".
        || (l.starts_with("WARNING: ") && l.contains(" at ") && l.contains(", CPU#"))
    {
        Kind::Warning
    } else {
        return None;
    })
}

/// Whether this console line starts a kernel report.
pub fn starts_report(line: &str) -> bool {
    headline_kind(strip_timestamp(line).trim_end()).is_some()
}

/// Lines that end a report.
fn ends_report(line: &str) -> bool {
    line.starts_with("---[ end trace")
        || line.starts_with("---[ end Kernel panic")
        || line.starts_with("=================")
}

/// "CPU: 0 UID: 0 PID: 57 Comm: fpt-agent Not tainted ..." -> "fpt-agent (pid 57)";
/// "INFO: task fpt-agent:57 blocked ..." -> the same.
fn task_of(line: &str) -> Option<String> {
    if let Some(rest) = line.strip_prefix("INFO: task ") {
        let (comm, pid) = rest.split(" blocked").next()?.rsplit_once(':')?;
        return Some(format!("{comm} (pid {pid})"));
    }
    let pid = line.split("PID: ").nth(1)?.split_whitespace().next()?;
    let comm = line.split("Comm: ").nth(1)?.split_whitespace().next()?;
    Some(format!("{comm} (pid {pid})"))
}

/// Feeds on console lines; yields each finding once its report is complete.
#[derive(Debug, Default)]
pub struct Classifier {
    open: Option<Finding>,
}

impl Classifier {
    /// Most a report keeps; longer traces are cut (the console log has them whole).
    const MAX_LINES: usize = 120;

    /// Take one console line; returns a finding when this line completes one (or starts
    /// the next, which completes the one before).
    pub fn push(&mut self, raw: &str) -> Option<Finding> {
        let line = strip_timestamp(raw).trim_end();
        if let Some(kind) = headline_kind(line) {
            // Some reports come in two headlines: "refcount_t: ..." then its WARNING, and
            // "kernel BUG at ..." or "BUG: kernel NULL pointer dereference" then the Oops that
            // carries the registers and trace. The first names the report; the second is
            // part of it.
            let continues = |f: &Finding| {
                f.trace.len() < 8
                    && matches!(
                        (f.kind, kind),
                        (Kind::Refcount, Kind::Warning) | (Kind::Bug, Kind::Oops)
                    )
            };
            if let Some(f) = self.open.as_mut().filter(|f| continues(f)) {
                f.trace.push(line.to_string());
                return None;
            }
            // Any other headline (a panic caused by an open report, say) ends the open one.
            let done = self.open.take();
            self.open = Some(Finding {
                kind,
                headline: line.to_string(),
                task: task_of(line),
                trace: vec![line.to_string()],
            });
            return done;
        }
        let Some(f) = &mut self.open else { return None };
        if f.task.is_none() {
            f.task = task_of(line);
        }
        if f.trace.len() < Self::MAX_LINES {
            f.trace.push(line.to_string());
        }
        if ends_report(line) && f.trace.len() > 1 {
            return self.open.take();
        }
        None
    }

    /// The report still open when the console ended (a panic's trace often has no end line).
    pub fn finish(&mut self) -> Option<Finding> {
        self.open.take()
    }

    /// Classify a whole capture.
    pub fn all(text: &str) -> Vec<Finding> {
        let mut c = Classifier::default();
        let mut out: Vec<Finding> = text.lines().filter_map(|l| c.push(l)).collect();
        out.extend(c.finish());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Every capture in tests/corpus/ is named `<kind>-<how>.log`, and was taken from a real
    /// run (the file's first line says how). Each must yield a finding of its kind.
    #[test]
    fn recognises_every_capture_in_the_corpus() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
        let mut per_kind: BTreeMap<String, usize> = BTreeMap::new();
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .expect("the corpus exists")
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        assert!(!files.is_empty());
        for file in files {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            let want = name.split('-').next().unwrap().to_string();
            let text = std::fs::read_to_string(&file).unwrap();
            let findings = Classifier::all(&text);
            let kinds: Vec<String> = findings
                .iter()
                .map(|f| {
                    serde_json::to_value(f.kind)
                        .unwrap()
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect();
            assert!(
                kinds.contains(&want),
                "{name}: wanted {want}, found {kinds:?}"
            );
            let f = findings
                .iter()
                .find(|f| serde_json::to_value(f.kind).unwrap() == want.as_str())
                .unwrap();
            assert!(f.trace.len() > 1, "{name}: a finding keeps its trace");
            *per_kind.entry(want).or_default() += 1;
        }
        eprintln!("corpus captures recognised per kind: {per_kind:?}");
    }

    #[test]
    fn reads_the_task_from_either_form() {
        assert_eq!(
            task_of("CPU: 1 UID: 0 PID: 57 Comm: fpt-agent Not tainted 6.12.117 #1").unwrap(),
            "fpt-agent (pid 57)"
        );
        assert_eq!(
            task_of("INFO: task fpt-agent:57 blocked for more than 2 seconds.").unwrap(),
            "fpt-agent (pid 57)"
        );
        assert_eq!(task_of("Call Trace:"), None);
    }
}
