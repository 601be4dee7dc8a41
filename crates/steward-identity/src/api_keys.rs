//! A tenant's API keys: `stw_…` secrets shown once, kept as SHA-256, limited by scopes, with
//! expiry and revocation.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use steward_core::{Error, Id, Permission, Principal, PrincipalKind, Result};
use steward_store::pagination::{Page, PageRequest};
use steward_store::DbConnection;

use crate::schema::api_keys;
use crate::secrets::{generate_api_key_secret, hash_secret, verify_secret, Secret};

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub secret_hash: Vec<u8>,
    pub scopes: String,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    pub last_used_at: Option<NaiveDateTime>,
}

impl std::fmt::Debug for ApiKeyRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyRow")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .finish_non_exhaustive()
    }
}

impl ApiKeyRow {
    pub fn scope_list(&self) -> Vec<Permission> {
        self.scopes
            .split(',')
            .filter_map(|s| s.parse().ok())
            .collect()
    }
}

/// Validates requested scopes: known names, each grantable to an API key.
pub fn parse_scopes(requested: &[String]) -> Result<Vec<Permission>> {
    if requested.is_empty() {
        return Err(Error::invalid("invalid_scopes", "give at least one scope"));
    }
    let mut out = Vec::new();
    for s in requested {
        let p: Permission = s.parse().map_err(|_| {
            Error::invalid(
                "invalid_scopes",
                format!("unknown scope `{}`", s.chars().take(64).collect::<String>()),
            )
        })?;
        if !p.grantable_to_api_key() {
            return Err(Error::invalid(
                "invalid_scopes",
                format!("scope `{p}` cannot be given to an API key"),
            ));
        }
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

pub struct CreatedApiKey {
    pub row: ApiKeyRow,
    pub secret: Secret,
}

pub fn create(
    conn: &mut DbConnection,
    tenant_id: &str,
    name: &str,
    scopes: &[Permission],
    created_by: &str,
    expires_at: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> Result<CreatedApiKey> {
    let secret = generate_api_key_secret()?;
    let row = ApiKeyRow {
        id: Id::ApiKey.generate(),
        tenant_id: tenant_id.to_string(),
        name: name.to_string(),
        secret_hash: hash_secret(secret.expose()),
        scopes: scopes
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(","),
        created_by: created_by.to_string(),
        created_at: now,
        expires_at,
        revoked_at: None,
        last_used_at: None,
    };
    diesel::insert_into(api_keys::table)
        .values(&row)
        .execute(conn)?;
    Ok(CreatedApiKey { row, secret })
}

pub fn list(
    conn: &mut DbConnection,
    tenant_id: &str,
    page: &PageRequest,
) -> Result<Page<ApiKeyRow>> {
    let mut q = api_keys::table
        .filter(api_keys::tenant_id.eq(tenant_id))
        .select(ApiKeyRow::as_select())
        .order(api_keys::id.asc())
        .limit(page.fetch_limit())
        .into_boxed();
    if let Some(after) = &page.after {
        q = q.filter(api_keys::id.gt(after.clone()));
    }
    Ok(Page::from_rows(q.load(conn)?, page, |k| k.id.clone()))
}

pub fn revoke(
    conn: &mut DbConnection,
    tenant_id: &str,
    id: &str,
    now: NaiveDateTime,
) -> Result<ApiKeyRow> {
    let n = diesel::update(
        api_keys::table
            .find(id)
            .filter(api_keys::tenant_id.eq(tenant_id)),
    )
    .set(api_keys::revoked_at.eq(Some(now)))
    .execute(conn)?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    Ok(api_keys::table
        .find(id)
        .select(ApiKeyRow::as_select())
        .first(conn)?)
}

/// The principal a presented secret stands for, if it is a live key.
pub fn authenticate(
    conn: &mut DbConnection,
    secret: &str,
    now: NaiveDateTime,
) -> Result<Principal> {
    let invalid = || Error::Unauthenticated {
        detail: "invalid, expired or revoked API key",
    };
    let hash = hash_secret(secret);
    // Every API request runs this: on the backend's own connection (see `steward_store::direct!`).
    let row: ApiKeyRow = steward_store::direct!(conn, |c| api_keys::table
        .filter(api_keys::secret_hash.eq(&hash))
        .select(ApiKeyRow::as_select())
        .first(c)
        .optional())?
    .ok_or_else(invalid)?;
    // The lookup is by hash; compare again in constant time so the decision never rests on a
    // variable-time database comparison.
    if !verify_secret(secret, &row.secret_hash)
        || row.revoked_at.is_some()
        || row.expires_at.is_some_and(|e| e <= now)
    {
        return Err(invalid());
    }
    Ok(Principal {
        kind: PrincipalKind::ApiKey,
        id: row.id.clone(),
        role: None,
        tenant_id: Some(row.tenant_id.clone()),
        scopes: row.scope_list(),
    })
}

/// Revokes every live key of a tenant (offboarding).
pub fn revoke_all_for_tenant(
    conn: &mut DbConnection,
    tenant_id: &str,
    now: NaiveDateTime,
) -> Result<usize> {
    Ok(diesel::update(
        api_keys::table
            .filter(api_keys::tenant_id.eq(tenant_id))
            .filter(api_keys::revoked_at.is_null()),
    )
    .set(api_keys::revoked_at.eq(Some(now)))
    .execute(conn)?)
}
