//! `venom ls`.

use venom_core::inspect;

use crate::cli::LsArgs;
use crate::failure::{self, Failure};
use crate::render::{self, SegmentRecord};

/// Lists segments. With names, lists only those and fails (after listing
/// the others) if one is missing.
pub fn run(args: &LsArgs, json: bool) -> Result<(), Failure> {
    let mut missing = false;
    let infos = if args.names.is_empty() {
        inspect::list().map_err(|e| Failure::new(format!("cannot list {}: {e}", inspect::SHM_DIR)))?
    } else {
        let mut v = Vec::new();
        for name in &args.names {
            match inspect::inspect(name) {
                Ok(i) => v.push(i),
                Err(e) => {
                    eprintln!("venom: {}", failure::describe(name, &e));
                    missing = true;
                }
            }
        }
        v
    };
    let infos: Vec<_> = infos
        .into_iter()
        .filter(|i| {
            let r = SegmentRecord::of(i);
            args.kind.as_ref().is_none_or(|k| r.kind.as_ref() == Some(k))
                && args.state.as_ref().is_none_or(|s| r.state == s.as_str())
        })
        .collect();
    if json {
        let records: Vec<SegmentRecord> = infos.iter().map(SegmentRecord::of).collect();
        failure::print_json(&records)?;
    } else if !infos.is_empty() {
        let mut rows =
            vec![["NAME", "KIND", "SIZE", "PID", "STATE", "GEN", "MODE", "AGE", "NOTE"].map(String::from).to_vec()];
        for i in &infos {
            let r = SegmentRecord::of(i);
            rows.push(vec![
                r.name,
                r.kind.unwrap_or_else(|| "-".into()),
                render::human_size(r.size),
                i.owner_pid().map_or_else(|| "-".into(), |p| p.to_string()),
                r.state.into(),
                r.generation.map_or_else(|| "-".into(), |g| g.to_string()),
                r.mode,
                render::human_age(i.age()),
                r.reason.unwrap_or_default(),
            ]);
        }
        render::print_table(&rows);
    }
    if missing { Err(Failure::reported()) } else { Ok(()) }
}
