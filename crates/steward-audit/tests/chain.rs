//! Appending and reading chains: independence of tenants, atomicity with the caller's
//! transaction, queries, and verification of intact chains across several pages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{event, now, tenant, TestDb};
use diesel::prelude::*;
use steward_audit::schema::audit_events;
use steward_audit::{
    append, append_many, chain_len, chains, events_for_target, head, list, verify, Actor,
    EventFilter, NewEvent, Outcome, Target, VerifyReport, PLATFORM_CHAIN,
};
use steward_core::Error;

fn verify_chain(db: &TestDb, chain: &str) -> VerifyReport {
    db.read(|c| verify(c, chain, None, &mut |_| {}))
}

fn append_one(db: &TestDb, chain: &str, e: NewEvent) -> steward_audit::Appended {
    let chain = chain.to_string();
    db.store
        .write_blocking(move |c| append(c, &chain, e, now()))
        .expect("append")
}

both!(two_chains_are_independent, |db| {
    let (a, b) = (tenant(), tenant());
    let mut appended = Vec::new();
    for i in 0..100 {
        let chain = if i % 5 < 3 { &a } else { &b };
        appended.push(append_one(&db, chain, event(i)));
    }
    let report_a = verify_chain(&db, &a);
    let report_b = verify_chain(&db, &b);
    assert!(report_a.ok, "{report_a:?}");
    assert!(report_b.ok, "{report_b:?}");
    assert_eq!(report_a.checked, 60);
    assert_eq!(report_b.checked, 40);
    // Seqs are per chain, gap-free.
    let seqs_a: Vec<i64> = appended
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 5 < 3)
        .map(|(_, x)| x.seq)
        .collect();
    assert_eq!(seqs_a, (1..=60).collect::<Vec<_>>());

    let head_b = db.read(|c| head(c, &b));
    append_one(&db, &a, event(7));
    assert_eq!(
        db.read(|c| head(c, &b)),
        head_b,
        "appending to A moved B's head"
    );
    assert_eq!(db.read(|c| head(c, &a)).unwrap().0, 61);

    assert_eq!(db.read(|c| chain_len(c, &a)), 61);
    assert_eq!(db.read(|c| chain_len(c, &tenant())), 0);
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(db.read(chains), expected);
});

both!(platform_chain_and_append_many, |db| {
    let out = db
        .store
        .write_blocking(|c| {
            append_many(
                c,
                PLATFORM_CHAIN,
                vec![
                    NewEvent::new(
                        "tenant.create",
                        Actor::new("user", "usr_admin", "platform_admin"),
                        Target::record("tenant", "ten_x"),
                    ),
                    NewEvent::new(
                        "staff.create",
                        Actor::new("user", "usr_admin", "platform_admin"),
                        Target::record("user", "usr_new"),
                    ),
                ],
                now(),
            )
        })
        .unwrap();
    assert_eq!(out.iter().map(|a| a.seq).collect::<Vec<_>>(), [1, 2]);
    assert!(out[0].id.starts_with("evt_"));
    assert_ne!(out[0].hash, out[1].hash);
    assert!(verify_chain(&db, PLATFORM_CHAIN).ok);
    assert_eq!(db.read(chains), [PLATFORM_CHAIN.to_string()]);
});

both!(an_event_commits_with_its_change_or_not_at_all, |db| {
    let chain = tenant();
    append_one(&db, &chain, event(0));
    let c2 = chain.clone();
    let failed = db.store.write_blocking(move |c| {
        append(c, &c2, event(1), now())?;
        // The change the event records fails after the event was written.
        Err::<(), _>(Error::internal_msg("the recorded change failed"))
    });
    assert!(failed.is_err());
    assert_eq!(db.read(|c| chain_len(c, &chain)), 1);
    assert_eq!(db.read(|c| head(c, &chain)).unwrap().0, 1);
    assert_eq!(append_one(&db, &chain, event(2)).seq, 2);
    assert!(verify_chain(&db, &chain).ok);
});

both!(append_refuses_to_run_outside_a_transaction, |db| {
    let mut conn = db.direct();
    let err = append(&mut conn, &tenant(), event(0), now()).unwrap_err();
    assert!(matches!(err, Error::Internal(_)));
    let err = conn
        .transaction(|c| append(c, "not-a-chain", event(0), now()))
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Invalid {
            code: "invalid_audit_chain",
            ..
        }
    ));
    let err = conn
        .transaction(|c| append(c, &tenant(), event(0).fields(&["bob@example.com"]), now()))
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Invalid {
            code: "invalid_audit_event",
            ..
        }
    ));
    assert!(!err.to_string().contains("bob"));
});

both!(fields_are_stored_sorted_and_deduplicated, |db| {
    let chain = tenant();
    append_one(
        &db,
        &chain,
        NewEvent::new(
            "visitor.read",
            Actor::new("api_key", "key_1", "api_key"),
            Target::record("visitor", "vis_1"),
        )
        .fields(&["phone", "email", "name", "email"]),
    );
    append_one(
        &db,
        &chain,
        NewEvent::new(
            "visitor.search",
            Actor::system("job_1"),
            Target::kind("visitor"),
        ),
    );
    let stored: Vec<String> = db.read(|c| {
        Ok(audit_events::table
            .filter(audit_events::chain_id.eq(&chain))
            .order(audit_events::seq.asc())
            .select(audit_events::fields)
            .load(c)?)
    });
    assert_eq!(stored, ["email,name,phone", ""]);
    let (events, _) = db.read(|c| list(c, &chain, &EventFilter::default(), None, 10));
    assert_eq!(events[0].fields, ["email", "name", "phone"]);
    assert!(events[1].fields.is_empty());
    let json = serde_json::to_value(&events[0]).unwrap();
    assert_eq!(
        json["fields"],
        serde_json::json!(["email", "name", "phone"])
    );
    assert_eq!(json["hash"].as_str().unwrap().len(), 64);
});

both!(list_filters_and_pages, |db| {
    let chain = tenant();
    for i in 0..30 {
        append_one(&db, &chain, event(i));
    }
    append_one(
        &db,
        &chain,
        event(30)
            .outcome(Outcome::Denied)
            .grant("acr_1")
            .detail("scope excludes this visitor"),
    );

    // Pages of 7 walk every event once, in seq order.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = db.read(|c| list(c, &chain, &EventFilter::default(), cursor, 7));
        seen.extend(page.iter().map(|e| e.seq));
        match next {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
    assert_eq!(seen, (1..=31).collect::<Vec<_>>());

    let reads = EventFilter {
        action: Some("visitor.read".into()),
        ..Default::default()
    };
    let (page, next) = db.read(|c| list(c, &chain, &reads, None, 100));
    assert_eq!(page.len(), 11);
    assert!(next.is_none());
    assert!(page.iter().all(|e| e.action == "visitor.read"));

    let target = format!("vis_{:026}", 3);
    let by_target = EventFilter {
        target_id: Some(target.clone()),
        actor_id: Some(format!("usr_{:026}", 3)),
        ..Default::default()
    };
    let (page, _) = db.read(|c| list(c, &chain, &by_target, None, 100));
    assert!(!page.is_empty());
    assert!(page
        .iter()
        .all(|e| e.target.id.as_deref() == Some(target.as_str())));

    let history = db.read(|c| events_for_target(c, &chain, &target, 100));
    assert_eq!(
        history.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [4, 15, 26]
    );
    let denied = db
        .read(|c| list(c, &chain, &EventFilter::default(), Some(30), 5))
        .0;
    assert_eq!(denied[0].outcome, Outcome::Denied);
    assert_eq!(denied[0].grant_id.as_deref(), Some("acr_1"));

    let t = denied[0].occurred_at;
    let window = EventFilter {
        from: Some(t),
        to: Some(t + chrono::Duration::microseconds(1)),
        ..Default::default()
    };
    let (page, _) = db.read(|c| list(c, &chain, &window, None, 100));
    assert!(page.iter().any(|e| e.seq == 31));
    assert!(page.iter().all(|e| e.occurred_at == t));

    // Another tenant's chain shows nothing of this one.
    let (other, _) = db.read(|c| list(c, &tenant(), &EventFilter::default(), None, 100));
    assert!(other.is_empty());

    let err = db
        .store
        .read_blocking(|c| list(c, &chain, &EventFilter::default(), None, 0))
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Invalid {
            code: "invalid_limit",
            ..
        }
    ));
});

both!(long_chain_verifies_across_pages_with_progress, |db| {
    let chain = tenant();
    for batch in 0..5 {
        let c2 = chain.clone();
        db.store
            .write_blocking(move |c| {
                append_many(
                    c,
                    &c2,
                    (batch * 5_000..(batch + 1) * 5_000).map(event).collect(),
                    now(),
                )
            })
            .unwrap();
    }
    let mut calls = Vec::new();
    let report = db.read(|c| verify(c, &chain, None, &mut |n| calls.push(n)));
    assert_eq!(report, good(25_000));
    assert_eq!(calls, [10_000, 20_000, 25_000]);

    // A break on the third page is found, after two good pages.
    db.tamper(&format!(
        "UPDATE audit_events SET actor_role = 'platform_admin' WHERE chain_id = '{chain}' AND seq = 21234"
    ));
    let report = verify_chain(&db, &chain);
    assert_eq!(report.first_bad_seq, Some(21_234));
    assert_eq!(report.reason, Some("hash_mismatch"));
    assert_eq!(report.checked, 21_233);
});

fn good(checked: i64) -> VerifyReport {
    VerifyReport {
        ok: true,
        checked,
        first_bad_seq: None,
        reason: None,
    }
}
