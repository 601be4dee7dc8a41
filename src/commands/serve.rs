//! `steward serve`: open (and migrate) the database, then serve the API until SIGTERM/SIGINT.

use std::net::TcpListener;

use steward_api::AppState;

use super::{config_from, CliError};
use crate::cli::ServeArgs;

pub fn run(args: ServeArgs) -> Result<(), CliError> {
    let mut config = config_from(&args.storage)?;
    if let Some(max) = args.max_bulk_requests {
        if max == 0 {
            return Err(CliError::Usage(
                "--max-bulk-requests must be at least 1".into(),
            ));
        }
        config.max_bulk_requests = max;
    }
    let state = AppState::build_default_clock(&config)?;
    let listener = TcpListener::bind(&args.bind)
        .map_err(|e| CliError::Usage(format!("cannot listen on {}: {e}", args.bind)))?;
    let addr = listener.local_addr()?;
    let now = steward_core::Clock::now(state.clock.as_ref()).naive_utc();
    if let Some(path) = steward_identity::bootstrap::ensure_bootstrap_admin(
        &state.store,
        &state.login.hasher,
        &config.data_dir,
        now,
    )? {
        println!(
            "Created the bootstrap platform admin; its credentials are in {} (readable by you \
             only). Log in, create your own staff, then disable it.",
            path.display()
        );
    }
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    println!(
        "Steward listening on http://{addr} (data dir {}, database {})",
        config.data_dir.display(),
        state.store.url()
    );
    spawn_retention_timer(&state)?;
    actix_web::rt::System::new().block_on(async move {
        let server = steward_api::server::start(listener, state, workers)?;
        server.await
    })?;
    tracing::info!("stopped");
    Ok(())
}

/// How often tenants' retention purges are queued.
const RETENTION_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Queues every tenant's retention purge once an hour (and once at start); the job worker runs
/// them.
fn spawn_retention_timer(state: &AppState) -> std::io::Result<()> {
    let state = state.clone();
    std::thread::Builder::new()
        .name("steward-retention".into())
        .spawn(move || loop {
            let now = steward_core::Clock::now(state.clock.as_ref()).naive_utc();
            match steward_visitors::retention::schedule_due(&state.store, now) {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(queued = n, "retention purges queued");
                    state.jobs.notify();
                }
                Err(e) => {
                    tracing::error!(error = %e.log_cause(), "could not queue retention purges")
                }
            }
            std::thread::sleep(RETENTION_EVERY);
        })?;
    Ok(())
}
