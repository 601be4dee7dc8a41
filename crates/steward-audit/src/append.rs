//! Appending to a chain, inside the caller's transaction.
//!
//! The event must commit atomically with the change it records (invariant 1), so `append` never
//! opens or commits a transaction of its own: it refuses to run outside one. It takes the
//! chain's head row, writes the events after it, and moves the head. On PostgreSQL the head row
//! is locked (`SELECT … FOR UPDATE`), so two server processes appending to one chain queue
//! behind each other instead of forking it; the primary key (chain_id, seq) would reject a fork
//! anyway. On SQLite there is one writer, the group committer, and its transaction already
//! serializes every append.

use chrono::NaiveDateTime;
use diesel::connection::{Connection, TransactionManager};
use diesel::prelude::*;
use diesel::{PgConnection, SqliteConnection};
use serde::Serialize;
use steward_core::clock::truncate_micros;
use steward_core::{Error, Id, Result};
use steward_store::{batch, DbConnection};

use crate::canonical::{encode_prefix, GENESIS_HASH};
use crate::event::{EventRow, NewEvent};
use crate::insert::insert_rows;
use crate::schema::audit_heads;
use crate::staged::{Head, StagedAppends};
use crate::PLATFORM_CHAIN;

/// Where an appended event landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Appended {
    pub id: String,
    pub seq: i64,
    #[serde(serialize_with = "crate::encoding::ser_hex")]
    pub hash: Vec<u8>,
}

/// Appends one event to `chain_id` (a tenant id, or [`PLATFORM_CHAIN`]). Call it inside the
/// transaction of the change it records — for the server, inside a committer unit.
pub fn append(
    conn: &mut DbConnection,
    chain_id: &str,
    event: NewEvent,
    now: NaiveDateTime,
) -> Result<Appended> {
    append_many(conn, chain_id, vec![event], now)?
        .pop()
        .ok_or(Error::internal_msg("append wrote no event"))
}

/// Events checked, given their ids and time, and encoded as far as they can be without the
/// chain's head ([`prepare`]). Preparing is most of an append's CPU and needs no connection,
/// so the server does it where the request runs: the single writer holding the head then only
/// numbers, hashes and stores the events ([`append_prepared`]).
#[derive(Debug)]
pub struct PreparedEvents {
    chain_id: String,
    occurred_at: NaiveDateTime,
    /// Each row unchained, with its encoding after `seq` (`EventRow::unchained`).
    events: Vec<(EventRow, Vec<u8>)>,
}

impl PreparedEvents {
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// Checks `events` for `chain_id` and prepares them to be appended at `now`. Fails, before
/// anything is written, on an event that could hold a value (see `NewEvent::validate`) or a
/// chain id that is neither a tenant's nor the platform's.
pub fn prepare(
    chain_id: &str,
    events: Vec<NewEvent>,
    now: NaiveDateTime,
) -> Result<PreparedEvents> {
    check_chain_id(chain_id)?;
    for e in &events {
        e.validate()?;
    }
    let now = truncate_micros(now.and_utc()).naive_utc();
    let events = events
        .into_iter()
        .map(|e| EventRow::unchained(chain_id, e, now))
        .collect();
    Ok(PreparedEvents {
        chain_id: chain_id.to_string(),
        occurred_at: now,
        events,
    })
}

/// Appends several events to one chain, in order, taking its head once.
pub fn append_many(
    conn: &mut DbConnection,
    chain_id: &str,
    events: Vec<NewEvent>,
    now: NaiveDateTime,
) -> Result<Vec<Appended>> {
    append_prepared(conn, prepare(chain_id, events, now)?)
}

/// Appends events [`prepare`]d earlier, in order, taking the chain's head once. Call it inside
/// the transaction of the change the events record.
pub fn append_prepared(conn: &mut DbConnection, prepared: PreparedEvents) -> Result<Vec<Appended>> {
    if prepared.is_empty() {
        return Ok(Vec::new());
    }
    require_transaction(conn)?;
    if batch::is_active() {
        return append_staged(conn, prepared);
    }
    let (chain_id, now) = (prepared.chain_id.clone(), prepared.occurred_at);
    let (mut seq, mut prev) = take_head(conn, &chain_id, now)?;
    let rows = chain_rows(&mut seq, &mut prev, prepared);
    insert_rows(conn, &rows)?;
    write_head(conn, &chain_id, seq, &prev, now)?;
    crate::target_index::after_append(conn, &chain_id, seq)?;
    Ok(rows.iter().map(Appended::of).collect())
}

/// Inside a committer batch: the head is taken from the database once per batch and the rows
/// are written just before the batch commits (see `staged`).
fn append_staged(conn: &mut DbConnection, prepared: PreparedEvents) -> Result<Vec<Appended>> {
    let (chain_id, now) = (prepared.chain_id.clone(), prepared.occurred_at);
    let known =
        batch::with(|s: &mut StagedAppends| s.head(&chain_id).map(|h| (h.seq, h.hash.clone())))
            .flatten();
    let (mut seq, mut prev) = match known {
        Some(head) => head,
        None => {
            let (seq, hash) = take_head(conn, &chain_id, now)?;
            let head = Head {
                seq,
                hash: hash.clone(),
                updated_at: now,
                dirty: false,
            };
            batch::with(|s: &mut StagedAppends| s.adopt_head(&chain_id, head));
            (seq, hash)
        }
    };
    let rows = chain_rows(&mut seq, &mut prev, prepared);
    let appended = rows.iter().map(Appended::of).collect();
    batch::with(|s: &mut StagedAppends| s.push(&chain_id, rows, now)).ok_or(
        Error::internal_msg("committer batch ended during an audit append"),
    )?;
    Ok(appended)
}

/// Numbers and hashes the prepared events in order after (`seq`, `prev`), moving both to the
/// last event.
fn chain_rows(seq: &mut i64, prev: &mut Vec<u8>, prepared: PreparedEvents) -> Vec<EventRow> {
    let mut prefix = Vec::with_capacity(64);
    encode_prefix(prepared.chain_id.as_bytes(), &mut prefix);
    let mut rows = Vec::with_capacity(prepared.events.len());
    for (mut row, tail) in prepared.events {
        *seq += 1;
        row.chain(*seq, prev, &prefix, &tail);
        prev.clone_from(&row.hash);
        rows.push(row);
    }
    rows
}

impl Appended {
    fn of(row: &EventRow) -> Self {
        Appended {
            id: row.id.clone(),
            seq: row.seq,
            hash: row.hash.clone(),
        }
    }
}

pub(crate) fn write_head(
    conn: &mut DbConnection,
    chain_id: &str,
    seq: i64,
    hash: &[u8],
    now: NaiveDateTime,
) -> Result<()> {
    let moved = diesel::update(audit_heads::table.find(chain_id))
        .set((
            audit_heads::seq.eq(seq),
            audit_heads::hash.eq(hash),
            audit_heads::updated_at.eq(now),
        ))
        .execute(conn)?;
    if moved != 1 {
        return Err(Error::internal_msg("audit head vanished during append"));
    }
    Ok(())
}

/// A chain is a tenant's or the platform's; anything else is a caller bug that would create a
/// chain nobody verifies.
pub(crate) fn check_chain_id(chain_id: &str) -> Result<()> {
    if chain_id == PLATFORM_CHAIN || Id::Tenant.matches(chain_id) {
        Ok(())
    } else {
        Err(Error::invalid(
            "invalid_audit_chain",
            "an audit chain is a tenant id or `platform`",
        ))
    }
}

fn require_transaction(conn: &mut DbConnection) -> Result<()> {
    let depth =
        <DbConnection as Connection>::TransactionManager::transaction_manager_status_mut(conn)
            .transaction_depth()?;
    if depth.is_none() {
        return Err(Error::internal_msg(
            "audit append must run inside the transaction of the change it records",
        ));
    }
    Ok(())
}

/// The head's (seq, hash), locked for the rest of the transaction; created at seq 0 with the
/// genesis hash on a chain's first append.
fn take_head(
    conn: &mut DbConnection,
    chain_id: &str,
    now: NaiveDateTime,
) -> Result<(i64, Vec<u8>)> {
    match conn {
        DbConnection::Postgres(pg) => {
            if let Some(head) = lock_head_pg(pg, chain_id)? {
                return Ok(head);
            }
            // Two first appends may race here: one inserts, the other's insert waits for it
            // and then does nothing, and both go on to lock the one row.
            diesel::insert_into(audit_heads::table)
                .values(new_head(chain_id, now))
                .on_conflict_do_nothing()
                .execute(pg)?;
            lock_head_pg(pg, chain_id)?
                .ok_or(Error::internal_msg("audit head missing after creation"))
        }
        DbConnection::Sqlite(c) => {
            if let Some(head) = head_sqlite(c, chain_id)? {
                return Ok(head);
            }
            diesel::insert_into(audit_heads::table)
                .values(new_head(chain_id, now))
                .execute(c)?;
            Ok((0, GENESIS_HASH.to_vec()))
        }
    }
}

type NewHead<'a> = (
    diesel::dsl::Eq<audit_heads::chain_id, &'a str>,
    diesel::dsl::Eq<audit_heads::seq, i64>,
    diesel::dsl::Eq<audit_heads::hash, Vec<u8>>,
    diesel::dsl::Eq<audit_heads::updated_at, NaiveDateTime>,
);

fn new_head(chain_id: &str, now: NaiveDateTime) -> NewHead<'_> {
    (
        audit_heads::chain_id.eq(chain_id),
        audit_heads::seq.eq(0i64),
        audit_heads::hash.eq(GENESIS_HASH.to_vec()),
        audit_heads::updated_at.eq(now),
    )
}

fn lock_head_pg(pg: &mut PgConnection, chain_id: &str) -> QueryResult<Option<(i64, Vec<u8>)>> {
    audit_heads::table
        .find(chain_id)
        .select((audit_heads::seq, audit_heads::hash))
        .for_update()
        .first(pg)
        .optional()
}

fn head_sqlite(c: &mut SqliteConnection, chain_id: &str) -> QueryResult<Option<(i64, Vec<u8>)>> {
    audit_heads::table
        .find(chain_id)
        .select((audit_heads::seq, audit_heads::hash))
        .first(c)
        .optional()
}
