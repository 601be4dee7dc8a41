//! Storage for Steward: one diesel connection type over SQLite and PostgreSQL, an r2d2 pool
//! that picks the backend from the URL, embedded migrations per backend, and the single
//! group-committed write path every change goes through.

pub mod autovacuum;
pub mod batch;
mod checkpointer;
mod chunked;
pub mod committer;
pub mod connection;
mod direct;
pub mod jobs;
pub mod keys;
pub mod migrations;
pub mod pagination;
pub mod platform_keys;
pub mod pool;
pub mod reencrypt;
pub mod schema;
pub mod store;
pub mod tenants;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod timestamp;
pub mod url;
#[allow(unsafe_code)]
pub mod wal_buffer;

pub use committer::Committer;
pub use connection::{Backend, DbConnection};
pub use pool::{Pool, PoolOptions};
pub use store::Store;
pub use timestamp::DbTimestamp;
pub use url::DatabaseUrl;
