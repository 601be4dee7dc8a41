//! The life of a staff access request on a real database (SQLite, and PostgreSQL when
//! configured): filing, the tenant's decision, grant checks against the clock, revocation,
//! break-glass under the two-person rule, notices, and the Access Transparency log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{body, code, later, now, staff, tenant_user, visitors};
use serde_json::json;
use steward_audit::{Actor, EventFilter, NewEvent, Target};
use steward_core::{Id, Role};
use steward_staff::requests::{self, StaffAccessEntry};
use steward_staff::{notices, AccessRequest, RequestState, RequestStatus, Scope};
use steward_store::pagination::PageRequest;

fn page(limit: i64, cursor: Option<String>, kind: Id) -> PageRequest {
    PageRequest::parse(Some(limit), cursor, kind).unwrap()
}

fn audit_actions(
    db: &common::TestDb,
    tenant: &str,
) -> Vec<(String, String, Option<String>, Option<String>)> {
    let t = tenant.to_string();
    db.read(move |c| steward_audit::list(c, &t, &EventFilter::default(), None, 500))
        .0
        .into_iter()
        .map(|e| (e.action, e.actor.id, e.justification, e.detail))
        .collect()
}

both!(grant_lifecycle, |db| {
    let tenant = db.tenant();
    let engineer = staff(Role::SupportEngineer);
    let admin = tenant_user(Role::TenantAdmin, &tenant);
    let (v1, v2) = (Id::Visitor.generate(), Id::Visitor.generate());
    let t0 = now();

    let (tid, eng, scope) = (tenant.clone(), engineer.clone(), visitors(&[&v1]));
    let created = db
        .write(move |c| {
            requests::create(
                c,
                &tid,
                &eng,
                body("customer_initiated_support", scope),
                Some("req_01jd000000000000000000000a"),
                t0,
            )
        })
        .unwrap();
    assert!(Id::AccessRequest.matches(&created.id));
    assert_eq!(created.status, RequestStatus::Pending);
    assert_eq!(created.state, RequestState::Pending);
    assert_eq!(created.duration_minutes, 240);
    assert_eq!(created.scope, Scope::Visitors(vec![v1.clone()]));
    assert_eq!(created.requester_role, "support_engineer");
    assert_eq!((created.respond_by - created.created_at).num_hours(), 48);
    assert!(created.approver.is_none());

    // The tenant is told: a notice naming the request, ids and codes only.
    let tid = tenant.clone();
    let notes =
        db.read(move |c| notices::list(c, &tid, &PageRequest::parse(None, None, Id::Notice)?));
    assert_eq!(notes.items.len(), 1);
    let n = &notes.items[0];
    assert_eq!(n.kind, notices::KIND_ACCESS_REQUESTED);
    assert_eq!(n.subject_id.as_deref(), Some(created.id.as_str()));
    assert!(!n.flagged);
    assert!(n.message.contains(&engineer.id), "{}", n.message);
    assert!(
        n.message.contains("customer_initiated_support"),
        "{}",
        n.message
    );
    assert!(n.message.contains("ticket T-1"), "{}", n.message);
    assert!(n.message.contains("240 minutes"), "{}", n.message);
    assert!(
        !n.message.contains("address import"),
        "the free-text reason stays out of notices"
    );

    // And the tenant's chain records the request.
    let events = audit_actions(&db, &tenant);
    assert_eq!(
        events,
        vec![(
            "staff_access.request".to_string(),
            engineer.id.clone(),
            Some("customer_initiated_support".to_string()),
            Some("T-1".to_string())
        )]
    );

    // Not usable before approval.
    let check = |at, who: &steward_core::Principal, grant: &str, vid: &str| {
        let (tid, who, grant, vid) = (
            tenant.clone(),
            who.clone(),
            grant.to_string(),
            vid.to_string(),
        );
        db.store
            .read_blocking(move |c| requests::check_grant(c, &tid, &grant, &who, &vid, at))
    };
    assert_eq!(
        code(&check(t0, &engineer, &created.id, &v1).unwrap_err()).1,
        "grant_not_approved"
    );

    let t1 = later(t0, 30);
    let (tid, rid, adm) = (tenant.clone(), created.id.clone(), admin.clone());
    let approved = db
        .write(move |c| requests::approve(c, &tid, &rid, &adm, Some("ok, ticket T-1".into()), t1))
        .unwrap();
    assert_eq!(approved.status, RequestStatus::Approved);
    assert_eq!(approved.state, RequestState::Active);
    assert_eq!(approved.decision_comment.as_deref(), Some("ok, ticket T-1"));
    let approver = approved.approver.clone().unwrap();
    assert_eq!(
        (approver.id.as_str(), approver.role.as_str()),
        (admin.id.as_str(), "tenant_admin")
    );
    assert_eq!(approved.grant_starts_at.unwrap().naive_utc(), t1);
    assert_eq!(approved.grant_ends_at.unwrap().naive_utc(), later(t1, 240));

    // Inside the window: the scoped visitor only, and only for the requester.
    let grant = check(later(t1, 1), &engineer, &created.id, &v1).unwrap();
    assert_eq!(grant.id, created.id);
    assert_eq!(
        grant.justification_code.as_str(),
        "customer_initiated_support"
    );
    assert_eq!(grant.ticket, "T-1");
    assert_eq!(
        code(&check(later(t1, 1), &engineer, &created.id, &v2).unwrap_err()),
        ("denied", "outside_grant_scope")
    );
    let colleague = staff(Role::SupportEngineer);
    assert_eq!(
        code(&check(later(t1, 1), &colleague, &created.id, &v1).unwrap_err()),
        ("denied", "grant_not_yours")
    );
    assert_eq!(
        code(&check(later(t1, 1), &engineer, &Id::AccessRequest.generate(), &v1).unwrap_err()),
        ("denied", "grant_invalid")
    );
    assert_eq!(
        code(&check(later(t1, 1), &engineer, "not-a-grant", &v1).unwrap_err()),
        ("denied", "grant_invalid")
    );
    // Another tenant's grant id is unknown here.
    let other = db.tenant();
    {
        let (o, g, e, v) = (
            other.clone(),
            created.id.clone(),
            engineer.clone(),
            v1.clone(),
        );
        let err = db
            .store
            .read_blocking(move |c| requests::check_grant(c, &o, &g, &e, &v, later(t1, 1)))
            .unwrap_err();
        assert_eq!(code(&err), ("denied", "grant_invalid"));
    }
    assert_eq!(
        code(&check(later(t1, -1), &engineer, &created.id, &v1).unwrap_err()),
        ("denied", "grant_not_started")
    );

    // Past the window.
    assert_eq!(
        code(&check(later(t1, 240), &engineer, &created.id, &v1).unwrap_err()),
        ("denied", "grant_expired")
    );
    let tid = tenant.clone();
    let rid = created.id.clone();
    let row = db.read(move |c| requests::get(c, &tid, &rid));
    assert_eq!(
        AccessRequest::from_row(row.clone(), later(t1, 240))
            .unwrap()
            .state,
        RequestState::Ended
    );

    // Revocation is immediate, inside the window too.
    let (tid, rid, adm) = (tenant.clone(), created.id.clone(), admin.clone());
    let t2 = later(t1, 10);
    let revoked = db
        .write(move |c| requests::revoke(c, &tid, &rid, &adm, t2))
        .unwrap();
    assert_eq!(revoked.state, RequestState::Revoked);
    assert_eq!(revoked.revoked_by.as_deref(), Some(admin.id.as_str()));
    assert_eq!(
        code(&check(t2, &engineer, &created.id, &v1).unwrap_err()),
        ("denied", "grant_revoked")
    );
    let (tid, rid, adm) = (tenant.clone(), created.id.clone(), admin.clone());
    let again = db
        .write(move |c| requests::revoke(c, &tid, &rid, &adm, t2))
        .unwrap_err();
    assert_eq!(code(&again), ("conflict", "request_not_approved"));

    let actions: Vec<String> = audit_actions(&db, &tenant)
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(
        actions,
        [
            "staff_access.request",
            "staff_access.approve",
            "staff_access.revoke"
        ]
    );
    let t = tenant.clone();
    let report = db.read(move |c| steward_audit::verify(c, &t, None, &mut |_| {}));
    assert!(report.ok, "{report:?}");
});

both!(deny_and_expiry, |db| {
    let tenant = db.tenant();
    let engineer = staff(Role::SupportEngineer);
    let admin = tenant_user(Role::TenantAdmin, &tenant);
    let vid = Id::Visitor.generate();
    let t0 = now();
    let file = |at| {
        let (tid, eng, scope) = (tenant.clone(), engineer.clone(), visitors(&[&vid]));
        db.write(move |c| {
            requests::create(
                c,
                &tid,
                &eng,
                body("platform_initiated_service", scope),
                None,
                at,
            )
        })
        .unwrap()
    };

    let r = file(t0);
    let (tid, rid, adm) = (tenant.clone(), r.id.clone(), admin.clone());
    let denied = db
        .write(move |c| requests::deny(c, &tid, &rid, &adm, Some("not now".into()), later(t0, 5)))
        .unwrap();
    assert_eq!(denied.state, RequestState::Denied);
    assert_eq!(denied.approver.unwrap().id, admin.id);
    assert!(denied.grant_starts_at.is_none());
    let (tid, rid, eng, v) = (tenant.clone(), r.id.clone(), engineer.clone(), vid.clone());
    let err = db
        .store
        .read_blocking(move |c| requests::check_grant(c, &tid, &rid, &eng, &v, later(t0, 6)))
        .unwrap_err();
    assert_eq!(code(&err), ("denied", "grant_not_approved"));
    for deny in [false, true] {
        let (tid, rid, adm) = (tenant.clone(), r.id.clone(), admin.clone());
        let err = db
            .write(move |c| {
                if deny {
                    requests::deny(c, &tid, &rid, &adm, None, later(t0, 7))
                } else {
                    requests::approve(c, &tid, &rid, &adm, None, later(t0, 7))
                }
            })
            .unwrap_err();
        assert_eq!(code(&err), ("conflict", "request_not_pending"));
    }
    let (tid, rid, adm) = (tenant.clone(), r.id.clone(), admin.clone());
    let err = db
        .write(move |c| requests::revoke(c, &tid, &rid, &adm, later(t0, 7)))
        .unwrap_err();
    assert_eq!(code(&err), ("conflict", "request_not_approved"));

    // Unanswered for more than 48 hours: expired, and cannot be approved any more.
    let old = file(t0);
    let (tid, rid) = (tenant.clone(), old.id.clone());
    let row = db.read(move |c| requests::get(c, &tid, &rid));
    let at_48h = later(t0, 48 * 60);
    let after_48h = later(at_48h, 1);
    assert_eq!(
        AccessRequest::from_row(row.clone(), at_48h).unwrap().state,
        RequestState::Pending
    );
    assert_eq!(
        AccessRequest::from_row(row, after_48h).unwrap().state,
        RequestState::Expired
    );
    for deny in [false, true] {
        let (tid, rid, adm) = (tenant.clone(), old.id.clone(), admin.clone());
        let err = db
            .write(move |c| {
                if deny {
                    requests::deny(c, &tid, &rid, &adm, None, after_48h)
                } else {
                    requests::approve(c, &tid, &rid, &adm, None, after_48h)
                }
            })
            .unwrap_err();
        assert_eq!(code(&err), ("conflict", "request_expired"));
    }
    let (tid, rid) = (tenant.clone(), old.id.clone());
    assert_eq!(
        db.read(move |c| requests::get(c, &tid, &rid)).status,
        "pending"
    );

    let actions: Vec<String> = audit_actions(&db, &tenant)
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(
        actions,
        [
            "staff_access.request",
            "staff_access.deny",
            "staff_access.request"
        ]
    );
});

both!(validation_changes_nothing, |db| {
    let tenant = db.tenant();
    let engineer = staff(Role::SupportEngineer);
    let officer = staff(Role::SecurityOfficer);
    let vid = Id::Visitor.generate();
    let base = || {
        json!({
            "justification": "customer_initiated_support",
            "ticket": "SUP-1234",
            "reason": "Fix the import.",
            "scope": {"visitor_ids": [vid]},
        })
    };
    let with = |k: &str, v: serde_json::Value| {
        let mut b = base();
        b[k] = v;
        b
    };
    let cases: Vec<(serde_json::Value, &steward_core::Principal, &str)> = vec![
        (
            with("duration_minutes", json!(1441)),
            &engineer,
            "invalid_duration",
        ),
        (
            with("duration_minutes", json!(0)),
            &engineer,
            "invalid_duration",
        ),
        (
            with("justification", json!("curiosity")),
            &engineer,
            "invalid_justification",
        ),
        (with("ticket", json!("")), &engineer, "invalid_ticket"),
        (
            with("ticket", json!("has spaces")),
            &engineer,
            "invalid_ticket",
        ),
        (with("reason", json!("  ")), &engineer, "invalid_reason"),
        (
            with("reason", json!("x".repeat(1001))),
            &engineer,
            "invalid_reason",
        ),
        (
            with("reason", json!("a\u{0}b")),
            &engineer,
            "invalid_reason",
        ),
        (
            with("scope", json!({"visitor_ids": []})),
            &engineer,
            "invalid_scope",
        ),
        (
            with("scope", json!({"visitor_ids": ["bob@example.com"]})),
            &engineer,
            "invalid_scope",
        ),
        (
            with("break_glass", json!(true)),
            &engineer,
            "break_glass_not_allowed",
        ),
        (
            with("justification", json!("security_investigation"))
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.insert("break_glass".into(), json!(true));
                    serde_json::Value::Object(o)
                })
                .unwrap(),
            &engineer,
            "break_glass_not_allowed",
        ),
        (
            with("break_glass", json!(true)),
            &officer,
            "break_glass_not_allowed",
        ),
    ];
    for (b, who, expected) in cases {
        let req = serde_json::from_value(b.clone()).unwrap();
        let (tid, who) = (tenant.clone(), who.clone());
        let err = db
            .write(move |c| requests::create(c, &tid, &who, req, None, now()))
            .unwrap_err();
        assert_eq!(code(&err), ("invalid", expected), "{b}");
        assert!(
            !err.to_string().contains("bob@"),
            "errors never echo values"
        );
    }
    // Shapes serde itself refuses.
    for bad in [
        with("scope", json!({"all": false})),
        with("scope", json!({})),
        with("extra", json!(1)),
    ] {
        assert!(serde_json::from_value::<steward_staff::NewAccessRequest>(bad).is_err());
    }

    // Tenant users do not file requests; unknown tenants do not exist.
    let member = tenant_user(Role::TenantAdmin, &tenant);
    let (tid, m) = (tenant.clone(), member.clone());
    let err = db
        .write(move |c| {
            requests::create(
                c,
                &tid,
                &m,
                body("customer_initiated_support", json!({"all": true})),
                None,
                now(),
            )
        })
        .unwrap_err();
    assert_eq!(code(&err), ("denied", "staff_only"));
    let eng = engineer.clone();
    let err = db
        .write(move |c| {
            requests::create(
                c,
                &Id::Tenant.generate(),
                &eng,
                body("customer_initiated_support", json!({"all": true})),
                None,
                now(),
            )
        })
        .unwrap_err();
    assert_eq!(code(&err), ("not_found", "not_found"));

    // Nothing was written: no request, no notice, no audit event.
    let tid = tenant.clone();
    let listed =
        db.read(move |c| requests::list(c, &tid, None, &page(10, None, Id::AccessRequest)));
    assert!(listed.items.is_empty());
    let tid = tenant.clone();
    assert!(db
        .read(move |c| notices::list(c, &tid, &page(10, None, Id::Notice)))
        .items
        .is_empty());
    assert!(audit_actions(&db, &tenant).is_empty());

    // Defaults and bounds that are accepted: whole tenant, 1440 minutes.
    let mut ok = with("duration_minutes", json!(1440));
    ok["scope"] = json!({"all": true});
    let req = serde_json::from_value(ok).unwrap();
    let (tid, eng) = (tenant.clone(), engineer.clone());
    let r = db
        .write(move |c| requests::create(c, &tid, &eng, req, None, now()))
        .unwrap();
    assert_eq!((r.scope, r.duration_minutes), (Scope::All, 1440));
});

both!(decisions_belong_to_the_tenant, |db| {
    let tenant = db.tenant();
    let other = db.tenant();
    let engineer = staff(Role::SupportEngineer);
    let t0 = now();
    let (tid, eng) = (tenant.clone(), engineer.clone());
    let r = db
        .write(move |c| {
            requests::create(
                c,
                &tid,
                &eng,
                body("customer_initiated_support", json!({"all": true})),
                None,
                t0,
            )
        })
        .unwrap();

    // Another tenant's admin: the request does not exist for them.
    let foreign = tenant_user(Role::TenantAdmin, &other);
    let (tid, rid, f) = (tenant.clone(), r.id.clone(), foreign.clone());
    let err = db
        .write(move |c| requests::approve(c, &tid, &rid, &f, None, t0))
        .unwrap_err();
    assert_eq!(code(&err).0, "not_found");
    let (oid, rid) = (other.clone(), r.id.clone());
    let err = db
        .store
        .read_blocking(move |c| requests::get(c, &oid, &rid))
        .unwrap_err();
    assert_eq!(code(&err).0, "not_found");
    // Staff cannot approve their own (or a colleague's) ordinary request.
    for who in [
        engineer.clone(),
        staff(Role::SecurityOfficer),
        staff(Role::PlatformAdmin),
    ] {
        let (tid, rid) = (tenant.clone(), r.id.clone());
        let err = db
            .write(move |c| requests::approve(c, &tid, &rid, &who, None, t0))
            .unwrap_err();
        assert_eq!(code(&err), ("denied", "tenant_decision_required"));
    }
    // Ordinary requests are not break-glass.
    let (tid, rid, so) = (tenant.clone(), r.id.clone(), staff(Role::SecurityOfficer));
    let err = db
        .write(move |c| requests::approve_break_glass(c, &tid, &rid, &so, None, t0))
        .unwrap_err();
    assert_eq!(code(&err), ("conflict", "not_break_glass"));

    // Listing: by id, paginated, optionally one requester's.
    let second = staff(Role::SupportEngineer);
    for i in 0..3 {
        let (tid, who) = (
            tenant.clone(),
            if i == 1 {
                second.clone()
            } else {
                engineer.clone()
            },
        );
        db.write(move |c| {
            requests::create(
                c,
                &tid,
                &who,
                body("customer_initiated_support", json!({"all": true})),
                None,
                t0,
            )
        })
        .unwrap();
    }
    let tid = tenant.clone();
    let p1 = db.read(move |c| requests::list(c, &tid, None, &page(3, None, Id::AccessRequest)));
    assert_eq!(p1.items.len(), 3);
    assert_eq!(p1.items[0].id, r.id);
    let tid = tenant.clone();
    let cursor = p1.next_cursor.clone();
    let p2 = db.read(move |c| requests::list(c, &tid, None, &page(3, cursor, Id::AccessRequest)));
    assert_eq!(p2.items.len(), 1);
    assert!(p2.next_cursor.is_none());
    let mut ids: Vec<String> = p1
        .items
        .iter()
        .chain(&p2.items)
        .map(|r| r.id.clone())
        .collect();
    let sorted = {
        let mut s = ids.clone();
        s.sort();
        s
    };
    assert_eq!(ids, sorted);
    ids.dedup();
    assert_eq!(ids.len(), 4);
    let (tid, sid) = (tenant.clone(), second.id.clone());
    let mine =
        db.read(move |c| requests::list(c, &tid, Some(&sid), &page(10, None, Id::AccessRequest)));
    assert_eq!(mine.items.len(), 1);
    assert_eq!(mine.items[0].requester_id, second.id);
    let views = requests::view_page(mine, t0).unwrap();
    assert_eq!(views.items[0].state, RequestState::Pending);
    let oid = other.clone();
    assert!(db
        .read(move |c| requests::list(c, &oid, None, &page(10, None, Id::AccessRequest)))
        .items
        .is_empty());
});

both!(break_glass_needs_two_people, |db| {
    let tenant = db.tenant();
    let officer = staff(Role::SecurityOfficer);
    let vid = Id::Visitor.generate();
    let t0 = now();
    let mut b = body("security_investigation", visitors(&[&vid]));
    b.break_glass = Some(true);
    b.duration_minutes = Some(60);
    let (tid, o) = (tenant.clone(), officer.clone());
    let r = db
        .write(move |c| requests::create(c, &tid, &o, b, None, t0))
        .unwrap();
    assert!(r.break_glass);
    assert_eq!(r.state, RequestState::Pending);

    // The tenant hears of the request at once, flagged.
    let tid = tenant.clone();
    let notes = db
        .read(move |c| notices::list(c, &tid, &page(10, None, Id::Notice)))
        .items;
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].kind, notices::KIND_BREAK_GLASS_REQUESTED);
    assert!(notes[0].flagged);

    // Same person: refused. A tenant user: refused.
    for who in [officer.clone(), tenant_user(Role::TenantAdmin, &tenant)] {
        let (tid, rid) = (tenant.clone(), r.id.clone());
        let err = db
            .write(move |c| requests::approve_break_glass(c, &tid, &rid, &who, None, later(t0, 1)))
            .unwrap_err();
        assert_eq!(code(&err), ("denied", "two_person_rule"));
    }
    let (tid, rid, o, v) = (tenant.clone(), r.id.clone(), officer.clone(), vid.clone());
    let err = db
        .store
        .read_blocking(move |c| requests::check_grant(c, &tid, &rid, &o, &v, later(t0, 1)))
        .unwrap_err();
    assert_eq!(code(&err).1, "grant_not_approved");

    // A second, different staff member activates it.
    let second = staff(Role::SecurityOfficer);
    let (tid, rid, s) = (tenant.clone(), r.id.clone(), second.clone());
    let t1 = later(t0, 2);
    let active = db
        .write(move |c| {
            requests::approve_break_glass(
                c,
                &tid,
                &rid,
                &s,
                Some("confirmed incident INC-7".into()),
                t1,
            )
        })
        .unwrap();
    assert_eq!(active.state, RequestState::Active);
    assert_eq!(active.decided_by.as_deref(), Some(second.id.as_str()));
    assert_eq!(active.approver.as_ref().unwrap().role, "security_officer");
    assert_eq!(active.grant_ends_at.unwrap().naive_utc(), later(t1, 60));
    let (tid, rid, o, v) = (tenant.clone(), r.id.clone(), officer.clone(), vid.clone());
    let grant = db
        .store
        .read_blocking(move |c| requests::check_grant(c, &tid, &rid, &o, &v, later(t1, 1)))
        .unwrap();
    assert!(grant.break_glass);
    // The approver does not get to read under it.
    let (tid, rid, s, v) = (tenant.clone(), r.id.clone(), second.clone(), vid.clone());
    let err = db
        .store
        .read_blocking(move |c| requests::check_grant(c, &tid, &rid, &s, &v, later(t1, 1)))
        .unwrap_err();
    assert_eq!(code(&err).1, "grant_not_yours");

    // Flagged notice of the activation, naming both people.
    let tid = tenant.clone();
    let notes = db
        .read(move |c| notices::list(c, &tid, &page(10, None, Id::Notice)))
        .items;
    assert_eq!(notes.len(), 2);
    let n = &notes[1];
    assert_eq!(n.kind, notices::KIND_BREAK_GLASS);
    assert!(n.flagged);
    assert_eq!(n.subject_id.as_deref(), Some(r.id.as_str()));
    assert!(
        n.message.contains(&officer.id) && n.message.contains(&second.id),
        "{}",
        n.message
    );

    let actions: Vec<(String, String)> = audit_actions(&db, &tenant)
        .into_iter()
        .map(|e| (e.0, e.1))
        .collect();
    assert_eq!(
        actions,
        [
            ("staff_access.request".to_string(), officer.id.clone()),
            ("staff_access.break_glass".to_string(), second.id.clone()),
        ]
    );

    // Twice: already decided. The tenant can still revoke it at once.
    let (tid, rid, s) = (tenant.clone(), r.id.clone(), staff(Role::PlatformAdmin));
    let err = db
        .write(move |c| requests::approve_break_glass(c, &tid, &rid, &s, None, t1))
        .unwrap_err();
    assert_eq!(code(&err), ("conflict", "request_not_pending"));
    let (tid, rid, a) = (
        tenant.clone(),
        r.id.clone(),
        tenant_user(Role::TenantAdmin, &tenant),
    );
    db.write(move |c| requests::revoke(c, &tid, &rid, &a, later(t1, 3)))
        .unwrap();
    let (tid, rid, o, v) = (tenant.clone(), r.id.clone(), officer.clone(), vid.clone());
    let err = db
        .store
        .read_blocking(move |c| requests::check_grant(c, &tid, &rid, &o, &v, later(t1, 3)))
        .unwrap_err();
    assert_eq!(code(&err).1, "grant_revoked");
});

both!(staff_access_log_shows_reads_under_grants, |db| {
    let tenant = db.tenant();
    let engineer = staff(Role::SupportEngineer);
    let admin = tenant_user(Role::TenantAdmin, &tenant);
    let vid = Id::Visitor.generate();
    let t0 = now();
    let (tid, eng, scope) = (tenant.clone(), engineer.clone(), visitors(&[&vid]));
    let r = db
        .write(move |c| {
            requests::create(
                c,
                &tid,
                &eng,
                body("customer_initiated_support", scope),
                None,
                t0,
            )
        })
        .unwrap();
    let (tid, rid, adm) = (tenant.clone(), r.id.clone(), admin.clone());
    db.write(move |c| requests::approve(c, &tid, &rid, &adm, None, t0))
        .unwrap();

    // A tenant member's own read: not a staff access.
    let (tid, v, member) = (
        tenant.clone(),
        vid.clone(),
        tenant_user(Role::TenantMember, &tenant),
    );
    db.write(move |c| {
        steward_audit::append(
            c,
            &tid,
            NewEvent::new(
                "visitor.read",
                Actor::from_principal(&member),
                Target::record("visitor", v),
            )
            .fields(&["email"]),
            t0,
        )
    })
    .unwrap();
    // Two reads under the grant, one recorded by hand, one through `Grant::audit`.
    let (tid, v, eng, gid) = (tenant.clone(), vid.clone(), engineer.clone(), r.id.clone());
    db.write(move |c| {
        steward_audit::append(
            c,
            &tid,
            NewEvent::new(
                "visitor.read",
                Actor::from_principal(&eng),
                Target::record("visitor", v),
            )
            .fields(&["name", "email"])
            .grant(gid)
            .justification("customer_initiated_support"),
            t0,
        )
    })
    .unwrap();
    let (tid, v, eng, gid) = (tenant.clone(), vid.clone(), engineer.clone(), r.id.clone());
    db.write(move |c| {
        let grant = requests::check_grant(c, &tid, &gid, &eng, &v, later(t0, 1))?;
        let e = grant.audit(
            NewEvent::new(
                "visitor.read",
                Actor::from_principal(&eng),
                Target::record("visitor", v),
            )
            .fields(&["phone"]),
        );
        steward_audit::append(c, &tid, e, later(t0, 1))
    })
    .unwrap();

    let tid = tenant.clone();
    let (entries, next) = db.read(move |c| requests::staff_access_log(c, &tid, None, 50));
    assert!(next.is_none());
    assert_eq!(entries.len(), 2, "{entries:?}");
    let e: &StaffAccessEntry = &entries[0];
    assert_eq!(e.action, "visitor.read");
    assert_eq!(e.actor_id, engineer.id);
    assert_eq!(e.actor_role, "support_engineer");
    assert_eq!(e.target_id.as_deref(), Some(vid.as_str()));
    assert_eq!(e.fields, ["email", "name"]);
    assert_eq!(e.grant_id, r.id);
    assert_eq!(
        e.justification_code.as_deref(),
        Some("customer_initiated_support")
    );
    assert_eq!(e.ticket.as_deref(), Some("T-1"));
    assert_eq!(e.approver_id.as_deref(), Some(admin.id.as_str()));
    assert_eq!(e.approver_role.as_deref(), Some("tenant_admin"));
    assert!(!e.break_glass);
    assert_eq!(entries[1].fields, ["phone"]);
    assert!(entries[0].seq < entries[1].seq);

    // Paged by seq.
    let tid = tenant.clone();
    let (first, cursor) = db.read(move |c| requests::staff_access_log(c, &tid, None, 1));
    assert_eq!(first.len(), 1);
    assert_eq!(cursor, Some(first[0].seq));
    let tid = tenant.clone();
    let (rest, end) = db.read(move |c| requests::staff_access_log(c, &tid, cursor, 1));
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].seq, entries[1].seq);
    assert!(end.is_none());
    let tid = tenant.clone();
    let err = db
        .store
        .read_blocking(move |c| requests::staff_access_log(c, &tid, None, 0))
        .unwrap_err();
    assert_eq!(code(&err).1, "invalid_limit");

    // Another tenant sees none of it.
    let other = db.tenant();
    let (entries, _) = db.read(move |c| requests::staff_access_log(c, &other, None, 50));
    assert!(entries.is_empty());
    let json = serde_json::to_value(&rest[0]).unwrap();
    assert_eq!(json["grant_id"], r.id);
    assert!(json["at"].as_str().unwrap().ends_with('Z'));
});

both!(notices_and_objections, |db| {
    let tenant = db.tenant();
    let other = db.tenant();
    let admin = tenant_user(Role::TenantAdmin, &tenant);
    let t0 = now();
    let sub = Id::Subprocessor.generate();
    let (tid, s) = (tenant.clone(), sub.clone());
    let open = db
        .write(move |c| {
            notices::insert(
                c,
                &tid,
                "subprocessor.added",
                Some(&s),
                "subprocessor sub_x will be added",
                false,
                Some(later(t0, 60)),
                t0,
            )
        })
        .unwrap();
    let tid = tenant.clone();
    let plain = db
        .write(move |c| {
            notices::insert(
                c,
                &tid,
                "staff_access.requested",
                None,
                "hello",
                false,
                None,
                t0,
            )
        })
        .unwrap();
    let tid = tenant.clone();
    let err = db
        .write(move |c| notices::insert(c, &tid, "bad kind!", None, "x", false, None, t0))
        .unwrap_err();
    assert_eq!(code(&err).1, "invalid_notice");

    let object = |id: &str, by: &steward_core::Principal, tenant: &str, at| {
        let (tid, id, by) = (tenant.to_string(), id.to_string(), by.clone());
        db.write(move |c| notices::object(c, &tid, &id, &by, at))
    };
    assert_eq!(
        code(&object(&plain.id, &admin, &tenant, t0).unwrap_err()),
        ("conflict", "not_objectable")
    );
    assert_eq!(
        code(&object(&open.id, &admin, &other, t0).unwrap_err()).0,
        "not_found"
    );
    let foreign = tenant_user(Role::TenantAdmin, &other);
    assert_eq!(
        code(&object(&open.id, &foreign, &tenant, t0).unwrap_err()).0,
        "not_found"
    );
    assert_eq!(
        code(&object(&open.id, &admin, &tenant, later(t0, 61)).unwrap_err()),
        ("conflict", "objection_window_closed")
    );
    let done = object(&open.id, &admin, &tenant, later(t0, 59)).unwrap();
    assert_eq!(done.objected_by.as_deref(), Some(admin.id.as_str()));
    assert_eq!(done.objected_at, Some(later(t0, 59)));
    assert_eq!(
        code(&object(&open.id, &admin, &tenant, later(t0, 59)).unwrap_err()),
        ("conflict", "already_objected")
    );

    let (tid, id) = (tenant.clone(), open.id.clone());
    let got = db.read(move |c| notices::get(c, &tid, &id));
    let shown = serde_json::to_value(steward_staff::Notice::from(got)).unwrap();
    assert_eq!(shown["subject_id"], sub);
    assert_eq!(shown["objected_by"], admin.id);
    let (oid, id) = (other.clone(), open.id.clone());
    assert_eq!(
        code(
            &db.store
                .read_blocking(move |c| notices::get(c, &oid, &id))
                .unwrap_err()
        )
        .0,
        "not_found"
    );

    let tid = tenant.clone();
    let p1 = db.read(move |c| notices::list(c, &tid, &page(1, None, Id::Notice)));
    assert_eq!(p1.items[0].id, open.id);
    let (tid, cursor) = (tenant.clone(), p1.next_cursor.clone());
    assert!(cursor.is_some());
    let p2 = db.read(move |c| notices::list(c, &tid, &page(1, cursor, Id::Notice)));
    assert_eq!(p2.items[0].id, plain.id);
    assert!(p2.next_cursor.is_none());
});
