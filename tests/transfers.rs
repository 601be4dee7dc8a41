//! End-to-end: subprocessors and onward transfers — registry, objection, authorization,
//! scoped pulls, the ledger, the visitor's recipients, erasure notices.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use serde_json::{json, Value};

fn subprocessor(app: &common::TestApp, name: &str) -> (String, String) {
    let admin = app.platform_token();
    let r = app.post(
        "/v1/subprocessors",
        Some(&admin),
        &json!({"name": name, "legal_name": format!("{name} GmbH"), "country": "DE",
                "contact": "privacy@carrier.example", "transfer_mechanism": "adequacy",
                "dpa_reference": "DPA-2026-01"}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let sid = r.json()["id"].as_str().unwrap().to_string();
    let r = app.post(
        &format!("/v1/subprocessors/{sid}/credentials"),
        Some(&admin),
        &json!({}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let c = r.json();
    let r = app.post(
        "/v1/auth/token",
        None,
        &json!({"client_id": c["client_id"], "client_secret": c["client_secret"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    (sid, r.json()["access_token"].as_str().unwrap().to_string())
}

e2e!(a_carrier_sees_exactly_what_it_was_authorized_for, |app| {
    let t = app.new_tenant("Ships Things");
    let other = app.new_tenant("Other Shop");
    let tok = Some(t.admin_token.as_str());
    let base = format!("/v1/tenants/{}", t.id);
    let (carrier, carrier_token) = subprocessor(&app, "Carrier");
    let (_, mailer_token) = subprocessor(&app, "Mailer");

    let r = app.post(
        &format!("{base}/visitors"),
        tok,
        &json!({"name": "Grace Hopper", "email": "grace@example.com", "phone": "+1 202 555 0100",
                "address": {"line1": "1 Navy Way", "city": "Arlington", "country": "US"},
                "attributes": {"tier": "gold"}}),
    );
    let vid = r.json()["id"].as_str().unwrap().to_string();
    app.post(
        &format!("/v1/tenants/{}/visitors", other.id),
        Some(&other.admin_token),
        &json!({"name": "Not yours"}),
    );

    let r = app.post(
        &format!("{base}/subprocessor-authorizations"),
        tok,
        &json!({"subprocessor_id": carrier, "purposes": ["fulfillment"], "fields": ["name", "address"]}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let aid = r.json()["id"].as_str().unwrap().to_string();

    let pull = |token: &str, tid: &str| {
        app.get(
            &format!("/v1/subprocessor/tenants/{tid}/visitors?purpose=fulfillment"),
            Some(token),
        )
    };
    let r = pull(&carrier_token, &t.id);
    assert_eq!(r.status, 200, "{}", r.text);
    let page = r.json();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let item = items[0].as_object().unwrap();
    assert_eq!(item["name"], "Grace Hopper");
    assert_eq!(item["address"]["city"], "Arlington");
    for absent in ["email", "phone", "attributes"] {
        assert!(!item.contains_key(absent), "{absent} leaked: {item:?}");
    }
    let transfer_id = page["transfer_id"].as_str().unwrap().to_string();

    // Single record too.
    let r = app.get(
        &format!(
            "/v1/subprocessor/tenants/{}/visitors/{vid}?purpose=fulfillment",
            t.id
        ),
        Some(&carrier_token),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // Another purpose, another subprocessor, another tenant: refused.
    let r = app.get(
        &format!(
            "/v1/subprocessor/tenants/{}/visitors?purpose=marketing",
            t.id
        ),
        Some(&carrier_token),
    );
    assert_eq!(r.problem(403), "not_authorized");
    assert_eq!(pull(&mailer_token, &t.id).problem(403), "not_authorized");
    assert_eq!(pull(&carrier_token, &other.id).status, 403);
    // Subprocessors cannot use tenant routes.
    assert_eq!(
        app.get(&format!("{base}/visitors/{vid}"), Some(&carrier_token))
            .status,
        403
    );

    // The ledger and the visitor's export show the pull with its fields.
    let ledger = app
        .get(&format!("{base}/transfers?visitor={vid}"), tok)
        .json();
    let entries = ledger["items"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{ledger}");
    assert!(entries.iter().any(|e| e["id"] == transfer_id.as_str()));
    let fields: Vec<&str> = entries[0]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(fields, ["address", "name"]);
    let export = app
        .get(&format!("{base}/visitors/{vid}/export"), tok)
        .json();
    let recipients = export["recipients"].as_array().unwrap();
    assert_eq!(recipients.len(), 1, "{export}");
    assert_eq!(recipients[0]["subprocessor_id"], carrier.as_str());
    // An auditor reads the ledger but no PII.
    let (_, auditor) = app.tenant_user(&t, steward_core::Role::TenantAuditor);
    assert_eq!(
        app.get(&format!("{base}/transfers"), Some(&auditor)).status,
        200
    );
    assert_eq!(
        app.get(&format!("{base}/visitors/{vid}"), Some(&auditor))
            .status,
        403
    );

    // Erasure raises a notice the carrier sees and acknowledges; the tenant sees the receipt.
    let r = app.request(
        reqwest::Method::DELETE,
        &format!("{base}/visitors/{vid}"),
        tok,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let notices = app
        .get("/v1/subprocessor/erasure-notices", Some(&carrier_token))
        .json();
    let notice: &Value = &notices["items"][0];
    assert_eq!(notice["visitor_id"], vid.as_str());
    let nid = notice["id"].as_str().unwrap().to_string();
    assert!(app
        .get("/v1/subprocessor/erasure-notices", Some(&mailer_token))
        .json()["items"]
        .as_array()
        .unwrap()
        .is_empty());
    let r = app.post(
        &format!("/v1/subprocessor/erasure-notices/{nid}/ack"),
        Some(&carrier_token),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let tenant_view = app.get(&format!("{base}/erasure-notices"), tok).json();
    assert_eq!(
        tenant_view["items"][0]["state"], "acknowledged",
        "{tenant_view}"
    );

    // Revocation is effective at once.
    let r = app.request(
        reqwest::Method::DELETE,
        &format!("{base}/subprocessor-authorizations/{aid}"),
        tok,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(pull(&carrier_token, &t.id).problem(403), "not_authorized");
});

e2e!(an_objection_blocks_authorizing_the_subprocessor, |app| {
    let t = app.new_tenant("Careful Shop");
    let tok = Some(t.admin_token.as_str());
    let base = format!("/v1/tenants/{}", t.id);
    let (sid, _) = subprocessor(&app, "Newcomer");
    let notices = app.get(&format!("{base}/notices"), tok).json();
    let notice = notices["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["subject_id"] == sid.as_str())
        .expect("a notice about the new subprocessor")
        .clone();
    let nid = notice["id"].as_str().unwrap();
    let r = app.post(&format!("{base}/notices/{nid}/object"), tok, &json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app.post(
        &format!("{base}/subprocessor-authorizations"),
        tok,
        &json!({"subprocessor_id": sid, "purposes": ["fulfillment"], "fields": ["name"]}),
    );
    assert_eq!(r.problem(409), "subprocessor_objected");
});
