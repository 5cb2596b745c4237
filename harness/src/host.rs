//! Host mode: the agent runs on this machine's kernel, no VM. Each case still gets its own
//! process and private mount namespace (the agent does that); we need root for the mounts.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use proto::{CaseInfo, Event};

use crate::ending::{Ending, How};
use crate::error::{Error, Result};
use crate::results::RunLog;

pub fn run_cases(
    agent: &Path,
    cases: &[&CaseInfo],
    ext4_image: &Path,
    validate_spec: Option<&Path>,
    artifacts: &Path,
    on_event: &mut dyn FnMut(&Event),
) -> Result<RunLog> {
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
    let mut events = std::fs::File::create(artifacts.join("events.jsonl"))
        .map_err(|e| Error::io("artifacts", e))?;
    let started = Instant::now();
    let mut log = RunLog::default();
    let mut since = None;
    for line in BufReader::new(child.stdout.take().expect("piped"))
        .lines()
        .map_while(|l| l.ok())
    {
        let _ = writeln!(events, "{line}");
        if let Ok(e) = serde_json::from_str::<Event>(&line) {
            on_event(&e);
            match e {
                Event::Start { .. } => since = Some(Instant::now()),
                Event::Result(_) => since = None,
                _ => {}
            }
            log.events.push(e);
        }
    }
    let status = child.wait().map_err(|e| Error::io("agent", e))?;
    let done = log.events.contains(&Event::Done);
    let how = if done {
        How::Finished
    } else {
        How::WentAway {
            detail: Some(format!(
                "the agent ended ({status}) after {:?} before finishing",
                started.elapsed()
            )),
        }
    };
    let ending = Ending {
        how,
        running_case_ms: since.map(|s| s.elapsed().as_millis() as u64),
    };
    ending.save(artifacts)?;
    log.ending = Some(ending);
    Ok(log)
}
