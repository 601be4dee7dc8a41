//! The target index (sorted runs plus an unindexed tail) must answer "which events are about
//! this record" exactly as a scan of the whole chain would, through both append paths (the
//! committer's staged batch and a plain transaction), across several runs and the tail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{now, tenant, TestDb};
use diesel::prelude::*;
use steward_audit::schema::audit_target_runs;
use steward_audit::target_index::{self, RUN_EVENTS};
use steward_audit::{append_many, events_for_target, list, Actor, EventFilter, NewEvent, Target};

/// Events about 97 visitors in a shuffled order; every 13th event is about no record.
fn target_of(i: usize) -> Option<String> {
    (!i.is_multiple_of(13)).then(|| format!("vis_{:026}", (i * 31) % 97))
}

fn event_about(i: usize) -> NewEvent {
    let action = if i.is_multiple_of(2) {
        "visitor.read"
    } else {
        "visitor.update"
    };
    let target = match target_of(i) {
        Some(id) => Target::record("visitor", id),
        None => Target::kind("tenant"),
    };
    NewEvent::new(action, Actor::new("user", "usr_1", "tenant_admin"), target)
}

/// Seqs of the events about `target` (seq = index + 1), optionally of one action only.
fn expected(total: usize, target: &str, action: Option<&str>) -> Vec<i64> {
    (0..total)
        .filter(|&i| target_of(i).as_deref() == Some(target))
        .filter(|&i| action.is_none_or(|a| (a == "visitor.read") == i.is_multiple_of(2)))
        .map(|i| i64::try_from(i).unwrap() + 1)
        .collect()
}

fn runs(db: &TestDb, chain: &str) -> Vec<(i64, i64)> {
    let chain = chain.to_string();
    db.read(move |c| {
        Ok(audit_target_runs::table
            .filter(audit_target_runs::chain_id.eq(chain))
            .select((audit_target_runs::run_start, audit_target_runs::run_end))
            .order(audit_target_runs::run_end.asc())
            .load(c)?)
    })
}

fn page_through(db: &TestDb, chain: &str, filter: &EventFilter, limit: i64) -> Vec<i64> {
    let mut seqs = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = db.read(|c| list(c, chain, filter, cursor, limit));
        assert!(page.len() <= usize::try_from(limit).unwrap());
        seqs.extend(page.iter().map(|e| e.seq));
        match next {
            Some(n) => cursor = Some(n),
            None => return seqs,
        }
    }
}

both!(runs_tile_the_chain_and_answer_like_a_scan, |db| {
    let chain = tenant();
    let run = usize::try_from(RUN_EVENTS).unwrap();
    let mut total = 0usize;
    // Three runs through the committer.
    for _ in 0..3 {
        let (c, from) = (chain.clone(), total);
        db.store
            .write_blocking(move |conn| {
                append_many(
                    conn,
                    &c,
                    (from..from + run).map(event_about).collect(),
                    now(),
                )
            })
            .unwrap();
        total += run;
    }
    // One longer run through a plain transaction, then a tail too short to be a run.
    for n in [run + 616, 2_500] {
        let mut conn = db.direct();
        conn.transaction(|c| {
            append_many(
                c,
                &chain,
                (total..total + n).map(event_about).collect(),
                now(),
            )
        })
        .unwrap();
        total += n;
    }

    let r = RUN_EVENTS;
    let last_run = 4 * r + 616;
    assert_eq!(
        runs(&db, &chain),
        [(0, r), (r, 2 * r), (2 * r, 3 * r), (3 * r, last_run)]
    );
    let with_target = (0..usize::try_from(last_run).unwrap())
        .filter(|&i| target_of(i).is_some())
        .count();
    assert_eq!(
        db.read(|c| target_index::check(c, &chain)),
        with_target,
        "every indexed event with a target, and nothing else"
    );

    for t in [0, 1, 42, 96] {
        let target = format!("vis_{t:026}");
        let all = expected(total, &target, None);
        assert!(all.iter().any(|s| *s <= r), "{target} in the first run");
        assert!(all.iter().any(|s| *s > last_run), "{target} in the tail");

        let history = db.read(|c| events_for_target(c, &chain, &target, 100_000));
        assert_eq!(history.iter().map(|e| e.seq).collect::<Vec<_>>(), all);
        assert!(history
            .iter()
            .all(|e| e.target.id.as_deref() == Some(target.as_str())));
        let first = db.read(|c| events_for_target(c, &chain, &target, 5));
        assert_eq!(first.iter().map(|e| e.seq).collect::<Vec<_>>(), all[..5]);

        let by_target = EventFilter {
            target_id: Some(target.clone()),
            ..Default::default()
        };
        assert_eq!(page_through(&db, &chain, &by_target, 500), all);
        let reads_of_target = EventFilter {
            target_id: Some(target.clone()),
            action: Some("visitor.read".into()),
            ..Default::default()
        };
        assert_eq!(
            page_through(&db, &chain, &reads_of_target, 333),
            expected(total, &target, Some("visitor.read"))
        );
    }
    let nobody = db.read(|c| events_for_target(c, &chain, "vis_unknown", 100));
    assert!(nobody.is_empty());
});

both!(a_rolled_back_batch_leaves_no_run, |db| {
    let chain = tenant();
    let run = usize::try_from(RUN_EVENTS).unwrap();
    let c = chain.clone();
    let failed = db
        .store
        .write_blocking(move |conn| -> steward_core::Result<()> {
            append_many(conn, &c, (0..run).map(event_about).collect(), now())?;
            // Reading the chain writes the staged events (and so the run) mid-unit.
            steward_audit::chain_len(conn, &c)?;
            Err(steward_core::Error::invalid("boom", "the unit fails"))
        });
    assert!(failed.is_err());
    assert!(runs(&db, &chain).is_empty());

    let c = chain.clone();
    db.store
        .write_blocking(move |conn| {
            append_many(conn, &c, (0..run).map(event_about).collect(), now())
        })
        .unwrap();
    assert_eq!(runs(&db, &chain), [(0, RUN_EVENTS)]);
});
