//! 256-bit secret keys and the one AEAD primitive every layer uses.

use std::fmt;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::error::{KeyError, Result};

/// Length of every key handled by this crate.
pub const KEY_LEN: usize = 32;

/// A 256-bit symmetric key whose bytes are wiped when it is dropped.
///
/// There is deliberately no `Debug` output of the bytes, no `Display`, no
/// `PartialEq` (a non-constant-time comparison of keys is never what you want).
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; KEY_LEN]>);

impl SecretKey {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(&mut bytes[..])?;
        Ok(Self(bytes))
    }

    /// Wrap existing key bytes. The caller's copy is *not* wiped; prefer
    /// passing a value that is not kept elsewhere.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// Copy key bytes out of a slice that must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        if bytes.len() != KEY_LEN {
            return Err(KeyError::InvalidInput("key must be exactly 32 bytes"));
        }
        key.copy_from_slice(bytes);
        Ok(Self(key))
    }

    /// The raw key bytes. Keep the borrow short and never log it.
    pub fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

pub(crate) fn fill_random(out: &mut [u8]) -> Result<()> {
    // SystemRandom is a zero-sized handle onto getrandom(2); creating one per
    // call costs nothing and avoids global state.
    SystemRandom::new().fill(out).map_err(|_| KeyError::Random)
}

pub(crate) fn random_nonce() -> Result<[u8; NONCE_LEN]> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    Ok(nonce)
}

// The AES key schedule is expanded per operation from the zeroizing bytes
// instead of being cached in a long-lived `LessSafeKey`: ring gives no way to
// wipe its key schedule, so caching it would leave key-equivalent material in
// memory for as long as a keyring lives (and after, in freed pages). The cost
// (an AES-NI key expansion plus the GHASH table) is well under a microsecond,
// see `benches/crypto.rs`; the short-lived copy on the stack is accepted.
fn aead_key(key: &SecretKey) -> Result<LessSafeKey> {
    UnboundKey::new(&AES_256_GCM, key.expose())
        .map(LessSafeKey::new)
        // Only fails for a wrong key length, which the type rules out.
        .map_err(|_| KeyError::InvalidInput("bad AES-256 key length"))
}

/// Encrypt `in_out` in place and return the tag.
pub(crate) fn seal_in_place(
    key: &SecretKey,
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    in_out: &mut [u8],
) -> Result<ring::aead::Tag> {
    aead_key(key)?
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), in_out)
        .map_err(|_| KeyError::Seal)
}

/// Decrypt `in_out` (ciphertext ‖ tag) in place; returns the plaintext length.
/// On failure the buffer contents are unspecified, so callers must keep it in
/// a zeroizing container.
pub(crate) fn open_in_place(
    key: &SecretKey,
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    in_out: &mut [u8],
) -> Result<usize, ()> {
    let aead = aead_key(key).map_err(|_| ())?;
    aead.open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad), in_out)
        .map(|plain| plain.len())
        .map_err(|_| ())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_print_bytes() {
        let key = SecretKey::from_bytes([0xAB; 32]);
        let shown = format!("{key:?}");
        assert_eq!(shown, "SecretKey(..)");
        assert!(!shown.to_lowercase().contains("ab"));
    }

    #[test]
    fn generate_gives_distinct_keys() {
        let a = SecretKey::generate().unwrap();
        let b = SecretKey::generate().unwrap();
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn from_slice_checks_length() {
        assert!(SecretKey::from_slice(&[1; 31]).is_err());
        assert!(SecretKey::from_slice(&[1; 33]).is_err());
        assert_eq!(SecretKey::from_slice(&[7; 32]).unwrap().expose(), &[7; 32]);
    }
}
