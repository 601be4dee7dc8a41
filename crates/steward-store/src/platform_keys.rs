//! The platform's own secrets — the key that signs access tokens, the key that signs audit
//! checkpoints — stored like tenant keys: sealed under a random key that the KEK wraps, so a
//! master-key rotation re-wraps them too and a database dump alone reveals nothing.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use steward_core::{Error, Result};
use steward_keys::{
    KekProvider, RecordKind, SealContext, SecretKey, TenantKeyring, WrappedKey, Zeroizing,
};

use crate::connection::DbConnection;
use crate::keys::key_error;
use crate::schema::platform_keys;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = platform_keys)]
pub struct PlatformKeyRow {
    pub id: String,
    pub purpose: String,
    pub kek_id: String,
    pub wrapped_key: Vec<u8>,
    pub sealed_secret: Vec<u8>,
    pub public_key: Vec<u8>,
    pub created_at: NaiveDateTime,
    pub retired_at: Option<NaiveDateTime>,
}

fn wrap_aad(id: &str) -> Vec<u8> {
    let mut aad = b"steward.platform-key.v1\0".to_vec();
    aad.extend_from_slice(id.as_bytes());
    aad
}

fn sealer(id: &str, key: SecretKey) -> Result<TenantKeyring> {
    TenantKeyring::new(format!("platform:{id}"), vec![(1, key.clone())], key).map_err(key_error)
}

fn context(owner: &str, id: &str) -> (String, String) {
    (owner.to_string(), id.to_string())
}

/// Stores `secret` (e.g. a PKCS#8 document) under a fresh wrapped key.
pub fn insert(
    conn: &mut DbConnection,
    kek: &dyn KekProvider,
    id: &str,
    purpose: &str,
    secret: &[u8],
    public_key: &[u8],
    now: NaiveDateTime,
) -> Result<()> {
    let key = SecretKey::generate().map_err(key_error)?;
    let wrapped = kek.wrap(&key, &wrap_aad(id)).map_err(key_error)?;
    let (owner, rid) = context(&format!("platform:{id}"), id);
    let ring = sealer(id, key)?;
    let sealed = ring
        .seal(
            &SealContext::new(&owner, RecordKind::Other("platform_key"), &rid, purpose),
            secret,
        )
        .map_err(key_error)?;
    diesel::insert_into(platform_keys::table)
        .values(&PlatformKeyRow {
            id: id.to_string(),
            purpose: purpose.to_string(),
            kek_id: wrapped.kek_id,
            wrapped_key: wrapped.bytes,
            sealed_secret: sealed,
            public_key: public_key.to_vec(),
            created_at: now,
            retired_at: None,
        })
        .execute(conn)?;
    Ok(())
}

/// Every key of a purpose, newest first (retired ones too: they still verify old signatures).
pub fn list(conn: &mut DbConnection, purpose: &str) -> Result<Vec<PlatformKeyRow>> {
    Ok(platform_keys::table
        .filter(platform_keys::purpose.eq(purpose))
        .select(PlatformKeyRow::as_select())
        .order((platform_keys::created_at.desc(), platform_keys::id.desc()))
        .load(conn)?)
}

/// Opens a stored secret.
pub fn open(kek: &dyn KekProvider, row: &PlatformKeyRow) -> Result<Zeroizing<Vec<u8>>> {
    let key = kek
        .unwrap(
            &WrappedKey {
                kek_id: row.kek_id.clone(),
                bytes: row.wrapped_key.clone(),
            },
            &wrap_aad(&row.id),
        )
        .map_err(key_error)?;
    let (owner, rid) = context(&format!("platform:{}", row.id), &row.id);
    let ring = sealer(&row.id, key)?;
    ring.open(
        &SealContext::new(
            &owner,
            RecordKind::Other("platform_key"),
            &rid,
            &row.purpose,
        ),
        &row.sealed_secret,
    )
    .map_err(key_error)
}

pub fn rows_not_under(conn: &mut DbConnection, kek_id: &str) -> Result<Vec<PlatformKeyRow>> {
    Ok(platform_keys::table
        .filter(platform_keys::kek_id.ne(kek_id))
        .select(PlatformKeyRow::as_select())
        .load(conn)?)
}

pub fn kek_ids_in_use(conn: &mut DbConnection) -> Result<Vec<String>> {
    Ok(platform_keys::table
        .select(platform_keys::kek_id)
        .distinct()
        .load(conn)?)
}

/// Re-wraps the row's key under the provider's current KEK; the sealed secret is untouched.
pub fn rewrap(conn: &mut DbConnection, kek: &dyn KekProvider, row: &PlatformKeyRow) -> Result<()> {
    let aad = wrap_aad(&row.id);
    let key = kek
        .unwrap(
            &WrappedKey {
                kek_id: row.kek_id.clone(),
                bytes: row.wrapped_key.clone(),
            },
            &aad,
        )
        .map_err(key_error)?;
    let w = kek.wrap(&key, &aad).map_err(key_error)?;
    let n = diesel::update(platform_keys::table.find(&row.id))
        .set((
            platform_keys::kek_id.eq(w.kek_id),
            platform_keys::wrapped_key.eq(w.bytes),
        ))
        .execute(conn)?;
    if n == 0 {
        return Err(Error::NotFound);
    }
    Ok(())
}
