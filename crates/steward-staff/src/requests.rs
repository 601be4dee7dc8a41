//! The life of an access request, as functions on a connection the caller runs inside a unit
//! of work (`store.write` for changes, `store.read` for lookups):
//!
//! ```text
//! create ──► pending ──approve──────────► approved ──revoke──► revoked
//!               │  └──approve_break_glass─┘  (active, then ended)
//!               ├──deny──► denied
//!               └──(48 h)── expired (computed, never stored)
//! ```
//!
//! Every change appends its audit event to the tenant's chain in the same transaction, and
//! state changes are conditional updates (`… WHERE status = 'pending'`), so two concurrent
//! decisions cannot both win. [`check_grant`] is the gate before every staff read; the read
//! itself is recorded by the caller with [`Grant::audit`](crate::Grant::audit), and
//! [`staff_access_log`] turns those records into the tenant's Access Transparency view.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use steward_audit::schema::audit_events;
use steward_audit::{Actor, NewEvent, Target};
use steward_core::{Error, Id, Principal, Result, Role};
use steward_store::pagination::{Page, PageRequest, MAX_LIMIT};
use steward_store::{tenants, DbConnection};

use crate::model::{
    utc, validate_comment, AccessRequest, AccessRequestRow, Grant, JustificationCode,
    NewAccessRequest, RequestStatus, RESPOND_WITHIN_HOURS,
};
use crate::notices::{self, micros};
use crate::schema::access_requests;

/// Audit actions this module appends.
pub const ACTION_REQUEST: &str = "staff_access.request";
pub const ACTION_APPROVE: &str = "staff_access.approve";
pub const ACTION_DENY: &str = "staff_access.deny";
pub const ACTION_REVOKE: &str = "staff_access.revoke";
pub const ACTION_BREAK_GLASS: &str = "staff_access.break_glass";

const TARGET_KIND: &str = "access_request";

/// Files a request for access to `tenant_id`'s data and tells the tenant (a notice, flagged
/// for break-glass). Only staff file requests; only a `security_officer` may ask for
/// break-glass, and only for `security_investigation` or `legal_obligation`.
pub fn create(
    conn: &mut DbConnection,
    tenant_id: &str,
    requester: &Principal,
    req: NewAccessRequest,
    request_id: Option<&str>,
    now: NaiveDateTime,
) -> Result<AccessRequest> {
    let now = micros(now);
    if !requester.is_staff() {
        return Err(Error::denied(
            "staff_only",
            "only platform staff file access requests",
        ));
    }
    let v = req.validate()?;
    if v.break_glass {
        if !v.justification.allows_break_glass() {
            return Err(Error::invalid(
                "break_glass_not_allowed",
                "break-glass is only for security_investigation and legal_obligation",
            ));
        }
        if requester.role != Some(Role::SecurityOfficer) {
            return Err(Error::invalid(
                "break_glass_not_allowed",
                "only a security_officer may request break-glass access",
            ));
        }
    }
    tenants::get(conn, tenant_id)?;

    let (scope_all, scope_visitor_ids) = v.scope.to_columns();
    let row = AccessRequestRow {
        tenant_id: tenant_id.to_string(),
        id: Id::AccessRequest.generate(),
        requester_id: requester.id.clone(),
        requester_role: requester.role_name().to_string(),
        justification_code: v.justification.as_str().to_string(),
        ticket: v.ticket,
        reason: v.reason,
        scope_all,
        scope_visitor_ids,
        duration_minutes: v.duration_minutes,
        break_glass: v.break_glass,
        status: RequestStatus::Pending.as_str().to_string(),
        created_at: now,
        respond_by: now + Duration::hours(RESPOND_WITHIN_HOURS),
        decided_by: None,
        decided_role: None,
        decided_at: None,
        decision_comment: None,
        grant_starts_at: None,
        grant_ends_at: None,
        revoked_at: None,
        revoked_by: None,
    };
    diesel::insert_into(access_requests::table)
        .values(&row)
        .execute(conn)?;

    let (kind, message) = if row.break_glass {
        (
            notices::KIND_BREAK_GLASS_REQUESTED,
            format!(
                "{} {} requests break-glass access {}; a second staff member may activate it without your approval",
                row.requester_role,
                row.requester_id,
                row.describe()
            ),
        )
    } else {
        (
            notices::KIND_ACCESS_REQUESTED,
            format!(
                "{} {} requests access {}",
                row.requester_role,
                row.requester_id,
                row.describe()
            ),
        )
    };
    notices::insert(
        conn,
        tenant_id,
        kind,
        Some(&row.id),
        &message,
        row.break_glass,
        None,
        now,
    )?;

    let mut event = lifecycle_event(ACTION_REQUEST, Actor::from_principal(requester), &row);
    if let Some(r) = request_id {
        event = event.request_id(r);
    }
    steward_audit::append(conn, tenant_id, event, now)?;
    AccessRequest::from_row(row, now)
}

/// The request, or `NotFound` (also for another tenant's request).
pub fn get(conn: &mut DbConnection, tenant_id: &str, id: &str) -> Result<AccessRequestRow> {
    find(conn, tenant_id, id)?.ok_or(Error::NotFound)
}

fn find(conn: &mut DbConnection, tenant_id: &str, id: &str) -> Result<Option<AccessRequestRow>> {
    if !Id::AccessRequest.matches(id) {
        return Ok(None);
    }
    Ok(access_requests::table
        .find((tenant_id, id))
        .select(AccessRequestRow::as_select())
        .first(conn)
        .optional()?)
}

/// One page of the tenant's requests, oldest first (cursor = the last id), optionally only
/// those filed by `requester_id` (what a staff member sees of their own requests).
pub fn list(
    conn: &mut DbConnection,
    tenant_id: &str,
    requester_id: Option<&str>,
    page: &PageRequest,
) -> Result<Page<AccessRequestRow>> {
    let mut q = access_requests::table
        .filter(access_requests::tenant_id.eq(tenant_id))
        .select(AccessRequestRow::as_select())
        .order(access_requests::id.asc())
        .limit(page.fetch_limit())
        .into_boxed();
    if let Some(r) = requester_id {
        q = q.filter(access_requests::requester_id.eq(r.to_string()));
    }
    if let Some(after) = &page.after {
        q = q.filter(access_requests::id.gt(after.clone()));
    }
    let rows = q.load(conn)?;
    Ok(Page::from_rows(rows, page, |r| r.id.clone()))
}

/// A page of rows as the API shows them at `now`.
pub fn view_page(page: Page<AccessRequestRow>, now: NaiveDateTime) -> Result<Page<AccessRequest>> {
    let now = micros(now);
    Ok(Page {
        items: page
            .items
            .into_iter()
            .map(|r| AccessRequest::from_row(r, now))
            .collect::<Result<Vec<_>>>()?,
        next_cursor: page.next_cursor,
    })
}

/// The tenant approves: the grant runs from now for the requested duration.
pub fn approve(
    conn: &mut DbConnection,
    tenant_id: &str,
    id: &str,
    approver: &Principal,
    comment: Option<String>,
    now: NaiveDateTime,
) -> Result<AccessRequest> {
    let now = micros(now);
    require_tenant_decider(approver, tenant_id)?;
    let comment = validate_comment(comment)?;
    let row = get(conn, tenant_id, id)?;
    require_open(&row, now)?;
    let row = decide(
        conn,
        &row,
        RequestStatus::Approved,
        approver,
        comment,
        Some(grant_window(&row, now)),
        now,
    )?;
    steward_audit::append(
        conn,
        tenant_id,
        lifecycle_event(ACTION_APPROVE, Actor::from_principal(approver), &row),
        now,
    )?;
    AccessRequest::from_row(row, now)
}

/// The tenant denies a pending request.
pub fn deny(
    conn: &mut DbConnection,
    tenant_id: &str,
    id: &str,
    approver: &Principal,
    comment: Option<String>,
    now: NaiveDateTime,
) -> Result<AccessRequest> {
    let now = micros(now);
    require_tenant_decider(approver, tenant_id)?;
    let comment = validate_comment(comment)?;
    let row = get(conn, tenant_id, id)?;
    require_open(&row, now)?;
    let row = decide(
        conn,
        &row,
        RequestStatus::Denied,
        approver,
        comment,
        None,
        now,
    )?;
    steward_audit::append(
        conn,
        tenant_id,
        lifecycle_event(ACTION_DENY, Actor::from_principal(approver), &row),
        now,
    )?;
    AccessRequest::from_row(row, now)
}

/// Ends an approved grant at once, whether or not its window is still open. The next
/// [`check_grant`] fails with `grant_revoked`.
pub fn revoke(
    conn: &mut DbConnection,
    tenant_id: &str,
    id: &str,
    by: &Principal,
    now: NaiveDateTime,
) -> Result<AccessRequest> {
    let now = micros(now);
    if by.tenant_id.as_deref().is_some_and(|t| t != tenant_id) {
        return Err(Error::NotFound);
    }
    let row = get(conn, tenant_id, id)?;
    if row.status()? != RequestStatus::Approved {
        return Err(not_approved());
    }
    let n = diesel::update(
        access_requests::table
            .filter(access_requests::tenant_id.eq(tenant_id))
            .filter(access_requests::id.eq(id))
            .filter(access_requests::status.eq(RequestStatus::Approved.as_str())),
    )
    .set((
        access_requests::status.eq(RequestStatus::Revoked.as_str()),
        access_requests::revoked_at.eq(Some(now)),
        access_requests::revoked_by.eq(Some(by.id.as_str())),
    ))
    .execute(conn)?;
    if n != 1 {
        return Err(not_approved());
    }
    let row = get(conn, tenant_id, id)?;
    steward_audit::append(
        conn,
        tenant_id,
        lifecycle_event(ACTION_REVOKE, Actor::from_principal(by), &row),
        now,
    )?;
    AccessRequest::from_row(row, now)
}

/// Break-glass activation: a second, different staff member approves a pending break-glass
/// request in place of the tenant (two-person rule). The tenant gets a flagged notice in the
/// same transaction, so the access never exists without the tenant being told.
pub fn approve_break_glass(
    conn: &mut DbConnection,
    tenant_id: &str,
    id: &str,
    second: &Principal,
    comment: Option<String>,
    now: NaiveDateTime,
) -> Result<AccessRequest> {
    let now = micros(now);
    let comment = validate_comment(comment)?;
    let row = get(conn, tenant_id, id)?;
    if !row.break_glass {
        return Err(Error::conflict(
            "not_break_glass",
            "this request was not filed as break-glass; the tenant decides it",
        ));
    }
    if !second.is_staff() || second.id == row.requester_id {
        return Err(Error::denied(
            "two_person_rule",
            "break-glass access needs the approval of a second, different staff member",
        ));
    }
    require_open(&row, now)?;
    let row = decide(
        conn,
        &row,
        RequestStatus::Approved,
        second,
        comment,
        Some(grant_window(&row, now)),
        now,
    )?;
    let until = row
        .grant_ends_at
        .map(|t| utc(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default();
    notices::insert(
        conn,
        tenant_id,
        notices::KIND_BREAK_GLASS,
        Some(&row.id),
        &format!(
            "break-glass access {} activated by {} {} approved by {} {} {} until {}",
            row.id,
            row.requester_role,
            row.requester_id,
            second.role_name(),
            second.id,
            row.describe(),
            until
        ),
        true,
        None,
        now,
    )?;
    steward_audit::append(
        conn,
        tenant_id,
        lifecycle_event(ACTION_BREAK_GLASS, Actor::from_principal(second), &row),
        now,
    )?;
    tracing::warn!(
        tenant_id,
        access_request = %row.id,
        requester = %row.requester_id,
        approver = %second.id,
        "break-glass access activated"
    );
    AccessRequest::from_row(row, now)
}

/// The gate before a staff read of one visitor: `grant_id` must be this tenant's request,
/// filed by `principal`, approved and not revoked, inside its window, and cover `visitor_id`.
/// Every refusal is a 403 naming the reason.
pub fn check_grant(
    conn: &mut DbConnection,
    tenant_id: &str,
    grant_id: &str,
    principal: &Principal,
    visitor_id: &str,
    now: NaiveDateTime,
) -> Result<Grant> {
    let grant = check_grant_window(conn, tenant_id, grant_id, principal, now)?;
    if !grant.covers(visitor_id) {
        return Err(Error::denied(
            "outside_grant_scope",
            "this grant does not cover the visitor",
        ));
    }
    Ok(grant)
}

/// [`check_grant`] without the visitor: for reads that are not of one visitor (a lookup),
/// after which the caller filters the results with [`Grant::covers`].
pub fn check_grant_window(
    conn: &mut DbConnection,
    tenant_id: &str,
    grant_id: &str,
    principal: &Principal,
    now: NaiveDateTime,
) -> Result<Grant> {
    let now = micros(now);
    let Some(row) = find(conn, tenant_id, grant_id)? else {
        return Err(Error::denied(
            "grant_invalid",
            "no such access grant for this tenant",
        ));
    };
    if row.requester_id != principal.id {
        return Err(Error::denied(
            "grant_not_yours",
            "this grant was issued to another staff member",
        ));
    }
    match row.status()? {
        RequestStatus::Approved => {}
        RequestStatus::Revoked => {
            return Err(Error::denied("grant_revoked", "this grant was revoked"))
        }
        RequestStatus::Pending | RequestStatus::Denied => {
            return Err(Error::denied(
                "grant_not_approved",
                "this access request has not been approved",
            ))
        }
    }
    let (Some(starts_at), Some(ends_at)) = (row.grant_starts_at, row.grant_ends_at) else {
        return Err(Error::internal_msg(
            "approved access request without a window",
        ));
    };
    if now < starts_at {
        return Err(Error::denied(
            "grant_not_started",
            "this grant's window has not begun",
        ));
    }
    if now >= ends_at {
        return Err(Error::denied("grant_expired", "this grant has expired"));
    }
    let scope = row.scope();
    Ok(Grant {
        justification_code: JustificationCode::parse(&row.justification_code)
            .map_err(|_| Error::internal_msg("unknown justification code in database"))?,
        id: row.id,
        tenant_id: row.tenant_id,
        requester_id: row.requester_id,
        ticket: row.ticket,
        reason: row.reason,
        scope,
        break_glass: row.break_glass,
        starts_at,
        ends_at,
    })
}

/// One staff access to the tenant's data, as the tenant's Access Transparency view shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StaffAccessEntry {
    /// The audit event's position in the tenant's chain (the page cursor).
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub actor_id: String,
    pub actor_role: String,
    pub action: String,
    pub target_kind: String,
    pub target_id: Option<String>,
    /// Field NAMES read.
    pub fields: Vec<String>,
    pub outcome: String,
    pub justification_code: Option<String>,
    pub ticket: Option<String>,
    pub grant_id: String,
    pub approver_id: Option<String>,
    pub approver_role: Option<String>,
    pub break_glass: bool,
}

type LogColumns = (
    i64,
    NaiveDateTime,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
    String,
    Option<String>,
);

/// Every event in the tenant's chain made under a grant, in chain order after `after_seq`,
/// each with its grant's justification, ticket, approver and break-glass flag. The second
/// value is the cursor of the next page, `None` on the last.
pub fn staff_access_log(
    conn: &mut DbConnection,
    tenant_id: &str,
    after_seq: Option<i64>,
    limit: i64,
) -> Result<(Vec<StaffAccessEntry>, Option<i64>)> {
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Error::invalid(
            "invalid_limit",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ));
    }
    steward_audit::flush(conn)?;
    let mut q = audit_events::table
        .filter(audit_events::chain_id.eq(tenant_id))
        .filter(audit_events::grant_id.is_not_null())
        .select((
            audit_events::seq,
            audit_events::occurred_at,
            audit_events::actor_id,
            audit_events::actor_role,
            audit_events::action,
            audit_events::target_kind,
            audit_events::target_id,
            audit_events::fields,
            audit_events::justification,
            audit_events::grant_id,
            audit_events::outcome,
            audit_events::detail,
        ))
        .order(audit_events::seq.asc())
        .limit(limit + 1)
        .into_boxed();
    if let Some(after) = after_seq {
        q = q.filter(audit_events::seq.gt(after));
    }
    let mut rows: Vec<LogColumns> = q.load(conn)?;
    let max = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > max;
    rows.truncate(max);
    let next = if more { rows.last().map(|r| r.0) } else { None };

    let mut grant_ids: Vec<String> = rows.iter().filter_map(|r| r.9.clone()).collect();
    grant_ids.sort_unstable();
    grant_ids.dedup();
    let grants: HashMap<String, AccessRequestRow> = if grant_ids.is_empty() {
        HashMap::new()
    } else {
        access_requests::table
            .filter(access_requests::tenant_id.eq(tenant_id))
            .filter(access_requests::id.eq_any(&grant_ids))
            .select(AccessRequestRow::as_select())
            .load(conn)?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect()
    };

    let entries = rows
        .into_iter()
        .map(
            |(
                seq,
                at,
                actor_id,
                actor_role,
                action,
                target_kind,
                target_id,
                fields,
                justification,
                grant_id,
                outcome,
                detail,
            )| {
                let grant_id = grant_id.unwrap_or_default();
                let grant = grants.get(&grant_id);
                StaffAccessEntry {
                    seq,
                    at: utc(at),
                    actor_id,
                    actor_role,
                    action,
                    target_kind,
                    target_id,
                    fields: if fields.is_empty() {
                        Vec::new()
                    } else {
                        fields.split(',').map(str::to_string).collect()
                    },
                    outcome,
                    justification_code: grant
                        .map(|g| g.justification_code.clone())
                        .or(justification),
                    ticket: grant.map(|g| g.ticket.clone()).or(detail),
                    approver_id: grant.and_then(|g| g.decided_by.clone()),
                    approver_role: grant.and_then(|g| g.decided_role.clone()),
                    break_glass: grant.is_some_and(|g| g.break_glass),
                    grant_id,
                }
            },
        )
        .collect();
    Ok((entries, next))
}

/// Removes every access request of a tenant (offboarding).
pub fn delete_tenant(conn: &mut DbConnection, tenant_id: &str) -> Result<usize> {
    Ok(
        diesel::delete(access_requests::table.filter(access_requests::tenant_id.eq(tenant_id)))
            .execute(conn)?,
    )
}

/// Only the tenant decides its own requests: a principal of this tenant (its admin, as the
/// caller's permission check ensures). Another tenant's principal sees nothing; staff are
/// refused, so no one at the platform can approve their own access.
fn require_tenant_decider(p: &Principal, tenant_id: &str) -> Result<()> {
    match p.tenant_id.as_deref() {
        Some(t) if t == tenant_id => Ok(()),
        Some(_) => Err(Error::NotFound),
        None => Err(Error::denied(
            "tenant_decision_required",
            "only the tenant decides access requests; break-glass has its own approval",
        )),
    }
}

/// Pending and not past its answer-by time.
fn require_open(row: &AccessRequestRow, now: NaiveDateTime) -> Result<()> {
    if row.status()? != RequestStatus::Pending {
        return Err(not_pending());
    }
    if row.is_expired(now) {
        return Err(Error::conflict(
            "request_expired",
            "this access request was not answered within 48 hours and has expired",
        ));
    }
    Ok(())
}

fn not_pending() -> Error {
    Error::conflict(
        "request_not_pending",
        "this access request was already decided",
    )
}

fn not_approved() -> Error {
    Error::conflict(
        "request_not_approved",
        "only an approved grant can be revoked",
    )
}

fn grant_window(row: &AccessRequestRow, now: NaiveDateTime) -> (NaiveDateTime, NaiveDateTime) {
    (now, now + Duration::minutes(row.duration_minutes))
}

/// Moves a pending request to `status`, only if it is still pending; returns the new row.
fn decide(
    conn: &mut DbConnection,
    row: &AccessRequestRow,
    status: RequestStatus,
    by: &Principal,
    comment: Option<String>,
    window: Option<(NaiveDateTime, NaiveDateTime)>,
    now: NaiveDateTime,
) -> Result<AccessRequestRow> {
    let n = diesel::update(
        access_requests::table
            .filter(access_requests::tenant_id.eq(&row.tenant_id))
            .filter(access_requests::id.eq(&row.id))
            .filter(access_requests::status.eq(RequestStatus::Pending.as_str())),
    )
    .set((
        access_requests::status.eq(status.as_str()),
        access_requests::decided_by.eq(Some(by.id.as_str())),
        access_requests::decided_role.eq(Some(by.role_name())),
        access_requests::decided_at.eq(Some(now)),
        access_requests::decision_comment.eq(comment),
        access_requests::grant_starts_at.eq(window.map(|w| w.0)),
        access_requests::grant_ends_at.eq(window.map(|w| w.1)),
    ))
    .execute(conn)?;
    if n != 1 {
        return Err(not_pending());
    }
    get(conn, &row.tenant_id, &row.id)
}

/// The audit event of a step in a request's life: justification code and ticket, never the
/// free-text reason.
fn lifecycle_event(action: &str, actor: Actor, row: &AccessRequestRow) -> NewEvent {
    NewEvent::new(action, actor, Target::record(TARGET_KIND, row.id.clone()))
        .justification(row.justification_code.clone())
        .detail(row.ticket.clone())
}
