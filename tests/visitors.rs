//! End-to-end: visitor PII and data-subject rights — create, read, look up, rectify, export,
//! erase; tenant isolation; validation; idempotency; bulk import; consents; legal hold; the
//! audit record of every disclosure; destroyed keys; re-encryption after a rotation.
//! Each test runs on SQLite and on PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use reqwest::Method;
use serde_json::{json, Value};
use steward_core::Role;

use common::{contains_bytes, unique, Backend, Response, TenantFixture, TestApp};

fn visitors_path(tid: &str) -> String {
    format!("/v1/tenants/{tid}/visitors")
}

fn visitor_path(tid: &str, vid: &str) -> String {
    format!("/v1/tenants/{tid}/visitors/{vid}")
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Creates a visitor (201 expected) and returns the response body.
fn create(app: &TestApp, tid: &str, token: &str, body: &Value) -> Value {
    let r = app.post(&visitors_path(tid), Some(token), body);
    assert_eq!(r.status, 201, "create visitor: {}", r.text);
    r.json()
}

fn create_with_key(app: &TestApp, tid: &str, token: &str, key: &str, body: &Value) -> Response {
    app.raw(
        app.client
            .post(app.url(&visitors_path(tid)))
            .bearer_auth(token)
            .header("Idempotency-Key", key)
            .json(body),
    )
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("visitor id").to_string()
}

fn get(app: &TestApp, tid: &str, token: &str, vid: &str) -> Response {
    app.get(&visitor_path(tid, vid), Some(token))
}

fn patch(app: &TestApp, tid: &str, token: &str, vid: &str, body: &Value) -> Response {
    app.request(
        Method::PATCH,
        &visitor_path(tid, vid),
        Some(token),
        Some(body),
    )
}

fn erase(app: &TestApp, tid: &str, token: &str, vid: &str) -> Response {
    app.request(Method::DELETE, &visitor_path(tid, vid), Some(token), None)
}

fn export(app: &TestApp, tid: &str, token: &str, vid: &str) -> Response {
    app.get(&format!("{}/export", visitor_path(tid, vid)), Some(token))
}

fn lookup_email(app: &TestApp, tid: &str, token: &str, email: &str) -> Response {
    app.get(
        &format!("{}?email={}", visitors_path(tid), urlencode(email)),
        Some(token),
    )
}

fn put_consent(
    app: &TestApp,
    tid: &str,
    token: &str,
    vid: &str,
    purpose: &str,
    status: &str,
) -> Response {
    app.request(
        Method::PUT,
        &format!("{}/consents/{purpose}", visitor_path(tid, vid)),
        Some(token),
        Some(&json!({ "status": status, "source": "web_form" })),
    )
}

fn put_hold(app: &TestApp, tid: &str, token: &str, vid: &str, body: &Value) -> Response {
    app.request(
        Method::PUT,
        &format!("{}/legal-hold", visitor_path(tid, vid)),
        Some(token),
        Some(body),
    )
}

/// Every active visitor the API lists, paging with `limit=500` (metadata only).
fn list_all_ids(app: &TestApp, tid: &str, token: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let mut path = format!("{}?limit=500", visitors_path(tid));
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = app.get(&path, Some(token));
        assert_eq!(r.status, 200, "list: {}", r.text);
        let page = r.json();
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 500, "a page holds at most `limit` items");
        ids.extend(items.iter().map(id_of));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return ids,
        }
    }
    panic!("listing did not end");
}

/// A random run of decimal digits (for phone numbers no other test uses).
fn random_digits(n: usize) -> String {
    let mut x = ulid::Ulid::new().random();
    let mut s = String::new();
    for _ in 0..n {
        s.push(char::from(b'0' + (x % 10) as u8));
        x /= 10;
    }
    s
}

/// A visitor body with every field set.
fn full_visitor(name: &str, email: &str, phone: &str) -> Value {
    json!({
        "name": name,
        "email": email,
        "phone": phone,
        "address": {
            "line1": "12 Rue des Lilas",
            "line2": "Bâtiment B",
            "city": "Lyon",
            "region": "Auvergne-Rhône-Alpes",
            "postal_code": "69003",
            "country": "fr"
        },
        "attributes": { "tier": "gold", "visits": 3 }
    })
}

// ---------------------------------------------------------------------------------------------
// Raw database access (both backends), for what only the stored bytes can show.
// ---------------------------------------------------------------------------------------------

#[derive(diesel::QueryableByName)]
struct BytesRow {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Binary>)]
    v: Option<Vec<u8>>,
}

#[derive(diesel::QueryableByName)]
struct TextRow {
    #[diesel(sql_type = diesel::sql_types::Text)]
    t: String,
}

#[derive(diesel::QueryableByName)]
struct CountRow {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Runs a raw query whose rows are `QueryableByName` on either backend.
macro_rules! raw_load {
    ($app:expr, $ty:ty, $sql:expr) => {{
        use diesel::RunQueryDsl;
        let sql: String = $sql;
        let mut conn = $app.db();
        let rows: Vec<$ty> = match &mut *conn {
            steward_store::DbConnection::Sqlite(c) => diesel::sql_query(&sql).load(c),
            steward_store::DbConnection::Postgres(c) => diesel::sql_query(&sql).load(c),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows
    }};
}

/// Only ids and codes are ever spliced into SQL here; make sure of it.
fn sql_token(s: &str) -> &str {
    assert!(
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.'),
        "not a token: {s}"
    );
    s
}

fn count(app: &TestApp, sql: String) -> i64 {
    let rows = raw_load!(app, CountRow, sql);
    rows[0].n
}

fn visitor_rows(app: &TestApp, tid: &str) -> i64 {
    count(
        app,
        format!(
            "SELECT COUNT(*) AS n FROM visitors WHERE tenant_id = '{}'",
            sql_token(tid)
        ),
    )
}

/// Every user table of the database.
fn tables(app: &TestApp) -> Vec<String> {
    let sql = match app.backend {
        Backend::Sqlite => "SELECT name AS t FROM sqlite_master WHERE type = 'table' \
                            AND name NOT LIKE 'sqlite_%'"
            .to_string(),
        Backend::Postgres => "SELECT table_name::text AS t FROM information_schema.tables \
                              WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
            .to_string(),
    };
    raw_load!(app, TextRow, sql)
        .into_iter()
        .map(|r| r.t)
        .collect()
}

/// Every value of every column of `table`, as the bytes stored (text as UTF-8, binary as is).
fn column_values(app: &TestApp, table: &str) -> Vec<(String, Vec<u8>)> {
    let table = sql_token(table);
    let columns: Vec<(String, String)> = match app.backend {
        Backend::Sqlite => {
            #[derive(diesel::QueryableByName)]
            struct Col {
                #[diesel(sql_type = diesel::sql_types::Text)]
                name: String,
                #[diesel(sql_type = diesel::sql_types::Text)]
                ty: String,
            }
            raw_load!(
                app,
                Col,
                format!("SELECT name, type AS ty FROM pragma_table_info('{table}')")
            )
            .into_iter()
            .map(|c| (c.name, c.ty))
            .collect()
        }
        Backend::Postgres => {
            #[derive(diesel::QueryableByName)]
            struct Col {
                #[diesel(sql_type = diesel::sql_types::Text)]
                name: String,
                #[diesel(sql_type = diesel::sql_types::Text)]
                ty: String,
            }
            raw_load!(
                app,
                Col,
                format!(
                    "SELECT column_name::text AS name, data_type::text AS ty \
                     FROM information_schema.columns \
                     WHERE table_schema = 'public' AND table_name = '{table}'"
                )
            )
            .into_iter()
            .map(|c| (c.name, c.ty))
            .collect()
        }
    };
    assert!(!columns.is_empty(), "table {table} has columns");
    let mut out = Vec::new();
    for (col, ty) in columns {
        let col = sql_token(&col);
        let expr = match app.backend {
            Backend::Sqlite => format!("CAST(\"{col}\" AS BLOB)"),
            Backend::Postgres if ty == "bytea" => format!("\"{col}\""),
            Backend::Postgres => format!("convert_to(\"{col}\"::text, 'UTF8')"),
        };
        for row in raw_load!(
            app,
            BytesRow,
            format!("SELECT {expr} AS v FROM \"{table}\"")
        ) {
            if let Some(v) = row.v {
                out.push((format!("{table}.{col} ({ty})"), v));
            }
        }
    }
    out
}

/// Asserts that none of `canaries` is stored anywhere (any ASCII case): in the SQLite file and
/// its WAL, and in every column of every table (both backends). `control` is a value that is
/// stored (an id): the same search must find it, or the search proves nothing.
fn assert_no_plaintext(app: &TestApp, canaries: &[&str], control: &str, step: &str) {
    let needles: Vec<Vec<u8>> = canaries
        .iter()
        .map(|c| c.to_ascii_lowercase().into_bytes())
        .collect();
    if app.backend == Backend::Sqlite {
        let bytes = app.sqlite_bytes().to_ascii_lowercase();
        assert!(
            contains_bytes(&bytes, control.to_ascii_lowercase().as_bytes()),
            "{step}: sanity: the control {control} is found in the SQLite file"
        );
        for (c, n) in canaries.iter().zip(&needles) {
            assert!(
                !contains_bytes(&bytes, n),
                "{step}: {c:?} found in the SQLite file or WAL"
            );
        }
    }
    let tables = tables(app);
    for t in ["visitors", "audit_events", "consents", "idempotency_keys"] {
        assert!(tables.iter().any(|x| x == t), "table {t} exists");
    }
    let mut scanned = 0;
    let mut control_found = false;
    for t in &tables {
        for (column, value) in column_values(app, t) {
            scanned += 1;
            let value = value.to_ascii_lowercase();
            control_found |= contains_bytes(&value, control.to_ascii_lowercase().as_bytes());
            for (c, n) in canaries.iter().zip(&needles) {
                assert!(
                    !contains_bytes(&value, n),
                    "{step}: {c:?} found in column {column}"
                );
            }
        }
    }
    assert!(
        scanned > 50,
        "sanity: the tables were read ({scanned} values)"
    );
    assert!(
        control_found,
        "{step}: sanity: the control {control} is found in the tables"
    );
}

/// The JSON text of a response must not hold any of `canaries` (any ASCII case).
fn assert_text_free_of(text: &str, canaries: &[&str], what: &str) {
    let text = text.to_ascii_lowercase();
    for c in canaries {
        assert!(
            !text.contains(&c.to_ascii_lowercase()),
            "{what} contains {c:?}: {text}"
        );
    }
}

#[derive(Debug)]
struct EventRow {
    action: String,
    actor_kind: String,
    target_id: Option<String>,
    seq: i64,
    hash: Vec<u8>,
}

fn event_by_id(app: &TestApp, tid: &str, event_id: &str) -> Option<EventRow> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        action: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        actor_kind: String,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
        target_id: Option<String>,
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        seq: i64,
        #[diesel(sql_type = diesel::sql_types::Binary)]
        hash: Vec<u8>,
    }
    let rows = raw_load!(
        app,
        Row,
        format!(
            "SELECT action, actor_kind, target_id, seq, hash FROM audit_events \
             WHERE chain_id = '{}' AND id = '{}'",
            sql_token(tid),
            sql_token(event_id)
        )
    );
    rows.into_iter().next().map(|r| EventRow {
        action: r.action,
        actor_kind: r.actor_kind,
        target_id: r.target_id,
        seq: r.seq,
        hash: r.hash,
    })
}

/// Audit events of the tenant's chain with one of `actions`.
fn count_events(app: &TestApp, tid: &str, actions: &[&str]) -> i64 {
    let list = actions
        .iter()
        .map(|a| format!("'{}'", sql_token(a)))
        .collect::<Vec<_>>()
        .join(", ");
    count(
        app,
        format!(
            "SELECT COUNT(*) AS n FROM audit_events WHERE chain_id = '{}' AND action IN ({list})",
            sql_token(tid)
        ),
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn member(app: &TestApp, t: &TenantFixture) -> (String, String) {
    app.tenant_user(t, Role::TenantMember)
}

// ---------------------------------------------------------------------------------------------
// 1. The whole life of one visitor; at every step no plaintext is stored anywhere.
// ---------------------------------------------------------------------------------------------

e2e!(lifecycle_never_stores_plaintext, |app| {
    let t = app.new_tenant("Canary shop");
    let (member_id, token) = member(&app, &t);
    let tid = t.id.clone();
    let tag = unique();
    let email = format!("canary-{tag}@example.com");
    let name = format!("Canary Zebulon {tag}");
    let new_name = format!("Renamed Quixote {tag}");
    let digits = format!("4915{}", random_digits(9));
    let phone = format!("+{digits}");
    let canaries = [
        email.as_str(),
        name.as_str(),
        new_name.as_str(),
        digits.as_str(),
    ];
    assert_no_plaintext(&app, &canaries, &tid, "before anything");

    // Create (with an idempotency key, so that table holds a row too).
    let body = full_visitor(&name, &email, &phone);
    let r = create_with_key(&app, &tid, &token, &format!("key-{tag}"), &body);
    assert_eq!(r.status, 201, "{}", r.text);
    let created = r.json();
    let vid = id_of(&created);
    assert!(vid.starts_with("vis_"), "{vid}");
    assert_eq!(created["name"], name.as_str());
    assert_eq!(created["email"], email.as_str());
    assert_eq!(created["phone"], phone.as_str());
    assert_eq!(created["address"]["country"], "FR");
    assert_eq!(created["status"], "active");
    assert_eq!(created["key_version"], 1);
    assert_eq!(
        count(
            &app,
            format!(
                "SELECT COUNT(*) AS n FROM idempotency_keys WHERE tenant_id = '{}'",
                sql_token(&tid)
            )
        ),
        1
    );
    assert_no_plaintext(&app, &canaries, &tid, "after create");

    // Read.
    let r = get(&app, &tid, &token, &vid);
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["id"], vid.as_str());
    assert_eq!(v["name"], name.as_str());
    assert_eq!(v["email"], email.as_str());
    assert_eq!(v["phone"], phone.as_str());
    assert_eq!(v["address"]["city"], "Lyon");
    assert_eq!(v["attributes"]["tier"], "gold");
    assert_no_plaintext(&app, &canaries, &tid, "after read");

    // Look up by e-mail, in another case and with spaces around it.
    let variant = format!("  CANARY-{}@Example.COM ", tag.to_ascii_uppercase());
    let r = lookup_email(&app, &tid, &token, &variant);
    assert_eq!(r.status, 200, "{}", r.text);
    let items = r.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "exactly the one visitor: {items:?}");
    assert_eq!(items[0]["id"], vid.as_str());
    assert_eq!(items[0]["email"], email.as_str());
    // A different address finds nothing.
    let r = lookup_email(&app, &tid, &token, &format!("other-{tag}@example.com"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["items"], json!([]));
    // By phone, written another way (00 prefix, spaces, dashes, parentheses).
    let phone_variant = format!(
        "00{} ({}) {}-{}",
        &digits[..2],
        &digits[2..5],
        &digits[5..9],
        &digits[9..]
    );
    let r = app.get(
        &format!(
            "{}?phone={}",
            visitors_path(&tid),
            urlencode(&phone_variant)
        ),
        Some(&token),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let items = r.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "exactly the one visitor: {items:?}");
    assert_eq!(items[0]["id"], vid.as_str());
    // Both at once must both match: the right pair finds the visitor, a wrong e-mail nothing.
    let both = |mail: &str, tel: &str| {
        app.get(
            &format!(
                "{}?email={}&phone={}",
                visitors_path(&tid),
                urlencode(mail),
                urlencode(tel)
            ),
            Some(&token),
        )
    };
    let r = both(&email, &phone_variant);
    assert_eq!(r.status, 200, "{}", r.text);
    let items = r.json()["items"].as_array().unwrap().clone();
    assert_eq!(
        items.len(),
        1,
        "the visitor with this e-mail and phone: {items:?}"
    );
    assert_eq!(items[0]["id"], vid.as_str());
    let r = both(&format!("other-{tag}@example.com"), &phone_variant);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json()["items"],
        json!([]),
        "the phone alone does not match"
    );
    let r = both(&email, "+44 20 7946 0000");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json()["items"],
        json!([]),
        "the e-mail alone does not match"
    );
    assert_no_plaintext(&app, &canaries, &tid, "after lookup");

    // Rectify the name only.
    let r = patch(&app, &tid, &token, &vid, &json!({ "name": new_name }));
    assert_eq!(r.status, 200, "{}", r.text);
    let p = r.json();
    assert_eq!(p["updated_fields"], json!(["name"]));
    assert_eq!(p["id"], vid.as_str());
    assert!(p.get("name").is_none(), "a patch answers metadata only");
    let r = get(&app, &tid, &token, &vid);
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["name"], new_name.as_str());
    assert_eq!(v["email"], email.as_str(), "other fields kept");
    assert_eq!(v["phone"], phone.as_str(), "other fields kept");
    assert_no_plaintext(&app, &canaries, &tid, "after rectification");

    // A consent, so the export has one to show.
    let r = put_consent(&app, &tid, &token, &vid, "marketing_email", "granted");
    assert_eq!(r.status, 200, "{}", r.text);

    // Export: the PII, consents, recipients, and who accessed the record (never values).
    let r = export(&app, &tid, &token, &vid);
    assert_eq!(r.status, 200, "{}", r.text);
    let doc = r.json();
    assert_eq!(doc["visitor"]["id"], vid.as_str());
    assert_eq!(doc["visitor"]["name"], new_name.as_str());
    assert_eq!(doc["visitor"]["email"], email.as_str());
    assert_eq!(doc["visitor"]["phone"], phone.as_str());
    assert_eq!(doc["visitor"]["address"]["postal_code"], "69003");
    let consents = doc["consents"].as_array().expect("consents");
    assert_eq!(consents.len(), 1);
    assert_eq!(consents[0]["purpose"], "marketing_email");
    assert_eq!(consents[0]["status"], "granted");
    assert_eq!(doc["recipients"], json!([]));
    let history = doc["access_history"].as_array().expect("access_history");
    let actions: Vec<&str> = history
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for a in [
        "visitor.create",
        "visitor.read",
        "visitor.lookup",
        "visitor.update",
        "consent.record",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    assert_eq!(
        actions.iter().filter(|a| **a == "visitor.read").count(),
        2,
        "two reads: {actions:?}"
    );
    let all_fields = json!(["address", "attributes", "email", "name", "phone"]);
    for e in history {
        assert_eq!(e["actor_kind"], "user", "{e}");
        assert_eq!(e["actor_id"], member_id.as_str(), "{e}");
        assert_eq!(e["actor_role"], "tenant_member", "{e}");
        match e["action"].as_str().unwrap() {
            "visitor.create" | "visitor.read" | "visitor.lookup" => {
                assert_eq!(e["fields"], all_fields, "{e}")
            }
            "visitor.update" => assert_eq!(e["fields"], json!(["name"]), "{e}"),
            _ => {}
        }
    }
    // Names, never values.
    assert_text_free_of(
        &serde_json::to_string(history).unwrap(),
        &canaries,
        "access history",
    );
    assert_no_plaintext(&app, &canaries, &tid, "after export");

    // Erase: a receipt whose audit event exists, with the same hash.
    let r = erase(&app, &tid, &token, &vid);
    assert_eq!(r.status, 200, "{}", r.text);
    let receipt = r.json();
    assert_text_free_of(&r.text, &canaries, "erasure receipt");
    assert_eq!(receipt["visitor_id"], vid.as_str());
    assert!(receipt["erased_at"].is_string());
    let event_id = receipt["audit_event_id"].as_str().expect("audit_event_id");
    let event = event_by_id(&app, &tid, event_id).expect("the receipt's audit event is stored");
    assert_eq!(event.action, "visitor.erase");
    assert_eq!(event.target_id.as_deref(), Some(vid.as_str()));
    assert_eq!(event.actor_kind, "user");
    assert_eq!(receipt["audit_event_seq"], event.seq);
    assert_eq!(receipt["audit_event_hash"], hex(&event.hash).as_str());
    assert_eq!(event.hash.len(), 32);
    // The tombstone holds no ciphertext and no blind index.
    assert_eq!(
        count(
            &app,
            format!(
                "SELECT COUNT(*) AS n FROM visitors WHERE tenant_id = '{}' AND id = '{}' \
                 AND status = 'erased' AND name_sealed IS NULL AND email_sealed IS NULL \
                 AND phone_sealed IS NULL AND address_sealed IS NULL \
                 AND attributes_sealed IS NULL AND email_index IS NULL AND phone_index IS NULL",
                sql_token(&tid),
                sql_token(&vid)
            )
        ),
        1
    );
    assert_eq!(
        count(
            &app,
            format!(
                "SELECT COUNT(*) AS n FROM consents WHERE tenant_id = '{}'",
                sql_token(&tid)
            )
        ),
        0,
        "the consents went with the visitor"
    );
    assert_eq!(
        count(
            &app,
            format!(
                "SELECT COUNT(*) AS n FROM idempotency_keys WHERE tenant_id = '{}'",
                sql_token(&tid)
            )
        ),
        0,
        "the idempotency record went with the visitor"
    );
    assert_no_plaintext(&app, &canaries, &tid, "after erasure");

    // Gone for every route.
    assert_eq!(get(&app, &tid, &token, &vid).problem(404), "not_found");
    assert_eq!(export(&app, &tid, &token, &vid).problem(404), "not_found");
    assert_eq!(
        patch(&app, &tid, &token, &vid, &json!({ "name": "X" })).problem(404),
        "not_found"
    );
    let r = lookup_email(&app, &tid, &token, &email);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["items"], json!([]));
    assert_eq!(erase(&app, &tid, &token, &vid).problem(404), "not_found");
    assert!(list_all_ids(&app, &tid, &token).is_empty());
    assert_no_plaintext(&app, &canaries, &tid, "at the end");
});

// ---------------------------------------------------------------------------------------------
// 2. Tenant isolation.
// ---------------------------------------------------------------------------------------------

e2e!(tenants_never_see_each_others_visitors, |app| {
    let a = app.new_tenant("Shop A");
    let b = app.new_tenant("Shop B");
    let (_, ta) = member(&app, &a);
    let (_, tb) = member(&app, &b);
    let email = format!("shared-{}@example.com", unique());
    let va = id_of(&create(
        &app,
        &a.id,
        &ta,
        &json!({ "name": "Alice in A", "email": email }),
    ));
    let vb = id_of(&create(
        &app,
        &b.id,
        &tb,
        &json!({ "name": "Alice in B", "email": email }),
    ));
    assert_ne!(va, vb, "two visitors");

    // A well-formed id that exists nowhere: foreign ids must look exactly like it.
    let missing = format!("vis_{}", ulid::Ulid::new());
    let missing_get = get(&app, &a.id, &ta, &missing);
    assert_eq!(missing_get.problem(404), "not_found");

    type Call<'a> = Box<dyn Fn(&str) -> Response + 'a>;
    let calls: Vec<(&str, Call)> = vec![
        ("get", Box::new(|v: &str| get(&app, &a.id, &ta, v))),
        (
            "patch",
            Box::new(|v: &str| patch(&app, &a.id, &ta, v, &json!({ "name": "Mallory" }))),
        ),
        ("delete", Box::new(|v: &str| erase(&app, &a.id, &ta, v))),
        ("export", Box::new(|v: &str| export(&app, &a.id, &ta, v))),
        (
            "consent",
            Box::new(|v: &str| put_consent(&app, &a.id, &ta, v, "marketing_email", "withdrawn")),
        ),
        (
            "consents",
            Box::new(|v: &str| app.get(&format!("{}/consents", visitor_path(&a.id, v)), Some(&ta))),
        ),
        (
            "legal hold (admin)",
            Box::new(|v: &str| {
                put_hold(
                    &app,
                    &a.id,
                    &a.admin_token,
                    v,
                    &json!({ "active": true, "reason": "probe" }),
                )
            }),
        ),
    ];
    for (what, call) in &calls {
        let foreign = call(&vb);
        let absent = call(&missing);
        assert_eq!(foreign.problem(404), "not_found", "{what}");
        assert_eq!(absent.problem(404), "not_found", "{what}");
        assert_eq!(
            foreign.text, absent.text,
            "{what}: a foreign id answers like a missing one"
        );
    }

    // Looking up the e-mail under A finds only A's visitor.
    let r = lookup_email(&app, &a.id, &ta, &email);
    assert_eq!(r.status, 200, "{}", r.text);
    let items = r.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0]["id"], va.as_str());
    assert_eq!(items[0]["name"], "Alice in A");
    assert_eq!(list_all_ids(&app, &a.id, &ta), vec![va.clone()]);

    // A member of A on B's routes: 404, whatever the route.
    let foreign_routes = [
        get(&app, &b.id, &ta, &vb),
        patch(&app, &b.id, &ta, &vb, &json!({ "name": "Mallory" })),
        erase(&app, &b.id, &ta, &vb),
        export(&app, &b.id, &ta, &vb),
        put_consent(&app, &b.id, &ta, &vb, "marketing_email", "withdrawn"),
        lookup_email(&app, &b.id, &ta, &email),
        app.get(&format!("{}?include=pii", visitors_path(&b.id)), Some(&ta)),
        app.post(
            &visitors_path(&b.id),
            Some(&ta),
            &json!({ "name": "Planted" }),
        ),
        app.post(
            &format!("{}:batch", visitors_path(&b.id)),
            Some(&ta),
            &json!({ "items": [{ "name": "Planted" }] }),
        ),
    ];
    for (i, r) in foreign_routes.iter().enumerate() {
        assert_eq!(r.problem(404), "not_found", "foreign route #{i}");
    }

    // B's visitor is untouched and B still has exactly one.
    let r = get(&app, &b.id, &tb, &vb);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["name"], "Alice in B");
    assert_eq!(list_all_ids(&app, &b.id, &tb), vec![vb.clone()]);
    let r = app.get(&format!("{}/consents", visitor_path(&b.id, &vb)), Some(&tb));
    assert_eq!(r.json()["history"], json!([]), "no consent was planted");

    // Blind indexes are keyed per tenant: the same e-mail, unrelated values.
    #[derive(diesel::QueryableByName)]
    struct Idx {
        #[diesel(sql_type = diesel::sql_types::Text)]
        id: String,
        #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Binary>)]
        email_index: Option<Vec<u8>>,
    }
    let rows = raw_load!(
        app,
        Idx,
        format!(
            "SELECT id, email_index FROM visitors WHERE id IN ('{}', '{}')",
            sql_token(&va),
            sql_token(&vb)
        )
    );
    assert_eq!(rows.len(), 2);
    let ia = rows
        .iter()
        .find(|r| r.id == va)
        .unwrap()
        .email_index
        .clone();
    let ib = rows
        .iter()
        .find(|r| r.id == vb)
        .unwrap()
        .email_index
        .clone();
    let (ia, ib) = (ia.expect("A has an index"), ib.expect("B has an index"));
    assert_eq!(ia.len(), 32);
    assert_ne!(ia, ib, "the same e-mail indexes differently per tenant");
});

// ---------------------------------------------------------------------------------------------
// 3. Validation: a clear 400 with a stable code, and nothing created.
// ---------------------------------------------------------------------------------------------

e2e!(invalid_visitors_are_refused_and_change_nothing, |app| {
    let t = app.new_tenant("Strict shop");
    let (_, token) = member(&app, &t);
    let keep = id_of(&create(
        &app,
        &t.id,
        &token,
        &json!({ "name": "Valid Vera", "email": "vera@example.com" }),
    ));
    assert_eq!(list_all_ids(&app, &t.id, &token).len(), 1);

    let address =
        |country: &str| json!({ "line1": "1 Main St", "city": "Springfield", "country": country });
    let big: String = "x".repeat(17 * 1024);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "bad e-mail",
            json!({ "name": "A", "email": "not-an-address" }),
            "invalid_email",
        ),
        (
            "e-mail without domain dot",
            json!({ "email": "someone@localhost" }),
            "invalid_email",
        ),
        (
            "phone without country code",
            json!({ "name": "A", "phone": "0151 2345678" }),
            "invalid_phone",
        ),
        (
            "country XX",
            json!({ "name": "A", "address": address("XX") }),
            "invalid_country",
        ),
        (
            "unknown field",
            json!({ "name": "A", "favourite_colour": "blue" }),
            "invalid_body",
        ),
        (
            "unknown address field",
            json!({ "name": "A", "address": { "line1": "1", "city": "C", "country": "DE", "planet": "Mars" } }),
            "invalid_body",
        ),
        (
            "name of 201 characters",
            json!({ "name": "n".repeat(201) }),
            "invalid_name",
        ),
        (
            "attributes over 16 KiB",
            json!({ "name": "A", "attributes": { "blob": big } }),
            "invalid_attributes",
        ),
        ("empty body", json!({}), "empty_visitor"),
        (
            "only an external_ref",
            json!({ "external_ref": "crm-1" }),
            "empty_visitor",
        ),
    ];
    for (what, body, code) in &cases {
        let r = app.post(&visitors_path(&t.id), Some(&token), body);
        assert_eq!(r.problem(400), *code, "{what}: {}", r.text);
        // Errors name the rule, never the value.
        assert!(
            !r.text.contains("not-an-address") && !r.text.contains("0151 2345678"),
            "{what}: the problem echoes the value: {}",
            r.text
        );
    }
    // The limits themselves are accepted: a 200-character name.
    let edge = id_of(&create(
        &app,
        &t.id,
        &token,
        &json!({ "name": "n".repeat(200) }),
    ));

    // Rectification validates too, and a refused patch changes nothing.
    for (body, code) in [
        (json!({ "email": "nope" }), "invalid_email"),
        (json!({ "name": "ok", "phone": "12345" }), "invalid_phone"),
        (json!({ "nickname": "V" }), "invalid_body"),
    ] {
        let r = patch(&app, &t.id, &token, &keep, &body);
        assert_eq!(r.problem(400), code, "{body}");
    }
    let v = get(&app, &t.id, &token, &keep).json();
    assert_eq!(v["name"], "Valid Vera");
    assert_eq!(v["email"], "vera@example.com");

    let mut listed = list_all_ids(&app, &t.id, &token);
    listed.sort();
    let mut expected = vec![keep, edge];
    expected.sort();
    assert_eq!(listed, expected, "only the valid visitors exist");
    assert_eq!(visitor_rows(&app, &t.id), 2);
});

// ---------------------------------------------------------------------------------------------
// 4. Idempotency keys.
// ---------------------------------------------------------------------------------------------

e2e!(idempotency_key_makes_retries_safe, |app| {
    let t = app.new_tenant("Retry shop");
    let (_, token) = member(&app, &t);
    let key = format!("order-{}", unique());
    let body =
        json!({ "name": "Rita Retry", "email": "rita@example.com", "external_ref": "crm-7" });

    let first = create_with_key(&app, &t.id, &token, &key, &body);
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.header("Idempotent-Replayed"), None);
    let second = create_with_key(&app, &t.id, &token, &key, &body);
    assert_eq!(second.status, 201, "{}", second.text);
    assert_eq!(
        second.header("Idempotent-Replayed").as_deref(),
        Some("true")
    );
    let (v1, v2) = (first.json(), second.json());
    assert_eq!(id_of(&v1), id_of(&v2), "the same visitor");
    assert_eq!(v2["name"], "Rita Retry");
    assert_eq!(v2["email"], "rita@example.com");
    assert_eq!(list_all_ids(&app, &t.id, &token), vec![id_of(&v1)]);
    assert_eq!(visitor_rows(&app, &t.id), 1);

    // The same key with another body is a conflict and creates nothing.
    let other =
        json!({ "name": "Rita Retry", "email": "rita.other@example.com", "external_ref": "crm-7" });
    let r = create_with_key(&app, &t.id, &token, &key, &other);
    assert_eq!(r.problem(409), "idempotency_key_reused");
    assert_eq!(visitor_rows(&app, &t.id), 1);

    // A fresh key is a fresh request (here: the external_ref is then taken).
    let r = create_with_key(&app, &t.id, &token, &format!("{key}-2"), &body);
    assert_eq!(r.problem(409), "external_ref_taken");
    let r = create_with_key(
        &app,
        &t.id,
        &token,
        &format!("{key}-3"),
        &json!({ "name": "Rita Retry", "email": "rita@example.com" }),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("Idempotent-Replayed"), None);
    assert_ne!(id_of(&r.json()), id_of(&v1));
    assert_eq!(visitor_rows(&app, &t.id), 2);

    // A malformed key is refused.
    let r = create_with_key(&app, &t.id, &token, &"k".repeat(129), &body);
    assert_eq!(r.problem(400), "invalid_idempotency_key");
    assert_eq!(visitor_rows(&app, &t.id), 2);

    // Retries that race each other: one visitor, every answer names it.
    let key = format!("race-{}", unique());
    let body = json!({ "name": "Racing Rachel", "email": "rachel@example.com" });
    let answers: Vec<Response> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| create_with_key(&app, &t.id, &token, &key, &body)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &answers {
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let ids: std::collections::BTreeSet<String> =
        answers.iter().map(|r| id_of(&r.json())).collect();
    assert_eq!(ids.len(), 1, "one visitor: {ids:?}");
    let fresh = answers
        .iter()
        .filter(|r| r.header("Idempotent-Replayed").is_none())
        .count();
    assert_eq!(fresh, 1, "exactly one answer is the original");
    assert_eq!(visitor_rows(&app, &t.id), 3);
});

// ---------------------------------------------------------------------------------------------
// 5. Bulk import: all or nothing.
// ---------------------------------------------------------------------------------------------

fn batch_item(i: usize) -> Value {
    json!({
        "name": format!("Imported {i}"),
        "email": format!("imported-{i}@example.com"),
        "external_ref": format!("crm-{i}"),
    })
}

fn import(app: &TestApp, tid: &str, token: &str, items: Vec<Value>) -> Response {
    app.post(
        &format!("{}:batch", visitors_path(tid)),
        Some(token),
        &json!({ "items": items }),
    )
}

e2e!(batch_import_is_all_or_nothing, |app| {
    let t = app.new_tenant("Import shop");
    let (_, token) = member(&app, &t);

    for call in 0..10 {
        let items: Vec<Value> = (call * 1000..(call + 1) * 1000).map(batch_item).collect();
        let r = import(&app, &t.id, &token, items);
        assert_eq!(r.status, 201, "batch {call}: {}", r.text);
        let body = r.json();
        assert_eq!(body["count"], 1000);
        assert_eq!(body["items"].as_array().unwrap().len(), 1000);
        assert!(
            body["items"][0].get("email").is_none(),
            "an import answers metadata only"
        );
    }
    let ids = list_all_ids(&app, &t.id, &token);
    assert_eq!(ids.len(), 10_000);
    let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(distinct.len(), 10_000, "pages do not overlap");
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ids, "listed in id order");
    // Spot checks: an imported visitor reads back, and is found by e-mail.
    let r = lookup_email(&app, &t.id, &token, "IMPORTED-4321@example.com");
    let found = r.json()["items"].as_array().unwrap().clone();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["name"], "Imported 4321");
    assert_eq!(found[0]["external_ref"], "crm-4321");

    // One bad item: the batch is refused, naming it, and nothing is imported.
    let mut items: Vec<Value> = (20_000..21_000).map(batch_item).collect();
    items[537]["email"] = json!("not-an-address");
    let r = import(&app, &t.id, &token, items);
    assert_eq!(r.problem(400), "invalid_batch");
    let errors = r.json()["errors"].as_array().expect("errors").clone();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["index"], 537);
    assert_eq!(errors[0]["code"], "invalid_email");
    assert!(errors[0]["detail"].is_string());
    assert!(!r.text.contains("not-an-address"), "{}", r.text);
    assert_eq!(visitor_rows(&app, &t.id), 10_000);

    // An external_ref another visitor already has: refused, naming the item.
    let mut items: Vec<Value> = (30_000..30_010).map(batch_item).collect();
    items[4]["external_ref"] = json!("crm-17");
    let r = import(&app, &t.id, &token, items);
    assert_eq!(r.problem(400), "invalid_batch");
    let errors = r.json()["errors"].as_array().expect("errors").clone();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["index"], 4);
    assert_eq!(errors[0]["code"], "external_ref_taken");
    assert_eq!(visitor_rows(&app, &t.id), 10_000);

    // The same external_ref twice within one batch.
    let mut items: Vec<Value> = (40_000..40_010).map(batch_item).collect();
    items[9]["external_ref"] = json!("crm-40002");
    let r = import(&app, &t.id, &token, items);
    assert_eq!(r.problem(400), "invalid_batch");
    let errors = r.json()["errors"].as_array().expect("errors").clone();
    assert_eq!(errors[0]["index"], 9);
    assert_eq!(errors[0]["code"], "duplicate_external_ref");
    assert_eq!(visitor_rows(&app, &t.id), 10_000);

    // Too many items, or none.
    let items: Vec<Value> = (50_000..51_001).map(batch_item).collect();
    assert_eq!(
        import(&app, &t.id, &token, items).problem(400),
        "invalid_batch"
    );
    assert_eq!(
        import(&app, &t.id, &token, Vec::new()).problem(400),
        "invalid_batch"
    );
    assert_eq!(visitor_rows(&app, &t.id), 10_000);
    assert_eq!(list_all_ids(&app, &t.id, &token).len(), 10_000);
});

// ---------------------------------------------------------------------------------------------
// 6. Consents.
// ---------------------------------------------------------------------------------------------

e2e!(consents_keep_their_history, |app| {
    let t = app.new_tenant("Consent shop");
    let (member_id, token) = member(&app, &t);
    let vid = id_of(&create(
        &app,
        &t.id,
        &token,
        &json!({ "name": "Connie", "email": "connie@example.com" }),
    ));
    let consents = |app: &TestApp| {
        let r = app.get(
            &format!("{}/consents", visitor_path(&t.id, &vid)),
            Some(&token),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        r.json()
    };
    assert_eq!(consents(&app), json!({ "current": [], "history": [] }));

    let r = put_consent(&app, &t.id, &token, &vid, "marketing_email", "granted");
    assert_eq!(r.status, 200, "{}", r.text);
    let c = r.json();
    assert_eq!(c["purpose"], "marketing_email");
    assert_eq!(c["status"], "granted");
    assert_eq!(c["source"], "web_form");
    assert_eq!(c["recorded_by"], member_id.as_str());
    app.advance_secs(60);
    let r = app.request(
        Method::PUT,
        &format!("{}/consents/marketing_email", visitor_path(&t.id, &vid)),
        Some(&token),
        Some(&json!({ "status": "withdrawn", "source": "unsubscribe_link" })),
    );
    assert_eq!(r.status, 200, "{}", r.text);

    let state = consents(&app);
    let current = state["current"].as_array().unwrap();
    assert_eq!(current.len(), 1, "{state}");
    assert_eq!(current[0]["purpose"], "marketing_email");
    assert_eq!(current[0]["status"], "withdrawn");
    assert_eq!(current[0]["source"], "unsubscribe_link");
    let history = state["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{state}");
    assert_eq!(history[0]["status"], "granted");
    assert_eq!(history[1]["status"], "withdrawn");

    // Bad input: 400 and nothing recorded.
    let r = put_consent(&app, &t.id, &token, &vid, "marketing_email", "maybe");
    assert_eq!(r.problem(400), "invalid_status");
    let r = put_consent(&app, &t.id, &token, &vid, "Loyalty-SMS", "granted");
    assert_eq!(r.problem(400), "invalid_purpose");
    let r = app.request(
        Method::PUT,
        &format!("{}/consents/analytics", visitor_path(&t.id, &vid)),
        Some(&token),
        Some(&json!({ "status": "granted", "source": "web form with spaces" })),
    );
    assert_eq!(r.problem(400), "invalid_source");
    let r = app.request(
        Method::PUT,
        &format!("{}/consents/analytics", visitor_path(&t.id, &vid)),
        Some(&token),
        Some(&json!({ "status": "granted", "source": "web_form", "extra": 1 })),
    );
    assert_eq!(r.problem(400), "invalid_body");
    assert_eq!(consents(&app)["history"].as_array().unwrap().len(), 2);

    // A purpose of the tenant's own.
    app.advance_secs(60);
    let r = put_consent(&app, &t.id, &token, &vid, "loyalty_sms", "granted");
    assert_eq!(r.status, 200, "{}", r.text);
    let state = consents(&app);
    let current = state["current"].as_array().unwrap();
    assert_eq!(current.len(), 2, "{state}");
    let loyalty = current
        .iter()
        .find(|c| c["purpose"] == "loyalty_sms")
        .expect("loyalty_sms is current");
    assert_eq!(loyalty["status"], "granted");
    let marketing = current
        .iter()
        .find(|c| c["purpose"] == "marketing_email")
        .expect("marketing_email is current");
    assert_eq!(marketing["status"], "withdrawn");
    assert_eq!(state["history"].as_array().unwrap().len(), 3);

    // The export shows the whole history.
    let r = export(&app, &t.id, &token, &vid);
    assert_eq!(r.status, 200, "{}", r.text);
    let doc = r.json();
    let exported: Vec<(String, String)> = doc["consents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["purpose"].as_str().unwrap().to_string(),
                c["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        exported,
        vec![
            ("marketing_email".to_string(), "granted".to_string()),
            ("marketing_email".to_string(), "withdrawn".to_string()),
            ("loyalty_sms".to_string(), "granted".to_string()),
        ]
    );
    // Each decision is in the audit log (the purpose, not a value).
    let records: Vec<&Value> = doc["access_history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "consent.record")
        .collect();
    assert_eq!(records.len(), 3);
    assert_eq!(records[2]["purpose"], "loyalty_sms");
});

// ---------------------------------------------------------------------------------------------
// 7. Legal hold.
// ---------------------------------------------------------------------------------------------

e2e!(legal_hold_blocks_erasure_until_lifted, |app| {
    let t = app.new_tenant("Held shop");
    let (_, token) = member(&app, &t);
    let vid = id_of(&create(
        &app,
        &t.id,
        &token,
        &json!({ "name": "Harold Held", "email": "harold@example.com" }),
    ));
    let reason = "litigation LIT-2024-17";

    // A member may not set (or lift) holds.
    let r = put_hold(
        &app,
        &t.id,
        &token,
        &vid,
        &json!({ "active": true, "reason": reason }),
    );
    assert_eq!(r.problem(403), "forbidden");
    // A hold needs a reason.
    let r = put_hold(
        &app,
        &t.id,
        &t.admin_token,
        &vid,
        &json!({ "active": true }),
    );
    assert_eq!(r.problem(400), "invalid_reason");
    let r = put_hold(
        &app,
        &t.id,
        &t.admin_token,
        &vid,
        &json!({ "active": true, "reason": "  " }),
    );
    assert_eq!(r.problem(400), "invalid_reason");
    assert_eq!(get(&app, &t.id, &token, &vid).json()["legal_hold"], false);

    let r = put_hold(
        &app,
        &t.id,
        &t.admin_token,
        &vid,
        &json!({ "active": true, "reason": reason }),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["legal_hold"], true);

    // Erasure is refused, saying why; the visitor is intact.
    for tok in [&token, &t.admin_token] {
        let r = erase(&app, &t.id, tok, &vid);
        assert_eq!(r.problem(409), "legal_hold");
        let detail = r.json()["detail"].as_str().unwrap().to_string();
        assert!(detail.contains(reason), "the detail says why: {detail}");
    }
    let v = get(&app, &t.id, &token, &vid);
    assert_eq!(v.status, 200);
    assert_eq!(v.json()["legal_hold"], true);
    assert_eq!(v.json()["name"], "Harold Held");
    // A member cannot lift it either.
    let r = put_hold(&app, &t.id, &token, &vid, &json!({ "active": false }));
    assert_eq!(r.problem(403), "forbidden");
    assert_eq!(erase(&app, &t.id, &token, &vid).problem(409), "legal_hold");

    // Lifted: erasure goes through.
    let r = put_hold(
        &app,
        &t.id,
        &t.admin_token,
        &vid,
        &json!({ "active": false }),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["legal_hold"], false);
    let r = erase(&app, &t.id, &token, &vid);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(get(&app, &t.id, &token, &vid).problem(404), "not_found");
    assert_eq!(
        count_events(
            &app,
            &t.id,
            &["visitor.legal_hold.set", "visitor.legal_hold.lift"]
        ),
        2
    );
});

// ---------------------------------------------------------------------------------------------
// 8. Every record released with PII has exactly one audit event.
// ---------------------------------------------------------------------------------------------

const DISCLOSURES: [&str; 3] = ["visitor.read", "visitor.lookup", "visitor.export"];

e2e!(every_disclosed_record_is_audited_once, |app| {
    let t = app.new_tenant("Counting shop");
    let (_, token) = member(&app, &t);
    let twins = format!("twins-{}@example.com", unique());
    let v1 = id_of(&create(
        &app,
        &t.id,
        &token,
        &json!({ "name": "Twin One", "email": twins }),
    ));
    let _v2 = id_of(&create(
        &app,
        &t.id,
        &token,
        &json!({ "name": "Twin Two", "email": twins.to_uppercase() }),
    ));
    let v3 = id_of(&create(
        &app,
        &t.id,
        &token,
        &json!({ "name": "Solo", "phone": "+33612345678" }),
    ));
    assert_eq!(count_events(&app, &t.id, &DISCLOSURES), 0);

    // Metadata-only list: no PII out, no read events.
    let r = app.get(&visitors_path(&t.id), Some(&token));
    assert_eq!(r.status, 200, "{}", r.text);
    let items = r.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 3);
    for item in &items {
        for f in ["name", "email", "phone", "address", "attributes"] {
            assert!(item.get(f).is_none(), "a plain list carries no {f}: {item}");
        }
        assert!(item["id"].is_string() && item["status"] == "active");
    }
    assert!(!r.text.contains("Twin") && !r.text.contains("twins-"));
    assert_eq!(count_events(&app, &t.id, &DISCLOSURES), 0);

    let mut released = 0;
    for vid in [&v1, &v3] {
        let r = get(&app, &t.id, &token, vid);
        assert_eq!(r.status, 200);
        released += 1;
    }
    let r = lookup_email(&app, &t.id, &token, &twins);
    let found = r.json()["items"].as_array().unwrap().len();
    assert_eq!(found, 2, "both twins");
    released += found;
    let r = app.get(
        &format!("{}?include=pii&limit=10", visitors_path(&t.id)),
        Some(&token),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let listed = r.json()["items"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|v| v["name"].is_string()), "PII included");
    released += listed.len();
    let r = export(&app, &t.id, &token, &v1);
    assert_eq!(r.status, 200);
    released += 1;
    assert_eq!(released, 8);

    assert_eq!(
        count_events(&app, &t.id, &DISCLOSURES),
        8,
        "one event per record released"
    );
    assert_eq!(count_events(&app, &t.id, &["visitor.read"]), 5);
    assert_eq!(count_events(&app, &t.id, &["visitor.lookup"]), 2);
    assert_eq!(count_events(&app, &t.id, &["visitor.export"]), 1);

    // Lookups that find nothing, and another plain list, record no disclosure.
    let r = lookup_email(&app, &t.id, &token, "nobody@example.com");
    assert_eq!(r.json()["items"], json!([]));
    let r = app.get(&format!("{}?limit=2", visitors_path(&t.id)), Some(&token));
    assert_eq!(r.status, 200);
    assert!(r.json()["items"][0].get("name").is_none());
    assert_eq!(count_events(&app, &t.id, &DISCLOSURES), 8);
    // Only `pii` may be included.
    let r = app.get(
        &format!("{}?include=all", visitors_path(&t.id)),
        Some(&token),
    );
    assert_eq!(r.problem(400), "invalid_include");
    assert_eq!(count_events(&app, &t.id, &DISCLOSURES), 8);
});

// ---------------------------------------------------------------------------------------------
// 9. Destroyed keys: the data is gone.
// ---------------------------------------------------------------------------------------------

e2e!(destroyed_keys_answer_gone, |app| {
    let t = app.new_tenant("Shredded shop");
    let other = app.new_tenant("Surviving shop");
    let (_, token) = member(&app, &t);
    let (_, other_token) = member(&app, &other);
    let vid = id_of(&create(
        &app,
        &t.id,
        &token,
        &json!({ "name": "Gone Gina", "email": "gina@example.com" }),
    ));
    let kept = id_of(&create(
        &app,
        &other.id,
        &other_token,
        &json!({ "name": "Kept Karl", "email": "gina@example.com" }),
    ));
    assert_eq!(get(&app, &t.id, &token, &vid).status, 200);

    let tid = t.id.clone();
    let now = app.state.clock.now().naive_utc();
    app.state
        .store
        .write_blocking(move |c| steward_store::keys::destroy(c, &tid, now))
        .expect("destroy keys");
    app.state.keys.forget(&t.id);

    assert_eq!(
        get(&app, &t.id, &token, &vid).problem(410),
        "tenant_keys_destroyed"
    );
    let r = app.post(
        &visitors_path(&t.id),
        Some(&token),
        &json!({ "name": "New" }),
    );
    assert_eq!(r.problem(410), "tenant_keys_destroyed");
    assert_eq!(
        lookup_email(&app, &t.id, &token, "gina@example.com").problem(410),
        "tenant_keys_destroyed"
    );
    assert_eq!(
        export(&app, &t.id, &token, &vid).problem(410),
        "tenant_keys_destroyed"
    );
    assert_eq!(
        app.get(
            &format!("{}?include=pii", visitors_path(&t.id)),
            Some(&token)
        )
        .problem(410),
        "tenant_keys_destroyed"
    );
    assert_eq!(
        patch(&app, &t.id, &token, &vid, &json!({ "name": "X" })).problem(410),
        "tenant_keys_destroyed"
    );
    assert_eq!(
        import(&app, &t.id, &token, vec![batch_item(1)]).problem(410),
        "tenant_keys_destroyed"
    );
    assert_eq!(visitor_rows(&app, &t.id), 1, "nothing was created");

    // The other tenant is unaffected.
    let r = get(&app, &other.id, &other_token, &kept);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["name"], "Kept Karl");
});

// ---------------------------------------------------------------------------------------------
// 11. Re-encryption after a key rotation.
// ---------------------------------------------------------------------------------------------

e2e!(rotation_reencrypts_every_visitor, |app| {
    let t = app.new_tenant("Rotating shop");
    let (_, token) = member(&app, &t);
    let mut originals = Vec::new();
    for i in 0..30 {
        let mut body = json!({
            "name": format!("Rotated {i}"),
            "email": format!("rotated-{i}@example.com"),
            "phone": format!("+4930{:07}", 1_000_000 + i),
            "address": { "line1": format!("{i} Hauptstraße"), "city": "Berlin", "country": "DE" },
            "attributes": { "n": i },
        });
        // A third without the optional fields: re-sealing keeps an absent field absent.
        if i % 3 == 0 {
            for f in ["phone", "address", "attributes"] {
                body.as_object_mut().unwrap().remove(f);
            }
        }
        let v = create(&app, &t.id, &token, &body);
        assert_eq!(v["key_version"], 1);
        originals.push((id_of(&v), v));
    }

    let r = app.request(
        Method::POST,
        &format!("/v1/tenants/{}/keys/rotate", t.id),
        Some(&t.admin_token),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let rotated = r.json();
    assert_eq!(rotated["version"], 2);
    let job_id = rotated["reencryption_job"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let job = app.wait_for_job(&t.id, &t.admin_token, &job_id);
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["done"], 30, "{job}");

    #[derive(diesel::QueryableByName)]
    struct Version {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        key_version: i64,
    }
    let versions = raw_load!(
        app,
        Version,
        format!(
            "SELECT key_version FROM visitors WHERE tenant_id = '{}'",
            sql_token(&t.id)
        )
    );
    assert_eq!(versions.len(), 30);
    assert!(
        versions.iter().all(|v| v.key_version == 2),
        "every row is sealed under version 2"
    );

    for (vid, original) in &originals {
        let r = get(&app, &t.id, &token, vid);
        assert_eq!(r.status, 200, "{}", r.text);
        let v = r.json();
        assert_eq!(v["key_version"], 2);
        for f in [
            "name",
            "email",
            "phone",
            "address",
            "attributes",
            "external_ref",
        ] {
            assert_eq!(v[f], original[f], "{vid} {f}");
        }
        // Still found through the blind index (the index key does not rotate).
        let found = lookup_email(&app, &t.id, &token, original["email"].as_str().unwrap());
        assert_eq!(found.json()["items"][0]["id"], vid.as_str());
    }
    // New writes use the new version.
    let v = create(&app, &t.id, &token, &json!({ "name": "After rotation" }));
    assert_eq!(v["key_version"], 2);
});

e2e!(
    bulk_requests_wait_for_a_place_and_point_requests_do_not,
    |app| {
        let t = app.new_tenant("Bulkhead shop");
        let (_, token) = member(&app, &t);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        // Every place among the bulk requests is taken.
        let held: Vec<_> = (0..app.config.max_bulk_requests)
            .map(|_| rt.block_on(app.state.bulk.enter()).unwrap())
            .collect();

        std::thread::scope(|s| {
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            let (app, t, token) = (&app, &t, &token);
            s.spawn(move || {
                let r = import(app, &t.id, token, vec![batch_item(1)]);
                done_tx.send(r.status).unwrap();
            });
            // The import waits its turn...
            assert!(
                done_rx
                    .recv_timeout(std::time::Duration::from_millis(500))
                    .is_err(),
                "an import ran although every bulk place was taken"
            );
            // ...while single-record requests and refusals go straight through.
            let created = app.post(
                &visitors_path(&t.id),
                Some(token),
                &json!({ "name": "Walk-in", "email": "walk-in@example.com" }),
            );
            assert_eq!(created.status, 201, "{}", created.text);
            let refused = import(app, &t.id, "not-a-token", vec![batch_item(2)]);
            assert_eq!(refused.status, 401);

            drop(held);
            let status = done_rx
                .recv_timeout(std::time::Duration::from_secs(30))
                .expect("the import ran once a place was free");
            assert_eq!(status, 201);
        });
        let found = app.get(
            &format!("{}?email=imported-1@example.com", visitors_path(&t.id)),
            Some(&token),
        );
        assert_eq!(found.json()["items"].as_array().unwrap().len(), 1);
    }
);

e2e!(
    reencryption_skips_rows_changed_meanwhile_and_walks_again,
    |app| {
        use steward_store::reencrypt::ReencryptTarget;
        use steward_visitors::reencrypt::VisitorReencryption;

        let t = app.new_tenant("Racing shop");
        let (_, token) = member(&app, &t);
        let ids: Vec<String> = (0..3)
        .map(|i| {
            let body = json!({ "name": format!("Racer {i}"), "email": format!("racer-{i}@example.com") });
            id_of(&create(&app, &t.id, &token, &body))
        })
        .collect();
        // A new data-key version, without the job: this test plays the job's two halves itself.
        let (store, keys, tid) = (
            app.state.store.clone(),
            app.state.keys.clone(),
            t.id.clone(),
        );
        let now = chrono::Utc::now().naive_utc();
        store
            .write_blocking({
                let (keys, tid) = (keys.clone(), tid.clone());
                move |c| steward_store::keys::rotate_data_key(c, keys.kek(), &tid, now)
            })
            .unwrap();
        let keyring = store.read_blocking(|c| keys.reload(c, &tid)).unwrap();
        let target = VisitorReencryption;
        assert_eq!(
            store
                .read_blocking(|c| target.remaining(c, &keyring))
                .unwrap(),
            3
        );

        // Re-sealed off the writer; before the write lands, one visitor is rectified (sealed anew
        // under the new version) and one erased.
        let batch = store
            .read_blocking(|c| target.prepare(c, &keyring, None, 500))
            .unwrap();
        assert_eq!(batch.examined(), 3);
        let patched = app.request(
            Method::PATCH,
            &format!("{}/{}", visitors_path(&t.id), ids[0]),
            Some(&token),
            Some(&json!({ "name": "Racer renamed" })),
        );
        assert_eq!(patched.status, 200, "{}", patched.text);
        let erased = app.request(
            Method::DELETE,
            &format!("{}/{}", visitors_path(&t.id), ids[1]),
            Some(&token),
            None,
        );
        assert_eq!(erased.status, 200, "{}", erased.text);
        let written = store.write_blocking(move |c| batch.apply(c)).unwrap();
        assert_eq!(written, 1, "only the untouched visitor is written");

        // The rectified value survives, the erased visitor stays erased, nothing is left behind.
        assert_eq!(
            store
                .read_blocking(|c| target.remaining(c, &keyring))
                .unwrap(),
            0
        );
        let v = app.get(
            &format!("{}/{}", visitors_path(&t.id), ids[0]),
            Some(&token),
        );
        assert_eq!(v.json()["name"], "Racer renamed");
        let gone = app.get(
            &format!("{}/{}", visitors_path(&t.id), ids[1]),
            Some(&token),
        );
        assert_eq!(gone.status, 404);
        let v = app.get(
            &format!("{}/{}", visitors_path(&t.id), ids[2]),
            Some(&token),
        );
        assert_eq!(v.json()["name"], "Racer 2");
        assert_eq!(v.json()["key_version"], 2);
    }
);
