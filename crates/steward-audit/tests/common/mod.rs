//! A fresh database per test: SQLite in a temp dir, or a PostgreSQL database of its own made
//! from `STEWARD_TEST_POSTGRES_URL` and dropped afterwards. `both!` runs a body on each.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, SqliteConnection};
use steward_audit::{Actor, NewEvent, Target};
use steward_core::Id;
use steward_store::pool::PoolOptions;
use steward_store::{DatabaseUrl, DbConnection, Store};

// The `both!`/`e2e!` macros name PG_ENV; not every test binary invokes them.
#[allow(unused_imports)]
pub use steward_store::testing::{TestDatabase, PG_ENV};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// `both!(name, |db| { … })` makes `name::sqlite` and `name::postgres`; the latter prints
/// "skipped" and passes when no PostgreSQL is configured.
#[macro_export]
macro_rules! both {
    ($name:ident, |$db:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            fn sqlite() {
                let $db = $crate::common::TestDb::open($crate::common::Backend::Sqlite)
                    .expect("sqlite test database");
                $body
            }

            #[test]
            fn postgres() {
                let Some($db) = $crate::common::TestDb::open($crate::common::Backend::Postgres)
                else {
                    eprintln!("skipped: {} is not set", $crate::common::PG_ENV);
                    return;
                };
                $body
            }
        }
    };
}

pub struct TestDb {
    pub backend: Backend,
    pub store: Store,
    pub url: String,
    // Dropped after the store: the database outlives its connections.
    pg: Option<TestDatabase>,
    _dir: tempfile::TempDir,
}

impl TestDb {
    pub fn open(backend: Backend) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (url, pg) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}", dir.path().join("steward.db").display()),
                None,
            ),
            Backend::Postgres => {
                let pg = TestDatabase::create()?;
                (pg.url.clone(), Some(pg))
            }
        };
        let store = Store::open(
            &DatabaseUrl::parse(&url).expect("database url"),
            PoolOptions::default(),
        )
        .expect("open store");
        Some(Self {
            backend,
            store,
            url,
            pg,
            _dir: dir,
        })
    }

    /// A connection of its own, outside the pool (raw tampering, simulated second process).
    pub fn direct(&self) -> DbConnection {
        match self.backend {
            Backend::Sqlite => {
                let path = self.url.trim_start_matches("sqlite://");
                let mut c = SqliteConnection::establish(path).expect("open sqlite");
                c.batch_execute("PRAGMA busy_timeout = 10000;")
                    .expect("busy timeout");
                DbConnection::Sqlite(c)
            }
            Backend::Postgres => {
                DbConnection::Postgres(PgConnection::establish(&self.url).expect("connect"))
            }
        }
    }

    /// Runs raw SQL as an attacker with write access to the database would.
    pub fn tamper(&self, sql: &str) {
        self.direct().execute_batch(sql).expect("tamper sql");
    }

    pub fn read<T>(&self, f: impl FnOnce(&mut DbConnection) -> steward_core::Result<T>) -> T {
        self.store.read_blocking(f).expect("read")
    }
}

pub fn now() -> NaiveDateTime {
    steward_core::clock::truncate_micros(chrono::Utc::now()).naive_utc()
}

pub fn tenant() -> String {
    Id::Tenant.generate()
}

/// A realistic event, varied by `i` so neighbouring events differ in content.
pub fn event(i: usize) -> NewEvent {
    let (action, fields): (&str, &[&str]) = match i % 3 {
        0 => ("visitor.read", &["email", "name", "phone"]),
        1 => ("visitor.update", &["address.city"]),
        _ => ("transfer.pull", &["email"]),
    };
    NewEvent::new(
        action,
        Actor::new("user", format!("usr_{:026}", i % 7), "tenant_admin"),
        Target::record("visitor", format!("vis_{:026}", i % 11)),
    )
    .fields(fields)
    .purpose("support")
    .request_id(format!("req_{i:026}"))
}
