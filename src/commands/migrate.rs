//! `steward migrate`: run pending migrations and say how many ran.

use steward_store::Store;

use super::{config_from, CliError};
use crate::cli::StorageArgs;

pub fn run(args: StorageArgs) -> Result<(), CliError> {
    let config = config_from(&args)?;
    std::fs::create_dir_all(&config.data_dir)?;
    let url = config
        .database_url()
        .map_err(|e| CliError::Usage(e.to_string()))?;
    let store = Store::open_unmigrated(
        &url,
        steward_store::PoolOptions {
            sqlite_sync: config.sqlite_sync,
            ..Default::default()
        },
    )?;
    let ran = store.migrate()?;
    println!("{ran} migration(s) applied to {url}");
    Ok(())
}
