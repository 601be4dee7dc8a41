//! What a tenant allowed a subprocessor to pull (`tenant_admin`): purposes, visitor field
//! names, optionally only visitors who did not withdraw a consent, until an expiry. Revocation
//! takes effect for the very next pull. At most one active authorization per (subprocessor,
//! purpose), so what a pull may send is never ambiguous.

use chrono::{DateTime, NaiveDateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use steward_audit::{Actor, NewEvent, Target};
use steward_core::{Error, Id, Principal, Result};
use steward_staff::schema::notices;
use steward_store::pagination::{Page, PageRequest};
use steward_store::{tenants, DbConnection};
use steward_visitors::consents::validate_purpose;

use crate::fields;
use crate::registry::{self, NOTICE_KIND_ADDED};
use crate::schema::subprocessor_authorizations as auths;
use crate::util::{join, micros, split, utc};

/// Most purposes one authorization may list.
pub const MAX_PURPOSES: usize = 32;

/// A new authorization, as `POST /v1/tenants/{tid}/subprocessor-authorizations` takes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewAuthorization {
    pub subprocessor_id: String,
    pub purposes: Vec<String>,
    /// Visitor field names: `name`, `email`, `phone`, `address`, `address.country`,
    /// `attributes`, `attributes.<key>` …
    pub fields: Vec<String>,
    /// Only visitors whose consent for this purpose is not withdrawn are sent.
    #[serde(default)]
    pub require_consent: Option<String>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = auths)]
#[diesel(treat_none_as_default_value = false)]
pub struct AuthorizationRow {
    pub tenant_id: String,
    pub id: String,
    pub subprocessor_id: String,
    /// Comma-separated, sorted.
    pub purposes: String,
    /// Comma-separated, canonical (see `fields::normalize`).
    pub fields: String,
    pub require_consent: Option<String>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    pub revoked_by: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthorizationState {
    Active,
    Expired,
    Revoked,
}

impl AuthorizationRow {
    pub fn purposes(&self) -> Vec<String> {
        split(&self.purposes)
    }

    pub fn fields(&self) -> Vec<String> {
        split(&self.fields)
    }

    pub fn allows_purpose(&self, purpose: &str) -> bool {
        self.purposes.split(',').any(|p| p == purpose)
    }

    /// The state at `now` (revocation wins over expiry).
    pub fn state(&self, now: NaiveDateTime) -> AuthorizationState {
        if self.revoked_at.is_some() {
            AuthorizationState::Revoked
        } else if self.expires_at.is_some_and(|e| now >= e) {
            AuthorizationState::Expired
        } else {
            AuthorizationState::Active
        }
    }
}

/// An authorization as the API shows it, with its state at the time of asking.
#[derive(Debug, Clone, Serialize)]
pub struct Authorization {
    pub id: String,
    pub tenant_id: String,
    pub subprocessor_id: String,
    pub purposes: Vec<String>,
    pub fields: Vec<String>,
    pub require_consent: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revoked_by: Option<String>,
    pub state: AuthorizationState,
}

impl Authorization {
    pub fn from_row(r: AuthorizationRow, now: NaiveDateTime) -> Self {
        Authorization {
            state: r.state(now),
            purposes: r.purposes(),
            fields: r.fields(),
            id: r.id,
            tenant_id: r.tenant_id,
            subprocessor_id: r.subprocessor_id,
            require_consent: r.require_consent,
            created_by: r.created_by,
            created_at: utc(r.created_at),
            expires_at: r.expires_at.map(utc),
            revoked_at: r.revoked_at.map(utc),
            revoked_by: r.revoked_by,
        }
    }
}

fn foreign(by: &Principal, tenant_id: &str) -> bool {
    by.tenant_id.as_deref().is_some_and(|t| t != tenant_id)
}

fn actor_event(action: &str, by: &Principal, row: &AuthorizationRow) -> NewEvent {
    NewEvent::new(
        action,
        Actor::from_principal(by),
        Target::record("subprocessor_authorization", row.id.clone()),
    )
    .fields(&row.fields())
    .detail(format!("subprocessor {}", row.subprocessor_id))
}

/// Whether the tenant objected to the subprocessor's `subprocessor.added` notice.
pub fn objected(conn: &mut DbConnection, tenant_id: &str, subprocessor_id: &str) -> Result<bool> {
    let n: i64 = notices::table
        .filter(notices::tenant_id.eq(tenant_id))
        .filter(notices::kind.eq(NOTICE_KIND_ADDED))
        .filter(notices::subject_id.eq(subprocessor_id))
        .filter(notices::objected_at.is_not_null())
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Creates an authorization. `NotFound` for an unknown tenant or an unknown or retired
/// subprocessor; 409 `subprocessor_objected` if the tenant objected to the subprocessor;
/// 409 `authorization_exists` if an active one already covers one of the purposes.
/// Audited as `subprocessor_authorization.create` in the tenant's chain.
pub fn create(
    conn: &mut DbConnection,
    tenant_id: &str,
    new: &NewAuthorization,
    by: &Principal,
    now: NaiveDateTime,
) -> Result<AuthorizationRow> {
    if foreign(by, tenant_id) || !Id::Tenant.matches(tenant_id) {
        return Err(Error::NotFound);
    }
    let now = micros(now);
    tenants::get(conn, tenant_id)?;

    if new.purposes.is_empty() || new.purposes.len() > MAX_PURPOSES {
        return Err(Error::invalid(
            "invalid_purpose",
            format!("purposes must list 1 to {MAX_PURPOSES} purposes"),
        ));
    }
    let mut purposes: Vec<String> = new.purposes.iter().map(|p| p.trim().to_string()).collect();
    for p in &purposes {
        validate_purpose(p)?;
    }
    purposes.sort_unstable();
    purposes.dedup();
    let fields = fields::normalize(&new.fields)?;
    let require_consent = match new.require_consent.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(p) => {
            validate_purpose(p).map_err(|_| {
                Error::invalid(
                    "invalid_require_consent",
                    "require_consent must be a consent purpose: 1 to 64 characters of a-z, 0-9 and _",
                )
            })?;
            Some(p.to_string())
        }
    };
    let expires_at = match new.expires_at {
        Some(e) => {
            let e = micros(e.naive_utc());
            if e <= now {
                return Err(Error::invalid(
                    "invalid_expires_at",
                    "expires_at must be in the future",
                ));
            }
            Some(e)
        }
        None => None,
    };

    let sub = registry::get(conn, new.subprocessor_id.trim())?;
    if !sub.is_active() {
        return Err(Error::NotFound);
    }
    if objected(conn, tenant_id, &sub.id)? {
        return Err(Error::conflict(
            "subprocessor_objected",
            format!(
                "this tenant objected to subprocessor {}; it cannot be authorized",
                sub.id
            ),
        ));
    }
    let live: Vec<AuthorizationRow> = auths::table
        .filter(auths::tenant_id.eq(tenant_id))
        .filter(auths::subprocessor_id.eq(&sub.id))
        .filter(auths::revoked_at.is_null())
        .select(AuthorizationRow::as_select())
        .load(conn)?;
    if let Some(clash) = live.iter().find(|a| {
        a.state(now) == AuthorizationState::Active && purposes.iter().any(|p| a.allows_purpose(p))
    }) {
        return Err(Error::conflict(
            "authorization_exists",
            format!(
                "authorization {} already lets this subprocessor pull for one of these purposes; \
                 revoke it first",
                clash.id
            ),
        ));
    }

    let row = AuthorizationRow {
        tenant_id: tenant_id.to_string(),
        id: Id::Authorization.generate(),
        subprocessor_id: sub.id,
        purposes: join(&purposes),
        fields: join(&fields),
        require_consent,
        created_by: by.id.clone(),
        created_at: now,
        expires_at,
        revoked_at: None,
        revoked_by: None,
    };
    diesel::insert_into(auths::table)
        .values(&row)
        .execute(conn)?;
    steward_audit::append(
        conn,
        tenant_id,
        actor_event("subprocessor_authorization.create", by, &row),
        now,
    )?;
    Ok(row)
}

/// The authorization, or `NotFound` (also another tenant's, or a malformed id).
pub fn get(conn: &mut DbConnection, tenant_id: &str, id: &str) -> Result<AuthorizationRow> {
    if !Id::Authorization.matches(id) {
        return Err(Error::NotFound);
    }
    auths::table
        .find((tenant_id, id))
        .select(AuthorizationRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(Error::NotFound)
}

/// Revokes an authorization, effective for the very next pull. Revoking a revoked one changes
/// nothing. Audited as `subprocessor_authorization.revoke`.
pub fn revoke(
    conn: &mut DbConnection,
    tenant_id: &str,
    aid: &str,
    by: &Principal,
    now: NaiveDateTime,
) -> Result<AuthorizationRow> {
    if foreign(by, tenant_id) {
        return Err(Error::NotFound);
    }
    let row = get(conn, tenant_id, aid)?;
    if row.revoked_at.is_some() {
        return Ok(row);
    }
    let now = micros(now);
    diesel::update(
        auths::table
            .filter(auths::tenant_id.eq(tenant_id))
            .filter(auths::id.eq(aid))
            .filter(auths::revoked_at.is_null()),
    )
    .set((
        auths::revoked_at.eq(Some(now)),
        auths::revoked_by.eq(Some(by.id.as_str())),
    ))
    .execute(conn)?;
    steward_audit::append(
        conn,
        tenant_id,
        actor_event("subprocessor_authorization.revoke", by, &row),
        now,
    )?;
    get(conn, tenant_id, aid)
}

/// One page of the tenant's authorizations, by id.
pub fn list(
    conn: &mut DbConnection,
    tenant_id: &str,
    page: &PageRequest,
) -> Result<Page<AuthorizationRow>> {
    let mut q = auths::table
        .filter(auths::tenant_id.eq(tenant_id))
        .select(AuthorizationRow::as_select())
        .order(auths::id.asc())
        .limit(page.fetch_limit())
        .into_boxed();
    if let Some(after) = &page.after {
        q = q.filter(auths::id.gt(after.clone()));
    }
    let rows = q.load(conn)?;
    Ok(Page::from_rows(rows, page, |r| r.id.clone()))
}

/// The authorization that lets `subprocessor_id` pull the tenant's data for `purpose` at
/// `now`: not revoked, not expired, listing the purpose — and only while the subprocessor is
/// active in the registry and the tenant has not objected to it.
pub fn active_for(
    conn: &mut DbConnection,
    tenant_id: &str,
    subprocessor_id: &str,
    purpose: &str,
    now: NaiveDateTime,
) -> Result<Option<AuthorizationRow>> {
    let rows: Vec<AuthorizationRow> = auths::table
        .filter(auths::tenant_id.eq(tenant_id))
        .filter(auths::subprocessor_id.eq(subprocessor_id))
        .filter(auths::revoked_at.is_null())
        .select(AuthorizationRow::as_select())
        .order(auths::id.desc())
        .load(conn)?;
    let Some(row) = rows
        .into_iter()
        .find(|a| a.state(now) == AuthorizationState::Active && a.allows_purpose(purpose))
    else {
        return Ok(None);
    };
    match registry::get(conn, subprocessor_id) {
        Ok(sub) if sub.is_active() => {}
        Ok(_) | Err(Error::NotFound) => return Ok(None),
        Err(e) => return Err(e),
    }
    if objected(conn, tenant_id, subprocessor_id)? {
        return Ok(None);
    }
    Ok(Some(row))
}

/// Subprocessors of the tenant with an authorization (in any state) that requires consent for
/// `purpose`.
pub fn requiring_consent(
    conn: &mut DbConnection,
    tenant_id: &str,
    purpose: &str,
) -> Result<Vec<String>> {
    let mut subs: Vec<String> = auths::table
        .filter(auths::tenant_id.eq(tenant_id))
        .filter(auths::require_consent.eq(purpose))
        .select(auths::subprocessor_id)
        .load(conn)?;
    subs.sort_unstable();
    subs.dedup();
    Ok(subs)
}
