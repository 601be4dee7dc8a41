//! A fresh database per test: SQLite in a temp dir, or a PostgreSQL database of its own made
//! from `STEWARD_TEST_POSTGRES_URL` and dropped afterwards. `both!` runs a body on each.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use chrono::{Duration, NaiveDateTime};
use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use steward_core::{Error, Id, Principal, PrincipalKind, Role};
use steward_staff::NewAccessRequest;
use steward_store::pool::PoolOptions;
use steward_store::tenants::{self, TenantRow};
use steward_store::{DatabaseUrl, DbConnection, Store};

pub const PG_ENV: &str = "STEWARD_TEST_POSTGRES_URL";

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

/// A PostgreSQL database that exists for one test.
pub struct PgDatabase {
    admin_url: String,
    name: String,
    pub url: String,
}

impl PgDatabase {
    pub fn create() -> Option<Self> {
        let admin_url = std::env::var(PG_ENV).ok().filter(|s| !s.is_empty())?;
        // An id's ULID body: unique, lower-case, a valid identifier after the prefix.
        let ulid = Id::Job.generate();
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

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&self.admin_url) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

pub struct TestDb {
    pub backend: Backend,
    pub store: Store,
    // Dropped after the store: the database outlives its connections.
    pg: Option<PgDatabase>,
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
                let pg = PgDatabase::create()?;
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
            pg,
            _dir: dir,
        })
    }

    pub fn read<T>(&self, f: impl FnOnce(&mut DbConnection) -> steward_core::Result<T>) -> T {
        self.store.read_blocking(f).expect("read")
    }

    /// One unit of work through the committer, as the server runs it.
    pub fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DbConnection) -> steward_core::Result<T> + Send + 'static,
    ) -> steward_core::Result<T> {
        self.store.write_blocking(f)
    }

    /// A tenant row (keys are not needed here).
    pub fn tenant(&self) -> String {
        let now = now();
        let row = TenantRow {
            id: Id::Tenant.generate(),
            name: "Shop".into(),
            status: "active".into(),
            retention_days: None,
            keys_destroyed_at: None,
            created_at: now,
            updated_at: now,
        };
        let id = row.id.clone();
        self.write(move |c| tenants::insert(c, &row))
            .expect("tenant");
        id
    }
}

pub fn now() -> NaiveDateTime {
    steward_core::clock::truncate_micros(chrono::Utc::now()).naive_utc()
}

pub fn later(t: NaiveDateTime, minutes: i64) -> NaiveDateTime {
    t + Duration::minutes(minutes)
}

pub fn staff(role: Role) -> Principal {
    Principal {
        kind: PrincipalKind::User,
        id: Id::User.generate(),
        role: Some(role),
        tenant_id: None,
        scopes: vec![],
    }
}

pub fn tenant_user(role: Role, tenant_id: &str) -> Principal {
    Principal {
        kind: PrincipalKind::User,
        id: Id::User.generate(),
        role: Some(role),
        tenant_id: Some(tenant_id.to_string()),
        scopes: vec![],
    }
}

pub fn body(justification: &str, scope: serde_json::Value) -> NewAccessRequest {
    serde_json::from_value(serde_json::json!({
        "justification": justification,
        "ticket": "T-1",
        "reason": "The shop asked us to fix a broken address import.",
        "scope": scope,
    }))
    .expect("request body")
}

pub fn visitors(ids: &[&str]) -> serde_json::Value {
    serde_json::json!({ "visitor_ids": ids })
}

/// The stable code of a 4xx error, with its kind.
pub fn code(e: &Error) -> (&'static str, &'static str) {
    match e {
        Error::Invalid { code, .. } => ("invalid", code),
        Error::Denied { code, .. } => ("denied", code),
        Error::Conflict { code, .. } => ("conflict", code),
        Error::NotFound => ("not_found", "not_found"),
        other => panic!("unexpected error: {other:?}"),
    }
}
