//! Tenant keys at rest: wrapped rows in `tenant_keys`, and the service that turns them into an
//! unwrapped, cached `TenantKeyring`. Unwrapped keys never touch the database.

use std::sync::Arc;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use steward_core::{Error, Result};
use steward_keys::{
    KekProvider, KeyCache, KeyError, KeyPurpose, TenantKeyring, WrappedKey, WrappedTenantKeys,
};

use crate::connection::DbConnection;
use crate::schema::{tenant_keys, tenants};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = tenant_keys)]
pub struct TenantKeyRow {
    pub tenant_id: String,
    pub purpose: String,
    pub version: i64,
    pub kek_id: String,
    pub wrapped: Vec<u8>,
    pub created_at: NaiveDateTime,
    pub retired_at: Option<NaiveDateTime>,
    pub destroyed_at: Option<NaiveDateTime>,
}

/// Key failures are never the caller's fault and never explained to them.
pub fn key_error(e: KeyError) -> Error {
    match e {
        KeyError::UnknownKek(_) => Error::internal_msg("tenant key wrapped by an unknown KEK"),
        KeyError::Unwrap => Error::internal_msg("tenant key failed to unwrap"),
        KeyError::Open => Error::internal_msg("sealed value failed to open"),
        other => Error::internal(other),
    }
}

pub fn gone() -> Error {
    Error::gone(
        "tenant_keys_destroyed",
        "this tenant's keys were destroyed; its data can no longer be read",
    )
}

fn version_u32(v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::internal_msg("key version out of range"))
}

fn rows_for(tenant_id: &str, wrapped: &WrappedTenantKeys, now: NaiveDateTime) -> Vec<TenantKeyRow> {
    let mut rows: Vec<TenantKeyRow> = wrapped
        .data_keys
        .iter()
        .map(|(v, w)| TenantKeyRow {
            tenant_id: tenant_id.to_string(),
            purpose: KeyPurpose::Data.as_str().to_string(),
            version: i64::from(*v),
            kek_id: w.kek_id.clone(),
            wrapped: w.bytes.clone(),
            created_at: now,
            retired_at: None,
            destroyed_at: None,
        })
        .collect();
    rows.push(TenantKeyRow {
        tenant_id: tenant_id.to_string(),
        purpose: KeyPurpose::BlindIndex.as_str().to_string(),
        version: i64::from(steward_keys::INDEX_KEY_VERSION),
        kek_id: wrapped.index_key.kek_id.clone(),
        wrapped: wrapped.index_key.bytes.clone(),
        created_at: now,
        retired_at: None,
        destroyed_at: None,
    });
    rows
}

/// Creates a tenant's first keys (data key v1 and the blind-index key). Call it in the same
/// unit of work that inserts the tenant.
pub fn create_initial(
    conn: &mut DbConnection,
    kek: &dyn KekProvider,
    tenant_id: &str,
    now: NaiveDateTime,
) -> Result<TenantKeyring> {
    let keyring = TenantKeyring::generate(tenant_id.to_string(), 1).map_err(key_error)?;
    let wrapped = keyring.wrap_keys(kek).map_err(key_error)?;
    for row in rows_for(tenant_id, &wrapped, now) {
        diesel::insert_into(tenant_keys::table)
            .values(&row)
            .execute(conn)?;
    }
    Ok(keyring)
}

pub fn rows(conn: &mut DbConnection, tenant_id: &str) -> Result<Vec<TenantKeyRow>> {
    Ok(tenant_keys::table
        .filter(tenant_keys::tenant_id.eq(tenant_id))
        .select(TenantKeyRow::as_select())
        .order((tenant_keys::purpose.asc(), tenant_keys::version.asc()))
        .load(conn)?)
}

/// `NotFound` for a tenant that does not exist, `Gone` once its keys were destroyed.
fn ensure_keys_live(conn: &mut DbConnection, tenant_id: &str) -> Result<()> {
    let destroyed: Option<Option<NaiveDateTime>> = tenants::table
        .find(tenant_id)
        .select(tenants::keys_destroyed_at)
        .first(conn)
        .optional()?;
    match destroyed {
        None => Err(Error::NotFound),
        Some(Some(_)) => Err(gone()),
        Some(None) => Ok(()),
    }
}

/// Reads and unwraps a tenant's keys. `Gone` once they were destroyed; `NotFound` for a tenant
/// that does not exist.
pub fn load(
    conn: &mut DbConnection,
    kek: &dyn KekProvider,
    tenant_id: &str,
) -> Result<TenantKeyring> {
    ensure_keys_live(conn, tenant_id)?;
    let rows = rows(conn, tenant_id)?;
    let mut data_keys = Vec::new();
    let mut index_key = None;
    for row in rows {
        let wrapped = WrappedKey {
            kek_id: row.kek_id,
            bytes: row.wrapped,
        };
        match row.purpose.parse::<KeyPurpose>() {
            Ok(KeyPurpose::Data) => data_keys.push((version_u32(row.version)?, wrapped)),
            Ok(KeyPurpose::BlindIndex) => index_key = Some(wrapped),
            Err(_) => return Err(Error::internal_msg("unknown key purpose in database")),
        }
    }
    let index_key = index_key.ok_or_else(|| Error::internal_msg("tenant has no index key"))?;
    let wrapped = WrappedTenantKeys {
        data_keys,
        index_key,
    };
    TenantKeyring::unwrap_keys(kek, tenant_id.to_string(), &wrapped).map_err(key_error)
}

/// Adds a new data-key version; new writes use it at once. Returns the new version;
/// `NotFound` for a tenant that does not exist (not `Gone`: that would claim it once had keys).
pub fn rotate_data_key(
    conn: &mut DbConnection,
    kek: &dyn KekProvider,
    tenant_id: &str,
    now: NaiveDateTime,
) -> Result<u32> {
    ensure_keys_live(conn, tenant_id)?;
    let current: Option<i64> = tenant_keys::table
        .filter(tenant_keys::tenant_id.eq(tenant_id))
        .filter(tenant_keys::purpose.eq(KeyPurpose::Data.as_str()))
        .select(diesel::dsl::max(tenant_keys::version))
        .first(conn)?;
    let current = current.ok_or_else(gone)?;
    let next = version_u32(current)?
        .checked_add(1)
        .ok_or_else(|| Error::internal_msg("key version overflow"))?;
    let key = steward_keys::SecretKey::generate().map_err(key_error)?;
    let aad = steward_keys::key_wrap_aad(tenant_id, KeyPurpose::Data, next);
    let wrapped = kek.wrap(&key, &aad).map_err(key_error)?;
    diesel::update(
        tenant_keys::table
            .filter(tenant_keys::tenant_id.eq(tenant_id))
            .filter(tenant_keys::purpose.eq(KeyPurpose::Data.as_str()))
            .filter(tenant_keys::retired_at.is_null()),
    )
    .set(tenant_keys::retired_at.eq(Some(now)))
    .execute(conn)?;
    diesel::insert_into(tenant_keys::table)
        .values(&TenantKeyRow {
            tenant_id: tenant_id.to_string(),
            purpose: KeyPurpose::Data.as_str().to_string(),
            version: i64::from(next),
            kek_id: wrapped.kek_id,
            wrapped: wrapped.bytes,
            created_at: now,
            retired_at: None,
            destroyed_at: None,
        })
        .execute(conn)?;
    Ok(next)
}

/// Crypto-shredding: deletes every wrapped key of the tenant and records when. Afterwards no
/// sealed value of the tenant can be opened by anyone, master key or not.
pub fn destroy(conn: &mut DbConnection, tenant_id: &str, now: NaiveDateTime) -> Result<usize> {
    let n = diesel::delete(tenant_keys::table.filter(tenant_keys::tenant_id.eq(tenant_id)))
        .execute(conn)?;
    crate::tenants::mark_keys_destroyed(conn, tenant_id, now)?;
    Ok(n)
}

/// Old data-key versions still referenced by rows: everything before `current`.
pub fn data_key_versions(conn: &mut DbConnection, tenant_id: &str) -> Result<Vec<u32>> {
    let v: Vec<i64> = tenant_keys::table
        .filter(tenant_keys::tenant_id.eq(tenant_id))
        .filter(tenant_keys::purpose.eq(KeyPurpose::Data.as_str()))
        .select(tenant_keys::version)
        .order(tenant_keys::version.asc())
        .load(conn)?;
    v.into_iter().map(version_u32).collect()
}

/// Every wrapped key not yet under `kek`'s current KEK (for `keys rotate-master`), in a
/// stable order so the walk is resumable.
pub fn rows_not_under(
    conn: &mut DbConnection,
    kek_id: &str,
    limit: i64,
) -> Result<Vec<TenantKeyRow>> {
    Ok(tenant_keys::table
        .filter(tenant_keys::kek_id.ne(kek_id))
        .select(TenantKeyRow::as_select())
        .order((
            tenant_keys::tenant_id.asc(),
            tenant_keys::purpose.asc(),
            tenant_keys::version.asc(),
        ))
        .limit(limit)
        .load(conn)?)
}

pub fn count_all(conn: &mut DbConnection) -> Result<i64> {
    Ok(tenant_keys::table.count().get_result(conn)?)
}

pub fn count_not_under(conn: &mut DbConnection, kek_id: &str) -> Result<i64> {
    Ok(tenant_keys::table
        .filter(tenant_keys::kek_id.ne(kek_id))
        .count()
        .get_result(conn)?)
}

/// Re-wraps one key row under the provider's current KEK. The AAD is rebuilt from the row, so
/// a row whose tenant, purpose or version was altered fails to unwrap.
pub fn rewrap_row(
    conn: &mut DbConnection,
    kek: &dyn KekProvider,
    row: &TenantKeyRow,
) -> Result<()> {
    let purpose: KeyPurpose = row
        .purpose
        .parse()
        .map_err(|_| Error::internal_msg("unknown key purpose in database"))?;
    let aad = steward_keys::key_wrap_aad(&row.tenant_id, purpose, version_u32(row.version)?);
    let key = kek
        .unwrap(
            &WrappedKey {
                kek_id: row.kek_id.clone(),
                bytes: row.wrapped.clone(),
            },
            &aad,
        )
        .map_err(key_error)?;
    let rewrapped = kek.wrap(&key, &aad).map_err(key_error)?;
    diesel::update(tenant_keys::table.find((&row.tenant_id, &row.purpose, row.version)))
        .set((
            tenant_keys::kek_id.eq(rewrapped.kek_id),
            tenant_keys::wrapped.eq(rewrapped.bytes),
        ))
        .execute(conn)?;
    Ok(())
}

/// Hands out unwrapped keyrings, cached in memory (bounded, zeroized on eviction).
#[derive(Clone)]
pub struct KeyService {
    kek: Arc<dyn KekProvider>,
    cache: Arc<KeyCache>,
}

impl std::fmt::Debug for KeyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyService")
            .field("kek_id", &self.kek.current_kek_id())
            .finish()
    }
}

impl KeyService {
    pub fn new(kek: Arc<dyn KekProvider>, cache_capacity: usize) -> Self {
        Self {
            kek,
            cache: Arc::new(KeyCache::new(cache_capacity)),
        }
    }

    pub fn kek(&self) -> &dyn KekProvider {
        self.kek.as_ref()
    }

    pub fn kek_arc(&self) -> Arc<dyn KekProvider> {
        self.kek.clone()
    }

    /// The tenant's keyring, from the cache or the database.
    pub fn keyring(&self, conn: &mut DbConnection, tenant_id: &str) -> Result<Arc<TenantKeyring>> {
        if let Some(k) = self.cache.get(tenant_id) {
            return Ok(k);
        }
        let keyring = Arc::new(load(conn, self.kek.as_ref(), tenant_id)?);
        self.cache.insert(keyring.clone());
        Ok(keyring)
    }

    /// Reloads from the database (after a rotation by another process, say).
    pub fn reload(&self, conn: &mut DbConnection, tenant_id: &str) -> Result<Arc<TenantKeyring>> {
        self.cache.invalidate(tenant_id);
        self.keyring(conn, tenant_id)
    }

    pub fn forget(&self, tenant_id: &str) {
        self.cache.invalidate(tenant_id);
    }
}
