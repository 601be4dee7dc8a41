//! Everything a handler may use, built once at start-up.

use std::sync::Arc;

use steward_core::{Clock, SystemClock};
use steward_store::pool::PoolOptions;
use steward_store::Store;

use crate::config::Config;
use crate::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("invalid database URL: {0}")]
    Url(#[from] steward_store::url::UrlError),
    #[error("could not create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] steward_store::store::OpenError),
}

#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
}

impl AppState {
    /// Opens (and migrates) the database named by `config`.
    pub fn build(config: &Config, clock: Arc<dyn Clock>) -> Result<Self, StartupError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StartupError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let url = config.database_url()?;
        let options = PoolOptions {
            max_size: config.pool_size,
            sqlite_sync: config.sqlite_sync,
            ..PoolOptions::default()
        };
        let store = Store::open(&url, options)?;
        Ok(Self {
            store,
            clock,
            metrics: Arc::new(Metrics::new()),
        })
    }

    pub fn build_default_clock(config: &Config) -> Result<Self, StartupError> {
        Self::build(config, Arc::new(SystemClock))
    }
}
