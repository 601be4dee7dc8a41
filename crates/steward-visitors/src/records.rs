//! Visitor rows: sealing PII into them, opening it back out, and the queries. Every query
//! filters on `tenant_id` first.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{BigInt, Binary, Nullable, Text, Timestamp};
use diesel::sqlite::Sqlite;
use diesel::SqliteConnection;
use serde_json::{Map, Value};
use steward_core::{Error, Result};
use steward_keys::{IndexKind, RecordKind, SealContext, TenantKeyring};
use steward_store::keys::key_error;
use steward_store::{DbConnection, DbTimestamp};

use crate::model::{
    Address, Pii, VisitorMeta, FIELD_ADDRESS, FIELD_ATTRIBUTES, FIELD_EMAIL, FIELD_NAME,
    FIELD_PHONE,
};
use crate::schema::visitors;

pub const STATUS_ACTIVE: &str = "active";
pub const STATUS_ERASED: &str = "erased";

#[derive(Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = visitors, treat_none_as_null = true)]
// An absent field is NULL, not a column default. It also keeps diesel's multi-row INSERT on
// SQLite: with defaultable values it inserts a batch one statement per row, rendering each
// row's SQL anew (import and pull were 3–15 % slower that way; BENCHMARKS.md, "Session 6").
#[diesel(treat_none_as_default_value = false)]
pub struct VisitorRow {
    pub tenant_id: String,
    pub id: String,
    pub external_ref: Option<String>,
    pub status: String,
    pub legal_hold: bool,
    pub legal_hold_reason: Option<String>,
    pub key_version: i64,
    pub name_sealed: Option<Vec<u8>>,
    pub email_sealed: Option<Vec<u8>>,
    pub phone_sealed: Option<Vec<u8>>,
    pub address_sealed: Option<Vec<u8>>,
    pub attributes_sealed: Option<Vec<u8>>,
    pub email_index: Option<Vec<u8>>,
    pub phone_index: Option<Vec<u8>>,
    // `DbTimestamp` for the fast SQLite text codec: a pull loads three per visitor.
    pub created_at: DbTimestamp,
    pub updated_at: DbTimestamp,
    pub last_activity_at: DbTimestamp,
    pub erased_at: Option<DbTimestamp>,
}

/// Rows hold ciphertext only, but keep them out of logs all the same.
impl std::fmt::Debug for VisitorRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VisitorRow")
            .field("tenant_id", &self.tenant_id)
            .field("id", &self.id)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(t, Utc)
}

impl VisitorRow {
    pub fn is_active(&self) -> bool {
        self.status == STATUS_ACTIVE
    }

    pub fn meta(&self) -> VisitorMeta {
        VisitorMeta {
            id: self.id.clone(),
            external_ref: self.external_ref.clone(),
            status: self.status.clone(),
            legal_hold: self.legal_hold,
            created_at: utc(self.created_at.0),
            updated_at: utc(self.updated_at.0),
            last_activity_at: utc(self.last_activity_at.0),
            key_version: self.key_version,
        }
    }

    /// Names of the PII fields that hold a value.
    pub fn present_fields(&self) -> Vec<&'static str> {
        let mut f = Vec::new();
        for (name, v) in [
            (FIELD_NAME, &self.name_sealed),
            (FIELD_EMAIL, &self.email_sealed),
            (FIELD_PHONE, &self.phone_sealed),
            (FIELD_ADDRESS, &self.address_sealed),
            (FIELD_ATTRIBUTES, &self.attributes_sealed),
        ] {
            if v.is_some() {
                f.push(name);
            }
        }
        f
    }
}

fn ctx<'a>(tenant_id: &'a str, id: &'a str, field: &'a str) -> SealContext<'a> {
    SealContext::new(tenant_id, RecordKind::Visitor, id, field)
}

fn seal_str(k: &TenantKeyring, t: &str, id: &str, field: &str, v: &str) -> Result<Vec<u8>> {
    k.seal(&ctx(t, id, field), v.as_bytes()).map_err(key_error)
}

fn seal_json<T: serde::Serialize>(
    k: &TenantKeyring,
    t: &str,
    id: &str,
    field: &str,
    v: &T,
) -> Result<Vec<u8>> {
    let bytes = steward_keys::Zeroizing::new(serde_json::to_vec(v).map_err(Error::internal)?);
    k.seal(&ctx(t, id, field), &bytes).map_err(key_error)
}

/// The blind index of an e-mail (normalized: trimmed, lower-cased).
pub fn email_index(k: &TenantKeyring, email: &str) -> Result<Vec<u8>> {
    let n = steward_keys::normalize::email(email)
        .map_err(|_| Error::invalid("invalid_email", "email is not a valid address"))?;
    Ok(k.blind_index(IndexKind::Email, &n).to_vec())
}

/// The blind index of a phone number (E.164).
pub fn phone_index(k: &TenantKeyring, phone: &str) -> Result<Vec<u8>> {
    let n = steward_keys::normalize::phone_e164(phone)
        .map_err(|_| Error::invalid("invalid_phone", "phone must be an international number"))?;
    Ok(k.blind_index(IndexKind::Phone, &n).to_vec())
}

/// Seals each present field into the row (and recomputes the blind indexes).
pub fn seal_into(row: &mut VisitorRow, k: &TenantKeyring, pii: &Pii) -> Result<()> {
    let (t, id) = (row.tenant_id.clone(), row.id.clone());
    row.name_sealed = pii
        .name
        .as_deref()
        .map(|v| seal_str(k, &t, &id, FIELD_NAME, v))
        .transpose()?;
    row.email_sealed = pii
        .email
        .as_deref()
        .map(|v| seal_str(k, &t, &id, FIELD_EMAIL, v))
        .transpose()?;
    row.phone_sealed = pii
        .phone
        .as_deref()
        .map(|v| seal_str(k, &t, &id, FIELD_PHONE, v))
        .transpose()?;
    row.address_sealed = pii
        .address
        .as_ref()
        .map(|v| seal_json(k, &t, &id, FIELD_ADDRESS, v))
        .transpose()?;
    row.attributes_sealed = pii
        .attributes
        .as_ref()
        .map(|v| seal_json(k, &t, &id, FIELD_ATTRIBUTES, v))
        .transpose()?;
    row.email_index = pii
        .email
        .as_deref()
        .map(|e| email_index(k, e))
        .transpose()?;
    row.phone_index = pii
        .phone
        .as_deref()
        .map(|p| phone_index(k, p))
        .transpose()?;
    row.key_version = i64::from(k.current_version());
    Ok(())
}

fn open_str(k: &TenantKeyring, t: &str, id: &str, field: &str, v: &[u8]) -> Result<String> {
    let bytes = k.open(&ctx(t, id, field), v).map_err(key_error)?;
    String::from_utf8(bytes.to_vec()).map_err(|_| Error::internal_msg("sealed text is not UTF-8"))
}

fn open_json<T: serde::de::DeserializeOwned>(
    k: &TenantKeyring,
    t: &str,
    id: &str,
    field: &str,
    v: &[u8],
) -> Result<T> {
    let bytes = k.open(&ctx(t, id, field), v).map_err(key_error)?;
    serde_json::from_slice(&bytes).map_err(|_| Error::internal_msg("sealed JSON is malformed"))
}

/// A visitor's sealed fields, borrowed from whichever row shape loaded them.
#[derive(Debug, Clone, Copy, Default)]
pub struct SealedFields<'a> {
    pub name: Option<&'a [u8]>,
    pub email: Option<&'a [u8]>,
    pub phone: Option<&'a [u8]>,
    pub address: Option<&'a [u8]>,
    pub attributes: Option<&'a [u8]>,
}

impl VisitorRow {
    pub fn sealed(&self) -> SealedFields<'_> {
        SealedFields {
            name: self.name_sealed.as_deref(),
            email: self.email_sealed.as_deref(),
            phone: self.phone_sealed.as_deref(),
            address: self.address_sealed.as_deref(),
            attributes: self.attributes_sealed.as_deref(),
        }
    }
}

/// What a page that only opens and sends fields needs of a visitor: its id, its last change
/// and the sealed fields. A subprocessor's pull loads pages of these; building whole
/// [`VisitorRow`]s (18 columns, three timestamps parsed) was 7 % of a pull's server time.
#[derive(Queryable, Selectable)]
#[diesel(table_name = visitors)]
pub struct SealedRow {
    pub id: String,
    pub updated_at: DbTimestamp,
    pub name_sealed: Option<Vec<u8>>,
    pub email_sealed: Option<Vec<u8>>,
    pub phone_sealed: Option<Vec<u8>>,
    pub address_sealed: Option<Vec<u8>>,
    pub attributes_sealed: Option<Vec<u8>>,
}

/// Rows hold ciphertext only, but keep them out of logs all the same.
impl std::fmt::Debug for SealedRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedRow")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SealedRow {
    pub fn sealed(&self) -> SealedFields<'_> {
        SealedFields {
            name: self.name_sealed.as_deref(),
            email: self.email_sealed.as_deref(),
            phone: self.phone_sealed.as_deref(),
            address: self.address_sealed.as_deref(),
            attributes: self.attributes_sealed.as_deref(),
        }
    }
}

/// Opens the requested fields of a row (all when `fields` is `None`). This does not disclose
/// anything by itself: callers hand the result to `disclose`, which records the access first.
pub fn open_fields(row: &VisitorRow, k: &TenantKeyring, fields: Option<&[&str]>) -> Result<Pii> {
    open_sealed(&row.tenant_id, &row.id, row.sealed(), k, fields)
}

/// [`open_fields`] for sealed fields however they were loaded: `tenant_id` and `visitor_id`
/// are the record's, which every field's AAD names.
pub fn open_sealed(
    tenant_id: &str,
    visitor_id: &str,
    sealed: SealedFields<'_>,
    k: &TenantKeyring,
    fields: Option<&[&str]>,
) -> Result<Pii> {
    let want = |f: &str| fields.is_none_or(|fs| fs.contains(&f));
    let (t, id) = (tenant_id, visitor_id);
    let mut pii = Pii::default();
    if want(FIELD_NAME) {
        if let Some(v) = sealed.name {
            pii.name = Some(open_str(k, t, id, FIELD_NAME, v)?);
        }
    }
    if want(FIELD_EMAIL) {
        if let Some(v) = sealed.email {
            pii.email = Some(open_str(k, t, id, FIELD_EMAIL, v)?);
        }
    }
    if want(FIELD_PHONE) {
        if let Some(v) = sealed.phone {
            pii.phone = Some(open_str(k, t, id, FIELD_PHONE, v)?);
        }
    }
    if want(FIELD_ADDRESS) {
        if let Some(v) = sealed.address {
            pii.address = Some(open_json::<Address>(k, t, id, FIELD_ADDRESS, v)?);
        }
    }
    if want(FIELD_ATTRIBUTES) {
        if let Some(v) = sealed.attributes {
            pii.attributes = Some(open_json::<Map<String, Value>>(
                k,
                t,
                id,
                FIELD_ATTRIBUTES,
                v,
            )?);
        }
    }
    Ok(pii)
}

/// Re-seals every present field under the keyring's current version.
pub fn reseal(row: &mut VisitorRow, k: &TenantKeyring) -> Result<()> {
    let (t, id) = (row.tenant_id.clone(), row.id.clone());
    for (field, slot) in [
        (FIELD_NAME, &mut row.name_sealed),
        (FIELD_EMAIL, &mut row.email_sealed),
        (FIELD_PHONE, &mut row.phone_sealed),
        (FIELD_ADDRESS, &mut row.address_sealed),
        (FIELD_ATTRIBUTES, &mut row.attributes_sealed),
    ] {
        if let Some(v) = slot.as_ref() {
            *slot = Some(k.reseal(&ctx(&t, &id, field), v).map_err(key_error)?);
        }
    }
    row.key_version = i64::from(k.current_version());
    Ok(())
}

pub fn insert(conn: &mut DbConnection, row: &VisitorRow) -> Result<()> {
    // As a one-row batch: a cached statement, not SQL rendered on each create.
    insert_many(conn, std::slice::from_ref(row))
}

/// Values per `IN` list: well under both backends' bind-parameter limits.
const CHUNK: usize = 400;

/// Inserts many visitors in multi-row statements (an import's thousand rows in two).
pub fn insert_many(conn: &mut DbConnection, rows: &[VisitorRow]) -> Result<()> {
    steward_store::insert_chunked!(conn, visitors::table, rows).map_err(|e| {
        match Error::from(e) {
            Error::Conflict { .. } => Error::conflict(
                "external_ref_taken",
                "another visitor of this tenant has this external_ref",
            ),
            other => other,
        }
    })?;
    Ok(())
}

/// Which of `refs` another visitor of the tenant already has (erased visitors keep theirs
/// until purged, like a single create sees).
pub fn external_refs_taken(
    conn: &mut DbConnection,
    tenant_id: &str,
    refs: &[&str],
) -> Result<std::collections::HashSet<String>> {
    let mut taken = std::collections::HashSet::new();
    for chunk in refs.chunks(CHUNK) {
        let found: Vec<Option<String>> = visitors::table
            .filter(visitors::tenant_id.eq(tenant_id))
            .filter(visitors::external_ref.eq_any(chunk))
            .select(visitors::external_ref)
            .load(conn)?;
        taken.extend(found.into_iter().flatten());
    }
    Ok(taken)
}

/// An active visitor of the tenant, or `NotFound` (missing, erased, or another tenant's).
pub fn get_active(conn: &mut DbConnection, tenant_id: &str, id: &str) -> Result<VisitorRow> {
    // The hottest read (see `steward_store::direct!`).
    steward_store::direct!(conn, |c| visitors::table
        .find((tenant_id, id))
        .filter(visitors::status.eq(STATUS_ACTIVE))
        .select(VisitorRow::as_select())
        .first(c)
        .optional())?
    .ok_or(Error::NotFound)
}

pub fn update(conn: &mut DbConnection, row: &VisitorRow) -> Result<()> {
    diesel::update(visitors::table.find((&row.tenant_id, &row.id)))
        .set(row)
        .execute(conn)
        .map_err(|e| match Error::from(e) {
            Error::Conflict { .. } => Error::conflict(
                "external_ref_taken",
                "another visitor of this tenant has this external_ref",
            ),
            other => other,
        })?;
    Ok(())
}

/// Writes a re-sealed row's sealed values and key version — only if the row is still active
/// and unchanged since it was read (same key version and `updated_at`). Returns 1 if written,
/// 0 if a write in between got there first.
pub fn update_sealed_if_unchanged(
    conn: &mut DbConnection,
    row: &VisitorRow,
    seen_version: i64,
    seen_updated_at: NaiveDateTime,
) -> Result<i64> {
    let written = match conn {
        DbConnection::Sqlite(c) => ResealSqlite {
            row,
            seen_version,
            seen_updated_at: DbTimestamp(seen_updated_at),
        }
        .execute(c)?,
        DbConnection::Postgres(pg) => diesel::update(
            visitors::table
                .filter(visitors::tenant_id.eq(&row.tenant_id))
                .filter(visitors::id.eq(&row.id))
                .filter(visitors::status.eq(STATUS_ACTIVE))
                .filter(visitors::key_version.eq(seen_version))
                .filter(visitors::updated_at.eq(DbTimestamp(seen_updated_at))),
        )
        .set((
            visitors::name_sealed.eq(&row.name_sealed),
            visitors::email_sealed.eq(&row.email_sealed),
            visitors::phone_sealed.eq(&row.phone_sealed),
            visitors::address_sealed.eq(&row.address_sealed),
            visitors::attributes_sealed.eq(&row.attributes_sealed),
            visitors::key_version.eq(row.key_version),
        ))
        .execute(pg)?,
    };
    Ok(written as i64)
}

/// The conditional re-seal on SQLite, written out. diesel re-prepares every `UPDATE` it builds
/// (it marks them unsafe to cache), which on SQLite is a parse per re-sealed row inside the
/// single writer; this statement has a static query id, so it is prepared once per connection.
/// `updated_at` is bound through the same codec that wrote it: the comparison is of stored text.
struct ResealSqlite<'a> {
    row: &'a VisitorRow,
    seen_version: i64,
    seen_updated_at: DbTimestamp,
}

impl QueryId for ResealSqlite<'_> {
    type QueryId = ResealSqlite<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Sqlite> for ResealSqlite<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        let r = self.row;
        out.push_sql("UPDATE visitors SET name_sealed = ");
        out.push_bind_param::<Nullable<Binary>, _>(&r.name_sealed)?;
        out.push_sql(", email_sealed = ");
        out.push_bind_param::<Nullable<Binary>, _>(&r.email_sealed)?;
        out.push_sql(", phone_sealed = ");
        out.push_bind_param::<Nullable<Binary>, _>(&r.phone_sealed)?;
        out.push_sql(", address_sealed = ");
        out.push_bind_param::<Nullable<Binary>, _>(&r.address_sealed)?;
        out.push_sql(", attributes_sealed = ");
        out.push_bind_param::<Nullable<Binary>, _>(&r.attributes_sealed)?;
        out.push_sql(", key_version = ");
        out.push_bind_param::<BigInt, i64>(&r.key_version)?;
        out.push_sql(" WHERE tenant_id = ");
        out.push_bind_param::<Text, str>(&r.tenant_id)?;
        out.push_sql(" AND id = ");
        out.push_bind_param::<Text, str>(&r.id)?;
        out.push_sql(" AND status = ");
        out.push_bind_param::<Text, str>(STATUS_ACTIVE)?;
        out.push_sql(" AND key_version = ");
        out.push_bind_param::<BigInt, i64>(&self.seen_version)?;
        out.push_sql(" AND updated_at = ");
        out.push_bind_param::<Timestamp, DbTimestamp>(&self.seen_updated_at)?;
        Ok(())
    }
}

impl RunQueryDsl<SqliteConnection> for ResealSqlite<'_> {}

/// A re-sealed row and the key version and `updated_at` it had when it was read.
pub type Resealed = (VisitorRow, (i64, NaiveDateTime));

/// [`update_sealed_if_unchanged`] for a step of re-encryption: rows of one tenant, read in id
/// order. Returns how many were written.
///
/// SQLite runs one prepared single-row statement per row inside the writer, where a statement
/// costs no round trip. On PostgreSQL each statement is one, so the rows go in one
/// `UPDATE … FROM unnest(…)`.
pub fn update_sealed_if_unchanged_many(
    conn: &mut DbConnection,
    tenant_id: &str,
    rows: &[Resealed],
) -> Result<i64> {
    match conn {
        DbConnection::Postgres(pg) => update_sealed_pg(pg, tenant_id, rows),
        DbConnection::Sqlite(_) => {
            let mut written = 0;
            for (row, (version, updated_at)) in rows {
                written += update_sealed_if_unchanged(conn, row, *version, *updated_at)?;
            }
            Ok(written)
        }
    }
}

/// The step's id range (`$2`, `$3`) bounds the rows the statement can touch, whatever plan
/// PostgreSQL picks. Joined on `id` alone, a database without statistics took the tenant for
/// a single row, scanned all of it and compared every row with the 500 new values: 2.5 s per
/// step on a 30,000-visitor tenant. `sql_query` is planned anew at each execution, from
/// whatever statistics there are, so the statement itself must leave no bad plan.
const UPDATE_SEALED_PG: &str = "\
UPDATE visitors AS v SET \
    name_sealed = n.name_sealed, email_sealed = n.email_sealed, \
    phone_sealed = n.phone_sealed, address_sealed = n.address_sealed, \
    attributes_sealed = n.attributes_sealed, key_version = n.key_version \
FROM unnest($4::text[], $5::bigint[], $6::timestamp[], $7::bigint[], \
            $8::bytea[], $9::bytea[], $10::bytea[], $11::bytea[], $12::bytea[]) \
    AS n(id, seen_version, seen_updated_at, key_version, \
         name_sealed, email_sealed, phone_sealed, address_sealed, attributes_sealed) \
WHERE v.tenant_id = $1 AND v.id >= $2 AND v.id <= $3 AND v.id = n.id AND v.status = $13 \
  AND v.key_version = n.seen_version AND v.updated_at = n.seen_updated_at";

fn update_sealed_pg(pg: &mut PgConnection, tenant_id: &str, rows: &[Resealed]) -> Result<i64> {
    use diesel::sql_types::Array;
    let ids: Vec<&str> = rows.iter().map(|(r, _)| r.id.as_str()).collect();
    let (Some(lo), Some(hi)) = (ids.iter().min(), ids.iter().max()) else {
        return Ok(0);
    };
    let seen_versions: Vec<i64> = rows.iter().map(|(_, (v, _))| *v).collect();
    let seen_updated: Vec<NaiveDateTime> = rows.iter().map(|(_, (_, t))| *t).collect();
    let versions: Vec<i64> = rows.iter().map(|(r, _)| r.key_version).collect();
    let sealed = |f: fn(&VisitorRow) -> &Option<Vec<u8>>| -> Vec<Option<&[u8]>> {
        rows.iter().map(|(r, _)| f(r).as_deref()).collect()
    };
    let written = diesel::sql_query(UPDATE_SEALED_PG)
        .bind::<Text, _>(tenant_id)
        .bind::<Text, _>(*lo)
        .bind::<Text, _>(*hi)
        .bind::<Array<Text>, _>(&ids)
        .bind::<Array<BigInt>, _>(&seen_versions)
        .bind::<Array<Timestamp>, _>(&seen_updated)
        .bind::<Array<BigInt>, _>(&versions)
        .bind::<Array<Nullable<Binary>>, _>(sealed(|r| &r.name_sealed))
        .bind::<Array<Nullable<Binary>>, _>(sealed(|r| &r.email_sealed))
        .bind::<Array<Nullable<Binary>>, _>(sealed(|r| &r.phone_sealed))
        .bind::<Array<Nullable<Binary>>, _>(sealed(|r| &r.address_sealed))
        .bind::<Array<Nullable<Binary>>, _>(sealed(|r| &r.attributes_sealed))
        .bind::<Text, _>(STATUS_ACTIVE)
        .execute(pg)?;
    Ok(written as i64)
}

/// Active visitors of the tenant still sealed under a key version before `current`.
pub fn count_sealed_before(conn: &mut DbConnection, tenant_id: &str, current: i64) -> Result<i64> {
    Ok(visitors::table
        .filter(visitors::tenant_id.eq(tenant_id))
        .filter(visitors::status.eq(STATUS_ACTIVE))
        .filter(visitors::key_version.lt(current))
        .count()
        .get_result(conn)?)
}

pub fn find_by_index(
    conn: &mut DbConnection,
    tenant_id: &str,
    email_index: Option<&[u8]>,
    phone_index: Option<&[u8]>,
    limit: i64,
) -> Result<Vec<VisitorRow>> {
    // No ORDER BY here: with one, SQLite's planner walks the primary key (tenant_id, id) to
    // avoid a sort and scans the whole tenant instead of using the blind-index index. The few
    // matches are sorted in memory. One query shape per filter combination, not a boxed
    // query: each runs prepared on the backend's own connection (see `direct!`), which the
    // e-mail lookup behind every "find my customer" call is worth.
    let base = visitors::table
        .filter(visitors::tenant_id.eq(tenant_id))
        .filter(visitors::status.eq(STATUS_ACTIVE));
    macro_rules! load {
        ($q:expr) => {
            steward_store::direct!(conn, |c| $q
                .select(VisitorRow::as_select())
                .limit(limit)
                .load(c))?
        };
    }
    let mut rows: Vec<VisitorRow> = match (email_index, phone_index) {
        (Some(e), Some(p)) => load!(base
            .filter(visitors::email_index.eq(e))
            .filter(visitors::phone_index.eq(p))),
        (Some(e), None) => load!(base.filter(visitors::email_index.eq(e))),
        (None, Some(p)) => load!(base.filter(visitors::phone_index.eq(p))),
        (None, None) => load!(base),
    };
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(rows)
}

/// The backend of [`DbConnection`], for boxed queries.
type Db = <DbConnection as diesel::Connection>::Backend;
/// Active visitor rows of one tenant, by id, after a cursor: what every paged walk starts from.
pub type ActivePage<'a> = visitors::BoxedQuery<
    'a,
    Db,
    <diesel::dsl::AsSelect<VisitorRow, Db> as diesel::Expression>::SqlType,
>;

pub fn active_page<'a>(tenant_id: &'a str, after: Option<&str>, limit: i64) -> ActivePage<'a> {
    active_walk(tenant_id, after, limit).select(VisitorRow::as_select())
}

/// Active visitors of one tenant after a cursor, by id, as [`SealedRow`]s.
pub type ActiveSealedPage<'a> = visitors::BoxedQuery<
    'a,
    Db,
    <diesel::dsl::AsSelect<SealedRow, Db> as diesel::Expression>::SqlType,
>;

/// [`active_page`] loading only what opening and sending fields needs.
pub fn active_sealed_page<'a>(
    tenant_id: &'a str,
    after: Option<&str>,
    limit: i64,
) -> ActiveSealedPage<'a> {
    active_walk(tenant_id, after, limit).select(SealedRow::as_select())
}

/// The conditions and order of every paged walk, before its columns are chosen.
fn active_walk<'a>(
    tenant_id: &'a str,
    after: Option<&str>,
    limit: i64,
) -> visitors::BoxedQuery<'a, Db> {
    let q = visitors::table
        .filter(visitors::tenant_id.eq(tenant_id))
        .filter(visitors::status.eq(STATUS_ACTIVE))
        .order(visitors::id.asc())
        .limit(limit)
        .into_boxed();
    match after {
        Some(a) => q.filter(visitors::id.gt(a.to_string())),
        None => q,
    }
}

/// Active visitors after `after`, by id.
pub fn page(
    conn: &mut DbConnection,
    tenant_id: &str,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<VisitorRow>> {
    Ok(active_page(tenant_id, after, limit).load(conn)?)
}

pub fn count_active(conn: &mut DbConnection, tenant_id: &str) -> Result<i64> {
    Ok(visitors::table
        .filter(visitors::tenant_id.eq(tenant_id))
        .filter(visitors::status.eq(STATUS_ACTIVE))
        .count()
        .get_result(conn)?)
}

/// Active visitors inactive since before `cutoff` and not under legal hold, after `after`.
pub fn inactive_since(
    conn: &mut DbConnection,
    tenant_id: &str,
    cutoff: NaiveDateTime,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<VisitorRow>> {
    Ok(active_page(tenant_id, after, limit)
        .filter(visitors::legal_hold.eq(false))
        .filter(visitors::last_activity_at.lt(cutoff))
        .load(conn)?)
}

/// Rows sealed under a version older than `current`, after `after`.
pub fn sealed_before(
    conn: &mut DbConnection,
    tenant_id: &str,
    current: i64,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<VisitorRow>> {
    Ok(active_page(tenant_id, after, limit)
        .filter(visitors::key_version.lt(current))
        .load(conn)?)
}

pub fn count_all(conn: &mut DbConnection, tenant_id: &str) -> Result<i64> {
    Ok(visitors::table
        .filter(visitors::tenant_id.eq(tenant_id))
        .count()
        .get_result(conn)?)
}

/// Deletes every row of the tenant (offboarding, after its keys are gone).
pub fn delete_tenant(conn: &mut DbConnection, tenant_id: &str) -> Result<usize> {
    Ok(diesel::delete(visitors::table.filter(visitors::tenant_id.eq(tenant_id))).execute(conn)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use steward_store::testing::{inserts_into, sqlite_with_statement_log};

    /// 1,000 visitors, some with absent fields, are two multi-row INSERTs on SQLite, not 1,000
    /// single-row ones; an absent field is stored as NULL.
    #[test]
    fn batch_inserts_in_chunks() {
        let (mut conn, log) = sqlite_with_statement_log();
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0)
            .unwrap()
            .naive_utc();
        let rows: Vec<VisitorRow> = (0..1000)
            .map(|i| VisitorRow {
                tenant_id: "ten_1".into(),
                id: format!("vis_{i:026}"),
                external_ref: (i % 2 == 0).then(|| format!("ref-{i}")),
                status: STATUS_ACTIVE.into(),
                legal_hold: false,
                legal_hold_reason: None,
                key_version: 1,
                name_sealed: Some(vec![1, 2, 3]),
                email_sealed: (i % 3 == 0).then(|| vec![4, 5]),
                phone_sealed: None,
                address_sealed: None,
                attributes_sealed: None,
                email_index: (i % 3 == 0).then(|| vec![i as u8; 32]),
                phone_index: None,
                created_at: now.into(),
                updated_at: now.into(),
                last_activity_at: now.into(),
                erased_at: None,
            })
            .collect();
        insert_many(&mut conn, &rows).unwrap();
        assert_eq!(inserts_into(&log, "visitors"), 2);
        let odd = get_active(&mut conn, "ten_1", "vis_00000000000000000000000001").unwrap();
        assert_eq!(odd.external_ref, None);
        assert_eq!(odd.email_sealed, None);
        let third = get_active(&mut conn, "ten_1", "vis_00000000000000000000000003").unwrap();
        assert_eq!(third.email_sealed, Some(vec![4, 5]));
    }
}
