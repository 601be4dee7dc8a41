//! Embedded migrations, one folder per backend; the two describe the same schema (a test
//! compares them).

use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

use crate::connection::DbConnection;

const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

#[derive(Debug, thiserror::Error)]
#[error("migration failed: {0}")]
pub struct MigrationError(String);

/// Runs every pending migration; returns how many ran.
pub fn run_pending(conn: &mut DbConnection) -> Result<usize, MigrationError> {
    let ran = match conn {
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE).map(|v| v.len()),
        DbConnection::Postgres(c) => c.run_pending_migrations(POSTGRES).map(|v| v.len()),
    };
    ran.map_err(|e| MigrationError(e.to_string()))
}

/// Runs the oldest pending migration only; returns its version (`20261121000001`), `None` when none was pending.
/// Tests use it to stop at an older schema, write data, and watch a migration carry it over.
pub fn run_next(conn: &mut DbConnection) -> Result<Option<String>, MigrationError> {
    let pending = match conn {
        DbConnection::Sqlite(c) => c.pending_migrations(SQLITE).map(|v| v.len()),
        DbConnection::Postgres(c) => c.pending_migrations(POSTGRES).map(|v| v.len()),
    }
    .map_err(|e| MigrationError(e.to_string()))?;
    if pending == 0 {
        return Ok(None);
    }
    let ran = match conn {
        DbConnection::Sqlite(c) => c.run_next_migration(SQLITE),
        DbConnection::Postgres(c) => c.run_next_migration(POSTGRES),
    };
    ran.map(|v| Some(v.to_string()))
        .map_err(|e| MigrationError(e.to_string()))
}

/// Reverts every migration (tests check down → up round trips).
pub fn revert_all(conn: &mut DbConnection) -> Result<(), MigrationError> {
    let r = match conn {
        DbConnection::Sqlite(c) => c.revert_all_migrations(SQLITE).map(|_| ()),
        DbConnection::Postgres(c) => c.revert_all_migrations(POSTGRES).map(|_| ()),
    };
    r.map_err(|e| MigrationError(e.to_string()))
}
