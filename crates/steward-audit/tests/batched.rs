//! Appends inside one committer batch share the chain head and go out together just before the
//! commit. A unit that fails must leave no trace in the chain, even when it made the batch
//! write its staged events early (by reading the audit log), and the events each unit was told
//! about must be exactly the stored ones.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{event, now, tenant, TestDb};
use steward_audit::{append, chain_len, head, verify, Appended};
use steward_core::Error;

type Outcome = Result<Appended, Error>;
type Unit = Box<dyn FnOnce(&mut steward_store::DbConnection) -> Outcome + Send>;

/// Runs `units` so they land in one committer batch: a first unit holds the writer for a
/// moment while the others queue up behind it, in order.
fn in_one_batch(db: &Arc<TestDb>, units: Vec<Unit>) -> Vec<Outcome> {
    let blocker = {
        let store = db.store.clone();
        thread::spawn(move || {
            store
                .write_blocking(|_| {
                    thread::sleep(Duration::from_millis(400));
                    Ok(())
                })
                .unwrap()
        })
    };
    thread::sleep(Duration::from_millis(50));
    let handles: Vec<_> = units
        .into_iter()
        .enumerate()
        .map(|(i, unit)| {
            let store = db.store.clone();
            thread::sleep(Duration::from_millis(if i == 0 { 0 } else { 40 }));
            thread::spawn(move || store.write_blocking(unit))
        })
        .collect();
    blocker.join().unwrap();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// What a unit that is meant to fail returns, after it has done its part.
fn failure(why: &'static str) -> Outcome {
    Err(Error::conflict("test_failure", why))
}

fn assert_chain(db: &TestDb, chain: &str, n: i64) {
    let report = db.read(|c| verify(c, chain, None, &mut |_| {}));
    assert!(report.ok, "{report:?}");
    assert_eq!(report.checked, n);
    assert_eq!(db.read(|c| chain_len(c, chain)), n);
}

both!(failed_unit_leaves_no_trace_in_the_batch, |db| {
    let db = Arc::new(db);
    let chain = tenant();
    let (a, b, c) = (chain.clone(), chain.clone(), chain.clone());
    let out = in_one_batch(
        &db,
        vec![
            Box::new(move |conn| append(conn, &a, event(1), now())),
            Box::new(move |conn| {
                append(conn, &b, event(2), now())?;
                failure("this unit fails after appending")
            }),
            Box::new(move |conn| append(conn, &c, event(3), now())),
        ],
    );
    let first = out[0].as_ref().unwrap();
    assert!(out[1].is_err());
    let third = out[2].as_ref().unwrap();
    assert_eq!((first.seq, third.seq), (1, 2));
    assert_chain(&db, &chain, 2);
    let (seq, hash) = db.read(|c| head(c, &chain)).unwrap();
    assert_eq!((seq, hash), (2, third.hash.clone()));
});

both!(
    a_read_inside_a_unit_sees_earlier_units_and_its_rollback_is_undone,
    |db| {
        let db = Arc::new(db);
        let chain = tenant();
        let (a, b, c) = (chain.clone(), chain.clone(), chain.clone());
        let out = in_one_batch(
            &db,
            vec![
                Box::new(move |conn| append(conn, &a, event(1), now())),
                Box::new(move |conn| {
                    let appended = append(conn, &b, event(2), now())?;
                    // Reading the log writes what the batch staged so far, inside this unit's
                    // savepoint; it must see the first unit's event and its own.
                    assert_eq!(chain_len(conn, &b)?, 2);
                    assert_eq!(head(conn, &b)?.map(|h| h.0), Some(appended.seq));
                    failure("this unit fails after reading")
                }),
                Box::new(move |conn| append(conn, &c, event(3), now())),
            ],
        );
        assert!(
            out[0].is_ok() && out[1].is_err() && out[2].is_ok(),
            "{out:?}"
        );
        assert_eq!(out[2].as_ref().unwrap().seq, 2);
        assert_chain(&db, &chain, 2);
    }
);

both!(
    a_chain_first_touched_by_a_failed_unit_starts_cleanly,
    |db| {
        let db = Arc::new(db);
        let chain = tenant();
        let (a, b) = (chain.clone(), chain.clone());
        let out = in_one_batch(
            &db,
            vec![
                Box::new(move |conn| {
                    append(conn, &a, event(1), now())?;
                    failure("the chain's first append fails")
                }),
                Box::new(move |conn| append(conn, &b, event(2), now())),
            ],
        );
        assert!(out[0].is_err());
        assert_eq!(out[1].as_ref().unwrap().seq, 1);
        assert_chain(&db, &chain, 1);
    }
);

// The first unit of a batch runs without a savepoint of its own (the committer rolls the
// whole transaction back and runs the rest again). What it wrote to the database before
// failing — here its staged event, written early by a read of the log — must be undone, and
// the units after it must still commit.
both!(
    a_failed_first_unit_that_wrote_leaves_no_trace_and_the_rest_commit,
    |db| {
        let db = Arc::new(db);
        let chain = tenant();
        let (a, b, c) = (chain.clone(), chain.clone(), chain.clone());
        let out = in_one_batch(
            &db,
            vec![
                Box::new(move |conn| {
                    append(conn, &a, event(1), now())?;
                    assert_eq!(chain_len(conn, &a)?, 1);
                    failure("the first unit fails after writing")
                }),
                Box::new(move |conn| append(conn, &b, event(2), now())),
                Box::new(move |conn| append(conn, &c, event(3), now())),
            ],
        );
        assert!(out[0].is_err(), "{out:?}");
        let (second, third) = (out[1].as_ref().unwrap(), out[2].as_ref().unwrap());
        assert_eq!((second.seq, third.seq), (1, 2));
        assert_chain(&db, &chain, 2);
    }
);

both!(one_batch_appends_to_many_chains, |db| {
    let db = Arc::new(db);
    let chains: Vec<String> = (0..4).map(|_| tenant()).collect();
    let units = (0..12)
        .map(|i| {
            let chain = chains[i % 4].clone();
            Box::new(move |conn: &mut steward_store::DbConnection| {
                append(conn, &chain, event(i), now())
            }) as Unit
        })
        .collect();
    let out = in_one_batch(&db, units);
    assert!(out.iter().all(Result::is_ok));
    for chain in &chains {
        assert_chain(&db, chain, 3);
    }
});

// The staged rows go out in fixed-size statements (500, 100, 20, 5, 1 rows); 1,237 events use
// every size, and each must land once, in order, with the chain intact.
both!(
    a_large_batch_lands_whole_through_every_statement_size,
    |db| {
        let chain = tenant();
        let events: Vec<_> = (0..1237).map(event).collect();
        let c = chain.clone();
        let appended = db
            .store
            .write_blocking(move |conn| steward_audit::append_many(conn, &c, events, now()))
            .unwrap();
        assert_eq!(appended.len(), 1237);
        let seqs: Vec<i64> = appended.iter().map(|a| a.seq).collect();
        assert_eq!(seqs, (1..=1237).collect::<Vec<_>>());
        assert_chain(&db, &chain, 1237);
        // A second, odd-sized batch reuses the cached statements and continues the chain.
        let c = chain.clone();
        let more: Vec<_> = (0..26).map(event).collect();
        db.store
            .write_blocking(move |conn| steward_audit::append_many(conn, &c, more, now()))
            .unwrap();
        assert_chain(&db, &chain, 1263);
    }
);
