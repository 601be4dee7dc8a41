//! The onward-transfer ledger: one `transfers` row per pull (which subprocessor, under which
//! authorization, for what purpose, which field names, which visitors, when, which request),
//! and `transfer_recipients`, the per-visitor index of who received what — so erasure
//! propagation and the data-subject export never scan the ledger.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use steward_core::Result;
use steward_store::pagination::{Page, PageRequest};
use steward_store::{DbConnection, DbTimestamp};

use crate::registry;
use crate::schema::{transfer_recipients as recips, transfers};
use crate::util::{join, micros, split, utc};

/// Rows per multi-row INSERT and ids per `IN (…)`: well under both backends' bind limits.
const CHUNK: usize = 500;
/// Most transfers listed per recipient in an export.
const MAX_TRANSFERS_PER_RECIPIENT: i64 = 10_000;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = transfers)]
#[diesel(treat_none_as_default_value = false)]
pub struct TransferRow {
    pub tenant_id: String,
    pub id: String,
    pub subprocessor_id: String,
    pub authorization_id: String,
    pub purpose: String,
    /// The field names the pull covered (the authorization's), comma-separated.
    pub fields: String,
    /// The visitors sent, comma-separated.
    pub visitor_ids: String,
    pub record_count: i64,
    pub request_id: Option<String>,
    pub occurred_at: NaiveDateTime,
}

/// A ledger entry as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Transfer {
    pub id: String,
    pub tenant_id: String,
    pub subprocessor_id: String,
    pub authorization_id: String,
    pub purpose: String,
    pub fields: Vec<String>,
    pub visitor_ids: Vec<String>,
    pub record_count: i64,
    pub request_id: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

impl From<TransferRow> for Transfer {
    fn from(r: TransferRow) -> Self {
        Transfer {
            fields: split(&r.fields),
            visitor_ids: split(&r.visitor_ids),
            id: r.id,
            tenant_id: r.tenant_id,
            subprocessor_id: r.subprocessor_id,
            authorization_id: r.authorization_id,
            purpose: r.purpose,
            record_count: r.record_count,
            request_id: r.request_id,
            occurred_at: utc(r.occurred_at),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = recips)]
// Without this, diesel's SQLite backend inserts a batch one statement per row (see
// `steward_visitors::records::VisitorRow`).
#[diesel(treat_none_as_default_value = false)]
pub struct RecipientRow {
    pub tenant_id: String,
    pub visitor_id: String,
    pub subprocessor_id: String,
    /// Union of the field names ever sent, comma-separated, sorted.
    pub fields: String,
    // `DbTimestamp` for the fast SQLite text codec: a pull writes two per visitor.
    pub first_at: DbTimestamp,
    pub last_at: DbTimestamp,
}

/// Narrows [`list`]; every set condition must hold. `from` inclusive, `to` exclusive.
#[derive(Debug, Clone, Default)]
pub struct TransferFilter {
    pub subprocessor_id: Option<String>,
    pub visitor_id: Option<String>,
    pub from: Option<NaiveDateTime>,
    pub to: Option<NaiveDateTime>,
}

/// Who received one visitor's data, for the data-subject export.
#[derive(Debug, Clone, Serialize)]
pub struct Recipient {
    pub subprocessor_id: String,
    pub subprocessor_name: Option<String>,
    /// Every field name this subprocessor received for this visitor.
    pub fields: Vec<String>,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    pub transfers: Vec<RecipientTransfer>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RecipientTransfer {
    pub transfer_id: String,
    pub at: DateTime<Utc>,
    pub purpose: String,
    /// The field names the transfer covered.
    pub fields: Vec<String>,
}

/// Writes one pull into the ledger: the `transfers` row and, per visitor, the union of the
/// field names it was sent (`sent`: visitor id → names). Call inside a unit of work.
pub(crate) fn record(
    conn: &mut DbConnection,
    row: &TransferRow,
    sent: &[(String, Vec<&'static str>)],
) -> Result<()> {
    diesel::insert_into(transfers::table)
        .values(row)
        .execute(conn)?;
    upsert_recipients(
        conn,
        &row.tenant_id,
        &row.subprocessor_id,
        sent,
        micros(row.occurred_at),
    )
}

/// Select-then-update/insert (no ON CONFLICT through the MultiConnection), batched: one
/// select per chunk, one update per distinct resulting field set, multi-row inserts.
fn upsert_recipients(
    conn: &mut DbConnection,
    tenant_id: &str,
    subprocessor_id: &str,
    sent: &[(String, Vec<&'static str>)],
    now: NaiveDateTime,
) -> Result<()> {
    for chunk in sent.chunks(CHUNK) {
        let ids: Vec<&str> = chunk.iter().map(|(v, _)| v.as_str()).collect();
        let (Some(lo), Some(hi)) = (ids.iter().min(), ids.iter().max()) else {
            continue;
        };
        // The id range first: whatever plan the database picks, each row is tested against
        // the list only inside the page's range (a page is a contiguous run of ids).
        let existing: HashMap<String, String> = recips::table
            .filter(recips::tenant_id.eq(tenant_id))
            .filter(recips::visitor_id.ge(*lo))
            .filter(recips::visitor_id.le(*hi))
            .filter(recips::subprocessor_id.eq(subprocessor_id))
            .filter(recips::visitor_id.eq_any(&ids))
            .select((recips::visitor_id, recips::fields))
            .load::<(String, String)>(conn)?
            .into_iter()
            .collect();
        // resulting field set → visitors to update to it
        let mut updates: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        let mut inserts: Vec<RecipientRow> = Vec::new();
        for (vid, names) in chunk {
            match existing.get(vid) {
                Some(old) => {
                    let mut all = split(old);
                    all.extend(names.iter().map(|n| n.to_string()));
                    all.sort_unstable();
                    all.dedup();
                    updates.entry(join(&all)).or_default().push(vid);
                }
                None => {
                    let mut all: Vec<&str> = names.clone();
                    all.sort_unstable();
                    all.dedup();
                    inserts.push(RecipientRow {
                        tenant_id: tenant_id.to_string(),
                        visitor_id: vid.clone(),
                        subprocessor_id: subprocessor_id.to_string(),
                        fields: join(&all),
                        first_at: now.into(),
                        last_at: now.into(),
                    });
                }
            }
        }
        for (fields, vids) in updates {
            diesel::update(
                recips::table
                    .filter(recips::tenant_id.eq(tenant_id))
                    .filter(recips::visitor_id.ge(*lo))
                    .filter(recips::visitor_id.le(*hi))
                    .filter(recips::subprocessor_id.eq(subprocessor_id))
                    .filter(recips::visitor_id.eq_any(&vids)),
            )
            .set((
                recips::fields.eq(fields),
                recips::last_at.eq(DbTimestamp(now)),
            ))
            .execute(conn)?;
        }
        steward_store::insert_chunked!(conn, recips::table, &inserts[..])?;
    }
    Ok(())
}

/// `LIKE` pattern matching one id inside a comma-separated list (`_` escaped).
fn contains_pattern(id: &str) -> String {
    format!(
        "%{}%",
        id.replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

fn lists(visitor_ids: &str, visitor_id: &str) -> bool {
    visitor_ids.split(',').any(|v| v == visitor_id)
}

/// One page of the tenant's ledger, oldest first; the cursor is the last transfer id. A
/// visitor filter goes through `transfer_recipients` first (no recipient, no scan).
pub fn list(
    conn: &mut DbConnection,
    tenant_id: &str,
    filter: &TransferFilter,
    page: &PageRequest,
) -> Result<Page<TransferRow>> {
    let mut q = transfers::table
        .filter(transfers::tenant_id.eq(tenant_id))
        .select(TransferRow::as_select())
        .order(transfers::id.asc())
        .limit(page.fetch_limit())
        .into_boxed();
    if let Some(after) = &page.after {
        q = q.filter(transfers::id.gt(after.clone()));
    }
    if let Some(s) = &filter.subprocessor_id {
        q = q.filter(transfers::subprocessor_id.eq(s.clone()));
    }
    if let Some(from) = filter.from {
        q = q.filter(transfers::occurred_at.ge(from));
    }
    if let Some(to) = filter.to {
        q = q.filter(transfers::occurred_at.lt(to));
    }
    if let Some(vid) = &filter.visitor_id {
        let mut r = recips::table
            .filter(recips::tenant_id.eq(tenant_id))
            .filter(recips::visitor_id.eq(vid.clone()))
            .select(RecipientRow::as_select())
            .into_boxed();
        if let Some(s) = &filter.subprocessor_id {
            r = r.filter(recips::subprocessor_id.eq(s.clone()));
        }
        let recipients: Vec<RecipientRow> = r.load(conn)?;
        let Some(first) = recipients.iter().map(|r| r.first_at.0).min() else {
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        };
        let subs: Vec<String> = recipients.into_iter().map(|r| r.subprocessor_id).collect();
        q = q
            .filter(transfers::subprocessor_id.eq_any(subs))
            .filter(transfers::occurred_at.ge(first))
            .filter(
                transfers::visitor_ids
                    .like(contains_pattern(vid))
                    .escape('\\'),
            );
    }
    let mut rows = q.load(conn)?;
    if let Some(vid) = &filter.visitor_id {
        rows.retain(|r| lists(&r.visitor_ids, vid));
    }
    Ok(Page::from_rows(rows, page, |r| r.id.clone()))
}

/// The transfer, or `NotFound`.
pub fn get(conn: &mut DbConnection, tenant_id: &str, id: &str) -> Result<TransferRow> {
    if !steward_core::Id::Transfer.matches(id) {
        return Err(steward_core::Error::NotFound);
    }
    transfers::table
        .find((tenant_id, id))
        .select(TransferRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(steward_core::Error::NotFound)
}

/// The `transfer_recipients` rows of one visitor.
pub fn recipient_rows(
    conn: &mut DbConnection,
    tenant_id: &str,
    visitor_id: &str,
) -> Result<Vec<RecipientRow>> {
    Ok(recips::table
        .filter(recips::tenant_id.eq(tenant_id))
        .filter(recips::visitor_id.eq(visitor_id))
        .select(RecipientRow::as_select())
        .order((recips::first_at.asc(), recips::subprocessor_id.asc()))
        .load(conn)?)
}

/// Per subprocessor, which fields of the visitor it received and when, with each transfer.
pub fn recipients_for(
    conn: &mut DbConnection,
    tenant_id: &str,
    visitor_id: &str,
) -> Result<Vec<Recipient>> {
    let rows = recipient_rows(conn, tenant_id, visitor_id)?;
    let ids: Vec<String> = rows.iter().map(|r| r.subprocessor_id.clone()).collect();
    let names = registry::names(conn, &ids)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let found: Vec<TransferRow> = transfers::table
            .filter(transfers::tenant_id.eq(tenant_id))
            .filter(transfers::subprocessor_id.eq(&r.subprocessor_id))
            .filter(transfers::occurred_at.ge(r.first_at))
            .filter(transfers::occurred_at.le(r.last_at))
            .filter(
                transfers::visitor_ids
                    .like(contains_pattern(visitor_id))
                    .escape('\\'),
            )
            .select(TransferRow::as_select())
            .order(transfers::id.asc())
            .limit(MAX_TRANSFERS_PER_RECIPIENT)
            .load(conn)?;
        let transfers = found
            .into_iter()
            .filter(|t| lists(&t.visitor_ids, visitor_id))
            .map(|t| RecipientTransfer {
                transfer_id: t.id,
                at: utc(t.occurred_at),
                purpose: t.purpose,
                fields: split(&t.fields),
            })
            .collect();
        out.push(Recipient {
            subprocessor_name: names.get(&r.subprocessor_id).cloned(),
            subprocessor_id: r.subprocessor_id,
            fields: split(&r.fields),
            first_at: utc(r.first_at.0),
            last_at: utc(r.last_at.0),
            transfers,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use steward_store::testing::{inserts_into, sqlite_with_statement_log};

    /// 1,000 recipients are two multi-row INSERTs on SQLite, not 1,000 single-row ones (which
    /// diesel falls back to when a row type has defaultable columns).
    #[test]
    fn recipients_insert_in_chunks() {
        let (mut conn, log) = sqlite_with_statement_log();
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0)
            .unwrap()
            .naive_utc();
        let sent: Vec<(String, Vec<&'static str>)> = (0..1000)
            .map(|i| (format!("vis_{i:026}"), vec!["email", "name"]))
            .collect();
        let row = TransferRow {
            tenant_id: "ten_1".into(),
            id: "trf_1".into(),
            subprocessor_id: "sub_1".into(),
            authorization_id: "sua_1".into(),
            purpose: "analytics".into(),
            fields: "email,name".into(),
            visitor_ids: String::new(),
            record_count: 1000,
            request_id: None,
            occurred_at: now,
        };
        record(&mut conn, &row, &sent).unwrap();
        assert_eq!(inserts_into(&log, "transfer_recipients"), 2);
        let stored = recipient_rows(&mut conn, "ten_1", "vis_00000000000000000000000999").unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].fields, "email,name");
    }
}
