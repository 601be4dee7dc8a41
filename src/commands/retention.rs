//! `steward retention run`: the retention purge of every tenant, once, in the foreground.

use std::sync::Arc;

use indicatif::ProgressBar;
use steward_core::{Clock, SystemClock};
use steward_store::jobs;
use steward_store::pagination::PageRequest;

use super::{config_from, CliError};
use crate::cli::{RetentionCommand, StorageArgs};

pub fn run(cmd: RetentionCommand) -> Result<(), CliError> {
    match cmd {
        RetentionCommand::Run(args) => run_once(args),
    }
}

fn run_once(args: StorageArgs) -> Result<(), CliError> {
    let config = config_from(&args)?;
    let state = steward_api::AppState::build_without_worker(&config, Arc::new(SystemClock))?;
    let store = state.store.clone();
    let mut tenants = Vec::new();
    let mut after = None;
    loop {
        let page = PageRequest {
            limit: 500,
            after: after.clone(),
        };
        let rows = store.read_blocking(move |c| steward_store::tenants::list(c, &page))?;
        tenants.extend(
            rows.items
                .into_iter()
                .filter(|t| t.retention_days.is_some() && t.keys_destroyed_at.is_none()),
        );
        match rows.next_cursor {
            Some(c) => after = Some(c),
            None => break,
        }
    }
    let mut erased = 0;
    for t in tenants {
        let bar = ProgressBar::new_spinner();
        bar.set_message(format!("{}: purging", t.id));
        let (tid, now) = (t.id.clone(), SystemClock.now().naive_utc());
        let job = store.write_blocking(move |c| {
            jobs::enqueue(c, steward_visitors::retention::KIND, Some(&tid), now)
        })?;
        let done = state.jobs.run_to_end(&job.id, &mut |j| {
            bar.set_message(format!("{}: {} erased", t.id, j.done));
            bar.tick();
        })?;
        bar.finish_and_clear();
        println!(
            "{}: {} visitor(s) erased (retention {} days), job {}",
            t.id,
            done.done,
            t.retention_days.unwrap_or(0),
            done.status
        );
        erased += done.done;
    }
    println!("retention run complete: {erased} visitor(s) erased");
    Ok(())
}
