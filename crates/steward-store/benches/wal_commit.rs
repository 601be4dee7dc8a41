//! One commit in `synchronous = FULL` WAL mode, as the committer makes them: 1,000 rows with
//! a random-keyed index added to a table of 100,000: about 620 WAL frames and one `fsync`.
//!
//! `buffered_wal` goes through the VFS the committer's connection uses
//! (`steward_store::wal_buffer`), which issues a commit's frames 31 at a time. `default_vfs` is
//! the baseline in the same run: SQLite's own VFS, two `pwrite` calls per frame. Before every
//! iteration, untimed, the rows are deleted again and the WAL is checkpointed and restarted,
//! so each commit starts from the same table and overwrites the same WAL, as the writer does.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use steward_store::wal_buffer;

const ROWS: u64 = 1_000;

fn insert(rows: u64) -> String {
    format!(
        "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < {rows}) \
         INSERT INTO t (k, v) SELECT randomblob(16), randomblob(300) FROM k;"
    )
}

fn commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("wal_commit");
    group.throughput(Throughput::Elements(ROWS));
    group.sample_size(30);
    for (name, buffered) in [("default_vfs", false), ("buffered_wal", true)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.db");
        let path = path.to_str().unwrap();
        let mut conn = if buffered {
            wal_buffer::register().unwrap();
            SqliteConnection::establish(&wal_buffer::uri(path)).unwrap()
        } else {
            SqliteConnection::establish(path).unwrap()
        };
        conn.batch_execute(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA cache_size = -8192; \
             PRAGMA wal_autocheckpoint = 0; \
             CREATE TABLE t (id INTEGER PRIMARY KEY, k BLOB NOT NULL, v BLOB NOT NULL); \
             CREATE INDEX t_k ON t (k);",
        )
        .unwrap();
        conn.batch_execute(&insert(100_000)).unwrap();
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                let mut timed = Duration::ZERO;
                for _ in 0..iterations {
                    conn.batch_execute(
                        "DELETE FROM t WHERE id > 100000; PRAGMA wal_checkpoint(RESTART);",
                    )
                    .unwrap();
                    let started = Instant::now();
                    conn.batch_execute(&insert(ROWS)).unwrap();
                    timed += started.elapsed();
                }
                timed
            });
        });
    }
    group.finish();
}

criterion_group!(benches, commit);
criterion_main!(benches);
