//! Users: platform staff (no tenant) and tenant users (exactly one tenant). Passwords are
//! hashed by the caller before the unit of work is queued — argon2 is deliberately slow and
//! must not run inside the shared write transaction.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use steward_core::{Error, Id, Principal, PrincipalKind, Result, Role};
use steward_store::pagination::{Page, PageRequest};
use steward_store::DbConnection;

use crate::schema::users;

/// The `email_scope` of staff.
pub const PLATFORM_SCOPE: &str = "platform";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Active,
    Disabled,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Disabled => "disabled",
        }
    }
}

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub tenant_id: Option<String>,
    pub email_scope: String,
    pub email: String,
    pub password_hash: String,
    pub role: String,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub disabled_at: Option<NaiveDateTime>,
}

/// Never print the hash.
impl std::fmt::Debug for UserRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("role", &self.role)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl UserRow {
    pub fn role(&self) -> Result<Role> {
        self.role
            .parse()
            .map_err(|_| Error::internal_msg("unknown role in database"))
    }

    pub fn is_active(&self) -> bool {
        self.status == UserStatus::Active.as_str()
    }

    pub fn principal(&self) -> Result<Principal> {
        Ok(Principal {
            kind: PrincipalKind::User,
            id: self.id.clone(),
            role: Some(self.role()?),
            tenant_id: self.tenant_id.clone(),
            scopes: Vec::new(),
        })
    }
}

/// Checks and normalizes a login e-mail (trimmed, lower-cased, one `@`, no spaces).
pub fn normalize_email(raw: &str) -> Result<String> {
    let invalid = || Error::invalid("invalid_email", "email is not a valid address");
    let email = steward_keys::normalize::email(raw).map_err(|_| invalid())?;
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    if local.is_empty()
        || domain.is_empty()
        || domain.contains('@')
        || !domain.contains('.')
        || email.len() > 254
        || email.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid());
    }
    Ok(email)
}

/// A new user row; `password_hash` is a PHC string made by `PasswordHasher::hash`.
pub fn new_row(
    tenant_id: Option<&str>,
    email: String,
    password_hash: String,
    role: Role,
    now: NaiveDateTime,
) -> Result<UserRow> {
    match (tenant_id, role.is_staff()) {
        (None, true) | (Some(_), false) => {}
        (None, false) => {
            return Err(Error::invalid(
                "invalid_role",
                "tenant roles need a tenant; staff are created at /v1/staff",
            ))
        }
        (Some(_), true) => {
            return Err(Error::invalid(
                "invalid_role",
                "staff roles cannot belong to a tenant",
            ))
        }
    }
    Ok(UserRow {
        id: Id::User.generate(),
        tenant_id: tenant_id.map(str::to_string),
        email_scope: tenant_id.unwrap_or(PLATFORM_SCOPE).to_string(),
        email,
        password_hash,
        role: role.as_str().to_string(),
        status: UserStatus::Active.as_str().to_string(),
        created_at: now,
        updated_at: now,
        disabled_at: None,
    })
}

pub fn insert(conn: &mut DbConnection, row: &UserRow) -> Result<()> {
    diesel::insert_into(users::table)
        .values(row)
        .execute(conn)
        .map_err(|e| match Error::from(e) {
            Error::Conflict { .. } => {
                Error::conflict("email_taken", "a user with this e-mail already exists here")
            }
            other => other,
        })?;
    Ok(())
}

pub fn get(conn: &mut DbConnection, id: &str) -> Result<UserRow> {
    // Every request with a user's token runs this (see `steward_store::direct!`).
    steward_store::direct!(conn, |c| users::table
        .find(id)
        .select(UserRow::as_select())
        .first(c)
        .optional())?
    .ok_or(Error::NotFound)
}

/// A user of `tenant_id` (`None`: staff), or `NotFound` — also for a user of another tenant.
pub fn get_in_scope(conn: &mut DbConnection, tenant_id: Option<&str>, id: &str) -> Result<UserRow> {
    let scope = tenant_id.unwrap_or(PLATFORM_SCOPE);
    users::table
        .find(id)
        .filter(users::email_scope.eq(scope))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(Error::NotFound)
}

/// Active users with this e-mail, in every scope or in one.
pub fn find_active_by_email(
    conn: &mut DbConnection,
    email: &str,
    scope: Option<&str>,
) -> Result<Vec<UserRow>> {
    let mut q = users::table
        .filter(users::email.eq(email))
        .filter(users::status.eq(UserStatus::Active.as_str()))
        .select(UserRow::as_select())
        .order(users::id.asc())
        .into_boxed();
    if let Some(scope) = scope {
        q = q.filter(users::email_scope.eq(scope.to_string()));
    }
    Ok(q.load(conn)?)
}

pub fn list(
    conn: &mut DbConnection,
    tenant_id: Option<&str>,
    page: &PageRequest,
) -> Result<Page<UserRow>> {
    let scope = tenant_id.unwrap_or(PLATFORM_SCOPE).to_string();
    let mut q = users::table
        .filter(users::email_scope.eq(scope))
        .select(UserRow::as_select())
        .order(users::id.asc())
        .limit(page.fetch_limit())
        .into_boxed();
    if let Some(after) = &page.after {
        q = q.filter(users::id.gt(after.clone()));
    }
    Ok(Page::from_rows(q.load(conn)?, page, |u| u.id.clone()))
}

pub fn disable(
    conn: &mut DbConnection,
    tenant_id: Option<&str>,
    id: &str,
    now: NaiveDateTime,
) -> Result<UserRow> {
    get_in_scope(conn, tenant_id, id)?;
    diesel::update(users::table.find(id))
        .set((
            users::status.eq(UserStatus::Disabled.as_str()),
            users::disabled_at.eq(Some(now)),
            users::updated_at.eq(now),
        ))
        .execute(conn)?;
    get(conn, id)
}

pub fn set_password_hash(
    conn: &mut DbConnection,
    id: &str,
    hash: &str,
    now: NaiveDateTime,
) -> Result<()> {
    diesel::update(users::table.find(id))
        .set((users::password_hash.eq(hash), users::updated_at.eq(now)))
        .execute(conn)?;
    Ok(())
}

pub fn count_active_with_role(conn: &mut DbConnection, role: Role) -> Result<i64> {
    Ok(users::table
        .filter(users::role.eq(role.as_str()))
        .filter(users::status.eq(UserStatus::Active.as_str()))
        .count()
        .get_result(conn)?)
}

/// The user with this e-mail in a scope, whatever its status.
pub fn find_any_by_email(
    conn: &mut DbConnection,
    email: &str,
    scope: &str,
) -> Result<Option<UserRow>> {
    Ok(users::table
        .filter(users::email.eq(email))
        .filter(users::email_scope.eq(scope))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

/// Re-enables a user with a role and a new password hash (the bootstrap admin's recovery).
pub fn reactivate_as(
    conn: &mut DbConnection,
    id: &str,
    role: Role,
    password_hash: &str,
    now: NaiveDateTime,
) -> Result<()> {
    diesel::update(users::table.find(id))
        .set((
            users::status.eq(UserStatus::Active.as_str()),
            users::role.eq(role.as_str()),
            users::password_hash.eq(password_hash),
            users::disabled_at.eq(None::<NaiveDateTime>),
            users::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Disables every user of a tenant (offboarding).
pub fn disable_all_for_tenant(
    conn: &mut DbConnection,
    tenant_id: &str,
    now: NaiveDateTime,
) -> Result<usize> {
    Ok(diesel::update(
        users::table
            .filter(users::email_scope.eq(tenant_id))
            .filter(users::status.eq(UserStatus::Active.as_str())),
    )
    .set((
        users::status.eq(UserStatus::Disabled.as_str()),
        users::disabled_at.eq(Some(now)),
        users::updated_at.eq(now),
    ))
    .execute(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(
            normalize_email(" Ann@Example.COM ").ok().as_deref(),
            Some("ann@example.com")
        );
        for bad in [
            "",
            "ann",
            "ann@",
            "@x.com",
            "a b@x.com",
            "ann@x",
            "a@b@c.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad}");
        }
    }
}
