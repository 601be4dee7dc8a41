//! A fresh database per test: SQLite in a temp dir, or a PostgreSQL database of its own made
//! from `STEWARD_TEST_POSTGRES_URL` and dropped afterwards. `both!` runs a body on each.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use chrono::{Duration, NaiveDateTime};
use steward_core::{Error, Id, Principal, PrincipalKind, Role};
use steward_staff::NewAccessRequest;
use steward_store::pool::PoolOptions;
use steward_store::tenants::{self, TenantRow};
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
