//! The sealed-value wire format.
//!
//! ```text
//! byte 0        format version (1)
//! bytes 1..5    data-key version, u32 big-endian
//! bytes 5..17   96-bit random nonce
//! bytes 17..    AES-256-GCM ciphertext ‖ 16-byte tag
//! ```
//!
//! The key version sits in the clear so a reader knows which key to use and a
//! re-encryption job can find rows still on an old key without decrypting;
//! the whole header is also part of the AAD, so it cannot be altered.
//! Random 96-bit nonces are safe here because each data key seals far fewer
//! than 2^32 values before it is rotated.

use crate::error::{KeyError, Result};

/// The only format version this crate writes or reads.
pub const FORMAT_VERSION: u8 = 1;
/// AES-GCM nonce length.
pub const NONCE_LEN: usize = 12;
/// AES-GCM tag length.
pub const TAG_LEN: usize = 16;
/// Bytes before the ciphertext.
pub const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
/// Total size added to a plaintext by sealing.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// The decoded header of a sealed value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SealedHeader {
    /// Wire-format version; always [`FORMAT_VERSION`] after a successful decode.
    pub format_version: u8,
    /// Version of the tenant data key that sealed the value.
    pub key_version: u32,
    /// The AES-GCM nonce.
    pub nonce: [u8; NONCE_LEN],
}

impl SealedHeader {
    /// The header's wire bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let (fv, rest) = out.split_at_mut(1);
        let (kv, nonce) = rest.split_at_mut(4);
        fv.copy_from_slice(&[self.format_version]);
        kv.copy_from_slice(&self.key_version.to_be_bytes());
        nonce.copy_from_slice(&self.nonce);
        out
    }
}

/// Split a sealed value into its header and body (ciphertext ‖ tag).
///
/// Total over all inputs: never panics, and rejects unknown format versions
/// and bodies too short to hold a tag. It does not authenticate anything —
/// the header is only trustworthy after a successful open.
pub fn decode(bytes: &[u8]) -> Result<(SealedHeader, &[u8])> {
    let (&format_version, rest) = bytes
        .split_first()
        .ok_or(KeyError::Malformed("empty sealed value"))?;
    if format_version != FORMAT_VERSION {
        return Err(KeyError::Malformed("unsupported format version"));
    }
    let (key_version, rest) = rest
        .split_first_chunk::<4>()
        .ok_or(KeyError::Malformed("truncated header"))?;
    let (nonce, body) = rest
        .split_first_chunk::<NONCE_LEN>()
        .ok_or(KeyError::Malformed("truncated header"))?;
    if body.len() < TAG_LEN {
        return Err(KeyError::Malformed("body shorter than the tag"));
    }
    Ok((
        SealedHeader {
            format_version,
            key_version: u32::from_be_bytes(*key_version),
            nonce: *nonce,
        },
        body,
    ))
}

/// The data-key version a sealed value claims (unauthenticated), for finding
/// rows that still need re-encryption.
pub fn key_version_of(sealed: &[u8]) -> Result<u32> {
    decode(sealed).map(|(header, _)| header.key_version)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn sample(body_len: usize) -> Vec<u8> {
        let header = SealedHeader {
            format_version: FORMAT_VERSION,
            key_version: 0x0102_0304,
            nonce: [9; NONCE_LEN],
        };
        let mut out = header.encode().to_vec();
        out.extend(std::iter::repeat_n(0xEE, body_len));
        out
    }

    #[test]
    fn decode_round_trips_header() {
        let bytes = sample(TAG_LEN + 3);
        let (header, body) = decode(&bytes).unwrap();
        assert_eq!(header.format_version, 1);
        assert_eq!(header.key_version, 0x0102_0304);
        assert_eq!(header.nonce, [9; NONCE_LEN]);
        assert_eq!(body.len(), TAG_LEN + 3);
        assert_eq!(key_version_of(&bytes).unwrap(), 0x0102_0304);
    }

    #[test]
    fn decode_accepts_empty_plaintext() {
        assert!(decode(&sample(TAG_LEN)).is_ok());
    }

    #[test]
    fn decode_rejects_every_truncation() {
        let bytes = sample(TAG_LEN);
        for len in 0..bytes.len() {
            assert!(
                matches!(decode(&bytes[..len]), Err(KeyError::Malformed(_))),
                "len {len}"
            );
        }
    }

    #[test]
    fn decode_rejects_unknown_format() {
        for v in [0u8, 2, 0xFF] {
            let mut bytes = sample(TAG_LEN);
            bytes[0] = v;
            assert!(matches!(decode(&bytes), Err(KeyError::Malformed(_))));
        }
    }
}
