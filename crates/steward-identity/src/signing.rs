//! The token-signing key: generated once, stored sealed under the KEK (`platform_keys`), and
//! loaded by every server process so tokens from one verify on all.

use std::sync::Arc;

use steward_core::{Clock, Result};
use steward_keys::KekProvider;
use steward_store::{platform_keys, Store};

use crate::jwt::{SigningKey, TokenIssuer};

pub const PURPOSE: &str = "jwt_signing";

/// Loads the newest signing key (creating one on an empty database) and every older key for
/// verification.
pub fn load_or_create_issuer(
    store: &Store,
    kek: Arc<dyn KekProvider>,
    clock: Arc<dyn Clock>,
) -> Result<TokenIssuer> {
    let mut rows = store.read_blocking(|c| platform_keys::list(c, PURPOSE))?;
    if rows.is_empty() {
        let key = SigningKey::generate()?;
        let now = clock.now().naive_utc();
        let k = kek.clone();
        let (kid, pkcs8, public) = (
            key.kid.clone(),
            key.pkcs8_der().to_vec(),
            key.public_key().to_vec(),
        );
        store.write_blocking(move |c| {
            platform_keys::insert(c, k.as_ref(), &kid, PURPOSE, &pkcs8, &public, now)
        })?;
        rows = store.read_blocking(|c| platform_keys::list(c, PURPOSE))?;
    }
    let mut rows = rows.into_iter();
    let newest = rows
        .next()
        .ok_or_else(|| steward_core::Error::internal_msg("no signing key"))?;
    let pkcs8 = platform_keys::open(kek.as_ref(), &newest)?;
    let issuer = TokenIssuer::new(SigningKey::from_pkcs8(newest.id.clone(), &pkcs8)?, clock);
    for older in rows {
        issuer.add_verification_key(older.id.clone(), &older.public_key)?;
    }
    Ok(issuer)
}

/// Adds verification keys created by other processes since start-up (a token naming a kid we
/// have not seen). Returns whether any was added.
pub fn refresh_verification_keys(store: &Store, issuer: &TokenIssuer) -> Result<bool> {
    let rows = store.read_blocking(|c| platform_keys::list(c, PURPOSE))?;
    let mut added = false;
    for row in rows {
        if !issuer.has_verification_key(&row.id) {
            issuer.add_verification_key(row.id.clone(), &row.public_key)?;
            added = true;
        }
    }
    Ok(added)
}
