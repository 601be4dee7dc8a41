//! Erasure propagation. When a visitor is erased, every subprocessor that ever received its
//! data gets an erasure notice; when a visitor withdraws a consent an authorization requires,
//! the subprocessors holding such an authorization that received the visitor's data get a
//! `consent_withdrawn` notice. Subprocessors list and acknowledge theirs; the tenant sees
//! which are acknowledged, pending, or overdue (unacknowledged past `due_at`).

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use steward_audit::{Actor, NewEvent, Target};
use steward_core::{Error, Id, PrincipalKind, Result};
use steward_store::pagination::{Page, PageRequest};
use steward_store::DbConnection;
use steward_visitors::VisitorHooks;

use crate::schema::erasure_notices as notices;
use crate::util::{micros, utc};
use crate::{authorizations, ledger, registry};

pub const REASON_ERASURE: &str = "erasure";
pub const REASON_CONSENT_WITHDRAWN: &str = "consent_withdrawn";

/// Days a subprocessor has to acknowledge a notice before it is overdue.
pub const ACK_WITHIN_DAYS: i64 = 30;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = notices)]
#[diesel(treat_none_as_default_value = false)]
pub struct ErasureNoticeRow {
    pub tenant_id: String,
    pub id: String,
    pub subprocessor_id: String,
    pub visitor_id: String,
    pub reason: String,
    pub purpose: Option<String>,
    pub created_at: NaiveDateTime,
    pub due_at: NaiveDateTime,
    pub acknowledged_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeState {
    Acknowledged,
    Pending,
    Overdue,
}

impl ErasureNoticeRow {
    pub fn state(&self, now: NaiveDateTime) -> NoticeState {
        if self.acknowledged_at.is_some() {
            NoticeState::Acknowledged
        } else if now > self.due_at {
            NoticeState::Overdue
        } else {
            NoticeState::Pending
        }
    }
}

/// A notice as the API shows it, with its state at the time of asking.
#[derive(Debug, Clone, Serialize)]
pub struct ErasureNotice {
    pub id: String,
    pub tenant_id: String,
    pub subprocessor_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subprocessor_name: Option<String>,
    pub visitor_id: String,
    /// `erasure` or `consent_withdrawn`.
    pub reason: String,
    /// The withdrawn consent's purpose (`consent_withdrawn` only).
    pub purpose: Option<String>,
    pub created_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub state: NoticeState,
}

impl ErasureNotice {
    pub fn from_row(r: ErasureNoticeRow, now: NaiveDateTime) -> Self {
        ErasureNotice {
            state: r.state(now),
            id: r.id,
            tenant_id: r.tenant_id,
            subprocessor_id: r.subprocessor_id,
            subprocessor_name: None,
            visitor_id: r.visitor_id,
            reason: r.reason,
            purpose: r.purpose,
            created_at: utc(r.created_at),
            due_at: utc(r.due_at),
            acknowledged_at: r.acknowledged_at.map(utc),
        }
    }
}

/// Raises one notice per subprocessor in `subprocessors`, skipping any that already has an
/// unacknowledged notice for the same visitor, reason and purpose.
fn raise(
    conn: &mut DbConnection,
    tenant_id: &str,
    visitor_id: &str,
    subprocessors: &[String],
    reason: &str,
    purpose: Option<&str>,
    now: NaiveDateTime,
) -> Result<usize> {
    let now = micros(now);
    let mut raised = 0;
    for sub in subprocessors {
        let mut pending = notices::table
            .filter(notices::tenant_id.eq(tenant_id))
            .filter(notices::visitor_id.eq(visitor_id))
            .filter(notices::subprocessor_id.eq(sub))
            .filter(notices::reason.eq(reason))
            .filter(notices::acknowledged_at.is_null())
            .into_boxed();
        pending = match purpose {
            Some(p) => pending.filter(notices::purpose.eq(p.to_string())),
            None => pending.filter(notices::purpose.is_null()),
        };
        let open: i64 = pending.count().get_result(conn)?;
        if open > 0 {
            continue;
        }
        let row = ErasureNoticeRow {
            tenant_id: tenant_id.to_string(),
            id: Id::Notice.generate(),
            subprocessor_id: sub.clone(),
            visitor_id: visitor_id.to_string(),
            reason: reason.to_string(),
            purpose: purpose.map(str::to_string),
            created_at: now,
            due_at: now + Duration::days(ACK_WITHIN_DAYS),
            acknowledged_at: None,
        };
        diesel::insert_into(notices::table)
            .values(&row)
            .execute(conn)?;
        raised += 1;
    }
    if raised > 0 {
        tracing::info!(
            tenant_id,
            visitor_id,
            reason,
            raised,
            "erasure notices raised"
        );
    }
    Ok(raised)
}

/// Notices of an erased visitor to every subprocessor that received its data.
pub fn raise_for_erasure(
    conn: &mut DbConnection,
    tenant_id: &str,
    visitor_id: &str,
    now: NaiveDateTime,
) -> Result<usize> {
    let subs: Vec<String> = ledger::recipient_rows(conn, tenant_id, visitor_id)?
        .into_iter()
        .map(|r| r.subprocessor_id)
        .collect();
    raise(
        conn,
        tenant_id,
        visitor_id,
        &subs,
        REASON_ERASURE,
        None,
        now,
    )
}

/// Notices of a consent withdrawal to every subprocessor that received the visitor's data and
/// holds an authorization of this tenant requiring consent for `purpose`.
pub fn raise_for_withdrawal(
    conn: &mut DbConnection,
    tenant_id: &str,
    visitor_id: &str,
    purpose: &str,
    now: NaiveDateTime,
) -> Result<usize> {
    let requiring = authorizations::requiring_consent(conn, tenant_id, purpose)?;
    if requiring.is_empty() {
        return Ok(0);
    }
    let subs: Vec<String> = ledger::recipient_rows(conn, tenant_id, visitor_id)?
        .into_iter()
        .map(|r| r.subprocessor_id)
        .filter(|s| requiring.contains(s))
        .collect();
    raise(
        conn,
        tenant_id,
        visitor_id,
        &subs,
        REASON_CONSENT_WITHDRAWN,
        Some(purpose),
        now,
    )
}

/// One page of a subprocessor's notices across tenants, oldest first (cursor: notice id);
/// unacknowledged only unless `include_acknowledged`.
pub fn list_for_subprocessor(
    conn: &mut DbConnection,
    sub_id: &str,
    page: &PageRequest,
    include_acknowledged: bool,
    now: NaiveDateTime,
) -> Result<Page<ErasureNotice>> {
    let mut q = notices::table
        .filter(notices::subprocessor_id.eq(sub_id))
        .select(ErasureNoticeRow::as_select())
        .order(notices::id.asc())
        .limit(page.fetch_limit())
        .into_boxed();
    if !include_acknowledged {
        q = q.filter(notices::acknowledged_at.is_null());
    }
    if let Some(after) = &page.after {
        q = q.filter(notices::id.gt(after.clone()));
    }
    let rows = q.load(conn)?;
    Ok(Page::from_rows(rows, page, |r| r.id.clone()).map(|r| ErasureNotice::from_row(r, now)))
}

/// The subprocessor acknowledges a notice (it deleted or stopped using the data).
/// `NotFound` for another subprocessor's notice; acknowledging twice keeps the first time.
/// Audited as `erasure_notice.ack` in the tenant's chain.
pub fn ack(
    conn: &mut DbConnection,
    sub_id: &str,
    notice_id: &str,
    now: NaiveDateTime,
) -> Result<ErasureNotice> {
    if !Id::Notice.matches(notice_id) || !Id::Subprocessor.matches(sub_id) {
        return Err(Error::NotFound);
    }
    let now = micros(now);
    let row: ErasureNoticeRow = notices::table
        .filter(notices::subprocessor_id.eq(sub_id))
        .filter(notices::id.eq(notice_id))
        .select(ErasureNoticeRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(Error::NotFound)?;
    if row.acknowledged_at.is_some() {
        return Ok(ErasureNotice::from_row(row, now));
    }
    diesel::update(
        notices::table
            .filter(notices::tenant_id.eq(&row.tenant_id))
            .filter(notices::id.eq(&row.id))
            .filter(notices::acknowledged_at.is_null()),
    )
    .set(notices::acknowledged_at.eq(Some(now)))
    .execute(conn)?;
    let kind = PrincipalKind::Subprocessor.as_str();
    steward_audit::append(
        conn,
        &row.tenant_id,
        NewEvent::new(
            "erasure_notice.ack",
            Actor::new(kind, sub_id, kind),
            Target::record("erasure_notice", row.id.clone()),
        )
        .detail(format!("{} {}", row.reason, row.visitor_id)),
        now,
    )?;
    let mut row = row;
    row.acknowledged_at = Some(now);
    Ok(ErasureNotice::from_row(row, now))
}

/// One page of the tenant's notices, oldest first, with each one's state at `now`.
pub fn list_for_tenant(
    conn: &mut DbConnection,
    tenant_id: &str,
    page: &PageRequest,
    now: NaiveDateTime,
) -> Result<Page<ErasureNotice>> {
    let mut q = notices::table
        .filter(notices::tenant_id.eq(tenant_id))
        .select(ErasureNoticeRow::as_select())
        .order(notices::id.asc())
        .limit(page.fetch_limit())
        .into_boxed();
    if let Some(after) = &page.after {
        q = q.filter(notices::id.gt(after.clone()));
    }
    let rows = q.load(conn)?;
    let mut ids: Vec<String> = rows.iter().map(|r| r.subprocessor_id.clone()).collect();
    ids.sort_unstable();
    ids.dedup();
    let names = registry::names(conn, &ids)?;
    Ok(Page::from_rows(rows, page, |r| r.id.clone()).map(|r| {
        let name = names.get(&r.subprocessor_id).cloned();
        let mut n = ErasureNotice::from_row(r, now);
        n.subprocessor_name = name;
        n
    }))
}

/// The transfers domain's part in visitor erasure, consent withdrawal and export: attach it
/// with `VisitorService::with_hooks(Arc::new(TransferHooks))`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TransferHooks;

impl VisitorHooks for TransferHooks {
    /// Erasure notices for every recipient. The `transfer_recipients` rows stay: they hold no
    /// PII and are the record of who got what.
    fn on_erased(
        &self,
        conn: &mut DbConnection,
        tenant_id: &str,
        visitor_id: &str,
        now: NaiveDateTime,
    ) -> Result<()> {
        raise_for_erasure(conn, tenant_id, visitor_id, now).map(|_| ())
    }

    fn on_consent_withdrawn(
        &self,
        conn: &mut DbConnection,
        tenant_id: &str,
        visitor_id: &str,
        purpose: &str,
        now: NaiveDateTime,
    ) -> Result<()> {
        raise_for_withdrawal(conn, tenant_id, visitor_id, purpose, now).map(|_| ())
    }

    fn recipients(
        &self,
        conn: &mut DbConnection,
        tenant_id: &str,
        visitor_id: &str,
    ) -> Result<serde_json::Value> {
        let r = ledger::recipients_for(conn, tenant_id, visitor_id)?;
        serde_json::to_value(r).map_err(Error::internal)
    }
}
