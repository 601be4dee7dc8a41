//! Events appended together are stored exactly as appended, however they group: on SQLite a
//! run of events that share their actor, action, purpose, grant, request and time is written
//! with those values bound once (`insert.rs`), and shorter runs or lone events around it go
//! out as plain multi-row INSERTs. Every column must come back as it went in, in seq order,
//! and the chain must verify.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{now, tenant, TestDb};
use steward_audit::{
    append_many, list, verify, Actor, AuditEvent, EventFilter, NewEvent, Outcome, Target,
};

/// An event to append and what the event API must report for it.
struct Case {
    event: NewEvent,
    actor: Actor,
    action: &'static str,
    target: Target,
    fields: Vec<String>,
    purpose: Option<&'static str>,
    justification: Option<&'static str>,
    grant_id: Option<&'static str>,
    request_id: Option<String>,
    outcome: Outcome,
    detail: Option<&'static str>,
}

fn names(fields: &[&str]) -> Vec<String> {
    fields.iter().map(|f| f.to_string()).collect()
}

/// One pulled record's event: only the target and the field names vary.
fn pulled(i: usize, request: &str) -> Case {
    let fields: &[&str] = if i.is_multiple_of(4) {
        &["email", "name"]
    } else {
        &["address", "email", "name"]
    };
    let actor = Actor::new(
        "subprocessor",
        "sub_01JD0000000000000000000001",
        "subprocessor",
    );
    let target = Target::record("visitor", format!("vis_{i:026}"));
    let grant = "auth_01JD0000000000000000000001";
    Case {
        event: NewEvent::new("transfer.pull", actor.clone(), target.clone())
            .fields(fields)
            .purpose("analytics")
            .grant(grant)
            .request_id(request),
        actor,
        action: "transfer.pull",
        target,
        fields: names(fields),
        purpose: Some("analytics"),
        justification: None,
        grant_id: Some(grant),
        request_id: Some(request.to_string()),
        outcome: Outcome::Success,
        detail: None,
    }
}

/// Events that each differ from their neighbours in a shared column.
fn lone(i: usize) -> Case {
    let actor = Actor::new("user", format!("usr_{i:026}"), "tenant_member");
    let target = Target::record("visitor", format!("vis_{i:026}"));
    let request = format!("req_lone_{i}");
    Case {
        event: NewEvent::new("visitor.read", actor.clone(), target.clone())
            .fields(&["email"])
            .request_id(request.clone()),
        actor,
        action: "visitor.read",
        target,
        fields: names(&["email"]),
        purpose: None,
        justification: None,
        grant_id: None,
        request_id: Some(request),
        outcome: Outcome::Success,
        detail: None,
    }
}

/// No target, no purpose, a justification and a detail: the nullable columns.
fn swept(i: usize) -> Case {
    let actor = Actor::new("system", "retention", "system");
    let target = Target::kind("visitor");
    let field = ["f0", "f1", "f2"][i % 3];
    Case {
        event: NewEvent::new("retention.sweep", actor.clone(), target.clone())
            .fields(&[field])
            .justification("policy")
            .outcome(Outcome::Failure)
            .detail("keys destroyed"),
        actor,
        action: "retention.sweep",
        target,
        fields: names(&[field]),
        purpose: None,
        justification: Some("policy"),
        grant_id: None,
        request_id: None,
        outcome: Outcome::Failure,
        detail: Some("keys destroyed"),
    }
}

fn all_events(db: &TestDb, chain: &str) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let (page, next) = db.read(|c| list(c, chain, &EventFilter::default(), after, 500));
        out.extend(page);
        match next {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
}

fn assert_stored(stored: &AuditEvent, seq: usize, want: &Case, chain: &str) {
    assert_eq!(stored.seq, i64::try_from(seq).unwrap(), "seq");
    assert_eq!(stored.chain_id, chain, "event {seq}");
    assert_eq!(stored.actor, want.actor, "event {seq}");
    assert_eq!(stored.action, want.action, "event {seq}");
    assert_eq!(stored.target, want.target, "event {seq}");
    assert_eq!(stored.fields, want.fields, "event {seq}");
    assert_eq!(stored.purpose.as_deref(), want.purpose, "event {seq}");
    assert_eq!(
        stored.justification.as_deref(),
        want.justification,
        "event {seq}"
    );
    assert_eq!(stored.grant_id.as_deref(), want.grant_id, "event {seq}");
    assert_eq!(stored.request_id, want.request_id, "event {seq}");
    assert_eq!(stored.outcome, want.outcome, "event {seq}");
    assert_eq!(stored.detail.as_deref(), want.detail, "event {seq}");
}

both!(rows_written_together_come_back_as_appended, |db| {
    let chain = tenant();
    // 537 pulled (one statement of 500, one of 20, 17 plain), 3 lone, 120 pulled under
    // another request (100 + 20), 19 swept (a run too short to share), 1 pulled.
    let mut cases: Vec<Case> = Vec::new();
    cases.extend((0..537).map(|i| pulled(i, "req_first_page")));
    cases.extend((0..3).map(lone));
    cases.extend((0..120).map(|i| pulled(i, "req_second_page")));
    cases.extend((0..19).map(swept));
    cases.push(pulled(0, "req_last"));
    let n = cases.len();
    let events: Vec<NewEvent> = cases.iter().map(|c| c.event.clone()).collect();
    let t = now();
    let c = chain.clone();
    let appended = db
        .store
        .write_blocking(move |conn| append_many(conn, &c, events, t))
        .unwrap();
    assert_eq!(appended.len(), n);

    let stored = all_events(&db, &chain);
    assert_eq!(stored.len(), n);
    let mut prev: Option<Vec<u8>> = None;
    for (i, (s, want)) in stored.iter().zip(&cases).enumerate() {
        assert_stored(s, i + 1, want, &chain);
        assert_eq!(s.id, appended[i].id);
        assert_eq!(s.hash, appended[i].hash);
        if let Some(p) = &prev {
            assert_eq!(&s.prev_hash, p, "event {} links to the one before", i + 1);
        }
        prev = Some(s.hash.clone());
    }
    let report = db.read(|c| verify(c, &chain, None, &mut |_| {}));
    assert!(report.ok, "{report:?}");
    assert_eq!(report.checked, i64::try_from(n).unwrap());
});
