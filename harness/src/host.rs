//! Host mode: the agent runs on this machine's kernel, no VM. Each case still gets its own
//! process and private mount namespace (the agent does that); we need root for the mounts.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use guest::cases::Case;
use guest::report::Event;

use crate::error::{Error, Result};
use crate::results::Collector;

pub fn run(agent: &Path, cases: &[&'static Case], ext4_image: &Path, artifacts: &Path, on_event: &mut dyn FnMut(&Event)) -> Result<(Collector, Option<String>)> {
    if !rustix::process::geteuid().is_root() {
        return Err(Error::Io("host mode mounts filesystems: run it as root".into()));
    }
    let names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    let mut collector = Collector::new(names.iter().map(|s| s.to_string()).collect());
    let release = rustix::system::uname().release().to_string_lossy().into_owned();
    collector.take(Event::Hello { kernel_release: release, cases: vec![], modules: vec![] });
    let mut child = Command::new(agent)
        .args(["run", &names.join(",")])
        .env(guest::disk::IMAGE_ENV, ext4_image)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Error::io(agent.display(), e))?;
    let mut events = std::fs::File::create(artifacts.join("events.jsonl")).map_err(|e| Error::io("artifacts", e))?;
    let started = Instant::now();
    for line in BufReader::new(child.stdout.take().expect("piped")).lines().map_while(|l| l.ok()) {
        use std::io::Write;
        let _ = writeln!(events, "{line}");
        if let Ok(e) = serde_json::from_str::<Event>(&line) {
            on_event(&e);
            collector.take(e);
        }
    }
    let status = child.wait().map_err(|e| Error::io("agent", e))?;
    let died = (!collector.done).then(|| format!("the agent ended ({status}) after {:?} before finishing", started.elapsed()));
    Ok((collector, died))
}
