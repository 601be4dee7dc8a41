//! Key-encryption keys (KEKs): the master key that wraps every tenant key.
//!
//! [`KekProvider`] is the seam for an external KMS later; [`LocalKek`] keeps the
//! master key in process memory, loaded from a base64 file.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::digest::{digest, SHA256};
use zeroize::Zeroizing;

use crate::error::{KeyError, Result};
use crate::sealed::{NONCE_LEN, TAG_LEN};
use crate::secret::{self, SecretKey, KEY_LEN};

/// File name of the master key inside the data directory.
pub const MASTER_KEY_FILE: &str = "master.key";

/// Length of [`WrappedKey::bytes`]: nonce ‖ encrypted 32-byte key ‖ tag.
pub const WRAPPED_KEY_LEN: usize = NONCE_LEN + KEY_LEN + TAG_LEN;

const KEK_ID_DOMAIN: &[u8] = b"steward-kek-id-v1";

/// A tenant key encrypted under a KEK. Safe to store next to the data.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WrappedKey {
    /// Which KEK wrapped it, so rotation can tell old wraps from new.
    pub kek_id: String,
    /// 12-byte nonce ‖ AES-256-GCM ciphertext ‖ 16-byte tag.
    pub bytes: Vec<u8>,
}

/// Wraps and unwraps tenant keys. Implement this for an external KMS.
///
/// `aad` must be the same on wrap and unwrap; use
/// [`key_wrap_aad`](crate::key_wrap_aad) so wrapped keys are bound to their
/// tenant, purpose and version.
pub trait KekProvider: Send + Sync {
    /// Id of the KEK new wraps are made with.
    fn current_kek_id(&self) -> String;
    /// Encrypt `key` under the current KEK.
    fn wrap(&self, key: &SecretKey, aad: &[u8]) -> Result<WrappedKey>;
    /// Decrypt a wrapped key with the KEK it names.
    /// Errors: [`KeyError::UnknownKek`] if that KEK is not held,
    /// [`KeyError::Unwrap`] for any authentication failure.
    fn unwrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<SecretKey>;
}

/// Where [`LocalKek::load_or_generate`] got its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MasterKeySource {
    /// An existing key file was read.
    Loaded(PathBuf),
    /// No key file existed; a new key was generated and written here.
    /// Operators must back this file up: losing it loses every tenant's data.
    Generated(PathBuf),
}

impl MasterKeySource {
    /// The key file's path.
    pub fn path(&self) -> &Path {
        match self {
            Self::Loaded(p) | Self::Generated(p) => p,
        }
    }
}

/// Derive a KEK's public id. Hashing with a domain string makes the id safe
/// to store and log (it reveals nothing usable about the key) while still
/// letting an unwrap pick the right key after a rotation.
pub fn kek_id_for(key: &SecretKey) -> String {
    let mut input = Zeroizing::new(Vec::with_capacity(KEK_ID_DOMAIN.len() + KEY_LEN));
    input.extend_from_slice(KEK_ID_DOMAIN);
    input.extend_from_slice(key.expose());
    let hash = digest(&SHA256, &input);
    let mut id = String::with_capacity(4 + 16);
    id.push_str("kek_");
    for byte in hash.as_ref().iter().take(8) {
        id.push(hex_digit(byte >> 4));
        id.push(hex_digit(byte & 0x0f));
    }
    id
}

fn hex_digit(nibble: u8) -> char {
    char::from_digit(u32::from(nibble), 16).unwrap_or('0')
}

/// A KEK held in process memory, plus any older KEKs still needed to unwrap
/// keys during a master-key rotation.
pub struct LocalKek {
    current_id: String,
    current: SecretKey,
    previous: HashMap<String, SecretKey>,
}

impl LocalKek {
    /// Use `key` as the current KEK.
    pub fn new(key: SecretKey) -> Self {
        Self {
            current_id: kek_id_for(&key),
            current: key,
            previous: HashMap::new(),
        }
    }

    /// A fresh random KEK.
    pub fn generate() -> Result<Self> {
        SecretKey::generate().map(Self::new)
    }

    /// Parse standard base64 (surrounding whitespace ignored) of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self> {
        // Decoder error messages quote offending bytes: keep them out of logs.
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| KeyError::InvalidMasterKey("not valid base64".to_owned()))?,
        );
        if bytes.len() != KEY_LEN {
            return Err(KeyError::InvalidMasterKey(format!(
                "expected {KEY_LEN} bytes after base64 decoding, got {}",
                bytes.len()
            )));
        }
        SecretKey::from_slice(&bytes).map(Self::new)
    }

    /// Read a file containing the base64 key.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = Zeroizing::new(fs::read_to_string(path)?);
        Self::from_base64(&text)
    }

    /// Load `data_dir/master.key`, or create it with a new random key (mode
    /// 0600, fsynced together with its directory) if it does not exist.
    /// The directory is created (mode 0700) if missing.
    pub fn load_or_generate(data_dir: &Path) -> Result<(Self, MasterKeySource)> {
        let path = data_dir.join(MASTER_KEY_FILE);
        match Self::from_file(&path) {
            Ok(kek) => return Ok((kek, MasterKeySource::Loaded(path))),
            Err(KeyError::Io(e)) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)?;
        let kek = Self::generate()?;
        match write_key_file(&path, &kek) {
            Ok(()) => Ok((kek, MasterKeySource::Generated(path))),
            // Another process won the race: use its key, never overwrite.
            Err(KeyError::Io(e)) if e.kind() == io::ErrorKind::AlreadyExists => {
                Self::from_file(&path).map(|kek| (kek, MasterKeySource::Loaded(path)))
            }
            Err(e) => Err(e),
        }
    }

    /// Also accept `other`'s keys (its current and any it knew) for unwrapping.
    /// New wraps still use `self`'s current key: this is how a master-key
    /// rotation unwraps with the old KEK and re-wraps with the new one.
    #[must_use]
    pub fn with_previous(mut self, other: LocalKek) -> Self {
        let LocalKek {
            current_id,
            current,
            previous,
        } = other;
        for (id, key) in previous.into_iter().chain([(current_id, current)]) {
            if id != self.current_id {
                self.previous.insert(id, key);
            }
        }
        self
    }

    /// Id of the current KEK.
    pub fn kek_id(&self) -> String {
        self.current_id.clone()
    }

    /// Ids of every KEK this provider can unwrap with (current first).
    pub fn known_kek_ids(&self) -> Vec<String> {
        let mut ids = vec![self.current_id.clone()];
        let mut old: Vec<String> = self.previous.keys().cloned().collect();
        old.sort();
        ids.extend(old);
        ids
    }

    /// Base64 of the current key, for writing a new key file.
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.current.expose()))
    }

    fn key_for(&self, kek_id: &str) -> Option<&SecretKey> {
        if kek_id == self.current_id {
            Some(&self.current)
        } else {
            self.previous.get(kek_id)
        }
    }
}

impl fmt::Debug for LocalKek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalKek")
            .field("current", &self.current_id)
            .field("previous", &self.previous.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KekProvider for LocalKek {
    fn current_kek_id(&self) -> String {
        self.kek_id()
    }

    fn wrap(&self, key: &SecretKey, aad: &[u8]) -> Result<WrappedKey> {
        let nonce = secret::random_nonce()?;
        let mut bytes = Vec::with_capacity(WRAPPED_KEY_LEN);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(key.expose());
        let tag = match bytes.get_mut(NONCE_LEN..) {
            Some(body) => secret::seal_in_place(&self.current, nonce, aad, body),
            None => Err(KeyError::Seal),
        };
        let tag = match tag {
            Ok(tag) => tag,
            Err(e) => {
                // Never let a plaintext key escape in a half-built buffer.
                zeroize::Zeroize::zeroize(&mut bytes);
                return Err(e);
            }
        };
        bytes.extend_from_slice(tag.as_ref());
        Ok(WrappedKey {
            kek_id: self.current_id.clone(),
            bytes,
        })
    }

    fn unwrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<SecretKey> {
        let kek = self
            .key_for(&wrapped.kek_id)
            .ok_or_else(|| KeyError::UnknownKek(wrapped.kek_id.clone()))?;
        if wrapped.bytes.len() != WRAPPED_KEY_LEN {
            return Err(KeyError::Unwrap);
        }
        let (nonce, body) = wrapped
            .bytes
            .split_first_chunk::<NONCE_LEN>()
            .ok_or(KeyError::Unwrap)?;
        let mut buf = Zeroizing::new(body.to_vec());
        let len =
            secret::open_in_place(kek, *nonce, aad, &mut buf).map_err(|_| KeyError::Unwrap)?;
        let plain = buf.get(..len).ok_or(KeyError::Unwrap)?;
        SecretKey::from_slice(plain).map_err(|_| KeyError::Unwrap)
    }
}

/// Write `kek`'s current key as base64 to a new file: mode 0600, refuses to
/// overwrite, fsyncs the file and its directory so a crash cannot leave the
/// data encrypted under a key that never reached the disk.
pub fn write_key_file(path: &Path, kek: &LocalKek) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let written = write_and_sync(&mut file, kek);
    if let Err(e) = written {
        // We created the file (create_new), so removing a partial one is safe
        // and keeps the next start from loading a truncated key.
        drop(file);
        let _ = fs::remove_file(path);
        return Err(e.into());
    }
    sync_parent_dir(path)?;
    Ok(())
}

fn write_and_sync(file: &mut File, kek: &LocalKek) -> io::Result<()> {
    // The umask can only clear bits, but be explicit in case the file system
    // ignored the create mode.
    file.set_permissions(Permissions::from_mode(0o600))?;
    let mut text = kek.to_base64();
    text.push('\n');
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent)?.sync_all()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn kek_id_format() {
        let id = kek_id_for(&SecretKey::from_bytes([0; 32]));
        assert!(id.starts_with("kek_"));
        assert_eq!(id.len(), 4 + 16);
        assert!(id[4..]
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        // Deterministic, and different keys give different ids.
        assert_eq!(id, kek_id_for(&SecretKey::from_bytes([0; 32])));
        assert_ne!(id, kek_id_for(&SecretKey::from_bytes([1; 32])));
    }

    #[test]
    fn kek_id_matches_spec() {
        let key = SecretKey::from_bytes([0x42; 32]);
        let mut input = b"steward-kek-id-v1".to_vec();
        input.extend_from_slice(&[0x42; 32]);
        let hash = digest(&SHA256, &input);
        let expected: String = hash.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(kek_id_for(&key), format!("kek_{expected}"));
    }

    #[test]
    fn wrapped_len_is_fixed() {
        let kek = LocalKek::generate().unwrap();
        let w = kek.wrap(&SecretKey::generate().unwrap(), b"aad").unwrap();
        assert_eq!(w.bytes.len(), WRAPPED_KEY_LEN);
        assert_eq!(w.kek_id, kek.kek_id());
    }

    #[test]
    fn debug_shows_ids_only() {
        let kek = LocalKek::new(SecretKey::from_bytes([0x5A; 32]));
        let shown = format!("{kek:?}");
        assert!(shown.contains(&kek.kek_id()));
        assert!(!shown.contains(kek.to_base64().as_str()));
    }
}
