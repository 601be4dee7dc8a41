//! The crate's single error type.
//!
//! Variants that can be triggered by attacker-controlled ciphertext (`Unwrap`,
//! `Open`) deliberately carry no detail: telling a caller *why* authentication
//! failed (which byte, which field) only helps someone probing the format.

/// Everything that can go wrong while handling keys or sealed values.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// A wrapped key could not be unwrapped: wrong KEK, wrong AAD (tenant,
    /// purpose or version) or the wrapped bytes were tampered with.
    #[error("failed to unwrap key")]
    Unwrap,
    /// The wrapped key names a key-encryption key this provider does not hold.
    #[error("unknown key-encryption key {0}")]
    UnknownKek(String),
    /// A sealed value could not be opened: tampered, truncated, sealed for a
    /// different context, or sealed with a different key.
    #[error("failed to open sealed value")]
    Open,
    /// Sealing failed (the plaintext is too large for AES-GCM).
    #[error("failed to seal value")]
    Seal,
    /// A sealed value's header could not be decoded.
    #[error("malformed sealed value: {0}")]
    Malformed(&'static str),
    /// The sealed value names a data-key version the keyring does not hold.
    #[error("unknown data key version {0}")]
    UnknownKeyVersion(u32),
    /// The operating system's random number generator failed.
    #[error("system random number generator failed")]
    Random,
    /// The master key (KEK) text or file is not a valid key.
    #[error("invalid master key: {0}")]
    InvalidMasterKey(String),
    /// Reading or writing a key file failed.
    #[error("key file I/O: {0}")]
    Io(#[from] std::io::Error),
    /// An input failed validation (normalizers, keyring construction).
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),
}

/// `Result` with [`KeyError`] as the default error.
pub type Result<T, E = KeyError> = std::result::Result<T, E>;
