//! The onward-transfer ledger: one `transfers` row per pull (which subprocessor, under which
//! authorization, for what purpose, which field names, which visitors, when, which request),
//! and `transfer_recipients`, the per-visitor index of who received what — so erasure
//! propagation and the data-subject export never scan the ledger.


use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use steward_core::Result;
use steward_store::pagination::{Page, PageRequest};
use steward_store::DbConnection;

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
    /// The field sets sent, comma-joined; a name may repeat. Read it with [`split_set`].
    pub fields: String,
    pub first_at: NaiveDateTime,
    pub last_at: NaiveDateTime,
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

/// The recipients upsert on one backend's connection; `$find` is its substring function.
macro_rules! upsert {
    ($conn:expr, $rows:expr, $find:literal) => {
        diesel::insert_into(recips::table)
            .values($rows)
            .on_conflict((recips::tenant_id, recips::visitor_id, recips::subprocessor_id))
            .do_update()
            .set((
                recips::last_at.eq(diesel::upsert::excluded(recips::last_at)),
                recips::fields.eq(diesel::dsl::sql::<diesel::sql_types::Text>(concat!(
                    "CASE WHEN excluded.fields = '' OR ",
                    $find,
                    "(',' || transfer_recipients.fields || ',', ',' || excluded.fields || ',') > 0 ",
                    "THEN transfer_recipients.fields ",
                    "WHEN transfer_recipients.fields = '' THEN excluded.fields ",
                    "ELSE transfer_recipients.fields || ',' || excluded.fields END"
                ))),
            ))
            .execute($conn)
    };
}
use upsert;

/// One upsert per chunk (the conflict clause is written per backend: `instr` on SQLite,
/// `strpos` on PostgreSQL). A new (visitor, subprocessor) pair is inserted with the sorted set
/// of names sent; a pair already recorded gets the new `last_at` and, unless this exact set is
/// already in its `fields`, the set appended. `fields` is thus a comma-joined list of the sets
/// sent, read back as a set ([`split_set`]); it grows only by a set not seen before.
///
/// It used to select the existing rows first and merge in Rust: one query and one update per
/// distinct field set per chunk, most of the ledger's cost in the single writer under pulls.
fn upsert_recipients(
    conn: &mut DbConnection,
    tenant_id: &str,
    subprocessor_id: &str,
    sent: &[(String, Vec<&'static str>)],
    now: NaiveDateTime,
) -> Result<()> {
    let rows: Vec<RecipientRow> = sent
        .iter()
        .map(|(vid, names)| {
            let mut set = names.clone();
            set.sort_unstable();
            set.dedup();
            RecipientRow {
                tenant_id: tenant_id.to_string(),
                visitor_id: vid.clone(),
                subprocessor_id: subprocessor_id.to_string(),
                fields: join(&set),
                first_at: now,
                last_at: now,
            }
        })
        .collect();
    for chunk in rows.chunks(CHUNK) {
        match conn {
            DbConnection::Sqlite(c) => upsert!(c, chunk, "instr"),
            DbConnection::Postgres(c) => upsert!(c, chunk, "strpos"),
        }?;
    }
    Ok(())
}


/// A recipient's `fields` as a set: sorted, without repeats or empty names.
fn split_set(s: &str) -> Vec<String> {
    let mut set: Vec<String> = s
        .split(',')
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect();
    set.sort_unstable();
    set.dedup();
    set
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
        let Some(first) = recipients.iter().map(|r| r.first_at).min() else {
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
            fields: split_set(&r.fields),
            first_at: utc(r.first_at),
            last_at: utc(r.last_at),
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
        // Only the ledger's own tables matter here, not the tenant and registry rows.
        conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
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
