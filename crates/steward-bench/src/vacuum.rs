//! `VACUUM ANALYZE` after seeding a PostgreSQL database, as `pgbench -i` does after loading.
//!
//! PostgreSQL plans from table statistics that autovacuum gathers a while after a bulk load,
//! or never where autovacuum is off. Seconds after seeding 100,000 visitors, the planner still
//! takes the table for nearly empty and picks scans and sorts that cost the whole tenant per
//! page. A deployment runs on statistics, so the benchmark measures on statistics too;
//! `--no-vacuum` skips this to see the other case.

use std::time::{Duration, Instant};

use anyhow::Context;
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

/// Vacuums and analyzes every table of the database at `url`; returns how long it took.
pub fn vacuum_analyze(url: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut conn = PgConnection::establish(url).context("connecting to vacuum the database")?;
    conn.batch_execute("VACUUM ANALYZE")
        .context("VACUUM ANALYZE")?;
    Ok(started.elapsed())
}
