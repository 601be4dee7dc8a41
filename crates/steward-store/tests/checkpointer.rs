//! Commits never checkpoint the SQLite WAL themselves (that would stall the group committer);
//! the store's background checkpointer moves committed pages into the database file soon after.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

#[test]
fn committed_pages_reach_the_database_file_in_the_background() {
    // Keep the whole FileStore: its temporary directory goes when it is dropped.
    let files = common::sqlite_file_store();
    let (store, path) = (&files.store, &files.path);
    store
        .write_blocking(|c| {
            c.execute_batch("CREATE TABLE filler (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")?;
            Ok(())
        })
        .unwrap();
    let before = std::fs::metadata(path).unwrap().len();
    // About 4 MB, in several batches.
    for _ in 0..8 {
        store
            .write_blocking(|c| {
                c.execute_batch(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) \
                     INSERT INTO filler (body) SELECT randomblob(1000) FROM n",
                )?;
                Ok(())
            })
            .unwrap();
    }
    // The WAL holds the data right after the commits; the database file catches up without
    // anyone closing the store or writing again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let size = std::fs::metadata(path).unwrap().len();
        if size > before + 3_000_000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "database file still {size} bytes (was {before}): no checkpoint happened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // And everything committed is there.
    let rows = store
        .read_blocking(|c| Ok(common::number(c, "SELECT COUNT(*) AS n FROM filler")?))
        .unwrap();
    assert_eq!(rows, 4_000);
}
