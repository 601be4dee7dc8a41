//! A tenant's unwrapped keys and the seal/open/blind-index operations on them.

use std::collections::BTreeMap;
use std::fmt;

use zeroize::Zeroizing;

use crate::aad::{key_wrap_aad, KeyPurpose, SealContext};
use crate::blind_index::{self, IndexKind, BLIND_INDEX_LEN};
use crate::error::{KeyError, Result};
use crate::kek::{KekProvider, WrappedKey};
use crate::sealed::{self, SealedHeader, FORMAT_VERSION, HEADER_LEN, OVERHEAD};
use crate::secret::{self, SecretKey};

/// Version under which the (never rotated) blind-index key is wrapped by
/// [`TenantKeyring::wrap_keys`]. Rotating it would mean recomputing every
/// index from plaintext, so it stays fixed.
pub const INDEX_KEY_VERSION: u32 = 1;

/// A tenant's keys, all wrapped, as they are stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrappedTenantKeys {
    /// Data keys by version.
    pub data_keys: Vec<(u32, WrappedKey)>,
    /// The blind-index key (wrapped with version [`INDEX_KEY_VERSION`]).
    pub index_key: WrappedKey,
}

/// One tenant's unwrapped data keys (every version still in use) and its
/// blind-index key. All key bytes are wiped when the keyring is dropped.
pub struct TenantKeyring {
    tenant_id: String,
    data_keys: BTreeMap<u32, SecretKey>,
    current_version: u32,
    index_key: SecretKey,
}

impl TenantKeyring {
    /// Build a keyring. The highest version becomes current.
    /// Errors with [`KeyError::InvalidInput`] if `data_keys` is empty or
    /// contains a version twice.
    pub fn new(
        tenant_id: String,
        data_keys: Vec<(u32, SecretKey)>,
        index_key: SecretKey,
    ) -> Result<Self> {
        let mut map = BTreeMap::new();
        for (version, key) in data_keys {
            if map.insert(version, key).is_some() {
                return Err(KeyError::InvalidInput("duplicate data key version"));
            }
        }
        let current_version = *map.keys().next_back().ok_or(KeyError::InvalidInput(
            "keyring needs at least one data key",
        ))?;
        Ok(Self {
            tenant_id,
            data_keys: map,
            current_version,
            index_key,
        })
    }

    /// A brand-new tenant: one random data key at `version` and a random
    /// blind-index key.
    pub fn generate(tenant_id: String, version: u32) -> Result<Self> {
        Self::new(
            tenant_id,
            vec![(version, SecretKey::generate()?)],
            SecretKey::generate()?,
        )
    }

    /// Add a data-key version (e.g. after a data-key rotation). If it is the
    /// highest, new seals use it; old versions keep opening their values.
    pub fn with_data_key(mut self, version: u32, key: SecretKey) -> Result<Self> {
        if self.data_keys.contains_key(&version) {
            return Err(KeyError::InvalidInput("duplicate data key version"));
        }
        self.data_keys.insert(version, key);
        self.current_version = self.current_version.max(version);
        Ok(self)
    }

    /// Unwrap a stored keyring with `kek`, checking each key's AAD
    /// (tenant, purpose, version).
    pub fn unwrap_keys<K: KekProvider + ?Sized>(
        kek: &K,
        tenant_id: String,
        wrapped: &WrappedTenantKeys,
    ) -> Result<Self> {
        let data_keys = wrapped
            .data_keys
            .iter()
            .map(|(version, w)| {
                kek.unwrap(w, &key_wrap_aad(&tenant_id, KeyPurpose::Data, *version))
                    .map(|key| (*version, key))
            })
            .collect::<Result<Vec<_>>>()?;
        let index_key = kek.unwrap(
            &wrapped.index_key,
            &key_wrap_aad(&tenant_id, KeyPurpose::BlindIndex, INDEX_KEY_VERSION),
        )?;
        Self::new(tenant_id, data_keys, index_key)
    }

    /// Wrap every key under `kek`'s current KEK (for storing a new tenant, or
    /// re-wrapping after a master-key rotation).
    pub fn wrap_keys<K: KekProvider + ?Sized>(&self, kek: &K) -> Result<WrappedTenantKeys> {
        let data_keys = self
            .data_keys
            .iter()
            .map(|(version, key)| {
                kek.wrap(
                    key,
                    &key_wrap_aad(&self.tenant_id, KeyPurpose::Data, *version),
                )
                .map(|w| (*version, w))
            })
            .collect::<Result<Vec<_>>>()?;
        let index_key = kek.wrap(
            &self.index_key,
            &key_wrap_aad(&self.tenant_id, KeyPurpose::BlindIndex, INDEX_KEY_VERSION),
        )?;
        Ok(WrappedTenantKeys {
            data_keys,
            index_key,
        })
    }

    /// The tenant these keys belong to.
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// The version new seals use (the highest held).
    pub fn current_version(&self) -> u32 {
        self.current_version
    }

    /// Every data-key version held, ascending.
    pub fn versions(&self) -> Vec<u32> {
        self.data_keys.keys().copied().collect()
    }

    /// Encrypt `plaintext` with the current data key, bound to `ctx`.
    ///
    /// `ctx.tenant_id` must be this keyring's tenant: sealing another tenant's
    /// row with this tenant's key is always a bug, so it is refused with
    /// [`KeyError::InvalidInput`].
    pub fn seal(&self, ctx: &SealContext<'_>, plaintext: &[u8]) -> Result<Vec<u8>> {
        if ctx.tenant_id != self.tenant_id {
            return Err(KeyError::InvalidInput(
                "seal context belongs to a different tenant",
            ));
        }
        let key = self
            .data_keys
            .get(&self.current_version)
            .ok_or(KeyError::UnknownKeyVersion(self.current_version))?;
        let header = SealedHeader {
            format_version: FORMAT_VERSION,
            key_version: self.current_version,
            nonce: secret::random_nonce()?,
        };
        let header_bytes = header.encode();
        let aad = ctx.aad(&header_bytes);
        // Reserve the full size up front so the buffer never reallocates while
        // it holds plaintext (a reallocation would leave a plaintext copy behind).
        let mut out = Vec::with_capacity(plaintext.len().saturating_add(OVERHEAD));
        out.extend_from_slice(&header_bytes);
        out.extend_from_slice(plaintext);
        let sealed = match out.get_mut(HEADER_LEN..) {
            Some(body) => secret::seal_in_place(key, header.nonce, &aad, body),
            None => Err(KeyError::Seal),
        };
        match sealed {
            Ok(tag) => {
                out.extend_from_slice(tag.as_ref());
                Ok(out)
            }
            Err(e) => {
                zeroize::Zeroize::zeroize(&mut out);
                Err(e)
            }
        }
    }

    /// Decrypt a value sealed by [`seal`](Self::seal) with the same context.
    ///
    /// Errors: [`KeyError::UnknownKeyVersion`] if the header names a version
    /// this keyring lacks; [`KeyError::Open`] for everything else (malformed,
    /// truncated, tampered, other context or tenant).
    pub fn open(&self, ctx: &SealContext<'_>, sealed_value: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let (header, body) = sealed::decode(sealed_value).map_err(|_| KeyError::Open)?;
        if ctx.tenant_id != self.tenant_id {
            return Err(KeyError::Open);
        }
        let key = self
            .data_keys
            .get(&header.key_version)
            .ok_or(KeyError::UnknownKeyVersion(header.key_version))?;
        let aad = ctx.aad(&header.encode());
        let mut buf = Zeroizing::new(body.to_vec());
        let len = secret::open_in_place(key, header.nonce, &aad, &mut buf)
            .map_err(|()| KeyError::Open)?;
        buf.truncate(len);
        Ok(buf)
    }

    /// Open with whatever version sealed the value and seal again with the
    /// current one (data-key rotation / re-encryption).
    pub fn reseal(&self, ctx: &SealContext<'_>, sealed_value: &[u8]) -> Result<Vec<u8>> {
        let plain = self.open(ctx, sealed_value)?;
        self.seal(ctx, &plain)
    }

    /// Deterministic keyed index of an already-normalized value
    /// (see [`crate::blind_index`]).
    pub fn blind_index(&self, kind: IndexKind, normalized_value: &str) -> [u8; BLIND_INDEX_LEN] {
        blind_index::compute(&self.index_key, kind, normalized_value)
    }
}

impl fmt::Debug for TenantKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantKeyring")
            .field("tenant_id", &self.tenant_id)
            .field("versions", &self.versions())
            .field("current_version", &self.current_version)
            .finish_non_exhaustive()
    }
}
