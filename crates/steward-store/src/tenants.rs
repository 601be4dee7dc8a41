//! Tenant rows. A tenant is the controller whose data everything else belongs to.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde::Serialize;
use steward_core::{Error, Result};

use crate::connection::DbConnection;
use crate::pagination::{Page, PageRequest};
use crate::schema::tenants;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    Active,
    /// Offboarding has begun: the export is being made; no new data is accepted.
    Offboarding,
    /// Keys destroyed and rows deleted; only the record of that remains.
    Deleted,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Offboarding => "offboarding",
            TenantStatus::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "active" => Ok(TenantStatus::Active),
            "offboarding" => Ok(TenantStatus::Offboarding),
            "deleted" => Ok(TenantStatus::Deleted),
            _ => Err(Error::internal_msg("unknown tenant status in database")),
        }
    }
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = tenants)]
pub struct TenantRow {
    pub id: String,
    pub name: String,
    pub status: String,
    pub retention_days: Option<i64>,
    pub keys_destroyed_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl TenantRow {
    pub fn status(&self) -> Result<TenantStatus> {
        TenantStatus::parse(&self.status)
    }
}

pub fn insert(conn: &mut DbConnection, row: &TenantRow) -> Result<()> {
    diesel::insert_into(tenants::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// The tenant, or `NotFound`.
pub fn get(conn: &mut DbConnection, id: &str) -> Result<TenantRow> {
    // Every write to a tenant's data checks its status first (see `direct!`).
    crate::direct!(conn, |c| tenants::table
        .find(id)
        .select(TenantRow::as_select())
        .first(c)
        .optional())?
    .ok_or(Error::NotFound)
}

pub fn list(conn: &mut DbConnection, page: &PageRequest) -> Result<Page<TenantRow>> {
    let mut q = tenants::table
        .select(TenantRow::as_select())
        .order(tenants::id.asc())
        .limit(page.fetch_limit())
        .into_boxed();
    if let Some(after) = &page.after {
        q = q.filter(tenants::id.gt(after.clone()));
    }
    let rows = q.load(conn)?;
    Ok(Page::from_rows(rows, page, |t| t.id.clone()))
}

pub fn count(conn: &mut DbConnection) -> Result<i64> {
    Ok(tenants::table.count().get_result(conn)?)
}

pub fn set_status(
    conn: &mut DbConnection,
    id: &str,
    status: TenantStatus,
    now: NaiveDateTime,
) -> Result<()> {
    let n = diesel::update(tenants::table.find(id))
        .set((
            tenants::status.eq(status.as_str()),
            tenants::updated_at.eq(now),
        ))
        .execute(conn)?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

pub fn set_retention_days(
    conn: &mut DbConnection,
    id: &str,
    days: Option<i64>,
    now: NaiveDateTime,
) -> Result<()> {
    let n = diesel::update(tenants::table.find(id))
        .set((
            tenants::retention_days.eq(days),
            tenants::updated_at.eq(now),
        ))
        .execute(conn)?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}

pub fn mark_keys_destroyed(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> Result<()> {
    diesel::update(tenants::table.find(id))
        .set((
            tenants::keys_destroyed_at.eq(Some(now)),
            tenants::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Creates a tenant and its first keys in one unit of work: a tenant never exists without keys.
pub fn create(
    conn: &mut DbConnection,
    kek: &dyn steward_keys::KekProvider,
    name: String,
    now: NaiveDateTime,
) -> Result<TenantRow> {
    let row = TenantRow {
        id: steward_core::Id::Tenant.generate(),
        name,
        status: TenantStatus::Active.as_str().to_string(),
        retention_days: None,
        keys_destroyed_at: None,
        created_at: now,
        updated_at: now,
    };
    insert(conn, &row)?;
    crate::keys::create_initial(conn, kek, &row.id, now)?;
    Ok(row)
}

/// The KEK ids that wrap at least one tenant key (to check the configured master key fits
/// this database before serving).
pub fn kek_ids_in_use(conn: &mut DbConnection) -> Result<Vec<String>> {
    use crate::schema::tenant_keys;
    Ok(tenant_keys::table
        .select(tenant_keys::kek_id)
        .distinct()
        .load(conn)?)
}
