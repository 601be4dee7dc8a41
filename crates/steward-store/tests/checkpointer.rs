//! Commits never checkpoint the SQLite WAL themselves (that would stall the group committer);
//! the store's background checkpointer moves committed pages into the database file soon after.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use steward_store::{DatabaseUrl, PoolOptions, Store};

#[test]
fn committed_pages_reach_the_database_file_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.db");
    let url = DatabaseUrl::parse(&format!("sqlite://{}", path.display())).unwrap();
    let store = Store::open(&url, PoolOptions::default()).unwrap();
    store
        .write_blocking(|c| {
            c.execute_batch("CREATE TABLE filler (id INTEGER PRIMARY KEY, body BLOB NOT NULL)")?;
            Ok(())
        })
        .unwrap();
    let before = std::fs::metadata(&path).unwrap().len();
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
        let size = std::fs::metadata(&path).unwrap().len();
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
    let rows: i64 = store
        .read_blocking(|c| {
            use diesel::prelude::*;
            #[derive(QueryableByName)]
            struct Count {
                #[diesel(sql_type = diesel::sql_types::BigInt)]
                n: i64,
            }
            let counted: Count =
                diesel::sql_query("SELECT COUNT(*) AS n FROM filler").get_result(c)?;
            Ok(counted.n)
        })
        .unwrap();
    assert_eq!(rows, 4_000);
}
