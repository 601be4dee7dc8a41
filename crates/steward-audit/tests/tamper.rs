//! Invariant 4: any edit, deletion or reordering of stored events is detected and the first bad
//! seq named — including the attacks a hash chain alone cannot see (a rewound head, a full
//! re-hash), which signed checkpoints catch.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{event, now, tenant, TestDb};
use std::sync::Arc;

use diesel::prelude::*;
use steward_audit::canonical::{event_hash, EventFields, GENESIS_HASH};
use steward_audit::schema::{audit_events, audit_heads};
use steward_audit::{
    append_many, checkpoint, list, verify, verify_checkpoint_signature, verify_signed, Checkpoint,
    CheckpointSigner, EventFilter, VerifyReport,
};
use steward_core::Error;

/// A tenant chain of `n` events.
fn chain_of(db: &TestDb, n: usize) -> String {
    let chain = tenant();
    extend(db, &chain, 0..n);
    chain
}

fn extend(db: &TestDb, chain: &str, range: std::ops::Range<usize>) {
    let chain = chain.to_string();
    db.store
        .write_blocking(move |c| append_many(c, &chain, range.map(event).collect(), now()))
        .unwrap();
}

/// Shared so committer units (which must own what they use) can sign with it.
fn signer() -> Arc<CheckpointSigner> {
    Arc::new(
        CheckpointSigner::from_pkcs8(
            "sig_test".into(),
            &CheckpointSigner::generate_pkcs8().unwrap(),
        )
        .unwrap(),
    )
}

fn check(db: &TestDb, chain: &str, cp: Option<&Checkpoint>) -> VerifyReport {
    db.read(|c| verify(c, chain, cp, &mut |_| {}))
}

fn assert_bad(report: &VerifyReport, seq: i64, reason: &str) {
    assert!(!report.ok, "tampering went unnoticed: {report:?}");
    assert_eq!(report.first_bad_seq, Some(seq), "{report:?}");
    assert_eq!(report.reason, Some(reason), "{report:?}");
}

fn hash_at(db: &TestDb, chain: &str, seq: i64) -> Vec<u8> {
    db.read(|c| {
        Ok(audit_events::table
            .find((chain, seq))
            .select(audit_events::hash)
            .first(c)?)
    })
}

/// Points the head at `seq`, as an attacker hiding a truncation would.
fn rewind_head(db: &TestDb, chain: &str, seq: i64) {
    let hash = hash_at(db, chain, seq);
    let mut conn = db.direct();
    diesel::update(audit_heads::table.find(chain))
        .set((audit_heads::seq.eq(seq), audit_heads::hash.eq(hash)))
        .execute(&mut conn)
        .unwrap();
}

both!(edited_field_is_named, |db| {
    let chain = chain_of(&db, 100);
    assert!(check(&db, &chain, None).ok);
    db.tamper(&format!(
        "UPDATE audit_events SET action = 'visitor.create' WHERE chain_id = '{chain}' AND seq = 37"
    ));
    let report = check(&db, &chain, None);
    assert_bad(&report, 37, "hash_mismatch");
    assert_eq!(report.checked, 36);
});

both!(edited_hash_is_named, |db| {
    let chain = chain_of(&db, 100);
    // Re-hashing one event to match its edit breaks the next event's link instead.
    let mut conn = db.direct();
    let rows = conn
        .transaction(|c| list(c, &chain, &EventFilter::default(), Some(41), 1))
        .unwrap()
        .0;
    let e = &rows[0];
    let fields = e.fields.join(",");
    let forged = event_hash(
        &e.prev_hash,
        &EventFields {
            chain_id: &chain,
            seq: e.seq,
            id: &e.id,
            occurred_at: e.occurred_at,
            actor_kind: &e.actor.kind,
            actor_id: &e.actor.id,
            actor_role: "platform_admin",
            action: &e.action,
            target_kind: &e.target.kind,
            target_id: e.target.id.as_deref(),
            fields: &fields,
            purpose: e.purpose.as_deref(),
            justification: e.justification.as_deref(),
            grant_id: e.grant_id.as_deref(),
            request_id: e.request_id.as_deref(),
            outcome: e.outcome.as_str(),
            detail: e.detail.as_deref(),
        },
        &mut Vec::new(),
    );
    diesel::update(audit_events::table.find((&chain, 42)))
        .set((
            audit_events::actor_role.eq("platform_admin"),
            audit_events::hash.eq(forged.to_vec()),
        ))
        .execute(&mut conn)
        .unwrap();
    assert_bad(&check(&db, &chain, None), 43, "prev_hash_mismatch");
});

both!(deleted_event_is_named, |db| {
    let chain = chain_of(&db, 100);
    db.tamper(&format!(
        "DELETE FROM audit_events WHERE chain_id = '{chain}' AND seq = 50"
    ));
    let report = check(&db, &chain, None);
    assert_bad(&report, 50, "seq_gap");
    assert_eq!(report.checked, 49);
});

both!(swapped_seq_numbers_are_named, |db| {
    let chain = chain_of(&db, 100);
    db.tamper(&format!(
        "UPDATE audit_events SET seq = -1 WHERE chain_id = '{chain}' AND seq = 10;
         UPDATE audit_events SET seq = 10 WHERE chain_id = '{chain}' AND seq = 11;
         UPDATE audit_events SET seq = 11 WHERE chain_id = '{chain}' AND seq = -1;"
    ));
    assert_bad(&check(&db, &chain, None), 10, "hash_mismatch");
});

both!(swapped_contents_are_named, |db| {
    let chain = chain_of(&db, 100);
    let (a, b) = {
        let (rows, _) = db.read(|c| list(c, &chain, &EventFilter::default(), Some(9), 2));
        (rows[0].clone(), rows[1].clone())
    };
    assert_ne!(a.action, b.action);
    let mut conn = db.direct();
    for (seq, from) in [(10, &b), (11, &a)] {
        diesel::update(audit_events::table.find((&chain, seq)))
            .set((
                audit_events::action.eq(&from.action),
                audit_events::target_id.eq(&from.target.id),
            ))
            .execute(&mut conn)
            .unwrap();
    }
    assert_bad(&check(&db, &chain, None), 10, "hash_mismatch");
});

both!(deleted_tail_is_named, |db| {
    let chain = chain_of(&db, 100);
    db.tamper(&format!(
        "DELETE FROM audit_events WHERE chain_id = '{chain}' AND seq >= 91"
    ));
    let report = check(&db, &chain, None);
    assert_bad(&report, 91, "head_mismatch");
    assert_eq!(report.checked, 90);
});

both!(events_behind_the_heads_back_are_named, |db| {
    let chain = chain_of(&db, 100);
    // The head says 99; event 100 is not accounted for.
    rewind_head(&db, &chain, 99);
    assert_bad(&check(&db, &chain, None), 100, "head_mismatch");
    // A head whose hash is not the last event's.
    let mut conn = db.direct();
    diesel::update(audit_heads::table.find(&chain))
        .set((
            audit_heads::seq.eq(100),
            audit_heads::hash.eq(vec![9u8; 32]),
        ))
        .execute(&mut conn)
        .unwrap();
    assert_bad(&check(&db, &chain, None), 100, "head_mismatch");
    // No head at all.
    db.tamper(&format!(
        "DELETE FROM audit_heads WHERE chain_id = '{chain}'"
    ));
    assert_bad(&check(&db, &chain, None), 1, "head_mismatch");
    assert_eq!(db.read(steward_audit::chains), vec![chain]);
});

both!(hidden_truncation_is_caught_by_a_checkpoint, |db| {
    let chain = chain_of(&db, 95);
    let key = signer();
    let cp = db
        .store
        .write_blocking({
            let chain = chain.clone();
            let key = Arc::clone(&key);
            move |c| checkpoint(c, &chain, &key, now())
        })
        .unwrap()
        .expect("a checkpoint of a non-empty chain");
    assert_eq!(cp.seq, 95);
    assert!(verify_checkpoint_signature(&cp, key.public_key()));
    extend(&db, &chain, 95..100);
    assert!(check(&db, &chain, Some(&cp)).ok);

    db.tamper(&format!(
        "DELETE FROM audit_events WHERE chain_id = '{chain}' AND seq >= 91"
    ));
    rewind_head(&db, &chain, 90);
    // The chain alone now looks whole…
    assert!(check(&db, &chain, None).ok);
    // …but not to the tenant holding the checkpoint.
    let report = check(&db, &chain, Some(&cp));
    assert_bad(&report, 91, "truncated_before_checkpoint");
    let report = db.read(|c| verify_signed(c, &chain, &cp, key.public_key(), &mut |_| {}));
    assert_bad(&report, 91, "truncated_before_checkpoint");
});

both!(full_forge_is_caught_by_a_checkpoint, |db| {
    let chain = chain_of(&db, 95);
    let key = signer();
    let cp = db
        .store
        .write_blocking({
            let chain = chain.clone();
            let key = Arc::clone(&key);
            move |c| checkpoint(c, &chain, &key, now())
        })
        .unwrap()
        .unwrap();
    extend(&db, &chain, 95..100);

    // Rewrite event 20 and re-hash everything after it consistently, head included.
    let mut conn = db.direct();
    let events = conn
        .transaction(|c| list(c, &chain, &EventFilter::default(), None, 500))
        .unwrap()
        .0;
    let mut prev = GENESIS_HASH.to_vec();
    let mut scratch = Vec::new();
    conn.transaction(|c| {
        for e in &events {
            let action = if e.seq == 20 {
                "visitor.export"
            } else {
                e.action.as_str()
            };
            let fields = e.fields.join(",");
            let hash = event_hash(
                &prev,
                &EventFields {
                    chain_id: &chain,
                    seq: e.seq,
                    id: &e.id,
                    occurred_at: e.occurred_at,
                    actor_kind: &e.actor.kind,
                    actor_id: &e.actor.id,
                    actor_role: &e.actor.role,
                    action,
                    target_kind: &e.target.kind,
                    target_id: e.target.id.as_deref(),
                    fields: &fields,
                    purpose: e.purpose.as_deref(),
                    justification: e.justification.as_deref(),
                    grant_id: e.grant_id.as_deref(),
                    request_id: e.request_id.as_deref(),
                    outcome: e.outcome.as_str(),
                    detail: e.detail.as_deref(),
                },
                &mut scratch,
            )
            .to_vec();
            diesel::update(audit_events::table.find((&chain, e.seq)))
                .set((
                    audit_events::action.eq(action),
                    audit_events::prev_hash.eq(&prev),
                    audit_events::hash.eq(&hash),
                ))
                .execute(c)?;
            prev = hash;
        }
        diesel::update(audit_heads::table.find(&chain))
            .set(audit_heads::hash.eq(&prev))
            .execute(c)?;
        Ok::<_, Error>(())
    })
    .unwrap();

    // Without the key's evidence the forgery is perfect…
    assert!(check(&db, &chain, None).ok);
    // …the checkpoint exposes it.
    let report = check(&db, &chain, Some(&cp));
    assert_bad(&report, 95, "checkpoint_mismatch");
    assert_eq!(report.checked, 94);
    // And the server refuses to sign the forged chain as if nothing happened.
    let err = db
        .store
        .write_blocking({
            let chain = chain.clone();
            let key = Arc::clone(&key);
            move |c| checkpoint(c, &chain, &key, now())
        })
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Conflict {
            code: "audit_chain_broken",
            ..
        }
    ));
});

both!(forged_checkpoint_signature_is_rejected, |db| {
    let chain = chain_of(&db, 10);
    let key = signer();
    let cp = db
        .read(|c| steward_audit::prepare_checkpoint(c, &chain, &key, now()))
        .unwrap();
    assert!(verify_checkpoint_signature(&cp, key.public_key()));
    let mut flipped = cp.clone();
    flipped.signature[0] ^= 0x01;
    assert!(!verify_checkpoint_signature(&flipped, key.public_key()));
    let report = db.read(|c| verify_signed(c, &chain, &flipped, key.public_key(), &mut |_| {}));
    assert_eq!(report.reason, Some("bad_checkpoint_signature"));
    assert!(!report.ok);
    // A checkpoint moved to a later seq no longer verifies either.
    let mut moved = cp.clone();
    moved.seq = 11;
    assert!(!verify_checkpoint_signature(&moved, key.public_key()));
    // Nor does one from another key.
    assert!(!verify_checkpoint_signature(&cp, signer().public_key()));
});

both!(checkpoints_are_stored_listed_and_incremental, |db| {
    let chain = tenant();
    let key = signer();
    let take = |db: &TestDb| {
        let chain = chain.clone();
        let key = Arc::clone(&key);
        db.store
            .write_blocking(move |c| checkpoint(c, &chain, &key, now()))
            .unwrap()
    };
    assert!(take(&db).is_none(), "an empty chain has nothing to sign");
    extend(&db, &chain, 0..30);
    let first = take(&db).unwrap();
    assert_eq!(take(&db).unwrap(), first, "same head, same checkpoint");
    extend(&db, &chain, 30..45);
    let second = take(&db).unwrap();
    assert_eq!(second.seq, 45);
    let listed = db.read(|c| steward_audit::list_checkpoints(c, &chain, 10));
    assert_eq!(listed, [second.clone(), first.clone()]);
    assert_eq!(
        db.read(|c| steward_audit::latest_checkpoint(c, &chain)),
        Some(second.clone())
    );
    assert!(check(&db, &chain, Some(&first)).ok);
    assert!(check(&db, &chain, Some(&second)).ok);
    // A checkpoint of another chain is a caller error, not a verdict.
    let err = db
        .store
        .read_blocking(|c| verify(c, &tenant(), Some(&first), &mut |_| {}))
        .unwrap_err();
    assert!(matches!(
        err,
        Error::Invalid {
            code: "checkpoint_chain_mismatch",
            ..
        }
    ));
});

/// A chain of several pages read by several loaders at once: every page is checked, in order,
/// and tampering in any page is still named at its first bad seq.
fn check_parallel(db: &TestDb, chain: &str) -> VerifyReport {
    let mut a = db.direct();
    let mut b = db.direct();
    let mut c = db.direct();
    steward_audit::verify_on(vec![&mut a, &mut b, &mut c], chain, None, &mut |_| {}).unwrap()
}

both!(parallel_loaders_cover_every_page_and_find_tampering, |db| {
    let per_page = usize::try_from(steward_audit::verify::PAGE_SIZE).unwrap();
    let n = per_page * 2 + per_page / 2;
    let chain = tenant();
    for start in (0..n).step_by(5_000) {
        extend(&db, &chain, start..(start + 5_000).min(n));
    }
    let n = i64::try_from(n).unwrap();
    let report = check_parallel(&db, &chain);
    assert!(report.ok, "{report:?}");
    assert_eq!(report.checked, n);

    // An edit in the third page and a deletion in the second: the deletion comes first.
    let edited = n - 100;
    db.tamper(&format!(
        "UPDATE audit_events SET action = 'visitor.list' WHERE chain_id = '{chain}' AND seq = {edited}"
    ));
    assert_bad(&check_parallel(&db, &chain), edited, "hash_mismatch");
    let deleted = i64::try_from(per_page).unwrap() + 7;
    db.tamper(&format!(
        "DELETE FROM audit_events WHERE chain_id = '{chain}' AND seq = {deleted}"
    ));
    let report = check_parallel(&db, &chain);
    assert_bad(&report, deleted, "seq_gap");
    assert_eq!(report.checked, deleted - 1);
});
