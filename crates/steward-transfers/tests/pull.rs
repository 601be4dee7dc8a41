//! The subprocessor pull: exactly the authorized fields, nothing after revocation or expiry,
//! nothing of another tenant, nothing of visitors without the required consent — and every
//! pull in the ledger and the audit log before the data is returned.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::Duration;
use serde_json::json;
use steward_audit::EventFilter;
use steward_store::pagination::PageRequest;
use steward_transfers::ledger::{self, TransferFilter};
use steward_transfers::{authorizations, pull_one};
use steward_visitors::Access;

use common::*;

fn transfer_events(env: &Env, tenant: &str) -> Vec<steward_audit::AuditEvent> {
    let filter = EventFilter {
        action: Some("transfer.pull".into()),
        ..Default::default()
    };
    env.read(|c| steward_audit::list(c, tenant, &filter, None, 500))
        .0
}

both!(
    authorized_pull_returns_exactly_the_authorized_fields,
    |env| {
        let tenant = env.tenant();
        let ship = env.subprocessor("ShipFast");
        let v1 = env.visitor(&tenant);
        let v2 = env.visitor(&tenant);
        let auth = env
            .authorize(
                &tenant,
                &ship,
                &["fulfillment"],
                &["name", "address"],
                None,
                None,
            )
            .expect("authorize");
        let before = steward_visitors::disclosed_count();

        let page = env
            .pull(&ship, &tenant, "fulfillment", None, 100)
            .expect("pull");
        assert_eq!(page.items.len(), 2);
        assert!(page.next_cursor.is_none());
        for item in &values(&page.items) {
            assert_eq!(keys_of(item), ["address", "id", "name", "updated_at"]);
            assert_eq!(item["name"], "Ada Lovelace");
            assert_eq!(item["address"]["country"], "GB");
            let text = item.to_string();
            assert!(!text.contains("ada@example.com"));
            assert!(!text.contains("2071234567"));
            assert!(!text.contains("gold"));
        }
        let mut ids: Vec<String> = values(&page.items)
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        let mut want = vec![v1.clone(), v2.clone()];
        want.sort();
        assert_eq!(ids, want);

        // One ledger row, written with the right fields, ids and count.
        let t = env.read(|c| ledger::get(c, &tenant, &page.transfer_id));
        assert_eq!(t.subprocessor_id, ship);
        assert_eq!(t.authorization_id, auth.id);
        assert_eq!(t.purpose, "fulfillment");
        assert_eq!(t.fields, "address,name");
        assert_eq!(t.record_count, 2);
        assert_eq!(t.request_id.as_deref(), Some("req_test"));
        let mut listed: Vec<&str> = t.visitor_ids.split(',').collect();
        listed.sort();
        assert_eq!(listed, want.iter().map(String::as_str).collect::<Vec<_>>());

        // One audit event per visitor, by the subprocessor, naming fields, purpose and grant.
        let events = transfer_events(&env, &tenant);
        assert_eq!(events.len(), 2);
        for e in &events {
            assert_eq!(e.actor.kind, "subprocessor");
            assert_eq!(e.actor.id, ship);
            assert_eq!(e.fields, ["address", "name"]);
            assert_eq!(e.purpose.as_deref(), Some("fulfillment"));
            assert_eq!(e.grant_id.as_deref(), Some(auth.id.as_str()));
            assert_eq!(e.request_id.as_deref(), Some("req_test"));
            assert!(want.contains(e.target.id.as_ref().unwrap()));
        }
        assert!(steward_visitors::disclosed_count() >= before + 2);

        // The single-record pull follows the same rules and is a transfer of its own.
        let one = env
            .rt
            .block_on(pull_one(
                &env.store,
                &env.keys,
                env.clock.as_ref(),
                &sub_principal(&ship),
                &tenant,
                "fulfillment",
                &v1,
                None,
            ))
            .expect("pull one");
        assert_eq!(
            keys_of(&value(&one.item)),
            ["address", "id", "name", "updated_at"]
        );
        assert_ne!(one.transfer_id, page.transfer_id);
        let t1 = env.read(|c| ledger::get(c, &tenant, &one.transfer_id));
        assert_eq!(t1.visitor_ids, v1);
        assert_eq!(t1.record_count, 1);
        assert!(
            t1.request_id.is_some(),
            "a request id is generated when none is given"
        );
        assert_eq!(transfer_events(&env, &tenant).len(), 3);

        // The audit chain still verifies.
        let report = env.read(|c| steward_audit::verify(c, &tenant, None, &mut |_| {}));
        assert!(report.ok, "{report:?}");
    }
);

both!(address_country_only_returns_only_the_country, |env| {
    let tenant = env.tenant();
    let sub = env.subprocessor("TaxCalc");
    env.visitor(&tenant);
    env.authorize(
        &tenant,
        &sub,
        &["tax"],
        &["address.country", "attributes.tier"],
        None,
        None,
    )
    .expect("authorize");
    let page = env.pull(&sub, &tenant, "tax", None, 10).expect("pull");
    assert_eq!(page.items.len(), 1);
    let item = &value(&page.items[0]);
    assert_eq!(keys_of(item), ["address", "attributes", "id", "updated_at"]);
    assert_eq!(item["address"], json!({"country": "GB"}));
    assert_eq!(item["attributes"], json!({"tier": "gold"}));
    let events = transfer_events(&env, &tenant);
    assert_eq!(events[0].fields, ["address.country", "attributes.tier"]);
    let t = env.read(|c| ledger::get(c, &tenant, &page.transfer_id));
    assert_eq!(t.fields, "address.country,attributes.tier");
});

both!(
    unauthorized_subprocessor_gets_403_and_nothing_is_recorded,
    |env| {
        let tenant = env.tenant();
        let ship = env.subprocessor("ShipFast");
        let other = env.subprocessor("Snoop");
        env.visitor(&tenant);
        env.authorize(
            &tenant,
            &ship,
            &["fulfillment"],
            &["name", "address"],
            None,
            None,
        )
        .expect("authorize");

        let e = env
            .pull(&other, &tenant, "fulfillment", None, 10)
            .unwrap_err();
        assert_eq!(code(&e), ("denied", "not_authorized"));
        // Authorized, but not for this purpose.
        let e = env.pull(&ship, &tenant, "marketing", None, 10).unwrap_err();
        assert_eq!(code(&e), ("denied", "not_authorized"));
        // Unknown or malformed tenant: 404.
        let unknown = steward_core::Id::Tenant.generate();
        assert_eq!(
            code(
                &env.pull(&ship, &unknown, "fulfillment", None, 10)
                    .unwrap_err()
            )
            .0,
            "not_found"
        );
        assert_eq!(
            code(
                &env.pull(&ship, "ten_nope", "fulfillment", None, 10)
                    .unwrap_err()
            )
            .0,
            "not_found"
        );
        // Not a subprocessor principal at all.
        let user = tenant_user(steward_core::Role::TenantAdmin, &tenant);
        let e = env
            .rt
            .block_on(steward_transfers::pull_page(
                &env.store,
                &env.keys,
                env.clock.as_ref(),
                &user,
                &tenant,
                "fulfillment",
                None,
                None,
                10,
                None,
            ))
            .unwrap_err();
        assert_eq!(code(&e).0, "forbidden");
        // Bad input.
        assert_eq!(
            code(
                &env.pull(&ship, &tenant, "Fulfil ment", None, 10)
                    .unwrap_err()
            ),
            ("invalid", "invalid_purpose")
        );
        assert_eq!(
            code(
                &env.pull(&ship, &tenant, "fulfillment", None, 0)
                    .unwrap_err()
            ),
            ("invalid", "invalid_limit")
        );
        assert_eq!(
            code(
                &env.pull(&ship, &tenant, "fulfillment", None, 1001)
                    .unwrap_err()
            ),
            ("invalid", "invalid_limit")
        );
        assert_eq!(
            code(
                &env.pull(&ship, &tenant, "fulfillment", Some("x".into()), 10)
                    .unwrap_err()
            ),
            ("invalid", "invalid_cursor")
        );

        let page = env.read(|c| {
            ledger::list(
                c,
                &tenant,
                &TransferFilter::default(),
                &PageRequest {
                    limit: 50,
                    after: None,
                },
            )
        });
        assert!(page.items.is_empty(), "refused pulls are not transfers");
        assert!(transfer_events(&env, &tenant).is_empty());
    }
);

both!(revocation_and_expiry_take_effect_at_once, |env| {
    let tenant = env.tenant();
    let ship = env.subprocessor("ShipFast");
    env.visitor(&tenant);
    let auth = env
        .authorize(
            &tenant,
            &ship,
            &["fulfillment"],
            &["name", "address"],
            None,
            None,
        )
        .expect("authorize");
    env.pull(&ship, &tenant, "fulfillment", None, 10)
        .expect("pull before revocation");

    let (tid, aid, by, now) = (
        tenant.clone(),
        auth.id.clone(),
        tenant_user(steward_core::Role::TenantAdmin, &tenant),
        env.now(),
    );
    let revoked = env
        .write(move |c| authorizations::revoke(c, &tid, &aid, &by, now))
        .expect("revoke");
    assert!(revoked.revoked_at.is_some());
    let e = env
        .pull(&ship, &tenant, "fulfillment", None, 10)
        .unwrap_err();
    assert_eq!(code(&e), ("denied", "not_authorized"));

    // Revoking again changes nothing; another tenant's admin cannot see it.
    let (tid, aid, by, now) = (
        tenant.clone(),
        auth.id.clone(),
        tenant_user(steward_core::Role::TenantAdmin, &tenant),
        env.now(),
    );
    let again = env
        .write(move |c| authorizations::revoke(c, &tid, &aid, &by, now))
        .expect("revoke again");
    assert_eq!(again.revoked_at, revoked.revoked_at);
    let other = env.tenant();
    let (aid, by, now) = (
        auth.id.clone(),
        tenant_user(steward_core::Role::TenantAdmin, &other),
        env.now(),
    );
    let e = env
        .write(move |c| authorizations::revoke(c, &other, &aid, &by, now))
        .unwrap_err();
    assert_eq!(code(&e).0, "not_found");

    // A new authorization with an expiry: good until the clock passes it.
    let expires = env.clock.now() + Duration::days(7);
    env.authorize(
        &tenant,
        &ship,
        &["fulfillment"],
        &["name"],
        None,
        Some(expires),
    )
    .expect("authorize again");
    env.pull(&ship, &tenant, "fulfillment", None, 10)
        .expect("pull before expiry");
    env.advance_days(8);
    let e = env
        .pull(&ship, &tenant, "fulfillment", None, 10)
        .unwrap_err();
    assert_eq!(code(&e), ("denied", "not_authorized"));

    let events = {
        let filter = EventFilter {
            action: Some("subprocessor_authorization.revoke".into()),
            ..Default::default()
        };
        env.read(|c| steward_audit::list(c, &tenant, &filter, None, 50))
            .0
    };
    assert_eq!(events.len(), 1, "one revocation, audited once");
});

both!(a_subprocessor_never_sees_another_tenants_visitors, |env| {
    let a = env.tenant();
    let b = env.tenant();
    let ship = env.subprocessor("ShipFast");
    let va = env.visitor(&a);
    let vb = env.visitor(&b);
    env.authorize(&a, &ship, &["fulfillment"], &["name"], None, None)
        .expect("authorize a");

    let (items, _) = env.pull_all(&ship, &a, "fulfillment", 10);
    let ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [va.as_str()]);
    // Not authorized by B: 403, even with a valid visitor id of B.
    assert_eq!(
        code(&env.pull(&ship, &b, "fulfillment", None, 10).unwrap_err()),
        ("denied", "not_authorized")
    );
    // B's visitor through A's authorization: not found.
    let e = env
        .rt
        .block_on(pull_one(
            &env.store,
            &env.keys,
            env.clock.as_ref(),
            &sub_principal(&ship),
            &a,
            "fulfillment",
            &vb,
            None,
        ))
        .unwrap_err();
    assert_eq!(code(&e).0, "not_found");

    // Authorized by both, each pull sees only its tenant.
    env.authorize(&b, &ship, &["fulfillment"], &["name"], None, None)
        .expect("authorize b");
    let (items, _) = env.pull_all(&ship, &b, "fulfillment", 10);
    let ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [vb.as_str()]);
});

both!(
    visitors_who_withdrew_the_required_consent_are_skipped,
    |env| {
        let tenant = env.tenant();
        let mail = env.subprocessor("MailCo");
        let keep1 = env.visitor(&tenant);
        let gone = env.visitor(&tenant);
        let keep2 = env.visitor(&tenant);
        let access = Access::of(
            &tenant_user(steward_core::Role::TenantMember, &tenant),
            None,
        );
        for (v, status) in [
            (&keep1, "granted"),
            (&gone, "granted"),
            (&gone, "withdrawn"),
        ] {
            env.rt
                .block_on(env.visitors.set_consent(
                    &tenant,
                    &access,
                    v,
                    "marketing_email",
                    status,
                    "web_form",
                ))
                .expect("consent");
        }
        env.authorize(
            &tenant,
            &mail,
            &["newsletter"],
            &["email", "name"],
            Some("marketing_email"),
            None,
        )
        .expect("authorize");

        let page = env
            .pull(&mail, &tenant, "newsletter", None, 100)
            .expect("pull");
        let mut ids: Vec<String> = values(&page.items)
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        let mut want = vec![keep1.clone(), keep2.clone()];
        want.sort();
        assert_eq!(ids, want);
        let t = env.read(|c| ledger::get(c, &tenant, &page.transfer_id));
        assert_eq!(t.record_count, 2);
        assert!(!t.visitor_ids.contains(&gone));
        let e = env
            .rt
            .block_on(pull_one(
                &env.store,
                &env.keys,
                env.clock.as_ref(),
                &sub_principal(&mail),
                &tenant,
                "newsletter",
                &gone,
                None,
            ))
            .unwrap_err();
        assert_eq!(code(&e).0, "not_found");

        // A later withdrawal by a visitor the subprocessor received raises a notice for it.
        env.rt
            .block_on(env.visitors.set_consent(
                &tenant,
                &access,
                &keep1,
                "marketing_email",
                "withdrawn",
                "web_form",
            ))
            .expect("withdraw");
        let (sub, now) = (mail.clone(), env.now());
        let notices = env.read(|c| {
            steward_transfers::erasure::list_for_subprocessor(
                c,
                &sub,
                &PageRequest {
                    limit: 50,
                    after: None,
                },
                false,
                now,
            )
        });
        assert_eq!(notices.items.len(), 1);
        assert_eq!(notices.items[0].visitor_id, keep1);
        assert_eq!(notices.items[0].reason, "consent_withdrawn");
        assert_eq!(notices.items[0].purpose.as_deref(), Some("marketing_email"));
        // And the next pull no longer includes that visitor.
        let page = env
            .pull(&mail, &tenant, "newsletter", None, 100)
            .expect("pull again");
        let ids: Vec<String> = values(&page.items)
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids, [keep2.as_str()]);
    }
);

both!(
    pages_walk_every_visitor_once_and_updated_since_filters,
    |env| {
        let tenant = env.tenant();
        let ship = env.subprocessor("ShipFast");
        let mut want: Vec<String> = (0..7).map(|_| env.visitor(&tenant)).collect();
        want.sort();
        env.authorize(&tenant, &ship, &["fulfillment"], &["name"], None, None)
            .expect("authorize");
        let (items, transfers) = env.pull_all(&ship, &tenant, "fulfillment", 3);
        let ids: Vec<String> = items
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids, want);
        assert_eq!(transfers.len(), 3);
        let counts: Vec<i64> = transfers
            .iter()
            .map(|t| env.read(|c| ledger::get(c, &tenant, t)).record_count)
            .collect();
        assert_eq!(counts, [3, 3, 1]);

        // Only visitors changed since a moment.
        env.advance_days(1);
        let since = env.now();
        let fresh = env.visitor(&tenant);
        let page = env
            .pull_since(&ship, &tenant, "fulfillment", Some(since), None, 100)
            .expect("pull since");
        let ids: Vec<String> = values(&page.items)
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids, [fresh.as_str()]);
    }
);

both!(one_active_authorization_per_purpose, |env| {
    let tenant = env.tenant();
    let ship = env.subprocessor("ShipFast");
    env.authorize(
        &tenant,
        &ship,
        &["fulfillment", "returns"],
        &["name"],
        None,
        None,
    )
    .expect("authorize");
    let e = env
        .authorize(&tenant, &ship, &["returns"], &["email"], None, None)
        .unwrap_err();
    assert_eq!(code(&e), ("conflict", "authorization_exists"));
    env.authorize(&tenant, &ship, &["support"], &["email"], None, None)
        .expect("another purpose");

    // Validation.
    for (purposes, fields, consent, code_) in [
        (vec![], vec!["name"], None, "invalid_purpose"),
        (vec!["Bad Purpose"], vec!["name"], None, "invalid_purpose"),
        (vec!["x"], vec![], None, "invalid_fields"),
        (vec!["x"], vec!["password"], None, "invalid_fields"),
        (
            vec!["x"],
            vec!["name"],
            Some("Not A Purpose"),
            "invalid_require_consent",
        ),
    ] {
        let e = env
            .authorize(&tenant, &ship, &purposes, &fields, consent, None)
            .unwrap_err();
        assert_eq!(code(&e), ("invalid", code_));
    }
    let e = env
        .authorize(
            &tenant,
            &ship,
            &["x"],
            &["name"],
            None,
            Some(env.clock.now() - Duration::days(1)),
        )
        .unwrap_err();
    assert_eq!(code(&e), ("invalid", "invalid_expires_at"));
    let unknown = steward_core::Id::Subprocessor.generate();
    assert_eq!(
        code(
            &env.authorize(&tenant, &unknown, &["x"], &["name"], None, None)
                .unwrap_err()
        )
        .0,
        "not_found"
    );

    let tid = tenant.clone();
    let now = env.now();
    let listed = env.read(|c| {
        authorizations::list(
            c,
            &tid,
            &PageRequest {
                limit: 50,
                after: None,
            },
        )
    });
    assert_eq!(listed.items.len(), 2);
    let view = steward_transfers::Authorization::from_row(listed.items[0].clone(), now);
    assert_eq!(view.state, steward_transfers::AuthorizationState::Active);
    let body: steward_transfers::NewAuthorization = serde_json::from_value(json!({
        "subprocessor_id": ship, "purposes": ["a"], "fields": ["name"]
    }))
    .expect("minimal body");
    assert!(body.require_consent.is_none());
    assert!(
        serde_json::from_value::<steward_transfers::NewAuthorization>(json!({
            "subprocessor_id": ship, "purposes": ["a"], "fields": ["name"], "everything": true
        }))
        .is_err()
    );
});
