//! `imgvault check [--repair]`: prints what `Store::check` found, one problem a line, and what
//! `--repair` changed.

use super::{OpsError, Outcome, human_bytes, open_existing};
use crate::cli::CheckArgs;
use crate::store::check::CheckReport;

pub fn run(args: CheckArgs) -> Result<Outcome, OpsError> {
    let path = &args.data.data;
    let store = open_existing(path)?;
    let store_error = OpsError::store(path, "");
    let report = if args.repair {
        let repaired = store.repair().map_err(store_error)?;
        for fixed in &repaired.fixed {
            println!("fixed: {fixed}");
        }
        if repaired.fixed.is_empty() {
            println!("nothing to repair");
        }
        repaired.after
    } else {
        store.check().map_err(store_error)?
    };
    println!("{}", path.display());
    print_summary(&report);
    let file_size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let space = store.space().map_err(OpsError::store(path, ""))?;
    println!(
        "  file {}: {} of keys and values, {} of page headers and branches, {} unused in pages \
         ({} of it among image bytes), {} of free pages",
        human_bytes(file_size),
        human_bytes(space.stored),
        human_bytes(space.metadata),
        human_bytes(space.fragmented),
        human_bytes(space.fragmented_in_chunks),
        human_bytes(file_size.saturating_sub(space.allocated)),
    );
    if report.is_clean() {
        println!("no problems found");
        return Ok(Outcome::Done);
    }
    println!("{} problems:", report.problems.len());
    for problem in &report.problems {
        println!("  {problem}");
    }
    let repairable = report.repairable();
    if repairable > 0 && !args.repair {
        println!("`imgvault check --repair` fixes {repairable} of them");
    }
    Ok(Outcome::Problems)
}

fn print_summary(r: &CheckReport) {
    println!("  schema version {}", r.schema_version);
    println!("  {} users, {} sessions", r.users, r.sessions);
    println!("  {} images, {} tasks", r.images, r.tasks);
    println!(
        "  {} blobs ({}), {} thumbnails, {} perceptual hashes",
        r.blobs,
        human_bytes(r.blob_bytes),
        r.thumbnails,
        r.phashes
    );
    if r.sha256_backlog > 0 {
        println!(
            "  {} blobs stored before schema 12 wait for their SHA-256 (the server computes them)",
            r.sha256_backlog
        );
    }
    if r.unhashed > 0 {
        println!(
            "  {} thumbnailed images not hashed yet (the server hashes them in the background)",
            r.unhashed
        );
    }
}
