//! End-to-end: justified, time-boxed staff access (Access Transparency + Lockbox).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::Duration;
use serde_json::json;
use steward_core::Role;

fn read_under(
    app: &common::TestApp,
    path: &str,
    token: &str,
    grant: Option<&str>,
) -> common::Response {
    let mut rb = app.client.get(app.url(path)).bearer_auth(token);
    if let Some(g) = grant {
        rb = rb.header("Steward-Access-Grant", g);
    }
    app.raw(rb)
}

e2e!(support_reads_only_under_an_approved_grant, |app| {
    let t = app.new_tenant("Lockbox Shop");
    let tok = Some(t.admin_token.as_str());
    let base = format!("/v1/tenants/{}", t.id);
    let mk = |name: &str| {
        let r = app.post(
            &format!("{base}/visitors"),
            tok,
            &json!({"name": name, "email": format!("{name}@example.com")}),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        r.json()["id"].as_str().unwrap().to_string()
    };
    let (v1, v2) = (mk("alice"), mk("bob"));
    let support_email = format!("support-{}@platform.test", common::unique());
    app.create_staff(&support_email, Role::SupportEngineer);
    let mut support = app.login(&support_email, common::TEST_PASSWORD);
    let (_, other_support) = app.staff(Role::SupportEngineer);
    let v1_path = format!("{base}/visitors/{v1}");

    // No standing access: without a grant, 403.
    let r = read_under(&app, &v1_path, &support, None);
    assert_eq!(r.problem(403), "grant_required");
    // Staff cannot write tenant data at all.
    let r = app.post(
        &format!("{base}/visitors"),
        Some(&support),
        &json!({"name": "x"}),
    );
    assert_eq!(r.problem(403), "forbidden");

    let request = json!({
        "justification": "customer_initiated_support",
        "ticket": "T-1001",
        "reason": "customer cannot log in",
        "scope": {"visitor_ids": [v1]},
        "duration_minutes": 60
    });
    let r = app.post(&format!("{base}/access-requests"), Some(&support), &request);
    assert_eq!(r.status, 201, "{}", r.text);
    let first = r.json()["id"].as_str().unwrap().to_string();
    // The tenant is notified.
    let notices = app.get(&format!("{base}/notices"), tok).json();
    assert!(notices["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["subject_id"] == first.as_str()));

    // A pending request grants nothing; the tenant denies it.
    let r = read_under(&app, &v1_path, &support, Some(&first));
    assert_eq!(r.status, 403, "{}", r.text);
    let r = app.post(
        &format!("{base}/access-requests/{first}/deny"),
        tok,
        &json!({"comment": "not needed"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = read_under(&app, &v1_path, &support, Some(&first));
    assert_eq!(r.status, 403);

    // Asked again and approved: the read works and is audited with the grant.
    let r = app.post(&format!("{base}/access-requests"), Some(&support), &request);
    let grant = r.json()["id"].as_str().unwrap().to_string();
    // Staff cannot approve for the tenant.
    let r = app.post(
        &format!("{base}/access-requests/{grant}/approve"),
        Some(&support),
        &json!({}),
    );
    assert_eq!(r.problem(403), "forbidden");
    let r = app.post(
        &format!("{base}/access-requests/{grant}/approve"),
        tok,
        &json!({"comment": "ok"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = read_under(&app, &v1_path, &support, Some(&grant));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["name"], "alice");

    // Only the requester may use it, and only within its scope.
    let r = read_under(&app, &v1_path, &other_support, Some(&grant));
    assert_eq!(r.problem(403), "grant_not_yours");
    let r = read_under(
        &app,
        &format!("{base}/visitors/{v2}"),
        &support,
        Some(&grant),
    );
    assert_eq!(r.problem(403), "outside_grant_scope");

    // The tenant sees it in its Access Transparency view.
    let log = app.get(&format!("{base}/staff-access"), tok).json();
    let items = log["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{log}");
    assert_eq!(items[0]["grant_id"], grant.as_str());
    assert_eq!(items[0]["ticket"], "T-1001");
    assert_eq!(items[0]["actor_role"], "support_engineer");
    assert_eq!(items[0]["target_id"], v1.as_str());
    assert!(items[0]["approver_id"].is_string());

    // After the window: refused (a fresh login: access tokens live 15 minutes).
    app.clock.advance(Duration::minutes(61));
    support = app.login(&support_email, common::TEST_PASSWORD);
    let tok_owned = app.login(&t.admin_email, common::TEST_PASSWORD);
    let tok = Some(tok_owned.as_str());
    let r = read_under(&app, &v1_path, &support, Some(&grant));
    assert_eq!(r.problem(403), "grant_expired");

    // A fresh grant, revoked by the tenant: refused at once.
    let r = app.post(&format!("{base}/access-requests"), Some(&support), &request);
    let third = r.json()["id"].as_str().unwrap().to_string();
    app.post(
        &format!("{base}/access-requests/{third}/approve"),
        tok,
        &json!({}),
    );
    assert_eq!(
        read_under(&app, &v1_path, &support, Some(&third)).status,
        200
    );
    let r = app.post(
        &format!("{base}/access-requests/{third}/revoke"),
        tok,
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = read_under(&app, &v1_path, &support, Some(&third));
    assert_eq!(r.problem(403), "grant_revoked");

    // A request unanswered for 48 h expires.
    let r = app.post(&format!("{base}/access-requests"), Some(&support), &request);
    let stale = r.json()["id"].as_str().unwrap().to_string();
    app.clock.advance(Duration::hours(49));
    let tok_owned = app.login(&t.admin_email, common::TEST_PASSWORD);
    let tok = Some(tok_owned.as_str());
    let r = app.post(
        &format!("{base}/access-requests/{stale}/approve"),
        tok,
        &json!({}),
    );
    assert_eq!(r.problem(409), "request_expired");

    // Every staff read is in the tenant's hash chain, which still verifies.
    let verify = app.get(&format!("{base}/audit/verify"), tok).json();
    assert_eq!(verify["ok"], true, "{verify}");
});

e2e!(
    break_glass_needs_a_second_staff_member_and_tells_the_tenant,
    |app| {
        let t = app.new_tenant("Glass Shop");
        let tok = Some(t.admin_token.as_str());
        let base = format!("/v1/tenants/{}", t.id);
        let r = app.post(&format!("{base}/visitors"), tok, &json!({"name": "carol"}));
        let vid = r.json()["id"].as_str().unwrap().to_string();
        let (_, officer) = app.staff(Role::SecurityOfficer);
        let (_, second) = app.staff(Role::SecurityOfficer);
        let (_, support) = app.staff(Role::SupportEngineer);

        let mut request = json!({
            "justification": "security_investigation",
            "ticket": "SEC-7",
            "reason": "suspected account takeover",
            "scope": {"all": true},
            "break_glass": true
        });
        // Support engineers cannot break glass.
        let r = app.post(&format!("{base}/access-requests"), Some(&support), &request);
        assert_eq!(r.problem(400), "break_glass_not_allowed");
        request["justification"] = json!("customer_initiated_support");
        let r = app.post(&format!("{base}/access-requests"), Some(&officer), &request);
        assert_eq!(r.problem(400), "break_glass_not_allowed");
        request["justification"] = json!("security_investigation");
        let r = app.post(&format!("{base}/access-requests"), Some(&officer), &request);
        assert_eq!(r.status, 201, "{}", r.text);
        let rid = r.json()["id"].as_str().unwrap().to_string();

        // Two-person rule.
        let r = app.post(
            &format!("{base}/access-requests/{rid}/break-glass-approve"),
            Some(&officer),
            &json!({}),
        );
        assert_eq!(r.problem(403), "two_person_rule");
        let r = app.post(
            &format!("{base}/access-requests/{rid}/break-glass-approve"),
            Some(&second),
            &json!({}),
        );
        assert_eq!(r.status, 200, "{}", r.text);

        let r = read_under(
            &app,
            &format!("{base}/visitors/{vid}"),
            &officer,
            Some(&rid),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        // The tenant was told at once, flagged, and sees the access marked break-glass.
        let notices = app.get(&format!("{base}/notices"), tok).json();
        assert!(
            notices["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["flagged"] == true && n["kind"] == "staff_access.break_glass"),
            "{notices}"
        );
        let log = app.get(&format!("{base}/staff-access"), tok).json();
        assert_eq!(log["items"][0]["break_glass"], true, "{log}");
    }
);

e2e!(
    security_officer_reads_a_tenant_log_only_with_a_recorded_justification,
    |app| {
        let t = app.new_tenant("Audited Shop");
        let base = format!("/v1/tenants/{}", t.id);
        let (_, officer) = app.staff(Role::SecurityOfficer);
        let r = app.get(&format!("{base}/audit"), Some(&officer));
        assert_eq!(r.problem(400), "justification_required");
        let r = app.get(
            &format!("{base}/audit?justification=incident-42"),
            Some(&officer),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        let log = app
            .get(
                &format!("{base}/audit?action=audit.read"),
                Some(&t.admin_token),
            )
            .json();
        let items = log["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["justification"], "incident-42");
        // A support engineer may not read it at all.
        let (_, support) = app.staff(Role::SupportEngineer);
        let r = app.get(&format!("{base}/audit"), Some(&support));
        assert_eq!(r.status, 403);
    }
);
