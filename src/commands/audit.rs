//! `steward audit verify`: recompute every hash chain (or one tenant's), with a progress bar.

use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use steward_audit::Checkpoint;
use steward_core::SystemClock;

use super::{config_from, CliError};
use crate::cli::{AuditCommand, AuditVerifyArgs};

pub fn run(cmd: AuditCommand) -> Result<(), CliError> {
    match cmd {
        AuditCommand::Verify(args) => verify(args),
    }
}

fn verify(args: AuditVerifyArgs) -> Result<(), CliError> {
    let config = config_from(&args.storage)?;
    // The app state loads the master key, which unseals the checkpoint-signing key.
    let state = steward_api::AppState::build_without_worker(&config, Arc::new(SystemClock))?;
    let store = state.store.clone();
    let checkpoint: Option<Checkpoint> = match &args.checkpoint {
        Some(path) => {
            let text = std::fs::read_to_string(path)?;
            Some(serde_json::from_str(&text).map_err(|e| {
                CliError::Usage(format!("{} is not a checkpoint: {e}", path.display()))
            })?)
        }
        None => None,
    };
    let chains = match &args.tenant {
        Some(t) => vec![t.clone()],
        None => store.read_blocking(steward_audit::chains)?,
    };
    let public = state.checkpoints.public_key().to_vec();
    let mut broken = 0;
    for chain in chains {
        let c2 = chain.clone();
        let total = store.read_blocking(move |c| steward_audit::chain_len(c, &c2))?;
        let bar = ProgressBar::new(u64::try_from(total).unwrap_or(0));
        if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec})")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(chain.clone());
        let started = std::time::Instant::now();
        let (c2, cp, pk) = (chain.clone(), checkpoint.clone(), public.clone());
        let loaders = steward_audit::recommended_loaders();
        let report = store.read_parallel_blocking(loaders, move |conns| {
            let mut progress = |n: i64| bar.set_position(u64::try_from(n).unwrap_or(0));
            let r = match &cp {
                Some(cp) if cp.chain_id == c2 => {
                    steward_audit::verify_signed_on(conns, &c2, cp, &pk, &mut progress)
                }
                _ => steward_audit::verify_on(conns, &c2, None, &mut progress),
            };
            bar.finish_and_clear();
            r
        })?;
        let secs = started.elapsed().as_secs_f64().max(1e-9);
        if report.ok {
            println!(
                "{chain}: ok, {} events ({:.0} events/s)",
                report.checked,
                report.checked as f64 / secs
            );
        } else {
            broken += 1;
            println!(
                "{chain}: BROKEN at seq {} ({}) after {} good events",
                report
                    .first_bad_seq
                    .map_or("?".to_string(), |s| s.to_string()),
                report.reason.unwrap_or("unknown"),
                report.checked
            );
        }
    }
    if broken > 0 {
        return Err(CliError::Failed(format!(
            "{broken} chain(s) failed verification"
        )));
    }
    Ok(())
}
