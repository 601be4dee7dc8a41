//! A fresh database per test (SQLite in a temp dir, or a PostgreSQL database of its own made
//! from `STEWARD_TEST_POSTGRES_URL` and dropped afterwards), a tenant-keyed visitor service
//! with the transfer hooks, a manual clock, and helpers. `both!` runs a body on each backend.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{Duration, NaiveDateTime};
use serde_json::{json, Value};
pub use steward_core::Clock;
use steward_core::{Error, Id, ManualClock, Principal, PrincipalKind, Role};
use steward_keys::LocalKek;
use steward_store::keys::KeyService;
use steward_store::pool::PoolOptions;
use steward_store::{tenants, DatabaseUrl, DbConnection, Store};
use steward_transfers::{registry, AuthorizationRow, NewAuthorization, PullPage, TransferHooks};
use steward_visitors::service::Created;
use steward_visitors::{Access, VisitorInput, VisitorService};

// The `both!`/`e2e!` macros name PG_ENV; not every test binary invokes them.
#[allow(unused_imports)]
pub use steward_store::testing::{TestDatabase, PG_ENV};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// `both!(name, |env| { … })` makes `name::sqlite` and `name::postgres`; the latter prints
/// "skipped" and passes when no PostgreSQL is configured.
#[macro_export]
macro_rules! both {
    ($name:ident, |$env:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[test]
            fn sqlite() {
                let $env = $crate::common::Env::open($crate::common::Backend::Sqlite)
                    .expect("sqlite test database");
                $body
            }

            #[test]
            fn postgres() {
                let Some($env) = $crate::common::Env::open($crate::common::Backend::Postgres)
                else {
                    eprintln!("skipped: {} is not set", $crate::common::PG_ENV);
                    return;
                };
                $body
            }
        }
    };
}

pub struct Env {
    pub backend: Backend,
    pub rt: tokio::runtime::Runtime,
    pub store: Store,
    pub keys: KeyService,
    pub clock: Arc<ManualClock>,
    /// With `TransferHooks` attached.
    pub visitors: VisitorService,
    pub admin: Principal,
    // Dropped after the store: the database outlives its connections.
    pg: Option<TestDatabase>,
    _dir: tempfile::TempDir,
}

impl Env {
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
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let keys = KeyService::new(Arc::new(LocalKek::generate().expect("kek")), 64);
        let clock = Arc::new(ManualClock::starting_now());
        let visitors = VisitorService::new(store.clone(), keys.clone(), clock.clone())
            .with_hooks(Arc::new(TransferHooks));
        Some(Self {
            backend,
            rt,
            store,
            keys,
            clock,
            visitors,
            admin: staff(Role::PlatformAdmin),
            pg,
            _dir: dir,
        })
    }

    pub fn now(&self) -> NaiveDateTime {
        self.clock.now().naive_utc()
    }

    pub fn advance_days(&self, days: i64) {
        self.clock.advance(Duration::days(days));
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

    /// A tenant with its keys.
    pub fn tenant(&self) -> String {
        let (kek, now) = (self.keys.kek_arc(), self.now());
        self.write(move |c| tenants::create(c, kek.as_ref(), "Shop".into(), now))
            .expect("tenant")
            .id
    }

    /// A registered subprocessor (notifies every tenant that exists now).
    pub fn subprocessor(&self, name: &str) -> String {
        let new = registry::NewSubprocessor {
            name: name.into(),
            legal_name: format!("{name} GmbH"),
            country: "DE".into(),
            contact: "privacy@carrier.example".into(),
            transfer_mechanism: "adequacy".into(),
            dpa_reference: "DPA-1".into(),
        };
        let (admin, now) = (self.admin.clone(), self.now());
        self.write(move |c| {
            registry::create(c, &new, &admin, now, registry::DEFAULT_OBJECTION_DAYS)
        })
        .expect("subprocessor")
        .id
    }

    /// A visitor with every field set.
    pub fn visitor(&self, tenant_id: &str) -> String {
        self.visitor_with(
            tenant_id,
            json!({
                "name": "Ada Lovelace",
                "email": "ada@example.com",
                "phone": "+442071234567",
                "address": {"line1": "12 Analytical Row", "city": "London",
                            "postal_code": "N1 9GU", "country": "GB"},
                "attributes": {"tier": "gold", "newsletter": true}
            }),
        )
    }

    pub fn visitor_with(&self, tenant_id: &str, body: Value) -> String {
        let input: VisitorInput = serde_json::from_value(body).expect("visitor input");
        let access = Access::of(&tenant_user(Role::TenantMember, tenant_id), None);
        match self
            .rt
            .block_on(self.visitors.create(tenant_id, &access, &input, None))
            .expect("create visitor")
        {
            Created::New(v) => v.meta.id,
            Created::Replayed(id) => id,
        }
    }

    pub fn authorize(
        &self,
        tenant_id: &str,
        sub_id: &str,
        purposes: &[&str],
        fields: &[&str],
        require_consent: Option<&str>,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> steward_core::Result<AuthorizationRow> {
        let new = NewAuthorization {
            subprocessor_id: sub_id.to_string(),
            purposes: purposes.iter().map(|s| s.to_string()).collect(),
            fields: fields.iter().map(|s| s.to_string()).collect(),
            require_consent: require_consent.map(str::to_string),
            expires_at,
        };
        let (tid, by, now) = (
            tenant_id.to_string(),
            tenant_user(Role::TenantAdmin, tenant_id),
            self.now(),
        );
        self.write(move |c| steward_transfers::authorizations::create(c, &tid, &new, &by, now))
    }

    pub fn pull(
        &self,
        sub_id: &str,
        tenant_id: &str,
        purpose: &str,
        after: Option<String>,
        limit: i64,
    ) -> steward_core::Result<PullPage> {
        self.pull_since(sub_id, tenant_id, purpose, None, after, limit)
    }

    pub fn pull_since(
        &self,
        sub_id: &str,
        tenant_id: &str,
        purpose: &str,
        since: Option<NaiveDateTime>,
        after: Option<String>,
        limit: i64,
    ) -> steward_core::Result<PullPage> {
        self.rt.block_on(steward_transfers::pull_page(
            &self.store,
            &self.keys,
            self.clock.as_ref(),
            &sub_principal(sub_id),
            tenant_id,
            purpose,
            since,
            after,
            limit,
            Some("req_test".into()),
        ))
    }

    /// Every page of a pull; the ids in order and the transfer ids.
    pub fn pull_all(
        &self,
        sub_id: &str,
        tenant_id: &str,
        purpose: &str,
        limit: i64,
    ) -> (Vec<Value>, Vec<String>) {
        let (mut items, mut transfers, mut after) = (Vec::new(), Vec::new(), None);
        loop {
            let page = self
                .pull(sub_id, tenant_id, purpose, after, limit)
                .expect("pull page");
            items.extend(values(&page.items));
            transfers.push(page.transfer_id);
            match page.next_cursor {
                Some(c) => after = Some(c),
                None => return (items, transfers),
            }
        }
    }
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

pub fn sub_principal(sub_id: &str) -> Principal {
    Principal {
        kind: PrincipalKind::Subprocessor,
        id: sub_id.to_string(),
        role: None,
        tenant_id: None,
        scopes: vec![],
    }
}

/// The stable code of a 4xx error, with its kind.
pub fn code(e: &Error) -> (&'static str, &'static str) {
    match e {
        Error::Invalid { code, .. } => ("invalid", code),
        Error::Denied { code, .. } => ("denied", code),
        Error::Conflict { code, .. } => ("conflict", code),
        Error::NotFound => ("not_found", "not_found"),
        Error::Forbidden { .. } => ("forbidden", "forbidden"),
        other => panic!("unexpected error: {other:?}"),
    }
}

/// Pulled records as JSON values (a pull hands them out already encoded).
pub fn values(items: &[Box<serde_json::value::RawValue>]) -> Vec<Value> {
    items.iter().map(|i| value(i)).collect()
}

/// One pulled record as a JSON value.
pub fn value(item: &serde_json::value::RawValue) -> Value {
    serde_json::from_str(item.get()).expect("a pulled record is JSON")
}

/// The keys of a JSON object, sorted.
pub fn keys_of(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    k.sort();
    k
}
