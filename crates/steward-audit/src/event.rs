//! What an audit event says: the input to `append` ([`NewEvent`]) and the stored row as the API
//! shows it ([`AuditEvent`]).
//!
//! An event records who did what to which record, which fields they touched, why, and how it
//! ended — never the values. The attributes are exactly: action, actor (kind, id, role), target
//! (kind, id), field NAMES, purpose, justification, grant id, request id, outcome and a short
//! detail. All of them except `justification` and `detail` must be tokens (ids, names, codes:
//! ASCII letters, digits and `_ . : -`), which rejects anything shaped like an e-mail address,
//! a phone number with spaces or a street address. `justification` is the free-text reason a
//! staff member typed; `detail` is a short note such as a count or a ticket reference. Neither
//! may ever hold a visitor's data: callers pass counts and references, not content.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use steward_core::{Error, Principal, Result};
use steward_store::DbTimestamp;

use crate::canonical::{self, EventFields};
use crate::encoding;
use crate::schema::audit_events;

/// Longest id, name or code accepted in a token attribute.
pub const MAX_TOKEN_LEN: usize = 128;
/// Longest justification accepted (characters).
pub const MAX_JUSTIFICATION_LEN: usize = 1000;
/// Longest detail accepted (characters).
pub const MAX_DETAIL_LEN: usize = 200;
/// Most field names one event may list.
pub const MAX_FIELDS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    /// Refused by a permission, grant or policy check.
    Denied,
    /// Allowed but failed (e.g. the tenant's keys are destroyed).
    Failure,
}

impl Outcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Failure => "failure",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "success" => Ok(Outcome::Success),
            "denied" => Ok(Outcome::Denied),
            "failure" => Ok(Outcome::Failure),
            _ => Err(Error::internal_msg("unknown audit outcome in database")),
        }
    }
}

/// Who acted: `kind` is `user`, `api_key`, `subprocessor` or `system`; `role` the role name
/// (or the kind, for principals without a role).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub kind: String,
    pub id: String,
    pub role: String,
}

impl Actor {
    pub fn new(kind: impl Into<String>, id: impl Into<String>, role: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            id: id.into(),
            role: role.into(),
        }
    }

    pub fn from_principal(p: &Principal) -> Self {
        Self::new(p.kind.as_str(), p.id.clone(), p.role_name())
    }

    /// Steward itself (a background job, start-up, the CLI); `id` names which part.
    pub fn system(id: impl Into<String>) -> Self {
        Self::new("system", id, "system")
    }
}

/// What was acted on: `kind` such as `visitor`, `tenant`, `access_request`; `id` when the
/// action concerns one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub kind: String,
    pub id: Option<String>,
}

impl Target {
    pub fn new(kind: impl Into<String>, id: Option<String>) -> Self {
        Self {
            kind: kind.into(),
            id,
        }
    }

    /// One record.
    pub fn record(kind: impl Into<String>, id: impl Into<String>) -> Self {
        Self::new(kind, Some(id.into()))
    }

    /// A kind of thing rather than one record (a search, a list).
    pub fn kind(kind: impl Into<String>) -> Self {
        Self::new(kind, None)
    }
}

/// An event to append. Build it with [`NewEvent::new`] and the setters; `append` validates it.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub(crate) action: String,
    pub(crate) actor: Actor,
    pub(crate) target: Target,
    /// Sorted and deduplicated at all times.
    pub(crate) fields: Vec<String>,
    pub(crate) purpose: Option<String>,
    pub(crate) justification: Option<String>,
    pub(crate) grant_id: Option<String>,
    pub(crate) request_id: Option<String>,
    pub(crate) outcome: Outcome,
    pub(crate) detail: Option<String>,
}

impl NewEvent {
    /// An event with outcome `success`, no fields and nothing optional set.
    pub fn new(action: impl Into<String>, actor: Actor, target: Target) -> Self {
        Self {
            action: action.into(),
            actor,
            target,
            fields: Vec::new(),
            purpose: None,
            justification: None,
            grant_id: None,
            request_id: None,
            outcome: Outcome::Success,
            detail: None,
        }
    }

    /// The NAMES of the fields read or changed (`email`, `address.city`). Order and repeats do
    /// not matter; calling it again adds to the set.
    pub fn fields<S: AsRef<str>>(mut self, names: &[S]) -> Self {
        self.fields
            .extend(names.iter().map(|n| n.as_ref().to_string()));
        self.fields.sort_unstable();
        self.fields.dedup();
        self
    }

    /// The processing purpose the access was made under (`support`, `fulfilment`).
    pub fn purpose(mut self, purpose: impl Into<String>) -> Self {
        self.purpose = Some(purpose.into());
        self
    }

    /// Why a staff member needed the access. Free text, but never a visitor's data.
    pub fn justification(mut self, justification: impl Into<String>) -> Self {
        self.justification = Some(justification.into());
        self
    }

    /// The access grant (`acr_…`) that allowed it.
    pub fn grant(mut self, grant_id: impl Into<String>) -> Self {
        self.grant_id = Some(grant_id.into());
        self
    }

    pub fn request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// A short non-PII note: a count, a ticket reference, an error code. Never a value.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn action_name(&self) -> &str {
        &self.action
    }

    pub fn field_names(&self) -> &[String] {
        &self.fields
    }

    /// Rejects what cannot be an id, name or code, so a value put in the wrong place fails
    /// loudly instead of being written to the log forever. The error names the attribute,
    /// never its content.
    pub(crate) fn validate(&self) -> Result<()> {
        token("action", &self.action)?;
        token("actor.kind", &self.actor.kind)?;
        token("actor.id", &self.actor.id)?;
        token("actor.role", &self.actor.role)?;
        token("target.kind", &self.target.kind)?;
        opt_token("target.id", self.target.id.as_deref())?;
        if self.fields.len() > MAX_FIELDS {
            return Err(invalid("fields"));
        }
        for f in &self.fields {
            token("fields", f)?;
        }
        opt_token("purpose", self.purpose.as_deref())?;
        opt_token("grant_id", self.grant_id.as_deref())?;
        opt_token("request_id", self.request_id.as_deref())?;
        opt_text(
            "justification",
            self.justification.as_deref(),
            MAX_JUSTIFICATION_LEN,
        )?;
        opt_text("detail", self.detail.as_deref(), MAX_DETAIL_LEN)?;
        Ok(())
    }

    /// The stored form of the field names.
    pub(crate) fn fields_joined(&self) -> String {
        self.fields.join(",")
    }
}

fn invalid(attribute: &'static str) -> Error {
    Error::invalid(
        "invalid_audit_event",
        format!("audit event attribute `{attribute}` is not acceptable"),
    )
}

fn is_token(s: &str) -> bool {
    (1..=MAX_TOKEN_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

fn token(attribute: &'static str, s: &str) -> Result<()> {
    if is_token(s) {
        Ok(())
    } else {
        Err(invalid(attribute))
    }
}

fn opt_token(attribute: &'static str, s: Option<&str>) -> Result<()> {
    s.map_or(Ok(()), |s| token(attribute, s))
}

fn opt_text(attribute: &'static str, s: Option<&str>, max_chars: usize) -> Result<()> {
    match s {
        Some(s) if s.trim().is_empty() || s.chars().count() > max_chars => Err(invalid(attribute)),
        Some(s) if s.chars().any(char::is_control) => Err(invalid(attribute)),
        _ => Ok(()),
    }
}

/// The stored row, exactly as in the table.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events)]
// An absent purpose is NULL, not a column default; and multi-row inserts on SQLite cannot
// carry DEFAULT.
#[diesel(treat_none_as_default_value = false)]
pub(crate) struct EventRow {
    pub chain_id: String,
    pub seq: i64,
    pub id: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
    // `DbTimestamp` for the fast SQLite text codec: one per event written or read.
    pub occurred_at: DbTimestamp,
    pub actor_kind: String,
    pub actor_id: String,
    pub actor_role: String,
    pub action: String,
    pub target_kind: String,
    pub target_id: Option<String>,
    pub fields: String,
    pub purpose: Option<String>,
    pub justification: Option<String>,
    pub grant_id: Option<String>,
    pub request_id: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
}

impl EventRow {
    pub(crate) fn canonical_fields(&self) -> EventFields<'_> {
        EventFields {
            chain_id: &self.chain_id,
            seq: self.seq,
            id: &self.id,
            occurred_at: self.occurred_at.0,
            actor_kind: &self.actor_kind,
            actor_id: &self.actor_id,
            actor_role: &self.actor_role,
            action: &self.action,
            target_kind: &self.target_kind,
            target_id: self.target_id.as_deref(),
            fields: &self.fields,
            purpose: self.purpose.as_deref(),
            justification: self.justification.as_deref(),
            grant_id: self.grant_id.as_deref(),
            request_id: self.request_id.as_deref(),
            outcome: &self.outcome,
            detail: self.detail.as_deref(),
        }
    }

    /// The row for `event` before it has a place in a chain (seq 0, no hashes), with the
    /// encoding of its attributes after `seq` ([`canonical::encode_tail`]) for [`Self::chain`].
    pub(crate) fn unchained(
        chain_id: &str,
        event: NewEvent,
        occurred_at: NaiveDateTime,
    ) -> (Self, Vec<u8>) {
        let fields = event.fields_joined();
        let row = EventRow {
            chain_id: chain_id.to_string(),
            seq: 0,
            id: steward_core::Id::Event.generate(),
            prev_hash: Vec::new(),
            hash: Vec::new(),
            occurred_at: occurred_at.into(),
            actor_kind: event.actor.kind,
            actor_id: event.actor.id,
            actor_role: event.actor.role,
            action: event.action,
            target_kind: event.target.kind,
            target_id: event.target.id,
            fields,
            purpose: event.purpose,
            justification: event.justification,
            grant_id: event.grant_id,
            request_id: event.request_id,
            outcome: event.outcome.as_str().to_string(),
            detail: event.detail,
        };
        let mut tail = Vec::with_capacity(256);
        canonical::encode_tail(&row.canonical_fields().raw(), &mut tail);
        (row, tail)
    }

    /// Places the row at `seq` after `prev_hash` and computes its hash; `prefix` is the
    /// chain's [`canonical::encode_prefix`] and `tail` what [`Self::unchained`] returned.
    pub(crate) fn chain(&mut self, seq: i64, prev_hash: &[u8], prefix: &[u8], tail: &[u8]) {
        self.seq = seq;
        self.prev_hash = prev_hash.to_vec();
        self.hash = canonical::chained_hash(prev_hash, prefix, seq, tail).to_vec();
    }

    /// Builds the row for `event` at position `seq` after `prev_hash`, computing its hash.
    #[cfg(test)]
    pub(crate) fn build(
        chain_id: &str,
        seq: i64,
        prev_hash: &[u8],
        event: NewEvent,
        occurred_at: NaiveDateTime,
    ) -> Self {
        let (mut row, tail) = Self::unchained(chain_id, event, occurred_at);
        let mut prefix = Vec::new();
        canonical::encode_prefix(chain_id.as_bytes(), &mut prefix);
        row.chain(seq, prev_hash, &prefix, &tail);
        row
    }
}

/// A stored event as the API returns it: field names as a list, hashes in hex, the time in
/// RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    pub chain_id: String,
    pub seq: i64,
    pub id: String,
    #[serde(serialize_with = "encoding::ser_timestamp")]
    pub occurred_at: NaiveDateTime,
    pub actor: Actor,
    pub action: String,
    pub target: Target,
    pub fields: Vec<String>,
    pub purpose: Option<String>,
    pub justification: Option<String>,
    pub grant_id: Option<String>,
    pub request_id: Option<String>,
    pub outcome: Outcome,
    pub detail: Option<String>,
    #[serde(serialize_with = "encoding::ser_hex")]
    pub prev_hash: Vec<u8>,
    #[serde(serialize_with = "encoding::ser_hex")]
    pub hash: Vec<u8>,
}

impl TryFrom<EventRow> for AuditEvent {
    type Error = Error;

    fn try_from(r: EventRow) -> Result<Self> {
        let fields = if r.fields.is_empty() {
            Vec::new()
        } else {
            r.fields.split(',').map(str::to_string).collect()
        };
        Ok(AuditEvent {
            outcome: Outcome::parse(&r.outcome)?,
            chain_id: r.chain_id,
            seq: r.seq,
            id: r.id,
            occurred_at: r.occurred_at.0,
            actor: Actor {
                kind: r.actor_kind,
                id: r.actor_id,
                role: r.actor_role,
            },
            action: r.action,
            target: Target {
                kind: r.target_kind,
                id: r.target_id,
            },
            fields,
            purpose: r.purpose,
            justification: r.justification,
            grant_id: r.grant_id,
            request_id: r.request_id,
            detail: r.detail,
            prev_hash: r.prev_hash,
            hash: r.hash,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn event() -> NewEvent {
        NewEvent::new(
            "visitor.read",
            Actor::new("user", "usr_01", "tenant_admin"),
            Target::record("visitor", "vis_01"),
        )
    }

    /// The complete list of what an event can carry. Destructuring without `..` makes adding
    /// an attribute a compile error here: whoever adds one must decide, in review, that it
    /// cannot hold a visitor's value, and document it at the top of this module.
    #[test]
    fn new_event_holds_only_the_documented_attributes() {
        let NewEvent {
            action: _,        // token: a code such as visitor.read
            actor: _,         // tokens: kind, id, role
            target: _,        // tokens: kind, optional id
            fields: _,        // tokens: field NAMES
            purpose: _,       // token
            justification: _, // staff's free-text reason, never visitor data
            grant_id: _,      // token
            request_id: _,    // token
            outcome: _,       // enum
            detail: _,        // short non-PII note
        } = event();
        let Actor {
            kind: _,
            id: _,
            role: _,
        } = Actor::system("x");
        let Target { kind: _, id: _ } = Target::kind("x");
    }

    #[test]
    fn fields_are_sorted_and_deduplicated() {
        let e = event()
            .fields(&["phone", "email", "name"])
            .fields(&["email".to_string(), "address.city".to_string()]);
        assert_eq!(e.field_names(), ["address.city", "email", "name", "phone"]);
        assert_eq!(e.fields_joined(), "address.city,email,name,phone");
        assert_eq!(event().fields_joined(), "");
    }

    #[test]
    fn values_in_token_attributes_are_rejected() {
        assert!(event().validate().is_ok());
        let bad = [
            event().fields(&["alice@example.com"]),
            event().fields(&["a,b"]),
            event().purpose("call me at +1 555 0100"),
            event().request_id(""),
            NewEvent::new(
                "visitor.read",
                Actor::new("user", "alice@example.com", "tenant_admin"),
                Target::kind("visitor"),
            ),
            NewEvent::new(
                "visitor.read",
                Actor::system("job"),
                Target::record("visitor", "12 Main Street"),
            ),
            event().detail("x".repeat(MAX_DETAIL_LEN + 1)),
            event().detail("line\nbreak"),
            event().justification("   "),
        ];
        for e in bad {
            let err = e.validate().expect_err("must be rejected");
            let shown = err.to_string();
            assert!(!shown.contains("alice"), "error must not echo the value");
            assert!(!shown.contains("Main"), "error must not echo the value");
        }
        assert!(event()
            .justification("Customer asked us to fix their address, ticket SUP-1234")
            .detail("3 visitors")
            .validate()
            .is_ok());
    }

    #[test]
    fn api_form_lists_fields_and_hex_hashes() {
        let t = chrono::DateTime::from_timestamp(1_800_000_000, 123_456_000)
            .unwrap()
            .naive_utc();
        let row = EventRow::build(
            "ten_01",
            1,
            &canonical::GENESIS_HASH,
            event().fields(&["name", "email"]),
            t,
        );
        // The hash from the prepared parts is the canonical one (what verify recomputes).
        assert_eq!(
            row.hash,
            canonical::event_hash(
                &canonical::GENESIS_HASH,
                &row.canonical_fields(),
                &mut Vec::new()
            )
        );
        let e = AuditEvent::try_from(row).unwrap();
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["fields"], serde_json::json!(["email", "name"]));
        assert_eq!(v["prev_hash"], "0".repeat(64));
        assert_eq!(v["hash"].as_str().unwrap().len(), 64);
        assert_eq!(v["occurred_at"], "2027-01-15T08:00:00.123456Z");
        assert_eq!(v["outcome"], "success");
        assert_eq!(v["actor"]["role"], "tenant_admin");
    }
}
