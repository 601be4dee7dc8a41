//! The vocabulary of staff access: why a staff member asks (justification codes), for what
//! (scope), the request as filed, the stored row, the request as the API shows it (with its
//! state computed at the time of asking), and the grant a read is checked against.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use steward_audit::NewEvent;
use steward_core::{Error, Id, Result};

use crate::schema::access_requests;

/// Minutes a grant lasts when the request names no duration.
pub const DEFAULT_DURATION_MINUTES: i64 = 240;
/// The longest grant anyone may ask for: 24 hours.
pub const MAX_DURATION_MINUTES: i64 = 1440;
/// A request not answered within this many hours expires.
pub const RESPOND_WITHIN_HOURS: i64 = 48;
/// Most visitors one request may name; more than that is a request for the whole tenant.
pub const MAX_SCOPE_VISITORS: usize = 100;
pub const MAX_TICKET_LEN: usize = 64;
pub const MAX_REASON_LEN: usize = 1000;
pub const MAX_COMMENT_LEN: usize = 1000;

/// Why a staff member needs the access. A closed list, so the tenant can read (and filter)
/// the reason without parsing prose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JustificationCode {
    /// The tenant (or its customer) asked for help.
    CustomerInitiatedSupport,
    /// The platform needs to fix something in the tenant's data.
    PlatformInitiatedService,
    SecurityInvestigation,
    LegalObligation,
}

impl JustificationCode {
    pub const ALL: [JustificationCode; 4] = [
        JustificationCode::CustomerInitiatedSupport,
        JustificationCode::PlatformInitiatedService,
        JustificationCode::SecurityInvestigation,
        JustificationCode::LegalObligation,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            JustificationCode::CustomerInitiatedSupport => "customer_initiated_support",
            JustificationCode::PlatformInitiatedService => "platform_initiated_service",
            JustificationCode::SecurityInvestigation => "security_investigation",
            JustificationCode::LegalObligation => "legal_obligation",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                Error::invalid(
                    "invalid_justification",
                    "justification must be one of customer_initiated_support, \
                     platform_initiated_service, security_investigation, legal_obligation",
                )
            })
    }

    /// Only an investigation or a legal obligation can justify access the tenant did not
    /// approve (and may not be told about in advance).
    pub const fn allows_break_glass(self) -> bool {
        matches!(
            self,
            JustificationCode::SecurityInvestigation | JustificationCode::LegalObligation
        )
    }
}

/// Which of the tenant's visitors a grant covers. In JSON: `{"all": true}` or
/// `{"visitor_ids": ["vis_…", …]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ScopeBody", into = "ScopeBody")]
pub enum Scope {
    All,
    Visitors(Vec<String>),
}

/// The wire shape of [`Scope`]: exactly one of the two keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScopeBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    all: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    visitor_ids: Option<Vec<String>>,
}

impl TryFrom<ScopeBody> for Scope {
    type Error = &'static str;

    fn try_from(b: ScopeBody) -> std::result::Result<Self, Self::Error> {
        match (b.all, b.visitor_ids) {
            (Some(true), None) => Ok(Scope::All),
            (None, Some(ids)) => Ok(Scope::Visitors(ids)),
            _ => Err(r#"scope must be {"all": true} or {"visitor_ids": [...]}"#),
        }
    }
}

impl From<Scope> for ScopeBody {
    fn from(s: Scope) -> Self {
        match s {
            Scope::All => ScopeBody {
                all: Some(true),
                visitor_ids: None,
            },
            Scope::Visitors(ids) => ScopeBody {
                all: None,
                visitor_ids: Some(ids),
            },
        }
    }
}

impl Scope {
    /// Checks the listed ids (1 to [`MAX_SCOPE_VISITORS`], each a visitor id) and returns them
    /// sorted and deduplicated.
    pub fn validate(self) -> Result<Scope> {
        match self {
            Scope::All => Ok(Scope::All),
            Scope::Visitors(mut ids) => {
                if ids.is_empty() || ids.len() > MAX_SCOPE_VISITORS {
                    return Err(Error::invalid(
                        "invalid_scope",
                        format!("scope must list 1 to {MAX_SCOPE_VISITORS} visitor ids, or be {{\"all\": true}}"),
                    ));
                }
                if let Some(i) = ids.iter().position(|v| !Id::Visitor.matches(v)) {
                    return Err(Error::invalid(
                        "invalid_scope",
                        format!("scope.visitor_ids[{i}] is not a visitor id"),
                    ));
                }
                ids.sort_unstable();
                ids.dedup();
                Ok(Scope::Visitors(ids))
            }
        }
    }

    pub fn covers(&self, visitor_id: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Visitors(ids) => ids.binary_search_by(|v| v.as_str().cmp(visitor_id)).is_ok(),
        }
    }

    /// The stored form: (`scope_all`, `scope_visitor_ids`).
    pub(crate) fn to_columns(&self) -> (bool, String) {
        match self {
            Scope::All => (true, String::new()),
            Scope::Visitors(ids) => (false, ids.join(",")),
        }
    }

    pub(crate) fn from_columns(all: bool, ids: &str) -> Scope {
        if all {
            Scope::All
        } else {
            let mut ids: Vec<String> = ids
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            ids.sort_unstable();
            Scope::Visitors(ids)
        }
    }

    fn describe(&self) -> String {
        match self {
            Scope::All => "all visitors".to_string(),
            Scope::Visitors(ids) if ids.len() == 1 => "1 visitor".to_string(),
            Scope::Visitors(ids) => format!("{} visitors", ids.len()),
        }
    }
}

/// The body of `POST /v1/tenants/{tid}/access-requests`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAccessRequest {
    /// A [`JustificationCode`] name.
    pub justification: String,
    /// The support ticket or case this access serves (`SUP-1234`).
    pub ticket: String,
    /// Free text for the tenant's admin. Staff must not paste visitor data here.
    pub reason: String,
    pub scope: Scope,
    /// 1 to 1440; 240 when absent.
    #[serde(default)]
    pub duration_minutes: Option<i64>,
    /// Ask for break-glass activation (a second staff member approves instead of the tenant).
    #[serde(default)]
    pub break_glass: Option<bool>,
}

/// A [`NewAccessRequest`] whose every field was checked.
#[derive(Debug, Clone)]
pub(crate) struct ValidRequest {
    pub justification: JustificationCode,
    pub ticket: String,
    pub reason: String,
    pub scope: Scope,
    pub duration_minutes: i64,
    pub break_glass: bool,
}

impl NewAccessRequest {
    /// Checks every field; the errors name the field, never echo the value.
    pub(crate) fn validate(self) -> Result<ValidRequest> {
        let justification = JustificationCode::parse(self.justification.trim())?;
        let ticket = validate_ticket(&self.ticket)?;
        let reason = validate_text(&self.reason, MAX_REASON_LEN).ok_or_else(|| {
            Error::invalid(
                "invalid_reason",
                format!("reason must be 1 to {MAX_REASON_LEN} characters without control characters other than newlines"),
            )
        })?;
        let scope = self.scope.validate()?;
        let duration_minutes = match self.duration_minutes {
            None => DEFAULT_DURATION_MINUTES,
            Some(d) if (1..=MAX_DURATION_MINUTES).contains(&d) => d,
            Some(_) => {
                return Err(Error::invalid(
                    "invalid_duration",
                    format!("duration_minutes must be between 1 and {MAX_DURATION_MINUTES}"),
                ))
            }
        };
        Ok(ValidRequest {
            justification,
            ticket,
            reason,
            scope,
            duration_minutes,
            break_glass: self.break_glass.unwrap_or(false),
        })
    }
}

fn validate_ticket(t: &str) -> Result<String> {
    let t = t.trim();
    let ok = (1..=MAX_TICKET_LEN).contains(&t.len())
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_#.:/".contains(&b));
    if ok {
        Ok(t.to_string())
    } else {
        Err(Error::invalid(
            "invalid_ticket",
            format!("ticket must be 1 to {MAX_TICKET_LEN} characters of letters, digits and - _ # . : /"),
        ))
    }
}

/// Trimmed text of 1 to `max` characters with no control characters except newlines; `None`
/// when it is not that.
pub(crate) fn validate_text(s: &str, max: usize) -> Option<String> {
    let s = s.trim();
    let ok = !s.is_empty()
        && s.chars().count() <= max
        && !s.chars().any(|c| c.is_control() && c != '\n');
    ok.then(|| s.to_string())
}

/// A decision comment: absent or blank is none; otherwise like a reason.
pub(crate) fn validate_comment(c: Option<String>) -> Result<Option<String>> {
    match c {
        None => Ok(None),
        Some(c) if c.trim().is_empty() => Ok(None),
        Some(c) => validate_text(&c, MAX_COMMENT_LEN).map(Some).ok_or_else(|| {
            Error::invalid(
                "invalid_comment",
                format!("comment must be at most {MAX_COMMENT_LEN} characters without control characters other than newlines"),
            )
        }),
    }
}

/// What is stored: the decision so far. Expiry is not stored; it follows from the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Pending,
    Approved,
    Denied,
    Revoked,
}

impl RequestStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Approved => "approved",
            RequestStatus::Denied => "denied",
            RequestStatus::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "pending" => Ok(RequestStatus::Pending),
            "approved" => Ok(RequestStatus::Approved),
            "denied" => Ok(RequestStatus::Denied),
            "revoked" => Ok(RequestStatus::Revoked),
            _ => Err(Error::internal_msg(
                "unknown access request status in database",
            )),
        }
    }
}

/// Where a request stands at a given moment: its status plus the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    /// Waiting for a decision.
    Pending,
    /// Not answered within 48 hours; can no longer be approved.
    Expired,
    Denied,
    /// Approved, but its window has not begun (only with a clock that moved backwards).
    Approved,
    /// Approved and inside its window: reads are allowed.
    Active,
    /// Approved and past its window.
    Ended,
    Revoked,
}

impl RequestState {
    pub const fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "pending",
            RequestState::Expired => "expired",
            RequestState::Denied => "denied",
            RequestState::Approved => "approved",
            RequestState::Active => "active",
            RequestState::Ended => "ended",
            RequestState::Revoked => "revoked",
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = access_requests)]
#[diesel(treat_none_as_default_value = false)]
pub struct AccessRequestRow {
    pub tenant_id: String,
    pub id: String,
    pub requester_id: String,
    pub requester_role: String,
    pub justification_code: String,
    pub ticket: String,
    pub reason: String,
    pub scope_all: bool,
    pub scope_visitor_ids: String,
    pub duration_minutes: i64,
    pub break_glass: bool,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub respond_by: NaiveDateTime,
    pub decided_by: Option<String>,
    pub decided_role: Option<String>,
    pub decided_at: Option<NaiveDateTime>,
    pub decision_comment: Option<String>,
    pub grant_starts_at: Option<NaiveDateTime>,
    pub grant_ends_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    pub revoked_by: Option<String>,
}

impl AccessRequestRow {
    pub fn status(&self) -> Result<RequestStatus> {
        RequestStatus::parse(&self.status)
    }

    pub fn scope(&self) -> Scope {
        Scope::from_columns(self.scope_all, &self.scope_visitor_ids)
    }

    /// Pending and past its answer-by time.
    pub fn is_expired(&self, now: NaiveDateTime) -> bool {
        self.status == RequestStatus::Pending.as_str() && now > self.respond_by
    }

    pub fn state(&self, now: NaiveDateTime) -> Result<RequestState> {
        Ok(match self.status()? {
            RequestStatus::Pending if now > self.respond_by => RequestState::Expired,
            RequestStatus::Pending => RequestState::Pending,
            RequestStatus::Denied => RequestState::Denied,
            RequestStatus::Revoked => RequestState::Revoked,
            RequestStatus::Approved => match (self.grant_starts_at, self.grant_ends_at) {
                (Some(_), Some(end)) if now >= end => RequestState::Ended,
                (Some(start), Some(_)) if now >= start => RequestState::Active,
                _ => RequestState::Approved,
            },
        })
    }

    /// One line for the tenant's notices: ids and codes only.
    pub(crate) fn describe(&self) -> String {
        format!(
            "({}, ticket {}) to {} for {} minutes",
            self.justification_code,
            self.ticket,
            self.scope().describe(),
            self.duration_minutes
        )
    }
}

/// Who decided: the tenant admin who approved or denied, or the second staff member of a
/// break-glass activation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approver {
    pub id: String,
    pub role: String,
}

/// An access request as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AccessRequest {
    pub id: String,
    pub tenant_id: String,
    pub requester_id: String,
    pub requester_role: String,
    pub justification_code: String,
    pub ticket: String,
    pub reason: String,
    pub scope: Scope,
    pub duration_minutes: i64,
    pub break_glass: bool,
    /// What is stored: `pending`, `approved`, `denied` or `revoked`.
    pub status: RequestStatus,
    /// What it means now: `pending`, `expired`, `denied`, `active`, `ended`, `revoked`.
    pub state: RequestState,
    pub created_at: DateTime<Utc>,
    pub respond_by: DateTime<Utc>,
    pub decided_by: Option<String>,
    pub decided_role: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_comment: Option<String>,
    pub approver: Option<Approver>,
    pub grant_starts_at: Option<DateTime<Utc>>,
    pub grant_ends_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
}

pub(crate) fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(t, Utc)
}

impl AccessRequest {
    /// The API view of `row` at time `now` (which decides `state`).
    pub fn from_row(row: AccessRequestRow, now: NaiveDateTime) -> Result<Self> {
        let status = row.status()?;
        let state = row.state(now)?;
        let scope = row.scope();
        let approver = match (&row.decided_by, &row.decided_role) {
            (Some(id), Some(role)) => Some(Approver {
                id: id.clone(),
                role: role.clone(),
            }),
            _ => None,
        };
        Ok(AccessRequest {
            id: row.id,
            tenant_id: row.tenant_id,
            requester_id: row.requester_id,
            requester_role: row.requester_role,
            justification_code: row.justification_code,
            ticket: row.ticket,
            reason: row.reason,
            scope,
            duration_minutes: row.duration_minutes,
            break_glass: row.break_glass,
            status,
            state,
            created_at: utc(row.created_at),
            respond_by: utc(row.respond_by),
            decided_by: row.decided_by,
            decided_role: row.decided_role,
            decided_at: row.decided_at.map(utc),
            decision_comment: row.decision_comment,
            approver,
            grant_starts_at: row.grant_starts_at.map(utc),
            grant_ends_at: row.grant_ends_at.map(utc),
            revoked_at: row.revoked_at.map(utc),
            revoked_by: row.revoked_by,
        })
    }
}

/// An approved, unrevoked grant inside its window, as checked for one read. Record the read
/// with [`Grant::audit`] so the tenant's chain names the grant, the justification and the
/// ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub tenant_id: String,
    pub requester_id: String,
    pub justification_code: JustificationCode,
    pub ticket: String,
    pub reason: String,
    pub scope: Scope,
    pub break_glass: bool,
    pub starts_at: NaiveDateTime,
    pub ends_at: NaiveDateTime,
}

impl Grant {
    pub fn covers(&self, visitor_id: &str) -> bool {
        self.scope.covers(visitor_id)
    }

    /// Adds the grant id, the justification code and the ticket to an audit event.
    pub fn audit(&self, event: NewEvent) -> NewEvent {
        event
            .grant(self.id.clone())
            .justification(self.justification_code.as_str())
            .detail(self.ticket.clone())
    }

    /// Time left in the window at `now` (zero once it ended).
    pub fn remaining(&self, now: NaiveDateTime) -> Duration {
        (self.ends_at - now).max(Duration::zero())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn justification_codes_round_trip() {
        for c in JustificationCode::ALL {
            assert_eq!(JustificationCode::parse(c.as_str()).unwrap(), c);
        }
        assert!(JustificationCode::parse("curiosity").is_err());
        assert!(JustificationCode::SecurityInvestigation.allows_break_glass());
        assert!(JustificationCode::LegalObligation.allows_break_glass());
        assert!(!JustificationCode::CustomerInitiatedSupport.allows_break_glass());
        assert!(!JustificationCode::PlatformInitiatedService.allows_break_glass());
    }

    #[test]
    fn scope_json_shapes() {
        let all: Scope = serde_json::from_str(r#"{"all": true}"#).unwrap();
        assert_eq!(all, Scope::All);
        let v = Id::Visitor.generate();
        let some: Scope =
            serde_json::from_value(serde_json::json!({ "visitor_ids": [v.clone()] })).unwrap();
        assert_eq!(some, Scope::Visitors(vec![v.clone()]));
        assert_eq!(
            serde_json::to_value(&some).unwrap(),
            serde_json::json!({ "visitor_ids": [v] })
        );
        assert_eq!(
            serde_json::to_value(Scope::All).unwrap(),
            serde_json::json!({ "all": true })
        );
        for bad in [
            r#"{}"#,
            r#"{"all": false}"#,
            r#"{"all": true, "visitor_ids": []}"#,
            r#"{"tenant": true}"#,
        ] {
            assert!(serde_json::from_str::<Scope>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scope_validation_sorts_dedups_and_bounds() {
        let (a, b) = {
            let (x, y) = (Id::Visitor.generate(), Id::Visitor.generate());
            (x.clone().min(y.clone()), x.max(y))
        };
        let s = Scope::Visitors(vec![b.clone(), a.clone(), b.clone()])
            .validate()
            .unwrap();
        assert_eq!(s, Scope::Visitors(vec![a.clone(), b.clone()]));
        assert!(s.covers(&a) && s.covers(&b));
        assert!(!s.covers(&Id::Visitor.generate()));
        assert!(Scope::Visitors(vec![]).validate().is_err());
        assert!(Scope::Visitors(vec!["alice@example.com".into()])
            .validate()
            .is_err());
        let many = (0..=MAX_SCOPE_VISITORS)
            .map(|_| Id::Visitor.generate())
            .collect();
        assert!(Scope::Visitors(many).validate().is_err());
        let (all, ids) = s.to_columns();
        assert_eq!(Scope::from_columns(all, &ids), s);
        assert_eq!(Scope::from_columns(true, ""), Scope::All);
    }

    #[test]
    fn request_body_rejects_unknown_fields() {
        let body = serde_json::json!({
            "justification": "customer_initiated_support",
            "ticket": "T-1",
            "reason": "fix an address",
            "scope": {"all": true},
            "role": "platform_admin"
        });
        assert!(serde_json::from_value::<NewAccessRequest>(body).is_err());
    }

    #[test]
    fn text_checks() {
        assert!(validate_ticket("SUP-1234").is_ok());
        assert!(validate_ticket("jira:ABC/12#3").is_ok());
        assert!(validate_ticket("").is_err());
        assert!(validate_ticket("has space").is_err());
        assert!(validate_ticket(&"x".repeat(65)).is_err());
        assert_eq!(validate_text(" a\nb ", 10).as_deref(), Some("a\nb"));
        assert!(validate_text("a\tb", 10).is_none());
        assert!(validate_text("   ", 10).is_none());
        assert!(validate_text(&"é".repeat(11), 10).is_none());
        assert_eq!(validate_comment(Some("  ".into())).unwrap(), None);
        assert!(validate_comment(Some("a\u{7}".into())).is_err());
    }
}
