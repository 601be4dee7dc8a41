//! The onward-transfer ledger: one `transfers` row per pull (which subprocessor, under which
//! authorization, for what purpose, which field names, which visitors, when, which request),
//! and `transfer_recipients`, the per-visitor index of who received what — so erasure
//! propagation and the data-subject export never scan the ledger.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Text, Timestamp};
use diesel::sqlite::Sqlite;
use diesel::upsert::excluded;
use diesel::SqliteConnection;
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

/// A recipient row to upsert, borrowed.
#[derive(Insertable)]
#[diesel(table_name = recips)]
struct NewRecipient<'a> {
    tenant_id: &'a str,
    visitor_id: &'a str,
    subprocessor_id: &'a str,
    fields: &'a str,
    first_at: DbTimestamp,
    last_at: DbTimestamp,
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

/// Writes each visitor's recipient row in one upsert that, when the row exists with the same
/// field names, only moves `last_at` — what nearly every pull is: a subprocessor pulling the
/// same visitors under the same authorization. A row whose stored names differ is left alone
/// by the upsert (its `WHERE` fails) and merged by [`merge_recipients`].
///
/// This runs in the single writer, once per pulled record. Reading every row back first and
/// updating them with an `IN (…)` list cost a statement parse per chunk and two passes over
/// the rows; see BENCHMARKS.md, "Session 10".
fn upsert_recipients(
    conn: &mut DbConnection,
    tenant_id: &str,
    subprocessor_id: &str,
    sent: &[(String, Vec<&'static str>)],
    now: NaiveDateTime,
) -> Result<()> {
    let rows: Vec<(&str, String)> = sent
        .iter()
        .map(|(vid, names)| {
            let mut names = names.clone();
            names.sort_unstable();
            names.dedup();
            (vid.as_str(), join(&names))
        })
        .collect();
    let skipped = upsert_same_fields(conn, tenant_id, subprocessor_id, &rows, now)?;
    if skipped.is_empty() {
        return Ok(());
    }
    let differing: Vec<(String, Vec<&'static str>)> =
        skipped.into_iter().map(|i| sent[i].clone()).collect();
    merge_recipients(conn, tenant_id, subprocessor_id, &differing, now)
}

/// Returns the indexes of `rows` whose stored field names differ (left for the merge).
fn upsert_same_fields<'a>(
    conn: &mut DbConnection,
    tenant_id: &'a str,
    subprocessor_id: &'a str,
    rows: &'a [(&'a str, String)],
    now: NaiveDateTime,
) -> Result<Vec<usize>> {
    let new_row = |row: &'a (&'a str, String)| NewRecipient {
        tenant_id,
        visitor_id: row.0,
        subprocessor_id,
        fields: row.1.as_str(),
        first_at: now.into(),
        last_at: now.into(),
    };
    let mut skipped = Vec::new();
    match conn {
        // Multi-row statements of fixed sizes, each prepared once per connection. A chunk
        // that changed fewer rows than it holds had a row whose names differ; the merge then
        // takes the whole chunk, which for the rows already touched changes nothing more.
        DbConnection::Sqlite(c) => {
            let touch = TouchRecipients {
                tenant_id,
                subprocessor_id,
                now: now.into(),
            };
            let mut done = 0;
            done += touch.chunks::<500>(c, &rows[done..], done, &mut skipped)?;
            done += touch.chunks::<100>(c, &rows[done..], done, &mut skipped)?;
            done += touch.chunks::<20>(c, &rows[done..], done, &mut skipped)?;
            done += touch.chunks::<5>(c, &rows[done..], done, &mut skipped)?;
            touch.chunks::<1>(c, &rows[done..], done, &mut skipped)?;
        }
        // A statement is a round trip: multi-row upserts that return the visitors they wrote.
        DbConnection::Postgres(pg) => {
            for (n, chunk) in rows.chunks(CHUNK).enumerate() {
                let values: Vec<NewRecipient<'_>> = chunk.iter().map(new_row).collect();
                let upsert = diesel::insert_into(recips::table)
                    .values(&values)
                    .on_conflict((
                        recips::tenant_id,
                        recips::visitor_id,
                        recips::subprocessor_id,
                    ))
                    .do_update()
                    .set(recips::last_at.eq(excluded(recips::last_at)));
                // `FilterDsl` by path: imported, it would make every other `filter` here
                // ambiguous with `QueryDsl`'s.
                let written: HashSet<String> = diesel::query_dsl::methods::FilterDsl::filter(
                    upsert,
                    recips::fields.eq(excluded(recips::fields)),
                )
                .returning(recips::visitor_id)
                .get_results::<String>(pg)?
                .into_iter()
                .collect();
                skipped.extend(
                    chunk
                        .iter()
                        .enumerate()
                        .filter(|(_, (vid, _))| !written.contains(*vid))
                        .map(|(i, _)| n * CHUNK + i),
                );
            }
        }
    }
    Ok(skipped)
}

/// The same upsert on SQLite, written out. diesel marks every `DO UPDATE` (and `UPDATE`) it
/// builds unsafe to cache, so its own form was parsed again for every pulled record; this one
/// is a fixed statement per chunk size with a static query id, prepared once per connection.
/// The tenant, the subprocessor and the time are the same for every row: the first row binds
/// them and the rows after it name them by number, so a row binds only its visitor and names.
#[derive(Clone, Copy)]
struct TouchRecipients<'a> {
    tenant_id: &'a str,
    subprocessor_id: &'a str,
    now: DbTimestamp,
}

impl<'a> TouchRecipients<'a> {
    /// Touches every full chunk of `N` rows at the front of `rows` (the first is `offset`
    /// into the caller's list); pushes the indexes of chunks with a row left alone onto
    /// `skipped`. Returns how many rows it covered.
    fn chunks<const N: usize>(
        self,
        c: &mut SqliteConnection,
        rows: &'a [(&'a str, String)],
        offset: usize,
        skipped: &mut Vec<usize>,
    ) -> QueryResult<usize> {
        let (full, _) = rows.as_chunks::<N>();
        for (k, chunk) in full.iter().enumerate() {
            let changed = TouchRecipientsSqlite {
                touch: self,
                rows: chunk,
            }
            .execute(c)?;
            if changed < N {
                let first = offset + k * N;
                skipped.extend(first..first + N);
            }
        }
        Ok(full.len() * N)
    }
}

struct TouchRecipientsSqlite<'a, const N: usize> {
    touch: TouchRecipients<'a>,
    rows: &'a [(&'a str, String); N],
}

impl<const N: usize> QueryId for TouchRecipientsSqlite<'_, N> {
    type QueryId = TouchRecipientsSqlite<'static, N>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl<const N: usize> QueryFragment<Sqlite> for TouchRecipientsSqlite<'_, N> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        let t = &self.touch;
        out.push_sql(
            "INSERT INTO transfer_recipients \
             (tenant_id, visitor_id, subprocessor_id, fields, first_at, last_at) VALUES ",
        );
        for (r, (visitor_id, fields)) in self.rows.iter().enumerate() {
            if r == 0 {
                // Parameters 1 to 6, in column order.
                out.push_sql("(");
                out.push_bind_param::<Text, str>(t.tenant_id)?;
                out.push_sql(", ");
                out.push_bind_param::<Text, str>(visitor_id)?;
                out.push_sql(", ");
                out.push_bind_param::<Text, str>(t.subprocessor_id)?;
                out.push_sql(", ");
                out.push_bind_param::<Text, String>(fields)?;
                out.push_sql(", ");
                out.push_bind_param::<Timestamp, DbTimestamp>(&t.now)?;
                out.push_sql(", ");
                out.push_bind_param::<Timestamp, DbTimestamp>(&t.now)?;
                out.push_sql(")");
            } else {
                // A bare `?` takes the number after the largest so far: binds stay in order.
                out.push_sql(", (?1, ");
                out.push_bind_param::<Text, str>(visitor_id)?;
                out.push_sql(", ?3, ");
                out.push_bind_param::<Text, String>(fields)?;
                out.push_sql(", ?5, ?6)");
            }
        }
        out.push_sql(
            " ON CONFLICT (tenant_id, visitor_id, subprocessor_id) \
             DO UPDATE SET last_at = excluded.last_at \
             WHERE transfer_recipients.fields = excluded.fields",
        );
        Ok(())
    }
}

impl<const N: usize> RunQueryDsl<SqliteConnection> for TouchRecipientsSqlite<'_, N> {}

/// Select-then-update/insert, batched: one select per chunk, one update per distinct resulting
/// field set, multi-row inserts. Each row's names become the union of the stored and the sent.
fn merge_recipients(
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
    use steward_store::testing::sqlite_with_statement_log;

    fn transfer(id: &str, at: NaiveDateTime) -> TransferRow {
        TransferRow {
            tenant_id: "ten_1".into(),
            id: id.into(),
            subprocessor_id: "sub_1".into(),
            authorization_id: "sua_1".into(),
            purpose: "analytics".into(),
            fields: "email,name".into(),
            visitor_ids: String::new(),
            record_count: 1000,
            request_id: None,
            occurred_at: at,
        }
    }

    /// Statements of `kind` (`SELECT`, `INSERT`) that name the recipients table.
    fn on_recipients(log: &steward_store::testing::StatementLog, kind: &str) -> usize {
        log.lock()
            .unwrap()
            .iter()
            .filter(|s| s.starts_with(kind) && s.contains("transfer_recipients"))
            .count()
    }

    /// A pull of visitors already sent the same field names only moves their `last_at`, in
    /// multi-row upserts (two of 500 for a page of 1,000), without reading the recipients
    /// first; a visitor sent new names gets the union of the old and the new, and keeps its
    /// `first_at`, also when it shares an upsert with visitors whose names did not change.
    #[test]
    fn repeat_pulls_upsert_and_new_names_merge() {
        let (mut conn, log) = sqlite_with_statement_log();
        let at = |s: i64| chrono::DateTime::from_timestamp(s, 0).unwrap().naive_utc();
        let vid = |i: usize| format!("vis_{i:026}");
        let sent: Vec<(String, Vec<&'static str>)> = (0..1000)
            .map(|i| (vid(i), vec!["name", "email", "name"]))
            .collect();
        record(&mut conn, &transfer("trf_1", at(1_800_000_000)), &sent).unwrap();
        let first = recipient_rows(&mut conn, "ten_1", &vid(999)).unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].fields, "email,name");

        log.lock().unwrap().clear();
        record(&mut conn, &transfer("trf_2", at(1_800_000_060)), &sent).unwrap();
        assert_eq!(on_recipients(&log, "SELECT"), 0);
        assert_eq!(on_recipients(&log, "INSERT"), 2);
        let again = recipient_rows(&mut conn, "ten_1", &vid(999)).unwrap();
        assert_eq!(again[0].fields, "email,name");
        assert_eq!(again[0].first_at.0, at(1_800_000_000));
        assert_eq!(again[0].last_at.0, at(1_800_000_060));

        let more = vec![(vid(0), vec!["phone"]), (vid(1), vec!["email"])];
        record(&mut conn, &transfer("trf_3", at(1_800_000_120)), &more).unwrap();
        let merged = recipient_rows(&mut conn, "ten_1", &vid(0)).unwrap();
        assert_eq!(merged[0].fields, "email,name,phone");
        assert_eq!(merged[0].first_at.0, at(1_800_000_000));
        assert_eq!(merged[0].last_at.0, at(1_800_000_120));
        // A subset of what was sent before changes no names, and still counts as a transfer.
        let subset = recipient_rows(&mut conn, "ten_1", &vid(1)).unwrap();
        assert_eq!(subset[0].fields, "email,name");
        assert_eq!(subset[0].last_at.0, at(1_800_000_120));
        let untouched = recipient_rows(&mut conn, "ten_1", &vid(2)).unwrap();
        assert_eq!(untouched[0].last_at.0, at(1_800_000_060));

        // 27 visitors (one upsert of 20, one of 5, two of 1); the 13th, inside the upsert of
        // 20, is sent a new name.
        let mixed: Vec<(String, Vec<&'static str>)> = (100..127)
            .map(|i| {
                let names = if i == 112 {
                    vec!["email", "address"]
                } else {
                    vec!["email", "name"]
                };
                (vid(i), names)
            })
            .collect();
        record(&mut conn, &transfer("trf_4", at(1_800_000_180)), &mixed).unwrap();
        for i in 100..127 {
            let row = recipient_rows(&mut conn, "ten_1", &vid(i)).unwrap();
            let want = if i == 112 {
                "address,email,name"
            } else {
                "email,name"
            };
            assert_eq!(row[0].fields, want, "visitor {i}");
            assert_eq!(row[0].first_at.0, at(1_800_000_000), "visitor {i}");
            assert_eq!(row[0].last_at.0, at(1_800_000_180), "visitor {i}");
        }
        let outside = recipient_rows(&mut conn, "ten_1", &vid(127)).unwrap();
        assert_eq!(outside[0].last_at.0, at(1_800_000_060));
    }
}
