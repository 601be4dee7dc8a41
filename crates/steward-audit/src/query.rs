//! Reading a chain: filtered pages for the audit API, a record's access history for a
//! data-subject export, and the chain inventory `verify` walks.

use chrono::NaiveDateTime;
use diesel::dsl::max;
use diesel::prelude::*;
use steward_core::{Error, Result};
use steward_store::pagination::MAX_LIMIT;
use steward_store::DbConnection;

use crate::event::{AuditEvent, EventRow};
use crate::schema::{audit_events, audit_heads};
use crate::target_index;

/// Narrows [`list`]; every set condition must hold. `from` is inclusive, `to` exclusive.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub action: Option<String>,
    pub actor_id: Option<String>,
    pub target_id: Option<String>,
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
}

/// One page of `chain_id`'s events in seq order, after `after_seq` (the previous page's
/// cursor). The second value is the cursor for the next page, `None` on the last one.
pub fn list(
    conn: &mut DbConnection,
    chain_id: &str,
    filter: &EventFilter,
    after_seq: Option<i64>,
    limit: i64,
) -> Result<(Vec<AuditEvent>, Option<i64>)> {
    crate::staged::flush(conn)?;
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::invalid(
            "invalid_limit",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let max = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut rows = match &filter.target_id {
        // The target index narrows the chain to the record's events; the other conditions
        // then apply to those, a chunk of seqs at a time, until the page is full.
        Some(target_id) => {
            let seqs = target_index::target_seqs(
                conn,
                chain_id,
                target_id,
                after_seq.unwrap_or(0),
                usize::MAX,
            )?;
            let mut rows: Vec<EventRow> = Vec::new();
            for chunk in seqs.chunks(SEQ_CHUNK) {
                let left = i64::try_from(max + 1 - rows.len()).unwrap_or(i64::MAX);
                rows.extend(
                    filtered(chain_id, filter, after_seq, left)
                        .filter(audit_events::seq.eq_any(chunk.to_vec()))
                        .select(EventRow::as_select())
                        .load(conn)?,
                );
                if rows.len() > max {
                    break;
                }
            }
            rows
        }
        None => filtered(chain_id, filter, after_seq, limit + 1)
            .select(EventRow::as_select())
            .load(conn)?,
    };
    let more = rows.len() > max;
    rows.truncate(max);
    let next = if more {
        rows.last().map(|r| r.seq)
    } else {
        None
    };
    let events = rows
        .into_iter()
        .map(AuditEvent::try_from)
        .collect::<Result<Vec<_>>>()?;
    Ok((events, next))
}

/// Seqs bound per `IN (…)` list.
const SEQ_CHUNK: usize = 500;

/// `chain_id`'s events after `after_seq` meeting every condition of `filter` except the
/// target (which [`list`] answers from the target index), in seq order, at most `limit`.
fn filtered<'a>(
    chain_id: &'a str,
    filter: &EventFilter,
    after_seq: Option<i64>,
    limit: i64,
) -> audit_events::BoxedQuery<'a, <DbConnection as diesel::Connection>::Backend> {
    let mut q = audit_events::table
        .filter(audit_events::chain_id.eq(chain_id))
        .order(audit_events::seq.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after_seq {
        q = q.filter(audit_events::seq.gt(after));
    }
    if let Some(action) = &filter.action {
        q = q.filter(audit_events::action.eq(action.clone()));
    }
    if let Some(actor_id) = &filter.actor_id {
        q = q.filter(audit_events::actor_id.eq(actor_id.clone()));
    }
    if let Some(from) = filter.from {
        q = q.filter(audit_events::occurred_at.ge(from));
    }
    if let Some(to) = filter.to {
        q = q.filter(audit_events::occurred_at.lt(to));
    }
    q
}

/// The first `limit` events about one record, oldest first: who touched it, when, why.
pub fn events_for_target(
    conn: &mut DbConnection,
    chain_id: &str,
    target_id: &str,
    limit: i64,
) -> Result<Vec<AuditEvent>> {
    crate::staged::flush(conn)?;
    let want = usize::try_from(limit)
        .ok()
        .filter(|l| *l >= 1)
        .ok_or_else(|| Error::invalid("invalid_limit", "limit must be at least 1"))?;
    let mut seqs = target_index::target_seqs(conn, chain_id, target_id, 0, want)?;
    seqs.truncate(want);
    let mut rows: Vec<EventRow> = Vec::with_capacity(seqs.len());
    for chunk in seqs.chunks(SEQ_CHUNK) {
        rows.extend(
            audit_events::table
                .filter(audit_events::chain_id.eq(chain_id))
                .filter(audit_events::seq.eq_any(chunk))
                .select(EventRow::as_select())
                .order(audit_events::seq.asc())
                .load::<EventRow>(conn)?,
        );
    }
    rows.into_iter().map(AuditEvent::try_from).collect()
}

/// Every chain with events or a head, sorted. Read from both tables so a chain whose head row
/// was deleted is still listed (and then fails verification).
pub fn chains(conn: &mut DbConnection) -> Result<Vec<String>> {
    crate::staged::flush(conn)?;
    let mut out: Vec<String> = audit_heads::table
        .select(audit_heads::chain_id)
        .order(audit_heads::chain_id.asc())
        .load(conn)?;
    // A skip scan over the primary key: one index seek per chain instead of a pass over every
    // event.
    let mut after: Option<String> = None;
    loop {
        let mut q = audit_events::table
            .select(audit_events::chain_id)
            .order(audit_events::chain_id.asc())
            .limit(1)
            .into_boxed();
        if let Some(a) = after {
            q = q.filter(audit_events::chain_id.gt(a));
        }
        let Some(next) = q.first::<String>(conn).optional()? else {
            break;
        };
        out.push(next.clone());
        after = Some(next);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// The highest seq in the chain (0 when empty): its length when intact, the total for a
/// verification progress bar.
pub fn chain_len(conn: &mut DbConnection, chain_id: &str) -> Result<i64> {
    crate::staged::flush(conn)?;
    let n: Option<i64> = audit_events::table
        .filter(audit_events::chain_id.eq(chain_id))
        .select(max(audit_events::seq))
        .first(conn)?;
    Ok(n.unwrap_or(0))
}

/// The chain's head as stored: (seq, hash), `None` before the first append.
pub fn head(conn: &mut DbConnection, chain_id: &str) -> Result<Option<(i64, Vec<u8>)>> {
    crate::staged::flush(conn)?;
    Ok(audit_heads::table
        .find(chain_id)
        .select((audit_heads::seq, audit_heads::hash))
        .first(conn)
        .optional()?)
}
