//! What a running Steward needs to know, resolved from flags and environment by the CLI.

use std::path::PathBuf;

use steward_store::pool::SqliteSync;
use steward_store::DatabaseUrl;
use zeroize::Zeroizing;

#[derive(Debug, Clone)]
pub struct Config {
    /// Holds the SQLite file (embedded default) and `master.key`.
    pub data_dir: PathBuf,
    /// `None`: SQLite at `data_dir/steward.db`.
    pub database_url: Option<String>,
    pub sqlite_sync: SqliteSync,
    pub pool_size: u32,
    /// Base64 KEK from `STEWARD_MASTER_KEY`; wins over any key file.
    pub master_key: Option<Zeroizing<String>>,
    /// The KEK before a rotation, while tenant keys are re-wrapped (`STEWARD_PREVIOUS_MASTER_KEY`).
    pub previous_master_key: Option<Zeroizing<String>>,
    /// A key file other than `data_dir/master.key`.
    pub master_key_file: Option<PathBuf>,
    /// Cheap password hashing, for test suites only.
    pub fast_password_hashing: bool,
    /// Bulk requests (imports, pull pages, exports, PII listings) running at once; the rest
    /// wait their turn (see `bulk`).
    pub max_bulk_requests: usize,
}

impl Config {
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            database_url: None,
            sqlite_sync: SqliteSync::Full,
            pool_size: 16,
            master_key: None,
            previous_master_key: None,
            master_key_file: None,
            fast_password_hashing: false,
            max_bulk_requests: crate::bulk::default_limit(),
        }
    }

    pub fn database_url(&self) -> Result<DatabaseUrl, steward_store::url::UrlError> {
        match &self.database_url {
            Some(url) => DatabaseUrl::parse(url),
            None => Ok(DatabaseUrl::Sqlite(self.data_dir.join("steward.db"))),
        }
    }
}
