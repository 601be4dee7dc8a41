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
    let mut q = audit_events::table
        .filter(audit_events::chain_id.eq(chain_id))
        .select(EventRow::as_select())
        .order(audit_events::seq.asc())
        .limit(limit + 1)
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
    if let Some(target_id) = &filter.target_id {
        q = q.filter(audit_events::target_id.eq(target_id.clone()));
    }
    if let Some(from) = filter.from {
        q = q.filter(audit_events::occurred_at.ge(from));
    }
    if let Some(to) = filter.to {
        q = q.filter(audit_events::occurred_at.lt(to));
    }
    let mut rows = q.load(conn)?;
    let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
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

/// The first `limit` events about one record, oldest first: who touched it, when, why.
pub fn events_for_target(
    conn: &mut DbConnection,
    chain_id: &str,
    target_id: &str,
    limit: i64,
) -> Result<Vec<AuditEvent>> {
    crate::staged::flush(conn)?;
    if limit < 1 {
        return Err(Error::invalid("invalid_limit", "limit must be at least 1"));
    }
    audit_events::table
        .filter(audit_events::chain_id.eq(chain_id))
        .filter(audit_events::target_id.eq(target_id))
        .select(EventRow::as_select())
        .order(audit_events::seq.asc())
        .limit(limit)
        .load(conn)?
        .into_iter()
        .map(AuditEvent::try_from)
        .collect()
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
