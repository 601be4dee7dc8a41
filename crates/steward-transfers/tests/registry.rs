//! The registry: a new subprocessor is announced to every tenant with an objection window; an
//! objection blocks authorizing it (409); retired subprocessors cannot be authorized or pulled
//! for; credentials are issued only to active ones.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use steward_staff::notices;
use steward_store::pagination::PageRequest;
use steward_transfers::registry::{self, NOTICE_KIND_ADDED};

use common::*;

fn page() -> PageRequest {
    PageRequest {
        limit: 100,
        after: None,
    }
}

both!(adding_a_subprocessor_notifies_every_tenant, |env| {
    let a = env.tenant();
    let b = env.tenant();
    let now = env.now();
    let sub = env.subprocessor("ShipFast");
    for t in [&a, &b] {
        let t = t.clone();
        let list = env.read(|c| notices::list(c, &t, &page()));
        let n: Vec<_> = list
            .items
            .iter()
            .filter(|n| n.kind == NOTICE_KIND_ADDED)
            .collect();
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].subject_id.as_deref(), Some(sub.as_str()));
        assert_eq!(n[0].respond_by, Some(now + chrono::Duration::days(30)));
        assert!(n[0].message.contains("ShipFast") && n[0].message.contains(&sub));
    }
    let (s, listed) = (
        env.read(|c| registry::get(c, &sub)),
        env.read(|c| registry::list(c, &page())),
    );
    assert_eq!(s.status, "active");
    assert_eq!(s.country, "DE");
    assert_eq!(listed.items.len(), 1);
    let filter = steward_audit::EventFilter {
        action: Some("subprocessor.create".into()),
        ..Default::default()
    };
    let events = env
        .read(|c| steward_audit::list(c, steward_audit::PLATFORM_CHAIN, &filter, None, 10))
        .0;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].target.id.as_deref(), Some(sub.as_str()));

    // Invalid input changes nothing.
    let bad = registry::NewSubprocessor {
        name: "X".into(),
        legal_name: "X Ltd".into(),
        country: "ZZ".into(),
        contact: "privacy@x.example".into(),
        transfer_mechanism: "scc".into(),
        dpa_reference: "D".into(),
    };
    let (admin, now) = (env.admin.clone(), env.now());
    let e = env
        .write(move |c| registry::create(c, &bad, &admin, now, 30))
        .unwrap_err();
    assert_eq!(code(&e), ("invalid", "invalid_country"));
    assert_eq!(env.read(|c| registry::list(c, &page())).items.len(), 1);
});

both!(an_objection_blocks_authorization_with_409, |env| {
    let tenant = env.tenant();
    let other = env.tenant();
    let sub = env.subprocessor("DataHoover");
    env.visitor(&tenant);
    let t = tenant.clone();
    let notice = env
        .read(|c| notices::list(c, &t, &page()))
        .items
        .into_iter()
        .find(|n| n.subject_id.as_deref() == Some(sub.as_str()))
        .expect("notice");
    let (t, nid, by, now) = (
        tenant.clone(),
        notice.id.clone(),
        tenant_user(steward_core::Role::TenantAdmin, &tenant),
        env.now(),
    );
    env.write(move |c| notices::object(c, &t, &nid, &by, now))
        .expect("object");

    let e = env
        .authorize(&tenant, &sub, &["fulfillment"], &["name"], None, None)
        .unwrap_err();
    assert_eq!(code(&e), ("conflict", "subprocessor_objected"));
    assert!(e.to_string().contains(&sub));
    // The objection is the tenant's own: another tenant may authorize.
    env.authorize(&other, &sub, &["fulfillment"], &["name"], None, None)
        .expect("other tenant");
});

both!(
    an_objection_after_the_window_is_refused_and_authorization_proceeds,
    |env| {
        let tenant = env.tenant();
        let sub = env.subprocessor("LateCo");
        env.visitor(&tenant);
        env.advance_days(31);
        let t = tenant.clone();
        let notice = env
            .read(|c| notices::list(c, &t, &page()))
            .items
            .into_iter()
            .find(|n| n.subject_id.as_deref() == Some(sub.as_str()))
            .expect("notice");
        let (t, nid, by, now) = (
            tenant.clone(),
            notice.id.clone(),
            tenant_user(steward_core::Role::TenantAdmin, &tenant),
            env.now(),
        );
        let e = env
            .write(move |c| notices::object(c, &t, &nid, &by, now))
            .unwrap_err();
        assert_eq!(code(&e), ("conflict", "objection_window_closed"));
        env.authorize(&tenant, &sub, &["fulfillment"], &["name"], None, None)
            .expect("no objection on file");
        env.pull(&sub, &tenant, "fulfillment", None, 10)
            .expect("pull");
    }
);

both!(an_objection_after_authorizing_stops_pulls, |env| {
    let tenant = env.tenant();
    let sub = env.subprocessor("ShipFast");
    env.visitor(&tenant);
    env.authorize(&tenant, &sub, &["fulfillment"], &["name"], None, None)
        .expect("authorize");
    env.pull(&sub, &tenant, "fulfillment", None, 10)
        .expect("pull");
    let t = tenant.clone();
    let notice = env
        .read(|c| notices::list(c, &t, &page()))
        .items
        .into_iter()
        .find(|n| n.subject_id.as_deref() == Some(sub.as_str()))
        .expect("notice");
    let (t, by, now) = (
        tenant.clone(),
        tenant_user(steward_core::Role::TenantAdmin, &tenant),
        env.now(),
    );
    env.write(move |c| notices::object(c, &t, &notice.id, &by, now))
        .expect("object");
    let e = env
        .pull(&sub, &tenant, "fulfillment", None, 10)
        .unwrap_err();
    assert_eq!(code(&e), ("denied", "not_authorized"));
});

both!(credentials_and_retirement, |env| {
    let tenant = env.tenant();
    let sub = env.subprocessor("ShipFast");
    env.visitor(&tenant);
    env.authorize(&tenant, &sub, &["fulfillment"], &["name"], None, None)
        .expect("authorize");

    let (s, now) = (sub.clone(), env.now());
    let created = env
        .write(move |c| registry::issue_credentials(c, &s, now))
        .expect("credentials");
    assert_eq!(created.row.subprocessor_id, sub);
    let (id, secret) = (created.row.id.clone(), created.secret.expose().to_string());
    let client = env.read(|c| steward_identity::clients::authenticate(c, &id, &secret));
    assert_eq!(client.subprocessor_id, sub);
    let unknown = steward_core::Id::Subprocessor.generate();
    let e = env
        .write(move |c| registry::issue_credentials(c, &unknown, now))
        .err()
        .expect("refused");
    assert_eq!(code(&e).0, "not_found");

    let (s, admin) = (sub.clone(), env.admin.clone());
    let retired = env
        .write(move |c| registry::retire(c, &s, &admin, now))
        .expect("retire");
    assert_eq!(retired.status, "retired");
    // Its clients stop working, its pulls are refused, it cannot be authorized or credentialed.
    let id2 = created.row.id.clone();
    assert!(env
        .store
        .read_blocking(|c| steward_identity::clients::get_active(c, &id2))
        .is_err());
    assert_eq!(
        code(
            &env.pull(&sub, &tenant, "fulfillment", None, 10)
                .unwrap_err()
        ),
        ("denied", "not_authorized")
    );
    assert_eq!(
        code(
            &env.authorize(&tenant, &sub, &["other"], &["name"], None, None)
                .unwrap_err()
        )
        .0,
        "not_found"
    );
    let s = sub.clone();
    let e = env
        .write(move |c| registry::issue_credentials(c, &s, now))
        .err()
        .expect("refused");
    assert_eq!(code(&e), ("conflict", "subprocessor_retired"));
});
