//! `venom rm`.

use serde::Serialize;
use venom_core::inspect::{self, Removed};

use crate::cli::RmArgs;
use crate::failure::{self, Failure};
use crate::render;

#[derive(Serialize)]
struct RemovedRecord {
    name: String,
    /// `state` column before removal: dead, stray, corrupt, uninit, live.
    was: &'static str,
    forced: bool,
    reason: Option<String>,
}

#[derive(Serialize)]
struct FailedRecord {
    name: String,
    error: String,
}

#[derive(Serialize)]
struct Report {
    removed: Vec<RemovedRecord>,
    failed: Vec<FailedRecord>,
}

fn record(r: &Removed) -> RemovedRecord {
    RemovedRecord {
        name: r.info.name.clone(),
        was: render::state_word(&r.info),
        forced: r.forced,
        reason: r.info.status.reason().map(str::to_owned),
    }
}

/// Removes the named segments, or every stale one with `--stale`. Fails
/// (exit 1) if any named segment was missing or refused.
pub fn run(args: &RmArgs, json: bool) -> Result<(), Failure> {
    let mut report = Report { removed: Vec::new(), failed: Vec::new() };
    if args.stale {
        let removed = inspect::sweep_stale(&args.prefix).map_err(|e| Failure::new(format!("sweep failed: {e}")))?;
        report.removed.extend(removed.iter().map(record));
    } else {
        for name in &args.names {
            match inspect::remove(name, args.force) {
                Ok(r) => report.removed.push(record(&r)),
                Err(e) => report.failed.push(FailedRecord { name: name.clone(), error: failure::describe(name, &e) }),
            }
        }
    }
    if json {
        failure::print_json(&report)?;
    } else {
        for r in &report.removed {
            let why = if r.forced { "live, forced".to_owned() } else { r.was.to_owned() };
            println!("removed {} ({why})", r.name);
        }
    }
    for f in &report.failed {
        eprintln!("venom: {}", f.error);
    }
    if report.failed.is_empty() { Ok(()) } else { Err(Failure::reported()) }
}
