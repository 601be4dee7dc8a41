//! What the platform tells a tenant, kept where the tenant can read it: a staff member asking
//! for access, a break-glass activation, later a new subprocessor with a window to object in.
//! A notice is a record, not a message in flight: delivery (webhooks) can be added on top
//! without changing what the tenant can look up. Messages hold ids and codes, never values.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use steward_core::clock::truncate_micros;
use steward_core::{Error, Id, Principal, Result};
use steward_store::pagination::{Page, PageRequest};
use steward_store::DbConnection;

use crate::model::utc;
use crate::schema::notices;

/// Kinds this crate writes; other domains add their own (`subprocessor.added`).
pub const KIND_ACCESS_REQUESTED: &str = "staff_access.requested";
pub const KIND_BREAK_GLASS_REQUESTED: &str = "staff_access.break_glass_requested";
pub const KIND_BREAK_GLASS: &str = "staff_access.break_glass";

/// Longest message accepted (characters).
pub const MAX_MESSAGE_LEN: usize = 1000;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = notices)]
#[diesel(treat_none_as_default_value = false)]
pub struct NoticeRow {
    pub tenant_id: String,
    pub id: String,
    pub kind: String,
    pub subject_id: Option<String>,
    pub message: String,
    pub flagged: bool,
    pub created_at: NaiveDateTime,
    pub respond_by: Option<NaiveDateTime>,
    pub objected_at: Option<NaiveDateTime>,
    pub objected_by: Option<String>,
}

/// A notice as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    pub id: String,
    pub tenant_id: String,
    pub kind: String,
    /// What the notice is about (`acr_…`, `sub_…`).
    pub subject_id: Option<String>,
    pub message: String,
    /// Needs the tenant's attention (break-glass access).
    pub flagged: bool,
    pub created_at: DateTime<Utc>,
    /// The end of the objection window, when the notice has one.
    pub respond_by: Option<DateTime<Utc>>,
    pub objected_at: Option<DateTime<Utc>>,
    pub objected_by: Option<String>,
}

impl From<NoticeRow> for Notice {
    fn from(r: NoticeRow) -> Self {
        Notice {
            id: r.id,
            tenant_id: r.tenant_id,
            kind: r.kind,
            subject_id: r.subject_id,
            message: r.message,
            flagged: r.flagged,
            created_at: utc(r.created_at),
            respond_by: r.respond_by.map(utc),
            objected_at: r.objected_at.map(utc),
            objected_by: r.objected_by,
        }
    }
}

fn is_token(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// Records a notice for `tenant_id`. Call it inside the unit of work of the event it tells
/// about, so the tenant is never told of something that did not commit (or not told of
/// something that did).
#[allow(clippy::too_many_arguments)]
pub fn insert(
    conn: &mut DbConnection,
    tenant_id: &str,
    kind: &str,
    subject_id: Option<&str>,
    message: &str,
    flagged: bool,
    respond_by: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> Result<NoticeRow> {
    if !is_token(kind) || !subject_id.is_none_or(is_token) {
        return Err(Error::invalid(
            "invalid_notice",
            "notice kind and subject must be ids or codes",
        ));
    }
    let message = crate::model::validate_text(message, MAX_MESSAGE_LEN).ok_or_else(|| {
        Error::invalid(
            "invalid_notice",
            format!("notice message must be 1 to {MAX_MESSAGE_LEN} characters"),
        )
    })?;
    let row = NoticeRow {
        tenant_id: tenant_id.to_string(),
        id: Id::Notice.generate(),
        kind: kind.to_string(),
        subject_id: subject_id.map(str::to_string),
        message,
        flagged,
        created_at: micros(now),
        respond_by: respond_by.map(micros),
        objected_at: None,
        objected_by: None,
    };
    diesel::insert_into(notices::table)
        .values(&row)
        .execute(conn)?;
    Ok(row)
}

/// The notice, or `NotFound` (also for another tenant's notice).
pub fn get(conn: &mut DbConnection, tenant_id: &str, id: &str) -> Result<NoticeRow> {
    if !Id::Notice.matches(id) {
        return Err(Error::NotFound);
    }
    notices::table
        .find((tenant_id, id))
        .select(NoticeRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(Error::NotFound)
}

/// One page of the tenant's notices, oldest first; the cursor is the last notice id.
pub fn list(
    conn: &mut DbConnection,
    tenant_id: &str,
    page: &PageRequest,
) -> Result<Page<NoticeRow>> {
    let mut q = notices::table
        .filter(notices::tenant_id.eq(tenant_id))
        .select(NoticeRow::as_select())
        .order(notices::id.asc())
        .limit(page.fetch_limit())
        .into_boxed();
    if let Some(after) = &page.after {
        q = q.filter(notices::id.gt(after.clone()));
    }
    let rows = q.load(conn)?;
    Ok(Page::from_rows(rows, page, |n| n.id.clone()))
}

/// The tenant objects to what the notice announces (a new subprocessor). Only notices with an
/// objection window take objections, only while it is open, and only once.
pub fn object(
    conn: &mut DbConnection,
    tenant_id: &str,
    notice_id: &str,
    by: &Principal,
    now: NaiveDateTime,
) -> Result<NoticeRow> {
    if by.tenant_id.as_deref().is_some_and(|t| t != tenant_id) {
        return Err(Error::NotFound);
    }
    let now = micros(now);
    let row = get(conn, tenant_id, notice_id)?;
    let Some(respond_by) = row.respond_by else {
        return Err(Error::conflict(
            "not_objectable",
            "this notice has no objection window",
        ));
    };
    if row.objected_at.is_some() {
        return Err(Error::conflict(
            "already_objected",
            "an objection to this notice is already on file",
        ));
    }
    if now > respond_by {
        return Err(Error::conflict(
            "objection_window_closed",
            "the objection window of this notice has closed",
        ));
    }
    // Conditional on no objection yet, so two concurrent objections record one.
    let n = diesel::update(
        notices::table
            .filter(notices::tenant_id.eq(tenant_id))
            .filter(notices::id.eq(notice_id))
            .filter(notices::objected_at.is_null()),
    )
    .set((
        notices::objected_at.eq(Some(now)),
        notices::objected_by.eq(Some(by.id.as_str())),
    ))
    .execute(conn)?;
    if n != 1 {
        return Err(Error::conflict(
            "already_objected",
            "an objection to this notice is already on file",
        ));
    }
    get(conn, tenant_id, notice_id)
}

/// Removes every notice of a tenant (offboarding).
pub fn delete_tenant(conn: &mut DbConnection, tenant_id: &str) -> Result<usize> {
    Ok(diesel::delete(notices::table.filter(notices::tenant_id.eq(tenant_id))).execute(conn)?)
}

pub(crate) fn micros(t: NaiveDateTime) -> NaiveDateTime {
    truncate_micros(t.and_utc()).naive_utc()
}
