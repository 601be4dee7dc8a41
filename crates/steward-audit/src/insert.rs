//! Writing chained event rows to `audit_events`.
//!
//! Events written together often differ only in where they sit and what they name: a pull of
//! 1,000 records is 1,000 events with one actor, action, purpose, grant, request and time, and
//! only `seq`, `id`, the two hashes, the target and the field names of each differ. diesel's
//! multi-row INSERT binds all 19 columns of every row, and in the single SQLite writer binding
//! them was 9 % of a pull's server time (BENCHMARKS.md, "Session 12"). So on SQLite a run of
//! at least [`MIN_SHARED_RUN`] such rows goes out as one statement that binds the shared
//! values once, for the first row, and names them again by number (`?7`) in the rows after
//! it. The stored rows are exactly those a plain INSERT would store; only the statement
//! differs. Everything else (single events, PostgreSQL) uses diesel's multi-row INSERT.

use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Binary, Nullable, Text, Timestamp};
use diesel::sqlite::Sqlite;
use diesel::{QueryResult, RunQueryDsl, SqliteConnection};
use steward_core::Result;
use steward_store::{DbConnection, DbTimestamp};

use crate::event::EventRow;
use crate::schema::audit_events;

/// Shortest run of rows that is written with its shared values bound once. Shorter runs (an
/// audited read is a run of one) join the plain multi-row INSERTs around them.
const MIN_SHARED_RUN: usize = 20;

/// Writes `rows` in order.
pub(crate) fn insert_rows(conn: &mut DbConnection, rows: &[EventRow]) -> Result<()> {
    if !matches!(conn, DbConnection::Sqlite(_)) {
        insert_plain(conn, rows)?;
        return Ok(());
    }
    // rows[plain_from..start] wait for a plain INSERT.
    let mut plain_from = 0;
    let mut start = 0;
    while start < rows.len() {
        let end = start + shared_run_len(&rows[start..]);
        if end - start >= MIN_SHARED_RUN {
            insert_plain(conn, &rows[plain_from..start])?;
            let written = match &mut *conn {
                DbConnection::Sqlite(c) => insert_shared_run(c, &rows[start..end])?,
                DbConnection::Postgres(_) => 0,
            };
            plain_from = start + written;
        }
        start = end;
    }
    insert_plain(conn, &rows[plain_from..])?;
    Ok(())
}

fn insert_plain(conn: &mut DbConnection, rows: &[EventRow]) -> QueryResult<usize> {
    steward_store::insert_chunked!(conn, audit_events::table, rows)
}

/// How many rows from the first share every column but the per-row ones (see [`SharedRun`]).
fn shared_run_len(rows: &[EventRow]) -> usize {
    let Some(first) = rows.first() else {
        return 0;
    };
    rows.iter().take_while(|r| shares_with(first, r)).count()
}

fn shares_with(a: &EventRow, b: &EventRow) -> bool {
    a.chain_id == b.chain_id
        && a.occurred_at.0 == b.occurred_at.0
        && a.actor_kind == b.actor_kind
        && a.actor_id == b.actor_id
        && a.actor_role == b.actor_role
        && a.action == b.action
        && a.target_kind == b.target_kind
        && a.purpose == b.purpose
        && a.justification == b.justification
        && a.grant_id == b.grant_id
        && a.request_id == b.request_id
        && a.outcome == b.outcome
        && a.detail == b.detail
}

/// Writes the rows of a shared run in statements of fixed sizes, so each size is prepared
/// once per connection. Returns how many it wrote: a remainder shorter than the smallest size
/// is left to the plain INSERT after it.
fn insert_shared_run(c: &mut SqliteConnection, rows: &[EventRow]) -> QueryResult<usize> {
    let (full, rest) = rows.as_chunks::<500>();
    for chunk in full {
        SharedRun(chunk).execute(c)?;
    }
    let (full, rest) = rest.as_chunks::<100>();
    for chunk in full {
        SharedRun(chunk).execute(c)?;
    }
    let (full, rest) = rest.as_chunks::<MIN_SHARED_RUN>();
    for chunk in full {
        SharedRun(chunk).execute(c)?;
    }
    Ok(rows.len() - rest.len())
}

/// `INSERT INTO audit_events … VALUES (…), (…)` for `N` rows sharing every column but `seq`,
/// `id`, `prev_hash`, `hash`, `target_id` and `fields`. The first row binds all 19 values with
/// `?`, numbered 1 to 19 in column order; later rows bind their six and repeat the first row's
/// numbers for the rest. A `?` takes the number after the largest assigned so far, so the
/// binds still go in the order they are pushed.
struct SharedRun<'a, const N: usize>(&'a [EventRow; N]);

impl<const N: usize> QueryId for SharedRun<'_, N> {
    type QueryId = SharedRun<'static, N>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

/// The columns in table order; `true` for the ones each row binds itself.
const COLUMNS: [(&str, bool); 19] = [
    ("chain_id", false),
    ("seq", true),
    ("id", true),
    ("prev_hash", true),
    ("hash", true),
    ("occurred_at", false),
    ("actor_kind", false),
    ("actor_id", false),
    ("actor_role", false),
    ("action", false),
    ("target_kind", false),
    ("target_id", true),
    ("fields", true),
    ("purpose", false),
    ("justification", false),
    ("grant_id", false),
    ("request_id", false),
    ("outcome", false),
    ("detail", false),
];

fn push_value<'b>(
    out: &mut AstPass<'_, 'b, Sqlite>,
    row: &'b EventRow,
    column: usize,
) -> QueryResult<()> {
    match column {
        0 => out.push_bind_param::<Text, String>(&row.chain_id),
        1 => out.push_bind_param::<BigInt, i64>(&row.seq),
        2 => out.push_bind_param::<Text, String>(&row.id),
        3 => out.push_bind_param::<Binary, Vec<u8>>(&row.prev_hash),
        4 => out.push_bind_param::<Binary, Vec<u8>>(&row.hash),
        5 => out.push_bind_param::<Timestamp, DbTimestamp>(&row.occurred_at),
        6 => out.push_bind_param::<Text, String>(&row.actor_kind),
        7 => out.push_bind_param::<Text, String>(&row.actor_id),
        8 => out.push_bind_param::<Text, String>(&row.actor_role),
        9 => out.push_bind_param::<Text, String>(&row.action),
        10 => out.push_bind_param::<Text, String>(&row.target_kind),
        11 => out.push_bind_param::<Nullable<Text>, Option<String>>(&row.target_id),
        12 => out.push_bind_param::<Text, String>(&row.fields),
        13 => out.push_bind_param::<Nullable<Text>, Option<String>>(&row.purpose),
        14 => out.push_bind_param::<Nullable<Text>, Option<String>>(&row.justification),
        15 => out.push_bind_param::<Nullable<Text>, Option<String>>(&row.grant_id),
        16 => out.push_bind_param::<Nullable<Text>, Option<String>>(&row.request_id),
        17 => out.push_bind_param::<Text, String>(&row.outcome),
        _ => out.push_bind_param::<Nullable<Text>, Option<String>>(&row.detail),
    }
}

impl<const N: usize> QueryFragment<Sqlite> for SharedRun<'_, N> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql("INSERT INTO audit_events (");
        for (i, (name, _)) in COLUMNS.iter().enumerate() {
            if i > 0 {
                out.push_sql(", ");
            }
            out.push_sql(name);
        }
        out.push_sql(") VALUES ");
        for (r, row) in self.0.iter().enumerate() {
            out.push_sql(if r == 0 { "(" } else { ", (" });
            for (i, (_, per_row)) in COLUMNS.iter().enumerate() {
                if i > 0 {
                    out.push_sql(", ");
                }
                if r == 0 || *per_row {
                    push_value(&mut out, row, i)?;
                } else {
                    // The first row bound column i as parameter i + 1.
                    out.push_sql(SHARED_PARAMS[i]);
                }
            }
            out.push_sql(")");
        }
        Ok(())
    }
}

/// `?1` … `?19`: the first row's parameter for each column.
const SHARED_PARAMS: [&str; 19] = [
    "?1", "?2", "?3", "?4", "?5", "?6", "?7", "?8", "?9", "?10", "?11", "?12", "?13", "?14", "?15",
    "?16", "?17", "?18", "?19",
];

impl<const N: usize> RunQueryDsl<SqliteConnection> for SharedRun<'_, N> {}
