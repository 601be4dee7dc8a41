//! Client credentials of subprocessors: a client id and a secret shown once, exchanged at
//! `POST /v1/auth/token` for a short-lived token.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use steward_core::{Error, Id, Result};
use steward_store::DbConnection;

use crate::schema::clients;
use crate::secrets::{generate_client_secret, hash_secret, verify_secret, Secret};

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = clients)]
pub struct ClientRow {
    pub id: String,
    pub subprocessor_id: String,
    pub secret_hash: Vec<u8>,
    pub created_at: NaiveDateTime,
    pub revoked_at: Option<NaiveDateTime>,
}

pub struct CreatedClient {
    pub row: ClientRow,
    pub secret: Secret,
}

pub fn create(
    conn: &mut DbConnection,
    subprocessor_id: &str,
    now: NaiveDateTime,
) -> Result<CreatedClient> {
    let secret = generate_client_secret()?;
    let row = ClientRow {
        id: Id::Client.generate(),
        subprocessor_id: subprocessor_id.to_string(),
        secret_hash: hash_secret(secret.expose()),
        created_at: now,
        revoked_at: None,
    };
    diesel::insert_into(clients::table)
        .values(&row)
        .execute(conn)?;
    Ok(CreatedClient { row, secret })
}

/// The client, if the id and secret match and it is not revoked. Unknown id and wrong secret
/// answer the same.
pub fn authenticate(conn: &mut DbConnection, client_id: &str, secret: &str) -> Result<ClientRow> {
    let invalid = || Error::Unauthenticated {
        detail: "invalid client credentials",
    };
    let row: Option<ClientRow> = clients::table
        .find(client_id)
        .select(ClientRow::as_select())
        .first(conn)
        .optional()?;
    match row {
        Some(row) if verify_secret(secret, &row.secret_hash) && row.revoked_at.is_none() => Ok(row),
        Some(_) => Err(invalid()),
        None => {
            // Same work as a real comparison.
            let _ = verify_secret(secret, &[0u8; 32]);
            Err(invalid())
        }
    }
}

/// A live client (for checking tokens issued to it).
pub fn get_active(conn: &mut DbConnection, client_id: &str) -> Result<ClientRow> {
    clients::table
        .find(client_id)
        .filter(clients::revoked_at.is_null())
        .select(ClientRow::as_select())
        .first(conn)
        .optional()?
        .ok_or(Error::Unauthenticated {
            detail: "invalid or expired token",
        })
}

pub fn revoke_all_for(
    conn: &mut DbConnection,
    subprocessor_id: &str,
    now: NaiveDateTime,
) -> Result<usize> {
    Ok(diesel::update(
        clients::table
            .filter(clients::subprocessor_id.eq(subprocessor_id))
            .filter(clients::revoked_at.is_null()),
    )
    .set(clients::revoked_at.eq(Some(now)))
    .execute(conn)?)
}
