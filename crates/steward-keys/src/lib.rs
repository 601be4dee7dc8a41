//! Envelope encryption for Steward's tenant PII.
//!
//! # Key hierarchy
//!
//! A single key-encryption key (KEK, the "master key") never touches data
//! directly: it only wraps per-tenant keys, so rotating it means re-wrapping a
//! few keys per tenant instead of re-encrypting every row, and moving it into
//! a KMS later only means another [`KekProvider`]. Each tenant has
//!
//! * one or more versioned **data keys** (AES-256-GCM) — several versions
//!   coexist during a data-key rotation, and deleting a tenant's keys
//!   crypto-shreds all its data at once;
//! * one **blind-index key** (HMAC-SHA256), so equality lookups (find a
//!   visitor by e-mail) work without plaintext, and the same e-mail in two
//!   tenants yields unrelated indexes.
//!
//! Wrapped keys are AES-256-GCM under the KEK with an AAD naming the tenant,
//! purpose and version ([`key_wrap_aad`]): a wrapped key copied into another
//! tenant's row will not unwrap.
//!
//! # Sealed values
//!
//! `format(1) ‖ key_version(u32 BE) ‖ nonce(12) ‖ ciphertext ‖ tag(16)` — see
//! [`sealed`]. The key version is in the clear so readers pick the right key
//! and re-encryption can find old rows with [`sealed::key_version_of`].
//!
//! The AAD binds each value to its tenant, record kind, record id and field
//! ([`SealContext`]) plus the header itself. Whoever can write to the
//! database therefore cannot move a ciphertext to another row, column or
//! tenant, nor downgrade its header, without the open failing.
//!
//! # Key material in memory
//!
//! Unwrapped keys live in [`SecretKey`] (zeroized on drop, no `Debug` bytes).
//! ring's AES and HMAC key objects cannot be wiped, so they are rebuilt per
//! operation instead of cached; the cost is in `benches/crypto.rs`.

#![warn(missing_docs)]

mod aad;
pub mod blind_index;
mod cache;
mod error;
mod kek;
mod keyring;
pub mod normalize;
pub mod sealed;
mod secret;

pub use aad::{key_wrap_aad, KeyPurpose, RecordKind, SealContext};
pub use blind_index::{IndexKind, BLIND_INDEX_LEN};
pub use cache::KeyCache;
pub use error::{KeyError, Result};
pub use kek::{
    kek_id_for, write_key_file, KekProvider, LocalKek, MasterKeySource, WrappedKey,
    MASTER_KEY_FILE, WRAPPED_KEY_LEN,
};
pub use keyring::{TenantKeyring, WrappedTenantKeys, INDEX_KEY_VERSION};
pub use secret::{SecretKey, KEY_LEN};
pub use zeroize::Zeroizing;
