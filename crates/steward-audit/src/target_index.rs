//! Finding a record's events ("who touched visitor X") without a random write per event.
//!
//! A B-tree index on `(chain_id, target_id)` puts each new event's entry next to the other
//! entries for its target: a read of a random visitor dirties a random page of an index as
//! large as the chain. On SQLite, whose WAL logs whole pages, that page was most of what an
//! audited read wrote (4 KiB per read), and dropping the index made `read` on a 1 M-visitor
//! tenant 1.6× faster (BENCHMARKS.md). So the index is kept as sorted *runs* instead, the way
//! an LSM tree does it:
//!
//! * The newest events, after the last run, are the *tail*. They are not indexed; a query
//!   scans them by seq (at most [`RUN_EVENTS`] plus one batch).
//! * When the tail reaches [`RUN_EVENTS`], the append that got it there also writes it as a
//!   run: its `(target_id, seq)` pairs sorted, keyed by the run's last seq. A new run's key is
//!   larger than every other run's of the chain, so its pages are appended, not scattered.
//! * A query seeks once per run, then scans the tail. Runs are not merged: a merge would
//!   hold the single writer for as long as it rewrites them (about 400 ms for eight runs,
//!   which showed as the `max` latency of every workload), and a seek per 16 K events keeps
//!   even a chain of 100 M events to a few thousand seeks for a data-subject export.
//!
//! Runs are written in the transaction that appends the events they cover, so the index and
//! the chain commit together. They are derived data: the chain, not the index, is what
//! `verify` proves.

use std::collections::BTreeSet;

use diesel::dsl::max;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use steward_core::{Error, Result};
use steward_store::DbConnection;

use crate::schema::{audit_events, audit_target_entries, audit_target_runs};

/// Events in the unindexed tail before they are written as a run.
pub const RUN_EVENTS: i64 = 16_384;
/// Values bound per `IN (…)` list.
const IN_CHUNK: usize = 500;

/// The last seq covered by a run (0 when the chain has none): events after it are the tail.
pub(crate) fn indexed_seq(conn: &mut DbConnection, chain_id: &str) -> Result<i64> {
    let end: Option<i64> = audit_target_runs::table
        .filter(audit_target_runs::chain_id.eq(chain_id))
        .select(max(audit_target_runs::run_end))
        .first(conn)?;
    Ok(end.unwrap_or(0))
}

/// Called after events up to `head_seq` were written to `chain_id`, in the same transaction:
/// writes the tail as a run once it is long enough.
pub(crate) fn after_append(conn: &mut DbConnection, chain_id: &str, head_seq: i64) -> Result<()> {
    let indexed = indexed_seq(conn, chain_id)?;
    if head_seq - indexed < RUN_EVENTS {
        return Ok(());
    }
    write_run(conn, chain_id, indexed, head_seq)
}

/// Indexes the events `(start, end]` as one run, in one `INSERT … SELECT`: the database sorts
/// the pairs and appends them without a row passing through Rust (building 16 K rows of
/// binds in diesel was 10 % of a pull's server time).
fn write_run(conn: &mut DbConnection, chain_id: &str, start: i64, end: i64) -> Result<()> {
    let pairs = audit_events::table
        .filter(audit_events::chain_id.eq(chain_id))
        .filter(audit_events::seq.gt(start))
        .filter(audit_events::seq.le(end))
        .filter(audit_events::target_id.is_not_null())
        .order((audit_events::target_id.asc(), audit_events::seq.asc()))
        .select((
            audit_events::chain_id,
            end.into_sql::<BigInt>(),
            audit_events::target_id.assume_not_null(),
            audit_events::seq,
        ));
    diesel::insert_into(audit_target_entries::table)
        .values(pairs)
        .into_columns((
            audit_target_entries::chain_id,
            audit_target_entries::run_end,
            audit_target_entries::target_id,
            audit_target_entries::seq,
        ))
        .execute(conn)?;
    diesel::insert_into(audit_target_runs::table)
        .values((
            audit_target_runs::chain_id.eq(chain_id),
            audit_target_runs::run_end.eq(end),
            audit_target_runs::run_start.eq(start),
        ))
        .execute(conn)?;
    Ok(())
}

/// The seqs of `chain_id`'s events about `target_id` after `after`, ascending: from every run
/// that reaches past `after`, then from the tail. Stops once it has at least `want`; the
/// result may hold more, all in order.
pub(crate) fn target_seqs(
    conn: &mut DbConnection,
    chain_id: &str,
    target_id: &str,
    after: i64,
    want: usize,
) -> Result<Vec<i64>> {
    let runs: Vec<i64> = audit_target_runs::table
        .filter(audit_target_runs::chain_id.eq(chain_id))
        .filter(audit_target_runs::run_end.gt(after))
        .select(audit_target_runs::run_end)
        .order(audit_target_runs::run_end.asc())
        .load(conn)?;
    // The tail starts after the last run this query saw, not after a second look at the run
    // table: on PostgreSQL each statement has its own snapshot, and a run written in between
    // would otherwise be skipped by both the run lookups and the tail scan.
    let indexed = runs.last().copied().unwrap_or(0);
    let mut seqs = BTreeSet::new();
    for chunk in runs.chunks(IN_CHUNK) {
        let found: Vec<i64> = audit_target_entries::table
            .filter(audit_target_entries::chain_id.eq(chain_id))
            .filter(audit_target_entries::run_end.eq_any(chunk))
            .filter(audit_target_entries::target_id.eq(target_id))
            .filter(audit_target_entries::seq.gt(after))
            .select(audit_target_entries::seq)
            .load(conn)?;
        seqs.extend(found);
        if seqs.len() >= want {
            return Ok(seqs.into_iter().collect());
        }
    }
    let remaining = i64::try_from(want.saturating_sub(seqs.len())).unwrap_or(i64::MAX);
    let tail: Vec<i64> = audit_events::table
        .filter(audit_events::chain_id.eq(chain_id))
        .filter(audit_events::seq.gt(after.max(indexed)))
        .filter(audit_events::target_id.eq(target_id))
        .select(audit_events::seq)
        .order(audit_events::seq.asc())
        .limit(remaining)
        .load(conn)?;
    seqs.extend(tail);
    Ok(seqs.into_iter().collect())
}

/// Checks that the runs cover exactly the chain's events with a target up to the last run —
/// for tests and for an operator who suspects the index (the chain itself is proven by
/// `verify`). Returns the number of entries checked.
pub fn check(conn: &mut DbConnection, chain_id: &str) -> Result<usize> {
    crate::staged::flush(conn)?;
    let runs: Vec<(i64, i64)> = audit_target_runs::table
        .filter(audit_target_runs::chain_id.eq(chain_id))
        .select((audit_target_runs::run_start, audit_target_runs::run_end))
        .order(audit_target_runs::run_end.asc())
        .load(conn)?;
    let mut covered = 0;
    for (start, end) in runs {
        if start != covered || end <= start {
            return Err(Error::internal_msg(
                "the audit target index's runs do not tile the chain",
            ));
        }
        covered = end;
    }
    let indexed = indexed_seq(conn, chain_id)?;
    let mut expected: Vec<(String, i64)> = audit_events::table
        .filter(audit_events::chain_id.eq(chain_id))
        .filter(audit_events::seq.le(indexed))
        .filter(audit_events::target_id.is_not_null())
        .select((audit_events::target_id.assume_not_null(), audit_events::seq))
        .load(conn)?;
    let mut indexed_pairs: Vec<(String, i64)> = audit_target_entries::table
        .filter(audit_target_entries::chain_id.eq(chain_id))
        .select((audit_target_entries::target_id, audit_target_entries::seq))
        .load(conn)?;
    expected.sort_unstable();
    indexed_pairs.sort_unstable();
    if expected != indexed_pairs {
        return Err(Error::internal_msg(
            "the audit target index does not match the chain",
        ));
    }
    Ok(expected.len())
}
