//! Shared by this crate's integration tests: a store over a SQLite file of its own, and reading
//! one number back.

#![allow(clippy::unwrap_used, dead_code)]

use std::path::PathBuf;

use diesel::prelude::*;
use steward_store::{DatabaseUrl, DbConnection, PoolOptions, Store};

/// A migrated store over `steward.db` in a fresh temporary directory (removed on drop).
pub struct FileStore {
    pub store: Store,
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn sqlite_file_store() -> FileStore {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.db");
    let url = DatabaseUrl::parse(&format!("sqlite://{}", path.display())).unwrap();
    let store = Store::open(&url, PoolOptions::default()).unwrap();
    FileStore {
        store,
        path,
        _dir: dir,
    }
}

#[derive(QueryableByName)]
struct Number {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// The value of a query selecting one integer column named `n`.
pub fn number(c: &mut DbConnection, sql: &str) -> QueryResult<i64> {
    Ok(diesel::sql_query(sql).get_result::<Number>(c)?.n)
}
