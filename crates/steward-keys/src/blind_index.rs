//! Blind indexes: deterministic keyed hashes that let the database find a
//! visitor by e-mail or phone without storing either in the clear.
//!
//! The key is per tenant, so equal values in two tenants give unrelated
//! indexes (no cross-tenant correlation), and the kind name is hashed in so an
//! e-mail index can never match a phone index. Values must be normalized first
//! (see [`crate::normalize`]), otherwise "Alice@x" and "alice@x" miss each other.

use std::fmt;
use std::str::FromStr;

use ring::hmac;

use crate::error::KeyError;
use crate::secret::SecretKey;

/// Length of a blind index.
pub const BLIND_INDEX_LEN: usize = 32;

/// What a blind index is computed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IndexKind {
    /// A normalized e-mail address ([`crate::normalize::email`]).
    Email,
    /// A normalized E.164 phone number ([`crate::normalize::phone_e164`]).
    Phone,
    /// A customer-supplied external reference.
    ExternalRef,
}

impl IndexKind {
    /// Stable name, hashed into the index. Changing it invalidates every index.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
            Self::ExternalRef => "external_ref",
        }
    }
}

impl fmt::Display for IndexKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IndexKind {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "email" => Ok(Self::Email),
            "phone" => Ok(Self::Phone),
            "external_ref" => Ok(Self::ExternalRef),
            _ => Err(KeyError::InvalidInput("unknown index kind")),
        }
    }
}

/// HMAC-SHA256 under `key` over `kind ‖ 0x00 ‖ value`. Kind names contain no
/// NUL, so the encoding is unambiguous.
///
/// The HMAC key is rebuilt per call rather than cached, for the same reason as
/// the AES keys: ring cannot wipe its precomputed HMAC state.
pub fn compute(key: &SecretKey, kind: IndexKind, normalized_value: &str) -> [u8; BLIND_INDEX_LEN] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key.expose());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(kind.as_str().as_bytes());
    ctx.update(&[0]);
    ctx.update(normalized_value.as_bytes());
    let tag = ctx.sign();
    let mut out = [0u8; BLIND_INDEX_LEN];
    for (dst, src) in out.iter_mut().zip(tag.as_ref()) {
        *dst = *src;
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn matches_plain_hmac() {
        let key = SecretKey::from_bytes([3; 32]);
        let expected = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &[3; 32]),
            b"email\0a@b.c",
        );
        assert_eq!(compute(&key, IndexKind::Email, "a@b.c"), expected.as_ref());
    }

    #[test]
    fn kinds_are_separated() {
        let key = SecretKey::from_bytes([3; 32]);
        assert_ne!(
            compute(&key, IndexKind::Email, "x"),
            compute(&key, IndexKind::Phone, "x")
        );
    }

    #[test]
    fn kind_round_trips() {
        for k in [IndexKind::Email, IndexKind::Phone, IndexKind::ExternalRef] {
            assert_eq!(k.as_str().parse::<IndexKind>().unwrap(), k);
        }
        assert!("nope".parse::<IndexKind>().is_err());
    }
}
