//! Staff access to tenant data (DESIGN.md "Actors and roles", invariant 1).
//!
//! Platform staff hold no standing permission to read visitor PII: the permission matrix gives
//! them none, so the only way in is a grant the tenant can see. That makes "staff access
//! limited to a business purpose" something a tenant can check rather than trust:
//!
//! * A staff member files an [access request](requests::create) with a closed-list
//!   [justification](JustificationCode), a ticket, a reason, a [scope](Scope) and a short
//!   duration; the tenant gets a [notice](notices) in the same transaction.
//! * The tenant's admin [approves](requests::approve) or [denies](requests::deny); an
//!   unanswered request expires after 48 hours. The tenant can [revoke](requests::revoke) a
//!   grant at any moment, effective for the very next read.
//! * Break-glass (investigations, legal obligations) replaces the tenant's approval with a
//!   second, different staff member's ([two-person rule](requests::approve_break_glass)); the
//!   tenant is told at once, flagged, because it could not say no in advance.
//! * Every read goes through [`check_grant`](requests::check_grant) first and is recorded in
//!   the tenant's hash-chained audit log with the grant id; the
//!   [Access Transparency log](requests::staff_access_log) is built from those records — not
//!   from a table staff code could forget to write — so what the tenant sees is what happened.
//!
//! Grants only ever allow reads: nothing here hands out a write. Expiry is computed from the
//! clock at each check rather than by a background job, so a grant cannot outlive its window
//! because a job was late.

pub mod model;
pub mod notices;
pub mod requests;
pub mod schema;

pub use model::{
    AccessRequest, AccessRequestRow, Approver, Grant, JustificationCode, NewAccessRequest,
    RequestState, RequestStatus, Scope,
};
pub use notices::{Notice, NoticeRow};
pub use requests::StaffAccessEntry;
