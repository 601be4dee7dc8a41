//! End-to-end: offboarding — freeze, streamed export, confirm (keys destroyed, rows deleted,
//! certificate in the platform chain).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use serde_json::json;

e2e!(offboarding_exports_then_shreds, |app| {
    let t = app.new_tenant("Leaving Shop");
    let tok = Some(t.admin_token.as_str());
    let base = format!("/v1/tenants/{}", t.id);
    let mut ids = vec![];
    for i in 0..7 {
        let r = app.post(
            &format!("{base}/visitors"),
            tok,
            &json!({"name": format!("Leaver {i}"), "email": format!("leaver{i}@example.com")}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        ids.push(r.json()["id"].as_str().unwrap().to_string());
    }
    let vid = ids[0].clone();
    let r = app.request(
        reqwest::Method::PUT,
        &format!("{base}/visitors/{vid}/consents/marketing_email"),
        tok,
        Some(&json!({"status": "granted", "source": "web_form"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);

    // Export before start: refused.
    let r = app.get(&format!("{base}/offboarding/export"), tok);
    assert_eq!(r.problem(409), "offboarding_not_started");
    // Confirm before start: refused.
    let r = app.post(
        &format!("{base}/offboarding/confirm"),
        tok,
        &json!({"confirm": t.id}),
    );
    assert_eq!(r.problem(409), "offboarding_not_started");

    let r = app.request(
        reqwest::Method::POST,
        &format!("{base}/offboarding"),
        tok,
        None,
    );
    assert_eq!(r.status, 202, "{}", r.text);

    // Frozen: no new data.
    let r = app.post(&format!("{base}/visitors"), tok, &json!({"name": "Late"}));
    assert_eq!(r.problem(409), "tenant_offboarding");

    // Confirm without the export: refused unless waived.
    let r = app.post(
        &format!("{base}/offboarding/confirm"),
        tok,
        &json!({"confirm": t.id}),
    );
    assert_eq!(r.problem(409), "export_not_taken");

    let export = app.get(&format!("{base}/offboarding/export"), tok);
    assert_eq!(export.status, 200);
    assert!(export.content_type().starts_with("application/x-ndjson"));
    let lines: Vec<serde_json::Value> = export
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 7);
    let first = lines.iter().find(|l| l["id"] == vid.as_str()).unwrap();
    assert_eq!(first["name"], "Leaver 0");
    assert_eq!(first["consents"][0]["purpose"], "marketing_email");

    // A platform admin may run offboarding but not download the tenant's data.
    let r = app.get(
        &format!("{base}/offboarding/export"),
        Some(&app.platform_token()),
    );
    assert_eq!(r.problem(403), "forbidden");

    let r = app.post(
        &format!("{base}/offboarding/confirm"),
        tok,
        &json!({"confirm": "nope"}),
    );
    assert_eq!(r.problem(400), "confirmation_mismatch");
    let r = app.post(
        &format!("{base}/offboarding/confirm"),
        tok,
        &json!({"confirm": t.id}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let cert = r.json();
    assert_eq!(cert["visitors_deleted"], 7);
    assert_eq!(cert["consents_deleted"], 1);
    assert_eq!(cert["keys_destroyed"], 2);
    assert_eq!(cert["exported_records"], 7);
    let hash = cert["hash"].as_str().unwrap().to_string();
    assert_eq!(hash.len(), 64);

    // The tenant's admin is disabled; the platform sees the tenant deleted with its keys gone
    // and the certificate in the platform chain.
    let r = app.get("/v1/me", tok);
    assert_eq!(r.status, 401);
    let admin = app.platform_token();
    let tenant = app.get(&base, Some(&admin)).json();
    assert_eq!(tenant["status"], "deleted");
    assert_eq!(tenant["keys_destroyed"], true);
    let (_, officer) = app.staff(steward_core::Role::SecurityOfficer);
    let platform = app
        .get("/v1/audit/platform?action=tenant.deleted", Some(&officer))
        .json();
    let items = platform["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["detail"], hash.as_str());

    // Nothing of it can be read, not even with the master key: no wrapped keys remain.
    let err = app
        .state
        .store
        .read_blocking({
            let keys = app.state.keys.clone();
            let tid = t.id.clone();
            move |c| keys.reload(c, &tid).map(|_| ())
        })
        .unwrap_err();
    assert!(matches!(err, steward_core::Error::Gone { .. }), "{err:?}");
    let remaining = app.state.store.read_blocking({
        let tid = t.id.clone();
        move |c| steward_store::keys::rows(c, &tid)
    });
    assert!(remaining.unwrap().is_empty());
});
