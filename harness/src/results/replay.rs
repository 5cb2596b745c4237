//! `cargo xtask replay DIR`: the post-processing again, on a run's saved artifacts alone
//! (kunit_tool's `parse`): `plan.json` says which boots there were and what each was to run;
//! each boot's `events.jsonl`, `console.log`, `task-dump.txt` and `ending.json` are read
//! back and go through the same `results::assemble` a live run used. Nothing is written.

use std::path::Path;

use crate::error::{Error, Result};
use crate::results::assemble::RunLog;
use crate::results::record::{Plan, Run, Timings};

/// The run a directory's saved files make, saving nothing (`cargo xtask replay`).
pub fn replay(dir: &Path) -> Result<Run> {
    let plan_path = dir.join(Plan::FILE);
    let text = std::fs::read_to_string(&plan_path).map_err(|e| Error::NotARun {
        dir: dir.into(),
        file: Plan::FILE.into(),
        source: Some(Box::new(e)),
    })?;
    let plan: Plan = serde_json::from_str(&text).map_err(|e| Error::NotARun {
        dir: dir.into(),
        file: Plan::FILE.into(),
        source: Some(Box::new(e)),
    })?;
    let mut logs = Vec::new();
    for boot in &plan.boots {
        logs.push((RunLog::load(&dir.join(&boot.dir))?, boot.cases.clone()));
    }
    Ok(crate::results::record::assemble(
        plan,
        &logs,
        dir.into(),
        Timings::default(),
    ))
}
