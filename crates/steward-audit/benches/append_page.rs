//! Appending one pull page's audit events (1,000) to a SQLite chain, in a transaction that is
//! rolled back so every iteration writes into the same B-trees.
//!
//! `shared`: the events of a pull page, which share actor, action, purpose, grant, request and
//! time; on SQLite they are written with those values bound once (`src/insert.rs`).
//! `distinct` is the baseline in the same run: the same page with a request id of its own per
//! event, so no two rows share and every row binds all 19 columns, as every append did before.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use diesel::result::Error as DieselError;
use diesel::{Connection, SqliteConnection};
use steward_audit::{append, append_prepared, prepare, Actor, NewEvent, Target};
use steward_core::Id;
use steward_store::pool::PoolOptions;
use steward_store::{DatabaseUrl, DbConnection, Store};

const PAGE: usize = 1000;

fn page(distinct_requests: bool) -> Vec<NewEvent> {
    (0..PAGE)
        .map(|i| {
            let request = if distinct_requests {
                format!("req_{i:026}")
            } else {
                "req_01JD0000000000000000000000".to_string()
            };
            NewEvent::new(
                "transfer.pull",
                Actor::new(
                    "subprocessor",
                    "sub_01JD0000000000000000000001",
                    "subprocessor",
                ),
                Target::record("visitor", Id::Visitor.generate()),
            )
            .fields(&["address", "email", "name"])
            .purpose("analytics")
            .grant("auth_01JD0000000000000000000001")
            .request_id(request)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("steward.db");
    // Opening the store creates and migrates the database.
    let url = DatabaseUrl::parse(&format!("sqlite://{}", path.display())).unwrap();
    drop(Store::open(&url, PoolOptions::default()).unwrap());
    let mut conn =
        DbConnection::Sqlite(SqliteConnection::establish(path.to_str().unwrap()).unwrap());
    let chain = Id::Tenant.generate();
    let now = chrono::Utc::now().naive_utc();
    conn.transaction::<_, DieselError, _>(|c| {
        for e in page(true) {
            append(c, &chain, e, now).map_err(|_| DieselError::NotFound)?;
        }
        Ok(())
    })
    .unwrap();

    let mut group = c.benchmark_group("audit_append_page");
    group.throughput(Throughput::Elements(PAGE as u64));
    for (name, distinct) in [("distinct", true), ("shared", false)] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || prepare(&chain, page(distinct), now).unwrap(),
                |prepared| {
                    let out = conn.transaction::<(), DieselError, _>(|c| {
                        append_prepared(c, prepared).map_err(|_| DieselError::NotFound)?;
                        Err(DieselError::RollbackTransaction)
                    });
                    assert!(matches!(out, Err(DieselError::RollbackTransaction)));
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
