//! Machine secrets: API keys (`stw_…`) and subprocessor client secrets (`stwcs_…`).
//!
//! Each carries 256 random bits, so guessing is hopeless and a slow password hash would only
//! make every API request slow. They are stored as a SHA-256 digest: a leaked table gives an
//! attacker nothing usable, and the digest doubles as the lookup key (unique index), after
//! which the stored value is compared in constant time.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use steward_core::{Error, Result};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

pub const API_KEY_PREFIX: &str = "stw_";
pub const CLIENT_SECRET_PREFIX: &str = "stwcs_";

const SECRET_BYTES: usize = 32;
/// base64url without padding of 32 bytes.
const ENCODED_LEN: usize = 43;

pub const API_KEY_LEN: usize = API_KEY_PREFIX.len() + ENCODED_LEN;
pub const CLIENT_SECRET_LEN: usize = CLIENT_SECRET_PREFIX.len() + ENCODED_LEN;

/// A secret in plain text, shown to its owner exactly once. Wiped from memory on drop and
/// never printed by `Debug`.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// The plain text, for the one response that hands it out.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(Zeroizing::new(s))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

fn generate_with_prefix(prefix: &str) -> Result<Secret> {
    let mut bytes = Zeroizing::new([0u8; SECRET_BYTES]);
    SystemRandom::new()
        .fill(bytes.as_mut())
        .map_err(|_| Error::internal_msg("system random number generator failed"))?;
    let mut s = Zeroizing::new(String::with_capacity(prefix.len() + ENCODED_LEN));
    s.push_str(prefix);
    URL_SAFE_NO_PAD.encode_string(bytes.as_ref(), &mut s);
    Ok(Secret(s))
}

/// A new API key: `stw_` followed by 256 random bits in base64url.
pub fn generate_api_key_secret() -> Result<Secret> {
    generate_with_prefix(API_KEY_PREFIX)
}

/// A new subprocessor client secret: `stwcs_` followed by 256 random bits in base64url.
pub fn generate_client_secret() -> Result<Secret> {
    generate_with_prefix(CLIENT_SECRET_PREFIX)
}

/// The stored form of a secret: its SHA-256 digest (32 bytes).
pub fn hash_secret(secret: &str) -> Vec<u8> {
    digest(&SHA256, secret.as_bytes()).as_ref().to_vec()
}

/// Whether `secret` hashes to `stored_hash`, compared in constant time.
pub fn verify_secret(secret: &str, stored_hash: &[u8]) -> bool {
    let computed = digest(&SHA256, secret.as_bytes());
    // `ct_eq` on slices of different lengths is simply false.
    computed.as_ref().ct_eq(stored_hash).into()
}

fn has_shape(token: &str, prefix: &str, len: usize) -> bool {
    token.len() == len
        && token.strip_prefix(prefix).is_some_and(|body| {
            body.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Whether a bearer credential has the shape of an API key, so the auth extractor can tell
/// it from a JWT (which always contains dots) without any lookup.
pub fn looks_like_api_key(token: &str) -> bool {
    has_shape(token, API_KEY_PREFIX, API_KEY_LEN)
}

/// Whether a credential has the shape of a client secret.
pub fn looks_like_client_secret(token: &str) -> bool {
    has_shape(token, CLIENT_SECRET_PREFIX, CLIENT_SECRET_LEN)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn api_keys_have_prefix_length_and_entropy() {
        let a = generate_api_key_secret().unwrap();
        let b = generate_api_key_secret().unwrap();
        assert!(a.expose().starts_with("stw_"));
        assert_eq!(a.expose().len(), API_KEY_LEN);
        assert_eq!(API_KEY_LEN, 47);
        assert_ne!(a.expose(), b.expose());
        let body = URL_SAFE_NO_PAD.decode(&a.expose()[4..]).unwrap();
        assert_eq!(body.len(), 32);
        assert!(looks_like_api_key(a.expose()));
        assert!(!looks_like_client_secret(a.expose()));
    }

    #[test]
    fn client_secrets_have_their_own_prefix() {
        let s = generate_client_secret().unwrap();
        assert!(s.expose().starts_with("stwcs_"));
        assert_eq!(s.expose().len(), CLIENT_SECRET_LEN);
        assert!(looks_like_client_secret(s.expose()));
        assert!(!looks_like_api_key(s.expose()));
    }

    #[test]
    fn hash_and_verify() {
        let s = generate_api_key_secret().unwrap();
        let stored = hash_secret(s.expose());
        assert_eq!(stored.len(), 32);
        assert!(verify_secret(s.expose(), &stored));
        let other = generate_api_key_secret().unwrap();
        assert!(!verify_secret(other.expose(), &stored));
        assert!(!verify_secret(s.expose(), &stored[..31]));
        assert!(!verify_secret(s.expose(), &[]));
    }

    #[test]
    fn known_digest() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        let h = hash_secret("abc");
        assert_eq!(
            h[..4],
            [0xba, 0x78, 0x16, 0xbf],
            "stored hashes must stay plain SHA-256 across versions"
        );
    }

    #[test]
    fn debug_is_redacted() {
        let s = generate_api_key_secret().unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains(s.expose()));
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn jwts_and_junk_are_not_api_keys() {
        assert!(!looks_like_api_key(
            "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.sig"
        ));
        assert!(!looks_like_api_key("stw_"));
        assert!(!looks_like_api_key(&format!("stw_{}", "a".repeat(42))));
        assert!(!looks_like_api_key(&format!("stw_{}", "a".repeat(44))));
        assert!(!looks_like_api_key(&format!("stw_{}.", "a".repeat(42))));
        assert!(!looks_like_api_key(&format!("STW_{}", "a".repeat(43))));
        assert!(looks_like_api_key(&format!("stw_{}", "a".repeat(43))));
        // Multi-byte characters cannot sneak past the length check.
        assert!(!looks_like_api_key(&format!("stw_{}é", "a".repeat(41))));
    }

    proptest! {
        #[test]
        fn verify_accepts_only_the_hashed_secret(a in "\\PC{0,64}", b in "\\PC{0,64}") {
            let stored = hash_secret(&a);
            prop_assert!(verify_secret(&a, &stored));
            prop_assert_eq!(verify_secret(&b, &stored), a == b);
        }

        #[test]
        fn looks_like_api_key_never_panics(s in "\\PC{0,80}") {
            let _ = looks_like_api_key(&s);
            let _ = looks_like_client_secret(&s);
        }
    }
}
