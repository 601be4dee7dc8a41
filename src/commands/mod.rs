//! One module per subcommand.

mod admin;
mod audit;
mod keys;
mod migrate;
mod retention;
mod serve;

use steward_api::Config;
use steward_store::pool::SqliteSync;
use zeroize::Zeroizing;

use crate::cli::{Cli, Command, StorageArgs};

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Startup(#[from] steward_api::state::StartupError),
    #[error(transparent)]
    Open(#[from] steward_store::store::OpenError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// With its cause: an operator at a terminal needs more than "internal error".
    #[error("{}", .0.log_cause())]
    Domain(#[from] steward_core::Error),
    /// The command ran and found a problem (a broken chain); already reported.
    #[error("{0}")]
    Failed(String),
}

pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Migrate(args) => migrate::run(args),
        Command::Keys(cmd) => keys::run(cmd),
        Command::Admin(cmd) => admin::run(cmd),
        Command::Audit(cmd) => audit::run(cmd),
        Command::Retention(cmd) => retention::run(cmd),
    }
}

pub fn config_from(args: &StorageArgs) -> Result<Config, CliError> {
    let sqlite_sync = SqliteSync::parse(&args.sqlite_sync).ok_or_else(|| {
        CliError::Usage(format!(
            "--sqlite-sync must be `full` or `normal`, not `{}`",
            args.sqlite_sync
        ))
    })?;
    Ok(Config {
        data_dir: args.data_dir.clone(),
        database_url: args.database_url.clone().filter(|u| !u.trim().is_empty()),
        sqlite_sync,
        pool_size: 16,
        // Secrets come from the environment, never from flags (which `ps` shows).
        master_key: secret_env("STEWARD_MASTER_KEY"),
        previous_master_key: secret_env("STEWARD_PREVIOUS_MASTER_KEY"),
        master_key_file: args.master_key_file.clone(),
        fast_password_hashing: false,
        max_bulk_requests: steward_api::bulk::default_limit(),
    })
}

fn secret_env(name: &str) -> Option<Zeroizing<String>> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(Zeroizing::new)
}
