//! The platform's subprocessor registry (`platform_admin`). Adding a subprocessor tells every
//! tenant, with a window to object in; an objection blocks that tenant from authorizing it.

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use steward_audit::{Actor, NewEvent, Target, PLATFORM_CHAIN};
use steward_core::{Error, Id, Principal, Result};
use steward_identity::clients::{self, CreatedClient};
use steward_store::pagination::{Page, PageRequest};
use steward_store::tenants::{self, TenantStatus};
use steward_store::DbConnection;

use crate::schema::subprocessors;
use crate::util::{micros, text, utc};

pub const STATUS_ACTIVE: &str = "active";
pub const STATUS_RETIRED: &str = "retired";

/// The notice kind every tenant gets when a subprocessor is added (`subject_id` = `sub_…`).
pub const NOTICE_KIND_ADDED: &str = "subprocessor.added";

/// Days a tenant has to object to a new subprocessor, unless configured otherwise.
pub const DEFAULT_OBJECTION_DAYS: i64 = 30;
pub const MAX_OBJECTION_DAYS: i64 = 365;

/// The legal basis of transfers to the subprocessor's country.
pub const TRANSFER_MECHANISMS: [&str; 4] = ["adequacy", "scc", "bcr", "none_needed"];

pub const MAX_NAME_LEN: usize = 200;
pub const MAX_CONTACT_LEN: usize = 254;
pub const MAX_DPA_REFERENCE_LEN: usize = 200;

/// A new registry entry, as `POST /v1/subprocessors` takes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSubprocessor {
    pub name: String,
    pub legal_name: String,
    /// ISO 3166-1 alpha-2 (`DE`, `US`).
    pub country: String,
    /// The company's contact for data-protection matters: an e-mail address or an https URL.
    pub contact: String,
    /// `adequacy`, `scc`, `bcr` or `none_needed`.
    pub transfer_mechanism: String,
    /// The signed data-processing agreement (a document id or URL).
    pub dpa_reference: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = subprocessors)]
pub struct SubprocessorRow {
    pub id: String,
    pub name: String,
    pub legal_name: String,
    pub country: String,
    pub contact: String,
    pub transfer_mechanism: String,
    pub dpa_reference: String,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl SubprocessorRow {
    pub fn is_active(&self) -> bool {
        self.status == STATUS_ACTIVE
    }
}

/// A registry entry as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Subprocessor {
    pub id: String,
    pub name: String,
    pub legal_name: String,
    pub country: String,
    pub contact: String,
    pub transfer_mechanism: String,
    pub dpa_reference: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<SubprocessorRow> for Subprocessor {
    fn from(r: SubprocessorRow) -> Self {
        Subprocessor {
            id: r.id,
            name: r.name,
            legal_name: r.legal_name,
            country: r.country,
            contact: r.contact,
            transfer_mechanism: r.transfer_mechanism,
            dpa_reference: r.dpa_reference,
            status: r.status,
            created_at: utc(r.created_at),
            updated_at: utc(r.updated_at),
        }
    }
}

fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
}

fn valid_url(s: &str) -> bool {
    s.strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .is_some_and(|rest| {
            let host = rest.split(['/', '?', '#']).next().unwrap_or("");
            host.contains('.') && !host.starts_with('.')
        })
}

impl NewSubprocessor {
    /// Checks every field; errors name the field, never its content.
    pub fn validate(&self) -> Result<NewSubprocessor> {
        let name = text(&self.name, MAX_NAME_LEN).ok_or_else(|| {
            Error::invalid(
                "invalid_name",
                format!("name must be 1 to {MAX_NAME_LEN} characters"),
            )
        })?;
        let legal_name = text(&self.legal_name, MAX_NAME_LEN).ok_or_else(|| {
            Error::invalid(
                "invalid_legal_name",
                format!("legal_name must be 1 to {MAX_NAME_LEN} characters"),
            )
        })?;
        let country = self.country.trim().to_string();
        if !steward_visitors::countries::is_alpha2(&country) {
            return Err(Error::invalid(
                "invalid_country",
                "country must be an ISO 3166-1 alpha-2 code in upper case (e.g. DE)",
            ));
        }
        let contact = self.contact.trim().to_string();
        let contact_ok = (1..=MAX_CONTACT_LEN).contains(&contact.len())
            && !contact.chars().any(|c| c.is_whitespace() || c.is_control())
            && (valid_email(&contact) || valid_url(&contact));
        if !contact_ok {
            return Err(Error::invalid(
                "invalid_contact",
                "contact must be the company's e-mail address or an http(s) URL",
            ));
        }
        let transfer_mechanism = self.transfer_mechanism.trim().to_string();
        if !TRANSFER_MECHANISMS.contains(&transfer_mechanism.as_str()) {
            return Err(Error::invalid(
                "invalid_transfer_mechanism",
                "transfer_mechanism must be adequacy, scc, bcr or none_needed",
            ));
        }
        let dpa_reference = text(&self.dpa_reference, MAX_DPA_REFERENCE_LEN).ok_or_else(|| {
            Error::invalid(
                "invalid_dpa_reference",
                format!("dpa_reference must be 1 to {MAX_DPA_REFERENCE_LEN} characters"),
            )
        })?;
        Ok(NewSubprocessor {
            name,
            legal_name,
            country,
            contact,
            transfer_mechanism,
            dpa_reference,
        })
    }
}

/// Adds a subprocessor, raises a `subprocessor.added` notice with an objection window of
/// `objection_days` in every tenant that exists (and is not deleted), and records
/// `subprocessor.create` in the platform chain. Run it as one unit of work.
pub fn create(
    conn: &mut DbConnection,
    new: &NewSubprocessor,
    by: &Principal,
    now: NaiveDateTime,
    objection_days: i64,
) -> Result<SubprocessorRow> {
    let new = new.validate()?;
    if !(1..=MAX_OBJECTION_DAYS).contains(&objection_days) {
        return Err(Error::invalid(
            "invalid_objection_days",
            format!("the objection window must be 1 to {MAX_OBJECTION_DAYS} days"),
        ));
    }
    let now = micros(now);
    let row = SubprocessorRow {
        id: Id::Subprocessor.generate(),
        name: new.name,
        legal_name: new.legal_name,
        country: new.country,
        contact: new.contact,
        transfer_mechanism: new.transfer_mechanism,
        dpa_reference: new.dpa_reference,
        status: STATUS_ACTIVE.to_string(),
        created_at: now,
        updated_at: now,
    };
    diesel::insert_into(subprocessors::table)
        .values(&row)
        .execute(conn)?;

    let respond_by = now + Duration::days(objection_days);
    let message = format!(
        "New subprocessor {} ({}): {}, {}, transfer mechanism {}. You may object until {} UTC; \
         an objection blocks authorizing it for your data.",
        row.name,
        row.id,
        row.legal_name,
        row.country,
        row.transfer_mechanism,
        respond_by.format("%Y-%m-%d %H:%M"),
    );
    let mut notified = 0usize;
    let mut page = PageRequest {
        limit: steward_store::pagination::MAX_LIMIT,
        after: None,
    };
    loop {
        let tenants = tenants::list(conn, &page)?;
        for t in &tenants.items {
            if t.status()? == TenantStatus::Deleted {
                continue;
            }
            steward_staff::notices::insert(
                conn,
                &t.id,
                NOTICE_KIND_ADDED,
                Some(&row.id),
                &message,
                false,
                Some(respond_by),
                now,
            )?;
            notified += 1;
        }
        match tenants.next_cursor {
            Some(c) => page.after = Some(c),
            None => break,
        }
    }
    steward_audit::append(
        conn,
        PLATFORM_CHAIN,
        NewEvent::new(
            "subprocessor.create",
            Actor::from_principal(by),
            Target::record("subprocessor", row.id.clone()),
        )
        .detail(format!("notified {notified} tenants")),
        now,
    )?;
    tracing::info!(subprocessor_id = %row.id, notified, "subprocessor added");
    Ok(row)
}

/// The entry, or `NotFound` (also for a malformed id).
pub fn get(conn: &mut DbConnection, id: &str) -> Result<SubprocessorRow> {
    if !Id::Subprocessor.matches(id) {
        return Err(Error::NotFound);
    }
    subprocessors::table
        .find(id)
        .select(SubprocessorRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(Error::NotFound)
}

/// One page of the registry, by id.
pub fn list(conn: &mut DbConnection, page: &PageRequest) -> Result<Page<SubprocessorRow>> {
    let mut q = subprocessors::table
        .select(SubprocessorRow::as_select())
        .order(subprocessors::id.asc())
        .limit(page.fetch_limit())
        .into_boxed();
    if let Some(after) = &page.after {
        q = q.filter(subprocessors::id.gt(after.clone()));
    }
    let rows = q.load(conn)?;
    Ok(Page::from_rows(rows, page, |r| r.id.clone()))
}

/// Names of the given subprocessors (for ledger and export views).
pub fn names(
    conn: &mut DbConnection,
    ids: &[String],
) -> Result<std::collections::HashMap<String, String>> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let rows: Vec<(String, String)> = subprocessors::table
        .filter(subprocessors::id.eq_any(ids))
        .select((subprocessors::id, subprocessors::name))
        .load(conn)?;
    Ok(rows.into_iter().collect())
}

/// Issues client credentials (client id + secret, shown once) to an active subprocessor.
pub fn issue_credentials(
    conn: &mut DbConnection,
    sub_id: &str,
    now: NaiveDateTime,
) -> Result<CreatedClient> {
    let sub = get(conn, sub_id)?;
    if !sub.is_active() {
        return Err(Error::conflict(
            "subprocessor_retired",
            "this subprocessor is retired; it gets no new credentials",
        ));
    }
    clients::create(conn, &sub.id, micros(now))
}

/// [`issue_credentials`], recorded as `subprocessor.credentials.issue` in the platform chain
/// (the client id, never the secret).
pub fn issue_credentials_audited(
    conn: &mut DbConnection,
    sub_id: &str,
    by: &Principal,
    now: NaiveDateTime,
) -> Result<CreatedClient> {
    let created = issue_credentials(conn, sub_id, now)?;
    steward_audit::append(
        conn,
        PLATFORM_CHAIN,
        NewEvent::new(
            "subprocessor.credentials.issue",
            Actor::from_principal(by),
            Target::record("subprocessor", sub_id.to_string()),
        )
        .detail(format!("client {}", created.row.id)),
        micros(now),
    )?;
    Ok(created)
}

/// Retires a subprocessor: its credentials are revoked and no authorization of it is active
/// any more (pulls answer 403 at once). Idempotent.
pub fn retire(
    conn: &mut DbConnection,
    sub_id: &str,
    by: &Principal,
    now: NaiveDateTime,
) -> Result<SubprocessorRow> {
    let sub = get(conn, sub_id)?;
    if !sub.is_active() {
        return Ok(sub);
    }
    let now = micros(now);
    diesel::update(subprocessors::table.find(&sub.id))
        .set((
            subprocessors::status.eq(STATUS_RETIRED),
            subprocessors::updated_at.eq(now),
        ))
        .execute(conn)?;
    let revoked = clients::revoke_all_for(conn, &sub.id, now)?;
    steward_audit::append(
        conn,
        PLATFORM_CHAIN,
        NewEvent::new(
            "subprocessor.retire",
            Actor::from_principal(by),
            Target::record("subprocessor", sub.id.clone()),
        )
        .detail(format!("revoked {revoked} clients")),
        now,
    )?;
    get(conn, sub_id)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn new() -> NewSubprocessor {
        NewSubprocessor {
            name: "ShipFast".into(),
            legal_name: "ShipFast GmbH".into(),
            country: "DE".into(),
            contact: "privacy@shipfast.example".into(),
            transfer_mechanism: "adequacy".into(),
            dpa_reference: "DPA-2026-001".into(),
        }
    }

    #[test]
    fn validates() {
        assert!(new().validate().is_ok());
        let mut n = new();
        n.contact = "https://shipfast.example/privacy".into();
        assert!(n.validate().is_ok());
        for (f, code) in [
            (
                (|n: &mut NewSubprocessor| n.country = "XX".into()) as fn(&mut NewSubprocessor),
                "invalid_country",
            ),
            (|n| n.country = "de".into(), "invalid_country"),
            (|n| n.contact = "not a contact".into(), "invalid_contact"),
            (|n| n.contact = "ftp://x.example".into(), "invalid_contact"),
            (
                |n| n.transfer_mechanism = "trust_me".into(),
                "invalid_transfer_mechanism",
            ),
            (|n| n.name = "  ".into(), "invalid_name"),
            (
                |n| n.dpa_reference = "a\u{0}b".into(),
                "invalid_dpa_reference",
            ),
        ] {
            let mut n = new();
            f(&mut n);
            match n.validate() {
                Err(Error::Invalid { code: c, .. }) => assert_eq!(c, code),
                other => panic!("expected {code}, got {other:?}"),
            }
        }
    }

    #[test]
    fn rejects_unknown_fields() {
        let r: std::result::Result<NewSubprocessor, _> =
            serde_json::from_value(serde_json::json!({
                "name": "a", "legal_name": "b", "country": "DE", "contact": "a@b.example",
                "transfer_mechanism": "scc", "dpa_reference": "x", "extra": 1
            }));
        assert!(r.is_err());
    }
}
