//! Concurrent appends never fork or gap a chain: through the group committer (one server), and
//! on PostgreSQL through independent connections and transactions (several servers).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Barrier};

use common::{event, now, tenant, Backend, TestDb};
use diesel::prelude::*;
use steward_audit::schema::audit_events;
use steward_audit::{append, verify, VerifyReport};

fn assert_unbroken(db: &TestDb, chain: &str, n: i64) {
    let report = db.read(|c| verify(c, chain, None, &mut |_| {}));
    assert_eq!(
        report,
        VerifyReport {
            ok: true,
            checked: n,
            first_bad_seq: None,
            reason: None,
        }
    );
    let seqs: Vec<i64> = db.read(|c| {
        Ok(audit_events::table
            .filter(audit_events::chain_id.eq(chain))
            .order(audit_events::seq.asc())
            .select(audit_events::seq)
            .load(c)?)
    });
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>());
}

both!(committer_appends_from_8_threads, |db| {
    let chain = tenant();
    let db = Arc::new(db);
    let start = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (db, chain, start) = (Arc::clone(&db), chain.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                start.wait();
                for i in 0..1_000 {
                    let chain = chain.clone();
                    db.store
                        .write_blocking(move |c| append(c, &chain, event(t * 1_000 + i), now()))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_unbroken(&db, &chain, 8_000);
});

/// Eight "server processes", each with its own connection and its own transactions, appending
/// to one chain that does not exist yet — so the very first appends race to create its head.
#[test]
fn postgres_independent_connections_never_fork_a_chain() {
    let Some(db) = TestDb::open(Backend::Postgres) else {
        eprintln!("skipped: {} is not set", common::PG_ENV);
        return;
    };
    let chain = tenant();
    let db = Arc::new(db);
    let start = Arc::new(Barrier::new(8));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (db, chain, start) = (Arc::clone(&db), chain.clone(), Arc::clone(&start));
            std::thread::spawn(move || {
                let mut conn = db.direct();
                start.wait();
                for i in 0..250 {
                    conn.transaction(|c| append(c, &chain, event(t * 250 + i), now()))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_unbroken(&db, &chain, 2_000);
}
