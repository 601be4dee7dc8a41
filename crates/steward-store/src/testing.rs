//! Test support, for the workspace's test suites only (feature `test-support`, enabled from
//! dev-dependencies): a PostgreSQL database that exists for one test.

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};

/// The server the PostgreSQL half of every suite runs against (a URL whose database the
/// tests may connect to and create databases from); unset, those tests say "skipped".
pub const PG_ENV: &str = "STEWARD_TEST_POSTGRES_URL";

/// A database created for one test on the [`PG_ENV`] server and dropped when this is
/// (`steward_test_…`; `.ci/run` also drops any a crashed run left behind).
pub struct TestDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    /// `None` when [`PG_ENV`] is not set. Panics if the server cannot be reached: a
    /// configured but broken test database is a failure, not a skip.
    #[allow(clippy::expect_used)]
    pub fn create() -> Option<Self> {
        let admin_url = std::env::var(PG_ENV).ok().filter(|s| !s.is_empty())?;
        // An id's ULID body: unique, lower-case, a valid identifier after the prefix.
        let ulid = steward_core::Id::Job.generate();
        let name = format!("steward_test_{}", ulid.trim_start_matches("job_"));
        let mut admin = PgConnection::establish(&admin_url).expect("connect to test PostgreSQL");
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create test database");
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b.to_string())
            .expect("PostgreSQL URL has a database path");
        let url = format!("{base}/{name}");
        Some(Self {
            admin_url,
            name,
            url,
        })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&self.admin_url) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// The SQL of every statement a connection started, in order.
pub type StatementLog = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// A migrated in-memory SQLite connection that logs the SQL of every statement it starts: for
/// tests that count statements (a batch insert must be one statement per chunk, not one per
/// row). Foreign keys are off, so a test can fill one table without the rows it references.
#[allow(clippy::expect_used)]
pub fn sqlite_with_statement_log() -> (crate::DbConnection, StatementLog) {
    use diesel::connection::InstrumentationEvent;
    let mut conn = crate::DbConnection::Sqlite(
        diesel::SqliteConnection::establish(":memory:").expect("in-memory SQLite"),
    );
    crate::migrations::run_pending(&mut conn).expect("migrations");
    conn.execute_batch("PRAGMA foreign_keys = OFF")
        .expect("foreign keys off");
    let log = StatementLog::default();
    let sink = log.clone();
    conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            if let Ok(mut l) = sink.lock() {
                l.push(query.to_string());
            }
        }
    });
    (conn, log)
}

/// How many logged statements insert into `table`.
pub fn inserts_into(log: &StatementLog, table: &str) -> usize {
    let prefix = format!("INSERT INTO `{table}`");
    log.lock()
        .map(|l| l.iter().filter(|s| s.starts_with(&prefix)).count())
        .unwrap_or(0)
}
