//! End-to-end: retention — a tenant sets how long inactive visitors are kept; a purge run
//! erases the ones inactive for longer (audited, with the system as the actor), never those
//! under legal hold, and nothing at all when no retention is set.
//! Each test runs on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use reqwest::Method;
use serde_json::{json, Value};
use steward_core::Role;

use common::{unique, Response, TenantFixture, TestApp, TEST_PASSWORD};

const DAY: u64 = 24 * 60 * 60;

/// A tenant with fresh tokens of its admin and of one member. Access tokens are short-lived,
/// so after moving the clock by days a test logs in again with [`Shop::relogin`].
struct Shop {
    t: TenantFixture,
    member_email: String,
    member: String,
}

impl Shop {
    fn new(app: &TestApp, name: &str) -> Self {
        let t = app.new_tenant(name);
        let member_email = format!("member-{}@shop.test", unique());
        let r = app.post(
            &format!("/v1/tenants/{}/users", t.id),
            Some(&t.admin_token),
            &json!({ "email": member_email, "password": TEST_PASSWORD, "role": Role::TenantMember.as_str() }),
        );
        assert_eq!(r.status, 201, "create member: {}", r.text);
        let member = app.login(&member_email, TEST_PASSWORD);
        Self {
            t,
            member_email,
            member,
        }
    }

    fn relogin(&mut self, app: &TestApp) {
        self.t.admin_token = app.login(&self.t.admin_email, TEST_PASSWORD);
        self.member = app.login(&self.member_email, TEST_PASSWORD);
    }
}

fn visitor_path(tid: &str, vid: &str) -> String {
    format!("/v1/tenants/{tid}/visitors/{vid}")
}

fn create(app: &TestApp, tid: &str, token: &str, name: &str) -> String {
    let r = app.post(
        &format!("/v1/tenants/{tid}/visitors"),
        Some(token),
        &json!({ "name": name, "email": format!("{}@example.com", name.to_lowercase().replace(' ', ".")) }),
    );
    assert_eq!(r.status, 201, "create visitor: {}", r.text);
    r.json()["id"].as_str().unwrap().to_string()
}

fn get(app: &TestApp, tid: &str, token: &str, vid: &str) -> Response {
    app.get(&visitor_path(tid, vid), Some(token))
}

fn set_retention(app: &TestApp, t: &TenantFixture, days: Value) -> Response {
    app.request(
        Method::PUT,
        &format!("/v1/tenants/{}/retention", t.id),
        Some(&t.admin_token),
        Some(&json!({ "retention_days": days })),
    )
}

/// Starts a purge run and waits for it; returns the finished job.
fn run_retention(app: &TestApp, t: &TenantFixture) -> Value {
    let r = app.request(
        Method::POST,
        &format!("/v1/tenants/{}/retention/run", t.id),
        Some(&t.admin_token),
        None,
    );
    assert_eq!(r.status, 202, "run retention: {}", r.text);
    let job = r.json();
    assert_eq!(job["kind"], "retention_purge");
    let done = app.wait_for_job(&t.id, &t.admin_token, job["id"].as_str().unwrap());
    assert_eq!(done["status"], "done", "{done}");
    done
}

#[derive(diesel::QueryableByName)]
struct EventRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    actor_kind: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    purpose: Option<String>,
}

/// The `visitor.erase` events about one visitor: (actor kind, purpose).
fn erase_events(app: &TestApp, tid: &str, vid: &str) -> Vec<(String, Option<String>)> {
    use diesel::RunQueryDsl;
    for s in [tid, vid] {
        assert!(s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    }
    let sql = format!(
        "SELECT actor_kind, purpose FROM audit_events WHERE chain_id = '{tid}' \
         AND action = 'visitor.erase' AND target_id = '{vid}'"
    );
    let mut conn = app.db();
    let rows: Vec<EventRow> = match &mut *conn {
        steward_store::DbConnection::Sqlite(c) => diesel::sql_query(&sql).load(c),
        steward_store::DbConnection::Postgres(c) => diesel::sql_query(&sql).load(c),
    }
    .unwrap();
    rows.into_iter()
        .map(|r| (r.actor_kind, r.purpose))
        .collect()
}

e2e!(retention_purges_inactive_visitors_except_held_ones, |app| {
    let mut shop = Shop::new(&app, "Forgetful shop");
    let r = set_retention(&app, &shop.t, json!(30));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["retention_days"], 30);

    let tid = shop.t.id.clone();
    let old1 = create(&app, &tid, &shop.member, "Old One");
    let old2 = create(&app, &tid, &shop.member, "Old Two");
    let held = create(&app, &tid, &shop.member, "Old Held");
    let r = app.request(
        Method::PUT,
        &format!("{}/legal-hold", visitor_path(&tid, &held)),
        Some(&shop.t.admin_token),
        Some(&json!({ "active": true, "reason": "tax audit 2025" })),
    );
    assert_eq!(r.status, 200, "{}", r.text);

    // A run before the period is over purges nothing.
    app.advance_secs(29 * DAY);
    shop.relogin(&app);
    let job = run_retention(&app, &shop.t);
    assert_eq!(job["done"], 0, "{job}");
    for vid in [&old1, &old2, &held] {
        assert_eq!(get(&app, &tid, &shop.member, vid).status, 200, "{vid} kept");
    }

    app.advance_secs(2 * DAY);
    shop.relogin(&app);
    let fresh = create(&app, &tid, &shop.member, "Fresh Face");
    let job = run_retention(&app, &shop.t);
    assert_eq!(job["done"], 2, "{job}");

    for vid in [&old1, &old2] {
        assert_eq!(
            get(&app, &tid, &shop.member, vid).problem(404),
            "not_found",
            "{vid} purged"
        );
        let events = erase_events(&app, &tid, vid);
        assert_eq!(events.len(), 1, "{vid}: {events:?}");
        assert_eq!(events[0].0, "system", "erased by the system");
        assert_eq!(events[0].1.as_deref(), Some("retention"));
    }
    for vid in [&held, &fresh] {
        let r = get(&app, &tid, &shop.member, vid);
        assert_eq!(r.status, 200, "{vid} kept: {}", r.text);
        assert!(erase_events(&app, &tid, vid).is_empty());
    }
    let r = app.get(
        &format!("/v1/tenants/{tid}/visitors?limit=500"),
        Some(&shop.member),
    );
    let mut listed: Vec<String> = r.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    let mut expected = vec![held.clone(), fresh.clone()];
    expected.sort();
    assert_eq!(listed, expected);

    // Lifting the hold makes the held visitor purgeable on the next run.
    let r = app.request(
        Method::PUT,
        &format!("{}/legal-hold", visitor_path(&tid, &held)),
        Some(&shop.t.admin_token),
        Some(&json!({ "active": false })),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let job = run_retention(&app, &shop.t);
    assert_eq!(job["done"], 1, "{job}");
    assert_eq!(
        get(&app, &tid, &shop.member, &held).problem(404),
        "not_found"
    );
    assert_eq!(get(&app, &tid, &shop.member, &fresh).status, 200);
});

e2e!(rectification_counts_as_activity, |app| {
    let mut shop = Shop::new(&app, "Active shop");
    let tid = shop.t.id.clone();
    assert_eq!(set_retention(&app, &shop.t, json!(30)).status, 200);
    let touched = create(&app, &tid, &shop.member, "Touched Tina");
    let idle = create(&app, &tid, &shop.member, "Idle Ivan");
    let before = get(&app, &tid, &shop.member, &touched).json()["last_activity_at"].clone();

    app.advance_secs(20 * DAY);
    shop.relogin(&app);
    let r = app.request(
        Method::PATCH,
        &visitor_path(&tid, &touched),
        Some(&shop.member),
        Some(&json!({ "name": "Touched Tina Renamed" })),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_ne!(r.json()["last_activity_at"], before, "activity refreshed");

    app.advance_secs(15 * DAY);
    shop.relogin(&app);
    let job = run_retention(&app, &shop.t);
    assert_eq!(job["done"], 1, "{job}");
    assert_eq!(
        get(&app, &tid, &shop.member, &idle).problem(404),
        "not_found"
    );
    let r = get(&app, &tid, &shop.member, &touched);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["name"], "Touched Tina Renamed");

    // Its last activity was the patch: 30 days after it, it goes too.
    app.advance_secs(16 * DAY);
    shop.relogin(&app);
    let job = run_retention(&app, &shop.t);
    assert_eq!(job["done"], 1, "{job}");
    assert_eq!(
        get(&app, &tid, &shop.member, &touched).problem(404),
        "not_found"
    );
});

e2e!(without_retention_nothing_is_purged, |app| {
    let mut shop = Shop::new(&app, "Keeping shop");
    let tid = shop.t.id.clone();
    let a = create(&app, &tid, &shop.member, "Kept Kim");
    let b = create(&app, &tid, &shop.member, "Kept Kai");
    app.advance_secs(400 * DAY);
    shop.relogin(&app);
    let job = run_retention(&app, &shop.t);
    assert_eq!(job["done"], 0, "{job}");
    for vid in [&a, &b] {
        assert_eq!(get(&app, &tid, &shop.member, vid).status, 200);
        assert!(erase_events(&app, &tid, vid).is_empty());
    }

    // Set, then cleared again with null: still nothing is purged.
    assert_eq!(set_retention(&app, &shop.t, json!(30)).status, 200);
    let r = set_retention(&app, &shop.t, Value::Null);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["retention_days"], Value::Null);
    let job = run_retention(&app, &shop.t);
    assert_eq!(job["done"], 0, "{job}");
    for vid in [&a, &b] {
        assert_eq!(get(&app, &tid, &shop.member, vid).status, 200);
    }
});

e2e!(retention_setting_is_validated_and_admin_only, |app| {
    let shop = Shop::new(&app, "Picky shop");
    let t = &shop.t;
    for bad in [json!(0), json!(-5), json!(3651)] {
        let r = set_retention(&app, t, bad.clone());
        assert_eq!(r.problem(400), "invalid_retention", "{bad}");
    }
    let r = set_retention(&app, t, json!("thirty"));
    assert_eq!(r.problem(400), "invalid_body");
    // A member may neither set retention nor start a purge.
    let r = app.request(
        Method::PUT,
        &format!("/v1/tenants/{}/retention", t.id),
        Some(&shop.member),
        Some(&json!({ "retention_days": 30 })),
    );
    assert_eq!(r.problem(403), "forbidden");
    let r = app.request(
        Method::POST,
        &format!("/v1/tenants/{}/retention/run", t.id),
        Some(&shop.member),
        None,
    );
    assert_eq!(r.problem(403), "forbidden");
    // The refused settings left none in place.
    let r = app.get(&format!("/v1/tenants/{}", t.id), Some(&t.admin_token));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["retention_days"], Value::Null);
    assert_eq!(set_retention(&app, t, json!(3650)).status, 200);
    assert_eq!(set_retention(&app, t, json!(1)).status, 200);
});

// The server's hourly timer queues one purge per tenant with a retention period, never two.
// Built without the job worker so nothing finishes a job between the calls.
#[test]
fn retention_timer_queues_one_purge_per_tenant() {
    use steward_core::Clock;
    let dir = tempfile::tempdir().unwrap();
    let mut config = steward_api::Config::with_data_dir(dir.path());
    config.fast_password_hashing = true;
    let clock = std::sync::Arc::new(steward_core::ManualClock::starting_now());
    let state = steward_api::AppState::build_without_worker(&config, clock.clone()).unwrap();
    let now = clock.now().naive_utc();
    let kek = state.keys.kek_arc();
    let timed = state
        .store
        .write_blocking(move |c| {
            let t = steward_store::tenants::create(c, kek.as_ref(), "Timed".into(), now)?;
            steward_store::tenants::set_retention_days(c, &t.id, Some(30), now)?;
            Ok(t.id)
        })
        .unwrap();
    let kek = state.keys.kek_arc();
    state
        .store
        .write_blocking(move |c| {
            steward_store::tenants::create(c, kek.as_ref(), "Keeps".into(), now)
        })
        .unwrap();

    let schedule = || steward_visitors::retention::schedule_due(&state.store, now).unwrap();
    assert_eq!(schedule(), 1, "only the tenant with a retention period");
    assert_eq!(schedule(), 0, "a queued purge is not queued again");
    let job = state
        .store
        .read_blocking(steward_store::jobs::next_unfinished)
        .unwrap()
        .unwrap();
    assert_eq!(job.tenant_id.as_deref(), Some(timed.as_str()));
    assert_eq!(state.jobs.run_pending().unwrap(), 1);
    assert_eq!(
        schedule(),
        1,
        "once the purge ran, the next tick queues the next one"
    );
}
