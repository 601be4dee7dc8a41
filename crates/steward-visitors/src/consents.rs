//! Consent per visitor and purpose, append-only: a withdrawal is a new row, never an update,
//! so the history can be shown to the visitor and the current state is always the newest row.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use steward_core::{Error, Result};
use steward_store::DbConnection;

use crate::schema::consents;

/// Purposes every tenant has; tenants may use their own names too.
pub const WELL_KNOWN_PURPOSES: [&str; 3] =
    ["marketing_email", "testimonial_publication", "analytics"];

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = consents)]
pub struct ConsentRow {
    pub tenant_id: String,
    pub visitor_id: String,
    pub purpose: String,
    pub seq: i64,
    pub status: String,
    pub source: String,
    pub recorded_by: String,
    pub recorded_at: NaiveDateTime,
}

#[derive(Debug, Clone, Serialize)]
pub struct Consent {
    pub purpose: String,
    /// `granted` or `withdrawn`.
    pub status: String,
    pub source: String,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
}

impl From<ConsentRow> for Consent {
    fn from(r: ConsentRow) -> Self {
        Consent {
            purpose: r.purpose,
            status: r.status,
            source: r.source,
            recorded_by: r.recorded_by,
            recorded_at: DateTime::from_naive_utc_and_offset(r.recorded_at, Utc),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentStatus {
    Granted,
    Withdrawn,
}

impl ConsentStatus {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "granted" => Ok(ConsentStatus::Granted),
            "withdrawn" => Ok(ConsentStatus::Withdrawn),
            _ => Err(Error::invalid(
                "invalid_status",
                "status must be granted or withdrawn",
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ConsentStatus::Granted => "granted",
            ConsentStatus::Withdrawn => "withdrawn",
        }
    }
}

pub fn validate_purpose(p: &str) -> Result<()> {
    let ok = !p.is_empty()
        && p.len() <= 64
        && p.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "invalid_purpose",
            "purpose must be 1 to 64 characters of a-z, 0-9 and _",
        ))
    }
}

pub fn validate_source(s: &str) -> Result<String> {
    let s = s.trim();
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c));
    if ok {
        Ok(s.to_string())
    } else {
        Err(Error::invalid(
            "invalid_source",
            "source must be 1 to 64 characters of letters, digits and _ - . : (e.g. web_form)",
        ))
    }
}

/// One consent decision to record.
pub struct Decision<'a> {
    pub purpose: &'a str,
    pub status: ConsentStatus,
    pub source: &'a str,
    pub recorded_by: &'a str,
}

pub fn record(
    conn: &mut DbConnection,
    tenant_id: &str,
    visitor_id: &str,
    decision: Decision<'_>,
    now: NaiveDateTime,
) -> Result<ConsentRow> {
    let Decision {
        purpose,
        status,
        source,
        recorded_by,
    } = decision;
    let last: Option<i64> = consents::table
        .filter(consents::tenant_id.eq(tenant_id))
        .filter(consents::visitor_id.eq(visitor_id))
        .filter(consents::purpose.eq(purpose))
        .select(diesel::dsl::max(consents::seq))
        .first(conn)?;
    let row = ConsentRow {
        tenant_id: tenant_id.to_string(),
        visitor_id: visitor_id.to_string(),
        purpose: purpose.to_string(),
        seq: last.unwrap_or(0) + 1,
        status: status.as_str().to_string(),
        source: source.to_string(),
        recorded_by: recorded_by.to_string(),
        recorded_at: now,
    };
    diesel::insert_into(consents::table)
        .values(&row)
        .execute(conn)?;
    Ok(row)
}

/// Every consent row of the visitor, oldest first.
pub fn history(
    conn: &mut DbConnection,
    tenant_id: &str,
    visitor_id: &str,
) -> Result<Vec<ConsentRow>> {
    Ok(consents::table
        .filter(consents::tenant_id.eq(tenant_id))
        .filter(consents::visitor_id.eq(visitor_id))
        .select(ConsentRow::as_select())
        .order((
            consents::recorded_at.asc(),
            consents::purpose.asc(),
            consents::seq.asc(),
        ))
        .load(conn)?)
}

/// The newest row per purpose.
pub fn current(history: &[ConsentRow]) -> Vec<ConsentRow> {
    let mut latest: std::collections::BTreeMap<&str, &ConsentRow> = Default::default();
    for r in history {
        match latest.get(r.purpose.as_str()) {
            Some(prev) if prev.seq >= r.seq => {}
            _ => {
                latest.insert(&r.purpose, r);
            }
        }
    }
    latest.into_values().cloned().collect()
}

/// Whether the visitor's current consent for `purpose` is withdrawn (absent counts as not
/// withdrawn: the authorization decides whether consent is required at all).
pub fn is_withdrawn(
    conn: &mut DbConnection,
    tenant_id: &str,
    visitor_id: &str,
    purpose: &str,
) -> Result<bool> {
    let last: Option<ConsentRow> = consents::table
        .filter(consents::tenant_id.eq(tenant_id))
        .filter(consents::visitor_id.eq(visitor_id))
        .filter(consents::purpose.eq(purpose))
        .select(ConsentRow::as_select())
        .order(consents::seq.desc())
        .first(conn)
        .optional()?;
    Ok(last.is_some_and(|r| r.status == ConsentStatus::Withdrawn.as_str()))
}

pub fn delete_for_visitor(
    conn: &mut DbConnection,
    tenant_id: &str,
    visitor_id: &str,
) -> Result<usize> {
    Ok(diesel::delete(
        consents::table
            .filter(consents::tenant_id.eq(tenant_id))
            .filter(consents::visitor_id.eq(visitor_id)),
    )
    .execute(conn)?)
}

pub fn delete_tenant(conn: &mut DbConnection, tenant_id: &str) -> Result<usize> {
    Ok(diesel::delete(consents::table.filter(consents::tenant_id.eq(tenant_id))).execute(conn)?)
}
