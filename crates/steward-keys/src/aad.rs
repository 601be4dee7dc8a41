//! Associated data: what a ciphertext is cryptographically bound to.
//!
//! Every AAD is a sequence of length-prefixed fields (u64 big-endian length,
//! then the bytes) starting with a versioned domain string. Length prefixes make
//! the encoding injective — ("ab","c") and ("a","bc") differ — and the domain
//! string keeps a wrapped key from ever being accepted as a sealed value or vice
//! versa, even under the same key.

use std::fmt;
use std::str::FromStr;

use crate::error::KeyError;

const KEY_WRAP_DOMAIN: &str = "steward.keywrap.v1";
const SEAL_DOMAIN: &str = "steward.seal.v1";

fn push_field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// What a tenant key is used for; part of the wrapping AAD so a blind-index key
/// can never be unwrapped as a data key (or the reverse).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyPurpose {
    /// Encrypts field values (AES-256-GCM).
    Data,
    /// Keys the HMAC used for blind indexes.
    BlindIndex,
}

impl KeyPurpose {
    /// Stable name, used in AADs and suitable for storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Data => "data",
            Self::BlindIndex => "blind_index",
        }
    }
}

impl fmt::Display for KeyPurpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyPurpose {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "data" => Ok(Self::Data),
            "blind_index" => Ok(Self::BlindIndex),
            _ => Err(KeyError::InvalidInput("unknown key purpose")),
        }
    }
}

/// AAD for wrapping one tenant key under the KEK: binds the wrapped key to its
/// tenant, purpose and version, so a wrapped key copied to another tenant's row
/// (or another purpose/version slot) fails to unwrap.
pub fn key_wrap_aad(tenant_id: &str, purpose: KeyPurpose, version: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + tenant_id.len());
    push_field(&mut out, KEY_WRAP_DOMAIN.as_bytes());
    push_field(&mut out, tenant_id.as_bytes());
    push_field(&mut out, purpose.as_str().as_bytes());
    push_field(&mut out, &version.to_be_bytes());
    out
}

/// The kind of record a sealed field belongs to.
///
/// `Other` names must not collide with the built-in names ("visitor",
/// "consent", "export"): the AAD uses the name, so a collision would make two
/// kinds interchangeable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// A visitor (data subject) row.
    Visitor,
    /// A consent record.
    Consent,
    /// An export / subprocessor transfer payload.
    Export,
    /// Any other record kind, by a stable name.
    Other(&'static str),
}

impl RecordKind {
    /// Stable name used in the seal AAD. Changing it breaks every existing
    /// ciphertext of that kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Visitor => "visitor",
            Self::Consent => "consent",
            Self::Export => "export",
            Self::Other(name) => name,
        }
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a sealed value lives. Sealing binds the ciphertext to all of it, so a
/// value copied to another tenant, row, field or record kind fails to open:
/// a database-level attacker cannot swap encrypted columns around.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SealContext<'a> {
    /// Owning tenant; must equal the keyring's tenant.
    pub tenant_id: &'a str,
    /// Kind of record the field belongs to.
    pub record_kind: RecordKind,
    /// The record's primary key (stable for the record's lifetime).
    pub record_id: &'a str,
    /// Field / column name.
    pub field: &'a str,
}

impl<'a> SealContext<'a> {
    /// Convenience constructor.
    pub fn new(
        tenant_id: &'a str,
        record_kind: RecordKind,
        record_id: &'a str,
        field: &'a str,
    ) -> Self {
        Self {
            tenant_id,
            record_kind,
            record_id,
            field,
        }
    }

    /// Full AEAD AAD: the context fields, then the sealed header bytes (so the
    /// format and key version cannot be altered without failing the tag).
    pub(crate) fn aad(&self, header: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            80 + self.tenant_id.len() + self.record_id.len() + self.field.len() + header.len(),
        );
        push_field(&mut out, SEAL_DOMAIN.as_bytes());
        push_field(&mut out, self.tenant_id.as_bytes());
        push_field(&mut out, self.record_kind.as_str().as_bytes());
        push_field(&mut out, self.record_id.as_bytes());
        push_field(&mut out, self.field.as_bytes());
        out.extend_from_slice(header);
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn purpose_round_trips() {
        for p in [KeyPurpose::Data, KeyPurpose::BlindIndex] {
            assert_eq!(p.as_str().parse::<KeyPurpose>().unwrap(), p);
        }
        assert!("Data".parse::<KeyPurpose>().is_err());
    }

    #[test]
    fn wrap_aad_is_injective_over_fields() {
        let a = key_wrap_aad("t1", KeyPurpose::Data, 1);
        assert_ne!(a, key_wrap_aad("t2", KeyPurpose::Data, 1));
        assert_ne!(a, key_wrap_aad("t1", KeyPurpose::BlindIndex, 1));
        assert_ne!(a, key_wrap_aad("t1", KeyPurpose::Data, 2));
        assert_eq!(a, key_wrap_aad("t1", KeyPurpose::Data, 1));
    }

    #[test]
    fn seal_aad_length_prefixes_prevent_shifting() {
        let a = SealContext::new("t", RecordKind::Visitor, "ab", "c").aad(b"");
        let b = SealContext::new("t", RecordKind::Visitor, "a", "bc").aad(b"");
        assert_ne!(a, b);
    }
}
