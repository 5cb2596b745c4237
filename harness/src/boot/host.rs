//! Host mode: the agent runs on this machine's kernel, no VM. Each case still gets its own
//! process and private mount namespace (the agent does that); we need root for the mounts.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use proto::Event;

use crate::error::{Error, Result};
use crate::results::assemble::RunLog;
use crate::results::ending::{Ending, How};

/// Host mode: the agent's `run` subcommand on the running kernel, its events read from its
/// stdout as they come and saved like a VM's; the boot's log.
pub fn run_cases(run: &super::AgentRun, on_event: &mut dyn FnMut(&Event)) -> Result<RunLog> {
    let super::AgentRun {
        agent,
        cases,
        ext4_image,
        validate_spec,
        artifacts,
    } = *run;
    if !rustix::process::geteuid().is_root() {
        return Err(Error::NeedsRoot {
            what: "host mode (it mounts filesystems)".into(),
        });
    }
    let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    let mut child = Command::new(agent)
        .args(["run", &names.join(",")])
        .env(proto::layout::EXT4_IMAGE_ENV, ext4_image)
        .envs(validate_spec.map(|p| (proto::validate::SPEC_ENV, p)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::io(agent.display(), e))?;
    let mut intake = Intake::new(artifacts)?;
    for line in BufReader::new(child.stdout.take().expect("piped"))
        .lines()
        .map_while(|l| l.ok())
    {
        intake.take(&line, on_event);
    }
    let status = child.wait().map_err(|e| Error::io("agent", e))?;
    intake.finish(
        artifacts,
        format!("the agent ended ({status})"),
        "before finishing",
    )
}

/// The agent's events in host mode (on this kernel, or inside vng): each line of its output
/// that is an event is saved to `events.jsonl` and passed on; any other line is console.
pub(crate) struct Intake {
    events: std::fs::File,
    pub log: RunLog,
    started: Instant,
    /// When the running case started, if one is running.
    since: Option<Instant>,
}

impl Intake {
    pub fn new(artifacts: &Path) -> Result<Intake> {
        Ok(Intake {
            events: std::fs::File::create(artifacts.join("events.jsonl"))
                .map_err(|e| Error::io("artifacts", e))?,
            log: RunLog::default(),
            started: Instant::now(),
            since: None,
        })
    }

    /// One line of output: an event (returns true), or not.
    pub fn take(&mut self, line: &str, on_event: &mut dyn FnMut(&Event)) -> bool {
        let Ok(e) = serde_json::from_str::<Event>(line) else {
            return false;
        };
        let _ = writeln!(self.events, "{line}");
        on_event(&e);
        match e {
            Event::Start { .. } => self.since = Some(Instant::now()),
            Event::Result(_) => self.since = None,
            _ => {}
        }
        self.log.events.push(e);
        true
    }

    pub fn said_hello(&self) -> bool {
        self.log
            .events
            .iter()
            .any(|e| matches!(e, Event::Hello { .. }))
    }

    /// The ending, saved: finished if the agent said so, else "`who` after <time> `why`".
    pub fn finish(mut self, artifacts: &Path, who: String, why: &str) -> Result<RunLog> {
        let how = if self.log.events.contains(&Event::Done) {
            How::Finished
        } else {
            How::WentAway {
                detail: Some(format!("{who} after {:?} {why}", self.started.elapsed())),
            }
        };
        let ending = Ending {
            how,
            running_case_ms: self.since.map(|s| s.elapsed().as_millis() as u64),
        };
        ending.save(artifacts)?;
        self.log.ending = Some(ending);
        Ok(self.log)
    }
}
