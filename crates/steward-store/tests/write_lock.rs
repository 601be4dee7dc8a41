//! The group committer takes SQLite's write lock when its transaction begins. Another
//! connection holding that lock for a moment then makes a batch wait (`busy_timeout`) instead
//! of failing it with "database is locked", which is what a read-then-write batch did when its
//! transaction began deferred and had to upgrade at its first write (BENCHMARKS.md,
//! "Session 14": one lookup in a few hundred thousand failed that way under load).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;

fn counter(c: &mut steward_store::DbConnection) -> QueryResult<i64> {
    common::number(c, "SELECT n FROM counter")
}

#[test]
fn a_batch_that_reads_then_writes_waits_out_a_momentary_write_lock() {
    // Keep the whole FileStore: its temporary directory goes when it is dropped.
    let files = common::sqlite_file_store();
    let (store, path) = (&files.store, &files.path);
    store
        .write_blocking(|c| {
            c.execute_batch(
                "CREATE TABLE counter (n BIGINT NOT NULL); INSERT INTO counter VALUES (1)",
            )?;
            Ok(())
        })
        .unwrap();

    // Another connection to the same file holds the write lock for a moment.
    let mut other = SqliteConnection::establish(&path.to_string_lossy()).unwrap();
    other.batch_execute("BEGIN IMMEDIATE").unwrap();
    let holder = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        other.batch_execute("ROLLBACK").unwrap();
    });

    // Reads first, as an audited read's unit does (the chain's head), then writes.
    let started = std::time::Instant::now();
    let result = store.write_blocking(|c| {
        let seen = counter(c)?;
        c.execute_batch("UPDATE counter SET n = n + 1")?;
        Ok(seen)
    });
    let waited = started.elapsed();
    holder.join().unwrap();

    assert_eq!(result.unwrap(), 1, "the batch failed instead of waiting");
    // It committed after the lock was released, not before the lock was taken.
    assert!(
        waited >= Duration::from_millis(200),
        "waited only {waited:?}"
    );
    assert_eq!(store.read_blocking(|c| Ok(counter(c)?)).unwrap(), 2);
}
